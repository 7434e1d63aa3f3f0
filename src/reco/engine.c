#include "reco/engine.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/strs.h"
#include "data/interactions.h"
#include "embed/vectors.h"
#include "index/index.h"
#include "rank/features.h"
#include "rank/ranker.h"
#include "rank/trainset.h"

#define DAY 86400.0

/* The events record (docs/formats/wal.md, "Type 1: events"). */
enum { REC_HEAD = 8, EV_HEAD = 26, REC_VERSION = 1 };

struct hist {
    reel_engine_event *e;
    uint32_t n, cap;
};

/* A batch of accepted events waiting for durability: records
 * first..last of the log, their payloads kept to be applied. */
struct batch {
    uint8_t type; /* REEL_ENGINE_WAL_* of every record */
    uint64_t first, last;
    reel_buf *rec;
    uint32_t n_rec;
    reel_engine_done_fn done;
    void *ctx;
    struct batch *next;
};

struct reel_engine {
    reel_engine_opts o;
    reel_dataset *ds;
    reel_vectors *vec;
    reel_index *ix;
    reel_ranker *rk;
    reel_reco reco;
    uint32_t n_videos, n_ds_users;
    uint64_t *allow; /* live (not deleted) videos */

    /* User state, under `lock`. */
    pthread_rwlock_t lock;
    reel_featstate *fs;
    reel_intern new_users; /* user n_ds_users + i has id new_users[i] */
    struct hist *hist;     /* per user */
    size_t cap_hist;
    uint32_t *pos; /* positive events per video */
    float *d1;     /* decayed with a one-day half-life, as of d1_ts */
    double *d1_ts;
    double last_ts; /* latest event time applied */
    uint32_t *cold; /* the cold-start list */
    uint32_t n_cold;
    double cold_at; /* monotonic time of the last computation */

    /* The log and the batches waiting for it, in LSN order. */
    reel_wal *wal;
    pthread_mutex_t qmu;
    struct batch *qhead, *qtail;
    uint64_t applied;    /* every record up to this LSN is in memory */
    pthread_mutex_t amu; /* one drain at a time */

    /* Scratch buffers of reel_reco_rank, reused across requests. */
    pthread_mutex_t smu;
    reel_reco_scratch **spool;
    size_t n_spool, cap_spool;

    _Atomic uint64_t ingested, rejected;
    uint64_t replayed, skipped_replay;
    uint64_t n_deleted; /* under `lock` */
};

void reel_engine_opts_init(reel_engine_opts *o)
{
    *o = (reel_engine_opts){.sync = REEL_WAL_SYNC_ALWAYS,
                            .interval_ms = 10,
                            .reco = reel_reco_opts_default(),
                            .cold_refresh_s = 10,
                            .cold_n = 500};
}

const char *reel_engine_source_name(reel_engine_source s)
{
    return s == REEL_ENGINE_PERSONALIZED ? "personalized" : "cold-start";
}

/* ------------------------------------------------------------ user state */

static uint32_t find_user(const reel_engine *en, const char *id, size_t len)
{
    uint32_t u = reel_dataset_find_user(en->ds, id, len);
    if (u != REEL_NONE)
        return u;
    u = reel_intern_find(&en->new_users, id, len);
    return u == REEL_NONE ? REEL_NONE : en->n_ds_users + u;
}

/* The user's number, made when new (writer only). */
static uint32_t user_ref(reel_engine *en, const char *id, size_t len)
{
    uint32_t u = reel_dataset_find_user(en->ds, id, len);
    if (u != REEL_NONE)
        return u;
    int is_new;
    u = en->n_ds_users + reel_intern_put(&en->new_users, id, len, &is_new);
    if (is_new) {
        reel_featstate_grow(en->fs, u + 1);
        size_t old = en->cap_hist;
        REEL_GROW(en->hist, en->cap_hist, (size_t)u + 1);
        memset(en->hist + old, 0, (en->cap_hist - old) * sizeof *en->hist);
    }
    return u;
}

static void apply_one(reel_engine *en, uint32_t u, uint32_t v, int type,
                      double ts, float watch_s, float rating)
{
    reel_featstate_apply(en->fs, u, v, type, ts, watch_s, rating);
    if (ts > en->last_ts)
        en->last_ts = ts;
    if (type == REEL_EV_IMPRESSION)
        return;
    struct hist *h = &en->hist[u];
    if (h->n == h->cap) {
        size_t cap = h->cap;
        REEL_GROW(h->e, cap, (size_t)h->n + 1);
        h->cap = (uint32_t)cap;
    }
    h->e[h->n++] =
        (reel_engine_event){.video = v, .type = (uint8_t)type, .ts = ts};
    if (!reel_event_is_positive((uint8_t)type))
        return;
    en->pos[v]++;
    double dt = ts - en->d1_ts[v];
    en->d1[v] = (float)(en->d1[v] * (dt > 0 ? exp2(-dt / DAY) : 1.0) + 1);
    if (ts > en->d1_ts[v])
        en->d1_ts[v] = ts;
}

struct cand {
    uint32_t v;
    float s;
};

static int by_s(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->s != y->s)
        return x->s > y->s ? -1 : 1;
    return (x->v > y->v) - (x->v < y->v);
}

/* Whether candidate a ranks below b (lower score, or equal and a larger
 * number). */
static int below(const struct cand *a, const struct cand *b)
{
    return a->s < b->s || (a->s == b->s && a->v > b->v);
}

static void sift_down(struct cand *h, uint32_t m, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < m && below(&h[l], &h[w]))
            w = l;
        if (r < m && below(&h[r], &h[w]))
            w = r;
        if (w == i)
            return;
        struct cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

/*
 * The best `n` live videos by s (s > 0 only), into out, best first;
 * returns how many. A heap of the n best so far keeps it O(videos log n),
 * since it runs under the write lock.
 */
static uint32_t top(const reel_engine *en, const float *s, uint32_t n,
                    struct cand *h, uint32_t *out)
{
    uint32_t m = 0;
    for (uint32_t v = 0; v < en->n_videos; v++) {
        if (!(s[v] > 0) || !(en->allow[v / 64] >> (v % 64) & 1))
            continue;
        struct cand c = {v, s[v]};
        if (m < n) {
            h[m++] = c;
            for (uint32_t i = m - 1; i && below(&h[i], &h[(i - 1) / 2]);
                 i = (i - 1) / 2) {
                struct cand t = h[i];
                h[i] = h[(i - 1) / 2];
                h[(i - 1) / 2] = t;
            }
        } else if (below(&h[0], &c)) {
            h[0] = c;
            sift_down(h, m, 0);
        }
    }
    qsort(h, m, sizeof *h, by_s);
    for (uint32_t i = 0; i < m; i++)
        out[i] = h[i].v;
    return m;
}

/* Trending and popular, interleaved without duplicates (writer only). */
static void cold_compute(reel_engine *en)
{
    uint32_t nv = en->n_videos, n = en->o.cold_n ? en->o.cold_n : 1;
    float *s = reel_xmalloc(((size_t)nv + 1) * sizeof *s);
    struct cand *buf = reel_xmalloc((size_t)n * sizeof *buf);
    uint32_t *trend = reel_xmalloc((size_t)n * sizeof *trend);
    uint32_t *pop = reel_xmalloc((size_t)n * sizeof *pop);
    /* Decayed to the latest event: the order is the same at any later
     * time, since every count decays by the same factor. */
    for (uint32_t v = 0; v < nv; v++) {
        double dt = en->last_ts - en->d1_ts[v];
        s[v] = (float)(en->d1[v] * (dt > 0 ? exp2(-dt / DAY) : 1.0));
    }
    uint32_t nt = top(en, s, n, buf, trend);
    for (uint32_t v = 0; v < nv; v++)
        s[v] = (float)en->pos[v];
    uint32_t np = top(en, s, n, buf, pop);
    free(en->cold);
    en->cold = reel_xmalloc(((size_t)nt + np + 1) * sizeof *en->cold);
    en->n_cold = 0;
    uint8_t *in = reel_xcalloc((size_t)nv + 1, 1);
    for (uint32_t i = 0; i < nt || i < np; i++) {
        if (i < nt && !in[trend[i]]) {
            in[trend[i]] = 1;
            en->cold[en->n_cold++] = trend[i];
        }
        if (i < np && !in[pop[i]]) {
            in[pop[i]] = 1;
            en->cold[en->n_cold++] = pop[i];
        }
    }
    en->cold_at = reel_clock_mono();
    free(in);
    free(pop);
    free(trend);
    free(buf);
    free(s);
}

/* ------------------------------------------------------- events records */

static void put_u16(reel_buf *b, uint16_t x)
{
    uint8_t p[2] = {(uint8_t)x, (uint8_t)(x >> 8)};
    reel_buf_append(b, p, 2);
}

static void put_u32(reel_buf *b, uint32_t x)
{
    uint8_t p[4] = {(uint8_t)x, (uint8_t)(x >> 8), (uint8_t)(x >> 16),
                    (uint8_t)(x >> 24)};
    reel_buf_append(b, p, 4);
}

static void put_u64(reel_buf *b, uint64_t x)
{
    put_u32(b, (uint32_t)x);
    put_u32(b, (uint32_t)(x >> 32));
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
    return get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static size_t slen(const char *s)
{
    return s ? strlen(s) : 0;
}

static size_t event_size(const reel_event_in *e)
{
    return EV_HEAD + slen(e->user) + slen(e->video) + slen(e->rec.id) +
           slen(e->rec.request_id);
}

static void put_event(reel_buf *b, const reel_event_in *e)
{
    double ts = e->rec.ts;
    float w = (float)e->rec.watch_s, r = (float)e->rec.rating;
    uint64_t bits;
    uint32_t wb, rb;
    memcpy(&bits, &ts, 8);
    memcpy(&wb, &w, 4);
    memcpy(&rb, &r, 4);
    put_u64(b, bits);
    put_u32(b, wb);
    put_u32(b, rb);
    reel_buf_putc(b, (char)e->rec.type);
    reel_buf_putc(b, 0);
    const char *s[4] = {e->user, e->video, e->rec.id, e->rec.request_id};
    for (int i = 0; i < 4; i++)
        put_u16(b, (uint16_t)slen(s[i]));
    for (int i = 0; i < 4; i++)
        reel_buf_append(b, s[i] ? s[i] : "", slen(s[i]));
}

static void rec_begin(reel_buf *b)
{
    reel_buf_reset(b);
    reel_buf_putc(b, REC_VERSION);
    reel_buf_putc(b, 0);
    put_u16(b, 0);
    put_u32(b, 0); /* count, patched by rec_end */
}

static void rec_end(reel_buf *b, uint32_t count)
{
    uint8_t *p = (uint8_t *)b->data + 4;
    p[0] = (uint8_t)count;
    p[1] = (uint8_t)(count >> 8);
    p[2] = (uint8_t)(count >> 16);
    p[3] = (uint8_t)(count >> 24);
}

/*
 * Checks an events record whole, then applies it (writer, or open). An
 * event whose video the catalogue lacks (the dataset changed under the
 * log) is skipped and counted.
 */
static int apply_record(reel_engine *en, const void *payload, uint32_t len,
                        uint64_t *n_applied, uint64_t *n_skipped)
{
    const uint8_t *p = payload;
    if (len < REC_HEAD || p[0] != REC_VERSION || p[1] || get_u16(p + 2))
        return REEL_ECORRUPT;
    uint32_t count = get_u32(p + 4);
    if (!count || count > REEL_ENGINE_MAX_BATCH)
        return REEL_ECORRUPT;
    /* Pass 1: framing and bounds, so a bad record changes nothing. */
    size_t off = REC_HEAD;
    for (uint32_t i = 0; i < count; i++) {
        if (len - off < EV_HEAD)
            return REEL_ECORRUPT;
        const uint8_t *e = p + off;
        if (e[16] >= REEL_EV__COUNT || e[17])
            return REEL_ECORRUPT;
        size_t total = 0;
        for (int k = 0; k < 4; k++) {
            uint16_t l = get_u16(e + 18 + 2 * k);
            if (l > REEL_MAX_ID_LEN || (k < 2 && l == 0))
                return REEL_ECORRUPT;
            total += l;
        }
        if (len - off - EV_HEAD < total)
            return REEL_ECORRUPT;
        off += EV_HEAD + total;
    }
    if (off != len)
        return REEL_ECORRUPT;
    off = REC_HEAD;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *e = p + off;
        uint64_t bits = get_u64(e);
        uint32_t wb = get_u32(e + 8), rb = get_u32(e + 12);
        double ts;
        float w, r;
        memcpy(&ts, &bits, 8);
        memcpy(&w, &wb, 4);
        memcpy(&r, &rb, 4);
        uint16_t ul = get_u16(e + 18), vl = get_u16(e + 20);
        size_t rest = (size_t)get_u16(e + 22) + get_u16(e + 24);
        const char *user = (const char *)e + EV_HEAD;
        const char *video = user + ul;
        off += EV_HEAD + ul + vl + rest;
        uint32_t v = reel_dataset_find_video(en->ds, video, vl);
        if (v == REEL_NONE || !isfinite(ts)) {
            (*n_skipped)++;
            continue;
        }
        uint32_t u = user_ref(en, user, ul);
        apply_one(en, u, v, e[16], ts, w, r);
        (*n_applied)++;
    }
    return 0;
}

/* A video deletion record (docs/formats/wal.md, "Type 2"). */
static int apply_delete(reel_engine *en, const void *payload, uint32_t len)
{
    const uint8_t *p = payload;
    if (len < 4 || p[0] != REC_VERSION || p[1] || get_u16(p + 2) == 0 ||
        get_u16(p + 2) > REEL_MAX_ID_LEN || len != 4u + get_u16(p + 2))
        return REEL_ECORRUPT;
    uint32_t v =
        reel_dataset_find_video(en->ds, (const char *)p + 4, get_u16(p + 2));
    if (v != REEL_NONE && (en->allow[v / 64] >> (v % 64) & 1)) {
        en->allow[v / 64] &= ~(1ull << (v % 64));
        en->n_deleted++;
    }
    return 0;
}

static int apply_any(reel_engine *en, uint8_t type, const void *payload,
                     uint32_t len, uint64_t *n_applied, uint64_t *n_skipped)
{
    if (type == REEL_ENGINE_WAL_EVENTS)
        return apply_record(en, payload, len, n_applied, n_skipped);
    if (type == REEL_ENGINE_WAL_DELETE)
        return apply_delete(en, payload, len);
    return REEL_ECORRUPT;
}

static int replay_fn(void *ctx, uint64_t lsn, uint8_t type, const void *payload,
                     uint32_t len)
{
    reel_engine *en = ctx;
    int rc =
        apply_any(en, type, payload, len, &en->replayed, &en->skipped_replay);
    if (rc)
        reel_log_error("wal: record %llu (type %u) is not valid",
                       (unsigned long long)lsn, type);
    en->applied = lsn;
    return rc;
}

/* ---------------------------------------------------------------- open */

static int load_index(reel_engine *en, const char *dir, reel_diag *d)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/index/item2vec.idx", dir);
    struct stat st;
    if (!stat(path, &st)) {
        int rc = reel_index_open(path, &en->ix, d);
        if (rc)
            return rc;
        reel_index_stats xs;
        reel_index_get_stats(en->ix, &xs);
        if (xs.dim != en->vec->dim)
            return reel_diag_fail(d, REEL_EFORMAT,
                                  "%s: dimension %u, the vectors have %u", path,
                                  xs.dim, en->vec->dim);
        return 0;
    }
    reel_log_info("%s not found; indexing the vectors now (reel build "
                  "writes it)",
                  path);
    return reel_retrieve_index(en->vec, &en->ix, d);
}

int reel_engine_open(const char *dir, const reel_engine_opts *o,
                     reel_engine **out, reel_diag *d)
{
    *out = NULL;
    reel_engine *en = reel_xcalloc(1, sizeof *en);
    if (o)
        en->o = *o;
    else
        reel_engine_opts_init(&en->o);
    /* Writers first: a stream of requests must not starve the applying
     * of durable events (their callers wait for it). */
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&en->lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&en->qmu, NULL);
    pthread_mutex_init(&en->amu, NULL);
    pthread_mutex_init(&en->smu, NULL);
    reel_intern_init(&en->new_users);
    char path[4096];
    int rc;
    if ((rc = reel_dataset_open(dir, &en->ds, d)))
        goto fail;
    snprintf(path, sizeof path, "%s/vectors/item2vec.reel", dir);
    struct stat st;
    if (stat(path, &st)) {
        rc = reel_diag_fail(d, REEL_ENOENT,
                            "%s not found: run `reel build %s` first", path,
                            dir);
        goto fail;
    }
    if ((rc = reel_vectors_load(path, en->ds, &en->vec, d)) ||
        (rc = load_index(en, dir, d)))
        goto fail;
    snprintf(path, sizeof path, "%s/models/ranker.json", dir);
    if (!stat(path, &st) && (rc = reel_ranker_load(path, &en->rk, d)))
        goto fail;
    en->reco = (reel_reco){.ds = en->ds,
                           .vec = en->vec,
                           .ix = en->ix,
                           .ranker = en->rk,
                           .o = en->o.reco};

    const reel_events *ev = reel_dataset_events(en->ds);
    en->n_videos = reel_dataset_videos(en->ds)->n;
    en->n_ds_users = reel_dataset_users(en->ds)->n;
    size_t words = ((size_t)en->n_videos + 63) / 64 + 1;
    en->allow = reel_xmalloc(words * sizeof *en->allow);
    memset(en->allow, 0xff, words * sizeof *en->allow);
    en->pos = reel_xcalloc((size_t)en->n_videos + 1, sizeof *en->pos);
    en->d1 = reel_xcalloc((size_t)en->n_videos + 1, sizeof *en->d1);
    en->d1_ts = reel_xcalloc((size_t)en->n_videos + 1, sizeof *en->d1_ts);
    en->last_ts = -INFINITY;
    REEL_GROW(en->hist, en->cap_hist, (size_t)en->n_ds_users + 1);
    memset(en->hist, 0, en->cap_hist * sizeof *en->hist);
    reel_featstate_new(en->ds, &en->fs);
    for (uint64_t i = 0; i < ev->n; i++)
        apply_one(en, ev->user[i], ev->video[i], ev->type[i], ev->ts[i],
                  ev->watch_s[i], ev->rating[i]);

    snprintf(path, sizeof path, "%s/wal", dir);
    reel_wal_opts wo;
    reel_wal_opts_init(&wo);
    wo.sync = en->o.sync;
    wo.interval_ms = en->o.interval_ms;
    wo.segment_bytes = en->o.wal_segment_bytes;
    if ((rc = reel_wal_open(path, &wo, &en->wal, d)))
        goto fail;
    en->applied = reel_wal_first_lsn(en->wal) - 1;
    if ((rc = reel_wal_replay(en->wal, 0, replay_fn, en))) {
        reel_diag_fail(d, rc, "%s: replay failed at record %llu: %s", path,
                       (unsigned long long)en->applied + 1, reel_strerror(rc));
        goto fail;
    }
    en->applied = reel_wal_last_lsn(en->wal);
    if (en->skipped_replay)
        reel_log_warn("wal: %llu events name videos the catalogue lacks; "
                      "skipped",
                      (unsigned long long)en->skipped_replay);
    cold_compute(en);
    *out = en;
    return 0;
fail:
    reel_engine_close(en);
    return rc;
}

static void batch_free(struct batch *b)
{
    for (uint32_t i = 0; i < b->n_rec; i++)
        reel_buf_free(&b->rec[i]);
    free(b->rec);
    free(b);
}

int reel_engine_close(reel_engine *en)
{
    if (!en)
        return 0;
    int rc = reel_wal_close(en->wal);
    /* Batches whose callback never came (the log closed first). */
    for (struct batch *b = en->qhead, *next; b; b = next) {
        next = b->next;
        if (b->done)
            b->done(b->ctx, REEL_ECANCELED);
        batch_free(b);
    }
    for (size_t i = 0; i < en->n_spool; i++)
        reel_reco_scratch_free(en->spool[i]);
    free(en->spool);
    for (size_t u = 0; u < en->cap_hist; u++)
        free(en->hist[u].e);
    free(en->hist);
    free(en->cold);
    free(en->pos);
    free(en->d1);
    free(en->d1_ts);
    free(en->allow);
    reel_featstate_free(en->fs);
    reel_intern_free(&en->new_users);
    reel_ranker_free(en->rk);
    reel_index_free(en->ix);
    reel_vectors_free(en->vec);
    reel_dataset_close(en->ds);
    pthread_rwlock_destroy(&en->lock);
    pthread_mutex_destroy(&en->qmu);
    pthread_mutex_destroy(&en->amu);
    pthread_mutex_destroy(&en->smu);
    free(en);
    return rc;
}

/* -------------------------------------------------------------- ingest */

/*
 * The log's callback: applies, in LSN order, every waiting batch that is
 * durable and whose predecessors are applied, then tells their callers. A
 * batch appended but not queued yet (another thread between append and
 * queue) stops the walk; its own callback resumes it.
 */
static void on_durable(void *ctx, uint64_t lsn, int err)
{
    reel_engine *en = ctx;
    pthread_mutex_lock(&en->amu);
    struct batch *ready = NULL, **tail = &ready;
    pthread_mutex_lock(&en->qmu);
    uint64_t durable = reel_wal_durable_lsn(en->wal);
    if (durable < lsn && !err)
        durable = lsn;
    while (en->qhead && (err ? en->qhead->first <= lsn
                             : en->qhead->first == en->applied + 1 &&
                                   en->qhead->last <= durable)) {
        struct batch *b = en->qhead;
        en->qhead = b->next;
        if (!en->qhead)
            en->qtail = NULL;
        b->next = NULL;
        *tail = b;
        tail = &b->next;
        if (!err)
            en->applied = b->last;
    }
    pthread_mutex_unlock(&en->qmu);
    if (ready && !err) {
        pthread_rwlock_wrlock(&en->lock);
        uint64_t n = 0, skipped = 0;
        for (struct batch *b = ready; b; b = b->next)
            for (uint32_t i = 0; i < b->n_rec; i++)
                if (apply_any(en, b->type, b->rec[i].data,
                              (uint32_t)b->rec[i].len, &n, &skipped))
                    abort(); /* we wrote it: a bug */
        if (en->o.cold_refresh_s <= 0 ||
            reel_clock_mono() - en->cold_at >= en->o.cold_refresh_s)
            cold_compute(en);
        pthread_rwlock_unlock(&en->lock);
        atomic_fetch_add(&en->ingested, n);
    }
    pthread_mutex_unlock(&en->amu);
    for (struct batch *b = ready, *next; b; b = next) {
        next = b->next;
        if (b->done)
            b->done(b->ctx, err);
        batch_free(b);
    }
}

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int fired, err;
};

static void wake(void *ctx, int err)
{
    struct waiter *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->fired = 1;
    w->err = err;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/*
 * Appends b's records, queues b for on_durable and, without `done`, waits
 * until it is applied. Takes b.
 */
static int submit(reel_engine *en, struct batch *b, reel_engine_done_fn done,
                  void *ctx)
{
    struct waiter w = {.fired = 0};
    if (!done) {
        pthread_mutex_init(&w.mu, NULL);
        pthread_cond_init(&w.cv, NULL);
        b->done = wake;
        b->ctx = &w;
    } else {
        b->done = done;
        b->ctx = ctx;
    }
    int rc = 0;
    uint32_t appended = 0;
    for (; appended < b->n_rec; appended++) {
        uint64_t lsn;
        rc = reel_wal_append(en->wal, b->type, b->rec[appended].data,
                             (uint32_t)b->rec[appended].len, &lsn);
        if (rc)
            break;
        if (!appended)
            b->first = lsn;
        b->last = lsn;
    }
    if (!appended) {
        batch_free(b);
        goto out;
    }
    if (rc) {
        /* Part of the batch is in the log: it is applied when durable (a
         * restart would replay it), but the caller hears of the failure. */
        for (uint32_t i = appended; i < b->n_rec; i++)
            reel_buf_free(&b->rec[i]);
        b->n_rec = appended;
        b->done = NULL;
    }
    pthread_mutex_lock(&en->qmu);
    /* Appends race with each other, so keep the queue in LSN order. */
    struct batch **at = &en->qhead;
    while (*at && (*at)->first < b->first)
        at = &(*at)->next;
    b->next = *at;
    *at = b;
    if (!b->next)
        en->qtail = b;
    /* Once queued, a later batch's callback may apply and free b. */
    uint64_t last = b->last;
    pthread_mutex_unlock(&en->qmu);
    /* Refused only once close has begun, which the thread rules forbid
     * while an ingest runs. */
    int rc2 = reel_wal_on_durable(en->wal, last, on_durable, en);
    if (rc2) {
        reel_log_error("ingest: durability callback refused: %s",
                       reel_strerror(rc2));
        abort();
    }
    if (!rc && !done) {
        pthread_mutex_lock(&w.mu);
        while (!w.fired)
            pthread_cond_wait(&w.cv, &w.mu);
        rc = w.err;
        pthread_mutex_unlock(&w.mu);
    }
out:
    if (!done) {
        pthread_cond_destroy(&w.cv);
        pthread_mutex_destroy(&w.mu);
    }
    return rc;
}

int reel_engine_ingest(reel_engine *en, const reel_event_in *ev, uint32_t n,
                       reel_engine_reject *rej, uint32_t *n_rej,
                       reel_engine_done_fn done, void *ctx)
{
    *n_rej = 0;
    if (n > REEL_ENGINE_MAX_BATCH)
        return REEL_ETOOBIG;
    struct batch *b = reel_xcalloc(1, sizeof *b);
    uint32_t cap = 0, count = 0;
    for (uint32_t i = 0; i < n; i++) {
        const reel_event_in *e = &ev[i];
        const char *why = NULL;
        if (!e->user || !*e->user || !e->video || !*e->video)
            why = "missing user or video";
        else if (slen(e->user) > REEL_MAX_ID_LEN ||
                 slen(e->video) > REEL_MAX_ID_LEN ||
                 slen(e->rec.id) > REEL_MAX_ID_LEN ||
                 slen(e->rec.request_id) > REEL_MAX_ID_LEN)
            why = "id longer than 256 bytes";
        else if (e->rec.type < 0 || e->rec.type >= REEL_EV__COUNT)
            why = "unknown event type";
        else if (!isfinite(e->rec.ts))
            why = "bad ts";
        else if (reel_dataset_find_video(en->ds, e->video, strlen(e->video)) ==
                 REEL_NONE)
            why = "unknown video";
        if (why) {
            rej[(*n_rej)++] = (reel_engine_reject){i, why};
            continue;
        }
        size_t sz = event_size(e);
        if (!b->n_rec || b->rec[b->n_rec - 1].len + sz > REEL_WAL_RECORD_MAX) {
            if (b->n_rec)
                rec_end(&b->rec[b->n_rec - 1], count);
            size_t c = cap;
            REEL_GROW(b->rec, c, (size_t)b->n_rec + 1);
            cap = (uint32_t)c;
            reel_buf_init(&b->rec[b->n_rec]);
            rec_begin(&b->rec[b->n_rec++]);
            count = 0;
        }
        put_event(&b->rec[b->n_rec - 1], e);
        count++;
    }
    atomic_fetch_add(&en->rejected, *n_rej);
    if (!b->n_rec) {
        batch_free(b);
        return 0;
    }
    rec_end(&b->rec[b->n_rec - 1], count);
    b->type = REEL_ENGINE_WAL_EVENTS;
    return submit(en, b, done, ctx);
}

int reel_engine_video_delete(reel_engine *en, const char *video,
                             reel_engine_done_fn done, void *ctx)
{
    size_t len = strlen(video);
    if (reel_dataset_find_video(en->ds, video, len) == REEL_NONE)
        return REEL_ENOENT;
    struct batch *b = reel_xcalloc(1, sizeof *b);
    b->type = REEL_ENGINE_WAL_DELETE;
    b->rec = reel_xmalloc(sizeof *b->rec);
    b->n_rec = 1;
    reel_buf_init(&b->rec[0]);
    reel_buf_putc(&b->rec[0], REC_VERSION);
    reel_buf_putc(&b->rec[0], 0);
    put_u16(&b->rec[0], (uint16_t)len);
    reel_buf_append(&b->rec[0], video, len);
    return submit(en, b, done, ctx);
}

int reel_engine_video_deleted(reel_engine *en, const char *video)
{
    uint32_t v = reel_dataset_find_video(en->ds, video, strlen(video));
    if (v == REEL_NONE)
        return 0;
    pthread_rwlock_rdlock(&en->lock);
    int dead = !(en->allow[v / 64] >> (v % 64) & 1);
    pthread_rwlock_unlock(&en->lock);
    return dead;
}

/* ----------------------------------------------------------- requests */

static reel_reco_scratch *scratch_get(reel_engine *en)
{
    pthread_mutex_lock(&en->smu);
    reel_reco_scratch *s = en->n_spool ? en->spool[--en->n_spool] : NULL;
    pthread_mutex_unlock(&en->smu);
    return s ? s : reel_reco_scratch_new(&en->reco);
}

static void scratch_put(reel_engine *en, reel_reco_scratch *s)
{
    pthread_mutex_lock(&en->smu);
    REEL_GROW(en->spool, en->cap_spool, en->n_spool + 1);
    en->spool[en->n_spool++] = s;
    pthread_mutex_unlock(&en->smu);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int reel_engine_recommend(reel_engine *en, const char *user, uint32_t k,
                          reel_reco_item *out, uint32_t *n_out,
                          reel_engine_source *source)
{
    *n_out = 0;
    *source = REEL_ENGINE_COLD_START;
    if (k > REEL_ENGINE_MAX_K)
        return REEL_EINVAL;
    if (!k)
        return 0;
    reel_reco_scratch *s = scratch_get(en);
    double now = reel_clock_wall();
    pthread_rwlock_rdlock(&en->lock);
    uint32_t u = find_user(en, user, strlen(user));
    uint32_t n_seen = u == REEL_NONE ? 0 : en->hist[u].n;
    uint32_t *seen = reel_xmalloc(((size_t)n_seen + 1) * sizeof *seen);
    for (uint32_t i = 0; i < n_seen; i++)
        seen[i] = en->hist[u].e[i].video;
    uint32_t ring[REEL_FEAT_RING], nh = 0, n = 0;
    if (u != REEL_NONE)
        nh = reel_featstate_recent(en->fs, u, ring);
    if (nh) {
        reel_filter f = {.allow = en->allow,
                         .allow_bits = en->n_videos,
                         .exclude = seen,
                         .n_exclude = n_seen};
        n = reel_reco_rank(&en->reco, en->fs, u, now, ring, nh, &f, k, s, out);
        if (n)
            *source = REEL_ENGINE_PERSONALIZED;
    }
    if (!n) {
        qsort(seen, n_seen, sizeof *seen, cmp_u32);
        for (uint32_t i = 0; i < en->n_cold && n < k; i++) {
            uint32_t v = en->cold[i];
            if (!(en->allow[v / 64] >> (v % 64) & 1) ||
                bsearch(&v, seen, n_seen, sizeof *seen, cmp_u32))
                continue;
            out[n] = (reel_reco_item){v, 1.0f / (float)(1 + n), NAN};
            n++;
        }
    }
    pthread_rwlock_unlock(&en->lock);
    free(seen);
    scratch_put(en, s);
    *n_out = n;
    return 0;
}

int reel_engine_similar(reel_engine *en, const char *video, uint32_t k,
                        reel_reco_item *out, uint32_t *n_out)
{
    *n_out = 0;
    if (k > REEL_ENGINE_MAX_K)
        return REEL_EINVAL;
    uint32_t v = reel_dataset_find_video(en->ds, video, strlen(video));
    if (v == REEL_NONE)
        return REEL_ENOENT;
    if (!k || v >= en->vec->n || !en->vec->has[v])
        return 0;
    float *q = reel_xmalloc(((size_t)en->vec->dim + 1) * sizeof *q);
    reel_hit *hits = reel_xmalloc((size_t)k * sizeof *hits);
    reel_vectors_query(en->vec, &v, 1, 1, q);
    reel_filter f = {.allow = en->allow,
                     .allow_bits = en->n_videos,
                     .exclude = &v,
                     .n_exclude = 1};
    reel_search_params p = {.ef = k > 64 ? k : 64, .filter = &f};
    uint32_t n = 0;
    /* The read lock keeps the deleted bitmap still. */
    pthread_rwlock_rdlock(&en->lock);
    int rc = reel_index_search(en->ix, q, k, &p, hits, &n);
    pthread_rwlock_unlock(&en->lock);
    for (uint32_t i = 0; i < n && !rc; i++) {
        float sim = reel_retrieve_sim(en->vec, q, hits[i].id);
        out[i] = (reel_reco_item){hits[i].id, sim, sim};
    }
    free(hits);
    free(q);
    if (rc)
        return rc;
    *n_out = n;
    return 0;
}

void reel_engine_history(reel_engine *en, const char *user, uint32_t max,
                         reel_engine_event *out, uint32_t *n_out,
                         uint64_t *n_total)
{
    *n_out = 0;
    *n_total = 0;
    pthread_rwlock_rdlock(&en->lock);
    uint32_t u = find_user(en, user, strlen(user));
    if (u != REEL_NONE) {
        const struct hist *h = &en->hist[u];
        uint32_t n = h->n < max ? h->n : max;
        memcpy(out, h->e + (h->n - n), (size_t)n * sizeof *out);
        *n_out = n;
        *n_total = h->n;
    }
    pthread_rwlock_unlock(&en->lock);
}

const reel_dataset *reel_engine_dataset(const reel_engine *en)
{
    return en->ds;
}

const char *reel_engine_video_id(const reel_engine *en, uint32_t v)
{
    const reel_videos *vid = reel_dataset_videos(en->ds);
    return v < vid->n ? reel_strs_get(&vid->id, v, NULL) : NULL;
}

const char *reel_engine_video_title(const reel_engine *en, uint32_t v)
{
    const reel_videos *vid = reel_dataset_videos(en->ds);
    return v < vid->n ? reel_strs_get(&vid->title, v, NULL) : NULL;
}

void reel_engine_get_stats(reel_engine *en, reel_engine_stats *st)
{
    memset(st, 0, sizeof *st);
    st->events_ingested = atomic_load(&en->ingested);
    st->events_rejected = atomic_load(&en->rejected);
    st->events_replayed = en->replayed;
    st->events_dataset = reel_dataset_events(en->ds)->n;
    pthread_rwlock_rdlock(&en->lock);
    st->new_users = en->new_users.n;
    st->deleted = en->n_deleted;
    pthread_rwlock_unlock(&en->lock);
    st->users = en->n_ds_users + st->new_users;
    st->videos = en->n_videos;
    reel_index_stats xs;
    reel_index_get_stats(en->ix, &xs);
    st->videos_indexed = xs.n_live;
    st->has_ranker = en->rk != NULL;
    reel_wal_get_stats(en->wal, &st->wal);
}
