/* Structured logging: logfmt or JSON lines on stderr. */
#include "util/log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level min_level = LOG_INFO;
static int json_mode;

void log_set_level(enum log_level min)
{
	min_level = min;
}

void log_set_json(int on)
{
	json_mode = on;
}

static const char *const names[] = {"debug", "info", "warn", "error"};

/* Writes s as a JSON string body (without quotes). */
static void json_escape(FILE *f, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
}

/* Appends the escape of byte c to buf at *o when it fits (cap includes the NUL); quotes: whether
 * '"' and '\\' are escaped too. */
static void esc_byte(unsigned char c, bool quotes, char *buf, size_t cap, size_t *o)
{
	char e[5];
	size_t k;
	if (quotes && (c == '"' || c == '\\'))
		k = (size_t)snprintf(e, sizeof e, "\\%c", c);
	else if (c == '\n')
		k = (size_t)snprintf(e, sizeof e, "\\n");
	else if (c == '\r')
		k = (size_t)snprintf(e, sizeof e, "\\r");
	else if (c == '\t')
		k = (size_t)snprintf(e, sizeof e, "\\t");
	else if (c < 0x20 || c == 0x7f)
		k = (size_t)snprintf(e, sizeof e, "\\x%02x", c);
	else {
		e[0] = (char)c;
		k = 1;
	}
	if (*o + k < cap) {
		memcpy(buf + *o, e, k);
		*o += k;
	}
}

static char *escape(const char *s, size_t n, bool quotes, bool trim, char *buf, size_t cap)
{
	size_t o = 0, len = strnlen(s, n);
	while (trim && len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (cap == 0)
		return buf;
	for (size_t i = 0; i < len; i++) {
		size_t before = o;
		esc_byte((unsigned char)s[i], quotes, buf, cap, &o);
		if (o == before)
			break; /* full: cut at a whole escape */
	}
	buf[o] = '\0';
	return buf;
}

char *log_quote(const char *s, size_t n, char *buf, size_t cap)
{
	return escape(s ? s : "", s ? n : 0, true, false, buf, cap);
}

char *log_one_line(const char *s, size_t n, char *buf, size_t cap)
{
	return escape(s ? s : "", s ? n : 0, false, true, buf, cap);
}

char *log_timestamp(int64_t ms, bool with_ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (ms < 0 || gmtime_r(&t, &tm) == NULL) {
		snprintf(buf, len, "-");
		return buf;
	}
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	if (with_ms)
		snprintf(buf + n, len - n, ".%03dZ", (int)(ms % 1000));
	else
		snprintf(buf + n, len - n, "Z");
	return buf;
}

void log_line(enum log_level lv, const char *mod, const char *fmt, ...)
{
	if (lv < min_level)
		return;
	char body[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(body, sizeof body, fmt, ap);
	va_end(ap);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	char when[40];
	log_timestamp((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, true, when, sizeof when);
	if (json_mode) {
		fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"mod\":\"%s\",\"fields\":\"", when, names[lv], mod);
		json_escape(stderr, body);
		fputs("\"}\n", stderr);
	} else {
		/* one record, one line: whatever a caller let through unescaped */
		char line[4 * sizeof body];
		escape(body, sizeof body, false, false, line, sizeof line);
		fprintf(stderr, "ts=%s level=%s mod=%s %s\n", when, names[lv], mod, line);
	}
	fflush(stderr);
}
