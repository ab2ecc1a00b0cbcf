/* libFuzzer: the reference server's request handling, in one process. The
 * real server (http.c on libmicrohttpd, the device and dispatcher APIs, the
 * database in memory) runs on this process's loop; each input is a few
 * HTTP requests sent to it over loopback TCP.
 *
 * A request the fuzzer could never forge would only ever test the
 * signature check, so the harness signs: it enrolls one device at start
 * and signs the requests marked so with that device's key.
 *
 * Input: requests separated by a line "--"; each starts with one line
 *     WHO METHOD TARGET
 * and the rest is the body. WHO: d = signed by the device, z = the same
 * with the body gzip'd, a = the dispatcher (admin bearer token), n = no
 * credentials. "{D}" in TARGET or body becomes the device id.
 *
 * A request the server holds (a long poll, a delay fault) is abandoned by
 * closing the connection once nothing moves any more: that path (the
 * client gone while held) is tested too. */
#define _GNU_SOURCE /* memmem */
#include "agent/log.h"
#include "agent/loop.h"
#include "sync/proto.h"
#include "sync/refserver/db.h"
#include "sync/refserver/faults.h"
#include "sync/refserver/feed.h"
#include "sync/refserver/http.h"
#include "sync/refserver/rs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RESET_EVERY  3000 /* a fresh server now and then: state only grows */
#define MAX_REQUESTS 8
#define ANSWER_MAX   (4 << 20)
#define TARGET_MAX   1024

static const char admin_token[] = "fuzz-admin-token";
static const char default_config[] =
    "{\"position_interval_s\":5,\"position_min_distance_m\":10,\"heartbeat_interval_s\":60,"
    "\"long_poll_s\":25,\"retention_hours\":72,\"max_batch_events\":500}";

static struct {
	struct rs rs;
	unsigned port;
	unsigned char dev_sk[64], dev_pk[32];
	char dev_id[PROTO_ID_MAX + 1];
	unsigned runs;
	char *answer;
	size_t alen;
} F;

static void die(const char *what)
{
	fprintf(stderr, "fuzz_refserver setup: %s\n", what);
	abort();
}

static void server_stop(void)
{
	http_stop(F.rs.http);
	feed_free(F.rs.feed);
	cJSON_Delete(F.rs.config);
	db_close(F.rs.db);
	faults_free(F.rs.faults);
	struct loop *l = F.rs.loop;
	memset(&F.rs, 0, sizeof(F.rs));
	F.rs.loop = l;
}

/* Sends one request and collects the answer into F.answer. Returns the
 * HTTP status, 0 when the request was abandoned (held) or got no answer. */
static unsigned exchange(const char *req, size_t len)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)F.port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
		die("connect");
	size_t sent = 0;
	int idle = 0;
	F.alen = 0;
	/* Idle: several rounds with nothing to do on either side after the
	 * request went out. */
	while (idle < 5) {
		int moved = 0;
		if (sent < len) {
			ssize_t n = send(fd, req + sent, len - sent, MSG_NOSIGNAL);
			if (n > 0) {
				sent += (size_t)n;
				moved = 1;
			} else if (n < 0 && errno != EAGAIN && errno != ENOTCONN) {
				break; /* the server closed on us: that is an answer too */
			}
		}
		int ran = loop_run_once(F.rs.loop, sent < len ? 0 : 1);
		if (ran > 0)
			moved = 1;
		for (;;) {
			char tmp[16384];
			ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
			if (n < 0 && errno == EAGAIN)
				break;
			if (n <= 0)
				goto done;
			size_t take =
			    (size_t)n < ANSWER_MAX - F.alen ? (size_t)n : ANSWER_MAX - F.alen;
			memcpy(F.answer + F.alen, tmp, take);
			F.alen += take;
			moved = 1;
		}
		idle = moved ? 0 : idle + 1;
	}
done:
	close(fd);
	/* let the server see the close (a held request ends here) */
	for (int i = 0; i < 20 && loop_run_once(F.rs.loop, 0) > 0; i++)
		;
	F.answer[F.alen] = 0;
	unsigned status = 0;
	if (F.alen > 0 && sscanf(F.answer, "HTTP/1.%*1d %3u", &status) != 1) {
		fprintf(stderr, "fuzz_refserver: answer is not HTTP: %.80s\n", F.answer);
		abort();
	}
	return status;
}

/* Builds and sends one request. who: 'd', 'z', 'a' or 'n'. */
static unsigned request(char who, const char *method, const char *target, const void *body,
                        size_t blen)
{
	unsigned char *gz = NULL;
	size_t gzlen = 0;
	if (who == 'z' && proto_gzip(body, blen, &gz, &gzlen) == 0) {
		body = gz;
		blen = gzlen;
	}
	size_t cap = blen + strlen(target) + 1024;
	char *req = malloc(cap);
	if (!req)
		die("malloc");
	int n = snprintf(req, cap,
	                 "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
	                 "Content-Type: application/json\r\nContent-Length: %zu\r\n",
	                 method, target, blen);
	if (who == 'z') /* and the answer gzip'd too */
		n += snprintf(req + n, cap - (size_t)n,
		              "Content-Encoding: gzip\r\nAccept-Encoding: gzip\r\n");
	if (who == 'a')
		n +=
		    snprintf(req + n, cap - (size_t)n, "Authorization: Bearer %s\r\n", admin_token);
	if (who == 'd' || who == 'z') {
		int64_t ts = (int64_t)time(NULL);
		size_t mcap = strlen(target) + 256;
		char *msg = malloc(mcap), sigb64[128];
		unsigned char sig[64];
		size_t mlen =
		    msg ? proto_sign_string(method, target, ts, body, blen, msg, mcap) : 0;
		if (!mlen)
			die("proto_sign_string");
		crypto_sign_ed25519_detached(sig, NULL, (unsigned char *)msg, mlen, F.dev_sk);
		free(msg);
		proto_b64_encode(sig, sizeof(sig), sigb64, sizeof(sigb64));
		n += snprintf(req + n, cap - (size_t)n,
		              "ESS-Device: %s\r\nESS-Timestamp: %lld\r\nESS-Signature: %s\r\n",
		              F.dev_id, (long long)ts, sigb64);
	}
	n += snprintf(req + n, cap - (size_t)n, "\r\n");
	memcpy(req + n, body, blen);
	unsigned st = exchange(req, (size_t)n + blen);
	free(req);
	free(gz);
	return st;
}

static cJSON *answer_json(void)
{
	char *b = strstr(F.answer, "\r\n\r\n");
	return b ? cJSON_Parse(b + 4) : NULL;
}

static void server_start(void)
{
	char err[256];
	int rc;
	if ((rc = faults_new(&F.rs.faults)) < 0 || (rc = feed_new(&F.rs.feed)) < 0 ||
	    (rc = db_open(NULL, &F.rs.db)) < 0 ||
	    (rc = db_server_key(F.rs.db, NULL, F.rs.sk, F.rs.pk)) < 0)
		die("server state");
	proto_b64_encode(F.rs.pk, 32, F.rs.server_key_b64, sizeof(F.rs.server_key_b64));
	strcpy(F.rs.admin_token, admin_token);
	F.rs.config = cJSON_Parse(default_config);
	if (http_start(&F.rs, "127.0.0.1:0", &F.rs.http, err, sizeof(err)) < 0)
		die(err);
	F.port = http_port(F.rs.http);

	/* one enrolled device, one incident for its unit */
	static const char tok[] = "{\"unit\":\"U1\",\"token\":\"fuzz-token\"}";
	if (request('a', "POST", "/admin/tokens", tok, strlen(tok)) != 201)
		die("POST /admin/tokens");
	crypto_sign_ed25519_keypair(F.dev_pk, F.dev_sk);
	char pk[64], body[512];
	proto_b64_encode(F.dev_pk, 32, pk, sizeof(pk));
	int n = snprintf(body, sizeof(body),
	                 "{\"token\":\"fuzz-token\",\"public_key\":\"%s\",\"serial\":\"S1\","
	                 "\"board\":\"host\",\"agent_version\":\"0\"}",
	                 pk);
	if (request('n', "POST", "/v1/enroll", body, (size_t)n) != 201)
		die("POST /v1/enroll");
	cJSON *a = answer_json();
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "device_id");
	if (!cJSON_IsString(id) || strlen(id->valuestring) > PROTO_ID_MAX)
		die("enroll answer");
	strcpy(F.dev_id, id->valuestring);
	cJSON_Delete(a);
	static const char inc[] = "{\"id\":\"INC-F1\",\"unit\":\"U1\",\"category\":\"confinement\","
	                          "\"priority\":1,\"silent\":false,"
	                          "\"location\":{\"lat\":13.75,\"lon\":100.5,\"accuracy_m\":5},"
	                          "\"summary\":\"fuzz\",\"reporter\":{\"name\":\"fuzz\","
	                          "\"phone\":\"0\",\"contact_ok\":false}}";
	if (request('a', "POST", "/admin/incidents", inc, strlen(inc)) != 201)
		die("POST /admin/incidents");
}

static void setup(void)
{
	if (sodium_init() < 0)
		die("sodium_init");
	signal(SIGPIPE, SIG_IGN);
	log_open("fuzz_refserver", LOG_TARGET_STDERR, LOG_LEVEL_ERR);
	if (loop_open(&F.rs.loop) < 0)
		die("loop_open");
	if (!(F.answer = malloc(ANSWER_MAX + 1)))
		die("malloc");
	server_start();
}

/* Copies s[0..n) to out, "{D}" replaced by the device id. */
static size_t subst(const char *s, size_t n, char *out, size_t cap)
{
	size_t o = 0, dl = strlen(F.dev_id);
	for (size_t i = 0; i < n; i++) {
		if (i + 3 <= n && memcmp(s + i, "{D}", 3) == 0 && o + dl < cap) {
			memcpy(out + o, F.dev_id, dl);
			o += dl;
			i += 2;
		} else if (o + 1 < cap) {
			out[o++] = s[i];
		}
	}
	return o;
}

static void one(const char *s, size_t n)
{
	const char *nl = memchr(s, '\n', n);
	size_t hl = nl ? (size_t)(nl - s) : n;
	const char *body = nl ? nl + 1 : s + n;
	size_t blen = nl ? n - hl - 1 : 0;
	char head[TARGET_MAX], method[8] = "GET", target[TARGET_MAX], t2[TARGET_MAX];
	size_t h = hl < sizeof(head) - 1 ? hl : sizeof(head) - 1;
	memcpy(head, s, h);
	head[h] = 0;
	char who = head[0] ? head[0] : 'n';
	if (!strchr("dzan", who))
		who = 'n';
	/* METHOD: letters only (anything else is MHD's parser, not ours) */
	const char *p = head[0] ? head + 1 : head;
	while (*p == ' ')
		p++;
	size_t ml = 0;
	while (p[ml] >= 'A' && p[ml] <= 'Z' && ml < sizeof(method) - 1)
		ml++;
	if (ml) {
		memcpy(method, p, ml);
		method[ml] = 0;
	}
	p += ml;
	while (*p && *p != ' ' && *p != '/')
		p++;
	while (*p == ' ')
		p++;
	/* TARGET: visible characters only, starting with '/' */
	size_t tl = 0;
	target[tl++] = '/';
	if (*p == '/')
		p++;
	for (; *p && tl < sizeof(target) - 1; p++)
		if (*p > ' ' && *p < 0x7f)
			target[tl++] = *p;
	tl = subst(target, tl, t2, sizeof(t2) - 1);
	t2[tl] = 0;
	char *b = malloc(blen * 2 + 256);
	if (!b)
		die("malloc");
	size_t bl = subst(body, blen, b, blen * 2 + 256);
	request(who, method, t2, b, bl);
	free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!F.rs.loop)
		setup();
	if (++F.runs % RESET_EVERY == 0) {
		server_stop();
		server_start();
	}
	const char *s = (const char *)data, *end = s + size;
	for (int i = 0; i < MAX_REQUESTS && s < end; i++) {
		const char *sep = memmem(s, (size_t)(end - s), "\n--\n", 4);
		size_t n = sep ? (size_t)(sep - s) : (size_t)(end - s);
		one(s, n);
		s += n + (sep ? 4 : 0);
	}
	/* no test may leave the server's clock or switches to the next one */
	faults_clear(F.rs.faults);
	return 0;
}
