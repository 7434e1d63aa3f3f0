/* Unit tests of src/rank/xgb and src/rank/gbtree: models trained through
 * libxgboost's C API on seeded synthetic rows (10% missing) are scored by
 * reel_gbtree within 1e-6 of libxgboost; the SIMD, scalar and naive twins
 * agree to the bit; TreeSHAP contributions agree with libxgboost's within
 * 1e-5 and sum to the margin; AUC and log loss match hand computations and
 * XGBoost's eval text; early stopping keeps best + 1 trees; corrupt model
 * files are refused with a diag. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/rng.h"
#include "rank/gbtree.h"
#include "rank/xgb.h"

enum { NF = 8 };

/* Rows whose label depends on a few features, with interactions, a
 * threshold and noise; features 5..7 take few values so that rows land
 * exactly on split thresholds. Groups of 10 rows are one query; ranking
 * labels are graded 0..3. */
static void synth(reel_rows *r, size_t n, uint64_t seed, int rank)
{
    reel_rows_init(r, NF);
    reel_rng g;
    reel_rng_seed(&g, seed);
    for (size_t i = 0; i < n; i++) {
        float x[NF];
        for (int j = 0; j < NF; j++) {
            double v = reel_rng_normal(&g);
            if (j >= 5)
                v = floor(v * 2) / 2;
            x[j] = reel_rng_uniform(&g) < 0.1 ? NAN : (float)v;
        }
#define V(j) (isnan(x[j]) ? 0.0 : (double)x[j])
        double s = V(0) + 0.5 * V(1) * V(2) + (V(3) > 0) - 0.5 * fabs(V(4)) +
                   0.3 * V(5) - 0.2 * V(6) * V(7) + 0.7 * reel_rng_normal(&g);
#undef V
        float y = rank ? (float)fmin(3, fmax(0, floor(s + 1))) : (float)(s > 0);
        float *row = reel_rows_push(r, y, (uint32_t)(i / 10), (int64_t)i);
        memcpy(row, x, sizeof x);
    }
}

/* Test rows: fresh draws, then one all missing, one all zero, and
 * values exactly on the discrete grid. */
static float *test_rows(size_t n, size_t stride, uint64_t seed)
{
    reel_rows r;
    synth(&r, n, seed, 0);
    float *x = malloc(n * stride * sizeof *x);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < stride; j++)
            x[i * stride + j] = j < NF ? r.x[i * NF + j] : 1e30f;
    }
    for (size_t j = 0; j < NF; j++) {
        x[0 * stride + j] = NAN;
        x[1 * stride + j] = 0;
        x[2 * stride + j] = 0.5f * (float)j - 1;
    }
    reel_rows_free(&r);
    return x;
}

static reel_xgb *train(const reel_rows *tr, const reel_rows *va,
                       reel_xgb_objective obj, uint32_t depth, uint32_t n_trees,
                       double base_score, reel_xgb_report *rep)
{
    reel_xgb_opts o = reel_xgb_opts_default();
    o.objective = obj;
    o.max_depth = depth;
    o.n_trees = n_trees;
    o.base_score = base_score;
    o.eta = 0.3;
    o.threads = 1;
    reel_xgb *m = NULL;
    reel_diag d;
    reel_diag_clear(&d);
    int rc = reel_xgb_train(tr, va, &o, NULL, &m, rep, &d);
    if (rc)
        fprintf(stderr, "train: %s\n", d.msg);
    assert_int_equal(rc, 0);
    return m;
}

/* Saves m as JSON in dir and loads it with reel_gbtree. */
static reel_gbtree *reload(reel_xgb *m, const char *dir, const char *name)
{
    char *path = test_path(dir, name);
    reel_diag d;
    reel_diag_clear(&d);
    assert_int_equal(reel_xgb_save(m, path, &d), 0);
    reel_gbtree *g = NULL;
    int rc = reel_gbtree_load(path, &g, &d);
    if (rc)
        fprintf(stderr, "load: %s\n", d.msg);
    assert_int_equal(rc, 0);
    free(path);
    return g;
}

static void auc_and_logloss_match_hand_computations(void **state)
{
    (void)state;
    /* Positives 0.35 and 0.8 against negatives 0.1 and 0.4: 3 of 4 pairs. */
    float s1[] = {0.1f, 0.4f, 0.35f, 0.8f}, y1[] = {0, 0, 1, 1};
    assert_float_equal(reel_auc(s1, y1, 4), 0.75, 1e-12);
    /* A tie between a positive and a negative counts half: (1 + 0.5 + 2)
     * of 4. */
    float s2[] = {0.2f, 0.5f, 0.5f, 0.9f}, y2[] = {0, 1, 0, 1};
    assert_float_equal(reel_auc(s2, y2, 4), 0.875, 1e-12);
    /* All tied: 0.5. Reversed: 0. Order of the input does not matter. */
    float s3[] = {0.5f, 0.5f, 0.5f, 0.5f}, y3[] = {0, 1, 0, 1};
    assert_float_equal(reel_auc(s3, y3, 4), 0.5, 1e-12);
    float s4[] = {0.9f, 0.8f, 0.1f, 0.2f}, y4[] = {0, 0, 1, 1};
    assert_float_equal(reel_auc(s4, y4, 4), 0.0, 1e-12);
    float s5[] = {0.8f, 0.35f, 0.4f, 0.1f}, y5[] = {1, 1, 0, 0};
    assert_float_equal(reel_auc(s5, y5, 4), 0.75, 1e-12);
    /* Graded labels count as positive when > 0; one class is NAN. */
    float y6[] = {0, 0, 3, 2};
    assert_float_equal(reel_auc(s1, y6, 4), 0.75, 1e-12);
    float y7[] = {1, 1, 1, 1};
    assert_true(isnan(reel_auc(s1, y7, 4)));

    /* -(ln 0.9 + ln 0.8) / 2 */
    float p1[] = {0.9f, 0.2f}, l1[] = {1, 0};
    assert_float_equal(reel_logloss(p1, l1, 2),
                       -(log((double)0.9f) + log(1 - (double)0.2f)) / 2, 1e-12);
    assert_float_equal(reel_logloss(p1, l1, 2), 0.16425203, 1e-7);
    /* p = 0 on a positive is clipped to 1e-16, as XGBoost does. */
    float p2[] = {0.0f, 0.5f}, l2[] = {1, 1};
    assert_float_equal(reel_logloss(p2, l2, 2), (-log(1e-16) + log(2)) / 2,
                       1e-9);
    assert_true(isnan(reel_logloss(p2, l2, 0)));
}

/* A model written by hand: base_score 0.25 under binary:logistic, a
 * depth-2 tree and a single leaf. */
static const char handmade[] =
    "{\"learner\": {\"attributes\": {}, \"feature_names\": [], "
    "\"feature_types\": [], \"gradient_booster\": {\"model\": "
    "{\"gbtree_model_param\": {\"num_parallel_tree\": \"1\", \"num_trees\": "
    "\"2\", \"size_leaf_vector\": \"0\"}, \"tree_info\": [0, 0], "
    "\"trees\": [{\"base_weights\": [0, 0, 0, 0, 0], \"categories\": [], "
    "\"categories_nodes\": [], \"categories_segments\": [], "
    "\"categories_sizes\": [], \"default_left\": [0, 1, 0, 0, 0], \"id\": 0, "
    "\"left_children\": [1, 3, -1, -1, -1], \"loss_changes\": [1, 1, 0, 0, "
    "0], \"parents\": [2147483647, 0, 0, 1, 1], \"right_children\": [2, 4, "
    "-1, -1, -1], \"split_conditions\": [0.5, -1, 2, -1, 0.25], "
    "\"split_indices\": [0, 1, 0, 0, 0], \"split_type\": [0, 0, 0, 0, 0], "
    "\"sum_hessian\": [10, 4, 6, 1, 3], \"tree_param\": {\"num_deleted\": "
    "\"0\", \"num_feature\": \"2\", \"num_nodes\": \"5\", "
    "\"size_leaf_vector\": \"0\"}}, {\"base_weights\": [0], \"categories\": "
    "[], \"categories_nodes\": [], \"categories_segments\": [], "
    "\"categories_sizes\": [], \"default_left\": [0], \"id\": 1, "
    "\"left_children\": [-1], \"loss_changes\": [0], \"parents\": "
    "[2147483647], \"right_children\": [-1], \"split_conditions\": [0.125], "
    "\"split_indices\": [0], \"split_type\": [0], \"sum_hessian\": [10], "
    "\"tree_param\": {\"num_deleted\": \"0\", \"num_feature\": \"2\", "
    "\"num_nodes\": \"1\", \"size_leaf_vector\": \"0\"}}]}, \"name\": "
    "\"gbtree\"}, \"learner_model_param\": {\"base_score\": \"2.5E-1\", "
    "\"boost_from_average\": \"1\", \"num_class\": \"0\", \"num_feature\": "
    "\"2\", \"num_target\": \"1\"}, \"objective\": {\"name\": "
    "\"binary:logistic\", \"reg_loss_param\": {\"scale_pos_weight\": "
    "\"1\"}}}, \"version\": [1, 7, 4]}";

static void handmade_model_scores_by_hand(void **state)
{
    (void)state;
    reel_gbtree *g;
    reel_diag d;
    reel_diag_clear(&d);
    assert_int_equal(reel_gbtree_parse(handmade, strlen(handmade), &g, &d), 0);
    assert_int_equal(reel_gbtree_n_trees(g), 2);
    assert_int_equal(reel_gbtree_n_features(g), 2);
    assert_int_equal(reel_gbtree_max_depth(g), 2);
    assert_string_equal(reel_gbtree_objective(g), "binary:logistic");
    float b = -logf(1.0f / 0.25f - 1.0f);
    assert_float_equal(reel_gbtree_base_margin(g), b, 0);
    /* Root: x0 < 0.5 left (NAN right); node 1: x1 < -1 left (NAN left). */
    const float x[][2] = {
        {0, -2},       /* left, left: -1 */
        {0, -1},       /* left, x1 == -1 goes right: 0.25 */
        {0, NAN},      /* left, default left: -1 */
        {0.5f, 0},     /* x0 == 0.5 goes right: 2 */
        {NAN, -5},     /* default right: 2 */
        {0.49f, 1e9f}, /* left, right: 0.25 */
    };
    const float leaf[] = {-1, 0.25f, -1, 2, 2, 0.25f};
    float m[6], p[6], q[6];
    reel_gbtree_predict_margin(g, &x[0][0], 6, 2, m);
    reel_gbtree_predict(g, &x[0][0], 6, 2, p);
    reel_gbtree_predict_naive(g, &x[0][0], 6, 2, q);
    for (int i = 0; i < 6; i++) {
        float want = b + leaf[i] + 0.125f;
        assert_float_equal(m[i], want, 0);
        assert_float_equal(p[i], 1 / (1 + exp(-(double)want)), 1e-7);
        assert_float_equal(p[i], q[i], 0);
    }
    /* TreeSHAP, by hand for row {0.49, 1e9}: tree 0's expected value is
     * (4 * E1 + 6 * 2) / 10 with E1 = (1 * -1 + 3 * 0.25) / 4 = -0.0625;
     * the row's leaf 0.25 differs from it by phi0 + phi1. With two features
     * on the path, each gets its Shapley share. */
    float phi[3];
    reel_gbtree_contrib(g, x[5], phi);
    double e1 = -0.0625, e0 = (4 * e1 + 6 * 2) / 10;
    /* v({}) = e0, v({0}) = E1 = -0.0625, v({1}) = 0.4 * 0.25 + 0.6 * 2 =
     * 1.3, v({0, 1}) = 0.25. */
    double v0 = -0.0625, v1 = 1.3, v01 = 0.25;
    double phi0 = 0.5 * (v0 - e0) + 0.5 * (v01 - v1);
    double phi1 = 0.5 * (v1 - e0) + 0.5 * (v01 - v0);
    assert_float_equal(phi[0], phi0, 1e-6);
    assert_float_equal(phi[1], phi1, 1e-6);
    assert_float_equal(phi[2], e0 + 0.125 + b, 1e-6);
    assert_float_equal(phi[0] + phi[1] + phi[2], m[5], 1e-6);
    reel_gbtree_free(g);
}

/* The models the parity tests train: every depth the complete layout
 * handles in a different way (1, 3, 5, 6, 8), a deep one in the
 * breadth-first layout (10), ranking, and a base_score other than 0.5. */
typedef struct spec {
    reel_xgb_objective obj;
    uint32_t depth, n_trees;
    double base_score;
} spec;

static const spec specs[] = {
    {REEL_XGB_BINARY_LOGISTIC, 1, 40, 0.5},
    {REEL_XGB_BINARY_LOGISTIC, 3, 40, 0.5},
    {REEL_XGB_BINARY_LOGISTIC, 5, 20, 0.5},
    {REEL_XGB_BINARY_LOGISTIC, 6, 40, 0.5},
    {REEL_XGB_BINARY_LOGISTIC, 8, 30, 0.5},
    {REEL_XGB_BINARY_LOGISTIC, 10, 10, 0.5},
    {REEL_XGB_BINARY_LOGISTIC, 3, 30, 0.3},
    {REEL_XGB_RANK_NDCG, 6, 30, 0.5},
    {REEL_XGB_RANK_NDCG, 3, 30, 1.5},
};

/* reel_gbtree's output is within 1e-6 of libxgboost's on rows with missing
 * values, packed or strided; the SIMD, scalar and naive paths give the
 * same bits (they add the same floats in the same order). */
static void gbtree_matches_libxgboost(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_rows tb, tr;
    synth(&tb, 3000, 11, 0);
    synth(&tr, 3000, 12, 1);
    enum { N = 501, STRIDE = NF + 3 };
    float *x = test_rows(N, STRIDE, 99);
    float *want = malloc(N * sizeof *want), *got = malloc(N * sizeof *got),
          *sc = malloc(N * sizeof *sc), *nv = malloc(N * sizeof *nv);
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        const spec *sp = &specs[s];
        int rank = sp->obj == REEL_XGB_RANK_NDCG;
        reel_xgb *m = train(rank ? &tr : &tb, NULL, sp->obj, sp->depth,
                            sp->n_trees, sp->base_score, NULL);
        char name[32];
        snprintf(name, sizeof name, "m%zu.json", s);
        reel_gbtree *g = reload(m, dir, name);
        assert_int_equal(reel_gbtree_n_trees(g), sp->n_trees);
        assert_int_equal(reel_gbtree_n_features(g), NF);
        assert_true(reel_gbtree_max_depth(g) <= sp->depth);
        assert_true(reel_gbtree_max_depth(g) >= (sp->depth > 3 ? 3 : 1));
        /* The deep model does reach the breadth-first layout. */
        if (sp->depth > 8)
            assert_true(reel_gbtree_max_depth(g) > 8);
        assert_string_equal(reel_gbtree_objective(g),
                            rank ? "rank:ndcg" : "binary:logistic");
        reel_diag d;
        for (int packed = 0; packed < 2; packed++) {
            const float *rows = x;
            size_t stride = STRIDE;
            float *pk = NULL;
            if (packed) {
                pk = malloc(N * NF * sizeof *pk);
                for (size_t i = 0; i < N; i++)
                    memcpy(pk + i * NF, x + i * STRIDE, NF * sizeof *pk);
                rows = pk;
                stride = NF;
            }
            assert_int_equal(reel_xgb_predict(m, rows, N, stride, want, &d), 0);
            reel_gbtree_predict(g, rows, N, stride, got);
            reel_gbtree_predict_scalar(g, rows, N, stride, sc);
            reel_gbtree_predict_naive(g, rows, N, stride, nv);
            double worst = 0;
            for (size_t i = 0; i < N; i++) {
                worst = fmax(worst, fabs((double)got[i] - want[i]));
                assert_float_equal(got[i], want[i], 1e-6);
                assert_memory_equal(&got[i], &sc[i], sizeof(float));
                assert_memory_equal(&got[i], &nv[i], sizeof(float));
            }
            if (worst > 0)
                fprintf(stderr, "model %zu: largest difference %.3g\n", s,
                        worst);
            free(pk);
        }
        reel_gbtree_free(g);
        reel_xgb_free(m);
    }
    free(want);
    free(got);
    free(sc);
    free(nv);
    free(x);
    reel_rows_free(&tb);
    reel_rows_free(&tr);
    test_rmtree(dir);
    free(dir);
}

/* TreeSHAP agrees with libxgboost's pred_contribs within 1e-5 (missing
 * values included) and each row's contributions sum to its margin. */
static void contributions_match_libxgboost(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_rows tb, tr;
    synth(&tb, 3000, 21, 0);
    synth(&tr, 3000, 22, 1);
    enum { N = 64 };
    float *x = test_rows(N, NF, 23);
    float *want = malloc(N * (NF + 1) * sizeof *want), phi[NF + 1], mg[N];
    const spec cases[] = {{REEL_XGB_BINARY_LOGISTIC, 3, 20, 0.3},
                          {REEL_XGB_BINARY_LOGISTIC, 6, 20, 0.5},
                          {REEL_XGB_RANK_NDCG, 8, 10, 0.5}};
    for (size_t s = 0; s < sizeof cases / sizeof cases[0]; s++) {
        const spec *sp = &cases[s];
        int rank = sp->obj == REEL_XGB_RANK_NDCG;
        reel_xgb *m = train(rank ? &tr : &tb, NULL, sp->obj, sp->depth,
                            sp->n_trees, sp->base_score, NULL);
        char name[32];
        snprintf(name, sizeof name, "c%zu.json", s);
        reel_gbtree *g = reload(m, dir, name);
        reel_diag d;
        assert_int_equal(reel_xgb_contrib(m, x, N, NF, want, &d), 0);
        reel_gbtree_predict_margin(g, x, N, NF, mg);
        double worst = 0;
        for (size_t i = 0; i < N; i++) {
            reel_gbtree_contrib(g, x + i * NF, phi);
            double sum = 0;
            for (int j = 0; j <= NF; j++) {
                worst = fmax(worst, fabs(phi[j] - want[i * (NF + 1) + j]));
                assert_float_equal(phi[j], want[i * (NF + 1) + j], 1e-5);
                sum += phi[j];
            }
            assert_float_equal(sum, mg[i], 1e-4);
            /* A missing feature still takes part: its contribution is
             * whatever its default branch is worth, not forced to 0. */
        }
        if (worst > 0)
            fprintf(stderr, "contrib %zu: largest difference %.3g\n", s, worst);
        reel_gbtree_free(g);
        reel_xgb_free(m);
    }
    free(want);
    free(x);
    reel_rows_free(&tb);
    reel_rows_free(&tr);
    test_rmtree(dir);
    free(dir);
}

/* With noisy labels and a large step the validation loss turns up early:
 * training stops early_stopping_rounds after the best round, the kept
 * model has best + 1 trees (in memory and in the saved file), and the
 * AUC and log loss computed in C match XGBoost's eval text. */
static void early_stopping_keeps_the_best_trees(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_rows all, tr, va;
    synth(&all, 3000, 31, 0);
    assert_int_equal(reel_rows_split_tail(&all, 0.3, &tr, &va), 0);
    reel_xgb_opts o = reel_xgb_opts_default();
    o.max_depth = 8;
    o.eta = 0.5;
    o.n_trees = 200;
    o.early_stopping_rounds = 5;
    o.cross_check = 1;
    o.threads = 1;
    reel_xgb *m;
    reel_xgb_report rep;
    reel_diag d;
    reel_diag_clear(&d);
    assert_int_equal(reel_xgb_train(&tr, &va, &o, NULL, &m, &rep, &d), 0);
    assert_true(rep.n_rounds < 200);
    assert_int_equal(rep.n_rounds, rep.best_iteration + 1 + 5);
    assert_int_equal(reel_xgb_n_trees(m), rep.best_iteration + 1);
    assert_string_equal(rep.metric, "logloss");
    assert_float_equal(rep.best_metric, rep.xgb_logloss, 0);
    /* XGBoost prints six significant digits. */
    assert_float_equal(rep.valid_auc, rep.xgb_auc, 1e-5);
    assert_float_equal(rep.valid_logloss, rep.xgb_logloss, 1e-5);
    assert_true(rep.valid_auc > 0.7 && rep.valid_auc < 1);
    reel_gbtree *g = reload(m, dir, "es.json");
    assert_int_equal(reel_gbtree_n_trees(g), rep.best_iteration + 1);
    char *path = test_path(dir, "es.json");
    reel_xgb *back;
    assert_int_equal(reel_xgb_load(path, &back, &d), 0);
    assert_int_equal(reel_xgb_n_trees(back), rep.best_iteration + 1);
    assert_int_equal(reel_xgb_n_features(back), NF);
    /* The kept model's validation scores are the report's. */
    float *p = malloc(va.n * sizeof *p);
    reel_gbtree_predict(g, va.x, va.n, NF, p);
    assert_float_equal(reel_auc(p, va.y, va.n), rep.valid_auc, 1e-6);
    free(p);
    free(path);
    reel_xgb_free(back);
    reel_gbtree_free(g);
    reel_xgb_free(m);

    /* early_stopping_rounds 0: every round's tree is kept. */
    o.early_stopping_rounds = 0;
    o.n_trees = 12;
    assert_int_equal(reel_xgb_train(&tr, &va, &o, NULL, &m, &rep, &d), 0);
    assert_int_equal(rep.n_rounds, 12);
    assert_int_equal(rep.best_iteration, 11);
    assert_int_equal(reel_xgb_n_trees(m), 12);
    reel_xgb_free(m);
    o.early_stopping_rounds = 5;

    /* Ranking stops on ndcg@10, maximised. */
    reel_rows rall, rtr, rva;
    synth(&rall, 3000, 32, 1);
    assert_int_equal(reel_rows_split_tail(&rall, 0.3, &rtr, &rva), 0);
    o.objective = REEL_XGB_RANK_NDCG;
    o.n_trees = 60;
    assert_int_equal(reel_xgb_train(&rtr, &rva, &o, NULL, &m, &rep, &d), 0);
    assert_string_equal(rep.metric, "ndcg@10");
    assert_true(rep.best_metric > 0.5 && rep.best_metric <= 1);
    assert_int_equal(reel_xgb_n_trees(m), rep.best_iteration + 1);
    assert_true(isnan(rep.valid_logloss) && rep.valid_auc > 0.6);
    reel_xgb_free(m);

    reel_rows_free(&all);
    reel_rows_free(&tr);
    reel_rows_free(&va);
    reel_rows_free(&rall);
    reel_rows_free(&rtr);
    reel_rows_free(&rva);
    test_rmtree(dir);
    free(dir);
}

/* One seed and one thread: the same model file, byte for byte, with row
 * and column sampling on. Bad input is refused with a diag. */
static void training_is_deterministic_and_checks_input(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_rows tb;
    synth(&tb, 2000, 41, 0);
    reel_xgb_opts o = reel_xgb_opts_default();
    o.n_trees = 20;
    o.subsample = 0.7;
    o.colsample_bytree = 0.6;
    o.threads = 1;
    o.seed = 7;
    char *text[2];
    for (int k = 0; k < 2; k++) {
        reel_xgb *m;
        reel_diag d;
        reel_progress prog; /* counts rounds; draws nothing off a terminal */
        assert_int_equal(
            reel_xgb_train(&tb, NULL, &o, k ? &prog : NULL, &m, NULL, &d), 0);
        assert_int_equal(reel_xgb_n_trees(m), 20);
        char name[16];
        snprintf(name, sizeof name, "d%d.json", k);
        char *path = test_path(dir, name);
        assert_int_equal(reel_xgb_save(m, path, &d), 0);
        json_error_t je;
        json_t *j = json_load_file(path, 0, &je);
        assert_non_null(j);
        text[k] = json_dumps(j, JSON_SORT_KEYS);
        json_decref(j);
        free(path);
        reel_xgb_free(m);
    }
    assert_string_equal(text[0], text[1]);
    free(text[0]);
    free(text[1]);

    reel_diag d;
    reel_diag_clear(&d);
    reel_xgb *m = NULL;
    tb.y[5] = 2; /* not a binary label */
    assert_int_equal(reel_xgb_train(&tb, NULL, &o, NULL, &m, NULL, &d),
                     REEL_EINVAL);
    assert_non_null(strstr(d.msg, "row 5"));
    tb.y[5] = 1;
    o.base_score = 1.5;
    assert_int_equal(reel_xgb_train(&tb, NULL, &o, NULL, &m, NULL, &d),
                     REEL_EINVAL);
    o.base_score = 0.5;
    o.metric = "no-such-metric";
    reel_rows va;
    synth(&va, 100, 42, 0);
    assert_int_equal(reel_xgb_train(&tb, &va, &o, NULL, &m, NULL, &d),
                     REEL_EINVAL);
    assert_non_null(strstr(d.msg, "libxgboost"));
    assert_null(m);
    /* Errors from libxgboost come through with its text. */
    char *junk = test_write_file(dir, "junk.json", "{\"learner\": 1}");
    assert_int_equal(reel_xgb_load(junk, &m, &d), REEL_EFORMAT);
    assert_non_null(strstr(d.msg, "XGBoosterLoadModel"));
    free(junk);
    char *none = test_path(dir, "none.json");
    assert_int_equal(reel_xgb_load(none, &m, &d), REEL_ENOENT);
    free(none);
    reel_rows_free(&va);
    reel_rows_free(&tb);
    test_rmtree(dir);
    free(dir);
}

/* Loads `text` from a file and expects `rc` with `needle` in the diag. */
static void refused(const char *dir, const char *text, int rc,
                    const char *needle)
{
    char *path = test_write_file(dir, "bad.json", text);
    reel_gbtree *g = (reel_gbtree *)1;
    reel_diag d;
    reel_diag_clear(&d);
    int got = reel_gbtree_load(path, &g, &d);
    if (got != rc || !strstr(d.msg, needle))
        fprintf(stderr, "got %s \"%s\", wanted %s \"%s\"\n", reel_errname(got),
                d.msg, reel_errname(rc), needle);
    assert_int_equal(got, rc);
    assert_null(g);
    assert_non_null(strstr(d.msg, needle));
    assert_ptr_equal(d.file, path);
    free(path);
}

/* Sets path (keys and indices joined by dots, "#3" meaning index 3) in
 * root to the JSON value `v`. */
static void set_at(json_t *root, const char *path, const char *v)
{
    json_t *at = root, *parent = NULL;
    char keys[256];
    snprintf(keys, sizeof keys, "%s", path);
    char *last = NULL, *save = NULL;
    for (char *k = strtok_r(keys, ".", &save); k;
         k = strtok_r(NULL, ".", &save)) {
        if (last) {
            parent = at;
            at = last[0] == '#'
                     ? json_array_get(parent, strtoul(last + 1, NULL, 10))
                     : json_object_get(parent, last);
            assert_non_null(at);
        }
        last = k;
    }
    json_t *nv = json_loads(v, JSON_DECODE_ANY, NULL);
    assert_non_null(nv);
    if (last[0] == '#')
        assert_int_equal(
            json_array_set_new(at, strtoul(last + 1, NULL, 10), nv), 0);
    else
        assert_int_equal(json_object_set_new(at, last, nv), 0);
}

/* The handmade model with one or two values changed. */
static char *mutate(const char *path, const char *v, const char *path2,
                    const char *v2)
{
    json_t *root = json_loads(handmade, 0, NULL);
    assert_non_null(root);
    set_at(root, path, v);
    if (path2)
        set_at(root, path2, v2);
    char *s = json_dumps(root, 0);
    json_decref(root);
    return s;
}

static void corrupt_models_are_refused(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    static const struct {
        const char *path, *value;
        int rc;
        const char *needle, *path2, *value2;
    } cases[] = {
/* One change; the entry with two spells them out. */
#define C(p, v, rc, needle) {p, v, rc, needle, NULL, NULL}
#define T0 "learner.gradient_booster.model.trees.#0."
        C(T0 "left_children.#0", "9", REEL_EFORMAT, "node 0 has children 9"),
        C(T0 "left_children.#1", "-1", REEL_EFORMAT, "node 1 has children -1"),
        C(T0 "right_children.#0", "3", REEL_EFORMAT, "left + 1"),
        /* Leaf 3 pointing back at nodes 1 and 2: node 1 is reached twice. */
        {T0 "left_children.#3", "1", REEL_EFORMAT, "reached twice",
         T0 "right_children.#3", "2"},
        C(T0 "split_indices.#1", "2", REEL_EFORMAT, "feature 2"),
        C(T0 "split_indices.#0", "-1", REEL_EFORMAT, "split_indices[0]"),
        C(T0 "split_conditions.#1", "\"x\"", REEL_EFORMAT,
          "split_conditions[1]"),
        C(T0 "split_conditions.#2", "1e300", REEL_EFORMAT, "finite"),
        C(T0 "sum_hessian", "[10, 4, 6]", REEL_EFORMAT, "3 entries"),
        C(T0 "sum_hessian.#1", "-1", REEL_EFORMAT, "negative"),
        C(T0 "default_left.#1", "2", REEL_EFORMAT, "default_left[1]"),
        C(T0 "tree_param.num_nodes", "\"6\"", REEL_EFORMAT, "num_nodes is 6"),
        C(T0 "tree_param.num_nodes", "\"0\"", REEL_EFORMAT, "num_nodes is 0"),
        C(T0 "id", "1", REEL_EFORMAT, "used twice"),
        C(T0 "id", "2", REEL_EFORMAT, "id 2"),
        C(T0 "split_type.#0", "1", REEL_EUNSUPPORTED, "categorical"),
        C(T0 "categories_nodes", "[0]", REEL_EUNSUPPORTED, "categorical"),
        C("learner.gradient_booster.model.gbtree_model_param.num_trees",
          "\"3\"", REEL_EFORMAT, "num_trees"),
        C("learner.gradient_booster.model.tree_info.#1", "1", REEL_EUNSUPPORTED,
          "output"),
        C("learner.gradient_booster.name", "\"dart\"", REEL_EUNSUPPORTED,
          "dart"),
        C("learner.gradient_booster.name", "\"gblinear\"", REEL_EUNSUPPORTED,
          "gblinear"),
        C("learner.learner_model_param.base_score", "\"abc\"", REEL_EFORMAT,
          "base_score"),
        C("learner.learner_model_param.base_score", "\"1.5\"", REEL_EFORMAT,
          "not in (0, 1)"),
        C("learner.learner_model_param.num_feature", "\"x\"", REEL_EFORMAT,
          "num_feature"),
        C("learner.learner_model_param.num_class", "\"3\"", REEL_EUNSUPPORTED,
          "num_class 3"),
        C("learner.objective.name", "\"multi:softprob\"", REEL_EUNSUPPORTED,
          "multi:softprob"),
        C("learner.objective", "[]", REEL_EFORMAT, "\"objective\" is an array"),
        C("version", "[3, 0, 0]", REEL_EVERSION, "version 3"),
#undef T0
#undef C
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = mutate(cases[i].path, cases[i].value, cases[i].path2,
                            cases[i].value2);
        refused(dir, text, cases[i].rc, cases[i].needle);
        free(text);
    }
    /* Truncated, not JSON, empty, JSON of the wrong shape. */
    char *half = strndup(handmade, strlen(handmade) / 2);
    refused(dir, half, REEL_EFORMAT, "not JSON");
    free(half);
    refused(dir, "xgboost model", REEL_EFORMAT, "not JSON");
    refused(dir, "", REEL_EFORMAT, "not JSON");
    refused(dir, "[1, 2]", REEL_EFORMAT, "not an object");
    refused(dir, "{\"version\": [1, 7, 4]}", REEL_EFORMAT, "no \"learner\"");
    /* A file that is not there. */
    reel_gbtree *g;
    reel_diag d;
    char *none = test_path(dir, "none.json");
    assert_int_equal(reel_gbtree_load(none, &g, &d), REEL_ENOENT);
    free(none);
    /* The unmodified model loads: the cases above fail for their change. */
    assert_int_equal(reel_gbtree_parse(handmade, strlen(handmade), &g, &d), 0);
    reel_gbtree_free(g);
    reel_gbtree_free(NULL);
    reel_xgb_free(NULL);
    test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(auc_and_logloss_match_hand_computations),
        cmocka_unit_test(handmade_model_scores_by_hand),
        cmocka_unit_test(gbtree_matches_libxgboost),
        cmocka_unit_test(contributions_match_libxgboost),
        cmocka_unit_test(early_stopping_keeps_the_best_trees),
        cmocka_unit_test(training_is_deterministic_and_checks_input),
        cmocka_unit_test(corrupt_models_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
