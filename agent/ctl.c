#define _GNU_SOURCE /* accept4, struct ucred */
#include "agent/ctl.h"
#include "agent/log.h"
#include "agent/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define SETERR(...)                                                                                \
	do {                                                                                       \
		if (err)                                                                           \
			snprintf(err, errlen, __VA_ARGS__);                                        \
	} while (0)

struct ctl_client {
	struct ctl *ctl;
	struct ctl_client *next;
	int fd;
	struct ctl_peer peer;
	int subscribed;
	int discarding; /* skipping the rest of an over-long line */
	int pending;    /* a deferred answer is outstanding: read nothing more */
	int gone;       /* disconnected while pending: freed by ctl_reply */
	double pending_id;
	size_t inlen;
	char in[CTL_LINE_MAX + 1];
	char *out;
	size_t outlen, outcap;
};

struct ctl {
	struct loop *loop;
	int fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const struct ctl_method *methods;
	size_t nmethods;
	void *arg;
	struct ctl_client *clients;
	int nclients;
};

static void client_free(struct ctl_client *cl)
{
	free(cl->out);
	free(cl);
}

static void client_drop(struct ctl_client *cl)
{
	struct ctl *c = cl->ctl;
	for (struct ctl_client **p = &c->clients; *p; p = &(*p)->next) {
		if (*p == cl) {
			*p = cl->next;
			break;
		}
	}
	c->nclients--;
	loop_fd_del(c->loop, cl->fd);
	close(cl->fd);
	cl->fd = -1;
	if (cl->pending)
		cl->gone = 1; /* the handler still holds it */
	else
		client_free(cl);
}

static int flush_out(struct ctl_client *cl)
{
	while (cl->outlen > 0) {
		ssize_t n = send(cl->fd, cl->out, cl->outlen, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0)
			return -EPIPE;
		memmove(cl->out, cl->out + n, cl->outlen - (size_t)n);
		cl->outlen -= (size_t)n;
	}
	unsigned ev = (cl->pending ? 0 : LOOP_READ) | (cl->outlen ? LOOP_WRITE : 0);
	loop_fd_mod(cl->ctl->loop, cl->fd, ev ? ev : LOOP_READ);
	return 0;
}

/* Queues one JSON line; drops the client (returns -ENOBUFS) rather than
 * let a reader that does not read grow memory. */
static int send_json(struct ctl_client *cl, const cJSON *obj)
{
	if (cl->fd < 0)
		return -EPIPE;
	char *text = cJSON_PrintUnformatted(obj);
	if (!text)
		return -ENOMEM;
	size_t len = strlen(text);
	if (cl->outlen + len + 1 > CTL_OUT_MAX) {
		free(text);
		log_warnx("ctl: client pid %d does not read its answers; disconnected",
		          (int)cl->peer.pid);
		client_drop(cl);
		return -ENOBUFS;
	}
	if (cl->outlen + len + 1 > cl->outcap) {
		size_t cap = cl->outcap ? cl->outcap : 4096;
		while (cap < cl->outlen + len + 1)
			cap *= 2;
		char *o = realloc(cl->out, cap);
		if (!o) {
			free(text);
			return -ENOMEM;
		}
		cl->out = o;
		cl->outcap = cap;
	}
	memcpy(cl->out + cl->outlen, text, len);
	cl->out[cl->outlen + len] = '\n';
	cl->outlen += len + 1;
	free(text);
	if (flush_out(cl) < 0) {
		client_drop(cl);
		return -EPIPE;
	}
	return 0;
}

static int answer(struct ctl_client *cl, int has_id, double id, int rc, cJSON *result,
                  const char *code, const char *message)
{
	cJSON *a = cJSON_CreateObject();
	if (!a) {
		cJSON_Delete(result);
		return -ENOMEM;
	}
	if (has_id)
		cJSON_AddNumberToObject(a, "id", id);
	else
		cJSON_AddNullToObject(a, "id");
	cJSON_AddBoolToObject(a, "ok", rc >= 0);
	if (rc >= 0) {
		cJSON_AddItemToObject(a, "result", result ? result : cJSON_CreateObject());
	} else {
		cJSON_Delete(result);
		cJSON *e = cJSON_AddObjectToObject(a, "error");
		cJSON_AddStringToObject(e, "code", code ? code : "failed");
		cJSON_AddStringToObject(e, "message", message ? message : "");
	}
	int r = send_json(cl, a);
	cJSON_Delete(a);
	return r;
}

/* Returns < 0 when the client was dropped. */
static int handle_line(struct ctl_client *cl, char *line, size_t len)
{
	struct ctl *c = cl->ctl;
	if (strlen(line) != len)
		return answer(cl, 0, 0, -EINVAL, NULL, "bad_request", "NUL byte in request");
	cJSON *req = cJSON_ParseWithOpts(line, NULL, 1);
	if (!req || !cJSON_IsObject(req)) {
		cJSON_Delete(req);
		return answer(cl, 0, 0, -EINVAL, NULL, "bad_request", "not a JSON object");
	}
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "id");
	const cJSON *method = cJSON_GetObjectItemCaseSensitive(req, "method");
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(req, "params");
	int has_id = cJSON_IsNumber(id);
	double idv = has_id ? id->valuedouble : 0;
	int rc;
	if (id && !has_id) {
		rc = answer(cl, 0, 0, -EINVAL, NULL, "bad_request", "id must be a number");
		goto out;
	}
	if (!cJSON_IsString(method)) {
		rc = answer(cl, has_id, idv, -EINVAL, NULL, "bad_request", "method missing");
		goto out;
	}
	if (params && !cJSON_IsObject(params)) {
		rc = answer(cl, has_id, idv, -EINVAL, NULL, "bad_request",
		            "params must be an object");
		goto out;
	}
	if (strcmp(method->valuestring, "subscribe") == 0) {
		cl->subscribed = 1;
		rc = answer(cl, has_id, idv, 0, NULL, NULL, NULL);
		goto out;
	}
	const struct ctl_method *m = NULL;
	for (size_t i = 0; i < c->nmethods; i++)
		if (strcmp(c->methods[i].name, method->valuestring) == 0)
			m = &c->methods[i];
	if (!m) {
		rc = answer(cl, has_id, idv, -ENOENT, NULL, "unknown_method", "no such method");
		goto out;
	}
	if (m->privileged && cl->peer.uid != 0 && cl->peer.uid != geteuid()) {
		rc =
		    answer(cl, has_id, idv, -EPERM, NULL, "forbidden", "not allowed for this user");
		goto out;
	}
	cJSON *empty = NULL;
	if (!params)
		params = empty = cJSON_CreateObject();
	cJSON *result = NULL;
	const char *code = NULL;
	char message[256] = "";
	cl->pending = 1;
	cl->pending_id = has_id ? idv : -1;
	rc = m->fn(c->arg, cl, &cl->peer, params, &result, &code, message, sizeof(message));
	cJSON_Delete(empty);
	if (rc == 1) { /* deferred: ctl_reply answers */
		loop_fd_mod(c->loop, cl->fd, cl->outlen ? LOOP_WRITE : 0);
		rc = 0;
		goto out;
	}
	cl->pending = 0;
	rc = answer(cl, has_id, idv, rc, result, code ? code : "failed", message);
out:
	cJSON_Delete(req);
	return rc < 0 && cl->fd < 0 ? -1 : 0;
}

static void process_input(struct ctl_client *cl)
{
	while (!cl->pending && cl->fd >= 0) {
		char *nl = memchr(cl->in, '\n', cl->inlen);
		if (!nl)
			break;
		size_t len = (size_t)(nl - cl->in);
		*nl = 0;
		int was_discarding = cl->discarding;
		cl->discarding = 0;
		int dropped = 0;
		if (!was_discarding && len > 0)
			dropped = handle_line(cl, cl->in, len) < 0;
		if (dropped || cl->fd < 0)
			return;
		memmove(cl->in, nl + 1, cl->inlen - len - 1);
		cl->inlen -= len + 1;
	}
	if (cl->fd >= 0 && cl->inlen == CTL_LINE_MAX) {
		/* Too long: answer once, then skip to the next newline. */
		cl->inlen = 0;
		if (!cl->discarding) {
			cl->discarding = 1;
			answer(cl, 0, 0, -E2BIG, NULL, "too_large", "request line too long");
		}
	}
}

static void on_client(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)l;
	(void)fd;
	struct ctl_client *cl = arg;
	if (events & LOOP_WRITE) {
		if (flush_out(cl) < 0) {
			client_drop(cl);
			return;
		}
	}
	if (!(events & (LOOP_READ | LOOP_ERROR)) || cl->pending)
		return;
	ssize_t n = recv(cl->fd, cl->in + cl->inlen, CTL_LINE_MAX - cl->inlen, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_drop(cl);
		return;
	}
	cl->inlen += (size_t)n;
	process_input(cl);
}

static void on_accept(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)events;
	struct ctl *c = arg;
	int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd < 0)
		return;
	if (c->nclients >= CTL_CLIENTS_MAX) {
		log_warnx("ctl: too many clients; refusing one");
		close(cfd);
		return;
	}
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	struct ctl_client *cl = calloc(1, sizeof(*cl));
	if (!cl || getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
		free(cl);
		close(cfd);
		return;
	}
	cl->ctl = c;
	cl->fd = cfd;
	cl->peer = (struct ctl_peer){cred.pid, cred.uid, cred.gid};
	if (loop_fd_add(l, cfd, LOOP_READ, on_client, cl) < 0) {
		free(cl);
		close(cfd);
		return;
	}
	cl->next = c->clients;
	c->clients = cl;
	c->nclients++;
}

void ctl_reply(struct ctl_client *cl, int rc, cJSON *result, const char *code, const char *message)
{
	if (!cl->pending) {
		cJSON_Delete(result);
		return;
	}
	cl->pending = 0;
	if (cl->gone) {
		cJSON_Delete(result);
		client_free(cl);
		return;
	}
	double id = cl->pending_id;
	if (answer(cl, id >= 0, id, rc, result, code, message) < 0 || cl->fd < 0)
		return;
	loop_fd_mod(cl->ctl->loop, cl->fd, LOOP_READ | (cl->outlen ? LOOP_WRITE : 0));
	process_input(cl); /* requests that arrived meanwhile */
}

int ctl_publish(struct ctl *c, const char *name, const cJSON *data)
{
	cJSON *ev = cJSON_CreateObject();
	if (!ev)
		return -ENOMEM;
	cJSON_AddStringToObject(ev, "event", name);
	cJSON_AddItemReferenceToObject(ev, "data", (cJSON *)(uintptr_t)data);
	int sent = 0;
	struct ctl_client *next;
	for (struct ctl_client *cl = c->clients; cl; cl = next) {
		next = cl->next;
		if (cl->subscribed && send_json(cl, ev) == 0)
			sent++;
	}
	cJSON_Delete(ev);
	return sent;
}

int ctl_client_count(const struct ctl *c)
{
	return c->nclients;
}

int ctl_open(struct loop *l, const char *path, gid_t gid, const struct ctl_method *methods,
             size_t nmethods, void *arg, struct ctl **out, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	*out = NULL;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		/* bounded: a 32-bit build warns that an unbounded %s may pass INT_MAX */
		SETERR("%.256s: socket path too long", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	/* Another daemon answering there? Then refuse; a dead one's socket
	 * is stale and removed. */
	int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0) {
		if (connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(probe);
			SETERR("%s: another essd is running", path);
			return -EADDRINUSE;
		}
		close(probe);
	}
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			SETERR("%s: exists and is not a socket", path);
			return -EEXIST;
		}
		unlink(path);
	}
	struct ctl *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->loop = l;
	c->methods = methods;
	c->nmethods = nmethods;
	c->arg = arg;
	strcpy(c->path, path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int rc = c->fd < 0 ? -errno : 0;
	if (rc == 0) {
		/* Born with the final permissions: no window where others connect. */
		mode_t old = umask(0117);
		if (bind(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			rc = -errno;
		umask(old);
	}
	if (rc == 0 && gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) < 0)
		rc = -errno;
	if (rc == 0 && chmod(path, 0660) < 0)
		rc = -errno;
	if (rc == 0 && listen(c->fd, 16) < 0)
		rc = -errno;
	if (rc == 0)
		rc = loop_fd_add(l, c->fd, LOOP_READ, on_accept, c);
	if (rc < 0) {
		SETERR("%s: %s", path, strerror(-rc));
		if (c->fd >= 0) {
			close(c->fd);
			unlink(path);
		}
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void ctl_close(struct ctl *c)
{
	if (!c)
		return;
	while (c->clients)
		client_drop(c->clients);
	loop_fd_del(c->loop, c->fd);
	close(c->fd);
	unlink(c->path);
	free(c);
}
