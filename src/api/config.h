/*
 * config: every setting of `reel serve`, and the JSON file that sets them
 * (`reel serve DIR --config FILE`; every key, type, default and range in
 * docs/config.md, an example with every default in docs/serve.example.json).
 *
 * The file is one JSON object. Top-level keys: host, port, threads, token,
 * max_k, fsync, fsync_ms, and three groups, each an object: "reco" (the
 * recommendation options, reel_reco_opts: history_n, candidates,
 * max_per_category, fresh_boost, fresh_half_life_s, recency_decay),
 * "cold_start" (refresh_s, n, segment_min), "snapshot" (every_s,
 * every_events), "redis" (prefix, history_max, refresh_s, timeout_ms)
 * and "experiments" (attribution_requests, run: {name: body}),
 * and "store" ("embedded" or a Redis URL). Every key is optional: a file
 * overlays the defaults (or whatever the struct held) with the keys it has.
 * Keys are named by their path in messages ("reco.candidates").
 *
 * Errors (REEL_E* and a diag whose file is the path given, borrowed):
 * a file that cannot be opened (REEL_ENOENT when missing, REEL_EIO
 * otherwise); not a regular file (REEL_EINVAL); larger than
 * REEL_SERVE_CONFIG_MAX_BYTES, refused before it is read (REEL_ETOOBIG);
 * JSON syntax, with the diag's line and the column in the message, and
 * duplicate keys (REEL_EFORMAT); a top level that is not an object, an
 * unknown key, or a value of the wrong type (REEL_EINVAL); a value out of
 * its range (REEL_ERANGE). The message names the key path:
 * `serve.json: "reco.candidates": must be 1..10000`. The first error
 * wins; on any error the struct is left as it was.
 *
 * Integers must be JSON integers (8080, not 8080.0); real-valued keys take
 * either. Strings are copied into the struct (fixed buffers): nothing to
 * free. Cross-key rules (fsync_ms only matters with "interval") are not
 * errors. Thread rules: none; every function is reentrant.
 */
#ifndef REEL_API_CONFIG_H
#define REEL_API_CONFIG_H

#include <stdint.h>

#include "base/err.h"
#include "reco/reco.h"
#include "store/wal.h"

enum {
    REEL_SERVE_CONFIG_MAX_BYTES = 1 << 20, /* the largest file read */
    REEL_SERVE_CONFIG_MAX_STR = 256,       /* host and token, with the NUL */
    REEL_SERVE_CONFIG_MAX_EXPS = 65536     /* experiments.run as JSON text */
};

typedef struct reel_serve_config {
    char host[REEL_SERVE_CONFIG_MAX_STR]; /* "127.0.0.1": address to bind */
    uint16_t port;                        /* 8080; 0 picks a free port */
    uint32_t threads;                     /* 0: one event loop per CPU */
    /* "": writes are open; else POST /v1/events and DELETE need
     * `Authorization: Bearer <token>`. */
    char token[REEL_SERVE_CONFIG_MAX_STR];
    uint32_t max_k;                 /* 100: the largest ?k= answered */
    enum reel_wal_sync fsync;       /* ALWAYS */
    uint32_t fsync_ms;              /* 10: INTERVAL's period */
    reel_reco_opts reco;            /* reel_reco_opts_default() */
    double cold_refresh_s;          /* 10: cold-start lists' age limit */
    uint32_t cold_n;                /* 500: length of each cold-start list */
    uint64_t cold_segment_min;      /* 1000: a segment's list is used from this
                                       many positive events on */
    double snapshot_every_s;        /* 300; 0: never by time */
    uint64_t snapshot_every_events; /* 1000000; 0: never by count */
    /* "embedded", or the Redis store's URL (redis://HOST[:PORT][/DB],
     * unix:///PATH). */
    char store[REEL_SERVE_CONFIG_MAX_STR];
    char redis_prefix[REEL_SERVE_CONFIG_MAX_STR]; /* "reel" */
    uint32_t redis_history_max; /* 1000: history events kept per user */
    double redis_refresh_s;     /* 1: how often the video log is read */
    double redis_checkpoint_s;  /* 10: checkpoints of the video statistics */
    uint32_t redis_timeout_ms;  /* 1000: per Redis call */
    uint32_t exp_attribution;   /* 1000000: answers kept for attribution */
    /* experiments.run: {name: body} as compact JSON text ("" when none),
     * each body checked as PUT /v1/experiments/{name} would */
    char experiments[REEL_SERVE_CONFIG_MAX_EXPS];
} reel_serve_config;

/* The defaults (those of reel_engine_opts_init() and the command line). */
void reel_serve_config_init(reel_serve_config *cfg);

/* Overlays cfg with the keys of the JSON file at path; errors as above
 * (d may be NULL). */
int reel_serve_config_load(const char *path, reel_serve_config *cfg,
                           reel_diag *d);

#endif
