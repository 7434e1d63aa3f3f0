/*
 * eval: offline evaluation of recommendation methods on a dataset.
 *
 * Protocols:
 *  - RANDOM: each user's distinct positive videos are split at random 75/25
 *    (seed 42 by default); methods rank every video the user has not seen
 *    in training. precision@k, recall@k, NDCG@k, MAP@k, MRR, with the
 *    definitions of Microsoft Recommenders' MovieLens benchmark (binary
 *    relevance; MAP divides by the number of test items).
 *  - LAST: each user's last positive interaction by time is the target
 *    (ties: the later event in the dataset's order); HR@k, NDCG@k, MRR.
 *  - REPLAY: events after a time cut-off are replayed in order; before each
 *    positive event the method is asked for k videos for that user (the
 *    videos seen so far excluded), then the event is applied to the user's
 *    history. HR@k, NDCG@k, MRR and latency per request.
 *  - COLD: a seeded share of the videos with interactions is held out of
 *    training; each user's held-out videos are ranked among them.
 *  - COLD_USERS: a seeded share of the users (cold_share, a hash of
 *    (seed, user)) is held out of training entirely; each held-out user
 *    with a positive event is a case whose targets are all their positive
 *    videos, asked for with no history (nothing seen), only the user's
 *    demographics. Methods that need a history do not apply
 *    (reel_method_applies) and are skipped.
 * MRR is the reciprocal rank of the first hit within the top 50 (0 when
 * none). Every protocol also reports recall@1..50, catalogue coverage and
 * popularity bias (the mean training-popularity percentile of what was
 * recommended: 1 means only the most popular video).
 *
 * Methods: POPULAR (training counts), ITEMKNN (item-item cosine over
 * co-occurrence, 200 neighbours, scores summed over the user's history),
 * ANN (the design's retrieval: the mean of the last N history videos'
 * vectors, or their recency-weighted mean (recency_decay), queried in an
 * HNSW index with the seen videos excluded; the
 * vectors are item2vec with its popularity prior (embedding 0, the
 * default) or implicit-ALS factors (embedding 1), both by inner product).
 * FULL (the design's whole path: ANN's 200 candidates, the feature rows
 * of src/rank/features as of the request, and the ranker (XGBoost by
 * default) trained on rows built from the training events only,
 * src/rank/trainset; under replay the feature state follows the replayed
 * events). TRENDING (training positives decayed with a half-life of one
 * day to the last training event, the server's trending list) and SEGMENT
 * (the server's cold-start answer for a user with demographics: the
 * popular list of the user's segment, age bucket x gender, counted over
 * the training users of that segment, round-robin with the global popular
 * list; a user without a segment gets the popular list) need no history.
 * Thread rules: reel_eval_run() is single-threaded apart from the
 * embedding training it starts; the dataset is only read.
 */
#ifndef REEL_EVAL_EVAL_H
#define REEL_EVAL_EVAL_H

#include <stdint.h>
#include <stdio.h>

#include "base/err.h"
#include "data/dataset.h"
#include "embed/als.h"
#include "embed/item2vec.h"
#include "rank/ranker.h"
#include "rank/trainset.h"

enum reel_protocol {
    REEL_PROTO_RANDOM,
    REEL_PROTO_LAST,
    REEL_PROTO_REPLAY,
    REEL_PROTO_COLD,
    REEL_PROTO_COLD_USERS,
    REEL_PROTO__COUNT
};

enum reel_method {
    REEL_METHOD_POPULAR,
    REEL_METHOD_ITEMKNN,
    REEL_METHOD_ANN,
    REEL_METHOD_FULL,
    REEL_METHOD_TRENDING,
    REEL_METHOD_SEGMENT,
    REEL_METHOD__COUNT
};

enum {
    REEL_EVAL_KMAX = 50,
    /* COLD_USERS' breakdown of the cases: the server's 8 age buckets
     * (<18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+, unknown), then its 4
     * genders (dictionary id 0, 1, 2, other or unknown). */
    REEL_EVAL_AGE_GROUPS = 8,
    REEL_EVAL_GROUPS = 12
};

const char *reel_protocol_name(enum reel_protocol p);
int reel_protocol_parse(const char *s, enum reel_protocol *out);
const char *reel_method_name(enum reel_method m);
int reel_method_parse(const char *s, enum reel_method *out);
/* Whether method m can be measured under protocol p: under COLD_USERS
 * only the methods that need no history (POPULAR, TRENDING, SEGMENT). */
int reel_method_applies(enum reel_protocol p, enum reel_method m);
/* The methods run when none is asked for (a bit set of enum reel_method):
 * POPULAR, ITEMKNN, ANN and FULL; under COLD_USERS POPULAR, TRENDING and
 * SEGMENT. */
uint32_t reel_eval_default_methods(enum reel_protocol p);

typedef struct reel_eval_opts {
    enum reel_protocol protocol;
    uint32_t k;          /* 10 */
    uint64_t seed;       /* 42: the random split */
    double train_ratio;  /* 0.75 */
    double replay_train; /* 0.8: share of events before the replay cut */
    double cold_share;   /* 0.1: the videos (COLD) or users (COLD_USERS)
                            held out */
    double cold_lambda;  /* 10: ridge penalty of the cold-start map */
    uint32_t history_n;  /* the ANN query's last N; 0: reel_eval_history */
    /* The ANN and FULL query: 1 the mean of the last N, else the i-th
     * newest weighs recency_decay^i (reel_reco_opts), in (0, 1]; FULL's
     * rows are retrieved with the same query. */
    float recency_decay;
    /* Bit set of enum reel_method; 0: reel_eval_default_methods(). Those
     * that do not apply under the protocol are skipped (reel_eval_run
     * fails when none applies). */
    uint32_t methods;
    int embedding; /* ANN's vectors: 0 item2vec (default), 1 ALS */
    /* Given vectors instead of learned ones (content vectors, a
     * concatenation); borrowed. Vectors learned from all events know the
     * test split: only content vectors give a fair figure. */
    const reel_vectors *vectors;
    reel_item2vec_opts i2v;
    reel_als_opts als;
    reel_ranker_opts ranker; /* FULL's model */
    reel_trainset_opts rows; /* FULL's training rows */
    int quiet;               /* no progress */
} reel_eval_opts;

reel_eval_opts reel_eval_opts_default(void);

/* The ANN query's N: history_n when set, else 10 (the server's ring) for
 * the time-ordered protocols and the whole training profile for
 * random-75-25, whose held-out videos are spread over the user's whole
 * past rather than following the latest ones. */
uint32_t reel_eval_history(const reel_eval_opts *o);

typedef struct reel_eval_result {
    enum reel_method method;
    uint64_t n_cases; /* users (RANDOM, LAST, COLD, COLD_USERS) or requests
                         (REPLAY) */
    double precision, recall, ndcg, map, mrr, hr;
    double recall_at[REEL_EVAL_KMAX + 1]; /* [k], k = 1..50 */
    double coverage, popularity_bias;
    double latency_p50_us, latency_p99_us;
    double fit_s, eval_s;
    uint32_t cold_videos;    /* cold-start: videos held out */
    uint32_t cold_filled;    /* cold-start: of all videos without a trained
                                vector, those the map gave one (ann) */
    uint32_t cold_users;     /* cold-users: held-out users with a positive
                                event (the cases) */
    uint32_t cold_segmented; /* cold-users: of those, users with a segment
                                (age or gender known) */
    /* cold-users: cases, NDCG@k and recall@k per group (means) */
    uint32_t group_cases[REEL_EVAL_GROUPS];
    double group_ndcg[REEL_EVAL_GROUPS], group_recall[REEL_EVAL_GROUPS];
} reel_eval_result;

/* Runs every selected method that applies under the protocol; fills
 * res[0..*n_res) in enum order. */
int reel_eval_run(const reel_dataset *ds, const reel_eval_opts *o,
                  reel_eval_result *res, uint32_t *n_res, reel_diag *d);

/* Output: a table for people, one JSON object, a markdown report and an
 * SVG plot of recall@k (k = 1..50) per method. */
void reel_eval_print(const reel_eval_opts *o, const reel_eval_result *res,
                     uint32_t n, FILE *out);
void reel_eval_print_json(const reel_eval_opts *o, const reel_eval_result *res,
                          uint32_t n, FILE *out);
int reel_eval_write_report(const reel_eval_opts *o, const reel_eval_result *res,
                           uint32_t n, const char *dir, const char *stem,
                           reel_diag *d);

#endif
