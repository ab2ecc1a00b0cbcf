/* A real TLS endpoint in front of a loopback HTTP server, as test
 * equipment: nginx with a private CA made here (openssl), HTTP/2 offered
 * through ALPN, started with its own configuration in a temporary
 * directory and stopped by pid (SIGTERM, then SIGKILL).
 *
 * Returns: 0 or a negative errno; -ENOENT when nginx or openssl is
 * missing. */
#ifndef ESS_TESTS_TLSFRONT_H
#define ESS_TESTS_TLSFRONT_H

#include <sys/types.h>

struct tlsfront {
	pid_t pid; /* 0 when not running */
	int port;  /* https://localhost:PORT */
	char ca_file[200];
	char access_log[200]; /* tls.access: "<connection serial> <r|.>" a request */
};

/* Makes ca.pem, srv.pem (CN and SAN localhost, 127.0.0.1) and srv.key in
 * dir, and starts nginx on 127.0.0.1:<free port> proxying to
 * 127.0.0.1:upstream_port. Waits (at most 5 s) until it answers. */
int tlsfront_start(struct tlsfront *t, const char *dir, int upstream_port);
void tlsfront_stop(struct tlsfront *t);

/* The TLS connections nginx has logged so far (access_log), in the order of
 * their first request: those after the first skip, counted as resumed (a
 * TLS session resumed) or full (a full handshake). Tells at most 256
 * connections apart. Readable after tlsfront_stop too. */
int tlsfront_sessions(const struct tlsfront *t, long long skip, long long *resumed,
                      long long *full);

#endif
