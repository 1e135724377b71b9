/* Parsing of the admin API's service configuration: JSON to struct proxy_config, every field
 * checked (addresses numeric, ids unique, states known, weights 1..256) before the caller applies
 * anything. */
#include "proxy/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

int proxy_parse_addr(const char *s, struct sockaddr_storage *sa)
{
	char host[PROXY_ADDR_MAX];
	const char *colon;
	size_t n = strlen(s);
	if (n == 0 || n >= sizeof host)
		return -EINVAL;
	memset(sa, 0, sizeof *sa);
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (end == NULL || end[1] != ':')
			return -EINVAL;
		memcpy(host, s + 1, (size_t)(end - s - 1));
		host[end - s - 1] = '\0';
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || colon == s)
			return -EINVAL;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = '\0';
	}
	const char *p = colon + 1;
	if (*p == '\0' || strlen(p) > 5)
		return -EINVAL;
	long port = 0;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		port = port * 10 + (*p - '0');
	}
	if (port > 65535)
		return -EINVAL;
	struct sockaddr_in *in4 = (struct sockaddr_in *)sa;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		return 0;
	}
	return -EINVAL;
}

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int parse_backend(json_t *b, size_t i, struct proxy_backend_conf *out, char *err, size_t errlen)
{
	if (!json_is_object(b))
		return fail(err, errlen, "backends[%zu]: not an object", i);
	const char *key;
	json_t *v;
	json_object_foreach(b, key, v)
	{
		if (strcmp(key, "id") && strcmp(key, "revision") && strcmp(key, "addr") && strcmp(key, "state") &&
		    strcmp(key, "weight"))
			return fail(err, errlen, "backends[%zu]: unknown field \"%s\"", i, key);
	}
	json_t *id = json_object_get(b, "id"), *rev = json_object_get(b, "revision");
	json_t *addr = json_object_get(b, "addr"), *state = json_object_get(b, "state");
	json_t *weight = json_object_get(b, "weight");
	if (!json_is_integer(id) || json_integer_value(id) < 0)
		return fail(err, errlen, "backends[%zu].id: a non-negative integer is required", i);
	out->id = (uint64_t)json_integer_value(id);
	if (rev == NULL)
		out->revision = 0;
	else if (!json_is_integer(rev) || json_integer_value(rev) < 0 || json_integer_value(rev) > 1000000000)
		return fail(err, errlen, "backends[%zu].revision: a non-negative integer is required", i);
	else
		out->revision = (int)json_integer_value(rev);
	if (!json_is_string(addr) || json_string_length(addr) >= PROXY_ADDR_MAX ||
	    proxy_parse_addr(json_string_value(addr), &out->sa) != 0)
		return fail(err, errlen, "backends[%zu].addr: a numeric host:port is required", i);
	snprintf(out->addr, sizeof out->addr, "%s", json_string_value(addr));
	if (weight == NULL)
		out->weight = 1;
	else if (!json_is_integer(weight) || json_integer_value(weight) < 1 ||
		 json_integer_value(weight) > PROXY_MAX_WEIGHT)
		return fail(err, errlen, "backends[%zu].weight: an integer from 1 to %d is required", i, PROXY_MAX_WEIGHT);
	else
		out->weight = (int)json_integer_value(weight);
	const char *st = state == NULL ? "active" : json_is_string(state) ? json_string_value(state) : NULL;
	if (st != NULL && strcmp(st, "active") == 0)
		out->state = PROXY_ACTIVE;
	else if (st != NULL && strcmp(st, "draining") == 0)
		out->state = PROXY_DRAINING;
	else
		return fail(err, errlen, "backends[%zu].state: \"active\" or \"draining\" is required", i);
	return 0;
}

int proxy_config_parse(const char *body, size_t len, struct proxy_config *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	json_error_t je;
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (root == NULL)
		return fail(err, errlen, "invalid JSON at line %d column %d: %s", je.line, je.column, je.text);
	int rc = 0;
	const char *key;
	json_t *v;
	if (!json_is_object(root)) {
		rc = fail(err, errlen, "the body must be a JSON object");
		goto out;
	}
	json_object_foreach(root, key, v)
	{
		if (strcmp(key, "listen") && strcmp(key, "protocol") && strcmp(key, "backends")) {
			rc = fail(err, errlen, "unknown field \"%s\"", key);
			goto out;
		}
	}
	json_t *listen = json_object_get(root, "listen"), *proto = json_object_get(root, "protocol");
	json_t *backends = json_object_get(root, "backends");
	if (!json_is_string(listen) || json_string_length(listen) >= PROXY_ADDR_MAX ||
	    proxy_parse_addr(json_string_value(listen), &out->listen_sa) != 0) {
		rc = fail(err, errlen, "listen: a numeric host:port is required");
		goto out;
	}
	snprintf(out->listen, sizeof out->listen, "%s", json_string_value(listen));
	if (proto == NULL || (json_is_string(proto) && strcmp(json_string_value(proto), "http") == 0)) {
		out->tcp = 0;
	} else if (json_is_string(proto) && strcmp(json_string_value(proto), "tcp") == 0) {
		out->tcp = 1;
	} else {
		rc = fail(err, errlen, "protocol: \"http\" or \"tcp\" is required");
		goto out;
	}
	if (backends == NULL)
		goto out;
	if (!json_is_array(backends) || json_array_size(backends) > PROXY_MAX_BACKENDS) {
		rc = fail(err, errlen, "backends: an array of at most %d backends is required", PROXY_MAX_BACKENDS);
		goto out;
	}
	out->n = json_array_size(backends);
	out->v = xcalloc(out->n ? out->n : 1, sizeof *out->v);
	for (size_t i = 0; i < out->n; i++) {
		rc = parse_backend(json_array_get(backends, i), i, &out->v[i], err, errlen);
		if (rc)
			goto out;
		for (size_t j = 0; j < i; j++)
			if (out->v[j].id == out->v[i].id) {
				rc = fail(err, errlen, "backends[%zu].id: %llu is listed twice", i,
					  (unsigned long long)out->v[i].id);
				goto out;
			}
	}
out:
	json_decref(root);
	if (rc)
		proxy_config_free(out);
	return rc;
}

void proxy_config_free(struct proxy_config *c)
{
	free(c->v);
	c->v = NULL;
	c->n = 0;
}
