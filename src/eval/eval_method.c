/* The methods reel_eval compares, behind one small interface. */
#include "eval/eval_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "embed/coldstart.h"

enum { KNN_NEIGHBOURS = 200 };

#define DAY 86400.0

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

/* By users, most first; equal counts in a hashed order, so that a tie
 * (every held-out video under cold-start has none) says nothing about the
 * order videos were added to the catalogue. */
static int cmp_pop(const void *a, const void *b, void *ctx)
{
    const uint32_t *cnt = ctx;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    if (cnt[x] != cnt[y])
        return cnt[x] > cnt[y] ? -1 : 1;
    uint64_t hx = mix(x + 1), hy = mix(y + 1);
    if (hx != hy)
        return hx < hy ? -1 : 1;
    return (x > y) - (x < y);
}

/* Distinct items of user u in train, in first-seen order, into buf. */
static uint32_t distinct(const reel_inter *x, uint32_t u, uint8_t *mark,
                         uint32_t *buf)
{
    uint32_t n = 0;
    for (uint64_t k = x->off[u]; k < x->off[u + 1]; k++)
        if (!mark[x->item[k]]) {
            mark[x->item[k]] = 1;
            buf[n++] = x->item[k];
        }
    for (uint32_t i = 0; i < n; i++)
        mark[buf[i]] = 0;
    return n;
}

static void fit_popular(struct method *m, const reel_inter *tr)
{
    uint32_t ni = tr->n_items;
    m->pop_count = reel_xcalloc(ni + 1, sizeof *m->pop_count);
    uint8_t *mark = reel_xcalloc(ni + 1, 1);
    uint32_t *buf = reel_xmalloc((ni + 1) * sizeof *buf);
    /* Popularity counts users, not repeats. */
    for (uint32_t u = 0; u < tr->n_users; u++) {
        uint32_t n = distinct(tr, u, mark, buf);
        for (uint32_t i = 0; i < n; i++)
            m->pop_count[buf[i]]++;
    }
    m->pop_order = reel_xmalloc((ni + 1) * sizeof *m->pop_order);
    for (uint32_t i = 0; i < ni; i++)
        m->pop_order[i] = i;
    qsort_r(m->pop_order, ni, sizeof *m->pop_order, cmp_pop, m->pop_count);
    m->pop_rank = reel_xmalloc((ni + 1) * sizeof *m->pop_rank);
    for (uint32_t i = 0; i < ni; i++)
        m->pop_rank[m->pop_order[i]] = i;
    free(mark);
    free(buf);
}

/* Videos by decayed training positives: each interaction weighs
 * 2^-(days before the last training event), the server's trending count
 * (src/reco/engine.c, half-life one day). Equal weights, and weights
 * that decay to nothing in a double (a long dataset's old years), keep
 * the popular order. */
struct trend_ctx {
    const double *w;
    const uint32_t *pop_rank;
};

static int cmp_trend(const void *a, const void *b, void *ctx)
{
    const struct trend_ctx *c = ctx;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    if (c->w[x] != c->w[y])
        return c->w[x] > c->w[y] ? -1 : 1;
    return (c->pop_rank[x] > c->pop_rank[y]) -
           (c->pop_rank[x] < c->pop_rank[y]);
}

static void fit_trending(struct method *m, const reel_inter *tr)
{
    uint32_t ni = tr->n_items;
    uint64_t ne = tr->off[tr->n_users];
    double last = 0;
    for (uint64_t k = 0; k < ne; k++)
        last = tr->ts[k] > last ? tr->ts[k] : last;
    double *w = reel_xcalloc(ni + 1, sizeof *w);
    for (uint64_t k = 0; k < ne; k++)
        w[tr->item[k]] += exp2(-(last - tr->ts[k]) / DAY);
    m->trend_order = reel_xmalloc((ni + 1) * sizeof *m->trend_order);
    memcpy(m->trend_order, m->pop_order, ni * sizeof *m->trend_order);
    struct trend_ctx c = {w, m->pop_rank};
    qsort_r(m->trend_order, ni, sizeof *m->trend_order, cmp_trend, &c);
    free(w);
}

/* Per segment, its videos by the number of its training users who
 * interacted with them (users, as popular counts; the server counts
 * positive events), ties in popular's hashed order. Videos no user of the
 * segment touched are not in its list. */
static void fit_segment(struct method *m, const reel_dataset *ds,
                        const reel_inter *tr)
{
    uint32_t ni = tr->n_items, nu = tr->n_users;
    m->users = reel_dataset_users(ds);
    uint32_t *seg = reel_xmalloc(((size_t)nu + 1) * sizeof *seg);
    for (uint32_t u = 0; u < nu; u++)
        seg[u] = reel_user_segment(m->users, u);
    uint32_t *cnt = reel_xcalloc(ni + 1, sizeof *cnt);
    uint32_t *touched = reel_xmalloc((ni + 1) * sizeof *touched);
    uint8_t *mark = reel_xcalloc(ni + 1, 1);
    uint32_t *buf = reel_xmalloc((ni + 1) * sizeof *buf);
    m->seg_off = reel_xcalloc(REEL_SEGMENTS + 1, sizeof *m->seg_off);
    size_t cap = 0;
    for (uint32_t s = 0; s < REEL_SEGMENTS; s++) {
        uint32_t nt = 0;
        for (uint32_t u = 0; u < nu && s != REEL_NO_SEGMENT; u++) {
            if (seg[u] != s)
                continue;
            uint32_t n = distinct(tr, u, mark, buf);
            for (uint32_t i = 0; i < n; i++)
                if (cnt[buf[i]]++ == 0)
                    touched[nt++] = buf[i];
        }
        qsort_r(touched, nt, sizeof *touched, cmp_pop, cnt);
        REEL_GROW(m->seg_item, cap, m->seg_off[s] + nt + 1);
        memcpy(m->seg_item + m->seg_off[s], touched, nt * sizeof *touched);
        m->seg_off[s + 1] = m->seg_off[s] + nt;
        for (uint32_t t = 0; t < nt; t++)
            cnt[touched[t]] = 0;
    }
    free(seg);
    free(cnt);
    free(touched);
    free(mark);
    free(buf);
}

struct simpair {
    float sim;
    uint32_t id;
};

static int cmp_sim(const void *a, const void *b)
{
    const struct simpair *x = a, *y = b;
    if (x->sim != y->sim)
        return x->sim > y->sim ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Item-item cosine over binary co-occurrence, top neighbours per item. */
static void fit_itemknn(struct method *m, const reel_inter *tr)
{
    uint32_t ni = tr->n_items, nu = tr->n_users;
    uint8_t *mark = reel_xcalloc(ni + 1, 1);
    uint32_t *buf = reel_xmalloc((ni + 1) * sizeof *buf);
    /* Distinct items per user (CSR) and users per item (its transpose). */
    uint64_t *uoff = reel_xcalloc((size_t)nu + 1, sizeof *uoff);
    uint32_t *uitems = reel_xmalloc((tr->off[nu] + 1) * sizeof *uitems);
    uint64_t *ioff = reel_xcalloc((size_t)ni + 2, sizeof *ioff);
    for (uint32_t u = 0; u < nu; u++) {
        uint32_t n = distinct(tr, u, mark, buf);
        memcpy(uitems + uoff[u], buf, n * sizeof *buf);
        uoff[u + 1] = uoff[u] + n;
        for (uint32_t i = 0; i < n; i++)
            ioff[buf[i] + 1]++;
    }
    for (uint32_t i = 0; i < ni; i++)
        ioff[i + 1] += ioff[i];
    uint32_t *iusers = reel_xmalloc((ioff[ni] + 1) * sizeof *iusers);
    uint64_t *at = reel_xmalloc(((size_t)ni + 1) * sizeof *at);
    memcpy(at, ioff, ((size_t)ni + 1) * sizeof *at);
    for (uint32_t u = 0; u < nu; u++)
        for (uint64_t k = uoff[u]; k < uoff[u + 1]; k++)
            iusers[at[uitems[k]]++] = u;
    free(at);
    uint32_t *cnt = reel_xcalloc(ni + 1, sizeof *cnt);
    uint32_t *touched = reel_xmalloc((ni + 1) * sizeof *touched);
    struct simpair *cand = reel_xmalloc((ni + 1) * sizeof *cand);
    m->nb_off = reel_xcalloc((size_t)ni + 1, sizeof *m->nb_off);
    size_t cap = 0;
    for (uint32_t i = 0; i < ni; i++) {
        uint32_t nt = 0;
        for (uint64_t a = ioff[i]; a < ioff[i + 1]; a++) {
            uint32_t u = iusers[a];
            for (uint64_t k = uoff[u]; k < uoff[u + 1]; k++) {
                uint32_t j = uitems[k];
                if (j == i)
                    continue;
                if (cnt[j]++ == 0)
                    touched[nt++] = j;
            }
        }
        double ni_ = (double)(ioff[i + 1] - ioff[i]);
        for (uint32_t t = 0; t < nt; t++) {
            uint32_t j = touched[t];
            double nj = (double)(ioff[j + 1] - ioff[j]);
            cand[t] = (struct simpair){(float)(cnt[j] / sqrt(ni_ * nj)), j};
            cnt[j] = 0;
        }
        qsort(cand, nt, sizeof *cand, cmp_sim);
        uint32_t keep = nt < KNN_NEIGHBOURS ? nt : KNN_NEIGHBOURS;
        REEL_GROW(m->nb_id, cap, m->nb_off[i] + keep);
        m->nb_sim = reel_xrealloc(m->nb_sim, cap * sizeof *m->nb_sim);
        for (uint32_t t = 0; t < keep; t++) {
            m->nb_id[m->nb_off[i] + t] = cand[t].id;
            m->nb_sim[m->nb_off[i] + t] = cand[t].sim;
        }
        m->nb_off[i + 1] = m->nb_off[i] + keep;
    }
    free(cand);
    free(cnt);
    free(touched);
    free(iusers);
    free(ioff);
    free(uitems);
    free(uoff);
    free(mark);
    free(buf);
}

static int allowed(const struct method *m, uint32_t i)
{
    return !m->allow || (m->allow[i / 64] >> (i % 64) & 1);
}

static int fit_ann(struct method *m, const reel_dataset *ds,
                   const reel_inter *tr, const reel_eval_opts *o,
                   reel_vectors **shared, reel_diag *d)
{
    reel_progress p, *pp = o->quiet ? NULL : &p;
    int rc = 0;
    if (*shared) /* ann and full learn the same vectors once */
        m->vec = reel_vectors_dup(*shared);
    else if (o->vectors)
        m->vec = reel_vectors_dup(o->vectors);
    else if ((rc = o->embedding == 1
                       ? reel_als_train(tr, &o->als, pp, &m->vec)
                       : reel_item2vec_train(tr, &o->i2v, pp, &m->vec)))
        return reel_diag_fail(d, rc, "%s training failed: %s",
                              o->embedding == 1 ? "ALS" : "item2vec",
                              reel_strerror(rc));
    else
        *shared = reel_vectors_dup(m->vec);
    /* Cold start: the held-out videos have no vectors (no training
     * events); the ridge map from catalogue features gives them one. */
    if (m->allow && (rc = reel_cold_fill(ds, NULL, m->vec, o->cold_lambda,
                                         &m->n_cold_filled)))
        return reel_diag_fail(d, rc, "cold-start map failed: %s",
                              reel_strerror(rc));
    if ((rc = reel_retrieve_index(m->vec, &m->ix, d)))
        return rc;
    m->qbuf = reel_xmalloc(m->vec->dim * sizeof *m->qbuf);
    m->hits = reel_xmalloc((REEL_EVAL_KMAX + 1) * sizeof *m->hits);
    return 0;
}

/* The design's whole path: ANN's retrieval, then the ranker, trained on
 * rows from the training events as of each event's time. */
static int fit_full(struct method *m, const reel_dataset *ds,
                    const reel_inter *tr, const uint8_t *keep,
                    const reel_eval_opts *o, reel_vectors **shared,
                    reel_diag *d)
{
    int rc = fit_ann(m, ds, tr, o, shared, d);
    if (rc)
        return rc;
    m->ds = ds;
    reel_featstate_new(ds, &m->fs);
    reel_rows rows;
    reel_rows_init(&rows, REEL_F__COUNT);
    reel_trainset_opts to = o->rows;
    to.history_n = m->history_n;
    to.recency_decay = m->recency_decay;
    reel_trainset_stats st;
    reel_progress p, *pp = o->quiet ? NULL : &p;
    /* random-75-25 has no time: its ranker learns from profiles with a
     * share held out, the protocol's own task; the others from what came
     * next. */
    if (o->protocol == REEL_PROTO_RANDOM)
        rc = reel_trainset_build_profile(ds, keep, m->vec, m->ix, &to,
                                         1 - o->train_ratio, m->fs, &rows, &st,
                                         d);
    else
        rc = reel_trainset_build(ds, keep, m->vec, m->ix, &to, m->fs, &rows,
                                 &st, pp, d);
    reel_ranker_report rep;
    if (!rc)
        rc =
            reel_ranker_train(&rows, &o->ranker, NULL, pp, &m->ranker, &rep, d);
    reel_rows_free(&rows);
    if (rc)
        return rc;
    if (!o->quiet)
        fprintf(stderr,
                "full: %llu rows (%llu positive, %llu groups; skipped: %llu "
                "without history, %llu not retrieved); %s kept %u rounds, "
                "validation AUC %.4f (popularity alone %.4f), logloss %.4f\n",
                (unsigned long long)st.rows, (unsigned long long)st.positives,
                (unsigned long long)st.groups,
                (unsigned long long)st.skipped_no_history,
                (unsigned long long)st.skipped_not_retrieved,
                reel_ranker_kind_name(o->ranker.kind), rep.rounds,
                rep.valid_auc, rep.popularity_auc, rep.valid_logloss);
    m->reco = (reel_reco){.ds = ds,
                          .vec = m->vec,
                          .ix = m->ix,
                          .ranker = m->ranker,
                          .o = reel_reco_opts_default()};
    m->reco.o.candidates = o->rows.candidates;
    m->scratch = reel_reco_scratch_new(&m->reco);
    m->items = reel_xmalloc((REEL_EVAL_KMAX + 1) * sizeof *m->items);
    return 0;
}

int reel__method_fit(struct method *m, enum reel_method kind,
                     const reel_dataset *ds, const reel_inter *tr,
                     const uint8_t *keep, const reel_eval_opts *o,
                     const uint64_t *allow, reel_vectors **shared, reel_diag *d)
{
    memset(m, 0, sizeof *m);
    m->kind = kind;
    m->allow = allow;
    m->history_n = reel_eval_history(o);
    m->recency_decay = o->recency_decay;
    m->n_items = tr->n_items;
    m->score = reel_xcalloc(tr->n_items + 1, sizeof *m->score);
    m->touched = reel_xmalloc((tr->n_items + 1) * sizeof *m->touched);
    /* Every method falls back on popularity (cold users), and the report's
     * popularity bias needs the ranks. */
    fit_popular(m, tr);
    if (kind == REEL_METHOD_ITEMKNN) {
        fit_itemknn(m, tr);
        /* Scratch for ranking, so a request allocates nothing. */
        m->ranked = reel_xmalloc((tr->n_items + 1) * sizeof *m->ranked);
    } else if (kind == REEL_METHOD_TRENDING)
        fit_trending(m, tr);
    else if (kind == REEL_METHOD_SEGMENT)
        fit_segment(m, ds, tr);
    else if (kind == REEL_METHOD_ANN)
        return fit_ann(m, ds, tr, o, shared, d);
    else if (kind == REEL_METHOD_FULL)
        return fit_full(m, ds, tr, keep, o, shared, d);
    return 0;
}

void reel__method_free(struct method *m)
{
    free(m->pop_count);
    free(m->pop_order);
    free(m->pop_rank);
    free(m->trend_order);
    free(m->seg_off);
    free(m->seg_item);
    free(m->nb_off);
    free(m->nb_id);
    free(m->nb_sim);
    free(m->score);
    free(m->touched);
    free(m->ranked);
    free(m->qbuf);
    free(m->hits);
    reel_index_free(m->ix);
    reel_vectors_free(m->vec);
    reel_featstate_free(m->fs);
    reel_ranker_free(m->ranker);
    reel_reco_scratch_free(m->scratch);
    free(m->items);
    memset(m, 0, sizeof *m);
}

/* Tops up out[n..k) with the first unseen items of order (every item)
 * not already in it. */
static uint32_t fill_order(const struct method *m, const uint32_t *order,
                           const uint8_t *seen, uint32_t *out, uint32_t n,
                           uint32_t k)
{
    for (uint32_t r = 0; r < m->n_items && n < k; r++) {
        uint32_t it = order[r];
        if (seen[it] || !allowed(m, it))
            continue;
        int dup = 0;
        for (uint32_t t = 0; t < n && !dup; t++)
            dup = out[t] == it;
        if (!dup)
            out[n++] = it;
    }
    return n;
}

/* Tops up out[n..k) with the most popular unseen items not already in it. */
static uint32_t fill_popular(const struct method *m, const uint8_t *seen,
                             uint32_t *out, uint32_t n, uint32_t k)
{
    return fill_order(m, m->pop_order, seen, out, n, k);
}

/* The server's cold-start answer (cold_list() in src/reco/engine.c): the
 * segment's list and the global one round-robin, the segment's first,
 * each turn taking the list's next video that is neither seen nor already
 * taken; a list that runs out passes its turns. The global list here is
 * popular (the server's also mixes in trending and new videos). */
static uint32_t rec_segment(const struct method *m, uint32_t user,
                            const uint8_t *seen, uint32_t k, uint32_t *out)
{
    uint32_t s = reel_user_segment(m->users, user);
    const uint32_t *l[2] = {m->seg_item + m->seg_off[s], m->pop_order};
    uint64_t nl[2] = {m->seg_off[s + 1] - m->seg_off[s], m->n_items};
    uint64_t at[2] = {0, 0};
    uint32_t n = 0;
    for (int j = 0; n < k && (at[0] < nl[0] || at[1] < nl[1]); j ^= 1)
        while (at[j] < nl[j]) {
            uint32_t v = l[j][at[j]++];
            if (seen[v] || !allowed(m, v))
                continue;
            int dup = 0;
            for (uint32_t t = 0; t < n && !dup; t++)
                dup = out[t] == v;
            if (dup)
                continue;
            out[n++] = v;
            break;
        }
    return n;
}

static int cmp_scored(const void *a, const void *b)
{
    const struct scored *x = a, *y = b;
    if (x->s != y->s)
        return x->s > y->s ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static uint32_t rec_itemknn(struct method *m, const uint32_t *hist,
                            uint32_t n_hist, const uint8_t *seen, uint32_t k,
                            uint32_t *out)
{
    uint32_t nt = 0;
    for (uint32_t h = 0; h < n_hist; h++) {
        uint32_t i = hist[h];
        for (uint64_t t = m->nb_off[i]; t < m->nb_off[i + 1]; t++) {
            uint32_t j = m->nb_id[t];
            if (seen[j] || !allowed(m, j))
                continue;
            if (m->score[j] == 0)
                m->touched[nt++] = j;
            m->score[j] += m->nb_sim[t];
        }
    }
    struct scored *c = m->ranked;
    for (uint32_t t = 0; t < nt; t++) {
        c[t] = (struct scored){m->score[m->touched[t]], m->touched[t]};
        m->score[m->touched[t]] = 0;
    }
    /* A partial selection would do; nt is small next to the catalogue. */
    qsort(c, nt, sizeof *c, cmp_scored);
    uint32_t n = nt < k ? nt : k;
    for (uint32_t t = 0; t < n; t++)
        out[t] = c[t].id;
    return fill_popular(m, seen, out, n, k);
}

static uint32_t rec_ann(struct method *m, const uint32_t *hist, uint32_t n_hist,
                        const uint8_t *seen, const uint32_t *seen_list,
                        uint32_t n_seen, uint32_t history_n, uint32_t k,
                        uint32_t *out)
{
    /* The server's query: the (recency-weighted) mean of the last N
     * history videos. */
    uint32_t used = reel_vectors_query_decay(m->vec, hist, n_hist, history_n,
                                             m->recency_decay, m->qbuf);
    uint32_t n = 0;
    if (used) {
        reel_filter f = {.exclude = seen_list,
                         .n_exclude = n_seen,
                         .allow = m->allow,
                         .allow_bits = m->allow ? m->n_items : 0};
        uint32_t ef = 2 * k + n_seen;
        reel_search_params p = {.ef = ef > 2000 ? 2000 : ef, .filter = &f};
        reel_hit *hits = m->hits;
        if (reel_index_search(m->ix, m->qbuf, k, &p, hits, &n))
            n = 0;
        for (uint32_t t = 0; t < n; t++)
            out[t] = hits[t].id;
    }
    return fill_popular(m, seen, out, n, k);
}

static uint32_t rec_full(struct method *m, uint32_t user, double now,
                         const uint32_t *hist, uint32_t n_hist,
                         const uint8_t *seen, const uint32_t *seen_list,
                         uint32_t n_seen, uint32_t history_n, uint32_t k,
                         uint32_t *out)
{
    /* The served path itself (src/reco). */
    reel_filter f = {.exclude = seen_list,
                     .n_exclude = n_seen,
                     .allow = m->allow,
                     .allow_bits = m->allow ? m->n_items : 0};
    m->reco.o.history_n = history_n;
    m->reco.o.recency_decay = m->recency_decay;
    uint32_t n = reel_reco_rank(&m->reco, m->fs, user, now, hist, n_hist, &f, k,
                                m->scratch, m->items);
    for (uint32_t i = 0; i < n; i++)
        out[i] = m->items[i].video;
    return fill_popular(m, seen, out, n, k);
}

void reel__method_observe(struct method *m, uint64_t e)
{
    if (!m->fs)
        return;
    const reel_events *ev = reel_dataset_events(m->ds);
    reel_featstate_apply(m->fs, ev->user[e], ev->video[e], ev->type[e],
                         ev->ts[e], ev->watch_s[e], ev->rating[e]);
}

uint32_t reel__method_recommend(struct method *m, uint32_t user, double now,
                                const uint32_t *hist, uint32_t n_hist,
                                const uint8_t *seen, const uint32_t *seen_list,
                                uint32_t n_seen, uint32_t history_n, uint32_t k,
                                uint32_t *out)
{
    switch (m->kind) {
    case REEL_METHOD_POPULAR:
        return fill_popular(m, seen, out, 0, k);
    case REEL_METHOD_TRENDING:
        return fill_order(m, m->trend_order, seen, out, 0, k);
    case REEL_METHOD_SEGMENT:
        return rec_segment(m, user, seen, k, out);
    case REEL_METHOD_ITEMKNN:
        return rec_itemknn(m, hist, n_hist, seen, k, out);
    case REEL_METHOD_ANN:
        return rec_ann(m, hist, n_hist, seen, seen_list, n_seen, history_n, k,
                       out);
    case REEL_METHOD_FULL:
        return rec_full(m, user, now, hist, n_hist, seen, seen_list, n_seen,
                        history_n, k, out);
    default:
        return 0;
    }
}
