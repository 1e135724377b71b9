/* `rollout status [SERVICE] [--watch] [-o json]`: every service in a table, or one service in
 * detail; --watch redraws every second until interrupted. */
#include <string.h>
#include <time.h>

#include "cli/cmd.h"
#include "cli/output.h"
#include "util/xmalloc.h"

enum { OPT_WATCH, OPT_OUTPUT };
static const struct cmd_opt opts[] = {
    [OPT_WATCH] = {"--watch", "-w", false},
    [OPT_OUTPUT] = {"--output", "-o", true},
    {NULL},
};

/* The reply without what changes on its own every poll (elapsed time), to tell whether
 * anything happened. New reference. */
static json_t *stable_view(const json_t *resp)
{
	json_t *c = json_deep_copy(resp);
	json_t *list = json_object_get(c, "services");
	size_t i;
	json_t *s;
	json_object_del(json_object_get(c, "rollout"), "elapsed_ms");
	json_array_foreach(list, i, s) { json_object_del(json_object_get(s, "rollout"), "elapsed_ms"); }
	return c;
}

static void render(struct cmd_ctx *ctx, const json_t *resp, bool one, bool json)
{
	if (json) {
		json_dumpf(resp, ctx->out, ctx->tty ? JSON_INDENT(2) : JSON_COMPACT);
		fputc('\n', ctx->out);
	} else if (one) {
		output_status(ctx->out, resp, cmd_now_ms());
	} else {
		output_store_error(ctx->out, resp, cmd_now_ms());
		output_services(ctx->out, json_object_get(resp, "services"));
		output_unloaded(ctx->out, json_object_get(resp, "unloaded"));
	}
	fflush(ctx->out);
}

static int status_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct cmd_args a;
	int rc = cmd_parse(ctx, opts, argc, argv, &a, 0, 1);
	if (rc >= 0)
		return rc;
	bool json = false;
	if (a.set[OPT_OUTPUT]) {
		if (strcmp(a.val[OPT_OUTPUT], "json") == 0)
			json = true;
		else if (strcmp(a.val[OPT_OUTPUT], "text") != 0)
			return cmd_usage_error(ctx, "-o: '%s' is not json or text", a.val[OPT_OUTPUT]);
	}
	bool one = a.npos == 1;
	char *path = one ? cmd_service_path(a.pos[0], NULL) : xstrdup("/v1/services");
	json_t *last = NULL;
	for (;;) {
		json_t *resp = NULL;
		rc = cmd_call(ctx, "GET", path, NULL, &resp, NULL);
		if (rc != CMD_EXIT_OK)
			break;
		if (!a.set[OPT_WATCH]) {
			render(ctx, resp, one, json);
			json_decref(resp);
			break;
		}
		if (ctx->tty) {
			fprintf(ctx->out, "\033[H\033[2J");
			render(ctx, resp, one, json);
		} else {
			/* not a terminal: print only when something changed */
			json_t *view = stable_view(resp);
			if (last == NULL || !json_equal(last, view)) {
				if (last != NULL && !json)
					fputc('\n', ctx->out);
				render(ctx, resp, one, json);
			}
			json_decref(last);
			last = view;
		}
		json_decref(resp);
		struct timespec ts = {.tv_sec = 1};
		nanosleep(&ts, NULL);
	}
	json_decref(last);
	free(path);
	return rc;
}

const struct cmd_entry cmd_status_entry = {
    .name = "status",
    .usage = "[SERVICE] [--watch] [-o json]",
    .summary = "show services, or one service in detail",
    .exec = status_exec,
};
