/* The daemon's hardware: opens the hal/ backends the configuration names
 * ([alert], [input], [power], [link], [clock]) on the daemon's loop and
 * turns what they report into the few things the daemon acts on, so that
 * daemon.c only wires callbacks:
 *
 *   - a new assignment -> the alert outputs (hw_alert; never a sound for a
 *     silent incident: hal/alert enforces it);
 *   - the panic button -> cb->panic (the daemon queues SOS);
 *   - a power change -> cb->power (the daemon re-applies the GPS policy,
 *     hw_gps_interval) and the heartbeat's power fields (hw_power);
 *   - a link up -> cb->link_up (the daemon tells sync to go now);
 *   - the RTC -> one log line with the clock state at start (hw_clock_log).
 *
 * A backend that cannot open (bad device spec) fails hw_open with a message;
 * hardware that is absent is not an error (the backends rescan). Nothing
 * here logs personal data. Returns 0 or a negative errno. */
#ifndef ESS_HW_H
#define ESS_HW_H

#include <stddef.h>

struct loop;
struct config;
struct hw;

struct hw_callbacks {
	void (*panic)(void *arg, const char *how); /* "long" or "double" press */
	void (*power)(void *arg);                  /* the power state changed */
	void (*link_up)(void *arg, const char *ifname);
	void *arg;
};

int hw_open(struct loop *l, const struct config *cfg, const struct hw_callbacks *cb,
            struct hw **out, char *err, size_t errlen);
void hw_close(struct hw *h); /* NULL is fine */

void hw_alert(struct hw *h, int silent);
void hw_alert_stop(struct hw *h);

/* The heartbeat's "power" ("vehicle", "ac", "battery"; the configured
 * power.fallback when nothing is sensed) and battery_pct (-1: null). */
const char *hw_power(const struct hw *h, const struct config *cfg, int *battery_pct);
/* gps.interval_s, or gps.battery_interval_s on battery (hal_power policy). */
int hw_gps_interval(const struct hw *h, const struct config *cfg);

/* Logs RTC presence and the clock assessment; clock_state is
 * track_clock_str(track_clock_state(...)). */
void hw_clock_log(struct hw *h, const char *clock_state);

/* The hardware as essctl status shows it (no personal data):
 * {"alert": {backend, led_on, sounding, alerts, silent, sounded, missing},
 *  "panic_button": {backend, attached, presses, panics, losses},
 *  "power": {backend, source, battery_pct, charging, ignition},
 *  "link": {backend, running, ups},
 *  "rtc": {backend, present, assessment}}
 * clock_state as for hw_clock_log. NULL on ENOMEM. */
struct cJSON *hw_status(struct hw *h, const char *clock_state);

/* ---- for the self-test (essd selftest: a process of its own, essd may be
 * running beside it) ---- */
enum hw_check_status { HW_CHECK_PASS = 0, HW_CHECK_WARN, HW_CHECK_FAIL, HW_CHECK_SKIP };
struct hw_check {
	enum hw_check_status status;
	char detail[256]; /* one line a technician can act on */
};

/* Opens the configured alert outputs and exercises them once as a normal
 * (sounding) alert of about a second, on l. FAIL when the LED or a
 * configured sounder is not there, WARN when no backlight is, SKIP with
 * backend none. */
void hw_check_alert(const struct config *cfg, struct loop *l, struct hw_check *out);
/* Opens the configured panic button and waits on l, at most timeout_ms, for
 * a long or double press (the caller has prompted the technician). FAIL
 * when the device is not there or nothing came in time, SKIP with backend
 * none. A GPIO line essd already holds reads as busy (FAIL, said so). */
void hw_check_panic(const struct config *cfg, struct loop *l, int timeout_ms, struct hw_check *out);

#endif
