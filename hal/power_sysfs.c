/* The "sysfs" power backend: <root>/sys/class/power_supply/NAME/{type,
 * present,online,capacity,status} and an ignition sense that is a value
 * file under root ("file:sys/class/gpio/gpio17/value", or any attribute
 * holding 0/1) or a GPIO line ("gpio:CHIP:OFFSET", libgpiod).
 *
 * The supply directory is listed afresh on each read: a battery pulled out
 * of a handheld or a dock that comes and goes is seen at the next reading.
 *
 * Readings come on events where there are any: a GPIO ignition is
 * requested for both edges and its fd put on the loop; on the real root a
 * kernel uevent socket (hal/uevent.h) reports power_supply changes. Each
 * event kicks the module (hal_power_kick), which reads after a short
 * settle time. A "file:" ignition has no events: it is seen at the
 * backstop poll only, which is why a GPIO line is preferred. */
#include "hal/power.h"

#include "agent/log.h"
#include "agent/loop.h"
#include "hal/gpio.h"
#include "hal/sysfs.h"
#include "hal/uevent.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sysfs_power {
	char root[HAL_SYSFS_PATH_MAX];
	char ign_file[HAL_SYSFS_PATH_MAX]; /* full path */
	char ign_gpio[80];
	int active_low;
	struct hal_power *pw;
	struct hal_gpio *gpio;
	int gpio_fd; /* on the loop while >= 0 (an edge-capable request) */
	struct hal_uevent_mon *uev;
};

static void uevent(void *arg, const struct hal_uevent *ev)
{
	(void)ev; /* which supply changed does not matter: all are read */
	struct sysfs_power *s = arg;
	hal_power_kick(s->pw);
}

static void uevent_overrun(void *arg)
{
	struct sysfs_power *s = arg;
	hal_power_kick(s->pw);
}

static void gpio_drop(struct sysfs_power *s)
{
	if (s->gpio_fd >= 0)
		loop_fd_del(hal_power_loop(s->pw), s->gpio_fd);
	s->gpio_fd = -1;
	hal_gpio_close(s->gpio);
	s->gpio = NULL;
}

static void on_edge(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)l;
	(void)fd;
	(void)events;
	struct sysfs_power *s = arg;
	/* Only that the line moved matters: the reading after the settle time
	 * takes its level then, which is the truth once the bouncing stopped. */
	int edges = 0;
	for (int i = 0; i < 64 && s->gpio; i++) {
		int rising;
		int rc = hal_gpio_read_edge(s->gpio, &rising);
		if (rc == -EAGAIN)
			break;
		if (rc < 0) {
			/* the chip went away: off the loop; the reading (now
			 * unknown) requests it again, as every later one does */
			gpio_drop(s);
		}
		edges++;
	}
	if (edges)
		hal_power_kick(s->pw);
}

static int sysfs_open(const struct hal_power_params *p, struct hal_power *pw, void **priv,
                      char *err, size_t errlen)
{
	struct sysfs_power *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->pw = pw;
	s->gpio_fd = -1;
	const char *ign = p->ignition ? p->ignition : "";
	int rc = hal_sysfs_root(p->root, s->root, sizeof(s->root));
	if (rc == 0 && !strncmp(ign, "file:", 5)) {
		/* a path under root: no "..", so a config cannot point outside */
		if (!ign[5] || strstr(ign + 5, ".."))
			rc = -EINVAL;
		else
			rc = hal_sysfs_path(s->root, ign + 5, s->ign_file, sizeof(s->ign_file));
	} else if (rc == 0 && !strncmp(ign, "gpio:", 5)) {
		char chip[HAL_GPIO_CHIP_MAX];
		unsigned off;
		rc = hal_gpio_parse(ign + 5, chip, &off);
		snprintf(s->ign_gpio, sizeof(s->ign_gpio), "%s", ign + 5);
	} else if (rc == 0 && ign[0]) {
		rc = -EINVAL;
	}
	if (rc < 0) {
		if (err)
			snprintf(
			    err, errlen,
			    "power sysfs: bad ignition (\"file:PATH\" or \"gpio:CHIP:OFFSET\")");
		free(s);
		return rc;
	}
	s->active_low = !!p->ignition_active_low;
	if (p->uevent_fd > 0 || !s->root[0]) {
		/* The kernel announces power_supply changes only for the real
		 * root; a test tree gets them through the seam or not at all. */
		struct hal_uevent_params up = {.loop = p->loop,
		                               .subsystem = "power_supply",
		                               .fd = p->uevent_fd,
		                               .on_event = uevent,
		                               .on_overrun = uevent_overrun,
		                               .arg = s};
		rc = hal_uevent_open(&up, &s->uev);
		if (rc < 0)
			log_info("power: no kernel uevents (%s); power_supply changes are seen "
			         "by the backstop poll only",
			         strerror(-rc));
	}
	*priv = s;
	return 0;
}

static void sysfs_close(void *priv)
{
	struct sysfs_power *s = priv;
	hal_uevent_close(s->uev);
	gpio_drop(s);
	free(s);
}

static void sysfs_stats(void *priv, struct hal_power_stats *st)
{
	struct sysfs_power *s = priv;
	st->ignition_events = s->gpio_fd >= 0;
	st->uevents = hal_uevent_active(s->uev);
	if (s->uev) {
		struct hal_uevent_stats us;
		hal_uevent_stats(s->uev, &us);
		st->uevents_matched = us.matched;
		st->uevents_dropped = us.dropped;
	}
}

/* Requests the ignition line, for edges where the chip can (the loop then
 * hears it move), else as a plain input read at each poll. */
static int gpio_request(struct sysfs_power *s)
{
	if (hal_gpio_open(s->root, s->ign_gpio, HAL_GPIO_EDGES, "essd", &s->gpio) == 0) {
		int fd = hal_gpio_fd(s->gpio);
		if (fd >= 0 && loop_fd_add(hal_power_loop(s->pw), fd, LOOP_READ, on_edge, s) == 0)
			s->gpio_fd = fd;
		return 0;
	}
	return hal_gpio_open(s->root, s->ign_gpio, HAL_GPIO_INPUT, "essd", &s->gpio);
}

static int ignition(struct sysfs_power *s)
{
	int v = -1;
	if (s->ign_file[0]) {
		long long x;
		if (hal_sysfs_read_int(s->ign_file, &x) == 0)
			v = x != 0;
	} else if (s->ign_gpio[0]) {
		if (!s->gpio && gpio_request(s) < 0)
			return -1;
		v = hal_gpio_get(s->gpio);
		if (v < 0) {
			gpio_drop(s); /* gone: request anew at the next reading */
			return -1;
		}
	}
	return v < 0 ? -1 : s->active_low ? !v : v;
}

struct scan {
	const char *dir;
	struct hal_power_raw *r;
};

static int attr(const char *dir, const char *dev, const char *name, char *out, size_t cap)
{
	char p[HAL_SYSFS_PATH_MAX + 160];
	int n = snprintf(p, sizeof(p), "%s/%s/%s", dir, dev, name);
	if (n < 0 || (size_t)n >= sizeof(p))
		return -ENAMETOOLONG;
	return hal_sysfs_read(p, out, cap);
}

static int one_supply(void *arg, const char *name)
{
	struct scan *sc = arg;
	struct hal_power_raw *r = sc->r;
	char type[32], v[32];
	if (!hal_sysfs_name_ok(name) || attr(sc->dir, name, "type", type, sizeof(type)) < 0)
		return 0;
	/* scope "Device": a peripheral's own battery (a mouse), not ours */
	if (attr(sc->dir, name, "scope", v, sizeof(v)) == 0 && !strcmp(v, "Device"))
		return 0;
	if (!strcmp(type, "Battery")) {
		/* "present" is optional; 0 is a removed battery pack */
		if (attr(sc->dir, name, "present", v, sizeof(v)) == 0 && !strcmp(v, "0"))
			return 0;
		if (r->battery)
			return 0; /* the first battery present is the device's */
		r->battery = 1;
		char *end;
		if (attr(sc->dir, name, "capacity", v, sizeof(v)) == 0) {
			long c = strtol(v, &end, 10);
			if (end != v && !*end && c >= 0 && c <= 100)
				r->battery_pct = (int)c;
		}
		if (attr(sc->dir, name, "status", v, sizeof(v)) == 0) {
			if (!strcmp(v, "Charging") || !strcmp(v, "Full"))
				r->charging = 1;
			else if (!strcmp(v, "Discharging") || !strcmp(v, "Not charging"))
				r->charging = 0;
		}
		return 0;
	}
	if (!strcmp(type, "Mains") || !strncmp(type, "USB", 3) || !strcmp(type, "Wireless") ||
	    !strcmp(type, "UPS")) {
		if (attr(sc->dir, name, "online", v, sizeof(v)) < 0)
			return 0;
		if (!strcmp(v, "1") || !strcmp(v, "2")) /* 2: USB "online, programmable" */
			r->mains = 1;
		else if (r->mains < 0)
			r->mains = 0;
	}
	return 0;
}

static void sysfs_read(void *priv, struct hal_power_raw *r)
{
	struct sysfs_power *s = priv;
	char dir[HAL_SYSFS_PATH_MAX];
	r->ignition = ignition(s);
	if (hal_sysfs_path(s->root, "sys/class/power_supply", dir, sizeof(dir)) < 0)
		return;
	struct scan sc = {dir, r};
	hal_sysfs_each(dir, one_supply, &sc, 64); /* missing directory: nothing known */
}

const struct hal_power_ops hal_power_sysfs_ops = {
    .name = "sysfs",
    .desc = "power_supply class and an ignition value file or GPIO line",
    .open = sysfs_open,
    .close = sysfs_close,
    .read = sysfs_read,
    .stats = sysfs_stats,
};
