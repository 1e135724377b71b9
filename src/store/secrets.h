/* Secret env values of a service's revisions, kept outside the database (docs/store.md "Secrets"):
 * one file per service, DIR/<service> (DIR is DATA/secrets, mode 0700; files 0600). */
#ifndef ROLLOUT_STORE_SECRETS_H
#define ROLLOUT_STORE_SECRETS_H

#include <stddef.h>

#include "spec/spec_secret.h"

/* A secrets file larger than this is refused as corrupt. */
#define SECRETS_MAX_BYTES (16 * 1024 * 1024)

struct secrets_rev {
	int rev;
	struct spec_secrets vals;
};

/* A service's secret values by revision, v[0..n) by ascending rev. Zero-initialise ({0}). */
struct secrets {
	struct secrets_rev *v;
	size_t n;
};

/* Wipes and frees every value and empties the set. NULL is a no-op. */
void secrets_clear(struct secrets *x);
/* The values of revision rev, or NULL when the set has none. Owned by x. */
const struct spec_secrets *secrets_get(const struct secrets *x, int rev);
/* Sets revision rev's values to a copy of vals (replacing any). rev > 0. */
void secrets_put(struct secrets *x, int rev, const struct spec_secrets *vals);

/* Reads DIR/<service> into *out (cleared first). Returns 0; -ENOENT when there is no such file
 * (*out empty); -EBADMSG when the file is not a secrets file (too large, a bad line); -EINVAL for
 * a service name that is not a spec's service name; or the negative errno of a failed read. */
int secrets_load(const char *dir, const char *service, struct secrets *x);
/* Writes x as DIR/<service> durably: DIR made 0700 if missing, a temporary file 0600 written and
 * fsynced, renamed over the old one, DIR fsynced. Returns 0 or a negative errno; the old file is
 * then unchanged. */
int secrets_save(const char *dir, const char *service, const struct secrets *x);

#endif
