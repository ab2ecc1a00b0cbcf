#include "hal/gpio.h"

#include "hal/sysfs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HAVE_LIBGPIOD
#include <gpiod.h>
#endif

int hal_gpio_parse(const char *spec, char *chip, unsigned *offset)
{
	const char *colon = spec ? strrchr(spec, ':') : NULL;
	if (!colon || colon == spec || (size_t)(colon - spec) >= HAL_GPIO_CHIP_MAX)
		return -EINVAL;
	memcpy(chip, spec, (size_t)(colon - spec));
	chip[colon - spec] = 0;
	if (!hal_sysfs_name_ok(chip))
		return -EINVAL;
	const char *n = colon + 1;
	if (!*n || strlen(n) > 4 || strspn(n, "0123456789") != strlen(n))
		return -EINVAL;
	unsigned long v = strtoul(n, NULL, 10);
	if (v > 1023)
		return -EINVAL;
	*offset = (unsigned)v;
	return 0;
}

#ifdef HAVE_LIBGPIOD
struct hal_gpio {
	struct gpiod_chip *chip;
	struct gpiod_line *line;
	enum hal_gpio_mode mode;
};

int hal_gpio_open(const char *root, const char *spec, enum hal_gpio_mode mode, const char *consumer,
                  struct hal_gpio **out)
{
	char chip[HAL_GPIO_CHIP_MAX], r[HAL_SYSFS_PATH_MAX], path[HAL_SYSFS_PATH_MAX];
	unsigned off;
	int rc;
	*out = NULL;
	if ((rc = hal_gpio_parse(spec, chip, &off)) < 0 ||
	    (rc = hal_sysfs_root(root, r, sizeof(r))) < 0)
		return rc;
	int n = snprintf(path, sizeof(path), "%s/dev/%s", r, chip);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	struct gpiod_chip *c = gpiod_chip_open(path);
	/* a label ("gpio-keys") only means something on the real root */
	if (!c && !r[0])
		c = gpiod_chip_open_by_label(chip);
	if (!c)
		return errno == ENOTTY || errno == EINVAL  ? -ENODEV
		       : errno == EACCES || errno == EPERM ? -EACCES /* the udev rule's group */
		                                           : -ENOENT;
	struct gpiod_line *l = gpiod_chip_get_line(c, off);
	if (!l) {
		/* EINVAL: the chip is there but has fewer lines (a wrong offset
		 * in the configuration, or another chip under that name) */
		int e = errno == EINVAL ? ERANGE : ENOENT;
		gpiod_chip_close(c);
		return -e;
	}
	rc = mode == HAL_GPIO_OUTPUT  ? gpiod_line_request_output(l, consumer, 0)
	     : mode == HAL_GPIO_INPUT ? gpiod_line_request_input(l, consumer)
	                              : gpiod_line_request_both_edges_events(l, consumer);
	if (rc < 0) {
		int e = errno ? errno : EBUSY;
		gpiod_chip_close(c);
		return -e;
	}
	struct hal_gpio *g = calloc(1, sizeof(*g));
	if (!g) {
		gpiod_chip_close(c); /* releases the line */
		return -ENOMEM;
	}
	*g = (struct hal_gpio){.chip = c, .line = l, .mode = mode};
	*out = g;
	return 0;
}

void hal_gpio_close(struct hal_gpio *g)
{
	if (!g)
		return;
	gpiod_chip_close(g->chip);
	free(g);
}

int hal_gpio_set(struct hal_gpio *g, int value)
{
	return gpiod_line_set_value(g->line, !!value) < 0 ? -errno : 0;
}

int hal_gpio_get(struct hal_gpio *g)
{
	int v = gpiod_line_get_value(g->line);
	return v < 0 ? -errno : v;
}

int hal_gpio_fd(const struct hal_gpio *g)
{
	return g->mode == HAL_GPIO_EDGES ? gpiod_line_event_get_fd(g->line) : -1;
}

int hal_gpio_read_edge(struct hal_gpio *g, int *rising)
{
	struct gpiod_line_event ev;
	/* the fd is non-blocking for the loop; a wait of zero keeps this so */
	struct timespec zero = {0, 0};
	int w = gpiod_line_event_wait(g->line, &zero);
	if (w < 0)
		return -errno;
	if (w == 0)
		return -EAGAIN;
	if (gpiod_line_event_read(g->line, &ev) < 0)
		return -errno;
	*rising = ev.event_type == GPIOD_LINE_EVENT_RISING_EDGE;
	return 0;
}
#else
struct hal_gpio {
	int unused;
};

int hal_gpio_open(const char *root, const char *spec, enum hal_gpio_mode mode, const char *consumer,
                  struct hal_gpio **out)
{
	char chip[HAL_GPIO_CHIP_MAX];
	unsigned off;
	(void)root;
	(void)mode;
	(void)consumer;
	*out = NULL;
	int rc = hal_gpio_parse(spec, chip, &off);
	return rc < 0 ? rc : -ENOTSUP;
}

void hal_gpio_close(struct hal_gpio *g)
{
	(void)g;
}

int hal_gpio_set(struct hal_gpio *g, int value)
{
	(void)g;
	(void)value;
	return -ENOTSUP;
}

int hal_gpio_get(struct hal_gpio *g)
{
	(void)g;
	return -ENOTSUP;
}

int hal_gpio_fd(const struct hal_gpio *g)
{
	(void)g;
	return -1;
}

int hal_gpio_read_edge(struct hal_gpio *g, int *rising)
{
	(void)g;
	(void)rising;
	return -ENOTSUP;
}
#endif
