/* The touch UI's control-socket connection (ui_ctl.h). */
#include "agent/ui/ui_ctl.h"

#include "agent/ctl.h"
#include "agent/log.h"
#include "agent/loop.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define OUT_MAX (4 * CTL_LINE_MAX)
/* essd's lines are bounded by its per-client output bound (a long list or
 * a big incident can pass CTL_LINE_MAX, which bounds requests only) */
#define IN_MAX CTL_OUT_MAX

struct call {
	uint64_t id; /* 0: free slot */
	ui_ctl_answer_fn cb;
	void *arg;
	struct loop_timer *timer;
	struct ui_ctl *c;
};

struct ui_ctl {
	struct loop *l;
	char path[108];
	int fd;
	int connected;
	unsigned watching; /* LOOP_* events registered */
	struct loop_timer *retry;
	ui_ctl_event_fn on_event;
	ui_ctl_state_fn on_state;
	void *arg;
	uint64_t next_id;
	struct call calls[UI_CTL_CALLS_MAX];
	char *out;
	size_t outlen;
	size_t inlen;
	char *in; /* IN_MAX */
};

static void disconnect(struct ui_ctl *c);
static int64_t on_retry(struct loop *l, void *arg);

static void finish_call(struct call *k, const cJSON *answer)
{
	ui_ctl_answer_fn cb = k->cb;
	void *arg = k->arg;
	loop_timer_cancel(k->c->l, k->timer);
	k->timer = NULL;
	k->id = 0;
	k->cb = NULL;
	if (cb)
		cb(arg, answer);
}

static int64_t on_call_timeout(struct loop *l, void *arg)
{
	(void)l;
	struct call *k = arg;
	k->timer = NULL; /* the loop frees it as we return < 0 */
	log_warnx("ui: essd did not answer call %llu in time", (unsigned long long)k->id);
	finish_call(k, NULL);
	return -1;
}

static void watch(struct ui_ctl *c)
{
	unsigned want = LOOP_READ | (c->outlen ? LOOP_WRITE : 0);
	if (want != c->watching && loop_fd_mod(c->l, c->fd, want) == 0)
		c->watching = want;
}

static int flush_out(struct ui_ctl *c)
{
	while (c->outlen) {
		ssize_t n = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0)
			return -errno;
		memmove(c->out, c->out + n, c->outlen - (size_t)n);
		c->outlen -= (size_t)n;
	}
	watch(c);
	return 0;
}

static int send_line(struct ui_ctl *c, cJSON *msg)
{
	char *s = cJSON_PrintUnformatted(msg);
	if (!s)
		return -ENOMEM;
	size_t n = strlen(s);
	if (n + 1 > CTL_LINE_MAX || c->outlen + n + 1 > OUT_MAX) {
		free(s);
		return n + 1 > CTL_LINE_MAX ? -EMSGSIZE : -ENOBUFS;
	}
	if (!c->out && !(c->out = malloc(OUT_MAX))) {
		free(s);
		return -ENOMEM;
	}
	memcpy(c->out + c->outlen, s, n);
	c->out[c->outlen + n] = '\n';
	c->outlen += n + 1;
	free(s);
	return flush_out(c);
}

/* essd's event names go into the browser's event stream as "event: NAME\n":
 * short lower-case words only, or a name could frame events of its own */
static int event_name_ok(const char *name)
{
	size_t n = strspn(name, "abcdefghijklmnopqrstuvwxyz_");
	return n > 0 && n <= 32 && name[n] == 0;
}

static void handle_line(struct ui_ctl *c, const char *line, size_t len)
{
	cJSON *o = cJSON_ParseWithLength(line, len);
	if (!cJSON_IsObject(o)) {
		log_warnx("ui: essd sent a line that is not a JSON object");
		cJSON_Delete(o);
		return;
	}
	const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "event");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
	if (cJSON_IsString(ev)) {
		if (!event_name_ok(ev->valuestring))
			log_warnx("ui: essd published an event with a malformed name");
		else if (c->on_event)
			c->on_event(c->arg, ev->valuestring,
			            cJSON_GetObjectItemCaseSensitive(o, "data"));
	} else if (cJSON_IsNumber(id) && id->valuedouble >= 1 &&
	           id->valuedouble <= 9007199254740992.0) { /* 2^53: casts exactly */
		uint64_t want = (uint64_t)id->valuedouble;
		for (size_t i = 0; i < UI_CTL_CALLS_MAX; i++)
			if (c->calls[i].id == want) {
				finish_call(&c->calls[i], o);
				break;
			}
	}
	cJSON_Delete(o);
}

static void on_fd(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)l;
	(void)fd;
	struct ui_ctl *c = arg;
	if ((events & LOOP_WRITE) && flush_out(c) < 0) {
		disconnect(c);
		return;
	}
	if (!(events & (LOOP_READ | LOOP_ERROR)))
		return;
	ssize_t n = recv(c->fd, c->in + c->inlen, IN_MAX - c->inlen, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		log_warnx("ui: essd closed the control socket");
		disconnect(c);
		return;
	}
	c->inlen += (size_t)n;
	size_t start = 0;
	for (size_t i = c->inlen - (size_t)n; i < c->inlen; i++) {
		if (c->in[i] != '\n')
			continue;
		handle_line(c, c->in + start, i - start);
		if (!c->connected) /* a callback closed us */
			return;
		start = i + 1;
	}
	memmove(c->in, c->in + start, c->inlen - start);
	c->inlen -= start;
	if (c->inlen == IN_MAX) {
		log_warnx("ui: essd sent a line longer than %d bytes", IN_MAX);
		disconnect(c);
	}
}

static void disconnect(struct ui_ctl *c)
{
	if (c->fd >= 0) {
		loop_fd_del(c->l, c->fd);
		close(c->fd);
	}
	c->fd = -1;
	c->watching = 0;
	c->outlen = c->inlen = 0;
	int was = c->connected;
	c->connected = 0;
	for (size_t i = 0; i < UI_CTL_CALLS_MAX; i++)
		if (c->calls[i].id)
			finish_call(&c->calls[i], NULL);
	if (was && c->on_state)
		c->on_state(c->arg, 0);
	if (c->retry)
		loop_timer_set(c->l, c->retry, UI_CTL_RETRY_MS);
}

static int try_connect(struct ui_ctl *c)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, c->path, sizeof(c->path));
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->fd < 0)
		return -errno;
	/* a Unix socket connects at once or fails (EAGAIN: backlog full) */
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(c->fd);
		c->fd = -1;
		return -e;
	}
	int rc = loop_fd_add(c->l, c->fd, LOOP_READ, on_fd, c);
	if (rc < 0) {
		close(c->fd);
		c->fd = -1;
		return rc;
	}
	c->watching = LOOP_READ;
	c->connected = 1;
	cJSON *sub = cJSON_CreateObject();
	if (!sub || !cJSON_AddNumberToObject(sub, "id", (double)c->next_id++) ||
	    !cJSON_AddStringToObject(sub, "method", "subscribe") || send_line(c, sub) < 0) {
		cJSON_Delete(sub);
		disconnect(c);
		return -EIO;
	}
	cJSON_Delete(sub);
	log_info("ui: connected to essd");
	if (c->on_state)
		c->on_state(c->arg, 1);
	return 0;
}

static int64_t on_retry(struct loop *l, void *arg)
{
	(void)l;
	struct ui_ctl *c = arg;
	if (c->connected)
		return 60000; /* parked: disconnect() re-arms it */
	int rc = try_connect(c);
	if (rc == 0)
		return 60000;
	static int said;
	if (!said++)
		log_warnx("ui: essd's control socket %s: %s (retrying)", c->path, strerror(-rc));
	return UI_CTL_RETRY_MS;
}

int ui_ctl_open(struct loop *l, const char *path, ui_ctl_event_fn on_event,
                ui_ctl_state_fn on_state, void *arg, struct ui_ctl **out)
{
	*out = NULL;
	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return -ENAMETOOLONG;
	struct ui_ctl *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (!(c->in = malloc(IN_MAX))) {
		free(c);
		return -ENOMEM;
	}
	c->l = l;
	snprintf(c->path, sizeof(c->path), "%s", path);
	c->fd = -1;
	c->on_event = on_event;
	c->on_state = on_state;
	c->arg = arg;
	c->next_id = 1;
	for (size_t i = 0; i < UI_CTL_CALLS_MAX; i++)
		c->calls[i].c = c;
	/* the first attempt on the loop's first turn: the caller is wired by then */
	if (!(c->retry = loop_timer_add(l, 0, on_retry, c))) {
		free(c->in);
		free(c);
		return -ENOMEM;
	}
	*out = c;
	return 0;
}

void ui_ctl_close(struct ui_ctl *c)
{
	if (!c)
		return;
	loop_timer_cancel(c->l, c->retry);
	c->retry = NULL;
	c->on_state = NULL;
	disconnect(c);
	free(c->out);
	free(c->in);
	free(c);
}

int ui_ctl_connected(const struct ui_ctl *c)
{
	return c && c->connected;
}

int ui_ctl_call(struct ui_ctl *c, const char *method, cJSON *params, ui_ctl_answer_fn cb, void *arg,
                uint64_t *call)
{
	struct call *k = NULL;
	int rc;
	if (!c->connected) {
		cJSON_Delete(params);
		return -ENOTCONN;
	}
	for (size_t i = 0; i < UI_CTL_CALLS_MAX && !k; i++)
		if (!c->calls[i].id)
			k = &c->calls[i];
	if (!k) {
		cJSON_Delete(params);
		return -EBUSY;
	}
	cJSON *msg = cJSON_CreateObject();
	uint64_t id = c->next_id++;
	if (!msg || !cJSON_AddNumberToObject(msg, "id", (double)id) ||
	    !cJSON_AddStringToObject(msg, "method", method)) {
		cJSON_Delete(msg);
		cJSON_Delete(params);
		return -ENOMEM;
	}
	if (params)
		cJSON_AddItemToObject(msg, "params", params);
	if (!(k->timer = loop_timer_add(c->l, UI_CTL_TIMEOUT_MS, on_call_timeout, k))) {
		cJSON_Delete(msg);
		return -ENOMEM;
	}
	k->id = id;
	k->cb = cb;
	k->arg = arg;
	rc = send_line(c, msg);
	cJSON_Delete(msg);
	if (rc < 0) {
		loop_timer_cancel(c->l, k->timer);
		k->timer = NULL;
		k->id = 0;
		k->cb = NULL;
		if (rc != -EMSGSIZE && rc != -ENOBUFS && rc != -ENOMEM)
			disconnect(c);
		return rc;
	}
	if (call)
		*call = id;
	return 0;
}

void ui_ctl_cancel(struct ui_ctl *c, uint64_t call)
{
	for (size_t i = 0; call && i < UI_CTL_CALLS_MAX; i++)
		if (c->calls[i].id == call) {
			c->calls[i].cb = NULL;
			finish_call(&c->calls[i], NULL);
		}
}
