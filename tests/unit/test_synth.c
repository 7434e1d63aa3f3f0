/* Unit tests of the simulator (docs/synth.md) and its truth file
 * (docs/formats/truth.md): determinism across seeds and thread counts, the
 * statistical shape of a small run, the truth being the model that made
 * the clicks, and refusal of damaged truth files.
 *
 * The statistical tests share one run of 300 users x 500 videos x 7 days
 * (a group fixture); its bounds are written next to each assertion. Set
 * SYNTH_TEST_VERBOSE=1 to print the measured numbers. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/mem.h"
#include "base/rng.h"
#include "base/secfile.h"
#include "base/strs.h"
#include "data/dataset.h"
#include "data/synth.h"

static int verbose(void)
{
    const char *v = getenv("SYNTH_TEST_VERBOSE");
    return v && !strcmp(v, "1");
}

static reel_synth_opts small_opts(uint64_t seed, int threads)
{
    reel_synth_opts o = reel_synth_opts_default();
    o.n_users = 120;
    o.n_videos = 200;
    o.days = 4;
    o.seed = seed;
    o.threads = threads;
    return o;
}

static char *run(const reel_synth_opts *o)
{
    char *dir = test_tmpdir();
    reel_diag d;
    reel_diag_clear(&d);
    int rc = reel_synth_run(o, dir, &d);
    if (rc)
        fprintf(stderr, "synth: %s\n", d.msg);
    assert_int_equal(rc, 0);
    return dir;
}

static unsigned char *slurp(const char *dir, const char *name, size_t *len)
{
    char *p = test_path(dir, name);
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    assert_true(n > 0);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    free(p);
    *len = (size_t)n;
    return buf;
}

static int same_file(const char *a, const char *b, const char *name)
{
    size_t na, nb;
    unsigned char *x = slurp(a, name, &na), *y = slurp(b, name, &nb);
    int same = na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

static void same_seed_gives_same_bytes_whatever_the_threads(void **state)
{
    (void)state;
    reel_synth_opts o1 = small_opts(7, 1), o3 = small_opts(7, 3);
    char *a = run(&o1), *b = run(&o3), *c = run(&o1);
    assert_true(same_file(a, b, REEL_DATASET_FILE));
    assert_true(same_file(a, b, REEL_TRUTH_FILE));
    assert_true(same_file(a, c, REEL_DATASET_FILE));
    test_rmtree(a);
    test_rmtree(b);
    test_rmtree(c);
    free(a);
    free(b);
    free(c);
}

static void other_seed_gives_other_data(void **state)
{
    (void)state;
    reel_synth_opts o1 = small_opts(7, 2), o2 = small_opts(8, 2);
    char *a = run(&o1), *b = run(&o2);
    assert_false(same_file(a, b, REEL_DATASET_FILE));
    assert_false(same_file(a, b, REEL_TRUTH_FILE));
    test_rmtree(a);
    test_rmtree(b);
    free(a);
    free(b);
}

static void options_out_of_bounds_are_refused(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_diag d;
    reel_synth_opts o = small_opts(1, 1);
    o.n_users = 0;
    assert_int_equal(reel_synth_run(&o, dir, &d), REEL_ERANGE);
    assert_non_null(strstr(d.msg, "users"));
    o = small_opts(1, 1);
    o.days = REEL_SYNTH_MAX_DAYS + 1;
    assert_int_equal(reel_synth_run(&o, dir, &d), REEL_ERANGE);
    o = small_opts(1, 1);
    o.n_users = REEL_SYNTH_MAX_USERS;
    o.days = REEL_SYNTH_MAX_DAYS;
    assert_int_equal(reel_synth_run(&o, dir, &d), REEL_ERANGE);
    assert_non_null(strstr(d.msg, "users x days"));
    o = small_opts(1, -1);
    assert_int_equal(reel_synth_run(&o, dir, &d), REEL_ERANGE);
    test_rmtree(dir);
    free(dir);
}

/* ------------------------------------------------ the shared small run */

struct fixture {
    char *dir;
    reel_dataset *ds;
    reel_truth *t;
    const reel_events *e;
    const reel_videos *v;
    uint32_t *pos; /* list position of each impression and click, or NONE */
};

/* Positions come from the log itself: a list's impressions share a ts and
 * a request_id and are stored in position order (docs/synth.md). */
static void find_positions(struct fixture *fx)
{
    const reel_events *e = fx->e;
    fx->pos = malloc((e->n ? e->n : 1) * sizeof *fx->pos);
    assert_non_null(fx->pos);
    reel_intern reqs;
    reel_intern_init(&reqs);
    uint64_t *first = NULL;
    size_t cap = 0;
    uint64_t prev = UINT64_MAX;
    uint32_t run_pos = 0;
    for (uint64_t i = 0; i < e->n; i++) {
        fx->pos[i] = REEL_NONE;
        size_t len;
        const char *r = reel_strs_get(&e->request_id, (uint32_t)i, &len);
        if (e->type[i] != REEL_EV_IMPRESSION)
            continue;
        int is_new;
        uint32_t id = reel_intern_put(&reqs, r, len, &is_new);
        if (is_new) {
            REEL_GROW(first, cap, (size_t)id + 1);
            first[id] = i;
            run_pos = 0;
        } else {
            /* A list's impressions are consecutive events. */
            assert_int_equal(prev + 1, i);
            run_pos++;
        }
        fx->pos[i] = run_pos;
        prev = i;
    }
    for (uint64_t i = 0; i < e->n; i++) {
        if (e->type[i] != REEL_EV_CLICK)
            continue;
        size_t len;
        const char *r = reel_strs_get(&e->request_id, (uint32_t)i, &len);
        uint32_t id = reel_intern_find(&reqs, r, len);
        assert_int_not_equal(id, REEL_NONE);
        for (uint64_t k = first[id]; k < e->n && k < first[id] + 64; k++) {
            if (e->type[k] != REEL_EV_IMPRESSION ||
                strcmp(reel_strs_get(&e->request_id, (uint32_t)k, NULL), r))
                break;
            if (e->video[k] == e->video[i])
                fx->pos[i] = fx->pos[k];
        }
        assert_int_not_equal(fx->pos[i], REEL_NONE);
    }
    free(first);
    reel_intern_free(&reqs);
}

static int setup_run(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    reel_synth_opts o = reel_synth_opts_default();
    o.n_users = 300;
    o.n_videos = 500;
    o.days = 7;
    o.seed = 2024;
    o.threads = 2;
    fx->dir = run(&o);
    reel_diag d;
    assert_int_equal(reel_dataset_open(fx->dir, &fx->ds, &d), 0);
    assert_int_equal(reel_truth_open(fx->dir, &fx->t, &d), 0);
    fx->e = reel_dataset_events(fx->ds);
    fx->v = reel_dataset_videos(fx->ds);
    find_positions(fx);
    *state = fx;
    return 0;
}

static int teardown_run(void **state)
{
    struct fixture *fx = *state;
    reel_truth_close(fx->t);
    reel_dataset_close(fx->ds);
    test_rmtree(fx->dir);
    free(fx->dir);
    free(fx->pos);
    free(fx);
    return 0;
}

static void events_are_sorted_and_well_formed(void **state)
{
    struct fixture *fx = *state;
    const reel_events *e = fx->e;
    const reel_users *us = reel_dataset_users(fx->ds);
    assert_int_equal(us->n, 300);
    assert_int_equal(fx->v->n, 500);
    /* 300 users x 7 days at ~15 events per user-day. */
    assert_true(e->n > 10000 && e->n < 100000);
    assert_int_equal(e->request_id.n, e->n);
    uint64_t by_type[REEL_EV__COUNT] = {0};
    for (uint64_t i = 0; i < e->n; i++) {
        if (i)
            assert_true(e->ts[i - 1] <= e->ts[i]);
        by_type[e->type[i]]++;
        size_t len;
        reel_strs_get(&e->request_id, (uint32_t)i, &len);
        assert_true(len > 0);
        int watched = e->type[i] == REEL_EV_WATCH || e->type[i] == REEL_EV_SKIP;
        assert_true(watched == !isnan(e->watch_s[i]));
        assert_true(isnan(e->rating[i]));
        assert_true(e->ts[i] >= us->signed_up_at[e->user[i]]);
    }
    for (int k = 0; k < REEL_EV__COUNT; k++)
        if (k != REEL_EV_RATING)
            assert_true(by_type[k] > 0);
    /* Every click follows its impression: the funnel narrows. */
    assert_true(by_type[REEL_EV_CLICK] < by_type[REEL_EV_IMPRESSION]);
    assert_true(by_type[REEL_EV_PLAY] <= by_type[REEL_EV_CLICK]);
    assert_int_equal(by_type[REEL_EV_WATCH], by_type[REEL_EV_PLAY]);
    if (verbose()) {
        for (int k = 0; k < REEL_EV__COUNT; k++)
            printf("  %-10s %8llu\n", reel_event_type_name(k),
                   (unsigned long long)by_type[k]);
        printf("  events/user-day %.2f\n", (double)e->n / (300.0 * 7));
    }
}

static void no_event_precedes_its_video(void **state)
{
    struct fixture *fx = *state;
    const reel_events *e = fx->e;
    uint32_t during = 0;
    for (uint32_t v = 0; v < fx->v->n; v++)
        during += fx->v->published_at[v] >= e->ts[0];
    for (uint64_t i = 0; i < e->n; i++)
        assert_true(e->ts[i] >= fx->v->published_at[e->video[i]]);
    /* Some of the catalogue is released during the window. */
    assert_true(during > 0);
}

static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void plays_concentrate_on_few_videos(void **state)
{
    struct fixture *fx = *state;
    const reel_events *e = fx->e;
    uint32_t nv = fx->v->n;
    uint64_t *plays = calloc(nv, sizeof *plays), total = 0;
    for (uint64_t i = 0; i < e->n; i++)
        if (e->type[i] == REEL_EV_PLAY) {
            plays[e->video[i]]++;
            total++;
        }
    qsort(plays, nv, sizeof *plays, cmp_desc);
    uint64_t top = 0;
    for (uint32_t k = 0; k < nv / 10; k++)
        top += plays[k];
    double share = (double)top / (double)total;
    if (verbose())
        printf("  top 10%% of videos: %.1f%% of %llu plays\n", 100 * share,
               (unsigned long long)total);
    assert_true(share > 0.4);
    free(plays);
}

static void watch_time_follows_affinity(void **state)
{
    struct fixture *fx = *state;
    const reel_events *e = fx->e;
    double sum_hi = 0, sum_lo = 0, sum_f = 0, sum_m = 0, sum_f2 = 0;
    uint64_t n_hi = 0, n_lo = 0, n = 0, n_skip = 0;
    for (uint64_t i = 0; i < e->n; i++) {
        if (e->type[i] == REEL_EV_SKIP)
            n_skip++;
        if (e->type[i] != REEL_EV_WATCH)
            continue;
        uint32_t u = e->user[i], v = e->video[i];
        double dur = fx->v->duration_s[v];
        assert_true(e->watch_s[i] >= 0 && e->watch_s[i] <= dur);
        double f = e->watch_s[i] / dur;
        double a = reel_truth_affinity(fx->t, u, v);
        assert_true(a >= 0 && a <= 1);
        if (a >= 0.5)
            sum_hi += f, n_hi++;
        else if (a < 0.3)
            sum_lo += f, n_lo++;
        sum_f += f;
        sum_f2 += f * f;
        sum_m += reel_truth_watch_frac(fx->t, u, v);
        n++;
    }
    assert_true(n_hi > 30 && n_lo > 30);
    double hi = sum_hi / n_hi, lo = sum_lo / n_lo;
    double mean = sum_f / n, expect = sum_m / n;
    double sd = sqrt((sum_f2 / n - mean * mean) / n);
    if (verbose())
        printf("  watch fraction: high affinity %.3f (%llu), low %.3f "
               "(%llu), mean %.3f vs model %.3f (sd %.4f), skips %.1f%%\n",
               hi, (unsigned long long)n_hi, lo, (unsigned long long)n_lo, mean,
               expect, sd, 100.0 * n_skip / n);
    assert_true(hi > lo + 0.05);
    /* The watches were drawn around reel_truth_watch_frac: the means agree
     * within 5 standard errors. */
    assert_true(fabs(mean - expect) < 5 * sd);
}

static void clicks_match_the_truth_and_fall_with_position(void **state)
{
    struct fixture *fx = *state;
    const reel_events *e = fx->e;
    enum { NPOS = 10 };
    uint64_t imp[NPOS] = {0}, clk[NPOS] = {0}, n_imp = 0, n_clk = 0;
    double expect = 0, var = 0;
    for (uint64_t i = 0; i < e->n; i++) {
        uint32_t p = fx->pos[i];
        if (e->type[i] == REEL_EV_IMPRESSION) {
            double q = reel_truth_click_prob(fx->t, e->user[i], e->video[i], p);
            assert_true(q > 0 && q < 1);
            expect += q;
            var += q * (1 - q);
            n_imp++;
            if (p < NPOS)
                imp[p]++;
        } else if (e->type[i] == REEL_EV_CLICK) {
            n_clk++;
            if (p < NPOS)
                clk[p]++;
        }
    }
    double ctr = (double)n_clk / n_imp;
    double ctr0 = (double)clk[0] / imp[0], ctr9 = (double)clk[9] / imp[9];
    if (verbose())
        printf("  CTR %.2f%% (pos 0 %.2f%%, pos 9 %.2f%%); clicks %llu, "
               "truth expects %.0f +- %.0f\n",
               100 * ctr, 100 * ctr0, 100 * ctr9, (unsigned long long)n_clk,
               expect, sqrt(var));
    assert_true(ctr > 0.01 && ctr < 0.25);
    assert_true(ctr0 > 1.5 * ctr9);
    /* The simulator clicked with reel_truth_click_prob: the count of
     * clicks is within 5 standard deviations of its expectation. */
    assert_true(fabs((double)n_clk - expect) < 5 * sqrt(var));
}

/* ------------------------------------------------------------- truth */

static void truth_round_trips(void **state)
{
    (void)state;
    reel_synth_opts o = small_opts(99, 2);
    char *dir = run(&o);
    reel_diag d;
    reel_truth *t;
    reel_dataset *ds;
    assert_int_equal(reel_truth_open(dir, &t, &d), 0);
    assert_int_equal(reel_dataset_open(dir, &ds, &d), 0);
    assert_int_equal(reel_truth_n_users(t), o.n_users);
    assert_int_equal(reel_truth_n_videos(t), o.n_videos);
    assert_true(reel_truth_seed(t) == 99);
    assert_int_equal(reel_truth_check_dataset(t, ds, &d), 0);
    for (uint32_t u = 0; u < o.n_users; u += 7) {
        assert_true(reel_truth_activity(t, u) > 0);
        for (uint32_t v = 0; v < o.n_videos; v += 13) {
            double p0 = reel_truth_click_prob(t, u, v, 0);
            double p9 = reel_truth_click_prob(t, u, v, 9);
            double w = reel_truth_watch_frac(t, u, v);
            assert_true(p0 > p9 && p9 > 0 && p0 < 1);
            assert_true(w > 0 && w < 1);
        }
    }
    /* Sampling is a function of the rng stream. */
    reel_rng r1, r2;
    reel_rng_seed(&r1, 5);
    reel_rng_seed(&r2, 5);
    for (int k = 0; k < 1000; k++) {
        reel_truth_outcome a, b;
        reel_truth_sample(t, (uint32_t)k % o.n_users, (uint32_t)k % o.n_videos,
                          0, &r1, &a);
        reel_truth_sample(t, (uint32_t)k % o.n_users, (uint32_t)k % o.n_videos,
                          0, &r2, &b);
        assert_memory_equal(&a, &b, sizeof a);
        assert_true(
            a.watch_s <=
            reel_dataset_videos(ds)->duration_s[(uint32_t)k % o.n_videos]);
        assert_true(!a.play || a.click);
    }
    reel_truth_close(t);
    reel_dataset_close(ds);

    /* A truth from another run does not describe this dataset. */
    reel_synth_opts o2 = small_opts(99, 2);
    o2.n_videos = 150;
    char *dir2 = run(&o2);
    assert_int_equal(reel_truth_open(dir2, &t, &d), 0);
    assert_int_equal(reel_dataset_open(dir, &ds, &d), 0);
    assert_int_equal(reel_truth_check_dataset(t, ds, &d), REEL_ECORRUPT);
    assert_non_null(strstr(d.msg, "videos"));
    reel_truth_close(t);
    reel_dataset_close(ds);
    test_rmtree(dir);
    test_rmtree(dir2);
    free(dir);
    free(dir2);
}

static void truncated_truth_is_refused(void **state)
{
    (void)state;
    reel_synth_opts o = small_opts(3, 1);
    char *dir = run(&o);
    char *path = test_path(dir, REEL_TRUTH_FILE);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    reel_diag d;
    reel_truth *t = NULL;
    off_t sizes[] = {st.st_size - 1, st.st_size / 2, 64, 0};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        assert_int_equal(truncate(path, sizes[k]), 0);
        reel_diag_clear(&d);
        assert_true(reel_truth_open(dir, &t, &d) < 0);
        assert_null(t);
        assert_true(strlen(d.msg) > 0);
        if (verbose())
            printf("  truncated to %lld: %s\n", (long long)sizes[k], d.msg);
    }
    /* A missing file is refused too. */
    assert_int_equal(unlink(path), 0);
    assert_true(reel_truth_open(dir, &t, &d) < 0);
    test_rmtree(dir);
    free(path);
    free(dir);
}

/* Copies dir/truth.reel into out/truth.reel section by section, with one
 * change: "shape" declares `extra_users` more users, section `drop` is
 * left out, and byte 0 of section `poke` is set to 200. */
static void rewrite_truth(const char *dir, const char *out,
                          uint64_t extra_users, const char *drop,
                          const char *poke)
{
    char *src = test_path(dir, REEL_TRUTH_FILE);
    char *dst = test_path(out, REEL_TRUTH_FILE);
    reel_secfile *f;
    reel_secfile_writer *w;
    reel_diag d;
    assert_int_equal(reel_secfile_open(src, "truth", 0, &f, &d), 0);
    assert_int_equal(reel_secfile_writer_open(dst, "truth", &w, &d), 0);
    for (uint32_t i = 0; i < reel_secfile_count(f); i++) {
        const reel_section *s = reel_secfile_at(f, i);
        if (drop && !strcmp(s->name, drop))
            continue;
        unsigned char *copy = malloc(s->length ? s->length : 1);
        assert_non_null(copy);
        memcpy(copy, s->data, s->length);
        if (!strcmp(s->name, "shape"))
            ((uint64_t *)copy)[1] += extra_users;
        if (poke && !strcmp(s->name, poke))
            copy[0] = 200;
        assert_int_equal(
            reel_secfile_writer_add(w, s->name, s->type, copy, s->count), 0);
        free(copy);
    }
    assert_int_equal(reel_secfile_writer_commit(w, &d), 0);
    reel_secfile_close(f);
    free(src);
    free(dst);
}

static void truth_with_mismatched_sections_is_refused(void **state)
{
    (void)state;
    reel_synth_opts o = small_opts(3, 1);
    char *dir = run(&o), *out = test_tmpdir();
    reel_diag d;
    reel_truth *t = NULL;
    /* The copy itself is accepted: the refusals below are the changes. */
    rewrite_truth(dir, out, 0, NULL, NULL);
    assert_int_equal(reel_truth_open(out, &t, &d), 0);
    reel_truth_close(t);
    t = NULL;
    rewrite_truth(dir, out, 1, NULL, NULL);
    assert_int_equal(reel_truth_open(out, &t, &d), REEL_ECORRUPT);
    assert_null(t);
    assert_non_null(strstr(d.msg, "user.cat"));
    rewrite_truth(dir, out, 0, "video.type", NULL);
    assert_int_equal(reel_truth_open(out, &t, &d), REEL_ECORRUPT);
    assert_non_null(strstr(d.msg, "video.type"));
    rewrite_truth(dir, out, 0, NULL, "video.language");
    assert_int_equal(reel_truth_open(out, &t, &d), REEL_ECORRUPT);
    assert_non_null(strstr(d.msg, "video.language"));
    rewrite_truth(dir, out, 0, NULL, "shape");
    assert_int_equal(reel_truth_open(out, &t, &d), REEL_EVERSION);
    /* A dataset file is not a truth file. */
    char *from = test_path(dir, REEL_DATASET_FILE);
    char *to = test_path(dir, REEL_TRUTH_FILE);
    assert_int_equal(rename(from, to), 0);
    assert_true(reel_truth_open(dir, &t, &d) < 0);
    assert_null(t);
    test_rmtree(out);
    test_rmtree(dir);
    free(from);
    free(to);
    free(out);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest shape[] = {
        cmocka_unit_test(events_are_sorted_and_well_formed),
        cmocka_unit_test(no_event_precedes_its_video),
        cmocka_unit_test(plays_concentrate_on_few_videos),
        cmocka_unit_test(watch_time_follows_affinity),
        cmocka_unit_test(clicks_match_the_truth_and_fall_with_position),
    };
    const struct CMUnitTest rest[] = {
        cmocka_unit_test(same_seed_gives_same_bytes_whatever_the_threads),
        cmocka_unit_test(other_seed_gives_other_data),
        cmocka_unit_test(options_out_of_bounds_are_refused),
        cmocka_unit_test(truth_round_trips),
        cmocka_unit_test(truncated_truth_is_refused),
        cmocka_unit_test(truth_with_mismatched_sections_is_refused),
    };
    int fails = cmocka_run_group_tests_name("synth shape", shape, setup_run,
                                            teardown_run);
    return fails + cmocka_run_group_tests_name("synth", rest, NULL, NULL);
}
