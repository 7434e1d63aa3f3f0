/*
 * http: the HTTP/1.1 server under `reel serve`.
 *
 * A server is N event loops, one thread each (default: one per CPU the
 * process may run on). Each loop has its own epoll set and its own
 * listening socket bound to the same address with SO_REUSEPORT, so the
 * kernel spreads new connections over the loops; a connection stays on the
 * loop that accepted it. Sockets are non-blocking and epoll is
 * level-triggered. Handlers run to completion on the loop thread, so a
 * handler must not block (DESIGN.md, "Threads"): a handler that has to wait
 * (for the write-ahead log's fsync) defers its response with
 * reel_http_defer(), and another thread later hands the response over with
 * reel_http_complete(), which wakes the loop through an eventfd.
 *
 * Protocol: HTTP/1.1 with keep-alive and pipelining (responses leave in
 * request order; while a response is deferred, the connection's later
 * requests wait), HTTP/1.0 (one request per connection), request bodies
 * with Content-Length or `Transfer-Encoding: chunked`, `Expect:
 * 100-continue`, and HEAD on every GET route. Responses always carry
 * Content-Length (never chunked) and a Date; `Connection: close` from the
 * client is honoured.
 *
 * Bounds: everything a client sends is bounded before it is stored. The
 * request line and headers together by max_header_bytes (414 when the
 * request line alone does not fit, 431 otherwise); the decoded body by
 * max_body_bytes (413, answered as soon as the headers or a chunk size
 * announce too much); a chunked body's framing (size lines, extensions,
 * CRLFs, trailers) by max_header_bytes + max_body_bytes. A connection
 * that makes no progress for idle_timeout_ms is closed, after a 408 when it
 * was in the middle of sending a request. Malformed requests get 400 (501
 * for a transfer coding other than chunked, 505 for an HTTP version other
 * than 1.0 and 1.1, 417 for an expectation other than 100-continue). After
 * any of these the connection closes. Every error body is JSON:
 * {"error": "..."}. Line ends must be CRLF; obsolete line folding and
 * Content-Length together with Transfer-Encoding are refused (both are
 * request-smuggling vectors). HTTP/1.1 requests must carry one Host.
 *
 * Parsing is a pure function over bytes, reel_http_parse(), so it is
 * tested and fuzzed without sockets (fuzz/fuzz_http.c).
 *
 * Routes: a method and a pattern of '/'-separated segments, where a
 * segment "{name}" matches any one non-empty segment and binds it,
 * percent-decoded, as a path parameter ("/v1/users/{id}/recommendations").
 * Literal segments compare byte for byte with the path as sent (still
 * percent-encoded). The first matching route wins. A path no route matches
 * gets 404; a path that matches only under other methods gets 405 with an
 * Allow header. A handler that returns a negative REEL_E* code gets the
 * status reel_http_status_of() gives it and {"error": reel_strerror(err)}.
 *
 * Metrics: per route, requests by status class and a latency histogram
 * (from the end of parsing to the response being queued, deferral
 * included), kept per loop without locks and summed when read by
 * reel_http_metrics_write() in the Prometheus text format. Requests no
 * route matches count under route="unmatched" and requests that fail to
 * parse or time out under route="invalid".
 *
 * Ownership: a request and everything it points to belong to the server
 * and live until the handler returns; a handler copies what it keeps.
 * The server sends what the handler left in `resp` and then reuses it.
 * A deferred response's token belongs to the server; exactly one
 * reel_http_complete() gives it back, even when the client has gone (the
 * response is then dropped).
 *
 * Thread rules: reel_http_new, _route, _start, _stop and _free are called
 * by one controlling thread, never from a handler; routes are added before
 * start, and a server starts once. Handlers run on the loop threads, one
 * per loop at a time, so state they share needs its own locking.
 * reel_http_complete, reel_http_port and reel_http_metrics_write may be
 * called from any thread while the server exists. Loop threads block all
 * signals, so signals reach the controlling thread. reel_http_parse and the
 * request and response helpers are reentrant.
 */
#ifndef REEL_API_HTTP_H
#define REEL_API_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/buf.h"
#include "base/err.h"

enum { REEL_HTTP_MAX_THREADS = 256 };

/* What reel_http_parse accepts. */
typedef struct reel_http_limits {
    size_t max_header_bytes; /* request line + headers + final CRLF */
    size_t max_body_bytes;   /* the body after chunked decoding */
} reel_http_limits;

typedef struct reel_http_opts {
    const char *host;         /* address to bind ("127.0.0.1"); copied */
    uint16_t port;            /* 0: ephemeral, see reel_http_port() */
    int threads;              /* event loops (0: one per available CPU) */
    size_t max_header_bytes;  /* 16 KiB */
    size_t max_body_bytes;    /* 8 MiB */
    uint32_t idle_timeout_ms; /* 30000; 0: connections never time out */
    int backlog;              /* listen queue of each loop (0: 1024) */
} reel_http_opts;

reel_http_opts reel_http_opts_default(void);

/* A name and a value, both NUL-terminated; decoded text never contains a
 * NUL (a %00 is refused with 400). */
typedef struct reel_http_kv {
    const char *name;
    const char *value;
} reel_http_kv;

/*
 * A parsed request. Strings are NUL-terminated and live in the request's
 * arena; the body points into the bytes that were parsed (Content-Length)
 * or into the arena (chunked) and is not NUL-terminated.
 */
typedef struct reel_http_req {
    const char *method; /* as sent ("GET"); methods are case-sensitive */
    const char *target; /* the request-target as sent ("/v1/x?k=1") */
    const char *path;   /* the target up to '?', still percent-encoded */
    const char *query;  /* the raw text after '?', "" when none */
    int minor;          /* HTTP/1.<minor>: 0 or 1 */
    int keep_alive;     /* 1.1 without `Connection: close` */
    int expect_continue;
    reel_http_kv *headers; /* as sent; values without surrounding blanks */
    uint32_t n_headers;
    reel_http_kv *args; /* the query, split at '&' and '=', '+' -> ' ',
                           percent-decoded; "k" alone gives value "" */
    uint32_t n_args;
    reel_http_kv *params; /* path parameters, bound by the router */
    uint32_t n_params;
    const char *body;
    size_t body_len;
    /* Set by reel_http_parse when it needs more bytes: head_len > 0 once
     * the head is complete, and need_len, when the body length is known,
     * the bytes the whole request takes. */
    size_t head_len, need_len;
    /* Set by reel_http_parse when it fails: the status to answer with
     * and a static sentence saying why. */
    int error_status;
    const char *error;
    /* Scratch memory for the handler, reset with the request. */
    reel_arena *arena;
    reel_arena arena_; /* private: what `arena` points to */
} reel_http_req;

/* Prepares a request for parsing (cannot fail); a request is reused for
 * any number of parses and released with reel_http_req_free(). A request
 * must not be copied by value (its `arena` points into itself). */
void reel_http_req_init(reel_http_req *req);
void reel_http_req_free(reel_http_req *req);

/*
 * Parses one request at the start of buf[0..len). Returns 0 and sets
 * *n_used to the bytes the request took (the next pipelined request starts
 * there) when it is complete; returns 0 with *n_used = 0 when more bytes
 * are needed; returns REEL_EFORMAT (400, 417), REEL_ETOOBIG (413, 414,
 * 431) or REEL_EUNSUPPORTED (501, 505) with req->error_status and
 * req->error set when the request is refused. Empty lines before the
 * request line are skipped (RFC 9112, 2.2). Any earlier content of req is
 * reset. Pure: no I/O, no global state.
 */
int reel_http_parse(const char *buf, size_t len, const reel_http_limits *lim,
                    reel_http_req *req, size_t *n_used);

/* The first header with this name (case-insensitive), or NULL. */
const char *reel_http_req_header(const reel_http_req *req, const char *name);
/* The first query argument with this name (case-sensitive), or NULL. */
const char *reel_http_req_arg(const reel_http_req *req, const char *name);
/* The path parameter bound to "{name}", or NULL. */
const char *reel_http_req_param(const reel_http_req *req, const char *name);

/* A response. The handler gets one set to 200, "application/json", empty
 * body and headers. `content_type` is borrowed until the response is sent
 * (a string literal, typically); NULL sends no Content-Type. 204 and 304
 * are sent without a body. */
typedef struct reel_http_resp {
    int status; /* 200..599 */
    const char *content_type;
    reel_buf body;
    reel_buf headers;  /* extra header lines, see reel_http_resp_header() */
    void *reel__owner; /* private: the connection, for reel_http_defer */
    struct reel_http_deferred *reel__deferred; /* private */
} reel_http_resp;

void reel_http_resp_init(reel_http_resp *resp);
void reel_http_resp_free(reel_http_resp *resp);

/* Adds a header line. REEL_EINVAL when the name is not a token, the value
 * holds a control character (no header injection), or the name is one the
 * server writes itself (Content-Length, Content-Type, Connection,
 * Transfer-Encoding, Date). */
int reel_http_resp_header(reel_http_resp *resp, const char *name,
                          const char *value);

/* Makes resp a JSON error: the status, {"error": msg} (msg is escaped),
 * and no extra headers. */
void reel_http_resp_error(reel_http_resp *resp, int status, const char *msg);

/*
 * Checks `Authorization: Bearer <token>` in constant time (for a given
 * token length). Returns 1 when it matches; otherwise makes resp a 401
 * with `WWW-Authenticate: Bearer` and returns 0, so a handler starts with
 *     if (!reel_http_bearer_ok(req, resp, ctx->token)) return 0;
 */
int reel_http_bearer_ok(const reel_http_req *req, reel_http_resp *resp,
                        const char *token);

/* The reason phrase of a status ("Not Found"); "Unknown" when unlisted. */
const char *reel_http_reason(int status);
/* The one table from REEL_E* codes to statuses: FORMAT, INVAL, RANGE ->
 * 400, NOENT -> 404, EXISTS -> 409, TOOBIG -> 413, UNSUPPORTED -> 501,
 * BUSY and UNAVAILABLE -> 503, TIMEOUT -> 504, anything else -> 500. */
int reel_http_status_of(int err);

/*
 * Handlers return 0 when resp holds the answer (or the response was
 * deferred), or a negative REEL_E* code, answered as an error.
 */
typedef int (*reel_http_handler)(const reel_http_req *req, reel_http_resp *resp,
                                 void *ctx);

typedef struct reel_http_deferred reel_http_deferred;

/*
 * Called by a handler on its `resp`: the response will come later, from
 * reel_http_complete() on any thread. The handler then returns 0, and
 * whatever it wrote into resp is ignored. The connection's later requests
 * wait. Never returns NULL.
 */
reel_http_deferred *reel_http_defer(reel_http_resp *resp);

/*
 * Sends the response of a deferred request: moves resp's content into the
 * server (resp is left empty, ready for reuse or reel_http_resp_free) and
 * wakes the loop. Call it exactly once per token; the token is gone after.
 * reel_http_stop() waits for every outstanding token.
 */
void reel_http_complete(reel_http_deferred *d, reel_http_resp *resp);

typedef struct reel_http_server reel_http_server;

/* Checks the options and allocates a stopped server. REEL_EINVAL when an
 * option is out of range (threads above REEL_HTTP_MAX_THREADS,
 * max_header_bytes below 64, a limit above 1 GiB, host NULL). */
int reel_http_new(const reel_http_opts *o, reel_http_server **out);
/* Stops the server if it runs and frees it; NULL is fine. */
void reel_http_free(reel_http_server *s);

/*
 * Adds a route before start. `method` and `pattern` are copied. Patterns
 * start with '/', and "{name}" takes a whole segment. REEL_EINVAL for a bad
 * pattern or method, REEL_EEXISTS when the same method and pattern are
 * there already, REEL_EBUSY once the server has started.
 */
int reel_http_route(reel_http_server *s, const char *method,
                    const char *pattern, reel_http_handler fn, void *ctx);

/*
 * Binds, listens and starts the loops. When a fixed port is already
 * listened on by anyone (another reel included: SO_REUSEPORT would
 * otherwise let two servers share it silently) it returns REEL_EBUSY;
 * other socket failures give REEL_EIO, an unresolvable host REEL_EINVAL,
 * each with the reason in d (may be NULL).
 */
int reel_http_start(reel_http_server *s, reel_diag *d);

/* The bound port (the ephemeral one when opts.port was 0); 0 before
 * start. */
uint16_t reel_http_port(const reel_http_server *s);

/*
 * Graceful stop: closes the listening sockets, closes idle connections
 * (including ones with a request only partly received), lets every
 * request whose handler has run or is deferred finish (responses sent
 * with `Connection: close`; later pipelined requests are not answered),
 * waits for deferred responses, then joins the threads. Connections that
 * stop reading their response are dropped after idle_timeout_ms, and a
 * closing connection drains what the client still sends for at most a
 * second (so the client reads its last response rather than a reset).
 * Does nothing on a server that is not running.
 */
void reel_http_stop(reel_http_server *s);

/*
 * Appends the metrics in the Prometheus text format (0.0.4):
 * reel_http_requests_total{route="GET /v1/x",status="2xx"} (classes seen so
 * far) and the histogram reel_http_request_seconds{route=...} with
 * _bucket{le=...}, _sum and _count lines for every route.
 */
void reel_http_metrics_write(const reel_http_server *s, reel_buf *out);

#endif
