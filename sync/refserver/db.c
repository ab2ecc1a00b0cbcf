#include "sync/refserver/db.h"
#include "agent/log.h"
#include "sync/proto.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct rs_db {
	sqlite3 *h;
};

static const char schema[] =
    "PRAGMA foreign_keys = ON;"
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS tokens("
    " token TEXT PRIMARY KEY, unit TEXT NOT NULL, created_ms INTEGER NOT NULL,"
    " expires_ms INTEGER NOT NULL, device_id TEXT, public_key BLOB);"
    "CREATE TABLE IF NOT EXISTS devices("
    " id TEXT PRIMARY KEY, unit TEXT NOT NULL, public_key BLOB NOT NULL,"
    " serial TEXT NOT NULL, board TEXT NOT NULL, agent_version TEXT NOT NULL,"
    " enrolled_ms INTEGER NOT NULL, revoked_ms INTEGER, last_seen_ms INTEGER);"
    /* every version of every incident, in the order it entered the feeds */
    "CREATE TABLE IF NOT EXISTS versions("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, incident_id TEXT NOT NULL,"
    " version INTEGER NOT NULL, unit TEXT NOT NULL, state TEXT NOT NULL,"
    " doc TEXT NOT NULL, envelope TEXT NOT NULL, created_ms INTEGER NOT NULL,"
    " UNIQUE(incident_id, version));"
    "CREATE INDEX IF NOT EXISTS versions_unit ON versions(unit, seq);"
    "CREATE INDEX IF NOT EXISTS versions_incident_unit ON versions(incident_id, unit, version);"
    /* the responder status of an incident, per unit it was assigned to */
    "CREATE TABLE IF NOT EXISTS unit_status("
    " incident_id TEXT NOT NULL, unit TEXT NOT NULL, status INTEGER NOT NULL,"
    " PRIMARY KEY(incident_id, unit));"
    "CREATE TABLE IF NOT EXISTS events("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL, event_id TEXT,"
    " type TEXT, incident_id TEXT, result TEXT NOT NULL, reason TEXT,"
    " body TEXT NOT NULL, received_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS events_device ON events(device_id, id);"
    "CREATE UNIQUE INDEX IF NOT EXISTS events_accepted ON events(event_id)"
    " WHERE result = 'accepted';"
    "CREATE TABLE IF NOT EXISTS receipts("
    " device_id TEXT NOT NULL, incident_id TEXT NOT NULL, version INTEGER NOT NULL,"
    " received_ms INTEGER NOT NULL, PRIMARY KEY(device_id, incident_id, version));"
    "CREATE TABLE IF NOT EXISTS positions("
    " device_id TEXT NOT NULL, t INTEGER NOT NULL, lat_e7 INTEGER NOT NULL,"
    " lon_e7 INTEGER NOT NULL, accuracy_dm INTEGER NOT NULL, speed_cm_s INTEGER NOT NULL,"
    " heading_cdeg INTEGER NOT NULL, mode INTEGER NOT NULL, received_ms INTEGER NOT NULL,"
    " PRIMARY KEY(device_id, t)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS heartbeats("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL,"
    " body TEXT NOT NULL, received_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS commands("
    " id TEXT PRIMARY KEY, device_id TEXT NOT NULL, type TEXT NOT NULL,"
    " payload TEXT NOT NULL, envelope TEXT NOT NULL, issued_ms INTEGER NOT NULL,"
    " result_ok INTEGER, result_ms INTEGER, result_event TEXT);"
    "CREATE INDEX IF NOT EXISTS commands_device ON commands(device_id, issued_ms);";

int db_fail(struct rs_db *db, const char *what)
{
	log_warnx("db: %s: %s", what, sqlite3_errmsg(db->h));
	return -EIO;
}

cJSON *db_column_json(sqlite3_stmt *st, int col)
{
	return proto_json_parse(sqlite3_column_text(st, col),
	                        (size_t)sqlite3_column_bytes(st, col));
}

int db_open(const char *path, struct rs_db **out)
{
	int rc = -ENOMEM;
	struct rs_db *db = calloc(1, sizeof(*db));
	*out = NULL;
	if (!db)
		return -ENOMEM;
	if (!path)
		path = ":memory:";
	if (sqlite3_open_v2(path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		rc = db_fail(db, "open");
		goto fail;
	}
	sqlite3_busy_timeout(db->h, 2000);
	if (strcmp(path, ":memory:") != 0 &&
	    sqlite3_exec(db->h, "PRAGMA journal_mode = WAL;", NULL, NULL, NULL) != SQLITE_OK) {
		rc = db_fail(db, "journal mode");
		goto fail;
	}
	if (sqlite3_exec(db->h, schema, NULL, NULL, NULL) != SQLITE_OK) {
		rc = db_fail(db, "schema");
		goto fail;
	}
	*out = db;
	return 0;
fail:
	db_close(db);
	return rc;
}

void db_close(struct rs_db *db)
{
	if (!db)
		return;
	sqlite3_close_v2(db->h);
	free(db);
}

sqlite3 *db_sqlite(struct rs_db *db)
{
	return db->h;
}

int db_begin(struct rs_db *db)
{
	return sqlite3_exec(db->h, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK
	           ? 0
	           : db_fail(db, "begin");
}

int db_commit(struct rs_db *db)
{
	if (sqlite3_exec(db->h, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
		return 0;
	int rc = db_fail(db, "commit");
	db_rollback(db);
	return rc;
}

void db_rollback(struct rs_db *db)
{
	if (!sqlite3_get_autocommit(db->h))
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

int db_prepare(struct rs_db *db, const char *sql, sqlite3_stmt **st)
{
	if (sqlite3_prepare_v2(db->h, sql, -1, st, NULL) != SQLITE_OK) {
		*st = NULL;
		return db_fail(db, "prepare");
	}
	return 0;
}

int db_step_done(struct rs_db *db, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_fail(db, "step");
	sqlite3_finalize(st);
	return rc;
}

int db_meta_get(struct rs_db *db, const char *key, unsigned char **val, size_t *len)
{
	sqlite3_stmt *st;
	int rc = db_prepare(db, "SELECT v FROM meta WHERE k = ?", &st);
	*val = NULL;
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		size_t n = (size_t)sqlite3_column_bytes(st, 0);
		unsigned char *v = malloc(n + 1);
		if (!v) {
			rc = -ENOMEM;
		} else {
			if (n)
				memcpy(v, sqlite3_column_blob(st, 0), n);
			v[n] = 0;
			*val = v;
			*len = n;
			rc = 0;
		}
	} else {
		rc = s == SQLITE_DONE ? -ENOENT : db_fail(db, "meta get");
	}
	sqlite3_finalize(st);
	return rc;
}

int db_meta_set(struct rs_db *db, const char *key, const void *val, size_t len)
{
	sqlite3_stmt *st;
	int rc = db_prepare(db, "INSERT OR REPLACE INTO meta(k, v) VALUES (?, ?)", &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, val, (int)len, SQLITE_STATIC);
	return db_step_done(db, st);
}

/* key_file: base64 of the 32-byte seed and a newline. */
static int key_from_file(const char *path, unsigned char seed[32])
{
	char buf[128];
	size_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT) {
		randombytes_buf(seed, 32);
		char b64[64];
		size_t bl = proto_b64_encode(seed, 32, b64, sizeof(b64));
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0) {
			log_warn("server key %s", path);
			return -errno;
		}
		b64[bl++] = '\n';
		int rc = write(fd, b64, bl) == (ssize_t)bl && fsync(fd) == 0 ? 0 : -EIO;
		close(fd);
		if (rc == 0)
			log_info("server key: created %s", path);
		return rc;
	}
	if (fd < 0) {
		log_warn("server key %s", path);
		return -errno;
	}
	ssize_t r = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (r < 0)
		return -EIO;
	n = (size_t)r;
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		n--;
	size_t got = 0;
	if (proto_b64_decode(buf, n, seed, 32, &got) < 0 || got != 32) {
		sodium_memzero(buf, sizeof(buf));
		log_warnx("server key %s: not base64 of a 32-byte seed", path);
		return -EINVAL;
	}
	sodium_memzero(buf, sizeof(buf));
	return 0;
}

int db_server_key(struct rs_db *db, const char *key_file, unsigned char sk[64],
                  unsigned char pk[32])
{
	unsigned char seed[32];
	int rc;
	if (key_file) {
		rc = key_from_file(key_file, seed);
	} else {
		unsigned char *v = NULL;
		size_t n = 0;
		rc = db_meta_get(db, "server_seed", &v, &n);
		if (rc == 0 && n == 32) {
			memcpy(seed, v, 32);
		} else if (rc == -ENOENT) {
			randombytes_buf(seed, 32);
			rc = db_meta_set(db, "server_seed", seed, 32);
		} else if (rc == 0) {
			log_warnx("db: server_seed has %zu bytes, not 32", n);
			rc = -EINVAL;
		}
		if (v) {
			sodium_memzero(v, n);
			free(v);
		}
	}
	if (rc == 0)
		crypto_sign_ed25519_seed_keypair(pk, sk, seed);
	sodium_memzero(seed, sizeof(seed));
	return rc;
}
