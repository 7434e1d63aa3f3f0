/*
 * wal: the write-ahead log that makes serving state durable.
 *
 * A log is a directory of segment files of checksummed records, each with
 * a log sequence number (LSN) one above the previous; the byte layout,
 * rotation, recovery and truncation rules are in docs/formats/wal.md.
 *
 * reel_wal_open() recovers: it checks every segment, truncates a torn tail
 * of the last segment (a crash mid-write), refuses damage anywhere else
 * with a diag naming the file and offset, and holds an exclusive lock on
 * the directory (a second opener, in any process, gets REEL_EBUSY).
 *
 * Appending is group commit: any number of threads call reel_wal_append(),
 * which copies the record into the pending batch and returns its LSN at
 * once; one writer thread owned by the log writes each batch and fsyncs it
 * according to the policy (ALWAYS: after every batch; INTERVAL: at the
 * latest interval_ms after a write). "Durable" means fsynced: a caller
 * acknowledges a change only after reel_wal_wait_durable() returned 0 for
 * its LSN, or after its reel_wal_on_durable() callback ran with err 0.
 *
 * Errors: a failed write or fsync cannot be retried safely (the kernel
 * may have dropped the dirty pages), so the log becomes failed: every
 * waiter and callback gets REEL_EIO, later appends return REEL_EIO, and
 * the process should restart and recover.
 *
 * Ownership: the log owns its files, its thread and every payload copy;
 * payloads passed in are copied before append returns; a payload handed
 * to a replay callback is borrowed for the duration of the call.
 *
 * Thread rules: append, wait_durable, on_durable, the getters and
 * get_stats may be called from any thread at any time between open and
 * close. replay and truncate_before may be called from any thread; they
 * serialise with each other (not with appends). close is called once, by
 * one thread, after every other call has returned. on_durable callbacks
 * run on the writer thread, one at a time, in no particular order among
 * themselves; they must not block and must not call wait_durable or close
 * (they may call append and on_durable, which refuse with REEL_ECANCELED
 * once close has begun). A replay callback must not call replay or
 * truncate_before.
 */
#ifndef REEL_STORE_WAL_H
#define REEL_STORE_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Largest payload of one record (docs/formats/wal.md). */
#define REEL_WAL_RECORD_MAX (1u << 20)
/* Default segment size before rotation. */
#define REEL_WAL_SEGMENT_DEFAULT (64ull << 20)
/* Buckets of the batch-size histogram: [i] counts batches of
 * 2^i .. 2^(i+1) - 1 records; the last bucket takes everything above. */
#define REEL_WAL_BATCH_BUCKETS 16

typedef struct reel_wal reel_wal;

enum reel_wal_sync {
    REEL_WAL_SYNC_ALWAYS = 0,   /* fsync every batch before acknowledging */
    REEL_WAL_SYNC_INTERVAL = 1, /* fsync at least every interval_ms */
};

/* A zero in segment_bytes, next_lsn or max_pending_bytes means the
 * default. */
typedef struct reel_wal_opts {
    enum reel_wal_sync sync;
    uint32_t interval_ms; /* INTERVAL only; 1 .. 60000 */
    /* Rotation threshold in bytes (64 .. 1 GiB); small values are for
     * tests. */
    uint64_t segment_bytes;
    /* The LSN of the first record when the log is empty: a snapshot's
     * LSN + 1 (1 without one). A log that ends before next_lsn - 1 is
     * refused (it lost records the snapshot depends on). */
    uint64_t next_lsn;
    /* Appenders block while the pending batch holds this many bytes
     * (back-pressure when the disk is slower than the appenders). */
    uint64_t max_pending_bytes;
} reel_wal_opts;

/* Defaults: ALWAYS, 64 MiB segments, next_lsn 1, 64 MiB pending. */
void reel_wal_opts_init(reel_wal_opts *opts);

/*
 * Opens (creating if needed: the last path component only) the log in
 * directory `dir`, recovers it and starts the writer thread. opts NULL
 * means defaults. On failure *out is NULL and d explains: REEL_ECORRUPT
 * (damage outside the torn tail; the message names file and offset),
 * REEL_EBUSY (another opener holds the directory), REEL_EIO, REEL_EINVAL
 * (bad options).
 */
int reel_wal_open(const char *dir, const reel_wal_opts *opts, reel_wal **out,
                  reel_diag *d);

/*
 * Flushes what is pending, fsyncs, runs the remaining callbacks, joins
 * the writer and closes the files. Returns 0, or the error that failed
 * the log. NULL is fine (returns 0).
 */
int reel_wal_close(reel_wal *wal);

/*
 * Queues one record (type 1..255, payload of len <= REEL_WAL_RECORD_MAX
 * bytes, copied) and sets *lsn to its LSN. Returns when the record is in
 * the pending batch, not when it is durable. REEL_EINVAL (type 0),
 * REEL_ETOOBIG, REEL_EIO once the log has failed, REEL_ECANCELED once
 * close has begun (from a durability callback). May block briefly
 * when max_pending_bytes are pending.
 */
int reel_wal_append(reel_wal *wal, uint8_t type, const void *payload,
                    uint32_t len, uint64_t *lsn);

/* Blocks until every record up to `lsn` is durable. 0, REEL_EIO (the log
 * failed), or REEL_EINVAL for an LSN that was never handed out. */
int reel_wal_wait_durable(reel_wal *wal, uint64_t lsn);

/*
 * Calls fn(ctx, lsn, err) on the writer thread once every record up to
 * `lsn` is durable (err 0) or the log has failed (err REEL_EIO). Always
 * called exactly once, also when `lsn` is already durable (soon after, on
 * the writer thread) and at the latest during close. REEL_EINVAL (fn not
 * called) for an LSN that was never handed out, REEL_ECANCELED once close
 * has begun.
 */
typedef void (*reel_wal_durable_fn)(void *ctx, uint64_t lsn, int err);
int reel_wal_on_durable(reel_wal *wal, uint64_t lsn, reel_wal_durable_fn fn,
                        void *ctx);

/*
 * Calls fn for each record with LSN >= from_lsn, in LSN order, up to the
 * durable LSN at the time of the call, reading the segment files (each
 * record's checksum is verified again). A nonzero return from fn stops
 * the replay and is returned. REEL_ERANGE when from_lsn is below the
 * first LSN still in the log (the records before were truncated away) and
 * from_lsn > 0; from_lsn 0 means "from the first record there is".
 * REEL_ECORRUPT (logged) when a file changed under the log.
 */
typedef int (*reel_wal_replay_fn)(void *ctx, uint64_t lsn, uint8_t type,
                                  const void *payload, uint32_t len);
int reel_wal_replay(reel_wal *wal, uint64_t from_lsn, reel_wal_replay_fn fn,
                    void *ctx);

/* Deletes the segments all of whose records have LSN < lsn (never the
 * last segment) and fsyncs the directory. 0 or REEL_EIO. */
int reel_wal_truncate_before(reel_wal *wal, uint64_t lsn);

/* The first LSN still in the log (the next LSN when it holds none). */
uint64_t reel_wal_first_lsn(const reel_wal *wal);
/* The last LSN handed out by append (or recovered at open); first - 1
 * when the log holds no record. */
uint64_t reel_wal_last_lsn(const reel_wal *wal);
/* Every record up to this LSN is on disk. */
uint64_t reel_wal_durable_lsn(const reel_wal *wal);

typedef struct reel_wal_stats {
    uint64_t records;   /* appended since open */
    uint64_t bytes;     /* appended since open, record headers included */
    uint64_t batches;   /* batches written by the writer thread */
    uint64_t batch_max; /* most records in one batch */
    uint64_t batch_hist[REEL_WAL_BATCH_BUCKETS];
    uint64_t fsyncs;   /* of segments, rotation included */
    uint64_t fsync_ns; /* total time spent in them */
    uint64_t fsync_ns_max;
    uint64_t segments; /* segment files now */
    uint64_t first_lsn, last_lsn, durable_lsn;
    uint64_t recovered_records; /* valid records found by open */
    uint64_t truncated_bytes;   /* torn tail dropped by open */
} reel_wal_stats;

/* A consistent copy of the counters. */
void reel_wal_get_stats(const reel_wal *wal, reel_wal_stats *out);

#endif
