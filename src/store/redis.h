/*
 * redis: user state and video statistics kept in Redis, for stateless
 * `reel serve` replicas and `reel ingest` workers (docs/formats/redis.md
 * gives every key and field).
 *
 * Per user, under one hash tag so that a Redis Cluster keeps them in one
 * slot: a hash of feature counters and the recent ring, a capped list of
 * history events, and a capped sorted set of applied event ids (for
 * de-duplication). Per video: a hash of statistics. A stream lists the
 * videos each write changed, so that replicas refresh their copy of the
 * video statistics (reel_redis_changes()).
 *
 * Writes are computed in C by the same functions as the embedded store
 * (reel_featstate_apply_user / _video), then written back with a
 * compare-and-set script per batch (each record carries a version): concurrent
 * writers (several ingest workers, HTTP events on several replicas) never lose
 * an update; a key that changed meanwhile is read and computed again. All reads
 * of a batch are one pipelined round trip, all writes another.
 *
 * Keys and history entries name videos by their ids; the packed records
 * and the change stream hold video indexes, which are the same in every
 * process sharing the state because they share the dataset (its
 * fingerprint is the state's marker, and catalogue changes are off in
 * this mode). The caller maps ids and indexes (reel_redis_ids).
 *
 * Availability: a handle connects lazily. An I/O error closes the
 * connection and every call fails fast with REEL_EUNAVAILABLE until the
 * next attempt, 50 ms later, doubling to 2 s while Redis stays down.
 *
 * Signals: the first open sets SIGPIPE to ignored when it has the
 * default action (a write to a Redis that went away must fail, not kill
 * the process).
 *
 * Thread rules: a handle is one connection: one thread at a time (the
 * server keeps a pool). Ownership: the handle owns its connection and
 * buffers; results are written into caller memory.
 */
#ifndef REEL_STORE_REDIS_H
#define REEL_STORE_REDIS_H

#include <stdint.h>

#include "base/err.h"
#include "data/dataset.h"
#include "rank/features.h"

typedef struct reel_redis reel_redis;

typedef struct reel_redis_opts {
    const char *prefix;     /* "reel": key names begin "reel:" */
    int connect_timeout_ms; /* 200 */
    int io_timeout_ms;      /* 1000 */
    uint32_t history_max;   /* 1000: history events kept per user */
    uint32_t event_ids_max; /* 1000: applied event ids kept per user */
    uint32_t changes_max;   /* 100000: change-stream entries kept (about) */
} reel_redis_opts;

void reel_redis_opts_init(reel_redis_opts *o);

/* Checks a URL: redis://HOST[:PORT][/DB] or unix:///PATH[?db=N]. */
int reel_redis_url_check(const char *url, reel_diag *d);

/* A handle for url (checked, not connected: Redis may be down). */
int reel_redis_open(const char *url, const reel_redis_opts *o, reel_redis **out,
                    reel_diag *d);
void reel_redis_close(reel_redis *r);

/* 0 when connected (connecting now if the back-off allows), else
 * REEL_EUNAVAILABLE; reel_redis_error() says why. */
int reel_redis_ping(reel_redis *r);
const char *reel_redis_error(const reel_redis *r);
/* Ends the back-off: the next call connects at once (another connection
 * has just reached Redis again). */
void reel_redis_retry_now(reel_redis *r);

/* Maps video ids and indexes for the calls below. */
typedef struct reel_redis_ids {
    void *ctx;
    uint32_t n; /* videos: indexes are below it */
    /* REEL_NONE for an id the caller does not know. */
    uint32_t (*index)(void *ctx, const char *id, size_t len);
    /* The id of a video index the caller gave. */
    const char *(*id)(void *ctx, uint32_t v);
} reel_redis_ids;

/* One history event (as the embedded store's history). */
typedef struct reel_redis_hist {
    uint32_t video; /* REEL_NONE: a video this process does not know */
    uint8_t type;
    double ts;
} reel_redis_hist;

/*
 * User `user`'s counters and ring into *fs (reel_fs_user_init() when
 * Redis has none; ring videos unknown here are left out) and up to
 * hist_max newest history events, newest first, into hist (may be NULL
 * with hist_max 0), their count into *n_hist. One round trip.
 * REEL_EUNAVAILABLE when Redis is down; REEL_ECORRUPT for a malformed
 * record (the message names the key).
 */
int reel_redis_user_get(reel_redis *r, const char *user,
                        const reel_redis_ids *ids, reel_fs_user *fs,
                        reel_redis_hist *hist, uint32_t hist_max,
                        uint32_t *n_hist, uint64_t *found);

/* What the store keeps per video beyond the feature counters: the cold
 * start's counts (positive events, and decayed with a one-day half-life
 * as of d1_ts) and positive events per demographic segment. */
typedef struct reel_redis_video {
    reel_fs_video fs;
    uint32_t pos;
    float d1;
    double d1_ts;
    uint32_t seg[REEL_SEGMENTS]; /* positive events per segment */
} reel_redis_video;

void reel_redis_video_init(reel_redis_video *v);

/* Videos vid[0..n)'s statistics into out (reel_redis_video_init() for
 * videos Redis has none of); pipelined, one round trip. */
int reel_redis_videos_get(reel_redis *r, const reel_redis_ids *ids,
                          const uint32_t *vid, uint32_t n,
                          reel_redis_video *out);

/* An event to apply: user id, video index, and the optional event id
 * (de-duplicated against the user's last event_ids_max). seg: the user's
 * segment (REEL_NO_SEGMENT: none). */
typedef struct reel_redis_event {
    const char *user;
    const char *id; /* NULL: no de-duplication */
    uint32_t video;
    uint8_t type;
    uint32_t seg;
    double ts;
    float watch_s, rating;
} reel_redis_event;

/*
 * Applies ev[0..n) (each user's in the given order) to the users' and
 * videos' records; fs gives the video tables (durations, categories,
 * languages). *n_dup counts events skipped as already applied. 0 once
 * everything is written; REEL_EUNAVAILABLE when Redis went down (some
 * keys may be written: delivery is at least once, event ids make a
 * retry exact); REEL_EBUSY after too many conflicting writers.
 */
int reel_redis_apply(reel_redis *r, const reel_featstate *fs,
                     const reel_redis_ids *ids, const reel_redis_event *ev,
                     uint32_t n, uint32_t *n_dup);

/*
 * Videos changed since *cursor (a stream id; "" or "0": from the start
 * of the stream, "$": from now), up to max, into vid (unknown ones left
 * out), and the new cursor. *gap is set when entries after the cursor
 * were trimmed away (the caller should read every video again).
 */
int reel_redis_changes(reel_redis *r, const reel_redis_ids *ids,
                       char cursor[64], uint32_t *vid, uint32_t max,
                       uint32_t *n, int *gap);

/* The newest change-stream id into cursor ("0" when empty). */
int reel_redis_changes_tail(reel_redis *r, char cursor[64]);

/*
 * The marker of the dataset the state derives from (a fingerprint),
 * and seeding: reel_redis_seed_begin() takes the seeding lock when no
 * marker is set (1: the caller seeds, then calls _seed_end(); 0: a marker
 * is set or another process seeds); *marker receives the marker (0:
 * none).
 */
int reel_redis_marker(reel_redis *r, uint64_t *marker);
int reel_redis_seed_begin(reel_redis *r, int *mine);
int reel_redis_seed_end(reel_redis *r, uint64_t marker);

/* Seeding writes: a user's or a video's whole record (no versions
 * checked: nobody else writes before the marker is set), pipelined; call
 * _flush() after the last. hist is oldest first. */
int reel_redis_seed_user(reel_redis *r, const reel_redis_ids *ids,
                         const char *user, const reel_fs_user *fs,
                         const reel_redis_hist *hist, uint32_t n_hist);
int reel_redis_seed_video(reel_redis *r, const reel_redis_ids *ids,
                          uint32_t video, const reel_redis_video *v);
int reel_redis_seed_flush(reel_redis *r);

#endif
