#include "reco/reco.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "rank/trainset.h"

struct reel_reco_scratch {
    uint32_t cap;
    float *q, *sim, *rank, *x, *p;
    reel_cand_ctx cc;
    reel_hit *hits;
    reel_reco_item *items;
    uint8_t *taken;
};

reel_reco_opts reel_reco_opts_default(void)
{
    return (reel_reco_opts){.history_n = 10,
                            .recency_decay = 1,
                            .candidates = 200,
                            .max_per_category = 0,
                            .fresh_boost = 0,
                            .fresh_half_life_s = 7 * 86400.0};
}

reel_reco_scratch *reel_reco_scratch_new(const reel_reco *r)
{
    reel_reco_scratch *s = reel_xcalloc(1, sizeof *s);
    uint32_t c = r->o.candidates ? r->o.candidates : 1;
    s->cap = c;
    s->q = reel_xmalloc(((size_t)r->vec->dim + 1) * sizeof *s->q);
    s->sim = reel_xmalloc(c * sizeof *s->sim);
    s->rank = reel_xmalloc(c * sizeof *s->rank);
    s->x = reel_xmalloc((size_t)c * REEL_F__COUNT * sizeof *s->x);
    s->p = reel_xmalloc(c * sizeof *s->p);
    s->hits = reel_xmalloc(c * sizeof *s->hits);
    s->items = reel_xmalloc(c * sizeof *s->items);
    s->taken = reel_xmalloc(c);
    return s;
}

void reel_reco_scratch_free(reel_reco_scratch *s)
{
    if (!s)
        return;
    free(s->q);
    free(s->sim);
    free(s->rank);
    reel_cand_ctx_free(&s->cc);
    free(s->x);
    free(s->p);
    free(s->hits);
    free(s->items);
    free(s->taken);
    free(s);
}

const float *reel_reco_scratch_row(const reel_reco_scratch *s, uint32_t cand)
{
    return s->x + (size_t)cand * REEL_F__COUNT;
}

static int by_score(const void *a, const void *b)
{
    const reel_reco_item *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return (x->video > y->video) - (x->video < y->video);
}

uint32_t reel_reco_rank(const reel_reco *r, const reel_featstate *fs,
                        uint32_t user, double now, const uint32_t *hist,
                        uint32_t n_hist, const reel_filter *f, uint32_t k,
                        reel_reco_scratch *s, reel_reco_item *out)
{
    const reel_fs_user *fu = reel_featstate_user(fs, user);
    return reel_reco_rank_with(r, fs, fu, fu ? user : REEL_NONE, now, hist,
                               n_hist, f, k, s, out);
}

uint32_t reel_reco_rank_with(const reel_reco *r, const reel_featstate *fs,
                             const reel_fs_user *fu, uint32_t user, double now,
                             const uint32_t *hist, uint32_t n_hist,
                             const reel_filter *f, uint32_t k,
                             reel_reco_scratch *s, reel_reco_item *out)
{
    const reel_reco_opts *o = &r->o;
    uint32_t want = o->candidates < s->cap ? o->candidates : s->cap;
    if (want < k)
        want = k < s->cap ? k : s->cap;
    uint32_t nc =
        reel_retrieve(r->vec, r->ix, hist, n_hist, o->history_n,
                      o->recency_decay, f, want, s->q, s->hits, s->sim);
    if (!nc)
        return 0;
    reel_cand_ctx_prepare(&s->cc, r->vec, hist, n_hist, o->history_n);
    reel_cand_ranks(s->sim, nc, s->rank);
    enum { AHEAD = 4 }; /* rows in flight: a 1M catalogue's are cold */
    for (uint32_t i = 0; i < nc && i < AHEAD; i++)
        reel_cand_prefetch(r->vec, s->hits[i].id);
    for (uint32_t i = 0; i < nc; i++) {
        if (i + AHEAD < nc)
            reel_cand_prefetch(r->vec, s->hits[i + AHEAD].id);
        reel_cand_feats cf;
        reel_cand_feats_fill(&s->cc, s->hits[i].id, s->sim[i], s->rank[i], &cf);
        reel_features_row_with(fs, fu, user, s->hits[i].id, now, &cf,
                               s->x + (size_t)i * REEL_F__COUNT);
    }
    if (r->ranker && o->ranker != REEL_RECO_RANKER_NONE)
        reel_ranker_score(r->ranker, s->x, nc, REEL_F__COUNT, s->p);
    else
        for (uint32_t i = 0; i < nc; i++)
            s->p[i] = s->sim[i];
    const reel_videos *vid = r->vid ? r->vid : reel_dataset_videos(r->ds);
    for (uint32_t i = 0; i < nc; i++) {
        uint32_t v = s->hits[i].id;
        float score = s->p[i];
        if (o->fresh_boost > 0 && v < vid->n &&
            isfinite(vid->published_at[v])) {
            double age = now - vid->published_at[v];
            score += (float)(o->fresh_boost *
                             exp2(-(age > 0 ? age : 0) / o->fresh_half_life_s));
        }
        s->items[i] = (reel_reco_item){v, score, s->sim[i], i};
    }
    qsort(s->items, nc, sizeof *s->items, by_score);
    /* Business rules: no video twice, at most M per primary category. */
    memset(s->taken, 0, nc);
    uint32_t n = 0;
    for (uint32_t i = 0; i < nc && n < k; i++) {
        uint32_t v = s->items[i].video;
        int dup = 0;
        for (uint32_t j = 0; j < n && !dup; j++)
            dup = out[j].video == v;
        if (dup) {
            s->taken[i] = 1;
            continue;
        }
        if (o->max_per_category && v < vid->n &&
            vid->cat_off[v + 1] > vid->cat_off[v]) {
            uint32_t c = vid->cat[vid->cat_off[v]], same = 0;
            for (uint32_t j = 0; j < n; j++) {
                uint32_t w = out[j].video;
                same += w < vid->n && vid->cat_off[w + 1] > vid->cat_off[w] &&
                        vid->cat[vid->cat_off[w]] == c;
            }
            if (same >= o->max_per_category)
                continue;
        }
        s->taken[i] = 1;
        out[n++] = s->items[i];
    }
    /* The cap left the list short: the skipped fill it in score order. */
    for (uint32_t i = 0; i < nc && n < k; i++)
        if (!s->taken[i]) {
            int dup = 0;
            for (uint32_t j = 0; j < n && !dup; j++)
                dup = out[j].video == s->items[i].video;
            if (!dup)
                out[n++] = s->items[i];
        }
    return n;
}
