/*
 * bench_rank: scoring the candidates of one request with a boosted-tree
 * model, reel's evaluator (src/rank/gbtree) against libxgboost's C API in
 * the same process on the same rows.
 *
 *   bench_rank DIR [N_CANDIDATES]   trains 300 trees of depth 6 on 20k
 *                                   synthetic rows of 40 features (10%
 *                                   missing) with libxgboost, saves the
 *                                   JSON model in DIR, loads it with
 *                                   reel_gbtree, then scores N_CANDIDATES
 *                                   rows (default 500) over and over.
 *
 * Prints one JSON line: seconds per request and rows per second for each
 * scorer (best of 7 runs, each long enough to time), and the largest
 * difference between reel's and libxgboost's outputs on those rows.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/rng.h"
#include "rank/gbtree.h"
#include "rank/xgb.h"

enum { NF = 40, N_TRAIN = 20000, N_TREES = 300, DEPTH = 6, RUNS = 7 };

typedef struct ctx {
    const reel_gbtree *g;
    reel_xgb *m;
    const float *x;
    size_t n;
    float *out;
} ctx;

static void fill_row(reel_rng *r, float *x)
{
    for (int j = 0; j < NF; j++)
        x[j] = reel_rng_uniform(r) < 0.1 ? NAN : (float)reel_rng_normal(r);
}

static double val(const float *x, int j)
{
    return isnan(x[j]) ? 0 : x[j];
}

static void score_reel(ctx *c)
{
    reel_gbtree_predict(c->g, c->x, c->n, NF, c->out);
}

static void score_scalar(ctx *c)
{
    reel_gbtree_predict_scalar(c->g, c->x, c->n, NF, c->out);
}

static void score_naive(ctx *c)
{
    reel_gbtree_predict_naive(c->g, c->x, c->n, NF, c->out);
}

static void score_xgb(ctx *c)
{
    reel_diag d;
    if (reel_xgb_predict(c->m, c->x, c->n, NF, c->out, &d) != 0) {
        fprintf(stderr, "bench_rank: %s\n", d.msg);
        exit(1);
    }
}

/* Seconds per call: best of RUNS runs of enough calls to take ~0.2 s. */
static double timed(void (*f)(ctx *), ctx *c)
{
    double t0 = reel_clock_mono();
    f(c);
    double one = reel_clock_mono() - t0;
    long reps = one > 0 ? (long)(0.2 / one) : 1000;
    if (reps < 1)
        reps = 1;
    double best = INFINITY;
    for (int r = 0; r < RUNS; r++) {
        t0 = reel_clock_mono();
        for (long i = 0; i < reps; i++)
            f(c);
        double dt = (reel_clock_mono() - t0) / (double)reps;
        if (dt < best)
            best = dt;
    }
    return best;
}

static void set_threads(reel_xgb *m, int threads)
{
    reel_diag d;
    if (reel_xgb_set_threads(m, threads, &d) != 0) {
        fprintf(stderr, "bench_rank: %s\n", d.msg);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_rank DIR [N_CANDIDATES]\n");
        return 2;
    }
    size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 500;
    if (n == 0)
        n = 500;
    reel_rng r;
    reel_rng_seed(&r, 2024);
    reel_rows tr;
    reel_rows_init(&tr, NF);
    for (size_t i = 0; i < N_TRAIN; i++) {
        float x[NF];
        fill_row(&r, x);
        double s = val(x, 0) + 0.5 * val(x, 1) * val(x, 2) + (val(x, 3) > 0.5) -
                   0.4 * fabs(val(x, 4)) + 0.3 * sin(2 * val(x, 5)) +
                   0.2 * val(x, 6) * val(x, 7);
        for (int j = 8; j < NF; j++)
            s += 0.05 * val(x, j);
        s += reel_rng_normal(&r);
        memcpy(reel_rows_push(&tr, (float)(s > 0), (uint32_t)i, (int64_t)i), x,
               sizeof x);
    }
    reel_xgb_opts o = reel_xgb_opts_default();
    o.n_trees = N_TREES;
    o.max_depth = DEPTH;
    o.early_stopping_rounds = 0;
    o.threads = 1;
    reel_xgb *m;
    reel_diag d;
    double t0 = reel_clock_mono();
    if (reel_xgb_train(&tr, NULL, &o, NULL, &m, NULL, &d) != 0) {
        fprintf(stderr, "bench_rank: train: %s\n", d.msg);
        return 1;
    }
    double train_s = reel_clock_mono() - t0;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.json", argv[1]);
    reel_gbtree *g;
    if (reel_xgb_save(m, path, &d) != 0 || reel_gbtree_load(path, &g, &d)) {
        fprintf(stderr, "bench_rank: %s\n", d.msg);
        return 1;
    }

    float *x = malloc(n * NF * sizeof *x);
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    for (size_t i = 0; i < n; i++)
        fill_row(&r, x + i * NF);
    ctx c = {.g = g, .m = m, .x = x, .n = n, .out = a};

    /* The two agree on these rows before anything is timed. */
    set_threads(m, 1);
    score_reel(&c);
    c.out = b;
    score_xgb(&c);
    c.out = a;
    double diff = 0;
    for (size_t i = 0; i < n; i++)
        diff = fmax(diff, fabs((double)a[i] - b[i]));

    double t_reel = timed(score_reel, &c);
    double t_scalar = timed(score_scalar, &c);
    double t_naive = timed(score_naive, &c);
    double t_xgb1 = timed(score_xgb, &c);
    set_threads(m, 0);
    double t_xgbn = timed(score_xgb, &c);

    printf("{\"candidates\": %zu, \"trees\": %u, \"depth\": %u, "
           "\"features\": %d, \"kernel\": \"%s\", \"train_s\": %.2f, "
           "\"max_abs_diff\": %.3g, "
           "\"reel_s\": %.3e, \"reel_scalar_s\": %.3e, \"reel_naive_s\": "
           "%.3e, \"xgb1_s\": %.3e, \"xgbn_s\": %.3e}\n",
           n, reel_gbtree_n_trees(g), reel_gbtree_max_depth(g), NF,
           reel_gbtree_kernel(), train_s, diff, t_reel, t_scalar, t_naive,
           t_xgb1, t_xgbn);
    free(x);
    free(a);
    free(b);
    reel_gbtree_free(g);
    reel_xgb_free(m);
    reel_rows_free(&tr);
    return 0;
}
