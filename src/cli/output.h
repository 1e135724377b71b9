/* Human output of the CLI: durations, timestamps, aligned tables, the live progress line, and
 * the status / history / event / plan renderings. Pure: everything takes its clock as an
 * argument and writes to a FILE or a caller's buffer. */
#ifndef ROLLOUT_CLI_OUTPUT_H
#define ROLLOUT_CLI_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "core/plan.h"

/* "850ms", "12s", "1m05s", "2h03m", "3d04h"; negative as "0s". Returns buf. */
char *output_duration(int64_t ms, char *buf, size_t len);
/* Milliseconds since the epoch as "2026-11-26T08:40:01.123Z". Returns buf. */
char *output_timestamp(int64_t ms, char *buf, size_t len);

/* An aligned text table: columns separated by two spaces, the last one not padded. */
struct output_table;
struct output_table *output_table_new(size_t ncols);
/* Adds a row of ncols strings (copied; NULL prints as "-"). */
void output_table_row(struct output_table *t, const char *const *cells);
void output_table_print(const struct output_table *t, FILE *f);
void output_table_free(struct output_table *t);

/* JSON field helpers that tolerate a missing or mistyped field. */
const char *output_jstr(const json_t *o, const char *key, const char *dflt);
int64_t output_jint(const json_t *o, const char *key, int64_t dflt);

/* The live line for a service status (the daemon's <status> object):
 * "batch 2/3  new 2/4 available  old 2  total 5  elapsed 12s  waiting for: ..."; the elapsed part
 * only when with_elapsed (so a caller can tell whether anything else changed). Returns buf. */
char *output_progress_line(const json_t *status, bool with_elapsed, char *buf, size_t len);
/* The line that closes a followed rollout: "rollout 3 complete: hello at revision 2 after 1m05s",
 * "rollout 3 failed: <reason>". Returns buf. */
char *output_final_line(const json_t *status, const json_t *rollout, char *buf, size_t len);
/* One event as "2026-11-26T08:40:01.123Z  kind  text" (plus "  [instance N]"). Returns buf. */
char *output_event_line(const json_t *ev, char *buf, size_t len);

/* `rollout status SERVICE`: summary, rollout, counts and the instance table. now_ms for ages. */
void output_status(FILE *f, const json_t *status, int64_t now_ms);
/* The daemon's "store_error" of a status reply (a service's, or the list's), as one line; nothing
 * when it has none. */
void output_store_error(FILE *f, const json_t *resp, int64_t now_ms);
/* `rollout status`: one row per service. */
void output_services(FILE *f, const json_t *services);
/* The stored services the daemon could not load at start (the "unloaded" list of GET
 * /v1/services), each with why; nothing when the list is empty or absent. */
void output_unloaded(FILE *f, const json_t *unloaded);
/* `rollout history`: rollouts (newest first) with the revision's version from revisions. */
void output_history(FILE *f, const json_t *rollouts, const json_t *revisions, int64_t now_ms);

/* `rollout plan`: the header and the batches with their waves. service may be NULL. */
void output_plan_text(FILE *f, const char *service, const struct plan *p);
/* The same as JSON (caller frees). */
json_t *output_plan_json(const char *service, const struct plan *p);

#endif
