/* Track: the recording policy, the last fix, clock state, event time. */
#include "agent/track.h"

#include "agent/loop.h"
#include "agent/store.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timex.h>
#include <time.h>

struct track {
	struct track_params p;
	bool active;
	bool have_last;
	bool gps_suspect;        /* a report since the last fix leapt in time */
	struct hal_gps_fix last; /* last offered */
	bool have_rec;
	struct hal_gps_fix rec; /* last recorded */
	uint64_t offered, recorded;
	int64_t last_event_ms;
};

int track_open(const struct track_params *p, struct track **out)
{
	*out = NULL;
	if (p->interval_s < 1 || p->active_interval_s < 1 || p->min_distance_m < 0)
		return -EINVAL;
	struct track *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->p = *p;
	*out = t;
	return 0;
}

int track_set_params(struct track *t, const struct track_params *p)
{
	if (p->interval_s < 1 || p->active_interval_s < 1 || p->min_distance_m < 0)
		return -EINVAL;
	t->p = *p;
	return 0;
}

void track_close(struct track *t)
{
	if (!t)
		return;
	memset(t, 0, sizeof(*t)); /* positions are personal */
	free(t);
}

void track_set_active(struct track *t, bool active)
{
	t->active = active;
}

bool track_active(const struct track *t)
{
	return t->active;
}

static void to_store(const struct hal_gps_fix *f, struct store_fix *out)
{
	memset(out, 0, sizeof(*out));
	out->t_ms = f->t_ms;
	out->lat_e7 = f->lat_e7;
	out->lon_e7 = f->lon_e7;
	out->accuracy_dm = f->accuracy_dm;
	out->speed_cm_s = f->speed_cm_s;
	out->heading_cdeg = f->heading_cdeg;
	out->mode = f->mode;
}

static bool wants(const struct track *t, const struct hal_gps_fix *fix)
{
	if (!t->have_rec)
		return true;
	if (fix->t_ms <= t->rec.t_ms)
		return false; /* never backwards, never twice */
	if (!t->have_last || fix->t_ms - t->last.t_ms >= TRACK_GAP_MS)
		return true; /* the first fix after a gap */
	int64_t interval_ms =
	    (int64_t)(t->active ? t->p.active_interval_s : t->p.interval_s) * 1000;
	if (fix->t_ms - t->rec.t_ms < interval_ms)
		return false;
	if (t->p.min_distance_m == 0)
		return true;
	double d = hal_gps_distance_m(t->rec.lat_e7, t->rec.lon_e7, fix->lat_e7, fix->lon_e7);
	return d >= t->p.min_distance_m;
}

int track_offer(struct track *t, const struct hal_gps_fix *fix, struct store_fix *out)
{
	bool rec = wants(t, fix);
	t->offered++;
	t->last = *fix;
	t->have_last = true;
	t->gps_suspect = false;
	if (!rec)
		return 0;
	t->rec = *fix;
	t->have_rec = true;
	t->recorded++;
	if (out)
		to_store(fix, out);
	return 1;
}

int track_last_fix(const struct track *t, struct hal_gps_fix *out)
{
	if (!t->have_last)
		return -ENOENT;
	*out = t->last;
	return 0;
}

uint64_t track_offered(const struct track *t)
{
	return t->offered;
}

uint64_t track_recorded(const struct track *t)
{
	return t->recorded;
}

#define RAD (M_PI / 180.0)

void track_distance_bearing(int32_t lat1_e7, int32_t lon1_e7, int32_t lat2_e7, int32_t lon2_e7,
                            double *dist_m, int *bearing_deg)
{
	if (dist_m)
		*dist_m = hal_gps_distance_m(lat1_e7, lon1_e7, lat2_e7, lon2_e7);
	if (bearing_deg) {
		double la1 = lat1_e7 * 1e-7 * RAD, la2 = lat2_e7 * 1e-7 * RAD;
		double dlo = (lon2_e7 - (double)lon1_e7) * 1e-7 * RAD;
		double y = sin(dlo) * cos(la2);
		double x = cos(la1) * sin(la2) - sin(la1) * cos(la2) * cos(dlo);
		double b = atan2(y, x) / RAD; /* -180..180 */
		long deg = lround(b);
		deg = ((deg % 360) + 360) % 360;
		*bearing_deg = (int)deg;
	}
}

int track_to(const struct track *t, int32_t lat_e7, int32_t lon_e7, double *dist_m,
             int *bearing_deg)
{
	if (lat_e7 < -900000000 || lat_e7 > 900000000 || lon_e7 < -1800000000 ||
	    lon_e7 > 1800000000)
		return -EINVAL;
	if (!t->have_last)
		return -ENOENT;
	track_distance_bearing(t->last.lat_e7, t->last.lon_e7, lat_e7, lon_e7, dist_m, bearing_deg);
	return 0;
}

const char *track_clock_str(enum track_clock c)
{
	switch (c) {
	case TRACK_CLOCK_GPS:
		return "gps";
	case TRACK_CLOCK_SYSTEM:
		return "system";
	case TRACK_CLOCK_UNSYNCED:
		break;
	}
	return "unsynced";
}

enum track_clock track_clock_decide(bool have_fix, int64_t gps_ms, int64_t sys_ms,
                                    int64_t fix_age_ms, bool ntp_synced)
{
	if (have_fix && fix_age_ms >= 0 && fix_age_ms <= TRACK_CLOCK_FRESH_MS) {
		int64_t off = gps_ms - sys_ms;
		if (off >= -TRACK_CLOCK_AGREE_MS && off <= TRACK_CLOCK_AGREE_MS)
			return TRACK_CLOCK_GPS;
	}
	return ntp_synced ? TRACK_CLOCK_SYSTEM : TRACK_CLOCK_UNSYNCED;
}

bool track_ntp_synced(void)
{
	struct timex tx;
	memset(&tx, 0, sizeof(tx)); /* modes 0: read only, no privilege needed */
	int rc = ntp_adjtime(&tx);
	if (rc < 0 || rc == TIME_ERROR)
		return false;
	return !(tx.status & STA_UNSYNC);
}

static enum track_clock state_at(const struct track *t, int64_t mono_ms, bool ntp_synced)
{
	return track_clock_decide(t->have_last && !t->gps_suspect, t->last.t_ms, t->last.sys_ms,
	                          mono_ms - t->last.mono_ms, ntp_synced);
}

enum track_clock track_clock_state(const struct track *t)
{
	return state_at(t, loop_now_ms(), track_ntp_synced());
}

enum track_clock track_clock_state_at(const struct track *t, int64_t mono_ms, bool ntp_synced)
{
	return state_at(t, mono_ms, ntp_synced);
}

void track_gps_time_suspect(struct track *t)
{
	t->gps_suspect = true;
}

int64_t track_event_now_at(struct track *t, int64_t realtime_ms, int64_t mono_ms, bool ntp_synced)
{
	int64_t now = realtime_ms;
	if (t->have_last && state_at(t, mono_ms, ntp_synced) == TRACK_CLOCK_UNSYNCED &&
	    mono_ms >= t->last.mono_ms)
		now = t->last.t_ms + (mono_ms - t->last.mono_ms);
	if (now < t->last_event_ms)
		now = t->last_event_ms;
	t->last_event_ms = now;
	return now;
}

int64_t track_event_now(struct track *t)
{
	return track_event_now_at(t, loop_wall_ms(), loop_now_ms(), track_ntp_synced());
}
