/* The store's schema and its migrations. Internal to the store, public to
 * the tests that build a database at an older version and migrate it. */
#ifndef ESS_STORE_SCHEMA_H
#define ESS_STORE_SCHEMA_H

#include <sqlite3.h>
#include <stddef.h>

/* The version this build writes (PRAGMA user_version). */
int store_schema_version(void);

/* The integer a PRAGMA query (sql) answers, in *v: an SQLite result code
 * (SQLITE_OK when *v was set). */
int store_pragma_int(sqlite3 *db, const char *sql, int *v);

/* Migrates db from its user_version up to target (each step in its own
 * transaction, user_version moved with it). -EPROTO if db is newer than this
 * build knows: such a database is never touched. */
int store_schema_migrate(sqlite3 *db, int target, char *err, size_t errlen);

#endif
