/* Unit tests of src/eval: metric definitions by hand, protocols on a
 * dataset small enough to rank by hand, split determinism, the
 * demographic segments of cold-users. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "eval/eval.h"
#include "eval/eval_impl.h"

static void metrics_match_hand_computed_cases(void **state)
{
    (void)state;
    uint8_t rel[16] = {0};
    struct case_metrics c;
    /* Relevant {1, 2, 9}; ranked 5, 2, 7, 1; k = 3: one hit, at rank 2. */
    uint32_t list[] = {5, 2, 7, 1};
    rel[1] = rel[2] = rel[9] = 1;
    reel__eval_case(list, 4, rel, 3, 3, &c);
    assert_float_equal(c.precision, 1.0 / 3, 1e-12);
    assert_float_equal(c.recall, 1.0 / 3, 1e-12);
    double idcg = 1 + 1 / log2(3) + 1 / log2(4);
    assert_float_equal(c.ndcg, (1 / log2(3)) / idcg, 1e-12);
    assert_float_equal(c.map, 0.5 / 3, 1e-12);
    assert_float_equal(c.mrr, 0.5, 1e-12);
    assert_float_equal(c.hr, 1, 0);
    assert_int_equal(c.hits_at[1], 0);
    assert_int_equal(c.hits_at[2], 1);
    assert_int_equal(c.hits_at[4], 2); /* item 1 at rank 4, beyond k */
    assert_int_equal(c.hits_at[50], 2);
    /* Fewer relevant items than k: the ideal DCG stops at one item. */
    memset(rel, 0, sizeof rel);
    rel[5] = 1;
    reel__eval_case(list, 4, rel, 1, 10, &c);
    assert_float_equal(c.ndcg, 1.0, 1e-12);
    assert_float_equal(c.recall, 1.0, 1e-12);
    assert_float_equal(c.precision, 0.1, 1e-12);
    assert_float_equal(c.map, 1.0, 1e-12);
    /* No hit at all. */
    memset(rel, 0, sizeof rel);
    rel[11] = 1;
    reel__eval_case(list, 4, rel, 1, 10, &c);
    assert_true(c.ndcg == 0 && c.mrr == 0 && c.hr == 0 && c.map == 0);
}

/* u0: v0 v1 v2, u1: v0 v2, u2: v1 v3, u3: v4 (times in that order). */
static reel_dataset *small(char *dir)
{
    reel_dsbuild *b;
    reel_dsbuild_new(&b);
    reel_diag d;
    for (int i = 0; i < 5; i++) {
        char id[8];
        snprintf(id, sizeof id, "v%d", i);
        reel_dsbuild_video_ref(b, id, strlen(id));
    }
    int ev[][2] = {{0, 0}, {0, 1}, {0, 2}, {1, 0},
                   {1, 2}, {2, 1}, {2, 3}, {3, 4}};
    for (int i = 0; i < 8; i++) {
        char id[8];
        snprintf(id, sizeof id, "u%d", ev[i][0]);
        reel_event_rec e = reel_event_rec_empty();
        e.user = reel_dsbuild_user_ref(b, id, strlen(id));
        e.video = (uint32_t)ev[i][1];
        e.type = REEL_EV_WATCH;
        e.ts = 1000 + i;
        assert_int_equal(reel_dsbuild_add_event(b, &e, &d), 0);
    }
    assert_int_equal(reel_dsbuild_write(b, dir, &d), 0);
    reel_dsbuild_free(b);
    reel_dataset *ds;
    assert_int_equal(reel_dataset_open(dir, &ds, &d), 0);
    return ds;
}

/* Leave-last-out with popularity, ranked by hand: training popularity is
 * v0 2, v1 2, v4 1, v2 0, v3 0; ties go in the hashed order of
 * eval_method.c's cmp_pop, which puts v1 before v0 and v3 before v2, so
 * the list is v1 v0 v4 v3 v2. u0 gets v4 v3 v2 (target v2 at 3), u1 v1 v4
 * v3 v2 (v2 at 4), u2 v0 v4 v3 v2 (v3 at 3); u3 has a single interaction
 * and is not a case. */
static void leave_last_out_ranks_by_hand(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_dataset *ds = small(dir);
    reel_eval_opts o = reel_eval_opts_default();
    o.protocol = REEL_PROTO_LAST;
    o.k = 3;
    o.methods = 1u << REEL_METHOD_POPULAR;
    o.quiet = 1;
    reel_eval_result r[REEL_METHOD__COUNT];
    uint32_t n;
    reel_diag d;
    assert_int_equal(reel_eval_run(ds, &o, r, &n, &d), 0);
    assert_int_equal(n, 1);
    assert_int_equal(r[0].n_cases, 3);
    assert_float_equal(r[0].hr, 2.0 / 3, 1e-12);
    assert_float_equal(r[0].ndcg, (0.5 + 0.5) / 3, 1e-12);
    assert_float_equal(r[0].mrr, (1.0 / 3 + 0.25 + 1.0 / 3) / 3, 1e-12);
    assert_float_equal(r[0].recall_at[2], 0, 0);
    assert_float_equal(r[0].recall_at[3], 2.0 / 3, 1e-12);
    assert_float_equal(r[0].recall_at[4], 1, 1e-12);
    reel_dataset_close(ds);
    test_rmtree(dir);
    free(dir);
}

/* Replay: with the cut after u0's first two events, u0's v2 is asked
 * for with {v0, v1} seen, and so on; every request is answered. */
static void replay_asks_before_each_event(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_dataset *ds = small(dir);
    reel_eval_opts o = reel_eval_opts_default();
    o.protocol = REEL_PROTO_REPLAY;
    o.replay_train = 0.25; /* 2 of 8 events before the cut */
    o.k = 10;
    o.methods = (1u << REEL_METHOD_POPULAR) | (1u << REEL_METHOD_ITEMKNN);
    o.quiet = 1;
    reel_eval_result r[REEL_METHOD__COUNT];
    uint32_t n;
    reel_diag d;
    assert_int_equal(reel_eval_run(ds, &o, r, &n, &d), 0);
    assert_int_equal(n, 2);
    /* 6 events replayed, none a re-watch: 6 requests, and with 5 videos
     * and k = 10 every unseen target is in the list. */
    assert_int_equal(r[0].n_cases, 6);
    assert_float_equal(r[0].hr, 1, 0);
    assert_true(r[0].latency_p99_us >= r[0].latency_p50_us);
    reel_dataset_close(ds);
    test_rmtree(dir);
    free(dir);
}

static void random_split_is_deterministic_for_a_seed(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    /* 40 users x 30 videos, each user with 12 distinct videos. */
    reel_dsbuild *b;
    reel_dsbuild_new(&b);
    reel_diag d;
    for (int i = 0; i < 30; i++) {
        char id[8];
        snprintf(id, sizeof id, "v%d", i);
        reel_dsbuild_video_ref(b, id, strlen(id));
    }
    for (int u = 0; u < 40; u++) {
        char id[8];
        snprintf(id, sizeof id, "u%d", u);
        uint32_t uu = reel_dsbuild_user_ref(b, id, strlen(id));
        for (int j = 0; j < 12; j++) {
            reel_event_rec e = reel_event_rec_empty();
            e.user = uu;
            e.video = (uint32_t)((u * 7 + j * 3) % 30);
            e.type = REEL_EV_RATING;
            e.rating = 4;
            e.ts = u * 100 + j;
            assert_int_equal(reel_dsbuild_add_event(b, &e, &d), 0);
        }
    }
    assert_int_equal(reel_dsbuild_write(b, dir, &d), 0);
    reel_dsbuild_free(b);
    reel_dataset *ds;
    assert_int_equal(reel_dataset_open(dir, &ds, &d), 0);
    reel_eval_opts o = reel_eval_opts_default();
    o.methods = (1u << REEL_METHOD_POPULAR) | (1u << REEL_METHOD_ITEMKNN);
    o.quiet = 1;
    reel_eval_result a[3], bb[3], c[3];
    uint32_t n;
    assert_int_equal(reel_eval_run(ds, &o, a, &n, &d), 0);
    assert_int_equal(reel_eval_run(ds, &o, bb, &n, &d), 0);
    assert_int_equal(a[1].n_cases, 40);
    assert_true(a[0].ndcg == bb[0].ndcg && a[1].ndcg == bb[1].ndcg);
    assert_true(a[1].map == bb[1].map);
    o.seed = 7;
    assert_int_equal(reel_eval_run(ds, &o, c, &n, &d), 0);
    assert_true(a[1].ndcg != c[1].ndcg || a[0].ndcg != c[0].ndcg);
    /* 12 items at 0.75: 9 train, 3 test per user, so recall@50 is 1 for
     * any method that ranks all 21 unseen videos. */
    assert_float_equal(a[0].recall_at[50], 1.0, 1e-12);
    reel_dataset_close(ds);
    test_rmtree(dir);
    free(dir);
}

/* Cold start: 300 videos in three planted tastes, 60 users each watching
 * 20 videos of one taste. 10% of the videos are held out of training; the
 * lists contain only them, and with at most 50 of them every user's
 * held-out videos are in the top 50. ANN gives each one a vector. */
static void cold_start_ranks_only_held_out_videos(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_dsbuild *b;
    reel_dsbuild_new(&b);
    reel_diag d;
    for (int i = 0; i < 300; i++) {
        char id[8];
        snprintf(id, sizeof id, "v%d", i);
        reel_dsbuild_video_ref(b, id, strlen(id));
    }
    int64_t ts = 1000;
    for (int u = 0; u < 60; u++) {
        char id[8];
        snprintf(id, sizeof id, "u%d", u);
        uint32_t uid = reel_dsbuild_user_ref(b, id, strlen(id));
        for (int j = 0; j < 20; j++) {
            reel_event_rec e = reel_event_rec_empty();
            e.user = uid;
            e.video = (uint32_t)((u % 3) * 100 + (u * 7 + j * 13) % 100);
            e.type = REEL_EV_WATCH;
            e.ts = ts++;
            assert_int_equal(reel_dsbuild_add_event(b, &e, &d), 0);
        }
    }
    assert_int_equal(reel_dsbuild_write(b, dir, &d), 0);
    reel_dsbuild_free(b);
    reel_dataset *ds;
    assert_int_equal(reel_dataset_open(dir, &ds, &d), 0);
    reel_eval_opts o = reel_eval_opts_default();
    o.protocol = REEL_PROTO_COLD;
    o.methods = 1u << REEL_METHOD_POPULAR | 1u << REEL_METHOD_ANN;
    o.quiet = 1;
    o.i2v.threads = 1;
    reel_eval_result r[REEL_METHOD__COUNT];
    uint32_t n;
    assert_int_equal(reel_eval_run(ds, &o, r, &n, &d), 0);
    assert_int_equal(n, 2);
    for (uint32_t m = 0; m < n; m++) {
        assert_true(r[m].cold_videos >= 15 && r[m].cold_videos <= 50);
        assert_true(r[m].n_cases > 0);
        assert_float_equal(r[m].recall_at[50], 1, 1e-12);
        assert_true(r[m].coverage > 0 && r[m].coverage <= 1);
    }
    assert_true(r[1].cold_filled >= r[1].cold_videos);
    reel_dataset_close(ds);
    test_rmtree(dir);
    free(dir);
}

/* The segments are the server's (segment_of() in src/reco/engine.c): age
 * buckets split at 18, 25, 35, 45, 50 and 56, gender ids 0..2, and "no
 * segment" only when both are unknown. */
static void segments_bucket_age_and_gender_like_the_server(void **state)
{
    (void)state;
    static const struct {
        int16_t age;
        uint32_t gender, want;
    } c[] = {
        {17, 0, 0},     {18, 1, 4 + 1},
        {24, 2, 4 + 2}, {25, 0, 8},
        {34, 0, 8},     {35, 0, 12},
        {44, 0, 12},    {45, 0, 16},
        {49, 0, 16},    {50, 0, 20},
        {55, 0, 20},    {56, 0, 24},
        {90, 0, 24},    {-1, 1, 28 + 1},
        {30, 3, 8 + 3}, {-1, REEL_NONE, REEL_NO_SEGMENT},
    };
    enum { N = sizeof c / sizeof *c };
    int16_t age[N];
    uint32_t gender[N];
    for (uint32_t u = 0; u < N; u++) {
        age[u] = c[u].age;
        gender[u] = c[u].gender;
    }
    reel_users us = {.n = N, .age = age, .gender = gender};
    for (uint32_t u = 0; u < N; u++)
        assert_int_equal(reel_user_segment(&us, u), c[u].want);
    /* A user beyond the table (added after the dataset) has none. */
    assert_int_equal(reel_user_segment(&us, N), REEL_NO_SEGMENT);
}

/* Two segments with disjoint tastes: 30 users aged 15 (gender f) each
 * watch v0..v9, 60 users aged 60 (gender m) each watch v10..v19; 20 more
 * videos nobody watches. With the older segment twice as large, popular's
 * top 10 is v10..v19 for everyone: a held-out young user has no hit in it
 * (first at rank 11). segment gives them their segment's list round-robin
 * with popular, the server's interleave: hits at ranks 1, 3, 5, 7 and 9.
 * An older user gets all ten of their videos from both methods. */
static reel_dataset *two_segments(char *dir)
{
    reel_dsbuild *b;
    reel_dsbuild_new(&b);
    reel_diag d;
    for (int i = 0; i < 40; i++) {
        char id[8];
        snprintf(id, sizeof id, "v%d", i);
        reel_dsbuild_video_ref(b, id, strlen(id));
    }
    double ts = 1000;
    for (int u = 0; u < 90; u++) {
        char id[8];
        snprintf(id, sizeof id, "u%d", u);
        int young = u < 30;
        reel_user_rec ur = reel_user_rec_empty();
        ur.id = id;
        ur.age = young ? 15 : 60;
        ur.gender = young ? "f" : "m";
        uint32_t uid;
        assert_int_equal(reel_dsbuild_add_user(b, &ur, &uid, &d), 0);
        for (int j = 0; j < 10; j++) {
            reel_event_rec e = reel_event_rec_empty();
            e.user = uid;
            e.video = (uint32_t)((young ? 0 : 10) + (u + j) % 10);
            e.type = REEL_EV_WATCH;
            e.ts = ts++;
            assert_int_equal(reel_dsbuild_add_event(b, &e, &d), 0);
        }
    }
    assert_int_equal(reel_dsbuild_write(b, dir, &d), 0);
    reel_dsbuild_free(b);
    reel_dataset *ds;
    assert_int_equal(reel_dataset_open(dir, &ds, &d), 0);
    return ds;
}

static void cold_users_segment_beats_popular_when_tastes_differ(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_dataset *ds = two_segments(dir);
    reel_eval_opts o = reel_eval_opts_default();
    o.protocol = REEL_PROTO_COLD_USERS;
    o.cold_share = 0.3;
    o.quiet = 1;
    reel_eval_result r[REEL_METHOD__COUNT];
    uint32_t n;
    reel_diag d;
    /* By default the methods without history: popular, trending, segment. */
    assert_int_equal(reel_eval_run(ds, &o, r, &n, &d), 0);
    assert_int_equal(n, 3);
    assert_int_equal(r[0].method, REEL_METHOD_POPULAR);
    assert_int_equal(r[1].method, REEL_METHOD_TRENDING);
    assert_int_equal(r[2].method, REEL_METHOD_SEGMENT);
    const reel_eval_result *pop = &r[0], *seg = &r[2];
    enum { YOUNG = 0, OLD = 6 }; /* age groups <18 and 56+ */
    uint32_t ny = pop->group_cases[YOUNG], no = pop->group_cases[OLD];
    assert_true(ny > 0 && no > 0);
    assert_int_equal(pop->cold_users, ny + no);
    assert_int_equal(pop->cold_segmented, ny + no);
    assert_int_equal(pop->n_cases, ny + no);
    assert_int_equal(seg->group_cases[YOUNG], ny);
    /* The young: nothing in popular's top 10, the first hit at 11. */
    assert_float_equal(pop->group_ndcg[YOUNG], 0, 0);
    assert_float_equal(pop->group_recall[YOUNG], 0, 0);
    double idcg = 0, dcg = 0;
    for (int r_ = 1; r_ <= 10; r_++) {
        idcg += 1 / log2(r_ + 1.0);
        dcg += r_ % 2 ? 1 / log2(r_ + 1.0) : 0;
    }
    assert_float_equal(seg->group_ndcg[YOUNG], dcg / idcg, 1e-12);
    assert_float_equal(seg->group_recall[YOUNG], 0.5, 1e-12);
    /* The old: all ten targets in the top 10 either way. */
    assert_float_equal(pop->group_ndcg[OLD], 1, 1e-12);
    assert_float_equal(seg->group_ndcg[OLD], 1, 1e-12);
    double all = ny + no;
    assert_float_equal(pop->ndcg, no / all, 1e-12);
    assert_float_equal(seg->ndcg, (ny * dcg / idcg + no) / all, 1e-12);
    assert_float_equal(pop->mrr, (ny / 11.0 + no) / all, 1e-12);
    assert_float_equal(seg->mrr, 1, 1e-12);
    assert_true(seg->recall > pop->recall);
    /* Methods that need a history are skipped; alone they are an error. */
    o.methods = 1u << REEL_METHOD_SEGMENT | 1u << REEL_METHOD_ANN;
    assert_int_equal(reel_eval_run(ds, &o, r, &n, &d), 0);
    assert_int_equal(n, 1);
    assert_int_equal(r[0].method, REEL_METHOD_SEGMENT);
    assert_false(
        reel_method_applies(REEL_PROTO_COLD_USERS, REEL_METHOD_ITEMKNN));
    o.methods = 1u << REEL_METHOD_ITEMKNN | 1u << REEL_METHOD_FULL;
    assert_int_equal(reel_eval_run(ds, &o, r, &n, &d), REEL_EINVAL);
    assert_int_equal(n, 0);
    reel_dataset_close(ds);
    test_rmtree(dir);
    free(dir);
}

static void assert_same_result(const reel_eval_result *a,
                               const reel_eval_result *b)
{
    assert_int_equal(a->n_cases, b->n_cases);
    assert_true(a->precision == b->precision && a->recall == b->recall &&
                a->ndcg == b->ndcg && a->map == b->map && a->mrr == b->mrr &&
                a->hr == b->hr && a->coverage == b->coverage &&
                a->popularity_bias == b->popularity_bias);
    for (int k = 1; k <= REEL_EVAL_KMAX; k++)
        assert_true(a->recall_at[k] == b->recall_at[k]);
}

/* Without demographics (MovieLens latest-small) no user has a segment and
 * segment is popular, to the last bit, with or without seen videos. */
static void segment_is_popular_without_demographics(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_dsbuild *b;
    reel_dsbuild_new(&b);
    reel_diag d;
    for (int i = 0; i < 30; i++) {
        char id[8];
        snprintf(id, sizeof id, "v%d", i);
        reel_dsbuild_video_ref(b, id, strlen(id));
    }
    for (int u = 0; u < 60; u++) {
        char id[8];
        snprintf(id, sizeof id, "u%d", u);
        uint32_t uu = reel_dsbuild_user_ref(b, id, strlen(id));
        for (int j = 0; j < 2 + u % 9; j++) {
            reel_event_rec e = reel_event_rec_empty();
            e.user = uu;
            e.video = (uint32_t)((u * 7 + j * j * 3) % 30);
            e.type = REEL_EV_WATCH;
            e.ts = u * 100 + j;
            assert_int_equal(reel_dsbuild_add_event(b, &e, &d), 0);
        }
    }
    assert_int_equal(reel_dsbuild_write(b, dir, &d), 0);
    reel_dsbuild_free(b);
    reel_dataset *ds;
    assert_int_equal(reel_dataset_open(dir, &ds, &d), 0);
    reel_eval_opts o = reel_eval_opts_default();
    o.methods = 1u << REEL_METHOD_POPULAR | 1u << REEL_METHOD_SEGMENT;
    o.quiet = 1;
    o.cold_share = 0.3;
    enum reel_protocol protos[] = {REEL_PROTO_COLD_USERS, REEL_PROTO_RANDOM};
    for (int p = 0; p < 2; p++) {
        o.protocol = protos[p];
        reel_eval_result r[REEL_METHOD__COUNT];
        uint32_t n;
        assert_int_equal(reel_eval_run(ds, &o, r, &n, &d), 0);
        assert_int_equal(n, 2);
        assert_true(r[0].n_cases > 0);
        assert_same_result(&r[0], &r[1]);
        if (o.protocol == REEL_PROTO_COLD_USERS) {
            assert_int_equal(r[1].cold_segmented, 0);
            assert_int_equal(r[1].cold_users, r[1].n_cases);
            assert_int_equal(r[1].group_cases[REEL_EVAL_AGE_GROUPS - 1],
                             r[1].n_cases);
        }
    }
    reel_dataset_close(ds);
    test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(metrics_match_hand_computed_cases),
        cmocka_unit_test(leave_last_out_ranks_by_hand),
        cmocka_unit_test(replay_asks_before_each_event),
        cmocka_unit_test(random_split_is_deterministic_for_a_seed),
        cmocka_unit_test(cold_start_ranks_only_held_out_videos),
        cmocka_unit_test(segments_bucket_age_and_gender_like_the_server),
        cmocka_unit_test(cold_users_segment_beats_popular_when_tastes_differ),
        cmocka_unit_test(segment_is_popular_without_demographics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
