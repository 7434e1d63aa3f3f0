/*
 * coldstart: a learned linear map from content to the collaborative space,
 * so a video with no views is retrievable at once.
 *
 * Content is a vectors file (CLIP) when there is one, else features built
 * from the catalogue: categories, language and type (one-hot, hashed into
 * fixed blocks), log duration, publication year (each with a "missing"
 * flag), title words (hashed bag of words, L2-normalised) and a bias. A
 * ridge regression W = (X'X + lambda I)^-1 X'Y is fitted on the videos
 * that have collaborative vectors; cold videos get x W, L2-normalised.
 * reel_ridge_fit() is the solver (Gram matrix and X'Y through OpenBLAS,
 * one Cholesky, triangular solves for every output column at once).
 * Thread rules: none; inputs are read-only.
 */
#ifndef REEL_EMBED_COLDSTART_H
#define REEL_EMBED_COLDSTART_H

#include <stdint.h>

#include "data/dataset.h"
#include "embed/vectors.h"

/* Width of the catalogue features. */
enum { REEL_COLD_FEATURES = 448 };

/* Fills x (n_videos x REEL_COLD_FEATURES) with catalogue features. */
void reel_cold_features(const reel_dataset *ds, float *x);

/* W (f x dout) minimising ||X W - Y||^2 + lambda ||W||^2 over the n rows
 * with use[r] != 0 (use may be NULL). REEL_ERANGE if singular. */
int reel_ridge_fit(const float *x, const float *y, const uint8_t *use,
                   uint32_t n, uint32_t f, uint32_t dout, double lambda,
                   float *w);
/* The slow twin (X'y per column in double, one Cholesky per column): the
 * reference the test holds reel_ridge_fit to. */
int reel_ridge_fit_naive(const float *x, const float *y, const uint8_t *use,
                         uint32_t n, uint32_t f, uint32_t dout, double lambda,
                         float *w);

/* Gives every video without a collaborative vector in `cf` one mapped
 * from content (`content` may be NULL: catalogue features). `cf` is
 * updated in place; *n_filled counts the cold videos given a vector. */
int reel_cold_fill(const reel_dataset *ds, const reel_vectors *content,
                   reel_vectors *cf, double lambda, uint32_t *n_filled);

#endif
