/*
 * safetensors: read-only access to a .safetensors file (the format Hugging
 * Face publishes model weights in), memory-mapped.
 *
 * The file is: an 8-byte little-endian header length N, N bytes of a JSON
 * object, then the data. Each key of the object except "__metadata__" names
 * a tensor: {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
 * offsets relative to the first byte after the header. Opening checks all
 * of it before anything is used: N bounded (REEL_SAFETENSORS_MAX_HEADER) and
 * inside the file, the JSON well formed, every dtype known, every shape
 * non-negative with at most REEL_SAFETENSORS_MAX_DIMS dimensions, and
 * (product of the shape) x (dtype size) = end - begin, the byte range inside
 * the file, tensors not overlapping. Errors are REEL_EFORMAT (REEL_EIO,
 * REEL_ENOENT for the file itself) with the file and the tensor named in d.
 *
 * Tensors are views into the mapping: `data` may be unaligned (the format
 * does not promise alignment), so read it with memcpy or convert it with
 * reel_safetensors_to_f32(), which handles F32, F16 and BF16.
 *
 * Ownership: the reel_safetensors owns the mapping and every tensor record;
 * pointers from it are valid until reel_safetensors_close(). Thread rules:
 * immutable after open; any number of threads may read it.
 */
#ifndef REEL_EMBED_SAFETENSORS_H
#define REEL_EMBED_SAFETENSORS_H

#include <stdint.h>

#include "base/err.h"

#define REEL_SAFETENSORS_MAX_HEADER (100u << 20)
#define REEL_SAFETENSORS_MAX_DIMS 8

typedef enum reel_st_dtype {
    REEL_ST_BOOL,
    REEL_ST_U8,
    REEL_ST_I8,
    REEL_ST_I16,
    REEL_ST_U16,
    REEL_ST_F16,
    REEL_ST_BF16,
    REEL_ST_I32,
    REEL_ST_U32,
    REEL_ST_F32,
    REEL_ST_I64,
    REEL_ST_U64,
    REEL_ST_F64,
} reel_st_dtype;

typedef struct reel_st_tensor {
    const char *name; /* owned by the file */
    reel_st_dtype dtype;
    uint32_t ndim; /* 0 for a scalar */
    uint64_t shape[REEL_SAFETENSORS_MAX_DIMS];
    uint64_t numel;   /* product of shape (1 for a scalar) */
    const void *data; /* in the mapping, maybe unaligned */
    uint64_t nbytes;
} reel_st_tensor;

typedef struct reel_safetensors reel_safetensors;

int reel_safetensors_open(const char *path, reel_safetensors **out,
                          reel_diag *d);
void reel_safetensors_close(reel_safetensors *st);

/* Tensors in the header's order. */
uint32_t reel_safetensors_count(const reel_safetensors *st);
const reel_st_tensor *reel_safetensors_at(const reel_safetensors *st,
                                          uint32_t i);
/* NULL when there is no tensor of that name. */
const reel_st_tensor *reel_safetensors_find(const reel_safetensors *st,
                                            const char *name);
const char *reel_safetensors_path(const reel_safetensors *st);

/* "F32", "BF16", ... */
const char *reel_st_dtype_name(reel_st_dtype t);
uint32_t reel_st_dtype_size(reel_st_dtype t);

/* Converts an F32, F16 or BF16 tensor to numel floats in out (F16
 * subnormals, infinities and NaNs included). REEL_EUNSUPPORTED for other
 * dtypes. */
int reel_safetensors_to_f32(const reel_st_tensor *t, float *out);

/* IEEE half and bfloat16 to float, exactly. */
float reel_st_f16_to_f32(uint16_t h);
float reel_st_bf16_to_f32(uint16_t b);

#endif
