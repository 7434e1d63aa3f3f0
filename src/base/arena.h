/*
 * arena: a bump allocator for memory that dies together (one request, one
 * parsed record, one import batch).
 *
 * Allocations are never freed one by one; reel_arena_reset() keeps the
 * first block for reuse and drops the others; reel_arena_free() releases
 * everything. Allocation aborts on out-of-memory like reel_xmalloc.
 * Thread rules: one thread per arena.
 */
#ifndef REEL_BASE_ARENA_H
#define REEL_BASE_ARENA_H

#include <stddef.h>

typedef struct reel_arena_block reel_arena_block;

typedef struct reel_arena {
    reel_arena_block *head;
    size_t block_size;
} reel_arena;

/* Fills an empty arena whose blocks are at least block_size bytes. */
void reel_arena_init(reel_arena *a, size_t block_size);
void reel_arena_reset(reel_arena *a);
void reel_arena_free(reel_arena *a);

/* `align` must be a power of two no larger than 64. */
void *reel_arena_alloc(reel_arena *a, size_t size, size_t align);
char *reel_arena_strndup(reel_arena *a, const char *s, size_t len);

#endif
