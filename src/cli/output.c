/* Human output of the CLI: durations, timestamps, tables, the live progress line, and the
 * status / history / plan renderings. Pure: no clock, no I/O beyond the FILE given. */
#include "cli/output.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"
#include "util/xmalloc.h"

char *output_duration(int64_t ms, char *buf, size_t len)
{
	if (ms < 0)
		ms = 0;
	int64_t s = ms / 1000;
	if (ms < 1000 && ms > 0)
		snprintf(buf, len, "%" PRId64 "ms", ms);
	else if (s < 60)
		snprintf(buf, len, "%" PRId64 "s", s);
	else if (s < 3600)
		snprintf(buf, len, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%" PRId64 "h%02" PRId64 "m", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, len, "%" PRId64 "d%02" PRId64 "h", s / 86400, s % 86400 / 3600);
	return buf;
}

char *output_timestamp(int64_t ms, char *buf, size_t len)
{
	return log_timestamp(ms, true, buf, len);
}

/* ---- tables ---- */

struct output_table {
	size_t ncols;
	char **cells; /* nrows * ncols */
	size_t nrows, cap;
};

struct output_table *output_table_new(size_t ncols)
{
	struct output_table *t = xcalloc(1, sizeof *t);
	t->ncols = ncols;
	return t;
}

/* A copy of s for a terminal: C0 controls and DEL as \xNN, so text from the daemon (a version
 * recorded before the parser refused control characters, a cause) cannot move the cursor. */
static char *printable_dup(const char *s)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		n += *p < 0x20 || *p == 0x7f ? 4 : 1;
	char *out = xmalloc(n + 1), *o = out;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			o += snprintf(o, 5, "\\x%02x", *p);
		else
			*o++ = (char)*p;
	}
	*o = '\0';
	return out;
}

void output_table_row(struct output_table *t, const char *const *cells)
{
	xgrow((void **)&t->cells, &t->cap, (t->nrows + 1) * t->ncols, sizeof *t->cells);
	for (size_t i = 0; i < t->ncols; i++)
		t->cells[t->nrows * t->ncols + i] = printable_dup(cells[i] ? cells[i] : "-");
	t->nrows++;
}

void output_table_print(const struct output_table *t, FILE *f)
{
	size_t *w = xcalloc(t->ncols, sizeof *w);
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t n = strlen(t->cells[r * t->ncols + c]);
			if (n > w[c])
				w[c] = n;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		/* empty trailing cells are not padded: no trailing blanks */
		size_t last = t->ncols;
		while (last > 1 && t->cells[r * t->ncols + last - 1][0] == '\0')
			last--;
		for (size_t c = 0; c < last; c++) {
			const char *s = t->cells[r * t->ncols + c];
			if (c + 1 == last)
				fprintf(f, "%s\n", s);
			else
				fprintf(f, "%-*s  ", (int)w[c], s);
		}
	}
	free(w);
}

void output_table_free(struct output_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

/* ---- JSON helpers ---- */

const char *output_jstr(const json_t *o, const char *key, const char *dflt)
{
	const json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
	return json_is_string(v) ? json_string_value(v) : dflt;
}

int64_t output_jint(const json_t *o, const char *key, int64_t dflt)
{
	const json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (json_is_real(v))
		return (int64_t)json_real_value(v);
	return dflt;
}

/* counts.by_revision[rev].<key>, 0 when absent. */
static int64_t rev_count(const json_t *status, int64_t rev, const char *key)
{
	char k[32];
	snprintf(k, sizeof k, "%" PRId64, rev);
	const json_t *by = json_object_get(json_object_get(status, "counts"), "by_revision");
	return output_jint(json_object_get(by, k), key, 0);
}

/* Instances not of revision rev (all of counts.by_revision's other entries). */
static int64_t other_total(const json_t *status, int64_t rev)
{
	const json_t *by = json_object_get(json_object_get(status, "counts"), "by_revision");
	const char *k;
	json_t *v;
	int64_t n = 0;
	char mine[32];
	snprintf(mine, sizeof mine, "%" PRId64, rev);
	json_object_foreach((json_t *)by, k, v)
	{
		if (strcmp(k, mine) != 0)
			n += output_jint(v, "total", 0);
	}
	return n;
}

/* The API's rollout.batch: 1-based, within 1..batches. */
static int64_t batch_shown(const json_t *ro)
{
	int64_t b = output_jint(ro, "batch", 1), n = output_jint(ro, "batches", 1);
	return b > n ? n : b < 1 ? 1 : b;
}

/* What a person can do about a pause, or NULL. */
char *output_progress_line(const json_t *status, bool with_elapsed, char *buf, size_t len)
{
	const json_t *ro = json_object_get(status, "rollout");
	const char *service = output_jstr(status, "service", "?");
	const char *state = output_jstr(ro, "state", "none");
	int64_t to = output_jint(ro, "to_revision", 0);
	char el[32];
	size_t off = 0;
	buf[0] = '\0';
#define ADD(...)                                                                                             \
	do {                                                                                                 \
		if (off < len) {                                                                             \
			int w_ = snprintf(buf + off, len - off, __VA_ARGS__);                                \
			off += w_ > 0 ? (size_t)w_ : 0;                                                      \
		}                                                                                            \
	} while (0)
	if (strcmp(state, "progressing") != 0 && strcmp(state, "paused") != 0)
		ADD("%s  ", state);
	ADD("batch %" PRId64 "/%" PRId64 "  new %" PRId64 "/%" PRId64 " available  old %" PRId64
	    "  total %" PRId64,
	    batch_shown(ro), output_jint(ro, "batches", 1), rev_count(status, to, "available"),
	    output_jint(status, "replicas", 0), other_total(status, to),
	    output_jint(json_object_get(status, "counts"), "total", 0));
	if (with_elapsed)
		ADD("  elapsed %s", output_duration(output_jint(ro, "elapsed_ms", 0), el, sizeof el));
	const char *pause = output_jstr(ro, "pause", NULL);
	if (strcmp(state, "paused") == 0 && pause != NULL) {
		const char *hint = output_jstr(ro, "continue_with", NULL); /* the engine's verb */
		ADD("  paused (%s)", pause);
		if (hint)
			ADD(": continue with `rollout %s %s`", hint, service);
	} else {
		const char *w = output_jstr(status, "waiting_for", "");
		if (w[0])
			ADD("  waiting for: %s", w);
	}
#undef ADD
	return buf;
}

char *output_final_line(const json_t *status, const json_t *ro, char *buf, size_t len)
{
	const char *state = output_jstr(ro, "state", "?");
	const char *reason = output_jstr(ro, "reason", "");
	int64_t id = output_jint(ro, "id", 0);
	char d[32];
	int64_t started = output_jint(ro, "started_at", 0), ended = output_jint(ro, "ended_at", 0);
	int64_t took = ended > started && started > 0 ? ended - started : output_jint(ro, "elapsed_ms", 0);
	output_duration(took, d, sizeof d);
	if (strcmp(state, "complete") == 0)
		snprintf(buf, len, "rollout %" PRId64 " complete: %s at revision %" PRId64 " after %s", id,
			 output_jstr(status, "service", "?"), output_jint(ro, "to_revision", 0), d);
	else
		snprintf(buf, len, "rollout %" PRId64 " %s after %s%s%s", id,
			 strcmp(state, "rolled_back") == 0 ? "rolled back" : state, d, reason[0] ? ": " : "",
			 reason);
	return buf;
}

char *output_event_line(const json_t *ev, char *buf, size_t len)
{
	char ts[40];
	int64_t inst = output_jint(ev, "instance", 0);
	output_timestamp(output_jint(ev, "ts", 0), ts, sizeof ts);
	if (inst > 0)
		snprintf(buf, len, "%s  %s  %s  [instance %" PRId64 "]", ts, output_jstr(ev, "kind", "?"),
			 output_jstr(ev, "text", ""), inst);
	else
		snprintf(buf, len, "%s  %s  %s", ts, output_jstr(ev, "kind", "?"),
			 output_jstr(ev, "text", ""));
	return buf;
}

/* ---- status, services, history ---- */

static void num(char *b, size_t n, int64_t v) { snprintf(b, n, "%" PRId64, v); }

void output_store_error(FILE *f, const json_t *resp, int64_t now_ms)
{
	const json_t *e = json_object_get(resp, "store_error");
	if (!json_is_object(e))
		return;
	char ts[64], d[32];
	int64_t since = output_jint(e, "since", 0);
	fprintf(
	    f, "store: unavailable since %s (for %s): %s; the daemon does nothing until it can write again\n",
	    output_timestamp(since, ts, sizeof ts),
	    output_duration(since > 0 ? now_ms - since : 0, d, sizeof d), output_jstr(e, "error", "?"));
}

/* The status "health" value for people. */
static const char *health_word(const char *h)
{
	return strcmp(h, "crash_looping") == 0 ? "crash-looping" : h;
}

static const char *rev_version(const json_t *revisions, int64_t rev)
{
	size_t i;
	json_t *r;
	json_array_foreach(revisions, i, r)
	{
		if (output_jint(r, "revision", -1) == rev)
			return output_jstr(r, "version", "-");
	}
	return "-";
}

/* "2 (v2)": a revision with its version when known, "-" for none. */
static char *rev_label(int64_t rev, const char *version, char *buf, size_t len)
{
	if (rev <= 0)
		snprintf(buf, len, "-");
	else if (version != NULL && strcmp(version, "-") != 0)
		snprintf(buf, len, "%" PRId64 " (%s)", rev, version);
	else
		snprintf(buf, len, "%" PRId64, rev);
	return buf;
}

/* What a rollout changed: revisions (with versions), or a scale's replicas. */
static char *change_text(const json_t *r, const char *began, const char *vfrom, const char *vto, char *buf,
			 size_t len)
{
	int64_t from = output_jint(r, "from_revision", 0), to = output_jint(r, "to_revision", 0);
	int64_t fr = output_jint(r, "from_replicas", 0), tr = output_jint(r, "to_replicas", 0);
	char a[96], b[96];
	if (strcmp(began, "scale") == 0 && tr > 0)
		snprintf(buf, len, "%" PRId64 " -> %" PRId64 " instances of %s", fr, tr, rev_label(to, vto, a, sizeof a));
	else if (from > 0 && from != to)
		snprintf(buf, len, "%s -> %s", rev_label(from, vfrom, a, sizeof a), rev_label(to, vto, b, sizeof b));
	else
		snprintf(buf, len, "%s", rev_label(to, vto, a, sizeof a));
	return buf;
}

/* status.versions[rev], NULL when unknown. */
static const char *status_version(const json_t *status, int64_t rev)
{
	char key[24];
	snprintf(key, sizeof key, "%" PRId64, rev);
	return output_jstr(json_object_get(status, "versions"), key, NULL);
}

void output_status(FILE *f, const json_t *status, int64_t now_ms)
{
	const char *service = output_jstr(status, "service", "?");
	const json_t *ro = json_object_get(status, "rollout");
	const json_t *counts = json_object_get(status, "counts");
	char d[32], line[512], la[96], lb[96];
	int64_t target = output_jint(status, "target_revision", 0), stable = output_jint(status, "stable_revision", 0);
	fprintf(f, "%s: %" PRId64 " replicas, revision %s, stable %s\n", service, output_jint(status, "replicas", 0),
		rev_label(target, status_version(status, target), la, sizeof la),
		rev_label(stable, status_version(status, stable), lb, sizeof lb));
	if (json_is_object(ro)) {
		const char *state = output_jstr(ro, "state", "?");
		char change[256];
		fprintf(f,
			"rollout %" PRId64 " (%s %s): %s, batch %" PRId64 "/%" PRId64
			", %" PRId64 " failures (max %" PRId64 "), %s %s\n",
			output_jint(ro, "id", 0), output_jstr(ro, "began_as", output_jstr(ro, "kind", "?")),
			change_text(ro, output_jstr(ro, "began_as", output_jstr(ro, "kind", "?")),
				    status_version(status, output_jint(ro, "from_revision", 0)),
				    status_version(status, output_jint(ro, "to_revision", 0)), change, sizeof change),
			output_jstr(ro, "outcome", state),
			batch_shown(ro), output_jint(ro, "batches", 1), output_jint(ro, "failures", 0),
			output_jint(ro, "max_failures", 0),
			json_is_integer(json_object_get(ro, "ended_at")) ? "took" : "elapsed",
			output_duration(output_jint(ro, "elapsed_ms", 0), d, sizeof d));
		bool live = strcmp(state, "progressing") == 0 || strcmp(state, "paused") == 0 ||
			    strcmp(state, "rolling_back") == 0;
		if (live)
			fprintf(f, "  %s\n", output_progress_line(status, false, line, sizeof line));
		const char *reason = output_jstr(ro, "reason", "");
		if (reason[0])
			fprintf(f, "  reason: %s\n", reason);
	} else {
		fprintf(f, "no rollout yet\n");
	}
	output_store_error(f, status, now_ms);
	/* A rollout that ended complete says nothing of now: the service's health does. */
	const char *health = output_jstr(status, "health", "ok");
	if (strcmp(health, "ok") != 0) {
		const char *w = output_jstr(status, "waiting_for", "");
		bool done = json_is_object(ro) && json_is_integer(json_object_get(ro, "ended_at"));
		fprintf(f, "health: %s, %" PRId64 " of %" PRId64 " available%s%s\n", health_word(health),
			output_jint(counts, "available", 0), output_jint(status, "replicas", 0),
			done && strchr(w, ';') ? ";" : "", done && strchr(w, ';') ? strchr(w, ';') + 1 : "");
	}
	const json_t *lberr = json_object_get(status, "lb_error");
	if (json_is_object(lberr)) {
		int64_t since = output_jint(lberr, "since", 0);
		fprintf(f, "load balancer: %s (for %s)\n", output_jstr(lberr, "text", "?"),
			output_duration(since > 0 ? now_ms - since : 0, d, sizeof d));
	}
	size_t hi;
	json_t *hv;
	json_array_foreach(json_object_get(status, "host_key_changed"), hi, hv)
	{
		if (json_is_string(hv))
			fprintf(f, "host key of %s changed: not used until known_hosts is fixed\n",
				json_string_value(hv));
	}
	const char *lerr = output_jstr(status, "listener_error", "");
	if (lerr[0])
		fprintf(f, "load balancer: %s: traffic cannot reach the service\n", lerr);
	fprintf(f, "instances: %" PRId64 " total, %" PRId64 " available", output_jint(counts, "total", 0),
		output_jint(counts, "available", 0));
	const json_t *by = json_object_get(counts, "by_revision");
	const char *k;
	json_t *v;
	const char *sep = " (";
	json_object_foreach((json_t *)by, k, v)
	{
		const char *ver = output_jstr(json_object_get(status, "versions"), k, NULL);
		fprintf(f, "%srevision %s%s%s%s: %" PRId64 "/%" PRId64 " available", sep, k, ver ? " (" : "",
			ver ? ver : "", ver ? ")" : "", output_jint(v, "available", 0), output_jint(v, "total", 0));
		sep = ", ";
	}
	fprintf(f, "%s\n", json_object_size(by) ? ")" : "");
	const json_t *insts = json_object_get(status, "instances");
	if (json_array_size(insts) == 0)
		return;
	struct output_table *t = output_table_new(10);
	output_table_row(t, (const char *[]){"ID", "REVISION", "VERSION", "STATE", "AVAILABLE", "PORT", "PID",
					     "AGE", "RESTARTS", "CAUSE"});
	size_t i;
	json_array_foreach(insts, i, v)
	{
		char id[24], rev[24], port[24], pid[24], age[32], restarts[24], check[300];
		num(id, sizeof id, output_jint(v, "id", 0));
		num(restarts, sizeof restarts, output_jint(v, "restarts", 0));
		num(rev, sizeof rev, output_jint(v, "revision", 0));
		num(port, sizeof port, output_jint(v, "port", 0));
		num(pid, sizeof pid, output_jint(v, "pid", 0));
		int64_t since = output_jint(v, "since", 0);
		output_duration(since > 0 ? now_ms - since : 0, age, sizeof age);
		const char *cause = output_jstr(v, "cause", "");
		const char *ver = status_version(status, output_jint(v, "revision", 0));
		bool avail = json_is_true(json_object_get(v, "available"));
		/* Not serving and nothing failed yet: what its health check sees says why. */
		const char *lc = output_jstr(v, "last_check", "");
		if (!cause[0] && !avail && lc[0]) {
			snprintf(check, sizeof check, "last check: %s", lc);
			cause = check;
		}
		output_table_row(t, (const char *[]){id, rev, ver ? ver : "-", output_jstr(v, "state", "?"),
						     avail ? "yes" : "no", port, pid, since > 0 ? age : "-", restarts,
						     cause});
	}
	output_table_print(t, f);
	output_table_free(t);
}

void output_services(FILE *f, const json_t *services)
{
	if (json_array_size(services) == 0) {
		fprintf(f, "no services; submit one with: rollout apply FILE\n");
		return;
	}
	struct output_table *t = output_table_new(6);
	output_table_row(
	    t, (const char *[]){"SERVICE", "REPLICAS", "REVISION", "STABLE", "AVAILABLE", "ROLLOUT"});
	size_t i;
	json_t *s;
	json_array_foreach(services, i, s)
	{
		char rep[24], rev[24], stable[24], avail[48], ro_text[96];
		const json_t *counts = json_object_get(s, "counts");
		const json_t *ro = json_object_get(s, "rollout");
		num(rep, sizeof rep, output_jint(s, "replicas", 0));
		num(rev, sizeof rev, output_jint(s, "target_revision", 0));
		num(stable, sizeof stable, output_jint(s, "stable_revision", 0));
		snprintf(avail, sizeof avail, "%" PRId64 "/%" PRId64, output_jint(counts, "available", 0),
			 output_jint(counts, "total", 0));
		if (json_is_object(ro)) {
			const char *state = output_jstr(ro, "state", "?");
			if (strcmp(state, "progressing") == 0 || strcmp(state, "paused") == 0)
				snprintf(ro_text, sizeof ro_text,
					 "%" PRId64 " %s (batch %" PRId64 "/%" PRId64 ")",
					 output_jint(ro, "id", 0), state, batch_shown(ro),
					 output_jint(ro, "batches", 1));
			else
				snprintf(ro_text, sizeof ro_text, "%" PRId64 " %s", output_jint(ro, "id", 0),
					 state);
			const char *health = output_jstr(s, "health", "ok");
			size_t l = strlen(ro_text);
			if (strcmp(health, "ok") != 0 && l < sizeof ro_text)
				snprintf(ro_text + l, sizeof ro_text - l, ", %s", health_word(health));
		} else {
			snprintf(ro_text, sizeof ro_text, "-");
		}
		output_table_row(
		    t, (const char *[]){output_jstr(s, "service", "?"), rep, rev, stable, avail, ro_text});
	}
	output_table_print(t, f);
	output_table_free(t);
}

void output_unloaded(FILE *f, const json_t *unloaded)
{
	if (json_array_size(unloaded) == 0)
		return;
	fprintf(f, "not loaded at start (apply a corrected spec to take it over):\n");
	size_t i;
	json_t *u;
	json_array_foreach(unloaded, i, u)
	{
		char *name = printable_dup(output_jstr(u, "service", "?"));
		char *why = printable_dup(output_jstr(u, "error", "?"));
		fprintf(f, "  %s: %s\n", name, why);
		free(name);
		free(why);
	}
}

/* The version string of revision rev in revisions, or "-". */
void output_history(FILE *f, const json_t *rollouts, const json_t *revisions, int64_t now_ms)
{
	if (json_array_size(rollouts) == 0) {
		fprintf(f, "no rollouts yet\n");
		return;
	}
	struct output_table *t = output_table_new(7);
	output_table_row(t, (const char *[]){"ROLLOUT", "KIND", "CHANGE", "OUTCOME", "STARTED", "TOOK", "REASON"});
	size_t i;
	json_t *r;
	json_array_foreach(rollouts, i, r)
	{
		char id[24], change[256], started[40], took[32];
		int64_t s = output_jint(r, "started_at", 0), e = output_jint(r, "ended_at", 0);
		num(id, sizeof id, output_jint(r, "id", 0));
		/* what it was begun as and how it ended, as the daemon (its engine) words them */
		const char *began = output_jstr(r, "began_as", output_jstr(r, "kind", "?"));
		change_text(r, began, rev_version(revisions, output_jint(r, "from_revision", 0)),
			    rev_version(revisions, output_jint(r, "to_revision", 0)), change, sizeof change);
		output_timestamp(s, started, sizeof started);
		char so_far[32];
		if (e > 0)
			output_duration(e - s, took, sizeof took);
		else
			snprintf(took, sizeof took, "%s so far",
				 output_duration(now_ms - s, so_far, sizeof so_far));
		const char *reason = output_jstr(r, "reason", "");
		output_table_row(t, (const char *[]){id, began, change,
						     output_jstr(r, "outcome", output_jstr(r, "state", "?")),
						     started, took, reason});
	}
	output_table_print(t, f);
	output_table_free(t);
}

/* ---- plan ---- */

static const char *dur(int64_t ms, char *buf, size_t len) { return output_duration(ms, buf, len); }

void output_plan_text(FILE *f, const char *service, const struct plan *p)
{
	char a[32], b[32], c[32], d[32];
	fprintf(f, "plan for %s: %d replicas, %zu batch%s\n", service ? service : "service", p->replicas,
		p->n_batches, p->n_batches == 1 ? "" : "es");
	fprintf(f, "  max_surge %d: at most %d instances at once\n", p->surge, p->ceiling);
	fprintf(f, "  max_unavailable %d: at least %d available at all times\n", p->unavailable, p->floor);
	fprintf(f, "  max_failures %d: the rollout fails at %d failed new instance%s\n", p->max_failures,
		p->max_failures + 1, p->max_failures == 0 ? "" : "s");
	fprintf(f, "  min_ready %s, health_deadline %s, progress_deadline %s, drain timeout %s\n",
		dur(p->min_ready_ms, a, sizeof a), dur(p->health_deadline_ms, b, sizeof b),
		dur(p->progress_deadline_ms, c, sizeof c), dur(p->drain_timeout_ms, d, sizeof d));
	if (p->auto_rollback)
		fprintf(f, "  on failure: roll back to the last stable revision\n");
	else
		fprintf(f, "  on failure: halt (auto_rollback is off)\n");
	if (p->analysis)
		fprintf(f, "  analysis: on%s%s\n", p->watch_ms > 0 ? ", watched after completion for " : "",
			p->watch_ms > 0 ? dur(p->watch_ms, a, sizeof a) : "");
	for (size_t i = 0; i < p->n_batches; i++) {
		const struct plan_batch *bt = &p->batches[i];
		fprintf(f,
			"batch %d: goal %d/%d new  started %d  stopped %d  min available %d  max total %d\n",
			bt->number, bt->goal, p->replicas, bt->started, bt->stopped, bt->min_available,
			bt->max_total);
		for (size_t w = 0; w < bt->n_waves; w++) {
			const struct plan_wave *wv = &bt->waves[w];
			fprintf(f, "    wave %zu: start %d  stop %d  min available %d  max total %d%s%s\n", w + 1,
				wv->start, wv->stop, wv->min_available, wv->max_total, wv->zone[0] ? "  zone " : "",
				wv->zone);
		}
		if (bt->pause && bt->pause_ms == 0)
			fprintf(f, "  pause after batch %d: until `rollout promote %s`\n", bt->number,
				service ? service : "SERVICE");
		else if (bt->pause)
			fprintf(f, "  pause after batch %d: for %s (or until promote)\n", bt->number,
				dur(bt->pause_ms, a, sizeof a));
	}
}

json_t *output_plan_json(const char *service, const struct plan *p)
{
	json_t *batches = json_array();
	for (size_t i = 0; i < p->n_batches; i++) {
		const struct plan_batch *bt = &p->batches[i];
		json_t *waves = json_array();
		for (size_t w = 0; w < bt->n_waves; w++) {
			const struct plan_wave *wv = &bt->waves[w];
			json_t *wj = json_pack("{s:i, s:i, s:i, s:i}", "start", wv->start, "stop", wv->stop,
					       "min_available", wv->min_available, "max_total", wv->max_total);
			if (wv->zone[0])
				json_object_set_new(wj, "zone", json_string(wv->zone));
			json_array_append_new(waves, wj);
		}
		json_t *pause = json_null();
		if (bt->pause && bt->pause_ms == 0)
			pause = json_pack("{s:s}", "until", "promote");
		else if (bt->pause)
			pause = json_pack("{s:I}", "for_ms", (json_int_t)bt->pause_ms);
		json_array_append_new(batches, json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:o, s:o}", "number",
							 bt->number, "goal", bt->goal, "started", bt->started,
							 "stopped", bt->stopped, "min_available",
							 bt->min_available, "max_total", bt->max_total,
							 "pause_after", pause, "waves", waves));
	}
	return json_pack("{s:s?, s:i, s:i, s:i, s:i, s:i, s:i, s:I, s:I, s:I, s:I, s:b, s:s?, s:b, s:I, s:o}",
			 "service", service, "replicas", p->replicas, "surge", p->surge, "unavailable",
			 p->unavailable, "floor", p->floor, "ceiling", p->ceiling, "max_failures",
			 p->max_failures, "min_ready_ms", (json_int_t)p->min_ready_ms, "health_deadline_ms",
			 (json_int_t)p->health_deadline_ms, "progress_deadline_ms",
			 (json_int_t)p->progress_deadline_ms, "drain_timeout_ms",
			 (json_int_t)p->drain_timeout_ms, "auto_rollback", p->auto_rollback, "rollback_to",
			 p->auto_rollback ? "last stable revision" : NULL, "analysis", p->analysis,
			 "watch_ms", (json_int_t)p->watch_ms, "batches", batches);
}
