/* `rollout proxy [--admin PATH] [--max-conns N] [--head-budget BYTES]`: runs the data plane
 * (src/proxy) in the foreground. The daemon normally starts it detached with --admin DATA/proxy.sock. */
#include "cli/cmd.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "proxy/proxy.h"
#include "util/xmalloc.h"

/* A positive count in s up to max, in *out; -EINVAL otherwise. */
static int parse_count(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v == 0 || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int proxy_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct cmd_opt opts[] = {{"--admin", NULL, true},
					      {"--max-conns", NULL, true},
					      {"--head-budget", NULL, true},
					      {NULL, NULL, false}};
	struct cmd_args a;
	int rc = cmd_parse(ctx, opts, argc, argv, &a, 0, 0);
	if (rc >= 0)
		return rc;
	struct proxy_limits lim = {PROXY_MAX_CONNS, PROXY_HEAD_BUDGET};
	if (a.set[1] && parse_count(a.val[1], 1000000, &lim.max_conns) != 0)
		return cmd_usage_error(ctx, "--max-conns takes a count of client connections from 1 to 1000000 "
					    "(default %d)", PROXY_MAX_CONNS);
	if (a.set[2] && (parse_count(a.val[2], (uint64_t)1 << 40, &lim.head_budget) != 0 ||
			 lim.head_budget < PROXY_HEAD_BUDGET_MIN))
		return cmd_usage_error(ctx, "--head-budget takes bytes from %u to 2^40 (default %u)",
				       PROXY_HEAD_BUDGET_MIN, PROXY_HEAD_BUDGET);
	char *path = a.set[0] ? xstrdup(a.val[0]) : xasprintf("%s/proxy.sock", ctx->data);
	rc = proxy_main(path, &lim);
	free(path);
	return rc == 0 ? CMD_EXIT_OK : CMD_EXIT_FAILED;
}

const struct cmd_entry cmd_proxy_entry = {
	.name = "proxy",
	.usage = "[--admin PATH] [--max-conns N] [--head-budget BYTES]",
	.summary = "run the data plane (HTTP/TCP reverse proxy); normally started by the daemon",
	.exec = proxy_exec,
};
