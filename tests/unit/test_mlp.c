/* Unit tests of src/rank/mlp: analytic gradients match central
 * differences of an independent double-precision loss, the BLAS passes
 * agree with their naive twins, a non-linear problem is learnt, early
 * stopping keeps the best epoch, files round-trip and damaged ones are
 * refused, one seed gives one model, and concurrent readers agree. */
#include "testutil.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "base/secfile.h"
#include "rank/mlp.h"

/* n rows of f features, values of several scales, about 5% missing, and
 * random labels. */
static void random_rows(reel_rows *r, size_t n, uint32_t f, uint64_t seed)
{
    reel_rows_init(r, f);
    reel_rng g;
    reel_rng_seed(&g, seed);
    for (size_t i = 0; i < n; i++) {
        float *x =
            reel_rows_push(r, (float)reel_rng_below(&g, 2), (uint32_t)i, 0);
        for (uint32_t j = 0; j < f; j++)
            x[j] = reel_rng_uniform(&g) < 0.05
                       ? NAN
                       : (float)(reel_rng_normal(&g) * (j + 1) + 3.0 * j);
    }
}

/* Two noisy circles: label 1 inside radius 0.6 of the square [-1, 1]^2.
 * The coordinates are scaled and shifted (standardisation must undo
 * that) and followed by `noise` uninformative features, some missing. */
static void circles(reel_rows *r, size_t n, uint32_t noise, uint64_t seed)
{
    reel_rows_init(r, 2 + noise);
    reel_rng g;
    reel_rng_seed(&g, seed);
    for (size_t i = 0; i < n; i++) {
        double a = 2 * reel_rng_uniform(&g) - 1,
               b = 2 * reel_rng_uniform(&g) - 1;
        float y = a * a + b * b < 0.36 ? 1.0f : 0.0f;
        float *x = reel_rows_push(r, y, (uint32_t)i, (int64_t)i);
        x[0] = (float)(100 * a + 50);
        x[1] = (float)(0.01 * b - 3);
        for (uint32_t j = 0; j < noise; j++)
            x[2 + j] =
                reel_rng_uniform(&g) < 0.1 ? NAN : (float)reel_rng_normal(&g);
    }
}

/* The slow, obviously right AUC: the share of (positive, negative) pairs
 * ordered correctly, ties counting one half. */
static double brute_auc(const float *s, const float *y, size_t n)
{
    double good = 0, pairs = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            if (y[i] > 0 && !(y[j] > 0)) {
                pairs++;
                good += s[i] > s[j] ? 1 : s[i] == s[j] ? 0.5 : 0;
            }
    return good / pairs;
}

static double log_loss(const float *p, const float *y, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s -= y[i] > 0 ? log(p[i]) : log1p(-(double)p[i]);
    return s / (double)n;
}

/*
 * The objective computed independently of src/rank/mlp.c, in double, from
 * parameters in double (so finite differences can use a step far below
 * float resolution and ReLU kinks are almost never crossed): mean
 * cross-entropy via log(sigmoid) plus wd / 2 * |W|^2.
 */
static double ref_loss(const reel_mlp *m, const double *p, const reel_rows *r,
                       double wd)
{
    uint32_t L = reel_mlp_n_layers(m), F = reel_mlp_n_features(m);
    const float *mean = reel_mlp_mean(m), *sd = reel_mlp_std(m);
    double h[2][64], total = 0;
    for (size_t i = 0; i < r->n; i++) {
        const float *x = r->x + i * F;
        for (uint32_t j = 0; j < F; j++)
            h[0][j] = isnan(x[j]) ? 0 : ((double)x[j] - mean[j]) / sd[j];
        const double *w = p;
        int cur = 0;
        for (uint32_t l = 0; l < L; l++) {
            uint32_t in = reel_mlp_width(m, l), o = reel_mlp_width(m, l + 1);
            const double *b = w + (size_t)o * in;
            for (uint32_t k = 0; k < o; k++) {
                double z = b[k];
                for (uint32_t j = 0; j < in; j++)
                    z += w[k * in + j] * h[cur][j];
                h[!cur][k] = l + 1 < L ? fmax(z, 0) : z;
            }
            cur = !cur;
            w = b + o;
        }
        double z = h[cur][0], t = r->y[i] > 0;
        double q = 1 / (1 + exp(-z));
        total -= t * log(q) + (1 - t) * log(1 - q);
    }
    double l2 = 0;
    const double *w = p;
    for (uint32_t l = 0; l < L; l++) {
        uint32_t in = reel_mlp_width(m, l), o = reel_mlp_width(m, l + 1);
        for (size_t k = 0; k < (size_t)o * in; k++)
            l2 += w[k] * w[k];
        w += (size_t)o * (in + 1);
    }
    return total / (double)r->n + 0.5 * wd * l2;
}

static reel_mlp_opts small_opts(uint32_t h0, uint32_t h1, uint32_t epochs)
{
    reel_mlp_opts o = reel_mlp_opts_default();
    o.hidden[0] = h0;
    o.hidden[1] = h1;
    o.max_epochs = epochs;
    return o;
}

static void gradient_matches_central_differences(void **state)
{
    (void)state;
    reel_rows r;
    random_rows(&r, 24, 5, 1);
    /* One epoch of training gives a real standardisation and weights that
     * are not the initial ones. */
    reel_mlp_opts o = small_opts(4, 3, 1);
    o.batch = 8;
    o.lr = 0.01;
    reel_mlp *m;
    assert_int_equal(reel_mlp_train(&r, NULL, &o, NULL, &m), 0);
    size_t n;
    float *pf = reel_mlp_params(m, &n);
    assert_int_equal(n, 4 * 5 + 4 + 3 * 4 + 3 + 1 * 3 + 1);
    const double wd = 0.05;
    float *g = malloc(n * sizeof *g);
    double loss = reel_mlp_loss_grad(m, r.x, r.y, r.n, 5, wd, g);
    double *p = malloc(n * sizeof *p);
    for (size_t k = 0; k < n; k++)
        p[k] = pf[k];
    assert_true(fabs(loss - ref_loss(m, p, &r, wd)) < 1e-5);
    /* Tolerance: relative 1e-3 of the larger, plus 1e-6 for gradients
     * near zero (float accumulation in the analytic path; the errors seen
     * are below 1e-8). */
    const double h = 1e-6;
    size_t strong[6] = {0};
    for (size_t k = 0; k < n; k++) {
        double keep = p[k];
        p[k] = keep + h;
        double up = ref_loss(m, p, &r, wd);
        p[k] = keep - h;
        double down = ref_loss(m, p, &r, wd);
        p[k] = keep;
        double fd = (up - down) / (2 * h);
        double err = fabs(fd - g[k]);
        if (err > 1e-3 * fmax(fabs(fd), fabs(g[k])) + 1e-6)
            fail_msg("parameter %zu: analytic %g, differences %g", k, g[k], fd);
        /* Which group (W0 b0 W1 b1 W2 b2) this parameter belongs to. */
        size_t grp = k < 20   ? 0
                     : k < 24 ? 1
                     : k < 36 ? 2
                     : k < 39 ? 3
                     : k < 42 ? 4
                              : 5;
        strong[grp] += fabs(g[k]) > 1e-4;
    }
    for (int grp = 0; grp < 6; grp++)
        assert_true(strong[grp] > 0); /* no group checked only at zero */
    free(p);
    free(g);
    reel_mlp_free(m);
    reel_rows_free(&r);
}

static void gradient_fast_and_naive_agree(void **state)
{
    (void)state;
    reel_rows r;
    random_rows(&r, 700, 20, 2); /* 700 rows: three blocks of products */
    reel_mlp_opts o = small_opts(64, 32, 2);
    reel_mlp *m;
    assert_int_equal(reel_mlp_train(&r, NULL, &o, NULL, &m), 0);
    size_t n;
    reel_mlp_params(m, &n);
    float *fast = malloc(n * sizeof *fast), *slow = malloc(n * sizeof *slow);
    double lf = reel_mlp_loss_grad(m, r.x, r.y, r.n, 20, 1e-3, fast);
    double ls = reel_mlp_loss_grad_naive(m, r.x, r.y, r.n, 20, 1e-3, slow);
    assert_true(fabs(lf - ls) < 1e-6);
    /* Tolerance: 1e-5 absolute plus 1e-3 relative (sums of 700 float
     * products against double ones). */
    double worst = 0;
    for (size_t k = 0; k < n; k++) {
        double err = fabs((double)fast[k] - slow[k]);
        assert_true(err <= 1e-5 + 1e-3 * fabs(slow[k]));
        worst = fmax(worst, err);
    }
    assert_true(worst < 1e-5);
    assert_true(
        fabs(reel_mlp_loss_grad(m, r.x, r.y, r.n, 20, 1e-3, NULL) - lf) == 0);
    free(fast);
    free(slow);
    reel_mlp_free(m);
    reel_rows_free(&r);
}

static void predict_fast_and_naive_agree(void **state)
{
    (void)state;
    const uint32_t F = 30, stride = 33;
    const size_t n = 1000;
    reel_rng g;
    reel_rng_seed(&g, 5);
    float *x = malloc(n * stride * sizeof *x);
    for (size_t k = 0; k < n * stride; k++)
        x[k] = reel_rng_uniform(&g) < 0.05 ? NAN : (float)reel_rng_normal(&g);
    float *fast = malloc(n * sizeof *fast), *slow = malloc(n * sizeof *slow);
    const uint32_t shapes[4][4] = {{0}, {1, 16}, {2, 64, 32}, {3, 8, 8, 8}};
    for (int s = 0; s < 4; s++) {
        reel_mlp *m;
        assert_int_equal(
            reel_mlp_new(F, shapes[s][0], shapes[s] + 1, 9 + s, &m), 0);
        assert_int_equal(reel_mlp_n_layers(m), shapes[s][0] + 1);
        reel_mlp_predict(m, x, n, stride, fast);
        reel_mlp_predict_naive(m, x, n, stride, slow);
        /* Tolerance: 1e-5 absolute on probabilities. */
        double spread = 0;
        for (size_t i = 0; i < n; i++) {
            assert_true(fabs((double)fast[i] - slow[i]) <= 1e-5);
            spread += fabs(slow[i] - 0.5);
        }
        assert_true(spread / n > 0.05); /* not a trivially flat output */
        reel_mlp_free(m);
    }
    free(fast);
    free(slow);
    free(x);
}

static void learns_a_nonlinear_problem(void **state)
{
    (void)state;
    reel_rows train, valid, test;
    circles(&train, 4000, 3, 11);
    circles(&valid, 1000, 3, 12);
    circles(&test, 1500, 3, 13);
    reel_mlp_opts o = reel_mlp_opts_default(); /* 64, 32, Adam 1e-3 */
    reel_mlp *m;
    assert_int_equal(reel_mlp_train(&train, &valid, &o, NULL, &m), 0);
    float *s = malloc(test.n * sizeof *s);
    reel_mlp_predict(m, test.x, test.n, test.n_features, s);
    double auc_test = brute_auc(s, test.y, test.n);
    assert_true(auc_test > 0.95);
    /* The AUC reported for the kept epoch is the brute-force one. */
    float *sv = malloc(valid.n * sizeof *sv);
    reel_mlp_predict(m, valid.x, valid.n, valid.n_features, sv);
    reel_mlp_epoch best = reel_mlp_best(m);
    assert_true(best.epoch >= 1 && best.epoch <= reel_mlp_epochs_run(m));
    assert_true(fabs(best.valid_auc - brute_auc(sv, valid.y, valid.n)) < 1e-4);
    assert_true(fabs(best.valid_loss - log_loss(sv, valid.y, valid.n)) < 1e-4);
    reel_mlp_free(m);
    /* A model without hidden layers (logistic regression) cannot draw a
     * circle: the hidden layers are what learnt it. */
    o.n_hidden = 0;
    o.max_epochs = 10;
    assert_int_equal(reel_mlp_train(&train, &valid, &o, NULL, &m), 0);
    reel_mlp_predict(m, test.x, test.n, test.n_features, s);
    assert_true(brute_auc(s, test.y, test.n) < 0.7);
    reel_mlp_free(m);
    free(s);
    free(sv);
    reel_rows_free(&train);
    reel_rows_free(&valid);
    reel_rows_free(&test);
}

struct history {
    reel_mlp_epoch e[64];
    uint32_t n;
    uint32_t stop_at; /* ask to stop after this epoch (0: never) */
};

static int record(const reel_mlp_epoch *e, void *ctx)
{
    struct history *h = ctx;
    assert_true(h->n < 64);
    h->e[h->n++] = *e;
    return h->stop_at && e->epoch >= h->stop_at;
}

static void early_stopping_keeps_the_best_epoch(void **state)
{
    (void)state;
    /* Random labels: a wide net memorises the training rows and the
     * validation loss soon climbs. */
    reel_rows train, valid;
    random_rows(&train, 300, 10, 21);
    random_rows(&valid, 300, 10, 22);
    reel_mlp_opts o = reel_mlp_opts_default();
    o.lr = 1e-2;
    o.batch = 32;
    o.patience = 3;
    struct history h = {0};
    o.on_epoch = record;
    o.ctx = &h;
    reel_mlp *m;
    assert_int_equal(reel_mlp_train(&train, &valid, &o, NULL, &m), 0);
    uint32_t run = reel_mlp_epochs_run(m);
    reel_mlp_epoch best = reel_mlp_best(m);
    assert_int_equal(h.n, run);
    assert_true(run < o.max_epochs);
    assert_int_equal(best.epoch, run - o.patience);
    for (uint32_t i = 0; i < h.n; i++) {
        assert_int_equal(h.e[i].epoch, i + 1);
        assert_true(h.e[i].valid_loss >= best.valid_loss);
        assert_true(isfinite(h.e[i].valid_auc));
    }
    assert_true(h.e[best.epoch - 1].valid_loss == best.valid_loss);
    assert_true(h.e[run - 1].valid_loss > best.valid_loss);
    /* The model holds the best epoch's weights, not the last ones. */
    float *p = malloc(valid.n * sizeof *p);
    reel_mlp_predict(m, valid.x, valid.n, 10, p);
    assert_true(fabs(log_loss(p, valid.y, valid.n) - best.valid_loss) < 1e-4);
    reel_mlp_free(m);

    /* The callback can stop training too. */
    h = (struct history){.stop_at = 2};
    o.patience = 0;
    assert_int_equal(reel_mlp_train(&train, &valid, &o, NULL, &m), 0);
    assert_int_equal(reel_mlp_epochs_run(m), 2);
    assert_int_equal(h.n, 2);
    reel_mlp_free(m);
    free(p);
    reel_rows_free(&train);
    reel_rows_free(&valid);
}

static reel_mlp *trained_circles(uint64_t seed, reel_rows *test)
{
    reel_rows train, valid;
    circles(&train, 1000, 2, 31);
    circles(&valid, 300, 2, 32);
    circles(test, 500, 2, 33);
    reel_mlp_opts o = small_opts(16, 8, 5);
    o.seed = seed;
    reel_mlp *m;
    reel_progress p; /* silent off a terminal; exercised all the same */
    assert_int_equal(reel_mlp_train(&train, &valid, &o, &p, &m), 0);
    reel_rows_free(&train);
    reel_rows_free(&valid);
    return m;
}

static void one_seed_gives_one_model(void **state)
{
    (void)state;
    reel_rows test;
    reel_mlp *a = trained_circles(7, &test);
    reel_rows_free(&test);
    reel_mlp *b = trained_circles(7, &test);
    reel_rows_free(&test);
    reel_mlp *c = trained_circles(8, &test);
    size_t na, nb, nc;
    float *pa = reel_mlp_params(a, &na), *pb = reel_mlp_params(b, &nb);
    float *pc = reel_mlp_params(c, &nc);
    assert_int_equal(na, nb);
    assert_memory_equal(pa, pb, na * sizeof *pa);
    assert_memory_not_equal(pa, pc, na * sizeof *pa);
    assert_string_equal(reel_mlp_source(a), reel_mlp_source(b));
    assert_non_null(strstr(reel_mlp_source(a), "\"hidden\":[16,8]"));
    reel_mlp_free(a);
    reel_mlp_free(b);
    reel_mlp_free(c);
    reel_rows_free(&test);
}

/* Layers wide enough that OpenBLAS splits products over its threads when
 * it may; threads = 1 must hold it to one whatever it was set to. */
static reel_mlp *wide_model(int blas_threads)
{
    openblas_set_num_threads(blas_threads);
    reel_rows r;
    random_rows(&r, 4000, 64, 51);
    reel_mlp_opts o = small_opts(256, 128, 1);
    o.batch = 512;
    reel_mlp *m;
    assert_int_equal(reel_mlp_train(&r, NULL, &o, NULL, &m), 0);
    assert_int_equal(openblas_get_num_threads(), blas_threads); /* restored */
    reel_rows_free(&r);
    return m;
}

static void one_blas_thread_whatever_openblas_was_set_to(void **state)
{
    (void)state;
    int was = openblas_get_num_threads();
    reel_mlp *a = wide_model(2), *b = wide_model(1);
    size_t n;
    float *pa = reel_mlp_params(a, &n), *pb = reel_mlp_params(b, &n);
    assert_memory_equal(pa, pb, n * sizeof *pa);
    openblas_set_num_threads(was);
    reel_mlp_free(a);
    reel_mlp_free(b);
}

static void missing_feature_counts_as_its_mean(void **state)
{
    (void)state;
    reel_rows test;
    reel_mlp *m = trained_circles(7, &test);
    const float *mean = reel_mlp_mean(m);
    float x[2][4], p[2];
    memcpy(x[0], test.x, 4 * sizeof(float));
    memcpy(x[1], test.x, 4 * sizeof(float));
    x[0][0] = NAN;
    x[1][0] = mean[0];
    x[0][3] = INFINITY;
    x[1][3] = mean[3];
    reel_mlp_predict(m, x[0], 2, 4, p);
    assert_true(p[0] == p[1]);
    reel_mlp_free(m);
    reel_rows_free(&test);
}

static void file_round_trip_gives_identical_predictions(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    char *path = test_path(dir, "m.reel");
    reel_rows test;
    reel_mlp *m = trained_circles(7, &test);
    reel_diag d;
    assert_int_equal(reel_mlp_save(m, path, &d), 0);
    reel_mlp *l;
    assert_int_equal(reel_mlp_load(path, &l, &d), 0);
    assert_int_equal(reel_mlp_n_layers(l), 3);
    for (uint32_t i = 0; i <= 3; i++)
        assert_int_equal(reel_mlp_width(l, i), reel_mlp_width(m, i));
    assert_memory_equal(reel_mlp_mean(l), reel_mlp_mean(m), 4 * sizeof(float));
    assert_memory_equal(reel_mlp_std(l), reel_mlp_std(m), 4 * sizeof(float));
    assert_string_equal(reel_mlp_source(l), reel_mlp_source(m));
    assert_int_equal(reel_mlp_epochs_run(l), reel_mlp_epochs_run(m));
    reel_mlp_epoch a = reel_mlp_best(m), b = reel_mlp_best(l);
    assert_int_equal(a.epoch, b.epoch);
    assert_true(a.train_loss == b.train_loss && a.valid_loss == b.valid_loss &&
                a.valid_auc == b.valid_auc);
    float *pm = malloc(test.n * sizeof *pm), *pl = malloc(test.n * sizeof *pl);
    reel_mlp_predict(m, test.x, test.n, 4, pm);
    reel_mlp_predict(l, test.x, test.n, 4, pl);
    assert_memory_equal(pm, pl, test.n * sizeof *pm);
    /* An untrained model round-trips too (NaN fit, epoch 0). */
    reel_mlp *u, *v;
    assert_int_equal(reel_mlp_new(3, 0, NULL, 1, &u), 0);
    assert_int_equal(reel_mlp_save(u, path, &d), 0);
    assert_int_equal(reel_mlp_load(path, &v, &d), 0);
    assert_int_equal(reel_mlp_best(v).epoch, 0);
    assert_true(isnan(reel_mlp_best(v).valid_loss));
    reel_mlp_free(u);
    reel_mlp_free(v);
    free(pm);
    free(pl);
    reel_mlp_free(l);
    reel_mlp_free(m);
    reel_rows_free(&test);
    free(path);
    test_rmtree(dir);
    free(dir);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(*len);
    assert_int_equal(fread(buf, 1, *len, f), *len);
    fclose(f);
    return buf;
}

static void spill(const char *path, const char *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    fclose(f);
}

/* Ways to write a file that is a valid container but a bad model. */
enum damage {
    BAD_VERSION,
    TOO_MANY_FEATURES,
    SHAPE_DISAGREES,
    PARAM_COUNT_WRONG,
    LAST_WIDTH_NOT_1,
    NAN_WEIGHT,
    ZERO_STD,
    MISSING_BIAS,
    SHORT_WEIGHTS,
    SOURCE_WITH_NUL,
    N_DAMAGE
};

/* Writes m as reel_mlp_save() would, with one thing wrong. */
static void write_damaged(const reel_mlp *m, const char *path, enum damage k)
{
    uint32_t L = reel_mlp_n_layers(m), F = reel_mlp_n_features(m);
    uint32_t width[5];
    size_t n_params = 0;
    for (uint32_t l = 0; l <= L; l++)
        width[l] = reel_mlp_width(m, l);
    for (uint32_t l = 0; l < L; l++)
        n_params += (size_t)width[l + 1] * (width[l] + 1);
    uint64_t par[8] = {1, F, L, n_params, 0, 0, 0, 0};
    if (k == BAD_VERSION)
        par[0] = 2;
    if (k == TOO_MANY_FEATURES)
        par[1] = 5000;
    if (k == SHAPE_DISAGREES)
        width[0]++;
    if (k == PARAM_COUNT_WRONG)
        par[3]++;
    if (k == LAST_WIDTH_NOT_1)
        width[L] = 2;
    double fit[3] = {NAN, NAN, NAN};
    float *std = malloc(F * sizeof *std);
    memcpy(std, reel_mlp_std(m), F * sizeof *std);
    if (k == ZERO_STD)
        std[F - 1] = 0;
    size_t n;
    float *p = malloc(n_params * sizeof *p);
    memcpy(p, reel_mlp_params((reel_mlp *)m, &n), n_params * sizeof *p);
    if (k == NAN_WEIGHT)
        p[n_params / 2] = NAN;
    reel_secfile_writer *w;
    reel_diag d;
    assert_int_equal(reel_secfile_writer_open(path, "mlp", &w, &d), 0);
    assert_int_equal(
        reel_secfile_writer_add(w, "mlp.params", REEL_SEC_U64, par, 8), 0);
    assert_int_equal(
        reel_secfile_writer_add(w, "mlp.shape", REEL_SEC_U32, width, L + 1), 0);
    assert_int_equal(
        reel_secfile_writer_add(w, "mlp.fit", REEL_SEC_F64, fit, 3), 0);
    const char *src = k == SOURCE_WITH_NUL ? "{}\0{}" : "{}";
    assert_int_equal(reel_secfile_writer_add(w, "mlp.source", REEL_SEC_BYTES,
                                             src, k == SOURCE_WITH_NUL ? 5 : 2),
                     0);
    assert_int_equal(reel_secfile_writer_add(w, "mlp.mean", REEL_SEC_F32,
                                             reel_mlp_mean(m), F),
                     0);
    assert_int_equal(
        reel_secfile_writer_add(w, "mlp.std", REEL_SEC_F32, std, F), 0);
    const float *at = p;
    for (uint32_t l = 0; l < L; l++) {
        uint32_t in = reel_mlp_width(m, l), o = reel_mlp_width(m, l + 1);
        char name[32];
        snprintf(name, sizeof name, "mlp.w%u", l);
        uint64_t count = (uint64_t)o * in - (k == SHORT_WEIGHTS && l == 1);
        assert_int_equal(
            reel_secfile_writer_add(w, name, REEL_SEC_F32, at, count), 0);
        at += (size_t)o * in;
        snprintf(name, sizeof name, "mlp.b%u", l);
        if (!(k == MISSING_BIAS && l == L - 1))
            assert_int_equal(
                reel_secfile_writer_add(w, name, REEL_SEC_F32, at, o), 0);
        at += o;
    }
    assert_int_equal(reel_secfile_writer_commit(w, &d), 0);
    free(p);
    free(std);
}

static void damaged_files_are_refused(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    char *path = test_path(dir, "m.reel"), *bad = test_path(dir, "bad.reel");
    reel_rows test;
    reel_mlp *m = trained_circles(7, &test), *l;
    reel_diag d;
    assert_int_equal(reel_mlp_save(m, path, &d), 0);
    size_t len;
    char *buf = slurp(path, &len);

    /* Truncated. */
    spill(bad, buf, len - 100);
    reel_diag_clear(&d);
    assert_int_equal(reel_mlp_load(bad, &l, &d), REEL_ECORRUPT);
    assert_null(l);
    assert_true(strlen(d.msg) > 0);
    /* One bit flipped in the first weights (the section checksum). */
    size_t n;
    const float *p = reel_mlp_params(m, &n);
    char *hit = memmem(buf, len, p, 4 * sizeof *p);
    assert_non_null(hit);
    hit[5] ^= 0x10;
    spill(bad, buf, len);
    reel_diag_clear(&d);
    assert_int_equal(reel_mlp_load(bad, &l, &d), REEL_ECORRUPT);
    assert_non_null(strstr(d.msg, "mlp.w0"));
    hit[5] ^= 0x10;
    /* Another kind of file. */
    reel_secfile_writer *w;
    assert_int_equal(reel_secfile_writer_open(bad, "vectors", &w, &d), 0);
    assert_int_equal(reel_secfile_writer_commit(w, &d), 0);
    assert_int_equal(reel_mlp_load(bad, &l, &d), REEL_EFORMAT);
    /* Containers that are sound around a model that is not. */
    for (int k = 0; k < N_DAMAGE; k++) {
        write_damaged(m, bad, (enum damage)k);
        reel_diag_clear(&d);
        int rc = reel_mlp_load(bad, &l, &d);
        if (rc != (k == BAD_VERSION ? REEL_EVERSION : REEL_ECORRUPT))
            fail_msg("damage %d: %s (%s)", k, reel_errname(rc), d.msg);
        assert_null(l);
        assert_true(strlen(d.msg) > 0);
    }
    /* The writer above is faithful: undamaged, its file loads. */
    write_damaged(m, bad, N_DAMAGE);
    assert_int_equal(reel_mlp_load(bad, &l, &d), 0);
    reel_mlp_free(l);
    assert_int_equal(reel_mlp_load(path, &l, &d), 0);
    reel_mlp_free(l);
    free(buf);
    reel_mlp_free(m);
    reel_rows_free(&test);
    free(path);
    free(bad);
    test_rmtree(dir);
    free(dir);
}

struct reader {
    const reel_mlp *m;
    const reel_rows *rows;
    const float *want;
    int same;
};

static void *read_many(void *arg)
{
    struct reader *r = arg;
    float *p = malloc(r->rows->n * sizeof *p);
    r->same = 1;
    for (int it = 0; it < 20; it++) {
        reel_mlp_predict(r->m, r->rows->x, r->rows->n, r->rows->n_features, p);
        r->same &= memcmp(p, r->want, r->rows->n * sizeof *p) == 0;
    }
    free(p);
    return NULL;
}

static void concurrent_readers_agree(void **state)
{
    (void)state;
    reel_rows test;
    reel_mlp *m = trained_circles(7, &test);
    float *want = malloc(test.n * sizeof *want);
    reel_mlp_predict(m, test.x, test.n, 4, want);
    pthread_t t[3];
    struct reader r[3];
    for (int i = 0; i < 3; i++) {
        r[i] = (struct reader){m, &test, want, 0};
        assert_int_equal(pthread_create(&t[i], NULL, read_many, &r[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        assert_true(r[i].same);
    }
    free(want);
    reel_mlp_free(m);
    reel_rows_free(&test);
}

static void bad_arguments_are_refused(void **state)
{
    (void)state;
    reel_rows r, other;
    random_rows(&r, 20, 3, 41);
    random_rows(&other, 20, 4, 42);
    reel_mlp *m = (reel_mlp *)1;
    reel_mlp_opts o = reel_mlp_opts_default();
    o.n_hidden = 4;
    assert_int_equal(reel_mlp_train(&r, NULL, &o, NULL, &m), REEL_EINVAL);
    assert_null(m);
    o = reel_mlp_opts_default();
    o.hidden[1] = 0;
    assert_int_equal(reel_mlp_train(&r, NULL, &o, NULL, &m), REEL_EINVAL);
    o = reel_mlp_opts_default();
    o.lr = 0;
    assert_int_equal(reel_mlp_train(&r, NULL, &o, NULL, &m), REEL_EINVAL);
    o = reel_mlp_opts_default();
    o.beta2 = 1;
    assert_int_equal(reel_mlp_train(&r, NULL, &o, NULL, &m), REEL_EINVAL);
    o = reel_mlp_opts_default();
    assert_int_equal(reel_mlp_train(&r, &other, &o, NULL, &m), REEL_EINVAL);
    r.y[3] = NAN;
    assert_int_equal(reel_mlp_train(&r, NULL, &o, NULL, &m), REEL_EINVAL);
    r.y[3] = -1;
    assert_int_equal(reel_mlp_train(&r, NULL, &o, NULL, &m), REEL_EINVAL);
    r.n = 0;
    assert_int_equal(reel_mlp_train(&r, NULL, &o, NULL, &m), REEL_EINVAL);
    uint32_t wide = REEL_MLP_MAX_WIDTH + 1;
    assert_int_equal(reel_mlp_new(3, 1, &wide, 1, &m), REEL_EINVAL);
    assert_int_equal(reel_mlp_new(REEL_MLP_MAX_FEATURES + 1, 0, NULL, 1, &m),
                     REEL_EINVAL);
    reel_mlp_free(NULL);
    reel_rows_free(&r);
    reel_rows_free(&other);
}

/*
 * For tests/reference/mlp_torch.py: with REEL_MLP_ORACLE_DIR set, writes a
 * trained model (model.reel), 200 raw rows with missing values (x.f32,
 * 200 x 4 little-endian floats) and their scores (p.f32) there.
 */
static void oracle_files_for_torch(void **state)
{
    (void)state;
    const char *dir = getenv("REEL_MLP_ORACLE_DIR");
    if (!dir)
        skip();
    reel_rows test;
    reel_mlp *m = trained_circles(7, &test);
    char *path = test_path(dir, "model.reel");
    reel_diag d;
    assert_int_equal(reel_mlp_save(m, path, &d), 0);
    free(path);
    const size_t n = 200;
    for (size_t i = 0; i < n; i += 7)
        test.x[i * 4 + i % 4] = NAN;
    float *p = malloc(n * sizeof *p);
    reel_mlp_predict(m, test.x, n, 4, p);
    path = test_path(dir, "x.f32");
    spill(path, (const char *)test.x, n * 4 * sizeof(float));
    free(path);
    path = test_path(dir, "p.f32");
    spill(path, (const char *)p, n * sizeof(float));
    free(path);
    free(p);
    reel_mlp_free(m);
    reel_rows_free(&test);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gradient_matches_central_differences),
        cmocka_unit_test(gradient_fast_and_naive_agree),
        cmocka_unit_test(predict_fast_and_naive_agree),
        cmocka_unit_test(learns_a_nonlinear_problem),
        cmocka_unit_test(early_stopping_keeps_the_best_epoch),
        cmocka_unit_test(one_seed_gives_one_model),
        cmocka_unit_test(one_blas_thread_whatever_openblas_was_set_to),
        cmocka_unit_test(missing_feature_counts_as_its_mean),
        cmocka_unit_test(file_round_trip_gives_identical_predictions),
        cmocka_unit_test(damaged_files_are_refused),
        cmocka_unit_test(concurrent_readers_agree),
        cmocka_unit_test(bad_arguments_are_refused),
        cmocka_unit_test(oracle_files_for_torch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
