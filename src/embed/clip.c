/* clip: see clip.h. */
#include "embed/clip.h"

#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "embed/matmul.h"

static _Atomic int n_threads = 1;

/* y = x W^T + b through the packed matrix (matmul.h). */
static void linear(const reel_matw *w, const float *x, uint32_t n,
                   const float *b, float *y, int flags)
{
    reel_matw_apply(w, x, n, w->k, b, y, w->n, flags, atomic_load(&n_threads));
}

static void layer_norm(const float *x, uint32_t n, uint32_t h, const float *g,
                       const float *b, float eps, float *y)
{
    int threads = atomic_load(&n_threads);
    (void)threads;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads)                                  \
    schedule(static) if (threads > 1 && n >= 64)
#endif
    for (uint32_t i = 0; i < n; i++) {
        const float *r = x + (size_t)i * h;
        float *o = y + (size_t)i * h;
        double mean = 0, var = 0;
        for (uint32_t j = 0; j < h; j++)
            mean += r[j];
        mean /= h;
        for (uint32_t j = 0; j < h; j++) {
            double t = r[j] - mean;
            var += t * t;
        }
        var /= h;
        float m = (float)mean, inv = (float)(1.0 / sqrt(var + eps));
        for (uint32_t j = 0; j < h; j++)
            o[j] = (r[j] - m) * inv * g[j] + b[j];
    }
}

static void activate(float *x, size_t n, reel_clip_act act)
{
    if (act == REEL_CLIP_QUICK_GELU)
        reel_quick_gelu(x, n);
    else
        for (size_t i = 0; i < n; i++)
            x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

struct scratch {
    float *y, *q, *k, *v, *a, *m, *s;
};

static void scratch_init(struct scratch *s, size_t rows, uint32_t h,
                         uint32_t mlp, uint32_t t)
{
    s->y = reel_xmalloc(rows * h * sizeof(float));
    s->q = reel_xmalloc(rows * h * sizeof(float));
    s->k = reel_xmalloc(rows * h * sizeof(float));
    s->v = reel_xmalloc(rows * h * sizeof(float));
    s->a = reel_xmalloc(rows * h * sizeof(float));
    s->m = reel_xmalloc(rows * mlp * sizeof(float));
    s->s = reel_xmalloc((size_t)t * t * sizeof(float));
}

static void scratch_free(struct scratch *s)
{
    free(s->y), free(s->q), free(s->k), free(s->v), free(s->a), free(s->m),
        free(s->s);
}

/* One encoder layer over x: nb sequences of t tokens, hidden h, in place. */
static void encoder_layer(const reel_clip_tower_config *c,
                          const reel_clip_layer *L, float *x, uint32_t nb,
                          uint32_t t, int causal, struct scratch *s)
{
    uint32_t h = c->hidden, nh = c->heads, dh = h / nh;
    size_t rows = (size_t)nb * t;
    layer_norm(x, (uint32_t)rows, h, L->ln1_w, L->ln1_b, c->ln_eps, s->y);
    linear(&L->q, s->y, (uint32_t)rows, L->q_b, s->q, 0);
    linear(&L->k, s->y, (uint32_t)rows, L->k_b, s->k, 0);
    linear(&L->v, s->y, (uint32_t)rows, L->v_b, s->v, 0);
    int threads = atomic_load(&n_threads);
    (void)threads;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
#endif
    for (int job = 0; job < (int)(nb * nh); job++) {
        uint32_t b = (uint32_t)job / nh, hd = (uint32_t)job % nh;
        size_t off = (size_t)b * t * h + hd * dh;
        reel_attention_head(s->q + off, s->k + off, s->v + off, s->a + off, t,
                            h, dh, 1.0f / sqrtf((float)dh), causal);
    }
    linear(&L->o, s->a, (uint32_t)rows, L->o_b, x, REEL_MATW_ACCUM);
    layer_norm(x, (uint32_t)rows, h, L->ln2_w, L->ln2_b, c->ln_eps, s->y);
    if (c->act == REEL_CLIP_QUICK_GELU) {
        linear(&L->fc1, s->y, (uint32_t)rows, L->fc1_b, s->m,
               REEL_MATW_QUICK_GELU);
    } else {
        linear(&L->fc1, s->y, (uint32_t)rows, L->fc1_b, s->m, 0);
        activate(s->m, rows * c->mlp, c->act);
    }
    linear(&L->fc2, s->m, (uint32_t)rows, L->fc2_b, x, REEL_MATW_ACCUM);
}

static void l2_normalize(float *x, uint32_t n, uint32_t d)
{
    for (uint32_t i = 0; i < n; i++) {
        float *r = x + (size_t)i * d;
        double s = 0;
        for (uint32_t j = 0; j < d; j++)
            s += (double)r[j] * r[j];
        float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
        for (uint32_t j = 0; j < d; j++)
            r[j] *= inv;
    }
}

int reel_clip_image_embed(const reel_clip_weights *w, const float *pixels,
                          uint32_t n, float *out)
{
    if (!n)
        return 0;
    const reel_clip_tower_config *c = &w->cfg.vision;
    uint32_t S = c->image_size, P = c->patch, C = c->channels, g = S / P,
             np = g * g, t = np + 1, h = c->hidden, kp = C * P * P;
    size_t rows = (size_t)n * t;
    /* the patches, each flattened as the convolution's weight (c, y, x) */
    float *patches = reel_xmalloc((size_t)n * np * kp * sizeof(float));
    for (uint32_t b = 0; b < n; b++)
        for (uint32_t gy = 0; gy < g; gy++)
            for (uint32_t gx = 0; gx < g; gx++) {
                float *dst = patches + ((size_t)b * np + gy * g + gx) * kp;
                for (uint32_t ch = 0; ch < C; ch++)
                    for (uint32_t py = 0; py < P; py++) {
                        const float *src = pixels + (size_t)b * C * S * S +
                                           (size_t)ch * S * S +
                                           (size_t)(gy * P + py) * S + gx * P;
                        memcpy(dst + ((size_t)ch * P + py) * P, src,
                               P * sizeof(float));
                    }
            }
    float *emb = reel_xmalloc((size_t)n * np * h * sizeof(float));
    linear(&w->vision.patch_m, patches, n * np, NULL, emb, 0);
    free(patches);
    float *x = reel_xmalloc(rows * h * sizeof(float));
    for (uint32_t b = 0; b < n; b++) {
        float *r = x + (size_t)b * t * h;
        for (uint32_t j = 0; j < h; j++)
            r[j] = w->vision.class_emb[j] + w->vision.pos_emb[j];
        for (uint32_t i = 0; i < np; i++) {
            float *ri = r + (size_t)(i + 1) * h;
            const float *e = emb + ((size_t)b * np + i) * h;
            const float *pe = w->vision.pos_emb + (size_t)(i + 1) * h;
            for (uint32_t j = 0; j < h; j++)
                ri[j] = e[j] + pe[j];
        }
    }
    free(emb);
    layer_norm(x, (uint32_t)rows, h, w->vision.pre_ln_w, w->vision.pre_ln_b,
               c->ln_eps, x);
    struct scratch s;
    scratch_init(&s, rows, h, c->mlp, t);
    for (uint32_t l = 0; l < c->layers; l++)
        encoder_layer(c, &w->vision.layer[l], x, n, t, 0, &s);
    float *pooled = s.y; /* n x h */
    for (uint32_t b = 0; b < n; b++)
        layer_norm(x + (size_t)b * t * h, 1, h, w->vision.post_ln_w,
                   w->vision.post_ln_b, c->ln_eps, pooled + (size_t)b * h);
    linear(&w->vision.proj_m, pooled, n, NULL, out, 0);
    l2_normalize(out, n, w->cfg.proj_dim);
    scratch_free(&s);
    free(x);
    return 0;
}

int reel_clip_text_embed(const reel_clip_weights *w, const int32_t *ids,
                         const uint32_t *len, uint32_t stride, uint32_t n,
                         int32_t end_id, float *out)
{
    if (!n)
        return 0;
    const reel_clip_tower_config *c = &w->cfg.text;
    uint32_t t = 0, h = c->hidden;
    for (uint32_t b = 0; b < n; b++) {
        if (len[b] < 1 || len[b] > c->max_pos || len[b] > stride)
            return REEL_EINVAL;
        for (uint32_t i = 0; i < len[b]; i++)
            if (ids[(size_t)b * stride + i] < 0 ||
                (uint32_t)ids[(size_t)b * stride + i] >= c->vocab)
                return REEL_EINVAL;
        t = len[b] > t ? len[b] : t;
    }
    size_t rows = (size_t)n * t;
    float *x = reel_xmalloc(rows * h * sizeof(float));
    uint32_t *pool = reel_xmalloc(n * sizeof *pool);
    for (uint32_t b = 0; b < n; b++) {
        const int32_t *id = ids + (size_t)b * stride;
        pool[b] = 0;
        for (uint32_t i = 0; i < len[b]; i++)
            if (id[i] == end_id) {
                pool[b] = i;
                break;
            }
        for (uint32_t i = 0; i < t; i++) {
            /* padding repeats the last id; the causal mask hides it */
            int32_t tok = id[i < len[b] ? i : len[b] - 1];
            const float *te = w->text.tok_emb + (size_t)tok * h;
            const float *pe = w->text.pos_emb + (size_t)i * h;
            float *r = x + ((size_t)b * t + i) * h;
            for (uint32_t j = 0; j < h; j++)
                r[j] = te[j] + pe[j];
        }
    }
    struct scratch s;
    scratch_init(&s, rows, h, c->mlp, t);
    for (uint32_t l = 0; l < c->layers; l++)
        encoder_layer(c, &w->text.layer[l], x, n, t, 1, &s);
    float *pooled = s.y;
    for (uint32_t b = 0; b < n; b++)
        layer_norm(x + ((size_t)b * t + pool[b]) * h, 1, h, w->text.ln_w,
                   w->text.ln_b, c->ln_eps, pooled + (size_t)b * h);
    linear(&w->text.proj_m, pooled, n, NULL, out, 0);
    l2_normalize(out, n, w->cfg.proj_dim);
    scratch_free(&s);
    free(pool);
    free(x);
    return 0;
}

float reel_clip_logit_scale(const reel_clip_weights *w)
{
    return expf(w->logit_scale);
}

void reel_clip_set_threads(int n)
{
    n = n > 0 ? n : 1;
    atomic_store(&n_threads, n);
    /* OpenBLAS only multiplies here where the CPU lacks AVX-512 (matmul.h);
     * elsewhere its threads would fight OpenMP's */
    openblas_set_num_threads(__builtin_cpu_supports("avx512f") ? 1 : n);
}
