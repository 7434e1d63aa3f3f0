#include "store/wal.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/crc.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/strs.h"

/* Layout constants; docs/formats/wal.md is the specification. */
#define MAGIC "REELWAL"
#define VERSION 1u
#define SEG_HEADER 32u
#define REC_HEADER 20u
#define NAME_DIGITS 16
#define NAME_LEN (NAME_DIGITS + 4) /* "%016x.log" */
#define SEGMENT_MIN 64ull
#define SEGMENT_MAX (1ull << 30)
#define PENDING_DEFAULT (64ull << 20)

struct seg_header {
    char magic[8];
    uint32_t version;
    uint32_t header_size;
    uint64_t first_lsn;
    uint32_t reserved;
    uint32_t header_crc;
};
_Static_assert(sizeof(struct seg_header) == SEG_HEADER, "segment header");

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "reel's file formats are little-endian; a big-endian port must swap"
#endif

struct cb {
    uint64_t lsn;
    reel_wal_durable_fn fn;
    void *ctx;
    int err; /* set when moved to the writer's list to fire */
};

struct reel_wal {
    char *dir;
    int dir_fd; /* holds the flock that keeps other openers out */
    reel_wal_opts opts;

    pthread_mutex_t mu;
    pthread_cond_t work;    /* the writer waits here (monotonic clock) */
    pthread_cond_t durable; /* wait_durable waits here */
    pthread_cond_t space;   /* appenders held back by max_pending_bytes */
    pthread_mutex_t admin;  /* serialises replay and truncate_before */

    /* Under mu. */
    uint64_t *segs; /* first LSN of each segment, ascending */
    size_t n_segs, cap_segs;
    uint64_t next_lsn;
    uint64_t written_lsn;
    uint64_t durable_lsn;
    unsigned char *pend; /* encoded records waiting for the writer */
    size_t n_pend, cap_pend;
    uint64_t pend_records;
    struct cb *cbs;
    size_t n_cbs, cap_cbs;
    int cbs_dirty; /* some callback may be ready */
    int err;
    int closing;
    reel_wal_stats st;

    /* The writer thread's own. */
    pthread_t thread;
    int seg_fd;
    uint64_t seg_size;
    uint64_t seg_records;
    unsigned char *wbuf;
    size_t cap_wbuf;
    struct cb *fire;
    size_t n_fire, cap_fire;
    uint64_t unsynced_since; /* ns of the first write not yet fsynced */
};

/* ---------------------------------------------------------------- helpers */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void seg_name(char out[NAME_LEN + 1], uint64_t first)
{
    snprintf(out, NAME_LEN + 1, "%016" PRIx64 ".log", first);
}

static char *seg_path(const reel_wal *wal, uint64_t first)
{
    char name[NAME_LEN + 1];
    seg_name(name, first);
    size_t n = strlen(wal->dir) + NAME_LEN + 2;
    char *p = reel_xmalloc(n);
    snprintf(p, n, "%s/%s", wal->dir, name);
    return p;
}

/* 1 and the LSN when `name` is a segment's name, else 0. */
static int parse_seg_name(const char *name, uint64_t *first)
{
    if (strlen(name) != NAME_LEN || strcmp(name + NAME_DIGITS, ".log"))
        return 0;
    uint64_t v;
    if (reel_parse_hex64(name, NAME_DIGITS, &v))
        return 0;
    *first = v;
    return v != 0;
}

static uint32_t record_crc(const unsigned char *rec, uint32_t len)
{
    uint32_t crc = reel_crc32c(0, rec, 4);
    crc = reel_crc32c(crc, rec + 8, REC_HEADER - 8);
    return reel_crc32c(crc, rec + REC_HEADER, len);
}

/* Why no valid record with LSN `lsn` starts at `off` of a segment of
 * `size` bytes, or NULL (and its total size in *rec_size) when one does. */
static const char *check_record(const unsigned char *map, uint64_t size,
                                uint64_t off, uint64_t lsn, uint64_t *rec_size)
{
    if (size - off < REC_HEADER)
        return "the file ends inside a record header";
    const unsigned char *r = map + off;
    uint32_t len, crc;
    uint64_t rlsn;
    memcpy(&len, r, 4);
    memcpy(&crc, r + 4, 4);
    memcpy(&rlsn, r + 8, 8);
    if (len > REEL_WAL_RECORD_MAX)
        return "record length exceeds 1 MiB";
    if (size - off - REC_HEADER < len)
        return "the file ends inside a record payload";
    if (crc != record_crc(r, len))
        return "record checksum mismatch";
    if (r[16] == 0)
        return "record type 0";
    if (r[17] || r[18] || r[19])
        return "record reserved bytes are not zero";
    if (rlsn != lsn)
        return "record LSN out of sequence";
    *rec_size = REC_HEADER + len;
    return NULL;
}

static const char *check_header(const unsigned char *map, uint64_t size,
                                uint64_t *first)
{
    if (size < SEG_HEADER)
        return "shorter than a segment header";
    struct seg_header h;
    memcpy(&h, map, sizeof h);
    if (memcmp(h.magic, MAGIC, sizeof MAGIC))
        return "bad magic (not a reel log segment)";
    if (h.header_crc !=
        reel_crc32c(0, &h, offsetof(struct seg_header, header_crc)))
        return "segment header checksum mismatch";
    if (h.version != VERSION)
        return "unsupported log version";
    if (h.header_size != SEG_HEADER || h.reserved)
        return "bad segment header fields";
    *first = h.first_lsn;
    return NULL;
}

static int fsync_dir_fd(reel_wal *wal)
{
    if (fsync(wal->dir_fd)) {
        reel_log_error("wal: cannot fsync directory %s: %s", wal->dir,
                       strerror(errno));
        return REEL_EIO;
    }
    return 0;
}

static int pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
    const unsigned char *p = buf;
    while (n) {
        ssize_t k = pwrite(fd, p, n, (off_t)off);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return REEL_EIO;
        }
        p += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return 0;
}

/* fdatasync with the time it took counted in the stats. */
static int sync_fd(reel_wal *wal, int fd)
{
    uint64_t t0 = now_ns();
    int rc = fdatasync(fd) ? REEL_EIO : 0;
    uint64_t dt = now_ns() - t0;
    if (rc)
        reel_log_error("wal: fdatasync in %s: %s", wal->dir, strerror(errno));
    pthread_mutex_lock(&wal->mu);
    wal->st.fsyncs++;
    wal->st.fsync_ns += dt;
    if (dt > wal->st.fsync_ns_max)
        wal->st.fsync_ns_max = dt;
    pthread_mutex_unlock(&wal->mu);
    return rc;
}

/* Creates segment `first` with its header, both on disk (file and
 * directory entry) before any record goes in. */
static int seg_create(reel_wal *wal, uint64_t first, int *fd_out, reel_diag *d)
{
    char *path = seg_path(wal, first);
    int rc = REEL_EIO;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = reel_diag_fail(d, REEL_EIO, "cannot create %s: %s", path,
                            strerror(errno));
        goto out;
    }
    struct seg_header h = {
        .version = VERSION, .header_size = SEG_HEADER, .first_lsn = first};
    memcpy(h.magic, MAGIC, sizeof MAGIC);
    h.header_crc = reel_crc32c(0, &h, offsetof(struct seg_header, header_crc));
    if (pwrite_all(fd, &h, sizeof h, 0) || fsync(fd)) {
        rc = reel_diag_fail(d, REEL_EIO, "cannot write %s: %s", path,
                            strerror(errno));
        close(fd);
        goto out;
    }
    if ((rc = fsync_dir_fd(wal))) {
        reel_diag_fail(d, rc, "cannot fsync %s", wal->dir);
        close(fd);
        goto out;
    }
    *fd_out = fd;
    rc = 0;
out:
    free(path);
    return rc;
}

/* ---------------------------------------------------------------- writer */

/* Under mu: the log is failed from now on. */
static void fail_locked(reel_wal *wal, int rc)
{
    if (!wal->err)
        reel_log_error("wal %s: %s; the log refuses appends until it is "
                       "reopened",
                       wal->dir, reel_strerror(rc));
    wal->err = rc;
    wal->n_pend = 0;
    wal->pend_records = 0;
    wal->cbs_dirty = 1;
    pthread_cond_broadcast(&wal->durable);
    pthread_cond_broadcast(&wal->space);
}

/* Writes a batch of encoded records to the segments, rotating where the
 * segment size says so. Writer thread only, without mu. */
static int write_batch(reel_wal *wal, const unsigned char *buf, size_t len)
{
    size_t off = 0, start = 0;
    int rc;
    while (off < len) {
        uint32_t plen;
        memcpy(&plen, buf + off, 4);
        uint64_t rsz = REC_HEADER + (uint64_t)plen;
        if (wal->seg_records > 0 &&
            wal->seg_size + (off - start) + rsz > wal->opts.segment_bytes) {
            if ((rc = pwrite_all(wal->seg_fd, buf + start, off - start,
                                 wal->seg_size)))
                goto io;
            if ((rc = sync_fd(wal, wal->seg_fd)))
                return rc;
            close(wal->seg_fd);
            wal->seg_fd = -1;
            uint64_t lsn;
            memcpy(&lsn, buf + off + 8, 8);
            reel_diag d;
            if ((rc = seg_create(wal, lsn, &wal->seg_fd, &d))) {
                reel_log_error("wal: %s", d.msg);
                return rc;
            }
            wal->seg_size = SEG_HEADER;
            wal->seg_records = 0;
            pthread_mutex_lock(&wal->mu);
            REEL_GROW(wal->segs, wal->cap_segs, wal->n_segs + 1);
            wal->segs[wal->n_segs++] = lsn;
            pthread_mutex_unlock(&wal->mu);
            start = off;
        }
        off += rsz;
        wal->seg_records++;
    }
    if ((rc = pwrite_all(wal->seg_fd, buf + start, len - start, wal->seg_size)))
        goto io;
    wal->seg_size += len - start;
    return 0;
io:
    reel_log_error("wal: write in %s: %s", wal->dir, strerror(errno));
    return rc;
}

/* Under mu: moves the callbacks that can run to wal->fire. */
static void take_ready(reel_wal *wal)
{
    size_t k = 0;
    wal->n_fire = 0;
    for (size_t i = 0; i < wal->n_cbs; i++) {
        struct cb c = wal->cbs[i];
        if (c.lsn <= wal->durable_lsn || wal->err) {
            c.err = c.lsn <= wal->durable_lsn ? 0 : wal->err;
            REEL_GROW(wal->fire, wal->cap_fire, wal->n_fire + 1);
            wal->fire[wal->n_fire++] = c;
        } else {
            wal->cbs[k++] = c;
        }
    }
    wal->n_cbs = k;
    wal->cbs_dirty = 0;
}

static void batch_stats_locked(reel_wal *wal, uint64_t n)
{
    wal->st.batches++;
    if (n > wal->st.batch_max)
        wal->st.batch_max = n;
    int b = 0;
    while (b + 1 < REEL_WAL_BATCH_BUCKETS && (n >> (b + 1)))
        b++;
    wal->st.batch_hist[b]++;
}

static void mark_durable_locked(reel_wal *wal, uint64_t lsn)
{
    wal->durable_lsn = lsn;
    wal->cbs_dirty = 1;
    pthread_cond_broadcast(&wal->durable);
}

static void *writer_main(void *arg)
{
    reel_wal *wal = arg;
    pthread_mutex_lock(&wal->mu);
    for (;;) {
        if (wal->cbs_dirty && wal->n_cbs) {
            take_ready(wal);
            if (wal->n_fire) {
                pthread_mutex_unlock(&wal->mu);
                for (size_t i = 0; i < wal->n_fire; i++)
                    wal->fire[i].fn(wal->fire[i].ctx, wal->fire[i].lsn,
                                    wal->fire[i].err);
                pthread_mutex_lock(&wal->mu);
                continue;
            }
        }
        if (wal->err) {
            if (wal->closing)
                break;
            pthread_cond_wait(&wal->work, &wal->mu);
            continue;
        }
        /* INTERVAL: an fsync that is due goes before more writes, so a
         * steady stream of appends cannot postpone it. */
        uint64_t deadline =
            wal->unsynced_since + (uint64_t)wal->opts.interval_ms * 1000000ull;
        int unsynced = wal->written_lsn > wal->durable_lsn;
        int due = unsynced && now_ns() >= deadline;
        if (wal->n_pend && !due) {
            /* Take the whole pending batch; appenders fill the other
             * buffer meanwhile. */
            unsigned char *buf = wal->pend;
            size_t len = wal->n_pend, cap = wal->cap_pend;
            uint64_t n = wal->pend_records, last = wal->next_lsn - 1;
            wal->pend = wal->wbuf;
            wal->cap_pend = wal->cap_wbuf;
            wal->wbuf = buf;
            wal->cap_wbuf = cap;
            wal->n_pend = 0;
            wal->pend_records = 0;
            pthread_cond_broadcast(&wal->space);
            pthread_mutex_unlock(&wal->mu);
            int rc = write_batch(wal, buf, len);
            if (!rc && wal->opts.sync == REEL_WAL_SYNC_ALWAYS)
                rc = sync_fd(wal, wal->seg_fd);
            pthread_mutex_lock(&wal->mu);
            batch_stats_locked(wal, n);
            if (rc) {
                fail_locked(wal, rc);
                continue;
            }
            wal->written_lsn = last;
            if (wal->opts.sync == REEL_WAL_SYNC_ALWAYS)
                mark_durable_locked(wal, last);
            else if (!wal->unsynced_since)
                wal->unsynced_since = now_ns();
            continue;
        }
        if (unsynced && (due || wal->closing)) {
            uint64_t target = wal->written_lsn;
            pthread_mutex_unlock(&wal->mu);
            int rc = sync_fd(wal, wal->seg_fd);
            pthread_mutex_lock(&wal->mu);
            if (rc) {
                fail_locked(wal, rc);
                continue;
            }
            wal->unsynced_since = 0;
            mark_durable_locked(wal, target);
            continue;
        }
        if (unsynced) {
            struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000ull),
                                  .tv_nsec = (long)(deadline % 1000000000ull)};
            pthread_cond_timedwait(&wal->work, &wal->mu, &ts);
            continue;
        }
        if (wal->closing)
            break;
        pthread_cond_wait(&wal->work, &wal->mu);
    }
    /* Every LSN handed out is durable or the log failed, so every
     * callback has run. */
    assert(wal->n_cbs == 0);
    pthread_mutex_unlock(&wal->mu);
    return NULL;
}

/* -------------------------------------------------------------- recovery */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int list_segments(reel_wal *wal, reel_diag *d)
{
    DIR *dh = opendir(wal->dir);
    if (!dh)
        return reel_diag_fail(d, REEL_EIO, "cannot list %s: %s", wal->dir,
                              strerror(errno));
    struct dirent *e;
    while ((e = readdir(dh))) {
        uint64_t first;
        if (!parse_seg_name(e->d_name, &first))
            continue;
        REEL_GROW(wal->segs, wal->cap_segs, wal->n_segs + 1);
        wal->segs[wal->n_segs++] = first;
    }
    closedir(dh);
    if (wal->n_segs)
        qsort(wal->segs, wal->n_segs, sizeof *wal->segs, cmp_u64);
    return 0;
}

static int damaged(reel_diag *d, const char *path, uint64_t off,
                   const char *why)
{
    return reel_diag_fail(d, REEL_ECORRUPT,
                          "%s: offset %" PRIu64 ": %s; damage before the "
                          "last segment is not a torn tail, refusing to open",
                          path, off, why);
}

/* Checks segment i; the last one may lose a torn tail. On success *end is
 * the LSN after its last record, and for the last segment its fd stays
 * open in wal->seg_fd. *removed is set when a half-created last segment
 * was deleted. */
static int recover_segment(reel_wal *wal, size_t i, uint64_t expect,
                           uint64_t *end, int *removed, reel_diag *d)
{
    int last = i + 1 == wal->n_segs;
    uint64_t first_name = wal->segs[i];
    char *path = seg_path(wal, first_name);
    int rc = 0;
    void *map = NULL;
    uint64_t size = 0;
    *removed = 0;
    int fd = open(path, (last ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) {
        rc = reel_diag_fail(d, REEL_EIO, "cannot open %s: %s", path,
                            strerror(errno));
        goto out;
    }
    struct stat sb;
    if (fstat(fd, &sb)) {
        rc = reel_diag_fail(d, REEL_EIO, "cannot stat %s", path);
        goto out;
    }
    size = (uint64_t)sb.st_size;
    if (size) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            map = NULL;
            rc = reel_diag_fail(d, REEL_EIO, "cannot map %s: %s", path,
                                strerror(errno));
            goto out;
        }
    }
    uint64_t first = 0;
    const char *why = check_header(map, size, &first);
    if (why) {
        if (last && size <= SEG_HEADER) {
            /* Created, but the crash came before its header was on disk:
             * it never held a record. */
            reel_log_warn("wal: %s: %s; removing the half-created segment",
                          path, why);
            if (unlink(path) || fsync_dir_fd(wal)) {
                rc = reel_diag_fail(d, REEL_EIO, "cannot remove %s: %s", path,
                                    strerror(errno));
                goto out;
            }
            *removed = 1;
            goto out;
        }
        rc = reel_diag_fail(d, REEL_ECORRUPT,
                            "%s: offset 0: %s; refusing to open the log", path,
                            why);
        goto out;
    }
    if (first != first_name) {
        rc = reel_diag_fail(d, REEL_ECORRUPT,
                            "%s: offset 16: the header's first LSN %" PRIu64
                            " does not match the file name",
                            path, first);
        goto out;
    }
    if (i > 0 && first != expect) {
        rc = reel_diag_fail(d, REEL_ECORRUPT,
                            "%s: starts at LSN %" PRIu64
                            " but the previous segment ends at LSN %" PRIu64
                            " (records missing); refusing to open",
                            path, first, expect - 1);
        goto out;
    }
    uint64_t off = SEG_HEADER, lsn = first;
    while (off < size) {
        uint64_t rsz;
        why = check_record(map, size, off, lsn, &rsz);
        if (why)
            break;
        off += rsz;
        lsn++;
    }
    if (why && !last) {
        rc = damaged(d, path, off, why);
        goto out;
    }
    wal->st.recovered_records += lsn - first;
    if (why) {
        reel_log_warn("wal: %s: offset %" PRIu64 ": %s; truncating the torn "
                      "tail (%" PRIu64 " bytes) after LSN %" PRIu64,
                      path, off, why, size - off, lsn - 1);
        munmap(map, size);
        map = NULL;
        if (ftruncate(fd, (off_t)off) || fsync(fd)) {
            rc = reel_diag_fail(d, REEL_EIO, "cannot truncate %s: %s", path,
                                strerror(errno));
            goto out;
        }
        wal->st.truncated_bytes += size - off;
        size = off;
    }
    if (last) {
        /* A killed process's records may be only in the page cache. */
        if (fdatasync(fd)) {
            rc = reel_diag_fail(d, REEL_EIO, "cannot sync %s: %s", path,
                                strerror(errno));
            goto out;
        }
        wal->seg_fd = fd;
        fd = -1;
        wal->seg_size = size;
        wal->seg_records = lsn - first;
    }
    *end = lsn;
out:
    if (map)
        munmap(map, size);
    if (fd >= 0)
        close(fd);
    free(path);
    return rc;
}

static int recover(reel_wal *wal, reel_diag *d)
{
    int rc = list_segments(wal, d);
    if (rc)
        return rc;
    uint64_t end = 0;
    for (size_t i = 0; i < wal->n_segs; i++) {
        int removed;
        if ((rc = recover_segment(wal, i, end, &end, &removed, d)))
            return rc;
        if (removed)
            wal->n_segs--;
    }
    if (wal->n_segs && wal->seg_fd < 0) {
        /* The half-created segment is gone; the one before it (checked
         * whole, and on disk since before the other was created) takes
         * the appends. */
        char *path = seg_path(wal, wal->segs[wal->n_segs - 1]);
        wal->seg_fd = open(path, O_RDWR | O_CLOEXEC);
        struct stat sb;
        if (wal->seg_fd < 0 || fstat(wal->seg_fd, &sb)) {
            rc = reel_diag_fail(d, REEL_EIO, "cannot open %s: %s", path,
                                strerror(errno));
            free(path);
            return rc;
        }
        free(path);
        wal->seg_size = (uint64_t)sb.st_size;
        wal->seg_records = end - wal->segs[wal->n_segs - 1];
    }
    uint64_t want = wal->opts.next_lsn;
    if (wal->n_segs == 1 && end == wal->segs[0] && wal->segs[0] < want) {
        /* A log without records that starts before the snapshot it
         * continues: start it again where the snapshot ends. */
        char *path = seg_path(wal, wal->segs[0]);
        reel_log_info("wal: %s holds no record; restarting the log at LSN "
                      "%" PRIu64,
                      path, want);
        close(wal->seg_fd);
        wal->seg_fd = -1;
        int bad = unlink(path);
        free(path);
        if (bad)
            return reel_diag_fail(d, REEL_EIO, "cannot remove a segment in %s",
                                  wal->dir);
        wal->n_segs = 0;
    }
    if (wal->n_segs == 0) {
        if ((rc = seg_create(wal, want, &wal->seg_fd, d)))
            return rc;
        REEL_GROW(wal->segs, wal->cap_segs, 1);
        wal->segs[wal->n_segs++] = want;
        wal->seg_size = SEG_HEADER;
        wal->seg_records = 0;
        end = want;
    } else if (end < want) {
        return reel_diag_fail(d, REEL_ECORRUPT,
                              "%s: the log ends at LSN %" PRIu64
                              " but must continue from LSN %" PRIu64
                              " (records the snapshot depends on are gone)",
                              wal->dir, end - 1, want);
    }
    wal->next_lsn = end;
    wal->written_lsn = end - 1;
    wal->durable_lsn = end - 1;
    return 0;
}

/* ------------------------------------------------------------ public API */

void reel_wal_opts_init(reel_wal_opts *opts)
{
    *opts = (reel_wal_opts){
        .sync = REEL_WAL_SYNC_ALWAYS,
        .interval_ms = 10,
        .segment_bytes = REEL_WAL_SEGMENT_DEFAULT,
        .next_lsn = 1,
        .max_pending_bytes = PENDING_DEFAULT,
    };
}

/* Closes the files and frees everything; the writer thread is gone. */
static void release(reel_wal *wal)
{
    if (wal->seg_fd >= 0)
        close(wal->seg_fd);
    close(wal->dir_fd);
    pthread_mutex_destroy(&wal->mu);
    pthread_mutex_destroy(&wal->admin);
    pthread_cond_destroy(&wal->work);
    pthread_cond_destroy(&wal->durable);
    pthread_cond_destroy(&wal->space);
    free(wal->segs);
    free(wal->pend);
    free(wal->wbuf);
    free(wal->cbs);
    free(wal->fire);
    free(wal->dir);
    free(wal);
}

int reel_wal_open(const char *dir, const reel_wal_opts *opts_in, reel_wal **out,
                  reel_diag *d)
{
    *out = NULL;
    reel_wal_opts opts;
    reel_wal_opts_init(&opts);
    if (opts_in)
        opts = *opts_in;
    if (!opts.segment_bytes)
        opts.segment_bytes = REEL_WAL_SEGMENT_DEFAULT;
    if (!opts.next_lsn)
        opts.next_lsn = 1;
    if (!opts.max_pending_bytes)
        opts.max_pending_bytes = PENDING_DEFAULT;
    if ((opts.sync != REEL_WAL_SYNC_ALWAYS &&
         opts.sync != REEL_WAL_SYNC_INTERVAL) ||
        (opts.sync == REEL_WAL_SYNC_INTERVAL &&
         (opts.interval_ms < 1 || opts.interval_ms > 60000)) ||
        opts.segment_bytes < SEGMENT_MIN || opts.segment_bytes > SEGMENT_MAX ||
        opts.next_lsn == UINT64_MAX)
        return reel_diag_fail(d, REEL_EINVAL, "invalid log options for %s",
                              dir);
    if (mkdir(dir, 0755) && errno != EEXIST)
        return reel_diag_fail(d, REEL_EIO, "cannot create %s: %s", dir,
                              strerror(errno));
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0)
        return reel_diag_fail(d, REEL_EIO, "cannot open %s: %s", dir,
                              strerror(errno));
    if (flock(dir_fd, LOCK_EX | LOCK_NB)) {
        int e = errno;
        close(dir_fd);
        return reel_diag_fail(d, e == EWOULDBLOCK ? REEL_EBUSY : REEL_EIO,
                              "cannot lock %s: %s", dir,
                              e == EWOULDBLOCK ? "another process or log has "
                                                 "it open"
                                               : strerror(e));
    }
    reel_wal *wal = reel_xcalloc(1, sizeof *wal);
    wal->dir = reel_xstrndup(dir, strlen(dir));
    wal->dir_fd = dir_fd;
    wal->seg_fd = -1;
    wal->opts = opts;
    pthread_mutex_init(&wal->mu, NULL);
    pthread_mutex_init(&wal->admin, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&wal->work, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&wal->durable, NULL);
    pthread_cond_init(&wal->space, NULL);
    int rc = recover(wal, d);
    if (rc)
        goto fail;
    if (pthread_create(&wal->thread, NULL, writer_main, wal)) {
        rc = reel_diag_fail(d, REEL_EIO, "cannot start the log writer");
        goto fail;
    }
    reel_log_debug("wal: %s open, LSNs %" PRIu64 "..%" PRIu64
                   " in %zu segments",
                   dir, wal->segs[0], wal->next_lsn - 1, wal->n_segs);
    *out = wal;
    return 0;
fail:
    release(wal); /* no writer thread yet */
    return rc;
}

int reel_wal_close(reel_wal *wal)
{
    if (!wal)
        return 0;
    pthread_mutex_lock(&wal->mu);
    wal->closing = 1;
    pthread_cond_signal(&wal->work);
    pthread_mutex_unlock(&wal->mu);
    pthread_join(wal->thread, NULL);
    int rc = wal->err;
    release(wal);
    return rc;
}

int reel_wal_append(reel_wal *wal, uint8_t type, const void *payload,
                    uint32_t len, uint64_t *lsn)
{
    if (type == 0 || (len && !payload))
        return REEL_EINVAL;
    if (len > REEL_WAL_RECORD_MAX)
        return REEL_ETOOBIG;
    size_t rsz = REC_HEADER + (size_t)len;
    pthread_mutex_lock(&wal->mu);
    if (wal->closing) {
        pthread_mutex_unlock(&wal->mu);
        return REEL_ECANCELED;
    }
    while (!wal->err && wal->n_pend &&
           wal->n_pend + rsz > wal->opts.max_pending_bytes)
        pthread_cond_wait(&wal->space, &wal->mu);
    if (wal->err) {
        int rc = wal->err;
        pthread_mutex_unlock(&wal->mu);
        return rc;
    }
    assert(wal->next_lsn < UINT64_MAX);
    uint64_t n = wal->next_lsn++;
    REEL_GROW(wal->pend, wal->cap_pend, wal->n_pend + rsz);
    unsigned char *r = wal->pend + wal->n_pend;
    memcpy(r, &len, 4);
    memcpy(r + 8, &n, 8);
    r[16] = type;
    r[17] = r[18] = r[19] = 0;
    if (len)
        memcpy(r + REC_HEADER, payload, len);
    uint32_t crc = record_crc(r, len);
    memcpy(r + 4, &crc, 4);
    if (!wal->n_pend)
        pthread_cond_signal(&wal->work);
    wal->n_pend += rsz;
    wal->pend_records++;
    wal->st.records++;
    wal->st.bytes += rsz;
    pthread_mutex_unlock(&wal->mu);
    *lsn = n;
    return 0;
}

int reel_wal_wait_durable(reel_wal *wal, uint64_t lsn)
{
    pthread_mutex_lock(&wal->mu);
    int rc = 0;
    if (lsn >= wal->next_lsn)
        rc = REEL_EINVAL;
    else {
        while (wal->durable_lsn < lsn && !wal->err)
            pthread_cond_wait(&wal->durable, &wal->mu);
        if (wal->durable_lsn < lsn)
            rc = wal->err;
    }
    pthread_mutex_unlock(&wal->mu);
    return rc;
}

int reel_wal_on_durable(reel_wal *wal, uint64_t lsn, reel_wal_durable_fn fn,
                        void *ctx)
{
    assert(fn);
    pthread_mutex_lock(&wal->mu);
    if (lsn >= wal->next_lsn || wal->closing) {
        int rc = wal->closing ? REEL_ECANCELED : REEL_EINVAL;
        pthread_mutex_unlock(&wal->mu);
        return rc;
    }
    REEL_GROW(wal->cbs, wal->cap_cbs, wal->n_cbs + 1);
    wal->cbs[wal->n_cbs++] = (struct cb){.lsn = lsn, .fn = fn, .ctx = ctx};
    if (lsn <= wal->durable_lsn || wal->err) {
        wal->cbs_dirty = 1;
        pthread_cond_signal(&wal->work);
    }
    pthread_mutex_unlock(&wal->mu);
    return 0;
}

/* Replays the records [from, to] of segment `first` (whose records end
 * at `to` or later). */
static int replay_segment(reel_wal *wal, uint64_t first, uint64_t from,
                          uint64_t to, reel_wal_replay_fn fn, void *ctx)
{
    char *path = seg_path(wal, first);
    int rc = 0;
    void *map = NULL;
    uint64_t size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb)) {
        reel_log_error("wal: cannot open %s: %s", path, strerror(errno));
        rc = REEL_EIO;
        goto out;
    }
    size = (uint64_t)sb.st_size;
    if (size) {
        map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED) {
            map = NULL;
            reel_log_error("wal: cannot map %s: %s", path, strerror(errno));
            rc = REEL_EIO;
            goto out;
        }
    }
    uint64_t hfirst;
    const char *why = check_header(map, size, &hfirst);
    if (!why && hfirst != first)
        why = "the header's first LSN does not match the file name";
    uint64_t off = SEG_HEADER;
    for (uint64_t lsn = first; !why && lsn <= to; lsn++) {
        uint64_t rsz;
        if ((why = check_record(map, size, off, lsn, &rsz)))
            break;
        if (lsn >= from) {
            uint32_t len = (uint32_t)(rsz - REC_HEADER);
            const unsigned char *r = (const unsigned char *)map + off;
            if ((rc = fn(ctx, lsn, r[16], r + REC_HEADER, len)))
                goto out;
        }
        off += rsz;
    }
    if (why) {
        reel_log_error("wal: %s: offset %" PRIu64 ": %s (the file changed "
                       "after the log was opened)",
                       path, off, why);
        rc = REEL_ECORRUPT;
    }
out:
    if (map)
        munmap(map, size);
    if (fd >= 0)
        close(fd);
    free(path);
    return rc;
}

int reel_wal_replay(reel_wal *wal, uint64_t from_lsn, reel_wal_replay_fn fn,
                    void *ctx)
{
    pthread_mutex_lock(&wal->admin);
    pthread_mutex_lock(&wal->mu);
    size_t n = wal->n_segs;
    uint64_t *segs = reel_xmalloc(n * sizeof *segs);
    memcpy(segs, wal->segs, n * sizeof *segs);
    uint64_t limit = wal->durable_lsn;
    pthread_mutex_unlock(&wal->mu);
    int rc = 0;
    if (!from_lsn)
        from_lsn = segs[0];
    if (from_lsn < segs[0]) {
        rc = REEL_ERANGE;
        goto out;
    }
    for (size_t i = 0; i < n && segs[i] <= limit; i++) {
        uint64_t end = i + 1 < n ? segs[i + 1] - 1 : limit;
        if (end > limit)
            end = limit;
        if (end < from_lsn)
            continue;
        if ((rc = replay_segment(wal, segs[i], from_lsn, end, fn, ctx)))
            break;
    }
out:
    free(segs);
    pthread_mutex_unlock(&wal->admin);
    return rc;
}

int reel_wal_truncate_before(reel_wal *wal, uint64_t lsn)
{
    pthread_mutex_lock(&wal->admin);
    pthread_mutex_lock(&wal->mu);
    size_t k = 0;
    while (k + 1 < wal->n_segs && wal->segs[k + 1] <= lsn)
        k++;
    uint64_t *doomed = reel_xmalloc((k ? k : 1) * sizeof *doomed);
    memcpy(doomed, wal->segs, k * sizeof *doomed);
    pthread_mutex_unlock(&wal->mu);
    /* Oldest first, so a crash in between leaves no hole. */
    size_t gone = 0;
    int rc = 0;
    for (; gone < k; gone++) {
        char *path = seg_path(wal, doomed[gone]);
        int bad = unlink(path) && errno != ENOENT;
        if (bad)
            reel_log_error("wal: cannot remove %s: %s", path, strerror(errno));
        free(path);
        if (bad) {
            rc = REEL_EIO;
            break;
        }
    }
    free(doomed);
    if (gone) {
        pthread_mutex_lock(&wal->mu);
        memmove(wal->segs, wal->segs + gone,
                (wal->n_segs - gone) * sizeof *wal->segs);
        wal->n_segs -= gone;
        pthread_mutex_unlock(&wal->mu);
        int r2 = fsync_dir_fd(wal);
        if (!rc)
            rc = r2;
    }
    pthread_mutex_unlock(&wal->admin);
    return rc;
}

uint64_t reel_wal_first_lsn(const reel_wal *wal)
{
    reel_wal *w = (reel_wal *)wal; /* the lock is not part of the value */
    pthread_mutex_lock(&w->mu);
    uint64_t v = w->segs[0];
    pthread_mutex_unlock(&w->mu);
    return v;
}

uint64_t reel_wal_last_lsn(const reel_wal *wal)
{
    reel_wal *w = (reel_wal *)wal;
    pthread_mutex_lock(&w->mu);
    uint64_t v = w->next_lsn - 1;
    pthread_mutex_unlock(&w->mu);
    return v;
}

uint64_t reel_wal_durable_lsn(const reel_wal *wal)
{
    reel_wal *w = (reel_wal *)wal;
    pthread_mutex_lock(&w->mu);
    uint64_t v = w->durable_lsn;
    pthread_mutex_unlock(&w->mu);
    return v;
}

void reel_wal_get_stats(const reel_wal *wal, reel_wal_stats *out)
{
    reel_wal *w = (reel_wal *)wal;
    pthread_mutex_lock(&w->mu);
    *out = w->st;
    out->segments = w->n_segs;
    out->first_lsn = w->segs[0];
    out->last_lsn = w->next_lsn - 1;
    out->durable_lsn = w->durable_lsn;
    pthread_mutex_unlock(&w->mu);
}
