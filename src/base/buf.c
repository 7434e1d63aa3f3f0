#include "base/buf.h"

#include <stdarg.h>
#include <stdint.h>
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

size_t reel_utf8_seq(const unsigned char *p, size_t n)
{
    if (p[0] < 0x80)
        return 1;
    size_t k;
    uint32_t cp, min;
    if (p[0] >= 0xC2 && p[0] <= 0xDF) {
        k = 2;
        cp = p[0] & 0x1F;
        min = 0x80;
    } else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
        k = 3;
        cp = p[0] & 0x0F;
        min = 0x800;
    } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
        k = 4;
        cp = p[0] & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < k)
        return 0;
    for (size_t i = 1; i < k; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return k;
}

void reel_buf_json_string(reel_buf *b, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    reel_buf_putc(b, '"');
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        size_t k;
        if (c == '"' || c == '\\') {
            reel_buf_putc(b, '\\');
            reel_buf_putc(b, (char)c);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            reel_buf_printf(b, "\\u%04x", c);
            i++;
        } else if ((k = reel_utf8_seq(p + i, len - i))) {
            reel_buf_append(b, p + i, k);
            i += k;
        } else {
            reel_buf_printf(b, "\\u%04x", c); /* not UTF-8: Latin-1 */
            i++;
        }
    }
    reel_buf_putc(b, '"');
}
