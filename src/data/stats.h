/*
 * stats: what a dataset holds, for `reel stats`: counts, time span, events
 * per type, top categories, and interactions per user and per video as
 * quantiles. Text for people and JSON for machines.
 * Thread rules: none; the dataset is only read.
 */
#ifndef REEL_DATA_STATS_H
#define REEL_DATA_STATS_H

#include <stdint.h>
#include <stdio.h>

#include "data/dataset.h"

enum { REEL_STATS_TOP = 10, REEL_STATS_NQ = 7 };

/* Quantile levels reported: min, p25, median, p75, p90, p99, max. */
extern const double reel_stats_qlevels[REEL_STATS_NQ];

typedef struct reel_dist {
    double q[REEL_STATS_NQ];
    double mean;
    uint64_t n_zero; /* members with no interaction */
} reel_dist;

typedef struct reel_stats {
    uint32_t n_videos, n_users;
    uint64_t n_events;
    double ts_min, ts_max; /* NaN when there are no events */
    uint64_t per_type[REEL_EV__COUNT];
    uint32_t n_categories;
    uint32_t n_top;
    uint32_t top_cat[REEL_STATS_TOP];        /* dictionary ids */
    uint64_t top_cat_events[REEL_STATS_TOP]; /* events on its videos */
    uint32_t top_cat_videos[REEL_STATS_TOP]; /* videos with it as primary */
    reel_dist per_user, per_video;
    double density; /* distinct (user, video) pairs / (users * videos) */
} reel_stats;

void reel_stats_compute(const reel_dataset *ds, reel_stats *s);
void reel_stats_print(const reel_dataset *ds, const reel_stats *s, FILE *out);
/* One JSON object, newline-terminated. */
void reel_stats_print_json(const reel_dataset *ds, const reel_stats *s,
                           FILE *out);

#endif
