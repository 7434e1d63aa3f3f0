/*
 * index_impl: what the index kinds share privately: the record store,
 * search scratch, and the kind table. Not a public header.
 *
 * Records live in chunks of 2^16 that never move once allocated, so a
 * search may read while another thread adds (it sees a chunk pointer, a
 * link count and links through atomics; see index.h's thread rules).
 * Record layout (all little-endian, docs/formats/index.md):
 *   head (16 bytes) | level-0 links (m0 x u32) | code | padding to 16
 */
#ifndef REEL_INDEX_IMPL_H
#define REEL_INDEX_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "base/secfile.h"
#include "index/distance.h"
#include "index/index.h"

#define CHUNK_BITS 16
#define CHUNK_N (1u << CHUNK_BITS)
#define MAX_CHUNKS (1u << 16)
#define UPPER_BITS 20
#define UPPER_N (1u << UPPER_BITS)
#define MAX_UPPER 4096u
#define LOCK_STRIPES 4096u
#define MAX_LEVEL 31
#define NO_ENTRY UINT64_MAX

enum { FLAG_LIVE = 1, FLAG_DELETED = 2 };

struct node_head {
    _Atomic uint32_t count; /* level-0 links in use */
    uint32_t upper;         /* first upper-level block in the pool */
    _Atomic uint8_t flags;  /* FLAG_LIVE | FLAG_DELETED */
    uint8_t level;          /* top level of this node */
    uint16_t reserved;
    float norm; /* L2 norm of the original vector (informational) */
};
_Static_assert(sizeof(struct node_head) == 16, "record head layout");

/* One query, prepared for the storage kind. */
struct query {
    const float *v; /* normalised for cosine */
    float norm2;    /* ||v||^2, for int8 L2 */
};

struct visited {
    uint16_t *tags;
    uint64_t n;
    uint16_t epoch;
};

struct pair {
    float dist;
    uint32_t id;
};

/* Per-search scratch, pooled. */
struct scratch {
    struct visited vis;
    struct pair *cand, *top, *buf;
    size_t cap_cand, cap_top, cap_buf;
    uint32_t *ex; /* exclusion set, open addressing, UINT32_MAX empty */
    uint32_t ex_mask;
    size_t cap_ex;
    float *qbuf, *tmp; /* normalised query; decoded vector */
    uint32_t *batch;
    size_t cap_batch;
    struct scratch *next;
};

struct kind_ops {
    int (*insert)(reel_index *ix, uint32_t id, const float *vec, int update);
    int (*remove)(reel_index *ix, uint32_t id);
    int (*search)(const reel_index *ix, struct scratch *s,
                  const struct query *q, uint32_t k, uint32_t ef,
                  const reel_filter *f, reel_hit *out, uint32_t *n_out);
};

struct reel_index {
    reel_index_opts o;
    uint32_t m, m0, rec_size, code_off, code_size;
    uint32_t pf_end; /* prefetch a record's vector up to here (<= 1 KiB) */
    double level_mult;
    const reel_dist_kernels *k;
    reel_dist_f32_fn f32_fn; /* the kernel for f32 storage's metric */
    reel_dist_f32x4_fn f32x4_fn;
    const struct kind_ops *ops;

    _Atomic(unsigned char *) chunks[MAX_CHUNKS];
    _Atomic(float *) f32_chunks[MAX_CHUNKS]; /* compact storage only */
    _Atomic(uint32_t *) upper[MAX_UPPER];
    uint8_t chunk_owned[MAX_CHUNKS]; /* 1: malloc'd, 0: mapped or none */
    uint8_t f32_owned[MAX_CHUNKS];
    uint8_t upper_owned[MAX_UPPER];
    uint64_t upper_used; /* under upper_lock */

    _Atomic uint64_t id_limit;
    _Atomic uint64_t n_live, n_deleted;
    _Atomic uint64_t entry; /* (level << 32) | id, or NO_ENTRY */
    _Atomic uint64_t mem;   /* bytes allocated */

    pthread_mutex_t grow_lock, upper_lock, entry_lock, pool_lock;
    pthread_mutex_t locks[LOCK_STRIPES];
    struct scratch *pool;

    reel_secfile *file; /* when opened from a file */
};

/* ----------------------------------------------------- record access */

static inline unsigned char *rec_at(const reel_index *ix, uint32_t id)
{
    unsigned char *c = atomic_load_explicit(
        (_Atomic(unsigned char *) *)&ix->chunks[id >> CHUNK_BITS],
        memory_order_acquire);
    return c ? c + (size_t)(id & (CHUNK_N - 1)) * ix->rec_size : NULL;
}

static inline struct node_head *head_of(unsigned char *rec)
{
    return (struct node_head *)rec;
}

static inline _Atomic uint32_t *links0_of(unsigned char *rec)
{
    return (_Atomic uint32_t *)(rec + sizeof(struct node_head));
}

static inline const unsigned char *code_of(const reel_index *ix,
                                           const unsigned char *rec)
{
    return rec + ix->code_off;
}

static inline uint32_t *upper_at(const reel_index *ix, uint64_t idx)
{
    uint32_t *c = atomic_load_explicit(
        (_Atomic(uint32_t *) *)&ix->upper[idx >> UPPER_BITS],
        memory_order_acquire);
    return c + (idx & (UPPER_N - 1));
}

/* The link count, links and capacity of `rec` at `level`. */
struct linkref {
    _Atomic uint32_t *count;
    _Atomic uint32_t *links;
    uint32_t cap;
};

static inline struct linkref links_at(const reel_index *ix, unsigned char *rec,
                                      int level)
{
    struct linkref r;
    if (level == 0) {
        r.count = &head_of(rec)->count;
        r.links = links0_of(rec);
        r.cap = ix->m0;
    } else {
        uint32_t *b = upper_at(ix, head_of(rec)->upper +
                                       (uint64_t)(level - 1) * (ix->m + 1));
        r.count = (_Atomic uint32_t *)b;
        r.links = (_Atomic uint32_t *)(b + 1);
        r.cap = ix->m;
    }
    return r;
}

static inline int is_live(const unsigned char *rec)
{
    uint8_t f = atomic_load_explicit(&((struct node_head *)rec)->flags,
                                     memory_order_acquire);
    return (f & (FLAG_LIVE | FLAG_DELETED)) == FLAG_LIVE;
}

static inline pthread_mutex_t *lock_of(reel_index *ix, uint32_t id)
{
    return &ix->locks[(id * 2654435761u) >> 20 & (LOCK_STRIPES - 1)];
}

/* Maps a raw float32 kernel result to a distance for the metric. */
static inline float reel__index_from_raw(const reel_index *ix, float x)
{
    return ix->o.metric == REEL_METRIC_L2   ? x
           : ix->o.metric == REEL_METRIC_IP ? -x
                                            : 1.0f - x;
}

/* Distance from a prepared query to a stored code (compact storage). */
float reel__index_qdist_compact(const reel_index *ix, const struct query *q,
                                const unsigned char *code);

/* Distance from a prepared query to a stored code: float32 inline (the
 * hot path of every search), compact kinds out of line. */
static inline float reel__index_qdist(const reel_index *ix,
                                      const struct query *q,
                                      const unsigned char *code)
{
    if (__builtin_expect(ix->o.storage == REEL_VEC_F32, 1)) {
        return reel__index_from_raw(
            ix, ix->f32_fn(q->v, (const float *)code, ix->o.dim));
    }
    return reel__index_qdist_compact(ix, q, code);
}
/* Exact distance from a prepared query to item id's original vector. */
float reel__index_exact(const reel_index *ix, const struct query *q,
                        uint32_t id);
/* Writes vec (already normalised for cosine) as id's code (and original). */
void reel__index_encode(reel_index *ix, uint32_t id, unsigned char *rec,
                        const float *vec);
/* Decodes id's stored vector into out (d floats). */
void reel__index_decode(const reel_index *ix, const unsigned char *rec,
                        float *out);
/* Allocates the chunk holding id (and its f32 twin) if needed. */
unsigned char *reel__index_ensure(reel_index *ix, uint32_t id);
/* Updates the counts and the id limit after id was stored live; `was` is
 * its flags before (a fresh slot, a tombstone, or live for an update). */
void reel__index_made_live(reel_index *ix, uint32_t id, uint8_t was);
/* Reserves upper-level blocks for `levels` levels; returns the index. */
uint64_t reel__index_upper_alloc(reel_index *ix, int levels);
/* Whether id passes the filter (allow bitmap and exclusions). */
int reel__index_passes(const struct scratch *s, const reel_filter *f,
                       uint32_t id);
/* Prepares the visited list for the current id limit; new epoch. */
void reel__visited_reset(const reel_index *ix, struct visited *v);
void reel__scratch_grow(struct pair **p, size_t *cap, size_t need);
/* Scratch from the index's pool (searches and writers alike). */
struct scratch *reel__scratch_get(const reel_index *ix);
void reel__scratch_put(const reel_index *ix, struct scratch *s);

extern const struct kind_ops reel__flat_ops, reel__hnsw_ops;

/* Heap helpers on struct pair arrays: max-heap by (dist, id). */
void reel__heap_push_max(struct pair *h, size_t *n, struct pair x);
void reel__heap_pop_max(struct pair *h, size_t *n);
void reel__heap_push_min(struct pair *h, size_t *n, struct pair x);
void reel__heap_pop_min(struct pair *h, size_t *n);
/* Sorts ascending by (dist, id). */
void reel__pairs_sort(struct pair *p, size_t n);

#endif
