/*
 * engine: the live state behind `reel serve`, the one place where the
 * dataset, the item side (vectors, index, ranker), the user state, the
 * write-ahead log and the snapshots meet.
 *
 * Opening DIR loads the dataset (DIR/dataset.reel), the item vectors
 * (DIR/vectors/item2vec.reel, required: `reel build DIR` writes them), the
 * index (DIR/index/item2vec.idx, or an HNSW index built from the vectors
 * when that file is missing) and the ranker (DIR/models/ranker.json when
 * present; otherwise candidates keep their retrieval order). The state is
 * then restored: from the newest valid snapshot in DIR/snapshots when
 * there is one (docs/formats/serve-snapshot.md), otherwise by advancing a
 * fresh state through the dataset's events; then the log in DIR/wal is
 * replayed from the record after the snapshot's, so every acknowledged
 * change is back.
 *
 * State: the metadata tables (reel_meta: the dataset's videos and users
 * plus those added or changed at run time), the feature state, each
 * user's history (every event but impressions: the videos no longer
 * recommended to them), per-video positive counts and a one-day decayed
 * count for the cold-start lists, positive counts per demographic segment
 * (age bucket x gender), the deleted set, and the vectors given with
 * PUT /v1/videos.
 *
 * Changes: events (reel_engine_ingest), video and user upserts and video
 * deletions are each appended to the log (record types of
 * docs/formats/wal.md) and applied to memory in log order once durable;
 * the call reports success only after that, so a caller that answers
 * afterwards gives read-your-writes. Users the tables lack are new users
 * (the next dense numbers, no demographics until a PUT). A video added
 * with a vector is added to the index at once; without one it reaches
 * users through the cold-start lists (new videos first among equals).
 *
 * Snapshots: reel_engine_snapshot() writes the whole state as of the last
 * applied record, keeps the newest two and truncates the log before the
 * older one; a background thread calls it every snapshot_every_s seconds
 * or after snapshot_every_events events, and close writes a last one.
 * While a snapshot is written (memory to the page cache) changes wait to
 * be applied and reloads wait; requests go on (they take only the read
 * lock, which the snapshot does not hold).
 *
 * Recommendations: a user with history goes through reel_reco_rank() (the
 * query from the feature state's recent ring, the user's history and the
 * deleted videos filtered out inside the search); an unknown user, one
 * without history or one whose history has no vectors gets the cold-start
 * list: for a user with a demographic segment, the segment's most popular
 * videos interleaved with the global list; the global list is trending
 * (positive events decayed with a one-day half-life) and popular (positive
 * events) interleaved; no duplicates, nothing the user has seen, nothing
 * deleted. Cold-start scores are 1 / (1 + position).
 *
 * Reload: reel_engine_reload() reads the vectors, index and ranker files
 * again (outside the lock, requests go on), re-applies the vectors given
 * with PUT /v1/videos on top, and swaps the item side in under the write
 * lock: every request sees either the old or the new one.
 *
 * Ownership: the engine owns everything it opened. Strings it hands out
 * are copied into the caller's arena. Thread rules: every call but open
 * and close may be made from any number of threads at once; close is
 * called once, after every other call has returned and every done
 * callback has run. State is behind one reader-writer lock: requests hold
 * the read side while they rank; applying a durable batch takes the write
 * side on the log's writer thread (it waits at most for the requests in
 * flight, which never wait for the log).
 */
#ifndef REEL_RECO_ENGINE_H
#define REEL_RECO_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"
#include "data/dataset.h"
#include "data/record.h"
#include "rank/features.h"
#include "reco/reco.h"
#include "store/redis.h"
#include "store/wal.h"

/* The most events one ingest call takes, and the largest k. */
enum { REEL_ENGINE_MAX_BATCH = 10000, REEL_ENGINE_MAX_K = 1000 };

/* Types of the engine's records in the log (docs/formats/wal.md). */
enum {
    REEL_ENGINE_WAL_EVENTS = 1,
    REEL_ENGINE_WAL_DELETE = 2,
    REEL_ENGINE_WAL_VIDEO = 3,
    REEL_ENGINE_WAL_USER = 4
};

typedef struct reel_engine_opts {
    enum reel_wal_sync sync;    /* ALWAYS */
    uint32_t interval_ms;       /* INTERVAL only (10) */
    uint64_t wal_segment_bytes; /* 0: the log's default */
    reel_reco_opts reco;        /* reel_reco_opts_default() */
    /* The cold-start lists are recomputed after a batch when they are
     * older than this (seconds; 0: after every batch). */
    double cold_refresh_s; /* 10 */
    uint32_t cold_n;       /* length of each list (500) */
    /* A segment's list is used once it has this many positive events
     * (1000; 0: always). */
    uint64_t cold_segment_min;
    /* Background snapshots: every this many seconds (0: never by time)
     * or after this many applied events (0: never by count); only when
     * something changed. */
    double snapshot_every_s;        /* 300 */
    uint64_t snapshot_every_events; /* 1,000,000 */
    int snapshot_on_close;          /* 1 */
    /* The Redis store (NULL: embedded): redis://HOST[:PORT][/DB] or
     * unix:///PATH. User state is read from and written to Redis; the
     * log, snapshots and catalogue changes are off (the catalogue comes
     * from DIR; change it with reel build and a reload). */
    const char *store_url;
    reel_redis_opts redis;  /* reel_redis_opts_init() */
    double store_refresh_s; /* 1: how often the video log is read */
    /* 10: at most one checkpoint of the video statistics per this long,
     * by whichever process takes the lock (the log is trimmed to the
     * previous one). */
    double store_checkpoint_s;
} reel_engine_opts;

void reel_engine_opts_init(reel_engine_opts *o);

typedef struct reel_engine reel_engine;

/* Opens DIR as above; on failure *out is NULL and d says why. */
int reel_engine_open(const char *dir, const reel_engine_opts *o,
                     reel_engine **out, reel_diag *d);
/* Stops the snapshot thread, writes the last snapshot (when enabled and
 * something changed), closes the log (returns its error, if it failed)
 * and frees everything. NULL is fine. */
int reel_engine_close(reel_engine *en);

/* A refused event: its position in the caller's array and why (a static
 * string). */
typedef struct reel_engine_reject {
    uint32_t index;
    const char *error;
} reel_engine_reject;

/* Called once the change is applied (err 0) or can never be (REEL_EIO:
 * the log failed; REEL_ECANCELED: the engine closed first). Runs on the
 * log's writer thread (or the closing thread): it must not block. */
typedef void (*reel_engine_done_fn)(void *ctx, int err);

/*
 * Ingests ev[0..n) (parsed by reel_event_from_json; the strings are
 * copied). Refused events go to rej (room for n) and *n_rej. When done
 * is NULL the call returns after the accepted events are applied (or the
 * log failed). Otherwise it returns at once and done(ctx, err) is called
 * exactly once, later, when at least one event was accepted (n - *n_rej >
 * 0); never when none was or when the call itself fails. REEL_ETOOBIG
 * when n > REEL_ENGINE_MAX_BATCH; REEL_EIO / REEL_ECANCELED from the log.
 */
int reel_engine_ingest(reel_engine *en, const reel_event_in *ev, uint32_t n,
                       reel_engine_reject *rej, uint32_t *n_rej,
                       reel_engine_done_fn done, void *ctx);

/*
 * Deletes a video: it is never recommended again, nor returned as similar
 * (it stays in the catalogue, its events still count, and events naming it
 * are still accepted). Logged and applied when durable, like ingest:
 * without `done` the call returns once it is applied; otherwise done(ctx,
 * err) comes exactly once, later. Deleting a deleted video is fine.
 * REEL_ENOENT (done not called) for a video the catalogue lacks.
 */
int reel_engine_video_delete(reel_engine *en, const char *video,
                             reel_engine_done_fn done, void *ctx);

/*
 * Adds a video or replaces every metadata field of an existing one (a
 * deleted video stays deleted). `vec` (NULL: none; an existing vector is
 * kept) has n_vec floats: the vectors' dimension, or one less when they
 * carry a popularity prior (the prior coordinate is then the median of
 * the catalogue's: a new video is taken as neither popular nor obscure);
 * it is scaled to unit length where the vectors are. The video is indexed
 * at once. *is_new (may be NULL) tells whether the id was new, as known
 * when the call was made. Validation happens before anything is logged:
 * REEL_EINVAL / REEL_EFORMAT / REEL_ERANGE with a message in d (done not
 * called). Otherwise as delete.
 */
int reel_engine_video_put(reel_engine *en, const reel_video_rec *rec,
                          const float *vec, uint32_t n_vec, int *is_new,
                          reel_diag *d, reel_engine_done_fn done, void *ctx);
/* Adds a user or replaces every attribute of an existing one. As above. */
int reel_engine_user_put(reel_engine *en, const reel_user_rec *rec, int *is_new,
                         reel_diag *d, reel_engine_done_fn done, void *ctx);

/* A video's metadata, strings copied into a (REEL_ENOENT for an unknown
 * id). */
int reel_engine_video_get(reel_engine *en, const char *video, reel_arena *a,
                          reel_video_rec *out, int *deleted, int *has_vector);
/* A user's attributes (copied into a) and the size of its history;
 * REEL_ENOENT when the id is neither in the tables nor has events. */
int reel_engine_user_get(reel_engine *en, const char *user, reel_arena *a,
                         reel_user_rec *out, uint64_t *events);

typedef enum reel_engine_source {
    REEL_ENGINE_PERSONALIZED = 0,
    REEL_ENGINE_COLD_START = 1,
    /* Cold start because the user's state could not be read (Redis
     * down): the answer is marked degraded. */
    REEL_ENGINE_DEGRADED = 2
} reel_engine_source;

/* "personalized", "cold-start" (also for DEGRADED). */
const char *reel_engine_source_name(reel_engine_source s);

/* Why an item ranked where it did: its feature row and, for a tree
 * ranker, each feature's contribution to the margin (exact TreeSHAP;
 * phi[REEL_F__COUNT] is the bias). has_x is 0 for cold-start items,
 * has_phi 0 without a tree ranker. */
typedef struct reel_engine_explain {
    int has_x, has_phi;
    float x[REEL_F__COUNT];
    float phi[REEL_F__COUNT + 1];
} reel_engine_explain;

/*
 * Up to k (<= REEL_ENGINE_MAX_K, else REEL_EINVAL) videos for the user
 * with this id into out (room for k), best first; *source says which path
 * answered; ex (NULL, or room for k) gets each item's explanation. Any
 * user id is fine: an unknown one gets cold start. `o` (NULL: the
 * engine's) overrides the recommendation options for this request (its
 * candidates at most the engine's).
 */
int reel_engine_recommend(reel_engine *en, const char *user, uint32_t k,
                          const reel_reco_opts *o, reel_reco_item *out,
                          uint32_t *n_out, reel_engine_source *source,
                          reel_engine_explain *ex);

/* The k videos nearest to this one in the index (itself and deleted videos
 * left out), nearest first; score and sim are the similarity. REEL_ENOENT
 * for a video id the catalogue lacks; a video without a vector has none. */
int reel_engine_similar(reel_engine *en, const char *video, uint32_t k,
                        reel_reco_item *out, uint32_t *n_out);

typedef struct reel_engine_event {
    uint32_t video;
    uint8_t type; /* enum reel_event_type */
    double ts;
} reel_engine_event;

/* The user's newest `max` history events (every event but impressions),
 * oldest first, into out; *n_total is how many the user has (with Redis:
 * how many were read, of the history_max kept). An unknown user has
 * none. REEL_EUNAVAILABLE when Redis is down. */
int reel_engine_history(reel_engine *en, const char *user, uint32_t max,
                        reel_engine_event *out, uint32_t *n_out,
                        uint64_t *n_total);

/* The ids and titles of videos v[0..n), copied into a (title NULL when
 * missing). */
void reel_engine_video_names(reel_engine *en, const uint32_t *v, uint32_t n,
                             reel_arena *a, const char **id,
                             const char **title);

/* Writes a snapshot of the state as of the last applied change, keeps the
 * newest two and truncates the log; 0 with nothing written when nothing
 * changed since the last one. One at a time (concurrent callers wait). */
int reel_engine_snapshot(reel_engine *en, reel_diag *d);

/* Reads the vectors, index and ranker files again and swaps them in (see
 * above). On failure nothing changes and d says why. */
int reel_engine_reload(reel_engine *en, reel_diag *d);

typedef struct reel_engine_stats {
    uint64_t events_ingested; /* accepted and applied since open */
    uint64_t events_rejected; /* refused since open */
    uint64_t events_replayed; /* from the log at open */
    uint64_t events_dataset;  /* in the dataset */
    uint64_t users, new_users, videos, new_videos, videos_indexed, deleted;
    uint64_t snapshots;    /* written since open */
    uint64_t snapshot_lsn; /* the newest snapshot covers up to this */
    double snapshot_s;     /* time the last one took */
    uint64_t reloads;
    uint64_t wal_disk_bytes;      /* the log's files in DIR/wal */
    uint64_t snapshot_disk_bytes; /* the files in DIR/snapshots */
    int has_ranker;
    reel_wal_stats wal;
    /* The Redis store (all 0 when embedded). */
    int redis;                  /* 1: user state in Redis */
    int redis_ready;            /* seeded and the video statistics copied,
                                   checked since the last outage */
    int redis_loaded;           /* ready at least once since open */
    int redis_up;               /* the last call reached Redis */
    uint64_t degraded;          /* cold-start answers because Redis was down */
    uint64_t redis_unavailable; /* calls that found Redis down */
    uint64_t redis_refreshes;   /* reads of the video log */
    uint64_t redis_checkpoints; /* checkpoints this process wrote */
    char redis_error[256];      /* the last problem ("" none) */
} reel_engine_stats;

void reel_engine_get_stats(reel_engine *en, reel_engine_stats *st);

/* Whether a recommendation can be ranked by `kind` (REEL_RECO_RANKER_*):
 * default and none always; xgboost when models/ranker.json was loaded,
 * mlp when models/ranker-mlp.reel was (at open or the last reload). */
int reel_engine_has_ranker(reel_engine *en, int kind);

#endif
