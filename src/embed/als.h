/*
 * als: implicit-feedback alternating least squares (Hu, Koren and
 * Volinsky, 2008), the second behaviour embedding, for comparison with
 * item2vec.
 *
 * Each positive interaction gives preference 1 with confidence
 * 1 + alpha * (number of times); absent pairs preference 0 with confidence
 * 1. User and item factors (dim each) alternate exact ridge solves:
 * x_u = (Y'Y + Y'(C_u - I)Y + lambda I)^-1 Y' C_u p_u. The Gram matrix Y'Y
 * is computed once per half-step with OpenBLAS (cblas_ssyrk), the small
 * systems by Cholesky; reel_als_gram_naive() is the slow twin the tests
 * compare with. The item factors are returned as vectors, not normalised
 * (their length carries popularity; retrieve them by inner product).
 * Thread rules: the call runs on `threads` threads of its own.
 */
#ifndef REEL_EMBED_ALS_H
#define REEL_EMBED_ALS_H

#include <stdint.h>

#include "base/progress.h"
#include "data/interactions.h"
#include "embed/vectors.h"

typedef struct reel_als_opts {
    uint32_t dim;        /* 64 */
    uint32_t iterations; /* 15 */
    double alpha;        /* 10 */
    double lambda;       /* 50 (tuned on MovieLens latest-small) */
    uint64_t seed;       /* 42 */
    int threads;         /* 0: all CPUs */
} reel_als_opts;

reel_als_opts reel_als_opts_default(void);

int reel_als_train(const reel_inter *x, const reel_als_opts *o,
                   reel_progress *p, reel_vectors **out);

/* G = F'F for F (n x d, row-major) into G (d x d): the fast path (BLAS)
 * and its naive twin. */
void reel_als_gram(const float *f, uint32_t n, uint32_t d, float *g);
void reel_als_gram_naive(const float *f, uint32_t n, uint32_t d, float *g);

/* Solves A x = b for symmetric positive definite A (d x d, destroyed) by
 * Cholesky; REEL_ERANGE when A is not positive definite. */
int reel_als_solve(float *a, float *b, uint32_t d);

#endif
