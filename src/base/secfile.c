#include "base/secfile.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/crc.h"
#include "base/mem.h"

/* Layout constants; docs/formats/secfile.md is the specification. */
#define MAGIC "REELSEC"
#define VERSION 1u
#define HEADER_SIZE 64
#define ENTRY_SIZE 64
#define ALIGN 64
#define MAX_SECTIONS 65536u

struct entry {
    char name[32];
    uint64_t offset;
    uint64_t length;
    uint64_t count;
    uint32_t type;
    uint32_t crc;
};
_Static_assert(sizeof(struct entry) == ENTRY_SIZE, "entry layout");

struct header {
    char magic[8];
    uint32_t version;
    uint32_t n_sections;
    char kind[16];
    uint64_t table_offset;
    uint64_t file_size;
    uint32_t table_crc;
    uint32_t reserved[2];
    uint32_t header_crc;
};
_Static_assert(sizeof(struct header) == HEADER_SIZE, "header layout");

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "reel's file formats are little-endian; a big-endian port must swap"
#endif

size_t reel_sectype_size(enum reel_sectype t)
{
    switch (t) {
    case REEL_SEC_BYTES:
    case REEL_SEC_U8:
    case REEL_SEC_I8:
        return 1;
    case REEL_SEC_I16:
    case REEL_SEC_U16:
        return 2;
    case REEL_SEC_U32:
    case REEL_SEC_I32:
    case REEL_SEC_F32:
        return 4;
    case REEL_SEC_U64:
    case REEL_SEC_F64:
        return 8;
    }
    return 0;
}

/* ------------------------------------------------------------------ write */

struct reel_secfile_writer {
    int fd;
    char *path;
    char *tmp;
    char kind[16];
    uint64_t pos; /* bytes written to the file so far */
    unsigned char *buf;
    size_t n_buf;
    struct entry *entries;
    size_t n_entries, cap_entries;
    int open_section; /* a begin without its end */
    int failed;
};

#define WBUF (1u << 20)

static int flush_buf(reel_secfile_writer *w)
{
    size_t off = 0;
    while (off < w->n_buf) {
        ssize_t n = write(w->fd, w->buf + off, w->n_buf - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            w->failed = 1;
            return REEL_EIO;
        }
        off += (size_t)n;
    }
    w->n_buf = 0;
    return 0;
}

static int put(reel_secfile_writer *w, const void *data, uint64_t n)
{
    const unsigned char *p = data;
    while (n) {
        size_t room = WBUF - w->n_buf;
        size_t chunk = n < room ? (size_t)n : room;
        memcpy(w->buf + w->n_buf, p, chunk);
        w->n_buf += chunk;
        w->pos += chunk;
        p += chunk;
        n -= chunk;
        if (w->n_buf == WBUF) {
            int rc = flush_buf(w);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int pad(reel_secfile_writer *w)
{
    static const unsigned char zeros[ALIGN];
    uint64_t rem = w->pos % ALIGN;
    return rem ? put(w, zeros, ALIGN - rem) : 0;
}

int reel_secfile_writer_open(const char *path, const char *kind,
                             reel_secfile_writer **out, reel_diag *d)
{
    *out = NULL;
    if (strlen(kind) > 15)
        return reel_diag_fail(d, REEL_EINVAL, "file kind too long");
    reel_secfile_writer *w = reel_xcalloc(1, sizeof *w);
    w->path = reel_xstrndup(path, strlen(path));
    size_t tl = strlen(path) + 16;
    w->tmp = reel_xmalloc(tl);
    snprintf(w->tmp, tl, "%s.tmp.XXXXXX", path);
    w->fd = mkstemp(w->tmp);
    if (w->fd < 0) {
        int e = errno;
        free(w->tmp);
        w->tmp = NULL;
        reel_secfile_writer_free(w);
        return reel_diag_fail(d, REEL_EIO, "cannot create %s: %s", path,
                              strerror(e));
    }
    fchmod(w->fd, 0644);
    memcpy(w->kind, kind, strlen(kind));
    w->buf = reel_xmalloc(WBUF);
    /* The header is written last; reserve its bytes now. */
    static const unsigned char zeros[HEADER_SIZE];
    put(w, zeros, HEADER_SIZE);
    *out = w;
    return 0;
}

int reel_secfile_writer_begin(reel_secfile_writer *w, const char *name,
                              enum reel_sectype type)
{
    if (w->failed)
        return REEL_EIO;
    if (w->open_section || strlen(name) > REEL_SECFILE_NAME_MAX ||
        reel_sectype_size(type) == 0 || w->n_entries >= MAX_SECTIONS)
        return REEL_EINVAL;
    for (size_t i = 0; i < w->n_entries; i++)
        if (!strcmp(w->entries[i].name, name))
            return REEL_EEXISTS;
    REEL_GROW(w->entries, w->cap_entries, w->n_entries + 1);
    struct entry *e = &w->entries[w->n_entries];
    memset(e, 0, sizeof *e);
    memcpy(e->name, name, strlen(name));
    e->offset = w->pos;
    e->type = (uint32_t)type;
    w->open_section = 1;
    return 0;
}

int reel_secfile_writer_append(reel_secfile_writer *w, const void *data,
                               uint64_t bytes)
{
    if (!w->open_section)
        return REEL_EINVAL;
    struct entry *e = &w->entries[w->n_entries];
    e->crc = reel_crc32c(e->crc, data, (size_t)bytes);
    e->length += bytes;
    return put(w, data, bytes);
}

int reel_secfile_writer_end(reel_secfile_writer *w)
{
    if (!w->open_section)
        return REEL_EINVAL;
    struct entry *e = &w->entries[w->n_entries];
    size_t es = reel_sectype_size((enum reel_sectype)e->type);
    if (e->length % es)
        return REEL_EINVAL;
    e->count = e->length / es;
    w->open_section = 0;
    w->n_entries++;
    return pad(w);
}

int reel_secfile_writer_add(reel_secfile_writer *w, const char *name,
                            enum reel_sectype type, const void *data,
                            uint64_t count)
{
    int rc = reel_secfile_writer_begin(w, name, type);
    if (rc)
        return rc;
    rc = reel_secfile_writer_append(w, data, count * reel_sectype_size(type));
    if (rc)
        return rc;
    return reel_secfile_writer_end(w);
}

uint64_t reel_secfile_writer_pos(const reel_secfile_writer *w)
{
    return w->pos;
}

static int fsync_dir(const char *path)
{
    char *copy = reel_xstrndup(path, strlen(path));
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    free(copy);
    if (fd < 0)
        return REEL_EIO;
    int rc = fsync(fd) ? REEL_EIO : 0;
    close(fd);
    return rc;
}

int reel_secfile_writer_commit(reel_secfile_writer *w, reel_diag *d)
{
    int rc = REEL_EIO;
    if (w->failed || w->open_section)
        goto fail;
    uint64_t table_offset = w->pos;
    uint32_t table_crc =
        reel_crc32c(0, w->entries, w->n_entries * sizeof *w->entries);
    if ((rc = put(w, w->entries, w->n_entries * sizeof *w->entries)) ||
        (rc = flush_buf(w)))
        goto fail;
    struct header h = {0};
    memcpy(h.magic, MAGIC, sizeof MAGIC);
    h.version = VERSION;
    h.n_sections = (uint32_t)w->n_entries;
    memcpy(h.kind, w->kind, sizeof h.kind);
    h.table_offset = table_offset;
    h.file_size = w->pos;
    h.table_crc = table_crc;
    h.header_crc = reel_crc32c(0, &h, offsetof(struct header, header_crc));
    rc = REEL_EIO;
    if (pwrite(w->fd, &h, sizeof h, 0) != (ssize_t)sizeof h)
        goto fail;
    if (fsync(w->fd) || close(w->fd)) {
        w->fd = -1;
        goto fail;
    }
    w->fd = -1;
    if (rename(w->tmp, w->path))
        goto fail;
    free(w->tmp);
    w->tmp = NULL;
    fsync_dir(w->path);
    reel_secfile_writer_free(w);
    return 0;
fail:
    reel_diag_fail(d, rc, "cannot write %s: %s", w->path,
                   errno ? strerror(errno) : reel_strerror(rc));
    reel_secfile_writer_free(w);
    return rc;
}

void reel_secfile_writer_free(reel_secfile_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    if (w->tmp) {
        unlink(w->tmp);
        free(w->tmp);
    }
    free(w->path);
    free(w->buf);
    free(w->entries);
    free(w);
}

/* ------------------------------------------------------------------- read */

struct reel_secfile {
    int writable;
    void *map;
    uint64_t size;
    uint32_t n;
    reel_section *sections;
};

static int bad(reel_diag *d, const char *path, const char *why)
{
    return reel_diag_fail(d, REEL_ECORRUPT, "%s: not a valid reel file: %s",
                          path, why);
}

int reel_secfile_open(const char *path, const char *kind, int flags,
                      reel_secfile **out, reel_diag *d)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return reel_diag_fail(d, errno == ENOENT ? REEL_ENOENT : REEL_EIO,
                              "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st)) {
        close(fd);
        return reel_diag_fail(d, REEL_EIO, "cannot stat %s", path);
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size < HEADER_SIZE) {
        close(fd);
        return bad(d, path, "shorter than its header (truncated?)");
    }
    /* Populating up front is several times cheaper than taking a page
     * fault per 4 KiB later, and every section is read at least once by
     * the checksum pass anyway. */
    int writable = flags & REEL_SECFILE_WRITABLE;
    /* Populating a copy-on-write mapping would copy every page, so a
     * writable one only asks the kernel to read ahead. */
    void *map = mmap(NULL, size, writable ? PROT_READ | PROT_WRITE : PROT_READ,
                     MAP_PRIVATE | (writable ? 0 : MAP_POPULATE), fd, 0);
    close(fd);
    if (map != MAP_FAILED && writable)
        madvise(map, size, MADV_WILLNEED);
    if (map == MAP_FAILED)
        return reel_diag_fail(d, REEL_EIO, "cannot map %s: %s", path,
                              strerror(errno));
    reel_secfile *f = reel_xcalloc(1, sizeof *f);
    f->map = map;
    f->size = size;
    f->writable = writable;
    int rc;
    struct header h;
    memcpy(&h, map, sizeof h);
    if (memcmp(h.magic, MAGIC, sizeof MAGIC)) {
        rc = bad(d, path, "bad magic");
        goto fail;
    }
    if (h.header_crc !=
        reel_crc32c(0, &h, offsetof(struct header, header_crc))) {
        rc = bad(d, path, "header checksum mismatch");
        goto fail;
    }
    if (h.version != VERSION) {
        rc = reel_diag_fail(d, REEL_EVERSION,
                            "%s: format version %u, this reel reads %u", path,
                            h.version, VERSION);
        goto fail;
    }
    if (kind && strncmp(h.kind, kind, sizeof h.kind)) {
        char k[17] = {0};
        memcpy(k, h.kind, 16);
        rc = reel_diag_fail(d, REEL_EFORMAT, "%s holds a '%s', expected a '%s'",
                            path, k, kind);
        goto fail;
    }
    if (h.file_size != size) {
        rc = bad(d, path, h.file_size > size ? "truncated" : "trailing bytes");
        goto fail;
    }
    if (h.n_sections > MAX_SECTIONS || h.table_offset % ALIGN ||
        h.table_offset < HEADER_SIZE ||
        h.table_offset + (uint64_t)h.n_sections * ENTRY_SIZE != size) {
        rc = bad(d, path, "section table out of bounds");
        goto fail;
    }
    const struct entry *tab =
        (const struct entry *)((const char *)map + h.table_offset);
    if (h.table_crc != reel_crc32c(0, tab, (size_t)h.n_sections * ENTRY_SIZE)) {
        rc = bad(d, path, "section table checksum mismatch");
        goto fail;
    }
    f->n = h.n_sections;
    f->sections = reel_xcalloc(f->n ? f->n : 1, sizeof *f->sections);
    for (uint32_t i = 0; i < f->n; i++) {
        const struct entry *e = &tab[i];
        size_t es = reel_sectype_size((enum reel_sectype)e->type);
        if (memchr(e->name, '\0', sizeof e->name) == NULL || es == 0 ||
            e->offset % ALIGN || e->offset < HEADER_SIZE ||
            e->offset > h.table_offset ||
            e->length > h.table_offset - e->offset ||
            e->count != e->length / es || e->length % es) {
            rc = bad(d, path, "section entry out of bounds");
            goto fail;
        }
        reel_section *s = &f->sections[i];
        s->name = e->name;
        s->type = (enum reel_sectype)e->type;
        s->count = e->count;
        s->length = e->length;
        s->data = (const char *)map + e->offset;
        if (!(flags & REEL_SECFILE_NOVERIFY) &&
            reel_crc32c(0, s->data, (size_t)s->length) != e->crc) {
            rc = reel_diag_fail(d, REEL_ECORRUPT,
                                "%s: section '%s' checksum mismatch (file "
                                "damaged)",
                                path, e->name);
            goto fail;
        }
    }
    *out = f;
    return 0;
fail:
    reel_secfile_close(f);
    return rc;
}

void reel_secfile_close(reel_secfile *f)
{
    if (!f)
        return;
    if (f->map)
        munmap(f->map, f->size);
    free(f->sections);
    free(f);
}

uint32_t reel_secfile_count(const reel_secfile *f)
{
    return f->n;
}

const reel_section *reel_secfile_at(const reel_secfile *f, uint32_t i)
{
    return i < f->n ? &f->sections[i] : NULL;
}

const reel_section *reel_secfile_find(const reel_secfile *f, const char *name)
{
    for (uint32_t i = 0; i < f->n; i++)
        if (!strcmp(f->sections[i].name, name))
            return &f->sections[i];
    return NULL;
}

int reel_secfile_need(const reel_secfile *f, const char *name,
                      enum reel_sectype type, uint64_t count,
                      const reel_section **out, reel_diag *d)
{
    const reel_section *s = reel_secfile_find(f, name);
    *out = NULL;
    if (!s)
        return reel_diag_fail(d, REEL_ECORRUPT, "section '%s' is missing",
                              name);
    if (s->type != type || (count != UINT64_MAX && s->count != count))
        return reel_diag_fail(d, REEL_ECORRUPT,
                              "section '%s' has type %d and %llu elements, "
                              "expected type %d and %llu",
                              name, (int)s->type, (unsigned long long)s->count,
                              (int)type, (unsigned long long)count);
    *out = s;
    return 0;
}

void *reel_secfile_mutable(const reel_secfile *f, const reel_section *s)
{
    assert(f->writable);
    return (void *)s->data;
}

uint64_t reel_secfile_size(const reel_secfile *f)
{
    return f->size;
}
