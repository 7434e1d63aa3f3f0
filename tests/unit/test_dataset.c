/* Unit tests of the dataset builder and its binary form
 * (docs/formats/dataset.md): round trip, time order, validation. */
#include "testutil.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/dataset.h"

static void build_small(reel_dsbuild **out)
{
    reel_dsbuild *b;
    reel_dsbuild_new(&b);
    reel_diag d;
    const char *cats[] = {"Drama", "Comedy"};
    const char *tags[] = {"funny"};
    reel_video_rec v = reel_video_rec_empty();
    v.id = "v1";
    v.title = "First";
    v.description = "A film";
    v.language = "en";
    v.type = "movie";
    v.categories = cats;
    v.n_categories = 2;
    v.tags = tags;
    v.n_tags = 1;
    v.duration_s = 5400;
    v.published_at = 1.5e9;
    v.media = "s3://bucket/v1.mp4";
    uint32_t idx;
    assert_int_equal(reel_dsbuild_add_video(b, &v, &idx, &d), 0);
    assert_int_equal(idx, 0);
    v = reel_video_rec_empty();
    v.id = "v2";
    v.categories = cats + 1;
    v.n_categories = 1;
    assert_int_equal(reel_dsbuild_add_video(b, &v, &idx, &d), 0);
    assert_int_equal(idx, 1);
    assert_int_equal(reel_dsbuild_add_video(b, &v, &idx, &d), REEL_EEXISTS);
    assert_non_null(strstr(d.msg, "v2"));

    reel_user_rec u = reel_user_rec_empty();
    u.id = "alice";
    u.age = 34;
    u.gender = "F";
    u.country = "FR";
    u.zip = "75001";
    u.signed_up_at = 1.4e9;
    assert_int_equal(reel_dsbuild_add_user(b, &u, &idx, &d), 0);
    uint32_t bob = reel_dsbuild_user_ref(b, "bob", 3);
    assert_int_equal(bob, 1);
    assert_int_equal(reel_dsbuild_add_user(b, &u, &idx, &d), REEL_EEXISTS);

    /* Out of time order on purpose, with a tie. */
    double ts[] = {300, 100, 200, 100};
    for (int i = 0; i < 4; i++) {
        reel_event_rec e = reel_event_rec_empty();
        e.user = i % 2;
        e.video = i / 2;
        e.type = i == 3 ? REEL_EV_RATING : REEL_EV_WATCH;
        e.ts = ts[i];
        if (e.type == REEL_EV_RATING)
            e.rating = 4.5;
        else
            e.watch_s = 10.0 * (i + 1);
        e.request_id = i == 2 ? "req-2" : NULL;
        assert_int_equal(reel_dsbuild_add_event(b, &e, &d), 0);
    }
    reel_dsbuild_set_meta(b, "{\"source\":\"test\"}");
    *out = b;
}

static void dataset_round_trips_every_column(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_dsbuild *b;
    build_small(&b);
    reel_diag d;
    assert_int_equal(reel_dsbuild_write(b, dir, &d), 0);
    reel_dsbuild_free(b);

    reel_dataset *ds;
    assert_int_equal(reel_dataset_open(dir, &ds, &d), 0);
    const reel_videos *v = reel_dataset_videos(ds);
    const reel_users *u = reel_dataset_users(ds);
    const reel_events *e = reel_dataset_events(ds);
    const reel_strs *cats = reel_dataset_dict(ds, REEL_DICT_CATEGORY);
    assert_int_equal(v->n, 2);
    assert_string_equal(reel_strs_get(&v->id, 0, NULL), "v1");
    assert_string_equal(reel_strs_get(&v->title, 0, NULL), "First");
    assert_string_equal(reel_strs_get(&v->title, 1, NULL), "");
    assert_string_equal(reel_strs_get(&v->media, 0, NULL),
                        "s3://bucket/v1.mp4");
    assert_int_equal(v->cat_off[1] - v->cat_off[0], 2);
    assert_string_equal(reel_strs_get(cats, v->cat[v->cat_off[0]], NULL),
                        "Drama");
    assert_string_equal(reel_strs_get(cats, v->cat[v->cat_off[1]], NULL),
                        "Comedy");
    assert_int_equal(v->tag_off[2] - v->tag_off[1], 0);
    assert_string_equal(reel_strs_get(reel_dataset_dict(ds, REEL_DICT_LANGUAGE),
                                      v->language[0], NULL),
                        "en");
    assert_int_equal(v->language[1], REEL_NONE);
    assert_true(v->duration_s[0] == 5400.0f);
    assert_true(isnan(v->duration_s[1]));
    assert_true(v->published_at[0] == 1.5e9);

    assert_int_equal(u->n, 2);
    assert_int_equal(u->age[0], 34);
    assert_int_equal(u->age[1], -1);
    assert_string_equal(
        reel_strs_get(reel_dataset_dict(ds, REEL_DICT_ZIP), u->zip[0], NULL),
        "75001");
    assert_int_equal(u->gender[1], REEL_NONE);
    assert_int_equal(reel_dataset_find_user(ds, "bob", 3), 1);
    assert_int_equal(reel_dataset_find_video(ds, "v2", 2), 1);
    assert_int_equal(reel_dataset_find_video(ds, "v3", 2), REEL_NONE);

    /* Sorted by time; the tie at 100 keeps input order (event 1, then 3). */
    assert_int_equal(e->n, 4);
    assert_true(e->ts[0] == 100 && e->ts[1] == 100 && e->ts[2] == 200 &&
                e->ts[3] == 300);
    assert_int_equal(e->type[0], REEL_EV_WATCH);
    assert_true(e->watch_s[0] == 20.0f);
    assert_int_equal(e->type[1], REEL_EV_RATING);
    assert_true(e->rating[1] == 4.5f);
    assert_true(isnan(e->watch_s[1]));
    assert_int_equal(e->user[3], 0);
    assert_int_equal(e->id.n, 0); /* no event had an id */
    assert_int_equal(e->request_id.n, 4);
    assert_string_equal(reel_strs_get(&e->request_id, 2, NULL), "req-2");
    assert_string_equal(reel_strs_get(&e->request_id, 0, NULL), "");
    assert_string_equal(reel_dataset_meta(ds), "{\"source\":\"test\"}");
    reel_dataset_close(ds);
    test_rmtree(dir);
    free(dir);
}

static void builder_validates_records(void **state)
{
    (void)state;
    reel_dsbuild *b;
    reel_dsbuild_new(&b);
    reel_diag d;
    reel_video_rec v = reel_video_rec_empty();
    assert_int_equal(reel_dsbuild_add_video(b, &v, NULL, &d), REEL_EFORMAT);
    char long_id[REEL_MAX_ID_LEN + 2];
    memset(long_id, 'a', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    v.id = long_id;
    assert_int_equal(reel_dsbuild_add_video(b, &v, NULL, &d), REEL_ETOOBIG);
    v.id = "ok";
    v.duration_s = -5;
    assert_int_equal(reel_dsbuild_add_video(b, &v, NULL, &d), REEL_ERANGE);
    v.duration_s = NAN;
    assert_int_equal(reel_dsbuild_add_video(b, &v, NULL, &d), 0);
    reel_user_rec u = reel_user_rec_empty();
    u.id = "u";
    u.age = 400;
    assert_int_equal(reel_dsbuild_add_user(b, &u, NULL, &d), REEL_ERANGE);
    uint32_t user = reel_dsbuild_user_ref(b, "u", 1);
    reel_event_rec e = reel_event_rec_empty();
    e.user = user;
    e.video = 0;
    e.type = REEL_EV_CLICK;
    assert_int_equal(reel_dsbuild_add_event(b, &e, &d), REEL_EFORMAT);
    e.ts = 1;
    e.video = 7;
    assert_int_equal(reel_dsbuild_add_event(b, &e, &d), REEL_EINVAL);
    e.video = 0;
    e.watch_s = -1;
    assert_int_equal(reel_dsbuild_add_event(b, &e, &d), REEL_ERANGE);
    e.watch_s = NAN;
    assert_int_equal(reel_dsbuild_add_event(b, &e, &d), 0);
    reel_dsbuild_free(b);
}

static void empty_dataset_round_trips(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_dsbuild *b;
    reel_dsbuild_new(&b);
    reel_diag d;
    assert_int_equal(reel_dsbuild_write(b, dir, &d), 0);
    reel_dsbuild_free(b);
    reel_dataset *ds;
    assert_int_equal(reel_dataset_open(dir, &ds, &d), 0);
    assert_int_equal(reel_dataset_videos(ds)->n, 0);
    assert_int_equal(reel_dataset_events(ds)->n, 0);
    reel_dataset_close(ds);
    test_rmtree(dir);
    free(dir);
}

static void damaged_dataset_is_refused(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_dsbuild *b;
    build_small(&b);
    reel_diag d;
    assert_int_equal(reel_dsbuild_write(b, dir, &d), 0);
    reel_dsbuild_free(b);
    char *path = test_path(dir, REEL_DATASET_FILE);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size / 2), 0);
    reel_dataset *ds;
    assert_int_equal(reel_dataset_open(dir, &ds, &d), REEL_ECORRUPT);
    assert_non_null(strstr(d.msg, "truncated"));
    char *empty = test_tmpdir();
    assert_int_equal(reel_dataset_open(empty, &ds, &d), REEL_ENOENT);
    test_rmtree(empty);
    free(empty);
    free(path);
    test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dataset_round_trips_every_column),
        cmocka_unit_test(builder_validates_records),
        cmocka_unit_test(empty_dataset_round_trips),
        cmocka_unit_test(damaged_dataset_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
