/* Issue 5, network chaos at the daemon level: the real essd talks to the
 * real reference server through the link-emulating proxy (tests/tools/
 * linkproxy); responders' actions are created all along while the network
 * misbehaves, one scenario after the other:
 *   server flapping (SIGKILLed, restarted), answers delayed (within and
 *   beyond essd's request timeout), answers lost after the server applied
 *   the request, bursts of 500 / 503 / 429 with Retry-After, truncated
 *   answers, a captive portal's HTML page with status 200, the server's
 *   clock ahead and behind, a weak 3G link (300 +- 50 ms, 384 kbit/s up),
 *   blackouts, connections reset mid-upload.
 * After each scenario the faults are cleared, the outbox must drain, and the
 * server's record is compared with every action tried so far (the ledger,
 * tests/lib/essdenv.h): every acknowledged action accepted exactly once, in
 * seq order, nothing invented; essd never died.
 *
 * Bounded in time. The short form (make check) scales the scenarios down:
 * blackouts of 1.5 s up / 6 s down (the 30 s / 120 s at 1/20th),
 * two cycles. The long form (make soak): ESS_CHAOS_NET_SCALE multiplies
 * every scenario's length, ESS_CHAOS_BLACKOUT "UP:DOWN:CYCLES" in seconds
 * (soak: 30:120:3); the short form runs at scale 0.6. One line per scenario for the soak table:
 *   # net: NAME, N actions, lost L, doubled D, invented I, crashes C */
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

#define INCIDENT "INC-NET-1"

static struct essenv env;
static struct ee_ledger ledger;
static struct ee_result last; /* the cumulative result after the previous scenario */
static double scale = 0.6;    /* the short form; ESS_CHAOS_NET_SCALE */
static int crashes;

static int teardown(void **state)
{
	(void)state;
	ee_close(&env);
	ee_ledger_free(&ledger);
	return 0;
}

static int ms(double base)
{
	return (int)(base * scale);
}

/* essd still running (not ended by itself)? */
static int essd_alive(void)
{
	siginfo_t si = {0};
	if (env.essd <= 0)
		return 0;
	if (waitid(P_PID, (id_t)env.essd, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
	    si.si_pid == env.essd)
		return 0;
	return 1;
}

/* Actions at a responder's pace for dur_ms; every tick_ms (0: never) calls
 * tick(n) with the tick count. */
static void drive(int dur_ms, int tick_ms, void (*tick)(int n))
{
	int64_t end = tu_now_ms() + dur_ms, next = tu_now_ms() + tick_ms;
	int n = 0;
	while (tu_now_ms() < end) {
		const char *inc = random() % 6 ? INCIDENT : NULL;
		if (ee_act(&env, &ledger, inc, 4000, NULL, 0) < 0)
			usleep(20000);
		usleep((useconds_t)(50000 + random() % 100000));
		if (tick && tu_now_ms() >= next) {
			tick(n++);
			next = tu_now_ms() + tick_ms;
		}
	}
}

static const char *const shots[] = {"fail_next", "lose_next", "truncate_next", "portal_next",
                                    "delay_next"};

/* The one-shot fault switches not used up yet (0: all done). */
static int shots_left(void)
{
	long code;
	int left = 0;
	cJSON *f = ee_admin(&env, "GET", "/admin/faults", NULL, &code);
	for (size_t i = 0; i < sizeof(shots) / sizeof(shots[0]); i++) {
		const cJSON *v = cJSON_GetObjectItem(f, shots[i]);
		left += cJSON_IsNumber(v) ? (int)v->valuedouble : 1;
	}
	cJSON_Delete(f);
	return left;
}

/* Actions for at least min_ms, on until the faults set are used up (essd
 * backs off between failures), at most 60 s. */
static void drive_shots(int min_ms)
{
	drive(min_ms, 0, NULL);
	int64_t until = tu_now_ms() + 60000;
	while (shots_left() > 0 && tu_now_ms() < until)
		drive(500, 0, NULL);
}

/* Clears every fault, lets the outbox drain, compares with the server's
 * record, prints the scenario's row (differences since the last one). */
static void settle(const char *name)
{
	/* every one-shot fault set was used up: the scenario did happen */
	if (shots_left() != 0)
		fail_msg("%s: the faults set were not all used up", name);
	assert_int_equal(ee_faults(&env, NULL), 0);
	assert_int_equal(ee_proxy_cmd(&env, "set delay 0 jitter 0 up 0 down 0", NULL, 0), 0);
	assert_int_equal(ee_proxy_cmd(&env, "blackout off", NULL, 0), 0);
	if (!essd_alive()) {
		crashes++;
		print_message("# %s: essd died; restarted\n", name);
		int st;
		waitpid(env.essd, &st, 0);
		env.essd = 0;
		assert_int_equal(ee_essd_start(&env), 0);
	}
	/* after a long outage essd's backoff (capped at 5 min) decides when it
	 * tries again: wait that long before calling anything lost */
	int64_t t_settle = tu_now_ms();
	int drained = ee_wait_drained(&env, 330000);
	if (drained < 0)
		print_message("# %s: the outbox did not drain (%g events left)\n", name,
		              ee_status_num(&env, "queue", "events"));
	else
		print_message("# %s: drained %.1f s after the faults ended\n", name,
		              (tu_now_ms() - t_settle) / 1000.0);
	struct ee_result r;
	assert_int_equal(ee_ledger_check(&env, &ledger, &r), 0);
	print_message("# net: %s, %zu actions, lost %zu, doubled %zu, invented %zu, "
	              "out_of_order %zu, crashes %d\n",
	              name, r.tried - last.tried, r.lost - last.lost, r.doubled - last.doubled,
	              r.invented - last.invented, r.out_of_order - last.out_of_order, crashes);
	assert_int_equal(drained, 0);
	assert_true(r.acked > last.acked); /* the scenario did queue actions */
	assert_int_equal(r.lost, 0);
	assert_int_equal(r.doubled, 0);
	assert_int_equal(r.invented, 0);
	assert_int_equal(r.out_of_order, 0);
	assert_int_equal(crashes, 0);
	last = r;
	crashes = 0;
}

static void flap_tick(int n)
{
	/* down for one tick, up for the next */
	if (n % 2 == 0)
		tp_stop(&env.srv, SIGKILL, 2000);
	else
		assert_int_equal(ee_srv_start(&env), 0);
}

static void reset_tick(int n)
{
	char cmd[64];
	if (n % 4 == 3) {
		ee_proxy_cmd(&env, "reset all", NULL, 0);
		return;
	}
	/* the next connection to have sent this many bytes upstream is reset
	 * there: inside headers, inside a body, right after it */
	snprintf(cmd, sizeof(cmd), "reset after-bytes %ld", 200 + random() % 3000);
	ee_proxy_cmd(&env, cmd, NULL, 0);
}

static int64_t blk_up_ms = 1500, blk_down_ms = 6000;
static int blk_cycles = 2;

static void blackout_phase(void)
{
	for (int c = 0; c < blk_cycles; c++) {
		drive((int)blk_up_ms, 0, NULL);
		assert_int_equal(ee_proxy_cmd(&env, "blackout on", NULL, 0), 0);
		drive((int)blk_down_ms, 0, NULL);
		assert_int_equal(ee_proxy_cmd(&env, "blackout off", NULL, 0), 0);
	}
}

static void test_network_chaos(void **state)
{
	(void)state;
	const char *sc = getenv("ESS_CHAOS_NET_SCALE");
	const char *bk = getenv("ESS_CHAOS_BLACKOUT");
	const char *sd = getenv("ESS_CHAOS_SEED");
	unsigned seed = sd ? (unsigned)strtoul(sd, NULL, 10) : (unsigned)tu_now_ms();
	if (sc && atof(sc) > 0)
		scale = atof(sc);
	if (bk) {
		double up, down;
		int cycles;
		assert_int_equal(sscanf(bk, "%lf:%lf:%d", &up, &down, &cycles), 3);
		blk_up_ms = (int64_t)(up * 1000);
		blk_down_ms = (int64_t)(down * 1000);
		blk_cycles = cycles;
	}
	srandom(seed);
	print_message("# seed %u, scale %g, blackouts %lld ms up / %lld ms down x %d\n", seed,
	              scale, (long long)blk_up_ms, (long long)blk_down_ms, blk_cycles);

	ee_ledger_init(&ledger, "net");
	assert_int_equal(ee_open(&env, "chaosnet"), 0);
	if (ee_srv_start(&env) == -ENOENT)
		fail_msg("no reference server program in %s", env.build);
	assert_int_equal(ee_proxy_start(&env, NULL), 0);
	assert_int_equal(ee_write_conf(&env, NULL), 0);
	assert_int_equal(ee_provision(&env), 0);
	assert_int_equal(ee_essd_start(&env), 0);
	assert_int_equal(ee_incident(&env, INCIDENT), 0);

	/* the server flaps: killed and back every 1.5 s */
	drive(ms(6000), ms(1500), flap_tick);
	if (!env.srv)
		assert_int_equal(ee_srv_start(&env), 0);
	assert_true(env.srv_starts >= 3);
	settle("server flapping");

	/* answers held 2.5 s (inside the 6 s request timeout), then two held
	 * 8 s: essd gives up on them although the server applied them */
	assert_int_equal(ee_faults(&env, "{\"delay_ms\":2500,\"delay_next\":0}"), 0);
	drive(ms(5000), 0, NULL);
	assert_int_equal(ee_faults(&env, "{\"delay_ms\":8000,\"delay_next\":2}"), 0);
	drive_shots(ms(5000));
	settle("answers delayed");

	assert_int_equal(ee_faults(&env, "{\"lose_next\":6}"), 0);
	drive_shots(ms(5000));
	settle("answers lost after apply");

	assert_int_equal(ee_faults(&env, "{\"fail_next\":6,\"fail_status\":500}"), 0);
	drive_shots(ms(2500));
	assert_int_equal(
	    ee_faults(&env, "{\"fail_next\":6,\"fail_status\":503,\"retry_after_s\":1}"), 0);
	drive_shots(ms(2500));
	assert_int_equal(
	    ee_faults(&env, "{\"fail_next\":6,\"fail_status\":429,\"retry_after_s\":2}"), 0);
	drive_shots(ms(3000));
	settle("500/503/429 bursts");

	assert_int_equal(ee_faults(&env, "{\"truncate_next\":6}"), 0);
	drive_shots(ms(5000));
	settle("truncated answers");

	assert_int_equal(ee_faults(&env, "{\"portal_next\":6}"), 0);
	drive_shots(ms(5000));
	settle("captive portal 200 HTML");

	assert_int_equal(ee_faults(&env, "{\"clock_shift_s\":900}"), 0);
	drive(ms(3000), 0, NULL);
	assert_int_equal(ee_faults(&env, "{\"clock_shift_s\":-900}"), 0);
	drive(ms(3000), 0, NULL);
	settle("server clock +-15 min");

	assert_int_equal(ee_proxy_cmd(&env, "set delay 300 jitter 50 up 384 down 1000", NULL, 0),
	                 0);
	drive(ms(8000), 0, NULL);
	settle("weak 3G 300+-50ms 384k up");

	blackout_phase();
	settle("blackouts");

	char stats[512];
	drive(ms(8000), 300, reset_tick);
	assert_int_equal(ee_proxy_cmd(&env, "stats", stats, sizeof(stats)), 0);
	const char *rs = strstr(stats, "resets=");
	assert_non_null(rs);
	print_message("# proxy: %s\n", stats);
	assert_true(atoi(rs + 7) >= 5); /* connections were cut */
	settle("resets mid-upload");
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_network_chaos, teardown),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
