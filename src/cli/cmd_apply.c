/* `rollout apply FILE [--wait [--through-pauses]] [--timeout D]`: submits a spec to the daemon;
 * --wait follows the rollout it started to its end, or to a pause that waits for a person. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "cli/output.h"
#include "spec/spec_yaml.h"
#include "util/xmalloc.h"

enum { OPT_WAIT, OPT_TIMEOUT, OPT_THROUGH };
static const struct cmd_opt opts[] = {
    [OPT_WAIT] = {"--wait", NULL, false},
    [OPT_TIMEOUT] = {"--timeout", NULL, true},
    [OPT_THROUGH] = {"--through-pauses", NULL, false},
    {NULL},
};

/* Reads at most SPEC_PARSE_MAX_BYTES of path into a new NUL-terminated string (*out, caller
 * frees). Returns 0, -EFBIG for a larger file, or a negative errno. */
static int read_spec(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return -errno;
	char *buf = xmalloc(SPEC_PARSE_MAX_BYTES + 1);
	size_t n = fread(buf, 1, SPEC_PARSE_MAX_BYTES + 1, f);
	int err = ferror(f) ? -EIO : 0;
	fclose(f);
	if (err == 0 && n > SPEC_PARSE_MAX_BYTES)
		err = -EFBIG;
	if (err != 0) {
		free(buf);
		return err;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* Whether rollout id is the service's current one and not over: an unchanged apply reports the
 * last rollout, which --wait follows only while it is still going. *rc: the exit status of the
 * status call. */
static bool rollout_live(struct cmd_ctx *ctx, const char *service, int64_t id, int *rc)
{
	char *path = cmd_service_path(service, NULL);
	json_t *status = NULL;
	bool live = false;
	*rc = cmd_call(ctx, "GET", path, NULL, &status, NULL);
	if (*rc == CMD_EXIT_OK) {
		const json_t *ro = json_object_get(status, "rollout");
		live = output_jint(ro, "id", 0) == id &&
		       cmd_rollout_exit(output_jstr(ro, "state", ""), false) < 0;
	}
	json_decref(status);
	free(path);
	return live;
}

static int apply_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct cmd_args a;
	int rc = cmd_parse(ctx, opts, argc, argv, &a, 1, 1);
	if (rc >= 0)
		return rc;
	int64_t timeout;
	if ((rc = cmd_wait_timeout(ctx, a.set[OPT_WAIT], a.set[OPT_TIMEOUT] ? a.val[OPT_TIMEOUT] : NULL, &timeout)) >= 0)
		return rc;
	if (a.set[OPT_THROUGH] && !a.set[OPT_WAIT])
		return cmd_usage_error(ctx, "--through-pauses goes with --wait");

	const char *file = a.pos[0];
	char *text = NULL;
	size_t len = 0;
	rc = read_spec(file, &text, &len);
	if (rc == -EFBIG) {
		fprintf(ctx->err, "rollout: %s: larger than %d bytes\n", file, SPEC_PARSE_MAX_BYTES);
		return CMD_EXIT_USAGE;
	}
	if (rc != 0) {
		fprintf(ctx->err, "rollout: %s: %s\n", file, strerror(-rc));
		return CMD_EXIT_USAGE;
	}
	json_t *spec_text = json_stringn(text, len);
	free(text);
	if (spec_text == NULL) {
		fprintf(ctx->err, "rollout: %s: not UTF-8 text\n", file);
		return CMD_EXIT_USAGE;
	}
	json_t *body = json_pack("{s:s, s:o}", "file", file, "spec", spec_text);
	json_t *resp = NULL;
	rc = cmd_call(ctx, "POST", "/v1/apply", body, &resp, NULL);
	json_decref(body);
	if (rc != CMD_EXIT_OK)
		return rc;

	const char *service = output_jstr(resp, "service", "?");
	const char *msg = output_jstr(resp, "message", "");
	int64_t id = output_jint(resp, "rollout", 0);
	int64_t rev = output_jint(resp, "revision", 0);
	bool changed = json_is_true(json_object_get(resp, "changed"));
	if (!msg[0])
		msg = changed ? "applied" : "unchanged";
	if (id > 0 && changed)
		fprintf(ctx->out, "%s: %s (revision %" PRId64 ", rollout %" PRId64 ")\n", service, msg, rev,
			id);
	else
		fprintf(ctx->out, "%s: %s (revision %" PRId64 ")\n", service, msg, rev);
	fflush(ctx->out);
	if (a.set[OPT_WAIT] && id > 0 && (changed || rollout_live(ctx, service, id, &rc)))
		rc = cmd_follow(ctx, service, id, a.set[OPT_THROUGH] ? CMD_FOLLOW_THROUGH_PAUSES : 0, timeout);
	json_decref(resp);
	return rc;
}

const struct cmd_entry cmd_apply_entry = {
    .name = "apply",
    .usage = "FILE [--wait [--through-pauses]] [--timeout D]",
    .summary = "submit a spec; --wait follows its rollout",
    .exec = apply_exec,
};
