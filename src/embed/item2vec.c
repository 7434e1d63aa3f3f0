#include "embed/item2vec.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "base/rng.h"

reel_item2vec_opts reel_item2vec_opts_default(void)
{
    return (reel_item2vec_opts){.dim = 64,
                                .window = 50,
                                .negatives = 5,
                                .epochs = 5,
                                .min_count = 1,
                                .subsample = 1e-3,
                                .lr = 0.025,
                                .prior = 0.06,
                                .seed = 42,
                                .threads = 0};
}

struct job {
    const reel_inter *x;
    const reel_item2vec_opts *o;
    float *syn0, *syn1;
    const uint32_t *count;
    const double *keep_prob; /* per item, subsampling */
    const reel_alias *neg;
    uint64_t total_words; /* per epoch, before subsampling */
    _Atomic uint64_t *done_words;
    uint32_t from, to; /* users */
    int id;
    reel_progress *p;
};

static inline float sigmoid(float x)
{
    if (x > 8)
        return 1;
    if (x < -8)
        return 0;
    return 1.0f / (1.0f + expf(-x));
}

static void *worker(void *arg)
{
    struct job *j = arg;
    const reel_item2vec_opts *o = j->o;
    uint32_t dim = o->dim;
    reel_rng r;
    reel_rng_seed2(&r, o->seed, (uint64_t)j->id + 1);
    float *grad = reel_xmalloc(dim * sizeof *grad);
    uint32_t *seq = NULL;
    size_t cap = 0;
    uint64_t budget = (uint64_t)o->epochs * j->total_words;
    for (uint32_t ep = 0; ep < o->epochs; ep++) {
        for (uint32_t u = j->from; u < j->to; u++) {
            uint64_t a = j->x->off[u], b = j->x->off[u + 1];
            REEL_GROW(seq, cap, (size_t)(b - a) + 1);
            uint32_t n = 0;
            for (uint64_t k = a; k < b; k++) {
                uint32_t it = j->x->item[k];
                if (j->count[it] < o->min_count)
                    continue;
                if (j->keep_prob[it] < 1.0 &&
                    reel_rng_uniform(&r) > j->keep_prob[it])
                    continue;
                seq[n++] = it;
            }
            uint64_t done = atomic_fetch_add(j->done_words, b - a) + (b - a);
            float lr = (float)(o->lr *
                               fmax(1e-4, 1.0 - (double)done / (double)budget));
            for (uint32_t i = 0; i < n; i++) {
                uint32_t w = (uint32_t)reel_rng_below(&r, o->window);
                uint32_t lo = i > o->window - w ? i - (o->window - w) : 0;
                uint32_t hi = i + (o->window - w);
                if (hi >= n)
                    hi = n - 1;
                for (uint32_t c = lo; c <= hi; c++) {
                    if (c == i || seq[c] == seq[i])
                        continue;
                    /* The context's input vector learns to predict the
                     * centre against negative samples. */
                    float *l1 = j->syn0 + (size_t)seq[c] * dim;
                    memset(grad, 0, dim * sizeof *grad);
                    for (uint32_t t = 0; t <= o->negatives; t++) {
                        uint32_t target;
                        float label;
                        if (t == 0) {
                            target = seq[i];
                            label = 1;
                        } else {
                            target = reel_alias_sample(j->neg, &r);
                            if (target == seq[i])
                                continue;
                            label = 0;
                        }
                        float *l2 = j->syn1 + (size_t)target * dim;
                        float dot = 0;
                        for (uint32_t k = 0; k < dim; k++)
                            dot += l1[k] * l2[k];
                        float g = (label - sigmoid(dot)) * lr;
                        for (uint32_t k = 0; k < dim; k++)
                            grad[k] += g * l2[k];
                        for (uint32_t k = 0; k < dim; k++)
                            l2[k] += g * l1[k];
                    }
                    for (uint32_t k = 0; k < dim; k++)
                        l1[k] += grad[k];
                }
            }
            if (j->id == 0 && j->p) {
                reel_progress_set(j->p, atomic_load(j->done_words));
            }
        }
    }
    free(seq);
    free(grad);
    return NULL;
}

/* Appends the popularity coordinate (docs/formats/vectors.md). */
static void add_prior(reel_vectors **vp, const uint32_t *count, uint64_t total,
                      double w)
{
    reel_vectors *v = *vp, *pv;
    uint32_t dim = v->dim;
    reel_vectors_new(v->n, dim + 1, v->source, &pv);
    for (uint32_t i = 0; i < v->n; i++) {
        if (!v->has[i])
            continue;
        float *r = reel_vectors_row(pv, i);
        memcpy(r, reel_vectors_row(v, i), dim * sizeof *r);
        r[dim] = (float)(w * log(((double)count[i] + 1) / (double)total));
        pv->has[i] = 1;
    }
    pv->prior = 1;
    reel_vectors_free(v);
    *vp = pv;
}

int reel_item2vec_train(const reel_inter *x, const reel_item2vec_opts *o,
                        reel_progress *p, reel_vectors **out)
{
    *out = NULL;
    if (o->dim < 1 || o->dim > 4096 || o->window < 1 || o->epochs < 1 ||
        o->negatives > 100 || !(o->lr > 0) || o->subsample < 0 ||
        !(o->prior >= 0 && o->prior <= 10))
        return REEL_EINVAL;
    uint32_t ni = x->n_items, dim = o->dim;
    uint64_t total = x->off[x->n_users];
    uint32_t *count = reel_xcalloc(ni ? ni : 1, sizeof *count);
    for (uint64_t k = 0; k < total; k++)
        count[x->item[k]]++;
    double *keep = reel_xmalloc((ni ? ni : 1) * sizeof *keep);
    double *w = reel_xmalloc((ni ? ni : 1) * sizeof *w);
    for (uint32_t i = 0; i < ni; i++) {
        double f = count[i];
        /* word2vec's subsampling: frequent items are kept with
         * probability (sqrt(f / (t N)) + 1) t N / f. */
        double tn = o->subsample * (double)total;
        keep[i] = o->subsample > 0 && f > 0 ? (sqrt(f / tn) + 1) * tn / f : 1;
        w[i] = count[i] >= o->min_count ? pow(f, 0.75) : 0;
    }
    reel_alias neg;
    int rc = reel_alias_build(&neg, w, ni);
    free(w);
    if (rc) {
        free(count);
        free(keep);
        return REEL_EINVAL; /* no interactions at all */
    }
    float *syn0 = reel_xmalloc((size_t)ni * dim * sizeof *syn0);
    float *syn1 = reel_xcalloc((size_t)ni * dim, sizeof *syn1);
    reel_rng r;
    reel_rng_seed(&r, o->seed);
    for (size_t k = 0; k < (size_t)ni * dim; k++)
        syn0[k] = (float)((reel_rng_uniform(&r) - 0.5) / dim);
    int threads =
        o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 1)
        threads = 1;
    if (threads > 64)
        threads = 64;
    if ((uint32_t)threads > x->n_users)
        threads = x->n_users ? (int)x->n_users : 1;
    _Atomic uint64_t done = 0;
    if (p)
        reel_progress_start(p, "item2vec", "interactions",
                            (uint64_t)o->epochs * total);
    struct job jobs[64];
    pthread_t tids[64];
    for (int t = 0; t < threads; t++) {
        jobs[t] = (struct job){
            .x = x,
            .o = o,
            .syn0 = syn0,
            .syn1 = syn1,
            .count = count,
            .keep_prob = keep,
            .neg = &neg,
            .total_words = total,
            .done_words = &done,
            .from = (uint32_t)((uint64_t)x->n_users * t / threads),
            .to = (uint32_t)((uint64_t)x->n_users * (t + 1) / threads),
            .id = t,
            .p = p};
        if (t > 0)
            pthread_create(&tids[t], NULL, worker, &jobs[t]);
    }
    worker(&jobs[0]);
    for (int t = 1; t < threads; t++)
        pthread_join(tids[t], NULL);
    if (p)
        reel_progress_finish(p);
    char src[256];
    snprintf(src, sizeof src,
             "{\"method\":\"item2vec\",\"dim\":%u,\"window\":%u,"
             "\"negatives\":%u,\"epochs\":%u,\"min_count\":%u,"
             "\"subsample\":%g,\"lr\":%g,\"prior\":%g,\"seed\":%llu}",
             dim, o->window, o->negatives, o->epochs, o->min_count,
             o->subsample, o->lr, o->prior, (unsigned long long)o->seed);
    reel_vectors *v;
    reel_vectors_new(ni, dim, src, &v);
    for (uint32_t i = 0; i < ni; i++) {
        if (count[i] < o->min_count || count[i] == 0)
            continue;
        memcpy(reel_vectors_row(v, i), syn0 + (size_t)i * dim,
               dim * sizeof(float));
        v->has[i] = 1;
    }
    reel_vectors_normalize(v);
    if (o->prior > 0)
        add_prior(&v, count, total, o->prior);
    reel_alias_free(&neg);
    free(syn0);
    free(syn1);
    free(count);
    free(keep);
    *out = v;
    return 0;
}
