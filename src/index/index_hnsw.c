/*
 * The HNSW graph (Malkov and Yashunin, 2016), laid out as hnswlib does:
 * level-0 links beside each vector in one record, upper levels in a pool.
 * The search gathers a node's unvisited neighbours first, prefetching
 * their records, then scores them in a row, which keeps the memory
 * system busy while the distance kernels run.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/rng.h"
#include "index/index_impl.h"

static inline void prefetch(const void *p)
{
    __builtin_prefetch(p, 0, 3);
}

static inline uint32_t ld(_Atomic uint32_t *p)
{
    return atomic_load_explicit(p, memory_order_relaxed);
}

static int draw_level(const reel_index *ix, uint32_t id)
{
    /* Seeded by id, not by arrival order: the same seed draws the same
     * levels whatever the threads do. */
    reel_rng r;
    reel_rng_seed2(&r, ix->o.seed, id);
    double u = reel_rng_uniform(&r);
    double l = -log(1.0 - u) * ix->level_mult;
    return l >= MAX_LEVEL ? MAX_LEVEL : (int)l;
}

static inline float dist_to(const reel_index *ix, const struct query *q,
                            uint32_t id)
{
    return reel__index_qdist(ix, q, code_of(ix, rec_at(ix, id)));
}

/* Greedy walk on one upper level: move to a closer neighbour while any. */
static void greedy(const reel_index *ix, const struct query *q, int level,
                   uint32_t *ep, float *ep_dist)
{
    int moved = 1;
    while (moved) {
        moved = 0;
        unsigned char *r = rec_at(ix, *ep);
        if (head_of(r)->level < level)
            return;
        struct linkref l = links_at(ix, r, level);
        uint32_t n = atomic_load_explicit(l.count, memory_order_acquire);
        if (n > l.cap)
            n = l.cap;
        for (uint32_t j = 0; j < n; j++) {
            uint32_t nb = ld(&l.links[j]);
            float dd = dist_to(ix, q, nb);
            if (dd < *ep_dist || (dd == *ep_dist && nb < *ep)) {
                *ep_dist = dd;
                *ep = nb;
                moved = 1;
            }
        }
    }
}

/*
 * The best-first search of one level from `ep`. Fills s->top with up to
 * `ef` results (a max-heap) that satisfy `accept` (live, and for searches
 * the filter), walking through every node. Returns the count.
 */
static size_t search_level(const reel_index *ix, struct scratch *s,
                           const struct query *q, uint32_t ep, float ep_dist,
                           uint32_t ef, int level, const reel_filter *f,
                           int filtered)
{
    struct visited *vis = &s->vis;
    reel__visited_reset(ix, vis);
    uint16_t tag = vis->epoch;
    size_t nc = 0, nt = 0;
    reel__scratch_grow(&s->cand, &s->cap_cand, 64);
    reel__scratch_grow(&s->top, &s->cap_top, (size_t)ef + 1);
    if (s->cap_batch < (size_t)ix->m0 + 1) {
        free(s->batch);
        s->cap_batch = (size_t)ix->m0 + 1;
        s->batch = reel_xmalloc(s->cap_batch * sizeof *s->batch);
    }
    vis->tags[ep] = tag;
    struct pair e = {ep_dist, ep};
    reel__heap_push_min(s->cand, &nc, e);
    unsigned char *er = rec_at(ix, ep);
    if (is_live(er) && (!filtered || reel__index_passes(s, f, ep)))
        reel__heap_push_max(s->top, &nt, e);
    float bound = nt == ef ? s->top[0].dist : INFINITY;
    while (nc) {
        struct pair c = s->cand[0];
        if (c.dist > bound)
            break;
        reel__heap_pop_min(s->cand, &nc);
        unsigned char *r = rec_at(ix, c.id);
        struct linkref l = links_at(ix, r, level);
        uint32_t n = atomic_load_explicit(l.count, memory_order_acquire);
        if (n > l.cap)
            n = l.cap;
        /* Gather the unvisited neighbours, prefetching their records. */
        uint32_t nb_n = 0;
        for (uint32_t j = 0; j < n; j++) {
            uint32_t nb = ld(&l.links[j]);
            if (nb >= vis->n) /* added after this search began */
                continue;
            if (vis->tags[nb] == tag)
                continue;
            vis->tags[nb] = tag;
            unsigned char *nr = rec_at(ix, nb);
            /* The whole vector now (the hardware prefetcher is too slow to
             * follow a jump to a new record), and the head (flags, links),
             * read if the neighbour is admitted, which most are. */
            prefetch(nr);
            for (uint32_t o = ix->code_off; o < ix->pf_end; o += 64)
                prefetch(nr + o);
            s->batch[nb_n++] = nb;
        }
        /* Score the batch: four at a time for float32 (independent
         * accumulators overlap the loads), one at a time otherwise. */
        float dist[2 * REEL_INDEX_MAX_M + 1];
        uint32_t j = 0;
        if (ix->o.storage == REEL_VEC_F32)
            for (; j + 4 <= nb_n; j += 4) {
                const float *x4[4];
                for (int t = 0; t < 4; t++)
                    x4[t] =
                        (const float *)code_of(ix, rec_at(ix, s->batch[j + t]));
                ix->f32x4_fn(q->v, x4, ix->o.dim, dist + j);
                for (int t = 0; t < 4; t++)
                    dist[j + t] = reel__index_from_raw(ix, dist[j + t]);
            }
        for (; j < nb_n; j++)
            dist[j] =
                reel__index_qdist(ix, q, code_of(ix, rec_at(ix, s->batch[j])));
        for (j = 0; j < nb_n; j++) {
            uint32_t nb = s->batch[j];
            float dd = dist[j];
            if (nt < ef || dd < bound) {
                unsigned char *nr = rec_at(ix, nb);
                struct pair p = {dd, nb};
                if (nc + 1 > s->cap_cand)
                    reel__scratch_grow(&s->cand, &s->cap_cand, nc + 1);
                reel__heap_push_min(s->cand, &nc, p);
                if (is_live(nr) &&
                    (!filtered || reel__index_passes(s, f, nb))) {
                    reel__heap_push_max(s->top, &nt, p);
                    if (nt > ef)
                        reel__heap_pop_max(s->top, &nt);
                    if (nt == ef)
                        bound = s->top[0].dist;
                }
            }
        }
    }
    return nt;
}

/* Entry point: its id and top level, or 0 when the graph is empty. */
static int get_entry(const reel_index *ix, uint32_t *id, int *level)
{
    uint64_t e = atomic_load_explicit(&ix->entry, memory_order_acquire);
    if (e == NO_ENTRY)
        return 0;
    *id = (uint32_t)e;
    *level = (int)(e >> 32);
    return 1;
}

/* Distance between two stored items (decoding one when compact). */
static float node_dist(const reel_index *ix, struct scratch *s, uint32_t a,
                       uint32_t b)
{
    reel__index_decode(ix, rec_at(ix, a), s->tmp);
    struct query q = {.v = s->tmp, .norm2 = 0};
    if (ix->o.storage == REEL_VEC_I8)
        for (uint32_t i = 0; i < ix->o.dim; i++)
            q.norm2 += s->tmp[i] * s->tmp[i];
    return dist_to(ix, &q, b);
}

/*
 * Malkov's heuristic: from candidates sorted nearest first, keep one only
 * if it is nearer to the base than to every neighbour kept so far, which
 * spreads links over directions. Writes up to `max` ids into out.
 */
static uint32_t select_neighbors(const reel_index *ix, struct scratch *s,
                                 struct pair *cand, size_t n, uint32_t max,
                                 uint32_t *out)
{
    reel__pairs_sort(cand, n);
    uint32_t kept = 0;
    for (size_t i = 0; i < n && kept < max; i++) {
        int good = 1;
        for (uint32_t j = 0; j < kept && good; j++)
            if (node_dist(ix, s, cand[i].id, out[j]) < cand[i].dist)
                good = 0;
        if (good)
            out[kept++] = cand[i].id;
    }
    return kept;
}

/* Adds `id` to the links of `nb` at `level`, pruning when full. */
static void link_back(reel_index *ix, struct scratch *s, uint32_t nb,
                      uint32_t id, int level)
{
    pthread_mutex_t *lk = lock_of(ix, nb);
    pthread_mutex_lock(lk);
    unsigned char *r = rec_at(ix, nb);
    struct linkref l = links_at(ix, r, level);
    uint32_t n = ld(l.count);
    for (uint32_t j = 0; j < n; j++)
        if (ld(&l.links[j]) == id) {
            pthread_mutex_unlock(lk);
            return;
        }
    if (n < l.cap) {
        atomic_store_explicit(&l.links[n], id, memory_order_relaxed);
        atomic_store_explicit(l.count, n + 1, memory_order_release);
        pthread_mutex_unlock(lk);
        return;
    }
    /* Full: choose the best cap of the old links plus the new one, as seen
     * from nb. */
    struct pair cand[2 * REEL_INDEX_MAX_M + 1];
    size_t nc = 0;
    reel__index_decode(ix, r, s->tmp);
    struct query q = {.v = s->tmp, .norm2 = 0};
    if (ix->o.storage == REEL_VEC_I8)
        for (uint32_t i = 0; i < ix->o.dim; i++)
            q.norm2 += s->tmp[i] * s->tmp[i];
    for (uint32_t j = 0; j < n; j++) {
        uint32_t o = ld(&l.links[j]);
        cand[nc++] = (struct pair){dist_to(ix, &q, o), o};
    }
    cand[nc++] = (struct pair){dist_to(ix, &q, id), id};
    uint32_t keep[2 * REEL_INDEX_MAX_M];
    /* node_dist below reuses s->tmp, so the base's view must be done. */
    uint32_t k = select_neighbors(ix, s, cand, nc, l.cap, keep);
    for (uint32_t j = 0; j < k; j++)
        atomic_store_explicit(&l.links[j], keep[j], memory_order_relaxed);
    atomic_store_explicit(l.count, k, memory_order_release);
    pthread_mutex_unlock(lk);
}

/* Sets id's own links at `level` (replacing any: nothing links to a fresh
 * node yet, see connect, and an update re-selects them). */
static void set_links(reel_index *ix, uint32_t id, int level,
                      const uint32_t *ids, uint32_t n)
{
    pthread_mutex_t *lk = lock_of(ix, id);
    pthread_mutex_lock(lk);
    struct linkref l = links_at(ix, rec_at(ix, id), level);
    if (n > l.cap)
        n = l.cap;
    for (uint32_t j = 0; j < n; j++)
        atomic_store_explicit(&l.links[j], ids[j], memory_order_relaxed);
    atomic_store_explicit(l.count, n, memory_order_release);
    pthread_mutex_unlock(lk);
}

/* Links `id` (its vector in place) into every level up to its own. */
static void connect(reel_index *ix, struct scratch *s, uint32_t id,
                    const float *vec, uint32_t ep, int top_level, int level)
{
    struct query q = {.v = vec, .norm2 = 0};
    for (uint32_t i = 0; i < ix->o.dim; i++)
        q.norm2 += vec[i] * vec[i];
    float ep_dist = dist_to(ix, &q, ep);
    for (int l = top_level; l > level; l--)
        greedy(ix, &q, l, &ep, &ep_dist);
    /* Every level's own links are set before any neighbour links back:
     * until then nothing leads here, so no other insert can find this
     * node with an empty level-0 list and settle for it as its only
     * neighbour (which left such nodes one prune away from unreachable). */
    int from = level < top_level ? level : top_level;
    uint32_t sel[MAX_LEVEL + 1][REEL_INDEX_MAX_M], n_sel[MAX_LEVEL + 1];
    for (int l = from; l >= 0; l--) {
        size_t nt = search_level(ix, s, &q, ep, ep_dist, ix->o.ef_construction,
                                 l, NULL, 0);
        /* The nearest result seeds the next level down. */
        struct pair *cand = s->top;
        size_t nc = 0;
        for (size_t i = 0; i < nt; i++)
            if (cand[i].id != id)
                cand[nc++] = cand[i];
        /* M links of its own at every level, as hnswlib; neighbours keep
         * up to 2M at level 0 (link_back prunes). */
        n_sel[l] = select_neighbors(ix, s, cand, nc, ix->m, sel[l]);
        if (nc) {
            ep = cand[0].id;
            ep_dist = cand[0].dist;
        }
        set_links(ix, id, l, sel[l], n_sel[l]);
    }
    for (int l = from; l >= 0; l--)
        for (uint32_t j = 0; j < n_sel[l]; j++)
            link_back(ix, s, sel[l][j], id, l);
}

static int hnsw_insert(reel_index *ix, uint32_t id, const float *vec,
                       int update)
{
    unsigned char *r = reel__index_ensure(ix, id);
    struct node_head *h = head_of(r);
    pthread_mutex_t *lk = lock_of(ix, id);
    pthread_mutex_lock(lk);
    uint8_t flags = atomic_load(&h->flags);
    int live = (flags & (FLAG_LIVE | FLAG_DELETED)) == FLAG_LIVE;
    if (live && !update) {
        pthread_mutex_unlock(lk);
        return REEL_EEXISTS;
    }
    int fresh = !(flags & FLAG_LIVE);
    int level;
    if (fresh) {
        level = draw_level(ix, id);
        h->level = (uint8_t)level;
        if (level > 0)
            h->upper = (uint32_t)reel__index_upper_alloc(ix, level);
    } else {
        level = h->level;
    }
    reel__index_encode(ix, id, r, vec);
    /* A re-used or updated node keeps its slots; its links are rebuilt
     * below (old in-links to it stay valid: they still lead here). */
    atomic_store_explicit(&h->flags, FLAG_LIVE, memory_order_release);
    pthread_mutex_unlock(lk);
    reel__index_made_live(ix, id, flags);

    uint32_t ep;
    int top;
    if (!get_entry(ix, &ep, &top)) {
        pthread_mutex_lock(&ix->entry_lock);
        if (!get_entry(ix, &ep, &top)) {
            atomic_store(&ix->entry, (uint64_t)level << 32 | id);
            pthread_mutex_unlock(&ix->entry_lock);
            return 0;
        }
        pthread_mutex_unlock(&ix->entry_lock);
    }
    /* A node above the current top holds the entry lock while it links,
     * so two new tops cannot race (rare: one insert in M^top). */
    int raise = level > top;
    if (raise) {
        pthread_mutex_lock(&ix->entry_lock);
        get_entry(ix, &ep, &top);
        raise = level > top;
        if (!raise)
            pthread_mutex_unlock(&ix->entry_lock);
    }
    struct scratch *s = reel__scratch_get(ix);
    if (ep != id)
        connect(ix, s, id, vec, ep, top, level);
    reel__scratch_put(ix, s);
    if (raise) {
        atomic_store(&ix->entry, (uint64_t)level << 32 | id);
        pthread_mutex_unlock(&ix->entry_lock);
    }
    return 0;
}

/* Re-links `nb` at `level` around the deleted `gone`: its candidates are
 * its own links and gone's links, minus gone and other deleted nodes. */
static void repair(reel_index *ix, struct scratch *s, uint32_t nb,
                   uint32_t gone, int level)
{
    pthread_mutex_t *lk = lock_of(ix, nb);
    unsigned char *r = rec_at(ix, nb);
    unsigned char *g = rec_at(ix, gone);
    struct pair cand[4 * REEL_INDEX_MAX_M];
    size_t nc = 0;
    pthread_mutex_lock(lk);
    struct linkref l = links_at(ix, r, level);
    uint32_t n = ld(l.count);
    int linked = 0;
    for (uint32_t j = 0; j < n; j++)
        linked |= ld(&l.links[j]) == gone;
    if (!linked) {
        pthread_mutex_unlock(lk);
        return;
    }
    reel__index_decode(ix, r, s->qbuf);
    struct query q = {.v = s->qbuf, .norm2 = 0};
    for (uint32_t i = 0; i < ix->o.dim; i++)
        q.norm2 += s->qbuf[i] * s->qbuf[i];
    struct linkref gl = links_at(ix, g, level);
    uint32_t gn = ld(gl.count);
    for (int src = 0; src < 2; src++) {
        struct linkref x = src ? gl : l;
        uint32_t xn = src ? gn : n;
        for (uint32_t j = 0; j < xn; j++) {
            uint32_t o = ld(&x.links[j]);
            if (o == gone || o == nb || !is_live(rec_at(ix, o)))
                continue;
            int dup = 0;
            for (size_t t = 0; t < nc && !dup; t++)
                dup = cand[t].id == o;
            if (!dup)
                cand[nc++] = (struct pair){dist_to(ix, &q, o), o};
        }
    }
    uint32_t keep[2 * REEL_INDEX_MAX_M];
    uint32_t k = select_neighbors(ix, s, cand, nc, l.cap, keep);
    for (uint32_t j = 0; j < k; j++)
        atomic_store_explicit(&l.links[j], keep[j], memory_order_relaxed);
    atomic_store_explicit(l.count, k, memory_order_release);
    pthread_mutex_unlock(lk);
}

/* A live replacement for a deleted entry point: the highest-level live
 * node (one pass; deleting the entry point is rare). */
static void replace_entry(reel_index *ix, uint32_t gone)
{
    pthread_mutex_lock(&ix->entry_lock);
    uint32_t ep;
    int top;
    if (!get_entry(ix, &ep, &top) || ep != gone) {
        pthread_mutex_unlock(&ix->entry_lock);
        return;
    }
    uint64_t lim = atomic_load(&ix->id_limit), best = NO_ENTRY;
    int best_level = -1;
    for (uint64_t id = 0; id < lim && best_level < top; id++) {
        unsigned char *r = rec_at(ix, (uint32_t)id);
        if (r && is_live(r) && head_of(r)->level > best_level) {
            best_level = head_of(r)->level;
            best = id;
        }
    }
    atomic_store(&ix->entry, best == NO_ENTRY
                                 ? NO_ENTRY
                                 : (uint64_t)best_level << 32 | best);
    pthread_mutex_unlock(&ix->entry_lock);
}

static int hnsw_remove(reel_index *ix, uint32_t id)
{
    unsigned char *r = rec_at(ix, id);
    if (!r)
        return REEL_ENOENT;
    struct node_head *h = head_of(r);
    pthread_mutex_t *lk = lock_of(ix, id);
    pthread_mutex_lock(lk);
    if (!is_live(r)) {
        pthread_mutex_unlock(lk);
        return REEL_ENOENT;
    }
    atomic_store_explicit(&h->flags, FLAG_LIVE | FLAG_DELETED,
                          memory_order_release);
    pthread_mutex_unlock(lk);
    atomic_fetch_sub(&ix->n_live, 1);
    atomic_fetch_add(&ix->n_deleted, 1);
    /* The tombstone keeps its links, so paths through it still work;
     * its neighbours get links around it so recall does not decay. */
    struct scratch *s = reel__scratch_get(ix);
    for (int l = h->level; l >= 0; l--) {
        struct linkref gl = links_at(ix, r, l);
        uint32_t n = ld(gl.count);
        uint32_t nbs[2 * REEL_INDEX_MAX_M];
        for (uint32_t j = 0; j < n; j++)
            nbs[j] = ld(&gl.links[j]);
        for (uint32_t j = 0; j < n; j++)
            if (is_live(rec_at(ix, nbs[j])))
                repair(ix, s, nbs[j], id, l);
    }
    reel__scratch_put(ix, s);
    replace_entry(ix, id);
    return 0;
}

/* Exact scan of the items passing a selective filter. */
static int scan_passing(const reel_index *ix, struct scratch *s,
                        const struct query *q, uint32_t k, const reel_filter *f,
                        reel_hit *out, uint32_t *n_out)
{
    uint64_t lim = atomic_load(&ix->id_limit);
    if (f->allow_bits < lim)
        lim = f->allow_bits;
    size_t nt = 0;
    reel__scratch_grow(&s->top, &s->cap_top, (size_t)k + 1);
    for (uint64_t w = 0; w * 64 < lim; w++) {
        uint64_t bits = f->allow[w];
        while (bits) {
            uint32_t id = (uint32_t)(w * 64 + (uint64_t)__builtin_ctzll(bits));
            bits &= bits - 1;
            if (id >= lim)
                break;
            unsigned char *r = rec_at(ix, id);
            if (!r || !is_live(r) || !reel__index_passes(s, f, id))
                continue;
            struct pair p = {reel__index_exact(ix, q, id), id};
            if (nt < k || p.dist < s->top[0].dist) {
                reel__heap_push_max(s->top, &nt, p);
                if (nt > k)
                    reel__heap_pop_max(s->top, &nt);
            }
        }
    }
    reel__pairs_sort(s->top, nt);
    for (size_t i = 0; i < nt; i++)
        out[i] = (reel_hit){s->top[i].id, s->top[i].dist};
    *n_out = (uint32_t)nt;
    return 0;
}

static uint64_t count_allowed(const reel_filter *f, uint64_t lim)
{
    uint64_t n = 0, words = (lim < f->allow_bits ? lim : f->allow_bits) / 64;
    for (uint64_t w = 0; w < words; w++)
        n += (uint64_t)__builtin_popcountll(f->allow[w]);
    uint64_t rest = (lim < f->allow_bits ? lim : f->allow_bits) % 64;
    if (rest)
        n += (uint64_t)__builtin_popcountll(f->allow[words] &
                                            ((1ULL << rest) - 1));
    return n;
}

static int hnsw_search(const reel_index *ix, struct scratch *s,
                       const struct query *q, uint32_t k, uint32_t ef,
                       const reel_filter *f, reel_hit *out, uint32_t *n_out)
{
    uint32_t ep;
    int top;
    *n_out = 0;
    if (!get_entry(ix, &ep, &top))
        return 0;
    int filtered = f && (f->allow || f->n_exclude);
    uint64_t lim = atomic_load(&ix->id_limit);
    if (f && f->allow) {
        /* A selective filter: the graph would have to visit ~1/selectivity
         * nodes per result, so scanning the few that pass is both exact
         * and cheaper. Otherwise widen the search by the selectivity. */
        uint64_t pass = count_allowed(f, lim);
        uint64_t live = atomic_load(&ix->n_live);
        if (pass <= 4096 || pass * 64 <= live)
            return scan_passing(ix, s, q, k, f, out, n_out);
        if (live && pass < live) {
            double sel = (double)pass / (double)live;
            double wide = ef / sqrt(sel);
            ef = wide > 8192 ? 8192 : (uint32_t)wide;
        }
    }
    int compact = ix->o.storage != REEL_VEC_F32;
    uint32_t want = ef;
    if (compact) {
        uint32_t rs = ix->o.rescore ? ix->o.rescore : 4 * k;
        if (rs > want)
            want = rs;
    }
    float ep_dist = dist_to(ix, q, ep);
    for (int l = top; l > 0; l--)
        greedy(ix, q, l, &ep, &ep_dist);
    size_t nt = search_level(ix, s, q, ep, ep_dist, want, 0, f, filtered);
    struct pair *res = s->top;
    if (compact)
        for (size_t i = 0; i < nt; i++)
            res[i].dist = reel__index_exact(ix, q, res[i].id);
    reel__pairs_sort(res, nt);
    if (nt > k)
        nt = k;
    for (size_t i = 0; i < nt; i++)
        out[i] = (reel_hit){res[i].id, res[i].dist};
    *n_out = (uint32_t)nt;
    return 0;
}

const struct kind_ops reel__hnsw_ops = {
    .insert = hnsw_insert,
    .remove = hnsw_remove,
    .search = hnsw_search,
};
