/* libFuzzer: every server answer the agent parses, through the real sync
 * engine (sync/sync.c on sync/http.c and libcurl) over a real store. A fake
 * server in this process accepts the engine's requests on loopback and
 * answers each, in arrival order, with the next answer of the input:
 * assignments, events results, position and heartbeat answers (commands,
 * configuration, server_time), error bodies (Retry-After, clock skew,
 * revoked), whatever the engine asked.
 *
 * Input: answers separated by a line "--"; each is
 *     STATUS [gzip] [retry=N]
 *     body
 * In a body, the harness substitutes what the fuzzer could never make:
 *   {E1} {E2} {E3}   envelopes signed by the server key (the incident
 *                    INC-Z1 version 1 and version 2 cancelled, for this
 *                    unit; INC-Z2 for another unit)
 *   {C1} {C2} {C3}   signed commands for this device: lock, config, resync
 *   {V0} … {V3}      event_id of the n-th event of the last events request
 *   {NOW}            the current unix ms
 *   {K}              the server key (base64)
 * "enroll" in the first answer's status line sends that answer to an
 * enrollment (sync_enroll) first; "enroll pin" with the server key pinned.
 * The engine is opened anew for each input (its backoff would otherwise
 * stall the run); the store lives on, refilled with events and fixes. */
#define _GNU_SOURCE /* memmem */
#include "agent/config.h"
#include "agent/log.h"
#include "agent/loop.h"
#include "agent/store.h"
#include "hal/keystore.h"
#include "sync/proto.h"
#include "sync/sync.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RESET_EVERY 2000
#define MAX_ANSWERS 8
#define REQ_MAX     (2 << 20)
#define DEVICE_ID   "d-fuzz-1"
#define UNIT        "U1"

static struct {
	char dir[64];
	struct loop *loop;
	struct hal_keystore *ks;
	struct store *st;
	struct config cfg;
	unsigned char sk[64], pk[32];
	char env[3][2048], cmd[3][2048];
	char ev_ids[4][37];
	char pk64[64]; /* the server key, base64 */
	int lfd, port;
	unsigned runs;
} F;

static void die(const char *what)
{
	fprintf(stderr, "fuzz_sync setup: %s\n", what);
	abort();
}

static void envelope(const char *payload, char *out, size_t cap)
{
	char *e = proto_envelope_make(payload, strlen(payload), F.sk);
	if (!e || strlen(e) >= cap)
		die("envelope");
	strcpy(out, e);
	free(e);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static void store_down(void)
{
	store_close(F.st);
	F.st = NULL;
	hal_keystore_close(F.ks);
	F.ks = NULL;
	if (F.dir[0])
		nftw(F.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void store_up(void)
{
	char err[256], kek[128];
	strcpy(F.dir, "/tmp/ess-fuzz-sync-XXXXXX");
	if (!mkdtemp(F.dir))
		die("mkdtemp");
	snprintf(kek, sizeof(kek), "%s/kek", F.dir);
	if (hal_keystore_open("file", kek, &F.ks, err, sizeof(err)) < 0)
		die(err);
	struct store_params p = {
	    .dir = F.dir, .keystore = F.ks, .create = 1, .durability = STORE_DURABILITY_OFF};
	if (store_open(&p, &F.st, NULL, err, sizeof(err)) < 0)
		die(err);
	/* enrolled, as sync_enroll leaves it */
	if (store_device_keygen(F.st, 1) < 0 ||
	    store_state_set(F.st, SYNC_KEY_DEVICE_ID, DEVICE_ID, strlen(DEVICE_ID)) < 0 ||
	    store_state_set(F.st, SYNC_KEY_UNIT, UNIT, strlen(UNIT)) < 0 ||
	    store_state_set(F.st, SYNC_KEY_SERVER_KEY, F.pk, 32) < 0)
		die("enrolled state");
}

static void on_accept(struct loop *l, int fd, unsigned events, void *arg);

static void setup(void)
{
	if (sodium_init() < 0)
		die("sodium_init");
	signal(SIGPIPE, SIG_IGN);
	log_open("fuzz_sync", LOG_TARGET_STDERR, LOG_LEVEL_ERR);
	if (loop_open(&F.loop) < 0)
		die("loop_open");
	crypto_sign_ed25519_keypair(F.pk, F.sk);
	proto_b64_encode(F.pk, 32, F.pk64, sizeof(F.pk64));
	static const char *const incidents[3] = {
	    "{\"id\":\"INC-Z1\",\"version\":1,\"category\":\"confinement\",\"priority\":1,"
	    "\"silent\":false,\"state\":\"assigned\",\"reported_at\":\"2026-11-28T10:31:02.120Z\","
	    "\"location\":{\"lat\":13.75,\"lon\":100.5,\"accuracy_m\":8},\"summary\":\"z\","
	    "\"unit\":\"" UNIT "\"}",
	    "{\"id\":\"INC-Z1\",\"version\":2,\"category\":\"confinement\",\"priority\":1,"
	    "\"silent\":true,\"state\":\"cancelled\",\"reported_at\":\"2026-11-28T10:31:02.120Z\","
	    "\"location\":{\"lat\":13.75,\"lon\":100.5,\"accuracy_m\":8},\"summary\":\"z\","
	    "\"unit\":\"" UNIT "\"}",
	    "{\"id\":\"INC-Z2\",\"version\":1,\"category\":\"gang_gathering\",\"priority\":3,"
	    "\"silent\":false,\"state\":\"assigned\",\"reported_at\":\"2026-11-28T10:31:02.120Z\","
	    "\"location\":{\"lat\":13.75,\"lon\":100.5,\"accuracy_m\":8},\"summary\":\"z\","
	    "\"unit\":\"OTHER\"}"};
	static const char *const commands[3] = {
	    "{\"id\":\"cmd-1\",\"device_id\":\"" DEVICE_ID "\",\"type\":\"lock\",\"args\":{},"
	    "\"issued_at\":\"2026-11-28T10:31:02.120Z\"}",
	    "{\"id\":\"cmd-2\",\"device_id\":\"" DEVICE_ID "\",\"type\":\"config\","
	    "\"args\":{\"heartbeat_interval_s\":30,\"long_poll_s\":1},"
	    "\"issued_at\":\"2026-11-28T10:31:02.120Z\"}",
	    "{\"id\":\"cmd-3\",\"device_id\":\"" DEVICE_ID "\",\"type\":\"resync\",\"args\":{},"
	    "\"issued_at\":\"2026-11-28T10:31:02.120Z\"}"};
	for (int i = 0; i < 3; i++) {
		envelope(incidents[i], F.env[i], sizeof(F.env[i]));
		envelope(commands[i], F.cmd[i], sizeof(F.cmd[i]));
	}
	/* the fake server */
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof(sa);
	F.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (F.lfd < 0 || bind(F.lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(F.lfd, 64) < 0 || getsockname(F.lfd, (struct sockaddr *)&sa, &sl) < 0)
		die("listen");
	F.port = ntohs(sa.sin_port);
	if (loop_fd_add(F.loop, F.lfd, LOOP_READ, on_accept, NULL) < 0)
		die("loop_fd_add");
	config_defaults(&F.cfg);
	snprintf(F.cfg.server.url, sizeof(F.cfg.server.url), "http://127.0.0.1:%d", F.port);
	F.cfg.server.request_timeout_s = 5;
	F.cfg.server.connect_timeout_s = 2;
	F.cfg.server.long_poll_s = 1;
	store_up();
}

/* Something for every stream to send: a few events and fixes. */
static void refill(void)
{
	int64_t n = 0;
	store_outbox_count(F.st, &n);
	for (int64_t i = n; i < 3; i++) {
		struct proto_event ev = {.type = i == 0 ? PROTO_EV_SOS : PROTO_EV_NOTE,
		                         .at_ms = loop_wall_ms(),
		                         .clock = PROTO_CLOCK_SYSTEM,
		                         .incident_version = 1,
		                         .text = "fuzz"};
		strcpy(ev.incident_id, "INC-Z1");
		sync_event_queue(F.st, &ev, NULL, NULL);
	}
	store_pos_count(F.st, &n);
	for (int64_t i = n; i < 2; i++) {
		struct store_fix fx = {.t_ms = loop_wall_ms() + i,
		                       .lat_e7 = 137500000,
		                       .lon_e7 = 1005000000,
		                       .accuracy_dm = 50,
		                       .speed_cm_s = -1,
		                       .heading_cdeg = -1,
		                       .mode = 3};
		store_pos_append(F.st, &fx);
	}
	store_pos_flush(F.st);
}

static void on_note(void *arg, const struct sync_note *n)
{
	(void)arg, (void)n;
}

/* Remembers the event_ids of an events request, for {V0}…{V3}. */
static void take_event_ids(const char *req, size_t len)
{
	const char *b = memmem(req, len, "\r\n\r\n", 4);
	if (!b || !memmem(req, (size_t)(b - req), "/events", 7))
		return;
	b += 4;
	size_t blen = len - (size_t)(b - req);
	unsigned char *plain = NULL;
	size_t plen = 0;
	cJSON *j = NULL;
	if (blen >= 2 && (unsigned char)b[0] == 0x1f && (unsigned char)b[1] == 0x8b) {
		if (proto_gunzip(b, blen, PROTO_BODY_MAX, &plain, &plen) == 0)
			j = proto_json_parse(plain, plen);
		free(plain);
	} else {
		j = proto_json_parse(b, blen);
	}
	const cJSON *ev;
	int i = 0;
	memset(F.ev_ids, 0, sizeof(F.ev_ids));
	cJSON_ArrayForEach(ev, cJSON_GetObjectItemCaseSensitive(j, "events"))
	{
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(ev, "event_id");
		if (i < 4 && cJSON_IsString(id) && strlen(id->valuestring) < 37)
			strcpy(F.ev_ids[i++], id->valuestring);
	}
	cJSON_Delete(j);
}

/* A whole request: headers and Content-Length bytes of body. */
static int request_complete(const char *req, size_t len)
{
	const char *end = memmem(req, len, "\r\n\r\n", 4);
	if (!end)
		return 0;
	const char *cl = memmem(req, (size_t)(end - req), "Content-Length:", 15);
	if (!cl)
		cl = memmem(req, (size_t)(end - req), "content-length:", 15);
	size_t want = cl ? strtoul(cl + 15, NULL, 10) : 0;
	return len >= (size_t)(end + 4 - req) + want;
}

/* The answer to send for the chunk s[0..n). */
static char *build_answer(const char *s, size_t n, size_t *outlen)
{
	const char *nl = memchr(s, '\n', n);
	size_t hl = nl ? (size_t)(nl - s) : n;
	char head[128];
	size_t h = hl < sizeof(head) - 1 ? hl : sizeof(head) - 1;
	memcpy(head, s, h);
	head[h] = 0;
	unsigned status = (unsigned)strtoul(head, NULL, 10);
	if (status < 100 || status > 599)
		status = 200;
	int gz = strstr(head, "gzip") != NULL;
	const char *ra = strstr(head, "retry=");
	/* the body with the substitutions */
	const char *b = nl ? nl + 1 : s + n;
	size_t blen = nl ? n - hl - 1 : 0, cap = blen + 1;
	for (size_t i = 0; i + 1 < blen; i++)
		if (b[i] == '{')
			cap += 2048;
	char *body = malloc(cap), now[32];
	size_t o = 0;
	snprintf(now, sizeof(now), "%lld", (long long)loop_wall_ms());
	for (size_t i = 0; i < blen;) {
		const char *sub = NULL;
		size_t skip = 0;
		if (b[i] == '{' && i + 3 < blen && b[i + 3] == '}') {
			int k = b[i + 2] - '0';
			if (b[i + 1] == 'E' && k >= 1 && k <= 3)
				sub = F.env[k - 1];
			else if (b[i + 1] == 'C' && k >= 1 && k <= 3)
				sub = F.cmd[k - 1];
			else if (b[i + 1] == 'V' && k >= 0 && k <= 3)
				sub = F.ev_ids[k];
			skip = 4;
		} else if (i + 3 <= blen && memcmp(b + i, "{K}", 3) == 0) {
			sub = F.pk64;
			skip = 3;
		} else if (i + 5 <= blen && memcmp(b + i, "{NOW}", 5) == 0) {
			sub = now;
			skip = 5;
		}
		if (sub) {
			size_t sl = strlen(sub);
			memcpy(body + o, sub, sl);
			o += sl;
			i += skip;
		} else {
			body[o++] = b[i++];
		}
	}
	unsigned char *z = NULL;
	size_t zl = 0;
	if (gz && proto_gzip(body, o, &z, &zl) == 0) {
		free(body);
		body = (char *)z;
		o = zl;
	} else {
		gz = 0;
	}
	char *ans = malloc(o + 512);
	int k = snprintf(ans, 512,
	                 "HTTP/1.1 %u X\r\nConnection: close\r\nContent-Type: application/json\r\n"
	                 "Content-Length: %zu\r\n%s",
	                 status, o, gz ? "Content-Encoding: gzip\r\n" : "");
	if (ra)
		k += snprintf(ans + k, 64, "Retry-After: %d\r\n", atoi(ra + 6) % 100);
	k += snprintf(ans + k, 8, "\r\n");
	memcpy(ans + k, body, o);
	free(body);
	*outlen = (size_t)k + o;
	return ans;
}

/* ---- the fake server, on the same loop as the engine ---- */

struct conn {
	int fd;
	size_t len, sent, alen;
	char *req, *ans;
};

static struct {
	const char *chunks[MAX_ANSWERS];
	size_t lens[MAX_ANSWERS];
	int n, next;
	unsigned moved; /* anything happened on the server side */
	int open_conns;
} A;

static void conn_free(struct conn *c)
{
	loop_fd_del(F.loop, c->fd);
	close(c->fd);
	free(c->req);
	free(c->ans);
	free(c);
	A.open_conns--;
}

static void on_conn(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)l, (void)fd, (void)events;
	struct conn *c = arg;
	ssize_t r = -1;
	A.moved++;
	if (!c->ans) {
		while (c->len < REQ_MAX &&
		       (r = recv(c->fd, c->req + c->len, REQ_MAX - c->len, 0)) > 0)
			c->len += (size_t)r;
		if (r == 0 && !request_complete(c->req, c->len)) {
			conn_free(c); /* the client gave up */
			return;
		}
		if (!request_complete(c->req, c->len))
			return;
		take_event_ids(c->req, c->len);
		if (A.next >= A.n) { /* no answer left: close without one */
			conn_free(c);
			return;
		}
		c->ans = build_answer(A.chunks[A.next], A.lens[A.next], &c->alen);
		A.next++;
		loop_fd_mod(F.loop, c->fd, LOOP_WRITE);
	}
	while (c->sent < c->alen &&
	       (r = send(c->fd, c->ans + c->sent, c->alen - c->sent, MSG_NOSIGNAL)) > 0)
		c->sent += (size_t)r;
	if (c->sent >= c->alen || (r < 0 && errno != EAGAIN))
		conn_free(c);
}

static void on_accept(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)events, (void)arg;
	int cfd;
	while ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		struct conn *c = calloc(1, sizeof(*c));
		if (!c || !(c->req = malloc(REQ_MAX)))
			die("malloc");
		c->fd = cfd;
		if (loop_fd_add(l, cfd, LOOP_READ, on_conn, c) < 0)
			die("loop_fd_add");
		A.open_conns++;
		A.moved++;
	}
}

/* Runs the loop until every answer went out and nothing moves, or nothing
 * moves for a while (the engine backs off, or stopped). */
static void run_until_quiet(void)
{
	int idle = 0;
	while (idle < (A.next < A.n ? 20 : 3)) {
		unsigned before = A.moved;
		int ran = loop_run_once(F.loop, 1);
		idle = ran > 0 || A.moved != before ? 0 : idle + 1;
	}
}

/* Enrollment (sync_enroll) against the first answer; then the identity the
 * rest of the run expects is put back. */
static void enroll(int pinned)
{
	struct config cfg = F.cfg;
	char err[256];
	if (pinned)
		proto_b64_encode(F.pk, 32, cfg.server.server_key, sizeof(cfg.server.server_key));
	struct sync_enroll_info info = {.token = "fuzz-token", .serial = "S1", .board = "host"};
	sync_enroll(F.loop, F.st, &cfg, &info, err, sizeof(err));
	if (store_state_set(F.st, SYNC_KEY_DEVICE_ID, DEVICE_ID, strlen(DEVICE_ID)) < 0 ||
	    store_state_set(F.st, SYNC_KEY_UNIT, UNIT, strlen(UNIT)) < 0 ||
	    store_state_set(F.st, SYNC_KEY_SERVER_KEY, F.pk, 32) < 0)
		die("identity back");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!F.loop)
		setup();
	if (++F.runs % RESET_EVERY == 0) {
		store_down();
		store_up();
	}
	refill();
	memset(&A, 0, sizeof(A));
	const char *s = (const char *)data, *end = s + size;
	while (A.n < MAX_ANSWERS && s < end) {
		const char *sep = memmem(s, (size_t)(end - s), "\n--\n", 4);
		size_t n = sep ? (size_t)(sep - s) : (size_t)(end - s);
		A.chunks[A.n] = s;
		A.lens[A.n++] = n;
		s += n + (sep ? 4 : 0);
	}
	/* "enroll" (or "enroll pin", the server key pinned in the config) in
	 * the first answer's status line: that answer goes to an enrollment */
	const char *nl = A.n ? memchr(A.chunks[0], '\n', A.lens[0]) : NULL;
	size_t hl = A.n ? (nl ? (size_t)(nl - A.chunks[0]) : A.lens[0]) : 0;
	if (hl && memmem(A.chunks[0], hl, "enroll", 6))
		enroll(memmem(A.chunks[0], hl, "pin", 3) != NULL);
	struct sync *sy;
	char err[256];
	struct sync_params p = {.loop = F.loop, .store = F.st, .cfg = &F.cfg, .note = on_note};
	if (sync_open(&p, &sy, err, sizeof(err)) < 0)
		die(err);
	sync_start(sy);
	run_until_quiet();
	sync_close(sy);
	/* the server side of what the close cut off */
	for (int i = 0; i < 50 && A.open_conns > 0; i++)
		loop_run_once(F.loop, 1);
	return 0;
}
