/*
 * index: the vector index that retrieval asks for nearest neighbours.
 *
 * Two kinds behind one interface: FLAT, an exact blocked SIMD scan (the
 * reference every other kind is tested against), and HNSW, the
 * hierarchical navigable small-world graph (Malkov and Yashunin). Metrics:
 * inner product, cosine (vectors and queries are L2-normalised on the way
 * in) and squared Euclidean distance. Dimensions 1..4096; ids are uint32
 * item numbers chosen by the caller (0-based row numbers for files; the
 * dataset's video numbers in serving), dense or with gaps.
 *
 * Storage: one record per id in 64k-record chunks that never move: a small
 * head, the level-0 links and the vector, contiguous (hnswlib's layout);
 * upper-level links in a separate pool. Vectors are float32, or compact
 * (bf16, or int8 with a per-vector scale) with the float32 originals kept
 * aside (in memory or, after load, mapped from the file and paged in only
 * when touched) to re-score the best candidates exactly.
 *
 * Results: a reel_hit has the id and `dist`, smaller is nearer: -<q, x>
 * for IP, 1 - cos for cosine, ||q - x||^2 for L2. Ties break by id.
 *
 * Filters: a search can exclude a list of ids (what the user watched) and
 * keep only ids whose bit is set in an allow bitmap (a language, an age
 * rating). Filtered-out and deleted items still route the graph search but
 * are never returned; when few items pass, the search scans them exactly.
 *
 * Thread rules: reel_index_search() may run on any number of threads at
 * once, concurrently with reel_index_add/update/delete, which may also run
 * on several threads at once for different ids (that is how the parallel
 * build works). Updating a vector that a search is reading may give that
 * search a distance mixing old and new coordinates for that one item; it
 * is never unsafe. reel_index_save() and reel_index_free() need all other
 * calls finished. Ownership: reel_index_open() maps the file; the index
 * owns the mapping and everything it allocates, and takes nothing from
 * the caller (vectors passed in are copied).
 */
#ifndef REEL_INDEX_INDEX_H
#define REEL_INDEX_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/progress.h"

enum reel_index_kind { REEL_INDEX_FLAT = 0, REEL_INDEX_HNSW = 1 };

enum reel_metric {
    REEL_METRIC_IP = 0,
    REEL_METRIC_COSINE = 1,
    REEL_METRIC_L2 = 2
};

enum reel_vec_storage {
    REEL_VEC_F32 = 0,
    REEL_VEC_BF16 = 1, /* 2 bytes per dimension */
    REEL_VEC_I8 = 2,   /* 1 byte per dimension + 8 bytes */
};

enum { REEL_INDEX_MAX_DIM = 4096, REEL_INDEX_MAX_M = 128 };

typedef struct reel_index_opts {
    enum reel_index_kind kind;
    enum reel_metric metric;
    uint32_t dim;
    uint32_t m;               /* HNSW links per node above level 0 (16) */
    uint32_t ef_construction; /* HNSW build breadth (200) */
    uint64_t seed;            /* HNSW level draws (42) */
    enum reel_vec_storage storage;
    uint32_t rescore; /* compact storage: exact re-scoring of this many
                         candidates (0: max(4k, ef)) */
} reel_index_opts;

/* Defaults for a kind, metric and dimension. */
reel_index_opts reel_index_opts_default(enum reel_index_kind kind,
                                        enum reel_metric metric, uint32_t dim);

typedef struct reel_index reel_index;

int reel_index_new(const reel_index_opts *o, reel_index **out, reel_diag *d);
void reel_index_free(reel_index *ix);

/* Adds item `id` (REEL_EEXISTS if it is live already). */
int reel_index_add(reel_index *ix, uint32_t id, const float *vec);
/* Adds n items with ids first, first + 1, ... from rows of `vecs` on
 * `threads` threads (0: all CPUs), drawing progress in p (may be NULL). */
int reel_index_add_batch(reel_index *ix, uint32_t first, const float *vecs,
                         uint64_t n, int threads, reel_progress *p);
/* Replaces item id's vector (adds it when absent). */
int reel_index_update(reel_index *ix, uint32_t id, const float *vec);
/* Deletes item id: it is never returned again, and its neighbours are
 * re-linked around it. REEL_ENOENT when it is not live. */
int reel_index_delete(reel_index *ix, uint32_t id);
int reel_index_contains(const reel_index *ix, uint32_t id);

typedef struct reel_filter {
    /* Items pass when bit (id % 64) of allow[id / 64] is set; NULL: all
     * pass; ids >= allow_bits do not pass. */
    const uint64_t *allow;
    uint64_t allow_bits;
    /* Ids never returned, in any order (duplicates are fine). */
    const uint32_t *exclude;
    uint32_t n_exclude;
} reel_filter;

typedef struct reel_search_params {
    uint32_t ef;               /* HNSW breadth; at least k (default 64) */
    const reel_filter *filter; /* NULL: no filter */
} reel_search_params;

typedef struct reel_hit {
    uint32_t id;
    float dist;
} reel_hit;

/* The k nearest live items passing the filter, nearest first, into
 * out[0..*n_out). `p` may be NULL for the defaults. */
int reel_index_search(const reel_index *ix, const float *query, uint32_t k,
                      const reel_search_params *p, reel_hit *out,
                      uint32_t *n_out);

/* Exact distance between a query and item id (REEL_ENOENT if not live). */
int reel_index_distance(const reel_index *ix, const float *query, uint32_t id,
                        float *dist);

typedef struct reel_index_stats {
    enum reel_index_kind kind;
    enum reel_metric metric;
    enum reel_vec_storage storage;
    uint32_t dim, m, ef_construction;
    uint32_t rescore; /* compact storage's exact re-scoring (0: 4k) */
    uint64_t n_live, n_deleted, id_limit; /* id_limit: largest id + 1 */
    uint32_t max_level;
    uint64_t level_counts[32]; /* items whose top level is l */
    uint64_t memory_bytes;     /* allocated plus mapped */
    double mean_degree0;
    const char *simd; /* distance kernels in use */
} reel_index_stats;

void reel_index_get_stats(const reel_index *ix, reel_index_stats *s);

/* Writes the index atomically (docs/formats/index.md). */
int reel_index_save(const reel_index *ix, const char *path, reel_diag *d);
/* Maps an index file; refuses a damaged one with the reason in d. */
int reel_index_open(const char *path, reel_index **out, reel_diag *d);

const char *reel_metric_name(enum reel_metric m);
int reel_metric_parse(const char *s, enum reel_metric *out);
const char *reel_index_kind_name(enum reel_index_kind k);
const char *reel_vec_storage_name(enum reel_vec_storage s);
int reel_vec_storage_parse(const char *s, enum reel_vec_storage *out);

#endif
