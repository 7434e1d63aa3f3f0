/* reel serve: the HTTP API over a data directory (docs/API.md). The routes
 * are thin: JSON in and out here, everything else in src/reco/engine. */
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "api/http.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "cmd.h"
#include "data/record.h"
#include "reco/engine.h"

enum {
    MAX_K = 100,
    DEFAULT_K = 10,
    MAX_HISTORY = 10000,
    DEFAULT_HISTORY = 100
};

struct srv {
    reel_engine *en;
    reel_http_server *http;
    const char *token; /* NULL: writes are open */
    _Atomic uint64_t next_request;
    unsigned start; /* distinguishes request ids across restarts */
};

static void help(FILE *out)
{
    fprintf(out, "usage: reel serve DIR [--host 127.0.0.1] [--port 8080] "
                 "[--threads N]\n"
                 "                  [--fsync always|interval] [--fsync-ms 10] "
                 "[--token T]\n"
                 "\n"
                 "Serves recommendations and takes events over HTTP (routes: "
                 "docs/API.md),\nfrom what `reel build DIR` wrote. Events are "
                 "made durable in DIR/wal\nbefore they are acknowledged and "
                 "replayed at the next start.\n"
                 "\n"
                 "  --port     0 picks a free port (printed on stdout)\n"
                 "  --threads  event loops (default: one per CPU)\n"
                 "  --fsync    always: fsync every batch before answering "
                 "(default);\n"
                 "             interval: at most every --fsync-ms milliseconds "
                 "(answers\n"
                 "             still wait for the fsync that covers them)\n"
                 "  --token    require `Authorization: Bearer T` on POST "
                 "/v1/events and\n"
                 "             DELETE /v1/videos/{id}\n"
                 "SIGINT or SIGTERM stops the server gracefully.\n");
}

/* ------------------------------------------------------------- helpers */

/* Sends a jansson value as the body (steals the reference). */
static void send_json(reel_http_resp *resp, int status, json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (!s) {
        reel_http_resp_error(resp, 500, "cannot encode the answer as JSON");
        return;
    }
    resp->status = status;
    resp->content_type = "application/json";
    reel_buf_reset(&resp->body);
    reel_buf_puts(&resp->body, s);
    reel_buf_putc(&resp->body, '\n');
    free(s);
}

/* A path id the JSON answer can carry: valid UTF-8, within the id bound.
 * Otherwise makes resp a 400 and returns 0. */
static int id_ok(const char *id, reel_http_resp *resp)
{
    size_t len = strlen(id);
    json_t *s = len <= REEL_MAX_ID_LEN ? json_stringn(id, len) : NULL;
    if (!s) {
        reel_http_resp_error(resp, 400, "ids are UTF-8 of at most 256 bytes");
        return 0;
    }
    json_decref(s);
    return 1;
}

static json_t *num(double x)
{
    return json_real(isfinite(x) ? x : 0.0);
}

/* The query argument `name` as 1..max (values above max are capped),
 * `def` when absent; -1 when malformed. */
static long arg_k(const reel_http_req *req, const char *name, long def,
                  long max)
{
    const char *s = reel_http_req_arg(req, name);
    if (!s)
        return def;
    uint64_t v;
    if (reel_cmd_parse_u64(s, 1, UINT64_MAX, &v))
        return -1;
    return v > (uint64_t)max ? max : (long)v;
}

static void request_id(struct srv *sv, char *buf, size_t cap)
{
    uint64_t n = atomic_fetch_add(&sv->next_request, 1);
    snprintf(buf, cap, "%08x-%llx", sv->start, (unsigned long long)n);
}

static json_t *items_json(struct srv *sv, const reel_reco_item *it, uint32_t n)
{
    json_t *a = json_array();
    for (uint32_t i = 0; i < n; i++) {
        const char *title = reel_engine_video_title(sv->en, it[i].video);
        /* A title that is not UTF-8 (an importer let it through) is left
         * out rather than the item. */
        json_t *t = json_string(title ? title : "");
        json_array_append_new(
            a, json_pack("{s:s, s:o, s:o}", "video",
                         reel_engine_video_id(sv->en, it[i].video), "score",
                         num(it[i].score), "title", t ? t : json_string("")));
    }
    return a;
}

/* -------------------------------------------------------------- events */

/* A deferred 202: the handler and the durability callback each drop one
 * reference; the last one sends. */
struct pend {
    reel_http_deferred *tok;
    int status; /* when it went well */
    reel_buf body;
    atomic_int refs;
    int err;
};

static void pend_release(struct pend *p)
{
    if (atomic_fetch_sub(&p->refs, 1) != 1)
        return;
    reel_http_resp r;
    reel_http_resp_init(&r);
    if (p->err) {
        reel_http_resp_error(&r, reel_http_status_of(p->err),
                             reel_strerror(p->err));
    } else {
        r.status = p->status;
        r.content_type = "application/json";
        reel_buf_append(&r.body, p->body.data, p->body.len);
    }
    reel_http_complete(p->tok, &r);
    reel_http_resp_free(&r);
    reel_buf_free(&p->body);
    free(p);
}

static void pend_done(void *ctx, int err)
{
    struct pend *p = ctx;
    p->err = err;
    pend_release(p);
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * The body's events: one object, an array of them, or several objects one
 * after another (NDJSON). Fills *vals (a new array); 0, or a 400/413 in
 * resp and 1.
 */
static int parse_body(const reel_http_req *req, reel_http_resp *resp,
                      json_t **vals)
{
    json_t *all = json_array();
    const char *b = req->body;
    size_t len = req->body_len, off = 0;
    int had_array = 0, n_top = 0;
    char msg[300];
    for (;;) {
        while (off < len && is_blank(b[off]))
            off++;
        if (off == len)
            break;
        json_error_t je;
        json_t *v = json_loadb(b + off, len - off, JSON_DISABLE_EOF_CHECK, &je);
        if (!v) {
            snprintf(msg, sizeof msg, "bad JSON at byte %zu: %s",
                     off + (size_t)(je.position > 0 ? je.position : 0),
                     je.text);
            reel_http_resp_error(resp, 400, msg);
            json_decref(all);
            return 1;
        }
        off += (size_t)je.position;
        n_top++;
        if (json_is_array(v)) {
            had_array = 1;
            json_array_extend(all, v);
        } else {
            json_array_append(all, v);
        }
        json_decref(v);
        if (had_array && n_top > 1) {
            reel_http_resp_error(resp, 400,
                                 "an array of events must be the whole body");
            json_decref(all);
            return 1;
        }
        if (json_array_size(all) > REEL_ENGINE_MAX_BATCH) {
            reel_http_resp_error(resp, 413, "at most 10000 events per request");
            json_decref(all);
            return 1;
        }
    }
    if (!json_array_size(all)) {
        reel_http_resp_error(resp, 400, "no events in the body");
        json_decref(all);
        return 1;
    }
    *vals = all;
    return 0;
}

static int h_events(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    struct srv *sv = ctx;
    if (sv->token && !reel_http_bearer_ok(req, resp, sv->token))
        return 0;
    json_t *vals;
    if (parse_body(req, resp, &vals))
        return 0;
    uint32_t n = (uint32_t)json_array_size(vals), m = 0;
    reel_arena *a = req->arena;
    reel_event_in *ev = reel_arena_alloc(a, n * sizeof *ev, 8);
    uint32_t *pos = reel_arena_alloc(a, n * sizeof *pos, 4);
    reel_engine_reject *bad = reel_arena_alloc(a, n * sizeof *bad, 8);
    uint32_t n_bad = 0;
    double now = reel_clock_wall();
    for (uint32_t i = 0; i < n; i++) {
        json_t *o = json_array_get(vals, i);
        /* An event without a time happened when it arrived. */
        if (json_is_object(o) && !json_object_get(o, "ts"))
            json_object_set_new(o, "ts", json_real(now));
        reel_diag d;
        reel_diag_clear(&d);
        if (reel_event_from_json(o, a, &ev[m], &d)) {
            bad[n_bad++] = (reel_engine_reject){
                i, reel_arena_strndup(a, d.msg, strlen(d.msg))};
            continue;
        }
        pos[m++] = i;
    }
    reel_engine_reject *rej = reel_arena_alloc(a, (m + 1) * sizeof *rej, 8);
    uint32_t n_rej = 0;
    struct pend *p = reel_xcalloc(1, sizeof *p);
    atomic_init(&p->refs, 2);
    p->status = 202;
    p->tok = reel_http_defer(resp);
    int rc =
        m ? reel_engine_ingest(sv->en, ev, m, rej, &n_rej, pend_done, p) : 0;
    uint32_t accepted = rc ? 0 : m - n_rej;
    if (rc || !accepted) {
        /* No callback will come: stand in for it. */
        p->err = rc;
        pend_release(p);
    }
    /* The refusals of both kinds, by position in the body. */
    json_t *ra = json_array();
    for (uint32_t i = 0, j = 0; i < n_bad || j < n_rej;) {
        uint32_t pj = j < n_rej ? pos[rej[j].index] : UINT32_MAX;
        const reel_engine_reject *r;
        uint32_t idx;
        if (i < n_bad && bad[i].index < pj) {
            r = &bad[i++];
            idx = r->index;
        } else {
            r = &rej[j++];
            idx = pj;
        }
        json_array_append_new(
            ra, json_pack("{s:i, s:s}", "index", (int)idx, "error", r->error));
    }
    json_t *out =
        json_pack("{s:i, s:o}", "accepted", (int)accepted, "rejected", ra);
    char *s = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    reel_buf_puts(&p->body, s);
    reel_buf_putc(&p->body, '\n');
    free(s);
    json_decref(vals);
    pend_release(p);
    return 0;
}

static int h_delete_video(const reel_http_req *req, reel_http_resp *resp,
                          void *ctx)
{
    struct srv *sv = ctx;
    if (sv->token && !reel_http_bearer_ok(req, resp, sv->token))
        return 0;
    const char *video = reel_http_req_param(req, "id");
    if (!id_ok(video, resp))
        return 0;
    if (reel_dataset_find_video(reel_engine_dataset(sv->en), video,
                                strlen(video)) == REEL_NONE) {
        reel_http_resp_error(resp, 404, "unknown video");
        return 0;
    }
    struct pend *p = reel_xcalloc(1, sizeof *p);
    atomic_init(&p->refs, 2);
    p->status = 200;
    json_t *out = json_pack("{s:s, s:b}", "video", video, "deleted", 1);
    char *s = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    reel_buf_puts(&p->body, s);
    reel_buf_putc(&p->body, '\n');
    free(s);
    p->tok = reel_http_defer(resp);
    int rc = reel_engine_video_delete(sv->en, video, pend_done, p);
    if (rc) {
        p->err = rc;
        pend_release(p);
    }
    pend_release(p);
    return 0;
}

/* ---------------------------------------------------------------- reads */

/* The {id} path parameter and ?k=; 0 (with the 400 written) when bad. */
static int id_and_k(const reel_http_req *req, reel_http_resp *resp,
                    const char **id, long *k)
{
    *id = reel_http_req_param(req, "id");
    if (!id_ok(*id, resp))
        return 0;
    *k = arg_k(req, "k", DEFAULT_K, MAX_K);
    if (*k < 0) {
        reel_http_resp_error(resp, 400, "k must be a whole number >= 1");
        return 0;
    }
    return 1;
}

static int h_recs(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    struct srv *sv = ctx;
    const char *user;
    long k;
    if (!id_and_k(req, resp, &user, &k))
        return 0;
    reel_reco_item items[MAX_K];
    uint32_t n;
    reel_engine_source src;
    int rc = reel_engine_recommend(sv->en, user, (uint32_t)k, items, &n, &src);
    if (rc)
        return rc;
    char rid[40];
    request_id(sv, rid, sizeof rid);
    send_json(resp, 200,
              json_pack("{s:s, s:o, s:s, s:s}", "user", user, "items",
                        items_json(sv, items, n), "request_id", rid, "source",
                        reel_engine_source_name(src)));
    return 0;
}

static int h_similar(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    struct srv *sv = ctx;
    const char *video;
    long k;
    if (!id_and_k(req, resp, &video, &k))
        return 0;
    reel_reco_item items[MAX_K];
    uint32_t n;
    int rc = reel_engine_similar(sv->en, video, (uint32_t)k, items, &n);
    if (rc == REEL_ENOENT) {
        reel_http_resp_error(resp, 404, "unknown video");
        return 0;
    }
    if (rc)
        return rc;
    char rid[40];
    request_id(sv, rid, sizeof rid);
    send_json(resp, 200,
              json_pack("{s:s, s:o, s:s}", "video", video, "items",
                        items_json(sv, items, n), "request_id", rid));
    return 0;
}

static int h_history(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    struct srv *sv = ctx;
    const char *user = reel_http_req_param(req, "id");
    if (!id_ok(user, resp))
        return 0;
    long max = arg_k(req, "limit", DEFAULT_HISTORY, MAX_HISTORY);
    if (max < 0) {
        reel_http_resp_error(resp, 400, "limit must be a whole number >= 1");
        return 0;
    }
    reel_engine_event *ev =
        reel_arena_alloc(req->arena, (size_t)max * sizeof *ev, 8);
    uint32_t n;
    uint64_t total;
    reel_engine_history(sv->en, user, (uint32_t)max, ev, &n, &total);
    json_t *a = json_array();
    for (uint32_t i = 0; i < n; i++)
        json_array_append_new(
            a,
            json_pack("{s:s, s:s, s:o}", "video",
                      reel_engine_video_id(sv->en, ev[i].video), "type",
                      reel_event_type_name(ev[i].type), "ts", num(ev[i].ts)));
    send_json(resp, 200,
              json_pack("{s:s, s:o, s:I}", "user", user, "events", a, "total",
                        (json_int_t)total));
    return 0;
}

/* A dictionary word, or JSON null when missing. */
static json_t *word(const reel_dataset *ds, enum reel_dict k, uint32_t id)
{
    const reel_strs *w = reel_dataset_dict(ds, k);
    if (id == REEL_NONE || id >= w->n)
        return json_null();
    return json_string(reel_strs_get(w, id, NULL));
}

static json_t *num_or_null(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

static int h_video(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    struct srv *sv = ctx;
    const char *video = reel_http_req_param(req, "id");
    if (!id_ok(video, resp))
        return 0;
    const reel_dataset *ds = reel_engine_dataset(sv->en);
    uint32_t v = reel_dataset_find_video(ds, video, strlen(video));
    if (v == REEL_NONE) {
        reel_http_resp_error(resp, 404, "unknown video");
        return 0;
    }
    const reel_videos *vid = reel_dataset_videos(ds);
    json_t *cats = json_array(), *tags = json_array();
    for (uint32_t k = vid->cat_off[v]; k < vid->cat_off[v + 1]; k++)
        json_array_append_new(cats, word(ds, REEL_DICT_CATEGORY, vid->cat[k]));
    for (uint32_t k = vid->tag_off[v]; k < vid->tag_off[v + 1]; k++)
        json_array_append_new(tags, word(ds, REEL_DICT_TAG, vid->tag[k]));
    send_json(resp, 200,
              json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:b}",
                        "video", video, "title",
                        reel_strs_get(&vid->title, v, NULL), "language",
                        word(ds, REEL_DICT_LANGUAGE, vid->language[v]), "type",
                        word(ds, REEL_DICT_VTYPE, vid->type[v]), "duration_s",
                        num_or_null(vid->duration_s[v]), "published_at",
                        num_or_null(vid->published_at[v]), "categories", cats,
                        "tags", tags, "deleted",
                        reel_engine_video_deleted(sv->en, video) == 1));
    return 0;
}

static int h_user(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    struct srv *sv = ctx;
    const char *user = reel_http_req_param(req, "id");
    if (!id_ok(user, resp))
        return 0;
    const reel_dataset *ds = reel_engine_dataset(sv->en);
    uint32_t u = reel_dataset_find_user(ds, user, strlen(user));
    reel_engine_event ev[1];
    uint32_t n;
    uint64_t total;
    reel_engine_history(sv->en, user, 1, ev, &n, &total);
    if (u == REEL_NONE && total == 0) {
        reel_http_resp_error(resp, 404, "unknown user");
        return 0;
    }
    json_t *o =
        json_pack("{s:s, s:I}", "user", user, "events", (json_int_t)total);
    if (u != REEL_NONE) {
        const reel_users *us = reel_dataset_users(ds);
        json_object_set_new(
            o, "age", us->age[u] >= 0 ? json_integer(us->age[u]) : json_null());
        json_object_set_new(o, "gender",
                            word(ds, REEL_DICT_GENDER, us->gender[u]));
        json_object_set_new(o, "country",
                            word(ds, REEL_DICT_COUNTRY, us->country[u]));
        json_object_set_new(o, "signed_up_at",
                            num_or_null(us->signed_up_at[u]));
    }
    send_json(resp, 200, o);
    return 0;
}

static int h_health(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    send_json(resp, 200, json_pack("{s:s}", "status", "ok"));
    return 0;
}

static int h_ready(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    /* The server listens only once the engine is open and replayed. */
    send_json(resp, 200, json_pack("{s:s}", "status", "ready"));
    return 0;
}

static void metric(reel_buf *b, const char *name, const char *type,
                   const char *help, double v)
{
    reel_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help,
                    name, type, name, v);
}

static int h_metrics(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    struct srv *sv = ctx;
    resp->content_type = "text/plain; version=0.0.4";
    reel_http_metrics_write(sv->http, &resp->body);
    reel_engine_stats st;
    reel_engine_get_stats(sv->en, &st);
    reel_buf *b = &resp->body;
    metric(b, "reel_events_ingested_total", "counter",
           "Events accepted over HTTP and applied since start.",
           (double)st.events_ingested);
    metric(b, "reel_events_rejected_total", "counter",
           "Events refused by the engine (unknown video) since start.",
           (double)st.events_rejected);
    metric(b, "reel_events_replayed", "gauge",
           "Events replayed from the write-ahead log at start.",
           (double)st.events_replayed);
    metric(b, "reel_users", "gauge", "Users known (dataset and new).",
           (double)st.users);
    metric(b, "reel_new_users", "gauge", "Users beyond the dataset.",
           (double)st.new_users);
    metric(b, "reel_videos", "gauge", "Videos in the catalogue.",
           (double)st.videos);
    metric(b, "reel_index_videos", "gauge", "Videos in the vector index.",
           (double)st.videos_indexed);
    metric(b, "reel_videos_deleted", "gauge",
           "Videos deleted (never recommended).", (double)st.deleted);
    metric(b, "reel_wal_records_total", "counter",
           "Log records appended since start.", (double)st.wal.records);
    metric(b, "reel_wal_bytes_total", "counter",
           "Log bytes appended since start.", (double)st.wal.bytes);
    metric(b, "reel_wal_batches_total", "counter",
           "Group-commit batches written.", (double)st.wal.batches);
    metric(b, "reel_wal_fsyncs_total", "counter", "fsyncs of log segments.",
           (double)st.wal.fsyncs);
    metric(b, "reel_wal_fsync_seconds_total", "counter",
           "Time spent in fsyncs of the log.", (double)st.wal.fsync_ns * 1e-9);
    metric(b, "reel_wal_segments", "gauge", "Log segment files.",
           (double)st.wal.segments);
    metric(b, "reel_wal_durable_lsn", "gauge",
           "Every log record up to this number is on disk.",
           (double)st.wal.durable_lsn);
    return 0;
}

/* ---------------------------------------------------------------- main */

int reel_cmd_serve(int argc, char **argv)
{
    enum { O_HOST = 256, O_PORT, O_THREADS, O_FSYNC, O_FSYNC_MS, O_TOKEN };
    static const struct option opts[] = {
        {"host", required_argument, 0, O_HOST},
        {"port", required_argument, 0, O_PORT},
        {"threads", required_argument, 0, O_THREADS},
        {"fsync", required_argument, 0, O_FSYNC},
        {"fsync-ms", required_argument, 0, O_FSYNC_MS},
        {"token", required_argument, 0, O_TOKEN},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    reel_http_opts ho = reel_http_opts_default();
    reel_engine_opts eo;
    reel_engine_opts_init(&eo);
    ho.port = 8080;
    const char *token = NULL;
    uint64_t v;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_HOST:
            ho.host = optarg;
            break;
        case O_PORT:
            if (reel_cmd_parse_u64(optarg, 0, 65535, &v))
                return reel_cmd_usage_error("serve", "bad --port '%s'", optarg);
            ho.port = (uint16_t)v;
            break;
        case O_THREADS:
            if (reel_cmd_parse_u64(optarg, 1, REEL_HTTP_MAX_THREADS, &v))
                return reel_cmd_usage_error("serve", "bad --threads '%s'",
                                            optarg);
            ho.threads = (int)v;
            break;
        case O_FSYNC:
            if (!strcmp(optarg, "always"))
                eo.sync = REEL_WAL_SYNC_ALWAYS;
            else if (!strcmp(optarg, "interval"))
                eo.sync = REEL_WAL_SYNC_INTERVAL;
            else
                return reel_cmd_usage_error(
                    "serve", "bad --fsync '%s' (always, interval)", optarg);
            break;
        case O_FSYNC_MS:
            if (reel_cmd_parse_u64(optarg, 1, 60000, &v))
                return reel_cmd_usage_error("serve", "bad --fsync-ms '%s'",
                                            optarg);
            eo.interval_ms = (uint32_t)v;
            break;
        case O_TOKEN:
            if (!*optarg)
                return reel_cmd_usage_error("serve", "empty --token");
            token = optarg;
            break;
        case 'h':
            help(stdout);
            return REEL_EXIT_OK;
        default:
            return reel_cmd_usage_error(
                "serve", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return reel_cmd_usage_error("serve", "expected one data directory");
    const char *dir = argv[optind];

    /* Every thread (the log's writer, the loops) inherits this mask, so
     * the signals reach only sigwait below. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    reel_diag d;
    reel_diag_clear(&d);
    struct srv sv = {
        .token = token,
        .start = (unsigned)((unsigned)getpid() ^ (unsigned)reel_clock_wall())};
    atomic_init(&sv.next_request, 1);
    double t0 = reel_clock_mono();
    if (reel_engine_open(dir, &eo, &sv.en, &d))
        return reel_cmd_fail_diag("serve", &d);
    reel_engine_stats st;
    reel_engine_get_stats(sv.en, &st);
    fprintf(stderr,
            "reel serve: %llu videos, %llu users, %llu dataset events, %llu "
            "replayed from the log, ranker %s; opened in %.2fs\n",
            (unsigned long long)st.videos, (unsigned long long)st.users,
            (unsigned long long)st.events_dataset,
            (unsigned long long)st.events_replayed,
            st.has_ranker ? "yes" : "no (retrieval order)",
            reel_clock_mono() - t0);
    int rc = reel_http_new(&ho, &sv.http);
    if (rc) {
        reel_engine_close(sv.en);
        return reel_cmd_fail("serve", "bad server options: %s",
                             reel_strerror(rc));
    }
    static const struct {
        const char *method, *pattern;
        reel_http_handler fn;
    } routes[] = {
        {"POST", "/v1/events", h_events},
        {"GET", "/v1/users/{id}/recommendations", h_recs},
        {"GET", "/v1/users/{id}/history", h_history},
        {"GET", "/v1/videos/{id}/similar", h_similar},
        {"DELETE", "/v1/videos/{id}", h_delete_video},
        {"GET", "/v1/videos/{id}", h_video},
        {"GET", "/v1/users/{id}", h_user},
        {"GET", "/healthz", h_health},
        {"GET", "/readyz", h_ready},
        {"GET", "/metrics", h_metrics},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if ((rc = reel_http_route(sv.http, routes[i].method, routes[i].pattern,
                                  routes[i].fn, &sv)))
            abort(); /* the table above is wrong */
    if ((rc = reel_http_start(sv.http, &d))) {
        reel_http_free(sv.http);
        reel_engine_close(sv.en);
        return reel_cmd_fail_diag("serve", &d);
    }
    printf("reel serve: listening on http://%s:%u\n", ho.host,
           (unsigned)reel_http_port(sv.http));
    fflush(stdout);
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "reel serve: %s, stopping\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM");
    /* The server first (it waits for deferred answers, which need the
     * log), then the engine and its log. */
    reel_http_stop(sv.http);
    reel_http_free(sv.http);
    rc = reel_engine_close(sv.en);
    if (rc)
        return reel_cmd_fail("serve", "the write-ahead log failed: %s",
                             reel_strerror(rc));
    return REEL_EXIT_OK;
}
