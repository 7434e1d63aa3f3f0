/*
 * reco: the recommendation path, from a user's history to an ordered
 * list: query vector -> candidates from the index (seen and deleted
 * videos filtered inside the search) -> one feature row per candidate ->
 * the ranker scores them all in one call -> business rules -> top k.
 *
 * The query is reel_retrieve()'s (src/rank/trainset.h): the mean of the
 * last history_n history videos' vectors, or with recency_decay < 1 their
 * weighted mean, the i-th newest weighing recency_decay^i. The ranker was
 * trained on rows retrieved with some history_n and decay
 * (reel_trainset_opts); serving with others changes its x_sim and x_rank
 * inputs.
 *
 * This is the one request function: `reel serve` calls it per request and
 * `reel eval`'s full method calls it per case, so offline figures measure
 * the served path.
 *
 * Business rules, after ranking: an optional freshness boost (score +
 * boost * 2^(-age / half-life) for videos with a publication time), then
 * a greedy walk down the scores keeping at most max_per_category videos of
 * one primary category in the top k (0: no cap), no video twice; when the
 * cap leaves the list short, the skipped videos fill it in score order.
 *
 * The categories and publication times the rules read come from `vid`
 * (a live table such as reel_meta_videos(), read as it is at each call)
 * or, when it is NULL, the dataset's.
 *
 * Ownership: reel_reco borrows everything it is given (vectors, index,
 * ranker, dataset, video table); they must outlive it. A reel_reco_scratch
 * holds one request's buffers. Thread rules: reel_reco_rank() only reads
 * the borrowed pieces and the feature state, so any number of threads may
 * call it at once, each with its own scratch, while no one writes the
 * state or the video table (the caller's lock).
 */
#ifndef REEL_RECO_RECO_H
#define REEL_RECO_RECO_H

#include <stdint.h>

#include "data/dataset.h"
#include "embed/vectors.h"
#include "index/index.h"
#include "rank/features.h"
#include "rank/ranker.h"

typedef struct reel_reco_opts {
    uint32_t history_n;        /* 10: the query's last N videos */
    float recency_decay;       /* 1: their mean; else the i-th newest
                                  weighs recency_decay^i, in (0, 1] */
    uint32_t candidates;       /* 200 */
    uint32_t max_per_category; /* 0: no cap */
    double fresh_boost;        /* 0: none */
    double fresh_half_life_s;  /* 7 days */
    uint8_t ranker;            /* REEL_RECO_RANKER_*: which model scores
                                  (an experiment arm's "ranker") */
} reel_reco_opts;

reel_reco_opts reel_reco_opts_default(void);

/* reel_reco_opts.ranker: the server's ranker (models/ranker.json), none
 * (retrieval similarity), or a named one that reel_engine_recommend()
 * picks when the server loaded it. */
enum {
    REEL_RECO_RANKER_DEFAULT = 0,
    REEL_RECO_RANKER_NONE = 1,
    REEL_RECO_RANKER_XGBOOST = 2, /* models/ranker.json */
    REEL_RECO_RANKER_MLP = 3      /* models/ranker-mlp.reel */
};

/* The most candidates a request's own options (reel_engine_recommend's o)
 * get when the server's are fewer. */
#define REEL_RECO_MAX_REQUEST_CANDIDATES 1000

typedef struct reel_reco_item {
    uint32_t video;
    float score;   /* the ranker's score, plus the freshness boost */
    float sim;     /* retrieval similarity */
    uint32_t cand; /* its candidate number in the request's scratch */
} reel_reco_item;

typedef struct reel_reco {
    const reel_dataset *ds;
    const reel_videos *vid; /* NULL: the dataset's */
    const reel_vectors *vec;
    const reel_index *ix;
    const reel_ranker *ranker; /* NULL: retrieval order */
    reel_reco_opts o;
} reel_reco;

typedef struct reel_reco_scratch reel_reco_scratch;

/* Buffers for r's requests (its candidates and vector width). */
reel_reco_scratch *reel_reco_scratch_new(const reel_reco *r);
void reel_reco_scratch_free(reel_reco_scratch *s);
/* The feature row (REEL_F__COUNT floats) of candidate `cand` of the last
 * reel_reco_rank() call with this scratch (an item's `cand`). */
const float *reel_reco_scratch_row(const reel_reco_scratch *s, uint32_t cand);

/*
 * Up to k videos for `user` at time `now` whose history (oldest first) is
 * hist[0..n_hist); f filters the candidates (seen and deleted videos
 * excluded, optional allow set). Returns how many were written to out
 * (0: no usable history; the caller's cold-start path answers). fs is the
 * feature state (read only).
 */
uint32_t reel_reco_rank(const reel_reco *r, const reel_featstate *fs,
                        uint32_t user, double now, const uint32_t *hist,
                        uint32_t n_hist, const reel_filter *f, uint32_t k,
                        reel_reco_scratch *s, reel_reco_item *out);
/* The same with the user's counters given (fu, e.g. read from Redis;
 * NULL: none) and `user` the row of the user tables (REEL_NONE: no
 * demographics). */
uint32_t reel_reco_rank_with(const reel_reco *r, const reel_featstate *fs,
                             const reel_fs_user *fu, uint32_t user, double now,
                             const uint32_t *hist, uint32_t n_hist,
                             const reel_filter *f, uint32_t k,
                             reel_reco_scratch *s, reel_reco_item *out);

#endif
