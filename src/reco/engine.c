#include "reco/engine.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>

#include <jansson.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/sort.h"
#include "base/strs.h"
#include "data/interactions.h"
#include "data/meta.h"
#include "embed/vectors.h"
#include "index/index.h"
#include "rank/gbtree.h"
#include "rank/ranker.h"
#include "rank/trainset.h"
#include "store/redis.h"
#include "store/snapshot.h"

#define DAY 86400.0

/* The events record (docs/formats/wal.md, "Type 1: events"). */
enum { REC_HEAD = 8, EV_HEAD = 26, REC_VERSION = 1 };

/* Demographic segments (reel_user_segment()). */
enum { N_SEG = REEL_SEGMENTS, NO_SEG = REEL_NO_SEGMENT };

/* Snapshot layout version (docs/formats/serve-snapshot.md). */
enum { SNAP_VERSION = 1 };

struct hist {
    reel_engine_event *e;
    uint32_t n, cap;
};

/* A batch of accepted changes waiting for durability: records
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

/* Positive events per (segment, video): open addressing on
 * (segment + 1) << 32 | video, 0 = empty. */
struct segmap {
    uint64_t *key;
    uint32_t *cnt;
    size_t cap, n;
};

struct reel_engine {
    reel_engine_opts o;
    char *dir;
    reel_dataset *ds;
    uint64_t ds_print; /* the dataset's fingerprint */

    /* The item side: replaced by reload under the write lock. */
    reel_vectors *vec;
    reel_index *ix;
    reel_ranker *rk;
    reel_ranker *rk_mlp; /* NULL unless models/ranker-mlp.reel exists */
    reel_reco reco;
    float prior_median; /* of the vectors' prior coordinate */
    pthread_mutex_t reload_mu;
    uint64_t reloads;

    /* State, under `lock`. */
    pthread_rwlock_t lock;
    reel_meta *meta;
    reel_featstate *fs;
    uint32_t n_users, n_videos; /* rows with state */
    size_t cap_u, cap_v;
    struct hist *hist; /* per user */
    uint64_t n_hist;   /* entries in all of them */
    uint64_t *allow;   /* live (not deleted) videos */
    uint32_t *pos;     /* positive events per video */
    float *d1;         /* decayed with a one-day half-life, as of d1_ts */
    double *d1_ts;
    uint8_t *vput;  /* 1: the vector came from a PUT */
    double last_ts; /* latest event time applied */
    struct segmap seg;
    uint32_t *cold; /* the global cold-start list */
    uint32_t n_cold;
    uint32_t *trend, *pop; /* its parts as of cold_at */
    uint32_t n_trend, n_pop;
    uint32_t *seg_cold[N_SEG];
    uint32_t n_seg_cold[N_SEG];
    double cold_at; /* monotonic time of the last computation */
    uint64_t n_deleted;
    uint64_t state_lsn; /* every record up to this is applied */

    /* The log and the batches waiting for it, in LSN order. */
    reel_wal *wal;
    pthread_mutex_t qmu;
    struct batch *qhead, *qtail;
    uint64_t applied;    /* the last batch taken for applying */
    pthread_mutex_t amu; /* one drain at a time */

    /* Scratch buffers of reel_reco_rank, reused across requests; taken
     * and given back under the read lock (reload frees them). */
    pthread_mutex_t smu;
    reel_reco_scratch **spool;
    size_t n_spool, cap_spool;

    /* Snapshots. */
    pthread_mutex_t snap_mu; /* one writer at a time */
    uint64_t snap_lsn;       /* the newest snapshot's LSN (0: none) */
    uint64_t snaps;
    double snap_s;
    _Atomic uint64_t snap_events; /* events applied since the last one */
    pthread_t snap_thread;
    int snap_running;
    pthread_mutex_t cv_mu;
    pthread_cond_t cv;
    int stop;

    _Atomic uint64_t ingested, rejected;
    uint64_t replayed, skipped_replay;

    /* The Redis store (src/store/redis.h); NULL: the embedded one. */
    char *store_url;
    pthread_mutex_t rmu;
    /* Event batches waiting for the applier thread (apply_main). */
    pthread_mutex_t jq_mu;
    pthread_cond_t jq_cv, jq_done_cv;
    struct rjob *jq_head, *jq_tail;
    int jq_stop;
    pthread_t j_thread;
    int j_running;
    reel_redis **rpool; /* idle connections */
    size_t n_rpool, cap_rpool;
    atomic_int r_ready;  /* seeded and the video copy loaded */
    atomic_int r_loaded; /* r_ready was 1 once */
    atomic_int r_up;     /* the last call reached Redis */
    pthread_t r_thread;  /* refreshes the copy of the video statistics */
    int r_running;
    /* The copy of the video statistics: the video log applied up to
     * r_cursor; v_at[v]: what video v's loaded record included; v_dirty:
     * changed since this process's last checkpoint (all three the refresh
     * thread's). */
    reel_redis_sid r_cursor;
    reel_redis_sid *v_at;
    uint8_t *v_dirty;
    reel_redis_vevent *r_ev;
    size_t r_ev_cap;
    double ckpt_at; /* monotonic time of the last checkpoint attempt */
    _Atomic uint64_t r_degraded, r_refreshes, r_unavailable, r_checkpoints;
    char r_error[256]; /* under rmu */
};

void reel_engine_opts_init(reel_engine_opts *o)
{
    *o = (reel_engine_opts){.sync = REEL_WAL_SYNC_ALWAYS,
                            .interval_ms = 10,
                            .reco = reel_reco_opts_default(),
                            .cold_refresh_s = 10,
                            .cold_n = 500,
                            .cold_segment_min = 1000,
                            .snapshot_every_s = 300,
                            .snapshot_every_events = 1000000,
                            .snapshot_on_close = 1,
                            .store_refresh_s = 1,
                            .store_checkpoint_s = 10};
    reel_redis_opts_init(&o->redis);
}

const char *reel_engine_source_name(reel_engine_source s)
{
    return s == REEL_ENGINE_PERSONALIZED ? "personalized" : "cold-start";
    /* DEGRADED is a cold start too; the API marks it "degraded". */
}

static int is_live(const reel_engine *en, uint32_t v)
{
    return v < en->n_videos && (en->allow[v / 64] >> (v % 64) & 1);
}

/* ------------------------------------------------------------ user state */

static uint32_t find_user(const reel_engine *en, const char *id, size_t len)
{
    return reel_meta_find_user(en->meta, id, len);
}

static uint32_t find_video(const reel_engine *en, const char *id, size_t len)
{
    return reel_meta_find_video(en->meta, id, len);
}

/* State rows for users 0..n-1 (writer only). */
static void users_grow(reel_engine *en, uint32_t n)
{
    if (n <= en->n_users)
        return;
    if (n > en->cap_u) {
        size_t old = en->cap_u;
        REEL_GROW(en->hist, en->cap_u, (size_t)n);
        memset(en->hist + old, 0, (en->cap_u - old) * sizeof *en->hist);
    }
    reel_featstate_grow(en->fs, n);
    en->n_users = n;
}

static size_t words(size_t n)
{
    return n / 64 + 1;
}

/* State rows for videos 0..n-1 (writer only): new ones live, no counts,
 * no vector. */
static void videos_grow(reel_engine *en, uint32_t n)
{
    if (n <= en->n_videos)
        return;
    if (n > en->cap_v) {
        size_t cap = en->cap_v < 1024 ? 1024 : en->cap_v;
        while (cap < n)
            cap += cap / 2;
        size_t ow = en->cap_v ? words(en->cap_v) : 0;
        en->allow = reel_xrealloc(en->allow, words(cap) * sizeof *en->allow);
        memset(en->allow + ow, 0, (words(cap) - ow) * sizeof *en->allow);
        en->pos = reel_xrealloc(en->pos, cap * sizeof *en->pos);
        en->d1 = reel_xrealloc(en->d1, cap * sizeof *en->d1);
        en->d1_ts = reel_xrealloc(en->d1_ts, cap * sizeof *en->d1_ts);
        en->vput = reel_xrealloc(en->vput, cap);
        en->cap_v = cap;
    }
    for (uint32_t v = en->n_videos; v < n; v++) {
        en->allow[v / 64] |= 1ull << (v % 64);
        en->pos[v] = 0;
        en->d1[v] = 0;
        en->d1_ts[v] = 0;
        en->vput[v] = 0;
    }
    reel_featstate_grow_videos(en->fs, n);
    reel_vectors_grow(en->vec, n);
    en->n_videos = n;
}

/* The user's demographic segment (NO_SEG when neither attribute is
 * known). */
static uint32_t segment_of(const reel_engine *en, uint32_t u)
{
    return reel_user_segment(reel_meta_users(en->meta), u);
}

static size_t seg_slot(const struct segmap *m, uint64_t key)
{
    size_t i = (size_t)(reel_hash_bytes(&key, sizeof key) & (m->cap - 1));
    while (m->key[i] && m->key[i] != key)
        i = (i + 1) & (m->cap - 1);
    return i;
}

static void seg_add(struct segmap *m, uint64_t key, uint32_t n)
{
    if ((m->n + 1) * 2 > m->cap) {
        struct segmap g = {0};
        g.cap = m->cap ? m->cap * 2 : 1024;
        g.key = reel_xcalloc(g.cap, sizeof *g.key);
        g.cnt = reel_xcalloc(g.cap, sizeof *g.cnt);
        for (size_t i = 0; i < m->cap; i++)
            if (m->key[i]) {
                size_t j = seg_slot(&g, m->key[i]);
                g.key[j] = m->key[i];
                g.cnt[j] = m->cnt[i];
            }
        g.n = m->n;
        free(m->key);
        free(m->cnt);
        *m = g;
    }
    size_t i = seg_slot(m, key);
    if (!m->key[i]) {
        m->key[i] = key;
        m->n++;
    }
    m->cnt[i] += n;
}

static uint64_t seg_key(uint32_t seg, uint32_t v)
{
    return (uint64_t)(seg + 1) << 32 | v;
}

/* The cold start's counts of a positive event on v at ts by a user of
 * segment s (writer). */
static void cold_counts(reel_engine *en, uint32_t v, double ts, uint32_t s)
{
    en->pos[v]++;
    double dt = ts - en->d1_ts[v];
    if (dt >= 0) {
        en->d1[v] = (float)(en->d1[v] * exp2(-dt / DAY) + 1);
        en->d1_ts[v] = ts;
    } else {
        /* Older than the last (out of order): its share as of d1_ts. */
        en->d1[v] = (float)(en->d1[v] + exp2(dt / DAY));
    }
    if (s != NO_SEG)
        seg_add(&en->seg, seg_key(s, v), 1);
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
    en->n_hist++;
    if (reel_event_is_positive((uint8_t)type))
        cold_counts(en, v, ts, segment_of(en, u));
}

/* ------------------------------------------------------ cold-start lists */

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
 * number: the older video). */
static int below(const struct cand *a, const struct cand *b)
{
    return a->s < b->s || (a->s == b->s && a->v > b->v);
}

/* The best n candidates seen so far, in a min-heap of h[0..m). */
struct topn {
    struct cand *h;
    uint32_t m, n;
};

static void top_push(struct topn *t, uint32_t v, float s)
{
    struct cand c = {v, s}, *h = t->h;
    if (t->m < t->n) {
        uint32_t i = t->m++;
        h[i] = c;
        for (; i && below(&h[i], &h[(i - 1) / 2]); i = (i - 1) / 2) {
            struct cand x = h[i];
            h[i] = h[(i - 1) / 2];
            h[(i - 1) / 2] = x;
        }
        return;
    }
    if (!t->n || !below(&h[0], &c))
        return;
    h[0] = c;
    for (uint32_t i = 0;;) {
        uint32_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < t->m && below(&h[l], &h[w]))
            w = l;
        if (r < t->m && below(&h[r], &h[w]))
            w = r;
        if (w == i)
            break;
        struct cand x = h[i];
        h[i] = h[w];
        h[w] = x;
        i = w;
    }
}

/* The heap's videos, best first, into a new array; *n their count. */
static uint32_t *top_take(struct topn *t, uint32_t *n)
{
    qsort(t->h, t->m, sizeof *t->h, by_s);
    uint32_t *out = reel_xmalloc(((size_t)t->m + 1) * sizeof *out);
    for (uint32_t i = 0; i < t->m; i++)
        out[i] = t->h[i].v;
    *n = t->m;
    t->m = 0;
    return out;
}

/* Round-robin over lists l[0..k) without duplicates, into a new array. */
static uint32_t *interleave(uint32_t *const *l, const uint32_t *nl, int k,
                            uint32_t nv, uint32_t *n)
{
    size_t total = 1, most = 0;
    for (int j = 0; j < k; j++) {
        total += nl[j];
        most = nl[j] > most ? nl[j] : most;
    }
    uint32_t *out = reel_xmalloc(total * sizeof *out);
    uint8_t *in = reel_xcalloc((size_t)nv + 1, 1);
    *n = 0;
    for (size_t i = 0; i < most; i++)
        for (int j = 0; j < k; j++)
            if (i < nl[j] && !in[l[j][i]]) {
                in[l[j][i]] = 1;
                out[(*n)++] = l[j][i];
            }
    free(in);
    return out;
}

/*
 * The global list: trending and popular as of the last cold_compute(),
 * and new videos (added at run time, no positive event yet, newest
 * first), round-robin (writer only). Cheap: a catalogue change calls it
 * without recounting.
 */
static void cold_merge(reel_engine *en)
{
    uint32_t nv = en->n_videos, n = en->o.cold_n ? en->o.cold_n : 1;
    uint32_t n_ds = reel_meta_n_ds_videos(en->meta);
    uint32_t *l[3] = {en->trend, en->pop, NULL};
    uint32_t nl[3] = {en->n_trend, en->n_pop, 0};
    l[2] = reel_xmalloc(((size_t)n + 1) * sizeof *l[2]);
    for (uint32_t v = nv; v > n_ds && nl[2] < n; v--)
        if (is_live(en, v - 1) && !en->pos[v - 1])
            l[2][nl[2]++] = v - 1;
    free(en->cold);
    en->cold = interleave(l, nl, 3, nv, &en->n_cold);
    free(l[2]);
}

/* Trending, popular and each segment's popular list, then the global list
 * (writer only; O(videos + segment counts)). */
static void cold_compute(reel_engine *en)
{
    uint32_t nv = en->n_videos, n = en->o.cold_n ? en->o.cold_n : 1;
    struct topn t = {reel_xmalloc((size_t)n * sizeof *t.h), 0, n};
    /* Decayed to the latest positive event: the order is the same at any
     * later time, since every count decays by the same factor, and the
     * reference is the same wherever the counts came from (the Redis
     * store's copy does not see every event's time). */
    double ref = -INFINITY;
    for (uint32_t v = 0; v < nv; v++)
        if (is_live(en, v) && en->pos[v] && en->d1_ts[v] > ref)
            ref = en->d1_ts[v];
    for (uint32_t v = 0; v < nv; v++) {
        if (!is_live(en, v) || !en->pos[v])
            continue;
        double dt = ref - en->d1_ts[v];
        top_push(&t, v, (float)(en->d1[v] * (dt > 0 ? exp2(-dt / DAY) : 1.0)));
    }
    free(en->trend);
    en->trend = top_take(&t, &en->n_trend);
    for (uint32_t v = 0; v < nv; v++)
        if (is_live(en, v) && en->pos[v])
            top_push(&t, v, (float)en->pos[v]);
    free(en->pop);
    en->pop = top_take(&t, &en->n_pop);
    free(t.h);
    cold_merge(en);
    /* Per segment: one pass over the map, one heap per segment. */
    struct topn st[N_SEG];
    uint64_t total[N_SEG] = {0};
    for (uint32_t s = 0; s < N_SEG; s++)
        st[s] = (struct topn){reel_xmalloc((size_t)n * sizeof *st[s].h), 0, n};
    for (size_t i = 0; i < en->seg.cap; i++) {
        uint64_t k = en->seg.key[i];
        if (!k)
            continue;
        uint32_t s = (uint32_t)(k >> 32) - 1, v = (uint32_t)k;
        if (s < N_SEG)
            total[s] += en->seg.cnt[i];
        if (s < N_SEG && is_live(en, v))
            top_push(&st[s], v, (float)en->seg.cnt[i]);
    }
    for (uint32_t s = 0; s < N_SEG; s++) {
        free(en->seg_cold[s]);
        en->seg_cold[s] = top_take(&st[s], &en->n_seg_cold[s]);
        if (total[s] < en->o.cold_segment_min)
            en->n_seg_cold[s] = 0; /* too few to tell from noise */
        free(st[s].h);
    }
    en->cold_at = reel_clock_mono();
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
 * event whose video the tables lack (the dataset changed under the log)
 * is skipped and counted.
 */
static int apply_events(reel_engine *en, const void *payload, uint32_t len,
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
        uint32_t v = find_video(en, video, vl);
        if (v == REEL_NONE || !isfinite(ts)) {
            (*n_skipped)++;
            continue;
        }
        uint32_t u = reel_meta_user_ref(en->meta, user, ul, NULL);
        users_grow(en, reel_meta_users(en->meta)->n);
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
    uint32_t v = find_video(en, (const char *)p + 4, get_u16(p + 2));
    if (v != REEL_NONE && is_live(en, v)) {
        en->allow[v / 64] &= ~(1ull << (v % 64));
        en->n_deleted++;
    }
    return 0;
}

/* The JSON object of a record of type 3 or 4 ("Type 3", "Type 4"), with
 * the vector that follows it in type 3. */
static int upsert_json(const void *payload, uint32_t len, json_t **o,
                       size_t *vec_off, uint32_t *dim)
{
    const uint8_t *p = payload;
    *o = NULL;
    *vec_off = 0;
    *dim = 0;
    if (len < 8 || p[0] != REC_VERSION || (p[1] & ~1u) || get_u16(p + 2))
        return REEL_ECORRUPT;
    uint32_t jl = get_u32(p + 4);
    if (jl > len - 8)
        return REEL_ECORRUPT;
    size_t end = 8 + (size_t)jl;
    if (p[1] & 1) {
        if (len - end < 4)
            return REEL_ECORRUPT;
        uint32_t n = get_u32(p + end);
        if (!n || n > REEL_INDEX_MAX_DIM || (len - end - 4) / 4 != n ||
            (len - end - 4) % 4)
            return REEL_ECORRUPT;
        *vec_off = end + 4;
        *dim = n;
    } else if (end != len) {
        return REEL_ECORRUPT;
    }
    json_error_t je;
    *o = json_loadb((const char *)p + 8, jl, 0, &je);
    return *o && json_is_object(*o) ? 0 : REEL_ECORRUPT;
}

/* The video upsert record (type 3). */
static int apply_video(reel_engine *en, const void *payload, uint32_t len)
{
    json_t *o;
    size_t voff;
    uint32_t dim;
    int rc = upsert_json(payload, len, &o, &voff, &dim);
    if (rc) {
        json_decref(o);
        return rc;
    }
    reel_arena a;
    reel_arena_init(&a, 4096);
    reel_video_rec rec;
    reel_diag d;
    reel_diag_clear(&d);
    uint32_t v;
    int is_new;
    if ((rc = reel_video_rec_from_json(o, &a, &rec, &d)) ||
        (rc = reel_meta_put_video(en->meta, &rec, &v, &is_new, &d))) {
        reel_log_error("wal: video record: %s", d.msg);
        rc = REEL_ECORRUPT;
        goto out;
    }
    videos_grow(en, reel_meta_videos(en->meta)->n);
    if (dim && dim != en->vec->dim) {
        reel_log_warn("wal: the vector of video %s has %u dimensions, the "
                      "vectors %u: left out",
                      rec.id, dim, en->vec->dim);
    } else if (dim) {
        float *row = reel_vectors_row(en->vec, v);
        memcpy(row, (const uint8_t *)payload + voff, (size_t)dim * 4);
        en->vec->has[v] = 1;
        en->vput[v] = 1;
        if ((rc = reel_index_update(en->ix, v, row)))
            reel_log_error("index: adding video %s: %s", rec.id,
                           reel_strerror(rc));
    }
out:
    reel_arena_free(&a);
    json_decref(o);
    return rc;
}

/* The user upsert record (type 4). */
static int apply_user(reel_engine *en, const void *payload, uint32_t len)
{
    json_t *o;
    size_t voff;
    uint32_t dim;
    int rc = upsert_json(payload, len, &o, &voff, &dim);
    if (!rc && dim)
        rc = REEL_ECORRUPT;
    if (rc) {
        json_decref(o);
        return rc;
    }
    reel_arena a;
    reel_arena_init(&a, 1024);
    reel_user_rec rec;
    reel_diag d;
    reel_diag_clear(&d);
    uint32_t u;
    int is_new;
    if ((rc = reel_user_rec_from_json(o, &a, &rec, &d)) ||
        (rc = reel_meta_put_user(en->meta, &rec, &u, &is_new, &d))) {
        reel_log_error("wal: user record: %s", d.msg);
        rc = REEL_ECORRUPT;
    } else {
        users_grow(en, reel_meta_users(en->meta)->n);
    }
    reel_arena_free(&a);
    json_decref(o);
    return rc;
}

static int apply_any(reel_engine *en, uint8_t type, const void *payload,
                     uint32_t len, uint64_t *n_applied, uint64_t *n_skipped)
{
    switch (type) {
    case REEL_ENGINE_WAL_EVENTS:
        return apply_events(en, payload, len, n_applied, n_skipped);
    case REEL_ENGINE_WAL_DELETE:
        return apply_delete(en, payload, len);
    case REEL_ENGINE_WAL_VIDEO:
        return apply_video(en, payload, len);
    case REEL_ENGINE_WAL_USER:
        return apply_user(en, payload, len);
    default:
        return REEL_ECORRUPT;
    }
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
    en->applied = en->state_lsn = lsn;
    return rc;
}

/* ----------------------------------------------------------- item side */

static int load_index(const char *dir, const reel_vectors *vec, reel_index **ix,
                      reel_diag *d)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/index/item2vec.idx", dir);
    struct stat st;
    if (!stat(path, &st)) {
        int rc = reel_index_open(path, ix, d);
        if (rc)
            return rc;
        reel_index_stats xs;
        reel_index_get_stats(*ix, &xs);
        if (xs.dim != vec->dim)
            return reel_diag_fail(d, REEL_EFORMAT,
                                  "%s: dimension %u, the vectors have %u", path,
                                  xs.dim, vec->dim);
        if (xs.metric != reel_retrieve_metric(vec))
            return reel_diag_fail(
                d, REEL_EFORMAT,
                "%s: metric %s, these vectors need %s (rebuild it with "
                "reel build or reel index build --metric %s)",
                path, reel_metric_name(xs.metric),
                reel_metric_name(reel_retrieve_metric(vec)),
                reel_metric_name(reel_retrieve_metric(vec)));
        return 0;
    }
    reel_log_info("%s not found; indexing the vectors now (reel build "
                  "writes it)",
                  path);
    return reel_retrieve_index(vec, ix, d);
}

struct items {
    reel_vectors *vec;
    reel_index *ix;
    reel_ranker *rk;
    reel_ranker *rk_mlp; /* models/ranker-mlp.reel, for experiment arms */
};

static void items_free(struct items *it)
{
    reel_ranker_free(it->rk);
    reel_ranker_free(it->rk_mlp);
    reel_index_free(it->ix);
    reel_vectors_free(it->vec);
    *it = (struct items){0};
}

/* The vectors, index and ranker files of dir. */
static int items_load(const char *dir, const reel_dataset *ds, struct items *it,
                      reel_diag *d)
{
    *it = (struct items){0};
    char path[4096];
    snprintf(path, sizeof path, "%s/vectors/item2vec.reel", dir);
    struct stat st;
    int rc;
    if (stat(path, &st))
        rc = reel_diag_fail(d, REEL_ENOENT,
                            "%s not found: run `reel build %s` first", path,
                            dir);
    else if (!(rc = reel_vectors_load(path, ds, &it->vec, d)) &&
             !(rc = load_index(dir, it->vec, &it->ix, d))) {
        snprintf(path, sizeof path, "%s/models/ranker.json", dir);
        if (!stat(path, &st))
            rc = reel_ranker_load(path, &it->rk, d);
        snprintf(path, sizeof path, "%s/models/ranker-mlp.reel", dir);
        if (!rc && !stat(path, &st))
            rc = reel_ranker_load(path, &it->rk_mlp, d);
    }
    if (rc)
        items_free(it);
    return rc;
}

static int cmp_f32(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The median of the prior coordinate over the present rows (0 without a
 * prior). */
static float prior_median(const reel_vectors *v)
{
    if (!v->prior)
        return 0;
    float *p = reel_xmalloc(((size_t)v->n + 1) * sizeof *p);
    uint32_t n = 0;
    for (uint32_t i = 0; i < v->n; i++)
        if (v->has[i])
            p[n++] = reel_vectors_row(v, i)[v->dim - 1];
    qsort(p, n, sizeof *p, cmp_f32);
    float m = n ? p[n / 2] : 0;
    free(p);
    return m;
}

/* Points the request path at the item side (under the write lock, or
 * before anyone else runs). */
static void items_use(reel_engine *en, const struct items *it, float median)
{
    en->vec = it->vec;
    en->ix = it->ix;
    en->rk = it->rk;
    en->rk_mlp = it->rk_mlp;
    en->prior_median = median;
    en->reco = (reel_reco){.ds = en->ds,
                           .vid = reel_meta_videos(en->meta),
                           .vec = en->vec,
                           .ix = en->ix,
                           .ranker = en->rk,
                           .o = en->o.reco};
}

/* ------------------------------------------------------------ snapshots */

/* What the state was built on: a snapshot over another dataset is not
 * used. */
static uint64_t ds_fingerprint(const reel_dataset *ds)
{
    const reel_events *e = reel_dataset_events(ds);
    const char *meta = reel_dataset_meta(ds);
    uint64_t h[5] = {reel_dataset_videos(ds)->n, reel_dataset_users(ds)->n,
                     e->n, 0, meta ? reel_hash_bytes(meta, strlen(meta)) : 0};
    if (e->n)
        memcpy(&h[3], &e->ts[e->n - 1], 8);
    return reel_hash_bytes(h, sizeof h);
}

/* Writes the state's sections (under amu and reload_mu). */
static int snap_sections(reel_engine *en, reel_secfile_writer *w, reel_diag *d)
{
    uint32_t nu = en->n_users, nv = en->n_videos, n_put = 0;
    for (uint32_t v = 0; v < nv; v++)
        n_put += en->vput[v] && en->vec->has[v];
    uint64_t params[8] = {SNAP_VERSION,
                          en->ds_print,
                          nv,
                          nu,
                          en->n_hist,
                          n_put ? en->vec->dim : 0,
                          en->n_deleted,
                          0};
    int rc;
    if ((rc = reel_secfile_writer_add(w, "engine.params", REEL_SEC_U64, params,
                                      8)) ||
        (rc = reel_secfile_writer_add(w, "engine.last_ts", REEL_SEC_F64,
                                      &en->last_ts, 1)))
        goto io;
    /* Histories: counts, then the columns user after user. */
    if ((rc = reel_secfile_writer_begin(w, "engine.hist.n", REEL_SEC_U32)))
        goto io;
    for (uint32_t u = 0; u < nu && !rc; u++)
        rc = reel_secfile_writer_append(w, &en->hist[u].n, 4);
    if (rc || (rc = reel_secfile_writer_end(w)))
        goto io;
    static const char *const col[3] = {"engine.hist.video", "engine.hist.type",
                                       "engine.hist.ts"};
    static const enum reel_sectype ty[3] = {REEL_SEC_U32, REEL_SEC_U8,
                                            REEL_SEC_F64};
    for (int c = 0; c < 3; c++) {
        if ((rc = reel_secfile_writer_begin(w, col[c], ty[c])))
            goto io;
        enum { CHUNK = 4096 };
        uint8_t buf[CHUNK * 8];
        for (uint32_t u = 0; u < nu && !rc; u++) {
            const struct hist *h = &en->hist[u];
            for (uint32_t i = 0; i < h->n && !rc; i += CHUNK) {
                uint32_t m = h->n - i < CHUNK ? h->n - i : CHUNK;
                for (uint32_t j = 0; j < m; j++) {
                    const reel_engine_event *e = &h->e[i + j];
                    if (c == 0)
                        memcpy(buf + 4 * j, &e->video, 4);
                    else if (c == 1)
                        buf[j] = e->type;
                    else
                        memcpy(buf + 8 * j, &e->ts, 8);
                }
                rc = reel_secfile_writer_append(
                    w, buf, (uint64_t)m * reel_sectype_size(ty[c]));
            }
        }
        if (rc || (rc = reel_secfile_writer_end(w)))
            goto io;
    }
    if ((rc = reel_secfile_writer_add(w, "engine.allow", REEL_SEC_U64,
                                      en->allow, words(nv))) ||
        (rc = reel_secfile_writer_add(w, "engine.pos", REEL_SEC_U32, en->pos,
                                      nv)) ||
        (rc = reel_secfile_writer_add(w, "engine.d1", REEL_SEC_F32, en->d1,
                                      nv)) ||
        (rc = reel_secfile_writer_add(w, "engine.d1_ts", REEL_SEC_F64,
                                      en->d1_ts, nv)))
        goto io;
    /* The vectors given with PUT, row numbers then rows. */
    if ((rc = reel_secfile_writer_begin(w, "engine.vput.rows", REEL_SEC_U32)))
        goto io;
    for (uint32_t v = 0; v < nv && !rc; v++)
        if (en->vput[v] && en->vec->has[v])
            rc = reel_secfile_writer_append(w, &v, 4);
    if (rc || (rc = reel_secfile_writer_end(w)) ||
        (rc = reel_secfile_writer_begin(w, "engine.vput.data", REEL_SEC_F32)))
        goto io;
    for (uint32_t v = 0; v < nv && !rc; v++)
        if (en->vput[v] && en->vec->has[v])
            rc = reel_secfile_writer_append(w, reel_vectors_row(en->vec, v),
                                            (uint64_t)en->vec->dim * 4);
    if (rc || (rc = reel_secfile_writer_end(w)))
        goto io;
    /* The segment counts, in slot order. */
    if ((rc = reel_secfile_writer_begin(w, "engine.seg.key", REEL_SEC_U64)))
        goto io;
    for (size_t i = 0; i < en->seg.cap && !rc; i++)
        if (en->seg.key[i])
            rc = reel_secfile_writer_append(w, &en->seg.key[i], 8);
    if (rc || (rc = reel_secfile_writer_end(w)) ||
        (rc = reel_secfile_writer_begin(w, "engine.seg.count", REEL_SEC_U32)))
        goto io;
    for (size_t i = 0; i < en->seg.cap && !rc; i++)
        if (en->seg.key[i])
            rc = reel_secfile_writer_append(w, &en->seg.cnt[i], 4);
    if (rc || (rc = reel_secfile_writer_end(w)))
        goto io;
    if ((rc = reel_meta_save(en->meta, w, "meta.", d)) ||
        (rc = reel_featstate_save(en->fs, w, "fs.", d)))
        return rc;
    return 0;
io:
    return reel_diag_fail(d, rc, "writing the snapshot: %s", reel_strerror(rc));
}

int reel_engine_snapshot(reel_engine *en, reel_diag *d)
{
    if (en->store_url)
        return reel_diag_fail(d, REEL_EUNSUPPORTED,
                              "the state is in Redis: Redis persists it");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/snapshots", en->dir);
    pthread_mutex_lock(&en->snap_mu);
    double t0 = reel_clock_mono();
    /* The state changes only where durable batches are applied (under
     * amu) and the item side only in reload (under reload_mu): holding
     * both keeps it still while requests, which take the read lock only,
     * go on. */
    pthread_mutex_lock(&en->reload_mu);
    pthread_mutex_lock(&en->amu);
    uint64_t lsn = en->state_lsn;
    uint64_t events = atomic_exchange(&en->snap_events, 0);
    if (!lsn || lsn == en->snap_lsn) {
        pthread_mutex_unlock(&en->amu);
        pthread_mutex_unlock(&en->reload_mu);
        pthread_mutex_unlock(&en->snap_mu);
        atomic_fetch_add(&en->snap_events, events);
        return 0;
    }
    reel_secfile_writer *w;
    int rc = reel_snapshot_writer_open(dir, lsn, &w, d);
    if (!rc && (rc = snap_sections(en, w, d)))
        reel_secfile_writer_free(w);
    pthread_mutex_unlock(&en->amu);
    pthread_mutex_unlock(&en->reload_mu);
    /* The fsync and rename happen outside the locks. */
    if (!rc)
        rc = reel_secfile_writer_commit(w, d);
    if (rc) {
        atomic_fetch_add(&en->snap_events, events);
        pthread_mutex_unlock(&en->snap_mu);
        return rc;
    }
    en->snap_lsn = lsn;
    en->snaps++;
    en->snap_s = reel_clock_mono() - t0;
    /* Keep two; the log from the older one's next record on. */
    uint64_t *lsns;
    size_t n;
    if (!(rc = reel_snapshot_prune(dir, 2)) &&
        !(rc = reel_snapshot_list(dir, &lsns, &n))) {
        if (n >= 2)
            rc = reel_wal_truncate_before(en->wal, lsns[n - 2] + 1);
        free(lsns);
    }
    if (rc)
        reel_log_warn("snapshot %llu written; pruning or truncating the log "
                      "failed: %s",
                      (unsigned long long)lsn, reel_strerror(rc));
    reel_log_info("snapshot %llu written in %.2fs", (unsigned long long)lsn,
                  en->snap_s);
    pthread_mutex_unlock(&en->snap_mu);
    return 0;
}

/* Checks one section's type and count. */
static int need(const reel_secfile *f, const char *name, enum reel_sectype t,
                uint64_t count, const void **data, reel_diag *d)
{
    const reel_section *s;
    int rc = reel_secfile_need(f, name, t, count, &s, d);
    if (!rc)
        *data = s->data;
    return rc;
}

/* Restores the state from a snapshot (at open, on a fresh state). */
static int snap_load(reel_engine *en, const reel_snapshot *snap,
                     const char *path, reel_diag *d)
{
    const reel_secfile *f = reel_snapshot_file(snap);
    const uint64_t *params;
    int rc;
    if ((rc = need(f, "engine.params", REEL_SEC_U64, 8, (const void **)&params,
                   d)))
        return rc;
    if (params[0] != SNAP_VERSION)
        return reel_diag_fail(d, REEL_EVERSION, "%s: version %llu", path,
                              (unsigned long long)params[0]);
    if (params[1] != en->ds_print)
        return reel_diag_fail(
            d, REEL_EFORMAT,
            "%s was written over another dataset than %s/dataset.reel: the "
            "state it holds (and the log after it) belong to that one; move "
            "%s/snapshots and %s/wal away to start from this dataset",
            path, en->dir, en->dir, en->dir);
    if ((rc = reel_meta_load(en->meta, f, "meta.", d)))
        return rc;
    uint64_t nv = params[2], nu = params[3], nh = params[4], dim = params[5];
    if (nv != reel_meta_videos(en->meta)->n ||
        nu < reel_meta_users(en->meta)->n || nu >= UINT32_MAX)
        return reel_diag_fail(
            d, REEL_ECORRUPT,
            "%s: %llu videos and %llu users, the tables "
            "hold %u and %u",
            path, (unsigned long long)nv, (unsigned long long)nu,
            reel_meta_videos(en->meta)->n, reel_meta_users(en->meta)->n);
    /* Users with events but no row cannot exist: every event makes one. */
    if (nu != reel_meta_users(en->meta)->n)
        return reel_diag_fail(d, REEL_ECORRUPT, "%s: user count", path);
    users_grow(en, (uint32_t)nu);
    videos_grow(en, (uint32_t)nv);
    if ((rc = reel_featstate_load(en->fs, f, "fs.", d)))
        return rc;
    const double *last_ts, *hts, *d1_ts;
    const uint32_t *hn, *hv, *pos;
    const uint8_t *ht;
    const uint64_t *allow;
    const float *d1;
    if ((rc = need(f, "engine.last_ts", REEL_SEC_F64, 1,
                   (const void **)&last_ts, d)) ||
        (rc = need(f, "engine.hist.n", REEL_SEC_U32, nu, (const void **)&hn,
                   d)) ||
        (rc = need(f, "engine.hist.video", REEL_SEC_U32, nh, (const void **)&hv,
                   d)) ||
        (rc = need(f, "engine.hist.type", REEL_SEC_U8, nh, (const void **)&ht,
                   d)) ||
        (rc = need(f, "engine.hist.ts", REEL_SEC_F64, nh, (const void **)&hts,
                   d)) ||
        (rc = need(f, "engine.allow", REEL_SEC_U64, words(nv),
                   (const void **)&allow, d)) ||
        (rc =
             need(f, "engine.pos", REEL_SEC_U32, nv, (const void **)&pos, d)) ||
        (rc = need(f, "engine.d1", REEL_SEC_F32, nv, (const void **)&d1, d)) ||
        (rc = need(f, "engine.d1_ts", REEL_SEC_F64, nv, (const void **)&d1_ts,
                   d)))
        return rc;
    uint64_t sum = 0;
    for (uint64_t u = 0; u < nu; u++)
        sum += hn[u];
    if (sum != nh)
        return reel_diag_fail(
            d, REEL_ECORRUPT, "%s: engine.hist.n adds up to %llu, not %llu",
            path, (unsigned long long)sum, (unsigned long long)nh);
    for (uint64_t i = 0; i < nh; i++)
        if (hv[i] >= nv || ht[i] >= REEL_EV__COUNT ||
            ht[i] == REEL_EV_IMPRESSION)
            return reel_diag_fail(d, REEL_ECORRUPT,
                                  "%s: history entry %llu is out of range",
                                  path, (unsigned long long)i);
    uint64_t off = 0;
    for (uint32_t u = 0; u < nu; u++) {
        struct hist *h = &en->hist[u];
        free(h->e);
        h->n = h->cap = hn[u];
        h->e = reel_xmalloc(((size_t)h->n + 1) * sizeof *h->e);
        for (uint32_t i = 0; i < h->n; i++, off++)
            h->e[i] = (reel_engine_event){hv[off], ht[off], hts[off]};
    }
    en->n_hist = nh;
    en->last_ts = *last_ts;
    memcpy(en->allow, allow, words(nv) * sizeof *allow);
    en->n_deleted = 0;
    for (uint32_t v = 0; v < nv; v++)
        en->n_deleted += !is_live(en, v);
    memcpy(en->pos, pos, nv * sizeof *pos);
    memcpy(en->d1, d1, nv * sizeof *d1);
    memcpy(en->d1_ts, d1_ts, nv * sizeof *d1_ts);
    /* Vectors given with PUT. */
    const reel_section *rows = reel_secfile_find(f, "engine.vput.rows");
    const float *vd;
    if (!rows || rows->type != REEL_SEC_U32)
        return reel_diag_fail(d, REEL_ECORRUPT, "%s: engine.vput.rows", path);
    if (rows->count && dim != en->vec->dim) {
        reel_log_warn("%s: the %llu vectors given with PUT have %llu "
                      "dimensions, the vectors now %u: left out",
                      path, (unsigned long long)rows->count,
                      (unsigned long long)dim, en->vec->dim);
    } else if (rows->count) {
        if ((rc = need(f, "engine.vput.data", REEL_SEC_F32, rows->count * dim,
                       (const void **)&vd, d)))
            return rc;
        const uint32_t *r = rows->data;
        for (uint64_t i = 0; i < rows->count; i++) {
            if (r[i] >= nv)
                return reel_diag_fail(d, REEL_ECORRUPT,
                                      "%s: engine.vput.rows out of range",
                                      path);
            float *row = reel_vectors_row(en->vec, r[i]);
            memcpy(row, vd + i * dim, dim * sizeof *row);
            en->vec->has[r[i]] = 1;
            en->vput[r[i]] = 1;
            if ((rc = reel_index_update(en->ix, r[i], row)))
                return reel_diag_fail(d, rc, "%s: indexing a vector: %s", path,
                                      reel_strerror(rc));
        }
    }
    const reel_section *sk = reel_secfile_find(f, "engine.seg.key");
    const uint32_t *sc;
    if (!sk || sk->type != REEL_SEC_U64 ||
        (rc = need(f, "engine.seg.count", REEL_SEC_U32, sk->count,
                   (const void **)&sc, d)))
        return rc ? rc
                  : reel_diag_fail(d, REEL_ECORRUPT, "%s: engine.seg.key",
                                   path);
    const uint64_t *keys = sk->data;
    for (uint64_t i = 0; i < sk->count; i++) {
        uint64_t seg = keys[i] >> 32;
        if (!seg || seg > N_SEG || (uint32_t)keys[i] >= nv)
            return reel_diag_fail(d, REEL_ECORRUPT,
                                  "%s: engine.seg.key out of range", path);
        seg_add(&en->seg, keys[i], sc[i]);
    }
    return 0;
}

/* ---------------------------------------------------------------- open */

static void *snap_main(void *arg)
{
    reel_engine *en = arg;
    pthread_mutex_lock(&en->cv_mu);
    double last = reel_clock_mono();
    while (!en->stop) {
        double every = en->o.snapshot_every_s;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double wait = every > 0 ? every - (reel_clock_mono() - last) : 3600;
        if (wait < 0.01)
            wait = 0.01;
        ts.tv_sec += (time_t)wait;
        ts.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&en->cv, &en->cv_mu, &ts);
        if (en->stop)
            break;
        int by_time = every > 0 && reel_clock_mono() - last >= every;
        int by_count =
            en->o.snapshot_every_events &&
            atomic_load(&en->snap_events) >= en->o.snapshot_every_events;
        if (!by_time && !by_count)
            continue;
        pthread_mutex_unlock(&en->cv_mu);
        reel_diag d;
        reel_diag_clear(&d);
        if (reel_engine_snapshot(en, &d))
            reel_log_error("snapshot failed: %s", d.msg);
        last = reel_clock_mono();
        pthread_mutex_lock(&en->cv_mu);
    }
    pthread_mutex_unlock(&en->cv_mu);
    return NULL;
}

/* Why an arriving event is refused (a static string), or NULL (under
 * the read lock). */
static const char *event_problem(const reel_engine *en, const reel_event_in *e)
{
    if (!e->user || !*e->user || !e->video || !*e->video)
        return "missing user or video";
    if (slen(e->user) > REEL_MAX_ID_LEN || slen(e->video) > REEL_MAX_ID_LEN ||
        slen(e->rec.id) > REEL_MAX_ID_LEN ||
        slen(e->rec.request_id) > REEL_MAX_ID_LEN)
        return "id longer than 256 bytes";
    if (e->rec.type < 0 || e->rec.type >= REEL_EV__COUNT)
        return "unknown event type";
    if (!isfinite(e->rec.ts))
        return "bad ts";
    if (find_video(en, e->video, strlen(e->video)) == REEL_NONE)
        return "unknown video";
    return NULL;
}

/* ------------------------------------------------------------ Redis */

static reel_reco_scratch *scratch_get(reel_engine *en);
static void scratch_put(reel_engine *en, reel_reco_scratch *s);
static uint32_t cold_list(const reel_engine *en, uint32_t u, uint32_t *seen,
                          uint32_t n_seen, uint32_t k, reel_reco_item *out);

#define REDIS_CATALOGUE                                                        \
    "with the state in Redis the catalogue comes from the data directory: "    \
    "change it there (reel import, reel build) and POST /admin/reload"

/* In Redis mode (en->store_url): user state lives in Redis, read per
 * request, and is written by one applier thread (apply_main); video
 * statistics live here, kept by a refresh thread that applies Redis's
 * video log and takes its turn writing checkpoints (the features and the
 * cold-start lists read this copy); the log, snapshots and local user
 * state are unused. */

static uint32_t ids_index(void *ctx, const char *id, size_t len)
{
    return find_video(ctx, id, len);
}

static const char *ids_id(void *ctx, uint32_t v)
{
    const reel_engine *en = ctx;
    return reel_strs_get(&reel_meta_videos(en->meta)->id, v, NULL);
}

static reel_redis_ids en_ids(reel_engine *en)
{
    return (reel_redis_ids){en, reel_meta_videos(en->meta)->n, ids_index,
                            ids_id};
}

/* A connection from the pool (opened lazily; the URL was checked). */
static reel_redis *rget(reel_engine *en)
{
    reel_redis *r = NULL;
    pthread_mutex_lock(&en->rmu);
    if (en->n_rpool)
        r = en->rpool[--en->n_rpool];
    pthread_mutex_unlock(&en->rmu);
    if (!r && reel_redis_open(en->store_url, &en->o.redis, &r, NULL))
        abort(); /* checked at open */
    /* The refresh thread probes Redis every refresh_s: once it is back,
     * pooled connections stop backing off. */
    if (atomic_load(&en->r_up))
        reel_redis_retry_now(r);
    return r;
}

/* Gives r back, noting whether the call that used it reached Redis. */
static void rput(reel_engine *en, reel_redis *r, int rc)
{
    pthread_mutex_lock(&en->rmu);
    if (rc == REEL_EUNAVAILABLE) {
        snprintf(en->r_error, sizeof en->r_error, "%s", reel_redis_error(r));
        atomic_fetch_add(&en->r_unavailable, 1);
    }
    atomic_store(&en->r_up, rc != REEL_EUNAVAILABLE);
    /* After an outage Redis may come back empty: the refresh thread checks
     * the marker (and seeds again) before the state counts as ready. */
    if (rc == REEL_EUNAVAILABLE)
        atomic_store(&en->r_ready, 0);
    if (en->n_rpool == en->cap_rpool)
        REEL_GROW(en->rpool, en->cap_rpool, en->n_rpool + 1);
    en->rpool[en->n_rpool++] = r;
    pthread_mutex_unlock(&en->rmu);
}

static uint32_t seg_get(const struct segmap *m, uint64_t key)
{
    if (!m->cap)
        return 0;
    size_t i = seg_slot(m, key);
    return m->key[i] ? m->cnt[i] : 0;
}

/* Copies one video's checkpointed record from Redis (writer). */
static void mirror_video(reel_engine *en, uint32_t v,
                         const reel_redis_video *st)
{
    reel_featstate_set_video(en->fs, v, &st->fs);
    en->pos[v] = st->pos;
    en->d1[v] = st->d1;
    en->d1_ts[v] = st->d1_ts;
    if (st->d1_ts > en->last_ts)
        en->last_ts = st->d1_ts;
    for (uint32_t g = 0; g < N_SEG; g++) {
        /* Exactly the record's (a Redis that lost data has fewer). */
        uint64_t key = seg_key(g, v);
        if (st->seg[g] == seg_get(&en->seg, key))
            continue;
        seg_add(&en->seg, key, 0);
        en->seg.cnt[seg_slot(&en->seg, key)] = st->seg[g];
    }
    en->v_at[v] = st->at;
}

/* Reads every video's checkpointed record: the copy is then at the
 * checkpoint's position, each video skipping the log entries its record
 * already includes. */
static int mirror_load(reel_engine *en, reel_redis *r)
{
    enum { CHUNK = 1000 };
    if (!en->v_at) {
        en->v_at = reel_xcalloc((size_t)en->n_videos + 1, sizeof *en->v_at);
        en->v_dirty = reel_xcalloc((size_t)en->n_videos + 1, 1);
    }
    /* The position first: records read after it include at least it. */
    reel_redis_sid at;
    int rc = reel_redis_videos_at(r, &at);
    if (rc)
        return rc;
    en->last_ts = -INFINITY; /* from the records again */
    uint32_t *ids = reel_xmalloc(CHUNK * sizeof *ids);
    reel_redis_video *st = reel_xmalloc(CHUNK * sizeof *st);
    reel_redis_ids map = en_ids(en);
    for (uint32_t at0 = 0; at0 < en->n_videos && !rc; at0 += CHUNK) {
        uint32_t m = en->n_videos - at0 < CHUNK ? en->n_videos - at0 : CHUNK;
        for (uint32_t i = 0; i < m; i++)
            ids[i] = at0 + i;
        if ((rc = reel_redis_videos_get(r, &map, ids, m, st)))
            break;
        pthread_rwlock_wrlock(&en->lock);
        for (uint32_t i = 0; i < m; i++)
            mirror_video(en, ids[i], &st[i]);
        pthread_rwlock_unlock(&en->lock);
    }
    free(ids);
    free(st);
    if (!rc) {
        en->r_cursor = at;
        memset(en->v_dirty, 0, en->n_videos);
    }
    return rc;
}

/* Applies one video half from the log (writer). */
static void mirror_apply(reel_engine *en, const reel_redis_vevent *e)
{
    uint32_t v = e->video;
    if (v >= en->n_videos || reel_redis_sid_cmp(e->at, en->v_at[v]) <= 0)
        return; /* in the record already */
    reel_fs_video fv = *reel_featstate_video(en->fs, v);
    reel_featstate_apply_video(en->fs, &fv, v, e->type, e->ts, e->watch_s,
                               e->rating, e->repeat);
    reel_featstate_set_video(en->fs, v, &fv);
    if (e->ts > en->last_ts)
        en->last_ts = e->ts;
    if (reel_event_is_positive(e->type))
        cold_counts(en, v, e->ts, e->seg);
    en->v_dirty[v] = 1;
}

/* Writes the records of the videos changed since this process's last
 * checkpoint, at its position in the log, when no other process has
 * checkpointed lately (the lock). */
static int checkpoint(reel_engine *en, reel_redis *r)
{
    double now = reel_clock_mono();
    double every = en->o.store_checkpoint_s > 0 ? en->o.store_checkpoint_s : 10;
    if (en->ckpt_at > 0 && now - en->ckpt_at < every)
        return 0;
    en->ckpt_at = now;
    int mine;
    reel_redis_sid was;
    int rc = reel_redis_ckpt_begin(r, (int)(every * 1000), &mine, &was);
    if (rc || !mine)
        return rc;
    /* Not past the last checkpoint: nothing to add to it (the lock then
     * expires a period from now). */
    if (reel_redis_sid_cmp(en->r_cursor, was) <= 0)
        return reel_redis_ckpt_end(r, was, (reel_redis_sid){0, 0});
    reel_redis_ids map = en_ids(en);
    /* The dirty videos' segment counts, in one pass over the map (a lookup
     * per segment and video would cost more). */
    uint32_t *slot = reel_xmalloc(((size_t)en->n_videos + 1) * sizeof *slot);
    uint32_t n = 0;
    for (uint32_t v = 0; v < en->n_videos; v++)
        slot[v] = en->v_dirty[v] ? n++ : REEL_NONE;
    uint32_t(*segs)[N_SEG] = reel_xcalloc((size_t)n + 1, sizeof *segs);
    for (size_t i = 0; i < en->seg.cap; i++) {
        uint64_t key = en->seg.key[i];
        if (!key)
            continue;
        uint32_t v = (uint32_t)key, g = (uint32_t)(key >> 32) - 1;
        if (v < en->n_videos && g < N_SEG && slot[v] != REEL_NONE)
            segs[slot[v]][g] = en->seg.cnt[i];
    }
    for (uint32_t v = 0; v < en->n_videos && !rc; v++) {
        if (slot[v] == REEL_NONE)
            continue;
        reel_redis_video st;
        reel_redis_video_init(&st);
        st.fs = *reel_featstate_video(en->fs, v);
        st.pos = en->pos[v];
        st.d1 = en->d1[v];
        st.d1_ts = en->d1_ts[v];
        memcpy(st.seg, segs[slot[v]], sizeof st.seg);
        st.at = en->r_cursor;
        rc = reel_redis_ckpt_video(r, &map, v, &st);
    }
    free(slot);
    free(segs);
    if (!rc)
        rc = reel_redis_ckpt_end(r, en->r_cursor, was);
    if (!rc) {
        memset(en->v_dirty, 0, en->n_videos);
        atomic_fetch_add(&en->r_checkpoints, 1);
        reel_log_debug("redis: checkpoint of %u videos at %llu-%llu", n,
                       (unsigned long long)en->r_cursor.ms,
                       (unsigned long long)en->r_cursor.seq);
    }
    return rc;
}

/* Forgets every event's effect (before seeding again). */
static void state_clear(reel_engine *en)
{
    reel_featstate_clear(en->fs);
    for (uint32_t u = 0; u < en->n_users; u++)
        en->hist[u].n = 0;
    en->n_hist = 0;
    for (uint32_t v = 0; v < en->n_videos; v++) {
        en->pos[v] = 0;
        en->d1[v] = 0;
        en->d1_ts[v] = 0;
    }
    if (en->seg.cap > 0) {
        memset(en->seg.key, 0, en->seg.cap * sizeof *en->seg.key);
        memset(en->seg.cnt, 0, en->seg.cap * sizeof *en->seg.cnt);
    }
    en->seg.n = 0;
    en->last_ts = -INFINITY;
}

/* Writes the dataset's state into an empty Redis (the seeding lock held). */
static int seed(reel_engine *en, reel_redis *r)
{
    double t0 = reel_clock_mono();
    const reel_events *ev = reel_dataset_events(en->ds);
    pthread_rwlock_wrlock(&en->lock);
    state_clear(en);
    for (uint64_t i = 0; i < ev->n; i++)
        apply_one(en, ev->user[i], ev->video[i], ev->type[i], ev->ts[i],
                  ev->watch_s[i], ev->rating[i]);
    pthread_rwlock_unlock(&en->lock);
    reel_redis_ids map = en_ids(en);
    const reel_users *us = reel_meta_users(en->meta);
    reel_redis_hist *h = NULL;
    size_t cap = 0;
    int rc = 0;
    uint64_t n_users = 0, n_videos = 0;
    for (uint32_t u = 0; u < en->n_users && u < us->n && !rc; u++) {
        const reel_fs_user *fu = reel_featstate_user(en->fs, u);
        const struct hist *hs = &en->hist[u];
        if (!hs->n && !fu->impressions)
            continue;
        REEL_GROW(h, cap, (size_t)hs->n + 1);
        for (uint32_t i = 0; i < hs->n; i++)
            h[i] =
                (reel_redis_hist){hs->e[i].video, hs->e[i].type, hs->e[i].ts};
        rc = reel_redis_seed_user(r, &map, reel_strs_get(&us->id, u, NULL), fu,
                                  h, hs->n);
        n_users++;
    }
    free(h);
    for (uint32_t v = 0; v < en->n_videos && !rc; v++) {
        const reel_fs_video *fv = reel_featstate_video(en->fs, v);
        if (!en->pos[v] && !fv->impressions)
            continue;
        reel_redis_video st;
        reel_redis_video_init(&st);
        st.fs = *fv;
        st.pos = en->pos[v];
        st.d1 = en->d1[v];
        st.d1_ts = en->d1_ts[v];
        for (uint32_t g = 0; g < N_SEG; g++)
            st.seg[g] = seg_get(&en->seg, seg_key(g, v));
        rc = reel_redis_seed_video(r, &map, v, &st);
        n_videos++;
    }
    if (!rc)
        rc = reel_redis_seed_end(r, en->ds_print);
    /* The users' state is Redis's from now on. */
    for (uint32_t u = 0; u < en->n_users; u++)
        en->hist[u].n = 0;
    if (!rc)
        reel_log_info("redis: seeded %llu users and %llu videos from the "
                      "dataset's %llu events in %.1f s",
                      (unsigned long long)n_users, (unsigned long long)n_videos,
                      (unsigned long long)ev->n, reel_clock_mono() - t0);
    return rc;
}

/* Seeds Redis if nobody has, then loads the video statistics (the
 * checkpoint and the log after it): 0 when ready, REEL_EBUSY while another
 * process seeds, REEL_EFORMAT when Redis holds another dataset's state,
 * REEL_EUNAVAILABLE. */
static int vlog_catch_up(reel_engine *en, reel_redis *r);

static int redis_init(reel_engine *en, reel_redis *r)
{
    uint64_t m;
    int rc = reel_redis_marker(r, &m);
    if (rc == REEL_EFORMAT) {
        pthread_mutex_lock(&en->rmu);
        snprintf(en->r_error, sizeof en->r_error, "%s", reel_redis_error(r));
        pthread_mutex_unlock(&en->rmu);
    }
    if (rc)
        return rc;
    if (m && m != en->ds_print) {
        pthread_mutex_lock(&en->rmu);
        snprintf(en->r_error, sizeof en->r_error,
                 "Redis holds the state of another dataset (fingerprint "
                 "%016llx, this one %016llx): give this dataset its own "
                 "database or prefix",
                 (unsigned long long)m, (unsigned long long)en->ds_print);
        pthread_mutex_unlock(&en->rmu);
        return REEL_EFORMAT;
    }
    if (!m) {
        int mine;
        if ((rc = reel_redis_seed_begin(r, &mine)))
            return rc;
        if (!mine)
            return REEL_EBUSY;
        reel_log_info("redis: no state for this dataset yet; seeding it");
        if ((rc = seed(en, r)))
            return rc;
    }
    /* Ready once the copy has caught up with the log. */
    if ((rc = mirror_load(en, r)) || (rc = vlog_catch_up(en, r)))
        return rc;
    pthread_rwlock_wrlock(&en->lock);
    cold_compute(en);
    pthread_rwlock_unlock(&en->lock);
    return 0;
}

/* Applies the video log after the cursor, up to its end. */
static int vlog_catch_up(reel_engine *en, reel_redis *r)
{
    reel_redis_ids map = en_ids(en);
    for (int reloads = 0;;) {
        uint32_t n;
        int gap;
        int rc = reel_redis_vlog(r, &map, &en->r_cursor, 256, &en->r_ev,
                                 &en->r_ev_cap, &n, &gap);
        if (rc)
            return rc;
        if (gap) {
            reel_log_warn("redis: the video log was trimmed past this "
                          "process's position; reading every video again");
            if ((rc = mirror_load(en, r)) || ++reloads == 3)
                return rc; /* the next refresh goes on */
            continue;
        }
        if (!n)
            return 0;
        pthread_rwlock_wrlock(&en->lock);
        for (uint32_t i = 0; i < n; i++)
            mirror_apply(en, &en->r_ev[i]);
        pthread_rwlock_unlock(&en->lock);
    }
}

/* One refresh: the video log after the cursor, then maybe a
 * checkpoint. */
static int redis_refresh(reel_engine *en, reel_redis *r)
{
    uint64_t m;
    int rc = reel_redis_marker(r, &m);
    if (rc)
        return rc;
    if (m != en->ds_print) {
        /* Redis lost its data (restarted without persistence): seed it
         * again from the dataset. */
        reel_log_warn("redis: the state's marker is gone; seeding again");
        atomic_store(&en->r_ready, 0);
        return 0;
    }
    if ((rc = vlog_catch_up(en, r)))
        return rc;
    pthread_rwlock_wrlock(&en->lock);
    if (en->o.cold_refresh_s <= 0 ||
        reel_clock_mono() - en->cold_at >= en->o.cold_refresh_s)
        cold_compute(en);
    pthread_rwlock_unlock(&en->lock);
    atomic_fetch_add(&en->r_refreshes, 1);
    return checkpoint(en, r);
}

static void *redis_main(void *arg)
{
    reel_engine *en = arg;
    reel_redis *r = rget(en);
    int last = 0;
    for (;;) {
        int rc = atomic_load(&en->r_ready) ? redis_refresh(en, r)
                                           : redis_init(en, r);
        if (!rc) {
            atomic_store(&en->r_ready, 1);
            atomic_store(&en->r_loaded, 1);
        } else if (rc == REEL_EUNAVAILABLE)
            /* After an outage: check the marker (Redis may have come back
             * empty) and copy every video again before serving. */
            atomic_store(&en->r_ready, 0);
        if (rc && rc != last && rc != REEL_EBUSY) {
            pthread_mutex_lock(&en->rmu);
            if (rc != REEL_EFORMAT)
                snprintf(en->r_error, sizeof en->r_error, "%s",
                         reel_redis_error(r));
            reel_log_warn("redis: %s", en->r_error);
            pthread_mutex_unlock(&en->rmu);
        }
        last = rc;
        atomic_store(&en->r_up, rc != REEL_EUNAVAILABLE);
        double wait = en->o.store_refresh_s > 0 ? en->o.store_refresh_s : 1;
        if (rc == REEL_EBUSY || rc == REEL_EUNAVAILABLE)
            wait = wait < 0.2 ? wait : 0.2;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double at = (double)ts.tv_sec + ts.tv_nsec * 1e-9 + wait;
        ts.tv_sec = (time_t)at;
        ts.tv_nsec = (long)((at - (double)ts.tv_sec) * 1e9);
        pthread_mutex_lock(&en->cv_mu);
        if (!en->stop)
            pthread_cond_timedwait(&en->cv, &en->cv_mu, &ts);
        int stop = en->stop;
        pthread_mutex_unlock(&en->cv_mu);
        if (stop)
            break;
    }
    rput(en, r, 0);
    return NULL;
}

/*
 * The answer from a user's state, wherever it came from (under the read
 * lock): fu and ring[0..nr) the user's counters and recent videos (fu
 * NULL: none), u the row of the user tables (REEL_NONE: none), seen the
 * videos to exclude (sorted in place). Ranked when the ring is usable,
 * else the cold-start lists.
 */
static uint32_t answer(reel_engine *en, const reel_reco_opts *o,
                       const reel_fs_user *fu, uint32_t u, const uint32_t *ring,
                       uint32_t nr, uint32_t *seen, uint32_t n_seen, uint32_t k,
                       reel_reco_item *out, reel_engine_source *source,
                       reel_engine_explain *ex)
{
    reel_reco_scratch *s = scratch_get(en);
    uint32_t n = 0;
    /* The ranker: the server's, or the one an experiment arm asks for
     * (reel_engine_has_ranker() told the server it is there). */
    const reel_ranker *rk = en->rk;
    if (o && o->ranker == REEL_RECO_RANKER_NONE)
        rk = NULL;
    else if (o && o->ranker == REEL_RECO_RANKER_MLP && en->rk_mlp)
        rk = en->rk_mlp;
    if (nr) {
        reel_reco r = en->reco;
        r.ranker = rk;
        if (o) {
            uint32_t cap =
                en->reco.o.candidates > REEL_RECO_MAX_REQUEST_CANDIDATES
                    ? en->reco.o.candidates
                    : REEL_RECO_MAX_REQUEST_CANDIDATES;
            r.o = *o;
            if (r.o.candidates > cap)
                r.o.candidates = cap;
        }
        reel_filter f = {.allow = en->allow,
                         .allow_bits = en->n_videos,
                         .exclude = seen,
                         .n_exclude = n_seen};
        n = reel_reco_rank_with(&r, en->fs, fu, u, reel_clock_wall(), ring, nr,
                                &f, k, s, out);
        if (n)
            *source = REEL_ENGINE_PERSONALIZED;
    }
    const reel_gbtree *trees = rk ? reel_ranker_trees(rk) : NULL;
    for (uint32_t i = 0; i < n && ex; i++) {
        ex[i].has_x = 1;
        memcpy(ex[i].x, reel_reco_scratch_row(s, out[i].cand), sizeof ex[i].x);
        ex[i].has_phi = trees != NULL;
        if (trees)
            reel_gbtree_contrib(trees, ex[i].x, ex[i].phi);
    }
    if (!n) {
        n = cold_list(en, u, seen, n_seen, k, out);
        for (uint32_t i = 0; i < n && ex; i++)
            ex[i].has_x = ex[i].has_phi = 0;
    }
    scratch_put(en, s);
    return n;
}

/* A user's counters and newest history events from Redis (see
 * reel_redis_user_get); REEL_EUNAVAILABLE without asking when the state
 * has not been verified since an outage (*fu empty, *n 0). */
static int redis_user(reel_engine *en, const char *user, reel_fs_user *fu,
                      reel_redis_hist *h, uint32_t max, uint32_t *n)
{
    *n = 0;
    if (!atomic_load(&en->r_ready)) {
        reel_fs_user_init(fu);
        return REEL_EUNAVAILABLE;
    }
    reel_redis *r = rget(en);
    reel_redis_ids map = en_ids(en);
    uint64_t found;
    int rc = reel_redis_user_get(r, user, &map, fu, h, max, n, &found);
    rput(en, r, rc);
    return rc;
}

/* Recommendations in Redis mode: the user's state from Redis; the
 * cold-start path, marked degraded, when Redis cannot be reached. */
static int redis_recommend(reel_engine *en, const char *user, uint32_t k,
                           const reel_reco_opts *o, reel_reco_item *out,
                           uint32_t *n_out, reel_engine_source *source,
                           reel_engine_explain *ex)
{
    uint32_t hmax = en->o.redis.history_max;
    reel_redis_hist *h = reel_xmalloc(((size_t)hmax + 1) * sizeof *h);
    uint32_t *seen = reel_xmalloc(((size_t)hmax + 1) * sizeof *seen);
    reel_fs_user fu;
    uint32_t nh, n_seen = 0;
    int rc = redis_user(en, user, &fu, h, hmax, &nh);
    for (uint32_t i = 0; i < nh; i++)
        if (h[i].video != REEL_NONE)
            seen[n_seen++] = h[i].video;
    uint32_t ring[REEL_FEAT_RING], nr = rc ? 0 : reel_fs_user_recent(&fu, ring);
    pthread_rwlock_rdlock(&en->lock);
    uint32_t u = find_user(en, user, strlen(user));
    *n_out = answer(en, o, &fu, u, ring, nr, seen, n_seen, k, out, source, ex);
    pthread_rwlock_unlock(&en->lock);
    if (rc) {
        *source = REEL_ENGINE_DEGRADED;
        atomic_fetch_add(&en->r_degraded, 1);
    }
    free(h);
    free(seen);
    return 0;
}

/* Redis mode: batches of events wait in a queue for the applier thread,
 * which applies what has gathered as one Redis batch (a group commit, as
 * the embedded log's) and then answers each; one writer per process, so
 * this process's batches never conflict with each other. */
struct rjob {
    reel_redis_event *ev; /* with their strings, owned */
    uint32_t n;
    reel_engine_done_fn done; /* NULL: a caller waits for `finished` */
    void *ctx;
    int rc, finished;
    struct rjob *next;
};

enum { R_GROUP_MAX = 20000 }; /* events per Redis batch, about */

static void rjob_free(struct rjob *j)
{
    free(j->ev);
    free(j);
}

static void *apply_main(void *arg)
{
    reel_engine *en = arg;
    reel_redis_event *all = NULL;
    size_t cap = 0;
    for (;;) {
        pthread_mutex_lock(&en->jq_mu);
        while (!en->jq_head && !en->jq_stop)
            pthread_cond_wait(&en->jq_cv, &en->jq_mu);
        struct rjob *take = en->jq_head, *last = NULL;
        uint32_t n = 0;
        for (struct rjob *j = take; j && (!n || n + j->n <= R_GROUP_MAX);
             j = j->next) {
            n += j->n;
            last = j;
        }
        if (last) {
            en->jq_head = last->next;
            if (!en->jq_head)
                en->jq_tail = NULL;
            last->next = NULL;
        }
        pthread_mutex_unlock(&en->jq_mu);
        if (!take)
            break; /* stopping, and nothing left */
        REEL_GROW(all, cap, (size_t)n + 1);
        uint32_t m = 0;
        for (struct rjob *j = take; j; j = j->next) {
            memcpy(all + m, j->ev, (size_t)j->n * sizeof *all);
            m += j->n;
        }
        int rc = REEL_EUNAVAILABLE;
        uint32_t dups = 0;
        /* Redis down, or back but not verified (or being seeded): refused,
         * never written to a state that may be replaced. */
        if (atomic_load(&en->r_ready)) {
            reel_redis *r = rget(en);
            reel_redis_ids map = en_ids(en);
            rc = reel_redis_apply(r, en->fs, &map, all, m, &dups);
            rput(en, r, rc);
        }
        if (!rc)
            atomic_fetch_add(&en->ingested, m - dups);
        for (struct rjob *j = take, *next; j; j = next) {
            next = j->next;
            if (j->done) {
                j->done(j->ctx, rc);
                rjob_free(j);
            } else {
                pthread_mutex_lock(&en->jq_mu);
                j->rc = rc;
                j->finished = 1;
                pthread_cond_broadcast(&en->jq_done_cv);
                pthread_mutex_unlock(&en->jq_mu);
            }
        }
    }
    free(all);
    return NULL;
}

static int redis_ingest(reel_engine *en, const reel_event_in *ev, uint32_t n,
                        reel_engine_reject *rej, uint32_t *n_rej,
                        reel_engine_done_fn done, void *ctx)
{
    /* The accepted events and their strings, in one block. */
    size_t strs = 0;
    uint8_t *ok = reel_xmalloc((size_t)n + 1);
    uint32_t m = 0;
    pthread_rwlock_rdlock(&en->lock);
    for (uint32_t i = 0; i < n; i++) {
        const char *why = event_problem(en, &ev[i]);
        ok[i] = !why;
        if (why) {
            rej[(*n_rej)++] = (reel_engine_reject){i, why};
            continue;
        }
        strs += strlen(ev[i].user) + 1 +
                (ev[i].rec.id ? strlen(ev[i].rec.id) + 1 : 0);
        m++;
    }
    struct rjob *j = reel_xcalloc(1, sizeof *j);
    j->ev = reel_xmalloc((size_t)m * sizeof *j->ev + strs + 1);
    char *sp = (char *)(j->ev + m);
    for (uint32_t i = 0; i < n; i++) {
        if (!ok[i])
            continue;
        const reel_event_in *e = &ev[i];
        uint32_t u = find_user(en, e->user, strlen(e->user));
        size_t ul = strlen(e->user) + 1;
        memcpy(sp, e->user, ul);
        const char *id = NULL;
        if (e->rec.id) {
            size_t il = strlen(e->rec.id) + 1;
            memcpy(sp + ul, e->rec.id, il);
            id = sp + ul;
        }
        j->ev[j->n++] = (reel_redis_event){
            .user = sp,
            .id = id,
            .video = find_video(en, e->video, strlen(e->video)),
            .type = (uint8_t)e->rec.type,
            .seg = u == REEL_NONE ? NO_SEG : segment_of(en, u),
            .ts = e->rec.ts,
            .watch_s = (float)e->rec.watch_s,
            .rating = (float)e->rec.rating};
        sp += ul + (id ? strlen(id) + 1 : 0);
    }
    pthread_rwlock_unlock(&en->lock);
    free(ok);
    atomic_fetch_add(&en->rejected, *n_rej);
    if (!m || !atomic_load(&en->r_ready)) {
        rjob_free(j);
        return m ? REEL_EUNAVAILABLE : 0;
    }
    j->done = done;
    j->ctx = ctx;
    pthread_mutex_lock(&en->jq_mu);
    if (en->jq_stop) {
        /* Closing: the applier may be gone. */
        pthread_mutex_unlock(&en->jq_mu);
        rjob_free(j);
        return REEL_ECANCELED;
    }
    if (en->jq_tail)
        en->jq_tail->next = j;
    else
        en->jq_head = j;
    en->jq_tail = j;
    pthread_cond_signal(&en->jq_cv);
    if (done) {
        pthread_mutex_unlock(&en->jq_mu);
        return 0;
    }
    while (!j->finished)
        pthread_cond_wait(&en->jq_done_cv, &en->jq_mu);
    pthread_mutex_unlock(&en->jq_mu);
    int rc = j->rc;
    rjob_free(j);
    return rc;
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
    en->dir = reel_xmalloc(strlen(dir) + 1);
    memcpy(en->dir, dir, strlen(dir) + 1);
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
    pthread_mutex_init(&en->snap_mu, NULL);
    pthread_mutex_init(&en->reload_mu, NULL);
    pthread_mutex_init(&en->cv_mu, NULL);
    pthread_cond_init(&en->cv, NULL);
    pthread_mutex_init(&en->rmu, NULL);
    pthread_mutex_init(&en->jq_mu, NULL);
    pthread_cond_init(&en->jq_cv, NULL);
    pthread_cond_init(&en->jq_done_cv, NULL);
    char path[4096];
    int rc;
    struct items it;
    if ((rc = reel_dataset_open(dir, &en->ds, d)) ||
        (rc = reel_meta_new(en->ds, &en->meta)) ||
        (rc = items_load(dir, en->ds, &it, d)))
        goto fail;
    en->ds_print = ds_fingerprint(en->ds);
    items_use(en, &it, prior_median(it.vec));
    reel_featstate_new(en->ds, &en->fs);
    reel_featstate_use_meta(en->fs, en->meta);
    en->last_ts = -INFINITY;
    users_grow(en, reel_meta_users(en->meta)->n);
    videos_grow(en, reel_meta_videos(en->meta)->n);

    if (en->o.store_url) {
        if ((rc = reel_redis_url_check(en->o.store_url, d)))
            goto fail;
        en->store_url = reel_xstrndup(en->o.store_url, strlen(en->o.store_url));
        en->o.store_url = en->store_url;
        /* The copy of the video statistics, the seeding and the cold-start
         * lists come from the refresh thread; readiness waits for it. */
        cold_compute(en);
        if (pthread_create(&en->r_thread, NULL, redis_main, en)) {
            rc = reel_diag_fail(d, REEL_ENOMEM, "cannot start a thread");
            goto fail;
        }
        en->r_running = 1;
        if (pthread_create(&en->j_thread, NULL, apply_main, en)) {
            rc = reel_diag_fail(d, REEL_ENOMEM, "cannot start a thread");
            goto fail;
        }
        en->j_running = 1;
        *out = en;
        return 0;
    }

    /* The newest snapshot, or the dataset's events. */
    snprintf(path, sizeof path, "%s/snapshots", dir);
    reel_snapshot *snap;
    if ((rc = reel_snapshot_open_newest(path, &snap, d)))
        goto fail;
    if (snap) {
        en->snap_lsn = reel_snapshot_lsn(snap);
        snprintf(path, sizeof path, "%s/snapshots/snap-%016llx.reel", dir,
                 (unsigned long long)en->snap_lsn);
        rc = snap_load(en, snap, path, d);
        reel_snapshot_close(snap);
        if (rc)
            goto fail;
    } else {
        const reel_events *ev = reel_dataset_events(en->ds);
        for (uint64_t i = 0; i < ev->n; i++)
            apply_one(en, ev->user[i], ev->video[i], ev->type[i], ev->ts[i],
                      ev->watch_s[i], ev->rating[i]);
    }

    snprintf(path, sizeof path, "%s/wal", dir);
    reel_wal_opts wo;
    reel_wal_opts_init(&wo);
    wo.sync = en->o.sync;
    wo.interval_ms = en->o.interval_ms;
    wo.segment_bytes = en->o.wal_segment_bytes;
    wo.next_lsn = en->snap_lsn + 1;
    if ((rc = reel_wal_open(path, &wo, &en->wal, d)))
        goto fail;
    if (!en->snap_lsn && reel_wal_first_lsn(en->wal) > 1) {
        rc = reel_diag_fail(
            d, REEL_ECORRUPT,
            "%s begins at record %llu, but no snapshot in "
            "%s/snapshots covers the records before it",
            path, (unsigned long long)reel_wal_first_lsn(en->wal), dir);
        goto fail;
    }
    en->applied = en->state_lsn = en->snap_lsn;
    if ((rc = reel_wal_replay(en->wal, en->snap_lsn + 1, replay_fn, en))) {
        reel_diag_fail(d, rc,
                       "%s: replay after snapshot %llu failed at "
                       "record %llu: %s",
                       path, (unsigned long long)en->snap_lsn,
                       (unsigned long long)en->applied + 1, reel_strerror(rc));
        goto fail;
    }
    en->applied = en->state_lsn = reel_wal_last_lsn(en->wal);
    if (en->skipped_replay)
        reel_log_warn("wal: %llu events name videos the catalogue lacks; "
                      "skipped",
                      (unsigned long long)en->skipped_replay);
    cold_compute(en);
    if (en->o.snapshot_every_s > 0 || en->o.snapshot_every_events) {
        if (pthread_create(&en->snap_thread, NULL, snap_main, en)) {
            rc = reel_diag_fail(d, REEL_ENOMEM, "cannot start a thread");
            goto fail;
        }
        en->snap_running = 1;
    }
    *out = en;
    return 0;
fail:
    en->o.snapshot_on_close = 0;
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

static void spool_clear(reel_engine *en)
{
    for (size_t i = 0; i < en->n_spool; i++)
        reel_reco_scratch_free(en->spool[i]);
    en->n_spool = 0;
}

int reel_engine_close(reel_engine *en)
{
    if (!en)
        return 0;
    if (en->j_running) {
        /* The applier answers what is queued, then stops. */
        pthread_mutex_lock(&en->jq_mu);
        en->jq_stop = 1;
        pthread_cond_broadcast(&en->jq_cv);
        pthread_mutex_unlock(&en->jq_mu);
        pthread_join(en->j_thread, NULL);
    }
    if (en->snap_running || en->r_running) {
        pthread_mutex_lock(&en->cv_mu);
        en->stop = 1;
        pthread_cond_broadcast(&en->cv);
        pthread_mutex_unlock(&en->cv_mu);
        if (en->snap_running)
            pthread_join(en->snap_thread, NULL);
        if (en->r_running)
            pthread_join(en->r_thread, NULL);
    }
    for (size_t i = 0; i < en->n_rpool; i++)
        reel_redis_close(en->rpool[i]);
    free(en->rpool);
    free(en->store_url);
    free(en->v_at);
    free(en->v_dirty);
    free(en->r_ev);
    if (en->wal && en->o.snapshot_on_close) {
        reel_diag d;
        reel_diag_clear(&d);
        if (reel_engine_snapshot(en, &d))
            reel_log_error("the last snapshot failed: %s", d.msg);
    }
    int rc = reel_wal_close(en->wal);
    /* Batches whose callback never came (the log closed first). */
    for (struct batch *b = en->qhead, *next; b; b = next) {
        next = b->next;
        if (b->done)
            b->done(b->ctx, REEL_ECANCELED);
        batch_free(b);
    }
    spool_clear(en);
    free(en->spool);
    for (size_t u = 0; u < en->cap_u; u++)
        free(en->hist[u].e);
    free(en->hist);
    free(en->cold);
    free(en->trend);
    free(en->pop);
    for (int s = 0; s < N_SEG; s++)
        free(en->seg_cold[s]);
    free(en->seg.key);
    free(en->seg.cnt);
    free(en->pos);
    free(en->d1);
    free(en->d1_ts);
    free(en->vput);
    free(en->allow);
    reel_featstate_free(en->fs);
    struct items it = {en->vec, en->ix, en->rk, en->rk_mlp};
    items_free(&it);
    reel_meta_free(en->meta);
    reel_dataset_close(en->ds);
    pthread_rwlock_destroy(&en->lock);
    pthread_mutex_destroy(&en->qmu);
    pthread_mutex_destroy(&en->amu);
    pthread_mutex_destroy(&en->smu);
    pthread_mutex_destroy(&en->snap_mu);
    pthread_mutex_destroy(&en->reload_mu);
    pthread_mutex_destroy(&en->cv_mu);
    pthread_cond_destroy(&en->cv);
    free(en->dir);
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
        int catalogue = 0;
        for (struct batch *b = ready; b; b = b->next) {
            for (uint32_t i = 0; i < b->n_rec; i++)
                if (apply_any(en, b->type, b->rec[i].data,
                              (uint32_t)b->rec[i].len, &n, &skipped))
                    abort(); /* we wrote it: a bug */
            catalogue |= b->type != REEL_ENGINE_WAL_EVENTS;
            en->state_lsn = b->last;
        }
        /* A catalogue change shows in the cold-start lists at once. */
        if (en->o.cold_refresh_s <= 0 ||
            reel_clock_mono() - en->cold_at >= en->o.cold_refresh_s)
            cold_compute(en);
        else if (catalogue)
            cold_merge(en);
        pthread_rwlock_unlock(&en->lock);
        atomic_fetch_add(&en->ingested, n);
        uint64_t since = atomic_fetch_add(&en->snap_events, n) + n;
        if (en->o.snapshot_every_events &&
            since >= en->o.snapshot_every_events &&
            since - n < en->o.snapshot_every_events) {
            pthread_mutex_lock(&en->cv_mu);
            pthread_cond_signal(&en->cv);
            pthread_mutex_unlock(&en->cv_mu);
        }
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
    if (en->store_url)
        return redis_ingest(en, ev, n, rej, n_rej, done, ctx);
    struct batch *b = reel_xcalloc(1, sizeof *b);
    uint32_t cap = 0, count = 0;
    /* The tables only grow, so a video found now is there when the
     * events are applied. */
    pthread_rwlock_rdlock(&en->lock);
    for (uint32_t i = 0; i < n; i++) {
        const reel_event_in *e = &ev[i];
        const char *why = event_problem(en, e);
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
    pthread_rwlock_unlock(&en->lock);
    atomic_fetch_add(&en->rejected, *n_rej);
    if (!b->n_rec) {
        batch_free(b);
        return 0;
    }
    rec_end(&b->rec[b->n_rec - 1], count);
    b->type = REEL_ENGINE_WAL_EVENTS;
    return submit(en, b, done, ctx);
}

static int video_known(reel_engine *en, const char *video, size_t len)
{
    pthread_rwlock_rdlock(&en->lock);
    uint32_t v = find_video(en, video, len);
    pthread_rwlock_unlock(&en->lock);
    return v != REEL_NONE;
}

int reel_engine_video_delete(reel_engine *en, const char *video,
                             reel_engine_done_fn done, void *ctx)
{
    size_t len = strlen(video);
    if (!len || len > REEL_MAX_ID_LEN || !video_known(en, video, len))
        return REEL_ENOENT;
    if (en->store_url)
        return REEL_EUNSUPPORTED;
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

/* ------------------------------------------------------------- upserts */

static void set_str(json_t *o, const char *k, const char *v)
{
    if (v)
        json_object_set_new(o, k, json_string(v));
}

static void set_num(json_t *o, const char *k, double v)
{
    if (isfinite(v))
        json_object_set_new(o, k, json_real(v));
}

static json_t *strings(const char *const *s, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(s[i]));
    return a;
}

/* The record's JSON form (docs/formats/jsonl.md), NULL when a string is
 * not UTF-8. */
static json_t *video_json(const reel_video_rec *r)
{
    json_t *o = json_object();
    set_str(o, "id", r->id);
    set_str(o, "title", r->title);
    set_str(o, "description", r->description);
    set_str(o, "language", r->language);
    set_str(o, "type", r->type);
    set_str(o, "media", r->media);
    if (r->n_categories)
        json_object_set_new(o, "categories",
                            strings(r->categories, r->n_categories));
    if (r->n_tags)
        json_object_set_new(o, "tags", strings(r->tags, r->n_tags));
    set_num(o, "duration_s", r->duration_s);
    set_num(o, "published_at", r->published_at);
    return o;
}

static json_t *user_json(const reel_user_rec *r)
{
    json_t *o = json_object();
    set_str(o, "id", r->id);
    if (r->age >= 0)
        json_object_set_new(o, "age", json_integer(r->age));
    set_str(o, "gender", r->gender);
    set_str(o, "country", r->country);
    set_str(o, "occupation", r->occupation);
    set_str(o, "zip", r->zip);
    set_num(o, "signed_up_at", r->signed_up_at);
    return o;
}

/* Encodes o (and the vector) as a record of type 3 or 4 after checking
 * that it reads back as a valid record; 0 or the parser's error in d. */
static int upsert_encode(json_t *o, int is_video, const float *vec,
                         uint32_t dim, reel_buf *b, reel_diag *d)
{
    reel_arena a;
    reel_arena_init(&a, 4096);
    reel_video_rec vr;
    reel_user_rec ur;
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_error_t je;
    json_t *back = s ? json_loads(s, 0, &je) : NULL;
    /* The parser and the tables' own checks, as apply will meet them. */
    int rc = REEL_EFORMAT;
    if (!back)
        reel_diag_fail(d, rc, "a string is not UTF-8");
    else if (is_video && !(rc = reel_video_rec_from_json(back, &a, &vr, d)))
        rc = reel_video_rec_check(&vr, d);
    else if (!is_video && !(rc = reel_user_rec_from_json(back, &a, &ur, d)))
        rc = reel_user_rec_check(&ur, d);
    json_decref(back);
    reel_arena_free(&a);
    if (!rc && strlen(s) + 16 + (size_t)dim * 4 > REEL_WAL_RECORD_MAX)
        rc = reel_diag_fail(d, REEL_ETOOBIG, "the record is above 1 MiB");
    if (!rc) {
        reel_buf_putc(b, REC_VERSION);
        reel_buf_putc(b, vec ? 1 : 0);
        put_u16(b, 0);
        put_u32(b, (uint32_t)strlen(s));
        reel_buf_puts(b, s);
        if (vec) {
            put_u32(b, dim);
            reel_buf_append(b, vec, (size_t)dim * 4);
        }
    }
    free(s);
    return rc;
}

static int submit_one(reel_engine *en, uint8_t type, reel_buf *rec,
                      reel_engine_done_fn done, void *ctx)
{
    struct batch *b = reel_xcalloc(1, sizeof *b);
    b->type = type;
    b->rec = reel_xmalloc(sizeof *b->rec);
    b->rec[0] = *rec;
    b->n_rec = 1;
    return submit(en, b, done, ctx);
}

int reel_engine_video_put(reel_engine *en, const reel_video_rec *rec,
                          const float *vec, uint32_t n_vec, int *is_new,
                          reel_diag *d, reel_engine_done_fn done, void *ctx)
{
    if (en->store_url)
        return reel_diag_fail(d, REEL_EUNSUPPORTED, REDIS_CATALOGUE);
    if (!rec->id || !*rec->id)
        return reel_diag_fail(d, REEL_EINVAL, "missing \"id\"");
    float *row = NULL;
    uint32_t dim = 0;
    pthread_rwlock_rdlock(&en->lock);
    if (is_new)
        *is_new = find_video(en, rec->id, strlen(rec->id)) == REEL_NONE;
    if (vec) {
        /* The row as the index holds it, fixed now so that replay gives
         * the same one. */
        dim = en->vec->dim;
        uint32_t want = dim - (uint32_t)en->vec->prior;
        if (n_vec != want && n_vec != dim) {
            pthread_rwlock_unlock(&en->lock);
            return reel_diag_fail(d, REEL_EINVAL,
                                  "\"vector\" has %u numbers; the vectors "
                                  "have %u",
                                  n_vec, want);
        }
        row = reel_xcalloc(dim, sizeof *row);
        memcpy(row, vec, (size_t)n_vec * sizeof *row);
        int unit = en->vec->prior || en->vec->unit_norm;
        if (n_vec < dim)
            row[dim - 1] = en->prior_median;
        pthread_rwlock_unlock(&en->lock);
        double ss = 0;
        for (uint32_t i = 0; i < want; i++) {
            if (!isfinite(row[i])) {
                free(row);
                return reel_diag_fail(d, REEL_EINVAL,
                                      "\"vector\" holds a number that is "
                                      "not finite");
            }
            ss += (double)row[i] * row[i];
        }
        if (!(ss > 0)) {
            free(row);
            return reel_diag_fail(d, REEL_EINVAL, "\"vector\" is all zeros");
        }
        if (unit)
            for (uint32_t i = 0; i < want; i++)
                row[i] = (float)(row[i] / sqrt(ss));
    } else {
        pthread_rwlock_unlock(&en->lock);
    }
    json_t *o = video_json(rec);
    reel_buf b;
    reel_buf_init(&b);
    int rc = upsert_encode(o, 1, row, dim, &b, d);
    json_decref(o);
    free(row);
    if (rc) {
        reel_buf_free(&b);
        return rc;
    }
    return submit_one(en, REEL_ENGINE_WAL_VIDEO, &b, done, ctx);
}

int reel_engine_user_put(reel_engine *en, const reel_user_rec *rec, int *is_new,
                         reel_diag *d, reel_engine_done_fn done, void *ctx)
{
    if (en->store_url)
        return reel_diag_fail(d, REEL_EUNSUPPORTED, REDIS_CATALOGUE);
    if (!rec->id || !*rec->id)
        return reel_diag_fail(d, REEL_EINVAL, "missing \"id\"");
    if (is_new) {
        pthread_rwlock_rdlock(&en->lock);
        *is_new = find_user(en, rec->id, strlen(rec->id)) == REEL_NONE;
        pthread_rwlock_unlock(&en->lock);
    }
    json_t *o = user_json(rec);
    reel_buf b;
    reel_buf_init(&b);
    int rc = upsert_encode(o, 0, NULL, 0, &b, d);
    json_decref(o);
    if (rc) {
        reel_buf_free(&b);
        return rc;
    }
    return submit_one(en, REEL_ENGINE_WAL_USER, &b, done, ctx);
}

/* ----------------------------------------------------------- requests */

/* Under the read lock (reload frees the pool under the write lock). */
static reel_reco_scratch *scratch_get(reel_engine *en)
{
    pthread_mutex_lock(&en->smu);
    reel_reco_scratch *s = en->n_spool ? en->spool[--en->n_spool] : NULL;
    pthread_mutex_unlock(&en->smu);
    if (s)
        return s;
    /* room for a request's own candidates (an experiment arm's), up to
     * REEL_RECO_MAX_REQUEST_CANDIDATES */
    reel_reco r = en->reco;
    if (r.o.candidates < REEL_RECO_MAX_REQUEST_CANDIDATES)
        r.o.candidates = REEL_RECO_MAX_REQUEST_CANDIDATES;
    return reel_reco_scratch_new(&r);
}

static void scratch_put(reel_engine *en, reel_reco_scratch *s)
{
    pthread_mutex_lock(&en->smu);
    REEL_GROW(en->spool, en->cap_spool, en->n_spool + 1);
    en->spool[en->n_spool++] = s;
    pthread_mutex_unlock(&en->smu);
}

/* The cold-start answer (under the read lock): the user's segment list
 * and the global one round-robin. */
static uint32_t cold_list(const reel_engine *en, uint32_t u, uint32_t *seen,
                          uint32_t n_seen, uint32_t k, reel_reco_item *out)
{
    qsort(seen, n_seen, sizeof *seen, reel_sort_cmp_u32);
    uint32_t s = u == REEL_NONE ? NO_SEG : segment_of(en, u);
    const uint32_t *l[2] = {s == NO_SEG ? NULL : en->seg_cold[s], en->cold};
    uint32_t nl[2] = {s == NO_SEG ? 0 : en->n_seg_cold[s], en->n_cold};
    uint32_t at[2] = {0, 0}, n = 0;
    for (int j = 0; n < k && (at[0] < nl[0] || at[1] < nl[1]); j ^= 1) {
        while (at[j] < nl[j]) {
            uint32_t v = l[j][at[j]++];
            if (!is_live(en, v) ||
                bsearch(&v, seen, n_seen, sizeof *seen, reel_sort_cmp_u32))
                continue;
            int dup = 0;
            for (uint32_t i = 0; i < n && !dup; i++)
                dup = out[i].video == v;
            if (dup)
                continue;
            out[n] = (reel_reco_item){v, 1.0f / (float)(1 + n), NAN, 0};
            n++;
            break;
        }
    }
    return n;
}

int reel_engine_recommend(reel_engine *en, const char *user, uint32_t k,
                          const reel_reco_opts *o, reel_reco_item *out,
                          uint32_t *n_out, reel_engine_source *source,
                          reel_engine_explain *ex)
{
    *n_out = 0;
    *source = REEL_ENGINE_COLD_START;
    if (k > REEL_ENGINE_MAX_K)
        return REEL_EINVAL;
    if (!k)
        return 0;
    if (en->store_url)
        return redis_recommend(en, user, k, o, out, n_out, source, ex);
    pthread_rwlock_rdlock(&en->lock);
    uint32_t u = find_user(en, user, strlen(user));
    uint32_t n_seen = u == REEL_NONE ? 0 : en->hist[u].n;
    uint32_t *seen = reel_xmalloc(((size_t)n_seen + 1) * sizeof *seen);
    for (uint32_t i = 0; i < n_seen; i++)
        seen[i] = en->hist[u].e[i].video;
    uint32_t ring[REEL_FEAT_RING], nr = 0;
    if (u != REEL_NONE)
        nr = reel_featstate_recent(en->fs, u, ring);
    *n_out = answer(en, o, reel_featstate_user(en->fs, u), u, ring, nr, seen,
                    n_seen, k, out, source, ex);
    pthread_rwlock_unlock(&en->lock);
    free(seen);
    return 0;
}

int reel_engine_similar(reel_engine *en, const char *video, uint32_t k,
                        reel_reco_item *out, uint32_t *n_out)
{
    *n_out = 0;
    if (k > REEL_ENGINE_MAX_K)
        return REEL_EINVAL;
    int rc = 0;
    reel_hit *hits = reel_xmalloc(((size_t)k + 1) * sizeof *hits);
    pthread_rwlock_rdlock(&en->lock);
    uint32_t v = find_video(en, video, strlen(video)), n = 0;
    if (v == REEL_NONE) {
        rc = REEL_ENOENT;
    } else if (k && en->vec->has[v]) {
        float *q = reel_xmalloc(((size_t)en->vec->dim + 1) * sizeof *q);
        reel_vectors_query(en->vec, &v, 1, 1, q);
        reel_filter f = {.allow = en->allow,
                         .allow_bits = en->n_videos,
                         .exclude = &v,
                         .n_exclude = 1};
        reel_search_params p = {.ef = k > 64 ? k : 64, .filter = &f};
        rc = reel_index_search(en->ix, q, k, &p, hits, &n);
        for (uint32_t i = 0; i < n && !rc; i++) {
            float sim = reel_retrieve_sim(en->vec, en->ix, q, hits[i].id);
            out[i] = (reel_reco_item){hits[i].id, sim, sim, 0};
        }
        free(q);
    }
    pthread_rwlock_unlock(&en->lock);
    free(hits);
    if (!rc)
        *n_out = n;
    return rc;
}

int reel_engine_history(reel_engine *en, const char *user, uint32_t max,
                        reel_engine_event *out, uint32_t *n_out,
                        uint64_t *n_total)
{
    *n_out = 0;
    *n_total = 0;
    if (en->store_url) {
        reel_redis_hist *h = reel_xmalloc(((size_t)max + 1) * sizeof *h);
        reel_fs_user fu;
        uint32_t n;
        int rc = redis_user(en, user, &fu, h, max, &n);
        /* Redis keeps them newest first; the answer is oldest first. */
        for (uint32_t i = 0; i < n; i++)
            out[i] = (reel_engine_event){.video = h[n - 1 - i].video,
                                         .type = h[n - 1 - i].type,
                                         .ts = h[n - 1 - i].ts};
        free(h);
        *n_out = rc ? 0 : n;
        *n_total = *n_out;
        return rc;
    }
    pthread_rwlock_rdlock(&en->lock);
    uint32_t u = find_user(en, user, strlen(user));
    if (u != REEL_NONE) {
        const struct hist *h = &en->hist[u];
        uint32_t n = h->n < max ? h->n : max;
        if (n) /* a user without events may have no array at all */
            memcpy(out, h->e + (h->n - n), (size_t)n * sizeof *out);
        *n_out = n;
        *n_total = h->n;
    }
    pthread_rwlock_unlock(&en->lock);
    return 0;
}

static const char *acopy(reel_arena *a, const char *s)
{
    return s ? reel_arena_strndup(a, s, strlen(s)) : NULL;
}

void reel_engine_video_names(reel_engine *en, const uint32_t *v, uint32_t n,
                             reel_arena *a, const char **id, const char **title)
{
    pthread_rwlock_rdlock(&en->lock);
    const reel_videos *vid = reel_meta_videos(en->meta);
    for (uint32_t i = 0; i < n; i++) {
        if (v[i] >= vid->n) {
            id[i] = title[i] = NULL;
            continue;
        }
        size_t len;
        const char *t = reel_strs_get(&vid->title, v[i], &len);
        id[i] = acopy(a, reel_strs_get(&vid->id, v[i], NULL));
        title[i] = len ? reel_arena_strndup(a, t, len) : NULL;
    }
    pthread_rwlock_unlock(&en->lock);
}

int reel_engine_video_get(reel_engine *en, const char *video, reel_arena *a,
                          reel_video_rec *out, int *deleted, int *has_vector)
{
    pthread_rwlock_rdlock(&en->lock);
    uint32_t v = find_video(en, video, strlen(video));
    if (v == REEL_NONE) {
        pthread_rwlock_unlock(&en->lock);
        return REEL_ENOENT;
    }
    size_t nn = reel_meta_video_names(en->meta, v);
    const char **names = reel_arena_alloc(a, (nn + 1) * sizeof *names, 8);
    reel_meta_video_rec(en->meta, v, out, names);
    const char **cats = reel_arena_alloc(a, (nn + 1) * sizeof *cats, 8);
    for (size_t i = 0; i < out->n_categories; i++)
        cats[i] = acopy(a, out->categories[i]);
    for (size_t i = 0; i < out->n_tags; i++)
        cats[out->n_categories + i] = acopy(a, out->tags[i]);
    out->categories = cats;
    out->tags = cats + out->n_categories;
    out->id = acopy(a, out->id);
    out->title = acopy(a, out->title);
    out->description = acopy(a, out->description);
    out->language = acopy(a, out->language);
    out->type = acopy(a, out->type);
    out->media = acopy(a, out->media);
    *deleted = !is_live(en, v);
    *has_vector = v < en->vec->n && en->vec->has[v];
    pthread_rwlock_unlock(&en->lock);
    return 0;
}

int reel_engine_user_get(reel_engine *en, const char *user, reel_arena *a,
                         reel_user_rec *out, uint64_t *events)
{
    pthread_rwlock_rdlock(&en->lock);
    uint32_t u = find_user(en, user, strlen(user));
    if (u == REEL_NONE) {
        pthread_rwlock_unlock(&en->lock);
        return REEL_ENOENT;
    }
    reel_meta_user_rec(en->meta, u, out);
    out->id = acopy(a, out->id);
    out->gender = acopy(a, out->gender);
    out->country = acopy(a, out->country);
    out->occupation = acopy(a, out->occupation);
    out->zip = acopy(a, out->zip);
    *events = en->hist[u].n;
    pthread_rwlock_unlock(&en->lock);
    return 0;
}

/* -------------------------------------------------------------- reload */

int reel_engine_reload(reel_engine *en, reel_diag *d)
{
    pthread_mutex_lock(&en->reload_mu);
    struct items it;
    int rc = items_load(en->dir, en->ds, &it, d);
    if (rc) {
        pthread_mutex_unlock(&en->reload_mu);
        return rc;
    }
    float median = prior_median(it.vec);
    pthread_rwlock_wrlock(&en->lock);
    reel_vectors_grow(it.vec, en->n_videos);
    uint64_t carried = 0, dropped = 0;
    for (uint32_t v = 0; v < en->n_videos; v++) {
        if (!en->vput[v] || !en->vec->has[v])
            continue;
        if (it.vec->dim != en->vec->dim) {
            en->vput[v] = 0;
            dropped++;
            continue;
        }
        float *row = reel_vectors_row(it.vec, v);
        memcpy(row, reel_vectors_row(en->vec, v), it.vec->dim * sizeof *row);
        it.vec->has[v] = 1;
        if (!reel_index_update(it.ix, v, row))
            carried++;
    }
    struct items old = {en->vec, en->ix, en->rk, en->rk_mlp};
    items_use(en, &it, median);
    spool_clear(en);
    en->reloads++;
    /* Once unlocked the vectors are the engine's (the applier grows them). */
    uint32_t n_vec = it.vec->n, dim = it.vec->dim;
    pthread_rwlock_unlock(&en->lock);
    items_free(&old);
    pthread_mutex_unlock(&en->reload_mu);
    reel_log_info("reloaded %s: %u vectors of %u dimensions, ranker %s; %llu "
                  "vectors given with PUT carried over, %llu dropped (other "
                  "dimension)",
                  en->dir, n_vec, dim, it.rk ? "yes" : "no",
                  (unsigned long long)carried, (unsigned long long)dropped);
    return 0;
}

/* The bytes of the regular files in a directory (0 when it is missing). */
static uint64_t dir_bytes(const char *dir)
{
    DIR *dp = opendir(dir);
    uint64_t total = 0;
    struct dirent *e;
    char path[4096 + 256];
    struct stat st;
    while (dp && (e = readdir(dp)))
        if (e->d_name[0] != '.' &&
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name) <
                (int)sizeof path &&
            !stat(path, &st) && S_ISREG(st.st_mode))
            total += (uint64_t)st.st_size;
    if (dp)
        closedir(dp);
    return total;
}

void reel_engine_get_stats(reel_engine *en, reel_engine_stats *st)
{
    memset(st, 0, sizeof *st);
    st->events_ingested = atomic_load(&en->ingested);
    st->events_rejected = atomic_load(&en->rejected);
    st->events_replayed = en->replayed;
    st->events_dataset = reel_dataset_events(en->ds)->n;
    pthread_rwlock_rdlock(&en->lock);
    st->users = reel_meta_users(en->meta)->n;
    st->new_users = st->users - reel_meta_n_ds_users(en->meta);
    st->videos = reel_meta_videos(en->meta)->n;
    st->new_videos = st->videos - reel_meta_n_ds_videos(en->meta);
    st->deleted = en->n_deleted;
    reel_index_stats xs;
    reel_index_get_stats(en->ix, &xs);
    st->videos_indexed = xs.n_live;
    st->has_ranker = en->rk != NULL;
    st->reloads = en->reloads;
    pthread_rwlock_unlock(&en->lock);
    pthread_mutex_lock(&en->snap_mu);
    st->snapshots = en->snaps;
    st->snapshot_lsn = en->snap_lsn;
    st->snapshot_s = en->snap_s;
    pthread_mutex_unlock(&en->snap_mu);
    if (en->wal)
        reel_wal_get_stats(en->wal, &st->wal);
    if (en->store_url) {
        st->redis = 1;
        st->redis_ready = atomic_load(&en->r_ready);
        st->redis_loaded = atomic_load(&en->r_loaded);
        st->redis_up = atomic_load(&en->r_up);
        st->degraded = atomic_load(&en->r_degraded);
        st->redis_unavailable = atomic_load(&en->r_unavailable);
        st->redis_refreshes = atomic_load(&en->r_refreshes);
        st->redis_checkpoints = atomic_load(&en->r_checkpoints);
        pthread_mutex_lock(&en->rmu);
        memcpy(st->redis_error, en->r_error, sizeof st->redis_error);
        pthread_mutex_unlock(&en->rmu);
        return;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/wal", en->dir);
    st->wal_disk_bytes = dir_bytes(path);
    snprintf(path, sizeof path, "%s/snapshots", en->dir);
    st->snapshot_disk_bytes = dir_bytes(path);
}

int reel_engine_has_ranker(reel_engine *en, int kind)
{
    pthread_rwlock_rdlock(&en->lock);
    int has = kind == REEL_RECO_RANKER_DEFAULT ||
              kind == REEL_RECO_RANKER_NONE ||
              (kind == REEL_RECO_RANKER_XGBOOST && en->rk) ||
              (kind == REEL_RECO_RANKER_MLP && en->rk_mlp);
    pthread_rwlock_unlock(&en->lock);
    return has;
}
