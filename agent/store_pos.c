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
	rc = store_exec(s, sql, "positions", "iib", id, (int64_t)s->pos_n, sealed, slen);
	free(sealed);
	if (rc < 0)
		return rc;
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
	int64_t bad_id = -1;
	unsigned char *bad_blob = NULL;
	size_t bad_len = 0;
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
			if (bad_id < 0) {
				bad_id = id;
				bad_len = (size_t)sqlite3_column_bytes(st, 2);
				bad_blob = malloc(bad_len ? bad_len : 1);
				if (bad_blob && bad_len)
					memcpy(bad_blob, sqlite3_column_blob(st, 2), bad_len);
			}
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
	if (bad_id >= 0) {
		store_quarantine(s, "positions", "id", NULL, bad_id, bad_blob,
		                 bad_blob ? bad_len : 0);
		free(bad_blob);
	}
	return ret < 0 ? ret : (int)total;
}

int store_pos_consumed(struct store *s, int64_t token)
{
	return store_exec(s, "DELETE FROM positions WHERE id <= ?", "positions", "i", token);
}

int store_pos_count(struct store *s, int64_t *n)
{
	sqlite3_stmt *st = store_stmt(s, "SELECT total(n) FROM positions");
	if (!st)
		return -EIO;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*n = (int64_t)sqlite3_column_double(st, 0) + (int64_t)(s->pos_n - s->pos_sealed);
		rc = SQLITE_OK;
	}
	sqlite3_reset(st);
	return store_sqlerr(s, rc, "positions");
}
