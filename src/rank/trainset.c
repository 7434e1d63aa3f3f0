#include "rank/trainset.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/rng.h"
#include "data/interactions.h"
#include "index/distance.h"

int reel_label_parse(const char *s, reel_label *out, float *watch_s)
{
    if (!strcmp(s, "click")) {
        *out = REEL_LABEL_CLICK;
        return 0;
    }
    if (!strcmp(s, "like")) {
        *out = REEL_LABEL_LIKE;
        return 0;
    }
    if (!strncmp(s, "watch", 5)) {
        const char *n = s + 5;
        if (!*n) {
            *out = REEL_LABEL_WATCH;
            return 0;
        }
        char *end;
        double v = strtod(n, &end);
        if (*end || !(v >= 0 && v <= 86400) || end == n)
            return REEL_EINVAL;
        *out = REEL_LABEL_WATCH;
        *watch_s = (float)v;
        return 0;
    }
    return REEL_EINVAL;
}

reel_trainset_opts reel_trainset_opts_default(void)
{
    return (reel_trainset_opts){.label = REEL_LABEL_WATCH,
                                .watch_seconds = 30,
                                .negatives = 9,
                                .candidates = 200,
                                .history_n = 10,
                                .recency_decay = 1,
                                .max_rows = 200000,
                                .follow_s = 3600,
                                .seed = 42};
}

enum reel_metric reel_retrieve_metric(const reel_vectors *vec)
{
    return reel_vectors_by_cosine(vec) ? REEL_METRIC_COSINE : REEL_METRIC_IP;
}

int reel_retrieve_index(const reel_vectors *vec, reel_index **out, reel_diag *d)
{
    *out = NULL;
    reel_index_opts io = reel_index_opts_default(
        REEL_INDEX_HNSW, reel_retrieve_metric(vec), vec->dim);
    reel_index *ix;
    int rc = reel_index_new(&io, &ix, d);
    if (rc)
        return rc;
    for (uint32_t i = 0; i < vec->n; i++)
        if (vec->has[i] &&
            (rc = reel_index_add(ix, i, reel_vectors_row(vec, i)))) {
            reel_index_free(ix);
            return reel_diag_fail(d, rc, "indexing video %u failed: %s", i,
                                  reel_strerror(rc));
        }
    *out = ix;
    return 0;
}

/* The similarity for an index distance (index.h: -<q, x> for ip, 1 - cos
 * for cosine). */
static float sim_of_dist(const reel_vectors *vec, float dist)
{
    return reel_vectors_by_cosine(vec) ? 1.0f - dist : -dist;
}

float reel_retrieve_sim(const reel_vectors *vec, const reel_index *ix,
                        const float *q, uint32_t v)
{
    float dist;
    if (v >= vec->n || !vec->has[v] || reel_index_distance(ix, q, v, &dist))
        return NAN;
    return sim_of_dist(vec, dist);
}

float reel_retrieve_sim_of(const reel_vectors *vec, const reel_index *ix,
                           const float *q, const reel_hit *hits,
                           const float *sim, uint32_t n, uint32_t v)
{
    for (uint32_t i = 0; i < n; i++)
        if (hits[i].id == v)
            return sim[i];
    return reel_retrieve_sim(vec, ix, q, v);
}

void reel_cand_ctx_free(reel_cand_ctx *c)
{
    free(c->rows);
    *c = (reel_cand_ctx){0};
}

void reel_cand_ctx_prepare(reel_cand_ctx *c, const reel_vectors *vec,
                           const uint32_t *recent, uint32_t n_recent,
                           uint32_t history_n)
{
    uint32_t d = vec->prior ? vec->dim - 1 : vec->dim;
    uint32_t want = n_recent < history_n ? n_recent : history_n;
    if (!want && n_recent)
        want = 1; /* the latest, for sim_last */
    if ((size_t)want * d > c->cap) {
        free(c->rows);
        c->cap = (size_t)want * d;
        c->rows = reel_xmalloc(c->cap * sizeof *c->rows);
    }
    c->vec = vec;
    c->d = d;
    c->n = 0;
    c->last = 0;
    c->k = reel_dist_get();
    /* Newest first; a video without a vector (or of norm 0) is skipped
     * but counts towards history_n, as it always has. */
    for (uint32_t h = n_recent, used = 0; h > 0 && used < want; h--, used++) {
        uint32_t v = recent[h - 1];
        if (v >= vec->n || !vec->has[v])
            continue;
        const float *r = reel_vectors_row(vec, v);
        float *o = c->rows + (size_t)c->n * d;
        double nn = 0;
        for (uint32_t j = 0; j < d; j++)
            nn += (double)r[j] * r[j];
        if (!(nn > 0))
            continue;
        float inv = (float)(1 / sqrt(nn));
        for (uint32_t j = 0; j < d; j++)
            o[j] = r[j] * inv;
        if (h == n_recent)
            c->last = 1;
        c->n++;
    }
    c->in_max = history_n ? c->n : 0;
}

void reel_cand_prefetch(const reel_vectors *vec, uint32_t v)
{
    if (v >= vec->n)
        return;
    const char *r = (const char *)reel_vectors_row(vec, v);
    for (size_t o = 0; o < (size_t)vec->dim * sizeof(float); o += 64)
        __builtin_prefetch(r + o);
}

void reel_cand_feats_fill(const reel_cand_ctx *c, uint32_t v, float sim,
                          float rank, reel_cand_feats *out)
{
    const reel_vectors *vec = c->vec;
    out->sim = sim;
    out->rank = rank;
    out->sim_last = out->sim_max = NAN;
    if (v >= vec->n || !vec->has[v] || !c->n)
        return;
    const float *x = reel_vectors_row(vec, v);
    float xx = c->k->ip(x, x, c->d);
    if (!(xx > 0))
        return;
    float inv = 1.0f / sqrtf(xx);
    for (uint32_t i = 0; i < c->n; i++) {
        float cs = c->k->ip(c->rows + (size_t)i * c->d, x, c->d) * inv;
        if (i == 0 && c->last)
            out->sim_last = cs;
        if (i < c->in_max && !(out->sim_max >= cs))
            out->sim_max = cs;
    }
}

uint32_t reel_retrieve(const reel_vectors *vec, const reel_index *ix,
                       const uint32_t *recent, uint32_t n_recent,
                       uint32_t history_n, float decay, const reel_filter *f,
                       uint32_t k, float *q, reel_hit *hits, float *sim)
{
    if (!reel_vectors_query_decay(vec, recent, n_recent, history_n, decay, q))
        return 0;
    /* The filter keeps the seen videos out of the ef best, so the search
     * walks through them and still yields k candidates. ef = 2k finds the
     * deeper candidates more reliably. MovieLens random-75-25, NDCG@10 of
     * full: ef = k 0.3248, 2k 0.3311, k + seen videos (up to 2,000: ten
     * times the search for heavy users) 0.3339. */
    reel_search_params sp = {.ef = 2 * k, .filter = f};
    uint32_t n = 0;
    if (reel_index_search(ix, q, k, &sp, hits, &n))
        return 0;
    for (uint32_t i = 0; i < n; i++)
        sim[i] = sim_of_dist(vec, hits[i].dist);
    return n;
}

float reel_cand_rank(const float *sim, uint32_t n, float s)
{
    if (!isfinite(s))
        return NAN;
    uint32_t r = 0;
    for (uint32_t i = 0; i < n; i++)
        r += sim[i] > s;
    return (float)r;
}

void reel_cand_ranks(const float *sim, uint32_t n, float *rank)
{
    /* reel_retrieve()'s sims come best first: the rank of each is then the
     * index of the first equal one. Otherwise count. */
    for (uint32_t i = 1; i < n; i++)
        if (!(sim[i] <= sim[i - 1])) {
            for (uint32_t j = 0; j < n; j++)
                rank[j] = reel_cand_rank(sim, n, sim[j]);
            return;
        }
    for (uint32_t i = 0; i < n; i++)
        rank[i] = i && sim[i] == sim[i - 1] ? rank[i - 1] : (float)i;
}

/* Moves a uniform sample of min(k, n) of pick[0..n) to its front (a
 * partial Fisher-Yates shuffle); returns the sample's size. */
static uint32_t sample(reel_rng *r, uint32_t *pick, uint32_t n, uint32_t k)
{
    uint32_t want = k < n ? k : n;
    for (uint32_t t = 0; t < want; t++) {
        uint32_t j = t + (uint32_t)reel_rng_below(r, n - t);
        uint32_t tmp = pick[t];
        pick[t] = pick[j];
        pick[j] = tmp;
    }
    return want;
}

struct ctx {
    const reel_dataset *ds;
    const reel_events *e;
    const reel_trainset_opts *o;
    int watch_times; /* the log has watch seconds */
};

static int is_label(const struct ctx *c, uint64_t i)
{
    uint8_t t = c->e->type[i];
    if (!reel_event_is_positive(t))
        return 0;
    switch (c->o->label) {
    case REEL_LABEL_CLICK:
        return 1;
    case REEL_LABEL_LIKE:
        return t == REEL_EV_LIKE || t == REEL_EV_SHARE ||
               (t == REEL_EV_RATING && c->e->rating[i] >= 4);
    default:
        if (!c->watch_times)
            return 1;
        return t == REEL_EV_WATCH && c->e->watch_s[i] >= c->o->watch_seconds;
    }
}

/* (user, video) -> the earliest later time of a label event: an open
 * addressing table filled by a backward pass. */
struct nextmap {
    uint64_t *key; /* user << 32 | video, plus 1; 0 = empty */
    double *ts;
    uint64_t mask;
};

static uint64_t hash64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static double *nextmap_slot(struct nextmap *m, uint64_t key, int insert)
{
    for (uint64_t h = hash64(key) & m->mask;; h = (h + 1) & m->mask) {
        if (m->key[h] == key)
            return &m->ts[h];
        if (!m->key[h]) {
            if (!insert)
                return NULL;
            m->key[h] = key;
            m->ts[h] = INFINITY;
            return &m->ts[h];
        }
    }
}

struct seen {
    uint32_t **list;
    uint32_t *n;
    size_t *cap;
};

int reel_trainset_build(const reel_dataset *ds, const uint8_t *keep,
                        const reel_vectors *vec, const reel_index *ix,
                        const reel_trainset_opts *o, reel_featstate *fs,
                        reel_rows *rows, reel_trainset_stats *st,
                        reel_progress *p, reel_diag *d)
{
    const reel_events *e = reel_dataset_events(ds);
    const reel_users *us = reel_dataset_users(ds);
    struct ctx c = {.ds = ds, .e = e, .o = o};
    memset(st, 0, sizeof *st);
    if (o->candidates < 2 || o->candidates > 10000 || o->history_n < 1 ||
        !(o->recency_decay > 0 && o->recency_decay <= 1))
        return reel_diag_fail(d, REEL_EINVAL,
                              "candidates must be in 2..10000, history >= 1, "
                              "recency decay in (0, 1]");
    uint64_t n_label = 0;
    for (uint64_t i = 0; i < e->n; i++) {
        if (keep && !keep[i])
            continue;
        st->events++;
        if (e->type[i] == REEL_EV_IMPRESSION)
            st->from_impressions = 1;
        if (e->type[i] == REEL_EV_WATCH && isfinite(e->watch_s[i]))
            c.watch_times = 1;
    }
    for (uint64_t i = 0; i < e->n; i++)
        if ((!keep || keep[i]) && is_label(&c, i))
            n_label++;
    /* Impressions: which ones a label event followed. */
    struct nextmap nm = {0};
    uint8_t *impr_label = NULL;
    if (st->from_impressions) {
        uint64_t size = 16;
        while (size < 2 * n_label + 16)
            size *= 2;
        nm.key = reel_xcalloc(size, sizeof *nm.key);
        nm.ts = reel_xmalloc(size * sizeof *nm.ts);
        nm.mask = size - 1;
        impr_label = reel_xcalloc(e->n + 1, 1);
        for (uint64_t i = e->n; i > 0; i--) {
            uint64_t j = i - 1;
            if (keep && !keep[j])
                continue;
            uint64_t key = ((uint64_t)e->user[j] << 32 | e->video[j]) + 1;
            if (is_label(&c, j))
                *nextmap_slot(&nm, key, 1) = e->ts[j];
            else if (e->type[j] == REEL_EV_IMPRESSION) {
                double *t = nextmap_slot(&nm, key, 0);
                impr_label[j] = t && *t - e->ts[j] <= o->follow_s;
            }
        }
        free(nm.key);
        free(nm.ts);
    }
    /* The first event whose rows fit in max_rows, counted from the end. */
    uint64_t start = 0, budget = 0;
    for (uint64_t i = e->n; i > 0; i--) {
        uint64_t j = i - 1;
        if (keep && !keep[j])
            continue;
        if (st->from_impressions ? e->type[j] == REEL_EV_IMPRESSION
                                 : is_label(&c, j))
            budget += st->from_impressions ? 1 : 1 + o->negatives;
        if (budget > o->max_rows) {
            start = i;
            break;
        }
    }
    uint32_t nu = us->n, k = o->candidates;
    struct seen sn = {reel_xcalloc(nu + 1, sizeof *sn.list),
                      reel_xcalloc(nu + 1, sizeof *sn.n),
                      reel_xcalloc(nu + 1, sizeof *sn.cap)};
    float *q = reel_xmalloc(vec->dim * sizeof *q);
    reel_hit *hits = reel_xmalloc(k * sizeof *hits);
    float *sim = reel_xmalloc(k * sizeof *sim);
    uint32_t *pick = reel_xmalloc(k * sizeof *pick);
    reel_cand_ctx cc = {0};
    uint32_t recent[REEL_FEAT_RING];
    const uint32_t *hist = recent;
    reel_rng r;
    reel_rng_seed(&r, o->seed);
    uint32_t group = 0, cur_user = REEL_NONE, n_hits = 0;
    double cur_ts = NAN;
    int have_group = 0, new_group = 0;
    if (p)
        reel_progress_start(p, "features", "events", e->n);
    for (uint64_t i = 0; i < e->n; i++) {
        if (keep && !keep[i])
            continue;
        uint32_t u = e->user[i], v = e->video[i];
        int impr = e->type[i] == REEL_EV_IMPRESSION;
        int make =
            i >= start && (st->from_impressions ? impr : is_label(&c, i));
        uint32_t n_recent = 0;
        if (make) {
            n_recent = reel_featstate_recent(fs, u, recent);
            hist = recent;
            /* A query over more than the ring holds (the whole profile)
             * reads the user's seen list, which is the history too. */
            if (o->history_n > REEL_FEAT_RING) {
                hist = sn.list[u];
                n_recent = sn.n[u];
            }
            /* A video the user has seen cannot be recommended again. */
            for (uint32_t t = 0; t < sn.n[u] && make; t++)
                make = sn.list[u][t] != v;
        }
        if (make) {
            int fresh =
                !st->from_impressions || u != cur_user || e->ts[i] != cur_ts;
            if (fresh) {
                reel_filter f = {.exclude = sn.list[u], .n_exclude = sn.n[u]};
                n_hits = reel_retrieve(vec, ix, hist, n_recent, o->history_n,
                                       o->recency_decay, &f, k, q, hits, sim);
                cur_user = u;
                cur_ts = e->ts[i];
                new_group = 1;
            }
            float s =
                n_hits ? reel_retrieve_sim_of(vec, ix, q, hits, sim, n_hits, v)
                       : NAN;
            float rk = n_hits ? reel_cand_rank(sim, n_hits, s) : NAN;
            if (!n_hits) {
                st->skipped_no_history++;
            } else if (!st->from_impressions && !(rk < (float)n_hits)) {
                /* Retrieval missed it: the ranker never sees such a
                 * video, so it is no lesson for the ranker. */
                st->skipped_not_retrieved++;
            } else {
                float y = st->from_impressions ? impr_label[i] : 1;
                if (new_group) {
                    group += have_group;
                    have_group = 1;
                    new_group = 0;
                }
                float *x = reel_rows_push(rows, y, group, (int64_t)e->ts[i]);
                reel_cand_feats cf;
                reel_cand_ctx_prepare(&cc, vec, hist, n_recent, o->history_n);
                reel_cand_feats_fill(&cc, v, s, rk, &cf);
                reel_features_row(fs, u, v, e->ts[i], &cf, x);
                st->rows++;
                st->positives += y > 0;
                if (!st->from_impressions) {
                    /* Negatives: distinct candidates other than v. */
                    uint32_t np = 0;
                    for (uint32_t t = 0; t < n_hits; t++)
                        if (hits[t].id != v)
                            pick[np++] = t;
                    uint32_t want = sample(&r, pick, np, o->negatives);
                    for (uint32_t t = 0; t < want; t++) {
                        uint32_t h = pick[t];
                        x = reel_rows_push(rows, 0, group, (int64_t)e->ts[i]);
                        reel_cand_feats_fill(
                            &cc, hits[h].id, sim[h],
                            reel_cand_rank(sim, n_hits, sim[h]), &cf);
                        reel_features_row(fs, u, hits[h].id, e->ts[i], &cf, x);
                        st->rows++;
                    }
                }
            }
        }
        reel_featstate_apply(fs, u, v, e->type[i], e->ts[i], e->watch_s[i],
                             e->rating[i]);
        if (reel_event_is_positive(e->type[i])) {
            int dup = 0;
            for (uint32_t t = sn.n[u]; t > 0 && !dup; t--)
                dup = sn.list[u][t - 1] == v;
            if (!dup) {
                REEL_GROW(sn.list[u], sn.cap[u], (size_t)sn.n[u] + 1);
                sn.list[u][sn.n[u]++] = v;
            }
        }
        if (p && (i & 1023) == 0)
            reel_progress_set(p, i);
    }
    if (p)
        reel_progress_finish(p);
    st->groups = have_group ? group + 1 : 0;
    for (uint32_t u = 0; u < nu; u++)
        free(sn.list[u]);
    free(sn.list);
    free(sn.n);
    free(sn.cap);
    free(q);
    free(hits);
    free(sim);
    reel_cand_ctx_free(&cc);
    free(pick);
    free(impr_label);
    if (!st->rows || st->positives == 0 || st->positives == st->rows)
        return reel_diag_fail(d, REEL_EINVAL,
                              "no usable training rows (%llu rows, %llu "
                              "positive): too few events with history",
                              (unsigned long long)st->rows,
                              (unsigned long long)st->positives);
    return 0;
}

int reel_trainset_build_profile(const reel_dataset *ds, const uint8_t *keep,
                                const reel_vectors *vec, const reel_index *ix,
                                const reel_trainset_opts *o, double holdout,
                                reel_featstate *fs, reel_rows *rows,
                                reel_trainset_stats *st, reel_diag *d)
{
    const reel_events *e = reel_dataset_events(ds);
    memset(st, 0, sizeof *st);
    if (!(holdout > 0 && holdout < 1) || o->candidates < 2 ||
        o->candidates > 10000 ||
        !(o->recency_decay > 0 && o->recency_decay <= 1))
        return reel_diag_fail(d, REEL_EINVAL,
                              "holdout must be in (0, 1), candidates in "
                              "2..10000, recency decay in (0, 1]");
    reel_inter x;
    reel_inter_build(ds, keep, &x);
    uint32_t nu = x.n_users, ni = x.n_items, k = o->candidates;
    /* Per user: distinct items, shuffled by (seed, user); the last
     * round(holdout * n) are held out (at least one stays). */
    uint8_t *state = reel_xcalloc(ni + 1, 1); /* 1 profile, 2 held out */
    uint32_t *items = reel_xmalloc((ni + 1) * sizeof *items);
    uint8_t *out_ev = reel_xcalloc(e->n + 1, 1); /* held-out events */
    uint64_t *h_off = reel_xcalloc((size_t)nu + 1, sizeof *h_off);
    uint32_t *h_item = reel_xmalloc((x.off[nu] + 1) * sizeof *h_item);
    uint64_t *p_off = reel_xcalloc((size_t)nu + 1, sizeof *p_off);
    uint32_t *p_item = reel_xmalloc((x.off[nu] + 1) * sizeof *p_item);
    for (uint32_t u = 0; u < nu; u++) {
        uint32_t n = 0;
        for (uint64_t t = x.off[u]; t < x.off[u + 1]; t++)
            if (!state[x.item[t]]) {
                state[x.item[t]] = 1;
                items[n++] = x.item[t];
            }
        uint32_t n_out = n >= 2 ? (uint32_t)llround(holdout * n) : 0;
        if (n_out >= n)
            n_out = n - 1;
        reel_rng r;
        reel_rng_seed2(&r, o->seed, u);
        reel_rng_shuffle(&r, items, n, sizeof *items);
        for (uint32_t i = n - n_out; i < n; i++)
            state[items[i]] = 2;
        h_off[u + 1] = h_off[u];
        p_off[u + 1] = p_off[u];
        for (uint64_t t = x.off[u]; t < x.off[u + 1]; t++) {
            uint32_t it = x.item[t];
            if (state[it] == 2)
                out_ev[x.event[t]] = 1;
        }
        /* The profile in time order (first occurrence), the held out. */
        for (uint64_t t = x.off[u]; t < x.off[u + 1]; t++) {
            uint32_t it = x.item[t];
            if (state[it] == 1) {
                p_item[p_off[u + 1]++] = it;
                state[it] = 3;
            } else if (state[it] == 2) {
                h_item[h_off[u + 1]++] = it;
                state[it] = 4;
            }
        }
        for (uint32_t i = 0; i < n; i++)
            state[items[i]] = 0;
    }
    /* The state as of the end, without the held-out events. */
    double now = 0;
    for (uint64_t i = 0; i < e->n; i++) {
        if ((keep && !keep[i]) || out_ev[i])
            continue;
        reel_featstate_apply(fs, e->user[i], e->video[i], e->type[i], e->ts[i],
                             e->watch_s[i], e->rating[i]);
        now = e->ts[i] > now ? e->ts[i] : now;
        st->events++;
    }
    /* Users in a seeded order, until max_rows. */
    uint32_t *order = reel_xmalloc(((size_t)nu + 1) * sizeof *order);
    for (uint32_t u = 0; u < nu; u++)
        order[u] = u;
    reel_rng r;
    reel_rng_seed(&r, o->seed ^ 0x5eed);
    reel_rng_shuffle(&r, order, nu, sizeof *order);
    float *q = reel_xmalloc(vec->dim * sizeof *q);
    reel_hit *hits = reel_xmalloc(k * sizeof *hits);
    float *sim = reel_xmalloc(k * sizeof *sim);
    uint32_t *pick = reel_xmalloc(k * sizeof *pick);
    reel_cand_ctx cc = {0};
    uint32_t group = 0;
    for (uint32_t oi = 0; oi < nu && st->rows < o->max_rows; oi++) {
        uint32_t u = order[oi];
        uint32_t np_ = (uint32_t)(p_off[u + 1] - p_off[u]);
        uint32_t nh = (uint32_t)(h_off[u + 1] - h_off[u]);
        if (!nh)
            continue;
        const uint32_t *prof = p_item + p_off[u];
        /* The profile is seen; the held-out videos stay findable (they
         * are the positives) but are never taken as negatives. */
        reel_filter f = {.exclude = prof, .n_exclude = np_};
        uint32_t n_hits = reel_retrieve(vec, ix, prof, np_, o->history_n,
                                        o->recency_decay, &f, k, q, hits, sim);
        if (!n_hits) {
            st->skipped_no_history++;
            continue;
        }
        reel_cand_ctx_prepare(&cc, vec, prof, np_, o->history_n);
        for (uint32_t h = 0; h < nh; h++) {
            uint32_t v = h_item[h_off[u] + h];
            float s = reel_retrieve_sim_of(vec, ix, q, hits, sim, n_hits, v);
            float rk = reel_cand_rank(sim, n_hits, s);
            if (!(rk < (float)n_hits)) {
                st->skipped_not_retrieved++;
                continue;
            }
            reel_cand_feats cf;
            reel_cand_feats_fill(&cc, v, s, rk, &cf);
            reel_features_row(fs, u, v, now, &cf,
                              reel_rows_push(rows, 1, group, (int64_t)now));
            st->rows++;
            st->positives++;
            uint32_t npick = 0;
            for (uint32_t t = 0; t < n_hits; t++) {
                int held = 0;
                for (uint32_t j = 0; j < nh && !held; j++)
                    held = hits[t].id == h_item[h_off[u] + j];
                if (!held)
                    pick[npick++] = t;
            }
            uint32_t want = sample(&r, pick, npick, o->negatives);
            for (uint32_t t = 0; t < want; t++) {
                uint32_t hh = pick[t];
                reel_cand_feats_fill(&cc, hits[hh].id, sim[hh],
                                     reel_cand_rank(sim, n_hits, sim[hh]), &cf);
                reel_features_row(fs, u, hits[hh].id, now, &cf,
                                  reel_rows_push(rows, 0, group, (int64_t)now));
                st->rows++;
            }
            group++;
        }
    }
    st->groups = group;
    free(order);
    free(q);
    free(hits);
    free(sim);
    reel_cand_ctx_free(&cc);
    free(pick);
    free(state);
    free(items);
    free(out_ev);
    free(h_off);
    free(h_item);
    free(p_off);
    free(p_item);
    reel_inter_free(&x);
    if (!st->rows || st->positives == 0 || st->positives == st->rows)
        return reel_diag_fail(d, REEL_EINVAL,
                              "no usable training rows (%llu rows, %llu "
                              "positive)",
                              (unsigned long long)st->rows,
                              (unsigned long long)st->positives);
    return 0;
}
