/*
 * FLAT: the exact index, the reference every other kind is tested
 * against. A search scans records in blocks: it scores a block of vectors
 * into a small array with the SIMD kernels, then admits to the top-k heap
 * only those under the current k-th distance.
 */
#include <math.h>
#include <stdlib.h>

#include "index/index_impl.h"

static int flat_insert(reel_index *ix, uint32_t id, const float *vec,
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
    reel__index_encode(ix, id, r, vec);
    atomic_store_explicit(&h->flags, FLAG_LIVE, memory_order_release);
    pthread_mutex_unlock(lk);
    reel__index_made_live(ix, id, flags);
    return 0;
}

static int flat_remove(reel_index *ix, uint32_t id)
{
    unsigned char *r = rec_at(ix, id);
    if (!r)
        return REEL_ENOENT;
    pthread_mutex_t *lk = lock_of(ix, id);
    pthread_mutex_lock(lk);
    if (!is_live(r)) {
        pthread_mutex_unlock(lk);
        return REEL_ENOENT;
    }
    atomic_store_explicit(&head_of(r)->flags, FLAG_LIVE | FLAG_DELETED,
                          memory_order_release);
    pthread_mutex_unlock(lk);
    atomic_fetch_sub(&ix->n_live, 1);
    atomic_fetch_add(&ix->n_deleted, 1);
    return 0;
}

enum { BLOCK = 256 };

static int flat_search(const reel_index *ix, struct scratch *s,
                       const struct query *q, uint32_t k, uint32_t ef,
                       const reel_filter *f, reel_hit *out, uint32_t *n_out)
{
    (void)ef;
    uint64_t lim = atomic_load(&ix->id_limit);
    size_t nt = 0;
    reel__scratch_grow(&s->top, &s->cap_top, (size_t)k + 1);
    float dist[BLOCK];
    uint32_t ids[BLOCK];
    float bound = INFINITY;
    for (uint64_t base = 0; base < lim; base += BLOCK) {
        uint64_t end = base + BLOCK < lim ? base + BLOCK : lim;
        /* Gather the block's candidates, then score them in a row. */
        int n = 0;
        for (uint64_t id = base; id < end; id++) {
            unsigned char *r = rec_at(ix, (uint32_t)id);
            if (!r) {
                id |= CHUNK_N - 1; /* an unallocated chunk: skip it */
                continue;
            }
            if (!is_live(r) || !reel__index_passes(s, f, (uint32_t)id))
                continue;
            ids[n++] = (uint32_t)id;
        }
        for (int i = 0; i < n; i++)
            dist[i] = reel__index_qdist(ix, q, code_of(ix, rec_at(ix, ids[i])));
        for (int i = 0; i < n; i++) {
            if (nt == k && (dist[i] > bound ||
                            (dist[i] == bound && ids[i] > s->top[0].id)))
                continue;
            reel__heap_push_max(s->top, &nt, (struct pair){dist[i], ids[i]});
            if (nt > k)
                reel__heap_pop_max(s->top, &nt);
            if (nt == k)
                bound = s->top[0].dist;
        }
    }
    reel__pairs_sort(s->top, nt);
    for (size_t i = 0; i < nt; i++)
        out[i] = (reel_hit){s->top[i].id, s->top[i].dist};
    *n_out = (uint32_t)nt;
    return 0;
}

const struct kind_ops reel__flat_ops = {
    .insert = flat_insert,
    .remove = flat_remove,
    .search = flat_search,
};
