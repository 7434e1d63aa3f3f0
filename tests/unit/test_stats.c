/* Unit tests of `reel stats`' numbers on a dataset small enough to count
 * by hand. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "data/stats.h"

/* 3 users, 4 videos; user 0 has 6 interactions, user 1 has 2 (on the same
 * video twice), user 2 none; plus 5 impressions that do not count. */
static reel_dataset *make(char *dir)
{
    reel_dsbuild *b;
    reel_dsbuild_new(&b);
    reel_diag d;
    const char *drama[] = {"Drama"}, *comedy[] = {"Comedy", "Drama"};
    for (int i = 0; i < 4; i++) {
        char id[8];
        snprintf(id, sizeof id, "v%d", i);
        reel_video_rec v = reel_video_rec_empty();
        v.id = id;
        v.categories = i < 3 ? drama : comedy;
        v.n_categories = 1;
        assert_int_equal(reel_dsbuild_add_video(b, &v, NULL, &d), 0);
    }
    uint32_t u[3] = {reel_dsbuild_user_ref(b, "a", 1),
                     reel_dsbuild_user_ref(b, "b", 1),
                     reel_dsbuild_user_ref(b, "c", 1)};
    struct {
        int user, video, type;
    } ev[] = {
        {0, 0, REEL_EV_PLAY},       {0, 1, REEL_EV_PLAY},
        {0, 2, REEL_EV_PLAY},       {0, 3, REEL_EV_CLICK},
        {0, 3, REEL_EV_LIKE},       {0, 0, REEL_EV_WATCH},
        {1, 3, REEL_EV_CLICK},      {1, 3, REEL_EV_PLAY},
        {2, 0, REEL_EV_IMPRESSION}, {2, 1, REEL_EV_IMPRESSION},
        {2, 2, REEL_EV_IMPRESSION}, {2, 3, REEL_EV_IMPRESSION},
        {1, 0, REEL_EV_IMPRESSION},
    };
    for (size_t i = 0; i < sizeof ev / sizeof ev[0]; i++) {
        reel_event_rec e = reel_event_rec_empty();
        e.user = u[ev[i].user];
        e.video = (uint32_t)ev[i].video;
        e.type = ev[i].type;
        e.ts = 1e9 + 86400.0 * (double)i;
        assert_int_equal(reel_dsbuild_add_event(b, &e, &d), 0);
    }
    assert_int_equal(reel_dsbuild_write(b, dir, &d), 0);
    reel_dsbuild_free(b);
    reel_dataset *ds;
    assert_int_equal(reel_dataset_open(dir, &ds, &d), 0);
    return ds;
}

static void stats_count_by_hand(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_dataset *ds = make(dir);
    reel_stats s;
    reel_stats_compute(ds, &s);
    assert_int_equal(s.n_videos, 4);
    assert_int_equal(s.n_users, 3);
    assert_int_equal(s.n_events, 13);
    assert_int_equal(s.per_type[REEL_EV_IMPRESSION], 5);
    assert_int_equal(s.per_type[REEL_EV_PLAY], 4);
    assert_true(s.ts_max - s.ts_min == 12 * 86400.0);
    /* Per user: 0, 2, 6. */
    assert_true(s.per_user.q[0] == 0 && s.per_user.q[2] == 2 &&
                s.per_user.q[6] == 6);
    assert_int_equal(s.per_user.n_zero, 1);
    assert_true(fabs(s.per_user.mean - 8.0 / 3.0) < 1e-12);
    /* Per video: v0 2, v1 1, v2 1, v3 4. */
    assert_true(s.per_video.q[0] == 1 && s.per_video.q[6] == 4);
    /* Drama is primary for 3 videos with 4 interactions; Comedy for 1
     * video with 4: equal interactions, so more videos ranks first. */
    assert_int_equal(s.n_top, 2);
    const reel_strs *cats = reel_dataset_dict(ds, REEL_DICT_CATEGORY);
    assert_string_equal(reel_strs_get(cats, s.top_cat[0], NULL), "Drama");
    assert_int_equal(s.top_cat_videos[0], 3);
    assert_int_equal(s.top_cat_events[1], 4);
    /* Distinct pairs: user 0 has 4 videos, user 1 has 1: 5 of 12. */
    assert_true(fabs(s.density - 5.0 / 12.0) < 1e-12);

    /* The JSON form parses and carries the same numbers. */
    char *path = test_path(dir, "stats.json");
    FILE *f = fopen(path, "w+");
    reel_stats_print_json(ds, &s, f);
    rewind(f);
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    assert_non_null(strstr(buf, "\"events\":13"));
    assert_non_null(strstr(buf, "\"impression\":5"));
    free(path);
    reel_dataset_close(ds);
    test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stats_count_by_hand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
