/* clip_model: see clip_model.h. */
#include "embed/clip_model.h"

#include <assert.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "embed/clip.h"

static const float CLIP_MEAN[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float CLIP_STD[3] = {0.26862954f, 0.26130258f, 0.27577711f};

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = reel_xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* An integer or {"shortest_edge": n} (size) / {"height": h, "width": w}
 * with h == w (crop_size). */
static int side(const char *path, json_t *v, const char *key, uint32_t *out,
                reel_diag *d)
{
    if (!v || json_is_null(v))
        return 0;
    json_int_t s = -1;
    if (json_is_integer(v)) {
        s = json_integer_value(v);
    } else if (json_is_object(v)) {
        json_t *se = json_object_get(v, "shortest_edge");
        json_t *h = json_object_get(v, "height"),
               *w = json_object_get(v, "width");
        if (json_is_integer(se))
            s = json_integer_value(se);
        else if (json_is_integer(h) && json_is_integer(w) &&
                 json_integer_value(h) == json_integer_value(w))
            s = json_integer_value(h);
        else
            return reel_diag_fail(
                d, REEL_EUNSUPPORTED,
                "%s: \"%s\" must be an integer, {\"shortest_edge\": n} or a "
                "square {\"height\", \"width\"}",
                path, key);
    }
    if (s < 1 || s > 4096)
        return reel_diag_fail(d, REEL_EFORMAT, "%s: \"%s\" must be in 1..4096",
                              path, key);
    *out = (uint32_t)s;
    return 0;
}

static int triple(const char *path, json_t *v, const char *key, float *out,
                  int positive, reel_diag *d)
{
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v) || json_array_size(v) != 3)
        return reel_diag_fail(d, REEL_EFORMAT, "%s: \"%s\" must be 3 numbers",
                              path, key);
    for (size_t i = 0; i < 3; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_number(e) || !isfinite(json_number_value(e)) ||
            (positive && json_number_value(e) <= 0))
            return reel_diag_fail(d, REEL_EFORMAT,
                                  "%s: \"%s\" must be 3 %snumbers", path, key,
                                  positive ? "positive " : "");
        out[i] = (float)json_number_value(e);
    }
    return 0;
}

static int read_preprocessor(reel_clip_model *m, reel_diag *d)
{
    char *path = join(m->dir, "preprocessor_config.json");
    int rc = 0;
    if (access(path, F_OK)) {
        free(path);
        return 0;
    }
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root || !json_is_object(root)) {
        rc = reel_diag_fail(d, REEL_EFORMAT, "%s:%d: %s", path,
                            root ? 0 : je.line,
                            root ? "not a JSON object" : je.text);
        goto out;
    }
    static const char *const must_not_be_false[] = {
        "do_resize", "do_center_crop", "do_rescale", "do_normalize",
        "do_convert_rgb"};
    for (size_t i = 0; i < sizeof must_not_be_false / sizeof *must_not_be_false;
         i++)
        if (json_is_false(json_object_get(root, must_not_be_false[i]))) {
            rc = reel_diag_fail(d, REEL_EUNSUPPORTED,
                                "%s: \"%s\": false is not supported", path,
                                must_not_be_false[i]);
            goto out;
        }
    json_t *rs = json_object_get(root, "resample");
    if (rs && !json_is_null(rs) &&
        !(json_is_integer(rs) && json_integer_value(rs) == 3)) {
        rc = reel_diag_fail(d, REEL_EUNSUPPORTED,
                            "%s: \"resample\" must be 3 (bicubic)", path);
        goto out;
    }
    json_t *rf = json_object_get(root, "rescale_factor");
    if (rf && !json_is_null(rf) &&
        !(json_is_number(rf) &&
          fabs(json_number_value(rf) - 1.0 / 255) < 1e-9)) {
        rc = reel_diag_fail(d, REEL_EUNSUPPORTED,
                            "%s: \"rescale_factor\" must be 1/255", path);
        goto out;
    }
    if ((rc = side(path, json_object_get(root, "size"), "size", &m->size, d)) ||
        (rc = side(path, json_object_get(root, "crop_size"), "crop_size",
                   &m->crop, d)) ||
        (rc = triple(path, json_object_get(root, "image_mean"), "image_mean",
                     m->mean, 0, d)) ||
        (rc = triple(path, json_object_get(root, "image_std"), "image_std",
                     m->std, 1, d)))
        goto out;
    if (m->crop != m->w->cfg.vision.image_size)
        rc = reel_diag_fail(
            d, REEL_EFORMAT,
            "%s: crop_size %u differs from the vision tower's image_size %u",
            path, m->crop, m->w->cfg.vision.image_size);
out:
    json_decref(root);
    free(path);
    return rc;
}

int reel_clip_model_open(const char *dir, reel_clip_model **out, reel_diag *d)
{
    *out = NULL;
    reel_clip_model *m = reel_xcalloc(1, sizeof *m);
    m->dir = reel_xstrndup(dir, strlen(dir));
    m->batch = 8;
    char *vocab = join(dir, "vocab.json"), *merges = join(dir, "merges.txt");
    int rc = reel_clip_weights_open(dir, &m->w, d);
    if (rc)
        goto fail;
    for (const char *const *f = (const char *const[]){vocab, merges, NULL}; *f;
         f++)
        if (access(*f, R_OK)) {
            rc = reel_diag_fail(
                d, REEL_ENOENT,
                "%s: missing or unreadable (a CLIP model directory needs "
                "vocab.json and merges.txt)",
                *f);
            goto fail;
        }
    rc = reel_clip_tokenizer_open(vocab, merges, &m->tok, d);
    if (rc)
        goto fail;
    int32_t nv = reel_clip_tokenizer_vocab_size(m->tok);
    if ((uint32_t)nv > m->w->cfg.text.vocab) {
        rc = reel_diag_fail(
            d, REEL_EFORMAT,
            "%s: %d tokens, more than the text tower's vocab_size %u", vocab,
            nv, m->w->cfg.text.vocab);
        goto fail;
    }
    m->ctx = m->w->cfg.text.max_pos;
    m->size = m->crop = m->w->cfg.vision.image_size;
    memcpy(m->mean, CLIP_MEAN, sizeof m->mean);
    memcpy(m->std, CLIP_STD, sizeof m->std);
    rc = read_preprocessor(m, d);
    if (rc)
        goto fail;
    free(vocab);
    free(merges);
    *out = m;
    return 0;
fail:
    free(vocab);
    free(merges);
    reel_clip_model_free(m);
    return rc;
}

void reel_clip_model_free(reel_clip_model *m)
{
    if (!m)
        return;
    reel_clip_weights_free(m->w);
    reel_clip_tokenizer_free(m->tok);
    free(m->dir);
    free(m);
}

void reel_clip_model_set_batch(reel_clip_model *m, uint32_t batch)
{
    m->batch = batch ? batch : 1;
}

uint32_t reel_clip_model_dim(const reel_clip_model *m)
{
    return m->w->cfg.proj_dim;
}

float reel_clip_model_logit_scale(const reel_clip_model *m)
{
    return reel_clip_logit_scale(m->w);
}

int reel_clip_model_tokenize(const reel_clip_model *m, const char *text,
                             size_t len, int32_t *ids)
{
    return reel_clip_tokenizer_encode(m->tok, text, len, ids, (int)m->ctx);
}

int reel_clip_model_texts(const reel_clip_model *m, const char *const *text,
                          const size_t *len, uint32_t n, float *out, int *rc)
{
    uint32_t dim = reel_clip_model_dim(m), b = m->batch, ctx = m->ctx;
    int32_t *ids = reel_xmalloc((size_t)b * ctx * sizeof *ids);
    uint32_t *lens = reel_xmalloc(b * sizeof *lens),
             *which = reel_xmalloc(b * sizeof *which);
    int first = 0;
    int32_t end = reel_clip_tokenizer_end_id(m->tok);
    for (uint32_t i0 = 0; i0 < n; i0 += b) {
        uint32_t nb = 0;
        for (uint32_t i = i0; i < n && i < i0 + b; i++) {
            int c = reel_clip_model_tokenize(m, text[i], len[i],
                                             ids + (size_t)nb * ctx);
            if (rc)
                rc[i] = c < 0 ? c : 0;
            if (c < 0) {
                first = first ? first : c;
                memset(out + (size_t)i * dim, 0, dim * sizeof *out);
                continue;
            }
            lens[nb] = (uint32_t)c;
            which[nb++] = i;
        }
        if (!nb)
            continue;
        float *e = reel_xmalloc((size_t)nb * dim * sizeof *e);
        int r = reel_clip_text_embed(m->w, ids, lens, ctx, nb, end, e);
        assert(r == 0); /* the tokenizer's ids are in range by construction */
        for (uint32_t j = 0; j < nb; j++)
            memcpy(out + (size_t)which[j] * dim, e + (size_t)j * dim,
                   dim * sizeof *e);
        free(e);
    }
    free(ids);
    free(lens);
    free(which);
    return rc ? 0 : first;
}

int reel_clip_model_images(const reel_clip_model *m, const reel_image *img,
                           uint32_t n, float *out)
{
    uint32_t dim = reel_clip_model_dim(m), b = m->batch, S = m->crop;
    size_t per = (size_t)3 * S * S;
    float *px = reel_xmalloc((size_t)b * per * sizeof *px);
    int rc = 0;
    for (uint32_t i0 = 0; i0 < n && !rc; i0 += b) {
        uint32_t nb = n - i0 < b ? n - i0 : b;
        for (uint32_t j = 0; j < nb && !rc; j++)
            rc = reel_image_clip_input(&img[i0 + j], m->size, S, m->mean,
                                       m->std, px + (size_t)j * per);
        if (!rc)
            rc = reel_clip_image_embed(m->w, px, nb, out + (size_t)i0 * dim);
    }
    free(px);
    return rc;
}
