/* libFuzzer target for the API router's decoding of a request target (daemon/api.c): the path split
 * into segments (api_split_path), each segment percent-decoded, and the query string's name=value
 * pairs decoded with '+' as a space (api_percent_decode), as dispatch() and fill_params() do.
 *
 * Input: a request target up to its first NUL, as the server's copy of a head holds it.
 * Checks: the split gives at most API_MAX_SEGS segments, none holding '/', that join back into
 * the path; a decode succeeds exactly when every '%' starts a two-hex-digit escape other than %00,
 * and then gives one byte per escape or plain byte (so never more than it read, and no NUL inside),
 * each the byte a reference reading expects; re-encoding the output and decoding it gives it back;
 * hex digits decode alike in either case. ASan and UBSan check the rest. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/api.h"

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fprintf(stderr, "fuzz_api_path: check failed: %s (line %d)\n", #x, __LINE__); \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int hex(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch |= 0x20;
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* The reference reading of s[0..n): writes the decoded bytes to ref (n + 1 bytes) and returns their
 * count, or -1 where api_percent_decode must refuse. */
static long reference(const char *s, size_t n, bool plus, char *ref)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			ref[k++] = plus && s[i] == '+' ? ' ' : s[i];
			continue;
		}
		if (n - i < 3 || hex((unsigned char)s[i + 1]) < 0 || hex((unsigned char)s[i + 2]) < 0)
			return -1;
		int v = hex((unsigned char)s[i + 1]) * 16 + hex((unsigned char)s[i + 2]);
		if (v == 0)
			return -1;
		ref[k++] = (char)v;
		i += 2;
	}
	return (long)k;
}

/* Percent-encodes every byte of s that is not unreserved (RFC 3986) into a new string, with hex
 * digits in the given case. */
static char *encode(const char *s, bool upper)
{
	static const char *const digits[2] = {"0123456789abcdef", "0123456789ABCDEF"};
	size_t n = strlen(s);
	char *e = malloc(3 * n + 1), *o = e;
	CHECK(e != NULL);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		    ch == '-' || ch == '.' || ch == '_' || ch == '~') {
			*o++ = (char)ch;
		} else {
			*o++ = '%';
			*o++ = digits[upper][ch >> 4];
			*o++ = digits[upper][ch & 15];
		}
	}
	*o = '\0';
	return e;
}

/* Decodes s[0..n) and checks it against the reference reading, the round trip and either case. */
static void check_decode(const char *s, size_t n, bool plus)
{
	char *ref = malloc(n + 1), *out = NULL;
	CHECK(ref != NULL);
	long want = reference(s, n, plus, ref);
	int rc = api_percent_decode(s, n, plus, &out);
	if (want < 0) {
		CHECK(rc == -EINVAL);
		free(ref);
		return;
	}
	CHECK(rc == 0 && out != NULL);
	CHECK((size_t)want <= n && strlen(out) == (size_t)want && memcmp(out, ref, (size_t)want) == 0);
	for (int upper = 0; upper < 2; upper++) {
		char *enc = encode(out, upper), *back = NULL;
		CHECK(api_percent_decode(enc, strlen(enc), plus, &back) == 0);
		CHECK(strcmp(back, out) == 0);
		free(back);
		free(enc);
	}
	free(out);
	free(ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *target = malloc(size + 2);
	CHECK(target != NULL);
	size_t len = strnlen((const char *)data, size);
	/* the router sees only targets that start with '/' */
	target[0] = '/';
	memcpy(target + 1, data, len);
	target[len + 1] = '\0';

	char *query = strchr(target, '?');
	if (query)
		*query++ = '\0';
	char *path = strdup(target), *segs[API_MAX_SEGS];
	CHECK(path != NULL);
	size_t slashes = 0;
	for (const char *p = target; *p; p++)
		slashes += *p == '/';
	int n = api_split_path(path, segs);
	if (slashes > API_MAX_SEGS) {
		CHECK(n == -1);
	} else {
		CHECK(n == (int)slashes);
		size_t at = 0;
		for (int i = 0; i < n; i++) {
			size_t sl = strlen(segs[i]);
			CHECK(segs[i] >= path && segs[i] + sl < path + strlen(target) + 1);
			CHECK(memchr(segs[i], '/', sl) == NULL);
			CHECK(target[at] == '/' && memcmp(target + at + 1, segs[i], sl) == 0);
			at += 1 + sl;
			check_decode(segs[i], sl, false);
		}
		CHECK(at == strlen(target));
	}
	free(path);

	/* the query: pairs split on '&', name and value on the first '=' (fill_params) */
	for (const char *q = query; q && *q;) {
		size_t qn = strcspn(q, "&");
		if (qn) {
			const char *eq = memchr(q, '=', qn);
			size_t kn = eq ? (size_t)(eq - q) : qn;
			check_decode(q, kn, true);
			if (eq)
				check_decode(eq + 1, qn - kn - 1, true);
		}
		q += qn;
		if (*q == '&')
			q++;
	}
	free(target);
	return 0;
}
