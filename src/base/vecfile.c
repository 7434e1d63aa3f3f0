#include "base/vecfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/mem.h"

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static int open_sized(const char *path, FILE **f, uint64_t *size, reel_diag *d)
{
    *f = fopen(path, "rb");
    if (!*f)
        return reel_diag_fail(d, errno == ENOENT ? REEL_ENOENT : REEL_EIO,
                              "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(*f), &st)) {
        fclose(*f);
        return reel_diag_fail(d, REEL_EIO, "cannot stat %s", path);
    }
    *size = (uint64_t)st.st_size;
    return 0;
}

/* Reads fvecs or ivecs (same layout, 4-byte values) into out (n x d). */
static int read_xvecs(const char *path, void **out, uint64_t *n_out,
                      uint32_t *d_out, reel_diag *d)
{
    FILE *f;
    uint64_t size;
    int rc = open_sized(path, &f, &size, d);
    if (rc)
        return rc;
    int32_t dim;
    if (size < 4 || fread(&dim, 4, 1, f) != 1) {
        fclose(f);
        return reel_diag_fail(d, REEL_EFORMAT, "%s: empty or too short", path);
    }
    if (dim < 1 || dim > REEL_VEC_MAX_DIM) {
        fclose(f);
        return reel_diag_fail(d, REEL_EFORMAT,
                              "%s: dimension %d out of range 1..%d", path, dim,
                              REEL_VEC_MAX_DIM);
    }
    uint64_t rec = 4 + 4 * (uint64_t)dim;
    if (size % rec) {
        fclose(f);
        return reel_diag_fail(d, REEL_EFORMAT,
                              "%s: size %llu is not a multiple of the record "
                              "size %llu (dimension %d): truncated or mixed "
                              "dimensions",
                              path, (unsigned long long)size,
                              (unsigned long long)rec, dim);
    }
    uint64_t n = size / rec;
    uint32_t *data = reel_xmalloc(n * (uint64_t)dim * 4);
    rewind(f);
    for (uint64_t i = 0; i < n; i++) {
        int32_t di;
        if (fread(&di, 4, 1, f) != 1 ||
            fread(data + i * (uint64_t)dim, 4, (size_t)dim, f) != (size_t)dim) {
            free(data);
            fclose(f);
            return reel_diag_fail(d, REEL_EIO, "%s: read error at vector %llu",
                                  path, (unsigned long long)i);
        }
        if (di != dim) {
            free(data);
            fclose(f);
            return reel_diag_fail(d, REEL_EFORMAT,
                                  "%s: vector %llu has dimension %d, the "
                                  "first had %d",
                                  path, (unsigned long long)i, di, dim);
        }
    }
    fclose(f);
    *out = data;
    *n_out = n;
    *d_out = (uint32_t)dim;
    return 0;
}

/* Finds 'key': VALUE in a .npy header dict; returns a pointer to VALUE. */
static const char *npy_field(const char *hdr, const char *key)
{
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(hdr, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    while (*p == ' ' || *p == ':')
        p++;
    return p;
}

/* Parses a .npy header: element type and 2-D shape; *elem is the size. */
static int npy_header(const char *path, FILE *f, uint64_t size, char *descr,
                      uint64_t *n, uint64_t *dd, uint64_t *data_off,
                      reel_diag *d)
{
    unsigned char pre[12];
    if (size < 10 || fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6))
        return reel_diag_fail(d, REEL_EFORMAT, "%s: not a .npy file", path);
    uint64_t hlen, off;
    if (pre[6] == 1) {
        hlen = pre[8] | (uint64_t)pre[9] << 8;
        off = 10;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (fread(pre + 10, 1, 2, f) != 2)
            return reel_diag_fail(d, REEL_EFORMAT, "%s: truncated header",
                                  path);
        hlen = pre[8] | (uint64_t)pre[9] << 8 | (uint64_t)pre[10] << 16 |
               (uint64_t)pre[11] << 24;
        off = 12;
    } else {
        return reel_diag_fail(d, REEL_EFORMAT, "%s: .npy version %d", path,
                              pre[6]);
    }
    if (hlen > 65536 || off + hlen > size)
        return reel_diag_fail(d, REEL_EFORMAT, "%s: bad header length", path);
    char *hdr = reel_xmalloc(hlen + 1);
    int rc = 0;
    if (fread(hdr, 1, hlen, f) != hlen) {
        rc = reel_diag_fail(d, REEL_EFORMAT, "%s: truncated header", path);
        goto out;
    }
    hdr[hlen] = '\0';
    const char *p = npy_field(hdr, "descr");
    if (!p || sscanf(p, "'%7[^']'", descr) != 1) {
        rc = reel_diag_fail(d, REEL_EFORMAT, "%s: header has no descr", path);
        goto out;
    }
    p = npy_field(hdr, "fortran_order");
    if (!p || strncmp(p, "False", 5)) {
        rc = reel_diag_fail(d, REEL_EFORMAT,
                            "%s: Fortran-order arrays are not supported "
                            "(save with np.ascontiguousarray)",
                            path);
        goto out;
    }
    p = npy_field(hdr, "shape");
    unsigned long long a, b;
    if (!p || sscanf(p, "(%llu, %llu)", &a, &b) != 2) {
        rc = reel_diag_fail(d, REEL_EFORMAT,
                            "%s: expected a 2-D array (shape (n, d))", path);
        goto out;
    }
    *n = a;
    *dd = b;
    *data_off = off + hlen;
out:
    free(hdr);
    return rc;
}

static int read_npy(const char *path, int want_int, void **out, uint64_t *n_out,
                    uint32_t *d_out, reel_diag *d)
{
    FILE *f;
    uint64_t size;
    int rc = open_sized(path, &f, &size, d);
    if (rc)
        return rc;
    char descr[8];
    uint64_t n = 0, dd = 0, off = 0;
    if ((rc = npy_header(path, f, size, descr, &n, &dd, &off, d))) {
        fclose(f);
        return rc;
    }
    size_t elem = 0;
    int kind = 0; /* 1 f4, 2 f8, 3 i4, 4 i8 */
    if (!strcmp(descr, "<f4") || !strcmp(descr, "=f4"))
        kind = 1, elem = 4;
    else if (!strcmp(descr, "<f8") || !strcmp(descr, "=f8"))
        kind = 2, elem = 8;
    else if (!strcmp(descr, "<i4") || !strcmp(descr, "=i4"))
        kind = 3, elem = 4;
    else if (!strcmp(descr, "<i8") || !strcmp(descr, "=i8"))
        kind = 4, elem = 8;
    if (!kind || (want_int && kind < 3) || (!want_int && kind > 2)) {
        fclose(f);
        return reel_diag_fail(d, REEL_EFORMAT,
                              "%s: element type %s is not supported (want "
                              "%s)",
                              path, descr, want_int ? "<i4" : "<f4");
    }
    if (dd < 1 || dd > REEL_VEC_MAX_DIM) {
        fclose(f);
        return reel_diag_fail(d, REEL_EFORMAT,
                              "%s: dimension %llu out of range 1..%d", path,
                              (unsigned long long)dd, REEL_VEC_MAX_DIM);
    }
    if (n > (size - off) / (dd * elem) || off + n * dd * elem != size) {
        fclose(f);
        return reel_diag_fail(d, REEL_EFORMAT,
                              "%s: size does not match shape (%llu, %llu): "
                              "truncated?",
                              path, (unsigned long long)n,
                              (unsigned long long)dd);
    }
    uint64_t count = n * dd;
    void *data = reel_xmalloc(count ? count * 4 : 1);
    if (elem == 4) {
        if (fread(data, 4, count, f) != count)
            rc = REEL_EIO;
    } else {
        enum { CH = 8192 };
        unsigned char *tmp = reel_xmalloc(CH * 8);
        for (uint64_t i = 0; i < count && !rc; i += CH) {
            size_t m = (size_t)(count - i < CH ? count - i : CH);
            if (fread(tmp, 8, m, f) != m) {
                rc = REEL_EIO;
                break;
            }
            for (size_t k = 0; k < m; k++) {
                if (kind == 2) {
                    double x;
                    memcpy(&x, tmp + 8 * k, 8);
                    ((float *)data)[i + k] = (float)x;
                } else {
                    int64_t x;
                    memcpy(&x, tmp + 8 * k, 8);
                    ((int32_t *)data)[i + k] = (int32_t)x;
                }
            }
        }
        free(tmp);
    }
    fclose(f);
    if (rc) {
        free(data);
        return reel_diag_fail(d, rc, "%s: read error", path);
    }
    *out = data;
    *n_out = n;
    *d_out = (uint32_t)dd;
    return 0;
}

/* Reads a float (want_int 0: .fvecs or .npy) or int32 (1: .ivecs or .npy)
 * matrix, choosing the reader by extension. */
static int read_matrix(const char *path, int want_int, void **data,
                       uint64_t *n, uint32_t *dim, reel_diag *d)
{
    const char *xvecs = want_int ? ".ivecs" : ".fvecs";
    *data = NULL;
    if (ends_with(path, xvecs))
        return read_xvecs(path, data, n, dim, d);
    if (ends_with(path, ".npy"))
        return read_npy(path, want_int, data, n, dim, d);
    return reel_diag_fail(d, REEL_EUNSUPPORTED,
                          "%s: unknown %s file type (use %s or .npy)", path,
                          want_int ? "matrix" : "vector", xvecs);
}

int reel_vecs_read(const char *path, reel_vecs *out, reel_diag *d)
{
    void *data;
    memset(out, 0, sizeof *out);
    int rc = read_matrix(path, 0, &data, &out->n, &out->d, d);
    out->data = data;
    return rc;
}

void reel_vecs_free(reel_vecs *v)
{
    if (!v)
        return;
    free(v->data);
    memset(v, 0, sizeof *v);
}

int reel_ivecs_read(const char *path, reel_ivecs *out, reel_diag *d)
{
    void *data;
    memset(out, 0, sizeof *out);
    int rc = read_matrix(path, 1, &data, &out->n, &out->d, d);
    out->data = data;
    return rc;
}

void reel_ivecs_free(reel_ivecs *v)
{
    if (!v)
        return;
    free(v->data);
    memset(v, 0, sizeof *v);
}

static int finish(FILE *f, const char *path, reel_diag *dg)
{
    int bad = ferror(f);
    if (fclose(f) || bad)
        return reel_diag_fail(dg, REEL_EIO, "cannot write %s", path);
    return 0;
}

int reel_vecs_write_fvecs(const char *path, const float *data, uint64_t n,
                          uint32_t d, reel_diag *dg)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return reel_diag_fail(dg, REEL_EIO, "cannot create %s: %s", path,
                              strerror(errno));
    int32_t di = (int32_t)d;
    for (uint64_t i = 0; i < n; i++) {
        fwrite(&di, 4, 1, f);
        fwrite(data + i * d, 4, d, f);
    }
    return finish(f, path, dg);
}

int reel_vecs_write_npy(const char *path, const float *data, uint64_t n,
                        uint32_t d, reel_diag *dg)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return reel_diag_fail(dg, REEL_EIO, "cannot create %s: %s", path,
                              strerror(errno));
    char hdr[128];
    int len = snprintf(hdr, sizeof hdr,
                       "{'descr': '<f4', 'fortran_order': False, 'shape': "
                       "(%llu, %u), }",
                       (unsigned long long)n, d);
    /* Magic, version and length take 10 bytes; pad the header with spaces
     * and a newline to a multiple of 64, as NumPy does. */
    int pad = (64 - (10 + len + 1) % 64) % 64;
    uint16_t hl = (uint16_t)(len + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fwrite(&hl, 2, 1, f);
    fwrite(hdr, 1, (size_t)len, f);
    for (int i = 0; i < pad; i++)
        fputc(' ', f);
    fputc('\n', f);
    fwrite(data, 4, n * d, f);
    return finish(f, path, dg);
}
