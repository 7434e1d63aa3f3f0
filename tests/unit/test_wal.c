/* Unit tests of the write-ahead log and snapshots (docs/formats/wal.md,
 * docs/formats/snapshot.md): round trips across rotation, recovery from
 * torn tails, refusal of damage elsewhere, concurrent appenders, both
 * fsync policies, a process killed mid-ingestion, snapshots, truncation. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "base/rng.h"
#include "store/snapshot.h"
#include "store/wal.h"

#define REC_HEADER 20

/* ---------------------------------------------------------------- helpers */

static reel_wal *open_wal(const char *dir, enum reel_wal_sync sync,
                          uint64_t segment_bytes)
{
    reel_wal_opts o;
    reel_wal_opts_init(&o);
    o.sync = sync;
    o.interval_ms = 10;
    o.segment_bytes = segment_bytes;
    reel_wal *wal;
    reel_diag d;
    reel_diag_clear(&d);
    int rc = reel_wal_open(dir, &o, &wal, &d);
    if (rc)
        fail_msg("reel_wal_open(%s): %s: %s", dir, reel_strerror(rc), d.msg);
    return wal;
}

/* The payload of the record with key k: 8 bytes of k, then k % 97 bytes
 * derived from k, so every record has its own length and content. */
static uint32_t make_payload(uint64_t k, unsigned char *buf)
{
    uint32_t len = 8 + (uint32_t)(k % 97);
    memcpy(buf, &k, 8);
    for (uint32_t i = 8; i < len; i++)
        buf[i] = (unsigned char)(k * 31 + i);
    return len;
}

static int payload_ok(const void *p, uint32_t len, uint64_t *key)
{
    unsigned char want[128];
    if (len < 8)
        return 0;
    memcpy(key, p, 8);
    return make_payload(*key, want) == len && !memcmp(want, p, len);
}

static uint64_t append_key(reel_wal *wal, uint64_t k)
{
    unsigned char buf[128];
    uint32_t len = make_payload(k, buf);
    uint64_t lsn;
    assert_int_equal(reel_wal_append(wal, (uint8_t)(1 + k % 7), buf, len, &lsn),
                     0);
    return lsn;
}

/* Collects a replay: every record's payload must be make_payload(lsn). */
struct seen {
    uint64_t n, first, last;
    uint64_t stop_at; /* return REEL_ECANCELED at this LSN */
    int bad;
};

static int collect(void *ctx, uint64_t lsn, uint8_t type, const void *payload,
                   uint32_t len)
{
    struct seen *s = ctx;
    uint64_t key;
    if (!payload_ok(payload, len, &key) || key != lsn || type != 1 + lsn % 7 ||
        (s->n && lsn != s->last + 1))
        s->bad = 1;
    if (!s->n)
        s->first = lsn;
    s->last = lsn;
    s->n++;
    return lsn == s->stop_at ? REEL_ECANCELED : 0;
}

static struct seen replay_all(reel_wal *wal, uint64_t from)
{
    struct seen s = {0};
    assert_int_equal(reel_wal_replay(wal, from, collect, &s), 0);
    assert_false(s.bad);
    return s;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The segment files of a log directory, sorted (caller frees). */
static char **list_logs(const char *dir, size_t *n)
{
    DIR *dh = opendir(dir);
    assert_non_null(dh);
    char **v = NULL;
    *n = 0;
    struct dirent *e;
    while ((e = readdir(dh))) {
        size_t l = strlen(e->d_name);
        if (l < 4 || strcmp(e->d_name + l - 4, ".log"))
            continue;
        v = realloc(v, (*n + 1) * sizeof *v);
        v[(*n)++] = test_path(dir, e->d_name);
    }
    closedir(dh);
    qsort(v, *n, sizeof *v, cmp_str);
    return v;
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    *len = (size_t)sb.st_size;
    unsigned char *buf = malloc(*len ? *len : 1);
    assert_int_equal(pread(fd, buf, *len, 0), (ssize_t)*len);
    close(fd);
    return buf;
}

static void spit(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    close(fd);
}

static void flip(const char *path, size_t off)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char c;
    assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
    c ^= 0x10;
    assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
    close(fd);
}

static uint64_t file_size(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return (uint64_t)sb.st_size;
}

/* Offset of the last record of a segment (walking the length fields). */
static size_t last_record_offset(const unsigned char *buf, size_t len)
{
    size_t off = 32, prev = 0;
    while (off < len) {
        uint32_t plen;
        memcpy(&plen, buf + off, 4);
        prev = off;
        off += REC_HEADER + plen;
    }
    assert_int_equal(off, len);
    return prev;
}

/* ------------------------------------------------------------ round trip */

static void records_round_trip_across_segment_rotation(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_wal *wal = open_wal(dir, REEL_WAL_SYNC_ALWAYS, 512);
    assert_int_equal(reel_wal_first_lsn(wal), 1);
    assert_int_equal(reel_wal_last_lsn(wal), 0);
    for (uint64_t k = 1; k <= 300; k++)
        assert_int_equal(append_key(wal, k), k);
    assert_int_equal(reel_wal_wait_durable(wal, 300), 0);
    reel_wal_stats st;
    reel_wal_get_stats(wal, &st);
    assert_int_equal(st.records, 300);
    assert_int_equal(st.durable_lsn, 300);
    assert_true(st.segments > 20);
    assert_true(st.fsyncs >= st.segments - 1);
    uint64_t hist = 0;
    for (int i = 0; i < REEL_WAL_BATCH_BUCKETS; i++)
        hist += st.batch_hist[i];
    assert_int_equal(hist, st.batches);
    /* Replay reads the files while the log is open. */
    struct seen s = replay_all(wal, 1);
    assert_int_equal(s.n, 300);
    assert_int_equal(reel_wal_close(wal), 0);

    /* Each file is named by its first record's LSN, and its size stays
     * within the segment size unless it holds a single record. */
    size_t n;
    char **logs = list_logs(dir, &n);
    assert_int_equal(n, st.segments);
    assert_non_null(strstr(logs[0], "/0000000000000001.log"));
    for (size_t i = 0; i < n; i++)
        assert_true(file_size(logs[i]) <= 512);
    free_list(logs, n);

    wal = open_wal(dir, REEL_WAL_SYNC_ALWAYS, 512);
    reel_wal_get_stats(wal, &st);
    assert_int_equal(st.recovered_records, 300);
    assert_int_equal(st.truncated_bytes, 0);
    assert_int_equal(reel_wal_last_lsn(wal), 300);
    s = replay_all(wal, 1);
    assert_int_equal(s.n, 300);
    assert_int_equal(s.first, 1);
    assert_int_equal(s.last, 300);
    s = replay_all(wal, 123);
    assert_int_equal(s.n, 178);
    assert_int_equal(s.first, 123);
    s = replay_all(wal, 0);
    assert_int_equal(s.n, 300);
    /* A callback's error stops the replay and comes back. */
    struct seen stop = {.stop_at = 150};
    assert_int_equal(reel_wal_replay(wal, 100, collect, &stop), REEL_ECANCELED);
    assert_int_equal(stop.n, 51);
    /* Appends continue the sequence after a reopen. */
    assert_int_equal(append_key(wal, 301), 301);
    assert_int_equal(reel_wal_close(wal), 0);
    wal = open_wal(dir, REEL_WAL_SYNC_ALWAYS, 512);
    assert_int_equal(replay_all(wal, 1).n, 301);
    assert_int_equal(reel_wal_close(wal), 0);
    test_rmtree(dir);
    free(dir);
}

static void append_refuses_bad_records_and_takes_the_largest(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_wal *wal = open_wal(dir, REEL_WAL_SYNC_ALWAYS, 4096);
    uint64_t lsn;
    assert_int_equal(reel_wal_append(wal, 0, "x", 1, &lsn), REEL_EINVAL);
    unsigned char *big = calloc(1, REEL_WAL_RECORD_MAX + 1);
    assert_int_equal(
        reel_wal_append(wal, 1, big, REEL_WAL_RECORD_MAX + 1, &lsn),
        REEL_ETOOBIG);
    assert_int_equal(reel_wal_wait_durable(wal, 1), REEL_EINVAL);
    big[REEL_WAL_RECORD_MAX - 1] = 7;
    /* The largest record, bigger than a segment, goes in alone. */
    assert_int_equal(reel_wal_append(wal, 9, big, REEL_WAL_RECORD_MAX, &lsn),
                     0);
    assert_int_equal(lsn, 1);
    assert_int_equal(reel_wal_append(wal, 2, NULL, 0, &lsn), 0);
    assert_int_equal(lsn, 2);
    assert_int_equal(reel_wal_close(wal), 0);
    free(big);
    wal = open_wal(dir, REEL_WAL_SYNC_ALWAYS, 4096);
    assert_int_equal(reel_wal_last_lsn(wal), 2);
    reel_wal_stats st;
    reel_wal_get_stats(wal, &st);
    assert_int_equal(st.segments, 2);
    assert_int_equal(reel_wal_close(wal), 0);
    test_rmtree(dir);
    free(dir);
}

/* -------------------------------------------------------------- recovery */

static void torn_tail_is_truncated_at_every_offset(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_wal *wal = open_wal(dir, REEL_WAL_SYNC_ALWAYS, 400);
    const uint64_t n = 40;
    for (uint64_t k = 1; k <= n; k++)
        append_key(wal, k);
    assert_int_equal(reel_wal_close(wal), 0);
    size_t nl;
    char **logs = list_logs(dir, &nl);
    assert_true(nl >= 3);
    const char *tail = logs[nl - 1];
    size_t len;
    unsigned char *whole = slurp(tail, &len);
    size_t start = last_record_offset(whole, len);
    assert_true(len - start > REC_HEADER + 8);

    /* One warning per cut is expected; keep the output readable. */
    int warn = reel_log_enabled(REEL_LOG_WARN);
    reel_log_set_level(REEL_LOG_ERROR);
    for (size_t cut = start; cut < len; cut++) {
        spit(tail, whole, cut);
        wal = open_wal(dir, REEL_WAL_SYNC_ALWAYS, 400);
        reel_wal_stats st;
        reel_wal_get_stats(wal, &st);
        assert_int_equal(st.truncated_bytes, cut - start);
        assert_int_equal(reel_wal_last_lsn(wal), n - 1);
        assert_int_equal(file_size(tail), start);
        /* The log goes on from the last whole record. */
        assert_int_equal(append_key(wal, n), n);
        assert_int_equal(reel_wal_close(wal), 0);
        wal = open_wal(dir, REEL_WAL_SYNC_ALWAYS, 400);
        assert_int_equal(replay_all(wal, 1).n, n);
        assert_int_equal(reel_wal_close(wal), 0);
    }
    if (warn)
        reel_log_set_level(REEL_LOG_WARN);
    /* Zeros after the last record (a file extended, never written). */
    unsigned char *zeros = calloc(1, len + 100);
    memcpy(zeros, whole, len);
    spit(tail, zeros, len + 100);
    wal = open_wal(dir, REEL_WAL_SYNC_ALWAYS, 400);
    assert_int_equal(reel_wal_last_lsn(wal), n);
    assert_int_equal(file_size(tail), len);
    assert_int_equal(reel_wal_close(wal), 0);
    free(zeros);

    /* A segment cut inside its header (crash while it was created) is
     * removed and the one before takes the appends. */
    char *half = test_path(dir, "0000000000000029.log"); /* LSN 41 */
    spit(half, "REELWAL", 7);
    wal = open_wal(dir, REEL_WAL_SYNC_ALWAYS, 400);
    assert_int_equal(reel_wal_last_lsn(wal), n);
    assert_int_equal(access(half, F_OK), -1);
    assert_int_equal(append_key(wal, n + 1), n + 1);
    assert_int_equal(reel_wal_close(wal), 0);
    wal = open_wal(dir, REEL_WAL_SYNC_ALWAYS, 400);
    assert_int_equal(replay_all(wal, 1).n, n + 1);
    assert_int_equal(reel_wal_close(wal), 0);
    free(half);
    free(whole);
    free_list(logs, nl);
    test_rmtree(dir);
    free(dir);
}

static void flipped_byte_in_the_last_record_truncates_it(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_wal *wal = open_wal(dir, REEL_WAL_SYNC_ALWAYS, 1 << 20);
    for (uint64_t k = 1; k <= 10; k++)
        append_key(wal, k);
    assert_int_equal(reel_wal_close(wal), 0);
    size_t nl;
    char **logs = list_logs(dir, &nl);
    assert_int_equal(nl, 1);
    size_t len;
    unsigned char *whole = slurp(logs[0], &len);
    size_t start = last_record_offset(whole, len);
    /* In the payload, in the LSN, in the length, in the type. */
    size_t where[] = {len - 1, start + REC_HEADER + 3, start + 9, start,
                      start + 16};
    for (size_t i = 0; i < sizeof where / sizeof *where; i++) {
        spit(logs[0], whole, len);
        flip(logs[0], where[i]);
        wal = open_wal(dir, REEL_WAL_SYNC_ALWAYS, 1 << 20);
        assert_int_equal(reel_wal_last_lsn(wal), 9);
        reel_wal_stats st;
        reel_wal_get_stats(wal, &st);
        assert_int_equal(st.truncated_bytes, len - start);
        assert_int_equal(replay_all(wal, 1).n, 9);
        assert_int_equal(reel_wal_close(wal), 0);
    }
    free(whole);
    free_list(logs, nl);
    test_rmtree(dir);
    free(dir);
}

static void
damage_before_the_last_segment_is_refused_naming_the_file(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_wal *wal = open_wal(dir, REEL_WAL_SYNC_ALWAYS, 400);
    for (uint64_t k = 1; k <= 40; k++)
        append_key(wal, k);
    assert_int_equal(reel_wal_close(wal), 0);
    size_t nl;
    char **logs = list_logs(dir, &nl);
    assert_true(nl >= 4);
    size_t len;
    unsigned char *first = slurp(logs[0], &len);
    reel_wal_opts o;
    reel_wal_opts_init(&o);
    o.segment_bytes = 400;
    reel_diag d;

    /* A flipped byte in the first segment's last record: it is a whole
     * segment before the tail, so it is damage, not a torn write. */
    flip(logs[0], len - 2);
    assert_int_equal(reel_wal_open(dir, &o, &wal, &d), REEL_ECORRUPT);
    assert_null(wal);
    assert_non_null(strstr(d.msg, "0000000000000001.log"));
    assert_non_null(strstr(d.msg, "offset"));
    assert_non_null(strstr(d.msg, "checksum"));
    /* Nothing was truncated. */
    assert_int_equal(file_size(logs[0]), len);
    spit(logs[0], first, len);

    /* A damaged header of a middle segment. */
    flip(logs[1], 3);
    assert_int_equal(reel_wal_open(dir, &o, &wal, &d), REEL_ECORRUPT);
    assert_non_null(strstr(d.msg, logs[1]));
    flip(logs[1], 3);

    /* A missing middle segment leaves a hole in the LSNs. */
    size_t mlen;
    unsigned char *mid = slurp(logs[2], &mlen);
    assert_int_equal(unlink(logs[2]), 0);
    assert_int_equal(reel_wal_open(dir, &o, &wal, &d), REEL_ECORRUPT);
    assert_non_null(strstr(d.msg, "missing"));
    spit(logs[2], mid, mlen);

    /* A short middle segment (its last record cut off). */
    size_t l1;
    unsigned char *seg1 = slurp(logs[1], &l1);
    spit(logs[1], seg1, l1 - 5);
    assert_int_equal(reel_wal_open(dir, &o, &wal, &d), REEL_ECORRUPT);
    assert_non_null(strstr(d.msg, logs[1]));
    spit(logs[1], seg1, l1);
    free(seg1);

    /* Restored, it opens whole. */
    assert_int_equal(reel_wal_open(dir, &o, &wal, &d), 0);
    assert_int_equal(reel_wal_last_lsn(wal), 40);
    assert_int_equal(reel_wal_close(wal), 0);
    free(mid);
    free(first);
    free_list(logs, nl);
    test_rmtree(dir);
    free(dir);
}

/* ----------------------------------------------------------- concurrency */

#define THREADS 4
#define PER_THREAD 2000

struct appender {
    reel_wal *wal;
    uint32_t t;
    uint64_t lsns[PER_THREAD];
};

struct tagged {
    uint32_t t, seq;
    uint64_t check;
};

static uint64_t mix(uint32_t t, uint32_t seq)
{
    uint64_t x = ((uint64_t)t << 32 | seq) * 0x9E3779B97F4A7C15ull;
    return x ^ (x >> 29);
}

static uint32_t make_tagged(uint32_t t, uint32_t seq, unsigned char *buf)
{
    struct tagged g = {t, seq, mix(t, seq)};
    memcpy(buf, &g, sizeof g);
    uint32_t len = (uint32_t)sizeof g + seq % 50;
    for (uint32_t i = sizeof g; i < len; i++)
        buf[i] = (unsigned char)(t * 7 + seq + i);
    return len;
}

static int tagged_ok(const void *p, uint32_t len, struct tagged *g)
{
    unsigned char want[128];
    if (len < sizeof *g)
        return 0;
    memcpy(g, p, sizeof *g);
    return g->t < 64 && make_tagged(g->t, g->seq, want) == len &&
           !memcmp(want, p, len);
}

static void *append_many(void *arg)
{
    struct appender *a = arg;
    unsigned char buf[128];
    for (uint32_t i = 0; i < PER_THREAD; i++) {
        uint32_t len = make_tagged(a->t, i, buf);
        assert_int_equal(reel_wal_append(a->wal, 3, buf, len, &a->lsns[i]), 0);
        if (i % 100 == 99)
            assert_int_equal(reel_wal_wait_durable(a->wal, a->lsns[i]), 0);
    }
    return NULL;
}

struct by_lsn {
    uint64_t n;
    uint64_t next;     /* the LSN expected next */
    struct tagged *at; /* indexed by LSN - 1 */
    size_t cap;
    int bad;
};

static int collect_tagged(void *ctx, uint64_t lsn, uint8_t type,
                          const void *payload, uint32_t len)
{
    struct by_lsn *b = ctx;
    struct tagged g;
    if (!tagged_ok(payload, len, &g) || lsn != b->next || lsn > b->cap)
        b->bad = 1;
    else
        b->at[lsn - 1] = g;
    b->next = lsn + 1;
    b->n++;
    return 0;
}

static void concurrent_appenders_get_unique_increasing_lsns(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_wal *wal = open_wal(dir, REEL_WAL_SYNC_ALWAYS, 64 << 10);
    static struct appender ap[THREADS];
    pthread_t th[THREADS];
    for (uint32_t t = 0; t < THREADS; t++) {
        ap[t].wal = wal;
        ap[t].t = t;
        assert_int_equal(pthread_create(&th[t], NULL, append_many, &ap[t]), 0);
    }
    for (uint32_t t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    const uint64_t total = THREADS * PER_THREAD;
    assert_int_equal(reel_wal_last_lsn(wal), total);
    assert_int_equal(reel_wal_wait_durable(wal, total), 0);
    unsigned char *hit = calloc(total + 1, 1);
    for (uint32_t t = 0; t < THREADS; t++)
        for (uint32_t i = 0; i < PER_THREAD; i++) {
            uint64_t l = ap[t].lsns[i];
            assert_true(l >= 1 && l <= total);
            assert_false(hit[l]);
            hit[l] = 1;
            if (i)
                assert_true(l > ap[t].lsns[i - 1]);
        }
    free(hit);
    reel_wal_stats st;
    reel_wal_get_stats(wal, &st);
    assert_int_equal(st.records, total);
    assert_true(st.batches >= 1 && st.batches <= total);
    assert_true(st.batch_max >= 1);
    assert_int_equal(reel_wal_close(wal), 0);

    /* Every record is where its appender was told it is. */
    wal = open_wal(dir, REEL_WAL_SYNC_ALWAYS, 64 << 10);
    struct by_lsn b = {.next = 1, .cap = total};
    b.at = calloc(total, sizeof *b.at);
    assert_int_equal(reel_wal_replay(wal, 1, collect_tagged, &b), 0);
    assert_false(b.bad);
    assert_int_equal(b.n, total);
    for (uint32_t t = 0; t < THREADS; t++)
        for (uint32_t i = 0; i < PER_THREAD; i++) {
            struct tagged g = b.at[ap[t].lsns[i] - 1];
            assert_int_equal(g.t, t);
            assert_int_equal(g.seq, i);
        }
    free(b.at);
    assert_int_equal(reel_wal_close(wal), 0);
    test_rmtree(dir);
    free(dir);
}

/* ------------------------------------------------------------ durability */

struct fired {
    pthread_mutex_t mu;
    uint64_t n, bad;
    pthread_t main;
};

static void on_durable(void *ctx, uint64_t lsn, int err)
{
    struct fired *f = ctx;
    pthread_mutex_lock(&f->mu);
    f->n++;
    if (err || pthread_equal(pthread_self(), f->main) || lsn == 0)
        f->bad++;
    pthread_mutex_unlock(&f->mu);
}

static void both_policies_make_acknowledged_records_durable(void **state)
{
    (void)state;
    enum reel_wal_sync pol[] = {REEL_WAL_SYNC_ALWAYS, REEL_WAL_SYNC_INTERVAL};
    for (int p = 0; p < 2; p++) {
        char *dir = test_tmpdir();
        reel_wal *wal = open_wal(dir, pol[p], 8 << 10);
        struct fired f = {.main = pthread_self()};
        pthread_mutex_init(&f.mu, NULL);
        for (uint64_t k = 1; k <= 500; k++) {
            assert_int_equal(append_key(wal, k), k);
            assert_int_equal(reel_wal_on_durable(wal, k, on_durable, &f), 0);
        }
        assert_int_equal(reel_wal_on_durable(wal, 501, on_durable, &f),
                         REEL_EINVAL);
        assert_int_equal(reel_wal_wait_durable(wal, 500), 0);
        assert_true(reel_wal_durable_lsn(wal) >= 500);
        /* Durable means readable from the files now. */
        assert_int_equal(replay_all(wal, 1).n, 500);
        /* A callback for an LSN already durable runs too, on the writer. */
        assert_int_equal(reel_wal_on_durable(wal, 3, on_durable, &f), 0);
        reel_wal_stats st;
        reel_wal_get_stats(wal, &st);
        assert_true(st.fsyncs >= 1);
        if (pol[p] == REEL_WAL_SYNC_INTERVAL)
            /* 500 appends without waiting share fsyncs. */
            assert_true(st.fsyncs < 500);
        /* Close runs every callback still queued. */
        assert_int_equal(reel_wal_close(wal), 0);
        assert_int_equal(f.n, 501);
        assert_int_equal(f.bad, 0);
        pthread_mutex_destroy(&f.mu);
        wal = open_wal(dir, pol[p], 8 << 10);
        assert_int_equal(replay_all(wal, 1).n, 500);
        assert_int_equal(reel_wal_close(wal), 0);
        test_rmtree(dir);
        free(dir);
    }
}

struct stream {
    reel_wal *wal;
    atomic_int stop;
    uint64_t n;
};

static void *append_until_stopped(void *arg)
{
    struct stream *st = arg;
    while (!atomic_load(&st->stop)) {
        uint64_t lsn;
        assert_int_equal(reel_wal_append(st->wal, 1, "event", 5, &lsn), 0);
        st->n++;
    }
    return NULL;
}

static void interval_fsync_is_not_postponed_by_a_steady_stream(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_wal *wal = open_wal(dir, REEL_WAL_SYNC_INTERVAL, 1 << 20);
    struct stream st = {.wal = wal};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, append_until_stopped, &st), 0);
    uint64_t lsn;
    assert_int_equal(reel_wal_append(wal, 2, "mine", 4, &lsn), 0);
    /* Returns although the other thread never stops appending. */
    assert_int_equal(reel_wal_wait_durable(wal, lsn), 0);
    atomic_store(&st.stop, 1);
    pthread_join(th, NULL);
    assert_int_equal(reel_wal_close(wal), 0);
    test_rmtree(dir);
    free(dir);
}

/* The crash test: a child appends and reports every acknowledged record
 * on a pipe; the parent kills it with SIGKILL at a seeded moment, then
 * recovers the log and checks that every acknowledged record is there. */

/* Small segments, so that the child rotates while it is being killed. */
#define CRASH_SEGMENT 2048

struct ack {
    uint64_t lsn;
    uint32_t t, seq;
};

struct child {
    reel_wal *wal;
    int fd; /* the pipe */
    uint32_t t;
    sem_t window; /* callbacks in flight (thread 0) */
};

static void send_ack(int fd, uint64_t lsn, uint32_t t, uint32_t seq)
{
    struct ack a = {lsn, t, seq};
    /* Smaller than PIPE_BUF: written whole, never interleaved. */
    if (write(fd, &a, sizeof a) != (ssize_t)sizeof a)
        _exit(3);
}

struct cb_ack {
    struct child *c;
    uint32_t seq;
};

static void ack_when_durable(void *ctx, uint64_t lsn, int err)
{
    struct cb_ack *a = ctx;
    if (err)
        _exit(4);
    send_ack(a->c->fd, lsn, a->c->t, a->seq);
    sem_post(&a->c->window);
    free(a);
}

static void *child_appender(void *arg)
{
    struct child *c = arg;
    unsigned char buf[128];
    for (uint32_t seq = 0;; seq++) {
        uint32_t len = make_tagged(c->t, seq, buf);
        uint64_t lsn;
        if (c->t == 0)
            sem_wait(&c->window);
        if (reel_wal_append(c->wal, 3, buf, len, &lsn))
            _exit(5);
        if (c->t == 0) {
            struct cb_ack *a = malloc(sizeof *a);
            *a = (struct cb_ack){c, seq};
            if (reel_wal_on_durable(c->wal, lsn, ack_when_durable, a))
                _exit(6);
        } else {
            if (reel_wal_wait_durable(c->wal, lsn))
                _exit(7);
            send_ack(c->fd, lsn, c->t, seq);
        }
    }
    return NULL;
}

/* ALWAYS: three appenders, two waiting for durability, one acknowledging
 * from the durability callback. Never returns. */
static void child_always(const char *dir, int fd)
{
    reel_wal *wal = open_wal(dir, REEL_WAL_SYNC_ALWAYS, CRASH_SEGMENT);
    static struct child c[3];
    pthread_t th[3];
    for (uint32_t t = 0; t < 3; t++) {
        c[t] = (struct child){.wal = wal, .fd = fd, .t = t};
        sem_init(&c[t].window, 0, 16);
        if (pthread_create(&th[t], NULL, child_appender, &c[t]))
            _exit(2);
    }
    pthread_join(th[0], NULL);
    _exit(1);
}

/* INTERVAL 10 ms: batches of 16 appends, acknowledged after waiting for
 * the durability of the last. Never returns. */
static void child_interval(const char *dir, int fd)
{
    reel_wal_opts o;
    reel_wal_opts_init(&o);
    o.sync = REEL_WAL_SYNC_INTERVAL;
    o.interval_ms = 10;
    o.segment_bytes = CRASH_SEGMENT;
    reel_wal *wal;
    if (reel_wal_open(dir, &o, &wal, NULL))
        _exit(2);
    unsigned char buf[128];
    uint64_t lsns[16];
    for (uint32_t seq = 0;; seq += 16) {
        for (uint32_t i = 0; i < 16; i++) {
            uint32_t len = make_tagged(0, seq + i, buf);
            if (reel_wal_append(wal, 3, buf, len, &lsns[i]))
                _exit(5);
        }
        if (reel_wal_wait_durable(wal, lsns[15]))
            _exit(7);
        for (uint32_t i = 0; i < 16; i++)
            send_ack(fd, lsns[i], 0, seq + i);
    }
}

static void crash_and_recover(enum reel_wal_sync sync, uint64_t seed,
                              uint64_t max_acks, const char *dir)
{
    reel_rng rng;
    reel_rng_seed(&rng, seed);
    uint64_t kill_after = 20 + reel_rng_below(&rng, max_acks);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        if (sync == REEL_WAL_SYNC_ALWAYS)
            child_always(dir, fds[1]);
        else
            child_interval(dir, fds[1]);
        _exit(1);
    }
    close(fds[1]);
    size_t cap = 1024, n = 0;
    struct ack *acks = malloc(cap * sizeof *acks);
    int killed = 0;
    for (;;) {
        struct ack a;
        ssize_t k = read(fds[0], &a, sizeof a);
        if (k == 0)
            break;
        if (k < 0 && errno == EINTR)
            continue;
        assert_int_equal(k, (ssize_t)sizeof a);
        if (n == cap)
            acks = realloc(acks, (cap *= 2) * sizeof *acks);
        acks[n++] = a;
        if (!killed && n >= kill_after) {
            assert_int_equal(kill(pid, SIGKILL), 0);
            killed = 1;
        }
    }
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail_msg("the child ended otherwise (status %d)", status);
    assert_true(n >= kill_after);

    reel_wal *wal = open_wal(dir, sync, CRASH_SEGMENT);
    uint64_t last = reel_wal_last_lsn(wal);
    assert_int_equal(reel_wal_first_lsn(wal), 1);
    struct by_lsn b = {.next = 1, .cap = last};
    b.at = calloc(last ? last : 1, sizeof *b.at);
    assert_int_equal(reel_wal_replay(wal, 1, collect_tagged, &b), 0);
    assert_false(b.bad);
    assert_int_equal(b.n, last);
    for (size_t i = 0; i < n; i++) {
        if (acks[i].lsn > last)
            fail_msg("acknowledged LSN %" PRIu64 " lost (log ends at %" PRIu64
                     ")",
                     acks[i].lsn, last);
        struct tagged g = b.at[acks[i].lsn - 1];
        assert_int_equal(g.t, acks[i].t);
        assert_int_equal(g.seq, acks[i].seq);
    }
    /* Consistent: each appender's records are its first ones, in order. */
    uint32_t next_seq[3] = {0};
    for (uint64_t l = 0; l < last; l++) {
        assert_true(b.at[l].t < 3);
        assert_int_equal(b.at[l].seq, next_seq[b.at[l].t]++);
    }
    /* And it goes on. */
    unsigned char buf[128];
    uint64_t lsn;
    uint32_t len = make_tagged(9, 0, buf);
    assert_int_equal(reel_wal_append(wal, 3, buf, len, &lsn), 0);
    assert_int_equal(lsn, last + 1);
    assert_int_equal(reel_wal_close(wal), 0);
    free(b.at);
    free(acks);
}

static void acknowledged_records_survive_sigkill_always(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 4; seed++) {
        char *dir = test_tmpdir();
        crash_and_recover(REEL_WAL_SYNC_ALWAYS, seed, 1000, dir);
        test_rmtree(dir);
        free(dir);
    }
}

static void acknowledged_records_survive_sigkill_interval(void **state)
{
    (void)state;
    for (uint64_t seed = 11; seed <= 13; seed++) {
        char *dir = test_tmpdir();
        crash_and_recover(REEL_WAL_SYNC_INTERVAL, seed, 300, dir);
        test_rmtree(dir);
        free(dir);
    }
}

/* ----------------------------------------------------- truncation, misc */

static void truncate_before_deletes_only_whole_segments(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_wal *wal = open_wal(dir, REEL_WAL_SYNC_ALWAYS, 300);
    unsigned char payload[40] = {0};
    for (uint64_t k = 1; k <= 100; k++) {
        uint64_t lsn;
        assert_int_equal(reel_wal_append(wal, 1, payload, 40, &lsn), 0);
    }
    assert_int_equal(reel_wal_wait_durable(wal, 100), 0);
    /* 60-byte records, 4 per 300-byte segment: segments start at 1, 5,
     * 9, ... */
    size_t n0;
    char **logs = list_logs(dir, &n0);
    assert_int_equal(n0, 25);
    assert_non_null(strstr(logs[3], "/000000000000000d.log"));
    free_list(logs, n0);

    /* LSN 15 is inside the segment starting at 13: 1, 5, 9 go. */
    assert_int_equal(reel_wal_truncate_before(wal, 15), 0);
    assert_int_equal(reel_wal_first_lsn(wal), 13);
    size_t n;
    logs = list_logs(dir, &n);
    assert_int_equal(n, 22);
    assert_non_null(strstr(logs[0], "/000000000000000d.log"));
    free_list(logs, n);
    struct seen s = {0};
    assert_int_equal(reel_wal_replay(wal, 1, collect, &s), REEL_ERANGE);
    /* Exactly at a segment's first LSN: the segment before goes. */
    assert_int_equal(reel_wal_truncate_before(wal, 21), 0);
    assert_int_equal(reel_wal_first_lsn(wal), 21);
    /* Never the last segment. */
    assert_int_equal(reel_wal_truncate_before(wal, UINT64_MAX), 0);
    assert_int_equal(reel_wal_first_lsn(wal), 97);
    assert_int_equal(reel_wal_close(wal), 0);
    wal = open_wal(dir, REEL_WAL_SYNC_ALWAYS, 300);
    assert_int_equal(reel_wal_first_lsn(wal), 97);
    assert_int_equal(reel_wal_last_lsn(wal), 100);
    uint64_t lsn;
    assert_int_equal(reel_wal_append(wal, 1, payload, 40, &lsn), 0);
    assert_int_equal(lsn, 101);
    assert_int_equal(reel_wal_close(wal), 0);
    test_rmtree(dir);
    free(dir);
}

static void a_second_opener_is_refused(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_wal *wal = open_wal(dir, REEL_WAL_SYNC_ALWAYS, 0);
    reel_wal *other;
    reel_diag d;
    assert_int_equal(reel_wal_open(dir, NULL, &other, &d), REEL_EBUSY);
    assert_null(other);
    assert_int_equal(reel_wal_close(wal), 0);
    assert_int_equal(reel_wal_open(dir, NULL, &other, &d), 0);
    assert_int_equal(reel_wal_close(other), 0);
    reel_wal_opts o;
    reel_wal_opts_init(&o);
    o.segment_bytes = 10;
    assert_int_equal(reel_wal_open(dir, &o, &other, &d), REEL_EINVAL);
    assert_int_equal(reel_wal_close(NULL), 0);
    test_rmtree(dir);
    free(dir);
}

static void log_continues_where_a_snapshot_ends(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_wal_opts o;
    reel_wal_opts_init(&o);
    o.next_lsn = 1001;
    reel_wal *wal;
    reel_diag d;
    assert_int_equal(reel_wal_open(dir, &o, &wal, &d), 0);
    assert_int_equal(reel_wal_first_lsn(wal), 1001);
    assert_int_equal(reel_wal_last_lsn(wal), 1000);
    uint64_t lsn;
    assert_int_equal(reel_wal_append(wal, 1, "a", 1, &lsn), 0);
    assert_int_equal(lsn, 1001);
    assert_int_equal(reel_wal_close(wal), 0);
    /* A log that ends before the snapshot it continues is refused. */
    o.next_lsn = 5000;
    assert_int_equal(reel_wal_open(dir, &o, &wal, &d), REEL_ECORRUPT);
    assert_non_null(strstr(d.msg, "ends at LSN 1001"));
    o.next_lsn = 1002;
    assert_int_equal(reel_wal_open(dir, &o, &wal, &d), 0);
    assert_int_equal(reel_wal_last_lsn(wal), 1001);
    assert_int_equal(reel_wal_close(wal), 0);
    test_rmtree(dir);
    free(dir);

    /* A log without records restarts where the snapshot ends. */
    dir = test_tmpdir();
    wal = open_wal(dir, REEL_WAL_SYNC_ALWAYS, 0);
    assert_int_equal(reel_wal_close(wal), 0);
    o.next_lsn = 50;
    assert_int_equal(reel_wal_open(dir, &o, &wal, &d), 0);
    assert_int_equal(reel_wal_first_lsn(wal), 50);
    assert_int_equal(reel_wal_append(wal, 1, "a", 1, &lsn), 0);
    assert_int_equal(lsn, 50);
    assert_int_equal(reel_wal_close(wal), 0);
    size_t n;
    char **logs = list_logs(dir, &n);
    assert_int_equal(n, 1);
    assert_non_null(strstr(logs[0], "/0000000000000032.log"));
    free_list(logs, n);
    test_rmtree(dir);
    free(dir);
}

/* ------------------------------------------------------------- snapshots */

static void write_snap(const char *dir, uint64_t lsn)
{
    uint32_t nums[100];
    for (uint32_t i = 0; i < 100; i++)
        nums[i] = (uint32_t)lsn * 1000 + i;
    reel_snapshot_section secs[] = {
        {"users.nums", REEL_SEC_U32, nums, 100},
        {"users.name", REEL_SEC_BYTES, "state", 5},
    };
    reel_diag d;
    assert_int_equal(reel_snapshot_write(dir, lsn, secs, 2, &d), 0);
}

static uint64_t newest(const char *dir)
{
    reel_snapshot *s;
    reel_diag d;
    assert_int_equal(reel_snapshot_open_newest(dir, &s, &d), 0);
    if (!s)
        return 0;
    uint64_t lsn = reel_snapshot_lsn(s);
    const reel_section *sec;
    assert_int_equal(reel_secfile_need(reel_snapshot_file(s), "users.nums",
                                       REEL_SEC_U32, 100, &sec, &d),
                     0);
    assert_int_equal(((const uint32_t *)sec->data)[7], lsn * 1000 + 7);
    reel_snapshot_close(s);
    return lsn;
}

static char *snap_file(const char *dir, uint64_t lsn)
{
    char name[64];
    snprintf(name, sizeof name, "snap-%016" PRIx64 ".reel", lsn);
    return test_path(dir, name);
}

static void
newest_valid_snapshot_wins_and_damaged_ones_are_skipped(void **state)
{
    (void)state;
    char *root = test_tmpdir();
    char *dir = test_path(root, "snapshots");
    assert_int_equal(newest(dir), 0); /* no directory: no snapshot */
    write_snap(dir, 10);
    write_snap(dir, 300);
    write_snap(dir, 20);
    assert_int_equal(newest(dir), 300);
    uint64_t *lsns;
    size_t n;
    assert_int_equal(reel_snapshot_list(dir, &lsns, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(lsns[0], 10);
    assert_int_equal(lsns[2], 300);
    free(lsns);

    /* A flipped byte in the newest: the next older one is used. */
    char *p300 = snap_file(dir, 300);
    flip(p300, 64 + 5);
    assert_int_equal(newest(dir), 20);
    reel_snapshot *s;
    reel_diag d;
    assert_int_equal(reel_snapshot_open(p300, &s, &d), REEL_ECORRUPT);
    assert_non_null(strstr(d.msg, "checksum"));
    /* A file whose name and contents disagree is skipped too. */
    char *p20 = snap_file(dir, 20), *p400 = snap_file(dir, 400);
    size_t len;
    unsigned char *buf = slurp(p20, &len);
    spit(p400, buf, len);
    free(buf);
    assert_int_equal(reel_snapshot_open(p400, &s, &d), REEL_ECORRUPT);
    assert_non_null(strstr(d.msg, "name"));
    assert_int_equal(newest(dir), 20);
    /* A truncated one as well. */
    assert_int_equal(truncate(p20, 100), 0);
    assert_int_equal(newest(dir), 10);

    /* Reserved names are refused. */
    reel_snapshot_section bad = {"snapshot.meta", REEL_SEC_U64, NULL, 0};
    assert_int_equal(reel_snapshot_write(dir, 5, &bad, 1, &d), REEL_EINVAL);
    assert_int_equal(reel_snapshot_write(dir, 0, NULL, 0, &d), REEL_EINVAL);
    free(p20);
    free(p300);
    free(p400);
    free(dir);
    test_rmtree(root);
    free(root);
}

static void snapshots_stream_and_prune(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    /* The streaming writer, for state that is not one array. */
    reel_secfile_writer *w;
    reel_diag d;
    assert_int_equal(reel_snapshot_writer_open(dir, 7, &w, &d), 0);
    assert_int_equal(reel_secfile_writer_begin(w, "users.nums", REEL_SEC_U32),
                     0);
    for (uint32_t i = 0; i < 100; i++) {
        uint32_t v = 7000 + i;
        assert_int_equal(reel_secfile_writer_append(w, &v, 4), 0);
    }
    assert_int_equal(reel_secfile_writer_end(w), 0);
    assert_int_equal(reel_secfile_writer_commit(w, &d), 0);
    assert_int_equal(newest(dir), 7);
    /* An abandoned one leaves nothing. */
    assert_int_equal(reel_snapshot_writer_open(dir, 8, &w, &d), 0);
    reel_secfile_writer_free(w);
    assert_int_equal(newest(dir), 7);

    write_snap(dir, 9);
    write_snap(dir, 12);
    write_snap(dir, 30);
    /* A leftover of a crashed write. */
    char *tmp = test_write_file(dir, "snap-0000000000000040.reel.tmp.abc123",
                                "partial");
    uint64_t *lsns;
    size_t n;
    assert_int_equal(reel_snapshot_list(dir, &lsns, &n), 0);
    assert_int_equal(n, 4);
    free(lsns);
    assert_int_equal(reel_snapshot_prune(dir, 2), 0);
    assert_int_equal(reel_snapshot_list(dir, &lsns, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(lsns[0], 12);
    assert_int_equal(lsns[1], 30);
    free(lsns);
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(reel_snapshot_delete(dir, 12), 0);
    assert_int_equal(reel_snapshot_delete(dir, 12), REEL_ENOENT);
    assert_int_equal(newest(dir), 30);
    free(tmp);
    test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(records_round_trip_across_segment_rotation),
        cmocka_unit_test(append_refuses_bad_records_and_takes_the_largest),
        cmocka_unit_test(torn_tail_is_truncated_at_every_offset),
        cmocka_unit_test(flipped_byte_in_the_last_record_truncates_it),
        cmocka_unit_test(
            damage_before_the_last_segment_is_refused_naming_the_file),
        cmocka_unit_test(concurrent_appenders_get_unique_increasing_lsns),
        cmocka_unit_test(both_policies_make_acknowledged_records_durable),
        cmocka_unit_test(interval_fsync_is_not_postponed_by_a_steady_stream),
        cmocka_unit_test(acknowledged_records_survive_sigkill_always),
        cmocka_unit_test(acknowledged_records_survive_sigkill_interval),
        cmocka_unit_test(truncate_before_deletes_only_whole_segments),
        cmocka_unit_test(a_second_opener_is_refused),
        cmocka_unit_test(log_continues_where_a_snapshot_ends),
        cmocka_unit_test(
            newest_valid_snapshot_wins_and_damaged_ones_are_skipped),
        cmocka_unit_test(snapshots_stream_and_prune),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
