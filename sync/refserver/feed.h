/* Held long polls: assignments requests waiting for their device's feed to
 * move. A change to a unit's incidents wakes that unit's waiters; a
 * revocation or a fault switch wakes a device's or everyone's. The
 * request answers when woken (http.c calls the handler again) or when its
 * time is up; a waiter is forgotten when its request ends.
 * Returns: 0 or a negative errno. */
#ifndef ESS_RS_FEED_H
#define ESS_RS_FEED_H

#include <stddef.h>
#include <stdint.h>

struct rs_feed;
struct rs_req;

int feed_new(struct rs_feed **out);
void feed_free(struct rs_feed *f); /* after http_stop: no request is held then */

/* Holds r (via http_hold) for up to ms, until a wake names its device or unit. */
int feed_hold(struct rs_feed *f, struct rs_req *r, const char *device_id, const char *unit,
              int64_t ms);
void feed_wake_unit(struct rs_feed *f, const char *unit);
void feed_wake_device(struct rs_feed *f, const char *device_id);
void feed_wake_all(struct rs_feed *f);
/* Requests held now. */
size_t feed_waiting(const struct rs_feed *f);

#endif
