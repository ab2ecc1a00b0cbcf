/* Power: where the device's energy comes from, and the policies that
 * follow (the GPS recording interval on battery; the heartbeat's "power"
 * and "battery_pct", device API section 7).
 *
 * Backends are ops tables (hostap's driver ops are the model): "sysfs"
 * (every <root>/sys/class/power_supply device and an ignition sense line: a value file
 * or a GPIO line) and "none" (nothing known). The module reads the backend
 * when the backend says something changed (hal_power_kick: a GPIO
 * ignition's edge, a power_supply uevent from the kernel), a short settle
 * time after the last such event, and besides on a backstop poll every
 * poll_ms (default 60 s: a fuel gauge that sends no uevent, a "file:"
 * ignition, a line that went away and must be requested again). It calls
 * on_change when the decided state changes.
 *
 * A supply or ignition line that disappears reads as unknown until it
 * comes back: never an error.
 *
 * Functions return 0 or a negative errno. */
#ifndef ESS_HAL_POWER_H
#define ESS_HAL_POWER_H

#include <stddef.h>
#include <stdint.h>

struct loop;

enum hal_power_source {
	HAL_POWER_UNKNOWN = 0, /* nothing tells: the caller's fallback applies */
	HAL_POWER_VEHICLE,     /* ignition on: the alternator feeds the device */
	HAL_POWER_AC,          /* an external supply (mains, USB, dock) is online */
	HAL_POWER_BATTERY,     /* on the device's battery, or the vehicle's with ignition off */
};
const char *
hal_power_source_str(enum hal_power_source s); /* "vehicle", "ac", "battery", "unknown" */

/* What a backend reads. */
struct hal_power_raw {
	int ignition;    /* 1 on, 0 off, -1 no ignition sense (or not readable now) */
	int mains;       /* 1 an external supply online, 0 present but none online, -1 none */
	int battery;     /* 1 a battery is present, 0 not */
	int battery_pct; /* 0..100, -1 unknown */
	int charging;    /* 1 charging or full, 0 discharging, -1 unknown */
};

/* The decided state. */
struct hal_power_state {
	enum hal_power_source source;
	struct hal_power_raw raw;
};

/* The decision (pure): ignition on -> VEHICLE; else an external supply
 * online -> AC; else ignition off (a vehicle at rest) or a battery present
 * -> BATTERY; else UNKNOWN. */
enum hal_power_source hal_power_decide(const struct hal_power_raw *r);

/* The GPS recording interval for this state (pure): battery_interval_s on
 * BATTERY when it is longer than interval_s (0: no battery policy), else
 * interval_s. An active incident's interval is not touched by this. */
int hal_power_gps_interval(const struct hal_power_state *st, int interval_s,
                           int battery_interval_s);

struct hal_power;
typedef void (*hal_power_change_fn)(void *arg, const struct hal_power_state *st);

struct hal_power_params {
	struct loop *loop;
	const char *root;     /* NULL or "": $HAL_SYSFS_ROOT or "/" */
	const char *ignition; /* "file:PATH" (under root, non-zero = on), "gpio:CHIP:OFFSET"; NULL
	                         or "": none */
	int ignition_active_low; /* the line reads 0 when the ignition is on */
	int poll_ms;             /* the backstop poll; 0: 60000 */
	/* Tests: > 0, an open datagram or seqpacket fd whose messages stand
	 * for the kernel's uevents (not closed here). 0: the kernel's uevent
	 * socket, and only when the root is the real "/" (a test tree gets no
	 * kernel events). */
	int uevent_fd;
	hal_power_change_fn on_change; /* may be NULL */
	void *arg;
};

/* What the module and its backend saw (essctl, the tests). */
struct hal_power_stats {
	uint64_t reads;           /* backend readings: the open's, the polls', the events' */
	uint64_t kicks;           /* events that asked for a reading (coalesced into fewer) */
	int ignition_events;      /* 1 while the ignition line's edges are on the loop */
	int uevents;              /* 1 while a uevent socket is on the loop */
	uint64_t uevents_matched; /* power_supply messages */
	uint64_t uevents_dropped; /* malformed, truncated, too long, not from the kernel */
};

struct hal_power_ops {
	const char *name;
	const char *desc;
	/* pw: for hal_power_loop and hal_power_kick; not to be read yet. */
	int (*open)(const struct hal_power_params *p, struct hal_power *pw, void **priv, char *err,
	            size_t errlen);
	void (*close)(void *priv);
	/* Fills r; parts that cannot be read right now are -1 (battery 0). */
	void (*read)(void *priv, struct hal_power_raw *r);
	/* Optional: the backend's part of the stats. */
	void (*stats)(void *priv, struct hal_power_stats *st);
};

/* Opens backend `name` ("sysfs", "none") and reads it once (no callback for
 * that first reading). -ENOENT for an unknown backend, -EINVAL for a bad
 * ignition spec. */
int hal_power_open(const char *name, const struct hal_power_params *p, struct hal_power **out,
                   char *err, size_t errlen);
void hal_power_close(struct hal_power *pw); /* NULL is fine */
const char *hal_power_name(const struct hal_power *pw);
/* The last decided state. */
void hal_power_get(const struct hal_power *pw, struct hal_power_state *st);
/* Reads the backend now (as the poll does); calls on_change on a change.
 * Returns 1 when the state changed. */
int hal_power_refresh(struct hal_power *pw);
void hal_power_stats(const struct hal_power *pw, struct hal_power_stats *st);

/* For backends: something may have changed (an edge, a uevent). The reading
 * follows HAL_POWER_SETTLE_MS after the last kick, HAL_POWER_SETTLE_MAX_MS
 * after the first at the latest: an ignition line bounces while the engine
 * cranks and a charger plugged in sends a burst of uevents (the supply, the
 * battery, the USB port), and one reading of the settled state is what is
 * wanted, not one per bounce. */
#define HAL_POWER_SETTLE_MS     150
#define HAL_POWER_SETTLE_MAX_MS 1000
void hal_power_kick(struct hal_power *pw);
struct loop *hal_power_loop(const struct hal_power *pw);

extern const struct hal_power_ops hal_power_sysfs_ops;
extern const struct hal_power_ops hal_power_none_ops;

#endif
