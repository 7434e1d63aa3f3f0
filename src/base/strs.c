#include "base/strs.h"

#include "base/err.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

uint64_t reel_hash_bytes(const void *p, size_t len)
{
    /* FNV-1a with a final avalanche: ids are short, this is fast enough
     * and has no alignment or endianness concerns. */
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static int same(const reel_strs *s, uint32_t id, const char *str, size_t len)
{
    size_t l;
    const char *p = reel_strs_get(s, id, &l);
    return l == len && memcmp(p, str, len) == 0;
}

static uint32_t find_slot(const reel_strindex *ix, const reel_strs *s,
                          const char *str, size_t len, int *found)
{
    uint32_t i = (uint32_t)reel_hash_bytes(str, len) & ix->mask;
    for (;;) {
        uint32_t v = ix->slots[i];
        if (v == 0) {
            *found = 0;
            return i;
        }
        if (same(s, v - 1, str, len)) {
            *found = 1;
            return i;
        }
        i = (i + 1) & ix->mask;
    }
}

static void index_alloc(reel_strindex *ix, uint32_t n)
{
    uint64_t size = 16;
    while (size < (uint64_t)n * 2)
        size *= 2;
    if (size > (1ULL << 32))
        abort(); /* ids are 32-bit; callers bound counts below that */
    ix->slots = reel_xcalloc(size, sizeof *ix->slots);
    ix->mask = (uint32_t)(size - 1);
}

void reel_strindex_build(reel_strindex *ix, const reel_strs *s)
{
    index_alloc(ix, s->n);
    for (uint32_t id = 0; id < s->n; id++) {
        size_t len;
        const char *p = reel_strs_get(s, id, &len);
        int found;
        uint32_t slot = find_slot(ix, s, p, len, &found);
        if (!found)
            ix->slots[slot] = id + 1;
    }
}

uint32_t reel_strindex_find(const reel_strindex *ix, const reel_strs *s,
                            const char *str, size_t len)
{
    if (!ix->slots)
        return REEL_NONE;
    int found;
    uint32_t slot = find_slot(ix, s, str, len, &found);
    return found ? ix->slots[slot] - 1 : REEL_NONE;
}

void reel_strindex_free(reel_strindex *ix)
{
    if (!ix)
        return;
    free(ix->slots);
    ix->slots = NULL;
    ix->mask = 0;
}

void reel_intern_init(reel_intern *in)
{
    memset(in, 0, sizeof *in);
    REEL_GROW(in->offs, in->cap_offs, 1);
    in->offs[0] = 0;
}

void reel_intern_free(reel_intern *in)
{
    if (!in)
        return;
    free(in->bytes);
    free(in->offs);
    reel_strindex_free(&in->ix);
    memset(in, 0, sizeof *in);
}

reel_strs reel_intern_view(const reel_intern *in)
{
    return (reel_strs){.offs = in->offs, .bytes = in->bytes, .n = in->n};
}

uint32_t reel_intern_push(reel_intern *in, const char *str, size_t len)
{
    if (in->n >= UINT32_MAX - 1)
        abort();
    reel_grow((void **)&in->bytes, &in->cap_bytes, in->n_bytes + len + 1, 1);
    memcpy(in->bytes + in->n_bytes, str, len);
    in->bytes[in->n_bytes + len] = '\0';
    in->n_bytes += len + 1;
    REEL_GROW(in->offs, in->cap_offs, (size_t)in->n + 2);
    in->offs[++in->n] = in->n_bytes;
    return in->n - 1;
}

static void rehash(reel_intern *in)
{
    reel_strindex_free(&in->ix);
    reel_strs v = reel_intern_view(in);
    reel_strindex_build(&in->ix, &v);
}

uint32_t reel_intern_put(reel_intern *in, const char *str, size_t len,
                         int *is_new)
{
    if (!in->ix.slots || (uint64_t)(in->n + 1) * 2 > (uint64_t)in->ix.mask + 1)
        rehash(in);
    reel_strs v = reel_intern_view(in);
    int found;
    uint32_t slot = find_slot(&in->ix, &v, str, len, &found);
    if (is_new)
        *is_new = !found;
    if (found)
        return in->ix.slots[slot] - 1;
    uint32_t id = reel_intern_push(in, str, len);
    in->ix.slots[slot] = id + 1;
    return id;
}

uint32_t reel_intern_find(const reel_intern *in, const char *str, size_t len)
{
    reel_strs v = reel_intern_view(in);
    return reel_strindex_find(&in->ix, &v, str, len);
}

int reel_parse_hex64(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 16)
        return REEL_EFORMAT;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        unsigned dgt;
        if (c >= '0' && c <= '9')
            dgt = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            dgt = (unsigned)(c - 'a' + 10);
        else
            return REEL_EFORMAT;
        v = v << 4 | dgt;
    }
    *out = v;
    return 0;
}
