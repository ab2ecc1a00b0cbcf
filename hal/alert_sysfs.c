/* The "sysfs" alert backend: the Linux LED class
 * (<root>/sys/class/leds/NAME/{brightness,max_brightness,trigger}), a
 * backlight (<root>/sys/class/backlight/NAME/{bl_power,brightness,
 * max_brightness}) and a sounder that is an LED class device ("led:NAME",
 * as gpio-leds and pwm-beeper style drivers expose buzzers and vibrators)
 * or a GPIO line ("gpio:CHIP:OFFSET", libgpiod).
 *
 * Paths are resolved on every call and nothing is kept open but a GPIO
 * line, which is dropped on its first error: a device that vanishes is
 * found again at the next alert. */
#include "hal/alert.h"

#include "agent/log.h"
#include "hal/gpio.h"
#include "hal/sysfs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sysfs_alert {
	char root[HAL_SYSFS_PATH_MAX];
	char led[80], backlight[80];
	char sounder_led[80];  /* "led:NAME" */
	char sounder_gpio[80]; /* "gpio:CHIP:OFFSET" without "gpio:" */
	struct hal_gpio *gpio; /* requested on first use */
	int gpio_lost;         /* said in the log: said once, not at every alert */
};

static int attr(const char *dev, const char *name, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/%s", dev, name);
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* An LED class device on or off. blink: let the kernel's timer trigger
 * blink it when the LED offers one (no wakeups here). */
static int led_set(const char *root, const char *name, int on, int blink)
{
	char dev[HAL_SYSFS_PATH_MAX], p[HAL_SYSFS_PATH_MAX + 32], trig[HAL_SYSFS_VALUE_MAX];
	int rc = hal_sysfs_class_dev(root, "leds", name, dev, sizeof(dev));
	if (rc < 0)
		return rc;
	int has_trigger =
	    attr(dev, "trigger", p, sizeof(p)) == 0 && hal_sysfs_read(p, trig, sizeof(trig)) == 0;
	if (on && blink && has_trigger && strstr(trig, "timer"))
		return hal_sysfs_write(p, "timer") < 0 ? -ENODEV : 0;
	if (has_trigger && strcmp(trig, "[none]") != 0)
		hal_sysfs_write(p, "none"); /* a trigger would override brightness */
	long long max = 1;
	if (attr(dev, "max_brightness", p, sizeof(p)) == 0 && hal_sysfs_read_int(p, &max) == 0 &&
	    (max < 1 || max > 1000000))
		max = 1;
	char v[24];
	snprintf(v, sizeof(v), "%lld", on ? max : 0LL);
	if ((rc = attr(dev, "brightness", p, sizeof(p))) < 0)
		return rc;
	return hal_sysfs_write(p, v) < 0 ? -ENODEV : 0;
}

static int sysfs_open(const struct hal_alert_params *p, void **priv, char *err, size_t errlen)
{
	struct sysfs_alert *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	int rc = hal_sysfs_root(p->root, s->root, sizeof(s->root));
	const char *snd = p->sounder ? p->sounder : "";
	if (rc == 0 && ((p->led && p->led[0] && !hal_sysfs_name_ok(p->led)) ||
	                (p->backlight && p->backlight[0] && !hal_sysfs_name_ok(p->backlight))))
		rc = -EINVAL;
	if (rc == 0 && !strncmp(snd, "led:", 4) && hal_sysfs_name_ok(snd + 4)) {
		snprintf(s->sounder_led, sizeof(s->sounder_led), "%s", snd + 4);
	} else if (rc == 0 && !strncmp(snd, "gpio:", 5)) {
		char chip[HAL_GPIO_CHIP_MAX];
		unsigned off;
		rc = hal_gpio_parse(snd + 5, chip, &off);
		snprintf(s->sounder_gpio, sizeof(s->sounder_gpio), "%s", snd + 5);
	} else if (rc == 0 && snd[0]) {
		rc = -EINVAL;
	}
	if (rc < 0) {
		if (err)
			snprintf(err, errlen,
			         "alert sysfs: bad led, backlight or sounder (\"led:NAME\" or "
			         "\"gpio:CHIP:OFFSET\")");
		free(s);
		return rc;
	}
	snprintf(s->led, sizeof(s->led), "%s", p->led ? p->led : "");
	snprintf(s->backlight, sizeof(s->backlight), "%s", p->backlight ? p->backlight : "");
	*priv = s;
	return 0;
}

static void sysfs_close(void *priv)
{
	struct sysfs_alert *s = priv;
	hal_gpio_close(s->gpio);
	free(s);
}

static int sysfs_led(void *priv, int on)
{
	struct sysfs_alert *s = priv;
	return led_set(s->root, s->led, on, 1);
}

static int sysfs_sounder(void *priv, int on)
{
	struct sysfs_alert *s = priv;
	if (s->sounder_led[0])
		return led_set(s->root, s->sounder_led, on, 0);
	if (!s->sounder_gpio[0])
		return on ? -ENODEV : 0;
	int rc = 0;
	if (!s->gpio) {
		if (!on)
			return 0; /* not requested: it is low */
		rc = hal_gpio_open(s->root, s->sounder_gpio, HAL_GPIO_OUTPUT, "essd", &s->gpio);
	}
	if (rc == 0 && (rc = hal_gpio_set(s->gpio, on)) < 0) {
		hal_gpio_close(s->gpio); /* gone: request it anew next time */
		s->gpio = NULL;
	}
	if (rc < 0 && !s->gpio_lost) {
		s->gpio_lost = 1;
		log_warnx("alert: sounder gpio:%s unavailable (%s); tried again at each alert",
		          s->sounder_gpio, strerror(-rc));
	} else if (rc == 0 && s->gpio_lost) {
		s->gpio_lost = 0;
		log_info("alert: sounder gpio:%s is back", s->sounder_gpio);
	}
	return rc;
}

/* bl_power 0 is FB_BLANK_UNBLANK; a backlight left at brightness 0 is
 * raised to its maximum so the screen is readable. */
static int sysfs_wake(void *priv)
{
	struct sysfs_alert *s = priv;
	char dev[HAL_SYSFS_PATH_MAX], p[HAL_SYSFS_PATH_MAX + 32];
	int rc = hal_sysfs_class_dev(s->root, "backlight", s->backlight, dev, sizeof(dev));
	if (rc < 0)
		return rc;
	int done = 0;
	if (attr(dev, "bl_power", p, sizeof(p)) == 0 && hal_sysfs_write(p, "0") == 0)
		done = 1;
	long long cur = 0, max = 0;
	if (attr(dev, "brightness", p, sizeof(p)) == 0 && hal_sysfs_read_int(p, &cur) == 0) {
		done = 1;
		char mp[HAL_SYSFS_PATH_MAX + 32], v[24];
		if (cur == 0 && attr(dev, "max_brightness", mp, sizeof(mp)) == 0 &&
		    hal_sysfs_read_int(mp, &max) == 0 && max > 0 && max <= 1000000) {
			snprintf(v, sizeof(v), "%lld", max);
			hal_sysfs_write(p, v);
		}
	}
	return done ? 0 : -ENODEV;
}

const struct hal_alert_ops hal_alert_sysfs_ops = {
    .name = "sysfs",
    .desc = "LED class, backlight, sounder as LED class device or GPIO line",
    .open = sysfs_open,
    .close = sysfs_close,
    .led = sysfs_led,
    .sounder = sysfs_sounder,
    .wake = sysfs_wake,
};
