/* Backend choice: least outstanding requests or connections per unit of weight, ties round-robin. */
#include "proxy/pick.h"

/* Whether a's (load + 1) / weight is below b's, in integers: (la + 1) * wb < (lb + 1) * wa. */
static bool lighter(const struct proxy_cand *a, const struct proxy_cand *b)
{
	uint64_t wa = a->weight ? a->weight : 1, wb = b->weight ? b->weight : 1;
	return ((uint64_t)a->load + 1) * wb < ((uint64_t)b->load + 1) * wa;
}

int proxy_pick(const struct proxy_cand *v, size_t n, uint64_t *rr)
{
	if (n == 0)
		return -1;
	size_t start = (size_t)(*rr % n);
	int best = -1;
	for (size_t k = 0; k < n; k++) {
		size_t i = (start + k) % n;
		if (v[i].ok && (best < 0 || lighter(&v[i], &v[best])))
			best = (int)i;
	}
	if (best >= 0)
		*rr = (uint64_t)best + 1;
	return best;
}
