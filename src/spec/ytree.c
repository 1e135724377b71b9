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

static void syntax_error(struct ytree_error *e, yaml_parser_t *p, const char *text, size_t len)
{
	int line, col;
	const char *problem = p->problem ? p->problem : "cannot parse";
	if (p->error == YAML_READER_ERROR) {
		offset_pos(text, len, p->problem_offset, &line, &col);
		set_err(e, line, col, "YAML syntax error: %s", problem);
		return;
	}
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
