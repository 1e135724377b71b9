/* `rollout history SERVICE`: the service's rollouts, newest first, with revision and version. */
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "cli/output.h"

enum { OPT_OUTPUT };
static const struct cmd_opt opts[] = {
    [OPT_OUTPUT] = {"--output", "-o", true},
    {NULL},
};

static int history_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct cmd_args a;
	int rc = cmd_parse(ctx, opts, argc, argv, &a, 1, 1);
	if (rc >= 0)
		return rc;
	bool json = a.set[OPT_OUTPUT] && strcmp(a.val[OPT_OUTPUT], "json") == 0;
	if (a.set[OPT_OUTPUT] && !json && strcmp(a.val[OPT_OUTPUT], "text") != 0)
		return cmd_usage_error(ctx, "-o: '%s' is not json or text", a.val[OPT_OUTPUT]);
	char *p1 = cmd_service_path(a.pos[0], "/rollouts");
	char *p2 = cmd_service_path(a.pos[0], "/revisions");
	json_t *rollouts = NULL, *revisions = NULL;
	rc = cmd_call(ctx, "GET", p1, NULL, &rollouts, NULL);
	if (rc == CMD_EXIT_OK)
		rc = cmd_call(ctx, "GET", p2, NULL, &revisions, NULL);
	if (rc == CMD_EXIT_OK && json) {
		json_t *j = json_pack("{s:O, s:O}", "rollouts", json_object_get(rollouts, "rollouts"),
				      "revisions", json_object_get(revisions, "revisions"));
		if (j == NULL)
			j = json_object();
		json_dumpf(j, ctx->out, JSON_INDENT(2));
		fputc('\n', ctx->out);
		json_decref(j);
	} else if (rc == CMD_EXIT_OK) {
		output_history(ctx->out, json_object_get(rollouts, "rollouts"),
			       json_object_get(revisions, "revisions"), cmd_now_ms());
	}
	json_decref(rollouts);
	json_decref(revisions);
	free(p1);
	free(p2);
	return rc;
}

const struct cmd_entry cmd_history_entry = {
    .name = "history",
    .usage = "SERVICE [-o json]",
    .summary = "list a service's rollouts, newest first",
    .exec = history_exec,
};
