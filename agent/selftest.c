/* `essd selftest`; see selftest.h for the checks. The network checks (gpsd,
 * a fix, the server) run at the same time on one loop, so the whole test
 * takes as long as the slowest of them, bounded. */
#include "agent/selftest.h"
#include "agent/hw.h"

#include "agent/config.h"
#include "agent/ctl_client.h"
#include "agent/fmt.h"
#include "agent/log.h"
#include "agent/loop.h"
#include "agent/store.h"
#include "hal/gps.h"
#include "hal/keystore.h"
#include "sync/http.h"
#include "sync/proto.h"
#include "sync/sync.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysinfo.h>
#include <sys/timex.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_GPS_TIMEOUT_S  120
#define DEFAULT_GPSD_TIMEOUT_S 10
#define DEFAULT_MIN_FREE       (64LL * 1024 * 1024)
#define CLOCK_MIN_S            1704067200LL /* 2024-01-01: older is a clock never set */
#define SKEW_WARN_S            60

struct run {
	const struct selftest_params *p;
	struct selftest_report *r;
	struct config cfg;
	struct hal_keystore *ks;
	struct store *st;
	char device_id[PROTO_ID_MAX + 1];
	unsigned char server_pk[32];
	int enrolled;
	/* the network checks */
	struct loop *loop;
	struct hal_gps *gps;
	struct http *http;
	int64_t t0;
	int gpsd_done, fix_done, server_done;
	int skew_retried;
	int64_t server_offset_s;
	int have_server_time;
	struct selftest_check *c_gpsd, *c_fix, *c_server;
};

const char *selftest_status_name(enum selftest_status s)
{
	static const char *const names[] = {"pass", "warn", "fail", "skip"};
	return (unsigned)s < 4 ? names[s] : "?";
}

static struct selftest_check *add(struct run *x, const char *name)
{
	struct selftest_report *r = x->r;
	if (r->n >= SELFTEST_MAX_CHECKS)
		return NULL; /* cannot happen: the checks are fixed */
	struct selftest_check *c = &r->checks[r->n++];
	memset(c, 0, sizeof(*c));
	c->name = name;
	c->status = SELFTEST_SKIP;
	return c;
}

__attribute__((format(printf, 3, 4))) static void set(struct selftest_check *c,
                                                      enum selftest_status s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
	va_end(ap);
	c->status = s;
}

/* ---- config ---- */

static void on_config_error(void *arg, const char *file, unsigned line, const char *msg)
{
	struct selftest_check *c = arg;
	(void)file;
	/* the first error is enough for the table; essd check lists them all */
	if (c->detail[0] == 0)
		snprintf(c->detail, sizeof(c->detail), "line %u: %s (essd check lists every error)",
		         line, msg);
}

static int check_config(struct run *x)
{
	struct selftest_check *c = add(x, "config");
	int rc = config_load(x->p->config_path, &x->cfg, on_config_error, c);
	if (rc < 0) {
		c->status = SELFTEST_FAIL;
		return rc;
	}
	/* never keep a token around longer than needed */
	sodium_memzero(x->cfg.server.enroll_token, sizeof(x->cfg.server.enroll_token));
	snprintf(x->r->board, sizeof(x->r->board), "%s", x->cfg.device.board);
	set(c, SELFTEST_PASS, "%s loads (board %s)", x->p->config_path, x->cfg.device.board);
	return 0;
}

/* ---- keystore and store ---- */

/* Files root makes in the store directory (WAL, KEK) would lock out the
 * daemon's user: refuse to run the store checks as another user. */
static int owner_ok(struct selftest_check *c, const char *what, const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return 1; /* the open reports it */
	if (st.st_uid != geteuid()) {
		set(c, SELFTEST_FAIL,
		    "%s %s belongs to uid %u, this test runs as uid %u: run it as the daemon's "
		    "user (sudo -u ess essd selftest ...)",
		    what, path, (unsigned)st.st_uid, (unsigned)geteuid());
		return 0;
	}
	return 1;
}

static int check_keystore(struct run *x)
{
	struct selftest_check *c = add(x, "keystore");
	char why[512];
	if (!owner_ok(c, "the key file", x->cfg.keystore.key_file))
		return -EPERM;
	int rc = hal_keystore_open(config_keystore_names[x->cfg.keystore.backend],
	                           x->cfg.keystore.key_file, &x->ks, why, sizeof(why));
	if (rc < 0) {
		set(c, SELFTEST_FAIL, "%s", why);
		return rc;
	}
	unsigned char *kek = sodium_malloc(HAL_KEK_BYTES);
	if (!kek) {
		set(c, SELFTEST_FAIL, "out of memory");
		return -ENOMEM;
	}
	rc = hal_keystore_load(x->ks, kek, why, sizeof(why));
	sodium_free(kek);
	if (rc < 0) {
		/* the store checks need a key that loads */
		hal_keystore_close(x->ks);
		x->ks = NULL;
	}
	if (rc == -ENOENT)
		set(c, SELFTEST_FAIL, "no key yet: the device is not provisioned (essd provision)");
	else if (rc < 0)
		set(c, SELFTEST_FAIL, "%s", why);
	else
		set(c, SELFTEST_PASS, "%s key loads, permissions private",
		    hal_keystore_name(x->ks));
	return rc;
}

/* Whether needle appears in the file, reading it in pieces. */
static int file_contains(const char *path, const unsigned char *needle, size_t nlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	enum { CHUNK = 65536 };
	unsigned char *buf = malloc(CHUNK + nlen);
	size_t keep = 0;
	int found = 0;
	ssize_t n;
	while (buf && !found && (n = read(fd, buf + keep, CHUNK)) > 0) {
		size_t have = keep + (size_t)n;
		for (size_t i = 0; i + nlen <= have; i++)
			if (buf[i] == needle[0] && memcmp(buf + i, needle, nlen) == 0) {
				found = 1;
				break;
			}
		keep = have < nlen - 1 ? have : nlen - 1;
		memmove(buf, buf + have - keep, keep);
	}
	free(buf);
	close(fd);
	return found;
}

static int check_store(struct run *x)
{
	struct selftest_check *c = add(x, "store");
	if (!x->ks) {
		set(c, SELFTEST_SKIP, "needs the keystore");
		return -ENOKEY;
	}
	if (!owner_ok(c, "the store directory", x->cfg.store.dir))
		return -EPERM;
	char why[512];
	int flags = 0;
	struct store_params sp = {.dir = x->cfg.store.dir, .keystore = x->ks, .create = 0};
	int rc = store_open(&sp, &x->st, &flags, why, sizeof(why));
	if (rc < 0) {
		set(c, SELFTEST_FAIL, "%s", why);
		return rc;
	}
	if (flags & STORE_OPENED_RECOVERED) {
		set(c, SELFTEST_FAIL,
		    "the database failed its integrity check: it was moved aside and a new one "
		    "started; report the device");
		return -EIO;
	}
	/* After a clean stop the open leaves the check for later (docs/store.md,
	 * "Integrity"): the technician's check runs it now. A damaged file is
	 * moved aside by the next open. */
	if ((rc = store_integrity_check(x->st)) == -EUCLEAN) {
		set(c, SELFTEST_FAIL,
		    "the database failed its integrity check: it is moved aside at the next "
		    "start; report the device");
		return -EIO;
	}
	if (rc < 0) {
		set(c, SELFTEST_FAIL, "the integrity check could not run: %s", strerror(-rc));
		return rc;
	}
	/* Writable and encrypted: a random value goes in through the store and
	 * must not be found in clear in any of its files. */
	unsigned char mark[24];
	char hex[2 * sizeof(mark) + 1];
	randombytes_buf(mark, sizeof(mark));
	sodium_bin2hex(hex, sizeof(hex), mark, sizeof(mark));
	if ((rc = store_state_set(x->st, "selftest", hex, strlen(hex))) < 0) {
		set(c, SELFTEST_FAIL, "the store does not take a write: %s", strerror(-rc));
		return rc;
	}
	char back[sizeof(hex)];
	size_t len = 0;
	rc = store_state_get(x->st, "selftest", back, sizeof(back), &len);
	if (rc < 0 || len != strlen(hex) || memcmp(back, hex, len) != 0) {
		set(c, SELFTEST_FAIL, "a value written to the store did not read back");
		store_state_del(x->st, "selftest");
		return -EIO;
	}
	static const char *const files[] = {"ess.db", "ess.db-wal"};
	int clear = 0;
	for (size_t i = 0; i < 2; i++) {
		char path[CONFIG_PATH_SIZE + 16];
		snprintf(path, sizeof(path), "%s/%s", x->cfg.store.dir, files[i]);
		clear |= file_contains(path, (const unsigned char *)hex, strlen(hex));
	}
	store_state_del(x->st, "selftest");
	if (clear) {
		set(c, SELFTEST_FAIL,
		    "data written to the store is readable in its files: not "
		    "encrypted");
		return -EIO;
	}
	int64_t quar = 0;
	store_quarantine_count(x->st, &quar);
	set(c, quar ? SELFTEST_WARN : SELFTEST_PASS,
	    "opens, integrity ok, writable, encrypted; %lld bytes%s",
	    (long long)store_disk_bytes(x->st),
	    quar ? "; some rows failed authentication and are quarantined (essd inspect)" : "");
	return 0;
}

static void check_identity(struct run *x)
{
	struct selftest_check *c = add(x, "identity");
	if (!x->st) {
		set(c, SELFTEST_SKIP, "needs the store");
		return;
	}
	unsigned char pk[32], sig[64];
	static const char msg[] = "ess selftest";
	if (store_device_pubkey(x->st, pk) < 0) {
		set(c, SELFTEST_FAIL, "no device key: not provisioned (essd provision)");
		return;
	}
	if (store_device_sign(x->st, msg, sizeof(msg) - 1, sig) < 0 ||
	    crypto_sign_verify_detached(sig, (const unsigned char *)msg, sizeof(msg) - 1, pk) !=
	        0) {
		set(c, SELFTEST_FAIL, "the device key does not make a valid signature");
		return;
	}
	char unit[PROTO_ID_MAX + 1];
	size_t len = 0, ulen = 0, klen = 0;
	if (store_state_get(x->st, SYNC_KEY_DEVICE_ID, x->device_id, PROTO_ID_MAX, &len) < 0 ||
	    store_state_get(x->st, SYNC_KEY_UNIT, unit, PROTO_ID_MAX, &ulen) < 0 ||
	    store_state_get(x->st, SYNC_KEY_SERVER_KEY, x->server_pk, 32, &klen) < 0 ||
	    klen != 32) {
		set(c, SELFTEST_FAIL,
		    "the device key signs, but the device is not enrolled "
		    "(essd provision)");
		return;
	}
	x->device_id[len] = 0;
	unit[ulen] = 0;
	x->enrolled = 1;
	set(c, SELFTEST_PASS, "device %s, unit %s; the device key signs", x->device_id, unit);
}

static void check_disk(struct run *x)
{
	struct selftest_check *c = add(x, "disk");
	struct statvfs sv;
	if (statvfs(x->cfg.store.dir, &sv) < 0) {
		set(c, SELFTEST_FAIL, "%s: %s", x->cfg.store.dir, strerror(errno));
		return;
	}
	int64_t free_b = (int64_t)sv.f_bavail * (int64_t)sv.f_frsize;
	int64_t want = x->p->min_free_bytes > 0 ? x->p->min_free_bytes : DEFAULT_MIN_FREE;
	set(c, free_b >= want ? SELFTEST_PASS : SELFTEST_FAIL, "%lld MiB free for the store%s",
	    (long long)(free_b >> 20), free_b >= want ? "" : " (too little)");
	if (free_b < want)
		snprintf(c->detail + strlen(c->detail), sizeof(c->detail) - strlen(c->detail),
		         ", needs %lld MiB", (long long)(want >> 20));
}

static void check_clock(struct run *x)
{
	struct selftest_check *c = add(x, "clock");
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	if ((int64_t)now < CLOCK_MIN_S) {
		set(c, SELFTEST_FAIL,
		    "the clock says %04d: it was never set (no network time, no "
		    "RTC, no GPS time yet)",
		    tm.tm_year + 1900);
		return;
	}
	struct timex tx = {.modes = 0};
	int state = adjtimex(&tx);
	int synced = state >= 0 && state != TIME_ERROR && !(tx.status & STA_UNSYNC);
	char off[96] = "";
	enum selftest_status s = synced ? SELFTEST_PASS : SELFTEST_WARN;
	if (x->have_server_time) {
		snprintf(off, sizeof(off), "; %+lld s from the server's clock",
		         (long long)x->server_offset_s);
		if (llabs(x->server_offset_s) > SKEW_WARN_S)
			s = SELFTEST_WARN; /* the agent signs with an offset, but times drift */
	}
	set(c, s, "%04d-%02d-%02d %02d:%02d UTC, %s%s", tm.tm_year + 1900, tm.tm_mon + 1,
	    tm.tm_mday, tm.tm_hour, tm.tm_min,
	    synced ? "synchronized" : "not synchronized (events carry the GPS or server time)",
	    off);
}

/* ---- gpsd, a fix, the server: together on one loop ---- */

static void maybe_stop(struct run *x)
{
	if (x->gpsd_done && x->fix_done && x->server_done)
		loop_stop(x->loop);
}

static void on_fix(void *arg, const struct hal_gps_fix *fix)
{
	struct run *x = arg;
	if (x->fix_done)
		return;
	x->fix_done = 1;
	x->c_fix->ms = loop_now_ms() - x->t0;
	/* never the position itself: it is personal data */
	if (fix->accuracy_dm >= 0)
		set(x->c_fix, SELFTEST_PASS, "%dD fix after %.1f s, accuracy %.1f m", fix->mode,
		    (double)x->c_fix->ms / 1000.0, (double)fix->accuracy_dm / 10.0);
	else
		set(x->c_fix, SELFTEST_PASS, "%dD fix after %.1f s, accuracy unknown", fix->mode,
		    (double)x->c_fix->ms / 1000.0);
	maybe_stop(x);
}

static int64_t gps_tick(struct loop *l, void *arg)
{
	(void)l;
	struct run *x = arg;
	struct hal_gps_stats st;
	hal_gps_stats(x->gps, &st);
	int64_t el = loop_now_ms() - x->t0;
	int gpsd_limit = x->p->gpsd_timeout_s > 0 ? x->p->gpsd_timeout_s : DEFAULT_GPSD_TIMEOUT_S;
	int fix_limit = x->p->gps_timeout_s > 0 ? x->p->gps_timeout_s : DEFAULT_GPS_TIMEOUT_S;
	if (gpsd_limit > fix_limit)
		gpsd_limit = fix_limit;
	if (!x->gpsd_done && (st.connected || st.connects)) {
		x->gpsd_done = 1;
		x->c_gpsd->ms = el;
		set(x->c_gpsd, SELFTEST_PASS, "gpsd answers at %s:%d", x->cfg.gps.host,
		    x->cfg.gps.port);
	} else if (!x->gpsd_done && el >= (int64_t)gpsd_limit * 1000) {
		x->gpsd_done = 1;
		x->c_gpsd->ms = el;
		set(x->c_gpsd, SELFTEST_FAIL,
		    "gpsd does not answer at %s:%d within %d s (systemctl status gpsd)",
		    x->cfg.gps.host, x->cfg.gps.port, gpsd_limit);
	}
	if (!x->fix_done && x->gpsd_done && x->c_gpsd->status == SELFTEST_FAIL) {
		x->fix_done = 1;
		set(x->c_fix, SELFTEST_SKIP, "needs gpsd");
	} else if (!x->fix_done && el >= (int64_t)fix_limit * 1000) {
		x->fix_done = 1;
		x->c_fix->ms = el;
		set(x->c_fix, SELFTEST_FAIL,
		    "no usable fix within %d s (%llu reports, %llu refused): check the antenna "
		    "and the sky view",
		    fix_limit, (unsigned long long)st.reports, (unsigned long long)st.rejected);
	}
	maybe_stop(x);
	return x->gpsd_done && x->fix_done ? -1 : 100;
}

static void heartbeat_send(struct run *x);

static void server_result(struct run *x, enum selftest_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void server_result(struct run *x, enum selftest_status s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(x->c_server->detail, sizeof(x->c_server->detail), fmt, ap);
	va_end(ap);
	x->c_server->status = s;
	x->c_server->ms = loop_now_ms() - x->t0;
	x->server_done = 1;
	maybe_stop(x);
}

static void take_server_time(struct run *x, const cJSON *doc)
{
	if (proto_server_clock_offset(doc, &x->server_offset_s) == 0)
		x->have_server_time = 1;
}

static void on_heartbeat(void *arg, const struct http_response *resp)
{
	struct run *x = arg;
	if (resp->status == 0) {
		server_result(x, SELFTEST_FAIL, "the server at %s cannot be reached: %s",
		              x->cfg.server.url, strerror(-resp->error));
		return;
	}
	cJSON *doc = proto_json_parse(resp->body, resp->body_len);
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "error");
	const char *code = cJSON_IsString(e) ? e->valuestring : "";
	if (resp->status == 401 && strcmp(code, "clock_skew") == 0 && !x->skew_retried) {
		/* as the daemon does: sign with the server's time and try once more */
		take_server_time(x, doc);
		cJSON_Delete(doc);
		x->skew_retried = 1;
		http_set_clock_offset(x->http, x->server_offset_s);
		heartbeat_send(x);
		return;
	}
	if (resp->status == 200) {
		take_server_time(x, doc);
		const cJSON *cmds = cJSON_GetObjectItemCaseSensitive(doc, "commands"), *it;
		int verified = 0, bad = 0;
		cJSON_ArrayForEach(it, cmds)
		{
			unsigned char *payload = NULL, sig[64];
			size_t len = 0;
			if (proto_envelope_open(it, x->server_pk, &payload, &len, sig, NULL, 0) ==
			    0)
				verified++;
			else
				bad++;
			free(payload);
		}
		if (!cJSON_IsObject(doc) || (cmds && !cJSON_IsArray(cmds)))
			server_result(x, SELFTEST_FAIL, "the server's answer is malformed");
		else if (bad)
			server_result(x, SELFTEST_FAIL,
			              "%d of %d signed server documents fail verification with the "
			              "enrolled server key: wrong server or tampering",
			              bad, bad + verified);
		else
			server_result(
			    x, SELFTEST_PASS,
			    "signed heartbeat accepted by %s; %d pending signed command%s "
			    "verified",
			    x->cfg.server.url, verified, verified == 1 ? "" : "s");
	} else if (resp->status == 401 && strcmp(code, "unknown_device") == 0) {
		server_result(x, SELFTEST_FAIL,
		              "the server does not know this device: provision it again");
	} else if (resp->status == 401 && strcmp(code, "bad_signature") == 0) {
		server_result(x, SELFTEST_FAIL, "the server refused the device's signature");
	} else if (resp->status == 401 && strcmp(code, "clock_skew") == 0) {
		server_result(x, SELFTEST_FAIL, "the server refused the device's clock");
	} else if (resp->status == 410) {
		server_result(
		    x, SELFTEST_FAIL,
		    "the server revoked this device; essd will wipe it at its next contact");
	} else {
		server_result(x, SELFTEST_FAIL, "the server answered HTTP %ld", resp->status);
	}
	cJSON_Delete(doc);
}

static int sign_with_store(void *arg, const void *msg, size_t len, unsigned char sig[64])
{
	return store_device_sign(arg, msg, len, sig);
}

/* A real heartbeat (device API section 7): every field the server requires,
 * values the self-test knows. */
static void heartbeat_send(struct run *x)
{
	int64_t nev = 0, npos = 0, nrej = 0;
	store_outbox_count(x->st, &nev);
	store_pos_count(x->st, &npos);
	store_rejected_count(x->st, &nrej);
	struct sysinfo si;
	long up = sysinfo(&si) == 0 ? si.uptime : 0;
	cJSON *o = cJSON_CreateObject(), *q;
	char *body = NULL;
	int ok = o && cJSON_AddStringToObject(o, "agent_version", ESS_VERSION) &&
	         cJSON_AddNumberToObject(o, "uptime_s", (double)up) &&
	         cJSON_AddStringToObject(o, "power", "ac") &&
	         cJSON_AddNullToObject(o, "battery_pct") &&
	         (q = cJSON_AddObjectToObject(o, "queue")) &&
	         cJSON_AddNumberToObject(q, "events", (double)nev) &&
	         cJSON_AddNumberToObject(q, "positions", (double)npos) &&
	         cJSON_AddNumberToObject(o, "rejected_events", (double)nrej) &&
	         cJSON_AddNullToObject(o, "last_fix") &&
	         cJSON_AddStringToObject(o, "clock", proto_clock_name(PROTO_CLOCK_SYSTEM)) &&
	         cJSON_AddNumberToObject(o, "db_bytes", (double)store_disk_bytes(x->st)) &&
	         (body = cJSON_PrintUnformatted(o));
	cJSON_Delete(o);
	char path[PROTO_ID_MAX + 32];
	snprintf(path, sizeof(path), "/v1/devices/%s/heartbeat", x->device_id);
	int rc = ok ? http_request(x->http, "POST", path, body, strlen(body), HTTP_SIGNED, 0,
	                           on_heartbeat, x, NULL)
	            : -ENOMEM;
	free(body);
	if (rc < 0)
		server_result(x, SELFTEST_FAIL, "the request could not be started: %s",
		              strerror(-rc));
}

static void start_server(struct run *x)
{
	char why[512];
	struct http_params hp = {
	    .base_url = x->cfg.server.url,
	    .ca_file = x->cfg.server.ca_file,
	    .pinned_pubkey = x->cfg.server.pinned_pubkey,
	    .connect_timeout_s = x->cfg.server.connect_timeout_s,
	    .request_timeout_s = x->cfg.server.request_timeout_s,
	};
	int rc = http_open(x->loop, &hp, &x->http, why, sizeof(why));
	if (rc == 0)
		rc = http_set_identity(x->http, x->device_id, sign_with_store, x->st);
	if (rc < 0) {
		server_result(x, SELFTEST_FAIL, "%s", why[0] ? why : strerror(-rc));
		return;
	}
	/* the offset the daemon learnt last */
	char buf[32];
	size_t len = 0;
	if (store_state_get(x->st, SYNC_KEY_CLOCK, buf, sizeof(buf) - 1, &len) == 0) {
		buf[len] = 0;
		http_set_clock_offset(x->http, strtoll(buf, NULL, 10));
	}
	heartbeat_send(x);
}

static void run_network(struct run *x)
{
	x->c_gpsd = add(x, "gpsd");
	x->c_fix = add(x, "gps-fix");
	x->c_server = add(x, "server");
	if (loop_open(&x->loop) < 0) {
		set(x->c_gpsd, SELFTEST_FAIL, "cannot make an event loop");
		return;
	}
	x->t0 = loop_now_ms();
	char why[512];
	if (x->p->skip_gps) {
		x->gpsd_done = x->fix_done = 1;
		set(x->c_gpsd, SELFTEST_SKIP, "not asked for (--no-gps)");
		set(x->c_fix, SELFTEST_SKIP, "not asked for (--no-gps)");
	} else {
		struct hal_gps_params gp = {.loop = x->loop,
		                            .host = x->cfg.gps.host,
		                            .port = x->cfg.gps.port,
		                            .on_fix = on_fix,
		                            .arg = x,
		                            .backoff_min_ms = 250,
		                            .backoff_max_ms = 2000};
		if (hal_gps_open("gpsd", &gp, &x->gps, why, sizeof(why)) < 0 ||
		    !loop_timer_add(x->loop, 0, gps_tick, x)) {
			x->gpsd_done = x->fix_done = 1;
			set(x->c_gpsd, SELFTEST_FAIL, "%s", why);
			set(x->c_fix, SELFTEST_SKIP, "needs gpsd");
		}
	}
	if (!x->enrolled) {
		x->server_done = 1;
		set(x->c_server, SELFTEST_SKIP, "needs an enrolled identity");
	} else {
		start_server(x);
	}
	if (!(x->gpsd_done && x->fix_done && x->server_done))
		loop_run(x->loop);
}

/* The running agent, through its control socket: a self-test may run while
 * essd is stopped for service, so a missing daemon is a warning. */
static void check_daemon(struct run *x)
{
	struct selftest_check *c = add(x, "daemon");
	struct ctl_conn *conn = NULL;
	char why[512];
	int rc = ctl_conn_open(x->cfg.control.socket, &conn, why, sizeof(why));
	if (rc == -ENOENT || rc == -ECONNREFUSED) {
		set(c, SELFTEST_WARN, "essd is not running (systemctl start essd)");
		return;
	}
	if (rc < 0) {
		set(c, SELFTEST_WARN, "%s", why);
		return;
	}
	cJSON *ans = NULL;
	rc = ctl_conn_call(conn, "status", NULL, 5000, &ans);
	ctl_conn_close(conn);
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(ans, "result");
	if (rc < 0 || !cJSON_IsObject(res)) {
		set(c, SELFTEST_FAIL, "essd does not answer on %s (%s)", x->cfg.control.socket,
		    rc < 0 ? strerror(-rc) : "no status");
		cJSON_Delete(ans);
		return;
	}
	const cJSON *online = cJSON_GetObjectItemCaseSensitive(res, "online");
	const cJSON *locked = cJSON_GetObjectItemCaseSensitive(res, "locked");
	const cJSON *gps = cJSON_GetObjectItemCaseSensitive(res, "gps_connected");
	const cJSON *clk = cJSON_GetObjectItemCaseSensitive(res, "clock");
	const cJSON *q = cJSON_GetObjectItemCaseSensitive(res, "queue");
	const cJSON *ev = cJSON_GetObjectItemCaseSensitive(q, "events");
	set(c, cJSON_IsTrue(locked) ? SELFTEST_WARN : SELFTEST_PASS,
	    "essd running: %s, %s, gpsd %s, clock %s, %d event%s queued",
	    cJSON_IsTrue(locked) ? "LOCKED (a responder must unlock it)" : "unlocked",
	    cJSON_IsTrue(online) ? "online" : "offline",
	    cJSON_IsTrue(gps) ? "connected" : "not connected",
	    cJSON_IsString(clk) ? clk->valuestring : "?", cJSON_IsNumber(ev) ? ev->valueint : 0,
	    cJSON_IsNumber(ev) && ev->valueint == 1 ? "" : "s");
	cJSON_Delete(ans);
}

/* The alert outputs and the panic button, through the same HAL code essd
 * uses (agent/hw): a board whose LED or button is missing fails here, on
 * the bench, not on the street. */
static void check_hardware(struct run *x)
{
	static const enum selftest_status of[] = {SELFTEST_PASS, SELFTEST_WARN, SELFTEST_FAIL,
	                                          SELFTEST_SKIP};
	struct selftest_check *ca = add(x, "alert"), *cp = add(x, "panic");
	if (!x->loop && loop_open(&x->loop) < 0) {
		set(ca, SELFTEST_FAIL, "cannot make an event loop");
		return;
	}
	struct hw_check hc;
	int64_t t = loop_now_ms();
	hw_check_alert(&x->cfg, x->loop, &hc);
	set(ca, of[hc.status], "%s", hc.detail);
	ca->ms = loop_now_ms() - t;
	if (x->p->panic_timeout_s <= 0) {
		set(cp, SELFTEST_SKIP, "not asked for (--panic-timeout S, then press the button)");
		return;
	}
	t = loop_now_ms();
	hw_check_panic(&x->cfg, x->loop, x->p->panic_timeout_s * 1000, &hc);
	set(cp, of[hc.status], "%s", hc.detail);
	cp->ms = loop_now_ms() - t;
}

int selftest_run(const struct selftest_params *p, struct selftest_report *r)
{
	struct run x = {.p = p, .r = r};
	memset(r, 0, sizeof(*r));
	snprintf(r->board, sizeof(r->board), "unknown");
	if (sodium_init() < 0)
		return -ENOMEM;
	if (check_config(&x) == 0) {
		check_keystore(&x);
		check_store(&x);
		check_identity(&x);
		check_disk(&x);
		run_network(&x); /* before the clock: it learns the server's time */
		check_clock(&x);
		check_daemon(&x);
		check_hardware(&x);
	}
	http_close(x.http);
	hal_gps_close(x.gps);
	loop_close(x.loop);
	store_close(x.st);
	hal_keystore_close(x.ks);
	sodium_memzero(&x.cfg, sizeof(x.cfg));
	int failed = 0;
	for (int i = 0; i < r->n; i++)
		failed += r->checks[i].status == SELFTEST_FAIL;
	return failed;
}

void selftest_print_text(const struct selftest_report *r, FILE *f)
{
	static const char *const label[] = {"PASS", "WARN", "FAIL", "skip"};
	int failed = 0, warned = 0;
	fprintf(f, "ESS self-test: essd %s, board %s\n\n", ESS_VERSION, r->board);
	for (int i = 0; i < r->n; i++) {
		const struct selftest_check *c = &r->checks[i];
		fprintf(f, "  %-4s  %-9s %s\n", label[c->status], c->name, c->detail);
		failed += c->status == SELFTEST_FAIL;
		warned += c->status == SELFTEST_WARN;
	}
	if (failed)
		fprintf(f, "\nRESULT: FAIL (%d of %d checks failed)\n", failed, r->n);
	else
		fprintf(f, "\nRESULT: PASS (%d checks%s)\n", r->n,
		        warned ? ", see the warnings" : "");
}

int selftest_print_json(const struct selftest_report *r, FILE *f)
{
	cJSON *o = cJSON_CreateObject(), *arr, *c;
	int failed = 0, ok = o != NULL;
	for (int i = 0; i < r->n; i++)
		failed += r->checks[i].status == SELFTEST_FAIL;
	ok = ok && cJSON_AddBoolToObject(o, "ok", failed == 0) &&
	     cJSON_AddStringToObject(o, "version", ESS_VERSION) &&
	     cJSON_AddStringToObject(o, "board", r->board) &&
	     (arr = cJSON_AddArrayToObject(o, "checks"));
	for (int i = 0; ok && i < r->n; i++) {
		const struct selftest_check *k = &r->checks[i];
		ok = (c = cJSON_CreateObject()) && cJSON_AddItemToArray(arr, c) &&
		     cJSON_AddStringToObject(c, "name", k->name) &&
		     cJSON_AddStringToObject(c, "status", selftest_status_name(k->status)) &&
		     cJSON_AddStringToObject(c, "detail", k->detail) &&
		     cJSON_AddNumberToObject(c, "ms", (double)k->ms);
	}
	char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (!text)
		return -ENOMEM;
	fprintf(f, "%s\n", text);
	free(text);
	return 0;
}
