#include "rank/rows.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"

void reel_rows_init(reel_rows *r, uint32_t n_features)
{
    assert(n_features > 0);
    memset(r, 0, sizeof *r);
    r->n_features = n_features;
}

void reel_rows_free(reel_rows *r)
{
    if (!r)
        return;
    free(r->x);
    free(r->y);
    free(r->group);
    free(r->time);
    memset(r, 0, sizeof *r);
}

static void reserve(reel_rows *r, size_t need)
{
    if (need <= r->cap)
        return;
    size_t cap = r->cap ? r->cap : 1024;
    while (cap < need)
        cap *= 2;
    r->x = reel_xrealloc(r->x, cap * r->n_features * sizeof *r->x);
    r->y = reel_xrealloc(r->y, cap * sizeof *r->y);
    r->group = reel_xrealloc(r->group, cap * sizeof *r->group);
    r->time = reel_xrealloc(r->time, cap * sizeof *r->time);
    r->cap = cap;
}

float *reel_rows_push(reel_rows *r, float y, uint32_t group, int64_t time)
{
    reserve(r, r->n + 1);
    size_t i = r->n++;
    r->y[i] = y;
    r->group[i] = group;
    r->time[i] = time;
    return r->x + i * r->n_features;
}

void reel_rows_append(reel_rows *dst, const reel_rows *src, size_t from,
                      size_t to)
{
    assert(dst->n_features == src->n_features && from <= to && to <= src->n);
    size_t k = to - from, d = src->n_features;
    reserve(dst, dst->n + k);
    memcpy(dst->x + dst->n * d, src->x + from * d, k * d * sizeof *src->x);
    memcpy(dst->y + dst->n, src->y + from, k * sizeof *src->y);
    memcpy(dst->group + dst->n, src->group + from, k * sizeof *src->group);
    memcpy(dst->time + dst->n, src->time + from, k * sizeof *src->time);
    dst->n += k;
}

int reel_rows_split_tail(const reel_rows *r, double valid_fraction,
                         reel_rows *train, reel_rows *valid)
{
    if (!(valid_fraction > 0 && valid_fraction < 1) || r->n < 2)
        return REEL_EINVAL;
    size_t cut = (size_t)((1.0 - valid_fraction) * (double)r->n);
    while (cut > 0 && cut < r->n && r->group[cut] == r->group[cut - 1])
        cut++;
    if (cut == 0 || cut >= r->n)
        return REEL_EINVAL;
    reel_rows_init(train, r->n_features);
    reel_rows_init(valid, r->n_features);
    reel_rows_append(train, r, 0, cut);
    reel_rows_append(valid, r, cut, r->n);
    return 0;
}

size_t reel_rows_positives(const reel_rows *r)
{
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++)
        k += r->y[i] > 0;
    return k;
}
