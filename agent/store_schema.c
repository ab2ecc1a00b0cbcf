/* Plaintext columns are the exception and each says why it is plaintext:
 * ids are the server's opaque identifiers or local counters, enums and times
 * serve queries (ordering, retention, queue depth). Every other value —
 * documents, text, locations, reasons — is a sealed BLOB (seal.h) bound to
 * its table, row and column. */
#include "agent/store_schema.h"

#include <errno.h>
#include <stdio.h>

static const char *const migrations[] = {
    /* 1: the initial store. */
    "CREATE TABLE meta("
    "  key TEXT PRIMARY KEY," /* fixed program constants */
    "  value BLOB NOT NULL"   /* db_id (random name of this database), keycheck (sealed) */
    ") WITHOUT ROWID;"
    "CREATE TABLE incidents("
    "  id TEXT PRIMARY KEY,"             /* server's opaque id: lookups by id, names nobody */
    "  version INTEGER NOT NULL,"        /* compared on each delivery to ignore stale copies */
    "  dispatch_state INTEGER NOT NULL," /* enum: active vs ended, for lists and retention */
    "  local_status INTEGER NOT NULL,"   /* enum: checked before an event is queued */
    "  ended_at INTEGER,"                /* unix ms it stopped being active: retention */
    "  doc BLOB NOT NULL"                /* sealed: server signature || exact payload */
    ");"
    "CREATE TABLE outbox("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT," /* device-wide order; never reused after delete */
    "  event_id BLOB NOT NULL," /* 16 random bytes: matches server results, says nothing */
    "  type INTEGER NOT NULL,"  /* enum: SOS leaves first */
    "  body BLOB NOT NULL"      /* sealed event JSON */
    ");"
    "CREATE TABLE rejected("
    "  seq INTEGER PRIMARY KEY,"      /* the event's seq, kept for technicians */
    "  event_id BLOB NOT NULL,"       /* random, as in outbox */
    "  type INTEGER NOT NULL,"        /* enum, for the list */
    "  rejected_at INTEGER NOT NULL," /* unix ms: retention */
    "  body BLOB NOT NULL,"           /* sealed event JSON */
    "  reason BLOB NOT NULL"          /* sealed: the server's words may quote data */
    ");"
    "CREATE TABLE positions("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT," /* chunk order = time order */
    "  n INTEGER NOT NULL," /* fixes in the chunk: queue depth without decrypting */
    "  chunk BLOB NOT NULL" /* sealed poscodec chunk */
    ");"
    "CREATE TABLE state("
    "  key TEXT PRIMARY KEY," /* fixed program constants (cursor, device_id, …) */
    "  value BLOB NOT NULL"   /* sealed */
    ") WITHOUT ROWID;"
    "CREATE TABLE audit("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT," /* order */
    "  at INTEGER NOT NULL,"                  /* unix ms: retention */
    "  entry BLOB NOT NULL"                   /* sealed: action, subject, detail */
    ");",

    /* 2: quarantine for rows that fail authentication, and the indexes the
     * drain (SOS first) and the retention purge need. */
    "CREATE TABLE quarantine("
    "  id INTEGER PRIMARY KEY,"
    "  from_table TEXT NOT NULL," /* where the row was */
    "  row_key TEXT NOT NULL,"    /* its id or seq: already plaintext there */
    "  at INTEGER NOT NULL,"      /* unix ms it was found */
    "  data BLOB"                 /* the undecryptable bytes, for forensics */
    ");"
    "CREATE INDEX outbox_sos ON outbox(seq) WHERE type = 3;"
    "CREATE INDEX incidents_ended ON incidents(ended_at) WHERE ended_at IS NOT NULL;",

    /* 3: groups. The events appended in one transaction are sealed as one
     * value (one AEAD instead of one per event), kept in outbox_group under
     * the outbox row of the group, whose seq is the last of its events
     * (body and event_id empty there: ids are sealed inside). Rows already
     * there are one-event rows, as before. */
    "ALTER TABLE outbox ADD COLUMN n INTEGER NOT NULL DEFAULT 1;" /* events in the row:
                                     seqs seq-n+1 .. seq; ranges without unsealing */
    "ALTER TABLE outbox ADD COLUMN done BLOB;" /* groups: bitmap of events already
                                     delivered or rejected (bit i = seq-n+1+i), so that a
                                     group is deleted only when all are done; says nothing */
    "CREATE TABLE outbox_group("
    "  seq INTEGER PRIMARY KEY," /* the group's outbox row */
    "  body BLOB NOT NULL"       /* sealed: the group's events */
    ");", /* no index on outbox for groups: outbox_group's keys are that index, and an
            index on outbox would cost every single append */

    /* 4: the incident walk (active first, then most recently ended) in index
     * order: with ORDER BY on the table SQLite sorted every row, sealed
     * documents included, in memory (10 MB of heap for 10,000 incidents)
     * each time essd asked whether any incident is active. */
    "DROP INDEX incidents_ended;"
    "CREATE INDEX incidents_ended ON incidents(ended_at DESC, id) WHERE ended_at IS NOT NULL;"
    "CREATE INDEX incidents_active ON incidents(id) WHERE ended_at IS NULL;",
};

#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

int store_schema_version(void)
{
	return SCHEMA_VERSION;
}

int store_pragma_int(sqlite3 *db, const char *sql, int *v)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*v = sqlite3_column_int(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

int store_schema_migrate(sqlite3 *db, int target, char *err, size_t errlen)
{
	int v = 0;
	int rc = store_pragma_int(db, "PRAGMA user_version", &v);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "reading schema version: %s", sqlite3_errstr(rc));
		return rc == SQLITE_FULL ? -ENOSPC : -EIO;
	}
	if (v > SCHEMA_VERSION || v < 0) {
		snprintf(err, errlen, "database schema %d is newer than this agent's %d", v,
		         SCHEMA_VERSION);
		return -EPROTO;
	}
	if (target > SCHEMA_VERSION)
		target = SCHEMA_VERSION;
	for (; v < target; v++) {
		char bump[64];
		snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", v + 1);
		char *msg = NULL;
		rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(db, migrations[v], NULL, NULL, &msg);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(db, bump, NULL, NULL, &msg);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(db, "COMMIT", NULL, NULL, &msg);
		if (rc != SQLITE_OK) {
			snprintf(err, errlen, "migration to schema %d: %s", v + 1,
			         msg ? msg : sqlite3_errstr(rc));
			sqlite3_free(msg);
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return rc == SQLITE_FULL ? -ENOSPC : -EIO;
		}
	}
	return 0;
}
