/* The rollout binary: takes the global --data flag, looks the verb up in the command table and
 * runs it. Usage text is made from the table. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cli/client.h"
#include "cli/cmd.h"
#include "util/xmalloc.h"

/* Every verb, in the order usage lists them. cmd_proxy_entry comes from src/cli/cmd_proxy.c, or
 * while that is missing from cmd_proxy_fallback.c (a weak default in the library). */
/* clang-format off */
static const struct cmd_entry *const cmd_table[] = {
	&cmd_apply_entry,
	&cmd_plan_entry,
	&cmd_status_entry,
	&cmd_history_entry,
	&cmd_undo_entry,
	&cmd_pause_entry,
	&cmd_resume_entry,
	&cmd_promote_entry,
	&cmd_abort_entry,
	&cmd_events_entry,
	&cmd_daemon_entry,
	&cmd_proxy_entry,
	&cmd_host_entry,
	&cmd_version_entry,
};
/* clang-format on */
#define CMD_TABLE_N (sizeof cmd_table / sizeof cmd_table[0])

int main(int argc, char **argv)
{
	const char *data_flag = NULL;
	if (cmd_take_global(&argc, argv, &data_flag) != 0) {
		fprintf(stderr, "rollout: --data needs a directory\n");
		cmd_print_usage(stderr, cmd_table, CMD_TABLE_N);
		return CMD_EXIT_USAGE;
	}
	if (argc < 2) {
		cmd_print_usage(stderr, cmd_table, CMD_TABLE_N);
		return CMD_EXIT_USAGE;
	}
	const char *verb = argv[1];
	if (strcmp(verb, "help") == 0 || strcmp(verb, "-h") == 0 || strcmp(verb, "--help") == 0) {
		const struct cmd_entry *e = argc > 2 ? cmd_find(cmd_table, CMD_TABLE_N, argv[2]) : NULL;
		if (e)
			printf("usage: rollout %s %s\n  %s\n", e->name, e->usage, e->summary);
		else
			cmd_print_usage(stdout, cmd_table, CMD_TABLE_N);
		return CMD_EXIT_OK;
	}
	if (strcmp(verb, "--version") == 0)
		verb = "version";
	const struct cmd_entry *e = cmd_find(cmd_table, CMD_TABLE_N, verb);
	if (e == NULL) {
		fprintf(stderr, "rollout: unknown command '%s'\n", verb);
		cmd_print_usage(stderr, cmd_table, CMD_TABLE_N);
		return CMD_EXIT_USAGE;
	}

	struct cmd_ctx ctx = {
	    .data = cmd_data_dir(data_flag, getenv("ROLLOUT_DATA")),
	    .out = stdout,
	    .err = stderr,
	    .tty = isatty(STDOUT_FILENO) == 1,
	    .entry = e,
	};
	ctx.sock = xasprintf("%s/rollout.sock", ctx.data);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = e->exec(&ctx, argc - 1, argv + 1);
	client_free(ctx.client);
	free(ctx.sock);
	curl_global_cleanup();
	fflush(stdout);
	return rc;
}
