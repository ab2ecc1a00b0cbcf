/* The store's core: opening (keys, integrity, migrations), transactions,
 * sealing helpers, sync state, the device identity, audit, wipe. */
#include "agent/store_int.h"
#include "agent/log.h"
#include "agent/store_schema.h"
#include "hal/fsutil.h"
#include "hal/keystore.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STR_(x) #x
#define STR(x)  STR_(x)

#define SETERR(...)                                                                                \
	do {                                                                                       \
		if (err)                                                                           \
			snprintf(err, errlen, __VA_ARGS__);                                        \
	} while (0)

/* ---- the keys file: the data key and the device signing key, wrapped ---- */
#define KEYS_MAGIC        "ESSKEYS1"
#define KEYS_WRAPPED_DK   (SEAL_OVERHEAD + SEAL_KEY_BYTES)
#define KEYS_WRAPPED_SK   (SEAL_OVERHEAD + 64)
#define KEYS_FILE_BYTES   (8 + 8 + KEYS_WRAPPED_DK + KEYS_WRAPPED_SK)
#define KEYS_HAS_SIGN_KEY 1
#define LABEL_DK          "ess keys v1: data key"
#define LABEL_SK          "ess keys v1: device signing key"
#define KEYCHECK_TEXT     "ess store key check v1"

/* Largest value read back from the database: the store bounds what it
 * writes, so anything larger is damage or tampering. */
#define STORE_VALUE_MAX (STORE_DOC_MAX + STORE_SIG_BYTES + SEAL_OVERHEAD)

struct keys_file {
	unsigned char magic[8];
	unsigned char flags;
	unsigned char reserved[7];
	unsigned char dk[KEYS_WRAPPED_DK];
	unsigned char sk[KEYS_WRAPPED_SK];
};
_Static_assert(sizeof(struct keys_file) == KEYS_FILE_BYTES, "keys file layout");

static int file_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

sqlite3_stmt *store_stmt(struct store *s, const char *sql)
{
	if (s->failed) /* a damaged database: nothing more goes through it */
		return NULL;
	for (int i = 0; i < STORE_STMT_CACHE; i++) {
		if (s->stmts[i].sql == sql) {
			sqlite3_reset(s->stmts[i].st);
			sqlite3_clear_bindings(s->stmts[i].st);
			return s->stmts[i].st;
		}
		if (!s->stmts[i].sql) {
			sqlite3_stmt *st;
			int rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
			                            NULL);
			if (rc != SQLITE_OK) {
				log_errx("store: prepare failed: %s", sqlite3_errmsg(s->db));
				return NULL;
			}
			s->stmts[i].sql = sql;
			s->stmts[i].st = st;
			return st;
		}
	}
	log_errx("store: statement cache full");
	return NULL;
}

int store_sqlerr(struct store *s, int rc, const char *what)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_FULL:
		log_warnx("store: %s: disk full", what);
		return -ENOSPC;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_TOOBIG:
		return -E2BIG;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		if (s)
			store_fail(s, what);
		return -EUCLEAN;
	default:
		log_errx("store: %s: %s", what, s ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		return -EIO;
	}
}

void store_fail(struct store *s, const char *what)
{
	if (s->failed)
		return;
	s->failed = 1;
	if (s->opening) /* store_open checks the file and retries itself */
		return;
	log_errx("store: %s: the database %s is damaged; nothing more is written to it, and it "
	         "is moved aside at the next open",
	         what, s->db_path);
	if (s->on_failed)
		s->on_failed(s->on_failed_arg);
}

/* BEGIN, COMMIT and ROLLBACK run on every append: prepared once. */
static const char sql_begin[] = "BEGIN IMMEDIATE";
static const char sql_commit[] = "COMMIT";
static const char sql_rollback[] = "ROLLBACK";

static int step_cached(struct store *s, const char *sql, const char *what)
{
	sqlite3_stmt *st = store_stmt(s, sql);
	if (!st)
		return -EIO;
	int rc = store_sqlerr(s, sqlite3_step(st), what);
	sqlite3_reset(st);
	return rc;
}

int store_tx_start(struct store *s, int *owned)
{
	*owned = 0;
	if (s->failed)
		return -EUCLEAN;
	if (!sqlite3_get_autocommit(s->db)) /* store_begin's, or an outer one here */
		return 0;
	int rc = step_cached(s, sql_begin, "begin");
	if (rc == 0)
		*owned = 1;
	return rc;
}

int store_tx_end(struct store *s, int owned, int rc)
{
	if (!owned)
		return rc;
	if (rc < 0) {
		step_cached(s, sql_rollback, "rollback");
		return rc;
	}
	int crc = step_cached(s, sql_commit, "commit");
	if (crc < 0) {
		if (!sqlite3_get_autocommit(s->db))
			step_cached(s, sql_rollback, "rollback");
		return crc;
	}
	return rc;
}

static int bind_args(sqlite3_stmt *st, const char *fmt, va_list ap)
{
	for (int i = 1; *fmt; fmt++, i++) {
		int rc;
		switch (*fmt) {
		case 'i':
			rc = sqlite3_bind_int64(st, i, va_arg(ap, int64_t));
			break;
		case 't':
			rc = sqlite3_bind_text(st, i, va_arg(ap, const char *), -1, SQLITE_STATIC);
			break;
		case 'b': {
			const void *p = va_arg(ap, const void *);
			size_t len = va_arg(ap, size_t);
			rc = len > INT_MAX ? SQLITE_TOOBIG
			                   : sqlite3_bind_blob(st, i, p, (int)len, SQLITE_STATIC);
			break;
		}
		default:
			rc = SQLITE_MISUSE;
		}
		if (rc != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}

int store_exec(struct store *s, const char *sql, const char *what, const char *fmt, ...)
{
	int owned, rc;
	if ((rc = store_tx_start(s, &owned)) < 0)
		return rc;
	sqlite3_stmt *st = store_stmt(s, sql);
	if (!st)
		return store_tx_end(s, owned, -EIO);
	va_list ap;
	va_start(ap, fmt);
	int src = bind_args(st, fmt, ap);
	va_end(ap);
	if (src == SQLITE_OK)
		src = sqlite3_step(st);
	rc = store_sqlerr(s, src, what);
	sqlite3_reset(st);
	return store_tx_end(s, owned, rc);
}

int store_begin(struct store *s)
{
	if (s->in_tx)
		return -EBUSY;
	if (s->failed)
		return -EUCLEAN;
	int rc = step_cached(s, sql_begin, "begin");
	if (rc == 0) {
		s->in_tx = 1;
		s->grp_err = 0;
	}
	return rc;
}

int store_commit(struct store *s)
{
	if (!s->in_tx)
		return -EINVAL;
	/* The events gathered in this transaction go in before COMMIT; if they
	 * cannot, nothing of the transaction is kept. */
	int rc = store_outbox_seal_pending(s);
	if (rc == 0 && s->grp_err)
		rc = s->grp_err;
	if (rc < 0) {
		store_rollback(s);
		return rc;
	}
	s->in_tx = 0;
	store_outbox_cache_drop(s);
	rc = step_cached(s, sql_commit, "commit");
	if (rc < 0 && !sqlite3_get_autocommit(s->db))
		step_cached(s, sql_rollback, "rollback");
	return rc;
}

void store_rollback(struct store *s)
{
	if (!s->in_tx)
		return;
	s->in_tx = 0;
	s->grp_err = 0;
	store_outbox_drop_pending(s);
	store_outbox_cache_drop(s);
	step_cached(s, sql_rollback, "rollback");
}

int64_t store_next_id(struct store *s, int which)
{
	/* Never goes back, even when the transaction that used it rolls back:
	 * a gap in seq is allowed, a repeat is not. */
	return s->next_id[which]++;
}

int store_seal_into(struct store *s, const char *table, const char *row, const char *column,
                    const void *in, size_t len, unsigned char *out)
{
	char ad[256];
	size_t adlen = seal_ad(ad, sizeof(ad), table, row, column);
	if (!adlen || len > STORE_VALUE_MAX)
		return -EINVAL;
	return seal_encrypt(s->seal, ad, adlen, in, len, out);
}

int store_seal(struct store *s, const char *table, const char *row, const char *column,
               const void *in, size_t len, unsigned char **out, size_t *outlen)
{
	if (len > STORE_VALUE_MAX)
		return -EINVAL;
	*out = malloc(len + SEAL_OVERHEAD);
	if (!*out)
		return -ENOMEM;
	int rc = store_seal_into(s, table, row, column, in, len, *out);
	if (rc < 0) {
		free(*out);
		*out = NULL;
		return rc;
	}
	*outlen = len + SEAL_OVERHEAD;
	return 0;
}

void store_free_secret(void *p, size_t len)
{
	if (!p)
		return;
	sodium_memzero(p, len);
	free(p);
}

int store_open_sealed(struct store *s, const char *table, const char *row, const char *column,
                      const void *in, size_t len, unsigned char **out, size_t *outlen)
{
	char ad[256];
	size_t adlen = seal_ad(ad, sizeof(ad), table, row, column);
	*out = NULL;
	if (!adlen)
		return -EINVAL;
	if (!in || len < SEAL_OVERHEAD || len > STORE_VALUE_MAX)
		return -EBADMSG;
	size_t plen = len - SEAL_OVERHEAD;
	unsigned char *p = malloc(plen + 1);
	if (!p)
		return -ENOMEM;
	if (seal_decrypt(s->seal, ad, adlen, in, len, p) < 0) {
		free(p);
		return -EBADMSG;
	}
	p[plen] = 0;
	*out = p;
	*outlen = plen;
	return 0;
}

int store_quarantine(struct store *s, const char *table, const char *key_column,
                     const char *row_key, int64_t rowid, const void *data, size_t len)
{
	static const char ins_sql[] =
	    "INSERT INTO quarantine(from_table, row_key, at, data) VALUES(?,?,?,?)";
	char del_sql[128];
	char keybuf[32];
	int owned, rc;

	if (!row_key) {
		snprintf(keybuf, sizeof(keybuf), "%lld", (long long)rowid);
		row_key = keybuf;
	}
	/* Row keys are ids and seqs, plaintext already: safe to log. */
	log_errx("store: %s row %.64s failed authentication; moved to quarantine", table, row_key);
	snprintf(del_sql, sizeof(del_sql), "DELETE FROM %s WHERE %s = ?", table, key_column);

	if ((rc = store_tx_start(s, &owned)) < 0)
		return rc;
	sqlite3_stmt *st = store_stmt(s, ins_sql);
	if (!st) {
		rc = -EIO;
		goto out;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, row_key, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 3, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
	sqlite3_bind_blob(st, 4, data, (int)len, SQLITE_TRANSIENT);
	rc = store_sqlerr(s, sqlite3_step(st), "quarantine");
	sqlite3_reset(st);
	if (rc < 0)
		goto out;
	sqlite3_stmt *del;
	rc = store_sqlerr(s, sqlite3_prepare_v2(s->db, del_sql, -1, &del, NULL), "quarantine");
	if (rc < 0)
		goto out;
	if (rowid >= 0 && row_key == keybuf)
		sqlite3_bind_int64(del, 1, rowid);
	else
		sqlite3_bind_text(del, 1, row_key, -1, SQLITE_TRANSIENT);
	rc = store_sqlerr(s, sqlite3_step(del), "quarantine");
	sqlite3_finalize(del);
out:
	return store_tx_end(s, owned, rc);
}

void store_bad_add(struct store_bad *b, sqlite3_stmt *st, int key_col, int blob_col)
{
	if (b->n >= STORE_BAD_MAX)
		return;
	size_t len = (size_t)sqlite3_column_bytes(st, blob_col);
	unsigned char *copy = malloc(len ? len : 1);
	if (!copy)
		return;
	if (len)
		memcpy(copy, sqlite3_column_blob(st, blob_col), len);
	size_t i = b->n++;
	b->row[i].data = copy;
	b->row[i].len = len;
	b->row[i].rowid = -1;
	b->row[i].key[0] = 0;
	if (sqlite3_column_type(st, key_col) == SQLITE_INTEGER) {
		b->row[i].rowid = sqlite3_column_int64(st, key_col);
	} else {
		const char *k = (const char *)sqlite3_column_text(st, key_col);
		snprintf(b->row[i].key, sizeof(b->row[i].key), "%s", k ? k : "?");
	}
}

size_t store_bad_flush(struct store *s, struct store_bad *b, const char *table,
                       const char *key_column)
{
	size_t n = b->n;
	for (size_t i = 0; i < n; i++) {
		store_quarantine(s, table, key_column, b->row[i].key[0] ? b->row[i].key : NULL,
		                 b->row[i].rowid, b->row[i].data, b->row[i].len);
		free(b->row[i].data);
	}
	b->n = 0;
	return n;
}

/* ---- keys ---- */

/* Writes the keys file from the wrapped data key and the signing key. */
static int keys_write(struct store *s, char *err, size_t errlen, int no_clobber)
{
	struct keys_file kf;
	memset(&kf, 0, sizeof(kf));
	memcpy(kf.magic, KEYS_MAGIC, 8);
	memcpy(kf.dk, s->wrapped_dk, sizeof(kf.dk));
	sodium_mprotect_readonly(s->kek);
	if (s->sign_sk) {
		sodium_mprotect_readonly(s->sign_sk);
		seal_wrap(s->kek, LABEL_SK, s->sign_sk, 64, kf.sk);
		sodium_mprotect_noaccess(s->sign_sk);
		kf.flags |= KEYS_HAS_SIGN_KEY;
	}
	sodium_mprotect_noaccess(s->kek);
	return fsu_write_private(s->keys_path, &kf, sizeof(kf), no_clobber, err, errlen);
}

/* Reads the keys file and unwraps the data key into dk (guarded). */
static int keys_read(struct store *s, unsigned char *dk, char *err, size_t errlen)
{
	struct keys_file kf;
	int rc = fsu_read_private(s->keys_path, &kf, sizeof(kf), err, errlen);
	if (rc < 0)
		return rc;
	if (memcmp(kf.magic, KEYS_MAGIC, 8) != 0) {
		SETERR("%s: not an ESS keys file", s->keys_path);
		return -EINVAL;
	}
	memcpy(s->wrapped_dk, kf.dk, sizeof(kf.dk));
	sodium_mprotect_readonly(s->kek);
	rc = seal_unwrap(s->kek, LABEL_DK, kf.dk, sizeof(kf.dk), dk);
	if (rc == 0 && (kf.flags & KEYS_HAS_SIGN_KEY)) {
		s->sign_sk = sodium_malloc(64);
		if (!s->sign_sk)
			rc = -ENOMEM;
		else if (seal_unwrap(s->kek, LABEL_SK, kf.sk, sizeof(kf.sk), s->sign_sk) < 0)
			rc = -EBADMSG;
		else {
			crypto_sign_ed25519_sk_to_pk(s->sign_pk, s->sign_sk);
			sodium_mprotect_noaccess(s->sign_sk);
		}
	}
	sodium_mprotect_noaccess(s->kek);
	if (rc == -EBADMSG) {
		SETERR("%s: the key from keystore %s does not unlock it (wrong or replaced key)",
		       s->keys_path, hal_keystore_name(s->keystore));
		return -EKEYREJECTED;
	}
	return rc;
}

/* ---- opening the database ---- */

static int db_configure(struct store *s)
{
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, 5000);
	/* The database is outside input too: no schema-embedded functions,
	 * no writes to the schema through SQL, bounded values. */
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	sqlite3_limit(s->db, SQLITE_LIMIT_LENGTH, STORE_VALUE_MAX + 1024);
	/* WAL: a commit is one sequential append plus one fsync, readers do not
	 * block it. synchronous=FULL: in WAL mode NORMAL skips the fsync at
	 * commit, so an event the responder was told is saved could vanish in a
	 * power cut; FULL syncs the WAL before COMMIT returns.
	 * wal_autocheckpoint stays at SQLite's 1000 pages (~4 MiB): the rare
	 * commit that checkpoints pays one more fsync, bounded, and the WAL
	 * never grows past a few MiB; journal_size_limit truncates it back.
	 * secure_delete: deleted rows (purged incidents, delivered events) are
	 * overwritten, not left in free pages. */
	static const char *const sync_mode[] = {
	    "PRAGMA synchronous=FULL;", "PRAGMA synchronous=NORMAL;", "PRAGMA synchronous=OFF;"};
	static const char pragmas[] = "PRAGMA journal_mode=WAL;"
	                              "PRAGMA wal_autocheckpoint=1000;"
	                              "PRAGMA journal_size_limit=4194304;"
	                              "PRAGMA secure_delete=ON;"
	                              "PRAGMA cell_size_check=ON;"
	                              "PRAGMA foreign_keys=OFF;"
	                              "PRAGMA temp_store=MEMORY;";
	int rc = sqlite3_exec(s->db, pragmas, NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(s->db, sync_mode[s->durability], NULL, NULL, NULL);
	return rc;
}

/* Pages of cache the check may use: it reads every page about once, so a
 * larger cache only keeps the whole file in the heap afterwards (10 MB of
 * database would fill SQLite's default 2 MB cache, all of it counted in
 * essd's RssAnon) rather than what the daemon itself reads. */
#define CHECK_CACHE_KIB 256

static int db_check(struct store *s)
{
	sqlite3_stmt *st;
	int cache = 0;
	char sql[48];
	int rc = store_pragma_int(s->db, "PRAGMA cache_size", &cache);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(s->db, "PRAGMA cache_size = -" STR(CHECK_CACHE_KIB), NULL, NULL,
		                  NULL);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			const char *r = (const char *)sqlite3_column_text(st, 0);
			rc = (r && strcmp(r, "ok") == 0) ? SQLITE_OK : SQLITE_CORRUPT;
		}
		sqlite3_finalize(st);
	}
	snprintf(sql, sizeof(sql), "PRAGMA cache_size = %d", cache);
	sqlite3_exec(s->db, sql, NULL, NULL, NULL);
	return rc;
}

static int is_corruption(int rc)
{
	return (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB;
}

/* Moves a damaged database and its WAL aside, named by UTC time. */
static int move_aside(struct store *s, char *err, size_t errlen)
{
	char stamp[32], from[PATH_MAX + 8], to[PATH_MAX + 64];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	static const char *const suffix[] = {"", "-wal", "-shm"};
	for (int i = 0; i < 3; i++) {
		snprintf(from, sizeof(from), "%s%s", s->db_path, suffix[i]);
		snprintf(to, sizeof(to), "%s.corrupt-%s%s", s->db_path, stamp, suffix[i]);
		if (rename(from, to) < 0 && errno != ENOENT) {
			SETERR("%s: cannot move aside: %s", from, strerror(errno));
			return -errno;
		}
	}
	log_errx("store: database %s failed its integrity check; moved to %s.corrupt-%s and "
	         "started a new one",
	         s->db_path, s->db_path, stamp);
	return fsu_sync_dir_of(s->db_path);
}

/* ---- the clean-close marker (docs/store.md, "Integrity") ----
 * Written by store_close after everything went to the database file (the
 * WAL checkpointed and gone), removed by the next open. It names the
 * database file as it was left (device, inode, size, modification time),
 * so a marker that outlived a later session (its removal lost in a power
 * cut) or a database changed behind the store's back (a copy put in place,
 * another program) does not match; a hash makes a torn or garbled one
 * invalid. Invalid, missing or not matching: the last close was not clean
 * and the database is checked at open. The marker is no security boundary:
 * a forged one only moves the check from before READY to a moment later
 * (store_integrity_check). */
#define CLEAN_MAGIC "ESSCLN01"

struct clean_marker {
	unsigned char magic[8];
	uint64_t dev, ino;
	int64_t size, mtime_s, mtime_ns;
	unsigned char hash[32]; /* BLAKE2b-256 of everything before it */
};
_Static_assert(sizeof(struct clean_marker) == 8 + 5 * 8 + 32, "clean marker layout");

static int clean_marker_of(const struct store *s, struct clean_marker *m)
{
	struct stat st, wal;
	char path[PATH_MAX + 8];
	memset(m, 0, sizeof(*m));
	if (lstat(s->db_path, &st) < 0 || !S_ISREG(st.st_mode))
		return -1;
	/* a WAL with frames in it is a session that did not end here */
	snprintf(path, sizeof(path), "%s-wal", s->db_path);
	if (lstat(path, &wal) == 0 && wal.st_size > 0)
		return -1;
	memcpy(m->magic, CLEAN_MAGIC, 8);
	m->dev = (uint64_t)st.st_dev;
	m->ino = (uint64_t)st.st_ino;
	m->size = (int64_t)st.st_size;
	m->mtime_s = (int64_t)st.st_mtim.tv_sec;
	m->mtime_ns = (int64_t)st.st_mtim.tv_nsec;
	crypto_generichash(m->hash, sizeof(m->hash), (const unsigned char *)m,
	                   offsetof(struct clean_marker, hash), NULL, 0);
	return 0;
}

static void clean_marker_write(const struct store *s)
{
	struct clean_marker m;
	char err[256];
	if (clean_marker_of(s, &m) < 0)
		return;
	if (fsu_write_private(s->clean_path, &m, sizeof(m), 0, err, sizeof(err)) < 0)
		log_warnx("store: clean-close marker not written (%s): the next start checks the "
		          "database first",
		          err);
}

/* 1 when a valid marker says the database was closed cleanly and is as it
 * was left; the marker is removed either way. Not synced: if the removal is
 * lost, the marker no longer matches a database this session changed. */
static int clean_marker_take(const struct store *s)
{
	struct clean_marker got, want;
	int rc = fsu_read_private(s->clean_path, &got, sizeof(got), NULL, 0);
	if (rc != -ENOENT)
		unlink(s->clean_path);
	if (rc < 0)
		return 0;
	return clean_marker_of(s, &want) == 0 && sodium_memcmp(&got, &want, sizeof(got)) == 0;
}

static int db_open(struct store *s, int check, int *recovered, char *err, size_t errlen)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		mode_t old = umask(077);
		int rc = sqlite3_open_v2(s->db_path, &s->db,
		                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
		                             SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_EXRESCODE,
		                         s->vfs);
		if (rc == SQLITE_OK)
			rc = db_configure(s);
		if (rc == SQLITE_OK && check)
			rc = db_check(s);
		umask(old);
		if (rc == SQLITE_OK)
			return 0;
		sqlite3_close_v2(s->db);
		s->db = NULL;
		if (!is_corruption(rc) || attempt > 0) {
			SETERR("%s: %s", s->db_path, sqlite3_errstr(rc));
			return (rc & 0xff) == SQLITE_FULL ? -ENOSPC : -EIO;
		}
		int mrc = move_aside(s, err, errlen);
		if (mrc < 0)
			return mrc;
		*recovered = 1;
	}
	return -EIO;
}

static int meta_get(struct store *s, const char *key, unsigned char **val, size_t *len)
{
	static const char sql[] = "SELECT value FROM meta WHERE key = ?";
	sqlite3_stmt *st = store_stmt(s, sql);
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return store_sqlerr(s, rc, "meta");
	*len = (size_t)sqlite3_column_bytes(st, 0);
	*val = malloc(*len + 1);
	if (!*val)
		return -ENOMEM;
	if (*len)
		memcpy(*val, sqlite3_column_blob(st, 0), *len);
	sqlite3_reset(st);
	return 0;
}

static int meta_put(struct store *s, const char *key, const void *val, size_t len)
{
	static const char sql[] = "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)";
	return store_exec(s, sql, "meta", "tb", key, val, len);
}

/* The key check proves the keys file belongs to this database. */
static int keycheck(struct store *s, int *fresh, char *err, size_t errlen)
{
	unsigned char *val = NULL, *pt = NULL;
	size_t len = 0, plen = 0;
	int rc = meta_get(s, "keycheck", &val, &len);
	if (rc == -ENOENT) {
		*fresh = 1;
		unsigned char *sealed;
		size_t slen;
		unsigned char db_id[16];
		seal_random(s->seal, db_id, sizeof(db_id));
		rc = store_seal(s, "meta", "keycheck", "value", KEYCHECK_TEXT,
		                sizeof(KEYCHECK_TEXT) - 1, &sealed, &slen);
		if (rc < 0)
			return rc;
		int owned;
		if ((rc = store_tx_start(s, &owned)) == 0) {
			rc = meta_put(s, "keycheck", sealed, slen);
			if (rc == 0)
				rc = meta_put(s, "db_id", db_id, sizeof(db_id));
			rc = store_tx_end(s, owned, rc);
		}
		free(sealed);
		if (rc < 0)
			SETERR("%s: cannot initialise: %s", s->db_path, strerror(-rc));
		return rc;
	}
	if (rc < 0) {
		SETERR("%s: reading key check: %s", s->db_path, strerror(-rc));
		return rc;
	}
	rc = store_open_sealed(s, "meta", "keycheck", "value", val, len, &pt, &plen);
	free(val);
	if (rc == 0 && (plen != sizeof(KEYCHECK_TEXT) - 1 || memcmp(pt, KEYCHECK_TEXT, plen) != 0))
		rc = -EBADMSG;
	store_free_secret(pt, plen);
	if (rc < 0) {
		SETERR("%s was not sealed with the keys in %s: refusing to open it", s->db_path,
		       s->keys_path);
		return -EKEYREJECTED;
	}
	return 0;
}

static int load_sequences(struct store *s)
{
	static const char *const names[SEQ_COUNT] = {"outbox", "positions", "audit"};
	static const char sql[] = "SELECT seq FROM sqlite_sequence WHERE name = ?";
	for (int i = 0; i < SEQ_COUNT; i++) {
		s->next_id[i] = 1;
		sqlite3_stmt *st = store_stmt(s, sql);
		if (!st)
			return -EIO;
		sqlite3_bind_text(st, 1, names[i], -1, SQLITE_STATIC);
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			s->next_id[i] = sqlite3_column_int64(st, 0) + 1;
		else if (rc != SQLITE_DONE)
			return store_sqlerr(s, rc, "sequences");
		sqlite3_reset(st);
	}
	/* Rejected events keep their seq and left the outbox: never reuse it. */
	sqlite3_stmt *st = store_stmt(s, "SELECT max(seq) FROM rejected");
	if (st && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) >= s->next_id[0])
		s->next_id[0] = sqlite3_column_int64(st, 0) + 1;
	if (st)
		sqlite3_reset(st);
	return 0;
}

static void store_free(struct store *s)
{
	if (!s)
		return;
	for (int i = 0; i < STORE_STMT_CACHE && s->stmts[i].sql; i++)
		sqlite3_finalize(s->stmts[i].st);
	if (s->db)
		sqlite3_close_v2(s->db);
	store_pos_close(s);
	store_outbox_close(s);
	seal_close(s->seal);
	if (s->kek)
		sodium_free(s->kek);
	if (s->sign_sk)
		sodium_free(s->sign_sk);
	sodium_memzero(s, sizeof(*s));
	free(s);
}

/* Closes the database and forgets its statements (store_open's retry). */
static void db_reset(struct store *s)
{
	for (int i = 0; i < STORE_STMT_CACHE && s->stmts[i].sql; i++) {
		sqlite3_finalize(s->stmts[i].st);
		s->stmts[i].sql = NULL;
		s->stmts[i].st = NULL;
	}
	if (s->db)
		sqlite3_close_v2(s->db);
	s->db = NULL;
	s->failed = 0;
}

/* Opens the database (checked when check), migrates, proves the key and
 * loads the sequences. */
static int db_setup(struct store *s, int check, int have_db, int *fl, char *err, size_t errlen)
{
	int recovered = 0, rc;
	rc = db_open(s, check, &recovered, err, errlen);
	if (rc < 0)
		return rc;
	if (recovered)
		*fl |= STORE_OPENED_RECOVERED;
	int before = 0;
	store_pragma_int(s->db, "PRAGMA user_version", &before);
	rc = store_schema_migrate(s->db, store_schema_version(), err, errlen);
	if (rc < 0)
		return rc;
	if (before != 0 && before != store_schema_version())
		*fl |= STORE_OPENED_MIGRATED;
	int fresh = 0;
	rc = keycheck(s, &fresh, err, errlen);
	if (rc < 0)
		return rc;
	if (fresh && have_db && !recovered)
		log_warnx("store: %s had no key check; it is now bound to %s", s->db_path,
		          s->keys_path);
	rc = load_sequences(s);
	if (rc < 0)
		SETERR("%s: %s", s->db_path, strerror(-rc));
	return rc;
}

int store_open(const struct store_params *p, struct store **out, int *flags, char *err,
               size_t errlen)
{
	int rc, fl = 0;
	unsigned char *dk = NULL;
	*out = NULL;
	if (sodium_init() < 0)
		return -EIO;
	struct store *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->keystore = p->keystore;
	s->vfs = p->vfs;
	s->durability =
	    (unsigned)p->durability <= STORE_DURABILITY_OFF ? p->durability : STORE_DURABILITY_FULL;
	if (snprintf(s->dir, sizeof(s->dir), "%s", p->dir) >= (int)sizeof(s->dir) ||
	    snprintf(s->db_path, sizeof(s->db_path), "%s/ess.db", p->dir) >=
	        (int)sizeof(s->db_path) ||
	    snprintf(s->keys_path, sizeof(s->keys_path), "%s/keys", p->dir) >=
	        (int)sizeof(s->keys_path) ||
	    snprintf(s->clean_path, sizeof(s->clean_path), "%s/ess.db.clean", p->dir) >=
	        (int)sizeof(s->clean_path)) {
		SETERR("store directory path too long");
		rc = -ENAMETOOLONG;
		goto fail;
	}
	struct stat st;
	if (stat(p->dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		SETERR("%s: not a directory", p->dir);
		rc = -ENOTDIR;
		goto fail;
	}
	if (st.st_mode & S_IWOTH) {
		SETERR("%s: writable by others; refusing to keep keys there", p->dir);
		rc = -EACCES;
		goto fail;
	}
	int have_db = file_exists(s->db_path), have_keys = file_exists(s->keys_path);

	s->kek = sodium_malloc(HAL_KEK_BYTES);
	dk = sodium_malloc(SEAL_KEY_BYTES);
	if (!s->kek || !dk) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = hal_keystore_load(p->keystore, s->kek, err, errlen);
	if (rc == -ENOENT && p->create && !have_db && !have_keys) {
		rc = hal_keystore_create(p->keystore, err, errlen);
		if (rc == 0)
			rc = hal_keystore_load(p->keystore, s->kek, err, errlen);
	}
	if (rc < 0)
		goto fail;
	sodium_mprotect_noaccess(s->kek);

	if (have_keys) {
		rc = keys_read(s, dk, err, errlen);
		if (rc < 0)
			goto fail;
	} else if (have_db) {
		SETERR("%s exists but its keys file %s is missing: refusing to make new keys "
		       "(the data would be lost)",
		       s->db_path, s->keys_path);
		rc = -ENOKEY;
		goto fail;
	} else if (!p->create) {
		SETERR("%s: no store here (provision the device first)", s->keys_path);
		rc = -ENOENT;
		goto fail;
	} else {
		randombytes_buf(dk, SEAL_KEY_BYTES);
		sodium_mprotect_readonly(s->kek);
		seal_wrap(s->kek, LABEL_DK, dk, SEAL_KEY_BYTES, s->wrapped_dk);
		sodium_mprotect_noaccess(s->kek);
		rc = keys_write(s, err, errlen, 1);
		if (rc < 0)
			goto fail;
		fl |= STORE_OPENED_CREATED;
	}
	rc = seal_open(dk, &s->seal);
	sodium_free(dk);
	dk = NULL;
	if (rc < 0)
		goto fail;

	/* The check (quick_check reads the whole file: ~10 ms for 10 MB) runs
	 * here only when the last close was not clean; otherwise store_integrity_check
	 * runs it later, when the daemon is serving. */
	int check = !clean_marker_take(s);
	s->opening = 1;
	rc = db_setup(s, check, have_db, &fl, err, errlen);
	if (rc < 0 && !check && rc != -EKEYREJECTED && rc != -ENOMEM && rc != -ENOSPC) {
		/* Something failed with the check not yet run: it may be damage
		 * the check finds. Check now, and try once more (a damaged file
		 * is moved aside there, as at any open). */
		db_reset(s);
		check = 1;
		fl &= ~(STORE_OPENED_RECOVERED | STORE_OPENED_MIGRATED);
		rc = db_setup(s, 1, have_db, &fl, err, errlen);
	}
	s->opening = 0;
	if (rc < 0)
		goto fail;
	if (check)
		fl |= STORE_OPENED_CHECKED;
	s->check_pending = !check;
	rc = store_pos_open(s);
	if (rc < 0) {
		SETERR("%s: %s", s->db_path, strerror(-rc));
		goto fail;
	}
	if (flags)
		*flags = fl;
	*out = s;
	return 0;
fail:
	if (dk)
		sodium_free(dk);
	store_free(s);
	return rc;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	if (s->in_tx)
		store_rollback(s);
	int clean = !s->failed;
	if (store_pos_flush(s) < 0) {
		log_warnx("store: buffered positions could not be saved at close");
		clean = 0;
	}
	/* Clean means: everything is in the database file, synced, and the WAL
	 * gone (the close removes it once it is all checkpointed). A checkpoint
	 * that fails or cannot take every frame (the disk gone, another
	 * process reading) leaves the next open to check the file itself.
	 * PASSIVE: a stop never waits for another process's reader. */
	int wal_frames = -1, done_frames = -1;
	if (clean && (sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &wal_frames,
	                                        &done_frames) != SQLITE_OK ||
	              wal_frames != done_frames))
		clean = 0;
	/* A damaged database is left exactly as it is, WAL included, for the
	 * next open to move aside: no checkpoint into it on the way out. */
	if (s->failed)
		sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	for (int i = 0; i < STORE_STMT_CACHE && s->stmts[i].sql; i++) {
		sqlite3_finalize(s->stmts[i].st);
		s->stmts[i].sql = NULL;
	}
	if (sqlite3_close(s->db) != SQLITE_OK)
		clean = 0; /* store_free closes it for good */
	else
		s->db = NULL;
	if (clean)
		clean_marker_write(s);
	store_free(s);
}

int store_integrity_pending(const struct store *s)
{
	return s->check_pending;
}

int store_failed(const struct store *s)
{
	return s->failed;
}

void store_on_failed(struct store *s, void (*cb)(void *arg), void *arg)
{
	s->on_failed = cb;
	s->on_failed_arg = arg;
}

int store_integrity_check(struct store *s)
{
	if (s->failed)
		return -EUCLEAN;
	if (!s->check_pending)
		return 0;
	int rc = db_check(s);
	if (rc == SQLITE_OK) {
		s->check_pending = 0;
		return 0;
	}
	if (is_corruption(rc)) {
		s->check_pending = 0;
		store_fail(s, "integrity check");
		return -EUCLEAN;
	}
	return store_sqlerr(s, rc, "integrity check");
}

int store_wipe(struct store *s, char *err, size_t errlen)
{
	int rc = 0, r;
	char db_path[PATH_MAX], keys_path[PATH_MAX];
	memcpy(db_path, s->db_path, sizeof(db_path));
	memcpy(keys_path, s->keys_path, sizeof(keys_path));
	unlink(s->clean_path); /* names no data; nothing left to be clean */
	struct hal_keystore *ks = s->keystore;
	/* Discard, not flush: nothing new is written on the way out. */
	s->pos_n = s->pos_sealed = 0;
	if (s->in_tx)
		store_rollback(s);
	store_free(s);

	/* Keys first: once they are gone the data is unreadable everywhere,
	 * whatever happens to the rest of this function. */
	if ((r = fsu_shred(keys_path, err, errlen)) < 0)
		rc = r;
	if ((r = hal_keystore_destroy(ks, rc < 0 ? NULL : err, errlen)) < 0 && r != -ENOENT &&
	    rc == 0)
		rc = r;
	static const char *const suffix[] = {"-wal", "-shm", ""};
	for (int i = 0; i < 3; i++) {
		char path[PATH_MAX + 8];
		snprintf(path, sizeof(path), "%s%s", db_path, suffix[i]);
		if ((r = fsu_shred(path, rc < 0 ? NULL : err, errlen)) < 0 && rc == 0)
			rc = r;
	}
	log_warnx("store: wiped (keys destroyed, database removed)%s",
	          rc < 0 ? " with errors" : "");
	return rc;
}

/* ---- sync state ---- */

static int state_key_ok(const char *key)
{
	size_t n = strlen(key);
	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(key[i] == '_' || key[i] == '.' || (key[i] >= 'a' && key[i] <= 'z') ||
		      (key[i] >= '0' && key[i] <= '9')))
			return 0;
	return 1;
}

int store_state_set(struct store *s, const char *key, const void *val, size_t len)
{
	static const char sql[] = "INSERT OR REPLACE INTO state(key, value) VALUES(?, ?)";
	if (!state_key_ok(key) || len > STORE_DOC_MAX)
		return -EINVAL;
	unsigned char *sealed;
	size_t slen;
	int rc = store_seal(s, "state", key, "value", val, len, &sealed, &slen);
	if (rc < 0)
		return rc;
	rc = store_exec(s, sql, "state", "tb", key, sealed, slen);
	free(sealed);
	return rc;
}

int store_state_get(struct store *s, const char *key, void *buf, size_t cap, size_t *len)
{
	static const char sql[] = "SELECT value, key FROM state WHERE key = ?";
	if (!state_key_ok(key))
		return -EINVAL;
	sqlite3_stmt *st = store_stmt(s, sql);
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return store_sqlerr(s, rc, "state");
	unsigned char *pt;
	size_t plen;
	const void *blob = sqlite3_column_blob(st, 0);
	size_t blen = (size_t)sqlite3_column_bytes(st, 0);
	rc = store_open_sealed(s, "state", key, "value", blob, blen, &pt, &plen);
	if (rc == -EBADMSG) {
		struct store_bad bad = {0};
		store_bad_add(&bad, st, 1, 0);
		sqlite3_reset(st);
		store_bad_flush(s, &bad, "state", "key");
		return -EBADMSG;
	}
	sqlite3_reset(st);
	if (rc < 0)
		return rc;
	if (len)
		*len = plen;
	if (plen > cap)
		rc = -ENOBUFS;
	else if (plen)
		memcpy(buf, pt, plen);
	store_free_secret(pt, plen);
	return rc;
}

int store_state_del(struct store *s, const char *key)
{
	if (!state_key_ok(key))
		return -EINVAL;
	return store_exec(s, "DELETE FROM state WHERE key = ?", "state", "t", key);
}

/* ---- device identity ---- */

int store_device_keygen(struct store *s, int force)
{
	if (s->sign_sk && !force)
		return -EEXIST;
	unsigned char *sk = sodium_malloc(64);
	unsigned char pk[32];
	if (!sk)
		return -ENOMEM;
	crypto_sign_ed25519_keypair(pk, sk);
	unsigned char *old = s->sign_sk;
	unsigned char old_pk[32];
	memcpy(old_pk, s->sign_pk, 32);
	s->sign_sk = sk;
	memcpy(s->sign_pk, pk, 32);
	sodium_mprotect_noaccess(sk);

	char err[256];
	int rc = keys_write(s, err, sizeof(err), 0);
	if (rc < 0) {
		log_errx("store: saving the device key: %s", err);
		sodium_free(sk);
		s->sign_sk = old;
		memcpy(s->sign_pk, old_pk, 32);
		return rc;
	}
	if (old)
		sodium_free(old);
	return 0;
}

int store_device_pubkey(struct store *s, unsigned char pk[32])
{
	if (!s->sign_sk)
		return -ENOKEY;
	memcpy(pk, s->sign_pk, 32);
	return 0;
}

int store_device_sign(struct store *s, const void *msg, size_t len, unsigned char sig[64])
{
	if (!s->sign_sk)
		return -ENOKEY;
	sodium_mprotect_readonly(s->sign_sk);
	crypto_sign_ed25519_detached(sig, NULL, msg, len, s->sign_sk);
	sodium_mprotect_noaccess(s->sign_sk);
	return 0;
}

/* ---- audit ---- */

int store_audit_add(struct store *s, enum store_audit_action action, const char *subject,
                    const char *detail, int64_t now_ms)
{
	static const char sql[] = "INSERT INTO audit(id, at, entry) VALUES(?, ?, ?)";
	size_t sl = subject ? strnlen(subject, 256) : 0, dl = detail ? strnlen(detail, 4096) : 0;
	unsigned char buf[1 + 256 + 1 + 4096];
	buf[0] = (unsigned char)action;
	if (sl)
		memcpy(buf + 1, subject, sl);
	buf[1 + sl] = 0;
	if (dl)
		memcpy(buf + 2 + sl, detail, dl);
	size_t len = 2 + sl + dl;

	int64_t id = store_next_id(s, SEQ_AUDIT);
	char row[24];
	snprintf(row, sizeof(row), "%lld", (long long)id);
	unsigned char *sealed;
	size_t slen;
	int rc = store_seal(s, "audit", row, "entry", buf, len, &sealed, &slen);
	sodium_memzero(buf, len);
	if (rc < 0)
		return rc;
	rc = store_exec(s, sql, "audit", "iib", id, now_ms, sealed, slen);
	free(sealed);
	return rc;
}

int store_audit_each(struct store *s, store_audit_fn cb, void *arg)
{
	static const char sql[] = "SELECT id, at, entry FROM audit ORDER BY id";
	sqlite3_stmt *st = store_stmt(s, sql);
	if (!st)
		return -EIO;
	int rc, ret = 0;
	struct store_bad bad = {0};
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		char row[24];
		snprintf(row, sizeof(row), "%lld", (long long)id);
		const void *blob = sqlite3_column_blob(st, 2);
		size_t blen = (size_t)sqlite3_column_bytes(st, 2);
		unsigned char *pt;
		size_t plen;
		int r = store_open_sealed(s, "audit", row, "entry", blob, blen, &pt, &plen);
		if (r == -EBADMSG || (r == 0 && (plen < 2 || !memchr(pt + 1, 0, plen - 1)))) {
			if (r == 0)
				store_free_secret(pt, plen);
			store_bad_add(&bad, st, 0, 2);
			continue;
		}
		if (r < 0) {
			ret = r;
			break;
		}
		const char *subject = (const char *)pt + 1;
		const char *detail = subject + strlen(subject) + 1;
		ret = cb(arg, sqlite3_column_int64(st, 1), (enum store_audit_action)pt[0], subject,
		         detail);
		store_free_secret(pt, plen);
		if (ret)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		ret = store_sqlerr(s, rc, "audit");
	sqlite3_reset(st);
	if (store_bad_flush(s, &bad, "audit", "id") && ret == 0)
		ret = -EBADMSG;
	return ret;
}

/* ---- health ---- */

static int count_query(struct store *s, const char *sql, int64_t *n)
{
	sqlite3_stmt *st = store_stmt(s, sql);
	if (!st)
		return -EIO;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*n = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_reset(st);
	return store_sqlerr(s, rc, "count");
}

int store_quarantine_count(struct store *s, int64_t *n)
{
	return count_query(s, "SELECT count(*) FROM quarantine", n);
}

int store_incident_count(struct store *s, int64_t *n)
{
	return count_query(s, "SELECT count(*) FROM incidents", n);
}

int store_rejected_count(struct store *s, int64_t *n)
{
	return count_query(s, "SELECT count(*) FROM rejected", n);
}

int64_t store_disk_bytes(struct store *s)
{
	int64_t total = 0;
	struct stat st;
	char path[PATH_MAX + 8];
	if (stat(s->db_path, &st) == 0)
		total += st.st_size;
	snprintf(path, sizeof(path), "%s-wal", s->db_path);
	if (stat(path, &st) == 0)
		total += st.st_size;
	return total;
}

int store_checkpoint(struct store *s)
{
	if (s->failed)
		return -EUCLEAN;
	int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	return store_sqlerr(s, rc, "checkpoint");
}
