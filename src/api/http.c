/*
 * The server: event loops, connections, routing, deferred responses and
 * metrics. See http.h for the contract; the parser is in http_parse.c.
 *
 * A connection's life: bytes are read into the loop's scratch buffer and
 * parsed in place; only a partial request's tail is copied into the
 * connection's own buffer. Requests are answered into the connection's
 * output buffer, which is written at once and, when the socket is full,
 * when epoll says it is writable. A connection that will close drains its
 * input for a moment after the last response (a "lingering close"), so
 * unread request bytes do not make the kernel reset the connection before
 * the client has read that response.
 */
#include "api/http.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/http_impl.h"
#include "base/log.h"
#include "base/mem.h"

enum {
    SCRATCH_BYTES = 64 * 1024,
    READ_CHUNK = 64 * 1024,
    OUT_HIGH = 1024 * 1024, /* stop answering pipelined requests above */
    BUF_KEEP = 64 * 1024,   /* larger idle buffers are released */
    LINGER_MS = 1000,       /* how long a closing connection drains */
    LINGER_BYTES = 1 << 20, /* and how much it reads at most */
    MAX_EVENTS = 128,
    ACCEPT_BURST = 64,
    N_CLASSES = 5, /* 1xx .. 5xx */
};

static const double BUCKETS[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                 0.005,  0.01,    0.025,  0.05,  0.1,
                                 0.25,   0.5,     1,      2.5,   10};
#define N_BUCKETS (sizeof BUCKETS / sizeof *BUCKETS)

/* One route's counters on one loop: written by that loop only, read by
 * reel_http_metrics_write on any thread, hence relaxed atomics. */
typedef struct counters {
    _Atomic uint64_t by_class[N_CLASSES];
    _Atomic uint64_t bucket[N_BUCKETS + 1]; /* not cumulative; last: +Inf */
    _Atomic uint64_t sum_ns;
} counters;

typedef struct route {
    char *method, *pattern, *label;
    char **segs; /* literal segments; NULL where "{name}" */
    char **names;
    uint32_t n_segs;
    reel_http_handler fn;
    void *ctx;
} route;

struct loop;

typedef struct conn {
    int fd;
    struct loop *lp;
    reel_buf in;  /* unparsed bytes (a partial request, or waiting ones) */
    reel_buf out; /* responses not yet written, from out_off */
    size_t out_off;
    size_t need; /* in.len below this cannot hold the next request */
    reel_http_deferred *pending;
    uint64_t since_ms; /* last progress, or start of lingering */
    struct conn *prev, *next;
    uint32_t events;            /* the epoll interest registered */
    size_t discarded;           /* while lingering */
    unsigned fresh : 1;         /* `in` holds bytes not yet parsed */
    unsigned close_after : 1;   /* close once the output is written */
    unsigned peer_eof : 1;      /* the client shut down its side */
    unsigned continue_sent : 1; /* "100 Continue" for the current request */
    unsigned lingering : 1;
    unsigned dead : 1;
} conn;

struct reel_http_deferred {
    struct loop *lp;
    conn *c; /* loop thread only; NULL once the connection is gone */
    reel_http_resp resp;
    uint32_t slot;
    int head, keep_alive;
    double t0;
    reel_http_deferred *next;
};

typedef struct list {
    conn *head, *tail;
} list;

typedef struct loop {
    reel_http_server *srv;
    pthread_t th;
    int epfd, lfd, evfd, spare_fd;
    pthread_mutex_t mu;
    reel_http_deferred *done_head, *done_tail; /* completed, under mu */
    int *handed; /* accepted sockets handed over by other loops, under mu */
    uint32_t n_handed, cap_handed;
    _Atomic uint32_t load; /* n_conns plus sockets handed over, any thread */
    list active;           /* by last progress, oldest first */
    list linger;           /* by start of lingering */
    conn *graveyard;       /* closed during this batch, freed after */
    uint32_t n_conns;
    uint32_t n_deferred; /* outstanding tokens */
    int stopping;
    counters *ctr; /* [n_routes + 2] */
    reel_http_req req;
    reel_http_resp resp;
    char *scratch;
    /* The request being handled, for reel_http_defer. */
    uint32_t cur_slot;
    int cur_head, cur_keep_alive;
    double cur_t0;
    time_t date_sec;
    char date[40];
} loop;

struct reel_http_server {
    reel_http_opts o;
    char *host;
    reel_http_limits lim;
    size_t in_cap;
    route *routes;
    uint32_t n_routes;
    size_t cap_routes;
    loop *loops;
    int n_loops;
    _Atomic uint16_t port;
    int started, running;
    atomic_int stopping;
};

static char TAG_LISTEN, TAG_WAKE;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void bump(_Atomic uint64_t *x, uint64_t by)
{
    atomic_store_explicit(x, atomic_load_explicit(x, memory_order_relaxed) + by,
                          memory_order_relaxed);
}

/* ---- options, responses, helpers ------------------------------------ */

reel_http_opts reel_http_opts_default(void)
{
    return (reel_http_opts){
        .host = "127.0.0.1",
        .port = 0,
        .threads = 0,
        .max_header_bytes = 16 * 1024,
        .max_body_bytes = 8 * 1024 * 1024,
        .idle_timeout_ms = 30000,
        .backlog = 1024,
    };
}

void reel_http_resp_init(reel_http_resp *resp)
{
    resp->status = 200;
    resp->content_type = "application/json";
    reel_buf_init(&resp->body);
    reel_buf_init(&resp->headers);
    resp->reel__owner = NULL;
    resp->reel__deferred = NULL;
}

void reel_http_resp_free(reel_http_resp *resp)
{
    if (!resp)
        return;
    reel_buf_free(&resp->body);
    reel_buf_free(&resp->headers);
}

/* Ready for the next handler, keeping the buffers' memory. */
static void resp_reset(reel_http_resp *resp, conn *owner)
{
    resp->status = 200;
    resp->content_type = "application/json";
    reel_buf_reset(&resp->body);
    reel_buf_reset(&resp->headers);
    resp->reel__owner = owner;
    resp->reel__deferred = NULL;
}

int reel_http_resp_header(reel_http_resp *resp, const char *name,
                          const char *value)
{
    static const char *const reserved[] = {"content-length", "content-type",
                                           "connection", "transfer-encoding",
                                           "date"};
    if (!*name)
        return REEL_EINVAL;
    for (const char *p = name; *p; p++)
        if (!reel__http_is_tchar((unsigned char)*p))
            return REEL_EINVAL;
    for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
        if (strcasecmp(name, reserved[i]) == 0)
            return REEL_EINVAL;
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return REEL_EINVAL;
    reel_buf_printf(&resp->headers, "%s: %s\r\n", name, value);
    return 0;
}

void reel_http_resp_error(reel_http_resp *resp, int status, const char *msg)
{
    assert(status >= 400 && status <= 599);
    resp->status = status;
    resp->content_type = "application/json";
    reel_buf_reset(&resp->body);
    reel_buf_reset(&resp->headers);
    reel_buf_puts(&resp->body, "{\"error\": ");
    reel_buf_json_string(&resp->body, msg, strlen(msg));
    reel_buf_puts(&resp->body, "}\n");
}

int reel_http_bearer_ok(const reel_http_req *req, reel_http_resp *resp,
                        const char *token)
{
    const char *h = reel_http_req_header(req, "authorization");
    size_t tn = strlen(token);
    /* Every byte of the expected token is compared whatever the input, so
     * the time taken says nothing about how much of it matched. */
    volatile unsigned char diff = tn == 0;
    const char *got = "";
    if (h && strncasecmp(h, "bearer ", 7) == 0) {
        got = h + 7;
        while (*got == ' ')
            got++;
    } else {
        diff |= 1;
    }
    size_t gn = strlen(got);
    diff |= gn != tn;
    for (size_t i = 0; i < tn; i++)
        diff |= (unsigned char)token[i] ^ (unsigned char)(i < gn ? got[i] : 0);
    if (!diff)
        return 1;
    reel_http_resp_error(resp, 401, "missing or wrong bearer token");
    reel_buf_puts(&resp->headers, "WWW-Authenticate: Bearer\r\n");
    return 0;
}

/* ---- connections ------------------------------------------------------ */

static void list_push(list *l, conn *c)
{
    c->prev = l->tail;
    c->next = NULL;
    if (l->tail)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
}

static void list_del(list *l, conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        l->tail = c->prev;
    c->prev = c->next = NULL;
}

/* Progress: the idle clock restarts. */
static void touch(conn *c)
{
    if (c->lingering)
        return;
    c->since_ms = now_ms();
    list_del(&c->lp->active, c);
    list_push(&c->lp->active, c);
}

static size_t out_pending(const conn *c)
{
    return c->out.len - c->out_off;
}

static void close_conn(conn *c)
{
    if (c->dead)
        return;
    loop *lp = c->lp;
    c->dead = 1;
    close(c->fd); /* also leaves the epoll set */
    if (c->pending)
        c->pending->c = NULL; /* its completion will find no one */
    list_del(c->lingering ? &lp->linger : &lp->active, c);
    lp->n_conns--;
    atomic_fetch_sub(&lp->load, 1);
    c->next = lp->graveyard;
    lp->graveyard = c;
}

static void set_interest(conn *c)
{
    uint32_t want = 0;
    if (c->lingering) {
        want = EPOLLIN;
    } else {
        if (!c->pending && !c->close_after && !c->peer_eof &&
            c->in.len < c->lp->srv->in_cap && out_pending(c) <= OUT_HIGH)
            want |= EPOLLIN;
        if (out_pending(c))
            want |= EPOLLOUT;
    }
    if (want == c->events)
        return;
    struct epoll_event ev = {.events = want, .data.ptr = c};
    if (epoll_ctl(c->lp->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
        reel_log_warn("http: epoll_ctl: %s", strerror(errno));
        close_conn(c);
        return;
    }
    c->events = want;
}

static void date_header(loop *lp)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed",
                                    "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr",
                                       "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"};
    time_t t = time(NULL);
    if (t == lp->date_sec)
        return;
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(lp->date, sizeof lp->date, "%s, %02d %s %04d %02d:%02d:%02d GMT",
             days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
             tm.tm_hour, tm.tm_min, tm.tm_sec);
    lp->date_sec = t;
}

static void count(loop *lp, uint32_t slot, int status, double t0)
{
    counters *k = &lp->ctr[slot];
    bump(&k->by_class[status / 100 - 1], 1);
    double dt = now_s() - t0;
    if (dt < 0)
        dt = 0;
    size_t b = 0;
    while (b < N_BUCKETS && dt > BUCKETS[b])
        b++;
    bump(&k->bucket[b], 1);
    bump(&k->sum_ns, (uint64_t)(dt * 1e9));
}

/* Serialises a response into the connection's output. */
static void queue_resp(conn *c, const reel_http_resp *resp, uint32_t slot,
                       double t0, int head, int keep_alive)
{
    loop *lp = c->lp;
    assert(resp->status >= 200 && resp->status <= 599);
    if (!keep_alive || lp->stopping)
        c->close_after = 1;
    int no_body = resp->status == 204 || resp->status == 304;
    date_header(lp);
    reel_buf *o = &c->out;
    reel_buf_printf(o, "HTTP/1.1 %d %s\r\nDate: %s\r\n", resp->status,
                    reel_http_reason(resp->status), lp->date);
    if (!no_body && resp->content_type)
        reel_buf_printf(o, "Content-Type: %s\r\n", resp->content_type);
    if (!no_body)
        reel_buf_printf(o, "Content-Length: %zu\r\n", resp->body.len);
    if (c->close_after)
        reel_buf_puts(o, "Connection: close\r\n");
    reel_buf_append(o, resp->headers.data, resp->headers.len);
    reel_buf_puts(o, "\r\n");
    if (!head && !no_body)
        reel_buf_append(o, resp->body.data, resp->body.len);
    count(lp, slot, resp->status, t0);
}

static uint32_t slot_unmatched(const reel_http_server *s)
{
    return s->n_routes;
}

static uint32_t slot_invalid(const reel_http_server *s)
{
    return s->n_routes + 1;
}

/* An error answered by the server itself; the connection closes after. */
static void queue_error(conn *c, int status, const char *msg)
{
    loop *lp = c->lp;
    resp_reset(&lp->resp, NULL);
    reel_http_resp_error(&lp->resp, status, msg);
    queue_resp(c, &lp->resp, slot_invalid(lp->srv), now_s(), 0, 0);
}

/* ---- routing ---------------------------------------------------------- */

/* Matches a path against a route; binds parameters into req when it is
 * not NULL. */
static int match(const route *r, const char *path, reel_http_req *req)
{
    if (path[0] != '/')
        return 0;
    const char *p = path + 1;
    for (uint32_t i = 0; i < r->n_segs; i++) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (r->segs[i]) {
            if (strlen(r->segs[i]) != n || memcmp(r->segs[i], p, n) != 0)
                return 0;
        } else if (n == 0) {
            return 0;
        }
        if (i + 1 < r->n_segs) {
            if (!e)
                return 0;
            p = e + 1;
        } else if (e) {
            return 0;
        }
    }
    if (!req)
        return 1;
    req->params = reel_arena_alloc(
        req->arena, (r->n_segs ? r->n_segs : 1) * sizeof *req->params,
        _Alignof(reel_http_kv));
    req->n_params = 0;
    p = path + 1;
    for (uint32_t i = 0; i < r->n_segs; i++) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (!r->segs[i]) {
            reel_http_kv *kv = &req->params[req->n_params++];
            kv->name = r->names[i];
            /* The parser has checked the path's escapes. */
            int rc = reel__http_decode(req->arena, p, n, 0, &kv->value);
            assert(rc == 0);
            (void)rc;
        }
        p = e ? e + 1 : p + n;
    }
    return 1;
}

static const route *find_route(const reel_http_server *s, const char *method,
                               const char *path)
{
    for (uint32_t i = 0; i < s->n_routes; i++)
        if (strcmp(s->routes[i].method, method) == 0 &&
            match(&s->routes[i], path, NULL))
            return &s->routes[i];
    return NULL;
}

/* Answers 405 with the methods the path has, or 404 when it has none. */
static void not_routed(conn *c, const reel_http_req *req, double t0)
{
    loop *lp = c->lp;
    reel_http_server *s = lp->srv;
    reel_http_resp *resp = &lp->resp;
    resp_reset(resp, NULL);
    reel_buf allow = REEL_BUF_INIT;
    int has_get = 0, has_head = 0;
    for (uint32_t i = 0; i < s->n_routes; i++) {
        const route *r = &s->routes[i];
        if (!match(r, req->path, NULL))
            continue;
        int seen = 0; /* methods repeat when patterns overlap */
        for (uint32_t j = 0; j < i && !seen; j++)
            seen = strcmp(s->routes[j].method, r->method) == 0 &&
                   match(&s->routes[j], req->path, NULL);
        if (seen)
            continue;
        has_get |= strcmp(r->method, "GET") == 0;
        has_head |= strcmp(r->method, "HEAD") == 0;
        reel_buf_printf(&allow, "%s%s", allow.len ? ", " : "", r->method);
    }
    if (has_get && !has_head)
        reel_buf_puts(&allow, ", HEAD");
    if (allow.len) {
        reel_http_resp_error(resp, 405, "method not allowed");
        reel_buf_printf(&resp->headers, "Allow: %s\r\n", allow.data);
    } else {
        reel_http_resp_error(resp, 404, "not found");
    }
    reel_buf_free(&allow);
    queue_resp(c, resp, slot_unmatched(s), t0, strcmp(req->method, "HEAD") == 0,
               req->keep_alive);
}

static void dispatch(conn *c, reel_http_req *req)
{
    loop *lp = c->lp;
    reel_http_server *s = lp->srv;
    double t0 = now_s();
    int head = strcmp(req->method, "HEAD") == 0;
    const route *r = find_route(s, req->method, req->path);
    if (!r && head)
        r = find_route(s, "GET", req->path);
    if (!r) {
        not_routed(c, req, t0);
        return;
    }
    match(r, req->path, req);
    reel_http_resp *resp = &lp->resp;
    resp_reset(resp, c);
    lp->cur_slot = (uint32_t)(r - s->routes);
    lp->cur_head = head;
    lp->cur_keep_alive = req->keep_alive;
    lp->cur_t0 = t0;
    int rc = r->fn(req, resp, r->ctx);
    if (resp->reel__deferred) {
        assert(rc == 0 && "a handler that defers returns 0");
        c->pending = resp->reel__deferred;
        resp->reel__owner = NULL;
        return;
    }
    resp->reel__owner = NULL;
    assert(rc <= 0);
    if (rc < 0)
        reel_http_resp_error(resp, reel_http_status_of(rc), reel_strerror(rc));
    queue_resp(c, resp, lp->cur_slot, t0, head, req->keep_alive);
}

/* ---- the request cycle ------------------------------------------------ */

static int ready(const conn *c)
{
    return !c->dead && !c->pending && !c->close_after && !c->lingering &&
           out_pending(c) <= OUT_HIGH;
}

/* Parses and answers the requests in buf[0..len) while the connection
 * may; returns the bytes consumed. */
static size_t process(conn *c, const char *buf, size_t len)
{
    loop *lp = c->lp;
    size_t off = 0;
    c->need = 0;
    while (off < len) {
        if (!ready(c)) {
            c->fresh = 1; /* what is left waits for the connection */
            break;
        }
        size_t used;
        int rc = reel_http_parse(buf + off, len - off, &lp->srv->lim, &lp->req,
                                 &used);
        if (rc < 0) {
            queue_error(c, lp->req.error_status, lp->req.error);
            off = len;
            break;
        }
        if (used == 0) {
            if (lp->req.need_len)
                c->need = lp->req.need_len;
            if (lp->req.head_len && lp->req.expect_continue &&
                lp->req.minor == 1 && !c->continue_sent) {
                reel_buf_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
                c->continue_sent = 1;
            }
            break;
        }
        off += used;
        c->continue_sent = 0;
        dispatch(c, &lp->req);
    }
    return off;
}

static void consume(conn *c, size_t used)
{
    if (used == 0)
        return;
    if (used >= c->in.len) {
        if (c->in.cap > BUF_KEEP)
            reel_buf_free(&c->in);
        else
            reel_buf_reset(&c->in);
        c->need = 0;
        return;
    }
    memmove(c->in.data, c->in.data + used, c->in.len - used);
    c->in.len -= used;
    c->in.data[c->in.len] = '\0';
}

static void start_linger(conn *c)
{
    loop *lp = c->lp;
    if (c->peer_eof || shutdown(c->fd, SHUT_WR) < 0) {
        close_conn(c);
        return;
    }
    list_del(&lp->active, c);
    c->lingering = 1;
    c->since_ms = now_ms();
    list_push(&lp->linger, c);
    reel_buf_free(&c->in);
    reel_buf_free(&c->out);
    c->out_off = 0;
}

/* Writes what it can; 0, or -1 when the connection was closed. */
static int flush(conn *c)
{
    while (out_pending(c)) {
        ssize_t n =
            send(c->fd, c->out.data + c->out_off, out_pending(c), MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            touch(c);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        } else {
            close_conn(c);
            return -1;
        }
    }
    if (c->out.cap > BUF_KEEP)
        reel_buf_free(&c->out);
    else
        reel_buf_reset(&c->out);
    c->out_off = 0;
    return 0;
}

/* Answers what is buffered, writes, and decides the connection's fate. */
static void pump(conn *c)
{
    for (;;) {
        if (c->dead)
            return;
        if (c->fresh && ready(c) && c->in.len >= c->need) {
            c->fresh = 0;
            consume(c, process(c, c->in.data, c->in.len));
        }
        if (flush(c) < 0)
            return;
        /* Pipelined requests held back by a full output go on now. */
        if (!(c->fresh && ready(c) && c->in.len >= c->need))
            break;
    }
    if (!out_pending(c) && !c->pending && !c->lingering) {
        if (c->close_after) {
            start_linger(c);
        } else if (c->peer_eof) {
            close_conn(c);
            return;
        }
    }
    if (!c->dead)
        set_interest(c);
}

static void on_linger_read(conn *c)
{
    char *scratch = c->lp->scratch;
    for (;;) {
        ssize_t n = recv(c->fd, scratch, SCRATCH_BYTES, 0);
        if (n > 0) {
            c->discarded += (size_t)n;
            if (c->discarded > LINGER_BYTES) {
                close_conn(c);
                return;
            }
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        close_conn(c); /* end of stream or error */
        return;
    }
}

static void on_read(conn *c)
{
    loop *lp = c->lp;
    if (c->lingering) {
        on_linger_read(c);
        return;
    }
    ssize_t n;
    if (c->in.len == 0) {
        /* The common case: parse straight from the loop's scratch. */
        n = recv(c->fd, lp->scratch, SCRATCH_BYTES, 0);
        if (n > 0) {
            touch(c);
            size_t used = ready(c) ? process(c, lp->scratch, (size_t)n) : 0;
            if (used < (size_t)n) {
                reel_buf_append(&c->in, lp->scratch + used, (size_t)n - used);
                if (!ready(c))
                    c->fresh = 1;
            }
        }
    } else {
        if (c->in.len >= lp->srv->in_cap) {
            pump(c); /* full: the parser refuses it or a response waits */
            return;
        }
        size_t room = lp->srv->in_cap - c->in.len;
        reel_buf_reserve(&c->in, room < READ_CHUNK ? room : READ_CHUNK);
        room = c->in.cap - c->in.len - 1;
        if (room > lp->srv->in_cap - c->in.len)
            room = lp->srv->in_cap - c->in.len;
        n = recv(c->fd, c->in.data + c->in.len, room, 0);
        if (n > 0) {
            touch(c);
            c->in.len += (size_t)n;
            c->in.data[c->in.len] = '\0';
            c->fresh = 1;
        }
    }
    if (n == 0) {
        c->peer_eof = 1;
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
               errno != EINTR) {
        close_conn(c);
        return;
    }
    pump(c);
}

static void on_conn_event(conn *c, uint32_t events)
{
    if (c->dead)
        return;
    /* A hang-up means both directions are shut: nothing we could still
     * send would arrive (and a level-triggered HUP would spin while a
     * response is deferred). */
    if (events & (EPOLLERR | EPOLLHUP)) {
        close_conn(c);
        return;
    }
    if (events & EPOLLIN)
        on_read(c);
    else if (events & EPOLLOUT)
        pump(c);
}

/* Starts serving an accepted socket on lp (lp's thread). */
static void adopt(loop *lp, int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn *c = reel_xcalloc(1, sizeof *c);
    c->fd = fd;
    c->lp = lp;
    c->events = EPOLLIN;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(lp->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        reel_log_warn("http: epoll_ctl: %s", strerror(errno));
        close(fd);
        free(c);
        atomic_fetch_sub(&lp->load, 1);
        return;
    }
    lp->n_conns++;
    c->since_ms = now_ms();
    list_push(&lp->active, c);
}

/*
 * The loop a new connection goes to: the one with the fewest, the
 * accepting loop on a tie. The kernel spreads SO_REUSEPORT connections by
 * a hash of their addresses, which can put 4 of 4 on one loop and leave a
 * core idle; handing over evens it out. Counts the connection in its load.
 */
static loop *pick_loop(loop *lp)
{
    reel_http_server *s = lp->srv;
    loop *best = lp;
    uint32_t least = atomic_load(&lp->load);
    for (int i = 0; i < s->n_loops; i++) {
        loop *o = &s->loops[i];
        uint32_t n = atomic_load(&o->load);
        if (n < least && !atomic_load(&s->stopping)) {
            best = o;
            least = n;
        }
    }
    atomic_fetch_add(&best->load, 1);
    return best;
}

/* Hands an accepted socket to another loop's thread (see on_wake). */
static void hand_over(loop *to, int fd)
{
    pthread_mutex_lock(&to->mu);
    if (to->n_handed == to->cap_handed) {
        to->cap_handed = to->cap_handed ? 2 * to->cap_handed : 8;
        to->handed =
            reel_xrealloc(to->handed, to->cap_handed * sizeof *to->handed);
    }
    to->handed[to->n_handed++] = fd;
    pthread_mutex_unlock(&to->mu);
    uint64_t one = 1;
    while (write(to->evfd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

static void on_accept(loop *lp)
{
    /* A stop earlier in the same epoll batch closed the listener. */
    if (lp->lfd < 0)
        return;
    for (int i = 0; i < ACCEPT_BURST; i++) {
        int fd = accept4(lp->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if ((errno == EMFILE || errno == ENFILE) && lp->spare_fd >= 0) {
                /* Out of descriptors: take the connection with the spare
                 * one and drop it, rather than spin on a ready listener. */
                reel_log_warn("http: out of file descriptors, dropping a "
                              "connection");
                close(lp->spare_fd);
                int x = accept(lp->lfd, NULL, NULL);
                if (x >= 0)
                    close(x);
                lp->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                reel_log_warn("http: accept: %s", strerror(errno));
            return;
        }
        loop *to = pick_loop(lp);
        if (to == lp)
            adopt(lp, fd);
        else
            hand_over(to, fd);
    }
}

static void finish_deferred(reel_http_deferred *d)
{
    loop *lp = d->lp;
    lp->n_deferred--;
    conn *c = d->c;
    if (c && !c->dead) {
        c->pending = NULL;
        queue_resp(c, &d->resp, d->slot, d->t0, d->head, d->keep_alive);
        touch(c);
        pump(c);
    }
    reel_http_resp_free(&d->resp);
    free(d);
}

static void begin_stop(loop *lp)
{
    lp->stopping = 1;
    epoll_ctl(lp->epfd, EPOLL_CTL_DEL, lp->lfd, NULL);
    close(lp->lfd);
    lp->lfd = -1;
    conn *next;
    for (conn *c = lp->active.head; c; c = next) {
        next = c->next;
        if (!c->pending && !out_pending(c)) {
            close_conn(c);
        } else {
            c->close_after = 1;
            set_interest(c);
        }
    }
}

static void on_wake(loop *lp)
{
    uint64_t v;
    while (read(lp->evfd, &v, sizeof v) < 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&lp->mu);
    reel_http_deferred *d = lp->done_head;
    lp->done_head = lp->done_tail = NULL;
    int handed[64];
    uint32_t n_handed = lp->n_handed < 64 ? lp->n_handed : 64;
    if (n_handed > 0) {
        memcpy(handed, lp->handed + lp->n_handed - n_handed,
               n_handed * sizeof *handed);
        lp->n_handed -= n_handed;
    }
    int more = lp->n_handed > 0;
    pthread_mutex_unlock(&lp->mu);
    if (more) { /* the rest on the next turn of the loop */
        uint64_t one = 1;
        while (write(lp->evfd, &one, sizeof one) < 0 && errno == EINTR)
            ;
    }
    for (uint32_t i = 0; i < n_handed; i++) {
        if (lp->stopping) {
            close(handed[i]);
            atomic_fetch_sub(&lp->load, 1);
        } else {
            adopt(lp, handed[i]);
        }
    }
    while (d) {
        reel_http_deferred *next = d->next;
        finish_deferred(d);
        d = next;
    }
    if (!lp->stopping && atomic_load(&lp->srv->stopping))
        begin_stop(lp);
}

/* Connections idle past the timeout: 408 when a request was under way. */
static void expire(loop *lp)
{
    uint64_t now = now_ms();
    uint32_t idle = lp->srv->o.idle_timeout_ms;
    while (idle && lp->active.head && lp->active.head->since_ms + idle <= now) {
        conn *c = lp->active.head;
        if (c->pending) {
            touch(c); /* waiting for us, not for the client */
            continue;
        }
        if (c->in.len && !out_pending(c)) {
            queue_error(c, 408, "request timeout");
            touch(c);
            pump(c);
        } else {
            close_conn(c);
        }
    }
    while (lp->linger.head && lp->linger.head->since_ms + LINGER_MS <= now)
        close_conn(lp->linger.head);
}

static int next_timeout(const loop *lp)
{
    uint64_t now = now_ms(), due = UINT64_MAX;
    uint32_t idle = lp->srv->o.idle_timeout_ms;
    if (idle && lp->active.head)
        due = lp->active.head->since_ms + idle;
    if (lp->linger.head && lp->linger.head->since_ms + LINGER_MS < due)
        due = lp->linger.head->since_ms + LINGER_MS;
    if (due == UINT64_MAX)
        return -1;
    return due <= now ? 0
                      : (int)(due - now < INT32_MAX ? due - now : INT32_MAX);
}

static void reap(loop *lp)
{
    while (lp->graveyard) {
        conn *c = lp->graveyard;
        lp->graveyard = c->next;
        reel_buf_free(&c->in);
        reel_buf_free(&c->out);
        free(c);
    }
}

static void *loop_main(void *arg)
{
    loop *lp = arg;
    struct epoll_event evs[MAX_EVENTS];
    while (!(lp->stopping && lp->n_conns == 0 && lp->n_deferred == 0)) {
        int n = epoll_wait(lp->epfd, evs, MAX_EVENTS, next_timeout(lp));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            reel_log_error("http: epoll_wait: %s", strerror(errno));
            abort();
        }
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &TAG_LISTEN)
                on_accept(lp);
            else if (p == &TAG_WAKE)
                on_wake(lp);
            else
                on_conn_event(p, evs[i].events);
        }
        expire(lp);
        reap(lp);
    }
    return NULL;
}

/* ---- deferred responses ------------------------------------------------ */

reel_http_deferred *reel_http_defer(reel_http_resp *resp)
{
    conn *c = resp->reel__owner;
    assert(c && !resp->reel__deferred &&
           "reel_http_defer takes the handler's own resp, once");
    loop *lp = c->lp;
    reel_http_deferred *d = reel_xcalloc(1, sizeof *d);
    d->lp = lp;
    d->c = c;
    d->slot = lp->cur_slot;
    d->head = lp->cur_head;
    d->keep_alive = lp->cur_keep_alive;
    d->t0 = lp->cur_t0;
    reel_http_resp_init(&d->resp);
    lp->n_deferred++;
    resp->reel__deferred = d;
    return d;
}

void reel_http_complete(reel_http_deferred *d, reel_http_resp *resp)
{
    assert(d && resp);
    d->resp.status = resp->status;
    d->resp.content_type = resp->content_type;
    d->resp.body = resp->body;
    d->resp.headers = resp->headers;
    reel_http_resp_init(resp);
    loop *lp = d->lp;
    d->next = NULL;
    /* The wake-up is written under the lock: once the loop has taken this
     * token it may finish, and reel_http_stop close the eventfd, so the
     * write must be over by then. The loop drains the whole list after
     * each wake-up, so only the first token of a batch needs one. */
    pthread_mutex_lock(&lp->mu);
    int wake = lp->done_head == NULL;
    if (lp->done_tail)
        lp->done_tail->next = d;
    else
        lp->done_head = d;
    lp->done_tail = d;
    if (wake) {
        uint64_t one = 1;
        while (write(lp->evfd, &one, sizeof one) < 0 && errno == EINTR)
            ;
    }
    pthread_mutex_unlock(&lp->mu);
}

/* ---- the server ------------------------------------------------------- */

int reel_http_new(const reel_http_opts *o, reel_http_server **out)
{
    *out = NULL;
    const size_t gib = (size_t)1 << 30;
    if (!o->host || o->threads < 0 || o->threads > REEL_HTTP_MAX_THREADS ||
        o->max_header_bytes < 64 || o->max_header_bytes > gib ||
        o->max_body_bytes > gib || o->backlog < 0)
        return REEL_EINVAL;
    reel_http_server *s = reel_xcalloc(1, sizeof *s);
    s->o = *o;
    s->host = reel_xstrndup(o->host, strlen(o->host));
    s->o.host = s->host;
    s->lim.max_header_bytes = o->max_header_bytes;
    s->lim.max_body_bytes = o->max_body_bytes;
    /* The most one request can take on the wire: its head, and a chunked
     * body with its framing (http.h, "Bounds"). */
    s->in_cap = 2 * (o->max_header_bytes + o->max_body_bytes) + 1024;
    if (s->o.backlog == 0)
        s->o.backlog = 1024;
    *out = s;
    return 0;
}

static int valid_method(const char *m)
{
    if (!*m || strlen(m) > 32)
        return 0;
    for (; *m; m++)
        if (!reel__http_is_tchar((unsigned char)*m))
            return 0;
    return 1;
}

int reel_http_route(reel_http_server *s, const char *method,
                    const char *pattern, reel_http_handler fn, void *ctx)
{
    if (s->started)
        return REEL_EBUSY;
    if (!fn || !valid_method(method) || pattern[0] != '/')
        return REEL_EINVAL;
    for (const char *p = pattern; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
            *p == '?' || *p == '#')
            return REEL_EINVAL;
    for (uint32_t i = 0; i < s->n_routes; i++)
        if (strcmp(s->routes[i].method, method) == 0 &&
            strcmp(s->routes[i].pattern, pattern) == 0)
            return REEL_EEXISTS;
    uint32_t n_segs = 1;
    for (const char *p = pattern + 1; *p; p++)
        n_segs += *p == '/';
    route r = {
        .method = reel_xstrndup(method, strlen(method)),
        .pattern = reel_xstrndup(pattern, strlen(pattern)),
        .segs = reel_xcalloc(n_segs, sizeof *r.segs),
        .names = reel_xcalloc(n_segs, sizeof *r.names),
        .n_segs = n_segs,
        .fn = fn,
        .ctx = ctx,
    };
    const char *p = pattern + 1;
    for (uint32_t i = 0; i < n_segs; i++) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        const char *open = memchr(p, '{', n), *close = memchr(p, '}', n);
        if (n >= 3 && p[0] == '{' && p[n - 1] == '}' && open == p &&
            close == p + n - 1) {
            r.names[i] = reel_xstrndup(p + 1, n - 2);
        } else if (open || close) {
            goto bad;
        } else {
            r.segs[i] = reel_xstrndup(p, n);
        }
        p = e ? e + 1 : p + n;
    }
    size_t ln = strlen(method) + strlen(pattern) + 2;
    r.label = reel_xmalloc(ln);
    snprintf(r.label, ln, "%s %s", method, pattern);
    REEL_GROW(s->routes, s->cap_routes, s->n_routes + 1);
    s->routes[s->n_routes++] = r;
    return 0;
bad:
    for (uint32_t i = 0; i < n_segs; i++) {
        free(r.segs[i]);
        free(r.names[i]);
    }
    free(r.segs);
    free(r.names);
    free(r.method);
    free(r.pattern);
    return REEL_EINVAL;
}

static int cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static int listen_socket(const struct addrinfo *ai, uint16_t port, int backlog,
                         reel_diag *d, int *out)
{
    struct sockaddr_storage sa;
    memcpy(&sa, ai->ai_addr, ai->ai_addrlen);
    if (sa.ss_family == AF_INET)
        ((struct sockaddr_in *)&sa)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)&sa)->sin6_port = htons(port);
    int fd =
        socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&sa, ai->ai_addrlen) < 0 ||
        listen(fd, backlog) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return reel_diag_fail(d, e == EADDRINUSE ? REEL_EBUSY : REEL_EIO,
                              "listen on port %u: %s", port, strerror(e));
    }
    *out = fd;
    return 0;
}

/* Refuses a fixed port that is listened on already: a socket without
 * SO_REUSEPORT cannot bind where anybody listens. */
static int probe_port(const struct addrinfo *ai, const char *host,
                      uint16_t port, reel_diag *d)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return reel_diag_fail(d, REEL_EIO, "socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc = 0;
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        int e = errno;
        rc = reel_diag_fail(d, e == EADDRINUSE ? REEL_EBUSY : REEL_EIO,
                            "%s:%u: %s", host, port, strerror(e));
    }
    close(fd);
    return rc;
}

static void loop_release(loop *lp)
{
    if (lp->lfd >= 0)
        close(lp->lfd);
    if (lp->evfd >= 0)
        close(lp->evfd);
    if (lp->epfd >= 0)
        close(lp->epfd);
    if (lp->spare_fd >= 0)
        close(lp->spare_fd);
    lp->lfd = lp->evfd = lp->epfd = lp->spare_fd = -1;
    for (uint32_t i = 0; i < lp->n_handed; i++) /* arrived after the stop */
        close(lp->handed[i]);
    free(lp->handed);
    lp->handed = NULL;
    lp->n_handed = lp->cap_handed = 0;
    reel_http_req_free(&lp->req);
    reel_http_resp_free(&lp->resp);
    free(lp->scratch);
    lp->scratch = NULL;
    pthread_mutex_destroy(&lp->mu);
}

static int loop_setup(loop *lp, int lfd, reel_diag *d)
{
    lp->lfd = lfd;
    lp->epfd = epoll_create1(EPOLL_CLOEXEC);
    lp->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    lp->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    struct epoll_event el = {.events = EPOLLIN, .data.ptr = &TAG_LISTEN};
    struct epoll_event ew = {.events = EPOLLIN, .data.ptr = &TAG_WAKE};
    if (lp->epfd < 0 || lp->evfd < 0 ||
        epoll_ctl(lp->epfd, EPOLL_CTL_ADD, lfd, &el) < 0 ||
        epoll_ctl(lp->epfd, EPOLL_CTL_ADD, lp->evfd, &ew) < 0)
        return reel_diag_fail(d, REEL_EIO, "epoll: %s", strerror(errno));
    return 0;
}

int reel_http_start(reel_http_server *s, reel_diag *d)
{
    assert(!s->started && "a server starts once");
    s->started = 1;
    int n = s->o.threads ? s->o.threads : cpu_count();
    if (n > REEL_HTTP_MAX_THREADS)
        n = REEL_HTTP_MAX_THREADS;
    size_t n_slots = s->n_routes + 2;
    s->loops = reel_xcalloc((size_t)n, sizeof *s->loops);
    for (int i = 0; i < n; i++) {
        loop *lp = &s->loops[i];
        lp->srv = s;
        lp->lfd = lp->evfd = lp->epfd = lp->spare_fd = -1;
        pthread_mutex_init(&lp->mu, NULL);
        lp->ctr = reel_xcalloc(n_slots, sizeof *lp->ctr);
        reel_http_req_init(&lp->req);
        reel_http_resp_init(&lp->resp);
        lp->scratch = reel_xmalloc(SCRATCH_BYTES);
    }
    s->n_loops = n;

    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char port_str[8];
    snprintf(port_str, sizeof port_str, "%u", s->o.port);
    int rc = 0;
    int gai = getaddrinfo(s->host, port_str, &hints, &ai);
    if (gai != 0) {
        ai = NULL;
        rc = reel_diag_fail(d, REEL_EINVAL, "%s: %s", s->host,
                            gai_strerror(gai));
        goto fail;
    }
    if (s->o.port && (rc = probe_port(ai, s->host, s->o.port, d)) < 0)
        goto fail;
    uint16_t port = s->o.port;
    for (int i = 0; i < n; i++) {
        int lfd = -1;
        if ((rc = listen_socket(ai, port, s->o.backlog, d, &lfd)) < 0)
            goto fail;
        if (i == 0) {
            struct sockaddr_storage sa;
            socklen_t sl = sizeof sa;
            getsockname(lfd, (struct sockaddr *)&sa, &sl);
            port = ntohs(sa.ss_family == AF_INET
                             ? ((struct sockaddr_in *)&sa)->sin_port
                             : ((struct sockaddr_in6 *)&sa)->sin6_port);
        }
        if ((rc = loop_setup(&s->loops[i], lfd, d)) < 0)
            goto fail;
    }
    freeaddrinfo(ai);
    ai = NULL;

    /* Loop threads take no signals: they belong to the controlling one. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int started = 0;
    for (; started < n; started++)
        if (pthread_create(&s->loops[started].th, NULL, loop_main,
                           &s->loops[started]) != 0)
            break;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (started < n) {
        rc = reel_diag_fail(d, REEL_EIO, "cannot start %d threads", n);
        atomic_store(&s->stopping, 1);
        for (int i = 0; i < started; i++) {
            uint64_t one = 1;
            if (write(s->loops[i].evfd, &one, sizeof one) < 0)
                abort();
            pthread_join(s->loops[i].th, NULL);
        }
        goto fail;
    }
    atomic_store(&s->port, port);
    s->running = 1;
    reel_log_info("http: listening on %s:%u with %d threads", s->host, port, n);
    return 0;
fail:
    if (ai)
        freeaddrinfo(ai);
    for (int i = 0; i < n; i++)
        loop_release(&s->loops[i]);
    return rc;
}

uint16_t reel_http_port(const reel_http_server *s)
{
    return atomic_load(&s->port);
}

void reel_http_stop(reel_http_server *s)
{
    if (!s || !s->running)
        return;
    atomic_store(&s->stopping, 1);
    for (int i = 0; i < s->n_loops; i++) {
        uint64_t one = 1;
        while (write(s->loops[i].evfd, &one, sizeof one) < 0 && errno == EINTR)
            ;
    }
    for (int i = 0; i < s->n_loops; i++) {
        assert(!pthread_equal(pthread_self(), s->loops[i].th) &&
               "reel_http_stop from a handler");
        pthread_join(s->loops[i].th, NULL);
    }
    for (int i = 0; i < s->n_loops; i++)
        loop_release(&s->loops[i]);
    s->running = 0;
}

void reel_http_free(reel_http_server *s)
{
    if (!s)
        return;
    reel_http_stop(s);
    for (int i = 0; i < s->n_loops; i++)
        free(s->loops[i].ctr);
    free(s->loops);
    for (uint32_t i = 0; i < s->n_routes; i++) {
        route *r = &s->routes[i];
        for (uint32_t j = 0; j < r->n_segs; j++) {
            free(r->segs[j]);
            free(r->names[j]);
        }
        free(r->segs);
        free(r->names);
        free(r->method);
        free(r->pattern);
        free(r->label);
    }
    free(s->routes);
    free(s->host);
    free(s);
}

/* ---- metrics ---------------------------------------------------------- */

static void label(reel_buf *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            reel_buf_putc(out, '\\');
        if (*s == '\n') {
            reel_buf_puts(out, "\\n");
            continue;
        }
        reel_buf_putc(out, *s);
    }
}

/* One route's counters summed over the loops. */
typedef struct totals {
    uint64_t by_class[N_CLASSES];
    uint64_t bucket[N_BUCKETS + 1];
    uint64_t sum_ns, count;
} totals;

static void sum_slot(const reel_http_server *s, uint32_t slot, totals *t)
{
    memset(t, 0, sizeof *t);
    for (int i = 0; s->loops && i < s->n_loops; i++) {
        const counters *k = &s->loops[i].ctr[slot];
        for (int c = 0; c < N_CLASSES; c++)
            t->by_class[c] +=
                atomic_load_explicit(&k->by_class[c], memory_order_relaxed);
        for (size_t b = 0; b <= N_BUCKETS; b++)
            t->bucket[b] +=
                atomic_load_explicit(&k->bucket[b], memory_order_relaxed);
        t->sum_ns += atomic_load_explicit(&k->sum_ns, memory_order_relaxed);
    }
    for (size_t b = 0; b <= N_BUCKETS; b++)
        t->count += t->bucket[b];
}

void reel_http_metrics_write(const reel_http_server *s, reel_buf *out)
{
    uint32_t n_slots = s->n_routes + 2;
    const char *const pseudo[2] = {"unmatched", "invalid"};
    totals *t = reel_xcalloc(n_slots, sizeof *t);
    for (uint32_t k = 0; k < n_slots; k++)
        sum_slot(s, k, &t[k]);
    reel_buf_puts(out, "# HELP reel_http_requests_total HTTP requests "
                       "answered, by route and status class.\n"
                       "# TYPE reel_http_requests_total counter\n");
    for (uint32_t k = 0; k < n_slots; k++) {
        const char *name =
            k < s->n_routes ? s->routes[k].label : pseudo[k - s->n_routes];
        for (int c = 0; c < N_CLASSES; c++) {
            if (!t[k].by_class[c])
                continue;
            reel_buf_puts(out, "reel_http_requests_total{route=\"");
            label(out, name);
            reel_buf_printf(out, "\",status=\"%dxx\"} %llu\n", c + 1,
                            (unsigned long long)t[k].by_class[c]);
        }
    }
    reel_buf_puts(out, "# HELP reel_http_request_seconds Time from a parsed "
                       "request to its queued response.\n"
                       "# TYPE reel_http_request_seconds histogram\n");
    for (uint32_t k = 0; k < n_slots; k++) {
        const char *name =
            k < s->n_routes ? s->routes[k].label : pseudo[k - s->n_routes];
        if (k >= s->n_routes && t[k].count == 0)
            continue; /* the pseudo-routes once they have been used */
        uint64_t cum = 0;
        for (size_t b = 0; b <= N_BUCKETS; b++) {
            cum += t[k].bucket[b];
            reel_buf_puts(out, "reel_http_request_seconds_bucket{route=\"");
            label(out, name);
            if (b < N_BUCKETS)
                reel_buf_printf(out, "\",le=\"%g\"} %llu\n", BUCKETS[b],
                                (unsigned long long)cum);
            else
                reel_buf_printf(out, "\",le=\"+Inf\"} %llu\n",
                                (unsigned long long)cum);
        }
        reel_buf_puts(out, "reel_http_request_seconds_sum{route=\"");
        label(out, name);
        reel_buf_printf(out, "\"} %.9f\n", (double)t[k].sum_ns * 1e-9);
        reel_buf_puts(out, "reel_http_request_seconds_count{route=\"");
        label(out, name);
        reel_buf_printf(out, "\"} %llu\n", (unsigned long long)t[k].count);
    }
    free(t);
}
