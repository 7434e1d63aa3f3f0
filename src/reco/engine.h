/*
 * engine: the live state behind `reel serve`, the one place where the
 * dataset, the item side (vectors, index, ranker), the user state and the
 * write-ahead log meet.
 *
 * Opening DIR loads the dataset (DIR/dataset.reel), the item vectors
 * (DIR/vectors/item2vec.reel, required: `reel build DIR` writes them), the
 * index (DIR/index/item2vec.idx, or an HNSW index built from the vectors
 * when that file is missing) and the ranker (DIR/models/ranker.json when
 * present; otherwise candidates keep their retrieval order). The user state
 * is then rebuilt: a feature state advanced through the dataset's events,
 * each user's history (every event but impressions: the videos that are
 * no longer recommended to them), per-video positive counts for the
 * cold-start lists; then the log in DIR/wal is replayed on top, so every
 * acknowledged event is back.
 *
 * Events: reel_engine_ingest() rejects, per item, events naming a video
 * the catalogue lacks; appends the accepted ones to the log (record type 1
 * of docs/formats/wal.md, one record per call unless they exceed the
 * record limit); and once they are durable applies them to memory in log
 * order and only then reports success, so a caller that answers after that
 * gives read-your-writes. Users the dataset does not have are new users:
 * they get the next dense numbers after the dataset's, with no
 * demographics.
 *
 * Recommendations: a user with history goes through reel_reco_rank() (the
 * query from the feature state's recent ring, the user's history and the
 * deleted videos filtered out inside the search); an unknown user, one
 * without history or one whose history has no vectors gets the cold-start
 * list: trending (positive events decayed with a one-day half-life) and
 * popular (positive events) interleaved, without duplicates and without
 * what the user has seen. Cold-start scores are 1 / (1 + position).
 *
 * Ownership: the engine owns everything it opened. Borrowed pointers it
 * returns (ids, titles, the dataset) live until reel_engine_close().
 * Thread rules: ingest, recommend, similar, history, the getters and
 * get_stats may be called from any number of threads at once; close is
 * called once, after every other call has returned and every ingest's
 * done callback has run. User state is behind one reader-writer lock:
 * requests hold the read side while they rank; applying a durable batch
 * takes the write side on the log's writer thread (it waits at most for
 * the requests in flight, which never wait for the log).
 */
#ifndef REEL_RECO_ENGINE_H
#define REEL_RECO_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "data/dataset.h"
#include "data/record.h"
#include "reco/reco.h"
#include "store/wal.h"

/* The most events one ingest call takes, and the largest k. */
enum { REEL_ENGINE_MAX_BATCH = 10000, REEL_ENGINE_MAX_K = 1000 };

/* Types of the engine's records in the log (docs/formats/wal.md). */
enum { REEL_ENGINE_WAL_EVENTS = 1, REEL_ENGINE_WAL_DELETE = 2 };

typedef struct reel_engine_opts {
    enum reel_wal_sync sync;    /* ALWAYS */
    uint32_t interval_ms;       /* INTERVAL only (10) */
    uint64_t wal_segment_bytes; /* 0: the log's default */
    reel_reco_opts reco;        /* reel_reco_opts_default() */
    /* The cold-start lists are recomputed after a batch when they are
     * older than this (seconds; 0: after every batch). */
    double cold_refresh_s; /* 10 */
    uint32_t cold_n;       /* length of each list (500) */
} reel_engine_opts;

void reel_engine_opts_init(reel_engine_opts *o);

typedef struct reel_engine reel_engine;

/* Opens DIR as above; on failure *out is NULL and d says why. */
int reel_engine_open(const char *dir, const reel_engine_opts *o,
                     reel_engine **out, reel_diag *d);
/* Closes the log (returns its error, if it failed) and frees everything.
 * NULL is fine. */
int reel_engine_close(reel_engine *en);

/* A refused event: its position in the caller's array and why (a static
 * string). */
typedef struct reel_engine_reject {
    uint32_t index;
    const char *error;
} reel_engine_reject;

/* Called once the accepted events are applied (err 0) or can never be
 * (REEL_EIO: the log failed; REEL_ECANCELED: the engine closed first).
 * Runs on the log's writer thread (or the closing thread): it must not
 * block. */
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
 * are still accepted). Logged (record type 2) and applied when durable,
 * like ingest: without `done` the call returns once it is applied;
 * otherwise done(ctx, err) comes exactly once, later. Deleting a deleted
 * video is fine. REEL_ENOENT (done not called) for a video the catalogue
 * lacks.
 */
int reel_engine_video_delete(reel_engine *en, const char *video,
                             reel_engine_done_fn done, void *ctx);
/* Whether a video is deleted (0 for an unknown id). */
int reel_engine_video_deleted(reel_engine *en, const char *video);

typedef enum reel_engine_source {
    REEL_ENGINE_PERSONALIZED = 0,
    REEL_ENGINE_COLD_START = 1
} reel_engine_source;

/* "personalized", "cold-start". */
const char *reel_engine_source_name(reel_engine_source s);

/*
 * Up to k (<= REEL_ENGINE_MAX_K, else REEL_EINVAL) videos for the user
 * with this id into out (room for k), best first; *source says which path
 * answered. Any user id is fine: an unknown one gets cold start.
 */
int reel_engine_recommend(reel_engine *en, const char *user, uint32_t k,
                          reel_reco_item *out, uint32_t *n_out,
                          reel_engine_source *source);

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
 * oldest first, into out; *n_total is how many the user has. An unknown
 * user has none. */
void reel_engine_history(reel_engine *en, const char *user, uint32_t max,
                         reel_engine_event *out, uint32_t *n_out,
                         uint64_t *n_total);

const reel_dataset *reel_engine_dataset(const reel_engine *en);
/* Video number v's id and title (NULL beyond the catalogue). */
const char *reel_engine_video_id(const reel_engine *en, uint32_t v);
const char *reel_engine_video_title(const reel_engine *en, uint32_t v);

typedef struct reel_engine_stats {
    uint64_t events_ingested; /* accepted and applied since open */
    uint64_t events_rejected; /* refused since open */
    uint64_t events_replayed; /* from the log at open */
    uint64_t events_dataset;  /* in the dataset */
    uint64_t users, new_users, videos, videos_indexed, deleted;
    int has_ranker;
    reel_wal_stats wal;
} reel_engine_stats;

void reel_engine_get_stats(reel_engine *en, reel_engine_stats *st);

#endif
