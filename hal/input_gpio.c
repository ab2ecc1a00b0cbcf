/* The "gpio" input backend: a panic button wired to a GPIO line, read as
 * edge events (libgpiod) on the loop. Rising edge = pressed, unless
 * active_low. A read error (the chip went away) hands the line back to the
 * module, which requests it again every rescan_ms. The "none" backend is
 * here too: no button. */
#include "hal/input.h"

#include "agent/loop.h"
#include "hal/gpio.h"
#include "hal/sysfs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gpin {
	struct hal_input *in;
	char root[HAL_SYSFS_PATH_MAX];
	char spec[80];
	int active_low;
	struct hal_gpio *g;
};

static void on_edge(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)l;
	(void)fd;
	(void)events;
	struct gpin *s = arg;
	for (int i = 0; i < 16 && s->g; i++) {
		int rising;
		int rc = hal_gpio_read_edge(s->g, &rising);
		if (rc == -EAGAIN)
			return;
		if (rc < 0) {
			hal_input_lost(s->in);
			return;
		}
		hal_input_key(s->in, s->active_low ? !rising : rising);
	}
}

static int gpin_open(const struct hal_input_params *p, struct hal_input *in, void **priv, char *err,
                     size_t errlen)
{
	char chip[HAL_GPIO_CHIP_MAX];
	unsigned off;
	struct gpin *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	int rc = hal_sysfs_root(p->root, s->root, sizeof(s->root));
	if (rc == 0)
		rc = hal_gpio_parse(p->device, chip, &off);
	if (rc < 0) {
		if (err)
			snprintf(err, errlen, "input gpio: the device must be CHIP:OFFSET");
		free(s);
		return rc;
	}
	snprintf(s->spec, sizeof(s->spec), "%s", p->device);
	s->in = in;
	s->active_low = !!p->active_low;
	*priv = s;
	return 0;
}

static void gpin_detach(void *priv)
{
	struct gpin *s = priv;
	if (!s->g)
		return;
	loop_fd_del(hal_input_loop(s->in), hal_gpio_fd(s->g));
	hal_gpio_close(s->g);
	s->g = NULL;
}

static int gpin_attach(void *priv)
{
	struct gpin *s = priv;
	gpin_detach(s);
	int rc = hal_gpio_open(s->root, s->spec, HAL_GPIO_EDGES, "essd", &s->g);
	if (rc < 0)
		return rc;
	if ((rc = loop_fd_add(hal_input_loop(s->in), hal_gpio_fd(s->g), LOOP_READ, on_edge, s)) <
	    0) {
		hal_gpio_close(s->g);
		s->g = NULL;
	}
	return rc;
}

static void gpin_close(void *priv)
{
	gpin_detach(priv);
	free(priv);
}

const struct hal_input_ops hal_input_gpio_ops = {
    .name = "gpio",
    .desc = "a panic button on a GPIO line (edge events)",
    .open = gpin_open,
    .close = gpin_close,
    .attach = gpin_attach,
    .detach = gpin_detach,
};

static int none_open(const struct hal_input_params *p, struct hal_input *in, void **priv, char *err,
                     size_t errlen)
{
	(void)p;
	(void)in;
	(void)err;
	(void)errlen;
	*priv = NULL;
	return 0;
}

static void none_close(void *priv)
{
	(void)priv;
}

const struct hal_input_ops hal_input_none_ops = {
    .name = "none",
    .desc = "no panic button",
    .open = none_open,
    .close = none_close,
};
