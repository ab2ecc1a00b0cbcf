/* essd with its hardware on a fake sysfs/dev tree (HAL_SYSFS_ROOT) and the
 * reference server on loopback:
 *   - the heartbeat's power and battery_pct come from the fake
 *     power_supply class (no longer a fixed "vehicle");
 *   - a new silent assignment lights the LED and never sounds the buzzer;
 *     a normal one sounds it;
 *   - a double press on the panic button (an evdev FIFO) raises an SOS
 *     that the server accepts once;
 *   - in a private network namespace (root): while the server fails and
 *     essd's backoff holds for seconds, a veth link coming up makes essd
 *     deliver its queued SOS at once (netlink -> sync_link_up).
 * essd and the server are stopped by pid, also on failure (teardown). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/ctl_client.h"
#include "tests/lib/faketree.h"
#include "tests/lib/proc.h"
#include "tests/lib/refsrv.h"
#include "tests/lib/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <linux/input.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define UNIT "NST-HAL-01"

struct env {
	char *dir;
	char root[600], conf[700], build[400];
	struct refsrv srv;
	pid_t essd;
	char device_id[160];
};

/* essd in its own process group with the fake tree as its hardware, output
 * appended to dir/LOG. */
static pid_t spawn(struct env *e, const char *log, char *const argv[])
{
	char path[800], root[700];
	snprintf(path, sizeof(path), "%s/%s", e->dir, log);
	snprintf(root, sizeof(root), "HAL_SYSFS_ROOT=%s", e->root);
	char *const env[] = {root, NULL};
	return tp_spawn(path, argv, env);
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	const char *b = getenv("ESS_BUILD");
	snprintf(e->build, sizeof(e->build), "%s", b ? b : "build/host");
	e->dir = tu_tmpdir("ithal");
	snprintf(e->root, sizeof(e->root), "%s/hw", e->dir);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	tp_stop(&e->essd, SIGKILL, 2000);
	refsrv_stop(&e->srv);
	tu_rmrf(e->dir);
	free(e);
	return 0;
}

static cJSON *admin(struct env *e, const char *method, const char *path, const char *json)
{
	long status = 0;
	cJSON *doc = refsrv_admin(&e->srv, method, path, json, &status);
	if (status < 200 || status >= 300)
		fail_msg("admin %s %s: HTTP %ld", method, path, status);
	return doc;
}

/* The last heartbeat's power and battery_pct (-2: none yet, -1: null). */
static int last_heartbeat(struct env *e, char *power, size_t cap)
{
	char path[300];
	snprintf(path, sizeof(path), "/admin/devices/%s/heartbeats", e->device_id);
	cJSON *doc = admin(e, "GET", path, NULL);
	const cJSON *list = cJSON_GetObjectItem(doc, "heartbeats");
	int n = cJSON_GetArraySize(list), pct = -2;
	power[0] = 0;
	if (n > 0) {
		const cJSON *hb = cJSON_GetObjectItem(cJSON_GetArrayItem(list, n - 1), "heartbeat");
		const cJSON *p = cJSON_GetObjectItem(hb, "power");
		const cJSON *b = cJSON_GetObjectItem(hb, "battery_pct");
		snprintf(power, cap, "%s", cJSON_IsString(p) ? p->valuestring : "");
		pct = cJSON_IsNumber(b) ? (int)b->valuedouble : -1;
	}
	cJSON_Delete(doc);
	return pct;
}

static int accepted_sos(struct env *e)
{
	char path[300];
	snprintf(path, sizeof(path), "/admin/devices/%s/events", e->device_id);
	cJSON *doc = admin(e, "GET", path, NULL), *it;
	int n = 0;
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(doc, "events"))
	{
		const cJSON *ev = cJSON_GetObjectItem(it, "event");
		const cJSON *res = cJSON_GetObjectItem(it, "result");
		const cJSON *type = cJSON_GetObjectItem(ev, "type");
		n += cJSON_IsString(res) && !strcmp(res->valuestring, "accepted") &&
		     cJSON_IsString(type) && !strcmp(type->valuestring, "sos");
	}
	cJSON_Delete(doc);
	return n;
}

static void incident(struct env *e, const char *id, int silent)
{
	char doc[600];
	snprintf(doc, sizeof(doc),
	         "{\"id\":\"%s\",\"unit\":\"" UNIT "\",\"category\":\"confinement\",\"priority\":1,"
	         "\"silent\":%s,\"location\":{\"lat\":13.7466,\"lon\":100.5393,\"accuracy_m\":8},"
	         "\"summary\":\"test\"}",
	         id, silent ? "true" : "false");
	cJSON_Delete(admin(e, "POST", "/admin/incidents", doc));
}

/* After essd stopped: under SANITIZE=1 its reports go to its log. */
static void essd_log_clean(struct env *e)
{
	char log[700];
	snprintf(log, sizeof(log), "%s/essd.log", e->dir);
	assert_int_equal(tu_file_count(log, "Sanitizer", 9), 0);
	assert_int_equal(tu_file_count(log, "runtime error", 13), 0);
}

static void need_server(struct env *e)
{
	char prog[500];
	snprintf(prog, sizeof(prog), "%s/ess-refserver", e->build);
	if (access(prog, X_OK) != 0)
		fail_msg("no reference server program at %s (build it first)", prog);
}

static const char *rd(struct env *e, const char *rel, char *buf, size_t cap)
{
	return ft_read(e->root, rel, buf, cap);
}

static void key(int fd, int value)
{
	struct input_event ev[2];
	memset(ev, 0, sizeof(ev));
	ev[0].type = EV_KEY;
	ev[0].code = KEY_PROG1;
	ev[0].value = value;
	ev[1].type = EV_SYN;
	assert_int_equal(write(fd, ev, sizeof(ev)), (ssize_t)sizeof(ev));
}

/* The server, then essd provisioned and running with the fake tree's
 * hardware; extra: more configuration lines. */
static void start_all(struct env *e, const char *extra)
{
	char log[700], prog[500];
	snprintf(log, sizeof(log), "%s/srv.log", e->dir);
	assert_int_equal(refsrv_start(&e->srv, e->dir, log), 0);
	assert_int_equal(refsrv_token(&e->srv, UNIT, "hal-token-1"), 0);

	char serial[700], text[2400];
	snprintf(serial, sizeof(serial), "%s/serial", e->dir);
	ft_write(e->dir, "serial", "SN-HAL-1\n");
	snprintf(e->conf, sizeof(e->conf), "%s/essd.conf", e->dir);
	snprintf(text, sizeof(text),
	         "[log]\nlevel = debug\n[store]\ndir = %s/store\n[keystore]\nkey_file = %s/kek\n"
	         "[server]\nurl = %s\nlong_poll_s = 1\nrequest_timeout_s = 10\n"
	         "[gps]\nport = %d\n[control]\nsocket = %s/essd.sock\n"
	         "[device]\nserial_file = %s\n[heartbeat]\ninterval_s = 10\n"
	         "[alert]\nbackend = sysfs\nled = status\nsounder = led:buzzer\nsound_s = 60\n"
	         "[input]\nbackend = evdev\ndevice = /dev/input/event0\nlong_press_ms = 1500\n"
	         "double_press_ms = 1000\n"
	         "[power]\nbackend = sysfs\npoll_s = 1\n%s",
	         e->dir, e->dir, e->srv.api_url, tu_free_port(), e->dir, serial, extra);
	ft_write(e->dir, "essd.conf", text);

	snprintf(prog, sizeof(prog), "%s/essd", e->build);
	char *prov[] = {prog, "provision", "-c", e->conf, "--token", "hal-token-1", NULL};
	pid_t p = spawn(e, "provision.log", prov);
	int status;
	waitpid(p, &status, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(refsrv_device_id(&e->srv, e->device_id, sizeof(e->device_id)), 0);

	char *run[] = {prog, "run", "-c", e->conf, NULL};
	e->essd = spawn(e, "essd.log", run);
}

static void test_essd_hardware(void **state)
{
	struct env *e = *state;
	char buf[128], log[700];
	need_server(e);
	ft_write(e->root, "sys/class/leds/status/trigger", "[none] timer\n");
	ft_write(e->root, "sys/class/leds/status/max_brightness", "1\n");
	ft_write(e->root, "sys/class/leds/status/brightness", "0\n");
	ft_write(e->root, "sys/class/leds/buzzer/max_brightness", "1\n");
	ft_write(e->root, "sys/class/leds/buzzer/brightness", "0\n");
	ft_write(e->root, "sys/class/power_supply/BAT0/type", "Battery\n");
	ft_write(e->root, "sys/class/power_supply/BAT0/capacity", "55\n");
	ft_write(e->root, "sys/class/power_supply/BAT0/status", "Discharging\n");
	ft_mkdir(e->root, "dev/input");
	char fifo[800];
	snprintf(fifo, sizeof(fifo), "%s/dev/input/event0", e->root);
	assert_int_equal(mkfifo(fifo, 0600), 0);

	start_all(e, "");

	/* the first heartbeat tells the battery, not a made-up "vehicle" */
	char power[32];
	TU_WAIT_FOR(last_heartbeat(e, power, sizeof(power)) != -2, 15000);
	assert_int_equal(last_heartbeat(e, power, sizeof(power)), 55);
	assert_string_equal(power, "battery");

	/* a silent assignment: light, never sound */
	incident(e, "INC-HAL-SILENT", 1);
	TU_WAIT_FOR(!strcmp(rd(e, "sys/class/leds/status/trigger", buf, sizeof(buf)), "timer"),
	            15000);
	assert_string_equal(rd(e, "sys/class/leds/status/trigger", buf, sizeof(buf)), "timer");
	assert_string_equal(rd(e, "sys/class/leds/buzzer/brightness", buf, sizeof(buf)), "0");
	/* a normal one sounds */
	incident(e, "INC-HAL-LOUD", 0);
	TU_WAIT_FOR(!strcmp(rd(e, "sys/class/leds/buzzer/brightness", buf, sizeof(buf)), "1"),
	            15000);
	assert_string_equal(rd(e, "sys/class/leds/buzzer/brightness", buf, sizeof(buf)), "1");

	/* the panic button: one press is nothing, a double press is an SOS */
	int w = -1;
	TU_WAIT_FOR((w = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC)) >= 0, 5000);
	assert_true(w >= 0);
	key(w, 1);
	usleep(100000);
	key(w, 0);
	usleep(1500000);
	assert_int_equal(accepted_sos(e), 0);
	key(w, 1);
	usleep(100000);
	key(w, 0);
	usleep(200000);
	key(w, 1);
	usleep(100000);
	key(w, 0);
	TU_WAIT_FOR(accepted_sos(e) == 1, 15000);
	assert_int_equal(accepted_sos(e), 1);

	/* essctl status shows the hardware */
	char sock[700], err[256];
	snprintf(sock, sizeof(sock), "%s/essd.sock", e->dir);
	struct ctl_conn *c;
	cJSON *ans = NULL;
	assert_int_equal(ctl_conn_open(sock, &c, err, sizeof(err)), 0);
	assert_int_equal(ctl_conn_call(c, "status", NULL, 5000, &ans), 0);
	ctl_conn_close(c);
	const cJSON *hw = cJSON_GetObjectItem(cJSON_GetObjectItem(ans, "result"), "hardware");
	const cJSON *pw = cJSON_GetObjectItem(hw, "power");
	const cJSON *pb = cJSON_GetObjectItem(hw, "panic_button");
	const cJSON *al = cJSON_GetObjectItem(hw, "alert");
	assert_string_equal(cJSON_GetObjectItem(pw, "source")->valuestring, "battery");
	assert_int_equal(cJSON_GetObjectItem(pw, "battery_pct")->valueint, 55);
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(pw, "charging")));
	/* a test tree: no kernel uevents, no GPIO ignition; only the poll */
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(pw, "uevents")));
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(pw, "ignition_edges")));
	assert_true(cJSON_GetObjectItem(pw, "readings")->valueint >= 2);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(pb, "attached")));
	assert_int_equal(cJSON_GetObjectItem(pb, "presses")->valueint, 3);
	assert_int_equal(cJSON_GetObjectItem(pb, "panics")->valueint, 1);
	assert_int_equal(cJSON_GetObjectItem(al, "alerts")->valueint, 2);
	assert_int_equal(cJSON_GetObjectItem(al, "silent")->valueint, 1);
	assert_int_equal(cJSON_GetObjectItem(al, "sounded")->valueint, 1);
	cJSON_Delete(ans);

	/* the responder acknowledges: the sound and the light stop at once */
	assert_string_equal(rd(e, "sys/class/leds/buzzer/brightness", buf, sizeof(buf)), "1");
	assert_int_equal(ctl_conn_open(sock, &c, err, sizeof(err)), 0);
	assert_int_equal(
	    ctl_conn_call(c, "ack", cJSON_Parse("{\"id\":\"INC-HAL-LOUD\"}"), 5000, &ans), 0);
	ctl_conn_close(c);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(ans, "ok")));
	cJSON_Delete(ans);
	assert_string_equal(rd(e, "sys/class/leds/buzzer/brightness", buf, sizeof(buf)), "0");
	assert_string_equal(rd(e, "sys/class/leds/status/trigger", buf, sizeof(buf)), "none");
	assert_string_equal(rd(e, "sys/class/leds/status/brightness", buf, sizeof(buf)), "0");
	close(w); /* the button's device goes away: essd rescans, keeps running */

	/* plugged in: the next poll says so */
	ft_write(e->root, "sys/class/power_supply/AC/type", "Mains\n");
	ft_write(e->root, "sys/class/power_supply/AC/online", "1\n");
	snprintf(log, sizeof(log), "%s/essd.log", e->dir);
	TU_WAIT_FOR(tu_file_count(log, "power: ac", 9) >= 1, 5000);
	assert_true(tu_file_count(log, "power: ac", 9) >= 1);

	assert_int_equal(tp_stop(&e->essd, SIGTERM, 3000), 0);
	essd_log_clean(e);
	/* the panic was logged once, as a double press */
	snprintf(log, sizeof(log), "%s/essd.log", e->dir);
	assert_true(tu_file_count(log, "panic button (double press): SOS queued", 39) == 1);
}

static void ip(const char *args)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "ip %s", args);
	int rc = system(cmd);
	if (rc != 0)
		fail_msg("'%s' failed (%d)", cmd, rc);
}

/* The last "backing off N ms" essd logged, and how many such lines. */
static long long last_backoff(struct env *e, int *count)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/essd.log", e->dir);
	size_t len;
	unsigned char *raw = tu_read_file(path, &len);
	long long v = -1;
	*count = 0;
	if (!raw)
		return -1;
	raw[len] = 0; /* tu_read_file leaves room */
	for (char *p = (char *)raw; (p = strstr(p, "sync: backing off ")); p++) {
		v = atoll(p + 18);
		(*count)++;
	}
	free(raw);
	return v;
}

static void test_link_up_syncs_now(void **state)
{
	struct env *e = *state;
	need_server(e);
	/* a private network namespace: its own lo and the veth pair below,
	 * inherited by the server and essd; the host's links are untouched */
	if (unshare(CLONE_NEWNET) < 0)
		fail_msg("unshare(CLONE_NEWNET): %s: this test needs root (CAP_SYS_ADMIN)",
		         strerror(errno));
	ip("link set lo up");
	ft_mkdir(e->root, "dev/input");
	start_all(e, "[link]\nbackend = netlink\n");
	char sock[700];
	snprintf(sock, sizeof(sock), "%s/essd.sock", e->dir);
	struct ctl_conn *c = NULL;
	char err[256];
	TU_WAIT_FOR(ctl_conn_open(sock, &c, err, sizeof(err)) == 0, 10000);
	assert_non_null(c);

	/* the server fails (502, no Retry-After) until essd backs off for a
	 * while; then an SOS is queued */
	cJSON_Delete(admin(e, "POST", "/admin/faults", "{\"fail_for_s\":120,\"fail_status\":502}"));
	cJSON *ans = NULL;
	assert_int_equal(ctl_conn_call(c, "sos", NULL, 5000, &ans), 0);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(ans, "ok")));
	cJSON_Delete(ans);
	ctl_conn_close(c);
	int n = 0, seen = 0;
	long long hold = -1;
	int64_t t_seen = 0, until = tu_now_ms() + 60000;
	while (tu_now_ms() < until) {
		long long v = last_backoff(e, &n);
		if (n > seen) {
			seen = n;
			if (v > 3000) {
				hold = v;
				t_seen = tu_now_ms();
				break;
			}
		}
		usleep(20000);
	}
	if (hold < 0)
		fail_msg("essd never backed off for more than 3 s");
	assert_int_equal(accepted_sos(e), 0);

	/* the server is fine again and a link comes up: the SOS goes now, not
	 * when the backoff ends */
	cJSON_Delete(admin(e, "POST", "/admin/faults", "{\"fail_for_s\":0}"));
	ip("link add essv0 type veth peer name essv1");
	ip("link set essv1 up");
	ip("link set essv0 up");
	TU_WAIT_FOR(accepted_sos(e) == 1, 15000);
	int64_t t_done = tu_now_ms();
	assert_int_equal(accepted_sos(e), 1);
	if (t_done >= t_seen + hold - 300)
		fail_msg("the SOS went %lld ms after a %lld ms backoff began: not at link up",
		         (long long)(t_done - t_seen), hold);
	char log[700];
	snprintf(log, sizeof(log), "%s/essd.log", e->dir);
	assert_true(tu_file_count(log, "link: essv0 up (carrier)", 24) >= 1);
	assert_int_equal(tp_stop(&e->essd, SIGTERM, 3000), 0);
	essd_log_clean(e);
	refsrv_stop(&e->srv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_essd_hardware, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_link_up_syncs_now, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
