#include "data/dataset.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/mem.h"
#include "base/progress.h"
#include "base/secfile.h"
#include "base/sort.h"

static const char *const event_names[REEL_EV__COUNT] = {
    "impression", "click", "play", "watch", "like", "share", "skip", "rating",
};

/* Section-name stems of the dictionaries, indexed by enum reel_dict. */
static const char *const dict_names[REEL_DICT__COUNT] = {
    "category", "language", "vtype",      "tag",
    "gender",   "country",  "occupation", "zip",
};

const char *reel_event_type_name(int type)
{
    return type >= 0 && type < REEL_EV__COUNT ? event_names[type] : NULL;
}

int reel_event_type_parse(const char *s, size_t len)
{
    for (int i = 0; i < REEL_EV__COUNT; i++)
        if (strlen(event_names[i]) == len && !memcmp(event_names[i], s, len))
            return i;
    return -1;
}

reel_video_rec reel_video_rec_empty(void)
{
    return (reel_video_rec){.duration_s = NAN, .published_at = NAN};
}

reel_user_rec reel_user_rec_empty(void)
{
    return (reel_user_rec){.age = -1, .signed_up_at = NAN};
}

reel_event_rec reel_event_rec_empty(void)
{
    return (reel_event_rec){
        .type = -1, .ts = NAN, .watch_s = NAN, .rating = NAN};
}

/* ================================================================ builder */

struct reel_dsbuild {
    reel_intern dict[REEL_DICT__COUNT];

    reel_intern v_id, v_title, v_desc, v_media;
    uint32_t *v_lang, *v_type;
    float *v_dur;
    double *v_pub;
    uint32_t *v_cat_off, *v_cat, *v_tag_off, *v_tag;
    size_t cap_v, cap_v1, n_v_cat, cap_v_cat, n_v_tag, cap_v_tag;

    reel_intern u_id;
    int16_t *u_age;
    uint32_t *u_gender, *u_country, *u_occ, *u_zip;
    double *u_signup;
    uint8_t *u_explicit;
    size_t cap_u;

    uint64_t n_e;
    size_t cap_e;
    double *e_ts;
    uint32_t *e_user, *e_video;
    uint8_t *e_type;
    float *e_watch, *e_rating;
    int have_e_id, have_e_req;
    reel_intern e_id, e_req;

    char *meta;
};

void reel_dsbuild_new(reel_dsbuild **out)
{
    reel_dsbuild *b = reel_xcalloc(1, sizeof *b);
    for (int i = 0; i < REEL_DICT__COUNT; i++)
        reel_intern_init(&b->dict[i]);
    reel_intern_init(&b->v_id);
    reel_intern_init(&b->v_title);
    reel_intern_init(&b->v_desc);
    reel_intern_init(&b->v_media);
    reel_intern_init(&b->u_id);
    reel_intern_init(&b->e_id);
    reel_intern_init(&b->e_req);
    REEL_GROW(b->v_cat_off, b->cap_v1, 1);
    b->v_cat_off[0] = 0;
    size_t cap = 0;
    REEL_GROW(b->v_tag_off, cap, b->cap_v1);
    b->v_tag_off[0] = 0;
    *out = b;
}

void reel_dsbuild_free(reel_dsbuild *b)
{
    if (!b)
        return;
    for (int i = 0; i < REEL_DICT__COUNT; i++)
        reel_intern_free(&b->dict[i]);
    reel_intern_free(&b->v_id);
    reel_intern_free(&b->v_title);
    reel_intern_free(&b->v_desc);
    reel_intern_free(&b->v_media);
    reel_intern_free(&b->u_id);
    free(b->u_zip);
    reel_intern_free(&b->e_id);
    reel_intern_free(&b->e_req);
    free(b->v_lang);
    free(b->v_type);
    free(b->v_dur);
    free(b->v_pub);
    free(b->v_cat_off);
    free(b->v_cat);
    free(b->v_tag_off);
    free(b->v_tag);
    free(b->u_age);
    free(b->u_gender);
    free(b->u_country);
    free(b->u_occ);
    free(b->u_signup);
    free(b->u_explicit);
    free(b->e_ts);
    free(b->e_user);
    free(b->e_video);
    free(b->e_type);
    free(b->e_watch);
    free(b->e_rating);
    free(b->meta);
    free(b);
}

uint32_t reel_dsbuild_n_videos(const reel_dsbuild *b)
{
    return b->v_id.n;
}

uint32_t reel_dsbuild_n_users(const reel_dsbuild *b)
{
    return b->u_id.n;
}

uint64_t reel_dsbuild_n_events(const reel_dsbuild *b)
{
    return b->n_e;
}

void reel_dsbuild_set_meta(reel_dsbuild *b, const char *json)
{
    free(b->meta);
    b->meta = reel_xstrndup(json, strlen(json));
}

static int check_len(const char *what, const char *s, size_t max, reel_diag *d)
{
    if (s && strlen(s) > max)
        return reel_diag_fail(d, REEL_ETOOBIG, "%s longer than %zu bytes", what,
                              max);
    return 0;
}

static uint32_t dict_put(reel_dsbuild *b, enum reel_dict k, const char *s)
{
    if (!s || !*s)
        return REEL_NONE;
    return reel_intern_put(&b->dict[k], s, strlen(s), NULL);
}

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

/* Appends a new video row with every attribute missing; returns its index. */
static uint32_t video_row(reel_dsbuild *b, const char *id, size_t len)
{
    int is_new;
    uint32_t i = reel_intern_put(&b->v_id, id, len, &is_new);
    assert(is_new);
    size_t n = (size_t)i + 1;
    size_t cap = b->cap_v;
    REEL_GROW(b->v_lang, cap, n);
    cap = b->cap_v;
    REEL_GROW(b->v_type, cap, n);
    cap = b->cap_v;
    REEL_GROW(b->v_dur, cap, n);
    cap = b->cap_v;
    REEL_GROW(b->v_pub, cap, n);
    b->cap_v = cap;
    cap = b->cap_v1;
    REEL_GROW(b->v_cat_off, cap, n + 1);
    cap = b->cap_v1;
    REEL_GROW(b->v_tag_off, cap, n + 1);
    b->cap_v1 = cap;
    reel_intern_push(&b->v_title, "", 0);
    reel_intern_push(&b->v_desc, "", 0);
    reel_intern_push(&b->v_media, "", 0);
    b->v_lang[i] = REEL_NONE;
    b->v_type[i] = REEL_NONE;
    b->v_dur[i] = NAN;
    b->v_pub[i] = NAN;
    b->v_cat_off[i + 1] = (uint32_t)b->n_v_cat;
    b->v_tag_off[i + 1] = (uint32_t)b->n_v_tag;
    return i;
}

uint32_t reel_dsbuild_find_video(const reel_dsbuild *b, const char *id,
                                 size_t len)
{
    return reel_intern_find(&b->v_id, id, len);
}

uint32_t reel_dsbuild_video_ref(reel_dsbuild *b, const char *id, size_t len)
{
    uint32_t i = reel_intern_find(&b->v_id, id, len);
    return i != REEL_NONE ? i : video_row(b, id, len);
}

static int valid_id(const char *id, reel_diag *d)
{
    if (!id || !*id)
        return reel_diag_fail(d, REEL_EFORMAT, "missing id");
    return check_len("id", id, REEL_MAX_ID_LEN, d);
}

/* Replaces the last string of a push-only column (the row just made). */
static void set_last(reel_intern *col, const char *s)
{
    col->n--;
    col->n_bytes = col->offs[col->n];
    reel_intern_push(col, s, strlen(s));
}

int reel_video_rec_check(const reel_video_rec *v, reel_diag *d)
{
    int rc;
    if ((rc = valid_id(v->id, d)) ||
        (rc = check_len("title", v->title, REEL_MAX_TITLE_LEN, d)) ||
        (rc = check_len("description", v->description, REEL_MAX_TEXT_LEN, d)) ||
        (rc = check_len("media", v->media, REEL_MAX_TEXT_LEN, d)) ||
        (rc = check_len("language", v->language, REEL_MAX_WORD_LEN, d)) ||
        (rc = check_len("type", v->type, REEL_MAX_WORD_LEN, d)))
        return rc;
    if (v->n_categories > REEL_MAX_LIST || v->n_tags > REEL_MAX_LIST)
        return reel_diag_fail(d, REEL_ETOOBIG,
                              "more than %d categories or tags", REEL_MAX_LIST);
    for (size_t k = 0; k < v->n_categories; k++)
        if ((rc =
                 check_len("category", v->categories[k], REEL_MAX_WORD_LEN, d)))
            return rc;
    for (size_t k = 0; k < v->n_tags; k++)
        if ((rc = check_len("tag", v->tags[k], REEL_MAX_WORD_LEN, d)))
            return rc;
    if (!isnan(v->duration_s) &&
        !(v->duration_s >= 0 && isfinite(v->duration_s)))
        return reel_diag_fail(d, REEL_ERANGE, "duration_s must be >= 0");
    if (!isnan(v->published_at) && !isfinite(v->published_at))
        return reel_diag_fail(d, REEL_ERANGE, "published_at is not finite");
    return 0;
}

int reel_dsbuild_add_video(reel_dsbuild *b, const reel_video_rec *v,
                           uint32_t *idx, reel_diag *d)
{
    int rc = reel_video_rec_check(v, d);
    if (rc)
        return rc;
    size_t id_len = strlen(v->id);
    if (reel_intern_find(&b->v_id, v->id, id_len) != REEL_NONE)
        return reel_diag_fail(d, REEL_EEXISTS, "duplicate video id \"%s\"",
                              v->id);
    /* Only the newest row may be rewritten in place (its strings are the
     * last ones of each column), which is the row video_row just made. */
    uint32_t i = video_row(b, v->id, id_len);
    set_last(&b->v_title, or_empty(v->title));
    set_last(&b->v_desc, or_empty(v->description));
    set_last(&b->v_media, or_empty(v->media));
    b->v_lang[i] = dict_put(b, REEL_DICT_LANGUAGE, v->language);
    b->v_type[i] = dict_put(b, REEL_DICT_VTYPE, v->type);
    b->v_dur[i] = (float)v->duration_s;
    b->v_pub[i] = v->published_at;
    for (size_t k = 0; k < v->n_categories; k++) {
        uint32_t c = dict_put(b, REEL_DICT_CATEGORY, v->categories[k]);
        if (c == REEL_NONE)
            continue;
        REEL_GROW(b->v_cat, b->cap_v_cat, b->n_v_cat + 1);
        b->v_cat[b->n_v_cat++] = c;
    }
    for (size_t k = 0; k < v->n_tags; k++) {
        uint32_t t = dict_put(b, REEL_DICT_TAG, v->tags[k]);
        if (t == REEL_NONE)
            continue;
        REEL_GROW(b->v_tag, b->cap_v_tag, b->n_v_tag + 1);
        b->v_tag[b->n_v_tag++] = t;
    }
    if (b->n_v_cat > UINT32_MAX || b->n_v_tag > UINT32_MAX)
        abort();
    b->v_cat_off[i + 1] = (uint32_t)b->n_v_cat;
    b->v_tag_off[i + 1] = (uint32_t)b->n_v_tag;
    if (idx)
        *idx = i;
    return 0;
}

/* Gives user i (just interned) every attribute missing. */
static void user_row(reel_dsbuild *b, uint32_t i)
{
    size_t n = (size_t)i + 1, cap;
    cap = b->cap_u;
    REEL_GROW(b->u_age, cap, n);
    cap = b->cap_u;
    REEL_GROW(b->u_gender, cap, n);
    cap = b->cap_u;
    REEL_GROW(b->u_country, cap, n);
    cap = b->cap_u;
    REEL_GROW(b->u_occ, cap, n);
    cap = b->cap_u;
    REEL_GROW(b->u_zip, cap, n);
    cap = b->cap_u;
    REEL_GROW(b->u_signup, cap, n);
    cap = b->cap_u;
    REEL_GROW(b->u_explicit, cap, n);
    b->cap_u = cap;
    b->u_age[i] = -1;
    b->u_gender[i] = b->u_country[i] = b->u_occ[i] = b->u_zip[i] = REEL_NONE;
    b->u_signup[i] = NAN;
    b->u_explicit[i] = 0;
}

uint32_t reel_dsbuild_user_ref(reel_dsbuild *b, const char *id, size_t len)
{
    int is_new;
    uint32_t i = reel_intern_put(&b->u_id, id, len, &is_new);
    if (is_new)
        user_row(b, i);
    return i;
}

int reel_user_rec_check(const reel_user_rec *u, reel_diag *d)
{
    int rc;
    if ((rc = valid_id(u->id, d)) ||
        (rc = check_len("gender", u->gender, REEL_MAX_WORD_LEN, d)) ||
        (rc = check_len("country", u->country, REEL_MAX_WORD_LEN, d)) ||
        (rc = check_len("occupation", u->occupation, REEL_MAX_WORD_LEN, d)) ||
        (rc = check_len("zip", u->zip, REEL_MAX_WORD_LEN, d)))
        return rc;
    if (u->age < -1 || u->age > 150)
        return reel_diag_fail(d, REEL_ERANGE, "age %d out of range 0..150",
                              u->age);
    if (!isnan(u->signed_up_at) && !isfinite(u->signed_up_at))
        return reel_diag_fail(d, REEL_ERANGE, "signed_up_at is not finite");
    return 0;
}

int reel_dsbuild_add_user(reel_dsbuild *b, const reel_user_rec *u,
                          uint32_t *idx, reel_diag *d)
{
    int rc = reel_user_rec_check(u, d);
    if (rc)
        return rc;
    uint32_t i = reel_dsbuild_user_ref(b, u->id, strlen(u->id));
    if (b->u_explicit[i])
        return reel_diag_fail(d, REEL_EEXISTS, "duplicate user id \"%s\"",
                              u->id);
    b->u_explicit[i] = 1;
    b->u_age[i] = (int16_t)u->age;
    b->u_gender[i] = dict_put(b, REEL_DICT_GENDER, u->gender);
    b->u_country[i] = dict_put(b, REEL_DICT_COUNTRY, u->country);
    b->u_occ[i] = dict_put(b, REEL_DICT_OCCUPATION, u->occupation);
    b->u_signup[i] = u->signed_up_at;
    b->u_zip[i] = dict_put(b, REEL_DICT_ZIP, u->zip);
    if (idx)
        *idx = i;
    return 0;
}

void reel_dsbuild_reserve_events(reel_dsbuild *b, uint64_t n)
{
    size_t need = (size_t)(b->n_e + n), cap;
    cap = b->cap_e;
    REEL_GROW(b->e_ts, cap, need);
    cap = b->cap_e;
    REEL_GROW(b->e_user, cap, need);
    cap = b->cap_e;
    REEL_GROW(b->e_video, cap, need);
    cap = b->cap_e;
    REEL_GROW(b->e_type, cap, need);
    cap = b->cap_e;
    REEL_GROW(b->e_watch, cap, need);
    cap = b->cap_e;
    REEL_GROW(b->e_rating, cap, need);
    b->cap_e = cap;
}

/* Makes an optional string column real: "" for the events before it. */
static void materialize(reel_intern *col, uint64_t n)
{
    for (uint64_t k = 0; k < n; k++)
        reel_intern_push(col, "", 0);
}

int reel_dsbuild_add_event(reel_dsbuild *b, const reel_event_rec *e,
                           reel_diag *d)
{
    if (e->user >= b->u_id.n || e->video >= b->v_id.n)
        return reel_diag_fail(d, REEL_EINVAL,
                              "event names an unknown user "
                              "or video index");
    if (e->type < 0 || e->type >= REEL_EV__COUNT)
        return reel_diag_fail(d, REEL_EFORMAT, "unknown event type");
    if (!isfinite(e->ts))
        return reel_diag_fail(d, REEL_EFORMAT, "missing or non-finite ts");
    if (!isnan(e->watch_s) && !(e->watch_s >= 0 && isfinite(e->watch_s)))
        return reel_diag_fail(d, REEL_ERANGE, "watch_s must be >= 0");
    if (!isnan(e->rating) && !isfinite(e->rating))
        return reel_diag_fail(d, REEL_ERANGE, "rating is not finite");
    int rc;
    if ((rc = check_len("event id", e->id, REEL_MAX_ID_LEN, d)) ||
        (rc = check_len("request_id", e->request_id, REEL_MAX_ID_LEN, d)))
        return rc;
    if (b->n_e >= UINT32_MAX - 1)
        return reel_diag_fail(d, REEL_ETOOBIG, "more than 4 billion events");
    if (b->n_e == b->cap_e)
        reel_dsbuild_reserve_events(b, b->cap_e ? b->cap_e : 1024);
    uint64_t i = b->n_e;
    b->e_ts[i] = e->ts;
    b->e_user[i] = e->user;
    b->e_video[i] = e->video;
    b->e_type[i] = (uint8_t)e->type;
    b->e_watch[i] = (float)e->watch_s;
    b->e_rating[i] = (float)e->rating;
    if (e->id && *e->id && !b->have_e_id) {
        materialize(&b->e_id, i);
        b->have_e_id = 1;
    }
    if (e->request_id && *e->request_id && !b->have_e_req) {
        materialize(&b->e_req, i);
        b->have_e_req = 1;
    }
    if (b->have_e_id)
        reel_intern_push(&b->e_id, or_empty(e->id), strlen(or_empty(e->id)));
    if (b->have_e_req)
        reel_intern_push(&b->e_req, or_empty(e->request_id),
                         strlen(or_empty(e->request_id)));
    b->n_e++;
    return 0;
}

/* DIR/dataset.reel, allocated. */
static char *dataset_path(const char *dir)
{
    size_t pl = strlen(dir) + sizeof REEL_DATASET_FILE + 2;
    char *path = reel_xmalloc(pl);
    snprintf(path, pl, "%s/%s", dir, REEL_DATASET_FILE);
    return path;
}

/* ------------------------------------------------------------- writing */

static int put_strs(reel_secfile_writer *w, const char *name,
                    const reel_intern *col)
{
    char off_name[40];
    snprintf(off_name, sizeof off_name, "%s.off", name);
    int rc = reel_secfile_writer_add(w, off_name, REEL_SEC_U64, col->offs,
                                     (uint64_t)col->n + 1);
    if (rc)
        return rc;
    return reel_secfile_writer_add(w, name, REEL_SEC_BYTES, col->bytes,
                                   col->n_bytes);
}

/* Writes column `src` (n elements of `size` bytes) in the order perm. */
static int put_permuted(reel_secfile_writer *w, const char *name,
                        enum reel_sectype type, const void *src,
                        const uint32_t *perm, uint64_t n, reel_progress *p)
{
    size_t size = reel_sectype_size(type);
    int rc = reel_secfile_writer_begin(w, name, type);
    if (rc)
        return rc;
    enum { CH = 65536 };
    unsigned char *tmp = reel_xmalloc(CH * size);
    const unsigned char *s = src;
    for (uint64_t at = 0; at < n && !rc; at += CH) {
        uint64_t m = n - at < CH ? n - at : CH;
        for (uint64_t k = 0; k < m; k++)
            memcpy(tmp + k * size, s + (size_t)perm[at + k] * size, size);
        rc = reel_secfile_writer_append(w, tmp, m * size);
        reel_progress_set(p, reel_secfile_writer_pos(w));
    }
    free(tmp);
    return rc ? rc : reel_secfile_writer_end(w);
}

static int put_strs_permuted(reel_secfile_writer *w, const char *name,
                             const reel_intern *col, const uint32_t *perm,
                             uint64_t n)
{
    char off_name[40];
    snprintf(off_name, sizeof off_name, "%s.off", name);
    int rc = reel_secfile_writer_begin(w, off_name, REEL_SEC_U64);
    uint64_t at = 0;
    for (uint64_t k = 0; k <= n && !rc; k++) {
        rc = reel_secfile_writer_append(w, &at, sizeof at);
        if (k < n)
            at += col->offs[perm[k] + 1] - col->offs[perm[k]];
    }
    if (rc || (rc = reel_secfile_writer_end(w)) ||
        (rc = reel_secfile_writer_begin(w, name, REEL_SEC_BYTES)))
        return rc;
    for (uint64_t k = 0; k < n && !rc; k++)
        rc = reel_secfile_writer_append(w, col->bytes + col->offs[perm[k]],
                                        col->offs[perm[k] + 1] -
                                            col->offs[perm[k]]);
    return rc ? rc : reel_secfile_writer_end(w);
}

int reel_dsbuild_write(reel_dsbuild *b, const char *dir, reel_diag *d)
{
    if (mkdir(dir, 0755) && errno != EEXIST)
        return reel_diag_fail(d, REEL_EIO, "cannot create %s: %s", dir,
                              strerror(errno));
    char *path = dataset_path(dir);
    reel_secfile_writer *w = NULL;
    int rc = reel_secfile_writer_open(path, "dataset", &w, d);
    free(path);
    if (rc)
        return rc;
    uint32_t nv = b->v_id.n, nu = b->u_id.n;
    uint64_t ne = b->n_e;
    uint32_t *perm = reel_xmalloc((ne ? ne : 1) * sizeof *perm);
    reel_sort_perm_f64(b->e_ts, (uint32_t)ne, perm);
    /* Events dominate the size: 25 bytes each plus their optional ids. */
    reel_progress p;
    reel_progress_start(&p, "writing dataset", "bytes",
                        ne * 25 + b->e_id.n_bytes + b->e_req.n_bytes +
                            b->v_title.n_bytes + b->v_desc.n_bytes);
    const char *meta = b->meta ? b->meta : "{}";
    char name[40];
    for (int k = 0; k < REEL_DICT__COUNT && !rc; k++) {
        snprintf(name, sizeof name, "dict.%s", dict_names[k]);
        rc = put_strs(w, name, &b->dict[k]);
    }
    if (rc ||
        (rc = reel_secfile_writer_add(w, "meta", REEL_SEC_BYTES, meta,
                                      strlen(meta))) ||
        (rc = put_strs(w, "video.id", &b->v_id)) ||
        (rc = put_strs(w, "video.title", &b->v_title)) ||
        (rc = put_strs(w, "video.description", &b->v_desc)) ||
        (rc = put_strs(w, "video.media", &b->v_media)) ||
        (rc = reel_secfile_writer_add(w, "video.language", REEL_SEC_U32,
                                      b->v_lang, nv)) ||
        (rc = reel_secfile_writer_add(w, "video.type", REEL_SEC_U32, b->v_type,
                                      nv)) ||
        (rc = reel_secfile_writer_add(w, "video.duration", REEL_SEC_F32,
                                      b->v_dur, nv)) ||
        (rc = reel_secfile_writer_add(w, "video.published", REEL_SEC_F64,
                                      b->v_pub, nv)) ||
        (rc = reel_secfile_writer_add(w, "video.cat.off", REEL_SEC_U32,
                                      b->v_cat_off, (uint64_t)nv + 1)) ||
        (rc = reel_secfile_writer_add(w, "video.cat", REEL_SEC_U32, b->v_cat,
                                      b->n_v_cat)) ||
        (rc = reel_secfile_writer_add(w, "video.tag.off", REEL_SEC_U32,
                                      b->v_tag_off, (uint64_t)nv + 1)) ||
        (rc = reel_secfile_writer_add(w, "video.tag", REEL_SEC_U32, b->v_tag,
                                      b->n_v_tag)) ||
        (rc = put_strs(w, "user.id", &b->u_id)) ||
        (rc = reel_secfile_writer_add(w, "user.age", REEL_SEC_I16, b->u_age,
                                      nu)) ||
        (rc = reel_secfile_writer_add(w, "user.gender", REEL_SEC_U32,
                                      b->u_gender, nu)) ||
        (rc = reel_secfile_writer_add(w, "user.country", REEL_SEC_U32,
                                      b->u_country, nu)) ||
        (rc = reel_secfile_writer_add(w, "user.occupation", REEL_SEC_U32,
                                      b->u_occ, nu)) ||
        (rc = reel_secfile_writer_add(w, "user.zip", REEL_SEC_U32, b->u_zip,
                                      nu)) ||
        (rc = reel_secfile_writer_add(w, "user.signup", REEL_SEC_F64,
                                      b->u_signup, nu)) ||
        (rc = put_permuted(w, "event.ts", REEL_SEC_F64, b->e_ts, perm, ne,
                           &p)) ||
        (rc = put_permuted(w, "event.user", REEL_SEC_U32, b->e_user, perm, ne,
                           &p)) ||
        (rc = put_permuted(w, "event.video", REEL_SEC_U32, b->e_video, perm, ne,
                           &p)) ||
        (rc = put_permuted(w, "event.type", REEL_SEC_U8, b->e_type, perm, ne,
                           &p)) ||
        (rc = put_permuted(w, "event.watch", REEL_SEC_F32, b->e_watch, perm, ne,
                           &p)) ||
        (rc = put_permuted(w, "event.rating", REEL_SEC_F32, b->e_rating, perm,
                           ne, &p)) ||
        (b->have_e_id &&
         (rc = put_strs_permuted(w, "event.id", &b->e_id, perm, ne))) ||
        (b->have_e_req &&
         (rc = put_strs_permuted(w, "event.request_id", &b->e_req, perm, ne))))
        goto fail;
    free(perm);
    reel_progress_finish(&p);
    return reel_secfile_writer_commit(w, d);
fail:
    free(perm);
    reel_progress_finish(&p);
    reel_secfile_writer_free(w);
    return reel_diag_fail(d, rc, "cannot write the dataset in %s: %s", dir,
                          reel_strerror(rc));
}

/* ================================================================ reading */

struct reel_dataset {
    reel_secfile *f;
    reel_videos v;
    reel_users u;
    reel_events e;
    reel_strs dict[REEL_DICT__COUNT];
    char *meta;
    reel_strindex v_ix, u_ix;
};

static int get_strs(reel_secfile *f, const char *name, uint64_t n,
                    reel_strs *out, reel_diag *d)
{
    char off_name[40];
    snprintf(off_name, sizeof off_name, "%s.off", name);
    const reel_section *so, *sb;
    int rc;
    if ((rc =
             reel_secfile_need(f, off_name, REEL_SEC_U64,
                               n == UINT64_MAX ? UINT64_MAX : n + 1, &so, d)) ||
        (rc = reel_secfile_need(f, name, REEL_SEC_BYTES, UINT64_MAX, &sb, d)))
        return rc;
    if (so->count == 0 || so->count - 1 > UINT32_MAX - 1)
        return reel_diag_fail(d, REEL_ECORRUPT, "section '%s' is empty",
                              off_name);
    const uint64_t *offs = so->data;
    const char *bytes = sb->data;
    uint64_t cnt = so->count - 1;
    if (offs[0] != 0 || offs[cnt] != sb->length)
        return reel_diag_fail(d, REEL_ECORRUPT, "section '%s' is inconsistent",
                              name);
    /* Every string must be non-empty in storage (its NUL) and end in NUL,
     * so readers can treat them as C strings without further checks. */
    for (uint64_t i = 0; i < cnt; i++)
        if (offs[i + 1] <= offs[i] || bytes[offs[i + 1] - 1] != '\0')
            return reel_diag_fail(d, REEL_ECORRUPT,
                                  "section '%s': string %llu is malformed",
                                  name, (unsigned long long)i);
    out->offs = offs;
    out->bytes = bytes;
    out->n = (uint32_t)cnt;
    return 0;
}

static int get_col(reel_secfile *f, const char *name, enum reel_sectype t,
                   uint64_t n, const void **out, reel_diag *d)
{
    const reel_section *s;
    int rc = reel_secfile_need(f, name, t, n, &s, d);
    if (rc == 0)
        *out = s->data;
    return rc;
}

static int check_ids(const uint32_t *ids, uint64_t n, uint32_t limit,
                     int allow_none, const char *name, reel_diag *d)
{
    for (uint64_t i = 0; i < n; i++)
        if (ids[i] >= limit && !(allow_none && ids[i] == REEL_NONE))
            return reel_diag_fail(d, REEL_ECORRUPT,
                                  "section '%s': id out of range at %llu", name,
                                  (unsigned long long)i);
    return 0;
}

static int check_offs(const uint32_t *off, uint32_t n, uint64_t total,
                      const char *name, reel_diag *d)
{
    if (off[0] != 0 || off[n] != total)
        return reel_diag_fail(d, REEL_ECORRUPT, "section '%s' is inconsistent",
                              name);
    for (uint32_t i = 0; i < n; i++)
        if (off[i + 1] < off[i])
            return reel_diag_fail(d, REEL_ECORRUPT,
                                  "section '%s' is not monotone", name);
    return 0;
}

static int load(reel_dataset *ds, reel_diag *d)
{
    reel_secfile *f = ds->f;
    int rc;
    char name[40];
    for (int k = 0; k < REEL_DICT__COUNT; k++) {
        snprintf(name, sizeof name, "dict.%s", dict_names[k]);
        if ((rc = get_strs(f, name, UINT64_MAX, &ds->dict[k], d)))
            return rc;
    }
    const reel_section *meta;
    if ((rc = reel_secfile_need(f, "meta", REEL_SEC_BYTES, UINT64_MAX, &meta,
                                d)))
        return rc;
    ds->meta = reel_xstrndup(meta->data, (size_t)meta->length);

    reel_videos *v = &ds->v;
    if ((rc = get_strs(f, "video.id", UINT64_MAX, &v->id, d)))
        return rc;
    uint64_t nv = v->n = v->id.n;
    const reel_section *s;
    if ((rc = get_strs(f, "video.title", nv, &v->title, d)) ||
        (rc = get_strs(f, "video.description", nv, &v->description, d)) ||
        (rc = get_strs(f, "video.media", nv, &v->media, d)) ||
        (rc = get_col(f, "video.language", REEL_SEC_U32, nv,
                      (const void **)&v->language, d)) ||
        (rc = get_col(f, "video.type", REEL_SEC_U32, nv,
                      (const void **)&v->type, d)) ||
        (rc = get_col(f, "video.duration", REEL_SEC_F32, nv,
                      (const void **)&v->duration_s, d)) ||
        (rc = get_col(f, "video.published", REEL_SEC_F64, nv,
                      (const void **)&v->published_at, d)) ||
        (rc = get_col(f, "video.cat.off", REEL_SEC_U32, nv + 1,
                      (const void **)&v->cat_off, d)) ||
        (rc = reel_secfile_need(f, "video.cat", REEL_SEC_U32, UINT64_MAX, &s,
                                d)))
        return rc;
    v->cat = s->data;
    if ((rc = check_offs(v->cat_off, v->n, s->count, "video.cat.off", d)) ||
        (rc = check_ids(v->cat, s->count, ds->dict[REEL_DICT_CATEGORY].n, 0,
                        "video.cat", d)) ||
        (rc = get_col(f, "video.tag.off", REEL_SEC_U32, nv + 1,
                      (const void **)&v->tag_off, d)) ||
        (rc = reel_secfile_need(f, "video.tag", REEL_SEC_U32, UINT64_MAX, &s,
                                d)))
        return rc;
    v->tag = s->data;
    if ((rc = check_offs(v->tag_off, v->n, s->count, "video.tag.off", d)) ||
        (rc = check_ids(v->tag, s->count, ds->dict[REEL_DICT_TAG].n, 0,
                        "video.tag", d)) ||
        (rc = check_ids(v->language, nv, ds->dict[REEL_DICT_LANGUAGE].n, 1,
                        "video.language", d)) ||
        (rc = check_ids(v->type, nv, ds->dict[REEL_DICT_VTYPE].n, 1,
                        "video.type", d)))
        return rc;

    reel_users *u = &ds->u;
    if ((rc = get_strs(f, "user.id", UINT64_MAX, &u->id, d)))
        return rc;
    uint64_t nu = u->n = u->id.n;
    if ((rc = get_col(f, "user.zip", REEL_SEC_U32, nu, (const void **)&u->zip,
                      d)) ||
        (rc = get_col(f, "user.age", REEL_SEC_I16, nu, (const void **)&u->age,
                      d)) ||
        (rc = get_col(f, "user.gender", REEL_SEC_U32, nu,
                      (const void **)&u->gender, d)) ||
        (rc = get_col(f, "user.country", REEL_SEC_U32, nu,
                      (const void **)&u->country, d)) ||
        (rc = get_col(f, "user.occupation", REEL_SEC_U32, nu,
                      (const void **)&u->occupation, d)) ||
        (rc = get_col(f, "user.signup", REEL_SEC_F64, nu,
                      (const void **)&u->signed_up_at, d)) ||
        (rc = check_ids(u->gender, nu, ds->dict[REEL_DICT_GENDER].n, 1,
                        "user.gender", d)) ||
        (rc = check_ids(u->country, nu, ds->dict[REEL_DICT_COUNTRY].n, 1,
                        "user.country", d)) ||
        (rc = check_ids(u->occupation, nu, ds->dict[REEL_DICT_OCCUPATION].n, 1,
                        "user.occupation", d)) ||
        (rc = check_ids(u->zip, nu, ds->dict[REEL_DICT_ZIP].n, 1, "user.zip",
                        d)))
        return rc;

    reel_events *e = &ds->e;
    if ((rc =
             reel_secfile_need(f, "event.ts", REEL_SEC_F64, UINT64_MAX, &s, d)))
        return rc;
    uint64_t ne = e->n = s->count;
    e->ts = s->data;
    if ((rc = get_col(f, "event.user", REEL_SEC_U32, ne,
                      (const void **)&e->user, d)) ||
        (rc = get_col(f, "event.video", REEL_SEC_U32, ne,
                      (const void **)&e->video, d)) ||
        (rc = get_col(f, "event.type", REEL_SEC_U8, ne, (const void **)&e->type,
                      d)) ||
        (rc = get_col(f, "event.watch", REEL_SEC_F32, ne,
                      (const void **)&e->watch_s, d)) ||
        (rc = get_col(f, "event.rating", REEL_SEC_F32, ne,
                      (const void **)&e->rating, d)) ||
        (rc = check_ids(e->user, ne, u->n, 0, "event.user", d)) ||
        (rc = check_ids(e->video, ne, v->n, 0, "event.video", d)))
        return rc;
    for (uint64_t i = 0; i < ne; i++) {
        if (e->type[i] >= REEL_EV__COUNT)
            return reel_diag_fail(d, REEL_ECORRUPT, "event %llu has type %u",
                                  (unsigned long long)i, e->type[i]);
        if (!(e->ts[i] >= (i ? e->ts[i - 1] : -INFINITY)))
            return reel_diag_fail(d, REEL_ECORRUPT,
                                  "events are not sorted by time at %llu",
                                  (unsigned long long)i);
    }
    if (reel_secfile_find(f, "event.id") &&
        (rc = get_strs(f, "event.id", ne, &e->id, d)))
        return rc;
    if (reel_secfile_find(f, "event.request_id") &&
        (rc = get_strs(f, "event.request_id", ne, &e->request_id, d)))
        return rc;
    reel_strindex_build(&ds->v_ix, &v->id);
    reel_strindex_build(&ds->u_ix, &u->id);
    return 0;
}

int reel_dataset_open(const char *dir, reel_dataset **out, reel_diag *d)
{
    *out = NULL;
    char *path = dataset_path(dir);
    reel_dataset *ds = reel_xcalloc(1, sizeof *ds);
    int rc = reel_secfile_open(path, "dataset", 0, &ds->f, d);
    if (rc == 0) {
        rc = load(ds, d);
        if (rc) {
            char msg[sizeof d->msg];
            if (d) {
                memcpy(msg, d->msg, sizeof msg);
                reel_diag_fail(d, rc, "%s: %s", path, msg);
            }
        }
    }
    free(path);
    if (rc) {
        reel_dataset_close(ds);
        return rc;
    }
    *out = ds;
    return 0;
}

void reel_dataset_close(reel_dataset *ds)
{
    if (!ds)
        return;
    reel_strindex_free(&ds->v_ix);
    reel_strindex_free(&ds->u_ix);
    free(ds->meta);
    reel_secfile_close(ds->f);
    free(ds);
}

const reel_videos *reel_dataset_videos(const reel_dataset *ds)
{
    return &ds->v;
}

const reel_users *reel_dataset_users(const reel_dataset *ds)
{
    return &ds->u;
}

const reel_events *reel_dataset_events(const reel_dataset *ds)
{
    return &ds->e;
}

const reel_strs *reel_dataset_dict(const reel_dataset *ds, enum reel_dict k)
{
    return &ds->dict[k];
}

const char *reel_dataset_meta(const reel_dataset *ds)
{
    return ds->meta;
}

uint32_t reel_dataset_find_video(const reel_dataset *ds, const char *id,
                                 size_t len)
{
    return reel_strindex_find(&ds->v_ix, &ds->v.id, id, len);
}

uint32_t reel_dataset_find_user(const reel_dataset *ds, const char *id,
                                size_t len)
{
    return reel_strindex_find(&ds->u_ix, &ds->u.id, id, len);
}

uint32_t reel_user_segment(const reel_users *us, uint32_t u)
{
    if (u >= us->n)
        return REEL_NO_SEGMENT;
    static const int upper[] = {18, 25, 35, 45, 50, 56};
    uint32_t a = REEL_SEGMENT_AGES - 1, g = REEL_SEGMENT_GENDERS - 1;
    if (us->age[u] >= 0) {
        a = 6;
        for (uint32_t b = 0; b < 6; b++)
            if (us->age[u] < upper[b]) {
                a = b;
                break;
            }
    }
    if (us->gender[u] != REEL_NONE && us->gender[u] < 3)
        g = us->gender[u];
    return a * REEL_SEGMENT_GENDERS + g;
}
