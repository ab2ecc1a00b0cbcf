/* libFuzzer: control-socket requests, end to end in one process. The input
 * is what a client writes to essd's socket (newline-delimited JSON, or
 * anything else); it goes through a real Unix socket into ctl.c's line
 * reader and dispatcher and on to the real methods (ctl_methods.c) over a
 * real store in a temporary directory holding a few incidents. Every
 * answer must come back as one JSON object per line.
 *
 * Seeds: tests/fuzz/corpus/fuzz_ctl/ (one request per line, as essctl
 * sends them). */
#define _GNU_SOURCE /* nftw */
#include "agent/ctl.h"
#include "agent/ctl_methods.h"
#include "agent/log.h"
#include "agent/loop.h"
#include "agent/store.h"
#include "agent/track.h"
#include "hal/keystore.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A fresh store every so many inputs: actions accumulate events in the
 * outbox, and a store that only grows would slow the run down. */
#define RESET_EVERY 2000

static struct {
	char dir[64];
	char sock[128];
	struct loop *loop;
	struct hal_keystore *ks;
	struct store *st;
	struct track *trk;
	struct ctlm m;
	struct ctl *ctl;
	unsigned runs;
} F;

static void die(const char *what, int rc)
{
	fprintf(stderr, "fuzz_ctl setup: %s: %s\n", what, strerror(rc < 0 ? -rc : rc));
	abort();
}

static void put(const char *id, int version, const char *state, enum store_dispatch_state st,
                int silent)
{
	char doc[1024];
	unsigned char sig[STORE_SIG_BYTES] = {0};
	int n = snprintf(doc, sizeof(doc),
	                 "{\"id\":\"%s\",\"version\":%d,\"category\":\"confinement\","
	                 "\"priority\":1,\"silent\":%s,\"state\":\"%s\","
	                 "\"reported_at\":\"2026-11-28T10:31:02.120Z\","
	                 "\"location\":{\"lat\":13.7563,\"lon\":100.5018,\"accuracy_m\":8},"
	                 "\"summary\":\"fuzz\",\"unit\":\"U1\"}",
	                 id, version, silent ? "true" : "false", state);
	int rc = store_incident_put(F.st, id, version, st, loop_wall_ms(), doc, (size_t)n, sig);
	if (rc < 0)
		die("store_incident_put", rc);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static void close_all(void)
{
	ctl_close(F.ctl);
	F.ctl = NULL;
	store_close(F.st);
	F.st = NULL;
	track_close(F.trk);
	F.trk = NULL;
	hal_keystore_close(F.ks);
	F.ks = NULL;
	if (F.dir[0])
		nftw(F.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void open_all(void)
{
	char err[256], kek[128];
	int rc;
	strcpy(F.dir, "/tmp/ess-fuzz-ctl-XXXXXX");
	if (!mkdtemp(F.dir))
		die("mkdtemp", errno);
	snprintf(kek, sizeof(kek), "%s/kek", F.dir);
	snprintf(F.sock, sizeof(F.sock), "%s/essd.sock", F.dir);
	if ((rc = hal_keystore_open("file", kek, &F.ks, err, sizeof(err))) < 0)
		die(err, rc);
	/* synchronous=OFF: durability is not what this harness tests, speed is */
	struct store_params p = {
	    .dir = F.dir, .keystore = F.ks, .create = 1, .durability = STORE_DURABILITY_OFF};
	if ((rc = store_open(&p, &F.st, NULL, err, sizeof(err))) < 0)
		die(err, rc);
	struct track_params tp = {.interval_s = 5, .min_distance_m = 10, .active_interval_s = 1};
	if ((rc = track_open(&tp, &F.trk)) < 0)
		die("track_open", rc);
	/* one of each dispatch state, a silent one, and a second version */
	put("INC-1", 1, "assigned", STORE_DISPATCH_ASSIGNED, 0);
	put("INC-2", 1, "assigned", STORE_DISPATCH_ASSIGNED, 1);
	put("INC-2", 2, "assigned", STORE_DISPATCH_ASSIGNED, 1);
	put("INC-3", 1, "cancelled", STORE_DISPATCH_CANCELLED, 0);
	put("INC-4", 1, "closed", STORE_DISPATCH_CLOSED, 0);
	memset(&F.m, 0, sizeof(F.m));
	F.m.resp.store = F.st;
	F.m.resp.track = F.trk;
	F.m.started_mono_ms = loop_now_ms();
	ctlm_load(&F.m);
	size_t n;
	const struct ctl_method *ms = ctlm_methods(&n);
	if ((rc = ctl_open(F.loop, F.sock, (gid_t)-1, ms, n, &F.m, &F.ctl, err, sizeof(err))) < 0)
		die(err, rc);
	F.m.ctl = F.ctl;
}

static void setup(void)
{
	if (sodium_init() < 0)
		die("sodium_init", EINVAL);
	signal(SIGPIPE, SIG_IGN);
	/* warnings only: the harness feeds nonsense on purpose */
	log_open("fuzz_ctl", LOG_TARGET_STDERR, LOG_LEVEL_ERR);
	int rc = loop_open(&F.loop);
	if (rc < 0)
		die("loop_open", rc);
	open_all();
	atexit(close_all);
}

/* Every answer line must be a JSON object with "ok" or "event". */
static void check_lines(char *buf, size_t len)
{
	char *p = buf, *end = buf + len;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break; /* cut off at our buffer's end: not the server's fault */
		*nl = 0;
		cJSON *j = cJSON_Parse(p);
		if (!cJSON_IsObject(j) || (!cJSON_GetObjectItemCaseSensitive(j, "ok") &&
		                           !cJSON_GetObjectItemCaseSensitive(j, "event"))) {
			fprintf(stderr, "fuzz_ctl: answer is not a JSON object line: %.200s\n", p);
			abort();
		}
		cJSON_Delete(j);
		p = nl + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!F.loop)
		setup();
	if (++F.runs % RESET_EVERY == 0) {
		close_all();
		open_all();
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, F.sock);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("connect", errno);
	static char answers[1 << 20];
	size_t alen = 0, sent = 0;
	int shut = 0, eof = 0;
	/* Write, let the daemon side run, read; the server drops the client
	 * after our end-of-file, which ends the exchange. Bounded in rounds so
	 * that a server that never answers shows up as a hang (-timeout). */
	for (int round = 0; !eof && round < 100000; round++) {
		if (sent < size) {
			ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
			if (n > 0)
				sent += (size_t)n;
			else if (n < 0 && errno != EAGAIN)
				break;
		}
		if (sent == size && !shut) {
			/* a last line without its newline is never a request */
			shutdown(fd, SHUT_WR);
			shut = 1;
		}
		loop_run_once(F.loop, 0);
		for (;;) {
			char tmp[65536];
			ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
			if (n == 0 || (n < 0 && errno != EAGAIN)) {
				eof = 1;
				break;
			}
			if (n < 0)
				break;
			size_t take =
			    (size_t)n < sizeof(answers) - alen ? (size_t)n : sizeof(answers) - alen;
			memcpy(answers + alen, tmp, take);
			alen += take;
		}
	}
	close(fd);
	/* let the server notice a close we made before it dropped us */
	while (ctl_client_count(F.ctl) > 0)
		loop_run_once(F.loop, 10);
	check_lines(answers, alen);
	/* a complete non-empty line is always answered (an error is an answer) */
	for (size_t i = 1; i < size; i++) {
		if (data[i] == '\n' && data[i - 1] != '\n' && alen == 0) {
			fprintf(stderr, "fuzz_ctl: a request line got no answer\n");
			abort();
		}
	}
	return 0;
}
