/*
 * dataset: an imported catalogue, its users and their events, column by
 * column, and the builder that makes one.
 *
 * A data directory DIR holds the dataset in DIR/dataset.reel, a secfile of
 * kind "dataset" (byte layout: docs/formats/dataset.md). String ids are
 * interned to dense integers: videos 0..n_videos, users 0..n_users, and
 * the small vocabularies (categories, languages, video types, tags,
 * genders, countries, occupations, postal codes) to dictionary ids. Events are
 * sorted by time (ties keep their input order), one array per field.
 *
 * Missing values: NaN for floats, REEL_NONE for dictionary ids, -1 for
 * ages, the empty string for strings.
 *
 * Ownership: reel_dataset_open() maps the file; every pointer reached from
 * the dataset is borrowed and valid until reel_dataset_close(). A builder
 * owns copies of everything added to it. Thread rules: an open dataset is
 * read-only and may be shared by threads; a builder belongs to one thread.
 */
#ifndef REEL_DATA_DATASET_H
#define REEL_DATA_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/strs.h"

#define REEL_DATASET_FILE "dataset.reel"

/* Event types; the numbers are persisted (docs/formats/dataset.md). */
enum reel_event_type {
    REEL_EV_IMPRESSION = 0,
    REEL_EV_CLICK = 1,
    REEL_EV_PLAY = 2,
    REEL_EV_WATCH = 3,
    REEL_EV_LIKE = 4,
    REEL_EV_SHARE = 5,
    REEL_EV_SKIP = 6,
    REEL_EV_RATING = 7,
    REEL_EV__COUNT
};

/* "impression", "click", ...; NULL for an unknown number. */
const char *reel_event_type_name(int type);
/* The type named by s[0..len), or -1. */
int reel_event_type_parse(const char *s, size_t len);

/* Dictionaries of small vocabularies; the numbers are persisted. */
enum reel_dict {
    REEL_DICT_CATEGORY = 0,
    REEL_DICT_LANGUAGE = 1,
    REEL_DICT_VTYPE = 2,
    REEL_DICT_TAG = 3,
    REEL_DICT_GENDER = 4,
    REEL_DICT_COUNTRY = 5,
    REEL_DICT_OCCUPATION = 6,
    REEL_DICT_ZIP = 7,
    REEL_DICT__COUNT
};

/* Upper bounds on outside input, checked before anything is stored. */
enum {
    REEL_MAX_ID_LEN = 256,
    REEL_MAX_TITLE_LEN = 4096,
    REEL_MAX_TEXT_LEN = 65536, /* description, media */
    REEL_MAX_LIST = 256,       /* categories or tags of one video */
    REEL_MAX_WORD_LEN = 128,   /* a category, tag, language, ... */
};

typedef struct reel_videos {
    uint32_t n;
    reel_strs id, title, description, media;
    const uint32_t *language;   /* REEL_DICT_LANGUAGE */
    const uint32_t *type;       /* REEL_DICT_VTYPE */
    const float *duration_s;    /* seconds */
    const double *published_at; /* Unix seconds */
    /* Categories of video i: cat[cat_off[i] .. cat_off[i+1]), the first is
     * the primary one (REEL_DICT_CATEGORY); tags likewise. */
    const uint32_t *cat_off, *cat;
    const uint32_t *tag_off, *tag;
} reel_videos;

typedef struct reel_users {
    uint32_t n;
    reel_strs id;
    const int16_t *age;
    const uint32_t *gender;     /* REEL_DICT_GENDER */
    const uint32_t *country;    /* REEL_DICT_COUNTRY */
    const uint32_t *occupation; /* REEL_DICT_OCCUPATION */
    const uint32_t *zip;        /* REEL_DICT_ZIP (postal code) */
    const double *signed_up_at;
} reel_users;

typedef struct reel_events {
    uint64_t n;
    const double *ts; /* non-decreasing */
    const uint32_t *user, *video;
    const uint8_t *type; /* enum reel_event_type */
    const float *watch_s, *rating;
    /* Optional per-event strings: when no event had one, the column is
     * empty (n == 0); otherwise it has an entry (maybe "") per event. */
    reel_strs id, request_id;
} reel_events;

typedef struct reel_dataset reel_dataset;

/* Demographic segments, what cold start for new users is keyed on: age
 * bucket (<18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+, unknown) x gender
 * (dictionary id 0, 1, 2, else other or unknown); a user with both
 * unknown (or beyond the table) has REEL_NO_SEGMENT. `reel serve` and
 * `reel eval --protocol cold-users` share it. */
enum {
    REEL_SEGMENT_AGES = 8,
    REEL_SEGMENT_GENDERS = 4,
    REEL_SEGMENTS = REEL_SEGMENT_AGES * REEL_SEGMENT_GENDERS,
    REEL_NO_SEGMENT = REEL_SEGMENTS - 1
};
uint32_t reel_user_segment(const reel_users *us, uint32_t u);

/* Opens DIR/dataset.reel; refuses a damaged file with a clear message. */
int reel_dataset_open(const char *dir, reel_dataset **out, reel_diag *d);
void reel_dataset_close(reel_dataset *ds);

const reel_videos *reel_dataset_videos(const reel_dataset *ds);
const reel_users *reel_dataset_users(const reel_dataset *ds);
const reel_events *reel_dataset_events(const reel_dataset *ds);
const reel_strs *reel_dataset_dict(const reel_dataset *ds, enum reel_dict k);
/* Provenance as a JSON object text ({"source": ..., ...}). */
const char *reel_dataset_meta(const reel_dataset *ds);
/* Dense index of a video or user id, or REEL_NONE. */
uint32_t reel_dataset_find_video(const reel_dataset *ds, const char *id,
                                 size_t len);
uint32_t reel_dataset_find_user(const reel_dataset *ds, const char *id,
                                size_t len);

/* ------------------------------------------------------------- building */

/* Strings are NUL-terminated and borrowed for the call; NULL is missing. */
typedef struct reel_video_rec {
    const char *id;
    const char *title, *description, *language, *type, *media;
    const char *const *categories;
    size_t n_categories;
    const char *const *tags;
    size_t n_tags;
    double duration_s;   /* NaN when missing */
    double published_at; /* NaN when missing */
} reel_video_rec;

typedef struct reel_user_rec {
    const char *id;
    int age; /* -1 when missing */
    const char *gender, *country, *occupation, *zip;
    double signed_up_at; /* NaN when missing */
} reel_user_rec;

typedef struct reel_event_rec {
    uint32_t user, video; /* dense indexes from the builder */
    int type;             /* enum reel_event_type */
    double ts;
    double watch_s, rating; /* NaN when missing */
    const char *id, *request_id;
} reel_event_rec;

/* Initialisers with every optional field missing. */
reel_video_rec reel_video_rec_empty(void);
reel_user_rec reel_user_rec_empty(void);
reel_event_rec reel_event_rec_empty(void);

/* Checks a record against the bounds above (what every adder of records
 * checks first): a missing id is REEL_EFORMAT, a string or list too long
 * REEL_ETOOBIG, a value out of range REEL_ERANGE, with a message in d. */
int reel_video_rec_check(const reel_video_rec *v, reel_diag *d);
int reel_user_rec_check(const reel_user_rec *u, reel_diag *d);

typedef struct reel_dsbuild reel_dsbuild;

void reel_dsbuild_new(reel_dsbuild **out);
void reel_dsbuild_free(reel_dsbuild *b);

/* Adds a video; a second video with the same id is REEL_EEXISTS (with a
 * message in d). Values are validated against the bounds above. */
int reel_dsbuild_add_video(reel_dsbuild *b, const reel_video_rec *v,
                           uint32_t *idx, reel_diag *d);
/* Adds a user; REEL_EEXISTS if one with this id was added before (a user
 * created implicitly by reel_dsbuild_user_ref gets the attributes). */
int reel_dsbuild_add_user(reel_dsbuild *b, const reel_user_rec *u,
                          uint32_t *idx, reel_diag *d);
/* The index of a user id, created with no attributes when new. */
uint32_t reel_dsbuild_user_ref(reel_dsbuild *b, const char *id, size_t len);
/* The index of a video id, or REEL_NONE. */
uint32_t reel_dsbuild_find_video(const reel_dsbuild *b, const char *id,
                                 size_t len);
/* The index of a video id, created with no attributes when new (for logs
 * imported without a catalogue). */
uint32_t reel_dsbuild_video_ref(reel_dsbuild *b, const char *id, size_t len);
/* Adds an event; its user and video must be indexes this builder gave. */
int reel_dsbuild_add_event(reel_dsbuild *b, const reel_event_rec *e,
                           reel_diag *d);
/* Reserves room for n more events (a hint for large imports). */
void reel_dsbuild_reserve_events(reel_dsbuild *b, uint64_t n);
/* Sets the provenance JSON object text (copied). */
void reel_dsbuild_set_meta(reel_dsbuild *b, const char *json);

uint32_t reel_dsbuild_n_videos(const reel_dsbuild *b);
uint32_t reel_dsbuild_n_users(const reel_dsbuild *b);
uint64_t reel_dsbuild_n_events(const reel_dsbuild *b);

/* Sorts the events by time and writes DIR/dataset.reel atomically (DIR is
 * created if needed). The builder stays usable. */
int reel_dsbuild_write(reel_dsbuild *b, const char *dir, reel_diag *d);

#endif
