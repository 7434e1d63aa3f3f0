/*
 * ranker: the model that orders a request's candidates, behind one face
 * whichever kind it is: boosted trees (trained by libxgboost, scored by
 * reel_gbtree) or the MLP (reel_mlp).
 *
 * Files: DIR/models/ranker.json is XGBoost's JSON model
 * (docs/formats/xgboost-model.md); DIR/models/ranker-mlp.reel the MLP
 * (docs/formats/mlp.md). reel_ranker_load() tells them apart by name.
 * The MLP's inputs are sign(x) ln(1 + |x|) of the feature row (counts
 * and ages are heavy-tailed); the ranker applies it, so the file's model
 * is the network on squashed rows.
 * Rows have REEL_F__COUNT features (src/rank/features.h); a model with
 * another width is refused.
 *
 * Ownership: a ranker owns its model. Thread rules: read-only once
 * trained or loaded; reel_ranker_score() may run on any number of threads.
 */
#ifndef REEL_RANK_RANKER_H
#define REEL_RANK_RANKER_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/progress.h"
#include "rank/gbtree.h"
#include "rank/mlp.h"
#include "rank/rows.h"
#include "rank/xgb.h"

typedef enum reel_ranker_kind {
    REEL_RANKER_XGBOOST,
    REEL_RANKER_MLP
} reel_ranker_kind;

/* "xgboost", "mlp". */
const char *reel_ranker_kind_name(reel_ranker_kind k);
int reel_ranker_kind_parse(const char *s, reel_ranker_kind *out);
/* The model's file name under DIR/models/. */
const char *reel_ranker_file(reel_ranker_kind k);

typedef struct reel_ranker reel_ranker;

typedef struct reel_ranker_opts {
    reel_ranker_kind kind; /* XGBOOST */
    reel_xgb_opts xgb;     /* threads 1: this machine class has 2 cores */
    reel_mlp_opts mlp;
    double valid_fraction; /* 0.1: the latest rows validate */
} reel_ranker_opts;

reel_ranker_opts reel_ranker_opts_default(void);

typedef struct reel_ranker_report {
    size_t train_rows, valid_rows, train_pos, valid_pos;
    double valid_auc, valid_logloss;
    /* The popularity-only model on the same validation rows: AUC of the
     * video's positive-event count (v_views) as the score. */
    double popularity_auc;
    uint32_t rounds; /* trees or epochs kept */
    double seconds;
} reel_ranker_report;

/*
 * Splits rows in time (the latest valid_fraction validates), trains,
 * writes the model to `path` (NULL: not written) and loads it for scoring
 * as the server would. REEL_EINVAL when the rows cannot train a model.
 */
int reel_ranker_train(const reel_rows *rows, const reel_ranker_opts *o,
                      const char *path, reel_progress *p, reel_ranker **out,
                      reel_ranker_report *rep, reel_diag *d);

int reel_ranker_load(const char *path, reel_ranker **out, reel_diag *d);
void reel_ranker_free(reel_ranker *r);

reel_ranker_kind reel_ranker_kind_of(const reel_ranker *r);

/* Scores of n rows (row i at x + i * stride), higher first: probabilities
 * of a positive label, or margins for a rank:ndcg model. */
void reel_ranker_score(const reel_ranker *r, const float *x, size_t n,
                       size_t stride, float *out);

/* The trees behind an XGBoost ranker (explanations); NULL for the MLP. */
const reel_gbtree *reel_ranker_trees(const reel_ranker *r);

#endif
