/* The CLI's command table: one cmd_<verb>.c per verb exports a struct cmd_entry; main.c looks the
 * verb up and builds usage text from the table. Shared helpers for verbs: options, API calls. */
#ifndef ROLLOUT_CLI_CMD_H
#define ROLLOUT_CLI_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#define ROLLOUT_VERSION "0.1.0"

/* Exit statuses (DESIGN "CLI"). */
enum {
	CMD_EXIT_OK = 0,       /* done */
	CMD_EXIT_FAILED = 1,   /* the rollout failed, was rolled back or aborted */
	CMD_EXIT_USAGE = 2,    /* usage, invalid spec, or a request the daemon refused (4xx) */
	CMD_EXIT_NODAEMON = 3, /* the daemon cannot be reached */
	CMD_EXIT_PAUSED = 4,   /* --wait: the rollout paused for a person (promote or resume) */
};

struct client;
struct cmd_entry;

/* What every verb gets: where the data directory is, where to write, whether stdout is a
 * terminal. The client is made on first use by cmd_client() and freed by main. */
struct cmd_ctx {
	const char *data; /* DATA: --data, else $ROLLOUT_DATA, else ./.rollout */
	char *sock;	  /* DATA/rollout.sock (owned) */
	FILE *out, *err;
	bool tty;		       /* out is a terminal: live redraws */
	const struct cmd_entry *entry; /* the verb being run, for its usage line */
	struct client *client;	       /* lazily made; owned */
};

struct cmd_entry {
	const char *name;
	const char *usage;   /* arguments after the verb, e.g. "FILE [--wait] [--timeout D]" */
	const char *summary; /* one line for `rollout help` */
	int (*exec)(struct cmd_ctx *ctx, int argc, char **argv); /* argv[0] is the verb */
};

extern const struct cmd_entry cmd_apply_entry, cmd_plan_entry, cmd_status_entry, cmd_history_entry,
    cmd_undo_entry, cmd_pause_entry, cmd_resume_entry, cmd_promote_entry, cmd_abort_entry, cmd_events_entry,
    cmd_version_entry, cmd_daemon_entry, cmd_proxy_entry, cmd_host_entry;

/* The daemon's entry point (src/cli/cmd_daemon.c). */
int daemon_main(struct cmd_ctx *ctx, int argc, char **argv);

/* ---- options ---- */

#define CMD_MAX_OPTS 8
#define CMD_MAX_POS  8

/* One option a verb accepts: "--wait" (flag) or "--timeout" with a value; alias like "-o". */
struct cmd_opt {
	const char *name;
	const char *alias; /* may be NULL */
	bool has_arg;
};

/* Result of cmd_args_parse: set[i]/val[i] for opts[i], positional arguments in order. Strings
 * point into argv. */
struct cmd_args {
	bool set[CMD_MAX_OPTS];
	const char *val[CMD_MAX_OPTS];
	const char *pos[CMD_MAX_POS];
	int npos;
	bool help;     /* -h or --help was given */
	char err[160]; /* why parsing failed */
};

/* Parses argv[1..argc) (argv[0] is the verb) against opts (NULL-name terminated, at most
 * CMD_MAX_OPTS). Accepts "--name value", "--name=value", "-o value", "-ovalue"; "--" ends
 * options; "-h"/"--help" sets out->help. Returns 0, or -EINVAL with out->err set (unknown
 * option, missing value, too many positionals). */
int cmd_args_parse(const struct cmd_opt *opts, int argc, char **argv, struct cmd_args *out);

/* Takes the global "--data DIR" / "--data=DIR" out of argv wherever it stands (before "--"),
 * shifting the rest down; *argc is updated. Sets *data (pointing into argv) when found.
 * Returns 0, or -EINVAL when --data has no value. */
int cmd_take_global(int *argc, char **argv, const char **data);

/* DATA as DESIGN says: flag, else env (may be NULL or ""), else "./.rollout". */
const char *cmd_data_dir(const char *flag, const char *env);

/* The entry named name in table (n entries), or NULL. */
const struct cmd_entry *cmd_find(const struct cmd_entry *const *table, size_t n, const char *name);
/* Prints "usage: rollout <verb> <usage>" for every entry and their summaries. */
void cmd_print_usage(FILE *f, const struct cmd_entry *const *table, size_t n);

/* Prints "rollout: <msg>" and the verb's usage line to ctx->err; returns CMD_EXIT_USAGE. */
int cmd_usage_error(struct cmd_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The --wait/--timeout pair of apply and undo: *timeout_ms is the given duration (default 30m).
 * Returns -1 to go on, or the exit status after a usage error (a bad duration, --timeout without
 * --wait). */
int cmd_wait_timeout(struct cmd_ctx *ctx, bool wait, const char *timeout, int64_t *timeout_ms);

/* Parses a --timeout/--for style duration ("30m", "90s"). Returns 0 or -EINVAL. */
int cmd_parse_duration(const char *s, int64_t *ms);

/* ---- talking to the daemon ---- */

/* Does one API call: method, path ("/v1/..."), body (may be NULL; not consumed). On HTTP 2xx
 * returns CMD_EXIT_OK with *resp the parsed JSON (caller frees). Otherwise prints what went
 * wrong to ctx->err ("rollout: <error>" and each line of an "errors" array, or the no-daemon
 * hint), sets *resp NULL and returns the exit status: CMD_EXIT_NODAEMON when the daemon cannot
 * be reached (nothing listens, it is at its connection cap, or the exchange broke off: the
 * message says which), CMD_EXIT_USAGE for 4xx (no such service, invalid spec, not applicable now),
 * CMD_EXIT_FAILED for 5xx or a reply that is not JSON. status_out (may be NULL) receives the
 * HTTP status, 0 without a reply. */
int cmd_call(struct cmd_ctx *ctx, const char *method, const char *path, json_t *body, json_t **resp,
	     long *status_out);

/* Parses argv for a verb: opts as cmd_args_parse, between min_pos and max_pos positionals.
 * Returns -1 to go on, or the exit status to return now: CMD_EXIT_OK after printing the verb's
 * usage for -h/--help, CMD_EXIT_USAGE after printing what is wrong. */
int cmd_parse(struct cmd_ctx *ctx, const struct cmd_opt *opts, int argc, char **argv, struct cmd_args *a,
	      int min_pos, int max_pos);

/* The exit status for a rollout that ended in state (complete 0; failed, aborted 1; rolled_back
 * 1, or 0 for undo), or -1 while it is not over. */
int cmd_rollout_exit(const char *state, bool undo);

/* Milliseconds of the wall clock and of a monotonic clock. */
int64_t cmd_now_ms(void);
int64_t cmd_mono_ms(void);

/* The client for ctx->sock, made on first use. */
struct client *cmd_client(struct cmd_ctx *ctx);

/* Prints the daemon-unreachable hint for ctx's DATA to ctx->err. */
void cmd_print_nodaemon(struct cmd_ctx *ctx);

/* cmd_follow flags */
#define CMD_FOLLOW_UNDO 1u           /* rolled_back counts as success */
#define CMD_FOLLOW_THROUGH_PAUSES 2u /* wait on through a pause that waits for a person */

/* Follows rollout `id` of `service` until it ends, polling every 200 ms, printing progress to
 * ctx->out. At a pause that waits for a person (the daemon says so: needs_person) it returns
 * CMD_EXIT_PAUSED after a line naming the command that continues, unless told to wait through
 * it. timeout_ms 0: none. Returns the exit status. */
int cmd_follow(struct cmd_ctx *ctx, const char *service, int64_t id, unsigned flags, int64_t timeout_ms);

/* pause, resume, promote, abort: POST /v1/services/SERVICE/<action> and print the new state.
 * argv as an exec gets it. Returns the exit status. */
int cmd_service_action(struct cmd_ctx *ctx, int argc, char **argv, const char *action);

/* s percent-escaped for a URL path or query. Caller frees. */
char *cmd_escape(const char *s);

/* A service-name path: "/v1/services/<escaped name><suffix>". Caller frees. */
char *cmd_service_path(const char *service, const char *suffix);

#endif
