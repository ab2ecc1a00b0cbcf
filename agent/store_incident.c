/* Incidents: the latest verified version of each, sealed with the server's
 * signature so it can be re-verified for audit; plus retention. */
#include "agent/store_int.h"
#include "agent/log.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int id_ok(const char *id)
{
	size_t n = strnlen(id, STORE_ID_MAX + 1);
	return n > 0 && n <= STORE_ID_MAX;
}

/* The row key binds the ciphertext to the incident and its version, so a
 * document cannot be moved to another incident or passed off as another
 * version of the same one. */
static void incident_row(char *buf, size_t cap, const char *id, int64_t version)
{
	snprintf(buf, cap, "%s@%lld", id, (long long)version);
}

int store_incident_put(struct store *s, const char *id, int64_t version,
                       enum store_dispatch_state state, int64_t now_ms, const void *payload,
                       size_t payload_len, const unsigned char sig[STORE_SIG_BYTES])
{
	static const char get_sql[] = "SELECT version FROM incidents WHERE id = ?";
	static const char ins_sql[] =
	    "INSERT INTO incidents(id, version, dispatch_state, local_status, ended_at, doc) "
	    "VALUES(?1, ?2, ?3, 0, CASE WHEN ?3 = 0 THEN NULL ELSE ?4 END, ?5)";
	static const char upd_sql[] =
	    "UPDATE incidents SET version = ?2, dispatch_state = ?3, doc = ?5, "
	    "ended_at = CASE WHEN ?3 = 0 AND local_status < 4 THEN NULL "
	    "ELSE coalesce(ended_at, ?4) END WHERE id = ?1";
	if (!id_ok(id) || version < 1 || payload_len > STORE_DOC_MAX ||
	    (unsigned)state > STORE_DISPATCH_CLOSED)
		return -EINVAL;

	int owned, rc, result;
	unsigned char *sealed = NULL, *plain = NULL;
	size_t slen;
	if ((rc = store_tx_start(s, &owned)) < 0)
		return rc;
	sqlite3_stmt *st = store_stmt(s, get_sql);
	if (!st) {
		rc = -EIO;
		goto out;
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		int64_t held = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		if (held >= version) {
			rc = STORE_PUT_IGNORED;
			goto out;
		}
		result = STORE_PUT_UPDATED;
	} else if (rc == SQLITE_DONE) {
		result = STORE_PUT_NEW;
	} else {
		rc = store_sqlerr(s, rc, "incident");
		goto out;
	}
	sqlite3_reset(st);

	plain = malloc(STORE_SIG_BYTES + payload_len);
	if (!plain) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(plain, sig, STORE_SIG_BYTES);
	memcpy(plain + STORE_SIG_BYTES, payload, payload_len);
	char row[STORE_ID_MAX + 24];
	incident_row(row, sizeof(row), id, version);
	rc = store_seal(s, "incidents", row, "doc", plain, STORE_SIG_BYTES + payload_len, &sealed,
	                &slen);
	if (rc < 0)
		goto out;
	rc = store_exec(s, result == STORE_PUT_NEW ? ins_sql : upd_sql, "incident", "tiiib", id,
	                version, (int64_t)state, now_ms, sealed, slen);
	if (rc == 0)
		rc = result;
out:
	store_free_secret(plain, STORE_SIG_BYTES + payload_len);
	free(sealed);
	return store_tx_end(s, owned, rc);
}

void store_incident_clear(struct store_incident *inc)
{
	if (!inc)
		return;
	store_free_secret(inc->payload, inc->payload_len + 1);
	sodium_memzero(inc, sizeof(*inc));
}

/* Fills inc from a row (id, version, dispatch_state, local_status, ended_at,
 * doc). -EBADMSG when the document does not authenticate. */
static int incident_from_row(struct store *s, sqlite3_stmt *st, struct store_incident *inc)
{
	memset(inc, 0, sizeof(*inc));
	const char *id = (const char *)sqlite3_column_text(st, 0);
	if (!id || !id_ok(id))
		return -EBADMSG;
	snprintf(inc->id, sizeof(inc->id), "%s", id);
	inc->version = sqlite3_column_int64(st, 1);
	int ds = sqlite3_column_int(st, 2), ls = sqlite3_column_int(st, 3);
	if (ds < 0 || ds > STORE_DISPATCH_CLOSED || ls < 0 || ls >= STORE_STATUS_COUNT)
		return -EBADMSG;
	inc->dispatch_state = (enum store_dispatch_state)ds;
	inc->local_status = (enum store_local_status)ls;
	inc->ended_ms = sqlite3_column_int64(st, 4);
	char row[STORE_ID_MAX + 24];
	incident_row(row, sizeof(row), inc->id, inc->version);
	unsigned char *pt;
	size_t plen;
	int rc = store_open_sealed(s, "incidents", row, "doc", sqlite3_column_blob(st, 5),
	                           (size_t)sqlite3_column_bytes(st, 5), &pt, &plen);
	if (rc < 0)
		return rc;
	if (plen < STORE_SIG_BYTES) {
		store_free_secret(pt, plen);
		return -EBADMSG;
	}
	memcpy(inc->sig, pt, STORE_SIG_BYTES);
	inc->payload_len = plen - STORE_SIG_BYTES;
	memmove(pt, pt + STORE_SIG_BYTES, inc->payload_len);
	pt[inc->payload_len] = 0;
	inc->payload = pt;
	return 0;
}

int store_incident_get(struct store *s, const char *id, struct store_incident *out)
{
	static const char sql[] = "SELECT id, version, dispatch_state, local_status, ended_at, doc "
	                          "FROM incidents WHERE id = ?";
	memset(out, 0, sizeof(*out));
	if (!id_ok(id))
		return -EINVAL;
	sqlite3_stmt *st = store_stmt(s, sql);
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return store_sqlerr(s, rc, "incident");
	rc = incident_from_row(s, st, out);
	if (rc == -EBADMSG) {
		struct store_bad bad = {0};
		store_bad_add(&bad, st, 0, 5);
		sqlite3_reset(st);
		store_bad_flush(s, &bad, "incidents", "id");
		memset(out, 0, sizeof(*out));
		return -EBADMSG;
	}
	sqlite3_reset(st);
	return rc;
}

int store_incident_each(struct store *s, store_incident_fn cb, void *arg)
{
	/* Active incidents first, then ended ones, most recent first: two
	 * statements that each follow an index (schema 3), so no row is sorted
	 * in memory and a walk that stops early reads only what it needs. */
	static const char *const sql[] = {
	    "SELECT id, version, dispatch_state, local_status, ended_at, doc "
	    "FROM incidents WHERE ended_at IS NULL ORDER BY id",
	    "SELECT id, version, dispatch_state, local_status, ended_at, doc "
	    "FROM incidents WHERE ended_at IS NOT NULL ORDER BY ended_at DESC, id"};
	int ret = 0;
	struct store_bad bad = {0};
	for (size_t q = 0; q < sizeof(sql) / sizeof(sql[0]) && ret == 0; q++) {
		sqlite3_stmt *st;
		int rc = sqlite3_prepare_v2(s->db, sql[q], -1, &st, NULL);
		if (rc != SQLITE_OK) {
			ret = store_sqlerr(s, rc, "incidents");
			break;
		}
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			struct store_incident inc;
			int r = incident_from_row(s, st, &inc);
			if (r == -EBADMSG) {
				store_bad_add(&bad, st, 0, 5);
				store_incident_clear(&inc);
				continue;
			}
			if (r < 0) {
				ret = r;
				break;
			}
			ret = cb(arg, &inc);
			store_incident_clear(&inc);
			if (ret)
				break;
		}
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			ret = store_sqlerr(s, rc, "incidents");
		sqlite3_finalize(st);
	}
	if (store_bad_flush(s, &bad, "incidents", "id") && ret == 0)
		ret = -EBADMSG;
	return ret;
}

int store_incident_set_status(struct store *s, const char *id, enum store_local_status status,
                              int64_t now_ms)
{
	static const char sql[] =
	    "UPDATE incidents SET local_status = ?2, "
	    "ended_at = CASE WHEN ?2 >= 4 THEN coalesce(ended_at, ?3) ELSE ended_at END "
	    "WHERE id = ?1";
	if (!id_ok(id) || (unsigned)status >= STORE_STATUS_COUNT)
		return -EINVAL;
	int rc = store_exec(s, sql, "incident status", "tii", id, (int64_t)status, now_ms);
	if (rc == 0 && sqlite3_changes(s->db) == 0)
		rc = -ENOENT;
	return rc;
}

int store_purge(struct store *s, int64_t now_ms, int64_t retention_ms, int64_t audit_retention_ms)
{
	static const char del_inc[] = "DELETE FROM incidents WHERE ended_at IS NOT NULL "
	                              "AND ended_at < ?";
	static const char del_rej[] = "DELETE FROM rejected WHERE rejected_at < ?";
	static const char del_audit[] = "DELETE FROM audit WHERE at < ?";
	int owned, rc, purged = 0;
	if (s->in_tx)
		return -EBUSY; /* the WAL truncation below needs no open transaction */
	if ((rc = store_tx_start(s, &owned)) < 0)
		return rc;
	const char *sqls[3] = {del_inc, del_rej, del_audit};
	int64_t cut[3] = {now_ms - retention_ms, now_ms - retention_ms,
	                  now_ms - audit_retention_ms};
	for (int i = 0; i < 3 && rc == 0; i++) {
		rc = store_exec(s, sqls[i], "purge", "i", cut[i]);
		if (i == 0)
			purged = sqlite3_changes(s->db);
	}
	rc = store_tx_end(s, owned, rc);
	if (rc < 0)
		return rc;
	if (purged > 0) {
		char detail[32];
		snprintf(detail, sizeof(detail), "%d incidents", purged);
		store_audit_add(s, STORE_AUDIT_PURGED, "", detail, now_ms);
	}
	/* secure_delete zeroed the pages in the database, but older copies of
	 * them may still sit in the WAL: copy back and truncate it. */
	rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	if (rc != SQLITE_OK && rc != SQLITE_BUSY)
		return store_sqlerr(s, rc, "checkpoint");
	return purged;
}
