#include "data/meta.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

#define VERSION 1
#define HEAD_N 16

/* reel_intern numbers at most UINT32_MAX - 1 strings (it aborts beyond)
 * and REEL_NONE is UINT32_MAX: tables and dictionaries stop below. */
#define MAX_ROWS (UINT32_MAX - 2)

/* Section-name stems of the dictionaries, as in the dataset. */
static const char *const dict_stems[REEL_DICT__COUNT] = {
    "category", "language", "vtype",      "tag",
    "gender",   "country",  "occupation", "zip",
};

struct reel_meta {
    const reel_dataset *ds;
    uint32_t n_ds_v, n_ds_u;
    uint32_t n_ds_dict[REEL_DICT__COUNT];
    reel_intern dict[REEL_DICT__COUNT]; /* the dataset's names, then new */

    /* Videos: ids interned (indexed), text columns pushed in row order. */
    reel_intern v_id, v_title, v_desc, v_media;
    uint32_t *v_lang, *v_type;
    float *v_dur;
    double *v_pub;
    size_t cap_v; /* of the four columns above */
    uint32_t *v_cat_off, *v_tag_off;
    size_t cap_v1; /* of the two offset columns (rows + 1) */
    uint32_t *v_cat, *v_tag;
    size_t n_v_cat, cap_v_cat, n_v_tag, cap_v_tag;
    uint8_t *v_put; /* n_ds_v flags: a put replaced the dataset row */

    reel_intern u_id;
    int16_t *u_age;
    uint32_t *u_gender, *u_country, *u_occ, *u_zip;
    double *u_signup;
    size_t cap_u;
    uint8_t *u_put; /* n_ds_u flags */

    reel_videos vv; /* the views handed out, re-pointed by refresh() */
    reel_users uv;
};

/* ------------------------------------------------------------- helpers */

/* Points the views at the current columns (after any change). */
static void refresh(reel_meta *m)
{
    m->vv = (reel_videos){
        .n = m->v_id.n,
        .id = reel_intern_view(&m->v_id),
        .title = reel_intern_view(&m->v_title),
        .description = reel_intern_view(&m->v_desc),
        .media = reel_intern_view(&m->v_media),
        .language = m->v_lang,
        .type = m->v_type,
        .duration_s = m->v_dur,
        .published_at = m->v_pub,
        .cat_off = m->v_cat_off,
        .cat = m->v_cat,
        .tag_off = m->v_tag_off,
        .tag = m->v_tag,
    };
    m->uv = (reel_users){
        .n = m->u_id.n,
        .id = reel_intern_view(&m->u_id),
        .age = m->u_age,
        .gender = m->u_gender,
        .country = m->u_country,
        .occupation = m->u_occ,
        .zip = m->u_zip,
        .signed_up_at = m->u_signup,
    };
}

/* Fills an empty table with a copy of s; `indexed` builds the hash index
 * (id and dictionary tables, which are then extended by put). */
static void copy_strs(reel_intern *in, const reel_strs *s, int indexed)
{
    reel_intern_init(in);
    uint64_t nb = s->offs[s->n];
    reel_grow((void **)&in->bytes, &in->cap_bytes, (size_t)nb + 1, 1);
    if (nb)
        memcpy(in->bytes, s->bytes, (size_t)nb);
    in->n_bytes = (size_t)nb;
    REEL_GROW(in->offs, in->cap_offs, (size_t)s->n + 1);
    memcpy(in->offs, s->offs, ((size_t)s->n + 1) * sizeof *in->offs);
    in->n = s->n;
    if (indexed) {
        reel_strs v = reel_intern_view(in);
        reel_strindex_build(&in->ix, &v);
    }
}

/* A copy of n elements of `elem` bytes with room for cap (>= n + 1). */
static void *dup_col(const void *src, size_t n, size_t elem, size_t cap)
{
    void *p = reel_xmalloc(cap * elem);
    if (n)
        memcpy(p, src, n * elem);
    return p;
}

static const char *str_at(const reel_intern *in, uint32_t i, size_t *len)
{
    if (len)
        *len = (size_t)(in->offs[i + 1] - in->offs[i] - 1);
    return in->bytes + in->offs[i];
}

static const char *or_null(const char *s)
{
    return *s ? s : NULL;
}

/* Replaces string i of a push-only column: the later strings' bytes move
 * (O(column) unless i is the last row). */
static void strcol_set(reel_intern *col, uint32_t i, const char *s)
{
    s = s ? s : "";
    size_t len = strlen(s);
    uint64_t a = col->offs[i], b = col->offs[i + 1];
    uint64_t old = b - a, now = (uint64_t)len + 1;
    if (old == now && !memcmp(col->bytes + a, s, len))
        return;
    if (now > old)
        reel_grow((void **)&col->bytes, &col->cap_bytes,
                  col->n_bytes + (size_t)(now - old), 1);
    memmove(col->bytes + a + now, col->bytes + b, col->n_bytes - (size_t)b);
    memcpy(col->bytes + a, s, len);
    col->bytes[a + len] = '\0';
    /* Unsigned arithmetic: adding now - old modulo 2^64 is the signed
     * shift. */
    for (uint32_t j = i + 1; j <= col->n; j++)
        col->offs[j] = col->offs[j] + now - old;
    col->n_bytes = (size_t)(col->n_bytes + now - old);
}

/* A CSR list of ids (categories or tags) over n_rows rows. */
struct csr {
    uint32_t **arr;
    size_t *n, *cap;
    uint32_t *off; /* n_rows + 1 */
    uint32_t n_rows;
};

static struct csr video_cats(reel_meta *m)
{
    return (struct csr){&m->v_cat, &m->n_v_cat, &m->cap_v_cat, m->v_cat_off,
                        m->v_id.n};
}

static struct csr video_tags(reel_meta *m)
{
    return (struct csr){&m->v_tag, &m->n_v_tag, &m->cap_v_tag, m->v_tag_off,
                        m->v_id.n};
}

/* Replaces row i's list: the later rows' ids move (O(list) unless i is
 * the last row). The caller has checked the total stays <= UINT32_MAX. */
static void csr_set(struct csr c, uint32_t i, const uint32_t *vals,
                    uint32_t cnt)
{
    uint32_t a = c.off[i], b = c.off[i + 1], old = b - a;
    if (old == cnt && (cnt == 0 || !memcmp(*c.arr + a, vals, cnt * 4)))
        return;
    if (cnt > old)
        REEL_GROW(*c.arr, *c.cap, *c.n + (cnt - old));
    memmove(*c.arr + a + cnt, *c.arr + b, (*c.n - b) * sizeof **c.arr);
    if (cnt)
        memcpy(*c.arr + a, vals, cnt * sizeof *vals);
    for (uint32_t j = i + 1; j <= c.n_rows; j++)
        c.off[j] = c.off[j] + cnt - old;
    *c.n = *c.n + cnt - old;
}

static uint32_t dict_put(reel_meta *m, enum reel_dict k, const char *s)
{
    if (!s || !*s)
        return REEL_NONE;
    return reel_intern_put(&m->dict[k], s, strlen(s), NULL);
}

/* ---------------------------------------------------------- lifecycle */

int reel_meta_new(const reel_dataset *ds, reel_meta **out)
{
    reel_meta *m = reel_xcalloc(1, sizeof *m);
    m->ds = ds;
    for (int k = 0; k < REEL_DICT__COUNT; k++) {
        const reel_strs *s = reel_dataset_dict(ds, (enum reel_dict)k);
        copy_strs(&m->dict[k], s, 1);
        m->n_ds_dict[k] = s->n;
    }
    const reel_videos *vid = reel_dataset_videos(ds);
    uint32_t nv = m->n_ds_v = vid->n;
    copy_strs(&m->v_id, &vid->id, 1);
    copy_strs(&m->v_title, &vid->title, 0);
    copy_strs(&m->v_desc, &vid->description, 0);
    copy_strs(&m->v_media, &vid->media, 0);
    m->cap_v = (size_t)nv + 1;
    m->v_lang = dup_col(vid->language, nv, sizeof *m->v_lang, m->cap_v);
    m->v_type = dup_col(vid->type, nv, sizeof *m->v_type, m->cap_v);
    m->v_dur = dup_col(vid->duration_s, nv, sizeof *m->v_dur, m->cap_v);
    m->v_pub = dup_col(vid->published_at, nv, sizeof *m->v_pub, m->cap_v);
    m->cap_v1 = (size_t)nv + 2;
    m->v_cat_off =
        dup_col(vid->cat_off, (size_t)nv + 1, sizeof *m->v_cat_off, m->cap_v1);
    m->v_tag_off =
        dup_col(vid->tag_off, (size_t)nv + 1, sizeof *m->v_tag_off, m->cap_v1);
    m->n_v_cat = vid->cat_off[nv];
    m->cap_v_cat = m->n_v_cat + 1;
    m->v_cat = dup_col(vid->cat, m->n_v_cat, sizeof *m->v_cat, m->cap_v_cat);
    m->n_v_tag = vid->tag_off[nv];
    m->cap_v_tag = m->n_v_tag + 1;
    m->v_tag = dup_col(vid->tag, m->n_v_tag, sizeof *m->v_tag, m->cap_v_tag);
    m->v_put = reel_xcalloc((size_t)nv + 1, 1);

    const reel_users *us = reel_dataset_users(ds);
    uint32_t nu = m->n_ds_u = us->n;
    copy_strs(&m->u_id, &us->id, 1);
    m->cap_u = (size_t)nu + 1;
    m->u_age = dup_col(us->age, nu, sizeof *m->u_age, m->cap_u);
    m->u_gender = dup_col(us->gender, nu, sizeof *m->u_gender, m->cap_u);
    m->u_country = dup_col(us->country, nu, sizeof *m->u_country, m->cap_u);
    m->u_occ = dup_col(us->occupation, nu, sizeof *m->u_occ, m->cap_u);
    m->u_zip = dup_col(us->zip, nu, sizeof *m->u_zip, m->cap_u);
    m->u_signup = dup_col(us->signed_up_at, nu, sizeof *m->u_signup, m->cap_u);
    m->u_put = reel_xcalloc((size_t)nu + 1, 1);
    refresh(m);
    *out = m;
    return 0;
}

void reel_meta_free(reel_meta *m)
{
    if (!m)
        return;
    for (int k = 0; k < REEL_DICT__COUNT; k++)
        reel_intern_free(&m->dict[k]);
    reel_intern_free(&m->v_id);
    reel_intern_free(&m->v_title);
    reel_intern_free(&m->v_desc);
    reel_intern_free(&m->v_media);
    free(m->v_lang);
    free(m->v_type);
    free(m->v_dur);
    free(m->v_pub);
    free(m->v_cat_off);
    free(m->v_tag_off);
    free(m->v_cat);
    free(m->v_tag);
    free(m->v_put);
    reel_intern_free(&m->u_id);
    free(m->u_age);
    free(m->u_gender);
    free(m->u_country);
    free(m->u_occ);
    free(m->u_zip);
    free(m->u_signup);
    free(m->u_put);
    free(m);
}

/* ------------------------------------------------------------- getters */

const reel_videos *reel_meta_videos(const reel_meta *m)
{
    return &m->vv;
}

const reel_users *reel_meta_users(const reel_meta *m)
{
    return &m->uv;
}

uint32_t reel_meta_n_ds_videos(const reel_meta *m)
{
    return m->n_ds_v;
}

uint32_t reel_meta_n_ds_users(const reel_meta *m)
{
    return m->n_ds_u;
}

uint32_t reel_meta_find_video(const reel_meta *m, const char *id, size_t len)
{
    return reel_intern_find(&m->v_id, id, len);
}

uint32_t reel_meta_find_user(const reel_meta *m, const char *id, size_t len)
{
    return reel_intern_find(&m->u_id, id, len);
}

const char *reel_meta_dict_name(const reel_meta *m, enum reel_dict k,
                                uint32_t id)
{
    assert(k >= 0 && k < REEL_DICT__COUNT);
    if (id >= m->dict[k].n)
        return NULL;
    return str_at(&m->dict[k], id, NULL);
}

uint32_t reel_meta_dict_size(const reel_meta *m, enum reel_dict k)
{
    assert(k >= 0 && k < REEL_DICT__COUNT);
    return m->dict[k].n;
}

size_t reel_meta_video_names(const reel_meta *m, uint32_t v)
{
    assert(v < m->v_id.n);
    return (size_t)(m->v_cat_off[v + 1] - m->v_cat_off[v]) +
           (m->v_tag_off[v + 1] - m->v_tag_off[v]);
}

void reel_meta_video_rec(const reel_meta *m, uint32_t v, reel_video_rec *out,
                         const char **names)
{
    assert(v < m->v_id.n);
    *out = reel_video_rec_empty();
    out->id = str_at(&m->v_id, v, NULL);
    out->title = or_null(str_at(&m->v_title, v, NULL));
    out->description = or_null(str_at(&m->v_desc, v, NULL));
    out->media = or_null(str_at(&m->v_media, v, NULL));
    out->language = reel_meta_dict_name(m, REEL_DICT_LANGUAGE, m->v_lang[v]);
    out->type = reel_meta_dict_name(m, REEL_DICT_VTYPE, m->v_type[v]);
    out->duration_s = m->v_dur[v];
    out->published_at = m->v_pub[v];
    uint32_t c0 = m->v_cat_off[v], nc = m->v_cat_off[v + 1] - c0;
    uint32_t t0 = m->v_tag_off[v], nt = m->v_tag_off[v + 1] - t0;
    for (uint32_t k = 0; k < nc; k++)
        names[k] = reel_meta_dict_name(m, REEL_DICT_CATEGORY, m->v_cat[c0 + k]);
    for (uint32_t k = 0; k < nt; k++)
        names[nc + k] = reel_meta_dict_name(m, REEL_DICT_TAG, m->v_tag[t0 + k]);
    out->categories = nc ? names : NULL;
    out->n_categories = nc;
    out->tags = nt ? names + nc : NULL;
    out->n_tags = nt;
}

void reel_meta_user_rec(const reel_meta *m, uint32_t u, reel_user_rec *out)
{
    assert(u < m->u_id.n);
    *out = reel_user_rec_empty();
    out->id = str_at(&m->u_id, u, NULL);
    out->age = m->u_age[u];
    out->gender = reel_meta_dict_name(m, REEL_DICT_GENDER, m->u_gender[u]);
    out->country = reel_meta_dict_name(m, REEL_DICT_COUNTRY, m->u_country[u]);
    out->occupation = reel_meta_dict_name(m, REEL_DICT_OCCUPATION, m->u_occ[u]);
    out->zip = reel_meta_dict_name(m, REEL_DICT_ZIP, m->u_zip[u]);
    out->signed_up_at = m->u_signup[u];
}

/* ---------------------------------------------------------------- rows */

/* Appends a video row with every field missing; REEL_NONE (nothing
 * changed) when the id is taken. The caller has checked there is room. */
static uint32_t append_video(reel_meta *m, const char *id, size_t len)
{
    int is_new;
    uint32_t i = reel_intern_put(&m->v_id, id, len, &is_new);
    if (!is_new)
        return REEL_NONE;
    size_t n = (size_t)i + 1, cap;
    cap = m->cap_v;
    REEL_GROW(m->v_lang, cap, n);
    cap = m->cap_v;
    REEL_GROW(m->v_type, cap, n);
    cap = m->cap_v;
    REEL_GROW(m->v_dur, cap, n);
    cap = m->cap_v;
    REEL_GROW(m->v_pub, cap, n);
    m->cap_v = cap;
    cap = m->cap_v1;
    REEL_GROW(m->v_cat_off, cap, n + 1);
    cap = m->cap_v1;
    REEL_GROW(m->v_tag_off, cap, n + 1);
    m->cap_v1 = cap;
    reel_intern_push(&m->v_title, "", 0);
    reel_intern_push(&m->v_desc, "", 0);
    reel_intern_push(&m->v_media, "", 0);
    m->v_lang[i] = m->v_type[i] = REEL_NONE;
    m->v_dur[i] = NAN;
    m->v_pub[i] = NAN;
    m->v_cat_off[i + 1] = (uint32_t)m->n_v_cat;
    m->v_tag_off[i + 1] = (uint32_t)m->n_v_tag;
    return i;
}

/* The same for users. */
static uint32_t append_user(reel_meta *m, const char *id, size_t len)
{
    int is_new;
    uint32_t i = reel_intern_put(&m->u_id, id, len, &is_new);
    if (!is_new)
        return REEL_NONE;
    size_t n = (size_t)i + 1, cap;
    cap = m->cap_u;
    REEL_GROW(m->u_age, cap, n);
    cap = m->cap_u;
    REEL_GROW(m->u_gender, cap, n);
    cap = m->cap_u;
    REEL_GROW(m->u_country, cap, n);
    cap = m->cap_u;
    REEL_GROW(m->u_occ, cap, n);
    cap = m->cap_u;
    REEL_GROW(m->u_zip, cap, n);
    cap = m->cap_u;
    REEL_GROW(m->u_signup, cap, n);
    m->cap_u = cap;
    m->u_age[i] = -1;
    m->u_gender[i] = m->u_country[i] = m->u_occ[i] = m->u_zip[i] = REEL_NONE;
    m->u_signup[i] = NAN;
    return i;
}

/* Whether s points into memory the meta owns (a record read back with
 * reel_meta_video_rec or _user_rec, maybe edited): such strings are
 * copied before a put, which may move that memory. */
static int owned(const reel_meta *m, const char *s)
{
    if (!s)
        return 0;
    const reel_intern *t[REEL_DICT__COUNT + 5] = {
        &m->v_id, &m->v_title, &m->v_desc, &m->v_media, &m->u_id};
    for (int k = 0; k < REEL_DICT__COUNT; k++)
        t[5 + k] = &m->dict[k];
    uintptr_t p = (uintptr_t)s;
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
        uintptr_t a = (uintptr_t)t[k]->bytes;
        if (p >= a && p < a + t[k]->cap_bytes)
            return 1;
    }
    return 0;
}

/* Copies of strings, in one block. */
struct strcopy {
    char *buf;
    size_t at;
};

static const char *copy_in(struct strcopy *c, const char *s)
{
    if (!s)
        return NULL;
    size_t len = strlen(s) + 1;
    memcpy(c->buf + c->at, s, len);
    c->at += len;
    return c->buf + c->at - len;
}

static size_t size_of(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

/* When any string of *rec is the meta's, points *rec at a copy made in
 * c->buf and names (room for 2 * REEL_MAX_LIST); c->buf is the caller's
 * to free. The record has been checked (list lengths are bounded). */
static void detach_video(const reel_meta *m, reel_video_rec *rec,
                         struct strcopy *c, const char **names)
{
    const char *one[] = {rec->id,       rec->title, rec->description,
                         rec->language, rec->type,  rec->media};
    int alias = 0;
    size_t total = 0;
    for (size_t k = 0; k < 6; k++) {
        alias |= owned(m, one[k]);
        total += size_of(one[k]);
    }
    for (size_t k = 0; k < rec->n_categories; k++) {
        alias |= owned(m, rec->categories[k]);
        total += size_of(rec->categories[k]);
    }
    for (size_t k = 0; k < rec->n_tags; k++) {
        alias |= owned(m, rec->tags[k]);
        total += size_of(rec->tags[k]);
    }
    if (!alias)
        return;
    c->buf = reel_xmalloc(total + 1);
    rec->id = copy_in(c, rec->id);
    rec->title = copy_in(c, rec->title);
    rec->description = copy_in(c, rec->description);
    rec->language = copy_in(c, rec->language);
    rec->type = copy_in(c, rec->type);
    rec->media = copy_in(c, rec->media);
    for (size_t k = 0; k < rec->n_categories; k++)
        names[k] = copy_in(c, rec->categories[k]);
    for (size_t k = 0; k < rec->n_tags; k++)
        names[REEL_MAX_LIST + k] = copy_in(c, rec->tags[k]);
    rec->categories = names;
    rec->tags = names + REEL_MAX_LIST;
}

static void detach_user(const reel_meta *m, reel_user_rec *rec,
                        struct strcopy *c)
{
    const char *one[] = {rec->id, rec->gender, rec->country, rec->occupation,
                         rec->zip};
    int alias = 0;
    size_t total = 0;
    for (size_t k = 0; k < 5; k++) {
        alias |= owned(m, one[k]);
        total += size_of(one[k]);
    }
    if (!alias)
        return;
    c->buf = reel_xmalloc(total + 1);
    rec->id = copy_in(c, rec->id);
    rec->gender = copy_in(c, rec->gender);
    rec->country = copy_in(c, rec->country);
    rec->occupation = copy_in(c, rec->occupation);
    rec->zip = copy_in(c, rec->zip);
}

int reel_meta_put_video(reel_meta *m, const reel_video_rec *rec, uint32_t *v,
                        int *is_new, reel_diag *d)
{
    int rc = reel_video_rec_check(rec, d);
    if (rc)
        return rc;
    size_t id_len = strlen(rec->id);
    uint32_t i = reel_intern_find(&m->v_id, rec->id, id_len);
    if (i == REEL_NONE && m->v_id.n >= MAX_ROWS)
        return reel_diag_fail(d, REEL_ETOOBIG, "the video table is full");
    uint64_t old_c = 0, old_t = 0;
    if (i != REEL_NONE) {
        old_c = m->v_cat_off[i + 1] - m->v_cat_off[i];
        old_t = m->v_tag_off[i + 1] - m->v_tag_off[i];
    }
    if (m->n_v_cat - old_c + rec->n_categories > UINT32_MAX ||
        m->n_v_tag - old_t + rec->n_tags > UINT32_MAX)
        return reel_diag_fail(d, REEL_ETOOBIG,
                              "the category or tag lists are full");
    /* One record adds at most REEL_MAX_LIST names to a dictionary. */
    static const enum reel_dict used[] = {REEL_DICT_CATEGORY, REEL_DICT_TAG,
                                          REEL_DICT_LANGUAGE, REEL_DICT_VTYPE};
    for (int k = 0; k < 4; k++)
        if (m->dict[used[k]].n > MAX_ROWS - REEL_MAX_LIST)
            return reel_diag_fail(d, REEL_ETOOBIG, "the %s dictionary is full",
                                  dict_stems[used[k]]);

    reel_video_rec r = *rec;
    struct strcopy c = {0};
    const char *names[2 * REEL_MAX_LIST];
    detach_video(m, &r, &c, names);
    rec = &r;

    uint32_t cats[REEL_MAX_LIST], tags[REEL_MAX_LIST], nc = 0, nt = 0;
    for (size_t k = 0; k < rec->n_categories; k++) {
        uint32_t c = dict_put(m, REEL_DICT_CATEGORY, rec->categories[k]);
        if (c != REEL_NONE)
            cats[nc++] = c;
    }
    for (size_t k = 0; k < rec->n_tags; k++) {
        uint32_t t = dict_put(m, REEL_DICT_TAG, rec->tags[k]);
        if (t != REEL_NONE)
            tags[nt++] = t;
    }
    uint32_t lang = dict_put(m, REEL_DICT_LANGUAGE, rec->language);
    uint32_t type = dict_put(m, REEL_DICT_VTYPE, rec->type);

    int fresh = i == REEL_NONE;
    if (fresh)
        i = append_video(m, rec->id, id_len);
    assert(i != REEL_NONE);
    strcol_set(&m->v_title, i, rec->title);
    strcol_set(&m->v_desc, i, rec->description);
    strcol_set(&m->v_media, i, rec->media);
    m->v_lang[i] = lang;
    m->v_type[i] = type;
    m->v_dur[i] = (float)rec->duration_s;
    m->v_pub[i] = rec->published_at;
    csr_set(video_cats(m), i, cats, nc);
    csr_set(video_tags(m), i, tags, nt);
    if (i < m->n_ds_v)
        m->v_put[i] = 1;
    free(c.buf);
    refresh(m);
    if (v)
        *v = i;
    if (is_new)
        *is_new = fresh;
    return 0;
}

int reel_meta_put_user(reel_meta *m, const reel_user_rec *rec, uint32_t *u,
                       int *is_new, reel_diag *d)
{
    int rc = reel_user_rec_check(rec, d);
    if (rc)
        return rc;
    size_t id_len = strlen(rec->id);
    uint32_t i = reel_intern_find(&m->u_id, rec->id, id_len);
    if (i == REEL_NONE && m->u_id.n >= MAX_ROWS)
        return reel_diag_fail(d, REEL_ETOOBIG, "the user table is full");
    static const enum reel_dict used[] = {REEL_DICT_GENDER, REEL_DICT_COUNTRY,
                                          REEL_DICT_OCCUPATION, REEL_DICT_ZIP};
    for (int k = 0; k < 4; k++)
        if (m->dict[used[k]].n >= MAX_ROWS)
            return reel_diag_fail(d, REEL_ETOOBIG, "the %s dictionary is full",
                                  dict_stems[used[k]]);
    reel_user_rec r = *rec;
    struct strcopy c = {0};
    detach_user(m, &r, &c);
    rec = &r;
    uint32_t gender = dict_put(m, REEL_DICT_GENDER, rec->gender);
    uint32_t country = dict_put(m, REEL_DICT_COUNTRY, rec->country);
    uint32_t occ = dict_put(m, REEL_DICT_OCCUPATION, rec->occupation);
    uint32_t zip = dict_put(m, REEL_DICT_ZIP, rec->zip);
    int fresh = i == REEL_NONE;
    if (fresh)
        i = append_user(m, rec->id, id_len);
    assert(i != REEL_NONE);
    m->u_age[i] = (int16_t)rec->age;
    m->u_gender[i] = gender;
    m->u_country[i] = country;
    m->u_occ[i] = occ;
    m->u_zip[i] = zip;
    m->u_signup[i] = rec->signed_up_at;
    if (i < m->n_ds_u)
        m->u_put[i] = 1;
    free(c.buf);
    refresh(m);
    if (u)
        *u = i;
    if (is_new)
        *is_new = fresh;
    return 0;
}

uint32_t reel_meta_user_ref(reel_meta *m, const char *id, size_t len,
                            int *is_new)
{
    assert(len >= 1 && len <= REEL_MAX_ID_LEN);
    uint32_t i = reel_intern_find(&m->u_id, id, len);
    if (is_new)
        *is_new = i == REEL_NONE && m->u_id.n < MAX_ROWS;
    if (i != REEL_NONE || m->u_id.n >= MAX_ROWS)
        return i;
    char copy[REEL_MAX_ID_LEN];
    if (owned(m, id)) {
        memcpy(copy, id, len);
        id = copy;
    }
    i = append_user(m, id, len);
    refresh(m);
    return i;
}

/* --------------------------------------------------------------- saving */

/* The rows a snapshot carries: replaced dataset rows, then the added
 * rows [tail0, tail1). */
struct rows {
    uint32_t *put; /* ascending */
    uint32_t n_put;
    uint32_t tail0, tail1;
};

static struct rows rows_of(const uint8_t *flags, uint32_t n_ds, uint32_t n)
{
    struct rows r = {.tail0 = n_ds, .tail1 = n};
    uint32_t cnt = 0;
    for (uint32_t i = 0; i < n_ds; i++)
        cnt += flags[i] != 0;
    r.put = reel_xmalloc(((size_t)cnt + 1) * sizeof *r.put);
    for (uint32_t i = 0; i < n_ds; i++)
        if (flags[i])
            r.put[r.n_put++] = i;
    return r;
}

static void sec_name(char *buf, const char *prefix, const char *stem)
{
    int n = snprintf(buf, REEL_SECFILE_NAME_MAX + 1, "%s%s", prefix, stem);
    assert(n > 0 && n <= REEL_SECFILE_NAME_MAX);
    (void)n;
}

static int w_row_numbers(reel_secfile_writer *w, const char *prefix,
                         const char *stem, const struct rows *r)
{
    char name[REEL_SECFILE_NAME_MAX + 1];
    sec_name(name, prefix, stem);
    int rc = reel_secfile_writer_begin(w, name, REEL_SEC_U32);
    if (!rc && r->n_put)
        rc = reel_secfile_writer_append(w, r->put,
                                        (uint64_t)r->n_put * sizeof *r->put);
    for (uint32_t i = r->tail0; i < r->tail1 && !rc; i++)
        rc = reel_secfile_writer_append(w, &i, sizeof i);
    return rc ? rc : reel_secfile_writer_end(w);
}

/* Column `base` (elements of `elem` bytes) at the rows r. */
static int w_col(reel_secfile_writer *w, const char *prefix, const char *stem,
                 enum reel_sectype type, const void *base, size_t elem,
                 const struct rows *r)
{
    char name[REEL_SECFILE_NAME_MAX + 1];
    sec_name(name, prefix, stem);
    const char *p = base;
    int rc = reel_secfile_writer_begin(w, name, type);
    for (uint32_t k = 0; k < r->n_put && !rc; k++)
        rc = reel_secfile_writer_append(w, p + (size_t)r->put[k] * elem, elem);
    if (!rc && r->tail1 > r->tail0)
        rc = reel_secfile_writer_append(w, p + (size_t)r->tail0 * elem,
                                        (uint64_t)(r->tail1 - r->tail0) * elem);
    return rc ? rc : reel_secfile_writer_end(w);
}

/* A string column at the rows r: STEM.off and STEM. */
static int w_strs(reel_secfile_writer *w, const char *prefix, const char *stem,
                  const reel_intern *col, const struct rows *r)
{
    char name[REEL_SECFILE_NAME_MAX + 1], stem_off[32];
    snprintf(stem_off, sizeof stem_off, "%s.off", stem);
    sec_name(name, prefix, stem_off);
    uint64_t pos = 0;
    int rc = reel_secfile_writer_begin(w, name, REEL_SEC_U64);
    if (!rc)
        rc = reel_secfile_writer_append(w, &pos, sizeof pos);
    for (uint32_t k = 0; k < r->n_put && !rc; k++) {
        uint32_t i = r->put[k];
        pos += col->offs[i + 1] - col->offs[i];
        rc = reel_secfile_writer_append(w, &pos, sizeof pos);
    }
    for (uint32_t i = r->tail0; i < r->tail1 && !rc; i++) {
        pos += col->offs[i + 1] - col->offs[i];
        rc = reel_secfile_writer_append(w, &pos, sizeof pos);
    }
    if (rc || (rc = reel_secfile_writer_end(w)))
        return rc;
    sec_name(name, prefix, stem);
    rc = reel_secfile_writer_begin(w, name, REEL_SEC_BYTES);
    for (uint32_t k = 0; k < r->n_put && !rc; k++) {
        uint32_t i = r->put[k];
        rc = reel_secfile_writer_append(w, col->bytes + col->offs[i],
                                        col->offs[i + 1] - col->offs[i]);
    }
    if (!rc && r->tail1 > r->tail0)
        rc = reel_secfile_writer_append(w, col->bytes + col->offs[r->tail0],
                                        col->offs[r->tail1] -
                                            col->offs[r->tail0]);
    return rc ? rc : reel_secfile_writer_end(w);
}

/* A CSR list at the rows r: STEM.off and STEM. */
static int w_csr(reel_secfile_writer *w, const char *prefix, const char *stem,
                 const uint32_t *arr, const uint32_t *off, const struct rows *r)
{
    char name[REEL_SECFILE_NAME_MAX + 1], stem_off[32];
    snprintf(stem_off, sizeof stem_off, "%s.off", stem);
    sec_name(name, prefix, stem_off);
    uint32_t pos = 0;
    int rc = reel_secfile_writer_begin(w, name, REEL_SEC_U32);
    if (!rc)
        rc = reel_secfile_writer_append(w, &pos, sizeof pos);
    for (uint32_t k = 0; k < r->n_put && !rc; k++) {
        uint32_t i = r->put[k];
        pos += off[i + 1] - off[i];
        rc = reel_secfile_writer_append(w, &pos, sizeof pos);
    }
    for (uint32_t i = r->tail0; i < r->tail1 && !rc; i++) {
        pos += off[i + 1] - off[i];
        rc = reel_secfile_writer_append(w, &pos, sizeof pos);
    }
    if (rc || (rc = reel_secfile_writer_end(w)))
        return rc;
    sec_name(name, prefix, stem);
    rc = reel_secfile_writer_begin(w, name, REEL_SEC_U32);
    for (uint32_t k = 0; k < r->n_put && !rc; k++) {
        uint32_t i = r->put[k];
        rc = reel_secfile_writer_append(w, arr + off[i],
                                        (uint64_t)(off[i + 1] - off[i]) * 4);
    }
    if (!rc && r->tail1 > r->tail0)
        rc = reel_secfile_writer_append(
            w, arr + off[r->tail0],
            (uint64_t)(off[r->tail1] - off[r->tail0]) * 4);
    return rc ? rc : reel_secfile_writer_end(w);
}

static int save_videos(const reel_meta *m, reel_secfile_writer *w,
                       const char *p)
{
    struct rows r = rows_of(m->v_put, m->n_ds_v, m->v_id.n);
    int rc;
    (void)((rc = w_row_numbers(w, p, "video.row", &r)) ||
           (rc = w_strs(w, p, "video.id", &m->v_id, &r)) ||
           (rc = w_strs(w, p, "video.title", &m->v_title, &r)) ||
           (rc = w_strs(w, p, "video.desc", &m->v_desc, &r)) ||
           (rc = w_strs(w, p, "video.media", &m->v_media, &r)) ||
           (rc = w_col(w, p, "video.language", REEL_SEC_U32, m->v_lang, 4,
                       &r)) ||
           (rc = w_col(w, p, "video.type", REEL_SEC_U32, m->v_type, 4, &r)) ||
           (rc =
                w_col(w, p, "video.duration", REEL_SEC_F32, m->v_dur, 4, &r)) ||
           (rc = w_col(w, p, "video.published", REEL_SEC_F64, m->v_pub, 8,
                       &r)) ||
           (rc = w_csr(w, p, "video.cat", m->v_cat, m->v_cat_off, &r)) ||
           (rc = w_csr(w, p, "video.tag", m->v_tag, m->v_tag_off, &r)));
    free(r.put);
    return rc;
}

static int save_users(const reel_meta *m, reel_secfile_writer *w, const char *p)
{
    struct rows r = rows_of(m->u_put, m->n_ds_u, m->u_id.n);
    int rc;
    (void)((rc = w_row_numbers(w, p, "user.row", &r)) ||
           (rc = w_strs(w, p, "user.id", &m->u_id, &r)) ||
           (rc = w_col(w, p, "user.age", REEL_SEC_I16, m->u_age, 2, &r)) ||
           (rc =
                w_col(w, p, "user.gender", REEL_SEC_U32, m->u_gender, 4, &r)) ||
           (rc = w_col(w, p, "user.country", REEL_SEC_U32, m->u_country, 4,
                       &r)) ||
           (rc = w_col(w, p, "user.occupation", REEL_SEC_U32, m->u_occ, 4,
                       &r)) ||
           (rc = w_col(w, p, "user.zip", REEL_SEC_U32, m->u_zip, 4, &r)) ||
           (rc = w_col(w, p, "user.signup", REEL_SEC_F64, m->u_signup, 8, &r)));
    free(r.put);
    return rc;
}

int reel_meta_save(const reel_meta *m, reel_secfile_writer *w,
                   const char *prefix, reel_diag *d)
{
    assert(strlen(prefix) <= REEL_META_PREFIX_MAX);
    uint64_t head[HEAD_N] = {VERSION, m->n_ds_v, m->n_ds_u, m->v_id.n,
                             m->u_id.n};
    for (int k = 0; k < REEL_DICT__COUNT; k++)
        head[5 + k] = m->n_ds_dict[k];
    char name[REEL_SECFILE_NAME_MAX + 1];
    sec_name(name, prefix, "head");
    int rc = reel_secfile_writer_add(w, name, REEL_SEC_U64, head, HEAD_N);
    for (int k = 0; k < REEL_DICT__COUNT && !rc; k++) {
        char stem[32];
        snprintf(stem, sizeof stem, "dict.%s", dict_stems[k]);
        struct rows r = {.tail0 = m->n_ds_dict[k], .tail1 = m->dict[k].n};
        rc = w_strs(w, prefix, stem, &m->dict[k], &r);
    }
    if (!rc)
        rc = save_videos(m, w, prefix);
    if (!rc)
        rc = save_users(m, w, prefix);
    if (rc)
        return reel_diag_fail(d, rc, "cannot write the catalogue tables: %s",
                              reel_strerror(rc));
    return 0;
}

/* -------------------------------------------------------------- loading */

static int corrupt(reel_diag *d, const char *prefix, const char *stem,
                   const char *what, uint64_t at)
{
    return reel_diag_fail(d, REEL_ECORRUPT, "section '%s%s': %s at %llu",
                          prefix, stem, what, (unsigned long long)at);
}

static int need(const reel_secfile *f, const char *prefix, const char *stem,
                enum reel_sectype type, uint64_t count, const void **out,
                uint64_t *n, reel_diag *d)
{
    char name[REEL_SECFILE_NAME_MAX + 1];
    sec_name(name, prefix, stem);
    const reel_section *s;
    int rc = reel_secfile_need(f, name, type, count, &s, d);
    if (rc)
        return rc;
    *out = s->data;
    if (n)
        *n = s->count;
    return 0;
}

/* A string column of `count` strings (UINT64_MAX: any), well formed:
 * offsets from 0 to the bytes' length, every string ends in its NUL. */
static int get_strs(const reel_secfile *f, const char *prefix, const char *stem,
                    uint64_t count, reel_strs *out, reel_diag *d)
{
    char stem_off[32];
    snprintf(stem_off, sizeof stem_off, "%s.off", stem);
    const uint64_t *offs;
    const char *bytes;
    uint64_t n_off, n_bytes;
    int rc;
    if ((rc = need(f, prefix, stem_off, REEL_SEC_U64,
                   count == UINT64_MAX ? UINT64_MAX : count + 1,
                   (const void **)&offs, &n_off, d)) ||
        (rc = need(f, prefix, stem, REEL_SEC_BYTES, UINT64_MAX,
                   (const void **)&bytes, &n_bytes, d)))
        return rc;
    if (n_off == 0 || n_off - 1 > MAX_ROWS)
        return corrupt(d, prefix, stem_off, "bad count", n_off);
    uint64_t n = n_off - 1;
    if (offs[0] != 0 || offs[n] != n_bytes)
        return corrupt(d, prefix, stem, "offsets do not match the bytes", 0);
    for (uint64_t i = 0; i < n; i++)
        if (offs[i + 1] <= offs[i] || bytes[offs[i + 1] - 1] != '\0')
            return corrupt(d, prefix, stem, "malformed string", i);
    *out = (reel_strs){.offs = offs, .bytes = bytes, .n = (uint32_t)n};
    return 0;
}

/* String i of a checked column, if it is a C string of 1..max bytes
 * (min 0 allows the empty string); NULL otherwise. */
static const char *str_ok(const reel_strs *s, uint32_t i, size_t min,
                          size_t max, size_t *len)
{
    const char *p = reel_strs_get(s, i, len);
    if (*len < min || *len > max || strlen(p) != *len)
        return NULL;
    return p;
}

/* A CSR list's offsets (m + 1) and ids: monotone, consistent, at most
 * REEL_MAX_LIST per row, ids below `limit`. */
static int check_csr(const uint32_t *off, uint64_t m, const uint32_t *ids,
                     uint64_t n_ids, uint32_t limit, const char *prefix,
                     const char *stem, const char *stem_off, reel_diag *d)
{
    if (off[0] != 0 || off[m] != n_ids)
        return corrupt(d, prefix, stem_off, "offsets do not match the ids", 0);
    for (uint64_t j = 0; j < m; j++)
        if (off[j + 1] < off[j] || off[j + 1] - off[j] > REEL_MAX_LIST)
            return corrupt(d, prefix, stem_off, "bad list length", j);
    for (uint64_t k = 0; k < n_ids; k++)
        if (ids[k] >= limit)
            return corrupt(d, prefix, stem, "id out of range", k);
    return 0;
}

/* Row numbers: strictly increasing, below n, every added row
 * [n_ds, n) present. Returns the count of dataset rows in *n_put. */
static int check_rows(const uint32_t *row, uint64_t cnt, uint32_t n_ds,
                      uint32_t n, const char *prefix, const char *stem,
                      uint64_t *n_put, reel_diag *d)
{
    uint64_t put = 0;
    for (uint64_t j = 0; j < cnt; j++) {
        if (row[j] >= n || (j && row[j] <= row[j - 1]))
            return corrupt(d, prefix, stem, "row out of order or range", j);
        put += row[j] < n_ds;
    }
    if (cnt - put != (uint64_t)n - n_ds)
        return corrupt(d, prefix, stem, "added rows missing", cnt);
    *n_put = put;
    return 0;
}

static int id_ok(const reel_strs *ids, uint32_t j, uint32_t row, uint32_t n_ds,
                 const reel_strs *ds_ids)
{
    size_t len;
    const char *p = str_ok(ids, j, 1, REEL_MAX_ID_LEN, &len);
    if (!p)
        return 0;
    if (row >= n_ds)
        return 1;
    size_t dl;
    const char *q = reel_strs_get(ds_ids, row, &dl);
    return dl == len && !memcmp(p, q, len);
}

static int dict_ok(uint32_t id, const reel_meta *m, enum reel_dict k)
{
    return id == REEL_NONE || id < m->dict[k].n;
}

/* Rebuilds a push-only column with rows[t] (ascending) replaced by src
 * string t: one pass over the column. */
static void strcol_replace(reel_intern *col, const uint32_t *rows, uint32_t k,
                           const reel_strs *src)
{
    uint64_t total = col->n_bytes;
    for (uint32_t t = 0; t < k; t++)
        total = total - (col->offs[rows[t] + 1] - col->offs[rows[t]]) +
                (src->offs[t + 1] - src->offs[t]);
    char *nb = reel_xmalloc((size_t)total + 1);
    uint64_t w = 0;
    uint32_t i = 0;
    for (uint32_t t = 0;; t++) {
        uint32_t end = t < k ? rows[t] : col->n;
        uint64_t a = col->offs[i], b = col->offs[end];
        memcpy(nb + w, col->bytes + a, (size_t)(b - a));
        /* In place: offs[j] is read before it is written, and offs[end]
         * (read above) is only written below. */
        for (uint32_t j = i; j < end; j++)
            col->offs[j] = col->offs[j] - a + w;
        w += b - a;
        if (t == k)
            break;
        col->offs[end] = w;
        uint64_t len = src->offs[t + 1] - src->offs[t];
        memcpy(nb + w, src->bytes + src->offs[t], (size_t)len);
        w += len;
        i = end + 1;
    }
    col->offs[col->n] = w;
    free(col->bytes);
    col->bytes = nb;
    assert(w == total);
    col->n_bytes = (size_t)w;
    col->cap_bytes = (size_t)total + 1;
}

/* Rebuilds a CSR list with rows[t] replaced by src list t (src_off has
 * k + 1 entries); the caller has checked the total fits. */
static void csr_replace(struct csr c, const uint32_t *rows, uint32_t k,
                        const uint32_t *src_off, const uint32_t *src)
{
    uint64_t total = *c.n;
    for (uint32_t t = 0; t < k; t++)
        total = total - (c.off[rows[t] + 1] - c.off[rows[t]]) +
                (src_off[t + 1] - src_off[t]);
    uint32_t *na = reel_xmalloc(((size_t)total + 1) * sizeof *na);
    uint32_t w = 0, i = 0;
    for (uint32_t t = 0;; t++) {
        uint32_t end = t < k ? rows[t] : c.n_rows;
        uint32_t a = c.off[i], b = c.off[end];
        memcpy(na + w, *c.arr + a, (size_t)(b - a) * sizeof *na);
        for (uint32_t j = i; j < end; j++)
            c.off[j] = c.off[j] - a + w;
        w += b - a;
        if (t == k)
            break;
        c.off[end] = w;
        uint32_t len = src_off[t + 1] - src_off[t];
        memcpy(na + w, src + src_off[t], (size_t)len * sizeof *na);
        w += len;
        i = end + 1;
    }
    c.off[c.n_rows] = w;
    free(*c.arr);
    *c.arr = na;
    *c.n = w;
    *c.cap = (size_t)total + 1;
}

static int load_dicts(reel_meta *m, const reel_secfile *f, const char *p,
                      reel_diag *d)
{
    for (int k = 0; k < REEL_DICT__COUNT; k++) {
        char stem[32];
        snprintf(stem, sizeof stem, "dict.%s", dict_stems[k]);
        reel_strs s;
        int rc = get_strs(f, p, stem, UINT64_MAX, &s, d);
        if (rc)
            return rc;
        if ((uint64_t)m->dict[k].n + s.n > MAX_ROWS)
            return corrupt(d, p, stem, "too many names", s.n);
        for (uint32_t j = 0; j < s.n; j++) {
            size_t len;
            const char *name = str_ok(&s, j, 1, REEL_MAX_WORD_LEN, &len);
            if (!name)
                return corrupt(d, p, stem, "bad name", j);
            int is_new;
            reel_intern_put(&m->dict[k], name, len, &is_new);
            if (!is_new)
                return corrupt(d, p, stem, "name already in the dictionary", j);
        }
    }
    return 0;
}

static int load_videos(reel_meta *m, const reel_secfile *f, const char *p,
                       uint32_t n_v, reel_diag *d)
{
    const uint32_t *row, *lang, *type, *cat_off, *cat, *tag_off, *tag;
    const float *dur;
    const double *pub;
    reel_strs id, title, desc, media;
    uint64_t cnt, n_cat, n_tag, n_put;
    int rc;
    if ((rc = need(f, p, "video.row", REEL_SEC_U32, UINT64_MAX,
                   (const void **)&row, &cnt, d)) ||
        (rc =
             check_rows(row, cnt, m->n_ds_v, n_v, p, "video.row", &n_put, d)) ||
        (rc = get_strs(f, p, "video.id", cnt, &id, d)) ||
        (rc = get_strs(f, p, "video.title", cnt, &title, d)) ||
        (rc = get_strs(f, p, "video.desc", cnt, &desc, d)) ||
        (rc = get_strs(f, p, "video.media", cnt, &media, d)) ||
        (rc = need(f, p, "video.language", REEL_SEC_U32, cnt,
                   (const void **)&lang, NULL, d)) ||
        (rc = need(f, p, "video.type", REEL_SEC_U32, cnt, (const void **)&type,
                   NULL, d)) ||
        (rc = need(f, p, "video.duration", REEL_SEC_F32, cnt,
                   (const void **)&dur, NULL, d)) ||
        (rc = need(f, p, "video.published", REEL_SEC_F64, cnt,
                   (const void **)&pub, NULL, d)) ||
        (rc = need(f, p, "video.cat.off", REEL_SEC_U32, cnt + 1,
                   (const void **)&cat_off, NULL, d)) ||
        (rc = need(f, p, "video.cat", REEL_SEC_U32, UINT64_MAX,
                   (const void **)&cat, &n_cat, d)) ||
        (rc = need(f, p, "video.tag.off", REEL_SEC_U32, cnt + 1,
                   (const void **)&tag_off, NULL, d)) ||
        (rc = need(f, p, "video.tag", REEL_SEC_U32, UINT64_MAX,
                   (const void **)&tag, &n_tag, d)) ||
        (rc = check_csr(cat_off, cnt, cat, n_cat, m->dict[REEL_DICT_CATEGORY].n,
                        p, "video.cat", "video.cat.off", d)) ||
        (rc = check_csr(tag_off, cnt, tag, n_tag, m->dict[REEL_DICT_TAG].n, p,
                        "video.tag", "video.tag.off", d)))
        return rc;
    const reel_videos *dsv = reel_dataset_videos(m->ds);
    uint64_t tot_cat = m->n_v_cat, tot_tag = m->n_v_tag;
    for (uint32_t j = 0; j < cnt; j++) {
        uint32_t r = row[j];
        size_t len;
        if (!id_ok(&id, j, r, m->n_ds_v, &dsv->id))
            return corrupt(d, p, "video.id", "bad id", j);
        if (!str_ok(&title, j, 0, REEL_MAX_TITLE_LEN, &len))
            return corrupt(d, p, "video.title", "bad title", j);
        if (!str_ok(&desc, j, 0, REEL_MAX_TEXT_LEN, &len))
            return corrupt(d, p, "video.desc", "bad description", j);
        if (!str_ok(&media, j, 0, REEL_MAX_TEXT_LEN, &len))
            return corrupt(d, p, "video.media", "bad media", j);
        if (!dict_ok(lang[j], m, REEL_DICT_LANGUAGE))
            return corrupt(d, p, "video.language", "id out of range", j);
        if (!dict_ok(type[j], m, REEL_DICT_VTYPE))
            return corrupt(d, p, "video.type", "id out of range", j);
        if (!isnan(dur[j]) && !(dur[j] >= 0 && isfinite(dur[j])))
            return corrupt(d, p, "video.duration", "bad duration", j);
        if (!isnan(pub[j]) && !isfinite(pub[j]))
            return corrupt(d, p, "video.published", "not finite", j);
        if (r < m->n_ds_v) {
            tot_cat -= m->v_cat_off[r + 1] - m->v_cat_off[r];
            tot_tag -= m->v_tag_off[r + 1] - m->v_tag_off[r];
        }
    }
    if (tot_cat + n_cat > UINT32_MAX || tot_tag + n_tag > UINT32_MAX)
        return corrupt(d, p, "video.cat", "lists too long", n_cat);

    /* The replaced dataset rows: each column rebuilt once. */
    uint32_t k = (uint32_t)n_put;
    if (k) {
        strcol_replace(&m->v_title, row, k, &title);
        strcol_replace(&m->v_desc, row, k, &desc);
        strcol_replace(&m->v_media, row, k, &media);
        csr_replace(video_cats(m), row, k, cat_off, cat);
        csr_replace(video_tags(m), row, k, tag_off, tag);
        for (uint32_t j = 0; j < k; j++) {
            uint32_t r = row[j];
            m->v_lang[r] = lang[j];
            m->v_type[r] = type[j];
            m->v_dur[r] = dur[j];
            m->v_pub[r] = pub[j];
            m->v_put[r] = 1;
        }
    }
    /* The added rows, in order. */
    for (uint32_t j = k; j < cnt; j++) {
        size_t len;
        const char *s = reel_strs_get(&id, j, &len);
        uint32_t i = append_video(m, s, len);
        if (i == REEL_NONE) {
            refresh(m);
            return corrupt(d, p, "video.id", "id repeated", j);
        }
        assert(i == row[j]);
        strcol_set(&m->v_title, i, reel_strs_get(&title, j, NULL));
        strcol_set(&m->v_desc, i, reel_strs_get(&desc, j, NULL));
        strcol_set(&m->v_media, i, reel_strs_get(&media, j, NULL));
        m->v_lang[i] = lang[j];
        m->v_type[i] = type[j];
        m->v_dur[i] = dur[j];
        m->v_pub[i] = pub[j];
        csr_set(video_cats(m), i, cat + cat_off[j],
                cat_off[j + 1] - cat_off[j]);
        csr_set(video_tags(m), i, tag + tag_off[j],
                tag_off[j + 1] - tag_off[j]);
    }
    refresh(m);
    return 0;
}

static int load_users(reel_meta *m, const reel_secfile *f, const char *p,
                      uint32_t n_u, reel_diag *d)
{
    const uint32_t *row, *gender, *country, *occ, *zip;
    const int16_t *age;
    const double *signup;
    reel_strs id;
    uint64_t cnt, n_put;
    int rc;
    if ((rc = need(f, p, "user.row", REEL_SEC_U32, UINT64_MAX,
                   (const void **)&row, &cnt, d)) ||
        (rc = check_rows(row, cnt, m->n_ds_u, n_u, p, "user.row", &n_put, d)) ||
        (rc = get_strs(f, p, "user.id", cnt, &id, d)) ||
        (rc = need(f, p, "user.age", REEL_SEC_I16, cnt, (const void **)&age,
                   NULL, d)) ||
        (rc = need(f, p, "user.gender", REEL_SEC_U32, cnt,
                   (const void **)&gender, NULL, d)) ||
        (rc = need(f, p, "user.country", REEL_SEC_U32, cnt,
                   (const void **)&country, NULL, d)) ||
        (rc = need(f, p, "user.occupation", REEL_SEC_U32, cnt,
                   (const void **)&occ, NULL, d)) ||
        (rc = need(f, p, "user.zip", REEL_SEC_U32, cnt, (const void **)&zip,
                   NULL, d)) ||
        (rc = need(f, p, "user.signup", REEL_SEC_F64, cnt,
                   (const void **)&signup, NULL, d)))
        return rc;
    const reel_users *dsu = reel_dataset_users(m->ds);
    for (uint32_t j = 0; j < cnt; j++) {
        if (!id_ok(&id, j, row[j], m->n_ds_u, &dsu->id))
            return corrupt(d, p, "user.id", "bad id", j);
        if (age[j] < -1 || age[j] > 150)
            return corrupt(d, p, "user.age", "age out of range", j);
        if (!dict_ok(gender[j], m, REEL_DICT_GENDER))
            return corrupt(d, p, "user.gender", "id out of range", j);
        if (!dict_ok(country[j], m, REEL_DICT_COUNTRY))
            return corrupt(d, p, "user.country", "id out of range", j);
        if (!dict_ok(occ[j], m, REEL_DICT_OCCUPATION))
            return corrupt(d, p, "user.occupation", "id out of range", j);
        if (!dict_ok(zip[j], m, REEL_DICT_ZIP))
            return corrupt(d, p, "user.zip", "id out of range", j);
        if (!isnan(signup[j]) && !isfinite(signup[j]))
            return corrupt(d, p, "user.signup", "not finite", j);
    }
    for (uint32_t j = 0; j < cnt; j++) {
        uint32_t i = row[j];
        if (j >= n_put) {
            size_t len;
            const char *s = reel_strs_get(&id, j, &len);
            i = append_user(m, s, len);
            if (i == REEL_NONE) {
                refresh(m);
                return corrupt(d, p, "user.id", "id repeated", j);
            }
            assert(i == row[j]);
        } else {
            m->u_put[i] = 1;
        }
        m->u_age[i] = age[j];
        m->u_gender[i] = gender[j];
        m->u_country[i] = country[j];
        m->u_occ[i] = occ[j];
        m->u_zip[i] = zip[j];
        m->u_signup[i] = signup[j];
    }
    refresh(m);
    return 0;
}

int reel_meta_load(reel_meta *m, const reel_secfile *f, const char *prefix,
                   reel_diag *d)
{
    assert(strlen(prefix) <= REEL_META_PREFIX_MAX);
    assert(m->v_id.n == m->n_ds_v && m->u_id.n == m->n_ds_u);
    for (int k = 0; k < REEL_DICT__COUNT; k++)
        assert(m->dict[k].n == m->n_ds_dict[k]);
    const uint64_t *h;
    int rc = need(f, prefix, "head", REEL_SEC_U64, HEAD_N, (const void **)&h,
                  NULL, d);
    if (rc)
        return rc;
    if (h[0] != VERSION)
        return reel_diag_fail(d, REEL_EVERSION,
                              "section '%shead': version %llu, expected %d",
                              prefix, (unsigned long long)h[0], VERSION);
    int same = h[1] == m->n_ds_v && h[2] == m->n_ds_u;
    for (int k = 0; k < REEL_DICT__COUNT; k++)
        same = same && h[5 + k] == m->n_ds_dict[k];
    if (!same)
        return reel_diag_fail(d, REEL_ECORRUPT,
                              "section '%shead': written for another dataset "
                              "(%llu videos, %llu users; this one has %u, %u)",
                              prefix, (unsigned long long)h[1],
                              (unsigned long long)h[2], m->n_ds_v, m->n_ds_u);
    if (h[3] < m->n_ds_v || h[3] > MAX_ROWS || h[4] < m->n_ds_u ||
        h[4] > MAX_ROWS)
        return reel_diag_fail(d, REEL_ECORRUPT,
                              "section '%shead': bad row counts", prefix);
    if ((rc = load_dicts(m, f, prefix, d)) ||
        (rc = load_videos(m, f, prefix, (uint32_t)h[3], d)) ||
        (rc = load_users(m, f, prefix, (uint32_t)h[4], d)))
        return rc;
    return 0;
}
