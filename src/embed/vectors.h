/*
 * vectors: a matrix of item vectors keyed by video id, in the one format
 * every producer writes (docs/formats/vectors.md): collaborative (item2vec,
 * ALS), content (CLIP), cold-start maps, concatenations.
 *
 * A reel_vectors owns its memory (read files are copied out of the map,
 * they are small next to the index). Thread rules: read-only after
 * creation; share freely.
 */
#ifndef REEL_EMBED_VECTORS_H
#define REEL_EMBED_VECTORS_H

#include <stdint.h>

#include "base/err.h"
#include "data/dataset.h"

typedef struct reel_vectors {
    uint32_t n, dim;
    float *data;   /* n x dim */
    uint8_t *has;  /* n: 1 when row i is a real vector */
    char *source;  /* JSON object text */
    int unit_norm; /* every present row has norm 1 */
    /* The last coordinate is a popularity prior (item2vec): rows are
     * [unit vector, w * log popularity], queries [unit mean, 1], searched
     * by inner product, so score = cosine + w * log popularity. */
    int prior;
} reel_vectors;

/* An empty matrix aligned with the dataset's videos (all rows absent). */
void reel_vectors_new(uint32_t n, uint32_t dim, const char *source,
                      reel_vectors **out);
void reel_vectors_free(reel_vectors *v);
/* A copy that owns its memory. */
reel_vectors *reel_vectors_dup(const reel_vectors *v);
/* Makes room for rows 0..n (videos added to the catalogue): new rows are
 * absent (zeros). Never shrinks; moves data and has (the writer calls
 * it, with no reader running). */
void reel_vectors_grow(reel_vectors *v, uint32_t n);

static inline float *reel_vectors_row(const reel_vectors *v, uint32_t i)
{
    return v->data + (uint64_t)i * v->dim;
}

/* Scales every present row to unit norm (rows of norm 0 become absent). */
void reel_vectors_normalize(reel_vectors *v);

/* Writes the file; ids come from the dataset (v->n must equal its videos). */
int reel_vectors_save(const reel_vectors *v, const reel_dataset *ds,
                      const char *path, reel_diag *d);
/* Reads a file and aligns it to the dataset by video id: videos the file
 * lacks are absent rows; ids the dataset lacks are ignored. With ds NULL
 * the rows stay in the file's order (reel index build). */
int reel_vectors_load(const char *path, const reel_dataset *ds,
                      reel_vectors **out, reel_diag *d);

/*
 * The query vector of a history (items oldest first): the mean of the
 * vectors of its last `last_n` items that have one (repeats count again),
 * as the server's recent-history ring would give it. With a prior, the
 * mean of the first dim - 1 coordinates is scaled to unit length and the
 * last coordinate set to 1. q has dim floats; returns the number of items
 * used (0: q is all zeros, nothing to search with).
 */
uint32_t reel_vectors_query(const reel_vectors *v, const uint32_t *items,
                            uint32_t n, uint32_t last_n, float *q);

/*
 * The same with recency weights: the i-th newest of the items used (i = 0
 * for the newest; items without a vector are skipped and not counted)
 * weighs decay^i, and the mean is the weighted one (divided by the sum of
 * the weights). decay is in (0, 1] (asserted); decay 1 gives exactly
 * reel_vectors_query()'s floats.
 */
uint32_t reel_vectors_query_decay(const reel_vectors *v, const uint32_t *items,
                                  uint32_t n, uint32_t last_n, float decay,
                                  float *q);

/* Whether the vectors are compared by cosine (unit rows without a prior)
 * rather than by inner product. */
static inline int reel_vectors_by_cosine(const reel_vectors *v)
{
    return v->unit_norm && !v->prior;
}

/* Concatenates rows side by side (absent where any part is absent). */
void reel_vectors_concat(const reel_vectors *a, const reel_vectors *b,
                         reel_vectors **out);
/* (A prior coordinate of a or b stays in place, as a plain coordinate: the
 * result has no prior.) */

#endif
