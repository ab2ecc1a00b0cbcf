/* Issue 5, disk full at the daemon level: essd's store on a small tmpfs
 * (mounted by this test: it needs root, as `make check` runs here), the
 * trail fed by a fake gpsd, the real reference server. The test fills the
 * file system to the last byte while responders act:
 *   - essd keeps running and serving;
 *   - responders' actions keep being queued: the disk reserve is given back
 *     and the trail thinned for them (positions first); when nothing is
 *     left, an action is refused with the ctl error "disk_full" (never
 *     acknowledged and lost);
 *   - the user is told: status "disk_full" true, essctl status says so;
 *   - when space returns: disk_full false, the trail is recorded again, and
 *     every acknowledged action reaches the server exactly once (the ledger).
 * ESS_CHAOS_DISK_ROUNDS repeats fill / free (long form). Prints:
 *   # disk: R rounds, T tried, A acked (F while full), refused X, lost L,
 *     doubled D, invented I, crashes C */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/lib/essdenv.h"
#include "tests/lib/proc.h"
#include "tests/lib/fakegpsd.h"
#include "tests/lib/testutil.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define INCIDENT "INC-DISK-1"

static struct essenv env;
static pid_t gpsd_pid;
static char mnt[700];
static int mounted;

static int teardown(void **state)
{
	(void)state;
	fakegpsd_stop(&gpsd_pid);
	tp_stop(&env.essd, SIGKILL, 2000);
	if (mounted && umount2(mnt, MNT_DETACH) == 0)
		mounted = 0;
	ee_close(&env);
	return 0;
}

static int gen(void *arg, unsigned tick, int64_t now, char *line, size_t cap)
{
	(void)arg;
	return fakegpsd_tpv(line, cap, 3, now, 13.7466 + tick * 0.000009, 100.5393, 5.0, 10.0);
}

/* Fills the file system holding path to the last byte; returns the bytes
 * written. */
static long long fill(const char *path)
{
	static char block[64 * 1024];
	long long n = 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	assert_true(fd >= 0);
	for (size_t sz = sizeof(block); sz >= 512; sz /= 2) {
		ssize_t w;
		while ((w = write(fd, block, sz)) > 0)
			n += w;
	}
	fsync(fd);
	close(fd);
	return n;
}

static int status_flag(const char *key)
{
	return ee_status_num(&env, key, NULL) == 1;
}

static int essd_alive(void)
{
	siginfo_t si = {0};
	return env.essd > 0 &&
	       !(waitid(P_PID, (id_t)env.essd, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
	         si.si_pid == env.essd);
}

static void essctl_status(char *out, size_t cap)
{
	char cmd[1200];
	snprintf(cmd, sizeof(cmd), "%s/essctl -s %s status 2>&1", env.build, env.sock);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t n = fread(out, 1, cap - 1, p);
	out[n] = 0;
	pclose(p);
}

static void test_disk_full(void **state)
{
	(void)state;
	const char *rn = getenv("ESS_CHAOS_DISK_ROUNDS");
	int rounds = rn ? atoi(rn) : 1;
	if (rounds < 1)
		rounds = 1;
	assert_int_equal(ee_open(&env, "chaosdisk"), 0);
	snprintf(mnt, sizeof(mnt), "%s/store", env.dir);
	assert_int_equal(mkdir(mnt, 0700), 0);
	if (mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=6m,mode=0700") < 0)
		fail_msg("mount tmpfs on %s: %s (this test needs root)", mnt, strerror(errno));
	mounted = 1;
	if (ee_srv_start(&env) == -ENOENT)
		fail_msg("no reference server program in %s", env.build);
	long code;
	cJSON_Delete(
	    ee_admin(&env, "PUT", "/admin/config",
	             "{\"position_interval_s\":1,\"position_min_distance_m\":0,"
	             "\"heartbeat_interval_s\":60,\"long_poll_s\":2,\"retention_hours\":72,"
	             "\"max_batch_events\":500}",
	             &code));
	assert_int_equal(code, 200);
	assert_int_equal(ee_write_conf(&env, NULL), 0);
	assert_int_equal(ee_provision(&env), 0);
	gpsd_pid = fakegpsd_start(env.gps_port, 100, gen, NULL);
	assert_true(gpsd_pid > 0);
	assert_int_equal(ee_essd_start(&env), 0);
	assert_int_equal(ee_incident(&env, INCIDENT), 0);

	struct ee_ledger l;
	ee_ledger_init(&l, "disk");
	char filler[800], code_s[64], text[4096];
	snprintf(filler, sizeof(filler), "%s/filler", mnt);
	size_t acked_full = 0, refused = 0, other_refusal = 0;
	int crashes = 0, told = 0, essctl_told = 0, trail_thinned = 0, trail_back = 0;
	for (int round = 0; round < rounds; round++) {
		/* the server away: nothing drains, the disk is all there is; some
		 * trail on disk, and the reserve made */
		tp_stop(&env.srv, SIGKILL, 2000);
		for (int i = 0; i < 150 && ee_status_num(&env, "queue", "positions") < 5; i++)
			usleep(100000);
		assert_false(status_flag("disk_full"));
		for (int i = 0; i < 5; i++)
			assert_int_equal(ee_act(&env, &l, INCIDENT, 5000, NULL, 0), 1);
		double pos_before = ee_status_num(&env, "queue", "positions");
		long long filled = fill(filler);
		/* act until refused three times in a row (or 3000 actions) */
		int in_row = 0, round_told = 0, round_essctl = 0;
		for (int i = 0; i < 3000 && in_row < 3; i++) {
			int a =
			    ee_act(&env, &l, i % 7 ? INCIDENT : NULL, 5000, code_s, sizeof(code_s));
			if (a == 1) {
				acked_full++;
				in_row = 0;
				continue;
			}
			in_row++;
			refused++;
			if (strcmp(code_s, "disk_full") != 0 && other_refusal++ < 3)
				print_message("# refused with \"%s\"\n", code_s);
			/* told at once, by status and essctl (the flush timer may
			 * find room again a moment later: the WAL checkpointed) */
			if (in_row == 1 && !round_told) {
				round_told = status_flag("disk_full");
				essctl_status(text, sizeof(text));
				round_essctl = strstr(text, "DISK FULL") != NULL;
			}
		}
		double pos_after = ee_status_num(&env, "queue", "positions");
		told += round_told;
		essctl_told += round_essctl;
		trail_thinned += pos_after < pos_before;
		print_message("# round %d: filled %lld bytes; trail %g -> %g fixes; told %d\n",
		              round, filled, pos_before, pos_after, round_told);
		if (!essd_alive()) {
			crashes++;
			break;
		}
		/* space is back */
		assert_int_equal(unlink(filler), 0);
		for (int i = 0; i < 100 && status_flag("disk_full"); i++)
			usleep(100000);
		assert_false(status_flag("disk_full"));
		double p0 = ee_status_num(&env, "queue", "positions");
		for (int i = 0; i < 50 && ee_status_num(&env, "queue", "positions") <= p0; i++)
			usleep(100000);
		trail_back += ee_status_num(&env, "queue", "positions") > p0;
		assert_int_equal(ee_act(&env, &l, INCIDENT, 5000, NULL, 0), 1);
		assert_int_equal(ee_srv_start(&env), 0);
		assert_int_equal(ee_wait_drained(&env, 60000), 0);
	}
	assert_int_equal(crashes, 0);
	assert_true(essd_alive());
	assert_int_equal(ee_wait_drained(&env, 60000), 0);
	struct ee_result r;
	assert_int_equal(ee_ledger_check(&env, &l, &r), 0);
	print_message("# disk: %d rounds, %zu tried, %zu acked (%zu while full), refused %zu, "
	              "lost %zu, doubled %zu, invented %zu, crashes %d\n",
	              rounds, r.tried, r.acked, acked_full, refused, r.lost, r.doubled, r.invented,
	              crashes);
	print_message("# told the user %d/%d (essctl %d), trail thinned %d, trail back %d\n", told,
	              rounds, essctl_told, trail_thinned, trail_back);
	assert_true(acked_full > 0); /* actions went on on a full disk */
	assert_true(refused > 0);    /* until nothing was left: then a clear refusal */
	assert_int_equal(other_refusal, 0);
	assert_int_equal(told, rounds);
	assert_int_equal(essctl_told, rounds);
	assert_int_equal(trail_thinned, rounds);
	assert_int_equal(trail_back, rounds);
	assert_int_equal(r.lost, 0);
	assert_int_equal(r.doubled, 0);
	assert_int_equal(r.invented, 0);
	assert_int_equal(r.out_of_order, 0);
	ee_ledger_free(&l);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_disk_full, teardown),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
