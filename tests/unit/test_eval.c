/* Unit tests of src/eval: metric definitions by hand, protocols on a
 * dataset small enough to rank by hand, split determinism. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(metrics_match_hand_computed_cases),
        cmocka_unit_test(leave_last_out_ranks_by_hand),
        cmocka_unit_test(replay_asks_before_each_event),
        cmocka_unit_test(random_split_is_deterministic_for_a_seed),
        cmocka_unit_test(cold_start_ranks_only_held_out_videos),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
