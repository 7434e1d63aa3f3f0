/* Tests of src/store/redis and the engine's Redis mode against a real
 * redis-server on a Unix socket (the ctest fixture redis, started by
 * tests/support/redis-fixture; REEL_TEST_REDIS names its directory):
 * events applied through Redis give exactly the embedded state's
 * counters, event ids are applied once, concurrent writers lose no
 * update, a Redis that goes away is reported and reconnected to, and two
 * replicas serve the same recommendations as the embedded store, keep
 * doing so through a Redis restart (degraded while it is down). */
#include "testutil.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "data/dataset.h"
#include "data/interactions.h"
#include "data/meta.h"
#include "embed/vectors.h"
#include "rank/features.h"
#include "reco/engine.h"
#include "store/redis.h"

enum { NV = 40, NU = 12, DIM = 2 };

static const char *redis_dir(void)
{
    const char *d = getenv("REEL_TEST_REDIS");
    if (!d)
        fail_msg("REEL_TEST_REDIS is not set (run through ctest: the redis "
                 "fixture starts the server)");
    return d;
}

static char url[4200];

static const char *redis_url(void)
{
    snprintf(url, sizeof url, "unix://%s/redis.sock", redis_dir());
    return url;
}

static void fixture_cmd(const char *what)
{
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "bash '%s' %s '%s'",
             getenv("REEL_TEST_REDIS_FIXTURE"), what, redis_dir());
    assert_int_equal(system(cmd), 0);
}

static void flushall(void)
{
    char cmd[4300];
    snprintf(cmd, sizeof cmd,
             "redis-cli -s '%s/redis.sock' flushall >/dev/null", redis_dir());
    assert_int_equal(system(cmd), 0);
}

/* Videos v0..v39 (angle i * 4 degrees; categories, languages and
 * durations so that every counter moves), users u0..u11 with ages and
 * genders (segments), a few events of each. */
static char *fixture(void)
{
    char *dir = test_tmpdir();
    reel_dsbuild *b;
    reel_dsbuild_new(&b);
    reel_diag d;
    static const char *cats[] = {"drama", "comedy", "news", "sport"};
    static const char *langs[] = {"en", "fr", "de"};
    for (int i = 0; i < NV; i++) {
        char id[8], title[16];
        snprintf(id, sizeof id, "v%d", i);
        snprintf(title, sizeof title, "Title %d", i);
        reel_video_rec v = reel_video_rec_empty();
        v.id = id;
        v.title = title;
        const char *c[2] = {cats[i % 4], cats[(i / 4) % 4]};
        v.categories = c;
        v.n_categories = 2;
        v.language = langs[i % 3];
        v.duration_s = 600 + 60 * i;
        uint32_t idx;
        assert_int_equal(reel_dsbuild_add_video(b, &v, &idx, &d), 0);
    }
    for (int u = 0; u < NU; u++) {
        char id[8];
        snprintf(id, sizeof id, "u%d", u);
        reel_user_rec r = reel_user_rec_empty();
        r.id = id;
        r.age = 18 + 5 * u;
        r.gender = u % 2 ? "F" : "M";
        uint32_t idx;
        assert_int_equal(reel_dsbuild_add_user(b, &r, &idx, &d), 0);
    }
    for (int i = 0; i < 60; i++) {
        char uid[8];
        snprintf(uid, sizeof uid, "u%d", i % NU);
        reel_event_rec e = reel_event_rec_empty();
        e.user = reel_dsbuild_user_ref(b, uid, strlen(uid));
        e.video = (uint32_t)((i * 7) % NV);
        e.type = i % 5 == 0 ? REEL_EV_IMPRESSION : REEL_EV_WATCH;
        e.watch_s = 100 + i;
        e.ts = 1000 + 60 * i;
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
        r[0] = cosf((float)i * 4 * 3.14159265f / 180);
        r[1] = sinf((float)i * 4 * 3.14159265f / 180);
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

/* Video ids "v<i>" both ways. */
static uint32_t vindex(void *ctx, const char *id, size_t len)
{
    (void)ctx;
    if (len < 2 || len > 4 || id[0] != 'v')
        return REEL_NONE;
    uint32_t v = 0;
    for (size_t i = 1; i < len; i++) {
        if (id[i] < '0' || id[i] > '9')
            return REEL_NONE;
        v = v * 10 + (uint32_t)(id[i] - '0');
    }
    return v < NV ? v : REEL_NONE;
}

static char vnames[NV][8];

static const char *vname(void *ctx, uint32_t v)
{
    (void)ctx;
    return vnames[v];
}

static const reel_redis_ids IDS = {NULL, NV, vindex, vname};

static reel_redis *connect_store(void)
{
    reel_redis *r;
    reel_diag d;
    assert_int_equal(reel_redis_open(redis_url(), NULL, &r, &d), 0);
    assert_int_equal(reel_redis_ping(r), 0);
    return r;
}

static uint64_t rng = 88172645463325252ull;

static uint32_t next(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static char user_names[NU][8];

/* n random events from time t on (one per second). */
static void random_events(reel_redis_event *ev, uint32_t n, double t)
{
    static const int types[] = {REEL_EV_WATCH,      REEL_EV_CLICK,
                                REEL_EV_IMPRESSION, REEL_EV_RATING,
                                REEL_EV_LIKE,       REEL_EV_SKIP};
    for (uint32_t i = 0; i < n; i++) {
        int type = types[next(6)];
        uint32_t u = next(NU);
        ev[i] = (reel_redis_event){
            .user = user_names[u],
            .video = next(NV),
            .type = (uint8_t)type,
            .seg = u % 3 ? u % 4 : REEL_NO_SEGMENT,
            .ts = t + i,
            .watch_s = type == REEL_EV_WATCH ? (float)next(3000) : NAN,
            .rating =
                type == REEL_EV_RATING ? 0.5f * (float)(1 + next(10)) : NAN};
    }
}

static void names_init(void)
{
    for (int i = 0; i < NV; i++)
        snprintf(vnames[i], sizeof vnames[i], "v%d", i);
    for (int u = 0; u < NU; u++)
        snprintf(user_names[u], sizeof user_names[u], "u%d", u);
}

static void users_equal(const reel_fs_user *a, const reel_fs_user *b)
{
    assert_true(a->last_ts == b->last_ts ||
                (isnan(a->last_ts) && isnan(b->last_ts)));
    assert_true(a->share_ts == b->share_ts);
    assert_int_equal(a->views, b->views);
    assert_int_equal(a->impressions, b->impressions);
    assert_int_equal(a->wf_n, b->wf_n);
    assert_int_equal(a->rating_n, b->rating_n);
    assert_true(a->wf_sum == b->wf_sum);
    assert_true(a->rating_sum == b->rating_sum);
    assert_memory_equal(a->cat, b->cat, sizeof a->cat);
    assert_memory_equal(a->lang, b->lang, sizeof a->lang);
    uint32_t ra[REEL_FEAT_RING], rb[REEL_FEAT_RING];
    uint32_t na = reel_fs_user_recent(a, ra), nb = reel_fs_user_recent(b, rb);
    assert_int_equal(na, nb);
    assert_memory_equal(ra, rb, na * sizeof *ra);
}

/* Sums in another order (users written in several transactions put
 * their events in the log in another order) round differently. */
static void close_to(double a, double b)
{
    if (fabs(a - b) > 1e-5 * fmax(1, fabs(a)))
        fail_msg("%.9g against %.9g", a, b);
}

static void videos_equal(const reel_fs_video *a, const reel_fs_video *b)
{
    assert_true(a->ts == b->ts);
    assert_int_equal(a->views, b->views);
    assert_int_equal(a->impressions, b->impressions);
    assert_int_equal(a->wf_n, b->wf_n);
    assert_int_equal(a->rating_n, b->rating_n);
    close_to(a->wf_sum, b->wf_sum);
    close_to(a->rating_sum, b->rating_sum);
    close_to(a->d1, b->d1);
    close_to(a->d7, b->d7);
}

static long long redis_int(const char *cmd);
static long long command_calls(const char *cmd);

/* A test's data directory, dataset and feature state, on an empty
 * Redis. */
struct env {
    char *dir;
    reel_dataset *ds;
    reel_featstate *fs;
};

static void env_open(struct env *e)
{
    names_init();
    flushall();
    e->dir = fixture();
    reel_diag d;
    assert_int_equal(reel_dataset_open(e->dir, &e->ds, &d), 0);
    assert_int_equal(reel_featstate_new(e->ds, &e->fs), 0);
}

static void env_close(struct env *e)
{
    reel_featstate_free(e->fs);
    reel_dataset_close(e->ds);
    test_rmtree(e->dir);
    free(e->dir);
}

/* Every video's statistics as a process starting now sees them: the
 * checkpoint's records, then the video log after the checkpoint's
 * position (each video skipping what its record includes). Returns the
 * log position reached. */
static reel_redis_sid video_state(reel_redis *r, const reel_featstate *fs,
                                  reel_redis_video *out)
{
    reel_redis_sid at;
    assert_int_equal(reel_redis_videos_at(r, &at), 0);
    uint32_t all[NV];
    for (uint32_t v = 0; v < NV; v++)
        all[v] = v;
    assert_int_equal(reel_redis_videos_get(r, &IDS, all, NV, out), 0);
    reel_redis_vevent *ev = NULL;
    size_t cap = 0;
    for (;;) {
        uint32_t n;
        int gap;
        assert_int_equal(reel_redis_vlog(r, &IDS, &at, 7, &ev, &cap, &n, &gap),
                         0);
        assert_false(gap);
        if (!n)
            break;
        for (uint32_t i = 0; i < n; i++)
            if (reel_redis_sid_cmp(ev[i].at, out[ev[i].video].at) > 0)
                reel_redis_video_apply(fs, &out[ev[i].video], &ev[i]);
    }
    free(ev);
    return at;
}

/* The slow twin: the embedded state applied event by event; tx_users
 * per transaction (0: every write by the compare-and-set script). */
static void applies_events_as_the_embedded_state(uint32_t tx_users)
{
    struct env env;
    env_open(&env);
    reel_diag d;
    reel_dataset *ds = env.ds;
    reel_featstate *fs = env.fs;
    reel_featstate_grow(fs, NU + 1);
    reel_redis_opts o;
    reel_redis_opts_init(&o);
    o.tx_users = tx_users;
    reel_redis *r;
    assert_int_equal(reel_redis_open(redis_url(), &o, &r, &d), 0);
    assert_int_equal(redis_int("config resetstat >/dev/null; echo 0"), 0);
    enum { N = 600, BATCH = 37 };
    reel_redis_event *ev = malloc(N * sizeof *ev);
    random_events(ev, N, 2e9);
    for (uint32_t at = 0; at < N; at += BATCH) {
        uint32_t n = N - at < BATCH ? N - at : BATCH, dup;
        assert_int_equal(reel_redis_apply(r, fs, &IDS, ev + at, n, &dup), 0);
        assert_int_equal(dup, 0);
    }
    /* The users are not in the state's numbering: use grown rows. */
    reel_featstate *local;
    assert_int_equal(reel_featstate_new(ds, &local), 0);
    reel_featstate_grow(local, reel_featstate_n_users(local) + NU);
    uint32_t base = reel_featstate_n_users(local) - NU;
    for (uint32_t i = 0; i < N; i++)
        reel_featstate_apply(local, base + (uint32_t)atoi(ev[i].user + 1),
                             ev[i].video, ev[i].type, ev[i].ts, ev[i].watch_s,
                             ev[i].rating);
    reel_redis_hist h[1000];
    for (uint32_t u = 0; u < NU; u++) {
        reel_fs_user got;
        uint32_t nh;
        uint64_t found;
        assert_int_equal(reel_redis_user_get(r, user_names[u], &IDS, &got, h,
                                             1000, &nh, &found),
                         0);
        users_equal(&got, reel_featstate_user(local, base + u));
        uint32_t want = 0;
        for (uint32_t i = 0; i < N; i++)
            want += !strcmp(ev[i].user, user_names[u]) &&
                    ev[i].type != REEL_EV_IMPRESSION;
        assert_int_equal(nh, want);
        for (uint32_t i = 1; i < nh; i++) /* newest first */
            assert_true(h[i - 1].ts > h[i].ts);
    }
    reel_redis_video st[NV];
    video_state(r, fs, st);
    for (uint32_t v = 0; v < NV; v++) {
        videos_equal(&st[v].fs, reel_featstate_video(local, v));
        uint32_t pos = 0, seg[REEL_SEGMENTS] = {0};
        for (uint32_t i = 0; i < N; i++)
            if (ev[i].video == v && reel_event_is_positive(ev[i].type)) {
                pos++;
                if (ev[i].seg != REEL_NO_SEGMENT)
                    seg[ev[i].seg]++;
            }
        assert_int_equal(st[v].pos, pos);
        assert_memory_equal(st[v].seg, seg, sizeof seg);
    }
    /* The path taken (reading the log takes transactions too). */
    assert_true(command_calls("exec") > 0);
    assert_true(tx_users ? !command_calls("evalsha")
                         : command_calls("evalsha") > 0);
    reel_redis_close(r);
    free(ev);
    reel_featstate_free(local);
    env_close(&env);
}

static void store_applies_events_as_the_embedded_state(void **state)
{
    (void)state;
    applies_events_as_the_embedded_state(5); /* several per batch */
}

static void the_script_applies_events_as_the_embedded_state(void **state)
{
    (void)state;
    applies_events_as_the_embedded_state(0);
}

static void event_ids_are_applied_once(void **state)
{
    (void)state;
    struct env env;
    env_open(&env);
    reel_featstate *fs = env.fs;
    reel_redis *r = connect_store();
    reel_redis_event ev[3] = {
        {.user = "a",
         .id = "e1",
         .video = 1,
         .type = REEL_EV_WATCH,
         .ts = 10,
         .watch_s = 60,
         .rating = NAN,
         .seg = REEL_NO_SEGMENT},
        {.user = "a",
         .id = "e2",
         .video = 2,
         .type = REEL_EV_WATCH,
         .ts = 11,
         .watch_s = 60,
         .rating = NAN,
         .seg = REEL_NO_SEGMENT},
        /* The same id again within the batch. */
        {.user = "a",
         .id = "e1",
         .video = 1,
         .type = REEL_EV_WATCH,
         .ts = 12,
         .watch_s = 60,
         .rating = NAN,
         .seg = REEL_NO_SEGMENT},
    };
    uint32_t dup;
    assert_int_equal(reel_redis_apply(r, fs, &IDS, ev, 3, &dup), 0);
    assert_int_equal(dup, 1);
    /* A redelivered batch (at least once): nothing applied twice. */
    assert_int_equal(reel_redis_apply(r, fs, &IDS, ev, 3, &dup), 0);
    assert_int_equal(dup, 3);
    reel_fs_user u;
    reel_redis_hist h[8];
    uint32_t nh;
    uint64_t found;
    assert_int_equal(reel_redis_user_get(r, "a", &IDS, &u, h, 8, &nh, &found),
                     0);
    assert_int_equal(u.views, 2);
    assert_int_equal(nh, 2);
    reel_redis_video st[NV];
    video_state(r, fs, st);
    assert_int_equal(st[1].fs.views, 1);
    assert_int_equal(st[2].fs.views, 1);
    reel_redis_close(r);
    env_close(&env);
}

static long long redis_int(const char *cmd)
{
    char sh[8600];
    snprintf(sh, sizeof sh, "redis-cli -s '%s/redis.sock' %s", redis_dir(),
             cmd);
    FILE *f = popen(sh, "r");
    assert_non_null(f);
    long long x = -1;
    assert_int_equal(fscanf(f, "%lld", &x), 1);
    pclose(f);
    return x;
}

/* The history and the event ids are trimmed to their caps; batches
 * larger than one MGET (1,000 keys) and one LPUSH (1,000 entries) read
 * and write every record. */
static void caps_and_large_batches(void **state)
{
    (void)state;
    struct env env;
    env_open(&env);
    reel_diag d;
    reel_featstate *fs = env.fs;
    reel_redis_opts o;
    reel_redis_opts_init(&o);
    o.history_max = 1200;
    o.event_ids_max = 3;
    reel_redis *r;
    assert_int_equal(reel_redis_open(redis_url(), &o, &r, &d), 0);
    enum { N = 2500 };
    reel_redis_event *ev = calloc(N, sizeof *ev);
    char(*ids)[16] = calloc(N, sizeof *ids);
    char(*users)[16] = calloc(N, sizeof *users);
    /* One user, 1,500 watches with ids: history 1,200, ids 3. */
    for (int i = 0; i < 1500; i++) {
        snprintf(ids[i], sizeof ids[i], "e%d", i);
        ev[i] = (reel_redis_event){.user = "big",
                                   .id = ids[i],
                                   .video = (uint32_t)(i % NV),
                                   .type = REEL_EV_WATCH,
                                   .ts = 100 + i,
                                   .watch_s = 30,
                                   .rating = NAN,
                                   .seg = REEL_NO_SEGMENT};
    }
    uint32_t dup;
    assert_int_equal(reel_redis_apply(r, fs, &IDS, ev, 1500, &dup), 0);
    assert_int_equal(dup, 0);
    reel_fs_user u;
    reel_redis_hist *h = calloc(2000, sizeof *h);
    uint32_t nh;
    uint64_t found;
    assert_int_equal(
        reel_redis_user_get(r, "big", &IDS, &u, h, 2000, &nh, &found), 0);
    assert_int_equal(nh, 1200);
    assert_true(h[0].ts == 100 + 1499); /* newest first */
    assert_true(h[1199].ts == 100 + 300);
    assert_int_equal(u.views, 1500);
    assert_int_equal(redis_int("zcard 'reel:{u:big}:ev'"), 3);
    assert_int_equal(redis_int("llen 'reel:{u:big}:h'"), 1200);
    /* The newest ids are kept: a redelivery of the last event is a
     * duplicate. */
    assert_int_equal(reel_redis_apply(r, fs, &IDS, ev + 1499, 1, &dup), 0);
    assert_int_equal(dup, 1);
    /* 2,500 users in one batch: three MGETs of users. */
    for (int i = 0; i < N; i++) {
        snprintf(users[i], sizeof users[i], "w%d", i);
        ev[i] = (reel_redis_event){.user = users[i],
                                   .video = (uint32_t)(i % NV),
                                   .type = REEL_EV_WATCH,
                                   .ts = 5000 + i,
                                   .watch_s = 30,
                                   .rating = NAN,
                                   .seg = REEL_NO_SEGMENT};
    }
    assert_int_equal(reel_redis_apply(r, fs, &IDS, ev, N, &dup), 0);
    for (int i = 0; i < N; i += 499) {
        assert_int_equal(
            reel_redis_user_get(r, users[i], &IDS, &u, h, 10, &nh, &found), 0);
        assert_int_equal(u.views, 1);
        assert_int_equal(nh, 1);
        assert_int_equal(h[0].video, (uint32_t)(i % NV));
    }
    /* Every video's statistics: 1500 / 40 watches of "big" and
     * 2500 / 40 of the w users each. */
    reel_redis_video st[NV];
    video_state(r, fs, st);
    for (uint32_t v = 0; v < NV; v++) {
        uint32_t want = (1500 / NV + (v < 1500 % NV)) + (N / NV + (v < N % NV));
        assert_int_equal(st[v].pos, want);
    }
    /* 2,500 video reads (each video many times): three MGETs. */
    uint32_t *vid = calloc(N, sizeof *vid);
    reel_redis_video *rec = calloc(N, sizeof *rec);
    for (int i = 0; i < N; i++)
        vid[i] = (uint32_t)((i * 7) % NV);
    assert_int_equal(reel_redis_videos_get(r, &IDS, vid, N, rec), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(rec[i].pos, 0); /* no checkpoint yet */
    free(vid);
    free(rec);
    free(h);
    free(ev);
    free(ids);
    free(users);
    reel_redis_close(r);
    env_close(&env);
}

static void sleep_ms(int ms);

/* Checkpoints: the records of a checkpoint carry the log position they
 * include, one process at a time writes one (a lock), the log is trimmed
 * before the previous checkpoint (a reader behind that sees a gap), and a
 * process starting from the checkpoint sees the same statistics. */
static void checkpoints_trim_the_log(void **state)
{
    (void)state;
    struct env env;
    env_open(&env);
    reel_featstate *fs = env.fs;
    reel_redis *r = connect_store();
    enum { B = 40 };
    reel_redis_event ev[B];
    uint32_t dup;
    for (int b = 0; b < 3; b++) {
        random_events(ev, B, 3e9 + 100 * b);
        assert_int_equal(reel_redis_apply(r, fs, &IDS, ev, B, &dup), 0);
    }
    reel_redis_video st0[NV], st1[NV];
    reel_redis_sid c1 = video_state(r, fs, st0);
    reel_redis_sid first = {0, 0}, tail;
    reel_redis_vevent *e = NULL;
    size_t cap = 0;
    uint32_t n;
    int gap;
    assert_int_equal(reel_redis_vlog(r, &IDS, &first, 1, &e, &cap, &n, &gap),
                     0);
    assert_true(n > 0 && !gap);
    assert_true(reel_redis_sid_cmp(first, c1) < 0);
    assert_int_equal(reel_redis_vlog_tail(r, &tail), 0);
    assert_int_equal(reel_redis_sid_cmp(tail, c1), 0);

    int mine;
    reel_redis_sid was;
    assert_int_equal(reel_redis_ckpt_begin(r, 100, &mine, &was), 0);
    assert_true(mine);
    assert_true(!was.ms && !was.seq);
    for (uint32_t v = 0; v < NV; v++) {
        st0[v].at = c1;
        assert_int_equal(reel_redis_ckpt_video(r, &IDS, v, &st0[v]), 0);
    }
    assert_int_equal(reel_redis_ckpt_end(r, c1, was), 0);
    /* The lock holds for 100 ms. */
    assert_int_equal(reel_redis_ckpt_begin(r, 100, &mine, &was), 0);
    assert_false(mine);
    assert_int_equal(reel_redis_sid_cmp(video_state(r, fs, st1), c1), 0);
    for (uint32_t v = 0; v < NV; v++) {
        videos_equal(&st1[v].fs, &st0[v].fs);
        assert_int_equal(st1[v].pos, st0[v].pos);
    }

    /* More events, a second checkpoint: the log before the first goes. */
    random_events(ev, B, 4e9);
    assert_int_equal(reel_redis_apply(r, fs, &IDS, ev, B, &dup), 0);
    reel_redis_video st2[NV];
    reel_redis_sid c2 = video_state(r, fs, st2);
    assert_true(reel_redis_sid_cmp(c2, c1) > 0);
    sleep_ms(150);
    assert_int_equal(reel_redis_ckpt_begin(r, 100, &mine, &was), 0);
    assert_true(mine);
    assert_int_equal(reel_redis_sid_cmp(was, c1), 0);
    for (uint32_t v = 0; v < NV; v++) {
        st2[v].at = c2;
        assert_int_equal(reel_redis_ckpt_video(r, &IDS, v, &st2[v]), 0);
    }
    assert_int_equal(reel_redis_ckpt_end(r, c2, was), 0);
    reel_redis_sid at = {0, 0};
    assert_int_equal(reel_redis_vlog(r, &IDS, &at, 8, &e, &cap, &n, &gap), 0);
    assert_true(gap);
    at = first;
    assert_int_equal(reel_redis_vlog(r, &IDS, &at, 8, &e, &cap, &n, &gap), 0);
    assert_true(gap);
    at = c1;
    assert_int_equal(reel_redis_vlog(r, &IDS, &at, 8, &e, &cap, &n, &gap), 0);
    assert_false(gap);
    assert_true(n > 0);
    assert_int_equal(reel_redis_sid_cmp(at, c2), 0);
    /* A writer whose lock was lost (expired, taken over) changes nothing:
     * the position stays. */
    sleep_ms(150);
    assert_int_equal(reel_redis_ckpt_begin(r, 100, &mine, &was), 0);
    assert_true(mine);
    assert_int_equal(redis_int("del reel:checkpoint"), 1);
    assert_int_equal(reel_redis_ckpt_end(r, (reel_redis_sid){c2.ms + 1, 0}, c2),
                     REEL_EBUSY);
    assert_int_equal(reel_redis_videos_at(r, &was), 0);
    assert_int_equal(reel_redis_sid_cmp(was, c2), 0);
    /* From the checkpoint: the same statistics. */
    reel_redis_video st3[NV];
    assert_int_equal(reel_redis_sid_cmp(video_state(r, fs, st3), c2), 0);
    for (uint32_t v = 0; v < NV; v++) {
        videos_equal(&st3[v].fs, &st2[v].fs);
        assert_int_equal(st3[v].pos, st2[v].pos);
        assert_memory_equal(st3[v].seg, st2[v].seg, sizeof st2[v].seg);
    }
    free(e);
    reel_redis_close(r);
    env_close(&env);
}

struct writer {
    const reel_featstate *fs;
    int id;
    int rc;
};

enum { W_BATCHES = 30, W_EVENTS = 50 };

/* Watches of distinct videos 0..4 by users w0..w2, every user a new
 * video each time (no repeats), so each event is one view. */
static void *write_main(void *arg)
{
    struct writer *w = arg;
    reel_redis *r;
    reel_diag d;
    if (reel_redis_open(redis_url(), NULL, &r, &d)) {
        w->rc = -1;
        return NULL;
    }
    static const char *users[] = {"w0", "w1", "w2"};
    reel_redis_event ev[W_EVENTS];
    for (int b = 0; b < W_BATCHES && !w->rc; b++) {
        for (int i = 0; i < W_EVENTS; i++)
            ev[i] = (reel_redis_event){.user = users[i % 3],
                                       .video = (uint32_t)(i % 5),
                                       .type = REEL_EV_IMPRESSION,
                                       .ts = 100 + b,
                                       .watch_s = NAN,
                                       .rating = NAN,
                                       .seg = REEL_NO_SEGMENT};
        uint32_t dup;
        w->rc = reel_redis_apply(r, w->fs, &IDS, ev, W_EVENTS, &dup);
    }
    reel_redis_close(r);
    return NULL;
}

/* Calls of a command since the statistics were reset. */
static long long command_calls(const char *cmd)
{
    char sh[8700];
    snprintf(sh, sizeof sh,
             "redis-cli -s '%s/redis.sock' info commandstats | "
             "sed -n 's/^cmdstat_%s:calls=\\([0-9]*\\).*/\\1/p'",
             redis_dir(), cmd);
    FILE *f = popen(sh, "r");
    assert_non_null(f);
    long long x = 0;
    if (fscanf(f, "%lld", &x) != 1)
        x = 0;
    pclose(f);
    return x;
}

/* Three writers on the same users: transactions that lose a race (EXEC
 * aborted) go through the compare-and-set script; no update is lost. */
static void concurrent_writers_lose_no_update(void **state)
{
    (void)state;
    struct env env;
    env_open(&env);
    reel_featstate *fs = env.fs;
    assert_int_equal(redis_int("config resetstat >/dev/null; echo 0"), 0);
    enum { W = 3 };
    struct writer w[W];
    pthread_t th[W];
    for (int i = 0; i < W; i++) {
        w[i] = (struct writer){fs, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, write_main, &w[i]), 0);
    }
    for (int i = 0; i < W; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].rc, 0);
    }
    reel_redis *r = connect_store();
    reel_redis_video st[NV];
    video_state(r, fs, st);
    for (int v = 0; v < 5; v++)
        assert_int_equal(st[v].fs.impressions, W * W_BATCHES * W_EVENTS / 5);
    uint32_t total = 0;
    for (int u = 0; u < 3; u++) {
        reel_fs_user fu;
        uint32_t nh;
        uint64_t found;
        char id[4];
        snprintf(id, sizeof id, "w%d", u);
        assert_int_equal(
            reel_redis_user_get(r, id, &IDS, &fu, NULL, 0, &nh, &found), 0);
        total += fu.impressions;
    }
    assert_int_equal(total, W * W_BATCHES * W_EVENTS);
    /* Transactions first; whether any lost a race (and went through the
     * script) depends on the threads' timing. */
    assert_true(command_calls("exec") >= W * W_BATCHES);
    reel_redis_close(r);
    env_close(&env);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void a_redis_that_goes_away_is_unavailable_then_reconnected(void **state)
{
    (void)state;
    names_init();
    flushall();
    reel_redis *r = connect_store();
    fixture_cmd("stop");
    reel_fs_user u;
    uint32_t nh;
    uint64_t found;
    assert_int_equal(
        reel_redis_user_get(r, "x", &IDS, &u, NULL, 0, &nh, &found),
        REEL_EUNAVAILABLE);
    /* Backing off: fails fast without trying. */
    assert_int_equal(reel_redis_ping(r), REEL_EUNAVAILABLE);
    assert_true(strlen(reel_redis_error(r)) > 0);
    fixture_cmd("start");
    int rc = REEL_EUNAVAILABLE;
    for (int i = 0; i < 100 && rc; i++) {
        sleep_ms(50);
        rc = reel_redis_ping(r);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(
        reel_redis_user_get(r, "x", &IDS, &u, NULL, 0, &nh, &found), 0);
    assert_int_equal(found, 0);
    assert_true(isnan(u.last_ts));
    reel_redis_close(r);
}

/* ------------------------------------------------------------- replicas */

static reel_engine *open_engine(const char *dir, const char *store)
{
    reel_engine_opts o;
    reel_engine_opts_init(&o);
    o.cold_refresh_s = 0;
    o.cold_segment_min = 1;
    o.snapshot_every_s = 0;
    o.snapshot_every_events = 0;
    o.snapshot_on_close = 0;
    o.store_url = store;
    o.store_refresh_s = 0.05;
    o.store_checkpoint_s = 0.1; /* checkpoints and trims during the test */
    reel_engine *en;
    reel_diag d;
    reel_diag_clear(&d);
    int rc = reel_engine_open(dir, &o, &en, &d);
    if (rc)
        fail_msg("open: %s: %s", reel_strerror(rc), d.msg);
    return en;
}

static void wait_ready(reel_engine *en, int want)
{
    reel_engine_stats st;
    for (int i = 0; i < 400; i++) {
        reel_engine_get_stats(en, &st);
        if ((st.redis_ready && st.redis_up) == want)
            return;
        sleep_ms(25);
    }
    fail_msg("the engine's Redis readiness stayed %d (%s)", !want,
             st.redis_error);
}

/* Waits until en has copied the video statistics twice more (the copy
 * after a write). */
static void wait_refresh(reel_engine *en)
{
    reel_engine_stats st;
    reel_engine_get_stats(en, &st);
    uint64_t at = st.redis_refreshes;
    for (int i = 0; i < 400; i++) {
        sleep_ms(10);
        reel_engine_get_stats(en, &st);
        if (st.redis_refreshes >= at + 2)
            return;
    }
    fail_msg("no refresh of the video statistics");
}

static void same_recommendations_at(int line, reel_engine *a, reel_engine *b,
                                    const char *user)
{
    reel_reco_item x[10], y[10];
    uint32_t nx, ny;
    reel_engine_source sx, sy;
    assert_int_equal(
        reel_engine_recommend(a, user, 10, NULL, x, &nx, &sx, NULL), 0);
    assert_int_equal(
        reel_engine_recommend(b, user, 10, NULL, y, &ny, &sy, NULL), 0);
    if (nx != ny || sx != sy)
        fail_msg("line %d: %s: %u items (source %d) against %u (source %d)",
                 line, user, nx, sx, ny, sy);
    for (uint32_t i = 0; i < nx; i++)
        if (x[i].video != y[i].video || x[i].score != y[i].score)
            fail_msg("line %d: %s: item %u: video %u score %.9g against "
                     "video %u score %.9g (source %d)",
                     line, user, i, x[i].video, x[i].score, y[i].video,
                     y[i].score, sx);
}

#define same_recommendations(a, b, user)                                       \
    same_recommendations_at(__LINE__, a, b, user)

static reel_event_in event(const char *user, const char *video, int type,
                           double ts, const char *id)
{
    reel_event_in e = {.user = user, .video = video};
    e.rec = reel_event_rec_empty();
    e.rec.type = type;
    e.rec.ts = ts;
    e.rec.watch_s = 300;
    e.rec.id = id;
    return e;
}

static void replicas_serve_as_the_embedded_store_through_a_restart(void **state)
{
    (void)state;
    names_init();
    flushall();
    char *dir = fixture();
    /* The embedded store writes a log into its directory: its own copy
     * (the same dataset, so the same fingerprint). */
    char *edir = fixture();
    reel_engine *emb = open_engine(edir, NULL);
    reel_engine *r1 = open_engine(dir, redis_url());
    reel_engine *r2 = open_engine(dir, redis_url());
    wait_ready(r1, 1);
    wait_ready(r2, 1);
    static const char *users[] = {"u0", "u3", "u7", "nobody"};
    for (int i = 0; i < 4; i++) {
        same_recommendations(emb, r1, users[i]);
        same_recommendations(emb, r2, users[i]);
    }
    /* An event through one replica changes both (and the embedded
     * store given the same event agrees). */
    reel_event_in ev[2] = {event("u3", "v20", REEL_EV_WATCH, 9000, "x1"),
                           event("newbie", "v30", REEL_EV_WATCH, 9001, "x2")};
    reel_engine_reject rej[2];
    uint32_t n_rej;
    assert_int_equal(reel_engine_ingest(r1, ev, 2, rej, &n_rej, NULL, NULL), 0);
    assert_int_equal(n_rej, 0);
    assert_int_equal(reel_engine_ingest(emb, ev, 2, rej, &n_rej, NULL, NULL),
                     0);
    wait_refresh(r2);
    for (int i = 0; i < 4; i++)
        same_recommendations(emb, r2, users[i]);
    same_recommendations(emb, r2, "newbie");
    /* A replica started after checkpoints (the log trimmed since) loads
     * the checkpoint and the log after it. */
    for (int i = 0; i < 3; i++) {
        reel_event_in more[4];
        char vid[4][8];
        static const char *who[] = {"u1", "u5", "u9", "newbie"};
        for (int j = 0; j < 4; j++) {
            snprintf(vid[j], sizeof vid[j], "v%d", 3 + 9 * i + j);
            more[j] =
                event(who[j], vid[j], REEL_EV_WATCH, 9100 + 10 * i + j, NULL);
        }
        assert_int_equal(
            reel_engine_ingest(r2, more, 4, rej, &n_rej, NULL, NULL), 0);
        assert_int_equal(
            reel_engine_ingest(emb, more, 4, rej, &n_rej, NULL, NULL), 0);
        sleep_ms(150);
    }
    wait_refresh(r1);
    reel_engine_stats est;
    reel_engine_get_stats(r1, &est);
    reel_engine_stats est2;
    reel_engine_get_stats(r2, &est2);
    assert_true(est.redis_checkpoints + est2.redis_checkpoints >= 2);
    reel_engine *r3 = open_engine(dir, redis_url());
    wait_ready(r3, 1);
    static const char *late[] = {"u1", "u5", "u9", "newbie", "u3", "nobody"};
    for (int i = 0; i < 6; i++) {
        same_recommendations(emb, r1, late[i]);
        same_recommendations(emb, r3, late[i]);
    }
    reel_engine_close(r3);
    reel_engine_event h[64];
    uint32_t n;
    uint64_t total;
    assert_int_equal(reel_engine_history(r2, "newbie", 64, h, &n, &total), 0);
    assert_int_equal(n, 4); /* oldest first */
    assert_int_equal(h[0].video, 30);

    /* Redis goes away: cold start marked degraded, events refused. */
    fixture_cmd("stop");
    reel_reco_item it[10];
    reel_engine_source src;
    assert_int_equal(
        reel_engine_recommend(r1, "u3", 10, NULL, it, &n, &src, NULL), 0);
    assert_int_equal(src, REEL_ENGINE_DEGRADED);
    assert_true(n > 0);
    assert_int_equal(reel_engine_ingest(r1, ev, 1, rej, &n_rej, NULL, NULL),
                     REEL_EUNAVAILABLE);
    assert_int_equal(reel_engine_history(r1, "u3", 64, h, &n, &total),
                     REEL_EUNAVAILABLE);
    wait_ready(r1, 0);
    /* It comes back empty (no persistence): seeded again from the
     * dataset, so the dataset's users are served as before. */
    fixture_cmd("start");
    wait_ready(r1, 1);
    wait_ready(r2, 1);
    /* r2 may not have seen the outage: its next refreshes find its log
     * position gone (a new log) and load the seeded state. */
    wait_refresh(r1);
    wait_refresh(r2);
    char *fdir = fixture();
    reel_engine *fresh = open_engine(fdir, NULL);
    for (int i = 0; i < 4; i++) {
        same_recommendations(fresh, r1, users[i]);
        same_recommendations(fresh, r2, users[i]);
    }
    reel_engine_close(fresh);
    reel_engine_close(r2);
    reel_engine_close(r1);
    reel_engine_close(emb);
    test_rmtree(fdir);
    free(fdir);
    test_rmtree(edir);
    free(edir);
    test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(store_applies_events_as_the_embedded_state),
        cmocka_unit_test(the_script_applies_events_as_the_embedded_state),
        cmocka_unit_test(event_ids_are_applied_once),
        cmocka_unit_test(caps_and_large_batches),
        cmocka_unit_test(checkpoints_trim_the_log),
        cmocka_unit_test(concurrent_writers_lose_no_update),
        cmocka_unit_test(
            a_redis_that_goes_away_is_unavailable_then_reconnected),
        cmocka_unit_test(
            replicas_serve_as_the_embedded_store_through_a_restart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
