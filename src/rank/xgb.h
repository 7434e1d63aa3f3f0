/*
 * xgb: gradient-boosted trees trained by libxgboost through its C API,
 * and the two validation metrics every ranker reports (AUC, log loss).
 *
 * reel_xgb_train() boosts up to n_trees rounds of the "hist" tree method on
 * a reel_rows table (NAN = missing). With a validation table it evaluates
 * each round (XGBoosterEvalOneIter, whose text it parses), remembers the
 * best round and stops after early_stopping_rounds rounds without
 * improvement; the model it returns is sliced (XGBoosterSlice) to the
 * trees of rounds 0..best, so what is saved and served is the best model,
 * not the last. The report then scores the validation rows with the kept
 * model and computes AUC and log loss here, in C (reel_auc,
 * reel_logloss), beside the values XGBoost printed.
 *
 * A reel_xgb is a libxgboost Booster. reel_xgb_save() writes XGBoost's own
 * JSON model (docs/formats/xgboost-model.md), the file reel_gbtree loads to
 * serve; reel_xgb_predict() and reel_xgb_contrib() score with libxgboost
 * itself, the reference in reel_gbtree's parity tests and its peer in
 * bench/rank.sh. libxgboost's error convention is translated here, once:
 * a failed call returns a REEL_E* code and XGBGetLastError()'s text goes
 * into the diag when one is passed.
 *
 * Determinism: one seed and one thread count give the same trees, bit for
 * bit (tests fix threads). Thread rules: libxgboost runs its own OpenMP
 * threads inside each call; one thread at a time may use a reel_xgb.
 * reel_auc and reel_logloss are reentrant.
 */
#ifndef REEL_RANK_XGB_H
#define REEL_RANK_XGB_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/progress.h"
#include "rank/rows.h"

typedef enum reel_xgb_objective {
    REEL_XGB_BINARY_LOGISTIC = 0, /* "binary:logistic": labels 0 or 1 */
    REEL_XGB_RANK_NDCG = 1,       /* "rank:ndcg": groups are the queries */
} reel_xgb_objective;

typedef struct reel_xgb_opts {
    reel_xgb_objective objective; /* binary:logistic */
    uint32_t n_trees;             /* 300: boosting rounds at most */
    uint32_t max_depth;           /* 6 */
    double eta;                   /* 0.1 */
    double subsample;             /* 1: fraction of rows per tree */
    double colsample_bytree;      /* 1: fraction of features per tree */
    double min_child_weight;      /* 1: least hessian in a leaf */
    double lambda;                /* 1: L2 penalty on leaf weights */
    double base_score;            /* 0.5: the start (a probability for
                                     binary:logistic, a margin for ranking) */
    uint32_t max_bin;             /* 256: histogram bins per feature */
    /* 20; 0: never stop early, keep every round's tree */
    uint32_t early_stopping_rounds;
    /* The early-stopping metric, any XGBoost eval_metric name; NULL gives
     * "logloss" (binary:logistic) or "ndcg@10" (rank:ndcg). auc, aucpr,
     * ndcg* and map* are maximised, the others minimised. */
    const char *metric;
    int threads;   /* 0: all CPUs */
    uint64_t seed; /* 42 (XGBoost keeps seed mod 2^31) */
    /* 0; 1: XGBoost also evaluates auc and logloss every round, for the
     * report's xgb_auc / xgb_logloss (a check of reel_auc; costs time) */
    int cross_check;
} reel_xgb_opts;

reel_xgb_opts reel_xgb_opts_default(void);

typedef struct reel_xgb_report {
    uint32_t n_rounds;       /* rounds boosted before stopping */
    uint32_t best_iteration; /* 0-based; the kept model has best + 1 trees */
    char metric[32];         /* the early-stopping metric's name */
    double best_metric;      /* its value at best_iteration, from XGBoost */
    /* XGBoost's own auc and logloss at best_iteration (binary:logistic
     * with cross_check only, else NAN): the check of the two below. */
    double xgb_auc;
    double xgb_logloss;
    /* Computed in C from the kept model's validation predictions: AUC of
     * the scores against y > 0, and log loss (binary:logistic only, else
     * NAN). */
    double valid_auc;
    double valid_logloss;
    double seconds; /* wall time of the whole call */
} reel_xgb_report;

typedef struct reel_xgb reel_xgb;

/*
 * Trains on `train`, stopping early on `valid` (NULL: all n_trees rounds,
 * and the report's validation fields are NAN). Both tables have the same
 * n_features; for rank:ndcg each run of equal group ids is one query.
 * Labels must be 0 or 1 for binary:logistic, non-negative for rank:ndcg.
 * `p` (optional) counts rounds; `rep` (optional) is filled on success.
 * REEL_EINVAL for bad options or tables, or what libxgboost refused.
 */
int reel_xgb_train(const reel_rows *train, const reel_rows *valid,
                   const reel_xgb_opts *o, reel_progress *p, reel_xgb **out,
                   reel_xgb_report *rep, reel_diag *d);

/* Loads an XGBoost model file (JSON or libxgboost's binary) into
 * libxgboost. REEL_ENOENT if it is not there, REEL_EIO if it cannot be
 * read, REEL_EFORMAT if libxgboost refuses it. */
int reel_xgb_load(const char *path, reel_xgb **out, reel_diag *d);

/* Writes the model; a path ending in ".json" gives XGBoost's JSON format
 * (the one reel_gbtree reads). REEL_EIO on failure. */
int reel_xgb_save(reel_xgb *m, const char *path, reel_diag *d);

void reel_xgb_free(reel_xgb *m);

/* Sets the OpenMP threads libxgboost uses for this model's predictions (0:
 * all CPUs). */
int reel_xgb_set_threads(reel_xgb *m, int threads, reel_diag *d);

uint32_t reel_xgb_n_features(const reel_xgb *m);
/* Boosting rounds in the model (trees, as one tree is grown per round). */
uint32_t reel_xgb_n_trees(const reel_xgb *m);

/*
 * Scores n_rows rows (row i starts at x + i * stride, n_features floats,
 * NAN = missing) with libxgboost's in-place dense prediction: out[i] is a
 * probability for binary:logistic and a margin for rank:ndcg.
 */
int reel_xgb_predict(reel_xgb *m, const float *x, size_t n_rows, size_t stride,
                     float *out, reel_diag *d);

/* libxgboost's exact TreeSHAP contributions: phi is n_rows rows of
 * n_features + 1 floats, the last the bias; each row sums to the margin. */
int reel_xgb_contrib(reel_xgb *m, const float *x, size_t n_rows, size_t stride,
                     float *phi, reel_diag *d);

/*
 * Area under the ROC curve of `score` against label > 0, with tied scores
 * counted as half a correct pair (the trapezoid rule, as XGBoost's "auc").
 * NAN when either class is empty.
 */
double reel_auc(const float *score, const float *label, size_t n);

/* Mean binary log loss of probabilities p against labels in [0, 1], p
 * clipped to [1e-16, 1 - 1e-16] as XGBoost's "logloss". NAN when n is 0. */
double reel_logloss(const float *p, const float *label, size_t n);

#endif
