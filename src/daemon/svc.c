/* One service in the daemon: the engine's state, committed to the store before every action, and
 * the runtime (health checks, timers, load balancer set) that carries the engine's intents out. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/amount.h"
#include "daemon/daemon.h"
#include "daemon/health.h"
#include "daemon/monitor.h"
#include "daemon/notify.h"
#include "driver/driver.h"
#include "lb/lb.h"
#include "spec/spec_secret.h"
#include "spec/spec_yaml.h"
#include "store/secrets.h"
#include "store/store.h"
#include "util/log.h"
#include "util/xmalloc.h"

/* ---- small lookups ---------------------------------------------------------------------------- */

static struct engine_inst *inst_of(struct svc *s, uint64_t id)
{
	for (size_t i = 0; i < s->st.n; i++)
		if (s->st.inst[i].id == id)
			return &s->st.inst[i];
	return NULL;
}

static struct svc_rt *rt_of(struct svc *s, uint64_t id, bool create)
{
	for (size_t i = 0; i < s->n_rt; i++)
		if (s->rt[i].id == id)
			return &s->rt[i];
	if (!create)
		return NULL;
	xgrow((void **)&s->rt, &s->cap_rt, s->n_rt + 1, sizeof *s->rt);
	struct svc_rt *r = &s->rt[s->n_rt++];
	memset(r, 0, sizeof *r);
	r->id = id;
	return r;
}

static void timer_free_cb(uv_handle_t *h)
{
	free(h);
}

static void rt_cancel_timer(struct svc_rt *r)
{
	if (r->timer != NULL) {
		uv_timer_stop(r->timer);
		uv_close((uv_handle_t *)r->timer, timer_free_cb);
		r->timer = NULL;
	}
}

static void rt_stop_health(struct svc_rt *r)
{
	if (r->hc != NULL) {
		health_stop(r->hc);
		r->hc = NULL;
	}
}

static void rt_drop(struct svc *s, uint64_t id)
{
	struct svc_rt *r = rt_of(s, id, false);
	if (r == NULL)
		return;
	rt_stop_health(r);
	rt_cancel_timer(r);
	*r = s->rt[--s->n_rt];
}

/* The driver of the service's instances: local, or ssh for ssh targets (NULL when it cannot be had). */
static struct drv *drv_of(struct svc *s)
{
	return s->spec.targets_local ? s->d->drv : daemon_drv_ssh(s->d);
}

/* ssh.parallel: the bound is the ssh driver's, for every service: the last spec applied (or
 * loaded) with ssh targets sets it. */
static void set_ssh_bound(struct svc *s)
{
	struct drv *dv = s->spec.targets_local ? NULL : daemon_drv_ssh(s->d);
	if (dv != NULL)
		drv_ssh_set_parallel(dv, s->spec.ssh_parallel);
}

static void target_key(const struct spec_target *t, char *buf, size_t len)
{
	snprintf(buf, len, "%s@%s:%d", t->user, t->host, t->port);
}

/* Whether port is used on host key by a live instance of the service other than `self`. */
static bool host_port_used(struct svc *s, const char *key, int port, uint64_t self)
{
	for (size_t k = 0; k < s->n_rt; k++) {
		const struct engine_inst *in = inst_of(s, s->rt[k].id);
		if (in != NULL && in->id != self && in->state != INST_GONE && in->port == port &&
		    strcmp(s->rt[k].host, key) == 0)
			return true;
	}
	return false;
}

/* A port of t's `ports` list free for instance self, or 0 (none free, or t lists none). */
static int free_host_port(struct svc *s, const struct spec_target *t, uint64_t self)
{
	char key[300];
	target_key(t, key, sizeof key);
	for (size_t i = 0; i < t->n_ports; i++)
		if (!host_port_used(s, key, t->ports[i], self))
			return t->ports[i];
	return 0;
}

/* The ssh target a new instance of revision rev starts on (spread): among the hosts of its zone
 * (all hosts without zone rules) that have a free port when they list ports, and that are not
 * known to be lost (all of them when every one is), the one with the fewest live instances of
 * rev, then of the service, then the first listed. NULL when no host qualifies. */
static const struct spec_target *pick_target(struct svc *s, int rev, const char *zone, uint64_t self)
{
	struct drv *dv = drv_of(s);
	const struct spec_target *best = NULL;
	int best_rev = 0, best_all = 0;
	bool best_lost = true;
	for (size_t i = 0; i < s->spec.n_targets; i++) {
		const struct spec_target *t = &s->spec.targets[i];
		if (*zone && strcmp(spec_target_zone(&s->spec, t), zone) != 0)
			continue;
		if (t->n_ports > 0 && free_host_port(s, t, self) == 0)
			continue;
		char key[300];
		target_key(t, key, sizeof key);
		int n_rev = 0, n_all = 0;
		for (size_t k = 0; k < s->n_rt; k++) {
			const struct engine_inst *in = inst_of(s, s->rt[k].id);
			if (in == NULL || in->state == INST_GONE || in->state == INST_FAILED || strcmp(s->rt[k].host, key) != 0)
				continue;
			n_all++;
			n_rev += in->revision == rev;
		}
		bool lost = drv_ssh_host_lost(dv, t);
		bool better = best == NULL || (best_lost && !lost) ||
			      (lost == best_lost && (n_rev < best_rev || (n_rev == best_rev && n_all < best_all)));
		if (better) {
			best = t;
			best_rev = n_rev;
			best_all = n_all;
			best_lost = lost;
		}
	}
	return best;
}

/* The target whose key (user@host:port) is `key`, or NULL. */
static const struct spec_target *target_by_key(struct svc *s, const char *key)
{
	for (size_t i = 0; i < s->spec.n_targets; i++) {
		char k[300];
		target_key(&s->spec.targets[i], k, sizeof k);
		if (strcmp(k, key) == 0)
			return &s->spec.targets[i];
	}
	return NULL;
}

/* ---- secret env values: kept in DATA/secrets/<service>, never in the store --------------------- */

static char *secrets_dir(const struct daemon *d)
{
	return xasprintf("%s/secrets", d->data);
}

/* Loads the service's secrets file into *x. A missing file is an empty set. 0 or a negative errno
 * (logged). */
static int secrets_of(struct daemon *d, const char *name, struct secrets *x)
{
	char *dir = secrets_dir(d);
	int r = secrets_load(dir, name, x);
	if (r == -ENOENT)
		r = 0;
	else if (r < 0)
		log_error("secrets", "service=%s msg=\"cannot read the secrets file\" path=%s/%s err=\"%s\"", name, dir,
			  name, r == -EBADMSG ? "not a secrets file" : strerror(-r));
	free(dir);
	return r;
}

/* Fills the secret env values of sp (parsed from revision rev's stored text, where they read as
 * the placeholder) from the secrets file. 0, or -ENOENT (logged) when the file has none for rev. */
static int fill_rev_secrets(struct svc *s, int rev, struct spec *sp)
{
	if (spec_secret_missing(sp) == 0)
		return 0;
	struct secrets x = {0};
	int r = secrets_of(s->d, s->name, &x);
	const struct spec_secrets *v = r == 0 ? secrets_get(&x, rev) : NULL;
	if (r == 0 && (v == NULL || spec_secret_fill(sp, v) < 0)) {
		log_error("secrets", "service=%s revision=%d msg=\"the revision has secret env values but the secrets file "
				     "DATA/secrets/%s has none for it; apply the spec again\"",
			  s->name, rev, s->name);
		r = -ENOENT;
	}
	secrets_clear(&x);
	return r;
}

/* The parsed spec of revision rev (from the store, cached). NULL if it cannot be had. */
static const struct spec *rev_spec(struct svc *s, int rev)
{
	for (size_t i = 0; i < s->n_revs; i++)
		if (s->revs[i].rev == rev)
			return &s->revs[i].spec;
	char *yaml = NULL;
	if (store_get_revision(s->d->store, s->name, rev, &yaml) < 0)
		return NULL;
	struct spec sp;
	struct spec_errors errs = {0};
	int r = spec_parse(yaml, strlen(yaml), NULL, &sp, &errs);
	xwipe(yaml, strlen(yaml)); /* a revision stored before redaction holds its secrets */
	free(yaml);
	spec_errors_clear(&errs);
	if (r < 0)
		return NULL;
	if (fill_rev_secrets(s, rev, &sp) < 0) {
		spec_clear(&sp);
		return NULL;
	}
	s->revs = xrealloc(s->revs, (s->n_revs + 1) * sizeof *s->revs);
	s->revs[s->n_revs].rev = rev;
	s->revs[s->n_revs].spec = sp;
	return &s->revs[s->n_revs++].spec;
}

struct svc *svc_new(struct daemon *d, const char *name)
{
	struct svc *s = xcalloc(1, sizeof *s);
	s->d = d;
	s->name = xstrdup(name);
	spec_init(&s->spec);
	engine_state_init(&s->st);
	return s;
}

void svc_detach(struct svc *s)
{
	if (s->wake != NULL) {
		uv_timer_stop(s->wake);
		uv_close((uv_handle_t *)s->wake, timer_free_cb);
		s->wake = NULL;
	}
	for (size_t i = 0; i < s->n_rt; i++) {
		rt_stop_health(&s->rt[i]);
		rt_cancel_timer(&s->rt[i]);
	}
	s->n_rt = 0;
}

void svc_free(struct svc *s)
{
	if (s == NULL)
		return;
	svc_detach(s);
	free(s->rt);
	for (size_t i = 0; i < s->n_revs; i++)
		spec_clear(&s->revs[i].spec);
	free(s->revs);
	spec_clear(&s->spec);
	engine_state_clear(&s->st);
	free(s->out.v);
	free(s->pushed);
	monitor_svc_free(s->mon);
	free(s->name);
	free(s);
}

static struct lb *lb_for(struct svc *s)
{
	struct lb *b = s->spec.lb == SPEC_LB_BUILTIN ? daemon_lb_builtin(s->d)
		       : s->spec.lb == SPEC_LB_HAPROXY ? daemon_lb_haproxy(s->d, s->spec.haproxy_socket, s->spec.haproxy_backend)
						       : NULL;
	return b != NULL ? b : s->d->lb_none;
}

struct lb *svc_lb(struct svc *s)
{
	return lb_for(s);
}

/* ---- committing ------------------------------------------------------------------------------- */

/* The state before a decision, to put back when the decision cannot be committed. */
struct st_snap {
	struct engine_state st;
	struct engine_inst *inst;
};

static void snap_take(const struct svc *s, struct st_snap *p)
{
	p->st = s->st;
	p->inst = xmalloc((s->st.n + 1) * sizeof *p->inst);
	memcpy(p->inst, s->st.inst, s->st.n * sizeof *p->inst);
}

static void snap_drop(struct st_snap *p)
{
	free(p->inst);
	p->inst = NULL;
}

/* Undoes the decision in memory: the state as taken (the engine writes into the instance buffer
 * ensure_buffers grew, never reallocates it), no intent. */
static void snap_restore(struct svc *s, struct st_snap *p)
{
	memcpy(s->st.inst, p->inst, p->st.n * sizeof *p->inst);
	p->st.inst = s->st.inst;
	p->st.cap = s->st.cap;
	s->st = p->st;
	s->out.n = 0;
	snap_drop(p);
}

/* Writes the instances' process ids and hosts not yet recorded (inside the caller's transaction). */
static int save_procs(struct svc *s)
{
	int r = 0;
	for (size_t i = 0; r == 0 && i < s->n_rt; i++) {
		struct svc_rt *rt = &s->rt[i];
		if (rt->proc_dirty && inst_of(s, rt->id) != NULL)
			r = store_set_proc(s->d->store, s->name, rt->id, rt->pid, rt->proc_start,
					   rt->host[0] ? rt->host : NULL);
	}
	return r;
}

/* Event retention inside the commit: once the service recorded a tenth of --keep-events since
 * its last prune, all but its newest keep_events go, so a crash loop cannot grow state.db beyond
 * about 1.1 x keep_events events of it between the daemon's periodic prunes. 0 or an error. */
static int keep_events_bounded(struct svc *s)
{
	long keep = s->d->keep_events;
	for (size_t i = 0; i < s->out.n; i++)
		s->events_unpruned += s->out.v[i].kind == INTENT_EVENT || s->out.v[i].kind == INTENT_ROLLOUT;
	if (keep <= 0 || s->events_unpruned < (size_t)(keep / 10 > 0 ? keep / 10 : 1))
		return 0;
	size_t n = 0;
	int r = store_prune_service_events(s->d->store, s->name, (size_t)keep, &n);
	if (r == 0) {
		s->events_unpruned = 0;
		if (n > 0)
			log_debug("store", "service=%s msg=\"pruned old events\" deleted=%zu", s->name, n);
	}
	return r;
}

/* After the commit that holds them. */
static void procs_saved(struct svc *s)
{
	for (size_t i = 0; i < s->n_rt; i++)
		s->rt[i].proc_dirty = false;
}

/* Makes the state and the step's events durable. Nothing is carried out unless this succeeded:
 * on failure (daemon_store_failed) the caller undoes the decision in memory, and it is made again
 * once the store takes writes. 0 or the store's error. */
static int commit(struct svc *s)
{
	struct store *st = s->d->store;
	int64_t now = daemon_now();
	uint64_t t0 = uv_hrtime();
	int r = store_begin(st);
	if (r == 0)
		r = store_save_state(st, s->name, &s->st, now);
	if (r == 0)
		r = store_add_intent_events(st, s->name, now, &s->out);
	if (r == 0)
		r = keep_events_bounded(s);
	/* Process ids ride along: a process started but not yet recorded is found by its marker. */
	if (r == 0)
		r = save_procs(s);
	if (r == 0)
		r = store_commit(st);
	if (r < 0) {
		char what[300];
		snprintf(what, sizeof what, "record the state of service %s", s->name);
		daemon_store_failed(s->d, what);
		store_rollback(st);
		return r;
	}
	procs_saved(s);
	log_debug("store", "service=%s msg=committed instances=%zu intents=%zu took_us=%llu", s->name, s->st.n, s->out.n,
		  (unsigned long long)((uv_hrtime() - t0) / 1000));
	for (size_t i = 0; i < s->out.n; i++) {
		const struct engine_intent *it = &s->out.v[i];
		char q[4 * sizeof it->text];
		if (it->kind == INTENT_EVENT || it->kind == INTENT_ROLLOUT)
			log_info("engine", "service=%s event=%s msg=\"%s\"", s->name, engine_event_name(it->event),
				 log_quote(it->text, sizeof it->text, q, sizeof q));
	}
	daemon_publish(s->d);
	notify_intents(s->d->notify, &s->spec, s->name, &s->st, &s->out, now);
	return 0;
}

static void ensure_buffers(struct svc *s)
{
	xgrow((void **)&s->st.inst, &s->st.cap, s->st.n + engine_inst_headroom(&s->spec, &s->st),
	      sizeof *s->st.inst);
	size_t need = engine_intent_bound(&s->spec, &s->st);
	if (need < s->st.n + 16)
		need = s->st.n + 16;
	xgrow((void **)&s->out.v, &s->out.cap, need, sizeof *s->out.v);
	s->out.n = 0;
}

/* ---- carrying intents out --------------------------------------------------------------------- */

/* A staging ended (drv_stage_cb; ctx is the daemon): an event and a log line. */
static void on_staged(void *ctx, const char *service, int revision, const char *version, int n_ok, int n_failed,
		      int n_skipped, int64_t ms, const char *first_failure)
{
	struct daemon *d = ctx;
	char text[512];
	int n = snprintf(text, sizeof text, "staged v%s (revision %d) on %d host%s in %lld ms", version[0] ? version : "?",
			 revision, n_ok, n_ok == 1 ? "" : "s", (long long)ms);
	if (n_failed > 0 && n < (int)sizeof text)
		n += snprintf(text + n, sizeof text - (size_t)n, "; install failed on %d: %.200s", n_failed,
			      first_failure ? first_failure : "");
	if (n_skipped > 0 && n < (int)sizeof text)
		snprintf(text + n, sizeof text - (size_t)n, "; %d unreachable (install per instance there)", n_skipped);
	if (n_failed > 0)
		log_warn("svc", "service=%s msg=\"%s\"", service, text);
	else
		log_info("svc", "service=%s msg=\"%s\"", service, text);
	if (daemon_find(d, service) == NULL)
		return;
	if (store_add_event(d->store, service, daemon_now(), "staged", 0, text, NULL) < 0)
		daemon_store_failed(d, "record an event");
	else
		daemon_publish(d);
}

/* Before the first start of a rollout's new revision on ssh targets: its install hook on every
 * host at once (the driver does it once per revision and makes the starts wait for it). */
static void stage_rollout(struct svc *s, int rev, const struct spec *rs, struct drv *dv)
{
	const struct engine_rollout *ro = &s->st.ro;
	if (ro->state != RO_PROGRESSING || ro->to_rev != rev)
		return;
	int r = drv_ssh_stage(dv, s->name, rev, &rs->tmpl, s->spec.targets, s->spec.n_targets, s->spec.ssh_accept_new,
			      on_staged, s->d);
	if (r > 0)
		log_info("svc", "service=%s revision=%d msg=\"staging: install hook on every host\"", s->name, rev);
	else if (r < 0)
		log_warn("svc", "service=%s revision=%d msg=\"cannot stage\" err=%d", s->name, rev, r);
}

static void start_now(struct svc *s, uint64_t id)
{
	struct engine_inst *in = inst_of(s, id);
	if (in == NULL || in->state != INST_PENDING)
		return;
	const struct spec *rs = rev_spec(s, in->revision);
	if (rs == NULL) {
		engine_observe(&s->st, id, OBS_START_FAILED, daemon_now(), "revision spec unreadable");
		daemon_dirty(s);
		return;
	}
	struct drv_start req = {
		.service = s->name,
		.id = id,
		.revision = in->revision,
		.tmpl = &rs->tmpl,
		.port = in->port,
		.log_dir = s->d->log_dir,
	};
	struct svc_rt *rt = rt_of(s, id, true);
	struct drv *dv = drv_of(s);
	if (!s->spec.targets_local) {
		const struct spec_target *t = target_by_key(s, rt->host); /* placed by assign_ports */
		if (dv == NULL || t == NULL) {
			engine_observe(&s->st, id, OBS_START_FAILED, daemon_now(), "no ssh driver or no target");
			daemon_dirty(s);
			return;
		}
		stage_rollout(s, in->revision, rs, dv);
		req.target = t;
		req.ssh_accept_new = s->spec.ssh_accept_new;
		req.systemd = s->spec.ssh_preset == SPEC_PRESET_SYSTEMD;
	}
	int r = drv_start(dv, &req);
	if (r < 0 && r != -EEXIST) {
		char cause[96];
		snprintf(cause, sizeof cause, "start: %s", strerror(-r));
		engine_observe(&s->st, id, OBS_START_FAILED, daemon_now(), cause);
		daemon_dirty(s);
	}
}

static void drain_timeout_cb(uv_timer_t *t)
{
	struct svc *s = t->data;
	for (size_t i = 0; i < s->n_rt; i++) {
		if (s->rt[i].timer != t)
			continue;
		uint64_t id = s->rt[i].id;
		rt_cancel_timer(&s->rt[i]);
		/* What the balancer last saw in flight (the builtin proxy: at most 100 ms ago), for the
		 * event: a drain that timed out is not one that was confirmed. */
		bool tcp = s->spec.protocol == SPEC_PROTO_TCP;
		int n = lb_inflight(lb_for(s), s->name, id);
		char d[32], cause[96];
		amount_format_duration(s->spec.drain_timeout_ms, d, sizeof d);
		if (n >= 0)
			snprintf(cause, sizeof cause, "drain timed out after %s with %d %s%s %s", d, n,
				 tcp ? "connection" : "request", n == 1 ? "" : "s", tcp ? "open (cut)" : "in flight");
		else
			snprintf(cause, sizeof cause, "drain timed out after %s (%s in flight unknown)", d,
				 tcp ? "connections" : "requests");
		log_info("svc", "service=%s instance=%llu msg=\"%s; stopping it\"", s->name, (unsigned long long)id,
			 cause); /* our own words: nothing to escape */
		/* tcp: connections can last forever; the balancer cuts the ones still open to it now */
		if (tcp)
			lb_close_backend(lb_for(s), s->name, id);
		engine_observe(&s->st, id, OBS_DRAINED, daemon_now(), cause);
		daemon_dirty(s);
		return;
	}
}

static void do_drain(struct svc *s, uint64_t id)
{
	struct svc_rt *r = rt_of(s, id, true);
	rt_stop_health(r);
	rt_cancel_timer(r);
	r->timer = xmalloc(sizeof *r->timer);
	uv_timer_init(s->d->loop, r->timer);
	r->timer->data = s;
	uv_timer_start(r->timer, drain_timeout_cb, (uint64_t)s->spec.drain_timeout_ms, 0);
}

static void do_stop(struct svc *s, uint64_t id)
{
	struct engine_inst *in = inst_of(s, id);
	struct svc_rt *r = rt_of(s, id, true);
	rt_stop_health(r);
	rt_cancel_timer(r);
	const struct spec *rs = in ? rev_spec(s, in->revision) : NULL;
	int signo = rs ? rs->stop_signal : s->spec.stop_signal;
	int64_t grace = rs ? rs->stop_grace_ms : s->spec.stop_grace_ms;
	struct drv *dv = drv_of(s);
	if (dv != NULL)
		drv_stop(dv, s->name, id, signo, grace);
}

/* Places one START of an ssh service: its host (recorded before, or picked now) and, when that
 * host lists ports, a port of the list. false (the start observed failed) when no host fits. */
static bool place_remote(struct svc *s, struct engine_inst *in)
{
	struct svc_rt *rt = rt_of(s, in->id, true);
	const struct spec_target *t = rt->host[0] ? target_by_key(s, rt->host) : NULL;
	if (t == NULL) {
		char *host = NULL;
		if (store_get_proc_host(s->d->store, s->name, in->id, &host) == 0 && host != NULL)
			t = target_by_key(s, host); /* recorded before a restart */
		free(host);
	}
	if (t == NULL)
		t = pick_target(s, in->revision, in->zone, in->id);
	if (t == NULL) {
		char cause[96];
		snprintf(cause, sizeof cause, "no host%s%s%s", in->zone[0] ? " in zone " : "", in->zone,
			 s->spec.n_targets > 0 ? " with a free port" : "");
		engine_observe(&s->st, in->id, OBS_START_FAILED, daemon_now(), cause);
		return false;
	}
	target_key(t, rt->host, sizeof rt->host);
	snprintf(rt->addr, sizeof rt->addr, "%s", t->host);
	rt->proc_dirty = true;
	if (t->n_ports > 0) {
		bool listed = false;
		for (size_t i = 0; i < t->n_ports; i++)
			listed |= t->ports[i] == in->port;
		if (!listed || host_port_used(s, rt->host, in->port, in->id))
			in->port = free_host_port(s, t, in->id);
		if (in->port == 0) {
			engine_observe(&s->st, in->id, OBS_START_FAILED, daemon_now(), "no free port on its host");
			return false;
		}
	}
	return true;
}

/* Gives every START its place: the host (ssh targets) and the port, and records them before
 * anything starts, so a restart knows every host and port in use. 0, or the store's error
 * (daemon_store_failed): then nothing may start. */
static int assign_ports(struct svc *s)
{
	bool any = false;
	for (size_t i = 0; i < s->out.n; i++) {
		struct engine_intent *it = &s->out.v[i];
		struct engine_inst *in;
		if (it->kind != INTENT_START || (in = inst_of(s, it->inst_id)) == NULL || in->state != INST_PENDING)
			continue;
		if (!s->spec.targets_local) {
			any = true;
			if (!place_remote(s, in))
				continue;
		}
		if (in->port != 0)
			continue;
		int p = daemon_alloc_port(s->d);
		if (p < 0) {
			engine_observe(&s->st, in->id, OBS_START_FAILED, daemon_now(), "no free port in the range");
			continue;
		}
		in->port = p;
		any = true;
	}
	if (!any && !s->resume)
		return 0;
	struct store *st = s->d->store;
	int r = store_begin(st);
	if (r == 0)
		r = store_save_state(st, s->name, &s->st, daemon_now());
	if (r == 0)
		r = save_procs(s);
	if (r == 0)
		r = store_commit(st);
	if (r < 0) {
		char what[300];
		snprintf(what, sizeof what, "record the hosts and ports of service %s", s->name);
		daemon_store_failed(s->d, what);
		store_rollback(st);
		return r;
	}
	procs_saved(s);
	return 0;
}

/* The balancer's view: available instances active, leaving ones draining. Pushed when changed. */
static void push_backends(struct svc *s)
{
	if (s->spec.lb == SPEC_LB_NONE && !s->pushed_valid && s->st.n == 0)
		return;
	struct lb_backend *v = xcalloc(s->st.n + 1, sizeof *v);
	size_t n = 0;
	int64_t now = daemon_now();
	for (size_t i = 0; i < s->st.n; i++) {
		const struct engine_inst *in = &s->st.inst[i];
		enum lb_backend_state bs;
		if (engine_inst_available(&s->spec, in, now) && in->announced)
			bs = LB_ACTIVE;
		else if (in->state == INST_DRAINING || in->state == INST_UNHEALTHY)
			bs = LB_DRAINING;
		else
			continue;
		v[n].id = in->id;
		v[n].revision = in->revision;
		v[n].state = bs;
		const struct svc_rt *rt = rt_of(s, in->id, false);
		snprintf(v[n].addr, sizeof v[n].addr, "%.56s:%d", rt != NULL && rt->addr[0] ? rt->addr : "127.0.0.1",
			 in->port);
		/* the weight of the instance's host (local instances, or a host no longer listed: 1) */
		const struct spec_target *t = rt != NULL && rt->host[0] ? target_by_key(s, rt->host) : NULL;
		v[n].weight = t != NULL && t->weight > 0 ? t->weight : 1;
		n++;
	}
	if (s->pushed_valid && n == s->n_pushed && memcmp(v, s->pushed, n * sizeof *v) == 0) {
		free(v);
		return;
	}
	int r = lb_set_backends(lb_for(s), s->name, s->spec.listen, s->spec.protocol == SPEC_PROTO_TCP ? "tcp" : "http",
				v, n);
	if (r < 0) {
		log_warn("lb", "service=%s msg=\"cannot update the load balancer\" err=%d", s->name, r);
		free(v);
		s->pushed_valid = false;
		return;
	}
	free(s->pushed);
	s->pushed = v;
	s->n_pushed = n;
	s->pushed_valid = true;
}

/* Carries out s->out, committed. When the places cannot be recorded nothing is: s->resume makes
 * svc_store_back re-issue the committed intents from the state. */
static void carry_out(struct svc *s)
{
	if (assign_ports(s) < 0) {
		s->resume = true;
		s->out.n = 0;
		return;
	}
	s->resume = false;
	/* Balancer first: a draining backend stops getting requests before anything else happens. */
	push_backends(s);
	for (size_t i = 0; i < s->out.n; i++) {
		const struct engine_intent *it = &s->out.v[i];
		switch (it->kind) {
		case INTENT_START:
			/* A restart's backoff is the engine's: it emits the START when it is due (the
			 * instance waits in BACKOFF until then, and arm_wake's timer brings that step). */
			start_now(s, it->inst_id);
			break;
		case INTENT_DRAIN:
			do_drain(s, it->inst_id);
			break;
		case INTENT_STOP:
			do_stop(s, it->inst_id);
			break;
		case INTENT_EVENT:
		case INTENT_ROLLOUT:
			break;
		}
	}
}

/* Whether a step changed anything worth a commit (the tick steps every service often). */
static bool state_changed(const struct engine_state *a, const struct engine_inst *a_inst, size_t a_n,
			  const struct engine_state *b)
{
	if (a_n != b->n || memcmp(&a->ro, &b->ro, sizeof a->ro) != 0 || a->target_rev != b->target_rev ||
	    a->stable_rev != b->stable_rev || a->next_inst_id != b->next_inst_id)
		return true;
	return memcmp(a_inst, b->inst, a_n * sizeof *a_inst) != 0;
}

static void wake_cb(uv_timer_t *t)
{
	svc_step(t->data);
}

/* Arms the service's timer for the engine's next deadline (a few ms late, never early). */
static void arm_wake(struct svc *s)
{
	if (s->d->stopping)
		return;
	if (s->wake == NULL) {
		s->wake = xmalloc(sizeof *s->wake);
		uv_timer_init(s->d->loop, s->wake);
		s->wake->data = s;
	}
	int64_t now = daemon_now();
	int64_t at = engine_next_deadline(&s->spec, &s->st, now);
	if (at == INT64_MAX) {
		uv_timer_stop(s->wake);
		return;
	}
	uv_timer_start(s->wake, wake_cb, (uint64_t)(at - now + 1), 0);
}

/* Hands the engine what each instance's last health probe saw: a health deadline's cause says
 * it. Before the snapshot, so that a new probe text alone is no change to commit. */
static void report_checks(struct svc *s)
{
	for (size_t i = 0; i < s->n_rt; i++)
		if (s->rt[i].hc != NULL)
			engine_observe(&s->st, s->rt[i].id, OBS_CHECK, daemon_now(),
				       health_last(s->rt[i].hc));
}

void svc_step(struct svc *s)
{
	/* No decision while it cannot be recorded: svc_store_back steps again. */
	if (daemon_store_down(s->d))
		return;
	s->dirty = false;
	ensure_buffers(s);
	/* What the engine needs of the balancer: whether traffic can reach the service. */
	s->st.no_traffic = s->spec.lb == SPEC_LB_BUILTIN && s->listener_error[0] != '\0';
	snprintf(s->st.no_traffic_why, sizeof s->st.no_traffic_why, "%s", s->listener_error);
	report_checks(s);
	struct st_snap snap;
	snap_take(s, &snap);
	bool was_live = s->st.ro.id != 0 && !engine_ro_done(s->st.ro.state);
	int r = engine_step(&s->spec, &s->st, daemon_now(), &s->out);
	if (r < 0) {
		log_error("engine", "service=%s msg=\"step failed\" err=%d", s->name, r);
		snap_drop(&snap);
		return;
	}
	bool changed = s->out.n > 0 || state_changed(&snap.st, snap.inst, snap.st.n, &s->st);
	if (changed && commit(s) < 0) {
		snap_restore(s, &snap);
		return;
	}
	snap_drop(&snap);
	carry_out(s);
	arm_wake(s);
	/* A rollout ended: its WAL frames go into the file, the WAL back to zero bytes. */
	if (was_live && engine_ro_done(s->st.ro.state) && store_checkpoint(s->d->store) < 0)
		log_debug("store", "service=%s msg=\"checkpoint not finished\" err=\"%s\"", s->name,
			  store_errmsg(s->d->store));
}

static void abort_for_host_key(struct svc *s, const char *why);

void svc_store_back(struct svc *s)
{
	if (s->pending_abort[0]) {
		char why[sizeof s->pending_abort];
		snprintf(why, sizeof why, "%s", s->pending_abort);
		s->pending_abort[0] = '\0';
		abort_for_host_key(s, why); /* before anything resumes */
	}
	if (s->resume) {
		ensure_buffers(s);
		engine_resume_intents(&s->st, &s->out);
		carry_out(s);
	}
	daemon_dirty(s);
}

/* ---- commands --------------------------------------------------------------------------------- */

static int command_error(int r, const struct svc *s, const char *verb, const struct svc_cmd *c,
			 const struct engine_history *h, char *msg, size_t len)
{
	const char *state = engine_ro_state_name(s->st.ro.state);
	if (r == ENGINE_EBADSTATE)
		snprintf(msg, len, "cannot %s %s: its rollout is %s%s", verb, s->name, state,
			 s->st.ro.state == RO_PAUSED && s->st.ro.pause != PAUSE_USER && strcmp(verb, "resume") == 0
				 ? " at a gate (use promote)"
				 : "");
	else if (r == ENGINE_ENOREV && strcmp(verb, "abort") == 0)
		snprintf(msg, len, "cannot abort %s: no stable revision to go back to (pause it, or apply another version)",
			 s->name);
	else if (r == ENGINE_ENOREV && c->rev != 0)
		snprintf(msg, len,
			 "cannot %s %s: no such revision %d (revisions are 1 to %d; see rollout history %s)",
			 verb, s->name, c->rev, s->st.latest_rev, s->name);
	else if (r == ENGINE_ENOREV)
		snprintf(msg, len, "cannot %s %s: no earlier stable revision than the current one (%d)", verb,
			 s->name, s->st.target_rev);
	else if (r == ENGINE_EUNSTABLE) {
		char how[200] = "";
		engine_rev_was_stable(&s->st, c->rev, h, how, sizeof how);
		snprintf(
		    msg, len,
		    "cannot %s %s: revision %d never became stable (%s); to go there anyway: rollout undo %s "
		    "--to-revision %d --force",
		    verb, s->name, c->rev, how, s->name, c->rev);
	} else
		snprintf(msg, len, "cannot %s %s: error %d", verb, s->name, r);
	return r;
}

/* The store takes no writes: msg says since when and why. -EAGAIN. */
static int store_down_error(const struct svc *s, const char *verb, char *msg, size_t len)
{
	const struct daemon *d = s->d;
	snprintf(msg, len,
		 "cannot %s %s now: the store takes no writes (for %lld s: %.300s); nothing was changed, "
		 "try again once `rollout status` no longer says so",
		 verb, s->name, (long long)(daemon_now() - d->store_down_since) / 1000, d->store_error);
	return -EAGAIN;
}

int svc_command(struct svc *s, const char *verb, const struct svc_cmd *c, char *msg, size_t len)
{
	static const struct svc_cmd none = {0};
	if (c == NULL)
		c = &none;
	if (daemon_store_down(s->d))
		return store_down_error(s, verb, msg, len);
	/* Undo judges whether its revision ever became stable from the whole history. */
	struct engine_history h = {NULL, 0};
	struct engine_rollout *hv = NULL;
	if (strcmp(verb, "undo") == 0 && c->rev != 0 && !c->force &&
	    store_list_rollouts(s->d->store, s->name, &hv, &h.n) < 0) {
		snprintf(msg, len, "cannot undo %s: cannot read its history: %.300s; nothing was changed",
			 s->name, store_errmsg(s->d->store));
		return -EIO;
	}
	h.v = hv;
	ensure_buffers(s);
	struct st_snap snap;
	snap_take(s, &snap);
	int64_t now = daemon_now();
	int r;
	if (strcmp(verb, "pause") == 0)
		r = engine_pause(&s->st, now, &s->out);
	else if (strcmp(verb, "resume") == 0)
		r = engine_resume(&s->st, now, &s->out);
	else if (strcmp(verb, "promote") == 0)
		r = engine_promote(&s->st, now, &s->out);
	else if (strcmp(verb, "abort") == 0)
		r = engine_abort_why(&s->st, c->why ? c->why : "aborted by user", now, &s->out);
	else if (strcmp(verb, "undo") == 0)
		r = engine_undo(&s->st, c->rev, c->force, &h, now, &s->out);
	else
		r = -EINVAL;
	if (r < 0) {
		if (r != -EINVAL)
			command_error(r, s, verb, c, &h, msg, len);
		free(hv);
		snap_drop(&snap);
		return r;
	}
	free(hv);
	r = commit(s);
	if (r < 0) {
		snap_restore(s, &snap);
		snprintf(msg, len, "cannot %s %s: cannot record it: %.300s; nothing was changed", verb,
			 s->name, store_errmsg(s->d->store));
		return r;
	}
	snap_drop(&snap);
	svc_step(s);
	return 0;
}

/* Splits the spec's text: *red (new string, caller frees) is the text to store, secret env values
 * redacted; the values go to the secrets file as revision rev's (when new_rev, or when the file has
 * none for rev), written durably now, before the commit that refers to them. 0, or a negative
 * code with msg filled and *red NULL. */
static int keep_secrets(struct svc *s, const struct spec *spec, const char *yaml, int rev, bool new_rev, char **red,
			char *msg, size_t len)
{
	struct spec_secrets sec = {0};
	int r = spec_secret_split(yaml, strlen(yaml), spec, red, &sec);
	if (r < 0) {
		snprintf(msg, len, "cannot keep the secret env values out of the stored spec: its text does not read "
				   "back the same once they are redacted; nothing was changed");
		return r;
	}
	struct secrets x = {0};
	if (sec.n > 0)
		r = secrets_of(s->d, s->name, &x);
	if (r == 0 && sec.n > 0 && (new_rev || secrets_get(&x, rev) == NULL)) {
		secrets_put(&x, rev, &sec);
		char *dir = secrets_dir(s->d);
		r = secrets_save(dir, s->name, &x);
		free(dir);
	}
	if (r < 0) {
		snprintf(msg, len, "cannot record the secret env values in DATA/secrets/%s: %s; nothing was changed",
			 s->name, r == -EBADMSG ? "it is not a secrets file" : strerror(-r));
		free(*red);
		*red = NULL;
	}
	secrets_clear(&x);
	spec_secret_clear(&sec);
	return r;
}

int svc_apply(struct svc *s, struct spec *spec, const char *yaml, int *rev, bool *changed,
	      const char **updated, size_t *n_updated, char *msg, size_t len)
{
	/* What changes outside the template, for the answer (a service applied before only). */
	*n_updated = s->st.latest_rev > 0 ? spec_changed_fields(&s->spec, spec, updated, SPEC_FIELDS_MAX) : 0;
	struct store *st = s->d->store;
	if (daemon_store_down(s->d))
		return store_down_error(s, "apply", msg, len);
	uint64_t hash = spec_template_hash(&spec->tmpl);
	const struct spec *cur = s->st.target_rev ? rev_spec(s, s->st.target_rev) : NULL;
	bool same_tmpl = cur != NULL && spec_template_hash(&cur->tmpl) == hash;
	/* A target revision whose stored spec no longer parses (a service taken over after it could
	 * not be loaded) gets a new revision: instances are started from a revision's stored text. */
	int target = same_tmpl ? s->st.target_rev : s->st.latest_rev + 1;
	*changed = !same_tmpl || spec->replicas != s->st.replicas;

	char *red = NULL;
	int r = keep_secrets(s, spec, yaml, target, !same_tmpl, &red, msg, len);
	if (r < 0)
		return r;
	ensure_buffers(s);
	int64_t now = daemon_now();
	r = store_begin(st);
	if (r == 0 && !same_tmpl)
		r = store_put_revision(st, s->name, target, hash, spec->tmpl.version, red, now);
	if (r == 0)
		r = store_set_service_spec(st, s->name, red);
	free(red);
	struct st_snap snap;
	snap_take(s, &snap);
	bool engine_failed = false;
	if (r == 0) {
		r = engine_apply(spec, &s->st, target, now, &s->out);
		engine_failed = r < 0;
		if (r < 0)
			snprintf(msg, len, "cannot apply: engine error %d", r);
	}
	if (r == 0)
		r = store_save_state(st, s->name, &s->st, now);
	if (r == 0)
		r = store_add_intent_events(st, s->name, now, &s->out);
	if (r == 0)
		r = store_commit(st);
	if (r < 0) {
		if (msg[0] == '\0')
			snprintf(msg, len, "cannot record the spec: %s; nothing was changed",
				 store_errmsg(st));
		if (!engine_failed) {
			char what[300];
			snprintf(what, sizeof what, "record a spec of service %s", s->name);
			daemon_store_failed(s->d, what);
		}
		store_rollback(st);
		/* Nothing changed: restore what the engine touched in memory. */
		snap_restore(s, &snap);
		return r;
	}
	snap_drop(&snap);
	spec_clear(&s->spec);
	s->spec = *spec;
	spec_init(spec); /* ownership moved */
	set_ssh_bound(s);
	*rev = target;
	daemon_publish(s->d);
	for (size_t i = 0; i < s->out.n; i++) {
		char q[4 * sizeof s->out.v[i].text];
		if (s->out.v[i].kind == INTENT_ROLLOUT || s->out.v[i].kind == INTENT_EVENT)
			log_info("engine", "service=%s event=%s msg=\"%s\"", s->name,
				 engine_event_name(s->out.v[i].event),
				 log_quote(s->out.v[i].text, sizeof s->out.v[i].text, q, sizeof q));
	}
	notify_intents(s->d->notify, &s->spec, s->name, &s->st, &s->out, now);
	s->pushed_valid = false;
	/* A lost target is checked now rather than at its next retry: a host whose key changed while
	 * it was down is then found while this rollout can still stop for it. */
	for (size_t i = 0; !s->spec.targets_local && s->d->drv_ssh != NULL && i < s->spec.n_targets; i++)
		drv_ssh_check_lost(s->d->drv_ssh, &s->spec.targets[i]);
	svc_step(s);
	return 0;
}

/* ---- observations ----------------------------------------------------------------------------- */

static void on_health(void *ctx, uint64_t id, bool healthy, const char *detail)
{
	svc_on_health(ctx, id, healthy, detail);
}

/* health_runner of ssh targets: an exec check runs on the instance's host (`where`, user@host:port),
 * through the ssh driver. ctx is the service. */
static int exec_on_host(void *ctx, const char *where, char *const *argv, size_t n, const char *host, int port,
			int64_t timeout_ms, void (*done)(void *arg, int status, const char *detail), void *arg, void **req)
{
	struct svc *s = ctx;
	const struct spec_target *t = NULL;
	for (size_t i = 0; i < s->spec.n_targets && t == NULL; i++) {
		char key[300];
		target_key(&s->spec.targets[i], key, sizeof key);
		if (strcmp(key, where) == 0)
			t = &s->spec.targets[i];
	}
	if (t == NULL)
		return -ENOENT; /* no longer a target */
	struct drv_exec x = {.target = t,
			     .ssh_accept_new = s->spec.ssh_accept_new,
			     .argv = argv,
			     .n_argv = n,
			     .port = port,
			     .host = host,
			     .timeout_ms = timeout_ms};
	return drv_exec(daemon_drv_ssh(s->d), &x, done, arg, (struct drv_req **)req);
}

static void exec_cancel(void *ctx, void *req)
{
	struct svc *s = ctx;
	drv_cancel(daemon_drv_ssh(s->d), req);
}

void svc_on_started(struct svc *s, uint64_t id, int pid)
{
	struct engine_inst *in = inst_of(s, id);
	struct svc_rt *r = rt_of(s, id, true);
	r->pid = pid;
	r->started = true;
	int dpid = 0;
	uint64_t pstart = 0;
	if (drv_of(s) != NULL && drv_proc_info(drv_of(s), s->name, id, &dpid, &pstart) == 0) {
		r->pid = dpid;
		r->proc_start = pstart;
		r->proc_dirty = true;
	}
	if (in == NULL)
		return;
	engine_observe(&s->st, id, OBS_STARTED, daemon_now(), NULL);
	bool live = in->state == INST_STARTED || in->state == INST_READY || in->state == INST_UNHEALTHY;
	const struct spec *rs = rev_spec(s, in->revision);
	if (live && rs != NULL && r->hc == NULL) {
		if (rs->health.kind == SPEC_CHECK_NONE) {
			engine_observe(&s->st, id, OBS_HEALTHY, daemon_now(), NULL);
		} else if (health_start_on(s->d->health, &rs->health, r->addr[0] ? r->addr : "127.0.0.1", in->port, id,
					   r->host[0] ? &(struct health_runner){s, exec_on_host, exec_cancel} : NULL,
					   r->host[0] ? r->host : rs->tmpl.workdir,
					   on_health, s, &r->hc) < 0) {
			log_warn("health", "service=%s instance=%llu msg=\"cannot start health check\"", s->name,
				 (unsigned long long)id);
		}
	}
	daemon_dirty(s);
}

/* A host that is not the one we know is not a failure to retry around: a deployment in progress
 * stops and goes back (why: the reason it records). */
static void abort_for_host_key(struct svc *s, const char *why)
{
	if (s->st.ro.kind != RO_KIND_DEPLOY ||
	    (s->st.ro.state != RO_PROGRESSING && s->st.ro.state != RO_PAUSED))
		return;
	char msg[256] = "";
	log_error("svc", "service=%s msg=\"aborting the rollout\" cause=\"%s\"", s->name, why);
	if (svc_command(s, "abort", &(struct svc_cmd){.why = why}, msg, sizeof msg) < 0) {
		log_error("svc", "service=%s msg=\"cannot abort\" err=\"%s\"", s->name, msg);
		if (daemon_store_down(s->d)) /* not lost: made once the store takes writes again */
			snprintf(s->pending_abort, sizeof s->pending_abort, "%s", why);
	}
}

void svc_on_exited(struct svc *s, uint64_t id, const char *cause)
{
	struct engine_inst *in = inst_of(s, id);
	rt_drop(s, id);
	if (in == NULL)
		return;
	bool unexpected = in->state == INST_STARTED || in->state == INST_READY || in->state == INST_UNHEALTHY ||
			  in->state == INST_PENDING;
	if (unexpected) {
		char q[512];
		log_warn("svc", "service=%s instance=%llu revision=%d msg=\"exited\" cause=\"%s\"", s->name,
			 (unsigned long long)id, in->revision, log_quote(cause, 128, q, sizeof q));
	}
	engine_observe(&s->st, id, OBS_EXITED, daemon_now(), cause);
	daemon_dirty(s);
	if (cause != NULL && strncmp(cause, "host key verification failed", 28) == 0)
		abort_for_host_key(s, cause);
}

void svc_on_host_key(struct svc *s, const char *user, const char *host, int port, const char *detail)
{
	const struct spec_target *t = NULL;
	for (size_t i = 0; i < s->spec.n_targets && t == NULL; i++) {
		const struct spec_target *c = &s->spec.targets[i];
		if ((c->port > 0 ? c->port : 22) == port && strcmp(c->host, host) == 0 &&
		    strcmp(c->user, user) == 0)
			t = c;
	}
	if (t == NULL)
		return;
	char text[320];
	snprintf(
	    text, sizeof text,
	    "host key of %s@%s:%d changed: %.120s; nothing more is done there until a connection passes the "
	    "check (check the host, then fix known_hosts)",
	    user, host, port, detail ? detail : "");
	log_error("svc", "service=%s target=%s msg=\"%s\"", s->name, t->url, text);
	if (store_add_event(s->d->store, s->name, daemon_now(), "host_key_changed", 0, text, NULL) < 0)
		daemon_store_failed(s->d, "record an event");
	daemon_publish(s->d);
	char why[160];
	snprintf(why, sizeof why, "host key of %s@%s:%d changed", user, host, port);
	abort_for_host_key(s, why);
}

void svc_on_health(struct svc *s, uint64_t id, bool healthy, const char *detail)
{
	if (inst_of(s, id) == NULL)
		return;
	struct engine_inst *in = inst_of(s, id);
	char q[512];
	if (!healthy)
		log_info("health", "service=%s instance=%llu msg=\"unhealthy\" detail=\"%s\"", s->name,
			 (unsigned long long)id, log_quote(detail, 128, q, sizeof q));
	else
		log_debug("health", "service=%s instance=%llu msg=healthy after_ms=%lld", s->name, (unsigned long long)id,
			  (long long)(daemon_now() - in->created_at));
	monitor_health_result(s, healthy);
	engine_observe(&s->st, id, healthy ? OBS_HEALTHY : OBS_UNHEALTHY, daemon_now(), detail);
	daemon_dirty(s);
}

void svc_on_lb_problem(struct svc *s, const char *error)
{
	if (error == NULL && s->lb_error[0] == '\0')
		return;
	int64_t now = daemon_now();
	char text[sizeof s->lb_error + 32];
	if (error != NULL) {
		log_one_line(error, sizeof s->lb_error, s->lb_error, sizeof s->lb_error); /* status shows it on a line */
		s->lb_error_since = now;
		snprintf(text, sizeof text, "load balancer: %s", s->lb_error);
	} else {
		s->lb_error[0] = '\0';
		s->lb_error_since = 0;
		snprintf(text, sizeof text, "load balancer in sync again");
	}
	if (store_add_event(s->d->store, s->name, now, error ? "lb_problem" : "lb_ok", 0, text, NULL) < 0)
		daemon_store_failed(s->d, "record an event");
	daemon_publish(s->d);
}

void svc_on_lb_listener(struct svc *s, const char *why)
{
	char text[sizeof s->listener_error];
	log_one_line(why ? why : "", sizeof text, text, sizeof text);
	if (strcmp(text, s->listener_error) == 0)
		return;
	snprintf(s->listener_error, sizeof s->listener_error, "%s", text);
	if (why == NULL)
		snprintf(text, sizeof text, "listener %s bound", s->spec.listen ? s->spec.listen : "?");
	if (store_add_event(s->d->store, s->name, daemon_now(), why ? "listener_unbound" : "listener_bound", 0, text,
			    NULL) < 0)
		daemon_store_failed(s->d, "record an event");
	daemon_publish(s->d);
	daemon_dirty(s);
}

void svc_on_drained(struct svc *s, uint64_t id)
{
	struct engine_inst *in = inst_of(s, id);
	if (in == NULL || in->state != INST_DRAINING)
		return;
	struct svc_rt *r = rt_of(s, id, false);
	if (r != NULL)
		rt_cancel_timer(r);
	engine_observe(&s->st, id, OBS_DRAINED, daemon_now(), NULL);
	daemon_dirty(s);
}

/* ---- loading after a restart ------------------------------------------------------------------ */

/* Re-adopts an instance on an ssh target: the host recorded with it must still be a target. */
static int adopt_remote(struct svc *s, struct svc_rt *rt, uint64_t id, int pid, uint64_t pstart)
{
	char *host = NULL;
	struct drv *dv = drv_of(s);
	if (dv == NULL || store_get_proc_host(s->d->store, s->name, id, &host) < 0 || host == NULL)
		return -ESRCH;
	int r = -ESRCH;
	for (size_t i = 0; i < s->spec.n_targets; i++) {
		char key[300];
		target_key(&s->spec.targets[i], key, sizeof key);
		if (strcmp(key, host) == 0) {
			snprintf(rt->host, sizeof rt->host, "%s", key);
			snprintf(rt->addr, sizeof rt->addr, "%s", s->spec.targets[i].host);
			r = drv_ssh_adopt_on(dv, &s->spec.targets[i], s->name, id, pid, pstart);
			break;
		}
	}
	free(host);
	return r;
}

/* Fills the secret env values of the latest applied spec (read from the store, redacted). Its
 * template is a revision's (the one it made or matched), so the values are those of the file's
 * entry that, filled in, gives a template hash the store has as a revision. 0, or -ENOENT
 * (logged) when no entry does. */
static int fill_spec_secrets(struct svc *s)
{
	struct spec *sp = &s->spec;
	if (spec_secret_missing(sp) == 0)
		return 0;
	struct secrets x = {0};
	int r = secrets_of(s->d, s->name, &x);
	const struct spec_secrets *hit = NULL;
	struct spec_kv *env = xmalloc((sp->tmpl.n_env + 1) * sizeof *env);
	for (size_t i = x.n; r == 0 && hit == NULL && i-- > 0;) {
		const struct spec_secrets *v = &x.v[i].vals;
		bool all = true;
		for (size_t k = 0; k < sp->tmpl.n_env; k++) {
			env[k] = sp->tmpl.env[k]; /* a shallow copy: values borrowed, nothing freed */
			if (env[k].secret && strcmp(env[k].value, SPEC_SECRET_PLACEHOLDER) == 0) {
				const char *val = spec_secret_get(v, env[k].name);
				all = all && val != NULL;
				env[k].value = (char *)(val ? val : "");
			}
		}
		struct spec_template t = sp->tmpl;
		t.env = env;
		int found = 0;
		if (all && store_find_revision(s->d->store, s->name, spec_template_hash(&t), &found) == 0)
			hit = v;
	}
	free(env);
	if (r == 0 && (hit == NULL || spec_secret_fill(sp, hit) < 0)) {
		log_error("secrets", "service=%s msg=\"the spec has secret env values but the secrets file "
				     "DATA/secrets/%s has none of a recorded revision; apply the spec again\"",
			  s->name, s->name);
		r = -ENOENT;
	}
	secrets_clear(&x);
	return r;
}

/* Puts the first of the spec's messages (and how many more there are) into why. */
static void spec_errors_why(const struct spec_errors *e, char *why, size_t len)
{
	if (e->n == 0)
		snprintf(why, len, "the stored spec does not parse");
	else if (e->n == 1)
		snprintf(why, len, "%s", e->v[0]);
	else
		snprintf(why, len, "%s (and %zu more)", e->v[0], e->n - 1);
}

int svc_load(struct daemon *d, const char *name, const char *yaml_text, struct svc **out, char *why,
	     size_t len)
{
	char *yaml = NULL;
	int r = 0;
	if (yaml_text != NULL)
		yaml = xstrdup(yaml_text);
	else
		r = store_get_service_spec(d->store, name, &yaml);
	if (r < 0) {
		snprintf(why, len, "cannot read its spec: %s", store_errmsg(d->store));
		return r;
	}
	struct svc *s = svc_new(d, name);
	struct spec_errors errs = {0};
	r = spec_parse(yaml, strlen(yaml), yaml_text ? "spec" : "stored spec", &s->spec, &errs);
	xwipe(yaml, strlen(yaml)); /* a spec stored before redaction holds its secrets */
	free(yaml);
	if (r < 0)
		spec_errors_why(&errs, why, len);
	spec_errors_clear(&errs);
	if (r == 0 && s->spec.service != NULL && strcmp(s->spec.service, name) != 0) {
		snprintf(why, len, "the stored spec names service '%s'", s->spec.service);
		r = -EINVAL;
	}
	if (r == 0 && yaml_text == NULL && (r = fill_spec_secrets(s)) < 0)
		snprintf(why, len, "the stored spec has secret env values that DATA/secrets/%s does not hold",
			 name);
	if (r == 0 && (r = store_load_state(d->store, name, &s->st)) < 0)
		snprintf(why, len, "cannot read its state: %s", store_errmsg(d->store));
	if (r == 0)
		set_ssh_bound(s);
	if (r < 0) {
		svc_free(s);
		return r;
	}
	int64_t now = daemon_now();
	/* Re-adopt what still runs; what is gone is observed gone. */
	for (size_t i = 0; i < s->st.n; i++) {
		struct engine_inst *in = &s->st.inst[i];
		if (in->state == INST_GONE || in->state == INST_FAILED || in->state == INST_BACKOFF)
			continue; /* BACKOFF: no process yet; the step starts it when its backoff ends */
		int pid = 0;
		uint64_t pstart = 0;
		if (store_get_proc(d->store, name, in->id, &pid, &pstart) < 0)
			pid = 0;
		struct svc_rt *rt = rt_of(s, in->id, true);
		int a = s->spec.targets_local ? drv_adopt(d->drv, name, in->id, pid, pstart)
					      : adopt_remote(s, rt, in->id, pid, pstart);
		if (a == 0 || a == -EEXIST) {
			if (in->state == INST_PENDING)
				engine_observe(&s->st, in->id, OBS_STARTED, now, NULL);
			continue;
		}
		rt_drop(s, in->id);
		if (in->state != INST_PENDING)
			engine_observe(&s->st, in->id, OBS_EXITED, now, "gone while the daemon was down");
	}
	ensure_buffers(s);
	engine_resume_intents(&s->st, &s->out);
	carry_out(s);
	*out = s;
	return 0;
}

/* ---- status ----------------------------------------------------------------------------------- */

/* A finished rollout whose service is not whole: how many serve, and the next restart. */
static void health_words(const struct svc *s, enum engine_health h, int avail, char *buf, size_t len)
{
	int64_t next = INT64_MAX, now = daemon_now();
	int restarts = 0;
	for (size_t i = 0; i < s->st.n; i++) {
		const struct engine_inst *in = &s->st.inst[i];
		if (in->state == INST_BACKOFF && in->start_at < next) {
			next = in->start_at;
			restarts = in->restarts;
		}
	}
	int n = snprintf(buf, len, "%s: %d of %d available", h == HEALTH_CRASH_LOOPING ? "crash-looping" : "degraded",
			 avail, s->st.replicas);
	if (next != INT64_MAX && n > 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, "; next restart (restart %d) in %lld ms", restarts,
			 (long long)(next > now ? next - now : 0));
}

/* What the rollout waits for, in words. */
static void waiting_for(const struct svc *s, int new_total, int new_avail, int old_total, char *buf, size_t len)
{
	const struct engine_rollout *ro = &s->st.ro;
	int goal = engine_batch_goal(&s->spec, &s->st);
	bool analysis = s->spec.strategy.analysis.enabled && !ro->fast && ro->kind == RO_KIND_DEPLOY;
	int avail = 0;
	enum engine_health health = engine_health(&s->spec, &s->st, daemon_now(), &avail);
	if (ro->state == RO_PAUSED)
		snprintf(buf, len, "%s", ro->reason[0] ? ro->reason : "paused");
	else if (ro->state == RO_COMPLETE && analysis && daemon_now() < ro->watch_until)
		snprintf(buf, len, "nothing; watching the traffic for %llds more (%.100s)",
			 (long long)(ro->watch_until - daemon_now()) / 1000,
			 s->st.verdict_reason[0] ? s->st.verdict_reason : "measuring");
	else if (engine_ro_done(ro->state) && health != HEALTH_OK)
		health_words(s, health, avail, buf, len);
	else if (daemon_now() < engine_settle_until(&s->spec, &s->st))
		snprintf(buf, len, "nothing; revision %d failing in the next %llds rolls it back (%s)",
			 s->st.target_rev, (long long)(engine_settle_until(&s->spec, &s->st) - daemon_now() + 999) / 1000,
			 s->spec.strategy.min_stable_ms >= s->spec.strategy.watch_ms ? "min_stable" : "watch");
	else if (engine_ro_done(ro->state))
		snprintf(buf, len, "nothing");
	else if (engine_waits_for_traffic(&s->spec, &s->st, daemon_now()))
		snprintf(buf, len, "its traffic: %s", s->st.no_traffic_why);
	else if (new_avail < goal)
		snprintf(buf, len, "%d new instance(s) to become available (%d of %d started)", goal - new_avail,
			 new_total, goal);
	else if (old_total > s->st.replicas - goal)
		snprintf(buf, len, "%d old instance(s) to drain and stop", old_total - (s->st.replicas - goal));
	else if (analysis && goal < s->st.replicas)
		snprintf(buf, len, "analysis of batch %d's traffic over a full window (%.100s)", ro->batch + 1,
			 s->st.verdict_reason[0] ? s->st.verdict_reason : "measuring");
	else
		snprintf(buf, len, "the next step");
}

json_t *svc_rollout_json(const struct engine_rollout *ro, int64_t now)
{
	char oc[200], reason[4 * sizeof ro->reason];
	log_one_line(ro->reason, sizeof ro->reason, reason, sizeof reason); /* it may quote a driver's text */
	json_t *r = json_pack("{s:I,s:s,s:s,s:s,s:s,s:b,s:i,s:i,s:i,s:i,s:i,s:I,s:s,s:I}", "id", (json_int_t)ro->id,
			      "kind", engine_ro_kind_name(ro->kind), "began_as",
			      engine_ro_kind_name(engine_ro_began_as(ro->kind)), "state",
			      engine_ro_state_name(ro->state), "outcome", engine_ro_outcome(ro, oc, sizeof oc),
			      "succeeded", engine_ro_succeeded(ro), "from_revision", ro->from_rev, "to_revision",
			      ro->to_rev, "rollback_revision", ro->rollback_rev, "from_replicas", ro->from_replicas,
			      "to_replicas", ro->to_replicas, "started_at", (json_int_t)ro->started_at, "reason",
			      reason, "elapsed_ms",
			      (json_int_t)((ro->ended_at ? ro->ended_at : now) - ro->started_at));
	json_object_set_new(r, "ended_at", ro->ended_at ? json_integer(ro->ended_at) : json_null());
	return r;
}

const char *svc_version_of(struct svc *s, int rev)
{
	const struct spec *sp = rev == s->st.target_rev && s->spec.tmpl.version ? &s->spec : rev_spec(s, rev);
	return sp != NULL && sp->tmpl.version != NULL ? sp->tmpl.version : NULL;
}

json_t *svc_status_json(struct svc *s)
{
	int64_t now = daemon_now();
	const struct engine_rollout *ro = &s->st.ro;
	json_t *j = json_object();
	json_object_set_new(j, "service", json_string(s->name));
	json_object_set_new(j, "replicas", json_integer(s->st.replicas));
	json_object_set_new(j, "target_revision", json_integer(s->st.target_rev));
	json_object_set_new(j, "stable_revision", json_integer(s->st.stable_rev));
	/* the version of every revision that runs or that status names */
	json_t *vers = json_object();
	const int named[] = {s->st.target_rev, s->st.stable_rev, ro->from_rev, ro->rollback_rev};
	for (size_t i = 0; i < s->st.n + 4; i++) {
		int rev = i < s->st.n ? s->st.inst[i].revision : named[i - s->st.n];
		char key[16];
		snprintf(key, sizeof key, "%d", rev);
		const char *v = rev > 0 && json_object_get(vers, key) == NULL ? svc_version_of(s, rev) : NULL;
		if (v != NULL)
			json_object_set_new(vers, key, json_string(v));
	}
	json_object_set_new(j, "versions", vers);
	json_object_set_new(j, "lb", json_string(s->spec.lb == SPEC_LB_NONE ? "none"
						 : s->spec.lb == SPEC_LB_HAPROXY ? "haproxy"
										: "builtin"));
	if (s->spec.listen)
		json_object_set_new(j, "listen", json_string(s->spec.listen));

	int total = 0, avail = 0, new_total = 0, new_avail = 0, old_total = 0;
	json_t *byrev = json_object();
	json_t *insts = json_array();
	for (size_t i = 0; i < s->st.n; i++) {
		const struct engine_inst *in = &s->st.inst[i];
		if (in->state == INST_GONE)
			continue;
		bool av = engine_inst_available(&s->spec, in, now);
		total++;
		avail += av;
		if (in->revision == s->st.target_rev) {
			new_total += in->state <= INST_UNHEALTHY || in->state == INST_BACKOFF;
			new_avail += av;
		} else {
			old_total++;
		}
		char key[16];
		snprintf(key, sizeof key, "%d", in->revision);
		json_t *rc = json_object_get(byrev, key);
		if (rc == NULL) {
			rc = json_pack("{s:i,s:i}", "total", 0, "available", 0);
			json_object_set_new(byrev, key, rc);
		}
		json_object_set_new(rc, "total", json_integer(json_integer_value(json_object_get(rc, "total")) + 1));
		json_object_set_new(rc, "available",
				    json_integer(json_integer_value(json_object_get(rc, "available")) + av));
		const struct svc_rt *r = rt_of(s, in->id, false);
		char cause[sizeof in->cause * 4];
		log_one_line(in->cause, sizeof in->cause, cause, sizeof cause); /* a driver's text: one line */
		json_t *ij = json_pack("{s:I,s:i,s:s,s:b,s:i,s:i,s:I,s:s}", "id", (json_int_t)in->id, "revision",
				       in->revision, "state", engine_inst_state_name(in->state), "available", av, "port",
				       in->port, "pid", r ? r->pid : 0, "since", (json_int_t)in->changed_at, "cause",
				       cause);
		if (r != NULL && r->host[0])
			json_object_set_new(ij, "host", json_string(r->host));
		if (in->zone[0])
			json_object_set_new(ij, "zone", json_string(in->zone));
		json_object_set_new(ij, "restarts", json_integer(in->restarts));
		/* what its last health probe saw; a failed one's cause says it when it mattered */
		const char *lc = r != NULL && r->hc != NULL ? health_last(r->hc) : in->check;
		if (lc[0])
			json_object_set_new(ij, "last_check", json_string(lc));
		if (in->state == INST_BACKOFF)
			json_object_set_new(ij, "restart_at", json_integer(in->start_at));
		json_array_append_new(insts, ij);
	}
	json_object_set_new(j, "counts", json_pack("{s:i,s:i,s:o}", "total", total, "available", avail,
						   "by_revision", byrev));
	json_object_set_new(j, "instances", insts);
	/* The service's own state, whatever its rollout says: a complete rollout whose instances
	 * then crash-loop reads "crash_looping" here, with counts.available. */
	json_object_set_new(j, "health", json_string(engine_health_name(engine_health(&s->spec, &s->st, now, NULL))));
	if (s->listener_error[0])
		json_object_set_new(j, "listener_error", json_string(s->listener_error));
	if (s->lb_error[0])
		json_object_set_new(j, "lb_error", json_pack("{s:s,s:I}", "text", s->lb_error, "since",
							     (json_int_t)s->lb_error_since));
	json_t *sj = daemon_store_json(s->d);
	if (sj != NULL)
		json_object_set_new(j, "store_error", sj);
	/* Targets not used because their key is not the one in known_hosts (docs/driver.md). */
	json_t *hk = NULL;
	for (size_t i = 0; s->d->drv_ssh != NULL && i < s->spec.n_targets; i++) {
		if (!drv_ssh_host_key_failed(s->d->drv_ssh, &s->spec.targets[i]))
			continue;
		if (hk == NULL)
			hk = json_array();
		json_array_append_new(hk, json_string(s->spec.targets[i].url));
	}
	if (hk != NULL)
		json_object_set_new(j, "host_key_changed", hk);

	if (ro->id == 0) {
		json_object_set_new(j, "rollout", json_null());
	} else {
		int batches = ro->fast || ro->kind == RO_KIND_SCALE ? 1
								    : spec_batch_count(&s->spec.strategy, s->st.replicas);
		int goal = engine_batch_goal(&s->spec, &s->st);
		const char *pn = ro->state == RO_PAUSED ? engine_pause_name(ro->pause) : NULL;
		json_t *rj = svc_rollout_json(ro, now);
		json_object_update_new(rj, json_pack("{s:i,s:i,s:i,s:i,s:i}", "batch", ro->batch + 1, "batches", batches,
						     "batch_goal", goal, "failures", ro->failures, "max_failures",
						     spec_max_failures(&s->spec.strategy, s->st.replicas)));
		json_object_set_new(rj, "pause", pn ? json_string(pn) : json_null());
		/* the verb that continues a pause, and whether it waits for a person (the engine's) */
		const char *cw = pn ? engine_pause_continue(ro->pause) : NULL;
		json_object_set_new(rj, "continue_with", cw ? json_string(cw) : json_null());
		json_object_set_new(rj, "needs_person", json_boolean(pn && engine_pause_needs_person(ro->pause)));
		json_object_set_new(j, "rollout", rj);
	}
	char wf[400], line[400];
	waiting_for(s, new_total, new_avail, old_total, wf, sizeof wf);
	json_object_set_new(j, "waiting_for", json_string(log_one_line(wf, sizeof wf, line, sizeof line)));
	return j;
}
