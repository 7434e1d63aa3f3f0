/*
 * rows: a dense table of training rows for a ranker.
 *
 * Each row is n_features floats (row-major, NAN = missing), a label
 * (0 or 1 for the classifiers; any non-negative relevance for rank:ndcg),
 * a group (the request the row belongs to: rows of one request share it
 * and are contiguous), and the time of the event that produced it, which
 * the time-ordered validation split uses. The table owns its arrays.
 * Thread rules: none; one writer, any number of readers after it is done.
 */
#ifndef REEL_RANK_ROWS_H
#define REEL_RANK_ROWS_H

#include <stddef.h>
#include <stdint.h>

typedef struct reel_rows {
    uint32_t n_features;
    size_t n;   /* rows */
    size_t cap; /* rows allocated */
    float *x;   /* n * n_features */
    float *y;   /* n labels */
    uint32_t *group;
    int64_t *time; /* seconds since the epoch */
} reel_rows;

void reel_rows_init(reel_rows *r, uint32_t n_features);
void reel_rows_free(reel_rows *r);

/* Appends one row (x has n_features floats); returns its slot. */
float *reel_rows_push(reel_rows *r, float y, uint32_t group, int64_t time);

/* Copies rows [from, to) of src to the end of dst (same n_features). */
void reel_rows_append(reel_rows *dst, const reel_rows *src, size_t from,
                      size_t to);

/*
 * Splits off the last `valid_fraction` of the rows as a later-in-time
 * validation set: rows are kept in their order (the builder writes them in
 * time order), and the cut falls at the first group boundary at or after
 * (1 - valid_fraction) * n, so no request is split.
 * train and valid are initialised here. REEL_EINVAL if either side would
 * be empty.
 */
int reel_rows_split_tail(const reel_rows *r, double valid_fraction,
                         reel_rows *train, reel_rows *valid);

/* Number of positive labels (y > 0). */
size_t reel_rows_positives(const reel_rows *r);

#endif
