/*
 * gbtree: a fast evaluator of XGBoost tree ensembles, in C, for serving.
 *
 * reel_gbtree_load() reads the JSON model libxgboost writes (XGBoost's own
 * format; the fields reel reads and everything it checks are in
 * docs/formats/xgboost-model.md): a "gbtree" booster with one output,
 * numerical splits, and an objective whose transform reel knows
 * (binary:logistic, reg:logistic, binary:logitraw, reg:squarederror,
 * rank:pairwise, rank:ndcg, rank:map). DART, gblinear, categorical splits,
 * multi-class and multi-target models are refused with REEL_EUNSUPPORTED;
 * anything malformed (bad JSON, a child index out of range, a node reached
 * twice, a feature index >= num_feature...) with REEL_EFORMAT, and the diag
 * names the tree, the field and the node.
 *
 * Semantics, exactly libxgboost's: at a split on feature f with threshold
 * t a row goes left when x[f] < t (a float32 comparison) and right
 * otherwise; NAN goes to the node's default child. The margin is the base
 * margin (base_score, through the logit for the logistic objectives) plus
 * the leaf of each tree, summed in float32 in tree order; the output is
 * sigmoid(margin) for binary:logistic and reg:logistic, the margin for the
 * others. reel_gbtree_predict() agrees with libxgboost within 1e-6.
 *
 * Layout: trees of depth <= 8 are stored complete (a tree of depth D has
 * 2^D - 1 split slots and 2^D leaf slots in breadth-first order; a leaf
 * shallower than D is padded with splits whose both sides reach it), so a
 * row walks exactly D steps, i = 2i + 1 + right, with no branch; right is
 * x >= t, or the node's default-right bit when x is NAN. Deeper trees are
 * stored breadth-first with children adjacent and walked in a loop.
 * Prediction loops over blocks of rows, trees outside and rows inside, so
 * one tree stays in L1 while a block of candidates streams past it. With
 * AVX-512 (checked at run time; rows of at most 256 features) 4 x 16 rows
 * walk a tree together: the block is copied feature-major into 16 KiB of
 * stack, so on the first five levels, where a level has at most 16 split
 * slots, a row's value is a blend of whole feature columns rather than a
 * gather; split slots and leaves, up to 64 per level, come from registers
 * by permutation; deeper levels gather.
 * reel_gbtree_predict_scalar() is the same layout without SIMD (four rows
 * at a time) and reel_gbtree_predict_naive() the straightforward walk of
 * the nodes as loaded; all three add the same floats in the same order,
 * and the tests hold them to the same bits.
 *
 * reel_gbtree_contrib() explains one row: exact TreeSHAP (Lundberg, Erion
 * and Lee, 2018), as libxgboost's pred_contribs, with node covers from the
 * model's sum_hessian; the contributions and the bias sum to the margin.
 *
 * Ownership: the caller owns a loaded model and frees it with
 * reel_gbtree_free(). Thread rules: a loaded model is read-only; any number
 * of threads may predict and explain with it at once.
 */
#ifndef REEL_RANK_GBTREE_H
#define REEL_RANK_GBTREE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Limits on outside input: a bigger file is REEL_ETOOBIG, a deeper tree
 * REEL_EUNSUPPORTED. */
#define REEL_GBTREE_MAX_FILE (1ULL << 30)
#define REEL_GBTREE_MAX_DEPTH 64
#define REEL_GBTREE_MAX_FEATURES (1U << 24)

typedef struct reel_gbtree reel_gbtree;

/*
 * Loads an XGBoost JSON model file (at most REEL_GBTREE_MAX_FILE bytes).
 * REEL_EIO if it cannot be read; on a format error d->file is set to
 * `path` (borrowed) and d->line, for bad JSON, to the line.
 */
int reel_gbtree_load(const char *path, reel_gbtree **out, reel_diag *d);

/* The same from a model held in memory (len bytes, no NUL needed). */
int reel_gbtree_parse(const char *json, size_t len, reel_gbtree **out,
                      reel_diag *d);

void reel_gbtree_free(reel_gbtree *g);

uint32_t reel_gbtree_n_features(const reel_gbtree *g);
uint32_t reel_gbtree_n_trees(const reel_gbtree *g);
/* The deepest tree's depth (a single leaf is depth 0). */
uint32_t reel_gbtree_max_depth(const reel_gbtree *g);
/* XGBoost's objective name, e.g. "binary:logistic". */
const char *reel_gbtree_objective(const reel_gbtree *g);
/* The margin every row starts from (base_score in margin space). */
float reel_gbtree_base_margin(const reel_gbtree *g);
/* The kernel reel_gbtree_predict() uses here: "avx512" or "scalar". */
const char *reel_gbtree_kernel(void);

/*
 * Scores n_rows rows in one call: row i is x + i * stride (stride >=
 * n_features floats, NAN = missing) and out[i] its output (a probability
 * for the logistic objectives, else the margin). Cannot fail; allocates
 * nothing.
 */
void reel_gbtree_predict(const reel_gbtree *g, const float *x, size_t n_rows,
                         size_t stride, float *out);
/* The margin, before the objective's transform. */
void reel_gbtree_predict_margin(const reel_gbtree *g, const float *x,
                                size_t n_rows, size_t stride, float *out);
/* The same layout without SIMD: the twin of reel_gbtree_predict. */
void reel_gbtree_predict_scalar(const reel_gbtree *g, const float *x,
                                size_t n_rows, size_t stride, float *out);
/* The slow twin: each row walks each tree's nodes as loaded. */
void reel_gbtree_predict_naive(const reel_gbtree *g, const float *x,
                               size_t n_rows, size_t stride, float *out);

/*
 * Each feature's contribution to one row's margin (exact TreeSHAP): phi
 * has n_features + 1 floats, the last the bias (base margin plus each
 * tree's expected value). sum(phi) is the margin up to float rounding.
 * Allocates one scratch block per call.
 */
void reel_gbtree_contrib(const reel_gbtree *g, const float *row, float *phi);

#endif
