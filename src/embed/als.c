#include "embed/als.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "base/rng.h"

reel_als_opts reel_als_opts_default(void)
{
    return (reel_als_opts){.dim = 64,
                           .iterations = 15,
                           .alpha = 10,
                           .lambda = 50,
                           .seed = 42,
                           .threads = 0};
}

void reel_als_gram(const float *f, uint32_t n, uint32_t d, float *g)
{
    /* Upper triangle by ssyrk, mirrored: G = F'F. */
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)n, 1.0f, f,
                (int)d, 0.0f, g, (int)d);
    for (uint32_t i = 0; i < d; i++)
        for (uint32_t j = 0; j < i; j++)
            g[i * d + j] = g[j * d + i];
}

void reel_als_gram_naive(const float *f, uint32_t n, uint32_t d, float *g)
{
    for (uint32_t i = 0; i < d; i++)
        for (uint32_t j = 0; j < d; j++) {
            double s = 0;
            for (uint32_t r = 0; r < n; r++)
                s += (double)f[(size_t)r * d + i] * f[(size_t)r * d + j];
            g[i * d + j] = (float)s;
        }
}

int reel_als_solve(float *a, float *b, uint32_t d)
{
    /* In place: lower triangle of a becomes L with A = L L'. */
    for (uint32_t j = 0; j < d; j++) {
        double s = a[j * d + j];
        for (uint32_t k = 0; k < j; k++)
            s -= (double)a[j * d + k] * a[j * d + k];
        if (!(s > 0))
            return REEL_ERANGE;
        float ljj = (float)sqrt(s);
        a[j * d + j] = ljj;
        for (uint32_t i = j + 1; i < d; i++) {
            double t = a[i * d + j];
            for (uint32_t k = 0; k < j; k++)
                t -= (double)a[i * d + k] * a[j * d + k];
            a[i * d + j] = (float)(t / ljj);
        }
    }
    for (uint32_t i = 0; i < d; i++) { /* L y = b */
        double t = b[i];
        for (uint32_t k = 0; k < i; k++)
            t -= (double)a[i * d + k] * b[k];
        b[i] = (float)(t / a[i * d + i]);
    }
    for (uint32_t i = d; i-- > 0;) { /* L' x = y */
        double t = b[i];
        for (uint32_t k = i + 1; k < d; k++)
            t -= (double)a[k * d + i] * b[k];
        b[i] = (float)(t / a[i * d + i]);
    }
    return 0;
}

/* One side's rows in CSR: row r's columns col[off[r]..off[r+1]) with
 * confidence weights. */
struct csr {
    uint32_t n;
    uint64_t *off;
    uint32_t *col;
    float *w;
};

struct half {
    const struct csr *m;
    const float *other; /* the fixed factors */
    const float *gram;  /* other' other */
    float *out;         /* the factors being solved */
    uint32_t d, from, to;
    float lambda;
    int rc;
};

static void *solve_rows(void *arg)
{
    struct half *h = arg;
    uint32_t d = h->d;
    float *a = reel_xmalloc((size_t)d * d * sizeof *a);
    float *b = reel_xmalloc(d * sizeof *b);
    for (uint32_t r = h->from; r < h->to; r++) {
        float *x = h->out + (size_t)r * d;
        if (h->m->off[r] == h->m->off[r + 1]) {
            memset(x, 0, d * sizeof *x);
            continue;
        }
        memcpy(a, h->gram, (size_t)d * d * sizeof *a);
        memset(b, 0, d * sizeof *b);
        for (uint32_t i = 0; i < d; i++)
            a[i * d + i] += h->lambda;
        for (uint64_t k = h->m->off[r]; k < h->m->off[r + 1]; k++) {
            const float *y = h->other + (size_t)h->m->col[k] * d;
            float c = h->m->w[k]; /* confidence, preference 1 */
            for (uint32_t i = 0; i < d; i++) {
                b[i] += c * y[i];
                float ci = (c - 1) * y[i];
                for (uint32_t j = 0; j <= i; j++)
                    a[i * d + j] += ci * y[j];
            }
        }
        for (uint32_t i = 0; i < d; i++)
            for (uint32_t j = i + 1; j < d; j++)
                a[i * d + j] = a[j * d + i];
        if (reel_als_solve(a, b, d)) {
            h->rc = REEL_ERANGE;
            break;
        }
        memcpy(x, b, d * sizeof *x);
    }
    free(a);
    free(b);
    return NULL;
}

static int half_step(const struct csr *m, const float *other, uint32_t n_other,
                     float *out, uint32_t d, float lambda, int threads)
{
    float *gram = reel_xmalloc((size_t)d * d * sizeof *gram);
    reel_als_gram(other, n_other, d, gram);
    struct half h[64];
    pthread_t tid[64];
    for (int t = 0; t < threads; t++) {
        h[t] =
            (struct half){.m = m,
                          .other = other,
                          .gram = gram,
                          .out = out,
                          .d = d,
                          .from = (uint32_t)((uint64_t)m->n * t / threads),
                          .to = (uint32_t)((uint64_t)m->n * (t + 1) / threads),
                          .lambda = lambda};
        if (t)
            pthread_create(&tid[t], NULL, solve_rows, &h[t]);
    }
    solve_rows(&h[0]);
    int rc = h[0].rc;
    for (int t = 1; t < threads; t++) {
        pthread_join(tid[t], NULL);
        if (h[t].rc)
            rc = h[t].rc;
    }
    free(gram);
    return rc;
}

/* Aggregates repeated (user, item) pairs into counts, both orientations. */
static void build_csr(const reel_inter *x, double alpha, struct csr *by_user,
                      struct csr *by_item)
{
    uint32_t nu = x->n_users, ni = x->n_items;
    uint32_t *cnt = reel_xcalloc(ni + 1, sizeof *cnt);
    uint32_t *touched = reel_xmalloc((ni + 1) * sizeof *touched);
    by_user->n = nu;
    by_user->off = reel_xcalloc((size_t)nu + 1, sizeof *by_user->off);
    by_user->col = reel_xmalloc((x->off[nu] + 1) * sizeof *by_user->col);
    by_user->w = reel_xmalloc((x->off[nu] + 1) * sizeof *by_user->w);
    by_item->n = ni;
    by_item->off = reel_xcalloc((size_t)ni + 2, sizeof *by_item->off);
    uint64_t nnz = 0;
    for (uint32_t u = 0; u < nu; u++) {
        uint32_t nt = 0;
        for (uint64_t k = x->off[u]; k < x->off[u + 1]; k++)
            if (cnt[x->item[k]]++ == 0)
                touched[nt++] = x->item[k];
        for (uint32_t t = 0; t < nt; t++) {
            uint32_t i = touched[t];
            by_user->col[nnz] = i;
            by_user->w[nnz++] = (float)(1.0 + alpha * cnt[i]);
            by_item->off[i + 1]++;
            cnt[i] = 0;
        }
        by_user->off[u + 1] = nnz;
    }
    for (uint32_t i = 0; i < ni; i++)
        by_item->off[i + 1] += by_item->off[i];
    by_item->col = reel_xmalloc((nnz + 1) * sizeof *by_item->col);
    by_item->w = reel_xmalloc((nnz + 1) * sizeof *by_item->w);
    uint64_t *at = reel_xmalloc(((size_t)ni + 1) * sizeof *at);
    memcpy(at, by_item->off, ((size_t)ni + 1) * sizeof *at);
    for (uint32_t u = 0; u < nu; u++)
        for (uint64_t k = by_user->off[u]; k < by_user->off[u + 1]; k++) {
            uint64_t p = at[by_user->col[k]]++;
            by_item->col[p] = u;
            by_item->w[p] = by_user->w[k];
        }
    free(at);
    free(cnt);
    free(touched);
}

static void csr_free(struct csr *m)
{
    free(m->off);
    free(m->col);
    free(m->w);
}

int reel_als_train(const reel_inter *x, const reel_als_opts *o,
                   reel_progress *p, reel_vectors **out)
{
    *out = NULL;
    if (o->dim < 1 || o->dim > 1024 || o->iterations < 1 || !(o->alpha >= 0) ||
        !(o->lambda > 0))
        return REEL_EINVAL;
    uint32_t d = o->dim, nu = x->n_users, ni = x->n_items;
    struct csr bu, bi;
    build_csr(x, o->alpha, &bu, &bi);
    float *uf = reel_xcalloc((size_t)nu * d + 1, sizeof *uf);
    float *itf = reel_xmalloc(((size_t)ni * d + 1) * sizeof *itf);
    reel_rng r;
    reel_rng_seed(&r, o->seed);
    for (size_t k = 0; k < (size_t)ni * d; k++)
        itf[k] = (float)(reel_rng_normal(&r) * 0.01);
    int threads =
        o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    threads = threads < 1 ? 1 : threads > 64 ? 64 : threads;
    if (p)
        reel_progress_start(p, "als", "iterations", o->iterations);
    int rc = 0;
    for (uint32_t it = 0; it < o->iterations && !rc; it++) {
        rc = half_step(&bu, itf, ni, uf, d, (float)o->lambda, threads);
        if (!rc)
            rc = half_step(&bi, uf, nu, itf, d, (float)o->lambda, threads);
        if (p)
            reel_progress_set(p, it + 1);
    }
    if (p)
        reel_progress_finish(p);
    if (rc == 0) {
        char src[200];
        snprintf(src, sizeof src,
                 "{\"method\":\"als\",\"dim\":%u,\"iterations\":%u,"
                 "\"alpha\":%g,\"lambda\":%g,\"seed\":%llu}",
                 d, o->iterations, o->alpha, o->lambda,
                 (unsigned long long)o->seed);
        reel_vectors *v;
        reel_vectors_new(ni, d, src, &v);
        for (uint32_t i = 0; i < ni; i++) {
            if (bi.off[i] == bi.off[i + 1])
                continue;
            memcpy(reel_vectors_row(v, i), itf + (size_t)i * d,
                   d * sizeof(float));
            v->has[i] = 1;
        }
        /* Not normalised: an item factor's length carries how broadly it
         * is liked, which inner-product retrieval should keep. */
        *out = v;
    }
    free(uf);
    free(itf);
    csr_free(&bu);
    csr_free(&bi);
    return rc;
}
