/* libFuzzer target for util/http1: heads (requests and responses) and chunked bodies. Checks that
 * split feeding agrees with one-shot feeding and that every returned pointer stays in the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/http1.h"

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x))                                                                          \
			abort();                                                                   \
	} while (0)

static void check_msg(const struct http1_msg *m, const char *buf, int rc)
{
	const char *end = buf + rc;
	CHECK(m->nheaders <= 16);
	for (size_t i = 0; i < m->nheaders; i++) {
		const struct http1_header *h = &m->headers[i];
		CHECK(h->name >= buf && h->name + h->name_len <= end && h->name_len > 0);
		CHECK(h->value >= buf && h->value + h->value_len <= end);
		for (size_t k = 0; k < h->value_len; k++)
			CHECK(h->value[k] != '\r' && h->value[k] != '\n' && h->value[k] != '\0');
	}
	if (m->target)
		CHECK(m->target >= buf && m->target + m->target_len <= end);
	CHECK(m->minor == 0 || m->minor == 1);
	if (m->body == HTTP1_BODY_CHUNKED)
		CHECK(m->minor == 1);
}

static void head(enum http1_kind kind, const char *buf, size_t len, size_t cut)
{
	struct http1_header h1[16], h2[16];
	struct http1_msg m1, m2;
	struct http1_parser p;

	http1_parser_init(&p, kind, h1, 16);
	p.max_line = 256;
	p.max_head = 1024;
	int one = http1_parse(&p, buf, len, &m1);
	CHECK(one <= (int)len);
	if (one > 0)
		check_msg(&m1, buf, one);
	if (one < 0)
		CHECK(http1_status(one) != 500);

	http1_parser_init(&p, kind, h2, 16);
	p.max_line = 256;
	p.max_head = 1024;
	int two = http1_parse(&p, buf, cut, &m2);
	if (two == 0)
		two = http1_parse(&p, buf, len, &m2);
	else if (two > 0)
		CHECK(two == one); /* complete within the first part: same head */
	CHECK(two == one);
	if (one > 0) {
		CHECK(m1.body == m2.body && m1.content_length == m2.content_length);
		CHECK(m1.keep_alive == m2.keep_alive && m1.nheaders == m2.nheaders);
	}
}

static void chunked(const char *buf, size_t len, size_t cut)
{
	struct http1_chunked c;
	http1_chunked_init(&c);
	size_t off = 0;
	size_t limits[2] = {cut, len};
	for (int part = 0; part < 2; part++) {
		while (off < limits[part] && !c.done) {
			size_t used, dn;
			const char *d;
			int rc = http1_chunked_feed(&c, buf + off, limits[part] - off, &used, &d, &dn);
			if (rc < 0) {
				CHECK(http1_status(rc) != 500);
				return;
			}
			CHECK(used <= limits[part] - off);
			CHECK(used > 0 || dn > 0);
			if (dn)
				CHECK(d >= buf + off && d + dn <= buf + off + used);
			off += used;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t cut = size > 1 ? data[0] % size : 0;
	/* an exact-size copy so any overread is caught */
	char *buf = malloc(size - 1 ? size - 1 : 1);
	memcpy(buf, data + 1, size - 1);
	size_t len = size - 1;
	if (cut > len)
		cut = len;
	head(HTTP1_REQUEST, buf, len, cut);
	head(HTTP1_RESPONSE, buf, len, cut);
	chunked(buf, len, cut);
	free(buf);
	return 0;
}
