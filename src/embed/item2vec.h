/*
 * item2vec: item vectors from behaviour (Barkan and Koenigstein, 2016):
 * word2vec's skip-gram with negative sampling, where a "sentence" is one
 * user's time-ordered positive interactions and a "word" is a video.
 *
 * Options follow word2vec: a random window up to `window` on each side,
 * `negatives` samples per pair from the unigram^0.75 distribution,
 * subsampling of very frequent videos (threshold `subsample`, 0 = off), a
 * learning rate decaying linearly over `epochs`. Training is Hogwild on
 * `threads` threads; with one thread the result is a function of the seed
 * alone. The result (the input vectors, L2-normalised) goes into a
 * reel_vectors aligned with the dataset; videos seen fewer than min_count
 * times get no vector. With prior > 0 each row gets one more coordinate,
 * prior * ln((count + 1) / total), the popularity prior of
 * docs/formats/vectors.md: SGNS vectors model what videos share, not how
 * much each is watched, and searched alone they recommend obscure videos
 * (NDCG@10 0.02 against 0.05 with the prior, leave-last-out on MovieLens
 * latest-small; docs/eval.md).
 *
 * The defaults are tuned on MovieLens latest-small: a user's ratings are
 * a session rather than a sentence (many share a timestamp), so the window
 * is wide.
 * Thread rules: the call uses its own worker threads; inputs are read-only.
 */
#ifndef REEL_EMBED_ITEM2VEC_H
#define REEL_EMBED_ITEM2VEC_H

#include <stdint.h>

#include "base/progress.h"
#include "data/interactions.h"
#include "embed/vectors.h"

typedef struct reel_item2vec_opts {
    uint32_t dim;       /* 64 */
    uint32_t window;    /* 50 */
    uint32_t negatives; /* 5 */
    uint32_t epochs;    /* 5 */
    uint32_t min_count; /* 1 */
    double subsample;   /* 1e-3 */
    double lr;          /* 0.025 */
    double prior;       /* 0.06; 0: no popularity coordinate */
    uint64_t seed;      /* 42 */
    int threads;        /* 0: all CPUs */
} reel_item2vec_opts;

reel_item2vec_opts reel_item2vec_opts_default(void);

/* Trains on the interactions and returns vectors for all n_items videos. */
int reel_item2vec_train(const reel_inter *x, const reel_item2vec_opts *o,
                        reel_progress *p, reel_vectors **out);

#endif
