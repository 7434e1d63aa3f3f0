/*
 * strs: string columns and string interning.
 *
 * A reel_strs is a read-only view of n strings stored back to back, each
 * followed by a NUL, with offs[i] the start of string i and offs[n] the
 * total size. It is how strings are laid out on disk (docs/formats/) and in
 * memory, so a loaded file's strings are used in place.
 *
 * reel_intern owns a growing reel_strs plus a hash index, mapping each
 * distinct string to a dense id 0, 1, 2, ... in first-seen order.
 * reel_strindex is the same hash index over a borrowed view (a loaded
 * file), built once for lookups. Ids are uint32_t; REEL_NONE means absent.
 * Thread rules: an intern table is used by one thread at a time; a built
 * reel_strindex is read-only and may be shared.
 */
#ifndef REEL_BASE_STRS_H
#define REEL_BASE_STRS_H

#include <stddef.h>
#include <stdint.h>

#define REEL_NONE UINT32_MAX

typedef struct reel_strs {
    const uint64_t *offs;
    const char *bytes;
    uint32_t n;
} reel_strs;

/* String i (NUL-terminated); its length in *len when len is not NULL. */
static inline const char *reel_strs_get(const reel_strs *s, uint32_t i,
                                        size_t *len)
{
    if (len)
        *len = (size_t)(s->offs[i + 1] - s->offs[i] - 1);
    return s->bytes + s->offs[i];
}

uint64_t reel_hash_bytes(const void *p, size_t len);

/* Parses exactly n lowercase hex digits of s (n <= 16) into *out; 0, or
 * REEL_EFORMAT for anything else (file names that carry a number). */
int reel_parse_hex64(const char *s, size_t n, uint64_t *out);

typedef struct reel_strindex {
    uint32_t *slots; /* id + 1, 0 = empty */
    uint32_t mask;
} reel_strindex;

/* Indexes every string of `s` (borrowed; must outlive the index). When the
 * view holds duplicates, the first wins. */
void reel_strindex_build(reel_strindex *ix, const reel_strs *s);
uint32_t reel_strindex_find(const reel_strindex *ix, const reel_strs *s,
                            const char *str, size_t len);
void reel_strindex_free(reel_strindex *ix);

typedef struct reel_intern {
    char *bytes;
    size_t n_bytes, cap_bytes;
    uint64_t *offs;
    size_t cap_offs;
    uint32_t n;
    reel_strindex ix;
} reel_intern;

void reel_intern_init(reel_intern *in);
void reel_intern_free(reel_intern *in);
/* The id of str, adding it when new; *is_new (optional) tells which. */
uint32_t reel_intern_put(reel_intern *in, const char *str, size_t len,
                         int *is_new);
/* Appends without de-duplication (for columns such as titles). A table is
 * filled either by put or by push, never both. */
uint32_t reel_intern_push(reel_intern *in, const char *str, size_t len);
uint32_t reel_intern_find(const reel_intern *in, const char *str, size_t len);
/* A view of the current strings; invalidated by the next put or push. */
reel_strs reel_intern_view(const reel_intern *in);

#endif
