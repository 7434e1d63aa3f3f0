#include "ingest/kafka.h"

#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "base/log.h"
#include "base/mem.h"

#define BACKOFF_FIRST_MS 100u
#define BACKOFF_MAX_MS 5000u
/* Slices of a back-off wait, so that the stop flag is seen soon. */
#define WAIT_SLICE_MS 10u
/* How long seeking back may take before the consumer gives up. */
#define SEEK_TIMEOUT_MS 10000
/* How long close waits for the DLQ producer's purged reports. */
#define CLOSE_FLUSH_MS 1000

/* ------------------------------------------------------------- errors */

/* librdkafka's error codes as reel's: the one place they are translated. */
static int from_kafka(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return 0;
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
        return REEL_ETIMEOUT;
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__RESOLVE:
    case RD_KAFKA_RESP_ERR__WAIT_COORD:
    case RD_KAFKA_RESP_ERR__NODE_UPDATE:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
    case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
        return REEL_EUNAVAILABLE;
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION:
    case RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID:
    case RD_KAFKA_RESP_ERR__STATE:
        return REEL_EBUSY;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        return REEL_ETOOBIG;
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
        return REEL_ENOENT;
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR__INVALID_TYPE:
    case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
        return REEL_EINVAL;
    case RD_KAFKA_RESP_ERR__DESTROY:
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
        return REEL_ECANCELED;
    case RD_KAFKA_RESP_ERR__NOT_IMPLEMENTED:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION:
        return REEL_EUNSUPPORTED;
    default:
        return REEL_EIO;
    }
}

/* --------------------------------------------------------- helpers */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Sleeps ms milliseconds, or less once *stop is set. */
static void wait_ms(uint32_t ms, const atomic_int *stop)
{
    double end = now_ms() + ms;
    for (;;) {
        if (stop && atomic_load(stop))
            return;
        double left = end - now_ms();
        if (left <= 0)
            return;
        if (left > WAIT_SLICE_MS)
            left = WAIT_SLICE_MS;
        struct timespec ts = {0, (long)(left * 1e6)};
        nanosleep(&ts, NULL);
    }
}

/* librdkafka's syslog levels on reel's. Connection trouble is logged at
 * LOG_ERR by librdkafka and again through the error callback, so its
 * own log is one step quieter: reel's warnings are the error callback's. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
    enum reel_log_level l = level <= 2   ? REEL_LOG_ERROR
                            : level <= 4 ? REEL_LOG_INFO
                                         : REEL_LOG_DEBUG;
    /* The consumer's settings go to its DLQ producer too, by design. */
    if (!strcmp(fac, "CONFWARN") && strstr(buf, "will be ignored by this"))
        l = REEL_LOG_DEBUG;
    reel_log(l, "kafka: %s: %s: %s", rd_kafka_name(rk), fac, buf);
}

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *val,
                    reel_diag *d)
{
    char errstr[512];
    if (rd_kafka_conf_set(conf, key, val, errstr, sizeof errstr) !=
        RD_KAFKA_CONF_OK)
        return reel_diag_fail(d, REEL_EINVAL, "kafka setting %s: %s", key,
                              errstr);
    return 0;
}

/* Applies the caller's "key=value" settings. */
static int conf_set_all(rd_kafka_conf_t *conf, const char *const *settings,
                        size_t n, reel_diag *d)
{
    for (size_t i = 0; i < n; i++) {
        const char *s = settings[i];
        const char *eq = s ? strchr(s, '=') : NULL;
        if (!eq || eq == s)
            return reel_diag_fail(d, REEL_EINVAL,
                                  "kafka setting \"%.80s\" is not key=value",
                                  s ? s : "(null)");
        char *key = reel_xstrndup(s, (size_t)(eq - s));
        int rc = conf_set(conf, key, eq + 1, d);
        free(key);
        if (rc)
            return rc;
    }
    return 0;
}

static int need(const char *s, const char *what, reel_diag *d)
{
    if (!s || !*s)
        return reel_diag_fail(d, REEL_EINVAL, "kafka: no %s given", what);
    return 0;
}

/* ------------------------------------------------------------ producer */

struct reel_kafka_producer {
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    _Atomic uint64_t produced, delivered, failed;
    atomic_int fatal;
    pthread_mutex_t mu; /* guards first_error */
    char first_error[REEL_KAFKA_ERROR_MAX];
};

/* A message's delivery: counted; a DLQ message's status slot (its
 * opaque) becomes 1 (delivered) or -1 (failed). Runs in the thread
 * that polls or flushes the producer. */
static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    reel_kafka_producer *p = opaque;
    int *status = m->_private;
    if (m->err) {
        atomic_fetch_add(&p->failed, 1);
        pthread_mutex_lock(&p->mu);
        if (!p->first_error[0])
            snprintf(p->first_error, sizeof p->first_error, "%s",
                     rd_kafka_err2str(m->err));
        pthread_mutex_unlock(&p->mu);
        if (status)
            *status = -1;
    } else {
        atomic_fetch_add(&p->delivered, 1);
        if (status)
            *status = 1;
    }
}

static void producer_error_cb(rd_kafka_t *rk, int err, const char *reason,
                              void *opaque)
{
    reel_kafka_producer *p = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[256];
        rd_kafka_fatal_error(rk, why, sizeof why);
        reel_log_error("kafka: %s: fatal: %s", rd_kafka_name(rk), why);
        atomic_store(&p->fatal, 1);
        return;
    }
    reel_log_warn("kafka: %s: %s", rd_kafka_name(rk), reason);
}

int reel_kafka_producer_open(const reel_kafka_producer_opts *o,
                             reel_kafka_producer **out, reel_diag *d)
{
    assert(o && out);
    *out = NULL;
    int rc;
    if ((rc = need(o->brokers, "brokers", d)) ||
        (rc = need(o->topic, "topic", d)))
        return rc;
    reel_kafka_producer *p = reel_xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if ((rc = conf_set(conf, "bootstrap.servers", o->brokers, d)) ||
        (rc = conf_set(conf, "client.id", o->client_id ? o->client_id : "reel",
                       d)) ||
        (rc = conf_set(conf, "acks", "all", d)) ||
        (rc = conf_set(conf, "enable.idempotence", "true", d)) ||
        (rc = conf_set_all(conf, o->settings, o->n_settings, d)))
        goto fail;
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_error_cb(conf, producer_error_cb);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    char errstr[512];
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!p->rk) {
        rc = reel_diag_fail(d, REEL_EINVAL, "kafka producer: %s", errstr);
        goto fail;
    }
    conf = NULL; /* the handle owns it now */
    p->rkt = rd_kafka_topic_new(p->rk, o->topic, NULL);
    if (!p->rkt) {
        rc = reel_diag_fail(d, REEL_EINVAL, "kafka topic %s: %s", o->topic,
                            rd_kafka_err2str(rd_kafka_last_error()));
        goto fail;
    }
    *out = p;
    return 0;
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    if (p->rk)
        rd_kafka_destroy(p->rk);
    pthread_mutex_destroy(&p->mu);
    free(p);
    return rc;
}

/* Queues one message, with headers (owned by the message on success) and
 * a status slot for its delivery report (may be NULL). */
static int produce(reel_kafka_producer *p, const void *key, size_t key_len,
                   const void *payload, size_t len, rd_kafka_headers_t *hdrs,
                   int *status)
{
    if (atomic_load(&p->fatal))
        return REEL_EIO;
    rd_kafka_vu_t vu[6];
    size_t n = 0;
    vu[n].vtype = RD_KAFKA_VTYPE_RKT;
    vu[n++].u.rkt = p->rkt;
    vu[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vu[n++].u.i = RD_KAFKA_MSG_F_COPY;
    vu[n].vtype = RD_KAFKA_VTYPE_VALUE;
    vu[n].u.mem.ptr = (void *)payload;
    vu[n++].u.mem.size = len;
    if (key) {
        vu[n].vtype = RD_KAFKA_VTYPE_KEY;
        vu[n].u.mem.ptr = (void *)key;
        vu[n++].u.mem.size = key_len;
    }
    if (hdrs) {
        vu[n].vtype = RD_KAFKA_VTYPE_HEADERS;
        vu[n++].u.headers = hdrs;
    }
    vu[n].vtype = RD_KAFKA_VTYPE_OPAQUE;
    vu[n++].u.ptr = status;
    for (;;) {
        rd_kafka_error_t *e = rd_kafka_produceva(p->rk, vu, n);
        if (!e)
            break;
        rd_kafka_resp_err_t err = rd_kafka_error_code(e);
        rd_kafka_error_destroy(e);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return from_kafka(err);
        /* Full: deliveries (or their timeouts) make room. */
        rd_kafka_poll(p->rk, 100);
        if (atomic_load(&p->fatal))
            return REEL_EIO;
    }
    atomic_fetch_add(&p->produced, 1);
    rd_kafka_poll(p->rk, 0);
    return 0;
}

int reel_kafka_producer_produce(reel_kafka_producer *p, const void *key,
                                size_t key_len, const void *payload, size_t len)
{
    assert(p);
    return produce(p, key, key_len, payload, len, NULL, NULL);
}

int reel_kafka_producer_flush(reel_kafka_producer *p, int timeout_ms)
{
    assert(p);
    rd_kafka_resp_err_t err = rd_kafka_flush(p->rk, timeout_ms);
    if (err == RD_KAFKA_RESP_ERR__TIMED_OUT)
        return REEL_ETIMEOUT;
    return from_kafka(err);
}

uint64_t reel_kafka_producer_pending(const reel_kafka_producer *p)
{
    assert(p);
    int n = rd_kafka_outq_len(p->rk);
    return n > 0 ? (uint64_t)n : 0;
}

/* Fails whatever is queued or in flight, serving the reports. */
static void purge(reel_kafka_producer *p)
{
    if (rd_kafka_outq_len(p->rk) == 0)
        return;
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(p->rk, CLOSE_FLUSH_MS);
}

void reel_kafka_producer_close(reel_kafka_producer *p)
{
    if (!p)
        return;
    purge(p);
    rd_kafka_topic_destroy(p->rkt);
    rd_kafka_destroy(p->rk);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

void reel_kafka_producer_get_stats(reel_kafka_producer *p,
                                   reel_kafka_producer_stats *out)
{
    assert(p && out);
    out->produced = atomic_load(&p->produced);
    out->delivered = atomic_load(&p->delivered);
    out->failed = atomic_load(&p->failed);
    pthread_mutex_lock(&p->mu);
    memcpy(out->first_error, p->first_error, sizeof out->first_error);
    pthread_mutex_unlock(&p->mu);
}

/* ------------------------------------------------------------ consumer */

struct reel_kafka_consumer {
    rd_kafka_t *rk;
    char *topic;
    char *dlq_topic; /* NULL: none */
    reel_kafka_producer *dlq;
    uint32_t batch_max, poll_ms;
    int running, closing;
    atomic_int fatal;

    /* The batch in hand: messages polled and not yet applied (or applied
     * and not yet committed), and what apply sees of them. */
    rd_kafka_message_t **batch;
    uint32_t n_batch;
    reel_kafka_msg *msgs;
    reel_kafka_verdict *verdicts;
    int *dlq_status; /* per message: 0 pending, 1 delivered, -1 failed */

    struct {
        _Atomic uint64_t messages, applied, poison, dlq_sent, dlq_failed,
            retries, commits, commit_failures, rebalances, errors, assigned;
        _Atomic int64_t lag;
    } st;
};

void reel_kafka_consumer_opts_init(reel_kafka_consumer_opts *o)
{
    memset(o, 0, sizeof *o);
    o->dlq_topic = REEL_KAFKA_DLQ_DEFAULT;
}

static void consumer_error_cb(rd_kafka_t *rk, int err, const char *reason,
                              void *opaque)
{
    reel_kafka_consumer *c = opaque;
    atomic_fetch_add(&c->st.errors, 1);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[256];
        rd_kafka_fatal_error(rk, why, sizeof why);
        reel_log_error("kafka: %s: fatal: %s", rd_kafka_name(rk), why);
        atomic_store(&c->fatal, 1);
        return;
    }
    reel_log_warn("kafka: %s: %s", rd_kafka_name(rk), reason);
}

/* Drops the polled messages of partitions in `parts` (all when NULL);
 * returns how many. */
static uint32_t drop_batch(reel_kafka_consumer *c,
                           const rd_kafka_topic_partition_list_t *parts)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < c->n_batch; i++) {
        rd_kafka_message_t *m = c->batch[i];
        int drop = !parts || rd_kafka_topic_partition_list_find(
                                 parts, rd_kafka_topic_name(m->rkt),
                                 m->partition) != NULL;
        if (drop)
            rd_kafka_message_destroy(m);
        else
            c->batch[k++] = m;
    }
    uint32_t dropped = c->n_batch - k;
    c->n_batch = k;
    return dropped;
}

/* Commits the offsets stored so far (those of applied batches). 0, or
 * the translated error (logged and counted). */
static int commit_stored(reel_kafka_consumer *c)
{
    rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, NULL, 0);
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET)
        return 0; /* nothing new since the last commit */
    if (err) {
        atomic_fetch_add(&c->st.commit_failures, 1);
        reel_log_warn("kafka: %s: commit failed: %s (the next commit "
                      "covers it; until then a restart delivers again)",
                      c->topic, rd_kafka_err2str(err));
        return from_kafka(err);
    }
    atomic_fetch_add(&c->st.commits, 1);
    return 0;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    reel_kafka_consumer *c = opaque;
    int coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    atomic_fetch_add(&c->st.rebalances, 1);
    rd_kafka_error_t *e = NULL;
    rd_kafka_resp_err_t aerr = 0;
    uint32_t n;
    switch (err) {
    case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
        reel_log_info("kafka: %s: %s: assigned %d partition(s)%s",
                      rd_kafka_name(rk), c->topic, parts->cnt,
                      coop ? " (incremental)" : "");
        if (coop)
            e = rd_kafka_incremental_assign(rk, parts);
        else
            aerr = rd_kafka_assign(rk, parts);
        break;
    case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
        reel_log_info("kafka: %s: %s: %d partition(s) revoked%s",
                      rd_kafka_name(rk), c->topic, parts->cnt,
                      rd_kafka_assignment_lost(rk) ? " (lost)" : "");
        /* What was polled and not applied goes back to the group. */
        n = drop_batch(c, parts);
        if (n)
            reel_log_debug("kafka: %s: dropped %u polled messages of "
                           "revoked partitions",
                           c->topic, n);
        /* Every applied batch was committed, unless a commit failed: try
         * once more while the partitions are still ours. */
        if (!c->closing && !rd_kafka_assignment_lost(rk))
            commit_stored(c);
        if (coop)
            e = rd_kafka_incremental_unassign(rk, parts);
        else
            aerr = rd_kafka_assign(rk, NULL);
        break;
    default:
        reel_log_warn("kafka: %s: rebalance failed: %s", c->topic,
                      rd_kafka_err2str(err));
        drop_batch(c, NULL);
        aerr = rd_kafka_assign(rk, NULL);
        break;
    }
    if (e) {
        reel_log_warn("kafka: %s: assignment: %s", c->topic,
                      rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    } else if (aerr) {
        reel_log_warn("kafka: %s: assignment: %s", c->topic,
                      rd_kafka_err2str(aerr));
    }
}

/* "<topic>" in pattern replaced by topic; NULL for no DLQ. */
static char *dlq_name(const char *pattern, const char *topic)
{
    if (!pattern || !*pattern)
        return NULL;
    static const char mark[] = "<topic>";
    size_t n = strlen(pattern) + 1, tl = strlen(topic);
    for (const char *s = strstr(pattern, mark); s;
         s = strstr(s + sizeof mark - 1, mark))
        n += tl;
    char *out = reel_xmalloc(n), *w = out;
    const char *r = pattern, *s;
    while ((s = strstr(r, mark))) {
        memcpy(w, r, (size_t)(s - r));
        w += s - r;
        memcpy(w, topic, tl);
        w += tl;
        r = s + sizeof mark - 1;
    }
    memcpy(w, r, strlen(r) + 1);
    return out;
}

int reel_kafka_consumer_open(const reel_kafka_consumer_opts *o,
                             reel_kafka_consumer **out, reel_diag *d)
{
    assert(o && out);
    *out = NULL;
    int rc;
    if ((rc = need(o->brokers, "brokers", d)) ||
        (rc = need(o->topic, "topic", d)) || (rc = need(o->group, "group", d)))
        return rc;
    if (o->batch_max > REEL_KAFKA_BATCH_MAX)
        return reel_diag_fail(d, REEL_EINVAL, "kafka: batch_max %u above %u",
                              o->batch_max, REEL_KAFKA_BATCH_MAX);
    reel_kafka_consumer *c = reel_xcalloc(1, sizeof *c);
    c->topic = reel_xstrndup(o->topic, strlen(o->topic));
    c->dlq_topic = dlq_name(o->dlq_topic, o->topic);
    c->batch_max = o->batch_max ? o->batch_max : REEL_KAFKA_BATCH_DEFAULT;
    c->poll_ms = o->poll_ms ? o->poll_ms : REEL_KAFKA_POLL_MS_DEFAULT;
    atomic_store(&c->st.lag, -1);
    const char *client = o->client_id ? o->client_id : "reel";

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if ((rc = conf_set(conf, "bootstrap.servers", o->brokers, d)) ||
        (rc = conf_set(conf, "group.id", o->group, d)) ||
        (rc = conf_set(conf, "client.id", client, d)) ||
        (rc = conf_set(conf, "auto.offset.reset", "earliest", d)) ||
        (rc = conf_set_all(conf, o->settings, o->n_settings, d)) ||
        /* After the caller's: at-least-once rests on these two. */
        (rc = conf_set(conf, "enable.auto.commit", "false", d)) ||
        (rc = conf_set(conf, "enable.auto.offset.store", "false", d)))
        goto fail;
    rd_kafka_conf_set_opaque(conf, c);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_error_cb(conf, consumer_error_cb);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    char errstr[512];
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!c->rk) {
        rc = reel_diag_fail(d, REEL_EINVAL, "kafka consumer: %s", errstr);
        goto fail;
    }
    conf = NULL;
    /* Events, errors and rebalances all come through consumer_poll. */
    rd_kafka_poll_set_consumer(c->rk);

    if (c->dlq_topic) {
        reel_kafka_producer_opts po = {
            .brokers = o->brokers,
            .topic = c->dlq_topic,
            .client_id = client,
            .settings = o->settings,
            .n_settings = o->n_settings,
        };
        if ((rc = reel_kafka_producer_open(&po, &c->dlq, d)))
            goto fail;
    }

    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, c->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(c->rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (err) {
        rc = reel_diag_fail(d, from_kafka(err), "kafka: subscribe to %s: %s",
                            c->topic, rd_kafka_err2str(err));
        goto fail;
    }

    c->batch = reel_xcalloc(c->batch_max, sizeof *c->batch);
    c->msgs = reel_xcalloc(c->batch_max, sizeof *c->msgs);
    c->verdicts = reel_xcalloc(c->batch_max, sizeof *c->verdicts);
    c->dlq_status = reel_xcalloc(c->batch_max, sizeof *c->dlq_status);
    reel_log_info("kafka: consuming %s as group %s (DLQ %s, batches of %u)",
                  c->topic, o->group, c->dlq_topic ? c->dlq_topic : "none",
                  c->batch_max);
    *out = c;
    return 0;
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    reel_kafka_producer_close(c->dlq);
    if (c->rk)
        rd_kafka_destroy(c->rk);
    free(c->dlq_topic);
    free(c->topic);
    free(c);
    return rc;
}

static void message_error(reel_kafka_consumer *c, const rd_kafka_message_t *m)
{
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        reel_log_debug("kafka: %s [%" PRId32 "] at end, offset %" PRId64,
                       m->rkt ? rd_kafka_topic_name(m->rkt) : c->topic,
                       m->partition, m->offset);
        return;
    }
    atomic_fetch_add(&c->st.errors, 1);
    if (m->rkt)
        reel_log_warn("kafka: %s [%" PRId32 "]: %s",
                      rd_kafka_topic_name(m->rkt), m->partition,
                      rd_kafka_message_errstr(m));
    else
        reel_log_warn("kafka: %s: %s", c->topic, rd_kafka_message_errstr(m));
}

/* Polls messages into the batch: waits up to poll_ms for the first, then
 * takes what is already fetched, up to batch_max. Rebalances are served
 * in here (and may drop messages of the batch). */
static void fill(reel_kafka_consumer *c, const atomic_int *stop)
{
    int timeout = (int)c->poll_ms;
    while (c->n_batch < c->batch_max && !atomic_load(stop)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, timeout);
        if (!m)
            break;
        timeout = 0;
        if (m->err) {
            message_error(c, m);
            rd_kafka_message_destroy(m);
            continue;
        }
        c->batch[c->n_batch++] = m;
        atomic_fetch_add(&c->st.messages, 1);
    }
}

/* The first (first = 1) or last offset of each partition of the batch. */
static rd_kafka_topic_partition_list_t *batch_offsets(reel_kafka_consumer *c,
                                                      int first)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
    for (uint32_t i = 0; i < c->n_batch; i++) {
        const rd_kafka_message_t *m = c->batch[i];
        const char *t = rd_kafka_topic_name(m->rkt);
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_find(l, t, m->partition);
        if (!tp) {
            tp = rd_kafka_topic_partition_list_add(l, t, m->partition);
            tp->offset = m->offset;
        } else if (first ? m->offset < tp->offset : m->offset > tp->offset) {
            tp->offset = m->offset;
        }
    }
    return l;
}

/* Seeks every partition of the failed batch back to its first offset and
 * drops the batch, so that the next polls return the same messages. */
static int rewind_batch(reel_kafka_consumer *c)
{
    rd_kafka_topic_partition_list_t *l = batch_offsets(c, 1);
    drop_batch(c, NULL);
    rd_kafka_error_t *e = rd_kafka_seek_partitions(c->rk, l, SEEK_TIMEOUT_MS);
    int rc = 0;
    if (e) {
        reel_log_error("kafka: %s: cannot seek back after a failed apply: "
                       "%s",
                       c->topic, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        rc = REEL_EIO;
    } else {
        for (int i = 0; i < l->cnt; i++) {
            const rd_kafka_topic_partition_t *tp = &l->elems[i];
            /* A partition revoked meanwhile is not ours to seek: its next
             * owner starts from the committed offset anyway. */
            if (tp->err && tp->err != RD_KAFKA_RESP_ERR__STATE &&
                tp->err != RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION) {
                reel_log_error("kafka: %s [%" PRId32 "]: cannot seek back "
                               "to %" PRId64 ": %s",
                               tp->topic, tp->partition, tp->offset,
                               rd_kafka_err2str(tp->err));
                rc = REEL_EIO;
            }
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

static rd_kafka_headers_t *dlq_headers(const rd_kafka_message_t *m,
                                       const char *error)
{
    char part[16], off[24];
    snprintf(part, sizeof part, "%" PRId32, m->partition);
    snprintf(off, sizeof off, "%" PRId64, m->offset);
    rd_kafka_headers_t *h = rd_kafka_headers_new(4);
    rd_kafka_header_add(h, "reel.error", -1, error, -1);
    rd_kafka_header_add(h, "reel.topic", -1, rd_kafka_topic_name(m->rkt), -1);
    rd_kafka_header_add(h, "reel.partition", -1, part, -1);
    rd_kafka_header_add(h, "reel.offset", -1, off, -1);
    return h;
}

/* Logs and counts the batch's poison messages and, with a DLQ, produces
 * them there until every one is delivered. 0; REEL_ECANCELED when
 * stopped first, REEL_EIO when the DLQ producer failed fatally (either
 * way what is still queued is dropped: the batch will come again since
 * it is not committed). */
static int dead_letter(reel_kafka_consumer *c, const atomic_int *stop)
{
    uint32_t n_poison = 0;
    for (uint32_t i = 0; i < c->n_batch; i++) {
        if (!c->verdicts[i].poison) {
            c->dlq_status[i] = 1;
            continue;
        }
        const rd_kafka_message_t *m = c->batch[i];
        reel_kafka_verdict *v = &c->verdicts[i];
        v->error[sizeof v->error - 1] = '\0';
        if (!v->error[0])
            snprintf(v->error, sizeof v->error, "rejected by the applier");
        reel_log_warn("kafka: poison message %s [%" PRId32 "] at offset "
                      "%" PRId64 ": %s%s",
                      rd_kafka_topic_name(m->rkt), m->partition, m->offset,
                      v->error, c->dlq ? "" : " (dropped: no DLQ)");
        c->dlq_status[i] = 0;
        n_poison++;
    }
    atomic_fetch_add(&c->st.poison, n_poison);
    if (!c->dlq || !n_poison)
        return 0;
    uint32_t backoff = 0;
    for (;;) {
        for (uint32_t i = 0; i < c->n_batch; i++) {
            if (c->dlq_status[i] == 1)
                continue;
            const rd_kafka_message_t *m = c->batch[i];
            rd_kafka_headers_t *h = dlq_headers(m, c->verdicts[i].error);
            c->dlq_status[i] = 0;
            int rc = produce(c->dlq, m->key, m->key_len, m->payload, m->len, h,
                             &c->dlq_status[i]);
            if (rc == REEL_EIO) {
                /* The DLQ producer failed for good: never deliverable. */
                rd_kafka_headers_destroy(h);
                purge(c->dlq);
                return REEL_EIO;
            }
            if (rc) {
                rd_kafka_headers_destroy(h);
                c->dlq_status[i] = -1;
                reel_log_warn("kafka: DLQ %s: cannot queue: %s", c->dlq_topic,
                              reel_strerror(rc));
            }
        }
        while (reel_kafka_producer_pending(c->dlq) > 0) {
            if (atomic_load(stop)) {
                purge(c->dlq);
                return REEL_ECANCELED;
            }
            rd_kafka_flush(c->dlq->rk, 100);
        }
        uint32_t sent = 0, failed = 0;
        for (uint32_t i = 0; i < c->n_batch; i++) {
            if (!c->verdicts[i].poison)
                continue;
            if (c->dlq_status[i] == 1)
                sent++;
            else
                failed++;
        }
        atomic_fetch_add(&c->st.dlq_sent, sent);
        for (uint32_t i = 0; i < c->n_batch; i++)
            if (c->verdicts[i].poison && c->dlq_status[i] == 1)
                c->verdicts[i].poison = 0; /* done: not sent again */
        if (!failed)
            return 0;
        atomic_fetch_add(&c->st.dlq_failed, failed);
        backoff = backoff ? backoff * 2 : BACKOFF_FIRST_MS;
        if (backoff > BACKOFF_MAX_MS)
            backoff = BACKOFF_MAX_MS;
        reel_log_warn("kafka: DLQ %s: %u message(s) not delivered; again in "
                      "%u ms",
                      c->dlq_topic, failed, backoff);
        wait_ms(backoff, stop);
        if (atomic_load(stop))
            return REEL_ECANCELED;
    }
}

/* Stores last offset + 1 of each partition of the applied batch and
 * commits synchronously. */
static void commit_batch(reel_kafka_consumer *c)
{
    rd_kafka_topic_partition_list_t *l = batch_offsets(c, 0);
    for (int i = 0; i < l->cnt; i++)
        l->elems[i].offset++;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(c->rk, l);
    if (err)
        reel_log_debug("kafka: %s: storing offsets: %s", c->topic,
                       rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(l);
    commit_stored(c);
}

/* The lag from librdkafka's cached watermarks (no request). */
static void update_lag(reel_kafka_consumer *c)
{
    rd_kafka_topic_partition_list_t *a = NULL;
    if (rd_kafka_assignment(c->rk, &a) || !a)
        return;
    atomic_store(&c->st.assigned, (uint64_t)a->cnt);
    rd_kafka_position(c->rk, a);
    int64_t lag = 0;
    for (int i = 0; i < a->cnt && lag >= 0; i++) {
        int64_t lo, hi;
        const rd_kafka_topic_partition_t *tp = &a->elems[i];
        if (tp->offset < 0 ||
            rd_kafka_get_watermark_offsets(c->rk, tp->topic, tp->partition, &lo,
                                           &hi) ||
            hi < 0)
            lag = -1;
        else if (hi > tp->offset)
            lag += hi - tp->offset;
    }
    atomic_store(&c->st.lag, a->cnt ? lag : 0);
    rd_kafka_topic_partition_list_destroy(a);
}

int reel_kafka_consumer_run(reel_kafka_consumer *c, reel_kafka_apply_fn apply,
                            void *ctx, const atomic_int *stop)
{
    assert(c && apply && stop);
    assert(!c->running);
    c->running = 1;
    uint32_t backoff = 0;
    int rc = 0;
    while (!atomic_load(stop)) {
        if (atomic_load(&c->fatal)) {
            rc = REEL_EIO;
            break;
        }
        fill(c, stop);
        if (!c->n_batch) {
            update_lag(c);
            continue;
        }
        for (uint32_t i = 0; i < c->n_batch; i++) {
            const rd_kafka_message_t *m = c->batch[i];
            rd_kafka_timestamp_type_t tt;
            int64_t ts = rd_kafka_message_timestamp(m, &tt);
            c->msgs[i] = (reel_kafka_msg){
                .payload = m->len ? m->payload : NULL,
                .len = m->len,
                .key = m->key,
                .key_len = m->key_len,
                .partition = m->partition,
                .offset = m->offset,
                .ts_ms = tt == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : ts,
            };
        }
        memset(c->verdicts, 0, c->n_batch * sizeof *c->verdicts);
        int arc = apply(ctx, c->msgs, c->n_batch, c->verdicts);
        assert(arc <= 0);
        if (arc) {
            atomic_fetch_add(&c->st.retries, 1);
            backoff = backoff ? backoff * 2 : BACKOFF_FIRST_MS;
            if (backoff > BACKOFF_MAX_MS)
                backoff = BACKOFF_MAX_MS;
            reel_log_warn("kafka: %s: applying %u messages failed (%s); "
                          "again in %u ms",
                          c->topic, c->n_batch, reel_strerror(arc), backoff);
            if ((rc = rewind_batch(c)))
                break;
            wait_ms(backoff, stop);
            continue;
        }
        backoff = 0;
        uint64_t n_poison = 0;
        for (uint32_t i = 0; i < c->n_batch; i++)
            n_poison += c->verdicts[i].poison != 0;
        atomic_fetch_add(&c->st.applied, c->n_batch - n_poison);
        int drc = dead_letter(c, stop);
        if (drc == 0)
            commit_batch(c);
        drop_batch(c, NULL);
        if (drc == REEL_EIO) {
            rc = drc;
            break;
        }
        update_lag(c);
    }
    drop_batch(c, NULL);
    c->running = 0;
    return rc;
}

int reel_kafka_consumer_close(reel_kafka_consumer *c)
{
    if (!c)
        return 0;
    assert(!c->running);
    c->closing = 1;
    drop_batch(c, NULL);
    rd_kafka_resp_err_t err = rd_kafka_consumer_close(c->rk);
    if (err)
        reel_log_warn("kafka: %s: leaving the group: %s", c->topic,
                      rd_kafka_err2str(err));
    rd_kafka_destroy(c->rk);
    /* After the consumer: the DLQ's reports write into dlq_status. */
    reel_kafka_producer_close(c->dlq);
    free(c->batch);
    free(c->msgs);
    free(c->verdicts);
    free(c->dlq_status);
    free(c->dlq_topic);
    free(c->topic);
    free(c);
    return from_kafka(err);
}

void reel_kafka_consumer_get_stats(const reel_kafka_consumer *c,
                                   reel_kafka_consumer_stats *out)
{
    assert(c && out);
    out->messages = atomic_load(&c->st.messages);
    out->applied = atomic_load(&c->st.applied);
    out->poison = atomic_load(&c->st.poison);
    out->dlq_sent = atomic_load(&c->st.dlq_sent);
    out->dlq_failed = atomic_load(&c->st.dlq_failed);
    out->retries = atomic_load(&c->st.retries);
    out->commits = atomic_load(&c->st.commits);
    out->commit_failures = atomic_load(&c->st.commit_failures);
    out->rebalances = atomic_load(&c->st.rebalances);
    out->errors = atomic_load(&c->st.errors);
    out->assigned = atomic_load(&c->st.assigned);
    out->lag = atomic_load(&c->st.lag);
}
