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
	char event_id[STORE_EVENT_ID_LEN + 1];
	size_t end; /* offset in buf just past this event */
};

struct batch {
	size_t max_events, limit, max_bytes;
	size_t n;
	struct batch_ev *ev;
	char *buf; /* PREFIX, events joined by ',', room for "]}\0" */
	size_t len, cap;
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
	b->cap = 64 * 1024;
	b->buf = malloc(b->cap);
	if (!b->ev || !b->buf) {
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
	free(b);
}

void batch_reset(struct batch *b, size_t max_events)
{
	b->limit = max_events && max_events < b->max_events ? max_events : b->max_events;
	b->n = 0;
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
	e->seq = ev->seq;
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
	b->len = n ? b->ev[n - 1].end : PREFIX_LEN;
}

const char *batch_json(struct batch *b, size_t *len)
{
	memcpy(b->buf + b->len, "]}", 3);
	*len = b->len + 2;
	return b->buf;
}
