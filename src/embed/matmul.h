/*
 * matmul: y = x W^T + b for a weight matrix W used many times (a linear
 * layer), with W packed once into the layout the kernel streams.
 *
 * W is n x k row-major (torch's nn.Linear layout: out x in). Packing cuts it
 * into panels of REEL_MATW_NR output columns; each panel holds k rows of NR
 * floats (the last panel padded with zeros), 64-byte aligned, so that the
 * AVX-512 kernel reads it front to back while it keeps a tile of up to 10
 * rows of x times NR columns in registers. The epilogue adds the bias,
 * applies quick_gelu if asked, and stores or accumulates into y
 * (REEL_MATW_ACCUM: y += ..., a residual connection) in the same pass.
 *
 * On CPUs without AVX-512F the same call goes through OpenBLAS's sgemm (the
 * slow twin, also reachable with reel_matw_set_kernel(REEL_MATW_BLAS) for
 * tests); both give the same values up to float rounding
 * (tests/unit/test_clip.c compares them).
 *
 * Threads: reel_matw_apply() splits the panels over `threads` OpenMP
 * threads. A packed matrix is immutable: any number of callers may use it
 * at once. reel_matw_set_kernel() is process-wide and meant for tests and
 * benchmarks.
 */
#ifndef REEL_EMBED_MATMUL_H
#define REEL_EMBED_MATMUL_H

#include <stdint.h>

#define REEL_MATW_NR 32

enum {
    REEL_MATW_ACCUM = 1,      /* y += x W^T + b instead of y = ... */
    REEL_MATW_QUICK_GELU = 2, /* y = quick_gelu(x W^T + b) (not with ACCUM) */
};

typedef enum reel_matw_kernel {
    REEL_MATW_AUTO, /* AVX-512 when the CPU has it, else BLAS */
    REEL_MATW_BLAS,
} reel_matw_kernel;

typedef struct reel_matw {
    uint32_t n, k;
    float *packed;    /* ceil(n / NR) panels of k x NR floats, owned */
    const float *src; /* the n x k row-major matrix (borrowed; BLAS path) */
} reel_matw;

/* Packs w (n x k, borrowed: it must outlive the packed matrix, which keeps
 * a pointer to it for the BLAS path). */
void reel_matw_pack(reel_matw *out, const float *w, uint32_t n, uint32_t k);
void reel_matw_free(reel_matw *w);

/* y (m x n, row stride ldy) = x (m x k, row stride ldx) W^T + bias
 * (bias may be NULL), with the flags above. */
void reel_matw_apply(const reel_matw *w, const float *x, uint32_t m,
                     uint32_t ldx, const float *bias, float *y, uint32_t ldy,
                     int flags, int threads);

void reel_matw_set_kernel(reel_matw_kernel k);

/* One attention head of one sequence: o_i = sum_j softmax_j(q_i . k_j *
 * scale) v_j over j < t (j <= i when causal); q, k, v and o are t rows of
 * dh floats with row stride ld (a head's columns inside [t, hidden]
 * matrices). AVX-512 when the CPU has it (and the kernel is AUTO), else
 * plain loops. */
void reel_attention_head(const float *q, const float *k, const float *v,
                         float *o, uint32_t t, uint32_t ld, uint32_t dh,
                         float scale, int causal);

/* quick_gelu over n floats in place (x * sigmoid(1.702 x)), vectorised
 * when the CPU allows. */
void reel_quick_gelu(float *x, uint64_t n);

#endif
