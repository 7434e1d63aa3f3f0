#include "store/snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/strs.h"

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"

/* docs/formats/snapshot.md is the specification. */
#define KIND "snapshot"
#define META "snapshot.meta"
#define META_COUNT 8
#define VERSION 1u
#define PREFIX "snap-"
#define SUFFIX ".reel"
#define DIGITS 16
#define NAME_LEN (sizeof PREFIX - 1 + DIGITS + sizeof SUFFIX - 1)

struct reel_snapshot {
    reel_secfile *f;
    uint64_t lsn;
};

static char *snap_path(const char *dir, uint64_t lsn)
{
    size_t n = strlen(dir) + NAME_LEN + 2;
    char *p = reel_xmalloc(n);
    snprintf(p, n, "%s/" PREFIX "%016" PRIx64 SUFFIX, dir, lsn);
    return p;
}

/* 1 and the LSN when `name` is a snapshot's file name. */
static int parse_name(const char *name, uint64_t *lsn)
{
    size_t pl = sizeof PREFIX - 1;
    if (strlen(name) != NAME_LEN || strncmp(name, PREFIX, pl) ||
        strcmp(name + pl + DIGITS, SUFFIX))
        return 0;
    uint64_t v;
    if (reel_parse_hex64(name + pl, DIGITS, &v))
        return 0;
    *lsn = v;
    return v != 0;
}

/* An unfinished write: "snap-....reel.tmp.XXXXXX". */
static int is_temp(const char *name)
{
    return !strncmp(name, PREFIX, sizeof PREFIX - 1) &&
           strstr(name, SUFFIX ".tmp.") != NULL;
}

static int make_dir(const char *dir, reel_diag *d)
{
    if (mkdir(dir, 0755) && errno != EEXIST)
        return reel_diag_fail(d, REEL_EIO, "cannot create %s: %s", dir,
                              strerror(errno));
    return 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return REEL_EIO;
    int rc = fsync(fd) ? REEL_EIO : 0;
    close(fd);
    return rc;
}

int reel_snapshot_writer_open(const char *dir, uint64_t lsn,
                              reel_secfile_writer **out, reel_diag *d)
{
    *out = NULL;
    if (lsn == 0)
        return reel_diag_fail(d, REEL_EINVAL, "a snapshot covers LSN >= 1");
    int rc = make_dir(dir, d);
    if (rc)
        return rc;
    char *path = snap_path(dir, lsn);
    reel_secfile_writer *w;
    rc = reel_secfile_writer_open(path, KIND, &w, d);
    free(path);
    if (rc)
        return rc;
    uint64_t meta[META_COUNT] = {
        VERSION, lsn, (uint64_t)(reel_clock_wall() * 1000.0), 0, 0, 0, 0, 0};
    if ((rc = reel_secfile_writer_add(w, META, REEL_SEC_U64, meta,
                                      META_COUNT))) {
        reel_secfile_writer_free(w);
        return reel_diag_fail(d, rc, "cannot write a snapshot in %s", dir);
    }
    *out = w;
    return 0;
}

int reel_snapshot_write(const char *dir, uint64_t lsn,
                        const reel_snapshot_section *secs, size_t n_secs,
                        reel_diag *d)
{
    for (size_t i = 0; i < n_secs; i++)
        if (!strncmp(secs[i].name, "snapshot.", 9) ||
            (secs[i].count && !secs[i].data))
            return reel_diag_fail(d, REEL_EINVAL,
                                  "snapshot section '%s' is not allowed",
                                  secs[i].name);
    reel_secfile_writer *w;
    int rc = reel_snapshot_writer_open(dir, lsn, &w, d);
    if (rc)
        return rc;
    for (size_t i = 0; i < n_secs; i++) {
        if ((rc = reel_secfile_writer_add(w, secs[i].name, secs[i].type,
                                          secs[i].data, secs[i].count))) {
            reel_secfile_writer_free(w);
            return reel_diag_fail(d, rc, "snapshot section '%s': %s",
                                  secs[i].name, reel_strerror(rc));
        }
    }
    return reel_secfile_writer_commit(w, d);
}

int reel_snapshot_open(const char *path, reel_snapshot **out, reel_diag *d)
{
    *out = NULL;
    reel_secfile *f;
    int rc = reel_secfile_open(path, KIND, 0, &f, d);
    if (rc)
        return rc;
    const reel_section *m;
    reel_diag why;
    reel_diag_clear(&why);
    if ((rc = reel_secfile_need(f, META, REEL_SEC_U64, META_COUNT, &m, &why))) {
        reel_secfile_close(f);
        return reel_diag_fail(d, rc, "%s: %s", path, why.msg);
    }
    uint64_t meta[META_COUNT];
    memcpy(meta, m->data, sizeof meta);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    uint64_t named;
    if (meta[0] != VERSION)
        rc = reel_diag_fail(d, REEL_EVERSION,
                            "%s: snapshot version %" PRIu64
                            ", this reel reads %u",
                            path, meta[0], VERSION);
    else if (meta[1] == 0)
        rc = reel_diag_fail(d, REEL_ECORRUPT, "%s: snapshot of LSN 0", path);
    else if (parse_name(base, &named) && named != meta[1])
        rc = reel_diag_fail(d, REEL_ECORRUPT,
                            "%s: covers LSN %" PRIu64
                            " but its name says %" PRIu64,
                            path, meta[1], named);
    if (rc) {
        reel_secfile_close(f);
        return rc;
    }
    reel_snapshot *s = reel_xcalloc(1, sizeof *s);
    s->f = f;
    s->lsn = meta[1];
    *out = s;
    return 0;
}

int reel_snapshot_open_newest(const char *dir, reel_snapshot **out,
                              reel_diag *d)
{
    *out = NULL;
    uint64_t *lsns;
    size_t n;
    int rc = reel_snapshot_list(dir, &lsns, &n);
    if (rc)
        return reel_diag_fail(d, rc, "cannot list snapshots in %s", dir);
    for (size_t i = n; i-- > 0;) {
        char *path = snap_path(dir, lsns[i]);
        reel_diag why;
        reel_diag_clear(&why);
        rc = reel_snapshot_open(path, out, &why);
        free(path);
        if (!rc)
            break;
        reel_log_warn("snapshot: skipping %s", why.msg);
    }
    free(lsns);
    if (!*out)
        reel_log_info("snapshot: no valid snapshot in %s", dir);
    return 0;
}

void reel_snapshot_close(reel_snapshot *s)
{
    if (!s)
        return;
    reel_secfile_close(s->f);
    free(s);
}

uint64_t reel_snapshot_lsn(const reel_snapshot *s)
{
    return s->lsn;
}

const reel_secfile *reel_snapshot_file(const reel_snapshot *s)
{
    return s->f;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int reel_snapshot_list(const char *dir, uint64_t **lsns, size_t *n)
{
    *lsns = NULL;
    *n = 0;
    DIR *dh = opendir(dir);
    if (!dh)
        return errno == ENOENT ? 0 : REEL_EIO;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(dh))) {
        uint64_t lsn;
        if (!parse_name(e->d_name, &lsn))
            continue;
        REEL_GROW(*lsns, cap, *n + 1);
        (*lsns)[(*n)++] = lsn;
    }
    closedir(dh);
    if (*n)
        qsort(*lsns, *n, sizeof **lsns, cmp_u64);
    return 0;
}

int reel_snapshot_delete(const char *dir, uint64_t lsn)
{
    char *path = snap_path(dir, lsn);
    int rc = 0;
    if (unlink(path)) {
        rc = errno == ENOENT ? REEL_ENOENT : REEL_EIO;
        if (rc == REEL_EIO)
            reel_log_error("snapshot: cannot remove %s: %s", path,
                           strerror(errno));
    }
    free(path);
    return rc;
}

int reel_snapshot_prune(const char *dir, size_t keep)
{
    uint64_t *lsns;
    size_t n;
    int rc = reel_snapshot_list(dir, &lsns, &n);
    if (rc)
        return rc;
    for (size_t i = 0; i + keep < n; i++) {
        int r = reel_snapshot_delete(dir, lsns[i]);
        if (r && r != REEL_ENOENT)
            rc = r;
    }
    free(lsns);
    DIR *dh = opendir(dir);
    if (!dh)
        return errno == ENOENT ? rc : REEL_EIO;
    struct dirent *e;
    while ((e = readdir(dh))) {
        if (!is_temp(e->d_name))
            continue;
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *path = reel_xmalloc(len);
        snprintf(path, len, "%s/%s", dir, e->d_name);
        if (unlink(path) && errno != ENOENT)
            rc = REEL_EIO;
        else
            reel_log_info("snapshot: removed unfinished %s", path);
        free(path);
    }
    closedir(dh);
    int r = fsync_dir(dir);
    return rc ? rc : r;
}
