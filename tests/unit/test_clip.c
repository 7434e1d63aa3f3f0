/* Unit tests of src/embed's safetensors reader, CLIP config and weight
 * binding and the two towers. Bad files give errors that name the file and
 * the tensor. With REEL_CLIP_ORACLE_DIR set (tests/reference/clip_torch.py
 * sets it), the towers are compared with a plain-torch CLIP on the
 * checkpoints the script wrote. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "embed/clip.h"
#include "embed/clip_weights.h"
#include "embed/matmul.h"
#include "embed/safetensors.h"

/* ---- writing small safetensors files ---- */

struct tw {
    const char *name, *dtype;
    uint32_t ndim;
    uint64_t shape[4];
    const void *data;
    uint64_t nbytes;
};

/* Writes the file; `hdr_extra` is appended inside the JSON object. */
static void write_st(const char *path, const struct tw *t, uint32_t n,
                     const char *hdr_extra)
{
    char *h = calloc(1, 1 << 20);
    size_t hl = 0;
    uint64_t off = 0;
    hl += (size_t)sprintf(h + hl, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (uint32_t i = 0; i < n; i++) {
        hl += (size_t)sprintf(h + hl, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[",
                              t[i].name, t[i].dtype);
        for (uint32_t j = 0; j < t[i].ndim; j++)
            hl += (size_t)sprintf(h + hl, "%s%llu", j ? "," : "",
                                  (unsigned long long)t[i].shape[j]);
        hl += (size_t)sprintf(h + hl, "],\"data_offsets\":[%llu,%llu]}",
                              (unsigned long long)off,
                              (unsigned long long)(off + t[i].nbytes));
        off += t[i].nbytes;
    }
    if (hdr_extra)
        hl += (size_t)sprintf(h + hl, "%s", hdr_extra);
    h[hl++] = '}';
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    fwrite(len, 1, 8, f);
    fwrite(h, 1, hl, f);
    for (uint32_t i = 0; i < n; i++)
        fwrite(t[i].data, 1, t[i].nbytes, f);
    fclose(f);
    free(h);
}

static void write_raw(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(p, 1, n, f);
    fclose(f);
}

static void safetensors_reads_and_converts(void **state)
{
    char *dir = test_tmpdir();
    char *path = test_path(dir, "a.safetensors");
    float f32[6] = {1, -2, 3.5f, 0, 1e-3f, -7};
    uint16_t f16[5] = {0x3c00, 0xc000, 0x0001, 0x7c00,
                       0x7e00};                  /* 1 -2 2^-24 inf nan */
    uint16_t bf16[3] = {0x3f80, 0xc0a0, 0x0000}; /* 1 -5 0 */
    int64_t pos[4] = {0, 1, 2, 3};
    float scalar = 4.5f;
    struct tw t[] = {
        {"w", "F32", 2, {2, 3}, f32, sizeof f32},
        {"h", "F16", 1, {5}, f16, sizeof f16},
        {"b", "BF16", 1, {3}, bf16, sizeof bf16},
        {"pos", "I64", 2, {1, 4}, pos, sizeof pos},
        {"s", "F32", 0, {0}, &scalar, 4},
    };
    write_st(path, t, 5, NULL);
    reel_safetensors *st;
    reel_diag d;
    assert_int_equal(reel_safetensors_open(path, &st, &d), 0);
    assert_int_equal(reel_safetensors_count(st), 5);
    const reel_st_tensor *w = reel_safetensors_find(st, "w");
    assert_non_null(w);
    assert_int_equal(w->ndim, 2);
    assert_int_equal(w->shape[1], 3);
    float out[6];
    assert_int_equal(reel_safetensors_to_f32(w, out), 0);
    assert_memory_equal(out, f32, sizeof f32);
    assert_int_equal(
        reel_safetensors_to_f32(reel_safetensors_find(st, "h"), out), 0);
    assert_true(out[0] == 1.0f && out[1] == -2.0f && out[2] == ldexpf(1, -24));
    assert_true(isinf(out[3]) && out[3] > 0 && isnan(out[4]));
    assert_int_equal(
        reel_safetensors_to_f32(reel_safetensors_find(st, "b"), out), 0);
    assert_true(out[0] == 1.0f && out[1] == -5.0f && out[2] == 0.0f);
    assert_int_equal(
        reel_safetensors_to_f32(reel_safetensors_find(st, "pos"), out),
        REEL_EUNSUPPORTED);
    const reel_st_tensor *s = reel_safetensors_find(st, "s");
    assert_int_equal(s->ndim, 0);
    assert_int_equal(s->numel, 1);
    assert_null(reel_safetensors_find(st, "nope"));
    reel_safetensors_close(st);
    /* every half-precision value converts as the hardware would */
    for (uint32_t i = 0; i < 65536; i++) {
        float a = reel_st_f16_to_f32((uint16_t)i);
        _Float16 h;
        uint16_t u = (uint16_t)i;
        memcpy(&h, &u, 2);
        float b = (float)h;
        if (isnan(b))
            assert_true(isnan(a));
        else
            assert_memory_equal(&a, &b, 4);
    }
    free(path);
    test_rmtree(dir);
    free(dir);
}

/* Each broken file is refused with REEL_EFORMAT and a message naming it. */
static void safetensors_rejects_bad_files(void **state)
{
    char *dir = test_tmpdir();
    char *path = test_path(dir, "bad.safetensors");
    float f[4] = {0};
    reel_safetensors *st;
    reel_diag d;
    struct {
        struct tw t[2];
        uint32_t n;
        const char *extra;
        const char *msg;
    } cases[] = {
        {{{"a", "F32", 1, {3}, f, 16}}, 1, NULL, "bytes for 3 elements"},
        {{{"a", "Q4", 1, {4}, f, 16}}, 1, NULL, "unknown dtype"},
        {{{"a", "F32", 1, {4}, f, 16}},
         1,
         ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],"
         "\"data_offsets\":[8,16]}",
         "overlap"},
        {{{"a", "F32", 1, {4}, f, 16}},
         1,
         ",\"b\":{\"dtype\":\"F32\",\"shape\":[4],"
         "\"data_offsets\":[16,32]}",
         "past the data"},
        {{{"a", "F32", 1, {4}, f, 16}}, 1, ",\"c\":[1,2]", "not an object"},
        {{{"a", "F32", 1, {4}, f, 16}},
         1,
         ",\"a\":{}",
         "header is not a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_st(path, cases[i].t, cases[i].n, cases[i].extra);
        reel_diag_clear(&d);
        assert_int_equal(reel_safetensors_open(path, &st, &d), REEL_EFORMAT);
        assert_null(st);
        if (!strstr(d.msg, cases[i].msg) || !strstr(d.msg, "bad.safetensors"))
            fail_msg("case %zu: '%s'", i, d.msg);
    }
    /* raw garbage: too short, a huge header length, a length past the end */
    write_raw(path, "abc", 3);
    assert_int_equal(reel_safetensors_open(path, &st, &d), REEL_EFORMAT);
    uint8_t huge[16] = {0xff, 0xff, 0xff, 0xff, 0xff,
                        0xff, 0xff, 0x7f, '{',  '}'};
    write_raw(path, huge, sizeof huge);
    assert_int_equal(reel_safetensors_open(path, &st, &d), REEL_EFORMAT);
    uint8_t past[12] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' '};
    write_raw(path, past, sizeof past);
    assert_int_equal(reel_safetensors_open(path, &st, &d), REEL_EFORMAT);
    uint8_t notjson[12] = {4, 0, 0, 0, 0, 0, 0, 0, '{', 'x', '!', '}'};
    write_raw(path, notjson, sizeof notjson);
    assert_int_equal(reel_safetensors_open(path, &st, &d), REEL_EFORMAT);
    char *missing = test_path(dir, "missing.safetensors");
    assert_int_equal(reel_safetensors_open(missing, &st, &d), REEL_ENOENT);
    free(missing);
    free(path);
    test_rmtree(dir);
    free(dir);
}

/* ---- configs ---- */

static const char *TINY_CFG =
    "{\"projection_dim\": 6,"
    " \"text_config\": {\"hidden_size\": 8, \"intermediate_size\": 5, "
    "\"num_hidden_layers\": 1,"
    "  \"num_attention_heads\": 2, \"vocab_size\": 12, "
    "\"max_position_embeddings\": 6},"
    " \"vision_config\": {\"hidden_size\": 6, \"intermediate_size\": 7, "
    "\"num_hidden_layers\": 2,"
    "  \"num_attention_heads\": 3, \"image_size\": 8, \"patch_size\": 4}}";

static void config_styles(void **state)
{
    char *dir = test_tmpdir();
    reel_clip_config c;
    reel_diag d;
    /* an empty object: every default (ViT-B/32) */
    char *p = test_write_file(dir, "config.json", "{}");
    assert_int_equal(reel_clip_config_read(p, &c, &d), 0);
    assert_int_equal(c.vision.hidden, 768);
    assert_int_equal(c.vision.patch, 32);
    assert_int_equal(c.text.hidden, 512);
    assert_int_equal(c.text.vocab, 49408);
    assert_int_equal(c.text.max_pos, 77);
    assert_int_equal(c.proj_dim, 512);
    assert_int_equal(c.text.act, REEL_CLIP_QUICK_GELU);
    free(p);
    /* sparse with projection_dim in a sub-config only */
    p = test_write_file(
        dir, "config.json",
        "{\"text_config\": {\"projection_dim\": 768, \"hidden_size\": 768,"
        " \"num_attention_heads\": 12}, \"vision_config\": {\"patch_size\": 14,"
        " \"image_size\": 336, \"hidden_size\": 1024, \"num_attention_heads\": "
        "16,"
        " \"num_hidden_layers\": 24, \"intermediate_size\": 4096}}");
    assert_int_equal(reel_clip_config_read(p, &c, &d), 0);
    assert_int_equal(c.proj_dim, 768);
    assert_int_equal(c.vision.layers, 24);
    assert_int_equal(c.text.mlp, 2048);
    free(p);
    /* legacy: the *_config_dict wins, defaults filled in */
    p = test_write_file(
        dir, "config.json",
        "{\"projection_dim\": 64, \"text_config\": {\"hidden_size\": 99},"
        " \"text_config_dict\": {\"hidden_act\": \"gelu\", \"layer_norm_eps\": "
        "1e-6},"
        " \"vision_config\": null, \"vision_config_dict\": {\"hidden_size\": "
        "128,"
        " \"num_attention_heads\": 4}}");
    assert_int_equal(reel_clip_config_read(p, &c, &d), 0);
    assert_int_equal(c.text.hidden, 512);
    assert_int_equal(c.text.act, REEL_CLIP_GELU);
    assert_true(fabsf(c.text.ln_eps - 1e-6f) < 1e-12f);
    assert_int_equal(c.vision.hidden, 128);
    assert_int_equal(c.proj_dim, 64);
    free(p);
    /* errors */
    const char *bad[][2] = {
        {"{\"text_config\": {\"hidden_size\": 10, \"num_attention_heads\": 3}}",
         "multiple"},
        {"{\"vision_config\": {\"hidden_act\": \"relu\"}}",
         "hidden_act 'relu'"},
        {"{\"vision_config\": {\"image_size\": 100}}", "image_size"},
        {"{\"text_config\": {\"hidden_size\": -4}}", "hidden_size"},
        {"[1, 2]", "not a JSON object"},
        {"{\"text_config\": ", "config.json:1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = test_write_file(dir, "config.json", bad[i][0]);
        reel_diag_clear(&d);
        assert_int_not_equal(reel_clip_config_read(p, &c, &d), 0);
        if (!strstr(d.msg, bad[i][1]))
            fail_msg("case %zu: '%s'", i, d.msg);
        free(p);
    }
    test_rmtree(dir);
    free(dir);
}

/* ---- a whole tiny checkpoint written from C ---- */

struct ckpt {
    struct tw t[128];
    char names[128][96];
    float *data[128];
    uint32_t n;
};

static void add(struct ckpt *k, const char *name, uint32_t ndim, uint64_t a,
                uint64_t b, uint64_t c, uint64_t dd, reel_rng *r)
{
    uint32_t i = k->n++;
    uint64_t shape[4] = {a, b, c, dd}, numel = 1;
    for (uint32_t j = 0; j < ndim; j++)
        numel *= shape[j];
    snprintf(k->names[i], sizeof k->names[i], "%s", name);
    k->data[i] = malloc(numel * 4);
    for (uint64_t j = 0; j < numel; j++)
        k->data[i][j] = (float)(reel_rng_uniform(r) - 0.5);
    k->t[i] = (struct tw){k->names[i],   "F32",      ndim,
                          {a, b, c, dd}, k->data[i], numel * 4};
}

static void layers(struct ckpt *k, const char *tower, uint32_t nl, uint64_t h,
                   uint64_t m, reel_rng *r)
{
    char n[96];
    static const char *const sq[] = {"q_proj", "k_proj", "v_proj", "out_proj"};
    for (uint32_t l = 0; l < nl; l++) {
#define P(s) (snprintf(n, sizeof n, "%s.encoder.layers.%u.%s", tower, l, s), n)
        add(k, P("layer_norm1.weight"), 1, h, 0, 0, 0, r);
        add(k, P("layer_norm1.bias"), 1, h, 0, 0, 0, r);
        add(k, P("layer_norm2.weight"), 1, h, 0, 0, 0, r);
        add(k, P("layer_norm2.bias"), 1, h, 0, 0, 0, r);
        for (int j = 0; j < 4; j++) {
            char s[64];
            snprintf(s, sizeof s, "self_attn.%s.weight", sq[j]);
            add(k, P(s), 2, h, h, 0, 0, r);
            snprintf(s, sizeof s, "self_attn.%s.bias", sq[j]);
            add(k, P(s), 1, h, 0, 0, 0, r);
        }
        add(k, P("mlp.fc1.weight"), 2, m, h, 0, 0, r);
        add(k, P("mlp.fc1.bias"), 1, m, 0, 0, 0, r);
        add(k, P("mlp.fc2.weight"), 2, h, m, 0, 0, r);
        add(k, P("mlp.fc2.bias"), 1, h, 0, 0, 0, r);
#undef P
    }
}

/* TINY_CFG's tensors. */
static void tiny(struct ckpt *k)
{
    reel_rng r;
    reel_rng_seed(&r, 5);
    memset(k, 0, sizeof *k);
    add(k, "text_model.embeddings.token_embedding.weight", 2, 12, 8, 0, 0, &r);
    add(k, "text_model.embeddings.position_embedding.weight", 2, 6, 8, 0, 0,
        &r);
    layers(k, "text_model", 1, 8, 5, &r);
    add(k, "text_model.final_layer_norm.weight", 1, 8, 0, 0, 0, &r);
    add(k, "text_model.final_layer_norm.bias", 1, 8, 0, 0, 0, &r);
    add(k, "text_projection.weight", 2, 6, 8, 0, 0, &r);
    add(k, "vision_model.embeddings.class_embedding", 1, 6, 0, 0, 0, &r);
    add(k, "vision_model.embeddings.patch_embedding.weight", 4, 6, 3, 4, 4, &r);
    add(k, "vision_model.embeddings.position_embedding.weight", 2, 5, 6, 0, 0,
        &r);
    add(k, "vision_model.pre_layrnorm.weight", 1, 6, 0, 0, 0, &r);
    add(k, "vision_model.pre_layrnorm.bias", 1, 6, 0, 0, 0, &r);
    layers(k, "vision_model", 2, 6, 7, &r);
    add(k, "vision_model.post_layernorm.weight", 1, 6, 0, 0, 0, &r);
    add(k, "vision_model.post_layernorm.bias", 1, 6, 0, 0, 0, &r);
    add(k, "visual_projection.weight", 2, 6, 6, 0, 0, &r);
    add(k, "logit_scale", 0, 0, 0, 0, 0, &r);
}

static void tiny_free(struct ckpt *k)
{
    for (uint32_t i = 0; i < k->n; i++)
        free(k->data[i]);
}

static int find(struct ckpt *k, const char *name)
{
    for (uint32_t i = 0; i < k->n; i++)
        if (!strcmp(k->names[i], name))
            return (int)i;
    return -1;
}

static void weights_bind_and_reject(void **state)
{
    char *dir = test_tmpdir();
    free(test_write_file(dir, "config.json", TINY_CFG));
    char *mpath = test_path(dir, "model.safetensors");
    reel_clip_weights *w;
    reel_diag d;
    struct ckpt k;
    tiny(&k);
    write_st(mpath, k.t, k.n, NULL);
    assert_int_equal(reel_clip_weights_open(dir, &w, &d), 0);
    assert_string_equal(w->dtype, "F32");
    assert_int_equal(w->cfg.vision.layers, 2);
    assert_true(w->logit_scale == k.data[find(&k, "logit_scale")][0]);
    /* both towers run and give unit vectors; a batch gives the same
     * vectors as one at a time */
    float px[2 * 3 * 8 * 8], e2[12], e1[6];
    for (int i = 0; i < 2 * 3 * 64; i++)
        px[i] = (float)sin(i * 0.37);
    assert_int_equal(reel_clip_image_embed(w, px, 2, e2), 0);
    assert_int_equal(reel_clip_image_embed(w, px + 3 * 64, 1, e1), 0);
    double nrm = 0;
    for (int j = 0; j < 6; j++) {
        nrm += (double)e1[j] * e1[j];
        assert_true(fabsf(e1[j] - e2[6 + j]) < 1e-5f);
    }
    assert_true(fabs(nrm - 1) < 1e-5);
    int32_t ids[2][6] = {{10, 3, 4, 11, 0, 0}, {10, 11, 0, 0, 0, 0}};
    uint32_t len[2] = {4, 2};
    assert_int_equal(reel_clip_text_embed(w, &ids[0][0], len, 6, 2, 11, e2), 0);
    assert_int_equal(reel_clip_text_embed(w, &ids[1][0], &len[1], 6, 1, 11, e1),
                     0);
    for (int j = 0; j < 6; j++)
        assert_true(fabsf(e1[j] - e2[6 + j]) < 1e-5f);
    int32_t badid[2] = {10, 12};
    uint32_t blen = 2;
    assert_int_equal(reel_clip_text_embed(w, badid, &blen, 2, 1, 11, e1),
                     REEL_EINVAL);
    reel_clip_weights_free(w);

    /* a missing tensor, a wrong shape, a wrong dtype, an unknown tensor */
    int i = find(&k, "vision_model.encoder.layers.1.mlp.fc1.bias");
    struct tw save = k.t[i];
    k.t[i] = k.t[--k.n];
    write_st(mpath, k.t, k.n, NULL);
    reel_diag_clear(&d);
    assert_int_equal(reel_clip_weights_open(dir, &w, &d), REEL_EFORMAT);
    assert_non_null(strstr(
        d.msg, "'vision_model.encoder.layers.1.mlp.fc1.bias' is missing"));
    assert_non_null(strstr(d.msg, "model.safetensors"));
    k.t[k.n++] = k.t[i];
    k.t[i] = save;
    i = find(&k, "text_projection.weight");
    k.t[i].shape[0] = 3, k.t[i].nbytes = 3 * 8 * 4;
    write_st(mpath, k.t, k.n, NULL);
    assert_int_equal(reel_clip_weights_open(dir, &w, &d), REEL_EFORMAT);
    assert_non_null(
        strstr(d.msg, "'text_projection.weight' has shape [3, 8], config.json "
                      "implies [6, 8]"));
    k.t[i].shape[0] = 6, k.t[i].nbytes = 6 * 8 * 4;
    i = find(&k, "logit_scale");
    k.t[i].dtype = "I32";
    write_st(mpath, k.t, k.n, NULL);
    assert_int_equal(reel_clip_weights_open(dir, &w, &d), REEL_EFORMAT);
    assert_non_null(strstr(d.msg, "'logit_scale' is I32"));
    k.t[i].dtype = "F32";
    int64_t pos[6] = {0, 1, 2, 3, 4, 5};
    k.t[k.n++] = (struct tw){
        "text_model.embeddings.position_ids", "I64", 2, {1, 6}, pos, 48};
    k.t[k.n++] = (struct tw){"text_model.extra.weight", "F32", 1, {1}, pos, 4};
    write_st(mpath, k.t, k.n, NULL);
    assert_int_equal(reel_clip_weights_open(dir, &w, &d), REEL_EFORMAT);
    assert_non_null(
        strstr(d.msg, "unexpected tensor 'text_model.extra.weight'"));
    k.n--; /* position_ids alone is fine */
    write_st(mpath, k.t, k.n, NULL);
    assert_int_equal(reel_clip_weights_open(dir, &w, &d), 0);
    reel_clip_weights_free(w);
    /* no model file */
    remove(mpath);
    assert_int_equal(reel_clip_weights_open(dir, &w, &d), REEL_ENOENT);
    assert_non_null(strstr(d.msg, "model.safetensors"));
    tiny_free(&k);
    free(mpath);
    test_rmtree(dir);
    free(dir);
}

/* ---- the packed kernel against its slow twins ---- */

/* matmul's AVX-512 kernel (on CPUs that have it) and the BLAS path against
 * a double-precision loop, over shapes that exercise every tile height,
 * partial panels and odd depths, with and without bias, quick_gelu and
 * accumulation, on 1 and 2 threads. */
static void matmul_kernel_matches_naive(void **state)
{
    reel_rng r;
    reel_rng_seed(&r, 9);
    const uint32_t ms[] = {1, 2, 5, 9, 10, 11, 12, 13, 25, 50, 97, 500};
    const uint32_t ns[] = {1, 15, 16, 17, 32, 33, 70};
    const uint32_t ks[] = {1, 7, 64, 129};
    for (size_t a = 0; a < sizeof ms / sizeof ms[0]; a++)
        for (size_t b = 0; b < sizeof ns / sizeof ns[0]; b++)
            for (size_t c = 0; c < sizeof ks / sizeof ks[0]; c++) {
                uint32_t m = ms[a], n = ns[b], k = ks[c], ldx = k + 3,
                         ldy = n + 5;
                float *x = malloc((size_t)m * ldx * 4),
                      *w = malloc((size_t)n * k * 4);
                float *bias = malloc(n * 4), *y = malloc((size_t)m * ldy * 4);
                double *want = malloc((size_t)m * n * sizeof *want);
                for (size_t i = 0; i < (size_t)m * ldx; i++)
                    x[i] = (float)reel_rng_normal(&r);
                for (size_t i = 0; i < (size_t)n * k; i++)
                    w[i] = (float)reel_rng_normal(&r);
                for (uint32_t i = 0; i < n; i++)
                    bias[i] = (float)reel_rng_normal(&r);
                reel_matw mw;
                reel_matw_pack(&mw, w, n, k);
                for (int flags = 0; flags < 3; flags++)
                    for (int kern = 0; kern < 2; kern++)
                        for (int threads = 1; threads <= 2; threads++) {
                            reel_matw_set_kernel(kern ? REEL_MATW_BLAS
                                                      : REEL_MATW_AUTO);
                            for (size_t i = 0; i < (size_t)m * ldy; i++)
                                y[i] = 0.25f;
                            const float *bb = (a + b) % 2 ? bias : NULL;
                            reel_matw_apply(&mw, x, m, ldx, bb, y, ldy, flags,
                                            threads);
                            for (uint32_t i = 0; i < m; i++)
                                for (uint32_t j = 0; j < n; j++) {
                                    double s = bb ? bb[j] : 0;
                                    for (uint32_t q = 0; q < k; q++)
                                        s += (double)x[(size_t)i * ldx + q] *
                                             w[(size_t)j * k + q];
                                    if (flags & REEL_MATW_QUICK_GELU)
                                        s = s / (1 + exp(-1.702 * s));
                                    if (flags & REEL_MATW_ACCUM)
                                        s += 0.25;
                                    double got = y[(size_t)i * ldy + j];
                                    if (fabs(got - s) >
                                        1e-4 * (1 + fabs(s)) * sqrt((double)k))
                                        fail_msg("m %u n %u k %u flags %d "
                                                 "kernel %d: y[%u][%u] "
                                                 "%.7g, want %.7g",
                                                 m, n, k, flags, kern, i, j,
                                                 got, s);
                                }
                            /* the padding between rows is never written */
                            for (uint32_t i = 0; i < m; i++)
                                for (uint32_t j = n; j < ldy && i + 1 < m; j++)
                                    assert_true(y[(size_t)i * ldy + j] ==
                                                0.25f);
                        }
                reel_matw_set_kernel(REEL_MATW_AUTO);
                reel_matw_free(&mw);
                free(x), free(w), free(bias), free(y), free(want);
            }
    /* quick_gelu, vector and scalar, against double precision */
    float v[37];
    for (int i = 0; i < 37; i++)
        v[i] = -95.0f + 5.1f * (float)i;
    float u[37];
    memcpy(u, v, sizeof v);
    reel_quick_gelu(u, 37);
    for (int i = 0; i < 37; i++) {
        double e = v[i] / (1 + exp(-1.702 * v[i]));
        assert_true(fabs(u[i] - e) <= 2e-6 * (1 + fabs(e)));
    }
}

/* ---- against torch (tests/reference/clip_torch.py) ---- */

static void *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc(sz ? (size_t)sz : 1);
    assert_int_equal(fread(p, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    *n = (size_t)sz;
    return p;
}

static void compare(const char *what, const float *got, const float *want,
                    uint32_t n, uint32_t d)
{
    for (uint32_t i = 0; i < n; i++) {
        double dot = 0, ga = 0, wa = 0, mx = 0;
        for (uint32_t j = 0; j < d; j++) {
            double a = got[(size_t)i * d + j], b = want[(size_t)i * d + j];
            dot += a * b, ga += a * a, wa += b * b;
            mx = fabs(a - b) > mx ? fabs(a - b) : mx;
        }
        double cos = dot / sqrt(ga * wa);
        if (!(cos >= 0.99999) || !(mx <= 1e-4))
            fail_msg("%s, row %u: cosine %.8f, max abs difference %.3g", what,
                     i, cos, mx);
    }
}

static void against_torch(void **state)
{
    const char *dir = getenv("REEL_CLIP_ORACLE_DIR");
    if (!dir)
        skip();
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest.txt", dir);
    FILE *m = fopen(path, "r");
    assert_non_null(m);
    char line[8192], kind[16], mdir[2048], a[2048], b[2048], c[2048];
    int checked = 0;
    while (fgets(line, sizeof line, m)) {
        unsigned nb = 0, stride = 0;
        int end = 0;
        double scale = 0;
        assert_int_equal(sscanf(line, "%15s %2047s", kind, mdir), 2);
        reel_clip_weights *w;
        reel_diag d;
        reel_diag_clear(&d);
        if (reel_clip_weights_open(mdir, &w, &d))
            fail_msg("%s: %s", mdir, d.msg);
        uint32_t P = w->cfg.proj_dim;
        size_t n;
        if (!strcmp(kind, "image")) {
            assert_int_equal(
                sscanf(line, "%*s %*s %u %2047s %2047s", &nb, a, b), 3);
            float *px = slurp(a, &n), *want = slurp(b, &n);
            float *got = malloc((size_t)nb * P * 4);
            for (int threads = 1; threads <= 2; threads++) {
                reel_clip_set_threads(threads);
                assert_int_equal(reel_clip_image_embed(w, px, nb, got), 0);
                snprintf(line, sizeof line, "%s image batch %u threads %d",
                         mdir, nb, threads);
                compare(line, got, want, nb, P);
            }
            free(px), free(want), free(got);
        } else if (!strcmp(kind, "text")) {
            assert_int_equal(sscanf(line,
                                    "%*s %*s %u %2047s %2047s %2047s %u %d",
                                    &nb, a, b, c, &stride, &end),
                             6);
            int32_t *ids = slurp(a, &n);
            uint32_t *lens = slurp(b, &n);
            float *want = slurp(c, &n), *got = malloc((size_t)nb * P * 4);
            assert_int_equal(
                reel_clip_text_embed(w, ids, lens, stride, nb, end, got), 0);
            snprintf(line, sizeof line, "%s text batch %u", mdir, nb);
            compare(line, got, want, nb, P);
            free(ids), free(lens), free(want), free(got);
        } else {
            assert_int_equal(sscanf(line, "%*s %*s %lf", &scale), 1);
            assert_true(fabs(reel_clip_logit_scale(w) - scale) <= 1e-5 * scale);
        }
        checked++;
        reel_clip_weights_free(w);
    }
    fclose(m);
    reel_clip_set_threads(1);
    assert_true(checked >= 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(safetensors_reads_and_converts),
        cmocka_unit_test(safetensors_rejects_bad_files),
        cmocka_unit_test(config_styles),
        cmocka_unit_test(weights_bind_and_reject),
        cmocka_unit_test(matmul_kernel_matches_naive),
        cmocka_unit_test(against_torch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
