/* One GPIO line through the Linux GPIO character device (libgpiod 1.6),
 * for the backends that drive a buzzer or vibration motor, read an
 * ignition line or watch a panic button.
 *
 * A line is named "CHIP:OFFSET": CHIP is a character device name under
 * <root>/dev ("gpiochip0") or, on the real root only, a chip label as the
 * kernel gives it; OFFSET the line number on that chip. This kernel cannot
 * create a GPIO chip (gpio-sim needs configfs and its module), so the unit
 * tests link tests/lib/fakegpiod.c, the same libgpiod calls over a chip
 * made of files under the root; see docs/hal.md.
 *
 * Built without libgpiod (no HAVE_LIBGPIOD), opening a line fails with
 * -ENOTSUP and everything else still works.
 *
 * Functions return 0 or a negative errno. */
#ifndef ESS_HAL_GPIO_H
#define ESS_HAL_GPIO_H

#include <stddef.h>

#define HAL_GPIO_CHIP_MAX 32

enum hal_gpio_mode {
	HAL_GPIO_OUTPUT = 0, /* starts low */
	HAL_GPIO_INPUT,
	HAL_GPIO_EDGES, /* input with both-edge events on hal_gpio_fd */
};

struct hal_gpio;

/* Splits "CHIP:OFFSET". chip receives HAL_GPIO_CHIP_MAX bytes at most; the
 * chip must be a safe name, the offset 0..1023. -EINVAL otherwise. */
int hal_gpio_parse(const char *spec, char *chip, unsigned *offset);

/* Requests the line for consumer ("essd"). -ENOENT: no such chip (gone or
 * never there); -ENODEV: the file there is no GPIO chip; -EACCES: not
 * allowed to open it; -ERANGE: the chip has no line OFFSET; -EBUSY: another
 * program (or handle) holds the line; -ENOTSUP: built without libgpiod. */
int hal_gpio_open(const char *root, const char *spec, enum hal_gpio_mode mode, const char *consumer,
                  struct hal_gpio **out);
void hal_gpio_close(struct hal_gpio *g); /* NULL is fine */
int hal_gpio_set(struct hal_gpio *g, int value);
/* 0 or 1, or a negative errno. */
int hal_gpio_get(struct hal_gpio *g);
/* The event fd of an HAL_GPIO_EDGES line (for the loop), else -1. */
int hal_gpio_fd(const struct hal_gpio *g);
/* Reads one edge: *rising 1 or 0. -EAGAIN when none is pending. */
int hal_gpio_read_edge(struct hal_gpio *g, int *rising);

#endif
