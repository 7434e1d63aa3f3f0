/* Unit tests of src/reco: the request path's order without a ranker is the
 * retrieval order, filters hold, and the business rules (category cap with
 * back-fill, freshness boost) do what reco.h says. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "embed/vectors.h"
#include "index/index.h"
#include "rank/features.h"
#include "reco/reco.h"

enum { NV = 12, DIM = 2 };

/* Videos v0..v11: v0..v5 in category "a", v6..v11 in "b"; v11 published
 * at the last event's time, the others without a date. Video i's vector
 * points at angle i * 5 degrees, so from a query along v0 the retrieval
 * order is v1, v2, ... (v0 itself is seen). */
static reel_dataset *fixture(char *dir)
{
    reel_dsbuild *b;
    reel_dsbuild_new(&b);
    reel_diag d;
    for (int i = 0; i < NV; i++) {
        char id[8];
        snprintf(id, sizeof id, "v%d", i);
        const char *cat[1] = {i < 6 ? "a" : "b"};
        reel_video_rec v = {.id = id,
                            .categories = cat,
                            .n_categories = 1,
                            .duration_s = NAN,
                            .published_at = i == 11 ? 5000.0 : NAN};
        uint32_t idx;
        assert_int_equal(reel_dsbuild_add_video(b, &v, &idx, &d), 0);
    }
    reel_event_rec e = reel_event_rec_empty();
    e.user = reel_dsbuild_user_ref(b, "u", 1);
    e.video = 0;
    e.type = REEL_EV_WATCH;
    e.ts = 5000;
    assert_int_equal(reel_dsbuild_add_event(b, &e, &d), 0);
    assert_int_equal(reel_dsbuild_write(b, dir, &d), 0);
    reel_dsbuild_free(b);
    reel_dataset *ds;
    assert_int_equal(reel_dataset_open(dir, &ds, &d), 0);
    return ds;
}

struct world {
    char *dir;
    reel_dataset *ds;
    reel_vectors *vec;
    reel_index *ix;
    reel_featstate *fs;
};

static void world_open(struct world *w)
{
    w->dir = test_tmpdir();
    w->ds = fixture(w->dir);
    reel_vectors_new(NV, DIM, "{}", &w->vec);
    for (int i = 0; i < NV; i++) {
        float *r = reel_vectors_row(w->vec, (uint32_t)i);
        r[0] = cosf((float)i * 5 * 3.14159265f / 180);
        r[1] = sinf((float)i * 5 * 3.14159265f / 180);
        w->vec->has[i] = 1;
    }
    w->vec->unit_norm = 1;
    reel_index_opts io =
        reel_index_opts_default(REEL_INDEX_FLAT, REEL_METRIC_COSINE, DIM);
    reel_diag d;
    assert_int_equal(reel_index_new(&io, &w->ix, &d), 0);
    for (uint32_t i = 0; i < NV; i++)
        assert_int_equal(reel_index_add(w->ix, i, reel_vectors_row(w->vec, i)),
                         0);
    reel_featstate_new(w->ds, &w->fs);
    reel_featstate_apply_events(w->fs, 0, 1, NULL);
}

static void world_close(struct world *w)
{
    reel_featstate_free(w->fs);
    reel_index_free(w->ix);
    reel_vectors_free(w->vec);
    reel_dataset_close(w->ds);
    test_rmtree(w->dir);
    free(w->dir);
}

static void rank_and_rules(void **state)
{
    (void)state;
    struct world w;
    world_open(&w);
    reel_reco r = {.ds = w.ds,
                   .vec = w.vec,
                   .ix = w.ix,
                   .ranker = NULL,
                   .o = reel_reco_opts_default()};
    r.o.candidates = 20;
    reel_reco_scratch *s = reel_reco_scratch_new(&r);
    uint32_t hist[1] = {0}, seen[1] = {0};
    reel_filter f = {.exclude = seen, .n_exclude = 1};
    reel_reco_item out[20];
    /* No ranker: retrieval order, the seen video excluded. */
    uint32_t n = reel_reco_rank(&r, w.fs, 0, 5000, hist, 1, &f, 5, s, out);
    assert_int_equal(n, 5);
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(out[i].video, i + 1);
    /* At most 2 of a category in the top 5: v1 v2, then b's v6 v7; the
     * list is short of one, so the best skipped (v3) fills it, last. */
    r.o.max_per_category = 2;
    n = reel_reco_rank(&r, w.fs, 0, 5000, hist, 1, &f, 5, s, out);
    assert_int_equal(n, 5);
    uint32_t want[5] = {1, 2, 6, 7, 3};
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(out[i].video, want[i]);
    /* A freshness boost lifts v11 (published now) to the top. */
    r.o.max_per_category = 0;
    r.o.fresh_boost = 1;
    n = reel_reco_rank(&r, w.fs, 0, 5000, hist, 1, &f, 3, s, out);
    assert_int_equal(out[0].video, 11);
    assert_float_equal(out[0].score, out[0].sim + 1, 1e-5);
    assert_int_equal(out[1].video, 1);
    /* An allow set restricts the candidates. */
    uint64_t allow = 1u << 9 | 1u << 10;
    reel_filter fa = {
        .exclude = seen, .n_exclude = 1, .allow = &allow, .allow_bits = NV};
    r.o.fresh_boost = 0;
    n = reel_reco_rank(&r, w.fs, 0, 5000, hist, 1, &fa, 5, s, out);
    assert_int_equal(n, 2);
    assert_int_equal(out[0].video, 9);
    assert_int_equal(out[1].video, 10);
    /* No history: nothing (the caller answers by cold start). */
    assert_int_equal(reel_reco_rank(&r, w.fs, 0, 5000, hist, 0, &f, 5, s, out),
                     0);
    reel_reco_scratch_free(s);
    world_close(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rank_and_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
