/* `rollout proxy [--admin PATH]`: runs the data plane (src/proxy) in the foreground. The daemon
 * normally starts it detached with --admin DATA/proxy.sock. */
#include "cli/cmd.h"

#include <stdlib.h>

#include "proxy/proxy.h"
#include "util/xmalloc.h"

static int proxy_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct cmd_opt opts[] = {{"--admin", NULL, true}, {NULL, NULL, false}};
	struct cmd_args a;
	int rc = cmd_parse(ctx, opts, argc, argv, &a, 0, 0);
	if (rc >= 0)
		return rc;
	char *path = a.set[0] ? xstrdup(a.val[0]) : xasprintf("%s/proxy.sock", ctx->data);
	rc = proxy_main(path);
	free(path);
	return rc == 0 ? CMD_EXIT_OK : CMD_EXIT_FAILED;
}

const struct cmd_entry cmd_proxy_entry = {
	.name = "proxy",
	.usage = "[--admin PATH]",
	.summary = "run the data plane (HTTP/TCP reverse proxy); normally started by the daemon",
	.exec = proxy_exec,
};
