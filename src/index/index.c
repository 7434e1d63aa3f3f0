#include "index/index.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "index/index_impl.h"

/* ------------------------------------------------------------ names */

static const char *const metric_names[] = {"ip", "cosine", "l2"};
static const char *const storage_names[] = {"f32", "bf16", "int8"};

const char *reel_metric_name(enum reel_metric m)
{
    return (unsigned)m < 3 ? metric_names[m] : "?";
}

int reel_metric_parse(const char *s, enum reel_metric *out)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, metric_names[i])) {
            *out = (enum reel_metric)i;
            return 0;
        }
    return REEL_EINVAL;
}

const char *reel_index_kind_name(enum reel_index_kind k)
{
    return k == REEL_INDEX_FLAT ? "flat" : k == REEL_INDEX_HNSW ? "hnsw" : "?";
}

const char *reel_vec_storage_name(enum reel_vec_storage s)
{
    return (unsigned)s < 3 ? storage_names[s] : "?";
}

int reel_vec_storage_parse(const char *s, enum reel_vec_storage *out)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, storage_names[i])) {
            *out = (enum reel_vec_storage)i;
            return 0;
        }
    if (!strcmp(s, "i8")) {
        *out = REEL_VEC_I8;
        return 0;
    }
    return REEL_EINVAL;
}

reel_index_opts reel_index_opts_default(enum reel_index_kind kind,
                                        enum reel_metric metric, uint32_t dim)
{
    return (reel_index_opts){
        .kind = kind,
        .metric = metric,
        .dim = dim,
        .m = 16,
        .ef_construction = 200,
        .seed = 42,
        .storage = REEL_VEC_F32,
        .rescore = 0,
    };
}

/* ------------------------------------------------------------ heaps */

static inline int pair_less(struct pair a, struct pair b)
{
    return a.dist < b.dist || (a.dist == b.dist && a.id < b.id);
}

void reel__heap_push_max(struct pair *h, size_t *n, struct pair x)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!pair_less(h[p], x))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

void reel__heap_pop_max(struct pair *h, size_t *n)
{
    struct pair x = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m)
            break;
        if (c + 1 < m && pair_less(h[c], h[c + 1]))
            c++;
        if (!pair_less(x, h[c]))
            break;
        h[i] = h[c];
        i = c;
    }
    if (m)
        h[i] = x;
}

void reel__heap_push_min(struct pair *h, size_t *n, struct pair x)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!pair_less(x, h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

void reel__heap_pop_min(struct pair *h, size_t *n)
{
    struct pair x = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m)
            break;
        if (c + 1 < m && pair_less(h[c + 1], h[c]))
            c++;
        if (!pair_less(h[c], x))
            break;
        h[i] = h[c];
        i = c;
    }
    if (m)
        h[i] = x;
}

static int cmp_pair(const void *a, const void *b)
{
    struct pair x = *(const struct pair *)a, y = *(const struct pair *)b;
    return pair_less(x, y) ? -1 : pair_less(y, x) ? 1 : 0;
}

void reel__pairs_sort(struct pair *p, size_t n)
{
    qsort(p, n, sizeof *p, cmp_pair);
}

void reel__scratch_grow(struct pair **p, size_t *cap, size_t need)
{
    REEL_GROW(*p, *cap, need);
}

/* ------------------------------------------------------- codes */

static size_t code_size(enum reel_vec_storage st, uint32_t d)
{
    switch (st) {
    case REEL_VEC_F32:
        return 4 * (size_t)d;
    case REEL_VEC_BF16:
        return 2 * (size_t)d;
    case REEL_VEC_I8:
        return 8 + (size_t)d;
    }
    return 0;
}

static inline float from_ip(enum reel_metric m, float ip)
{
    return m == REEL_METRIC_IP ? -ip : 1.0f - ip;
}

float reel__index_qdist_compact(const reel_index *ix, const struct query *q,
                                const unsigned char *code)
{
    const reel_dist_kernels *k = ix->k;
    uint32_t d = ix->o.dim;
    enum reel_metric m = ix->o.metric;
    switch (ix->o.storage) {
    case REEL_VEC_F32:
        if (m == REEL_METRIC_L2)
            return k->l2sq(q->v, (const float *)code, d);
        return from_ip(m, k->ip(q->v, (const float *)code, d));
    case REEL_VEC_BF16:
        if (m == REEL_METRIC_L2)
            return k->l2sq_bf16(q->v, (const uint16_t *)code, d);
        return from_ip(m, k->ip_bf16(q->v, (const uint16_t *)code, d));
    case REEL_VEC_I8: {
        float scale, sq;
        memcpy(&scale, code, 4);
        memcpy(&sq, code + 4, 4);
        float ip = scale * k->ip_i8(q->v, (const int8_t *)(code + 8), d);
        if (m == REEL_METRIC_L2)
            return q->norm2 - 2.0f * ip + sq;
        return from_ip(m, ip);
    }
    }
    return INFINITY;
}

static const float *original(const reel_index *ix, uint32_t id)
{
    if (ix->o.storage == REEL_VEC_F32)
        return (const float *)code_of(ix, rec_at(ix, id));
    float *c = atomic_load_explicit(
        (_Atomic(float *) *)&ix->f32_chunks[id >> CHUNK_BITS],
        memory_order_acquire);
    return c + (size_t)(id & (CHUNK_N - 1)) * ix->o.dim;
}

float reel__index_exact(const reel_index *ix, const struct query *q,
                        uint32_t id)
{
    const float *x = original(ix, id);
    if (ix->o.metric == REEL_METRIC_L2)
        return ix->k->l2sq(q->v, x, ix->o.dim);
    return from_ip(ix->o.metric, ix->k->ip(q->v, x, ix->o.dim));
}

void reel__index_encode(reel_index *ix, uint32_t id, unsigned char *rec,
                        const float *vec)
{
    uint32_t d = ix->o.dim;
    unsigned char *code = rec + ix->code_off;
    float n2 = 0;
    for (uint32_t i = 0; i < d; i++)
        n2 += vec[i] * vec[i];
    head_of(rec)->norm = sqrtf(n2);
    switch (ix->o.storage) {
    case REEL_VEC_F32:
        memcpy(code, vec, 4 * (size_t)d);
        return;
    case REEL_VEC_BF16:
        for (uint32_t i = 0; i < d; i++) {
            uint16_t b = reel_bf16_from_f32(vec[i]);
            memcpy(code + 2 * i, &b, 2);
        }
        break;
    case REEL_VEC_I8: {
        float mx = 0;
        for (uint32_t i = 0; i < d; i++)
            mx = fmaxf(mx, fabsf(vec[i]));
        float scale = mx > 0 ? mx / 127.0f : 1.0f, sq = 0;
        int8_t *c = (int8_t *)(code + 8);
        for (uint32_t i = 0; i < d; i++) {
            long v = lrintf(vec[i] / scale);
            c[i] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
            float x = scale * c[i];
            sq += x * x;
        }
        memcpy(code, &scale, 4);
        memcpy(code + 4, &sq, 4);
        break;
    }
    }
    memcpy((float *)original(ix, id), vec, 4 * (size_t)d);
}

void reel__index_decode(const reel_index *ix, const unsigned char *rec,
                        float *out)
{
    uint32_t d = ix->o.dim;
    const unsigned char *code = rec + ix->code_off;
    switch (ix->o.storage) {
    case REEL_VEC_F32:
        memcpy(out, code, 4 * (size_t)d);
        return;
    case REEL_VEC_BF16:
        for (uint32_t i = 0; i < d; i++) {
            uint16_t b;
            memcpy(&b, code + 2 * i, 2);
            out[i] = reel_bf16_to_f32(b);
        }
        return;
    case REEL_VEC_I8: {
        float scale;
        memcpy(&scale, code, 4);
        const int8_t *c = (const int8_t *)(code + 8);
        for (uint32_t i = 0; i < d; i++)
            out[i] = scale * c[i];
        return;
    }
    }
}

/* ------------------------------------------------------ storage */

static void *alloc_zero(size_t bytes)
{
    /* Large calloc is served by fresh zero pages: untouched records of a
     * chunk cost address space, not memory. */
    return reel_xcalloc(1, bytes);
}

unsigned char *reel__index_ensure(reel_index *ix, uint32_t id)
{
    uint32_t c = id >> CHUNK_BITS;
    unsigned char *p =
        atomic_load_explicit(&ix->chunks[c], memory_order_acquire);
    if (p)
        return p + (size_t)(id & (CHUNK_N - 1)) * ix->rec_size;
    pthread_mutex_lock(&ix->grow_lock);
    p = atomic_load_explicit(&ix->chunks[c], memory_order_acquire);
    if (!p) {
        size_t bytes = (size_t)CHUNK_N * ix->rec_size;
        p = alloc_zero(bytes);
        atomic_fetch_add(&ix->mem, bytes);
        if (ix->o.storage != REEL_VEC_F32) {
            size_t fb = (size_t)CHUNK_N * ix->o.dim * 4;
            atomic_store_explicit(&ix->f32_chunks[c], alloc_zero(fb),
                                  memory_order_release);
            ix->f32_owned[c] = 1;
            atomic_fetch_add(&ix->mem, fb);
        }
        ix->chunk_owned[c] = 1;
        atomic_store_explicit(&ix->chunks[c], p, memory_order_release);
    }
    pthread_mutex_unlock(&ix->grow_lock);
    return p + (size_t)(id & (CHUNK_N - 1)) * ix->rec_size;
}

void reel__index_made_live(reel_index *ix, uint32_t id, uint8_t was)
{
    if ((was & (FLAG_LIVE | FLAG_DELETED)) != FLAG_LIVE)
        atomic_fetch_add(&ix->n_live, 1);
    if (was & FLAG_DELETED)
        atomic_fetch_sub(&ix->n_deleted, 1);
    uint64_t lim = atomic_load(&ix->id_limit);
    while ((uint64_t)id + 1 > lim &&
           !atomic_compare_exchange_weak(&ix->id_limit, &lim, (uint64_t)id + 1))
        ;
}

uint64_t reel__index_upper_alloc(reel_index *ix, int levels)
{
    uint64_t need = (uint64_t)levels * (ix->m + 1);
    pthread_mutex_lock(&ix->upper_lock);
    uint64_t at = ix->upper_used;
    /* A node's blocks never straddle two pool chunks. */
    if ((at & (UPPER_N - 1)) + need > UPPER_N)
        at = (at | (UPPER_N - 1)) + 1;
    uint32_t c0 = (uint32_t)(at >> UPPER_BITS),
             c1 = (uint32_t)((at + need - 1) >> UPPER_BITS);
    if (c1 >= MAX_UPPER) {
        pthread_mutex_unlock(&ix->upper_lock);
        abort(); /* 4G link slots: far beyond any index this build serves */
    }
    for (uint32_t c = c0; c <= c1; c++)
        if (!atomic_load_explicit(&ix->upper[c], memory_order_acquire)) {
            atomic_store_explicit(&ix->upper[c],
                                  alloc_zero((size_t)UPPER_N * 4),
                                  memory_order_release);
            ix->upper_owned[c] = 1;
            atomic_fetch_add(&ix->mem, (uint64_t)UPPER_N * 4);
        }
    ix->upper_used = at + need;
    pthread_mutex_unlock(&ix->upper_lock);
    return at;
}

/* --------------------------------------------------------- scratch */

void reel__visited_reset(const reel_index *ix, struct visited *v)
{
    uint64_t lim = atomic_load(&ix->id_limit);
    uint64_t want = (lim + CHUNK_N - 1) & ~(uint64_t)(CHUNK_N - 1);
    if (v->n < want) {
        free(v->tags);
        v->tags = reel_xcalloc(want, sizeof *v->tags);
        v->n = want;
        v->epoch = 0;
    }
    if (++v->epoch == 0) {
        memset(v->tags, 0, v->n * sizeof *v->tags);
        v->epoch = 1;
    }
}

struct scratch *reel__scratch_get(const reel_index *cix)
{
    reel_index *ix = (reel_index *)cix;
    pthread_mutex_lock(&ix->pool_lock);
    struct scratch *s = ix->pool;
    if (s)
        ix->pool = s->next;
    pthread_mutex_unlock(&ix->pool_lock);
    if (!s) {
        s = reel_xcalloc(1, sizeof *s);
        s->qbuf = reel_xmalloc(ix->o.dim * sizeof *s->qbuf);
        s->tmp = reel_xmalloc(ix->o.dim * sizeof *s->tmp);
    }
    return s;
}

void reel__scratch_put(const reel_index *cix, struct scratch *s)
{
    reel_index *ix = (reel_index *)cix;
    pthread_mutex_lock(&ix->pool_lock);
    s->next = ix->pool;
    ix->pool = s;
    pthread_mutex_unlock(&ix->pool_lock);
}

static void scratch_free(struct scratch *s)
{
    free(s->vis.tags);
    free(s->cand);
    free(s->top);
    free(s->buf);
    free(s->ex);
    free(s->qbuf);
    free(s->tmp);
    free(s->batch);
    free(s);
}

static inline uint32_t ex_hash(uint32_t id, uint32_t mask)
{
    return (id * 2654435761u) & mask;
}

static void build_exclusions(struct scratch *s, const reel_filter *f)
{
    s->ex_mask = 0;
    if (!f || !f->n_exclude)
        return;
    size_t size = 16;
    while (size < (size_t)f->n_exclude * 2)
        size *= 2;
    if (s->cap_ex < size) {
        free(s->ex);
        s->ex = reel_xmalloc(size * sizeof *s->ex);
        s->cap_ex = size;
    }
    memset(s->ex, 0xff, size * sizeof *s->ex);
    s->ex_mask = (uint32_t)(size - 1);
    for (uint32_t i = 0; i < f->n_exclude; i++) {
        uint32_t id = f->exclude[i], h = ex_hash(id, s->ex_mask);
        if (id == UINT32_MAX)
            continue;
        while (s->ex[h] != UINT32_MAX && s->ex[h] != id)
            h = (h + 1) & s->ex_mask;
        s->ex[h] = id;
    }
}

int reel__index_passes(const struct scratch *s, const reel_filter *f,
                       uint32_t id)
{
    if (!f)
        return 1;
    if (f->allow &&
        (id >= f->allow_bits || !(f->allow[id >> 6] >> (id & 63) & 1)))
        return 0;
    if (s->ex_mask) {
        uint32_t h = ex_hash(id, s->ex_mask);
        while (s->ex[h] != UINT32_MAX) {
            if (s->ex[h] == id)
                return 0;
            h = (h + 1) & s->ex_mask;
        }
    }
    return 1;
}

/* ------------------------------------------------------------ API */

static int valid_opts(const reel_index_opts *o, reel_diag *d)
{
    if (o->kind != REEL_INDEX_FLAT && o->kind != REEL_INDEX_HNSW)
        return reel_diag_fail(d, REEL_EINVAL, "unknown index kind");
    if ((unsigned)o->metric > REEL_METRIC_L2)
        return reel_diag_fail(d, REEL_EINVAL, "unknown metric");
    if (o->dim < 1 || o->dim > REEL_INDEX_MAX_DIM)
        return reel_diag_fail(d, REEL_EINVAL, "dimension %u out of 1..%d",
                              o->dim, REEL_INDEX_MAX_DIM);
    if ((unsigned)o->storage > REEL_VEC_I8)
        return reel_diag_fail(d, REEL_EINVAL, "unknown vector storage");
    if (o->kind == REEL_INDEX_FLAT && o->storage != REEL_VEC_F32)
        return reel_diag_fail(d, REEL_EINVAL,
                              "a flat index is exact: it stores float32");
    if (o->kind == REEL_INDEX_HNSW &&
        (o->m < 2 || o->m > REEL_INDEX_MAX_M || o->ef_construction < 1 ||
         o->ef_construction > 65536))
        return reel_diag_fail(d, REEL_EINVAL,
                              "m must be in 2..%d and ef_construction in "
                              "1..65536",
                              REEL_INDEX_MAX_M);
    return 0;
}

static reel_index *alloc_index(const reel_index_opts *o)
{
    reel_index *ix = reel_xcalloc(1, sizeof *ix);
    ix->o = *o;
    ix->k = reel_dist_get();
    ix->f32_fn = o->metric == REEL_METRIC_L2 ? ix->k->l2sq : ix->k->ip;
    ix->f32x4_fn = o->metric == REEL_METRIC_L2 ? ix->k->l2sq_x4 : ix->k->ip_x4;
    if (o->kind == REEL_INDEX_HNSW) {
        ix->m = o->m;
        ix->m0 = 2 * o->m;
        ix->level_mult = 1.0 / log((double)o->m);
        ix->ops = &reel__hnsw_ops;
    } else {
        ix->ops = &reel__flat_ops;
    }
    ix->code_off = (uint32_t)(sizeof(struct node_head) + 4 * ix->m0);
    ix->code_size = (uint32_t)code_size(o->storage, o->dim);
    ix->rec_size = (ix->code_off + ix->code_size + 15) & ~15u;
    ix->pf_end = ix->code_off + (ix->code_size < 1024 ? ix->code_size : 1024);
    atomic_store(&ix->entry, NO_ENTRY);
    pthread_mutex_init(&ix->grow_lock, NULL);
    pthread_mutex_init(&ix->upper_lock, NULL);
    pthread_mutex_init(&ix->entry_lock, NULL);
    pthread_mutex_init(&ix->pool_lock, NULL);
    for (unsigned i = 0; i < LOCK_STRIPES; i++)
        pthread_mutex_init(&ix->locks[i], NULL);
    atomic_store(&ix->mem, sizeof *ix);
    return ix;
}

int reel_index_new(const reel_index_opts *o, reel_index **out, reel_diag *d)
{
    *out = NULL;
    int rc = valid_opts(o, d);
    if (rc)
        return rc;
    *out = alloc_index(o);
    return 0;
}

void reel_index_free(reel_index *ix)
{
    if (!ix)
        return;
    for (uint32_t c = 0; c < MAX_CHUNKS; c++) {
        if (ix->chunk_owned[c])
            free(ix->chunks[c]);
        if (ix->f32_owned[c])
            free(ix->f32_chunks[c]);
    }
    for (uint32_t c = 0; c < MAX_UPPER; c++)
        if (ix->upper_owned[c])
            free(ix->upper[c]);
    while (ix->pool) {
        struct scratch *s = ix->pool;
        ix->pool = s->next;
        scratch_free(s);
    }
    pthread_mutex_destroy(&ix->grow_lock);
    pthread_mutex_destroy(&ix->upper_lock);
    pthread_mutex_destroy(&ix->entry_lock);
    pthread_mutex_destroy(&ix->pool_lock);
    for (unsigned i = 0; i < LOCK_STRIPES; i++)
        pthread_mutex_destroy(&ix->locks[i]);
    reel_secfile_close(ix->file);
    free(ix);
}

/* Copies vec, normalised for cosine; REEL_EINVAL on NaN or infinity. */
static int prepare(const reel_index *ix, const float *vec, float *out)
{
    uint32_t d = ix->o.dim;
    double n2 = 0;
    for (uint32_t i = 0; i < d; i++) {
        if (!isfinite(vec[i]))
            return REEL_EINVAL;
        n2 += (double)vec[i] * vec[i];
    }
    if (ix->o.metric == REEL_METRIC_COSINE && n2 > 0) {
        float inv = (float)(1.0 / sqrt(n2));
        for (uint32_t i = 0; i < d; i++)
            out[i] = vec[i] * inv;
    } else {
        memcpy(out, vec, d * sizeof *out);
    }
    return 0;
}

static int insert(reel_index *ix, uint32_t id, const float *vec, int update)
{
    if (id == UINT32_MAX)
        return REEL_ERANGE;
    float small[256];
    float *v = ix->o.dim <= 256 ? small : reel_xmalloc(ix->o.dim * sizeof *v);
    int rc = prepare(ix, vec, v);
    if (rc == 0)
        rc = ix->ops->insert(ix, id, v, update);
    if (v != small)
        free(v);
    return rc;
}

int reel_index_add(reel_index *ix, uint32_t id, const float *vec)
{
    return insert(ix, id, vec, 0);
}

int reel_index_update(reel_index *ix, uint32_t id, const float *vec)
{
    return insert(ix, id, vec, 1);
}

int reel_index_delete(reel_index *ix, uint32_t id)
{
    if ((uint64_t)id >= atomic_load(&ix->id_limit))
        return REEL_ENOENT;
    return ix->ops->remove(ix, id);
}

int reel_index_contains(const reel_index *ix, uint32_t id)
{
    if ((uint64_t)id >= atomic_load(&ix->id_limit))
        return 0;
    unsigned char *r = rec_at(ix, id);
    return r && is_live(r);
}

struct batch_job {
    reel_index *ix;
    const float *vecs;
    uint32_t first;
    uint64_t n;
    _Atomic uint64_t next;
    _Atomic int rc;
    reel_progress *p;
};

static void *batch_worker(void *arg)
{
    struct batch_job *j = arg;
    enum { STEP = 64 };
    for (;;) {
        uint64_t at = atomic_fetch_add(&j->next, STEP);
        if (at >= j->n || atomic_load(&j->rc))
            break;
        uint64_t end = at + STEP < j->n ? at + STEP : j->n;
        for (uint64_t i = at; i < end; i++) {
            int rc = reel_index_add(j->ix, j->first + (uint32_t)i,
                                    j->vecs + i * j->ix->o.dim);
            if (rc) {
                atomic_store(&j->rc, rc);
                return NULL;
            }
        }
        if (j->p)
            reel_progress_add(j->p, end - at);
    }
    return NULL;
}

int reel_index_add_batch(reel_index *ix, uint32_t first, const float *vecs,
                         uint64_t n, int threads, reel_progress *p)
{
    if (n && (uint64_t)first + n - 1 >= UINT32_MAX)
        return REEL_ERANGE;
    if (threads <= 0)
        threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 1)
        threads = 1;
    if (threads > 256)
        threads = 256;
    struct batch_job j = {
        .ix = ix, .vecs = vecs, .first = first, .n = n, .p = p};
    pthread_t tids[256];
    int started = 0;
    for (int t = 1; t < threads; t++)
        if (pthread_create(&tids[started], NULL, batch_worker, &j) == 0)
            started++;
    /* The calling thread works too, and draws the progress. */
    for (;;) {
        uint64_t at = atomic_fetch_add(&j.next, 64);
        if (at >= n || atomic_load(&j.rc))
            break;
        uint64_t end = at + 64 < n ? at + 64 : n;
        for (uint64_t i = at; i < end && !atomic_load(&j.rc); i++) {
            int rc =
                reel_index_add(ix, first + (uint32_t)i, vecs + i * ix->o.dim);
            if (rc)
                atomic_store(&j.rc, rc);
        }
        if (p) {
            reel_progress_add(p, end - at);
            reel_progress_tick(p);
        }
    }
    for (int t = 0; t < started; t++)
        pthread_join(tids[t], NULL);
    return atomic_load(&j.rc);
}

int reel_index_search(const reel_index *ix, const float *query, uint32_t k,
                      const reel_search_params *p, reel_hit *out,
                      uint32_t *n_out)
{
    *n_out = 0;
    if (k == 0)
        return 0;
    uint32_t ef = p && p->ef ? p->ef : 64;
    if (ef < k)
        ef = k;
    const reel_filter *f = p ? p->filter : NULL;
    struct scratch *s = reel__scratch_get(ix);
    int rc = prepare(ix, query, s->qbuf);
    if (rc == 0) {
        struct query q = {.v = s->qbuf, .norm2 = 0};
        for (uint32_t i = 0; i < ix->o.dim; i++)
            q.norm2 += q.v[i] * q.v[i];
        build_exclusions(s, f);
        rc = ix->ops->search(ix, s, &q, k, ef, f, out, n_out);
    }
    reel__scratch_put(ix, s);
    return rc;
}

int reel_index_distance(const reel_index *ix, const float *query, uint32_t id,
                        float *dist)
{
    if (!reel_index_contains(ix, id))
        return REEL_ENOENT;
    struct scratch *s = reel__scratch_get(ix);
    int rc = prepare(ix, query, s->qbuf);
    if (rc == 0) {
        struct query q = {.v = s->qbuf, .norm2 = 0};
        *dist = reel__index_exact(ix, &q, id);
    }
    reel__scratch_put(ix, s);
    return rc;
}

void reel_index_get_stats(const reel_index *ix, reel_index_stats *s)
{
    memset(s, 0, sizeof *s);
    s->kind = ix->o.kind;
    s->metric = ix->o.metric;
    s->storage = ix->o.storage;
    s->dim = ix->o.dim;
    s->m = ix->m;
    s->rescore = ix->o.rescore;
    s->ef_construction =
        ix->o.kind == REEL_INDEX_HNSW ? ix->o.ef_construction : 0;
    s->id_limit = atomic_load(&ix->id_limit);
    s->n_live = atomic_load(&ix->n_live);
    s->n_deleted = atomic_load(&ix->n_deleted);
    s->memory_bytes = atomic_load(&ix->mem);
    s->simd = ix->k->name;
    uint64_t links = 0, counted = 0;
    for (uint64_t id = 0; id < s->id_limit; id++) {
        unsigned char *r = rec_at(ix, (uint32_t)id);
        if (!r || !is_live(r))
            continue;
        struct node_head *h = head_of(r);
        s->level_counts[h->level]++;
        if (h->level > s->max_level)
            s->max_level = h->level;
        links += atomic_load_explicit(&h->count, memory_order_relaxed);
        counted++;
    }
    s->mean_degree0 = counted ? (double)links / (double)counted : 0;
}
