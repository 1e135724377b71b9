/* Backend choice: least outstanding requests or connections, ties round-robin. */
#include "proxy/pick.h"

int proxy_pick(const struct proxy_cand *v, size_t n, uint64_t *rr)
{
	if (n == 0)
		return -1;
	size_t start = (size_t)(*rr % n);
	int best = -1;
	for (size_t k = 0; k < n; k++) {
		size_t i = (start + k) % n;
		if (v[i].ok && (best < 0 || v[i].load < v[best].load))
			best = (int)i;
	}
	if (best >= 0)
		*rr = (uint64_t)best + 1;
	return best;
}
