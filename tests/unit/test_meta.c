/* Unit tests of src/data/meta: the copy of the dataset's tables, adding
 * and replacing videos and users (every field, new dictionary names),
 * users numbered from events, the views after many growths and
 * replacements against a model kept by the test, validation, records that
 * alias the meta's own memory, and the snapshot sections: a round trip and
 * damaged sections refused with a message naming them. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "base/secfile.h"
#include "data/dataset.h"
#include "data/meta.h"

/* ------------------------------------------------------------- fixture */

struct fixture {
    char *dir;
    reel_dataset *ds;
};

/* Dataset: videos v0..v4, users u0..u3. Dictionaries (first appearance):
 * categories music 0, dance 1, news 2; tags live 0, cover 1; languages
 * en 0, fr 1; types clip 0; genders f 0, m 1; countries de 0;
 * occupations artist 0; zips 10115 0. */
static struct fixture make_ds(void)
{
    struct fixture fx = {.dir = test_tmpdir()};
    reel_dsbuild *b;
    reel_dsbuild_new(&b);
    reel_diag d;
    static const char *const c0[] = {"music", "dance"}, *const c1[] = {"news"};
    static const char *const t0[] = {"live", "cover"};
    reel_video_rec v = reel_video_rec_empty();
    v.id = "v0";
    v.title = "Zero";
    v.description = "the first";
    v.media = "file:///v0.mp4";
    v.language = "en";
    v.type = "clip";
    v.categories = c0;
    v.n_categories = 2;
    v.tags = t0;
    v.n_tags = 2;
    v.duration_s = 120;
    v.published_at = 1.7e9;
    assert_int_equal(reel_dsbuild_add_video(b, &v, NULL, &d), 0);
    v = reel_video_rec_empty();
    v.id = "v1";
    v.title = "One";
    v.language = "fr";
    v.categories = c1;
    v.n_categories = 1;
    v.duration_s = 60;
    assert_int_equal(reel_dsbuild_add_video(b, &v, NULL, &d), 0);
    for (int i = 2; i < 5; i++) {
        char id[8], title[8];
        snprintf(id, sizeof id, "v%d", i);
        snprintf(title, sizeof title, "T%d", i);
        v = reel_video_rec_empty();
        v.id = id;
        v.title = title;
        v.categories = c0 + (i % 2);
        v.n_categories = 1;
        assert_int_equal(reel_dsbuild_add_video(b, &v, NULL, &d), 0);
    }
    reel_user_rec u = reel_user_rec_empty();
    u.id = "u0";
    u.age = 30;
    u.gender = "f";
    u.country = "de";
    u.occupation = "artist";
    u.zip = "10115";
    u.signed_up_at = 1.6e9;
    assert_int_equal(reel_dsbuild_add_user(b, &u, NULL, &d), 0);
    u = reel_user_rec_empty();
    u.id = "u1";
    u.gender = "m";
    assert_int_equal(reel_dsbuild_add_user(b, &u, NULL, &d), 0);
    reel_dsbuild_user_ref(b, "u2", 2);
    reel_dsbuild_user_ref(b, "u3", 2);
    reel_event_rec e = reel_event_rec_empty();
    e.user = 0;
    e.video = 1;
    e.type = REEL_EV_CLICK;
    e.ts = 1.7e9;
    assert_int_equal(reel_dsbuild_add_event(b, &e, &d), 0);
    assert_int_equal(reel_dsbuild_write(b, fx.dir, &d), 0);
    reel_dsbuild_free(b);
    assert_int_equal(reel_dataset_open(fx.dir, &fx.ds, &d), 0);
    return fx;
}

static void fixture_free(struct fixture *fx)
{
    reel_dataset_close(fx->ds);
    test_rmtree(fx->dir);
    free(fx->dir);
}

static reel_meta *new_meta(const struct fixture *fx)
{
    reel_meta *m;
    assert_int_equal(reel_meta_new(fx->ds, &m), 0);
    return m;
}

/* Two strings equal, NULL and "" both meaning missing. */
static void assert_same_str(const char *a, const char *b)
{
    assert_string_equal(a ? a : "", b ? b : "");
}

static void assert_same_f64(double a, double b)
{
    if (isnan(a))
        assert_true(isnan(b));
    else
        assert_true(a == b);
}

/* Video v of the meta, by record and by view, equals rec (whose lists
 * have no empty names). */
static void assert_video(const reel_meta *m, uint32_t v,
                         const reel_video_rec *rec)
{
    const char *names[2 * REEL_MAX_LIST];
    reel_video_rec got;
    assert_int_equal(reel_meta_video_names(m, v),
                     rec->n_categories + rec->n_tags);
    reel_meta_video_rec(m, v, &got, names);
    assert_string_equal(got.id, rec->id);
    assert_same_str(got.title, rec->title);
    assert_same_str(got.description, rec->description);
    assert_same_str(got.media, rec->media);
    assert_same_str(got.language, rec->language);
    assert_same_str(got.type, rec->type);
    assert_same_f64(got.duration_s, (float)rec->duration_s);
    assert_same_f64(got.published_at, rec->published_at);
    assert_int_equal(got.n_categories, rec->n_categories);
    for (size_t k = 0; k < rec->n_categories; k++)
        assert_string_equal(got.categories[k], rec->categories[k]);
    assert_int_equal(got.n_tags, rec->n_tags);
    for (size_t k = 0; k < rec->n_tags; k++)
        assert_string_equal(got.tags[k], rec->tags[k]);

    /* The view says the same. */
    const reel_videos *vid = reel_meta_videos(m);
    assert_true(v < vid->n);
    assert_string_equal(reel_strs_get(&vid->id, v, NULL), rec->id);
    assert_same_str(reel_strs_get(&vid->title, v, NULL), rec->title);
    assert_same_str(reel_strs_get(&vid->description, v, NULL),
                    rec->description);
    assert_same_str(reel_strs_get(&vid->media, v, NULL), rec->media);
    assert_same_str(
        reel_meta_dict_name(m, REEL_DICT_LANGUAGE, vid->language[v]),
        rec->language);
    assert_same_str(reel_meta_dict_name(m, REEL_DICT_VTYPE, vid->type[v]),
                    rec->type);
    assert_same_f64(vid->duration_s[v], (float)rec->duration_s);
    assert_same_f64(vid->published_at[v], rec->published_at);
    assert_int_equal(vid->cat_off[v + 1] - vid->cat_off[v], rec->n_categories);
    for (size_t k = 0; k < rec->n_categories; k++)
        assert_string_equal(reel_meta_dict_name(m, REEL_DICT_CATEGORY,
                                                vid->cat[vid->cat_off[v] + k]),
                            rec->categories[k]);
    assert_int_equal(vid->tag_off[v + 1] - vid->tag_off[v], rec->n_tags);
    for (size_t k = 0; k < rec->n_tags; k++)
        assert_string_equal(reel_meta_dict_name(m, REEL_DICT_TAG,
                                                vid->tag[vid->tag_off[v] + k]),
                            rec->tags[k]);
    assert_int_equal(reel_meta_find_video(m, rec->id, strlen(rec->id)), v);
}

static void assert_user(const reel_meta *m, uint32_t u,
                        const reel_user_rec *rec)
{
    reel_user_rec got;
    reel_meta_user_rec(m, u, &got);
    assert_string_equal(got.id, rec->id);
    assert_int_equal(got.age, rec->age);
    assert_same_str(got.gender, rec->gender);
    assert_same_str(got.country, rec->country);
    assert_same_str(got.occupation, rec->occupation);
    assert_same_str(got.zip, rec->zip);
    assert_same_f64(got.signed_up_at, rec->signed_up_at);
    const reel_users *us = reel_meta_users(m);
    assert_true(u < us->n);
    assert_int_equal(us->age[u], rec->age);
    assert_same_str(reel_meta_dict_name(m, REEL_DICT_GENDER, us->gender[u]),
                    rec->gender);
    assert_same_str(reel_meta_dict_name(m, REEL_DICT_ZIP, us->zip[u]),
                    rec->zip);
    assert_int_equal(reel_meta_find_user(m, rec->id, strlen(rec->id)), u);
}

/* Every row of a and b (two metas) is the same, dictionaries too. */
static void assert_same_meta(const reel_meta *a, const reel_meta *b)
{
    for (int k = 0; k < REEL_DICT__COUNT; k++) {
        assert_int_equal(reel_meta_dict_size(a, (enum reel_dict)k),
                         reel_meta_dict_size(b, (enum reel_dict)k));
        for (uint32_t i = 0; i < reel_meta_dict_size(a, (enum reel_dict)k); i++)
            assert_string_equal(reel_meta_dict_name(a, (enum reel_dict)k, i),
                                reel_meta_dict_name(b, (enum reel_dict)k, i));
    }
    const reel_videos *va = reel_meta_videos(a), *vb = reel_meta_videos(b);
    assert_int_equal(va->n, vb->n);
    for (uint32_t v = 0; v < va->n; v++) {
        const char *names[2 * REEL_MAX_LIST];
        reel_video_rec r;
        reel_meta_video_rec(a, v, &r, names);
        assert_video(b, v, &r);
        /* Dictionary ids, not only names, agree. */
        assert_int_equal(va->language[v], vb->language[v]);
        assert_int_equal(va->cat_off[v + 1] - va->cat_off[v],
                         vb->cat_off[v + 1] - vb->cat_off[v]);
        for (uint32_t k = va->cat_off[v]; k < va->cat_off[v + 1]; k++)
            assert_int_equal(va->cat[k],
                             vb->cat[vb->cat_off[v] + k - va->cat_off[v]]);
    }
    const reel_users *ua = reel_meta_users(a), *ub = reel_meta_users(b);
    assert_int_equal(ua->n, ub->n);
    for (uint32_t u = 0; u < ua->n; u++) {
        reel_user_rec r;
        reel_meta_user_rec(a, u, &r);
        assert_user(b, u, &r);
        assert_int_equal(ua->country[u], ub->country[u]);
        assert_int_equal(ua->occupation[u], ub->occupation[u]);
    }
}

/* --------------------------------------------------------------- tests */

static void new_meta_copies_the_dataset_tables(void **state)
{
    (void)state;
    struct fixture fx = make_ds();
    reel_meta *m = new_meta(&fx);
    const reel_videos *dv = reel_dataset_videos(fx.ds);
    const reel_users *du = reel_dataset_users(fx.ds);
    assert_int_equal(reel_meta_n_ds_videos(m), 5);
    assert_int_equal(reel_meta_n_ds_users(m), 4);
    assert_int_equal(reel_meta_videos(m)->n, 5);
    assert_int_equal(reel_meta_users(m)->n, 4);
    for (uint32_t v = 0; v < dv->n; v++) {
        const reel_videos *mv = reel_meta_videos(m);
        assert_string_equal(reel_strs_get(&mv->title, v, NULL),
                            reel_strs_get(&dv->title, v, NULL));
        assert_int_equal(mv->cat_off[v + 1], dv->cat_off[v + 1]);
        assert_int_equal(mv->language[v], dv->language[v]);
    }
    for (uint32_t u = 0; u < du->n; u++)
        assert_int_equal(reel_meta_users(m)->age[u], du->age[u]);
    static const char *const cats[] = {"music", "dance"};
    static const char *const tags[] = {"live", "cover"};
    reel_video_rec want = reel_video_rec_empty();
    want.id = "v0";
    want.title = "Zero";
    want.description = "the first";
    want.media = "file:///v0.mp4";
    want.language = "en";
    want.type = "clip";
    want.categories = cats;
    want.n_categories = 2;
    want.tags = tags;
    want.n_tags = 2;
    want.duration_s = 120;
    want.published_at = 1.7e9;
    assert_video(m, 0, &want);
    reel_user_rec wu = reel_user_rec_empty();
    wu.id = "u0";
    wu.age = 30;
    wu.gender = "f";
    wu.country = "de";
    wu.occupation = "artist";
    wu.zip = "10115";
    wu.signed_up_at = 1.6e9;
    assert_user(m, 0, &wu);
    wu = reel_user_rec_empty();
    wu.id = "u3";
    assert_user(m, 3, &wu);
    assert_string_equal(reel_meta_dict_name(m, REEL_DICT_CATEGORY, 2), "news");
    assert_null(reel_meta_dict_name(m, REEL_DICT_CATEGORY, 3));
    assert_null(reel_meta_dict_name(m, REEL_DICT_CATEGORY, REEL_NONE));
    assert_int_equal(reel_meta_find_video(m, "nope", 4), REEL_NONE);
    assert_int_equal(reel_meta_find_user(m, "u2", 2), 2);
    reel_meta_free(m);
    reel_meta_free(NULL);
    fixture_free(&fx);
}

static void put_video_adds_a_row_with_new_dictionary_ids(void **state)
{
    (void)state;
    struct fixture fx = make_ds();
    reel_meta *m = new_meta(&fx);
    static const char *const cats[] = {"jazz", "", "music"};
    static const char *const tags[] = {"cover"};
    reel_video_rec r = reel_video_rec_empty();
    r.id = "new1";
    r.title = "New";
    r.language = "es";
    r.type = "movie";
    r.categories = cats;
    r.n_categories = 3;
    r.tags = tags;
    r.n_tags = 1;
    r.duration_s = 30;
    uint32_t v;
    int is_new;
    reel_diag d;
    assert_int_equal(reel_meta_put_video(m, &r, &v, &is_new, &d), 0);
    assert_int_equal(v, 5);
    assert_true(is_new);
    const reel_videos *vid = reel_meta_videos(m);
    assert_int_equal(vid->n, 6);
    /* jazz after the dataset's three categories; the empty name is
     * skipped, as the builder does. */
    assert_int_equal(vid->cat_off[6] - vid->cat_off[5], 2);
    assert_int_equal(vid->cat[vid->cat_off[5]], 3);
    assert_int_equal(vid->cat[vid->cat_off[5] + 1], 0);
    assert_int_equal(vid->language[5], 2);
    assert_int_equal(vid->type[5], 1);
    assert_string_equal(reel_meta_dict_name(m, REEL_DICT_CATEGORY, 3), "jazz");
    assert_string_equal(reel_meta_dict_name(m, REEL_DICT_LANGUAGE, 2), "es");
    assert_int_equal(reel_meta_dict_size(m, REEL_DICT_CATEGORY), 4);
    assert_int_equal(reel_meta_find_video(m, "new1", 4), 5);
    /* The dataset rows are untouched and the dataset itself unchanged. */
    assert_string_equal(reel_strs_get(&vid->title, 4, NULL), "T4");
    assert_int_equal(reel_dataset_videos(fx.ds)->n, 5);
    /* A second new video gets the next number. */
    r.id = "new2";
    assert_int_equal(reel_meta_put_video(m, &r, &v, &is_new, &d), 0);
    assert_int_equal(v, 6);
    assert_true(is_new);
    assert_int_equal(reel_meta_dict_size(m, REEL_DICT_CATEGORY), 4);
    reel_meta_free(m);
    fixture_free(&fx);
}

static void put_video_replaces_every_field(void **state)
{
    (void)state;
    struct fixture fx = make_ds();
    reel_meta *m = new_meta(&fx);
    reel_diag d;
    static const char *const cats[] = {"news", "comedy", "music"};
    static const char *const tags[] = {"late", "live", "talk"};
    reel_video_rec r = reel_video_rec_empty();
    r.id = "v0";
    r.title = "Zero, a much longer title than before";
    r.description = "";
    r.media = "s3://bucket/v0";
    r.language = "fr";
    r.type = "show";
    r.categories = cats;
    r.n_categories = 3;
    r.tags = tags;
    r.n_tags = 3;
    r.duration_s = 99.5;
    r.published_at = 1.8e9;
    uint32_t v;
    int is_new;
    assert_int_equal(reel_meta_put_video(m, &r, &v, &is_new, &d), 0);
    assert_int_equal(v, 0);
    assert_false(is_new);
    assert_video(m, 0, &r);
    /* Later rows are intact after the first row's bytes moved. */
    static const char *const c1[] = {"news"};
    reel_video_rec w = reel_video_rec_empty();
    w.id = "v1";
    w.title = "One";
    w.language = "fr";
    w.categories = c1;
    w.n_categories = 1;
    w.duration_s = 60;
    assert_video(m, 1, &w);
    for (int i = 2; i < 5; i++) {
        const char *names[4];
        reel_video_rec g;
        reel_meta_video_rec(m, (uint32_t)i, &g, names);
        char t[8];
        snprintf(t, sizeof t, "T%d", i);
        assert_string_equal(g.title, t);
        assert_int_equal(g.n_categories, 1);
        assert_string_equal(g.categories[0], i % 2 ? "dance" : "music");
    }
    /* Missing fields in the record become missing. */
    reel_video_rec empty = reel_video_rec_empty();
    empty.id = "v0";
    assert_int_equal(reel_meta_put_video(m, &empty, &v, &is_new, &d), 0);
    assert_video(m, 0, &empty);
    assert_int_equal(reel_meta_videos(m)->cat_off[1], 0);
    assert_video(m, 1, &w);
    /* A middle row shrinks and grows. */
    r.id = "v2";
    assert_int_equal(reel_meta_put_video(m, &r, NULL, NULL, &d), 0);
    assert_video(m, 2, &r);
    assert_video(m, 1, &w);
    reel_meta_video_rec(m, 4, &w, (const char *[4]){0});
    assert_string_equal(w.title, "T4");
    reel_meta_free(m);
    fixture_free(&fx);
}

static void put_user_adds_and_replaces_users(void **state)
{
    (void)state;
    struct fixture fx = make_ds();
    reel_meta *m = new_meta(&fx);
    reel_diag d;
    reel_user_rec r = reel_user_rec_empty();
    r.id = "u1";
    r.age = 44;
    r.gender = "x";
    r.country = "fr";
    r.occupation = "doctor";
    r.zip = "75001";
    r.signed_up_at = 1.5e9;
    uint32_t u;
    int is_new;
    assert_int_equal(reel_meta_put_user(m, &r, &u, &is_new, &d), 0);
    assert_int_equal(u, 1);
    assert_false(is_new);
    assert_user(m, 1, &r);
    assert_int_equal(reel_meta_users(m)->gender[1], 2);
    assert_int_equal(reel_meta_users(m)->country[1], 1);
    r.id = "fresh";
    r.gender = "f";
    assert_int_equal(reel_meta_put_user(m, &r, &u, &is_new, &d), 0);
    assert_int_equal(u, 4);
    assert_true(is_new);
    assert_user(m, 4, &r);
    assert_int_equal(reel_meta_users(m)->gender[4], 0);
    /* Every field missing. */
    reel_user_rec e = reel_user_rec_empty();
    e.id = "u0";
    assert_int_equal(reel_meta_put_user(m, &e, NULL, NULL, &d), 0);
    assert_user(m, 0, &e);
    reel_meta_free(m);
    fixture_free(&fx);
}

static void user_ref_numbers_users_seen_only_in_events(void **state)
{
    (void)state;
    struct fixture fx = make_ds();
    reel_meta *m = new_meta(&fx);
    int is_new;
    assert_int_equal(reel_meta_user_ref(m, "u2", 2, &is_new), 2);
    assert_false(is_new);
    assert_int_equal(reel_meta_user_ref(m, "evt", 3, &is_new), 4);
    assert_true(is_new);
    assert_int_equal(reel_meta_user_ref(m, "evt", 3, &is_new), 4);
    assert_false(is_new);
    reel_user_rec e = reel_user_rec_empty();
    e.id = "evt";
    assert_user(m, 4, &e);
    /* The attributes arrive later: a replacement, not a new user. */
    reel_user_rec r = reel_user_rec_empty();
    r.id = "evt";
    r.age = 20;
    uint32_t u;
    reel_diag d;
    assert_int_equal(reel_meta_put_user(m, &r, &u, &is_new, &d), 0);
    assert_int_equal(u, 4);
    assert_false(is_new);
    assert_user(m, 4, &r);
    /* An id that is a suffix of one the meta holds, given from its own
     * memory. */
    uint32_t before = reel_meta_users(m)->n;
    for (int i = 0; i < 100; i++) {
        char id[16];
        snprintf(id, sizeof id, "pad%d", i);
        reel_meta_user_ref(m, id, strlen(id), NULL);
    }
    const char *tail = reel_strs_get(&reel_meta_users(m)->id, 4, NULL) + 1;
    assert_int_equal(reel_meta_user_ref(m, tail, 2, &is_new), before + 100);
    assert_true(is_new);
    assert_string_equal(
        reel_strs_get(&reel_meta_users(m)->id, before + 100, NULL), "vt");
    reel_meta_free(m);
    fixture_free(&fx);
}

static void invalid_records_are_refused_and_change_nothing(void **state)
{
    (void)state;
    struct fixture fx = make_ds();
    reel_meta *m = new_meta(&fx);
    reel_diag d;
    reel_diag_clear(&d);
    reel_video_rec r = reel_video_rec_empty();
    assert_int_equal(reel_meta_put_video(m, &r, NULL, NULL, &d), REEL_EFORMAT);
    assert_non_null(strstr(d.msg, "id"));
    r.id = "";
    assert_int_equal(reel_meta_put_video(m, &r, NULL, NULL, &d), REEL_EFORMAT);
    char *big = malloc(REEL_MAX_TITLE_LEN + 2);
    memset(big, 'a', REEL_MAX_TITLE_LEN + 1);
    big[REEL_MAX_TITLE_LEN + 1] = '\0';
    r.id = "v9";
    r.title = big;
    assert_int_equal(reel_meta_put_video(m, &r, NULL, NULL, &d), REEL_ETOOBIG);
    assert_non_null(strstr(d.msg, "title"));
    r.title = NULL;
    r.duration_s = -1;
    assert_int_equal(reel_meta_put_video(m, &r, NULL, NULL, &d), REEL_ERANGE);
    r.duration_s = NAN;
    r.published_at = INFINITY;
    assert_int_equal(reel_meta_put_video(m, &r, NULL, NULL, &d), REEL_ERANGE);
    r.published_at = NAN;
    const char *many[REEL_MAX_LIST + 1];
    for (int i = 0; i <= REEL_MAX_LIST; i++)
        many[i] = "brandnew";
    r.categories = many;
    r.n_categories = REEL_MAX_LIST + 1;
    assert_int_equal(reel_meta_put_video(m, &r, NULL, NULL, &d), REEL_ETOOBIG);
    r.n_categories = 1;
    big[REEL_MAX_WORD_LEN + 1] = '\0';
    r.language = big;
    assert_int_equal(reel_meta_put_video(m, &r, NULL, NULL, &d), REEL_ETOOBIG);
    assert_int_equal(reel_meta_videos(m)->n, 5);
    assert_int_equal(reel_meta_dict_size(m, REEL_DICT_CATEGORY), 3);
    assert_int_equal(reel_meta_find_video(m, "v9", 2), REEL_NONE);

    reel_user_rec u = reel_user_rec_empty();
    u.id = "u9";
    u.age = 151;
    assert_int_equal(reel_meta_put_user(m, &u, NULL, NULL, &d), REEL_ERANGE);
    assert_non_null(strstr(d.msg, "age"));
    u.age = -2;
    assert_int_equal(reel_meta_put_user(m, &u, NULL, NULL, &d), REEL_ERANGE);
    u.age = 20;
    u.zip = big;
    assert_int_equal(reel_meta_put_user(m, &u, NULL, NULL, &d), REEL_ETOOBIG);
    u.zip = NULL;
    u.signed_up_at = -INFINITY;
    assert_int_equal(reel_meta_put_user(m, &u, NULL, NULL, &d), REEL_ERANGE);
    assert_int_equal(reel_meta_users(m)->n, 4);
    assert_int_equal(reel_meta_find_user(m, "u9", 2), REEL_NONE);
    free(big);
    reel_meta_free(m);
    fixture_free(&fx);
}

static void a_record_read_back_can_be_put_again(void **state)
{
    (void)state;
    struct fixture fx = make_ds();
    reel_meta *m = new_meta(&fx);
    reel_diag d;
    /* Read v0 back (strings borrowed from the meta), change it, put it:
     * a new category at the front and a longer title force the meta's
     * memory to move while the record still points into it. */
    const char *names[8];
    reel_video_rec r;
    reel_meta_video_rec(m, 0, &r, names);
    const char *cats[3] = {"a-new-category", r.categories[0], r.categories[1]};
    r.categories = cats;
    r.n_categories = 3;
    const char *title = reel_strs_get(&reel_meta_videos(m)->title, 1, NULL);
    r.title = title; /* v1's title, from the column being rewritten */
    r.description = r.id + 1;
    assert_int_equal(reel_meta_put_video(m, &r, NULL, NULL, &d), 0);
    static const char *const want_cats[] = {"a-new-category", "music", "dance"};
    static const char *const want_tags[] = {"live", "cover"};
    reel_video_rec w = reel_video_rec_empty();
    w.id = "v0";
    w.title = "One";
    w.description = "0";
    w.media = "file:///v0.mp4";
    w.language = "en";
    w.type = "clip";
    w.categories = want_cats;
    w.n_categories = 3;
    w.tags = want_tags;
    w.n_tags = 2;
    w.duration_s = 120;
    w.published_at = 1.7e9;
    assert_video(m, 0, &w);
    /* A new video whose id is another's suffix, from the meta's memory. */
    reel_video_rec n = reel_video_rec_empty();
    n.id = reel_strs_get(&reel_meta_videos(m)->media, 0, NULL) + 8;
    assert_int_equal(reel_meta_put_video(m, &n, NULL, NULL, &d), 0);
    assert_int_equal(reel_meta_find_video(m, "v0.mp4", 6), 5);
    /* Users likewise. */
    reel_user_rec u;
    reel_meta_user_rec(m, 0, &u);
    u.id = u.zip + 1; /* "0115", a new user */
    u.country = "somewhere-new";
    uint32_t num;
    assert_int_equal(reel_meta_put_user(m, &u, &num, NULL, &d), 0);
    assert_int_equal(num, 4);
    reel_meta_user_rec(m, 4, &u);
    assert_string_equal(u.id, "0115");
    assert_string_equal(u.zip, "10115");
    assert_string_equal(u.country, "somewhere-new");
    reel_meta_free(m);
    fixture_free(&fx);
}

/* ------------------------------------------------- many puts vs a model */

enum { POOL_CATS = 40, POOL_TAGS = 25, POOL_LANGS = 8, MAX_C = 4, MAX_T = 3 };

struct model {
    char id[16], title[80], desc[80], media[40], lang[8], type[8];
    char cats[MAX_C][12], tags[MAX_T][12];
    int n_cats, n_tags, has_title, has_desc, has_media, has_lang, has_type;
    double dur, pub;
};

static void random_text(reel_rng *g, char *buf, size_t cap, const char *stem)
{
    size_t n = (size_t)reel_rng_below(g, cap - 12);
    int at = snprintf(buf, cap, "%s", stem);
    for (size_t i = 0; i < n && (size_t)at + 1 < cap; i++)
        buf[at++] = (char)('a' + reel_rng_below(g, 26));
    buf[at] = '\0';
}

static void random_model(reel_rng *g, struct model *x, const char *id)
{
    memset(x, 0, sizeof *x);
    snprintf(x->id, sizeof x->id, "%s", id);
    x->has_title = reel_rng_below(g, 4) != 0;
    random_text(g, x->title, sizeof x->title, "t");
    x->has_desc = reel_rng_below(g, 2) != 0;
    random_text(g, x->desc, sizeof x->desc, "d");
    x->has_media = reel_rng_below(g, 2) != 0;
    random_text(g, x->media, sizeof x->media, "m");
    x->has_lang = reel_rng_below(g, 3) != 0;
    snprintf(x->lang, sizeof x->lang, "l%d",
             (int)reel_rng_below(g, POOL_LANGS));
    x->has_type = reel_rng_below(g, 2) != 0;
    snprintf(x->type, sizeof x->type, "y%d", (int)reel_rng_below(g, 3));
    x->n_cats = (int)reel_rng_below(g, MAX_C + 1);
    for (int k = 0; k < x->n_cats; k++)
        snprintf(x->cats[k], sizeof x->cats[k], "c%d",
                 (int)reel_rng_below(g, POOL_CATS));
    x->n_tags = (int)reel_rng_below(g, MAX_T + 1);
    for (int k = 0; k < x->n_tags; k++)
        snprintf(x->tags[k], sizeof x->tags[k], "g%d",
                 (int)reel_rng_below(g, POOL_TAGS));
    x->dur = reel_rng_below(g, 5) ? (double)reel_rng_below(g, 7200) : NAN;
    x->pub =
        reel_rng_below(g, 5) ? 1.6e9 + (double)reel_rng_below(g, 1000000) : NAN;
}

/* The record of a model (pointers into x and lists). */
static reel_video_rec model_rec(const struct model *x, const char **cats,
                                const char **tags)
{
    reel_video_rec r = reel_video_rec_empty();
    r.id = x->id;
    r.title = x->has_title ? x->title : NULL;
    r.description = x->has_desc ? x->desc : NULL;
    r.media = x->has_media ? x->media : NULL;
    r.language = x->has_lang ? x->lang : NULL;
    r.type = x->has_type ? x->type : NULL;
    for (int k = 0; k < x->n_cats; k++)
        cats[k] = x->cats[k];
    for (int k = 0; k < x->n_tags; k++)
        tags[k] = x->tags[k];
    r.categories = cats;
    r.n_categories = (size_t)x->n_cats;
    r.tags = tags;
    r.n_tags = (size_t)x->n_tags;
    r.duration_s = x->dur;
    r.published_at = x->pub;
    return r;
}

static void assert_model(const reel_meta *m, const struct model *xs, uint32_t n)
{
    assert_int_equal(reel_meta_videos(m)->n, n);
    for (uint32_t v = 0; v < n; v++) {
        const char *cats[MAX_C], *tags[MAX_T];
        reel_video_rec r = model_rec(&xs[v], cats, tags);
        assert_video(m, v, &r);
    }
}

/* A meta after 10,000 seeded puts (new videos, replacements of dataset
 * and added rows, new users, user refs), and the model of its videos. */
static reel_meta *random_meta(const struct fixture *fx, struct model **xs_out,
                              uint32_t *n_out, int check_every)
{
    reel_meta *m = new_meta(fx);
    reel_rng g;
    reel_rng_seed(&g, 7);
    enum { PUTS = 10000 };
    struct model *xs = calloc(5 + PUTS, sizeof *xs);
    assert_non_null(xs);
    uint32_t n = 5;
    for (uint32_t v = 0; v < n; v++) {
        /* The model of the dataset rows, from the meta itself. */
        const char *names[8];
        reel_video_rec r;
        reel_meta_video_rec(m, v, &r, names);
        struct model *x = &xs[v];
        snprintf(x->id, sizeof x->id, "%s", r.id);
        x->has_title = r.title != NULL;
        snprintf(x->title, sizeof x->title, "%s", r.title ? r.title : "");
        x->has_desc = r.description != NULL;
        snprintf(x->desc, sizeof x->desc, "%s",
                 r.description ? r.description : "");
        x->has_media = r.media != NULL;
        snprintf(x->media, sizeof x->media, "%s", r.media ? r.media : "");
        x->has_lang = r.language != NULL;
        snprintf(x->lang, sizeof x->lang, "%s", r.language ? r.language : "");
        x->has_type = r.type != NULL;
        snprintf(x->type, sizeof x->type, "%s", r.type ? r.type : "");
        x->n_cats = (int)r.n_categories;
        for (int k = 0; k < x->n_cats; k++)
            snprintf(x->cats[k], sizeof x->cats[k], "%s", r.categories[k]);
        x->n_tags = (int)r.n_tags;
        for (int k = 0; k < x->n_tags; k++)
            snprintf(x->tags[k], sizeof x->tags[k], "%s", r.tags[k]);
        x->dur = r.duration_s;
        x->pub = r.published_at;
    }
    reel_diag d;
    for (int i = 0; i < PUTS; i++) {
        uint64_t what = reel_rng_below(&g, 10);
        if (what < 6) {
            char id[16];
            snprintf(id, sizeof id, "n%d", i);
            random_model(&g, &xs[n], id);
            const char *cats[MAX_C], *tags[MAX_T];
            reel_video_rec r = model_rec(&xs[n], cats, tags);
            uint32_t v;
            int is_new;
            assert_int_equal(reel_meta_put_video(m, &r, &v, &is_new, &d), 0);
            assert_int_equal(v, n);
            assert_true(is_new);
            n++;
        } else if (what < 9) {
            /* Dataset rows often, so that many of them are replaced. */
            uint32_t v = reel_rng_below(&g, 3) == 0
                             ? (uint32_t)reel_rng_below(&g, 5)
                             : (uint32_t)reel_rng_below(&g, n);
            char id[16];
            snprintf(id, sizeof id, "%s", xs[v].id);
            random_model(&g, &xs[v], id);
            const char *cats[MAX_C], *tags[MAX_T];
            reel_video_rec r = model_rec(&xs[v], cats, tags);
            uint32_t got;
            int is_new;
            assert_int_equal(reel_meta_put_video(m, &r, &got, &is_new, &d), 0);
            assert_int_equal(got, v);
            assert_false(is_new);
        } else {
            char id[16];
            snprintf(id, sizeof id, "w%d", i);
            if (reel_rng_below(&g, 2)) {
                reel_meta_user_ref(m, id, strlen(id), NULL);
            } else {
                reel_user_rec u = reel_user_rec_empty();
                u.id = reel_rng_below(&g, 4) ? id : "u1";
                u.age = (int)reel_rng_below(&g, 100);
                char zip[16];
                snprintf(zip, sizeof zip, "z%d", (int)reel_rng_below(&g, 50));
                u.zip = zip;
                u.country = reel_rng_below(&g, 2) ? "de" : "it";
                assert_int_equal(reel_meta_put_user(m, &u, NULL, NULL, &d), 0);
            }
        }
        if (check_every && (i + 1) % check_every == 0)
            assert_model(m, xs, n);
    }
    *xs_out = xs;
    *n_out = n;
    return m;
}

static void views_stay_right_after_ten_thousand_puts(void **state)
{
    (void)state;
    struct fixture fx = make_ds();
    struct model *xs;
    uint32_t n;
    reel_meta *m = random_meta(&fx, &xs, &n, 2500);
    assert_true(n > 5000);
    assert_model(m, xs, n);
    /* The dictionaries grew past the dataset's, each name once. */
    assert_true(reel_meta_dict_size(m, REEL_DICT_CATEGORY) > 3);
    for (uint32_t i = 0; i < reel_meta_dict_size(m, REEL_DICT_CATEGORY); i++)
        for (uint32_t j = 0; j < i; j++)
            assert_true(strcmp(reel_meta_dict_name(m, REEL_DICT_CATEGORY, i),
                               reel_meta_dict_name(m, REEL_DICT_CATEGORY, j)));
    free(xs);
    reel_meta_free(m);
    fixture_free(&fx);
}

/* ------------------------------------------------------------ snapshots */

static char *save_meta(const reel_meta *m, const char *dir, const char *name,
                       const char *prefix)
{
    char *path = test_path(dir, name);
    reel_secfile_writer *w;
    reel_diag d;
    assert_int_equal(reel_secfile_writer_open(path, "snapshot", &w, &d), 0);
    assert_int_equal(reel_meta_save(m, w, prefix, &d), 0);
    assert_int_equal(reel_secfile_writer_commit(w, &d), 0);
    return path;
}

static reel_meta *load_meta(const struct fixture *fx, const char *path,
                            const char *prefix)
{
    reel_secfile *f;
    reel_diag d;
    assert_int_equal(reel_secfile_open(path, "snapshot", 0, &f, &d), 0);
    reel_meta *m = new_meta(fx);
    int rc = reel_meta_load(m, f, prefix, &d);
    if (rc)
        fprintf(stderr, "load: %s\n", d.msg);
    assert_int_equal(rc, 0);
    reel_secfile_close(f);
    return m;
}

static void save_load_round_trips_puts_and_new_names(void **state)
{
    (void)state;
    struct fixture fx = make_ds();
    struct model *xs;
    uint32_t n;
    reel_meta *m = random_meta(&fx, &xs, &n, 0);
    char *path = save_meta(m, fx.dir, "snap.reel", "meta.");
    reel_meta *l = load_meta(&fx, path, "meta.");
    assert_same_meta(m, l);
    assert_model(l, xs, n);
    /* The loaded meta remembers which dataset rows were replaced: a
     * second round trip keeps them. */
    char *path2 = save_meta(l, fx.dir, "snap2.reel", "m.");
    reel_meta *l2 = load_meta(&fx, path2, "m.");
    assert_same_meta(m, l2);
    /* Puts continue the same numbering after a load. */
    reel_video_rec r = reel_video_rec_empty();
    r.id = "after";
    static const char *const cats[] = {"after-cat"};
    r.categories = cats;
    r.n_categories = 1;
    uint32_t v1, v2;
    reel_diag d;
    assert_int_equal(reel_meta_put_video(m, &r, &v1, NULL, &d), 0);
    assert_int_equal(reel_meta_put_video(l2, &r, &v2, NULL, &d), 0);
    assert_int_equal(v1, v2);
    assert_same_meta(m, l2);
    reel_meta_free(l2);
    free(path2);
    reel_meta_free(l);
    free(path);
    free(xs);
    reel_meta_free(m);
    fixture_free(&fx);
}

static void an_unchanged_meta_saves_empty_sections(void **state)
{
    (void)state;
    struct fixture fx = make_ds();
    reel_meta *m = new_meta(&fx);
    char *path = save_meta(m, fx.dir, "snap.reel", "meta.");
    reel_secfile *f;
    reel_diag d;
    assert_int_equal(reel_secfile_open(path, "snapshot", 0, &f, &d), 0);
    const reel_section *s = reel_secfile_find(f, "meta.video.row");
    assert_non_null(s);
    assert_int_equal(s->count, 0);
    reel_secfile_close(f);
    reel_meta *l = load_meta(&fx, path, "meta.");
    assert_same_meta(m, l);
    reel_meta_free(l);
    free(path);
    reel_meta_free(m);
    fixture_free(&fx);
}

/* A small meta with one of everything: a replaced dataset video and user,
 * an added video and user with new dictionary names. */
static reel_meta *small_meta(const struct fixture *fx)
{
    reel_meta *m = new_meta(fx);
    reel_diag d;
    static const char *const cats[] = {"jazz", "music"};
    static const char *const tags[] = {"new-tag"};
    reel_video_rec r = reel_video_rec_empty();
    r.id = "v1";
    r.title = "One again";
    r.language = "de";
    r.categories = cats;
    r.n_categories = 2;
    r.tags = tags;
    r.n_tags = 1;
    r.duration_s = 10;
    assert_int_equal(reel_meta_put_video(m, &r, NULL, NULL, &d), 0);
    r.id = "added";
    r.title = "Added";
    assert_int_equal(reel_meta_put_video(m, &r, NULL, NULL, &d), 0);
    reel_user_rec u = reel_user_rec_empty();
    u.id = "u2";
    u.age = 33;
    u.gender = "nb";
    assert_int_equal(reel_meta_put_user(m, &u, NULL, NULL, &d), 0);
    u.id = "fresh";
    assert_int_equal(reel_meta_put_user(m, &u, NULL, NULL, &d), 0);
    return m;
}

/* Opens path copy-on-write, lets `spoil` damage section `name` in
 * memory, loads, and expects rc with `name` in the message. */
static void expect_refused(const struct fixture *fx, const char *path,
                           const char *name, void (*spoil)(void *data),
                           int want_rc, const char *want_in_msg)
{
    reel_secfile *f;
    reel_diag d;
    assert_int_equal(
        reel_secfile_open(path, "snapshot", REEL_SECFILE_WRITABLE, &f, &d), 0);
    const reel_section *s = reel_secfile_find(f, name);
    assert_non_null(s);
    spoil(reel_secfile_mutable(f, s));
    reel_meta *m = new_meta(fx);
    reel_diag_clear(&d);
    int rc = reel_meta_load(m, f, "meta.", &d);
    if (rc != want_rc || !strstr(d.msg, want_in_msg))
        fprintf(stderr, "%s: rc %d, message \"%s\"\n", name, rc, d.msg);
    assert_int_equal(rc, want_rc);
    assert_non_null(strstr(d.msg, want_in_msg));
    reel_meta_free(m);
    reel_secfile_close(f);
}

static void spoil_u64_0(void *p)
{
    ((uint64_t *)p)[0] = 2;
}
static void spoil_u64_1(void *p)
{
    ((uint64_t *)p)[1] += 1;
}
static void spoil_u64_3(void *p)
{
    ((uint64_t *)p)[3] = 4;
}
static void spoil_u32_0_big(void *p)
{
    ((uint32_t *)p)[0] = 1000;
}
static void spoil_swap_rows(void *p)
{
    uint32_t *r = p, t = r[0];
    r[0] = r[1];
    r[1] = t;
}
static void spoil_first_byte(void *p)
{
    ((char *)p)[0] = 'X';
}
static void spoil_nul(void *p)
{
    ((char *)p)[0] = '\0';
}
static void spoil_f32_neg(void *p)
{
    ((float *)p)[0] = -1;
}
static void spoil_i16_age(void *p)
{
    ((int16_t *)p)[0] = 200;
}
static void spoil_off_last(void *p)
{
    ((uint32_t *)p)[2] = 7;
}
static void spoil_u64_off(void *p)
{
    ((uint64_t *)p)[1] = 1;
}

static void damaged_sections_are_refused_with_their_name(void **state)
{
    (void)state;
    struct fixture fx = make_ds();
    reel_meta *m = small_meta(&fx);
    char *path = save_meta(m, fx.dir, "snap.reel", "meta.");
    /* The file as written loads. */
    reel_meta *l = load_meta(&fx, path, "meta.");
    assert_same_meta(m, l);
    reel_meta_free(l);

    expect_refused(&fx, path, "meta.head", spoil_u64_0, REEL_EVERSION,
                   "meta.head");
    expect_refused(&fx, path, "meta.head", spoil_u64_1, REEL_ECORRUPT,
                   "another dataset");
    expect_refused(&fx, path, "meta.head", spoil_u64_3, REEL_ECORRUPT,
                   "meta.head");
    expect_refused(&fx, path, "meta.video.row", spoil_u32_0_big, REEL_ECORRUPT,
                   "meta.video.row");
    expect_refused(&fx, path, "meta.video.row", spoil_swap_rows, REEL_ECORRUPT,
                   "meta.video.row");
    expect_refused(&fx, path, "meta.video.id", spoil_first_byte, REEL_ECORRUPT,
                   "meta.video.id");
    expect_refused(&fx, path, "meta.video.title", spoil_nul, REEL_ECORRUPT,
                   "meta.video.title");
    expect_refused(&fx, path, "meta.video.language", spoil_u32_0_big,
                   REEL_ECORRUPT, "meta.video.language");
    expect_refused(&fx, path, "meta.video.cat", spoil_u32_0_big, REEL_ECORRUPT,
                   "meta.video.cat");
    expect_refused(&fx, path, "meta.video.tag.off", spoil_off_last,
                   REEL_ECORRUPT, "meta.video.tag.off");
    expect_refused(&fx, path, "meta.video.duration", spoil_f32_neg,
                   REEL_ECORRUPT, "meta.video.duration");
    expect_refused(&fx, path, "meta.video.title.off", spoil_u64_off,
                   REEL_ECORRUPT, "meta.video.title");
    expect_refused(&fx, path, "meta.dict.category", spoil_nul, REEL_ECORRUPT,
                   "meta.dict.category");
    expect_refused(&fx, path, "meta.user.age", spoil_i16_age, REEL_ECORRUPT,
                   "meta.user.age");
    expect_refused(&fx, path, "meta.user.gender", spoil_u32_0_big,
                   REEL_ECORRUPT, "meta.user.gender");
    expect_refused(&fx, path, "meta.user.id", spoil_first_byte, REEL_ECORRUPT,
                   "meta.user.id");

    /* A name the dataset already has, given as a new one. */
    {
        reel_secfile *f;
        reel_diag d;
        assert_int_equal(
            reel_secfile_open(path, "snapshot", REEL_SECFILE_WRITABLE, &f, &d),
            0);
        const reel_section *s = reel_secfile_find(f, "meta.dict.category");
        char *name = reel_secfile_mutable(f, s); /* "jazz" -> "news" */
        assert_int_equal(s->length, 5);
        memcpy(name, "news", 4);
        reel_meta *x = new_meta(&fx);
        assert_int_equal(reel_meta_load(x, f, "meta.", &d), REEL_ECORRUPT);
        assert_non_null(strstr(d.msg, "already"));
        reel_meta_free(x);
        reel_secfile_close(f);
    }
    /* Sections under another prefix are missing. */
    {
        reel_secfile *f;
        reel_diag d;
        assert_int_equal(reel_secfile_open(path, "snapshot", 0, &f, &d), 0);
        reel_meta *x = new_meta(&fx);
        assert_int_equal(reel_meta_load(x, f, "other.", &d), REEL_ECORRUPT);
        assert_non_null(strstr(d.msg, "other.head"));
        reel_meta_free(x);
        reel_secfile_close(f);
    }
    free(path);
    reel_meta_free(m);
    fixture_free(&fx);
}

static void a_snapshot_of_another_dataset_is_refused(void **state)
{
    (void)state;
    struct fixture fx = make_ds();
    reel_meta *m = small_meta(&fx);
    char *path = save_meta(m, fx.dir, "snap.reel", "meta.");
    /* Another dataset: one video. */
    struct fixture other = {.dir = test_tmpdir()};
    reel_dsbuild *b;
    reel_dsbuild_new(&b);
    reel_diag d;
    reel_video_rec v = reel_video_rec_empty();
    v.id = "only";
    assert_int_equal(reel_dsbuild_add_video(b, &v, NULL, &d), 0);
    assert_int_equal(reel_dsbuild_write(b, other.dir, &d), 0);
    reel_dsbuild_free(b);
    assert_int_equal(reel_dataset_open(other.dir, &other.ds, &d), 0);
    reel_secfile *f;
    assert_int_equal(reel_secfile_open(path, "snapshot", 0, &f, &d), 0);
    reel_meta *x = new_meta(&other);
    assert_int_equal(reel_meta_load(x, f, "meta.", &d), REEL_ECORRUPT);
    assert_non_null(strstr(d.msg, "another dataset"));
    reel_meta_free(x);
    reel_secfile_close(f);
    fixture_free(&other);
    free(path);
    reel_meta_free(m);
    fixture_free(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(new_meta_copies_the_dataset_tables),
        cmocka_unit_test(put_video_adds_a_row_with_new_dictionary_ids),
        cmocka_unit_test(put_video_replaces_every_field),
        cmocka_unit_test(put_user_adds_and_replaces_users),
        cmocka_unit_test(user_ref_numbers_users_seen_only_in_events),
        cmocka_unit_test(invalid_records_are_refused_and_change_nothing),
        cmocka_unit_test(a_record_read_back_can_be_put_again),
        cmocka_unit_test(views_stay_right_after_ten_thousand_puts),
        cmocka_unit_test(save_load_round_trips_puts_and_new_names),
        cmocka_unit_test(an_unchanged_meta_saves_empty_sections),
        cmocka_unit_test(damaged_sections_are_refused_with_their_name),
        cmocka_unit_test(a_snapshot_of_another_dataset_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
