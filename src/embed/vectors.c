#include "embed/vectors.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/secfile.h"

#define VERSION 1
#define MAX_DIM 4096

void reel_vectors_new(uint32_t n, uint32_t dim, const char *source,
                      reel_vectors **out)
{
    reel_vectors *v = reel_xcalloc(1, sizeof *v);
    v->n = n;
    v->dim = dim;
    v->data = reel_xcalloc((size_t)n * dim + 1, sizeof *v->data);
    v->has = reel_xcalloc(n + 1, 1);
    const char *src = source ? source : "{}";
    v->source = reel_xstrndup(src, strlen(src));
    *out = v;
}

reel_vectors *reel_vectors_dup(const reel_vectors *v)
{
    reel_vectors *c;
    reel_vectors_new(v->n, v->dim, v->source, &c);
    memcpy(c->data, v->data, (size_t)v->n * v->dim * sizeof *v->data);
    memcpy(c->has, v->has, v->n);
    c->unit_norm = v->unit_norm;
    c->prior = v->prior;
    return c;
}

void reel_vectors_grow(reel_vectors *v, uint32_t n)
{
    if (n <= v->n)
        return;
    size_t old = (size_t)v->n * v->dim, now = (size_t)n * v->dim;
    v->data = reel_xrealloc(v->data, (now + 1) * sizeof *v->data);
    memset(v->data + old, 0, (now + 1 - old) * sizeof *v->data);
    v->has = reel_xrealloc(v->has, (size_t)n + 1);
    memset(v->has + v->n, 0, (size_t)n + 1 - v->n);
    v->n = n;
}

void reel_vectors_free(reel_vectors *v)
{
    if (!v)
        return;
    free(v->data);
    free(v->has);
    free(v->source);
    free(v);
}

void reel_vectors_normalize(reel_vectors *v)
{
    for (uint32_t i = 0; i < v->n; i++) {
        if (!v->has[i])
            continue;
        float *r = reel_vectors_row(v, i);
        double n2 = 0;
        for (uint32_t j = 0; j < v->dim; j++)
            n2 += (double)r[j] * r[j];
        if (n2 <= 0) {
            v->has[i] = 0;
            continue;
        }
        float inv = (float)(1.0 / sqrt(n2));
        for (uint32_t j = 0; j < v->dim; j++)
            r[j] *= inv;
    }
    v->unit_norm = 1;
}

int reel_vectors_save(const reel_vectors *v, const reel_dataset *ds,
                      const char *path, reel_diag *d)
{
    const reel_videos *vid = reel_dataset_videos(ds);
    if (vid->n != v->n)
        return reel_diag_fail(d, REEL_EINVAL,
                              "vectors have %u rows, the dataset %u videos",
                              v->n, vid->n);
    uint64_t p[8] = {
        VERSION, v->n, v->dim, (uint64_t)v->unit_norm, (uint64_t)v->prior,
        0,       0,    0};
    reel_secfile_writer *w;
    int rc = reel_secfile_writer_open(path, "vectors", &w, d);
    if (rc)
        return rc;
    if ((rc = reel_secfile_writer_add(w, "vectors.params", REEL_SEC_U64, p,
                                      8)) ||
        (rc = reel_secfile_writer_add(w, "vectors.source", REEL_SEC_BYTES,
                                      v->source, strlen(v->source))) ||
        (rc = reel_secfile_writer_add(w, "vectors.ids.off", REEL_SEC_U64,
                                      vid->id.offs, (uint64_t)v->n + 1)) ||
        (rc = reel_secfile_writer_add(w, "vectors.ids", REEL_SEC_BYTES,
                                      vid->id.bytes, vid->id.offs[v->n])) ||
        (rc = reel_secfile_writer_add(w, "vectors.has", REEL_SEC_U8, v->has,
                                      v->n)) ||
        (rc = reel_secfile_writer_add(w, "vectors.data", REEL_SEC_F32, v->data,
                                      (uint64_t)v->n * v->dim))) {
        reel_secfile_writer_free(w);
        return reel_diag_fail(d, rc, "cannot write %s: %s", path,
                              reel_strerror(rc));
    }
    return reel_secfile_writer_commit(w, d);
}

int reel_vectors_load(const char *path, const reel_dataset *ds,
                      reel_vectors **out, reel_diag *d)
{
    *out = NULL;
    reel_secfile *f;
    int rc = reel_secfile_open(path, "vectors", 0, &f, d);
    if (rc)
        return rc;
    const reel_section *sp, *ss, *so, *si, *sh, *sd;
    if ((rc =
             reel_secfile_need(f, "vectors.params", REEL_SEC_U64, 8, &sp, d)) ||
        (rc = reel_secfile_need(f, "vectors.source", REEL_SEC_BYTES, UINT64_MAX,
                                &ss, d)))
        goto fail;
    const uint64_t *p = sp->data;
    if (p[0] != VERSION) {
        rc = reel_diag_fail(d, REEL_EVERSION, "%s: vectors format %llu", path,
                            (unsigned long long)p[0]);
        goto fail;
    }
    if (p[1] >= UINT32_MAX || p[2] < 1 || p[2] > MAX_DIM) {
        rc = reel_diag_fail(d, REEL_ECORRUPT, "%s: invalid shape", path);
        goto fail;
    }
    uint32_t n = (uint32_t)p[1], dim = (uint32_t)p[2];
    if ((rc = reel_secfile_need(f, "vectors.ids.off", REEL_SEC_U64,
                                (uint64_t)n + 1, &so, d)) ||
        (rc = reel_secfile_need(f, "vectors.ids", REEL_SEC_BYTES, UINT64_MAX,
                                &si, d)) ||
        (rc = reel_secfile_need(f, "vectors.has", REEL_SEC_U8, n, &sh, d)) ||
        (rc = reel_secfile_need(f, "vectors.data", REEL_SEC_F32,
                                (uint64_t)n * dim, &sd, d)))
        goto fail;
    const uint64_t *offs = so->data;
    const char *bytes = si->data;
    if (offs[0] != 0 || offs[n] != si->length) {
        rc = reel_diag_fail(d, REEL_ECORRUPT, "%s: id column inconsistent",
                            path);
        goto fail;
    }
    for (uint32_t i = 0; i < n; i++)
        if (offs[i + 1] <= offs[i] || bytes[offs[i + 1] - 1] != '\0') {
            rc = reel_diag_fail(d, REEL_ECORRUPT, "%s: id %u malformed", path,
                                i);
            goto fail;
        }
    char *src = reel_xstrndup(ss->data, (size_t)ss->length);
    reel_vectors *v;
    reel_vectors_new(ds ? reel_dataset_videos(ds)->n : n, dim, src, &v);
    free(src);
    v->unit_norm = p[3] == 1;
    v->prior = p[4] == 1;
    const uint8_t *has = sh->data;
    const float *data = sd->data;
    for (uint32_t i = 0; i < n; i++) {
        if (!has[i])
            continue;
        const char *id = bytes + offs[i];
        uint32_t at = !ds ? i
                          : reel_dataset_find_video(
                                ds, id, (size_t)(offs[i + 1] - offs[i] - 1));
        if (at == REEL_NONE)
            continue;
        memcpy(reel_vectors_row(v, at), data + (uint64_t)i * dim,
               dim * sizeof(float));
        v->has[at] = 1;
    }
    reel_secfile_close(f);
    *out = v;
    return 0;
fail:
    reel_secfile_close(f);
    return rc;
}

uint32_t reel_vectors_query(const reel_vectors *v, const uint32_t *items,
                            uint32_t n, uint32_t last_n, float *q)
{
    return reel_vectors_query_decay(v, items, n, last_n, 1.0f, q);
}

uint32_t reel_vectors_query_decay(const reel_vectors *v, const uint32_t *items,
                                  uint32_t n, uint32_t last_n, float decay,
                                  float *q)
{
    assert(decay > 0 && decay <= 1);
    uint32_t dim = v->dim, used = 0;
    /* With decay 1 every weight is exactly 1 and their sum exactly `used`,
     * so the floats are those of the plain mean. */
    float w = 1, wsum = 0;
    memset(q, 0, dim * sizeof *q);
    for (uint32_t h = n; h > 0 && used < last_n; h--) {
        uint32_t it = items[h - 1];
        if (it >= v->n || !v->has[it])
            continue;
        const float *r = reel_vectors_row(v, it);
        for (uint32_t j = 0; j < dim; j++)
            q[j] += w * r[j];
        wsum += w;
        w *= decay;
        used++;
    }
    if (!used)
        return used;
    if (!v->prior) {
        for (uint32_t j = 0; j < dim; j++)
            q[j] /= wsum;
        return used;
    }
    double n2 = 0;
    for (uint32_t j = 0; j + 1 < dim; j++)
        n2 += (double)q[j] * q[j];
    float inv = n2 > 0 ? (float)(1.0 / sqrt(n2)) : 0;
    for (uint32_t j = 0; j + 1 < dim; j++)
        q[j] *= inv;
    q[dim - 1] = 1;
    return used;
}

void reel_vectors_concat(const reel_vectors *a, const reel_vectors *b,
                         reel_vectors **out)
{
    size_t len = strlen(a->source) + strlen(b->source) + 32;
    char *src = reel_xmalloc(len);
    snprintf(src, len, "{\"concat\":[%s,%s]}", a->source, b->source);
    reel_vectors *v;
    reel_vectors_new(a->n, a->dim + b->dim, src, &v);
    free(src);
    for (uint32_t i = 0; i < a->n && i < b->n; i++) {
        if (!a->has[i] || !b->has[i])
            continue;
        memcpy(reel_vectors_row(v, i), reel_vectors_row(a, i),
               a->dim * sizeof(float));
        memcpy(reel_vectors_row(v, i) + a->dim, reel_vectors_row(b, i),
               b->dim * sizeof(float));
        v->has[i] = 1;
    }
    *out = v;
}
