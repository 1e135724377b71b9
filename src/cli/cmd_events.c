/* `rollout events SERVICE [--follow]`: the service's events, oldest first; --follow then streams
 * new ones (server-sent events) until interrupted. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli/client.h"
#include "cli/cmd.h"
#include "cli/output.h"
#include "util/xmalloc.h"

enum { OPT_FOLLOW, OPT_OUTPUT };
enum { EVENTS_PAGE = 200 };
static const struct cmd_opt opts[] = {
    [OPT_FOLLOW] = {"--follow", "-f", false},
    [OPT_OUTPUT] = {"--output", "-o", true},
    {NULL},
};

struct printer {
	struct cmd_ctx *ctx;
	bool json;
	int64_t last_id;
};

static void print_event(struct printer *pr, const json_t *ev)
{
	int64_t id = output_jint(ev, "id", 0);
	if (id > 0 && id <= pr->last_id)
		return; /* already shown */
	if (id > pr->last_id)
		pr->last_id = id;
	if (pr->json) {
		json_dumpf(ev, pr->ctx->out, JSON_COMPACT);
		fputc('\n', pr->ctx->out);
	} else {
		char line[1024];
		fprintf(pr->ctx->out, "%s\n", output_event_line(ev, line, sizeof line));
	}
}

static int by_id(const void *a, const void *b)
{
	int64_t x = output_jint(*(json_t *const *)a, "id", 0), y = output_jint(*(json_t *const *)b, "id", 0);
	return (x > y) - (x < y);
}

/* Prints a page of events in id order. Returns how many the page held. */
static size_t print_page(struct printer *pr, const json_t *list)
{
	size_t n = json_array_size(list);
	json_t **v = xcalloc(n ? n : 1, sizeof *v);
	for (size_t i = 0; i < n; i++)
		v[i] = json_array_get(list, i);
	qsort(v, n, sizeof *v, by_id);
	for (size_t i = 0; i < n; i++)
		print_event(pr, v[i]);
	free(v);
	return n;
}

static int on_sse(void *arg, const struct client_sse_event *ev)
{
	struct printer *pr = arg;
	json_t *j = json_loads(ev->data, 0, NULL);
	if (json_is_object(j)) {
		print_event(pr, j);
		fflush(pr->ctx->out);
	}
	json_decref(j);
	return 0;
}

static int events_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct cmd_args a;
	int rc = cmd_parse(ctx, opts, argc, argv, &a, 1, 1);
	if (rc >= 0)
		return rc;
	struct printer pr = {.ctx = ctx};
	pr.json = a.set[OPT_OUTPUT] && strcmp(a.val[OPT_OUTPUT], "json") == 0;
	if (a.set[OPT_OUTPUT] && !pr.json && strcmp(a.val[OPT_OUTPUT], "text") != 0)
		return cmd_usage_error(ctx, "-o: '%s' is not json or text", a.val[OPT_OUTPUT]);
	const char *service = a.pos[0];
	/* page through the history, EVENTS_PAGE at a time, oldest first */
	char *base = cmd_service_path(service, "/events");
	size_t n;
	do {
		char *path = xasprintf("%s?after=%" PRId64 "&limit=%d", base, pr.last_id, EVENTS_PAGE);
		json_t *resp = NULL;
		rc = cmd_call(ctx, "GET", path, NULL, &resp, NULL);
		free(path);
		if (rc != CMD_EXIT_OK)
			break;
		int64_t before = pr.last_id;
		n = print_page(&pr, json_object_get(resp, "events"));
		json_decref(resp);
		if (pr.last_id == before)
			break; /* no progress: do not loop on a server that ignores after */
	} while (n == EVENTS_PAGE);
	free(base);
	fflush(ctx->out);
	if (rc != CMD_EXIT_OK)
		return rc;
	if (!a.set[OPT_FOLLOW])
		return CMD_EXIT_OK;

	char *esc = cmd_escape(service);
	char *spath = xasprintf("/v1/events?service=%s&after=%" PRId64, esc, pr.last_id);
	free(esc);
	long status = 0;
	rc = client_stream(cmd_client(ctx), spath, &status, on_sse, &pr);
	free(spath);
	if (rc == -ECONNREFUSED) {
		cmd_print_nodaemon(ctx);
		return CMD_EXIT_NODAEMON;
	}
	if (rc == -EPROTO) {
		json_t *err = json_loads(client_error(cmd_client(ctx)), 0, NULL);
		fprintf(ctx->err, "rollout: %s\n", output_jstr(err, "error", "the event stream was refused"));
		json_decref(err);
		return status >= 500 ? CMD_EXIT_FAILED : CMD_EXIT_USAGE;
	}
	fprintf(ctx->err, "rollout: the event stream ended%s%s\n", rc ? ": " : "",
		rc ? client_error(cmd_client(ctx)) : "");
	return CMD_EXIT_NODAEMON;
}

const struct cmd_entry cmd_events_entry = {
    .name = "events",
    .usage = "SERVICE [--follow] [-o json]",
    .summary = "print a service's events; --follow streams",
    .exec = events_exec,
};
