#include "eval/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/mem.h"
#include "base/progress.h"
#include "base/rng.h"
#include "eval/eval_impl.h"

static const char *const proto_names[] = {"random-75-25", "leave-last-out",
                                          "replay", "cold-start", "cold-users"};
static const char *const method_names[] = {"popular", "itemknn",  "ann",
                                           "full",    "trending", "segment"};
_Static_assert(sizeof proto_names / sizeof *proto_names == REEL_PROTO__COUNT,
               "a name per protocol");
_Static_assert((int)REEL_EVAL_AGE_GROUPS == (int)REEL_SEGMENT_AGES &&
                   (int)REEL_EVAL_GROUPS ==
                       (int)REEL_SEGMENT_AGES + (int)REEL_SEGMENT_GENDERS,
               "cold-users' groups are the segments' age buckets and genders");
_Static_assert(sizeof method_names / sizeof *method_names == REEL_METHOD__COUNT,
               "a name per method");

const char *reel_protocol_name(enum reel_protocol p)
{
    return (unsigned)p < REEL_PROTO__COUNT ? proto_names[p] : "?";
}

int reel_protocol_parse(const char *s, enum reel_protocol *out)
{
    for (int i = 0; i < REEL_PROTO__COUNT; i++)
        if (!strcmp(s, proto_names[i])) {
            *out = (enum reel_protocol)i;
            return 0;
        }
    return REEL_EINVAL;
}

const char *reel_method_name(enum reel_method m)
{
    return (unsigned)m < REEL_METHOD__COUNT ? method_names[m] : "?";
}

int reel_method_parse(const char *s, enum reel_method *out)
{
    for (int i = 0; i < REEL_METHOD__COUNT; i++)
        if (!strcmp(s, method_names[i])) {
            *out = (enum reel_method)i;
            return 0;
        }
    return REEL_EINVAL;
}

/* Methods that need no history: the only ones a held-out user can be
 * given. */
static const uint32_t no_history = 1u << REEL_METHOD_POPULAR |
                                   1u << REEL_METHOD_TRENDING |
                                   1u << REEL_METHOD_SEGMENT;

int reel_method_applies(enum reel_protocol p, enum reel_method m)
{
    if ((unsigned)m >= REEL_METHOD__COUNT)
        return 0;
    return p != REEL_PROTO_COLD_USERS || (no_history >> m & 1);
}

uint32_t reel_eval_default_methods(enum reel_protocol p)
{
    if (p == REEL_PROTO_COLD_USERS)
        return no_history;
    return 1u << REEL_METHOD_POPULAR | 1u << REEL_METHOD_ITEMKNN |
           1u << REEL_METHOD_ANN | 1u << REEL_METHOD_FULL;
}

reel_eval_opts reel_eval_opts_default(void)
{
    return (reel_eval_opts){.protocol = REEL_PROTO_RANDOM,
                            .k = 10,
                            .seed = 42,
                            .train_ratio = 0.75,
                            .replay_train = 0.8,
                            .cold_share = 0.1,
                            .cold_lambda = 10,
                            .history_n = 0,
                            .recency_decay = 1,
                            .methods = 0,
                            .embedding = 0,
                            .i2v = reel_item2vec_opts_default(),
                            .als = reel_als_opts_default(),
                            .ranker = reel_ranker_opts_default(),
                            .rows = reel_trainset_opts_default()};
}

uint32_t reel_eval_history(const reel_eval_opts *o)
{
    if (o->history_n)
        return o->history_n;
    return o->protocol == REEL_PROTO_RANDOM || o->protocol == REEL_PROTO_COLD
               ? UINT32_MAX
               : 10;
}

/* One evaluation case: the ranked list against a set of relevant items. */
struct acc {
    double precision, recall, ndcg, map, mrr, hr;
    double recall_at[REEL_EVAL_KMAX + 1];
    uint64_t n;
    uint8_t *recommended; /* per item: ever in a top-k */
    double pop_pct;
    uint64_t n_rec;
    double *lat;
    size_t n_lat, cap_lat;
    const reel_users *users; /* COLD_USERS: the cases by group */
    uint32_t g_n[REEL_EVAL_GROUPS];
    double g_ndcg[REEL_EVAL_GROUPS], g_recall[REEL_EVAL_GROUPS];
};

void reel__eval_case(const uint32_t *list, uint32_t n, const uint8_t *rel,
                     uint32_t n_rel, uint32_t k, struct case_metrics *c)
{
    double dcg = 0, idcg = 0, ap = 0;
    uint32_t hits = 0, hits_k = 0;
    memset(c, 0, sizeof *c);
    for (uint32_t r = 0; r < n; r++) {
        if (rel[list[r]]) {
            hits++;
            if (c->mrr == 0)
                c->mrr = 1.0 / (r + 1);
            if (r < k) {
                hits_k++;
                dcg += 1.0 / log2(r + 2.0);
                ap += (double)hits_k / (r + 1);
            }
        }
        if (r < REEL_EVAL_KMAX)
            c->hits_at[r + 1] = hits;
    }
    for (uint32_t r = n; r < REEL_EVAL_KMAX; r++)
        c->hits_at[r + 1] = hits;
    for (uint32_t r = 0; r < k && r < n_rel; r++)
        idcg += 1.0 / log2(r + 2.0);
    c->precision = (double)hits_k / k;
    c->recall = (double)hits_k / n_rel;
    c->ndcg = idcg > 0 ? dcg / idcg : 0;
    c->map = ap / n_rel;
    c->hr = hits_k > 0;
}

/* rel[v] != 0 marks the n_rel relevant items. */
static void score_case(struct acc *a, const struct method *m, uint32_t user,
                       const uint32_t *list, uint32_t n, const uint8_t *rel,
                       uint32_t n_rel, uint32_t k)
{
    struct case_metrics c;
    reel__eval_case(list, n, rel, n_rel, k, &c);
    if (a->users) {
        uint32_t seg = reel_user_segment(a->users, user);
        uint32_t g[2] = {seg / REEL_SEGMENT_GENDERS,
                         REEL_EVAL_AGE_GROUPS + seg % REEL_SEGMENT_GENDERS};
        for (int i = 0; i < 2; i++) {
            a->g_n[g[i]]++;
            a->g_ndcg[g[i]] += c.ndcg;
            a->g_recall[g[i]] += c.recall;
        }
    }
    a->precision += c.precision;
    a->recall += c.recall;
    a->ndcg += c.ndcg;
    a->map += c.map;
    a->mrr += c.mrr;
    a->hr += c.hr;
    for (uint32_t r = 1; r <= REEL_EVAL_KMAX; r++)
        a->recall_at[r] += (double)c.hits_at[r] / n_rel;
    for (uint32_t r = 0; r < n && r < k; r++) {
        a->recommended[list[r]] = 1;
        a->pop_pct += 1.0 - (double)m->pop_rank[list[r]] / m->n_items;
        a->n_rec++;
    }
    a->n++;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void finish(struct acc *a, uint32_t n_items, reel_eval_result *r)
{
    double n = a->n ? (double)a->n : 1;
    r->n_cases = a->n;
    r->precision = a->precision / n;
    r->recall = a->recall / n;
    r->ndcg = a->ndcg / n;
    r->map = a->map / n;
    r->mrr = a->mrr / n;
    r->hr = a->hr / n;
    for (int k = 1; k <= REEL_EVAL_KMAX; k++)
        r->recall_at[k] = a->recall_at[k] / n;
    uint64_t cov = 0;
    for (uint32_t i = 0; i < n_items; i++)
        cov += a->recommended[i];
    r->coverage = n_items ? (double)cov / n_items : 0;
    r->popularity_bias = a->n_rec ? a->pop_pct / (double)a->n_rec : 0;
    for (int g = 0; g < REEL_EVAL_GROUPS; g++) {
        r->group_cases[g] = a->g_n[g];
        r->group_ndcg[g] = a->g_n[g] ? a->g_ndcg[g] / a->g_n[g] : 0;
        r->group_recall[g] = a->g_n[g] ? a->g_recall[g] / a->g_n[g] : 0;
    }
    if (a->n_lat) {
        qsort(a->lat, a->n_lat, sizeof *a->lat, cmp_double);
        r->latency_p50_us = a->lat[a->n_lat / 2];
        r->latency_p99_us = a->lat[(size_t)((double)a->n_lat * 0.99)];
    }
}

/* The split of one user: for RANDOM, a seeded shuffle of the user's
 * distinct items, the first round(ratio * n) train; for LAST, the item
 * interacted with last is the test; for COLD, the held-out videos (a
 * seeded share of those with interactions) are the test and every event
 * on them is out of training; for COLD_USERS, a held-out user's items are
 * all test and none of their events trains. */
struct split {
    uint8_t *keep;   /* per event: in training */
    uint64_t *t_off; /* per user: test items, CSR */
    uint32_t *t_item;
    uint64_t *cold; /* COLD: bitmap of the held-out videos */
    uint32_t n_cold;
    uint32_t n_cold_users; /* COLD_USERS: held-out users with a positive */
    uint32_t n_cold_seg;   /* and of them, those with a segment */
};

/* COLD_USERS: each user is held out with probability cold_share, decided
 * by a hash of (seed, user) (another stream than COLD's videos). */
static int user_held_out(const reel_eval_opts *o, uint32_t u)
{
    reel_rng r;
    reel_rng_seed2(&r, o->seed ^ 0xc01d05e5, u);
    return reel_rng_uniform(&r) < o->cold_share;
}

/* COLD: each video with interactions is held out with probability
 * cold_share, decided by a hash of (seed, video). */
static void pick_cold(const reel_inter *all, const reel_eval_opts *o,
                      struct split *s)
{
    uint32_t ni = all->n_items;
    s->cold = reel_xcalloc(ni / 64 + 1, sizeof *s->cold);
    uint8_t *has = reel_xcalloc(ni + 1, 1);
    for (uint64_t k = 0; k < all->off[all->n_users]; k++)
        has[all->item[k]] = 1;
    for (uint32_t i = 0; i < ni; i++) {
        reel_rng r;
        reel_rng_seed2(&r, o->seed ^ 0xc01d, i);
        if (has[i] && reel_rng_uniform(&r) < o->cold_share) {
            s->cold[i / 64] |= 1ull << (i % 64);
            s->n_cold++;
        }
    }
    free(has);
}

static int is_cold(const struct split *s, uint32_t i)
{
    return s->cold && (s->cold[i / 64] >> (i % 64) & 1);
}

static void make_split(const reel_dataset *ds, const reel_inter *all,
                       const reel_eval_opts *o, struct split *s)
{
    const reel_events *e = reel_dataset_events(ds);
    uint32_t nu = all->n_users, ni = all->n_items;
    s->keep = reel_xcalloc(e->n + 1, 1);
    s->t_off = reel_xcalloc((size_t)nu + 1, sizeof *s->t_off);
    s->t_item = reel_xmalloc((all->off[nu] + 1) * sizeof *s->t_item);
    uint8_t *state = reel_xcalloc(ni + 1, 1); /* 0 unseen, 1 train, 2 test */
    uint32_t *items = reel_xmalloc((ni + 1) * sizeof *items);
    if (o->protocol == REEL_PROTO_COLD)
        pick_cold(all, o, s);
    /* Events that are not positive stay out of training: they never enter
     * the interactions, so keeping them changes nothing. */
    for (uint32_t u = 0; u < nu; u++) {
        uint32_t n = 0;
        for (uint64_t k = all->off[u]; k < all->off[u + 1]; k++)
            if (!state[all->item[k]]) {
                state[all->item[k]] = 1;
                items[n++] = all->item[k];
            }
        uint32_t n_test = 0;
        if (o->protocol == REEL_PROTO_RANDOM && n > 0) {
            reel_rng r;
            reel_rng_seed2(&r, o->seed, u);
            reel_rng_shuffle(&r, items, n, sizeof *items);
            uint32_t n_train = (uint32_t)llround(o->train_ratio * n);
            for (uint32_t i = n_train; i < n; i++)
                state[items[i]] = 2;
            n_test = n - n_train;
        } else if (o->protocol == REEL_PROTO_COLD) {
            /* Only users who also have warm history are cases: the
             * question is whether their taste reaches the new videos. */
            uint32_t n_warm = 0;
            for (uint32_t i = 0; i < n; i++)
                n_warm += !is_cold(s, items[i]);
            for (uint32_t i = 0; i < n; i++)
                if (is_cold(s, items[i]))
                    state[items[i]] = n_warm ? 2 : 3;
        } else if (o->protocol == REEL_PROTO_COLD_USERS && n > 0 &&
                   user_held_out(o, u)) {
            /* Every positive video is a target and nothing of the user
             * trains: at request time the user has no history. */
            for (uint32_t i = 0; i < n; i++)
                state[items[i]] = 2;
            s->n_cold_users++;
            s->n_cold_seg +=
                reel_user_segment(reel_dataset_users(ds), u) != REEL_NO_SEGMENT;
        } else if (o->protocol == REEL_PROTO_LAST && n > 1) {
            uint32_t last = all->item[all->off[u + 1] - 1];
            state[last] = 2;
            n_test = 1;
        }
        s->t_off[u + 1] = s->t_off[u];
        for (uint32_t i = 0; i < n; i++)
            if (state[items[i]] == 2)
                s->t_item[s->t_off[u + 1]++] = items[i];
        (void)n_test;
        for (uint64_t k = all->off[u]; k < all->off[u + 1]; k++)
            if (state[all->item[k]] == 1)
                s->keep[all->event[k]] = 1;
        for (uint32_t i = 0; i < n; i++)
            state[items[i]] = 0;
    }
    free(state);
    free(items);
}

static void split_free(struct split *s)
{
    free(s->cold);
    free(s->keep);
    free(s->t_off);
    free(s->t_item);
}

/* RANDOM and LAST: one case per user with test items. */
static void run_static(const reel_inter *tr, const struct split *s, double now,
                       struct method *m, const reel_eval_opts *o, struct acc *a,
                       reel_progress *p)
{
    uint32_t ni = tr->n_items;
    uint8_t *seen = reel_xcalloc(ni + 1, 1), *rel = reel_xcalloc(ni + 1, 1);
    uint32_t *seen_list =
        reel_xmalloc((tr->off[tr->n_users] + 1) * sizeof *seen_list);
    uint32_t out[REEL_EVAL_KMAX];
    for (uint32_t u = 0; u < tr->n_users; u++) {
        uint64_t t0 = s->t_off[u], t1 = s->t_off[u + 1];
        if (t1 == t0)
            continue;
        uint32_t n_seen = 0;
        for (uint64_t k = tr->off[u]; k < tr->off[u + 1]; k++)
            if (!seen[tr->item[k]]) {
                seen[tr->item[k]] = 1;
                seen_list[n_seen++] = tr->item[k];
            }
        for (uint64_t t = t0; t < t1; t++)
            rel[s->t_item[t]] = 1;
        uint32_t n = reel__method_recommend(
            m, u, now, tr->item + tr->off[u],
            (uint32_t)(tr->off[u + 1] - tr->off[u]), seen, seen_list, n_seen,
            reel_eval_history(o), REEL_EVAL_KMAX, out);
        score_case(a, m, u, out, n, rel, (uint32_t)(t1 - t0), o->k);
        for (uint32_t i = 0; i < n_seen; i++)
            seen[seen_list[i]] = 0;
        for (uint64_t t = t0; t < t1; t++)
            rel[s->t_item[t]] = 0;
        if (p && (u & 63) == 0)
            reel_progress_set(p, u);
    }
    free(seen);
    free(rel);
    free(seen_list);
}

/* REPLAY: the events from `cut` on, in order, against growing histories. */
static void run_replay(const reel_dataset *ds, const reel_inter *tr,
                       uint64_t cut, struct method *m, const reel_eval_opts *o,
                       struct acc *a, reel_progress *p)
{
    const reel_events *e = reel_dataset_events(ds);
    uint32_t nu = tr->n_users, ni = tr->n_items;
    /* Growing histories: each user's training list, then appended. */
    uint32_t **hist = reel_xcalloc(nu + 1, sizeof *hist);
    uint32_t *n_hist = reel_xcalloc(nu + 1, sizeof *n_hist);
    size_t *cap = reel_xcalloc(nu + 1, sizeof *cap);
    for (uint32_t u = 0; u < nu; u++) {
        uint32_t n = (uint32_t)(tr->off[u + 1] - tr->off[u]);
        REEL_GROW(hist[u], cap[u], (size_t)n + 1);
        memcpy(hist[u], tr->item + tr->off[u], n * sizeof **hist);
        n_hist[u] = n;
    }
    uint8_t *seen = reel_xcalloc(ni + 1, 1), *rel = reel_xcalloc(ni + 1, 1);
    uint32_t *seen_list = reel_xmalloc((ni + 1) * sizeof *seen_list);
    uint32_t out[REEL_EVAL_KMAX];
    for (uint64_t i = cut; i < e->n; i++) {
        uint32_t u = e->user[i], v = e->video[i];
        if (!reel_event_is_positive(e->type[i]) ||
            (n_hist[u] && hist[u][n_hist[u] - 1] == v)) {
            /* Not a request: an impression, a skip, or the same video
             * again (click, play, watch). The state still sees it. */
            reel__method_observe(m, i);
            continue;
        }
        uint32_t n_seen = 0;
        for (uint32_t h = 0; h < n_hist[u]; h++)
            if (!seen[hist[u][h]]) {
                seen[hist[u][h]] = 1;
                seen_list[n_seen++] = hist[u][h];
            }
        /* A re-watch cannot be recommended (seen videos are excluded),
         * so it is applied but not scored. */
        if (!seen[v]) {
            double t0 = reel_clock_mono();
            uint32_t n = reel__method_recommend(
                m, u, e->ts[i], hist[u], n_hist[u], seen, seen_list, n_seen,
                reel_eval_history(o), REEL_EVAL_KMAX, out);
            double us = (reel_clock_mono() - t0) * 1e6;
            REEL_GROW(a->lat, a->cap_lat, a->n_lat + 1);
            a->lat[a->n_lat++] = us;
            rel[v] = 1;
            score_case(a, m, u, out, n, rel, 1, o->k);
            rel[v] = 0;
        }
        for (uint32_t t = 0; t < n_seen; t++)
            seen[seen_list[t]] = 0;
        reel__method_observe(m, i);
        REEL_GROW(hist[u], cap[u], (size_t)n_hist[u] + 1);
        hist[u][n_hist[u]++] = v;
        if (p && (i & 255) == 0)
            reel_progress_set(p, i - cut);
    }
    for (uint32_t u = 0; u < nu; u++)
        free(hist[u]);
    free(hist);
    free(n_hist);
    free(cap);
    free(seen);
    free(rel);
    free(seen_list);
}

int reel_eval_run(const reel_dataset *ds, const reel_eval_opts *o,
                  reel_eval_result *res, uint32_t *n_res, reel_diag *d)
{
    *n_res = 0;
    if (o->k < 1 || o->k > REEL_EVAL_KMAX)
        return reel_diag_fail(d, REEL_EINVAL, "k must be in 1..%d",
                              REEL_EVAL_KMAX);
    if (!(o->recency_decay > 0 && o->recency_decay <= 1))
        return reel_diag_fail(d, REEL_EINVAL,
                              "the query's recency decay must be in (0, 1]");
    uint32_t want =
        o->methods ? o->methods : reel_eval_default_methods(o->protocol);
    uint32_t runs = 0;
    for (int mk = 0; mk < REEL_METHOD__COUNT; mk++)
        runs += (want >> mk & 1) &&
                reel_method_applies(o->protocol, (enum reel_method)mk);
    if (!runs)
        return reel_diag_fail(d, REEL_EINVAL,
                              "none of the methods asked for applies under "
                              "%s: its users have no history, so only "
                              "popular, trending and segment do",
                              reel_protocol_name(o->protocol));
    if ((o->protocol == REEL_PROTO_COLD ||
         o->protocol == REEL_PROTO_COLD_USERS) &&
        !(o->cold_share > 0 && o->cold_share < 1))
        return reel_diag_fail(d, REEL_EINVAL,
                              "the held-out share must be in (0, 1)");
    const reel_events *e = reel_dataset_events(ds);
    reel_inter all, tr;
    struct split s = {0};
    uint64_t cut = 0;
    uint8_t *keep = NULL;        /* the training events */
    reel_vectors *shared = NULL; /* ann's and full's vectors */
    if (o->protocol == REEL_PROTO_REPLAY) {
        cut = (uint64_t)(o->replay_train * (double)e->n);
        if (cut >= e->n)
            return reel_diag_fail(d, REEL_EINVAL, "nothing to replay");
        /* Events at the cut's exact time all go to the replay side. */
        while (cut > 0 && e->ts[cut - 1] == e->ts[cut])
            cut--;
        keep = reel_xcalloc(e->n + 1, 1);
        memset(keep, 1, cut);
        reel_inter_build(ds, keep, &tr);
    } else {
        reel_inter_build(ds, NULL, &all);
        make_split(ds, &all, o, &s);
        reel_inter_build(ds, s.keep, &tr);
        reel_inter_free(&all);
        keep = s.keep;
    }
    /* Static protocols ask "now", at the end of the training events. */
    double now = 0;
    for (uint64_t i = 0; i < e->n; i++)
        if (keep[i] && e->ts[i] > now)
            now = e->ts[i];
    int rc = 0;
    for (int mk = 0; mk < REEL_METHOD__COUNT; mk++) {
        if (!(want >> mk & 1) ||
            !reel_method_applies(o->protocol, (enum reel_method)mk))
            continue;
        struct method m;
        double t0 = reel_clock_mono();
        if ((rc = reel__method_fit(&m, (enum reel_method)mk, ds, &tr, keep, o,
                                   s.cold, &shared, d))) {
            reel__method_free(&m);
            break;
        }
        double t1 = reel_clock_mono();
        struct acc a = {0};
        a.recommended = reel_xcalloc(tr.n_items + 1, 1);
        if (o->protocol == REEL_PROTO_COLD_USERS)
            a.users = reel_dataset_users(ds);
        reel_progress p, *pp = o->quiet ? NULL : &p;
        if (pp)
            reel_progress_start(
                pp, method_names[mk],
                o->protocol == REEL_PROTO_REPLAY ? "events" : "users",
                o->protocol == REEL_PROTO_REPLAY ? e->n - cut : tr.n_users);
        if (o->protocol == REEL_PROTO_REPLAY)
            run_replay(ds, &tr, cut, &m, o, &a, pp);
        else
            run_static(&tr, &s, now, &m, o, &a, pp);
        if (pp)
            reel_progress_finish(pp);
        reel_eval_result *r = &res[(*n_res)++];
        memset(r, 0, sizeof *r);
        r->method = (enum reel_method)mk;
        finish(&a, tr.n_items, r);
        if (s.cold) {
            /* Coverage of the held-out videos, the only candidates. */
            uint64_t cov = 0;
            for (uint32_t i = 0; i < tr.n_items; i++)
                cov += a.recommended[i];
            r->coverage = s.n_cold ? (double)cov / s.n_cold : 0;
            r->cold_videos = s.n_cold;
            r->cold_filled = m.n_cold_filled;
        }
        if (o->protocol == REEL_PROTO_COLD_USERS) {
            r->cold_users = s.n_cold_users;
            r->cold_segmented = s.n_cold_seg;
        }
        r->fit_s = t1 - t0;
        r->eval_s = reel_clock_mono() - t1;
        free(a.recommended);
        free(a.lat);
        reel__method_free(&m);
    }
    reel_inter_free(&tr);
    reel_vectors_free(shared);
    if (keep != s.keep)
        free(keep);
    split_free(&s);
    return rc;
}
