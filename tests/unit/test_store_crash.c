/* kill -9 at random moments: a child appends events (and positions and
 * incidents) and reports each event the store confirmed; after every kill
 * the parent reopens the store and checks that every confirmed event is
 * there, intact, once, and that seq never goes back. */
#define _GNU_SOURCE /* F_SETPIPE_SZ */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/store.h"
#include "tests/lib/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KILLS      60
#define MAX_REPORT 200000

/* What the child tells the parent, each only once the store returned. */
enum {
	R_APPENDED = 0, /* durable: must be there until delivered */
	R_DELIVERING,   /* store_outbox_delivered called: may be gone */
	R_DELIVERED,    /* ... and returned: gone for good */
	R_REJECTING,    /* store_outbox_reject called */
	R_REJECTED,     /* ... and returned: in the rejected list, not the outbox */
};

struct report {
	int64_t seq;
	int32_t child;
	int32_t i;
	int32_t kind;
	int32_t pad;
};

/* The parent's knowledge of each seq, kept across rounds. */
enum { S_UNKNOWN = 0, S_PRESENT, S_MAYBE_GONE, S_GONE, S_MAYBE_REJECTED, S_REJECTED };

struct known {
	int32_t child;
	int32_t i;
	uint8_t state;
	uint8_t seen;
	uint8_t in_rejected;
};

static const unsigned char SIG[64];

static void body_of(char *buf, size_t cap, int child, int i)
{
	snprintf(buf, cap, "{\"type\":\"note\",\"text\":\"crash-%d-%d\"}", child, i);
}

static void say(int fd, int64_t seq, int child, int i, int kind)
{
	struct report r = {.seq = seq, .child = child, .i = i, .kind = kind};
	if (write(fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
		_exit(5);
}

struct taken {
	int n;
	int64_t seq[12];
	int32_t child[12], i[12];
};

static int take(void *arg, const struct store_event *ev)
{
	struct taken *t = arg;
	int child, i;
	if (t->n < 12 && sscanf((const char *)ev->body, "{\"type\":\"note\",\"text\":\"crash-%d-%d",
	                        &child, &i) == 2) {
		t->seq[t->n] = ev->seq;
		t->child[t->n] = child;
		t->i[t->n++] = i;
	}
	return 0;
}

/* Appends events alone and in transactions (group rows), and now and then
 * delivers every other queued event (cutting groups apart) and rejects one,
 * as the sync engine does; positions and incidents alongside. */
static void child_run(const char *dir, int fd, int child)
{
	struct tu_store t;
	if (tu_store_open(&t, dir, 1) < 0)
		_exit(3);
	unsigned rng = (unsigned)child * 2654435761u + 1;
	for (int i = 0, step = 0;; step++) {
		char body[128];
		rng = rng * 1103515245u + 12345u;
		unsigned what = (rng >> 16) % 8;
		if (what < 2) {
			body_of(body, sizeof(body), child, i);
			int64_t seq;
			if (store_outbox_append(t.s, STORE_EVENT_NOTE, body, strlen(body), &seq,
			                        NULL) < 0)
				_exit(4);
			/* Only now is the event confirmed: tell the parent. */
			say(fd, seq, child, i++, R_APPENDED);
		} else if (what < 6) {
			int k = 1 + (int)((rng >> 8) % 70), first = i;
			int64_t seqs[70];
			if (store_begin(t.s) < 0)
				_exit(4);
			for (int j = 0; j < k; j++) {
				body_of(body, sizeof(body), child, i++);
				if (store_outbox_append(t.s, STORE_EVENT_NOTE, body, strlen(body),
				                        &seqs[j], NULL) < 0)
					_exit(4);
			}
			if (store_commit(t.s) < 0)
				_exit(4);
			for (int j = 0; j < k; j++)
				say(fd, seqs[j], child, first + j, R_APPENDED);
		} else if (what < 7) {
			struct taken tk = {0};
			if (store_outbox_peek(t.s, 12, take, &tk) < 0)
				_exit(6);
			int64_t del[12];
			int nd = 0;
			for (int j = 1; j < tk.n; j += 2) {
				del[nd++] = tk.seq[j];
				say(fd, tk.seq[j], tk.child[j], tk.i[j], R_DELIVERING);
			}
			if (tk.n)
				say(fd, tk.seq[0], tk.child[0], tk.i[0], R_REJECTING);
			if (store_begin(t.s) < 0 ||
			    store_outbox_delivered(t.s, del, (size_t)nd) < 0 ||
			    (tk.n && store_outbox_reject(t.s, tk.seq[0], "crash test", 1) < 0) ||
			    store_commit(t.s) < 0)
				_exit(6);
			for (int j = 1; j < tk.n; j += 2)
				say(fd, tk.seq[j], tk.child[j], tk.i[j], R_DELIVERED);
			if (tk.n)
				say(fd, tk.seq[0], tk.child[0], tk.i[0], R_REJECTED);
		} else {
			struct store_fix f = {.t_ms =
			                          1800000000000LL + (int64_t)child * 100000 + step,
			                      .lat_e7 = 137000000 + step,
			                      .lon_e7 = 1005000000 - step,
			                      .accuracy_dm = 50,
			                      .speed_cm_s = 100,
			                      .heading_cdeg = 9000,
			                      .mode = 3};
			store_pos_append(t.s,
			                 &f); /* fixes may be lost; the store must stay sound */
			if (step % 3 == 0) {
				char id[32];
				snprintf(id, sizeof(id), "c%d", step % 50);
				store_incident_put(t.s, id, (int64_t)child * 100000 + step + 1,
				                   STORE_DISPATCH_ASSIGNED, 1, body, 10, SIG);
			}
			if (step % 5 == 0)
				store_pos_flush(t.s);
		}
	}
}

struct seen {
	struct known *k;
	int64_t nk;
	int64_t prev;
	int n;
	int dup, mismatched, resurrected, stranger;
	int64_t *all; /* every seq seen, to deliver some afterwards */
};

static int check_event(void *arg, const struct store_event *ev)
{
	struct seen *s = arg;
	int child, i;
	if (ev->seq <= s->prev)
		s->dup++;
	s->prev = ev->seq;
	if (s->n < MAX_REPORT)
		s->all[s->n] = ev->seq;
	s->n++;
	if (ev->seq >= s->nk ||
	    sscanf((const char *)ev->body, "{\"type\":\"note\",\"text\":\"crash-%d-%d", &child,
	           &i) != 2) {
		s->stranger++;
		return 0;
	}
	struct known *k = &s->k[ev->seq];
	char want[128];
	body_of(want, sizeof(want), child, i);
	if (strcmp(want, (const char *)ev->body) != 0 ||
	    (k->state != S_UNKNOWN && (k->child != child || k->i != i))) {
		fprintf(stderr, "# seq %lld: body %s, known as %d-%d state %d\n",
		        (long long)ev->seq, (const char *)ev->body, k->child, k->i, k->state);
		s->mismatched++;
	}
	if (k->state == S_GONE || k->state == S_REJECTED)
		s->resurrected++;
	if (k->state == S_UNKNOWN) { /* committed, killed before it was reported */
		k->child = child;
		k->i = i;
	}
	k->seen = 1;
	return 0;
}

static int check_rejected(void *arg, const struct store_rejected *r)
{
	struct seen *s = arg;
	if (r->ev.seq < s->nk)
		s->k[r->ev.seq].in_rejected = 1;
	return 0;
}

static void test_kill9_loop(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("crash");
	struct report *rep = calloc(MAX_REPORT, sizeof(*rep));
	int64_t *all = calloc(MAX_REPORT, sizeof(*all));
	int64_t nk = 1 << 16;
	struct known *known = calloc((size_t)nk, sizeof(*known));
	assert_non_null(rep);
	assert_non_null(all);
	assert_non_null(known);
	int64_t high_water = 0;
	long total_confirmed = 0, total_delivered = 0, total_rejected = 0, carried = 0;
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	const char *env = getenv("ESS_CRASH_KILLS");
	int kills = env ? atoi(env) : KILLS;

	/* The store exists before the first child: a kill during its very
	 * first open would otherwise leave nothing to reopen (create=0). */
	struct tu_store first;
	assert_int_equal(tu_store_open(&first, dir, 1), 0);
	tu_store_close(&first);

	for (int round = 0; round < kills; round++) {
		int pfd[2];
		assert_int_equal(pipe(pfd), 0);
		fcntl(pfd[1], F_SETPIPE_SZ, 1 << 20); /* the child never waits for us */
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(pfd[0]);
			child_run(dir, pfd[1], round);
		}
		close(pfd[1]);
		/* 0–40 ms: sometimes inside store_open, mostly mid-append */
		struct timespec d = {0, (long)(rand() % 40000) * 1000};
		nanosleep(&d, NULL);
		kill(pid, SIGKILL);
		ssize_t n;
		size_t partial = 0;
		while ((n = read(pfd[0], (char *)rep + partial,
		                 (MAX_REPORT - 1) * sizeof(*rep) - partial)) > 0)
			partial += (size_t)n;
		int nrep = (int)(partial / sizeof(*rep));
		close(pfd[0]);
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

		/* What the child said, in order. */
		for (int r = 0; r < nrep; r++) {
			struct report *p = &rep[r];
			assert_true(p->seq > 0);
			while (p->seq >= nk) {
				known = realloc(known, (size_t)nk * 2 * sizeof(*known));
				assert_non_null(known);
				memset(known + nk, 0, (size_t)nk * sizeof(*known));
				nk *= 2;
			}
			struct known *k = &known[p->seq];
			/* An event committed but not reported before a kill is
			 * first named when a later child delivers it. */
			k->child = p->child;
			k->i = p->i;
			switch (p->kind) {
			case R_APPENDED:
				assert_true(p->seq > high_water); /* seq never goes back */
				assert_int_equal(k->state, S_UNKNOWN);
				k->state = S_PRESENT;
				total_confirmed++;
				break;
			case R_DELIVERING:
				k->state = S_MAYBE_GONE;
				break;
			case R_DELIVERED:
				k->state = S_GONE;
				total_delivered++;
				break;
			case R_REJECTING:
				k->state = S_MAYBE_REJECTED;
				break;
			case R_REJECTED:
				k->state = S_REJECTED;
				total_rejected++;
				break;
			}
		}
		for (int r = 0; r < nrep; r++)
			if (rep[r].kind == R_APPENDED && rep[r].seq > high_water)
				high_water = rep[r].seq;

		struct tu_store t;
		assert_int_equal(tu_store_open(&t, dir, 0), 0);
		assert_false(t.flags & STORE_OPENED_RECOVERED);
		struct seen s = {.k = known, .nk = nk, .all = all};
		for (int64_t q = 0; q < nk; q++)
			known[q].seen = known[q].in_rejected = 0;
		assert_true(store_outbox_peek(t.s, MAX_REPORT, check_event, &s) >= 0);
		assert_true(store_rejected_each(t.s, check_rejected, &s) >= 0);
		assert_int_equal(s.dup, 0);
		assert_int_equal(s.mismatched, 0);
		assert_int_equal(s.resurrected, 0);
		assert_int_equal(s.stranger, 0);
		int missing = 0, rejected_missing = 0;
		for (int64_t q = 0; q < nk; q++) {
			struct known *k = &known[q];
			if (k->state == S_PRESENT && !k->seen)
				missing++;
			if (k->state == S_REJECTED && !k->in_rejected)
				rejected_missing++;
			/* Whatever was in flight is now one or the other. */
			if (k->seen)
				k->state = S_PRESENT;
			else if (k->state == S_MAYBE_GONE || k->state == S_MAYBE_REJECTED)
				k->state = k->in_rejected ? S_REJECTED : S_GONE;
		}
		if (missing)
			fprintf(stderr, "# round %d: %d confirmed events missing\n", round,
			        missing);
		assert_int_equal(missing, 0);
		assert_int_equal(rejected_missing, 0);
		int64_t q;
		assert_int_equal(store_quarantine_count(t.s, &q), 0);
		assert_int_equal(q, 0);
		if (s.prev > high_water)
			high_water = s.prev;
		/* Deliver about three in four of what is there (cutting groups
		 * apart); the rest is carried into the next round. */
		assert_true(s.n <= MAX_REPORT);
		size_t nd = 0;
		for (int e = 0; e < s.n; e++) {
			if (rand() % 4 == 0) {
				carried++;
				continue;
			}
			all[nd++] = all[e];
			known[all[e]].state = S_GONE;
		}
		assert_int_equal(store_outbox_delivered(t.s, all, nd), 0);
		tu_store_close(&t);
	}
	printf("# %d kills, %ld confirmed events (%ld delivered and %ld rejected by the child), "
	       "%ld carried over a kill, all present once\n",
	       kills, total_confirmed, total_delivered, total_rejected, carried);
	assert_true(total_confirmed > 0);
	free(rep);
	free(all);
	free(known);
	tu_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kill9_loop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
