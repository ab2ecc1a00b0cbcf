#include "tests/lib/essdenv.h"

#include "agent/ctl_client.h"
#include "agent/store.h"
#include "hal/keystore.h"
#include "tests/lib/lpctl.h"
#include "tests/lib/proc.h"
#include "tests/lib/refsrv.h"
#include "tests/lib/testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int ee_open(struct essenv *e, const char *tag)
{
	memset(e, 0, sizeof(*e));
	const char *b = getenv("ESS_BUILD");
	snprintf(e->build, sizeof(e->build), "%s", b && b[0] ? b : "build/host");
	e->dir = tu_tmpdir(tag);
	e->srv_port = tu_free_port();
	e->gps_port = tu_free_port();
	snprintf(e->conf, sizeof(e->conf), "%s/essd.conf", e->dir);
	snprintf(e->sock, sizeof(e->sock), "%s/essd.sock", e->dir);
	return 0;
}

void ee_close(struct essenv *e)
{
	if (!e->dir)
		return;
	tp_stop(&e->essd, SIGKILL, 2000);
	tp_stop(&e->proxy, SIGKILL, 2000);
	tp_stop(&e->srv, SIGKILL, 2000);
	if (getenv("ESS_KEEP_DIR"))
		fprintf(stderr, "# kept %s\n", e->dir), free(e->dir);
	else
		tu_rmrf(e->dir);
	e->dir = NULL;
}

/* A child in its own process group, output appended to dir/NAME.log. */
static pid_t spawn(struct essenv *e, const char *name, char *const argv[])
{
	char log[700];
	snprintf(log, sizeof(log), "%s/%s.log", e->dir, name);
	return tp_spawn(log, argv, NULL);
}

/* ---- the reference server ---- */

cJSON *ee_admin(struct essenv *e, const char *method, const char *path, const char *json,
                long *code)
{
	char base[64];
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", e->srv_port);
	/* the long form reads back hundreds of thousands of events: 300 s */
	char *body = refsrv_admin_body(base, EE_ADMIN, method, path, json, 300L, 1, code);
	cJSON *doc = body ? cJSON_Parse(body) : NULL;
	free(body);
	return doc;
}

int ee_faults(struct essenv *e, const char *json)
{
	long code;
	cJSON_Delete(ee_admin(e, json ? "POST" : "DELETE", "/admin/faults", json, &code));
	return code == 200 ? 0 : -EIO;
}

int ee_srv_start(struct essenv *e)
{
	char listen[64], db[600], key[600], pf[600], prog[500];
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", e->srv_port);
	snprintf(db, sizeof(db), "%s/srv.db", e->dir);
	snprintf(key, sizeof(key), "%s/srv.key", e->dir);
	snprintf(pf, sizeof(pf), "%s/srv.port", e->dir);
	snprintf(prog, sizeof(prog), "%s/ess-refserver", e->build);
	if (access(prog, X_OK) != 0)
		return -ENOENT;
	unlink(pf);
	char *argv[] = {prog, "--listen",      listen,   "--db",        db, "--key",
	                key,  "--admin-token", EE_ADMIN, "--port-file", pf, NULL};
	/* a port freed a moment ago may still be in TIME_WAIT on a restart:
	 * the server sets SO_REUSEADDR, but retry a few times anyway */
	for (int attempt = 0; attempt < 5; attempt++) {
		e->srv = spawn(e, "srv", argv);
		for (int i = 0; i < 400; i++) {
			if (access(pf, R_OK) == 0) {
				e->srv_starts++;
				return 0;
			}
			if (waitpid(e->srv, NULL, WNOHANG) == e->srv) {
				e->srv = 0;
				break;
			}
			usleep(10000);
		}
		tp_stop(&e->srv, SIGKILL, 1000);
		usleep(200000);
	}
	return -ETIMEDOUT;
}

/* ---- the proxy ---- */

int ee_proxy_start(struct essenv *e, char *const *extra)
{
	char prog[500], conn[64], pf[600], cf[600];
	snprintf(prog, sizeof(prog), "%s/tools/linkproxy", e->build);
	snprintf(conn, sizeof(conn), "127.0.0.1:%d", e->srv_port);
	snprintf(pf, sizeof(pf), "%s/proxy.port", e->dir);
	snprintf(cf, sizeof(cf), "%s/proxy.ctl", e->dir);
	if (access(prog, X_OK) != 0)
		return -ENOENT;
	char *argv[32] = {prog,
	                  "--listen",
	                  "127.0.0.1:0",
	                  "--connect",
	                  conn,
	                  "--port-file",
	                  pf,
	                  "--control-port-file",
	                  cf,
	                  "--seed",
	                  "5"};
	int n = 11;
	for (int i = 0; extra && extra[i] && n < 30; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	e->proxy = spawn(e, "proxy", argv);
	return lpc_wait_ports(pf, cf, 4000, &e->proxy_port, &e->ctl_port);
}

int ee_proxy_cmd(struct essenv *e, const char *line, char *ans, size_t cap)
{
	return lpc_cmd(e->ctl_port, line, ans, cap);
}

/* ---- essd ---- */

int ee_write_conf(struct essenv *e, const char *extra)
{
	char serial[600];
	snprintf(serial, sizeof(serial), "%s/serial", e->dir);
	FILE *f = fopen(serial, "w");
	if (!f)
		return -errno;
	fputs("SN-CHAOS-1\n", f);
	fclose(f);
	f = fopen(e->conf, "w");
	if (!f)
		return -errno;
	/* short timeouts: a fault test wants many recoveries in little time */
	fprintf(f,
	        "[log]\nlevel = debug\n[store]\ndir = %s/store\nposition_flush_s = 1\n"
	        "[keystore]\nkey_file = %s/kek\n"
	        "[server]\nurl = http://127.0.0.1:%d\nlong_poll_s = 2\nrequest_timeout_s = 6\n"
	        "connect_timeout_s = 2\n"
	        "[gps]\nport = %d\ninterval_s = 1\nmin_distance_m = 0\n"
	        "[control]\nsocket = %s\n[device]\nserial_file = %s\n[heartbeat]\ninterval_s = 10\n"
	        "%s",
	        e->dir, e->dir, e->proxy ? e->proxy_port : e->srv_port, e->gps_port, e->sock,
	        serial, extra ? extra : "");
	return fclose(f) == 0 ? 0 : -EIO;
}

static int essd_cmd(struct essenv *e, char *const args[])
{
	char prog[500];
	snprintf(prog, sizeof(prog), "%s/essd", e->build);
	char *argv[8] = {prog};
	int n = 1;
	for (int i = 0; args[i] && n < 7; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	pid_t p = spawn(e, "essd-cmd", argv);
	int status;
	if (waitpid(p, &status, 0) != p)
		return -ECHILD;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

int ee_provision(struct essenv *e)
{
	char tok[128], body[256];
	long code;
	snprintf(tok, sizeof(tok), "chaos-token-%d", e->ntok++);
	snprintf(body, sizeof(body), "{\"unit\":\"" EE_UNIT "\",\"token\":\"%s\"}", tok);
	cJSON_Delete(ee_admin(e, "POST", "/admin/tokens", body, &code));
	if (code != 201 && code != 200)
		return -EIO;
	char *args[] = {"provision", "-c", e->conf, "--token", tok, NULL};
	if (essd_cmd(e, args) != 0)
		return -EIO;
	cJSON *d = ee_admin(e, "GET", "/admin/devices", NULL, &code);
	const cJSON *list = cJSON_GetObjectItem(d, "devices");
	const cJSON *last = cJSON_GetArrayItem(list, cJSON_GetArraySize(list) - 1);
	const cJSON *id = cJSON_GetObjectItem(last, "device_id");
	int rc = cJSON_IsString(id) ? 0 : -ENOENT;
	if (rc == 0)
		snprintf(e->device_id, sizeof(e->device_id), "%s", id->valuestring);
	cJSON_Delete(d);
	return rc;
}

int ee_essd_spawn(struct essenv *e)
{
	char prog[500];
	snprintf(prog, sizeof(prog), "%s/essd", e->build);
	char *argv[] = {prog, "run", "-c", e->conf, NULL};
	e->essd = spawn(e, "essd", argv);
	if (e->essd < 0) {
		int rc = (int)e->essd;
		e->essd = 0;
		return rc;
	}
	e->essd_starts++;
	return 0;
}

int ee_essd_wait(struct essenv *e, int wait_ms)
{
	int64_t until = tu_now_ms() + wait_ms;
	while (tu_now_ms() < until) {
		cJSON *a = ee_call(e, "status", NULL, 2000);
		cJSON_Delete(a);
		if (a)
			return 0;
		siginfo_t si = {0};
		/* WNOWAIT: the caller reaps it and reads how it ended */
		if (e->essd > 0 &&
		    waitid(P_PID, (id_t)e->essd, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
		    si.si_pid == e->essd)
			return -ECHILD; /* essd has ended */
		usleep(5000);
	}
	return -ETIMEDOUT;
}

int ee_essd_start(struct essenv *e)
{
	int rc = ee_essd_spawn(e);
	return rc < 0 ? rc : ee_essd_wait(e, 15000);
}

cJSON *ee_ctl_call(const char *sock, const char *method, const char *params, int timeout_ms)
{
	struct ctl_conn *c;
	char err[256];
	cJSON *ans = NULL;
	if (ctl_conn_open(sock, &c, err, sizeof(err)) < 0)
		return NULL;
	int rc = ctl_conn_call(c, method, params ? cJSON_Parse(params) : NULL, timeout_ms, &ans);
	ctl_conn_close(c);
	if (rc < 0) {
		cJSON_Delete(ans);
		return NULL;
	}
	return ans;
}

cJSON *ee_call(struct essenv *e, const char *method, const char *params, int timeout_ms)
{
	return ee_ctl_call(e->sock, method, params, timeout_ms);
}

double ee_ctl_status_num(const char *sock, const char *a, const char *b, int timeout_ms)
{
	cJSON *ans = ee_ctl_call(sock, "status", NULL, timeout_ms);
	const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(ans, "result"), a);
	if (b)
		v = cJSON_GetObjectItem(v, b);
	double d = cJSON_IsNumber(v) ? v->valuedouble : cJSON_IsTrue(v) ? 1 : -1;
	cJSON_Delete(ans);
	return d;
}

double ee_status_num(struct essenv *e, const char *a, const char *b)
{
	return ee_ctl_status_num(e->sock, a, b, 5000);
}

int ee_wait_drained(struct essenv *e, int wait_ms)
{
	int64_t until = tu_now_ms() + wait_ms, kick = 0;
	while (tu_now_ms() < until) {
		if (ee_status_num(e, "queue", "events") == 0)
			return 0;
		if (tu_now_ms() - kick > 2000) {
			cJSON_Delete(ee_call(e, "sync", NULL, 2000));
			kick = tu_now_ms();
		}
		usleep(50000);
	}
	return -ETIMEDOUT;
}

static int has_incident(struct essenv *e, const char *id)
{
	cJSON *a = ee_call(e, "list", NULL, 5000), *it;
	int found = 0;
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(cJSON_GetObjectItem(a, "result"), "incidents"))
	{
		const cJSON *v = cJSON_GetObjectItem(it, "id");
		if (cJSON_IsString(v) && !strcmp(v->valuestring, id))
			found = 1;
	}
	cJSON_Delete(a);
	return found;
}

int ee_incident(struct essenv *e, const char *id)
{
	char doc[512], params[128];
	long code;
	snprintf(doc, sizeof(doc),
	         "{\"id\":\"%s\",\"unit\":\"" EE_UNIT
	         "\",\"category\":\"confinement\",\"priority\":2,\"silent\":false,"
	         "\"location\":{\"lat\":13.7466,\"lon\":100.5393,\"accuracy_m\":8},"
	         "\"summary\":\"chaos test incident\"}",
	         id);
	cJSON_Delete(ee_admin(e, "POST", "/admin/incidents", doc, &code));
	if (code != 201)
		return -EIO;
	int64_t until = tu_now_ms() + 20000;
	while (!has_incident(e, id)) {
		if (tu_now_ms() > until)
			return -ETIMEDOUT;
		usleep(50000);
	}
	snprintf(params, sizeof(params), "{\"id\":\"%s\"}", id);
	cJSON *a = ee_call(e, "ack", params, 10000);
	int ok = cJSON_IsTrue(cJSON_GetObjectItem(a, "ok"));
	cJSON_Delete(a);
	return ok ? 0 : -EIO;
}

/* ---- the ledger ---- */

void ee_ledger_init(struct ee_ledger *l, const char *prefix)
{
	memset(l, 0, sizeof(*l));
	snprintf(l->prefix, sizeof(l->prefix), "%s", prefix);
}

void ee_ledger_free(struct ee_ledger *l)
{
	free(l->a);
	memset(l, 0, sizeof(*l));
}

static struct ee_action *ledger_add(struct ee_ledger *l, size_t *index)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		struct ee_action *a = realloc(l->a, cap * sizeof(*a));
		if (!a)
			abort(); /* test equipment: cannot go on */
		l->a = a;
		l->cap = cap;
	}
	*index = l->n;
	memset(&l->a[l->n], 0, sizeof(l->a[0]));
	return &l->a[l->n++];
}

/* Takes the seq and event_id of an acknowledged action's result. */
static int ledger_ack(struct ee_ledger *l, struct ee_action *a, const cJSON *result)
{
	const cJSON *seq = cJSON_GetObjectItem(result, "seq");
	const cJSON *id = cJSON_GetObjectItem(result, "event_id");
	if (!cJSON_IsNumber(seq) || !cJSON_IsString(id) || strlen(id->valuestring) != 36)
		return 0;
	a->seq = (int64_t)seq->valuedouble;
	snprintf(a->event_id, sizeof(a->event_id), "%s", id->valuestring);
	if (a->seq <= l->last_seq && l->seq_back++ < 5)
		fprintf(stderr, "# essd acknowledged seq %lld after %lld\n", (long long)a->seq,
		        (long long)l->last_seq);
	l->last_seq = a->seq;
	return 1;
}

static void action_params(const struct ee_ledger *l, size_t index, const char *incident, char *out,
                          size_t cap)
{
	if (incident)
		snprintf(out, cap, "{\"id\":\"%s\",\"text\":\"%s %zu\"}", incident, l->prefix,
		         index);
	else
		snprintf(out, cap, "{\"text\":\"%s %zu\"}", l->prefix, index);
}

int ee_act(struct essenv *e, struct ee_ledger *l, const char *incident, int timeout_ms, char *code,
           size_t codecap)
{
	size_t index;
	char params[256], err[256];
	struct ctl_conn *c;
	cJSON *ans = NULL;
	if (ctl_conn_open(e->sock, &c, err, sizeof(err)) < 0) {
		usleep(2000); /* nothing was sent: not an action tried */
		return -1;
	}
	struct ee_action *a = ledger_add(l, &index);
	action_params(l, index, incident, params, sizeof(params));
	if (ctl_conn_call(c, incident ? "note" : "sos", cJSON_Parse(params), timeout_ms, &ans) <
	    0) {
		cJSON_Delete(ans);
		ans = NULL;
	}
	ctl_conn_close(c);
	int acked = 0;
	if (code && codecap)
		code[0] = 0;
	if (cJSON_IsTrue(cJSON_GetObjectItem(ans, "ok"))) {
		acked = ledger_ack(l, a, cJSON_GetObjectItem(ans, "result"));
	} else if (ans && code) {
		const cJSON *ec = cJSON_GetObjectItem(cJSON_GetObjectItem(ans, "error"), "code");
		snprintf(code, codecap, "%s", cJSON_IsString(ec) ? ec->valuestring : "?");
	}
	cJSON_Delete(ans);
	return acked;
}

int ee_act_essctl(struct essenv *e, struct ee_ledger *l, const char *incident)
{
	size_t index;
	char prog[500], text[64];
	struct ee_action *a = ledger_add(l, &index);
	snprintf(prog, sizeof(prog), "%s/essctl", e->build);
	snprintf(text, sizeof(text), "%s %zu", l->prefix, index);
	int pfd[2];
	if (pipe(pfd) < 0)
		return 0;
	pid_t p = fork();
	if (p < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return 0;
	}
	if (p == 0) {
		dup2(pfd[1], 1);
		int dn = open("/dev/null", O_WRONLY);
		if (dn >= 0)
			dup2(dn, 2); /* "essd not reachable" is expected here */
		close(pfd[0]);
		close(pfd[1]);
		if (incident)
			execl(prog, "essctl", "-s", e->sock, "--json", "note", incident, text,
			      (char *)NULL);
		else
			execl(prog, "essctl", "-s", e->sock, "--json", "sos", text, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	char buf[4096];
	size_t n = 0;
	ssize_t r;
	while (n < sizeof(buf) - 1 && (r = read(pfd[0], buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = 0;
	close(pfd[0]);
	int st;
	waitpid(p, &st, 0);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 3 && index == l->n - 1) {
		l->n--; /* essd not reachable: nothing was sent */
		usleep(2000);
		return -1;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return 0; /* refused, or cut off: not acknowledged */
	cJSON *res = cJSON_Parse(buf);
	int acked = ledger_ack(l, a, res);
	cJSON_Delete(res);
	return acked;
}

/* The ledger index of an event's text "<prefix> <index>", or -1. */
static long text_index(const struct ee_ledger *l, const cJSON *ev)
{
	const cJSON *t = cJSON_GetObjectItem(ev, "text");
	size_t plen = strlen(l->prefix);
	if (!cJSON_IsString(t) || strncmp(t->valuestring, l->prefix, plen) != 0 ||
	    t->valuestring[plen] != ' ')
		return -1;
	char *end;
	long i = strtol(t->valuestring + plen + 1, &end, 10);
	if (*end || i < 0 || (size_t)i >= l->n)
		return -1;
	return i;
}

int ee_ledger_check(struct essenv *e, struct ee_ledger *l, struct ee_result *r)
{
	char path[300];
	long code;
	memset(r, 0, sizeof(*r));
	snprintf(path, sizeof(path), "/admin/devices/%s/events", e->device_id);
	cJSON *doc = ee_admin(e, "GET", path, NULL, &code), *it;
	if (code != 200 || !doc) {
		cJSON_Delete(doc);
		return -EIO;
	}
	for (size_t i = 0; i < l->n; i++)
		l->a[i].accepted = 0;
	/* the contract: events go in seq order, SOS ahead of everything else; so
	 * seq grows within each of the two queues */
	int64_t last_seq[2] = {0, 0};
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(doc, "events"))
	{
		const cJSON *ev = cJSON_GetObjectItem(it, "event");
		const cJSON *res = cJSON_GetObjectItem(it, "result");
		if (!cJSON_IsString(res) || strcmp(res->valuestring, "accepted") != 0)
			continue;
		const cJSON *seq = cJSON_GetObjectItem(ev, "seq");
		const cJSON *type = cJSON_GetObjectItem(ev, "type");
		const cJSON *id = cJSON_GetObjectItem(ev, "event_id");
		int64_t s = cJSON_IsNumber(seq) ? (int64_t)seq->valuedouble : -1;
		int q = cJSON_IsString(type) && strcmp(type->valuestring, "sos") == 0;
		if (s <= last_seq[q] && r->out_of_order++ < 5)
			fprintf(stderr, "# server accepted seq %lld after %lld\n", (long long)s,
			        (long long)last_seq[q]);
		last_seq[q] = s;
		if (!cJSON_IsString(type) || (strcmp(type->valuestring, "note") != 0 &&
		                              strcmp(type->valuestring, "sos") != 0))
			continue; /* receipts and statuses of the set-up */
		long i = text_index(l, ev);
		if (i < 0) {
			r->invented++;
			continue;
		}
		r->accepted++;
		struct ee_action *a = &l->a[i];
		/* an acknowledged action must arrive as the very event essd
		 * acknowledged (same id, same seq); an unacknowledged one (cut off
		 * by a kill) may arrive, once */
		if (a->seq && (!cJSON_IsString(id) || strcmp(id->valuestring, a->event_id) != 0 ||
		               s != a->seq)) {
			r->invented++;
			continue;
		}
		if (++a->accepted > 1)
			r->doubled++;
	}
	cJSON_Delete(doc);
	r->tried = l->n;
	for (size_t i = 0; i < l->n; i++) {
		if (!l->a[i].seq)
			continue;
		r->acked++;
		if (!l->a[i].accepted)
			r->lost++;
	}
	r->out_of_order += (size_t)l->seq_back;
	return 0;
}

void ee_result_str(const struct ee_result *r, char *out, size_t cap)
{
	snprintf(out, cap,
	         "tried=%zu acked=%zu accepted=%zu lost=%zu doubled=%zu invented=%zu "
	         "out_of_order=%zu",
	         r->tried, r->acked, r->accepted, r->lost, r->doubled, r->invented,
	         r->out_of_order);
}

int ee_store_fixes(struct essenv *e, int (*cb)(void *arg, const struct store_fix *f, size_t n),
                   void *arg)
{
	char kek[600], dir[600], err[256];
	struct hal_keystore *ks;
	struct store *st;
	int flags = 0, rc;
	int64_t token;
	snprintf(kek, sizeof(kek), "%s/kek", e->dir);
	snprintf(dir, sizeof(dir), "%s/store", e->dir);
	if ((rc = hal_keystore_open("file", kek, &ks, err, sizeof(err))) < 0)
		return rc;
	struct store_params p = {.dir = dir, .keystore = ks};
	if ((rc = store_open(&p, &st, &flags, err, sizeof(err))) < 0) {
		fprintf(stderr, "# store_open: %s\n", err);
		hal_keystore_close(ks);
		return rc;
	}
	rc = store_pos_peek(st, SIZE_MAX, cb, arg, &token);
	store_close(st);
	hal_keystore_close(ks);
	return rc < 0 ? rc : 0;
}
