/* The event loop: one per process, epoll underneath (Redis ae.h and hostap
 * eloop.h are the models). Modules register their own file descriptors,
 * timers and signals; main wires them together and calls loop_run. The
 * loop sleeps in epoll_wait until an fd is ready, a timer is due or a
 * signal arrives: nothing polls.
 *
 * Callbacks may add and remove any registration, including their own.
 * Returns: 0 or a negative errno. */
#ifndef ESS_LOOP_H
#define ESS_LOOP_H

#include <stdint.h>

struct loop;
struct loop_timer;

enum { LOOP_READ = 1, LOOP_WRITE = 2, LOOP_ERROR = 4 };

typedef void (*loop_fd_fn)(struct loop *l, int fd, unsigned events, void *arg);
/* Returns the delay in ms until it runs again, or < 0 to end the timer
 * (which is then freed: the handle must not be used again). */
typedef int64_t (*loop_timer_fn)(struct loop *l, void *arg);
typedef void (*loop_signal_fn)(struct loop *l, int signo, void *arg);
typedef void (*loop_hook_fn)(struct loop *l, void *arg);

int loop_open(struct loop **out);
/* Frees every timer; does not close registered fds (their owners do). */
void loop_close(struct loop *l);

/* events: LOOP_READ | LOOP_WRITE. -EEXIST if fd is registered already. */
int loop_fd_add(struct loop *l, int fd, unsigned events, loop_fd_fn cb, void *arg);
int loop_fd_mod(struct loop *l, int fd, unsigned events);
int loop_fd_del(struct loop *l, int fd);

/* Runs cb after delay_ms (0: on the next iteration). NULL on ENOMEM. The
 * handle stays valid until the timer ends or is cancelled. */
struct loop_timer *loop_timer_add(struct loop *l, int64_t delay_ms, loop_timer_fn cb, void *arg);
/* Moves a pending timer; delay_ms < 0 disarms it without freeing it. */
void loop_timer_set(struct loop *l, struct loop_timer *t, int64_t delay_ms);
void loop_timer_cancel(struct loop *l, struct loop_timer *t); /* frees it; NULL is fine */
/* Lets t run up to slack_ms after it is due (never before), so that it
 * shares a wakeup with whatever else wakes the loop in that window (a GPS
 * report, another timer) instead of costing one of its own: the loop
 * sleeps until the earliest due + slack and then runs every timer that is
 * due. Kept across re-arms; 0 (the default) runs it as soon as it is due.
 * A periodic job with a bound arms itself at bound - slack. */
void loop_timer_set_slack(struct loop_timer *t, int64_t slack_ms);
/* The time t was due (monotonic ms; in its callback: the due time that made
 * it run). A periodic job with slack returns due + period - now to keep its
 * phase when it ran early, so that jobs whose periods are multiples of one
 * another keep meeting in the same wakeups. */
int64_t loop_timer_due(const struct loop_timer *t);
/* The slack periodic housekeeping uses (flushes, uploads, heartbeats,
 * polls of sysfs): longer than the 1 s between a 1 Hz receiver's reports,
 * so that with GPS running such a job costs no wakeup of its own. */
#define LOOP_PERIODIC_SLACK_MS 2000
/* The slack of cheap local checks (nothing to send, nothing to write), so
 * that, idle, they meet a wakeup essd has anyway: the long poll's answers
 * (every 25 s) and libcurl's timer with each (the power poll, 10 s when
 * this was chosen, is now a 60 s backstop). */
#define LOOP_IDLE_SLACK_MS 10000

/* Delivers signo through a signalfd, outside signal-handler context. The
 * signal is blocked for the whole process (call before other threads
 * exist — there are none). */
int loop_signal_add(struct loop *l, int signo, loop_signal_fn cb, void *arg);

/* Called each time the loop is about to sleep (e.g. to flush work). */
void loop_set_before_sleep(struct loop *l, loop_hook_fn cb, void *arg);

/* Runs until loop_stop. Returns 0, or a negative errno if epoll fails. */
int loop_run(struct loop *l);
/* One iteration, sleeping at most timeout_ms (-1: until something happens).
 * Returns the number of callbacks run, or a negative errno. For tests. */
int loop_run_once(struct loop *l, int timeout_ms);
void loop_stop(struct loop *l);

/* Monotonic milliseconds, as the loop's timers see them. */
int64_t loop_now_ms(void);
/* Wall-clock (CLOCK_REALTIME) unix milliseconds: for timestamps, never for
 * timers (it jumps when the clock is set). */
int64_t loop_wall_ms(void);
/* Iterations that woke up (for the idle-wakeup figures). */
uint64_t loop_wakeups(const struct loop *l);

#endif
