/* kill -9 at random moments: a child appends events (and positions and
 * incidents) and reports each event the store confirmed; after every kill
 * the parent reopens the store and checks that every confirmed event is
 * there, intact, once, and that seq never goes back. */
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
#define MAX_REPORT 100000

struct report {
	int64_t seq;
	int32_t child;
	int32_t i;
};

static const unsigned char SIG[64];

static void child_run(const char *dir, int fd, int child)
{
	struct tu_store t;
	if (tu_store_open(&t, dir, 1) < 0)
		_exit(3);
	for (int i = 0;; i++) {
		char body[128];
		snprintf(body, sizeof(body), "{\"type\":\"note\",\"text\":\"crash-%d-%d\"}", child,
		         i);
		struct report r = {.child = child, .i = i};
		if (store_outbox_append(t.s, STORE_EVENT_NOTE, body, strlen(body), &r.seq, NULL) <
		    0)
			_exit(4);
		/* Only now is the event confirmed: tell the parent. */
		if (write(fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
			_exit(5);
		struct store_fix f = {.t_ms = 1800000000000LL + (int64_t)child * 100000 + i,
		                      .lat_e7 = 137000000 + i,
		                      .lon_e7 = 1005000000 - i,
		                      .accuracy_dm = 50,
		                      .speed_cm_s = 100,
		                      .heading_cdeg = 9000,
		                      .mode = 3};
		store_pos_append(t.s, &f); /* fixes may be lost; the store must stay sound */
		if (i % 7 == 0) {
			char id[32];
			snprintf(id, sizeof(id), "c%d", i % 50);
			store_incident_put(t.s, id, (int64_t)child * 100000 + i + 1,
			                   STORE_DISPATCH_ASSIGNED, 1, body, strlen(body), SIG);
		}
		if (i % 64 == 63)
			store_pos_flush(t.s);
	}
}

struct seen {
	int64_t max_seq;
	int64_t prev;
	int n;
	int dup;
	struct report *rep;
	int nrep;
	int found;
	int mismatched;
	int64_t *all; /* every seq seen, to deliver them afterwards */
};

static int check_event(void *arg, const struct store_event *ev)
{
	struct seen *s = arg;
	if (ev->seq <= s->prev)
		s->dup++;
	s->prev = ev->seq;
	if (s->n < MAX_REPORT)
		s->all[s->n] = ev->seq;
	if (ev->seq > s->max_seq)
		s->max_seq = ev->seq;
	s->n++;
	for (int k = 0; k < s->nrep; k++) {
		if (s->rep[k].seq != ev->seq)
			continue;
		char want[128];
		snprintf(want, sizeof(want), "{\"type\":\"note\",\"text\":\"crash-%d-%d\"}",
		         s->rep[k].child, s->rep[k].i);
		if (strcmp(want, (const char *)ev->body) != 0)
			s->mismatched++;
		s->found++;
		break;
	}
	return 0;
}

static void test_kill9_loop(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("crash");
	struct report *rep = calloc(MAX_REPORT, sizeof(*rep));
	int64_t *all = calloc(MAX_REPORT, sizeof(*all));
	int64_t high_water = 0;
	long total_confirmed = 0;
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
		int nrep = 0;
		ssize_t n;
		size_t partial = 0;
		while ((n = read(pfd[0], (char *)rep + partial,
		                 (MAX_REPORT - 1) * sizeof(*rep) - partial)) > 0)
			partial += (size_t)n;
		nrep = (int)(partial / sizeof(*rep));
		close(pfd[0]);
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

		struct tu_store t;
		assert_int_equal(tu_store_open(&t, dir, 0), 0);
		assert_false(t.flags & STORE_OPENED_RECOVERED);
		struct seen s = {.prev = 0, .rep = rep, .nrep = nrep, .all = all};
		assert_true(store_outbox_peek(t.s, 1000000, check_event, &s) >= 0);
		assert_int_equal(s.dup, 0);
		assert_int_equal(s.mismatched, 0);
		if (s.found != nrep)
			fprintf(stderr, "# round %d: %d of %d confirmed events found\n", round,
			        s.found, nrep);
		assert_int_equal(s.found, nrep);
		for (int k = 0; k < nrep; k++)
			assert_true(rep[k].seq > high_water); /* seq never goes back */
		int64_t q;
		assert_int_equal(store_quarantine_count(t.s, &q), 0);
		assert_int_equal(q, 0);
		if (s.max_seq > high_water)
			high_water = s.max_seq;
		total_confirmed += nrep;
		/* Deliver everything (confirmed or merely committed) so the next
		 * round starts from an empty queue. */
		assert_true(s.n <= MAX_REPORT);
		assert_int_equal(store_outbox_delivered(t.s, all, (size_t)s.n), 0);
		tu_store_close(&t);
	}
	printf("# %d kills, %ld confirmed events, all present once\n", kills, total_confirmed);
	assert_true(total_confirmed > 0);
	free(rep);
	free(all);
	tu_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kill9_loop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
