/* eval_impl: the methods' private interface inside src/eval. */
#ifndef REEL_EVAL_IMPL_H
#define REEL_EVAL_IMPL_H

#include "data/interactions.h"
#include "embed/vectors.h"
#include "eval/eval.h"
#include "index/index.h"
#include "rank/features.h"
#include "rank/ranker.h"
#include "reco/reco.h"

struct scored {
    float s;
    uint32_t id;
};

struct method {
    enum reel_method kind;
    uint32_t n_items;
    uint32_t *pop_count, *pop_order, *pop_rank;
    uint32_t *trend_order;   /* trending: every video, most first */
    const reel_users *users; /* segment: the users' demographics */
    uint64_t *seg_off;       /* segment: per segment, CSR of its videos */
    uint32_t *seg_item;      /* with a training user in it, most first */
    uint64_t *nb_off;        /* itemknn neighbours, CSR */
    uint32_t *nb_id;
    float *nb_sim;
    float *score; /* scratch, zero between calls */
    uint32_t *touched;
    struct scored *ranked; /* itemknn: scored candidates, n_items */
    reel_vectors *vec;     /* ann */
    reel_index *ix;
    float *qbuf;
    reel_hit *hits;
    const uint64_t *allow;  /* cold-start: only these videos; NULL: all */
    uint32_t n_cold_filled; /* cold-start: held-out videos given a vector */
    uint32_t history_n;     /* the query's last N */
    float recency_decay;    /* and its weight per step back */
    /* full: feature state, ranker and per-request scratch */
    const reel_dataset *ds;
    reel_featstate *fs;
    reel_ranker *ranker;
    reel_reco reco; /* the served request path */
    reel_reco_scratch *scratch;
    reel_reco_item *items;
};

/* allow: NULL, or the cold-start protocol's held-out videos, the only
 * ones recommended; ANN then maps them in from catalogue features.
 * keep marks the training events (FULL builds its rows from them).
 * *shared (NULL at first, the caller frees it) keeps the learned vectors
 * so that ANN and FULL learn them once. */
int reel__method_fit(struct method *m, enum reel_method kind,
                     const reel_dataset *ds, const reel_inter *train,
                     const uint8_t *keep, const reel_eval_opts *o,
                     const uint64_t *allow, reel_vectors **shared,
                     reel_diag *d);
/* Event e of the dataset happened (replay): FULL's state follows it. */
void reel__method_observe(struct method *m, uint64_t e);
void reel__method_free(struct method *m);
/* Up to k unseen videos for a user with history hist (oldest first);
 * seen[v] != 0 marks the videos to exclude, also listed in seen_list. */
uint32_t reel__method_recommend(struct method *m, uint32_t user, double now,
                                const uint32_t *hist, uint32_t n_hist,
                                const uint8_t *seen, const uint32_t *seen_list,
                                uint32_t n_seen, uint32_t history_n, uint32_t k,
                                uint32_t *out);

/* The metrics of one ranked list against the relevant items (rel[v] != 0
 * for the n_rel relevant ones), as reel_eval defines them. */
struct case_metrics {
    double precision, recall, ndcg, map, mrr, hr;
    uint32_t hits_at[REEL_EVAL_KMAX + 1]; /* hits in the top r */
};

void reel__eval_case(const uint32_t *list, uint32_t n, const uint8_t *rel,
                     uint32_t n_rel, uint32_t k, struct case_metrics *c);

#endif
