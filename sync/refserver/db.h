/* The reference server's state: one SQLite database (a file, or in memory),
 * its schema, transactions, the meta table and the server's signing key.
 * Modules that own a table group (devices, incidents, events, …) run their
 * own statements on the handle from db_sqlite().
 *
 * The server is single-threaded (one loop), so there is no locking here.
 * Returns: 0 or a negative errno (SQLite errors are -EIO, logged once
 * here with the SQLite message, which never holds a bound value). */
#ifndef ESS_RS_DB_H
#define ESS_RS_DB_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

struct rs_db;

/* path NULL or ":memory:" keeps everything in memory. */
int db_open(const char *path, struct rs_db **out);
void db_close(struct rs_db *db); /* NULL is fine */
sqlite3 *db_sqlite(struct rs_db *db);

int db_begin(struct rs_db *db);
int db_commit(struct rs_db *db);
void db_rollback(struct rs_db *db);

/* sqlite3_prepare_v2 with the error logged; -EIO on failure. */
int db_prepare(struct rs_db *db, const char *sql, sqlite3_stmt **st);
/* Steps a statement that returns no row (SQLITE_DONE); finalizes it. */
int db_step_done(struct rs_db *db, sqlite3_stmt *st);
/* Logs the current SQLite error with a context and returns -EIO. */
int db_fail(struct rs_db *db, const char *what);
/* The JSON document stored as text in column col of the current row, parsed
 * by proto_json_parse (its size and depth limits); NULL if the column is
 * not valid JSON or out of memory. The caller owns (cJSON_Delete) it. */
cJSON *db_column_json(sqlite3_stmt *st, int col);

/* The meta table: small values by key. *val is malloc'd (caller frees),
 * NUL-terminated; -ENOENT if absent. */
int db_meta_get(struct rs_db *db, const char *key, unsigned char **val, size_t *len);
int db_meta_set(struct rs_db *db, const char *key, const void *val, size_t len);

/* The server's Ed25519 key: from key_file when given (created with a new
 * key, mode 0600, if it does not exist; base64 of the 32-byte seed),
 * otherwise from the database, generated at the first start. */
int db_server_key(struct rs_db *db, const char *key_file, unsigned char sk[64],
                  unsigned char pk[32]);

#endif
