/* libFuzzer target for the spec parser: any bytes must give either a spec or messages, never a
 * crash, a leak or undefined behaviour. Built by `make fuzz`. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "spec/spec_yaml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spec s;
	struct spec_errors e = {0};
	int rc = spec_parse((const char *)data, size, "fuzz.yaml", &s, &e);
	/* Success means no messages; failure means at least one, each with the file:line:col prefix. */
	assert((rc == 0) == (e.n == 0));
	for (size_t i = 0; i < e.n; i++)
		assert(strncmp(e.v[i], "fuzz.yaml:", 10) == 0);
	if (rc == 0) {
		assert(s.service != NULL && s.tmpl.n_command > 0);
		(void)spec_template_hash(&s.tmpl);
		/* The bounds every buffer of the engine leans on (docs/spec.md, "Bounds"). */
		const struct spec_strategy *st = &s.strategy;
		assert(s.replicas >= 0 && s.replicas <= SPEC_REPLICAS_MAX);
		assert(st->max_surge.value <= (st->max_surge.percent ? SPEC_SURGE_PCT_MAX : SPEC_REPLICAS_MAX));
		assert(st->max_unavailable.value <= (st->max_unavailable.percent ? 100 : SPEC_REPLICAS_MAX));
		for (size_t i = 0; i < st->n_batches; i++)
			assert(st->batches[i].value <= (st->batches[i].percent ? 100 : SPEC_REPLICAS_MAX));
		assert(s.n_targets <= SPEC_TARGETS_MAX && s.n_notify <= SPEC_NOTIFY_MAX);
		int surge, unav;
		spec_surge_unavailable(st, s.replicas, &surge, &unav);
		assert(surge <= s.replicas);
		/* The version is one line of printable characters. */
		for (const unsigned char *p = (const unsigned char *)s.tmpl.version; *p; p++)
			assert(*p >= 0x20 && *p != 0x7f && !(p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f));
	}
	spec_clear(&s);
	spec_errors_clear(&e);
	return 0;
}
