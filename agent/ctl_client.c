#include "agent/ctl_client.h"
#include "agent/ctl.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_QUEUED 256

struct ctl_conn {
	int fd;
	double next_id;
	size_t inlen;
	char in[CTL_LINE_MAX + 1];
	cJSON *queued[MAX_QUEUED]; /* events read while waiting for an answer */
	int nqueued;
};

int ctl_conn_open(const char *path, struct ctl_conn **out, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	*out = NULL;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	struct ctl_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		if (err)
			snprintf(err, errlen, "%s: %s%s", path, strerror(e),
			         e == ENOENT || e == ECONNREFUSED ? " (is essd running?)" : "");
		if (c->fd >= 0)
			close(c->fd);
		free(c);
		return -e;
	}
	c->next_id = 1;
	*out = c;
	return 0;
}

void ctl_conn_close(struct ctl_conn *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->nqueued; i++)
		cJSON_Delete(c->queued[i]);
	close(c->fd);
	free(c);
}

int ctl_conn_send_raw(struct ctl_conn *c, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ctl_conn_read_line(struct ctl_conn *c, int timeout_ms, cJSON **line)
{
	int64_t deadline = now_ms() + timeout_ms;
	*line = NULL;
	for (;;) {
		char *nl = memchr(c->in, '\n', c->inlen);
		if (nl) {
			*nl = 0;
			size_t len = (size_t)(nl - c->in);
			cJSON *j = cJSON_ParseWithOpts(c->in, NULL, 1);
			memmove(c->in, nl + 1, c->inlen - len - 1);
			c->inlen -= len + 1;
			if (!j)
				return -EPROTO;
			*line = j;
			return 0;
		}
		if (c->inlen == CTL_LINE_MAX)
			return -EPROTO;
		int left = (int)(deadline - now_ms());
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		int r = poll(&pfd, 1, left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		ssize_t n = recv(c->fd, c->in + c->inlen, CTL_LINE_MAX - c->inlen, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -EPIPE;
		c->inlen += (size_t)n;
	}
}

int ctl_conn_call(struct ctl_conn *c, const char *method, cJSON *params, int timeout_ms,
                  cJSON **answer)
{
	*answer = NULL;
	double id = c->next_id++;
	cJSON *req = cJSON_CreateObject();
	if (!req) {
		cJSON_Delete(params);
		return -ENOMEM;
	}
	cJSON_AddNumberToObject(req, "id", id);
	cJSON_AddStringToObject(req, "method", method);
	if (params)
		cJSON_AddItemToObject(req, "params", params);
	char *text = cJSON_PrintUnformatted(req);
	cJSON_Delete(req);
	if (!text)
		return -ENOMEM;
	size_t len = strlen(text);
	text[len] = '\n'; /* replaces the NUL; sent as one line */
	int rc = ctl_conn_send_raw(c, text, len + 1);
	free(text);
	if (rc < 0)
		return rc;
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		cJSON *line;
		int left = (int)(deadline - now_ms());
		rc = ctl_conn_read_line(c, left > 0 ? left : 0, &line);
		if (rc < 0)
			return rc;
		const cJSON *aid = cJSON_GetObjectItemCaseSensitive(line, "id");
		if (cJSON_IsNumber(aid) && aid->valuedouble == id) {
			*answer = line;
			return 0;
		}
		if (cJSON_GetObjectItemCaseSensitive(line, "event") && c->nqueued < MAX_QUEUED)
			c->queued[c->nqueued++] = line;
		else
			cJSON_Delete(line);
	}
}

int ctl_conn_next_event(struct ctl_conn *c, int timeout_ms, cJSON **event)
{
	if (c->nqueued > 0) {
		*event = c->queued[0];
		memmove(c->queued, c->queued + 1, (size_t)(--c->nqueued) * sizeof(c->queued[0]));
		return 0;
	}
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		int left = (int)(deadline - now_ms());
		int rc = ctl_conn_read_line(c, left > 0 ? left : 0, event);
		if (rc < 0)
			return rc;
		if (cJSON_GetObjectItemCaseSensitive(*event, "event"))
			return 0;
		cJSON_Delete(*event);
	}
}
