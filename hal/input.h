/* Inputs: the panic button.
 *
 * Backends are ops tables (hostap's driver ops are the model): "evdev" (a
 * key on an input device, /dev/input/eventN: struct input_event records),
 * "gpio" (a GPIO line's edge events, libgpiod) and "none". A backend only
 * reports key down and key up (hal_input_key); the decision whether that
 * was a panic lives here, above the backends:
 *
 *   - a LONG press: held for long_press_ms; or
 *   - a DOUBLE press: a second press within double_press_ms of the first.
 *
 * A single short press (brushing against the button) does nothing. After a
 * panic, the presses so far are forgotten (a triple press is one panic).
 * Presses closer than HAL_INPUT_DEBOUNCE_MS to the last release are contact
 * bounce and ignored.
 *
 * A device that disappears (unplugged, EOF, ENODEV) is closed and reopened
 * every rescan_ms until it is back: never fatal.
 *
 * Functions return 0 or a negative errno. */
#ifndef ESS_HAL_INPUT_H
#define ESS_HAL_INPUT_H

#include <stddef.h>
#include <stdint.h>

struct loop;
struct hal_input;

#define HAL_INPUT_DEBOUNCE_MS 30

enum hal_panic_kind { HAL_PANIC_NONE = 0, HAL_PANIC_LONG, HAL_PANIC_DOUBLE };
const char *hal_panic_str(enum hal_panic_kind k); /* "long", "double", "none" */

/* ---- the detector (pure: times are injected) ---- */
struct hal_panic {
	int long_ms, double_ms;
	int down;
	int fired;               /* this hold already raised a panic */
	int64_t down_at;         /* of the current press */
	int64_t last_press_at;   /* of the previous press; 0: none pending */
	int64_t last_release_at; /* for debouncing */
	uint64_t presses;        /* distinct presses (bounces are not) */
};
void hal_panic_init(struct hal_panic *p, int long_ms, int double_ms);
/* A key change at now_ms. Returns HAL_PANIC_DOUBLE when this press makes a
 * double press, else HAL_PANIC_NONE. */
enum hal_panic_kind hal_panic_key(struct hal_panic *p, int down, int64_t now_ms);
/* When the key is held: HAL_PANIC_LONG once now_ms reaches down_at +
 * long_ms. *next_ms (may be NULL) receives the time to call again, or -1. */
enum hal_panic_kind hal_panic_tick(struct hal_panic *p, int64_t now_ms, int64_t *next_ms);

/* ---- the module ---- */
typedef void (*hal_panic_fn)(void *arg, enum hal_panic_kind kind);

struct hal_input_params {
	struct loop *loop;
	const char *root;    /* NULL or "": $HAL_SYSFS_ROOT or "/" */
	const char *device;  /* evdev: path under root ("/dev/input/event0"); gpio: "CHIP:OFFSET" */
	int key;             /* evdev: the key code (linux/input-event-codes.h); 0: KEY_PROG1 */
	int active_low;      /* gpio: the line reads 0 while pressed */
	int long_press_ms;   /* 0: 2000 */
	int double_press_ms; /* 0: 600 */
	int rescan_ms;       /* 0: 2000 */
	hal_panic_fn on_panic;
	void *arg;
};

struct hal_input_ops {
	const char *name;
	const char *desc;
	/* in: the module, for hal_input_key and hal_input_lost. */
	int (*open)(const struct hal_input_params *p, struct hal_input *in, void **priv, char *err,
	            size_t errlen);
	void (*close)(void *priv);
	/* Tries to (re)open the device: 0, or a negative errno to retry
	 * after rescan_ms. NULL: nothing to open. */
	int (*attach)(void *priv);
	void (*detach)(void *priv); /* drops the device (the module rescans) */
};

struct hal_input_stats {
	int attached;      /* the device is open now */
	uint64_t attaches; /* successful (re)opens */
	uint64_t losses;   /* times the device went away */
	uint64_t presses;
	uint64_t panics;
	int error; /* detached: why the last (re)open failed (negative errno), else 0 */
};

/* Opens backend `name` ("evdev", "gpio", "none"). A device that is absent
 * at open is not an error: it is looked for every rescan_ms. -ENOENT for an
 * unknown backend, -EINVAL for bad parameters. */
int hal_input_open(const char *name, const struct hal_input_params *p, struct hal_input **out,
                   char *err, size_t errlen);
void hal_input_close(struct hal_input *in); /* NULL is fine */
const char *hal_input_name(const struct hal_input *in);
void hal_input_stats(const struct hal_input *in, struct hal_input_stats *st);

/* For backends: the key went down (1) or up (0). */
void hal_input_key(struct hal_input *in, int down);
/* For backends: the device went away; the module detaches it and rescans. */
void hal_input_lost(struct hal_input *in);
struct loop *hal_input_loop(const struct hal_input *in);

extern const struct hal_input_ops hal_input_evdev_ops;
extern const struct hal_input_ops hal_input_gpio_ops;
extern const struct hal_input_ops hal_input_none_ops;

#endif
