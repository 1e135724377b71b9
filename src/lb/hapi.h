/* Strict parsers for the answers of HAProxy's Runtime API (2.6): `show stat` CSV, `show info`, and the
 * one-line replies of the commands the haproxy balancer sends. Pure: no I/O; fuzzed (tests/fuzz/fuzz_hapi.c). */
#ifndef ROLLOUT_LB_HAPI_H
#define ROLLOUT_LB_HAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HAPI_MAX_SERVERS 4096 /* more server rows than this in one answer is an error */
#define HAPI_MAX_COLS 1024
#define HAPI_NAME_MAX 64

/* The administrative state of a server, from the `status` column. */
enum hapi_admin {
	HAPI_READY, /* UP, DOWN, NOLB, "no check": takes new traffic when its checks allow */
	HAPI_DRAIN, /* DRAIN: no new traffic */
	HAPI_MAINT, /* MAINT: no traffic at all */
};

/* One server row of `show stat`. Counters absent or empty in the answer are 0. */
struct hapi_server {
	char name[HAPI_NAME_MAX]; /* svname */
	char addr[HAPI_NAME_MAX]; /* "ip:port" as HAProxy prints it; "" when it shows none */
	enum hapi_admin admin;
	bool down;                /* operationally DOWN (failed checks) */
	int sid;
	int64_t scur, qcur;       /* sessions in flight, requests queued */
	int64_t stot, hrsp_5xx, eresp, econ;
	int64_t rtime, ttime;     /* average response and total times over the last 1024 requests, ms */
	int weight;               /* uweight (the weight set by configuration or `set server ... weight`),
				   * 0..256; -1 when the answer has no uweight column (before HAProxy 2.6) */
};

/* The servers of one backend. */
struct hapi_stat {
	struct hapi_server *v;
	size_t n;
};

/* Parses the answer to `show stat` (whole, with its closing empty line), keeping the server rows
 * (type 2) of `backend`. Fills *out (caller frees with hapi_stat_clear). Returns 0, or -EPROTO with
 * err holding why (HAProxy's own text when it answered something else, e.g. "No such proxy."). */
int hapi_parse_stat(const char *text, size_t len, const char *backend, struct hapi_stat *out, char *err,
		    size_t errlen);
/* Frees what hapi_parse_stat filled; safe on a zeroed or cleared struct. */
void hapi_stat_clear(struct hapi_stat *s);

/* The identity of a running HAProxy: a restart changes the pid or makes the uptime go back. */
struct hapi_info {
	long pid;
	int64_t uptime_sec;
};

/* Parses the answer to `show info`. Returns 0 or -EPROTO with err filled. */
int hapi_parse_info(const char *text, size_t len, struct hapi_info *out, char *err, size_t errlen);

/* The commands whose replies hapi_check_reply knows. */
enum hapi_cmd {
	HAPI_CMD_STATE,  /* set server B/S state ready|drain|maint: empty reply */
	HAPI_CMD_ADDR,   /* set server B/S addr IP port N: "... changed ..." or "no need to change ..." */
	HAPI_CMD_HEALTH, /* enable health B/S: empty, or "not configured" (no check on that server) */
	HAPI_CMD_ADD,    /* add server B/S IP:PORT: "New server registered." */
	HAPI_CMD_DEL,    /* del server B/S: "Server deleted." */
	HAPI_CMD_WEIGHT, /* set server B/S weight N: empty reply */
	HAPI_CMD_SHUTDOWN, /* shutdown sessions server B/S: empty reply */
};

/* Whether text (a whole reply) is the success answer of cmd. Returns 0, or -EPROTO with err holding
 * HAProxy's text on one line (newlines shown as " / "). */
int hapi_check_reply(enum hapi_cmd cmd, const char *text, size_t len, char *err, size_t errlen);

/* Whether s can go into a command line as a backend or server name: 1..63 of [A-Za-z0-9._:-]
 * (HAProxy's own rule for names), so no space, ';' or newline can split a command. */
bool hapi_name_ok(const char *s);

/* Copies text into err on one line, at most errlen - 1 bytes, control bytes as '?'. */
void hapi_oneline(const char *text, size_t len, char *err, size_t errlen);

#endif
