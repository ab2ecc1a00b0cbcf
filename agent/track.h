/* Track: what the agent does with the fixes a GPS source delivers.
 *
 *  - the recording policy: which fixes go into the position trail;
 *  - the last fix, for the heartbeat and distance/bearing to an incident;
 *  - the clock state (is the system clock, the GPS or nothing trustworthy?);
 *  - event time that never goes backwards.
 *
 * Pure decisions take their inputs (times, fixes, NTP state) as arguments so
 * that the unit tests inject them; thin wrappers read the real clocks.
 * Nothing here logs a position. Functions return 0 or a negative errno
 * unless they say otherwise. */
#ifndef ESS_TRACK_H
#define ESS_TRACK_H

#include <stdbool.h>
#include <stdint.h>

#include "hal/gps.h"

struct store_fix;
struct track;

/* How long without a fix makes the next one "the first after a gap",
 * recorded whatever the interval and distance. */
#define TRACK_GAP_MS 10000
/* GPS and system clock "agree" within this. */
#define TRACK_CLOCK_AGREE_MS 1000
/* A GPS time older than this (monotonic) no longer vouches for the clock. */
#define TRACK_CLOCK_FRESH_MS 60000

struct track_params {
	int interval_s;        /* [gps] interval_s, >= 1 */
	int min_distance_m;    /* [gps] min_distance_m, >= 0 (0: distance never holds back) */
	int active_interval_s; /* [gps] active_interval_s, >= 1 */
};

/* -EINVAL for out-of-range parameters. Caller frees with track_close. */
int track_open(const struct track_params *p, struct track **out);
void track_close(struct track *t); /* NULL is fine */
/* New policy parameters (SIGHUP, server configuration); the last fix and
 * the event-time floor are kept. -EINVAL as for track_open. */
int track_set_params(struct track *t, const struct track_params *p);

/* While an incident is active, fixes are recorded every active_interval_s. */
void track_set_active(struct track *t, bool active);
bool track_active(const struct track *t);

/* The recording policy. fix is a validated fix (hal_gps_filter_check). A fix
 * is recorded when
 *   - it is the first one, or the first after a gap (no fix for
 *     TRACK_GAP_MS of receiver time), or
 *   - at least the interval (active_interval_s while active, else
 *     interval_s) of receiver time has passed since the last recorded fix
 *     AND it lies at least min_distance_m (haversine) from it;
 * and in every case only when its time is after the last recorded one (the
 * trail never goes backwards). Every fix becomes the last fix.
 * Returns 1 and fills out (may be NULL) when the fix is to be recorded,
 * 0 when not. */
int track_offer(struct track *t, const struct hal_gps_fix *fix, struct store_fix *out);

/* The last fix offered. -ENOENT before the first. */
int track_last_fix(const struct track *t, struct hal_gps_fix *out);
/* Fixes offered and recorded so far. */
uint64_t track_offered(const struct track *t);
uint64_t track_recorded(const struct track *t);

/* Great-circle distance (metres, haversine) and initial bearing (whole
 * degrees 0..359, clockwise from true north) from point 1 to point 2. */
void track_distance_bearing(int32_t lat1_e7, int32_t lon1_e7, int32_t lat2_e7, int32_t lon2_e7,
                            double *dist_m, int *bearing_deg);
/* From the last fix to (lat_e7, lon_e7), e.g. an incident. -ENOENT without a
 * fix; -EINVAL for coordinates out of range. */
int track_to(const struct track *t, int32_t lat_e7, int32_t lon_e7, double *dist_m,
             int *bearing_deg);

/* ---- clocks ---- */
enum track_clock {
	TRACK_CLOCK_UNSYNCED = 0, /* nothing vouches for the system clock */
	TRACK_CLOCK_SYSTEM,       /* the kernel says NTP keeps it synchronised */
	TRACK_CLOCK_GPS,          /* a fresh GPS time agrees with it */
};
const char *track_clock_str(enum track_clock c);

/* The decision, from injected facts: have_fix and the fix's receiver time
 * gps_ms with the system time sys_ms at which it arrived, fix_age_ms its
 * monotonic age, ntp_synced the kernel's view. GPS wins when a fresh fix's
 * time is within TRACK_CLOCK_AGREE_MS of the system clock; then SYSTEM when
 * NTP-synchronised; else UNSYNCED. */
enum track_clock track_clock_decide(bool have_fix, int64_t gps_ms, int64_t sys_ms,
                                    int64_t fix_age_ms, bool ntp_synced);
/* true when ntp_adjtime() reports a synchronised clock (no STA_UNSYNC, no
 * TIME_ERROR). */
bool track_ntp_synced(void);
/* track_clock_decide on the last fix, the monotonic clock and the kernel;
 * the _at form takes the clocks as arguments (tests). */
enum track_clock track_clock_state(const struct track *t);
enum track_clock track_clock_state_at(const struct track *t, int64_t mono_ms, bool ntp_synced);
/* The receiver just reported a time that leaps against its own timeline
 * (hal/gps refused it): its last fix no longer vouches for the clock, until
 * the next accepted fix. Event times carried on the last good fix stay. */
void track_gps_time_suspect(struct track *t);

/* Time for events (unix ms), never less than a value it handed out before.
 * With an UNSYNCED clock and a fix, the time is the fix's receiver time plus
 * the monotonic time since it arrived; else realtime_ms. The _at form takes
 * the clocks as arguments (tests); track_event_now reads them. */
int64_t track_event_now_at(struct track *t, int64_t realtime_ms, int64_t mono_ms, bool ntp_synced);
int64_t track_event_now(struct track *t);

#endif
