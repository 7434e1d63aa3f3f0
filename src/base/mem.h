/*
 * mem: allocation that never returns NULL, and array growth.
 *
 * Internal allocation failure is not an error reel can recover from, so
 * these abort with a message (STYLE: "Internal allocation failure aborts").
 * Sizes that an outsider controls must be bounded before they reach here.
 * Thread rules: none; reentrant.
 */
#ifndef REEL_BASE_MEM_H
#define REEL_BASE_MEM_H

#include <stddef.h>

void *reel_xmalloc(size_t size);
void *reel_xcalloc(size_t n, size_t size);
void *reel_xrealloc(void *p, size_t size);
char *reel_xstrndup(const char *s, size_t len);

/*
 * Makes room for `need` elements of `elem` bytes in *p (capacity *cap,
 * in elements), growing geometrically. Aborts on overflow.
 */
void reel_grow(void **p, size_t *cap, size_t need, size_t elem);

#define REEL_GROW(ptr, cap, need)                                              \
    reel_grow((void **)&(ptr), &(cap), (need), sizeof *(ptr))

#endif
