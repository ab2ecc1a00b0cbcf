/* The daemon's hardware wiring (hw.h). */
#include "agent/hw.h"

#include "agent/config.h"
#include "agent/log.h"
#include "agent/loop.h"
#include "hal/alert.h"
#include "hal/clock.h"
#include "hal/input.h"
#include "hal/link.h"
#include "hal/power.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hw {
	struct hw_callbacks cb;
	struct hal_alert *alert;
	struct hal_input *input;
	struct hal_power *power;
	struct hal_link *link;
	struct hal_clock *clock;
};

static void on_panic(void *arg, enum hal_panic_kind k)
{
	struct hw *h = arg;
	if (h->cb.panic)
		h->cb.panic(h->cb.arg, hal_panic_str(k));
}

static void on_power(void *arg, const struct hal_power_state *st)
{
	struct hw *h = arg;
	log_info("power: %s%s", hal_power_source_str(st->source),
	         st->raw.charging == 1 ? " (charging)" : "");
	if (h->cb.power)
		h->cb.power(h->cb.arg);
}

static void on_link(void *arg, const char *ifname, enum hal_link_why why)
{
	struct hw *h = arg;
	log_info("link: %s up (%s)", ifname, hal_link_why_str(why));
	if (h->cb.link_up)
		h->cb.link_up(h->cb.arg, ifname);
}

/* The panic button as configured: the daemon's and the self-test's alike. */
static struct hal_input_params input_params(const struct config *cfg, struct loop *l,
                                            hal_panic_fn on_panic_fn, void *arg)
{
	return (struct hal_input_params){.loop = l,
	                                 .device = cfg->input.device,
	                                 .key = cfg->input.key,
	                                 .active_low = cfg->input.level == CONFIG_LEVEL_LOW,
	                                 .long_press_ms = cfg->input.long_press_ms,
	                                 .double_press_ms = cfg->input.double_press_ms,
	                                 .on_panic = on_panic_fn,
	                                 .arg = arg};
}

static int failed(struct hw *h, int rc, char *err, size_t errlen, const char *what, const char *why)
{
	if (err)
		snprintf(err, errlen, "%s: %s", what, why);
	hw_close(h);
	return rc;
}

int hw_open(struct loop *l, const struct config *cfg, const struct hw_callbacks *cb,
            struct hw **out, char *err, size_t errlen)
{
	char why[256] = "";
	int rc;
	*out = NULL;
	struct hw *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->cb = *cb;

	struct hal_alert_params ap = {.loop = l,
	                              .led = cfg->alert.led,
	                              .sounder = cfg->alert.sounder,
	                              .backlight = cfg->alert.backlight,
	                              .duration_ms = cfg->alert.duration_s * 1000,
	                              .sound_ms = cfg->alert.sound_s * 1000};
	if ((rc = hal_alert_open(config_alert_names[cfg->alert.backend], &ap, &h->alert, why,
	                         sizeof(why))) < 0)
		return failed(h, rc, err, errlen, "alert", why);

	struct hal_input_params ip = input_params(cfg, l, on_panic, h);
	if ((rc = hal_input_open(config_input_names[cfg->input.backend], &ip, &h->input, why,
	                         sizeof(why))) < 0)
		return failed(h, rc, err, errlen, "input", why);

	struct hal_power_params pp = {.loop = l,
	                              .ignition = cfg->power.ignition,
	                              .ignition_active_low =
	                                  cfg->power.ignition_level == CONFIG_LEVEL_LOW,
	                              .poll_ms = cfg->power.poll_s * 1000,
	                              .on_change = on_power,
	                              .arg = h};
	if ((rc = hal_power_open(config_power_names[cfg->power.backend], &pp, &h->power, why,
	                         sizeof(why))) < 0)
		return failed(h, rc, err, errlen, "power", why);

	struct hal_link_params lp = {.loop = l, .on_up = on_link, .arg = h};
	if ((rc = hal_link_open(config_link_names[cfg->link.backend], &lp, &h->link, why,
	                        sizeof(why))) < 0) {
		/* no netlink (a sandbox without AF_NETLINK): sync still retries
		 * on its own, so this costs latency, not function */
		log_warnx("link: %s; syncing without link events", why);
		if ((rc = hal_link_open("none", &lp, &h->link, why, sizeof(why))) < 0)
			return failed(h, rc, err, errlen, "link", why);
	}

	if ((rc = hal_clock_open(config_clock_names[cfg->clock.backend], NULL, cfg->clock.rtc,
	                         &h->clock, why, sizeof(why))) < 0)
		return failed(h, rc, err, errlen, "clock", why);

	struct hal_power_state st;
	hal_power_get(h->power, &st);
	log_info("hardware: alert %s, panic button %s, power %s (%s), link %s, clock %s",
	         hal_alert_name(h->alert), hal_input_name(h->input), hal_power_name(h->power),
	         hal_power_source_str(st.source), hal_link_name(h->link), hal_clock_name(h->clock));
	*out = h;
	return 0;
}

void hw_close(struct hw *h)
{
	if (!h)
		return;
	hal_alert_close(h->alert);
	hal_input_close(h->input);
	hal_power_close(h->power);
	hal_link_close(h->link);
	hal_clock_close(h->clock);
	free(h);
}

void hw_alert(struct hw *h, int silent)
{
	if (h)
		hal_alert_incident(h->alert, silent);
}

void hw_alert_stop(struct hw *h)
{
	if (h)
		hal_alert_stop(h->alert);
}

const char *hw_power(const struct hw *h, const struct config *cfg, int *battery_pct)
{
	*battery_pct = -1;
	if (!h)
		return config_power_source_names[cfg->power.fallback];
	struct hal_power_state st;
	hal_power_get(h->power, &st);
	*battery_pct = st.raw.battery_pct;
	if (st.source == HAL_POWER_UNKNOWN)
		return config_power_source_names[cfg->power.fallback];
	return hal_power_source_str(st.source);
}

int hw_gps_interval(const struct hw *h, const struct config *cfg)
{
	if (!h)
		return cfg->gps.interval_s;
	struct hal_power_state st;
	hal_power_get(h->power, &st);
	return hal_power_gps_interval(&st, cfg->gps.interval_s, cfg->gps.battery_interval_s);
}

void hw_clock_log(struct hw *h, const char *clock_state)
{
	if (!h)
		return;
	struct hal_clock_info in;
	int64_t drift;
	hal_clock_read(h->clock, &in);
	const char *a = hal_clock_assess(&in, clock_state, loop_wall_ms() / 1000, &drift);
	if (!in.rtc_present)
		log_info("clock: %s, no RTC (%s)", clock_state, a);
	else
		log_info("clock: %s, RTC %s%s, drift %lld s (%s)", clock_state,
		         in.rtc_name[0] ? in.rtc_name : "present",
		         in.hctosys ? " set the clock at boot" : "", (long long)drift, a);
	if (!strcmp(a, "no-time") || !strcmp(a, "rtc-drift"))
		log_warnx(
		    "clock: no trusted time yet; event times follow the GPS once it has a fix");
}

/* -1 means unknown: null in JSON */
static int add_int(cJSON *o, const char *k, long long v)
{
	return v < 0 ? cJSON_AddNullToObject(o, k) != NULL
	             : cJSON_AddNumberToObject(o, k, (double)v) != NULL;
}

cJSON *hw_status(struct hw *h, const char *clock_state)
{
	cJSON *o = cJSON_CreateObject(), *a, *b, *p, *l, *r;
	if (!o)
		return NULL;
	struct hal_alert_stats as;
	struct hal_input_stats is;
	struct hal_power_state ps;
	struct hal_power_stats pst;
	struct hal_link_stats ls;
	struct hal_clock_info ci;
	int64_t drift;
	hal_alert_stats(h->alert, &as);
	hal_input_stats(h->input, &is);
	hal_power_get(h->power, &ps);
	hal_power_stats(h->power, &pst);
	hal_link_stats(h->link, &ls);
	hal_clock_read(h->clock, &ci);
	const char *assess = hal_clock_assess(&ci, clock_state, loop_wall_ms() / 1000, &drift);
	int ok = (a = cJSON_AddObjectToObject(o, "alert")) &&
	         cJSON_AddStringToObject(a, "backend", hal_alert_name(h->alert)) &&
	         cJSON_AddBoolToObject(a, "led_on", as.led_on) &&
	         cJSON_AddBoolToObject(a, "sounding", as.sounding) &&
	         add_int(a, "alerts", (long long)as.alerts) &&
	         add_int(a, "silent", (long long)as.silent) &&
	         add_int(a, "sounded", (long long)as.sounded) &&
	         add_int(a, "missing",
	                 (long long)(as.led_missing + as.sounder_missing + as.wake_missing)) &&
	         (b = cJSON_AddObjectToObject(o, "panic_button")) &&
	         cJSON_AddStringToObject(b, "backend", hal_input_name(h->input)) &&
	         cJSON_AddBoolToObject(b, "attached", is.attached) &&
	         add_int(b, "presses", (long long)is.presses) &&
	         add_int(b, "panics", (long long)is.panics) &&
	         add_int(b, "losses", (long long)is.losses) &&
	         (p = cJSON_AddObjectToObject(o, "power")) &&
	         cJSON_AddStringToObject(p, "backend", hal_power_name(h->power)) &&
	         cJSON_AddStringToObject(p, "source", hal_power_source_str(ps.source)) &&
	         add_int(p, "battery_pct", ps.raw.battery_pct) &&
	         (ps.raw.charging < 0 ? cJSON_AddNullToObject(p, "charging")
	                              : cJSON_AddBoolToObject(p, "charging", ps.raw.charging)) &&
	         (ps.raw.ignition < 0 ? cJSON_AddNullToObject(p, "ignition")
	                              : cJSON_AddBoolToObject(p, "ignition", ps.raw.ignition)) &&
	         /* whether changes are heard at once or only at the poll */
	         cJSON_AddBoolToObject(p, "ignition_edges", pst.ignition_events) &&
	         cJSON_AddBoolToObject(p, "uevents", pst.uevents) &&
	         add_int(p, "readings", (long long)pst.reads) &&
	         (l = cJSON_AddObjectToObject(o, "link")) &&
	         cJSON_AddStringToObject(l, "backend", hal_link_name(h->link)) &&
	         add_int(l, "running", ls.running) && add_int(l, "ups", (long long)ls.ups) &&
	         (r = cJSON_AddObjectToObject(o, "rtc")) &&
	         cJSON_AddStringToObject(r, "backend", hal_clock_name(h->clock)) &&
	         cJSON_AddBoolToObject(r, "present", ci.rtc_present) &&
	         cJSON_AddStringToObject(r, "assessment", assess);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* ---- self-test checks ---- */

static void check_set(struct hw_check *out, enum hw_check_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void check_set(struct hw_check *out, enum hw_check_status st, const char *fmt, ...)
{
	va_list ap;
	out->status = st;
	va_start(ap, fmt);
	vsnprintf(out->detail, sizeof(out->detail), fmt, ap);
	va_end(ap);
}

static void run_for(struct loop *l, int ms)
{
	int64_t end = loop_now_ms() + ms;
	while (loop_now_ms() < end)
		loop_run_once(l, (int)(end - loop_now_ms()));
}

/* Why a GPIO line could not be had (hal_gpio_open's errors), for people. */
static const char *gpio_why(int err)
{
	switch (err) {
	case -ERANGE:
		return " (the chip has no such line: check the offset)";
	case -EBUSY:
		return " (the line is held by another program, e.g. a running essd)";
	case -ENODEV:
		return " (that is not a GPIO chip)";
	case -EACCES:
		return " (no access to the chip: check the udev rule and essd's group)";
	case -ENOENT:
		return " (no such chip)";
	default:
		return "";
	}
}

void hw_check_alert(const struct config *cfg, struct loop *l, struct hw_check *out)
{
	if (cfg->alert.backend == CONFIG_ALERT_NONE) {
		check_set(out, HW_CHECK_SKIP,
		          "no alert outputs configured ([alert] backend = none)");
		return;
	}
	struct hal_alert *a;
	char why[256];
	struct hal_alert_params ap = {.loop = l,
	                              .led = cfg->alert.led,
	                              .sounder = cfg->alert.sounder,
	                              .backlight = cfg->alert.backlight,
	                              .duration_ms = 1000,
	                              .sound_ms = 500};
	if (hal_alert_open(config_alert_names[cfg->alert.backend], &ap, &a, why, sizeof(why)) < 0) {
		check_set(out, HW_CHECK_FAIL, "alert: %s", why);
		return;
	}
	hal_alert_incident(a, 0);
	run_for(l, 1100); /* the timers switch everything off again */
	struct hal_alert_stats st;
	hal_alert_stats(a, &st);
	hal_alert_close(a);
	const char *led = cfg->alert.led[0] ? cfg->alert.led : "(the first one)";
	int snd_missing = cfg->alert.sounder[0] && st.sounder_missing;
	int snd_gpio = !strncmp(cfg->alert.sounder, "gpio:", 5);
	if (st.led_missing || snd_missing)
		check_set(out, HW_CHECK_FAIL,
		          "%s%s%s%s%s not found%s: check the wiring and the driver",
		          st.led_missing ? "LED " : "", st.led_missing ? led : "",
		          st.led_missing && snd_missing ? " and " : "",
		          snd_missing ? "sounder " : "", snd_missing ? cfg->alert.sounder : "",
		          snd_missing && snd_gpio ? gpio_why(st.sounder_error) : "");
	else if (st.wake_missing)
		check_set(out, HW_CHECK_WARN, "LED%s exercised; no backlight to wake the screen",
		          cfg->alert.sounder[0] ? " and sounder" : "");
	else
		check_set(out, HW_CHECK_PASS, "LED%s and screen exercised: did you see%s it?",
		          cfg->alert.sounder[0] ? ", sounder" : "",
		          cfg->alert.sounder[0] ? " and hear" : "");
}

struct panic_wait {
	int seen;
	const char *how;
};

static void panic_seen(void *arg, enum hal_panic_kind k)
{
	struct panic_wait *w = arg;
	w->seen = 1;
	w->how = hal_panic_str(k);
}

void hw_check_panic(const struct config *cfg, struct loop *l, int timeout_ms, struct hw_check *out)
{
	if (cfg->input.backend == CONFIG_INPUT_NONE) {
		check_set(out, HW_CHECK_SKIP,
		          "no panic button configured ([input] backend = none)");
		return;
	}
	struct panic_wait w = {0, NULL};
	struct hal_input *in;
	char why[256];
	struct hal_input_params ip = input_params(cfg, l, panic_seen, &w);
	if (hal_input_open(config_input_names[cfg->input.backend], &ip, &in, why, sizeof(why)) <
	    0) {
		check_set(out, HW_CHECK_FAIL, "panic button: %s", why);
		return;
	}
	struct hal_input_stats st;
	hal_input_stats(in, &st);
	if (!st.attached) {
		hal_input_close(in);
		const char *reason =
		    cfg->input.backend == CONFIG_INPUT_GPIO ? gpio_why(st.error) : "";
		check_set(out, HW_CHECK_FAIL, "panic button %s not found%s", cfg->input.device,
		          reason[0]
		              ? reason
		              : " (or held by another program, e.g. a running essd for a GPIO "
		                "line)");
		return;
	}
	int64_t end = loop_now_ms() + timeout_ms;
	while (!w.seen && loop_now_ms() < end)
		loop_run_once(l, (int)(end - loop_now_ms()));
	hal_input_stats(in, &st);
	hal_input_close(in);
	if (w.seen)
		check_set(out, HW_CHECK_PASS, "panic button works (%s press)", w.how);
	else if (st.presses)
		check_set(out, HW_CHECK_FAIL,
		          "the button was pressed %llu time(s) but never long or twice in time",
		          (unsigned long long)st.presses);
	else
		check_set(out, HW_CHECK_FAIL, "no press of the panic button within %d s",
		          timeout_ms / 1000);
}
