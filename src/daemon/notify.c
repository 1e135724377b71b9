/* Webhook notifications: each delivery is a request (a JSON POST) that succeeds on a 2xx answer
 * or is tried again after 1 s, 2 s, 4 s, 8 s; libcurl multi runs on the daemon's libuv loop
 * through util/curluv, as the health checker's does.
 * Webhook URLs may hold secrets (Slack's do): logs name the host only. */
#include "daemon/notify.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/curluv.h"
#include "util/log.h"
#include "util/xmalloc.h"

/* ---- pure parts ------------------------------------------------------------------------------- */

static const char *const event_names[SPEC_EV__COUNT] = {
    "started", "paused", "completed", "failed", "rolled_back", "aborted",
};

const char *notify_event_name(enum spec_notify_event e)
{
	return (unsigned)e < SPEC_EV__COUNT ? event_names[e] : "?";
}

int64_t notify_retry_delay_ms(int failed)
{
	if (failed < 1 || failed >= NOTIFY_ATTEMPTS)
		return -1;
	return (int64_t)1000 << (failed - 1);
}

int notify_event_of(enum engine_event_kind ev, const struct engine_rollout *ro)
{
	switch (ev) {
	case EV_ROLLOUT_STARTED:
		return SPEC_EV_STARTED;
	case EV_PAUSED:
		return SPEC_EV_PAUSED;
	case EV_COMPLETE:
	case EV_SCALED:
		return SPEC_EV_COMPLETED;
	case EV_FAILED:
		return SPEC_EV_FAILED;
	case EV_ROLLING_BACK:
		return ro->kind == RO_KIND_ROLLBACK ? SPEC_EV_FAILED : -1;
	case EV_ROLLED_BACK:
		return SPEC_EV_ROLLED_BACK;
	case EV_ABORTED:
		return SPEC_EV_ABORTED;
	default:
		return -1;
	}
}

int notify_wants(const struct spec_notify *h, enum spec_notify_event e)
{
	return h->events == 0 || (h->events & (1u << e)) != 0;
}

char *notify_body(const struct spec_notify *h, const struct notify_msg *m)
{
	json_t *o;
	if (h->slack) {
		char text[512];
		snprintf(text, sizeof text, "rollout: %s %s: %s", m->service, notify_event_name(m->event),
			 m->text);
		o = json_pack("{s:s}", "text", text);
	} else {
		o = json_pack("{s:s,s:s,s:s,s:I,s:i,s:i,s:s,s:s,s:I}", "service", m->service, "event",
			      notify_event_name(m->event), "text", m->text, "rollout", (json_int_t)m->rollout,
			      "from_revision", m->from_rev, "to_revision", m->to_rev, "state", m->state,
			      "reason", m->reason ? m->reason : "", "ts", (json_int_t)m->ts);
	}
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

/* ---- delivery --------------------------------------------------------------------------------- */

struct delivery {
	struct notify *n;
	struct delivery *prev, *next;
	char *url, *body;
	char host[128]; /* for logs: the URL may carry a secret */
	char event[16];
	char service[64];
	int failed; /* attempts that failed so far */
	CURL *easy; /* while an attempt is in flight */
	struct curl_slist *hdrs;
	uv_timer_t timer; /* backoff */
	char errbuf[CURL_ERROR_SIZE];
};

struct notify {
	uv_loop_t *loop;
	struct curluv *curl;
	struct delivery *pending;
	size_t n_pending;
	int refs; /* deliveries not yet freed */
	int freeing;
};

static void n_unref(struct notify *n)
{
	if (--n->refs == 0 && n->freeing)
		free(n);
}

static void delivery_closed(uv_handle_t *h)
{
	struct delivery *d = h->data;
	struct notify *n = d->n;
	free(d->url);
	free(d->body);
	free(d);
	n_unref(n);
}

/* Ends a delivery (delivered, given up, or dropped at shutdown): unlinked now, freed later. */
static void delivery_end(struct delivery *d)
{
	struct notify *n = d->n;
	if (d->easy != NULL) {
		curluv_cancel(n->curl, d->easy);
		curl_easy_cleanup(d->easy);
		d->easy = NULL;
	}
	curl_slist_free_all(d->hdrs);
	d->hdrs = NULL;
	if (d->prev != NULL)
		d->prev->next = d->next;
	else
		n->pending = d->next;
	if (d->next != NULL)
		d->next->prev = d->prev;
	n->n_pending--;
	xwipe(d->url, strlen(d->url));
	uv_close((uv_handle_t *)&d->timer, delivery_closed);
}

static void attempt(struct delivery *d);

static void on_backoff(uv_timer_t *t) { attempt(t->data); }

/* An attempt failed: again after the backoff, or give up. */
static void attempt_failed(struct delivery *d, const char *why)
{
	d->failed++;
	int64_t delay = notify_retry_delay_ms(d->failed);
	if (delay < 0) {
		log_warn("notify",
			 "service=%s event=%s host=%s msg=\"giving up after %d attempts\" err=\"%s\"",
			 d->service, d->event, d->host, d->failed, why);
		delivery_end(d);
		return;
	}
	log_info("notify",
		 "service=%s event=%s host=%s msg=\"attempt %d failed, retrying in %lldms\" err=\"%s\"",
		 d->service, d->event, d->host, d->failed, (long long)delay, why);
	uv_timer_start(&d->timer, on_backoff, (uint64_t)delay, 0);
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	(void)ptr;
	(void)userdata;
	return size * nmemb;
}

static void attempt_done(CURL *easy, CURLcode res, void *arg);

static void attempt(struct delivery *d)
{
	struct notify *n = d->n;
	CURL *e = curl_easy_init();
	if (e == NULL) {
		attempt_failed(d, "curl_easy_init failed");
		return;
	}
	d->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(e, CURLOPT_URL, d->url);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, d->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)NOTIFY_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "rollout-notify");
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, d->hdrs);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, d->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(d->body));
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	d->errbuf[0] = '\0';
	d->easy = e;
	int rc = curluv_add(n->curl, e, attempt_done, d);
	if (rc != 0) {
		curl_easy_cleanup(e);
		d->easy = NULL;
		curl_slist_free_all(d->hdrs);
		d->hdrs = NULL;
		/* Never fail inside the caller's stack: the backoff timer brings the retry. */
		char why[128];
		snprintf(why, sizeof why, "curl_multi_add_handle: %s", strerror(-rc));
		attempt_failed(d, why);
	}
}

/* An attempt's end (curluv_done_cb): delivered on a 2xx answer, else failed. */
static void attempt_done(CURL *easy, CURLcode res, void *arg)
{
	struct delivery *d = arg;
	long code = 0;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(easy);
	d->easy = NULL;
	curl_slist_free_all(d->hdrs);
	d->hdrs = NULL;
	if (res == CURLE_OK && code >= 200 && code < 300) {
		log_info("notify", "service=%s event=%s host=%s msg=\"delivered\" attempts=%d", d->service,
			 d->event, d->host, d->failed + 1);
		delivery_end(d);
		return;
	}
	char why[CURL_ERROR_SIZE + 32];
	if (res != CURLE_OK)
		snprintf(why, sizeof why, "%s", d->errbuf[0] ? d->errbuf : curl_easy_strerror(res));
	else
		snprintf(why, sizeof why, "HTTP %ld", code);
	attempt_failed(d, why);
}

/* "https://user:pw@host:port/path?q" -> "host:port": what a log may say of a URL. */
static void url_host(const char *url, char *out, size_t len)
{
	const char *p = strstr(url, "://");
	p = p ? p + 3 : url;
	size_t n = strcspn(p, "/?#");
	const char *at = memchr(p, '@', n);
	if (at != NULL) {
		n -= (size_t)(at + 1 - p);
		p = at + 1;
	}
	snprintf(out, len, "%.*s", (int)(n < len ? n : len - 1), p);
}

int notify_new(uv_loop_t *loop, struct notify **out)
{
	struct notify *n = xcalloc(1, sizeof *n);
	int rc = curluv_new(loop, &n->curl);
	if (rc != 0) {
		free(n);
		return rc;
	}
	n->loop = loop;
	*out = n;
	return 0;
}

void notify_free(struct notify *n)
{
	if (n == NULL || n->freeing)
		return;
	if (n->n_pending > 0)
		log_warn("notify", "msg=\"stopping with %zu notification(s) undelivered\"", n->n_pending);
	while (n->pending != NULL)
		delivery_end(n->pending);
	curluv_free(n->curl);
	n->curl = NULL;
	n->freeing = 1;
	/* Deliveries still closing hold references; with none, n goes now. */
	if (n->refs == 0)
		free(n);
}

void notify_send(struct notify *n, const struct spec *spec, const struct notify_msg *m)
{
	if (n == NULL || n->freeing)
		return;
	for (size_t i = 0; i < spec->n_notify; i++) {
		const struct spec_notify *h = &spec->notify[i];
		if (h->url == NULL || !notify_wants(h, m->event))
			continue;
		char host[128];
		url_host(h->url, host, sizeof host);
		if (n->n_pending >= NOTIFY_MAX_PENDING) {
			log_warn(
			    "notify",
			    "service=%s event=%s host=%s msg=\"too many undelivered notifications, dropped\"",
			    m->service, notify_event_name(m->event), host);
			continue;
		}
		struct delivery *d = xcalloc(1, sizeof *d);
		d->n = n;
		d->url = xstrdup(h->url);
		d->body = notify_body(h, m);
		snprintf(d->host, sizeof d->host, "%s", host);
		snprintf(d->event, sizeof d->event, "%s", notify_event_name(m->event));
		snprintf(d->service, sizeof d->service, "%s", m->service);
		uv_timer_init(n->loop, &d->timer);
		d->timer.data = d;
		n->refs++;
		d->next = n->pending;
		if (n->pending != NULL)
			n->pending->prev = d;
		n->pending = d;
		n->n_pending++;
		/* The first attempt from the loop too: a delivery never runs inside a step. */
		uv_timer_start(&d->timer, on_backoff, 0, 0);
	}
}

void notify_intents(struct notify *n, const struct spec *spec, const char *service,
		    const struct engine_state *st, const struct engine_out *out, int64_t now)
{
	if (n == NULL || spec->n_notify == 0)
		return;
	for (size_t i = 0; i < out->n; i++) {
		const struct engine_intent *it = &out->v[i];
		if (it->kind != INTENT_ROLLOUT)
			continue;
		/* A rollout superseded in this step ended as the previous one. */
		const struct engine_rollout *ro =
		    it->event == EV_ABORTED && !engine_ro_done(st->ro.state) ? &st->prev : &st->ro;
		int ev = notify_event_of(it->event, ro);
		if (ev < 0)
			continue;
		struct notify_msg m = {
		    .service = service,
		    .event = (enum spec_notify_event)ev,
		    .text = it->text,
		    .rollout = ro->id,
		    .from_rev = ro->from_rev,
		    .to_rev = ro->to_rev,
		    .state = engine_ro_state_name(ro->state),
		    .reason = ro->reason,
		    .ts = now,
		};
		notify_send(n, spec, &m);
	}
}
