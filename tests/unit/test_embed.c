/* Unit tests of src/embed: item2vec and ALS recover planted structure,
 * one thread is deterministic, the BLAS Gram matrix agrees with its naive
 * twin, the recency-weighted query agrees with its naive twin, the vectors
 * file round-trips. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "embed/als.h"
#include "embed/coldstart.h"
#include "embed/item2vec.h"
#include "embed/vectors.h"

/* 200 users, 40 items in two groups; each user's sequence stays in one
 * group, so items of a group share contexts and nothing else. */
static void planted(reel_inter *x)
{
    const uint32_t nu = 200, len = 30;
    memset(x, 0, sizeof *x);
    x->n_users = nu;
    x->n_items = 40;
    x->off = calloc(nu + 1, sizeof *x->off);
    x->item = malloc(nu * len * sizeof *x->item);
    reel_rng r;
    reel_rng_seed(&r, 3);
    for (uint32_t u = 0; u < nu; u++) {
        uint32_t g = u % 2;
        for (uint32_t k = 0; k < len; k++)
            x->item[u * len + k] = g * 20 + (uint32_t)reel_rng_below(&r, 20);
        x->off[u + 1] = (u + 1) * len;
    }
}

static double cosine(const float *a, const float *b, uint32_t d)
{
    double s = 0;
    for (uint32_t i = 0; i < d; i++)
        s += (double)a[i] * b[i];
    return s; /* rows are unit vectors */
}

static void item2vec_recovers_planted_groups(void **state)
{
    (void)state;
    reel_inter x;
    planted(&x);
    reel_item2vec_opts o = reel_item2vec_opts_default();
    o.dim = 16;
    o.epochs = 5;
    o.threads = 1;
    o.window = 5;
    o.prior = 0;
    reel_vectors *v;
    assert_int_equal(reel_item2vec_train(&x, &o, NULL, &v), 0);
    assert_true(v->unit_norm && !v->prior && v->dim == 16);
    uint32_t right = 0;
    double within = 0, across = 0;
    for (uint32_t i = 0; i < 40; i++) {
        assert_true(v->has[i]);
        double best = -2;
        uint32_t arg = 0;
        for (uint32_t j = 0; j < 40; j++) {
            if (j == i)
                continue;
            double c =
                cosine(reel_vectors_row(v, i), reel_vectors_row(v, j), 16);
            if ((i < 20) == (j < 20))
                within += c;
            else
                across += c;
            if (c > best) {
                best = c;
                arg = j;
            }
        }
        right += (i < 20) == (arg < 20);
    }
    assert_int_equal(right, 40);
    assert_true(within / (40 * 19 - 400) > across / 800 + 0.3);
    /* One thread and one seed: the same vectors, bit for bit. */
    reel_vectors *w;
    assert_int_equal(reel_item2vec_train(&x, &o, NULL, &w), 0);
    assert_memory_equal(v->data, w->data, 40 * 16 * sizeof(float));
    reel_vectors_free(v);
    reel_vectors_free(w);
    free(x.off);
    free(x.item);
}

/* The popularity prior: the last coordinate is w ln((c + 1) / C), the rest
 * the same unit vectors as without it; queries follow the format's rule. */
static void item2vec_prior_and_query(void **state)
{
    (void)state;
    reel_inter x;
    planted(&x);
    /* Make item 3 the most popular: every user ends with it. */
    for (uint32_t u = 0; u < x.n_users; u++)
        x.item[x.off[u + 1] - 1] = 3;
    reel_item2vec_opts o = reel_item2vec_opts_default();
    o.dim = 8;
    o.epochs = 2;
    o.threads = 1;
    o.prior = 0;
    reel_vectors *plain, *v;
    assert_int_equal(reel_item2vec_train(&x, &o, NULL, &plain), 0);
    o.prior = 0.5;
    assert_int_equal(reel_item2vec_train(&x, &o, NULL, &v), 0);
    assert_true(v->prior && !v->unit_norm && v->dim == 9);
    assert_false(reel_vectors_by_cosine(v));
    uint32_t *count = calloc(40, sizeof *count);
    for (uint64_t k = 0; k < x.off[x.n_users]; k++)
        count[x.item[k]]++;
    double total = (double)x.off[x.n_users];
    for (uint32_t i = 0; i < 40; i++) {
        const float *r = reel_vectors_row(v, i);
        assert_memory_equal(r, reel_vectors_row(plain, i), 8 * sizeof(float));
        assert_float_equal(r[8], 0.5 * log((count[i] + 1) / total), 1e-6);
    }
    /* The query: unit mean of the last 2 items' vectors, then 1. */
    uint32_t hist[3] = {5, 7, 9};
    float q[9];
    assert_int_equal(reel_vectors_query(v, hist, 3, 2, q), 2);
    double n2 = 0;
    for (uint32_t j = 0; j < 8; j++) {
        float mean = reel_vectors_row(v, 7)[j] + reel_vectors_row(v, 9)[j];
        n2 += (double)q[j] * q[j];
        assert_true(q[j] * mean >= 0);
    }
    assert_float_equal(n2, 1, 1e-5);
    assert_float_equal(q[8], 1, 0);
    /* Without the prior the query is the plain mean. */
    assert_int_equal(reel_vectors_query(plain, hist, 3, 10, q), 3);
    for (uint32_t j = 0; j < 8; j++)
        assert_float_equal(q[j],
                           (reel_vectors_row(plain, 5)[j] +
                            reel_vectors_row(plain, 7)[j] +
                            reel_vectors_row(plain, 9)[j]) /
                               3,
                           1e-6);
    free(count);
    reel_vectors_free(plain);
    reel_vectors_free(v);
    free(x.off);
    free(x.item);
}

/* The slow twin of reel_vectors_query_decay(): the weighted mean in
 * double, straight from the definition (the i-th newest item with a
 * vector weighs decay^i; with a prior, the first dim - 1 coordinates
 * scaled to unit length and the last set to 1). */
static uint32_t naive_query(const reel_vectors *v, const uint32_t *items,
                            uint32_t n, uint32_t last_n, double decay,
                            double *q)
{
    uint32_t used = 0;
    double wsum = 0;
    memset(q, 0, v->dim * sizeof *q);
    for (uint32_t h = n; h > 0 && used < last_n; h--) {
        uint32_t it = items[h - 1];
        if (it >= v->n || !v->has[it])
            continue;
        double w = pow(decay, used);
        for (uint32_t j = 0; j < v->dim; j++)
            q[j] += w * reel_vectors_row(v, it)[j];
        wsum += w;
        used++;
    }
    if (!used)
        return 0;
    if (!v->prior) {
        for (uint32_t j = 0; j < v->dim; j++)
            q[j] /= wsum;
        return used;
    }
    double n2 = 0;
    for (uint32_t j = 0; j + 1 < v->dim; j++)
        n2 += q[j] * q[j];
    for (uint32_t j = 0; j + 1 < v->dim; j++)
        q[j] /= sqrt(n2);
    q[v->dim - 1] = 1;
    return used;
}

/* The recency-weighted query agrees with its naive twin within 1e-5 per
 * coordinate (float sums of at most 40 standard normal terms, and float
 * weights from repeated products, against double ones: the errors are near
 * 1e-6), with and without a prior, over histories with absent items and
 * out-of-range ids; decay 1 gives reel_vectors_query()'s exact floats. */
static void query_decay_agrees_with_naive_weighted_mean(void **state)
{
    (void)state;
    enum { N = 50, DIM = 9, HIST = 40 };
    reel_rng r;
    reel_rng_seed(&r, 11);
    for (int prior = 0; prior <= 1; prior++) {
        reel_vectors *v;
        reel_vectors_new(N, DIM, "{\"method\":\"test\"}", &v);
        v->prior = prior;
        for (uint32_t i = 0; i < N; i++) {
            v->has[i] = i % 7 != 3; /* every 7th row absent */
            for (uint32_t j = 0; j < DIM; j++)
                reel_vectors_row(v, i)[j] = (float)(reel_rng_normal(&r));
        }
        uint32_t items[HIST];
        for (uint32_t h = 0; h < HIST; h++)
            items[h] = (uint32_t)reel_rng_below(&r, N + 5); /* some >= N */
        static const float decays[] = {1, 0.9f, 0.8f, 0.7f, 0.5f, 0.01f};
        static const uint32_t lasts[] = {1, 3, 10, 32, 1000};
        float q[DIM], m[DIM];
        double t[DIM];
        for (size_t a = 0; a < sizeof decays / sizeof *decays; a++)
            for (size_t b = 0; b < sizeof lasts / sizeof *lasts; b++) {
                uint32_t got = reel_vectors_query_decay(v, items, HIST,
                                                        lasts[b], decays[a], q);
                uint32_t want =
                    naive_query(v, items, HIST, lasts[b], decays[a], t);
                assert_int_equal(got, want);
                for (uint32_t j = 0; j < DIM; j++)
                    assert_float_equal(q[j], t[j], 1e-5);
                if (decays[a] == 1) {
                    reel_vectors_query(v, items, HIST, lasts[b], m);
                    assert_memory_equal(q, m, sizeof q);
                }
            }
        /* A steep decay leaves (about) the newest usable item alone. */
        uint32_t two[2] = {0, 1};
        reel_vectors_query_decay(v, two, 2, 10, 1e-6f, q);
        if (!prior)
            for (uint32_t j = 0; j < DIM; j++)
                assert_float_equal(q[j], reel_vectors_row(v, 1)[j], 1e-5);
        /* No usable item: zeros, 0 used. */
        uint32_t none[2] = {3, N + 1};
        assert_int_equal(reel_vectors_query_decay(v, none, 2, 10, 0.8f, q), 0);
        for (uint32_t j = 0; j < DIM; j++)
            assert_float_equal(q[j], 0, 0);
        reel_vectors_free(v);
    }
}

/* Fraction of items whose nearest other item is in the same group. */
static double group_purity(const reel_vectors *v)
{
    uint32_t right = 0;
    for (uint32_t i = 0; i < 40; i++) {
        double best = -2;
        uint32_t arg = 0;
        for (uint32_t j = 0; j < 40; j++) {
            if (j == i)
                continue;
            double c =
                cosine(reel_vectors_row(v, i), reel_vectors_row(v, j), v->dim);
            if (c > best) {
                best = c;
                arg = j;
            }
        }
        right += (i < 20) == (arg < 20);
    }
    return right / 40.0;
}

static void als_recovers_planted_groups(void **state)
{
    (void)state;
    reel_inter x;
    planted(&x);
    reel_als_opts o = reel_als_opts_default();
    o.dim = 8; /* above the true rank (2): regularisation must hold */
    o.iterations = 10;
    o.lambda = 10;
    o.threads = 2;
    reel_vectors *v;
    assert_int_equal(reel_als_train(&x, &o, NULL, &v), 0);
    assert_false(v->unit_norm);
    reel_vectors_normalize(v); /* purity is judged by cosine */
    assert_true(group_purity(v) == 1.0);
    reel_vectors_free(v);
    free(x.off);
    free(x.item);
}

/* The BLAS Gram matrix (fast path) equals the naive triple loop. */
static void gram_fast_and_naive_agree(void **state)
{
    (void)state;
    enum { N = 301, D = 37 };
    float *f = malloc(N * D * sizeof *f), g1[D * D], g2[D * D];
    reel_rng r;
    reel_rng_seed(&r, 9);
    for (int i = 0; i < N * D; i++)
        f[i] = (float)reel_rng_normal(&r);
    reel_als_gram(f, N, D, g1);
    reel_als_gram_naive(f, N, D, g2);
    for (int i = 0; i < D * D; i++)
        assert_float_equal(g1[i], g2[i], 1e-3 * fmax(1, fabs(g2[i])));
    free(f);
    /* And the Cholesky solve: A = [[4, 2], [2, 3]], b = [2, 1] -> x =
     * [0.5, 0]; an indefinite matrix is refused. */
    float a[4] = {4, 2, 2, 3}, b[2] = {2, 1};
    assert_int_equal(reel_als_solve(a, b, 2), 0);
    assert_float_equal(b[0], 0.5, 1e-6);
    assert_float_equal(b[1], 0.0, 1e-6);
    float bad[4] = {1, 2, 2, 1}, bb[2] = {1, 1};
    assert_int_equal(reel_als_solve(bad, bb, 2), REEL_ERANGE);
}

/* The ridge map from X to Y = X is the identity (lambda near 0). */
static void ridge_map_is_identity_on_a_toy_case(void **state)
{
    (void)state;
    enum { N = 200, F = 10 };
    float *x = malloc(N * F * sizeof *x), w[F * F];
    reel_rng r;
    reel_rng_seed(&r, 4);
    for (int i = 0; i < N * F; i++)
        x[i] = (float)reel_rng_normal(&r);
    assert_int_equal(reel_ridge_fit(x, x, NULL, N, F, F, 1e-6, w), 0);
    for (int i = 0; i < F; i++)
        for (int j = 0; j < F; j++)
            assert_float_equal(w[i * F + j], i == j, 1e-3);
    free(x);
}

/* BLAS ridge against the naive twin: random X and Y, rows in use by a
 * mask, odd sizes. */
static void ridge_fit_agrees_with_naive(void **state)
{
    (void)state;
    enum { N = 700, F = 37, D = 13 };
    float *x = malloc(N * F * sizeof *x), *y = malloc(N * D * sizeof *y);
    float *w = malloc(F * D * sizeof *w), *wn = malloc(F * D * sizeof *wn);
    uint8_t use[N];
    reel_rng r;
    reel_rng_seed(&r, 9);
    for (int i = 0; i < N * F; i++)
        x[i] = (float)reel_rng_normal(&r);
    for (int i = 0; i < N * D; i++)
        y[i] = (float)reel_rng_normal(&r);
    for (int i = 0; i < N; i++)
        use[i] = reel_rng_below(&r, 4) != 0;
    assert_int_equal(reel_ridge_fit(x, y, use, N, F, D, 3.0, w), 0);
    assert_int_equal(reel_ridge_fit_naive(x, y, use, N, F, D, 3.0, wn), 0);
    for (int i = 0; i < F * D; i++)
        assert_float_equal(w[i], wn[i], 1e-4);
    free(x);
    free(y);
    free(w);
    free(wn);
}

/* Cold videos land next to the warm videos of their category. */
static void cold_videos_map_to_their_category(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_dsbuild *b;
    reel_dsbuild_new(&b);
    reel_diag d;
    const char *cats[2][1] = {{"Drama"}, {"Comedy"}};
    for (int i = 0; i < 24; i++) {
        char id[8];
        snprintf(id, sizeof id, "v%d", i);
        reel_video_rec v = reel_video_rec_empty();
        v.id = id;
        v.categories = cats[i % 2];
        v.n_categories = 1;
        assert_int_equal(reel_dsbuild_add_video(b, &v, NULL, &d), 0);
    }
    assert_int_equal(reel_dsbuild_write(b, dir, &d), 0);
    reel_dsbuild_free(b);
    reel_dataset *ds;
    assert_int_equal(reel_dataset_open(dir, &ds, &d), 0);
    reel_vectors *cf;
    reel_vectors_new(24, 2, "{}", &cf);
    for (uint32_t i = 0; i < 20; i++) { /* videos 20..23 are cold */
        reel_vectors_row(cf, i)[i % 2] = 1;
        cf->has[i] = 1;
    }
    cf->unit_norm = 1;
    uint32_t filled;
    assert_int_equal(reel_cold_fill(ds, NULL, cf, 0.1, &filled), 0);
    assert_int_equal(filled, 4);
    for (uint32_t i = 20; i < 24; i++) {
        assert_true(cf->has[i]);
        const float *r = reel_vectors_row(cf, i);
        assert_true(r[i % 2] > 0.99f && fabsf(r[1 - i % 2]) < 0.1f);
    }
    reel_vectors_free(cf);
    reel_dataset_close(ds);
    test_rmtree(dir);
    free(dir);
}

static void vectors_file_round_trips_by_id(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_dsbuild *b;
    reel_dsbuild_new(&b);
    reel_dsbuild_video_ref(b, "a", 1);
    reel_dsbuild_video_ref(b, "b", 1);
    reel_dsbuild_video_ref(b, "c", 1);
    reel_diag d;
    assert_int_equal(reel_dsbuild_write(b, dir, &d), 0);
    reel_dataset *ds;
    assert_int_equal(reel_dataset_open(dir, &ds, &d), 0);
    reel_vectors *v;
    reel_vectors_new(3, 2, "{\"method\":\"test\"}", &v);
    float *r0 = reel_vectors_row(v, 0), *r2 = reel_vectors_row(v, 2);
    r0[0] = 3;
    r0[1] = 4;
    r2[0] = 1;
    v->has[0] = v->has[2] = 1;
    reel_vectors_normalize(v);
    assert_float_equal(r0[0], 0.6f, 1e-6);
    char *path = test_path(dir, "v.reel");
    v->prior = 1; /* the flag round-trips */
    assert_int_equal(reel_vectors_save(v, ds, path, &d), 0);
    reel_dataset_close(ds);
    /* A grown catalogue in another order still lines up by id. */
    reel_dsbuild_video_ref(b, "z", 1);
    char *dir2 = test_tmpdir();
    assert_int_equal(reel_dsbuild_write(b, dir2, &d), 0);
    reel_dsbuild_free(b);
    assert_int_equal(reel_dataset_open(dir2, &ds, &d), 0);
    reel_vectors *w;
    assert_int_equal(reel_vectors_load(path, ds, &w, &d), 0);
    assert_int_equal(w->n, 4);
    assert_true(w->has[0] && !w->has[1] && w->has[2] && !w->has[3]);
    assert_float_equal(reel_vectors_row(w, 0)[1], 0.8f, 1e-6);
    assert_string_equal(w->source, "{\"method\":\"test\"}");
    assert_true(w->prior && w->unit_norm);
    reel_vectors *cc;
    reel_vectors_concat(v, w, &cc);
    assert_int_equal(cc->dim, 4);
    assert_true(cc->has[0] && !cc->has[1]);
    assert_false(cc->prior);
    reel_vectors_free(cc);
    reel_vectors_free(w);
    reel_vectors_free(v);
    reel_dataset_close(ds);
    free(path);
    test_rmtree(dir);
    test_rmtree(dir2);
    free(dir);
    free(dir2);
}

static void vectors_grow_adds_absent_rows_and_never_shrinks(void **state)
{
    (void)state;
    reel_vectors *v;
    reel_vectors_new(3, 2, NULL, &v);
    for (uint32_t i = 0; i < 3; i++) {
        reel_vectors_row(v, i)[0] = (float)i + 1;
        reel_vectors_row(v, i)[1] = -(float)i;
        v->has[i] = i != 1;
    }
    v->unit_norm = 1;
    reel_vectors_grow(v, 1000);
    assert_int_equal(v->n, 1000);
    assert_int_equal(v->dim, 2);
    assert_true(v->unit_norm);
    for (uint32_t i = 0; i < 3; i++) {
        assert_float_equal(reel_vectors_row(v, i)[0], (float)i + 1, 0);
        assert_float_equal(reel_vectors_row(v, i)[1], -(float)i, 0);
        assert_int_equal(v->has[i], i != 1);
    }
    for (uint32_t i = 3; i < 1000; i++) {
        assert_false(v->has[i]);
        assert_float_equal(reel_vectors_row(v, i)[0], 0, 0);
        assert_float_equal(reel_vectors_row(v, i)[1], 0, 0);
    }
    /* A new row can be filled; a query over it uses it. */
    reel_vectors_row(v, 999)[0] = 1;
    v->has[999] = 1;
    float q[2];
    uint32_t items[] = {999};
    assert_int_equal(reel_vectors_query(v, items, 1, 10, q), 1);
    assert_float_equal(q[0], 1, 1e-6);
    reel_vectors_grow(v, 10);
    assert_int_equal(v->n, 1000);
    assert_true(v->has[999]);
    reel_vectors_free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(item2vec_recovers_planted_groups),
        cmocka_unit_test(item2vec_prior_and_query),
        cmocka_unit_test(query_decay_agrees_with_naive_weighted_mean),
        cmocka_unit_test(als_recovers_planted_groups),
        cmocka_unit_test(gram_fast_and_naive_agree),
        cmocka_unit_test(ridge_map_is_identity_on_a_toy_case),
        cmocka_unit_test(ridge_fit_agrees_with_naive),
        cmocka_unit_test(cold_videos_map_to_their_category),
        cmocka_unit_test(vectors_file_round_trips_by_id),
        cmocka_unit_test(vectors_grow_adds_absent_rows_and_never_shrinks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
