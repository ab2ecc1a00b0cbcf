/* The alert policy (alert.h) over any backend. */
#include "hal/alert.h"

#include "agent/loop.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hal_alert {
	const struct hal_alert_ops *ops;
	void *priv;
	struct loop *loop;
	int duration_ms, sound_ms;
	struct loop_timer *led_t, *sound_t;
	struct hal_alert_stats st;
};

static const struct hal_alert_ops *const backends[] = {
    &hal_alert_sysfs_ops,
    &hal_alert_none_ops,
};

int hal_alert_open_ops(const struct hal_alert_ops *ops, const struct hal_alert_params *p,
                       struct hal_alert **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!p->loop || p->duration_ms < 0 || p->sound_ms < 0) {
		if (err)
			snprintf(err, errlen, "alert: bad parameters");
		return -EINVAL;
	}
	struct hal_alert *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->ops = ops;
	a->loop = p->loop;
	a->duration_ms = p->duration_ms ? p->duration_ms : 30000;
	a->sound_ms = p->sound_ms ? p->sound_ms : 3000;
	int rc = ops->open(p, &a->priv, err, errlen);
	if (rc < 0) {
		free(a);
		return rc;
	}
	*out = a;
	return 0;
}

int hal_alert_open(const char *name, const struct hal_alert_params *p, struct hal_alert **out,
                   char *err, size_t errlen)
{
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (strcmp(backends[i]->name, name) == 0)
			return hal_alert_open_ops(backends[i], p, out, err, errlen);
	*out = NULL;
	if (err)
		snprintf(err, errlen, "unknown alert backend '%.32s'", name);
	return -ENOENT;
}

static void set_led(struct hal_alert *a, int on)
{
	if (!a->ops->led)
		return;
	int rc = a->ops->led(a->priv, on);
	if (rc < 0 && on)
		a->st.led_missing++;
	a->st.led_on = rc == 0 && on;
}

static void set_sounder(struct hal_alert *a, int on)
{
	if (!a->ops->sounder)
		return;
	int rc = a->ops->sounder(a->priv, on);
	if (rc < 0 && on) {
		a->st.sounder_missing++;
		a->st.sounder_error = rc;
	}
	if (rc == 0 && on) {
		a->st.sounded++;
		a->st.sounder_error = 0;
	}
	a->st.sounding = rc == 0 && on;
}

static int64_t led_off(struct loop *l, void *arg)
{
	(void)l;
	struct hal_alert *a = arg;
	a->led_t = NULL;
	set_led(a, 0);
	return -1;
}

static int64_t sound_off(struct loop *l, void *arg)
{
	(void)l;
	struct hal_alert *a = arg;
	a->sound_t = NULL;
	set_sounder(a, 0);
	return -1;
}

static void arm(struct hal_alert *a, struct loop_timer **t, int64_t ms, loop_timer_fn fn)
{
	if (*t)
		loop_timer_set(a->loop, *t, ms);
	else
		*t = loop_timer_add(a->loop, ms, fn, a);
}

void hal_alert_incident(struct hal_alert *a, int silent)
{
	if (!a)
		return;
	a->st.alerts++;
	if (a->ops->wake && a->ops->wake(a->priv) < 0)
		a->st.wake_missing++;
	set_led(a, 1);
	arm(a, &a->led_t, a->duration_ms, led_off);
	if (silent) {
		/* never a sound for a silent incident, nor one still going */
		a->st.silent++;
		loop_timer_cancel(a->loop, a->sound_t);
		a->sound_t = NULL;
		if (a->st.sounding)
			set_sounder(a, 0);
		return;
	}
	set_sounder(a, 1);
	arm(a, &a->sound_t, a->sound_ms, sound_off);
}

void hal_alert_stop(struct hal_alert *a)
{
	if (!a)
		return;
	loop_timer_cancel(a->loop, a->led_t);
	loop_timer_cancel(a->loop, a->sound_t);
	a->led_t = a->sound_t = NULL;
	set_sounder(a, 0);
	set_led(a, 0);
}

void hal_alert_close(struct hal_alert *a)
{
	if (!a)
		return;
	hal_alert_stop(a);
	a->ops->close(a->priv);
	free(a);
}

const char *hal_alert_name(const struct hal_alert *a)
{
	return a->ops->name;
}

void hal_alert_stats(const struct hal_alert *a, struct hal_alert_stats *st)
{
	*st = a->st;
}
