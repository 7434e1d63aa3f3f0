/*
 * clip_model: a CLIP checkpoint directory as Hugging Face publishes it,
 * ready to embed texts and pictures: the weights (clip_weights.h), the
 * tokenizer (clip_tokenizer.h: vocab.json, merges.txt) and the image
 * preprocessing (image.h's CLIPImageProcessor).
 *
 * Files: config.json, model.safetensors, vocab.json and merges.txt are
 * required; preprocessor_config.json is optional. Without it the
 * preprocessing is CLIPImageProcessor's default for the vision tower:
 * shortest side and centre crop to vision.image_size, CLIP's mean and std.
 * With it, "size" (an integer or {"shortest_edge": n}), "crop_size" (an
 * integer or a square {"height", "width"}), "image_mean" and "image_std"
 * are read; do_resize / do_center_crop / do_rescale / do_normalize /
 * do_convert_rgb must not be false, "resample" must be 3 (bicubic) and
 * "rescale_factor" 1/255 (anything else is REEL_EUNSUPPORTED, named). The
 * crop must equal vision.image_size. Every error names the file.
 *
 * Texts are tokenized to the text tower's context (max_position_embeddings,
 * 77 for the published models) and pooled on the tokenizer's end token
 * ("<|endoftext|>" from vocab.json), whatever the config's eos_token_id.
 * Embeddings are projected and L2-normalised (proj_dim floats).
 *
 * Batching: calls embed their inputs `batch` at a time (set_batch; default
 * 8); the batch size and the thread count (clip.h) change speed, never
 * results beyond float rounding.
 *
 * Ownership: the model owns everything it loaded. Thread rules: after open
 * it is read-only; any number of threads may embed at once (set_batch is
 * not synchronised: call it before sharing the model).
 */
#ifndef REEL_EMBED_CLIP_MODEL_H
#define REEL_EMBED_CLIP_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "embed/clip_tokenizer.h"
#include "embed/clip_weights.h"
#include "embed/image.h"

typedef struct reel_clip_model {
    reel_clip_weights *w;
    reel_clip_tokenizer *tok;
    uint32_t size, crop; /* preprocessing: shortest side, centre crop */
    float mean[3], std[3];
    uint32_t ctx; /* text context length */
    uint32_t batch;
    char *dir;
} reel_clip_model;

int reel_clip_model_open(const char *dir, reel_clip_model **out, reel_diag *d);
void reel_clip_model_free(reel_clip_model *m);
void reel_clip_model_set_batch(reel_clip_model *m, uint32_t batch);

/* proj_dim: the length of every embedding. */
uint32_t reel_clip_model_dim(const reel_clip_model *m);
/* exp(logit_scale). */
float reel_clip_model_logit_scale(const reel_clip_model *m);

/* Token ids of a text (ids must hold m->ctx): the count, or a negative
 * error (REEL_EFORMAT: not UTF-8). */
int reel_clip_model_tokenize(const reel_clip_model *m, const char *text,
                             size_t len, int32_t *ids);

/* n texts -> n x dim floats. rc[i] (when rc is not NULL) receives 0 or the
 * text's error (its row is then zeros); returns 0, or the first error when
 * rc is NULL. */
int reel_clip_model_texts(const reel_clip_model *m, const char *const *text,
                          const size_t *len, uint32_t n, float *out, int *rc);

/* n pictures -> n x dim floats, through CLIPImageProcessor. */
int reel_clip_model_images(const reel_clip_model *m, const reel_image *img,
                           uint32_t n, float *out);

#endif
