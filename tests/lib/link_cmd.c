#include "tests/lib/link_cmd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WORDS 12
#define MAX_MS    600000u    /* 10 min of delay is more than any link */
#define MAX_KBIT  100000000u /* 100 Gbit/s */

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int link_num_parse(const char *text, uint64_t max, uint64_t *out)
{
	if (!text || !*text || strlen(text) > 20)
		return -EINVAL;
	uint64_t v = 0;
	for (const char *p = text; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	if (v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int on_off(const char *w, int *on)
{
	if (w && strcmp(w, "on") == 0)
		*on = 1;
	else if (w && strcmp(w, "off") == 0)
		*on = 0;
	else
		return -EINVAL;
	return 0;
}

static int parse_set(char **w, int n, struct link_cmd *cmd, char *err, size_t errlen)
{
	static const struct {
		const char *name;
		unsigned bit;
		uint32_t max;
	} keys[] = {{"delay", LINK_SET_DELAY, MAX_MS},
	            {"jitter", LINK_SET_JITTER, MAX_MS},
	            {"up", LINK_SET_UP, MAX_KBIT},
	            {"down", LINK_SET_DOWN, MAX_KBIT}};
	if (n < 3 || n % 2 == 0)
		return fail(err, errlen, "usage: set [delay MS] [jitter MS] [up KBIT] [down KBIT]");
	for (int i = 1; i < n; i += 2) {
		size_t k;
		for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			if (strcmp(w[i], keys[k].name) == 0)
				break;
		if (k == sizeof(keys) / sizeof(keys[0]))
			return fail(err, errlen, "set: unknown key '%.32s'", w[i]);
		if (cmd->set & keys[k].bit)
			return fail(err, errlen, "set: '%s' given twice", keys[k].name);
		uint64_t v;
		if (link_num_parse(w[i + 1], keys[k].max, &v) < 0)
			return fail(err, errlen, "set: %s wants a number 0..%u", keys[k].name,
			            (unsigned)keys[k].max);
		cmd->set |= keys[k].bit;
		uint32_t *field[] = {&cmd->delay_ms, &cmd->jitter_ms, &cmd->up_kbit,
		                     &cmd->down_kbit};
		*field[k] = (uint32_t)v;
	}
	return 0;
}

int link_cmd_parse(const char *line, struct link_cmd *cmd, char *err, size_t errlen)
{
	char buf[256];
	char *w[MAX_WORDS];
	int n = 0;
	memset(cmd, 0, sizeof(*cmd));
	err[0] = 0;
	if (strlen(line) >= sizeof(buf))
		return fail(err, errlen, "line too long");
	strcpy(buf, line);
	for (char *save = NULL, *t = strtok_r(buf, " \t\r", &save); t;
	     t = strtok_r(NULL, " \t\r", &save)) {
		if (n == MAX_WORDS)
			return fail(err, errlen, "too many words");
		w[n++] = t;
	}
	if (n == 0)
		return fail(err, errlen, "empty command");
	if (strcmp(w[0], "set") == 0) {
		cmd->kind = LINK_CMD_SET;
		return parse_set(w, n, cmd, err, errlen);
	}
	if (strcmp(w[0], "blackout") == 0 || strcmp(w[0], "refuse") == 0) {
		cmd->kind = w[0][0] == 'b' ? LINK_CMD_BLACKOUT : LINK_CMD_REFUSE;
		if (n != 2 || on_off(w[1], &cmd->on) < 0)
			return fail(err, errlen, "usage: %s on|off", w[0]);
		return 0;
	}
	if (strcmp(w[0], "reset") == 0) {
		if (n == 2 && strcmp(w[1], "all") == 0) {
			cmd->kind = LINK_CMD_RESET_ALL;
			return 0;
		}
		if (n == 3 && strcmp(w[1], "after-bytes") == 0 &&
		    link_num_parse(w[2], UINT64_MAX / 2, &cmd->bytes) == 0) {
			cmd->kind = LINK_CMD_RESET_AFTER;
			return 0;
		}
		return fail(err, errlen, "usage: reset all | reset after-bytes N");
	}
	if (strcmp(w[0], "drop") == 0) {
		if (n != 2 || strcmp(w[1], "all") != 0)
			return fail(err, errlen, "usage: drop all");
		cmd->kind = LINK_CMD_DROP_ALL;
		return 0;
	}
	if (strcmp(w[0], "stats") == 0 || strcmp(w[0], "quit") == 0) {
		cmd->kind = w[0][0] == 's' ? LINK_CMD_STATS : LINK_CMD_QUIT;
		if (n != 1)
			return fail(err, errlen, "usage: %s", w[0]);
		return 0;
	}
	return fail(err, errlen, "unknown command '%.32s'", w[0]);
}

int link_addr_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len, char *err,
                    size_t errlen)
{
	char host[64];
	const char *colon = strrchr(text, ':');
	if (!colon || colon == text || (size_t)(colon - text) >= sizeof(host))
		return fail(err, errlen, "'%.64s': want HOST:PORT", text);
	memcpy(host, text, (size_t)(colon - text));
	host[colon - text] = 0;
	uint64_t port;
	if (link_num_parse(colon + 1, 65535, &port) < 0)
		return fail(err, errlen, "'%.64s': bad port", text);
	memset(ss, 0, sizeof(*ss));
	size_t hl = strlen(host);
	if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
		host[hl - 1] = 0;
		if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1)
			return fail(err, errlen, "'%.64s': bad IPv6 address", text);
		if (!IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr))
			return fail(err, errlen, "'%.64s': not a loopback address (refused)", text);
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*a6);
		return 0;
	}
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
		return fail(err, errlen, "'%.64s': want a numeric address or localhost", text);
	if ((ntohl(a4->sin_addr.s_addr) >> 24) != 127)
		return fail(err, errlen, "'%.64s': not a loopback address (refused)", text);
	a4->sin_family = AF_INET;
	a4->sin_port = htons((uint16_t)port);
	*len = sizeof(*a4);
	return 0;
}

static int seconds(const char *s, const char *end, int64_t *ms)
{
	char buf[32], *e;
	if (end - s <= 0 || (size_t)(end - s) >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, (size_t)(end - s));
	buf[end - s] = 0;
	if (buf[0] < '0' || buf[0] > '9')
		return -EINVAL;
	errno = 0;
	double v = strtod(buf, &e);
	if (errno || *e || !isfinite(v) || v < 0 || v > 86400.0 * 365)
		return -EINVAL;
	*ms = (int64_t)(v * 1000.0 + 0.5); /* no libm: the unit tests do not link it */
	return 0;
}

int link_cycle_parse(const char *text, int64_t *up_ms, int64_t *down_ms, char *err, size_t errlen)
{
	const char *colon = strchr(text, ':');
	if (!colon || seconds(text, colon, up_ms) < 0 ||
	    seconds(colon + 1, colon + 1 + strlen(colon + 1), down_ms) < 0 || *up_ms <= 0 ||
	    *down_ms <= 0)
		return fail(err, errlen, "'%.64s': want UP_S:DOWN_S, both > 0 (e.g. 30:120)", text);
	return 0;
}
