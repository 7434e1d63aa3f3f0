/*
 * record: the native JSON form of videos, users and events, read into the
 * builder's records (docs/formats/jsonl.md is the specification).
 *
 * The same functions serve `reel import` (JSON Lines files) and, later,
 * the HTTP API, so a record is validated the same way wherever it comes
 * from. Ids may be JSON strings or integers (42 is the id "42"); times are
 * Unix seconds (numbers) or RFC 3339 strings; unknown fields are ignored
 * so newer producers can add fields. A wrong type, a missing required
 * field or a value out of bounds is REEL_EFORMAT / REEL_ERANGE /
 * REEL_ETOOBIG with the field named in the diag.
 *
 * Ownership: strings in the filled records point into the json_t (borrowed,
 * valid while it lives) or into the arena (for converted values and the
 * category/tag arrays). Thread rules: none; reentrant.
 */
#ifndef REEL_DATA_RECORD_H
#define REEL_DATA_RECORD_H

#include <jansson.h>

#include "base/arena.h"
#include "base/err.h"
#include "data/dataset.h"

int reel_video_rec_from_json(const json_t *o, reel_arena *a,
                             reel_video_rec *out, reel_diag *d);
int reel_user_rec_from_json(const json_t *o, reel_arena *a, reel_user_rec *out,
                            reel_diag *d);

/* An event as it arrives: user and video are ids still to be resolved to
 * indexes (rec.user and rec.video are left REEL_NONE). */
typedef struct reel_event_in {
    const char *user, *video;
    reel_event_rec rec;
} reel_event_in;

int reel_event_from_json(const json_t *o, reel_arena *a, reel_event_in *out,
                         reel_diag *d);

#endif
