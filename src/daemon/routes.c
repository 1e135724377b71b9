/* The daemon's API (DESIGN "API"): JSON handlers over the services. Every handler validates its
 * input completely before it changes anything. docs/api.md is the reference. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/api.h"
#include "daemon/daemon.h"
#include "daemon/dashboard.h"
#include "daemon/metrics.h"
#include "driver/driver.h"
#include "lb/hapi.h"
#include "spec/spec_yaml.h"
#include "store/store.h"
#include "util/xmalloc.h"

/* The service the path names; NULL after replying 404, or 409 for a stored service that could
 * not be loaded at start (with why). */
static struct svc *find_or_404(struct daemon *d, struct api_req *req)
{
	const char *name = api_param(req, "name");
	struct svc *s = name ? daemon_find(d, name) : NULL;
	const struct daemon_unloaded *u = s == NULL && name ? daemon_find_unloaded(d, name) : NULL;
	if (u != NULL)
		api_reply_error(
		    req, 409,
		    "service '%s' was not loaded at start: %s; apply a corrected spec to take it over", name,
		    u->why);
	else if (s == NULL)
		api_reply_error(req, 404, "no service '%s'", name ? name : "");
	return s;
}

/* Whether name is a service of this daemon, loaded or not (its events can be read). */
static bool known_service(struct daemon *d, const char *name)
{
	return daemon_find(d, name) != NULL || daemon_find_unloaded(d, name) != NULL;
}

static void get_services(struct api_req *req, void *ctx)
{
	struct daemon *d = ctx;
	json_t *arr = json_array();
	for (size_t i = 0; i < d->n_svcs; i++)
		json_array_append_new(arr, svc_status_json(d->svcs[i]));
	json_t *j = json_pack("{s:o}", "services", arr);
	json_t *sj = daemon_store_json(d);
	if (sj != NULL)
		json_object_set_new(j, "store_error", sj);
	/* Stored services that could not be loaded at start: present only when there are some. */
	json_t *un = d->n_unloaded > 0 ? json_array() : NULL;
	for (size_t i = 0; i < d->n_unloaded; i++)
		json_array_append_new(un, json_pack("{s:s,s:s,s:I}", "service", d->unloaded[i].name, "error",
						    d->unloaded[i].why, "since",
						    (json_int_t)d->unloaded[i].since));
	if (un != NULL)
		json_object_set_new(j, "unloaded", un);
	api_reply_json(req, 200, j);
}

static void get_service(struct api_req *req, void *ctx)
{
	struct svc *s = find_or_404(ctx, req);
	if (s != NULL)
		api_reply_json(req, 200, svc_status_json(s));
}

/* lb: haproxy: a socket the balancer can reach without a name lookup, a backend name HAProxy allows,
 * and no other service on the same backend (each would take the other's servers out). */
static void haproxy_checks(struct daemon *d, const struct spec *sp, const char *f, json_t *errors)
{
	const char *sock = sp->haproxy_socket, *be = sp->haproxy_backend;
	if (sock == NULL || (sock[0] != '/' && strchr(sock, ':') == NULL) || strlen(sock) >= 108)
		json_array_append_new(errors, json_sprintf("%s: lb: haproxy: socket: \"%s\" is neither an absolute "
							   "path (under 108 bytes) nor ip:port",
							   f, sock ? sock : ""));
	if (!hapi_name_ok(be))
		json_array_append_new(errors, json_sprintf("%s: lb: haproxy: backend: \"%s\" is not a HAProxy name "
							   "(1 to 63 letters, digits, '.', '_', ':', '-')",
							   f, be ? be : ""));
	for (size_t i = 0; sock != NULL && be != NULL && i < d->n_svcs; i++) {
		const struct svc *o = d->svcs[i];
		if (strcmp(o->name, sp->service) != 0 && o->spec.lb == SPEC_LB_HAPROXY && o->spec.haproxy_socket &&
		    o->spec.haproxy_backend && strcmp(o->spec.haproxy_socket, sock) == 0 &&
		    strcmp(o->spec.haproxy_backend, be) == 0)
			json_array_append_new(errors, json_sprintf("%s: lb: haproxy: backend %s is already steered by "
								   "service '%s'",
								   f, be, o->name));
	}
}

/* Checks what the spec asks of this daemon beyond the spec's own rules. Appends messages. */
static void daemon_checks(struct daemon *d, const struct spec *sp, const char *file, json_t *errors)
{
	const char *f = file ? file : "spec";
	if (sp->lb == SPEC_LB_HAPROXY)
		haproxy_checks(d, sp, f, errors);
	for (size_t i = 0; sp->listen != NULL && i < d->n_svcs; i++) {
		const struct svc *o = d->svcs[i];
		if (strcmp(o->name, sp->service) != 0 && o->spec.listen != NULL && strcmp(o->spec.listen, sp->listen) == 0)
			json_array_append_new(errors, json_sprintf("%s: listen: %s is already used by service '%s'", f,
								   sp->listen, o->name));
	}
}

/* A valid spec naming a host whose key is not the one known_hosts holds is refused, for that: 409
 * with what it is, each such host in errors. Returns whether it replied. */
static bool host_key_refusal(struct daemon *d, struct api_req *req, const struct spec *sp, const char *file)
{
	json_t *errors = json_array();
	const struct spec_target *first = NULL;
	for (size_t i = 0; i < sp->n_targets; i++) {
		const struct spec_target *t = &sp->targets[i];
		if (!drv_ssh_host_key_failed(d->drv_ssh, t))
			continue;
		if (first == NULL)
			first = t;
		json_array_append_new(
		    errors, json_sprintf("%s: targets[%zu]: %s: its key is not the one in known_hosts", file,
					 i, t->url));
	}
	if (first == NULL) {
		json_decref(errors);
		return false;
	}
	size_t n = json_array_size(errors);
	char text[400];
	snprintf(text, sizeof text,
		 "host key of %s changed%s: it is not the one in known_hosts; nothing was changed (check the "
		 "host, then fix known_hosts: applies are taken again once a connection passes the check)",
		 first->url, n > 1 ? " (and of other targets)" : "");
	api_reply_json(req, 409, json_pack("{s:s,s:o}", "error", text, "errors", errors));
	return true;
}

/* Drops the parsed request body after wiping the spec text in it (it may hold secret env values;
 * the daemon keeps them only in DATA/secrets). */
static void drop_body(json_t *j, const char *text, size_t len)
{
	xwipe((char *)text, len);
	json_decref(j);
}

static void post_apply(struct api_req *req, void *ctx)
{
	struct daemon *d = ctx;
	size_t len;
	const char *body = api_req_body(req, &len);
	json_error_t jerr;
	json_t *j = json_loadb(body, len, 0, &jerr);
	if (j == NULL) {
		api_reply_error(req, 400, "body is not JSON: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
		return;
	}
	json_t *jspec = json_object_get(j, "spec");
	json_t *jfile = json_object_get(j, "file");
	if (!json_is_string(jspec) || (jfile != NULL && !json_is_string(jfile))) {
		json_decref(j);
		api_reply_error(req, 400, "body must be {\"spec\": \"<yaml text>\", \"file\": \"<name>\"}");
		return;
	}
	const char *text = json_string_value(jspec);
	size_t tlen = json_string_length(jspec);
	const char *file = jfile ? json_string_value(jfile) : "spec";
	struct spec sp;
	struct spec_errors errs = {0};
	int r = spec_parse(text, tlen, file, &sp, &errs);
	json_t *errors = json_array();
	for (size_t i = 0; i < errs.n; i++)
		json_array_append_new(errors, json_string(errs.v[i]));
	spec_errors_clear(&errs);
	if (r == 0)
		daemon_checks(d, &sp, file, errors);
	if (json_array_size(errors) > 0) {
		if (r == 0)
			spec_clear(&sp);
		drop_body(j, text, tlen);
		api_reply_json(req, 422, json_pack("{s:s,s:o}", "error", "invalid spec", "errors", errors));
		return;
	}
	json_decref(errors);
	if (host_key_refusal(d, req, &sp, file)) {
		spec_clear(&sp);
		drop_body(j, text, tlen);
		return;
	}

	struct svc *s = daemon_find(d, sp.service);
	bool fresh = s == NULL;
	if (fresh && daemon_find_unloaded(d, sp.service) != NULL) {
		/* Not loaded at start: its state is taken over with this spec, then the spec applied. */
		char why[600] = "";
		char *copy = xstrndup(text, tlen);
		r = svc_load(d, sp.service, copy, &s, why, sizeof why);
		xwipe(copy, tlen);
		free(copy);
		if (r < 0) {
			api_reply_error(req, 409,
					"service '%s' cannot be taken over: %s; nothing was changed",
					sp.service, why);
			spec_clear(&sp);
			drop_body(j, text, tlen);
			return;
		}
	} else if (fresh) {
		s = svc_new(d, sp.service);
	}
	int rev = 0;
	bool changed = false;
	char msg[256] = "";
	char *yaml = xstrndup(text, tlen);
	drop_body(j, text, tlen);
	const char *updated[SPEC_FIELDS_MAX];
	size_t n_updated = 0;
	r = svc_apply(s, &sp, yaml, &rev, &changed, updated, &n_updated, msg, sizeof msg);
	xwipe(yaml, tlen);
	free(yaml);
	if (r < 0) {
		spec_clear(&sp);
		/* A service being taken over stays unloaded: its instances keep running, as before. */
		if (fresh)
			svc_free(s);
		api_reply_error(req, daemon_store_down(d) ? 503 : 500, "%s", msg);
		return;
	}
	if (fresh) {
		daemon_drop_unloaded(d, s->name);
		xgrow((void **)&d->svcs, &d->cap_svcs, d->n_svcs + 1, sizeof *d->svcs);
		d->svcs[d->n_svcs++] = s;
	}
	/* Fields outside the template take effect without a new revision: say which did. */
	json_t *jup = json_array();
	const char *head = changed ? "applied" : n_updated > 0 ? "no new revision; updated: " : "unchanged";
	size_t o = (size_t)snprintf(msg, sizeof msg, "%s", head);
	for (size_t i = 0; i < n_updated && i < SPEC_FIELDS_MAX; i++) {
		json_array_append_new(jup, json_string(updated[i]));
		if (!changed && o < sizeof msg)
			o += (size_t)snprintf(msg + o, sizeof msg - o, "%s%s", i ? ", " : "", updated[i]);
	}
	api_reply_json(req, 200,
		       json_pack("{s:s,s:i,s:I,s:b,s:s,s:o}", "service", s->name, "revision", rev, "rollout",
				 (json_int_t)s->st.ro.id, "changed", changed, "message", msg, "updated",
				 jup));
}

static void post_command(struct api_req *req, void *ctx)
{
	struct daemon *d = ctx;
	struct svc *s = find_or_404(d, req);
	if (s == NULL)
		return;
	const char *path = api_req_path(req);
	const char *verb = strrchr(path, '/') + 1;
	struct svc_cmd c = {0};
	if (strcmp(verb, "undo") == 0) {
		size_t len;
		const char *body = api_req_body(req, &len);
		if (len > 0) {
			json_error_t jerr;
			json_t *j = json_loadb(body, len, 0, &jerr);
			json_t *jr = j ? json_object_get(j, "revision") : NULL;
			json_t *jf = j ? json_object_get(j, "force") : NULL;
			if (j == NULL || !json_is_object(j) || (jr != NULL && !json_is_integer(jr)) ||
			    (jr != NULL &&
			     (json_integer_value(jr) < 0 || json_integer_value(jr) > 1000000)) ||
			    (jf != NULL && !json_is_boolean(jf))) {
				json_decref(j);
				api_reply_error(
				    req, 400, "body must be {} or {\"revision\": N, \"force\": true|false}");
				return;
			}
			c.rev = jr ? (int)json_integer_value(jr) : 0;
			c.force = jf != NULL && json_is_true(jf);
			json_decref(j);
		}
	}
	char msg[512] = "";
	int r = svc_command(s, verb, &c, msg, sizeof msg);
	if (r < 0) {
		int code = daemon_store_down(d) ? 503 : r == -EIO ? 500 : 409;
		api_reply_error(req, code, "%s", msg[0] ? msg : "not possible now");
		return;
	}
	api_reply_json(req, 200, svc_status_json(s));
}

static void get_rollouts(struct api_req *req, void *ctx)
{
	struct daemon *d = ctx;
	struct svc *s = find_or_404(d, req);
	if (s == NULL)
		return;
	struct engine_rollout *v = NULL;
	size_t n = 0;
	if (store_list_rollouts(d->store, s->name, &v, &n) < 0) {
		api_reply_error(req, 500, "%s", store_errmsg(d->store));
		return;
	}
	json_t *arr = json_array();
	int64_t now = daemon_now();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, svc_rollout_json(&v[i], now));
	free(v);
	api_reply_json(req, 200, json_pack("{s:o}", "rollouts", arr));
}

static void get_revisions(struct api_req *req, void *ctx)
{
	struct daemon *d = ctx;
	struct svc *s = find_or_404(d, req);
	if (s == NULL)
		return;
	struct store_revision *v = NULL;
	size_t n = 0;
	if (store_list_revisions(d->store, s->name, &v, &n) < 0) {
		api_reply_error(req, 500, "%s", store_errmsg(d->store));
		return;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, json_pack("{s:i,s:s?,s:I,s:b,s:b}", "revision", v[i].rev, "version",
						     v[i].version, "created_at", (json_int_t)v[i].created_at, "stable",
						     v[i].rev == s->st.stable_rev, "target", v[i].rev == s->st.target_rev));
	store_revisions_free(v, n);
	api_reply_json(req, 200, json_pack("{s:o}", "revisions", arr));
}

static int event_to_array(void *ctx, int64_t id, const char *service, int64_t ts, const char *kind, uint64_t inst,
			  const char *text)
{
	json_array_append_new(ctx, json_pack("{s:I,s:I,s:s?,s:s,s:I,s:s}", "id", (json_int_t)id, "ts", (json_int_t)ts,
					     "service", service, "kind", kind, "instance", (json_int_t)inst, "text",
					     text));
	return 0;
}

/* Parses an optional non-negative integer query parameter. Returns 0, or -EINVAL. */
static int query_int(struct api_req *req, const char *name, long long max, long long *out)
{
	const char *v = api_query(req, name);
	if (v == NULL)
		return 0;
	char *end;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (*v == '\0' || *end != '\0' || errno != 0 || n < 0 || n > max)
		return -EINVAL;
	*out = n;
	return 0;
}

static void get_service_events(struct api_req *req, void *ctx)
{
	struct daemon *d = ctx;
	const char *name = api_param(req, "name");
	if (name == NULL || !known_service(d, name)) {
		api_reply_error(req, 404, "no service '%s'", name ? name : "");
		return;
	}
	long long after = 0, limit = 200;
	if (query_int(req, "after", INT64_MAX, &after) < 0 || query_int(req, "limit", STORE_EVENTS_MAX, &limit) < 0) {
		api_reply_error(req, 400, "after and limit must be non-negative integers (limit <= %d)",
				STORE_EVENTS_MAX);
		return;
	}
	json_t *arr = json_array();
	if (store_events(d->store, name, after, (size_t)limit, event_to_array, arr) < 0) {
		json_decref(arr);
		api_reply_error(req, 500, "%s", store_errmsg(d->store));
		return;
	}
	api_reply_json(req, 200, json_pack("{s:o}", "events", arr));
}

struct sse_ctx {
	struct api_req *req;
	const char *service;
};

static int backlog_send(void *ctx, int64_t id, const char *service, int64_t ts, const char *kind, uint64_t inst,
			const char *text)
{
	struct sse_ctx *c = ctx;
	if (c->service != NULL && (service == NULL || strcmp(service, c->service) != 0))
		return 0;
	json_t *j = json_pack("{s:I,s:I,s:s?,s:s,s:I,s:s}", "id", (json_int_t)id, "ts", (json_int_t)ts, "service",
			      service, "kind", kind, "instance", (json_int_t)inst, "text", text);
	char *data = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	int r = api_sse_send(c->req, id, kind, data);
	free(data);
	return r < 0 ? r : 0;
}

static void sse_closed(struct api_req *req, void *arg)
{
	struct daemon *d = arg;
	for (size_t i = 0; i < d->n_subs; i++) {
		if (d->subs[i] == req) {
			d->subs[i] = d->subs[--d->n_subs];
			break;
		}
	}
	free(api_req_data(req));
	api_req_set_data(req, NULL);
	api_sse_end(req);
}

static void get_events_stream(struct api_req *req, void *ctx)
{
	struct daemon *d = ctx;
	long long after = -1;
	const char *svc = api_query(req, "service");
	if (query_int(req, "after", INT64_MAX, &after) < 0) {
		api_reply_error(req, 400, "after must be a non-negative integer");
		return;
	}
	if (svc != NULL && !known_service(d, svc)) {
		api_reply_error(req, 404, "no service '%s'", svc);
		return;
	}
	if (api_sse_start(req) < 0) {
		api_sse_end(req);
		return;
	}
	/* Backlog from `after` (when given) up to what was already published; then live events. */
	if (after >= 0) {
		struct sse_ctx c = {req, svc};
		long long mark = after;
		while (mark < d->published) {
			long long before = mark;
			store_events(d->store, svc, mark, STORE_EVENTS_MAX, backlog_send, &c);
			/* store_events has no "up to": stop at published, the live path sends the rest. */
			mark = d->published;
			if (mark == before)
				break;
		}
	}
	api_req_set_data(req, svc ? xstrdup(svc) : NULL);
	api_req_on_close(req, sse_closed, d);
	xgrow((void **)&d->subs, &d->cap_subs, d->n_subs + 1, sizeof *d->subs);
	d->subs[d->n_subs++] = req;
}

/* Prometheus text format: rollout state and instances per revision and state. */
static void get_metrics(struct api_req *req, void *ctx)
{
	char *text;
	size_t len;
	if (metrics_render(ctx, &text, &len) < 0) {
		api_reply_error(req, 500, "the metrics are too large to render");
		return;
	}
	api_reply_text(req, 200, "text/plain; version=0.0.4", text);
	free(text);
}

int routes_register(struct daemon *d)
{
	static const char *const verbs[] = {"pause", "resume", "promote", "abort", "undo"};
	api_route(d->api, "GET", "/v1/services", get_services, d);
	api_route(d->api, "GET", "/v1/services/{name}", get_service, d);
	api_route(d->api, "POST", "/v1/apply", post_apply, d);
	api_route(d->api, "GET", "/v1/services/{name}/rollouts", get_rollouts, d);
	api_route(d->api, "GET", "/v1/services/{name}/revisions", get_revisions, d);
	api_route(d->api, "GET", "/v1/services/{name}/events", get_service_events, d);
	for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
		char path[64];
		snprintf(path, sizeof path, "/v1/services/{name}/%s", verbs[i]);
		api_route(d->api, "POST", path, post_command, d);
	}
	api_route(d->api, "GET", "/v1/events", get_events_stream, d);
	api_route(d->api, "GET", "/metrics", get_metrics, d);
	dashboard_register(d->api);
	return 0;
}
