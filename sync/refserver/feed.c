#include "sync/refserver/feed.h"
#include "sync/proto.h"
#include "sync/refserver/http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct waiter {
	struct waiter *prev, *next;
	struct rs_feed *f;
	struct rs_req *r;
	char device_id[PROTO_ID_MAX + 1];
	char unit[PROTO_ID_MAX + 1];
};

struct rs_feed {
	struct waiter *head;
	size_t n;
};

int feed_new(struct rs_feed **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void feed_free(struct rs_feed *f)
{
	if (!f)
		return;
	while (f->head) {
		struct waiter *w = f->head;
		f->head = w->next;
		w->r->on_done = NULL;
		free(w);
	}
	free(f);
}

static void unlink_waiter(struct waiter *w)
{
	struct rs_feed *f = w->f;
	if (w->prev)
		w->prev->next = w->next;
	else
		f->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	f->n--;
	w->r->on_done = NULL;
	w->r->on_done_arg = NULL;
	free(w);
}

static void on_request_done(struct rs_req *r, void *arg)
{
	(void)r;
	unlink_waiter(arg);
}

int feed_hold(struct rs_feed *f, struct rs_req *r, const char *device_id, const char *unit,
              int64_t ms)
{
	struct waiter *w = r->on_done_arg;
	if (!r->on_done) { /* a request held again keeps its waiter */
		w = calloc(1, sizeof(*w));
		if (!w)
			return -ENOMEM;
		w->f = f;
		w->r = r;
		w->next = f->head;
		if (f->head)
			f->head->prev = w;
		f->head = w;
		f->n++;
		r->on_done = on_request_done;
		r->on_done_arg = w;
	}
	snprintf(w->device_id, sizeof(w->device_id), "%s", device_id);
	snprintf(w->unit, sizeof(w->unit), "%s", unit);
	http_hold(r, ms);
	return 0;
}

/* Wakes every waiter matching; the waiters stay listed until their request
 * ends (it may be held again). */
static void wake(struct rs_feed *f, const char *device_id, const char *unit)
{
	for (struct waiter *w = f->head; w; w = w->next) {
		if ((device_id && strcmp(w->device_id, device_id) != 0) ||
		    (unit && strcmp(w->unit, unit) != 0))
			continue;
		http_wake(w->r);
	}
}

void feed_wake_unit(struct rs_feed *f, const char *unit)
{
	wake(f, NULL, unit);
}

void feed_wake_device(struct rs_feed *f, const char *device_id)
{
	wake(f, device_id, NULL);
}

void feed_wake_all(struct rs_feed *f)
{
	wake(f, NULL, NULL);
}

size_t feed_waiting(const struct rs_feed *f)
{
	return f->n;
}
