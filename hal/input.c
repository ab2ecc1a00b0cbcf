/* The panic detector and the module around the input backends (input.h). */
#include "hal/input.h"

#include "agent/log.h"
#include "agent/loop.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *hal_panic_str(enum hal_panic_kind k)
{
	return k == HAL_PANIC_LONG ? "long" : k == HAL_PANIC_DOUBLE ? "double" : "none";
}

void hal_panic_init(struct hal_panic *p, int long_ms, int double_ms)
{
	memset(p, 0, sizeof(*p));
	p->long_ms = long_ms;
	p->double_ms = double_ms;
	p->last_release_at = INT64_MIN / 2;
}

enum hal_panic_kind hal_panic_key(struct hal_panic *p, int down, int64_t now_ms)
{
	if (!down) {
		if (p->down)
			p->last_release_at = now_ms;
		p->down = 0;
		return HAL_PANIC_NONE;
	}
	if (p->down)
		return HAL_PANIC_NONE; /* a repeat of a held key */
	if (now_ms - p->last_release_at < HAL_INPUT_DEBOUNCE_MS) {
		/* contact bounce: the same press continues */
		p->down = 1;
		return HAL_PANIC_NONE;
	}
	p->down = 1;
	p->fired = 0;
	p->down_at = now_ms;
	p->presses++;
	if (p->last_press_at && now_ms - p->last_press_at <= p->double_ms) {
		p->last_press_at = 0;
		p->fired = 1; /* holding on after a double press is not a second panic */
		return HAL_PANIC_DOUBLE;
	}
	p->last_press_at = now_ms;
	return HAL_PANIC_NONE;
}

enum hal_panic_kind hal_panic_tick(struct hal_panic *p, int64_t now_ms, int64_t *next_ms)
{
	if (next_ms)
		*next_ms = -1;
	if (!p->down || p->fired)
		return HAL_PANIC_NONE;
	if (now_ms - p->down_at >= p->long_ms) {
		p->fired = 1;
		p->last_press_at = 0;
		return HAL_PANIC_LONG;
	}
	if (next_ms)
		*next_ms = p->down_at + p->long_ms;
	return HAL_PANIC_NONE;
}

struct hal_input {
	const struct hal_input_ops *ops;
	void *priv;
	struct loop *loop;
	int rescan_ms;
	struct hal_panic det;
	struct loop_timer *long_t, *rescan_t;
	hal_panic_fn on_panic;
	void *arg;
	struct hal_input_stats st;
};

static const struct hal_input_ops *const backends[] = {
    &hal_input_evdev_ops,
    &hal_input_gpio_ops,
    &hal_input_none_ops,
};

static void panic(struct hal_input *in, enum hal_panic_kind k)
{
	in->st.panics++;
	if (in->on_panic)
		in->on_panic(in->arg, k);
}

static int64_t long_timer(struct loop *l, void *arg)
{
	(void)l;
	struct hal_input *in = arg;
	int64_t next;
	enum hal_panic_kind k = hal_panic_tick(&in->det, loop_now_ms(), &next);
	if (k != HAL_PANIC_NONE)
		panic(in, k);
	if (next < 0) {
		in->long_t = NULL;
		return -1;
	}
	int64_t d = next - loop_now_ms();
	return d > 0 ? d : 0;
}

void hal_input_key(struct hal_input *in, int down)
{
	int64_t now = loop_now_ms();
	enum hal_panic_kind k = hal_panic_key(&in->det, down, now);
	if (k != HAL_PANIC_NONE)
		panic(in, k);
	if (in->det.down && !in->det.fired) {
		/* due at down_at + long_ms: a bounce continues the press it interrupted */
		int64_t d = in->det.down_at + in->det.long_ms - now;
		if (d < 0)
			d = 0;
		if (in->long_t)
			loop_timer_set(in->loop, in->long_t, d);
		else
			in->long_t = loop_timer_add(in->loop, d, long_timer, in);
	} else if (in->long_t) {
		loop_timer_cancel(in->loop, in->long_t);
		in->long_t = NULL;
	}
}

static int64_t rescan_timer(struct loop *l, void *arg)
{
	(void)l;
	struct hal_input *in = arg;
	int rc = in->ops->attach(in->priv);
	if (rc < 0) {
		in->st.error = rc;
		return in->rescan_ms;
	}
	in->st.attached = 1;
	in->st.attaches++;
	in->st.error = 0;
	in->rescan_t = NULL;
	if (in->st.losses)
		log_info("input: the panic button (%s) is back", in->ops->name);
	return -1;
}

void hal_input_lost(struct hal_input *in)
{
	if (!in->st.attached)
		return;
	in->ops->detach(in->priv);
	in->st.attached = 0;
	in->st.losses++;
	/* once per loss: the rescans that follow are silent */
	log_warnx("input: the panic button (%s) went away; looking for it every %d ms",
	          in->ops->name, in->rescan_ms);
	/* a key held when the device went away is let go: no phantom long press */
	if (in->det.down)
		hal_input_key(in, 0);
	if (!in->rescan_t)
		in->rescan_t = loop_timer_add(in->loop, in->rescan_ms, rescan_timer, in);
}

struct loop *hal_input_loop(const struct hal_input *in)
{
	return in->loop;
}

int hal_input_open(const char *name, const struct hal_input_params *p, struct hal_input **out,
                   char *err, size_t errlen)
{
	const struct hal_input_ops *ops = NULL;
	*out = NULL;
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (strcmp(backends[i]->name, name) == 0)
			ops = backends[i];
	if (!ops) {
		if (err)
			snprintf(err, errlen, "unknown input backend '%.32s'", name);
		return -ENOENT;
	}
	if (!p->loop || p->long_press_ms < 0 || p->double_press_ms < 0 || p->rescan_ms < 0) {
		if (err)
			snprintf(err, errlen, "input: bad parameters");
		return -EINVAL;
	}
	struct hal_input *in = calloc(1, sizeof(*in));
	if (!in)
		return -ENOMEM;
	in->ops = ops;
	in->loop = p->loop;
	in->rescan_ms = p->rescan_ms ? p->rescan_ms : 2000;
	in->on_panic = p->on_panic;
	in->arg = p->arg;
	hal_panic_init(&in->det, p->long_press_ms ? p->long_press_ms : 2000,
	               p->double_press_ms ? p->double_press_ms : 600);
	int rc = ops->open(p, in, &in->priv, err, errlen);
	if (rc < 0) {
		free(in);
		return rc;
	}
	if (ops->attach && (rc = ops->attach(in->priv)) == 0) {
		in->st.attached = 1;
		in->st.attaches++;
	} else if (ops->attach) {
		in->st.error = rc;
		if (!(in->rescan_t = loop_timer_add(in->loop, in->rescan_ms, rescan_timer, in))) {
			ops->close(in->priv);
			free(in);
			return -ENOMEM;
		}
	}
	*out = in;
	return 0;
}

void hal_input_close(struct hal_input *in)
{
	if (!in)
		return;
	loop_timer_cancel(in->loop, in->long_t);
	loop_timer_cancel(in->loop, in->rescan_t);
	if (in->st.attached && in->ops->detach)
		in->ops->detach(in->priv);
	in->ops->close(in->priv);
	free(in);
}

const char *hal_input_name(const struct hal_input *in)
{
	return in->ops->name;
}

void hal_input_stats(const struct hal_input *in, struct hal_input_stats *st)
{
	*st = in->st;
	st->presses = in->det.presses;
}
