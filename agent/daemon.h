/* The daemon: `essd run` and `essd provision`. Wires the modules together
 * on one loop — store, GPS (hal_gps + track), the sync engine, the control
 * socket (ctl + ctl_methods) — and owns the timers (position flush and
 * trail bound, retention purge, WAL checkpoint, systemd watchdog), the
 * signals (SIGTERM/SIGINT stop, SIGHUP reload) and the commands the server
 * sends (wipe, lock, resync, config).
 *
 * Returns 0 or a negative errno; err receives a message for the operator
 * (no personal data, no secrets). */
#ifndef ESS_DAEMON_H
#define ESS_DAEMON_H

#include <stddef.h>

/* Runs in the foreground until SIGTERM/SIGINT (0), a wipe or revocation
 * carried out (0, *wiped set), or a fatal error. -ENOKEY: not provisioned. */
int daemon_run(const char *config_path, int *wiped, char *err, size_t errlen);

struct daemon_provision_info {
	const char *token; /* NULL: the config's server.enroll_token */
	int force;         /* wipe an existing identity and its data first */
};
/* Makes the store (and KEK) when needed, generates the device key, enrolls
 * and stores the identity encrypted. -EEXIST when already provisioned and
 * not forced. unit and device_id (may be NULL, 129 bytes) receive the
 * result. */
int daemon_provision(const char *config_path, const struct daemon_provision_info *info, char *unit,
                     char *device_id, char *err, size_t errlen);

#endif
