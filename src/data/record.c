#include "data/record.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"

/* Reads an optional id-like field: a string or an integer. */
static int get_id(const json_t *o, const char *key, reel_arena *a,
                  const char **out, reel_diag *d)
{
    const json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_string(v)) {
        if (json_string_length(v) != strlen(json_string_value(v)))
            return reel_diag_fail(d, REEL_EFORMAT, "\"%s\" contains a NUL",
                                  key);
        *out = json_string_value(v);
        return 0;
    }
    if (json_is_integer(v)) {
        char *s = reel_arena_alloc(a, 24, 1);
        snprintf(s, 24, "%lld", (long long)json_integer_value(v));
        *out = s;
        return 0;
    }
    return reel_diag_fail(d, REEL_EFORMAT,
                          "\"%s\" must be a string or an integer", key);
}

static int get_str(const json_t *o, const char *key, const char **out,
                   reel_diag *d)
{
    const json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return reel_diag_fail(d, REEL_EFORMAT, "\"%s\" must be a string", key);
    if (json_string_length(v) != strlen(json_string_value(v)))
        return reel_diag_fail(d, REEL_EFORMAT, "\"%s\" contains a NUL", key);
    *out = json_string_value(v);
    return 0;
}

static int get_num(const json_t *o, const char *key, double *out, reel_diag *d)
{
    const json_t *v = json_object_get(o, key);
    *out = NAN;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v))
        return reel_diag_fail(d, REEL_EFORMAT, "\"%s\" must be a number", key);
    *out = json_number_value(v);
    return 0;
}

static int get_time(const json_t *o, const char *key, double *out, reel_diag *d)
{
    const json_t *v = json_object_get(o, key);
    *out = NAN;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    if (json_is_string(v) &&
        reel_clock_parse(json_string_value(v), json_string_length(v), out) == 0)
        return 0;
    return reel_diag_fail(d, REEL_EFORMAT,
                          "\"%s\" must be Unix seconds or an RFC 3339 time",
                          key);
}

/* A string array (or a single string) into an arena array. */
static int get_list(const json_t *o, const char *key, reel_arena *a,
                    const char *const **out, size_t *n, reel_diag *d)
{
    const json_t *v = json_object_get(o, key);
    *out = NULL;
    *n = 0;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_string(v)) {
        const char **arr = reel_arena_alloc(a, sizeof *arr, _Alignof(char *));
        arr[0] = json_string_value(v);
        *out = arr;
        *n = 1;
        return 0;
    }
    if (!json_is_array(v))
        return reel_diag_fail(d, REEL_EFORMAT,
                              "\"%s\" must be an array of strings", key);
    size_t m = json_array_size(v);
    if (m > REEL_MAX_LIST)
        return reel_diag_fail(d, REEL_ETOOBIG, "\"%s\" has more than %d items",
                              key, REEL_MAX_LIST);
    const char **arr =
        reel_arena_alloc(a, (m ? m : 1) * sizeof *arr, _Alignof(char *));
    for (size_t i = 0; i < m; i++) {
        const json_t *e = json_array_get(v, i);
        if (!json_is_string(e))
            return reel_diag_fail(d, REEL_EFORMAT,
                                  "\"%s\" must be an array of strings", key);
        arr[i] = json_string_value(e);
    }
    *out = arr;
    *n = m;
    return 0;
}

static int need_object(const json_t *o, reel_diag *d)
{
    if (!json_is_object(o))
        return reel_diag_fail(d, REEL_EFORMAT, "expected a JSON object");
    return 0;
}

int reel_video_rec_from_json(const json_t *o, reel_arena *a,
                             reel_video_rec *out, reel_diag *d)
{
    *out = reel_video_rec_empty();
    int rc;
    if ((rc = need_object(o, d)) || (rc = get_id(o, "id", a, &out->id, d)) ||
        (rc = get_str(o, "title", &out->title, d)) ||
        (rc = get_str(o, "description", &out->description, d)) ||
        (rc = get_str(o, "language", &out->language, d)) ||
        (rc = get_str(o, "type", &out->type, d)) ||
        (rc = get_str(o, "media", &out->media, d)) ||
        (rc = get_list(o, "categories", a, &out->categories, &out->n_categories,
                       d)) ||
        (rc = get_list(o, "tags", a, &out->tags, &out->n_tags, d)) ||
        (rc = get_num(o, "duration_s", &out->duration_s, d)) ||
        (rc = get_time(o, "published_at", &out->published_at, d)))
        return rc;
    if (!out->id)
        return reel_diag_fail(d, REEL_EFORMAT, "missing \"id\"");
    return 0;
}

int reel_user_rec_from_json(const json_t *o, reel_arena *a, reel_user_rec *out,
                            reel_diag *d)
{
    *out = reel_user_rec_empty();
    int rc;
    double age;
    if ((rc = need_object(o, d)) || (rc = get_id(o, "id", a, &out->id, d)) ||
        (rc = get_str(o, "gender", &out->gender, d)) ||
        (rc = get_str(o, "country", &out->country, d)) ||
        (rc = get_str(o, "occupation", &out->occupation, d)) ||
        (rc = get_id(o, "zip", a, &out->zip, d)) ||
        (rc = get_num(o, "age", &age, d)) ||
        (rc = get_time(o, "signed_up_at", &out->signed_up_at, d)))
        return rc;
    if (!out->id)
        return reel_diag_fail(d, REEL_EFORMAT, "missing \"id\"");
    if (!isnan(age)) {
        if (!(age >= 0 && age <= 150) || age != floor(age))
            return reel_diag_fail(d, REEL_ERANGE,
                                  "\"age\" must be an integer in 0..150");
        out->age = (int)age;
    }
    return 0;
}

int reel_event_from_json(const json_t *o, reel_arena *a, reel_event_in *out,
                         reel_diag *d)
{
    memset(out, 0, sizeof *out);
    out->rec = reel_event_rec_empty();
    out->rec.user = out->rec.video = REEL_NONE;
    const char *type;
    int rc;
    if ((rc = need_object(o, d)) ||
        (rc = get_id(o, "id", a, &out->rec.id, d)) ||
        (rc = get_id(o, "user", a, &out->user, d)) ||
        (rc = get_id(o, "video", a, &out->video, d)) ||
        (rc = get_str(o, "type", &type, d)) ||
        (rc = get_num(o, "watch_s", &out->rec.watch_s, d)) ||
        (rc = get_num(o, "rating", &out->rec.rating, d)) ||
        (rc = get_time(o, "ts", &out->rec.ts, d)) ||
        (rc = get_id(o, "request_id", a, &out->rec.request_id, d)))
        return rc;
    if (!out->user || !*out->user)
        return reel_diag_fail(d, REEL_EFORMAT, "missing \"user\"");
    if (!out->video || !*out->video)
        return reel_diag_fail(d, REEL_EFORMAT, "missing \"video\"");
    if (!type)
        return reel_diag_fail(d, REEL_EFORMAT, "missing \"type\"");
    out->rec.type = reel_event_type_parse(type, strlen(type));
    if (out->rec.type < 0)
        return reel_diag_fail(d, REEL_EFORMAT,
                              "unknown event type \"%.40s\" (impression, "
                              "click, play, watch, like, share, skip, rating)",
                              type);
    if (isnan(out->rec.ts))
        return reel_diag_fail(d, REEL_EFORMAT, "missing \"ts\"");
    if (strlen(out->user) > REEL_MAX_ID_LEN ||
        strlen(out->video) > REEL_MAX_ID_LEN)
        return reel_diag_fail(d, REEL_ETOOBIG, "id longer than %d bytes",
                              REEL_MAX_ID_LEN);
    return 0;
}
