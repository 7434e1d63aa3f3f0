/*
 * clip: CLIP's two towers (ViT image encoder, causal text transformer) over
 * the weights of clip_weights.h, in float32, with the matrix work in
 * OpenBLAS's sgemm.
 *
 * Vision: patch embedding (a P x P, stride P convolution without bias,
 * done as one matrix product over the flattened patches), class token,
 * position embeddings, pre-LN ("pre_layrnorm"), the encoder layers (LN ->
 * multi-head self-attention -> residual, LN -> MLP -> residual; q scaled by
 * head_dim^-0.5 after its projection; quick_gelu or gelu), post-LN on the
 * class token, visual_projection. Text: token + position embeddings, the
 * same layers with a causal mask, final LN, pooling on the first position
 * holding `end_id` (position 0 when there is none, as transformers does),
 * text_projection. Both return L2-normalised embeddings of proj_dim floats.
 *
 * Results do not depend on the batch size or the thread count beyond float
 * rounding (texts of different lengths are padded at the end, which the
 * causal mask keeps from influencing the real tokens).
 *
 * Thread rules: the weights are read-only, so any number of threads may
 * call these at once; each call allocates its own scratch memory.
 * reel_clip_set_threads() sets OpenBLAS's thread count for the process.
 */
#ifndef REEL_EMBED_CLIP_H
#define REEL_EMBED_CLIP_H

#include <stdint.h>

#include "embed/clip_weights.h"

/* n images, each 3 x S x S float32 planar (reel_image_clip_input's output,
 * S = vision.image_size); out receives n x proj_dim floats. */
int reel_clip_image_embed(const reel_clip_weights *w, const float *pixels,
                          uint32_t n, float *out);

/* n token sequences: ids[i * stride ...], len[i] ids each (1..max_pos,
 * every id < vocab, else REEL_EINVAL); out receives n x proj_dim floats. */
int reel_clip_text_embed(const reel_clip_weights *w, const int32_t *ids,
                         const uint32_t *len, uint32_t stride, uint32_t n,
                         int32_t end_id, float *out);

/* exp(logit_scale): cosine x this = the logits CLIPModel returns. */
float reel_clip_logit_scale(const reel_clip_weights *w);

void reel_clip_set_threads(int n);

#endif
