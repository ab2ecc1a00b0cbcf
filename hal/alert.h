/* Alert outputs: how a device calls its responder's attention to a new
 * assignment — an LED, a buzzer or vibration motor ("sounder") and the
 * screen's backlight.
 *
 * Backends are ops tables (hostap's driver ops are the model): "sysfs"
 * (the Linux LED class, a backlight, and a sounder that is either an LED
 * class device such as gpio-leds' "buzzer" or a GPIO line through libgpiod)
 * and "none" (no outputs). Any output op may be NULL: the device has no
 * such output.
 *
 * The policy lives here, above the backends, so no backend can break it:
 *   - a silent incident (the responder may be somewhere a noise is a
 *     danger) NEVER switches the sounder on; it also silences a sound still
 *     going from an earlier alert; it lights the LED and wakes the screen;
 *   - a normal one wakes the screen, lights the LED for duration_ms and
 *     sounds for sound_ms;
 *   - an output that is missing (unplugged, driver not loaded) is counted
 *     and looked for again at the next alert: never fatal.
 *
 * Functions return 0 or a negative errno. */
#ifndef ESS_HAL_ALERT_H
#define ESS_HAL_ALERT_H

#include <stddef.h>
#include <stdint.h>

struct loop;

struct hal_alert_params {
	struct loop *loop;     /* borrowed: the timers that end an alert */
	const char *root;      /* sysfs root; NULL or "": $HAL_SYSFS_ROOT or "/" */
	const char *led;       /* LED class name; NULL or "": the first LED found */
	const char *sounder;   /* "led:NAME", "gpio:CHIP:OFFSET"; NULL or "": none */
	const char *backlight; /* backlight name; NULL or "": the first found */
	int duration_ms;       /* LED on; 0: 30000 */
	int sound_ms;          /* sounder on; 0: 3000 */
};

struct hal_alert_ops {
	const char *name;
	const char *desc;
	int (*open)(const struct hal_alert_params *p, void **priv, char *err, size_t errlen);
	void (*close)(void *priv);
	/* < 0: the output is not there right now (rescanned next call): -ENODEV,
	 * or for a GPIO line hal_gpio_open's reason (-ENOENT, -ERANGE, -EBUSY, …). */
	int (*led)(void *priv, int on);
	int (*sounder)(void *priv, int on);
	int (*wake)(void *priv);
};

struct hal_alert_stats {
	uint64_t alerts;      /* hal_alert_incident calls */
	uint64_t silent;      /* of which silent */
	uint64_t sounded;     /* sounder switched on */
	uint64_t led_missing; /* an LED, sounder or screen was not there */
	uint64_t sounder_missing;
	uint64_t wake_missing;
	int led_on, sounding; /* right now */
	int sounder_error;    /* the last failure to sound (negative errno); 0 after a sound */
};

struct hal_alert;

/* Opens backend `name` ("sysfs", "none"). -ENOENT for an unknown one. */
int hal_alert_open(const char *name, const struct hal_alert_params *p, struct hal_alert **out,
                   char *err, size_t errlen);
/* The same with a caller's ops table (tests record what the policy does). */
int hal_alert_open_ops(const struct hal_alert_ops *ops, const struct hal_alert_params *p,
                       struct hal_alert **out, char *err, size_t errlen);
void hal_alert_close(struct hal_alert *a); /* switches everything off; NULL is fine */
const char *hal_alert_name(const struct hal_alert *a);

/* A new assignment. silent: the incident's silent flag. */
void hal_alert_incident(struct hal_alert *a, int silent);
/* The responder has seen it: everything off now. */
void hal_alert_stop(struct hal_alert *a);
void hal_alert_stats(const struct hal_alert *a, struct hal_alert_stats *st);

extern const struct hal_alert_ops hal_alert_sysfs_ops;
extern const struct hal_alert_ops hal_alert_none_ops;

#endif
