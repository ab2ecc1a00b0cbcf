/* essd under the server's commands, systemd's notify protocol and SIGHUP,
 * as a real program over loopback with the reference server (tests/lib/
 * refsrv) driven through its dispatcher API:
 *   - lock, resync and config arrive with a heartbeat, are verified, carried
 *     out and reported once (a restart neither repeats nor forgets them);
 *   - wipe: the result reaches the server, then keys and data are destroyed,
 *     sync stops and essd exits; `essctl status` says WIPING meanwhile; a
 *     wipe interrupted by SIGKILL is finished at the next start;
 *   - $NOTIFY_SOCKET (a datagram socket of this test): READY=1, WATCHDOG=1 at
 *     half $WATCHDOG_USEC, RELOADING=1/READY=1 around SIGHUP, STOPPING=1 on
 *     SIGTERM (a build without libsystemd: nothing is sent);
 *   - SIGHUP: a changed server URL takes effect; a bad file is refused and
 *     the running configuration kept.
 * Every child is stopped by pid (tests/lib/proc), also on failure.
 * ITEST_KEEP=1 keeps the temporary directory (logs) for a look. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/ctl_client.h"
#include "tests/lib/essdenv.h"
#include "tests/lib/proc.h"
#include "tests/lib/refsrv.h"
#include "tests/lib/testutil.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define UNIT "NST-CMD-07"

struct env {
	char *dir;
	char build[400];
	struct refsrv srv;
	pid_t essd;
	char conf[600], sock[600], log[600], device_id[160];
	int ntok;
	int notify_fd;
	char notify_env[700];
};

/* ---- the server ---- */

static cJSON *admin(struct env *e, const char *method, const char *path, const char *json)
{
	long status = 0;
	cJSON *doc = refsrv_admin(&e->srv, method, path, json, &status);
	if (status < 200 || status >= 300) {
		cJSON_Delete(doc);
		fail_msg("admin %s %s: HTTP %ld", method, path, status);
	}
	return doc;
}

/* Issues a command; returns its id (static buffer). */
static const char *command(struct env *e, const char *type, const char *args)
{
	static char id[160];
	char path[300], body[512];
	snprintf(path, sizeof(path), "/admin/devices/%s/commands", e->device_id);
	snprintf(body, sizeof(body), "{\"type\":\"%s\"%s%s}", type, args ? ",\"args\":" : "",
	         args ? args : "");
	cJSON *doc = admin(e, "POST", path, body);
	const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "command"), "id");
	assert_true(cJSON_IsString(v));
	snprintf(id, sizeof(id), "%s", v->valuestring);
	cJSON_Delete(doc);
	return id;
}

/* The server's view of a command: 1 result ok, 0 result not ok, -1 pending;
 * *result_ms when answered. */
static int command_state(struct env *e, const char *id, int64_t *result_ms)
{
	char path[300];
	int st = -2;
	snprintf(path, sizeof(path), "/admin/devices/%s/commands", e->device_id);
	cJSON *doc = admin(e, "GET", path, NULL), *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(doc, "commands"))
	{
		const cJSON *cid = cJSON_GetObjectItem(cJSON_GetObjectItem(it, "command"), "id");
		if (!cJSON_IsString(cid) || strcmp(cid->valuestring, id) != 0)
			continue;
		if (cJSON_IsTrue(cJSON_GetObjectItem(it, "pending"))) {
			st = -1;
		} else {
			st = cJSON_IsTrue(cJSON_GetObjectItem(it, "ok"));
			if (result_ms)
				*result_ms =
				    (int64_t)cJSON_GetObjectItem(it, "result_ms")->valuedouble;
		}
	}
	cJSON_Delete(doc);
	assert_int_not_equal(st, -2);
	return st;
}

/* How many command_result events for id the server accepted. */
static int results_accepted(struct env *e, const char *id)
{
	char path[300];
	int n = 0;
	snprintf(path, sizeof(path), "/admin/devices/%s/events", e->device_id);
	cJSON *doc = admin(e, "GET", path, NULL), *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(doc, "events"))
	{
		const cJSON *ev = cJSON_GetObjectItem(it, "event");
		const cJSON *type = cJSON_GetObjectItem(ev, "type");
		const cJSON *cid = cJSON_GetObjectItem(ev, "command_id");
		const cJSON *res = cJSON_GetObjectItem(it, "result");
		if (cJSON_IsString(type) && !strcmp(type->valuestring, "command_result") &&
		    cJSON_IsString(cid) && !strcmp(cid->valuestring, id) && cJSON_IsString(res) &&
		    !strcmp(res->valuestring, "accepted"))
			n++;
	}
	cJSON_Delete(doc);
	return n;
}

static void srv_incident(struct env *e, const char *id)
{
	char doc[512];
	snprintf(doc, sizeof(doc),
	         "{\"id\":\"%s\",\"unit\":\"" UNIT
	         "\",\"category\":\"confinement\",\"priority\":1,\"silent\":false,"
	         "\"location\":{\"lat\":13.75,\"lon\":100.5,\"accuracy_m\":8},"
	         "\"summary\":\"CANARY-SUMMARY\",\"reporter\":{\"name\":\"CANARY-NAME\"}}",
	         id);
	cJSON_Delete(admin(e, "POST", "/admin/incidents", doc));
}

/* ---- essd ---- */

static void write_conf(struct env *e, const char *url, const char *extra)
{
	char serial[600];
	snprintf(serial, sizeof(serial), "%s/serial", e->dir);
	FILE *f = fopen(serial, "w");
	assert_non_null(f);
	fputs("SN-ITEST-CMD-1\n", f);
	fclose(f);
	f = fopen(e->conf, "w");
	assert_non_null(f);
	fprintf(f,
	        "[log]\nlevel = info\n[store]\ndir = %s/store\nposition_flush_s = 1\n"
	        "[keystore]\nkey_file = %s/kek\n"
	        "[server]\nurl = %s\nlong_poll_s = 2\nrequest_timeout_s = 10\n"
	        "connect_timeout_s = 2\n"
	        "[gps]\nport = 1\n"
	        "[control]\nsocket = %s\n[device]\nserial_file = %s\n[heartbeat]\ninterval_s = "
	        "10\n%s",
	        e->dir, e->dir, url, e->sock, serial, extra ? extra : "");
	fclose(f);
}

/* Runs a program to its end: its exit status. */
static int run_to_end(struct env *e, char *const argv[])
{
	char log[700];
	snprintf(log, sizeof(log), "%s/cmd.log", e->dir);
	pid_t p = tp_spawn(log, argv, (char *const[]){"NOTIFY_SOCKET", NULL});
	int rc = tp_wait(&p, 30000);
	if (rc < 0)
		rc = tp_stop(&p, SIGKILL, 1000);
	return rc;
}

static void provision(struct env *e)
{
	char tok[128], prog[500];
	snprintf(tok, sizeof(tok), "itest-cmd-token-%d", e->ntok++);
	assert_int_equal(refsrv_token(&e->srv, UNIT, tok), 0);
	snprintf(prog, sizeof(prog), "%s/essd", e->build);
	char *argv[] = {prog, "provision", "-c", e->conf, "--token", tok, NULL};
	assert_int_equal(run_to_end(e, argv), 0);
	assert_int_equal(refsrv_device_id(&e->srv, e->device_id, sizeof(e->device_id)), 0);
}

static cJSON *call(struct env *e, const char *method, const char *params)
{
	return ee_ctl_call(e->sock, method, params, 10000);
}

static int call_ok(struct env *e, const char *method, const char *params)
{
	cJSON *a = call(e, method, params);
	int ok = a && cJSON_IsTrue(cJSON_GetObjectItem(a, "ok"));
	cJSON_Delete(a);
	return ok;
}

/* The error code of a refused call ("" when it succeeded or got no answer). */
static const char *call_code(struct env *e, const char *method, const char *params)
{
	static char code[64];
	cJSON *a = call(e, method, params);
	const cJSON *c = cJSON_GetObjectItem(cJSON_GetObjectItem(a, "error"), "code");
	snprintf(code, sizeof(code), "%s", cJSON_IsString(c) ? c->valuestring : "");
	cJSON_Delete(a);
	return code;
}

static double status_num(struct env *e, const char *key)
{
	cJSON *ans = call(e, "status", NULL);
	const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(ans, "result"), key);
	double d = cJSON_IsNumber(v) ? v->valuedouble : cJSON_IsTrue(v) ? 1 : ans ? 0 : -1;
	cJSON_Delete(ans);
	return d;
}

/* Starts essd; with notify, $NOTIFY_SOCKET is this test's socket and
 * $WATCHDOG_USEC is watchdog_usec (0: none). Waits until the control socket
 * answers unless wait is 0. */
static void essd_start(struct env *e, int notify, const char *watchdog_usec, int wait)
{
	char prog[500], wd[64];
	snprintf(prog, sizeof(prog), "%s/essd", e->build);
	snprintf(wd, sizeof(wd), "WATCHDOG_USEC=%s", watchdog_usec ? watchdog_usec : "");
	char *argv[] = {prog, "run", "-c", e->conf, NULL};
	char *env[] = {notify ? e->notify_env : "NOTIFY_SOCKET",
	               watchdog_usec ? wd : "WATCHDOG_USEC", "WATCHDOG_PID", NULL};
	e->essd = tp_spawn(e->log, argv, env);
	if (!wait)
		return;
	for (int i = 0; i < 400; i++) {
		cJSON *a = call(e, "status", NULL);
		cJSON_Delete(a);
		if (a)
			return;
		assert_int_equal(waitpid(e->essd, NULL, WNOHANG), 0);
		usleep(25000);
	}
	fail_msg("essd did not start");
}

static int log_has(struct env *e, const char *needle)
{
	return tu_file_count(e->log, needle, strlen(needle)) > 0;
}

static void need_server(struct env *e)
{
	char prog[500];
	snprintf(prog, sizeof(prog), "%s/ess-refserver", e->build);
	if (access(prog, X_OK) != 0)
		fail_msg("no reference server program at %s (make all)", prog);
	char log[700];
	snprintf(log, sizeof(log), "%s/srv.log", e->dir);
	assert_int_equal(refsrv_start(&e->srv, e->dir, log), 0);
	/* commands ride on heartbeats: the shortest interval the agent takes */
	cJSON *cfg = admin(e, "GET", "/admin/config", NULL);
	cJSON *c = cJSON_GetObjectItem(cfg, "config") ? cJSON_GetObjectItem(cfg, "config") : cfg;
	cJSON_DeleteItemFromObject(c, "heartbeat_interval_s");
	cJSON_AddNumberToObject(c, "heartbeat_interval_s", 10);
	char *body = cJSON_PrintUnformatted(c);
	cJSON_Delete(admin(e, "PUT", "/admin/config", body));
	free(body);
	cJSON_Delete(cfg);
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	const char *b = getenv("ESS_BUILD");
	snprintf(e->build, sizeof(e->build), "%s", b ? b : "build/host");
	e->dir = tu_tmpdir("itcmd");
	snprintf(e->conf, sizeof(e->conf), "%s/essd.conf", e->dir);
	snprintf(e->sock, sizeof(e->sock), "%s/essd.sock", e->dir);
	snprintf(e->log, sizeof(e->log), "%s/essd.log", e->dir);
	e->notify_fd = -1;
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	tp_stop(&e->essd, SIGKILL, 2000);
	refsrv_stop(&e->srv);
	if (e->notify_fd >= 0)
		close(e->notify_fd);
	size_t leaks = tu_file_count(e->log, "CANARY", 6); /* nothing personal logged */
	if (getenv("ITEST_KEEP"))
		free(e->dir);
	else
		tu_rmrf(e->dir);
	free(e);
	assert_int_equal(leaks, 0);
	return 0;
}

/* ---- lock, resync, config ---- */

static void test_lock_resync_config(void **state)
{
	struct env *e = *state;
	need_server(e);
	write_conf(e, e->srv.api_url, NULL);
	provision(e);
	essd_start(e, 0, NULL, 1);
	srv_incident(e, "INC-C1");
	TU_WAIT_FOR(status_num(e, "incidents") == 1, 15000);
	assert_true(status_num(e, "incidents") == 1);
	assert_true(call_ok(e, "list", NULL));

	/* verified first: a wipe signed by another key, or signed for another
	 * device, is dropped and nothing happens */
	cJSON_Delete(admin(e, "POST", "/admin/faults", "{\"forge_command\":\"bad_signature\"}"));
	TU_WAIT_FOR(log_has(e, "command envelope dropped"), 15000);
	assert_true(log_has(e, "command envelope dropped"));
	cJSON_Delete(admin(e, "POST", "/admin/faults", "{\"forge_command\":\"other_device\"}"));
	TU_WAIT_FOR(log_has(e, "is for another device: refused"), 15000);
	assert_true(log_has(e, "is for another device: refused"));
	assert_true(status_num(e, "wiping") == 0);
	assert_true(call_ok(e, "list", NULL));

	/* lock: carried out with the next heartbeat, the result reported */
	const char *lock = command(e, "lock", NULL);
	char lock_id[160];
	snprintf(lock_id, sizeof(lock_id), "%s", lock);
	TU_WAIT_FOR(status_num(e, "locked") == 1, 15000);
	assert_true(status_num(e, "locked") == 1);
	assert_string_equal(call_code(e, "list", NULL), "locked");
	assert_string_equal(call_code(e, "show", "{\"id\":\"INC-C1\"}"), "locked");
	assert_true(call_ok(e, "sos", "{\"text\":\"still works when locked\"}"));
	TU_WAIT_FOR(command_state(e, lock_id, NULL) == 1, 15000);
	assert_int_equal(command_state(e, lock_id, NULL), 1);
	/* a restart keeps the lock (persisted), without a second result */
	assert_int_equal(tp_stop(&e->essd, SIGTERM, 5000), 0);
	essd_start(e, 0, NULL, 1);
	assert_true(status_num(e, "locked") == 1);
	/* unlocked locally, a restart and a heartbeat later it stays unlocked:
	 * the command is done, never again */
	assert_true(call_ok(e, "unlock", NULL));
	assert_int_equal(tp_stop(&e->essd, SIGTERM, 5000), 0);
	essd_start(e, 0, NULL, 1);
	TU_WAIT_FOR(status_num(e, "online") == 1, 10000);
	sleep(11); /* one heartbeat interval */
	assert_true(status_num(e, "locked") == 0);
	assert_true(call_ok(e, "list", NULL));
	assert_int_equal(results_accepted(e, lock_id), 1);

	/* resync: the engine forgets its cursor and fetches again; subscribers
	 * are told */
	struct ctl_conn *sub;
	char err[256];
	cJSON *ans = NULL, *ev = NULL;
	assert_int_equal(ctl_conn_open(e->sock, &sub, err, sizeof(err)), 0);
	assert_int_equal(ctl_conn_call(sub, "subscribe", NULL, 5000, &ans), 0);
	cJSON_Delete(ans);
	char resync_id[160];
	snprintf(resync_id, sizeof(resync_id), "%s", command(e, "resync", NULL));
	int seen = 0;
	int64_t until = tu_now_ms() + 15000;
	while (!seen && tu_now_ms() < until) {
		int rc = ctl_conn_next_event(sub, 1000, &ev);
		if (rc == -ETIMEDOUT || rc == -EAGAIN)
			continue;
		assert_int_equal(rc, 0);
		const cJSON *name = cJSON_GetObjectItem(ev, "event");
		seen = cJSON_IsString(name) && !strcmp(name->valuestring, "resync");
		cJSON_Delete(ev);
		ev = NULL;
	}
	ctl_conn_close(sub);
	assert_true(seen);
	TU_WAIT_FOR(command_state(e, resync_id, NULL) == 1, 10000);
	assert_int_equal(command_state(e, resync_id, NULL), 1);
	assert_true(status_num(e, "incidents") == 1); /* the same incident, not a copy */

	/* config: applied, bounded to the file's ranges, reported */
	char cfg_id[160];
	snprintf(cfg_id, sizeof(cfg_id), "%s",
	         command(e, "config",
	                 "{\"position_interval_s\":7,\"position_min_distance_m\":3,"
	                 "\"retention_hours\":100}"));
	TU_WAIT_FOR(log_has(e, "server configuration applied: interval 7 s, min distance 3 m, "
	                       "retention 100 h"),
	            15000);
	assert_true(log_has(e, "server configuration applied: interval 7 s, min distance 3 m, "
	                       "retention 100 h"));
	TU_WAIT_FOR(command_state(e, cfg_id, NULL) == 1, 10000);
	assert_int_equal(command_state(e, cfg_id, NULL), 1);
	snprintf(cfg_id, sizeof(cfg_id), "%s",
	         command(e, "config", "{\"position_interval_s\":99999999,\"retention_hours\":-5}"));
	/* (the heartbeats' own configuration, the server's defaults, may have
	 * set the distance back meanwhile) */
	TU_WAIT_FOR(log_has(e, "applied: interval 3600 s,"), 15000);
	assert_true(log_has(e, "applied: interval 3600 s,"));
	assert_true(log_has(e, ", retention 1 h"));
	/* each result once, the device still serving */
	TU_WAIT_FOR(command_state(e, cfg_id, NULL) == 1, 10000);
	assert_int_equal(results_accepted(e, cfg_id), 1);
	assert_int_equal(results_accepted(e, resync_id), 1);
	assert_true(waitpid(e->essd, NULL, WNOHANG) == 0);
}

/* ---- wipe ---- */

static int store_files_left(struct env *e)
{
	char p[700];
	int n = 0;
	static const char *const names[] = {"store/ess.db", "store/ess.db-wal", "store/keys",
	                                    "kek"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", e->dir, names[i]);
		struct stat st;
		if (stat(p, &st) == 0 && st.st_size > 0)
			n++;
	}
	return n;
}

static void assert_not_provisioned(struct env *e)
{
	char prog[500];
	snprintf(prog, sizeof(prog), "%s/essd", e->build);
	char *argv[] = {prog, "run", "-c", e->conf, NULL};
	assert_int_equal(run_to_end(e, argv), 1);
}

static void test_wipe(void **state)
{
	struct env *e = *state;
	need_server(e);
	write_conf(e, e->srv.api_url, NULL);
	provision(e);
	essd_start(e, 0, NULL, 1);
	srv_incident(e, "INC-W1");
	TU_WAIT_FOR(status_num(e, "incidents") == 1, 15000);
	assert_true(store_files_left(e) > 0);
	char id[160];
	snprintf(id, sizeof(id), "%s", command(e, "wipe", NULL));
	/* delivered with a heartbeat (10 s), then the result first, then the wipe */
	int rc = tp_wait(&e->essd, 25000);
	assert_int_equal(rc, 0);
	int64_t result_ms = 0;
	assert_int_equal(command_state(e, id, &result_ms), 1);
	assert_int_equal(results_accepted(e, id), 1);
	assert_true(log_has(e, "wiped: keys destroyed"));
	assert_int_equal(store_files_left(e), 0);
	assert_not_provisioned(e);
}

/* The result is applied by the server but its answer held back: essd waits
 * (WIPING), is killed, and finishes the wipe when started again. */
static void test_wipe_interrupted(void **state)
{
	struct env *e = *state;
	need_server(e);
	write_conf(e, e->srv.api_url, NULL);
	provision(e);
	essd_start(e, 0, NULL, 1);
	TU_WAIT_FOR(status_num(e, "online") == 1, 10000);
	cJSON_Delete(admin(e, "POST", "/admin/faults", "{\"delay_ms\":4000,\"delay_next\":0}"));
	char id[160];
	snprintf(id, sizeof(id), "%s", command(e, "wipe", NULL));
	TU_WAIT_FOR(status_num(e, "wiping") == 1, 25000);
	assert_true(status_num(e, "wiping") == 1);
	/* meanwhile: essctl says so, and everything but status is refused */
	char prog[500], out[700];
	snprintf(prog, sizeof(prog), "%s/essctl", e->build);
	snprintf(out, sizeof(out), "%s/cmd.log", e->dir);
	unlink(out);
	char *argv[] = {prog, "-s", e->sock, "status", NULL};
	assert_int_equal(run_to_end(e, argv), 0);
	assert_true(tu_file_count(out, "WIPING", 6) > 0);
	assert_string_not_equal(call_code(e, "list", NULL), "");
	assert_false(call_ok(e, "sos", "{\"text\":\"x\"}"));
	/* the server applies the result and holds its answer; essd dies */
	TU_WAIT_FOR(command_state(e, id, NULL) != -1, 10000);
	assert_int_equal(command_state(e, id, NULL), 1);
	assert_true(e->essd > 0 && waitpid(e->essd, NULL, WNOHANG) == 0); /* not wiped yet */
	assert_int_equal(tp_stop(&e->essd, SIGKILL, 2000), 128 + SIGKILL);
	assert_true(store_files_left(e) > 0);
	cJSON_Delete(admin(e, "DELETE", "/admin/faults", NULL));
	/* the next start finishes it: the result goes again (a duplicate for the
	 * server), then keys and data go */
	essd_start(e, 0, NULL, 0);
	assert_int_equal(tp_wait(&e->essd, 20000), 0);
	assert_true(log_has(e, "a wipe ordered by the server was not finished"));
	assert_int_equal(store_files_left(e), 0);
	assert_int_equal(results_accepted(e, id), 1);
	assert_not_provisioned(e);
}

/* ---- systemd's notify protocol ---- */

static void notify_open(struct env *e)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	char path[600];
	snprintf(path, sizeof(path), "%s/notify", e->dir);
	assert_true(strlen(path) < sizeof(a.sun_path));
	memcpy(a.sun_path, path, strlen(path) + 1);
	e->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(e->notify_fd >= 0);
	assert_int_equal(bind(e->notify_fd, (struct sockaddr *)&a, sizeof(a)), 0);
	snprintf(e->notify_env, sizeof(e->notify_env), "NOTIFY_SOCKET=%s", path);
}

/* Reads datagrams for up to ms; counts those containing what (stops at the
 * first when stop_at_first); other lines are appended to seen. */
static int notify_count(struct env *e, const char *what, int ms, int stop_at_first)
{
	int n = 0;
	int64_t until = tu_now_ms() + ms;
	char buf[1024];
	while (tu_now_ms() < until) {
		struct pollfd p = {.fd = e->notify_fd, .events = POLLIN};
		int left = (int)(until - tu_now_ms());
		if (poll(&p, 1, left > 0 ? left : 0) != 1)
			continue;
		ssize_t len = recv(e->notify_fd, buf, sizeof(buf) - 1, 0);
		if (len <= 0)
			continue;
		buf[len] = 0;
		if (strstr(buf, what)) {
			n++;
			if (stop_at_first)
				break;
		}
	}
	return n;
}

static void test_notify_watchdog(void **state)
{
	struct env *e = *state;
	need_server(e);
	write_conf(e, e->srv.api_url, NULL);
	provision(e);
	notify_open(e);
	/* 400 ms: WATCHDOG=1 every 200 ms */
	essd_start(e, 1, "400000", 0);
#ifdef HAVE_SYSTEMD
	assert_int_equal(notify_count(e, "READY=1", 10000, 1), 1);
	int64_t t0 = tu_now_ms();
	int pings = notify_count(e, "WATCHDOG=1", 3000, 0);
	double rate = pings * 1000.0 / (double)(tu_now_ms() - t0);
	print_message("# %d WATCHDOG=1 in 3 s (%.1f/s, expected 5/s)\n", pings, rate);
	assert_true(rate >= 3.5 && rate <= 6.5);
	kill(e->essd, SIGHUP);
	assert_int_equal(notify_count(e, "RELOADING=1", 5000, 1), 1);
	assert_int_equal(notify_count(e, "READY=1", 5000, 1), 1);
	kill(e->essd, SIGTERM);
	assert_int_equal(notify_count(e, "STOPPING=1", 5000, 1), 1);
	assert_int_equal(tp_wait(&e->essd, 5000), 0);
	/* without $WATCHDOG_USEC, no pings */
	essd_start(e, 1, NULL, 0);
	assert_int_equal(notify_count(e, "READY=1", 10000, 1), 1);
	assert_int_equal(notify_count(e, "WATCHDOG=1", 1500, 0), 0);
#else
	/* built without libsystemd: serves, and sends nothing */
	TU_WAIT_FOR(status_num(e, "uptime_s") >= 0, 10000);
	assert_true(status_num(e, "uptime_s") >= 0);
	assert_int_equal(notify_count(e, "=", 1500, 0), 0);
#endif
	assert_int_equal(tp_stop(&e->essd, SIGTERM, 5000), 0);
}

/* ---- SIGHUP ---- */

static void test_sighup(void **state)
{
	struct env *e = *state;
	need_server(e);
	write_conf(e, e->srv.api_url, NULL);
	provision(e);
	/* started with a server URL where nothing listens: offline */
	char dead[200];
	snprintf(dead, sizeof(dead), "http://127.0.0.1:%d/api", tu_free_port());
	write_conf(e, dead, NULL);
	essd_start(e, 0, NULL, 1);
	sleep(3);
	assert_true(status_num(e, "online") == 0);
	/* the right URL, reloaded: online */
	write_conf(e, e->srv.api_url, NULL);
	kill(e->essd, SIGHUP);
	TU_WAIT_FOR(status_num(e, "online") == 1, 15000);
	assert_true(status_num(e, "online") == 1);
	assert_true(log_has(e, "configuration reloaded"));
	/* a bad file: refused, the running configuration kept */
	FILE *f = fopen(e->conf, "a");
	assert_non_null(f);
	fputs("[gps]\ninterval_s = banana\n", f);
	fclose(f);
	kill(e->essd, SIGHUP);
	TU_WAIT_FOR(log_has(e, "keeping the running configuration"), 5000);
	assert_true(log_has(e, "keeping the running configuration"));
	assert_true(waitpid(e->essd, NULL, WNOHANG) == 0);
	assert_true(status_num(e, "online") == 1);
	/* still on the good server: an incident arrives */
	srv_incident(e, "INC-H1");
	TU_WAIT_FOR(status_num(e, "incidents") == 1, 15000);
	assert_true(status_num(e, "incidents") == 1);
	assert_int_equal(tp_stop(&e->essd, SIGTERM, 5000), 0);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_notify_watchdog, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sighup, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lock_resync_config, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wipe, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wipe_interrupted, setup, teardown),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
