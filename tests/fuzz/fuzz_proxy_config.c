/* libFuzzer target: the proxy admin API's service configuration parser (JSON from the admin
 * socket). Any input must give 0 with a consistent config, or -EINVAL with a message; no leaks. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_config c;
	char err[256];
	err[0] = '\0';
	int rc = proxy_config_parse((const char *)data, size, &c, err, sizeof err);
	if (rc == 0) {
		if (c.n > PROXY_MAX_BACKENDS || strlen(c.listen) >= PROXY_ADDR_MAX)
			abort();
		for (size_t i = 0; i < c.n; i++)
			if (c.v[i].state != PROXY_ACTIVE && c.v[i].state != PROXY_DRAINING)
				abort();
		proxy_config_free(&c);
	} else if (rc != -EINVAL || err[0] == '\0' || c.v != NULL) {
		abort();
	}
	return 0;
}
