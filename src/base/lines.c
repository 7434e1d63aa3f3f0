#include "base/lines.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/mem.h"

#define CHUNK (1u << 20)

struct reel_lines {
    int fd;
    const char *path; /* borrowed from the caller */
    char *buf;
    size_t cap;
    size_t start, end; /* unread bytes are buf[start..end) */
    int eof;
    size_t max_line;
    uint64_t lineno;
    uint64_t offset;
    uint64_t size;
    reel_buf record; /* CSV record assembly */
};

int reel_lines_open(const char *path, size_t max_line, reel_lines **out,
                    reel_diag *d)
{
    *out = NULL;
    int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : 0;
    if (fd < 0)
        return reel_diag_fail(d, errno == ENOENT ? REEL_ENOENT : REEL_EIO,
                              "cannot open %s: %s", path, strerror(errno));
    reel_lines *r = reel_xcalloc(1, sizeof *r);
    r->fd = fd;
    r->path = path;
    r->max_line = max_line ? max_line : REEL_LINES_DEFAULT_MAX;
    r->cap = CHUNK + r->max_line + 1;
    r->buf = reel_xmalloc(r->cap);
    struct stat st;
    if (fd > 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        r->size = (uint64_t)st.st_size;
    *out = r;
    return 0;
}

void reel_lines_close(reel_lines *r)
{
    if (!r)
        return;
    if (r->fd > 0)
        close(r->fd);
    free(r->buf);
    reel_buf_free(&r->record);
    free(r);
}

static int fill(reel_lines *r, reel_diag *d)
{
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    /* One byte stays free for the NUL put after a last unterminated line. */
    while (!r->eof && r->end < r->cap - 1) {
        ssize_t n = read(r->fd, r->buf + r->end, r->cap - 1 - r->end);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return reel_diag_fail(d, REEL_EIO, "read error: %s",
                                  strerror(errno));
        }
        if (n == 0)
            r->eof = 1;
        r->end += (size_t)n;
        if (n > 0)
            break;
    }
    return 0;
}

int reel_lines_next(reel_lines *r, const char **line, size_t *len, reel_diag *d)
{
    if (d) {
        d->file = r->path;
        d->line = r->lineno + 1;
    }
    size_t scanned = 0;
    for (;;) {
        char *p = r->buf + r->start;
        size_t avail = r->end - r->start;
        char *nl = memchr(p + scanned, '\n', avail - scanned);
        if (nl || (r->eof && avail > 0)) {
            size_t l = nl ? (size_t)(nl - p) : avail;
            if (l > r->max_line)
                return reel_diag_fail(
                    d, REEL_ETOOBIG, "line longer than %zu bytes", r->max_line);
            size_t consumed = nl ? l + 1 : l;
            r->start += consumed;
            r->offset += consumed;
            r->lineno++;
            if (l && p[l - 1] == '\r')
                l--;
            p[l] = '\0';
            *line = p;
            *len = l;
            return 1;
        }
        if (r->eof)
            return 0;
        if (avail > r->max_line)
            return reel_diag_fail(d, REEL_ETOOBIG, "line longer than %zu bytes",
                                  r->max_line);
        scanned = avail;
        int rc = fill(r, d);
        if (rc)
            return rc;
    }
}

uint64_t reel_lines_lineno(const reel_lines *r)
{
    return r->lineno;
}

uint64_t reel_lines_offset(const reel_lines *r)
{
    return r->offset;
}

uint64_t reel_lines_size(const reel_lines *r)
{
    return r->size;
}

const char *reel_lines_path(const reel_lines *r)
{
    return r->path;
}

int reel_csv_next(reel_lines *r, char sep, reel_field *fields,
                  size_t max_fields, size_t *n_fields, reel_diag *d)
{
    const char *line;
    size_t len;
    int rc = reel_lines_next(r, &line, &len, d);
    if (rc <= 0)
        return rc;
    uint64_t first_line = r->lineno;
    reel_buf *b = &r->record;
    reel_buf_reset(b);
    /* Field boundaries are recorded as offsets into b and turned into
     * pointers at the end, since b may move while it grows. */
    size_t starts[256], ends[256];
    if (max_fields > 256)
        max_fields = 256;
    size_t nf = 0;
    size_t i = 0;
    int in_quotes = 0, field_open = 1;
    size_t fstart = 0;
    for (;;) {
        if (i == len) {
            if (in_quotes) {
                /* A quoted field continues on the next line. */
                if (b->len - fstart > r->max_line)
                    return reel_diag_fail(d, REEL_ETOOBIG, "field too long");
                reel_buf_putc(b, '\n');
                rc = reel_lines_next(r, &line, &len, d);
                if (rc < 0)
                    return rc;
                if (rc == 0) {
                    if (d)
                        d->line = first_line;
                    return reel_diag_fail(d, REEL_EFORMAT,
                                          "unterminated quoted field");
                }
                i = 0;
                continue;
            }
            break;
        }
        char c = line[i];
        if (in_quotes) {
            if (c == '"') {
                if (i + 1 < len && line[i + 1] == '"') {
                    reel_buf_putc(b, '"');
                    i += 2;
                    continue;
                }
                in_quotes = 0;
                i++;
                if (i < len && line[i] != sep)
                    return reel_diag_fail(d, REEL_EFORMAT,
                                          "text after a closing quote in "
                                          "field %zu",
                                          nf + 1);
                continue;
            }
            reel_buf_putc(b, c);
            i++;
            continue;
        }
        if (c == sep) {
            if (nf == max_fields)
                return reel_diag_fail(d, REEL_EFORMAT, "more than %zu fields",
                                      max_fields);
            starts[nf] = fstart;
            ends[nf] = b->len;
            nf++;
            fstart = b->len;
            field_open = 1;
            i++;
            continue;
        }
        if (c == '"' && field_open && b->len == fstart) {
            in_quotes = 1;
            i++;
            continue;
        }
        field_open = 0;
        reel_buf_putc(b, c);
        i++;
    }
    if (nf == max_fields)
        return reel_diag_fail(d, REEL_EFORMAT, "more than %zu fields",
                              max_fields);
    starts[nf] = fstart;
    ends[nf] = b->len;
    nf++;
    reel_buf_reserve(b, 0);
    for (size_t k = 0; k < nf; k++) {
        fields[k].p = b->data + starts[k];
        fields[k].len = ends[k] - starts[k];
    }
    if (d)
        d->line = first_line;
    *n_fields = nf;
    return 1;
}

size_t reel_split(const char *line, size_t len, char sep, reel_field *fields,
                  size_t max_fields)
{
    size_t nf = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || line[i] == sep) {
            if (nf == max_fields)
                return max_fields + 1;
            fields[nf].p = line + start;
            fields[nf].len = i - start;
            nf++;
            start = i + 1;
        }
    }
    return nf;
}
