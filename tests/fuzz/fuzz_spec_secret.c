/* libFuzzer target for secret redaction: any bytes redact or fail cleanly, and every spec that
 * spec_parse accepts can be stored redacted (spec_secret_split's round trip holds). `make fuzz`. */
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spec/spec_secret.h"
#include "spec/spec_yaml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	char *red = NULL;
	struct spec_secrets sec = {0};
	if (spec_secret_redact(text, size, &red, &sec) == 0)
		assert(red != NULL);
	free(red);
	spec_secret_clear(&sec);

	struct spec s;
	struct spec_errors e = {0};
	/* UTF-16 (a byte order mark) is refused by redaction: libyaml's marks would count units. */
	bool utf16 = size >= 2 && (data[0] == 0xFE || data[0] == 0xFF);
	if (spec_parse(text, size, NULL, &s, &e) == 0 && !utf16) {
		int rc = spec_secret_split(text, size, &s, &red, &sec);
		assert(rc == 0);
		for (size_t i = 0; i < s.tmpl.n_env; i++)
			if (s.tmpl.env[i].secret)
				assert(spec_secret_get(&sec, s.tmpl.env[i].name) != NULL);
		free(red);
		spec_secret_clear(&sec);
	}
	spec_clear(&s);
	spec_errors_clear(&e);
	return 0;
}
