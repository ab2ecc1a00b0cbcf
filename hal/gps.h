/* GPS source: where fixes come from.
 *
 * Backends are ops tables (hostap's driver ops are the model): "gpsd"
 * (libgps over TCP, registered in the event loop; survives gpsd absent at
 * start, restarts and receivers that come and go) and "none" (a device
 * without GPS: never delivers a fix). Each backend runs on the caller's
 * loop and hands every fix that passed hal_gps_filter_check upwards through
 * the one on_fix callback; nothing blocks (gps_open's connect on a remote
 * host is the one bounded exception, see gps_gpsd.c).
 *
 * Coordinates are personal data: nothing here logs them.
 *
 * Errors are 0 or a negative errno; err (may be NULL) receives a message
 * naming the backend and the endpoint, never a position. */
#ifndef ESS_HAL_GPS_H
#define ESS_HAL_GPS_H

#include <stddef.h>
#include <stdint.h>

struct loop;

/* A validated fix, as delivered to on_fix. */
struct hal_gps_fix {
	int64_t t_ms;         /* the receiver's UTC time of the fix, unix ms */
	int64_t sys_ms;       /* CLOCK_REALTIME when it arrived (clock discipline) */
	int64_t mono_ms;      /* loop_now_ms() when it arrived */
	int32_t lat_e7;       /* 1e-7 degrees, -90..90 */
	int32_t lon_e7;       /* -180..180 */
	int32_t accuracy_dm;  /* horizontal error (eph, or the larger of epx/epy); -1 unknown */
	int32_t speed_cm_s;   /* -1 unknown */
	int32_t heading_cdeg; /* track over ground 0..35999, -1 unknown */
	uint8_t mode;         /* 2 or 3 */
};

typedef void (*hal_gps_fix_fn)(void *arg, const struct hal_gps_fix *fix);
/* A report refused because its time leaps against the anchor: the
 * receiver's clock cannot vouch for anything until the next good fix. */
typedef void (*hal_gps_time_jump_fn)(void *arg);

struct hal_gps_params {
	struct loop *loop; /* borrowed; the backend registers fds and timers on it */
	const char *host;  /* gpsd: host name or address */
	int port;          /* gpsd: TCP port */
	hal_gps_fix_fn on_fix;
	hal_gps_time_jump_fn on_time_jump; /* optional */
	void *arg;
	/* Reconnect backoff, doubling from min to max; 0: 1000 and 30000 ms. */
	int64_t backoff_min_ms;
	int64_t backoff_max_ms;
};

/* Counters for health output and tests. */
struct hal_gps_stats {
	int connected;           /* 1 while a session with the source is up */
	uint64_t connects;       /* successful connections */
	uint64_t attempts;       /* connection attempts, successful or not */
	uint64_t disconnects;    /* sessions lost (EOF, error) */
	uint64_t reports;        /* position reports seen (TPV) */
	uint64_t fixes;          /* delivered to on_fix */
	uint64_t rejected;       /* reports refused by the filter (mode < 2 included) */
	int64_t next_backoff_ms; /* the delay before the next attempt after a failure */
};

struct hal_gps_ops {
	const char *name;
	const char *desc;
	int (*open)(const struct hal_gps_params *p, void **priv, char *err, size_t errlen);
	void (*close)(void *priv); /* removes every fd and timer from the loop */
	/* NULL: no statistics. */
	void (*stats)(void *priv, struct hal_gps_stats *st);
};

struct hal_gps;

/* Opens backend `name` ("gpsd", "none") on p->loop. The gpsd backend
 * succeeds even when gpsd is not running: it keeps retrying. -ENOENT for an
 * unknown backend. p is copied (host too). */
int hal_gps_open(const char *name, const struct hal_gps_params *p, struct hal_gps **out, char *err,
                 size_t errlen);
void hal_gps_close(struct hal_gps *g); /* NULL is fine */
const char *hal_gps_name(const struct hal_gps *g);
/* Zeroes st when the backend keeps no statistics. */
void hal_gps_stats(const struct hal_gps *g, struct hal_gps_stats *st);

extern const struct hal_gps_ops hal_gps_gpsd_ops;
extern const struct hal_gps_ops hal_gps_none_ops;

/* ---- the plausibility filter every backend applies ----
 *
 * A raw report as a receiver gives it: doubles, NaN when absent. */
struct hal_gps_raw {
	int mode;      /* 0 not seen, 1 no fix, 2, 3 */
	double time_s; /* UTC seconds since the epoch; NaN or 0 when absent */
	double lat;    /* degrees */
	double lon;    /* degrees */
	double eph;    /* metres */
	double epx;    /* metres */
	double epy;    /* metres */
	double speed;  /* m/s */
	double track;  /* degrees true */
};

/* Rules (documented in docs/gps.md):
 *   - mode must be 2 or 3; time, lat and lon finite; |lat| <= 90,
 *     |lon| <= 180; (0, 0) is refused (a receiver's "no position");
 *   - the time lies between HAL_GPS_MIN_TIME_S (2020-01-01) and
 *     HAL_GPS_MAX_TIME_S (2100-01-01): older is a receiver that lost its
 *     almanac or hit a week rollover;
 *   - against the last accepted fix (the anchor): the receiver's time must
 *     advance (equal: a duplicate, refused) and by no more than the monotonic
 *     time elapsed plus HAL_GPS_TIME_SLACK_MS; a report that goes back or
 *     leaps ahead is refused;
 *   - speed: a reported speed above HAL_GPS_MAX_SPEED_MS is refused; so is a
 *     fix whose distance from the anchor, less HAL_GPS_JUMP_ALLOWANCE_M for
 *     noise, needs more than HAL_GPS_MAX_SPEED_MS over the receiver-time
 *     interval (an ambulance does not do 360 km/h);
 *   - a first fix (no anchor: start, new session with gpsd after
 *     hal_gps_filter_reset) is only a candidate: it is refused, and the next
 *     fix that agrees with it by the two rules above is accepted and becomes
 *     the anchor. A lone bogus first fix therefore never gets through;
 *   - after HAL_GPS_REANCHOR consecutive refusals against the anchor, the
 *     anchor was the outlier (or the receiver really moved on): the anchor
 *     is dropped and the last refused fix becomes the candidate.
 *     A time jump does not count towards that when the system clock is
 *     plausible and the anchor's time, carried forward by the monotonic
 *     clock, is nearer to it than the jumped report (a receiver an hour
 *     ahead must not store future fixes that block the trail afterwards).
 * Fields that are absent or out of range on their own (accuracy, speed,
 * track) become -1 instead of refusing the fix. */
#define HAL_GPS_MIN_TIME_S       1577836800.0 /* 2020-01-01 */
#define HAL_GPS_MAX_TIME_S       4102444800.0 /* 2100-01-01 */
#define HAL_GPS_TIME_SLACK_MS    10000
#define HAL_GPS_MAX_SPEED_MS     100.0
#define HAL_GPS_JUMP_ALLOWANCE_M 50.0
#define HAL_GPS_REANCHOR         5

enum hal_gps_reject {
	HAL_GPS_OK = 0,
	HAL_GPS_REJECT_MODE,
	HAL_GPS_REJECT_NAN,
	HAL_GPS_REJECT_RANGE,
	HAL_GPS_REJECT_TIME,        /* outside 2020..2100 */
	HAL_GPS_REJECT_TIME_JUMP,   /* against the anchor */
	HAL_GPS_REJECT_SPEED,       /* reported or implied */
	HAL_GPS_REJECT_UNCONFIRMED, /* a first fix, waiting for one that agrees */
};

struct hal_gps_filter {
	int have_anchor;
	int64_t anchor_t_ms, anchor_mono_ms;
	int32_t anchor_lat_e7, anchor_lon_e7;
	int streak; /* consecutive refusals against the anchor */
	int have_candidate;
	struct hal_gps_fix candidate;
};

void hal_gps_filter_reset(struct hal_gps_filter *f);
/* Checks raw, received at mono_ms (monotonic) and sys_ms (realtime). On
 * HAL_GPS_OK, out is filled and becomes the anchor. Pure apart from f. */
enum hal_gps_reject hal_gps_filter_check(struct hal_gps_filter *f, const struct hal_gps_raw *raw,
                                         int64_t mono_ms, int64_t sys_ms, struct hal_gps_fix *out);
const char *hal_gps_reject_str(enum hal_gps_reject r);

/* Great-circle distance in metres between two points (1e-7 degrees). */
double hal_gps_distance_m(int32_t lat1_e7, int32_t lon1_e7, int32_t lat2_e7, int32_t lon2_e7);

#endif
