/* Strict parsers for HAProxy Runtime API answers: `show stat` CSV (quoted fields as HAProxy's csv_enc
 * writes them), `show info` and command replies. Anything not in the expected shape is an error that
 * carries HAProxy's text, so the caller can show the user what HAProxy said. */
#include "lb/hapi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

void hapi_oneline(const char *text, size_t len, char *err, size_t errlen)
{
	if (errlen == 0)
		return;
	size_t o = 0;
	/* trailing newlines carry nothing */
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		len--;
	for (size_t i = 0; i < len && o + 1 < errlen; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c == '\n') {
			if (o + 4 >= errlen)
				break;
			memcpy(err + o, " / ", 3);
			o += 3;
		} else {
			err[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
		}
	}
	err[o] = '\0';
}

static int fail(char *err, size_t errlen, const char *what, const char *text, size_t len)
{
	char t[160];
	hapi_oneline(text, len > 400 ? 400 : len, t, sizeof t);
	snprintf(err, errlen, "%s: \"%s\"", what, t);
	return -EPROTO;
}

bool hapi_name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n >= HAPI_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == ':' || c == '-'))
			return false;
	}
	return true;
}

/* Splits one CSV line [p, end) into fields, unquoting "..." ("" inside is a quote). Fields are
 * NUL-terminated copies in buf (at least end - p + 1 bytes); f[] points into it. Returns the number
 * of fields, or -1 on a malformed quote or more than max fields. */
static int csv_split(const char *p, const char *end, char *buf, char **f, int max)
{
	int n = 0;
	char *o = buf;
	for (;;) {
		if (n == max)
			return -1;
		f[n++] = o;
		if (p < end && *p == '"') {
			p++;
			for (;;) {
				if (p == end)
					return -1; /* unterminated */
				if (*p == '"') {
					if (p + 1 < end && p[1] == '"') {
						*o++ = '"';
						p += 2;
						continue;
					}
					p++;
					break;
				}
				*o++ = *p++;
			}
			if (p < end && *p != ',')
				return -1; /* text after the closing quote */
		} else {
			while (p < end && *p != ',') {
				if (*p == '"')
					return -1;
				*o++ = *p++;
			}
		}
		*o++ = '\0';
		if (p == end)
			return n;
		p++; /* the comma */
	}
}

/* A counter: empty is 0; otherwise decimal digits only (no sign, no overflow). */
static int num(const char *s, int64_t *out)
{
	int64_t v = 0;
	if (*s == '\0') {
		*out = 0;
		return 0;
	}
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (INT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (*s - '0');
	}
	*out = v;
	return 0;
}

/* The status column: UP, DOWN, NOLB, MAINT, DRAIN or "no check", optionally followed by a space and
 * details ("UP 1/3", "MAINT (via b/s)", "DRAIN (agent)"). */
static int parse_status(const char *s, struct hapi_server *sv)
{
	static const struct {
		const char *word;
		enum hapi_admin admin;
		bool down;
	} k[] = {{"UP", HAPI_READY, false},    {"DOWN", HAPI_READY, true},  {"NOLB", HAPI_READY, false},
		 {"MAINT", HAPI_MAINT, false}, {"DRAIN", HAPI_DRAIN, false}, {"no check", HAPI_READY, false}};
	for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
		size_t n = strlen(k[i].word);
		if (strncmp(s, k[i].word, n) == 0 && (s[n] == '\0' || s[n] == ' ')) {
			sv->admin = k[i].admin;
			sv->down = k[i].down;
			return 0;
		}
	}
	return -1;
}

enum col {
	C_PXNAME,
	C_SVNAME,
	C_QCUR,
	C_SCUR,
	C_STOT,
	C_ECON,
	C_ERESP,
	C_STATUS,
	C_SID,
	C_TYPE,
	C_HRSP_5XX,
	C_RTIME,
	C_TTIME,
	C_ADDR,
	C__N
};
static const char *const col_names[C__N] = {"pxname", "svname", "qcur",     "scur",  "stot",  "econ", "eresp",
					    "status", "sid",    "type",     "hrsp_5xx", "rtime", "ttime", "addr"};

void hapi_stat_clear(struct hapi_stat *s)
{
	if (s == NULL)
		return;
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

int hapi_parse_stat(const char *text, size_t len, const char *backend, struct hapi_stat *out, char *err,
		    size_t errlen)
{
	out->v = NULL;
	out->n = 0;
	if (len < 2 || memcmp(text, "# ", 2) != 0)
		return fail(err, errlen, "unexpected answer to show stat", text, len);
	if (len < 2 || text[len - 1] != '\n' || text[len - 2] != '\n')
		return fail(err, errlen, "show stat: the answer is cut short", text, len);
	if (memchr(text, '\0', len) != NULL)
		return fail(err, errlen, "show stat: NUL byte in the answer", text, len);
	char *buf = xmalloc(len + 1);
	char **f = xmalloc(HAPI_MAX_COLS * sizeof *f);
	char **h = xmalloc(HAPI_MAX_COLS * sizeof *h);
	char *hbuf = NULL;
	int rc = 0;
	int idx[C__N];
	int uweight = -1; /* optional: HAProxy 2.6 has it */
	const char *end = text + len - 1; /* the closing empty line */
	const char *nl = memchr(text, '\n', len);
	hbuf = xmalloc((size_t)(nl - text) + 1);
	int nh = csv_split(text + 2, nl, hbuf, h, HAPI_MAX_COLS);
	if (nh < 0) {
		rc = fail(err, errlen, "show stat: bad header", text, (size_t)(nl - text));
		goto out;
	}
	for (int i = 0; i < nh && uweight < 0; i++)
		if (strcmp(h[i], "uweight") == 0)
			uweight = i;
	for (int c = 0; c < C__N; c++) {
		idx[c] = -1;
		for (int i = 0; i < nh; i++)
			if (strcmp(h[i], col_names[c]) == 0 && idx[c] < 0)
				idx[c] = i;
		if (idx[c] < 0) {
			snprintf(err, errlen, "show stat: no column '%s' in the header", col_names[c]);
			rc = -EPROTO;
			goto out;
		}
	}
	size_t cap = 0;
	for (const char *p = nl + 1; p < end;) {
		const char *e = memchr(p, '\n', (size_t)(end - p));
		if (e == NULL || e == p) {
			rc = fail(err, errlen, "show stat: malformed line", p, (size_t)(end - p));
			goto out;
		}
		int nf = csv_split(p, e, buf, f, HAPI_MAX_COLS);
		if (nf != nh) {
			char what[96];
			snprintf(what, sizeof what, "show stat: a line has %d fields, the header %d", nf < 0 ? 0 : nf, nh);
			rc = fail(err, errlen, what, p, (size_t)(e - p));
			goto out;
		}
		p = e + 1;
		int64_t type;
		if (num(f[idx[C_TYPE]], &type) < 0 || f[idx[C_TYPE]][0] == '\0' || type > 3) {
			rc = fail(err, errlen, "show stat: bad type", f[idx[C_TYPE]], strlen(f[idx[C_TYPE]]));
			goto out;
		}
		if (type != 2 || strcmp(f[idx[C_PXNAME]], backend) != 0)
			continue;
		if (out->n == HAPI_MAX_SERVERS) {
			snprintf(err, errlen, "show stat: more than %d servers in backend %s", HAPI_MAX_SERVERS, backend);
			rc = -EPROTO;
			goto out;
		}
		xgrow((void **)&out->v, &cap, out->n + 1, sizeof *out->v);
		struct hapi_server *sv = &out->v[out->n];
		memset(sv, 0, sizeof *sv);
		const char *name = f[idx[C_SVNAME]], *addr = f[idx[C_ADDR]];
		int64_t sid = 0, weight = -1;
		bool weight_bad =
			uweight >= 0 && (num(f[uweight], &weight) < 0 || f[uweight][0] == '\0' || weight > 256);
		if (!hapi_name_ok(name) || weight_bad || strlen(addr) >= sizeof sv->addr ||
		    parse_status(f[idx[C_STATUS]], sv) < 0 ||
		    num(f[idx[C_SID]], &sid) < 0 || sid > 1000000000 || num(f[idx[C_QCUR]], &sv->qcur) < 0 ||
		    num(f[idx[C_SCUR]], &sv->scur) < 0 || num(f[idx[C_STOT]], &sv->stot) < 0 ||
		    num(f[idx[C_ECON]], &sv->econ) < 0 || num(f[idx[C_ERESP]], &sv->eresp) < 0 ||
		    num(f[idx[C_HRSP_5XX]], &sv->hrsp_5xx) < 0 || num(f[idx[C_RTIME]], &sv->rtime) < 0 ||
		    num(f[idx[C_TTIME]], &sv->ttime) < 0) {
			char what[160];
			snprintf(what, sizeof what, "show stat: bad server line for %s/%.*s", backend, HAPI_NAME_MAX, name);
			rc = fail(err, errlen, what, f[idx[C_STATUS]], strlen(f[idx[C_STATUS]]));
			goto out;
		}
		snprintf(sv->name, sizeof sv->name, "%s", name);
		snprintf(sv->addr, sizeof sv->addr, "%s", addr);
		sv->sid = (int)sid;
		sv->weight = (int)weight;
		out->n++;
	}
out:
	if (rc < 0)
		hapi_stat_clear(out);
	free(buf);
	free(hbuf);
	free(f);
	free(h);
	return rc;
}

int hapi_parse_info(const char *text, size_t len, struct hapi_info *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (len < 6 || memcmp(text, "Name: ", 6) != 0)
		return fail(err, errlen, "unexpected answer to show info", text, len);
	if (text[len - 1] != '\n' || memchr(text, '\0', len) != NULL)
		return fail(err, errlen, "show info: the answer is cut short", text, len);
	bool have_pid = false, have_up = false;
	for (const char *p = text, *end = text + len; p < end;) {
		const char *e = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)(e - p);
		char line[128];
		if (n < sizeof line) {
			memcpy(line, p, n);
			line[n] = '\0';
			int64_t v;
			if (strncmp(line, "Pid: ", 5) == 0) {
				if (num(line + 5, &v) < 0 || line[5] == '\0' || v > 0x7fffffff)
					return fail(err, errlen, "show info: bad Pid", p, n);
				out->pid = (long)v;
				have_pid = true;
			} else if (strncmp(line, "Uptime_sec: ", 12) == 0) {
				if (num(line + 12, &v) < 0 || line[12] == '\0')
					return fail(err, errlen, "show info: bad Uptime_sec", p, n);
				out->uptime_sec = v;
				have_up = true;
			}
		}
		p = e + 1;
	}
	if (!have_pid || !have_up) {
		snprintf(err, errlen, "show info: no %s in the answer", have_pid ? "Uptime_sec" : "Pid");
		return -EPROTO;
	}
	return 0;
}

static bool starts(const char *s, size_t n, const char *prefix)
{
	size_t k = strlen(prefix);
	return n >= k && memcmp(s, prefix, k) == 0;
}

static bool ends(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);
	return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

int hapi_check_reply(enum hapi_cmd cmd, const char *text, size_t len, char *err, size_t errlen)
{
	/* Replies end with one or two newlines; what comes before is the message. */
	size_t n = len;
	while (n > 0 && text[n - 1] == '\n')
		n--;
	if (len == n || memchr(text, '\0', len) != NULL || (n > 0 && memchr(text, '\n', n) != NULL)) {
		if (len == 0) {
			snprintf(err, errlen, "HAProxy closed the connection without an answer");
			return -EPROTO;
		}
		return fail(err, errlen, "HAProxy answered", text, len);
	}
	bool ok = false;
	switch (cmd) {
	case HAPI_CMD_STATE:
	case HAPI_CMD_WEIGHT:
	case HAPI_CMD_SHUTDOWN:
		ok = n == 0;
		break;
	case HAPI_CMD_ADDR:
		ok = (starts(text, n, "no need to change the addr") || starts(text, n, "IP changed from '")) &&
		     ends(text, n, " by 'stats socket command'");
		break;
	case HAPI_CMD_HEALTH:
		ok = n == 0 || (n == strlen("Health check was not configured on this server, cannot enable.") &&
				starts(text, n, "Health check was not configured on this server, cannot enable."));
		break;
	case HAPI_CMD_ADD:
		ok = n == strlen("New server registered.") && starts(text, n, "New server registered.");
		break;
	case HAPI_CMD_DEL:
		ok = n == strlen("Server deleted.") && starts(text, n, "Server deleted.");
		break;
	}
	if (!ok)
		return fail(err, errlen, "HAProxy answered", text, len);
	return 0;
}
