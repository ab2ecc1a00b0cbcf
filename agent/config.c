#include "agent/config.h"

#include "hal/gpio.h"
#include "hal/sysfs.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Enum keys are stored as int through memcpy; the log enums' values are the
 * indexes of their names below. */
_Static_assert(sizeof(enum log_level) == sizeof(int), "enum log_level is not int-sized");
_Static_assert(sizeof(enum log_target) == sizeof(int), "enum log_target is not int-sized");
_Static_assert(sizeof(enum config_keystore) == sizeof(int), "enum config_keystore not int-sized");
_Static_assert(sizeof(enum config_alert) == sizeof(int) &&
                   sizeof(enum config_input) == sizeof(int) &&
                   sizeof(enum config_power) == sizeof(int) &&
                   sizeof(enum config_power_source) == sizeof(int) &&
                   sizeof(enum config_level) == sizeof(int) &&
                   sizeof(enum config_link) == sizeof(int) &&
                   sizeof(enum config_clock) == sizeof(int),
               "hardware enums are not int-sized");
_Static_assert(LOG_LEVEL_ERR == 0 && LOG_LEVEL_WARN == 1 && LOG_LEVEL_INFO == 2 &&
                   LOG_LEVEL_DEBUG == 3,
               "log_levels[] follows enum log_level");
_Static_assert(LOG_TARGET_STDERR == 0 && LOG_TARGET_JOURNAL == 1, "log_targets[] order");

enum key_type { T_STRING, T_PATH, T_INT, T_BOOL, T_ENUM };

/* Extra checks on a non-empty string value. Messages never quote the value:
 * these keys may hold URLs with credentials or tokens. */
typedef int (*check_fn)(const char *v, char *msg, size_t msglen);

struct key {
	struct config_key_info info;
	enum key_type type;
	size_t off;
	size_t size;
	check_fn check;
};

static const char *const log_levels[] = {"err", "warn", "info", "debug", NULL};
static const char *const log_targets[] = {"stderr", "journal", NULL};
const char *const config_keystore_names[] = {"file", "none", NULL};
const char *const config_alert_names[] = {"none", "sysfs", NULL};
const char *const config_input_names[] = {"none", "evdev", "gpio", NULL};
const char *const config_power_names[] = {"none", "sysfs", NULL};
const char *const config_power_source_names[] = {"vehicle", "ac", "battery", NULL};
static const char *const levels[] = {"high", "low", NULL};
const char *const config_link_names[] = {"netlink", "none", NULL};
const char *const config_clock_names[] = {"sysfs", "none", NULL};

static int check_url(const char *v, char *msg, size_t msglen);
static int check_pin(const char *v, char *msg, size_t msglen);
static int check_key64(const char *v, char *msg, size_t msglen);
static int check_token(const char *v, char *msg, size_t msglen);
static int check_host(const char *v, char *msg, size_t msglen);
static int check_group(const char *v, char *msg, size_t msglen);
static int check_board(const char *v, char *msg, size_t msglen);
static int check_hwname(const char *v, char *msg, size_t msglen);
static int check_sounder(const char *v, char *msg, size_t msglen);
static int check_input_device(const char *v, char *msg, size_t msglen);
static int check_ignition(const char *v, char *msg, size_t msglen);

#define MSIZE(m) sizeof(((struct config *)0)->m)
#define KINT(sec, k, m, lo, hi, d, text)                                                           \
	{                                                                                          \
		{sec, k, "int", #d, lo, hi, NULL, 0, text}, T_INT, offsetof(struct config, m),     \
		    MSIZE(m), NULL                                                                 \
	}
#define KENUM(sec, k, m, names, d, text)                                                           \
	{                                                                                          \
		{sec, k, "enum", d, 0, 0, names, 0, text}, T_ENUM, offsetof(struct config, m),     \
		    MSIZE(m), NULL                                                                 \
	}
#define KSTR(sec, k, m, d, flags, chk, text)                                                       \
	{                                                                                          \
		{sec, k, "string", d, 0, MSIZE(m) - 1, NULL, flags, text}, T_STRING,               \
		    offsetof(struct config, m), MSIZE(m), chk                                      \
	}
#define KPATH(sec, k, m, d, flags, text)                                                           \
	{                                                                                          \
		{sec, k, "path", d, 0, MSIZE(m) - 1, NULL, flags, text}, T_PATH,                   \
		    offsetof(struct config, m), MSIZE(m), NULL                                     \
	}

#define REQ    CONFIG_KEY_REQUIRED
#define OPT    CONFIG_KEY_EMPTY_OK
#define SECRET CONFIG_KEY_SECRET

/* Every key the agent knows. Grouped by section: config_dump and the docs
 * rely on that order. */
static const struct key keys[] = {
    KENUM("log", "level", log.level, log_levels, "info",
          "Least severe message written: err, warn, info or debug."),
    KENUM("log", "target", log.target, log_targets, "stderr",
          "Where messages go; journal needs a build with libsystemd, else stderr stays."),

    KPATH("store", "dir", store.dir, "/var/lib/ess", 0,
          "Directory of the encrypted database (ess.db) and the wrapped keys file (keys)."),
    KINT("store", "retention_hours", store.retention_hours, 1, 8760, 72,
         "How long a closed, cancelled or reassigned incident stays cached."),
    KINT("store", "audit_retention_days", store.audit_retention_days, 1, 3650, 90,
         "How long entries of the local audit log are kept."),
    KINT("store", "position_flush_s", store.position_flush_s, 1, 600, 30,
         "Longest time a GPS fix stays in memory before it is sealed into the database; "
         "a crash loses at most this much trail."),
    KINT("store", "max_positions", store.max_positions, 10000, 10000000, 1000000,
         "Bound on the number of trail fixes stored while offline."),

    KENUM("keystore", "backend", keystore.backend, config_keystore_names, "file",
          "Where the key-encryption key comes from: file, or none (the store cannot open)."),
    KPATH("keystore", "key_file", keystore.key_file, "/etc/ess/kek", 0,
          "The key-encryption key file; refused when opened unless mode 0600 or stricter."),

    KSTR("server", "url", server.url, "", REQ, check_url,
         "Base URL of the central ESS API: https://, or http:// for a loopback or test "
         "server; no trailing '/', query or credentials."),
    KPATH("server", "ca_file", server.ca_file, "", OPT,
          "PEM file of the CA certificates to trust; empty: the system's CAs."),
    KSTR("server", "pinned_pubkey", server.pinned_pubkey, "", OPT, check_pin,
         "TLS public key pin in curl's CURLOPT_PINNEDPUBLICKEY form (sha256//<base64>, several "
         "joined by ';', or an absolute file path); empty: no pin."),
    KSTR("server", "server_key", server.server_key, "", OPT, check_key64,
         "The server's Ed25519 public key (base64, 32 bytes); when set, an enrollment answer "
         "with another key is refused."),
    KSTR("server", "enroll_token", server.enroll_token, "", OPT | SECRET, check_token,
         "One-time enrollment token given at provisioning; never logged or dumped."),
    KPATH("server", "enroll_token_file", server.enroll_token_file, "", OPT,
          "File holding the one-time enrollment token (first boot); essd provision reads it "
          "when no token is given and deletes it after a successful enrollment."),
    KINT("server", "connect_timeout_s", server.connect_timeout_s, 1, 120, 10,
         "Longest time to set up a connection (TCP and TLS)."),
    KINT("server", "request_timeout_s", server.request_timeout_s, 5, 600, 60,
         "Longest time one request may take, long polls included."),
    KINT("server", "long_poll_s", server.long_poll_s, 0, 30, 25,
         "How long the server may hold an assignments poll open (0: no long polling); must "
         "be shorter than request_timeout_s."),

    KSTR("gps", "host", gps.host, "localhost", 0, check_host, "gpsd host name or address."),
    KINT("gps", "port", gps.port, 1, 65535, 2947, "gpsd TCP port."),
    KINT("gps", "interval_s", gps.interval_s, 1, 3600, 5,
         "Seconds between recorded fixes when not on an incident."),
    KINT("gps", "min_distance_m", gps.min_distance_m, 0, 10000, 10,
         "A fix nearer than this to the last recorded one is not recorded (0: record all)."),
    KINT("gps", "active_interval_s", gps.active_interval_s, 1, 3600, 1,
         "Seconds between recorded fixes while on an active incident."),
    KINT("gps", "battery_interval_s", gps.battery_interval_s, 0, 3600, 30,
         "Seconds between recorded fixes when not on an incident and on battery (power "
         "source battery); used only when longer than interval_s; 0: no battery policy."),

    KPATH("control", "socket", control.socket, "/run/ess/essd.sock", 0,
          "Unix socket of the local control interface (at most 107 bytes: sun_path)."),
    KSTR("control", "group", control.group, "", OPT, check_group,
         "Group allowed to use the control socket; empty: the daemon's own group."),

    KSTR("device", "board", device.board, "host", 0, check_board,
         "Board name (as in boards/<name>), sent at enrollment."),
    KPATH("device", "serial_file", device.serial_file, "/etc/ess/serial", 0,
          "File holding the hardware serial number sent at enrollment."),

    KINT("heartbeat", "interval_s", heartbeat.interval_s, 10, 3600, 60,
         "Seconds between heartbeats to the server."),

    KENUM("alert", "backend", alert.backend, config_alert_names, "none",
          "Alert outputs for a new assignment: sysfs (LED class, backlight, sounder) or none."),
    KSTR("alert", "led", alert.led, "", OPT, check_hwname,
         "LED class device to light (/sys/class/leds/NAME); empty: the first one."),
    KSTR("alert", "sounder", alert.sounder, "", OPT, check_sounder,
         "Buzzer or vibration motor: led:NAME (an LED class device) or gpio:CHIP:OFFSET; "
         "empty: none. Never sounds for a silent incident."),
    KSTR("alert", "backlight", alert.backlight, "", OPT, check_hwname,
         "Backlight to wake (/sys/class/backlight/NAME); empty: the first one."),
    KINT("alert", "duration_s", alert.duration_s, 1, 600, 30,
         "How long the LED stays lit for a new assignment."),
    KINT("alert", "sound_s", alert.sound_s, 1, 60, 3,
         "How long the sounder sounds for a new (not silent) assignment."),

    KENUM("input", "backend", input.backend, config_input_names, "none",
          "Panic button: evdev (a key of an input device), gpio (a GPIO line) or none."),
    KSTR("input", "device", input.device, "", OPT, check_input_device,
         "evdev: the input device (/dev/input/...); gpio: CHIP:OFFSET."),
    KINT("input", "key", input.key, 0, 767, 0,
         "evdev: the key code of the panic button (linux/input-event-codes.h); 0: "
         "KEY_PROG1 (148)."),
    KENUM("input", "level", input.level, levels, "high",
          "gpio: the line's level while the button is pressed."),
    KINT("input", "long_press_ms", input.long_press_ms, 500, 10000, 2000,
         "Holding the button this long raises SOS."),
    KINT("input", "double_press_ms", input.double_press_ms, 150, 2000, 600,
         "A second press within this of the first raises SOS."),

    KENUM("power", "backend", power.backend, config_power_names, "none",
          "Power sensing: sysfs (power_supply class and ignition) or none."),
    KSTR("power", "ignition", power.ignition, "", OPT, check_ignition,
         "Ignition sense: file:PATH (a 0/1 value file) or gpio:CHIP:OFFSET; empty: none."),
    KENUM("power", "ignition_level", power.ignition_level, levels, "high",
          "The ignition line's level while the ignition is on."),
    KINT("power", "poll_s", power.poll_s, 1, 3600, 60,
         "Seconds between backstop readings of the power supplies and the ignition "
         "(changes with events are read at once)."),
    KENUM("power", "fallback", power.fallback, config_power_source_names, "vehicle",
          "Power source reported in heartbeats when nothing is sensed."),

    KENUM("link", "backend", link.backend, config_link_names, "netlink",
          "Link events that start a sync at once: netlink or none."),

    KENUM("clock", "backend", clock.backend, config_clock_names, "sysfs",
          "Real-time clock presence: sysfs (/sys/class/rtc) or none."),
    KSTR("clock", "rtc", clock.rtc, "", OPT, check_hwname,
         "RTC device (/sys/class/rtc/NAME); empty: the first one."),
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* Longest part of a value quoted in a message: enough to spot a typo, too
 * little to leak a credential pasted into the wrong key. */
#define EXCERPT_MAX 20
#define MSG_MAX     512

size_t config_key_count(void)
{
	return NKEYS;
}

const struct config_key_info *config_key_at(size_t i)
{
	return i < NKEYS ? &keys[i].info : NULL;
}

static const struct key *find_key(const char *section, const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].info.section, section) == 0 &&
		    strcmp(keys[i].info.key, name) == 0)
			return &keys[i];
	return NULL;
}

static const char *find_section(const char *section)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].info.section, section) == 0)
			return keys[i].info.section;
	return NULL;
}

/* "excerpt" with non-printable bytes escaped, or the word "value" for a
 * secret key. out must hold 2 + 4 * EXCERPT_MAX + 4 bytes. */
static void excerpt(const char *v, int secret, char *out, size_t cap)
{
	if (secret) {
		snprintf(out, cap, "value");
		return;
	}
	size_t o = 0, i;
	out[o++] = '"';
	for (i = 0; v[i] && i < EXCERPT_MAX && o + 8 < cap; i++) {
		unsigned char ch = (unsigned char)v[i];
		if (ch == '"' || ch == '\\') {
			out[o++] = '\\';
			out[o++] = (char)ch;
		} else if (ch < 0x20 || ch >= 0x7f) {
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
		} else {
			out[o++] = (char)ch;
		}
	}
	if (v[i]) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o++] = '"';
	out[o] = '\0';
}

int config_parse_int(const char *s, long long *out)
{
	/* strtoll alone skips leading blanks, takes '+' and stops quietly at
	 * junk; here only [-]digits with nothing after is a number. */
	const char *p = s[0] == '-' ? s + 1 : s;
	if (*p < '0' || *p > '9')
		return -EINVAL;
	char *end = NULL;
	errno = 0;
	long long x = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		return -EINVAL;
	*out = x;
	return 0;
}

int config_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int fail(char *msg, size_t msglen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, msglen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int is_b64_key(const char *s, size_t len)
{
	unsigned char bin[33];
	size_t n = 0;
	return sodium_base642bin(bin, sizeof(bin), s, len, NULL, &n, NULL,
	                         sodium_base64_VARIANT_ORIGINAL) == 0 &&
	       n == 32;
}

static int check_url(const char *v, char *msg, size_t msglen)
{
	const char *host;
	if (strncmp(v, "https://", 8) == 0)
		host = v + 8;
	else if (strncmp(v, "http://", 7) == 0)
		host = v + 7;
	else
		return fail(msg, msglen, "must start with https:// or http://");
	size_t hlen = strcspn(host, "/");
	if (hlen == 0 || host[0] == ':')
		return fail(msg, msglen, "has no host");
	if (memchr(host, '@', hlen))
		return fail(msg, msglen,
		            "must not hold credentials (user@): devices sign requests");
	if (strpbrk(v, " \t"))
		return fail(msg, msglen, "must not contain spaces");
	if (strpbrk(v, "?#"))
		return fail(msg, msglen, "must not hold a query or fragment");
	if (v[strlen(v) - 1] == '/')
		return fail(msg, msglen, "must not end with '/': request paths are appended");
	return 0;
}

static int check_pin(const char *v, char *msg, size_t msglen)
{
	if (v[0] == '/')
		return 0;
	for (const char *p = v;;) {
		size_t n = strcspn(p, ";");
		if (n < 8 || strncmp(p, "sha256//", 8) != 0 || !is_b64_key(p + 8, n - 8))
			return fail(msg, msglen,
			            "must be sha256//<base64 of 32 bytes>, several joined by ';', "
			            "or an absolute file path");
		if (p[n] == '\0')
			return 0;
		p += n + 1;
	}
}

static int check_key64(const char *v, char *msg, size_t msglen)
{
	if (!is_b64_key(v, strlen(v)))
		return fail(msg, msglen, "is not standard base64 of a 32-byte key");
	return 0;
}

static int check_token(const char *v, char *msg, size_t msglen)
{
	for (const char *p = v; *p; p++)
		if (*p <= ' ' || *p > '~')
			return fail(msg, msglen, "must be printable ASCII without spaces");
	return 0;
}

static int only_chars(const char *v, const char *extra)
{
	for (const char *p = v; *p; p++) {
		char ch = *p;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || strchr(extra, ch)))
			return 0;
	}
	return 1;
}

static int check_host(const char *v, char *msg, size_t msglen)
{
	/* Names, IPv4 and bare IPv6 literals; a leading '-' would read as an option
	 * to anything this is passed to. */
	if (v[0] == '-' || !only_chars(v, ".-_:"))
		return fail(msg, msglen, "is not a host name or address");
	return 0;
}

static int check_group(const char *v, char *msg, size_t msglen)
{
	/* The shadow-utils rule: [a-z_][a-z0-9_-]*[$]? */
	size_t n = strlen(v);
	int ok = (v[0] >= 'a' && v[0] <= 'z') || v[0] == '_';
	for (size_t i = 1; ok && i < n; i++) {
		char ch = v[i];
		ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' ||
		     ch == '-' || (ch == '$' && i == n - 1);
	}
	if (!ok)
		return fail(msg, msglen, "is not a unix group name ([a-z_][a-z0-9_-]*)");
	return 0;
}

static int check_board(const char *v, char *msg, size_t msglen)
{
	if (v[0] == '.' || v[0] == '-' || !only_chars(v, "._-"))
		return fail(msg, msglen, "may hold only letters, digits, '.', '_' and '-'");
	return 0;
}

static int check_hwname(const char *v, char *msg, size_t msglen)
{
	if (!hal_sysfs_name_ok(v))
		return fail(msg, msglen, "must be a device name (no '/', not . or ..)");
	return 0;
}

static int gpio_ok(const char *v)
{
	char chip[HAL_GPIO_CHIP_MAX];
	unsigned off;
	return hal_gpio_parse(v, chip, &off) == 0;
}

static int check_sounder(const char *v, char *msg, size_t msglen)
{
	if ((!strncmp(v, "led:", 4) && hal_sysfs_name_ok(v + 4)) ||
	    (!strncmp(v, "gpio:", 5) && gpio_ok(v + 5)))
		return 0;
	return fail(msg, msglen, "must be led:NAME or gpio:CHIP:OFFSET (offset 0..1023)");
}

static int check_input_device(const char *v, char *msg, size_t msglen)
{
	if ((!strncmp(v, "/dev/input/", 11) && v[11] && !strstr(v, "..")) || gpio_ok(v))
		return 0;
	return fail(msg, msglen, "must be a path under /dev/input/ or CHIP:OFFSET");
}

static int check_ignition(const char *v, char *msg, size_t msglen)
{
	if ((!strncmp(v, "file:/", 6) && v[6] && !strstr(v, "..")) ||
	    (!strncmp(v, "gpio:", 5) && gpio_ok(v + 5)))
		return 0;
	return fail(msg, msglen, "must be file:/ABSOLUTE/PATH or gpio:CHIP:OFFSET");
}

static int enum_index(const char *const *names, const char *v)
{
	for (int i = 0; names[i]; i++)
		if (strcmp(names[i], v) == 0)
			return i;
	return -1;
}

/* Validates v for k and, only when valid, stores it in c. */
static int apply(const struct key *k, struct config *c, const char *v, char *msg, size_t msglen)
{
	const struct config_key_info *in = &k->info;
	char *field = (char *)c + k->off;
	char ex[2 + 4 * EXCERPT_MAX + 8];
	excerpt(v, in->flags & CONFIG_KEY_SECRET, ex, sizeof(ex));
	int n = snprintf(msg, msglen, "%s.%s: ", in->section, in->key);
	char *m = msg + (n > 0 && (size_t)n < msglen ? (size_t)n : 0);
	size_t mlen = msglen - (size_t)(m - msg);

	switch (k->type) {
	case T_INT: {
		long long x;
		if (config_parse_int(v, &x) < 0)
			return fail(m, mlen, "%s is not a decimal integer", ex);
		if (x < in->min || x > in->max)
			return fail(m, mlen, "%s is out of range %lld..%lld", ex, in->min, in->max);
		int iv = (int)x;
		memcpy(field, &iv, sizeof(iv));
		return 0;
	}
	case T_BOOL: {
		bool b;
		if (config_parse_bool(v, &b) < 0)
			return fail(m, mlen,
			            "%s is not a boolean (true/false, yes/no, on/off, 1/0)", ex);
		memcpy(field, &b, sizeof(b));
		return 0;
	}
	case T_ENUM: {
		int iv = enum_index(in->names, v);
		if (iv < 0) {
			int o = snprintf(m, mlen, "%s is not one of", ex);
			for (size_t i = 0; in->names[i] && o > 0 && (size_t)o < mlen; i++)
				o += snprintf(m + o, mlen - (size_t)o, "%s %s", i ? "," : "",
				              in->names[i]);
			return -EINVAL;
		}
		memcpy(field, &iv, sizeof(iv));
		return 0;
	}
	case T_STRING:
	case T_PATH:
		break;
	}

	size_t len = strlen(v);
	if (len == 0 && !(in->flags & CONFIG_KEY_EMPTY_OK))
		return fail(m, mlen, "must not be empty");
	if (len >= k->size)
		return fail(m, mlen, "value is too long (%zu bytes, at most %zu)", len,
		            k->size - 1);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			return fail(m, mlen, "value holds a control character");
	if (len > 0 && k->type == T_PATH && v[0] != '/')
		return fail(m, mlen, "%s is not an absolute path", ex);
	if (len > 0 && k->check && k->check(v, m, mlen) < 0)
		return -EINVAL;
	/* The whole array: no tail of an older, longer value stays behind. */
	memset(field, 0, k->size);
	memcpy(field, v, len);
	return 0;
}

/* Rules between keys. *a and *b name the two keys involved so that a file
 * error can point at the line that set the later one. */
static int cross_check(const struct config *c, char *msg, size_t msglen, const char **a,
                       const char **b)
{
	*a = "long_poll_s";
	*b = "request_timeout_s";
	if (c->server.long_poll_s >= c->server.request_timeout_s)
		return fail(msg, msglen,
		            "server.long_poll_s (%d) must be shorter than "
		            "server.request_timeout_s (%d)",
		            c->server.long_poll_s, c->server.request_timeout_s);
	*a = "input.backend";
	*b = "input.device";
	const char *dev = c->input.device;
	if (c->input.backend == CONFIG_INPUT_EVDEV && strncmp(dev, "/dev/input/", 11) != 0)
		return fail(msg, msglen,
		            "input.backend evdev needs input.device under /dev/input/");
	if (c->input.backend == CONFIG_INPUT_GPIO && !gpio_ok(dev))
		return fail(msg, msglen, "input.backend gpio needs input.device as CHIP:OFFSET");
	return 0;
}

void config_defaults(struct config *c)
{
	char msg[MSG_MAX];
	memset(c, 0, sizeof(*c));
	/* Through apply so that a default is held to its own key's rules
	 * (tests check each one); a required key without default stays empty. */
	for (size_t i = 0; i < NKEYS; i++)
		(void)apply(&keys[i], c, keys[i].info.def, msg, sizeof(msg));
}

int config_set(struct config *c, const char *section, const char *key, const char *value, char *err,
               size_t errlen)
{
	char msg[MSG_MAX];
	const char *a, *b;
	const struct key *k = find_key(section, key);
	if (!k) {
		if (err && errlen)
			snprintf(err, errlen, "%s.%s: unknown key", section, key);
		return -ENOENT;
	}
	struct config tmp = *c;
	int rc = apply(k, &tmp, value, msg, sizeof(msg));
	if (rc == 0)
		rc = cross_check(&tmp, msg, sizeof(msg), &a, &b);
	if (rc == 0)
		*c = tmp;
	else if (err && errlen)
		snprintf(err, errlen, "%s", msg);
	sodium_memzero(&tmp, sizeof(tmp));
	return rc;
}

/* ---- the file parser ---- */

enum sec_state { SEC_NONE, SEC_KNOWN, SEC_SKIP };

struct parser {
	const char *name;
	config_error_fn on_error;
	void *arg;
	unsigned errors;
	unsigned line;
	enum sec_state state;
	const char *section;
	unsigned seen[NKEYS]; /* line that set each key, 0 if none */
	char buf[CONFIG_LINE_MAX + 1];
	char val[CONFIG_LINE_MAX + 1];
	struct config cfg;
};

static void report(struct parser *p, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report(struct parser *p, unsigned line, const char *fmt, ...)
{
	char msg[MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p->errors++;
	if (p->on_error)
		p->on_error(p->arg, p->name, line, msg);
}

static int is_space(char ch)
{
	return ch == ' ' || ch == '\t';
}

static char *trim(char *s)
{
	while (is_space(*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && is_space(s[n - 1]))
		s[--n] = '\0';
	return s;
}

static int is_name(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return 0;
	return 1;
}

static void parse_section(struct parser *p, char *s)
{
	char ex[2 + 4 * EXCERPT_MAX + 8];
	char *close = strchr(s, ']');
	/* A broken header hides which section the next keys belong to: skip
	 * them rather than report each against the previous section. */
	p->state = SEC_SKIP;
	if (!close) {
		report(p, p->line, "section header without ']'");
		return;
	}
	*close = '\0';
	char *rest = trim(close + 1);
	if (*rest && *rest != '#' && *rest != ';') {
		report(p, p->line, "text after section header");
		return;
	}
	char *name = trim(s + 1);
	excerpt(name, 0, ex, sizeof(ex));
	if (!is_name(name)) {
		report(p, p->line, "bad section name %s", ex);
		return;
	}
	p->section = find_section(name);
	if (!p->section) {
		report(p, p->line, "unknown section [%s]", name);
		return;
	}
	p->state = SEC_KNOWN;
}

/* Copies the value after '=' into p->val: quoted with \" and \\ escapes, or
 * bare up to a '#' that starts it or follows a blank. */
static int parse_value(struct parser *p, const char *s)
{
	while (is_space(*s))
		s++;
	char *o = p->val;
	if (*s != '"') {
		const char *e = s;
		while (*e && !(*e == '#' && (e == s || is_space(e[-1]))))
			e++;
		while (e > s && is_space(e[-1]))
			e--;
		memcpy(o, s, (size_t)(e - s));
		o[e - s] = '\0';
		return 0;
	}
	for (s++;; s++) {
		if (*s == '\0') {
			report(p, p->line, "unterminated quoted value");
			return -EINVAL;
		}
		if (*s == '"')
			break;
		if (*s == '\\') {
			s++;
			if (*s != '"' && *s != '\\') {
				report(p, p->line,
				       "bad escape in quoted value (only \\\" and \\\\)");
				return -EINVAL;
			}
		}
		*o++ = *s;
	}
	*o = '\0';
	for (s++; is_space(*s); s++)
		;
	if (*s && *s != '#') {
		report(p, p->line, "text after closing quote");
		return -EINVAL;
	}
	return 0;
}

static void parse_keyval(struct parser *p, char *s)
{
	char msg[MSG_MAX];
	char *eq = strchr(s, '=');
	if (!eq) {
		report(p, p->line, "expected 'key = value', '[section]' or a comment");
		return;
	}
	*eq = '\0';
	char *name = trim(s);
	/* Not quoted back: a line missing its '=' may be a pasted secret. */
	if (!is_name(name)) {
		report(p, p->line, "bad key name (only a-z, 0-9 and '_')");
		return;
	}
	if (p->state == SEC_NONE) {
		report(p, p->line, "key %s before any [section]", name);
		return;
	}
	if (p->state == SEC_SKIP)
		return;
	const struct key *k = find_key(p->section, name);
	if (!k) {
		report(p, p->line, "unknown key %s in [%s]", name, p->section);
		return;
	}
	if (parse_value(p, eq + 1) < 0)
		return;
	size_t i = (size_t)(k - keys);
	if (p->seen[i]) {
		report(p, p->line, "%s.%s: set twice (first on line %u)", k->info.section,
		       k->info.key, p->seen[i]);
		return;
	}
	p->seen[i] = p->line;
	if (apply(k, &p->cfg, p->val, msg, sizeof(msg)) < 0)
		report(p, p->line, "%s", msg);
}

static void parse_line(struct parser *p, const char *s, size_t n)
{
	if (n > CONFIG_LINE_MAX) {
		report(p, p->line, "line longer than %d bytes", CONFIG_LINE_MAX);
		return;
	}
	if (memchr(s, '\0', n)) {
		report(p, p->line, "line holds a NUL byte");
		return;
	}
	memcpy(p->buf, s, n);
	p->buf[n] = '\0';
	if (n > 0 && p->buf[n - 1] == '\r')
		p->buf[--n] = '\0';
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p->buf[i];
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
			report(p, p->line, "line holds a control character (0x%02x)", ch);
			return;
		}
	}
	char *t = trim(p->buf);
	if (*t == '\0' || *t == '#' || *t == ';')
		return;
	if (*t == '[')
		parse_section(p, t);
	else
		parse_keyval(p, t);
}

/* key: "section.key", or a bare key of [server]. */
static unsigned line_of(const struct parser *p, const char *key)
{
	char sec[32] = "server";
	const char *dot = strchr(key, '.');
	if (dot && (size_t)(dot - key) < sizeof(sec)) {
		memcpy(sec, key, (size_t)(dot - key));
		sec[dot - key] = 0;
		key = dot + 1;
	}
	const struct key *k = find_key(sec, key);
	return k ? p->seen[k - keys] : 0;
}

int config_load_buffer(const char *name, const char *text, size_t len, struct config *out,
                       config_error_fn on_error, void *arg)
{
	char msg[MSG_MAX];
	const char *a, *b;
	struct parser *p = calloc(1, sizeof(*p));
	if (!p) {
		if (on_error)
			on_error(arg, name, 0, "out of memory");
		return -ENOMEM;
	}
	p->name = name;
	p->on_error = on_error;
	p->arg = arg;
	p->state = SEC_NONE;
	config_defaults(&p->cfg);

	for (size_t pos = 0; pos < len;) {
		const char *s = text + pos;
		const char *nl = memchr(s, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - s) : len - pos;
		pos += n + (nl ? 1 : 0);
		p->line++;
		parse_line(p, s, n);
	}

	for (size_t i = 0; i < NKEYS; i++)
		if ((keys[i].info.flags & CONFIG_KEY_REQUIRED) && !p->seen[i])
			report(p, 0, "%s.%s is required", keys[i].info.section, keys[i].info.key);
	if (cross_check(&p->cfg, msg, sizeof(msg), &a, &b) < 0) {
		unsigned la = line_of(p, a), lb = line_of(p, b);
		report(p, la > lb ? la : lb, "%s", msg);
	}

	int rc = p->errors ? -EINVAL : 0;
	if (rc == 0)
		*out = p->cfg;
	/* The buffers held every value, the enrollment token included. */
	sodium_memzero(p, sizeof(*p));
	free(p);
	return rc;
}

int config_load(const char *path, struct config *out, config_error_fn on_error, void *arg)
{
	char msg[MSG_MAX] = "";
	char *buf = NULL;
	size_t len = 0;
	int rc = 0;
	/* O_NONBLOCK: a FIFO given by mistake must not hang startup. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
		snprintf(msg, sizeof(msg), "cannot open: %s", strerror(-rc));
		goto out;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		snprintf(msg, sizeof(msg), "cannot stat: %s", strerror(-rc));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		snprintf(msg, sizeof(msg), "not a regular file");
		goto out;
	}
	if (st.st_size > CONFIG_FILE_MAX) {
		rc = -EINVAL;
		snprintf(msg, sizeof(msg), "larger than %d bytes", CONFIG_FILE_MAX);
		goto out;
	}
	/* One byte more than allowed, in case the file grew since fstat. */
	buf = malloc(CONFIG_FILE_MAX + 1);
	if (!buf) {
		rc = -ENOMEM;
		snprintf(msg, sizeof(msg), "out of memory");
		goto out;
	}
	while (len <= CONFIG_FILE_MAX) {
		ssize_t r = read(fd, buf + len, CONFIG_FILE_MAX + 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			snprintf(msg, sizeof(msg), "cannot read: %s", strerror(-rc));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (len > CONFIG_FILE_MAX) {
		rc = -EINVAL;
		snprintf(msg, sizeof(msg), "larger than %d bytes", CONFIG_FILE_MAX);
		goto out;
	}
	rc = config_load_buffer(path, buf, len, out, on_error, arg);
	msg[0] = '\0';
out:
	if (rc < 0 && msg[0] && on_error)
		on_error(arg, path, 0, msg);
	if (fd >= 0)
		close(fd);
	if (buf) {
		sodium_memzero(buf, len);
		free(buf);
	}
	return rc;
}

void config_error_log(void *arg, const char *file, unsigned line, const char *msg)
{
	(void)arg;
	if (line)
		log_errx("%s:%u: %s", file, line, msg);
	else
		log_errx("%s: %s", file, msg);
}

/* ---- dump ---- */

static int needs_quotes(const char *v)
{
	size_t n = strlen(v);
	return n == 0 || is_space(v[0]) || is_space(v[n - 1]) || v[0] == '"' || strchr(v, '#');
}

static void dump_string(FILE *f, const char *v)
{
	if (!needs_quotes(v)) {
		fputs(v, f);
		return;
	}
	fputc('"', f);
	for (; *v; v++) {
		if (*v == '"' || *v == '\\')
			fputc('\\', f);
		fputc(*v, f);
	}
	fputc('"', f);
}

int config_dump(const struct config *c, FILE *f)
{
	const char *section = NULL;
	fputs("# ESS agent configuration (docs/config.md)\n", f);
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		const char *field = (const char *)c + k->off;
		if (!section || strcmp(section, k->info.section) != 0) {
			section = k->info.section;
			fprintf(f, "\n[%s]\n", section);
		}
		fprintf(f, "# %s\n", k->info.desc);
		if (k->info.flags & CONFIG_KEY_SECRET) {
			fprintf(f, "# %s: omitted (secret)\n", k->info.key);
			continue;
		}
		fprintf(f, "%s = ", k->info.key);
		int iv;
		bool bv;
		switch (k->type) {
		case T_INT:
			memcpy(&iv, field, sizeof(iv));
			fprintf(f, "%d", iv);
			break;
		case T_BOOL:
			memcpy(&bv, field, sizeof(bv));
			fputs(bv ? "true" : "false", f);
			break;
		case T_ENUM: {
			memcpy(&iv, field, sizeof(iv));
			size_t n = 0;
			while (k->info.names[n])
				n++;
			if (iv < 0 || (size_t)iv >= n)
				return -EINVAL;
			fputs(k->info.names[iv], f);
			break;
		}
		case T_STRING:
		case T_PATH:
			if (!memchr(field, '\0', k->size))
				return -EINVAL;
			dump_string(f, field);
			break;
		}
		fputc('\n', f);
	}
	return ferror(f) ? -EIO : 0;
}
