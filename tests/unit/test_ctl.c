/* The control socket: a server in a child process on the real loop, the
 * blocking client library in the parent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/ctl.h"
#include "agent/ctl_client.h"
#include "agent/loop.h"
#include "tests/lib/testutil.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

struct server {
	struct loop *loop;
	struct ctl *ctl;
	struct ctl_client *deferred;
	int published;
};

static int m_echo(void *arg, struct ctl_client *c, const struct ctl_peer *peer, const cJSON *params,
                  cJSON **result, const char **code, char *msg, size_t len)
{
	(void)arg;
	(void)c;
	(void)code;
	(void)msg;
	(void)len;
	*result = cJSON_Duplicate(params, 1);
	cJSON_AddNumberToObject(*result, "uid", peer->uid);
	return 0;
}

static int m_fail(void *arg, struct ctl_client *c, const struct ctl_peer *peer, const cJSON *params,
                  cJSON **result, const char **code, char *msg, size_t len)
{
	(void)arg, (void)c, (void)peer, (void)params, (void)result;
	*code = "no_such_incident";
	snprintf(msg, len, "incident not found");
	return -ENOENT;
}

static int64_t deferred_answer(struct loop *l, void *arg)
{
	(void)l;
	struct server *s = arg;
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "stored", "yes");
	ctl_reply(s->deferred, 0, r, NULL, NULL);
	s->deferred = NULL;
	return -1;
}

static int m_later(void *arg, struct ctl_client *c, const struct ctl_peer *peer,
                   const cJSON *params, cJSON **result, const char **code, char *msg, size_t len)
{
	(void)peer, (void)params, (void)result, (void)code, (void)msg, (void)len;
	struct server *s = arg;
	s->deferred = c;
	loop_timer_add(s->loop, 20, deferred_answer, s);
	return 1;
}

static int m_publish(void *arg, struct ctl_client *c, const struct ctl_peer *peer,
                     const cJSON *params, cJSON **result, const char **code, char *msg, size_t len)
{
	(void)c, (void)peer, (void)code, (void)msg, (void)len;
	struct server *s = arg;
	const cJSON *n = cJSON_GetObjectItem(params, "n");
	const cJSON *size = cJSON_GetObjectItem(params, "size");
	int count = cJSON_IsNumber(n) ? n->valueint : 1, sent = 0;
	char *pad = calloc(1, (size_t)(cJSON_IsNumber(size) ? size->valueint : 1) + 1);
	memset(pad, 'x', cJSON_IsNumber(size) ? (size_t)size->valueint : 0);
	for (int i = 0; i < count; i++) {
		cJSON *d = cJSON_CreateObject();
		cJSON_AddNumberToObject(d, "i", i);
		cJSON_AddStringToObject(d, "pad", pad);
		sent += ctl_publish(s->ctl, "incident", d);
		cJSON_Delete(d);
	}
	free(pad);
	*result = cJSON_CreateObject();
	cJSON_AddNumberToObject(*result, "delivered", sent);
	cJSON_AddNumberToObject(*result, "clients", ctl_client_count(s->ctl));
	return 0;
}

static int m_stop(void *arg, struct ctl_client *c, const struct ctl_peer *peer, const cJSON *params,
                  cJSON **result, const char **code, char *msg, size_t len)
{
	(void)c, (void)peer, (void)params, (void)result, (void)code, (void)msg, (void)len;
	loop_stop(((struct server *)arg)->loop);
	return 0;
}

static const struct ctl_method methods[] = {
    {"echo", m_echo, 0},       {"fail", m_fail, 0}, {"later", m_later, 0},
    {"publish", m_publish, 0}, {"stop", m_stop, 1},
};

static char sock_path[256];
static pid_t server_pid;

static void run_server(void)
{
	struct server s = {0};
	char err[256];
	if (loop_open(&s.loop) < 0 ||
	    ctl_open(s.loop, sock_path, (gid_t)-1, methods, sizeof(methods) / sizeof(methods[0]),
	             &s, &s.ctl, err, sizeof(err)) < 0) {
		fprintf(stderr, "server: %s\n", err);
		_exit(1);
	}
	loop_run(s.loop);
	ctl_close(s.ctl);
	loop_close(s.loop);
	_exit(0);
}

static int start(void **state)
{
	char *dir = tu_tmpdir("ctl");
	*state = dir;
	snprintf(sock_path, sizeof(sock_path), "%s/essd.sock", dir);
	server_pid = fork();
	if (server_pid == 0)
		run_server();
	for (int i = 0; i < 200 && access(sock_path, F_OK) != 0; i++)
		usleep(5000);
	return access(sock_path, F_OK);
}

static int stop(void **state)
{
	kill(server_pid, SIGKILL);
	waitpid(server_pid, NULL, 0);
	tu_rmrf(*state);
	return 0;
}

static cJSON *call(struct ctl_conn *c, const char *method, const char *params)
{
	cJSON *answer;
	assert_int_equal(
	    ctl_conn_call(c, method, params ? cJSON_Parse(params) : NULL, 2000, &answer), 0);
	return answer;
}

static const char *err_code(const cJSON *a)
{
	const cJSON *e = cJSON_GetObjectItem(a, "error");
	return e ? cJSON_GetObjectItem(e, "code")->valuestring : "";
}

static void test_calls_and_errors(void **state)
{
	(void)state;
	struct ctl_conn *c;
	char err[256];
	assert_int_equal(ctl_conn_open(sock_path, &c, err, sizeof(err)), 0);
	cJSON *a = call(c, "echo", "{\"x\":\"ไทย\"}");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(a, "ok")));
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(a, "result"), "x")->valuestring,
	                    "ไทย");
	cJSON_Delete(a);
	a = call(c, "fail", NULL);
	assert_false(cJSON_IsTrue(cJSON_GetObjectItem(a, "ok")));
	assert_string_equal(err_code(a), "no_such_incident");
	cJSON_Delete(a);
	a = call(c, "nope", NULL);
	assert_string_equal(err_code(a), "unknown_method");
	cJSON_Delete(a);

	/* malformed lines: answered, and the connection keeps serving */
#define RAW(s)                                                                                     \
	{                                                                                          \
		s, sizeof(s) - 1                                                                   \
	}
	static const struct {
		const char *s;
		size_t n;
	} bad[] = {
	    RAW("not json\n"),
	    RAW("[1,2]\n"),
	    RAW("{\"id\":\"x\",\"method\":\"echo\"}\n"),
	    RAW("{\"id\":1,\"method\":\"echo\",\"params\":[]}\n"),
	    RAW("{\"id\":1}\n"),
	    RAW("{\"id\":1,\"method\":\"echo\"}\0x\n"),
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(ctl_conn_send_raw(c, bad[i].s, bad[i].n), 0);
		cJSON *line;
		assert_int_equal(ctl_conn_read_line(c, 2000, &line), 0);
		assert_false(cJSON_IsTrue(cJSON_GetObjectItem(line, "ok")));
		assert_string_equal(err_code(line), "bad_request");
		cJSON_Delete(line);
	}
	/* an over-long line */
	size_t big = CTL_LINE_MAX * 2;
	char *huge = malloc(big + 1);
	memset(huge, 'a', big);
	huge[big] = '\n';
	assert_int_equal(ctl_conn_send_raw(c, huge, big + 1), 0);
	free(huge);
	cJSON *line;
	assert_int_equal(ctl_conn_read_line(c, 2000, &line), 0);
	assert_string_equal(err_code(line), "too_large");
	cJSON_Delete(line);
	a = call(c, "echo", "{\"after\":1}");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(a, "ok")));
	cJSON_Delete(a);
	/* a deferred answer, and a request pipelined behind it */
	static const char pipelined[] = "{\"id\":50,\"method\":\"later\"}\n"
	                                "{\"id\":51,\"method\":\"echo\"}\n";
	assert_int_equal(ctl_conn_send_raw(c, pipelined, sizeof(pipelined) - 1), 0);
	assert_int_equal(ctl_conn_read_line(c, 2000, &line), 0);
	assert_int_equal(cJSON_GetObjectItem(line, "id")->valueint, 50);
	assert_string_equal(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(line, "result"), "stored")->valuestring, "yes");
	cJSON_Delete(line);
	assert_int_equal(ctl_conn_read_line(c, 2000, &line), 0);
	assert_int_equal(cJSON_GetObjectItem(line, "id")->valueint, 51);
	cJSON_Delete(line);
	ctl_conn_close(c);
}

static void test_subscribe_and_slow_reader(void **state)
{
	(void)state;
	struct ctl_conn *sub, *slow, *c;
	assert_int_equal(ctl_conn_open(sock_path, &sub, NULL, 0), 0);
	assert_int_equal(ctl_conn_open(sock_path, &slow, NULL, 0), 0);
	assert_int_equal(ctl_conn_open(sock_path, &c, NULL, 0), 0);
	cJSON_Delete(call(sub, "subscribe", NULL));
	cJSON_Delete(call(slow, "subscribe", NULL));
	cJSON *a = call(c, "publish", "{\"n\":3}");
	assert_int_equal(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(a, "result"), "delivered")->valueint, 6);
	cJSON_Delete(a);
	for (int i = 0; i < 3; i++) {
		cJSON *ev;
		assert_int_equal(ctl_conn_next_event(sub, 2000, &ev), 0);
		assert_string_equal(cJSON_GetObjectItem(ev, "event")->valuestring, "incident");
		assert_int_equal(
		    cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "data"), "i")->valueint, i);
		cJSON_Delete(ev);
	}
	/* neither subscriber reads now: 3 MiB of events overflow their queues
	 * and the socket buffers; they are dropped, the daemon carries on */
	a = call(c, "publish", "{\"n\":60,\"size\":50000}");
	cJSON *r = cJSON_GetObjectItem(a, "result");
	assert_true(cJSON_GetObjectItem(r, "delivered")->valueint < 120);
	assert_int_equal(cJSON_GetObjectItem(r, "clients")->valueint, 1);
	cJSON_Delete(a);
	ctl_conn_close(sub);
	ctl_conn_close(slow);
	ctl_conn_close(c);
}

static void test_single_instance_and_permissions(void **state)
{
	(void)state;
	struct loop *l;
	struct ctl *ctl;
	char err[256];
	assert_int_equal(loop_open(&l), 0);
	assert_int_equal(
	    ctl_open(l, sock_path, (gid_t)-1, methods, 1, NULL, &ctl, err, sizeof(err)),
	    -EADDRINUSE);
	assert_non_null(strstr(err, "another essd"));
	loop_close(l);
	if (geteuid() != 0) {
		skip();
		return;
	}
	/* a user outside the socket's group cannot even connect */
	pid_t pid = fork();
	if (pid == 0) {
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(3);
		struct ctl_conn *c;
		_exit(ctl_conn_open(sock_path, &c, NULL, 0) == -EACCES ? 0 : 1);
	}
	int status;
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_stale_socket_replaced(void **state)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/stale.sock", (char *)*state);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd); /* a socket file nobody listens on */
	struct loop *l;
	struct ctl *ctl;
	char err[256];
	assert_int_equal(loop_open(&l), 0);
	assert_int_equal(ctl_open(l, path, (gid_t)-1, methods, 1, NULL, &ctl, err, sizeof(err)), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0660);
	ctl_close(ctl);
	assert_int_equal(access(path, F_OK), -1);
	loop_close(l);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_calls_and_errors),
	    cmocka_unit_test(test_subscribe_and_slow_reader),
	    cmocka_unit_test(test_single_instance_and_permissions),
	    cmocka_unit_test(test_stale_socket_replaced),
	};
	return cmocka_run_group_tests(tests, start, stop);
}
