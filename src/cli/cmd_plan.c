/* `rollout plan FILE [-o json]`: the batches and waves a rollout of a spec
 * would take, computed locally by the real engine (no daemon needed); changes
 * nothing. */
#include <string.h>

#include "cli/cmd.h"
#include "cli/output.h"
#include "core/plan.h"
#include "spec/spec_yaml.h"

enum { OPT_OUTPUT };
static const struct cmd_opt opts[] = {
    [OPT_OUTPUT] = {"--output", "-o", true},
    {NULL},
};

static int plan_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct cmd_args a;
	int rc = cmd_parse(ctx, opts, argc, argv, &a, 1, 1);
	if (rc >= 0)
		return rc;
	bool json = false;
	if (a.set[OPT_OUTPUT]) {
		if (strcmp(a.val[OPT_OUTPUT], "json") == 0)
			json = true;
		else if (strcmp(a.val[OPT_OUTPUT], "text") != 0)
			return cmd_usage_error(ctx, "-o: '%s' is not json or text", a.val[OPT_OUTPUT]);
	}
	struct spec spec;
	struct spec_errors errs = {0};
	if (spec_parse_file(a.pos[0], &spec, &errs) != 0) {
		for (size_t i = 0; i < errs.n; i++)
			fprintf(ctx->err, "%s\n", errs.v[i]);
		if (errs.n == 0)
			fprintf(ctx->err, "rollout: %s: invalid spec\n", a.pos[0]);
		spec_errors_clear(&errs);
		spec_clear(&spec);
		return CMD_EXIT_USAGE;
	}
	spec_errors_clear(&errs);
	struct plan p;
	memset(&p, 0, sizeof p);
	rc = plan_build(&spec, &p);
	if (rc != 0) {
		fprintf(ctx->err, "rollout: %s: the planner did not converge (error %d); this is a bug\n",
			a.pos[0], rc);
		spec_clear(&spec);
		return CMD_EXIT_FAILED;
	}
	if (json) {
		json_t *j = output_plan_json(spec.service, &p);
		json_dumpf(j, ctx->out, JSON_INDENT(2));
		fputc('\n', ctx->out);
		json_decref(j);
	} else {
		output_plan_text(ctx->out, spec.service, &p);
	}
	plan_clear(&p);
	spec_clear(&spec);
	return CMD_EXIT_OK;
}

const struct cmd_entry cmd_plan_entry = {
    .name = "plan",
    .usage = "FILE [-o json]",
    .summary = "print the batches a rollout would take",
    .exec = plan_exec,
};
