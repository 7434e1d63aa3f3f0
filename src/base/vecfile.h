/*
 * vecfile: matrices of float32 vectors in the files people bring: .fvecs
 * (TEXMEX, as SIFT1M and GIST1M: per vector an int32 dimension then that
 * many float32), .ivecs (the same with int32 values, ground truth), and
 * .npy (NumPy format versions 1 to 3, a 2-D C-order array of '<f4'; '<f8'
 * is converted).
 *
 * Everything read is bounded before allocation: the dimension must be in
 * 1..REEL_VEC_MAX_DIM and the file's size must match its header exactly;
 * a mismatch is REEL_EFORMAT with the reason (and the record number for
 * fvecs) in the diag. Readers own nothing after reel_vecs_free().
 * Thread rules: none; reentrant.
 */
#ifndef REEL_BASE_VECFILE_H
#define REEL_BASE_VECFILE_H

#include <stdint.h>

#include "base/err.h"

#define REEL_VEC_MAX_DIM 4096

typedef struct reel_vecs {
    uint64_t n;
    uint32_t d;
    float *data; /* n * d, row-major, owned */
} reel_vecs;

/* By extension: .fvecs, .npy; anything else is REEL_EUNSUPPORTED. */
int reel_vecs_read(const char *path, reel_vecs *out, reel_diag *d);
void reel_vecs_free(reel_vecs *v);

/* Integer matrices (.ivecs, or .npy of '<i4'/'<i8'), e.g. ground truth. */
typedef struct reel_ivecs {
    uint64_t n;
    uint32_t d;
    int32_t *data;
} reel_ivecs;

int reel_ivecs_read(const char *path, reel_ivecs *out, reel_diag *d);
void reel_ivecs_free(reel_ivecs *v);

int reel_vecs_write_fvecs(const char *path, const float *data, uint64_t n,
                          uint32_t d, reel_diag *dg);
int reel_vecs_write_npy(const char *path, const float *data, uint64_t n,
                        uint32_t d, reel_diag *dg);

#endif
