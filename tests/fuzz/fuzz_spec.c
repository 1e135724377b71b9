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
	}
	spec_clear(&s);
	spec_errors_clear(&e);
	return 0;
}
