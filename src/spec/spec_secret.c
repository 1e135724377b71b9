/* Secret env values out of stored spec text: redaction on libyaml's marks (byte ranges of the
 * scalars), and the pairs that fill a parsed spec back. docs/spec.md "Secrets" has the contract. */
#include "spec/spec_secret.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "spec/spec_yaml.h"
#include "spec/ytree.h"
#include "util/xmalloc.h"

/* ---- the pairs ------------------------------------------------------------------------------- */

static void wipe_str(char *s)
{
	if (s != NULL)
		xwipe(s, strlen(s));
	free(s);
}

void spec_secret_clear(struct spec_secrets *x)
{
	if (x == NULL)
		return;
	for (size_t i = 0; i < x->n; i++) {
		free(x->v[i].name);
		wipe_str(x->v[i].value);
	}
	free(x->v);
	x->v = NULL;
	x->n = 0;
}

/* Index of name in x, or where it would go (with *found false). */
static size_t find(const struct spec_secrets *x, const char *name, bool *found)
{
	size_t lo = 0, hi = x->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(x->v[mid].name, name);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

int spec_secret_set(struct spec_secrets *x, const char *name, const char *value)
{
	if (name == NULL || value == NULL)
		return -EINVAL;
	bool found;
	size_t i = find(x, name, &found);
	if (found) {
		wipe_str(x->v[i].value);
		x->v[i].value = xstrdup(value);
		return 0;
	}
	x->v = xrealloc(x->v, (x->n + 1) * sizeof *x->v);
	memmove(&x->v[i + 1], &x->v[i], (x->n - i) * sizeof *x->v);
	x->v[i] = (struct spec_kv){.name = xstrdup(name), .value = xstrdup(value), .secret = true};
	x->n++;
	return 0;
}

const char *spec_secret_get(const struct spec_secrets *x, const char *name)
{
	bool found;
	size_t i = find(x, name, &found);
	return found ? x->v[i].value : NULL;
}

void spec_secret_copy(struct spec_secrets *dst, const struct spec_secrets *src)
{
	spec_secret_clear(dst);
	for (size_t i = 0; i < src->n; i++)
		spec_secret_set(dst, src->v[i].name, src->v[i].value);
}

static bool is_scalar(const struct ynode *n)
{
	return n->kind != Y_SEQ && n->kind != Y_MAP;
}

/* A plain scalar that YAML's core schema reads as true (as spec_parse does for `secret:`). */
static bool is_true(const struct ynode *n)
{
	return n->kind == Y_BOOL && (n->text[0] == 't' || n->text[0] == 'T');
}

/* The value of key `name` in map m (the first, as spec_parse reads it), or NULL. */
static struct ynode *rmap_get(const struct ynode *m, const char *name)
{
	if (m == NULL || m->kind != Y_MAP)
		return NULL;
	for (size_t i = 0; i + 1 < m->n; i += 2) {
		const struct ynode *k = m->kids[i];
		if (is_scalar(k) && k->len == strlen(name) && memcmp(k->text, name, k->len) == 0)
			return m->kids[i + 1];
	}
	return NULL;
}

/* ---- redaction --------------------------------------------------------------------------------- */

/* Byte offset of libyaml's character index idx in UTF-8 text (after a byte order mark, which
 * libyaml skips without counting). Marks count characters, not bytes. */
static size_t byte_of(const char *text, size_t len, size_t idx)
{
	size_t b = 0;
	if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
		b = 3;
	for (size_t c = 0; b < len; b++) {
		if (((unsigned char)text[b] & 0xC0) == 0x80)
			continue; /* a continuation byte */
		if (c++ == idx)
			return b;
	}
	return len;
}

struct range {
	size_t from, to; /* bytes */
};

int spec_secret_redact(const char *text, size_t len, char **out, struct spec_secrets *secrets)
{
	*out = NULL;
	spec_secret_clear(secrets);
	/* UTF-16 (a byte order mark FE FF or FF FE) would make libyaml's marks count other units. */
	if (text == NULL || len > SPEC_PARSE_MAX_BYTES ||
	    (len >= 2 && ((unsigned char)text[0] == 0xFE || (unsigned char)text[0] == 0xFF)))
		return -EINVAL;
	struct ytree t;
	struct ytree_error yerr;
	int rc = ytree_build(&t, text, len, &yerr);
	struct range *rg = NULL;
	size_t n_rg = 0;
	struct ynode *env = rc == 0 ? rmap_get(rmap_get(t.root, "template"), "env") : NULL;
	for (size_t i = 0; env != NULL && env->kind == Y_MAP && i + 1 < env->n; i += 2) {
		struct ynode *k = env->kids[i], *v = env->kids[i + 1];
		struct ynode *sec = rmap_get(v, "secret"), *val = rmap_get(v, "value");
		if (!is_scalar(k) || strlen(k->text) != k->len || sec == NULL || !is_true(sec) || val == NULL ||
		    !is_scalar(val))
			continue;
		struct range r = {byte_of(text, len, val->start), byte_of(text, len, val->end)};
		/* A block scalar's range takes its line breaks: they stay, the next key keeps its line. */
		while (r.to > r.from && strchr(" \t\r\n", text[r.to - 1]) != NULL && text[r.to - 1] != '\0')
			r.to--;
		if (n_rg > 0 && r.from < rg[n_rg - 1].to) { /* marks out of order: never from libyaml */
			rc = -EINVAL;
			break;
		}
		rg = xrealloc(rg, (n_rg + 1) * sizeof *rg);
		rg[n_rg++] = r;
		spec_secret_set(secrets, k->text, val->text);
	}
	ytree_free(&t);
	if (rc < 0) {
		free(rg);
		spec_secret_clear(secrets);
		return rc;
	}
	static const char ph[] = "\"" SPEC_SECRET_PLACEHOLDER "\"";
	char *o = xmalloc(len + n_rg * sizeof ph + 1);
	size_t at = 0, w = 0;
	for (size_t i = 0; i < n_rg; i++) {
		memcpy(o + w, text + at, rg[i].from - at);
		w += rg[i].from - at;
		memcpy(o + w, ph, sizeof ph - 1);
		w += sizeof ph - 1;
		at = rg[i].to;
	}
	memcpy(o + w, text + at, len - at);
	w += len - at;
	o[w] = '\0';
	free(rg);
	*out = o;
	return 0;
}

/* ---- filling back ------------------------------------------------------------------------------ */

static bool is_placeholder(const struct spec_kv *kv)
{
	return kv->secret && kv->value != NULL && strcmp(kv->value, SPEC_SECRET_PLACEHOLDER) == 0;
}

size_t spec_secret_missing(const struct spec *s)
{
	size_t n = 0;
	for (size_t i = 0; i < s->tmpl.n_env; i++)
		n += is_placeholder(&s->tmpl.env[i]);
	return n;
}

int spec_secret_fill(struct spec *s, const struct spec_secrets *secrets)
{
	for (size_t i = 0; i < s->tmpl.n_env; i++) {
		struct spec_kv *kv = &s->tmpl.env[i];
		if (!is_placeholder(kv))
			continue;
		const char *v = spec_secret_get(secrets, kv->name);
		if (v == NULL)
			return -ENOENT;
		wipe_str(kv->value);
		kv->value = xstrdup(v);
	}
	return 0;
}

int spec_secret_split(const char *text, size_t len, const struct spec *parsed, char **out,
		      struct spec_secrets *secrets)
{
	int rc = spec_secret_redact(text, len, out, secrets);
	if (rc < 0)
		return rc;
	struct spec back;
	struct spec_errors errs = {0};
	rc = spec_parse(*out, strlen(*out), NULL, &back, &errs);
	spec_errors_clear(&errs);
	if (rc == 0) {
		size_t n_secret = 0;
		for (size_t i = 0; i < parsed->tmpl.n_env; i++) {
			const struct spec_kv *kv = &parsed->tmpl.env[i];
			if (!kv->secret)
				continue;
			n_secret++;
			const char *v = spec_secret_get(secrets, kv->name);
			if (v == NULL || strcmp(v, kv->value) != 0)
				rc = -EINVAL;
		}
		/* Every secret reads as the placeholder in the text, and the fill gives the same template. */
		if (rc == 0 && (spec_secret_missing(&back) != n_secret || n_secret != secrets->n))
			rc = -EINVAL;
		if (rc == 0 && spec_secret_fill(&back, secrets) < 0)
			rc = -EINVAL;
		if (rc == 0 && spec_template_hash(&back.tmpl) != spec_template_hash(&parsed->tmpl))
			rc = -EINVAL;
		spec_clear(&back);
	}
	if (rc < 0) {
		free(*out);
		*out = NULL;
		spec_secret_clear(secrets);
		return -EINVAL;
	}
	return 0;
}
