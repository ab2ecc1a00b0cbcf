/* The encrypted offline store: everything the device knows, in one SQLite
 * database (WAL) under a data key that a keystore-held KEK wraps.
 *
 * Files in the store directory:
 *   ess.db (+ -wal, -shm)  the database; personal values sealed (seal.h)
 *   keys                   the data key and the device signing key, each
 *                          wrapped by the KEK; never inside the database, so
 *                          a wipe that destroys it (and the KEK) leaves a
 *                          copy of the database taken earlier unreadable.
 *
 * Every function returns 0 (or a count / enum >= 0 where it says) or a
 * negative errno: -ENOSPC disk full (the transaction was rolled back, nothing
 * stored before is lost), -EBADMSG a row failed its authentication and was
 * quarantined, -ENOENT not found, -EUCLEAN the database is damaged (see
 * store_failed), -EIO other database errors. Functions that
 * take err fill it with a message naming files, never data.
 *
 * Strings handed back in records are owned by the record; release a record
 * with the matching *_clear, which wipes personal data before freeing. */
#ifndef ESS_STORE_H
#define ESS_STORE_H

#include <stddef.h>
#include <stdint.h>

struct hal_keystore;
struct store;

#define STORE_ID_MAX       128 /* incident, command ids; longer ones are refused */
#define STORE_EVENT_ID_LEN 36  /* UUID text */
#define STORE_SIG_BYTES    64
#define STORE_DOC_MAX      (1024 * 1024) /* bound on one stored document */

/* How hard a commit waits for the disk. Only FULL keeps the promise that an
 * acknowledged action survives a power cut; the others exist so that the
 * power-cut tests can prove they would catch the difference. */
enum store_durability {
	STORE_DURABILITY_FULL = 0, /* synchronous=FULL: the WAL is synced at every commit */
	STORE_DURABILITY_NORMAL,   /* tests only: synchronous=NORMAL */
	STORE_DURABILITY_OFF,      /* tests only: synchronous=OFF */
};

struct store_params {
	const char *dir;               /* store directory, must exist */
	struct hal_keystore *keystore; /* borrowed */
	int create;                    /* make KEK, keys and database when none exist */
	const char *vfs; /* SQLite VFS name; NULL: the default (tests inject faults) */
	enum store_durability durability;
};

enum store_open_flags {
	STORE_OPENED_CREATED = 1,   /* a new, empty store was made */
	STORE_OPENED_RECOVERED = 2, /* the old database failed its check and was moved aside */
	STORE_OPENED_MIGRATED = 4,  /* the schema was upgraded */
	STORE_OPENED_CHECKED = 8,   /* the integrity check ran at open (no clean close before) */
};

/* Opens (or, with create, makes) the store. On a corrupt database the file is
 * renamed to ess.db.corrupt-<UTC time> (never deleted) and a fresh one is
 * made. A wrong or missing key is an error that leaves every file untouched.
 * flags (may be NULL) receives enum store_open_flags.
 *
 * The integrity check (PRAGMA quick_check, ~1 ms per MiB) runs here only
 * when the last close was not clean (docs/store.md, "Integrity"); after a
 * clean close it is left pending for store_integrity_check, which the
 * daemon runs from its loop once it is serving. */
int store_open(const struct store_params *p, struct store **out, int *flags, char *err,
               size_t errlen);
/* Flushes buffered positions, checkpoints, wipes keys, closes; when all of
 * that succeeded and the store is not failed, leaves the clean-close marker
 * that lets the next open defer its integrity check. NULL is fine. */
void store_close(struct store *s);

/* 1 while the integrity check has not run since the store was opened. */
int store_integrity_pending(const struct store *s);
/* Runs the pending integrity check (0 at once when none is pending). 0: the
 * database is sound. -EUCLEAN: it is damaged: the store is failed (below).
 * Another negative errno: the check could not run; it stays pending. */
int store_integrity_check(struct store *s);
/* 1 once the database was found damaged, by store_integrity_check or by
 * SQLite reporting corruption (SQLITE_CORRUPT, SQLITE_NOTADB) to any call,
 * which then returns -EUCLEAN. A failed store writes nothing more (every write
 * fails with -EUCLEAN or -EIO) and its close leaves no clean marker, so the
 * next store_open checks the database and moves it aside, as it does with
 * any corrupt database: the owner should close it and open it again. */
int store_failed(const struct store *s);
/* cb(arg) is called once, when the store becomes failed (NULL: none). */
void store_on_failed(struct store *s, void (*cb)(void *arg), void *arg);

/* Crypto-shred: destroys the wrapped keys file and the KEK, then the
 * database files, and closes s (do not use it afterwards). Nothing that was
 * stored can be decrypted again, even from an earlier copy of the database. */
int store_wipe(struct store *s, char *err, size_t errlen);

/* Groups several changes into one durable transaction (e.g. assignment items
 * with the cursor). Without it each call is its own transaction. */
int store_begin(struct store *s);
int store_commit(struct store *s);
void store_rollback(struct store *s);

/* ---- incidents ---- */
enum store_dispatch_state {
	STORE_DISPATCH_ASSIGNED = 0,
	STORE_DISPATCH_CANCELLED,
	STORE_DISPATCH_REASSIGNED,
	STORE_DISPATCH_CLOSED,
};
enum store_local_status {
	STORE_STATUS_NEW = 0, /* received, not yet acknowledged */
	STORE_STATUS_ACKNOWLEDGED,
	STORE_STATUS_EN_ROUTE,
	STORE_STATUS_ON_SCENE,
	STORE_STATUS_RESOLVED,
	STORE_STATUS_REFERRED,
	STORE_STATUS_UNABLE_TO_LOCATE,
	STORE_STATUS_DECLINED,
};
#define STORE_STATUS_COUNT 8

enum store_put_result {
	STORE_PUT_NEW = 0, /* first version stored */
	STORE_PUT_UPDATED, /* a newer version replaced the old one */
	STORE_PUT_IGNORED, /* same or older version than the one held */
};

/* Stores a verified incident document: its exact payload bytes and the
 * server's signature over them. Returns enum store_put_result or < 0. */
int store_incident_put(struct store *s, const char *id, int64_t version,
                       enum store_dispatch_state state, int64_t now_ms, const void *payload,
                       size_t payload_len, const unsigned char sig[STORE_SIG_BYTES]);

struct store_incident {
	char id[STORE_ID_MAX + 1];
	int64_t version;
	enum store_dispatch_state dispatch_state;
	enum store_local_status local_status;
	int64_t ended_ms; /* when it stopped being active, 0 while active */
	unsigned char sig[STORE_SIG_BYTES];
	unsigned char *payload; /* owned, NUL-terminated for the JSON parser */
	size_t payload_len;
};
void store_incident_clear(struct store_incident *inc);

int store_incident_get(struct store *s, const char *id, struct store_incident *out);
/* Calls cb for each incident, active first; a non-zero return stops the walk
 * and is returned. The record is cleared after cb returns. */
typedef int (*store_incident_fn)(void *arg, const struct store_incident *inc);
int store_incident_each(struct store *s, store_incident_fn cb, void *arg);
int store_incident_count(struct store *s, int64_t *n);
/* A final status also starts the retention clock. */
int store_incident_set_status(struct store *s, const char *id, enum store_local_status st,
                              int64_t now_ms);

/* Deletes incidents that ended before now - retention, audit entries older
 * than now - audit_retention, with secure_delete, then truncates the WAL
 * so no old frame keeps them. Returns the number of incidents removed. */
int store_purge(struct store *s, int64_t now_ms, int64_t retention_ms, int64_t audit_retention_ms);

/* ---- the outbox of events ---- */
enum store_event_type {
	STORE_EVENT_STATUS = 0,
	STORE_EVENT_NOTE,
	STORE_EVENT_RECEIPT,
	STORE_EVENT_SOS,
	STORE_EVENT_COMMAND_RESULT,
};

/* Appends one event: body is the event's JSON object without event_id and
 * seq, which the store assigns (seq device-wide, never reused; event_id a
 * random UUID v4). When this returns 0 (outside store_begin) the event is
 * durable: it survives kill -9 and power loss. Inside store_begin it is
 * durable when store_commit returns 0; the events of one transaction are
 * sealed together then (docs/store.md, "Groups"), and store_commit fails
 * if they cannot be stored. */
int store_outbox_append(struct store *s, enum store_event_type type, const void *body, size_t len,
                        int64_t *seq, char event_id[STORE_EVENT_ID_LEN + 1]);

struct store_event {
	int64_t seq;
	char event_id[STORE_EVENT_ID_LEN + 1];
	enum store_event_type type;
	unsigned char *body; /* owned, NUL-terminated */
	size_t body_len;
};
void store_event_clear(struct store_event *ev);

/* Calls cb for up to max queued events: SOS events first, then the rest in
 * seq order. A row that fails authentication is quarantined and skipped
 * (a group row with every event in it). ev and its body are valid until cb
 * returns. Returns the number of events passed to cb, or < 0. */
typedef int (*store_event_fn)(void *arg, const struct store_event *ev);
int store_outbox_peek(struct store *s, size_t max, store_event_fn cb, void *arg);
/* The same, but only the non-SOS events with seq > after_seq (every SOS
 * event is still given, first): the drain skips what it has in flight
 * without reading and decrypting those rows again. */
int store_outbox_peek_after(struct store *s, int64_t after_seq, size_t max, store_event_fn cb,
                            void *arg);
/* Removes delivered events (accepted or duplicate). */
int store_outbox_delivered(struct store *s, const int64_t *seqs, size_t n);
/* Moves an event to the rejected list with the server's reason. */
int store_outbox_reject(struct store *s, int64_t seq, const char *reason, int64_t now_ms);
int store_outbox_count(struct store *s, int64_t *n);

struct store_rejected {
	struct store_event ev;
	int64_t rejected_ms;
	char *reason; /* owned */
};
typedef int (*store_rejected_fn)(void *arg, const struct store_rejected *r);
int store_rejected_each(struct store *s, store_rejected_fn cb, void *arg);
int store_rejected_count(struct store *s, int64_t *n);

/* ---- the position trail ---- */
struct store_fix {
	int64_t t_ms;   /* unix ms, increasing */
	int32_t lat_e7; /* 1e-7 degrees */
	int32_t lon_e7;
	int32_t accuracy_dm;  /* -1 unknown */
	int32_t speed_cm_s;   /* -1 unknown */
	int32_t heading_cdeg; /* 0..35999, -1 unknown */
	uint8_t mode;         /* 2 or 3 */
};

/* Buffers a fix in (guarded) memory; fixes are sealed in chunks by
 * store_pos_flush or when a chunk fills. A fix not newer than the last one,
 * or out of range, is refused with -EINVAL. */
int store_pos_append(struct store *s, const struct store_fix *fix);
/* Seals the buffered fixes into the database, durably. */
int store_pos_flush(struct store *s);
/* Calls cb with up to max of the oldest stored fixes (flushing first), whole
 * chunks at a time; *token receives what to pass to store_pos_consumed once
 * the server has them. Returns the number of fixes, or < 0. */
typedef int (*store_fix_fn)(void *arg, const struct store_fix *fixes, size_t n);
int store_pos_peek(struct store *s, size_t max, store_fix_fn cb, void *arg, int64_t *token);
int store_pos_consumed(struct store *s, int64_t token);
/* The same, deferred: the fixes up to token are no longer counted or
 * peeked at once, and their rows are deleted in the transaction of the next
 * flush (or peek, or store_pos_consumed), so that an upload costs no commit
 * (no fsync) of its own. Until then a crash keeps them: they are sent again,
 * which the device API makes harmless (the server keys fixes on time). */
void store_pos_acked(struct store *s, int64_t token);
/* The fixes buffered in memory (not sealed, or in the open chunk): their
 * number, and the times of the oldest and newest (0 when none). */
size_t store_pos_buffered(struct store *s, int64_t *oldest_t, int64_t *newest_t);
/* 1 when every stored fix the server does not have yet is in the buffer
 * (no sealed chunk waits but the open one's), 0 if not, < 0 on error: an
 * upload may then take the trail straight from memory. */
int store_pos_only_buffered(struct store *s);
/* Copies up to max of the oldest buffered fixes into out; returns how many. */
size_t store_pos_copy_buffered(struct store *s, struct store_fix *out, size_t max);
/* The server has the buffered fixes up to t_ms: they leave the buffer
 * without ever being written (the open chunk's row, if it was sealed, is
 * rewritten without them at the next flush, or deleted with it when none
 * are left). */
void store_pos_drop_buffered(struct store *s, int64_t t_ms);
int store_pos_count(struct store *s, int64_t *n); /* stored + buffered */
/* Keeps the trail within max fixes (docs/store.md, "Bounding the trail"):
 * while over the bound, the densest stored chunk (the oldest among equals)
 * loses every other fix, keeping its first and last; when every chunk is
 * down to fewer than POS_THIN_MIN fixes, the oldest chunk is deleted. So a
 * long offline period keeps the whole time span at a falling resolution,
 * oldest first, and the total never exceeds max after the call. Closes the
 * open chunk first. One transaction. *dropped (may be NULL) receives the
 * number of fixes removed. -EINVAL when max < 1. */
#define POS_THIN_MIN 16
int store_pos_thin(struct store *s, int64_t max, int64_t *dropped);

/* ---- a full disk (agent/store_reserve.c) ----
 * A reserve file of STORE_RESERVE_BYTES in the store directory is what a
 * responder's action may still use when the disk is full; positions never
 * do. store_reserve_ensure (re)makes it (-ENOSPC: no room for it: the disk
 * is full); store_reserve_present says whether it is there. store_make_room
 * gives the reserve back and thins the stored trail to half (*dropped, may
 * be NULL, receives the fixes removed): 1 when something was freed, 0 when
 * there was nothing left to free, < 0 on error. */
#define STORE_RESERVE_BYTES (1024 * 1024)
int store_reserve_ensure(struct store *s);
int store_reserve_present(struct store *s);
int store_reserve_release(struct store *s);
int store_make_room(struct store *s, int64_t *dropped);

/* ---- sync state (cursor, clock offset, identity, …), sealed ---- */
int store_state_set(struct store *s, const char *key, const void *val, size_t len);
/* -ENOENT when unset; -ENOBUFS when cap is too small (*len gets the size). */
int store_state_get(struct store *s, const char *key, void *buf, size_t cap, size_t *len);
int store_state_del(struct store *s, const char *key);

/* ---- the device's Ed25519 identity, wrapped by the KEK in the keys file ---- */
/* Makes a new key pair; -EEXIST if one exists and !force. */
int store_device_keygen(struct store *s, int force);
int store_device_pubkey(struct store *s, unsigned char pk[32]);
/* The secret key never leaves guarded memory: sign here. */
int store_device_sign(struct store *s, const void *msg, size_t len, unsigned char sig[64]);

/* ---- local audit log of views and changes ---- */
enum store_audit_action {
	STORE_AUDIT_RECEIVED = 0,
	STORE_AUDIT_VIEWED,
	STORE_AUDIT_STATUS,
	STORE_AUDIT_NOTE,
	STORE_AUDIT_PURGED,
	STORE_AUDIT_COMMAND,
	STORE_AUDIT_QUARANTINE,
};
int store_audit_add(struct store *s, enum store_audit_action action, const char *subject,
                    const char *detail, int64_t now_ms);
typedef int (*store_audit_fn)(void *arg, int64_t at_ms, enum store_audit_action action,
                              const char *subject, const char *detail);
int store_audit_each(struct store *s, store_audit_fn cb, void *arg);

/* ---- health ---- */
int store_quarantine_count(struct store *s, int64_t *n);
/* Bytes of the database and its WAL on disk. */
int64_t store_disk_bytes(struct store *s);
/* A passive WAL checkpoint; the daemon calls it when idle. */
int store_checkpoint(struct store *s);

#endif
