#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/loop.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

struct rec {
	int order[16];
	int n;
	int count;
	struct loop_timer *other;
};

static int64_t note_timer(struct loop *l, void *arg)
{
	(void)l;
	struct rec *r = ((struct rec **)arg)[0];
	int id = (int)(intptr_t)((void **)arg)[1];
	r->order[r->n++] = id;
	return -1;
}

static void test_timers_fire_in_order(void **state)
{
	(void)state;
	struct loop *l;
	assert_int_equal(loop_open(&l), 0);
	struct rec r = {0};
	int64_t start = loop_now_ms();
	void *a30[2] = {&r, (void *)(intptr_t)30}, *a10[2] = {&r, (void *)(intptr_t)10},
	     *a20[2] = {&r, (void *)(intptr_t)20};
	assert_non_null(loop_timer_add(l, 30, note_timer, a30));
	assert_non_null(loop_timer_add(l, 10, note_timer, a10));
	assert_non_null(loop_timer_add(l, 20, note_timer, a20));
	while (r.n < 3)
		assert_true(loop_run_once(l, 1000) >= 0);
	assert_true(loop_now_ms() - start >= 30);
	assert_int_equal(r.order[0], 10);
	assert_int_equal(r.order[1], 20);
	assert_int_equal(r.order[2], 30);
	loop_close(l);
}

static int64_t repeat_three(struct loop *l, void *arg)
{
	(void)l;
	struct rec *r = arg;
	return ++r->count < 3 ? 5 : -1;
}

static int64_t cancel_other(struct loop *l, void *arg)
{
	struct rec *r = arg;
	loop_timer_cancel(l, r->other);
	r->other = NULL;
	r->count++;
	return -1;
}

static int64_t never(struct loop *l, void *arg)
{
	(void)l;
	(void)arg;
	fail_msg("a cancelled timer ran");
	return -1;
}

static int64_t cancel_self(struct loop *l, void *arg)
{
	struct rec *r = arg;
	r->count++;
	loop_timer_cancel(l, r->other);
	return 10; /* ignored: it was cancelled */
}

static void test_repeat_and_cancel(void **state)
{
	(void)state;
	struct loop *l;
	assert_int_equal(loop_open(&l), 0);
	struct rec r = {0};
	loop_timer_add(l, 0, repeat_three, &r);
	for (int i = 0; i < 50 && r.count < 3; i++)
		loop_run_once(l, 100);
	assert_int_equal(r.count, 3);

	/* both due in the same pass: the first cancels the second */
	struct rec c = {0};
	loop_timer_add(l, 1, cancel_other, &c);
	c.other = loop_timer_add(l, 1, never, NULL);
	usleep(3000);
	loop_run_once(l, 0);
	assert_int_equal(c.count, 1);

	struct rec s = {0};
	s.other = loop_timer_add(l, 0, cancel_self, &s);
	loop_run_once(l, 0);
	loop_run_once(l, 30);
	assert_int_equal(s.count, 1);

	/* disarm and re-arm */
	struct rec d = {0};
	struct loop_timer *t = loop_timer_add(l, 0, repeat_three, &d);
	loop_timer_set(l, t, -1);
	loop_run_once(l, 10);
	assert_int_equal(d.count, 0);
	loop_timer_set(l, t, 0);
	loop_run_once(l, 10);
	assert_int_equal(d.count, 1);
	loop_close(l); /* frees the pending one */
}

static int64_t busy_timer(struct loop *l, void *arg)
{
	(void)l;
	(*(int *)arg)++;
	return 0; /* again at once */
}

static void on_pipe(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)l;
	char buf[16];
	assert_true(events & LOOP_READ);
	assert_true(read(fd, buf, sizeof(buf)) > 0);
	(*(int *)arg)++;
}

static void test_fds_not_starved(void **state)
{
	(void)state;
	struct loop *l;
	assert_int_equal(loop_open(&l), 0);
	int p[2];
	assert_int_equal(pipe(p), 0);
	int reads = 0, ticks = 0;
	assert_int_equal(loop_fd_add(l, p[0], LOOP_READ, on_pipe, &reads), 0);
	assert_int_equal(loop_fd_add(l, p[0], LOOP_READ, on_pipe, &reads), -EEXIST);
	struct loop_timer *t = loop_timer_add(l, 0, busy_timer, &ticks);
	assert_int_equal(write(p[1], "x", 1), 1);
	for (int i = 0; i < 3; i++)
		loop_run_once(l, 0);
	assert_int_equal(reads, 1);
	assert_true(ticks >= 2 && ticks <= 3); /* once per iteration, not forever */
	loop_timer_cancel(l, t);
	assert_int_equal(loop_fd_del(l, p[0]), 0);
	assert_int_equal(loop_fd_del(l, p[0]), -ENOENT);
	assert_int_equal(write(p[1], "y", 1), 1);
	assert_int_equal(loop_run_once(l, 10), 0);
	assert_int_equal(reads, 1);
	close(p[0]);
	close(p[1]);
	loop_close(l);
}

static void on_signal(struct loop *l, int signo, void *arg)
{
	assert_int_equal(signo, SIGUSR1);
	(*(int *)arg)++;
	loop_stop(l);
}

static void hook(struct loop *l, void *arg)
{
	(void)l;
	(*(int *)arg)++;
}

static void test_signal_and_sleep(void **state)
{
	(void)state;
	struct loop *l;
	assert_int_equal(loop_open(&l), 0);
	int got = 0, hooks = 0;
	assert_int_equal(loop_signal_add(l, SIGUSR1, on_signal, &got), 0);
	loop_set_before_sleep(l, hook, &hooks);
	/* nothing to do: one wakeup after the timeout, no spinning */
	uint64_t w = loop_wakeups(l);
	int64_t start = loop_now_ms();
	assert_int_equal(loop_run_once(l, 50), 0);
	assert_true(loop_now_ms() - start >= 45);
	assert_int_equal(loop_wakeups(l) - w, 1);
	kill(getpid(), SIGUSR1);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(got, 1);
	assert_true(hooks >= 2);
	loop_close(l);
}

/* ---- timer slack ---- */

/* Upper tolerance for "at the deadline" under ASan or a loaded 2-core box:
 * lateness the loop did not choose. */
#define LATE_MS 150

struct ran {
	int64_t at[8];
	uint64_t wake[8]; /* loop_wakeups when it ran */
	int n;
	int64_t again; /* returned: re-arm delay, or -1 */
	struct loop_timer *timer;
};

static int64_t mark(struct loop *l, void *arg)
{
	struct ran *r = arg;
	r->at[r->n] = loop_now_ms();
	r->wake[r->n] = loop_wakeups(l);
	r->n++;
	return r->n < 8 ? r->again : -1;
}

/* A kernel timer as an fd source: stands for the GPS socket. */
static int fd_in(int ms)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	assert_true(fd >= 0);
	struct itimerspec its = {.it_value = {ms / 1000, (long)(ms % 1000) * 1000000L}};
	assert_int_equal(timerfd_settime(fd, 0, &its, NULL), 0);
	return fd;
}

static void on_tfd(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)events;
	uint64_t n;
	struct ran *r = arg;
	assert_int_equal(read(fd, &n, sizeof(n)), (ssize_t)sizeof(n));
	r->at[r->n] = loop_now_ms();
	r->wake[r->n] = loop_wakeups(l);
	r->n++;
}

static void run_until(struct loop *l, const int *n, int want, int64_t max_ms)
{
	int64_t end = loop_now_ms() + max_ms;
	while (*n < want && loop_now_ms() < end)
		assert_true(loop_run_once(l, (int)(end - loop_now_ms())) >= 0);
	assert_true(*n >= want);
}

/* Due at 50 ms with 400 ms of slack, an fd ready at 150 ms: the timer runs
 * in the fd's wakeup (one wakeup for both), not at 50 ms and not later. */
static void test_slack_rides_fd_wakeup(void **state)
{
	(void)state;
	struct loop *l;
	assert_int_equal(loop_open(&l), 0);
	struct ran t = {.again = -1}, f = {0};
	int64_t start = loop_now_ms();
	struct loop_timer *tm = loop_timer_add(l, 50, mark, &t);
	loop_timer_set_slack(tm, 400);
	int fd = fd_in(150);
	assert_int_equal(loop_fd_add(l, fd, LOOP_READ, on_tfd, &f), 0);
	uint64_t w0 = loop_wakeups(l);
	run_until(l, &t.n, 1, 2000);
	assert_int_equal(f.n, 1);
	assert_int_equal(t.wake[0], f.wake[0]);    /* the same iteration */
	assert_int_equal(loop_wakeups(l) - w0, 1); /* and the only one */
	assert_true(t.at[0] - start >= 150);
	assert_true(t.at[0] - start < 450);
	loop_fd_del(l, fd);
	close(fd);
	loop_close(l);
}

/* Nothing else wakes the loop: the timer runs at due + slack, never at due
 * and never much later. */
static void test_slack_alone_runs_at_deadline(void **state)
{
	(void)state;
	struct loop *l;
	assert_int_equal(loop_open(&l), 0);
	struct ran t = {.again = -1};
	int64_t start = loop_now_ms();
	struct loop_timer *tm = loop_timer_add(l, 100, mark, &t);
	loop_timer_set_slack(tm, 200);
	uint64_t w0 = loop_wakeups(l);
	run_until(l, &t.n, 1, 2000);
	assert_true(t.at[0] - start >= 300);
	assert_true(t.at[0] - start <= 300 + LATE_MS);
	assert_int_equal(loop_wakeups(l) - w0, 1);
	loop_close(l);
}

/* Two slack timers whose windows overlap share one wakeup (at the first
 * one's deadline, when the second is due already); a timer due later than
 * that wakeup waits for its own time. */
static void test_slack_timers_coalesce(void **state)
{
	(void)state;
	struct loop *l;
	assert_int_equal(loop_open(&l), 0);
	struct ran a = {.again = -1}, b = {.again = -1}, c = {.again = -1};
	int64_t start = loop_now_ms();
	struct loop_timer *ta = loop_timer_add(l, 100, mark, &a);
	struct loop_timer *tb = loop_timer_add(l, 200, mark, &b);
	loop_timer_set_slack(ta, 300);
	loop_timer_set_slack(tb, 300);
	assert_non_null(loop_timer_add(l, 600, mark, &c));
	uint64_t w0 = loop_wakeups(l);
	run_until(l, &b.n, 1, 2000);
	assert_int_equal(a.n, 1);
	assert_int_equal(a.wake[0], b.wake[0]);
	assert_int_equal(loop_wakeups(l) - w0, 1);
	assert_true(a.at[0] - start >= 400 && a.at[0] - start <= 400 + LATE_MS);
	assert_int_equal(c.n, 0);
	run_until(l, &c.n, 1, 2000);
	assert_true(c.at[0] - start >= 600);
	assert_int_equal(loop_wakeups(l) - w0, 2);
	loop_close(l);
}

/* A timer without slack is never held back by another one's slack, and
 * takes along a slack timer that is due by then. */
static void test_slack_does_not_delay_others(void **state)
{
	(void)state;
	struct loop *l;
	assert_int_equal(loop_open(&l), 0);
	struct ran exact = {.again = -1}, lazy = {.again = -1};
	int64_t start = loop_now_ms();
	struct loop_timer *tl = loop_timer_add(l, 10, mark, &lazy);
	loop_timer_set_slack(tl, 5000);
	assert_non_null(loop_timer_add(l, 80, mark, &exact));
	run_until(l, &exact.n, 1, 2000);
	assert_true(exact.at[0] - start >= 80 && exact.at[0] - start <= 80 + LATE_MS);
	assert_int_equal(lazy.n, 1);
	assert_int_equal(lazy.wake[0], exact.wake[0]);
	assert_true(lazy.at[0] - start >= 10);
	loop_close(l);
}

/* The slack stays with a periodic timer: every run lands within
 * [due, due + slack] of the one before (nothing else wakes the loop, so at
 * the deadline), and each costs one wakeup. */
static void test_slack_kept_when_rearmed(void **state)
{
	(void)state;
	struct loop *l;
	assert_int_equal(loop_open(&l), 0);
	struct ran t = {.again = 100};
	int64_t start = loop_now_ms();
	struct loop_timer *tm = loop_timer_add(l, 100, mark, &t);
	loop_timer_set_slack(tm, 50);
	uint64_t w0 = loop_wakeups(l);
	run_until(l, &t.n, 3, 3000);
	int64_t prev = start;
	for (int i = 0; i < 3; i++) {
		assert_true(t.at[i] - prev >= 150);
		assert_true(t.at[i] - prev <= 150 + LATE_MS);
		assert_int_equal(t.wake[i] - w0, (uint64_t)i + 1);
		prev = t.at[i];
	}
	loop_timer_cancel(l, tm);
	loop_close(l);
}

static int64_t in_phase(struct loop *l, void *arg)
{
	struct ran *r = arg;
	r->at[r->n] = loop_now_ms();
	r->wake[r->n] = loop_wakeups(l);
	r->n++;
	if (r->n >= 3)
		return -1;
	/* the next run due a period (100 ms) after this one was due */
	return loop_timer_due(r->timer) + 100 - loop_now_ms();
}

/* A periodic timer that ran early (in an fd's wakeup, inside its slack)
 * keeps its phase with loop_timer_due: its later runs stay on its own
 * deadlines (every 100 ms from the first), not 100 ms after the early run. */
static void test_slack_keeps_phase(void **state)
{
	(void)state;
	struct loop *l;
	assert_int_equal(loop_open(&l), 0);
	struct ran t = {0}, f = {0};
	int64_t start = loop_now_ms();
	t.timer = loop_timer_add(l, 50, in_phase, &t); /* due 50, deadline 100 */
	loop_timer_set_slack(t.timer, 50);
	int fd = fd_in(60);
	assert_int_equal(loop_fd_add(l, fd, LOOP_READ, on_tfd, &f), 0);
	run_until(l, &t.n, 3, 3000);
	assert_int_equal(t.wake[0], f.wake[0]); /* the first run rode the fd */
	assert_true(t.at[0] - start >= 60 && t.at[0] - start < 100);
	/* then on its deadlines: 200 and 300 ms (not 160 and 260) */
	assert_true(t.at[1] - start >= 200 && t.at[1] - start <= 200 + LATE_MS);
	assert_true(t.at[2] - start >= 300 && t.at[2] - start <= 300 + LATE_MS);
	loop_fd_del(l, fd);
	close(fd);
	loop_close(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_timers_fire_in_order),
	    cmocka_unit_test(test_repeat_and_cancel),
	    cmocka_unit_test(test_fds_not_starved),
	    cmocka_unit_test(test_signal_and_sleep),
	    cmocka_unit_test(test_slack_rides_fd_wakeup),
	    cmocka_unit_test(test_slack_alone_runs_at_deadline),
	    cmocka_unit_test(test_slack_timers_coalesce),
	    cmocka_unit_test(test_slack_does_not_delay_others),
	    cmocka_unit_test(test_slack_kept_when_rearmed),
	    cmocka_unit_test(test_slack_keeps_phase),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
