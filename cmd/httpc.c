/*
 * httpc: a blocking HTTP/1.1 client over one keep-alive connection
 * (httpc.h). Sockets are non-blocking underneath so that every wait is a
 * poll() with the request's deadline and the cancel flag in view.
 */
#include "httpc.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/mem.h"

struct reel_httpc {
    reel_httpc_url url;
    char server[REEL_HTTPC_MAX_HOST + 16]; /* host:port, for messages */
    char hosthdr[REEL_HTTPC_MAX_HOST + 16];
    reel_httpc_opts o;
    char *token;
    struct addrinfo *ai;
    int fd; /* -1: not connected */
    unsigned long connects;
    reel_buf req;
    char *in; /* the answer as received */
    size_t in_len, in_cap;
};

reel_httpc_opts reel_httpc_opts_default(void)
{
    return (reel_httpc_opts){
        .timeout_s = 10.0, .max_body = 8u << 20, .token = NULL, .cancel = NULL};
}

/* ------------------------------------------------------------------ URL */

static int host_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_';
}

int reel_httpc_url_parse(const char *url, reel_httpc_url *out, reel_diag *d)
{
    memset(out, 0, sizeof *out);
    if (!url || !*url)
        return reel_diag_fail(d, REEL_EINVAL, "empty server URL");
    const char *p = url;
    const char *sep = strstr(url, "://");
    if (sep) {
        size_t n = (size_t)(sep - url);
        if (n == 5 && !strncasecmp(url, "https", 5))
            return reel_diag_fail(d, REEL_EUNSUPPORTED,
                                  "server URL '%s': https is not supported "
                                  "(reel serve speaks plain HTTP)",
                                  url);
        if (n != 4 || strncasecmp(url, "http", 4))
            return reel_diag_fail(d, REEL_EINVAL,
                                  "server URL '%s': the scheme must be http",
                                  url);
        p = sep + 3;
    }
    const char *h0 = p, *h1;
    if (*p == '[') { /* [IPv6] */
        h0 = ++p;
        while (*p && *p != ']')
            p++;
        if (*p != ']')
            return reel_diag_fail(d, REEL_EINVAL,
                                  "server URL '%s': unclosed '[' in the host",
                                  url);
        h1 = p++;
        for (const char *q = h0; q < h1; q++)
            if (!(host_char(*q) || *q == ':' || *q == '%'))
                return reel_diag_fail(d, REEL_EINVAL,
                                      "server URL '%s': bad IPv6 address", url);
    } else {
        while (*p && *p != ':' && *p != '/') {
            if (*p == '@')
                return reel_diag_fail(d, REEL_EINVAL,
                                      "server URL '%s': credentials in the "
                                      "URL are not supported (use --token)",
                                      url);
            if (!host_char(*p))
                return reel_diag_fail(d, REEL_EINVAL,
                                      "server URL '%s': bad character '%c' "
                                      "in the host",
                                      url, *p);
            p++;
        }
        h1 = p;
    }
    size_t hn = (size_t)(h1 - h0);
    if (!hn)
        return reel_diag_fail(d, REEL_EINVAL, "server URL '%s': no host", url);
    if (hn > REEL_HTTPC_MAX_HOST)
        return reel_diag_fail(d, REEL_EINVAL,
                              "server URL '%s': the host is longer than %d "
                              "bytes",
                              url, REEL_HTTPC_MAX_HOST);
    memcpy(out->host, h0, hn);
    out->host[hn] = '\0';
    snprintf(out->port, sizeof out->port, "80");
    if (*p == ':') {
        p++;
        unsigned long port = 0;
        size_t nd = 0;
        while (*p >= '0' && *p <= '9' && nd < 6) {
            port = port * 10 + (unsigned long)(*p - '0');
            p++;
            nd++;
        }
        if (!nd || port < 1 || port > 65535 || (*p && *p != '/'))
            return reel_diag_fail(d, REEL_EINVAL,
                                  "server URL '%s': the port must be a "
                                  "number in 1..65535",
                                  url);
        snprintf(out->port, sizeof out->port, "%lu", port);
    } else if (*p && *p != '/') {
        return reel_diag_fail(d, REEL_EINVAL, "server URL '%s': bad host", url);
    }
    size_t pn = strlen(p);
    while (pn && p[pn - 1] == '/')
        pn--;
    if (pn > REEL_HTTPC_MAX_PATH)
        return reel_diag_fail(d, REEL_EINVAL,
                              "server URL '%s': the path is too long", url);
    for (size_t i = 0; i < pn; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch <= ' ' || ch >= 0x7f || ch == '?' || ch == '#')
            return reel_diag_fail(d, REEL_EINVAL,
                                  "server URL '%s': the path may not hold "
                                  "a query, a fragment, spaces or control "
                                  "characters",
                                  url);
    }
    memcpy(out->prefix, p, pn);
    out->prefix[pn] = '\0';
    return 0;
}

int reel_httpc_escape(const char *s, size_t len, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        int plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' ||
                    ch == '_' || ch == '~';
        size_t need = plain ? 1 : 3;
        if (n + need >= cap)
            return REEL_ETOOBIG;
        if (plain) {
            out[n++] = (char)ch;
        } else {
            out[n++] = '%';
            out[n++] = hex[ch >> 4];
            out[n++] = hex[ch & 15];
        }
    }
    if (n >= cap)
        return REEL_ETOOBIG;
    out[n] = '\0';
    return 0;
}

/* ------------------------------------------------------------ lifecycle */

int reel_httpc_open(const char *url, const reel_httpc_opts *o, reel_httpc **out,
                    reel_diag *d)
{
    *out = NULL;
    reel_httpc_opts def = reel_httpc_opts_default();
    if (!o)
        o = &def;
    if (!(o->timeout_s > 0) || !o->max_body || o->max_body > ((size_t)1 << 40))
        return reel_diag_fail(d, REEL_EINVAL, "bad HTTP client options");
    if (o->token && (strpbrk(o->token, "\r\n") || strlen(o->token) > 4096))
        return reel_diag_fail(d, REEL_EINVAL,
                              "the token must be one line of at most 4096 "
                              "bytes");
    reel_httpc_url u;
    int rc = reel_httpc_url_parse(url, &u, d);
    if (rc)
        return rc;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_ADDRCONFIG};
    struct addrinfo *ai = NULL;
    int g = getaddrinfo(u.host, u.port, &hints, &ai);
    if (g == EAI_ADDRFAMILY || g == EAI_NONAME || g == EAI_NODATA) {
        /* AI_ADDRCONFIG hides loopback on hosts with no other address. */
        hints.ai_flags = 0;
        g = getaddrinfo(u.host, u.port, &hints, &ai);
    }
    if (g)
        return reel_diag_fail(d, REEL_EUNAVAILABLE,
                              "cannot resolve the server's host '%s': %s",
                              u.host, gai_strerror(g));
    reel_httpc *c = reel_xcalloc(1, sizeof *c);
    c->url = u;
    int v6 = strchr(u.host, ':') != NULL;
    snprintf(c->server, sizeof c->server, "%s%s%s:%s", v6 ? "[" : "", u.host,
             v6 ? "]" : "", u.port);
    if (!strcmp(u.port, "80"))
        snprintf(c->hosthdr, sizeof c->hosthdr, "%s%s%s", v6 ? "[" : "", u.host,
                 v6 ? "]" : "");
    else
        snprintf(c->hosthdr, sizeof c->hosthdr, "%s", c->server);
    c->o = *o;
    c->token = o->token ? reel_xstrndup(o->token, strlen(o->token)) : NULL;
    c->o.token = c->token;
    c->ai = ai;
    c->fd = -1;
    reel_buf_init(&c->req);
    *out = c;
    return 0;
}

static void disconnect(reel_httpc *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

void reel_httpc_close(reel_httpc *c)
{
    if (!c)
        return;
    disconnect(c);
    if (c->ai)
        freeaddrinfo(c->ai);
    free(c->token);
    reel_buf_free(&c->req);
    free(c->in);
    free(c);
}

const char *reel_httpc_server(const reel_httpc *c)
{
    return c->server;
}

unsigned long reel_httpc_connects(const reel_httpc *c)
{
    return c->connects;
}

/* -------------------------------------------------------------- waiting */

/* Waits until fd is ready for `events`, the deadline passes or the cancel
 * flag is set, looking at the flag at least every 100 ms. */
static int wait_fd(reel_httpc *c, int fd, short events, double deadline,
                   const char *what, reel_diag *d)
{
    for (;;) {
        if (c->o.cancel && atomic_load(c->o.cancel))
            return reel_diag_fail(d, REEL_ECANCELED, "%s %s: canceled", what,
                                  c->server);
        double left = deadline - reel_clock_mono();
        if (left <= 0)
            return reel_diag_fail(d, REEL_ETIMEOUT,
                                  "%s %s: no answer within %.3g s", what,
                                  c->server, c->o.timeout_s);
        int ms = left > 0.1 ? 100 : (int)(left * 1000.0) + 1;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, ms);
        if (n < 0 && errno != EINTR)
            return reel_diag_fail(d, REEL_EIO, "%s %s: poll: %s", what,
                                  c->server, strerror(errno));
        if (n > 0)
            return 0;
    }
}

static int connect_one(reel_httpc *c, const struct addrinfo *a, double deadline,
                       reel_diag *d)
{
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    a->ai_protocol);
    if (fd < 0)
        return reel_diag_fail(d, REEL_EIO, "socket: %s", strerror(errno));
    int rc = 0;
    if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
        if (errno != EINPROGRESS) {
            rc =
                reel_diag_fail(d, REEL_EUNAVAILABLE, "cannot connect to %s: %s",
                               c->server, strerror(errno));
            goto fail;
        }
        if ((rc = wait_fd(c, fd, POLLOUT, deadline, "connecting to", d)))
            goto fail;
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err) {
            rc =
                reel_diag_fail(d, REEL_EUNAVAILABLE, "cannot connect to %s: %s",
                               c->server, strerror(err));
            goto fail;
        }
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->connects++;
    return 0;
fail:
    close(fd);
    return rc;
}

static int connect_any(reel_httpc *c, double deadline, reel_diag *d)
{
    int rc = REEL_EUNAVAILABLE;
    for (const struct addrinfo *a = c->ai; a; a = a->ai_next) {
        rc = connect_one(c, a, deadline, d);
        if (!rc || rc == REEL_ECANCELED || rc == REEL_ETIMEOUT)
            return rc;
    }
    return rc;
}

/* A kept connection the server closed while it was idle reads as ready
 * (EOF); so does one with stray bytes. Either cannot carry a request. */
static int stale(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) != 0;
}

/* ------------------------------------------------------------- transfer */

/* REEL_EUNAVAILABLE marks a failure the retry rule may repeat. */
static int send_all(reel_httpc *c, double deadline, reel_diag *d)
{
    size_t off = 0;
    while (off < c->req.len) {
        ssize_t n =
            send(c->fd, c->req.data + off, c->req.len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(c, c->fd, POLLOUT, deadline, "sending to", d);
            if (rc)
                return rc;
            continue;
        }
        return reel_diag_fail(d, REEL_EUNAVAILABLE, "sending to %s: %s",
                              c->server,
                              n < 0 ? strerror(errno) : "connection closed");
    }
    return 0;
}

/* Reads more of the answer into c->in (room for `want` more bytes at
 * least). *eof is set on an orderly close. */
static int recv_more(reel_httpc *c, size_t want, double deadline, int *eof,
                     reel_diag *d)
{
    *eof = 0;
    if (c->in_cap - c->in_len < want + 1)
        REEL_GROW(c->in, c->in_cap, c->in_len + want + 1);
    for (;;) {
        ssize_t n =
            recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len - 1, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            return 0;
        }
        if (n == 0) {
            *eof = 1;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int rc = wait_fd(c, c->fd, POLLIN, deadline, "waiting for", d);
            if (rc)
                return rc;
            continue;
        }
        return reel_diag_fail(d, REEL_EUNAVAILABLE, "reading from %s: %s",
                              c->server, strerror(errno));
    }
}

/* The end of the head ("\r\n\r\n" or "\n\n") in in[0..len), or 0. */
static size_t head_end(const char *in, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (in[i] != '\n')
            continue;
        if (in[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && in[i + 1] == '\r' && in[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

static int token_in(const char *v, size_t n, const char *tok)
{
    size_t tn = strlen(tok);
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t j = i;
        while (j < n && v[j] != ',')
            j++;
        size_t k = j;
        while (k > i && (v[k - 1] == ' ' || v[k - 1] == '\t'))
            k--;
        if (k - i == tn && !strncasecmp(v + i, tok, tn))
            return 1;
        i = j;
    }
    return 0;
}

struct head {
    int status, minor;
    int has_len;
    size_t len;
    int close;
};

/* Parses the status line and the headers in in[0..n). */
static int parse_head(reel_httpc *c, const char *in, size_t n, struct head *h,
                      reel_diag *d)
{
    memset(h, 0, sizeof *h);
    if (n < 12 || memcmp(in, "HTTP/1.", 7) || (in[7] != '0' && in[7] != '1') ||
        in[8] != ' ' || in[9] < '1' || in[9] > '5' || in[10] < '0' ||
        in[10] > '9' || in[11] < '0' || in[11] > '9' ||
        (n > 12 && in[12] != ' ' && in[12] != '\r' && in[12] != '\n'))
        return reel_diag_fail(d, REEL_EFORMAT,
                              "%s answered something that is not HTTP/1.x",
                              c->server);
    h->minor = in[7] - '0';
    h->status = (in[9] - '0') * 100 + (in[10] - '0') * 10 + (in[11] - '0');
    h->close = h->minor == 0; /* 1.0 closes unless it says keep-alive */
    const char *p = memchr(in, '\n', n);
    const char *end = in + n;
    p = p ? p + 1 : end;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        const char *le = eol;
        if (le > p && le[-1] == '\r')
            le--;
        if (le == p)
            break; /* the empty line */
        const char *colon = memchr(p, ':', (size_t)(le - p));
        if (!colon || colon == p)
            return reel_diag_fail(d, REEL_EFORMAT,
                                  "%s answered a malformed header line",
                                  c->server);
        size_t nn = (size_t)(colon - p);
        const char *v = colon + 1;
        while (v < le && (*v == ' ' || *v == '\t'))
            v++;
        size_t vn = (size_t)(le - v);
        while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
            vn--;
        if (nn == 14 && !strncasecmp(p, "Content-Length", 14)) {
            size_t x = 0;
            if (!vn)
                return reel_diag_fail(d, REEL_EFORMAT,
                                      "%s answered an empty Content-Length",
                                      c->server);
            for (size_t i = 0; i < vn; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return reel_diag_fail(d, REEL_EFORMAT,
                                          "%s answered a malformed "
                                          "Content-Length",
                                          c->server);
                if (x > c->o.max_body)
                    break;
                x = x * 10 + (size_t)(v[i] - '0');
            }
            if (x > c->o.max_body)
                return reel_diag_fail(d, REEL_ETOOBIG,
                                      "%s answered a body larger than %zu "
                                      "bytes",
                                      c->server, c->o.max_body);
            if (h->has_len && h->len != x)
                return reel_diag_fail(d, REEL_EFORMAT,
                                      "%s answered two different "
                                      "Content-Lengths",
                                      c->server);
            h->has_len = 1;
            h->len = x;
        } else if (nn == 17 && !strncasecmp(p, "Transfer-Encoding", 17)) {
            if (!(vn == 8 && !strncasecmp(v, "identity", 8)))
                return reel_diag_fail(d, REEL_EUNSUPPORTED,
                                      "%s answered with Transfer-Encoding "
                                      "'%.*s', which this client does not "
                                      "read",
                                      c->server, (int)(vn > 40 ? 40 : vn), v);
        } else if (nn == 10 && !strncasecmp(p, "Connection", 10)) {
            if (token_in(v, vn, "close"))
                h->close = 1;
            else if (token_in(v, vn, "keep-alive"))
                h->close = 0;
        }
        p = eol + 1;
    }
    return 0;
}

/* Reads one answer. *got says whether any byte of it arrived. */
static int read_answer(reel_httpc *c, int head_only, double deadline,
                       reel_httpc_resp *resp, int *got, reel_diag *d)
{
    c->in_len = 0;
    *got = 0;
    struct head h;
    size_t hlen;
    int eof, rc;
    for (;;) { /* skips interim 1xx answers */
        for (;;) {
            hlen = head_end(c->in, c->in_len);
            if (hlen)
                break;
            if (c->in_len >= REEL_HTTPC_MAX_HEAD)
                return reel_diag_fail(d, REEL_ETOOBIG,
                                      "%s answered headers longer than %d "
                                      "bytes",
                                      c->server, REEL_HTTPC_MAX_HEAD);
            if ((rc = recv_more(c, 4096, deadline, &eof, d)))
                return rc;
            if (eof)
                return reel_diag_fail(
                    d, *got ? REEL_EFORMAT : REEL_EUNAVAILABLE,
                    "%s closed the connection %s", c->server,
                    *got ? "in the middle of an answer's headers"
                         : "without answering");
            *got = 1;
        }
        if (hlen > REEL_HTTPC_MAX_HEAD)
            return reel_diag_fail(d, REEL_ETOOBIG,
                                  "%s answered headers longer than %d bytes",
                                  c->server, REEL_HTTPC_MAX_HEAD);
        if ((rc = parse_head(c, c->in, hlen, &h, d)))
            return rc;
        if (h.status >= 200 || h.status == 101)
            break;
        memmove(c->in, c->in + hlen, c->in_len - hlen);
        c->in_len -= hlen;
    }
    if (h.status == 101)
        return reel_diag_fail(d, REEL_EFORMAT,
                              "%s switched protocols, which this client "
                              "does not speak",
                              c->server);
    int no_body = head_only || h.status == 204 || h.status == 304;
    size_t blen = 0;
    if (no_body) {
        blen = 0;
    } else if (h.has_len) {
        blen = h.len;
        while (c->in_len - hlen < blen) {
            if ((rc = recv_more(c, blen - (c->in_len - hlen), deadline, &eof,
                                d)))
                return rc;
            if (eof)
                return reel_diag_fail(d, REEL_EFORMAT,
                                      "%s closed the connection after %zu "
                                      "of %zu body bytes",
                                      c->server, c->in_len - hlen, blen);
        }
    } else {
        /* No length: the body runs to the end of the connection. */
        h.close = 1;
        for (;;) {
            if (c->in_len - hlen > c->o.max_body)
                return reel_diag_fail(d, REEL_ETOOBIG,
                                      "%s answered a body larger than %zu "
                                      "bytes",
                                      c->server, c->o.max_body);
            if ((rc = recv_more(c, 16384, deadline, &eof, d)))
                return rc;
            if (eof)
                break;
        }
        blen = c->in_len - hlen;
    }
    /* Bytes after the answer: nothing was asked for them. */
    if (c->in_len - hlen > blen)
        h.close = 1;
    if (c->in_cap < hlen + blen + 1)
        REEL_GROW(c->in, c->in_cap, hlen + blen + 1);
    c->in[hlen + blen] = '\0';
    resp->status = h.status;
    resp->body = c->in + hlen;
    resp->len = blen;
    if (h.close)
        disconnect(c);
    return 0;
}

int reel_httpc_request(reel_httpc *c, const char *method, const char *path,
                       const char *body, size_t len, reel_httpc_resp *resp,
                       reel_diag *d)
{
    memset(resp, 0, sizeof *resp);
    resp->body = "";
    if (!method || !*method || strpbrk(method, " \r\n") || !path ||
        path[0] != '/' || strpbrk(path, " \r\n") ||
        strlen(path) > REEL_HTTPC_MAX_PATH)
        return reel_diag_fail(d, REEL_EINVAL, "bad request line");
    int head_only = !strcmp(method, "HEAD");
    int idempotent = head_only || !strcmp(method, "GET");
    reel_buf_reset(&c->req);
    reel_buf_printf(&c->req,
                    "%s %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: reel\r\n"
                    "Accept: application/json\r\n",
                    method, c->url.prefix, path, c->hosthdr);
    if (c->token)
        reel_buf_printf(&c->req, "Authorization: Bearer %s\r\n", c->token);
    if (body || !idempotent)
        reel_buf_printf(&c->req,
                        "Content-Type: application/json\r\n"
                        "Content-Length: %zu\r\n",
                        body ? len : 0);
    reel_buf_puts(&c->req, "\r\n");
    if (body && len)
        reel_buf_append(&c->req, body, len);
    double deadline = reel_clock_mono() + c->o.timeout_s;
    for (int attempt = 0;; attempt++) {
        if (c->fd >= 0 && stale(c->fd))
            disconnect(c);
        int reused = c->fd >= 0, got = 0, rc;
        if (!reused && (rc = connect_any(c, deadline, d)))
            return rc;
        rc = send_all(c, deadline, d);
        if (!rc)
            rc = read_answer(c, head_only, deadline, resp, &got, d);
        if (!rc)
            return 0;
        disconnect(c);
        if (!(rc == REEL_EUNAVAILABLE && reused && !got && idempotent &&
              attempt == 0))
            return rc;
    }
}
