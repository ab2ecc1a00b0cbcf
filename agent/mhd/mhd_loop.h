/* libmicrohttpd on the project's event loop (agent/loop.h), shared by the
 * programs that serve HTTP (ess-ui, ess-refserver). Kept out of libess.a so
 * that essd and the other programs do not link libmicrohttpd.
 *
 * The daemon runs in external epoll mode (MHD_USE_EPOLL, no thread): its
 * epoll fd is watched by the loop, its own timeouts become a loop timer,
 * and a connection resumed with MHD_resume_connection() is served on the
 * next turn of the loop after mhd_loop_kick(). */
#ifndef ESS_MHD_LOOP_H
#define ESS_MHD_LOOP_H

#include <stdarg.h>
#include <sys/socket.h>

struct loop;
struct MHD_Daemon;
struct mhd_loop;

/* "HOST:PORT" or "[V6]:PORT" (numeric addresses only) into *ss:
 * 4 or 6 (the family), or -EINVAL. */
int mhd_loop_parse_listen(const char *listen, struct sockaddr_storage *ss);

/* Watches the daemon d (started with MHD_USE_EPOLL) in l. Only one daemon
 * per loop: this takes the loop's before-sleep hook. 0 or -errno; d is
 * left to the caller either way. */
int mhd_loop_attach(struct loop *l, struct MHD_Daemon *d, struct mhd_loop **out);

/* The port the daemon listens on (the one picked when asked for port 0). */
unsigned mhd_loop_port(const struct mhd_loop *m);

/* Run the daemon on the next turn of the loop: after MHD_resume_connection(). */
void mhd_loop_kick(struct mhd_loop *m);

/* Runs the daemon once more (connections just resumed get their answers),
 * then stops watching it. Call before MHD_stop_daemon(). NULL is a no-op. */
void mhd_loop_detach(struct mhd_loop *m);

/* An MHD_OPTION_EXTERNAL_LOGGER: one line to the log, prefixed with cls
 * (a const char *, e.g. "ui: http"). */
__attribute__((format(printf, 2, 0))) void mhd_loop_log(void *cls, const char *fmt, va_list ap);

#endif
