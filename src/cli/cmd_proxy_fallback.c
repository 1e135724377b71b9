/* A stand-in for `rollout proxy` while src/cli/cmd_proxy.c is missing. It lives in librollout.a,
 * not in main.c: a weak definition in main.o would stop the linker from ever taking the real one
 * out of the archive; here the real cmd_proxy.o sorts first in the archive and wins. */
#include "cli/cmd.h"

static int proxy_fallback_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(ctx->err, "rollout: proxy: not built\n");
	return CMD_EXIT_USAGE;
}

__attribute__((weak)) const struct cmd_entry cmd_proxy_entry = {
    .name = "proxy",
    .usage = "[--admin PATH]",
    .summary = "run the data plane (not built)",
    .exec = proxy_fallback_exec,
};
