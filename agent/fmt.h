/* Formatting helpers several modules need on hot or error paths. */
#ifndef ESS_FMT_H
#define ESS_FMT_H

#include <stddef.h>
#include <stdint.h>

/* Writes v in decimal at p (no NUL) and returns the end: built on every
 * event and fix sent, where snprintf costs more than the rest. At most 20
 * characters. */
char *fmt_i64(char *p, int64_t v);

/* Formats a message into err (when err is not NULL) and returns rc: one
 * line for "fill the caller's error buffer and fail". */
int fmt_err(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
