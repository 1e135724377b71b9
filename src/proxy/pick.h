/* Backend choice: least outstanding work relative to weight, ties broken round-robin. Pure, for
 * unit tests. */
#ifndef ROLLOUT_PROXY_PICK_H
#define ROLLOUT_PROXY_PICK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct proxy_cand {
	uint32_t load;   /* requests (http) or connections (tcp) in flight */
	bool ok;         /* may take new work: active, and not already tried for this request */
	uint32_t weight; /* 1..256 (0 is taken as 1) */
};

/* Picks among v[0..n): the eligible candidate with the lowest (load + 1) / weight, that is the one
 * whose share would stay smallest after taking the work (with weights 1 and 3 and work that stays
 * outstanding, the second holds 3 times the first's); among equals, the first at or after *rr
 * (mod n), and *rr becomes the chosen index + 1, so equal shares rotate. Returns the index, or -1
 * when none is eligible (*rr unchanged). */
int proxy_pick(const struct proxy_cand *v, size_t n, uint64_t *rr);

#endif
