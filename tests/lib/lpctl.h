/* The test side of the link-emulating proxy (tests/tools/linkproxy.c): the
 * ports it writes to --port-file and --control-port-file, and one command
 * on its loopback control channel (the commands: tests/lib/link_cmd.h).
 * Starting and stopping it stays with the caller (tests/lib/proc.h or its
 * own fork), which knows its process. */
#ifndef ESS_TESTS_LPCTL_H
#define ESS_TESTS_LPCTL_H

#include <stddef.h>

/* The port in a port file; 0 while it is missing, empty or not a port. */
int lpc_port_file(const char *path);
/* Waits up to wait_ms until both port files hold a port: 0, or
 * -ETIMEDOUT. */
int lpc_wait_ports(const char *port_file, const char *ctl_file, int wait_ms, int *port,
                   int *ctl_port);
/* Sends cmd (one line, without its '\n') to the control port and reads the
 * answer line into ans (without the '\n'; ans may be NULL). 0 when the
 * answer starts "ok", -EINVAL when it does not, -errno when the channel
 * fails. */
int lpc_cmd(int ctl_port, const char *cmd, char *ans, size_t cap);

#endif
