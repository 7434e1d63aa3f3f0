#include "rank/features.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "data/interactions.h"

enum { CAT_BUCKETS = 64, LANG_BUCKETS = 16 };

#define DAY 86400.0
#define SHARE_HALF_LIFE (30 * DAY)

struct ustate {
    double last_ts;  /* NaN: no event yet */
    double share_ts; /* time the shares were last decayed to */
    uint32_t views, impressions, wf_n, rating_n;
    float wf_sum, rating_sum;
    float cat[CAT_BUCKETS];
    float lang[LANG_BUCKETS];
    uint32_t ring[REEL_FEAT_RING];
    uint32_t ring_n;  /* items in the ring (<= REEL_FEAT_RING) */
    uint32_t ring_at; /* next slot */
};

struct vstate {
    double ts; /* time the decayed counts were last updated */
    uint32_t views, impressions, wf_n, rating_n;
    float d1, d7, wf_sum, rating_sum;
};

struct reel_featstate {
    const reel_dataset *ds;
    uint32_t n_users, n_videos;
    uint32_t n_ds_users; /* users with columns in the dataset */
    struct ustate *u;
    struct vstate *v;
};

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
    s->n_users = s->n_ds_users = reel_dataset_users(ds)->n;
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

static uint32_t ring_last(const struct ustate *u)
{
    return u->ring_n
               ? u->ring[(u->ring_at + REEL_FEAT_RING - 1) % REEL_FEAT_RING]
               : REEL_NONE;
}

void reel_featstate_apply(reel_featstate *s, uint32_t user, uint32_t video,
                          int type, double ts, float watch_s, float rating)
{
    if (user >= s->n_users || video >= s->n_videos)
        return;
    const reel_videos *vid = reel_dataset_videos(s->ds);
    struct ustate *u = &s->u[user];
    struct vstate *v = &s->v[video];
    u->last_ts = ts;
    if (type == REEL_EV_IMPRESSION) {
        u->impressions++;
        v->impressions++;
        return;
    }
    if (!reel_event_is_positive((uint8_t)type))
        return;
    float dur = vid->duration_s[video];
    if (isfinite(watch_s) && watch_s >= 0 && isfinite(dur) && dur > 0) {
        float f = watch_s / dur;
        f = f > 1 ? 1 : f;
        u->wf_sum += f;
        u->wf_n++;
        v->wf_sum += f;
        v->wf_n++;
    }
    if (isfinite(rating)) {
        u->rating_sum += rating;
        u->rating_n++;
        v->rating_sum += rating;
        v->rating_n++;
    }
    /* A click, play and watch of one video in a row are one view (as in
     * src/data/interactions); the watch still adds its minutes below. */
    int repeat = ring_last(u) == video;
    float w = isfinite(watch_s) && watch_s > 0 ? watch_s / 60.0f
              : repeat                         ? 0.0f
                                               : 1.0f;
    if (w > 0) {
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
        return;
    u->views++;
    v->views++;
    v->d1 = (float)(v->d1 * decay(ts - v->ts, DAY) + 1);
    v->d7 = (float)(v->d7 * decay(ts - v->ts, 7 * DAY) + 1);
    v->ts = ts;
    u->ring[u->ring_at] = video;
    u->ring_at = (u->ring_at + 1) % REEL_FEAT_RING;
    if (u->ring_n < REEL_FEAT_RING)
        u->ring_n++;
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

uint32_t reel_featstate_recent(const reel_featstate *s, uint32_t user,
                               uint32_t *out)
{
    if (user >= s->n_users)
        return 0;
    const struct ustate *u = &s->u[user];
    uint32_t start = (u->ring_at + REEL_FEAT_RING - u->ring_n) % REEL_FEAT_RING;
    for (uint32_t i = 0; i < u->ring_n; i++)
        out[i] = u->ring[(start + i) % REEL_FEAT_RING];
    return u->ring_n;
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
    for (int f = 0; f < REEL_F__COUNT; f++)
        out[f] = NAN;
    if (c) {
        out[REEL_F_x_sim] = c->sim;
        out[REEL_F_x_rank] = c->rank;
        out[REEL_F_x_sim_last] = c->sim_last;
        out[REEL_F_x_sim_max] = c->sim_max;
    }
    const reel_users *us = reel_dataset_users(s->ds);
    const reel_videos *vid = reel_dataset_videos(s->ds);
    if (user < s->n_users) {
        const struct ustate *u = &s->u[user];
        /* Users added by reel_featstate_grow have no columns: their
         * demographics stay missing. */
        if (user < s->n_ds_users) {
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
    const struct vstate *v = &s->v[video];
    out[REEL_F_v_duration_s] = vid->duration_s[video];
    out[REEL_F_v_type] = dict_or_nan(vid->type[video]);
    out[REEL_F_v_language] = dict_or_nan(vid->language[video]);
    uint32_t c0 = vid->cat_off[video], c1 = vid->cat_off[video + 1];
    if (c1 > c0)
        out[REEL_F_v_category] = (float)vid->cat[c0];
    if (isfinite(vid->published_at[video]))
        out[REEL_F_v_age_days] =
            (float)((now - vid->published_at[video]) / DAY);
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
    if (user >= s->n_users)
        return;
    const struct ustate *u = &s->u[user];
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
    if (vid->language[video] != REEL_NONE)
        out[REEL_F_x_lang_match] =
            share(u->lang, LANG_BUCKETS, vid->language[video]);
}
