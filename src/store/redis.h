/*
 * redis: user state and video statistics kept in Redis, for stateless
 * `reel serve` replicas and `reel ingest` workers (docs/formats/redis.md
 * gives every key and field).
 *
 * Per user, under one hash tag so that a Redis Cluster keeps them in one
 * slot: a string with the feature counters and the recent ring, a capped
 * list of history events, and a capped sorted set of applied event ids
 * (for de-duplication).
 *
 * Users are written by compare-and-set: their new records are computed in
 * C by the same function as the embedded store (reel_featstate_apply_user)
 * and written back by one script per batch that writes each record only if
 * its version (the value's first 8 bytes) is still the one read, so
 * concurrent writers (several ingest workers, HTTP events on several
 * replicas) never lose an update; a user that changed meanwhile is read and
 * computed again. All reads of a batch are one pipelined round trip, all
 * writes another.
 *
 * Videos are event-sourced: the same script appends the video half of
 * every event it applied (video, type, time, watch time, rating, the
 * user's repeat verdict and segment) to one stream, the video log, in one
 * entry per write. Every process keeps the video statistics in memory and
 * applies the log's entries in order (reel_redis_vlog(), then
 * reel_redis_video_apply() or its own twin), so writes never touch a
 * shared video record and never conflict on one. Checkpoints make the log
 * short: one process at a time (a lock) writes the records of the videos
 * that changed, each stamped with the log position it includes, then
 * moves the checkpoint's position (reel_redis_videos_at()) and trims the
 * log before the previous one. A process starts from the records and
 * applies the log after that position, skipping the entries a record
 * already includes.
 *
 * Keys and history entries name videos by their ids; the packed records
 * and the video log hold video indexes, which are the same in every
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
    /* 128: users per MULTI/EXEC of reel_redis_apply(); 0: every write by
     * the compare-and-set script. */
    uint32_t tx_users;
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

/* A position in the video log (a Redis stream id, ms-seq); {0, 0}: before
 * every entry. */
typedef struct reel_redis_sid {
    uint64_t ms, seq;
} reel_redis_sid;

/* -1, 0, 1 as a is before, at, after b. */
int reel_redis_sid_cmp(reel_redis_sid a, reel_redis_sid b);

/* What the store keeps per video beyond the feature counters: the cold
 * start's counts (positive events, and decayed with a one-day half-life
 * as of d1_ts) and positive events per demographic segment; at: the log
 * entries the record includes (those up to at). */
typedef struct reel_redis_video {
    reel_fs_video fs;
    uint32_t pos;
    float d1;
    double d1_ts;
    uint32_t seg[REEL_SEGMENTS]; /* positive events per segment */
    reel_redis_sid at;
} reel_redis_video;

void reel_redis_video_init(reel_redis_video *v);

/* Videos vid[0..n)'s checkpointed records into out
 * (reel_redis_video_init() for videos Redis has none of); pipelined, one
 * round trip. Each is complete up to its `at`: apply the log's entries
 * after it (read reel_redis_videos_at() before the records). */
int reel_redis_videos_get(reel_redis *r, const reel_redis_ids *ids,
                          const uint32_t *vid, uint32_t n,
                          reel_redis_video *out);

/* The checkpoint's log position: every video's record includes the log
 * up to it at least ({0, 0} after seeding). */
int reel_redis_videos_at(reel_redis *r, reel_redis_sid *at);

/* The video half of one applied event, as the video log holds it. */
typedef struct reel_redis_vevent {
    reel_redis_sid at; /* its log entry */
    uint32_t video;    /* below ids->n */
    uint8_t type;
    uint8_t repeat; /* the user's previous view was this video */
    uint8_t seg;    /* the user's segment (REEL_NO_SEGMENT: none) */
    double ts;
    float watch_s, rating;
} reel_redis_vevent;

/* Applies e to v (fs: the video tables), as the embedded store would
 * (reel_featstate_apply_video plus the cold start's counts). v->at is
 * left as it is: a reader applies the events after the loaded record's
 * `at` (one entry may hold several events of one video). */
void reel_redis_video_apply(const reel_featstate *fs, reel_redis_video *v,
                            const reel_redis_vevent *e);

/*
 * The video log's entries after *cursor (at most max_entries of them):
 * their events, in order, into *ev (grown as needed, *cap its size; events
 * of videos >= ids->n left out), their count into *n; *cursor moves to the
 * last entry read. *gap is set when entries after the cursor have been
 * trimmed away: read every video again (reel_redis_videos_at(), then
 * reel_redis_videos_get()) and go on from there.
 */
int reel_redis_vlog(reel_redis *r, const reel_redis_ids *ids,
                    reel_redis_sid *cursor, uint32_t max_entries,
                    reel_redis_vevent **ev, size_t *cap, uint32_t *n, int *gap);

/* The newest log entry's position into *tail ({0, 0}: none). */
int reel_redis_vlog_tail(reel_redis *r, reel_redis_sid *tail);

/*
 * Checkpoints, by one process at a time: _begin() takes the checkpoint
 * lock (*mine: 1 when taken, 0 when another process holds it) and reads
 * the checkpoint's position into *at (write nothing unless your state is
 * past it). The lock is held while the checkpoint is written (two minutes
 * at most: a writer that died frees it then) and expires lock_ms after
 * _end(): one checkpoint per lock_ms. _video() queues a video's record
 * (v->at: what it includes), pipelined. _end() writes the queued records,
 * then, in one step and only while the lock is still this writer's, moves
 * the position to `at` (forward only), trims the log before `trim` (the
 * previous position: processes still loading from it can go on) and sets
 * the lock's expiry; REEL_EBUSY when the lock was lost meanwhile.
 */
int reel_redis_ckpt_begin(reel_redis *r, int lock_ms, int *mine,
                          reel_redis_sid *at);
int reel_redis_ckpt_video(reel_redis *r, const reel_redis_ids *ids,
                          uint32_t video, const reel_redis_video *v);
int reel_redis_ckpt_end(reel_redis *r, reel_redis_sid at, reel_redis_sid trim);

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
 * Applies ev[0..n) (each user's in the given order) to the users' records
 * and appends their video halves to the video log; fs gives the video
 * tables (durations, categories, languages). *n_dup counts events skipped
 * as already applied. 0 once everything is written; REEL_EUNAVAILABLE
 * when Redis went down (some users may be written: delivery is at least
 * once, event ids make a retry exact; a user's record, history, event ids
 * and video halves are written together or not at all); REEL_EBUSY after
 * too many conflicting writers.
 */
int reel_redis_apply(reel_redis *r, const reel_featstate *fs,
                     const reel_redis_ids *ids, const reel_redis_event *ev,
                     uint32_t n, uint32_t *n_dup);

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
 * checked: nobody else writes before the marker is set; a video's record
 * at log position {0, 0}), pipelined; call _flush() after the last. hist
 * is oldest first. _seed_end() also sets the checkpoint's position to
 * {0, 0}. */
int reel_redis_seed_user(reel_redis *r, const reel_redis_ids *ids,
                         const char *user, const reel_fs_user *fs,
                         const reel_redis_hist *hist, uint32_t n_hist);
int reel_redis_seed_video(reel_redis *r, const reel_redis_ids *ids,
                          uint32_t video, const reel_redis_video *v);
int reel_redis_seed_flush(reel_redis *r);

#endif
