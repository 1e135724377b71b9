/* A YAML document as a tree, built from libyaml's events within spec_parse's limits (one document,
 * no aliases, SPEC_PARSE_MAX_*): what the spec parser reads (spec_yaml.c) and what the secret
 * redactor cuts by its marks (spec_secret.c). Every scalar is wiped when the tree is freed. */
#ifndef ROLLOUT_SPEC_YTREE_H
#define ROLLOUT_SPEC_YTREE_H

#include <stddef.h>

/* Scalar kinds follow YAML's core schema for plain scalars; every quoted (or !!str) scalar is a
 * string. */
enum ykind { Y_NULL, Y_BOOL, Y_INT, Y_FLOAT, Y_STR, Y_SEQ, Y_MAP };

struct ynode {
	enum ykind kind;
	int line, col;     /* 1-based, where it starts */
	size_t start, end; /* libyaml mark indexes: characters (not bytes) from the start of the text */
	char *text;        /* scalars: NUL-terminated copy (may hold an inner NUL: see len) */
	size_t len;
	struct ynode **kids; /* seq: items; map: key, value, key, value ... */
	size_t n, cap;
};

struct ytree {
	struct ynode *root; /* NULL for an empty stream */
	struct ynode **all; /* every node, for freeing */
	size_t n_all, cap_all;
};

/* Why a build failed: one message and where (1-based). */
struct ytree_error {
	int line, col;
	char msg[512];
};

/* Builds the tree of text (len bytes; text may be NULL for none) into t (zeroed first). Returns 0,
 * or -EINVAL with *err filled (a syntax error, a second document, an alias, a limit); t is then to
 * be freed all the same. */
int ytree_build(struct ytree *t, const char *text, size_t len, struct ytree_error *err);
/* Frees every node (scalars wiped) and zeroes t. */
void ytree_free(struct ytree *t);

#endif
