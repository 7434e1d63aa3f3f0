/*
 * libFuzzer target for reel_http_parse: the HTTP request parser gets
 * arbitrary bytes and must never read outside them, crash, leak or
 * contradict itself.
 *
 * The first byte picks the limits (small ones reach the 413/414/431
 * paths); the rest is parsed as a stream of pipelined requests. Checked:
 * n_used never exceeds the bytes given; a complete request parses the
 * same from exactly its own bytes (the parser decides from what it has,
 * not from what follows); refusals carry a status the server can send;
 * every output string and the body are read in full, so ASan sees any
 * that point outside their memory.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"

/* Where touched bytes go, so the reads cannot be optimised away. */
static volatile size_t sink;

static size_t touch_str(const char *s)
{
    return strlen(s);
}

static size_t touch_req(const reel_http_req *req)
{
    size_t t = touch_str(req->method) + touch_str(req->target) +
               touch_str(req->path) + touch_str(req->query);
    for (uint32_t i = 0; i < req->n_headers; i++)
        t += touch_str(req->headers[i].name) + touch_str(req->headers[i].value);
    for (uint32_t i = 0; i < req->n_args; i++)
        t += touch_str(req->args[i].name) + touch_str(req->args[i].value);
    unsigned char x = 0;
    for (size_t i = 0; i < req->body_len; i++)
        x ^= (unsigned char)req->body[i];
    return t + x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const size_t headers[4] = {64, 256, 4096, 16384};
    static const size_t bodies[4] = {0, 16, 1024, 1 << 20};
    reel_http_limits lim = {.max_header_bytes = headers[data[0] & 3],
                            .max_body_bytes = bodies[(data[0] >> 2) & 3]};
    const char *buf = (const char *)data + 1;
    size_t len = size - 1;

    reel_http_req req, again;
    reel_http_req_init(&req);
    reel_http_req_init(&again);
    size_t off = 0;
    while (off < len) {
        size_t used = 99;
        int rc = reel_http_parse(buf + off, len - off, &lim, &req, &used);
        if (rc < 0) {
            int st = req.error_status;
            if (!(st == 400 || st == 413 || st == 414 || st == 417 ||
                  st == 431 || st == 501 || st == 505) ||
                !req.error)
                abort();
            break;
        }
        if (used == 0)
            break; /* needs more */
        if (used > len - off)
            abort();
        sink += touch_req(&req);
        if (req.body_len > lim.max_body_bytes || req.minor > 1)
            abort();
        /* The same request from exactly its own bytes, in a fresh copy
         * so that reads past its end are caught. */
        char *copy = malloc(used);
        memcpy(copy, buf + off, used);
        size_t used2 = 0;
        if (reel_http_parse(copy, used, &lim, &again, &used2) != 0 ||
            used2 != used || again.body_len != req.body_len ||
            strcmp(again.target, req.target) != 0 ||
            again.n_headers != req.n_headers || again.n_args != req.n_args ||
            again.keep_alive != req.keep_alive ||
            (req.body_len && memcmp(again.body, req.body, req.body_len) != 0))
            abort();
        free(copy);
        off += used;
    }
    reel_http_req_free(&req);
    reel_http_req_free(&again);
    return 0;
}
