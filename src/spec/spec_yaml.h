/* YAML spec files to a validated struct spec (core/spec.h), reporting every problem found in one
 * pass as "file:line:column: message". docs/spec.md is the user's reference for the format. */
#ifndef ROLLOUT_SPEC_SPEC_YAML_H
#define ROLLOUT_SPEC_SPEC_YAML_H

#include <stddef.h>

#include "core/spec.h"

/* Limits on what a spec may be: larger input is rejected with a message, never parsed. */
#define SPEC_PARSE_MAX_BYTES (1024 * 1024)
#define SPEC_PARSE_MAX_DEPTH 32
#define SPEC_PARSE_MAX_NODES 10000
#define SPEC_PARSE_MAX_STRING (64 * 1024)

/* Messages for people, one per problem, each "file:line:column: message" (1-based), in file
 * order. Zero-initialise ({0}) before first use; the strings are owned by the struct. */
struct spec_errors {
	char **v;
	size_t n, cap;
};

/* Frees every message and empties the list (it may be reused). NULL is a no-op. */
void spec_errors_clear(struct spec_errors *e);

/* Parses YAML text (len bytes, need not be NUL-terminated; `file` names it in messages and may be
 * NULL) into *out, which it initialises itself. Returns 0 with *out filled (out->file a copy of
 * file), or -EINVAL with *out cleared (spec_init state) and one message per problem appended to
 * errs. Secret env values never appear in a message. */
int spec_parse(const char *text, size_t len, const char *file, struct spec *out, struct spec_errors *errs);

/* Reads the file at path and parses it as spec_parse does. A file that cannot be read gives
 * -EINVAL (or the negative errno of the failure) and one message "path: reason". */
int spec_parse_file(const char *path, struct spec *out, struct spec_errors *errs);

#endif
