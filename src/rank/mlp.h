/*
 * mlp: the neural ranker, a small multilayer perceptron that scores a
 * candidate's feature row with the probability of a positive label.
 *
 * Inputs are standardised with the mean and standard deviation of each
 * feature in the training rows; a missing feature (NaN, or any non-finite
 * value) becomes 0 after standardising, i.e. it counts as the mean. Then
 * 0 to 3 hidden ReLU layers (64 and 32 units by default) and one sigmoid
 * output unit. The function is specified with the file format in
 * docs/formats/mlp.md, whose weight layout is PyTorch's nn.Linear.
 *
 * Training minimises the mean binary cross-entropy (plus, optionally,
 * weight_decay / 2 times the sum of squared weights, biases excluded: an
 * L2 term in the loss, not AdamW's decoupled decay) by Adam over
 * mini-batches drawn by a seeded shuffle, from He-initialised
 * weights (normal, variance 2 / fan-in; biases 0). After each epoch the
 * validation rows, when given, are scored: log loss and AUC are reported
 * and the weights of the epoch with the lowest validation log loss are
 * kept; training stops after `patience` epochs without a lower one.
 * Training is sequential on the calling thread, and by default OpenBLAS
 * runs its products on one thread too (opts.threads), so one seed gives
 * the same model bit for bit: OpenBLAS's results change with the number
 * of threads it splits a product over.
 *
 * The forward and backward passes are matrix products over a mini-batch
 * (OpenBLAS cblas_sgemm), the fast path; reel_mlp_predict_naive() and
 * reel_mlp_loss_grad_naive() are their per-row twins in double precision,
 * which the tests hold them to.
 *
 * Ownership: reel_mlp_new(), reel_mlp_train() and reel_mlp_load() fill
 * *out with a model the caller frees with reel_mlp_free(); it owns all its
 * memory (a loaded file is closed before loading returns).
 * Thread rules: a model is read-only once trained or loaded, and
 * reel_mlp_predict() (and every other function taking a const reel_mlp *)
 * may then be called from any number of threads at once: each call uses
 * its own scratch memory (OpenBLAS 0.3.7 and later may be called
 * concurrently). A server whose requests are its parallelism should run
 * OpenBLAS on one thread (OPENBLAS_NUM_THREADS=1): for a few hundred rows
 * its own threads cost more than they save. reel_mlp_params() gives write
 * access for tests and tools; writing while others read is a data race.
 * reel_mlp_train() with opts.threads != 0 changes OpenBLAS's process-wide
 * thread count for its duration, so run one training at a time.
 */
#ifndef REEL_RANK_MLP_H
#define REEL_RANK_MLP_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/progress.h"
#include "rank/rows.h"

/* Limits of a model, checked before allocating (also when loading). */
#define REEL_MLP_MAX_FEATURES 4096
#define REEL_MLP_MAX_HIDDEN 3 /* hidden layers; layers = hidden + 1 <= 4 */
#define REEL_MLP_MAX_WIDTH 4096

typedef struct reel_mlp reel_mlp;

/* What one epoch achieved, reported after each epoch. */
typedef struct reel_mlp_epoch {
    uint32_t epoch;    /* 1-based; 0: not trained */
    double train_loss; /* mean cross-entropy over the epoch's batches */
    double valid_loss; /* log loss on the validation rows; NAN if none */
    double valid_auc;  /* AUC on them; NAN if none or only one class */
} reel_mlp_epoch;

/* Called after each epoch with its numbers; return 0 to go on, anything
 * else to stop as early stopping would (the best weights are kept). */
typedef int (*reel_mlp_epoch_fn)(const reel_mlp_epoch *e, void *ctx);

typedef struct reel_mlp_opts {
    uint32_t n_hidden;                    /* 2; 0 .. REEL_MLP_MAX_HIDDEN */
    uint32_t hidden[REEL_MLP_MAX_HIDDEN]; /* 64, 32; 1 .. MAX_WIDTH */
    uint32_t batch;                       /* 256 rows per Adam step */
    uint32_t max_epochs;                  /* 50 */
    uint32_t patience;                    /* 5 epochs; 0: never stop */
    double lr;                            /* 1e-3 */
    double beta1, beta2, eps;             /* 0.9, 0.999, 1e-8 */
    double weight_decay;                  /* 0: L2 on weights, not biases */
    uint64_t seed;                        /* 42 */
    /* OpenBLAS threads while training: 1 (default) reproduces a model
     * bit for bit; more are faster only for layers of hundreds of units;
     * 0 leaves OpenBLAS's setting alone. */
    int threads;
    reel_mlp_epoch_fn on_epoch; /* NULL */
    void *ctx;                  /* passed to on_epoch */
} reel_mlp_opts;

reel_mlp_opts reel_mlp_opts_default(void);

/*
 * A He-initialised network for n_features inputs with n_hidden hidden
 * layers of hidden[0..n_hidden) units (hidden may be NULL when n_hidden
 * is 0) and the identity standardisation (mean 0, std 1). REEL_EINVAL
 * when a size is out of the limits above.
 */
int reel_mlp_new(uint32_t n_features, uint32_t n_hidden, const uint32_t *hidden,
                 uint64_t seed, reel_mlp **out);
void reel_mlp_free(reel_mlp *m);

/*
 * Trains on `train` (labels: finite and >= 0; y > 0 is the positive
 * class, as reel_rows_positives() counts), early-stopping on `valid`
 * (NULL or empty: run max_epochs, keep the last weights). `p` (or NULL)
 * shows epochs. REEL_EINVAL for bad options, an empty training table,
 * bad labels or a validation table with other features; REEL_ERANGE when
 * the loss stops being finite (lower lr).
 */
int reel_mlp_train(const reel_rows *train, const reel_rows *valid,
                   const reel_mlp_opts *o, reel_progress *p, reel_mlp **out);

/*
 * Scores n_rows rows, row i at x + i * stride (stride >= n_features),
 * into out[0..n_rows) (probabilities of label 1). Matrix products over
 * blocks of 256 rows; scratch is allocated once per call, never per row.
 */
void reel_mlp_predict(const reel_mlp *m, const float *x, size_t n_rows,
                      size_t stride, float *out);
/* The slow twin: row by row in double precision. The two agree within
 * 1e-5 (tests/unit/test_mlp.c). */
void reel_mlp_predict_naive(const reel_mlp *m, const float *x, size_t n_rows,
                            size_t stride, float *out);

/*
 * The training objective on n_rows rows (labels y, y > 0 positive) at the
 * model's current weights: mean binary cross-entropy plus weight_decay / 2
 * times the sum of squared weights. When grad is not NULL it receives the
 * gradient (reel_mlp_params() layout, n_params floats). The fast path is
 * the one training uses; the naive twin works row by row in double.
 */
double reel_mlp_loss_grad(const reel_mlp *m, const float *x, const float *y,
                          size_t n_rows, size_t stride, double weight_decay,
                          float *grad);
double reel_mlp_loss_grad_naive(const reel_mlp *m, const float *x,
                                const float *y, size_t n_rows, size_t stride,
                                double weight_decay, float *grad);

/* Writes docs/formats/mlp.md atomically (temp file and rename). */
int reel_mlp_save(const reel_mlp *m, const char *path, reel_diag *d);
/* Reads and validates a file; refusals are explained in d. */
int reel_mlp_load(const char *path, reel_mlp **out, reel_diag *d);

uint32_t reel_mlp_n_features(const reel_mlp *m);
/* Layers with weights (hidden layers + 1). */
uint32_t reel_mlp_n_layers(const reel_mlp *m);
/* width(0) = n_features, width(l) for l in 1 .. n_layers; the last is 1. */
uint32_t reel_mlp_width(const reel_mlp *m, uint32_t l);
/* All weights and biases in one array of *n floats: layer by layer, W_l
 * (width(l+1) x width(l), row-major) then b_l (width(l+1)). */
float *reel_mlp_params(reel_mlp *m, size_t *n);
/* The standardisation: n_features means and standard deviations. */
const float *reel_mlp_mean(const reel_mlp *m);
const float *reel_mlp_std(const reel_mlp *m);
/* The epoch whose weights the model holds (epoch 0: untrained). */
reel_mlp_epoch reel_mlp_best(const reel_mlp *m);
/* Epochs run by the training that produced the model. */
uint32_t reel_mlp_epochs_run(const reel_mlp *m);
/* The training options as a JSON object (docs/formats/mlp.md). */
const char *reel_mlp_source(const reel_mlp *m);

#endif
