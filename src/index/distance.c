#include "index/distance.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

uint16_t reel_bf16_from_f32(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

float reel_bf16_to_f32(uint16_t x)
{
    uint32_t u = (uint32_t)x << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ------------------------------------------------------------- scalar */

float reel_dist_ip_scalar(const float *a, const float *b, size_t d)
{
    /* Four partial sums, like the SIMD versions, keep the rounding close. */
    float s[4] = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= d; i += 4)
        for (int k = 0; k < 4; k++)
            s[k] += a[i + k] * b[i + k];
    for (; i < d; i++)
        s[0] += a[i] * b[i];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

float reel_dist_l2sq_scalar(const float *a, const float *b, size_t d)
{
    float s[4] = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= d; i += 4)
        for (int k = 0; k < 4; k++) {
            float t = a[i + k] - b[i + k];
            s[k] += t * t;
        }
    for (; i < d; i++) {
        float t = a[i] - b[i];
        s[0] += t * t;
    }
    return (s[0] + s[1]) + (s[2] + s[3]);
}

static void ip_x4_scalar(const float *q, const float *const x[4], size_t d,
                         float out[4])
{
    for (int i = 0; i < 4; i++)
        out[i] = reel_dist_ip_scalar(q, x[i], d);
}

static void l2sq_x4_scalar(const float *q, const float *const x[4], size_t d,
                           float out[4])
{
    for (int i = 0; i < 4; i++)
        out[i] = reel_dist_l2sq_scalar(q, x[i], d);
}

static float ip_bf16_scalar(const float *q, const uint16_t *b, size_t d)
{
    float s = 0;
    for (size_t i = 0; i < d; i++)
        s += q[i] * reel_bf16_to_f32(b[i]);
    return s;
}

static float l2sq_bf16_scalar(const float *q, const uint16_t *b, size_t d)
{
    float s = 0;
    for (size_t i = 0; i < d; i++) {
        float t = q[i] - reel_bf16_to_f32(b[i]);
        s += t * t;
    }
    return s;
}

static float ip_i8_scalar(const float *q, const int8_t *b, size_t d)
{
    float s = 0;
    for (size_t i = 0; i < d; i++)
        s += q[i] * (float)b[i];
    return s;
}

static const reel_dist_kernels k_scalar = {
    .name = "scalar",
    .ip = reel_dist_ip_scalar,
    .l2sq = reel_dist_l2sq_scalar,
    .ip_x4 = ip_x4_scalar,
    .l2sq_x4 = l2sq_x4_scalar,
    .ip_bf16 = ip_bf16_scalar,
    .l2sq_bf16 = l2sq_bf16_scalar,
    .ip_i8 = ip_i8_scalar,
};

#if defined(__x86_64__)

/* --------------------------------------------------------------- AVX2 */

#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static inline float hsum256(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
    return _mm_cvtss_f32(lo);
}

AVX2 static float ip_avx2(const float *a, const float *b, size_t d)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        s0 =
            _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8),
                             _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= d; i += 8)
        s0 =
            _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < d; i++)
        s += a[i] * b[i];
    return s;
}

AVX2 static float l2sq_avx2(const float *a, const float *b, size_t d)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        __m256 t0 =
            _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        __m256 t1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8),
                                  _mm256_loadu_ps(b + i + 8));
        s0 = _mm256_fmadd_ps(t0, t0, s0);
        s1 = _mm256_fmadd_ps(t1, t1, s1);
    }
    for (; i + 8 <= d; i += 8) {
        __m256 t0 =
            _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        s0 = _mm256_fmadd_ps(t0, t0, s0);
    }
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < d; i++) {
        float t = a[i] - b[i];
        s += t * t;
    }
    return s;
}

AVX2 static inline __m256 load_bf16_8(const uint16_t *p)
{
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

AVX2 static float ip_bf16_avx2(const float *q, const uint16_t *b, size_t d)
{
    __m256 s0 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= d; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load_bf16_8(b + i), s0);
    float s = hsum256(s0);
    for (; i < d; i++)
        s += q[i] * reel_bf16_to_f32(b[i]);
    return s;
}

AVX2 static float l2sq_bf16_avx2(const float *q, const uint16_t *b, size_t d)
{
    __m256 s0 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= d; i += 8) {
        __m256 t = _mm256_sub_ps(_mm256_loadu_ps(q + i), load_bf16_8(b + i));
        s0 = _mm256_fmadd_ps(t, t, s0);
    }
    float s = hsum256(s0);
    for (; i < d; i++) {
        float t = q[i] - reel_bf16_to_f32(b[i]);
        s += t * t;
    }
    return s;
}

AVX2 static float ip_i8_avx2(const float *q, const int8_t *b, size_t d)
{
    __m256 s0 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= d; i += 8) {
        __m128i c = _mm_loadl_epi64((const __m128i *)(b + i));
        __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(c));
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), f, s0);
    }
    float s = hsum256(s0);
    for (; i < d; i++)
        s += q[i] * (float)b[i];
    return s;
}

AVX2 static void ip_x4_avx2(const float *q, const float *const x[4], size_t d,
                            float out[4])
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 8 <= d; i += 8) {
        __m256 qv = _mm256_loadu_ps(q + i);
        s0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(x[0] + i), s0);
        s1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(x[1] + i), s1);
        s2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(x[2] + i), s2);
        s3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(x[3] + i), s3);
    }
    out[0] = hsum256(s0);
    out[1] = hsum256(s1);
    out[2] = hsum256(s2);
    out[3] = hsum256(s3);
    for (; i < d; i++)
        for (int k = 0; k < 4; k++)
            out[k] += q[i] * x[k][i];
}

AVX2 static void l2sq_x4_avx2(const float *q, const float *const x[4], size_t d,
                              float out[4])
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 8 <= d; i += 8) {
        __m256 qv = _mm256_loadu_ps(q + i);
        __m256 t0 = _mm256_sub_ps(qv, _mm256_loadu_ps(x[0] + i));
        __m256 t1 = _mm256_sub_ps(qv, _mm256_loadu_ps(x[1] + i));
        __m256 t2 = _mm256_sub_ps(qv, _mm256_loadu_ps(x[2] + i));
        __m256 t3 = _mm256_sub_ps(qv, _mm256_loadu_ps(x[3] + i));
        s0 = _mm256_fmadd_ps(t0, t0, s0);
        s1 = _mm256_fmadd_ps(t1, t1, s1);
        s2 = _mm256_fmadd_ps(t2, t2, s2);
        s3 = _mm256_fmadd_ps(t3, t3, s3);
    }
    out[0] = hsum256(s0);
    out[1] = hsum256(s1);
    out[2] = hsum256(s2);
    out[3] = hsum256(s3);
    for (; i < d; i++)
        for (int k = 0; k < 4; k++) {
            float t = q[i] - x[k][i];
            out[k] += t * t;
        }
}

static const reel_dist_kernels k_avx2 = {
    .name = "avx2",
    .ip = ip_avx2,
    .l2sq = l2sq_avx2,
    .ip_x4 = ip_x4_avx2,
    .l2sq_x4 = l2sq_x4_avx2,
    .ip_bf16 = ip_bf16_avx2,
    .l2sq_bf16 = l2sq_bf16_avx2,
    .ip_i8 = ip_i8_avx2,
};

/* ------------------------------------------------------------ AVX-512 */

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))

AVX512 static float ip_avx512(const float *a, const float *b, size_t d)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= d; i += 32) {
        s0 =
            _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16),
                             _mm512_loadu_ps(b + i + 16), s1);
    }
    if (i + 16 <= d) {
        s0 =
            _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        i += 16;
    }
    if (i < d) {
        __mmask16 m = (__mmask16)((1u << (d - i)) - 1);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i),
                             _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

AVX512 static float l2sq_avx512(const float *a, const float *b, size_t d)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= d; i += 32) {
        __m512 t0 =
            _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        __m512 t1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16),
                                  _mm512_loadu_ps(b + i + 16));
        s0 = _mm512_fmadd_ps(t0, t0, s0);
        s1 = _mm512_fmadd_ps(t1, t1, s1);
    }
    if (i + 16 <= d) {
        __m512 t0 =
            _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        s0 = _mm512_fmadd_ps(t0, t0, s0);
        i += 16;
    }
    if (i < d) {
        __mmask16 m = (__mmask16)((1u << (d - i)) - 1);
        __m512 t = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i),
                                 _mm512_maskz_loadu_ps(m, b + i));
        s1 = _mm512_fmadd_ps(t, t, s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

AVX512 static inline __m512 load_bf16_16(const uint16_t *p)
{
    __m256i h = _mm256_loadu_si256((const __m256i *)p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

AVX512 static inline __m512 load_bf16_mask(const uint16_t *p, __mmask16 m)
{
    __m256i h = _mm256_maskz_loadu_epi16(m, p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

AVX512 static float ip_bf16_avx512(const float *q, const uint16_t *b, size_t d)
{
    __m512 s0 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= d; i += 16)
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), load_bf16_16(b + i), s0);
    if (i < d) {
        __mmask16 m = (__mmask16)((1u << (d - i)) - 1);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i),
                             load_bf16_mask(b + i, m), s0);
    }
    return _mm512_reduce_add_ps(s0);
}

AVX512 static float l2sq_bf16_avx512(const float *q, const uint16_t *b,
                                     size_t d)
{
    __m512 s0 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        __m512 t = _mm512_sub_ps(_mm512_loadu_ps(q + i), load_bf16_16(b + i));
        s0 = _mm512_fmadd_ps(t, t, s0);
    }
    if (i < d) {
        __mmask16 m = (__mmask16)((1u << (d - i)) - 1);
        __m512 t = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, q + i),
                                 load_bf16_mask(b + i, m));
        s0 = _mm512_fmadd_ps(t, t, s0);
    }
    return _mm512_reduce_add_ps(s0);
}

AVX512 static float ip_i8_avx512(const float *q, const int8_t *b, size_t d)
{
    __m512 s0 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        __m128i c = _mm_loadu_si128((const __m128i *)(b + i));
        __m512 f = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(c));
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), f, s0);
    }
    if (i < d) {
        __mmask16 m = (__mmask16)((1u << (d - i)) - 1);
        __m128i c = _mm_maskz_loadu_epi8(m, b + i);
        __m512 f = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(c));
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), f, s0);
    }
    return _mm512_reduce_add_ps(s0);
}

AVX512 static void ip_x4_avx512(const float *q, const float *const x[4],
                                size_t d, float out[4])
{
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        __m512 qv = _mm512_loadu_ps(q + i);
        s0 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(x[0] + i), s0);
        s1 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(x[1] + i), s1);
        s2 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(x[2] + i), s2);
        s3 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(x[3] + i), s3);
    }
    if (i < d) {
        __mmask16 m = (__mmask16)((1u << (d - i)) - 1);
        __m512 qv = _mm512_maskz_loadu_ps(m, q + i);
        s0 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, x[0] + i), s0);
        s1 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, x[1] + i), s1);
        s2 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, x[2] + i), s2);
        s3 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, x[3] + i), s3);
    }
    out[0] = _mm512_reduce_add_ps(s0);
    out[1] = _mm512_reduce_add_ps(s1);
    out[2] = _mm512_reduce_add_ps(s2);
    out[3] = _mm512_reduce_add_ps(s3);
}

AVX512 static void l2sq_x4_avx512(const float *q, const float *const x[4],
                                  size_t d, float out[4])
{
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        __m512 qv = _mm512_loadu_ps(q + i);
        __m512 t0 = _mm512_sub_ps(qv, _mm512_loadu_ps(x[0] + i));
        __m512 t1 = _mm512_sub_ps(qv, _mm512_loadu_ps(x[1] + i));
        __m512 t2 = _mm512_sub_ps(qv, _mm512_loadu_ps(x[2] + i));
        __m512 t3 = _mm512_sub_ps(qv, _mm512_loadu_ps(x[3] + i));
        s0 = _mm512_fmadd_ps(t0, t0, s0);
        s1 = _mm512_fmadd_ps(t1, t1, s1);
        s2 = _mm512_fmadd_ps(t2, t2, s2);
        s3 = _mm512_fmadd_ps(t3, t3, s3);
    }
    if (i < d) {
        __mmask16 m = (__mmask16)((1u << (d - i)) - 1);
        __m512 qv = _mm512_maskz_loadu_ps(m, q + i);
        __m512 t0 = _mm512_sub_ps(qv, _mm512_maskz_loadu_ps(m, x[0] + i));
        __m512 t1 = _mm512_sub_ps(qv, _mm512_maskz_loadu_ps(m, x[1] + i));
        __m512 t2 = _mm512_sub_ps(qv, _mm512_maskz_loadu_ps(m, x[2] + i));
        __m512 t3 = _mm512_sub_ps(qv, _mm512_maskz_loadu_ps(m, x[3] + i));
        s0 = _mm512_fmadd_ps(t0, t0, s0);
        s1 = _mm512_fmadd_ps(t1, t1, s1);
        s2 = _mm512_fmadd_ps(t2, t2, s2);
        s3 = _mm512_fmadd_ps(t3, t3, s3);
    }
    out[0] = _mm512_reduce_add_ps(s0);
    out[1] = _mm512_reduce_add_ps(s1);
    out[2] = _mm512_reduce_add_ps(s2);
    out[3] = _mm512_reduce_add_ps(s3);
}

static const reel_dist_kernels k_avx512 = {
    .name = "avx512",
    .ip = ip_avx512,
    .l2sq = l2sq_avx512,
    .ip_x4 = ip_x4_avx512,
    .l2sq_x4 = l2sq_x4_avx512,
    .ip_bf16 = ip_bf16_avx512,
    .l2sq_bf16 = l2sq_bf16_avx512,
    .ip_i8 = ip_i8_avx512,
};

static int cpu_has(const char *name)
{
    __builtin_cpu_init();
    if (!strcmp(name, "avx2"))
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (!strcmp(name, "avx512"))
        return __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && cpu_has("avx2");
    return !strcmp(name, "scalar");
}

const reel_dist_kernels *reel_dist_by_name(const char *name)
{
    if (!cpu_has(name))
        return NULL;
    if (!strcmp(name, "avx512"))
        return &k_avx512;
    if (!strcmp(name, "avx2"))
        return &k_avx2;
    return &k_scalar;
}

#else

const reel_dist_kernels *reel_dist_by_name(const char *name)
{
    return strcmp(name, "scalar") ? NULL : &k_scalar;
}

#endif

const reel_dist_kernels *reel_dist_get(void)
{
    static const reel_dist_kernels *chosen;
    const reel_dist_kernels *k = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
    if (k)
        return k;
    const char *cap = getenv("REEL_SIMD");
    static const char *const order[] = {"avx512", "avx2", "scalar"};
    int start = 0;
    if (cap && !strcmp(cap, "avx2"))
        start = 1;
    else if (cap && !strcmp(cap, "scalar"))
        start = 2;
    for (int i = start; i < 3 && !k; i++)
        k = reel_dist_by_name(order[i]);
    __atomic_store_n(&chosen, k, __ATOMIC_RELEASE);
    return k;
}
