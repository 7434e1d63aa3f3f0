/*
 * httpc: a small blocking HTTP/1.1 client for talking to `reel serve` on
 * loopback (used by `reel simulate`).
 *
 * A client holds one keep-alive connection to one server, opened on the
 * first request and again whenever the server closed it (after its idle
 * timeout, a "Connection: close" answer or an error). Requests are sent
 * with a Content-Length body; answers must have one too (or none, for
 * 1xx, 204, 304 and HEAD): a chunked or unbounded answer is refused.
 * Everything read is bounded: the status line and headers together to
 * REEL_HTTPC_MAX_HEAD bytes, the body to opts.max_body bytes. Each request
 * has a deadline (opts.timeout_s from the moment it starts, connecting
 * included) and watches an optional cancel flag at least every 100 ms, so
 * a stopped run never hangs on a silent server.
 *
 * A GET that fails on a reused connection before any byte of the answer
 * arrived (the server closed it while it was idle) is retried once on a
 * new connection; other requests are not, since the server may have
 * acted on them.
 *
 * Errors: REEL_EINVAL a bad URL or argument; REEL_EUNSUPPORTED https or a
 * chunked answer; REEL_EUNAVAILABLE the server cannot be reached or closed
 * the connection; REEL_ETIMEOUT the deadline passed; REEL_EFORMAT a
 * malformed answer; REEL_ETOOBIG an answer beyond the bounds;
 * REEL_ECANCELED the cancel flag was set. Each fills the diag with a
 * sentence naming the server and what went wrong. An HTTP error status
 * (4xx, 5xx) is an answer, not a failure: it is in resp->status.
 *
 * Ownership: the client owns its connection and its answer buffer; the
 * body an answer points into is valid until the next request or
 * reel_httpc_close(). Thread rules: one thread per client; open one
 * client per thread for parallel requests.
 */
#ifndef REEL_CMD_HTTPC_H
#define REEL_CMD_HTTPC_H

#include <stdatomic.h>
#include <stddef.h>

#include "base/err.h"

enum {
    REEL_HTTPC_MAX_HEAD = 16384,
    REEL_HTTPC_MAX_HOST = 255,
    REEL_HTTPC_MAX_PATH = 4096,
};

/* http://HOST[:PORT][/PREFIX], HOST a name, an IPv4 address or [IPv6]. */
typedef struct reel_httpc_url {
    char host[REEL_HTTPC_MAX_HOST + 1];
    char port[8];                         /* "80" when not given */
    char prefix[REEL_HTTPC_MAX_PATH + 1]; /* "" or "/x" (no trailing /) */
} reel_httpc_url;

/* Parses a server URL; REEL_EINVAL (REEL_EUNSUPPORTED for https) with
 * the reason in d. */
int reel_httpc_url_parse(const char *url, reel_httpc_url *out, reel_diag *d);

typedef struct reel_httpc_opts {
    double timeout_s;         /* per request, connecting included (> 0) */
    size_t max_body;          /* largest answer body accepted */
    const char *token;        /* Authorization: Bearer, or NULL */
    const atomic_int *cancel; /* nonzero: stop waiting; NULL: none */
} reel_httpc_opts;

/* 10 s, 8 MiB, no token, no cancel flag. */
reel_httpc_opts reel_httpc_opts_default(void);

typedef struct reel_httpc reel_httpc;

/* A client for `url` (parsed as above; nothing is connected yet). The
 * strings of o are copied. */
int reel_httpc_open(const char *url, const reel_httpc_opts *o, reel_httpc **out,
                    reel_diag *d);
void reel_httpc_close(reel_httpc *c); /* NULL is fine */

/* The URL's host:port as given, for messages. */
const char *reel_httpc_server(const reel_httpc *c);

typedef struct reel_httpc_resp {
    int status;       /* 100..599 */
    const char *body; /* NUL-terminated, borrowed (see above) */
    size_t len;
} reel_httpc_resp;

/* Sends `method` on prefix + path (path starts with '/', already
 * percent-encoded) with body[0..len) (NULL/0: none; a body goes as
 * application/json) and reads the answer into *resp. */
int reel_httpc_request(reel_httpc *c, const char *method, const char *path,
                       const char *body, size_t len, reel_httpc_resp *resp,
                       reel_diag *d);

/* Appends s[0..len) percent-encoded for a path segment (every byte but
 * A-Z a-z 0-9 - . _ ~) to out[0..cap), NUL-terminated; REEL_ETOOBIG when
 * it does not fit. */
int reel_httpc_escape(const char *s, size_t len, char *out, size_t cap);

/* Connections opened so far (1 for a client that kept its connection). */
unsigned long reel_httpc_connects(const reel_httpc *c);

#endif
