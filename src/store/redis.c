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
#include "base/sort.h"
#include "data/interactions.h"

enum {
    BACKOFF_MIN_MS = 50,
    BACKOFF_MAX_MS = 2000,
    MAX_ROUNDS = 50,    /* compare-and-set rounds of one apply */
    SEED_LOCK_S = 3600, /* a seeding process that died frees it after */
    STATE_FORMAT = 2    /* reel:meta's format (docs/formats/redis.md) */
};

/*
 * One batch's writes, each user only if its record's version (the value's
 * first 8 bytes) is what was read. ARGV: the user count n, the history
 * cap, the event-id cap; per user: the version read (8 bytes) and the new
 * value; then per user: n history entries and the entries, n event ids
 * and (score, id) pairs, and its events' video halves (one string, maybe
 * empty). KEYS: the n records, then per user its history list and id set,
 * then the video log. A user's list, ids and video halves are written
 * only with its record; the video halves of the users written go to the
 * log as one entry. Returns the users (1-based) whose version had moved.
 */
static const char BATCH_LUA[] =
    "local n = tonumber(ARGV[1])\n"
    "local hmax, imax = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
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
    "    if (v and string.sub(v, 1, 8) or zero) == ARGV[2 + 2 * i] then\n"
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
    "    set[#set + 1] = ARGV[3 + 2 * i]\n"
    "    if #set == 1000 then redis.call('MSET', unpack(set)); set = {} end\n"
    "  end\n"
    "end\n"
    "if #set > 0 then redis.call('MSET', unpack(set)) end\n"
    "local at, k, halves = 4 + 2 * n, n + 1, {}\n"
    "for j = 1, n do\n"
    "  local nh = tonumber(ARGV[at])\n"
    "  at = at + 1\n"
    "  if ok[j] and nh > 0 and push('LPUSH', KEYS[k], at, nh) > hmax then\n"
    "    redis.call('LTRIM', KEYS[k], 0, hmax - 1)\n"
    "  end\n"
    "  at = at + nh\n"
    "  local nz = tonumber(ARGV[at])\n"
    "  at = at + 1\n"
    "  if ok[j] and nz > 0 then\n"
    "    push('ZADD', KEYS[k + 1], at, 2 * nz)\n"
    "    redis.call('ZREMRANGEBYRANK', KEYS[k + 1], 0, -imax - 1)\n"
    "  end\n"
    "  at = at + 2 * nz\n"
    "  if ok[j] and #ARGV[at] > 0 then halves[#halves + 1] = ARGV[at] end\n"
    "  at = at + 1\n"
    "  k = k + 2\n"
    "end\n"
    "if #halves > 0 then\n"
    "  redis.call('XADD', KEYS[k], '*', 'e', table.concat(halves))\n"
    "end\n"
    "return failed\n";

struct reel_redis {
    reel_redis_opts o;
    char *prefix;
    char *host, *path; /* one of them */
    int port, db;
    redisContext *c;
    char sha[41]; /* BATCH_LUA's, once loaded */
    uint64_t retry_at_ms;
    int backoff_ms;
    char err[256];
    reel_arena a; /* per call */
    /* Command building. */
    const char **argv;
    size_t *argl;
    int argc, cap;
    uint32_t pending;    /* replies owed by the seeding pipeline */
    int reused;          /* this call began on an open connection */
    uint64_t jitter;     /* the pauses between compare-and-set rounds */
    char ckpt_token[48]; /* the checkpoint lock's value, while held */
    int ckpt_lock_ms;
};

void reel_redis_opts_init(reel_redis_opts *o)
{
    *o = (reel_redis_opts){.prefix = "reel",
                           .connect_timeout_ms = 200,
                           .io_timeout_ms = 1000,
                           .history_max = 1000,
                           .event_ids_max = 1000,
                           .tx_users = 128};
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

/* Decimal digits of x at p; returns the end. */
static char *put_dec(char *p, size_t x)
{
    char tmp[24];
    int n = 0;
    do
        tmp[n++] = (char)('0' + x % 10);
    while (x /= 10);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* Queues the command built with arg(), in the protocol's own encoding
 * (formatted here: hiredis's formatter costs several times more); the
 * next starts empty. */
static void send_cmd(reel_redis *r)
{
    size_t len = 16;
    for (int i = 0; i < r->argc; i++)
        len += 24 + r->argl[i];
    char *b = reel_arena_alloc(&r->a, len, 1), *p = b;
    *p++ = '*';
    p = put_dec(p, (size_t)r->argc);
    *p++ = '\r';
    *p++ = '\n';
    for (int i = 0; i < r->argc; i++) {
        *p++ = '$';
        p = put_dec(p, r->argl[i]);
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, r->argv[i], r->argl[i]);
        p += r->argl[i];
        *p++ = '\r';
        *p++ = '\n';
    }
    assert((size_t)(p - b) <= len);
    redisAppendFormattedCommand(r->c, b, (size_t)(p - b));
    r->argc = 0;
}

/* An integer argument (printf would cost more than the command). */
static void arg_int(reel_redis *r, long long x)
{
    char *b = reel_arena_alloc(&r->a, 24, 1), *p = b;
    if (x < 0) {
        *p++ = '-';
        p = put_dec(p, (size_t)(-(x + 1)) + 1);
    } else {
        p = put_dec(p, (size_t)x);
    }
    arg(r, b, (size_t)(p - b));
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
 * PREFIX:{v:ID}, PREFIX:vlog, PREFIX:meta, PREFIX:seeding,
 * PREFIX:checkpoint. */
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

static void arg_double(reel_redis *r, double x)
{
    argf(r, "%.17g", x);
}

/* A history entry: the type (u8), the time (f64, little-endian), the
 * video's id. */
static void arg_hist(reel_redis *r, const reel_redis_ids *ids, uint8_t type,
                     double ts, uint32_t video)
{
    const char *id = ids->id(ids->ctx, video);
    size_t n = strlen(id);
    unsigned char *b = reel_arena_alloc(&r->a, 9 + n, 1);
    b[0] = type;
    uint64_t x;
    memcpy(&x, &ts, 8);
    for (int i = 0; i < 8; i++)
        b[1 + i] = (unsigned char)(x >> (8 * i));
    memcpy(b + 9, id, n);
    arg(r, (const char *)b, 9 + n);
}

static void arg_sid(reel_redis *r, reel_redis_sid at)
{
    argf(r, "%" PRIu64 "-%" PRIu64, at.ms, at.seq);
}

int reel_redis_sid_cmp(reel_redis_sid a, reel_redis_sid b)
{
    if (a.ms != b.ms)
        return a.ms < b.ms ? -1 : 1;
    return (a.seq > b.seq) - (a.seq < b.seq);
}

static int parse_sid(const char *s, size_t len, reel_redis_sid *at)
{
    char tmp[64];
    if (len >= sizeof tmp)
        return -1;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    char *end;
    errno = 0;
    unsigned long long ms = strtoull(tmp, &end, 10);
    if (end == tmp || *end != '-' || errno)
        return -1;
    const char *q = end + 1;
    unsigned long long seq = strtoull(q, &end, 10);
    if (end == q || *end || errno)
        return -1;
    *at = (reel_redis_sid){ms, seq};
    return 0;
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
    REC_FORMAT = 1,                      /* the video record's */
    U_FORMAT = 2,                        /* the user record's (variable size) */
    U_FIXED = 1 + 8 + 8 + 4 * 4 + 4 * 2, /* then buckets and the ring */
    U_MAX = U_FIXED + 1 + 5 * REEL_FEAT_CAT_BUCKETS + 1 +
            5 * REEL_FEAT_LANG_BUCKETS + 1 + 4 * REEL_FEAT_RING,
    V_REC = 1 + 8 + 4 * 4 + 4 * 4 + 4 + 4 + 8 + 4 * REEL_SEGMENTS
};

/* The sizes docs/formats/redis.md gives. */
_Static_assert(U_MAX == 572, "the user record of docs/formats/redis.md");
_Static_assert(REEL_FEAT_CAT_BUCKETS <= 255 && REEL_FEAT_LANG_BUCKETS <= 255 &&
                   REEL_FEAT_RING <= 255,
               "counts of the user record are one byte");
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

/* Sparse buckets: a count (u8), then (bucket u8, value f32) for every
 * bucket that is not 0, by bucket. */
static unsigned char *put_buckets(unsigned char *p, const float *x, int n)
{
    unsigned char *count = p++;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (x[i] != 0) {
            *p++ = (unsigned char)i;
            p = put_f32(p, x[i]);
            k++;
        }
    *count = (unsigned char)k;
    return p;
}

static const unsigned char *
get_buckets(const unsigned char *p, const unsigned char *end, float *x, int n)
{
    if (p >= end)
        return NULL;
    int k = *p++, last = -1;
    if (k > n || (size_t)(end - p) < (size_t)k * 5)
        return NULL;
    for (int j = 0; j < k; j++) {
        int i = *p++;
        if (i <= last || i >= n)
            return NULL;
        p = get_f32(p, &x[i]);
        if (!isfinite(x[i]) || x[i] == 0)
            return NULL;
        last = i;
    }
    return p;
}

/* The user record at p (len bytes) into u. */
static int unpack_user(const unsigned char *p, size_t len,
                       const reel_redis_ids *ids, reel_fs_user *u)
{
    const unsigned char *end = p + len;
    if (len < U_FIXED || *p++ != U_FORMAT)
        return -1;
    p = get_f64(p, &u->last_ts);
    p = get_f64(p, &u->share_ts);
    p = get_u32(p, &u->views);
    p = get_u32(p, &u->impressions);
    p = get_u32(p, &u->wf_n);
    p = get_u32(p, &u->rating_n);
    p = get_f32(p, &u->wf_sum);
    p = get_f32(p, &u->rating_sum);
    if (!(p = get_buckets(p, end, u->cat, REEL_FEAT_CAT_BUCKETS)) ||
        !(p = get_buckets(p, end, u->lang, REEL_FEAT_LANG_BUCKETS)) || p >= end)
        return -1;
    /* The ring, oldest first: video indexes (the same in every process:
     * they share the dataset, whose fingerprint the marker holds). */
    uint32_t n = *p++;
    if (n > REEL_FEAT_RING || (size_t)(end - p) != 4 * (size_t)n)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t v;
        p = get_u32(p, &v);
        if (v >= ids->n)
            return -1;
        u->ring[i] = v;
    }
    u->ring_n = n;
    u->ring_at = n % REEL_FEAT_RING;
    return isfinite(u->share_ts) ? 0 : -1;
}

/* The value of a user's key: version ver, then the record of u. */
static void arg_user_val(reel_redis *r, uint64_t ver, const reel_fs_user *u)
{
    unsigned char *b = reel_arena_alloc(&r->a, 8 + U_MAX, 1), *p = b;
    p = put_u64(p, ver);
    *p++ = U_FORMAT;
    p = put_f64(p, u->last_ts);
    p = put_f64(p, u->share_ts);
    p = put_u32(p, u->views);
    p = put_u32(p, u->impressions);
    p = put_u32(p, u->wf_n);
    p = put_u32(p, u->rating_n);
    p = put_f32(p, u->wf_sum);
    p = put_f32(p, u->rating_sum);
    p = put_buckets(p, u->cat, REEL_FEAT_CAT_BUCKETS);
    p = put_buckets(p, u->lang, REEL_FEAT_LANG_BUCKETS);
    uint32_t ring[REEL_FEAT_RING], n = reel_fs_user_recent(u, ring);
    *p++ = (unsigned char)n;
    for (uint32_t i = 0; i < n; i++)
        p = put_u32(p, ring[i]);
    assert(p - b <= 8 + U_MAX);
    arg(r, (const char *)b, (size_t)(p - b));
}

/* A user's value (GET, MGET) into u and *ver; none: a new user. */
static int parse_user(const redisReply *rep, const reel_redis_ids *ids,
                      reel_fs_user *u, uint64_t *ver)
{
    reel_fs_user_init(u);
    *ver = 0;
    if (rep->type == REDIS_REPLY_NIL)
        return 0;
    if (rep->type != REDIS_REPLY_STRING || rep->len < 8 + U_FIXED ||
        rep->len > 8 + U_MAX)
        return -1;
    const unsigned char *p = get_u64((const unsigned char *)rep->str, ver);
    return unpack_user(p, rep->len - 8, ids, u);
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

/* The value of a video's key: the log position it includes (ms, seq),
 * then the record of v. */
static void arg_video_val(reel_redis *r, const reel_redis_video *v)
{
    unsigned char *b = reel_arena_alloc(&r->a, 16 + V_REC, 1), *p = b;
    p = put_u64(p, v->at.ms);
    p = put_u64(p, v->at.seq);
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
    assert(p - b == 16 + V_REC);
    arg(r, (const char *)b, 16 + V_REC);
}

/* A video's value (MGET) into v; none: no event yet. */
static int parse_video(const redisReply *rep, reel_redis_video *v)
{
    reel_redis_video_init(v);
    if (rep->type == REDIS_REPLY_NIL)
        return 0;
    if (rep->type != REDIS_REPLY_STRING || rep->len != 16 + V_REC)
        return -1;
    const unsigned char *p = (const unsigned char *)rep->str;
    p = get_u64(p, &v->at.ms);
    p = get_u64(p, &v->at.seq);
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
    if (e->type != REDIS_REPLY_STRING || e->len < 10)
        return -1;
    const unsigned char *p = (const unsigned char *)e->str;
    get_f64(p + 1, &h->ts);
    if (!isfinite(h->ts))
        return -1;
    h->type = p[0];
    h->video = ids->index(ids->ctx, e->str + 9, e->len - 9);
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
        if (!rc && rep->type == REDIS_REPLY_ERROR)
            rc = REEL_EIO;
        else if (!rc && parse_video(rep, &out[i]))
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

struct batch {
    const reel_redis_event *ev;
    uint32_t n;
    uint32_t *order; /* events by user (stable), then by position */
    uint8_t *dup;    /* event already applied */
    uint8_t *repeat; /* the user half's verdict */
    struct uslot *u;
    uint32_t n_u;
};

static const reel_redis_event *ev_sort_base;

static int by_user(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    int c = strcmp(ev_sort_base[x].user, ev_sort_base[y].user);
    return c ? c : (x > y) - (x < y);
}

static void batch_free(struct batch *b)
{
    free(b->order);
    free(b->dup);
    free(b->repeat);
    free(b->u);
}

/* Groups the events by user (the sort is single-threaded and rare: one
 * per batch; qsort_r is not C17, hence the static base, guarded by a
 * lock). */
static pthread_mutex_t sort_mu = PTHREAD_MUTEX_INITIALIZER;

static void batch_init(struct batch *b, const reel_redis_event *ev, uint32_t n)
{
    memset(b, 0, sizeof *b);
    b->ev = ev;
    b->n = n;
    b->order = reel_xmalloc(((size_t)n + 1) * sizeof *b->order);
    b->dup = reel_xcalloc((size_t)n + 1, 1);
    b->repeat = reel_xcalloc((size_t)n + 1, 1);
    b->u = reel_xcalloc((size_t)n + 1, sizeof *b->u);
    for (uint32_t i = 0; i < n; i++)
        b->order[i] = i;
    pthread_mutex_lock(&sort_mu);
    ev_sort_base = ev;
    qsort(b->order, n, sizeof *b->order, by_user);
    pthread_mutex_unlock(&sort_mu);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t e = b->order[i];
        if (!b->n_u || strcmp(b->u[b->n_u - 1].id, ev[e].user)) {
            b->u[b->n_u] = (struct uslot){.id = ev[e].user, .first = i};
            b->n_u++;
        }
        b->u[b->n_u - 1].n++;
    }
}

struct pending {
    const struct batch *b;
    const uint32_t *at; /* slots still to write */
};

static void ukey_of(reel_redis *r, const void *ctx, uint32_t i)
{
    const struct pending *p = ctx;
    arg_key(r, "u", p->b->u[p->at[i]].id, "");
}

/* The user's events that carry an id. */
static uint32_t n_ids(const struct batch *b, const struct uslot *u)
{
    uint32_t n = 0;
    for (uint32_t j = 0; j < u->n; j++)
        n += b->ev[b->order[u->first + j]].id != NULL;
    return n;
}

/* Queues the reads of users pu[0..nu): WATCHes of them (watch), MGETs,
 * and (first) ZMSCOREs of their event ids. */
static void send_reads(reel_redis *r, const struct batch *b, const uint32_t *pu,
                       uint32_t nu, int first, int watch)
{
    const struct pending p = {b, pu};
    for (uint32_t at = 0; watch && at < nu; at += MGET_MAX) {
        args(r, "WATCH");
        for (uint32_t i = at; i < nu && i < at + MGET_MAX; i++)
            ukey_of(r, &p, i);
        send_cmd(r);
    }
    mget(r, nu, ukey_of, &p);
    for (uint32_t i = 0; first && i < nu; i++) {
        const struct uslot *u = &b->u[pu[i]];
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
}

/* Reads the replies of send_reads() into the users' slots and the
 * events' dup flags. */
static int recv_reads(reel_redis *r, const reel_redis_ids *ids, struct batch *b,
                      const uint32_t *pu, uint32_t nu, int first, int watch)
{
    int rc = 0;
    for (uint32_t at = 0; watch && at < nu; at += MGET_MAX) {
        redisReply *rep = reply(r);
        if (!rep)
            return REEL_EUNAVAILABLE;
        if (rep->type == REDIS_REPLY_ERROR && !rc) {
            snprintf(r->err, sizeof r->err, "WATCH: %.200s", rep->str);
            rc = REEL_EIO;
        }
        freeReplyObject(rep);
    }
    redisReply *chunk = NULL;
    for (uint32_t i = 0; i < nu; i++) {
        struct uslot *u = &b->u[pu[i]];
        const redisReply *rep = mget_next(r, i, nu, &chunk);
        if (!rep)
            return REEL_EUNAVAILABLE;
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
        if (!rep)
            return REEL_EUNAVAILABLE;
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
    return rc;
}

/* Reads the users still to write (and, first, their applied event ids)
 * in one round trip. */
static int read_pending(reel_redis *r, const reel_redis_ids *ids,
                        struct batch *b, int first)
{
    uint32_t *pu = reel_xmalloc(((size_t)b->n_u + 1) * sizeof *pu);
    uint32_t nu = 0;
    for (uint32_t i = 0; i < b->n_u; i++)
        if (!b->u[i].done)
            pu[nu++] = i;
    send_reads(r, b, pu, nu, first, 0);
    int rc = recv_reads(r, ids, b, pu, nu, first, 0);
    free(pu);
    return rc;
}

/* One video half in the log: video u32, position in its batch u32, ts
 * f64, watch_s f32, rating f32, type u8, repeat u8, segment u8, 0 u8. */
enum { VEV = 4 + 4 + 8 + 4 + 4 + 4 };

/* Whether an event changes its video's statistics. */
static int moves_video(uint8_t type)
{
    return type == REEL_EV_IMPRESSION || reel_event_is_positive(type);
}

/* u's events not already applied that go into its history (all but
 * impressions) and that carry an id. */
static void user_counts(const struct batch *b, const struct uslot *u,
                        uint32_t *nh, uint32_t *nz)
{
    *nh = *nz = 0;
    for (uint32_t j = 0; j < u->n; j++) {
        uint32_t e = b->order[u->first + j];
        *nh += !b->dup[e] && b->ev[e].type != REEL_EV_IMPRESSION;
        *nz += !b->dup[e] && b->ev[e].id;
    }
}

/* Those history entries, as arguments. */
static void arg_hist_of(reel_redis *r, const reel_redis_ids *ids,
                        const struct batch *b, const struct uslot *u)
{
    for (uint32_t j = 0; j < u->n; j++) {
        uint32_t k = b->order[u->first + j];
        const reel_redis_event *e = &b->ev[k];
        if (!b->dup[k] && e->type != REEL_EV_IMPRESSION)
            arg_hist(r, ids, e->type, e->ts, e->video);
    }
}

/* Those event ids, as (score, id) pairs. */
static void arg_ids_of(reel_redis *r, const struct batch *b,
                       const struct uslot *u)
{
    for (uint32_t j = 0; j < u->n; j++) {
        uint32_t k = b->order[u->first + j];
        const reel_redis_event *e = &b->ev[k];
        if (!b->dup[k] && e->id) {
            arg_double(r, e->ts);
            args(r, e->id);
        }
    }
}

/* Event e's video half (its position in the batch: pos) at p. */
static unsigned char *put_half(unsigned char *p, const reel_redis_event *ev,
                               uint32_t pos, uint8_t repeat)
{
    p = put_u32(p, ev->video);
    p = put_u32(p, pos);
    p = put_f64(p, ev->ts);
    p = put_f32(p, ev->watch_s);
    p = put_f32(p, ev->rating);
    *p++ = ev->type;
    *p++ = repeat;
    *p++ = (uint8_t)(ev->seg < REEL_SEGMENTS ? ev->seg : REEL_NO_SEGMENT);
    *p++ = 0;
    return p;
}

/* The video halves of u's events not already applied, as one argument. */
static void arg_halves(reel_redis *r, const struct batch *b,
                       const struct uslot *u)
{
    uint32_t m = 0;
    for (uint32_t j = 0; j < u->n; j++) {
        uint32_t e = b->order[u->first + j];
        m += !b->dup[e] && moves_video(b->ev[e].type);
    }
    unsigned char *x = reel_arena_alloc(&r->a, (size_t)m * VEV + 1, 1), *p = x;
    for (uint32_t j = 0; j < u->n; j++) {
        uint32_t e = b->order[u->first + j];
        if (!b->dup[e] && moves_video(b->ev[e].type))
            p = put_half(p, &b->ev[e], e, b->repeat[e]);
    }
    assert((size_t)(p - x) == (size_t)m * VEV);
    arg(r, (const char *)x, (size_t)m * VEV);
}

void reel_redis_video_apply(const reel_featstate *fs, reel_redis_video *v,
                            const reel_redis_vevent *e)
{
    reel_featstate_apply_video(fs, &v->fs, e->video, e->type, e->ts, e->watch_s,
                               e->rating, e->repeat);
    if (!reel_event_is_positive(e->type))
        return;
    /* The cold start's counts, as the embedded store keeps them. */
    v->pos++;
    double dt = e->ts - v->d1_ts;
    if (dt >= 0) {
        v->d1 = (float)(v->d1 * exp2(-dt / 86400.0) + 1);
        v->d1_ts = e->ts;
    } else {
        v->d1 = (float)(v->d1 + exp2(dt / 86400.0));
    }
    if (e->seg < REEL_SEGMENTS && e->seg != REEL_NO_SEGMENT)
        v->seg[e->seg]++;
}

/* The user halves of users lo..hi still to write, each user's events in
 * order. */
static void user_halves(const reel_featstate *fs, struct batch *b, uint32_t lo,
                        uint32_t hi)
{
    const reel_redis_event *ev = b->ev;
    for (uint32_t i = lo; i < hi; i++) {
        struct uslot *u = &b->u[i];
        if (u->done)
            continue;
        for (uint32_t j = 0; j < u->n; j++) {
            uint32_t e = b->order[u->first + j];
            if (!b->dup[e])
                b->repeat[e] = reel_featstate_apply_user(
                                   fs, &u->fs, ev[e].video, ev[e].type,
                                   ev[e].ts, ev[e].watch_s, ev[e].rating) > 0;
        }
    }
}

static void unwatch(reel_redis *r)
{
    if (!r->c)
        return;
    redisReply *rep = command(r, "UNWATCH");
    if (rep)
        freeReplyObject(rep);
}

/* Users per transaction (o.tx_users): WATCH compares each key with every
 * key the connection already watches, so one transaction watches few. */
enum { TX_CONFLICT = 1 };

/* Queues one transaction writing users lo..hi (their records, history,
 * event ids and, as one log entry, their events' video halves in the
 * batch's order); returns the commands queued between MULTI and EXEC. */
static uint32_t send_tx(reel_redis *r, const reel_redis_ids *ids,
                        const struct batch *b, uint32_t lo, uint32_t hi)
{
    const reel_redis_event *ev = b->ev;
    uint32_t queued = 0, m = 0;
    args(r, "MULTI");
    send_cmd(r);
    args(r, "MSET");
    for (uint32_t i = lo; i < hi; i++) {
        arg_key(r, "u", b->u[i].id, "");
        arg_user_val(r, b->u[i].ver + 1, &b->u[i].fs);
    }
    send_cmd(r);
    queued++;
    for (uint32_t i = lo; i < hi; i++) {
        const struct uslot *u = &b->u[i];
        uint32_t nh, nz;
        user_counts(b, u, &nh, &nz);
        for (uint32_t j = 0; j < u->n; j++) {
            uint32_t e = b->order[u->first + j];
            m += !b->dup[e] && moves_video(ev[e].type);
        }
        if (nh) {
            args(r, "LPUSH");
            arg_key(r, "u", u->id, ":h");
            arg_hist_of(r, ids, b, u);
            send_cmd(r);
            args(r, "LTRIM");
            arg_key(r, "u", u->id, ":h");
            args(r, "0");
            arg_int(r, (long long)r->o.history_max - 1);
            send_cmd(r);
            queued += 2;
        }
        if (nz) {
            args(r, "ZADD");
            arg_key(r, "u", u->id, ":ev");
            arg_ids_of(r, b, u);
            send_cmd(r);
            args(r, "ZREMRANGEBYRANK");
            arg_key(r, "u", u->id, ":ev");
            args(r, "0");
            arg_int(r, -(long long)r->o.event_ids_max - 1);
            send_cmd(r);
            queued += 2;
        }
    }
    if (m) {
        /* The video halves in the batch's order. */
        uint32_t *pos = reel_xmalloc((size_t)m * sizeof *pos), k = 0;
        for (uint32_t i = lo; i < hi; i++)
            for (uint32_t j = 0; j < b->u[i].n; j++) {
                uint32_t e = b->order[b->u[i].first + j];
                if (!b->dup[e] && moves_video(ev[e].type))
                    pos[k++] = e;
            }
        qsort(pos, m, sizeof *pos, reel_sort_cmp_u32);
        unsigned char *x = reel_arena_alloc(&r->a, (size_t)m * VEV, 1), *p = x;
        for (uint32_t i = 0; i < m; i++)
            p = put_half(p, &ev[pos[i]], pos[i], b->repeat[pos[i]]);
        free(pos);
        args(r, "XADD");
        arg_plain_key(r, "vlog");
        args(r, "*");
        args(r, "e");
        arg(r, (const char *)x, (size_t)m * VEV);
        send_cmd(r);
        queued++;
    }
    args(r, "EXEC");
    send_cmd(r);
    return queued;
}

/* The replies of send_tx(): 0 with users lo..hi written, TX_CONFLICT when
 * another client wrote one of them first (EXEC wrote nothing), an
 * error. */
static int recv_tx(reel_redis *r, struct batch *b, uint32_t lo, uint32_t hi,
                   uint32_t queued)
{
    int rc = 0;
    for (uint32_t i = 0; i < 1 + queued; i++) {
        redisReply *rep = reply(r);
        if (!rep)
            return REEL_EUNAVAILABLE;
        if (rep->type == REDIS_REPLY_ERROR && !rc) {
            snprintf(r->err, sizeof r->err, "MULTI: %.200s", rep->str);
            rc = REEL_EIO;
        }
        freeReplyObject(rep);
    }
    redisReply *rep = reply(r);
    if (!rep)
        return REEL_EUNAVAILABLE;
    if (rep->type == REDIS_REPLY_NIL) {
        freeReplyObject(rep);
        return rc ? rc : TX_CONFLICT;
    }
    if (rep->type == REDIS_REPLY_ERROR && !rc) {
        snprintf(r->err, sizeof r->err, "EXEC: %.200s", rep->str);
        rc = REEL_EIO;
    } else if (rep->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < rep->elements && !rc; i++)
            if (rep->element[i]->type == REDIS_REPLY_ERROR) {
                snprintf(r->err, sizeof r->err, "EXEC: %.200s",
                         rep->element[i]->str);
                rc = REEL_EIO;
            }
    }
    freeReplyObject(rep);
    for (uint32_t i = lo; i < hi && !rc; i++)
        b->u[i].done = 1;
    return rc;
}

/*
 * The fast path, for users nobody else writes meanwhile (the usual case:
 * one writer per user at a time): o.tx_users users at a time are watched and
 * read, then written in one MULTI/EXEC of plain commands (no script); the
 * next ones' reads go in the same round trip as this one's writes.
 * 0 once every user is written; TX_CONFLICT when another client wrote some
 * first (those are left not done); an error.
 */
static int apply_tx(reel_redis *r, const reel_featstate *fs,
                    const reel_redis_ids *ids, struct batch *b)
{
    uint32_t *pu = reel_xmalloc(((size_t)b->n_u + 1) * sizeof *pu);
    for (uint32_t i = 0; i < b->n_u; i++)
        pu[i] = i;
    const uint32_t T = r->o.tx_users;
    reel_arena_reset(&r->a);
    uint32_t hi0 = b->n_u < T ? b->n_u : T;
    send_reads(r, b, pu, hi0, 1, 1);
    int rc = 0, conflict = 0;
    uint32_t plo = 0, phi = 0, pq = 0;
    for (uint32_t lo = 0; lo < b->n_u; lo += T) {
        uint32_t hi = b->n_u - lo < T ? b->n_u : lo + T;
        if (lo) {
            rc = recv_tx(r, b, plo, phi, pq);
            if (rc == TX_CONFLICT) {
                conflict = 1;
                rc = 0;
            } else if (rc) {
                /* This chunk's reads are still owed: start afresh. */
                drop(r, NULL);
                break;
            }
        }
        rc = recv_reads(r, ids, b, pu + lo, hi - lo, 1, 1);
        /* Nothing is written before the first read: a dead connection
         * is replaced once. */
        if (!lo && stale(r, rc) && !(rc = up(r))) {
            send_reads(r, b, pu, hi0, 1, 1);
            rc = recv_reads(r, ids, b, pu, hi0, 1, 1);
        }
        if (rc) {
            unwatch(r);
            break;
        }
        user_halves(fs, b, lo, hi);
        reel_arena_reset(&r->a);
        pq = send_tx(r, ids, b, lo, hi);
        plo = lo;
        phi = hi;
        if (hi < b->n_u) {
            uint32_t next = b->n_u - hi < T ? b->n_u - hi : T;
            send_reads(r, b, pu + hi, next, 1, 1);
        }
        if (hi == b->n_u) {
            rc = recv_tx(r, b, plo, phi, pq);
            if (rc == TX_CONFLICT) {
                conflict = 1;
                rc = 0;
            }
        }
    }
    free(pu);
    return rc ? rc : conflict ? TX_CONFLICT : 0;
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
    /* Conflicts: each user by compare-and-set in a script, round after
     * round, until every one is written. */
    rc = r->o.tx_users ? apply_tx(r, fs, ids, &b) : TX_CONFLICT;
    for (int round = 0; rc == TX_CONFLICT; round++) {
        if (round == MAX_ROUNDS) {
            snprintf(r->err, sizeof r->err,
                     "records kept changing under %d attempts", MAX_ROUNDS);
            rc = REEL_EBUSY;
            break;
        }
        reel_arena_reset(&r->a);
        /* The event ids again too: a racing writer may have applied some. */
        if ((rc = read_pending(r, ids, &b, round == 0)))
            break;
        user_halves(fs, &b, 0, b.n_u);
        /* Write back in one script, each user only if nobody wrote it
         * meanwhile. KEYS first (their count is known), then ARGV. */
        uint32_t n_usr = 0;
        for (uint32_t i = 0; i < b.n_u; i++)
            n_usr += !b.u[i].done;
        args(r, "EVALSHA");
        args(r, r->sha);
        arg_int(r, 3 * (long long)n_usr + 1);
        for (uint32_t i = 0; i < b.n_u; i++)
            if (!b.u[i].done)
                arg_key(r, "u", b.u[i].id, "");
        for (uint32_t i = 0; i < b.n_u; i++)
            if (!b.u[i].done) {
                arg_key(r, "u", b.u[i].id, ":h");
                arg_key(r, "u", b.u[i].id, ":ev");
            }
        arg_plain_key(r, "vlog");
        arg_int(r, n_usr);
        arg_int(r, r->o.history_max);
        arg_int(r, r->o.event_ids_max);
        for (uint32_t i = 0; i < b.n_u; i++)
            if (!b.u[i].done) {
                unsigned char *x = reel_arena_alloc(&r->a, 8, 1);
                put_u64(x, b.u[i].ver);
                arg(r, (const char *)x, 8);
                arg_user_val(r, b.u[i].ver + 1, &b.u[i].fs);
            }
        for (uint32_t i = 0; i < b.n_u; i++) {
            struct uslot *u = &b.u[i];
            if (u->done)
                continue;
            uint32_t nh, nz;
            user_counts(&b, u, &nh, &nz);
            arg_int(r, nh);
            arg_hist_of(r, ids, &b, u);
            arg_int(r, nz);
            arg_ids_of(r, &b, u);
            arg_halves(r, &b, u);
        }
        send_cmd(r);
        redisReply *rep = reply(r);
        if (!rep) {
            rc = REEL_EUNAVAILABLE;
            break;
        }
        /* Users (1-based, in the order sent) whose version moved. */
        uint8_t *moved = reel_xcalloc((size_t)n_usr + 1, 1);
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
                    rep->element[i]->integer <= (long long)n_usr) {
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
        uint32_t at = 0;
        for (uint32_t i = 0; i < b.n_u && !rc; i++)
            if (!b.u[i].done)
                b.u[i].done = !moved[at++];
        free(moved);
        if (rc || !again)
            break;
        /* Writers racing for the same users: a random pause, growing
         * with the rounds (up to 20 ms), lets one of them through. */
        r->jitter = r->jitter * 6364136223846793005ull + 1442695040888963407ull;
        unsigned cap = round < 4 ? 1u << round : 20u;
        struct timespec ts = {0,
                              (long)((r->jitter >> 33) % (cap * 1000u)) * 1000};
        nanosleep(&ts, NULL);
        rc = TX_CONFLICT;
    }
    if (!rc) {
        for (uint32_t e = 0; e < n; e++)
            *n_dup += b.dup[e];
    }
    batch_free(&b);
    return rc;
}

/* ------------------------------------------------------------ video log */

int reel_redis_vlog_tail(reel_redis *r, reel_redis_sid *tail)
{
    *tail = (reel_redis_sid){0, 0};
    int rc = up(r);
    if (rc)
        return rc;
    args(r, "XREVRANGE");
    arg_plain_key(r, "vlog");
    args(r, "+");
    args(r, "-");
    args(r, "COUNT");
    args(r, "1");
    send_cmd(r);
    redisReply *rep = reply(r);
    if (!rep)
        return REEL_EUNAVAILABLE;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
        rep->element[0]->type == REDIS_REPLY_ARRAY &&
        rep->element[0]->elements == 2 &&
        rep->element[0]->element[0]->type == REDIS_REPLY_STRING &&
        parse_sid(rep->element[0]->element[0]->str,
                  rep->element[0]->element[0]->len, tail))
        rc = corrupt(r, "log", "vlog");
    freeReplyObject(rep);
    return rc;
}

struct posev {
    uint32_t pos;
    reel_redis_vevent e;
};

static int by_pos(const void *a, const void *b)
{
    uint32_t x = ((const struct posev *)a)->pos,
             y = ((const struct posev *)b)->pos;
    return (x > y) - (x < y);
}

/* The events of one log entry's value, in their batch's order, appended
 * to *ev; malformed ones are counted in *bad and left out. */
static void entry_events(const redisReply *val, reel_redis_sid at,
                         const reel_redis_ids *ids, reel_redis_vevent **ev,
                         size_t *cap, uint32_t *n, uint32_t *bad)
{
    size_t m = val->len / VEV;
    if (val->len % VEV)
        ++*bad;
    struct posev *t = reel_xmalloc((m + 1) * sizeof *t);
    size_t k = 0;
    const unsigned char *p = (const unsigned char *)val->str;
    for (size_t i = 0; i < m; i++) {
        struct posev x = {0};
        float w, rt;
        p = get_u32(p, &x.e.video);
        p = get_u32(p, &x.pos);
        p = get_f64(p, &x.e.ts);
        p = get_f32(p, &w);
        p = get_f32(p, &rt);
        x.e.watch_s = w;
        x.e.rating = rt;
        x.e.type = *p++;
        x.e.repeat = *p++;
        x.e.seg = *p++;
        p++;
        x.e.at = at;
        if (!isfinite(x.e.ts) || x.e.repeat > 1 || x.e.seg >= REEL_SEGMENTS ||
            !moves_video(x.e.type)) {
            ++*bad;
            continue;
        }
        if (x.e.video < ids->n)
            t[k++] = x;
    }
    qsort(t, k, sizeof *t, by_pos);
    REEL_GROW(*ev, *cap, (size_t)*n + k);
    for (size_t i = 0; i < k; i++)
        (*ev)[(*n)++] = t[i].e;
    free(t);
}

int reel_redis_vlog(reel_redis *r, const reel_redis_ids *ids,
                    reel_redis_sid *cursor, uint32_t max_entries,
                    reel_redis_vevent **ev, size_t *cap, uint32_t *n, int *gap)
{
    *n = 0;
    *gap = 0;
    int rc = up(r);
    if (rc)
        return rc;
    int start = !cursor->ms && !cursor->seq;
    /* One snapshot: whether the log was ever trimmed (for a cursor at the
     * start) or the cursor's own entry is still there (trimming removes
     * the oldest entries first: then nothing after it is gone), and the
     * entries after it. */
    args(r, "MULTI");
    send_cmd(r);
    args(r, "HEXISTS");
    arg_plain_key(r, "meta");
    args(r, "trimmed");
    send_cmd(r);
    args(r, "XRANGE");
    arg_plain_key(r, "vlog");
    if (start) {
        args(r, "-");
        args(r, "-");
    } else {
        arg_sid(r, *cursor);
        arg_sid(r, *cursor);
    }
    send_cmd(r);
    args(r, "XRANGE");
    arg_plain_key(r, "vlog");
    if (start) {
        args(r, "-");
    } else {
        argf(r, "(%" PRIu64 "-%" PRIu64, cursor->ms, cursor->seq);
    }
    args(r, "+");
    args(r, "COUNT");
    argf(r, "%u", max_entries ? max_entries : 1);
    send_cmd(r);
    args(r, "EXEC");
    send_cmd(r);
    redisReply *rep = NULL;
    for (int i = 0; i < 5; i++) {
        if (rep)
            freeReplyObject(rep);
        if (!(rep = reply(r)))
            return REEL_EUNAVAILABLE;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->type != REDIS_REPLY_ARRAY ||
        rep->element[2]->type != REDIS_REPLY_ARRAY) {
        snprintf(r->err, sizeof r->err, "XRANGE: %.200s",
                 rep->type == REDIS_REPLY_ERROR ? rep->str
                                                : "unexpected reply");
        freeReplyObject(rep);
        return REEL_EIO;
    }
    *gap =
        start ? rep->element[0]->integer != 0 : rep->element[1]->elements == 0;
    const redisReply *ents = rep->element[2];
    uint32_t bad = 0;
    for (size_t i = 0; !*gap && i < ents->elements; i++) {
        const redisReply *ent = ents->element[i];
        reel_redis_sid at;
        if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2 ||
            ent->element[0]->type != REDIS_REPLY_STRING ||
            parse_sid(ent->element[0]->str, ent->element[0]->len, &at)) {
            bad++;
            continue;
        }
        const redisReply *f = ent->element[1];
        for (size_t j = 0; f->type == REDIS_REPLY_ARRAY && j + 1 < f->elements;
             j += 2)
            if (f->element[j + 1]->type == REDIS_REPLY_STRING)
                entry_events(f->element[j + 1], at, ids, ev, cap, n, &bad);
        *cursor = at;
    }
    freeReplyObject(rep);
    if (bad)
        reel_log_warn("redis: %u malformed video log entries or events "
                      "skipped",
                      bad);
    return 0;
}

/* -------------------------------------------------------------- seeding */

static int get_marker(reel_redis *r, uint64_t *marker)
{
    *marker = 0;
    int rc = up(r);
    if (rc)
        return rc;
    args(r, "HMGET");
    arg_plain_key(r, "meta");
    args(r, "dataset");
    args(r, "format");
    send_cmd(r);
    redisReply *rep = reply(r);
    if (!rep)
        return REEL_EUNAVAILABLE;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[0]->type == REDIS_REPLY_STRING) {
        *marker = strtoull(rep->element[0]->str, NULL, 16);
        const redisReply *f = rep->element[1];
        if (f->type != REDIS_REPLY_STRING || f->len != 1 ||
            f->str[0] != '0' + STATE_FORMAT) {
            snprintf(r->err, sizeof r->err,
                     "Redis holds state of format %.10s (this reel writes "
                     "format %d, docs/formats/redis.md): give this server "
                     "its own database or prefix, or empty it",
                     f->type == REDIS_REPLY_STRING ? f->str : "?",
                     STATE_FORMAT);
            rc = REEL_EFORMAT;
        }
    }
    freeReplyObject(rep);
    return rc;
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
            arg_hist(r, ids, hist[i].type, hist[i].ts, hist[i].video);
        send_cmd(r);
        r->pending += 2;
    }
    return 0;
}

/* Queues a video record (seeding, checkpoints). */
static int put_video(reel_redis *r, const reel_redis_ids *ids, uint32_t video,
                     const reel_redis_video *v)
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
    arg_video_val(r, v);
    send_cmd(r);
    r->pending++;
    return 0;
}

int reel_redis_seed_video(reel_redis *r, const reel_redis_ids *ids,
                          uint32_t video, const reel_redis_video *v)
{
    reel_redis_video x = *v;
    x.at = (reel_redis_sid){0, 0};
    return put_video(r, ids, video, &x);
}

int reel_redis_seed_flush(reel_redis *r)
{
    if (!r->c)
        return REEL_EUNAVAILABLE;
    int rc = seed_drain(r, 0);
    reel_arena_reset(&r->a);
    return rc;
}

/* Reads n replies, the last into *last (NULL: freed); REEL_EIO when one
 * is an error. */
static int replies(reel_redis *r, int n, redisReply **last)
{
    int rc = 0;
    for (int i = 0; i < n; i++) {
        redisReply *rep = reply(r);
        if (!rep)
            return REEL_EUNAVAILABLE;
        if (rep->type == REDIS_REPLY_ERROR && !rc) {
            snprintf(r->err, sizeof r->err, "%.200s", rep->str);
            rc = REEL_EIO;
        }
        if (i == n - 1 && last)
            *last = rep;
        else
            freeReplyObject(rep);
    }
    return rc;
}

int reel_redis_seed_end(reel_redis *r, uint64_t marker)
{
    int rc = reel_redis_seed_flush(r);
    if (rc)
        return rc;
    /* A log left by an earlier state would be applied on top of this one. */
    args(r, "DEL");
    arg_plain_key(r, "vlog");
    send_cmd(r);
    args(r, "HDEL");
    arg_plain_key(r, "meta");
    args(r, "trimmed");
    send_cmd(r);
    args(r, "HSET");
    arg_plain_key(r, "meta");
    args(r, "dataset");
    argf(r, "%016llx", (unsigned long long)marker);
    args(r, "format");
    argf(r, "%d", STATE_FORMAT);
    args(r, "videos_at");
    args(r, "0-0");
    send_cmd(r);
    args(r, "DEL");
    arg_plain_key(r, "seeding");
    send_cmd(r);
    return replies(r, 4, NULL);
}

/* ---------------------------------------------------------- checkpoints */

static int videos_at(reel_redis *r, reel_redis_sid *at)
{
    *at = (reel_redis_sid){0, 0};
    int rc = up(r);
    if (rc)
        return rc;
    args(r, "HGET");
    arg_plain_key(r, "meta");
    args(r, "videos_at");
    send_cmd(r);
    redisReply *rep = reply(r);
    if (!rep)
        return REEL_EUNAVAILABLE;
    if (rep->type == REDIS_REPLY_STRING && parse_sid(rep->str, rep->len, at))
        rc = corrupt(r, "checkpoint position", "meta");
    freeReplyObject(rep);
    return rc;
}

int reel_redis_videos_at(reel_redis *r, reel_redis_sid *at)
{
    int rc = videos_at(r, at);
    if (stale(r, rc))
        rc = videos_at(r, at);
    return rc;
}

/* The checkpoint lock is held for at most this long while a checkpoint is
 * written (a process that died meanwhile frees it after), then for
 * lock_ms from the checkpoint's end. */
enum { CKPT_HOLD_MS = 120000 };

int reel_redis_ckpt_begin(reel_redis *r, int lock_ms, int *mine,
                          reel_redis_sid *at)
{
    *mine = 0;
    *at = (reel_redis_sid){0, 0};
    int rc = up(r);
    if (rc)
        return rc;
    r->jitter = r->jitter * 6364136223846793005ull + 1442695040888963407ull;
    snprintf(r->ckpt_token, sizeof r->ckpt_token, "%d:%016llx", (int)getpid(),
             (unsigned long long)(r->jitter ^ now_ms()));
    r->ckpt_lock_ms = lock_ms > 0 ? lock_ms : 1;
    args(r, "SET");
    arg_plain_key(r, "checkpoint");
    args(r, r->ckpt_token);
    args(r, "NX");
    args(r, "PX");
    arg_int(r, CKPT_HOLD_MS > r->ckpt_lock_ms ? CKPT_HOLD_MS : r->ckpt_lock_ms);
    send_cmd(r);
    redisReply *rep = reply(r);
    if (!rep)
        return REEL_EUNAVAILABLE;
    *mine = rep->type == REDIS_REPLY_STATUS;
    freeReplyObject(rep);
    if (!*mine)
        return 0;
    return videos_at(r, at);
}

int reel_redis_ckpt_video(reel_redis *r, const reel_redis_ids *ids,
                          uint32_t video, const reel_redis_video *v)
{
    return put_video(r, ids, video, v);
}

/*
 * The end of a checkpoint, atomically, only while the lock is still this
 * writer's: the position moves (forward only), the log is trimmed before
 * `trim`, and the lock now expires lock_ms later. KEYS: meta, the log, the
 * lock; ARGV: the token, the position's ms and seq, the trim point's (ms 0:
 * none), lock_ms. Returns 0 when the lock was lost.
 */
static const char CKPT_END_LUA[] =
    "if redis.call('GET', KEYS[3]) ~= ARGV[1] then return 0 end\n"
    "local cur = redis.call('HGET', KEYS[1], 'videos_at')\n"
    "local ms, seq = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local cms, cseq = 0, 0\n"
    "if cur then\n"
    "  local a, b = string.match(cur, '^(%d+)-(%d+)$')\n"
    "  cms, cseq = tonumber(a), tonumber(b)\n"
    "end\n"
    "if ms > cms or (ms == cms and seq > cseq) then\n"
    "  redis.call('HSET', KEYS[1], 'videos_at', ARGV[2] .. '-' .. ARGV[3])\n"
    "  if tonumber(ARGV[4]) > 0 or tonumber(ARGV[5]) > 0 then\n"
    "    redis.call('XTRIM', KEYS[2], 'MINID', ARGV[4] .. '-' .. ARGV[5])\n"
    "    redis.call('HSET', KEYS[1], 'trimmed', '1')\n"
    "  end\n"
    "end\n"
    "redis.call('PEXPIRE', KEYS[3], ARGV[6])\n"
    "return 1\n";

int reel_redis_ckpt_end(reel_redis *r, reel_redis_sid at, reel_redis_sid trim)
{
    int rc = reel_redis_seed_flush(r);
    if (rc)
        return rc;
    args(r, "EVAL");
    args(r, CKPT_END_LUA);
    args(r, "3");
    arg_plain_key(r, "meta");
    arg_plain_key(r, "vlog");
    arg_plain_key(r, "checkpoint");
    args(r, r->ckpt_token);
    arg_int(r, (long long)at.ms);
    arg_int(r, (long long)at.seq);
    arg_int(r, (long long)trim.ms);
    arg_int(r, (long long)trim.seq);
    arg_int(r, r->ckpt_lock_ms);
    send_cmd(r);
    redisReply *rep = NULL;
    rc = replies(r, 1, &rep);
    if (rc || !rep) {
        if (rep)
            freeReplyObject(rep);
        return rc ? rc : REEL_EUNAVAILABLE;
    }
    if (rep->type != REDIS_REPLY_INTEGER || rep->integer != 1) {
        snprintf(r->err, sizeof r->err,
                 "the checkpoint lock expired before the checkpoint's end");
        rc = REEL_EBUSY;
    }
    freeReplyObject(rep);
    return rc;
}
