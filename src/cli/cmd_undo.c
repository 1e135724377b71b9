/* `rollout undo SERVICE [--to-revision N [--force]] [--wait] [--timeout D]`: goes back to the last
 * stable revision (or revision N; --force: also one that never became stable); --wait follows that
 * rollout to its end. */
#include <inttypes.h>
#include <stdlib.h>

#include "cli/cmd.h"
#include "cli/output.h"

enum { OPT_TO, OPT_FORCE, OPT_WAIT, OPT_TIMEOUT };
static const struct cmd_opt opts[] = {
    [OPT_TO] = {"--to-revision", NULL, true},
    [OPT_FORCE] = {"--force", NULL, false},
    [OPT_WAIT] = {"--wait", NULL, false},
    [OPT_TIMEOUT] = {"--timeout", NULL, true},
    {NULL},
};

static int undo_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct cmd_args a;
	int rc = cmd_parse(ctx, opts, argc, argv, &a, 1, 1);
	if (rc >= 0)
		return rc;
	int64_t timeout;
	if ((rc = cmd_wait_timeout(ctx, a.set[OPT_WAIT], a.set[OPT_TIMEOUT] ? a.val[OPT_TIMEOUT] : NULL, &timeout)) >= 0)
		return rc;
	if (a.set[OPT_FORCE] && !a.set[OPT_TO])
		return cmd_usage_error(
		    ctx, "--force goes with --to-revision N (the last stable revision needs none)");
	json_t *body = json_object();
	if (a.set[OPT_TO]) {
		char *end;
		long rev = strtol(a.val[OPT_TO], &end, 10);
		if (*a.val[OPT_TO] == '\0' || *end != '\0' || rev < 1 || rev > 1000000000) {
			json_decref(body);
			return cmd_usage_error(ctx, "--to-revision: '%s' is not a revision number",
					       a.val[OPT_TO]);
		}
		json_object_set_new(body, "revision", json_integer(rev));
		if (a.set[OPT_FORCE])
			json_object_set_new(body, "force", json_true());
	}
	const char *service = a.pos[0];
	char *path = cmd_service_path(service, "/undo");
	json_t *status = NULL;
	rc = cmd_call(ctx, "POST", path, body, &status, NULL);
	free(path);
	json_decref(body);
	if (rc != CMD_EXIT_OK)
		return rc;
	const json_t *ro = json_object_get(status, "rollout");
	int64_t id = output_jint(ro, "id", 0);
	fprintf(ctx->out, "%s: rollout %" PRId64 " (%s) to revision %" PRId64 ": %s\n", service, id,
		output_jstr(ro, "kind", "undo"), output_jint(ro, "to_revision", 0),
		output_jstr(ro, "state", "?"));
	fflush(ctx->out);
	if (a.set[OPT_WAIT] && id > 0)
		rc = cmd_follow(ctx, service, id, CMD_FOLLOW_UNDO, timeout);
	json_decref(status);
	return rc;
}

const struct cmd_entry cmd_undo_entry = {
    .name = "undo",
    .usage = "SERVICE [--to-revision N [--force]] [--wait] [--timeout D]",
    .summary = "go back to the last stable revision (or N)",
    .exec = undo_exec,
};
