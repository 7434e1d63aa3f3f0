/*
 * rng: seeded pseudo-random numbers (xoshiro256**, seeded by splitmix64)
 * and the distributions reel's simulator and samplers need.
 *
 * The same seed gives the same stream on every machine: not libc's generator,
 * no dependence on the platform's libm beyond exp/log/sqrt/cos. Streams for
 * independent work (one per user, one per thread) come from
 * reel_rng_seed2(seed, stream), so parallel work stays deterministic.
 * reel_alias samples a fixed discrete distribution in O(1) (Vose's method).
 * Thread rules: one thread per reel_rng; a built reel_alias is read-only and
 * may be shared.
 */
#ifndef REEL_BASE_RNG_H
#define REEL_BASE_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct reel_rng {
    uint64_t s[4];
} reel_rng;

void reel_rng_seed(reel_rng *r, uint64_t seed);
/* An independent stream number `stream` for the same seed. */
void reel_rng_seed2(reel_rng *r, uint64_t seed, uint64_t stream);

uint64_t reel_rng_u64(reel_rng *r);
/* Uniform in [0, n); n > 0. Unbiased (Lemire). */
uint64_t reel_rng_below(reel_rng *r, uint64_t n);
/* Uniform in [0, 1) with 53 bits. */
double reel_rng_uniform(reel_rng *r);
double reel_rng_normal(reel_rng *r);
double reel_rng_exponential(reel_rng *r, double rate);
/* Gamma(shape, 1); shape > 0 (Marsaglia and Tsang). */
double reel_rng_gamma(reel_rng *r, double shape);
double reel_rng_beta(reel_rng *r, double a, double b);
/* Poisson(mean); exact for any mean >= 0. */
uint64_t reel_rng_poisson(reel_rng *r, double mean);
/* Fills w[0..n) with a Dirichlet(alpha, ..., alpha) sample. */
void reel_rng_dirichlet(reel_rng *r, double alpha, double *w, size_t n);
/* Shuffles n elements of `size` bytes (Fisher-Yates). */
void reel_rng_shuffle(reel_rng *r, void *base, size_t n, size_t size);

typedef struct reel_alias {
    uint32_t n;
    float *prob;
    uint32_t *alias;
} reel_alias;

/* Builds a sampler for weights w[0..n) (non-negative, positive sum).
 * Returns REEL_EINVAL when no weight is positive. */
int reel_alias_build(reel_alias *a, const double *w, uint32_t n);
uint32_t reel_alias_sample(const reel_alias *a, reel_rng *r);
void reel_alias_free(reel_alias *a);

#endif
