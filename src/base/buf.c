#include "base/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

void reel_buf_init(reel_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void reel_buf_free(reel_buf *b)
{
    free(b->data);
    reel_buf_init(b);
}

void reel_buf_reset(reel_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void reel_buf_reserve(reel_buf *b, size_t extra)
{
    reel_grow((void **)&b->data, &b->cap, b->len + extra + 1, 1);
}

void reel_buf_append(reel_buf *b, const void *p, size_t n)
{
    reel_buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void reel_buf_putc(reel_buf *b, char c)
{
    reel_buf_append(b, &c, 1);
}

void reel_buf_puts(reel_buf *b, const char *s)
{
    reel_buf_append(b, s, strlen(s));
}

void reel_buf_printf(reel_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        reel_buf_append(b, small, (size_t)n);
        return;
    }
    reel_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void reel_buf_json_string(reel_buf *b, const char *s, size_t len)
{
    reel_buf_putc(b, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            reel_buf_putc(b, '\\');
            reel_buf_putc(b, (char)c);
        } else if (c < 0x20 || c == 0x7f) {
            reel_buf_printf(b, "\\u%04x", c);
        } else {
            reel_buf_putc(b, (char)c);
        }
    }
    reel_buf_putc(b, '"');
}
