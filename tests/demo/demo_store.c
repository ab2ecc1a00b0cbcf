/* The demo of what exists so far: the encrypted offline store on its own.
 * A device is provisioned, receives signed incidents, the responder acts
 * offline while GPS fixes pile up, the agent is killed mid-write, the queue
 * drains, and a wipe crypto-shreds it all. Every claim is checked; exit 0
 * only if all hold. (The full demo — reference server, gpsd, essd — comes
 * with the daemon.) */
#include "agent/store.h"
#include "hal/keystore.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct timespec t0;
static int failures;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	double s = (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
	printf("[%7.3f s] ", s);
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void check(int ok, const char *what)
{
	printf("            %s %s\n", ok ? "OK  " : "FAIL", what);
	if (!ok)
		failures++;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct store *open_store(const char *dir, struct hal_keystore **ks, int create)
{
	char kek[600], err[512];
	snprintf(kek, sizeof(kek), "%s/kek", dir);
	if (hal_keystore_open("file", kek, ks, err, sizeof(err)) < 0)
		return NULL;
	struct store_params p = {.dir = dir, .keystore = *ks, .create = create};
	struct store *s;
	int rc = store_open(&p, &s, NULL, err, sizeof(err));
	if (rc < 0) {
		say("store refused to open: %s", err);
		hal_keystore_close(*ks);
		return NULL;
	}
	return s;
}

static size_t grep_file(const char *path, const char *needle)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	size_t n = strlen(needle), hits = 0, len = 0, cap = 1 << 20;
	char *buf = malloc(cap);
	size_t r;
	while ((r = fread(buf + len, 1, cap - len, f)) > 0)
		if ((len += r) == cap)
			buf = realloc(buf, cap *= 2);
	fclose(f);
	for (size_t i = 0; i + n <= len; i++)
		hits += memcmp(buf + i, needle, n) == 0;
	free(buf);
	return hits;
}

static const char *const incidents[3] = {
    "{\"id\":\"BKK-2026-0101\",\"version\":1,\"category\":\"confinement\",\"priority\":1,"
    "\"silent\":true,\"state\":\"assigned\",\"reported_at\":\"2026-11-29T02:10:00.000Z\","
    "\"location\":{\"lat\":13.7465321,\"lon\":100.5348710,\"accuracy_m\":12},"
    "\"address\":\"ซอยสุขุมวิท 11 แขวงคลองเตยเหนือ\",\"summary\":\"Child (9) locked in a room, "
    "messages by text only\",\"reporter\":{\"name\":\"Somchai Jaidee\",\"phone\":"
    "\"081-234-5678\",\"contact_ok\":false},\"unit\":\"BKK-RESP-04\"}",
    "{\"id\":\"BKK-2026-0102\",\"version\":1,\"category\":\"assault_threat\",\"priority\":2,"
    "\"silent\":false,\"state\":\"assigned\",\"reported_at\":\"2026-11-29T02:31:00.000Z\","
    "\"location\":{\"lat\":13.7563309,\"lon\":100.5017651,\"accuracy_m\":8},"
    "\"summary\":\"Neighbour threatening elderly woman\",\"reporter\":{\"name\":"
    "\"มาลี สุขใจ\",\"phone\":\"089-765-4321\"},\"unit\":\"BKK-RESP-04\"}",
    "{\"id\":\"BKK-2026-0103\",\"version\":1,\"category\":\"deranged_person\",\"priority\":2,"
    "\"silent\":false,\"state\":\"assigned\",\"reported_at\":\"2026-11-29T02:40:00.000Z\","
    "\"location\":{\"lat\":13.7279000,\"lon\":100.5241000,\"accuracy_m\":20},"
    "\"summary\":\"Man with a knife outside a school\",\"unit\":\"BKK-RESP-04\"}",
};

struct seqs {
	int64_t *v;
	int n, cap;
};

static int collect_seq(void *arg, const struct store_event *ev)
{
	struct seqs *a = arg;
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 64;
		a->v = realloc(a->v, (size_t)a->cap * sizeof(*a->v));
	}
	a->v[a->n++] = ev->seq;
	return 0;
}

static void append(struct store *s, enum store_event_type type, const char *body, const char *label)
{
	int64_t seq;
	char eid[STORE_EVENT_ID_LEN + 1];
	int rc = store_outbox_append(s, type, body, strlen(body), &seq, eid);
	say("responder: %-28s -> queued seq %lld, event_id %s (durable)", label, (long long)seq,
	    rc == 0 ? eid : "-");
	check(rc == 0, "event is in the outbox before the responder is told");
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	const char *dir = argv[1];
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (sodium_init() < 0)
		return 1;
	struct hal_keystore *ks;

	say("technician: provisioning a new handheld, store in %s", dir);
	struct store *s = open_store(dir, &ks, 1);
	if (!s)
		return 1;
	check(store_device_keygen(s, 0) == 0, "device Ed25519 key made, wrapped by the KEK");

	/* The dispatcher's signing key: the device stores only what verifies. */
	unsigned char spk[32], ssk[64];
	crypto_sign_ed25519_keypair(spk, ssk);
	for (int i = 0; i < 3; i++) {
		unsigned char sig[64];
		size_t len = strlen(incidents[i]);
		crypto_sign_ed25519_detached(sig, NULL, (const unsigned char *)incidents[i], len,
		                             ssk);
		int ok = crypto_sign_ed25519_verify_detached(
		             sig, (const unsigned char *)incidents[i], len, spk) == 0;
		char id[16];
		snprintf(id, sizeof(id), "BKK-2026-010%d", i + 1);
		int rc = store_incident_put(s, id, 1, STORE_DISPATCH_ASSIGNED, now_ms(),
		                            incidents[i], len, sig);
		say("dispatch: incident %s%s signature %s, stored encrypted", id,
		    i == 0 ? " [SILENT: no call-back]" : "", ok ? "verified" : "BAD");
		check(ok && rc == STORE_PUT_NEW, "verified and stored");
	}
	unsigned char forged[64] = {0};
	say("dispatch: a forged copy of BKK-2026-0102 arrives");
	check(crypto_sign_ed25519_verify_detached(forged, (const unsigned char *)incidents[1],
	                                          strlen(incidents[1]), spk) != 0,
	      "forged envelope fails verification and is never stored");

	say("network: offline (no coverage in the soi)");
	append(s, STORE_EVENT_RECEIPT, "{\"incident_id\":\"BKK-2026-0101\"}", "receipt 0101");
	append(s, STORE_EVENT_STATUS,
	       "{\"incident_id\":\"BKK-2026-0101\",\"status\":\"acknowledged\"}",
	       "acknowledge 0101");
	append(s, STORE_EVENT_STATUS, "{\"incident_id\":\"BKK-2026-0101\",\"status\":\"en_route\"}",
	       "en route 0101");
	append(s, STORE_EVENT_NOTE,
	       "{\"incident_id\":\"BKK-2026-0101\",\"text\":\"Somchai Jaidee met us at the gate\"}",
	       "note on 0101");
	store_incident_set_status(s, "BKK-2026-0101", STORE_STATUS_EN_ROUTE, now_ms());

	/* Ten minutes of a 1 Hz drive down Sukhumvit. */
	double lat = 13.7440, lon = 100.5600, heading = 290;
	int64_t t = now_ms() - 600000;
	int stored = 0;
	for (int i = 0; i < 600; i++) {
		heading += sin(i / 40.0) * 2;
		lat += cos(heading * M_PI / 180) * 8.0 / 111320;
		lon += sin(heading * M_PI / 180) * 8.0 / 108000;
		struct store_fix f = {.t_ms = t + i * 1000,
		                      .lat_e7 = (int32_t)lrint(lat * 1e7),
		                      .lon_e7 = (int32_t)lrint(lon * 1e7),
		                      .accuracy_dm = 50,
		                      .speed_cm_s = 800,
		                      .heading_cdeg =
		                          (int32_t)lrint(fmod(heading + 360, 360) * 100),
		                      .mode = 3};
		stored += store_pos_append(s, &f) == 0;
	}
	store_pos_flush(s);
	int64_t q, pos;
	store_outbox_count(s, &q);
	store_pos_count(s, &pos);
	say("device: %lld actions and %lld GPS fixes queued, %lld bytes on disk", (long long)q,
	    (long long)pos, (long long)store_disk_bytes(s));
	check(q == 4 && pos == 600 && stored == 600, "all queued");

	char path[600];
	static const char *const files[] = {"ess.db", "ess.db-wal", "keys"};
	static const char *const needles[] = {"Somchai", "081-234-5678", "มาลี",
	                                      "สุขุมวิท",   "13.7465321",   "locked in a room"};
	size_t hits = 0;
	for (int f = 0; f < 3; f++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[f]);
		for (int n = 0; n < 6; n++)
			hits += grep_file(path, needles[n]);
	}
	say("thief: greps the raw database, WAL and keys for names, phones, Thai text, "
	    "coordinates: %zu hits",
	    hits);
	check(hits == 0, "nothing personal readable on disk");
	store_close(s);
	hal_keystore_close(ks);

	say("power: the agent is killed (SIGKILL) while writing actions");
	int pfd[2];
	if (pipe(pfd) < 0)
		return 1;
	pid_t pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		struct hal_keystore *cks;
		struct store *cs = open_store(dir, &cks, 0);
		for (int i = 0; cs; i++) {
			char body[64];
			snprintf(body, sizeof(body), "{\"text\":\"crash test %d\"}", i);
			int64_t seq;
			if (store_outbox_append(cs, STORE_EVENT_NOTE, body, strlen(body), &seq,
			                        NULL) == 0)
				if (write(pfd[1], &seq, sizeof(seq)) < 0)
					_exit(1);
		}
		_exit(1);
	}
	close(pfd[1]);
	usleep(80000);
	kill(pid, SIGKILL);
	int64_t seq, confirmed = 0;
	while (read(pfd[0], &seq, sizeof(seq)) == sizeof(seq))
		confirmed++;
	close(pfd[0]);
	waitpid(pid, NULL, 0);
	s = open_store(dir, &ks, 0);
	if (!s)
		return 1;
	store_outbox_count(s, &q);
	say("device: restarted; %lld actions confirmed before the kill, %lld in the queue",
	    (long long)confirmed, (long long)q);
	check(q >= 4 + confirmed, "every confirmed action survived");

	say("network: back online; the server answers every event (accepted)");
	struct seqs acc = {0};
	int given = store_outbox_peek(s, 100000, collect_seq, &acc);
	int rc = store_outbox_delivered(s, acc.v, (size_t)acc.n);
	store_outbox_count(s, &q);
	say("device: %d events sent in seq order, %lld left in the queue", given, (long long)q);
	check(given == acc.n && rc == 0 && q == 0, "queue drained, each event once");
	free(acc.v);

	char copy_cmd[1400];
	snprintf(copy_cmd, sizeof(copy_cmd),
	         "mkdir -p %s/stolen && cp %s/ess.db %s/keys %s/stolen/", dir, dir, dir, dir);
	check(system(copy_cmd) == 0, "a thief copies the database and the wrapped keys");
	say("dispatch: device reported lost: wipe command");
	char err[512];
	check(store_wipe(s, err, sizeof(err)) == 0, "keys destroyed, database removed");
	hal_keystore_close(ks);
	snprintf(path, sizeof(path), "%s/stolen", dir);
	struct hal_keystore *tks;
	struct store *ts = open_store(path, &tks, 0);
	check(ts == NULL, "the stolen copy cannot be opened: its KEK is gone");
	if (ts) {
		store_close(ts);
		hal_keystore_close(tks);
	}
	say("verdict: %s", failures ? "FAILED" : "every check held");
	return failures ? 1 : 0;
}
