/* Saving and opening indexes (docs/formats/index.md). */
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "index/index_impl.h"

enum {
    P_VERSION,
    P_KIND,
    P_METRIC,
    P_STORAGE,
    P_DIM,
    P_M,
    P_M0,
    P_EFC,
    P_SEED,
    P_ID_LIMIT,
    P_ENTRY,
    P_REC_SIZE,
    P_CODE_OFF,
    P_UPPER_USED,
    P_RESCORE,
    P__COUNT = 16
};

#define FORMAT_VERSION 1

static int put_chunked(reel_secfile_writer *w, const char *name,
                       enum reel_sectype type, unsigned char *const *chunks,
                       size_t chunk_bytes, uint64_t total_bytes)
{
    int rc = reel_secfile_writer_begin(w, name, type);
    unsigned char *zeros = NULL;
    for (uint64_t off = 0, c = 0; off < total_bytes && !rc; c++) {
        uint64_t n =
            total_bytes - off < chunk_bytes ? total_bytes - off : chunk_bytes;
        const unsigned char *p = chunks[c];
        if (!p) {
            if (!zeros)
                zeros = reel_xcalloc(1, chunk_bytes);
            p = zeros;
        }
        rc = reel_secfile_writer_append(w, p, n);
        off += n;
    }
    free(zeros);
    return rc ? rc : reel_secfile_writer_end(w);
}

int reel_index_save(const reel_index *ix, const char *path, reel_diag *d)
{
    uint64_t lim = atomic_load(&ix->id_limit);
    uint64_t p[P__COUNT] = {0};
    p[P_VERSION] = FORMAT_VERSION;
    p[P_KIND] = ix->o.kind;
    p[P_METRIC] = ix->o.metric;
    p[P_STORAGE] = ix->o.storage;
    p[P_DIM] = ix->o.dim;
    p[P_M] = ix->m;
    p[P_M0] = ix->m0;
    p[P_EFC] = ix->o.ef_construction;
    p[P_SEED] = ix->o.seed;
    p[P_ID_LIMIT] = lim;
    p[P_ENTRY] = atomic_load(&ix->entry);
    p[P_REC_SIZE] = ix->rec_size;
    p[P_CODE_OFF] = ix->code_off;
    p[P_UPPER_USED] = ix->upper_used;
    p[P_RESCORE] = ix->o.rescore;
    reel_secfile_writer *w;
    int rc = reel_secfile_writer_open(path, "index", &w, d);
    if (rc)
        return rc;
    if ((rc = reel_secfile_writer_add(w, "index.params", REEL_SEC_U64, p,
                                      P__COUNT)) ||
        (rc =
             put_chunked(w, "index.records", REEL_SEC_BYTES,
                         (unsigned char *const *)ix->chunks,
                         (size_t)CHUNK_N * ix->rec_size, lim * ix->rec_size)) ||
        (rc = put_chunked(w, "index.upper", REEL_SEC_U32,
                          (unsigned char *const *)ix->upper,
                          (size_t)UPPER_N * 4, ix->upper_used * 4)) ||
        (ix->o.storage != REEL_VEC_F32 &&
         (rc = put_chunked(w, "index.f32", REEL_SEC_F32,
                           (unsigned char *const *)ix->f32_chunks,
                           (size_t)CHUNK_N * ix->o.dim * 4,
                           lim * ix->o.dim * 4)))) {
        reel_secfile_writer_free(w);
        return reel_diag_fail(d, rc, "cannot write %s: %s", path,
                              reel_strerror(rc));
    }
    return reel_secfile_writer_commit(w, d);
}

/* Points chunk slots into a mapped section; the last, partial chunk is
 * copied into a full-size allocation so online adds can fill it. */
static void map_chunks(reel_index *ix, _Atomic(unsigned char *) *slots,
                       uint8_t *owned, unsigned char *base, uint64_t total,
                       size_t chunk_bytes)
{
    for (uint64_t off = 0, c = 0; off < total; off += chunk_bytes, c++) {
        if (total - off >= chunk_bytes) {
            atomic_store(&slots[c], base + off);
            continue;
        }
        unsigned char *p = reel_xcalloc(1, chunk_bytes);
        memcpy(p, base + off, total - off);
        atomic_store(&slots[c], p);
        owned[c] = 1;
        atomic_fetch_add(&ix->mem, chunk_bytes);
    }
}

static int bad(reel_diag *d, const char *path, const char *what, uint64_t where)
{
    return reel_diag_fail(d, REEL_ECORRUPT, "%s: invalid index: %s (at %llu)",
                          path, what, (unsigned long long)where);
}

/* Checks every record and link so that no search can leave the arrays. */
static int validate(reel_index *ix, const char *path, reel_diag *d)
{
    uint64_t lim = atomic_load(&ix->id_limit), live = 0, deleted = 0;
    for (uint64_t id = 0; id < lim; id++) {
        unsigned char *r = rec_at(ix, (uint32_t)id);
        struct node_head *h = head_of(r);
        uint8_t fl = atomic_load(&h->flags);
        if (fl & ~(FLAG_LIVE | FLAG_DELETED) || fl == FLAG_DELETED)
            return bad(d, path, "record flags", id);
        if (!(fl & FLAG_LIVE))
            continue;
        live += !(fl & FLAG_DELETED);
        deleted += !!(fl & FLAG_DELETED);
        if (h->level > MAX_LEVEL || (ix->o.kind == REEL_INDEX_FLAT && h->level))
            return bad(d, path, "record level", id);
        if (h->level) {
            uint64_t need = (uint64_t)h->level * (ix->m + 1);
            if (h->upper + need > ix->upper_used ||
                (h->upper & (UPPER_N - 1)) + need > UPPER_N)
                return bad(d, path, "upper links out of bounds", id);
        }
        for (int l = 0; l <= h->level; l++) {
            struct linkref lr = links_at(ix, r, l);
            uint32_t n = atomic_load(lr.count);
            if (n > lr.cap)
                return bad(d, path, "link count", id);
            for (uint32_t j = 0; j < n; j++) {
                uint32_t t = atomic_load(&lr.links[j]);
                if (t >= lim)
                    return bad(d, path, "link out of range", id);
                if (l > 0) {
                    /* Checked after all levels are known valid below:
                     * here only the target's level byte is read. */
                    struct node_head *th = head_of(rec_at(ix, t));
                    if (!(atomic_load(&th->flags) & FLAG_LIVE) || th->level < l)
                        return bad(d, path, "upper link to a lower node", id);
                }
            }
        }
    }
    uint64_t e = atomic_load(&ix->entry);
    if (e != NO_ENTRY) {
        uint32_t id = (uint32_t)e;
        int level = (int)(e >> 32);
        if (id >= lim || !is_live(rec_at(ix, id)) ||
            head_of(rec_at(ix, id))->level != level)
            return bad(d, path, "entry point", id);
    } else if (live && ix->o.kind == REEL_INDEX_HNSW) {
        return bad(d, path, "live items but no entry point", 0);
    }
    atomic_store(&ix->n_live, live);
    atomic_store(&ix->n_deleted, deleted);
    return 0;
}

int reel_index_open(const char *path, reel_index **out, reel_diag *d)
{
    *out = NULL;
    reel_secfile *f;
    int rc = reel_secfile_open(path, "index", REEL_SECFILE_WRITABLE, &f, d);
    if (rc)
        return rc;
    const reel_section *sp, *sr, *su, *sf = NULL;
    if ((rc = reel_secfile_need(f, "index.params", REEL_SEC_U64, P__COUNT, &sp,
                                d)) ||
        (rc = reel_secfile_need(f, "index.records", REEL_SEC_BYTES, UINT64_MAX,
                                &sr, d)) ||
        (rc = reel_secfile_need(f, "index.upper", REEL_SEC_U32, UINT64_MAX, &su,
                                d))) {
        reel_secfile_close(f);
        return rc;
    }
    const uint64_t *p = sp->data;
    reel_index_opts o = {
        .kind = (enum reel_index_kind)p[P_KIND],
        .metric = (enum reel_metric)p[P_METRIC],
        .dim = (uint32_t)p[P_DIM],
        .m = (uint32_t)p[P_M],
        .ef_construction = (uint32_t)p[P_EFC],
        .seed = p[P_SEED],
        .storage = (enum reel_vec_storage)p[P_STORAGE],
        .rescore = (uint32_t)p[P_RESCORE],
    };
    if (p[P_VERSION] != FORMAT_VERSION) {
        reel_secfile_close(f);
        return reel_diag_fail(d, REEL_EVERSION,
                              "%s: index format %llu, this reel reads %d", path,
                              (unsigned long long)p[P_VERSION], FORMAT_VERSION);
    }
    if (p[P_KIND] > 1 || p[P_METRIC] > 2 || p[P_STORAGE] > 2 || p[P_DIM] < 1 ||
        p[P_DIM] > REEL_INDEX_MAX_DIM || p[P_M] > 128 || p[P_EFC] > 65536 ||
        p[P_ID_LIMIT] >= UINT32_MAX || p[P_RESCORE] > UINT32_MAX ||
        (p[P_KIND] == 1 && p[P_M] < 2) || (p[P_KIND] == 0 && p[P_M] != 0)) {
        reel_secfile_close(f);
        return reel_diag_fail(d, REEL_ECORRUPT, "%s: invalid index parameters",
                              path);
    }
    reel_index *ix;
    if ((rc = reel_index_new(&o, &ix, d))) {
        reel_secfile_close(f);
        return rc;
    }
    ix->file = f;
    uint64_t lim = p[P_ID_LIMIT];
    if (ix->m != p[P_M] || ix->m0 != p[P_M0] || ix->rec_size != p[P_REC_SIZE] ||
        ix->code_off != p[P_CODE_OFF] || sr->length != lim * ix->rec_size ||
        su->count != p[P_UPPER_USED] ||
        (uint64_t)MAX_UPPER * UPPER_N < p[P_UPPER_USED]) {
        reel_index_free(ix);
        return reel_diag_fail(d, REEL_ECORRUPT,
                              "%s: index sections do not match its "
                              "parameters",
                              path);
    }
    if (o.storage != REEL_VEC_F32 &&
        (rc = reel_secfile_need(f, "index.f32", REEL_SEC_F32, lim * o.dim, &sf,
                                d))) {
        reel_index_free(ix);
        return rc;
    }
    map_chunks(ix, ix->chunks, ix->chunk_owned, reel_secfile_mutable(f, sr),
               sr->length, (size_t)CHUNK_N * ix->rec_size);
    map_chunks(ix, (_Atomic(unsigned char *) *)ix->upper, ix->upper_owned,
               reel_secfile_mutable(f, su), su->length, (size_t)UPPER_N * 4);
    if (sf)
        map_chunks(ix, (_Atomic(unsigned char *) *)ix->f32_chunks,
                   ix->f32_owned, reel_secfile_mutable(f, sf), sf->length,
                   (size_t)CHUNK_N * o.dim * 4);
    ix->upper_used = p[P_UPPER_USED];
    atomic_store(&ix->id_limit, lim);
    atomic_store(&ix->entry, p[P_ENTRY]);
    atomic_fetch_add(&ix->mem, reel_secfile_size(f));
    if ((rc = validate(ix, path, d))) {
        reel_index_free(ix);
        return rc;
    }
    *out = ix;
    return 0;
}
