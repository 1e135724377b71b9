/* A stand-in for `rollout daemon` until src/cli/cmd_daemon.c exists. It lives in librollout.a, not
 * in main.c: a weak definition in main.o would stop the linker from ever taking the real one out
 * of the archive; here the real cmd_daemon.o sorts first in the archive and wins. */
#include "cli/cmd.h"

static int daemon_fallback_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(ctx->err, "rollout: daemon: not built\n");
	return CMD_EXIT_USAGE;
}

__attribute__((weak)) const struct cmd_entry cmd_daemon_entry = {
    .name = "daemon",
    .usage = "[--data DIR] [--api ADDR]",
    .summary = "run the control plane (not built yet)",
    .exec = daemon_fallback_exec,
};
