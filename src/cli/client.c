/* The CLI's client of the daemon API: libcurl over the daemon's unix socket, JSON with jansson,
 * and a server-sent events parser for `rollout events --follow`. */
#include "cli/client.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "util/xmalloc.h"

struct client {
	const struct client_ops *ops;
	void *impl;
	char err[CURL_ERROR_SIZE + 64];
};

/* ---- server-sent events ---- */

void client_sse_init(struct client_sse *p) { memset(p, 0, sizeof *p); }

void client_sse_close(struct client_sse *p)
{
	free(p->line);
	free(p->data);
	client_sse_init(p);
}

/* Appends n bytes to a growing buffer bounded by CLIENT_MAX_LINE; keeps it NUL-terminated. */
static int buf_append(char **b, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > CLIENT_MAX_LINE)
		return -EMSGSIZE;
	if (*len + n + 1 > *cap)
		xgrow((void **)b, cap, *len + n + 1, 1);
	memcpy(*b + *len, s, n);
	*len += n;
	(*b)[*len] = '\0';
	return 0;
}

static void copy_field(char *dst, size_t cap, const char *v) { snprintf(dst, cap, "%s", v); }

/* One complete line (NUL-terminated in p->line). */
static int sse_line(struct client_sse *p, client_event_cb cb, void *arg)
{
	const char *line = p->line ? p->line : "";
	if (line[0] == '\0') {
		int rc = 0;
		if (p->dlen > 0 || p->data != NULL) {
			struct client_sse_event ev = {.id = p->id,
						      .event = p->event[0] ? p->event : "message",
						      .data = p->data ? p->data : ""};
			rc = cb(arg, &ev);
		}
		p->dlen = 0;
		free(p->data);
		p->data = NULL;
		p->dcap = 0;
		p->event[0] = '\0';
		return rc;
	}
	if (line[0] == ':')
		return 0;
	const char *colon = strchr(line, ':');
	size_t flen = colon ? (size_t)(colon - line) : strlen(line);
	const char *value = "";
	if (colon) {
		value = colon + 1;
		if (*value == ' ')
			value++;
	}
	if (flen == 4 && memcmp(line, "data", 4) == 0) {
		int rc = 0;
		if (p->data != NULL)
			rc = buf_append(&p->data, &p->dlen, &p->dcap, "\n", 1);
		if (rc == 0)
			rc = buf_append(&p->data, &p->dlen, &p->dcap, value, strlen(value));
		return rc;
	}
	if (flen == 5 && memcmp(line, "event", 5) == 0)
		copy_field(p->event, sizeof p->event, value);
	else if (flen == 2 && memcmp(line, "id", 2) == 0)
		copy_field(p->id, sizeof p->id, value);
	/* retry and unknown fields are ignored */
	return 0;
}

int client_sse_feed(struct client_sse *p, const char *buf, size_t n, client_event_cb cb, void *arg)
{
	for (size_t i = 0; i < n; i++) {
		char c = buf[i];
		if (c == '\n' && p->saw_cr) {
			p->saw_cr = 0;
			continue;
		}
		p->saw_cr = c == '\r';
		if (c == '\n' || c == '\r') {
			int rc = sse_line(p, cb, arg);
			p->len = 0;
			if (p->line)
				p->line[0] = '\0';
			if (rc != 0)
				return rc;
			continue;
		}
		int rc = buf_append(&p->line, &p->len, &p->cap, &c, 1);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* ---- the curl transport ---- */

struct curl_impl {
	char *sock;
};

struct body_buf {
	char *b;
	size_t len, cap;
	bool too_big;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct body_buf *bb = arg;
	size_t n = size * nmemb;
	if (bb->len + n + 1 > CLIENT_MAX_BODY) {
		bb->too_big = true;
		return 0;
	}
	if (bb->len + n + 1 > bb->cap)
		xgrow((void **)&bb->b, &bb->cap, bb->len + n + 1, 1);
	memcpy(bb->b + bb->len, ptr, n);
	bb->len += n;
	bb->b[bb->len] = '\0';
	return n;
}

/* A curl handle set up for path on the unix socket. */
static CURL *curl_for(struct curl_impl *ci, const char *path, char *errbuf)
{
	CURL *h = curl_easy_init();
	if (h == NULL)
		return NULL;
	char *url = xasprintf("http://localhost%s", path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	free(url);
	curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, ci->sock);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	errbuf[0] = '\0';
	return h;
}

static int map_curl(CURLcode rc, const char *errbuf, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
	if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
		return -ECONNREFUSED;
	return -EIO;
}

static int curl_request(void *impl, const char *method, const char *path, const char *body, long *status,
			char **body_out, char *err, size_t errlen)
{
	char errbuf[CURL_ERROR_SIZE];
	struct body_buf bb = {0};
	struct curl_slist *hdrs = NULL;
	CURL *h = curl_for(impl, path, errbuf);
	*status = 0;
	*body_out = NULL;
	if (h == NULL) {
		snprintf(err, errlen, "cannot initialise libcurl");
		return -EIO;
	}
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 60000L);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (body != NULL) {
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	} else if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
	}
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &bb);
	CURLcode rc = curl_easy_perform(h);
	int ret = 0;
	if (bb.too_big) {
		snprintf(err, errlen, "reply larger than %u bytes", CLIENT_MAX_BODY);
		ret = -EMSGSIZE;
	} else if (rc != CURLE_OK) {
		ret = map_curl(rc, errbuf, err, errlen);
	} else {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	}
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	if (ret != 0) {
		free(bb.b);
		return ret;
	}
	*body_out = bb.b ? bb.b : xstrdup("");
	return 0;
}

/* State of one event stream: the parser, or the error body when the status is not 200. */
struct stream_ctx {
	CURL *h;
	struct client_sse sse;
	client_event_cb cb;
	void *arg;
	int stopped; /* cb's nonzero value, or -EMSGSIZE */
	long status;
	struct body_buf errbody;
};

static size_t on_stream(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct stream_ctx *s = arg;
	size_t n = size * nmemb;
	if (s->status == 0)
		curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &s->status);
	if (s->status != 200)
		return on_body(ptr, size, nmemb, &s->errbody);
	int rc = client_sse_feed(&s->sse, ptr, n, s->cb, s->arg);
	if (rc != 0) {
		s->stopped = rc;
		return 0;
	}
	return n;
}

static int curl_stream(void *impl, const char *path, long *status, client_event_cb cb, void *arg, char *err,
		       size_t errlen)
{
	char errbuf[CURL_ERROR_SIZE];
	struct stream_ctx s = {.cb = cb, .arg = arg};
	struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: text/event-stream");
	client_sse_init(&s.sse);
	s.h = curl_for(impl, path, errbuf);
	if (s.h == NULL) {
		curl_slist_free_all(hdrs);
		snprintf(err, errlen, "cannot initialise libcurl");
		return -EIO;
	}
	curl_easy_setopt(s.h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(s.h, CURLOPT_WRITEFUNCTION, on_stream);
	curl_easy_setopt(s.h, CURLOPT_WRITEDATA, &s);
	CURLcode rc = curl_easy_perform(s.h);
	if (s.status == 0)
		curl_easy_getinfo(s.h, CURLINFO_RESPONSE_CODE, &s.status);
	*status = s.status;
	int ret = 0;
	if (s.stopped != 0) {
		ret = s.stopped;
		if (ret == -EMSGSIZE)
			snprintf(err, errlen, "event larger than %u bytes", CLIENT_MAX_LINE);
	} else if (s.errbody.too_big) {
		snprintf(err, errlen, "reply larger than %u bytes", CLIENT_MAX_BODY);
		ret = -EMSGSIZE;
	} else if (rc != CURLE_OK) {
		ret = map_curl(rc, errbuf, err, errlen);
	} else if (s.status != 200) {
		snprintf(err, errlen, "%s", s.errbody.b ? s.errbody.b : "");
		ret = -EPROTO;
	}
	free(s.errbody.b);
	client_sse_close(&s.sse);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(s.h);
	return ret;
}

static void curl_impl_free(void *impl)
{
	struct curl_impl *ci = impl;
	if (ci == NULL)
		return;
	free(ci->sock);
	free(ci);
}

static const struct client_ops curl_ops = {
    .request = curl_request,
    .stream = curl_stream,
    .free = curl_impl_free,
};

/* ---- the client ---- */

struct client *client_new_ops(const struct client_ops *ops, void *impl)
{
	struct client *c = xcalloc(1, sizeof *c);
	c->ops = ops;
	c->impl = impl;
	return c;
}

struct client *client_new(const char *sock_path)
{
	struct curl_impl *ci = xcalloc(1, sizeof *ci);
	ci->sock = xstrdup(sock_path);
	return client_new_ops(&curl_ops, ci);
}

void client_free(struct client *c)
{
	if (c == NULL)
		return;
	if (c->ops->free)
		c->ops->free(c->impl);
	free(c);
}

const char *client_error(const struct client *c) { return c->err; }

int client_call(struct client *c, const char *method, const char *path, json_t *body, long *status,
		json_t **resp)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	char *reply = NULL;
	*resp = NULL;
	c->err[0] = '\0';
	int rc = c->ops->request(c->impl, method, path, text, status, &reply, c->err, sizeof c->err);
	free(text);
	if (rc != 0) {
		free(reply);
		return rc;
	}
	if (reply != NULL && reply[0] != '\0')
		*resp = json_loads(reply, JSON_DECODE_ANY, NULL);
	free(reply);
	return 0;
}

int client_stream(struct client *c, const char *path, long *status, client_event_cb cb, void *arg)
{
	c->err[0] = '\0';
	*status = 0;
	return c->ops->stream(c->impl, path, status, cb, arg, c->err, sizeof c->err);
}
