#include "base/arena.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct reel_arena_block {
    reel_arena_block *next;
    size_t size;
    size_t used;
    _Alignas(64) unsigned char data[];
};

void reel_arena_init(reel_arena *a, size_t block_size)
{
    a->head = NULL;
    a->block_size = block_size < 1024 ? 1024 : block_size;
}

void reel_arena_reset(reel_arena *a)
{
    reel_arena_block *b = a->head;
    if (!b)
        return;
    /* Keep the oldest block (the tail): it is the one sized by default. */
    while (b->next) {
        reel_arena_block *next = b->next;
        free(b);
        b = next;
    }
    b->used = 0;
    a->head = b;
}

void reel_arena_free(reel_arena *a)
{
    reel_arena_block *b = a->head;
    while (b) {
        reel_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}

void *reel_arena_alloc(reel_arena *a, size_t size, size_t align)
{
    assert(align && (align & (align - 1)) == 0 && align <= 64);
    reel_arena_block *b = a->head;
    if (b) {
        size_t off = (b->used + align - 1) & ~(align - 1);
        if (off <= b->size && size <= b->size - off) {
            b->used = off + size;
            return b->data + off;
        }
    }
    size_t bsize = size > a->block_size ? size : a->block_size;
    if (bsize > SIZE_MAX - sizeof *b)
        abort();
    reel_arena_block *nb =
        aligned_alloc(64, (sizeof *nb + bsize + 63) & ~(size_t)63);
    if (!nb) {
        fprintf(stderr, "reel: out of memory allocating %zu bytes\n", bsize);
        abort();
    }
    nb->size = bsize;
    nb->used = size;
    /* A big one-off allocation goes behind the current block so the
     * current block keeps serving small requests. */
    if (b && size > a->block_size) {
        nb->next = b->next;
        b->next = nb;
    } else {
        nb->next = b;
        a->head = nb;
    }
    return nb->data;
}

char *reel_arena_strndup(reel_arena *a, const char *s, size_t len)
{
    char *p = reel_arena_alloc(a, len + 1, 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}
