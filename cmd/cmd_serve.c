/* reel serve: the HTTP API over a data directory (docs/API.md). The routes
 * are thin: JSON in and out here, everything else in src/reco/engine. */
#include <errno.h>
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

#include "api/config.h"
#include "reco/experiment.h"
#include "api/http.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "cmd.h"
#include "data/record.h"
#include "ingest/kafka.h"
#include "reco/engine.h"

enum { DEFAULT_K = 10, MAX_HISTORY = 10000, DEFAULT_HISTORY = 100 };

struct srv {
    reel_engine *en;
    reel_http_server *http;
    const char *token; /* NULL: writes are open */
    _Atomic uint64_t next_request;
    unsigned start;        /* distinguishes request ids across restarts */
    atomic_int admin_jobs; /* reloads and snapshots running */
    uint32_t max_k;        /* larger ?k= are capped */
    struct reel_cmd_kafka *kafka; /* --kafka: the consumer, or NULL */
    reel_experiments *exps;       /* the A/B experiments */
    reel_reco_opts reco;          /* the server's recommendation options */
};

static void help(FILE *out)
{
    fprintf(out,
            "usage: reel serve DIR [--config FILE] [--host 127.0.0.1] "
            "[--port 8080]\n"
            "                  [--threads N] [--fsync always|interval] "
            "[--fsync-ms 10] [--token T]\n"
            "                  [--token-file F] [--store embedded|"
            "redis://HOST:PORT|unix:///PATH]\n"
            "                  [--kafka BROKERS [--topic T] [--group G] "
            "[--dlq T]]\n"
            "\n"
            "Serves recommendations and takes events and catalogue changes "
            "over HTTP\n(routes: docs/API.md), from what `reel build DIR` "
            "wrote. Changes are made\ndurable in DIR/wal before they are "
            "acknowledged; the state is snapshotted\nin DIR/snapshots, and a "
            "start loads the newest snapshot and replays the\nlog after it.\n"
            "\n"
            "  --config   a JSON file of settings (docs/config.md); the flags "
            "below\n             override it\n"
            "  --port     0 picks a free port (printed on stdout)\n"
            "  --threads  event loops (default: one per CPU)\n"
            "  --fsync    always: fsync every batch before answering "
            "(default);\n"
            "             interval: at most every --fsync-ms milliseconds "
            "(answers\n"
            "             still wait for the fsync that covers them)\n"
            "  --token    require `Authorization: Bearer T` on writes (POST "
            "/v1/events,\n             PUT and DELETE) and /admin/*\n"
            "  --kafka    also consume events from Kafka BROKERS (--topic "
            "reel.events,\n             --group reel-serve, --dlq "
            "TOPIC.dlq), as reel ingest does\n"
            "  --token-file  the token from the first line of a file (a "
            "mounted secret)\n"
            "  --store    where user state lives: embedded (default: in this "
            "process,\n             the log and snapshots in DIR) or Redis, "
            "for stateless\n             replicas (docs/DEPLOY.md). With "
            "Redis, an empty Redis is\n             seeded from the dataset "
            "by the first server or ingest worker.\n"
            "SIGINT or SIGTERM stops the server gracefully (a last snapshot "
            "is written).\n");
}

/* ------------------------------------------------------------- helpers */

void reel_cmd_send_json(reel_http_resp *resp, int status, json_t *v)
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

/* The items as JSON, with their explanations when ex is not NULL. */
static json_t *items_json(struct srv *sv, reel_arena *a,
                          const reel_reco_item *it, uint32_t n,
                          const reel_engine_explain *ex)
{
    uint32_t *v = reel_arena_alloc(a, ((size_t)n + 1) * sizeof *v, 4);
    const char **id = reel_arena_alloc(a, ((size_t)n + 1) * sizeof *id, 8);
    const char **title = reel_arena_alloc(a, ((size_t)n + 1) * sizeof *id, 8);
    for (uint32_t i = 0; i < n; i++)
        v[i] = it[i].video;
    reel_engine_video_names(sv->en, v, n, a, id, title);
    json_t *arr = json_array();
    for (uint32_t i = 0; i < n; i++) {
        /* A title that is not UTF-8 (an importer let it through) is left
         * out rather than the item. */
        json_t *t = json_string(title[i] ? title[i] : "");
        json_t *o =
            json_pack("{s:s, s:o, s:o}", "video", id[i] ? id[i] : "", "score",
                      num(it[i].score), "title", t ? t : json_string(""));
        if (ex && ex[i].has_x) {
            json_t *fa = json_array();
            for (int f = 0; f < REEL_F__COUNT; f++) {
                json_t *fo = json_pack(
                    "{s:s, s:o}", "name", reel_feature_name(f), "value",
                    isfinite(ex[i].x[f]) ? json_real(ex[i].x[f]) : json_null());
                if (ex[i].has_phi)
                    json_object_set_new(fo, "contribution",
                                        json_real(ex[i].phi[f]));
                json_array_append_new(fa, fo);
            }
            json_t *eo = json_pack("{s:o}", "features", fa);
            if (ex[i].has_phi)
                json_object_set_new(eo, "bias",
                                    json_real(ex[i].phi[REEL_F__COUNT]));
            json_object_set_new(o, "explain", eo);
        } else if (ex) {
            json_object_set_new(o, "explain", json_null());
        }
        json_array_append_new(arr, o);
    }
    return arr;
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
 * after another (NDJSON). Fills *vals (a new array) and *single (the body
 * was one bare object); 0, or a 400/413 in resp and 1.
 */
static int parse_body(const reel_http_req *req, reel_http_resp *resp,
                      json_t **vals, int *single)
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
    *single = n_top == 1 && !had_array;
    return 0;
}

static int h_events(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    struct srv *sv = ctx;
    if (sv->token && !reel_http_bearer_ok(req, resp, sv->token))
        return 0;
    json_t *vals;
    int single;
    if (parse_body(req, resp, &vals, &single))
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
            if (single) {
                /* One bare event: its fault is the request's. */
                reel_http_resp_error(resp, 400, d.msg);
                json_decref(vals);
                return 0;
            }
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
    /* Attribution: accepted events naming an answer count for its arms. */
    if (!rc && accepted && reel_experiments_count(sv->exps)) {
        for (uint32_t i = 0, j = 0; i < m; i++) {
            while (j < n_rej && rej[j].index < i)
                j++;
            if (j < n_rej && rej[j].index == i)
                continue;
            if (ev[i].rec.request_id)
                reel_experiments_event(sv->exps, ev[i].rec.request_id,
                                       ev[i].rec.type, ev[i].rec.watch_s,
                                       ev[i].user);
        }
    }
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
    struct pend *p = reel_xcalloc(1, sizeof *p);
    atomic_init(&p->refs, 2);
    p->status = 200;
    json_t *out = json_pack("{s:s, s:b}", "video", video, "deleted", 1);
    char *s = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    reel_buf_puts(&p->body, s);
    reel_buf_putc(&p->body, '\n');
    free(s);
    int rc = reel_engine_video_delete(sv->en, video, pend_done, p);
    if (rc == REEL_ENOENT) {
        reel_buf_free(&p->body);
        free(p);
        reel_http_resp_error(resp, 404, "unknown video");
        return 0;
    }
    p->tok = reel_http_defer(resp);
    if (rc) {
        p->err = rc;
        pend_release(p);
    }
    pend_release(p);
    return 0;
}

/* ---------------------------------------------------------- experiments */

static int exp_name_ok(const char *name, reel_http_resp *resp)
{
    if (!name || !*name || strlen(name) > REEL_EXP_NAME_MAX) {
        reel_http_resp_error(resp, 400, "bad experiment name");
        return 0;
    }
    return 1;
}

static int h_exp_put(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    struct srv *sv = ctx;
    if (sv->token && !reel_http_bearer_ok(req, resp, sv->token))
        return 0;
    const char *name = reel_http_req_param(req, "name");
    if (!exp_name_ok(name, resp))
        return 0;
    json_error_t je;
    json_t *body =
        json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!body) {
        char msg[256];
        snprintf(msg, sizeof msg, "bad JSON: %s", je.text);
        reel_http_resp_error(resp, 400, msg);
        return 0;
    }
    /* A named ranker must be one this server loaded. */
    json_t *arms = json_object_get(body, "arms");
    for (size_t i = 0; i < json_array_size(arms); i++) {
        const char *rk = json_string_value(json_object_get(
            json_object_get(json_array_get(arms, i), "params"), "ranker"));
        int kind = !rk                      ? REEL_RECO_RANKER_DEFAULT
                   : !strcmp(rk, "xgboost") ? REEL_RECO_RANKER_XGBOOST
                   : !strcmp(rk, "mlp")     ? REEL_RECO_RANKER_MLP
                                            : REEL_RECO_RANKER_DEFAULT;
        if (!reel_engine_has_ranker(sv->en, kind)) {
            json_decref(body);
            reel_http_resp_error(
                resp, 400,
                kind == REEL_RECO_RANKER_MLP
                    ? "this server has no MLP ranker "
                      "(DIR/models/ranker-mlp.reel: "
                      "reel train DIR --ranker mlp, then reload)"
                    : "this server has no XGBoost ranker "
                      "(DIR/models/ranker.json)");
            return 0;
        }
    }
    int created;
    reel_diag d;
    reel_diag_clear(&d);
    int rc = reel_experiments_put(sv->exps, name, body, reel_clock_wall(),
                                  &created, &d);
    json_decref(body);
    if (rc) {
        reel_http_resp_error(resp, rc == REEL_ETOOBIG ? 409 : 400, d.msg);
        return 0;
    }
    reel_log_info("experiment %s %s", name, created ? "started" : "updated");
    json_t *o = reel_experiments_json(sv->exps, name, &rc);
    if (!o) { /* deleted meanwhile */
        reel_http_resp_error(resp, 404, "no such experiment");
        return 0;
    }
    reel_cmd_send_json(resp, created ? 201 : 200, o);
    return 0;
}

static int h_exp_get(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    struct srv *sv = ctx;
    const char *name = reel_http_req_param(req, "name");
    if (!exp_name_ok(name, resp))
        return 0;
    int rc;
    json_t *o = reel_experiments_json(sv->exps, name, &rc);
    if (!o) {
        reel_http_resp_error(resp, 404, "no such experiment");
        return 0;
    }
    reel_cmd_send_json(resp, 200, o);
    return 0;
}

static int h_exp_list(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    struct srv *sv = ctx;
    int rc;
    reel_cmd_send_json(resp, 200,
                       json_pack("{s:o}", "experiments",
                                 reel_experiments_json(sv->exps, NULL, &rc)));
    return 0;
}

static int h_exp_delete(const reel_http_req *req, reel_http_resp *resp,
                        void *ctx)
{
    struct srv *sv = ctx;
    if (sv->token && !reel_http_bearer_ok(req, resp, sv->token))
        return 0;
    const char *name = reel_http_req_param(req, "name");
    if (!exp_name_ok(name, resp))
        return 0;
    if (reel_experiments_delete(sv->exps, name)) {
        reel_http_resp_error(resp, 404, "no such experiment");
        return 0;
    }
    reel_log_info("experiment %s stopped", name);
    reel_cmd_send_json(resp, 200,
                       json_pack("{s:s, s:b}", "name", name, "deleted", 1));
    return 0;
}

/* ---------------------------------------------------------------- reads */

/* The {id} path parameter and ?k=; 0 (with the 400 written) when bad. */
static int id_and_k(const reel_http_req *req, reel_http_resp *resp,
                    uint32_t max_k, const char **id, long *k)
{
    *id = reel_http_req_param(req, "id");
    if (!id_ok(*id, resp))
        return 0;
    *k = arg_k(req, "k", DEFAULT_K, (long)max_k);
    if (*k < 0) {
        reel_http_resp_error(resp, 400, "k must be a whole number >= 1");
        return 0;
    }
    return 1;
}

/* A boolean query argument: 1, 0, or -1 when malformed. */
static int arg_bool(const reel_http_req *req, const char *name)
{
    const char *s = reel_http_req_arg(req, name);
    if (!s || !strcmp(s, "false") || !strcmp(s, "0"))
        return 0;
    if (!*s || !strcmp(s, "true") || !strcmp(s, "1"))
        return 1;
    return -1;
}

static int h_recs(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    struct srv *sv = ctx;
    const char *user;
    long k;
    if (!id_and_k(req, resp, sv->max_k, &user, &k))
        return 0;
    int explain = arg_bool(req, "explain");
    if (explain < 0) {
        reel_http_resp_error(resp, 400, "explain must be true or false");
        return 0;
    }
    reel_reco_item *items =
        reel_arena_alloc(req->arena, (size_t)k * sizeof *items, 8);
    reel_engine_explain *ex =
        explain ? reel_arena_alloc(req->arena, (size_t)k * sizeof *ex, 8)
                : NULL;
    uint32_t n;
    reel_engine_source src;
    /* The arms of the running experiments, their options merged. */
    reel_exp_assignment *as = reel_arena_alloc(req->arena, sizeof *as, 8);
    as->n = 0;
    reel_reco_opts opts;
    if (reel_experiments_count(sv->exps))
        reel_experiments_assign(sv->exps, user, &sv->reco, as, &opts);
    int rc = reel_engine_recommend(sv->en, user, (uint32_t)k,
                                   as->n ? &opts : NULL, items, &n, &src, ex);
    if (rc)
        return rc;
    char rid[40];
    request_id(sv, rid, sizeof rid);
    reel_experiments_served(sv->exps, rid, user, as);
    json_t *arms = json_array();
    for (uint32_t i = 0; i < as->n; i++)
        json_array_append_new(arms,
                              json_pack("{s:s, s:s}", "name", as->e[i].name,
                                        "arm", as->e[i].arm));
    json_t *o =
        json_pack("{s:s, s:o, s:s, s:s, s:o}", "user", user, "items",
                  items_json(sv, req->arena, items, n, ex), "request_id", rid,
                  "source", reel_engine_source_name(src), "experiments", arms);
    /* The user's state could not be read (Redis down): a cold start. */
    if (src == REEL_ENGINE_DEGRADED)
        json_object_set_new(o, "degraded", json_true());
    reel_cmd_send_json(resp, 200, o);
    return 0;
}

static int h_similar(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    struct srv *sv = ctx;
    const char *video;
    long k;
    if (!id_and_k(req, resp, sv->max_k, &video, &k))
        return 0;
    reel_reco_item *items =
        reel_arena_alloc(req->arena, (size_t)k * sizeof *items, 8);
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
    reel_cmd_send_json(resp, 200,
                       json_pack("{s:s, s:o, s:s}", "video", video, "items",
                                 items_json(sv, req->arena, items, n, NULL),
                                 "request_id", rid));
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
    int rc = reel_engine_history(sv->en, user, (uint32_t)max, ev, &n, &total);
    if (rc) {
        reel_http_resp_error(resp, reel_http_status_of(rc),
                             rc == REEL_EUNAVAILABLE
                                 ? "the user state store (Redis) is unreachable"
                                 : reel_strerror(rc));
        return 0;
    }
    uint32_t *v = reel_arena_alloc(req->arena, ((size_t)n + 1) * sizeof *v, 4);
    const char **id =
        reel_arena_alloc(req->arena, ((size_t)n + 1) * sizeof *id, 8);
    const char **title =
        reel_arena_alloc(req->arena, ((size_t)n + 1) * sizeof *id, 8);
    for (uint32_t i = 0; i < n; i++)
        v[i] = ev[i].video;
    reel_engine_video_names(sv->en, v, n, req->arena, id, title);
    json_t *a = json_array();
    for (uint32_t i = 0; i < n; i++)
        json_array_append_new(a, json_pack("{s:s, s:s, s:o}", "video",
                                           id[i] ? id[i] : "", "type",
                                           reel_event_type_name(ev[i].type),
                                           "ts", num(ev[i].ts)));
    reel_cmd_send_json(resp, 200,
                       json_pack("{s:s, s:o, s:I}", "user", user, "events", a,
                                 "total", (json_int_t)total));
    return 0;
}

json_t *reel_cmd_str_or_null(const char *s)
{
    json_t *v = s ? json_string(s) : NULL;
    return v ? v : json_null();
}

static json_t *num_or_null(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

static json_t *words_json(const char *const *w, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, reel_cmd_str_or_null(w[i]));
    return a;
}

static int h_video(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    struct srv *sv = ctx;
    const char *video = reel_http_req_param(req, "id");
    if (!id_ok(video, resp))
        return 0;
    reel_video_rec r;
    int deleted, has_vec;
    if (reel_engine_video_get(sv->en, video, req->arena, &r, &deleted,
                              &has_vec)) {
        reel_http_resp_error(resp, 404, "unknown video");
        return 0;
    }
    reel_cmd_send_json(
        resp, 200,
        json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b, "
                  "s:b}",
                  "video", video, "title", reel_cmd_str_or_null(r.title),
                  "description", reel_cmd_str_or_null(r.description),
                  "language", reel_cmd_str_or_null(r.language), "type",
                  reel_cmd_str_or_null(r.type), "media",
                  reel_cmd_str_or_null(r.media), "duration_s",
                  num_or_null(r.duration_s), "published_at",
                  num_or_null(r.published_at), "categories",
                  words_json(r.categories, r.n_categories), "tags",
                  words_json(r.tags, r.n_tags), "deleted", deleted,
                  "has_vector", has_vec));
    return 0;
}

static int h_user(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    struct srv *sv = ctx;
    const char *user = reel_http_req_param(req, "id");
    if (!id_ok(user, resp))
        return 0;
    reel_user_rec r;
    uint64_t total;
    if (reel_engine_user_get(sv->en, user, req->arena, &r, &total)) {
        reel_http_resp_error(resp, 404, "unknown user");
        return 0;
    }
    reel_cmd_send_json(
        resp, 200,
        json_pack("{s:s, s:I, s:o, s:o, s:o, s:o, s:o, s:o}", "user", user,
                  "events", (json_int_t)total, "age",
                  r.age >= 0 ? json_integer(r.age) : json_null(), "gender",
                  reel_cmd_str_or_null(r.gender), "country",
                  reel_cmd_str_or_null(r.country), "occupation",
                  reel_cmd_str_or_null(r.occupation), "zip",
                  reel_cmd_str_or_null(r.zip), "signed_up_at",
                  num_or_null(r.signed_up_at)));
    return 0;
}

/* ---------------------------------------------------------------- puts */

/*
 * The body of a PUT: one JSON object whose "id", when present, is the
 * path's. Returns it with "id" set, or NULL with a 400 in resp.
 */
static json_t *put_body(const reel_http_req *req, reel_http_resp *resp,
                        const char *id)
{
    json_error_t je;
    json_t *o = json_loadb(req->body, req->body_len, 0, &je);
    char msg[300];
    if (!o) {
        snprintf(msg, sizeof msg, "bad JSON at byte %d: %s", je.position,
                 je.text);
        reel_http_resp_error(resp, 400, msg);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        reel_http_resp_error(resp, 400, "the body must be a JSON object");
        return NULL;
    }
    json_t *have = json_object_get(o, "id");
    if (have &&
        !(json_is_string(have) && !strcmp(json_string_value(have), id)) &&
        !(json_is_integer(have) &&
          snprintf(msg, sizeof msg, "%" JSON_INTEGER_FORMAT,
                   json_integer_value(have)) > 0 &&
          !strcmp(msg, id))) {
        json_decref(o);
        reel_http_resp_error(resp, 400, "\"id\" differs from the path's id");
        return NULL;
    }
    json_object_set_new(o, "id", json_string(id));
    return o;
}

/* A PUT's prologue: the token, the path's id (*id) and the body. NULL
 * when resp already holds the answer. */
static json_t *put_begin(const reel_http_req *req, reel_http_resp *resp,
                         struct srv *sv, const char **id)
{
    if (sv->token && !reel_http_bearer_ok(req, resp, sv->token))
        return NULL;
    *id = reel_http_req_param(req, "id");
    if (!id_ok(*id, resp))
        return NULL;
    return put_body(req, resp, *id);
}

/* The answer to a PUT, sent once the engine applied it (the durability
 * callback only touches err and refs, so the body may be written after
 * the engine took p). */
static struct pend *put_pend(void)
{
    struct pend *p = reel_xcalloc(1, sizeof *p);
    atomic_init(&p->refs, 2);
    return p;
}

static void put_answer(struct pend *p, const char *key, const char *id,
                       int is_new)
{
    p->status = is_new ? 201 : 200;
    json_t *out = json_pack("{s:s, s:b}", key, id, "created", is_new);
    char *s = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    reel_buf_puts(&p->body, s);
    reel_buf_putc(&p->body, '\n');
    free(s);
}

/* Sends p's answer, or the error when rc is not 0 (the engine took
 * nothing: a 400 with d's message for a bad record). */
static void put_finish(reel_http_resp *resp, struct pend *p, int rc,
                       const reel_diag *d)
{
    if (rc == REEL_EINVAL || rc == REEL_EFORMAT || rc == REEL_ERANGE ||
        rc == REEL_ETOOBIG) {
        reel_buf_free(&p->body);
        free(p);
        reel_http_resp_error(resp, 400, d->msg);
        return;
    }
    p->tok = reel_http_defer(resp);
    if (rc) {
        p->err = rc;
        pend_release(p);
    }
    pend_release(p);
}

static int h_put_video(const reel_http_req *req, reel_http_resp *resp,
                       void *ctx)
{
    struct srv *sv = ctx;
    const char *video;
    json_t *o = put_begin(req, resp, sv, &video);
    if (!o)
        return 0;
    reel_diag d;
    reel_diag_clear(&d);
    reel_video_rec rec;
    float *vec = NULL;
    uint32_t n_vec = 0;
    json_t *jv = json_object_get(o, "vector");
    int rc = reel_video_rec_from_json(o, req->arena, &rec, &d);
    if (!rc && jv && !json_is_null(jv)) {
        size_t n = json_is_array(jv) ? json_array_size(jv) : 0;
        if (!n || n > 4096) {
            rc = reel_diag_fail(&d, REEL_EINVAL,
                                "\"vector\" must be an array of 1..4096 "
                                "numbers");
        } else {
            vec = reel_arena_alloc(req->arena, n * sizeof *vec, 8);
            for (size_t i = 0; i < n && !rc; i++) {
                json_t *x = json_array_get(jv, i);
                if (!json_is_number(x))
                    rc = reel_diag_fail(&d, REEL_EINVAL,
                                        "\"vector\"[%zu] is not a number", i);
                else
                    vec[i] = (float)json_number_value(x);
            }
            n_vec = (uint32_t)n;
        }
    }
    if (rc) {
        json_decref(o);
        reel_http_resp_error(resp, 400, d.msg);
        return 0;
    }
    int is_new = 0;
    struct pend *p = put_pend();
    rc = reel_engine_video_put(sv->en, &rec, vec, n_vec, &is_new, &d, pend_done,
                               p);
    put_answer(p, "video", video, is_new);
    json_decref(o);
    put_finish(resp, p, rc, &d);
    return 0;
}

static int h_put_user(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    struct srv *sv = ctx;
    const char *user;
    json_t *o = put_begin(req, resp, sv, &user);
    if (!o)
        return 0;
    reel_diag d;
    reel_diag_clear(&d);
    reel_user_rec rec;
    int rc = reel_user_rec_from_json(o, req->arena, &rec, &d);
    if (rc) {
        json_decref(o);
        reel_http_resp_error(resp, 400, d.msg);
        return 0;
    }
    int is_new = 0;
    struct pend *p = put_pend();
    rc = reel_engine_user_put(sv->en, &rec, &is_new, &d, pend_done, p);
    put_answer(p, "user", user, is_new);
    json_decref(o);
    put_finish(resp, p, rc, &d);
    return 0;
}

/* --------------------------------------------------------------- admin */

/* Reload and snapshot run on their own thread: they take seconds, and a
 * loop thread must not wait. */
struct admin_job {
    struct srv *sv;
    reel_http_deferred *tok;
    int reload; /* 1: reload, 0: snapshot */
};

static void *admin_main(void *arg)
{
    struct admin_job *j = arg;
    reel_diag d;
    reel_diag_clear(&d);
    double t0 = reel_clock_mono();
    int rc = j->reload ? reel_engine_reload(j->sv->en, &d)
                       : reel_engine_snapshot(j->sv->en, &d);
    reel_http_resp r;
    reel_http_resp_init(&r);
    if (rc) {
        reel_http_resp_error(&r, 500, d.msg[0] ? d.msg : reel_strerror(rc));
    } else {
        reel_engine_stats st;
        reel_engine_get_stats(j->sv->en, &st);
        json_t *o =
            j->reload ? json_pack("{s:b, s:f, s:I, s:b}", "reloaded", 1,
                                  "seconds", reel_clock_mono() - t0,
                                  "index_videos", (json_int_t)st.videos_indexed,
                                  "ranker", st.has_ranker)
                      : json_pack("{s:I, s:f}", "snapshot_lsn",
                                  (json_int_t)st.snapshot_lsn, "seconds",
                                  reel_clock_mono() - t0);
        reel_cmd_send_json(&r, 200, o);
    }
    reel_http_complete(j->tok, &r);
    reel_http_resp_free(&r);
    atomic_fetch_sub(&j->sv->admin_jobs, 1);
    free(j);
    return NULL;
}

static int admin(const reel_http_req *req, reel_http_resp *resp, struct srv *sv,
                 int reload)
{
    if (sv->token && !reel_http_bearer_ok(req, resp, sv->token))
        return 0;
    struct admin_job *j = reel_xcalloc(1, sizeof *j);
    j->sv = sv;
    j->reload = reload;
    j->tok = reel_http_defer(resp);
    atomic_fetch_add(&sv->admin_jobs, 1);
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &at, admin_main, j)) {
        reel_http_resp r;
        reel_http_resp_init(&r);
        reel_http_resp_error(&r, 503, "cannot start a thread");
        reel_http_complete(j->tok, &r);
        reel_http_resp_free(&r);
        atomic_fetch_sub(&sv->admin_jobs, 1);
        free(j);
    }
    pthread_attr_destroy(&at);
    return 0;
}

static int h_reload(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    return admin(req, resp, ctx, 1);
}

static int h_snapshot(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    return admin(req, resp, ctx, 0);
}

static int h_health(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    reel_cmd_send_json(resp, 200, json_pack("{s:s}", "status", "ok"));
    return 0;
}

static int h_ready(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    struct srv *sv = ctx;
    /* The server listens only once the engine is open and replayed; with
     * Redis it is ready once Redis holds the state, this server has
     * copied the video statistics, and the last call reached Redis. */
    reel_engine_stats st;
    reel_engine_get_stats(sv->en, &st);
    /* ?degraded=ok: ready while Redis is down once the state was loaded
     * (requests then get cold-start answers marked degraded). */
    const char *dg = reel_http_req_arg(req, "degraded");
    if (st.redis && st.redis_loaded && !(st.redis_ready && st.redis_up) && dg &&
        !strcmp(dg, "ok")) {
        reel_cmd_send_json(
            resp, 200,
            json_pack("{s:s, s:s}", "status", "degraded", "reason",
                      st.redis_error[0] ? st.redis_error
                                        : "Redis is unreachable"));
        return 0;
    }
    if (st.redis && !(st.redis_ready && st.redis_up)) {
        reel_cmd_send_json(
            resp, 503,
            json_pack("{s:s, s:s}", "status", "not ready", "reason",
                      st.redis_error[0] ? st.redis_error
                                        : "loading the state from Redis"));
        return 0;
    }
    reel_cmd_send_json(resp, 200, json_pack("{s:s}", "status", "ready"));
    return 0;
}

static int h_metrics(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    struct srv *sv = ctx;
    resp->content_type = "text/plain; version=0.0.4";
    reel_http_metrics_write(sv->http, &resp->body);
    reel_engine_stats st;
    reel_engine_get_stats(sv->en, &st);
    reel_buf *b = &resp->body;
    reel_cmd_metric(b, "reel_events_ingested_total", "counter",
                    "Events accepted over HTTP and applied since start.",
                    (double)st.events_ingested);
    reel_cmd_metric(b, "reel_events_rejected_total", "counter",
                    "Events refused by the engine (unknown video) since start.",
                    (double)st.events_rejected);
    reel_cmd_metric(b, "reel_events_replayed", "gauge",
                    "Events replayed from the write-ahead log at start.",
                    (double)st.events_replayed);
    reel_cmd_metric(b, "reel_users", "gauge", "Users known (dataset and new).",
                    (double)st.users);
    reel_cmd_metric(b, "reel_new_users", "gauge", "Users beyond the dataset.",
                    (double)st.new_users);
    reel_cmd_metric(b, "reel_videos", "gauge", "Videos in the catalogue.",
                    (double)st.videos);
    reel_cmd_metric(b, "reel_index_videos", "gauge",
                    "Videos in the vector index.", (double)st.videos_indexed);
    reel_cmd_metric(b, "reel_videos_deleted", "gauge",
                    "Videos deleted (never recommended).", (double)st.deleted);
    reel_cmd_metric(b, "reel_new_videos", "gauge", "Videos added at run time.",
                    (double)st.new_videos);
    reel_cmd_metric(b, "reel_snapshots_total", "counter",
                    "Snapshots written since start.", (double)st.snapshots);
    reel_cmd_metric(b, "reel_snapshot_lsn", "gauge",
                    "The newest snapshot covers the log up to this record.",
                    (double)st.snapshot_lsn);
    reel_cmd_metric(b, "reel_snapshot_seconds", "gauge",
                    "Time the last snapshot took.", st.snapshot_s);
    reel_buf_printf(b,
                    "# HELP reel_store_bytes Bytes on disk of the serving "
                    "state.\n# TYPE reel_store_bytes gauge\n"
                    "reel_store_bytes{part=\"wal\"} %llu\n"
                    "reel_store_bytes{part=\"snapshots\"} %llu\n",
                    (unsigned long long)st.wal_disk_bytes,
                    (unsigned long long)st.snapshot_disk_bytes);
    reel_cmd_metric(b, "reel_reloads_total", "counter",
                    "Item-side reloads since start.", (double)st.reloads);
    if (st.redis) {
        reel_cmd_metric(b, "reel_redis_up", "gauge",
                        "1 when the last call to Redis succeeded.",
                        st.redis_up);
        reel_cmd_metric(
            b, "reel_redis_ready", "gauge",
            "1 once Redis holds the state and the video statistics are "
            "copied.",
            st.redis_ready);
        reel_cmd_metric(
            b, "reel_degraded_total", "counter",
            "Cold-start answers given because Redis was unreachable.",
            (double)st.degraded);
        reel_cmd_metric(b, "reel_redis_unavailable_total", "counter",
                        "Calls that found Redis unreachable.",
                        (double)st.redis_unavailable);
        reel_cmd_metric(b, "reel_redis_refreshes_total", "counter",
                        "Reads of the video log (the video statistics).",
                        (double)st.redis_refreshes);
        reel_cmd_metric(b, "reel_redis_checkpoints_total", "counter",
                        "Checkpoints of the video statistics this process "
                        "wrote.",
                        (double)st.redis_checkpoints);
    }
    reel_cmd_metric(b, "reel_wal_records_total", "counter",
                    "Log records appended since start.",
                    (double)st.wal.records);
    reel_cmd_metric(b, "reel_wal_bytes_total", "counter",
                    "Log bytes appended since start.", (double)st.wal.bytes);
    reel_cmd_metric(b, "reel_wal_batches_total", "counter",
                    "Group-commit batches written.", (double)st.wal.batches);
    reel_cmd_metric(b, "reel_wal_fsyncs_total", "counter",
                    "fsyncs of log segments.", (double)st.wal.fsyncs);
    reel_cmd_metric(b, "reel_wal_fsync_seconds_total", "counter",
                    "Time spent in fsyncs of the log.",
                    (double)st.wal.fsync_ns * 1e-9);
    reel_cmd_metric(b, "reel_wal_segments", "gauge", "Log segment files.",
                    (double)st.wal.segments);
    reel_cmd_metric(b, "reel_wal_durable_lsn", "gauge",
                    "Every log record up to this number is on disk.",
                    (double)st.wal.durable_lsn);
    reel_cmd_kafka_metrics(sv->kafka, b);
    return 0;
}

/* ---------------------------------------------------------------- main */

/* The token from a file (a Kubernetes Secret mounted as one): its first
 * line, without the line end; 1..255 visible ASCII characters. */
static int read_token_file(const char *path, char *out, size_t cap,
                           reel_diag *d)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return reel_diag_fail(d, REEL_EIO, "%s: %s", path, strerror(errno));
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    n = strcspn(buf, "\r\n");
    buf[n] = '\0';
    int ok = n > 0 && n < cap;
    for (size_t i = 0; ok && i < n; i++)
        ok = buf[i] > 0x20 && buf[i] < 0x7f;
    if (!ok)
        return reel_diag_fail(d, REEL_EINVAL,
                              "%s: the token must be one line of 1..%zu "
                              "visible ASCII characters",
                              path, cap - 1);
    memcpy(out, buf, n + 1);
    return 0;
}

int reel_cmd_serve(int argc, char **argv)
{
    enum {
        O_HOST = 256,
        O_PORT,
        O_THREADS,
        O_FSYNC,
        O_FSYNC_MS,
        O_TOKEN,
        O_CONFIG,
        O_STORE,
        O_TOKEN_FILE,
        O_KAFKA,
        O_TOPIC,
        O_GROUP,
        O_DLQ
    };
    static const struct option opts[] = {
        {"config", required_argument, 0, O_CONFIG},
        {"host", required_argument, 0, O_HOST},
        {"port", required_argument, 0, O_PORT},
        {"threads", required_argument, 0, O_THREADS},
        {"fsync", required_argument, 0, O_FSYNC},
        {"fsync-ms", required_argument, 0, O_FSYNC_MS},
        {"token", required_argument, 0, O_TOKEN},
        {"store", required_argument, 0, O_STORE},
        {"token-file", required_argument, 0, O_TOKEN_FILE},
        {"kafka", required_argument, 0, O_KAFKA},
        {"topic", required_argument, 0, O_TOPIC},
        {"group", required_argument, 0, O_GROUP},
        {"dlq", required_argument, 0, O_DLQ},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    /* The file first, whatever its place on the line; flags override it. */
    reel_serve_config cfg;
    reel_serve_config_init(&cfg);
    const char *config = NULL;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == O_CONFIG)
            config = optarg;
        if (c == 'h') {
            help(stdout);
            return REEL_EXIT_OK;
        }
    }
    reel_diag d;
    reel_diag_clear(&d);
    if (config && reel_serve_config_load(config, &cfg, &d))
        return reel_cmd_fail_diag("serve", &d);
    uint64_t v;
    const char *kafka = NULL, *topic = "reel.events", *group = "reel-serve",
               *dlq = NULL;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_CONFIG:
            break;
        case O_HOST:
            if (strlen(optarg) >= sizeof cfg.host)
                return reel_cmd_usage_error("serve", "bad --host '%s'", optarg);
            snprintf(cfg.host, sizeof cfg.host, "%s", optarg);
            break;
        case O_PORT:
            if (reel_cmd_parse_u64(optarg, 0, 65535, &v))
                return reel_cmd_usage_error("serve", "bad --port '%s'", optarg);
            cfg.port = (uint16_t)v;
            break;
        case O_THREADS:
            if (reel_cmd_parse_u64(optarg, 1, REEL_HTTP_MAX_THREADS, &v))
                return reel_cmd_usage_error("serve", "bad --threads '%s'",
                                            optarg);
            cfg.threads = (uint32_t)v;
            break;
        case O_FSYNC:
            if (!strcmp(optarg, "always"))
                cfg.fsync = REEL_WAL_SYNC_ALWAYS;
            else if (!strcmp(optarg, "interval"))
                cfg.fsync = REEL_WAL_SYNC_INTERVAL;
            else
                return reel_cmd_usage_error(
                    "serve", "bad --fsync '%s' (always, interval)", optarg);
            break;
        case O_FSYNC_MS:
            if (reel_cmd_parse_u64(optarg, 1, 60000, &v))
                return reel_cmd_usage_error("serve", "bad --fsync-ms '%s'",
                                            optarg);
            cfg.fsync_ms = (uint32_t)v;
            break;
        case O_TOKEN:
            if (!*optarg || strlen(optarg) >= sizeof cfg.token)
                return reel_cmd_usage_error("serve", "bad --token");
            snprintf(cfg.token, sizeof cfg.token, "%s", optarg);
            break;
        case O_KAFKA:
            kafka = optarg;
            break;
        case O_TOPIC:
            topic = optarg;
            break;
        case O_GROUP:
            group = optarg;
            break;
        case O_DLQ:
            dlq = optarg;
            break;
        case O_TOKEN_FILE:
            if (read_token_file(optarg, cfg.token, sizeof cfg.token, &d))
                return reel_cmd_fail_diag("serve", &d);
            break;
        case O_STORE:
            if (strlen(optarg) >= sizeof cfg.store ||
                (strcmp(optarg, "embedded") &&
                 reel_redis_url_check(optarg, &d)))
                return reel_cmd_usage_error("serve", "bad --store: %s",
                                            d.msg[0] ? d.msg : optarg);
            snprintf(cfg.store, sizeof cfg.store, "%s", optarg);
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
    reel_http_opts ho = reel_http_opts_default();
    ho.host = cfg.host;
    ho.port = cfg.port;
    if (cfg.threads)
        ho.threads = (int)cfg.threads;
    reel_engine_opts eo;
    reel_engine_opts_init(&eo);
    eo.sync = cfg.fsync;
    eo.interval_ms = cfg.fsync_ms;
    eo.reco = cfg.reco;
    eo.cold_refresh_s = cfg.cold_refresh_s;
    eo.cold_n = cfg.cold_n;
    eo.cold_segment_min = cfg.cold_segment_min;
    eo.snapshot_every_s = cfg.snapshot_every_s;
    eo.snapshot_every_events = cfg.snapshot_every_events;
    if (strcmp(cfg.store, "embedded")) {
        eo.store_url = cfg.store;
        eo.redis.prefix = cfg.redis_prefix;
        eo.redis.history_max = cfg.redis_history_max;
        eo.redis.io_timeout_ms = (int)cfg.redis_timeout_ms;
        eo.store_refresh_s = cfg.redis_refresh_s;
        eo.store_checkpoint_s = cfg.redis_checkpoint_s;
    }
    const char *token = cfg.token[0] ? cfg.token : NULL;

    /* Every thread (the log's writer, the loops) inherits this mask, so
     * the signals reach only sigwait below. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    struct srv sv = {
        .token = token,
        .max_k = cfg.max_k,
        .start = (unsigned)((unsigned)getpid() ^ (unsigned)reel_clock_wall())};
    atomic_init(&sv.next_request, 1);
    atomic_init(&sv.admin_jobs, 0);
    sv.reco = cfg.reco;
    if (reel_experiments_new(cfg.exp_attribution, &sv.exps))
        return reel_cmd_fail("serve", "experiments.attribution_requests out "
                                      "of range");
    if (cfg.experiments[0]) {
        /* checked when the config was read */
        json_t *run = json_loads(cfg.experiments, 0, NULL);
        const char *name;
        json_t *body;
        json_object_foreach(run, name, body)
        {
            int created;
            if (reel_experiments_put(sv.exps, name, body, reel_clock_wall(),
                                     &created, &d))
                abort();
        }
        json_decref(run);
    }
    double t0 = reel_clock_mono();
    if (reel_engine_open(dir, &eo, &sv.en, &d)) {
        reel_experiments_free(sv.exps);
        return reel_cmd_fail_diag("serve", &d);
    }
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
        reel_experiments_free(sv.exps);
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
        {"PUT", "/v1/videos/{id}", h_put_video},
        {"PUT", "/v1/users/{id}", h_put_user},
        {"POST", "/admin/reload", h_reload},
        {"POST", "/admin/snapshot", h_snapshot},
        {"GET", "/v1/videos/{id}", h_video},
        {"GET", "/v1/users/{id}", h_user},
        {"GET", "/healthz", h_health},
        {"GET", "/readyz", h_ready},
        {"GET", "/metrics", h_metrics},
        {"PUT", "/v1/experiments/{name}", h_exp_put},
        {"GET", "/v1/experiments/{name}", h_exp_get},
        {"DELETE", "/v1/experiments/{name}", h_exp_delete},
        {"GET", "/v1/experiments", h_exp_list},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if ((rc = reel_http_route(sv.http, routes[i].method, routes[i].pattern,
                                  routes[i].fn, &sv)))
            abort(); /* the table above is wrong */
    /* The dashboard: /, web/'s files, /v1/videos, /thumbs (serve_web.c). */
    if ((rc = reel_cmd_web_routes(sv.http, sv.en, dir)))
        abort(); /* its routes clash with the table above */
    if ((rc = reel_http_start(sv.http, &d))) {
        reel_http_free(sv.http);
        reel_engine_close(sv.en);
        reel_experiments_free(sv.exps);
        return reel_cmd_fail_diag("serve", &d);
    }
    /* Events from Kafka too: a consumer thread applying them through the
     * engine like POST /v1/events. */
    if (kafka) {
        reel_kafka_consumer_opts ko;
        reel_kafka_consumer_opts_init(&ko);
        ko.brokers = kafka;
        ko.topic = topic;
        ko.group = group;
        if (dlq)
            ko.dlq_topic = dlq;
        if (reel_cmd_kafka_start(sv.en, &ko, &sv.kafka, &d)) {
            reel_http_stop(sv.http);
            reel_http_free(sv.http);
            reel_engine_close(sv.en);
            reel_experiments_free(sv.exps);
            return reel_cmd_fail_diag("serve", &d);
        }
    }
    printf("reel serve: listening on http://%s:%u\n", ho.host,
           (unsigned)reel_http_port(sv.http));
    fflush(stdout);
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "reel serve: %s, stopping\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM");
    reel_cmd_kafka_stop(sv.kafka);
    /* The server first (it waits for deferred answers, which need the
     * log), then the engine and its log. */
    reel_http_stop(sv.http);
    /* An admin thread touches sv until just after it answered. */
    while (atomic_load(&sv.admin_jobs))
        usleep(1000);
    reel_http_free(sv.http);
    rc = reel_engine_close(sv.en);
    reel_experiments_free(sv.exps);
    if (rc)
        return reel_cmd_fail("serve", "the write-ahead log failed: %s",
                             reel_strerror(rc));
    return REEL_EXIT_OK;
}
