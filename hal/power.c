/* Power state and policy over any backend (power.h). */
#include "hal/power.h"

#include "agent/loop.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hal_power {
	const struct hal_power_ops *ops;
	void *priv;
	struct loop *loop;
	struct loop_timer *t;
	struct loop_timer *settle_t; /* armed while a kicked reading is pending */
	int64_t first_kick;          /* when the pending reading was first asked for */
	uint64_t reads, kicks;
	int poll_ms;
	int poll_slack;
	hal_power_change_fn on_change;
	void *arg;
	struct hal_power_state st;
};

static const struct hal_power_ops *const backends[] = {
    &hal_power_sysfs_ops,
    &hal_power_none_ops,
};

const char *hal_power_source_str(enum hal_power_source s)
{
	switch (s) {
	case HAL_POWER_VEHICLE:
		return "vehicle";
	case HAL_POWER_AC:
		return "ac";
	case HAL_POWER_BATTERY:
		return "battery";
	case HAL_POWER_UNKNOWN:
		break;
	}
	return "unknown";
}

enum hal_power_source hal_power_decide(const struct hal_power_raw *r)
{
	if (r->ignition == 1)
		return HAL_POWER_VEHICLE;
	if (r->mains == 1)
		return HAL_POWER_AC;
	if (r->ignition == 0 || r->battery == 1)
		return HAL_POWER_BATTERY;
	return HAL_POWER_UNKNOWN;
}

int hal_power_gps_interval(const struct hal_power_state *st, int interval_s, int battery_interval_s)
{
	if (st->source == HAL_POWER_BATTERY && battery_interval_s > interval_s)
		return battery_interval_s;
	return interval_s;
}

int hal_power_refresh(struct hal_power *pw)
{
	struct hal_power_state n;
	memset(&n, 0, sizeof(n));
	n.raw = (struct hal_power_raw){-1, -1, 0, -1, -1};
	pw->reads++;
	pw->ops->read(pw->priv, &n.raw);
	/* clamp what a backend (a driver, a fake) may get wrong */
	if (n.raw.battery_pct < -1 || n.raw.battery_pct > 100 || !n.raw.battery)
		n.raw.battery_pct = -1;
	n.source = hal_power_decide(&n.raw);
	if (memcmp(&n, &pw->st, sizeof(n)) == 0)
		return 0;
	pw->st = n;
	if (pw->on_change)
		pw->on_change(pw->arg, &pw->st);
	return 1;
}

static int64_t poll_timer(struct loop *l, void *arg)
{
	(void)l;
	struct hal_power *pw = arg;
	hal_power_refresh(pw);
	/* in phase: the next reading is due a period after this one was */
	int64_t next = loop_timer_due(pw->t) + pw->poll_ms - loop_now_ms();
	return next >= 0 ? next : pw->poll_ms - pw->poll_slack;
}

static int64_t settle_timer(struct loop *l, void *arg)
{
	(void)l;
	struct hal_power *pw = arg;
	pw->settle_t = NULL; /* ended by the -1 below; a kick from on_change arms a new one */
	hal_power_refresh(pw);
	return -1;
}

void hal_power_kick(struct hal_power *pw)
{
	int64_t now = loop_now_ms();
	pw->kicks++;
	if (!pw->settle_t) {
		pw->first_kick = now;
		if (!(pw->settle_t =
		          loop_timer_add(pw->loop, HAL_POWER_SETTLE_MS, settle_timer, pw)))
			hal_power_refresh(pw); /* no memory for a timer: read now, not never */
		return;
	}
	/* Pushed back by each kick (a bouncing line reads once it is quiet),
	 * but a line that never stops chattering is still read within
	 * HAL_POWER_SETTLE_MAX_MS. */
	int64_t due = now + HAL_POWER_SETTLE_MS;
	if (due > pw->first_kick + HAL_POWER_SETTLE_MAX_MS)
		due = pw->first_kick + HAL_POWER_SETTLE_MAX_MS;
	loop_timer_set(pw->loop, pw->settle_t, due > now ? due - now : 0);
}

struct loop *hal_power_loop(const struct hal_power *pw)
{
	return pw->loop;
}

void hal_power_stats(const struct hal_power *pw, struct hal_power_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->reads = pw->reads;
	st->kicks = pw->kicks;
	if (pw->ops->stats)
		pw->ops->stats(pw->priv, st);
}

int hal_power_open(const char *name, const struct hal_power_params *p, struct hal_power **out,
                   char *err, size_t errlen)
{
	const struct hal_power_ops *ops = NULL;
	*out = NULL;
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (strcmp(backends[i]->name, name) == 0)
			ops = backends[i];
	if (!ops) {
		if (err)
			snprintf(err, errlen, "unknown power backend '%.32s'", name);
		return -ENOENT;
	}
	if (!p->loop || p->poll_ms < 0) {
		if (err)
			snprintf(err, errlen, "power: bad parameters");
		return -EINVAL;
	}
	struct hal_power *pw = calloc(1, sizeof(*pw));
	if (!pw)
		return -ENOMEM;
	pw->ops = ops;
	pw->loop = p->loop;
	pw->poll_ms = p->poll_ms ? p->poll_ms : 60000;
	int rc = ops->open(p, pw, &pw->priv, err, errlen);
	if (rc < 0) {
		free(pw);
		return rc;
	}
	hal_power_refresh(pw); /* the first reading, before anyone listens */
	pw->on_change = p->on_change;
	pw->arg = p->arg;
	/* The backstop: a reading every poll_ms at the latest, taken when the
	 * loop is awake anyway (a GPS report, a server's answer) if one comes
	 * in the second half of the period. Changes that announce themselves
	 * (edges, uevents) are read at once through hal_power_kick; this only
	 * catches what does not (a fuel gauge without uevents, a "file:"
	 * ignition, a line to request again). */
	pw->poll_slack = pw->poll_ms / 2;
	if (!(pw->t = loop_timer_add(pw->loop, pw->poll_ms - pw->poll_slack, poll_timer, pw))) {
		ops->close(pw->priv);
		free(pw);
		return -ENOMEM;
	}
	loop_timer_set_slack(pw->t, pw->poll_slack);
	*out = pw;
	return 0;
}

void hal_power_close(struct hal_power *pw)
{
	if (!pw)
		return;
	loop_timer_cancel(pw->loop, pw->t);
	loop_timer_cancel(pw->loop, pw->settle_t);
	pw->ops->close(pw->priv);
	free(pw);
}

const char *hal_power_name(const struct hal_power *pw)
{
	return pw->ops->name;
}

void hal_power_get(const struct hal_power *pw, struct hal_power_state *st)
{
	*st = pw->st;
}
