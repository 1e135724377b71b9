/* Durations and amounts: the small arithmetic every spec field leans on. */
#include "core/amount.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int unit_ms(const char *u, size_t n, int64_t *ms)
{
	static const struct {
		const char *name;
		int64_t ms;
	} units[] = {
		{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
	};
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strlen(units[i].name) == n && memcmp(units[i].name, u, n) == 0) {
			*ms = units[i].ms;
			return 0;
		}
	}
	return -EINVAL;
}

int amount_parse_duration(const char *s, int64_t *ms)
{
	if (s == NULL || *s == '\0')
		return -EINVAL;
	if (strcmp(s, "0") == 0) {
		*ms = 0;
		return 0;
	}
	int64_t total = 0;
	const char *p = s;
	int64_t last_unit = INT64_MAX;
	while (*p) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		int64_t n = 0;
		while (*p >= '0' && *p <= '9') {
			if (n > (INT64_MAX / 10) - 10)
				return -ERANGE;
			n = n * 10 + (*p++ - '0');
		}
		const char *u = p;
		while ((*p >= 'a' && *p <= 'z'))
			p++;
		int64_t mult;
		if (unit_ms(u, (size_t)(p - u), &mult) < 0)
			return -EINVAL;
		/* Parts must go from larger units to smaller ones, each once ("1m30s", not "30s1m"). */
		if (mult >= last_unit)
			return -EINVAL;
		last_unit = mult;
		if (n > (INT64_MAX / 4) / mult)
			return -ERANGE;
		total += n * mult;
		if (total > INT64_MAX / 4)
			return -ERANGE;
	}
	*ms = total;
	return 0;
}

char *amount_format_duration(int64_t ms, char *buf, size_t len)
{
	static const struct {
		const char *name;
		int64_t ms;
	} units[] = {
		{"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1},
	};
	size_t off = 0;
	if (len == 0)
		return buf;
	buf[0] = '\0';
	if (ms <= 0) {
		snprintf(buf, len, "0s");
		return buf;
	}
	for (size_t i = 0; i < sizeof units / sizeof units[0] && off < len; i++) {
		int64_t n = ms / units[i].ms;
		if (n == 0)
			continue;
		ms -= n * units[i].ms;
		int w = snprintf(buf + off, len - off, "%lld%s", (long long)n, units[i].name);
		if (w < 0)
			break;
		off += (size_t)w;
	}
	return buf;
}

int amount_parse(const char *s, struct amount *out)
{
	if (s == NULL || *s == '\0')
		return -EINVAL;
	const char *p = s;
	long long n = 0;
	if (*p < '0' || *p > '9')
		return -EINVAL;
	while (*p >= '0' && *p <= '9') {
		n = n * 10 + (*p++ - '0');
		if (n > 1000000000)
			return -ERANGE;
	}
	bool pct = false;
	if (*p == '%') {
		pct = true;
		p++;
	}
	if (*p != '\0')
		return -EINVAL;
	out->percent = pct;
	out->value = (int)n;
	return 0;
}

int amount_floor(struct amount a, int total)
{
	if (!a.percent)
		return a.value;
	return (int)(((long long)a.value * total) / 100);
}

int amount_ceil(struct amount a, int total)
{
	if (!a.percent)
		return a.value;
	return (int)(((long long)a.value * total + 99) / 100);
}

char *amount_format(struct amount a, char *buf, size_t len)
{
	snprintf(buf, len, "%d%s", a.value, a.percent ? "%" : "");
	return buf;
}
