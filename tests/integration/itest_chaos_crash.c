/* Issue 5, crash loop at the daemon level: the real essd, the real reference
 * server on loopback, responders' actions (notes and SOS) created through
 * the control socket (and every tenth round through essctl) while the sync
 * engine drains them; essd killed with SIGKILL at a random moment (during
 * its start-up, mid-action, mid-upload) and restarted, over and over.
 *
 * Invariant, against the server's record (GET /admin/devices/ID/events):
 * every action essd acknowledged was accepted exactly once, as the event
 * essd acknowledged (same event_id and seq), in seq order (SOS ahead of the rest, as the contract
 * says: seq grows within each of the two queues); an action cut off by the kill may have arrived,
 * once; nothing else arrived.
 *
 * ESS_CHAOS_KILLS sets the number of kills (default 200, `make soak` runs
 * the long form); ESS_CHAOS_SEED the random sequence (default: the clock,
 * printed). Prints one line for the soak table:
 *   # crash loop: K kills, T tried, A acked, lost L, doubled D, invented I,
 *     out_of_order O, crashes C */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/lib/essdenv.h"
#include "tests/lib/proc.h"
#include "tests/lib/testutil.h"

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define INCIDENT "INC-CRASH-1"

static struct essenv env;

static int teardown(void **state)
{
	(void)state;
	ee_close(&env);
	return 0;
}

/* A child that sleeps delay_ms and then SIGKILLs essd's process group: the
 * kill lands whatever the test process is doing at that moment. */
static pid_t killer(pid_t essd, int delay_ms)
{
	pid_t p = fork();
	if (p == 0) {
		usleep((useconds_t)delay_ms * 1000);
		kill(-essd, SIGKILL);
		_exit(0);
	}
	return p;
}

static void test_crash_loop(void **state)
{
	(void)state;
	const char *k = getenv("ESS_CHAOS_KILLS");
	const char *sd = getenv("ESS_CHAOS_SEED");
	int kills = k ? atoi(k) : 200;
	unsigned seed = sd ? (unsigned)strtoul(sd, NULL, 10) : (unsigned)tu_now_ms();
	srandom(seed);
	print_message("# seed %u, %d kills\n", seed, kills);

	assert_int_equal(ee_open(&env, "chaoscrash"), 0);
	if (ee_srv_start(&env) == -ENOENT)
		fail_msg("no reference server program in %s", env.build);
	assert_int_equal(ee_write_conf(&env, NULL), 0);
	assert_int_equal(ee_provision(&env), 0);
	assert_int_equal(ee_essd_start(&env), 0);
	assert_int_equal(ee_incident(&env, INCIDENT), 0);
	/* how long a start takes here: kills are spread over it and a window of
	 * actions after it */
	assert_int_equal(tp_stop(&env.essd, SIGTERM, 5000), 0);
	int64_t t0 = tu_now_ms();
	assert_int_equal(ee_essd_start(&env), 0);
	int start_ms = (int)(tu_now_ms() - t0);
	tp_stop(&env.essd, SIGKILL, 2000);
	int span = start_ms + 400;
	print_message("# essd starts in %d ms; kills at 0..%d ms after the exec\n", start_ms, span);

	struct ee_ledger l;
	ee_ledger_init(&l, "crash");
	int done = 0, crashes = 0, in_start = 0;
	int64_t t_start = tu_now_ms();
	for (int i = 0; i < kills; i++) {
		assert_int_equal(ee_essd_spawn(&env), 0);
		int delay = (int)(random() % span);
		pid_t kp = killer(env.essd, delay);
		assert_true(kp > 0);
		int64_t kill_at = tu_now_ms() + delay;
		if (ee_essd_wait(&env, delay + 50) < 0)
			in_start++; /* killed before it served */
		while (tu_now_ms() < kill_at + 20) {
			const char *inc = random() % 5 ? INCIDENT : NULL;
			if (i % 10 == 9)
				ee_act_essctl(&env, &l, inc);
			else
				ee_act(&env, &l, inc, 3000, NULL, 0);
			/* a responder's pace, not a flood: the outbox drains meanwhile
			 * and the server's record stays readable in the long form */
			usleep((useconds_t)(random() % 15000));
		}
		int st;
		waitpid(kp, NULL, 0);
		assert_int_equal(waitpid(env.essd, &st, 0), env.essd);
		/* anything but our SIGKILL is a crash (or a refusal to start) */
		if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL) {
			crashes++;
			print_message("# round %d: essd ended by itself (status %d)\n", i, st);
		}
		env.essd = 0;
		done++;
	}
	int64_t loop_ms = tu_now_ms() - t_start;

	/* the last start: everything acknowledged drains */
	assert_int_equal(ee_essd_start(&env), 0);
	assert_int_equal(ee_wait_drained(&env, 120000), 0);
	struct ee_result r;
	assert_int_equal(ee_ledger_check(&env, &l, &r), 0);
	char line[300];
	ee_result_str(&r, line, sizeof(line));
	print_message("# %s; %d of the kills before essd served; %lld ms\n", line, in_start,
	              (long long)loop_ms);
	print_message("# crash loop: %d kills, %zu tried, %zu acked, lost %zu, doubled %zu, "
	              "invented %zu, out_of_order %zu, crashes %d\n",
	              done, r.tried, r.acked, r.lost, r.doubled, r.invented, r.out_of_order,
	              crashes);
	assert_int_equal(done, kills);
	assert_true(r.acked > (size_t)kills / 2); /* the loop did exercise the path */
	assert_int_equal(r.lost, 0);
	assert_int_equal(r.doubled, 0);
	assert_int_equal(r.invented, 0);
	assert_int_equal(r.out_of_order, 0);
	assert_int_equal(crashes, 0);

	/* Controls: the check itself must catch what it looks for. An action
	 * acknowledged but never sent is lost; one acknowledged as another
	 * event id is invented; a server that took an event twice doubles. */
	size_t acked_i = 0;
	while (acked_i < l.n && !l.a[acked_i].seq)
		acked_i++;
	assert_true(acked_i < l.n);
	struct ee_action keep = l.a[acked_i];
	l.a[acked_i].event_id[0] = l.a[acked_i].event_id[0] == 'a' ? 'b' : 'a';
	assert_int_equal(ee_ledger_check(&env, &l, &r), 0);
	assert_int_equal(r.invented, 1);
	assert_int_equal(r.lost, 1);
	l.a[acked_i] = keep;
	l.a[l.n - 1].seq = l.last_seq + 1000; /* "acknowledged", never sent */
	snprintf(l.a[l.n - 1].event_id, sizeof(l.a[0].event_id), "%s",
	         "00000000-0000-4000-8000-000000000000");
	assert_int_equal(ee_ledger_check(&env, &l, &r), 0);
	assert_true(r.lost >= 1);
	print_message("# controls: a changed event id counts as invented and lost, an action "
	              "never sent as lost\n");
	ee_ledger_free(&l);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_crash_loop, teardown),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
