#include "base/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void reel_rng_seed(reel_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

void reel_rng_seed2(reel_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed;
    uint64_t mixed = splitmix64(&x) ^ (stream * 0xd1342543de82ef95ULL);
    reel_rng_seed(r, mixed + stream);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t reel_rng_u64(reel_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t reel_rng_below(reel_rng *r, uint64_t n)
{
    unsigned __int128 m = (unsigned __int128)reel_rng_u64(r) * n;
    uint64_t low = (uint64_t)m;
    if (low < n) {
        uint64_t t = -n % n;
        while (low < t) {
            m = (unsigned __int128)reel_rng_u64(r) * n;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

double reel_rng_uniform(reel_rng *r)
{
    return (double)(reel_rng_u64(r) >> 11) * 0x1.0p-53;
}

double reel_rng_normal(reel_rng *r)
{
    /* Marsaglia's polar method; the second value is dropped to keep the
     * generator stateless beyond its four words. */
    double u, v, s;
    do {
        u = 2.0 * reel_rng_uniform(r) - 1.0;
        v = 2.0 * reel_rng_uniform(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    return u * sqrt(-2.0 * log(s) / s);
}

double reel_rng_exponential(reel_rng *r, double rate)
{
    return -log1p(-reel_rng_uniform(r)) / rate;
}

double reel_rng_gamma(reel_rng *r, double shape)
{
    if (shape < 1.0) {
        /* Boost: Gamma(a) = Gamma(a + 1) * U^(1/a). */
        double u = reel_rng_uniform(r);
        return reel_rng_gamma(r, shape + 1.0) * pow(u + 1e-300, 1.0 / shape);
    }
    double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do {
            x = reel_rng_normal(r);
            v = 1.0 + c * x;
        } while (v <= 0.0);
        v = v * v * v;
        double u = reel_rng_uniform(r);
        if (u < 1.0 - 0.0331 * x * x * x * x)
            return d * v;
        if (log(u) < 0.5 * x * x + d * (1.0 - v + log(v)))
            return d * v;
    }
}

double reel_rng_beta(reel_rng *r, double a, double b)
{
    double x = reel_rng_gamma(r, a);
    double y = reel_rng_gamma(r, b);
    return x / (x + y);
}

uint64_t reel_rng_poisson(reel_rng *r, double mean)
{
    if (!(mean > 0.0))
        return 0;
    if (mean < 10.0) {
        /* Knuth's multiplication method: exact, fast for small means. */
        double l = exp(-mean), p = 1.0;
        uint64_t k = 0;
        do {
            k++;
            p *= reel_rng_uniform(r);
        } while (p > l);
        return k - 1;
    }
    /* Hoermann's transformed rejection with squeeze (PTRS), exact. */
    double slam = sqrt(mean), loglam = log(mean);
    double b = 0.931 + 2.53 * slam, a = -0.059 + 0.02483 * b;
    double invalpha = 1.1239 + 1.1328 / (b - 3.4);
    double vr = 0.9277 - 3.6224 / (b - 2.0);
    for (;;) {
        double u = reel_rng_uniform(r) - 0.5, v = reel_rng_uniform(r);
        double us = 0.5 - fabs(u);
        double k = floor((2.0 * a / us + b) * u + mean + 0.43);
        if (us >= 0.07 && v <= vr)
            return (uint64_t)k;
        if (k < 0.0 || (us < 0.013 && v > us))
            continue;
        if (log(v) + log(invalpha) - log(a / (us * us) + b) <=
            -mean + k * loglam - lgamma(k + 1.0))
            return (uint64_t)k;
    }
}

void reel_rng_dirichlet(reel_rng *r, double alpha, double *w, size_t n)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        w[i] = reel_rng_gamma(r, alpha);
        sum += w[i];
    }
    if (sum <= 0.0) {
        for (size_t i = 0; i < n; i++)
            w[i] = 1.0 / (double)n;
        return;
    }
    for (size_t i = 0; i < n; i++)
        w[i] /= sum;
}

void reel_rng_shuffle(reel_rng *r, void *base, size_t n, size_t size)
{
    unsigned char *p = base, tmp[64];
    if (n < 2)
        return;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)reel_rng_below(r, i + 1);
        if (i == j)
            continue;
        for (size_t off = 0; off < size; off += sizeof tmp) {
            size_t chunk = size - off < sizeof tmp ? size - off : sizeof tmp;
            memcpy(tmp, p + i * size + off, chunk);
            memcpy(p + i * size + off, p + j * size + off, chunk);
            memcpy(p + j * size + off, tmp, chunk);
        }
    }
}

int reel_alias_build(reel_alias *a, const double *w, uint32_t n)
{
    double sum = 0.0;
    for (uint32_t i = 0; i < n; i++)
        if (w[i] > 0.0)
            sum += w[i];
    if (n == 0 || !(sum > 0.0))
        return REEL_EINVAL;
    a->n = n;
    a->prob = reel_xmalloc(n * sizeof *a->prob);
    a->alias = reel_xmalloc(n * sizeof *a->alias);
    double *scaled = reel_xmalloc(n * sizeof *scaled);
    uint32_t *small = reel_xmalloc(n * sizeof *small);
    uint32_t *large = reel_xmalloc(n * sizeof *large);
    uint32_t ns = 0, nl = 0;
    for (uint32_t i = 0; i < n; i++) {
        scaled[i] = (w[i] > 0.0 ? w[i] : 0.0) * n / sum;
        if (scaled[i] < 1.0)
            small[ns++] = i;
        else
            large[nl++] = i;
    }
    while (ns && nl) {
        uint32_t s = small[--ns], l = large[--nl];
        a->prob[s] = (float)scaled[s];
        a->alias[s] = l;
        scaled[l] = scaled[l] + scaled[s] - 1.0;
        if (scaled[l] < 1.0)
            small[ns++] = l;
        else
            large[nl++] = l;
    }
    while (nl) {
        uint32_t l = large[--nl];
        a->prob[l] = 1.0f;
        a->alias[l] = l;
    }
    while (ns) {
        uint32_t s = small[--ns];
        a->prob[s] = 1.0f;
        a->alias[s] = s;
    }
    free(scaled);
    free(small);
    free(large);
    return 0;
}

uint32_t reel_alias_sample(const reel_alias *a, reel_rng *r)
{
    uint64_t x = reel_rng_u64(r);
    uint32_t i = (uint32_t)(((x >> 32) * a->n) >> 32);
    float u = (float)(x & 0xffffff) * 0x1.0p-24f;
    return u < a->prob[i] ? i : a->alias[i];
}

void reel_alias_free(reel_alias *a)
{
    if (!a)
        return;
    free(a->prob);
    free(a->alias);
    a->prob = NULL;
    a->alias = NULL;
    a->n = 0;
}
