/* Structured log lines on stderr: logfmt by default ("ts=... level=info mod=engine key=value"),
 * one JSON object a line with log_set_json(). Callers format the key=value part (values from outside
 * through log_quote); secrets never go in. A record is always one line: control bytes left in the
 * formatted fields are escaped (\n, \xNN) on the way out. */
#ifndef ROLLOUT_UTIL_LOG_H
#define ROLLOUT_UTIL_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level min);
void log_set_json(int on);
/* One line: mod is the module ("engine", "store"), fmt the logfmt fields after it. */
void log_line(enum log_level lv, const char *mod, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Escapes n bytes of s (up to a NUL) into buf (cap bytes, NUL-terminated, cut to fit) as the body
 * of a quoted logfmt value: '"' and '\\' get a backslash, newline, CR and tab read \n \r \t, other
 * control bytes \xNN. Returns buf. For text from outside (replies, causes, errors) in `k="%s"`. */
char *log_quote(const char *s, size_t n, char *buf, size_t cap);
/* The same for text shown on one line to people (status, events): control bytes escaped as above,
 * trailing whitespace dropped, quotes kept as they are. Returns buf. */
char *log_one_line(const char *s, size_t n, char *buf, size_t cap);

/* Unix time ms in UTC as log lines write it, "2026-12-03T06:51:07.762Z" (with_ms false: to the
 * second, "2026-12-03T06:51:07Z"); "-" for a time before 1970. Returns buf. */
char *log_timestamp(int64_t ms, bool with_ms, char *buf, size_t len);

#define log_debug(mod, ...) log_line(LOG_DEBUG, mod, __VA_ARGS__)
#define log_info(mod, ...) log_line(LOG_INFO, mod, __VA_ARGS__)
#define log_warn(mod, ...) log_line(LOG_WARN, mod, __VA_ARGS__)
#define log_error(mod, ...) log_line(LOG_ERROR, mod, __VA_ARGS__)

#endif
