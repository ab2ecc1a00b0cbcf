/* The outbox: every responder action, in device-wide seq order, until the
 * server has given a result for it; and the list of rejected events. */
#include "agent/store_int.h"
#include "agent/log.h"

#include "agent/fmt.h"
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char hexdigits[] = "0123456789abcdef";

/* The row key binds body to seq, event id and type: none of the plaintext
 * columns can be changed without the body failing to open. Formatted by
 * hand: it is built on every append and every read. */
static void event_row(char *buf, int64_t seq, const unsigned char id[16], int type)
{
	char *p = fmt_i64(buf, seq);
	*p++ = '/';
	for (int i = 0; i < 16; i++) {
		*p++ = hexdigits[id[i] >> 4];
		*p++ = hexdigits[id[i] & 15];
	}
	*p++ = '/';
	p = fmt_i64(p, type);
	*p = 0;
}

static void uuid_text(const unsigned char id[16], char out[STORE_EVENT_ID_LEN + 1])
{
	int o = 0;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hexdigits[id[i] >> 4];
		out[o++] = hexdigits[id[i] & 15];
	}
	out[o] = 0;
}

int store_outbox_append(struct store *s, enum store_event_type type, const void *body, size_t len,
                        int64_t *seq_out, char event_id[STORE_EVENT_ID_LEN + 1])
{
	static const char sql[] = "INSERT INTO outbox(seq, event_id, type, body) VALUES(?,?,?,?)";
	if ((unsigned)type > STORE_EVENT_COMMAND_RESULT || len > STORE_DOC_MAX)
		return -EINVAL;
	unsigned char id[16];
	seal_random(s->seal, id, sizeof(id));
	id[6] = (id[6] & 0x0f) | 0x40; /* UUID version 4 */
	id[8] = (id[8] & 0x3f) | 0x80; /* RFC 4122 variant */
	int64_t seq = store_next_id(s, SEQ_OUTBOX);
	char row[96];
	event_row(row, seq, id, (int)type);
	/* Most events are a few hundred bytes: seal them on the stack. */
	unsigned char stack[2048], *sealed = stack;
	size_t slen = len + SEAL_OVERHEAD;
	if (slen > sizeof(stack) && !(sealed = malloc(slen)))
		return -ENOMEM;
	int rc = store_seal_into(s, "outbox", row, "body", body, len, sealed);
	if (rc == 0)
		rc = store_exec(s, sql, "outbox append", "ibib", seq, id, sizeof(id), (int64_t)type,
		                sealed, slen);
	if (sealed != stack)
		free(sealed);
	if (rc < 0)
		return rc;
	if (seq_out)
		*seq_out = seq;
	if (event_id)
		uuid_text(id, event_id);
	return 0;
}

void store_event_clear(struct store_event *ev)
{
	if (!ev)
		return;
	store_free_secret(ev->body, ev->body_len + 1);
	sodium_memzero(ev, sizeof(*ev));
}

/* Reads (seq, event_id, type, body) from a row of table. */
static int event_from_row(struct store *s, const char *table, sqlite3_stmt *st,
                          struct store_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->seq = sqlite3_column_int64(st, 0);
	int type = sqlite3_column_int(st, 2);
	if (sqlite3_column_bytes(st, 1) != 16 || type < 0 || type > STORE_EVENT_COMMAND_RESULT)
		return -EBADMSG;
	const unsigned char *id = sqlite3_column_blob(st, 1);
	ev->type = (enum store_event_type)type;
	char row[96];
	event_row(row, ev->seq, id, type);
	int rc = store_open_sealed(s, table, row, "body", sqlite3_column_blob(st, 3),
	                           (size_t)sqlite3_column_bytes(st, 3), &ev->body, &ev->body_len);
	if (rc == 0)
		uuid_text(id, ev->event_id);
	return rc;
}

/* Passes up to max events from the statement to cb; counts in *given. */
static int walk_events(struct store *s, sqlite3_stmt *st, size_t max, store_event_fn cb, void *arg,
                       size_t *given, struct store_bad *bad)
{
	int rc = SQLITE_DONE;
	sqlite3_bind_int64(st, 1, (int64_t)max);
	while (*given < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_event ev;
		int r = event_from_row(s, "outbox", st, &ev);
		if (r == -EBADMSG) {
			store_bad_add(bad, st, 0, 3);
			continue;
		}
		if (r < 0) {
			sqlite3_reset(st);
			return r;
		}
		r = cb(arg, &ev);
		store_event_clear(&ev);
		(*given)++;
		if (r) {
			sqlite3_reset(st);
			return r < 0 ? r : 0;
		}
	}
	if (*given < max && rc != SQLITE_DONE)
		rc = store_sqlerr(s, rc, "outbox");
	else
		rc = 0;
	sqlite3_reset(st);
	return rc;
}

int store_outbox_peek(struct store *s, size_t max, store_event_fn cb, void *arg)
{
	return store_outbox_peek_after(s, 0, max, cb, arg);
}

int store_outbox_peek_after(struct store *s, int64_t after_seq, size_t max, store_event_fn cb,
                            void *arg)
{
	static const char sos_sql[] = "SELECT seq, event_id, type, body FROM outbox "
	                              "WHERE type = 3 ORDER BY seq LIMIT ?1";
	static const char rest_sql[] = "SELECT seq, event_id, type, body FROM outbox "
	                               "WHERE type != 3 AND seq > ?2 ORDER BY seq LIMIT ?1";
	size_t given = 0;
	struct store_bad bad = {0};
	sqlite3_stmt *st = store_stmt(s, sos_sql);
	if (!st)
		return -EIO;
	int rc = walk_events(s, st, max, cb, arg, &given, &bad);
	if (rc == 0 && given < max) {
		st = store_stmt(s, rest_sql);
		if (st)
			sqlite3_bind_int64(st, 2, after_seq);
		rc = st ? walk_events(s, st, max, cb, arg, &given, &bad) : -EIO;
	}
	store_bad_flush(s, &bad, "outbox", "seq");
	return rc < 0 ? rc : (int)given;
}

static int cmp_seq(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* A drained batch is almost always a run of consecutive seqs: each run goes
 * in one range DELETE (one statement, one walk of the b-tree) instead of a
 * statement per event. Only the seqs given are deleted: a run holds no
 * other integer. */
int store_outbox_delivered(struct store *s, const int64_t *seqs, size_t n)
{
	static const char sql[] = "DELETE FROM outbox WHERE seq BETWEEN ? AND ?";
	int64_t stack[512], *v = stack;
	int owned, rc;
	if (n == 0)
		return 0;
	if (n > sizeof(stack) / sizeof(stack[0]) && !(v = malloc(n * sizeof(*v))))
		return -ENOMEM;
	memcpy(v, seqs, n * sizeof(*v));
	qsort(v, n, sizeof(*v), cmp_seq);
	if ((rc = store_tx_start(s, &owned)) == 0) {
		for (size_t i = 0; i < n && rc == 0;) {
			size_t j = i;
			while (j + 1 < n && (v[j + 1] == v[j] || v[j + 1] == v[j] + 1))
				j++;
			rc = store_exec(s, sql, "outbox delete", "ii", v[i], v[j]);
			i = j + 1;
		}
		rc = store_tx_end(s, owned, rc);
	}
	if (v != stack)
		free(v);
	return rc;
}

int store_outbox_reject(struct store *s, int64_t seq, const char *reason, int64_t now_ms)
{
	static const char get_sql[] = "SELECT seq, event_id, type, body FROM outbox WHERE seq = ?";
	static const char ins_sql[] =
	    "INSERT INTO rejected(seq, event_id, type, rejected_at, body, "
	    "reason) VALUES(?,?,?,?,?,?)";
	static const char del_sql[] = "DELETE FROM outbox WHERE seq = ?";
	struct store_event ev = {0};
	unsigned char id[16], *sbody = NULL, *sreason = NULL;
	size_t blen, rlen;
	char row[96];
	int owned, rc;
	size_t reason_len = reason ? strnlen(reason, 4096) : 0;

	if ((rc = store_tx_start(s, &owned)) < 0)
		return rc;
	sqlite3_stmt *st = store_stmt(s, get_sql);
	if (!st) {
		rc = -EIO;
		goto out;
	}
	sqlite3_bind_int64(st, 1, seq);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		rc = rc == SQLITE_DONE ? -ENOENT : store_sqlerr(s, rc, "reject");
		sqlite3_reset(st);
		goto out;
	}
	rc = event_from_row(s, "outbox", st, &ev);
	if (rc == 0)
		memcpy(id, sqlite3_column_blob(st, 1), 16);
	sqlite3_reset(st);
	if (rc < 0)
		goto out;
	/* Re-sealed for its new table: a rejected body cannot be put back in
	 * the outbox and sent again. */
	event_row(row, seq, id, (int)ev.type);
	rc = store_seal(s, "rejected", row, "body", ev.body, ev.body_len, &sbody, &blen);
	if (rc == 0)
		rc = store_seal(s, "rejected", row, "reason", reason ? reason : "", reason_len,
		                &sreason, &rlen);
	if (rc < 0)
		goto out;
	rc = store_exec(s, ins_sql, "reject", "ibiibb", seq, id, (size_t)16, (int64_t)ev.type,
	                now_ms, sbody, blen, sreason, rlen);
	if (rc == 0)
		rc = store_exec(s, del_sql, "reject", "i", seq);
out:
	store_event_clear(&ev);
	free(sbody);
	free(sreason);
	return store_tx_end(s, owned, rc);
}

int store_rejected_each(struct store *s, store_rejected_fn cb, void *arg)
{
	static const char sql[] = "SELECT seq, event_id, type, body, rejected_at, reason "
	                          "FROM rejected ORDER BY seq";
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return store_sqlerr(s, rc, "rejected");
	int ret = 0;
	struct store_bad bad = {0};
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_rejected r = {0};
		int e = event_from_row(s, "rejected", st, &r.ev);
		size_t rlen = 0;
		if (e == 0) {
			char row[96];
			event_row(row, r.ev.seq, sqlite3_column_blob(st, 1), (int)r.ev.type);
			e = store_open_sealed(s, "rejected", row, "reason",
			                      sqlite3_column_blob(st, 5),
			                      (size_t)sqlite3_column_bytes(st, 5),
			                      (unsigned char **)&r.reason, &rlen);
		}
		if (e == -EBADMSG) {
			store_event_clear(&r.ev);
			store_bad_add(&bad, st, 0, 3);
			continue;
		}
		if (e < 0) {
			ret = e;
			break;
		}
		r.rejected_ms = sqlite3_column_int64(st, 4);
		ret = cb(arg, &r);
		store_event_clear(&r.ev);
		store_free_secret(r.reason, rlen + 1);
		if (ret)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		ret = store_sqlerr(s, rc, "rejected");
	sqlite3_finalize(st);
	if (store_bad_flush(s, &bad, "rejected", "seq") && ret == 0)
		ret = -EBADMSG;
	return ret;
}
