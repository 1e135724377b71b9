/* YAML to struct spec: libyaml events become a small tree (with limits), the tree is walked section
 * by section against tables of known keys, and every problem is collected with its position. */
#include "spec/spec_yaml.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec/ytree.h"
#include "util/xmalloc.h"

/* ---- the parse context (the document tree is ytree.c's) ---------------------------------- */

struct perr {
	int line, col;
	size_t seq; /* order of discovery, to keep the sort stable */
	char *msg;
};

struct pctx {
	struct spec *s;
	struct perr *errs;
	size_t n_errs, cap_errs;
	struct ytree tree;
	struct ynode *root;
	/* Which sections were written (even if invalid), and where values stood, for the checks that
	 * span several fields. */
	bool has_service, has_template, has_version, has_command, has_listen;
	bool surge_ok, unavailable_ok;
	bool replicas_bad, batches_bad; /* written but invalid: batch counts would be guesses */
	struct spec_pos interval_pos, timeout_pos;
	bool interval_ok, timeout_ok;
	struct spec_kv *cur_kv;
	struct spec_target *cur_target;
	struct spec_file *cur_file;
	struct ynode *files_node, *cur_file_node;
	struct spec_notify *cur_notify;
	struct ynode *analysis_node;
	bool has_haproxy_socket;
};

static const char *const kind_names[] = {
	[Y_NULL] = "null",         [Y_BOOL] = "a boolean", [Y_INT] = "an integer", [Y_FLOAT] = "a number",
	[Y_STR] = "a string",      [Y_SEQ] = "a list",     [Y_MAP] = "a mapping",
};

static void perr_add(struct pctx *c, int line, int col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void perr_add(struct pctx *c, int line, int col, const char *fmt, ...)
{
	char buf[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	xgrow((void **)&c->errs, &c->cap_errs, c->n_errs + 1, sizeof *c->errs);
	c->errs[c->n_errs] = (struct perr){.line = line, .col = col, .seq = c->n_errs, .msg = xstrdup(buf)};
	c->n_errs++;
}

#define ERR_AT(c, node, ...) perr_add((c), (node)->line, (node)->col, __VA_ARGS__)

/* Writes len bytes of s into buf (size bytes) for a message: between quote characters q,
 * non-printing bytes as \xNN, cut after 40 bytes with "...". Returns buf. */
static const char *show(char *buf, size_t size, const char *s, size_t len, char q)
{
	size_t o = 0;
	buf[o++] = q;
	for (size_t i = 0; i < len && o + 8 < size; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (i == 40) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		/* C1 controls in UTF-8 (0xc2 0x80..0x9f) are escaped too: a terminal may obey them. */
		bool c1 = (ch == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] >= 0x80 &&
			   (unsigned char)s[i + 1] <= 0x9f) ||
			  (i > 0 && (unsigned char)s[i - 1] == 0xc2 && ch >= 0x80 && ch <= 0x9f);
		if (ch < 0x20 || ch == 0x7f || c1 || ch == '\\' || ch == (unsigned char)q)
			o += (size_t)snprintf(buf + o, size - o, "\\x%02x", ch);
		else
			buf[o++] = (char)ch;
	}
	buf[o++] = q;
	buf[o] = '\0';
	return buf;
}

#define SHOWBUF 200
#define VAL(buf, node) show((buf), sizeof(buf), (node)->text, (node)->len, '"')
#define KEY(buf, node) show((buf), sizeof(buf), (node)->text, (node)->len, '\'')

static bool is_digits(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* ---- helpers for typed values ------------------------------------------------------------- */

static bool is_scalar(const struct ynode *v)
{
	return v->kind != Y_SEQ && v->kind != Y_MAP;
}

static void type_error(struct pctx *c, const char *name, const struct ynode *v, const char *want)
{
	ERR_AT(c, v, "%s: expected %s, got %s", name, want, kind_names[v->kind]);
}

/* A string field: any non-null scalar, taken as written (version: 2 is "2"). Never prints the
 * value, so it serves secrets too. Returns a new string or NULL after reporting. */
static char *get_str(struct pctx *c, const char *name, const struct ynode *v)
{
	if (!is_scalar(v) || v->kind == Y_NULL) {
		type_error(c, name, v, "a string");
		return NULL;
	}
	if (strlen(v->text) != v->len) {
		ERR_AT(c, v, "%s: must not contain a NUL character", name);
		return NULL;
	}
	return xstrndup(v->text, v->len);
}

/* True when s holds a control character: C0 (newline, tab, ESC...), DEL, or a C1 control in its
 * UTF-8 form (U+0080..U+009F, which some terminals obey like ESC sequences). */
static bool has_control(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f || (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
			return true;
	return false;
}

/* A one-line string shown to people (status, logs, HTTP heads): like get_str (or get_nonempty
 * when !empty_ok), and with no control character, so it cannot rewrite a terminal or split a
 * line. Returns a new string or NULL after reporting. */
static char *get_line(struct pctx *c, const char *name, const struct ynode *v, bool empty_ok)
{
	char b[SHOWBUF];
	char *s = get_str(c, name, v);
	if (s == NULL)
		return NULL;
	if (!empty_ok && *s == '\0') {
		ERR_AT(c, v, "%s: must not be empty", name);
	} else if (has_control(s)) {
		ERR_AT(c, v,
		       "%s: %s has a control character (newline, tab, escape...); write it on one line of "
		       "printable characters",
		       name, VAL(b, v));
	} else {
		return s;
	}
	free(s);
	return NULL;
}

static bool get_int(struct pctx *c, const char *name, const struct ynode *v, long long min, long long max,
		    int *out)
{
	if (v->kind != Y_INT) {
		type_error(c, name, v, "an integer");
		return false;
	}
	const char *p = v->text;
	bool neg = *p == '-';
	if (*p == '-' || *p == '+')
		p++;
	long long n = 0;
	bool big = false;
	for (; *p; p++) {
		n = n * 10 + (*p - '0');
		if (n > 1000000000000LL) {
			big = true;
			break;
		}
	}
	if (neg)
		n = -n;
	if (big || n < min || n > max) {
		/* An integer scalar is digits only: safe to print as written. A wide range is told by the
		 * bound that was crossed (a range of a billion says little). */
		bool above = neg ? false : (big || n > max);
		if (max < 1000000000LL)
			ERR_AT(c, v, "%s: %.40s is out of range (%lld to %lld)", name, v->text, min, max);
		else if (above)
			ERR_AT(c, v, "%s: must be at most %lld, got %.40s", name, max, v->text);
		else
			ERR_AT(c, v, "%s: must be at least %lld, got %.40s", name, min, v->text);
		return false;
	}
	*out = (int)n;
	return true;
}

static bool get_bool(struct pctx *c, const char *name, const struct ynode *v, bool *out)
{
	if (v->kind != Y_BOOL) {
		type_error(c, name, v, "a boolean (true or false)");
		return false;
	}
	*out = v->text[0] == 't' || v->text[0] == 'T';
	return true;
}

/* A duration ("500ms", "1m30s", or 0). min_ms: the smallest value allowed (0 or 1). */
static bool get_duration(struct pctx *c, const char *name, const struct ynode *v, int64_t min_ms, int64_t *out)
{
	char b[SHOWBUF];
	if (v->kind != Y_STR && v->kind != Y_INT) {
		type_error(c, name, v, "a duration");
		return false;
	}
	int64_t ms;
	int rc = strlen(v->text) == v->len ? amount_parse_duration(v->text, &ms) : -EINVAL;
	if (rc == -ERANGE) {
		ERR_AT(c, v, "%s: %s is too long", name, VAL(b, v));
		return false;
	}
	if (rc < 0) {
		ERR_AT(c, v, "%s: %s is not a duration (write it like 500ms, 10s or 1m30s)", name, VAL(b, v));
		return false;
	}
	if (ms < min_ms) {
		ERR_AT(c, v, "%s: must be more than 0", name);
		return false;
	}
	*out = ms;
	return true;
}

/* An amount: a count or a percent. max_pct: the largest percent allowed; a count is at most
 * SPEC_REPLICAS_MAX (no amount of replicas can mean more); min: the smallest value (0 or 1). */
static bool get_amount(struct pctx *c, const char *name, const struct ynode *v, int max_pct, int min,
		       struct amount *out)
{
	char b[SHOWBUF];
	if (v->kind != Y_STR && v->kind != Y_INT) {
		type_error(c, name, v, "a count or a percent");
		return false;
	}
	struct amount a;
	int rc = strlen(v->text) == v->len ? amount_parse(v->text, &a) : -EINVAL;
	if (rc < 0 && rc != -ERANGE) {
		ERR_AT(c, v, "%s: %s is not a count or a percent", name, VAL(b, v));
		return false;
	}
	/* Too many digits to read (amount_parse stops there): told as the bound it is past. */
	if (rc == -ERANGE) {
		bool pct = v->text[v->len - 1] == '%';
		if (pct)
			ERR_AT(c, v, "%s: %s is more than %d%%", name, VAL(b, v), max_pct);
		else
			ERR_AT(c, v, "%s: %s is more than %d, the most replicas a service can have", name,
			       VAL(b, v), SPEC_REPLICAS_MAX);
		return false;
	}
	if (a.percent && a.value > max_pct) {
		ERR_AT(c, v, "%s: %d%% is more than %d%%", name, a.value, max_pct);
		return false;
	}
	if (!a.percent && a.value > SPEC_REPLICAS_MAX) {
		ERR_AT(c, v, "%s: %d is more than %d, the most replicas a service can have", name, a.value,
		       SPEC_REPLICAS_MAX);
		return false;
	}
	if (a.value < min) {
		ERR_AT(c, v, "%s: must be more than 0", name);
		return false;
	}
	*out = a;
	return true;
}

/* Parses "<digits>[.<digits>]<suffix>" where the suffix is one of the given ones; returns the
 * number and which suffix (index), or -1. */
static int number_suffix(const char *s, const char *const *suffixes, size_t n_suffixes, double *out)
{
	const char *p = s;
	double v = 0, scale = 1;
	bool digits = false;
	while (*p >= '0' && *p <= '9') {
		v = v * 10 + (*p++ - '0');
		digits = true;
		if (v > 1e12)
			return -1;
	}
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9') {
			scale /= 10;
			v += (*p++ - '0') * scale;
			digits = true;
		}
	}
	if (!digits)
		return -1;
	for (size_t i = 0; i < n_suffixes; i++) {
		if (strcmp(p, suffixes[i]) == 0) {
			*out = v;
			return (int)i;
		}
	}
	return -1;
}

/* ---- walking mappings --------------------------------------------------------------------- */

struct field {
	const char *name;
	void (*fn)(struct pctx *c, const char *name, struct ynode *v);
};

static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t row[65], prev[65];
	if (la > 64 || lb > 64)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
			size_t del = prev[j] + 1, ins = row[j - 1] + 1;
			row[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
		memcpy(prev, row, (lb + 1) * sizeof row[0]);
	}
	return prev[lb];
}

/* The known key closest to key: edit distance <= 2 (the smallest wins), else one of them a prefix
 * of the other (3 characters or more). NULL when nothing is close. */
static const char *suggest(const char *key, const struct field *f, size_t nf)
{
	const char *best = NULL;
	size_t bd = 3, kl = strlen(key);
	for (size_t i = 0; i < nf; i++) {
		size_t d = edit_distance(key, f[i].name);
		if (d < bd && d < strlen(f[i].name)) {
			bd = d;
			best = f[i].name;
		}
	}
	if (best != NULL)
		return best;
	for (size_t i = 0; i < nf; i++) {
		size_t fl = strlen(f[i].name);
		if ((kl >= 3 && kl < fl && strncmp(f[i].name, key, kl) == 0) ||
		    (fl >= 3 && fl < kl && strncmp(key, f[i].name, fl) == 0))
			return f[i].name;
	}
	return NULL;
}

static bool key_is(const struct ynode *k, const char *name)
{
	return is_scalar(k) && k->len == strlen(name) && memcmp(k->text, name, k->len) == 0;
}

/* Checks key i of map: a scalar, not a repeat of an earlier one. Reports and returns false
 * otherwise. */
static bool key_ok(struct pctx *c, const char *where, struct ynode *map, size_t i)
{
	struct ynode *k = map->kids[i];
	char b[SHOWBUF];
	if (!is_scalar(k)) {
		ERR_AT(c, k, "%s: keys must be strings, got %s", where ? where : "spec", kind_names[k->kind]);
		return false;
	}
	for (size_t j = 0; j < i; j += 2) {
		struct ynode *e = map->kids[j];
		if (is_scalar(e) && e->len == k->len && memcmp(e->text, k->text, k->len) == 0) {
			ERR_AT(c, k, "duplicate key %s (first at line %d)", KEY(b, k), e->line);
			return false;
		}
	}
	return true;
}

/* Requires v to be a mapping; reports and returns false otherwise. */
static bool want_map(struct pctx *c, const char *name, const struct ynode *v)
{
	if (v->kind != Y_MAP) {
		type_error(c, name, v, "a mapping");
		return false;
	}
	return true;
}

static bool want_seq(struct pctx *c, const char *name, const struct ynode *v)
{
	if (v->kind != Y_SEQ) {
		type_error(c, name, v, "a list");
		return false;
	}
	return true;
}

static bool belongs_hint(const char *key, const struct field *cur, char *buf, size_t size);

/* Walks a mapping against its table of known keys: each known key's handler gets its value;
 * unknown keys (with a suggestion), repeated keys and non-string keys are reported. `where` names
 * the section in messages (NULL at the top). */
static void walk(struct pctx *c, const char *where, struct ynode *map, const struct field *f, size_t nf)
{
	char b[SHOWBUF];
	for (size_t i = 0; i + 1 < map->n; i += 2) {
		struct ynode *k = map->kids[i], *v = map->kids[i + 1];
		if (!key_ok(c, where, map, i))
			continue;
		size_t j = 0;
		while (j < nf && !key_is(k, f[j].name))
			j++;
		if (j < nf) {
			f[j].fn(c, f[j].name, v);
			continue;
		}
		const char *hint = strlen(k->text) == k->len ? suggest(k->text, f, nf) : NULL;
		char in[80] = "", there[200];
		if (where != NULL)
			snprintf(in, sizeof in, " in %s", where);
		/* A key of another section, written at the wrong indentation most likely. */
		bool elsewhere = strlen(k->text) == k->len && belongs_hint(k->text, f, there, sizeof there);
		/* A key known elsewhere outweighs a loose match here (two edits); a near one is offered too. */
		if (elsewhere && hint != NULL && edit_distance(k->text, hint) > 1 &&
		    strncmp(hint, k->text, strlen(k->text)) != 0 && strncmp(hint, k->text, strlen(hint)) != 0)
			hint = NULL;
		if (elsewhere && hint != NULL) {
			ERR_AT(c, k, "unknown key %s%s; did you mean '%s'? If not, %s", KEY(b, k), in, hint, there);
		} else if (elsewhere) {
			ERR_AT(c, k, "unknown key %s%s; %s", KEY(b, k), in, there);
		} else if (hint != NULL) {
			ERR_AT(c, k, "unknown key %s%s; did you mean '%s'?", KEY(b, k), in, hint);
		} else if (nf == 0) {
			ERR_AT(c, k, "unknown key %s%s; it takes no keys", KEY(b, k), in);
		} else {
			char list[400] = "";
			size_t o = 0;
			for (size_t x = 0; x < nf && o < sizeof list; x++)
				o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", x ? ", " : "", f[x].name);
			ERR_AT(c, k, "unknown key %s%s; expected one of: %s", KEY(b, k), in, list);
		}
	}
}

static struct ynode *map_get(struct ynode *map, const char *name)
{
	for (size_t i = 0; i + 1 < map->n; i += 2)
		if (key_is(map->kids[i], name))
			return map->kids[i + 1];
	return NULL;
}

#define WALK(c, where, map, table) walk((c), (where), (map), (table), sizeof(table) / sizeof((table)[0]))

/* A list of strings (argv) into a new NULL-terminated vector; items may be any non-null scalar. */
static void get_argv(struct pctx *c, const char *name, struct ynode *v, char ***out, size_t *n_out)
{
	if (!want_seq(c, name, v))
		return;
	if (v->n == 0) {
		ERR_AT(c, v, "%s: must not be empty", name);
		return;
	}
	char **argv = xcalloc(v->n + 1, sizeof *argv);
	bool ok = true;
	for (size_t i = 0; i < v->n; i++) {
		char item[64];
		snprintf(item, sizeof item, "%s[%zu]", name, i);
		argv[i] = get_str(c, item, v->kids[i]);
		ok = ok && argv[i] != NULL;
	}
	if (!ok) {
		for (size_t i = 0; i < v->n; i++)
			free(argv[i]);
		free(argv);
		return;
	}
	*out = argv;
	*n_out = v->n;
}

/* ---- top-level scalars -------------------------------------------------------------------- */

static bool valid_service(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 63 || s[0] < 'a' || s[0] > 'z')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

static void f_service(struct pctx *c, const char *name, struct ynode *v)
{
	char b[SHOWBUF];
	c->has_service = true;
	char *s = get_str(c, name, v);
	if (s == NULL)
		return;
	if (!valid_service(s)) {
		ERR_AT(c, v,
		       "%s: %s is not a valid name (1 to 63 lowercase letters, digits or '-', starting with a letter)",
		       name, VAL(b, v));
		free(s);
		return;
	}
	c->s->service = s;
}

static void f_replicas(struct pctx *c, const char *name, struct ynode *v)
{
	if (get_int(c, name, v, 0, SPEC_REPLICAS_MAX, &c->s->replicas))
		c->s->replicas_pos = (struct spec_pos){v->line, v->col};
	else
		c->replicas_bad = true;
}

/* Port: 1..65535, digits only. */
static bool valid_port(const char *p, int *port)
{
	size_t n = strlen(p);
	if (n < 1 || n > 5 || !is_digits(p, n))
		return false;
	int v = atoi(p);
	if (v < 1 || v > 65535)
		return false;
	*port = v;
	return true;
}

static bool valid_ipv4(const char *s, size_t n)
{
	int parts = 0;
	size_t i = 0;
	while (i < n) {
		size_t j = i;
		int v = 0;
		while (j < n && s[j] >= '0' && s[j] <= '9' && j - i < 3)
			v = v * 10 + (s[j++] - '0');
		if (j == i || v > 255 || (j - i > 1 && s[i] == '0'))
			return false;
		parts++;
		if (j == n)
			break;
		if (s[j] != '.' || parts == 4)
			return false;
		i = j + 1;
		if (i == n)
			return false;
	}
	return parts == 4;
}

static bool valid_ipv6(const char *s, size_t n)
{
	if (n < 2 || n > 45)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F') || ch == ':' ||
		      ch == '.'))
			return false;
	}
	return memchr(s, ':', n) != NULL;
}

/* "host:port", host an IPv4 literal, [IPv6] or localhost. */
static bool valid_listen(const char *s)
{
	const char *colon = strrchr(s, ':');
	int port;
	if (colon == NULL || !valid_port(colon + 1, &port))
		return false;
	size_t hl = (size_t)(colon - s);
	if (hl == 9 && memcmp(s, "localhost", 9) == 0)
		return true;
	if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']')
		return valid_ipv6(s + 1, hl - 2);
	return valid_ipv4(s, hl);
}

static void f_listen(struct pctx *c, const char *name, struct ynode *v)
{
	char b[SHOWBUF];
	c->has_listen = true;
	char *s = get_str(c, name, v);
	if (s == NULL)
		return;
	if (!valid_listen(s)) {
		ERR_AT(c, v, "%s: %s is not host:port (host an IPv4 address, [IPv6] or localhost; port 1 to 65535)",
		       name, VAL(b, v));
		free(s);
		return;
	}
	c->s->listen = s;
}

static void f_protocol(struct pctx *c, const char *name, struct ynode *v)
{
	char b[SHOWBUF];
	if (key_is(v, "http") && v->kind == Y_STR)
		c->s->protocol = SPEC_PROTO_HTTP;
	else if (key_is(v, "tcp") && v->kind == Y_STR)
		c->s->protocol = SPEC_PROTO_TCP;
	else if (!is_scalar(v) || v->kind == Y_NULL)
		type_error(c, name, v, "http or tcp");
	else
		ERR_AT(c, v, "%s: %s is not a protocol; use http or tcp", name, VAL(b, v));
}

/* ---- template ----------------------------------------------------------------------------- */

static void f_version(struct pctx *c, const char *name, struct ynode *v)
{
	c->has_version = true;
	c->s->tmpl.version = get_line(c, name, v, false);
}

static void f_command(struct pctx *c, const char *name, struct ynode *v)
{
	c->has_command = true;
	get_argv(c, name, v, &c->s->tmpl.command, &c->s->tmpl.n_command);
}

static void f_workdir(struct pctx *c, const char *name, struct ynode *v)
{
	c->s->tmpl.workdir = get_line(c, name, v, false);
}

static void f_env_value(struct pctx *c, const char *name, struct ynode *v)
{
	(void)name;
	c->cur_kv->value = get_str(c, "value", v);
}

static void f_env_secret(struct pctx *c, const char *name, struct ynode *v)
{
	get_bool(c, name, v, &c->cur_kv->secret);
}

static const struct field env_value_fields[] = {
	{"value", f_env_value},
	{"secret", f_env_secret},
};

static bool valid_env_name(const char *s, size_t n)
{
	if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '_'))
			return false;
	return true;
}

static int kv_cmp(const void *a, const void *b)
{
	return strcmp(((const struct spec_kv *)a)->name, ((const struct spec_kv *)b)->name);
}

static void free_kv_entry(struct spec_kv *kv)
{
	free(kv->name);
	if (kv->value != NULL)
		xwipe(kv->value, strlen(kv->value));
	free(kv->value);
}

/* env: NAME: value or NAME: {value: ..., secret: true}. Values never reach a message. Sorted by
 * name, since the template hash depends on the order. */
static void f_env(struct pctx *c, const char *name, struct ynode *v)
{
	char b[SHOWBUF];
	if (!want_map(c, name, v))
		return;
	struct spec_template *t = &c->s->tmpl;
	t->env = xcalloc(v->n / 2 + 1, sizeof *t->env);
	for (size_t i = 0; i + 1 < v->n; i += 2) {
		struct ynode *k = v->kids[i], *val = v->kids[i + 1];
		if (!key_ok(c, name, v, i))
			continue;
		if (!valid_env_name(k->text, k->len)) {
			ERR_AT(c, k, "env: %s is not a variable name (letters, digits and '_', not starting with a digit)",
			       KEY(b, k));
			continue;
		}
		struct spec_kv kv = {.name = xstrndup(k->text, k->len)};
		char what[128];
		snprintf(what, sizeof what, "env %s", kv.name);
		if (val->kind == Y_MAP) {
			c->cur_kv = &kv;
			WALK(c, what, val, env_value_fields);
			c->cur_kv = NULL;
			if (map_get(val, "value") == NULL)
				ERR_AT(c, val, "%s: missing required key 'value'", what);
		} else {
			kv.value = get_str(c, what, val);
		}
		if (kv.value == NULL) {
			free_kv_entry(&kv);
			continue;
		}
		t->env[t->n_env++] = kv;
	}
	qsort(t->env, t->n_env, sizeof *t->env, kv_cmp);
}

static void f_hook_install(struct pctx *c, const char *name, struct ynode *v)
{
	get_argv(c, name, v, &c->s->tmpl.hooks[SPEC_HOOK_INSTALL], &c->s->tmpl.n_hooks[SPEC_HOOK_INSTALL]);
}

static void f_hook_start(struct pctx *c, const char *name, struct ynode *v)
{
	get_argv(c, name, v, &c->s->tmpl.hooks[SPEC_HOOK_START], &c->s->tmpl.n_hooks[SPEC_HOOK_START]);
}

static void f_hook_validate(struct pctx *c, const char *name, struct ynode *v)
{
	get_argv(c, name, v, &c->s->tmpl.hooks[SPEC_HOOK_VALIDATE], &c->s->tmpl.n_hooks[SPEC_HOOK_VALIDATE]);
}

static void f_hook_stop(struct pctx *c, const char *name, struct ynode *v)
{
	get_argv(c, name, v, &c->s->tmpl.hooks[SPEC_HOOK_STOP], &c->s->tmpl.n_hooks[SPEC_HOOK_STOP]);
}

static const struct field hook_fields[] = {
	{"install", f_hook_install},
	{"start", f_hook_start},
	{"validate", f_hook_validate},
	{"stop", f_hook_stop},
};

static void f_hooks(struct pctx *c, const char *name, struct ynode *v)
{
	if (want_map(c, name, v))
		WALK(c, name, v, hook_fields);
}

/* A file path: relative, plain parts (no empty, '.' or '..' part), at most SPEC_FILE_PATH_MAX
 * bytes; reports and returns false otherwise. */
static bool valid_file_path(struct pctx *c, const char *name, const struct ynode *v, const char *s)
{
	char b[SHOWBUF];
	if (strlen(s) > SPEC_FILE_PATH_MAX) {
		ERR_AT(c, v, "%s: longer than %d bytes", name, SPEC_FILE_PATH_MAX);
		return false;
	}
	if (s[0] == '/') {
		ERR_AT(c, v, "%s: %s is absolute; write a path relative to the instance's directory (${INSTANCE_DIR})",
		       name, VAL(b, v));
		return false;
	}
	for (const char *p = s;;) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			ERR_AT(c, v, "%s: %s goes up with '..'; a file stays inside the instance's directory", name,
			       VAL(b, v));
			return false;
		}
		if (n == 0 || (n == 1 && p[0] == '.')) {
			ERR_AT(c, v, "%s: %s has an empty or '.' part; write it like conf/app.conf", name, VAL(b, v));
			return false;
		}
		if (e == NULL)
			return true;
		p = e + 1;
	}
}

static void f_file_path(struct pctx *c, const char *name, struct ynode *v)
{
	char what[64];
	snprintf(what, sizeof what, "files[%zu].%s", c->s->tmpl.n_files, name);
	char *s = get_line(c, what, v, false);
	if (s != NULL && !valid_file_path(c, what, v, s)) {
		free(s);
		s = NULL;
	}
	c->cur_file->path = s;
	c->cur_file_node = v;
}

static void f_file_content(struct pctx *c, const char *name, struct ynode *v)
{
	char what[64];
	snprintf(what, sizeof what, "files[%zu].%s", c->s->tmpl.n_files, name);
	/* An empty file is a file; a null is not a content. */
	char *s = v->kind == Y_STR && v->len == 0 ? xstrdup("") : get_str(c, what, v);
	if (s != NULL && strlen(s) > SPEC_FILE_MAX) {
		ERR_AT(c, v, "%s: longer than %d KiB, the limit of one file", what, SPEC_FILE_MAX / 1024);
		free(s);
		s = NULL;
	}
	c->cur_file->content = s;
}

static const struct field file_fields[] = {
	{"path", f_file_path},
	{"content", f_file_content},
};

/* Whether path a is a directory of path b ("conf" of "conf/app.conf"). */
static bool path_holds(const char *a, const char *b)
{
	size_t n = strlen(a);
	return strncmp(a, b, n) == 0 && b[n] == '/';
}

/* files: a list of {path, content}, at most SPEC_FILES_MAX, each path once. */
static void f_files(struct pctx *c, const char *name, struct ynode *v)
{
	char b[SHOWBUF];
	if (!want_seq(c, name, v))
		return;
	c->files_node = v;
	if (v->n > SPEC_FILES_MAX) {
		ERR_AT(c, v, "%s: at most %d files, got %zu", name, SPEC_FILES_MAX, v->n);
		return;
	}
	struct spec_template *t = &c->s->tmpl;
	struct ynode **nodes = xcalloc(v->n + 1, sizeof *nodes);
	t->files = xcalloc(v->n + 1, sizeof *t->files);
	for (size_t i = 0; i < v->n; i++) {
		struct ynode *it = v->kids[i];
		char what[64];
		snprintf(what, sizeof what, "files[%zu]", i);
		if (it->kind != Y_MAP) {
			type_error(c, what, it, "a mapping {path: ..., content: ...}");
			continue;
		}
		struct spec_file f = {0};
		c->cur_file = &f;
		c->cur_file_node = NULL;
		WALK(c, what, it, file_fields);
		c->cur_file = NULL;
		if (map_get(it, "path") == NULL)
			ERR_AT(c, it, "%s: missing required key 'path'", what);
		if (map_get(it, "content") == NULL)
			ERR_AT(c, it, "%s: missing required key 'content'", what);
		bool clash = false;
		for (size_t j = 0; j < t->n_files && f.path != NULL && !clash; j++) {
			const char *o = t->files[j].path;
			if (strcmp(o, f.path) == 0)
				ERR_AT(c, c->cur_file_node, "%s.path: %s is written twice (first at line %d)", what,
				       VAL(b, c->cur_file_node), nodes[j]->line);
			else if (path_holds(o, f.path) || path_holds(f.path, o))
				ERR_AT(c, c->cur_file_node, "%s.path: %s and %s (line %d): one cannot be a file and a directory",
				       what, VAL(b, c->cur_file_node), o, nodes[j]->line);
			else
				continue;
			clash = true;
		}
		if (f.path == NULL || f.content == NULL || clash) {
			free(f.path);
			free(f.content);
			continue;
		}
		nodes[t->n_files] = c->cur_file_node;
		t->files[t->n_files++] = f;
	}
	free(nodes);
}

static const struct field template_fields[] = {
	{"version", f_version},
	{"command", f_command},
	{"env", f_env},
	{"workdir", f_workdir},
	{"hooks", f_hooks},
	{"files", f_files},
};

static void f_template(struct pctx *c, const char *name, struct ynode *v)
{
	c->has_template = true;
	if (!want_map(c, name, v))
		return;
	WALK(c, name, v, template_fields);
	if (!c->has_version)
		ERR_AT(c, v, "template: missing required key 'version'");
	if (!c->has_command)
		ERR_AT(c, v, "template: missing required key 'command'");
}

/* ---- health ------------------------------------------------------------------------------- */

static bool health_kind(struct pctx *c, const char *name, struct ynode *v, enum spec_check kind)
{
	if (c->s->health.kind != SPEC_CHECK_NONE) {
		ERR_AT(c, v, "health: %s: only one of http, tcp or exec may be set", name);
		return false;
	}
	c->s->health.kind = kind;
	return true;
}

static void f_http_path(struct pctx *c, const char *name, struct ynode *v)
{
	char b[SHOWBUF];
	char *s = get_line(c, name, v, true);
	if (s == NULL)
		return;
	if (s[0] != '/') {
		ERR_AT(c, v, "%s: %s must start with '/'", name, VAL(b, v));
		free(s);
		return;
	}
	free(c->s->health.http_path);
	c->s->health.http_path = s;
}

static void f_http_status(struct pctx *c, const char *name, struct ynode *v)
{
	get_int(c, name, v, 100, 599, &c->s->health.http_status);
}

static const struct field http_fields[] = {
	{"path", f_http_path},
	{"status", f_http_status},
};

static void f_http(struct pctx *c, const char *name, struct ynode *v)
{
	if (!want_map(c, name, v) || !health_kind(c, name, v, SPEC_CHECK_HTTP))
		return;
	c->s->health.http_path = xstrdup("/");
	WALK(c, "http", v, http_fields);
}

static void f_tcp(struct pctx *c, const char *name, struct ynode *v)
{
	if (v->kind == Y_NULL) {
		health_kind(c, name, v, SPEC_CHECK_TCP);
		return;
	}
	if (!want_map(c, name, v) || !health_kind(c, name, v, SPEC_CHECK_TCP))
		return;
	walk(c, "tcp", v, NULL, 0);
}

static void f_exec(struct pctx *c, const char *name, struct ynode *v)
{
	if (v->kind != Y_SEQ) {
		type_error(c, name, v, "a list");
		return;
	}
	if (!health_kind(c, name, v, SPEC_CHECK_EXEC))
		return;
	get_argv(c, name, v, &c->s->health.exec, &c->s->health.n_exec);
}

static void f_interval(struct pctx *c, const char *name, struct ynode *v)
{
	c->interval_ok = get_duration(c, name, v, 1, &c->s->health.interval_ms);
	c->interval_pos = (struct spec_pos){v->line, v->col};
}

static void f_timeout(struct pctx *c, const char *name, struct ynode *v)
{
	c->timeout_ok = get_duration(c, name, v, 1, &c->s->health.timeout_ms);
	c->timeout_pos = (struct spec_pos){v->line, v->col};
}

static void f_healthy(struct pctx *c, const char *name, struct ynode *v)
{
	get_int(c, name, v, 1, 100, &c->s->health.healthy_threshold);
}

static void f_unhealthy(struct pctx *c, const char *name, struct ynode *v)
{
	get_int(c, name, v, 1, 100, &c->s->health.unhealthy_threshold);
}

static const struct field health_fields[] = {
	{"http", f_http},
	{"tcp", f_tcp},
	{"exec", f_exec},
	{"interval", f_interval},
	{"timeout", f_timeout},
	{"healthy_threshold", f_healthy},
	{"unhealthy_threshold", f_unhealthy},
};

static void f_health(struct pctx *c, const char *name, struct ynode *v)
{
	c->interval_ok = c->timeout_ok = true;
	if (!want_map(c, name, v))
		return;
	WALK(c, name, v, health_fields);
}

/* ---- strategy ----------------------------------------------------------------------------- */

static void f_max_surge(struct pctx *c, const char *name, struct ynode *v)
{
	c->surge_ok = get_amount(c, name, v, SPEC_SURGE_PCT_MAX, 0, &c->s->strategy.max_surge);
	c->s->strategy.surge_pos = (struct spec_pos){v->line, v->col};
}

static void f_max_unavailable(struct pctx *c, const char *name, struct ynode *v)
{
	c->unavailable_ok = get_amount(c, name, v, 100, 0, &c->s->strategy.max_unavailable);
	c->s->strategy.unavailable_pos = (struct spec_pos){v->line, v->col};
}

static void f_batches(struct pctx *c, const char *name, struct ynode *v)
{
	struct spec_strategy *st = &c->s->strategy;
	size_t errs = c->n_errs;
	c->batches_bad = true;
	if (!want_seq(c, name, v))
		return;
	if (v->n > SPEC_REPLICAS_MAX) {
		ERR_AT(c, v, "%s: %zu entries; at most %d (a batch holds at least one replica)", name, v->n,
		       SPEC_REPLICAS_MAX);
		return;
	}
	st->batches_pos = (struct spec_pos){v->line, v->col};
	st->batches = xcalloc(v->n + 1, sizeof *st->batches);
	for (size_t i = 0; i < v->n; i++) {
		char item[64];
		snprintf(item, sizeof item, "%s[%zu]", name, i);
		if (get_amount(c, item, v->kids[i], 100, 1, &st->batches[st->n_batches]))
			st->n_batches++;
	}
	c->batches_bad = c->n_errs != errs;
}

/* A pause_after batch number: 1..SPEC_REPLICAS_MAX (a batch holds at least one replica); whether
 * the batch exists for these replicas is check_spec's. */
static bool get_batch_number(struct pctx *c, const char *name, const struct ynode *v, int *out)
{
	if (v->kind == Y_INT) {
		const char *d = v->text + (v->text[0] == '+');
		if (v->text[0] == '-' || d[strspn(d, "0")] == '\0') {
			ERR_AT(c, v, "%s: batch %.40s does not exist; batches are numbered from 1", name,
			       v->text);
			return false;
		}
	}
	return get_int(c, name, v, 1, SPEC_REPLICAS_MAX, out);
}

static void f_pause_batch(struct pctx *c, const char *name, struct ynode *v)
{
	struct spec_strategy *st = &c->s->strategy;
	get_batch_number(c, name, v, &st->pause_after[st->n_pause_after].batch);
}

static void f_pause_duration(struct pctx *c, const char *name, struct ynode *v)
{
	struct spec_strategy *st = &c->s->strategy;
	get_duration(c, name, v, 0, &st->pause_after[st->n_pause_after].duration_ms);
}

static const struct field pause_fields[] = {
	{"batch", f_pause_batch},
	{"duration", f_pause_duration},
};

/* pause_after: each entry a batch number (wait for promote) or {batch: N, duration: D}. Range
 * against the batch count is checked once replicas and batches are known (check_spec). */
static void f_pause_after(struct pctx *c, const char *name, struct ynode *v)
{
	struct spec_strategy *st = &c->s->strategy;
	if (!want_seq(c, name, v))
		return;
	st->pause_after = xcalloc(v->n + 1, sizeof *st->pause_after);
	for (size_t i = 0; i < v->n; i++) {
		struct ynode *e = v->kids[i];
		struct spec_pause *p = &st->pause_after[st->n_pause_after];
		size_t errs = c->n_errs;
		char item[64];
		snprintf(item, sizeof item, "%s[%zu]", name, i);
		*p = (struct spec_pause){.batch = 0, .pos = {e->line, e->col}};
		if (e->kind == Y_MAP) {
			WALK(c, item, e, pause_fields);
			if (map_get(e, "batch") == NULL) {
				ERR_AT(c, e, "%s: missing required key 'batch'", item);
				continue;
			}
		} else if (e->kind == Y_INT) {
			get_batch_number(c, item, e, &p->batch);
		} else {
			type_error(c, item, e, "a batch number or {batch: N, duration: D}");
			continue;
		}
		if (c->n_errs != errs)
			continue;
		if (p->batch < 1) {
			ERR_AT(c, e, "%s: batch %d does not exist; batches are numbered from 1", item, p->batch);
			continue;
		}
		if (spec_pause_after(st, p->batch) != NULL) {
			ERR_AT(c, e, "%s: batch %d is listed twice", item, p->batch);
			continue;
		}
		st->n_pause_after++;
	}
}

static void f_min_ready(struct pctx *c, const char *name, struct ynode *v)
{
	get_duration(c, name, v, 0, &c->s->strategy.min_ready_ms);
}

static void f_health_deadline(struct pctx *c, const char *name, struct ynode *v)
{
	get_duration(c, name, v, 1, &c->s->strategy.health_deadline_ms);
}

static void f_progress_deadline(struct pctx *c, const char *name, struct ynode *v)
{
	get_duration(c, name, v, 1, &c->s->strategy.progress_deadline_ms);
}

static void f_max_failures(struct pctx *c, const char *name, struct ynode *v)
{
	get_amount(c, name, v, 100, 0, &c->s->strategy.max_failures);
}

static void f_auto_rollback(struct pctx *c, const char *name, struct ynode *v)
{
	get_bool(c, name, v, &c->s->strategy.auto_rollback);
}

static void f_watch(struct pctx *c, const char *name, struct ynode *v)
{
	get_duration(c, name, v, 0, &c->s->strategy.watch_ms);
}

static void f_min_stable(struct pctx *c, const char *name, struct ynode *v)
{
	get_duration(c, name, v, 0, &c->s->strategy.min_stable_ms);
}

static void f_max_error_rate(struct pctx *c, const char *name, struct ynode *v)
{
	static const char *const sfx[] = {"%", "x"};
	char b[SHOWBUF];
	double d;
	int k = (v->kind == Y_STR || v->kind == Y_INT || v->kind == Y_FLOAT) && strlen(v->text) == v->len
			? number_suffix(v->text, sfx, 2, &d)
			: -2;
	struct spec_limit *l = &c->s->strategy.analysis.max_error_rate;
	if (k == -2)
		type_error(c, name, v, "a percent (1%) or a factor (2x)");
	else if (k < 0)
		ERR_AT(c, v, "%s: %s is not a percent (1%%) or a factor of the old revision's rate (2x)", name, VAL(b, v));
	else if (k == 0 && d > 100)
		ERR_AT(c, v, "%s: %s is more than 100%%", name, VAL(b, v));
	else if (k == 1 && d <= 0)
		ERR_AT(c, v, "%s: a factor must be more than 0", name);
	else
		*l = (struct spec_limit){.set = true, .relative = k == 1, .value = k == 0 ? d / 100 : d};
}

static void f_max_p99(struct pctx *c, const char *name, struct ynode *v)
{
	static const char *const sfx[] = {"x"};
	char b[SHOWBUF];
	double d;
	int64_t ms;
	struct spec_limit *l = &c->s->strategy.analysis.max_p99;
	if (!((v->kind == Y_STR || v->kind == Y_INT || v->kind == Y_FLOAT) && strlen(v->text) == v->len)) {
		type_error(c, name, v, "a duration (500ms) or a factor (1.5x)");
	} else if (number_suffix(v->text, sfx, 1, &d) == 0) {
		if (d <= 0)
			ERR_AT(c, v, "%s: a factor must be more than 0", name);
		else
			*l = (struct spec_limit){.set = true, .relative = true, .value = d};
	} else if (amount_parse_duration(v->text, &ms) == 0 && ms > 0) {
		*l = (struct spec_limit){.set = true, .relative = false, .value = (double)ms};
	} else {
		ERR_AT(c, v, "%s: %s is not a duration (500ms) or a factor of the old revision's p99 (1.5x)", name,
		       VAL(b, v));
	}
}

static void f_window(struct pctx *c, const char *name, struct ynode *v)
{
	get_duration(c, name, v, 1, &c->s->strategy.analysis.window_ms);
}

static void f_min_requests(struct pctx *c, const char *name, struct ynode *v)
{
	get_int(c, name, v, 1, 1000000000LL, &c->s->strategy.analysis.min_requests);
}

static const struct field analysis_fields[] = {
	{"max_error_rate", f_max_error_rate},
	{"max_p99", f_max_p99},
	{"window", f_window},
	{"min_requests", f_min_requests},
};

static void f_analysis(struct pctx *c, const char *name, struct ynode *v)
{
	if (!want_map(c, name, v))
		return;
	c->s->strategy.analysis.enabled = true;
	size_t errs = c->n_errs;
	WALK(c, name, v, analysis_fields);
	if (c->n_errs == errs && !map_get(v, "max_error_rate") && !map_get(v, "max_p99"))
		ERR_AT(c, v, "analysis: set max_error_rate or max_p99 (or leave analysis out)");
}

static void f_zone_label(struct pctx *c, const char *name, struct ynode *v)
{
	struct spec_zones *z = &c->s->strategy.zones;
	free(z->label);
	z->label = get_line(c, name, v, false);
}

static void f_zone_one_per_batch(struct pctx *c, const char *name, struct ynode *v)
{
	get_bool(c, name, v, &c->s->strategy.zones.one_per_batch);
}

static void f_zone_min_available(struct pctx *c, const char *name, struct ynode *v)
{
	get_amount(c, name, v, 100, 0, &c->s->strategy.zones.min_available);
}

static const struct field zones_fields[] = {
	{"label", f_zone_label},
	{"one_per_batch", f_zone_one_per_batch},
	{"min_available", f_zone_min_available},
};

/* zones: {label: zone, one_per_batch: true, min_available: 50%} (label required). */
static void f_zones(struct pctx *c, const char *name, struct ynode *v)
{
	if (!want_map(c, name, v))
		return;
	size_t errs = c->n_errs;
	WALK(c, name, v, zones_fields);
	c->s->strategy.zones.pos = (struct spec_pos){v->line, v->col};
	if (c->n_errs == errs && map_get(v, "label") == NULL)
		ERR_AT(c, v, "%s: missing required key 'label' (the target label that names a host's zone)", name);
}

static const struct field strategy_fields[] = {
	{"max_surge", f_max_surge},
	{"max_unavailable", f_max_unavailable},
	{"batches", f_batches},
	{"pause_after", f_pause_after},
	{"min_ready", f_min_ready},
	{"health_deadline", f_health_deadline},
	{"progress_deadline", f_progress_deadline},
	{"max_failures", f_max_failures},
	{"auto_rollback", f_auto_rollback},
	{"analysis", f_analysis},
	{"watch", f_watch},
	{"min_stable", f_min_stable},
	{"zones", f_zones},
};

static void f_strategy(struct pctx *c, const char *name, struct ynode *v)
{
	if (want_map(c, name, v))
		WALK(c, name, v, strategy_fields);
}

/* ---- drain, stop ------------------------------------------------------------------------- */

static void f_drain_timeout(struct pctx *c, const char *name, struct ynode *v)
{
	get_duration(c, name, v, 0, &c->s->drain_timeout_ms);
}

static const struct field drain_fields[] = {{"timeout", f_drain_timeout}};

static void f_drain(struct pctx *c, const char *name, struct ynode *v)
{
	if (want_map(c, name, v))
		WALK(c, name, v, drain_fields);
}

static void f_signal(struct pctx *c, const char *name, struct ynode *v)
{
	static const struct {
		const char *name;
		int sig;
	} sigs[] = {
		{"TERM", SIGTERM}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"HUP", SIGHUP},
		{"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"KILL", SIGKILL},
	};
	char b[SHOWBUF];
	if (v->kind != Y_STR) {
		type_error(c, name, v, "a signal name");
		return;
	}
	const char *s = v->text;
	size_t n = v->len;
	if (n > 3 && memcmp(s, "SIG", 3) == 0) {
		s += 3;
		n -= 3;
	}
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		if (strlen(sigs[i].name) == n && memcmp(sigs[i].name, s, n) == 0) {
			c->s->stop_signal = sigs[i].sig;
			return;
		}
	}
	ERR_AT(c, v, "%s: unknown signal %s; use TERM, INT, QUIT, HUP, USR1, USR2 or KILL", name, VAL(b, v));
}

static void f_grace(struct pctx *c, const char *name, struct ynode *v)
{
	get_duration(c, name, v, 0, &c->s->stop_grace_ms);
}

static const struct field stop_fields[] = {
	{"signal", f_signal},
	{"grace", f_grace},
};

static void f_stop(struct pctx *c, const char *name, struct ynode *v)
{
	if (want_map(c, name, v))
		WALK(c, name, v, stop_fields);
}

/* ---- targets ----------------------------------------------------------------------------- */

/* ssh://user@host[:port]: user [A-Za-z0-9._-]+, host a name, an IPv4 or [IPv6]; port 22 when
 * absent. Fills user, host, port of t. */
static bool parse_ssh_url(const char *s, struct spec_target *t)
{
	if (strncmp(s, "ssh://", 6) != 0)
		return false;
	s += 6;
	const char *at = strchr(s, '@');
	if (at == NULL || at == s)
		return false;
	for (const char *p = s; p < at; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
		      *p == '_' || *p == '-'))
			return false;
	const char *h = at + 1, *end;
	int port = 22;
	if (*h == '[') {
		end = strchr(h, ']');
		if (end == NULL || !valid_ipv6(h + 1, (size_t)(end - h - 1)))
			return false;
		end++;
	} else {
		end = h;
		while ((*end >= 'a' && *end <= 'z') || (*end >= 'A' && *end <= 'Z') || (*end >= '0' && *end <= '9') ||
		       *end == '.' || *end == '-')
			end++;
		if (end == h || *h == '-' || *h == '.')
			return false;
	}
	if (*end == ':') {
		if (!valid_port(end + 1, &port))
			return false;
	} else if (*end != '\0') {
		return false;
	}
	t->user = xstrndup(s, (size_t)(at - s));
	if (*h == '[')
		t->host = xstrndup(h + 1, (size_t)(end - h - 2));
	else
		t->host = xstrndup(h, (size_t)(end - h));
	t->port = port;
	return true;
}

static void target_url(struct pctx *c, const char *name, struct ynode *v)
{
	char b[SHOWBUF];
	struct spec_target *t = c->cur_target;
	char *s = get_str(c, name, v);
	if (s == NULL)
		return;
	if (!parse_ssh_url(s, t)) {
		ERR_AT(c, v, "%s: %s is not ssh://user@host[:port]", name, VAL(b, v));
		free(s);
		return;
	}
	t->url = s;
}

static void f_target_labels(struct pctx *c, const char *name, struct ynode *v)
{
	struct spec_target *t = c->cur_target;
	if (!want_map(c, name, v))
		return;
	t->labels = xcalloc(v->n / 2 + 1, sizeof *t->labels);
	for (size_t i = 0; i + 1 < v->n; i += 2) {
		if (!key_ok(c, name, v, i))
			continue;
		struct ynode *k = v->kids[i];
		char what[SHOWBUF + 16], kb[SHOWBUF];
		snprintf(what, sizeof what, "labels %s", KEY(kb, k));
		char *val = get_line(c, what, v->kids[i + 1], true);
		if (val == NULL)
			continue;
		if (strlen(k->text) != k->len || k->len == 0) {
			ERR_AT(c, k, "labels: a label name must be a non-empty string");
			free(val);
			continue;
		}
		t->labels[t->n_labels++] = (struct spec_kv){.name = xstrndup(k->text, k->len), .value = val};
	}
}

/* ports: [8080, 8081]: the ports instances on this host listen on, one instance per port. */
static void f_target_ports(struct pctx *c, const char *name, struct ynode *v)
{
	struct spec_target *t = c->cur_target;
	if (v->kind != Y_SEQ) {
		type_error(c, name, v, "a list of ports");
		return;
	}
	if (v->n == 0) {
		ERR_AT(c, v, "%s: must not be empty (leave it out to use the daemon's port range)", name);
		return;
	}
	t->ports = xcalloc(v->n, sizeof *t->ports);
	for (size_t i = 0; i < v->n; i++) {
		char item[64];
		snprintf(item, sizeof item, "%s[%zu]", name, i);
		int p;
		if (!get_int(c, item, v->kids[i], 1, 65535, &p))
			continue;
		bool dup = false;
		for (size_t j = 0; j < t->n_ports; j++)
			dup |= t->ports[j] == p;
		if (dup)
			ERR_AT(c, v->kids[i], "%s: port %d is listed twice", item, p);
		else
			t->ports[t->n_ports++] = p;
	}
}

/* weight: 3: the share of the balancer's traffic each instance on this host gets, relative to
 * the instances of other hosts (least outstanding requests per unit of weight). */
static void f_target_weight(struct pctx *c, const char *name, struct ynode *v)
{
	get_int(c, name, v, 1, 256, &c->cur_target->weight);
}

static const struct field target_fields[] = {
	{"host", target_url},
	{"labels", f_target_labels},
	{"ports", f_target_ports},
	{"weight", f_target_weight},
};

static void free_target(struct spec_target *t)
{
	free(t->url);
	free(t->user);
	free(t->host);
	for (size_t i = 0; i < t->n_labels; i++) {
		free(t->labels[i].name);
		free(t->labels[i].value);
	}
	free(t->labels);
	free(t->ports);
	memset(t, 0, sizeof *t);
}

static void f_targets(struct pctx *c, const char *name, struct ynode *v)
{
	struct spec *s = c->s;
	if (v->kind == Y_STR && key_is(v, "local"))
		return;
	if (v->kind != Y_SEQ) {
		type_error(c, name, v, "local or a list of ssh://user@host[:port]");
		return;
	}
	if (v->n == 0) {
		ERR_AT(c, v, "%s: must not be empty (write targets: local to run here)", name);
		return;
	}
	if (v->n > SPEC_TARGETS_MAX) {
		ERR_AT(c, v, "%s: %zu hosts; at most %d", name, v->n, SPEC_TARGETS_MAX);
		return;
	}
	s->targets_local = false;
	s->targets = xcalloc(v->n, sizeof *s->targets);
	for (size_t i = 0; i < v->n; i++) {
		struct ynode *e = v->kids[i];
		char item[64];
		size_t errs = c->n_errs;
		snprintf(item, sizeof item, "%s[%zu]", name, i);
		c->cur_target = &s->targets[s->n_targets];
		c->cur_target->weight = 1;
		if (e->kind == Y_MAP) {
			WALK(c, item, e, target_fields);
			if (map_get(e, "host") == NULL)
				ERR_AT(c, e, "%s: missing required key 'host'", item);
		} else if (is_scalar(e) && e->kind != Y_NULL) {
			target_url(c, item, e);
		} else {
			type_error(c, item, e, "ssh://user@host[:port] or {host: ..., labels: ...}");
		}
		for (size_t j = 0; c->n_errs == errs && j < s->n_targets; j++) {
			struct spec_target *t = c->cur_target;
			if (strcmp(s->targets[j].user, t->user) == 0 && strcmp(s->targets[j].host, t->host) == 0 &&
			    s->targets[j].port == t->port)
				ERR_AT(c, e, "%s: %s@%s port %d is already targets[%zu]", item, t->user, t->host, t->port, j);
		}
		if (c->n_errs != errs)
			free_target(c->cur_target);
		else
			s->n_targets++;
		c->cur_target = NULL;
	}
}

/* ---- lb, notify --------------------------------------------------------------------------- */

static void f_haproxy_socket(struct pctx *c, const char *name, struct ynode *v)
{
	c->has_haproxy_socket = true;
	c->s->haproxy_socket = get_line(c, name, v, false);
}

static void f_haproxy_backend(struct pctx *c, const char *name, struct ynode *v)
{
	c->s->haproxy_backend = get_line(c, name, v, false);
}

static const struct field haproxy_fields[] = {
	{"socket", f_haproxy_socket},
	{"backend", f_haproxy_backend},
};

static void f_haproxy(struct pctx *c, const char *name, struct ynode *v)
{
	if (!want_map(c, name, v))
		return;
	c->s->lb = SPEC_LB_HAPROXY;
	WALK(c, name, v, haproxy_fields);
	if (!c->has_haproxy_socket)
		ERR_AT(c, v, "haproxy: missing required key 'socket'");
}

static const struct field lb_fields[] = {{"haproxy", f_haproxy}};

static void f_lb(struct pctx *c, const char *name, struct ynode *v)
{
	char b[SHOWBUF];
	if (v->kind == Y_STR && key_is(v, "builtin")) {
		c->s->lb = SPEC_LB_BUILTIN;
	} else if (v->kind == Y_STR && key_is(v, "none")) {
		c->s->lb = SPEC_LB_NONE;
	} else if (v->kind == Y_MAP) {
		if (v->n == 0)
			ERR_AT(c, v, "lb: expected haproxy: {socket: ..., backend: ...}");
		WALK(c, name, v, lb_fields);
	} else if (v->kind == Y_STR) {
		ERR_AT(c, v, "%s: %s is not a load balancer; use builtin, none or {haproxy: {...}}", name, VAL(b, v));
	} else {
		type_error(c, name, v, "builtin, none or {haproxy: {...}}");
	}
}

static const char *const event_names[SPEC_EV__COUNT] = {
	[SPEC_EV_STARTED] = "started",   [SPEC_EV_PAUSED] = "paused",
	[SPEC_EV_COMPLETED] = "completed", [SPEC_EV_FAILED] = "failed",
	[SPEC_EV_ROLLED_BACK] = "rolled_back", [SPEC_EV_ABORTED] = "aborted",
};

static void f_notify_url(struct pctx *c, const char *name, struct ynode *v)
{
	char b[SHOWBUF];
	char *s = get_line(c, name, v, true);
	if (s == NULL)
		return;
	if ((strncmp(s, "http://", 7) != 0 || s[7] == '\0') && (strncmp(s, "https://", 8) != 0 || s[8] == '\0')) {
		ERR_AT(c, v, "%s: %s is not an http:// or https:// URL", name, VAL(b, v));
		free(s);
		return;
	}
	c->cur_notify->url = s;
}

static void f_notify_events(struct pctx *c, const char *name, struct ynode *v)
{
	char b[SHOWBUF];
	if (!want_seq(c, name, v))
		return;
	if (v->n == 0) {
		ERR_AT(c, v, "%s: must not be empty (leave it out for every event)", name);
		return;
	}
	for (size_t i = 0; i < v->n; i++) {
		struct ynode *e = v->kids[i];
		size_t k = 0;
		while (k < SPEC_EV__COUNT && !(e->kind == Y_STR && key_is(e, event_names[k])))
			k++;
		if (k < SPEC_EV__COUNT)
			c->cur_notify->events |= 1u << k;
		else if (!is_scalar(e))
			type_error(c, name, e, "an event name");
		else
			ERR_AT(c, e,
			       "%s: unknown event %s; use started, paused, completed, failed, rolled_back or aborted",
			       name, VAL(b, e));
	}
}

static void f_notify_slack(struct pctx *c, const char *name, struct ynode *v)
{
	get_bool(c, name, v, &c->cur_notify->slack);
}

static const struct field notify_fields[] = {
	{"url", f_notify_url},
	{"events", f_notify_events},
	{"slack", f_notify_slack},
};

static void f_notify(struct pctx *c, const char *name, struct ynode *v)
{
	struct spec *s = c->s;
	if (!want_seq(c, name, v))
		return;
	if (v->n > SPEC_NOTIFY_MAX) {
		ERR_AT(c, v, "%s: %zu webhooks; at most %d", name, v->n, SPEC_NOTIFY_MAX);
		return;
	}
	s->notify = xcalloc(v->n + 1, sizeof *s->notify);
	for (size_t i = 0; i < v->n; i++) {
		struct ynode *e = v->kids[i];
		char item[64];
		snprintf(item, sizeof item, "%s[%zu]", name, i);
		if (!want_map(c, item, e))
			continue;
		struct spec_notify *nt = &s->notify[s->n_notify];
		c->cur_notify = nt;
		size_t errs = c->n_errs;
		WALK(c, item, e, notify_fields);
		if (map_get(e, "url") == NULL)
			ERR_AT(c, e, "%s: missing required key 'url'", item);
		c->cur_notify = NULL;
		if (c->n_errs != errs) {
			free(nt->url);
			memset(nt, 0, sizeof *nt);
		} else {
			s->n_notify++;
		}
	}
}

/* ---- ssh ------------------------------------------------------------------------------------ */

static void f_ssh_accept_new(struct pctx *c, const char *name, struct ynode *v)
{
	get_bool(c, name, v, &c->s->ssh_accept_new);
}

static void f_ssh_preset(struct pctx *c, const char *name, struct ynode *v)
{
	char b[SHOWBUF];
	if (key_is(v, "process") && v->kind == Y_STR)
		c->s->ssh_preset = SPEC_PRESET_PROCESS;
	else if (key_is(v, "systemd") && v->kind == Y_STR)
		c->s->ssh_preset = SPEC_PRESET_SYSTEMD;
	else if (!is_scalar(v) || v->kind == Y_NULL)
		type_error(c, name, v, "process or systemd");
	else
		ERR_AT(c, v, "%s: %s is not a preset; use process or systemd", name, VAL(b, v));
}

static void f_ssh_parallel(struct pctx *c, const char *name, struct ynode *v)
{
	get_int(c, name, v, 1, 1000, &c->s->ssh_parallel);
}

static const struct field ssh_fields[] = {
	{"accept_new", f_ssh_accept_new},
	{"preset", f_ssh_preset},
	{"parallel", f_ssh_parallel},
};

static void f_ssh(struct pctx *c, const char *name, struct ynode *v)
{
	if (want_map(c, name, v))
		WALK(c, name, v, ssh_fields);
}

/* ---- the whole spec ----------------------------------------------------------------------- */

static const struct field top_fields[] = {
	{"service", f_service},   {"replicas", f_replicas}, {"listen", f_listen}, {"protocol", f_protocol},
	{"template", f_template}, {"health", f_health},     {"strategy", f_strategy}, {"drain", f_drain},
	{"stop", f_stop},         {"targets", f_targets},   {"lb", f_lb},         {"notify", f_notify},
	{"ssh", f_ssh},
};

/* The sections of the spec by name, for an unknown key that is known elsewhere. */
static const struct {
	const char *name;   /* as in docs/spec.md; NULL for the top level */
	const char *indent; /* the key to indent it under */
	const struct field *f;
	size_t n;
} sections[] = {
#define SECTION(name, under, t) {name, under, t, sizeof(t) / sizeof((t)[0])}
	SECTION(NULL, NULL, top_fields),
	SECTION("template", "template:", template_fields),
	SECTION("template.hooks", "hooks:", hook_fields),
	SECTION("health", "health:", health_fields),
	SECTION("health.http", "http:", http_fields),
	SECTION("strategy", "strategy:", strategy_fields),
	SECTION("strategy.analysis", "analysis:", analysis_fields),
	SECTION("strategy.zones", "zones:", zones_fields),
	SECTION("drain", "drain:", drain_fields),
	SECTION("stop", "stop:", stop_fields),
	SECTION("ssh", "ssh:", ssh_fields),
	SECTION("lb.haproxy", "haproxy:", haproxy_fields),
#undef SECTION
};

/* When key is unknown in the table cur but known in other sections, says where it belongs into
 * buf ("it is a key of template: indent it under 'template:'") and returns true. */
static bool belongs_hint(const char *key, const struct field *cur, char *buf, size_t size)
{
	const char *names[4], *unders[4];
	size_t n = 0;
	bool top = false;
	for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
		if (sections[i].f == cur)
			continue;
		for (size_t j = 0; j < sections[i].n; j++) {
			if (strcmp(sections[i].f[j].name, key) != 0)
				continue;
			if (sections[i].name == NULL)
				top = true;
			else if (n < 4) {
				names[n] = sections[i].name;
				unders[n++] = sections[i].indent;
			}
		}
	}
	if (top) {
		snprintf(buf, size, "it is a top-level key: write it at the start of a line, not indented");
		return true;
	}
	if (n == 0)
		return false;
	size_t o = (size_t)snprintf(buf, size, "it is a key of ");
	for (size_t i = 0; i < n && o < size; i++)
		o += (size_t)snprintf(buf + o, size - o, "%s%s", i == 0 ? "" : i + 1 == n ? " or " : ", ", names[i]);
	for (size_t i = 0; i < n && o < size; i++)
		o += (size_t)snprintf(buf + o, size - o, "%s'%s'", i == 0 ? ": indent it under " : i + 1 == n ? " or " : ", ",
				      unders[i]);
	return true;
}

/* strategy.zones needs ssh targets, each with the label, and names short enough to keep. */
static void check_zones(struct pctx *c)
{
	struct spec *s = c->s;
	const struct spec_zones *z = &s->strategy.zones;
	if (z->label == NULL)
		return;
	if (s->targets_local) {
		perr_add(c, z->pos.line, z->pos.col, "strategy.zones: zones are labels of ssh targets (targets: local has none)");
		return;
	}
	if (z->min_available.value > 0 && s->strategy.max_surge.value == 0)
		perr_add(c, z->pos.line, z->pos.col,
			 "strategy.zones: min_available needs max_surge above 0 (with no room to start a new instance "
			 "first, a zone at its floor could never be replaced)");
	if (spec_zone_count(s) > SPEC_ZONES_MAX)
		perr_add(c, z->pos.line, z->pos.col, "strategy.zones: at most %d zones", SPEC_ZONES_MAX);
	for (size_t i = 0; i < s->n_targets; i++) {
		const char *v = spec_target_zone(s, &s->targets[i]);
		if (*v == '\0')
			perr_add(c, z->pos.line, z->pos.col, "strategy.zones: target %s has no label '%.40s'", s->targets[i].url,
			       z->label);
		else if (strlen(v) > SPEC_ZONE_MAX)
			perr_add(c, z->pos.line, z->pos.col, "strategy.zones: target %s: a zone name is at most %d bytes", s->targets[i].url,
				 SPEC_ZONE_MAX);
	}
}

/* The checks that span fields, once everything is read. Only values that parsed take part, so a
 * bad field is reported once, not again as a contradiction. */
static void check_spec(struct pctx *c)
{
	struct spec *s = c->s;
	struct spec_strategy *st = &s->strategy;
	struct ynode *r = c->root;
	char b1[32], b2[32];

	if (!c->has_service)
		ERR_AT(c, r, "missing required key 'service'");
	check_zones(c);
	for (int k = 0; k < SPEC_HOOK__COUNT; k++)
		if (s->tmpl.n_hooks[k] > 0 && s->targets_local) {
			ERR_AT(c, r, "template: hooks run on ssh targets only (targets: local has none)");
			break;
		}
	if (c->files_node != NULL && !s->targets_local)
		ERR_AT(c, c->files_node, "template.files works with targets: local only (for now)");
	if (!c->has_template)
		ERR_AT(c, r, "missing required key 'template' (with version and command)");
	if (s->lb == SPEC_LB_HAPROXY && s->haproxy_backend == NULL && s->service != NULL)
		s->haproxy_backend = xstrdup(s->service);
	if (s->lb == SPEC_LB_NONE) {
		free(s->listen);
		s->listen = NULL;
	} else if (!c->has_listen) {
		ERR_AT(c, r, "missing required key 'listen' (host:port; only lb: none goes without)");
	}
	if (c->surge_ok || c->unavailable_ok) {
		if (st->max_surge.value == 0 && st->max_unavailable.value == 0) {
			struct spec_pos p = c->surge_ok ? st->surge_pos : st->unavailable_pos;
			perr_add(c, p.line, p.col,
				 "max_surge and max_unavailable are both 0, so no instance could ever be replaced; "
				 "raise one of them");
		}
	}
	/* An unwritten timeout is the smaller of its default (1s) and the interval. */
	if (c->interval_ok && c->timeout_pos.line == 0 && s->health.timeout_ms > s->health.interval_ms)
		s->health.timeout_ms = s->health.interval_ms;
	if (c->interval_ok && c->timeout_ok && s->health.timeout_ms > s->health.interval_ms) {
		struct spec_pos p = c->timeout_pos.line ? c->timeout_pos : c->interval_pos;
		perr_add(c, p.line, p.col, "health: timeout %s is longer than interval %s",
			 amount_format_duration(s->health.timeout_ms, b1, sizeof b1),
			 amount_format_duration(s->health.interval_ms, b2, sizeof b2));
	}
	/* Batch 1 always exists; the count is needed only past it. */
	int count = 0;
	for (size_t i = 0; i < st->n_pause_after && !c->replicas_bad && !c->batches_bad; i++) {
		struct spec_pause *p = &st->pause_after[i];
		if (p->batch <= 1)
			continue;
		if (count == 0)
			count = spec_batch_count(st, s->replicas);
		if (p->batch > count)
			perr_add(c, p->pos.line, p->pos.col,
				 "pause_after: batch %d is past the last batch, %d (for %d replica%s)", p->batch, count,
				 s->replicas, s->replicas == 1 ? "" : "s");
	}
}

static int perr_cmp(const void *a, const void *b)
{
	const struct perr *x = a, *y = b;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void errors_add(struct spec_errors *e, char *msg)
{
	xgrow((void **)&e->v, &e->cap, e->n + 1, sizeof *e->v);
	e->v[e->n++] = msg;
}

void spec_errors_clear(struct spec_errors *e)
{
	if (e == NULL)
		return;
	for (size_t i = 0; i < e->n; i++)
		free(e->v[i]);
	free(e->v);
	memset(e, 0, sizeof *e);
}

int spec_parse(const char *text, size_t len, const char *file, struct spec *out, struct spec_errors *errs)
{
	struct pctx c = {.s = out};
	struct ytree_error yerr;
	const char *fname = file ? file : "<spec>";

	spec_init(out);
	if (len > SPEC_PARSE_MAX_BYTES) {
		perr_add(&c, 1, 1, "the spec is larger than 1 MiB, the limit");
	} else if (ytree_build(&c.tree, text, len, &yerr) < 0) {
		perr_add(&c, yerr.line, yerr.col, "%s", yerr.msg);
	} else {
		c.root = c.tree.root;
		if (c.root == NULL || c.root->kind == Y_NULL) {
			perr_add(&c, 1, 1, "the spec is empty; it needs at least service, listen and template");
		} else if (c.root->kind != Y_MAP) {
			ERR_AT(&c, c.root, "the spec must be a mapping of keys (service: ..., replicas: ...), got %s",
			       kind_names[c.root->kind]);
		} else {
			WALK(&c, NULL, c.root, top_fields);
			check_spec(&c);
		}
	}
	ytree_free(&c.tree);
	if (c.n_errs == 0) {
		if (file != NULL)
			out->file = xstrdup(file);
		return 0;
	}
	spec_clear(out);
	qsort(c.errs, c.n_errs, sizeof *c.errs, perr_cmp);
	for (size_t i = 0; i < c.n_errs; i++) {
		errors_add(errs, xasprintf("%s:%d:%d: %s", fname, c.errs[i].line, c.errs[i].col, c.errs[i].msg));
		free(c.errs[i].msg);
	}
	free(c.errs);
	return -EINVAL;
}

int spec_parse_file(const char *path, struct spec *out, struct spec_errors *errs)
{
	spec_init(out);
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		int e = errno;
		errors_add(errs, xasprintf("%s: cannot open: %s", path, strerror(e)));
		return -e;
	}
	/* One byte past the limit, so spec_parse sees the file is too large. */
	size_t cap = SPEC_PARSE_MAX_BYTES + 1, n = 0;
	char *buf = xmalloc(cap);
	while (n < cap) {
		size_t r = fread(buf + n, 1, cap - n, f);
		if (r == 0)
			break;
		n += r;
	}
	int rc = 0;
	if (ferror(f)) {
		int e = errno ? errno : EIO;
		errors_add(errs, xasprintf("%s: cannot read: %s", path, strerror(e)));
		rc = -e;
	}
	fclose(f);
	if (rc == 0)
		rc = spec_parse(buf, n, path, out, errs);
	xwipe(buf, n);
	free(buf);
	return rc;
}
