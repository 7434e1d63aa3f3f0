#include "store/redis.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/arena.h"
#include "base/buf.h"
#include "base/log.h"
#include "base/mem.h"
#include "data/interactions.h"

enum {
    BACKOFF_MIN_MS = 50,
    BACKOFF_MAX_MS = 2000,
    MAX_ROUNDS = 50,   /* compare-and-set rounds of one apply */
    SEED_LOCK_S = 3600 /* a seeding process that died frees it after */
};

/*
 * Compare-and-set: KEYS[1] the hash (its field "ver" the version),
 * KEYS[2] a list, KEYS[3] a sorted set (both optional: pass the hash's
 * name again with no entries). ARGV: expected version, n fields, field,
 * value..., n list entries, entry..., list cap, n members, score,
 * member..., set cap. Returns 1, or 0 when the version moved.
 */
static const char CAS_LUA[] =
    "local v = redis.call('HGET', KEYS[1], 'ver') or '0'\n"
    "if v ~= ARGV[1] then return 0 end\n"
    "local i = 2\n"
    "local nf = tonumber(ARGV[i]); i = i + 1\n"
    "local a = {}\n"
    "for j = 1, 2 * nf do a[j] = ARGV[i]; i = i + 1 end\n"
    "a[#a + 1] = 'ver'; a[#a + 1] = tostring(tonumber(v) + 1)\n"
    "redis.call('HSET', KEYS[1], unpack(a))\n"
    "local nl = tonumber(ARGV[i]); i = i + 1\n"
    "for j = 1, nl do redis.call('LPUSH', KEYS[2], ARGV[i]); i = i + 1 end\n"
    "local lcap = tonumber(ARGV[i]); i = i + 1\n"
    "if nl > 0 then redis.call('LTRIM', KEYS[2], 0, lcap - 1) end\n"
    "local nz = tonumber(ARGV[i]); i = i + 1\n"
    "for j = 1, nz do\n"
    "  redis.call('ZADD', KEYS[3], ARGV[i], ARGV[i + 1]); i = i + 2\n"
    "end\n"
    "local zcap = tonumber(ARGV[i])\n"
    "if nz > 0 then redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -zcap - 1) end\n"
    "return 1\n";

struct reel_redis {
    reel_redis_opts o;
    char *prefix;
    char *host, *path; /* one of them */
    int port, db;
    redisContext *c;
    char sha[41]; /* CAS_LUA's, once loaded */
    uint64_t retry_at_ms;
    int backoff_ms;
    char err[256];
    reel_arena a; /* per call */
    /* Command building. */
    const char **argv;
    size_t *argl;
    int argc, cap;
    uint32_t pending; /* replies owed by the seeding pipeline */
    int reused;       /* this call began on an open connection */
    uint64_t jitter;  /* the pauses between compare-and-set rounds */
};

void reel_redis_opts_init(reel_redis_opts *o)
{
    *o = (reel_redis_opts){.prefix = "reel",
                           .connect_timeout_ms = 200,
                           .io_timeout_ms = 1000,
                           .history_max = 1000,
                           .event_ids_max = 1000,
                           .changes_max = 100000};
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- URLs */

static int parse_url(const char *url, char **host, char **path, int *port,
                     int *db, reel_diag *d)
{
    *host = *path = NULL;
    *port = 6379;
    *db = 0;
    if (!strncmp(url, "unix://", 7)) {
        const char *p = url + 7, *q = strchr(p, '?');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (!n || p[0] != '/')
            return reel_diag_fail(d, REEL_EINVAL,
                                  "%s: a Unix socket URL is unix:///PATH", url);
        if (q) {
            char *end;
            if (strncmp(q, "?db=", 4) ||
                (*db = (int)strtol(q + 4, &end, 10), *end) || *db < 0 ||
                *db > 1000)
                return reel_diag_fail(
                    d, REEL_EINVAL, "%s: only ?db=N may follow the path", url);
        }
        *path = reel_xmalloc(n + 1);
        memcpy(*path, p, n);
        (*path)[n] = '\0';
        return 0;
    }
    if (strncmp(url, "redis://", 8))
        return reel_diag_fail(d, REEL_EINVAL,
                              "%s: the store is redis://HOST[:PORT][/DB] or "
                              "unix:///PATH",
                              url);
    const char *p = url + 8;
    size_t n = strcspn(p, ":/");
    if (!n)
        return reel_diag_fail(d, REEL_EINVAL, "%s: no host", url);
    const char *q = p + n;
    if (*q == ':') {
        char *end;
        long v = strtol(q + 1, &end, 10);
        if (end == q + 1 || v < 1 || v > 65535 || (*end && *end != '/'))
            return reel_diag_fail(d, REEL_EINVAL, "%s: bad port", url);
        *port = (int)v;
        q = end;
    }
    if (*q == '/' && q[1]) {
        char *end;
        long v = strtol(q + 1, &end, 10);
        if (end == q + 1 || *end || v < 0 || v > 1000)
            return reel_diag_fail(d, REEL_EINVAL, "%s: bad database number",
                                  url);
        *db = (int)v;
    }
    *host = reel_xmalloc(n + 1);
    memcpy(*host, p, n);
    (*host)[n] = '\0';
    return 0;
}

int reel_redis_url_check(const char *url, reel_diag *d)
{
    char *host, *path;
    int port, db;
    int rc = parse_url(url, &host, &path, &port, &db, d);
    free(host);
    free(path);
    return rc;
}

int reel_redis_open(const char *url, const reel_redis_opts *o, reel_redis **out,
                    reel_diag *d)
{
    *out = NULL;
    reel_redis *r = reel_xcalloc(1, sizeof *r);
    if (o)
        r->o = *o;
    else
        reel_redis_opts_init(&r->o);
    int rc = parse_url(url, &r->host, &r->path, &r->port, &r->db, d);
    if (rc) {
        free(r);
        return rc;
    }
    const char *pre = r->o.prefix ? r->o.prefix : "reel";
    r->prefix = reel_xstrndup(pre, strlen(pre));
    /* hiredis writes with write(2): a Redis that went away would kill the
     * process with SIGPIPE. Ignore it unless someone handles it. */
    struct sigaction sa;
    if (!sigaction(SIGPIPE, NULL, &sa) && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    r->o.prefix = r->prefix;
    reel_arena_init(&r->a, 64 * 1024);
    r->jitter = (uint64_t)(uintptr_t)r ^ now_ms();
    snprintf(r->err, sizeof r->err, "not connected yet");
    *out = r;
    return 0;
}

static void drop(reel_redis *r, const char *why)
{
    if (why)
        snprintf(r->err, sizeof r->err, "%s", why);
    if (r->c) {
        reel_log_warn("redis: %s; reconnecting", r->err);
        redisFree(r->c);
        r->c = NULL;
    }
    r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (r->backoff_ms > BACKOFF_MAX_MS)
        r->backoff_ms = BACKOFF_MAX_MS;
    r->retry_at_ms = now_ms() + (uint64_t)r->backoff_ms;
    r->pending = 0;
}

void reel_redis_close(reel_redis *r)
{
    if (!r)
        return;
    if (r->c)
        redisFree(r->c);
    free(r->host);
    free(r->path);
    free(r->prefix);
    free(r->argv);
    free(r->argl);
    reel_arena_free(&r->a);
    free(r);
}

void reel_redis_retry_now(reel_redis *r)
{
    r->retry_at_ms = 0;
}

const char *reel_redis_error(const reel_redis *r)
{
    return r->err;
}

static redisReply *command(reel_redis *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* One command's reply, or NULL with the connection dropped. */
static redisReply *command(reel_redis *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(r->c, fmt, ap);
    va_end(ap);
    if (!rep)
        drop(r, r->c->errstr[0] ? r->c->errstr : "connection lost");
    return rep;
}

int reel_redis_ping(reel_redis *r)
{
    if (r->c)
        return 0;
    uint64_t now = now_ms();
    if (now < r->retry_at_ms)
        return REEL_EUNAVAILABLE;
    struct timeval tv = {r->o.connect_timeout_ms / 1000,
                         r->o.connect_timeout_ms % 1000 * 1000};
    redisContext *c = r->path ? redisConnectUnixWithTimeout(r->path, tv)
                              : redisConnectWithTimeout(r->host, r->port, tv);
    if (!c || c->err) {
        char why[200];
        snprintf(why, sizeof why, "connect to %s%s%.0d: %s",
                 r->path ? r->path : r->host, r->path ? "" : ":",
                 r->path ? 0 : r->port, c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        drop(r, why);
        return REEL_EUNAVAILABLE;
    }
    struct timeval io = {r->o.io_timeout_ms / 1000,
                         r->o.io_timeout_ms % 1000 * 1000};
    redisSetTimeout(c, io);
    r->c = c;
    redisReply *rep = NULL;
    if (r->db && (!(rep = command(r, "SELECT %d", r->db)) ||
                  rep->type == REDIS_REPLY_ERROR)) {
        if (rep) {
            snprintf(r->err, sizeof r->err, "SELECT %d: %s", r->db, rep->str);
            freeReplyObject(rep);
            drop(r, NULL);
        }
        return REEL_EUNAVAILABLE;
    }
    if (rep)
        freeReplyObject(rep);
    rep = command(r, "SCRIPT LOAD %s", CAS_LUA);
    if (!rep)
        return REEL_EUNAVAILABLE;
    if (rep->type != REDIS_REPLY_STRING || rep->len != 40) {
        snprintf(r->err, sizeof r->err, "SCRIPT LOAD: %s",
                 rep->type == REDIS_REPLY_ERROR ? rep->str : "bad reply");
        freeReplyObject(rep);
        drop(r, NULL);
        return REEL_EUNAVAILABLE;
    }
    memcpy(r->sha, rep->str, 40);
    r->sha[40] = '\0';
    freeReplyObject(rep);
    r->backoff_ms = 0;
    r->err[0] = '\0';
    return 0;
}

/* ------------------------------------------------------------ pipelines */

static void arg(reel_redis *r, const char *s, size_t n)
{
    if (r->argc == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 64;
        r->argv = reel_xrealloc(r->argv, (size_t)r->cap * sizeof *r->argv);
        r->argl = reel_xrealloc(r->argl, (size_t)r->cap * sizeof *r->argl);
    }
    r->argv[r->argc] = s;
    r->argl[r->argc++] = n;
}

static void args(reel_redis *r, const char *s)
{
    arg(r, s, strlen(s));
}

static void argf(reel_redis *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void argf(reel_redis *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[64];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    char *p;
    if ((size_t)n < sizeof tmp) {
        p = reel_arena_strndup(&r->a, tmp, (size_t)n);
    } else {
        p = reel_arena_alloc(&r->a, (size_t)n + 1, 1);
        va_start(ap, fmt);
        vsnprintf(p, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    arg(r, p, (size_t)n);
}

/* Queues the command built with arg(); the next starts empty. */
static void send_cmd(reel_redis *r)
{
    redisAppendCommandArgv(r->c, r->argc, r->argv, r->argl);
    r->argc = 0;
}

/* The next queued reply, or NULL with the connection dropped. */
static redisReply *reply(reel_redis *r)
{
    void *p = NULL;
    if (redisGetReply(r->c, &p) != REDIS_OK || !p) {
        drop(r, r->c->errstr[0] ? r->c->errstr : "connection lost");
        return NULL;
    }
    return p;
}

/* Key names: PREFIX:{u:ID}, PREFIX:{u:ID}:h, PREFIX:{u:ID}:ev,
 * PREFIX:{v:ID}, PREFIX:changes, PREFIX:meta, PREFIX:seeding. */
static const char *key(reel_redis *r, const char *kind, const char *id,
                       size_t n, const char *suffix, size_t *len)
{
    size_t pl = strlen(r->prefix), sl = strlen(suffix);
    char *k = reel_arena_alloc(&r->a, pl + n + sl + 8, 1);
    int m = snprintf(k, pl + 6, "%s:{%s:", r->prefix, kind);
    memcpy(k + m, id, n);
    k[m + n] = '}';
    memcpy(k + m + n + 1, suffix, sl);
    *len = (size_t)m + n + 1 + sl;
    k[*len] = '\0';
    return k;
}

static void arg_key(reel_redis *r, const char *kind, const char *id,
                    const char *suffix)
{
    size_t n;
    const char *k = key(r, kind, id, strlen(id), suffix, &n);
    arg(r, k, n);
}

static void arg_plain_key(reel_redis *r, const char *name)
{
    argf(r, "%s:%s", r->prefix, name);
}

static int up(reel_redis *r)
{
    reel_arena_reset(&r->a);
    r->argc = 0;
    r->reused = r->c != NULL;
    return reel_redis_ping(r);
}

/* A call that failed on a connection opened before it (Redis restarted
 * since: the socket was dead before anything was sent) is tried once
 * more on a new connection. */
static int stale(reel_redis *r, int rc)
{
    if (rc != REEL_EUNAVAILABLE || !r->reused)
        return 0;
    r->retry_at_ms = 0;
    return 1;
}

/* ------------------------------------------------------- field codecs */

static int is(const redisReply *f, const char *name)
{
    size_t n = strlen(name);
    return f->len == n && !memcmp(f->str, name, n);
}

static int num(const redisReply *v, double *out)
{
    char tmp[64];
    if (v->type != REDIS_REPLY_STRING || !v->len || v->len >= sizeof tmp)
        return -1;
    memcpy(tmp, v->str, v->len);
    tmp[v->len] = '\0';
    char *end;
    errno = 0;
    *out = strtod(tmp, &end);
    return *end || errno == ERANGE ? -1 : 0;
}

static int u32(const redisReply *v, uint32_t *out)
{
    double x;
    if (num(v, &x) || !(x >= 0 && x <= UINT32_MAX) || x != floor(x))
        return -1;
    *out = (uint32_t)x;
    return 0;
}

static int f32s(const redisReply *v, float *out, size_t n)
{
    if (v->type != REDIS_REPLY_STRING || v->len != n * 4)
        return -1;
    for (size_t i = 0; i < n; i++) {
        uint32_t b = (uint32_t)(unsigned char)v->str[4 * i] |
                     (uint32_t)(unsigned char)v->str[4 * i + 1] << 8 |
                     (uint32_t)(unsigned char)v->str[4 * i + 2] << 16 |
                     (uint32_t)(unsigned char)v->str[4 * i + 3] << 24;
        memcpy(&out[i], &b, 4);
        if (!isfinite(out[i]))
            return -1;
    }
    return 0;
}

static void arg_f32s(reel_redis *r, const float *x, size_t n)
{
    unsigned char *p = reel_arena_alloc(&r->a, 4 * n + 1, 1);
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &x[i], 4);
        p[4 * i] = (unsigned char)b;
        p[4 * i + 1] = (unsigned char)(b >> 8);
        p[4 * i + 2] = (unsigned char)(b >> 16);
        p[4 * i + 3] = (unsigned char)(b >> 24);
    }
    arg(r, (const char *)p, 4 * n);
}

/* The ring: "LEN:ID" for each video, oldest first. */
static int parse_ring(const redisReply *v, const reel_redis_ids *ids,
                      reel_fs_user *u)
{
    if (v->type != REDIS_REPLY_STRING)
        return -1;
    const char *p = v->str, *end = v->str + v->len;
    while (p < end) {
        char *colon;
        unsigned long n = strtoul(p, &colon, 10);
        if (colon == p || colon >= end || *colon != ':' ||
            n > (unsigned long)(end - colon - 1) || n > 4096)
            return -1;
        uint32_t vi = ids->index(ids->ctx, colon + 1, n);
        if (vi != REEL_NONE) {
            u->ring[u->ring_at] = vi;
            u->ring_at = (u->ring_at + 1) % REEL_FEAT_RING;
            if (u->ring_n < REEL_FEAT_RING)
                u->ring_n++;
        }
        p = colon + 1 + n;
    }
    return 0;
}

static void arg_ring(reel_redis *r, const reel_redis_ids *ids,
                     const reel_fs_user *u)
{
    uint32_t ring[REEL_FEAT_RING], n = reel_fs_user_recent(u, ring);
    reel_buf b;
    reel_buf_init(&b);
    for (uint32_t i = 0; i < n; i++) {
        const char *id = ids->id(ids->ctx, ring[i]);
        reel_buf_printf(&b, "%zu:%s", strlen(id), id);
    }
    char *p = reel_arena_strndup(&r->a, b.len ? b.data : "", b.len);
    arg(r, p, b.len);
    reel_buf_free(&b);
}

/* HGETALL of a user hash into u (and *ver). */
static int parse_user(const redisReply *rep, const reel_redis_ids *ids,
                      reel_fs_user *u, uint64_t *ver)
{
    reel_fs_user_init(u);
    *ver = 0;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements % 2)
        return -1;
    for (size_t i = 0; i < rep->elements; i += 2) {
        const redisReply *f = rep->element[i], *v = rep->element[i + 1];
        double x;
        int bad = 0;
        if (f->type != REDIS_REPLY_STRING)
            return -1;
        if (is(f, "ver")) {
            bad = num(v, &x) || x < 0;
            *ver = bad ? 0 : (uint64_t)x;
        } else if (is(f, "last_ts")) {
            bad = num(v, &u->last_ts);
        } else if (is(f, "share_ts")) {
            bad = num(v, &u->share_ts);
        } else if (is(f, "views")) {
            bad = u32(v, &u->views);
        } else if (is(f, "impr")) {
            bad = u32(v, &u->impressions);
        } else if (is(f, "wf_n")) {
            bad = u32(v, &u->wf_n);
        } else if (is(f, "rating_n")) {
            bad = u32(v, &u->rating_n);
        } else if (is(f, "wf_sum")) {
            bad = num(v, &x);
            u->wf_sum = (float)x;
        } else if (is(f, "rating_sum")) {
            bad = num(v, &x);
            u->rating_sum = (float)x;
        } else if (is(f, "cat")) {
            bad = f32s(v, u->cat, REEL_FEAT_CAT_BUCKETS);
        } else if (is(f, "lang")) {
            bad = f32s(v, u->lang, REEL_FEAT_LANG_BUCKETS);
        } else if (is(f, "ring")) {
            bad = parse_ring(v, ids, u);
        } /* other fields: a later version's; ignored */
        if (bad)
            return -1;
    }
    return 0;
}

static void arg_user_fields(reel_redis *r, const reel_redis_ids *ids,
                            const reel_fs_user *u)
{
    args(r, "last_ts");
    argf(r, "%.17g", u->last_ts);
    args(r, "share_ts");
    argf(r, "%.17g", u->share_ts);
    args(r, "views");
    argf(r, "%u", u->views);
    args(r, "impr");
    argf(r, "%u", u->impressions);
    args(r, "wf_n");
    argf(r, "%u", u->wf_n);
    args(r, "wf_sum");
    argf(r, "%.9g", u->wf_sum);
    args(r, "rating_n");
    argf(r, "%u", u->rating_n);
    args(r, "rating_sum");
    argf(r, "%.9g", u->rating_sum);
    args(r, "cat");
    arg_f32s(r, u->cat, REEL_FEAT_CAT_BUCKETS);
    args(r, "lang");
    arg_f32s(r, u->lang, REEL_FEAT_LANG_BUCKETS);
    args(r, "ring");
    arg_ring(r, ids, u);
}
enum { N_USER_FIELDS = 11 };

void reel_redis_video_init(reel_redis_video *v)
{
    memset(v, 0, sizeof *v);
}

static int parse_video(const redisReply *rep, reel_redis_video *v,
                       uint64_t *ver)
{
    reel_redis_video_init(v);
    *ver = 0;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements % 2)
        return -1;
    for (size_t i = 0; i < rep->elements; i += 2) {
        const redisReply *f = rep->element[i], *x = rep->element[i + 1];
        double d;
        int bad = 0;
        if (f->type != REDIS_REPLY_STRING)
            return -1;
        if (is(f, "ver")) {
            bad = num(x, &d) || d < 0;
            *ver = bad ? 0 : (uint64_t)d;
        } else if (is(f, "ts")) {
            bad = num(x, &v->fs.ts);
        } else if (is(f, "views")) {
            bad = u32(x, &v->fs.views);
        } else if (is(f, "impr")) {
            bad = u32(x, &v->fs.impressions);
        } else if (is(f, "wf_n")) {
            bad = u32(x, &v->fs.wf_n);
        } else if (is(f, "rating_n")) {
            bad = u32(x, &v->fs.rating_n);
        } else if (is(f, "wf_sum")) {
            bad = num(x, &d);
            v->fs.wf_sum = (float)d;
        } else if (is(f, "rating_sum")) {
            bad = num(x, &d);
            v->fs.rating_sum = (float)d;
        } else if (is(f, "d1")) {
            bad = num(x, &d);
            v->fs.d1 = (float)d;
        } else if (is(f, "d7")) {
            bad = num(x, &d);
            v->fs.d7 = (float)d;
        } else if (is(f, "pos")) {
            bad = u32(x, &v->pos);
        } else if (is(f, "pd1")) {
            bad = num(x, &d);
            v->d1 = (float)d;
        } else if (is(f, "pd1_ts")) {
            bad = num(x, &v->d1_ts);
        } else if (f->len > 1 && f->str[0] == 's') {
            char tmp[8];
            if (f->len >= sizeof tmp)
                continue;
            memcpy(tmp, f->str + 1, f->len - 1);
            tmp[f->len - 1] = '\0';
            char *end;
            long s = strtol(tmp, &end, 10);
            if (!*end && s >= 0 && s < REEL_SEGMENTS)
                bad = u32(x, &v->seg[s]);
        }
        if (bad)
            return -1;
    }
    return 0;
}

static void arg_video_fields(reel_redis *r, const reel_redis_video *v,
                             const reel_redis_video *was)
{
    args(r, "ts");
    argf(r, "%.17g", v->fs.ts);
    args(r, "views");
    argf(r, "%u", v->fs.views);
    args(r, "impr");
    argf(r, "%u", v->fs.impressions);
    args(r, "wf_n");
    argf(r, "%u", v->fs.wf_n);
    args(r, "wf_sum");
    argf(r, "%.9g", v->fs.wf_sum);
    args(r, "rating_n");
    argf(r, "%u", v->fs.rating_n);
    args(r, "rating_sum");
    argf(r, "%.9g", v->fs.rating_sum);
    args(r, "d1");
    argf(r, "%.9g", v->fs.d1);
    args(r, "d7");
    argf(r, "%.9g", v->fs.d7);
    args(r, "pos");
    argf(r, "%u", v->pos);
    args(r, "pd1");
    argf(r, "%.9g", v->d1);
    args(r, "pd1_ts");
    argf(r, "%.17g", v->d1_ts);
    for (int s = 0; s < REEL_SEGMENTS; s++)
        if (v->seg[s] != (was ? was->seg[s] : 0) || (!was && v->seg[s])) {
            argf(r, "s%d", s);
            argf(r, "%u", v->seg[s]);
        }
}
enum { N_VIDEO_FIELDS = 12 };

/* ----------------------------------------------------------------- reads */

static int corrupt(reel_redis *r, const char *what, const char *id)
{
    snprintf(r->err, sizeof r->err, "malformed %s record for %.100s in Redis",
             what, id);
    reel_log_warn("redis: %s", r->err);
    return REEL_ECORRUPT;
}

static int parse_hist(const redisReply *e, const reel_redis_ids *ids,
                      reel_redis_hist *h)
{
    if (e->type != REDIS_REPLY_STRING)
        return -1;
    char tmp[48];
    const char *c1 = memchr(e->str, ':', e->len);
    if (!c1)
        return -1;
    const char *c2 = memchr(c1 + 1, ':', e->len - (size_t)(c1 + 1 - e->str));
    if (!c2 || (size_t)(c2 - e->str) >= sizeof tmp)
        return -1;
    memcpy(tmp, e->str, (size_t)(c2 - e->str));
    tmp[c2 - e->str] = '\0';
    unsigned type;
    double ts;
    if (sscanf(tmp, "%u:%lf", &type, &ts) != 2 || type > 255)
        return -1;
    h->type = (uint8_t)type;
    h->ts = ts;
    h->video = ids->index(ids->ctx, c2 + 1, e->len - (size_t)(c2 + 1 - e->str));
    return 0;
}

static int user_get(reel_redis *r, const char *user, const reel_redis_ids *ids,
                    reel_fs_user *fs, reel_redis_hist *hist, uint32_t hist_max,
                    uint32_t *n_hist, uint64_t *found)
{
    *n_hist = 0;
    *found = 0;
    reel_fs_user_init(fs);
    int rc = up(r);
    if (rc)
        return rc;
    args(r, "HGETALL");
    arg_key(r, "u", user, "");
    send_cmd(r);
    if (hist_max) {
        args(r, "LRANGE");
        arg_key(r, "u", user, ":h");
        args(r, "0");
        argf(r, "%u", hist_max - 1);
        send_cmd(r);
    }
    redisReply *a = reply(r);
    if (!a)
        return REEL_EUNAVAILABLE;
    redisReply *b = hist_max ? reply(r) : NULL;
    if (hist_max && !b) {
        freeReplyObject(a);
        return REEL_EUNAVAILABLE;
    }
    uint64_t ver;
    if (parse_user(a, ids, fs, &ver))
        rc = corrupt(r, "user", user);
    *found = ver;
    for (size_t i = 0; !rc && b && b->type == REDIS_REPLY_ARRAY &&
                       i < b->elements && i < hist_max;
         i++) {
        if (parse_hist(b->element[i], ids, &hist[*n_hist]))
            rc = corrupt(r, "history", user);
        else
            ++*n_hist;
    }
    freeReplyObject(a);
    if (b)
        freeReplyObject(b);
    if (rc)
        reel_fs_user_init(fs);
    return rc;
}

int reel_redis_user_get(reel_redis *r, const char *user,
                        const reel_redis_ids *ids, reel_fs_user *fs,
                        reel_redis_hist *hist, uint32_t hist_max,
                        uint32_t *n_hist, uint64_t *found)
{
    int rc = user_get(r, user, ids, fs, hist, hist_max, n_hist, found);
    if (stale(r, rc))
        rc = user_get(r, user, ids, fs, hist, hist_max, n_hist, found);
    return rc;
}

static int videos_get(reel_redis *r, const reel_redis_ids *ids,
                      const uint32_t *vid, uint32_t n, reel_redis_video *out)
{
    int rc = up(r);
    if (rc)
        return rc;
    for (uint32_t i = 0; i < n; i++) {
        args(r, "HGETALL");
        arg_key(r, "v", ids->id(ids->ctx, vid[i]), "");
        send_cmd(r);
    }
    for (uint32_t i = 0; i < n; i++) {
        redisReply *rep = reply(r);
        if (!rep)
            return REEL_EUNAVAILABLE;
        uint64_t ver;
        if (!rc && parse_video(rep, &out[i], &ver))
            rc = corrupt(r, "video", ids->id(ids->ctx, vid[i]));
        freeReplyObject(rep);
    }
    return rc;
}

int reel_redis_videos_get(reel_redis *r, const reel_redis_ids *ids,
                          const uint32_t *vid, uint32_t n,
                          reel_redis_video *out)
{
    int rc = videos_get(r, ids, vid, n, out);
    if (stale(r, rc))
        rc = videos_get(r, ids, vid, n, out);
    return rc;
}

/* ---------------------------------------------------------------- apply */

struct uslot {
    const char *id;
    reel_fs_user fs;
    uint64_t ver;
    int done;          /* written */
    uint32_t first, n; /* its events in `order` */
};

struct vslot {
    uint32_t video;
    reel_redis_video st, was;
    uint64_t ver;
    int done;
};

struct batch {
    const reel_redis_event *ev;
    uint32_t n;
    uint32_t *order; /* events by user (stable), then by position */
    uint32_t *uslot; /* event -> user slot */
    uint32_t *vslot; /* event -> video slot */
    uint8_t *dup;    /* event already applied */
    int8_t *repeat;  /* the user half's verdict (-1: not yet) */
    struct uslot *u;
    uint32_t n_u;
    struct vslot *v;
    uint32_t n_v;
};

static const reel_redis_event *ev_sort_base;

static int by_user(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    int c = strcmp(ev_sort_base[x].user, ev_sort_base[y].user);
    return c ? c : (x > y) - (x < y);
}

static int by_video(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    uint32_t vx = ev_sort_base[x].video, vy = ev_sort_base[y].video;
    return vx != vy ? (vx > vy) - (vx < vy) : (x > y) - (x < y);
}

static void batch_free(struct batch *b)
{
    free(b->order);
    free(b->uslot);
    free(b->vslot);
    free(b->dup);
    free(b->repeat);
    free(b->u);
    free(b->v);
}

/* Groups the events by user and by video (the sorts are single-threaded
 * and rare: one per batch; qsort_r is not C17, hence the static base,
 * guarded by the caller's one-thread-per-handle rule and a lock). */
static pthread_mutex_t sort_mu = PTHREAD_MUTEX_INITIALIZER;

static void batch_init(struct batch *b, const reel_redis_event *ev, uint32_t n)
{
    memset(b, 0, sizeof *b);
    b->ev = ev;
    b->n = n;
    b->order = reel_xmalloc(((size_t)n + 1) * sizeof *b->order);
    b->uslot = reel_xmalloc(((size_t)n + 1) * sizeof *b->uslot);
    b->vslot = reel_xmalloc(((size_t)n + 1) * sizeof *b->vslot);
    b->dup = reel_xcalloc((size_t)n + 1, 1);
    b->repeat = reel_xmalloc((size_t)n + 1);
    memset(b->repeat, -1, (size_t)n + 1);
    b->u = reel_xcalloc((size_t)n + 1, sizeof *b->u);
    b->v = reel_xcalloc((size_t)n + 1, sizeof *b->v);
    uint32_t *tmp = reel_xmalloc(((size_t)n + 1) * sizeof *tmp);
    for (uint32_t i = 0; i < n; i++)
        b->order[i] = tmp[i] = i;
    pthread_mutex_lock(&sort_mu);
    ev_sort_base = ev;
    qsort(b->order, n, sizeof *b->order, by_user);
    qsort(tmp, n, sizeof *tmp, by_video);
    pthread_mutex_unlock(&sort_mu);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t e = b->order[i];
        if (!b->n_u || strcmp(b->u[b->n_u - 1].id, ev[e].user)) {
            b->u[b->n_u] = (struct uslot){.id = ev[e].user, .first = i};
            b->n_u++;
        }
        b->u[b->n_u - 1].n++;
        b->uslot[e] = b->n_u - 1;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t e = tmp[i];
        if (!b->n_v || b->v[b->n_v - 1].video != ev[e].video)
            b->v[b->n_v++].video = ev[e].video;
        b->vslot[e] = b->n_v - 1;
    }
    free(tmp);
}

/* Reads the records still to write (and the users' applied event ids). */
static int read_pending(reel_redis *r, const reel_redis_ids *ids,
                        struct batch *b, int first)
{
    for (uint32_t i = 0; i < b->n_u; i++) {
        struct uslot *u = &b->u[i];
        if (u->done)
            continue;
        args(r, "HGETALL");
        arg_key(r, "u", u->id, "");
        send_cmd(r);
        if (!first)
            continue;
        uint32_t n_ids = 0;
        for (uint32_t j = 0; j < u->n; j++)
            n_ids += b->ev[b->order[u->first + j]].id != NULL;
        if (!n_ids)
            continue;
        args(r, "ZMSCORE");
        arg_key(r, "u", u->id, ":ev");
        for (uint32_t j = 0; j < u->n; j++) {
            const char *id = b->ev[b->order[u->first + j]].id;
            if (id)
                args(r, id);
        }
        send_cmd(r);
    }
    for (uint32_t i = 0; i < b->n_v; i++)
        if (!b->v[i].done) {
            args(r, "HGETALL");
            arg_key(r, "v", ids->id(ids->ctx, b->v[i].video), "");
            send_cmd(r);
        }
    int rc = 0;
    for (uint32_t i = 0; i < b->n_u; i++) {
        struct uslot *u = &b->u[i];
        if (u->done)
            continue;
        redisReply *rep = reply(r);
        if (!rep)
            return REEL_EUNAVAILABLE;
        if (!rc && parse_user(rep, ids, &u->fs, &u->ver))
            rc = corrupt(r, "user", u->id);
        freeReplyObject(rep);
        uint32_t n_ids = 0;
        for (uint32_t j = 0; first && j < u->n; j++)
            n_ids += b->ev[b->order[u->first + j]].id != NULL;
        if (!n_ids)
            continue;
        if (!(rep = reply(r)))
            return REEL_EUNAVAILABLE;
        if (rep->type == REDIS_REPLY_ERROR) {
            if (!rc) {
                snprintf(r->err, sizeof r->err, "ZMSCORE: %s", rep->str);
                rc = REEL_EUNSUPPORTED;
            }
        } else if (rep->type == REDIS_REPLY_ARRAY && rep->elements == n_ids) {
            /* Seen ids, and ids repeated within the batch. */
            size_t k = 0;
            for (uint32_t j = 0; j < u->n; j++) {
                uint32_t e = b->order[u->first + j];
                if (!b->ev[e].id)
                    continue;
                b->dup[e] = rep->element[k++]->type != REDIS_REPLY_NIL;
                for (uint32_t q = 0; q < j && !b->dup[e]; q++) {
                    uint32_t f = b->order[u->first + q];
                    b->dup[e] = b->ev[f].id && !b->dup[f] &&
                                !strcmp(b->ev[f].id, b->ev[e].id);
                }
            }
        }
        freeReplyObject(rep);
    }
    for (uint32_t i = 0; i < b->n_v; i++) {
        struct vslot *v = &b->v[i];
        if (v->done)
            continue;
        redisReply *rep = reply(r);
        if (!rep)
            return REEL_EUNAVAILABLE;
        if (!rc && parse_video(rep, &v->st, &v->ver))
            rc = corrupt(r, "video", ids->id(ids->ctx, v->video));
        v->was = v->st;
        freeReplyObject(rep);
    }
    return rc;
}

static void apply_video_half(const reel_featstate *fs,
                             const reel_redis_event *e, struct vslot *v,
                             int repeat)
{
    reel_featstate_apply_video(fs, &v->st.fs, e->video, e->type, e->ts,
                               e->watch_s, e->rating, repeat);
    if (!reel_event_is_positive(e->type))
        return;
    /* The cold start's counts, as the embedded store keeps them. */
    v->st.pos++;
    double dt = e->ts - v->st.d1_ts;
    v->st.d1 = (float)(v->st.d1 * (dt > 0 ? exp2(-dt / 86400.0) : 1.0) + 1);
    if (e->ts > v->st.d1_ts)
        v->st.d1_ts = e->ts;
    if (e->seg < REEL_SEGMENTS && e->seg != REEL_NO_SEGMENT)
        v->st.seg[e->seg]++;
}

static void arg_cas_head(reel_redis *r)
{
    args(r, "EVALSHA");
    args(r, r->sha);
    args(r, "3");
}

int reel_redis_apply(reel_redis *r, const reel_featstate *fs,
                     const reel_redis_ids *ids, const reel_redis_event *ev,
                     uint32_t n, uint32_t *n_dup)
{
    *n_dup = 0;
    if (!n)
        return 0;
    int rc = up(r);
    if (rc)
        return rc;
    struct batch b;
    batch_init(&b, ev, n);
    for (int round = 0;; round++) {
        if (round == MAX_ROUNDS) {
            snprintf(r->err, sizeof r->err,
                     "records kept changing under %d attempts", MAX_ROUNDS);
            rc = REEL_EBUSY;
            break;
        }
        reel_arena_reset(&r->a);
        rc = read_pending(r, ids, &b, round == 0);
        /* Nothing is written before the first read: a dead connection
         * is replaced once. */
        if (round == 0 && stale(r, rc) && !(rc = up(r)))
            rc = read_pending(r, ids, &b, 1);
        if (rc)
            break;
        /* The user halves, each user's events in order. */
        for (uint32_t i = 0; i < b.n_u; i++) {
            struct uslot *u = &b.u[i];
            if (u->done)
                continue;
            for (uint32_t j = 0; j < u->n; j++) {
                uint32_t e = b.order[u->first + j];
                if (!b.dup[e])
                    b.repeat[e] = (int8_t)reel_featstate_apply_user(
                        fs, &u->fs, ev[e].video, ev[e].type, ev[e].ts,
                        ev[e].watch_s, ev[e].rating);
            }
        }
        /* The video halves, in the batch's order. */
        for (uint32_t e = 0; e < n; e++) {
            struct vslot *v = &b.v[b.vslot[e]];
            if (!v->done && !b.dup[e])
                apply_video_half(fs, &ev[e], v, b.repeat[e] > 0);
        }
        /* Write back, each key only if nobody wrote it meanwhile. */
        uint32_t sent = 0;
        for (uint32_t i = 0; i < b.n_u; i++) {
            struct uslot *u = &b.u[i];
            if (u->done)
                continue;
            arg_cas_head(r);
            arg_key(r, "u", u->id, "");
            arg_key(r, "u", u->id, ":h");
            arg_key(r, "u", u->id, ":ev");
            argf(r, "%llu", (unsigned long long)u->ver);
            argf(r, "%d", N_USER_FIELDS);
            arg_user_fields(r, ids, &u->fs);
            uint32_t nh = 0, nz = 0;
            for (uint32_t j = 0; j < u->n; j++) {
                uint32_t e = b.order[u->first + j];
                nh += !b.dup[e] && ev[e].type != REEL_EV_IMPRESSION;
                nz += !b.dup[e] && ev[e].id;
            }
            argf(r, "%u", nh);
            for (uint32_t j = 0; j < u->n; j++) {
                uint32_t e = b.order[u->first + j];
                if (!b.dup[e] && ev[e].type != REEL_EV_IMPRESSION)
                    argf(r, "%u:%.17g:%s", ev[e].type, ev[e].ts,
                         ids->id(ids->ctx, ev[e].video));
            }
            argf(r, "%u", r->o.history_max);
            argf(r, "%u", nz);
            for (uint32_t j = 0; j < u->n; j++) {
                uint32_t e = b.order[u->first + j];
                if (!b.dup[e] && ev[e].id) {
                    argf(r, "%.17g", ev[e].ts);
                    args(r, ev[e].id);
                }
            }
            argf(r, "%u", r->o.event_ids_max);
            send_cmd(r);
            sent++;
        }
        for (uint32_t i = 0; i < b.n_v; i++) {
            struct vslot *v = &b.v[i];
            if (v->done)
                continue;
            arg_cas_head(r);
            const char *id = ids->id(ids->ctx, v->video);
            arg_key(r, "v", id, "");
            arg_key(r, "v", id, "");
            arg_key(r, "v", id, "");
            argf(r, "%llu", (unsigned long long)v->ver);
            int at = r->argc;
            args(r, "0"); /* the field count, below */
            int f0 = r->argc;
            arg_video_fields(r, &v->st, &v->was);
            argf(r, "%d", 0);
            r->argv[at] = reel_arena_alloc(&r->a, 16, 1);
            r->argl[at] = (size_t)snprintf((char *)r->argv[at], 16, "%d",
                                           (r->argc - 1 - f0) / 2);
            args(r, "0");
            args(r, "0");
            args(r, "0");
            send_cmd(r);
            sent++;
        }
        int again = 0;
        for (uint32_t i = 0; i < b.n_u + b.n_v; i++) {
            int is_u = i < b.n_u;
            if (is_u ? b.u[i].done : b.v[i - b.n_u].done)
                continue;
            redisReply *rep = reply(r);
            if (!rep) {
                rc = REEL_EUNAVAILABLE;
                break;
            }
            if (rep->type == REDIS_REPLY_ERROR && !rc) {
                snprintf(r->err, sizeof r->err, "EVALSHA: %.200s", rep->str);
                /* NOSCRIPT (a restarted Redis): load it again next call. */
                rc = strncmp(rep->str, "NOSCRIPT", 8) ? REEL_EIO
                                                      : REEL_EUNAVAILABLE;
                if (rc == REEL_EUNAVAILABLE)
                    drop(r, NULL);
            } else if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 1) {
                if (is_u)
                    b.u[i].done = 1;
                else
                    b.v[i - b.n_u].done = 1;
            } else {
                again = 1;
            }
            freeReplyObject(rep);
            if (!r->c)
                break;
        }
        (void)sent;
        if (rc || !again)
            break;
        /* Writers racing for the same keys: a random pause, growing with
         * the rounds (up to 20 ms), lets one of them through. */
        r->jitter = r->jitter * 6364136223846793005ull + 1442695040888963407ull;
        unsigned cap = round < 4 ? 1u << round : 20u;
        struct timespec ts = {0,
                              (long)((r->jitter >> 33) % (cap * 1000u)) * 1000};
        nanosleep(&ts, NULL);
    }
    if (!rc) {
        for (uint32_t e = 0; e < n; e++)
            *n_dup += b.dup[e];
        /* Tell the replicas which videos changed. */
        reel_arena_reset(&r->a);
        reel_buf ch;
        reel_buf_init(&ch);
        for (uint32_t i = 0; i < b.n_v; i++) {
            const char *id = ids->id(ids->ctx, b.v[i].video);
            reel_buf_printf(&ch, "%zu:%s", strlen(id), id);
        }
        args(r, "XADD");
        arg_plain_key(r, "changes");
        args(r, "MAXLEN");
        args(r, "~");
        argf(r, "%u", r->o.changes_max);
        args(r, "*");
        args(r, "v");
        arg(r, ch.data ? ch.data : "", ch.len);
        send_cmd(r);
        redisReply *rep = reply(r);
        if (!rep)
            rc = REEL_EUNAVAILABLE;
        else
            freeReplyObject(rep);
        reel_buf_free(&ch);
    }
    batch_free(&b);
    return rc;
}

/* --------------------------------------------------------- change feed */

int reel_redis_changes_tail(reel_redis *r, char cursor[64])
{
    int rc = up(r);
    if (rc)
        return rc;
    args(r, "XREVRANGE");
    arg_plain_key(r, "changes");
    args(r, "+");
    args(r, "-");
    args(r, "COUNT");
    args(r, "1");
    send_cmd(r);
    redisReply *rep = reply(r);
    if (!rep)
        return REEL_EUNAVAILABLE;
    snprintf(cursor, 64, "0");
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
        rep->element[0]->type == REDIS_REPLY_ARRAY &&
        rep->element[0]->elements == 2 &&
        rep->element[0]->element[0]->type == REDIS_REPLY_STRING &&
        rep->element[0]->element[0]->len < 64)
        snprintf(cursor, 64, "%.*s", (int)rep->element[0]->element[0]->len,
                 rep->element[0]->element[0]->str);
    freeReplyObject(rep);
    return 0;
}

static int parse_stream_id(const char *s, size_t len, uint64_t *ms,
                           uint64_t *seq)
{
    char tmp[64];
    if (len >= sizeof tmp)
        return -1;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    return sscanf(tmp, "%" SCNu64 "-%" SCNu64, ms, seq) == 2 ? 0 : -1;
}

/* Counts the ids of one change entry's value ("LEN:ID"...), and with
 * vid given, resolves them into vid (unknown ones left out). */
static uint32_t entry_ids(const redisReply *val, const reel_redis_ids *ids,
                          uint32_t *vid, uint32_t *n)
{
    uint32_t count = 0;
    const char *p = val->str, *end = val->str + val->len;
    while (p < end) {
        char *colon;
        unsigned long len = strtoul(p, &colon, 10);
        if (colon == p || colon >= end || *colon != ':' ||
            len > (unsigned long)(end - colon - 1))
            break;
        count++;
        if (vid) {
            uint32_t v = ids->index(ids->ctx, colon + 1, len);
            if (v != REEL_NONE)
                vid[(*n)++] = v;
        }
        p = colon + 1 + len;
    }
    return count;
}

int reel_redis_changes(reel_redis *r, const reel_redis_ids *ids,
                       char cursor[64], uint32_t *vid, uint32_t max,
                       uint32_t *n, int *gap)
{
    *n = 0;
    *gap = 0;
    int rc = up(r);
    if (rc)
        return rc;
    if (!cursor[0])
        snprintf(cursor, 64, "0");
    uint64_t ms = 0, seq = 0;
    int from_start = !strcmp(cursor, "0") ||
                     parse_stream_id(cursor, strlen(cursor), &ms, &seq);
    /* The oldest entry kept: newer than the cursor means entries after
     * the cursor may have been trimmed away. */
    args(r, "XRANGE");
    arg_plain_key(r, "changes");
    args(r, "-");
    args(r, "+");
    args(r, "COUNT");
    args(r, "1");
    send_cmd(r);
    args(r, "XRANGE");
    arg_plain_key(r, "changes");
    if (from_start)
        args(r, "-");
    else
        argf(r, "(%s", cursor); /* exclusive: the entries after it */
    args(r, "+");
    args(r, "COUNT");
    args(r, "64");
    send_cmd(r);
    redisReply *first = reply(r);
    if (!first)
        return REEL_EUNAVAILABLE;
    redisReply *rep = reply(r);
    if (!rep) {
        freeReplyObject(first);
        return REEL_EUNAVAILABLE;
    }
    uint64_t fms, fseq;
    if (!from_start && first->type == REDIS_REPLY_ARRAY &&
        first->elements == 1 && first->element[0]->type == REDIS_REPLY_ARRAY &&
        first->element[0]->elements == 2 &&
        first->element[0]->element[0]->type == REDIS_REPLY_STRING &&
        !parse_stream_id(first->element[0]->element[0]->str,
                         first->element[0]->element[0]->len, &fms, &fseq) &&
        (fms > ms || (fms == ms && fseq > seq)))
        *gap = 1;
    freeReplyObject(first);
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements;
         i++) {
        const redisReply *ent = rep->element[i];
        if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2 ||
            ent->element[0]->type != REDIS_REPLY_STRING ||
            ent->element[0]->len >= 64)
            continue;
        const redisReply *f = ent->element[1];
        const redisReply *val = NULL;
        for (size_t j = 0; f->type == REDIS_REPLY_ARRAY && j + 1 < f->elements;
             j += 2)
            if (f->element[j + 1]->type == REDIS_REPLY_STRING)
                val = f->element[j + 1];
        uint32_t count = val ? entry_ids(val, ids, NULL, NULL) : 0;
        if (*n + count > max) {
            if (*n)
                break; /* the rest next time */
            *gap = 1;  /* one entry larger than vid: read everything */
        } else if (val) {
            entry_ids(val, ids, vid, n);
        }
        snprintf(cursor, 64, "%.*s", (int)ent->element[0]->len,
                 ent->element[0]->str);
    }
    freeReplyObject(rep);
    return 0;
}

/* -------------------------------------------------------------- seeding */

static int get_marker(reel_redis *r, uint64_t *marker)
{
    *marker = 0;
    int rc = up(r);
    if (rc)
        return rc;
    args(r, "HGET");
    arg_plain_key(r, "meta");
    args(r, "dataset");
    send_cmd(r);
    redisReply *rep = reply(r);
    if (!rep)
        return REEL_EUNAVAILABLE;
    if (rep->type == REDIS_REPLY_STRING)
        *marker = strtoull(rep->str, NULL, 16);
    freeReplyObject(rep);
    return 0;
}

int reel_redis_marker(reel_redis *r, uint64_t *marker)
{
    int rc = get_marker(r, marker);
    if (stale(r, rc))
        rc = get_marker(r, marker);
    return rc;
}

int reel_redis_seed_begin(reel_redis *r, int *mine)
{
    *mine = 0;
    uint64_t m;
    int rc = reel_redis_marker(r, &m);
    if (rc || m)
        return rc;
    args(r, "SET");
    arg_plain_key(r, "seeding");
    argf(r, "%d", (int)getpid());
    args(r, "NX");
    args(r, "EX");
    argf(r, "%d", SEED_LOCK_S);
    send_cmd(r);
    redisReply *rep = reply(r);
    if (!rep)
        return REEL_EUNAVAILABLE;
    *mine = rep->type == REDIS_REPLY_STATUS;
    freeReplyObject(rep);
    return 0;
}

/* Reads the replies the seeding pipeline owes. */
static int seed_drain(reel_redis *r, uint32_t keep)
{
    while (r->pending > keep) {
        redisReply *rep = reply(r);
        if (!rep)
            return REEL_EUNAVAILABLE;
        int bad = rep->type == REDIS_REPLY_ERROR;
        if (bad)
            snprintf(r->err, sizeof r->err, "seeding: %.200s", rep->str);
        freeReplyObject(rep);
        r->pending--;
        if (bad)
            return REEL_EIO;
    }
    return 0;
}

int reel_redis_seed_user(reel_redis *r, const reel_redis_ids *ids,
                         const char *user, const reel_fs_user *fs,
                         const reel_redis_hist *hist, uint32_t n_hist)
{
    if (!r->c)
        return REEL_EUNAVAILABLE;
    if (r->pending >= 4096) {
        int rc = seed_drain(r, 0);
        if (rc)
            return rc;
        reel_arena_reset(&r->a);
    }
    args(r, "HSET");
    arg_key(r, "u", user, "");
    arg_user_fields(r, ids, fs);
    args(r, "ver");
    args(r, "1");
    send_cmd(r);
    r->pending++;
    uint32_t from = n_hist > r->o.history_max ? n_hist - r->o.history_max : 0;
    if (from < n_hist) {
        args(r, "DEL");
        arg_key(r, "u", user, ":h");
        send_cmd(r);
        args(r, "LPUSH");
        arg_key(r, "u", user, ":h");
        for (uint32_t i = from; i < n_hist; i++)
            argf(r, "%u:%.17g:%s", hist[i].type, hist[i].ts,
                 ids->id(ids->ctx, hist[i].video));
        send_cmd(r);
        r->pending += 2;
    }
    return 0;
}

int reel_redis_seed_video(reel_redis *r, const reel_redis_ids *ids,
                          uint32_t video, const reel_redis_video *v)
{
    if (!r->c)
        return REEL_EUNAVAILABLE;
    if (r->pending >= 4096) {
        int rc = seed_drain(r, 0);
        if (rc)
            return rc;
        reel_arena_reset(&r->a);
    }
    args(r, "HSET");
    arg_key(r, "v", ids->id(ids->ctx, video), "");
    arg_video_fields(r, v, NULL);
    args(r, "ver");
    args(r, "1");
    send_cmd(r);
    r->pending++;
    return 0;
}

int reel_redis_seed_flush(reel_redis *r)
{
    if (!r->c)
        return REEL_EUNAVAILABLE;
    int rc = seed_drain(r, 0);
    reel_arena_reset(&r->a);
    return rc;
}

int reel_redis_seed_end(reel_redis *r, uint64_t marker)
{
    int rc = reel_redis_seed_flush(r);
    if (rc)
        return rc;
    args(r, "HSET");
    arg_plain_key(r, "meta");
    args(r, "dataset");
    argf(r, "%016llx", (unsigned long long)marker);
    args(r, "format");
    args(r, "1");
    send_cmd(r);
    args(r, "DEL");
    arg_plain_key(r, "seeding");
    send_cmd(r);
    for (int i = 0; i < 2; i++) {
        redisReply *rep = reply(r);
        if (!rep)
            return REEL_EUNAVAILABLE;
        freeReplyObject(rep);
    }
    return 0;
}
