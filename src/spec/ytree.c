/* A YAML document as a tree from libyaml's events, within spec_parse's limits; shared by the spec
 * parser and the secret redactor. */
#include "spec/ytree.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "spec/spec_yaml.h"
#include "util/xmalloc.h"

static void set_err(struct ytree_error *e, int line, int col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void set_err(struct ytree_error *e, int line, int col, const char *fmt, ...)
{
	e->line = line;
	e->col = col;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
}

static bool is_digits(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static enum ykind plain_kind(const char *s, size_t n)
{
	static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
	static const char *const bools[] = {"true", "True", "TRUE", "false", "False", "FALSE"};
	for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++)
		if (strlen(nulls[i]) == n && memcmp(nulls[i], s, n) == 0)
			return Y_NULL;
	for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++)
		if (strlen(bools[i]) == n && memcmp(bools[i], s, n) == 0)
			return Y_BOOL;
	size_t i = (n > 0 && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
	if (is_digits(s + i, n - i))
		return Y_INT;
	const char *dot = memchr(s + i, '.', n - i);
	if (dot != NULL) {
		size_t a = (size_t)(dot - (s + i)), b = n - i - a - 1;
		if ((a == 0 || is_digits(s + i, a)) && (b == 0 || is_digits(dot + 1, b)) && a + b > 0)
			return Y_FLOAT;
	}
	return Y_STR;
}

static struct ynode *node_new(struct ytree *t, enum ykind kind, const yaml_event_t *ev)
{
	struct ynode *n = xcalloc(1, sizeof *n);
	n->kind = kind;
	n->line = (int)ev->start_mark.line + 1;
	n->col = (int)ev->start_mark.column + 1;
	n->start = ev->start_mark.index;
	n->end = ev->end_mark.index;
	xgrow((void **)&t->all, &t->cap_all, t->n_all + 1, sizeof *t->all);
	t->all[t->n_all++] = n;
	return n;
}

void ytree_free(struct ytree *t)
{
	for (size_t i = 0; i < t->n_all; i++) {
		struct ynode *n = t->all[i];
		if (n->text != NULL) {
			xwipe(n->text, n->len);
			free(n->text);
		}
		free(n->kids);
		free(n);
	}
	free(t->all);
	memset(t, 0, sizeof *t);
}

/* 1-based line and column of byte offset off in text. */
static void offset_pos(const char *text, size_t len, size_t off, int *line, int *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off && i < len; i++) {
		if (text[i] == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

/* ---- syntax errors in the user's words -------------------------------------------------- */

/* One line of the text, without its newline. */
struct yline {
	const char *s;
	size_t n;
};

/* Line no (1-based) of text; false past the end. */
static bool line_at(const char *text, size_t len, int no, struct yline *out)
{
	size_t i = 0;
	for (int l = 1; l < no; l++) {
		const char *nl = memchr(text + i, '\n', len - i);
		if (nl == NULL)
			return false;
		i = (size_t)(nl - text) + 1;
	}
	if (i > len || (i == len && no > 1 && text[len - 1] != '\n'))
		return false;
	const char *nl = memchr(text + i, '\n', len - i);
	out->s = text + i;
	out->n = nl ? (size_t)(nl - (text + i)) : len - i;
	if (out->n > 0 && out->s[out->n - 1] == '\r')
		out->n--;
	return true;
}

/* Leading blanks (spaces and tabs) of a line. */
static size_t indent_of(struct yline l)
{
	size_t i = 0;
	while (i < l.n && (l.s[i] == ' ' || l.s[i] == '\t'))
		i++;
	return i;
}

static bool has_tab_indent(struct yline l)
{
	return memchr(l.s, '\t', indent_of(l)) != NULL;
}

/* A line with something besides blanks and a comment. */
static bool is_content(struct yline l)
{
	size_t i = indent_of(l);
	return i < l.n && l.s[i] != '#';
}

/* Byte offset in line l of 1-based character column col (libyaml counts characters). */
static size_t col_offset(struct yline l, int col)
{
	size_t i = 0;
	for (int c = 1; c < col && i < l.n; c++) {
		i++;
		while (i < l.n && ((unsigned char)l.s[i] & 0xc0) == 0x80)
			i++;
	}
	return i;
}

/* The key a line starts with ("version" of "  version: 2"; a list item's "- " skipped) into
 * buf, printable ASCII only and at most 40 bytes. False when the line holds no plain key. */
static bool key_of(struct yline l, char *buf, size_t size)
{
	size_t i = indent_of(l);
	if (i + 1 < l.n && l.s[i] == '-' && l.s[i + 1] == ' ')
		for (i += 2; i < l.n && l.s[i] == ' '; i++)
			;
	size_t start = i;
	while (i < l.n && !(l.s[i] == ':' && (i + 1 == l.n || l.s[i + 1] == ' ' || l.s[i + 1] == '\t'))) {
		unsigned char ch = (unsigned char)l.s[i];
		if (ch < 0x21 || ch > 0x7e || ch == '\'' || ch == '"' || ch == '#' || ch == '[' || ch == '{' ||
		    i - start >= 40)
			return false;
		i++;
	}
	if (i == start || i == l.n || size < i - start + 1)
		return false;
	memcpy(buf, l.s + start, i - start);
	buf[i - start] = '\0';
	return true;
}

static bool is_item(struct yline l)
{
	size_t i = indent_of(l);
	return i < l.n && l.s[i] == '-' && (i + 1 == l.n || l.s[i + 1] == ' ');
}

/* The nearest content line above line no (indented less than max_indent when max_indent >= 0):
 * its number, or 0. */
static int line_above(const char *text, size_t len, int no, long max_indent, struct yline *out)
{
	for (int l = no - 1; l >= 1; l--) {
		if (!line_at(text, len, l, out) || !is_content(*out))
			continue;
		if (max_indent < 0 || (long)indent_of(*out) < max_indent)
			return l;
	}
	return 0;
}

/* "'command'" or "this line" for line l, into buf. */
static const char *what_line(struct yline l, char *buf, size_t size)
{
	char k[48];
	if (key_of(l, k, sizeof k) && !is_item(l))
		snprintf(buf, size, "'%s'", k);
	else
		snprintf(buf, size, "this line");
	return buf;
}

/* "2 spaces", "1 space". */
static const char *spaces(size_t k, char *buf, size_t size)
{
	snprintf(buf, size, "%zu space%s", k, k == 1 ? "" : "s");
	return buf;
}

/* "a key of 'template' must be indented like 'version' (2 spaces)" for the mapping whose line
 * `sib` (number sibno) is a key or item of. */
static void level_words(const char *text, size_t len, int sibno, struct yline sib, char *buf, size_t size)
{
	char sk[48], pk[48], n[32];
	struct yline par;
	size_t in = indent_of(sib);
	int parno = line_above(text, len, sibno, (long)in, &par);
	bool has_parent = parno > 0 && key_of(par, pk, sizeof pk);
	if (is_item(sib)) {
		if (has_parent)
			snprintf(buf, size, "the items of '%s' are indented by %s, like line %d", pk, spaces(in, n, sizeof n),
				 sibno);
		else
			snprintf(buf, size, "list items are indented by %s, like line %d", spaces(in, n, sizeof n), sibno);
	} else if (!key_of(sib, sk, sizeof sk)) {
		snprintf(buf, size, "line %d is indented by %s", sibno, spaces(in, n, sizeof n));
	} else if (in == 0) {
		snprintf(buf, size, "a top-level key starts in column 1, like '%s'", sk);
	} else if (has_parent) {
		snprintf(buf, size, "a key of '%s' is indented by %s, like '%s'", pk, spaces(in, n, sizeof n), sk);
	} else {
		snprintf(buf, size, "a key there is indented by %s, like '%s'", spaces(in, n, sizeof n), sk);
	}
}

/* The message for a line (number no) whose indentation does not fit the lines above it, or
 * false when the lines do not show how. */
static bool indent_error(struct ytree_error *e, const char *text, size_t len, int no)
{
	struct yline l, prev;
	char w[64], a[256], b[256], sp[32];
	if (!line_at(text, len, no, &l))
		return false;
	int col = (int)indent_of(l) + 1;
	if (has_tab_indent(l)) {
		col = (int)((const char *)memchr(l.s, '\t', indent_of(l)) - l.s) + 1;
		set_err(e, no, col, "a tab character in the indentation; YAML indents with spaces only: replace it with spaces");
		return true;
	}
	int pno = line_above(text, len, no, -1, &prev);
	if (pno == 0)
		return false;
	size_t in = indent_of(l), pin = indent_of(prev);
	what_line(l, w, sizeof w);
	if (in > pin) {
		/* Deeper than a line that already has its value: no key can hold it. */
		level_words(text, len, pno, prev, a, sizeof a);
		char pk[48];
		if (key_of(prev, pk, sizeof pk) && !is_item(prev))
			set_err(e, no, col, "%s is indented more than '%s' above it (line %d), which already has a value; %s",
				w, pk, pno, a);
		else
			set_err(e, no, col, "%s is indented more than line %d above it, which is complete; %s", w, pno, a);
		return true;
	}
	if (in == pin) {
		if (is_item(l) && !is_item(prev)) {
			set_err(e, no, col,
				"a list item ('- ') among keys; put it under the key it belongs to (a key ending in ':'), "
				"indented more than that key");
			return true;
		}
		if (!is_item(l) && is_item(prev)) {
			set_err(e, no, col,
				"%s is indented like the list item on line %d but does not start with '- '; "
				"make it an item, or indent it like the keys it belongs with",
				w, pno);
			return true;
		}
		return false;
	}
	/* Shallower than the line above: name the two levels it falls between. */
	struct yline deeper = prev, up;
	int dno = pno;
	for (;;) {
		int uno = line_above(text, len, dno, (long)indent_of(deeper), &up);
		if (uno == 0 || indent_of(up) < in) {
			level_words(text, len, dno, deeper, a, sizeof a);
			if (uno == 0) {
				set_err(e, no, col, "%s is indented by %s, which lines up with no line above it: %s", w,
					spaces(in, sp, sizeof sp), a);
			} else {
				level_words(text, len, uno, up, b, sizeof b);
				set_err(e, no, col,
					"%s is indented by %s, which lines up with no key above it: %s; %s", w,
					spaces(in, sp, sizeof sp), a, b);
			}
			return true;
		}
		if (indent_of(up) == in)
			return false; /* it does line up: something else is wrong */
		deeper = up;
		dno = uno;
	}
}

/* A character for a message: itself when printable ASCII, else \xNN. */
static const char *show_char(const char *s, size_t n, char *buf, size_t size)
{
	unsigned char ch = n > 0 ? (unsigned char)s[0] : 0;
	if (ch >= 0x21 && ch <= 0x7e && ch != '\'')
		snprintf(buf, size, "%c", ch);
	else
		snprintf(buf, size, "\\x%02x", ch);
	return buf;
}

/* libyaml's problem in the user's words, at the place to fix; false when there is no better
 * wording than libyaml's own. */
static bool explain(struct ytree_error *e, yaml_parser_t *p, const char *text, size_t len)
{
	const char *pr = p->problem, *cx = p->context ? p->context : "";
	int line = (int)p->problem_mark.line + 1, col = (int)p->problem_mark.column + 1;
	int cline = (int)p->context_mark.line + 1, ccol = (int)p->context_mark.column + 1;
	struct yline l;
	char c1[8];
	if (pr == NULL || text == NULL || !line_at(text, len, line, &l))
		return false;
	size_t off = col_offset(l, col);
	bool at_start = off == indent_of(l);

	if (strstr(pr, "tab character") != NULL ||
	    (strcmp(pr, "found character that cannot start any token") == 0 && off < l.n && l.s[off] == '\t')) {
		set_err(e, line, col, "a tab character; YAML indents with spaces only: replace it with spaces");
		return true;
	}
	if (strcmp(pr, "found character that cannot start any token") == 0) {
		set_err(e, line, col, "a value cannot start with '%s' unless it is quoted; write it in quotes (\"...\")",
			show_char(l.s + off, l.n - off, c1, sizeof c1));
		return true;
	}
	if (strcmp(cx, "while scanning a quoted scalar") == 0 &&
	    (strstr(pr, "end of stream") != NULL || strstr(pr, "document indicator") != NULL)) {
		struct yline q;
		char qc = '"';
		if (line_at(text, len, cline, &q)) {
			size_t qo = col_offset(q, ccol);
			if (qo < q.n)
				qc = q.s[qo];
		}
		set_err(e, cline, ccol, "the quoted value that starts here is never closed; add the closing %c", qc);
		return true;
	}
	if (strcmp(pr, "found unknown escape character") == 0) {
		size_t o = off < l.n && l.s[off] == '\\' ? off + 1 : off;
		set_err(e, line, col,
			"'\\%s' is not an escape of a double-quoted string; write \\\\ for a backslash, or use single quotes",
			show_char(l.s + o, l.n - o, c1, sizeof c1));
		return true;
	}
	bool seq = strcmp(cx, "while parsing a flow sequence") == 0, map = strcmp(cx, "while parsing a flow mapping") == 0;
	if ((seq || map) && strncmp(pr, "did not find expected ','", 25) == 0) {
		const char *what = seq ? "list" : "mapping";
		char open = seq ? '[' : '{', close = seq ? ']' : '}';
		if (line != cline)
			set_err(e, cline, ccol, "the %s opened here with '%c' is not closed; add '%c' where it ends", what,
				open, close);
		else
			set_err(e, line, col, "expected ',' or '%c' here, in the %s opened with '%c' at column %d", close, what,
				open, ccol);
		return true;
	}
	if (strcmp(pr, "could not find expected ':'") == 0 && strcmp(cx, "while scanning a simple key") == 0) {
		struct yline k;
		if (!line_at(text, len, cline, &k))
			return false;
		size_t ko = col_offset(k, ccol);
		const char *colon = memchr(k.s + ko, ':', k.n - ko);
		size_t kl = colon ? (size_t)(colon - (k.s + ko)) : 0;
		if (colon != NULL && kl > 0 && kl <= 40 && (size_t)(colon - k.s) + 1 < k.n) {
			/* The key only: the value could be a secret. */
			set_err(e, cline, ccol, "a key needs a space after its ':': write '%.*s: ...'", (int)kl,
				k.s + ko);
			for (char *m = e->msg; *m; m++)
				if ((unsigned char)*m < 0x20 || (unsigned char)*m > 0x7e)
					*m = '?';
		} else {
			set_err(e, cline, ccol, "this line has no ':'; a line of a mapping is 'key: value'");
		}
		return true;
	}
	if (strcmp(pr, "block sequence entries are not allowed in this context") == 0) {
		set_err(e, line, col,
			"a list item ('- ') cannot start on its key's line; put each item on its own line, indented "
			"under the key, or write the list as [a, b]");
		return true;
	}
	if (strcmp(pr, "mapping values are not allowed in this context") == 0) {
		/* The line's own key colon: the line sits deeper than the one above it. */
		const char *first = NULL;
		for (size_t i = indent_of(l); i < l.n && first == NULL; i++)
			if (l.s[i] == ':' && (i + 1 == l.n || l.s[i + 1] == ' ' || l.s[i + 1] == '\t'))
				first = l.s + i;
		if (first == l.s + off && indent_error(e, text, len, line))
			return true;
		set_err(e, line, col,
			"a second ': ' on one line; a value that holds ': ' must be quoted (\"a: b\"), and a nested key "
			"goes on its own line, indented");
		return true;
	}
	if (strcmp(pr, "did not find expected key") == 0 || strcmp(pr, "did not find expected '-' indicator") == 0) {
		if (at_start)
			return indent_error(e, text, len, line);
		set_err(e, line, col,
			"unexpected text after a complete value; after a closing quote or bracket only a comment "
			"(' # ...') may follow");
		return true;
	}
	return false;
}

static void syntax_error(struct ytree_error *e, yaml_parser_t *p, const char *text, size_t len)
{
	int line, col;
	const char *problem = p->problem ? p->problem : "cannot parse";
	if (p->error == YAML_READER_ERROR) {
		offset_pos(text, len, p->problem_offset, &line, &col);
		set_err(e, line, col, "YAML syntax error: %s", problem);
		return;
	}
	if (explain(e, p, text, len))
		return;
	line = (int)p->problem_mark.line + 1;
	col = (int)p->problem_mark.column + 1;
	if (p->context != NULL)
		set_err(e, line, col, "YAML syntax error: %s (%s at line %d, column %d)", problem, p->context,
			(int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
	else
		set_err(e, line, col, "YAML syntax error: %s", problem);
}

int ytree_build(struct ytree *t, const char *text, size_t len, struct ytree_error *err)
{
	yaml_parser_t p;
	yaml_event_t ev;
	struct ynode *stack[SPEC_PARSE_MAX_DEPTH + 1];
	size_t depth = 0, nodes = 0;
	int docs = 0, rc = 0;
	bool done = false;

	memset(t, 0, sizeof *t);
	if (!yaml_parser_initialize(&p))
		abort();
	yaml_parser_set_input_string(&p, (const unsigned char *)(text ? text : ""), text ? len : 0);
	while (!done && rc == 0) {
		if (!yaml_parser_parse(&p, &ev)) {
			syntax_error(err, &p, text, len);
			rc = -EINVAL;
			break;
		}
		int line = (int)ev.start_mark.line + 1, col = (int)ev.start_mark.column + 1;
		struct ynode *n = NULL;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1) {
				set_err(err, line, col, "only one YAML document is allowed in a spec");
				rc = -EINVAL;
			}
			break;
		case YAML_ALIAS_EVENT:
			set_err(err, line, col, "YAML aliases (*name) are not supported in a spec; write the value out");
			rc = -EINVAL;
			break;
		case YAML_SCALAR_EVENT:
			if (ev.data.scalar.length > SPEC_PARSE_MAX_STRING) {
				set_err(err, line, col, "a string is longer than %d KiB, the limit",
					SPEC_PARSE_MAX_STRING / 1024);
				rc = -EINVAL;
				break;
			}
			/* fall through */
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			if (++nodes > SPEC_PARSE_MAX_NODES) {
				set_err(err, line, col, "more than %d YAML nodes; a spec is not that large",
					SPEC_PARSE_MAX_NODES);
				rc = -EINVAL;
				break;
			}
			if (ev.type == YAML_SCALAR_EVENT) {
				const char *v = (const char *)ev.data.scalar.value;
				size_t vl = ev.data.scalar.length;
				/* A plain scalar tagged !!str is a string, as a quoted one is. */
				const char *tag = (const char *)ev.data.scalar.tag;
				bool plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
					     !(tag != NULL && strcmp(tag, YAML_STR_TAG) == 0);
				n = node_new(t, plain ? plain_kind(v, vl) : Y_STR, &ev);
				n->text = xstrndup(v, vl);
				n->len = vl;
			} else {
				if (depth >= SPEC_PARSE_MAX_DEPTH) {
					set_err(err, line, col, "nesting deeper than %d levels", SPEC_PARSE_MAX_DEPTH);
					rc = -EINVAL;
					break;
				}
				n = node_new(t, ev.type == YAML_MAPPING_START_EVENT ? Y_MAP : Y_SEQ, &ev);
			}
			if (depth > 0) {
				struct ynode *parent = stack[depth - 1];
				xgrow((void **)&parent->kids, &parent->cap, parent->n + 1, sizeof *parent->kids);
				parent->kids[parent->n++] = n;
			} else {
				t->root = n;
			}
			if (n->kind == Y_MAP || n->kind == Y_SEQ)
				stack[depth++] = n;
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			depth--;
			break;
		default:
			break;
		}
		if (ev.type == YAML_SCALAR_EVENT && ev.data.scalar.value != NULL)
			xwipe(ev.data.scalar.value, ev.data.scalar.length);
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	return rc;
}
