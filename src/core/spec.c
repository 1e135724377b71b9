/* The spec model: defaults, freeing, and the strategy arithmetic of DESIGN (surge/unavailable
 * rounding, batch goals). Pure: no I/O. */
#include "core/spec.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

void spec_init(struct spec *s)
{
	memset(s, 0, sizeof *s);
	s->replicas = 1;
	s->protocol = SPEC_PROTO_HTTP;
	s->health.kind = SPEC_CHECK_NONE;
	s->health.http_status = 200;
	s->health.interval_ms = 1000;
	s->health.timeout_ms = 1000;
	s->health.healthy_threshold = 1;
	s->health.unhealthy_threshold = 3;
	s->strategy.max_surge = (struct amount){.percent = true, .value = 25};
	s->strategy.max_unavailable = (struct amount){.percent = false, .value = 0};
	s->strategy.min_ready_ms = 0;
	s->strategy.health_deadline_ms = 5 * 60 * 1000;
	s->strategy.progress_deadline_ms = 10 * 60 * 1000;
	s->strategy.max_failures = (struct amount){.percent = false, .value = 0};
	s->strategy.auto_rollback = true;
	s->strategy.min_stable_ms = 30 * 1000;
	s->strategy.analysis.window_ms = 60 * 1000;
	s->strategy.analysis.min_requests = 50;
	s->drain_timeout_ms = 30 * 1000;
	s->stop_signal = SIGTERM;
	s->stop_grace_ms = 10 * 1000;
	s->targets_local = true;
	s->ssh_parallel = 10;
	s->lb = SPEC_LB_BUILTIN;
}

static void free_argv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void free_kv(struct spec_kv *kv, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(kv[i].name);
		if (kv[i].value != NULL && kv[i].secret)
			xwipe(kv[i].value, strlen(kv[i].value));
		free(kv[i].value);
	}
	free(kv);
}

void spec_clear(struct spec *s)
{
	free(s->file);
	free(s->service);
	free(s->listen);
	free(s->tmpl.version);
	free_argv(s->tmpl.command, s->tmpl.n_command);
	free_kv(s->tmpl.env, s->tmpl.n_env);
	free(s->tmpl.workdir);
	for (int k = 0; k < SPEC_HOOK__COUNT; k++)
		free_argv(s->tmpl.hooks[k], s->tmpl.n_hooks[k]);
	for (size_t i = 0; i < s->tmpl.n_files; i++) {
		free(s->tmpl.files[i].path);
		free(s->tmpl.files[i].content);
	}
	free(s->tmpl.files);
	free(s->health.http_path);
	free_argv(s->health.exec, s->health.n_exec);
	free(s->strategy.batches);
	free(s->strategy.pause_after);
	free(s->strategy.zones.label);
	for (size_t i = 0; i < s->n_targets; i++) {
		free(s->targets[i].url);
		free(s->targets[i].user);
		free(s->targets[i].host);
		free_kv(s->targets[i].labels, s->targets[i].n_labels);
		free(s->targets[i].ports);
	}
	free(s->targets);
	free(s->haproxy_socket);
	free(s->haproxy_backend);
	for (size_t i = 0; i < s->n_notify; i++)
		free(s->notify[i].url);
	free(s->notify);
	spec_init(s);
}

void spec_free(struct spec *s)
{
	if (s == NULL)
		return;
	spec_clear(s);
	free(s);
}

void spec_surge_unavailable(const struct spec_strategy *st, int replicas, int *surge, int *unavailable)
{
	int su = amount_ceil(st->max_surge, replicas);
	int un = amount_floor(st->max_unavailable, replicas);
	/* More surge than replicas can never be used (the parser refuses it as a percent, and a
	 * count past SPEC_REPLICAS_MAX); capped here too, since buffers are sized by it. */
	if (su > replicas)
		su = replicas;
	if (un > replicas)
		un = replicas;
	if (su == 0 && un == 0)
		un = 1;
	*surge = su;
	*unavailable = un;
}

/* Size of batch `index` on its own (the last entry repeats; percents floored, minimum 1). */
static int batch_size(const struct spec_strategy *st, int replicas, int index)
{
	if (st->n_batches == 0)
		return replicas;
	size_t i = (size_t)index < st->n_batches ? (size_t)index : st->n_batches - 1;
	int n = amount_floor(st->batches[i], replicas);
	return n < 1 ? 1 : n;
}

/* Both O(entries of batches), not O(batches): a status line, a metric and each engine step ask,
 * and 10000 replicas in batches of 1 made the quadratic forms take minutes over a rollout. */
int spec_batch_goal(const struct spec_strategy *st, int replicas, int index)
{
	if (index < 0)
		return 0;
	long long goal = 0;
	size_t n = st->n_batches > 0 ? st->n_batches : 1;
	for (size_t i = 0; i < n && (long long)i <= index && goal < replicas; i++)
		goal += batch_size(st, replicas, (int)i);
	/* Past the entries, the last one repeats. */
	if (goal < replicas && (long long)index >= (long long)n)
		goal += ((long long)index + 1 - (long long)n) * batch_size(st, replicas, (int)n - 1);
	return goal > replicas ? replicas : (int)goal;
}

int spec_batch_count(const struct spec_strategy *st, int replicas)
{
	if (replicas <= 0)
		return 1;
	long long goal = 0;
	size_t n = st->n_batches > 0 ? st->n_batches : 1;
	for (size_t i = 0; i < n; i++) {
		goal += batch_size(st, replicas, (int)i);
		if (goal >= replicas)
			return (int)i + 1;
	}
	long long last = batch_size(st, replicas, (int)n - 1);
	return (int)((long long)n + (replicas - goal + last - 1) / last);
}

const struct spec_pause *spec_pause_after(const struct spec_strategy *st, int batch)
{
	for (size_t i = 0; i < st->n_pause_after; i++)
		if (st->pause_after[i].batch == batch)
			return &st->pause_after[i];
	return NULL;
}

int spec_max_failures(const struct spec_strategy *st, int replicas)
{
	return amount_floor(st->max_failures, replicas);
}

const char *spec_target_zone(const struct spec *s, const struct spec_target *t)
{
	if (s->strategy.zones.label == NULL)
		return "";
	for (size_t i = 0; i < t->n_labels; i++)
		if (strcmp(t->labels[i].name, s->strategy.zones.label) == 0)
			return t->labels[i].value;
	return "";
}

/* The zone names in the order of targets into names[0..max) (borrowed); returns how many there
 * are, counting at most max + 1 (more than max: too many). O(targets x zones). */
static size_t collect_zones(const struct spec *s, const char **names, size_t max)
{
	if (s->strategy.zones.label == NULL || s->targets_local)
		return 0;
	size_t n = 0;
	for (size_t i = 0; i < s->n_targets && n <= max; i++) {
		const char *z = spec_target_zone(s, &s->targets[i]);
		size_t k = 0;
		while (k < n && k < max && strcmp(names[k], z) != 0)
			k++;
		if (k == n) {
			if (n < max)
				names[n] = z;
			n++;
		}
	}
	return n;
}

size_t spec_zone_count(const struct spec *s)
{
	const char *names[SPEC_ZONES_MAX];
	return collect_zones(s, names, SPEC_ZONES_MAX);
}

const char *spec_zone_name(const struct spec *s, size_t z)
{
	const char *names[SPEC_ZONES_MAX];
	size_t n = collect_zones(s, names, SPEC_ZONES_MAX);
	return z < n && z < SPEC_ZONES_MAX ? names[z] : "";
}

int spec_zone_index(const struct spec *s, const char *name)
{
	const char *names[SPEC_ZONES_MAX];
	size_t n = collect_zones(s, names, SPEC_ZONES_MAX);
	for (size_t z = 0; z < n && z < SPEC_ZONES_MAX; z++)
		if (strcmp(names[z], name) == 0)
			return (int)z;
	return -1;
}

void spec_zone_shares(const struct spec *s, int replicas, int *share)
{
	const char *names[SPEC_ZONES_MAX];
	size_t nz = collect_zones(s, names, SPEC_ZONES_MAX), h = s->n_targets;
	if (nz > SPEC_ZONES_MAX)
		nz = SPEC_ZONES_MAX; /* a spec the parser refuses; never past the caller's array */
	for (size_t z = 0; z < nz; z++)
		share[z] = 0;
	if (nz == 0)
		return;
	for (size_t i = 0; i < h; i++) {
		const char *tz = spec_target_zone(s, &s->targets[i]);
		for (size_t z = 0; z < nz; z++)
			if (strcmp(names[z], tz) == 0) {
				share[z] += replicas / (int)h + ((int)i < replicas % (int)h);
				break;
			}
	}
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool argv_eq(char *const *a, size_t na, char *const *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (!str_eq(a[i], b[i]))
			return false;
	return true;
}

static bool kv_eq(const struct spec_kv *a, size_t na, const struct spec_kv *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (!str_eq(a[i].name, b[i].name) || !str_eq(a[i].value, b[i].value) ||
		    a[i].secret != b[i].secret)
			return false;
	return true;
}

static bool amount_eq(struct amount a, struct amount b)
{
	return a.percent == b.percent && a.value == b.value;
}

static bool limit_eq(const struct spec_limit *a, const struct spec_limit *b)
{
	return a->set == b->set && (!a->set || (a->relative == b->relative && a->value == b->value));
}

static bool batches_eq(const struct spec_strategy *a, const struct spec_strategy *b)
{
	if (a->n_batches != b->n_batches)
		return false;
	for (size_t i = 0; i < a->n_batches; i++)
		if (!amount_eq(a->batches[i], b->batches[i]))
			return false;
	return true;
}

static bool pauses_eq(const struct spec_strategy *a, const struct spec_strategy *b)
{
	if (a->n_pause_after != b->n_pause_after)
		return false;
	for (size_t i = 0; i < a->n_pause_after; i++)
		if (a->pause_after[i].batch != b->pause_after[i].batch ||
		    a->pause_after[i].duration_ms != b->pause_after[i].duration_ms)
			return false;
	return true;
}

static bool analysis_eq(const struct spec_analysis *a, const struct spec_analysis *b)
{
	return a->enabled == b->enabled && limit_eq(&a->max_error_rate, &b->max_error_rate) &&
	       limit_eq(&a->max_p99, &b->max_p99) && a->window_ms == b->window_ms &&
	       a->min_requests == b->min_requests;
}

static bool zones_eq(const struct spec_zones *a, const struct spec_zones *b)
{
	return str_eq(a->label, b->label) && a->one_per_batch == b->one_per_batch &&
	       amount_eq(a->min_available, b->min_available);
}

static bool targets_eq(const struct spec *a, const struct spec *b)
{
	if (a->targets_local != b->targets_local || a->n_targets != b->n_targets)
		return false;
	for (size_t i = 0; i < a->n_targets; i++) {
		const struct spec_target *x = &a->targets[i], *y = &b->targets[i];
		if (!str_eq(x->url, y->url) || x->weight != y->weight ||
		    !kv_eq(x->labels, x->n_labels, y->labels, y->n_labels) || x->n_ports != y->n_ports ||
		    (x->n_ports > 0 && memcmp(x->ports, y->ports, x->n_ports * sizeof *x->ports) != 0))
			return false;
	}
	return true;
}

static bool notify_eq(const struct spec *a, const struct spec *b)
{
	if (a->n_notify != b->n_notify)
		return false;
	for (size_t i = 0; i < a->n_notify; i++)
		if (!str_eq(a->notify[i].url, b->notify[i].url) ||
		    a->notify[i].events != b->notify[i].events || a->notify[i].slack != b->notify[i].slack)
			return false;
	return true;
}

size_t spec_changed_fields(const struct spec *a, const struct spec *b, const char **names, size_t max)
{
	const struct spec_health *ha = &a->health, *hb = &b->health;
	const struct spec_strategy *sa = &a->strategy, *sb = &b->strategy;
	const struct {
		const char *name;
		bool same;
	} f[] = {
	    {"replicas", a->replicas == b->replicas},
	    {"listen", str_eq(a->listen, b->listen)},
	    {"protocol", a->protocol == b->protocol},
	    {"health", ha->kind == hb->kind},
	    {"health.http.path", ha->kind != hb->kind || str_eq(ha->http_path, hb->http_path)},
	    {"health.http.status", ha->kind != hb->kind || ha->http_status == hb->http_status},
	    {"health.exec", ha->kind != hb->kind || argv_eq(ha->exec, ha->n_exec, hb->exec, hb->n_exec)},
	    {"health.interval", ha->interval_ms == hb->interval_ms},
	    {"health.timeout", ha->timeout_ms == hb->timeout_ms},
	    {"health.healthy_threshold", ha->healthy_threshold == hb->healthy_threshold},
	    {"health.unhealthy_threshold", ha->unhealthy_threshold == hb->unhealthy_threshold},
	    {"strategy.max_surge", amount_eq(sa->max_surge, sb->max_surge)},
	    {"strategy.max_unavailable", amount_eq(sa->max_unavailable, sb->max_unavailable)},
	    {"strategy.batches", batches_eq(sa, sb)},
	    {"strategy.pause_after", pauses_eq(sa, sb)},
	    {"strategy.min_ready", sa->min_ready_ms == sb->min_ready_ms},
	    {"strategy.health_deadline", sa->health_deadline_ms == sb->health_deadline_ms},
	    {"strategy.progress_deadline", sa->progress_deadline_ms == sb->progress_deadline_ms},
	    {"strategy.max_failures", amount_eq(sa->max_failures, sb->max_failures)},
	    {"strategy.auto_rollback", sa->auto_rollback == sb->auto_rollback},
	    {"strategy.analysis", analysis_eq(&sa->analysis, &sb->analysis)},
	    {"strategy.watch", sa->watch_ms == sb->watch_ms},
	    {"strategy.min_stable", sa->min_stable_ms == sb->min_stable_ms},
	    {"strategy.zones", zones_eq(&sa->zones, &sb->zones)},
	    {"drain.timeout", a->drain_timeout_ms == b->drain_timeout_ms},
	    {"stop.signal", a->stop_signal == b->stop_signal},
	    {"stop.grace", a->stop_grace_ms == b->stop_grace_ms},
	    {"targets", targets_eq(a, b)},
	    {"ssh.accept_new", a->ssh_accept_new == b->ssh_accept_new},
	    {"ssh.preset", a->ssh_preset == b->ssh_preset},
	    {"ssh.parallel", a->ssh_parallel == b->ssh_parallel},
	    {"lb", a->lb == b->lb && str_eq(a->haproxy_socket, b->haproxy_socket) &&
		       str_eq(a->haproxy_backend, b->haproxy_backend)},
	    {"notify", notify_eq(a, b)},
	};
	_Static_assert(sizeof f / sizeof f[0] <= SPEC_FIELDS_MAX, "SPEC_FIELDS_MAX counts every field");
	size_t n = 0;
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
		if (f[i].same)
			continue;
		if (n < max)
			names[n] = f[i].name;
		n++;
	}
	return n;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* Each string is hashed with its length first, so ("ab","c") and ("a","bc") differ. */
static uint64_t fnv_str(uint64_t h, const char *s)
{
	uint64_t n = s ? strlen(s) + 1 : 0;
	h = fnv(h, &n, sizeof n);
	return s ? fnv(h, s, n - 1) : h;
}

uint64_t spec_template_hash(const struct spec_template *t)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	h = fnv_str(h, t->version);
	h = fnv(h, &t->n_command, sizeof t->n_command);
	for (size_t i = 0; i < t->n_command; i++)
		h = fnv_str(h, t->command[i]);
	h = fnv(h, &t->n_env, sizeof t->n_env);
	for (size_t i = 0; i < t->n_env; i++) {
		h = fnv_str(h, t->env[i].name);
		h = fnv_str(h, t->env[i].value);
	}
	h = fnv_str(h, t->workdir);
	/* Hooks take part only when set, so templates without any keep the hash they always had. */
	for (int k = 0; k < SPEC_HOOK__COUNT; k++) {
		if (t->n_hooks[k] == 0)
			continue;
		h = fnv(h, &k, sizeof k);
		h = fnv(h, &t->n_hooks[k], sizeof t->n_hooks[k]);
		for (size_t i = 0; i < t->n_hooks[k]; i++)
			h = fnv_str(h, t->hooks[k][i]);
	}
	/* Files likewise: a template without them keeps its hash. */
	if (t->n_files > 0) {
		static const char tag[] = "files";
		h = fnv(h, tag, sizeof tag);
		h = fnv(h, &t->n_files, sizeof t->n_files);
		for (size_t i = 0; i < t->n_files; i++) {
			h = fnv_str(h, t->files[i].path);
			h = fnv_str(h, t->files[i].content);
		}
	}
	return h;
}

/* The value of the name at p (just past "${"), and its length with the closing brace; NULL when
 * p starts no name spec_render knows. */
static const char *render_name(const char *p, const struct spec_vars *v, const char *port, size_t *skip)
{
	static const char *const names[] = {"PORT}", "INSTANCE}", "INSTANCE_DIR}", "VERSION}"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		size_t n = strlen(names[i]);
		if (strncmp(p, names[i], n) != 0)
			continue;
		*skip = n;
		const char *val = i == 0 ? port : i == 1 ? v->instance : i == 2 ? v->instance_dir : v->version;
		return val ? val : "";
	}
	return NULL;
}

char *spec_render(const char *text, const struct spec_vars *v)
{
	char port[16];
	snprintf(port, sizeof port, "%d", v->port);
	/* Twice: first the length (bounded), then the text. */
	char *out = NULL;
	for (int pass = 0; pass < 2; pass++) {
		size_t o = 0;
		for (const char *p = text; *p != '\0';) {
			const char *val = NULL;
			size_t skip = 0, n;
			if (p[0] == '$' && p[1] == '$' && p[2] == '{') {
				val = "${";
				skip = 3;
			} else if (p[0] == '$' && p[1] == '{') {
				val = render_name(p + 2, v, port, &skip);
				skip += 2;
			}
			if (val == NULL) {
				val = p;
				n = skip = 1;
			} else {
				n = strlen(val);
			}
			if (o + n > SPEC_RENDER_MAX)
				return NULL;
			if (out != NULL)
				memcpy(out + o, val, n);
			o += n;
			p += skip;
		}
		if (out != NULL) {
			out[o] = '\0';
			break;
		}
		out = xmalloc(o + 1);
	}
	return out;
}
