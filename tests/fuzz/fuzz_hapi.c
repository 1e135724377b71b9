/* libFuzzer target: the parsers of HAProxy Runtime API answers (lb/hapi). The first byte picks the
 * parser; the rest is the answer. Any input gives 0 with a consistent result, or -EPROTO with a
 * message; no crash, no leak. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lb/hapi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(int rc, const char *err)
{
	if (rc != 0 && (rc != -EPROTO || err[0] == '\0' || strchr(err, '\n') != NULL))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	const char *text = (const char *)data + 1;
	size_t len = size - 1;
	char err[256];
	err[0] = '\0';
	switch (data[0] % 3) {
	case 0: {
		struct hapi_stat st;
		int rc = hapi_parse_stat(text, len, "web", &st, err, sizeof err);
		check_err(rc, err);
		if (rc == 0) {
			if (st.n > HAPI_MAX_SERVERS)
				abort();
			for (size_t i = 0; i < st.n; i++)
				if (!hapi_name_ok(st.v[i].name) || strlen(st.v[i].addr) >= HAPI_NAME_MAX ||
				    st.v[i].scur < 0 || st.v[i].qcur < 0 || st.v[i].admin > HAPI_MAINT)
					abort();
		} else if (st.v != NULL || st.n != 0) {
			abort();
		}
		hapi_stat_clear(&st);
		break;
	}
	case 1: {
		struct hapi_info in;
		int rc = hapi_parse_info(text, len, &in, err, sizeof err);
		check_err(rc, err);
		if (rc == 0 && (in.pid < 0 || in.uptime_sec < 0))
			abort();
		break;
	}
	default:
		for (int c = HAPI_CMD_STATE; c <= HAPI_CMD_DEL; c++) {
			err[0] = '\0';
			check_err(hapi_check_reply((enum hapi_cmd)c, text, len, err, sizeof err), err);
		}
		break;
	}
	return 0;
}
