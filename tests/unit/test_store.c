/* The encrypted store: round trips, canaries, tamper, keys, migrations,
 * retention, wipe, corruption and disk full. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/store.h"
#include "agent/store_int.h"
#include "agent/store_schema.h"
#include "hal/keystore.h"
#include "tests/lib/testutil.h"

#include <errno.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const unsigned char SIG[64] = {1, 2, 3};

static int setup(void **state)
{
	*state = tu_tmpdir("store");
	return 0;
}

static int teardown(void **state)
{
	tu_rmrf(*state);
	return 0;
}

static void path_in(char *buf, size_t cap, const char *dir, const char *name)
{
	snprintf(buf, cap, "%s/%s", dir, name);
}

static int64_t append_note(struct store *s, const char *text)
{
	char body[1024];
	snprintf(body, sizeof(body), "{\"type\":\"note\",\"text\":\"%s\"}", text);
	int64_t seq = 0;
	char eid[STORE_EVENT_ID_LEN + 1];
	assert_int_equal(store_outbox_append(s, STORE_EVENT_NOTE, body, strlen(body), &seq, eid),
	                 0);
	return seq;
}

static void put_incident(struct store *s, const char *id, int64_t version, const char *doc)
{
	int rc = store_incident_put(s, id, version, STORE_DISPATCH_ASSIGNED, tu_now_ms(), doc,
	                            strlen(doc), SIG);
	assert_true(rc == STORE_PUT_NEW || rc == STORE_PUT_UPDATED);
}

/* ---- round trips ---- */

static void test_create_and_reopen(void **state)
{
	const char *dir = *state;
	struct tu_store t;
	assert_int_equal(tu_store_open(&t, dir, 0), -ENOENT); /* no KEK, no create */
	assert_int_equal(tu_store_open(&t, dir, 1), 0);
	assert_true(t.flags & STORE_OPENED_CREATED);
	put_incident(t.s, "inc-1", 1, "{\"id\":\"inc-1\",\"version\":1}");
	int64_t a = append_note(t.s, "first");
	int64_t b = append_note(t.s, "second");
	assert_true(b > a);
	assert_int_equal(store_state_set(t.s, "cursor", "abc", 3), 0);
	/* every file of the store is private, also those SQLite makes later */
	static const char *const files[] = {"ess.db", "ess.db-wal", "ess.db-shm", "keys", "kek"};
	for (int i = 0; i < 5; i++) {
		char p[600];
		struct stat st;
		path_in(p, sizeof(p), dir, files[i]);
		assert_int_equal(stat(p, &st), 0);
		assert_int_equal(st.st_mode & 077, 0);
	}
	tu_store_close(&t);

	assert_int_equal(tu_store_open(&t, dir, 0), 0);
	assert_int_equal(t.flags, 0);
	struct store_incident inc;
	assert_int_equal(store_incident_get(t.s, "inc-1", &inc), 0);
	assert_int_equal(inc.version, 1);
	assert_string_equal((char *)inc.payload, "{\"id\":\"inc-1\",\"version\":1}");
	assert_memory_equal(inc.sig, SIG, 64);
	store_incident_clear(&inc);
	char buf[16];
	size_t len;
	assert_int_equal(store_state_get(t.s, "cursor", buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(buf, "abc", 3);
	assert_int_equal(store_state_get(t.s, "nothing", buf, sizeof(buf), &len), -ENOENT);
	assert_int_equal(store_state_get(t.s, "cursor", buf, 2, &len), -ENOBUFS);
	/* seq continues after reopen, never reused */
	int64_t c = append_note(t.s, "third");
	assert_true(c > b);
	tu_store_close(&t);
}

static void test_incident_versions(void **state)
{
	struct tu_store t;
	assert_int_equal(tu_store_open(&t, *state, 1), 0);
	const char *v2 = "{\"v\":2}";
	assert_int_equal(
	    store_incident_put(t.s, "i", 2, STORE_DISPATCH_ASSIGNED, 1, v2, strlen(v2), SIG),
	    STORE_PUT_NEW);
	assert_int_equal(store_incident_put(t.s, "i", 2, STORE_DISPATCH_ASSIGNED, 1, "x", 1, SIG),
	                 STORE_PUT_IGNORED);
	assert_int_equal(store_incident_put(t.s, "i", 1, STORE_DISPATCH_ASSIGNED, 1, "x", 1, SIG),
	                 STORE_PUT_IGNORED);
	assert_int_equal(store_incident_put(t.s, "i", 3, STORE_DISPATCH_CANCELLED, 5, "{}", 2, SIG),
	                 STORE_PUT_UPDATED);
	struct store_incident inc;
	assert_int_equal(store_incident_get(t.s, "i", &inc), 0);
	assert_int_equal(inc.version, 3);
	assert_int_equal(inc.dispatch_state, STORE_DISPATCH_CANCELLED);
	assert_int_equal(inc.ended_ms, 5);
	assert_string_equal((char *)inc.payload, "{}");
	store_incident_clear(&inc);
	assert_int_equal(store_incident_get(t.s, "missing", &inc), -ENOENT);
	assert_int_equal(store_incident_put(t.s, "", 1, STORE_DISPATCH_ASSIGNED, 1, "{}", 2, SIG),
	                 -EINVAL);
	assert_int_equal(store_incident_put(t.s, "j", 0, STORE_DISPATCH_ASSIGNED, 1, "{}", 2, SIG),
	                 -EINVAL);
	assert_int_equal(store_incident_set_status(t.s, "i", STORE_STATUS_ACKNOWLEDGED, 9), 0);
	assert_int_equal(store_incident_set_status(t.s, "nope", STORE_STATUS_ACKNOWLEDGED, 9),
	                 -ENOENT);
	tu_store_close(&t);
}

struct walk {
	int n, stop_at;
	char ids[16][STORE_ID_MAX + 1];
};

static int walk_cb(void *arg, const struct store_incident *inc)
{
	struct walk *w = arg;
	snprintf(w->ids[w->n++], sizeof(w->ids[0]), "%s", inc->id);
	return w->n == w->stop_at ? 7 : 0;
}

/* The walk: active incidents by id, then ended ones most recently ended
 * first (equal times by id); a non-zero return stops it and is returned. */
static void test_incident_walk_order(void **state)
{
	struct tu_store t;
	assert_int_equal(tu_store_open(&t, *state, 1), 0);
	static const struct {
		const char *id;
		enum store_dispatch_state ds;
		int64_t at;
	} in[] = {
	    {"e-old", STORE_DISPATCH_CLOSED, 100},    {"a-2", STORE_DISPATCH_ASSIGNED, 5},
	    {"e-new", STORE_DISPATCH_CANCELLED, 300}, {"e-tie-b", STORE_DISPATCH_CLOSED, 200},
	    {"a-1", STORE_DISPATCH_ASSIGNED, 6},      {"e-tie-a", STORE_DISPATCH_REASSIGNED, 200},
	    {"a-3", STORE_DISPATCH_ASSIGNED, 7},
	};
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
		assert_true(store_incident_put(t.s, in[i].id, 1, in[i].ds, in[i].at, "{}", 2,
		                               SIG) == STORE_PUT_NEW);
	/* a final local status ends an assigned incident too */
	assert_int_equal(store_incident_set_status(t.s, "a-3", STORE_STATUS_RESOLVED, 250), 0);
	static const char *const want[] = {"a-1",     "a-2",     "e-new", "a-3",
	                                   "e-tie-a", "e-tie-b", "e-old"};
	struct walk w = {0};
	assert_int_equal(store_incident_each(t.s, walk_cb, &w), 0);
	assert_int_equal(w.n, 7);
	for (int i = 0; i < 7; i++)
		assert_string_equal(w.ids[i], want[i]);
	/* stopping in the first part never starts the second */
	w = (struct walk){.stop_at = 1};
	assert_int_equal(store_incident_each(t.s, walk_cb, &w), 7);
	assert_int_equal(w.n, 1);
	w = (struct walk){.stop_at = 4};
	assert_int_equal(store_incident_each(t.s, walk_cb, &w), 7);
	assert_string_equal(w.ids[3], "a-3");
	tu_store_close(&t);
}

struct collect {
	int n;
	int64_t seq[64];
	int type[64];
	char body[64][128];
};

static int collect_event(void *arg, const struct store_event *ev)
{
	struct collect *c = arg;
	c->seq[c->n] = ev->seq;
	c->type[c->n] = ev->type;
	snprintf(c->body[c->n], sizeof(c->body[0]), "%s", (const char *)ev->body);
	assert_int_equal(strlen(ev->event_id), 36);
	assert_int_equal(ev->event_id[14], '4');
	c->n++;
	return 0;
}

static void test_outbox_order_and_results(void **state)
{
	struct tu_store t;
	assert_int_equal(tu_store_open(&t, *state, 1), 0);
	int64_t s1 = append_note(t.s, "one");
	int64_t s2 = append_note(t.s, "two");
	int64_t sos;
	assert_int_equal(store_outbox_append(t.s, STORE_EVENT_SOS, "{\"sos\":1}", 9, &sos, NULL),
	                 0);
	int64_t s4 = append_note(t.s, "four");
	struct collect c = {0};
	assert_int_equal(store_outbox_peek(t.s, 10, collect_event, &c), 4);
	assert_int_equal(c.seq[0], sos); /* SOS first */
	assert_int_equal(c.seq[1], s1);
	assert_int_equal(c.seq[2], s2);
	assert_int_equal(c.seq[3], s4);
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_outbox_peek(t.s, 2, collect_event, &c), 2);
	assert_int_equal(c.seq[1], s1);
	/* past a seq (the drain's batches in flight): every SOS, then the rest
	 * after it */
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_outbox_peek_after(t.s, s1, 10, collect_event, &c), 3);
	assert_int_equal(c.seq[0], sos);
	assert_int_equal(c.seq[1], s2);
	assert_int_equal(c.seq[2], s4);
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_outbox_peek_after(t.s, s4, 10, collect_event, &c), 1);
	assert_int_equal(c.seq[0], sos);

	int64_t done[] = {sos, s1};
	assert_int_equal(store_outbox_delivered(t.s, done, 2), 0);
	assert_int_equal(store_outbox_reject(t.s, s2, "unknown incident", 1000), 0);
	assert_int_equal(store_outbox_reject(t.s, s2, "again", 1000), -ENOENT);
	int64_t n;
	assert_int_equal(store_outbox_count(t.s, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(store_rejected_count(t.s, &n), 0);
	assert_int_equal(n, 1);
	tu_store_close(&t);

	/* seqs of delivered and rejected events are never handed out again */
	assert_int_equal(tu_store_open(&t, *state, 0), 0);
	assert_int_equal(store_outbox_delivered(t.s, &s4, 1), 0);
	tu_store_close(&t);
	assert_int_equal(tu_store_open(&t, *state, 0), 0);
	int64_t s5 = append_note(t.s, "five");
	assert_true(s5 > s4);
	tu_store_close(&t);
}

/* Delivered seqs are deleted in runs of consecutive seqs: exactly the seqs
 * given go, in any order, with duplicates, never a neighbour in a gap. */
static void test_outbox_delivered_runs(void **state)
{
	struct tu_store t;
	assert_int_equal(tu_store_open(&t, *state, 1), 0);
	int64_t seq[40];
	for (int i = 0; i < 40; i++)
		seq[i] = append_note(t.s, "n");
	/* 0..9, 12..19 (11 and 10 stay), 25, 30..39 given backwards, a duplicate */
	int64_t done[64];
	size_t n = 0;
	for (int i = 0; i < 10; i++)
		done[n++] = seq[i];
	for (int i = 19; i >= 12; i--)
		done[n++] = seq[i];
	done[n++] = seq[25];
	done[n++] = seq[25];
	for (int i = 39; i >= 30; i--)
		done[n++] = seq[i];
	assert_int_equal(store_outbox_delivered(t.s, done, n), 0);
	struct collect c = {0};
	assert_int_equal(store_outbox_peek(t.s, 64, collect_event, &c), 11);
	int64_t want[] = {seq[10], seq[11], seq[20], seq[21], seq[22], seq[23],
	                  seq[24], seq[26], seq[27], seq[28], seq[29]};
	for (int i = 0; i < 11; i++)
		assert_int_equal(c.seq[i], want[i]);
	/* more than fits the stack copy */
	int64_t *many = calloc(600, sizeof(*many));
	assert_non_null(many);
	for (int i = 0; i < 600; i++)
		many[i] = append_note(t.s, "m");
	assert_int_equal(store_outbox_delivered(t.s, many, 600), 0);
	int64_t left;
	assert_int_equal(store_outbox_count(t.s, &left), 0);
	assert_int_equal(left, 11);
	assert_int_equal(store_outbox_delivered(t.s, many, 0), 0);
	free(many);
	tu_store_close(&t);
}

/* ---- groups: the events of one transaction sealed as one row ---- */

enum { M_QUEUED = 0, M_DELIVERED, M_REJECTED, M_ROLLED_BACK };

struct model_ev {
	int64_t seq;
	int type;
	int state;
	size_t len;
	char id[STORE_EVENT_ID_LEN + 1];
};

struct model {
	struct model_ev *ev;
	size_t n, cap;
	/* what the last peek gave, in order */
	int64_t *got;
	size_t ngot;
	int bad;
};

/* Bodies say which event they are; some are long, a few too long to share
 * a group (over OUTBOX_GROUP_BYTES). */
static size_t model_body(char *buf, size_t cap, size_t k)
{
	size_t pad = k > 100 && k % 97 == 5 ? OUTBOX_GROUP_BYTES : (k * 37) % 700;
	int n = snprintf(buf, cap, "{\"k\":%zu,\"pad\":\"", k);
	for (size_t i = 0; i < pad && (size_t)n + 3 < cap; i++)
		buf[n++] = (char)('a' + (k + i) % 26);
	buf[n++] = '"';
	buf[n++] = '}';
	buf[n] = 0;
	return (size_t)n;
}

static int model_peek_cb(void *arg, const struct store_event *ev)
{
	struct model *m = arg;
	size_t k;
	static char want[OUTBOX_GROUP_BYTES + 256];
	m->got[m->ngot++] = ev->seq;
	if (sscanf((const char *)ev->body, "{\"k\":%zu,", &k) != 1 || k >= m->n) {
		m->bad++;
		return 0;
	}
	const struct model_ev *e = &m->ev[k];
	size_t len = model_body(want, sizeof(want), k);
	if (e->seq != ev->seq || e->type != (int)ev->type || ev->body_len != len ||
	    memcmp(want, ev->body, len) != 0 || ev->body[len] != 0 ||
	    strcmp(e->id, ev->event_id) != 0 || e->state != M_QUEUED) {
		fprintf(stderr, "# k %zu seq %lld/%lld type %d/%d len %zu/%zu id %s/%s state %d\n",
		        k, (long long)e->seq, (long long)ev->seq, e->type, (int)ev->type, len,
		        ev->body_len, e->id, ev->event_id, e->state);
		m->bad++;
	}
	return 0;
}

/* The store's queue against the model: SOS events first, then the rest,
 * each in seq order; every queued event once, nothing else. */
static void model_check(struct store *s, struct model *m)
{
	static int64_t want[4096];
	size_t nw = 0;
	for (int pass = 1; pass >= 0; pass--)
		for (size_t k = 0; k < m->n; k++)
			if (m->ev[k].state == M_QUEUED &&
			    (m->ev[k].type == STORE_EVENT_SOS) == pass)
				want[nw++] = m->ev[k].seq;
	m->ngot = 0;
	m->bad = 0;
	assert_int_equal(store_outbox_peek(s, m->n + 10, model_peek_cb, m), (int)nw);
	assert_int_equal(m->bad, 0);
	assert_int_equal(m->ngot, nw);
	for (size_t i = 0; i < nw; i++)
		assert_int_equal(m->got[i], want[i]);
	int64_t count;
	assert_int_equal(store_outbox_count(s, &count), 0);
	assert_int_equal(count, (int64_t)nw);
	/* a short peek gives a prefix of the same order */
	if (nw > 3) {
		m->ngot = 0;
		assert_int_equal(store_outbox_peek(s, 3, model_peek_cb, m), 3);
		for (size_t i = 0; i < 3; i++)
			assert_int_equal(m->got[i], want[i]);
	}
}

static int rows_in(const char *dir, const char *sql)
{
	char p[512];
	path_in(p, sizeof(p), dir, "ess.db");
	sqlite3 *db;
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

static uint64_t xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Random transactions of 1..150 events (groups fill at OUTBOX_GROUP_MAX),
 * single appends, rollbacks, and deliveries and rejections of random
 * subsets that cut groups apart, checked against a model after every step
 * and across reopening. */
static void test_outbox_groups(void **state)
{
	const char *dir = *state;
	struct tu_store t;
	struct model m = {0};
	m.cap = 4096;
	m.ev = calloc(m.cap, sizeof(*m.ev));
	m.got = calloc(m.cap + 16, sizeof(*m.got));
	assert_non_null(m.ev);
	assert_non_null(m.got);
	static char body[OUTBOX_GROUP_BYTES + 256];
	uint64_t rng = 0x9e3779b97f4a7c15ULL;
#define RND() xorshift(&rng)
	assert_int_equal(tu_store_open(&t, dir, 1), 0);

	/* one transaction of 100 small events: two rows (64 + 36) */
	assert_int_equal(store_begin(t.s), 0);
	for (int i = 0; i < 100; i++) {
		struct model_ev *e = &m.ev[m.n];
		size_t len = model_body(body, sizeof(body), m.n);
		e->type = STORE_EVENT_STATUS;
		assert_int_equal(
		    store_outbox_append(t.s, STORE_EVENT_STATUS, body, len, &e->seq, e->id), 0);
		e->len = len;
		m.n++;
	}
	assert_int_equal(store_commit(t.s), 0);
	tu_store_close(&t);
	assert_int_equal(rows_in(dir, "SELECT count(*) FROM outbox"), 2);
	assert_int_equal(rows_in(dir, "SELECT max(n) FROM outbox"), OUTBOX_GROUP_MAX);
	assert_int_equal(tu_store_open(&t, dir, 0), 0);
	model_check(t.s, &m);

	for (int step = 0; step < 120; step++) {
		unsigned op = (unsigned)(RND() % 10);
		if (op < 4 && m.n < m.cap - 200) {
			/* a transaction; one in five rolled back */
			int k = 1 + (int)(RND() % (RND() % 3 == 0 ? 150 : 8));
			int roll = RND() % 5 == 0;
			size_t base = m.n;
			assert_int_equal(store_begin(t.s), 0);
			for (int i = 0; i < k; i++) {
				struct model_ev *e = &m.ev[m.n];
				size_t len = model_body(body, sizeof(body), m.n);
				e->type = (int)(RND() % 5);
				assert_int_equal(store_outbox_append(t.s,
				                                     (enum store_event_type)e->type,
				                                     body, len, &e->seq, e->id),
				                 0);
				/* above every seq that was ever committed (a rolled back
				 * one may come again after a reopen: nobody saw it) */
				for (size_t q = m.n; q-- > 0;)
					if (m.ev[q].state != M_ROLLED_BACK) {
						assert_true(e->seq > m.ev[q].seq);
						break;
					}
				e->len = len;
				m.n++;
			}
			if (roll) {
				store_rollback(t.s);
				for (size_t i = base; i < m.n; i++)
					m.ev[i].state = M_ROLLED_BACK;
			} else {
				assert_int_equal(store_commit(t.s), 0);
			}
		} else if (op < 5 && m.n < m.cap - 200) {
			struct model_ev *e = &m.ev[m.n];
			size_t len = model_body(body, sizeof(body), m.n);
			e->type = (int)(RND() % 5);
			assert_int_equal(store_outbox_append(t.s, (enum store_event_type)e->type,
			                                     body, len, &e->seq, e->id),
			                 0);
			m.n++;
		} else if (op < 8) {
			/* deliver random subsets (with seqs already gone, and
			 * duplicates); inside a transaction, interleaved with
			 * rejections one by one as the sync engine answers a batch
			 * (several in one group, each tried twice), and now and then
			 * all of it rolled back */
			static int64_t seqs[4096];
			static uint8_t tx_before[4096];
			int tx = RND() % 2;
			for (size_t k = 0; k < m.n; k++)
				tx_before[k] = (uint8_t)m.ev[k].state;
			if (tx)
				assert_int_equal(store_begin(t.s), 0);
			for (int round = 0; round < (tx ? 2 : 1); round++) {
				size_t n = 0;
				for (size_t k = 0; k < m.n; k++)
					if (m.ev[k].state != M_DELIVERED &&
					    m.ev[k].state != M_ROLLED_BACK && RND() % 5 == 0) {
						seqs[n++] = m.ev[k].seq;
						if (m.ev[k].state == M_QUEUED)
							m.ev[k].state = M_DELIVERED;
					}
				if (n)
					seqs[n++] = seqs[0];
				assert_int_equal(store_outbox_delivered(t.s, seqs, n), 0);
				int nr = 0;
				for (size_t k = 0; tx && k < m.n && nr < 6; k++)
					if (m.ev[k].state == M_QUEUED && RND() % 4 == 0) {
						assert_int_equal(
						    store_outbox_reject(t.s, m.ev[k].seq, "no", 1),
						    0);
						assert_int_equal(
						    store_outbox_reject(t.s, m.ev[k].seq, "no", 1),
						    -ENOENT);
						m.ev[k].state = M_REJECTED;
						nr++;
					}
			}
			if (tx && RND() % 4 == 0) {
				store_rollback(t.s);
				for (size_t k = 0; k < m.n; k++)
					m.ev[k].state = tx_before[k];
			} else if (tx) {
				assert_int_equal(store_commit(t.s), 0);
			}
		} else if (op < 9) {
			/* reject one queued event, anywhere */
			size_t k = m.n ? (size_t)(RND() % m.n) : 0;
			if (m.n && m.ev[k].state != M_ROLLED_BACK) { /* its seq may be reused */
				int rc = store_outbox_reject(t.s, m.ev[k].seq, "no", 1);
				assert_int_equal(rc, m.ev[k].state == M_QUEUED ? 0 : -ENOENT);
				if (rc == 0)
					m.ev[k].state = M_REJECTED;
			}
		} else {
			tu_store_close(&t);
			assert_int_equal(tu_store_open(&t, dir, 0), 0);
		}
		model_check(t.s, &m);
	}
	/* the rejected list holds exactly the rejected events */
	int64_t nrej, want = 0;
	for (size_t k = 0; k < m.n; k++)
		want += m.ev[k].state == M_REJECTED;
	assert_int_equal(store_rejected_count(t.s, &nrej), 0);
	assert_int_equal(nrej, want);
	/* deliver everything: no row is left behind */
	static int64_t all[4096];
	for (size_t k = 0; k < m.n; k++)
		all[k] = m.ev[k].seq;
	assert_int_equal(store_outbox_delivered(t.s, all, m.n), 0);
	for (size_t k = 0; k < m.n; k++)
		if (m.ev[k].state == M_QUEUED)
			m.ev[k].state = M_DELIVERED;
	model_check(t.s, &m);
	tu_store_close(&t);
	assert_int_equal(rows_in(dir, "SELECT count(*) FROM outbox"), 0);
	assert_int_equal(rows_in(dir, "SELECT count(*) FROM outbox_group"), 0);
#undef RND
	free(m.ev);
	free(m.got);
}

/* Events gathered in a transaction are in the outbox for anything that
 * reads it inside the same transaction, and gone with a rollback. */
static void test_outbox_group_visibility(void **state)
{
	struct tu_store t;
	assert_int_equal(tu_store_open(&t, *state, 1), 0);
	assert_int_equal(store_begin(t.s), 0);
	int64_t a = append_note(t.s, "a"), b = append_note(t.s, "b");
	int64_t n;
	assert_int_equal(store_outbox_count(t.s, &n), 0);
	assert_int_equal(n, 2);
	int64_t c = append_note(t.s, "c");
	assert_int_equal(store_outbox_delivered(t.s, &b, 1), 0);
	assert_int_equal(store_commit(t.s), 0);
	struct collect got = {0};
	assert_int_equal(store_outbox_peek(t.s, 10, collect_event, &got), 2);
	assert_int_equal(got.seq[0], a);
	assert_int_equal(got.seq[1], c);

	assert_int_equal(store_begin(t.s), 0);
	append_note(t.s, "gone");
	append_note(t.s, "gone too");
	store_rollback(t.s);
	assert_int_equal(store_outbox_count(t.s, &n), 0);
	assert_int_equal(n, 2);
	/* seqs given out in the rolled back transaction are not reused */
	assert_true(append_note(t.s, "d") > c + 2);
	/* a transaction left open at close keeps nothing */
	assert_int_equal(store_begin(t.s), 0);
	append_note(t.s, "open at close");
	append_note(t.s, "open at close");
	tu_store_close(&t);
	assert_int_equal(tu_store_open(&t, *state, 0), 0);
	assert_int_equal(store_outbox_count(t.s, &n), 0);
	assert_int_equal(n, 3);
	tu_store_close(&t);
}

static int rejected_cb(void *arg, const struct store_rejected *r)
{
	int *n = arg;
	assert_string_equal(r->reason, "unknown incident");
	assert_non_null(strstr((const char *)r->ev.body, "two"));
	(*n)++;
	return 0;
}

static void test_rejected_list(void **state)
{
	struct tu_store t;
	assert_int_equal(tu_store_open(&t, *state, 1), 0);
	append_note(t.s, "one");
	int64_t s2 = append_note(t.s, "two");
	assert_int_equal(store_outbox_reject(t.s, s2, "unknown incident", 1000), 0);
	int n = 0;
	assert_int_equal(store_rejected_each(t.s, rejected_cb, &n), 0);
	assert_int_equal(n, 1);
	tu_store_close(&t);
}

struct fixsum {
	size_t n;
	int64_t last_t;
	int64_t lat_sum;
};

static int fix_cb(void *arg, const struct store_fix *f, size_t n)
{
	struct fixsum *fs = arg;
	for (size_t i = 0; i < n; i++) {
		assert_true(f[i].t_ms > fs->last_t);
		fs->last_t = f[i].t_ms;
		fs->lat_sum += f[i].lat_e7;
	}
	fs->n += n;
	return 0;
}

static struct store_fix make_fix(int i)
{
	struct store_fix f = {.t_ms = 1800000000000LL + i * 1000LL,
	                      .lat_e7 = 137563000 + i * 37 + (i % 7),
	                      .lon_e7 = 1005018000 - i * 41,
	                      .accuracy_dm = 50 + i % 5,
	                      .speed_cm_s = i % 3 ? 1200 : -1,
	                      .heading_cdeg = (i * 13) % 36000,
	                      .mode = (uint8_t)(i % 11 ? 3 : 2)};
	return f;
}

static void test_positions(void **state)
{
	struct tu_store t;
	assert_int_equal(tu_store_open(&t, *state, 1), 0);
	int64_t expect_sum = 0;
	for (int i = 0; i < 1500; i++) {
		struct store_fix f = make_fix(i);
		expect_sum += f.lat_e7;
		assert_int_equal(store_pos_append(t.s, &f), 0);
	}
	struct store_fix old = make_fix(3);
	assert_int_equal(store_pos_append(t.s, &old), -EINVAL); /* time went back */
	struct store_fix bad = make_fix(2000);
	bad.lat_e7 = 950000000;
	assert_int_equal(store_pos_append(t.s, &bad), -EINVAL);
	int64_t n;
	assert_int_equal(store_pos_count(t.s, &n), 0);
	assert_int_equal(n, 1500);
	tu_store_close(&t); /* close seals the buffered fixes */

	assert_int_equal(tu_store_open(&t, *state, 0), 0);
	assert_int_equal(store_pos_count(t.s, &n), 0);
	assert_int_equal(n, 1500);
	struct fixsum fs = {0};
	int64_t token;
	int got = store_pos_peek(t.s, 1000, fix_cb, &fs, &token);
	assert_true(got > 0 && got <= 1000);
	assert_int_equal(store_pos_consumed(t.s, token), 0);
	got = store_pos_peek(t.s, 5000, fix_cb, &fs, &token);
	assert_int_equal(fs.n, 1500);
	assert_int_equal(fs.lat_sum, expect_sum);
	assert_int_equal(store_pos_consumed(t.s, token), 0);
	assert_int_equal(store_pos_count(t.s, &n), 0);
	assert_int_equal(n, 0);
	tu_store_close(&t);
}

/* store_pos_acked: the fixes leave the count and the peek at once, their
 * rows go with the next flush; without one they stay (a crash sends them
 * again, harmless for the server). */
static void test_positions_acked(void **state)
{
	struct tu_store t;
	struct fixsum fs = {0};
	int64_t n, token;
	assert_int_equal(tu_store_open(&t, *state, 1), 0);
	for (int i = 0; i < 100; i++) {
		struct store_fix f = make_fix(i);
		assert_int_equal(store_pos_append(t.s, &f), 0);
	}
	assert_int_equal(store_pos_peek(t.s, 5000, fix_cb, &fs, &token), 100);
	store_pos_acked(t.s, token);
	assert_int_equal(store_pos_count(t.s, &n), 0);
	assert_int_equal(n, 0);
	for (int i = 100; i < 150; i++) {
		struct store_fix f = make_fix(i);
		assert_int_equal(store_pos_append(t.s, &f), 0);
	}
	assert_int_equal(store_pos_count(t.s, &n), 0);
	assert_int_equal(n, 50);
	assert_int_equal(store_pos_flush(t.s), 0); /* the acked rows go with it */
	tu_store_close(&t);

	assert_int_equal(tu_store_open(&t, *state, 0), 0);
	assert_int_equal(store_pos_count(t.s, &n), 0);
	assert_int_equal(n, 50);
	struct fixsum fs2 = {0};
	assert_int_equal(store_pos_peek(t.s, 5000, fix_cb, &fs2, &token), 50);
	assert_int_equal(fs2.n, 50);
	store_pos_acked(t.s, token);
	assert_int_equal(store_pos_count(t.s, &n), 0);
	assert_int_equal(n, 0);
	tu_store_close(&t); /* nothing buffered: no flush, the rows stay */

	assert_int_equal(tu_store_open(&t, *state, 0), 0);
	assert_int_equal(store_pos_count(t.s, &n), 0);
	assert_int_equal(n, 50);
	store_pos_acked(t.s, token);
	struct fixsum fs3 = {0};
	/* a peek with nothing flushed since deletes them itself */
	assert_int_equal(store_pos_peek(t.s, 5000, fix_cb, &fs3, &token), 0);
	tu_store_close(&t);
	assert_int_equal(tu_store_open(&t, *state, 0), 0);
	assert_int_equal(store_pos_count(t.s, &n), 0);
	assert_int_equal(n, 0);
	tu_store_close(&t);
}

/* The upload from memory: the buffered fixes are copied, and the ones the
 * server has leave the buffer without a write; a sealed open chunk is
 * rewritten without them, or deleted when none are left. */
static void test_positions_from_memory(void **state)
{
	struct tu_store t;
	struct store_fix out[64];
	int64_t n, oldest, newest, token;
	assert_int_equal(tu_store_open(&t, *state, 1), 0);
	assert_int_equal(store_pos_buffered(t.s, &oldest, &newest), 0);
	for (int i = 0; i < 40; i++) {
		struct store_fix f = make_fix(i);
		assert_int_equal(store_pos_append(t.s, &f), 0);
	}
	assert_int_equal(store_pos_only_buffered(t.s), 1);
	assert_int_equal(store_pos_buffered(t.s, &oldest, &newest), 40);
	assert_true(oldest == make_fix(0).t_ms && newest == make_fix(39).t_ms);
	assert_int_equal(store_pos_copy_buffered(t.s, out, 64), 40);
	assert_int_equal(store_pos_copy_buffered(t.s, out, 10), 10);
	assert_true(out[9].t_ms == make_fix(9).t_ms);
	/* the server has the first 30; 10 stay, nothing was written */
	store_pos_drop_buffered(t.s, make_fix(29).t_ms);
	assert_int_equal(store_pos_buffered(t.s, &oldest, &newest), 10);
	assert_true(oldest == make_fix(30).t_ms);
	assert_int_equal(store_pos_count(t.s, &n), 0);
	assert_int_equal(n, 10);
	/* sealed (a flush), then partly acknowledged: the row is rewritten */
	assert_int_equal(store_pos_flush(t.s), 0);
	assert_int_equal(store_pos_only_buffered(t.s), 1);
	store_pos_drop_buffered(t.s, make_fix(34).t_ms);
	assert_int_equal(store_pos_flush(t.s), 0);
	tu_store_close(&t);
	assert_int_equal(tu_store_open(&t, *state, 0), 0);
	struct fixsum fs = {0};
	assert_int_equal(store_pos_peek(t.s, 5000, fix_cb, &fs, &token), 5);
	assert_int_equal(store_pos_consumed(t.s, token), 0);
	/* sealed, then all acknowledged: the row goes with the next flush */
	for (int i = 100; i < 110; i++) {
		struct store_fix f = make_fix(i);
		assert_int_equal(store_pos_append(t.s, &f), 0);
	}
	assert_int_equal(store_pos_flush(t.s), 0);
	store_pos_drop_buffered(t.s, make_fix(109).t_ms);
	assert_int_equal(store_pos_count(t.s, &n), 0);
	assert_int_equal(n, 0);
	struct store_fix f = make_fix(110);
	assert_int_equal(store_pos_append(t.s, &f), 0);
	assert_int_equal(store_pos_flush(t.s), 0);
	tu_store_close(&t);
	assert_int_equal(tu_store_open(&t, *state, 0), 0);
	assert_int_equal(store_pos_count(t.s, &n), 0);
	assert_int_equal(n, 1);
	/* a sealed chunk waiting for the upload: not only buffered */
	f = make_fix(111);
	assert_int_equal(store_pos_append(t.s, &f), 0);
	assert_int_equal(store_pos_only_buffered(t.s), 0);
	tu_store_close(&t);
}

static void test_device_key(void **state)
{
	struct tu_store t;
	unsigned char pk[32], pk2[32], sig[64];
	assert_int_equal(tu_store_open(&t, *state, 1), 0);
	assert_int_equal(store_device_pubkey(t.s, pk), -ENOKEY);
	assert_int_equal(store_device_keygen(t.s, 0), 0);
	assert_int_equal(store_device_keygen(t.s, 0), -EEXIST);
	assert_int_equal(store_device_pubkey(t.s, pk), 0);
	assert_int_equal(store_device_sign(t.s, "msg", 3, sig), 0);
	assert_int_equal(
	    crypto_sign_ed25519_verify_detached(sig, (const unsigned char *)"msg", 3, pk), 0);
	tu_store_close(&t);
	assert_int_equal(tu_store_open(&t, *state, 0), 0);
	assert_int_equal(store_device_pubkey(t.s, pk2), 0);
	assert_memory_equal(pk, pk2, 32);
	assert_int_equal(store_device_sign(t.s, "msg", 3, sig), 0);
	assert_int_equal(
	    crypto_sign_ed25519_verify_detached(sig, (const unsigned char *)"msg", 3, pk), 0);
	assert_int_equal(store_device_keygen(t.s, 1), 0);
	assert_int_equal(store_device_pubkey(t.s, pk2), 0);
	assert_memory_not_equal(pk, pk2, 32);
	tu_store_close(&t);
	/* the public key is derived from the wrapped secret; neither is plain */
	char keys[512];
	path_in(keys, sizeof(keys), *state, "keys");
	assert_int_equal(tu_file_count(keys, pk2, 32), 0);
}

struct audit_seen {
	int n;
	int viewed;
};

static int audit_cb(void *arg, int64_t at, enum store_audit_action a, const char *subject,
                    const char *detail)
{
	struct audit_seen *seen = arg;
	(void)at;
	(void)detail;
	if (a == STORE_AUDIT_VIEWED && strcmp(subject, "inc-9") == 0)
		seen->viewed++;
	seen->n++;
	return 0;
}

static void test_audit(void **state)
{
	struct tu_store t;
	assert_int_equal(tu_store_open(&t, *state, 1), 0);
	assert_int_equal(store_audit_add(t.s, STORE_AUDIT_VIEWED, "inc-9", "essctl show", 1), 0);
	assert_int_equal(store_audit_add(t.s, STORE_AUDIT_STATUS, "inc-9", "en_route", 2), 0);
	struct audit_seen seen = {0};
	assert_int_equal(store_audit_each(t.s, audit_cb, &seen), 0);
	assert_int_equal(seen.n, 2);
	assert_int_equal(seen.viewed, 1);
	tu_store_close(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_create_and_reopen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_incident_versions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_incident_walk_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_outbox_order_and_results, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_outbox_delivered_runs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_outbox_groups, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_outbox_group_visibility, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rejected_list, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_positions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_positions_acked, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_positions_from_memory, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_device_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_audit, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
