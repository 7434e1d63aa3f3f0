/* matmul: see matmul.h. */
#include "embed/matmul.h"

#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

#define NR REEL_MATW_NR
#define MR 10

static _Atomic int kernel_choice = REEL_MATW_AUTO;

void reel_matw_set_kernel(reel_matw_kernel k)
{
    atomic_store(&kernel_choice, (int)k);
}

static int use_avx512(void)
{
    static int has = -1;
    if (has < 0)
        has = __builtin_cpu_supports("avx512f") ? 1 : 0;
    return has && atomic_load(&kernel_choice) == REEL_MATW_AUTO;
}

void reel_matw_pack(reel_matw *out, const float *w, uint32_t n, uint32_t k)
{
    uint32_t np = (n + NR - 1) / NR;
    out->n = n, out->k = k, out->src = w;
    size_t bytes = (size_t)np * k * NR * sizeof(float);
    out->packed = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!out->packed) {
        fprintf(stderr, "reel: out of memory (%zu bytes)\n", bytes);
        abort();
    }
    for (uint32_t p = 0; p < np; p++) {
        float *dst = out->packed + (size_t)p * k * NR;
        for (uint32_t kk = 0; kk < k; kk++)
            for (uint32_t j = 0; j < NR; j++) {
                uint32_t col = p * NR + j;
                dst[(size_t)kk * NR + j] =
                    col < n ? w[(size_t)col * k + kk] : 0.0f;
            }
    }
}

void reel_matw_free(reel_matw *w)
{
    if (!w)
        return;
    free(w->packed);
    w->packed = NULL;
}

/* ---- scalar quick_gelu (the BLAS path and CPUs without AVX-512) ---- */

static void quick_gelu_scalar(float *x, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
}

/* ---- AVX-512 ---- */

#define AVX512 __attribute__((target("avx512f")))

/* e^x to about 1 ulp: 2^n * p(r), r = x - n ln 2, |r| <= ln 2 / 2,
 * p the degree-6 Taylor polynomial (error < 2e-7 relative). */
AVX512 static inline __m512 exp512(__m512 x)
{
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)),
                      _mm512_set1_ps(88.0f));
    __m512 n = _mm512_roundscale_ps(
        _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

AVX512 static inline __m512 quick_gelu512(__m512 x)
{
    __m512 e = exp512(_mm512_mul_ps(x, _mm512_set1_ps(-1.702f)));
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

AVX512 static void quick_gelu_avx512(float *x, uint64_t n)
{
    uint64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(x + i, quick_gelu512(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(x + i, m,
                              quick_gelu512(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

void reel_quick_gelu(float *x, uint64_t n)
{
    if (use_avx512())
        quick_gelu_avx512(x, n);
    else
        quick_gelu_scalar(x, n);
}

/* One tile: mr (1..MR) rows of x (packed: k groups of MR floats, row r of
 * the tile at offset r in each group) times one packed panel (NR = 32 columns,
 * `cols` of them real), the accumulators in registers. */
AVX512 static inline __attribute__((always_inline)) void
tile(const int mr, const float *xp, const float *wp, uint32_t k,
     const float *bias, float *y, size_t ldy, uint32_t cols, int flags)
{
    __m512 c0[MR], c1[MR];
#pragma GCC unroll 12
    for (int r = 0; r < mr; r++)
        c0[r] = c1[r] = _mm512_setzero_ps();
    for (uint32_t p = 0; p < k; p++) {
        __m512 b0 = _mm512_load_ps(wp), b1 = _mm512_load_ps(wp + 16);
        wp += NR;
#pragma GCC unroll 12
        for (int r = 0; r < mr; r++) {
            __m512 a = _mm512_set1_ps(xp[r]);
            c0[r] = _mm512_fmadd_ps(a, b0, c0[r]);
            c1[r] = _mm512_fmadd_ps(a, b1, c1[r]);
        }
        xp += MR;
    }
    __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);
    __mmask16 m1 = cols >= 32  ? 0xffff
                   : cols > 16 ? (__mmask16)((1u << (cols - 16)) - 1)
                               : 0;
    __m512 bb0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    __m512 bb1 =
        bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 12
    for (int r = 0; r < mr; r++) {
        __m512 v0 = _mm512_add_ps(c0[r], bb0), v1 = _mm512_add_ps(c1[r], bb1);
        float *yr = y + (size_t)r * ldy;
        if (flags & REEL_MATW_QUICK_GELU)
            v0 = quick_gelu512(v0), v1 = quick_gelu512(v1);
        if (flags & REEL_MATW_ACCUM) {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, yr));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, yr + 16));
        }
        _mm512_mask_storeu_ps(yr, m0, v0);
        _mm512_mask_storeu_ps(yr + 16, m1, v1);
    }
}

AVX512 static void panel_rows(const reel_matw *w, uint32_t p, const float *xp,
                              uint32_t m, const float *bias, float *y,
                              uint32_t ldy, int flags)
{
    const float *wp = w->packed + (size_t)p * w->k * NR;
    uint32_t col0 = p * NR, cols = w->n - col0 < NR ? w->n - col0 : NR;
    const float *b = bias ? bias + col0 : NULL;
    for (uint32_t i = 0; i < m; i += MR) {
        const float *xi = xp + (size_t)i * w->k;
        float *yi = y + (size_t)i * ldy + col0;
        switch (m - i >= MR ? MR : m - i) {
#define CASE(r)                                                                \
    case r:                                                                    \
        tile(r, xi, wp, w->k, b, yi, ldy, cols, flags);                        \
        break;

            CASE(10)
            CASE(9)
            CASE(8) CASE(7) CASE(6) CASE(5) CASE(4) CASE(3) CASE(2) CASE(1)
#undef CASE
        }
    }
}

/* Rows in blocks that stay in L2 while the panels go by. */
#define M_BLOCK 480

AVX512 static void apply_avx512(const reel_matw *w, const float *x, uint32_t m,
                                uint32_t ldx, const float *bias, float *y,
                                uint32_t ldy, int flags, int threads)
{
    int np = (int)((w->n + NR - 1) / NR);
    uint32_t k = w->k;
    float *xp =
        aligned_alloc(64, ((size_t)M_BLOCK * k * sizeof(float) + 63) / 64 * 64);
    if (!xp) {
        fprintf(stderr, "reel: out of memory\n");
        abort();
    }
    for (uint32_t i0 = 0; i0 < m; i0 += M_BLOCK) {
        uint32_t mb = m - i0 < M_BLOCK ? m - i0 : M_BLOCK;
        float *yb = y + (size_t)i0 * ldy;
        int tiles = (int)((mb + MR - 1) / MR);
        const float *xb = xp;
        /* one team: x's rows of this block packed MR at a time (k groups
         * of MR floats), then the panels */
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) if (threads > 1)
#endif
        {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (int ti = 0; ti < tiles; ti++) {
                uint32_t t = (uint32_t)ti * MR;
                float *dst = xp + (size_t)t * k;
                uint32_t rows = mb - t < MR ? mb - t : MR;
                for (uint32_t r = 0; r < rows; r++) {
                    const float *src = x + (size_t)(i0 + t + r) * ldx;
                    for (uint32_t kk = 0; kk < k; kk++)
                        dst[(size_t)kk * MR + r] = src[kk];
                }
            }
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (int p = 0; p < np; p++)
                panel_rows(w, (uint32_t)p, xb, mb, bias, yb, ldy, flags);
        }
    }
    free(xp);
    (void)threads;
}

static void apply_blas(const reel_matw *w, const float *x, uint32_t m,
                       uint32_t ldx, const float *bias, float *y, uint32_t ldy,
                       int flags)
{
    uint32_t n = w->n;
    if (flags & REEL_MATW_ACCUM) {
        float *t = reel_xmalloc((size_t)m * n * sizeof *t);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n,
                    (int)w->k, 1.0f, x, (int)ldx, w->src, (int)w->k, 0.0f, t,
                    (int)n);
        for (uint32_t i = 0; i < m; i++)
            for (uint32_t j = 0; j < n; j++)
                y[(size_t)i * ldy + j] +=
                    t[(size_t)i * n + j] + (bias ? bias[j] : 0.0f);
        free(t);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n,
                (int)w->k, 1.0f, x, (int)ldx, w->src, (int)w->k, 0.0f, y,
                (int)ldy);
    for (uint32_t i = 0; i < m; i++) {
        float *r = y + (size_t)i * ldy;
        if (bias)
            for (uint32_t j = 0; j < n; j++)
                r[j] += bias[j];
        if (flags & REEL_MATW_QUICK_GELU)
            quick_gelu_scalar(r, n);
    }
}

void reel_matw_apply(const reel_matw *w, const float *x, uint32_t m,
                     uint32_t ldx, const float *bias, float *y, uint32_t ldy,
                     int flags, int threads)
{
    if (!m)
        return;
    if (use_avx512())
        apply_avx512(w, x, m, ldx, bias, y, ldy, flags,
                     threads < 1 ? 1 : threads);
    else
        apply_blas(w, x, m, ldx, bias, y, ldy, flags);
}

/* ---- attention ---- */

static void attention_scalar(const float *q, const float *k, const float *v,
                             float *o, uint32_t t, uint32_t ld, uint32_t dh,
                             float scale, int causal, float *p)
{
    for (uint32_t i = 0; i < t; i++) {
        uint32_t end = causal ? i + 1 : t;
        const float *qi = q + (size_t)i * ld;
        float mx = -INFINITY;
        for (uint32_t j = 0; j < end; j++) {
            const float *kj = k + (size_t)j * ld;
            float s = 0;
            for (uint32_t d = 0; d < dh; d++)
                s += qi[d] * kj[d];
            p[j] = s * scale;
            mx = p[j] > mx ? p[j] : mx;
        }
        float sum = 0;
        for (uint32_t j = 0; j < end; j++)
            sum += (p[j] = expf(p[j] - mx));
        float *oi = o + (size_t)i * ld;
        for (uint32_t d = 0; d < dh; d++)
            oi[d] = 0;
        for (uint32_t j = 0; j < end; j++) {
            const float *vj = v + (size_t)j * ld;
            float w = p[j] / sum;
            for (uint32_t d = 0; d < dh; d++)
                oi[d] += w * vj[d];
        }
    }
}

AVX512 static void attention_avx512(const float *q, const float *k,
                                    const float *v, float *o, uint32_t t,
                                    uint32_t ld, uint32_t dh, float scale,
                                    int causal, float *p)
{
    uint32_t full = dh / 16, rest = dh % 16;
    __mmask16 mr = (__mmask16)((1u << rest) - 1);
    for (uint32_t i = 0; i < t; i++) {
        uint32_t end = causal ? i + 1 : t;
        const float *qi = q + (size_t)i * ld;
        float mx = -INFINITY;
        for (uint32_t j = 0; j < end; j++) {
            const float *kj = k + (size_t)j * ld;
            __m512 acc = _mm512_setzero_ps();
            uint32_t d = 0;
            for (uint32_t c = 0; c < full; c++, d += 16)
                acc = _mm512_fmadd_ps(_mm512_loadu_ps(qi + d),
                                      _mm512_loadu_ps(kj + d), acc);
            if (rest)
                acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mr, qi + d),
                                      _mm512_maskz_loadu_ps(mr, kj + d), acc);
            p[j] = _mm512_reduce_add_ps(acc) * scale;
            mx = p[j] > mx ? p[j] : mx;
        }
        float sum = 0;
        uint32_t j = 0;
        __m512 vmx = _mm512_set1_ps(mx), vs = _mm512_setzero_ps();
        for (; j + 16 <= end; j += 16) {
            __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(p + j), vmx));
            _mm512_storeu_ps(p + j, e);
            vs = _mm512_add_ps(vs, e);
        }
        if (j < end) {
            __mmask16 m = (__mmask16)((1u << (end - j)) - 1);
            __m512 e =
                exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, p + j), vmx));
            _mm512_mask_storeu_ps(p + j, m, e);
            vs = _mm512_add_ps(vs, _mm512_maskz_mov_ps(m, e));
        }
        sum = _mm512_reduce_add_ps(vs);
        __m512 inv = _mm512_set1_ps(1.0f / sum);
        float *oi = o + (size_t)i * ld;
        for (uint32_t d = 0; d < dh; d += 16) {
            __mmask16 m = dh - d >= 16 ? 0xffff : mr;
            __m512 acc = _mm512_setzero_ps();
            for (uint32_t jj = 0; jj < end; jj++)
                acc = _mm512_fmadd_ps(
                    _mm512_set1_ps(p[jj]),
                    _mm512_maskz_loadu_ps(m, v + (size_t)jj * ld + d), acc);
            _mm512_mask_storeu_ps(oi + d, m, _mm512_mul_ps(acc, inv));
        }
    }
}

void reel_attention_head(const float *q, const float *k, const float *v,
                         float *o, uint32_t t, uint32_t ld, uint32_t dh,
                         float scale, int causal)
{
    float *p = reel_xmalloc(((size_t)t + 16) * sizeof *p);
    if (use_avx512())
        attention_avx512(q, k, v, o, t, ld, dh, scale, causal, p);
    else
        attention_scalar(q, k, v, o, t, ld, dh, scale, causal, p);
    free(p);
}
