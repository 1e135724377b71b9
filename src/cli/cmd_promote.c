/* `rollout promote SERVICE`: continue a rollout paused for a canary, a timed pause or inconclusive analysis.
 */
#include "cli/cmd.h"

static int promote_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	return cmd_service_action(ctx, argc, argv, "promote");
}

const struct cmd_entry cmd_promote_entry = {
    .name = "promote",
    .usage = "SERVICE",
    .summary = "continue after a canary, timed or analysis pause",
    .exec = promote_exec,
};
