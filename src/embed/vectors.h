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
} reel_vectors;

/* An empty matrix aligned with the dataset's videos (all rows absent). */
void reel_vectors_new(uint32_t n, uint32_t dim, const char *source,
                      reel_vectors **out);
void reel_vectors_free(reel_vectors *v);

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
 * lacks are absent rows; ids the dataset lacks are ignored. */
int reel_vectors_load(const char *path, const reel_dataset *ds,
                      reel_vectors **out, reel_diag *d);

/* Concatenates rows side by side (absent where any part is absent). */
void reel_vectors_concat(const reel_vectors *a, const reel_vectors *b,
                         reel_vectors **out);

#endif
