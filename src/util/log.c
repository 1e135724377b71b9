/* Structured logging: logfmt or JSON lines on stderr. */
#include "util/log.h"

#include <stdarg.h>
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
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[40];
	size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + n, sizeof when - n, ".%03ldZ", ts.tv_nsec / 1000000);
	if (json_mode) {
		fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"mod\":\"%s\",\"fields\":\"", when, names[lv], mod);
		json_escape(stderr, body);
		fputs("\"}\n", stderr);
	} else {
		fprintf(stderr, "ts=%s level=%s mod=%s %s\n", when, names[lv], mod, body);
	}
	fflush(stderr);
}
