/* `rollout resume SERVICE`: continue a rollout paused with pause. */
#include "cli/cmd.h"

static int resume_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	return cmd_service_action(ctx, argc, argv, "resume");
}

const struct cmd_entry cmd_resume_entry = {
    .name = "resume",
    .usage = "SERVICE",
    .summary = "continue after pause",
    .exec = resume_exec,
};
