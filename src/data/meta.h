/*
 * meta: the catalogue's video and user tables in growable memory, for a
 * server that adds and replaces videos and users at run time.
 *
 * A reel_meta starts as a copy of a dataset's video and user tables and
 * dictionaries (dataset.h) and keeps their numbering: dataset video i is
 * meta video i, likewise users and dictionary ids. reel_meta_put_video()
 * adds a video (the next number) or replaces every field of an existing
 * one; reel_meta_put_user() likewise for users; reel_meta_user_ref()
 * numbers a user known only from its events. Names of categories,
 * languages, types, tags, genders, countries, occupations and postal codes
 * that the dataset lacks get new dictionary ids after the dataset's.
 * Numbers and ids are never reused or removed.
 *
 * reel_meta_videos() and reel_meta_users() give the tables in the layout
 * of dataset.h, so code written against a dataset's tables reads the live
 * ones unchanged. Missing values are as in dataset.h.
 *
 * Cost: adding a row is amortised O(1) (columns grow geometrically; the
 * categories and tags of a new row are appended at the end of their CSR
 * arrays). Replacing an existing row's title, description, media,
 * categories or tags moves every later row's bytes of that column (one
 * memmove, O(table)); replacing other fields is O(1).
 *
 * Snapshots: reel_meta_save() writes the rows added since the dataset and
 * the dataset rows a put replaced, plus the dictionary names added, in
 * sections whose names begin with a caller's prefix (at most
 * REEL_META_PREFIX_MAX bytes); reel_meta_load() reads them into a fresh
 * meta of the same dataset and rebuilds the same numbering. Layout:
 * docs/formats/meta.md.
 *
 * Ownership: the meta borrows the dataset (which must outlive it) and owns
 * copies of everything else. The views returned by reel_meta_videos() and
 * reel_meta_users() are owned by the meta and stable for its life, but
 * the arrays they point to move on every put, user_ref or load, as do
 * strings returned by the other getters. Thread rules: one writer (put,
 * user_ref, load); readers (every const function) may run together when no
 * writer does: the caller serialises them (the engine's lock).
 */
#ifndef REEL_DATA_META_H
#define REEL_DATA_META_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/secfile.h"
#include "data/dataset.h"

/* Longest section-name prefix reel_meta_save() and _load() accept. */
enum { REEL_META_PREFIX_MAX = 12 };

typedef struct reel_meta reel_meta;

/* A copy of the dataset's video and user tables (ds is borrowed and must
 * outlive the meta). Cannot fail today; the int is for symmetry. */
int reel_meta_new(const reel_dataset *ds, reel_meta **out);
void reel_meta_free(reel_meta *m);

/* Views in the layout of dataset.h. The returned pointer is stable for the
 * meta's life; the fields it holds change on every put (callers serialise
 * puts with readers). */
const reel_videos *reel_meta_videos(const reel_meta *m);
const reel_users *reel_meta_users(const reel_meta *m);
/* Rows that came from the dataset (numbers below these are the dataset's). */
uint32_t reel_meta_n_ds_videos(const reel_meta *m);
uint32_t reel_meta_n_ds_users(const reel_meta *m);
/* The number of a video or user id, or REEL_NONE when absent. */
uint32_t reel_meta_find_video(const reel_meta *m, const char *id, size_t len);
uint32_t reel_meta_find_user(const reel_meta *m, const char *id, size_t len);
/* The name of dictionary id `id` of kind k (the dataset's dictionary first,
 * then names added by puts); NULL for REEL_NONE or out of range. */
const char *reel_meta_dict_name(const reel_meta *m, enum reel_dict k,
                                uint32_t id);
/* Names dictionary k holds (the dataset's plus added ones). */
uint32_t reel_meta_dict_size(const reel_meta *m, enum reel_dict k);

/*
 * Adds a video (a new id: its number is the count of videos before the
 * call, *is_new 1) or replaces every field of an existing one (*is_new 0;
 * a field missing in rec becomes missing). rec is validated as by
 * reel_video_rec_check() (REEL_EFORMAT, REEL_ETOOBIG or REEL_ERANGE with a
 * message in d); REEL_ETOOBIG also when a table or dictionary is full.
 * Nothing changes on failure. Empty names (categories, tags, language,
 * type) are missing values, as in the dataset builder. v and is_new may
 * be NULL.
 */
int reel_meta_put_video(reel_meta *m, const reel_video_rec *rec, uint32_t *v,
                        int *is_new, reel_diag *d);
/* The same for users (validated as by reel_user_rec_check()). */
int reel_meta_put_user(reel_meta *m, const reel_user_rec *rec, uint32_t *u,
                       int *is_new, reel_diag *d);
/* The number of a user id, created with no attributes when new (events
 * from users the server has not seen); *is_new (may be NULL) tells which.
 * The id is the caller's to bound (1..REEL_MAX_ID_LEN bytes, asserted).
 * REEL_NONE only when the table is full (about 4 billion users). */
uint32_t reel_meta_user_ref(reel_meta *m, const char *id, size_t len,
                            int *is_new);

/* How many entries reel_meta_video_rec() needs in `names`: video v's
 * categories plus its tags. */
size_t reel_meta_video_names(const reel_meta *m, uint32_t v);
/* Row v (< n) as a record, missing values as in reel_video_rec_empty()
 * (NULL strings). Strings are borrowed from the meta until the next put;
 * categories and tags point into `names`. */
void reel_meta_video_rec(const reel_meta *m, uint32_t v, reel_video_rec *out,
                         const char **names);
/* Row u (< n) as a record; strings borrowed as above. */
void reel_meta_user_rec(const reel_meta *m, uint32_t u, reel_user_rec *out);

/*
 * Writes the snapshot sections (names begin with prefix, e.g. "meta."):
 * the rows added after the dataset's and the dataset rows a put replaced,
 * with the dictionary names added. Errors are the writer's (REEL_EIO, with
 * a message in d).
 */
int reel_meta_save(const reel_meta *m, reel_secfile_writer *w,
                   const char *prefix, reel_diag *d);
/*
 * Reads what reel_meta_save() wrote into m, a fresh reel_meta_new() of the
 * same dataset (asserted: no put or user_ref before). Everything is
 * validated before use: a missing or malformed section, a count or id out
 * of range, a snapshot of another dataset is REEL_ECORRUPT, an unknown
 * version REEL_EVERSION, with a message naming the section. On failure m
 * holds part of the snapshot (consistently, but not the saved state): the
 * caller frees it.
 */
int reel_meta_load(reel_meta *m, const reel_secfile *f, const char *prefix,
                   reel_diag *d);

#endif
