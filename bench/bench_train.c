/*
 * bench_train: how the two rankers' training time grows with the number
 * of rows and of features (issue: Ranking).
 *
 *   bench_train [MAX_ROWS]   rows n in MAX_ROWS x {1/10, 3/10, 1} (default
 *                            100000: 10k, 30k, 100k), features f in {10,
 *                            30, 100}
 *   bench_train --xgb N F    one XGBoost training of N rows, F features;
 *                            prints {"xgb_s": seconds, "auc": AUC}
 *
 * One deterministic synthetic table of MAX_ROWS rows and 100 features is
 * generated (even features normal, odd ones uniform in [-1, 1), each
 * value missing with probability 0.1; the label is a non-linear function
 * of features 0..7 plus noise, thresholded so that 10% are positive).
 * Each (n, f) takes its first n rows and first f features, splits off the
 * last 10% as validation (reel_rows_split_tail) and trains
 *   XGBoost (reel_xgb_train): defaults but 100 trees of depth 6, no early
 *     stopping, 1 thread;
 *   the MLP (reel_mlp_train): defaults but 5 epochs, no early stopping,
 *     1 OpenBLAS thread;
 * RUNS times each, keeping the fastest (the machine may be shared), timed
 * with reel_clock_mono() around the call (which includes building
 * libxgboost's DMatrix or the MLP's standardisation, and scoring the
 * validation rows after each round or epoch). Prints a markdown section
 * body: one table per model, the growth ratios and what they say. Run it
 * with OMP_NUM_THREADS=1 (bench/train.sh says why).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/rng.h"
#include "rank/mlp.h"
#include "rank/xgb.h"

enum {
    N_N = 3,
    N_F = 3,
    MAX_F = 100,
    N_TREES = 100,
    DEPTH = 6,
    EPOCHS = 5,
    RUNS = 5
};

static const uint32_t feats[N_F] = {10, 30, 100};

typedef struct cell {
    double s;   /* wall seconds of one training */
    double auc; /* validation AUC of the kept model */
} cell;

static double val(const float *x, int j)
{
    return isnan(x[j]) ? 0 : x[j];
}

static int cmp_double(const void *a, const void *b)
{
    double u = *(const double *)a, v = *(const double *)b;
    return (u > v) - (u < v);
}

/* Fills x (n rows of MAX_F) and y; returns the fraction of positives. */
static double generate(size_t n, float *x, float *y)
{
    reel_rng r;
    reel_rng_seed(&r, 2025);
    double *s = malloc(n * sizeof *s);
    for (size_t i = 0; i < n; i++) {
        float *row = x + i * MAX_F;
        for (int j = 0; j < MAX_F; j++) {
            double v =
                j % 2 ? 2 * reel_rng_uniform(&r) - 1 : reel_rng_normal(&r);
            row[j] = reel_rng_uniform(&r) < 0.1 ? NAN : (float)v;
        }
        s[i] = val(row, 0) + 0.8 * val(row, 1) * val(row, 2) +
               (val(row, 3) > 0.3) - 0.6 * fabs(val(row, 4)) +
               0.6 * sin(3 * val(row, 5)) + 0.5 * val(row, 6) * val(row, 7) +
               0.7 * reel_rng_normal(&r);
    }
    /* The threshold is the 90th percentile of the scores: 10% positives. */
    double *sorted = malloc(n * sizeof *sorted);
    memcpy(sorted, s, n * sizeof *s);
    qsort(sorted, n, sizeof *sorted, cmp_double);
    double cut = sorted[(size_t)(0.9 * (double)n)];
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        y[i] = s[i] > cut;
        pos += s[i] > cut;
    }
    free(sorted);
    free(s);
    return (double)pos / (double)n;
}

static void split(const float *x, const float *y, size_t n, uint32_t f,
                  reel_rows *train, reel_rows *valid)
{
    reel_rows all;
    reel_rows_init(&all, f);
    for (size_t i = 0; i < n; i++)
        memcpy(reel_rows_push(&all, y[i], (uint32_t)i, (int64_t)i),
               x + i * MAX_F, f * sizeof *x);
    if (reel_rows_split_tail(&all, 0.1, train, valid) != 0) {
        fprintf(stderr, "bench_train: split\n");
        exit(1);
    }
    reel_rows_free(&all);
}

static cell train_xgb(const reel_rows *train, const reel_rows *valid)
{
    reel_xgb_opts o = reel_xgb_opts_default();
    o.n_trees = N_TREES;
    o.max_depth = DEPTH;
    o.early_stopping_rounds = 0;
    o.threads = 1;
    reel_xgb *m;
    reel_xgb_report rep;
    reel_diag d;
    double t0 = reel_clock_mono();
    if (reel_xgb_train(train, valid, &o, NULL, &m, &rep, &d) != 0) {
        fprintf(stderr, "bench_train: xgb: %s\n", d.msg);
        exit(1);
    }
    cell c = {reel_clock_mono() - t0, rep.valid_auc};
    reel_xgb_free(m);
    return c;
}

static cell train_mlp(const reel_rows *train, const reel_rows *valid)
{
    reel_mlp_opts o = reel_mlp_opts_default();
    o.max_epochs = EPOCHS;
    o.patience = 0;
    o.threads = 1;
    reel_mlp *m;
    double t0 = reel_clock_mono();
    int rc = reel_mlp_train(train, valid, &o, NULL, &m);
    if (rc != 0) {
        fprintf(stderr, "bench_train: mlp: %s\n", reel_strerror(rc));
        exit(1);
    }
    cell c = {reel_clock_mono() - t0, reel_mlp_best(m).valid_auc};
    reel_mlp_free(m);
    return c;
}

static const char *kilo(size_t n)
{
    static char buf[4][32];
    static int k;
    char *b = buf[k++ % 4];
    if (n % 1000 == 0)
        snprintf(b, sizeof buf[0], "%zuk", n / 1000);
    else
        snprintf(b, sizeof buf[0], "%zu", n);
    return b;
}

static void table(const char *name, const size_t *rows, cell t[N_N][N_F])
{
    printf("%s: training seconds (validation AUC).\n\n", name);
    printf("| rows (train + valid) | %u features | %u features | %u features "
           "|\n",
           feats[0], feats[1], feats[2]);
    printf("|---|---:|---:|---:|\n");
    for (int i = 0; i < N_N; i++) {
        printf("| %s (%s + %s) |", kilo(rows[i]), kilo(rows[i] - rows[i] / 10),
               kilo(rows[i] / 10));
        for (int j = 0; j < N_F; j++)
            printf(" %.2f (%.3f) |", t[i][j].s, t[i][j].auc);
        printf("\n");
    }
    printf("\n");
}

/* How a ratio for a 10x step reads as an exponent: time ~ size^e. */
static const char *shape(double ratio)
{
    double e = log10(ratio);
    if (e < 0.6)
        return "well under linear";
    if (e < 0.85)
        return "less than linear";
    if (e <= 1.15)
        return "roughly linear";
    return "more than linear";
}

/* One XGBoost cell, for comparing environments (bench/train.sh runs it
 * with and without OMP_NUM_THREADS=1). */
static int one_xgb(size_t n, uint32_t f)
{
    if (n < 100 || f < 8 || f > MAX_F) {
        fprintf(stderr, "bench_train: --xgb N F: N >= 100, 8 <= F <= %d\n",
                MAX_F);
        return 2;
    }
    float *x = malloc(n * MAX_F * sizeof *x);
    float *y = malloc(n * sizeof *y);
    generate(n, x, y);
    reel_rows train, valid;
    split(x, y, n, f, &train, &valid);
    cell c = train_xgb(&train, &valid);
    printf("{\"xgb_s\": %.3f, \"auc\": %.4f}\n", c.s, c.auc);
    reel_rows_free(&train);
    reel_rows_free(&valid);
    free(x);
    free(y);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--xgb") == 0)
        return one_xgb(strtoul(argv[2], NULL, 10),
                       (uint32_t)strtoul(argv[3], NULL, 10));
    size_t max_n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    if (max_n < 1000)
        max_n = 100000;
    size_t rows[N_N] = {max_n / 10, 3 * max_n / 10, max_n};
    float *x = malloc(max_n * MAX_F * sizeof *x);
    float *y = malloc(max_n * sizeof *y);
    double pos = generate(max_n, x, y);

    /* One small training of each first, so that one-time costs (OpenMP's
     * and OpenBLAS's thread pools, page faults) are not charged to the
     * first cell. */
    reel_rows train, valid;
    split(x, y, rows[0] / 10, feats[0], &train, &valid);
    train_xgb(&train, &valid);
    train_mlp(&train, &valid);
    reel_rows_free(&train);
    reel_rows_free(&valid);

    cell tx[N_N][N_F], tm[N_N][N_F];
    double t0 = reel_clock_mono();
    for (int i = 0; i < N_N; i++)
        for (int j = 0; j < N_F; j++) {
            split(x, y, rows[i], feats[j], &train, &valid);
            /* Trainings are deterministic: the runs differ only in time. */
            for (int k = 0; k < RUNS; k++) {
                cell cx = train_xgb(&train, &valid);
                cell cm = train_mlp(&train, &valid);
                if (k == 0 || cx.s < tx[i][j].s)
                    tx[i][j] = cx;
                if (k == 0 || cm.s < tm[i][j].s)
                    tm[i][j] = cm;
            }
            fprintf(stderr, "bench_train: n=%zu f=%u xgb %.2f s mlp %.2f s\n",
                    rows[i], feats[j], tx[i][j].s, tm[i][j].s);
            reel_rows_free(&train);
            reel_rows_free(&valid);
        }
    double total = reel_clock_mono() - t0;

    reel_mlp_opts mo = reel_mlp_opts_default();
    /* Paragraphs are printed as one line each; markdown wraps them. */
    printf("Synthetic rows, %.1f%% positive: %d features (even ones normal, "
           "odd ones uniform), each value missing with probability 0.1; the "
           "label is a non-linear function of features 0..7 plus noise. "
           "Each size takes the first n rows and f features and holds out "
           "the last 10%% for validation (reel_rows_split_tail). XGBoost "
           "(reel_xgb_train): %d trees of depth %d, hist, no early stopping, "
           "1 thread. MLP (reel_mlp_train): %u-%u hidden units, batch %u, "
           "%d epochs, no early stopping, 1 OpenBLAS thread. Each cell is "
           "the fastest of %d identical trainings, timing the whole call "
           "(including building the training matrix and scoring the "
           "validation rows after each round or epoch); all %d trainings "
           "took %.0f s. The MLP's AUC is that of %d epochs, not of a "
           "converged model.\n\n",
           100 * pos, MAX_F, N_TREES, DEPTH, mo.hidden[0], mo.hidden[1],
           mo.batch, EPOCHS, RUNS, 2 * N_N * N_F * RUNS, total, EPOCHS);
    table("XGBoost", rows, tx);
    table("MLP", rows, tm);

    /* The growth asked for: rows x10 at 30 features, features x10 at the
     * middle row count. */
    double xr = tx[2][1].s / tx[0][1].s, xf = tx[1][2].s / tx[1][0].s;
    double mr = tm[2][1].s / tm[0][1].s, mf = tm[1][2].s / tm[1][0].s;
    /* Multiply-adds per row of the MLP's forward pass: only the first
     * layer's grow with features. */
    double h0 = mo.hidden[0], h1 = mo.hidden[1];
    double macs_lo = feats[0] * h0 + h0 * h1 + h1;
    double macs_hi = feats[2] * h0 + h0 * h1 + h1;
    printf("| model | time(%s rows) / time(%s rows), %u features | "
           "time(%u features) / time(%u features), %s rows |\n",
           kilo(rows[2]), kilo(rows[0]), feats[1], feats[2], feats[0],
           kilo(rows[1]));
    printf("|---|---:|---:|\n");
    printf("| XGBoost | %.2fx | %.2fx |\n", xr, xf);
    printf("| MLP | %.2fx | %.2fx |\n\n", mr, mf);

    printf("XGBoost: 10x the rows took %.1fx the time (%s, time ~ n^%.2f): "
           "each round builds its gradient histograms in a pass over the "
           "rows",
           xr, shape(xr), log10(xr));
    if (xr < 7)
        printf(", but at these sizes much of a round's cost is per node, "
               "not per row: searching each feature's %u bins for the best "
               "split, which takes as long for 10k rows as for 100k",
               reel_xgb_opts_default().max_bin);
    printf(". 10x the features took %.1fx (%s, ~ f^%.2f): the hist method "
           "builds one histogram per feature at each node and scans every "
           "feature's bins for the best split",
           xf, shape(xf), log10(xf));
    if (xf < 8.5)
        printf("; the per-round work that does not depend on features "
               "(gradients, predictions, the validation pass) keeps it "
               "below 10x");
    printf(".\n\n");
    printf("MLP: 10x the rows took %.1fx the time (%s, ~ n^%.2f): an epoch "
           "is a pass over the rows. 10x the features took %.1fx (%s, ~ "
           "f^%.2f): only the first layer (features x %.0f weights) grows "
           "with features; the multiply-adds per row go from %.0f at %u "
           "features to %.0f at %u, %.1fx",
           mr, shape(mr), log10(mr), mf, shape(mf), log10(mf), h0, macs_lo,
           feats[0], macs_hi, feats[2], macs_hi / macs_lo);
    if (mf < 0.8 * macs_hi / macs_lo)
        printf(", and time grows less than that because work that does not "
               "depend on features (the later layers, the loss, one call "
               "per layer per batch) takes a large share of each step");
    printf(".\n");
    free(x);
    free(y);
    return 0;
}
