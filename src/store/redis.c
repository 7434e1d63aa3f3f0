#include "store/redis.h"

#include <assert.h>
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
 * One batch's writes, each record only if its version (the value's first
 * 8 bytes) is what was read. ARGV: the record count n, the user count,
 * the history cap, the event-id cap; per record: the version read (8
 * bytes) and the new value; per user: its record's number (1-based), n
 * history entries and the entries, n event ids and (score, id) pairs.
 * KEYS: the n records, then per user its history list and id set.
 * Returns the records (1-based) whose version had moved; a user's lists
 * are written only with its record.
 */
static const char BATCH_LUA[] =
    "local n, nu = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local hmax, imax = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "local zero = string.rep('\\0', 8)\n"
    "local ok, failed = {}, {}\n"
    "local function push(cmd, key, from, count)\n"
    "  local at, r = from, 0\n"
    "  while at < from + count do\n"
    "    local to = math.min(at + 999, from + count - 1)\n"
    "    r = redis.call(cmd, key, unpack(ARGV, at, to))\n"
    "    at = to + 1\n"
    "  end\n"
    "  return r\n"
    "end\n"
    "for a = 1, n, 1000 do\n"
    "  local b = math.min(a + 999, n)\n"
    "  local cur = redis.call('MGET', unpack(KEYS, a, b))\n"
    "  for i = a, b do\n"
    "    local v = cur[i - a + 1]\n"
    "    if (v and string.sub(v, 1, 8) or zero) == ARGV[3 + 2 * i] then\n"
    "      ok[i] = true\n"
    "    else\n"
    "      failed[#failed + 1] = i\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local set = {}\n"
    "for i = 1, n do\n"
    "  if ok[i] then\n"
    "    set[#set + 1] = KEYS[i]\n"
    "    set[#set + 1] = ARGV[4 + 2 * i]\n"
    "    if #set == 1000 then redis.call('MSET', unpack(set)); set = {} end\n"
    "  end\n"
    "end\n"
    "if #set > 0 then redis.call('MSET', unpack(set)) end\n"
    "local at, k = 5 + 2 * n, n + 1\n"
    "for j = 1, nu do\n"
    "  local e, nh = tonumber(ARGV[at]), tonumber(ARGV[at + 1])\n"
    "  at = at + 2\n"
    "  if ok[e] and nh > 0 and push('LPUSH', KEYS[k], at, nh) > hmax then\n"
    "    redis.call('LTRIM', KEYS[k], 0, hmax - 1)\n"
    "  end\n"
    "  at = at + nh\n"
    "  local nz = tonumber(ARGV[at])\n"
    "  at = at + 1\n"
    "  if ok[e] and nz > 0 then\n"
    "    push('ZADD', KEYS[k + 1], at, 2 * nz)\n"
    "    redis.call('ZREMRANGEBYRANK', KEYS[k + 1], 0, -imax - 1)\n"
    "  end\n"
    "  at = at + 2 * nz\n"
    "  k = k + 2\n"
    "end\n"
    "return failed\n";

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
    rep = command(r, "SCRIPT LOAD %s", BATCH_LUA);
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

/* The packed records ("c"): a format byte, then little-endian fields
 * (docs/formats/redis.md). */
enum {
    REC_FORMAT = 1,
    U_REC = 1 + 8 + 8 + 4 * 4 + 4 * 2 + 4 * REEL_FEAT_CAT_BUCKETS +
            4 * REEL_FEAT_LANG_BUCKETS + 4 + 4 * REEL_FEAT_RING,
    V_REC = 1 + 8 + 4 * 4 + 4 * 4 + 4 + 4 + 8 + 4 * REEL_SEGMENTS
};

/* The sizes docs/formats/redis.md gives. */
_Static_assert(U_REC == 493, "the user record of docs/formats/redis.md");
_Static_assert(V_REC == 185, "the video record of docs/formats/redis.md");

static unsigned char *put_u32(unsigned char *p, uint32_t x)
{
    for (int i = 0; i < 4; i++)
        *p++ = (unsigned char)(x >> (8 * i));
    return p;
}

static unsigned char *put_f32(unsigned char *p, float x)
{
    uint32_t b;
    memcpy(&b, &x, 4);
    return put_u32(p, b);
}

static unsigned char *put_f64(unsigned char *p, double x)
{
    uint64_t b;
    memcpy(&b, &x, 8);
    for (int i = 0; i < 8; i++)
        *p++ = (unsigned char)(b >> (8 * i));
    return p;
}

static const unsigned char *get_u32(const unsigned char *p, uint32_t *x)
{
    *x = 0;
    for (int i = 0; i < 4; i++)
        *x |= (uint32_t)p[i] << (8 * i);
    return p + 4;
}

static const unsigned char *get_f32(const unsigned char *p, float *x)
{
    uint32_t b;
    p = get_u32(p, &b);
    memcpy(x, &b, 4);
    return p;
}

static const unsigned char *get_f64(const unsigned char *p, double *x)
{
    uint64_t b = 0;
    for (int i = 0; i < 8; i++)
        b |= (uint64_t)p[i] << (8 * i);
    memcpy(x, &b, 8);
    return p + 8;
}

static unsigned char *put_u64(unsigned char *p, uint64_t x)
{
    for (int i = 0; i < 8; i++)
        *p++ = (unsigned char)(x >> (8 * i));
    return p;
}

static const unsigned char *get_u64(const unsigned char *p, uint64_t *x)
{
    *x = 0;
    for (int i = 0; i < 8; i++)
        *x |= (uint64_t)p[i] << (8 * i);
    return p + 8;
}

static int finite_all(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

/* The user record at p (U_REC bytes) into u. */
static int unpack_user(const unsigned char *p, const reel_redis_ids *ids,
                       reel_fs_user *u)
{
    if (*p++ != REC_FORMAT)
        return -1;
    p = get_f64(p, &u->last_ts);
    p = get_f64(p, &u->share_ts);
    p = get_u32(p, &u->views);
    p = get_u32(p, &u->impressions);
    p = get_u32(p, &u->wf_n);
    p = get_u32(p, &u->rating_n);
    p = get_f32(p, &u->wf_sum);
    p = get_f32(p, &u->rating_sum);
    for (int i = 0; i < REEL_FEAT_CAT_BUCKETS; i++)
        p = get_f32(p, &u->cat[i]);
    for (int i = 0; i < REEL_FEAT_LANG_BUCKETS; i++)
        p = get_f32(p, &u->lang[i]);
    /* The ring, oldest first: video indexes (the same in every process:
     * they share the dataset, whose fingerprint the marker holds). */
    uint32_t n;
    p = get_u32(p, &n);
    if (n > REEL_FEAT_RING)
        return -1;
    for (uint32_t i = 0; i < REEL_FEAT_RING; i++) {
        uint32_t v;
        p = get_u32(p, &v);
        if (i < n) {
            if (v >= ids->n)
                return -1;
            u->ring[i] = v;
        }
    }
    u->ring_n = n;
    u->ring_at = n % REEL_FEAT_RING;
    return finite_all(u->cat, REEL_FEAT_CAT_BUCKETS) &&
                   finite_all(u->lang, REEL_FEAT_LANG_BUCKETS) &&
                   isfinite(u->share_ts)
               ? 0
               : -1;
}

/* The value of a user's key: version ver, then the record of u. */
static void arg_user_val(reel_redis *r, uint64_t ver, const reel_fs_user *u)
{
    unsigned char *b = reel_arena_alloc(&r->a, 8 + U_REC, 1), *p = b;
    p = put_u64(p, ver);
    *p++ = REC_FORMAT;
    p = put_f64(p, u->last_ts);
    p = put_f64(p, u->share_ts);
    p = put_u32(p, u->views);
    p = put_u32(p, u->impressions);
    p = put_u32(p, u->wf_n);
    p = put_u32(p, u->rating_n);
    p = put_f32(p, u->wf_sum);
    p = put_f32(p, u->rating_sum);
    for (int i = 0; i < REEL_FEAT_CAT_BUCKETS; i++)
        p = put_f32(p, u->cat[i]);
    for (int i = 0; i < REEL_FEAT_LANG_BUCKETS; i++)
        p = put_f32(p, u->lang[i]);
    uint32_t ring[REEL_FEAT_RING] = {0}, n = reel_fs_user_recent(u, ring);
    p = put_u32(p, n);
    for (int i = 0; i < REEL_FEAT_RING; i++)
        p = put_u32(p, ring[i]);
    assert(p - b == 8 + U_REC);
    arg(r, (const char *)b, 8 + U_REC);
}

/* A user's value (GET, MGET) into u and *ver; none: a new user. */
static int parse_user(const redisReply *rep, const reel_redis_ids *ids,
                      reel_fs_user *u, uint64_t *ver)
{
    reel_fs_user_init(u);
    *ver = 0;
    if (rep->type == REDIS_REPLY_NIL)
        return 0;
    if (rep->type != REDIS_REPLY_STRING || rep->len != 8 + U_REC)
        return -1;
    const unsigned char *p = get_u64((const unsigned char *)rep->str, ver);
    return unpack_user(p, ids, u);
}

void reel_redis_video_init(reel_redis_video *v)
{
    memset(v, 0, sizeof *v);
}

/* The video record at p (V_REC bytes) into v. */
static int unpack_video(const unsigned char *p, reel_redis_video *v)
{
    if (*p++ != REC_FORMAT)
        return -1;
    p = get_f64(p, &v->fs.ts);
    p = get_u32(p, &v->fs.views);
    p = get_u32(p, &v->fs.impressions);
    p = get_u32(p, &v->fs.wf_n);
    p = get_u32(p, &v->fs.rating_n);
    p = get_f32(p, &v->fs.d1);
    p = get_f32(p, &v->fs.d7);
    p = get_f32(p, &v->fs.wf_sum);
    p = get_f32(p, &v->fs.rating_sum);
    p = get_u32(p, &v->pos);
    p = get_f32(p, &v->d1);
    p = get_f64(p, &v->d1_ts);
    for (int i = 0; i < REEL_SEGMENTS; i++)
        p = get_u32(p, &v->seg[i]);
    return isfinite(v->fs.ts) && isfinite(v->fs.d1) && isfinite(v->fs.d7) &&
                   isfinite(v->d1) && isfinite(v->d1_ts)
               ? 0
               : -1;
}

/* The value of a video's key: version ver, then the record of v. */
static void arg_video_val(reel_redis *r, uint64_t ver,
                          const reel_redis_video *v)
{
    unsigned char *b = reel_arena_alloc(&r->a, 8 + V_REC, 1), *p = b;
    p = put_u64(p, ver);
    *p++ = REC_FORMAT;
    p = put_f64(p, v->fs.ts);
    p = put_u32(p, v->fs.views);
    p = put_u32(p, v->fs.impressions);
    p = put_u32(p, v->fs.wf_n);
    p = put_u32(p, v->fs.rating_n);
    p = put_f32(p, v->fs.d1);
    p = put_f32(p, v->fs.d7);
    p = put_f32(p, v->fs.wf_sum);
    p = put_f32(p, v->fs.rating_sum);
    p = put_u32(p, v->pos);
    p = put_f32(p, v->d1);
    p = put_f64(p, v->d1_ts);
    for (int i = 0; i < REEL_SEGMENTS; i++)
        p = put_u32(p, v->seg[i]);
    assert(p - b == 8 + V_REC);
    arg(r, (const char *)b, 8 + V_REC);
}

/* A video's value (MGET) into v and *ver; none: no event yet. */
static int parse_video(const redisReply *rep, reel_redis_video *v,
                       uint64_t *ver)
{
    reel_redis_video_init(v);
    *ver = 0;
    if (rep->type == REDIS_REPLY_NIL)
        return 0;
    if (rep->type != REDIS_REPLY_STRING || rep->len != 8 + V_REC)
        return -1;
    const unsigned char *p = get_u64((const unsigned char *)rep->str, ver);
    return unpack_video(p, v);
}

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
    args(r, "GET");
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

enum { MGET_MAX = 1000 }; /* keys per MGET */

/* Queues MGETs of the keys of the n records named by key_of(i). */
static void mget(reel_redis *r, uint32_t n,
                 void (*key_of)(reel_redis *, const void *, uint32_t),
                 const void *ctx)
{
    for (uint32_t at = 0; at < n; at += MGET_MAX) {
        args(r, "MGET");
        for (uint32_t i = at; i < n && i < at + MGET_MAX; i++)
            key_of(r, ctx, i);
        send_cmd(r);
    }
}

/* Walks the replies of mget(): the reply of record i, or NULL with the
 * connection lost; *chunk holds the current MGET's reply (freed when
 * it is done and at the end: i == n). */
static const redisReply *mget_next(reel_redis *r, uint32_t i, uint32_t n,
                                   redisReply **chunk)
{
    static const redisReply bad = {.type = REDIS_REPLY_ERROR};
    if (i % MGET_MAX == 0 || i == n) {
        if (*chunk)
            freeReplyObject(*chunk);
        *chunk = NULL;
        if (i == n)
            return NULL;
        if (!(*chunk = reply(r)))
            return NULL;
    }
    size_t j = i % MGET_MAX;
    if ((*chunk)->type == REDIS_REPLY_ARRAY && j < (*chunk)->elements)
        return (*chunk)->element[j];
    if ((*chunk)->type == REDIS_REPLY_ERROR)
        snprintf(r->err, sizeof r->err, "MGET: %.200s", (*chunk)->str);
    else
        snprintf(r->err, sizeof r->err, "MGET: unexpected reply");
    return &bad;
}

struct vkeys {
    const reel_redis_ids *ids;
    const uint32_t *vid;
};

static void vkey_of(reel_redis *r, const void *ctx, uint32_t i)
{
    const struct vkeys *k = ctx;
    arg_key(r, "v", k->ids->id(k->ids->ctx, k->vid[i]), "");
}

static int videos_get(reel_redis *r, const reel_redis_ids *ids,
                      const uint32_t *vid, uint32_t n, reel_redis_video *out)
{
    int rc = up(r);
    if (rc)
        return rc;
    mget(r, n, vkey_of, &(struct vkeys){ids, vid});
    redisReply *chunk = NULL;
    for (uint32_t i = 0; i < n; i++) {
        const redisReply *rep = mget_next(r, i, n, &chunk);
        if (!rep)
            return REEL_EUNAVAILABLE;
        uint64_t ver;
        if (!rc && rep->type == REDIS_REPLY_ERROR)
            rc = REEL_EIO;
        else if (!rc && parse_video(rep, &out[i], &ver))
            rc = corrupt(r, "video", ids->id(ids->ctx, vid[i]));
    }
    mget_next(r, n, n, &chunk);
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

struct pending {
    const reel_redis_ids *ids;
    const struct batch *b;
    const uint32_t *at; /* slots still to write */
};

static void ukey_of(reel_redis *r, const void *ctx, uint32_t i)
{
    const struct pending *p = ctx;
    arg_key(r, "u", p->b->u[p->at[i]].id, "");
}

static void pvkey_of(reel_redis *r, const void *ctx, uint32_t i)
{
    const struct pending *p = ctx;
    arg_key(r, "v", p->ids->id(p->ids->ctx, p->b->v[p->at[i]].video), "");
}

/* The user's events that carry an id. */
static uint32_t n_ids(const struct batch *b, const struct uslot *u)
{
    uint32_t n = 0;
    for (uint32_t j = 0; j < u->n; j++)
        n += b->ev[b->order[u->first + j]].id != NULL;
    return n;
}

/* Reads the records still to write (and, first, the users' applied
 * event ids) in one pipeline: MGETs of the users, ZMSCOREs, MGETs of
 * the videos. */
static int read_pending(reel_redis *r, const reel_redis_ids *ids,
                        struct batch *b, int first)
{
    uint32_t *pu = reel_xmalloc(((size_t)b->n_u + 1) * sizeof *pu);
    uint32_t *pv = reel_xmalloc(((size_t)b->n_v + 1) * sizeof *pv);
    uint32_t nu = 0, nv = 0;
    for (uint32_t i = 0; i < b->n_u; i++)
        if (!b->u[i].done)
            pu[nu++] = i;
    for (uint32_t i = 0; i < b->n_v; i++)
        if (!b->v[i].done)
            pv[nv++] = i;
    mget(r, nu, ukey_of, &(struct pending){ids, b, pu});
    for (uint32_t i = 0; first && i < nu; i++) {
        struct uslot *u = &b->u[pu[i]];
        if (!n_ids(b, u))
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
    mget(r, nv, pvkey_of, &(struct pending){ids, b, pv});
    int rc = 0;
    redisReply *chunk = NULL;
    for (uint32_t i = 0; i < nu; i++) {
        struct uslot *u = &b->u[pu[i]];
        const redisReply *rep = mget_next(r, i, nu, &chunk);
        if (!rep) {
            rc = REEL_EUNAVAILABLE;
            goto out;
        }
        if (!rc && rep->type == REDIS_REPLY_ERROR)
            rc = REEL_EIO;
        else if (!rc && parse_user(rep, ids, &u->fs, &u->ver))
            rc = corrupt(r, "user", u->id);
    }
    mget_next(r, nu, nu, &chunk);
    for (uint32_t i = 0; first && i < nu; i++) {
        struct uslot *u = &b->u[pu[i]];
        uint32_t n_id = n_ids(b, u);
        if (!n_id)
            continue;
        redisReply *rep = reply(r);
        if (!rep) {
            rc = REEL_EUNAVAILABLE;
            goto out;
        }
        if (rep->type == REDIS_REPLY_ERROR) {
            if (!rc) {
                snprintf(r->err, sizeof r->err, "ZMSCORE: %s", rep->str);
                rc = REEL_EUNSUPPORTED;
            }
        } else if (rep->type == REDIS_REPLY_ARRAY && rep->elements == n_id) {
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
    for (uint32_t i = 0; i < nv; i++) {
        struct vslot *v = &b->v[pv[i]];
        const redisReply *rep = mget_next(r, i, nv, &chunk);
        if (!rep) {
            rc = REEL_EUNAVAILABLE;
            goto out;
        }
        if (!rc && rep->type == REDIS_REPLY_ERROR)
            rc = REEL_EIO;
        else if (!rc && parse_video(rep, &v->st, &v->ver))
            rc = corrupt(r, "video", ids->id(ids->ctx, v->video));
        v->was = v->st;
    }
    mget_next(r, nv, nv, &chunk);
out:
    free(pu);
    free(pv);
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

/* Queues the change stream's entry: the batch's videos. */
static void queue_changes(reel_redis *r, const struct batch *b)
{
    unsigned char *x = reel_arena_alloc(&r->a, 4 * (size_t)b->n_v + 1, 1);
    for (uint32_t i = 0; i < b->n_v; i++)
        put_u32(x + 4 * i, b->v[i].video);
    args(r, "XADD");
    arg_plain_key(r, "changes");
    args(r, "MAXLEN");
    args(r, "~");
    argf(r, "%u", r->o.changes_max);
    args(r, "*");
    args(r, "v");
    arg(r, (const char *)x, 4 * (size_t)b->n_v);
    send_cmd(r);
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
        /* Write back in one script, each record only if nobody wrote it
         * meanwhile. KEYS first (their count is known), then ARGV. */
        uint32_t n_ent = 0, n_usr = 0;
        for (uint32_t i = 0; i < b.n_u; i++)
            n_usr += !b.u[i].done;
        for (uint32_t i = 0; i < b.n_v; i++)
            n_ent += !b.v[i].done;
        n_ent += n_usr;
        args(r, "EVALSHA");
        args(r, r->sha);
        argf(r, "%u", n_ent + 2 * n_usr);
        for (uint32_t i = 0; i < b.n_u; i++)
            if (!b.u[i].done)
                arg_key(r, "u", b.u[i].id, "");
        for (uint32_t i = 0; i < b.n_v; i++)
            if (!b.v[i].done)
                arg_key(r, "v", ids->id(ids->ctx, b.v[i].video), "");
        for (uint32_t i = 0; i < b.n_u; i++)
            if (!b.u[i].done) {
                arg_key(r, "u", b.u[i].id, ":h");
                arg_key(r, "u", b.u[i].id, ":ev");
            }
        argf(r, "%u", n_ent);
        argf(r, "%u", n_usr);
        argf(r, "%u", r->o.history_max);
        argf(r, "%u", r->o.event_ids_max);
        for (uint32_t i = 0; i < b.n_u; i++)
            if (!b.u[i].done) {
                unsigned char *x = reel_arena_alloc(&r->a, 8, 1);
                put_u64(x, b.u[i].ver);
                arg(r, (const char *)x, 8);
                arg_user_val(r, b.u[i].ver + 1, &b.u[i].fs);
            }
        for (uint32_t i = 0; i < b.n_v; i++)
            if (!b.v[i].done) {
                unsigned char *x = reel_arena_alloc(&r->a, 8, 1);
                put_u64(x, b.v[i].ver);
                arg(r, (const char *)x, 8);
                arg_video_val(r, b.v[i].ver + 1, &b.v[i].st);
            }
        uint32_t at = 0;
        for (uint32_t i = 0; i < b.n_u; i++) {
            struct uslot *u = &b.u[i];
            if (u->done)
                continue;
            argf(r, "%u", ++at);
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
            argf(r, "%u", nz);
            for (uint32_t j = 0; j < u->n; j++) {
                uint32_t e = b.order[u->first + j];
                if (!b.dup[e] && ev[e].id) {
                    argf(r, "%.17g", ev[e].ts);
                    args(r, ev[e].id);
                }
            }
        }
        send_cmd(r);
        redisReply *rep = reply(r);
        if (!rep) {
            rc = REEL_EUNAVAILABLE;
            break;
        }
        /* Entries (1-based, in the order sent) whose version moved. */
        uint8_t *moved = reel_xcalloc((size_t)n_ent + 1, 1);
        int again = 0;
        if (rep->type == REDIS_REPLY_ERROR) {
            snprintf(r->err, sizeof r->err, "EVALSHA: %.200s", rep->str);
            /* NOSCRIPT (a restarted Redis): load it again next call. */
            rc =
                strncmp(rep->str, "NOSCRIPT", 8) ? REEL_EIO : REEL_EUNAVAILABLE;
        } else if (rep->type == REDIS_REPLY_ARRAY) {
            for (size_t i = 0; i < rep->elements; i++)
                if (rep->element[i]->type == REDIS_REPLY_INTEGER &&
                    rep->element[i]->integer >= 1 &&
                    rep->element[i]->integer <= (long long)n_ent) {
                    moved[rep->element[i]->integer - 1] = 1;
                    again = 1;
                }
        } else {
            snprintf(r->err, sizeof r->err, "EVALSHA: unexpected reply");
            rc = REEL_EIO;
        }
        freeReplyObject(rep);
        if (rc == REEL_EUNAVAILABLE)
            drop(r, NULL);
        at = 0;
        for (uint32_t i = 0; i < b.n_u && !rc; i++)
            if (!b.u[i].done)
                b.u[i].done = !moved[at++];
        for (uint32_t i = 0; i < b.n_v && !rc; i++)
            if (!b.v[i].done)
                b.v[i].done = !moved[at++];
        free(moved);
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
    }
    if (!rc) {
        /* Tell the replicas which videos changed. */
        reel_arena_reset(&r->a);
        queue_changes(r, &b);
        redisReply *rep = reply(r);
        if (!rep)
            rc = REEL_EUNAVAILABLE;
        else
            freeReplyObject(rep);
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

/* Counts the videos of one change entry's value (4-byte little-endian
 * indexes), and with vid given, copies those below ids->n into it. */
static uint32_t entry_ids(const redisReply *val, const reel_redis_ids *ids,
                          uint32_t *vid, uint32_t *n)
{
    uint32_t count = (uint32_t)(val->len / 4);
    for (uint32_t i = 0; vid && i < count; i++) {
        uint32_t v;
        get_u32((const unsigned char *)val->str + 4 * i, &v);
        if (v < ids->n)
            vid[(*n)++] = v;
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
    args(r, "SET");
    arg_key(r, "u", user, "");
    arg_user_val(r, 1, fs);
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
    args(r, "SET");
    arg_key(r, "v", ids->id(ids->ctx, video), "");
    arg_video_val(r, 1, v);
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
