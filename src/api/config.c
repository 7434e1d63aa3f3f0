#include "api/config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "api/http.h"
#include "base/mem.h"
#include "rank/features.h"
#include "reco/experiment.h"
#include "store/redis.h"

/* REEL_ENGINE_MAX_K (src/reco/engine.h; tests/unit/test_config.c checks
 * that they agree). */
#define MAX_K 1000

enum kind {
    K_GROUP, /* an object of keys whose group is this key's name */
    K_HOST,  /* 1..255 bytes, no control characters */
    K_TOKEN, /* null, or 1..255 visible ASCII characters */
    K_FSYNC, /* "always" or "interval" */
    K_STORE, /* "embedded" or a Redis URL (reel_redis_url_check) */
    K_NAME,  /* 1..64 bytes of [A-Za-z0-9_.-] */
    K_EXPS,  /* {name: experiment body} (reel_experiments_put checks each) */
    K_U16,
    K_U32,
    K_U64,
    K_F32,
    K_F64
};

struct key {
    const char *group; /* NULL: top level */
    const char *name;
    enum kind kind;
    size_t off; /* in reel_serve_config */
    double min, max;
    int open_min; /* min itself is out of range */
};

#define AT(field) offsetof(reel_serve_config, field)

/* Every key; docs/config.md lists the same, in the same order. */
static const struct key keys[] = {
    {NULL, "host", K_HOST, AT(host), 0, 0, 0},
    {NULL, "port", K_U16, AT(port), 0, 65535, 0},
    {NULL, "threads", K_U32, AT(threads), 0, REEL_HTTP_MAX_THREADS, 0},
    {NULL, "token", K_TOKEN, AT(token), 0, 0, 0},
    {NULL, "max_k", K_U32, AT(max_k), 1, MAX_K, 0},
    {NULL, "fsync", K_FSYNC, AT(fsync), 0, 0, 0},
    {NULL, "fsync_ms", K_U32, AT(fsync_ms), 1, 60000, 0},
    {NULL, "store", K_STORE, AT(store), 0, 0, 0},
    {NULL, "reco", K_GROUP, 0, 0, 0, 0},
    {NULL, "cold_start", K_GROUP, 0, 0, 0, 0},
    {NULL, "snapshot", K_GROUP, 0, 0, 0, 0},
    {NULL, "redis", K_GROUP, 0, 0, 0, 0},
    {NULL, "experiments", K_GROUP, 0, 0, 0, 0},
    {"reco", "history_n", K_U32, AT(reco.history_n), 1, REEL_FEAT_RING, 0},
    {"reco", "candidates", K_U32, AT(reco.candidates), 1, 10000, 0},
    {"reco", "max_per_category", K_U32, AT(reco.max_per_category), 0, 10000, 0},
    {"reco", "fresh_boost", K_F64, AT(reco.fresh_boost), 0, 1000, 0},
    {"reco", "fresh_half_life_s", K_F64, AT(reco.fresh_half_life_s), 1,
     315360000, 0},
    {"reco", "recency_decay", K_F32, AT(reco.recency_decay), 0, 1, 1},
    {"cold_start", "refresh_s", K_F64, AT(cold_refresh_s), 0, 86400, 0},
    {"cold_start", "n", K_U32, AT(cold_n), 1, 100000, 0},
    {"cold_start", "segment_min", K_U64, AT(cold_segment_min), 0, 1e12, 0},
    {"snapshot", "every_s", K_F64, AT(snapshot_every_s), 0, 604800, 0},
    {"snapshot", "every_events", K_U64, AT(snapshot_every_events), 0, 1e12, 0},
    {"redis", "prefix", K_NAME, AT(redis_prefix), 0, 0, 0},
    {"redis", "history_max", K_U32, AT(redis_history_max), 1, 100000, 0},
    {"redis", "refresh_s", K_F64, AT(redis_refresh_s), 0.01, 3600, 0},
    {"redis", "checkpoint_s", K_F64, AT(redis_checkpoint_s), 0.1, 86400, 0},
    {"redis", "timeout_ms", K_U32, AT(redis_timeout_ms), 1, 60000, 0},
    {"experiments", "attribution_requests", K_U32, AT(exp_attribution), 1,
     100000000, 0},
    {"experiments", "run", K_EXPS, AT(experiments), 0, 0, 0},
};

void reel_serve_config_init(reel_serve_config *cfg)
{
    /* The engine's defaults are reel_engine_opts_init()'s; the test keeps
     * the two in step. */
    *cfg = (reel_serve_config){.port = 8080,
                               .threads = 0,
                               .max_k = 100,
                               .fsync = REEL_WAL_SYNC_ALWAYS,
                               .fsync_ms = 10,
                               .reco = reel_reco_opts_default(),
                               .cold_refresh_s = 10,
                               .cold_n = 500,
                               .cold_segment_min = 1000,
                               .snapshot_every_s = 300,
                               .snapshot_every_events = 1000000,
                               .redis_history_max = 1000,
                               .redis_refresh_s = 1,
                               .redis_checkpoint_s = 10,
                               .redis_timeout_ms = 1000,
                               .exp_attribution = 1000000};
    snprintf(cfg->host, sizeof cfg->host, "%s", "127.0.0.1");
    snprintf(cfg->store, sizeof cfg->store, "%s", "embedded");
    snprintf(cfg->redis_prefix, sizeof cfg->redis_prefix, "%s", "reel");
}

static const struct key *find(const char *group, const char *name)
{
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const struct key *k = &keys[i];
        if (!strcmp(k->name, name) &&
            (group ? k->group && !strcmp(k->group, group) : !k->group))
            return k;
    }
    return NULL;
}

/* Copies a string value into a REEL_SERVE_CONFIG_MAX_STR buffer when every
 * byte is in [lo, hi] (jansson has checked UTF-8 and refused NULs). */
static int copy_str(json_t *v, unsigned char lo, unsigned char hi, char *dst)
{
    if (!json_is_string(v))
        return 0;
    size_t len = json_string_length(v);
    const unsigned char *s = (const unsigned char *)json_string_value(v);
    if (len < 1 || len >= REEL_SERVE_CONFIG_MAX_STR)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] < lo || s[i] > hi)
            return 0;
    memcpy(dst, s, len + 1);
    return 1;
}

static int set_key(const struct key *k, const char *kp, json_t *v,
                   reel_serve_config *cfg, reel_diag *d)
{
    char *at = (char *)cfg + k->off;
    switch (k->kind) {
    case K_GROUP:
        break; /* walked by the caller */
    case K_EXPS: {
        if (!json_is_object(v))
            return reel_diag_fail(
                d, REEL_EINVAL, "\"%s\": must be an object of experiments", kp);
        /* each one as PUT /v1/experiments/{name} would take it */
        reel_experiments *x;
        int rc = reel_experiments_new(1, &x);
        assert(rc == 0);
        const char *name;
        json_t *body;
        json_object_foreach(v, name, body)
        {
            int created;
            reel_diag ed;
            reel_diag_clear(&ed);
            if ((rc = reel_experiments_put(x, name, body, 0, &created, &ed))) {
                reel_experiments_free(x);
                return reel_diag_fail(
                    d, rc == REEL_ETOOBIG ? REEL_ERANGE : REEL_EINVAL,
                    "\"%s.%s\": %s", kp, name, ed.msg);
            }
        }
        reel_experiments_free(x);
        char *text = json_dumps(v, JSON_COMPACT);
        size_t len = strlen(text);
        if (len >= REEL_SERVE_CONFIG_MAX_EXPS) {
            free(text);
            return reel_diag_fail(d, REEL_ERANGE,
                                  "\"%s\": at most %d bytes of JSON", kp,
                                  REEL_SERVE_CONFIG_MAX_EXPS - 1);
        }
        memcpy(at, text, len + 1);
        free(text);
        return 0;
    }
    case K_HOST:
        /* Bytes of 0x80 and above are UTF-8 (a name for getaddrinfo). */
        if (!copy_str(v, 0x20, 0xff, at) || strchr(at, 0x7f))
            return reel_diag_fail(d, REEL_EINVAL,
                                  "\"%s\": must be a string of 1..%d bytes "
                                  "without control characters",
                                  kp, REEL_SERVE_CONFIG_MAX_STR - 1);
        return 0;
    case K_TOKEN:
        if (json_is_null(v)) {
            at[0] = '\0';
            return 0;
        }
        if (!copy_str(v, 0x21, 0x7e, at))
            return reel_diag_fail(d, REEL_EINVAL,
                                  "\"%s\": must be null or a string of "
                                  "1..%d visible ASCII characters",
                                  kp, REEL_SERVE_CONFIG_MAX_STR - 1);
        return 0;
    case K_STORE: {
        char tmp[REEL_SERVE_CONFIG_MAX_STR];
        if (!copy_str(v, 0x21, 0x7e, tmp))
            return reel_diag_fail(d, REEL_EINVAL,
                                  "\"%s\": must be \"embedded\" or a Redis "
                                  "URL",
                                  kp);
        reel_diag ud;
        reel_diag_clear(&ud);
        if (strcmp(tmp, "embedded") && reel_redis_url_check(tmp, &ud))
            return reel_diag_fail(d, REEL_EINVAL, "\"%s\": %s", kp, ud.msg);
        memcpy(at, tmp, strlen(tmp) + 1);
        return 0;
    }
    case K_NAME: {
        char tmp[REEL_SERVE_CONFIG_MAX_STR];
        int ok = copy_str(v, 0x21, 0x7e, tmp) && strlen(tmp) <= 64;
        for (const char *p = tmp; ok && *p; p++)
            ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                 (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' ||
                 *p == '-';
        if (!ok)
            return reel_diag_fail(d, REEL_EINVAL,
                                  "\"%s\": must be 1..64 of A-Z a-z 0-9 _ . -",
                                  kp);
        memcpy(at, tmp, strlen(tmp) + 1);
        return 0;
    }
    case K_FSYNC: {
        const char *s = json_is_string(v) ? json_string_value(v) : "";
        enum reel_wal_sync y;
        if (!strcmp(s, "always"))
            y = REEL_WAL_SYNC_ALWAYS;
        else if (!strcmp(s, "interval"))
            y = REEL_WAL_SYNC_INTERVAL;
        else
            return reel_diag_fail(d, REEL_EINVAL,
                                  "\"%s\": must be \"always\" or "
                                  "\"interval\"",
                                  kp);
        memcpy(at, &y, sizeof y);
        return 0;
    }
    case K_U16:
    case K_U32:
    case K_U64: {
        if (!json_is_integer(v))
            return reel_diag_fail(d, REEL_EINVAL, "\"%s\": must be an integer",
                                  kp);
        json_int_t x = json_integer_value(v);
        if (x < (json_int_t)k->min || x > (json_int_t)k->max)
            return reel_diag_fail(d, REEL_ERANGE, "\"%s\": must be %lld..%lld",
                                  kp, (long long)k->min, (long long)k->max);
        if (k->kind == K_U16) {
            uint16_t y = (uint16_t)x;
            memcpy(at, &y, sizeof y);
        } else if (k->kind == K_U32) {
            uint32_t y = (uint32_t)x;
            memcpy(at, &y, sizeof y);
        } else {
            uint64_t y = (uint64_t)x;
            memcpy(at, &y, sizeof y);
        }
        return 0;
    }
    case K_F32:
    case K_F64: {
        if (!json_is_number(v))
            return reel_diag_fail(d, REEL_EINVAL, "\"%s\": must be a number",
                                  kp);
        double x = json_number_value(v);
        if (!(x >= k->min && x <= k->max) || (k->open_min && x == k->min)) {
            if (k->open_min)
                return reel_diag_fail(d, REEL_ERANGE,
                                      "\"%s\": must be in (%g, %g]", kp, k->min,
                                      k->max);
            return reel_diag_fail(d, REEL_ERANGE, "\"%s\": must be %g..%g", kp,
                                  k->min, k->max);
        }
        if (k->kind == K_F32) {
            float y = (float)x;
            memcpy(at, &y, sizeof y);
        } else {
            memcpy(at, &x, sizeof x);
        }
        return 0;
    }
    }
    return 0;
}

/* Applies the keys of object o (group NULL: the top level) to cfg. */
static int walk(json_t *o, const char *group, reel_serve_config *cfg,
                reel_diag *d)
{
    const char *name;
    json_t *v;
    json_object_foreach(o, name, v)
    {
        char kp[128];
        if (group)
            snprintf(kp, sizeof kp, "%s.%s", group, name);
        else
            snprintf(kp, sizeof kp, "%s", name);
        const struct key *k = find(group, name);
        if (!k)
            return reel_diag_fail(d, REEL_EINVAL, "\"%s\": unknown key", kp);
        int rc;
        if (k->kind == K_GROUP) {
            if (!json_is_object(v))
                return reel_diag_fail(d, REEL_EINVAL,
                                      "\"%s\": must be an object", kp);
            rc = walk(v, k->name, cfg, d);
        } else {
            rc = set_key(k, kp, v, cfg, d);
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* The whole file into *out (NUL-terminated; the caller frees), refusing
 * anything but a regular file of at most REEL_SERVE_CONFIG_MAX_BYTES
 * before reading it. */
static int slurp(const char *path, char **out, size_t *len, reel_diag *d)
{
    /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        return reel_diag_fail(d, e == ENOENT ? REEL_ENOENT : REEL_EIO,
                              "cannot open: %s", strerror(e));
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st))
        rc = reel_diag_fail(d, REEL_EIO, "cannot stat: %s", strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = reel_diag_fail(d, REEL_EINVAL, "not a regular file");
    else if (st.st_size > REEL_SERVE_CONFIG_MAX_BYTES)
        rc = reel_diag_fail(d, REEL_ETOOBIG,
                            "%lld bytes; a config file is at most %d",
                            (long long)st.st_size, REEL_SERVE_CONFIG_MAX_BYTES);
    if (rc) {
        close(fd);
        return rc;
    }
    /* Read one byte past the limit to notice a file that grew since. */
    size_t cap = (size_t)REEL_SERVE_CONFIG_MAX_BYTES + 1, n = 0;
    char *buf = reel_xmalloc(cap + 1);
    while (n < cap) {
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc =
                reel_diag_fail(d, REEL_EIO, "cannot read: %s", strerror(errno));
            break;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    close(fd);
    if (!rc && n > REEL_SERVE_CONFIG_MAX_BYTES)
        rc = reel_diag_fail(d, REEL_ETOOBIG,
                            "grew past %d bytes while being read",
                            REEL_SERVE_CONFIG_MAX_BYTES);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

int reel_serve_config_load(const char *path, reel_serve_config *cfg,
                           reel_diag *d)
{
    reel_diag_clear(d);
    if (d)
        d->file = path;
    char *text = NULL;
    size_t len = 0;
    int rc = slurp(path, &text, &len, d);
    if (rc)
        return rc;
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!root) {
        if (d)
            d->line = je.line > 0 ? (uint64_t)je.line : 0;
        return reel_diag_fail(d, REEL_EFORMAT, "column %d: %s",
                              je.column > 0 ? je.column : 0, je.text);
    }
    /* Overlaid on a copy: on error the caller's struct is untouched. */
    reel_serve_config c = *cfg;
    if (!json_is_object(root))
        rc = reel_diag_fail(d, REEL_EINVAL, "must be a JSON object");
    else
        rc = walk(root, NULL, &c, d);
    json_decref(root);
    if (!rc)
        *cfg = c;
    return rc;
}
