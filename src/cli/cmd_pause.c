/* `rollout pause SERVICE`: pause the rollout of SERVICE where it stands (resume continues). */
#include "cli/cmd.h"

static int pause_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	return cmd_service_action(ctx, argc, argv, "pause");
}

const struct cmd_entry cmd_pause_entry = {
    .name = "pause",
    .usage = "SERVICE",
    .summary = "hold the rollout where it stands",
    .exec = pause_exec,
};
