/* Secret env values kept out of stored spec text: a redacted copy of a spec's YAML (each secret env
 * value replaced by a placeholder) plus the name=value pairs that put the values back. */
#ifndef ROLLOUT_SPEC_SPEC_SECRET_H
#define ROLLOUT_SPEC_SPEC_SECRET_H

#include <stddef.h>

#include "core/spec.h"

/* What a redacted secret value reads as in the stored text (a YAML string, written quoted). */
#define SPEC_SECRET_PLACEHOLDER "(secret)"

/* Secret env values by name: v[0..n) sorted by name, each .secret true. Values are wiped on clear.
 * Zero-initialise ({0}) before first use. */
struct spec_secrets {
	struct spec_kv *v;
	size_t n;
};

/* Wipes and frees every pair and empties the set (it may be reused). NULL is a no-op. */
void spec_secret_clear(struct spec_secrets *x);
/* Replaces *dst (cleared first) with a deep copy of src. */
void spec_secret_copy(struct spec_secrets *dst, const struct spec_secrets *src);
/* Adds or replaces name=value (copies both), keeping the order. Returns 0, or -EINVAL for a NULL
 * name or value. */
int spec_secret_set(struct spec_secrets *x, const char *name, const char *value);
/* The value of name, or NULL. */
const char *spec_secret_get(const struct spec_secrets *x, const char *name);

/* Redacts spec YAML (text, len bytes): every value of an env entry under template.env written as
 * {value: ..., secret: true} is replaced, byte range for byte range (libyaml marks), by
 * "(secret)" quoted; everything else (comments, styles, other values) is kept as written. Works on
 * block and flow styles, plain, quoted and block scalars. *out: a new NUL-terminated string (caller
 * frees; it holds no secret). *secrets (cleared first) gets the name=value pairs. Returns 0, or
 * -EINVAL when the text is not one YAML document without aliases (spec_parse rejects those too);
 * then *out is NULL and *secrets empty. */
int spec_secret_redact(const char *text, size_t len, char **out, struct spec_secrets *secrets);

/* Number of secret env values of s that read as the placeholder, i.e. that need a fill. */
size_t spec_secret_missing(const struct spec *s);
/* Puts the values back: every secret env value of s that reads as the placeholder is replaced by
 * the value of the same name in secrets (the placeholder wiped and freed). Values that are not the
 * placeholder (a spec stored before redaction existed) are kept. Returns 0, or -ENOENT when a
 * needed name is not in secrets (s is then partly filled: the caller discards it). */
int spec_secret_fill(struct spec *s, const struct spec_secrets *secrets);

/* Redacts `text` that parsed to `parsed` and checks the result: the redacted text parses, and once
 * filled from the pairs gives the same template hash as `parsed` and every secret value of
 * `parsed` is among the pairs. This is what the daemon stores. Returns 0 with *out and *secrets
 * set as spec_secret_redact does, or -EINVAL (nothing allocated) when the check fails. */
int spec_secret_split(const char *text, size_t len, const struct spec *parsed, char **out,
		      struct spec_secrets *secrets);

#endif
