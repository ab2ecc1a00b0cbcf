/* essd as a real program, with the reference server ($ESS_BUILD/ess-refserver)
 * and gpsd (gpsfake replaying nmeagen's Bangkok drive) on loopback, driven
 * through the control socket (ctl_client, as essctl is) and the server's
 * admin API:
 *   - offline start, SIGHUP, SIGTERM, not provisioned;
 *   - the control socket refuses malformed, oversized, unknown requests and
 *     keeps serving;
 *   - an assignment arrives and a status chain reaches the server; the server
 *     killed and restarted; essd SIGKILLed mid-drain and restarted: the
 *     server's state is exact each time (every event accepted once);
 *   - gpsd: fixes recorded and uploaded; gpsd killed and restarted.
 * Every child runs in its own process group and is killed by that group in
 * the teardown, whatever the test did. Skipped without a server program.
 *
 * ESS_VALGRIND=short (make check: the first two scenarios) or =all (make
 * valgrind): every essd runs under valgrind --leak-check=full; the
 * teardown stops essd with SIGTERM and fails on any valgrind error or leak,
 * or an exit status other than 0. */
#define _GNU_SOURCE /* setresuid, setresgid */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/ctl.h"
#include "agent/ctl_client.h"
#include "tests/lib/canary.h"
#include "tests/lib/essdenv.h"
#include "tests/lib/proc.h"
#include "tests/lib/testutil.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define UNIT "NST-RESP-04"

/* Under valgrind everything essd does takes several times longer. */
static int valgrind_mode;
static int slow = 1;

/* The server (fixed port, database kept across restarts), the admin API and
 * the control socket come from tests/lib/essdenv; essd itself is started
 * here (under valgrind when asked). */
struct env {
	struct essenv ee;
	pid_t fake;            /* gpsfake's process group */
	const char *ctl_group; /* [control] group, NULL: none */
};

/* fork + exec in a new process group, output appended to dir/name.log. */
static pid_t spawn(struct env *e, const char *name, char *const argv[])
{
	char log[700];
	snprintf(log, sizeof(log), "%s/%s.log", e->ee.dir, name);
	return tp_spawn(log, argv, NULL);
}

/* Stops a process group by pid: its exit status (or 128+signal, 999 when it
 * had to be SIGKILLed). */
static int stop(pid_t *pid, int sig, int wait_ms)
{
	return tp_stop(pid, sig, wait_ms);
}

/* ---- the reference server ---- */

static void srv_start(struct env *e)
{
	assert_int_equal(ee_srv_start(&e->ee), 0);
}

/* method NULL: GET, or POST with json. Fails the test unless 2xx. */
static cJSON *admin_req(struct env *e, const char *method, const char *path, const char *json)
{
	long code = 0;
	if (!method)
		method = json ? "POST" : "GET";
	cJSON *doc = ee_admin(&e->ee, method, path, json, &code);
	if (code < 200 || code >= 300) {
		cJSON_Delete(doc);
		fail_msg("admin %s %s: http %ld", method, path, code);
	}
	return doc;
}

static cJSON *admin(struct env *e, const char *path, const char *json)
{
	return admin_req(e, NULL, path, json);
}

static void srv_incident(struct env *e, const char *id, int silent)
{
	char doc[1024];
	snprintf(doc, sizeof(doc),
	         "{\"id\":\"%s\",\"unit\":\"" UNIT "\",\"category\":\"confinement\",\"priority\":1,"
	         "\"silent\":%s,\"location\":{\"lat\":" CANARY_LAT ",\"lon\":" CANARY_LON
	         ",\"accuracy_m\":8},\"address\":\"" CANARY_ADDRESS
	         "\",\"summary\":\"" CANARY_SUMMARY "\",\"reporter\":{\"name\":\"" CANARY_NAME
	         "\",\"phone\":\"" CANARY_PHONE "\"}}",
	         id, silent ? "true" : "false");
	cJSON_Delete(admin(e, "/admin/incidents", doc));
}

/* Accepted events of the device: checks that no event_id was accepted twice
 * and returns how many were accepted (and of type, when type is not NULL). */
static int srv_accepted(struct env *e, const char *type)
{
	char path[300];
	snprintf(path, sizeof(path), "/admin/devices/%s/events", e->ee.device_id);
	cJSON *doc = admin(e, path, NULL), *it;
	const cJSON *list = cJSON_GetObjectItem(doc, "events");
	int n = 0, k = 0, total = cJSON_GetArraySize(list);
	char **ids = calloc((size_t)total + 1, sizeof(char *));
	cJSON_ArrayForEach(it, list)
	{
		const cJSON *ev = cJSON_GetObjectItem(it, "event");
		const char *res = cJSON_GetObjectItem(it, "result")->valuestring;
		if (strcmp(res, "accepted") != 0)
			continue;
		const char *id = cJSON_GetObjectItem(ev, "event_id")->valuestring;
		for (int i = 0; i < k; i++)
			if (!strcmp(ids[i], id))
				fail_msg("event %s accepted twice", id);
		ids[k++] = strdup(id);
		if (!type || !strcmp(cJSON_GetObjectItem(ev, "type")->valuestring, type))
			n++;
	}
	for (int i = 0; i < k; i++)
		free(ids[i]);
	free(ids);
	cJSON_Delete(doc);
	return n;
}

static void srv_incident_status(struct env *e, const char *id, char *out, size_t cap)
{
	char path[300];
	snprintf(path, sizeof(path), "/admin/incidents/%s", id);
	cJSON *doc = admin(e, path, NULL);
	const cJSON *st = cJSON_GetObjectItem(doc, "status");
	snprintf(out, cap, "%s", cJSON_IsString(st) ? st->valuestring : "");
	cJSON_Delete(doc);
}

/* ---- essd ---- */

static void write_conf(struct env *e)
{
	char text[2048], serial[600];
	snprintf(serial, sizeof(serial), "%s/serial", e->ee.dir);
	FILE *f = fopen(serial, "w");
	fputs("SN-ITEST-1\n", f);
	fclose(f);
	snprintf(text, sizeof(text),
	         "[log]\nlevel = debug\n[store]\ndir = %s/store\nposition_flush_s = 1\n"
	         "[keystore]\nkey_file = %s/kek\n"
	         "[server]\nurl = http://127.0.0.1:%d\nlong_poll_s = 2\nrequest_timeout_s = 10\n"
	         "connect_timeout_s = 2\n"
	         "[gps]\nport = %d\ninterval_s = 1\nmin_distance_m = 0\n"
	         "[control]\nsocket = %s\n%s%s%s[device]\nserial_file = %s\n"
	         "[heartbeat]\ninterval_s = 10\n",
	         e->ee.dir, e->ee.dir, e->ee.srv_port, e->ee.gps_port, e->ee.sock,
	         e->ctl_group ? "group = " : "", e->ctl_group ? e->ctl_group : "",
	         e->ctl_group ? "\n" : "", serial);
	f = fopen(e->ee.conf, "w");
	fputs(text, f);
	fclose(f);
}

/* argv for essd with args (NULL-terminated), under valgrind when asked. */
static void essd_argv(struct env *e, char *const args[], char *out[], size_t cap, char *logopt,
                      size_t logcap)
{
	static char *const vg[] = {"valgrind",
	                           "--quiet",
	                           "--leak-check=full",
	                           "--show-leak-kinds=definite,possible",
	                           "--errors-for-leak-kinds=definite,possible",
	                           "--error-exitcode=99", /* essd's own: 0, 1, 2 */
	                           "--track-fds=no"};
	size_t n = 0;
	if (valgrind_mode) {
		for (size_t i = 0; i < sizeof(vg) / sizeof(vg[0]); i++)
			out[n++] = vg[i];
		snprintf(logopt, logcap, "--log-file=%s/valgrind-%%p.log", e->ee.dir);
		out[n++] = logopt;
	}
	for (size_t i = 0; args[i] && n < cap - 1; i++)
		out[n++] = args[i];
	out[n] = NULL;
}

static int essd_cmd(struct env *e, const char *a1, const char *a2, const char *a3)
{
	char prog[500];
	snprintf(prog, sizeof(prog), "%s/essd", e->ee.build);
	char b1[200], b2[200], b3[200];
	snprintf(b1, sizeof(b1), "%s", a1);
	snprintf(b2, sizeof(b2), "%s", a2 ? a2 : "");
	snprintf(b3, sizeof(b3), "%s", a3 ? a3 : "");
	char *args[] = {prog, b1, "-c", e->ee.conf, a2 ? b2 : NULL, a3 ? b3 : NULL, NULL};
	char *argv[20], logopt[800];
	essd_argv(e, args, argv, 20, logopt, sizeof(logopt));
	pid_t p = spawn(e, "essd-cmd", argv);
	int status;
	waitpid(p, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void provision(struct env *e)
{
	char tok[128], body[256];
	snprintf(tok, sizeof(tok), CANARY_TOKEN "-%d", e->ee.ntok++);
	snprintf(body, sizeof(body), "{\"unit\":\"" UNIT "\",\"token\":\"%s\"}", tok);
	cJSON_Delete(admin(e, "/admin/tokens", body));
	assert_int_equal(essd_cmd(e, "provision", "--token", tok), 0);
	cJSON *d = admin(e, "/admin/devices", NULL);
	const cJSON *list = cJSON_GetObjectItem(d, "devices");
	const cJSON *last = cJSON_GetArrayItem(list, cJSON_GetArraySize(list) - 1);
	snprintf(e->ee.device_id, sizeof(e->ee.device_id), "%s",
	         cJSON_GetObjectItem(last, "device_id")->valuestring);
	cJSON_Delete(d);
}

static cJSON *call(struct env *e, const char *method, const char *params)
{
	return ee_call(&e->ee, method, params, 10000);
}

/* ok:true answer's result item (the whole answer to delete in *ans). */
static int call_ok(struct env *e, const char *method, const char *params)
{
	cJSON *a = call(e, method, params);
	int ok = a && cJSON_IsTrue(cJSON_GetObjectItem(a, "ok"));
	if (!ok) {
		char *s = a ? cJSON_PrintUnformatted(a) : NULL;
		print_message("# %s %s: %s\n", method, params ? params : "", s ? s : "no answer");
		free(s);
	}
	cJSON_Delete(a);
	return ok;
}

static void essd_start(struct env *e)
{
	char prog[500];
	snprintf(prog, sizeof(prog), "%s/essd", e->ee.build);
	char *args[] = {prog, "run", "-c", e->ee.conf, NULL};
	char *argv[20], logopt[800];
	essd_argv(e, args, argv, 20, logopt, sizeof(logopt));
	e->ee.essd = spawn(e, "essd", argv);
	for (int i = 0; i < 200 * slow; i++) {
		cJSON *a = call(e, "status", NULL);
		cJSON_Delete(a);
		if (a)
			return;
		usleep(25000);
	}
	fail_msg("essd did not start");
}

static double status_num(struct env *e, const char *a, const char *b)
{
	return ee_ctl_status_num(e->ee.sock, a, b, 10000); /* call()'s wait: valgrind */
}

#define WAIT_FOR(cond, ms) TU_WAIT_FOR(cond, (ms)*slow)

static int has_incident(struct env *e, const char *id)
{
	cJSON *a = call(e, "list", NULL), *it;
	int found = 0;
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(cJSON_GetObjectItem(a, "result"), "incidents"))
	{
		if (!strcmp(cJSON_GetObjectItem(it, "id")->valuestring, id))
			found = 1;
	}
	cJSON_Delete(a);
	return found;
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	assert_non_null(e);
	assert_int_equal(ee_open(&e->ee, "itessd"), 0);
	write_conf(e);
	*state = e;
	return 0;
}

/* valgrind's findings: every log it wrote in dir must be empty (--quiet
 * writes errors and leaks only). Returns how many were not. */
static int valgrind_findings(struct env *e)
{
	int bad = 0;
	DIR *d = opendir(e->ee.dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (strncmp(de->d_name, "valgrind-", 9) != 0)
			continue;
		char path[800];
		snprintf(path, sizeof(path), "%s/%s", e->ee.dir, de->d_name);
		size_t len = 0;
		unsigned char *text = tu_read_file(path, &len);
		if (len > 0) {
			bad++;
			print_message("# valgrind found, in %s:\n%.3000s\n", de->d_name,
			              (char *)text);
		}
		free(text);
	}
	if (d)
		closedir(d);
	return bad;
}

static int teardown(void **state)
{
	struct env *e = *state;
	int essd_rc = 0, vg_bad = 0;
	if (valgrind_mode && e->ee.essd > 0) {
		/* a clean stop, so that valgrind checks for leaks */
		essd_rc = stop(&e->ee.essd, SIGTERM, 60000);
		if (essd_rc != 0)
			print_message("# essd under valgrind exited with %d\n", essd_rc);
	}
	if (valgrind_mode)
		vg_bad = valgrind_findings(e);
	stop(&e->ee.essd, SIGKILL, 2000);
	stop(&e->fake, SIGKILL, 2000);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	/* nothing personal reached essd's log */
	char log[700];
	snprintf(log, sizeof(log), "%s/essd.log", e->ee.dir);
	size_t leaks = tu_file_count(log, "CANARY", 6);
	ee_close(&e->ee); /* the server, the directory */
	free(e);
	assert_int_equal(leaks, 0);
	assert_int_equal(essd_rc, 0);
	assert_int_equal(vg_bad, 0);
	return 0;
}

static void need_server(struct env *e)
{
	char prog[500];
	snprintf(prog, sizeof(prog), "%s/ess-refserver", e->ee.build);
	if (access(prog, X_OK) != 0) {
		print_message("# no reference server program: skipped\n");
		skip();
	}
}

/* ---- scenarios ---- */

static void test_offline_signals(void **state)
{
	struct env *e = *state;
	need_server(e);
	/* not provisioned: a clear refusal */
	assert_int_equal(essd_cmd(e, "run", NULL, NULL), 1);
	srv_start(e);
	provision(e);
	/* provisioning again needs --force */
	assert_int_equal(essd_cmd(e, "provision", "--token", "whatever-token"), 2);
	stop(&e->ee.srv, SIGTERM, 3000);
	/* the server is unreachable: essd runs anyway */
	essd_start(e);
	assert_true(status_num(e, "online", NULL) == -1);
	assert_true(call_ok(e, "sos", "{\"text\":\"offline sos\"}"));
	assert_true(status_num(e, "queue", "events") == 1);
	/* SIGHUP reloads and keeps serving */
	kill(e->ee.essd, SIGHUP);
	usleep(200000);
	assert_true(call_ok(e, "status", NULL));
	/* SIGTERM stops cleanly and fast, socket removed */
	int64_t t0 = tu_now_ms();
	assert_int_equal(stop(&e->ee.essd, SIGTERM, 3000 * slow), 0);
	assert_true(tu_now_ms() - t0 < 2000 * slow);
	assert_int_not_equal(access(e->ee.sock, F_OK), 0);
	/* the SOS is still queued after the restart, and drains when online */
	srv_start(e);
	essd_start(e);
	WAIT_FOR(srv_accepted(e, "sos") == 1 && status_num(e, "queue", "events") == 0, 15000);
	assert_int_equal(srv_accepted(e, "sos"), 1);
}

static void test_ctl_hostile(void **state)
{
	struct env *e = *state;
	need_server(e);
	srv_start(e);
	provision(e);
	essd_start(e);
	struct ctl_conn *c;
	char err[256];
	cJSON *line;
	assert_int_equal(ctl_conn_open(e->ee.sock, &c, err, sizeof(err)), 0);
	static const char *const bad[] = {
	    "not json\n",
	    "[1,2,3]\n",
	    "{\"id\":1,\"method\":\"frobnicate\"}\n",
	    "{\"id\":2,\"method\":\"show\",\"params\":{\"id\":[1]}}\n",
	    "{\"id\":3,\"method\":\"set\",\"params\":{\"id\":\"X\",\"status\":\"up\"}}\n",
	    "{\"id\":4,\"method\":\"note\",\"params\":{\"id\":\"X\",\"text\":\"\\u0000\"}}\n",
	    "{\"id\":5,\"method\":\"list\",\"params\":\"x\"}\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(ctl_conn_send_raw(c, bad[i], strlen(bad[i])), 0);
		assert_int_equal(ctl_conn_read_line(c, 5000, &line), 0);
		assert_false(cJSON_IsTrue(cJSON_GetObjectItem(line, "ok")));
		assert_non_null(cJSON_GetObjectItem(line, "error"));
		cJSON_Delete(line);
	}
	/* oversized: refused, then the connection (or a new one) keeps serving */
	size_t big = CTL_LINE_MAX * 2;
	char *blob = malloc(big + 1);
	memset(blob, 'x', big);
	blob[big] = '\n';
	ctl_conn_send_raw(c, blob, big + 1);
	free(blob);
	cJSON *ans = NULL;
	int rc = ctl_conn_call(c, "status", NULL, 5000, &ans);
	if (rc == 0) {
		/* an error line for the long one may come first */
		cJSON_Delete(ans);
	}
	ctl_conn_close(c);
	assert_true(call_ok(e, "status", NULL));
	/* privileged unlock works for our own uid */
	assert_true(call_ok(e, "lock", NULL));
	cJSON *a = call(e, "list", NULL);
	assert_string_equal(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(a, "error"), "code")->valuestring, "locked");
	cJSON_Delete(a);
	assert_true(call_ok(e, "unlock", NULL));
	assert_true(call_ok(e, "list", NULL));
	assert_true(e->ee.essd > 0 && waitpid(e->ee.essd, NULL, WNOHANG) == 0); /* still alive */
}

static void test_chain_outages_kill(void **state)
{
	struct env *e = *state;
	char st[64];
	need_server(e);
	srv_start(e);
	provision(e);
	essd_start(e);
	/* an assignment arrives; a receipt goes back; a status chain follows */
	srv_incident(e, "INC-1", 1);
	WAIT_FOR(has_incident(e, "INC-1"), 10000);
	assert_true(has_incident(e, "INC-1"));
	assert_true(call_ok(e, "ack", "{\"id\":\"INC-1\"}"));
	assert_true(call_ok(e, "set", "{\"id\":\"INC-1\",\"status\":\"en_route\"}"));
	assert_true(call_ok(e, "set", "{\"id\":\"INC-1\",\"status\":\"on_scene\"}"));
	assert_true(
	    call_ok(e, "note", "{\"id\":\"INC-1\",\"text\":\"" CANARY_NOTE " " CANARY_THAI "\"}"));
	assert_true(call_ok(e, "set", "{\"id\":\"INC-1\",\"status\":\"resolved\"}"));
	WAIT_FOR(srv_accepted(e, NULL) == 6, 10000);
	assert_int_equal(srv_accepted(e, "receipt"), 1);
	assert_int_equal(srv_accepted(e, "status"), 4);
	assert_int_equal(srv_accepted(e, "note"), 1);
	srv_incident_status(e, "INC-1", st, sizeof(st));
	assert_string_equal(st, "resolved");

	/* the server dies; the responder goes on; the server returns: drained */
	srv_incident(e, "INC-2", 0);
	WAIT_FOR(has_incident(e, "INC-2"), 10000);
	WAIT_FOR(srv_accepted(e, "receipt") == 2, 10000);
	stop(&e->ee.srv, SIGKILL, 2000);
	assert_true(call_ok(e, "ack", "{\"id\":\"INC-2\"}"));
	assert_true(call_ok(e, "set", "{\"id\":\"INC-2\",\"status\":\"en_route\"}"));
	for (int i = 0; i < 150; i++) {
		char p[128];
		snprintf(p, sizeof(p), "{\"id\":\"INC-2\",\"text\":\"offline note %d\"}", i);
		assert_true(call_ok(e, "note", p));
	}
	assert_true(status_num(e, "queue", "events") == 152);
	/* essd killed with SIGKILL mid-drain (the server applied the batch, its
	 * answer is held back), then restarted: the batch goes again and takes
	 * effect once. essd is held stopped while the server comes back and
	 * gets its delay, or its retry could land before the delay is set and
	 * drain the queue with nothing held back. */
	assert_int_equal(kill(e->ee.essd, SIGSTOP), 0);
	srv_start(e);
	cJSON_Delete(admin(e, "/admin/faults", "{\"delay_ms\":3000,\"delay_next\":0}"));
	assert_int_equal(kill(e->ee.essd, SIGCONT), 0);
	WAIT_FOR(srv_accepted(e, "note") > 1, 20000);
	assert_true(srv_accepted(e, "note") > 1);
	assert_true(status_num(e, "queue", "events") > 0); /* no answer yet */
	stop(&e->ee.essd, SIGKILL, 2000);
	cJSON_Delete(admin(e, "/admin/faults", "{\"delay_ms\":0}"));
	essd_start(e);
	WAIT_FOR(status_num(e, "queue", "events") == 0, 30000);
	assert_true(status_num(e, "queue", "events") == 0);
	WAIT_FOR(srv_accepted(e, NULL) == 6 + 1 + 152, 10000);
	assert_int_equal(srv_accepted(e, NULL), 6 + 1 + 152); /* each once, none lost */
	assert_int_equal(srv_accepted(e, "note"), 1 + 150);
	srv_incident_status(e, "INC-2", st, sizeof(st));
	assert_string_equal(st, "en_route");
	/* the server cancels: a status is refused locally with a clear error */
	cJSON_Delete(admin(e, "/admin/incidents/INC-2/cancel", "{}"));
	cJSON *a = NULL;
	int64_t until = tu_now_ms() + 10000;
	for (;;) {
		a = call(e, "set", "{\"id\":\"INC-2\",\"status\":\"on_scene\"}");
		if (!cJSON_IsTrue(cJSON_GetObjectItem(a, "ok")) || tu_now_ms() > until)
			break;
		cJSON_Delete(a);
		a = NULL;
		usleep(200000);
	}
	assert_non_null(a);
	assert_string_equal(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(a, "error"), "code")->valuestring, "conflict");
	cJSON_Delete(a);
}

/* In a child process as uid:gid (no other groups), connects to the control
 * socket and calls method. Returns 0: refused at connect (EACCES); 1: ok;
 * 2: answered "forbidden"; 3: another answer; 4: another connect error. */
static int as_user(struct env *e, uid_t uid, gid_t gid, const char *method)
{
	pid_t p = fork();
	assert_true(p >= 0);
	if (p == 0) {
		if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
		    setresuid(uid, uid, uid) < 0)
			_exit(10);
		struct ctl_conn *c;
		char err[256];
		int rc = ctl_conn_open(e->ee.sock, &c, err, sizeof(err));
		if (rc == -EACCES)
			_exit(0);
		if (rc < 0)
			_exit(4);
		cJSON *ans = NULL;
		rc = ctl_conn_call(c, method, NULL, 10000, &ans);
		const cJSON *code = cJSON_GetObjectItem(cJSON_GetObjectItem(ans, "error"), "code");
		if (rc == 0 && cJSON_IsTrue(cJSON_GetObjectItem(ans, "ok")))
			_exit(1);
		_exit(cJSON_IsString(code) && !strcmp(code->valuestring, "forbidden") ? 2 : 3);
	}
	int st;
	waitpid(p, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 99;
}

/* How many heartbeats the server has had from the device. */
static int srv_heartbeats(struct env *e)
{
	char path[300];
	snprintf(path, sizeof(path), "/admin/devices/%s/heartbeats", e->ee.device_id);
	cJSON *doc = admin(e, path, NULL);
	int n = cJSON_GetArraySize(cJSON_GetObjectItem(doc, "heartbeats"));
	cJSON_Delete(doc);
	return n;
}

/* Forged or replayed items the server still has to send. */
static int srv_extras_pending(struct env *e)
{
	cJSON *f = admin(e, "/admin/faults", NULL);
	int n = cJSON_GetObjectItem(f, "extra_items_pending")->valueint;
	cJSON_Delete(f);
	return n;
}

/* Hostile server side and hostile local users, at the daemon level:
 *   - an incident signed by another key, one correctly signed for another
 *     unit, and a replay of a version already held: none stored, no receipt;
 *   - a wipe command signed by another key, and one correctly signed for
 *     another device: not carried out (a real command right after is, so
 *     the path works);
 *   - the control socket: a user outside the socket's group is refused at
 *     connect; one in the group ([control] group) is served but refused the
 *     privileged method (unlock). */
static void test_security(void **state)
{
	struct env *e = *state;
	need_server(e);
	if (geteuid() != 0)
		fail_msg("needs root, to act as another user (nobody) against the socket");
	srv_start(e);
	cJSON_Delete(admin_req(e, "PUT", "/admin/config",
	                       "{\"position_interval_s\":5,\"position_min_distance_m\":10,"
	                       "\"heartbeat_interval_s\":10,\"long_poll_s\":2,"
	                       "\"retention_hours\":72,\"max_batch_events\":500}"));
	provision(e);
	essd_start(e);
	srv_incident(e, "INC-S1", 0);
	WAIT_FOR(has_incident(e, "INC-S1") && srv_accepted(e, "receipt") == 1, 10000);
	assert_int_equal(srv_accepted(e, "receipt"), 1);

	/* forged, another unit's, a replay; then a marker incident after them */
	cJSON_Delete(admin(e, "/admin/faults", "{\"forge_item\":\"bad_signature\"}"));
	cJSON_Delete(admin(e, "/admin/faults", "{\"forge_item\":\"other_unit\"}"));
	cJSON_Delete(
	    admin(e, "/admin/faults", "{\"redeliver\":{\"id\":\"INC-S1\",\"version\":1}}"));
	/* (a held poll takes the first at once) */
	WAIT_FOR(srv_extras_pending(e) == 0, 10000);
	assert_int_equal(srv_extras_pending(e), 0);
	srv_incident(e, "INC-S2", 0);
	WAIT_FOR(has_incident(e, "INC-S2") && srv_accepted(e, "receipt") == 2, 10000);
	assert_true(has_incident(e, "INC-S2"));
	assert_true(status_num(e, "incidents", NULL) == 2); /* S1 and S2, nothing else */
	assert_int_equal(srv_accepted(e, "receipt"), 2);    /* none for the replay */

	/* forged wipes: the daemon goes on with everything in place */
	static const char *const forged[] = {"{\"forge_command\":\"bad_signature\"}",
	                                     "{\"forge_command\":\"other_device\"}"};
	for (int i = 0; i < 2; i++) {
		cJSON_Delete(admin(e, "/admin/faults", forged[i]));
		int hb = srv_heartbeats(e);
		WAIT_FOR(srv_heartbeats(e) >= hb + 2, 30000);
		assert_true(srv_heartbeats(e) >= hb + 2);
		assert_true(e->ee.essd > 0 && waitpid(e->ee.essd, NULL, WNOHANG) == 0);
		assert_true(status_num(e, "wiping", NULL) == -1); /* false */
		assert_true(status_num(e, "incidents", NULL) == 2);
	}
	/* both arrived and were refused for the right reason */
	char log[700];
	snprintf(log, sizeof(log), "%s/essd.log", e->ee.dir);
	assert_true(tu_file_count(log, "command envelope dropped", 24) >= 1);
	assert_true(tu_file_count(log, "is for another device: refused", 30) >= 1);
	/* the same path with a real command acts */
	char path[300];
	snprintf(path, sizeof(path), "/admin/devices/%s/commands", e->ee.device_id);
	cJSON_Delete(admin(e, path, "{\"type\":\"lock\"}"));
	WAIT_FOR(status_num(e, "locked", NULL) == 1, 30000);
	assert_true(status_num(e, "locked", NULL) == 1);
	assert_true(call_ok(e, "unlock", NULL));

	/* the socket: others may pass the directory, the socket's mode decides */
	assert_int_equal(chmod(e->ee.dir, 0711), 0);
	assert_int_equal(as_user(e, 65534, 65534, "status"), 0);
	e->ctl_group = "nogroup"; /* gid 65534 on Debian */
	write_conf(e);
	assert_int_equal(stop(&e->ee.essd, SIGTERM, 3000 * slow), 0);
	essd_start(e);
	struct stat st;
	assert_int_equal(stat(e->ee.sock, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0660);
	assert_int_equal(st.st_gid, 65534);
	assert_int_equal(as_user(e, 65534, 65534, "status"), 1); /* in the group */
	assert_int_equal(as_user(e, 65534, 65534, "unlock"), 2); /* not privileged */
	assert_int_equal(as_user(e, 65534, 1, "status"), 0);     /* outside it */
	assert_true(call_ok(e, "unlock", NULL));                 /* root may */
}

static void gen_log(struct env *e, const char *path, const char *skip)
{
	char prog[500];
	snprintf(prog, sizeof(prog), "%s/tools/nmeagen", e->ee.build);
	pid_t p = fork();
	if (p == 0) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 1);
		execl(prog, "nmeagen", "--seconds", "600", "--start", "now", "--skip", skip,
		      (char *)NULL);
		_exit(127);
	}
	int st;
	waitpid(p, &st, 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void gpsfake_start(struct env *e, const char *log)
{
	char flog[700];
	snprintf(flog, sizeof(flog), "%s/gpsfake.log", e->ee.dir);
	e->fake = tp_gpsfake(flog, e->ee.gps_port, log, "0.1");
	assert_true(e->fake > 0);
}

static void test_gps(void **state)
{
	struct env *e = *state;
	need_server(e);
	if (system("command -v gpsfake >/dev/null 2>&1") != 0) {
		print_message("# gpsfake not installed: skipped\n");
		skip();
	}
	char log1[600], log2[600];
	snprintf(log1, sizeof(log1), "%s/drive1.nmea", e->ee.dir);
	snprintf(log2, sizeof(log2), "%s/drive2.nmea", e->ee.dir);
	gen_log(e, log1, "0");
	gen_log(e, log2, "120");
	srv_start(e);
	provision(e);
	gpsfake_start(e, log1);
	essd_start(e);
	WAIT_FOR(status_num(e, "last_fix", "age_s") >= 0, 20000);
	assert_true(status_num(e, "last_fix", "age_s") >= 0);
	/* nmeagen's RMC has speed and course: status carries them (docs/essd.md) */
	WAIT_FOR(status_num(e, "last_fix", "speed_m_s") >= 0 &&
	             status_num(e, "last_fix", "track_deg") >= 0,
	         10000);
	assert_true(status_num(e, "last_fix", "speed_m_s") >= 0);
	assert_true(status_num(e, "last_fix", "track_deg") >= 0);
	assert_true(call_ok(e, "sync", NULL));
	/* gpsd killed and restarted: fixes come again */
	stop(&e->fake, SIGTERM, 2000);
	usleep(300000);
	assert_true(call_ok(e, "status", NULL));
	gpsfake_start(e, log2);
	double pos0 = status_num(e, "queue", "positions");
	(void)pos0;
	WAIT_FOR(status_num(e, "gps_connected", NULL) == 1, 20000);
	assert_true(status_num(e, "gps_connected", NULL) == 1);
	WAIT_FOR(status_num(e, "last_fix", "age_s") == 0, 10000);
	/* the trail reaches the server */
	char path[300];
	snprintf(path, sizeof(path), "/admin/devices/%s/positions", e->ee.device_id);
	int n = 0;
	int64_t until = tu_now_ms() + 45000;
	while (n == 0 && tu_now_ms() < until) {
		call_ok(e, "sync", NULL);
		cJSON *p = admin(e, path, NULL);
		const cJSON *fx = cJSON_GetObjectItem(p, "fixes");
		n = cJSON_GetArraySize(fx);
		cJSON_Delete(p);
		if (!n)
			usleep(500000);
	}
	assert_true(n > 0);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_offline_signals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ctl_hostile, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_chain_outages_kill, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gps, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_security, setup, teardown),
	};
	const char *vg = getenv("ESS_VALGRIND");
	size_t n = sizeof(tests) / sizeof(tests[0]);
	if (vg && *vg) {
		valgrind_mode = 1;
		slow = 6;
		if (strcmp(vg, "all") != 0)
			n = 2; /* the short form: offline start and restart, hostile requests */
	}
	int rc = _cmocka_run_group_tests(valgrind_mode ? "itest_essd_valgrind" : "itest_essd",
	                                 tests, n, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
