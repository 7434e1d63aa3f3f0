/*
 * trainset: the ranker's training rows, built from the event log by
 * replaying it through a reel_featstate.
 *
 * Events are walked in time order. Before an event is applied, the rows it
 * gives are computed from the state as it is, so every feature is as of
 * the event's time (the serving path computes the same row at request
 * time). Two sources of rows:
 * - impressions (when the log has any): one row per impression, labelled
 *   1 when a label event (below) on the same user and video follows within
 *   follow_s seconds; the impressions of one user at one time form a
 *   group;
 * - otherwise (MovieLens: ratings only) each label event gives a positive
 *   row and `negatives` rows for videos sampled from the retrieval
 *   candidates at that time (the user's last history_n videos' mean,
 *   recency-weighted when recency_decay < 1, queries the index, seen
 *   videos excluded), one group per event; an
 *   event whose video is not among the candidates gives no rows (the
 *   ranker only ever orders candidates).
 * Labels: WATCH, a watch of at least watch_seconds (when the log has no
 *   watch times at all, any positive event: a rating means a view);
 *   CLICK, any positive event; LIKE, a like or share or a rating >= 4.
 * The retrieval features (x_sim, x_rank) come from the vectors and index
 * given: the similarity of the video to the query, and its rank among
 * the candidates (how many candidates score higher), for positives and
 * negatives alike. Rows whose user has no history with a vector are
 * skipped (the server answers them by the cold-start path, not the
 * ranker). Only the latest rows are kept (max_rows; the budget counts
 * every label event as 1 + negatives rows, so events that give none leave
 * it under-filled); the state still sees every event.
 *
 * Ownership: the caller's featstate is advanced through the events (on
 * return it is the state after the last kept event). Thread rules: one
 * thread; the dataset, vectors and index are only read.
 */
#ifndef REEL_RANK_TRAINSET_H
#define REEL_RANK_TRAINSET_H

#include <stdint.h>

#include "base/err.h"
#include "base/progress.h"
#include "data/dataset.h"
#include "embed/vectors.h"
#include "index/index.h"
#include "rank/features.h"
#include "rank/rows.h"

typedef enum reel_label {
    REEL_LABEL_WATCH,
    REEL_LABEL_CLICK,
    REEL_LABEL_LIKE
} reel_label;

/* "watch30" (any N), "click", "like"; watch_s gets N for watchN. */
int reel_label_parse(const char *s, reel_label *out, float *watch_s);

typedef struct reel_trainset_opts {
    reel_label label;    /* WATCH */
    float watch_seconds; /* 30 */
    uint32_t negatives;  /* 9 sampled negatives per positive */
    uint32_t candidates; /* 200 retrieval candidates */
    uint32_t history_n;  /* 10: the query's last N */
    float recency_decay; /* 1: the query is their mean; else the i-th
                            newest weighs recency_decay^i, in (0, 1] */
    uint64_t max_rows;   /* 200000: the latest rows are kept */
    double follow_s;     /* 3600 */
    uint64_t seed;       /* 42 */
} reel_trainset_opts;

reel_trainset_opts reel_trainset_opts_default(void);

/* What the builder saw. */
typedef struct reel_trainset_stats {
    int from_impressions; /* 1: impression rows; 0: sampled negatives */
    uint64_t events, rows, positives, groups, skipped_no_history;
    uint64_t skipped_not_retrieved; /* sampled mode: positive not among
                                       the candidates */
} reel_trainset_stats;

/*
 * Walks events [0, n) with keep[e] != 0 (keep may be NULL) through fs,
 * appending rows (REEL_F__COUNT features) to `rows` (initialised by the
 * caller). REEL_EINVAL when no row could be made.
 */
int reel_trainset_build(const reel_dataset *ds, const uint8_t *keep,
                        const reel_vectors *vec, const reel_index *ix,
                        const reel_trainset_opts *o, reel_featstate *fs,
                        reel_rows *rows, reel_trainset_stats *st,
                        reel_progress *p, reel_diag *d);

/*
 * Rows for a task without time (random-75-25): per user, a seeded
 * `holdout` share of the distinct positive videos is held out; the state
 * sees every other event; each held-out video the retrieval of the rest of
 * the profile finds gives a positive row and `negatives` rows sampled from
 * the candidates, all as of the last event. Rows are not in time order
 * (the validation split takes the last users instead). The vectors and
 * index should come from the same events (they know the held-out
 * videos, which makes x_sim a little optimistic in training).
 */
int reel_trainset_build_profile(const reel_dataset *ds, const uint8_t *keep,
                                const reel_vectors *vec, const reel_index *ix,
                                const reel_trainset_opts *o, double holdout,
                                reel_featstate *fs, reel_rows *rows,
                                reel_trainset_stats *st, reel_diag *d);

/*
 * The retrieval step shared by training and serving: the query of the
 * user's recent history (reel_vectors_query_decay() over the last
 * history_n videos with weights decay^i; decay 1: their mean), the
 * k best candidates from the index passing the filter f (seen videos
 * excluded; may be NULL), searched with ef = 2k, and each candidate's
 * similarity from the search's own distance, best first. Returns the number of
 * candidates (0 when the user has no usable history, or on a search
 * error); q has vec->dim floats, hits and sim `k` entries. Training and
 * serving must pass the same history_n and decay: the ranker learns x_sim
 * and x_rank from this query.
 */
uint32_t reel_retrieve(const reel_vectors *vec, const reel_index *ix,
                       const uint32_t *recent, uint32_t n_recent,
                       uint32_t history_n, float decay, const reel_filter *f,
                       uint32_t k, float *q, reel_hit *hits, float *sim);

/*
 * The HNSW index reel_retrieve() searches: every video of vec that has a
 * vector, by cosine for unit vectors without a prior and by inner product
 * otherwise (item2vec with its popularity prior, ALS factors). REEL_E*
 * with d saying which video failed.
 */
int reel_retrieve_index(const reel_vectors *vec, reel_index **out,
                        reel_diag *d);

/* The metric reel_retrieve_index() builds with, and that a loaded index
 * must have for reel_retrieve()'s similarities: cosine for unit vectors
 * without a prior, inner product otherwise. */
enum reel_metric reel_retrieve_metric(const reel_vectors *vec);

/* The similarity of video v to the query as the index ranks it (inner
 * product, or cosine for unit vectors), from the index's own vector and
 * distance kernel, as reel_retrieve() gives it; NaN when v has no vector
 * or is not in the index. */
float reel_retrieve_sim(const reel_vectors *vec, const reel_index *ix,
                        const float *q, uint32_t v);

/* v's similarity: sim[i] when v is hits[i] (one of reel_retrieve()'s n
 * candidates), else reel_retrieve_sim(). A retrieved video's x_sim and
 * x_rank are therefore exactly those it has among the candidates. */
float reel_retrieve_sim_of(const reel_vectors *vec, const reel_index *ix,
                           const float *q, const reel_hit *hits,
                           const float *sim, uint32_t n, uint32_t v);

/* The rank of a candidate scoring s among n candidates: how many score
 * higher (NaN when s is). Training and serving both use it. */
float reel_cand_rank(const float *sim, uint32_t n, float s);

/* reel_cand_rank() of each of sim[0..n) into rank, in O(n) when sim is
 * best first (as reel_retrieve() returns it). */
void reel_cand_ranks(const float *sim, uint32_t n, float *rank);

/*
 * What the candidate features need of one history, prepared once per
 * query: its last history_n videos' vectors at unit length (without the
 * popularity coordinate of a prior), newest first. Owns its buffer;
 * zero-initialise, prepare any number of times, then free. One thread.
 */
typedef struct reel_cand_ctx {
    const reel_vectors *vec;
    const struct reel_dist_kernels *k;
    float *rows; /* n x d */
    size_t cap;  /* floats */
    uint32_t d, n;
    uint32_t in_max; /* rows sim_max looks at */
    int last;        /* rows[0] is the newest video (sim_last) */
} reel_cand_ctx;

void reel_cand_ctx_prepare(reel_cand_ctx *c, const reel_vectors *vec,
                           const uint32_t *recent, uint32_t n_recent,
                           uint32_t history_n);
void reel_cand_ctx_free(reel_cand_ctx *c);

/* The retrieval features of candidate v: sim and rank as given, and its
 * cosines (float, the SIMD inner product) to the prepared history's
 * newest video (sim_last) and to each of its last history_n (sim_max),
 * the popularity coordinate of a prior left out. */
void reel_cand_feats_fill(const reel_cand_ctx *c, uint32_t v, float sim,
                          float rank, reel_cand_feats *out);

/* Starts loading v's vector row into the cache (a candidate about to go
 * through reel_cand_feats_fill()). */
void reel_cand_prefetch(const reel_vectors *vec, uint32_t v);

#endif
