/*
 * import: reads outside datasets into a dataset builder.
 *
 * Native JSON Lines (one video, user or event object per line; the fields
 * are specified in docs/formats/jsonl.md) and MovieLens in both layouts
 * people have: the classic ml-100k files (u.data, u.item, u.user) and the
 * ml-latest / ml-latest-small CSVs (ratings.csv, movies.csv, tags.csv).
 *
 * A malformed line is an error naming `file:line: reason` in the diag, and
 * the import stops; the caller then drops the builder, so nothing is
 * half-written. With opts.skip_bad the line is skipped, counted in the
 * report, and the first few are logged as warnings. Long imports draw
 * progress on a terminal.
 * Thread rules: one thread per builder.
 */
#ifndef REEL_DATA_IMPORT_H
#define REEL_DATA_IMPORT_H

#include <stdint.h>

#include "base/err.h"
#include "data/dataset.h"

typedef struct reel_import_opts {
    int skip_bad; /* skip and count malformed lines instead of failing */
} reel_import_opts;

typedef struct reel_import_report {
    uint64_t n_lines;   /* records read (header lines excluded) */
    uint64_t n_added;   /* records added to the builder */
    uint64_t n_skipped; /* malformed records skipped (skip_bad) */
} reel_import_report;

/* JSON Lines files; events need their videos added first unless the
 * builder has no videos at all (then videos are created from the events'
 * ids). The report is added to, so one report can span several files. */
int reel_import_videos_jsonl(reel_dsbuild *b, const char *path,
                             const reel_import_opts *o, reel_import_report *r,
                             reel_diag *d);
int reel_import_users_jsonl(reel_dsbuild *b, const char *path,
                            const reel_import_opts *o, reel_import_report *r,
                            reel_diag *d);
int reel_import_events_jsonl(reel_dsbuild *b, const char *path,
                             const reel_import_opts *o, reel_import_report *r,
                             reel_diag *d);

/* Which MovieLens layout a directory holds. */
enum reel_movielens_layout {
    REEL_ML_NONE = 0,   /* neither layout's files are there */
    REEL_ML_100K = 1,   /* u.data, u.item, u.user (u.genre optional) */
    REEL_ML_LATEST = 2, /* ratings.csv, movies.csv (tags.csv optional) */
};

enum reel_movielens_layout reel_movielens_detect(const char *dir);

/* Imports a MovieLens directory: ratings become events of type rating
 * (value and timestamp kept), genres become categories, the year becomes
 * published_at, titles are cleaned ("Matrix, The (1999)" -> "The Matrix").
 * Sets the builder's meta to {"source": "movielens-100k"|"movielens-latest"}.
 */
int reel_import_movielens(reel_dsbuild *b, const char *dir,
                          const reel_import_opts *o, reel_import_report *r,
                          reel_diag *d);

#endif
