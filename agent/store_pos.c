/* The position trail: fixes gathered in a guarded buffer and sealed in
 * chunks (poscodec), one AEAD and one row per chunk instead of per fix. The
 * open chunk is rewritten in place as it grows, so a flush never leaves a
 * trail of tiny rows behind. */
#include "agent/store_int.h"
#include "agent/log.h"
#include "agent/poscodec.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int store_pos_open(struct store *s)
{
	s->pos_buf = sodium_allocarray(POS_CHUNK_MAX, sizeof(struct store_fix));
	if (!s->pos_buf)
		return -ENOMEM;
	s->pos_n = s->pos_sealed = 0;
	s->pos_chunk_id = 0;
	s->pos_acked = 0;
	return 0;
}

void store_pos_close(struct store *s)
{
	if (s->pos_buf)
		sodium_free(s->pos_buf);
	s->pos_buf = NULL;
}

static void chunk_row(char *buf, size_t cap, int64_t id)
{
	snprintf(buf, cap, "%lld", (long long)id);
}

int store_pos_flush(struct store *s)
{
	static const char sql[] = "INSERT OR REPLACE INTO positions(id, n, chunk) VALUES(?,?,?)";
	if (!s->pos_buf || s->pos_n == s->pos_sealed)
		return 0;
	size_t cap = POSCODEC_BOUND(s->pos_n);
	unsigned char *enc = sodium_malloc(cap);
	if (!enc)
		return -ENOMEM;
	size_t len = poscodec_encode(s->pos_buf, s->pos_n, enc, cap);
	int64_t id = s->pos_chunk_id ? s->pos_chunk_id : store_next_id(s, SEQ_POSITIONS);
	char row[24];
	chunk_row(row, sizeof(row), id);
	unsigned char *sealed = NULL;
	size_t slen;
	int rc = len ? store_seal(s, "positions", row, "chunk", enc, len, &sealed, &slen) : -EIO;
	sodium_free(enc);
	if (rc < 0)
		return rc;
	/* The rows the server acknowledged go in the same commit (one fsync). */
	int owned = 0;
	int64_t acked = s->pos_acked;
	rc = store_tx_start(s, &owned);
	if (rc == 0 && acked)
		rc = store_exec(s, "DELETE FROM positions WHERE id <= ?", "positions", "i", acked);
	if (rc == 0)
		rc = store_exec(s, sql, "positions", "iib", id, (int64_t)s->pos_n, sealed, slen);
	free(sealed);
	rc = store_tx_end(s, owned, rc);
	if (rc < 0)
		return rc;
	if (s->pos_acked == acked)
		s->pos_acked = 0;
	s->pos_chunk_id = id;
	s->pos_sealed = s->pos_n;
	if (s->pos_n == POS_CHUNK_MAX) { /* full: the next fix starts a new chunk */
		s->pos_n = s->pos_sealed = 0;
		s->pos_chunk_id = 0;
	}
	return 0;
}

int store_pos_append(struct store *s, const struct store_fix *fix)
{
	if (poscodec_fix_valid(fix) < 0)
		return -EINVAL;
	if (s->pos_n > 0 && fix->t_ms <= s->pos_buf[s->pos_n - 1].t_ms)
		return -EINVAL;
	if (s->pos_n == POS_CHUNK_MAX) {
		/* A flush failed earlier (disk full): keep the chunk, drop nothing
		 * silently; the caller hears it. */
		int rc = store_pos_flush(s);
		if (rc < 0)
			return rc;
	}
	s->pos_buf[s->pos_n++] = *fix;
	if (s->pos_n == POS_CHUNK_MAX)
		return store_pos_flush(s);
	return 0;
}

/* Seals what is buffered and closes the open chunk, so that the chunks the
 * uploader sees no longer change under it. */
static int pos_close_chunk(struct store *s)
{
	int rc = store_pos_flush(s);
	if (rc < 0)
		return rc;
	s->pos_n = s->pos_sealed = 0;
	s->pos_chunk_id = 0;
	return 0;
}

int store_pos_peek(struct store *s, size_t max, store_fix_fn cb, void *arg, int64_t *token)
{
	static const char sql[] = "SELECT id, n, chunk FROM positions ORDER BY id";
	*token = 0;
	int rc = pos_close_chunk(s);
	if (rc == 0 && s->pos_acked) /* no flush came since the last upload */
		rc = store_pos_consumed(s, s->pos_acked);
	if (rc < 0)
		return rc;
	struct store_fix *fixes = sodium_allocarray(POS_CHUNK_MAX, sizeof(*fixes));
	if (!fixes)
		return -ENOMEM;
	sqlite3_stmt *st = store_stmt(s, sql);
	if (!st) {
		sodium_free(fixes);
		return -EIO;
	}
	size_t total = 0;
	struct store_bad bad = {0};
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		int64_t n = sqlite3_column_int64(st, 1);
		if (total > 0 && total + (size_t)(n > 0 ? n : 0) > max)
			break;
		char row[24];
		chunk_row(row, sizeof(row), id);
		unsigned char *pt;
		size_t plen;
		int r = store_open_sealed(s, "positions", row, "chunk", sqlite3_column_blob(st, 2),
		                          (size_t)sqlite3_column_bytes(st, 2), &pt, &plen);
		long got = -EINVAL;
		if (r == 0) {
			got = poscodec_decode(pt, plen, fixes, POS_CHUNK_MAX);
			store_free_secret(pt, plen + 1);
		}
		if (r == -EBADMSG || got < 0 || got != n) {
			store_bad_add(&bad, st, 0, 2);
			if (r < 0 && r != -EBADMSG)
				break;
			continue;
		}
		*token = id;
		if (got > 0 && (r = cb(arg, fixes, (size_t)got)) != 0) {
			rc = r < 0 ? r : SQLITE_DONE;
			break;
		}
		total += (size_t)got;
		if (total >= max)
			break;
	}
	int ret = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? 0
	          : rc < 0                                ? rc
	                                                  : store_sqlerr(s, rc, "positions");
	sqlite3_reset(st);
	sodium_free(fixes);
	store_bad_flush(s, &bad, "positions", "id");
	return ret < 0 ? ret : (int)total;
}

int store_pos_consumed(struct store *s, int64_t token)
{
	int rc = store_exec(s, "DELETE FROM positions WHERE id <= ?", "positions", "i", token);
	if (rc == 0 && s->pos_acked <= token)
		s->pos_acked = 0;
	return rc;
}

void store_pos_acked(struct store *s, int64_t token)
{
	if (token > s->pos_acked)
		s->pos_acked = token;
}

size_t store_pos_buffered(struct store *s, int64_t *oldest_t, int64_t *newest_t)
{
	*oldest_t = *newest_t = 0;
	if (!s->pos_buf || s->pos_n == 0)
		return 0;
	*oldest_t = s->pos_buf[0].t_ms;
	*newest_t = s->pos_buf[s->pos_n - 1].t_ms;
	return s->pos_n;
}

int store_pos_only_buffered(struct store *s)
{
	sqlite3_stmt *st = store_stmt(s, "SELECT count(*) FROM positions WHERE id > ? AND id != ?");
	if (!st)
		return -EIO;
	int rc = sqlite3_bind_int64(st, 1, s->pos_acked);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, s->pos_chunk_id);
	int only = 0;
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		only = sqlite3_column_int64(st, 0) == 0;
		rc = SQLITE_OK;
	}
	sqlite3_reset(st);
	rc = store_sqlerr(s, rc, "positions");
	return rc < 0 ? rc : only;
}

size_t store_pos_copy_buffered(struct store *s, struct store_fix *out, size_t max)
{
	size_t n = s->pos_buf && s->pos_n < max ? s->pos_n : s->pos_buf ? max : 0;
	if (n)
		memcpy(out, s->pos_buf, n * sizeof(*out));
	return n;
}

void store_pos_drop_buffered(struct store *s, int64_t t_ms)
{
	size_t k = 0;
	if (!s->pos_buf)
		return;
	while (k < s->pos_n && s->pos_buf[k].t_ms <= t_ms)
		k++;
	if (k == 0)
		return;
	memmove(s->pos_buf, s->pos_buf + k, (s->pos_n - k) * sizeof(*s->pos_buf));
	sodium_memzero(s->pos_buf + (s->pos_n - k), k * sizeof(*s->pos_buf));
	s->pos_n -= k;
	if (s->pos_chunk_id && s->pos_n == 0) {
		/* the open chunk's row holds only fixes the server has */
		store_pos_acked(s, s->pos_chunk_id);
		s->pos_chunk_id = 0;
	}
	/* a sealed open chunk is rewritten whole at the next flush */
	s->pos_sealed = 0;
}

int store_pos_count(struct store *s, int64_t *n)
{
	sqlite3_stmt *st = store_stmt(s, "SELECT total(n) FROM positions WHERE id > ?");
	if (!st)
		return -EIO;
	int rc = sqlite3_bind_int64(st, 1, s->pos_acked);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*n = (int64_t)sqlite3_column_double(st, 0) + (int64_t)(s->pos_n - s->pos_sealed);
		rc = SQLITE_OK;
	}
	sqlite3_reset(st);
	return store_sqlerr(s, rc, "positions");
}

/* ---- bounding the trail (store_pos_thin) ---- */

struct pos_chunk_ref {
	int64_t id, n;
};

static int pos_chunk_list(struct store *s, struct pos_chunk_ref **out, size_t *count)
{
	static const char sql[] = "SELECT id, n FROM positions ORDER BY id";
	sqlite3_stmt *st = store_stmt(s, sql);
	struct pos_chunk_ref *v = NULL;
	size_t n = 0, cap = 0;
	int rc;
	*out = NULL;
	*count = 0;
	if (!st)
		return -EIO;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct pos_chunk_ref *nv = realloc(v, ncap * sizeof(*v));
			if (!nv) {
				sqlite3_reset(st);
				free(v);
				return -ENOMEM;
			}
			v = nv;
			cap = ncap;
		}
		v[n].id = sqlite3_column_int64(st, 0);
		v[n].n = sqlite3_column_int64(st, 1);
		n++;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		free(v);
		return store_sqlerr(s, rc, "positions");
	}
	*out = v;
	*count = n;
	return 0;
}

/* Rewrites chunk id keeping every other fix (the first and the last stay,
 * so the trail still starts and ends where it did). *dropped gets how many
 * went. */
static int pos_chunk_halve(struct store *s, int64_t id, int64_t *dropped)
{
	static const char sel[] = "SELECT chunk FROM positions WHERE id = ?";
	static const char upd[] = "UPDATE positions SET n = ?, chunk = ? WHERE id = ?";
	sqlite3_stmt *st = store_stmt(s, sel);
	struct store_fix *fixes = NULL;
	unsigned char *pt = NULL, *enc = NULL, *sealed = NULL;
	size_t plen = 0, slen = 0;
	char row[24];
	int rc;
	*dropped = 0;
	if (!st)
		return -EIO;
	chunk_row(row, sizeof(row), id);
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		return rc == SQLITE_DONE ? -ENOENT : store_sqlerr(s, rc, "positions");
	}
	rc = store_open_sealed(s, "positions", row, "chunk", sqlite3_column_blob(st, 0),
	                       (size_t)sqlite3_column_bytes(st, 0), &pt, &plen);
	sqlite3_reset(st);
	if (rc < 0)
		return rc; /* a damaged chunk is quarantined by the next peek */
	fixes = sodium_allocarray(POS_CHUNK_MAX, sizeof(*fixes));
	if (!fixes) {
		rc = -ENOMEM;
		goto out;
	}
	long got = poscodec_decode(pt, plen, fixes, POS_CHUNK_MAX);
	if (got < 3) {
		rc = got < 0 ? -EBADMSG : 0;
		goto out;
	}
	size_t k = 0;
	for (long i = 0; i < got; i++)
		if (i % 2 == 0 || i == got - 1)
			fixes[k++] = fixes[i];
	size_t cap = POSCODEC_BOUND(k);
	if (!(enc = sodium_malloc(cap))) {
		rc = -ENOMEM;
		goto out;
	}
	size_t len = poscodec_encode(fixes, k, enc, cap);
	rc = len ? store_seal(s, "positions", row, "chunk", enc, len, &sealed, &slen) : -EIO;
	if (rc == 0)
		rc = store_exec(s, upd, "positions", "ibi", (int64_t)k, sealed, slen, id);
	if (rc == 0)
		*dropped = got - (int64_t)k;
out:
	free(sealed);
	if (enc)
		sodium_free(enc);
	if (fixes)
		sodium_free(fixes);
	store_free_secret(pt, plen + 1);
	return rc;
}

int store_pos_thin(struct store *s, int64_t max, int64_t *dropped)
{
	struct pos_chunk_ref *v = NULL;
	size_t n = 0;
	int64_t total = 0, gone = 0;
	int rc, owned = 0;
	if (dropped)
		*dropped = 0;
	if (max < 1)
		return -EINVAL;
	if ((rc = store_pos_count(s, &total)) < 0 || total <= max)
		return rc;
	if ((rc = pos_close_chunk(s)) < 0) /* the open chunk is thinned like the rest */
		return rc;
	if ((rc = pos_chunk_list(s, &v, &n)) < 0)
		return rc;
	if ((rc = store_tx_start(s, &owned)) < 0)
		goto out;
	size_t first = 0; /* chunks before it were deleted */
	while (total > max && first < n) {
		/* the densest chunk, the oldest among equals */
		size_t pick = first;
		for (size_t i = first; i < n; i++)
			if (v[i].n > v[pick].n)
				pick = i;
		int64_t d = 0;
		if (v[pick].n >= POS_THIN_MIN) {
			rc = pos_chunk_halve(s, v[pick].id, &d);
			if (rc == 0 && d == 0)
				rc = -EIO;
			if (rc == 0)
				v[pick].n -= d;
		} else { /* everything is sparse already: the oldest chunk goes */
			rc = store_exec(s, "DELETE FROM positions WHERE id = ?", "positions", "i",
			                v[first].id);
			d = v[first].n;
			first++;
		}
		if (rc < 0)
			break;
		total -= d;
		gone += d;
	}
	rc = store_tx_end(s, owned, rc);
out:
	free(v);
	if (rc == 0 && dropped)
		*dropped = gone;
	return rc;
}
