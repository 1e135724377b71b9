/* What the verbs share: option parsing, the command table lookup and usage, API calls with the
 * exit statuses of DESIGN, and following a rollout to its end (apply --wait, undo --wait). */
#include "cli/cmd.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "cli/client.h"
#include "cli/output.h"
#include "core/amount.h"
#include "util/xmalloc.h"

/* ---- options ---- */

/* The index of the option matching arg (up to '=' when eq is set), or -1. */
static int find_opt(const struct cmd_opt *opts, const char *arg, size_t n)
{
	for (int i = 0; opts && opts[i].name && i < CMD_MAX_OPTS; i++) {
		if (strlen(opts[i].name) == n && strncmp(opts[i].name, arg, n) == 0)
			return i;
		if (opts[i].alias && strlen(opts[i].alias) == n && strncmp(opts[i].alias, arg, n) == 0)
			return i;
	}
	return -1;
}

int cmd_args_parse(const struct cmd_opt *opts, int argc, char **argv, struct cmd_args *out)
{
	memset(out, 0, sizeof *out);
	bool only_pos = false;
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (only_pos || arg[0] != '-' || arg[1] == '\0') {
			if (out->npos == CMD_MAX_POS) {
				snprintf(out->err, sizeof out->err, "too many arguments");
				return -EINVAL;
			}
			out->pos[out->npos++] = arg;
			continue;
		}
		if (strcmp(arg, "--") == 0) {
			only_pos = true;
			continue;
		}
		if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
			out->help = true;
			continue;
		}
		const char *eq = NULL;
		size_t n = strlen(arg);
		if (arg[1] == '-') {
			eq = strchr(arg, '=');
			if (eq)
				n = (size_t)(eq - arg);
		} else if (n > 2) {
			n = 2; /* "-ojson" */
			eq = arg + 1;
		}
		int k = find_opt(opts, arg, n);
		if (k < 0) {
			snprintf(out->err, sizeof out->err, "unknown option '%.*s'", (int)n, arg);
			return -EINVAL;
		}
		out->set[k] = true;
		if (!opts[k].has_arg) {
			if (eq) {
				snprintf(out->err, sizeof out->err, "option '%s' takes no value",
					 opts[k].name);
				return -EINVAL;
			}
			continue;
		}
		if (eq) {
			out->val[k] = eq + 1;
		} else if (i + 1 < argc) {
			out->val[k] = argv[++i];
		} else {
			snprintf(out->err, sizeof out->err, "option '%s' needs a value", opts[k].name);
			return -EINVAL;
		}
	}
	return 0;
}

int cmd_take_global(int *argc, char **argv, const char **data)
{
	int j = 1;
	bool stop = false;
	for (int i = 1; i < *argc; i++) {
		const char *a = argv[i];
		if (!stop && strcmp(a, "--") == 0)
			stop = true;
		if (!stop && strcmp(a, "--data") == 0) {
			if (i + 1 >= *argc || argv[i + 1][0] == '\0')
				return -EINVAL;
			*data = argv[++i];
			continue;
		}
		if (!stop && strncmp(a, "--data=", 7) == 0) {
			if (a[7] == '\0')
				return -EINVAL;
			*data = a + 7;
			continue;
		}
		argv[j++] = argv[i];
	}
	*argc = j;
	argv[j] = NULL;
	return 0;
}

const char *cmd_data_dir(const char *flag, const char *env)
{
	if (flag && flag[0])
		return flag;
	if (env && env[0])
		return env;
	return "./.rollout";
}

const struct cmd_entry *cmd_find(const struct cmd_entry *const *table, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(table[i]->name, name) == 0)
			return table[i];
	return NULL;
}

/* Widest "verb usage" that still gets its summary on the same line. */
enum { USAGE_COL_MAX = 44 };

void cmd_print_usage(FILE *f, const struct cmd_entry *const *table, size_t n)
{
	size_t w = 0;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(table[i]->name) + 1 + strlen(table[i]->usage);
		if (l > w && l <= USAGE_COL_MAX)
			w = l;
	}
	fprintf(f, "usage: rollout [--data DIR] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < n; i++) {
		char *u = xasprintf("%s %s", table[i]->name, table[i]->usage);
		if (strlen(u) > w)
			fprintf(f, "  %s\n  %-*s  %s\n", u, (int)w, "", table[i]->summary);
		else
			fprintf(f, "  %-*s  %s\n", (int)w, u, table[i]->summary);
		free(u);
	}
	fprintf(f,
		"\nDATA is --data DIR, else $ROLLOUT_DATA, else ./.rollout.\n"
		"Exit status: 0 done; 1 the rollout failed, was rolled back or aborted; 2 usage or invalid\n"
		"spec; 3 the daemon cannot be reached.\n");
}

int cmd_usage_error(struct cmd_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	fprintf(ctx->err, "rollout: ");
	va_start(ap, fmt);
	vfprintf(ctx->err, fmt, ap);
	va_end(ap);
	if (ctx->entry)
		fprintf(ctx->err, "\nusage: rollout %s %s\n", ctx->entry->name, ctx->entry->usage);
	else
		fprintf(ctx->err, "\n");
	return CMD_EXIT_USAGE;
}

int cmd_parse(struct cmd_ctx *ctx, const struct cmd_opt *opts, int argc, char **argv, struct cmd_args *a,
	      int min_pos, int max_pos)
{
	if (cmd_args_parse(opts, argc, argv, a) != 0)
		return cmd_usage_error(ctx, "%s", a->err);
	if (a->help) {
		fprintf(ctx->out, "usage: rollout %s %s\n  %s\n", ctx->entry->name, ctx->entry->usage,
			ctx->entry->summary);
		return CMD_EXIT_OK;
	}
	if (a->npos < min_pos)
		return cmd_usage_error(ctx, "missing argument");
	if (a->npos > max_pos)
		return cmd_usage_error(ctx, "unexpected argument '%s'", a->pos[max_pos]);
	return -1;
}

int cmd_parse_duration(const char *s, int64_t *ms) { return amount_parse_duration(s, ms); }

int cmd_rollout_exit(const char *state, bool undo)
{
	if (strcmp(state, "complete") == 0)
		return CMD_EXIT_OK;
	if (strcmp(state, "rolled_back") == 0)
		return undo ? CMD_EXIT_OK : CMD_EXIT_FAILED;
	if (strcmp(state, "failed") == 0 || strcmp(state, "aborted") == 0)
		return CMD_EXIT_FAILED;
	return -1;
}

int64_t cmd_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cmd_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- talking to the daemon ---- */

struct client *cmd_client(struct cmd_ctx *ctx)
{
	if (ctx->client == NULL)
		ctx->client = client_new(ctx->sock);
	return ctx->client;
}

void cmd_print_nodaemon(struct cmd_ctx *ctx)
{
	fprintf(ctx->err, "rollout: no daemon answers on %s; start one with: rollout daemon --data %s\n",
		ctx->sock, ctx->data);
}

char *cmd_escape(const char *s)
{
	char *esc = curl_easy_escape(NULL, s, 0);
	if (esc == NULL)
		abort(); /* only on out of memory */
	char *r = xstrdup(esc);
	curl_free(esc);
	return r;
}

char *cmd_service_path(const char *service, const char *suffix)
{
	char *esc = cmd_escape(service);
	char *p = xasprintf("/v1/services/%s%s", esc, suffix ? suffix : "");
	free(esc);
	return p;
}

int cmd_call(struct cmd_ctx *ctx, const char *method, const char *path, json_t *body, json_t **resp,
	     long *status_out)
{
	struct client *c = cmd_client(ctx);
	long status = 0;
	json_t *j = NULL;
	*resp = NULL;
	if (status_out)
		*status_out = 0;
	int rc = client_call(c, method, path, body, &status, &j);
	if (rc == -ECONNREFUSED) {
		cmd_print_nodaemon(ctx);
		return CMD_EXIT_NODAEMON;
	}
	if (rc != 0) {
		/* something answers on the socket but the exchange failed: not "no daemon" */
		fprintf(ctx->err, "rollout: %s %s: %s; the daemon on %s did not answer, try again\n", method,
			path, client_error(c), ctx->sock);
		return CMD_EXIT_NODAEMON;
	}
	if (status_out)
		*status_out = status;
	if (status == 503 && json_is_true(json_object_get(j, "busy"))) { /* at its connection cap */
		fprintf(ctx->err, "rollout: %s; try again\n",
			output_jstr(j, "error", "the daemon is too busy to answer"));
		json_decref(j);
		return CMD_EXIT_NODAEMON;
	}
	if (status >= 200 && status < 300) {
		if (j == NULL) {
			fprintf(ctx->err, "rollout: %s %s: the daemon's reply is not JSON\n", method, path);
			return CMD_EXIT_FAILED;
		}
		*resp = j;
		return CMD_EXIT_OK;
	}
	const char *msg = output_jstr(j, "error", NULL);
	if (msg)
		fprintf(ctx->err, "rollout: %s\n", msg);
	else
		fprintf(ctx->err, "rollout: %s %s: HTTP %ld\n", method, path, status);
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(j, "errors"), i, e)
	{
		if (json_is_string(e))
			fprintf(ctx->err, "%s\n", json_string_value(e));
	}
	json_decref(j);
	return status >= 500 ? CMD_EXIT_FAILED : CMD_EXIT_USAGE;
}

/* Our rollout `id` when the service has moved on to another: from the history. New reference
 * or NULL. */
static json_t *find_rollout(struct cmd_ctx *ctx, const char *service, int64_t id, int *rc)
{
	char *path = cmd_service_path(service, "/rollouts");
	json_t *resp = NULL, *r, *found = NULL;
	size_t i;
	*rc = cmd_call(ctx, "GET", path, NULL, &resp, NULL);
	free(path);
	json_array_foreach(json_object_get(resp, "rollouts"), i, r)
	{
		if (output_jint(r, "id", -1) == id) {
			found = json_incref(r);
			break;
		}
	}
	json_decref(resp);
	return found;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int cmd_follow(struct cmd_ctx *ctx, const char *service, int64_t id, unsigned flags, int64_t timeout_ms)
{
	bool undo = flags & CMD_FOLLOW_UNDO;
	char *path = cmd_service_path(service, NULL);
	char line[512], key[512] = "", final[512], waiting[512] = "";
	int64_t t0 = cmd_mono_ms(), last_batch = -1;
	bool live = false; /* a live line is on screen without its newline */
	int rc;
	for (;;) {
		json_t *status = NULL;
		rc = cmd_call(ctx, "GET", path, NULL, &status, NULL);
		if (rc != CMD_EXIT_OK)
			break;
		json_t *ro = json_incref(json_object_get(status, "rollout"));
		if (output_jint(ro, "id", -1) != id) {
			json_decref(ro);
			ro = find_rollout(ctx, service, id, &rc);
			if (ro == NULL) {
				json_decref(status);
				if (rc == CMD_EXIT_OK) {
					fprintf(ctx->err, "rollout: rollout %" PRId64 " of %s is gone\n", id,
						service);
					rc = CMD_EXIT_FAILED;
				}
				break;
			}
		}
		rc = cmd_rollout_exit(output_jstr(ro, "state", ""), undo);
		if (rc >= 0) {
			if (live)
				fputc('\n', ctx->out);
			fprintf(ctx->out, "%s\n", output_final_line(status, ro, final, sizeof final));
			json_decref(ro);
			json_decref(status);
			break;
		}
		int64_t batch = output_jint(ro, "batch", 0);
		if (!(flags & CMD_FOLLOW_THROUGH_PAUSES) && json_is_true(json_object_get(ro, "needs_person"))) {
			if (live)
				fputc('\n', ctx->out);
			fprintf(ctx->out, "rollout %" PRId64 " paused (%s) at batch %" PRId64 "/%" PRId64 ": continue with `rollout %s %s`\n",
				id, output_jstr(ro, "pause", "?"), batch, output_jint(ro, "batches", 1),
				output_jstr(ro, "continue_with", "promote"), service);
			json_decref(ro);
			json_decref(status);
			rc = CMD_EXIT_PAUSED;
			break;
		}
		json_decref(ro);
		if (ctx->tty) {
			output_progress_line(status, true, line, sizeof line);
			if (live && batch != last_batch)
				fputc('\n', ctx->out);
			fprintf(ctx->out, "\r\033[K%s", line);
			live = true;
		} else {
			output_progress_line(status, false, line, sizeof line);
			if (strcmp(line, key) != 0) {
				snprintf(key, sizeof key, "%s", line);
				fprintf(ctx->out, "%s\n",
					output_progress_line(status, true, line, sizeof line));
			}
		}
		fflush(ctx->out);
		last_batch = batch;
		snprintf(waiting, sizeof waiting, "%s", output_jstr(status, "waiting_for", ""));
		json_decref(status);
		if (timeout_ms > 0 && cmd_mono_ms() - t0 >= timeout_ms) {
			char d[32];
			if (live)
				fputc('\n', ctx->out);
			fprintf(ctx->err,
				"rollout: timed out waiting after %s; rollout %" PRId64
				" goes on (see: rollout status %s)%s%s\n",
				output_duration(timeout_ms, d, sizeof d), id, service,
				waiting[0] ? "; it waits for " : "", waiting);
			rc = CMD_EXIT_FAILED;
			break;
		}
		sleep_ms(200);
	}
	fflush(ctx->out);
	free(path);
	return rc;
}

int cmd_service_action(struct cmd_ctx *ctx, int argc, char **argv, const char *action)
{
	struct cmd_args a;
	int rc = cmd_parse(ctx, NULL, argc, argv, &a, 1, 1);
	if (rc >= 0)
		return rc;
	char *path = cmd_service_path(a.pos[0], NULL);
	char *full = xasprintf("%s/%s", path, action);
	json_t *status = NULL;
	rc = cmd_call(ctx, "POST", full, NULL, &status, NULL);
	if (rc == CMD_EXIT_OK) {
		const json_t *ro = json_object_get(status, "rollout");
		const char *pause = output_jstr(ro, "pause", NULL);
		fprintf(ctx->out, "%s: rollout %" PRId64 " %s%s%s%s\n", a.pos[0], output_jint(ro, "id", 0),
			output_jstr(ro, "state", "?"), pause ? " (" : "", pause ? pause : "",
			pause ? ")" : "");
	}
	json_decref(status);
	free(full);
	free(path);
	return rc;
}

int cmd_wait_timeout(struct cmd_ctx *ctx, bool wait, const char *timeout, int64_t *timeout_ms)
{
	*timeout_ms = 30 * 60 * 1000;
	if (timeout != NULL && (cmd_parse_duration(timeout, timeout_ms) != 0 || *timeout_ms <= 0))
		return cmd_usage_error(ctx, "--timeout: '%s' is not a duration (like 90s, 30m)", timeout);
	if (timeout != NULL && !wait)
		return cmd_usage_error(ctx, "--timeout needs --wait");
	return -1;
}
