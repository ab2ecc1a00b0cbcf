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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_timers_fire_in_order),
	    cmocka_unit_test(test_repeat_and_cancel),
	    cmocka_unit_test(test_fds_not_starved),
	    cmocka_unit_test(test_signal_and_sleep),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
