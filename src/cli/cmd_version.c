/* `rollout version [-o json]`: "rollout <version> (commit <git describe>)", or
 * {"version": ..., "commit": ...}. */
#include <string.h>
#include <jansson.h>
#include "cli/cmd.h"

/* The build passes -DROLLOUT_GIT="$(git describe --always --dirty)"; "unknown" outside git. */
#ifndef ROLLOUT_GIT
#define ROLLOUT_GIT "unknown"
#endif

enum { OPT_OUTPUT };
static const struct cmd_opt opts[] = {
    [OPT_OUTPUT] = {"--output", "-o", true},
    {NULL, NULL, false},
};

static int version_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct cmd_args a;
	int rc = cmd_parse(ctx, opts, argc, argv, &a, 0, 0);
	if (rc >= 0)
		return rc;
	bool json = a.set[OPT_OUTPUT] && strcmp(a.val[OPT_OUTPUT], "json") == 0;
	if (a.set[OPT_OUTPUT] && !json && strcmp(a.val[OPT_OUTPUT], "text") != 0)
		return cmd_usage_error(ctx, "-o: '%s' is not json or text", a.val[OPT_OUTPUT]);
	if (json) {
		json_t *j = json_pack("{s:s, s:s}", "version", ROLLOUT_VERSION, "commit", ROLLOUT_GIT);
		json_dumpf(j, ctx->out, JSON_INDENT(2));
		fputc('\n', ctx->out);
		json_decref(j);
	} else {
		fprintf(ctx->out, "rollout %s (commit %s)\n", ROLLOUT_VERSION, ROLLOUT_GIT);
	}
	return CMD_EXIT_OK;
}

const struct cmd_entry cmd_version_entry = {
    .name = "version",
    .usage = "[-o json]",
    .summary = "print the version and the commit it was built from",
    .exec = version_exec,
};
