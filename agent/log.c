#include "agent/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef HAVE_SYSTEMD
#include <syslog.h>
#include <systemd/sd-journal.h>
#endif

/* A line longer than this is cut: log lines carry ids and codes, not data. */
#define LOG_LINE_MAX 1024

static struct {
	char ident[32];
	enum log_target target;
	enum log_level level;
	log_sink_fn sink;
	void *sink_arg;
} lg = {"ess", LOG_TARGET_STDERR, LOG_LEVEL_INFO, NULL, NULL};

static const char *const level_names[] = {"err", "warn", "info", "debug"};

int log_open(const char *ident, enum log_target target, enum log_level level)
{
	snprintf(lg.ident, sizeof(lg.ident), "%s", ident ? ident : "ess");
	lg.level = level;
	lg.target = LOG_TARGET_STDERR;
#ifdef HAVE_SYSTEMD
	if (target == LOG_TARGET_JOURNAL)
		lg.target = LOG_TARGET_JOURNAL;
#endif
	if (target == LOG_TARGET_JOURNAL && lg.target != LOG_TARGET_JOURNAL)
		return -ENOTSUP;
	return 0;
}

void log_close(void)
{
	lg.target = LOG_TARGET_STDERR;
}

void log_set_level(enum log_level level)
{
	lg.level = level;
}

enum log_level log_get_level(void)
{
	return lg.level;
}

int log_level_parse(const char *name, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void log_set_sink(log_sink_fn sink, void *arg)
{
	lg.sink = sink;
	lg.sink_arg = arg;
}

void log_vlog(enum log_level level, int with_errno, const char *fmt, va_list ap)
{
	int saved_errno = errno;
	char line[LOG_LINE_MAX];

	if (level > lg.level)
		goto out;
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		goto out;
	size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	if (with_errno)
		snprintf(line + len, sizeof(line) - len, ": %s", strerror(saved_errno));

	if (lg.sink) {
		lg.sink(lg.sink_arg, level, line);
		goto out;
	}
#ifdef HAVE_SYSTEMD
	if (lg.target == LOG_TARGET_JOURNAL) {
		static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
		sd_journal_print(prio[level], "%s", line);
		goto out;
	}
#endif
	/* One write per line so concurrent writers do not interleave. */
	char out_line[LOG_LINE_MAX + 64];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	int m = snprintf(out_line, sizeof(out_line),
	                 "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%ld] %s: %s\n", tm.tm_year + 1900,
	                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	                 ts.tv_nsec / 1000000, lg.ident, (long)getpid(), level_names[level], line);
	if (m > 0) {
		size_t w = (size_t)m < sizeof(out_line) ? (size_t)m : sizeof(out_line) - 1;
		ssize_t rc = write(STDERR_FILENO, out_line, w);
		(void)rc;
	}
out:
	errno = saved_errno;
}

#define LOG_FN(name, level, with_errno)                                                            \
	void name(const char *fmt, ...)                                                            \
	{                                                                                          \
		va_list ap;                                                                        \
		va_start(ap, fmt);                                                                 \
		log_vlog(level, with_errno, fmt, ap);                                              \
		va_end(ap);                                                                        \
	}

LOG_FN(log_err, LOG_LEVEL_ERR, 1)
LOG_FN(log_errx, LOG_LEVEL_ERR, 0)
LOG_FN(log_warn, LOG_LEVEL_WARN, 1)
LOG_FN(log_warnx, LOG_LEVEL_WARN, 0)
LOG_FN(log_info, LOG_LEVEL_INFO, 0)
LOG_FN(log_debug, LOG_LEVEL_DEBUG, 0)
