/* Unit tests of src/api/http: the parser over bytes (valid requests,
 * prefixes, chunked bodies, pipelining, limits, malformed input, percent
 * decoding, HTTP/1.0), and a real server on 127.0.0.1 with an ephemeral
 * port and two loops, driven by a small blocking client: routes, path
 * parameters, 404/405/413/400/431/408/401, keep-alive, pipelining,
 * deferred responses, concurrent clients, metrics and graceful stop. */
#include "testutil.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/http.h"

/* ---- the parser ------------------------------------------------------- */

static const reel_http_limits LIM = {.max_header_bytes = 16384,
                                     .max_body_bytes = 1 << 20};

static int parse(const char *s, size_t len, const reel_http_limits *lim,
                 reel_http_req *req, size_t *used)
{
    return reel_http_parse(s, len, lim, req, used);
}

static int parse_str(const char *s, reel_http_req *req, size_t *used)
{
    return parse(s, strlen(s), &LIM, req, used);
}

/* Every proper prefix of s needs more bytes; s itself is one request. */
static void check_prefixes(const char *s, reel_http_req *req)
{
    size_t n = strlen(s), used;
    for (size_t i = 0; i < n; i++) {
        /* A tight copy, so that ASan sees reads past the prefix. */
        char *p = malloc(i ? i : 1);
        memcpy(p, s, i);
        assert_int_equal(parse(p, i, &LIM, req, &used), 0);
        assert_int_equal(used, 0);
        free(p);
    }
    assert_int_equal(parse(s, n, &LIM, req, &used), 0);
    assert_int_equal(used, n);
}

static void parser_reads_a_get_with_query_and_headers(void **state)
{
    (void)state;
    reel_http_req req;
    reel_http_req_init(&req);
    const char *s = "GET /v1/users/u%2F1/recs?k=10&q=a+b%21&flag&=x&&e= "
                    "HTTP/1.1\r\nHost: example\r\nX-Trace:   abc \t\r\n"
                    "ACCEPT: */*\r\n\r\n";
    size_t used;
    assert_int_equal(parse_str(s, &req, &used), 0);
    assert_int_equal(used, strlen(s));
    assert_string_equal(req.method, "GET");
    assert_string_equal(req.target, "/v1/users/u%2F1/recs?k=10&q=a+b%21&flag&"
                                    "=x&&e=");
    assert_string_equal(req.path, "/v1/users/u%2F1/recs");
    assert_string_equal(req.query, "k=10&q=a+b%21&flag&=x&&e=");
    assert_int_equal(req.minor, 1);
    assert_int_equal(req.keep_alive, 1);
    assert_int_equal(req.n_args, 5);
    assert_string_equal(reel_http_req_arg(&req, "k"), "10");
    assert_string_equal(reel_http_req_arg(&req, "q"), "a b!");
    assert_string_equal(reel_http_req_arg(&req, "flag"), "");
    assert_string_equal(reel_http_req_arg(&req, ""), "x");
    assert_string_equal(reel_http_req_arg(&req, "e"), "");
    assert_null(reel_http_req_arg(&req, "K"));
    assert_int_equal(req.n_headers, 3);
    assert_string_equal(reel_http_req_header(&req, "accept"), "*/*");
    assert_string_equal(reel_http_req_header(&req, "x-trace"), "abc");
    assert_string_equal(reel_http_req_header(&req, "HOST"), "example");
    assert_null(reel_http_req_header(&req, "cookie"));
    assert_int_equal(req.body_len, 0);
    check_prefixes(s, &req);

    /* absolute-form targets are reduced to their path. */
    assert_int_equal(parse_str("GET http://h:80/p?q=1 HTTP/1.1\r\nHost: h\r\n"
                               "\r\n",
                               &req, &used),
                     0);
    assert_string_equal(req.path, "/p");
    assert_string_equal(req.query, "q=1");
    assert_int_equal(
        parse_str("GET HTTP://h?z HTTP/1.1\r\nHost: h\r\n\r\n", &req, &used),
        0);
    assert_string_equal(req.path, "/");
    assert_string_equal(req.query, "z");
    reel_http_req_free(&req);
}

static void parser_needs_more_until_the_body_is_whole(void **state)
{
    (void)state;
    reel_http_req req;
    reel_http_req_init(&req);
    const char *s = "POST /v1/events HTTP/1.1\r\nHost: a\r\n"
                    "Content-Type: application/json\r\n"
                    "Content-Length: 11\r\n\r\n{\"a\": 1.5}\n";
    check_prefixes(s, &req);
    assert_int_equal(req.body_len, 11);
    assert_memory_equal(req.body, "{\"a\": 1.5}\n", 11);
    /* Once the head is in, the parser says how long the request is. */
    size_t used, head = strstr(s, "\r\n\r\n") + 4 - s;
    assert_int_equal(parse(s, head + 3, &LIM, &req, &used), 0);
    assert_int_equal(used, 0);
    assert_int_equal(req.head_len, head);
    assert_int_equal(req.need_len, strlen(s));
    /* Expect: 100-continue is visible before the body arrives. */
    const char *e = "PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n"
                    "Content-Length: 4\r\n\r\n";
    assert_int_equal(parse_str(e, &req, &used), 0);
    assert_int_equal(used, 0);
    assert_true(req.head_len > 0);
    assert_int_equal(req.expect_continue, 1);
    reel_http_req_free(&req);
}

static void parser_decodes_chunked_bodies(void **state)
{
    (void)state;
    reel_http_req req;
    reel_http_req_init(&req);
    const char *s = "POST /e HTTP/1.1\r\nHost: a\r\n"
                    "Transfer-Encoding: Chunked\r\n\r\n"
                    "5;name=\"v\"\r\nhello\r\nA \r\n world!!!!\r\n"
                    "0\r\nX-Checksum: 12\r\n\r\n";
    check_prefixes(s, &req);
    assert_int_equal(req.body_len, 15);
    assert_memory_equal(req.body, "hello world!!!!", 15);
    /* No data at all. */
    size_t used;
    const char *empty = "POST /e HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
                        "chunked\r\n\r\n0\r\n\r\n";
    assert_int_equal(parse_str(empty, &req, &used), 0);
    assert_int_equal(used, strlen(empty));
    assert_int_equal(req.body_len, 0);
    reel_http_req_free(&req);
}

static void parser_splits_pipelined_requests(void **state)
{
    (void)state;
    reel_http_req req;
    reel_http_req_init(&req);
    const char *s = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
                    "POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n"
                    "xyz"
                    "\r\n" /* a stray CRLF after a body is skipped */
                    "GET /c HTTP/1.0\r\n\r\n"
                    "GET /d HT";
    const char *want[] = {"/a", "/b", "/c"};
    size_t off = 0, len = strlen(s);
    for (int i = 0; i < 3; i++) {
        size_t used;
        assert_int_equal(parse(s + off, len - off, &LIM, &req, &used), 0);
        assert_true(used > 0);
        assert_string_equal(req.path, want[i]);
        if (i == 1)
            assert_memory_equal(req.body, "xyz", 3);
        assert_int_equal(req.keep_alive, i < 2);
        off += used;
    }
    size_t used;
    assert_int_equal(parse(s + off, len - off, &LIM, &req, &used), 0);
    assert_int_equal(used, 0);
    reel_http_req_free(&req);
}

static char *repeat(const char *head, char c, size_t n, const char *tail)
{
    size_t hn = strlen(head), tn = strlen(tail);
    char *s = malloc(hn + n + tn + 1);
    memcpy(s, head, hn);
    memset(s + hn, c, n);
    memcpy(s + hn + n, tail, tn + 1);
    return s;
}

static void parser_bounds_heads_and_bodies(void **state)
{
    (void)state;
    reel_http_req req;
    reel_http_req_init(&req);
    const reel_http_limits small = {.max_header_bytes = 256,
                                    .max_body_bytes = 1000};
    size_t used;
    /* A header that does not fit: 431 as soon as 256 bytes are in. */
    char *big =
        repeat("GET / HTTP/1.1\r\nHost: a\r\nX: ", 'v', 300, "\r\n\r\n");
    assert_int_equal(parse(big, 255, &small, &req, &used), 0);
    assert_int_equal(used, 0);
    assert_int_equal(parse(big, 256, &small, &req, &used), REEL_ETOOBIG);
    assert_int_equal(req.error_status, 431);
    free(big);
    /* A request line that does not fit: 414. */
    char *line = repeat("GET /", 'p', 300, " HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_int_equal(parse(line, strlen(line), &small, &req, &used),
                     REEL_ETOOBIG);
    assert_int_equal(req.error_status, 414);
    free(line);
    /* A head of exactly the limit is fine. */
    const char *h0 = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
    char *exact = repeat(h0, 'v', 256 - strlen(h0) - 4, "\r\n\r\n");
    assert_int_equal(strlen(exact), 256);
    assert_int_equal(parse(exact, 256, &small, &req, &used), 0);
    assert_int_equal(used, 256);
    free(exact);
    /* A body announced above the limit: 413 before any of it arrives. */
    const char *cl =
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n";
    assert_int_equal(parse(cl, strlen(cl), &small, &req, &used), REEL_ETOOBIG);
    assert_int_equal(req.error_status, 413);
    const char *huge = "POST / HTTP/1.1\r\nHost: a\r\n"
                       "Content-Length: 99999999999999999999\r\n\r\n";
    assert_int_equal(parse(huge, strlen(huge), &small, &req, &used),
                     REEL_EFORMAT);
    /* Chunks adding up to more than the limit, and absurd chunk sizes. */
    const char *ch = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
                     "chunked\r\n\r\n3E8\r\n";
    char *ok = repeat(ch, 'x', 1000, "\r\n1\r\n");
    assert_int_equal(parse(ok, strlen(ok), &small, &req, &used), REEL_ETOOBIG);
    assert_int_equal(req.error_status, 413);
    free(ok);
    const char *chx = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
                      "chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\n";
    assert_int_equal(parse(chx, strlen(chx), &small, &req, &used),
                     REEL_ETOOBIG);
    /* Framing cannot grow without bound either: a long size line is
     * refused, and so are many small chunks with long extensions. */
    const char *te = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
                     "chunked\r\n\r\n";
    char *ext = repeat(te, ';', 2000, "");
    ext[strlen(te)] = '1';
    assert_int_equal(parse(ext, strlen(ext), &small, &req, &used),
                     REEL_EFORMAT);
    assert_string_equal(req.error, "chunk size line too long");
    free(ext);
    reel_buf many = REEL_BUF_INIT;
    reel_buf_puts(&many, te);
    for (int i = 0; i < 60; i++)
        reel_buf_puts(&many, "1;aaaaaaaaaaaaaaaaaaaa\r\nx\r\n");
    assert_int_equal(parse(many.data, many.len, &small, &req, &used),
                     REEL_ETOOBIG);
    assert_string_equal(req.error, "chunk framing too large");
    reel_buf_free(&many);
    reel_http_req_free(&req);
}

static void parser_refuses_malformed_requests(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int status;
    } cases[] = {
        {"GET / HTTP/1.1\nHost: a\n\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\n\r\n", 400},
        {"GET /\r\n\r\n", 400},
        {"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400},
        {"GET / HTTX/1.1\r\nHost: a\r\n\r\n", 400},
        {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
        {"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505},
        {"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"GET foo HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01z\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nX: a\rz\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12a\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
         "Content-Length: 2\r\n\r\nab",
         400},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
         "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n"
         "\r\n",
         501},
        {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
         "zz\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
         "3\r\nabcde\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
         "3 x\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
         "0\r\nbad trailer\r\n\r\n",
         400},
        {"GET / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n", 417},
    };
    reel_http_req req;
    reel_http_req_init(&req);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t used = 7;
        int rc = parse(cases[i].in, strlen(cases[i].in), &LIM, &req, &used);
        if (rc >= 0 || req.error_status != cases[i].status)
            fail_msg("case %zu (%s): rc %d status %d", i, cases[i].in, rc,
                     req.error_status);
        assert_non_null(req.error);
    }
    static const char nul[] = "\0GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t used;
    assert_int_equal(parse(nul, sizeof nul - 1, &LIM, &req, &used),
                     REEL_EFORMAT);
    reel_http_req_free(&req);
}

static void parser_refuses_bad_percent_encoding(void **state)
{
    (void)state;
    static const char *const bad[] = {"/a?x=%zz", "/a?x=%4",  "/a?x=%",
                                      "/a?x=%00", "/a?%zz=1", "/%G1",
                                      "/a%2",     "/a%00b"};
    reel_http_req req;
    reel_http_req_init(&req);
    char s[128];
    size_t used;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(s, sizeof s, "GET %s HTTP/1.1\r\nHost: a\r\n\r\n", bad[i]);
        assert_int_equal(parse_str(s, &req, &used), REEL_EFORMAT);
        assert_int_equal(req.error_status, 400);
    }
    assert_int_equal(parse_str("GET /a?x=%41%2b%e2%82%ac+1&y=%2F HTTP/1.1\r\n"
                               "Host: a\r\n\r\n",
                               &req, &used),
                     0);
    assert_string_equal(reel_http_req_arg(&req, "x"), "A+\xe2\x82\xac 1");
    assert_string_equal(reel_http_req_arg(&req, "y"), "/");
    reel_http_req_free(&req);
}

static void parser_knows_http10_and_connection_close(void **state)
{
    (void)state;
    reel_http_req req;
    reel_http_req_init(&req);
    size_t used;
    assert_int_equal(
        parse_str("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &req,
                  &used),
        0);
    assert_int_equal(req.minor, 0);
    assert_int_equal(req.keep_alive, 0); /* 1.0: one request per connection */
    assert_int_equal(parse_str("GET / HTTP/1.1\r\nHost: a\r\n"
                               "Connection: keep-alive, Close\r\n\r\n",
                               &req, &used),
                     0);
    assert_int_equal(req.keep_alive, 0);
    assert_int_equal(parse_str("GET / HTTP/1.1\r\nHost: a\r\n"
                               "Connection: closed\r\n\r\n",
                               &req, &used),
                     0);
    assert_int_equal(req.keep_alive, 1);
    /* Empty lines before a request are skipped and counted as used. */
    const char *s = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(parse_str(s, &req, &used), 0);
    assert_int_equal(used, strlen(s));
    assert_int_equal(parse_str("\r\n", &req, &used), 0);
    assert_int_equal(used, 0);
    reel_http_req_free(&req);
}

static void responses_refuse_header_injection(void **state)
{
    (void)state;
    reel_http_resp r;
    reel_http_resp_init(&r);
    assert_int_equal(reel_http_resp_header(&r, "X-Id", "7"), 0);
    assert_int_equal(reel_http_resp_header(&r, "X-Id", "7\r\nSet-Cookie: a"),
                     REEL_EINVAL);
    assert_int_equal(reel_http_resp_header(&r, "X Id", "7"), REEL_EINVAL);
    assert_int_equal(reel_http_resp_header(&r, "content-length", "7"),
                     REEL_EINVAL);
    assert_int_equal(reel_http_resp_header(&r, "", "7"), REEL_EINVAL);
    assert_string_equal(r.headers.data, "X-Id: 7\r\n");
    reel_http_resp_error(&r, 400, "bad \"x\"\n\\");
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body.data,
                        "{\"error\": \"bad \\\"x\\\"\\u000a\\\\\"}\n");
    assert_int_equal(r.headers.len, 0);
    reel_http_resp_free(&r);
    assert_int_equal(reel_http_status_of(REEL_ENOENT), 404);
    assert_int_equal(reel_http_status_of(REEL_EIO), 500);
    assert_string_equal(reel_http_reason(431),
                        "Request Header Fields Too Large");
}

/* ---- a blocking client ------------------------------------------------ */

typedef struct client {
    int fd;
    char buf[1 << 16];
    size_t len;
} client;

typedef struct reply {
    int status;
    char head[8192];
    char *body;
    size_t body_len;
} reply;

static int connect_to(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static client *cl_open(uint16_t port)
{
    client *c = calloc(1, sizeof *c);
    c->fd = connect_to(port);
    assert_true(c->fd >= 0);
    return c;
}

static void cl_close(client *c)
{
    close(c->fd);
    free(c);
}

/* 0, or -1 (errors are reported, not asserted, so threads may use it). */
static int cl_send_n(client *c, const char *s, size_t n)
{
    while (n) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

static int cl_send(client *c, const char *s)
{
    return cl_send_n(c, s, strlen(s));
}

static int cl_fill(client *c)
{
    if (c->len == sizeof c->buf)
        return -1;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (n <= 0)
        return -1;
    c->len += (size_t)n;
    return 0;
}

static const char *find_header(const char *head, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p && p[2];
         p = strstr(p + 2, "\r\n"))
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':')
            return p + 3 + n + strspn(p + 3 + n, " ");
    return NULL;
}

/* Reads one response; -1 at end of stream or on a timeout or error. */
static int cl_read(client *c, reply *r)
{
    memset(r, 0, sizeof *r);
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        if (cl_fill(c) < 0)
            return -1;
    size_t hn = (size_t)(end - c->buf) + 4;
    if (hn >= sizeof r->head)
        return -1;
    memcpy(r->head, c->buf, hn);
    r->head[hn] = '\0';
    if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1)
        return -1;
    const char *cl = find_header(r->head, "Content-Length");
    size_t bn = cl && r->status >= 200 ? strtoul(cl, NULL, 10) : 0;
    if (strstr(r->head, "\r\nX-Head: 1\r\n"))
        bn = 0; /* the test marks answers to HEAD */
    while (c->len < hn + bn)
        if (cl_fill(c) < 0)
            return -1;
    r->body = malloc(bn + 1);
    memcpy(r->body, c->buf + hn, bn);
    r->body[bn] = '\0';
    r->body_len = bn;
    memmove(c->buf, c->buf + hn + bn, c->len - hn - bn);
    c->len -= hn + bn;
    return 0;
}

static void reply_free(reply *r)
{
    free(r->body);
    r->body = NULL;
}

/* 1 when the server has closed the connection (after what was read). */
static int cl_eof(client *c)
{
    if (c->len)
        return 0;
    char x;
    return recv(c->fd, &x, 1, 0) == 0;
}

/* Sends a request and expects a status and, when body is not NULL, a
 * body. */
static void roundtrip(client *c, const char *req, int status, const char *body)
{
    assert_int_equal(cl_send(c, req), 0);
    reply r;
    assert_int_equal(cl_read(c, &r), 0);
    if (r.status != status)
        fail_msg("%s: got %d, want %d\n%s%s", req, r.status, status, r.head,
                 r.body);
    if (body)
        assert_string_equal(r.body, body);
    reply_free(&r);
}

/* ---- handlers --------------------------------------------------------- */

static int h_hello(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    (void)ctx;
    resp->content_type = "text/plain";
    reel_buf_puts(&resp->body, "hello");
    if (strcmp(req->method, "HEAD") == 0)
        reel_http_resp_header(resp, "X-Head", "1");
    return 0;
}

/* The thread (event loop) that runs the handler. */
static int h_thread(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    (void)req;
    (void)ctx;
    reel_buf_printf(&resp->body, "%lu", (unsigned long)pthread_self());
    return 0;
}

static int h_recs(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    (void)ctx;
    const char *k = reel_http_req_arg(req, "k");
    reel_buf_printf(&resp->body, "{\"user\":\"%s\",\"k\":\"%s\"}",
                    reel_http_req_param(req, "id"), k ? k : "");
    return 0;
}

static int h_pair(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    (void)ctx;
    reel_buf_printf(&resp->body, "%s/%s", reel_http_req_param(req, "a"),
                    reel_http_req_param(req, "b"));
    return 0;
}

static int h_echo(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    (void)ctx;
    resp->content_type = "application/octet-stream";
    reel_buf_append(&resp->body, req->body, req->body_len);
    return 0;
}

static int h_seq(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    (void)ctx;
    reel_buf_puts(&resp->body, reel_http_req_param(req, "n"));
    return 0;
}

static int h_fail(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    (void)req;
    (void)resp;
    (void)ctx;
    return REEL_ENOENT;
}

static int h_secret(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    if (!reel_http_bearer_ok(req, resp, ctx))
        return 0;
    reel_buf_puts(&resp->body, "{\"ok\":true}");
    return 0;
}

static int h_metrics(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    (void)req;
    resp->content_type = "text/plain; version=0.0.4";
    reel_http_metrics_write(ctx, &resp->body);
    return 0;
}

/* Deferred events: the handler hands its token to the test. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    reel_http_deferred *tok[16];
    char body[16][32];
    int n;
} Q = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static int h_event(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    (void)ctx;
    reel_buf_puts(&resp->body, "ignored: the response is deferred");
    reel_http_deferred *d = reel_http_defer(resp);
    pthread_mutex_lock(&Q.mu);
    assert(Q.n < 16);
    size_t n = req->body_len < 31 ? req->body_len : 31;
    memcpy(Q.body[Q.n], req->body, n);
    Q.body[Q.n][n] = '\0';
    Q.tok[Q.n++] = d;
    pthread_cond_signal(&Q.cv);
    pthread_mutex_unlock(&Q.mu);
    return 0;
}

/* The oldest deferred token, waiting up to 5 s; its body into `body`. */
static reel_http_deferred *take_token(char *body)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&Q.mu);
    while (Q.n == 0)
        if (pthread_cond_timedwait(&Q.cv, &Q.mu, &until) == ETIMEDOUT)
            break;
    reel_http_deferred *d = NULL;
    if (Q.n) {
        d = Q.tok[0];
        if (body)
            memcpy(body, Q.body[0], 32);
        Q.n--;
        memmove(Q.tok, Q.tok + 1, (size_t)Q.n * sizeof *Q.tok);
        memmove(Q.body, Q.body + 1, (size_t)Q.n * sizeof *Q.body);
    }
    pthread_mutex_unlock(&Q.mu);
    return d;
}

typedef struct completion {
    reel_http_deferred *d;
    char body[64];
} completion;

static void *complete_thread(void *arg)
{
    completion *cp = arg;
    reel_http_resp r;
    reel_http_resp_init(&r);
    r.status = 202;
    reel_buf_puts(&r.body, cp->body);
    reel_http_complete(cp->d, &r);
    assert(r.body.len == 0); /* moved */
    reel_http_resp_free(&r);
    return NULL;
}

/* Completes a token from another thread and waits for that thread. */
static void complete_elsewhere(reel_http_deferred *d, const char *body)
{
    completion cp = {.d = d};
    snprintf(cp.body, sizeof cp.body, "%s", body);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, complete_thread, &cp), 0);
    pthread_join(th, NULL);
}

static reel_http_server *start_server(reel_http_opts *o)
{
    reel_http_opts def = reel_http_opts_default();
    if (!o)
        o = &def;
    o->threads = 2;
    reel_http_server *s;
    assert_int_equal(reel_http_new(o, &s), 0);
    assert_int_equal(reel_http_route(s, "GET", "/hello", h_hello, NULL), 0);
    assert_int_equal(reel_http_route(s, "GET", "/thread", h_thread, NULL), 0);
    assert_int_equal(reel_http_route(s, "GET", "/v1/users/{id}/recommendations",
                                     h_recs, NULL),
                     0);
    assert_int_equal(reel_http_route(s, "GET", "/pair/{a}/x/{b}", h_pair, NULL),
                     0);
    assert_int_equal(reel_http_route(s, "POST", "/echo", h_echo, NULL), 0);
    assert_int_equal(reel_http_route(s, "PUT", "/echo", h_echo, NULL), 0);
    assert_int_equal(reel_http_route(s, "GET", "/seq/{n}", h_seq, NULL), 0);
    assert_int_equal(reel_http_route(s, "GET", "/fail", h_fail, NULL), 0);
    assert_int_equal(
        reel_http_route(s, "GET", "/secret", h_secret, (void *)"s3cret"), 0);
    assert_int_equal(reel_http_route(s, "GET", "/metrics", h_metrics, s), 0);
    assert_int_equal(reel_http_route(s, "POST", "/v1/events", h_event, NULL),
                     0);
    reel_diag d;
    reel_diag_clear(&d);
    int rc = reel_http_start(s, &d);
    if (rc)
        fail_msg("start: %s", d.msg);
    assert_true(reel_http_port(s) > 0);
    return s;
}

/* ---- the server ------------------------------------------------------- */

static void server_answers_routes_with_params_404_and_405(void **state)
{
    (void)state;
    reel_http_server *s = start_server(NULL);
    client *c = cl_open(reel_http_port(s));
    /* One connection for all: keep-alive holds across errors too. */
    assert_int_equal(cl_send(c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    reply r;
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello");
    assert_int_equal(
        strncmp(find_header(r.head, "Content-Type"), "text/plain\r\n", 12), 0);
    assert_non_null(find_header(r.head, "Date"));
    assert_null(find_header(r.head, "Connection"));
    reply_free(&r);
    roundtrip(c,
              "GET /v1/users/a%20b%2Fc/recommendations?k=5 HTTP/1.1\r\n"
              "Host: t\r\n\r\n",
              200, "{\"user\":\"a b/c\",\"k\":\"5\"}");
    roundtrip(c, "GET /pair/1/x/2 HTTP/1.1\r\nHost: t\r\n\r\n", 200, "1/2");
    roundtrip(c, "GET /pair/1/y/2 HTTP/1.1\r\nHost: t\r\n\r\n", 404, NULL);
    roundtrip(c, "GET /v1/users//recommendations HTTP/1.1\r\nHost: t\r\n\r\n",
              404, NULL);
    roundtrip(c, "GET /hello/ HTTP/1.1\r\nHost: t\r\n\r\n", 404, NULL);
    roundtrip(c, "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", 404,
              "{\"error\": \"not found\"}\n");
    roundtrip(c, "GET /fail HTTP/1.1\r\nHost: t\r\n\r\n", 404,
              "{\"error\": \"no such file or item\"}\n");

    assert_int_equal(cl_send(c, "DELETE /echo HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 405);
    assert_non_null(strstr(r.head, "\r\nAllow: POST, PUT\r\n"));
    assert_string_equal(r.body, "{\"error\": \"method not allowed\"}\n");
    reply_free(&r);
    assert_int_equal(cl_send(c, "POST /hello HTTP/1.1\r\nHost: t\r\n"
                                "Content-Length: 0\r\n\r\n"),
                     0);
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 405);
    assert_non_null(strstr(r.head, "\r\nAllow: GET, HEAD\r\n"));
    reply_free(&r);

    /* HEAD runs the GET route and sends no body. */
    assert_int_equal(cl_send(c, "HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(strtoul(find_header(r.head, "Content-Length"), NULL, 10),
                     5);
    assert_int_equal(r.body_len, 0);
    reply_free(&r);
    roundtrip(c, "GET /seq/after-head HTTP/1.1\r\nHost: t\r\n\r\n", 200,
              "after-head");
    cl_close(c);
    reel_http_free(s);
}

/* Connections go to the loop with the fewest, whichever loop's listener
 * the kernel picked: 4 connections over 2 loops are 2 and 2, also after
 * two of them close (the next 2 go where the closed ones were). */
static void server_spreads_connections_over_the_loops(void **state)
{
    (void)state;
    reel_http_server *s = start_server(NULL);
    client *c[6];
    char who[6][256];
    reply r;
    for (int i = 0; i < 6; i++) {
        if (i == 4) { /* close two on the same loop */
            int a = 0, b = 1;
            while (strcmp(who[a], who[b]) != 0)
                b++;
            cl_close(c[a]);
            cl_close(c[b]);
            c[a] = c[b] = NULL;
            /* The loop sees the hang-ups at once; give it ample time. */
            usleep(200 * 1000);
            memcpy(who[4], who[a], sizeof who[4]);
        }
        c[i] = cl_open(reel_http_port(s));
        assert_int_equal(
            cl_send(c[i], "GET /thread HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
        assert_int_equal(cl_read(c[i], &r), 0);
        assert_int_equal(r.status, 200);
        if (i == 4 || i == 5) {
            /* Both to the loop that lost its two. */
            assert_string_equal(r.body, who[4]);
        } else {
            assert_true(r.body_len < sizeof who[i]);
            memcpy(who[i], r.body, r.body_len + 1);
        }
        reply_free(&r);
    }
    int same = 0;
    for (int i = 1; i < 4; i++)
        same += strcmp(who[0], who[i]) == 0;
    assert_int_equal(same, 1); /* 2 and 2 */
    for (int i = 0; i < 6; i++)
        if (c[i])
            cl_close(c[i]);
    reel_http_free(s);
}

static void server_keeps_alive_and_honours_close(void **state)
{
    (void)state;
    reel_http_server *s = start_server(NULL);
    uint16_t port = reel_http_port(s);
    client *c = cl_open(port);
    char req[128], want[32];
    for (int i = 0; i < 50; i++) {
        snprintf(req, sizeof req, "GET /seq/%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
        snprintf(want, sizeof want, "%d", i);
        roundtrip(c, req, 200, want);
    }
    /* Connection: close: the answer says so and the server closes. */
    assert_int_equal(cl_send(c, "GET /hello HTTP/1.1\r\nHost: t\r\n"
                                "Connection: close\r\n\r\n"),
                     0);
    reply r;
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.head, "\r\nConnection: close\r\n"));
    reply_free(&r);
    assert_true(cl_eof(c));
    cl_close(c);
    /* HTTP/1.0: one request per connection. */
    c = cl_open(port);
    assert_int_equal(cl_send(c, "GET /hello HTTP/1.0\r\n\r\n"), 0);
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello");
    reply_free(&r);
    assert_true(cl_eof(c));
    cl_close(c);
    /* A client that half-closes after its requests still gets every
     * answer. */
    c = cl_open(port);
    assert_int_equal(cl_send(c, "GET /seq/1 HTTP/1.1\r\nHost: t\r\n\r\n"
                                "GET /seq/2 HTTP/1.1\r\nHost: t\r\n\r\n"),
                     0);
    shutdown(c->fd, SHUT_WR);
    for (int i = 1; i <= 2; i++) {
        assert_int_equal(cl_read(c, &r), 0);
        assert_int_equal(r.status, 200);
        assert_int_equal(atoi(r.body), i);
        reply_free(&r);
    }
    assert_true(cl_eof(c));
    cl_close(c);
    reel_http_free(s);
}

static void server_refuses_bad_and_oversized_requests(void **state)
{
    (void)state;
    reel_http_opts o = reel_http_opts_default();
    o.max_header_bytes = 1024;
    o.max_body_bytes = 4096;
    reel_http_server *s = start_server(&o);
    uint16_t port = reel_http_port(s);
    reply r;

    client *c = cl_open(port);
    assert_int_equal(cl_send(c, "HELLO?\r\n\r\n"), 0);
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "\"error\": "));
    assert_non_null(strstr(r.head, "\r\nConnection: close\r\n"));
    reply_free(&r);
    assert_true(cl_eof(c));
    cl_close(c);

    /* 413 comes from the headers alone; the unread body is drained so the
     * client sees the answer, not a reset. */
    c = cl_open(port);
    assert_int_equal(cl_send(c, "POST /echo HTTP/1.1\r\nHost: t\r\n"
                                "Content-Length: 5000\r\n\r\n"),
                     0);
    char junk[5000];
    memset(junk, 'j', sizeof junk);
    assert_int_equal(cl_send_n(c, junk, sizeof junk), 0);
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 413);
    reply_free(&r);
    assert_true(cl_eof(c));
    cl_close(c);

    c = cl_open(port);
    char *big = repeat("GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: ", 'b', 2000,
                       "\r\n\r\n");
    assert_int_equal(cl_send(c, big), 0);
    free(big);
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 431);
    reply_free(&r);
    cl_close(c);

    /* A body at the limit is fine, chunked or not; 100-continue works. */
    c = cl_open(port);
    char *body = repeat("", 'x', 4096, "");
    char head[256];
    snprintf(head, sizeof head,
             "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4096\r\n\r\n");
    assert_int_equal(cl_send(c, head), 0);
    assert_int_equal(cl_send(c, body), 0);
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 4096);
    reply_free(&r);
    roundtrip(c,
              "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
              "\r\n3\r\nabc\r\n4;x=1\r\ndefg\r\n0\r\n\r\n",
              200, "abcdefg");
    assert_int_equal(cl_send(c, "PUT /echo HTTP/1.1\r\nHost: t\r\n"
                                "Expect: 100-continue\r\n"
                                "Content-Length: 3\r\n\r\n"),
                     0);
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 100);
    reply_free(&r);
    roundtrip(c, "xyz", 200, "xyz");
    free(body);
    cl_close(c);
    reel_http_free(s);
}

static void server_answers_pipelined_requests_in_order(void **state)
{
    (void)state;
    reel_http_server *s = start_server(NULL);
    client *c = cl_open(reel_http_port(s));
    reel_buf all = REEL_BUF_INIT;
    for (int i = 0; i < 40; i++) {
        if (i == 20)
            reel_buf_puts(&all, "POST /echo HTTP/1.1\r\nHost: t\r\n"
                                "Content-Length: 4\r\n\r\nmid!");
        reel_buf_printf(&all, "GET /seq/%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
    }
    assert_int_equal(cl_send_n(c, all.data, all.len), 0);
    reel_buf_free(&all);
    char want[16];
    for (int i = 0; i < 41; i++) {
        reply r;
        assert_int_equal(cl_read(c, &r), 0);
        assert_int_equal(r.status, 200);
        int k = i < 20 ? i : i - 1;
        snprintf(want, sizeof want, "%d", k);
        assert_string_equal(r.body, i == 20 ? "mid!" : want);
        reply_free(&r);
    }
    cl_close(c);
    reel_http_free(s);
}

static void server_sends_deferred_responses_in_order(void **state)
{
    (void)state;
    reel_http_server *s = start_server(NULL);
    uint16_t port = reel_http_port(s);
    client *c = cl_open(port);
    /* The deferred request and two behind it, in one write. */
    assert_int_equal(cl_send(c, "POST /v1/events HTTP/1.1\r\nHost: t\r\n"
                                "Content-Length: 5\r\n\r\nev-01"
                                "GET /seq/1 HTTP/1.1\r\nHost: t\r\n\r\n"
                                "GET /seq/2 HTTP/1.1\r\nHost: t\r\n\r\n"),
                     0);
    char body[32];
    reel_http_deferred *d = take_token(body);
    assert_non_null(d);
    assert_string_equal(body, "ev-01");
    /* Nothing may overtake the deferred response. */
    char x;
    assert_int_equal(recv(c->fd, &x, 1, MSG_DONTWAIT), -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    complete_elsewhere(d, "{\"accepted\":1}");
    reply r;
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 202);
    assert_string_equal(r.body, "{\"accepted\":1}");
    reply_free(&r);
    assert_int_equal(cl_read(c, &r), 0);
    assert_string_equal(r.body, "1");
    reply_free(&r);
    assert_int_equal(cl_read(c, &r), 0);
    assert_string_equal(r.body, "2");
    reply_free(&r);
    /* The connection goes on after a deferral. */
    roundtrip(c, "GET /seq/3 HTTP/1.1\r\nHost: t\r\n\r\n", 200, "3");
    cl_close(c);

    /* A client that leaves before its deferred answer: dropped quietly. */
    c = cl_open(port);
    assert_int_equal(cl_send(c, "POST /v1/events HTTP/1.1\r\nHost: t\r\n"
                                "Content-Length: 5\r\n\r\nev-02"),
                     0);
    d = take_token(body);
    assert_non_null(d);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg); /* reset */
    cl_close(c);
    c = cl_open(port);
    roundtrip(c, "GET /seq/4 HTTP/1.1\r\nHost: t\r\n\r\n", 200, "4");
    complete_elsewhere(d, "{}");
    roundtrip(c, "GET /seq/5 HTTP/1.1\r\nHost: t\r\n\r\n", 200, "5");
    cl_close(c);
    reel_http_free(s);
}

typedef struct worker {
    uint16_t port;
    int id, n, errors;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    client *c = NULL;
    char req[160], want[96];
    for (int i = 0; i < w->n; i++) {
        if (i % 50 == 0) { /* some new connections, mostly reuse */
            if (c)
                cl_close(c);
            c = calloc(1, sizeof *c);
            c->fd = connect_to(w->port);
            if (c->fd < 0) {
                w->errors++;
                break;
            }
        }
        snprintf(req, sizeof req,
                 "GET /v1/users/w%d-%d/recommendations?k=%d HTTP/1.1\r\n"
                 "Host: t\r\n\r\n",
                 w->id, i, i);
        snprintf(want, sizeof want, "{\"user\":\"w%d-%d\",\"k\":\"%d\"}", w->id,
                 i, i);
        reply r;
        if (cl_send(c, req) < 0 || cl_read(c, &r) < 0) {
            w->errors++;
            break;
        }
        if (r.status != 200 || strcmp(r.body, want) != 0)
            w->errors++;
        reply_free(&r);
    }
    if (c)
        cl_close(c);
    return NULL;
}

static uint64_t metric(const char *text, const char *line_start)
{
    const char *p = strstr(text, line_start);
    if (!p)
        return UINT64_MAX;
    return strtoull(p + strlen(line_start), NULL, 10);
}

static void server_serves_concurrent_clients_and_counts_them(void **state)
{
    (void)state;
    reel_http_server *s = start_server(NULL);
    enum { W = 4, N = 200 };
    worker w[W];
    pthread_t th[W];
    for (int i = 0; i < W; i++) {
        w[i] = (worker){.port = reel_http_port(s), .id = i, .n = N};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < W; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].errors, 0);
    }
    client *c = cl_open(reel_http_port(s));
    roundtrip(c, "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", 404, NULL);
    assert_int_equal(cl_send(c, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    reply r;
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 200);
    const char *route = "route=\"GET /v1/users/{id}/recommendations\"";
    char key[160];
    snprintf(key, sizeof key, "reel_http_requests_total{%s,status=\"2xx\"} ",
             route);
    assert_int_equal(metric(r.body, key), W * N);
    snprintf(key, sizeof key,
             "reel_http_request_seconds_bucket{%s,le=\"+Inf\"} ", route);
    assert_int_equal(metric(r.body, key), W * N);
    snprintf(key, sizeof key, "reel_http_request_seconds_count{%s} ", route);
    assert_int_equal(metric(r.body, key), W * N);
    assert_int_equal(metric(r.body, "reel_http_requests_total{route=\"unmatched"
                                    "\",status=\"4xx\"} "),
                     1);
    assert_non_null(strstr(r.body, "# TYPE reel_http_request_seconds "
                                   "histogram\n"));
    assert_non_null(strstr(r.body, "reel_http_request_seconds_bucket{route="
                                   "\"GET /hello\",le=\"0.0001\"} 0\n"));
    /* Buckets are cumulative. */
    snprintf(key, sizeof key,
             "reel_http_request_seconds_bucket{%s,le=\"0.001\"} ", route);
    uint64_t b1 = metric(r.body, key);
    snprintf(key, sizeof key,
             "reel_http_request_seconds_bucket{%s,le=\"0.01\"} ", route);
    assert_true(b1 <= metric(r.body, key));
    reply_free(&r);
    cl_close(c);
    reel_http_free(s);
}

static void server_checks_bearer_tokens(void **state)
{
    (void)state;
    reel_http_server *s = start_server(NULL);
    client *c = cl_open(reel_http_port(s));
    const char *variants[] = {"", "Authorization: Bearer s3cre\r\n",
                              "Authorization: Bearer s3cret0\r\n",
                              "Authorization: Basic s3cret\r\n",
                              "Authorization: Bearer\r\n"};
    char req[256];
    for (size_t i = 0; i < sizeof variants / sizeof *variants; i++) {
        snprintf(req, sizeof req, "GET /secret HTTP/1.1\r\nHost: t\r\n%s\r\n",
                 variants[i]);
        assert_int_equal(cl_send(c, req), 0);
        reply r;
        assert_int_equal(cl_read(c, &r), 0);
        assert_int_equal(r.status, 401);
        assert_non_null(strstr(r.head, "\r\nWWW-Authenticate: Bearer\r\n"));
        reply_free(&r);
    }
    roundtrip(c,
              "GET /secret HTTP/1.1\r\nHost: t\r\n"
              "Authorization: Bearer s3cret\r\n\r\n",
              200, "{\"ok\":true}");
    roundtrip(c,
              "GET /secret HTTP/1.1\r\nHost: t\r\n"
              "authorization: bearer s3cret\r\n\r\n",
              200, NULL);
    cl_close(c);
    reel_http_free(s);
}

static void server_times_out_idle_connections(void **state)
{
    (void)state;
    reel_http_opts o = reel_http_opts_default();
    o.idle_timeout_ms = 150;
    reel_http_server *s = start_server(&o);
    uint16_t port = reel_http_port(s);
    client *quiet = cl_open(port);
    client *partial = cl_open(port);
    assert_int_equal(cl_send(partial, "GET /hello HTTP/1.1\r\nHo"), 0);
    /* Mid-request: 408, then the connection closes. */
    reply r;
    assert_int_equal(cl_read(partial, &r), 0);
    assert_int_equal(r.status, 408);
    assert_non_null(strstr(r.head, "\r\nConnection: close\r\n"));
    reply_free(&r);
    assert_true(cl_eof(partial));
    /* Between requests: closed without a word. */
    assert_true(cl_eof(quiet));
    cl_close(quiet);
    cl_close(partial);
    reel_http_free(s);
}

typedef struct stopper {
    reel_http_server *s;
    atomic_int done;
} stopper;

static void *stop_main(void *arg)
{
    stopper *st = arg;
    reel_http_stop(st->s);
    atomic_store(&st->done, 1);
    return NULL;
}

static void server_stops_gracefully_with_a_request_in_flight(void **state)
{
    (void)state;
    reel_http_server *s = start_server(NULL);
    uint16_t port = reel_http_port(s);
    client *busy = cl_open(port);
    client *idle = cl_open(port);
    roundtrip(idle, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", 200, "hello");
    assert_int_equal(cl_send(busy, "POST /v1/events HTTP/1.1\r\nHost: t\r\n"
                                   "Content-Length: 5\r\n\r\nev-03"),
                     0);
    reel_http_deferred *d = take_token(NULL);
    assert_non_null(d);

    stopper st = {.s = s};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stop_main, &st), 0);
    /* The server stops accepting: wait until connecting is refused. */
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int fd = connect_to(port);
        if (fd < 0 && errno == ECONNREFUSED)
            break;
        if (fd >= 0)
            close(fd);
        clock_gettime(CLOCK_MONOTONIC, &t);
        assert_true(t.tv_sec - t0.tv_sec < 5);
        sched_yield();
    }
    /* Idle connections are closed; the in-flight request holds the stop. */
    assert_true(cl_eof(idle));
    assert_int_equal(atomic_load(&st.done), 0);
    complete_elsewhere(d, "{\"done\":true}");
    reply r;
    assert_int_equal(cl_read(busy, &r), 0);
    assert_int_equal(r.status, 202);
    assert_string_equal(r.body, "{\"done\":true}");
    assert_non_null(strstr(r.head, "\r\nConnection: close\r\n"));
    reply_free(&r);
    assert_true(cl_eof(busy));
    cl_close(busy); /* ends the server's lingering close at once */
    cl_close(idle);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&st.done), 1);
    reel_http_stop(s); /* a second stop does nothing */
    reel_http_free(s);
}

static void server_checks_routes_and_ports(void **state)
{
    (void)state;
    reel_http_opts o = reel_http_opts_default();
    reel_http_server *s;
    o.threads = REEL_HTTP_MAX_THREADS + 1;
    assert_int_equal(reel_http_new(&o, &s), REEL_EINVAL);
    assert_null(s);
    o.threads = 1;
    assert_int_equal(reel_http_new(&o, &s), 0);
    assert_int_equal(reel_http_route(s, "GET", "nope", h_hello, NULL),
                     REEL_EINVAL);
    assert_int_equal(reel_http_route(s, "GET", "/a/{x", h_hello, NULL),
                     REEL_EINVAL);
    assert_int_equal(reel_http_route(s, "GET", "/a/x{y}", h_hello, NULL),
                     REEL_EINVAL);
    assert_int_equal(reel_http_route(s, "GET", "/a/{}", h_hello, NULL),
                     REEL_EINVAL);
    assert_int_equal(reel_http_route(s, "G T", "/a", h_hello, NULL),
                     REEL_EINVAL);
    assert_int_equal(reel_http_route(s, "GET", "/a?b", h_hello, NULL),
                     REEL_EINVAL);
    assert_int_equal(reel_http_route(s, "GET", "/a/{x}", h_hello, NULL), 0);
    assert_int_equal(reel_http_route(s, "GET", "/a/{x}", h_hello, NULL),
                     REEL_EEXISTS);
    assert_int_equal(reel_http_port(s), 0);
    assert_int_equal(reel_http_start(s, NULL), 0);
    assert_int_equal(reel_http_route(s, "GET", "/b", h_hello, NULL),
                     REEL_EBUSY);
    /* A port in use is refused, even though SO_REUSEPORT would share it. */
    o.port = reel_http_port(s);
    reel_http_server *s2;
    assert_int_equal(reel_http_new(&o, &s2), 0);
    reel_diag d;
    reel_diag_clear(&d);
    assert_int_equal(reel_http_start(s2, &d), REEL_EBUSY);
    assert_non_null(strstr(d.msg, "in use"));
    reel_http_free(s2);
    o.port = 0;
    o.host = "no-such-host.invalid";
    assert_int_equal(reel_http_new(&o, &s2), 0);
    assert_int_equal(reel_http_start(s2, NULL), REEL_EINVAL);
    reel_http_free(s2);
    reel_http_free(s);
    reel_http_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parser_reads_a_get_with_query_and_headers),
        cmocka_unit_test(parser_needs_more_until_the_body_is_whole),
        cmocka_unit_test(parser_decodes_chunked_bodies),
        cmocka_unit_test(parser_splits_pipelined_requests),
        cmocka_unit_test(parser_bounds_heads_and_bodies),
        cmocka_unit_test(parser_refuses_malformed_requests),
        cmocka_unit_test(parser_refuses_bad_percent_encoding),
        cmocka_unit_test(parser_knows_http10_and_connection_close),
        cmocka_unit_test(responses_refuse_header_injection),
        cmocka_unit_test(server_answers_routes_with_params_404_and_405),
        cmocka_unit_test(server_spreads_connections_over_the_loops),
        cmocka_unit_test(server_keeps_alive_and_honours_close),
        cmocka_unit_test(server_refuses_bad_and_oversized_requests),
        cmocka_unit_test(server_answers_pipelined_requests_in_order),
        cmocka_unit_test(server_sends_deferred_responses_in_order),
        cmocka_unit_test(server_serves_concurrent_clients_and_counts_them),
        cmocka_unit_test(server_checks_bearer_tokens),
        cmocka_unit_test(server_times_out_idle_connections),
        cmocka_unit_test(server_stops_gracefully_with_a_request_in_flight),
        cmocka_unit_test(server_checks_routes_and_ports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
