/*
 * interactions: each user's positive events as a time-ordered list of
 * videos, the input of embedding training and of offline evaluation.
 *
 * Positive means the user did something with the video: every event type
 * except impression (shown, not chosen) and skip. A click, play and watch
 * of one video in a row count once (the repeat is dropped); watching it
 * again later counts again. Lists are CSR: user u's items are
 * item[off[u] .. off[u+1]), oldest first, with their times and the event
 * index they came from.
 * Thread rules: read-only once built.
 */
#ifndef REEL_DATA_INTERACTIONS_H
#define REEL_DATA_INTERACTIONS_H

#include <stdint.h>

#include "data/dataset.h"

typedef struct reel_inter {
    uint32_t n_users, n_items;
    uint64_t *off;   /* n_users + 1 */
    uint32_t *item;  /* video numbers */
    double *ts;      /* event times */
    uint64_t *event; /* index into the dataset's events */
} reel_inter;

int reel_event_is_positive(uint8_t type);

/* Builds from the dataset's events, using only events with keep[e] != 0
 * (keep may be NULL: all events). */
void reel_inter_build(const reel_dataset *ds, const uint8_t *keep,
                      reel_inter *out);
void reel_inter_free(reel_inter *x);

static inline uint64_t reel_inter_count(const reel_inter *x, uint32_t u)
{
    return x->off[u + 1] - x->off[u];
}

#endif
