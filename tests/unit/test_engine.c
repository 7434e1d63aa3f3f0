/* Unit tests of src/reco/engine: an ingested event changes the next
 * recommendation (read-your-writes), unknown videos are refused per item,
 * a new user goes from cold start to personalized, the cold-start list
 * interleaves trending and popular without seen videos, similar videos
 * come from the index, asynchronous ingest calls back once, and reopening
 * replays the log so every acknowledged event is back. */
#include "testutil.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/dataset.h"
#include "data/record.h"
#include "embed/vectors.h"
#include "reco/engine.h"
#include "store/snapshot.h"

enum { NV = 12, DIM = 2 };

/*
 * Videos v0..v11; video i's vector points at angle i * 5 degrees, so from a
 * query along v0 the retrieval order is v1, v2, ... Events: u watched v0
 * at 5000; p and q watched v7 at 1000; q watched v9 at 4900. Popular: v7
 * (2), then v0 and v9 (1 each, ties by number). Trending as of 5000: v7
 * (2 * 2^(-4000/86400)), v0 (1), v9 (just under 1). No index file (the
 * engine builds one) and no ranker (retrieval order).
 */
static char *fixture(void)
{
    char *dir = test_tmpdir();
    reel_dsbuild *b;
    reel_dsbuild_new(&b);
    reel_diag d;
    for (int i = 0; i < NV; i++) {
        char id[8], title[16];
        snprintf(id, sizeof id, "v%d", i);
        snprintf(title, sizeof title, "Title %d", i);
        reel_video_rec v = reel_video_rec_empty();
        v.id = id;
        v.title = title;
        uint32_t idx;
        assert_int_equal(reel_dsbuild_add_video(b, &v, &idx, &d), 0);
    }
    struct {
        const char *user;
        uint32_t video;
        double ts;
    } evs[] = {{"p", 7, 1000}, {"q", 7, 1000}, {"q", 9, 4900}, {"u", 0, 5000}};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++) {
        reel_event_rec e = reel_event_rec_empty();
        e.user = reel_dsbuild_user_ref(b, evs[i].user, strlen(evs[i].user));
        e.video = evs[i].video;
        e.type = REEL_EV_WATCH;
        e.ts = evs[i].ts;
        assert_int_equal(reel_dsbuild_add_event(b, &e, &d), 0);
    }
    assert_int_equal(reel_dsbuild_write(b, dir, &d), 0);
    reel_dsbuild_free(b);
    reel_dataset *ds;
    assert_int_equal(reel_dataset_open(dir, &ds, &d), 0);
    reel_vectors *vec;
    reel_vectors_new(NV, DIM, "{}", &vec);
    for (int i = 0; i < NV; i++) {
        float *r = reel_vectors_row(vec, (uint32_t)i);
        r[0] = cosf((float)i * 5 * 3.14159265f / 180);
        r[1] = sinf((float)i * 5 * 3.14159265f / 180);
        vec->has[i] = 1;
    }
    vec->unit_norm = 1;
    char *vdir = test_path(dir, "vectors");
    assert_int_equal(mkdir(vdir, 0755), 0);
    char *path = test_path(vdir, "item2vec.reel");
    assert_int_equal(reel_vectors_save(vec, ds, path, &d), 0);
    free(path);
    free(vdir);
    reel_vectors_free(vec);
    reel_dataset_close(ds);
    return dir;
}

/* Options of the tests: cold-start lists recomputed after each batch, no
 * snapshot unless a test asks for one. */
static reel_engine_opts test_opts(void)
{
    reel_engine_opts o;
    reel_engine_opts_init(&o);
    o.cold_refresh_s = 0;
    o.cold_segment_min = 1;
    o.snapshot_every_s = 0;
    o.snapshot_every_events = 0;
    o.snapshot_on_close = 0;
    return o;
}

static reel_engine *open_engine_with(const char *dir, const reel_engine_opts *o)
{
    reel_engine *en;
    reel_diag d;
    reel_diag_clear(&d);
    int rc = reel_engine_open(dir, o, &en, &d);
    if (rc)
        fail_msg("open: %s: %s", reel_strerror(rc), d.msg);
    return en;
}

static reel_engine *open_engine(const char *dir)
{
    reel_engine_opts o = test_opts();
    reel_engine *en;
    reel_diag d;
    reel_diag_clear(&d);
    int rc = reel_engine_open(dir, &o, &en, &d);
    if (rc)
        fail_msg("open: %s: %s", reel_strerror(rc), d.msg);
    return en;
}

static reel_event_in event(const char *user, const char *video, int type,
                           double ts)
{
    reel_event_in e = {.user = user, .video = video};
    e.rec = reel_event_rec_empty();
    e.rec.type = type;
    e.rec.ts = ts;
    return e;
}

static void ingest_ok(reel_engine *en, const reel_event_in *ev, uint32_t n)
{
    reel_engine_reject rej[8];
    uint32_t n_rej;
    assert_int_equal(reel_engine_ingest(en, ev, n, rej, &n_rej, NULL, NULL), 0);
    assert_int_equal(n_rej, 0);
}

static uint32_t recommend(reel_engine *en, const char *user, uint32_t k,
                          reel_reco_item *out, reel_engine_source *src)
{
    uint32_t n;
    assert_int_equal(
        reel_engine_recommend(en, user, k, NULL, out, &n, src, NULL), 0);
    return n;
}

static int deleted(reel_engine *en, const char *video)
{
    reel_arena a;
    reel_arena_init(&a, 1024);
    reel_video_rec r;
    int dead = 0, has_vec;
    assert_int_equal(reel_engine_video_get(en, video, &a, &r, &dead, &has_vec),
                     0);
    reel_arena_free(&a);
    return dead;
}

static int contains(const reel_reco_item *it, uint32_t n, uint32_t v)
{
    for (uint32_t i = 0; i < n; i++)
        if (it[i].video == v)
            return 1;
    return 0;
}

static void finish(reel_engine *en, char *dir)
{
    assert_int_equal(reel_engine_close(en), 0);
    test_rmtree(dir);
    free(dir);
}

static void an_ingested_watch_changes_the_next_recommendation(void **state)
{
    (void)state;
    char *dir = fixture();
    reel_engine *en = open_engine(dir);
    reel_reco_item it[8];
    reel_engine_source src;
    /* u watched v0: its neighbours in order, v0 itself left out. */
    uint32_t n = recommend(en, "u", 3, it, &src);
    assert_int_equal(src, REEL_ENGINE_PERSONALIZED);
    assert_int_equal(n, 3);
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(it[i].video, i + 1);
    /* After a watch of v10 the query is the mean of v0 and v10 (25
     * degrees): v5 first, and neither watched video comes back. */
    reel_event_in e = event("u", "v10", REEL_EV_WATCH, 6000);
    ingest_ok(en, &e, 1);
    n = recommend(en, "u", 5, it, &src);
    assert_int_equal(src, REEL_ENGINE_PERSONALIZED);
    assert_int_equal(n, 5);
    assert_int_equal(it[0].video, 5);
    assert_false(contains(it, n, 0));
    assert_false(contains(it, n, 10));
    /* The history has both, oldest first. */
    reel_engine_event h[4];
    uint64_t total;
    reel_engine_history(en, "u", 4, h, &n, &total);
    assert_int_equal(n, 2);
    assert_int_equal(total, 2);
    assert_int_equal(h[0].video, 0);
    assert_int_equal(h[1].video, 10);
    assert_int_equal(h[1].type, REEL_EV_WATCH);
    assert_float_equal(h[1].ts, 6000, 0);
    reel_engine_stats st;
    reel_engine_get_stats(en, &st);
    assert_int_equal(st.events_ingested, 1);
    assert_int_equal(st.events_dataset, 4);
    assert_int_equal(st.videos_indexed, NV);
    assert_int_equal(st.has_ranker, 0);
    finish(en, dir);
}

static void unknown_videos_are_refused_one_by_one(void **state)
{
    (void)state;
    char *dir = fixture();
    reel_engine *en = open_engine(dir);
    reel_event_in ev[3] = {event("u", "v1", REEL_EV_CLICK, 6000),
                           event("u", "nope", REEL_EV_WATCH, 6001),
                           event("u", "v2", REEL_EV_LIKE, 6002)};
    reel_engine_reject rej[3];
    uint32_t n_rej;
    assert_int_equal(reel_engine_ingest(en, ev, 3, rej, &n_rej, NULL, NULL), 0);
    assert_int_equal(n_rej, 1);
    assert_int_equal(rej[0].index, 1);
    assert_string_equal(rej[0].error, "unknown video");
    reel_engine_event h[4];
    uint32_t n;
    uint64_t total;
    reel_engine_history(en, "u", 4, h, &n, &total);
    assert_int_equal(n, 3);
    assert_int_equal(h[1].video, 1);
    assert_int_equal(h[2].video, 2);
    /* A batch with nothing acceptable writes nothing. */
    reel_event_in bad = event("u", "nope", REEL_EV_WATCH, 6003);
    assert_int_equal(reel_engine_ingest(en, &bad, 1, rej, &n_rej, NULL, NULL),
                     0);
    assert_int_equal(n_rej, 1);
    reel_engine_stats st;
    reel_engine_get_stats(en, &st);
    assert_int_equal(st.events_ingested, 2);
    assert_int_equal(st.events_rejected, 2);
    assert_int_equal(st.wal.records, 1);
    /* Too many events in one call. */
    assert_int_equal(reel_engine_ingest(en, ev, REEL_ENGINE_MAX_BATCH + 1, rej,
                                        &n_rej, NULL, NULL),
                     REEL_ETOOBIG);
    /* similar: an unknown video is not found; a known one has its
     * neighbours, itself left out. */
    reel_reco_item it[4];
    assert_int_equal(reel_engine_similar(en, "nope", 3, it, &n), REEL_ENOENT);
    assert_int_equal(reel_engine_similar(en, "v4", 1, it, &n), 0);
    assert_int_equal(n, 1);
    assert_true(it[0].video == 3 || it[0].video == 5);
    assert_float_equal(it[0].score, cosf(5 * 3.14159265f / 180), 1e-4);
    finish(en, dir);
}

static void a_new_user_goes_from_cold_start_to_personalized(void **state)
{
    (void)state;
    char *dir = fixture();
    reel_engine *en = open_engine(dir);
    reel_reco_item it[8];
    reel_engine_source src;
    /* Unknown: trending and popular interleaved, v7 v0 v9. */
    uint32_t n = recommend(en, "newbie", 8, it, &src);
    assert_int_equal(src, REEL_ENGINE_COLD_START);
    assert_int_equal(n, 3);
    assert_int_equal(it[0].video, 7);
    assert_int_equal(it[1].video, 0);
    assert_int_equal(it[2].video, 9);
    assert_float_equal(it[0].score, 1.0, 0);
    assert_float_equal(it[1].score, 0.5, 0);
    /* An impression alone is no history. */
    reel_event_in e = event("newbie", "v3", REEL_EV_IMPRESSION, 6000);
    ingest_ok(en, &e, 1);
    n = recommend(en, "newbie", 8, it, &src);
    assert_int_equal(src, REEL_ENGINE_COLD_START);
    /* A watch makes it personal: the neighbours of v3. */
    e = event("newbie", "v3", REEL_EV_WATCH, 6001);
    ingest_ok(en, &e, 1);
    n = recommend(en, "newbie", 4, it, &src);
    assert_int_equal(src, REEL_ENGINE_PERSONALIZED);
    assert_int_equal(n, 4);
    assert_true(it[0].video == 2 || it[0].video == 4);
    assert_false(contains(it, n, 3));
    reel_engine_stats st;
    reel_engine_get_stats(en, &st);
    assert_int_equal(st.new_users, 1);
    assert_int_equal(st.users, 4);
    /* u has seen v0: the cold-start list without it. */
    n = recommend(en, "u", 0, it, &src);
    assert_int_equal(n, 0);
    assert_int_equal(reel_engine_recommend(en, "u", REEL_ENGINE_MAX_K + 1, NULL,
                                           it, &n, &src, NULL),
                     REEL_EINVAL);
    finish(en, dir);
}

static void cold_start_excludes_seen_videos(void **state)
{
    (void)state;
    char *dir = fixture();
    reel_engine *en = open_engine(dir);
    /* A user whose only video has no vector neighbours left: every other
     * video is seen, so retrieval finds nothing and cold start answers
     * without the seen ones. */
    reel_event_in ev[NV - 2];
    char ids[NV][8];
    uint32_t m = 0;
    for (int i = 0; i < NV; i++) {
        snprintf(ids[i], sizeof ids[i], "v%d", i);
        if (i != 7 && i != 9)
            ev[m++] = event("w", ids[i], REEL_EV_WATCH, 6000 + i);
    }
    ingest_ok(en, ev, m);
    reel_reco_item it[8];
    reel_engine_source src;
    uint32_t n = recommend(en, "w", 8, it, &src);
    assert_int_equal(src, REEL_ENGINE_PERSONALIZED);
    assert_int_equal(n, 2); /* v7 and v9: all that is left */
    /* Now both: nothing personal, and cold start has nothing unseen. */
    ev[0] = event("w", "v7", REEL_EV_WATCH, 7000);
    ev[1] = event("w", "v9", REEL_EV_WATCH, 7001);
    ingest_ok(en, ev, 2);
    n = recommend(en, "w", 8, it, &src);
    assert_int_equal(src, REEL_ENGINE_COLD_START);
    assert_int_equal(n, 0);
    finish(en, dir);
}

struct called {
    pthread_mutex_t mu;
    int n, err;
};

static void on_done(void *ctx, int err)
{
    struct called *c = ctx;
    pthread_mutex_lock(&c->mu);
    c->n++;
    c->err = err;
    pthread_mutex_unlock(&c->mu);
}

static void events_survive_a_reopen(void **state)
{
    (void)state;
    char *dir = fixture();
    reel_engine *en = open_engine(dir);
    reel_event_in ev[3] = {event("u", "v10", REEL_EV_WATCH, 6000),
                           event("fresh", "v3", REEL_EV_WATCH, 6001),
                           event("fresh", "v4", REEL_EV_SKIP, 6002)};
    ev[0].rec.watch_s = 42;
    ev[1].rec.id = "e-1";
    ev[1].rec.request_id = "r-1";
    /* Asynchronously: the callback comes once, after durability. */
    struct called c = {.n = 0};
    pthread_mutex_init(&c.mu, NULL);
    reel_engine_reject rej[3];
    uint32_t n_rej;
    assert_int_equal(reel_engine_ingest(en, ev, 3, rej, &n_rej, on_done, &c),
                     0);
    assert_int_equal(n_rej, 0);
    /* A synchronous call after it returns after both are applied (the
     * log applies in order). */
    reel_event_in more = event("fresh", "v5", REEL_EV_LIKE, 6003);
    ingest_ok(en, &more, 1);
    pthread_mutex_lock(&c.mu);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.err, 0);
    pthread_mutex_unlock(&c.mu);
    reel_reco_item before[8], after[8];
    reel_engine_source src;
    uint32_t nb = recommend(en, "fresh", 8, before, &src);
    assert_int_equal(src, REEL_ENGINE_PERSONALIZED);
    assert_int_equal(reel_engine_close(en), 0);

    en = open_engine(dir);
    reel_engine_stats st;
    reel_engine_get_stats(en, &st);
    assert_int_equal(st.events_replayed, 4);
    assert_int_equal(st.new_users, 1);
    reel_engine_event h[8];
    uint32_t n;
    uint64_t total;
    reel_engine_history(en, "fresh", 8, h, &n, &total);
    assert_int_equal(n, 3);
    assert_int_equal(h[0].video, 3);
    assert_int_equal(h[1].video, 4);
    assert_int_equal(h[1].type, REEL_EV_SKIP);
    assert_int_equal(h[2].video, 5);
    assert_float_equal(h[2].ts, 6003, 0);
    reel_engine_history(en, "u", 8, h, &n, &total);
    assert_int_equal(n, 2);
    assert_int_equal(h[1].video, 10);
    /* The same state gives the same answer. */
    uint32_t na = recommend(en, "fresh", 8, after, &src);
    assert_int_equal(src, REEL_ENGINE_PERSONALIZED);
    assert_int_equal(na, nb);
    for (uint32_t i = 0; i < na; i++) {
        assert_int_equal(after[i].video, before[i].video);
        assert_float_equal(after[i].score, before[i].score, 0);
    }
    /* New events continue the log after the replayed ones. */
    more = event("fresh", "v6", REEL_EV_WATCH, 6004);
    ingest_ok(en, &more, 1);
    assert_int_equal(reel_engine_close(en), 0);
    en = open_engine(dir);
    reel_engine_get_stats(en, &st);
    assert_int_equal(st.events_replayed, 5);
    pthread_mutex_destroy(&c.mu);
    finish(en, dir);
}

static void a_held_log_or_missing_vectors_refuse_the_open(void **state)
{
    (void)state;
    char *dir = fixture();
    reel_engine *en = open_engine(dir);
    reel_event_in e = event("u", "v1", REEL_EV_WATCH, 6000);
    ingest_ok(en, &e, 1);
    assert_int_equal(reel_engine_close(en), 0);
    /* A second log opener is refused while the first holds it. */
    en = open_engine(dir);
    reel_engine_opts o;
    reel_engine_opts_init(&o);
    reel_engine *en2;
    reel_diag d;
    assert_int_equal(reel_engine_open(dir, &o, &en2, &d), REEL_EBUSY);
    assert_null(en2);
    assert_int_equal(reel_engine_close(en), 0);
    /* Without vectors there is nothing to serve. */
    char *v = test_path(dir, "vectors/item2vec.reel");
    assert_int_equal(unlink(v), 0);
    free(v);
    assert_int_equal(reel_engine_open(dir, &o, &en2, &d), REEL_ENOENT);
    assert_non_null(strstr(d.msg, "reel build"));
    test_rmtree(dir);
    free(dir);
}

static void a_batch_above_the_record_limit_spans_records(void **state)
{
    (void)state;
    char *dir = fixture();
    reel_engine *en = open_engine(dir);
    /* 10,000 events with 256-byte user ids: about 2.8 MB, three records. */
    enum { N = REEL_ENGINE_MAX_BATCH, USERS = 50 };
    char(*ids)[REEL_MAX_ID_LEN + 1] = malloc(USERS * sizeof *ids);
    for (int u = 0; u < USERS; u++) {
        memset(ids[u], 'a' + u % 26, REEL_MAX_ID_LEN);
        snprintf(ids[u], 8, "%05d", u);
        ids[u][5] = 'x';
        ids[u][REEL_MAX_ID_LEN] = 0;
    }
    static const char *vids[NV] = {"v0", "v1", "v2", "v3", "v4",  "v5",
                                   "v6", "v7", "v8", "v9", "v10", "v11"};
    reel_event_in *ev = malloc(N * sizeof *ev);
    for (int i = 0; i < N; i++)
        ev[i] = event(ids[i % USERS], vids[i % NV], REEL_EV_WATCH, 6000 + i);
    reel_engine_reject *rej = malloc(N * sizeof *rej);
    uint32_t n_rej;
    assert_int_equal(reel_engine_ingest(en, ev, N, rej, &n_rej, NULL, NULL), 0);
    assert_int_equal(n_rej, 0);
    reel_engine_stats st;
    reel_engine_get_stats(en, &st);
    assert_int_equal(st.events_ingested, N);
    assert_int_equal(st.wal.records, 3);
    assert_int_equal(st.new_users, USERS);
    assert_int_equal(reel_engine_close(en), 0);
    en = open_engine(dir);
    reel_engine_get_stats(en, &st);
    assert_int_equal(st.events_replayed, N);
    reel_engine_event h[N / USERS];
    uint32_t n;
    uint64_t total;
    reel_engine_history(en, ids[7], N / USERS, h, &n, &total);
    assert_int_equal(total, N / USERS);
    for (uint32_t i = 0; i < n; i++)
        assert_float_equal(h[i].ts, 6000 + 7 + i * USERS, 0);
    free(rej);
    free(ev);
    free(ids);
    finish(en, dir);
}

struct writer {
    reel_engine *en;
    int id;
    char user[16];
};

/* 200 events of one user, one or two per call, half of them waited for
 * through a callback. */
static void *write_events(void *arg)
{
    struct writer *w = arg;
    static const char *vids[4] = {"v1", "v2", "v3", "v4"};
    struct called c = {.n = 0};
    pthread_mutex_init(&c.mu, NULL);
    int expected = 0;
    for (int i = 0; i < 200; i += 2) {
        reel_event_in ev[2] = {
            event(w->user, vids[i % 4], REEL_EV_CLICK, 6000 + i),
            event(w->user, vids[(i + 1) % 4], REEL_EV_CLICK, 6001 + i)};
        reel_engine_reject rej[2];
        uint32_t n_rej;
        if (i % 4) {
            assert_int_equal(
                reel_engine_ingest(w->en, ev, 2, rej, &n_rej, NULL, NULL), 0);
        } else {
            assert_int_equal(
                reel_engine_ingest(w->en, ev, 2, rej, &n_rej, on_done, &c), 0);
            expected++;
        }
        reel_reco_item it[4];
        uint32_t n;
        reel_engine_source src;
        assert_int_equal(
            reel_engine_recommend(w->en, w->user, 4, NULL, it, &n, &src, NULL),
            0);
    }
    /* A last synchronous call: by then every earlier batch is applied. */
    reel_event_in last = event(w->user, "v5", REEL_EV_CLICK, 7000);
    reel_engine_reject rej[1];
    uint32_t n_rej;
    assert_int_equal(
        reel_engine_ingest(w->en, &last, 1, rej, &n_rej, NULL, NULL), 0);
    pthread_mutex_lock(&c.mu);
    assert_int_equal(c.n, expected);
    pthread_mutex_unlock(&c.mu);
    pthread_mutex_destroy(&c.mu);
    return NULL;
}

static void concurrent_writers_and_readers_agree_after_replay(void **state)
{
    (void)state;
    char *dir = fixture();
    reel_engine *en = open_engine(dir);
    enum { W = 4 };
    struct writer w[W];
    pthread_t th[W];
    for (int i = 0; i < W; i++) {
        w[i] = (struct writer){.en = en, .id = i};
        snprintf(w[i].user, sizeof w[i].user, "%s%d", i % 2 ? "u" : "new", i);
        assert_int_equal(pthread_create(&th[i], NULL, write_events, &w[i]), 0);
    }
    for (int i = 0; i < W; i++)
        pthread_join(th[i], NULL);
    reel_engine_stats st;
    reel_engine_get_stats(en, &st);
    assert_int_equal(st.events_ingested, W * 201);
    reel_engine_event h[256];
    uint32_t n;
    uint64_t total;
    reel_engine_history(en, "new2", 256, h, &n, &total);
    assert_int_equal(n, 201);
    assert_int_equal(reel_engine_close(en), 0);
    en = open_engine(dir);
    reel_engine_get_stats(en, &st);
    assert_int_equal(st.events_replayed, W * 201);
    for (int i = 0; i < W; i++) {
        reel_engine_history(en, w[i].user, 256, h, &n, &total);
        assert_int_equal(n, 201);
        /* One writer's events keep their order. */
        for (uint32_t j = 0; j + 1 < n; j++)
            assert_true(h[j].ts < h[j + 1].ts);
    }
    finish(en, dir);
}

static void a_deleted_video_is_never_recommended_again(void **state)
{
    (void)state;
    char *dir = fixture();
    reel_engine *en = open_engine(dir);
    reel_reco_item it[8];
    reel_engine_source src;
    assert_int_equal(reel_engine_video_delete(en, "nope", NULL, NULL),
                     REEL_ENOENT);
    /* u's neighbours were v1 v2 v3; v1 goes, from every path. */
    assert_int_equal(reel_engine_video_delete(en, "v1", NULL, NULL), 0);
    assert_int_equal(reel_engine_video_delete(en, "v1", NULL, NULL), 0);
    assert_true(deleted(en, "v1"));
    assert_false(deleted(en, "v2"));
    uint32_t n = recommend(en, "u", 3, it, &src);
    assert_int_equal(src, REEL_ENGINE_PERSONALIZED);
    assert_int_equal(it[0].video, 2);
    assert_false(contains(it, n, 1));
    assert_int_equal(reel_engine_similar(en, "v0", 2, it, &n), 0);
    assert_int_equal(it[0].video, 2);
    /* The cold-start list loses v7 too once it is deleted. */
    struct called c = {.n = 0};
    pthread_mutex_init(&c.mu, NULL);
    assert_int_equal(reel_engine_video_delete(en, "v7", on_done, &c), 0);
    reel_event_in e = event("u", "v2", REEL_EV_IMPRESSION, 6000);
    ingest_ok(en, &e, 1); /* after it in the log: v7's deletion is in */
    pthread_mutex_lock(&c.mu);
    assert_int_equal(c.n, 1);
    pthread_mutex_unlock(&c.mu);
    n = recommend(en, "someone", 8, it, &src);
    assert_int_equal(src, REEL_ENGINE_COLD_START);
    assert_int_equal(n, 2);
    assert_int_equal(it[0].video, 0);
    assert_int_equal(it[1].video, 9);
    reel_engine_stats st;
    reel_engine_get_stats(en, &st);
    assert_int_equal(st.deleted, 2);
    /* Deletions survive a restart. */
    assert_int_equal(reel_engine_close(en), 0);
    en = open_engine(dir);
    assert_true(deleted(en, "v1"));
    assert_true(deleted(en, "v7"));
    reel_engine_get_stats(en, &st);
    assert_int_equal(st.deleted, 2);
    n = recommend(en, "someone", 8, it, &src);
    assert_int_equal(n, 2);
    pthread_mutex_destroy(&c.mu);
    finish(en, dir);
}

static void put_video(reel_engine *en, const char *id, const char *title,
                      const float *vec, uint32_t n_vec)
{
    reel_video_rec r = reel_video_rec_empty();
    r.id = id;
    r.title = title;
    reel_diag d;
    reel_diag_clear(&d);
    int rc = reel_engine_video_put(en, &r, vec, n_vec, NULL, &d, NULL, NULL);
    if (rc)
        fail_msg("put %s: %s", id, d.msg);
}

static void put_user(reel_engine *en, const char *id, int age,
                     const char *gender)
{
    reel_user_rec r = reel_user_rec_empty();
    r.id = id;
    r.age = age;
    r.gender = gender;
    reel_diag d;
    reel_diag_clear(&d);
    int rc = reel_engine_user_put(en, &r, NULL, &d, NULL, NULL);
    if (rc)
        fail_msg("put %s: %s", id, d.msg);
}

static uint32_t video_number(reel_engine *en, const char *id)
{
    for (uint32_t v = 0; v < 64; v++) {
        reel_arena a;
        reel_arena_init(&a, 256);
        const char *vid, *title;
        reel_engine_video_names(en, &v, 1, &a, &vid, &title);
        int same = vid && !strcmp(vid, id);
        reel_arena_free(&a);
        if (same)
            return v;
    }
    return REEL_NONE;
}

static void a_put_video_is_recommendable_at_once(void **state)
{
    (void)state;
    char *dir = fixture();
    reel_engine *en = open_engine(dir);
    /* n1 at 2.5 degrees: nearer to v0 than v1 is. */
    float x[DIM] = {cosf(2.5f * 3.14159265f / 180),
                    sinf(2.5f * 3.14159265f / 180)};
    float scaled[DIM] = {x[0] * 7, x[1] * 7};
    put_video(en, "n1", "New one", scaled, DIM);
    uint32_t n1 = video_number(en, "n1");
    assert_int_equal(n1, NV);
    reel_reco_item it[8];
    uint32_t n;
    assert_int_equal(reel_engine_similar(en, "v0", 3, it, &n), 0);
    assert_int_equal(it[0].video, n1);
    assert_float_equal(it[0].score, cosf(2.5f * 3.14159265f / 180), 1e-5);
    reel_engine_source src;
    n = recommend(en, "u", 3, it, &src);
    assert_int_equal(src, REEL_ENGINE_PERSONALIZED);
    assert_int_equal(it[0].video, n1);
    /* Events may name it now. */
    reel_event_in e = event("fresh", "n1", REEL_EV_WATCH, 6000);
    ingest_ok(en, &e, 1);
    /* A video without a vector reaches cold-start lists (no events yet). */
    put_video(en, "n2", "Bare", NULL, 0);
    n = recommend(en, "nobody", 8, it, &src);
    assert_int_equal(src, REEL_ENGINE_COLD_START);
    assert_true(contains(it, n, video_number(en, "n2")));
    /* Replacing metadata keeps the vector. */
    put_video(en, "n1", "Renamed", NULL, 0);
    reel_arena a;
    reel_arena_init(&a, 1024);
    reel_video_rec r;
    int dead, has_vec;
    assert_int_equal(reel_engine_video_get(en, "n1", &a, &r, &dead, &has_vec),
                     0);
    assert_string_equal(r.title, "Renamed");
    assert_true(has_vec);
    assert_false(dead);
    reel_arena_free(&a);
    /* A vector of the wrong size is refused before anything is logged. */
    reel_video_rec bad = reel_video_rec_empty();
    bad.id = "n3";
    reel_diag d;
    reel_diag_clear(&d);
    float three[3] = {1, 2, 3};
    assert_int_equal(
        reel_engine_video_put(en, &bad, three, 3, NULL, &d, NULL, NULL),
        REEL_EINVAL);
    assert_non_null(strstr(d.msg, "vector"));
    reel_engine_stats st;
    reel_engine_get_stats(en, &st);
    assert_int_equal(st.new_videos, 2);
    /* All of it is back after a restart (replayed from the log). */
    assert_int_equal(reel_engine_close(en), 0);
    en = open_engine(dir);
    assert_int_equal(video_number(en, "n1"), n1);
    assert_int_equal(reel_engine_similar(en, "v0", 3, it, &n), 0);
    assert_int_equal(it[0].video, n1);
    reel_engine_event h[4];
    uint64_t total;
    reel_engine_history(en, "fresh", 4, h, &n, &total);
    assert_int_equal(n, 1);
    assert_int_equal(h[0].video, n1);
    finish(en, dir);
}

/* With lists recomputed rarely, a new video still joins them at once. */
static void a_new_video_joins_stale_cold_lists_at_once(void **state)
{
    (void)state;
    char *dir = fixture();
    reel_engine_opts o = test_opts();
    o.cold_refresh_s = 3600;
    reel_engine *en = open_engine_with(dir, &o);
    put_video(en, "n2", "Bare", NULL, 0);
    reel_reco_item it[8];
    reel_engine_source src;
    uint32_t n = recommend(en, "nobody", 8, it, &src);
    assert_int_equal(src, REEL_ENGINE_COLD_START);
    /* trending v7, popular v7 (a duplicate), new n2: third of the walk */
    assert_true(contains(it, n, video_number(en, "n2")));
    assert_int_equal(it[1].video, video_number(en, "n2"));
    finish(en, dir);
}

static void cold_start_follows_the_demographic_segment(void **state)
{
    (void)state;
    char *dir = fixture();
    reel_engine *en = open_engine(dir);
    put_user(en, "a1", 30, "F");
    put_user(en, "a2", 31, "F");
    reel_event_in e = event("a2", "v11", REEL_EV_LIKE, 6001);
    ingest_ok(en, &e, 1);
    /* A new user of that segment sees its favourite first; one of
     * another segment, and one without attributes, the global list
     * (v7 first there). */
    put_user(en, "a3", 28, "F");
    put_user(en, "b1", 60, "F");
    reel_reco_item it[8];
    reel_engine_source src;
    recommend(en, "a3", 4, it, &src);
    assert_int_equal(src, REEL_ENGINE_COLD_START);
    assert_int_equal(it[0].video, 11);
    recommend(en, "b1", 4, it, &src);
    assert_int_not_equal(it[0].video, 11);
    recommend(en, "nobody", 4, it, &src);
    assert_int_not_equal(it[0].video, 11);
    reel_arena a;
    reel_arena_init(&a, 1024);
    reel_user_rec r;
    uint64_t events;
    assert_int_equal(reel_engine_user_get(en, "a2", &a, &r, &events), 0);
    assert_int_equal(r.age, 31);
    assert_string_equal(r.gender, "F");
    assert_int_equal(events, 1);
    assert_int_equal(reel_engine_user_get(en, "zz", &a, &r, &events),
                     REEL_ENOENT);
    reel_arena_free(&a);
    assert_int_equal(reel_engine_close(en), 0);
    /* A segment with fewer events than cold_segment_min is not used. */
    reel_engine_opts o = test_opts();
    o.cold_segment_min = 2;
    en = open_engine_with(dir, &o);
    recommend(en, "a3", 4, it, &src);
    assert_int_not_equal(it[0].video, 11);
    finish(en, dir);
}

/* Recommendations and histories of a few users, to compare two states. */
struct picture {
    reel_reco_item it[4][8];
    uint32_t n[4];
    reel_engine_source src[4];
    uint64_t total[4];
};

static void take(reel_engine *en, struct picture *p)
{
    static const char *const users[4] = {"u", "fresh", "a1", "nobody"};
    for (int i = 0; i < 4; i++) {
        p->n[i] = recommend(en, users[i], 8, p->it[i], &p->src[i]);
        reel_engine_event h[1];
        uint32_t n;
        reel_engine_history(en, users[i], 1, h, &n, &p->total[i]);
    }
}

static void same_picture(const struct picture *a, const struct picture *b)
{
    for (int i = 0; i < 4; i++) {
        assert_int_equal(a->n[i], b->n[i]);
        assert_int_equal(a->src[i], b->src[i]);
        assert_int_equal(a->total[i], b->total[i]);
        for (uint32_t j = 0; j < a->n[i]; j++) {
            assert_int_equal(a->it[i][j].video, b->it[i][j].video);
            assert_float_equal(a->it[i][j].score, b->it[i][j].score, 0);
        }
    }
}

static void a_snapshot_restores_the_state_and_truncates_the_log(void **state)
{
    (void)state;
    char *dir = fixture();
    reel_engine_opts o = test_opts();
    o.wal_segment_bytes = 256; /* a segment per record or two */
    reel_engine *en = open_engine_with(dir, &o);
    float x[DIM] = {1, 0.01f};
    put_video(en, "n1", "New", x, DIM);
    put_user(en, "a1", 30, "F");
    reel_event_in e[3] = {event("fresh", "v3", REEL_EV_WATCH, 6000),
                          event("a1", "n1", REEL_EV_LIKE, 6001),
                          event("u", "v5", REEL_EV_CLICK, 6002)};
    ingest_ok(en, e, 3);
    assert_int_equal(reel_engine_video_delete(en, "v1", NULL, NULL), 0);
    reel_diag d;
    reel_diag_clear(&d);
    assert_int_equal(reel_engine_snapshot(en, &d), 0);
    /* Nothing changed: nothing written. */
    assert_int_equal(reel_engine_snapshot(en, &d), 0);
    reel_engine_stats st;
    reel_engine_get_stats(en, &st);
    assert_int_equal(st.snapshots, 1);
    assert_int_equal(st.snapshot_lsn, 4);
    reel_event_in more = event("fresh", "v4", REEL_EV_WATCH, 6003);
    ingest_ok(en, &more, 1);
    struct picture before, after;
    take(en, &before);
    assert_int_equal(reel_engine_close(en), 0);

    /* The snapshot plus the one record after it. */
    en = open_engine_with(dir, &o);
    reel_engine_get_stats(en, &st);
    assert_int_equal(st.snapshot_lsn, 4);
    assert_int_equal(st.events_replayed, 1);
    assert_int_equal(st.deleted, 1);
    assert_int_equal(st.new_videos, 1);
    take(en, &after);
    same_picture(&before, &after);
    assert_true(deleted(en, "v1"));
    reel_reco_item it[4];
    uint32_t n;
    assert_int_equal(reel_engine_similar(en, "v0", 1, it, &n), 0);
    assert_int_equal(it[0].video, video_number(en, "n1"));
    /* A second snapshot lets the log go up to the first. */
    more = event("fresh", "v6", REEL_EV_WATCH, 6004);
    ingest_ok(en, &more, 1);
    assert_int_equal(reel_engine_snapshot(en, &d), 0);
    reel_engine_get_stats(en, &st);
    assert_int_equal(st.snapshot_lsn, 6);
    assert_true(st.wal.first_lsn > 1);
    assert_true(st.wal.first_lsn <= 5);
    take(en, &before);
    assert_int_equal(reel_engine_close(en), 0);
    /* Close with snapshot_on_close writes a third; two are kept. */
    en = open_engine_with(dir, &o);
    take(en, &after);
    same_picture(&before, &after);
    more = event("fresh", "v8", REEL_EV_WATCH, 6005);
    ingest_ok(en, &more, 1);
    assert_int_equal(reel_engine_close(en), 0);
    /* Close with snapshot_on_close writes one at 7; 6 and 7 are kept. */
    o.snapshot_on_close = 1;
    en = open_engine_with(dir, &o);
    assert_int_equal(reel_engine_close(en), 0);
    char *sdir = test_path(dir, "snapshots");
    uint64_t *lsns;
    size_t ns;
    assert_int_equal(reel_snapshot_list(sdir, &lsns, &ns), 0);
    assert_int_equal(ns, 2);
    assert_int_equal(lsns[0], 6);
    assert_int_equal(lsns[1], 7);
    free(lsns);
    /* A damaged newest snapshot falls back to the older one and the log
     * after it. */
    char *p = test_path(sdir, "snap-0000000000000007.reel");
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(truncate(p, sb.st_size / 2), 0);
    o.snapshot_on_close = 0;
    en = open_engine_with(dir, &o);
    reel_engine_get_stats(en, &st);
    assert_int_equal(st.snapshot_lsn, 6);
    assert_int_equal(st.events_replayed, 1);
    reel_engine_event h[8];
    uint64_t total;
    reel_engine_history(en, "fresh", 8, h, &n, &total);
    assert_int_equal(total, 4);
    assert_int_equal(h[3].video, 8);
    free(p);
    free(sdir);
    finish(en, dir);
}

static void a_snapshot_of_another_dataset_is_refused(void **state)
{
    (void)state;
    char *dir = fixture();
    reel_engine_opts o = test_opts();
    o.snapshot_on_close = 1;
    reel_engine *en = open_engine_with(dir, &o);
    reel_event_in e = event("u", "v3", REEL_EV_WATCH, 6000);
    ingest_ok(en, &e, 1);
    assert_int_equal(reel_engine_close(en), 0);
    /* Another dataset in the same place. */
    char *other = fixture();
    char *from = test_path(other, "dataset.reel");
    char *to = test_path(dir, "dataset.reel");
    reel_dsbuild *b;
    reel_dsbuild_new(&b);
    reel_video_rec v = reel_video_rec_empty();
    v.id = "v0";
    uint32_t idx;
    reel_diag d;
    assert_int_equal(reel_dsbuild_add_video(b, &v, &idx, &d), 0);
    assert_int_equal(reel_dsbuild_write(b, other, &d), 0);
    reel_dsbuild_free(b);
    assert_int_equal(rename(from, to), 0);
    reel_engine *en2;
    assert_int_equal(reel_engine_open(dir, &o, &en2, &d), REEL_EFORMAT);
    assert_non_null(strstr(d.msg, "another dataset"));
    free(from);
    free(to);
    test_rmtree(other);
    free(other);
    test_rmtree(dir);
    free(dir);
}

static void reload_swaps_the_vectors_and_keeps_put_ones(void **state)
{
    (void)state;
    char *dir = fixture();
    reel_engine *en = open_engine(dir);
    float x[DIM] = {0, 1}; /* at 90 degrees: next to v11 (55) on that side */
    put_video(en, "n1", "New", x, DIM);
    reel_reco_item it[4];
    uint32_t n;
    assert_int_equal(reel_engine_similar(en, "v0", 1, it, &n), 0);
    assert_int_equal(it[0].video, 1);
    /* New vectors: video i at -i * 5 degrees; v0's neighbour is still
     * v1, but v11's nearest is now v10, and n1 (kept) is far from all. */
    reel_dataset *ds;
    reel_diag d;
    assert_int_equal(reel_dataset_open(dir, &ds, &d), 0);
    reel_vectors *vec;
    reel_vectors_new(NV, DIM, "{}", &vec);
    for (int i = 0; i < NV; i++) {
        float *r = reel_vectors_row(vec, (uint32_t)i);
        r[0] = cosf((float)i * 5 * 3.14159265f / 180);
        r[1] = -sinf((float)i * 5 * 3.14159265f / 180);
        vec->has[i] = 1;
    }
    vec->unit_norm = 1;
    char *path = test_path(dir, "vectors/item2vec.reel");
    assert_int_equal(reel_vectors_save(vec, ds, path, &d), 0);
    free(path);
    reel_vectors_free(vec);
    reel_dataset_close(ds);
    assert_int_equal(reel_engine_similar(en, "n1", 1, it, &n), 0);
    assert_int_equal(it[0].video, 11);
    reel_diag_clear(&d);
    assert_int_equal(reel_engine_reload(en, &d), 0);
    assert_int_equal(reel_engine_similar(en, "n1", 1, it, &n), 0);
    assert_int_equal(it[0].video, 0); /* the nearest to 90 degrees now */
    reel_engine_stats st;
    reel_engine_get_stats(en, &st);
    assert_int_equal(st.reloads, 1);
    assert_int_equal(st.videos_indexed, NV + 1);
    /* A broken file changes nothing. */
    path = test_path(dir, "vectors/item2vec.reel");
    FILE *f = fopen(path, "wb");
    fputs("junk", f);
    fclose(f);
    free(path);
    assert_int_not_equal(reel_engine_reload(en, &d), 0);
    assert_int_equal(reel_engine_similar(en, "n1", 1, it, &n), 0);
    assert_int_equal(it[0].video, 0);
    finish(en, dir);
}

static void explain_gives_each_item_its_row(void **state)
{
    (void)state;
    char *dir = fixture();
    reel_engine *en = open_engine(dir);
    reel_reco_item it[3];
    reel_engine_explain ex[3];
    uint32_t n;
    reel_engine_source src;
    assert_int_equal(reel_engine_recommend(en, "u", 3, NULL, it, &n, &src, ex),
                     0);
    assert_int_equal(src, REEL_ENGINE_PERSONALIZED);
    for (uint32_t i = 0; i < n; i++) {
        assert_true(ex[i].has_x);
        assert_false(ex[i].has_phi); /* no ranker in the fixture */
        /* Retrieval order without a ranker: x_rank is the position. */
        assert_float_equal(ex[i].x[REEL_F_x_rank], (float)i, 0);
        assert_float_equal(ex[i].x[REEL_F_x_sim], it[i].sim, 1e-6);
    }
    assert_int_equal(
        reel_engine_recommend(en, "nobody", 3, NULL, it, &n, &src, ex), 0);
    assert_int_equal(src, REEL_ENGINE_COLD_START);
    assert_false(ex[0].has_x);
    /* Per-request options: fewer candidates than k still answer k. */
    reel_reco_opts o = reel_reco_opts_default();
    o.candidates = 2;
    assert_int_equal(reel_engine_recommend(en, "u", 3, &o, it, &n, &src, NULL),
                     0);
    assert_int_equal(n, 3);
    finish(en, dir);
}

/* Readers while one thread adds videos (with and without vectors), users
 * and events, and another snapshots and reloads: every call succeeds, and
 * a restart from the last snapshot and the log gives the same state. */
struct churn {
    reel_engine *en;
    atomic_int stop;
};

static void *churn_reader(void *arg)
{
    struct churn *c = arg;
    static const char *const users[3] = {"u", "cu0", "nobody"};
    for (int i = 0; !atomic_load(&c->stop); i++) {
        reel_reco_item it[8];
        reel_engine_explain ex[8];
        uint32_t n;
        reel_engine_source src;
        assert_int_equal(reel_engine_recommend(c->en, users[i % 3], 8, NULL, it,
                                               &n, &src, ex),
                         0);
        assert_int_equal(reel_engine_similar(c->en, "v0", 4, it, &n), 0);
        reel_arena a;
        reel_arena_init(&a, 1024);
        const char *id[8], *title[8];
        uint32_t v[8] = {0, 1, 2, 3, 12, 13, 14, 15};
        reel_engine_video_names(c->en, v, 8, &a, id, title);
        reel_video_rec r;
        int dead, has_vec;
        reel_engine_video_get(c->en, "cv3", &a, &r, &dead, &has_vec);
        reel_arena_free(&a);
    }
    return NULL;
}

static void *churn_admin(void *arg)
{
    struct churn *c = arg;
    while (!atomic_load(&c->stop)) {
        reel_diag d;
        reel_diag_clear(&d);
        assert_int_equal(reel_engine_snapshot(c->en, &d), 0);
        assert_int_equal(reel_engine_reload(c->en, &d), 0);
    }
    return NULL;
}

static void catalogue_churn_with_snapshots_and_reloads(void **state)
{
    (void)state;
    char *dir = fixture();
    reel_engine *en = open_engine(dir);
    struct churn c = {.en = en};
    atomic_init(&c.stop, 0);
    pthread_t r[2], a;
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&r[i], NULL, churn_reader, &c), 0);
    assert_int_equal(pthread_create(&a, NULL, churn_admin, &c), 0);
    for (int i = 0; i < 60; i++) {
        char vid[16], uid[16];
        snprintf(vid, sizeof vid, "cv%d", i);
        snprintf(uid, sizeof uid, "cu%d", i % 7);
        float x[DIM] = {cosf((float)i), sinf((float)i)};
        put_video(en, vid, "churn", i % 2 ? x : NULL, i % 2 ? DIM : 0);
        put_user(en, uid, 20 + i % 40, i % 2 ? "F" : "M");
        reel_event_in e[2] = {event(uid, vid, REEL_EV_WATCH, 6000 + i),
                              event("u", vid, REEL_EV_CLICK, 6000 + i)};
        ingest_ok(en, e, 2);
    }
    atomic_store(&c.stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(r[i], NULL);
    pthread_join(a, NULL);
    struct picture before, after;
    take(en, &before);
    reel_engine_stats st;
    reel_engine_get_stats(en, &st);
    assert_int_equal(st.new_videos, 60);
    assert_int_equal(reel_engine_close(en), 0);
    en = open_engine(dir);
    take(en, &after);
    same_picture(&before, &after);
    finish(en, dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_ingested_watch_changes_the_next_recommendation),
        cmocka_unit_test(unknown_videos_are_refused_one_by_one),
        cmocka_unit_test(a_new_user_goes_from_cold_start_to_personalized),
        cmocka_unit_test(cold_start_excludes_seen_videos),
        cmocka_unit_test(events_survive_a_reopen),
        cmocka_unit_test(a_batch_above_the_record_limit_spans_records),
        cmocka_unit_test(a_deleted_video_is_never_recommended_again),
        cmocka_unit_test(concurrent_writers_and_readers_agree_after_replay),
        cmocka_unit_test(a_held_log_or_missing_vectors_refuse_the_open),
        cmocka_unit_test(a_put_video_is_recommendable_at_once),
        cmocka_unit_test(a_new_video_joins_stale_cold_lists_at_once),
        cmocka_unit_test(cold_start_follows_the_demographic_segment),
        cmocka_unit_test(a_snapshot_restores_the_state_and_truncates_the_log),
        cmocka_unit_test(a_snapshot_of_another_dataset_is_refused),
        cmocka_unit_test(reload_swaps_the_vectors_and_keeps_put_ones),
        cmocka_unit_test(explain_gives_each_item_its_row),
        cmocka_unit_test(catalogue_churn_with_snapshots_and_reloads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
