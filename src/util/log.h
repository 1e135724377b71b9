/* Structured log lines on stderr: logfmt by default ("ts=... level=info mod=engine key=value"),
 * one JSON object a line with log_set_json(). Callers format the key=value part; secrets never go in. */
#ifndef ROLLOUT_UTIL_LOG_H
#define ROLLOUT_UTIL_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level min);
void log_set_json(int on);
/* One line: mod is the module ("engine", "store"), fmt the logfmt fields after it. */
void log_line(enum log_level lv, const char *mod, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_debug(mod, ...) log_line(LOG_DEBUG, mod, __VA_ARGS__)
#define log_info(mod, ...) log_line(LOG_INFO, mod, __VA_ARGS__)
#define log_warn(mod, ...) log_line(LOG_WARN, mod, __VA_ARGS__)
#define log_error(mod, ...) log_line(LOG_ERROR, mod, __VA_ARGS__)

#endif
