/* Kernel uevents: a NETLINK_KOBJECT_UEVENT socket on the loop that calls
 * back for the messages of one subsystem ("power_supply"), so that a module
 * that otherwise polls sysfs hears of a change when the kernel announces
 * it.
 *
 * A datagram is outside input: "ACTION@DEVPATH\0KEY=VALUE\0...", parsed
 * strictly and bounded (hal_uevent_parse); anything malformed, truncated or
 * too long is dropped. On the kernel's socket only messages from the kernel
 * count: the sender's nl_pid is 0 and its credentials (SCM_CREDENTIALS)
 * say uid 0, as udev checks (a root process may send to group 1 too, but
 * never as pid 0).
 *
 * Functions return 0 or a negative errno. */
#ifndef ESS_HAL_UEVENT_H
#define ESS_HAL_UEVENT_H

#include <stddef.h>
#include <stdint.h>

struct loop;

/* The longest message taken: the kernel's environment buffer
 * (UEVENT_BUFFER_SIZE, 2048) plus the "ACTION@DEVPATH" header with room to
 * spare. Longer ones are dropped whole. */
#define HAL_UEVENT_MAX 8192
/* At most this many KEY=VALUE fields in one message. */
#define HAL_UEVENT_MAX_FIELDS 128

struct hal_uevent {
	const char *action;    /* "add", "change", ... (points into the buffer) */
	const char *devpath;   /* "/devices/..." */
	const char *subsystem; /* "power_supply" */
};

/* Parses one datagram of len bytes. It must end with a NUL; the header is
 * ACTION@DEVPATH (ACTION [a-z]+, DEVPATH starting with '/'); each field
 * KEY=VALUE with KEY [A-Z0-9_]+ and no empty field in between; ACTION,
 * DEVPATH and SUBSYSTEM must be there and agree with the header. On success
 * ev points into buf. -EINVAL for anything else (and len 0 or more than
 * HAL_UEVENT_MAX). */
int hal_uevent_parse(const char *buf, size_t len, struct hal_uevent *ev);

struct hal_uevent_mon;
typedef void (*hal_uevent_fn)(void *arg, const struct hal_uevent *ev);

struct hal_uevent_stats {
	uint64_t messages; /* datagrams received */
	uint64_t matched;  /* of the subsystem: on_event called */
	uint64_t dropped;  /* malformed, truncated, too long, not from the kernel */
	uint64_t overruns; /* ENOBUFS: the kernel dropped some (on_overrun called) */
};

struct hal_uevent_params {
	struct loop *loop;
	const char *subsystem; /* only its messages reach on_event */
	/* > 0: an open datagram (or seqpacket) fd read instead of the kernel's
	 * socket, for the tests; the sender checks do not apply and it is not
	 * closed here. 0: the kernel's socket. */
	int fd;
	hal_uevent_fn on_event;
	void (*on_overrun)(void *arg); /* messages were lost; may be NULL */
	void *arg;
};

/* Opens (or takes) the socket and puts it on the loop. -errno of socket or
 * bind when the kernel's socket cannot be had (a container, seccomp): the
 * caller keeps polling. */
int hal_uevent_open(const struct hal_uevent_params *p, struct hal_uevent_mon **out);
void hal_uevent_close(struct hal_uevent_mon *m); /* NULL is fine */
/* 1 while the fd is on the loop; 0 once it was dropped (the peer closed a
 * test fd, or a read error other than EAGAIN/ENOBUFS). */
int hal_uevent_active(const struct hal_uevent_mon *m);
/* The socket (diagnostics, the tests); -1 once dropped. */
int hal_uevent_fd(const struct hal_uevent_mon *m);
void hal_uevent_stats(const struct hal_uevent_mon *m, struct hal_uevent_stats *st);

#endif
