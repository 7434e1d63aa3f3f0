/* Unit tests of the feature state's live side (src/rank/features): rows
 * read through a reel_meta follow its puts, grown videos, and the snapshot
 * sections: a saved and loaded state gives bit-identical rows and recent
 * histories (for the dataset's users and videos and for grown ones), and
 * damaged sections are refused without changing the state. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "base/secfile.h"
#include "data/dataset.h"
#include "data/meta.h"
#include "data/synth.h"
#include "rank/features.h"

struct fixture {
    char *dir;
    reel_dataset *ds;
    double t_end; /* the last event's time */
};

static struct fixture make_synth(void)
{
    struct fixture fx = {.dir = test_tmpdir()};
    reel_synth_opts o = reel_synth_opts_default();
    o.n_users = 150;
    o.n_videos = 250;
    o.days = 5;
    o.seed = 11;
    o.threads = 1;
    reel_diag d;
    int rc = reel_synth_run(&o, fx.dir, &d);
    if (rc)
        fprintf(stderr, "synth: %s\n", d.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(reel_dataset_open(fx.dir, &fx.ds, &d), 0);
    const reel_events *e = reel_dataset_events(fx.ds);
    assert_true(e->n > 1000);
    fx.t_end = e->ts[e->n - 1];
    return fx;
}

static void fixture_free(struct fixture *fx)
{
    reel_dataset_close(fx->ds);
    test_rmtree(fx->dir);
    free(fx->dir);
}

static char *save_state(const reel_featstate *s, const char *dir,
                        const char *name)
{
    char *path = test_path(dir, name);
    reel_secfile_writer *w;
    reel_diag d;
    assert_int_equal(reel_secfile_writer_open(path, "snapshot", &w, &d), 0);
    assert_int_equal(reel_featstate_save(s, w, "feat.", &d), 0);
    assert_int_equal(reel_secfile_writer_commit(w, &d), 0);
    return path;
}

static int load_state(reel_featstate *s, const char *path, reel_diag *d)
{
    reel_secfile *f;
    assert_int_equal(reel_secfile_open(path, "snapshot", 0, &f, d), 0);
    int rc = reel_featstate_load(s, f, "feat.", d);
    reel_secfile_close(f);
    return rc;
}

/* Rows of a and b agree bit for bit for every user against every
 * `stride`-th video (and the reverse), with and without retrieval
 * features, at two moments; recent histories too. */
static void assert_same_state(const reel_featstate *a, const reel_featstate *b,
                              double now, uint32_t stride)
{
    uint32_t nu = reel_featstate_n_users(a), nv = reel_featstate_n_videos(a);
    assert_int_equal(reel_featstate_n_users(b), nu);
    assert_int_equal(reel_featstate_n_videos(b), nv);
    const reel_cand_feats c = {0.5f, 3, 0.25f, 0.75f};
    float ra[REEL_F__COUNT], rb[REEL_F__COUNT];
    uint64_t compared = 0;
    for (uint32_t u = 0; u <= nu; u++) /* nu: a user the state lacks */
        for (uint32_t v = u % stride; v <= nv; v += stride)
            for (int k = 0; k < 2; k++) {
                double t = now + k * 86400.0;
                const reel_cand_feats *cf = k ? &c : NULL;
                reel_features_row(a, u, v, t, cf, ra);
                reel_features_row(b, u, v, t, cf, rb);
                assert_memory_equal(ra, rb, sizeof ra);
                compared++;
            }
    assert_true(compared > 1000);
    uint32_t ha[REEL_FEAT_RING], hb[REEL_FEAT_RING];
    for (uint32_t u = 0; u <= nu; u++) {
        uint32_t n = reel_featstate_recent(a, u, ha);
        assert_int_equal(reel_featstate_recent(b, u, hb), n);
        assert_memory_equal(ha, hb, n * sizeof *ha);
    }
}

static void a_loaded_state_gives_bit_identical_rows(void **state)
{
    (void)state;
    struct fixture fx = make_synth();
    reel_featstate *s, *l;
    assert_int_equal(reel_featstate_new(fx.ds, &s), 0);
    reel_featstate_apply_events(s, 0, reel_dataset_events(fx.ds)->n, NULL);
    char *path = save_state(s, fx.dir, "snap.reel");
    assert_int_equal(reel_featstate_new(fx.ds, &l), 0);
    reel_diag d;
    assert_int_equal(load_state(l, path, &d), 0);
    assert_same_state(s, l, fx.t_end + 60, 7);
    /* Some user has a full ring, so the write position matters: the next
     * events land alike in both. */
    uint32_t ring[REEL_FEAT_RING], full = 0;
    for (uint32_t u = 0; u < reel_featstate_n_users(s); u++)
        full += reel_featstate_recent(s, u, ring) == REEL_FEAT_RING;
    assert_true(full > 0);
    for (uint32_t u = 0; u < reel_featstate_n_users(s); u++) {
        for (uint32_t k = 0; k < 5; k++) {
            uint32_t v = (u * 31 + k * 17) % reel_featstate_n_videos(s);
            double ts = fx.t_end + 100 + k;
            reel_featstate_apply(s, u, v, REEL_EV_WATCH, ts, 30, NAN);
            reel_featstate_apply(l, u, v, REEL_EV_WATCH, ts, 30, NAN);
        }
    }
    assert_same_state(s, l, fx.t_end + 3600, 5);
    reel_featstate_free(l);
    reel_featstate_free(s);
    free(path);
    fixture_free(&fx);
}

/* A meta with `nv` added videos (categories new and old) and `nu` added
 * users with demographics. */
static void grow_meta(reel_meta *m, uint32_t nv, uint32_t nu)
{
    reel_diag d;
    for (uint32_t i = 0; i < nv; i++) {
        char id[24], cat[24];
        snprintf(id, sizeof id, "live%u", i);
        snprintf(cat, sizeof cat, "livecat%u", i % 3);
        const char *cats[] = {
            cat, reel_meta_dict_name(m, REEL_DICT_CATEGORY, i % 5)};
        reel_video_rec r = reel_video_rec_empty();
        r.id = id;
        r.categories = cats;
        r.n_categories = 2;
        r.language = i % 2 ? "xx" : NULL;
        r.duration_s = 60 + i;
        r.published_at = 1.7e9 + i;
        assert_int_equal(reel_meta_put_video(m, &r, NULL, NULL, &d), 0);
    }
    for (uint32_t i = 0; i < nu; i++) {
        char id[24];
        snprintf(id, sizeof id, "liveuser%u", i);
        reel_user_rec r = reel_user_rec_empty();
        r.id = id;
        r.age = 20 + (int)i;
        r.gender = "g";
        assert_int_equal(reel_meta_put_user(m, &r, NULL, NULL, &d), 0);
    }
}

static void a_grown_state_round_trips(void **state)
{
    (void)state;
    struct fixture fx = make_synth();
    reel_meta *m;
    assert_int_equal(reel_meta_new(fx.ds, &m), 0);
    grow_meta(m, 20, 12);
    uint32_t nv = reel_meta_videos(m)->n, nu = reel_meta_users(m)->n;
    reel_featstate *s, *l;
    assert_int_equal(reel_featstate_new(fx.ds, &s), 0);
    reel_featstate_use_meta(s, m);
    uint64_t ne = reel_dataset_events(fx.ds)->n;
    reel_featstate_apply_events(s, 0, ne / 2, NULL);
    reel_featstate_grow(s, nu + 3); /* 3 users beyond the meta's table */
    reel_featstate_grow_videos(s, nv);
    reel_featstate_apply_events(s, ne / 2, ne, NULL);
    reel_rng g;
    reel_rng_seed(&g, 3);
    for (int i = 0; i < 3000; i++) {
        uint32_t u = (uint32_t)reel_rng_below(&g, nu + 3);
        uint32_t v = (uint32_t)reel_rng_below(&g, nv);
        if (reel_rng_below(&g, 2))
            v = nv - 1 - (uint32_t)reel_rng_below(&g, 20);
        int type = (int)reel_rng_below(&g, REEL_EV__COUNT);
        float rating = type == REEL_EV_RATING ? 4.0f : NAN;
        reel_featstate_apply(s, u, v, type, fx.t_end + i, 20.0f, rating);
    }
    char *path = save_state(s, fx.dir, "snap.reel");
    assert_int_equal(reel_featstate_new(fx.ds, &l), 0);
    reel_featstate_use_meta(l, m);
    reel_diag d;
    assert_int_equal(load_state(l, path, &d), 0);
    assert_int_equal(reel_featstate_n_users(l), nu + 3);
    assert_int_equal(reel_featstate_n_videos(l), nv);
    assert_same_state(s, l, fx.t_end + 4000, 3);
    /* The added users' demographics come from the meta; those beyond it
     * have none. */
    float row[REEL_F__COUNT];
    reel_features_row(l, nu - 1, 0, fx.t_end, NULL, row);
    assert_float_equal(row[REEL_F_u_age], 31, 0);
    reel_features_row(l, nu + 1, 0, fx.t_end, NULL, row);
    assert_true(isnan(row[REEL_F_u_age]));
    assert_true(isnan(row[REEL_F_u_gender]));
    reel_featstate_free(l);
    reel_featstate_free(s);
    free(path);
    reel_meta_free(m);
    fixture_free(&fx);
}

static void rows_through_a_meta_follow_its_puts(void **state)
{
    (void)state;
    struct fixture fx = make_synth();
    reel_meta *m;
    assert_int_equal(reel_meta_new(fx.ds, &m), 0);
    reel_featstate *s;
    assert_int_equal(reel_featstate_new(fx.ds, &s), 0);
    float before[REEL_F__COUNT], row[REEL_F__COUNT];
    reel_features_row(s, 0, 3, fx.t_end, NULL, before);
    reel_featstate_use_meta(s, m);
    /* The meta's copy gives the dataset's rows. */
    reel_features_row(s, 0, 3, fx.t_end, NULL, row);
    assert_memory_equal(before, row, sizeof row);

    /* Video 3 gets a new primary category, language and duration. */
    reel_diag d;
    const char *names[2 * REEL_MAX_LIST];
    reel_video_rec r;
    reel_meta_video_rec(m, 3, &r, names);
    const char *cats[] = {"brand-new-category"};
    r.categories = cats;
    r.n_categories = 1;
    r.duration_s = 1234;
    r.language = NULL;
    uint32_t want_cat = reel_meta_dict_size(m, REEL_DICT_CATEGORY);
    assert_int_equal(reel_meta_put_video(m, &r, NULL, NULL, &d), 0);
    reel_features_row(s, 0, 3, fx.t_end, NULL, row);
    assert_float_equal(row[REEL_F_v_category], (float)want_cat, 0);
    assert_float_equal(row[REEL_F_v_duration_s], 1234, 0);
    assert_true(isnan(row[REEL_F_v_language]));
    assert_true(isnan(row[REEL_F_x_lang_match]));

    /* A new video: no row until the state grows; then its metadata. */
    reel_video_rec nr = reel_video_rec_empty();
    nr.id = "fresh-video";
    const char *nc[] = {"another-new-one"};
    nr.categories = nc;
    nr.n_categories = 1;
    nr.duration_s = 42;
    uint32_t v;
    assert_int_equal(reel_meta_put_video(m, &nr, &v, NULL, &d), 0);
    reel_features_row(s, 0, v, fx.t_end, NULL, row);
    assert_true(isnan(row[REEL_F_v_duration_s]));
    assert_true(isnan(row[REEL_F_v_views]));
    reel_featstate_grow_videos(s, v + 1);
    reel_features_row(s, 0, v, fx.t_end, NULL, row);
    assert_float_equal(row[REEL_F_v_duration_s], 42, 0);
    assert_float_equal(row[REEL_F_v_category], (float)(want_cat + 1), 0);
    assert_float_equal(row[REEL_F_v_views], 0, 0);
    /* A watch of it counts, its minutes go to its category's bucket. */
    reel_featstate_apply(s, 0, v, REEL_EV_WATCH, fx.t_end + 1, 21, NAN);
    reel_features_row(s, 0, v, fx.t_end + 2, NULL, row);
    assert_float_equal(row[REEL_F_v_views], 1, 0);
    assert_float_equal(row[REEL_F_v_watch_frac], 0.5f, 1e-6);
    assert_false(isnan(row[REEL_F_x_cat_affinity]));

    /* A grown video the meta does not have yet: counters, no metadata. */
    reel_featstate_grow_videos(s, v + 2);
    reel_featstate_apply(s, 0, v + 1, REEL_EV_WATCH, fx.t_end + 3, 10, NAN);
    reel_features_row(s, 0, v + 1, fx.t_end + 4, NULL, row);
    assert_float_equal(row[REEL_F_v_views], 1, 0);
    assert_true(isnan(row[REEL_F_v_duration_s]));
    assert_true(isnan(row[REEL_F_v_watch_frac]));

    /* A user's put changes their demographics in the row. */
    reel_user_rec u;
    reel_meta_user_rec(m, 0, &u);
    u.age = 61;
    assert_int_equal(reel_meta_put_user(m, &u, NULL, NULL, &d), 0);
    reel_features_row(s, 0, 3, fx.t_end, NULL, row);
    assert_float_equal(row[REEL_F_u_age], 61, 0);
    assert_float_equal(row[REEL_F_u_age_bucket], 6, 0);
    reel_featstate_free(s);
    reel_meta_free(m);
    fixture_free(&fx);
}

static void grow_videos_never_shrinks(void **state)
{
    (void)state;
    struct fixture fx = make_synth();
    reel_featstate *s;
    assert_int_equal(reel_featstate_new(fx.ds, &s), 0);
    uint32_t nv = reel_featstate_n_videos(s);
    assert_int_equal(nv, reel_dataset_videos(fx.ds)->n);
    reel_featstate_grow_videos(s, nv - 1);
    assert_int_equal(reel_featstate_n_videos(s), nv);
    reel_featstate_grow_videos(s, nv + 1000);
    assert_int_equal(reel_featstate_n_videos(s), nv + 1000);
    reel_featstate_free(s);
    fixture_free(&fx);
}

/* Damages section `name` of a copy-on-write open of path, loads into a
 * fresh state and expects rc, section `blamed` named in the message, and
 * the state unchanged. */
static void expect_refused(const struct fixture *fx, const char *path,
                           const char *name, void (*spoil)(void *, uint64_t),
                           int want_rc, const char *blamed)
{
    reel_secfile *f;
    reel_diag d;
    assert_int_equal(
        reel_secfile_open(path, "snapshot", REEL_SECFILE_WRITABLE, &f, &d), 0);
    const reel_section *sec = reel_secfile_find(f, name);
    assert_non_null(sec);
    spoil(reel_secfile_mutable(f, sec), sec->count);
    reel_featstate *s;
    assert_int_equal(reel_featstate_new(fx->ds, &s), 0);
    uint32_t nu = reel_featstate_n_users(s), nv = reel_featstate_n_videos(s);
    reel_diag_clear(&d);
    int rc = reel_featstate_load(s, f, "feat.", &d);
    if (rc != want_rc || !strstr(d.msg, blamed))
        fprintf(stderr, "%s: rc %d, message \"%s\"\n", name, rc, d.msg);
    assert_int_equal(rc, want_rc);
    assert_non_null(strstr(d.msg, blamed));
    assert_int_equal(reel_featstate_n_users(s), nu);
    assert_int_equal(reel_featstate_n_videos(s), nv);
    float row[REEL_F__COUNT];
    reel_features_row(s, 0, 0, 0, NULL, row);
    assert_float_equal(row[REEL_F_u_views], 0, 0);
    reel_featstate_free(s);
    reel_secfile_close(f);
}

static void spoil_version(void *p, uint64_t n)
{
    ((uint64_t *)p)[0] = 9;
}
static void spoil_ring_size(void *p, uint64_t n)
{
    ((uint64_t *)p)[3] = 16;
}
static void spoil_fewer_users(void *p, uint64_t n)
{
    ((uint64_t *)p)[1] = 3;
}
static void spoil_u8_long(void *p, uint64_t n)
{
    ((uint8_t *)p)[0] = REEL_FEAT_RING + 1;
}
static void spoil_u8_sum(void *p, uint64_t n)
{
    uint8_t *r = p;
    for (uint64_t i = 0; i < n; i++)
        if (r[i] < REEL_FEAT_RING) {
            r[i]++;
            return;
        }
}
static void spoil_u32_last_big(void *p, uint64_t n)
{
    ((uint32_t *)p)[n - 1] = 1u << 30;
}
static void spoil_f32_nan(void *p, uint64_t n)
{
    ((float *)p)[n / 2] = NAN;
}
static void spoil_f64_inf(void *p, uint64_t n)
{
    ((double *)p)[0] = INFINITY;
}

static void damaged_sections_are_refused_and_change_nothing(void **state)
{
    (void)state;
    struct fixture fx = make_synth();
    reel_featstate *s;
    assert_int_equal(reel_featstate_new(fx.ds, &s), 0);
    reel_featstate_apply_events(s, 0, reel_dataset_events(fx.ds)->n, NULL);
    reel_featstate_grow(s, reel_featstate_n_users(s) + 4);
    char *path = save_state(s, fx.dir, "snap.reel");
    static const struct {
        const char *name;
        void (*spoil)(void *, uint64_t);
        int rc;
        const char *blamed;
    } cases[] = {
        {"feat.head", spoil_version, REEL_EVERSION, "feat.head"},
        {"feat.head", spoil_ring_size, REEL_EFORMAT, "feat.head"},
        {"feat.head", spoil_fewer_users, REEL_ECORRUPT, "feat.head"},
        {"feat.u.ring_n", spoil_u8_long, REEL_ECORRUPT, "feat.u.ring_n"},
        {"feat.u.ring_n", spoil_u8_sum, REEL_ECORRUPT, "feat.u.ring"},
        {"feat.u.ring", spoil_u32_last_big, REEL_ECORRUPT, "feat.u.ring"},
        {"feat.v.d7", spoil_f32_nan, REEL_ECORRUPT, "feat.v.d7"},
        {"feat.u.cat", spoil_f32_nan, REEL_ECORRUPT, "feat.u.cat"},
        {"feat.u.last_ts", spoil_f64_inf, REEL_ECORRUPT, "feat.u.last_ts"},
        {"feat.v.ts", spoil_f64_inf, REEL_ECORRUPT, "feat.v.ts"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_refused(&fx, path, cases[i].name, cases[i].spoil, cases[i].rc,
                       cases[i].blamed);
    /* The undamaged file loads. */
    reel_featstate *l;
    assert_int_equal(reel_featstate_new(fx.ds, &l), 0);
    reel_diag d;
    assert_int_equal(load_state(l, path, &d), 0);
    assert_same_state(s, l, fx.t_end, 11);
    reel_featstate_free(l);
    reel_featstate_free(s);
    free(path);
    fixture_free(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_loaded_state_gives_bit_identical_rows),
        cmocka_unit_test(a_grown_state_round_trips),
        cmocka_unit_test(rows_through_a_meta_follow_its_puts),
        cmocka_unit_test(grow_videos_never_shrinks),
        cmocka_unit_test(damaged_sections_are_refused_and_change_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
