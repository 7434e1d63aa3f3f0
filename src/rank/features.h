/*
 * features: the one code path that turns (user, video, moment) into the
 * ranker's feature row, offline (training) and online (serving) alike.
 *
 * A reel_featstate holds what is known at a moment: per user and per video
 * running counters, updated by reel_featstate_apply() with each event in
 * time order, plus the static catalogue and user columns of the dataset.
 * A row is computed from the state as it is when asked, so a training row
 * built just before an event is applied sees exactly what the server would
 * have seen when it was asked for that user at that time: no train/serve
 * skew and nothing from the future. The columns, their units and their
 * missing values are the table of docs/features.md (REEL_FEATURES names
 * them in order).
 *
 * Recent-window counts are exponentially decayed counters (half-lives of
 * one and seven days; a category or language share, thirty days): exact
 * sliding windows would need every event of the window kept per video.
 * Category and language shares keep 64 and 16 hashed buckets per user
 * (the id modulo the bucket count), so memory stays fixed per user
 * (about 500 bytes) whatever the vocabularies' sizes.
 *
 * The state also keeps each user's recent history (the last
 * REEL_FEAT_RING positive videos, newest last), which the retrieval query
 * is built from.
 *
 * The static columns come from the dataset's tables, or, after
 * reel_featstate_use_meta(), from a reel_meta's live tables (a server that
 * adds and replaces videos and users): a row reads them as they are when
 * it is computed.
 *
 * reel_featstate_save() and _load() carry the counters and rings through a
 * snapshot (docs/formats/featstate.md): a loaded state gives bit-identical
 * rows and recent histories.
 *
 * Ownership: the state borrows the dataset (which must outlive it), and the
 * meta when given one, and owns its counters. Thread rules: one writer;
 * reel_features_row() only reads, so any number of readers may run when no
 * writer does (the server serialises them, and serialises them with puts
 * to the meta).
 */
#ifndef REEL_RANK_FEATURES_H
#define REEL_RANK_FEATURES_H

#include <stdint.h>

#include "base/err.h"
#include "base/secfile.h"
#include "data/dataset.h"
#include "data/meta.h"

/* X(name, description): the columns in order. */
#define REEL_FEATURES(X)                                                       \
    X(u_age, "user age in years")                                              \
    X(u_age_bucket, "age bucket 0..6: <18, 18-24, 25-34, 35-44, 45-49, "       \
                    "50-55, 56+")                                              \
    X(u_gender, "gender (dictionary id)")                                      \
    X(u_country, "country (dictionary id)")                                    \
    X(u_occupation, "occupation (dictionary id)")                              \
    X(u_account_days, "days since sign-up")                                    \
    X(u_views, "positive events so far")                                       \
    X(u_watch_frac, "mean watched fraction of the user's watches")             \
    X(u_hours_since_last, "hours since the user's last event")                 \
    X(u_impressions, "impressions shown to the user")                          \
    X(u_ctr, "user click-through rate, smoothed")                              \
    X(u_top_language, "language bucket (id mod 16) with the largest share")    \
    X(u_mean_rating, "mean of the user's ratings")                             \
    X(v_duration_s, "video duration in seconds")                               \
    X(v_type, "video type (dictionary id)")                                    \
    X(v_language, "video language (dictionary id)")                            \
    X(v_category, "primary category (dictionary id)")                          \
    X(v_age_days, "days since publication")                                    \
    X(v_impressions, "impressions of the video")                               \
    X(v_ctr, "video click-through rate, smoothed")                             \
    X(v_watch_frac, "mean watched fraction of the video's watches")            \
    X(v_views, "positive events on the video")                                 \
    X(v_views_1d, "positive events, decayed with a one-day half-life")         \
    X(v_views_7d, "positive events, decayed with a seven-day half-life")       \
    X(v_trend, "v_views_1d / v_views_7d: rising when above 1/7")               \
    X(v_mean_rating, "mean rating of the video")                               \
    X(x_sim, "similarity of the video to the user's query vector")             \
    X(x_rank, "rank among the retrieval candidates (0 = first)")               \
    X(x_sim_last, "cosine of the video to the user's latest video")            \
    X(x_sim_max, "largest cosine of the video to one of the query's videos")   \
    X(x_cat_affinity, "user's recent share on the video's primary category")   \
    X(x_cat_any, "user's recent share on any of the video's categories")       \
    X(x_lang_match, "user's recent share on the video's language")

enum reel_feature {
#define REEL__FEAT_ENUM(name, desc) REEL_F_##name,
    REEL_FEATURES(REEL__FEAT_ENUM)
#undef REEL__FEAT_ENUM
        REEL_F__COUNT
};

enum {
    REEL_FEAT_RING = 32,
    REEL_FEAT_CAT_BUCKETS = 64,
    REEL_FEAT_LANG_BUCKETS = 16
};

/*
 * One user's counters and ring, and one video's counters: what the state
 * holds per row, public so that a store outside the state (Redis,
 * src/store/redis.h) can keep them and hand them to
 * reel_features_row_with(). Plain values; copy freely.
 */
typedef struct reel_fs_user {
    double last_ts;  /* NaN: no event yet */
    double share_ts; /* time the shares were last decayed to */
    uint32_t views, impressions, wf_n, rating_n;
    float wf_sum, rating_sum;
    float cat[REEL_FEAT_CAT_BUCKETS];
    float lang[REEL_FEAT_LANG_BUCKETS];
    uint32_t ring[REEL_FEAT_RING]; /* video indexes, a circular buffer */
    uint32_t ring_n;               /* items in the ring (<= REEL_FEAT_RING) */
    uint32_t ring_at;              /* next slot */
} reel_fs_user;

typedef struct reel_fs_video {
    double ts; /* time the decayed counts were last updated */
    uint32_t views, impressions, wf_n, rating_n;
    float d1, d7, wf_sum, rating_sum;
} reel_fs_video;

/* A user with no events (last_ts NaN, everything else 0). */
void reel_fs_user_init(reel_fs_user *u);
/* u's recent positive videos, oldest first (at most REEL_FEAT_RING). */
uint32_t reel_fs_user_recent(const reel_fs_user *u, uint32_t *out);

/* Column name ("u_age") and description; NULL for an unknown column. */
const char *reel_feature_name(int f);
const char *reel_feature_desc(int f);

typedef struct reel_featstate reel_featstate;

/* An empty state (nothing has happened yet) for the dataset's users and
 * videos. */
int reel_featstate_new(const reel_dataset *ds, reel_featstate **out);
void reel_featstate_free(reel_featstate *s);

/* Makes room for users 0..n_users (the dataset's users first): users
 * beyond the dataset (new users of a live server) start empty, and their
 * demographic columns are missing (NaN) in every row. Never shrinks;
 * the writer calls it (it moves the user table). */
void reel_featstate_grow(reel_featstate *s, uint32_t n_users);
/* Forgets every event: every user and video as if new (the writer). */
void reel_featstate_clear(reel_featstate *s);
/* Users the state holds (the dataset's, plus grown ones). */
uint32_t reel_featstate_n_users(const reel_featstate *s);
/* Makes room for videos 0..n_videos (new ones start with no events).
 * Never shrinks; the writer calls it. */
void reel_featstate_grow_videos(reel_featstate *s, uint32_t n_videos);
/* Videos the state holds. */
uint32_t reel_featstate_n_videos(const reel_featstate *s);

/*
 * From now on, rows read the video and user columns from the meta's
 * tables (reel_meta_videos(m), reel_meta_users(m), borrowed: m must
 * outlive the state) instead of the dataset's: users with a row in the
 * meta's user table have its demographics, users beyond it none (NaN), as
 * grown users have without a meta. The meta should be of the state's
 * dataset (same numbering). The writer calls it.
 */
void reel_featstate_use_meta(reel_featstate *s, const reel_meta *m);

/* Longest section-name prefix reel_featstate_save() and _load() accept. */
enum { REEL_FEAT_PREFIX_MAX = 16 };

/* Writes the counters and rings as snapshot sections whose names begin
 * with prefix (e.g. "feat."); errors are the writer's, with a message. */
int reel_featstate_save(const reel_featstate *s, reel_secfile_writer *w,
                        const char *prefix, reel_diag *d);
/*
 * Reads what reel_featstate_save() wrote into s, a state of the same
 * dataset with no more users or videos than were saved (a fresh one):
 * grows s to the saved counts and replaces every counter. Everything is
 * checked before s changes: a missing or mis-sized section, a count below
 * s's, a ring longer than REEL_FEAT_RING or naming a video out of range,
 * a non-finite value where there must be one is REEL_ECORRUPT; another
 * version or other constants REEL_EVERSION / REEL_EFORMAT; each with a
 * message naming the section. Nothing changes on failure.
 */
int reel_featstate_load(reel_featstate *s, const reel_secfile *f,
                        const char *prefix, reel_diag *d);

/* Applies one event; events must come in non-decreasing time. watch_s and
 * rating may be NaN. */
void reel_featstate_apply(reel_featstate *s, uint32_t user, uint32_t video,
                          int type, double ts, float watch_s, float rating);

/*
 * reel_featstate_apply() in its two halves, for state kept outside s
 * (s gives the video tables): the user's half returns 1 when the event
 * repeats the user's last view (the video's half then counts no new
 * view), and the video's half takes that.
 */
int reel_featstate_apply_user(const reel_featstate *s, reel_fs_user *u,
                              uint32_t video, int type, double ts,
                              float watch_s, float rating);
void reel_featstate_apply_video(const reel_featstate *s, reel_fs_video *v,
                                uint32_t video, int type, double ts,
                                float watch_s, float rating, int repeat);

/* Row `user`'s and `video`'s counters (NULL beyond the state). */
const reel_fs_user *reel_featstate_user(const reel_featstate *s, uint32_t user);
const reel_fs_video *reel_featstate_video(const reel_featstate *s,
                                          uint32_t video);
/* Replaces video's counters (a mirror of a shared store); the writer. */
void reel_featstate_set_video(reel_featstate *s, uint32_t video,
                              const reel_fs_video *v);

/* Applies the dataset's events [from, to) with keep[e] != 0 (keep may be
 * NULL). */
void reel_featstate_apply_events(reel_featstate *s, uint64_t from, uint64_t to,
                                 const uint8_t *keep);

/* The user's recent positive videos, oldest first, into out (at most
 * REEL_FEAT_RING); returns the count. */
uint32_t reel_featstate_recent(const reel_featstate *s, uint32_t user,
                               uint32_t *out);

/* What retrieval knows of a candidate (NaN when unknown); trainset.h's
 * reel_cand_feats_fill() computes it the same way for training and
 * serving. */
typedef struct reel_cand_feats {
    float sim;      /* to the query vector, as the index ranks */
    float rank;     /* among the candidates, 0 = first */
    float sim_last; /* cosine to the user's latest video */
    float sim_max;  /* largest cosine to one of the query's videos */
} reel_cand_feats;

/*
 * The row for (user, video) at time `now` (Unix seconds) into out
 * (REEL_F__COUNT floats, NaN = missing); c (or NULL) gives the retrieval
 * features.
 */
void reel_features_row(const reel_featstate *s, uint32_t user, uint32_t video,
                       double now, const reel_cand_feats *c, float *out);
/* The same with the user's counters given (u; NULL: none) and `user`
 * naming the row of the user tables for the demographics (REEL_NONE:
 * none); the video's counters and columns come from s. */
void reel_features_row_with(const reel_featstate *s, const reel_fs_user *u,
                            uint32_t user, uint32_t video, double now,
                            const reel_cand_feats *c, float *out);

#endif
