/*
 * clip_weights: a CLIP checkpoint as Hugging Face publishes it (config.json
 * and model.safetensors in one directory), read, checked and bound to the
 * layers of the two towers.
 *
 * config.json loads in every published style: full, sparse (keys equal to
 * their defaults left out; the defaults are CLIPTextConfig's and
 * CLIPVisionConfig's), and legacy files whose "text_config_dict" /
 * "vision_config_dict" override "text_config" / "vision_config".
 * projection_dim is read at the top level, else from the sub-configs, else
 * 512; whatever it is, the projection tensors must agree with it.
 * hidden_act may be "quick_gelu" (the OpenAI checkpoints) or "gelu" (erf).
 *
 * model.safetensors: every tensor CLIPModel has (names as in transformers,
 * e.g. "vision_model.pre_layrnorm.weight", "logit_scale" 0-dim) must be
 * there with the shape the config implies and a dtype of F32, F16 or BF16;
 * "*.position_ids" is ignored whatever its dtype and whether or not it is
 * there; any other unknown tensor is an error. Errors name the file, the
 * tensor and what is wrong (REEL_EFORMAT, REEL_ENOENT for a missing file).
 *
 * Weights are kept as float32: F32 tensors are read in place from the
 * mapping when aligned, everything else is converted into owned memory.
 * Linear weights keep torch's [out, in] row-major layout, and each is also
 * packed once for matmul.h's kernel (the reel_matw fields).
 *
 * Ownership: reel_clip_weights_free() releases everything, including the
 * mapping. Thread rules: immutable after open; share freely.
 */
#ifndef REEL_EMBED_CLIP_WEIGHTS_H
#define REEL_EMBED_CLIP_WEIGHTS_H

#include <stdint.h>

#include "base/err.h"
#include "embed/matmul.h"

#define REEL_CLIP_MAX_LAYERS 64
#define REEL_CLIP_MAX_HIDDEN 8192

typedef enum reel_clip_act {
    REEL_CLIP_QUICK_GELU,
    REEL_CLIP_GELU,
} reel_clip_act;

typedef struct reel_clip_tower_config {
    uint32_t hidden, mlp, layers, heads;
    float ln_eps;
    reel_clip_act act;
    /* text tower */
    uint32_t vocab, max_pos;
    int64_t eos_token_id; /* from the config; pooling does not use it */
    /* vision tower */
    uint32_t image_size, patch, channels;
} reel_clip_tower_config;

typedef struct reel_clip_config {
    reel_clip_tower_config text, vision;
    uint32_t proj_dim;
} reel_clip_config;

typedef struct reel_clip_layer {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    const float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w,
        *o_b;                       /* [H, H], [H] */
    const float *fc1_w, *fc1_b;     /* [mlp, H], [mlp] */
    const float *fc2_w, *fc2_b;     /* [H, mlp], [H] */
    reel_matw q, k, v, o, fc1, fc2; /* the same weights packed (matmul.h) */
} reel_clip_layer;

typedef struct reel_clip_weights {
    reel_clip_config cfg;
    struct {
        const float *tok_emb; /* [vocab, H] */
        const float *pos_emb; /* [max_pos, H] */
        reel_clip_layer layer[REEL_CLIP_MAX_LAYERS];
        const float *ln_w, *ln_b; /* final_layer_norm */
        const float *proj;        /* text_projection [proj, H] */
        reel_matw proj_m;
    } text;
    struct {
        const float *class_emb; /* [H] */
        const float *patch_w;   /* [H, C, P, P] */
        const float *pos_emb;   /* [patches + 1, H] */
        const float *pre_ln_w, *pre_ln_b;
        reel_clip_layer layer[REEL_CLIP_MAX_LAYERS];
        const float *post_ln_w, *post_ln_b;
        const float *proj; /* visual_projection [proj, H] */
        reel_matw patch_m, proj_m;
    } vision;
    float logit_scale; /* the stored value; the model uses exp() of it */
    char dtype[8];     /* storage dtype of most weights: "F32", "F16", "BF16" */
    void *priv;
} reel_clip_weights;

/* Reads only config.json (path to the file), with the defaults applied. */
int reel_clip_config_read(const char *path, reel_clip_config *out,
                          reel_diag *d);

/* Opens dir/config.json and dir/model.safetensors. */
int reel_clip_weights_open(const char *dir, reel_clip_weights **out,
                           reel_diag *d);
void reel_clip_weights_free(reel_clip_weights *w);

#endif
