/* GPS source registry and the plausibility filter shared by the backends. */
#include "hal/gps.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hal_gps {
	const struct hal_gps_ops *ops;
	void *priv;
};

static const struct hal_gps_ops *const backends[] = {
    &hal_gps_gpsd_ops,
    &hal_gps_none_ops,
};

int hal_gps_open(const char *name, const struct hal_gps_params *p, struct hal_gps **out, char *err,
                 size_t errlen)
{
	*out = NULL;
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
		if (strcmp(backends[i]->name, name) != 0)
			continue;
		struct hal_gps *g = calloc(1, sizeof(*g));
		if (!g)
			return -ENOMEM;
		g->ops = backends[i];
		int rc = g->ops->open(p, &g->priv, err, errlen);
		if (rc < 0) {
			free(g);
			return rc;
		}
		*out = g;
		return 0;
	}
	if (err)
		snprintf(err, errlen, "unknown gps backend '%.32s'", name);
	return -ENOENT;
}

void hal_gps_close(struct hal_gps *g)
{
	if (!g)
		return;
	g->ops->close(g->priv);
	free(g);
}

const char *hal_gps_name(const struct hal_gps *g)
{
	return g->ops->name;
}

void hal_gps_stats(const struct hal_gps *g, struct hal_gps_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (g->ops->stats)
		g->ops->stats(g->priv, st);
}

/* ---- filter ---- */

#define EARTH_RADIUS_M 6371008.8 /* mean radius (IUGG) */
#define RAD            (M_PI / 180.0)

double hal_gps_distance_m(int32_t lat1_e7, int32_t lon1_e7, int32_t lat2_e7, int32_t lon2_e7)
{
	double la1 = lat1_e7 * 1e-7 * RAD, la2 = lat2_e7 * 1e-7 * RAD;
	double dla = la2 - la1, dlo = (lon2_e7 - (double)lon1_e7) * 1e-7 * RAD;
	double a = sin(dla / 2) * sin(dla / 2) + cos(la1) * cos(la2) * sin(dlo / 2) * sin(dlo / 2);
	if (a > 1)
		a = 1;
	return 2 * EARTH_RADIUS_M * asin(sqrt(a));
}

void hal_gps_filter_reset(struct hal_gps_filter *f)
{
	memset(f, 0, sizeof(*f));
}

const char *hal_gps_reject_str(enum hal_gps_reject r)
{
	switch (r) {
	case HAL_GPS_OK:
		return "ok";
	case HAL_GPS_REJECT_MODE:
		return "no fix";
	case HAL_GPS_REJECT_NAN:
		return "missing time or position";
	case HAL_GPS_REJECT_RANGE:
		return "position out of range";
	case HAL_GPS_REJECT_TIME:
		return "implausible date";
	case HAL_GPS_REJECT_TIME_JUMP:
		return "time jump";
	case HAL_GPS_REJECT_SPEED:
		return "implausible speed";
	case HAL_GPS_REJECT_UNCONFIRMED:
		return "first fix, waiting for a second";
	}
	return "?";
}

/* A value that may be absent, scaled to an int32 field; -1 when absent or
 * outside [0, max]. */
static int32_t opt_scaled(double v, double scale, double max)
{
	if (!isfinite(v) || v < 0)
		return -1;
	double s = v * scale;
	if (s > max)
		return -1;
	return (int32_t)lround(s);
}

/* Is fx consistent with an earlier fix (t_ms, mono_ms, lat, lon)? */
static enum hal_gps_reject against(int64_t t_ms, int64_t mono_ms, int32_t lat_e7, int32_t lon_e7,
                                   const struct hal_gps_fix *fx)
{
	int64_t dt = fx->t_ms - t_ms;
	int64_t dmono = fx->mono_ms - mono_ms;
	if (dt <= 0 || dt > dmono + HAL_GPS_TIME_SLACK_MS)
		return HAL_GPS_REJECT_TIME_JUMP;
	double d = hal_gps_distance_m(lat_e7, lon_e7, fx->lat_e7, fx->lon_e7);
	double need = (d - HAL_GPS_JUMP_ALLOWANCE_M) / ((double)dt / 1000.0);
	if (need > HAL_GPS_MAX_SPEED_MS)
		return HAL_GPS_REJECT_SPEED;
	return HAL_GPS_OK;
}

/* A receiver whose clock leaps (an hour ahead, a week rollover) for longer
 * than HAL_GPS_REANCHOR reports must not win over the anchor: its fixes
 * would be stored with future times and then block every true fix until
 * real time caught up. When the system clock is plausible it arbitrates: the
 * anchor's time carried forward by the monotonic clock is kept when it is
 * nearer the system clock than the leaping report. With an implausible
 * system clock there is no referee and the streak rule alone decides. */
static int anchor_time_closer(const struct hal_gps_filter *f, const struct hal_gps_fix *fx,
                              int64_t sys_ms)
{
	if (sys_ms < (int64_t)(HAL_GPS_MIN_TIME_S * 1000) ||
	    sys_ms >= (int64_t)(HAL_GPS_MAX_TIME_S * 1000))
		return 0;
	int64_t projected = f->anchor_t_ms + (fx->mono_ms - f->anchor_mono_ms);
	int64_t off_new = fx->t_ms > sys_ms ? fx->t_ms - sys_ms : sys_ms - fx->t_ms;
	int64_t off_anchor = projected > sys_ms ? projected - sys_ms : sys_ms - projected;
	return off_new > off_anchor + HAL_GPS_TIME_SLACK_MS;
}

enum hal_gps_reject hal_gps_filter_check(struct hal_gps_filter *f, const struct hal_gps_raw *raw,
                                         int64_t mono_ms, int64_t sys_ms, struct hal_gps_fix *out)
{
	if (raw->mode != 2 && raw->mode != 3)
		return HAL_GPS_REJECT_MODE;
	if (!isfinite(raw->time_s) || raw->time_s == 0 || !isfinite(raw->lat) ||
	    !isfinite(raw->lon))
		return HAL_GPS_REJECT_NAN;
	if (fabs(raw->lat) > 90.0 || fabs(raw->lon) > 180.0 ||
	    (fabs(raw->lat) < 1e-7 && fabs(raw->lon) < 1e-7))
		return HAL_GPS_REJECT_RANGE;
	if (raw->time_s < HAL_GPS_MIN_TIME_S || raw->time_s >= HAL_GPS_MAX_TIME_S)
		return HAL_GPS_REJECT_TIME;
	if (isfinite(raw->speed) && raw->speed > HAL_GPS_MAX_SPEED_MS)
		return HAL_GPS_REJECT_SPEED;

	struct hal_gps_fix fx = {0};
	fx.t_ms = (int64_t)llround(raw->time_s * 1000.0);
	fx.sys_ms = sys_ms;
	fx.mono_ms = mono_ms;
	fx.lat_e7 = (int32_t)lround(raw->lat * 1e7);
	fx.lon_e7 = (int32_t)lround(raw->lon * 1e7);
	double acc = raw->eph;
	if (!isfinite(acc) && isfinite(raw->epx) && isfinite(raw->epy))
		acc = fmax(raw->epx, raw->epy);
	fx.accuracy_dm = opt_scaled(acc, 10.0, 1e6); /* beyond 100 km: unknown */
	fx.speed_cm_s = opt_scaled(raw->speed, 100.0, HAL_GPS_MAX_SPEED_MS * 100.0);
	fx.heading_cdeg = -1;
	if (isfinite(raw->track) && raw->track >= 0 && raw->track <= 360.0) {
		long c = lround(raw->track * 100.0);
		fx.heading_cdeg = (int32_t)(c % 36000);
	}
	fx.mode = (uint8_t)raw->mode;

	if (f->have_anchor) {
		enum hal_gps_reject r = against(f->anchor_t_ms, f->anchor_mono_ms, f->anchor_lat_e7,
		                                f->anchor_lon_e7, &fx);
		if (r != HAL_GPS_OK) {
			if (r == HAL_GPS_REJECT_TIME_JUMP && anchor_time_closer(f, &fx, sys_ms))
				return r; /* the receiver's clock is off, not the anchor */
			if (++f->streak >= HAL_GPS_REANCHOR) {
				/* Consistently at odds: the anchor was the outlier. */
				f->have_anchor = 0;
				f->have_candidate = 1;
				f->candidate = fx;
			}
			return r;
		}
	} else if (f->have_candidate) {
		enum hal_gps_reject r = against(f->candidate.t_ms, f->candidate.mono_ms,
		                                f->candidate.lat_e7, f->candidate.lon_e7, &fx);
		if (r != HAL_GPS_OK) {
			f->candidate = fx;
			return r;
		}
	} else {
		/* A first fix is only believed when the next one agrees with it. */
		f->have_candidate = 1;
		f->candidate = fx;
		return HAL_GPS_REJECT_UNCONFIRMED;
	}
	f->have_anchor = 1;
	f->have_candidate = 0;
	f->streak = 0;
	f->anchor_t_ms = fx.t_ms;
	f->anchor_mono_ms = mono_ms;
	f->anchor_lat_e7 = fx.lat_e7;
	f->anchor_lon_e7 = fx.lon_e7;
	*out = fx;
	return HAL_GPS_OK;
}
