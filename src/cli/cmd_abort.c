/* `rollout abort SERVICE`: stop the rollout and go back to the last stable revision. */
#include "cli/cmd.h"

static int abort_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	return cmd_service_action(ctx, argc, argv, "abort");
}

const struct cmd_entry cmd_abort_entry = {
    .name = "abort",
    .usage = "SERVICE",
    .summary = "stop the rollout, go back to the stable revision",
    .exec = abort_exec,
};
