/* reel ingest: a Kafka consumer group worker that applies the events of a
 * topic to the user state (the Redis store), and the same consumer run
 * inside `reel serve --kafka` (kafka_events_*). Messages: one JSON event
 * each (docs/formats/kafka-events.md); offsets are committed only after
 * the engine has applied the events (at least once; the Redis store
 * de-duplicates events by "id"); a message that can never be applied is
 * poison: counted, logged and sent to the dead-letter topic. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/config.h"
#include "api/http.h"
#include "base/arena.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "cmd.h"
#include "data/record.h"
#include "ingest/kafka.h"
#include "reco/engine.h"

struct reel_cmd_kafka {
    reel_engine *en;
    reel_kafka_consumer *c;
    pthread_t th;
    atomic_int stop;
    atomic_int failed; /* the consumer stopped on a fatal error */
    reel_arena a;
};

/* One batch: parse, apply through the engine (synchronously: durable when
 * it returns), poison what can never be applied. */
static int apply_batch(void *ctx, const reel_kafka_msg *m, uint32_t n,
                       reel_kafka_verdict *v)
{
    struct reel_cmd_kafka *k = ctx;
    reel_arena_reset(&k->a);
    reel_event_in *ev = reel_arena_alloc(&k->a, n * sizeof *ev, 8);
    uint32_t *at = reel_arena_alloc(&k->a, n * sizeof *at, 4);
    reel_engine_reject *rej = reel_arena_alloc(&k->a, n * sizeof *rej, 8);
    /* The parsed events point into the JSON values: kept until applied. */
    json_t **vals = reel_arena_alloc(&k->a, n * sizeof *vals, 8);
    uint32_t m_ok = 0, n_vals = 0;
    for (uint32_t i = 0; i < n; i++) {
        json_error_t je;
        json_t *o =
            json_loadb(m[i].payload, m[i].len, JSON_REJECT_DUPLICATES, &je);
        if (!o) {
            v[i].poison = 1;
            snprintf(v[i].error, sizeof v[i].error,
                     "bad JSON at byte %d: %.100s", je.position, je.text);
            continue;
        }
        /* Without a time, the event happened when Kafka took it: the same
         * on every delivery. */
        if (json_is_object(o) && !json_object_get(o, "ts") && m[i].ts_ms > 0)
            json_object_set_new(o, "ts", json_real((double)m[i].ts_ms / 1e3));
        reel_diag d;
        reel_diag_clear(&d);
        int rc = reel_event_from_json(o, &k->a, &ev[m_ok], &d);
        vals[n_vals++] = o;
        if (rc) {
            v[i].poison = 1;
            snprintf(v[i].error, sizeof v[i].error, "%.150s", d.msg);
            continue;
        }
        at[m_ok++] = i;
    }
    uint32_t n_rej = 0;
    int rc =
        m_ok ? reel_engine_ingest(k->en, ev, m_ok, rej, &n_rej, NULL, NULL) : 0;
    for (uint32_t i = 0; i < n_vals; i++)
        json_decref(vals[i]);
    if (rc)
        return rc; /* nothing counts as applied: the batch comes again */
    for (uint32_t i = 0; i < n_rej; i++) {
        reel_kafka_verdict *x = &v[at[rej[i].index]];
        x->poison = 1;
        snprintf(x->error, sizeof x->error, "%s", rej[i].error);
    }
    return 0;
}

static void *consume_main(void *arg)
{
    struct reel_cmd_kafka *k = arg;
    int rc = reel_kafka_consumer_run(k->c, apply_batch, k, &k->stop);
    if (rc) {
        reel_log_error("kafka: the consumer stopped: %s", reel_strerror(rc));
        atomic_store(&k->failed, 1);
    }
    return NULL;
}

int reel_cmd_kafka_start(reel_engine *en, const reel_kafka_consumer_opts *o,
                         struct reel_cmd_kafka **out, reel_diag *d)
{
    *out = NULL;
    struct reel_cmd_kafka *k = reel_xcalloc(1, sizeof *k);
    k->en = en;
    reel_arena_init(&k->a, 1 << 20);
    int rc = reel_kafka_consumer_open(o, &k->c, d);
    if (rc) {
        reel_arena_free(&k->a);
        free(k);
        return rc;
    }
    if (pthread_create(&k->th, NULL, consume_main, k)) {
        reel_kafka_consumer_close(k->c);
        reel_arena_free(&k->a);
        free(k);
        return reel_diag_fail(d, REEL_ENOMEM, "cannot start a thread");
    }
    *out = k;
    return 0;
}

void reel_cmd_kafka_stop(struct reel_cmd_kafka *k)
{
    if (!k)
        return;
    atomic_store(&k->stop, 1);
    pthread_join(k->th, NULL);
    int rc = reel_kafka_consumer_close(k->c);
    if (rc)
        reel_log_warn("kafka: leaving the group: %s", reel_strerror(rc));
    reel_arena_free(&k->a);
    free(k);
}

int reel_cmd_kafka_failed(const struct reel_cmd_kafka *k)
{
    return k && atomic_load(&k->failed);
}

void reel_cmd_metric(reel_buf *b, const char *name, const char *type,
                     const char *help, double v)
{
    reel_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help,
                    name, type, name, v);
}

void reel_cmd_kafka_metrics(const struct reel_cmd_kafka *k, reel_buf *b)
{
    if (!k)
        return;
    reel_kafka_consumer_stats st;
    reel_kafka_consumer_get_stats(k->c, &st);
    reel_cmd_metric(b, "reel_kafka_messages_total", "counter",
                    "Messages received (redeliveries counted again).",
                    (double)st.messages);
    reel_cmd_metric(b, "reel_kafka_applied_total", "counter",
                    "Messages applied and committed.", (double)st.applied);
    reel_cmd_metric(
        b, "reel_kafka_poison_total", "counter",
        "Messages that can never be applied (sent to the dead-letter "
        "topic).",
        (double)st.poison);
    reel_cmd_metric(b, "reel_kafka_dlq_total", "counter",
                    "Poison messages delivered to the dead-letter topic.",
                    (double)st.dlq_sent);
    reel_cmd_metric(
        b, "reel_kafka_retries_total", "counter",
        "Batches that could not be applied (the store was down) and "
        "came again.",
        (double)st.retries);
    reel_cmd_metric(b, "reel_kafka_commits_total", "counter", "Offset commits.",
                    (double)st.commits);
    reel_cmd_metric(b, "reel_kafka_rebalances_total", "counter",
                    "Partition assignments and revocations.",
                    (double)st.rebalances);
    reel_cmd_metric(b, "reel_kafka_partitions", "gauge",
                    "Partitions assigned now.", (double)st.assigned);
    reel_cmd_metric(b, "reel_kafka_lag", "gauge",
                    "Messages behind the end of the assigned partitions (-1: "
                    "unknown).",
                    (double)st.lag);
}

/* ----------------------------------------------------------- reel ingest */

static void help(FILE *out)
{
    fprintf(out,
            "usage: reel ingest DIR --store redis://HOST:PORT|unix:///PATH\n"
            "                   --kafka BROKERS [--topic reel.events] "
            "[--group reel]\n"
            "                   [--dlq TOPIC] [--batch 1000] [--config FILE]\n"
            "                   [--host 127.0.0.1] [--port 8081]\n"
            "\n"
            "Consumes JSON events (docs/formats/kafka-events.md) from a Kafka "
            "topic as a\nmember of a consumer group and applies them to the "
            "user state in Redis\n(docs/formats/redis.md), committing "
            "offsets only once they are applied\n(at least once; events "
            "with an \"id\" are applied once). A message that\ncan never be "
            "applied (bad JSON, unknown video) is counted, logged and "
            "sent\nto the dead-letter topic (default TOPIC.dlq; --dlq \"\" "
            "only logs it); Redis\nunreachable: the batch is retried with "
            "back-off, nothing is committed.\nDIR is the data directory "
            "the servers load (the catalogue, and the dataset\nthat seeds "
            "an empty Redis). Serves GET /healthz, /readyz and /metrics "
            "on\n--port. SIGINT or SIGTERM: finishes the batch in hand, "
            "commits, leaves\nthe group.\n");
}

struct ingest_srv {
    reel_engine *en;
    struct reel_cmd_kafka *k;
    reel_http_server *http;
};

static int h_health(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    reel_cmd_send_json(resp, 200, json_pack("{s:s}", "status", "ok"));
    return 0;
}

static int h_ready(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    struct ingest_srv *sv = ctx;
    reel_engine_stats st;
    reel_engine_get_stats(sv->en, &st);
    const char *why = NULL;
    if (reel_cmd_kafka_failed(sv->k))
        why = "the Kafka consumer stopped on a fatal error (see the log)";
    else if (!(st.redis_ready && st.redis_up))
        why =
            st.redis_error[0] ? st.redis_error : "loading the state from Redis";
    if (why)
        reel_cmd_send_json(
            resp, 503,
            json_pack("{s:s, s:s}", "status", "not ready", "reason", why));
    else
        reel_cmd_send_json(resp, 200, json_pack("{s:s}", "status", "ready"));
    return 0;
}

static int h_metrics(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    struct ingest_srv *sv = ctx;
    resp->content_type = "text/plain; version=0.0.4";
    reel_http_metrics_write(sv->http, &resp->body);
    reel_engine_stats st;
    reel_engine_get_stats(sv->en, &st);
    reel_buf *b = &resp->body;
    reel_cmd_metric(b, "reel_events_ingested_total", "counter",
                    "Events applied to the store since start (duplicates not "
                    "counted).",
                    (double)st.events_ingested);
    reel_cmd_metric(b, "reel_events_rejected_total", "counter",
                    "Events refused (unknown video) since start.",
                    (double)st.events_rejected);
    reel_cmd_metric(b, "reel_redis_up", "gauge",
                    "1 when the last call to Redis succeeded.", st.redis_up);
    reel_cmd_metric(b, "reel_redis_unavailable_total", "counter",
                    "Calls that found Redis unreachable.",
                    (double)st.redis_unavailable);
    reel_cmd_kafka_metrics(sv->k, b);
    return 0;
}

int reel_cmd_ingest(int argc, char **argv)
{
    enum {
        O_STORE = 256,
        O_KAFKA,
        O_TOPIC,
        O_GROUP,
        O_DLQ,
        O_BATCH,
        O_CONFIG,
        O_HOST,
        O_PORT
    };
    static const struct option opts[] = {
        {"store", required_argument, 0, O_STORE},
        {"kafka", required_argument, 0, O_KAFKA},
        {"topic", required_argument, 0, O_TOPIC},
        {"group", required_argument, 0, O_GROUP},
        {"dlq", required_argument, 0, O_DLQ},
        {"batch", required_argument, 0, O_BATCH},
        {"config", required_argument, 0, O_CONFIG},
        {"host", required_argument, 0, O_HOST},
        {"port", required_argument, 0, O_PORT},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    reel_serve_config cfg;
    reel_serve_config_init(&cfg);
    cfg.port = 8081;
    const char *config = NULL, *brokers = NULL, *topic = "reel.events",
               *group = "reel", *dlq = NULL;
    uint64_t batch = 1000, v;
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
        return reel_cmd_fail_diag("ingest", &d);
    optind = 0;
    int port_given = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_CONFIG:
            break;
        case O_STORE:
            if (strlen(optarg) >= sizeof cfg.store ||
                reel_redis_url_check(optarg, &d))
                return reel_cmd_usage_error("ingest", "bad --store: %s",
                                            d.msg[0] ? d.msg : optarg);
            snprintf(cfg.store, sizeof cfg.store, "%s", optarg);
            break;
        case O_KAFKA:
            brokers = optarg;
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
        case O_BATCH:
            if (reel_cmd_parse_u64(optarg, 1, REEL_ENGINE_MAX_BATCH, &batch))
                return reel_cmd_usage_error("ingest",
                                            "bad --batch '%s' (1..%d)", optarg,
                                            REEL_ENGINE_MAX_BATCH);
            break;
        case O_HOST:
            if (strlen(optarg) >= sizeof cfg.host)
                return reel_cmd_usage_error("ingest", "bad --host '%s'",
                                            optarg);
            snprintf(cfg.host, sizeof cfg.host, "%s", optarg);
            break;
        case O_PORT:
            if (reel_cmd_parse_u64(optarg, 0, 65535, &v))
                return reel_cmd_usage_error("ingest", "bad --port '%s'",
                                            optarg);
            cfg.port = (uint16_t)v;
            port_given = 1;
            break;
        case 'h':
            help(stdout);
            return REEL_EXIT_OK;
        default:
            return reel_cmd_usage_error("ingest",
                                        "unknown or incomplete option '%s'",
                                        argv[optind - 1]);
        }
    }
    (void)port_given;
    if (optind != argc - 1)
        return reel_cmd_usage_error("ingest", "expected one data directory");
    if (!brokers || !*brokers)
        return reel_cmd_usage_error("ingest", "--kafka BROKERS is required");
    if (!strcmp(cfg.store, "embedded"))
        return reel_cmd_usage_error(
            "ingest",
            "--store redis://... is required: reel ingest applies events to "
            "the Redis store (with the embedded store, run reel serve "
            "--kafka instead)");
    const char *dir = argv[optind];

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    reel_engine_opts eo;
    reel_engine_opts_init(&eo);
    eo.reco = cfg.reco;
    eo.cold_refresh_s = cfg.cold_refresh_s;
    eo.snapshot_every_s = 0;
    eo.snapshot_every_events = 0;
    eo.snapshot_on_close = 0;
    eo.store_url = cfg.store;
    eo.redis.prefix = cfg.redis_prefix;
    eo.redis.history_max = cfg.redis_history_max;
    eo.redis.io_timeout_ms = (int)cfg.redis_timeout_ms;
    eo.store_refresh_s = cfg.redis_refresh_s;
    eo.store_checkpoint_s = cfg.redis_checkpoint_s;
    struct ingest_srv sv = {0};
    if (reel_engine_open(dir, &eo, &sv.en, &d))
        return reel_cmd_fail_diag("ingest", &d);
    reel_kafka_consumer_opts ko;
    reel_kafka_consumer_opts_init(&ko);
    ko.brokers = brokers;
    ko.topic = topic;
    ko.group = group;
    if (dlq)
        if (dlq)
            ko.dlq_topic = dlq;
    ko.batch_max = (uint32_t)batch;
    int rc = reel_cmd_kafka_start(sv.en, &ko, &sv.k, &d);
    if (rc) {
        reel_engine_close(sv.en);
        return reel_cmd_fail_diag("ingest", &d);
    }
    reel_http_opts ho = reel_http_opts_default();
    ho.host = cfg.host;
    ho.port = cfg.port;
    ho.threads = 1;
    if ((rc = reel_http_new(&ho, &sv.http)) ||
        (rc = reel_http_route(sv.http, "GET", "/healthz", h_health, &sv)) ||
        (rc = reel_http_route(sv.http, "GET", "/readyz", h_ready, &sv)) ||
        (rc = reel_http_route(sv.http, "GET", "/metrics", h_metrics, &sv)) ||
        (rc = reel_http_start(sv.http, &d))) {
        reel_cmd_kafka_stop(sv.k);
        reel_http_free(sv.http);
        reel_engine_close(sv.en);
        return reel_cmd_fail("ingest", "http: %s",
                             d.msg[0] ? d.msg : reel_strerror(rc));
    }
    printf("reel ingest: consuming %s as group %s; listening on "
           "http://%s:%u\n",
           topic, group, cfg.host, (unsigned)reel_http_port(sv.http));
    fflush(stdout);
    int sig;
    sigwait(&sigs, &sig);
    reel_log_info("ingest: signal %d: stopping", sig);
    reel_cmd_kafka_stop(sv.k);
    reel_http_free(sv.http);
    return reel_engine_close(sv.en) ? REEL_EXIT_ERROR : REEL_EXIT_OK;
}
