/* Shared by the store's own files (store*.c) only. */
#ifndef ESS_STORE_INT_H
#define ESS_STORE_INT_H

#include "agent/seal.h"
#include "agent/store.h"

#include <limits.h>
#include <sqlite3.h>

#define STORE_STMT_CACHE 48
#define POS_CHUNK_MAX    512 /* fixes per sealed chunk: ~5 KiB encoded */
/* Events appended inside one store_begin transaction are sealed together,
 * one AEAD and one row (a group) for up to this many events or plaintext
 * bytes (docs/store.md, "Groups"). */
#define OUTBOX_GROUP_MAX   64
#define OUTBOX_GROUP_BYTES (32 * 1024)
/* The type column of a group row without an SOS in it; a group with one
 * says STORE_EVENT_SOS, so that the SOS-first query finds it. */
#define OUTBOX_GROUP_TYPE 255

enum { SEQ_OUTBOX = 0, SEQ_POSITIONS, SEQ_AUDIT, SEQ_COUNT };

struct store {
	sqlite3 *db;
	struct hal_keystore *keystore; /* borrowed */
	struct seal *seal;             /* the data key, guarded */
	unsigned char *kek;            /* guarded, no access except while used */
	unsigned char *sign_sk;        /* guarded, no access except while used; NULL if none */
	unsigned char sign_pk[32];
	unsigned char wrapped_dk[SEAL_OVERHEAD + SEAL_KEY_BYTES]; /* as in the keys file */
	int in_tx;                                                /* store_begin is open */
	int64_t next_id[SEQ_COUNT]; /* next AUTOINCREMENT value, loaded at open */
	struct {
		const char *sql;
		sqlite3_stmt *st;
	} stmts[STORE_STMT_CACHE];
	/* The open position chunk: fixes not yet sealed, or sealed in row
	 * pos_chunk_id and rewritten as it grows. */
	struct store_fix *pos_buf; /* guarded, POS_CHUNK_MAX entries */
	size_t pos_n;
	size_t pos_sealed;
	int64_t pos_chunk_id;
	/* Chunks up to this id are on the server (store_pos_acked): deleted in
	 * the next flush's transaction, counted and peeked no more. */
	int64_t pos_acked;
	/* Events appended inside store_begin and not yet sealed: the group
	 * being gathered, sealed at commit, when full, or before the outbox is
	 * read. A failure to seal it is kept in grp_err so that the commit
	 * fails too: an event whose append returned 0 is never dropped
	 * silently. */
	unsigned char *grp_buf; /* guarded plaintext, OUTBOX_GROUP_BYTES */
	size_t grp_len;
	int grp_n;
	int grp_sos;
	int grp_err;
	int64_t grp_first; /* seq of its first event; the rest follow without gaps */
	/* The group a rejection inside store_begin last opened, kept opened
	 * until the transaction ends: the sync engine rejects a batch event by
	 * event, and reopening a 64-event group for each would cost 64
	 * decryptions of it. Its plaintext never outlives the transaction. */
	struct outbox_group *grp_cache;
	/* Integrity (docs/store.md, "Integrity"): the check runs at open only
	 * after an unclean close; otherwise it is pending until store_integrity_check.
	 * failed: the database was found damaged (by the check or by SQLite
	 * saying SQLITE_CORRUPT): nothing more is written to it, and close
	 * leaves no clean marker, so the next open checks it and moves it
	 * aside. opening: inside store_open, which retries with the check
	 * itself instead of declaring the store failed. */
	int check_pending;
	int failed;
	int opening;
	void (*on_failed)(void *arg);
	void *on_failed_arg;
	const char *vfs; /* borrowed from the params: a registered VFS name lives forever */
	enum store_durability durability;
	char dir[PATH_MAX];
	char db_path[PATH_MAX];
	char keys_path[PATH_MAX];
	char clean_path[PATH_MAX]; /* the clean-close marker */
};

/* A cached prepared statement for a static SQL string (compared by address),
 * reset and unbound; NULL on error (logged). */
sqlite3_stmt *store_stmt(struct store *s, const char *sql);
/* Runs one statement, in its own transaction unless store_begin opened one,
 * binding the arguments by fmt: 'i' int64_t, 't' const char * (NULL binds
 * NULL), 'b' const void * then size_t. Returns 0 or a negative errno. */
int store_exec(struct store *s, const char *sql, const char *what, const char *fmt, ...);
/* Maps an SQLite result code to a negative errno (0 for OK/ROW/DONE);
 * SQLITE_CORRUPT and SQLITE_NOTADB fail the store (store_fail), -EUCLEAN. */
int store_sqlerr(struct store *s, int rc, const char *what);
/* Marks the store failed (damaged database): logged, on_failed called, once. */
void store_fail(struct store *s, const char *what);
/* Opens a transaction unless store_begin did; store_tx_end commits or rolls
 * back only what store_tx_start opened. */
int store_tx_start(struct store *s, int *owned);
int store_tx_end(struct store *s, int owned, int rc);
int64_t store_next_id(struct store *s, int which);

/* Seals plaintext for (table,row,column) into out (len + SEAL_OVERHEAD). */
int store_seal_into(struct store *s, const char *table, const char *row, const char *column,
                    const void *in, size_t len, unsigned char *out);
/* The same into a malloc'd *out, caller frees. */
int store_seal(struct store *s, const char *table, const char *row, const char *column,
               const void *in, size_t len, unsigned char **out, size_t *outlen);
/* Opens a sealed value: *out is malloc'd with a NUL after it, caller wipes
 * and frees (store_free_secret). -EBADMSG if it does not authenticate. */
int store_open_sealed(struct store *s, const char *table, const char *row, const char *column,
                      const void *in, size_t len, unsigned char **out, size_t *outlen);
void store_free_secret(void *p, size_t len);
/* Moves the row to quarantine and deletes it from its table. */
int store_quarantine(struct store *s, const char *table, const char *key_column,
                     const char *row_key, int64_t rowid, const void *data, size_t len);

/* Rows that failed authentication while a SELECT walks their table: kept
 * (at most STORE_BAD_MAX per walk) and quarantined once the statement is
 * reset, since a row must not be deleted under a running SELECT. */
#define STORE_BAD_MAX 8
struct store_bad {
	size_t n;
	struct {
		char key[STORE_ID_MAX + 1]; /* text key; empty when the key is rowid */
		int64_t rowid;
		unsigned char *data;
		size_t len;
	} row[STORE_BAD_MAX];
};
/* Copies row key (column key_col, text or integer) and blob (blob_col). */
void store_bad_add(struct store_bad *b, sqlite3_stmt *st, int key_col, int blob_col);
/* Quarantines and frees them; returns how many there were. */
size_t store_bad_flush(struct store *s, struct store_bad *b, const char *table,
                       const char *key_column);

/* Seals the events gathered in the open transaction as one row (a group;
 * a single event keeps the one-event row shape). */
int store_outbox_seal_pending(struct store *s);
/* Forgets them (the transaction rolled back), wiping the plaintext. */
void store_outbox_drop_pending(struct store *s);
void store_outbox_close(struct store *s);
/* Wipes and forgets the opened group a rejection kept (end of transaction). */
void store_outbox_cache_drop(struct store *s);

int store_pos_open(struct store *s);
void store_pos_close(struct store *s);

#endif
