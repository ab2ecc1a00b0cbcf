/* The store against a thief, a tamperer, wrong keys, old schemas, a full
 * disk and a damaged file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/log.h"
#include "agent/store.h"
#include "agent/store_int.h"
#include "agent/store_schema.h"
#include "hal/keystore.h"
#include "tests/lib/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const unsigned char SIG[64] = {9, 9, 9};

/* Every log line written during these tests, for the canary scan. */
static char *logbuf;
static size_t loglen;

static void log_capture(void *arg, enum log_level level, const char *line)
{
	(void)arg;
	(void)level;
	size_t n = strlen(line);
	logbuf = realloc(logbuf, loglen + n + 2);
	memcpy(logbuf + loglen, line, n);
	loglen += n;
	logbuf[loglen++] = '\n';
	logbuf[loglen] = 0;
}

static int setup(void **state)
{
	*state = tu_tmpdir("faults");
	return 0;
}

static int teardown(void **state)
{
	tu_rmrf(*state);
	return 0;
}

static void pathf(char *buf, size_t cap, const char *dir, const char *name)
{
	snprintf(buf, cap, "%s/%s", dir, name);
}

static sqlite3 *raw_open(const char *dir)
{
	char p[512];
	pathf(p, sizeof(p), dir, "ess.db");
	sqlite3 *db;
	assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
	return db;
}

static void raw_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		fprintf(stderr, "# %s: %s\n", sql, msg);
	assert_int_equal(rc, SQLITE_OK);
}

static void put(struct store *s, const char *id, int64_t version, const char *doc)
{
	int rc = store_incident_put(s, id, version, STORE_DISPATCH_ASSIGNED, tu_now_ms(), doc,
	                            strlen(doc), SIG);
	assert_true(rc >= 0);
}

static int64_t note(struct store *s, const char *text)
{
	int64_t seq;
	assert_int_equal(store_outbox_append(s, STORE_EVENT_NOTE, text, strlen(text), &seq, NULL),
	                 0);
	return seq;
}

/* ---- canaries: nothing personal readable in any file of the store ---- */

#define LAT_E7 137563309
#define LON_E7 1005017651

static const char *const canaries[] = {
    "Somchai Jaidee",                                                    /* reporter */
    "081-234-5678",                                                      /* phone */
    "0812345678",                                                        /* phone, bare */
    "line-somchai99",                                                    /* LINE id */
    "สมชาย ใจดี",                                                         /* Thai name */
    "ซอยสุขุมวิท 11",                                                       /* Thai address */
    "locked in the shed",                                                /* summary */
    "13.7563309",                                                        /* coordinates as text */
    "100.5017651",        "137563309", "1005017651", "cursor-canary-77", /* sync state */
    "NST-RESP-CANARY",                                                   /* unit */
    "rejected-canary",                                                   /* server reason */
    "audit-canary",                                                      /* audit detail */
};

static size_t put_varint(unsigned char *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (unsigned char)v;
	return n;
}

static void scan_all(const char *dir, const char *when)
{
	static const char *const files[] = {"ess.db", "ess.db-wal", "ess.db-shm", "keys", "kek"};
	struct {
		unsigned char b[16];
		size_t n;
		const char *what;
	} bin[8];
	int nb = 0;
	int32_t lat = LAT_E7, lon = LON_E7;
	double dlat = 13.7563309, dlon = 100.5017651;
	memcpy(bin[nb].b, &lat, 4), bin[nb].n = 4, bin[nb++].what = "lat int32";
	memcpy(bin[nb].b, &lon, 4), bin[nb].n = 4, bin[nb++].what = "lon int32";
	uint32_t blat = __builtin_bswap32((uint32_t)lat), blon = __builtin_bswap32((uint32_t)lon);
	memcpy(bin[nb].b, &blat, 4), bin[nb].n = 4, bin[nb++].what = "lat int32 BE";
	memcpy(bin[nb].b, &blon, 4), bin[nb].n = 4, bin[nb++].what = "lon int32 BE";
	memcpy(bin[nb].b, &dlat, 8), bin[nb].n = 8, bin[nb++].what = "lat double";
	memcpy(bin[nb].b, &dlon, 8), bin[nb].n = 8, bin[nb++].what = "lon double";
	/* poscodec writes the first fix of a chunk as zig-zag varints */
	bin[nb].n = put_varint(bin[nb].b, (uint64_t)lat << 1), bin[nb++].what = "lat varint";
	bin[nb].n = put_varint(bin[nb].b, (uint64_t)lon << 1), bin[nb++].what = "lon varint";

	for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
		char p[512];
		pathf(p, sizeof(p), dir, files[f]);
		for (size_t i = 0; i < sizeof(canaries) / sizeof(canaries[0]); i++) {
			size_t hits = tu_file_count(p, canaries[i], strlen(canaries[i]));
			if (hits)
				fprintf(stderr, "# %s: canary '%s' in %s\n", when, canaries[i], p);
			assert_int_equal(hits, 0);
		}
		for (int i = 0; i < nb; i++) {
			size_t hits = tu_file_count(p, bin[i].b, bin[i].n);
			if (hits)
				fprintf(stderr, "# %s: %s found in %s\n", when, bin[i].what, p);
			assert_int_equal(hits, 0);
		}
	}
	for (size_t i = 0; i < sizeof(canaries) / sizeof(canaries[0]); i++)
		assert_null(logbuf ? strstr(logbuf, canaries[i]) : NULL);
}

static void fill_canaries(struct store *s)
{
	char doc[2048];
	for (int i = 0; i < 20; i++) {
		char id[32];
		snprintf(id, sizeof(id), "inc-%d", i);
		snprintf(
		    doc, sizeof(doc),
		    "{\"id\":\"%s\",\"version\":1,\"category\":\"confinement\",\"silent\":true,"
		    "\"location\":{\"lat\":13.7563309,\"lon\":100.5017651,\"accuracy_m\":8},"
		    "\"address\":\"ซอยสุขุมวิท 11\",\"summary\":\"child locked in the shed\","
		    "\"reporter\":{\"name\":\"Somchai Jaidee\",\"phone\":\"081-234-5678\","
		    "\"line_id\":\"line-somchai99\"},\"subjects\":[{\"role\":\"victim\","
		    "\"notes\":\"สมชาย ใจดี 0812345678\"}],\"unit\":\"NST-RESP-CANARY\"}",
		    id);
		put(s, id, 1, doc);
		char ev[512];
		snprintf(ev, sizeof(ev),
		         "{\"type\":\"note\",\"incident_id\":\"%s\",\"text\":\"spoke to Somchai "
		         "Jaidee 0812345678 สมชาย ใจดี\",\"location\":{\"lat\":13.7563309,"
		         "\"lon\":100.5017651}}",
		         id);
		note(s, ev);
	}
	/* the same sealed as groups (one transaction, one row), one of them
	 * partly delivered and one of its events rejected */
	for (int g = 0; g < 2; g++) {
		int64_t first = 0, seq;
		assert_int_equal(store_begin(s), 0);
		for (int i = 0; i < 12; i++) {
			char ev[512];
			snprintf(ev, sizeof(ev),
			         "{\"type\":\"note\",\"incident_id\":\"inc-%d\",\"text\":\"grouped "
			         "Somchai Jaidee 081-234-5678 สมชาย ใจดี\",\"location\":{\"lat\":"
			         "13.7563309,\"lon\":100.5017651}}",
			         i);
			assert_int_equal(
			    store_outbox_append(s, STORE_EVENT_NOTE, ev, strlen(ev), &seq, NULL),
			    0);
			first = i ? first : seq;
		}
		assert_int_equal(store_commit(s), 0);
		if (g == 1) {
			int64_t some[] = {first, first + 1, first + 5};
			assert_int_equal(store_outbox_delivered(s, some, 3), 0);
			assert_int_equal(
			    store_outbox_reject(s, first + 7, "rejected-canary grouped", 1), 0);
		}
	}
	int64_t rej = note(s, "{\"text\":\"locked in the shed\"}");
	assert_int_equal(store_outbox_reject(s, rej, "rejected-canary for Somchai Jaidee", 1), 0);
	for (int i = 0; i < 600; i++) {
		struct store_fix f = {.t_ms = 1800000000000LL + i * 1000,
		                      .lat_e7 = LAT_E7,
		                      .lon_e7 = LON_E7,
		                      .accuracy_dm = 80,
		                      .speed_cm_s = 0,
		                      .heading_cdeg = 0,
		                      .mode = 3};
		assert_int_equal(store_pos_append(s, &f), 0);
	}
	assert_int_equal(store_pos_flush(s), 0);
	assert_int_equal(store_state_set(s, "cursor", "cursor-canary-77", 16), 0);
	assert_int_equal(store_state_set(s, "unit", "NST-RESP-CANARY", 15), 0);
	assert_int_equal(store_audit_add(s, STORE_AUDIT_NOTE, "inc-1", "audit-canary Somchai", 1),
	                 0);
}

static void test_canary(void **state)
{
	const char *dir = *state;
	struct tu_store t;
	log_set_level(LOG_LEVEL_DEBUG);
	log_set_sink(log_capture, NULL);
	assert_int_equal(tu_store_open(&t, dir, 1), 0);
	fill_canaries(t.s);
	scan_all(dir, "open (WAL)"); /* committed data sits in the WAL now */
	assert_int_equal(store_checkpoint(t.s), 0);
	scan_all(dir, "after checkpoint");
	/* Updating and deleting must not leave plaintext behind either. */
	put(t.s, "inc-1", 2, "{\"summary\":\"moved\"}");
	assert_true(store_purge(t.s, tu_now_ms() + 1000, 0, 0) >= 0);
	tu_store_close(&t);
	scan_all(dir, "closed");
	log_set_sink(NULL, NULL);
	log_set_level(LOG_LEVEL_INFO);
}

/* ---- tamper and swaps ---- */

static void flip_blob(sqlite3 *db, const char *sql_get, const char *sql_set, int offset)
{
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql_get, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int n = sqlite3_column_bytes(st, 0);
	unsigned char *b = malloc((size_t)n);
	memcpy(b, sqlite3_column_blob(st, 0), (size_t)n);
	sqlite3_finalize(st);
	b[offset % n] ^= 0x01;
	assert_int_equal(sqlite3_prepare_v2(db, sql_set, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_blob(st, 1, b, n, SQLITE_TRANSIENT);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	free(b);
}

struct count_cb {
	int n;
};

static int count_inc(void *arg, const struct store_incident *inc)
{
	(void)inc;
	((struct count_cb *)arg)->n++;
	return 0;
}

static int count_ev(void *arg, const struct store_event *ev)
{
	(void)ev;
	((struct count_cb *)arg)->n++;
	return 0;
}

static int count_fixes(void *arg, const struct store_fix *f, size_t n)
{
	(void)arg, (void)f, (void)n;
	return 0;
}

static int count_rejected(void *arg, const struct store_rejected *r)
{
	(void)r;
	(*(int *)arg)++;
	return 0;
}

static int count_audit(void *arg, int64_t at, enum store_audit_action a, const char *subject,
                       const char *detail)
{
	(void)at, (void)a, (void)subject, (void)detail;
	(*(int *)arg)++;
	return 0;
}

static void test_tampered_rows_quarantined(void **state)
{
	const char *dir = *state;
	struct tu_store t;
	assert_int_equal(tu_store_open(&t, dir, 1), 0);
	put(t.s, "a", 1, "{\"who\":\"a\"}");
	put(t.s, "b", 1, "{\"who\":\"b\"}");
	put(t.s, "c", 1, "{\"who\":\"c\"}");
	int64_t s1 = note(t.s, "one"), s2 = note(t.s, "two"), s3 = note(t.s, "three");
	int64_t s4 = note(t.s, "four"), s5 = note(t.s, "five");
	(void)s1;
	(void)s3;
	assert_int_equal(store_outbox_reject(t.s, s4, "why four", 1), 0);
	assert_int_equal(store_outbox_reject(t.s, s5, "why five", 1), 0);
	for (int i = 0; i < 3; i++) { /* three position chunks */
		struct store_fix f = {.t_ms = 1800000000000LL + i * 1000,
		                      .lat_e7 = i,
		                      .lon_e7 = i,
		                      .accuracy_dm = 1,
		                      .speed_cm_s = 1,
		                      .heading_cdeg = 1,
		                      .mode = 3};
		assert_int_equal(store_pos_append(t.s, &f), 0);
		int64_t tok;
		assert_int_equal(store_pos_peek(t.s, 0, count_fixes, NULL, &tok),
		                 1); /* closes it */
	}
	assert_int_equal(store_audit_add(t.s, STORE_AUDIT_VIEWED, "a", "x", 1), 0);
	assert_int_equal(store_audit_add(t.s, STORE_AUDIT_VIEWED, "b", "y", 2), 0);
	tu_store_close(&t);

	sqlite3 *db = raw_open(dir);
	flip_blob(db, "SELECT doc FROM incidents WHERE id='b'",
	          "UPDATE incidents SET doc=? WHERE id='b'", 60);
	char get[128], set[128];
	snprintf(get, sizeof(get), "SELECT body FROM outbox WHERE seq=%lld", (long long)s2);
	snprintf(set, sizeof(set), "UPDATE outbox SET body=? WHERE seq=%lld", (long long)s2);
	flip_blob(db, get, set, 30);
	snprintf(get, sizeof(get), "SELECT reason FROM rejected WHERE seq=%lld", (long long)s4);
	snprintf(set, sizeof(set), "UPDATE rejected SET reason=? WHERE seq=%lld", (long long)s4);
	flip_blob(db, get, set, 41);
	flip_blob(db, "SELECT chunk FROM positions ORDER BY id LIMIT 1 OFFSET 1",
	          "UPDATE positions SET chunk=? WHERE id=(SELECT id FROM positions ORDER BY id "
	          "LIMIT 1 OFFSET 1)",
	          45);
	flip_blob(db, "SELECT entry FROM audit ORDER BY id LIMIT 1",
	          "UPDATE audit SET entry=? WHERE id=(SELECT min(id) FROM audit)", 44);
	sqlite3_close(db);

	assert_int_equal(tu_store_open(&t, dir, 0), 0);
	struct store_incident inc;
	assert_int_equal(store_incident_get(t.s, "b", &inc), -EBADMSG);
	assert_int_equal(store_incident_get(t.s, "a", &inc), 0);
	store_incident_clear(&inc);
	struct count_cb c = {0};
	assert_int_equal(store_incident_each(t.s, count_inc, &c), 0);
	assert_int_equal(c.n, 2);
	c.n = 0;
	assert_int_equal(store_outbox_peek(t.s, 10, count_ev, &c), 2); /* two, not three */
	int64_t q;
	assert_int_equal(store_quarantine_count(t.s, &q), 0);
	assert_int_equal(q, 2);
	c.n = 0;
	assert_int_equal(store_outbox_peek(t.s, 10, count_ev, &c), 2); /* stays usable */

	/* the rejected list, the trail and the audit log: same rule */
	int n = 0;
	assert_int_equal(store_rejected_each(t.s, count_rejected, &n), -EBADMSG);
	assert_int_equal(n, 1);
	n = 0;
	assert_int_equal(store_rejected_each(t.s, count_rejected, &n), 0);
	assert_int_equal(n, 1);
	int64_t tok, fixes;
	assert_int_equal(store_pos_peek(t.s, 100, count_fixes, NULL, &tok), 2);
	assert_int_equal(store_pos_count(t.s, &fixes), 0);
	assert_int_equal(fixes, 2);
	n = 0;
	assert_int_equal(store_audit_each(t.s, count_audit, &n), -EBADMSG);
	assert_int_equal(n, 1);
	assert_int_equal(store_quarantine_count(t.s, &q), 0);
	assert_int_equal(q, 5);
	tu_store_close(&t);
}

/* Swaps a column between two rows through a copy: an UPDATE that reads the
 * table it writes would see its own first change. */
static void swap_col(sqlite3 *db, const char *table, const char *col, const char *key,
                     const char *k1, const char *k2)
{
	char sql[1024];
	snprintf(sql, sizeof(sql),
	         "CREATE TEMP TABLE sw AS SELECT %s AS k, %s AS v FROM %s WHERE %s IN (%s, %s);"
	         "UPDATE %s SET %s = (SELECT v FROM sw WHERE k = CASE WHEN %s.%s = %s THEN %s "
	         "ELSE %s END) WHERE %s IN (%s, %s);"
	         "DROP TABLE sw;",
	         key, col, table, key, k1, k2, table, col, table, key, k1, k2, k1, key, k1, k2);
	raw_exec(db, sql);
}

static void test_swapped_and_replayed_rows(void **state)
{
	const char *dir = *state;
	struct tu_store t;
	assert_int_equal(tu_store_open(&t, dir, 1), 0);
	put(t.s, "a", 1, "{\"who\":\"a\"}");
	put(t.s, "b", 1, "{\"who\":\"b\"}");
	put(t.s, "r", 1, "{\"v\":1}");
	int64_t s1 = note(t.s, "one"), s2 = note(t.s, "two");
	int64_t s3;
	assert_int_equal(store_outbox_append(t.s, STORE_EVENT_SOS, "sos", 3, &s3, NULL), 0);
	assert_int_equal(store_state_set(t.s, "cursor", "c1", 2), 0);
	assert_int_equal(store_state_set(t.s, "unit", "u1", 2), 0);
	tu_store_close(&t);

	/* keep version 1 of r, then store version 2 and put the old one back */
	sqlite3 *db = raw_open(dir);
	raw_exec(db, "CREATE TABLE old AS SELECT doc FROM incidents WHERE id='r'");
	sqlite3_close(db);
	assert_int_equal(tu_store_open(&t, dir, 0), 0);
	put(t.s, "r", 2, "{\"v\":2}");
	tu_store_close(&t);

	db = raw_open(dir);
	swap_col(db, "incidents", "doc", "id", "'a'", "'b'");
	char k1[32], k2[32];
	snprintf(k1, sizeof(k1), "%lld", (long long)s1);
	snprintf(k2, sizeof(k2), "%lld", (long long)s2);
	swap_col(db, "outbox", "body", "seq", k1, k2);
	swap_col(db, "state", "value", "key", "'cursor'", "'unit'");
	raw_exec(db, "UPDATE incidents SET doc = (SELECT doc FROM old) WHERE id='r'");
	/* an SOS disguised as a note: the type is bound into the body's AD */
	char sql[128];
	snprintf(sql, sizeof(sql), "UPDATE outbox SET type=1 WHERE seq=%lld", (long long)s3);
	raw_exec(db, sql);
	raw_exec(db, "DROP TABLE old");
	sqlite3_close(db);

	assert_int_equal(tu_store_open(&t, dir, 0), 0);
	struct store_incident inc;
	assert_int_equal(store_incident_get(t.s, "a", &inc), -EBADMSG);
	assert_int_equal(store_incident_get(t.s, "b", &inc), -EBADMSG);
	assert_int_equal(store_incident_get(t.s, "r", &inc), -EBADMSG);
	struct count_cb c = {0};
	assert_int_equal(store_outbox_peek(t.s, 10, count_ev, &c), 0);
	char buf[8];
	size_t len;
	assert_int_equal(store_state_get(t.s, "cursor", buf, sizeof(buf), &len), -EBADMSG);
	assert_int_equal(store_state_get(t.s, "unit", buf, sizeof(buf), &len), -EBADMSG);
	int64_t q;
	assert_int_equal(store_quarantine_count(t.s, &q), 0);
	assert_int_equal(q, 8);
	tu_store_close(&t);
}

struct collect {
	int n;
	int64_t seq[16];
	char body[16][64];
	char id[16][STORE_EVENT_ID_LEN + 1];
};

static int collect_ev(void *arg, const struct store_event *ev)
{
	struct collect *c = arg;
	if (c->n < 16) {
		c->seq[c->n] = ev->seq;
		snprintf(c->body[c->n], sizeof(c->body[0]), "%s", (const char *)ev->body);
		memcpy(c->id[c->n], ev->event_id, sizeof(c->id[0]));
	}
	c->n++;
	return 0;
}

/* Appends n notes in one transaction: one group row. Returns the first seq. */
static int64_t group_of(struct store *s, int n, int with_sos, const char *tag)
{
	int64_t first = 0, seq;
	assert_int_equal(store_begin(s), 0);
	for (int i = 0; i < n; i++) {
		char body[64];
		snprintf(body, sizeof(body), "{\"g\":\"%s\",\"i\":%d}", tag, i);
		enum store_event_type type =
		    with_sos && i == n / 2 ? STORE_EVENT_SOS : STORE_EVENT_NOTE;
		assert_int_equal(store_outbox_append(s, type, body, strlen(body), &seq, NULL), 0);
		if (i == 0)
			first = seq;
	}
	assert_int_equal(store_commit(s), 0);
	return first;
}

/* Group rows under the same rules as single rows: a flipped bit, a swap, a
 * moved, cut, extended or relabelled range all fail to open and are
 * quarantined whole; the rest of the queue stays usable. The done bitmap is
 * not sealed: damage to it may send an event again, never lose one. */
static void test_group_tamper_and_swaps(void **state)
{
	const char *dir = *state;
	struct tu_store t;
	assert_int_equal(tu_store_open(&t, dir, 1), 0);
	int64_t g1 = group_of(t.s, 5, 0, "flip");
	int64_t g2 = group_of(t.s, 5, 0, "swap-a");
	int64_t g3 = group_of(t.s, 5, 0, "swap-b");
	int64_t g4 = group_of(t.s, 4, 1, "relabel");
	int64_t g5 = group_of(t.s, 6, 0, "cut");
	int64_t g6 = group_of(t.s, 3, 0, "moved");
	int64_t lone = note(t.s, "lone");
	int64_t g7 = group_of(t.s, 4, 0, "into-single");
	int64_t g8 = group_of(t.s, 8, 0, "bitmap");
	int64_t g9 = group_of(t.s, 3, 0, "intact");
	int64_t part = g8 + 2;
	assert_int_equal(store_outbox_delivered(t.s, &part, 1), 0); /* g8 has a bitmap now */
	tu_store_close(&t);

	sqlite3 *db = raw_open(dir);
	char get[160], set[160], sql[256];
	snprintf(get, sizeof(get), "SELECT body FROM outbox_group WHERE seq=%lld",
	         (long long)(g1 + 4));
	snprintf(set, sizeof(set), "UPDATE outbox_group SET body=? WHERE seq=%lld",
	         (long long)(g1 + 4));
	flip_blob(db, get, set, 77);
	char k1[32], k2[32];
	snprintf(k1, sizeof(k1), "%lld", (long long)(g2 + 4));
	snprintf(k2, sizeof(k2), "%lld", (long long)(g3 + 4));
	swap_col(db, "outbox_group", "body", "seq", k1, k2);
	/* the SOS inside relabelled away: it would lose its priority */
	snprintf(sql, sizeof(sql), "UPDATE outbox SET type=255 WHERE seq=%lld",
	         (long long)(g4 + 3));
	raw_exec(db, sql);
	/* the range cut short by one event */
	snprintf(sql, sizeof(sql), "UPDATE outbox SET n=5 WHERE seq=%lld", (long long)(g5 + 5));
	raw_exec(db, sql);
	/* the whole group moved to other seqs */
	snprintf(sql, sizeof(sql),
	         "UPDATE outbox SET seq=%lld WHERE seq=%lld;"
	         "UPDATE outbox_group SET seq=%lld WHERE seq=%lld",
	         (long long)(g9 + 100), (long long)(g6 + 2), (long long)(g9 + 100),
	         (long long)(g6 + 2));
	raw_exec(db, sql);
	/* a group's sealed body put into a single event's row */
	snprintf(sql, sizeof(sql),
	         "UPDATE outbox SET body=(SELECT body FROM outbox_group WHERE seq=%lld) "
	         "WHERE seq=%lld",
	         (long long)(g7 + 3), (long long)lone);
	raw_exec(db, sql);
	/* a bitmap of the wrong size */
	snprintf(sql, sizeof(sql), "UPDATE outbox SET done=X'ffff' WHERE seq=%lld",
	         (long long)(g8 + 7));
	raw_exec(db, sql);
	sqlite3_close(db);

	assert_int_equal(tu_store_open(&t, dir, 0), 0);
	struct collect c = {0};
	/* left: g7 (4), g8 (all 8 again: the bitmap is unreadable), g9 (3) */
	assert_int_equal(store_outbox_peek(t.s, 100, collect_ev, &c), 15);
	assert_int_equal(c.seq[0], g7);
	assert_int_equal(c.seq[4], g8);
	assert_int_equal(c.seq[6], g8 + 2); /* sent again: a duplicate at the server */
	assert_int_equal(c.seq[12], g9);
	assert_string_equal(c.body[14], "{\"g\":\"intact\",\"i\":2}");
	int64_t q, n;
	assert_int_equal(store_quarantine_count(t.s, &q), 0);
	assert_int_equal(q, 7); /* g1, g2, g3, g4, g5, g6 moved, lone */
	assert_int_equal(store_outbox_count(t.s, &n), 0);
	assert_int_equal(n, 15);
	/* still usable: deliver across the groups, append another */
	int64_t all[15];
	for (int i = 0; i < 15; i++)
		all[i] = c.seq[i];
	assert_int_equal(store_outbox_delivered(t.s, all, 15), 0);
	assert_int_equal(store_outbox_count(t.s, &n), 0);
	assert_int_equal(n, 0);
	assert_true(group_of(t.s, 2, 0, "after") > g9 + 2);
	tu_store_close(&t);
	/* quarantined groups took their sealed values along; delivered ones
	 * are gone from both tables */
	db = raw_open(dir);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db,
	                                    "SELECT (SELECT count(*) FROM outbox_group), "
	                                    "(SELECT count(*) FROM outbox), "
	                                    "(SELECT count(*) FROM quarantine WHERE data IS NULL)",
	                                    -1, &st, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 1);
	assert_int_equal(sqlite3_column_int(st, 1), 1);
	assert_int_equal(sqlite3_column_int(st, 2), 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* ---- keys ---- */

static void test_wrong_key_refused_untouched(void **state)
{
	const char *dir = *state;
	struct tu_store t;
	char kek[512], db[512], wal[512], h1[65], h2[65], w1[65], w2[65];
	pathf(kek, sizeof(kek), dir, "kek");
	pathf(db, sizeof(db), dir, "ess.db");
	pathf(wal, sizeof(wal), dir, "ess.db-wal");
	assert_int_equal(tu_store_open(&t, dir, 1), 0);
	put(t.s, "a", 1, "{}");
	tu_store_close(&t);
	tu_file_hash(db, h1);
	tu_file_hash(wal, w1);

	/* another KEK in place of the right one */
	unsigned char other[32];
	randombytes_buf(other, sizeof(other));
	unlink(kek);
	int fd = open(kek, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, other, 32), 32);
	close(fd);
	struct hal_keystore *ks;
	char err[512];
	assert_int_equal(hal_keystore_open("file", kek, &ks, err, sizeof(err)), 0);
	struct store *s;
	struct store_params p = {.dir = dir, .keystore = ks, .create = 1};
	assert_int_equal(store_open(&p, &s, NULL, err, sizeof(err)), -EKEYREJECTED);
	assert_non_null(strstr(err, "/keys"));
	hal_keystore_close(ks);
	tu_file_hash(db, h2);
	tu_file_hash(wal, w2);
	assert_string_equal(h1, h2);
	assert_string_equal(w1, w2);
}

static void test_keys_of_another_store(void **state)
{
	const char *dir = *state;
	char *other = tu_tmpdir("other");
	struct tu_store t;
	assert_int_equal(tu_store_open(&t, dir, 1), 0);
	tu_store_close(&t);
	assert_int_equal(tu_store_open(&t, other, 1), 0);
	tu_store_close(&t);
	/* a valid keys file + KEK pair, but not the one this database was made with */
	char from[600], to[600];
	snprintf(from, sizeof(from), "%s/keys", other);
	snprintf(to, sizeof(to), "%s/keys", dir);
	assert_int_equal(rename(from, to), 0);
	snprintf(from, sizeof(from), "%s/kek", other);
	snprintf(to, sizeof(to), "%s/kek", dir);
	assert_int_equal(rename(from, to), 0);
	char h1[65], h2[65], db[600];
	snprintf(db, sizeof(db), "%s/ess.db", dir);
	tu_file_hash(db, h1);
	assert_int_equal(tu_store_open(&t, dir, 1), -EKEYREJECTED);
	tu_file_hash(db, h2);
	assert_string_equal(h1, h2);
	tu_rmrf(other);
}

static void test_bad_permissions_and_missing_files(void **state)
{
	const char *dir = *state;
	struct tu_store t;
	char kek[512], keys[512], db[512], err[512], h1[65], h2[65];
	pathf(kek, sizeof(kek), dir, "kek");
	pathf(keys, sizeof(keys), dir, "keys");
	pathf(db, sizeof(db), dir, "ess.db");
	assert_int_equal(tu_store_open(&t, dir, 1), 0);
	put(t.s, "a", 1, "{}");
	tu_store_close(&t);
	tu_file_hash(db, h1);

	struct hal_keystore *ks;
	struct store *s;
	assert_int_equal(chmod(kek, 0640), 0);
	assert_int_equal(hal_keystore_open("file", kek, &ks, err, sizeof(err)), 0);
	struct store_params p = {.dir = dir, .keystore = ks, .create = 1};
	assert_int_equal(store_open(&p, &s, NULL, err, sizeof(err)), -EACCES);
	assert_non_null(strstr(err, kek));
	assert_non_null(strstr(err, "chmod 600"));
	assert_int_equal(chmod(kek, 0600), 0);
	assert_int_equal(chmod(keys, 0604), 0);
	assert_int_equal(store_open(&p, &s, NULL, err, sizeof(err)), -EACCES);
	assert_non_null(strstr(err, keys));
	assert_int_equal(chmod(keys, 0600), 0);

	/* A missing KEK next to an existing store is never replaced by a new one. */
	char saved[600];
	snprintf(saved, sizeof(saved), "%s.saved", kek);
	assert_int_equal(rename(kek, saved), 0);
	assert_int_equal(store_open(&p, &s, NULL, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, kek));
	assert_int_equal(access(kek, F_OK), -1);
	assert_int_equal(rename(saved, kek), 0);

	/* A truncated KEK file */
	assert_int_equal(truncate(kek, 16), 0);
	assert_int_equal(store_open(&p, &s, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, kek));
	hal_keystore_close(ks);

	/* Missing keys file with a database present */
	struct tu_store t2;
	char *d2 = tu_tmpdir("nokeys");
	assert_int_equal(tu_store_open(&t2, d2, 1), 0);
	tu_store_close(&t2);
	char k2[600];
	snprintf(k2, sizeof(k2), "%s/keys", d2);
	unlink(k2);
	assert_int_equal(tu_store_open(&t2, d2, 1), -ENOKEY);
	assert_int_equal(access(k2, F_OK), -1);
	tu_rmrf(d2);

	tu_file_hash(db, h2);
	assert_string_equal(h1, h2);
}

/* ---- schema ---- */

static void schema_of(sqlite3 *db, char *out, size_t cap)
{
	sqlite3_stmt *st;
	out[0] = 0;
	assert_int_equal(sqlite3_prepare_v2(db,
	                                    "SELECT type, name, sql FROM sqlite_master "
	                                    "WHERE name NOT LIKE 'sqlite_%' ORDER BY name",
	                                    -1, &st, NULL),
	                 SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		size_t n = strlen(out);
		snprintf(out + n, cap - n, "%s %s %s\n", sqlite3_column_text(st, 0),
		         sqlite3_column_text(st, 1), sqlite3_column_text(st, 2));
	}
	sqlite3_finalize(st);
}

/* Takes a database of the current schema back to an older one, the way that
 * schema was: what each migration added is removed again. */
static void take_back(sqlite3 *db, int version)
{
	assert_int_equal(store_schema_version(), 4);
	if (version < 4)
		raw_exec(db, "DROP INDEX incidents_active; DROP INDEX incidents_ended;"
		             "CREATE INDEX incidents_ended ON incidents(ended_at) "
		             "WHERE ended_at IS NOT NULL;");
	if (version < 3)
		raw_exec(db,
		         "DROP TABLE outbox_group;"
		         "ALTER TABLE outbox DROP COLUMN done; ALTER TABLE outbox DROP COLUMN n;");
	if (version < 2)
		raw_exec(db, "DROP INDEX outbox_sos; DROP INDEX incidents_ended;"
		             "DROP TABLE quarantine;");
	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d;", version);
	raw_exec(db, sql);
}

static void schema_at(int version, char *out, size_t cap)
{
	char err[256];
	sqlite3 *ref;
	assert_int_equal(sqlite3_open(":memory:", &ref), SQLITE_OK);
	assert_int_equal(store_schema_migrate(ref, version, err, sizeof(err)), 0);
	schema_of(ref, out, cap);
	sqlite3_close(ref);
}

static int user_version_of(const char *dir)
{
	sqlite3 *db = raw_open(dir);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* Takes the closed store in dir back to schema version: afterwards its
 * schema is exactly the one that version made, and so is its user_version. */
static void take_back_to(const char *dir, int version)
{
	static char want[8192], got[8192];
	schema_at(version, want, sizeof(want));
	sqlite3 *db = raw_open(dir);
	take_back(db, version);
	schema_of(db, got, sizeof(got));
	sqlite3_close(db);
	assert_string_equal(want, got);
	assert_int_equal(user_version_of(dir), version);
}

static void test_migration_from_v1(void **state)
{
	const char *dir = *state;

	/* A store with data, taken back to exactly the schema version 1 made. */
	struct tu_store t;
	assert_int_equal(tu_store_open(&t, dir, 1), 0);
	put(t.s, "a", 1, "{\"v\":1}");
	int64_t seq = note(t.s, "kept across the migration");
	struct store_fix f = {.t_ms = 1800000000000LL,
	                      .lat_e7 = 1,
	                      .lon_e7 = 2,
	                      .accuracy_dm = -1,
	                      .speed_cm_s = -1,
	                      .heading_cdeg = -1,
	                      .mode = 2};
	assert_int_equal(store_pos_append(t.s, &f), 0);
	tu_store_close(&t);
	take_back_to(dir, 1);

	assert_int_equal(tu_store_open(&t, dir, 0), 0);
	assert_true(t.flags & STORE_OPENED_MIGRATED);
	struct store_incident inc;
	assert_int_equal(store_incident_get(t.s, "a", &inc), 0);
	assert_string_equal((char *)inc.payload, "{\"v\":1}");
	store_incident_clear(&inc);
	struct count_cb c = {0};
	assert_int_equal(store_outbox_peek(t.s, 10, count_ev, &c), 1);
	int64_t n;
	assert_int_equal(store_pos_count(t.s, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(store_quarantine_count(t.s, &n), 0); /* the new table works */
	assert_true(note(t.s, "after") > seq);
	tu_store_close(&t);
	assert_int_equal(user_version_of(dir), store_schema_version());
}

/* Schema 2 had one row per event and no group columns: its queue comes
 * through the migration whole (same seq, event id, body, order) and groups
 * can be written and drained afterwards. */
static void test_migration_from_v2(void **state)
{
	const char *dir = *state;

	struct tu_store t;
	assert_int_equal(tu_store_open(&t, dir, 1), 0);
	int64_t seq[3];
	char id[3][STORE_EVENT_ID_LEN + 1];
	static const char *const bodies[] = {"v2 one", "v2 two", "v2 three"};
	for (int i = 0; i < 3; i++)
		assert_int_equal(store_outbox_append(t.s, STORE_EVENT_NOTE, bodies[i],
		                                     strlen(bodies[i]), &seq[i], id[i]),
		                 0);
	assert_int_equal(store_outbox_reject(t.s, seq[1], "v2 reason", 5), 0);
	tu_store_close(&t);
	take_back_to(dir, 2);

	assert_int_equal(tu_store_open(&t, dir, 0), 0);
	assert_true(t.flags & STORE_OPENED_MIGRATED);
	struct collect c = {0};
	assert_int_equal(store_outbox_peek(t.s, 10, collect_ev, &c), 2);
	assert_int_equal(c.seq[0], seq[0]);
	assert_int_equal(c.seq[1], seq[2]);
	assert_string_equal(c.body[0], bodies[0]);
	assert_string_equal(c.body[1], bodies[2]);
	assert_string_equal(c.id[0], id[0]);
	assert_string_equal(c.id[1], id[2]);
	int n = 0;
	assert_int_equal(store_rejected_each(t.s, count_rejected, &n), 0);
	assert_int_equal(n, 1);

	/* a group after the old rows, partly delivered with them */
	int64_t g[3];
	assert_int_equal(store_begin(t.s), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(
		    store_outbox_append(t.s, STORE_EVENT_NOTE, "grouped", 7, &g[i], NULL), 0);
	assert_int_equal(store_commit(t.s), 0);
	assert_true(g[0] > seq[2]);
	int64_t done[] = {seq[0], g[1]};
	assert_int_equal(store_outbox_delivered(t.s, done, 2), 0);
	int64_t left;
	assert_int_equal(store_outbox_count(t.s, &left), 0);
	assert_int_equal(left, 3);
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_outbox_peek(t.s, 10, collect_ev, &c), 3);
	assert_int_equal(c.seq[0], seq[2]);
	assert_int_equal(c.seq[1], g[0]);
	assert_int_equal(c.seq[2], g[2]);
	tu_store_close(&t);
	assert_int_equal(user_version_of(dir), store_schema_version());
}

static int count_incident(void *arg, const struct store_incident *inc)
{
	(void)inc;
	(*(int *)arg)++;
	return 0;
}

/* Schema 3 walked incidents with a sort; 4 adds the indexes the walk uses
 * instead: the incidents come through and are walked the same. */
static void test_migration_from_v3(void **state)
{
	const char *dir = *state;

	struct tu_store t;
	assert_int_equal(tu_store_open(&t, dir, 1), 0);
	put(t.s, "a", 1, "{\"v\":1}");
	put(t.s, "b", 1, "{\"v\":2}");
	tu_store_close(&t);
	take_back_to(dir, 3);

	assert_int_equal(tu_store_open(&t, dir, 0), 0);
	assert_true(t.flags & STORE_OPENED_MIGRATED);
	int n = 0;
	assert_int_equal(store_incident_each(t.s, count_incident, &n), 0);
	assert_int_equal(n, 2);
	tu_store_close(&t);
	assert_int_equal(user_version_of(dir), store_schema_version());
}

static void test_newer_schema_refused(void **state)
{
	const char *dir = *state;
	struct tu_store t;
	assert_int_equal(tu_store_open(&t, dir, 1), 0);
	tu_store_close(&t);
	sqlite3 *db = raw_open(dir);
	raw_exec(db, "PRAGMA user_version = 99");
	sqlite3_close(db);
	char h1[65], h2[65], p[512];
	pathf(p, sizeof(p), dir, "ess.db");
	tu_file_hash(p, h1);
	assert_int_equal(tu_store_open(&t, dir, 0), -EPROTO);
	tu_file_hash(p, h2);
	assert_string_equal(h1, h2);
}

/* ---- retention ---- */

static void test_retention_purge(void **state)
{
	const char *dir = *state;
	struct tu_store t;
	const int64_t H = 3600 * 1000LL, now = 1800000000000LL;
	assert_int_equal(tu_store_open(&t, dir, 1), 0);
	assert_int_equal(store_incident_put(t.s, "old-cancelled", 1, STORE_DISPATCH_CANCELLED,
	                                    now - 100 * H, "{\"x\":\"purge-me-1\"}", 18, SIG),
	                 STORE_PUT_NEW);
	assert_int_equal(store_incident_put(t.s, "old-resolved", 1, STORE_DISPATCH_ASSIGNED,
	                                    now - 200 * H, "{\"x\":\"purge-me-2\"}", 18, SIG),
	                 STORE_PUT_NEW);
	assert_int_equal(
	    store_incident_set_status(t.s, "old-resolved", STORE_STATUS_RESOLVED, now - 80 * H), 0);
	assert_int_equal(store_incident_put(t.s, "active-old", 1, STORE_DISPATCH_ASSIGNED,
	                                    now - 500 * H, "{}", 2, SIG),
	                 STORE_PUT_NEW);
	assert_int_equal(store_incident_put(t.s, "recent-closed", 1, STORE_DISPATCH_CLOSED,
	                                    now - 2 * H, "{}", 2, SIG),
	                 STORE_PUT_NEW);
	assert_int_equal(store_audit_add(t.s, STORE_AUDIT_VIEWED, "x", "", now - 2000 * H), 0);
	assert_int_equal(store_audit_add(t.s, STORE_AUDIT_VIEWED, "y", "", now - 1 * H), 0);

	/* the ciphertext that must disappear from every file */
	unsigned char tail[32];
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(t.s->db,
	                                    "SELECT doc FROM incidents WHERE id='old-cancelled'",
	                                    -1, &st, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	memcpy(tail, (const unsigned char *)sqlite3_column_blob(st, 0) + 24, sizeof(tail));
	sqlite3_finalize(st);

	assert_int_equal(store_purge(t.s, now, 72 * H, 90 * 24 * H), 2);
	struct store_incident inc;
	assert_int_equal(store_incident_get(t.s, "old-cancelled", &inc), -ENOENT);
	assert_int_equal(store_incident_get(t.s, "old-resolved", &inc), -ENOENT);
	assert_int_equal(store_incident_get(t.s, "active-old", &inc), 0);
	store_incident_clear(&inc);
	assert_int_equal(store_incident_get(t.s, "recent-closed", &inc), 0);
	store_incident_clear(&inc);
	struct count_cb c = {0};
	assert_int_equal(store_incident_each(t.s, count_inc, &c), 0);
	assert_int_equal(c.n, 2);
	tu_store_close(&t);
	char p[512];
	pathf(p, sizeof(p), dir, "ess.db");
	assert_int_equal(tu_file_count(p, tail, sizeof(tail)), 0);
	pathf(p, sizeof(p), dir, "ess.db-wal");
	assert_int_equal(tu_file_count(p, tail, sizeof(tail)), 0);
}

/* ---- wipe ---- */

static void copy_file(const char *from, const char *to)
{
	size_t len;
	unsigned char *b = tu_read_file(from, &len);
	if (!b)
		return;
	int fd = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, b, len), (ssize_t)len);
	close(fd);
	free(b);
}

static void test_wipe_crypto_shreds(void **state)
{
	const char *dir = *state;
	char *thief = tu_tmpdir("thief");
	struct tu_store t;
	assert_int_equal(tu_store_open(&t, dir, 1), 0);
	assert_int_equal(store_device_keygen(t.s, 0), 0);
	put(t.s, "a", 1, "{\"secret\":\"wipe-canary\"}");
	note(t.s, "wipe-canary note");
	/* a thief's copy of the database and the wrapped keys, before the wipe */
	static const char *const names[] = {"ess.db", "ess.db-wal", "keys"};
	for (int i = 0; i < 3; i++) {
		char a[600], b[600];
		snprintf(a, sizeof(a), "%s/%s", dir, names[i]);
		snprintf(b, sizeof(b), "%s/%s", thief, names[i]);
		copy_file(a, b);
	}
	char err[256];
	struct hal_keystore *ks = t.ks;
	assert_int_equal(store_wipe(t.s, err, sizeof(err)), 0);
	t.s = NULL;
	hal_keystore_close(ks);
	static const char *const gone[] = {"ess.db", "ess.db-wal", "ess.db-shm", "keys", "kek"};
	for (int i = 0; i < 5; i++) {
		char p[600];
		snprintf(p, sizeof(p), "%s/%s", dir, gone[i]);
		assert_int_equal(access(p, F_OK), -1);
	}
	/* The copy cannot be opened: its KEK is destroyed, and no other key
	 * (a new one made now) unwraps the data key. */
	struct tu_store tt;
	assert_int_equal(tu_store_open(&tt, thief, 0), -ENOENT);
	char kek[600];
	snprintf(kek, sizeof(kek), "%s/kek", thief);
	struct hal_keystore *nks;
	assert_int_equal(hal_keystore_open("file", kek, &nks, err, sizeof(err)), 0);
	assert_int_equal(hal_keystore_create(nks, err, sizeof(err)), 0);
	hal_keystore_close(nks);
	assert_int_equal(tu_store_open(&tt, thief, 0), -EKEYREJECTED);
	/* and a fresh store can be provisioned in the wiped directory */
	assert_int_equal(tu_store_open(&t, dir, 1), 0);
	assert_true(t.flags & STORE_OPENED_CREATED);
	struct store_incident inc;
	assert_int_equal(store_incident_get(t.s, "a", &inc), -ENOENT);
	tu_store_close(&t);
	tu_rmrf(thief);
}

/* ---- damaged database ---- */

static int count_aside(const char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "ls %s | grep -c '^ess.db.corrupt-' > %s/count", dir, dir);
	if (system(cmd) < 0)
		return -1;
	char p[600];
	snprintf(p, sizeof(p), "%s/count", dir);
	size_t len;
	unsigned char *b = tu_read_file(p, &len);
	int n = b ? atoi((char *)b) : -1;
	free(b);
	unlink(p);
	return n;
}

/* The one database moved aside (its -wal/-shm companions aside) still hashes
 * to before: recovery renames the damaged file, never rewrites or deletes it,
 * so it stays there for a technician to look at. */
static void assert_aside_unchanged(const char *dir, const char *before)
{
	char aside[700], cmd[900], after[65];
	snprintf(cmd, sizeof(cmd), "ls %s/ess.db.corrupt-* | grep -v -- '-wal$\\|-shm$' > %s/aside",
	         dir, dir);
	assert_int_equal(system(cmd), 0);
	snprintf(aside, sizeof(aside), "%s/aside", dir);
	size_t alen;
	unsigned char *name = tu_read_file(aside, &alen);
	assert_non_null(name);
	while (alen && name[alen - 1] == '\n')
		name[--alen] = 0;
	tu_file_hash((char *)name, after);
	assert_string_equal(before, after);
	free(name);
	unlink(aside);
}

static void test_corrupt_database_moved_aside(void **state)
{
	const char *dir = *state;
	struct tu_store t;
	char p[512];
	pathf(p, sizeof(p), dir, "ess.db");
	assert_int_equal(tu_store_open(&t, dir, 1), 0);
	for (int i = 0; i < 200; i++) {
		char id[16];
		snprintf(id, sizeof(id), "i%d", i);
		put(t.s, id, 1, "{\"pad\":\"................................................\"}");
	}
	tu_store_close(&t);
	/* damage a b-tree page in the middle of the file, by a write: the file
	 * changed after the clean close, so its marker no longer matches and
	 * the open checks it (bit rot behind the file system's back is
	 * test_integrity_deferred_check_finds_damage) */
	int fd = open(p, O_RDWR);
	assert_true(fd >= 0);
	struct stat st;
	fstat(fd, &st);
	assert_true(st.st_size > 8 * 4096);
	unsigned char junk[4096];
	memset(junk, 0x5a, sizeof(junk));
	assert_int_equal(pwrite(fd, junk, 200, 4 * 4096), 200);
	close(fd);
	char before[65];
	tu_file_hash(p, before);

	assert_int_equal(tu_store_open(&t, dir, 0), 0);
	assert_true(t.flags & STORE_OPENED_CHECKED);
	assert_true(t.flags & STORE_OPENED_RECOVERED);
	assert_int_equal(count_aside(dir), 1);
	/* moved, never deleted or rewritten: the aside file is the damaged one */
	assert_aside_unchanged(dir, before);
	int64_t n;
	assert_int_equal(store_incident_count(t.s, &n), 0);
	assert_int_equal(n, 0);
	put(t.s, "new", 1, "{}");
	tu_store_close(&t);

	/* not a database at all */
	fd = open(p, O_RDWR | O_TRUNC);
	assert_int_equal(write(fd, "this is not sqlite, just garbage bytes here....", 47), 47);
	close(fd);
	sleep(1); /* a distinct timestamp for the second one */
	assert_int_equal(tu_store_open(&t, dir, 0), 0);
	assert_true(t.flags & STORE_OPENED_RECOVERED);
	assert_int_equal(count_aside(dir), 2);
	tu_store_close(&t);
}

/* ---- integrity: checked at open after an unclean close, else deferred ---- */

static int failed_calls;
static void count_failed(void *arg)
{
	(void)arg;
	failed_calls++;
}

static int file_there(const char *dir, const char *name)
{
	char p[600];
	struct stat st;
	pathf(p, sizeof(p), dir, name);
	return lstat(p, &st) == 0;
}

/* A store of n incidents, closed cleanly; returns the root page of the
 * incidents table (a page the open itself never reads). */
static int filled_store(const char *dir, int n)
{
	struct tu_store t;
	assert_int_equal(tu_store_open(&t, dir, 1), 0);
	for (int i = 0; i < n; i++) {
		char id[16];
		snprintf(id, sizeof(id), "i%d", i);
		put(t.s, id, 1, "{\"pad\":\"................................................\"}");
	}
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(t.s->db,
	                                    "SELECT rootpage FROM sqlite_schema WHERE "
	                                    "name = 'incidents'",
	                                    -1, &st, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int root = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	tu_store_close(&t);
	assert_true(file_there(dir, "ess.db.clean"));
	assert_false(file_there(dir, "ess.db-wal"));
	return root;
}

/* Bytes of page `page` (1-based, 4 KiB pages) overwritten. With bitrot the
 * file's times are put back: the medium decayed, the file system saw no
 * write (what a check at open after a clean close would miss). */
static void damage_page(const char *dir, int page, int bitrot)
{
	char p[600];
	pathf(p, sizeof(p), dir, "ess.db");
	int fd = open(p, O_RDWR);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(st.st_size >= (off_t)page * 4096);
	unsigned char junk[200];
	memset(junk, 0x5a, sizeof(junk));
	assert_int_equal(pwrite(fd, junk, sizeof(junk), (off_t)(page - 1) * 4096),
	                 (ssize_t)sizeof(junk));
	if (bitrot) {
		struct timespec ts[2] = {st.st_atim, st.st_mtim};
		assert_int_equal(futimens(fd, ts), 0);
	}
	close(fd);
}

static int64_t n_incidents(struct store *s)
{
	int64_t n = -1;
	assert_int_equal(store_incident_count(s, &n), 0);
	return n;
}

/* After a kill (no store_close) the next open checks the database; after a
 * clean close it does not, and the check is pending until store_integrity_check. */
static void test_integrity_unclean_checked_at_open(void **state)
{
	const char *dir = *state;
	struct tu_store t;
	filled_store(dir, 50);

	assert_int_equal(tu_store_open(&t, dir, 0), 0);
	assert_false(t.flags & (STORE_OPENED_CHECKED | STORE_OPENED_RECOVERED));
	assert_int_equal(store_integrity_pending(t.s), 1);
	assert_false(file_there(dir, "ess.db.clean")); /* cleared at open */
	assert_int_equal(store_integrity_check(t.s), 0);
	assert_int_equal(store_integrity_pending(t.s), 0);
	assert_int_equal(store_integrity_check(t.s), 0); /* once is enough */
	tu_store_close(&t);

	/* killed while open: no marker, checked at open, nothing lost */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct tu_store c;
		if (tu_store_open(&c, dir, 0) < 0)
			_exit(2);
		put(c.s, "killed", 1, "{}");
		kill(getpid(), SIGKILL);
		_exit(3);
	}
	int ws;
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	assert_true(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
	assert_false(file_there(dir, "ess.db.clean"));
	assert_int_equal(tu_store_open(&t, dir, 0), 0);
	assert_true(t.flags & STORE_OPENED_CHECKED);
	assert_false(t.flags & STORE_OPENED_RECOVERED);
	assert_int_equal(store_integrity_pending(t.s), 0);
	assert_int_equal(n_incidents(t.s), 51);
	tu_store_close(&t);

	/* a marker that is simply missing is the same */
	char m[600];
	pathf(m, sizeof(m), dir, "ess.db.clean");
	assert_int_equal(unlink(m), 0);
	assert_int_equal(tu_store_open(&t, dir, 0), 0);
	assert_true(t.flags & STORE_OPENED_CHECKED);
	tu_store_close(&t);
}

/* Damage planted at rest after a clean close (the file's times untouched,
 * as bit rot leaves them): the open does not see it, the deferred check
 * does; the store is failed from then on and the next open moves the file
 * aside, unchanged. */
static void test_integrity_deferred_check_finds_damage(void **state)
{
	const char *dir = *state;
	struct tu_store t;
	char p[600], before[65], after[65];
	int root = filled_store(dir, 200);
	damage_page(dir, root, 1);
	pathf(p, sizeof(p), dir, "ess.db");
	tu_file_hash(p, before);

	assert_int_equal(tu_store_open(&t, dir, 0), 0);
	assert_false(t.flags & (STORE_OPENED_CHECKED | STORE_OPENED_RECOVERED));
	assert_int_equal(store_integrity_pending(t.s), 1);
	assert_int_equal(store_failed(t.s), 0);
	failed_calls = 0;
	store_on_failed(t.s, count_failed, NULL);
	assert_int_equal(store_integrity_check(t.s), -EUCLEAN);
	assert_int_equal(store_failed(t.s), 1);
	assert_int_equal(failed_calls, 1);
	/* nothing more is written to it */
	assert_int_equal(store_outbox_append(t.s, STORE_EVENT_NOTE, "x", 1, NULL, NULL), -EUCLEAN);
	assert_true(store_incident_put(t.s, "late", 1, STORE_DISPATCH_ASSIGNED, tu_now_ms(), "{}",
	                               2, SIG) < 0);
	assert_int_equal(store_begin(t.s), -EUCLEAN);
	assert_int_equal(store_checkpoint(t.s), -EUCLEAN);
	assert_int_equal(store_integrity_check(t.s), -EUCLEAN);
	assert_int_equal(failed_calls, 1); /* said once */
	tu_store_close(&t);
	assert_false(file_there(dir, "ess.db.clean"));
	tu_file_hash(p, after);
	assert_string_equal(before, after);

	/* the next open checks it and moves it aside, as it was */
	assert_int_equal(tu_store_open(&t, dir, 0), 0);
	assert_true(t.flags & STORE_OPENED_CHECKED);
	assert_true(t.flags & STORE_OPENED_RECOVERED);
	assert_int_equal(count_aside(dir), 1);
	assert_aside_unchanged(dir, before);
	assert_int_equal(n_incidents(t.s), 0);
	put(t.s, "new", 1, "{}");
	tu_store_close(&t);
}

/* A marker that is garbled, cut short, too open, stale or of a database
 * changed since is no marker: the open checks. A good one is believed
 * (the control: without it this test could not fail). */
static void test_integrity_bad_marker_means_unclean(void **state)
{
	const char *dir = *state;
	struct tu_store t;
	char m[600];
	size_t len;
	pathf(m, sizeof(m), dir, "ess.db.clean");
	filled_store(dir, 20);
	unsigned char *old = tu_read_file(m, &len);
	assert_non_null(old);
	assert_int_equal(len, 80);

	for (int k = 0; k < 6; k++) {
		/* a session that changed the database: the old marker is stale */
		assert_int_equal(tu_store_open(&t, dir, 0), 0);
		int checked = t.flags & STORE_OPENED_CHECKED;
		assert_false(t.flags & STORE_OPENED_RECOVERED);
		if (k > 0)
			assert_true(checked); /* the case of the previous round */
		else
			assert_false(checked); /* the good marker, believed */
		char id[16];
		snprintf(id, sizeof(id), "k%d", k);
		put(t.s, id, 1, "{}");
		tu_store_close(&t);
		unsigned char *cur = tu_read_file(m, &len);
		assert_non_null(cur);
		assert_int_equal(len, 80);
		int fd;
		switch (k) {
		case 0: /* one byte of the file's identity flipped */
			cur[20] ^= 0x01;
			break;
		case 1: /* the hash flipped */
			cur[79] ^= 0x80;
			break;
		case 2: /* cut short (a torn write) */
			len = 40;
			break;
		case 3: /* valid, but from before the last session */
			memcpy(cur, old, 80);
			break;
		case 4: /* valid, but the database was touched since */
			break;
		case 5: /* valid, but readable by others */
			break;
		}
		fd = open(m, O_WRONLY | O_TRUNC);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, cur, len), (ssize_t)len);
		close(fd);
		free(cur);
		if (k == 4) {
			char p[600];
			pathf(p, sizeof(p), dir, "ess.db");
			struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = 1000000000}};
			assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
		}
		if (k == 5)
			assert_int_equal(chmod(m, 0644), 0);
	}
	assert_int_equal(tu_store_open(&t, dir, 0), 0);
	assert_true(t.flags & STORE_OPENED_CHECKED);
	assert_false(t.flags & STORE_OPENED_RECOVERED);
	assert_int_equal(n_incidents(t.s), 26);
	tu_store_close(&t);
	free(old);
}

/* SQLITE_CORRUPT met by an ordinary call, before any check: -EUCLEAN, the
 * store failed (and says so once), no clean marker, moved aside at the next
 * open. */
static void test_integrity_corrupt_at_runtime(void **state)
{
	const char *dir = *state;
	struct tu_store t;
	int root = filled_store(dir, 200);
	damage_page(dir, root, 1);
	assert_int_equal(tu_store_open(&t, dir, 0), 0);
	assert_false(t.flags & (STORE_OPENED_CHECKED | STORE_OPENED_RECOVERED));
	failed_calls = 0;
	store_on_failed(t.s, count_failed, NULL);
	struct count_cb seen = {0};
	assert_int_equal(store_incident_each(t.s, count_inc, &seen), -EUCLEAN);
	assert_int_equal(store_failed(t.s), 1);
	assert_int_equal(failed_calls, 1);
	assert_int_equal(store_outbox_append(t.s, STORE_EVENT_NOTE, "x", 1, NULL, NULL), -EUCLEAN);
	tu_store_close(&t);
	assert_false(file_there(dir, "ess.db.clean"));
	assert_int_equal(tu_store_open(&t, dir, 0), 0);
	assert_true(t.flags & STORE_OPENED_RECOVERED);
	assert_int_equal(count_aside(dir), 1);
	tu_store_close(&t);
}

/* ---- disk full ---- */

static void test_disk_full(void **state)
{
	const char *dir = *state;
	struct tu_store t;
	assert_int_equal(tu_store_open(&t, dir, 1), 0);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(t.s->db, "PRAGMA page_count", -1, &st, NULL), 0);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int pages = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %d", pages + 6);
	raw_exec(t.s->db, sql);
	char body[600];
	memset(body, 'x', sizeof(body) - 1);
	body[sizeof(body) - 1] = 0;
	int ok = 0, rc = 0;
	for (int i = 0; i < 1000; i++) {
		rc = store_outbox_append(t.s, STORE_EVENT_NOTE, body, strlen(body), NULL, NULL);
		if (rc < 0)
			break;
		ok++;
	}
	assert_int_equal(rc, -ENOSPC);
	assert_true(ok > 0);
	int64_t n;
	assert_int_equal(store_outbox_count(t.s, &n), 0);
	assert_int_equal(n, ok);
	struct count_cb c = {0};
	assert_int_equal(store_outbox_peek(t.s, 2000, count_ev, &c), ok);
	/* A transaction of events gathered into groups: its commit (or the
	 * append that seals a full group) fails, nothing of it stays. */
	for (int k = 10; k <= 70; k += 60) {
		assert_int_equal(store_begin(t.s), 0);
		for (int i = 0; i < k && rc == 0; i++)
			rc = store_outbox_append(t.s, STORE_EVENT_NOTE, body, strlen(body), NULL,
			                         NULL);
		if (rc == 0)
			rc = store_commit(t.s);
		else
			store_rollback(t.s);
		assert_int_equal(rc, -ENOSPC);
		assert_int_equal(store_outbox_count(t.s, &n), 0);
		assert_int_equal(n, ok);
		rc = 0;
	}
	/* space comes back */
	raw_exec(t.s->db, "PRAGMA max_page_count = 1073741823");
	assert_int_equal(store_outbox_append(t.s, STORE_EVENT_NOTE, body, strlen(body), NULL, NULL),
	                 0);
	assert_int_equal(store_begin(t.s), 0);
	for (int i = 0; i < 70; i++)
		assert_int_equal(
		    store_outbox_append(t.s, STORE_EVENT_NOTE, body, strlen(body), NULL, NULL), 0);
	assert_int_equal(store_commit(t.s), 0);
	tu_store_close(&t);
	assert_int_equal(tu_store_open(&t, dir, 0), 0);
	assert_int_equal(store_outbox_count(t.s, &n), 0);
	assert_int_equal(n, ok + 71);
	c.n = 0;
	assert_int_equal(store_outbox_peek(t.s, 2000, count_ev, &c), ok + 71);
	tu_store_close(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_canary, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tampered_rows_quarantined, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_swapped_and_replayed_rows, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_group_tamper_and_swaps, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrong_key_refused_untouched, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keys_of_another_store, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_permissions_and_missing_files, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_migration_from_v1, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migration_from_v2, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migration_from_v3, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_retention_purge, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wipe_crypto_shreds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt_database_moved_aside, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_integrity_unclean_checked_at_open, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_integrity_deferred_check_finds_damage, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_integrity_bad_marker_means_unclean, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_integrity_corrupt_at_runtime, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	free(logbuf);
	return rc;
}
