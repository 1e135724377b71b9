/* `rollout version`: prints "rollout <version> (<git describe, or dev>)". */
#include "cli/cmd.h"

/* The build may pass -DROLLOUT_GIT="$(git describe --always --dirty)". */
#ifndef ROLLOUT_GIT
#define ROLLOUT_GIT "dev"
#endif

static int version_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct cmd_args a;
	int rc = cmd_parse(ctx, NULL, argc, argv, &a, 0, 0);
	if (rc >= 0)
		return rc;
	fprintf(ctx->out, "rollout %s (%s)\n", ROLLOUT_VERSION, ROLLOUT_GIT);
	return CMD_EXIT_OK;
}

const struct cmd_entry cmd_version_entry = {
    .name = "version",
    .usage = "",
    .summary = "print the version",
    .exec = version_exec,
};
