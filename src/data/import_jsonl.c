#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "base/arena.h"
#include "base/lines.h"
#include "base/log.h"
#include "base/progress.h"
#include "data/import.h"
#include "data/record.h"

enum kind { VIDEOS, USERS, EVENTS };

static const char *const kind_label[] = {"videos", "users", "events"};

/* Enough warnings to see a pattern, few enough not to drown the terminal. */
enum { MAX_WARNINGS = 10 };

static int blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return 0;
    return 1;
}

static int add_one(reel_dsbuild *b, enum kind k, const json_t *o, reel_arena *a,
                   int implicit_videos, reel_diag *d)
{
    int rc;
    switch (k) {
    case VIDEOS: {
        reel_video_rec v;
        if ((rc = reel_video_rec_from_json(o, a, &v, d)))
            return rc;
        return reel_dsbuild_add_video(b, &v, NULL, d);
    }
    case USERS: {
        reel_user_rec u;
        if ((rc = reel_user_rec_from_json(o, a, &u, d)))
            return rc;
        return reel_dsbuild_add_user(b, &u, NULL, d);
    }
    case EVENTS: {
        reel_event_in e;
        if ((rc = reel_event_from_json(o, a, &e, d)))
            return rc;
        size_t vl = strlen(e.video);
        e.rec.video = implicit_videos ? reel_dsbuild_video_ref(b, e.video, vl)
                                      : reel_dsbuild_find_video(b, e.video, vl);
        if (e.rec.video == REEL_NONE)
            return reel_diag_fail(d, REEL_EFORMAT,
                                  "unknown video \"%.64s\" (not in the "
                                  "catalogue)",
                                  e.video);
        e.rec.user = reel_dsbuild_user_ref(b, e.user, strlen(e.user));
        return reel_dsbuild_add_event(b, &e.rec, d);
    }
    }
    return REEL_EINVAL;
}

static int import(reel_dsbuild *b, enum kind k, const char *path,
                  const reel_import_opts *o, reel_import_report *r,
                  reel_diag *d)
{
    reel_lines *in;
    int rc = reel_lines_open(path, 0, &in, d);
    if (rc)
        return rc;
    /* Events may name videos not seen before only when there is no
     * catalogue at all: then the log itself defines the videos. */
    int implicit_videos = k == EVENTS && reel_dsbuild_n_videos(b) == 0;
    reel_progress p;
    reel_progress_start(&p, kind_label[k], "bytes", reel_lines_size(in));
    reel_arena a;
    reel_arena_init(&a, 4096);
    uint64_t warned = 0;
    const char *line;
    size_t len;
    reel_diag local;
    reel_diag *dd = d ? d : &local;
    while ((rc = reel_lines_next(in, &line, &len, dd)) == 1) {
        if (blank(line, len))
            continue;
        r->n_lines++;
        json_error_t jerr;
        json_t *obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!obj)
            rc = reel_diag_fail(dd, REEL_EFORMAT,
                                "invalid JSON: %s (column "
                                "%d)",
                                jerr.text, jerr.column);
        else
            rc = add_one(b, k, obj, &a, implicit_videos, dd);
        json_decref(obj);
        reel_arena_reset(&a);
        if (rc == 0) {
            r->n_added++;
        } else if (o && o->skip_bad) {
            r->n_skipped++;
            if (warned++ < MAX_WARNINGS) {
                char msg[512];
                reel_diag_format(dd, msg, sizeof msg);
                reel_log_warn("skipped %s", msg);
            }
            rc = 0;
        } else {
            break;
        }
        if ((r->n_lines & 4095) == 0)
            reel_progress_set(&p, reel_lines_offset(in));
    }
    reel_progress_finish(&p);
    if (o && o->skip_bad && warned > MAX_WARNINGS)
        reel_log_warn("%s: %llu malformed lines skipped in all", path,
                      (unsigned long long)warned);
    reel_arena_free(&a);
    reel_lines_close(in);
    return rc < 0 ? rc : 0;
}

int reel_import_videos_jsonl(reel_dsbuild *b, const char *path,
                             const reel_import_opts *o, reel_import_report *r,
                             reel_diag *d)
{
    return import(b, VIDEOS, path, o, r, d);
}

int reel_import_users_jsonl(reel_dsbuild *b, const char *path,
                            const reel_import_opts *o, reel_import_report *r,
                            reel_diag *d)
{
    return import(b, USERS, path, o, r, d);
}

int reel_import_events_jsonl(reel_dsbuild *b, const char *path,
                             const reel_import_opts *o, reel_import_report *r,
                             reel_diag *d)
{
    return import(b, EVENTS, path, o, r, d);
}
