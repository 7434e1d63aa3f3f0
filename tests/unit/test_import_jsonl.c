/* Unit tests of the JSON Lines importers (docs/formats/jsonl.md). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "data/import.h"

static const char *videos_jsonl =
    "{\"id\":\"v1\",\"title\":\"Cats\",\"categories\":[\"Comedy\","
    "\"Animals\"],\"language\":\"en\",\"duration_s\":300,\"type\":\"short\","
    "\"published_at\":\"2024-01-02\",\"tags\":[\"cat\"],\"extra\":1}\n"
    "\n"
    "{\"id\":2,\"title\":\"Dogs\",\"categories\":\"Drama\","
    "\"published_at\":1700000000}\n";

static const char *users_jsonl =
    "{\"id\":\"u1\",\"age\":31,\"gender\":\"F\",\"country\":\"FR\","
    "\"signed_up_at\":\"2023-05-01T10:00:00Z\"}\n";

static const char *events_jsonl =
    "{\"user\":\"u1\",\"video\":\"v1\",\"type\":\"watch\",\"watch_s\":120,"
    "\"ts\":1700000100.5,\"id\":\"e1\"}\n"
    "{\"user\":\"u2\",\"video\":2,\"type\":\"click\",\"ts\":1700000050,"
    "\"request_id\":\"r1\"}\n"
    "{\"user\":\"u1\",\"video\":\"2\",\"type\":\"rating\",\"rating\":4.5,"
    "\"ts\":\"2023-11-14T22:13:20Z\"}\n";

static void jsonl_imports_every_field(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    char *vp = test_write_file(dir, "v.jsonl", videos_jsonl);
    char *up = test_write_file(dir, "u.jsonl", users_jsonl);
    char *ep = test_write_file(dir, "e.jsonl", events_jsonl);
    reel_dsbuild *b;
    reel_dsbuild_new(&b);
    reel_import_report r = {0};
    reel_diag d;
    reel_diag_clear(&d);
    assert_int_equal(reel_import_videos_jsonl(b, vp, NULL, &r, &d), 0);
    assert_int_equal(reel_import_users_jsonl(b, up, NULL, &r, &d), 0);
    assert_int_equal(reel_import_events_jsonl(b, ep, NULL, &r, &d), 0);
    assert_int_equal(r.n_lines, 6);
    assert_int_equal(r.n_added, 6);
    char *out = test_path(dir, "data");
    assert_int_equal(reel_dsbuild_write(b, out, &d), 0);
    reel_dsbuild_free(b);

    reel_dataset *ds;
    assert_int_equal(reel_dataset_open(out, &ds, &d), 0);
    const reel_videos *v = reel_dataset_videos(ds);
    const reel_users *u = reel_dataset_users(ds);
    const reel_events *e = reel_dataset_events(ds);
    assert_int_equal(v->n, 2);
    assert_int_equal(reel_dataset_find_video(ds, "2", 1), 1);
    assert_true(v->published_at[0] == 1704153600.0);
    assert_int_equal(v->cat_off[2] - v->cat_off[1], 1);
    assert_int_equal(u->n, 2); /* u2 came from an event */
    assert_int_equal(u->age[0], 31);
    assert_true(u->signed_up_at[0] == 1682935200.0);
    assert_int_equal(e->n, 3);
    /* Sorted: the rating (1700000000) first, then click, then watch. */
    assert_int_equal(e->type[0], REEL_EV_RATING);
    assert_true(e->rating[0] == 4.5f);
    assert_int_equal(e->type[1], REEL_EV_CLICK);
    assert_int_equal(e->type[2], REEL_EV_WATCH);
    assert_true(e->ts[2] == 1700000100.5);
    assert_string_equal(reel_strs_get(&e->id, 2, NULL), "e1");
    assert_string_equal(reel_strs_get(&e->request_id, 1, NULL), "r1");
    reel_dataset_close(ds);
    free(vp);
    free(up);
    free(ep);
    free(out);
    test_rmtree(dir);
    free(dir);
}

struct bad_case {
    const char *text;
    uint64_t line;
    const char *reason;
};

/* Each malformed events file fails at the named line with the reason. */
static void malformed_lines_report_file_line_and_reason(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"{\"user\":\"u\",\"video\":\"v1\",\"type\":\"click\",\"ts\":1}\n"
         "{\"user\":\"u\",\"video\":\"v1\",\"type\":\"click\",\"ts\":1\n",
         2, "invalid JSON"},
        {"\n\n{\"user\":\"u\",\"video\":\"nope\",\"type\":\"click\","
         "\"ts\":1}\n",
         3, "unknown video"},
        {"{\"user\":\"u\",\"video\":\"v1\",\"type\":\"stare\",\"ts\":1}\n", 1,
         "unknown event type"},
        {"{\"user\":\"u\",\"video\":\"v1\",\"type\":\"click\"}\n", 1,
         "missing \"ts\""},
        {"{\"user\":\"u\",\"video\":\"v1\",\"type\":\"watch\",\"ts\":1,"
         "\"watch_s\":\"long\"}\n",
         1, "\"watch_s\" must be a number"},
        {"{\"user\":\"u\",\"video\":\"v1\",\"type\":\"watch\",\"ts\":1,"
         "\"watch_s\":-3}\n",
         1, "watch_s must be >= 0"},
        {"[1,2,3]\n", 1, "expected a JSON object"},
        {"{\"user\":\"u\",\"user\":\"w\",\"video\":\"v1\",\"type\":\"click\","
         "\"ts\":1}\n",
         1, "duplicate"},
        {"{\"video\":\"v1\",\"type\":\"click\",\"ts\":1}\n", 1,
         "missing \"user\""},
    };
    char *dir = test_tmpdir();
    char *vp = test_write_file(dir, "v.jsonl", "{\"id\":\"v1\"}\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *ep = test_write_file(dir, "e.jsonl", cases[i].text);
        reel_dsbuild *b;
        reel_dsbuild_new(&b);
        reel_import_report r = {0};
        reel_diag d;
        reel_diag_clear(&d);
        assert_int_equal(reel_import_videos_jsonl(b, vp, NULL, &r, &d), 0);
        int rc = reel_import_events_jsonl(b, ep, NULL, &r, &d);
        assert_true(rc < 0);
        assert_string_equal(d.file, ep);
        assert_int_equal(d.line, cases[i].line);
        if (!strstr(d.msg, cases[i].reason))
            fail_msg("case %zu: '%s' lacks '%s'", i, d.msg, cases[i].reason);
        /* Skipping instead: the bad line is counted, the rest imported. */
        reel_import_opts o = {.skip_bad = 1};
        reel_import_report r2 = {0};
        assert_int_equal(reel_import_events_jsonl(b, ep, &o, &r2, &d), 0);
        assert_int_equal(r2.n_skipped, 1);
        reel_dsbuild_free(b);
        free(ep);
    }
    free(vp);
    test_rmtree(dir);
    free(dir);
}

static void events_without_catalogue_create_videos(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    char *ep = test_write_file(
        dir, "e.jsonl",
        "{\"user\":1,\"video\":10,\"type\":\"play\",\"ts\":5}\n"
        "{\"user\":2,\"video\":11,\"type\":\"play\",\"ts\":6}\n");
    reel_dsbuild *b;
    reel_dsbuild_new(&b);
    reel_import_report r = {0};
    reel_diag d;
    assert_int_equal(reel_import_events_jsonl(b, ep, NULL, &r, &d), 0);
    assert_int_equal(reel_dsbuild_n_videos(b), 2);
    assert_int_equal(reel_dsbuild_find_video(b, "11", 2), 1);
    reel_dsbuild_free(b);
    free(ep);
    test_rmtree(dir);
    free(dir);
}

static void bad_video_records_are_named(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    char *vp = test_write_file(dir, "v.jsonl",
                               "{\"id\":\"a\"}\n"
                               "{\"id\":\"b\",\"categories\":[1]}\n"
                               "{\"id\":\"a\"}\n"
                               "{\"title\":\"no id\"}\n"
                               "{\"id\":\"c\",\"published_at\":\"soon\"}\n");
    reel_dsbuild *b;
    reel_dsbuild_new(&b);
    reel_import_report r = {0};
    reel_diag d;
    reel_import_opts o = {.skip_bad = 1};
    assert_int_equal(reel_import_videos_jsonl(b, vp, &o, &r, &d), 0);
    assert_int_equal(r.n_skipped, 4);
    assert_int_equal(r.n_added, 1);
    reel_dsbuild_free(b);
    reel_dsbuild_new(&b);
    assert_int_equal(reel_import_videos_jsonl(b, vp, NULL, &r, &d),
                     REEL_EFORMAT);
    assert_int_equal(d.line, 2);
    assert_non_null(strstr(d.msg, "categories"));
    reel_dsbuild_free(b);
    free(vp);
    test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(jsonl_imports_every_field),
        cmocka_unit_test(malformed_lines_report_file_line_and_reason),
        cmocka_unit_test(events_without_catalogue_create_videos),
        cmocka_unit_test(bad_video_records_are_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
