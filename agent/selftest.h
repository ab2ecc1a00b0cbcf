/* `essd selftest`: what a technician runs on a freshly flashed or repaired
 * device, and what a script runs on a bench. Each check gives pass, warn,
 * fail or skip (not run because an earlier check it needs failed) with one
 * line a non-programmer can act on:
 *
 *   config     the configuration file loads
 *   keystore   the key-encryption key is present, private and loads
 *   store      the encrypted store opens and passes its integrity check,
 *              takes a write, and the written value is nowhere in the
 *              database files in clear
 *   identity   the device key signs; device id, unit and server key present
 *   disk       free space on the store's file system
 *   clock      the system clock is plausible, NTP state, offset to the server
 *   daemon     essd answers on its control socket (a warning when it is not
 *              running: it may be stopped for service), locked or not
 *   gpsd       gpsd answers at gps.host:gps.port
 *   gps-fix    a fix that passes the plausibility filter, within a bound
 *   server     a signed heartbeat is accepted, and every signed document in
 *              the answer verifies against the enrolled server key
 *   alert      the configured LED, sounder and backlight are there and take
 *              one short (sounding) alert: the technician sees and hears it
 *   panic      with --panic-timeout S: a long or double press of the panic
 *              button arrives within S seconds (skipped when not asked: it
 *              needs someone at the device)
 *
 * Nothing here prints a position, a token or key material. The store is
 * opened as the daemon opens it, so the self-test runs beside a running
 * essd; run it as the store's owner (sudo -u ess), never as root on a
 * device, or files root creates would lock the daemon out (checked).
 *
 * Returns 0 or a negative errno where noted. */
#ifndef ESS_SELFTEST_H
#define ESS_SELFTEST_H

#include <stdint.h>
#include <stdio.h>

enum selftest_status { SELFTEST_PASS = 0, SELFTEST_WARN, SELFTEST_FAIL, SELFTEST_SKIP };

#define SELFTEST_MAX_CHECKS 14
#define SELFTEST_DETAIL     256

struct selftest_check {
	const char *name; /* static */
	enum selftest_status status;
	char detail[SELFTEST_DETAIL];
	int64_t ms; /* how long the check took */
};

struct selftest_report {
	char board[65];
	int n;
	struct selftest_check checks[SELFTEST_MAX_CHECKS];
};

struct selftest_params {
	const char *config_path;
	int gps_timeout_s;      /* bound for a fix; 0: 120 */
	int gpsd_timeout_s;     /* bound for reaching gpsd; 0: 10 */
	int64_t min_free_bytes; /* disk; 0: 64 MiB */
	int skip_gps;           /* a device without GPS: gpsd and gps-fix skipped */
	int panic_timeout_s;    /* > 0: wait that long for a panic press; 0: skip */
};

/* Runs every check (a failed one does not stop the others that do not need
 * it) and fills r. Returns the number of failed checks (0: the device is
 * good), or a negative errno when the report itself could not be made. */
int selftest_run(const struct selftest_params *p, struct selftest_report *r);

const char *selftest_status_name(enum selftest_status s); /* "pass", "warn", … */

/* A table for people: one line per check, then the verdict. */
void selftest_print_text(const struct selftest_report *r, FILE *f);
/* {"ok":bool,"board":…,"version":…,"checks":[{"name","status","detail","ms"}…]}.
 * Returns 0 or -ENOMEM. */
int selftest_print_json(const struct selftest_report *r, FILE *f);

#endif
