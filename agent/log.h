/* Logging: levels, stderr or the systemd journal, printf-checked.
 *
 * Nothing secret or personal is ever passed to these functions: log ids,
 * counts, enums and error codes, never incident text, names, phone numbers,
 * coordinates or key material. tests/ scan every log line for canaries.
 *
 * Logging is process-wide state (like ntpd's log.c): one process, one log.
 * errno is preserved across every call. */
#ifndef ESS_LOG_H
#define ESS_LOG_H

#include <stdarg.h>

enum log_level { LOG_LEVEL_ERR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };
enum log_target { LOG_TARGET_STDERR = 0, LOG_TARGET_JOURNAL };

/* ident is copied. Returns 0, or -ENOTSUP for the journal when built
 * without libsystemd (then stderr stays in use). */
int log_open(const char *ident, enum log_target target, enum log_level level);
void log_close(void);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Parses "err", "warn", "info", "debug". Returns 0 or -EINVAL. */
int log_level_parse(const char *name, enum log_level *out);

/* Tests capture every formatted line through this hook (NULL restores the
 * normal output). The line has no trailing newline. */
typedef void (*log_sink_fn)(void *arg, enum log_level level, const char *line);
void log_set_sink(log_sink_fn sink, void *arg);

#define LOG_PRINTF(a, b) __attribute__((format(printf, a, b)))
/* log_warn and log_err append ": strerror(errno)"; the x-forms do not. */
void log_err(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_errx(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_warn(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_warnx(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_info(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_debug(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_vlog(enum log_level level, int with_errno, const char *fmt, va_list ap) LOG_PRINTF(3, 0);

#endif
