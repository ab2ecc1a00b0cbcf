/* The configuration parser: defaults, a full file, every kind of error with
 * its exact file:line, secrets kept out of messages, config_set, dump and
 * reload, and the file loader's limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/config.h"
#include "tests/lib/testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define URL_LINES "[server]\nurl = https://ess.example.go.th/api\n"

/* Every error of one load, formatted as the daemon prints them. */
#define ERRS_MAX 40
struct errs {
	unsigned n;
	char msg[ERRS_MAX][600];
};

static void collect(void *arg, const char *file, unsigned line, const char *msg)
{
	struct errs *e = arg;
	if (e->n < ERRS_MAX) {
		if (line)
			snprintf(e->msg[e->n], sizeof(e->msg[0]), "%s:%u: %s", file, line, msg);
		else
			snprintf(e->msg[e->n], sizeof(e->msg[0]), "%s: %s", file, msg);
	}
	e->n++;
}

static struct errs *errs_new(void)
{
	struct errs *e = calloc(1, sizeof(*e));
	assert_non_null(e);
	return e;
}

static int load_text(const char *text, struct config *c, struct errs *e)
{
	memset(e, 0, sizeof(*e));
	return config_load_buffer("t.conf", text, strlen(text), c, collect, e);
}

/* Loads text, expects exactly one error equal to want, and out untouched. */
static void expect_one(const char *text, const char *want)
{
	struct errs *e = errs_new();
	struct config c, before;
	memset(&c, 0x5a, sizeof(c));
	before = c;
	assert_int_equal(load_text(text, &c, e), -EINVAL);
	if (e->n != 1 || strcmp(e->msg[0], want) != 0) {
		for (unsigned i = 0; i < e->n && i < ERRS_MAX; i++)
			print_message("# got: %s\n", e->msg[i]);
		print_message("# want: %s\n", want);
	}
	assert_int_equal(e->n, 1);
	assert_string_equal(e->msg[0], want);
	assert_memory_equal(&c, &before, sizeof(c));
	free(e);
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
	*state = tu_tmpdir("config");
	return 0;
}

static int teardown(void **state)
{
	tu_rmrf(*state);
	return 0;
}

/* ---- defaults and the table ---- */

static void test_defaults(void **state)
{
	(void)state;
	struct config c;
	memset(&c, 0x7f, sizeof(c));
	config_defaults(&c);
	assert_int_equal(c.log.level, LOG_LEVEL_INFO);
	assert_int_equal(c.log.target, LOG_TARGET_STDERR);
	assert_string_equal(c.store.dir, "/var/lib/ess");
	assert_int_equal(c.store.retention_hours, 72);
	assert_int_equal(c.store.audit_retention_days, 90);
	assert_int_equal(c.store.position_flush_s, 30);
	assert_int_equal(c.store.max_positions, 1000000);
	assert_int_equal(c.keystore.backend, CONFIG_KEYSTORE_FILE);
	assert_string_equal(c.keystore.key_file, "/etc/ess/kek");
	assert_string_equal(c.server.url, "");
	assert_string_equal(c.server.ca_file, "");
	assert_string_equal(c.server.pinned_pubkey, "");
	assert_string_equal(c.server.server_key, "");
	assert_string_equal(c.server.enroll_token, "");
	assert_string_equal(c.server.enroll_token_file, "");
	assert_int_equal(c.server.connect_timeout_s, 10);
	assert_int_equal(c.server.request_timeout_s, 60);
	assert_int_equal(c.server.long_poll_s, 25);
	assert_string_equal(c.gps.host, "localhost");
	assert_int_equal(c.gps.port, 2947);
	assert_int_equal(c.gps.interval_s, 5);
	assert_int_equal(c.gps.min_distance_m, 10);
	assert_int_equal(c.gps.active_interval_s, 1);
	assert_string_equal(c.control.socket, "/run/ess/essd.sock");
	assert_string_equal(c.control.group, "");
	assert_string_equal(c.device.board, "host");
	assert_string_equal(c.device.serial_file, "/etc/ess/serial");
	assert_int_equal(c.heartbeat.interval_s, 60);
}

static void test_key_table(void **state)
{
	(void)state;
	size_t n = config_key_count();
	assert_int_equal(n, 49);
	assert_null(config_key_at(n));
	struct config c;
	config_defaults(&c);
	for (size_t i = 0; i < n; i++) {
		const struct config_key_info *k = config_key_at(i);
		assert_non_null(k);
		assert_true(strlen(k->desc) > 10);
		/* Unique names, sections contiguous (the dump relies on it). */
		for (size_t j = 0; j < i; j++) {
			const struct config_key_info *o = config_key_at(j);
			assert_false(strcmp(o->section, k->section) == 0 &&
			             strcmp(o->key, k->key) == 0);
			if (j + 1 < i && strcmp(o->section, k->section) == 0)
				assert_string_equal(config_key_at(j + 1)->section, k->section);
		}
		/* Every default obeys its own key's rules. */
		char err[256] = "";
		int rc = config_set(&c, k->section, k->key, k->def, err, sizeof(err));
		if (k->flags & CONFIG_KEY_REQUIRED)
			assert_int_equal(rc, -EINVAL);
		else
			assert_int_equal(rc, 0);
	}
	const struct config_key_info *port = config_key_at(19);
	assert_string_equal(port->section, "gps");
	assert_string_equal(port->key, "port");
	assert_string_equal(port->type, "int");
	assert_string_equal(port->def, "2947");
	assert_int_equal(port->min, 1);
	assert_int_equal(port->max, 65535);
	const struct config_key_info *lvl = config_key_at(0);
	assert_string_equal(lvl->type, "enum");
	assert_string_equal(lvl->names[3], "debug");
	assert_null(lvl->names[4]);
	const struct config_key_info *url = config_key_at(9);
	assert_string_equal(url->key, "url");
	assert_int_equal(url->max, 512);
	assert_int_equal(url->flags, CONFIG_KEY_REQUIRED);
	assert_true(config_key_at(13)->flags & CONFIG_KEY_SECRET);
}

/* docs/config.md has one table per section; each key's row must start with
 * what the table says (type, default, bounds), so the two cannot drift. */
static void test_docs_match_table(void **state)
{
	(void)state;
	size_t len;
	unsigned char *raw = tu_read_file("docs/config.md", &len);
	assert_non_null(raw);
	char *doc = (char *)raw;
	doc[len] = '\0'; /* tu_read_file always leaves room */
	for (size_t i = 0; i < config_key_count(); i++) {
		const struct config_key_info *k = config_key_at(i);
		char head[64], row[512], def[128], allowed[256] = "";
		snprintf(head, sizeof(head), "\n## [%s]\n", k->section);
		char *start = strstr(doc, head);
		assert_non_null(start);
		char *end = strstr(start + 1, "\n## ");
		if (end)
			*end = '\0';
		if (k->def[0])
			snprintf(def, sizeof(def), "`%s`", k->def);
		else
			snprintf(def, sizeof(def), "%s",
			         k->flags & CONFIG_KEY_REQUIRED ? "**required**" : "(empty)");
		if (strcmp(k->type, "int") == 0) {
			snprintf(allowed, sizeof(allowed), "%lld..%lld |", k->min, k->max);
		} else if (strcmp(k->type, "enum") == 0) {
			for (size_t j = 0; k->names[j]; j++)
				snprintf(allowed + strlen(allowed),
				         sizeof(allowed) - strlen(allowed), "%s`%s`", j ? ", " : "",
				         k->names[j]);
			strcat(allowed, " |");
		} else {
			snprintf(allowed, sizeof(allowed), "%sat most %lld bytes",
			         strcmp(k->type, "path") == 0 ? "absolute, " : "", k->max);
		}
		snprintf(row, sizeof(row), "\n| `%s` | %s | %s | %s", k->key, k->type, def,
		         allowed);
		if (!strstr(start, row))
			print_message("# docs/config.md lacks: %s\n", row + 1);
		assert_non_null(strstr(start, row));
		if (end)
			*end = '\n';
	}
	free(raw);
}

/* ---- valid files ---- */

static const char FULL[] = "# every key\n"
                           "[log]\n"
                           "level = debug\n"
                           "target = journal\n"
                           "\n"
                           "[store]\n"
                           "dir = /data/ess\n"
                           "retention_hours = 8760\n"
                           "audit_retention_days = 1\n"
                           "position_flush_s = 600\n"
                           "max_positions = 10000\n"
                           "[keystore]\n"
                           "backend = none\n"
                           "key_file = /data/kek\n"
                           "[server]\n"
                           "url = https://ess.example.go.th/api\n"
                           "ca_file = /etc/ess/ca.pem\n"
                           "pinned_pubkey = sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=;"
                           "sha256//AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n"
                           "server_key = AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\n"
                           "enroll_token = tok-0123456789\n"
                           "connect_timeout_s = 120\n"
                           "request_timeout_s = 5\n"
                           "long_poll_s = 0\n"
                           "[gps]\n"
                           "host = gps.local\n"
                           "port = 65535\n"
                           "interval_s = 3600\n"
                           "min_distance_m = 0\n"
                           "active_interval_s = 2\n"
                           "[control]\n"
                           "socket = /run/essd.sock\n"
                           "group = ess-ui\n"
                           "[device]\n"
                           "board = rugged-x1.2\n"
                           "serial_file = /sys/firmware/serial\n"
                           "[heartbeat]\n"
                           "interval_s = 10\n";

static void check_full(const struct config *c)
{
	assert_int_equal(c->log.level, LOG_LEVEL_DEBUG);
	assert_int_equal(c->log.target, LOG_TARGET_JOURNAL);
	assert_string_equal(c->store.dir, "/data/ess");
	assert_int_equal(c->store.retention_hours, 8760);
	assert_int_equal(c->store.audit_retention_days, 1);
	assert_int_equal(c->store.position_flush_s, 600);
	assert_int_equal(c->store.max_positions, 10000);
	assert_int_equal(c->keystore.backend, CONFIG_KEYSTORE_NONE);
	assert_string_equal(c->keystore.key_file, "/data/kek");
	assert_string_equal(c->server.url, "https://ess.example.go.th/api");
	assert_string_equal(c->server.ca_file, "/etc/ess/ca.pem");
	assert_string_equal(c->server.pinned_pubkey,
	                    "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=;"
	                    "sha256//AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=");
	assert_string_equal(c->server.server_key, "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=");
	assert_int_equal(c->server.connect_timeout_s, 120);
	assert_int_equal(c->server.request_timeout_s, 5);
	assert_int_equal(c->server.long_poll_s, 0);
	assert_string_equal(c->gps.host, "gps.local");
	assert_int_equal(c->gps.port, 65535);
	assert_int_equal(c->gps.interval_s, 3600);
	assert_int_equal(c->gps.min_distance_m, 0);
	assert_int_equal(c->gps.active_interval_s, 2);
	assert_string_equal(c->control.socket, "/run/essd.sock");
	assert_string_equal(c->control.group, "ess-ui");
	assert_string_equal(c->device.board, "rugged-x1.2");
	assert_string_equal(c->device.serial_file, "/sys/firmware/serial");
	assert_int_equal(c->heartbeat.interval_s, 10);
}

static void test_full_file(void **state)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/essd.conf", (const char *)*state);
	write_file(path, FULL, strlen(FULL));
	struct errs *e = errs_new();
	struct config c;
	assert_int_equal(config_load(path, &c, collect, e), 0);
	assert_int_equal(e->n, 0);
	check_full(&c);
	assert_string_equal(c.server.enroll_token, "tok-0123456789");
	free(e);
}

static void test_sample_file(void **state)
{
	(void)state;
	struct errs *e = errs_new();
	struct config c;
	assert_int_equal(config_load("boards/host/essd.conf", &c, collect, e), 0);
	assert_int_equal(e->n, 0);
	assert_string_equal(c.server.url, "http://127.0.0.1:8080/api");
	assert_string_equal(c.gps.host, "127.0.0.1");
	assert_int_equal(c.log.level, LOG_LEVEL_DEBUG);
	free(e);
}

static void test_minimal_file(void **state)
{
	(void)state;
	struct errs *e = errs_new();
	struct config c, d;
	assert_int_equal(load_text(URL_LINES, &c, e), 0);
	config_defaults(&d);
	strcpy(d.server.url, "https://ess.example.go.th/api");
	assert_memory_equal(&c, &d, sizeof(c));
	free(e);
}

static void test_comments_blanks_crlf(void **state)
{
	(void)state;
	struct errs *e = errs_new();
	struct config c;
	const char *text = "# comment\r\n"
	                   "\n"
	                   "   \t\r\n"
	                   "  [ gps ]   # trailing comment\n"
	                   "\tport\t=\t1234\t\r\n"
	                   "  ; indented comment\n"
	                   "host = h # inline comment\n"
	                   "[server] ; comment\n"
	                   "url=https://a.example\n"
	                   "pinned_pubkey = /etc/ess/pin.der ; also a path"; /* no final newline */
	assert_int_equal(load_text(text, &c, e), 0);
	assert_int_equal(c.gps.port, 1234);
	assert_string_equal(c.gps.host, "h");
	assert_string_equal(c.server.url, "https://a.example");
	assert_string_equal(c.server.pinned_pubkey, "/etc/ess/pin.der ; also a path");
	free(e);
}

static void test_quoted_values(void **state)
{
	(void)state;
	struct errs *e = errs_new();
	struct config c;
	const char *text = URL_LINES "[store]\n"
	                             "dir = \"/srv/ess #1 \\\"x\\\" \\\\ \"   # comment\n"
	                             "[device]\n"
	                             "board = \"\"x\n";
	assert_int_equal(load_text(text, &c, e), -EINVAL);
	assert_int_equal(e->n, 1);
	assert_string_equal(e->msg[0], "t.conf:6: text after closing quote");

	text = URL_LINES "[store]\n"
	                 "dir = \"/srv/ess #1 \\\"x\\\" \\\\ \"   # comment\n"
	                 "[control]\n"
	                 "group = \"\"\n"
	                 "[server]\n";
	assert_int_equal(load_text(text, &c, e), 0);
	assert_string_equal(c.store.dir, "/srv/ess #1 \"x\" \\ ");
	assert_string_equal(c.control.group, "");

	/* Unquoted, '#' inside a word is kept; one after a blank starts a comment. */
	text = URL_LINES "[device]\nserial_file = /a#b #c\n";
	assert_int_equal(load_text(text, &c, e), 0);
	assert_string_equal(c.device.serial_file, "/a#b");
	free(e);
}

/* ---- one error of each kind, with its line ---- */

static void test_syntax_errors(void **state)
{
	(void)state;
	expect_one("port = 1\n" URL_LINES, "t.conf:1: key port before any [section]");
	expect_one(URL_LINES "just words\n",
	           "t.conf:3: expected 'key = value', '[section]' or a comment");
	expect_one(URL_LINES "[gps\nport = 1\n", "t.conf:3: section header without ']'");
	expect_one(URL_LINES "[gps] x\nport = 1\n", "t.conf:3: text after section header");
	expect_one(URL_LINES "[GPS]\nport = 1\n", "t.conf:3: bad section name \"GPS\"");
	expect_one(URL_LINES "[]\n", "t.conf:3: bad section name \"\"");
	expect_one(URL_LINES "[gps]\nPort = 1\n", "t.conf:4: bad key name (only a-z, 0-9 and '_')");
	expect_one(URL_LINES "[gps]\n = 1\n", "t.conf:4: bad key name (only a-z, 0-9 and '_')");
	expect_one(URL_LINES "[gps]\nhost = \"abc\n", "t.conf:4: unterminated quoted value");
	expect_one(URL_LINES "[gps]\nhost = \"a\\nb\"\n",
	           "t.conf:4: bad escape in quoted value (only \\\" and \\\\)");
	expect_one(URL_LINES "[gps]\nhost = \"a\\\"\n", "t.conf:4: unterminated quoted value");
	expect_one(URL_LINES "[gps]\nhost = a\x01z\n",
	           "t.conf:4: line holds a control character (0x01)");
	expect_one(URL_LINES "[gps]\nhost = a\rz\n",
	           "t.conf:4: line holds a control character (0x0d)");
}

static void test_unknown_section_and_key(void **state)
{
	(void)state;
	/* Keys of an unknown section are not reported one by one. */
	expect_one(URL_LINES "[gsp]\nport = 1\nhost = x\n", "t.conf:3: unknown section [gsp]");
	expect_one(URL_LINES "[gps]\nprt = 1\n", "t.conf:4: unknown key prt in [gps]");
	/* A key of another section is unknown here. */
	expect_one(URL_LINES "[log]\nport = 1\n", "t.conf:4: unknown key port in [log]");
}

static void test_duplicate_key(void **state)
{
	(void)state;
	expect_one(URL_LINES "[gps]\nport = 1\n\nport = 1\n",
	           "t.conf:6: gps.port: set twice (first on line 4)");
	/* Across a repeated section too; a repeated section itself is fine. */
	expect_one(URL_LINES "[gps]\nport = 1\n[log]\n[gps]\nport = 2\n",
	           "t.conf:7: gps.port: set twice (first on line 4)");
	expect_one("[server]\nurl = https://a.example\nurl = https://a.example\n",
	           "t.conf:3: server.url: set twice (first on line 2)");
}

static void test_numbers(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "",
	    "0x10",
	    "010x",
	    "12 ",
	    " 12",
	    "+5",
	    "1e3",
	    "1.0",
	    "--1",
	    "-",
	    "٣",
	    "99999999999999999999",
	    "-99999999999999999999",
	    "9223372036854775808",
	};
	long long x;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		x = 42;
		assert_int_equal(config_parse_int(bad[i], &x), -EINVAL);
		assert_int_equal(x, 42);
	}
	assert_int_equal(config_parse_int("9223372036854775807", &x), 0);
	assert_true(x == 9223372036854775807LL);
	assert_int_equal(config_parse_int("-9223372036854775808", &x), 0);
	assert_true(x == (-9223372036854775807LL - 1));
	assert_int_equal(config_parse_int("007", &x), 0);
	assert_int_equal(x, 7);
	assert_int_equal(config_parse_int("-0", &x), 0);
	assert_int_equal(x, 0);

	expect_one(URL_LINES "[gps]\nport = 0x50\n",
	           "t.conf:4: gps.port: \"0x50\" is not a decimal integer");
	expect_one(URL_LINES "[gps]\nport = 80s\n",
	           "t.conf:4: gps.port: \"80s\" is not a decimal integer");
	expect_one(URL_LINES "[gps]\nport =\n",
	           "t.conf:4: gps.port: \"\" is not a decimal integer");
	expect_one(URL_LINES "[gps]\nport = 99999999999999999999999999\n",
	           "t.conf:4: gps.port: \"99999999999999999999...\" is not a decimal integer");
}

static void test_bools(void **state)
{
	(void)state;
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	static const char *const bad[] = {"", "TRUE", "Yes", "2", "y", "n", "enabled", " on"};
	bool b;
	for (size_t i = 0; i < 4; i++) {
		b = false;
		assert_int_equal(config_parse_bool(yes[i], &b), 0);
		assert_true(b);
		assert_int_equal(config_parse_bool(no[i], &b), 0);
		assert_false(b);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(config_parse_bool(bad[i], &b), -EINVAL);
}

struct bound {
	const char *section, *key;
	long long min, max;
};

static void test_out_of_bounds(void **state)
{
	(void)state;
	static const struct bound b[] = {
	    {"store", "retention_hours", 1, 8760},
	    {"store", "audit_retention_days", 1, 3650},
	    {"store", "position_flush_s", 1, 600},
	    {"store", "max_positions", 10000, 10000000},
	    {"server", "connect_timeout_s", 1, 120},
	    {"server", "request_timeout_s", 26, 600}, /* above long_poll_s's default */
	    {"server", "long_poll_s", 0, 30},
	    {"gps", "port", 1, 65535},
	    {"gps", "interval_s", 1, 3600},
	    {"gps", "min_distance_m", 0, 10000},
	    {"gps", "active_interval_s", 1, 3600},
	    {"heartbeat", "interval_s", 10, 3600},
	};
	for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++) {
		const struct config_key_info *k = NULL;
		for (size_t j = 0; j < config_key_count(); j++)
			if (strcmp(config_key_at(j)->section, b[i].section) == 0 &&
			    strcmp(config_key_at(j)->key, b[i].key) == 0)
				k = config_key_at(j);
		assert_non_null(k);
		char text[256], want[256];
		struct config c;
		struct errs *e = errs_new();
		long long ok[] = {b[i].min, b[i].max};
		for (int j = 0; j < 2; j++) {
			snprintf(text, sizeof(text), URL_LINES "[%s]\n%s = %lld\n", b[i].section,
			         b[i].key, ok[j]);
			assert_int_equal(load_text(text, &c, e), 0);
		}
		long long bad[] = {k->min - 1, k->max + 1};
		for (int j = 0; j < 2; j++) {
			snprintf(text, sizeof(text), URL_LINES "[%s]\n%s = %lld\n", b[i].section,
			         b[i].key, bad[j]);
			snprintf(want, sizeof(want),
			         "t.conf:4: %s.%s: \"%lld\" is out of range %lld..%lld",
			         b[i].section, b[i].key, bad[j], k->min, k->max);
			expect_one(text, want);
		}
		free(e);
	}
}

static void test_enums(void **state)
{
	(void)state;
	expect_one(URL_LINES "[log]\nlevel = verbose\n",
	           "t.conf:4: log.level: \"verbose\" is not one of err, warn, info, debug");
	expect_one(URL_LINES "[log]\nlevel = INFO\n",
	           "t.conf:4: log.level: \"INFO\" is not one of err, warn, info, debug");
	expect_one(URL_LINES "[log]\ntarget = syslog\n",
	           "t.conf:4: log.target: \"syslog\" is not one of stderr, journal");
	expect_one(URL_LINES "[keystore]\nbackend = tpm\n",
	           "t.conf:4: keystore.backend: \"tpm\" is not one of file, none");
}

static void test_strings_and_paths(void **state)
{
	(void)state;
	char text[2048], val[1024];
	struct config c;
	struct errs *e = errs_new();

	expect_one(URL_LINES "[store]\ndir = var/lib/ess\n",
	           "t.conf:4: store.dir: \"var/lib/ess\" is not an absolute path");
	expect_one(URL_LINES "[store]\ndir =\n", "t.conf:4: store.dir: must not be empty");
	expect_one(URL_LINES "[server]\nca_file = ca.pem\n",
	           "t.conf:4: server.ca_file: \"ca.pem\" is not an absolute path");

	/* Longest path fits exactly; one byte more is an error, never cut. */
	memset(val, 'p', sizeof(val));
	val[0] = '/';
	val[CONFIG_PATH_SIZE - 1] = '\0';
	snprintf(text, sizeof(text), URL_LINES "[store]\ndir = %s\n", val);
	assert_int_equal(load_text(text, &c, e), 0);
	assert_string_equal(c.store.dir, val);
	val[CONFIG_PATH_SIZE - 1] = 'p';
	val[CONFIG_PATH_SIZE] = '\0';
	snprintf(text, sizeof(text), URL_LINES "[store]\ndir = %s\n", val);
	expect_one(text, "t.conf:4: store.dir: value is too long (256 bytes, at most 255)");

	/* A socket path must fit sun_path. */
	val[CONFIG_SOCKET_SIZE] = '\0';
	snprintf(text, sizeof(text), URL_LINES "[control]\nsocket = %s\n", val);
	expect_one(text, "t.conf:4: control.socket: value is too long (108 bytes, at most 107)");

	expect_one(URL_LINES "[gps]\nhost = -oProxy\n",
	           "t.conf:4: gps.host: is not a host name or address");
	expect_one(URL_LINES "[gps]\nhost = a b\n",
	           "t.conf:4: gps.host: is not a host name or address");
	expect_one(URL_LINES "[gps]\nhost =\n", "t.conf:4: gps.host: must not be empty");
	expect_one(URL_LINES "[control]\ngroup = Wheel\n",
	           "t.conf:4: control.group: is not a unix group name ([a-z_][a-z0-9_-]*)");
	expect_one(URL_LINES "[control]\ngroup = 9ess\n",
	           "t.conf:4: control.group: is not a unix group name ([a-z_][a-z0-9_-]*)");
	expect_one(URL_LINES "[control]\ngroup = abcdefghijklmnopqrstuvwxyz0123456\n",
	           "t.conf:4: control.group: value is too long (33 bytes, at most 32)");
	assert_int_equal(load_text(URL_LINES "[control]\ngroup = _ess-ui2$\n", &c, e), 0);
	expect_one(URL_LINES "[control]\ngroup = ess$ui\n",
	           "t.conf:4: control.group: is not a unix group name ([a-z_][a-z0-9_-]*)");
	expect_one(URL_LINES "[device]\nboard = ../x\n",
	           "t.conf:4: device.board: may hold only letters, digits, '.', '_' and '-'");

	/* server_key: standard padded base64 of exactly 32 bytes. */
	static const char *const bad_keys[] = {
	    "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg==", /* 31 bytes */
	    "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI",  /* unpadded */
	    "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg-=", /* URL-safe alphabet */
	    "not base64 at all",
	};
	for (size_t i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++) {
		snprintf(text, sizeof(text), URL_LINES "[server]\nserver_key = %s\n", bad_keys[i]);
		expect_one(text,
		           "t.conf:4: server.server_key: is not standard base64 of a 32-byte key");
	}
	expect_one(URL_LINES "[server]\nserver_key = "
	                     "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg==\n",
	           "t.conf:4: server.server_key: value is too long (48 bytes, at most 44)");
	expect_one(URL_LINES "[server]\npinned_pubkey = sha256//AAAA\n",
	           "t.conf:4: server.pinned_pubkey: must be sha256//<base64 of 32 bytes>, several "
	           "joined by ';', or an absolute file path");
	expect_one(URL_LINES "[server]\npinned_pubkey = "
	                     "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=;\n",
	           "t.conf:4: server.pinned_pubkey: must be sha256//<base64 of 32 bytes>, several "
	           "joined by ';', or an absolute file path");
	free(e);
}

static void test_urls(void **state)
{
	(void)state;
	static const struct {
		const char *url, *msg;
	} bad[] = {
	    {"ftp://a.example", "must start with https:// or http://"},
	    {"HTTPS://a.example", "must start with https:// or http://"},
	    {"a.example/api", "must start with https:// or http://"},
	    {"https://", "has no host"},
	    {"https:///api", "has no host"},
	    {"http://:8080/api", "has no host"},
	    {"https://dev:hunter2@a.example/api",
	     "must not hold credentials (user@): devices sign requests"},
	    {"https://a.example/my api", "must not contain spaces"},
	    {"https://a.example/api?x=1", "must not hold a query or fragment"},
	    {"https://a.example/api/", "must not end with '/': request paths are appended"},
	    {"https://a.example/", "must not end with '/': request paths are appended"},
	};
	char text[1024], want[512];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[server]\nurl = \"%s\"\n", bad[i].url);
		snprintf(want, sizeof(want), "t.conf:2: server.url: %s", bad[i].msg);
		expect_one(text, want);
	}
	expect_one("[server]\nurl =\n", "t.conf:2: server.url: must not be empty");
	char url[600] = "https://a.example/";
	memset(url + strlen(url), 'x', 513 - strlen(url));
	url[513] = '\0';
	snprintf(text, sizeof(text), "[server]\nurl = %s\n", url);
	expect_one(text, "t.conf:2: server.url: value is too long (513 bytes, at most 512)");
	url[512] = '\0';
	snprintf(text, sizeof(text), "[server]\nurl = %s\n", url);
	struct errs *e = errs_new();
	struct config c;
	assert_int_equal(load_text(text, &c, e), 0);
	assert_int_equal(load_text("[server]\nurl = http://[::1]:8080/api\n", &c, e), 0);
	free(e);
}

static void test_long_line(void **state)
{
	(void)state;
	/* A comment of exactly CONFIG_LINE_MAX bytes is fine; one more is not,
	 * and parsing goes on after it. */
	size_t len = strlen(URL_LINES) + 2 * (CONFIG_LINE_MAX + 1) + 64;
	char *text = malloc(len);
	assert_non_null(text);
	char *p = text + sprintf(text, URL_LINES);
	memset(p, '#', CONFIG_LINE_MAX);
	p += CONFIG_LINE_MAX;
	*p++ = '\n';
	memset(p, '#', CONFIG_LINE_MAX + 1);
	p += CONFIG_LINE_MAX + 1;
	p += sprintf(p, "\n[gps]\nport = x\n");
	struct errs *e = errs_new();
	struct config c;
	assert_int_equal(config_load_buffer("t.conf", text, (size_t)(p - text), &c, collect, e),
	                 -EINVAL);
	assert_int_equal(e->n, 2);
	assert_string_equal(e->msg[0], "t.conf:4: line longer than 4096 bytes");
	assert_string_equal(e->msg[1], "t.conf:6: gps.port: \"x\" is not a decimal integer");
	free(text);
	free(e);
}

static void test_nul_byte(void **state)
{
	(void)state;
	static const char text[] = URL_LINES "[gps]\nhost = loc\0alhost\nport = 1\n";
	/* An exact-size heap copy: ASan catches any read past len. */
	size_t len = sizeof(text) - 1;
	char *buf = malloc(len);
	assert_non_null(buf);
	memcpy(buf, text, len);
	struct errs *e = errs_new();
	struct config c;
	assert_int_equal(config_load_buffer("t.conf", buf, len, &c, collect, e), -EINVAL);
	assert_int_equal(e->n, 1);
	assert_string_equal(e->msg[0], "t.conf:4: line holds a NUL byte");

	/* Without a final newline the last line still counts. */
	assert_int_equal(config_load_buffer("t.conf", buf, len - 1, &c, collect, e), -EINVAL);
	memset(e, 0, sizeof(*e));
	assert_int_equal(config_load_buffer("t.conf", buf, strlen(URL_LINES) - 1, &c, collect, e),
	                 0);
	assert_string_equal(c.server.url, "https://ess.example.go.th/api");
	free(buf);
	free(e);
}

static void test_multiple_errors(void **state)
{
	(void)state;
	const char *text = "level = info\n"            /* 1 before any section */
	                   "[log]\n"                   /* 2 */
	                   "level = loud\n"            /* 3 bad enum */
	                   "[gps]\n"                   /* 4 */
	                   "port = 70000\n"            /* 5 out of range */
	                   "port = 1\n"                /* 6 duplicate */
	                   "colour = red\n"            /* 7 unknown key */
	                   "[nope]\n"                  /* 8 unknown section */
	                   "anything = goes\n"         /* 9 skipped */
	                   "[store]\n"                 /* 10 */
	                   "dir = relative\n"          /* 11 not absolute */
	                   "garbage line\n"            /* 12 malformed */
	                   "[server]\n"                /* 13 */
	                   "long_poll_s = 30\n"        /* 14 */
	                   "request_timeout_s = 30\n"; /* 15 cross-check; url missing */
	struct errs *e = errs_new();
	struct config c;
	memset(&c, 0, sizeof(c));
	assert_int_equal(load_text(text, &c, e), -EINVAL);
	static const char *const want[] = {
	    "t.conf:1: key level before any [section]",
	    "t.conf:3: log.level: \"loud\" is not one of err, warn, info, debug",
	    "t.conf:5: gps.port: \"70000\" is out of range 1..65535",
	    "t.conf:6: gps.port: set twice (first on line 5)",
	    "t.conf:7: unknown key colour in [gps]",
	    "t.conf:8: unknown section [nope]",
	    "t.conf:11: store.dir: \"relative\" is not an absolute path",
	    "t.conf:12: expected 'key = value', '[section]' or a comment",
	    "t.conf: server.url is required",
	    "t.conf:15: server.long_poll_s (30) must be shorter than server.request_timeout_s (30)",
	};
	assert_int_equal(e->n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < e->n; i++)
		assert_string_equal(e->msg[i], want[i]);
	struct config zero;
	memset(&zero, 0, sizeof(zero));
	assert_memory_equal(&c, &zero, sizeof(c));
	free(e);
}

static void test_missing_required(void **state)
{
	(void)state;
	expect_one("", "t.conf: server.url is required");
	expect_one("# only comments\n[server]\nconnect_timeout_s = 5\n",
	           "t.conf: server.url is required");
	/* Set but empty is reported where it is set, once. */
	expect_one("[server]\nurl = \"\"\n", "t.conf:2: server.url: must not be empty");
}

static void test_cross_check(void **state)
{
	(void)state;
	expect_one(
	    URL_LINES "[server]\nlong_poll_s = 30\nrequest_timeout_s = 20\n",
	    "t.conf:5: server.long_poll_s (30) must be shorter than server.request_timeout_s (20)");
	/* With the other key at its default the line is that of the one set. */
	expect_one(
	    URL_LINES "[server]\nrequest_timeout_s = 25\n",
	    "t.conf:4: server.long_poll_s (25) must be shorter than server.request_timeout_s (25)");
}

/* ---- secrets ---- */

static void assert_no_secret(const struct errs *e, const char *secret)
{
	for (unsigned i = 0; i < e->n && i < ERRS_MAX; i++) {
		assert_null(strstr(e->msg[i], secret));
		assert_null(strstr(e->msg[i], "CANARY"));
	}
}

static void test_secret_not_echoed(void **state)
{
	(void)state;
	char text[1024], tok[200];
	struct errs *e = errs_new();
	struct config c;

	memset(tok, 0, sizeof(tok));
	memcpy(tok, "CANARY", 6);
	memset(tok + 6, 'k', 130);
	snprintf(text, sizeof(text), URL_LINES "[server]\nenroll_token = %s\n", tok);
	assert_int_equal(load_text(text, &c, e), -EINVAL);
	assert_int_equal(e->n, 1);
	assert_string_equal(
	    e->msg[0], "t.conf:4: server.enroll_token: value is too long (136 bytes, at most 128)");
	assert_no_secret(e, tok);

	assert_int_equal(load_text(URL_LINES "[server]\nenroll_token = \"CANARY secret\"\n", &c, e),
	                 -EINVAL);
	assert_int_equal(e->n, 1);
	assert_string_equal(
	    e->msg[0], "t.conf:4: server.enroll_token: must be printable ASCII without spaces");
	assert_no_secret(e, "secret");

	/* Pasted into the wrong key, or missing its '=', still not quoted. */
	assert_int_equal(load_text(URL_LINES "[server]\nenroll_token CANARYdGVzdA==\n"
	                                     "enroll_token: CANARYdGVzdA\n"
	                                     "connect_timeout_s = CANARY123\n"
	                                     "url2 = CANARY\n",
	                           &c, e),
	                 -EINVAL);
	assert_int_equal(e->n, 4);
	assert_string_equal(e->msg[0], "t.conf:4: bad key name (only a-z, 0-9 and '_')");
	assert_string_equal(e->msg[1],
	                    "t.conf:5: expected 'key = value', '[section]' or a comment");
	/* A non-secret key's value shows only as a short escaped excerpt. */
	assert_string_equal(
	    e->msg[2],
	    "t.conf:6: server.connect_timeout_s: \"CANARY123\" is not a decimal integer");
	assert_string_equal(e->msg[3], "t.conf:7: unknown key url2 in [server]");
	memset(e, 0, sizeof(*e));

	/* A long value in a non-secret key: excerpt cut, bytes escaped. */
	memset(tok, 0, sizeof(tok));
	memcpy(tok, "/\xe0\xb8\x81\"\\", 6);
	memset(tok + 6, 'z', 40);
	memcpy(tok + 46, "TAIL", 4);
	snprintf(text, sizeof(text), URL_LINES "[gps]\nport = %s\n", tok);
	assert_int_equal(load_text(text, &c, e), -EINVAL);
	assert_int_equal(e->n, 1);
	assert_string_equal(e->msg[0],
	                    "t.conf:4: gps.port: \"/\\xe0\\xb8\\x81\\\"\\\\zzzzzzzzzzzzzz...\" "
	                    "is not a decimal integer");
	assert_null(strstr(e->msg[0], "TAIL"));

	/* config_set's messages follow the same rules. */
	char err[512];
	config_defaults(&c);
	assert_int_equal(config_set(&c, "server", "enroll_token", "CANARY zz", err, sizeof(err)),
	                 -EINVAL);
	assert_string_equal(err, "server.enroll_token: must be printable ASCII without spaces");
	assert_int_equal(
	    config_set(&c, "server", "url", "https://u:CANARY@a.example", err, sizeof(err)),
	    -EINVAL);
	assert_null(strstr(err, "CANARY"));
	free(e);
}

/* ---- config_set ---- */

static void test_config_set(void **state)
{
	(void)state;
	struct config c, before;
	char err[512];
	config_defaults(&c);

	assert_int_equal(config_set(&c, "gps", "port", "4000", err, sizeof(err)), 0);
	assert_int_equal(c.gps.port, 4000);
	assert_int_equal(config_set(&c, "log", "level", "warn", err, sizeof(err)), 0);
	assert_int_equal(c.log.level, LOG_LEVEL_WARN);
	assert_int_equal(config_set(&c, "server", "url", "https://b.example/api", err, sizeof(err)),
	                 0);
	assert_string_equal(c.server.url, "https://b.example/api");
	/* Raw values: quotes are not syntax here. */
	assert_int_equal(config_set(&c, "store", "dir", "/srv/ess #2 ", err, sizeof(err)), 0);
	assert_string_equal(c.store.dir, "/srv/ess #2 ");

	before = c;
	assert_int_equal(config_set(&c, "gps", "port", "0", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "gps.port: \"0\" is out of range 1..65535");
	assert_int_equal(config_set(&c, "gps", "port", "12 ", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "gps.port: \"12 \" is not a decimal integer");
	assert_int_equal(config_set(&c, "gps", "port", "", err, sizeof(err)), -EINVAL);
	assert_int_equal(config_set(&c, "gps", "host", "a\nb", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "gps.host: value holds a control character");
	assert_int_equal(config_set(&c, "store", "dir", "\"/x\"", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "store.dir: \"\\\"/x\\\"\" is not an absolute path");
	assert_int_equal(config_set(&c, "server", "url", "", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "server.url: must not be empty");
	/* Checks between keys see c's other values. */
	assert_int_equal(config_set(&c, "server", "request_timeout_s", "25", err, sizeof(err)),
	                 -EINVAL);
	assert_string_equal(
	    err, "server.long_poll_s (25) must be shorter than server.request_timeout_s (25)");
	assert_int_equal(config_set(&c, "gps", "nope", "1", err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "gps.nope: unknown key");
	assert_int_equal(config_set(&c, "nope", "port", "1", err, sizeof(err)), -ENOENT);
	assert_int_equal(config_set(&c, "gps", "port", "70000", NULL, 0), -EINVAL);
	/* A tiny buffer truncates, never overflows. */
	char tiny[8];
	assert_int_equal(config_set(&c, "gps", "port", "x", tiny, sizeof(tiny)), -EINVAL);
	assert_string_equal(tiny, "gps.por");
	assert_memory_equal(&c, &before, sizeof(c));

	assert_int_equal(config_set(&c, "server", "long_poll_s", "0", err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "server", "request_timeout_s", "5", err, sizeof(err)), 0);
	assert_int_equal(c.server.request_timeout_s, 5);
}

/* ---- dump ---- */

static char *dump(const struct config *c, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	assert_non_null(f);
	assert_int_equal(config_dump(c, f), 0);
	assert_int_equal(fclose(f), 0);
	return buf;
}

static void test_dump_roundtrip(void **state)
{
	(void)state;
	struct errs *e = errs_new();
	struct config c, back;
	assert_int_equal(load_text(FULL, &c, e), 0);
	/* Values that need quoting. */
	char err[256];
	assert_int_equal(config_set(&c, "store", "dir", "/trail \"q\" \\ # ", err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "device", "serial_file", "\"/quoted\"", err, sizeof(err)),
	                 -EINVAL);
	assert_int_equal(config_set(&c, "device", "serial_file", "/\"quoted\"", err, sizeof(err)),
	                 0);
	assert_int_equal(config_set(&c, "server", "ca_file", "", err, sizeof(err)), 0);

	size_t len;
	char *text = dump(&c, &len);
	assert_null(strstr(text, "tok-0123456789"));
	assert_non_null(strstr(text, "# enroll_token: omitted (secret)\n"));
	assert_non_null(strstr(text, "\n[gps]\n"));
	assert_non_null(strstr(text, "\nport = 65535\n"));
	assert_non_null(strstr(text, "\nca_file = \"\"\n"));

	assert_int_equal(config_load_buffer("dump", text, len, &back, collect, e), 0);
	assert_int_equal(e->n, 0);
	assert_int_equal(back.gps.port, 65535);
	assert_int_equal(back.log.target, LOG_TARGET_JOURNAL);
	assert_string_equal(back.store.dir, c.store.dir);
	assert_string_equal(back.device.serial_file, c.device.serial_file);
	assert_string_equal(back.server.ca_file, "");
	assert_string_equal(back.server.enroll_token, "");
	/* Apart from the secret, the reloaded struct is the same. */
	memset(c.server.enroll_token, 0, sizeof(c.server.enroll_token));
	assert_memory_equal(&back, &c, sizeof(c));

	size_t len2;
	char *again = dump(&back, &len2);
	assert_int_equal(len2, len);
	assert_string_equal(again, text);
	free(again);
	free(text);

	/* A struct that no load could produce is refused, not written. */
	c.log.level = (enum log_level)7;
	FILE *f = fopen("/dev/null", "w");
	assert_non_null(f);
	assert_int_equal(config_dump(&c, f), -EINVAL);
	fclose(f);
	free(e);
}

/* Random text built from the syntax's own characters: every outcome is 0 or
 * -EINVAL with errors reported, and under SANITIZE=1 no read strays. */
static void test_garbage(void **state)
{
	(void)state;
	static const char alphabet[] = "[]=#;\"\\ \t\r\n\0azsvgpe_/:0123456789\x80\xff";
	uint32_t seed = 12345;
	struct errs *e = errs_new();
	struct config c;
	for (int iter = 0; iter < 3000; iter++) {
		char buf[300];
		seed = seed * 1103515245u + 12345u;
		size_t len = (seed >> 8) % sizeof(buf);
		size_t plen = len;
		if (iter % 2)
			plen = (size_t)sprintf(buf, URL_LINES "[%s]\n",
			                       iter % 4 == 1 ? "gps" : "store");
		for (size_t i = plen; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			buf[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		}
		if (len < plen)
			len = plen;
		char *copy = malloc(len ? len : 1);
		assert_non_null(copy);
		memcpy(copy, buf, len);
		memset(e, 0, sizeof(*e));
		int rc = config_load_buffer("g", copy, len, &c, collect, e);
		assert_true(rc == 0 || rc == -EINVAL);
		assert_int_equal(rc == 0, e->n == 0);
		free(copy);
	}
	free(e);
}

/* ---- the file loader ---- */

static void test_missing_file(void **state)
{
	char path[512], want[600];
	snprintf(path, sizeof(path), "%s/nonexistent.conf", (const char *)*state);
	struct errs *e = errs_new();
	struct config c;
	assert_int_equal(config_load(path, &c, collect, e), -ENOENT);
	assert_int_equal(e->n, 1);
	snprintf(want, sizeof(want), "%s: cannot open: %s", path, strerror(ENOENT));
	assert_string_equal(e->msg[0], want);

	memset(e, 0, sizeof(*e));
	assert_int_equal(config_load(*state, &c, collect, e), -EINVAL);
	snprintf(want, sizeof(want), "%s: not a regular file", (const char *)*state);
	assert_int_equal(e->n, 1);
	assert_string_equal(e->msg[0], want);
	/* A FIFO must not block the loader. */
	snprintf(path, sizeof(path), "%s/fifo", (const char *)*state);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(config_load(path, &c, NULL, NULL), -EINVAL);
	/* Errors in a file carry its path. */
	snprintf(path, sizeof(path), "%s/bad.conf", (const char *)*state);
	write_file(path, "[gps]\nport = x\n", 15);
	memset(e, 0, sizeof(*e));
	assert_int_equal(config_load(path, &c, collect, e), -EINVAL);
	assert_int_equal(e->n, 2);
	snprintf(want, sizeof(want), "%s:2: gps.port: \"x\" is not a decimal integer", path);
	assert_string_equal(e->msg[0], want);
	free(e);
}

static void test_file_size_limit(void **state)
{
	char path[512], want[600];
	snprintf(path, sizeof(path), "%s/big.conf", (const char *)*state);
	/* Exactly the limit: a valid file padded with comment lines. */
	char *buf = malloc(CONFIG_FILE_MAX + 1);
	assert_non_null(buf);
	size_t head = strlen(URL_LINES);
	memcpy(buf, URL_LINES, head);
	for (size_t i = head; i < CONFIG_FILE_MAX; i++)
		buf[i] = (i - head) % 64 == 63 ? '\n' : '#';
	buf[CONFIG_FILE_MAX - 1] = '\n';
	write_file(path, buf, CONFIG_FILE_MAX);
	struct errs *e = errs_new();
	struct config c;
	assert_int_equal(config_load(path, &c, collect, e), 0);
	assert_int_equal(e->n, 0);

	buf[CONFIG_FILE_MAX] = '\n';
	write_file(path, buf, CONFIG_FILE_MAX + 1);
	assert_int_equal(config_load(path, &c, collect, e), -EINVAL);
	assert_int_equal(e->n, 1);
	snprintf(want, sizeof(want), "%s: larger than 1048576 bytes", path);
	assert_string_equal(e->msg[0], want);
	free(buf);
	free(e);
}

/* ---- the logging callback ---- */

struct lines {
	unsigned n;
	char line[4][256];
};

static void sink(void *arg, enum log_level level, const char *line)
{
	struct lines *l = arg;
	assert_int_equal(level, LOG_LEVEL_ERR);
	if (l->n < 4)
		snprintf(l->line[l->n], sizeof(l->line[0]), "%s", line);
	l->n++;
}

static void test_error_log(void **state)
{
	(void)state;
	struct lines l;
	memset(&l, 0, sizeof(l));
	struct config c;
	log_set_sink(sink, &l);
	int rc = config_load_buffer("/etc/ess/essd.conf", "[gps]\nport = 0\n", 15, &c,
	                            config_error_log, NULL);
	log_set_sink(NULL, NULL);
	assert_int_equal(rc, -EINVAL);
	assert_int_equal(l.n, 2);
	assert_non_null(
	    strstr(l.line[0], "/etc/ess/essd.conf:2: gps.port: \"0\" is out of range 1..65535"));
	assert_non_null(strstr(l.line[1], "/etc/ess/essd.conf: server.url is required"));
}

/* The hardware sections (hal/): defaults, device names and specs checked
 * at load, and the input backend's need of a matching device. */
static void test_hal_keys(void **state)
{
	(void)state;
	struct errs *e = errs_new();
	struct config c;
	assert_int_equal(load_text(URL_LINES, &c, e), 0);
	assert_int_equal(c.alert.backend, CONFIG_ALERT_NONE);
	assert_int_equal(c.input.backend, CONFIG_INPUT_NONE);
	assert_int_equal(c.power.backend, CONFIG_POWER_NONE);
	assert_int_equal(c.power.fallback, CONFIG_POWER_VEHICLE);
	assert_int_equal(c.link.backend, CONFIG_LINK_NETLINK);
	assert_int_equal(c.clock.backend, CONFIG_CLOCK_SYSFS);
	assert_int_equal(c.gps.battery_interval_s, 30);
	assert_int_equal(c.input.long_press_ms, 2000);

	assert_int_equal(load_text(URL_LINES "[alert]\nbackend = sysfs\nled = status\n"
	                                     "sounder = gpio:gpiochip0:17\n"
	                                     "[input]\nbackend = evdev\n"
	                                     "device = /dev/input/by-path/platform-keys-event\n"
	                                     "key = 148\n"
	                                     "[power]\nbackend = sysfs\n"
	                                     "ignition = file:/sys/class/gpio/gpio5/value\n"
	                                     "ignition_level = low\nfallback = ac\n",
	                           &c, e),
	                 0);
	assert_string_equal(c.alert.sounder, "gpio:gpiochip0:17");
	assert_int_equal(c.input.key, 148);
	assert_int_equal(c.power.ignition_level, CONFIG_LEVEL_LOW);
	assert_int_equal(c.power.fallback, CONFIG_POWER_AC);

	char err[256];
	static const char *const bad[][3] = {
	    {"alert", "led", "../leds"},
	    {"alert", "led", "a/b"},
	    {"alert", "sounder", "buzzer"},
	    {"alert", "sounder", "gpio:chip"},
	    {"alert", "sounder", "gpio:c:4096"},
	    {"alert", "sounder", "led:"},
	    {"input", "device", "/etc/passwd"},
	    {"input", "device", "/dev/input/../sda"},
	    {"power", "ignition", "file:rel"},
	    {"power", "ignition", "file:/a/../b"},
	    {"power", "ignition", "17"},
	    {"clock", "rtc", ".."},
	    {"input", "key", "768"},
	    {"input", "long_press_ms", "100"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(config_set(&c, bad[i][0], bad[i][1], bad[i][2], err, sizeof(err)),
		                 -EINVAL);
	/* the backend and the device must agree */
	assert_int_equal(load_text(URL_LINES "[input]\nbackend = evdev\n", &c, e), -EINVAL);
	assert_int_equal(e->n, 1);
	assert_non_null(strstr(e->msg[0], "t.conf:4: input.backend evdev needs"));
	assert_int_equal(
	    load_text(URL_LINES "[input]\ndevice = /dev/input/event0\nbackend = gpio\n", &c, e),
	    -EINVAL);
	assert_non_null(strstr(e->msg[0], "t.conf:5: input.backend gpio needs"));
	assert_int_equal(
	    load_text(URL_LINES "[input]\nbackend = gpio\ndevice = gpiochip1:3\n", &c, e), 0);
	free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_key_table),
	    cmocka_unit_test(test_hal_keys),
	    cmocka_unit_test(test_docs_match_table),
	    cmocka_unit_test_setup_teardown(test_full_file, setup, teardown),
	    cmocka_unit_test(test_sample_file),
	    cmocka_unit_test(test_minimal_file),
	    cmocka_unit_test(test_comments_blanks_crlf),
	    cmocka_unit_test(test_quoted_values),
	    cmocka_unit_test(test_syntax_errors),
	    cmocka_unit_test(test_unknown_section_and_key),
	    cmocka_unit_test(test_duplicate_key),
	    cmocka_unit_test(test_numbers),
	    cmocka_unit_test(test_bools),
	    cmocka_unit_test(test_out_of_bounds),
	    cmocka_unit_test(test_enums),
	    cmocka_unit_test(test_strings_and_paths),
	    cmocka_unit_test(test_urls),
	    cmocka_unit_test(test_long_line),
	    cmocka_unit_test(test_nul_byte),
	    cmocka_unit_test(test_multiple_errors),
	    cmocka_unit_test(test_missing_required),
	    cmocka_unit_test(test_cross_check),
	    cmocka_unit_test(test_secret_not_echoed),
	    cmocka_unit_test(test_config_set),
	    cmocka_unit_test(test_dump_roundtrip),
	    cmocka_unit_test(test_garbage),
	    cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_size_limit, setup, teardown),
	    cmocka_unit_test(test_error_log),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
