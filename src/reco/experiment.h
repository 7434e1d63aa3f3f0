/*
 * experiment: online A/B experiments over recommendation parameters.
 *
 * A reel_experiments holds the running experiments (at most
 * REEL_EXP_MAX, each with 2..REEL_EXP_MAX_ARMS arms). An arm has a traffic
 * share and overrides some of the reco options (reel_reco_opts) and
 * whether the ranker scores the candidates. Assignment is a pure function
 * of (experiment name, user id): the 64-bit FNV-1a hash of name + '\0' +
 * user, through splitmix64's finalizer, divided by 2^64, falls in the arm
 * whose cumulative share first exceeds it. So a user keeps their arm for as
 * long as the arms stay the same, and two experiments split users
 * independently.
 *
 * Every served answer is recorded under its request id (about the last
 * `attribution` answers, in 4-way hashed buckets); an event that names
 * that request id later counts for the arms the answer was served under:
 * impressions, clicks (click events) and watch seconds (watch and play
 * events' watch_s). Each arm keeps its users' own counts, because users,
 * not impressions, were randomised: a user's impressions are correlated,
 * and tests that treat them as independent reject two identical arms far
 * more often than 5% (bench/ab.sh measured 32% for the two-proportion
 * z-test on impressions in a closed loop). So CTR and watch seconds per
 * impression are ratios of per-user sums with delta-method variances:
 * 95% normal intervals, a z-test for CTR and Welch's t-test (Welch-
 * Satterthwaite degrees of freedom over users) for watch time against the
 * control. The impression-level two-proportion z-test and Welch's t-test
 * are reported beside them (ctr_p_impressions, watch_p_impressions).
 *
 * Counts live in memory: a restart starts them again, and changing an
 * experiment's arms (a new put) resets its counts.
 *
 * Ownership: the registry owns copies of everything put into it.
 * Thread rules: every function may be called from any thread; one mutex
 * guards the registry (a request holds it for an assignment and a record,
 * both O(experiments)).
 */
#ifndef REEL_RECO_EXPERIMENT_H
#define REEL_RECO_EXPERIMENT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/err.h"
#include "reco/reco.h"

#define REEL_EXP_MAX 32
#define REEL_EXP_MAX_ARMS 16
#define REEL_EXP_NAME_MAX 64
#define REEL_EXP_MAX_CANDIDATES REEL_RECO_MAX_REQUEST_CANDIDATES

typedef struct reel_experiments reel_experiments;

/* `attribution`: how many served answers are remembered for attribution
 * (1..100,000,000). */
int reel_experiments_new(uint32_t attribution, reel_experiments **out);
void reel_experiments_free(reel_experiments *x);

/* Adds or replaces experiment `name` from its JSON description (the body
 * of PUT /v1/experiments/{name}, docs/API.md). A replacement with the same
 * arms (names, shares, params) keeps the counts; otherwise they start
 * again. REEL_EINVAL with a message in d for a bad name or body;
 * REEL_ETOOBIG when REEL_EXP_MAX experiments run already. *created says
 * whether the name was new. */
int reel_experiments_put(reel_experiments *x, const char *name,
                         const json_t *body, double now, int *created,
                         reel_diag *d);
/* REEL_ENOENT when there is no such experiment. */
int reel_experiments_delete(reel_experiments *x, const char *name);
uint32_t reel_experiments_count(reel_experiments *x);

/* What one answer is served under. */
typedef struct reel_exp_assignment {
    uint32_t n;
    struct {
        char name[REEL_EXP_NAME_MAX + 1];
        char arm[REEL_EXP_NAME_MAX + 1];
    } e[REEL_EXP_MAX];
} reel_exp_assignment;

/* The arms `user` is in, and `base` with their overrides applied into
 * *opts (experiments in name order; the first to set a parameter wins;
 * "ranker" sets opts->ranker to a REEL_RECO_RANKER_* value). */
void reel_experiments_assign(reel_experiments *x, const char *user,
                             const reel_reco_opts *base, reel_exp_assignment *a,
                             reel_reco_opts *opts);

/* Records an answer served under `a` with request id `rid`: counts the
 * request and the user for each arm, and remembers rid for attribution. */
void reel_experiments_served(reel_experiments *x, const char *rid,
                             const char *user, const reel_exp_assignment *a);

/* An accepted event of `user` that named request id `rid` (type: enum
 * reel_event_type; watch_s NaN when missing). Unknown or forgotten
 * request ids, and a request id served to another user, count nowhere;
 * an experiment started (or changed) after the answer counts it not. */
void reel_experiments_event(reel_experiments *x, const char *rid, int type,
                            double watch_s, const char *user);

/* Every experiment (name == NULL) or one, as docs/API.md shows it: an
 * array for all, an object for one; NULL (with REEL_ENOENT in *rc) when
 * the named one does not exist. */
json_t *reel_experiments_json(reel_experiments *x, const char *name, int *rc);

/* The statistics, exposed for tests. */
typedef struct reel_exp_ci {
    double value, lo, hi; /* NaN when undefined */
} reel_exp_ci;
reel_exp_ci reel_exp_wilson(uint64_t successes, uint64_t n);
/* Two-sided p of the two-proportion z-test (pooled); NaN when undefined. */
double reel_exp_ztest(uint64_t x1, uint64_t n1, uint64_t x2, uint64_t n2);
/* Two-sided p of Welch's t-test from each sample's n, sum and sum of
 * squares; NaN when undefined. */
double reel_exp_welch(uint64_t n1, double s1, double ss1, uint64_t n2,
                      double s2, double ss2);
/* Student's t CDF (through the regularized incomplete beta function). */
double reel_exp_student_cdf(double t, double df);
/* The delta-method variance of sum(y) / sum(n) over m users from the sums
 * of n, y, n^2, y^2 and n*y; NaN below 2 users or without any n. */
double reel_exp_delta_var(uint64_t m, double sn, double sy, double snn,
                          double syy, double sny);

#endif
