#include "sync/batch.h"
#include "agent/store.h"
#include "sync/proto.h"

#include "agent/fmt.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX     "{\"events\":["
#define PREFIX_LEN (sizeof(PREFIX) - 1)

struct batch_ev {
	int64_t seq;
	uint64_t inc; /* batch_incident_key */
	int sos;
	char event_id[STORE_EVENT_ID_LEN + 1];
	size_t end; /* offset in buf just past this event */
};

struct batch {
	size_t max_events, limit, max_bytes;
	size_t n;
	struct batch_ev *ev;
	char *buf; /* PREFIX, events joined by ',', room for "]}\0" */
	size_t len, cap;
	uint64_t *keys; /* sorted incident keys of the n events, for batch_conflicts */
	size_t keyed;   /* events the key index was built for; != n: rebuild */
	size_t nkeys;   /* keys in it */
	int any;        /* keys holds BATCH_ANY_INCIDENT */
	struct keyidx {
		uint64_t key;
		size_t i;
	} * tmp; /* batch_clean_cut's scratch */
	size_t *last;
};

int batch_new(size_t max_events, size_t max_bytes, struct batch **out)
{
	if (max_events == 0 || max_events > PROTO_MAX_EVENTS || max_bytes < 256 ||
	    max_bytes > PROTO_MAX_EVENTS_BYTES)
		return -EINVAL;
	struct batch *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->ev = calloc(max_events, sizeof(*b->ev));
	b->keys = calloc(max_events, sizeof(*b->keys));
	b->tmp = calloc(max_events, sizeof(*b->tmp));
	b->last = calloc(max_events, sizeof(*b->last));
	b->cap = 64 * 1024;
	b->buf = malloc(b->cap);
	if (!b->ev || !b->buf || !b->keys || !b->tmp || !b->last) {
		batch_free(b);
		return -ENOMEM;
	}
	b->max_events = b->limit = max_events;
	b->max_bytes = max_bytes;
	batch_reset(b, max_events);
	*out = b;
	return 0;
}

void batch_free(struct batch *b)
{
	if (!b)
		return;
	free(b->ev);
	free(b->buf);
	free(b->keys);
	free(b->tmp);
	free(b->last);
	free(b);
}

void batch_reset(struct batch *b, size_t max_events)
{
	b->limit = max_events && max_events < b->max_events ? max_events : b->max_events;
	b->n = 0;
	b->keyed = (size_t)-1;
	memcpy(b->buf, PREFIX, PREFIX_LEN);
	b->len = PREFIX_LEN;
}

int batch_add(struct batch *b, const struct store_event *ev)
{
	const unsigned char *body = ev->body;
	size_t blen = ev->body_len;
	while (blen && (body[blen - 1] == ' ' || body[blen - 1] == '\n'))
		blen--;
	if (blen < 2 || body[0] != '{' || body[blen - 1] != '}')
		return -EINVAL;
	/* ',' + {"event_id":"…36…","seq":<20>, + body after '{' */
	size_t need = 1 + 13 + 36 + 8 + 20 + 1 + blen - 1;
	if (b->n >= b->limit || b->len + need + 2 > b->max_bytes)
		return -ENOSPC;
	if (b->len + need + 3 > b->cap) {
		size_t cap = b->cap * 2;
		while (cap < b->len + need + 3)
			cap *= 2;
		char *p = realloc(b->buf, cap);
		if (!p)
			return -ENOMEM;
		b->buf = p;
		b->cap = cap;
	}
	char *p = b->buf + b->len;
	if (b->n)
		*p++ = ',';
	memcpy(p, "{\"event_id\":\"", 13);
	p += 13;
	memcpy(p, ev->event_id, 36);
	p += 36;
	memcpy(p, "\",\"seq\":", 8);
	p += 8;
	p = fmt_i64(p, ev->seq);
	if (blen > 2) { /* more members follow */
		*p++ = ',';
		memcpy(p, body + 1, blen - 1);
		p += blen - 1;
	} else {
		*p++ = '}';
	}
	struct batch_ev *e = &b->ev[b->n++];
	b->keyed = (size_t)-1;
	e->seq = ev->seq;
	e->inc = batch_incident_key((int)ev->type, body, blen);
	e->sos = ev->type == STORE_EVENT_SOS;
	memcpy(e->event_id, ev->event_id, sizeof(e->event_id));
	e->event_id[STORE_EVENT_ID_LEN] = 0;
	b->len = (size_t)(p - b->buf);
	e->end = b->len;
	return 0;
}

size_t batch_count(const struct batch *b)
{
	return b->n;
}

int64_t batch_seq(const struct batch *b, size_t i)
{
	return i < b->n ? b->ev[i].seq : -1;
}

const char *batch_event_id(const struct batch *b, size_t i)
{
	return i < b->n ? b->ev[i].event_id : NULL;
}

void batch_truncate(struct batch *b, size_t n)
{
	if (n >= b->n)
		return;
	b->n = n;
	b->keyed = (size_t)-1;
	b->len = n ? b->ev[n - 1].end : PREFIX_LEN;
}

const char *batch_json(struct batch *b, size_t *len)
{
	memcpy(b->buf + b->len, "]}", 3);
	*len = b->len + 2;
	return b->buf;
}

/* ---- incident keys ---- */

uint64_t batch_incident_key(int type, const void *body, size_t len)
{
	static const char key[] = "\"incident_id\":\"";
	const size_t klen = sizeof(key) - 1;
	if (type != STORE_EVENT_STATUS && type != STORE_EVENT_NOTE && type != STORE_EVENT_RECEIPT)
		return BATCH_NO_INCIDENT;
	/* The body is compact JSON made by sync_event_queue: the member name
	 * with its quotes cannot occur inside a string value (a '"' there is
	 * escaped), and ids are [A-Za-z0-9._:-], never escaped. */
	const char *p = body, *end = p + len, *id = NULL;
	for (; (size_t)(end - p) >= klen; p++)
		if (*p == '"' && memcmp(p, key, klen) == 0) {
			id = p + klen;
			break;
		}
	if (!id)
		return BATCH_ANY_INCIDENT;
	uint64_t h = 14695981039346656037ull; /* FNV-1a */
	const char *q = id;
	for (; q < end && *q != '"'; q++) {
		h ^= (unsigned char)*q;
		h *= 1099511628211ull;
	}
	if (q == end || q == id)
		return BATCH_ANY_INCIDENT;
	if (h == BATCH_NO_INCIDENT || h == BATCH_ANY_INCIDENT)
		h = 1;
	return h;
}

int batch_is_sos(const struct batch *b, size_t i)
{
	return i < b->n && b->ev[i].sos;
}

uint64_t batch_incident(const struct batch *b, size_t i)
{
	return i < b->n ? b->ev[i].inc : BATCH_NO_INCIDENT;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

int batch_conflicts(struct batch *b, uint64_t key)
{
	if (b->n == 0 || key == BATCH_NO_INCIDENT)
		return 0;
	if (b->keyed != b->n) {
		b->nkeys = 0;
		b->any = 0;
		for (size_t i = 0; i < b->n; i++) {
			if (b->ev[i].inc == BATCH_ANY_INCIDENT)
				b->any = 1;
			else if (b->ev[i].inc != BATCH_NO_INCIDENT)
				b->keys[b->nkeys++] = b->ev[i].inc;
		}
		qsort(b->keys, b->nkeys, sizeof(*b->keys), cmp_u64);
		b->keyed = b->n;
	}
	if (key == BATCH_ANY_INCIDENT || b->any)
		return 1;
	return bsearch(&key, b->keys, b->nkeys, sizeof(*b->keys), cmp_u64) != NULL;
}

static int cmp_keyidx(const void *a, const void *b)
{
	const struct keyidx *x = a, *y = b;
	if (x->key != y->key)
		return (x->key > y->key) - (x->key < y->key);
	return (x->i > y->i) - (x->i < y->i);
}

size_t batch_clean_cut(struct batch *b, size_t min_keep)
{
	size_t n = b->n;
	if (n < 2)
		return 0;
	/* last[i]: the index of the last event of event i's incident */
	for (size_t i = 0; i < n; i++) {
		b->tmp[i].key = b->ev[i].inc;
		b->tmp[i].i = i;
	}
	qsort(b->tmp, n, sizeof(*b->tmp), cmp_keyidx);
	for (size_t g = 0; g < n;) {
		size_t h = g;
		while (h + 1 < n && b->tmp[h + 1].key == b->tmp[g].key)
			h++;
		for (size_t k = g; k <= h; k++) {
			uint64_t key = b->tmp[k].key;
			b->last[b->tmp[k].i] = key == BATCH_NO_INCIDENT    ? b->tmp[k].i
			                       : key == BATCH_ANY_INCIDENT ? n
			                                                   : b->tmp[h].i;
		}
		g = h + 1;
	}
	size_t best = 0, reach = 0;
	for (size_t j = 1; j < n; j++) { /* a cut before event j */
		if (b->last[j - 1] > reach)
			reach = b->last[j - 1];
		if (reach < j && j >= min_keep)
			best = j;
	}
	return best;
}
