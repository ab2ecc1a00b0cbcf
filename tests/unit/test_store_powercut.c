/* Power cuts at random moments, through the powercut VFS
 * (tests/lib/powercut_vfs.h): unsynced writes are lost, the write in flight
 * may land torn, the disk may have written back any unsynced sector, new
 * directory entries may vanish. The store appends events, incidents and
 * positions until the power goes at a random write or sync; then the
 * "device" reboots and the store must open (no recovery: the database is
 * sound), with every acknowledged event present, intact and once, seq never
 * going back, every acknowledged incident version and flushed fix there.
 *
 * The harness proves itself on every run: the same loop with
 * synchronous=NORMAL must catch lost acknowledged events, with OFF loss or
 * corruption, and FULL on a disk that lies about flushing the database
 * file must end in a corrupt database. A harness that finds nothing there
 * is broken, and so is its verdict on FULL.
 *
 * ESS_POWERCUT_CUTS=N: cuts of the FULL loop (default 1000; the controls run
 * N/5, at least 40). ESS_POWERCUT_SEED=S: replay a run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/log.h"
#include "agent/store.h"
#include "hal/keystore.h"
#include "tests/lib/powercut_vfs.h"
#include "tests/lib/testutil.h"

#include <sqlite3.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CUTS_DEFAULT 1000
#define CONTROL_MIN  40
#define GEN_CUTS     10   /* a fresh store every this many cuts */
#define MAX_OPS      600  /* the power goes within the next 1..MAX_OPS writes and syncs */
#define OPEN_OPS     45   /* ... or 1..OPEN_OPS, to land while a store is made */
#define MAX_STEPS    5000 /* a workload that never reaches the cut is cut by hand */
#define N_INCIDENTS  12
/* Every fourth store never checkpoints by hand nor closes cleanly and its
 * events are bigger: its WAL grows to SQLite's automatic checkpoint (1000
 * pages), which then runs inside a commit. */
#define HEAVY(gen) ((gen) % 4 == 3)

enum ev_state {
	EV_NONE = 0,  /* not stored (failed and not found after the reboot, or lost) */
	EV_MAYBE,     /* append failed at the cut: may or may not be there */
	EV_ACKED,     /* store_outbox_append returned 0: must be there */
	EV_DEL_MAYBE, /* delivered call failed at the cut: may or may not be there */
	EV_DELIVERED, /* gone for good: must not come back */
};

struct ev {
	int64_t seq;
	uint8_t state;
	uint8_t seen;
};

struct stats {
	long cuts, cuts_in_open, torn, acked, lost, corrupt, seq_back, resurrected, bad_rows;
	long inc_lost, pos_lost, unexpected;
};

struct run {
	enum store_durability dur;
	const char *name;
	char *dir;
	char kek_path[600];
	struct hal_keystore *ks;
	struct store *s;
	uint64_t rng;
	unsigned gen;
	struct ev *ev;
	size_t nev, cap;
	int64_t high_water; /* every acked or seen seq; new ones must be above */
	int64_t inc_acked[N_INCIDENTS];
	int64_t inc_tried[N_INCIDENTS];
	int64_t inc_version;
	int64_t pos_durable; /* fixes a successful flush (or a reboot) vouches for */
	int64_t pos_total;   /* fixes appended, flushed or not */
	int64_t t_ms;
	struct stats st;
	long cut_no;
	int stop;          /* FULL: the first problem ends the run */
	char problem[512]; /* the first thing that went wrong, for the report */
};

static const unsigned char SIG[64];

static uint64_t rnd(struct run *r)
{
	uint64_t z = (r->rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned pct(struct run *r)
{
	return (unsigned)(rnd(r) % 100);
}

/* The store logs every failed write after a cut: quiet unless asked
 * (ESS_POWERCUT_VERBOSE=1). */
static void log_discard(void *arg, enum log_level level, const char *line)
{
	(void)arg;
	(void)level;
	static int verbose = -1;
	if (verbose < 0)
		verbose = getenv("ESS_POWERCUT_VERBOSE") != NULL;
	if (verbose)
		fprintf(stderr, "# log: [op %" PRIu64 "%s] %s\n", pcv_ops(),
		        pcv_is_down() ? ", down" : "", line);
}

static void problem(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct run *r, const char *fmt, ...)
{
	if (r->problem[0])
		return;
	const struct pcv_cut_info *ci = pcv_last_cut();
	int n = snprintf(r->problem, sizeof(r->problem),
	                 "cut %ld (gen %u; power went at op %" PRIu64 ", %s of %s, kind %d, torn "
	                 "%u/%u): ",
	                 r->cut_no, r->gen, ci->op, ci->what ? ci->what : "-", ci->file,
	                 (int)ci->kind, ci->torn_kept, ci->torn_total);
	va_list ap;
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(r->problem))
		vsnprintf(r->problem + n, sizeof(r->problem) - (size_t)n, fmt, ap);
	va_end(ap);
}

/* ---- what is written: deterministic, so a read-back can be checked ---- */

static size_t event_body(char *buf, size_t cap, unsigned gen, size_t i)
{
	/* Mostly small, sometimes a few KiB (overflow pages). */
	size_t pad = (i % 9 == 4) ? 1500 + (i * 131) % 2600 : (i * 53) % 200;
	if (HEAVY(gen))
		pad += 3000;
	int n = snprintf(buf, cap, "{\"type\":\"note\",\"gen\":%u,\"i\":%zu,\"text\":\"", gen, i);
	size_t len = (size_t)n;
	for (size_t k = 0; k < pad && len + 3 < cap; k++)
		buf[len++] = (char)('a' + (i * 7 + k) % 26);
	buf[len++] = '"';
	buf[len++] = '}';
	buf[len] = 0;
	return len;
}

static size_t incident_payload(char *buf, size_t cap, int k, int64_t version)
{
	return (size_t)snprintf(buf, cap, "{\"id\":\"inc-%d\",\"version\":%lld,\"note\":\"%0*d\"}",
	                        k, (long long)version, (int)(version % 300), 0);
}

/* ---- the store under the VFS ---- */

static int run_open(struct run *r, int *flags, const char *when)
{
	char err[512];
	struct store_params p = {
	    .dir = r->dir, .keystore = r->ks, .create = 1, .vfs = PCV_NAME, .durability = r->dur};
	*flags = 0;
	int rc = store_open(&p, &r->s, flags, err, sizeof(err));
	if (rc < 0)
		r->s = NULL;
	if (rc < 0 && !pcv_is_down())
		problem(r, "store_open failed %s: %s", when, err);
	return rc;
}

/* A store_close the harness runs after the power went (to free the store)
 * is one a real device never runs: the clean-close marker it may have
 * written outside the VFS (docs/store.md, "Integrity") is not there either. */
static void close_store(struct run *r)
{
	store_close(r->s);
	r->s = NULL;
	if (pcv_is_down()) {
		char m[600];
		snprintf(m, sizeof(m), "%s/ess.db.clean", r->dir);
		unlink(m);
	}
}

static void new_generation(struct run *r)
{
	store_close(r->s);
	r->s = NULL;
	assert_int_equal(pcv_reboot(), 0);
	hal_keystore_close(r->ks);
	r->ks = NULL;
	tu_rmrf(r->dir);
	r->dir = tu_tmpdir("powercut");
	snprintf(r->kek_path, sizeof(r->kek_path), "%s/kek", r->dir);
	char err[512];
	int rc = hal_keystore_open("file", r->kek_path, &r->ks, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "# keystore: %s\n", err);
	assert_int_equal(rc, 0);
	r->gen++;
	r->nev = 0;
	r->high_water = 0;
	memset(r->inc_acked, 0, sizeof(r->inc_acked));
	memset(r->inc_tried, 0, sizeof(r->inc_tried));
	r->pos_durable = r->pos_total = 0;
}

/* Forgets what a recovered (moved aside) database held. */
static void model_reset(struct run *r)
{
	r->nev = 0;
	r->high_water = 0;
	memset(r->inc_acked, 0, sizeof(r->inc_acked));
	memset(r->inc_tried, 0, sizeof(r->inc_tried));
	r->pos_durable = r->pos_total = 0;
}

static size_t ev_new(struct run *r)
{
	if (r->nev == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 1024;
		r->ev = realloc(r->ev, r->cap * sizeof(*r->ev));
		assert_non_null(r->ev);
	}
	memset(&r->ev[r->nev], 0, sizeof(r->ev[0]));
	return r->nev++;
}

/* An acknowledged seq: above everything acknowledged or seen before. */
static void acked_seq(struct run *r, size_t i, int64_t seq)
{
	if (seq <= r->high_water) {
		r->st.seq_back++;
		problem(r, "seq went back: event %zu got seq %lld, %lld was already used", i,
		        (long long)seq, (long long)r->high_water);
	}
	r->high_water = seq > r->high_water ? seq : r->high_water;
	r->ev[i].seq = seq;
	r->ev[i].state = EV_ACKED;
	r->st.acked++;
}

/* A failure is expected only once the power is gone. */
static void op_failed(struct run *r, const char *what, int rc)
{
	if (!pcv_is_down()) {
		r->st.unexpected++;
		problem(r, "%s failed with the power on: %s", what, strerror(-rc));
	}
}

static int do_append(struct run *r, int in_tx, size_t *idx)
{
	char body[8192];
	size_t i = ev_new(r);
	size_t len = event_body(body, sizeof(body), r->gen, i);
	static const enum store_event_type types[] = {STORE_EVENT_STATUS, STORE_EVENT_NOTE,
	                                              STORE_EVENT_RECEIPT, STORE_EVENT_SOS,
	                                              STORE_EVENT_COMMAND_RESULT};
	enum store_event_type type = types[rnd(r) % 5];
	int64_t seq = 0;
	int rc = store_outbox_append(r->s, type, body, len, &seq, NULL);
	r->ev[i].state = EV_MAYBE;
	if (rc == 0 && !in_tx)
		acked_seq(r, i, seq);
	else if (rc == 0)
		r->ev[i].seq = seq; /* acknowledged at the commit */
	else
		op_failed(r, "append", rc);
	if (idx)
		*idx = i;
	return rc;
}

/* A transaction of events: one group row (or two past OUTBOX_GROUP_MAX). */
static void do_tx(struct run *r)
{
	size_t idx[72];
	int n = 2 + (int)(rnd(r) % (rnd(r) % 3 == 0 ? 70 : 3));
	int rc = store_begin(r->s);
	if (rc < 0) {
		op_failed(r, "begin", rc);
		return;
	}
	for (int k = 0; k < n; k++) {
		rc = do_append(r, 1, &idx[k]);
		if (rc < 0) {
			store_rollback(r->s);
			return;
		}
	}
	rc = store_commit(r->s);
	if (rc < 0) {
		op_failed(r, "commit", rc);
		return;
	}
	for (int k = 0; k < n; k++)
		acked_seq(r, idx[k], r->ev[idx[k]].seq);
}

static void do_deliver(struct run *r)
{
	int64_t seqs[3];
	size_t which[3];
	size_t n = 0;
	/* From a random place on, so that groups are delivered in parts. */
	size_t start = r->nev ? (size_t)(rnd(r) % r->nev) : 0;
	for (size_t k = 0; k < r->nev && n < 3; k++) {
		size_t i = (start + k) % r->nev;
		if (r->ev[i].state == EV_ACKED) {
			which[n] = i;
			seqs[n++] = r->ev[i].seq;
		}
	}
	if (!n)
		return;
	int rc = store_outbox_delivered(r->s, seqs, n);
	for (size_t k = 0; k < n; k++)
		r->ev[which[k]].state = rc == 0 ? EV_DELIVERED : EV_DEL_MAYBE;
	if (rc < 0)
		op_failed(r, "delivered", rc);
}

static void do_incident(struct run *r)
{
	int k = (int)(rnd(r) % N_INCIDENTS);
	char id[32], payload[512];
	snprintf(id, sizeof(id), "inc-%d", k);
	int64_t v = ++r->inc_version;
	size_t len = incident_payload(payload, sizeof(payload), k, v);
	r->inc_tried[k] = v;
	int rc =
	    store_incident_put(r->s, id, v, STORE_DISPATCH_ASSIGNED, r->t_ms, payload, len, SIG);
	if (rc >= 0)
		r->inc_acked[k] = v;
	else
		op_failed(r, "incident put", rc);
}

static void do_positions(struct run *r)
{
	int n = 1 + (int)(rnd(r) % 6);
	for (int k = 0; k < n; k++) {
		r->t_ms += 1000;
		struct store_fix f = {.t_ms = r->t_ms,
		                      .lat_e7 = 137000000 + (int32_t)(r->t_ms / 1000 % 50000),
		                      .lon_e7 = 1005000000 - (int32_t)(r->t_ms / 1000 % 70000),
		                      .accuracy_dm = 50,
		                      .speed_cm_s = 800,
		                      .heading_cdeg = 9000,
		                      .mode = 3};
		int rc = store_pos_append(r->s, &f);
		if (rc < 0) {
			op_failed(r, "position append", rc);
			return;
		}
		r->pos_total++;
	}
}

static void do_flush(struct run *r)
{
	int rc = store_pos_flush(r->s);
	if (rc == 0)
		r->pos_durable = r->pos_total;
	else
		op_failed(r, "position flush", rc);
}

/* Acts until the power goes. */
static void workload(struct run *r)
{
	for (int step = 0; step < MAX_STEPS && !pcv_is_down(); step++) {
		unsigned p = pct(r);
		int rc;
		if (p < 49) {
			do_append(r, 0, NULL);
		} else if (p < 55) {
			do_tx(r);
		} else if (p < 68) {
			do_positions(r);
		} else if (p < 73) {
			do_flush(r);
		} else if (p < 83) {
			do_incident(r);
		} else if (p < 90) {
			do_deliver(r);
		} else if (p < 95 && HEAVY(r->gen)) {
			do_append(r, 0, NULL);
		} else if (p < 93) {
			if ((rc = store_checkpoint(r->s)) < 0)
				op_failed(r, "checkpoint", rc);
		} else if (p < 94) {
			if ((rc = store_purge(r->s, r->t_ms, 3600000, 86400000)) < 0)
				op_failed(r, "purge", rc);
		} else if (p < 95) {
			/* The agent restarts: a clean close (checkpoint, WAL
			 * removed) and an open, the power may go in either. */
			close_store(r);
			int flags;
			if (run_open(r, &flags, "at a restart with the power on") < 0)
				break;
			if (flags & STORE_OPENED_RECOVERED)
				problem(r, "store recovered with the power on");
		} else if (p < 97) {
			if ((rc = store_audit_add(r->s, STORE_AUDIT_NOTE, "inc-1", "x", r->t_ms)) <
			    0)
				op_failed(r, "audit", rc);
		} else {
			char v[32];
			snprintf(v, sizeof(v), "cursor-%ld", r->cut_no);
			if ((rc = store_state_set(r->s, "cursor", v, strlen(v))) < 0)
				op_failed(r, "state set", rc);
		}
		if (r->problem[0] && r->stop)
			return;
	}
	pcv_cut_now();
}

/* ---- after the reboot ---- */

struct verify {
	struct run *r;
	int64_t *seqs;
	size_t nseqs;
};

static int check_event(void *arg, const struct store_event *e)
{
	struct verify *v = arg;
	struct run *r = v->r;
	unsigned gen;
	size_t i;
	char want[8192];
	v->seqs[v->nseqs++] = e->seq;
	if (sscanf((const char *)e->body, "{\"type\":\"note\",\"gen\":%u,\"i\":%zu", &gen, &i) !=
	        2 ||
	    gen != r->gen || i >= r->nev || r->ev[i].state == EV_NONE) {
		r->st.bad_rows++;
		problem(r, "seq %lld: an event that was never written (or garbled)",
		        (long long)e->seq);
		return 0;
	}
	event_body(want, sizeof(want), gen, i);
	struct ev *ev = &r->ev[i];
	if (strcmp(want, (const char *)e->body) != 0 || e->body_len != strlen(want)) {
		r->st.bad_rows++;
		problem(r, "event %zu (seq %lld): body differs", i, (long long)e->seq);
	} else if (ev->seen) {
		r->st.bad_rows++;
		problem(r, "event %zu present twice (seq %lld)", i, (long long)e->seq);
	} else if (ev->state == EV_ACKED && ev->seq != e->seq) {
		r->st.bad_rows++;
		problem(r, "event %zu: acknowledged as seq %lld, found as %lld", i,
		        (long long)ev->seq, (long long)e->seq);
	} else if (ev->state == EV_DELIVERED) {
		r->st.resurrected++;
		problem(r, "event %zu (seq %lld) came back after its delivery was confirmed", i,
		        (long long)e->seq);
	}
	ev->seen = 1;
	ev->seq = e->seq;
	return 0;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static void verify_store(struct run *r)
{
	struct verify v = {.r = r, .seqs = calloc(r->nev + 1, sizeof(int64_t))};
	assert_non_null(v.seqs);
	for (size_t i = 0; i < r->nev; i++)
		r->ev[i].seen = 0;
	int n = store_outbox_peek(r->s, r->nev + 1, check_event, &v);
	if (n < 0) {
		r->st.corrupt++;
		problem(r, "outbox unreadable: %s", strerror(-n));
	}
	qsort(v.seqs, v.nseqs, sizeof(int64_t), cmp_i64);
	for (size_t k = 1; k < v.nseqs; k++)
		if (v.seqs[k] == v.seqs[k - 1]) {
			r->st.bad_rows++;
			problem(r, "seq %lld present twice", (long long)v.seqs[k]);
		}
	long lost = 0;
	for (size_t i = 0; i < r->nev; i++) {
		struct ev *ev = &r->ev[i];
		if (ev->state == EV_ACKED && !ev->seen) {
			if (!lost)
				problem(r, "acknowledged event %zu (seq %lld) lost", i,
				        (long long)ev->seq);
			lost++;
		}
		/* What is there now is durable; what is not, is not stored. */
		if (ev->seen) {
			ev->state = EV_ACKED;
			if (ev->seq > r->high_water)
				r->high_water = ev->seq;
		} else if (ev->state == EV_DEL_MAYBE || ev->state == EV_DELIVERED) {
			ev->state = EV_DELIVERED;
		} else {
			ev->state = EV_NONE;
		}
	}
	r->st.lost += lost;
	free(v.seqs);

	for (int k = 0; k < N_INCIDENTS; k++) {
		if (!r->inc_tried[k])
			continue;
		char id[32], want[512];
		snprintf(id, sizeof(id), "inc-%d", k);
		struct store_incident inc;
		int rc = store_incident_get(r->s, id, &inc);
		if (rc == -ENOENT) {
			if (r->inc_acked[k]) {
				r->st.inc_lost++;
				problem(r, "acknowledged incident %s v%lld lost", id,
				        (long long)r->inc_acked[k]);
			}
			r->inc_tried[k] = r->inc_acked[k] = 0;
			continue;
		}
		if (rc < 0) {
			r->st.bad_rows++;
			problem(r, "incident %s unreadable: %s", id, strerror(-rc));
			continue;
		}
		size_t len = incident_payload(want, sizeof(want), k, inc.version);
		if (inc.version < r->inc_acked[k]) {
			r->st.inc_lost++;
			problem(r, "incident %s: v%lld acknowledged, v%lld found", id,
			        (long long)r->inc_acked[k], (long long)inc.version);
		} else if (inc.version > r->inc_tried[k] || inc.payload_len != len ||
		           memcmp(inc.payload, want, len) != 0) {
			r->st.bad_rows++;
			problem(r, "incident %s v%lld: not what was written", id,
			        (long long)inc.version);
		}
		r->inc_acked[k] = r->inc_tried[k] = inc.version;
		store_incident_clear(&inc);
	}

	int64_t fixes = 0;
	int rc = store_pos_count(r->s, &fixes);
	if (rc < 0) {
		r->st.corrupt++;
		problem(r, "positions unreadable: %s", strerror(-rc));
	} else if (fixes < r->pos_durable) {
		r->st.pos_lost++;
		problem(r, "%lld flushed fixes, %lld found", (long long)r->pos_durable,
		        (long long)fixes);
	}
	r->pos_durable = r->pos_total = fixes;

	int64_t q = 0;
	if (store_quarantine_count(r->s, &q) < 0 || q > 0) {
		r->st.bad_rows++;
		problem(r, "%lld rows quarantined", (long long)q);
	}
}

/* One cut: act until the power goes, reboot, check. */
static void one_cut(struct run *r)
{
	int flags;
	/* Making a store takes a few dozen operations (opening an existing one
	 * writes nothing): aim there at every other new store. */
	int creating = r->cut_no % GEN_CUTS == 0 && r->gen % 2 == 0;
	uint64_t nth = 1 + rnd(r) % (creating ? OPEN_OPS : MAX_OPS);
	pcv_arm(nth, (enum pcv_cut_kind)(rnd(r) % PCV_CUT_KINDS), rnd(r));
	if (!r->s) {
		if (run_open(r, &flags, "with the power on") < 0)
			r->st.cuts_in_open++;
		else if (flags & STORE_OPENED_RECOVERED)
			problem(r, "store recovered with the power on");
	}
	if (r->s)
		workload(r);
	pcv_cut_now();
	close_store(r); /* fails to write anything: the power is gone */
	r->st.cuts++;
	const struct pcv_cut_info *ci = pcv_last_cut();
	if (ci->torn_kept > 0 && ci->torn_kept < ci->torn_total)
		r->st.torn++;
	assert_int_equal(pcv_reboot(), 0);

	/* The power is back: the store must open as it was left. */
	pcv_arm(0, PCV_CUT_CLEAN, 0);
	if (run_open(r, &flags, "after the reboot") < 0) {
		r->st.corrupt++;
		r->s = NULL;
		return;
	}
	if (flags & STORE_OPENED_RECOVERED) {
		r->st.corrupt++;
		long lost = 0;
		for (size_t i = 0; i < r->nev; i++)
			lost += r->ev[i].state == EV_ACKED;
		r->st.lost += lost;
		problem(r,
		        "the database failed its check after the reboot and was moved aside "
		        "(%ld acknowledged events with it)",
		        lost);
		model_reset(r);
		return;
	}
	verify_store(r);
	/* Sometimes shut down cleanly, so the next cut may come while opening. */
	if (pct(r) < 20 && !HEAVY(r->gen)) {
		store_close(r->s);
		r->s = NULL;
	}
}

static struct stats run_mode(enum store_durability dur, const char *name, long cuts, uint64_t seed,
                             int stop_at_problem, char *first, size_t firstlen)
{
	struct run r = {.dur = dur,
	                .name = name,
	                .rng = seed,
	                .t_ms = 1800000000000LL,
	                .stop = stop_at_problem};
	r.dir = tu_tmpdir("powercut");
	log_set_sink(log_discard, NULL);
	time_t t0 = time(NULL);
	const struct pcv_counters c0 = *pcv_counters();
	for (r.cut_no = 0; r.cut_no < cuts; r.cut_no++) {
		if (r.cut_no % GEN_CUTS == 0)
			new_generation(&r);
		one_cut(&r);
		if (r.problem[0] && stop_at_problem)
			break;
		if (r.problem[0] && !first[0])
			snprintf(first, firstlen, "%s", r.problem);
		r.problem[0] = 0;
	}
	if (r.problem[0] && !first[0])
		snprintf(first, firstlen, "%s", r.problem);
	store_close(r.s);
	r.s = NULL;
	pcv_reboot();
	log_set_sink(NULL, NULL);
	hal_keystore_close(r.ks);
	tu_rmrf(r.dir);
	free(r.ev);
	const struct pcv_counters *c = pcv_counters();
	printf("# %s: %ld cuts (%ld while opening, %ld torn writes), %ld acknowledged, %ld lost, "
	       "%ld corrupt (%ld bad rows), %ld seq back, %ld resurrected, %ld incidents lost, "
	       "%ld position losses; VFS %" PRIu64 " writes %" PRIu64 " syncs %" PRIu64
	       " dir syncs %" PRIu64 " vanished %" PRIu64 " unlinks undone; %lds\n",
	       name, r.st.cuts, r.st.cuts_in_open, r.st.torn, r.st.acked, r.st.lost, r.st.corrupt,
	       r.st.bad_rows, r.st.seq_back, r.st.resurrected, r.st.inc_lost, r.st.pos_lost,
	       c->writes - c0.writes, c->syncs - c0.syncs, c->dir_syncs - c0.dir_syncs,
	       c->vanished - c0.vanished, c->unlink_undone - c0.unlink_undone,
	       (long)(time(NULL) - t0));
	fflush(stdout);
	return r.st;
}

/* ---- the VFS itself: the model the verdicts rest on ---- */

struct raw {
	sqlite3_vfs *vfs;
	sqlite3_file *f;
	char name[600]; /* outlives the handle; zero padding ends the URI parameters */
};

static void raw_open(struct raw *x, const char *dir, const char *base, int type)
{
	x->vfs = sqlite3_vfs_find(PCV_NAME);
	assert_non_null(x->vfs);
	memset(x->name, 0, sizeof(x->name));
	snprintf(x->name, sizeof(x->name) - 4, "%s/%s", dir, base);
	x->f = calloc(1, (size_t)x->vfs->szOsFile);
	assert_non_null(x->f);
	int out;
	assert_int_equal(x->vfs->xOpen(x->vfs, x->name, x->f,
	                               type | SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &out),
	                 SQLITE_OK);
}

static void raw_close(struct raw *x)
{
	x->f->pMethods->xClose(x->f);
	free(x->f);
	x->f = NULL;
}

static int raw_write(struct raw *x, int c, int len, int64_t off)
{
	unsigned char buf[8192];
	memset(buf, c, (size_t)len);
	return x->f->pMethods->xWrite(x->f, buf, len, off);
}

static int file_exists(const char *dir, const char *base)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/%s", dir, base);
	return access(path, F_OK) == 0;
}

static void test_vfs_model(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("pcvfs");
	char path[700];
	size_t len;
	unsigned char buf[8192];
	struct raw db, wal;

	/* A new database file synced but its directory never: gone. */
	raw_open(&db, dir, "a.db", SQLITE_OPEN_MAIN_DB);
	assert_int_equal(raw_write(&db, 'A', 4096, 0), SQLITE_OK);
	assert_int_equal(db.f->pMethods->xSync(db.f, SQLITE_SYNC_FULL), SQLITE_OK);
	raw_close(&db);
	assert_int_equal(pcv_reboot(), 0);
	assert_false(file_exists(dir, "a.db"));

	/* The first sync of a new WAL syncs the directory: both stay. */
	raw_open(&db, dir, "a.db", SQLITE_OPEN_MAIN_DB);
	raw_open(&wal, dir, "a.db-wal", SQLITE_OPEN_WAL);
	assert_int_equal(raw_write(&wal, 'W', 1000, 0), SQLITE_OK);
	assert_int_equal(wal.f->pMethods->xSync(wal.f, SQLITE_SYNC_FULL), SQLITE_OK);
	assert_int_equal(raw_write(&db, 'A', 4096, 0), SQLITE_OK);
	assert_int_equal(db.f->pMethods->xSync(db.f, SQLITE_SYNC_FULL), SQLITE_OK);
	/* Unsynced: read back from memory, not on disk. */
	assert_int_equal(raw_write(&db, 'B', 4096, 4096), SQLITE_OK);
	assert_int_equal(raw_write(&wal, 'V', 500, 1000), SQLITE_OK);
	assert_int_equal(db.f->pMethods->xRead(db.f, buf, 4096, 4096), SQLITE_OK);
	assert_int_equal(buf[0], 'B');
	snprintf(path, sizeof(path), "%s/a.db", dir);
	free(tu_read_file(path, &len));
	assert_int_equal(len, 4096);
	/* The power goes in the middle of the next write: torn. */
	pcv_arm(1, PCV_CUT_TEAR, 42);
	assert_int_equal(raw_write(&db, 'C', 2048, 0), SQLITE_IOERR_WRITE);
	assert_true(pcv_is_down());
	assert_int_not_equal(db.f->pMethods->xRead(db.f, buf, 10, 0), SQLITE_OK);
	const struct pcv_cut_info *ci = pcv_last_cut();
	assert_int_equal(ci->torn_total, 4);
	assert_true(ci->torn_kept >= 1 && ci->torn_kept <= 3);
	raw_close(&db);
	raw_close(&wal);
	assert_int_equal(pcv_reboot(), 0);
	unsigned char *d = tu_read_file(path, &len);
	assert_non_null(d);
	assert_int_equal(len, 4096); /* the unsynced second page is lost */
	for (size_t i = 0; i < len; i++)
		assert_int_equal(d[i], i < ci->torn_kept * PCV_SECTOR ? 'C' : 'A');
	free(d);
	snprintf(path, sizeof(path), "%s/a.db-wal", dir);
	d = tu_read_file(path, &len);
	assert_int_equal(len, 1000);
	free(d);

	/* An unlink without a directory sync is undone; with one it holds. */
	assert_int_equal(db.vfs->xDelete(db.vfs, path, 0), SQLITE_OK);
	assert_false(file_exists(dir, "a.db-wal"));
	assert_int_equal(pcv_reboot(), 0);
	d = tu_read_file(path, &len);
	assert_non_null(d);
	assert_int_equal(len, 1000);
	assert_int_equal(d[999], 'W');
	free(d);
	assert_int_equal(db.vfs->xDelete(db.vfs, path, 1), SQLITE_OK);
	assert_int_equal(pcv_reboot(), 0);
	assert_false(file_exists(dir, "a.db-wal"));

	/* Scatter: some unsynced sectors land, whole, others not. */
	raw_open(&db, dir, "a.db", SQLITE_OPEN_MAIN_DB);
	assert_int_equal(raw_write(&db, 'D', 4096, 0), SQLITE_OK);
	pcv_arm(1, PCV_CUT_SCATTER, 7);
	assert_int_not_equal(db.f->pMethods->xSync(db.f, SQLITE_SYNC_FULL), SQLITE_OK);
	ci = pcv_last_cut();
	raw_close(&db);
	assert_int_equal(pcv_reboot(), 0);
	snprintf(path, sizeof(path), "%s/a.db", dir);
	d = tu_read_file(path, &len);
	assert_int_equal(len, 4096);
	unsigned landed = 0;
	for (size_t sct = 0; sct < 8; sct++) {
		int c = d[sct * PCV_SECTOR];
		assert_true(c == 'D' || c == 'A' || c == 'C');
		for (size_t i = 0; i < PCV_SECTOR; i++)
			assert_int_equal(d[sct * PCV_SECTOR + i], c);
		landed += c == 'D';
	}
	assert_int_equal(landed, ci->torn_kept + ci->scatter_kept);
	assert_int_equal(landed + ci->lost, 8);
	free(d);
	tu_rmrf(dir);
}

static uint64_t g_seed;
static long g_cuts;

static int setup(void **state)
{
	(void)state;
	assert_int_equal(pcv_register(), 0);
	const char *env = getenv("ESS_POWERCUT_CUTS");
	g_cuts = env && atol(env) > 0 ? atol(env) : CUTS_DEFAULT;
	env = getenv("ESS_POWERCUT_SEED");
	g_seed = env && *env ? strtoull(env, NULL, 0)
	                     : ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
	printf("# seed %" PRIu64 " (ESS_POWERCUT_SEED to replay), %ld cuts\n", g_seed, g_cuts);
	return 0;
}

static void test_full_keeps_every_acknowledged_action(void **state)
{
	(void)state;
	char first[512] = "";
	struct stats st =
	    run_mode(STORE_DURABILITY_FULL, "FULL", g_cuts, g_seed, 1, first, sizeof(first));
	if (first[0])
		printf("# FULL: %s (seed %" PRIu64 ")\n", first, g_seed);
	assert_string_equal(first, "");
	assert_int_equal(st.lost + st.corrupt + st.bad_rows + st.seq_back + st.resurrected +
	                     st.inc_lost + st.pos_lost + st.unexpected,
	                 0);
	assert_true(st.acked > st.cuts); /* it did act between the cuts */
	assert_true(st.cuts_in_open > 0);
}

static long control_cuts(void)
{
	return g_cuts / 5 > CONTROL_MIN ? g_cuts / 5 : CONTROL_MIN;
}

/* synchronous=NORMAL does not sync the WAL at commit: the harness must see
 * acknowledged events vanish. */
static void test_control_normal_loses_acknowledged_events(void **state)
{
	(void)state;
	char first[512] = "";
	struct stats st = run_mode(STORE_DURABILITY_NORMAL, "NORMAL (control)", control_cuts(),
	                           g_seed ^ 0x4e4f524d414cULL, 0, first, sizeof(first));
	if (first[0])
		printf("# NORMAL: first detection: %s\n", first);
	assert_int_equal(st.unexpected, 0);
	assert_true(st.acked > 0);
	if (st.lost == 0)
		printf("# NORMAL: no acknowledged event lost: the harness is broken\n");
	assert_true(st.lost > 0);
}

/* synchronous=OFF never syncs: loss or corruption must show. */
static void test_control_off_loses_or_corrupts(void **state)
{
	(void)state;
	char first[512] = "";
	struct stats st = run_mode(STORE_DURABILITY_OFF, "OFF (control)", control_cuts(),
	                           g_seed ^ 0x4f4646ULL, 0, first, sizeof(first));
	if (first[0])
		printf("# OFF: first detection: %s\n", first);
	assert_int_equal(st.unexpected, 0);
	assert_true(st.acked > 0);
	if (st.lost + st.corrupt + st.bad_rows == 0)
		printf("# OFF: nothing lost or corrupt: the harness is broken\n");
	assert_true(st.lost + st.corrupt + st.bad_rows > 0);
}

/* FULL on a disk that lies about flushing the database file: checkpoints
 * copy the WAL into pages that never reach the disk, then the WAL is reused:
 * the harness must see a corrupt database (the store moving it aside). */
static void test_control_lying_disk_corrupts(void **state)
{
	(void)state;
	char first[512] = "";
	pcv_set_lying_db_sync(1);
	struct stats st = run_mode(STORE_DURABILITY_FULL, "FULL on a lying disk (control)",
	                           control_cuts(), g_seed ^ 0x4c494552ULL, 0, first, sizeof(first));
	pcv_set_lying_db_sync(0);
	if (first[0])
		printf("# lying disk: first detection: %s\n", first);
	assert_int_equal(st.unexpected, 0);
	assert_true(st.acked > 0);
	if (st.corrupt == 0)
		printf("# lying disk: no corruption seen: the harness is broken\n");
	assert_true(st.corrupt > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vfs_model),
	    cmocka_unit_test(test_full_keeps_every_acknowledged_action),
	    cmocka_unit_test(test_control_normal_loses_acknowledged_events),
	    cmocka_unit_test(test_control_off_loses_or_corrupts),
	    cmocka_unit_test(test_control_lying_disk_corrupts),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
