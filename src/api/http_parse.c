/*
 * The request parser: a pure function over bytes (RFC 9112), the request
 * getters and the status tables. Nothing here touches a socket.
 */
#include "api/http_impl.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

enum {
    METHOD_MAX = 32,      /* longer methods are refused (400) */
    CHUNK_LINE_MAX = 1024 /* a chunk size line with its extensions */
};

int reel__http_is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
        (c >= 'A' && c <= 'Z'))
        return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Checks the escapes of s[0..len) without decoding. */
static int escapes_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%')
            continue;
        if (len - i < 3)
            return 0;
        int hi = hexval((unsigned char)s[i + 1]);
        int lo = hexval((unsigned char)s[i + 2]);
        if (hi < 0 || lo < 0 || (hi | lo) == 0)
            return 0;
        i += 2;
    }
    return 1;
}

int reel__http_decode(reel_arena *a, const char *s, size_t len, int plus,
                      const char **out)
{
    char *d = reel_arena_alloc(a, len + 1, 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (len - i < 3)
                return REEL_EFORMAT;
            int hi = hexval((unsigned char)s[i + 1]);
            int lo = hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0 || (hi | lo) == 0)
                return REEL_EFORMAT;
            d[n++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            d[n++] = plus && c == '+' ? ' ' : (char)c;
        }
    }
    d[n] = '\0';
    *out = d;
    return 0;
}

void reel_http_req_init(reel_http_req *req)
{
    memset(req, 0, sizeof *req);
    reel_arena_init(&req->arena_, 16384);
    req->arena = &req->arena_;
}

void reel_http_req_free(reel_http_req *req)
{
    if (!req)
        return;
    reel_arena_free(&req->arena_);
    req->arena = &req->arena_;
}

static void req_reset(reel_http_req *req)
{
    reel_arena_reset(&req->arena_);
    reel_arena a = req->arena_;
    memset(req, 0, sizeof *req);
    req->arena_ = a;
    req->arena = &req->arena_;
    req->method = req->target = req->path = req->query = "";
}

static int fail(reel_http_req *req, int status, const char *why)
{
    req->error_status = status;
    req->error = why;
    switch (status) {
    case 413:
    case 414:
    case 431:
        return REEL_ETOOBIG;
    case 501:
    case 505:
        return REEL_EUNSUPPORTED;
    }
    return REEL_EFORMAT;
}

static int is_blank(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* A field value byte: VCHAR, obs-text, SP or HTAB (RFC 9110, 5.5). */
static int is_vbyte(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* Case-insensitive comparison of s[0..len) with a lowercase literal. */
static int eq_ci(const char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && strncasecmp(s, lit, len) == 0;
}

/*
 * Finds the head: skips empty lines before the request line, then returns
 * 1 with [*start, *end) the request line to the final CRLF inclusive and
 * *n_lines the non-empty lines; 0 when more bytes are needed; or an error.
 */
static int scan_head(const char *buf, size_t len, size_t max,
                     reel_http_req *req, size_t *start, size_t *end,
                     uint32_t *n_lines)
{
    size_t pos = 0, limit = len < max ? len : max;
    uint32_t lines = 0;
    *start = 0;
    for (;;) {
        const char *nl = memchr(buf + pos, '\n', limit - pos);
        if (!nl) {
            if (len < max)
                return 0;
            return fail(req, lines ? 431 : 414,
                        lines ? "request headers too large"
                              : "request line too long");
        }
        size_t e = (size_t)(nl - buf);
        if (e == pos || buf[e - 1] != '\r')
            return fail(req, 400, "line not ended by CRLF");
        if (e - 1 == pos) {
            if (lines) {
                *end = e + 1;
                *n_lines = lines;
                return 1;
            }
            *start = e + 1; /* an empty line before the request line */
        } else {
            lines++;
        }
        pos = e + 1;
    }
}

static int parse_target(reel_http_req *req, const char *t, size_t n)
{
    const char *p = t;
    size_t pn = n;
    if (n >= 7 && (strncasecmp(t, "http://", 7) == 0 ||
                   (n >= 8 && strncasecmp(t, "https://", 8) == 0))) {
        /* absolute-form: the path starts after the authority. */
        const char *auth = memchr(t, ':', n) + 3;
        size_t rest = n - (size_t)(auth - t);
        size_t i = 0;
        while (i < rest && auth[i] != '/' && auth[i] != '?')
            i++;
        if (i == 0)
            return fail(req, 400, "absolute-form target without a host");
        p = auth + i;
        pn = rest - i;
        if (pn == 0 || *p == '?') {
            /* "http://h" or "http://h?q": the path is "/". */
            char *s = reel_arena_alloc(req->arena, pn + 2, 1);
            s[0] = '/';
            memcpy(s + 1, p, pn);
            s[pn + 1] = '\0';
            p = s;
            pn++;
        }
    } else if (!(n == 1 && t[0] == '*') && t[0] != '/') {
        return fail(req, 400, "request target must be a path");
    }
    if (memchr(p, '#', pn))
        return fail(req, 400, "fragment in request target");
    const char *q = memchr(p, '?', pn);
    size_t path_len = q ? (size_t)(q - p) : pn;
    if (!escapes_ok(p, path_len))
        return fail(req, 400, "bad percent-encoding in path");
    req->path = reel_arena_strndup(req->arena, p, path_len);
    req->query =
        q ? reel_arena_strndup(req->arena, q + 1, pn - path_len - 1) : "";
    return 0;
}

static int parse_request_line(reel_http_req *req, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && reel__http_is_tchar((unsigned char)s[i]))
        i++;
    if (i == 0 || i >= n || s[i] != ' ')
        return fail(req, 400, "malformed request line");
    if (i > METHOD_MAX)
        return fail(req, 400, "method too long");
    req->method = reel_arena_strndup(req->arena, s, i);
    size_t t0 = ++i;
    while (i < n && (unsigned char)s[i] > 0x20 && (unsigned char)s[i] < 0x7f)
        i++;
    if (i == t0 || i >= n || s[i] != ' ')
        return fail(req, 400, "malformed request line");
    size_t t1 = i++;
    const char *v = s + i;
    size_t vn = n - i;
    if (vn != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' ||
        v[6] != '.' || v[7] < '0' || v[7] > '9')
        return fail(req, 400, "malformed HTTP version");
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return fail(req, 505, "HTTP version not supported");
    req->minor = v[7] - '0';
    req->target = reel_arena_strndup(req->arena, s + t0, t1 - t0);
    return parse_target(req, s + t0, t1 - t0);
}

/* Splits a header line into name and trimmed value; 0 or an error. */
static int split_field(reel_http_req *req, const char *s, size_t n,
                       size_t *name_len, const char **val, size_t *val_len)
{
    if (is_blank((unsigned char)s[0]))
        return fail(req, 400, "obsolete line folding");
    size_t i = 0;
    while (i < n && reel__http_is_tchar((unsigned char)s[i]))
        i++;
    if (i == 0 || i >= n || s[i] != ':')
        return fail(req, 400, "malformed header field");
    *name_len = i++;
    while (i < n && is_blank((unsigned char)s[i]))
        i++;
    size_t e = n;
    while (e > i && is_blank((unsigned char)s[e - 1]))
        e--;
    for (size_t k = i; k < e; k++)
        if (!is_vbyte((unsigned char)s[k]))
            return fail(req, 400, "control character in header value");
    *val = s + i;
    *val_len = e - i;
    return 0;
}

/* Content-Length: 1*DIGIT, no sign, no list. */
static int parse_length(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 19)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Does the comma-separated list s[0..n) hold `tok` (case-insensitive)? */
static int list_has(const char *s, size_t n, const char *tok)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (is_blank((unsigned char)s[i]) || s[i] == ','))
            i++;
        size_t b = i;
        while (i < n && s[i] != ',')
            i++;
        size_t e = i;
        while (e > b && is_blank((unsigned char)s[e - 1]))
            e--;
        if (e > b && eq_ci(s + b, e - b, tok))
            return 1;
    }
    return 0;
}

typedef struct framing {
    int chunked, has_length, close;
    uint64_t length;
} framing;

static int parse_headers(reel_http_req *req, const char *buf, size_t pos,
                         size_t end, uint32_t n_fields,
                         const reel_http_limits *lim, framing *f)
{
    req->headers = reel_arena_alloc(
        req->arena, (n_fields ? n_fields : 1) * sizeof *req->headers,
        _Alignof(reel_http_kv));
    int n_host = 0, n_te = 0;
    while (pos < end - 2) {
        const char *s = buf + pos;
        const char *nl = memchr(s, '\n', end - pos);
        size_t n = (size_t)(nl - s) - 1;
        pos += n + 2;
        size_t name_len, val_len;
        const char *val;
        int r = split_field(req, s, n, &name_len, &val, &val_len);
        if (r < 0)
            return r;
        assert(req->n_headers < n_fields);
        reel_http_kv *kv = &req->headers[req->n_headers++];
        kv->name = reel_arena_strndup(req->arena, s, name_len);
        kv->value = reel_arena_strndup(req->arena, val, val_len);
        if (eq_ci(s, name_len, "content-length")) {
            uint64_t v;
            if (parse_length(val, val_len, &v) < 0)
                return fail(req, 400, "malformed Content-Length");
            if (f->has_length && v != f->length)
                return fail(req, 400, "conflicting Content-Length");
            f->has_length = 1;
            f->length = v;
        } else if (eq_ci(s, name_len, "transfer-encoding")) {
            if (n_te++ || !eq_ci(val, val_len, "chunked"))
                return fail(req, 501, "transfer coding not supported");
            f->chunked = 1;
        } else if (eq_ci(s, name_len, "connection")) {
            f->close |= list_has(val, val_len, "close");
        } else if (eq_ci(s, name_len, "host")) {
            n_host++;
        } else if (eq_ci(s, name_len, "expect")) {
            if (!eq_ci(val, val_len, "100-continue"))
                return fail(req, 417, "expectation not supported");
            req->expect_continue = 1;
        }
    }
    if (req->minor == 1 && n_host != 1)
        return fail(req, 400,
                    n_host ? "more than one Host header"
                           : "missing Host header");
    if (f->chunked && req->minor == 0)
        return fail(req, 400, "Transfer-Encoding in an HTTP/1.0 request");
    if (f->chunked && f->has_length)
        return fail(req, 400, "both Content-Length and Transfer-Encoding");
    if (f->has_length && f->length > lim->max_body_bytes)
        return fail(req, 413, "request body too large");
    return 0;
}

/*
 * Walks a chunked body starting at buf[pos]. Returns 1 with *end after the
 * trailers and *body_len the decoded size, copying the data to dst when it
 * is not NULL; 0 when more bytes are needed; or an error. Only size lines
 * are read until the body is complete, so a call costs O(chunks).
 */
static int scan_chunked(reel_http_req *req, const char *buf, size_t len,
                        size_t pos, const reel_http_limits *lim, char *dst,
                        size_t *body_len, size_t *end)
{
    size_t total = 0, framing_bytes = 0;
    size_t framing_max = lim->max_header_bytes + lim->max_body_bytes;
    for (;;) {
        size_t avail = len - pos;
        size_t look = avail < CHUNK_LINE_MAX ? avail : CHUNK_LINE_MAX;
        const char *nl = memchr(buf + pos, '\n', look);
        if (!nl) {
            if (avail >= CHUNK_LINE_MAX)
                return fail(req, 400, "chunk size line too long");
            return 0;
        }
        const char *s = buf + pos;
        size_t n = (size_t)(nl - s);
        if (n == 0 || s[n - 1] != '\r')
            return fail(req, 400, "line not ended by CRLF");
        n--;
        size_t i = 0;
        uint64_t size = 0;
        while (i < n && hexval((unsigned char)s[i]) >= 0) {
            if (size >> 60)
                return fail(req, 413, "request body too large");
            size = size << 4 | (uint64_t)hexval((unsigned char)s[i]);
            i++;
        }
        if (i == 0)
            return fail(req, 400, "malformed chunk size");
        while (i < n && is_blank((unsigned char)s[i]))
            i++;
        if (i < n && s[i] != ';')
            return fail(req, 400, "malformed chunk size");
        for (; i < n; i++)
            if (!is_vbyte((unsigned char)s[i]))
                return fail(req, 400, "control character in chunk extension");
        framing_bytes += n + 2;
        pos += n + 2;
        if (size > lim->max_body_bytes - total)
            return fail(req, 413, "request body too large");
        if (framing_bytes > framing_max)
            return fail(req, 413, "chunk framing too large");
        if (size == 0)
            break;
        if (len - pos < size + 2)
            return 0;
        if (buf[pos + size] != '\r' || buf[pos + size + 1] != '\n')
            return fail(req, 400, "chunk data not followed by CRLF");
        if (dst)
            memcpy(dst + total, buf + pos, size);
        total += size;
        pos += size + 2;
        framing_bytes += 2;
    }
    /* Trailer fields, checked like headers and dropped. */
    for (;;) {
        size_t avail = len - pos;
        size_t room = framing_max - framing_bytes;
        size_t look = avail < room ? avail : room;
        const char *nl = memchr(buf + pos, '\n', look);
        if (!nl) {
            if (avail >= room)
                return fail(req, 413, "chunk framing too large");
            return 0;
        }
        const char *s = buf + pos;
        size_t n = (size_t)(nl - s);
        if (n == 0 || s[n - 1] != '\r')
            return fail(req, 400, "line not ended by CRLF");
        n--;
        framing_bytes += n + 2;
        pos += n + 2;
        if (n == 0)
            break;
        size_t name_len, val_len;
        const char *val;
        int r = split_field(req, s, n, &name_len, &val, &val_len);
        if (r < 0)
            return r;
    }
    *body_len = total;
    *end = pos;
    return 1;
}

static int parse_args(reel_http_req *req)
{
    const char *q = req->query;
    size_t n = strlen(q);
    if (n == 0)
        return 0;
    uint32_t cap = 1;
    for (size_t i = 0; i < n; i++)
        cap += q[i] == '&';
    req->args = reel_arena_alloc(req->arena, cap * sizeof *req->args,
                                 _Alignof(reel_http_kv));
    size_t i = 0;
    while (i <= n) {
        size_t b = i;
        while (i < n && q[i] != '&')
            i++;
        if (i > b) {
            const char *eq = memchr(q + b, '=', i - b);
            size_t kn = eq ? (size_t)(eq - (q + b)) : i - b;
            reel_http_kv *kv = &req->args[req->n_args++];
            if (reel__http_decode(req->arena, q + b, kn, 1, &kv->name) < 0)
                return fail(req, 400, "bad percent-encoding in query");
            if (!eq)
                kv->value = "";
            else if (reel__http_decode(req->arena, eq + 1, i - b - kn - 1, 1,
                                       &kv->value) < 0)
                return fail(req, 400, "bad percent-encoding in query");
        }
        i++;
    }
    return 0;
}

int reel_http_parse(const char *buf, size_t len, const reel_http_limits *lim,
                    reel_http_req *req, size_t *n_used)
{
    assert(lim && req && n_used && (buf || len == 0));
    req_reset(req);
    *n_used = 0;
    if (len == 0)
        return 0;
    size_t start, end;
    uint32_t n_lines;
    int r =
        scan_head(buf, len, lim->max_header_bytes, req, &start, &end, &n_lines);
    if (r <= 0)
        return r;
    const char *line = buf + start;
    size_t line_len =
        (size_t)((const char *)memchr(line, '\n', end - start) - line) - 1;
    r = parse_request_line(req, line, line_len);
    if (r < 0)
        return r;
    framing f = {0};
    r = parse_headers(req, buf, start + line_len + 2, end, n_lines - 1, lim,
                      &f);
    if (r < 0)
        return r;
    req->keep_alive = req->minor == 1 && !f.close;
    req->head_len = end;
    size_t total;
    if (f.chunked) {
        size_t body_len, body_end;
        r = scan_chunked(req, buf, len, end, lim, NULL, &body_len, &body_end);
        if (r <= 0)
            return r;
        char *body = reel_arena_alloc(req->arena, body_len ? body_len : 1, 1);
        scan_chunked(req, buf, len, end, lim, body, &body_len, &body_end);
        req->body = body;
        req->body_len = body_len;
        total = body_end;
    } else {
        size_t body_len = (size_t)f.length; /* bounded by the limit above */
        if (len - end < body_len) {
            req->need_len = end + body_len;
            return 0;
        }
        req->body = buf + end;
        req->body_len = body_len;
        total = end + body_len;
    }
    r = parse_args(req);
    if (r < 0)
        return r;
    req->need_len = 0;
    *n_used = total;
    return 0;
}

const char *reel_http_req_header(const reel_http_req *req, const char *name)
{
    for (uint32_t i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

const char *reel_http_req_arg(const reel_http_req *req, const char *name)
{
    for (uint32_t i = 0; i < req->n_args; i++)
        if (strcmp(req->args[i].name, name) == 0)
            return req->args[i].value;
    return NULL;
}

const char *reel_http_req_param(const reel_http_req *req, const char *name)
{
    for (uint32_t i = 0; i < req->n_params; i++)
        if (strcmp(req->params[i].name, name) == 0)
            return req->params[i].value;
    return NULL;
}

const char *reel_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    }
    return "Unknown";
}

int reel_http_status_of(int err)
{
    switch (err) {
    case REEL_OK:
        return 200;
    case REEL_EFORMAT:
    case REEL_EINVAL:
    case REEL_ERANGE:
        return 400;
    case REEL_ENOENT:
        return 404;
    case REEL_EEXISTS:
        return 409;
    case REEL_ETOOBIG:
        return 413;
    case REEL_EUNSUPPORTED:
        return 501;
    case REEL_EBUSY:
    case REEL_EUNAVAILABLE:
        return 503;
    case REEL_ETIMEOUT:
        return 504;
    }
    return 500;
}
