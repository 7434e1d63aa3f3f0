/*
 * sort: stable radix sorts that produce permutations, for columns too
 * large for qsort's comparisons (tens of millions of event times).
 *
 * reel_sort_perm_f64() fills perm[0..n) so that keys[perm[i]] is
 * non-decreasing, equal keys keeping their input order; NaN sorts last.
 * It uses O(n) extra memory and time; qsort is its slow twin in the tests.
 * Thread rules: none; reentrant.
 */
#ifndef REEL_BASE_SORT_H
#define REEL_BASE_SORT_H

#include <stdint.h>

void reel_sort_perm_f64(const double *keys, uint32_t n, uint32_t *perm);
void reel_sort_perm_u64(const uint64_t *keys, uint32_t n, uint32_t *perm);

/* qsort's comparison of two uint32_t. */
int reel_sort_cmp_u32(const void *a, const void *b);

/* The unsigned integer whose order matches x's order as a double. */
static inline uint64_t reel_sort_key_f64(double x)
{
    union {
        double d;
        uint64_t u;
    } v = {.d = x};
    return (v.u >> 63) ? ~v.u : (v.u | 0x8000000000000000ULL);
}

#endif
