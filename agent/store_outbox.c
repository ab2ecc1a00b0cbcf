/* The outbox: every responder action, in device-wide seq order, until the
 * server has given a result for it; and the list of rejected events. */
#include "agent/store_int.h"
#include "agent/log.h"

#include "agent/fmt.h"

#include <endian.h>
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

/* A group's plaintext is, per event: type (1), event id (16), body length
 * (4, little endian), body, NUL. The NUL lets a reader hand out the body in
 * place. */
#define GRP_HEAD          21
#define GRP_EVENT(len)    (GRP_HEAD + (len) + 1)
#define GRP_DONE_BYTES(n) (((size_t)(n) + 7) / 8)
/* The sealed value of a row: its own body, or its group's in outbox_group
 * (NULL if missing: fails to open, quarantined). */
#define BODY_COLUMN                                                                                \
	"CASE WHEN n = 1 THEN body "                                                               \
	"ELSE (SELECT g.body FROM outbox_group g WHERE g.seq = outbox.seq) END"

/* The row key of a group binds the whole seq range and the type column
 * (whether an SOS is inside): a group moved, cut, extended or relabelled
 * fails to open. Event ids and types are inside the sealed value. */
static void group_row(char *buf, int64_t first, int64_t last, int type)
{
	char *p = buf;
	*p++ = 'g';
	p = fmt_i64(p, first);
	*p++ = '-';
	p = fmt_i64(p, last);
	*p++ = '/';
	p = fmt_i64(p, type);
	*p = 0;
}

static void new_event_id(struct store *s, unsigned char id[16])
{
	seal_random(s->seal, id, 16);
	id[6] = (id[6] & 0x0f) | 0x40; /* UUID version 4 */
	id[8] = (id[8] & 0x3f) | 0x80; /* RFC 4122 variant */
}

/* One event in its own row: the shape of every event appended outside a
 * transaction. */
static int insert_single(struct store *s, int64_t seq, const unsigned char id[16], int type,
                         const void *body, size_t len)
{
	static const char sql[] = "INSERT INTO outbox(seq, event_id, type, body) VALUES(?,?,?,?)";
	char row[96];
	event_row(row, seq, id, type);
	/* Most events are a few hundred bytes: seal them on the stack. */
	unsigned char stack[2048], *sealed = stack;
	size_t slen = len + SEAL_OVERHEAD;
	if (slen > sizeof(stack) && !(sealed = malloc(slen)))
		return -ENOMEM;
	int rc = store_seal_into(s, "outbox", row, "body", body, len, sealed);
	if (rc == 0)
		rc = store_exec(s, sql, "outbox append", "ibib", seq, id, (size_t)16, (int64_t)type,
		                sealed, slen);
	if (sealed != stack)
		free(sealed);
	return rc;
}

void store_outbox_drop_pending(struct store *s)
{
	if (s->grp_buf && s->grp_len)
		sodium_memzero(s->grp_buf, s->grp_len);
	s->grp_len = 0;
	s->grp_n = 0;
	s->grp_sos = 0;
}

void store_outbox_close(struct store *s)
{
	store_outbox_cache_drop(s);
	if (s->grp_buf)
		sodium_free(s->grp_buf); /* wipes */
	s->grp_buf = NULL;
	s->grp_len = 0;
	s->grp_n = 0;
}

int store_outbox_seal_pending(struct store *s)
{
	/* The queue row stays small (ids, type, n, done) and the sealed body
	 * goes to outbox_group under the same seq: marking events done then
	 * rewrites a few bytes, not the whole group, and reading n or done
	 * never walks a chain of overflow pages. done starts zeroed, not
	 * NULL, so that updating it keeps the record's size. */
	static const char sql[] =
	    "INSERT INTO outbox(seq, event_id, type, body, n, done) VALUES(?,X'',?,X'',?,?)";
	static const char body_sql[] = "INSERT INTO outbox_group(seq, body) VALUES(?,?)";
	static const unsigned char none[GRP_DONE_BYTES(OUTBOX_GROUP_MAX)];
	if (s->grp_n == 0)
		return 0;
	int rc;
	const unsigned char *b = s->grp_buf;
	if (s->grp_n == 1) {
		uint32_t len;
		memcpy(&len, b + 17, 4);
		len = le32toh(len);
		rc = insert_single(s, s->grp_first, b + 1, b[0], b + GRP_HEAD, len);
	} else {
		int64_t last = s->grp_first + s->grp_n - 1;
		int type = s->grp_sos ? STORE_EVENT_SOS : OUTBOX_GROUP_TYPE;
		char row[96];
		group_row(row, s->grp_first, last, type);
		size_t slen = s->grp_len + SEAL_OVERHEAD;
		unsigned char *sealed = malloc(slen);
		if (!sealed)
			rc = -ENOMEM;
		else if ((rc = store_seal_into(s, "outbox", row, "body", b, s->grp_len, sealed)) ==
		             0 &&
		         (rc = store_exec(s, sql, "outbox append", "iiib", last, (int64_t)type,
		                          (int64_t)s->grp_n, none, GRP_DONE_BYTES(s->grp_n))) == 0)
			rc = store_exec(s, body_sql, "outbox append", "ib", last, sealed, slen);
		free(sealed);
	}
	store_outbox_drop_pending(s);
	if (rc < 0 && s->in_tx && !s->grp_err)
		s->grp_err = rc;
	return rc;
}

int store_outbox_append(struct store *s, enum store_event_type type, const void *body, size_t len,
                        int64_t *seq_out, char event_id[STORE_EVENT_ID_LEN + 1])
{
	if ((unsigned)type > STORE_EVENT_COMMAND_RESULT || len > STORE_DOC_MAX)
		return -EINVAL;
	unsigned char id[16];
	int64_t seq;
	int rc = 0;
	if (s->in_tx && s->grp_err)
		return s->grp_err;
	if (s->in_tx && GRP_EVENT(len) <= OUTBOX_GROUP_BYTES) {
		/* Inside a transaction nothing is durable before the commit:
		 * gather the event, seal the group once. */
		if (!s->grp_buf && !(s->grp_buf = sodium_malloc(OUTBOX_GROUP_BYTES)))
			return -ENOMEM;
		if ((s->grp_n == OUTBOX_GROUP_MAX ||
		     s->grp_len + GRP_EVENT(len) > OUTBOX_GROUP_BYTES) &&
		    (rc = store_outbox_seal_pending(s)) < 0)
			return rc;
		new_event_id(s, id);
		seq = store_next_id(s, SEQ_OUTBOX);
		if (s->grp_n == 0)
			s->grp_first = seq;
		unsigned char *p = s->grp_buf + s->grp_len;
		uint32_t le = htole32((uint32_t)len);
		p[0] = (unsigned char)type;
		memcpy(p + 1, id, 16);
		memcpy(p + 17, &le, 4);
		memcpy(p + GRP_HEAD, body, len);
		p[GRP_HEAD + len] = 0;
		s->grp_len += GRP_EVENT(len);
		s->grp_n++;
		s->grp_sos |= type == STORE_EVENT_SOS;
	} else {
		/* A lone event, or one too large to share a group. */
		if (s->in_tx && (rc = store_outbox_seal_pending(s)) < 0)
			return rc;
		new_event_id(s, id);
		seq = store_next_id(s, SEQ_OUTBOX);
		if ((rc = insert_single(s, seq, id, (int)type, body, len)) < 0)
			return rc;
	}
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

/* An opened group row. Columns of the statement: seq, event_id, type, body,
 * n, done. */
struct outbox_group {
	int64_t first;
	int n;
	int type;             /* the row's type column */
	size_t slen;          /* the sealed value's length */
	unsigned char *plain; /* owned, wiped by group_clear */
	size_t plen;
	size_t off[OUTBOX_GROUP_MAX]; /* where each event starts in plain */
	unsigned char done[GRP_DONE_BYTES(OUTBOX_GROUP_MAX)];
};

static void group_clear(struct outbox_group *g)
{
	store_free_secret(g->plain, g->plen + 1);
	g->plain = NULL;
}

void store_outbox_cache_drop(struct store *s)
{
	if (!s->grp_cache)
		return;
	group_clear(s->grp_cache);
	sodium_memzero(s->grp_cache, sizeof(*s->grp_cache));
	free(s->grp_cache);
	s->grp_cache = NULL;
}

static int group_done(const struct outbox_group *g, int i)
{
	return g->done[i >> 3] >> (i & 7) & 1;
}

/* The done bitmap is not sealed: setting a bit does what deleting the row
 * could do anyway, clearing one sends an event again, which its event id
 * makes a duplicate at the server. A bitmap of the wrong size counts as
 * none done (send again, never lose). */
static void done_from_row(sqlite3_stmt *st, int col, int n, unsigned char *done)
{
	memset(done, 0, GRP_DONE_BYTES(OUTBOX_GROUP_MAX));
	if (sqlite3_column_type(st, col) == SQLITE_BLOB &&
	    (size_t)sqlite3_column_bytes(st, col) == GRP_DONE_BYTES(n))
		memcpy(done, sqlite3_column_blob(st, col), GRP_DONE_BYTES(n));
}

/* Opens the group in the current row and checks its layout. -EBADMSG when it
 * does not authenticate or does not hold what its columns say. */
static int group_open(struct store *s, sqlite3_stmt *st, struct outbox_group *g)
{
	memset(g, 0, sizeof(*g));
	int64_t last = sqlite3_column_int64(st, 0);
	int n = sqlite3_column_int(st, 4), type = sqlite3_column_int(st, 2);
	if (n < 2 || n > OUTBOX_GROUP_MAX || last < n || sqlite3_column_bytes(st, 1) != 0 ||
	    (type != STORE_EVENT_SOS && type != OUTBOX_GROUP_TYPE))
		return -EBADMSG;
	g->n = n;
	g->first = last - n + 1;
	g->type = type;
	char row[96];
	group_row(row, g->first, last, type);
	int rc = store_open_sealed(s, "outbox", row, "body", sqlite3_column_blob(st, 3),
	                           (size_t)sqlite3_column_bytes(st, 3), &g->plain, &g->plen);
	if (rc < 0)
		return rc;
	/* Authenticated, so only a bug could make these fail; checked anyway
	 * because the parse below must never read out of bounds. */
	size_t off = 0;
	int sos = 0;
	for (int i = 0; i < n; i++) {
		uint32_t len;
		if (g->plen - off < GRP_HEAD + 1 || g->plain[off] > STORE_EVENT_COMMAND_RESULT)
			goto bad;
		memcpy(&len, g->plain + off + 17, 4);
		len = le32toh(len);
		if (len > g->plen - off - GRP_HEAD - 1 || g->plain[off + GRP_HEAD + len] != 0)
			goto bad;
		sos |= g->plain[off] == STORE_EVENT_SOS;
		g->off[i] = off;
		off += GRP_EVENT(len);
	}
	if (off != g->plen || sos != (type == STORE_EVENT_SOS))
		goto bad;
	done_from_row(st, 5, n, g->done);
	return 0;
bad:
	group_clear(g);
	return -EBADMSG;
}

/* A quarantined group leaves its sealed body (copied to quarantine) in
 * outbox_group: removed here. */
static void drop_orphan_bodies(struct store *s)
{
	static const char sql[] =
	    "DELETE FROM outbox_group WHERE seq NOT IN (SELECT seq FROM outbox)";
	store_exec(s, sql, "outbox quarantine", "");
}

/* Opens the group row keyed last. -ENOENT if there is none; a row that
 * does not authenticate is quarantined here. */
static int group_load(struct store *s, int64_t last, struct outbox_group *g)
{
	static const char sql[] = "SELECT seq, event_id, type, " BODY_COLUMN ", n, done "
	                          "FROM outbox WHERE seq = ?";
	struct store_bad bad = {0};
	sqlite3_stmt *st = store_stmt(s, sql);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, last);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		return rc == SQLITE_DONE ? -ENOENT : store_sqlerr(s, rc, "reject");
	}
	rc = group_open(s, st, g);
	if (rc == -EBADMSG)
		store_bad_add(&bad, st, 0, 3);
	sqlite3_reset(st);
	if (store_bad_flush(s, &bad, "outbox", "seq"))
		drop_orphan_bodies(s);
	return rc;
}

/* Event i of an opened group; its body stays inside g (not owned). */
static void group_event(const struct outbox_group *g, int i, struct store_event *ev)
{
	const unsigned char *p = g->plain + g->off[i];
	uint32_t len;
	memcpy(&len, p + 17, 4);
	memset(ev, 0, sizeof(*ev));
	ev->seq = g->first + i;
	ev->type = (enum store_event_type)p[0];
	uuid_text(p + 1, ev->event_id);
	ev->body = (unsigned char *)(uintptr_t)(p + GRP_HEAD);
	ev->body_len = le32toh(len);
}

/* Passes the events of a group that are not done and belong to this pass
 * (SOS or the rest) to cb. Returns cb's non-zero answer, else 0. */
static int walk_group(const struct outbox_group *g, int sos_pass, int64_t after_seq, size_t max,
                      store_event_fn cb, void *arg, size_t *given)
{
	for (int i = 0; i < g->n && *given < max; i++) {
		if (group_done(g, i))
			continue;
		struct store_event ev;
		group_event(g, i, &ev);
		if ((ev.type == STORE_EVENT_SOS) != sos_pass || (!sos_pass && ev.seq <= after_seq))
			continue;
		int r = cb(arg, &ev);
		sodium_memzero(&ev, sizeof(ev));
		(*given)++;
		if (r)
			return r;
	}
	return 0;
}

/* Passes up to max events from the statement to cb; counts in *given. */
static int walk_events(struct store *s, sqlite3_stmt *st, int sos_pass, int64_t after_seq,
                       size_t max, store_event_fn cb, void *arg, size_t *given,
                       struct store_bad *bad)
{
	int rc = SQLITE_DONE;
	while (*given < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		int r;
		if (sqlite3_column_int64(st, 4) != 1) {
			struct outbox_group g;
			r = group_open(s, st, &g);
			if (r == 0) {
				r = walk_group(&g, sos_pass, after_seq, max, cb, arg, given);
				group_clear(&g);
				if (r) {
					sqlite3_reset(st);
					return r < 0 ? r : 0;
				}
				continue;
			}
		} else {
			struct store_event ev;
			r = event_from_row(s, "outbox", st, &ev);
			if (r == 0) {
				r = cb(arg, &ev);
				store_event_clear(&ev);
				(*given)++;
				if (r) {
					sqlite3_reset(st);
					return r < 0 ? r : 0;
				}
				continue;
			}
		}
		if (r == -EBADMSG) {
			store_bad_add(bad, st, 0, 3);
			continue;
		}
		sqlite3_reset(st);
		return r;
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
	/* SOS rows are single SOS events and groups with one inside; the
	 * second pass takes every other row and every group, skipping the SOS
	 * events the first pass gave and events at or below after_seq (a
	 * group's row seq is its last event's, so a group that straddles
	 * after_seq is still read). No LIMIT: a group may have fewer events
	 * left than rows count (or none for this pass); rows come in seq order
	 * without a sort, so the walk stops reading where it stops. */
	static const char sos_sql[] = "SELECT seq, event_id, type, " BODY_COLUMN ", n, done "
	                              "FROM outbox WHERE type = 3 ORDER BY seq";
	static const char rest_sql[] = "SELECT seq, event_id, type, " BODY_COLUMN ", n, done "
	                               "FROM outbox WHERE (type != 3 OR n != 1) AND seq > ?1 "
	                               "ORDER BY seq";
	size_t given = 0;
	struct store_bad bad = {0};
	int rc = store_outbox_seal_pending(s);
	if (rc < 0)
		return rc;
	sqlite3_stmt *st = store_stmt(s, sos_sql);
	if (!st)
		return -EIO;
	rc = walk_events(s, st, 1, 0, max, cb, arg, &given, &bad);
	if (rc == 0 && given < max) {
		st = store_stmt(s, rest_sql);
		if (st)
			sqlite3_bind_int64(st, 1, after_seq);
		rc = st ? walk_events(s, st, 0, after_seq, max, cb, arg, &given, &bad) : -EIO;
	}
	if (store_bad_flush(s, &bad, "outbox", "seq"))
		drop_orphan_bodies(s);
	return rc < 0 ? rc : (int)given;
}

static int cmp_seq(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Stores a group's done bitmap, or deletes the group once every event in it
 * is done. */
static int group_store_done(struct store *s, int64_t last, int n, const unsigned char *done)
{
	static const char upd_sql[] = "UPDATE outbox SET done = ? WHERE seq = ?";
	static const char del_sql[] = "DELETE FROM outbox WHERE seq = ?";
	static const char del_body_sql[] = "DELETE FROM outbox_group WHERE seq = ?";
	int all = 1, rc;
	for (int i = 0; i < n && all; i++)
		all = done[i >> 3] >> (i & 7) & 1;
	if (all) {
		rc = store_exec(s, del_sql, "outbox delete", "i", last);
		return rc ? rc : store_exec(s, del_body_sql, "outbox delete", "i", last);
	}
	return store_exec(s, upd_sql, "outbox delete", "bi", done, GRP_DONE_BYTES(n), last);
}

/* Marks seqs a..b done in every group that overlaps them. Groups hold at
 * most OUTBOX_GROUP_MAX events, so only rows keyed below b + that can. */
static int groups_done(struct store *s, int64_t a, int64_t b)
{
	/* outbox_group's keys are the index of groups (only group rows have
	 * one); CROSS JOIN keeps it the outer loop. */
	static const char sql[] = "SELECT o.seq, o.n, o.done FROM outbox_group g CROSS JOIN "
	                          "outbox o ON o.seq = g.seq WHERE g.seq >= ? AND g.seq < ? "
	                          "ORDER BY g.seq LIMIT 1";
	unsigned char done[GRP_DONE_BYTES(OUTBOX_GROUP_MAX)];
	for (int64_t cur = a;;) {
		sqlite3_stmt *st = store_stmt(s, sql);
		if (!st)
			return -EIO;
		sqlite3_bind_int64(st, 1, cur);
		sqlite3_bind_int64(st, 2, b + OUTBOX_GROUP_MAX);
		int rc = sqlite3_step(st);
		if (rc != SQLITE_ROW) {
			sqlite3_reset(st);
			return rc == SQLITE_DONE ? 0 : store_sqlerr(s, rc, "outbox delete");
		}
		int64_t last = sqlite3_column_int64(st, 0);
		int n = sqlite3_column_int(st, 1);
		int damaged = n < 2 || n > OUTBOX_GROUP_MAX;
		if (damaged || last - n + 1 > b) {
			/* Starts after b (so every later one does), or damaged:
			 * peek quarantines it. */
			sqlite3_reset(st);
			if (!damaged)
				return 0;
			cur = last + 1;
			continue;
		}
		done_from_row(st, 2, n, done);
		sqlite3_reset(st);
		int64_t first = last - n + 1;
		int64_t lo = a > first ? a : first, hi = b < last ? b : last;
		for (int64_t q = lo; q <= hi; q++)
			done[(q - first) >> 3] |= (unsigned char)(1u << ((q - first) & 7));
		if ((rc = group_store_done(s, last, n, done)) < 0)
			return rc;
		if (last >= b)
			return 0;
		cur = last + 1;
	}
}

/* A drained batch is almost always a run of consecutive seqs: each run goes
 * in one range DELETE of single rows (one statement, one walk of the
 * b-tree) instead of a statement per event, then marks the groups it
 * overlaps. Only the seqs given are touched: a run holds no other integer. */
int store_outbox_delivered(struct store *s, const int64_t *seqs, size_t n)
{
	static const char sql[] = "DELETE FROM outbox WHERE seq BETWEEN ? AND ? AND n = 1";
	int64_t stack[512], *v = stack;
	int owned, rc;
	if (n == 0)
		return 0;
	if ((rc = store_outbox_seal_pending(s)) < 0)
		return rc;
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
			if (rc == 0)
				rc = groups_done(s, v[i], v[j]);
			i = j + 1;
		}
		rc = store_tx_end(s, owned, rc);
	}
	if (v != stack)
		free(v);
	return rc;
}

/* Moves one event to the rejected list, re-sealed for that table: a
 * rejected body cannot be put back in the outbox and sent again. */
static int reject_one(struct store *s, int64_t seq, const unsigned char id[16], int type,
                      const void *body, size_t body_len, const char *reason, int64_t now_ms)
{
	static const char ins_sql[] =
	    "INSERT INTO rejected(seq, event_id, type, rejected_at, body, "
	    "reason) VALUES(?,?,?,?,?,?)";
	unsigned char *sbody = NULL, *sreason = NULL;
	size_t blen, rlen;
	size_t reason_len = reason ? strnlen(reason, 4096) : 0;
	char row[96];
	event_row(row, seq, id, type);
	int rc = store_seal(s, "rejected", row, "body", body, body_len, &sbody, &blen);
	if (rc == 0)
		rc = store_seal(s, "rejected", row, "reason", reason ? reason : "", reason_len,
		                &sreason, &rlen);
	if (rc == 0)
		rc = store_exec(s, ins_sql, "reject", "ibiibb", seq, id, (size_t)16, (int64_t)type,
		                now_ms, sbody, blen, sreason, rlen);
	free(sbody);
	free(sreason);
	return rc;
}

int store_outbox_reject(struct store *s, int64_t seq, const char *reason, int64_t now_ms)
{
	/* The row holding seq: its own, or the group whose range covers it. */
	static const char get_sql[] = "SELECT seq, event_id, type, body, n, done FROM outbox "
	                              "WHERE seq >= ? ORDER BY seq LIMIT 1";
	static const char del_sql[] = "DELETE FROM outbox WHERE seq = ?";
	int owned, rc;

	if ((rc = store_outbox_seal_pending(s)) < 0)
		return rc;
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
	int64_t key = sqlite3_column_int64(st, 0);
	if (sqlite3_column_int64(st, 4) == 1) {
		struct store_event ev = {0};
		unsigned char id[16];
		if (key != seq) {
			rc = -ENOENT;
			sqlite3_reset(st);
			goto out;
		}
		rc = event_from_row(s, "outbox", st, &ev);
		if (rc == 0)
			memcpy(id, sqlite3_column_blob(st, 1), 16);
		sqlite3_reset(st);
		if (rc == 0)
			rc = reject_one(s, seq, id, (int)ev.type, ev.body, ev.body_len, reason,
			                now_ms);
		if (rc == 0)
			rc = store_exec(s, del_sql, "reject", "i", seq);
		store_event_clear(&ev);
	} else {
		int64_t n = sqlite3_column_int64(st, 4);
		if (n < 2 || n > OUTBOX_GROUP_MAX || key - n + 1 > seq) {
			/* Not in any group (or a damaged row, left to peek). */
			rc = -ENOENT;
			sqlite3_reset(st);
			goto out;
		}
		struct outbox_group *g = s->grp_cache;
		if (g && g->first + g->n - 1 == key && g->n == n &&
		    g->type == sqlite3_column_int(st, 2)) {
			/* Opened by an earlier rejection in this transaction: a
			 * group's sealed value never changes (seqs are never
			 * reused), only its done bitmap, read afresh. */
			done_from_row(st, 5, g->n, g->done);
			sqlite3_reset(st);
		} else {
			sqlite3_reset(st);
			store_outbox_cache_drop(s);
			if (!(g = malloc(sizeof(*g)))) {
				rc = -ENOMEM;
				goto out;
			}
			if ((rc = group_load(s, key, g)) < 0) {
				free(g);
				goto out;
			}
			s->grp_cache = g;
		}
		int i = (int)(seq - g->first);
		if (group_done(g, i)) {
			rc = -ENOENT;
		} else {
			struct store_event ev;
			group_event(g, i, &ev);
			rc = reject_one(s, seq, g->plain + g->off[i] + 1, (int)ev.type, ev.body,
			                ev.body_len, reason, now_ms);
			g->done[i >> 3] |= (unsigned char)(1u << (i & 7));
			if (rc == 0)
				rc = group_store_done(s, key, g->n, g->done);
		}
	}
out:
	if (!s->in_tx)
		store_outbox_cache_drop(s); /* only a transaction of the caller keeps it */
	return store_tx_end(s, owned, rc);
}

/* Rows, plus for each group the events in it not yet done. */
int store_outbox_count(struct store *s, int64_t *n)
{
	static const char rows_sql[] = "SELECT count(*) FROM outbox";
	static const char groups_sql[] = "SELECT o.n, o.done FROM outbox_group g CROSS JOIN "
	                                 "outbox o ON o.seq = g.seq";
	int rc = store_outbox_seal_pending(s);
	if (rc < 0)
		return rc;
	sqlite3_stmt *st = store_stmt(s, rows_sql);
	if (!st)
		return -EIO;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		sqlite3_reset(st);
		return store_sqlerr(s, rc, "count");
	}
	int64_t total = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (!(st = store_stmt(s, groups_sql)))
		return -EIO;
	unsigned char done[GRP_DONE_BYTES(OUTBOX_GROUP_MAX)];
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int k = sqlite3_column_int(st, 0);
		if (k < 2 || k > OUTBOX_GROUP_MAX)
			continue; /* damaged: counted as one row until peek quarantines it */
		done_from_row(st, 1, k, done);
		int left = k;
		for (int i = 0; i < k; i++)
			left -= done[i >> 3] >> (i & 7) & 1;
		total += left - 1;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return store_sqlerr(s, rc, "count");
	*n = total;
	return 0;
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
