/* Outbox appends against plain SQLite at the same durability, and the
 * latency of one acknowledged append against a bare fdatasync.
 *
 *   store.append_ratio_1       one event per transaction, throughput ratio
 *   store.append_ratio_1000    1,000 events per transaction, throughput ratio
 *   store.commit_p99_vs_fsync  p99 of one acknowledged append / p99 of a
 *                              4 KiB pwrite + fdatasync
 *
 * The baseline is a separate raw SQLite database in the same directory
 * (same file system, same disk) with the outbox table's shape, the store's
 * durability pragmas and a reused prepared statement, fed the same event
 * bodies in plaintext. Each figure is the median of BENCH_ROUNDS rounds that
 * alternate baseline and subject (and which of the two goes first).
 *
 * The baseline stays one row per event, as an application without the
 * store would write them: the store seals the events of one transaction as
 * one group row (docs/store.md, "Groups"), which is why it can beat it
 * batched. A second, "# " only comparison puts the store against plain
 * SQLite writing that same grouped shape unsealed: what sealing costs. */
#include "agent/store.h"
#include "agent/store_int.h" /* OUTBOX_GROUP_* for the grouped comparison */
#include "tests/bench/bench.h"
#include "tests/lib/testutil.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_BODIES  64
#define N_SINGLE  4000 /* appends per round, one per transaction */
#define N_BATCH   1000 /* appends per transaction */
#define N_BATCHES 20   /* transactions per round */
#define N_LAT     400  /* latency samples per round and side */

/* The durability-relevant pragmas of the store (agent/store.c,
 * db_configure): WAL, fsync at every commit, the same checkpoint and WAL
 * size policy, and overwritten deleted rows. The store's extra safety
 * switches (cell_size_check, defensive mode) stay part of what it costs. */
static const char plain_pragmas[] = "PRAGMA journal_mode=WAL;"
                                    "PRAGMA synchronous=FULL;"
                                    "PRAGMA wal_autocheckpoint=1000;"
                                    "PRAGMA journal_size_limit=4194304;"
                                    "PRAGMA secure_delete=ON;";

struct body {
	char text[768];
	size_t len;
	int type;
};

static struct body bodies[N_BODIES];
static unsigned char plain_ids[N_BODIES][16];

static const char *const thai_notes[] = {
    "ผู้ป่วยหายใจลำบาก ญาติรออยู่หน้าบ้าน",
    "ถึงที่เกิดเหตุแล้ว กำลังประเมินอาการ",
    "รถติดมากบนถนนพระราม 4 อาจล่าช้า 5 นาที",
    "ผู้บาดเจ็บ 2 ราย รู้สึกตัวดี",
    "นำส่งโรงพยาบาลจุฬาลงกรณ์",
    "ไม่พบผู้แจ้งตามที่อยู่ กำลังโทรกลับ",
};
static const char *const statuses[] = {"acknowledged", "en_route", "on_scene", "resolved"};

/* Status and note events as the daemon queues them: 200-500 bytes. */
static void make_bodies(void)
{
	struct bench_rng r = {42};
	for (int i = 0; i < N_BODIES; i++) {
		struct body *b = &bodies[i];
		int note = i % 4 == 3;
		int n = snprintf(b->text, sizeof(b->text),
		                 "{\"type\":\"%s\",\"incident_id\":\"INC-2568-%06u\","
		                 "\"status\":\"%s\",\"at\":\"2025-03-14T08:%02u:%02u.%03uZ\","
		                 "\"lat\":13.%07u,\"lon\":100.%07u,\"accuracy_m\":%u,"
		                 "\"unit\":\"BKK-AMB-%03u\",\"note\":\"%s\"}",
		                 note ? "note" : "status", bench_rng_below(&r, 1000000),
		                 statuses[bench_rng_below(&r, 4)], bench_rng_below(&r, 60),
		                 bench_rng_below(&r, 60), bench_rng_below(&r, 1000),
		                 7000000 + bench_rng_below(&r, 1000000),
		                 4500000 + bench_rng_below(&r, 1000000),
		                 3 + bench_rng_below(&r, 12), bench_rng_below(&r, 200),
		                 note ? thai_notes[bench_rng_below(&r, 6)] : "");
		b->len = (size_t)n;
		b->type = note ? STORE_EVENT_NOTE : STORE_EVENT_STATUS;
		for (int k = 0; k < 16; k++)
			plain_ids[i][k] = (unsigned char)bench_rng_u64(&r);
	}
}

/* ---- subject: the store ---- */

static unsigned body_i;

static void store_append_one(struct store *s)
{
	const struct body *b = &bodies[body_i++ % N_BODIES];
	int64_t seq;
	char eid[STORE_EVENT_ID_LEN + 1];
	int rc = store_outbox_append(s, (enum store_event_type)b->type, b->text, b->len, &seq, eid);
	if (rc < 0)
		bench_die("store_outbox_append", rc);
}

static void store_run(struct store *s, int per_tx, int n)
{
	for (int done = 0; done < n; done += per_tx) {
		if (per_tx > 1 && store_begin(s) < 0)
			bench_die("store_begin", -1);
		for (int i = 0; i < per_tx; i++)
			store_append_one(s);
		if (per_tx > 1) {
			int rc = store_commit(s);
			if (rc < 0)
				bench_die("store_commit", rc);
		}
	}
}

/* ---- baseline: plain SQLite ---- */

/* The baseline inserts one row per event. With `group` set it is instead
 * the store's own row shape without the sealing (a second, "#" only
 * comparison: what the AEAD costs once events are grouped): the events of a
 * transaction concatenated with the store's framing, `group` per row. */
struct plain {
	sqlite3 *db;
	sqlite3_stmt *ins;
	sqlite3_stmt *ins_body; /* grouped: the sealed value's table */
	unsigned i;
	int group;
	int gn;
	size_t glen;
	int64_t gseq;
	unsigned char gbuf[OUTBOX_GROUP_BYTES];
};

static void plain_exec(struct plain *p, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(p->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		printf("# plain: %s: %s\n", sql, msg ? msg : "?");
		bench_die("plain sqlite", -1);
	}
}

static void plain_open(struct plain *p, const char *dir, const char *file, int group)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	memset(p, 0, sizeof(*p));
	p->group = group;
	if (sqlite3_open_v2(path, &p->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK)
		bench_die("open plain.db", -1);
	plain_exec(p, plain_pragmas);
	plain_exec(p, "CREATE TABLE outbox(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	              " event_id BLOB NOT NULL, type INTEGER NOT NULL, body BLOB NOT NULL)");
	if (group) {
		plain_exec(p,
		           "ALTER TABLE outbox ADD COLUMN n INTEGER NOT NULL DEFAULT 1;"
		           "ALTER TABLE outbox ADD COLUMN done BLOB;"
		           "CREATE TABLE outbox_group(seq INTEGER PRIMARY KEY, body BLOB NOT NULL);"
		           "CREATE INDEX outbox_groups ON outbox(seq) WHERE n > 1;");
		if (sqlite3_prepare_v3(p->db, "INSERT INTO outbox_group(seq, body) VALUES(?,?)", -1,
		                       SQLITE_PREPARE_PERSISTENT, &p->ins_body, NULL) != SQLITE_OK)
			bench_die("prepare plain insert", -1);
	}
	if (sqlite3_prepare_v3(p->db,
	                       group ? "INSERT INTO outbox(seq, event_id, type, body, n, done) "
	                               "VALUES(?,X'',255,X'',?,zeroblob(8))"
	                             : "INSERT INTO outbox(event_id, type, body) VALUES(?,?,?)",
	                       -1, SQLITE_PREPARE_PERSISTENT, &p->ins, NULL) != SQLITE_OK)
		bench_die("prepare plain insert", -1);
}

static void plain_group_flush(struct plain *p)
{
	if (!p->gn)
		return;
	p->gseq += p->gn;
	sqlite3_bind_int64(p->ins, 1, p->gseq);
	sqlite3_bind_int(p->ins, 2, p->gn);
	int rc = sqlite3_step(p->ins);
	sqlite3_reset(p->ins);
	if (rc != SQLITE_DONE)
		bench_die("plain group insert", rc);
	sqlite3_bind_int64(p->ins_body, 1, p->gseq);
	sqlite3_bind_blob(p->ins_body, 2, p->gbuf, (int)p->glen, SQLITE_STATIC);
	rc = sqlite3_step(p->ins_body);
	sqlite3_reset(p->ins_body);
	if (rc != SQLITE_DONE)
		bench_die("plain group insert", rc);
	p->gn = 0;
	p->glen = 0;
}

static void plain_insert_one(struct plain *p)
{
	unsigned k = p->i++ % N_BODIES;
	const struct body *b = &bodies[k];
	if (p->group) {
		/* type, event id, length, body, NUL: as agent/store_outbox.c */
		if (p->gn == p->group || p->glen + 22 + b->len > OUTBOX_GROUP_BYTES)
			plain_group_flush(p);
		unsigned char *q = p->gbuf + p->glen;
		uint32_t len = (uint32_t)b->len;
		q[0] = (unsigned char)b->type;
		memcpy(q + 1, plain_ids[k], 16);
		memcpy(q + 17, &len, 4);
		memcpy(q + 21, b->text, b->len);
		q[21 + b->len] = 0;
		p->glen += 22 + b->len;
		p->gn++;
		return;
	}
	sqlite3_bind_blob(p->ins, 1, plain_ids[k], 16, SQLITE_STATIC);
	sqlite3_bind_int(p->ins, 2, b->type);
	sqlite3_bind_blob(p->ins, 3, b->text, (int)b->len, SQLITE_STATIC);
	int rc = sqlite3_step(p->ins);
	sqlite3_reset(p->ins);
	if (rc != SQLITE_DONE)
		bench_die("plain insert", rc);
}

static void plain_run(struct plain *p, int per_tx, int n)
{
	for (int done = 0; done < n; done += per_tx) {
		if (per_tx > 1)
			plain_exec(p, "BEGIN");
		for (int i = 0; i < per_tx; i++)
			plain_insert_one(p);
		plain_group_flush(p);
		if (per_tx > 1)
			plain_exec(p, "COMMIT");
	}
}

static void plain_close(struct plain *p)
{
	sqlite3_finalize(p->ins);
	sqlite3_finalize(p->ins_body);
	sqlite3_close(p->db);
}

/* ---- figures ---- */

/* Throughput ratio (store / plain) of n appends, per_tx per transaction.
 * Within a round the two sides alternate in blocks of `block` appends (and
 * which side starts alternates too), so that a slow spell of the disk hits
 * both alike. */
static void throughput_figure(const char *name, struct store *s, struct plain *p, int per_tx, int n,
                              int block, double target)
{
	double ratio[BENCH_ROUNDS];
	printf("# %s: %d appends per round and side, %d per transaction, sides alternating "
	       "every %d\n",
	       name, n, per_tx, block);
	for (int r = 0; r < BENCH_ROUNDS; r++) {
		int64_t t_store = 0, t_plain = 0;
		for (int b = 0; b < n / block; b++) {
			for (int k = 0; k < 2; k++) {
				int subject = (k + b + r) % 2 == 0;
				int64_t t0 = bench_now_ns();
				if (subject)
					store_run(s, per_tx, block);
				else
					plain_run(p, per_tx, block);
				int64_t dt = bench_now_ns() - t0;
				if (subject)
					t_store += dt;
				else
					t_plain += dt;
			}
		}
		double ops_store = n / ((double)t_store / 1e9),
		       ops_plain = n / ((double)t_plain / 1e9);
		ratio[r] = ops_store / ops_plain;
		printf("#   round %d: store %.0f appends/s (%.1f us each), plain%s %.0f inserts/s "
		       "(%.1f us each), ratio %.3f\n",
		       r + 1, ops_store, 1e6 / ops_store, p->group ? " grouped" : "", ops_plain,
		       1e6 / ops_plain, ratio[r]);
	}
	if (p->group)
		printf("# %s against plain SQLite in the store's grouped row shape, unsealed: "
		       "median ratio %.3f (what sealing costs; not a figure)\n",
		       name, bench_median(ratio, BENCH_ROUNDS));
	else
		bench_figure(name, bench_median(ratio, BENCH_ROUNDS), 3, "ratio", ">=", target);
}

static double us(int64_t ns)
{
	return (double)ns / 1e3;
}

/* p99 of one acknowledged append against p99 of a 4 KiB append + fdatasync
 * to a file in the same directory, samples interleaved. */
static void latency_figure(struct store *s, const char *dir)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/fsync.dat", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		bench_die("open fsync.dat", -1);
	static unsigned char page[4096];
	memset(page, 0xa5, sizeof(page));
	off_t off = 0;
	static double all_store[BENCH_ROUNDS * N_LAT], all_sync[BENCH_ROUNDS * N_LAT];
	double lat_store[N_LAT], lat_sync[N_LAT], ratio[BENCH_ROUNDS];

	printf("# store.commit_p99_vs_fsync: %d samples per round and side, interleaved; "
	       "baseline = pwrite of 4 KiB at the end of a file + fdatasync\n",
	       N_LAT);
	for (int r = 0; r < BENCH_ROUNDS; r++) {
		for (int i = 0; i < N_LAT; i++) {
			for (int k = 0; k < 2; k++) {
				int64_t t0 = bench_now_ns();
				if ((i + k) % 2 == 0) {
					store_append_one(s);
					lat_store[i] = us(bench_now_ns() - t0);
				} else {
					if (pwrite(fd, page, sizeof(page), off) != sizeof(page) ||
					    fdatasync(fd) < 0)
						bench_die("pwrite/fdatasync", -1);
					off += (off_t)sizeof(page);
					lat_sync[i] = us(bench_now_ns() - t0);
				}
			}
		}
		memcpy(all_store + r * N_LAT, lat_store, sizeof(lat_store));
		memcpy(all_sync + r * N_LAT, lat_sync, sizeof(lat_sync));
		double med_store = bench_percentile(lat_store, N_LAT, 50);
		double p99_store = bench_percentile(lat_store, N_LAT, 99);
		double med_sync = bench_percentile(lat_sync, N_LAT, 50);
		double p99_sync = bench_percentile(lat_sync, N_LAT, 99);
		ratio[r] = p99_store / p99_sync;
		printf("#   round %d: append p50 %.0f us p99 %.0f us; fdatasync p50 %.0f us p99 "
		       "%.0f us; p99 ratio %.2f\n",
		       r + 1, med_store, p99_store, med_sync, p99_sync, ratio[r]);
	}
	size_t n = BENCH_ROUNDS * N_LAT;
	double p50s = bench_percentile(all_store, n, 50), p99s = bench_percentile(all_store, n, 99);
	double p50f = bench_percentile(all_sync, n, 50), p99f = bench_percentile(all_sync, n, 99);
	printf("#   all rounds: append p50 %.0f us p99 %.0f us max %.0f us; fdatasync p50 %.0f "
	       "us p99 %.0f us max %.0f us\n",
	       p50s, p99s, all_store[n - 1], p50f, p99f, all_sync[n - 1]);
	bench_figure("store.commit_p99_vs_fsync", bench_median(ratio, BENCH_ROUNDS), 3, "ratio",
	             "<=", 2);
	close(fd);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	make_bodies();
	size_t total = 0;
	for (int i = 0; i < N_BODIES; i++)
		total += bodies[i].len;
	char *dir = bench_tmp = tu_tmpdir("bench-append");
	printf("# bench_append: temp dir %s, event bodies %zu bytes on average\n", dir,
	       total / N_BODIES);

	struct tu_store t;
	int rc = tu_store_open(&t, dir, 1);
	if (rc < 0)
		bench_die("tu_store_open", rc);
	static struct plain p, pg;
	plain_open(&p, dir, "plain.db", 0);
	plain_open(&pg, dir, "plain-grouped.db", OUTBOX_GROUP_MAX);

	/* Warm up both: statements prepared, first pages allocated. */
	store_run(t.s, 1, 500);
	plain_run(&p, 1, 500);
	store_run(t.s, N_BATCH, 2 * N_BATCH);
	plain_run(&p, N_BATCH, 2 * N_BATCH);
	plain_run(&pg, N_BATCH, 2 * N_BATCH);

	throughput_figure("store.append_ratio_1", t.s, &p, 1, N_SINGLE, 50, 0.95);
	throughput_figure("store.append_ratio_1000", t.s, &p, N_BATCH, N_BATCH * N_BATCHES, N_BATCH,
	                  0.8);
	throughput_figure("store.append_ratio_1000", t.s, &pg, N_BATCH, N_BATCH * N_BATCHES,
	                  N_BATCH, 0.8);
	latency_figure(t.s, dir);

	plain_close(&p);
	plain_close(&pg);
	tu_store_close(&t);
	bench_tmp = NULL;
	tu_rmrf(dir);
	return 0;
}
