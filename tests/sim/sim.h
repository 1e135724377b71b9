/* The simulator's internal interface: the seeded runner (sim.c) and the 10,000-instance engine
 * benchmark (bench.c) share one binary, build/rollout-sim. */
#ifndef ROLLOUT_SIM_SIM_H
#define ROLLOUT_SIM_SIM_H

#include <stdint.h>

/* Runs a rollout of n instances through the real engine with ideal drivers and prints CPU time
 * and peak RSS against the goal. Returns 0, or 1 if the engine did not converge. */
int sim_bench(int n);

#endif
