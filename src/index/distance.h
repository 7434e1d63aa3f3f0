/*
 * distance: the SIMD kernels every index kind scores with.
 *
 * reel_dist_ip() is the inner product, reel_dist_l2sq() the squared
 * Euclidean distance, for float32 vectors and for the compact forms (bf16,
 * int8 with a scale). Each has an AVX-512 and an AVX2+FMA version chosen
 * once at run time from the CPU's features, and a scalar twin
 * (reel_dist_*_scalar) that tests/unit/test_index.c compares against:
 * they agree within 1e-5 relative error (summation order differs).
 * REEL_SIMD=scalar|avx2|avx512 in the environment caps the choice, for
 * tests and benchmarks. Thread rules: any thread; no state after the first
 * call's one-time dispatch.
 */
#ifndef REEL_INDEX_DISTANCE_H
#define REEL_INDEX_DISTANCE_H

#include <stddef.h>
#include <stdint.h>

typedef float (*reel_dist_f32_fn)(const float *a, const float *b, size_t d);
typedef float (*reel_dist_bf16_fn)(const float *q, const uint16_t *b, size_t d);
typedef float (*reel_dist_i8_fn)(const float *q, const int8_t *b, size_t d);
/* Four float32 distances from one query at once: out[i] = f(q, x[i]).
 * Independent accumulators keep the FMA units busy while loads arrive. */
typedef void (*reel_dist_f32x4_fn)(const float *q, const float *const x[4],
                                   size_t d, float out[4]);

typedef struct reel_dist_kernels {
    const char *name; /* "avx512", "avx2" or "scalar" */
    reel_dist_f32_fn ip, l2sq;
    reel_dist_f32x4_fn ip_x4, l2sq_x4;
    reel_dist_bf16_fn ip_bf16, l2sq_bf16;
    /* int8: the raw sum of q[i] * b[i]; the caller applies the scale. */
    reel_dist_i8_fn ip_i8;
} reel_dist_kernels;

/* The best kernels this CPU has (respecting REEL_SIMD). */
const reel_dist_kernels *reel_dist_get(void);
/* A specific set, or NULL when the CPU lacks it ("scalar" always works). */
const reel_dist_kernels *reel_dist_by_name(const char *name);

float reel_dist_ip_scalar(const float *a, const float *b, size_t d);
float reel_dist_l2sq_scalar(const float *a, const float *b, size_t d);

/* float <-> bfloat16 (round to nearest even; NaN stays NaN). */
uint16_t reel_bf16_from_f32(float x);
float reel_bf16_to_f32(uint16_t x);

#endif
