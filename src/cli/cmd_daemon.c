/* `rollout daemon`: the control plane. Parses its flags and runs the daemon's loop. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "daemon/daemon.h"
#include "util/log.h"

/* Parses "LO-HI" into a port range within 1024..65535. Returns 0 or -EINVAL. */
static int parse_ports(const char *s, int *lo, int *hi)
{
	char *end;
	long a = strtol(s, &end, 10);
	if (end == s || *end != '-')
		return -EINVAL;
	const char *b0 = end + 1;
	long b = strtol(b0, &end, 10);
	if (end == b0 || *end != '\0' || a < 1024 || b > 65535 || a > b)
		return -EINVAL;
	*lo = (int)a;
	*hi = (int)b;
	return 0;
}

int daemon_main(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct cmd_opt opts[] = {
		{"--api", NULL, true},   {"--token-file", NULL, true}, {"--ports", NULL, true},
		{"--log-json", NULL, false}, {"--debug", NULL, false},   {"--keep-events", NULL, true},
		{"--socket-group", NULL, true}, {NULL, NULL, false},
	};
	struct cmd_args a;
	int r = cmd_parse(ctx, opts, argc, argv, &a, 0, 0);
	if (r >= 0)
		return r;
	struct daemon_opts o = {
		.data_dir = ctx->data,
		.api_tcp = a.set[0] ? a.val[0] : NULL,
		.token_file = a.set[1] ? a.val[1] : NULL,
		.port_lo = 20000,
		.port_hi = 29999,
		.keep_events = 10000,
		.socket_group = a.set[6] ? a.val[6] : NULL,
	};
	if (a.set[5]) {
		char *end;
		long k = strtol(a.val[5], &end, 10);
		if (end == a.val[5] || *end != '\0' || k < 0 || k > 1000000000L)
			return cmd_usage_error(ctx, "--keep-events takes a count of events per service (0: keep all)");
		o.keep_events = k;
	}
	if (a.set[2] && parse_ports(a.val[2], &o.port_lo, &o.port_hi) < 0)
		return cmd_usage_error(ctx, "--ports takes LO-HI within 1024-65535, e.g. 20000-29999");
	if (o.api_tcp != NULL && o.token_file == NULL)
		return cmd_usage_error(ctx, "--api needs --token-file FILE (a bearer token on one line)");
	log_set_json(a.set[3]);
	if (a.set[4])
		log_set_level(LOG_DEBUG);
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	self[n > 0 ? n : 0] = '\0';
	o.self_exe = self;
	return daemon_run(&o);
}

const struct cmd_entry cmd_daemon_entry = {
	.name = "daemon",
	.usage = "[--data DIR] [--api ADDR --token-file FILE] [--ports LO-HI] [--keep-events N] [--socket-group NAME] [--log-json] [--debug]",
	.summary = "run the control plane (one per data directory)",
	.exec = daemon_main,
};
