/*
 * snapshot: the serving state as of one log sequence number, in a file.
 *
 * A snapshot is a section file of kind "snapshot" named by the LSN it
 * covers (every log record up to that LSN is in it, none after), in a
 * directory of snapshots (the server's is DIR/snapshots). The caller's
 * sections carry the state; the section "snapshot.meta" is this module's.
 * Layout and retention: docs/formats/snapshot.md.
 *
 * Writing is atomic (temporary file, fsync, rename, directory fsync):
 * readers see a whole snapshot or none. reel_snapshot_open_newest() takes
 * the newest snapshot that verifies, skipping damaged ones with a logged
 * reason; having none is an answer (*out NULL), not an error.
 *
 * Ownership: an open reel_snapshot owns its mapped file; the sections
 * returned by reel_snapshot_file() are views valid until
 * reel_snapshot_close(). Thread rules: an open snapshot is read-only and
 * may be shared; at most one thread writes or prunes a directory's
 * snapshots at a time (pruning removes unfinished temporary files).
 */
#ifndef REEL_STORE_SNAPSHOT_H
#define REEL_STORE_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/secfile.h"

/* One section of state given by the caller: `count` elements of `type`
 * at `data` (NULL only when count is 0). Names must not begin with
 * "snapshot.". */
typedef struct reel_snapshot_section {
    const char *name;
    enum reel_sectype type;
    const void *data;
    uint64_t count;
} reel_snapshot_section;

typedef struct reel_snapshot reel_snapshot;

/* Writes snapshot `lsn` (>= 1) with the given sections into `dir`
 * (created if missing: the last path component only). An existing
 * snapshot of the same LSN is replaced. */
int reel_snapshot_write(const char *dir, uint64_t lsn,
                        const reel_snapshot_section *secs, size_t n_secs,
                        reel_diag *d);

/*
 * The streaming form, for state that is not in flat arrays: opens a
 * writer for snapshot `lsn` with its meta section written; the caller
 * adds sections with reel_secfile_writer_add/begin/append/end and
 * publishes with reel_secfile_writer_commit() (or abandons it with
 * reel_secfile_writer_free()).
 */
int reel_snapshot_writer_open(const char *dir, uint64_t lsn,
                              reel_secfile_writer **out, reel_diag *d);

/*
 * Opens the newest valid snapshot in `dir`. 0 with *out NULL when there
 * is none (no directory, no file, or every file damaged: each skipped file
 * is logged with its reason). Errors: REEL_EIO when the directory cannot
 * be read.
 */
int reel_snapshot_open_newest(const char *dir, reel_snapshot **out,
                              reel_diag *d);
/* Opens one snapshot file and checks it whole. */
int reel_snapshot_open(const char *path, reel_snapshot **out, reel_diag *d);
void reel_snapshot_close(reel_snapshot *s);

/* The LSN the snapshot covers. */
uint64_t reel_snapshot_lsn(const reel_snapshot *s);
/* Its sections (find them with reel_secfile_find / reel_secfile_need). */
const reel_secfile *reel_snapshot_file(const reel_snapshot *s);

/* The LSNs of the snapshot files in `dir`, ascending, by name only (not
 * verified). *lsns is the caller's to free; none (or no directory) is
 * n 0. */
int reel_snapshot_list(const char *dir, uint64_t **lsns, size_t *n);

/* Deletes snapshot `lsn`; REEL_ENOENT when there is none. */
int reel_snapshot_delete(const char *dir, uint64_t lsn);

/* Deletes all but the newest `keep` snapshots and any unfinished
 * temporary file, then fsyncs the directory. */
int reel_snapshot_prune(const char *dir, size_t keep);

#endif
