/* Configuration: one strict INI-style file (docs/config.md), one table of
 * keys in config.c that holds every key's type, bounds, default and meaning.
 *
 * Strict because a field device that starts with a typo in its file would
 * silently run on defaults: unknown sections and keys, duplicates, bad
 * values and missing required keys are all errors, every one reported as
 * file:line before loading fails. Messages name keys and quote at most a
 * short, escaped excerpt of a value, never a value of a secret key.
 *
 * Nothing here touches global state: errors go to the caller's callback or
 * buffer, and the result is a plain struct the caller owns. */
#ifndef ESS_CONFIG_H
#define ESS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "agent/log.h"

/* Sizes of the string fields, terminating NUL included. A longer value is an
 * error, never cut. */
#define CONFIG_PATH_SIZE   256 /* leaves room for the store's file names under PATH_MAX */
#define CONFIG_SOCKET_SIZE 108 /* sizeof(sockaddr_un.sun_path) */
#define CONFIG_URL_SIZE    513
#define CONFIG_PIN_SIZE    513
#define CONFIG_KEY64_SIZE  45 /* base64 of 32 bytes, padded */
#define CONFIG_TOKEN_SIZE  129
#define CONFIG_HOST_SIZE   256
#define CONFIG_GROUP_SIZE  33
#define CONFIG_BOARD_SIZE  65

/* Files larger than this are refused: a config file is a few kilobytes, so a
 * bigger one is a mistake (a log or a database given by path). */
#define CONFIG_FILE_MAX (1024 * 1024)
/* Longest line, newline excluded. */
#define CONFIG_LINE_MAX 4096

enum config_keystore { CONFIG_KEYSTORE_FILE = 0, CONFIG_KEYSTORE_NONE };
/* Hardware backends (docs/hal.md); the values index the names in config.c. */
enum config_alert { CONFIG_ALERT_NONE = 0, CONFIG_ALERT_SYSFS };
enum config_input { CONFIG_INPUT_NONE = 0, CONFIG_INPUT_EVDEV, CONFIG_INPUT_GPIO };
enum config_power { CONFIG_POWER_NONE = 0, CONFIG_POWER_SYSFS };
enum config_power_source { CONFIG_POWER_VEHICLE = 0, CONFIG_POWER_AC, CONFIG_POWER_BATTERY };
enum config_level { CONFIG_LEVEL_HIGH = 0, CONFIG_LEVEL_LOW };
enum config_link { CONFIG_LINK_NETLINK = 0, CONFIG_LINK_NONE };
enum config_clock { CONFIG_CLOCK_SYSFS = 0, CONFIG_CLOCK_NONE };
/* The names of the values above, indexed by them (NULL-terminated): the
 * tables config_load parses with, and what hal_*_open takes as a backend. */
extern const char *const config_keystore_names[];
extern const char *const config_alert_names[];
extern const char *const config_input_names[];
extern const char *const config_power_names[];
extern const char *const config_power_source_names[];
extern const char *const config_link_names[];
extern const char *const config_clock_names[];
#define CONFIG_HWNAME_SIZE 65 /* a device name under /sys/class/<class>/ */
#define CONFIG_HWSPEC_SIZE 81 /* "led:NAME", "gpio:CHIP:OFFSET" */

/* The effective configuration. Empty strings mean "not set" for optional
 * keys. See docs/config.md for every key. */
struct config {
	struct {
		enum log_level level;
		enum log_target target;
	} log;
	struct {
		char dir[CONFIG_PATH_SIZE];
		int retention_hours;
		int audit_retention_days;
		int position_flush_s;
		int max_positions;
	} store;
	struct {
		enum config_keystore backend;
		char key_file[CONFIG_PATH_SIZE];
	} keystore;
	struct {
		char url[CONFIG_URL_SIZE]; /* no trailing '/': API paths are appended */
		char ca_file[CONFIG_PATH_SIZE];
		char pinned_pubkey[CONFIG_PIN_SIZE];
		char server_key[CONFIG_KEY64_SIZE]; /* validated to decode to 32 bytes */
		char enroll_token[CONFIG_TOKEN_SIZE];
		char enroll_token_file[CONFIG_PATH_SIZE];
		int connect_timeout_s;
		int request_timeout_s;
		int long_poll_s;
	} server;
	struct {
		char host[CONFIG_HOST_SIZE];
		int port;
		int interval_s;
		int min_distance_m;
		int active_interval_s;
		int battery_interval_s;
	} gps;
	struct {
		char socket[CONFIG_SOCKET_SIZE];
		char group[CONFIG_GROUP_SIZE];
	} control;
	struct {
		char board[CONFIG_BOARD_SIZE];
		char serial_file[CONFIG_PATH_SIZE];
	} device;
	struct {
		int interval_s;
	} heartbeat;
	struct {
		enum config_alert backend;
		char led[CONFIG_HWNAME_SIZE];
		char sounder[CONFIG_HWSPEC_SIZE];
		char backlight[CONFIG_HWNAME_SIZE];
		int duration_s;
		int sound_s;
	} alert;
	struct {
		enum config_input backend;
		char device[CONFIG_PATH_SIZE];
		int key;
		enum config_level level;
		int long_press_ms;
		int double_press_ms;
	} input;
	struct {
		enum config_power backend;
		char ignition[CONFIG_PATH_SIZE];
		enum config_level ignition_level;
		int poll_s;
		enum config_power_source fallback;
	} power;
	struct {
		enum config_link backend;
	} link;
	struct {
		enum config_clock backend;
		char rtc[CONFIG_HWNAME_SIZE];
	} clock;
};

/* Receives one error. line is 0 when the error belongs to the whole file (a
 * missing required key, a file that cannot be read). msg names the key and
 * holds no secret value. Called once per error, in file order. */
typedef void (*config_error_fn)(void *arg, const char *file, unsigned line, const char *msg);

/* A ready config_error_fn: logs "file:line: msg" (or "file: msg" for line 0)
 * with log_errx. arg is unused. */
void config_error_log(void *arg, const char *file, unsigned line, const char *msg);

/* Fills c with every key's default (optional keys without one are empty).
 * The result is not loadable as is: server.url is required. */
void config_defaults(struct config *c);

/* Reads path and parses it (config_load_buffer). Returns 0; -EINVAL when the
 * file has any error (all reported through on_error first), is not a regular
 * file or is larger than CONFIG_FILE_MAX; or the negative errno of open/read
 * (reported through on_error with line 0, naming the file). On success out
 * holds the defaults overlaid with the file's values; on failure out is left
 * untouched. on_error may be NULL. */
int config_load(const char *path, struct config *out, config_error_fn on_error, void *arg);

/* The same from memory: text holds len bytes, not NUL-terminated (NUL bytes
 * inside are errors). name is what errors call the file. Returns 0 or
 * -EINVAL (after reporting every error); out as for config_load. */
int config_load_buffer(const char *name, const char *text, size_t len, struct config *out,
                       config_error_fn on_error, void *arg);

/* Sets one key from its text form (raw: no quotes or escapes), with the
 * validation a file gets, including checks between keys against c's other
 * values. Returns 0; -ENOENT for an unknown section or key; -EINVAL for a
 * bad value. On error c is unchanged and err (may be NULL) receives
 * "section.key: message". */
int config_set(struct config *c, const char *section, const char *key, const char *value, char *err,
               size_t errlen);

/* Writes c in the file format, one commented key per line, so that loading
 * the output gives back c. Secret keys are left out (a comment says so):
 * their values are never written anywhere. Returns 0 or a negative errno. */
int config_dump(const struct config *c, FILE *f);

/* Number syntax: plain decimal, optional '-', no spaces, no '+', no 0x, no
 * trailing text, within long long. Returns 0 or -EINVAL. */
int config_parse_int(const char *s, long long *out);
/* true/false, yes/no, on/off, 1/0 (lower case). Returns 0 or -EINVAL. */
int config_parse_bool(const char *s, bool *out);

/* The key table, read-only, for documentation, tools and tests. */
enum config_key_flags {
	CONFIG_KEY_REQUIRED = 1, /* must be set, and not empty */
	CONFIG_KEY_SECRET = 2,   /* value never appears in messages or dumps */
	CONFIG_KEY_EMPTY_OK = 4, /* an empty value means "not set" */
};

struct config_key_info {
	const char *section;
	const char *key;
	const char *type;         /* "string", "path", "int", "bool", "enum" */
	const char *def;          /* default, in the file's syntax; "" when none */
	long long min, max;       /* int: bounds; string, path: max = longest length in bytes */
	const char *const *names; /* enum: allowed names, NULL-terminated; else NULL */
	unsigned flags;           /* enum config_key_flags */
	const char *desc;         /* one line */
};

size_t config_key_count(void);
/* NULL when i >= config_key_count(). Table order groups keys by section. */
const struct config_key_info *config_key_at(size_t i);

#endif
