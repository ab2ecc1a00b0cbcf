#include "tests/lib/refsrv.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int refsrv_command(char *cmd, size_t cap, const char *port_file)
{
	const char *custom = getenv("ESS_REFSERVER_CMD");
	if (custom && custom[0]) {
		snprintf(cmd, cap, "exec %s --port-file %s", custom, port_file);
		return 0;
	}
	const char *build = getenv("ESS_BUILD");
	char path[512];
	snprintf(path, sizeof(path), "%s/ess-refserver", build && build[0] ? build : "build/host");
	if (access(path, X_OK) != 0)
		return -ENOENT;
	snprintf(cmd, cap,
	         "exec %s --listen 127.0.0.1:0 --base /api --admin-token " REFSRV_ADMIN_TOKEN
	         " --port-file %s",
	         path, port_file);
	return 0;
}

int refsrv_start(struct refsrv *s, const char *dir, const char *log_path)
{
	char pf[600], cmd[1400];
	memset(s, 0, sizeof(*s));
	snprintf(pf, sizeof(pf), "%s/refsrv.port", dir);
	unlink(pf);
	if (refsrv_command(cmd, sizeof(cmd), pf) < 0)
		return -ENOENT;
	s->pid = fork();
	if (s->pid < 0) {
		s->pid = 0;
		return -errno;
	}
	if (s->pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		dup2(fd, 1);
		if (log_path) {
			int lfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
			dup2(lfd >= 0 ? lfd : fd, 2);
		}
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		FILE *f = fopen(pf, "r");
		if (f) {
			int ok = fscanf(f, "%d", &s->port) == 1;
			fclose(f);
			if (ok && s->port > 0) {
				snprintf(s->base, sizeof(s->base), "http://127.0.0.1:%d", s->port);
				snprintf(s->api_url, sizeof(s->api_url), "%s/api", s->base);
				return 0;
			}
		}
		if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
			s->pid = 0;
			return -ECHILD;
		}
		usleep(50000);
	}
	refsrv_stop(s);
	return -ETIMEDOUT;
}

int refsrv_stop(struct refsrv *s)
{
	int st = 0;
	if (s->pid <= 0)
		return 0;
	kill(s->pid, SIGTERM);
	if (waitpid(s->pid, &st, 0) < 0)
		st = 0;
	s->pid = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

struct refsrv_buf {
	char *p;
	size_t n;
	int oom;
};

static size_t buf_write(char *d, size_t sz, size_t nm, void *arg)
{
	struct refsrv_buf *b = arg;
	char *p = realloc(b->p, b->n + sz * nm + 1);
	if (!p) {
		b->oom = 1;
		return 0;
	}
	memcpy(p + b->n, d, sz * nm);
	b->p = p;
	b->n += sz * nm;
	p[b->n] = 0;
	return sz * nm;
}

char *refsrv_admin_body(const char *base, const char *token, const char *method, const char *path,
                        const char *json, long timeout_s, int nosignal, long *status)
{
	CURL *c = curl_easy_init();
	struct refsrv_buf b = {0};
	char url[512], auth[256];
	long code = 0;
	*status = 0;
	if (!c)
		return NULL;
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	struct curl_slist *h = curl_slist_append(NULL, auth);
	h = curl_slist_append(h, "Content-Type: application/json");
	snprintf(url, sizeof(url), "%s%s", base, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (json)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, buf_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
	if (nosignal)
		curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	*status = code;
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

cJSON *refsrv_admin(const struct refsrv *s, const char *method, const char *path, const char *json,
                    long *status)
{
	long code;
	char *body =
	    refsrv_admin_body(s->base, REFSRV_ADMIN_TOKEN, method, path, json, 10L, 0, &code);
	if (status)
		*status = code;
	if ((code < 200 || code >= 300) && code != 0)
		fprintf(stderr, "# refsrv: %s %s: %ld %s\n", method, path, code, body ? body : "");
	cJSON *doc = body ? cJSON_Parse(body) : NULL;
	free(body);
	return doc;
}

int refsrv_token(const struct refsrv *s, const char *unit, const char *token)
{
	char body[512];
	long code;
	snprintf(body, sizeof(body), "{\"unit\":\"%s\",\"token\":\"%s\"}", unit, token);
	cJSON_Delete(refsrv_admin(s, "POST", "/admin/tokens", body, &code));
	return code == 201 || code == 200 ? 0 : -EIO;
}

int refsrv_device_id(const struct refsrv *s, char *out, size_t cap)
{
	long code;
	cJSON *devs = refsrv_admin(s, "GET", "/admin/devices", NULL, &code);
	const cJSON *d = cJSON_GetArrayItem(cJSON_GetObjectItem(devs, "devices"), 0);
	const cJSON *id = cJSON_GetObjectItem(d, "device_id");
	int rc = -ENOENT;
	if (cJSON_IsString(id)) {
		snprintf(out, cap, "%s", id->valuestring);
		rc = 0;
	}
	cJSON_Delete(devs);
	return rc;
}
