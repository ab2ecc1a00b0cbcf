/* The test side of the link-emulating proxy (tests/tools/linkproxy.c): the
 * ports it writes to --port-file and --control-port-file, and one command
 * on its loopback control channel (the commands: tests/lib/link_cmd.h).
 * lpc_start starts one the usual way; stopping it stays with the caller
 * (by the pid it was given), as does starting it some other way
 * (tests/lib/essdenv logs it through tests/lib/proc.h). */
#ifndef ESS_TESTS_LPCTL_H
#define ESS_TESTS_LPCTL_H

#include <stddef.h>
#include <sys/types.h>

/* The port in a port file; 0 while it is missing, empty or not a port. */
int lpc_port_file(const char *path);
/* Waits up to wait_ms until both port files hold a port: 0, or
 * -ETIMEDOUT. */
int lpc_wait_ports(const char *port_file, const char *ctl_file, int wait_ms, int *port,
                   int *ctl_port);
/* Starts $ESS_BUILD/tools/linkproxy (default build/host) on 127.0.0.1:0 in
 * front of 127.0.0.1:connect_port, its port files dir/lp.port and
 * dir/lp.ctl, its output thrown away, extra (NULL-terminated, may be NULL;
 * at most 20) after those; it gets SIGTERM if this process dies first.
 * *pid is set once it is forked: the caller stops it by that pid, also when
 * this fails. Waits up to wait_ms for its ports. Returns 0, -ENOENT (no
 * linkproxy built), -E2BIG, -errno of fork, or -ETIMEDOUT. */
int lpc_start(const char *dir, int connect_port, char *const extra[], int wait_ms, pid_t *pid,
              int *port, int *ctl_port);
/* Sends cmd (one line, without its '\n') to the control port and reads the
 * answer line into ans (without the '\n'; ans may be NULL). 0 when the
 * answer starts "ok", -EINVAL when it does not, -errno when the channel
 * fails. */
int lpc_cmd(int ctl_port, const char *cmd, char *ans, size_t cap);

#endif
