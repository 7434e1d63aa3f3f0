#include "rank/features.h"

#include <assert.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "data/interactions.h"

enum {
    CAT_BUCKETS = REEL_FEAT_CAT_BUCKETS,
    LANG_BUCKETS = REEL_FEAT_LANG_BUCKETS
};

#define DAY 86400.0
#define SHARE_HALF_LIFE (30 * DAY)

struct reel_featstate {
    const reel_dataset *ds;
    const reel_meta *meta; /* NULL: the dataset's tables */
    uint32_t n_users, n_videos;
    reel_fs_user *u;
    reel_fs_video *v;
};

/* The tables rows read (the meta's change on puts: never cached). */
static const reel_videos *videos(const reel_featstate *s)
{
    return s->meta ? reel_meta_videos(s->meta) : reel_dataset_videos(s->ds);
}

static const reel_users *users(const reel_featstate *s)
{
    return s->meta ? reel_meta_users(s->meta) : reel_dataset_users(s->ds);
}

static const char *const names[] = {
#define REEL__FEAT_NAME(name, desc) #name,
    REEL_FEATURES(REEL__FEAT_NAME)
#undef REEL__FEAT_NAME
};
static const char *const descs[] = {
#define REEL__FEAT_DESC(name, desc) desc,
    REEL_FEATURES(REEL__FEAT_DESC)
#undef REEL__FEAT_DESC
};

const char *reel_feature_name(int f)
{
    return f >= 0 && f < REEL_F__COUNT ? names[f] : NULL;
}

const char *reel_feature_desc(int f)
{
    return f >= 0 && f < REEL_F__COUNT ? descs[f] : NULL;
}

int reel_featstate_new(const reel_dataset *ds, reel_featstate **out)
{
    reel_featstate *s = reel_xcalloc(1, sizeof *s);
    s->ds = ds;
    s->n_users = reel_dataset_users(ds)->n;
    s->n_videos = reel_dataset_videos(ds)->n;
    s->u = reel_xcalloc((size_t)s->n_users + 1, sizeof *s->u);
    s->v = reel_xcalloc((size_t)s->n_videos + 1, sizeof *s->v);
    for (uint32_t i = 0; i < s->n_users; i++)
        s->u[i].last_ts = NAN;
    *out = s;
    return 0;
}

void reel_featstate_grow(reel_featstate *s, uint32_t n_users)
{
    if (n_users <= s->n_users)
        return;
    s->u = reel_xrealloc(s->u, ((size_t)n_users + 1) * sizeof *s->u);
    memset(s->u + s->n_users, 0,
           ((size_t)n_users + 1 - s->n_users) * sizeof *s->u);
    for (uint32_t i = s->n_users; i < n_users; i++)
        s->u[i].last_ts = NAN;
    s->n_users = n_users;
}

uint32_t reel_featstate_n_users(const reel_featstate *s)
{
    return s->n_users;
}

void reel_featstate_grow_videos(reel_featstate *s, uint32_t n_videos)
{
    if (n_videos <= s->n_videos)
        return;
    s->v = reel_xrealloc(s->v, ((size_t)n_videos + 1) * sizeof *s->v);
    memset(s->v + s->n_videos, 0,
           ((size_t)n_videos + 1 - s->n_videos) * sizeof *s->v);
    s->n_videos = n_videos;
}

uint32_t reel_featstate_n_videos(const reel_featstate *s)
{
    return s->n_videos;
}

void reel_featstate_clear(reel_featstate *s)
{
    for (uint32_t u = 0; u < s->n_users; u++)
        reel_fs_user_init(&s->u[u]);
    memset(s->v, 0, ((size_t)s->n_videos + 1) * sizeof *s->v);
}

void reel_featstate_use_meta(reel_featstate *s, const reel_meta *m)
{
    s->meta = m;
}

void reel_featstate_free(reel_featstate *s)
{
    if (!s)
        return;
    free(s->u);
    free(s->v);
    free(s);
}

static double decay(double dt, double half_life)
{
    return dt > 0 ? exp2(-dt / half_life) : 1.0;
}

static uint32_t ring_last(const reel_fs_user *u)
{
    return u->ring_n
               ? u->ring[(u->ring_at + REEL_FEAT_RING - 1) % REEL_FEAT_RING]
               : REEL_NONE;
}

void reel_fs_user_init(reel_fs_user *u)
{
    memset(u, 0, sizeof *u);
    u->last_ts = NAN;
}

int reel_featstate_apply_user(const reel_featstate *s, reel_fs_user *u,
                              uint32_t video, int type, double ts,
                              float watch_s, float rating)
{
    const reel_videos *vid = videos(s);
    /* A video the state holds but the table does not (yet) has no
     * metadata: no duration, categories or language. */
    int known = video < vid->n;
    u->last_ts = ts;
    if (type == REEL_EV_IMPRESSION) {
        u->impressions++;
        return 0;
    }
    if (!reel_event_is_positive((uint8_t)type))
        return 0;
    float dur = known ? vid->duration_s[video] : NAN;
    if (isfinite(watch_s) && watch_s >= 0 && isfinite(dur) && dur > 0) {
        float f = watch_s / dur;
        u->wf_sum += f > 1 ? 1 : f;
        u->wf_n++;
    }
    if (isfinite(rating)) {
        u->rating_sum += rating;
        u->rating_n++;
    }
    /* A click, play and watch of one video in a row are one view (as in
     * src/data/interactions); the watch still adds its minutes below. */
    int repeat = ring_last(u) == video;
    float w = isfinite(watch_s) && watch_s > 0 ? watch_s / 60.0f
              : repeat                         ? 0.0f
                                               : 1.0f;
    if (w > 0 && known) {
        float f = (float)decay(ts - u->share_ts, SHARE_HALF_LIFE);
        if (f != 1.0f) {
            for (int i = 0; i < CAT_BUCKETS; i++)
                u->cat[i] *= f;
            for (int i = 0; i < LANG_BUCKETS; i++)
                u->lang[i] *= f;
        }
        u->share_ts = ts;
        for (uint32_t k = vid->cat_off[video]; k < vid->cat_off[video + 1]; k++)
            u->cat[vid->cat[k] % CAT_BUCKETS] += w;
        if (vid->language[video] != REEL_NONE)
            u->lang[vid->language[video] % LANG_BUCKETS] += w;
    }
    if (repeat)
        return 1;
    u->views++;
    u->ring[u->ring_at] = video;
    u->ring_at = (u->ring_at + 1) % REEL_FEAT_RING;
    if (u->ring_n < REEL_FEAT_RING)
        u->ring_n++;
    return 0;
}

void reel_featstate_apply_video(const reel_featstate *s, reel_fs_video *v,
                                uint32_t video, int type, double ts,
                                float watch_s, float rating, int repeat)
{
    const reel_videos *vid = videos(s);
    if (type == REEL_EV_IMPRESSION) {
        v->impressions++;
        return;
    }
    if (!reel_event_is_positive((uint8_t)type))
        return;
    float dur = video < vid->n ? vid->duration_s[video] : NAN;
    if (isfinite(watch_s) && watch_s >= 0 && isfinite(dur) && dur > 0) {
        float f = watch_s / dur;
        v->wf_sum += f > 1 ? 1 : f;
        v->wf_n++;
    }
    if (isfinite(rating)) {
        v->rating_sum += rating;
        v->rating_n++;
    }
    if (repeat)
        return;
    v->views++;
    if (ts >= v->ts) {
        v->d1 = (float)(v->d1 * decay(ts - v->ts, DAY) + 1);
        v->d7 = (float)(v->d7 * decay(ts - v->ts, 7 * DAY) + 1);
        v->ts = ts;
    } else {
        /* An older view (events out of order): its share as of v->ts, so
         * the sums do not depend on the order events arrive in. */
        v->d1 = (float)(v->d1 + decay(v->ts - ts, DAY));
        v->d7 = (float)(v->d7 + decay(v->ts - ts, 7 * DAY));
    }
}

void reel_featstate_apply(reel_featstate *s, uint32_t user, uint32_t video,
                          int type, double ts, float watch_s, float rating)
{
    if (user >= s->n_users || video >= s->n_videos)
        return;
    int repeat = reel_featstate_apply_user(s, &s->u[user], video, type, ts,
                                           watch_s, rating);
    reel_featstate_apply_video(s, &s->v[video], video, type, ts, watch_s,
                               rating, repeat);
}

const reel_fs_user *reel_featstate_user(const reel_featstate *s, uint32_t user)
{
    return user < s->n_users ? &s->u[user] : NULL;
}

const reel_fs_video *reel_featstate_video(const reel_featstate *s,
                                          uint32_t video)
{
    return video < s->n_videos ? &s->v[video] : NULL;
}

void reel_featstate_set_video(reel_featstate *s, uint32_t video,
                              const reel_fs_video *v)
{
    if (video < s->n_videos)
        s->v[video] = *v;
}

void reel_featstate_apply_events(reel_featstate *s, uint64_t from, uint64_t to,
                                 const uint8_t *keep)
{
    const reel_events *e = reel_dataset_events(s->ds);
    for (uint64_t i = from; i < to && i < e->n; i++)
        if (!keep || keep[i])
            reel_featstate_apply(s, e->user[i], e->video[i], e->type[i],
                                 e->ts[i], e->watch_s[i], e->rating[i]);
}

uint32_t reel_fs_user_recent(const reel_fs_user *u, uint32_t *out)
{
    uint32_t start = (u->ring_at + REEL_FEAT_RING - u->ring_n) % REEL_FEAT_RING;
    for (uint32_t i = 0; i < u->ring_n; i++)
        out[i] = u->ring[(start + i) % REEL_FEAT_RING];
    return u->ring_n;
}

uint32_t reel_featstate_recent(const reel_featstate *s, uint32_t user,
                               uint32_t *out)
{
    return user < s->n_users ? reel_fs_user_recent(&s->u[user], out) : 0;
}

static float age_bucket(int age)
{
    static const int upper[] = {18, 25, 35, 45, 50, 56};
    for (int b = 0; b < 6; b++)
        if (age < upper[b])
            return (float)b;
    return 6;
}

static float dict_or_nan(uint32_t id)
{
    return id == REEL_NONE ? NAN : (float)id;
}

static float share(const float *b, int n, uint32_t id)
{
    double tot = 0;
    for (int i = 0; i < n; i++)
        tot += b[i];
    return tot > 0 ? (float)(b[id % (uint32_t)n] / tot) : NAN;
}

void reel_features_row(const reel_featstate *s, uint32_t user, uint32_t video,
                       double now, const reel_cand_feats *c, float *out)
{
    if (user < s->n_users)
        reel_features_row_with(s, &s->u[user], user, video, now, c, out);
    else
        reel_features_row_with(s, NULL, REEL_NONE, video, now, c, out);
}

void reel_features_row_with(const reel_featstate *s, const reel_fs_user *u,
                            uint32_t user, uint32_t video, double now,
                            const reel_cand_feats *c, float *out)
{
    for (int f = 0; f < REEL_F__COUNT; f++)
        out[f] = NAN;
    if (c) {
        out[REEL_F_x_sim] = c->sim;
        out[REEL_F_x_rank] = c->rank;
        out[REEL_F_x_sim_last] = c->sim_last;
        out[REEL_F_x_sim_max] = c->sim_max;
    }
    const reel_users *us = users(s);
    const reel_videos *vid = videos(s);
    if (u) {
        /* Users beyond the table (grown without a meta, or not yet in
         * it) have no columns: their demographics stay missing. */
        if (user < us->n) {
            int age = us->age[user];
            if (age >= 0) {
                out[REEL_F_u_age] = (float)age;
                out[REEL_F_u_age_bucket] = age_bucket(age);
            }
            out[REEL_F_u_gender] = dict_or_nan(us->gender[user]);
            out[REEL_F_u_country] = dict_or_nan(us->country[user]);
            out[REEL_F_u_occupation] = dict_or_nan(us->occupation[user]);
            if (isfinite(us->signed_up_at[user]))
                out[REEL_F_u_account_days] =
                    (float)((now - us->signed_up_at[user]) / DAY);
        }
        out[REEL_F_u_views] = (float)u->views;
        if (u->wf_n)
            out[REEL_F_u_watch_frac] = u->wf_sum / (float)u->wf_n;
        if (isfinite(u->last_ts))
            out[REEL_F_u_hours_since_last] = (float)((now - u->last_ts) / 3600);
        out[REEL_F_u_impressions] = (float)u->impressions;
        if (u->impressions)
            out[REEL_F_u_ctr] =
                (float)((u->views + 1.0) / (u->impressions + 2.0));
        float best = 0;
        for (int i = 0; i < LANG_BUCKETS; i++)
            if (u->lang[i] > best) {
                best = u->lang[i];
                out[REEL_F_u_top_language] = (float)i;
            }
        if (u->rating_n)
            out[REEL_F_u_mean_rating] = u->rating_sum / (float)u->rating_n;
    }
    if (video >= s->n_videos)
        return;
    const reel_fs_video *v = &s->v[video];
    /* A video beyond the table (grown before its metadata arrived) has
     * none: its static columns stay missing. */
    uint32_t c0 = 0, c1 = 0, lang = REEL_NONE;
    if (video < vid->n) {
        out[REEL_F_v_duration_s] = vid->duration_s[video];
        out[REEL_F_v_type] = dict_or_nan(vid->type[video]);
        lang = vid->language[video];
        out[REEL_F_v_language] = dict_or_nan(lang);
        c0 = vid->cat_off[video];
        c1 = vid->cat_off[video + 1];
        if (c1 > c0)
            out[REEL_F_v_category] = (float)vid->cat[c0];
        if (isfinite(vid->published_at[video]))
            out[REEL_F_v_age_days] =
                (float)((now - vid->published_at[video]) / DAY);
    }
    out[REEL_F_v_impressions] = (float)v->impressions;
    if (v->impressions)
        out[REEL_F_v_ctr] = (float)((v->views + 1.0) / (v->impressions + 2.0));
    if (v->wf_n)
        out[REEL_F_v_watch_frac] = v->wf_sum / (float)v->wf_n;
    out[REEL_F_v_views] = (float)v->views;
    float d1 = (float)(v->d1 * decay(now - v->ts, DAY));
    float d7 = (float)(v->d7 * decay(now - v->ts, 7 * DAY));
    out[REEL_F_v_views_1d] = d1;
    out[REEL_F_v_views_7d] = d7;
    if (d7 > 0)
        out[REEL_F_v_trend] = d1 / d7;
    if (v->rating_n)
        out[REEL_F_v_mean_rating] = v->rating_sum / (float)v->rating_n;
    if (!u)
        return;
    if (c1 > c0) {
        out[REEL_F_x_cat_affinity] = share(u->cat, CAT_BUCKETS, vid->cat[c0]);
        if (isfinite(out[REEL_F_x_cat_affinity])) {
            /* Distinct buckets of the video's categories, summed. */
            uint64_t seen = 0;
            double tot = 0, sum = 0;
            for (int i = 0; i < CAT_BUCKETS; i++)
                tot += u->cat[i];
            for (uint32_t k = c0; k < c1; k++) {
                uint32_t b = vid->cat[k] % CAT_BUCKETS;
                if (!(seen >> b & 1)) {
                    seen |= 1ull << b;
                    sum += u->cat[b];
                }
            }
            out[REEL_F_x_cat_any] = (float)(sum / tot);
        }
    }
    if (lang != REEL_NONE)
        out[REEL_F_x_lang_match] = share(u->lang, LANG_BUCKETS, lang);
}

/* ------------------------------------------------------------ snapshots */

#define FEAT_VERSION 1
#define FEAT_HEAD_N 8
/* n + 1 entries are allocated and ids stay below REEL_NONE. */
#define FEAT_MAX_ROWS (UINT32_MAX - 2)

/* One field of the per-user or per-video structs: `size` bytes at `off`
 * of each element, written as a section of `type`. */
struct field {
    const char *stem;
    enum reel_sectype type;
    size_t off, size;
};

#define FIELD(stem, type, st, member)                                          \
    {                                                                          \
        stem, type, offsetof(st, member), sizeof((st *)0)->member              \
    }

static const struct field ufields[] = {
    FIELD("u.last_ts", REEL_SEC_F64, reel_fs_user, last_ts),
    FIELD("u.share_ts", REEL_SEC_F64, reel_fs_user, share_ts),
    FIELD("u.views", REEL_SEC_U32, reel_fs_user, views),
    FIELD("u.impr", REEL_SEC_U32, reel_fs_user, impressions),
    FIELD("u.wf_n", REEL_SEC_U32, reel_fs_user, wf_n),
    FIELD("u.wf_sum", REEL_SEC_F32, reel_fs_user, wf_sum),
    FIELD("u.rating_n", REEL_SEC_U32, reel_fs_user, rating_n),
    FIELD("u.rating_sum", REEL_SEC_F32, reel_fs_user, rating_sum),
    FIELD("u.cat", REEL_SEC_F32, reel_fs_user, cat),
    FIELD("u.lang", REEL_SEC_F32, reel_fs_user, lang),
};

static const struct field vfields[] = {
    FIELD("v.ts", REEL_SEC_F64, reel_fs_video, ts),
    FIELD("v.views", REEL_SEC_U32, reel_fs_video, views),
    FIELD("v.impr", REEL_SEC_U32, reel_fs_video, impressions),
    FIELD("v.wf_n", REEL_SEC_U32, reel_fs_video, wf_n),
    FIELD("v.wf_sum", REEL_SEC_F32, reel_fs_video, wf_sum),
    FIELD("v.rating_n", REEL_SEC_U32, reel_fs_video, rating_n),
    FIELD("v.rating_sum", REEL_SEC_F32, reel_fs_video, rating_sum),
    FIELD("v.d1", REEL_SEC_F32, reel_fs_video, d1),
    FIELD("v.d7", REEL_SEC_F32, reel_fs_video, d7),
};

enum { N_UFIELDS = sizeof ufields / sizeof ufields[0] };
enum { N_VFIELDS = sizeof vfields / sizeof vfields[0] };

static void feat_name(char *buf, const char *prefix, const char *stem)
{
    int n = snprintf(buf, REEL_SECFILE_NAME_MAX + 1, "%s%s", prefix, stem);
    assert(n > 0 && n <= REEL_SECFILE_NAME_MAX);
    (void)n;
}

/* Field f of n structs of `stride` bytes at base, as one section. */
static int put_field(reel_secfile_writer *w, const char *prefix,
                     const struct field *f, const void *base, size_t stride,
                     uint32_t n)
{
    char name[REEL_SECFILE_NAME_MAX + 1];
    feat_name(name, prefix, f->stem);
    const char *p = base;
    int rc = reel_secfile_writer_begin(w, name, f->type);
    for (uint32_t i = 0; i < n && !rc; i++)
        rc = reel_secfile_writer_append(w, p + (size_t)i * stride + f->off,
                                        f->size);
    return rc ? rc : reel_secfile_writer_end(w);
}

static int put_rings(const reel_featstate *s, reel_secfile_writer *w,
                     const char *prefix)
{
    char name[REEL_SECFILE_NAME_MAX + 1];
    feat_name(name, prefix, "u.ring_n");
    int rc = reel_secfile_writer_begin(w, name, REEL_SEC_U8);
    for (uint32_t i = 0; i < s->n_users && !rc; i++) {
        uint8_t n = (uint8_t)s->u[i].ring_n;
        rc = reel_secfile_writer_append(w, &n, 1);
    }
    if (rc || (rc = reel_secfile_writer_end(w)))
        return rc;
    feat_name(name, prefix, "u.ring");
    rc = reel_secfile_writer_begin(w, name, REEL_SEC_U32);
    uint32_t recent[REEL_FEAT_RING];
    for (uint32_t i = 0; i < s->n_users && !rc; i++) {
        uint32_t n = reel_featstate_recent(s, i, recent);
        if (n)
            rc = reel_secfile_writer_append(w, recent, n * sizeof *recent);
    }
    return rc ? rc : reel_secfile_writer_end(w);
}

int reel_featstate_save(const reel_featstate *s, reel_secfile_writer *w,
                        const char *prefix, reel_diag *d)
{
    assert(strlen(prefix) <= REEL_FEAT_PREFIX_MAX);
    uint64_t head[FEAT_HEAD_N] = {FEAT_VERSION,   s->n_users,  s->n_videos,
                                  REEL_FEAT_RING, CAT_BUCKETS, LANG_BUCKETS};
    char name[REEL_SECFILE_NAME_MAX + 1];
    feat_name(name, prefix, "head");
    int rc = reel_secfile_writer_add(w, name, REEL_SEC_U64, head, FEAT_HEAD_N);
    for (int k = 0; k < N_UFIELDS && !rc; k++)
        rc = put_field(w, prefix, &ufields[k], s->u, sizeof *s->u, s->n_users);
    if (!rc)
        rc = put_rings(s, w, prefix);
    for (int k = 0; k < N_VFIELDS && !rc; k++)
        rc = put_field(w, prefix, &vfields[k], s->v, sizeof *s->v, s->n_videos);
    if (rc)
        return reel_diag_fail(d, rc, "cannot write the feature state: %s",
                              reel_strerror(rc));
    return 0;
}

static int feat_need(const reel_secfile *f, const char *prefix,
                     const char *stem, enum reel_sectype type, uint64_t count,
                     const reel_section **out, reel_diag *d)
{
    char name[REEL_SECFILE_NAME_MAX + 1];
    feat_name(name, prefix, stem);
    return reel_secfile_need(f, name, type, count, out, d);
}

/* Whether every element of a float section is finite (f64 sections may
 * also hold NaN when nan_ok). */
static int all_finite(const reel_section *sec, int nan_ok)
{
    if (sec->type == REEL_SEC_F64) {
        const double *x = sec->data;
        for (uint64_t i = 0; i < sec->count; i++)
            if (!isfinite(x[i]) && !(nan_ok && isnan(x[i])))
                return 0;
    } else if (sec->type == REEL_SEC_F32) {
        const float *x = sec->data;
        for (uint64_t i = 0; i < sec->count; i++)
            if (!isfinite(x[i]))
                return 0;
    }
    return 1;
}

static int feat_corrupt(reel_diag *d, const char *prefix, const char *stem,
                        const char *what)
{
    return reel_diag_fail(d, REEL_ECORRUPT, "section '%s%s': %s", prefix, stem,
                          what);
}

/* Copies section data into field f of n structs of `stride` bytes. */
static void get_field(const struct field *f, const reel_section *sec,
                      void *base, size_t stride, uint32_t n)
{
    char *p = base;
    const char *src = sec->data;
    for (uint32_t i = 0; i < n; i++)
        memcpy(p + (size_t)i * stride + f->off, src + (size_t)i * f->size,
               f->size);
}

int reel_featstate_load(reel_featstate *s, const reel_secfile *f,
                        const char *prefix, reel_diag *d)
{
    assert(strlen(prefix) <= REEL_FEAT_PREFIX_MAX);
    const reel_section *sec;
    int rc = feat_need(f, prefix, "head", REEL_SEC_U64, FEAT_HEAD_N, &sec, d);
    if (rc)
        return rc;
    const uint64_t *h = sec->data;
    if (h[0] != FEAT_VERSION)
        return reel_diag_fail(d, REEL_EVERSION,
                              "section '%shead': version %llu, expected %d",
                              prefix, (unsigned long long)h[0], FEAT_VERSION);
    if (h[3] != REEL_FEAT_RING || h[4] != CAT_BUCKETS || h[5] != LANG_BUCKETS)
        return reel_diag_fail(d, REEL_EFORMAT,
                              "section '%shead': ring or bucket sizes differ "
                              "from this build's",
                              prefix);
    if (h[1] < s->n_users || h[1] > FEAT_MAX_ROWS || h[2] < s->n_videos ||
        h[2] > FEAT_MAX_ROWS)
        return reel_diag_fail(
            d, REEL_ECORRUPT,
            "section '%shead': %llu users and %llu videos, the state has "
            "%u and %u (a snapshot of another dataset?)",
            prefix, (unsigned long long)h[1], (unsigned long long)h[2],
            s->n_users, s->n_videos);
    uint32_t nu = (uint32_t)h[1], nv = (uint32_t)h[2];

    /* Everything is checked against the file before s changes. */
    const reel_section *us[N_UFIELDS], *vs[N_VFIELDS], *ring_n, *ring;
    for (int k = 0; k < N_UFIELDS; k++) {
        const struct field *fl = &ufields[k];
        uint64_t per = fl->size / reel_sectype_size(fl->type);
        if ((rc = feat_need(f, prefix, fl->stem, fl->type, (uint64_t)nu * per,
                            &us[k], d)))
            return rc;
        if (!all_finite(us[k], k == 0))
            return feat_corrupt(d, prefix, fl->stem, "a value is not finite");
    }
    for (int k = 0; k < N_VFIELDS; k++) {
        const struct field *fl = &vfields[k];
        if ((rc = feat_need(f, prefix, fl->stem, fl->type, nv, &vs[k], d)))
            return rc;
        if (!all_finite(vs[k], 0))
            return feat_corrupt(d, prefix, fl->stem, "a value is not finite");
    }
    if ((rc = feat_need(f, prefix, "u.ring_n", REEL_SEC_U8, nu, &ring_n, d)) ||
        (rc = feat_need(f, prefix, "u.ring", REEL_SEC_U32, UINT64_MAX, &ring,
                        d)))
        return rc;
    const uint8_t *rn = ring_n->data;
    uint64_t total = 0;
    for (uint32_t i = 0; i < nu; i++) {
        if (rn[i] > REEL_FEAT_RING)
            return feat_corrupt(d, prefix, "u.ring_n", "a history too long");
        total += rn[i];
    }
    if (total != ring->count)
        return feat_corrupt(d, prefix, "u.ring",
                            "count differs from the sum of u.ring_n");
    const uint32_t *rv = ring->data;
    for (uint64_t k = 0; k < total; k++)
        if (rv[k] >= nv)
            return feat_corrupt(d, prefix, "u.ring", "video out of range");

    reel_featstate_grow(s, nu);
    reel_featstate_grow_videos(s, nv);
    for (int k = 0; k < N_UFIELDS; k++)
        get_field(&ufields[k], us[k], s->u, sizeof *s->u, nu);
    for (int k = 0; k < N_VFIELDS; k++)
        get_field(&vfields[k], vs[k], s->v, sizeof *s->v, nv);
    uint64_t at = 0;
    for (uint32_t i = 0; i < nu; i++) {
        reel_fs_user *u = &s->u[i];
        memset(u->ring, 0, sizeof u->ring);
        u->ring_n = rn[i];
        u->ring_at = rn[i] % REEL_FEAT_RING;
        memcpy(u->ring, rv + at, (size_t)rn[i] * sizeof *rv);
        at += rn[i];
    }
    return 0;
}
