/* Durations ("500ms", "2s", "1m30s") and amounts (a count "3" or a percent "25%"): parse, format, round. */
#ifndef ROLLOUT_CORE_AMOUNT_H
#define ROLLOUT_CORE_AMOUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A count or a percent of replicas, as written in a spec. */
struct amount {
	bool percent;
	int value; /* a count >= 0, or a percent 0..100 (or more where the field allows) */
};

/* Parses a duration made of one or more <number><unit> parts, unit one of ms s m h d
 * ("500ms", "2s", "1m30s"). Returns 0 and sets *ms, or -EINVAL. "0" alone is accepted. */
int amount_parse_duration(const char *s, int64_t *ms);
/* Formats ms as the shortest exact duration ("1m30s", "500ms", "0s") into buf. Returns buf. */
char *amount_format_duration(int64_t ms, char *buf, size_t len);
/* Parses "3" or "25%". Returns 0, or -EINVAL for anything else (negative, fraction, junk),
 * or -ERANGE for a number too large. */
int amount_parse(const char *s, struct amount *out);
/* The amount as a count of `total`: percents rounded down (floor) or up (ceil). */
int amount_floor(struct amount a, int total);
int amount_ceil(struct amount a, int total);
/* Formats "3" or "25%" into buf. Returns buf. */
char *amount_format(struct amount a, char *buf, size_t len);

#endif
