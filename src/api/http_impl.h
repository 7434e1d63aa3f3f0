/*
 * http_impl: what http_parse.c shares with http.c; not part of the API.
 */
#ifndef REEL_API_HTTP_IMPL_H
#define REEL_API_HTTP_IMPL_H

#include <stddef.h>

#include "api/http.h"

/* Percent-decodes s[0..len) into a NUL-terminated copy in the arena,
 * turning '+' into ' ' when `plus` is set (query strings). Returns 0, or
 * REEL_EFORMAT for a '%' not followed by two hex digits or a %00. */
int reel__http_decode(reel_arena *a, const char *s, size_t len, int plus,
                      const char **out);

/* 1 when c may appear in a token (RFC 9110, 5.6.2: method, header name). */
int reel__http_is_tchar(unsigned char c);

#endif
