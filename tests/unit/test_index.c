/* Unit tests of src/index: SIMD kernels against their scalar twins, FLAT
 * against a naive scan, HNSW against FLAT (recall), filters, deletes,
 * updates, compact vectors, save/load, damaged files, concurrency. */
#include "testutil.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/rng.h"
#include "base/secfile.h"
#include "base/vecfile.h"
#include "index/distance.h"
#include "index/index.h"

/* Clustered data: a Gaussian mixture in a low-rank subspace plus noise,
 * the shape real embeddings have (and harder than uniform noise). */
static float *clustered(uint32_t n, uint32_t d, uint64_t seed)
{
    reel_rng r;
    reel_rng_seed(&r, seed);
    enum { C = 200 };
    uint32_t rank = d / 4 ? d / 4 : 1;
    float *basis = malloc((size_t)rank * d * sizeof *basis);
    float *centers = malloc((size_t)C * rank * sizeof *centers);
    for (size_t i = 0; i < (size_t)rank * d; i++)
        basis[i] = (float)reel_rng_normal(&r);
    for (size_t i = 0; i < (size_t)C * rank; i++)
        centers[i] = 3.0f * (float)reel_rng_normal(&r);
    float *x = calloc((size_t)n * d, sizeof *x);
    float *z = malloc(rank * sizeof *z);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t c = (uint32_t)reel_rng_below(&r, C);
        for (uint32_t j = 0; j < rank; j++)
            z[j] = centers[c * rank + j] + (float)reel_rng_normal(&r);
        for (uint32_t j = 0; j < rank; j++)
            for (uint32_t t = 0; t < d; t++)
                x[(size_t)i * d + t] += z[j] * basis[(size_t)j * d + t];
        for (uint32_t t = 0; t < d; t++)
            x[(size_t)i * d + t] += 0.5f * (float)reel_rng_normal(&r);
    }
    free(basis);
    free(centers);
    free(z);
    return x;
}

static reel_index *build(enum reel_index_kind kind, enum reel_metric m,
                         enum reel_vec_storage st, const float *x, uint32_t n,
                         uint32_t d, int threads)
{
    reel_index_opts o = reel_index_opts_default(kind, m, d);
    o.storage = st;
    reel_index *ix;
    reel_diag dg;
    assert_int_equal(reel_index_new(&o, &ix, &dg), 0);
    assert_int_equal(reel_index_add_batch(ix, 0, x, n, threads, NULL), 0);
    return ix;
}

/* recall@k of `ix` against `ref` over nq queries. */
static double recall(const reel_index *ix, const reel_index *ref,
                     const float *q, uint32_t nq, uint32_t d, uint32_t k,
                     uint32_t ef, const reel_filter *f)
{
    reel_hit a[64], b[64];
    uint32_t na, nb, hit = 0, total = 0;
    reel_search_params pa = {.ef = ef, .filter = f}, pb = {.filter = f};
    for (uint32_t i = 0; i < nq; i++) {
        assert_int_equal(
            reel_index_search(ix, q + (size_t)i * d, k, &pa, a, &na), 0);
        assert_int_equal(
            reel_index_search(ref, q + (size_t)i * d, k, &pb, b, &nb), 0);
        for (uint32_t x = 0; x < nb; x++)
            for (uint32_t y = 0; y < na; y++)
                if (a[y].id == b[x].id) {
                    hit++;
                    break;
                }
        total += nb;
    }
    return total ? (double)hit / total : 1.0;
}

static void kernels_agree_with_scalar_twins(void **state)
{
    (void)state;
    const char *names[] = {"avx2", "avx512"};
    reel_rng r;
    reel_rng_seed(&r, 5);
    float a[700], b[700];
    uint16_t bb[700];
    int8_t bi[700];
    for (int i = 0; i < 700; i++) {
        a[i] = (float)reel_rng_normal(&r);
        b[i] = (float)reel_rng_normal(&r);
        bb[i] = reel_bf16_from_f32(b[i]);
        bi[i] = (int8_t)((int)reel_rng_below(&r, 255) - 127);
    }
    const reel_dist_kernels *s = reel_dist_by_name("scalar");
    assert_non_null(s);
    for (int n = 0; n < 2; n++) {
        const reel_dist_kernels *k = reel_dist_by_name(names[n]);
        if (!k)
            continue; /* this CPU lacks it */
        for (size_t d = 1; d <= 700; d += (d < 40 ? 1 : 37)) {
            float tol = 1e-5f * (float)d;
            assert_float_equal(k->ip(a, b, d), s->ip(a, b, d), tol);
            assert_float_equal(k->l2sq(a, b, d), s->l2sq(a, b, d), tol * 4);
            assert_float_equal(k->ip_bf16(a, bb, d), s->ip_bf16(a, bb, d), tol);
            assert_float_equal(k->l2sq_bf16(a, bb, d), s->l2sq_bf16(a, bb, d),
                               tol * 4);
            assert_float_equal(k->ip_i8(a, bi, d), s->ip_i8(a, bi, d),
                               tol * 100);
            const float *x4[4] = {b, a, b + 1, a + 2};
            float o4[4], r4[4];
            size_t d4 = d > 690 ? 690 : d;
            k->ip_x4(a, x4, d4, o4);
            s->ip_x4(a, x4, d4, r4);
            for (int t = 0; t < 4; t++)
                assert_float_equal(o4[t], r4[t], tol * 4);
            k->l2sq_x4(a, x4, d4, o4);
            s->l2sq_x4(a, x4, d4, r4);
            for (int t = 0; t < 4; t++)
                assert_float_equal(o4[t], r4[t], tol * 8);
        }
    }
    /* bf16 rounds to nearest even and keeps NaN a NaN. */
    assert_int_equal(reel_bf16_from_f32(1.0f), 0x3f80);
    assert_true(reel_bf16_to_f32(reel_bf16_from_f32(3.14159f)) - 3.140625f ==
                0.0f);
    assert_true(isnan(reel_bf16_to_f32(reel_bf16_from_f32(NAN))));
}

/* FLAT (the fast blocked scan) returns exactly what a naive scan does. */
static void flat_matches_naive_scan(void **state)
{
    (void)state;
    const uint32_t n = 3000, d = 19, k = 10;
    float *x = clustered(n, d, 1), *q = clustered(20, d, 2);
    for (int m = 0; m < 3; m++) {
        reel_index *ix = build(REEL_INDEX_FLAT, (enum reel_metric)m,
                               REEL_VEC_F32, x, n, d, 1);
        for (uint32_t i = 0; i < 20; i++) {
            const float *qi = q + (size_t)i * d;
            reel_hit h[10];
            uint32_t nh;
            assert_int_equal(reel_index_search(ix, qi, k, NULL, h, &nh), 0);
            assert_int_equal(nh, k);
            /* The naive k-th best distance, by sorting all. */
            float *all = malloc(n * sizeof *all);
            double qn = 0;
            for (uint32_t t = 0; t < d; t++)
                qn += qi[t] * qi[t];
            for (uint32_t j = 0; j < n; j++) {
                const float *xj = x + (size_t)j * d;
                double ip = 0, l2 = 0, xn = 0;
                for (uint32_t t = 0; t < d; t++) {
                    ip += qi[t] * xj[t];
                    l2 += (qi[t] - xj[t]) * (qi[t] - xj[t]);
                    xn += xj[t] * xj[t];
                }
                all[j] = m == REEL_METRIC_IP ? (float)-ip
                         : m == REEL_METRIC_COSINE
                             ? (float)(1 - ip / sqrt(qn * xn))
                             : (float)l2;
            }
            for (uint32_t j = 0; j < k; j++)
                assert_float_equal(h[j].dist, all[h[j].id],
                                   1e-3f * fmaxf(1, fabsf(all[h[j].id])));
            /* Nothing outside the result is nearer than its last item. */
            uint32_t nearer = 0;
            for (uint32_t j = 0; j < n; j++)
                nearer += all[j] < h[k - 1].dist -
                                       1e-3f * fmaxf(1, fabsf(h[k - 1].dist));
            assert_true(nearer < k);
            free(all);
        }
        reel_index_free(ix);
    }
    free(x);
    free(q);
}

static void hnsw_recall_at_default_ef(void **state)
{
    (void)state;
    const uint32_t n = 8000, d = 32, nq = 200;
    float *x = clustered(n, d, 3), *q = clustered(nq, d, 4);
    for (int m = 0; m < 3; m++) {
        reel_index *flat = build(REEL_INDEX_FLAT, (enum reel_metric)m,
                                 REEL_VEC_F32, x, n, d, 1);
        reel_index *h = build(REEL_INDEX_HNSW, (enum reel_metric)m,
                              REEL_VEC_F32, x, n, d, 2);
        double r = recall(h, flat, q, nq, d, 10, 0, NULL);
        if (r < 0.95)
            fail_msg("metric %d: recall@10 %.3f < 0.95", m, r);
        reel_index_free(h);
        reel_index_free(flat);
    }
    free(x);
    free(q);
}

/* A parallel build leaves no item without a way in: searching for each
 * item's own vector finds it (a race once orphaned items whose only
 * in-link was overwritten). */
static void every_item_is_reachable_after_a_parallel_build(void **state)
{
    (void)state;
    const uint32_t n = 6000, d = 16;
    float *x = clustered(n, d, 20);
    reel_index *h =
        build(REEL_INDEX_HNSW, REEL_METRIC_L2, REEL_VEC_F32, x, n, d, 2);
    reel_search_params p = {.ef = 200};
    uint32_t missing = 0;
    for (uint32_t i = 0; i < n; i++) {
        reel_hit top[1];
        uint32_t nt;
        assert_int_equal(
            reel_index_search(h, x + (size_t)i * d, 1, &p, top, &nt), 0);
        missing += top[0].id != i;
    }
    assert_int_equal(missing, 0);
    reel_index_free(h);
    free(x);
}

static void compact_vectors_keep_recall(void **state)
{
    (void)state;
    const uint32_t n = 6000, d = 48, nq = 150;
    float *x = clustered(n, d, 5), *q = clustered(nq, d, 6);
    reel_index *flat =
        build(REEL_INDEX_FLAT, REEL_METRIC_L2, REEL_VEC_F32, x, n, d, 1);
    for (int st = 1; st <= 2; st++) {
        reel_index *h = build(REEL_INDEX_HNSW, REEL_METRIC_L2,
                              (enum reel_vec_storage)st, x, n, d, 2);
        double r = recall(h, flat, q, nq, d, 10, 0, NULL);
        if (r < 0.95)
            fail_msg("storage %d: recall@10 %.3f < 0.95", st, r);
        /* Re-scored distances are exact. */
        reel_hit hh[1];
        uint32_t nh;
        assert_int_equal(reel_index_search(h, q, 1, NULL, hh, &nh), 0);
        float exact;
        assert_int_equal(reel_index_distance(flat, q, hh[0].id, &exact), 0);
        assert_float_equal(hh[0].dist, exact, 1e-3f * fmaxf(1, exact));
        reel_index_stats s1, s2;
        reel_index_get_stats(h, &s1);
        reel_index_get_stats(flat, &s2);
        assert_int_equal(s1.storage, st);
        reel_index_free(h);
    }
    reel_index_free(flat);
    free(x);
    free(q);
}

static void same_seed_same_graph(void **state)
{
    (void)state;
    const uint32_t n = 2000, d = 16;
    float *x = clustered(n, d, 7);
    char *dir = test_tmpdir();
    char *p1 = test_path(dir, "a.idx"), *p2 = test_path(dir, "b.idx");
    reel_diag dg;
    reel_index *a =
        build(REEL_INDEX_HNSW, REEL_METRIC_L2, REEL_VEC_F32, x, n, d, 1);
    reel_index *b =
        build(REEL_INDEX_HNSW, REEL_METRIC_L2, REEL_VEC_F32, x, n, d, 1);
    assert_int_equal(reel_index_save(a, p1, &dg), 0);
    assert_int_equal(reel_index_save(b, p2, &dg), 0);
    FILE *f1 = fopen(p1, "rb"), *f2 = fopen(p2, "rb");
    int c1, c2;
    do {
        c1 = fgetc(f1);
        c2 = fgetc(f2);
        assert_int_equal(c1, c2);
    } while (c1 != EOF);
    fclose(f1);
    fclose(f2);
    reel_index_free(a);
    reel_index_free(b);
    free(p1);
    free(p2);
    test_rmtree(dir);
    free(dir);
    free(x);
}

static void save_and_load_give_identical_results(void **state)
{
    (void)state;
    const uint32_t n = 70000, d = 8, nq = 50; /* > one 64k chunk */
    float *x = clustered(n, d, 8), *q = clustered(nq, d, 9);
    char *dir = test_tmpdir();
    char *path = test_path(dir, "h.idx");
    reel_diag dg;
    for (int st = 0; st <= 2; st++) {
        reel_index *a = build(REEL_INDEX_HNSW, REEL_METRIC_IP,
                              (enum reel_vec_storage)st, x, n, d, 2);
        assert_int_equal(reel_index_delete(a, 5), 0);
        assert_int_equal(reel_index_save(a, path, &dg), 0);
        reel_index *b;
        assert_int_equal(reel_index_open(path, &b, &dg), 0);
        for (uint32_t i = 0; i < nq; i++) {
            reel_hit ha[10], hb[10];
            uint32_t na, nb;
            assert_int_equal(reel_index_search(a, q + i * d, 10, NULL, ha, &na),
                             0);
            assert_int_equal(reel_index_search(b, q + i * d, 10, NULL, hb, &nb),
                             0);
            assert_int_equal(na, nb);
            assert_memory_equal(ha, hb, na * sizeof *ha);
        }
        /* The loaded index takes online changes (copy-on-write). */
        float v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        assert_int_equal(reel_index_add(b, n + 10, v), 0);
        assert_int_equal(reel_index_delete(b, 5), REEL_ENOENT);
        assert_int_equal(reel_index_delete(b, 6), 0);
        reel_hit h[1];
        uint32_t nh;
        assert_int_equal(reel_index_search(b, v, 1, NULL, h, &nh), 0);
        reel_index_stats s;
        reel_index_get_stats(b, &s);
        assert_int_equal(s.n_live, n - 2 + 1);
        assert_int_equal(s.n_deleted, 2);
        reel_index_free(a);
        reel_index_free(b);
    }
    /* A flat index too. */
    reel_index *f =
        build(REEL_INDEX_FLAT, REEL_METRIC_L2, REEL_VEC_F32, x, 1000, d, 1);
    assert_int_equal(reel_index_save(f, path, &dg), 0);
    reel_index *g;
    assert_int_equal(reel_index_open(path, &g, &dg), 0);
    reel_hit ha[5], hb[5];
    uint32_t na, nb;
    assert_int_equal(reel_index_search(f, q, 5, NULL, ha, &na), 0);
    assert_int_equal(reel_index_search(g, q, 5, NULL, hb, &nb), 0);
    assert_memory_equal(ha, hb, sizeof ha);
    reel_index_free(f);
    reel_index_free(g);
    free(path);
    test_rmtree(dir);
    free(dir);
    free(x);
    free(q);
}

static void deletes_are_never_returned_and_recall_holds(void **state)
{
    (void)state;
    const uint32_t n = 8000, d = 24, nq = 200;
    float *x = clustered(n, d, 10), *q = clustered(nq, d, 11);
    reel_index *flat =
        build(REEL_INDEX_FLAT, REEL_METRIC_L2, REEL_VEC_F32, x, n, d, 1);
    reel_index *h =
        build(REEL_INDEX_HNSW, REEL_METRIC_L2, REEL_VEC_F32, x, n, d, 2);
    /* Delete 30%, including the entry point's likely neighbourhood. */
    reel_rng r;
    reel_rng_seed(&r, 12);
    uint8_t *gone = calloc(n, 1);
    for (uint32_t i = 0; i < n; i++)
        if (reel_rng_uniform(&r) < 0.3) {
            gone[i] = 1;
            assert_int_equal(reel_index_delete(h, i), 0);
            assert_int_equal(reel_index_delete(flat, i), 0);
        }
    assert_int_equal(reel_index_delete(h, n + 5), REEL_ENOENT);
    for (uint32_t i = 0; i < nq; i++) {
        reel_hit hh[20];
        uint32_t nh;
        assert_int_equal(reel_index_search(h, q + i * d, 20, NULL, hh, &nh), 0);
        assert_int_equal(nh, 20);
        for (uint32_t j = 0; j < nh; j++)
            assert_false(gone[hh[j].id]);
    }
    double rc = recall(h, flat, q, nq, d, 10, 0, NULL);
    if (rc < 0.95)
        fail_msg("recall after deleting 30%%: %.3f", rc);
    /* Re-adding a deleted id revives it with a new vector. */
    uint32_t id = 0;
    while (!gone[id])
        id++;
    assert_int_equal(reel_index_add(h, id, q), 0);
    reel_hit top[1];
    uint32_t nt;
    assert_int_equal(reel_index_search(h, q, 1, NULL, top, &nt), 0);
    assert_int_equal(top[0].id, id);
    reel_index_free(h);
    reel_index_free(flat);
    free(gone);
    free(x);
    free(q);
}

static void updates_move_items(void **state)
{
    (void)state;
    const uint32_t n = 3000, d = 16;
    float *x = clustered(n, d, 13), *q = clustered(20, d, 14);
    reel_index *h =
        build(REEL_INDEX_HNSW, REEL_METRIC_COSINE, REEL_VEC_F32, x, n, d, 1);
    for (uint32_t i = 0; i < 20; i++) {
        /* Item i*100 moves onto query i: it must become the nearest. */
        assert_int_equal(reel_index_update(h, i * 100, q + i * d), 0);
        reel_hit top[1];
        uint32_t nt;
        assert_int_equal(reel_index_search(h, q + i * d, 1, NULL, top, &nt), 0);
        assert_int_equal(top[0].id, i * 100);
        assert_true(top[0].dist < 1e-5f);
    }
    float bad[16] = {NAN};
    assert_int_equal(reel_index_add(h, n, bad), REEL_EINVAL);
    assert_int_equal(reel_index_add(h, 7, x), REEL_EEXISTS);
    reel_index_free(h);
    free(x);
    free(q);
}

/* With 90% of items filtered out, recall@10 against a filtered exact
 * search stays >= 0.9; excluded ids never come back. */
static void filters_keep_recall(void **state)
{
    (void)state;
    const uint32_t n = 20000, d = 32, nq = 100;
    float *x = clustered(n, d, 15), *q = clustered(nq, d, 16);
    reel_index *flat =
        build(REEL_INDEX_FLAT, REEL_METRIC_L2, REEL_VEC_F32, x, n, d, 1);
    reel_index *h =
        build(REEL_INDEX_HNSW, REEL_METRIC_L2, REEL_VEC_F32, x, n, d, 2);
    uint64_t *allow = calloc((n + 63) / 64, sizeof *allow);
    reel_rng r;
    reel_rng_seed(&r, 17);
    for (uint32_t i = 0; i < n; i++)
        if (reel_rng_uniform(&r) < 0.1)
            allow[i / 64] |= 1ULL << (i % 64);
    reel_filter f = {.allow = allow, .allow_bits = n};
    double rc = recall(h, flat, q, nq, d, 10, 0, &f);
    if (rc < 0.9)
        fail_msg("recall@10 with 10%% passing: %.3f", rc);
    /* A very selective filter (0.5%) is answered exactly. */
    memset(allow, 0, (n + 63) / 64 * sizeof *allow);
    for (uint32_t i = 0; i < n; i += 200)
        allow[i / 64] |= 1ULL << (i % 64);
    assert_true(recall(h, flat, q, nq, d, 10, 0, &f) == 1.0);
    /* Exclusions: the unfiltered top 10 of each query, excluded. */
    for (uint32_t i = 0; i < 20; i++) {
        reel_hit a[10], b[10];
        uint32_t na, nb;
        assert_int_equal(reel_index_search(h, q + i * d, 10, NULL, a, &na), 0);
        uint32_t ex[10];
        for (uint32_t j = 0; j < na; j++)
            ex[j] = a[j].id;
        reel_filter fe = {.exclude = ex, .n_exclude = na};
        reel_search_params p = {.filter = &fe};
        assert_int_equal(reel_index_search(h, q + i * d, 10, &p, b, &nb), 0);
        assert_int_equal(nb, 10);
        for (uint32_t j = 0; j < nb; j++)
            for (uint32_t t = 0; t < na; t++)
                assert_int_not_equal(b[j].id, ex[t]);
    }
    free(allow);
    reel_index_free(h);
    reel_index_free(flat);
    free(x);
    free(q);
}

struct conc {
    reel_index *ix;
    const float *x;
    uint32_t d, from, to;
    _Atomic int done;
    int bad;
};

static void *searcher(void *arg)
{
    struct conc *c = arg;
    reel_hit h[10];
    uint32_t nh, i = 0;
    while (!atomic_load(&c->done)) {
        if (reel_index_search(c->ix, c->x + (size_t)(i++ % c->to) * c->d, 10,
                              NULL, h, &nh))
            c->bad = 1;
        for (uint32_t j = 0; j < nh; j++)
            if (h[j].id >= c->to)
                c->bad = 1;
    }
    return NULL;
}

/* Searches run while another thread adds (ASan/TSan builds check the
 * memory side); every result is an id that exists. */
static void searches_run_during_adds(void **state)
{
    (void)state;
    const uint32_t n = 12000, d = 16;
    float *x = clustered(n, d, 18);
    reel_index *h =
        build(REEL_INDEX_HNSW, REEL_METRIC_L2, REEL_VEC_F32, x, 2000, d, 1);
    struct conc c = {.ix = h, .x = x, .d = d, .to = n};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, searcher, &c);
    for (uint32_t i = 2000; i < n; i++) {
        assert_int_equal(reel_index_add(h, i, x + (size_t)i * d), 0);
        if (i % 7 == 0)
            assert_int_equal(reel_index_delete(h, i - 1000), 0);
    }
    atomic_store(&c.done, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_false(c.bad);
    reel_index_free(h);
    free(x);
}

static void damaged_index_files_are_refused(void **state)
{
    (void)state;
    const uint32_t n = 500, d = 8;
    float *x = clustered(n, d, 19);
    char *dir = test_tmpdir();
    char *path = test_path(dir, "h.idx");
    reel_diag dg;
    reel_index *h =
        build(REEL_INDEX_HNSW, REEL_METRIC_L2, REEL_VEC_F32, x, n, d, 1);
    assert_int_equal(reel_index_save(h, path, &dg), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    reel_index *g;
    /* Truncated. */
    assert_int_equal(truncate(path, st.st_size - 64), 0);
    assert_int_equal(reel_index_open(path, &g, &dg), REEL_ECORRUPT);
    assert_non_null(strstr(dg.msg, "truncated"));
    /* A flipped byte in the records. */
    assert_int_equal(reel_index_save(h, path, &dg), 0);
    FILE *f = fopen(path, "r+b");
    fseek(f, 64 * 3 + 20, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 64 * 3 + 20, SEEK_SET);
    fputc(c ^ 0x10, f);
    fclose(f);
    assert_int_equal(reel_index_open(path, &g, &dg), REEL_ECORRUPT);
    assert_non_null(strstr(dg.msg, "checksum"));
    /* Checksums intact but a link out of range: re-write the file through
     * the container with one link changed. */
    assert_int_equal(reel_index_save(h, path, &dg), 0);
    reel_secfile *sf;
    assert_int_equal(reel_secfile_open(path, "index", 0, &sf, &dg), 0);
    char *p2 = test_path(dir, "bad.idx");
    reel_secfile_writer *w;
    assert_int_equal(reel_secfile_writer_open(p2, "index", &w, &dg), 0);
    for (uint32_t i = 0; i < reel_secfile_count(sf); i++) {
        const reel_section *s = reel_secfile_at(sf, i);
        unsigned char *copy = malloc(s->length + 1);
        memcpy(copy, s->data, s->length);
        if (!strcmp(s->name, "index.records")) {
            uint32_t big = 999999, one = 1;
            memcpy(copy, &one, 4);      /* record 0: one link */
            memcpy(copy + 16, &big, 4); /* pointing nowhere */
        }
        assert_int_equal(
            reel_secfile_writer_add(w, s->name, s->type, copy, s->count), 0);
        free(copy);
    }
    assert_int_equal(reel_secfile_writer_commit(w, &dg), 0);
    reel_secfile_close(sf);
    assert_int_equal(reel_index_open(p2, &g, &dg), REEL_ECORRUPT);
    assert_non_null(strstr(dg.msg, "link out of range"));
    assert_int_equal(reel_index_open("/nonexistent.idx", &g, &dg), REEL_ENOENT);
    reel_index_free(h);
    free(path);
    free(p2);
    test_rmtree(dir);
    free(dir);
    free(x);
}

static void vector_files_round_trip_and_refuse_damage(void **state)
{
    (void)state;
    float x[12];
    for (int i = 0; i < 12; i++)
        x[i] = (float)i * 0.5f;
    char *dir = test_tmpdir();
    char *fv = test_path(dir, "x.fvecs"), *np = test_path(dir, "x.npy");
    reel_diag dg;
    assert_int_equal(reel_vecs_write_fvecs(fv, x, 3, 4, &dg), 0);
    assert_int_equal(reel_vecs_write_npy(np, x, 3, 4, &dg), 0);
    reel_vecs v;
    assert_int_equal(reel_vecs_read(fv, &v, &dg), 0);
    assert_int_equal(v.n, 3);
    assert_int_equal(v.d, 4);
    assert_memory_equal(v.data, x, sizeof x);
    reel_vecs_free(&v);
    assert_int_equal(reel_vecs_read(np, &v, &dg), 0);
    assert_int_equal(v.n, 3);
    assert_memory_equal(v.data, x, sizeof x);
    reel_vecs_free(&v);
    assert_int_equal(truncate(fv, 4 * 5 * 3 - 2), 0);
    assert_int_equal(reel_vecs_read(fv, &v, &dg), REEL_EFORMAT);
    assert_non_null(strstr(dg.msg, "truncated"));
    assert_int_equal(truncate(np, 100), 0);
    assert_int_equal(reel_vecs_read(np, &v, &dg), REEL_EFORMAT);
    char *junk = test_write_file(dir, "j.npy",
                                 "\x93NUMPY\x01\x00\x20\x00"
                                 "{'descr': '<f4', 'fortran_");
    assert_int_equal(reel_vecs_read(junk, &v, &dg), REEL_EFORMAT);
    char *bigdim = test_path(dir, "big.fvecs");
    FILE *f = fopen(bigdim, "wb");
    int32_t dd = 100000;
    fwrite(&dd, 4, 1, f);
    fclose(f);
    assert_int_equal(reel_vecs_read(bigdim, &v, &dg), REEL_EFORMAT);
    assert_non_null(strstr(dg.msg, "out of range"));
    assert_int_equal(reel_vecs_read("x.txt", &v, &dg), REEL_EUNSUPPORTED);
    free(fv);
    free(np);
    free(junk);
    free(bigdim);
    test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kernels_agree_with_scalar_twins),
        cmocka_unit_test(flat_matches_naive_scan),
        cmocka_unit_test(hnsw_recall_at_default_ef),
        cmocka_unit_test(every_item_is_reachable_after_a_parallel_build),
        cmocka_unit_test(compact_vectors_keep_recall),
        cmocka_unit_test(same_seed_same_graph),
        cmocka_unit_test(save_and_load_give_identical_results),
        cmocka_unit_test(deletes_are_never_returned_and_recall_holds),
        cmocka_unit_test(updates_move_items),
        cmocka_unit_test(filters_keep_recall),
        cmocka_unit_test(searches_run_during_adds),
        cmocka_unit_test(damaged_index_files_are_refused),
        cmocka_unit_test(vector_files_round_trip_and_refuse_damage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
