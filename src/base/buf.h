/*
 * buf: a growable byte buffer, always NUL-terminated after `len` bytes.
 *
 * The buffer owns `data`; reel_buf_free() releases it and leaves an empty
 * buffer that may be reused. Thread rules: one thread per buffer.
 */
#ifndef REEL_BASE_BUF_H
#define REEL_BASE_BUF_H

#include <stddef.h>

typedef struct reel_buf {
    char *data;
    size_t len;
    size_t cap;
} reel_buf;

#define REEL_BUF_INIT                                                          \
    {                                                                          \
        NULL, 0, 0                                                             \
    }

void reel_buf_init(reel_buf *b);
void reel_buf_free(reel_buf *b);
void reel_buf_reset(reel_buf *b);
void reel_buf_reserve(reel_buf *b, size_t extra);
void reel_buf_append(reel_buf *b, const void *p, size_t n);
void reel_buf_putc(reel_buf *b, char c);
void reel_buf_puts(reel_buf *b, const char *s);
void reel_buf_printf(reel_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends s[0..len) as a JSON string literal, quotes included: '"' and
 * '\\' escaped, control bytes and DEL as \u00XX, valid UTF-8 copied, any
 * other byte read as Latin-1 (\u00XX): the result is always valid JSON. */
void reel_buf_json_string(reel_buf *b, const char *s, size_t len);
/* The length of the valid UTF-8 sequence at p (at most n bytes; no
 * overlong forms, surrogates or code points above U+10FFFF), or 0. */
size_t reel_utf8_seq(const unsigned char *p, size_t n);

#endif
