/* clip_weights: see clip_weights.h. */
#include "embed/clip_weights.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "embed/safetensors.h"

/* ---- config.json ---- */

static void tower_defaults(reel_clip_tower_config *t, int vision)
{
    memset(t, 0, sizeof *t);
    t->ln_eps = 1e-5f;
    t->act = REEL_CLIP_QUICK_GELU;
    if (vision) {
        t->hidden = 768, t->mlp = 3072, t->layers = 12, t->heads = 12;
        t->image_size = 224, t->patch = 32, t->channels = 3;
    } else {
        t->hidden = 512, t->mlp = 2048, t->layers = 12, t->heads = 8;
        t->vocab = 49408, t->max_pos = 77, t->eos_token_id = 49407;
    }
}

static int get_u32(const char *path, const char *where, json_t *o,
                   const char *key, uint32_t lo, uint32_t hi, uint32_t *out,
                   reel_diag *d)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo ||
        json_integer_value(v) > hi)
        return reel_diag_fail(d, REEL_EFORMAT,
                              "%s: %s%s must be an integer in %u..%u", path,
                              where, key, lo, hi);
    *out = (uint32_t)json_integer_value(v);
    return 0;
}

static int read_tower(const char *path, json_t *o, int vision,
                      reel_clip_tower_config *t, uint32_t *proj, int *has_proj,
                      reel_diag *d)
{
    tower_defaults(t, vision);
    if (!o)
        return 0;
    const char *w = vision ? "vision_config." : "text_config.";
    if (!json_is_object(o))
        return reel_diag_fail(d, REEL_EFORMAT, "%s: %s is not an object", path,
                              vision ? "vision_config" : "text_config");
    int rc = 0;
    rc = rc ? rc
            : get_u32(path, w, o, "hidden_size", 1, REEL_CLIP_MAX_HIDDEN,
                      &t->hidden, d);
    rc = rc ? rc
            : get_u32(path, w, o, "intermediate_size", 1, 65536, &t->mlp, d);
    rc = rc ? rc
            : get_u32(path, w, o, "num_hidden_layers", 1, REEL_CLIP_MAX_LAYERS,
                      &t->layers, d);
    rc = rc ? rc
            : get_u32(path, w, o, "num_attention_heads", 1, 1024, &t->heads, d);
    if (vision) {
        rc = rc ? rc
                : get_u32(path, w, o, "image_size", 1, 4096, &t->image_size, d);
        rc = rc ? rc : get_u32(path, w, o, "patch_size", 1, 4096, &t->patch, d);
        rc = rc ? rc
                : get_u32(path, w, o, "num_channels", 1, 4, &t->channels, d);
    } else {
        rc = rc ? rc
                : get_u32(path, w, o, "vocab_size", 2, 1u << 22, &t->vocab, d);
        rc = rc ? rc
                : get_u32(path, w, o, "max_position_embeddings", 2, 4096,
                          &t->max_pos, d);
        json_t *e = json_object_get(o, "eos_token_id");
        if (json_is_integer(e))
            t->eos_token_id = json_integer_value(e);
    }
    if (!rc && json_object_get(o, "projection_dim") &&
        !json_is_null(json_object_get(o, "projection_dim"))) {
        rc = get_u32(path, w, o, "projection_dim", 1, 65536, proj, d);
        *has_proj = 1;
    }
    if (rc)
        return rc;
    json_t *eps = json_object_get(o, "layer_norm_eps");
    if (eps && !json_is_null(eps)) {
        if (!json_is_number(eps) || json_number_value(eps) <= 0 ||
            json_number_value(eps) > 1)
            return reel_diag_fail(d, REEL_EFORMAT,
                                  "%s: %slayer_norm_eps must be in (0, 1]",
                                  path, w);
        t->ln_eps = (float)json_number_value(eps);
    }
    json_t *act = json_object_get(o, "hidden_act");
    if (act && !json_is_null(act)) {
        const char *a = json_string_value(act);
        if (a && !strcmp(a, "quick_gelu"))
            t->act = REEL_CLIP_QUICK_GELU;
        else if (a && !strcmp(a, "gelu"))
            t->act = REEL_CLIP_GELU;
        else
            return reel_diag_fail(
                d, REEL_EUNSUPPORTED,
                "%s: %shidden_act '%s' (supported: quick_gelu, gelu)", path, w,
                a ? a : "?");
    }
    if (t->hidden % t->heads)
        return reel_diag_fail(
            d, REEL_EFORMAT,
            "%s: %shidden_size %u is not a multiple of num_attention_heads %u",
            path, w, t->hidden, t->heads);
    if (vision && (t->image_size % t->patch))
        return reel_diag_fail(
            d, REEL_EFORMAT,
            "%s: %simage_size %u is not a multiple of patch_size %u", path, w,
            t->image_size, t->patch);
    return 0;
}

int reel_clip_config_read(const char *path, reel_clip_config *out, reel_diag *d)
{
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        FILE *f = fopen(path, "rb");
        if (!f)
            return reel_diag_fail(d, REEL_ENOENT,
                                  "%s: cannot open (a CLIP model directory "
                                  "needs config.json)",
                                  path);
        fclose(f);
        return reel_diag_fail(d, REEL_EFORMAT, "%s:%d: %s", path, je.line,
                              je.text);
    }
    int rc = 0;
    if (!json_is_object(root)) {
        rc = reel_diag_fail(d, REEL_EFORMAT, "%s: not a JSON object", path);
        goto out;
    }
    /* Legacy files: the *_config_dict, with the defaults filled in, is the
     * whole sub-config (transformers updates *_config with all of it). */
    json_t *tc = json_object_get(root, "text_config_dict");
    if (!tc || json_is_null(tc))
        tc = json_object_get(root, "text_config");
    json_t *vc = json_object_get(root, "vision_config_dict");
    if (!vc || json_is_null(vc))
        vc = json_object_get(root, "vision_config");
    if (json_is_null(tc))
        tc = NULL;
    if (json_is_null(vc))
        vc = NULL;
    uint32_t tproj = 512, vproj = 512, proj = 512;
    int has_t = 0, has_v = 0, has_top = 0;
    rc = read_tower(path, tc, 0, &out->text, &tproj, &has_t, d);
    if (!rc)
        rc = read_tower(path, vc, 1, &out->vision, &vproj, &has_v, d);
    if (!rc && json_object_get(root, "projection_dim") &&
        !json_is_null(json_object_get(root, "projection_dim"))) {
        rc = get_u32(path, "", root, "projection_dim", 1, 65536, &proj, d);
        has_top = 1;
    }
    if (rc)
        goto out;
    out->proj_dim = has_top ? proj : has_t ? tproj : has_v ? vproj : 512;
out:
    json_decref(root);
    return rc;
}

/* ---- model.safetensors ---- */

struct priv {
    reel_safetensors *st;
    float **owned;
    size_t n_owned, cap_owned;
    uint8_t *used; /* per tensor: bound to a layer */
};

struct binder {
    const char *path;
    reel_clip_weights *w;
    struct priv *p;
    reel_diag *d;
    int rc;
};

/* Binds the tensor `name` with the given shape (ndim dims) as float32. */
static const float *bind(struct binder *b, const char *name, uint32_t ndim, ...)
{
    if (b->rc)
        return NULL;
    const reel_st_tensor *t = reel_safetensors_find(b->p->st, name);
    if (!t) {
        b->rc = reel_diag_fail(b->d, REEL_EFORMAT, "%s: tensor '%s' is missing",
                               b->path, name);
        return NULL;
    }
    uint64_t want[REEL_SAFETENSORS_MAX_DIMS];
    va_list ap;
    va_start(ap, ndim);
    for (uint32_t i = 0; i < ndim; i++)
        want[i] = va_arg(ap, uint64_t);
    va_end(ap);
    int same = t->ndim == ndim;
    for (uint32_t i = 0; same && i < ndim; i++)
        same = t->shape[i] == want[i];
    if (!same) {
        char got[128] = "", exp[128] = "";
        size_t gl = 0, el = 0;
        for (uint32_t i = 0; i < t->ndim && gl < sizeof got - 24; i++)
            gl += (size_t)snprintf(got + gl, sizeof got - gl, "%s%llu",
                                   i ? ", " : "",
                                   (unsigned long long)t->shape[i]);
        for (uint32_t i = 0; i < ndim && el < sizeof exp - 24; i++)
            el += (size_t)snprintf(exp + el, sizeof exp - el, "%s%llu",
                                   i ? ", " : "", (unsigned long long)want[i]);
        b->rc = reel_diag_fail(
            b->d, REEL_EFORMAT,
            "%s: tensor '%s' has shape [%s], config.json implies [%s]", b->path,
            name, got, exp);
        return NULL;
    }
    if (t->dtype != REEL_ST_F32 && t->dtype != REEL_ST_F16 &&
        t->dtype != REEL_ST_BF16) {
        b->rc =
            reel_diag_fail(b->d, REEL_EFORMAT,
                           "%s: tensor '%s' is %s (F32, F16 or BF16 expected)",
                           b->path, name, reel_st_dtype_name(t->dtype));
        return NULL;
    }
    b->p->used[t - reel_safetensors_at(b->p->st, 0)] = 1;
    if (t->dtype == REEL_ST_F32 && ((uintptr_t)t->data & 3) == 0)
        return t->data;
    float *f = reel_xmalloc((t->numel ? t->numel : 1) * sizeof *f);
    reel_safetensors_to_f32(t, f);
    REEL_GROW(b->p->owned, b->p->cap_owned, b->p->n_owned + 1);
    b->p->owned[b->p->n_owned++] = f;
    return f;
}

#define U(x) ((uint64_t)(x))

static void bind_layers(struct binder *b, const char *tower,
                        const reel_clip_tower_config *c, reel_clip_layer *L)
{
    char n[160];
    uint64_t H = c->hidden, M = c->mlp;
#define B1(field, suffix, dim)                                                 \
    (snprintf(n, sizeof n, "%s.encoder.layers.%u.%s", tower, i, suffix),       \
     L[i].field = bind(b, n, 1, U(dim)))
#define B2(field, suffix, d0, d1)                                              \
    (snprintf(n, sizeof n, "%s.encoder.layers.%u.%s", tower, i, suffix),       \
     L[i].field = bind(b, n, 2, U(d0), U(d1)))
    for (uint32_t i = 0; i < c->layers; i++) {
        B1(ln1_w, "layer_norm1.weight", H);
        B1(ln1_b, "layer_norm1.bias", H);
        B1(ln2_w, "layer_norm2.weight", H);
        B1(ln2_b, "layer_norm2.bias", H);
        B2(q_w, "self_attn.q_proj.weight", H, H);
        B1(q_b, "self_attn.q_proj.bias", H);
        B2(k_w, "self_attn.k_proj.weight", H, H);
        B1(k_b, "self_attn.k_proj.bias", H);
        B2(v_w, "self_attn.v_proj.weight", H, H);
        B1(v_b, "self_attn.v_proj.bias", H);
        B2(o_w, "self_attn.out_proj.weight", H, H);
        B1(o_b, "self_attn.out_proj.bias", H);
        B2(fc1_w, "mlp.fc1.weight", M, H);
        B1(fc1_b, "mlp.fc1.bias", M);
        B2(fc2_w, "mlp.fc2.weight", H, M);
        B1(fc2_b, "mlp.fc2.bias", H);
    }
#undef B1
#undef B2
}

static void pack_layers(reel_clip_layer *L, const reel_clip_tower_config *c)
{
    for (uint32_t i = 0; i < c->layers; i++) {
        reel_matw_pack(&L[i].q, L[i].q_w, c->hidden, c->hidden);
        reel_matw_pack(&L[i].k, L[i].k_w, c->hidden, c->hidden);
        reel_matw_pack(&L[i].v, L[i].v_w, c->hidden, c->hidden);
        reel_matw_pack(&L[i].o, L[i].o_w, c->hidden, c->hidden);
        reel_matw_pack(&L[i].fc1, L[i].fc1_w, c->mlp, c->hidden);
        reel_matw_pack(&L[i].fc2, L[i].fc2_w, c->hidden, c->mlp);
    }
}

static void pack_all(reel_clip_weights *w)
{
    const reel_clip_tower_config *tc = &w->cfg.text, *vc = &w->cfg.vision;
    pack_layers(w->text.layer, tc);
    pack_layers(w->vision.layer, vc);
    reel_matw_pack(&w->text.proj_m, w->text.proj, w->cfg.proj_dim, tc->hidden);
    reel_matw_pack(&w->vision.proj_m, w->vision.proj, w->cfg.proj_dim,
                   vc->hidden);
    reel_matw_pack(&w->vision.patch_m, w->vision.patch_w, vc->hidden,
                   vc->channels * vc->patch * vc->patch);
}

static void unpack_layers(reel_clip_layer *L, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        reel_matw_free(&L[i].q), reel_matw_free(&L[i].k),
            reel_matw_free(&L[i].v);
        reel_matw_free(&L[i].o), reel_matw_free(&L[i].fc1),
            reel_matw_free(&L[i].fc2);
    }
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

int reel_clip_weights_open(const char *dir, reel_clip_weights **out,
                           reel_diag *d)
{
    *out = NULL;
    size_t dl = strlen(dir);
    char *cpath = reel_xmalloc(dl + 32), *mpath = reel_xmalloc(dl + 32);
    snprintf(cpath, dl + 32, "%s/config.json", dir);
    snprintf(mpath, dl + 32, "%s/model.safetensors", dir);
    reel_clip_weights *w = reel_xcalloc(1, sizeof *w);
    struct priv *p = reel_xcalloc(1, sizeof *p);
    w->priv = p;
    int rc = reel_clip_config_read(cpath, &w->cfg, d);
    if (rc)
        goto fail;
    rc = reel_safetensors_open(mpath, &p->st, d);
    if (rc) {
        if (rc == REEL_ENOENT)
            reel_diag_fail(
                d, rc,
                "%s: missing (a CLIP model directory needs model.safetensors)",
                mpath);
        goto fail;
    }
    uint32_t nt = reel_safetensors_count(p->st);
    p->used = reel_xcalloc(nt ? nt : 1, 1);
    struct binder b = {mpath, w, p, d, 0};
    const reel_clip_tower_config *tc = &w->cfg.text, *vc = &w->cfg.vision;
    uint64_t P = w->cfg.proj_dim;
    w->text.tok_emb = bind(&b, "text_model.embeddings.token_embedding.weight",
                           2, U(tc->vocab), U(tc->hidden));
    w->text.pos_emb =
        bind(&b, "text_model.embeddings.position_embedding.weight", 2,
             U(tc->max_pos), U(tc->hidden));
    bind_layers(&b, "text_model", tc, w->text.layer);
    w->text.ln_w =
        bind(&b, "text_model.final_layer_norm.weight", 1, U(tc->hidden));
    w->text.ln_b =
        bind(&b, "text_model.final_layer_norm.bias", 1, U(tc->hidden));
    w->text.proj = bind(&b, "text_projection.weight", 2, P, U(tc->hidden));
    uint64_t g = vc->image_size / vc->patch;
    w->vision.class_emb =
        bind(&b, "vision_model.embeddings.class_embedding", 1, U(vc->hidden));
    w->vision.patch_w =
        bind(&b, "vision_model.embeddings.patch_embedding.weight", 4,
             U(vc->hidden), U(vc->channels), U(vc->patch), U(vc->patch));
    w->vision.pos_emb =
        bind(&b, "vision_model.embeddings.position_embedding.weight", 2,
             g * g + 1, U(vc->hidden));
    w->vision.pre_ln_w =
        bind(&b, "vision_model.pre_layrnorm.weight", 1, U(vc->hidden));
    w->vision.pre_ln_b =
        bind(&b, "vision_model.pre_layrnorm.bias", 1, U(vc->hidden));
    bind_layers(&b, "vision_model", vc, w->vision.layer);
    w->vision.post_ln_w =
        bind(&b, "vision_model.post_layernorm.weight", 1, U(vc->hidden));
    w->vision.post_ln_b =
        bind(&b, "vision_model.post_layernorm.bias", 1, U(vc->hidden));
    w->vision.proj = bind(&b, "visual_projection.weight", 2, P, U(vc->hidden));
    const float *ls = bind(&b, "logit_scale", 0);
    if ((rc = b.rc))
        goto fail;
    memcpy(&w->logit_scale, ls, sizeof w->logit_scale);
    pack_all(w);
    uint32_t counts[3] = {0};
    for (uint32_t i = 0; i < nt; i++) {
        const reel_st_tensor *t = reel_safetensors_at(p->st, i);
        if (p->used[i]) {
            counts[t->dtype == REEL_ST_F32   ? 0
                   : t->dtype == REEL_ST_F16 ? 1
                                             : 2]++;
            continue;
        }
        if (ends_with(t->name, ".position_ids"))
            continue;
        rc = reel_diag_fail(
            d, REEL_EFORMAT,
            "%s: unexpected tensor '%s' (not part of a CLIPModel with this "
            "config.json)",
            mpath, t->name);
        goto fail;
    }
    snprintf(w->dtype, sizeof w->dtype, "%s",
             counts[0] >= counts[1] && counts[0] >= counts[2] ? "F32"
             : counts[1] >= counts[2]                         ? "F16"
                                                              : "BF16");
    free(cpath);
    free(mpath);
    *out = w;
    return 0;
fail:
    free(cpath);
    free(mpath);
    reel_clip_weights_free(w);
    return rc;
}

void reel_clip_weights_free(reel_clip_weights *w)
{
    if (!w)
        return;
    unpack_layers(w->text.layer, REEL_CLIP_MAX_LAYERS);
    unpack_layers(w->vision.layer, REEL_CLIP_MAX_LAYERS);
    reel_matw_free(&w->text.proj_m);
    reel_matw_free(&w->vision.proj_m);
    reel_matw_free(&w->vision.patch_m);
    struct priv *p = w->priv;
    if (p) {
        for (size_t i = 0; i < p->n_owned; i++)
            free(p->owned[i]);
        free(p->owned);
        free(p->used);
        reel_safetensors_close(p->st);
        free(p);
    }
    free(w);
}
