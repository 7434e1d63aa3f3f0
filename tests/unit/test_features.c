/* Unit tests of src/rank/features and src/rank/trainset: feature values on
 * histories small enough to compute by hand, the time cut-off (a row never
 * sees a later event), repeats, the recent-history ring, label parsing,
 * and the training rows of both modes (impressions; sampled negatives). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "embed/vectors.h"
#include "index/index.h"
#include "rank/features.h"
#include "rank/rows.h"
#include "rank/trainset.h"

#define DAY 86400.0
#define T0 1700000000.0

/* ------------------------------------------------------------ datasets */

struct vid {
    const char *id, *lang, *type;
    const char *const *cats;
    size_t n_cats;
    double dur, pub;
};

struct ev {
    int u, v, type;
    double ts, watch, rating;
};

struct fixture {
    char *dir;
    reel_dataset *ds;
};

/* Users come as records (ids u0, u1, ...) in index order; videos too. */
static struct fixture make_ds(const struct vid *vs, int nv,
                              const reel_user_rec *us, int nu,
                              const struct ev *ev, int ne)
{
    struct fixture fx = {.dir = test_tmpdir()};
    reel_dsbuild *b;
    reel_dsbuild_new(&b);
    reel_diag d;
    for (int i = 0; i < nv; i++) {
        reel_video_rec r = reel_video_rec_empty();
        r.id = vs[i].id;
        r.language = vs[i].lang;
        r.type = vs[i].type;
        r.categories = vs[i].cats;
        r.n_categories = vs[i].n_cats;
        r.duration_s = vs[i].dur;
        r.published_at = vs[i].pub;
        uint32_t idx;
        assert_int_equal(reel_dsbuild_add_video(b, &r, &idx, &d), 0);
        assert_int_equal(idx, i);
    }
    for (int i = 0; i < nu; i++) {
        uint32_t idx;
        assert_int_equal(reel_dsbuild_add_user(b, &us[i], &idx, &d), 0);
        assert_int_equal(idx, i);
    }
    for (int i = 0; i < ne; i++) {
        reel_event_rec e = reel_event_rec_empty();
        e.user = (uint32_t)ev[i].u;
        e.video = (uint32_t)ev[i].v;
        e.type = ev[i].type;
        e.ts = ev[i].ts;
        e.watch_s = ev[i].watch;
        e.rating = ev[i].rating;
        assert_int_equal(reel_dsbuild_add_event(b, &e, &d), 0);
    }
    assert_int_equal(reel_dsbuild_write(b, fx.dir, &d), 0);
    reel_dsbuild_free(b);
    assert_int_equal(reel_dataset_open(fx.dir, &fx.ds, &d), 0);
    return fx;
}

static void fixture_free(struct fixture *fx)
{
    reel_dataset_close(fx->ds);
    test_rmtree(fx->dir);
    free(fx->dir);
}

/* The catalogue of the hand-computed tests. Dictionary ids follow first
 * appearance: languages en 0, fr 1; types clip 0, movie 1; categories
 * music 0, dance 1, news 2, comedy 3; genders f 0, m 1. */
static const struct vid cat_videos[] = {
    {"v0", "en", "clip", (const char *const[]){"music", "dance"}, 2, 120,
     T0 - 10 * DAY},
    {"v1", "fr", "clip", (const char *const[]){"news"}, 1, 60, T0 - 2 * DAY},
    {"v2", "en", "movie", (const char *const[]){"dance", "comedy"}, 2, 300,
     NAN},
    {"v3", NULL, NULL, NULL, 0, NAN, NAN},
};
enum { N_CAT_VIDEOS = 4 };

/* u0 has every attribute, u1 some, u2 none; u3.. carry the ages of the
 * age-bucket test. */
static const int bucket_ages[] = {0,  17, 18, 24, 25, 34, 35,
                                  44, 45, 49, 50, 55, 56, 150};
static const int bucket_want[] = {0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6};
enum { N_AGES = sizeof bucket_ages / sizeof bucket_ages[0] };
enum { N_USERS = 3 + N_AGES };

static void cat_users(reel_user_rec *us, char ids[][8])
{
    for (int i = 0; i < N_USERS; i++) {
        snprintf(ids[i], 8, "u%d", i);
        us[i] = reel_user_rec_empty();
        us[i].id = ids[i];
        if (i >= 3)
            us[i].age = bucket_ages[i - 3];
    }
    us[0].age = 30;
    us[0].gender = "f";
    us[0].country = "fr";
    us[0].occupation = "engineer";
    us[0].zip = "75001";
    us[0].signed_up_at = T0 - 100 * DAY;
    us[1].age = 17;
    us[1].gender = "m";
}

#define IMP REEL_EV_IMPRESSION
#define CLK REEL_EV_CLICK
#define PLY REEL_EV_PLAY
#define WAT REEL_EV_WATCH
#define SKP REEL_EV_SKIP
#define RAT REEL_EV_RATING

/* u0's history, with one view of v0 and an impression of v1 by u1. */
static const struct ev main_events[] = {
    {0, 0, IMP, T0, NAN, NAN},        {0, 0, CLK, T0 + 10, NAN, NAN},
    {0, 0, PLY, T0 + 20, NAN, NAN},   {0, 0, WAT, T0 + 30, 60, NAN},
    {0, 1, IMP, T0 + 3600, NAN, NAN}, {0, 1, WAT, T0 + 3700, 90, NAN},
    {0, 2, IMP, T0 + 3900, NAN, NAN}, {0, 2, RAT, T0 + 4000, NAN, 4},
    {1, 0, WAT, T0 + 5000, 30, NAN},  {1, 1, IMP, T0 + 5500, NAN, NAN},
    {0, 1, RAT, T0 + 5800, NAN, 3},   {0, 3, IMP, T0 + 5900, NAN, NAN},
    {0, 3, SKP, T0 + 6000, NAN, NAN},
};
enum { N_MAIN = sizeof main_events / sizeof main_events[0] };

static struct fixture main_ds(int n_events)
{
    reel_user_rec us[N_USERS];
    char ids[N_USERS][8];
    cat_users(us, ids);
    return make_ds(cat_videos, N_CAT_VIDEOS, us, N_USERS, main_events,
                   n_events);
}

/* One column against a value (NAN: must be missing), with the column's
 * name in the failure message. */
static void expect_col(const float *x, int f, double want)
{
    if (isnan(want)) {
        if (!isnan(x[f]))
            fail_msg("%s = %.9g, want NaN", reel_feature_name(f), x[f]);
        return;
    }
    double tol = 1e-5 * fmax(1, fabs(want));
    if (!(fabs(x[f] - want) <= tol))
        fail_msg("%s = %.9g, want %.9g", reel_feature_name(f), x[f], want);
}

static void feature_names_are_the_columns_in_order(void **state)
{
    (void)state;
    assert_int_equal(REEL_F__COUNT, 33);
    assert_string_equal(reel_feature_name(REEL_F_u_age), "u_age");
    assert_string_equal(reel_feature_name(REEL_F_v_views_1d), "v_views_1d");
    assert_string_equal(reel_feature_name(REEL_F__COUNT - 1), "x_lang_match");
    assert_null(reel_feature_name(-1));
    assert_null(reel_feature_name(REEL_F__COUNT));
    assert_null(reel_feature_desc(REEL_F__COUNT));
    assert_non_null(reel_feature_desc(0));
}

/* ------------------------------------------------------ feature values */

/* At T0 + 13200 s (two hours after u0's last event). u0 viewed v0 (click,
 * play, watch of 60 s of 120: one view), v1 (90 s of 60: fraction 1),
 * v2 (a rating of 4) and v1 again (a rating of 3, counted since v2 came
 * in between): 4 views, 4 impressions, watch fractions 0.5 and 1. */
static void features_match_a_hand_computed_history(void **state)
{
    (void)state;
    struct fixture fx = main_ds(N_MAIN);
    reel_featstate *s;
    assert_int_equal(reel_featstate_new(fx.ds, &s), 0);
    reel_featstate_apply_events(s, 0, N_MAIN, NULL);
    double now = T0 + 13200;
    float x[REEL_F__COUNT];

    reel_features_row(s, 0, 0, now, NULL, x);
    expect_col(x, REEL_F_u_age, 30);
    expect_col(x, REEL_F_u_age_bucket, 2);
    expect_col(x, REEL_F_u_gender, 0);
    expect_col(x, REEL_F_u_country, 0);
    expect_col(x, REEL_F_u_occupation, 0);
    expect_col(x, REEL_F_u_account_days, 100 + 13200 / DAY);
    expect_col(x, REEL_F_u_views, 4);
    expect_col(x, REEL_F_u_watch_frac, 0.75);
    expect_col(x, REEL_F_u_hours_since_last, 2); /* the skip counts */
    expect_col(x, REEL_F_u_impressions, 4);
    expect_col(x, REEL_F_u_ctr, (4 + 1.0) / (4 + 2.0));
    expect_col(x, REEL_F_u_top_language, 0); /* en 3 minutes vs fr 2.5 */
    expect_col(x, REEL_F_u_mean_rating, 3.5);
    expect_col(x, REEL_F_v_duration_s, 120);
    expect_col(x, REEL_F_v_type, 0);
    expect_col(x, REEL_F_v_language, 0);
    expect_col(x, REEL_F_v_category, 0);
    expect_col(x, REEL_F_v_age_days, 10 + 13200 / DAY);
    expect_col(x, REEL_F_v_impressions, 1);
    expect_col(x, REEL_F_v_ctr, (2 + 1.0) / (1 + 2.0));
    expect_col(x, REEL_F_v_watch_frac, (0.5 + 0.25) / 2);
    expect_col(x, REEL_F_v_views, 2);
    /* Views at T0 + 10 and T0 + 5000. */
    double d1 = (exp2(-4990 / DAY) + 1) * exp2(-8200 / DAY);
    double d7 = (exp2(-4990 / (7 * DAY)) + 1) * exp2(-8200 / (7 * DAY));
    expect_col(x, REEL_F_v_views_1d, d1);
    expect_col(x, REEL_F_v_views_7d, d7);
    expect_col(x, REEL_F_v_trend, d1 / d7);
    expect_col(x, REEL_F_v_mean_rating, NAN);
    for (int f = REEL_F_x_sim; f <= REEL_F_x_sim_max; f++)
        expect_col(x, f, NAN); /* no candidate features given */
    assert_true(x[REEL_F_x_cat_affinity] > 0 && x[REEL_F_x_cat_affinity] < 1);
    assert_true(x[REEL_F_x_cat_any] > x[REEL_F_x_cat_affinity]);
    float en = x[REEL_F_x_lang_match];
    reel_features_row(s, 0, 1, now, NULL, x);
    assert_float_equal(en + x[REEL_F_x_lang_match], 1, 1e-6);
    assert_true(en > x[REEL_F_x_lang_match]);

    /* v1: two impressions, two views, one rating of 3. */
    expect_col(x, REEL_F_v_ctr, (2 + 1.0) / (2 + 2.0));
    expect_col(x, REEL_F_v_watch_frac, 1);
    expect_col(x, REEL_F_v_mean_rating, 3);
    expect_col(x, REEL_F_v_age_days, 2 + 13200 / DAY);
    /* v2: one impression, one view, no watch, published_at missing. */
    reel_features_row(s, 0, 2, now, NULL, x);
    expect_col(x, REEL_F_v_ctr, 2.0 / 3);
    expect_col(x, REEL_F_v_watch_frac, NAN);
    expect_col(x, REEL_F_v_type, 1);
    expect_col(x, REEL_F_v_category, 1); /* the primary one: dance */
    expect_col(x, REEL_F_v_age_days, NAN);

    /* u1: age 17, a gender and nothing else; one watch of 30 s of 120 and
     * one impression. */
    reel_features_row(s, 1, 0, now, NULL, x);
    expect_col(x, REEL_F_u_age, 17);
    expect_col(x, REEL_F_u_age_bucket, 0);
    expect_col(x, REEL_F_u_gender, 1);
    expect_col(x, REEL_F_u_country, NAN);
    expect_col(x, REEL_F_u_occupation, NAN);
    expect_col(x, REEL_F_u_account_days, NAN);
    expect_col(x, REEL_F_u_views, 1);
    expect_col(x, REEL_F_u_watch_frac, 0.25);
    expect_col(x, REEL_F_u_hours_since_last, (13200 - 5500) / 3600.0);
    expect_col(x, REEL_F_u_ctr, 2.0 / 3);
    expect_col(x, REEL_F_u_mean_rating, NAN);
    expect_col(x, REEL_F_x_cat_affinity, 0.5); /* music of music + dance */
    expect_col(x, REEL_F_x_cat_any, 1);
    expect_col(x, REEL_F_x_lang_match, 1);

    /* u2 (nothing known, nothing done) and v3 (one impression, nothing
     * else): every column missing but the counters. */
    reel_cand_feats c = {
        .sim = 0.5f, .rank = 3, .sim_last = 0.25f, .sim_max = 0.75f};
    reel_features_row(s, 2, 3, now, &c, x);
    const double want[REEL_F__COUNT] = {
        [REEL_F_u_age] = NAN,
        [REEL_F_u_age_bucket] = NAN,
        [REEL_F_u_gender] = NAN,
        [REEL_F_u_country] = NAN,
        [REEL_F_u_occupation] = NAN,
        [REEL_F_u_account_days] = NAN,
        [REEL_F_u_views] = 0,
        [REEL_F_u_watch_frac] = NAN,
        [REEL_F_u_hours_since_last] = NAN,
        [REEL_F_u_impressions] = 0,
        [REEL_F_u_ctr] = NAN,
        [REEL_F_u_top_language] = NAN,
        [REEL_F_u_mean_rating] = NAN,
        [REEL_F_v_duration_s] = NAN,
        [REEL_F_v_type] = NAN,
        [REEL_F_v_language] = NAN,
        [REEL_F_v_category] = NAN,
        [REEL_F_v_age_days] = NAN,
        [REEL_F_v_impressions] = 1,
        [REEL_F_v_ctr] = 1.0 / 3,
        [REEL_F_v_watch_frac] = NAN,
        [REEL_F_v_views] = 0,
        [REEL_F_v_views_1d] = 0,
        [REEL_F_v_views_7d] = 0,
        [REEL_F_v_trend] = NAN,
        [REEL_F_v_mean_rating] = NAN,
        [REEL_F_x_sim] = 0.5,
        [REEL_F_x_rank] = 3,
        [REEL_F_x_sim_last] = 0.25,
        [REEL_F_x_sim_max] = 0.75,
        [REEL_F_x_cat_affinity] = NAN,
        [REEL_F_x_cat_any] = NAN,
        [REEL_F_x_lang_match] = NAN,
    };
    for (int f = 0; f < REEL_F__COUNT; f++)
        expect_col(x, f, want[f]);
    /* A user with no viewing has no shares, even for a video with
     * categories and a language. */
    reel_features_row(s, 2, 0, now, NULL, x);
    expect_col(x, REEL_F_x_cat_affinity, NAN);
    expect_col(x, REEL_F_x_cat_any, NAN);
    expect_col(x, REEL_F_x_lang_match, NAN);
    /* Out of range: that side's columns stay missing. */
    reel_features_row(s, N_USERS, 0, now, NULL, x);
    expect_col(x, REEL_F_u_views, NAN);
    expect_col(x, REEL_F_v_views, 2);
    expect_col(x, REEL_F_x_cat_affinity, NAN);
    reel_features_row(s, 0, N_CAT_VIDEOS, now, NULL, x);
    expect_col(x, REEL_F_u_views, 4);
    expect_col(x, REEL_F_v_views, NAN);
    reel_featstate_free(s);
    fixture_free(&fx);
}

static void age_buckets_follow_the_movielens_bands(void **state)
{
    (void)state;
    struct fixture fx = main_ds(0);
    reel_featstate *s;
    assert_int_equal(reel_featstate_new(fx.ds, &s), 0);
    float x[REEL_F__COUNT];
    for (int i = 0; i < N_AGES; i++) {
        reel_features_row(s, 3 + (uint32_t)i, 0, T0, NULL, x);
        expect_col(x, REEL_F_u_age, bucket_ages[i]);
        expect_col(x, REEL_F_u_age_bucket, bucket_want[i]);
    }
    reel_featstate_free(s);
    fixture_free(&fx);
}

/* One view: a day later the one-day counter is 1/2 and the seven-day one
 * 2^(-1/7); a week later 2^-7 and 1/2. */
static void view_counters_decay_with_their_half_lives(void **state)
{
    (void)state;
    struct fixture fx = main_ds(0);
    reel_featstate *s;
    assert_int_equal(reel_featstate_new(fx.ds, &s), 0);
    float x[REEL_F__COUNT];
    reel_featstate_apply(s, 0, 2, REEL_EV_CLICK, T0, NAN, NAN);
    reel_features_row(s, 1, 2, T0, NULL, x);
    expect_col(x, REEL_F_v_views_1d, 1);
    expect_col(x, REEL_F_v_views_7d, 1);
    expect_col(x, REEL_F_v_trend, 1);
    reel_features_row(s, 1, 2, T0 + DAY, NULL, x);
    expect_col(x, REEL_F_v_views, 1);
    expect_col(x, REEL_F_v_views_1d, 0.5);
    expect_col(x, REEL_F_v_views_7d, exp2(-1.0 / 7));
    expect_col(x, REEL_F_v_trend, 0.5 / exp2(-1.0 / 7));
    reel_features_row(s, 1, 2, T0 + 7 * DAY, NULL, x);
    expect_col(x, REEL_F_v_views_1d, exp2(-7));
    expect_col(x, REEL_F_v_views_7d, 0.5);
    /* A second view a day later adds 1 to each decayed count. */
    reel_featstate_apply(s, 1, 2, REEL_EV_CLICK, T0 + DAY, NAN, NAN);
    reel_features_row(s, 1, 2, T0 + 2 * DAY, NULL, x);
    expect_col(x, REEL_F_v_views, 2);
    expect_col(x, REEL_F_v_views_1d, 0.25 + 0.5);
    expect_col(x, REEL_F_v_views_7d, exp2(-2.0 / 7) + exp2(-1.0 / 7));
    /* Impressions alone move neither the views nor the decayed counts. */
    reel_featstate_apply(s, 1, 2, REEL_EV_IMPRESSION, T0 + 2 * DAY, NAN, NAN);
    reel_featstate_apply(s, 1, 2, REEL_EV_IMPRESSION, T0 + 2 * DAY, NAN, NAN);
    reel_features_row(s, 1, 2, T0 + 2 * DAY, NULL, x);
    expect_col(x, REEL_F_v_views, 2);
    expect_col(x, REEL_F_v_views_1d, 0.75);
    expect_col(x, REEL_F_v_impressions, 2);
    expect_col(x, REEL_F_v_ctr, (2 + 1.0) / (2 + 2.0));
    expect_col(x, REEL_F_u_ctr, (1 + 1.0) / (2 + 2.0));
    reel_featstate_free(s);
    fixture_free(&fx);
}

/* Shares: each viewing adds its minutes (1 for a view without a watch
 * time) to the buckets of the video's categories and language. At one
 * instant nothing decays: click v0 (1), play v0 (a repeat without a watch:
 * 0), watch v0 60 s (1), watch v1 180 s (3) give music 2, dance 2, news 3
 * (of 7) and en 2, fr 3 (of 5). */
static void shares_weigh_minutes_by_category_and_language(void **state)
{
    (void)state;
    struct fixture fx = main_ds(0);
    reel_featstate *s;
    assert_int_equal(reel_featstate_new(fx.ds, &s), 0);
    float x[REEL_F__COUNT];
    reel_featstate_apply(s, 2, 0, REEL_EV_CLICK, T0, NAN, NAN);
    reel_featstate_apply(s, 2, 0, REEL_EV_PLAY, T0, NAN, NAN);
    reel_featstate_apply(s, 2, 0, REEL_EV_WATCH, T0, 60, NAN);
    reel_featstate_apply(s, 2, 1, REEL_EV_WATCH, T0, 180, NAN);
    reel_features_row(s, 2, 0, T0, NULL, x);
    expect_col(x, REEL_F_x_cat_affinity, 2.0 / 7);
    expect_col(x, REEL_F_x_cat_any, 4.0 / 7);
    expect_col(x, REEL_F_x_lang_match, 2.0 / 5);
    expect_col(x, REEL_F_u_top_language, 1);
    reel_features_row(s, 2, 1, T0, NULL, x);
    expect_col(x, REEL_F_x_cat_affinity, 3.0 / 7);
    expect_col(x, REEL_F_x_cat_any, 3.0 / 7);
    expect_col(x, REEL_F_x_lang_match, 3.0 / 5);
    /* v2 is dance (2) and comedy (0). */
    reel_features_row(s, 2, 2, T0, NULL, x);
    expect_col(x, REEL_F_x_cat_affinity, 2.0 / 7);
    expect_col(x, REEL_F_x_cat_any, 2.0 / 7);
    expect_col(x, REEL_F_x_lang_match, 2.0 / 5);
    /* A skip or an impression adds nothing. */
    reel_featstate_apply(s, 2, 2, REEL_EV_SKIP, T0, NAN, NAN);
    reel_featstate_apply(s, 2, 2, REEL_EV_IMPRESSION, T0, NAN, NAN);
    reel_features_row(s, 2, 2, T0, NULL, x);
    expect_col(x, REEL_F_x_cat_affinity, 2.0 / 7);

    /* Thirty days halve what came before: news 1 then, music and dance 1
     * now: news 0.5, music 1, dance 1 (of 2.5); fr 0.5, en 1. */
    reel_featstate_apply(s, 1, 1, REEL_EV_CLICK, T0, NAN, NAN);
    reel_featstate_apply(s, 1, 0, REEL_EV_CLICK, T0 + 30 * DAY, NAN, NAN);
    reel_features_row(s, 1, 1, T0 + 30 * DAY, NULL, x);
    expect_col(x, REEL_F_x_cat_affinity, 0.2);
    expect_col(x, REEL_F_x_lang_match, 1.0 / 3);
    reel_features_row(s, 1, 0, T0 + 30 * DAY, NULL, x);
    expect_col(x, REEL_F_x_cat_affinity, 0.4);
    expect_col(x, REEL_F_x_cat_any, 0.8);
    expect_col(x, REEL_F_x_lang_match, 2.0 / 3);
    expect_col(x, REEL_F_u_top_language, 0);
    reel_featstate_free(s);
    fixture_free(&fx);
}

/* Category buckets are the id modulo 64: categories k0 and k64 share one,
 * so a user who only saw k0 has an affinity of 1 for a k64 video. */
static void category_ids_64_apart_share_a_bucket(void **state)
{
    (void)state;
    static char names[65][8];
    const char *ptrs[65];
    for (int i = 0; i < 65; i++) {
        snprintf(names[i], sizeof names[i], "k%d", i);
        ptrs[i] = names[i];
    }
    struct vid vs[] = {
        {"d", "en", NULL, ptrs, 1, 60, NAN},      /* k0 */
        {"f", "en", NULL, ptrs + 1, 63, 60, NAN}, /* k1..k63 */
        {"b", "en", NULL, ptrs + 64, 1, 60, NAN}, /* k64 */
    };
    reel_user_rec u = reel_user_rec_empty();
    u.id = "u0";
    struct fixture fx = make_ds(vs, 3, &u, 1, NULL, 0);
    reel_featstate *s;
    assert_int_equal(reel_featstate_new(fx.ds, &s), 0);
    reel_featstate_apply(s, 0, 0, REEL_EV_CLICK, T0, NAN, NAN);
    float x[REEL_F__COUNT];
    reel_features_row(s, 0, 2, T0, NULL, x);
    expect_col(x, REEL_F_v_category, 64);
    expect_col(x, REEL_F_x_cat_affinity, 1);
    expect_col(x, REEL_F_x_cat_any, 1);
    reel_features_row(s, 0, 1, T0, NULL, x);
    expect_col(x, REEL_F_x_cat_affinity, 0);
    expect_col(x, REEL_F_x_cat_any, 0);
    reel_featstate_free(s);
    fixture_free(&fx);
}

/* ------------------------------------------------------------ time cut */

static int same_row(const float *a, const float *b)
{
    for (int f = 0; f < REEL_F__COUNT; f++)
        if (!(isnan(a[f]) && isnan(b[f])) &&
            memcmp(&a[f], &b[f], sizeof a[f]) != 0)
            return 0;
    return 1;
}

/* The state after events [0, i) of the whole log gives the same rows, to
 * the bit, as a state over a dataset that only has those i events, at the
 * time of event i: what comes later in the log cannot reach a row. */
static void rows_before_an_event_ignore_later_events(void **state)
{
    (void)state;
    struct fixture full = main_ds(N_MAIN);
    for (int i = 0; i <= N_MAIN; i++) {
        struct fixture pre = main_ds(i);
        reel_featstate *a, *b, *k;
        assert_int_equal(reel_featstate_new(full.ds, &a), 0);
        assert_int_equal(reel_featstate_new(pre.ds, &b), 0);
        assert_int_equal(reel_featstate_new(full.ds, &k), 0);
        reel_featstate_apply_events(a, 0, (uint64_t)i, NULL);
        reel_featstate_apply_events(b, 0, UINT64_MAX, NULL);
        uint8_t keep[N_MAIN];
        for (int e = 0; e < N_MAIN; e++)
            keep[e] = e < i;
        reel_featstate_apply_events(k, 0, N_MAIN, keep);
        double now = i < N_MAIN ? main_events[i].ts : T0 + DAY;
        for (uint32_t u = 0; u < 3; u++) {
            for (uint32_t v = 0; v < N_CAT_VIDEOS; v++) {
                float xa[REEL_F__COUNT], xb[REEL_F__COUNT], xk[REEL_F__COUNT];
                reel_features_row(a, u, v, now, NULL, xa);
                reel_features_row(b, u, v, now, NULL, xb);
                reel_features_row(k, u, v, now, NULL, xk);
                if (!same_row(xa, xb) || !same_row(xa, xk))
                    fail_msg("event %d, user %u, video %u: rows differ", i, u,
                             v);
            }
            uint32_t ra[REEL_FEAT_RING], rb[REEL_FEAT_RING];
            uint32_t na = reel_featstate_recent(a, u, ra);
            assert_int_equal(na, reel_featstate_recent(b, u, rb));
            assert_memory_equal(ra, rb, na * sizeof *ra);
        }
        reel_featstate_free(a);
        reel_featstate_free(b);
        reel_featstate_free(k);
        fixture_free(&pre);
    }
    fixture_free(&full);
}

/* ------------------------------------------------- repeats and the ring */

/* Click, play and watch of one video in a row are one view; the watch
 * still gives its fraction. Watching it again after another video counts
 * again. */
static void click_play_watch_in_a_row_is_one_view(void **state)
{
    (void)state;
    struct fixture fx = main_ds(0);
    reel_featstate *s;
    assert_int_equal(reel_featstate_new(fx.ds, &s), 0);
    reel_featstate_apply(s, 0, 0, REEL_EV_CLICK, T0, NAN, NAN);
    reel_featstate_apply(s, 0, 0, REEL_EV_PLAY, T0 + 1, NAN, NAN);
    reel_featstate_apply(s, 0, 0, REEL_EV_WATCH, T0 + 2, 60, NAN);
    float x[REEL_F__COUNT];
    reel_features_row(s, 0, 0, T0 + 2, NULL, x);
    expect_col(x, REEL_F_u_views, 1);
    expect_col(x, REEL_F_v_views, 1);
    expect_col(x, REEL_F_v_views_1d, exp2(-2 / DAY)); /* one view, at T0 */
    expect_col(x, REEL_F_u_watch_frac, 0.5);
    expect_col(x, REEL_F_v_watch_frac, 0.5);
    uint32_t r[REEL_FEAT_RING];
    assert_int_equal(reel_featstate_recent(s, 0, r), 1);
    assert_int_equal(r[0], 0);
    /* Another user's view in between does not break u0's run. */
    reel_featstate_apply(s, 1, 1, REEL_EV_CLICK, T0 + 3, NAN, NAN);
    reel_featstate_apply(s, 0, 0, REEL_EV_WATCH, T0 + 4, 120, NAN);
    reel_features_row(s, 0, 0, T0 + 4, NULL, x);
    expect_col(x, REEL_F_u_views, 1);
    expect_col(x, REEL_F_u_watch_frac, 0.75);
    /* v1 then v0 again: two more views. */
    reel_featstate_apply(s, 0, 1, REEL_EV_WATCH, T0 + 5, 30, NAN);
    reel_featstate_apply(s, 0, 0, REEL_EV_CLICK, T0 + 6, NAN, NAN);
    reel_features_row(s, 0, 0, T0 + 6, NULL, x);
    expect_col(x, REEL_F_u_views, 3);
    expect_col(x, REEL_F_v_views, 2);
    assert_int_equal(reel_featstate_recent(s, 0, r), 3);
    assert_int_equal(r[0], 0);
    assert_int_equal(r[1], 1);
    assert_int_equal(r[2], 0);
    reel_featstate_free(s);
    fixture_free(&fx);
}

/* 40 videos viewed in turn: the ring holds the last 32, oldest first. */
static void recent_ring_keeps_the_last_views_oldest_first(void **state)
{
    (void)state;
    struct vid vs[40];
    char ids[40][8];
    for (int i = 0; i < 40; i++) {
        snprintf(ids[i], sizeof ids[i], "p%d", i);
        vs[i] = (struct vid){ids[i], NULL, NULL, NULL, 0, NAN, NAN};
    }
    reel_user_rec us[2] = {reel_user_rec_empty(), reel_user_rec_empty()};
    us[0].id = "u0";
    us[1].id = "u1";
    struct fixture fx = make_ds(vs, 40, us, 2, NULL, 0);
    reel_featstate *s;
    assert_int_equal(reel_featstate_new(fx.ds, &s), 0);
    uint32_t r[REEL_FEAT_RING];
    assert_int_equal(reel_featstate_recent(s, 0, r), 0);
    assert_int_equal(reel_featstate_recent(s, 2, r), 0); /* no such user */
    for (uint32_t i = 0; i < 40; i++) {
        reel_featstate_apply(s, 0, i, REEL_EV_WATCH, T0 + i, 10, NAN);
        /* Impressions and skips never enter the ring. */
        reel_featstate_apply(s, 0, 39 - i, REEL_EV_IMPRESSION, T0 + i, NAN,
                             NAN);
        reel_featstate_apply(s, 0, 39 - i, REEL_EV_SKIP, T0 + i, NAN, NAN);
        uint32_t n = reel_featstate_recent(s, 0, r);
        uint32_t want = i + 1 < REEL_FEAT_RING ? i + 1 : REEL_FEAT_RING;
        assert_int_equal(n, want);
        for (uint32_t j = 0; j < n; j++)
            assert_int_equal(r[j], i + 1 - n + j);
    }
    /* A repeat of the last video does not enter it again. */
    reel_featstate_apply(s, 0, 39, REEL_EV_CLICK, T0 + 40, NAN, NAN);
    assert_int_equal(reel_featstate_recent(s, 0, r), REEL_FEAT_RING);
    assert_int_equal(r[0], 8);
    assert_int_equal(r[REEL_FEAT_RING - 1], 39);
    /* Events of unknown users or videos are ignored. */
    reel_featstate_apply(s, 0, 40, REEL_EV_CLICK, T0 + 41, NAN, NAN);
    reel_featstate_apply(s, 2, 0, REEL_EV_CLICK, T0 + 41, NAN, NAN);
    assert_int_equal(reel_featstate_recent(s, 0, r), REEL_FEAT_RING);
    assert_int_equal(r[REEL_FEAT_RING - 1], 39);
    assert_int_equal(reel_featstate_recent(s, 1, r), 0);
    float x[REEL_F__COUNT];
    reel_features_row(s, 0, 0, T0 + 41, NULL, x);
    expect_col(x, REEL_F_u_views, 40); /* the count outlives the ring */
    expect_col(x, REEL_F_u_impressions, 40);
    expect_col(x, REEL_F_u_hours_since_last, 1 / 3600.0);
    reel_featstate_free(s);
    fixture_free(&fx);
}

static void grown_users_start_empty_without_demographics(void **state)
{
    (void)state;
    reel_user_rec us[1] = {reel_user_rec_empty()};
    us[0].id = "u0";
    us[0].age = 30;
    us[0].gender = "f";
    struct ev ev[1] = {{0, 0, REEL_EV_WATCH, T0, 60, NAN}};
    struct fixture fx = make_ds(cat_videos, N_CAT_VIDEOS, us, 1, ev, 1);
    reel_featstate *s;
    assert_int_equal(reel_featstate_new(fx.ds, &s), 0);
    reel_featstate_apply_events(s, 0, 1, NULL);
    assert_int_equal(reel_featstate_n_users(s), 1);
    /* Before growing, user 2 is unknown and its events are ignored. */
    reel_featstate_apply(s, 2, 1, REEL_EV_WATCH, T0 + 1, 30, NAN);
    uint32_t r[REEL_FEAT_RING];
    assert_int_equal(reel_featstate_recent(s, 2, r), 0);
    reel_featstate_grow(s, 3);
    reel_featstate_grow(s, 2); /* never shrinks */
    assert_int_equal(reel_featstate_n_users(s), 3);
    /* The dataset user keeps its state. */
    assert_int_equal(reel_featstate_recent(s, 0, r), 1);
    assert_int_equal(r[0], 0);
    float x[REEL_F__COUNT];
    reel_features_row(s, 0, 1, T0 + 2, NULL, x);
    expect_col(x, REEL_F_u_age, 30);
    expect_col(x, REEL_F_u_views, 1);
    /* A grown user: empty, then advanced like any other. */
    reel_features_row(s, 2, 1, T0 + 2, NULL, x);
    expect_col(x, REEL_F_u_views, 0);
    assert_true(isnan(x[REEL_F_u_hours_since_last]));
    reel_featstate_apply(s, 2, 1, REEL_EV_WATCH, T0 + 3, 30, NAN);
    reel_featstate_apply(s, 2, 2, REEL_EV_CLICK, T0 + 4, NAN, NAN);
    assert_int_equal(reel_featstate_recent(s, 2, r), 2);
    assert_int_equal(r[0], 1);
    assert_int_equal(r[1], 2);
    reel_features_row(s, 2, 0, T0 + 4, NULL, x);
    expect_col(x, REEL_F_u_views, 2);
    expect_col(x, REEL_F_u_watch_frac, 0.5);
    /* Its demographics are missing; video columns are there. */
    assert_true(isnan(x[REEL_F_u_age]));
    assert_true(isnan(x[REEL_F_u_age_bucket]));
    assert_true(isnan(x[REEL_F_u_gender]));
    assert_true(isnan(x[REEL_F_u_account_days]));
    expect_col(x, REEL_F_v_views, 1);
    /* The video counters saw the grown user's view. */
    reel_features_row(s, 0, 1, T0 + 4, NULL, x);
    expect_col(x, REEL_F_v_views, 1);
    /* User 1 sits between: grown, untouched. */
    assert_int_equal(reel_featstate_recent(s, 1, r), 0);
    reel_featstate_free(s);
    fixture_free(&fx);
}

/* --------------------------------------------------------------- labels */

static void label_names_parse(void **state)
{
    (void)state;
    reel_label l = REEL_LABEL_LIKE;
    float w = 7;
    assert_int_equal(reel_label_parse("watch30", &l, &w), 0);
    assert_int_equal(l, REEL_LABEL_WATCH);
    assert_float_equal(w, 30, 0);
    w = 7;
    l = REEL_LABEL_LIKE;
    assert_int_equal(reel_label_parse("watch", &l, &w), 0);
    assert_int_equal(l, REEL_LABEL_WATCH);
    assert_float_equal(w, 7, 0); /* unchanged: the caller's default */
    assert_int_equal(reel_label_parse("watch45", &l, &w), 0);
    assert_float_equal(w, 45, 0);
    assert_int_equal(reel_label_parse("watch2.5", &l, &w), 0);
    assert_float_equal(w, 2.5, 0);
    assert_int_equal(reel_label_parse("watch0", &l, &w), 0);
    assert_float_equal(w, 0, 0);
    assert_int_equal(reel_label_parse("click", &l, &w), 0);
    assert_int_equal(l, REEL_LABEL_CLICK);
    assert_int_equal(reel_label_parse("like", &l, &w), 0);
    assert_int_equal(l, REEL_LABEL_LIKE);
    const char *bad[] = {"",         "watchx",   "watch30s",   "watch-1",
                         "Click",    "clicks",   "lik",        "watch100000",
                         "watchnan", "watchinf", "impression", "watch 30s"};
    w = 7;
    l = REEL_LABEL_CLICK;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (reel_label_parse(bad[i], &l, &w) != REEL_EINVAL)
            fail_msg("\"%s\" was accepted", bad[i]);
    assert_int_equal(l, REEL_LABEL_CLICK);
    assert_float_equal(w, 7, 0);
}

/* ------------------------------------------------------- training rows */

struct retrieval {
    reel_vectors *vec;
    reel_index *ix;
};

static struct retrieval make_retrieval(const float (*rows)[4], uint32_t n)
{
    struct retrieval r;
    reel_vectors_new(n, 4, NULL, &r.vec);
    reel_index_opts o =
        reel_index_opts_default(REEL_INDEX_FLAT, REEL_METRIC_IP, 4);
    reel_diag d;
    assert_int_equal(reel_index_new(&o, &r.ix, &d), 0);
    for (uint32_t i = 0; i < n; i++) {
        memcpy(reel_vectors_row(r.vec, i), rows[i], sizeof rows[i]);
        r.vec->has[i] = 1;
        assert_int_equal(reel_index_add(r.ix, i, rows[i]), 0);
    }
    return r;
}

static void retrieval_free(struct retrieval *r)
{
    reel_index_free(r->ix);
    reel_vectors_free(r->vec);
}

static double dot4(const float *a, const float *b)
{
    double s = 0;
    for (int j = 0; j < 4; j++)
        s += (double)a[j] * b[j];
    return s;
}

static const float *xrow(const reel_rows *rows, size_t i)
{
    return rows->x + i * rows->n_features;
}

/* Videos v0..v5 on unit vectors. u0 and u1 each watched one video at
 * t = 100; at t = 200 u0 is shown v1, v2, v3 (one request), u1 v2, and
 * u2 (no history) v0; at t = 500 u0 is shown v0 (seen), v4, v5. The label
 * is a watch of at least 30 s within follow_s = 3600 s. */
static const float impr_vecs[6][4] = {
    {1, 0, 0, 0}, {0.8f, 0.6f, 0, 0}, {0.6f, 0, 0.8f, 0},
    {0, 1, 0, 0}, {0, 0, 1, 0},       {0, 0, 0, 1},
};
static const struct ev impr_events[] = {
    {0, 0, WAT, 100, 40, NAN},  {1, 1, WAT, 100, 40, NAN},
    {0, 1, IMP, 200, NAN, NAN}, {0, 2, IMP, 200, NAN, NAN},
    {0, 3, IMP, 200, NAN, NAN}, {1, 2, IMP, 200, NAN, NAN},
    {2, 0, IMP, 200, NAN, NAN}, {0, 1, WAT, 300, 50, NAN}, /* v1: yes */
    {0, 2, WAT, 400, 10, NAN}, /* v2: too short a watch */
    {0, 0, IMP, 500, NAN, NAN}, {0, 4, IMP, 500, NAN, NAN},
    {0, 5, IMP, 500, NAN, NAN}, {0, 4, WAT, 600, 31, NAN}, /* v4: yes */
    {1, 2, WAT, 3800, 45, NAN}, /* exactly follow_s after: yes */
    {0, 3, WAT, 5200, 60, NAN}, /* too late */
};
enum { N_IMPR = sizeof impr_events / sizeof impr_events[0] };

/* Videos v0..v(nv-1) with nothing but a duration, users u0..u(nu-1). */
static struct fixture numbered_ds(int nv, int nu, const struct ev *ev, int ne)
{
    assert_true(nv <= 10 && nu <= 3);
    struct vid vs[10];
    char ids[10][8];
    for (int i = 0; i < 10; i++) {
        snprintf(ids[i], sizeof ids[i], "v%d", i);
        /* The duration names the video in a row. */
        vs[i] = (struct vid){ids[i], NULL, NULL, NULL, 0, 100 + i, NAN};
    }
    reel_user_rec us[3];
    char uids[3][16];
    for (int i = 0; i < nu; i++) {
        snprintf(uids[i], sizeof uids[i], "u%d", i);
        us[i] = reel_user_rec_empty();
        us[i].id = uids[i];
    }
    return make_ds(vs, nv, us, nu, ev, ne);
}

/* The slow twin of the candidate features: double-precision cosines of
 * the raw rows, the prior's coordinate left out. */
static double naive_cos(const reel_vectors *v, uint32_t a, uint32_t b)
{
    if (!v->has[a] || !v->has[b])
        return NAN;
    uint32_t d = v->prior ? v->dim - 1 : v->dim;
    const float *x = reel_vectors_row(v, a), *y = reel_vectors_row(v, b);
    double xy = 0, xx = 0, yy = 0;
    for (uint32_t j = 0; j < d; j++) {
        xy += (double)x[j] * y[j];
        xx += (double)x[j] * x[j];
        yy += (double)y[j] * y[j];
    }
    return xx > 0 && yy > 0 ? xy / sqrt(xx * yy) : NAN;
}

static void candidate_features_agree_with_double_cosines(void **state)
{
    (void)state;
    enum { N = 300, D = 38, K = 50 };
    /* Mode 0: raw rows (inner product); 1: with a prior; 2: unit rows
     * (cosine). */
    for (int mode = 0; mode <= 2; mode++) {
        int prior = mode == 1;
        reel_vectors *v;
        reel_vectors_new(N, D, NULL, &v);
        v->prior = prior;
        uint64_t x = 12345 + (uint64_t)mode;
        for (uint32_t i = 0; i < N; i++) {
            v->has[i] = i % 17 != 3; /* some videos have no vector */
            for (uint32_t j = 0; j < D; j++) {
                x = x * 6364136223846793005ULL + 1442695040888963407ULL;
                reel_vectors_row(v, i)[j] =
                    (float)((double)(x >> 11) / 9007199254740992.0 - 0.5);
            }
            if (prior)
                reel_vectors_row(v, i)[D - 1] = 0.05f * (float)(i % 7);
        }
        if (mode == 2)
            reel_vectors_normalize(v);
        assert_int_equal(reel_vectors_by_cosine(v), mode == 2);
        reel_index *ix;
        reel_diag d;
        assert_int_equal(reel_retrieve_index(v, &ix, &d), 0);
        /* Histories with a vectorless video (3, 20) first, last and in
         * between, and history_n below, at and above their length. */
        const uint32_t hist[][12] = {
            {5, 9, 3, 40, 41, 42, 43, 44, 45, 46, 47, 48},
            {3, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 20}};
        const uint32_t hn[] = {0, 1, 4, 10, 12, 30};
        reel_cand_ctx cc = {0};
        float q[D], sim[K], rank[K];
        reel_hit hits[K];
        for (size_t h = 0; h < 2; h++)
            for (size_t t = 0; t < sizeof hn / sizeof hn[0]; t++)
                for (uint32_t nr = 1; nr <= 12; nr += 11) {
                    const uint32_t *r = hist[h] + 12 - nr;
                    reel_filter f = {.exclude = r, .n_exclude = nr};
                    uint32_t n = reel_retrieve(v, ix, r, nr, hn[t] ? hn[t] : 1,
                                               1, &f, K, q, hits, sim);
                    assert_true(n == K || !n);
                    reel_cand_ranks(sim, n, rank);
                    reel_cand_ctx_prepare(&cc, v, r, nr, hn[t]);
                    for (uint32_t i = 0; i < n; i++) {
                        uint32_t c = hits[i].id;
                        /* sim: the exact inner product (or cosine). */
                        const float *row = reel_vectors_row(v, c);
                        double dot = 0, qq = 0, rr = 0;
                        for (uint32_t j = 0; j < D; j++) {
                            dot += (double)q[j] * row[j];
                            qq += (double)q[j] * q[j];
                            rr += (double)row[j] * row[j];
                        }
                        double want = reel_vectors_by_cosine(v)
                                          ? dot / sqrt(qq * rr)
                                          : dot;
                        assert_float_equal(sim[i], want, 1e-5);
                        assert_float_equal(reel_retrieve_sim(v, ix, q, c), want,
                                           1e-5);
                        assert_true(reel_retrieve_sim_of(v, ix, q, hits, sim, n,
                                                         c) == sim[i]);
                        assert_true(rank[i] == reel_cand_rank(sim, n, sim[i]));
                        for (uint32_t j = 0; j < n; j++)
                            assert_true(j == i || hits[j].id != c);
                        for (uint32_t j = 0; j < nr; j++)
                            assert_true(r[j] != c); /* seen: excluded */
                        reel_cand_feats cf;
                        reel_cand_feats_fill(&cc, c, sim[i], rank[i], &cf);
                        double last = naive_cos(v, r[nr - 1], c), best = NAN;
                        for (uint32_t j = nr, used = 0; j > 0 && used < hn[t];
                             j--, used++) {
                            double cs = naive_cos(v, r[j - 1], c);
                            if (isfinite(cs) && !(best >= cs))
                                best = cs;
                        }
                        if (isnan(last))
                            assert_true(isnan(cf.sim_last));
                        else
                            assert_float_equal(cf.sim_last, last, 1e-5);
                        if (isnan(best))
                            assert_true(isnan(cf.sim_max));
                        else
                            assert_float_equal(cf.sim_max, best, 1e-5);
                    }
                }
        /* Ranks of an unsorted list and of ties count the better ones. */
        const float us[] = {0.5f, 0.9f, 0.5f, NAN, 0.1f, 0.9f};
        float ur[6];
        reel_cand_ranks(us, 6, ur);
        for (int i = 0; i < 6; i++)
            assert_true(isnan(us[i]) ? isnan(ur[i])
                                     : ur[i] == reel_cand_rank(us, 6, us[i]));
        const float ss[] = {0.9f, 0.9f, 0.5f, 0.5f, 0.5f, 0.1f};
        reel_cand_ranks(ss, 6, ur);
        const float want_r[] = {0, 0, 2, 2, 2, 5};
        for (int i = 0; i < 6; i++)
            assert_true(ur[i] == want_r[i]);
        reel_cand_ctx_free(&cc);
        reel_index_free(ix);
        reel_vectors_free(v);
    }
}

static void impression_rows_are_labelled_by_a_following_watch(void **state)
{
    (void)state;
    struct fixture fx = numbered_ds(6, 3, impr_events, N_IMPR);
    struct retrieval rt = make_retrieval(impr_vecs, 6);
    reel_trainset_opts o = reel_trainset_opts_default();
    reel_featstate *fs;
    assert_int_equal(reel_featstate_new(fx.ds, &fs), 0);
    reel_rows rows;
    reel_rows_init(&rows, REEL_F__COUNT);
    reel_trainset_stats st;
    reel_diag d;
    assert_int_equal(reel_trainset_build(fx.ds, NULL, rt.vec, rt.ix, &o, fs,
                                         &rows, &st, NULL, &d),
                     0);
    assert_int_equal(st.from_impressions, 1);
    assert_int_equal(st.events, N_IMPR);
    assert_int_equal(st.rows, 6);
    assert_int_equal(rows.n, 6);
    assert_int_equal(st.positives, 3);
    assert_int_equal(st.groups, 3);
    assert_int_equal(st.skipped_no_history, 1);
    assert_int_equal(st.skipped_not_retrieved, 0);
    /* (user, video, label, group, time, u_impressions before the row). */
    const int want[6][6] = {
        {0, 1, 1, 0, 200, 0}, {0, 2, 0, 0, 200, 1}, {0, 3, 0, 0, 200, 2},
        {1, 2, 1, 1, 200, 0}, {0, 4, 1, 2, 500, 4}, {0, 5, 0, 2, 500, 5},
    };
    for (int i = 0; i < 6; i++) {
        const float *x = xrow(&rows, (size_t)i);
        expect_col(x, REEL_F_v_duration_s, 100 + want[i][1]);
        assert_float_equal(rows.y[i], want[i][2], 0);
        assert_int_equal(rows.group[i], want[i][3]);
        assert_int_equal(rows.time[i], want[i][4]);
        expect_col(x, REEL_F_u_impressions, want[i][5]);
    }
    /* u0 at t = 200 has watched v0 only: the query is v0, v0 itself is
     * excluded, and v1 (0.8) and v2 (0.6) lead the rest (0). */
    const float *x = xrow(&rows, 0);
    expect_col(x, REEL_F_u_views, 1);
    expect_col(x, REEL_F_x_sim, 0.8);
    expect_col(x, REEL_F_x_rank, 0);
    expect_col(x, REEL_F_x_sim_last, 0.8);
    expect_col(x, REEL_F_x_sim_max, 0.8);
    expect_col(xrow(&rows, 1), REEL_F_x_rank, 1);
    expect_col(xrow(&rows, 2), REEL_F_x_sim, 0);
    expect_col(xrow(&rows, 2), REEL_F_x_rank, 2);
    /* u1's query is v1: v0 (0.8) and v3 (0.6) above v2 (0.48). */
    expect_col(xrow(&rows, 3), REEL_F_x_sim, 0.48);
    expect_col(xrow(&rows, 3), REEL_F_x_rank, 2);
    /* At t = 500 u0's history is v0 v1 v2, seen and excluded: v4 is
     * nearest to their direction. (The query's scale, sum or mean of the
     * history, is the vectors module's business, so x_sim is only checked
     * exactly for one-video histories.) */
    x = xrow(&rows, 4);
    expect_col(x, REEL_F_u_views, 3);
    assert_true(x[REEL_F_x_sim] > xrow(&rows, 5)[REEL_F_x_sim]);
    expect_col(x, REEL_F_x_rank, 0);
    expect_col(x, REEL_F_x_sim_last, 0.8); /* cos(v2, v4) */
    expect_col(x, REEL_F_x_sim_max, 0.8);
    /* The state is advanced through every event. */
    float a[REEL_F__COUNT], b[REEL_F__COUNT];
    reel_featstate *all;
    assert_int_equal(reel_featstate_new(fx.ds, &all), 0);
    reel_featstate_apply_events(all, 0, N_IMPR, NULL);
    for (uint32_t u = 0; u < 3; u++) {
        reel_features_row(fs, u, 3, 6000, NULL, a);
        reel_features_row(all, u, 3, 6000, NULL, b);
        assert_true(same_row(a, b));
    }
    reel_featstate_free(all);
    reel_rows_free(&rows);
    reel_featstate_free(fs);

    /* Labelled by any positive event, v2's short watch counts too. */
    o.label = REEL_LABEL_CLICK;
    assert_int_equal(reel_featstate_new(fx.ds, &fs), 0);
    reel_rows_init(&rows, REEL_F__COUNT);
    assert_int_equal(reel_trainset_build(fx.ds, NULL, rt.vec, rt.ix, &o, fs,
                                         &rows, &st, NULL, &d),
                     0);
    assert_int_equal(st.rows, 6);
    assert_int_equal(st.positives, 4);
    assert_float_equal(rows.y[1], 1, 0);
    reel_rows_free(&rows);
    reel_featstate_free(fs);

    /* No like at all: every row negative, no training set. */
    o.label = REEL_LABEL_LIKE;
    assert_int_equal(reel_featstate_new(fx.ds, &fs), 0);
    reel_rows_init(&rows, REEL_F__COUNT);
    assert_int_equal(reel_trainset_build(fx.ds, NULL, rt.vec, rt.ix, &o, fs,
                                         &rows, &st, NULL, &d),
                     REEL_EINVAL);
    assert_int_equal(st.positives, 0);
    reel_rows_free(&rows);
    reel_featstate_free(fs);
    retrieval_free(&rt);
    fixture_free(&fx);
}

/* Ratings only. v0..v8 lie on an arc (angle 0.1 i), v9 opposite. u0 rates
 * v0 (no history yet), v1, v2, v0 again (seen: no rows) and v9 (not among
 * the 4 candidates); u1 rates v3 (no history) and v4. */
static const struct ev rating_events[] = {
    {0, 0, RAT, 100, NAN, 5}, {0, 1, RAT, 200, NAN, 4},
    {0, 2, RAT, 300, NAN, 3}, {1, 3, RAT, 400, NAN, 5},
    {1, 4, RAT, 500, NAN, 2}, {0, 0, RAT, 600, NAN, 4},
    {0, 9, RAT, 700, NAN, 5},
};
enum { N_RATINGS = sizeof rating_events / sizeof rating_events[0] };

static struct retrieval arc_retrieval(float (*v)[4])
{
    for (int i = 0; i < 9; i++) {
        v[i][0] = (float)cos(0.1 * i);
        v[i][1] = (float)sin(0.1 * i);
        v[i][2] = v[i][3] = 0;
    }
    v[9][0] = -1;
    v[9][1] = v[9][2] = v[9][3] = 0;
    return make_retrieval((const float(*)[4])v, 10);
}

static int build_ratings(const struct fixture *fx, const struct retrieval *rt,
                         const reel_trainset_opts *o, const uint8_t *keep,
                         reel_rows *rows, reel_trainset_stats *st)
{
    reel_featstate *fs;
    assert_int_equal(reel_featstate_new(fx->ds, &fs), 0);
    reel_rows_init(rows, REEL_F__COUNT);
    reel_diag d;
    int rc = reel_trainset_build(fx->ds, keep, rt->vec, rt->ix, o, fs, rows, st,
                                 NULL, &d);
    reel_featstate_free(fs);
    return rc;
}

static void rating_rows_sample_negatives_from_candidates(void **state)
{
    (void)state;
    struct fixture fx = numbered_ds(10, 2, rating_events, N_RATINGS);
    float v[10][4];
    struct retrieval rt = arc_retrieval(v);
    reel_trainset_opts o = reel_trainset_opts_default();
    o.candidates = 4;
    o.negatives = 2;
    reel_rows rows;
    reel_trainset_stats st;
    assert_int_equal(build_ratings(&fx, &rt, &o, NULL, &rows, &st), 0);
    assert_int_equal(st.from_impressions, 0);
    assert_int_equal(st.events, N_RATINGS);
    assert_int_equal(st.skipped_no_history, 2);
    assert_int_equal(st.skipped_not_retrieved, 1);
    assert_int_equal(st.rows, 9);
    assert_int_equal(rows.n, 9);
    assert_int_equal(st.positives, 3);
    assert_int_equal(st.groups, 3);
    /* Per group: (user, positive video, time); the videos seen before. */
    const int pos[3][3] = {{0, 1, 200}, {0, 2, 300}, {1, 4, 500}};
    const int seen[3][3] = {{0, -1, -1}, {0, 1, -1}, {3, -1, -1}};
    for (int g = 0; g < 3; g++) {
        int first = 3 * g;
        float q[4] = {0};
        for (int h = 0; h < 3; h++)
            for (int j = 0; j < 4 && seen[g][h] >= 0; j++)
                q[j] += v[seen[g][h]][j];
        int got[3];
        double ratio0 = 1;
        for (int r = first; r < first + 3; r++) {
            const float *x = xrow(&rows, (size_t)r);
            assert_int_equal(rows.group[r], g);
            assert_int_equal(rows.time[r], pos[g][2]);
            assert_float_equal(rows.y[r], r == first, 0);
            int vid = (int)lrintf(x[REEL_F_v_duration_s]) - 100;
            got[r - first] = vid;
            for (int h = 0; h < 3; h++)
                assert_int_not_equal(vid, seen[g][h]);
            /* x_sim is the query's inner product, exactly for one
             * history video and up to the query's scale for two. */
            double ratio = x[REEL_F_x_sim] / dot4(q, v[vid]);
            if (r == first)
                ratio0 = ratio;
            assert_float_equal(ratio, g == 1 ? ratio0 : 1, 1e-5);
            assert_true(x[REEL_F_x_rank] >= 0 && x[REEL_F_x_rank] < 4);
            /* The state before the event: the views are the history. */
            expect_col(x, REEL_F_u_views, g == 1 ? 2 : 1);
            int last = g == 1 ? 1 : seen[g][0];
            expect_col(x, REEL_F_x_sim_last, dot4(v[last], v[vid]));
        }
        assert_int_equal(got[0], pos[g][1]);
        assert_int_not_equal(got[1], got[0]);
        assert_int_not_equal(got[2], got[0]);
        assert_int_not_equal(got[1], got[2]);
    }
    /* u0's first positive: the query is v0, v1 is its nearest. */
    expect_col(xrow(&rows, 0), REEL_F_x_rank, 0);
    expect_col(xrow(&rows, 0), REEL_F_x_sim_max, dot4(v[0], v[1]));
    /* u0's second: history v0 v1, the nearer of the two to v2 is v1. */
    expect_col(xrow(&rows, 3), REEL_F_x_sim_max, dot4(v[1], v[2]));

    /* The rows do not depend on the events after the last one that gave
     * rows: dropping them (keep) gives the same rows, to the bit. */
    uint8_t keep[N_RATINGS];
    for (int e = 0; e < N_RATINGS; e++)
        keep[e] = rating_events[e].ts <= 500;
    reel_rows part;
    assert_int_equal(build_ratings(&fx, &rt, &o, keep, &part, &st), 0);
    assert_int_equal(part.n, rows.n);
    for (size_t r = 0; r < rows.n; r++) {
        assert_true(same_row(xrow(&rows, r), xrow(&part, r)));
        assert_float_equal(rows.y[r], part.y[r], 0);
        assert_int_equal(rows.group[r], part.group[r]);
    }
    reel_rows_free(&part);

    /* max_rows keeps rows of the latest events only: the positive rows
     * kept are the last ones of the full build. */
    o.max_rows = 9;
    assert_int_equal(build_ratings(&fx, &rt, &o, NULL, &part, &st), 0);
    assert_true(part.n >= 1 && part.n <= o.max_rows);
    assert_true(st.positives >= 1 && st.positives <= 3);
    size_t kp = 0;
    for (size_t r = 0; r < part.n; r++) {
        if (part.y[r] <= 0)
            continue;
        size_t full_r = 3 * (3 - st.positives + kp++);
        assert_true(same_row(xrow(&part, r), xrow(&rows, full_r)));
        assert_int_equal(part.time[r], rows.time[full_r]);
    }
    assert_int_equal(kp, st.positives);
    reel_rows_free(&part);
    reel_rows_free(&rows);

    /* Fewer candidates than negatives asked for: every other candidate
     * is a negative once. */
    o = reel_trainset_opts_default();
    o.candidates = 3;
    o.negatives = 9;
    assert_int_equal(build_ratings(&fx, &rt, &o, NULL, &rows, &st), 0);
    assert_int_equal(st.positives, 3);
    assert_int_equal(rows.n, 9);
    reel_rows_free(&rows);

    o = reel_trainset_opts_default();
    o.candidates = 1;
    assert_int_equal(build_ratings(&fx, &rt, &o, NULL, &rows, &st),
                     REEL_EINVAL);
    reel_rows_free(&rows);
    retrieval_free(&rt);
    fixture_free(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(feature_names_are_the_columns_in_order),
        cmocka_unit_test(features_match_a_hand_computed_history),
        cmocka_unit_test(age_buckets_follow_the_movielens_bands),
        cmocka_unit_test(view_counters_decay_with_their_half_lives),
        cmocka_unit_test(shares_weigh_minutes_by_category_and_language),
        cmocka_unit_test(category_ids_64_apart_share_a_bucket),
        cmocka_unit_test(rows_before_an_event_ignore_later_events),
        cmocka_unit_test(click_play_watch_in_a_row_is_one_view),
        cmocka_unit_test(recent_ring_keeps_the_last_views_oldest_first),
        cmocka_unit_test(grown_users_start_empty_without_demographics),
        cmocka_unit_test(label_names_parse),
        cmocka_unit_test(candidate_features_agree_with_double_cosines),
        cmocka_unit_test(impression_rows_are_labelled_by_a_following_watch),
        cmocka_unit_test(rating_rows_sample_negatives_from_candidates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
