#include "base/sort.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

#define BITS 16
#define BUCKETS (1u << BITS)

struct item {
    uint64_t key;
    uint32_t idx;
};

static void radix(struct item *a, struct item *tmp, uint32_t n, uint32_t *perm)
{
    uint32_t *count = reel_xmalloc(BUCKETS * sizeof *count);
    for (int shift = 0; shift < 64; shift += BITS) {
        memset(count, 0, BUCKETS * sizeof *count);
        for (uint32_t i = 0; i < n; i++)
            count[(a[i].key >> shift) & (BUCKETS - 1)]++;
        /* A digit shared by every key leaves the order as it is. */
        if (count[(a[0].key >> shift) & (BUCKETS - 1)] == n)
            continue;
        uint32_t sum = 0;
        for (uint32_t b = 0; b < BUCKETS; b++) {
            uint32_t c = count[b];
            count[b] = sum;
            sum += c;
        }
        for (uint32_t i = 0; i < n; i++)
            tmp[count[(a[i].key >> shift) & (BUCKETS - 1)]++] = a[i];
        struct item *t = a;
        a = tmp;
        tmp = t;
    }
    for (uint32_t i = 0; i < n; i++)
        perm[i] = a[i].idx;
    free(count);
}

void reel_sort_perm_u64(const uint64_t *keys, uint32_t n, uint32_t *perm)
{
    if (n == 0)
        return;
    struct item *a = reel_xmalloc((size_t)n * sizeof *a);
    struct item *tmp = reel_xmalloc((size_t)n * sizeof *tmp);
    for (uint32_t i = 0; i < n; i++) {
        a[i].key = keys[i];
        a[i].idx = i;
    }
    radix(a, tmp, n, perm);
    free(a);
    free(tmp);
}

void reel_sort_perm_f64(const double *keys, uint32_t n, uint32_t *perm)
{
    if (n == 0)
        return;
    struct item *a = reel_xmalloc((size_t)n * sizeof *a);
    struct item *tmp = reel_xmalloc((size_t)n * sizeof *tmp);
    for (uint32_t i = 0; i < n; i++) {
        a[i].key = isnan(keys[i]) ? UINT64_MAX : reel_sort_key_f64(keys[i]);
        a[i].idx = i;
    }
    radix(a, tmp, n, perm);
    free(a);
    free(tmp);
}

int reel_sort_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}
