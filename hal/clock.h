/* Clock hardware: is there a battery-backed real-time clock (RTC) to carry
 * the time across a power cut, and does it agree with the system clock?
 *
 * This is the hardware half only. Whether the system clock is trusted (GPS
 * time discipline, NTP) is decided in one place, agent/track.h
 * (track_clock_state); hal_clock_assess combines that state, given as an
 * argument, with the RTC facts for health and self-test output.
 *
 * Backends are ops tables (hostap's driver ops are the model): "sysfs"
 * (<root>/sys/class/rtc/NAME/{name,since_epoch,hctosys}, read afresh on
 * every call so an RTC that appears or vanishes is seen) and "none".
 *
 * Functions return 0 or a negative errno. */
#ifndef ESS_HAL_CLOCK_H
#define ESS_HAL_CLOCK_H

#include <stddef.h>
#include <stdint.h>

struct hal_clock_info {
	int rtc_present;   /* 1 when the RTC device exists */
	char rtc_name[64]; /* the driver's name ("rtc_cmos"), "" unknown */
	int64_t rtc_s;     /* the RTC's time (unix seconds), -1 unreadable */
	int hctosys;       /* 1: the kernel set the system clock from it at boot */
};

struct hal_clock_ops {
	const char *name;
	const char *desc;
	int (*open)(const char *root, const char *rtc, void **priv, char *err, size_t errlen);
	void (*close)(void *priv);
	void (*read)(void *priv, struct hal_clock_info *info);
};

struct hal_clock;

/* Opens backend `name` ("sysfs", "none"); rtc: the device ("rtc0"; NULL or
 * "": the first). -ENOENT for an unknown backend, -EINVAL for a bad name. */
int hal_clock_open(const char *name, const char *root, const char *rtc, struct hal_clock **out,
                   char *err, size_t errlen);
void hal_clock_close(struct hal_clock *c); /* NULL is fine */
const char *hal_clock_name(const struct hal_clock *c);
void hal_clock_read(struct hal_clock *c, struct hal_clock_info *info);

/* The clocks as a technician needs them (pure). sync_state is
 * track_clock_str(track_clock_state(...)): "gps", "system" or "unsynced".
 * Fills drift_s (RTC minus system, seconds; 0 when unknown). Returns
 *   "ok"           the system clock is vouched for (gps or system);
 *   "rtc-only"     unsynced, but an RTC that agrees within 60 s carries it;
 *   "rtc-drift"    unsynced, and the RTC disagrees by more than 60 s;
 *   "no-time"      unsynced and no readable RTC: event times rest on the
 *                  monotonic clock from the last GPS fix, if any. */
const char *hal_clock_assess(const struct hal_clock_info *info, const char *sync_state,
                             int64_t sys_s, int64_t *drift_s);

extern const struct hal_clock_ops hal_clock_sysfs_ops;
extern const struct hal_clock_ops hal_clock_none_ops;

#endif
