/* Unit tests of the Kafka consumer and producer (src/ingest/kafka.h) and
 * of `reel produce`, against librdkafka's mock cluster: three brokers in
 * this process, a fresh cluster per test, topics of three partitions.
 * Delivery is checked message by message: applied exactly once when
 * nothing fails, at least once across failures, committed offsets never
 * past what was applied, poison messages on the dead-letter topic. */
#include "testutil.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "rdkafka_mock.h"

#include "base/arena.h"
#include "base/clock.h"
#include "data/record.h"
#include "ingest/kafka.h"

#define TOPIC "events"
#define DLQ "events.dlq"
#define N_PART 3
#define N_USERS 17
/* Every wait of a test ends by then, passed or not. */
#define DEADLINE_S 20.0

/* Settings that make the mock group quick: the mock coordinator waits
 * session.timeout.ms - 1 s for members to rejoin a rebalance. */
static const char *const fast[] = {
    "session.timeout.ms=4000", "heartbeat.interval.ms=300",
    "reconnect.backoff.ms=50", "reconnect.backoff.max.ms=300",
    "fetch.wait.max.ms=50",    "topic.metadata.refresh.interval.ms=1000",
    "socket.timeout.ms=5000",
};
#define N_FAST (sizeof fast / sizeof fast[0])

/* ------------------------------------------------------------ helpers */

static void quiet_log(const rd_kafka_t *rk, int level, const char *fac,
                      const char *buf)
{
    (void)rk;
    (void)level;
    (void)fac;
    (void)buf;
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

struct cluster {
    rd_kafka_t *host; /* only hosts the mock cluster */
    rd_kafka_mock_cluster_t *mc;
    const char *boot;
};

/* Three brokers and `topic` with three partitions. librdkafka 2.0.2's
 * mock thread sometimes serves a command only at its next one-second
 * tick, so tests make as few mock calls as they can. */
static void cluster_start(struct cluster *cl, const char *topic)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    char err[256];
    cl->host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null(cl->host);
    cl->mc = rd_kafka_mock_cluster_new(cl->host, 3);
    assert_non_null(cl->mc);
    cl->boot = rd_kafka_mock_cluster_bootstraps(cl->mc);
    assert_int_equal(rd_kafka_mock_topic_create(cl->mc, topic, N_PART, 3), 0);
}

static void cluster_stop(struct cluster *cl)
{
    rd_kafka_mock_cluster_destroy(cl->mc);
    rd_kafka_destroy(cl->host);
}

/* Event i: user u(i % 17), id "e<i>", seq i (an extra field). */
static int event_json(uint32_t i, char *buf, size_t cap)
{
    return snprintf(buf, cap,
                    "{\"id\":\"e%u\",\"user\":\"u%u\",\"video\":\"v%u\","
                    "\"type\":\"watch\",\"ts\":%u,\"seq\":%u}",
                    i, i % N_USERS, i % 50, 1714566600u + i, i);
}

static reel_kafka_producer *open_producer(const struct cluster *cl,
                                          const char *topic,
                                          const char *const *settings, size_t n)
{
    reel_kafka_producer_opts o = {.brokers = cl->boot,
                                  .topic = topic,
                                  .settings = settings,
                                  .n_settings = n};
    reel_kafka_producer *p;
    reel_diag d;
    reel_diag_clear(&d);
    int rc = reel_kafka_producer_open(&o, &p, &d);
    if (rc)
        fail_msg("producer: %s: %s", reel_strerror(rc), d.msg);
    return p;
}

/* Produces events [from, to) keyed by user; those whose index is in
 * poison[] get a payload that is not JSON. Waits for every delivery. */
static void produce_events(const struct cluster *cl, uint32_t from, uint32_t to,
                           const uint32_t *poison, size_t n_poison)
{
    reel_kafka_producer *p = open_producer(cl, TOPIC, NULL, 0);
    for (uint32_t i = from; i < to; i++) {
        char buf[256], key[16];
        int len = event_json(i, buf, sizeof buf);
        for (size_t k = 0; k < n_poison; k++)
            if (poison[k] == i)
                len = snprintf(buf, sizeof buf, "{\"user\": \"u%u\", oops %u",
                               i % N_USERS, i);
        int kl = snprintf(key, sizeof key, "u%u", i % N_USERS);
        assert_int_equal(
            reel_kafka_producer_produce(p, key, (size_t)kl, buf, (size_t)len),
            0);
    }
    assert_int_equal(reel_kafka_producer_flush(p, 10000), 0);
    reel_kafka_producer_stats st;
    reel_kafka_producer_get_stats(p, &st);
    assert_int_equal(st.produced, to - from);
    assert_int_equal(st.delivered, to - from);
    assert_int_equal(st.failed, 0);
    reel_kafka_producer_close(p);
}

static reel_kafka_consumer *
open_consumer(const struct cluster *cl, const char *group, uint32_t batch,
              const char *dlq, const char *const *extra, size_t n_extra)
{
    const char *settings[N_FAST + 4];
    assert_true(n_extra <= 4);
    memcpy(settings, fast, sizeof fast);
    for (size_t i = 0; i < n_extra; i++)
        settings[N_FAST + i] = extra[i];
    reel_kafka_consumer_opts o;
    reel_kafka_consumer_opts_init(&o);
    o.dlq_topic = dlq;
    o.brokers = cl->boot;
    o.topic = TOPIC;
    o.group = group;
    o.batch_max = batch;
    o.poll_ms = 50;
    o.settings = settings;
    o.n_settings = N_FAST + n_extra;
    reel_kafka_consumer *c;
    reel_diag d;
    reel_diag_clear(&d);
    int rc = reel_kafka_consumer_open(&o, &c, &d);
    if (rc)
        fail_msg("consumer: %s: %s", reel_strerror(rc), d.msg);
    return c;
}

/* A plain consumer in `group` that never joins it: reads the group's
 * committed offsets and the partitions' high watermarks. */
static rd_kafka_t *observer_new(const struct cluster *cl, const char *group)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[256];
    assert_int_equal(
        rd_kafka_conf_set(conf, "bootstrap.servers", cl->boot, err, sizeof err),
        RD_KAFKA_CONF_OK);
    assert_int_equal(
        rd_kafka_conf_set(conf, "group.id", group, err, sizeof err),
        RD_KAFKA_CONF_OK);
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    assert_non_null(rk);
    return rk;
}

/* Committed offsets of TOPIC's partitions (0 when none); 0 or -1 when
 * the coordinator did not answer. */
static int committed(rd_kafka_t *obs, int64_t out[N_PART])
{
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(N_PART);
    for (int p = 0; p < N_PART; p++)
        rd_kafka_topic_partition_list_add(l, TOPIC, p);
    rd_kafka_resp_err_t err = rd_kafka_committed(obs, l, 5000);
    for (int p = 0; p < N_PART && !err; p++)
        out[p] = l->elems[p].offset < 0 ? 0 : l->elems[p].offset;
    rd_kafka_topic_partition_list_destroy(l);
    return err ? -1 : 0;
}

static void high_marks(rd_kafka_t *obs, int64_t out[N_PART])
{
    for (int p = 0; p < N_PART; p++) {
        int64_t lo;
        assert_int_equal(
            rd_kafka_query_watermark_offsets(obs, TOPIC, p, &lo, &out[p], 5000),
            0);
    }
}

/* Waits until the group's committed offsets reach the high watermarks
 * (the consumers keep running meanwhile). */
static void wait_all_committed(rd_kafka_t *obs)
{
    int64_t hi[N_PART], co[N_PART];
    high_marks(obs, hi);
    double end = reel_clock_mono() + DEADLINE_S;
    for (;;) {
        int ok = committed(obs, co) == 0;
        for (int p = 0; ok && p < N_PART; p++)
            ok = co[p] == hi[p];
        if (ok)
            return;
        if (reel_clock_mono() > end)
            fail_msg("committed %" PRId64 "/%" PRId64 "/%" PRId64
                     ", high watermarks %" PRId64 "/%" PRId64 "/%" PRId64,
                     co[0], co[1], co[2], hi[0], hi[1], hi[2]);
        nap_ms(20);
    }
}

/* ------------------------------------------------------- the applier */

/* What the test applier saw. Shared by the consumers of a test. */
struct sink {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint32_t n_events; /* ids e0 .. e<n_events - 1> */
    uint32_t *count;   /* accepted applications per event */
    uint32_t distinct; /* events applied at least once */
    uint32_t poison;   /* messages marked poison */
    uint32_t want, want_poison;
    int done;
    /* One consumer, nothing fails: each partition's offsets come one
     * after the other, each user's events in production order. */
    int strict;
    int64_t next_off[N_PART];
    int64_t last_seq[N_USERS];
    int64_t applied_to[N_PART]; /* highest applied offset + 1 */
    uint32_t calls, fail_first; /* the first fail_first calls fail */
    /* With an observer: committed offsets are checked on every call. */
    rd_kafka_t *observer;
    char violation[256];
    uint32_t n_violations;
    void (*hook)(struct sink *s, uint32_t call);
    struct cluster *cl;
    int downed;
};

static void sink_init(struct sink *s, uint32_t n_events, uint32_t want)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->n_events = n_events;
    s->count = calloc(n_events, sizeof *s->count);
    assert_non_null(s->count);
    s->want = want;
    for (int u = 0; u < N_USERS; u++)
        s->last_seq[u] = -1;
}

static void sink_free(struct sink *s)
{
    free(s->count);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
}

static void violation(struct sink *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void violation(struct sink *s, const char *fmt, ...)
{
    if (s->n_violations++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->violation, sizeof s->violation, fmt, ap);
        va_end(ap);
    }
}

/* Parses message m into the event index and seq; 0, or -1 for poison
 * (with the reason in v). */
static int parse(const reel_kafka_msg *m, uint32_t *idx, int64_t *seq,
                 uint32_t *user, reel_kafka_verdict *v)
{
    json_error_t jerr;
    json_t *o = json_loadb(m->payload, m->len, 0, &jerr);
    if (!o) {
        snprintf(v->error, sizeof v->error, "invalid JSON: %.120s", jerr.text);
        return -1;
    }
    reel_arena a;
    reel_arena_init(&a, 1024);
    reel_event_in ev;
    reel_diag d;
    reel_diag_clear(&d);
    int rc = reel_event_from_json(o, &a, &ev, &d);
    if (rc)
        snprintf(v->error, sizeof v->error, "%.150s", d.msg);
    else {
        *idx = (uint32_t)strtoul(ev.rec.id + 1, NULL, 10);
        *user = (uint32_t)strtoul(ev.user + 1, NULL, 10);
        *seq = json_integer_value(json_object_get(o, "seq"));
    }
    reel_arena_free(&a);
    json_decref(o);
    return rc ? -1 : 0;
}

static int apply(void *ctx, const reel_kafka_msg *m, uint32_t n,
                 reel_kafka_verdict *v)
{
    struct sink *s = ctx;
    int64_t co[N_PART];
    int have_co = s->observer && committed(s->observer, co) == 0;
    pthread_mutex_lock(&s->mu);
    uint32_t call = ++s->calls;
    for (int p = 0; have_co && p < N_PART; p++)
        if (co[p] > s->applied_to[p])
            violation(s,
                      "partition %d committed to %" PRId64
                      " but applied only to %" PRId64,
                      p, co[p], s->applied_to[p]);
    for (uint32_t i = 0; have_co && i < n; i++)
        if (m[i].offset < co[m[i].partition])
            violation(s,
                      "partition %d offset %" PRId64 " delivered again "
                      "below the committed %" PRId64,
                      m[i].partition, m[i].offset, co[m[i].partition]);
    if (call <= s->fail_first) {
        pthread_mutex_unlock(&s->mu);
        return REEL_EUNAVAILABLE;
    }
    for (uint32_t i = 0; i < n; i++) {
        int p = m[i].partition;
        if (p < 0 || p >= N_PART) {
            violation(s, "partition %d", p);
            continue;
        }
        if (s->strict && m[i].offset != s->next_off[p])
            violation(s, "partition %d: offset %" PRId64 " after %" PRId64, p,
                      m[i].offset, s->next_off[p] - 1);
        s->next_off[p] = m[i].offset + 1;
        if (m[i].offset + 1 > s->applied_to[p])
            s->applied_to[p] = m[i].offset + 1;
        uint32_t idx, user;
        int64_t seq;
        if (parse(&m[i], &idx, &seq, &user, &v[i])) {
            v[i].poison = 1;
            s->poison++;
            continue;
        }
        if (idx >= s->n_events || user >= N_USERS) {
            violation(s, "unexpected event e%u", idx);
            continue;
        }
        char key[16];
        int kl = snprintf(key, sizeof key, "u%u", user);
        if (!m[i].key || m[i].key_len != (size_t)kl ||
            memcmp(m[i].key, key, (size_t)kl))
            violation(s, "event e%u: wrong key", idx);
        if (s->strict && seq <= s->last_seq[user])
            violation(s, "user u%u: seq %" PRId64 " after %" PRId64, user, seq,
                      s->last_seq[user]);
        s->last_seq[user] = seq;
        if (s->count[idx]++ == 0)
            s->distinct++;
    }
    if (s->distinct >= s->want && s->poison >= s->want_poison) {
        s->done = 1;
        pthread_cond_broadcast(&s->cv);
    }
    void (*hook)(struct sink *, uint32_t) = s->hook;
    pthread_mutex_unlock(&s->mu);
    if (hook)
        hook(s, call);
    return 0;
}

/* Waits until the sink is done (or the deadline passed). */
static int sink_wait(struct sink *s)
{
    struct timespec end;
    clock_gettime(CLOCK_REALTIME, &end);
    end.tv_sec += (time_t)DEADLINE_S;
    pthread_mutex_lock(&s->mu);
    while (!s->done && pthread_cond_timedwait(&s->cv, &s->mu, &end) == 0)
        ;
    int done = s->done;
    pthread_mutex_unlock(&s->mu);
    return done;
}

/* ------------------------------------------------------------ runners */

struct runner {
    reel_kafka_consumer *c;
    struct sink *s;
    atomic_int stop;
    pthread_t th;
    int rc;
};

static void *runner_main(void *arg)
{
    struct runner *r = arg;
    r->rc = reel_kafka_consumer_run(r->c, apply, r->s, &r->stop);
    return NULL;
}

static void runner_start(struct runner *r, reel_kafka_consumer *c,
                         struct sink *s)
{
    r->c = c;
    r->s = s;
    r->rc = 1;
    atomic_store(&r->stop, 0);
    assert_int_equal(pthread_create(&r->th, NULL, runner_main, r), 0);
}

static int runner_stop(struct runner *r)
{
    atomic_store(&r->stop, 1);
    assert_int_equal(pthread_join(r->th, NULL), 0);
    return r->rc;
}

static reel_kafka_consumer_stats stats_of(const reel_kafka_consumer *c)
{
    reel_kafka_consumer_stats st;
    reel_kafka_consumer_get_stats(c, &st);
    return st;
}

/* Waits until field `f` of c's stats reaches at least v. */
#define WAIT_STAT(c, f, v)                                                     \
    do {                                                                       \
        double end_ = reel_clock_mono() + DEADLINE_S;                          \
        while (stats_of(c).f < (v)) {                                          \
            if (reel_clock_mono() > end_)                                      \
                fail_msg("waited for " #f " >= %llu: %llu",                    \
                         (unsigned long long)(v),                              \
                         (unsigned long long)stats_of(c).f);                   \
            nap_ms(5);                                                         \
        }                                                                      \
    } while (0)

static void assert_each_once(const struct sink *s, uint32_t from, uint32_t to)
{
    for (uint32_t i = from; i < to; i++)
        if (s->count[i] != 1)
            fail_msg("event e%u applied %u times", i, s->count[i]);
}

static void assert_no_violation(const struct sink *s)
{
    if (s->n_violations)
        fail_msg("%u violations, the first: %s", s->n_violations, s->violation);
}

/* -------------------------------------------------------------- tests */

static void
one_consumer_applies_each_message_once_in_order_and_commits(void **state)
{
    struct cluster cl;
    cluster_start(&cl, TOPIC);
    produce_events(&cl, 0, 1000, NULL, 0);
    rd_kafka_t *obs = observer_new(&cl, "g-a");

    struct sink s;
    sink_init(&s, 1001, 1000);
    s.strict = 1;
    s.observer = obs;
    reel_kafka_consumer *c =
        open_consumer(&cl, "g-a", 100, REEL_KAFKA_DLQ_DEFAULT, NULL, 0);
    struct runner r;
    runner_start(&r, c, &s);
    assert_true(sink_wait(&s));
    wait_all_committed(obs);
    assert_int_equal(runner_stop(&r), 0);
    reel_kafka_consumer_stats st = stats_of(c);
    assert_int_equal(reel_kafka_consumer_close(c), 0);
    assert_no_violation(&s);
    assert_each_once(&s, 0, 1000);
    assert_int_equal(st.messages, 1000);
    assert_int_equal(st.applied, 1000);
    assert_int_equal(st.poison + st.retries + st.commit_failures, 0);
    assert_true(st.commits >= 10); /* batches of at most 100 */
    assert_true(st.rebalances >= 1);

    /* The offsets are the group's: a later member starts after them and
     * gets only what is new. */
    produce_events(&cl, 1000, 1001, NULL, 0);
    struct sink s2;
    sink_init(&s2, 1001, 1);
    c = open_consumer(&cl, "g-a", 100, REEL_KAFKA_DLQ_DEFAULT, NULL, 0);
    runner_start(&r, c, &s2);
    assert_true(sink_wait(&s2));
    wait_all_committed(obs);
    assert_int_equal(runner_stop(&r), 0);
    assert_int_equal(reel_kafka_consumer_close(c), 0);
    assert_int_equal(s2.distinct, 1);
    assert_int_equal(s2.count[1000], 1);

    sink_free(&s2);
    sink_free(&s);
    rd_kafka_destroy(obs);
    cluster_stop(&cl);
}

/* Also: without a DLQ, poison messages are counted and passed over. */
static void failed_apply_is_retried_and_never_committed_early(void **state)
{
    struct cluster cl;
    cluster_start(&cl, TOPIC);
    static const uint32_t poison[] = {100, 700};
    produce_events(&cl, 0, 1000, poison, 2);
    rd_kafka_t *obs = observer_new(&cl, "g-b");

    struct sink s;
    sink_init(&s, 1000, 998);
    s.want_poison = 2;
    s.strict = 1;
    s.observer = obs;
    s.fail_first = 3;
    reel_kafka_consumer *c = open_consumer(&cl, "g-b", 100, NULL, NULL, 0);
    struct runner r;
    runner_start(&r, c, &s);
    assert_true(sink_wait(&s));
    wait_all_committed(obs);
    assert_int_equal(runner_stop(&r), 0);
    reel_kafka_consumer_stats st = stats_of(c);
    assert_int_equal(reel_kafka_consumer_close(c), 0);
    /* strict: after each failure the batch came again from its first
     * offsets; with the observer: commits never passed what applied. */
    assert_no_violation(&s);
    for (uint32_t i = 0; i < 1000; i++)
        assert_int_equal(s.count[i], i == 100 || i == 700 ? 0 : 1);
    assert_int_equal(st.retries, 3);
    assert_int_equal(st.applied, 998);
    assert_int_equal(st.poison, 2);
    assert_int_equal(st.dlq_sent, 0);
    assert_true(st.messages > 1000); /* the failed batches came again */
    assert_true(s.calls > 3);

    sink_free(&s);
    rd_kafka_destroy(obs);
    cluster_stop(&cl);
}

static void poison_messages_go_to_the_dlq_and_the_rest_is_applied(void **state)
{
    struct cluster cl;
    cluster_start(&cl, TOPIC);
    assert_int_equal(rd_kafka_mock_topic_create(cl.mc, DLQ, 1, 3), 0);
    static const uint32_t poison[] = {50, 150, 250};
    produce_events(&cl, 0, 300, poison, 3);

    struct sink s;
    sink_init(&s, 300, 297);
    s.want_poison = 3;
    s.strict = 1;
    reel_kafka_consumer *c =
        open_consumer(&cl, "g-c", 64, REEL_KAFKA_DLQ_DEFAULT, NULL, 0);
    struct runner r;
    runner_start(&r, c, &s);
    assert_true(sink_wait(&s));
    WAIT_STAT(c, dlq_sent, 3);
    assert_int_equal(runner_stop(&r), 0);
    reel_kafka_consumer_stats st = stats_of(c);
    assert_int_equal(reel_kafka_consumer_close(c), 0);
    assert_no_violation(&s);
    for (uint32_t i = 0; i < 300; i++)
        assert_int_equal(s.count[i], i % 100 == 50 ? 0 : 1);
    assert_int_equal(st.poison, 3);
    assert_int_equal(st.dlq_sent, 3);
    assert_int_equal(st.applied, 297);

    /* The DLQ holds the three with their key, payload and headers. */
    rd_kafka_t *rd = observer_new(&cl, "dlq-reader");
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, DLQ, 0)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(rd, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    uint32_t got = 0;
    int seen[3] = {0};
    double end = reel_clock_mono() + DEADLINE_S;
    while (got < 3 && reel_clock_mono() < end) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rd, 100);
        if (!m)
            continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        /* Which of the three: the DLQ keeps each partition's order, not
         * the order across partitions. */
        uint32_t want_i = UINT32_MAX;
        for (int k = 0; k < 3; k++) {
            char kp[32];
            snprintf(kp, sizeof kp, "oops %u", poison[k]);
            if (m->len > strlen(kp) &&
                !memcmp((const char *)m->payload + m->len - strlen(kp), kp,
                        strlen(kp)))
                want_i = poison[k];
        }
        assert_true(want_i != UINT32_MAX && !seen[want_i / 100]);
        seen[want_i / 100] = 1;
        char payload[64], key[16];
        int pl =
            snprintf(payload, sizeof payload, "{\"user\": \"u%u\", oops %u",
                     want_i % N_USERS, want_i);
        int kl = snprintf(key, sizeof key, "u%u", want_i % N_USERS);
        assert_int_equal(m->key_len, kl);
        assert_memory_equal(m->key, key, kl);
        assert_int_equal(m->len, pl);
        assert_memory_equal(m->payload, payload, pl);
        rd_kafka_headers_t *h;
        assert_int_equal(rd_kafka_message_headers(m, &h), 0);
        const void *val;
        size_t vl;
        assert_int_equal(rd_kafka_header_get_last(h, "reel.topic", &val, &vl),
                         0);
        assert_int_equal(vl, strlen(TOPIC));
        assert_memory_equal(val, TOPIC, vl);
        assert_int_equal(rd_kafka_header_get_last(h, "reel.error", &val, &vl),
                         0);
        assert_true(vl > 0 && !memcmp(val, "invalid JSON", 12));
        char num[32];
        assert_int_equal(
            rd_kafka_header_get_last(h, "reel.partition", &val, &vl), 0);
        snprintf(num, sizeof num, "%.*s", (int)vl, (const char *)val);
        long part = strtol(num, NULL, 10);
        assert_true(part >= 0 && part < N_PART);
        assert_int_equal(rd_kafka_header_get_last(h, "reel.offset", &val, &vl),
                         0);
        snprintf(num, sizeof num, "%.*s", (int)vl, (const char *)val);
        assert_true(vl > 0 && strtol(num, NULL, 10) >= 0);
        rd_kafka_message_destroy(m);
        got++;
    }
    assert_int_equal(got, 3);
    rd_kafka_consumer_close(rd);
    rd_kafka_destroy(rd);

    sink_free(&s);
    cluster_stop(&cl);
}

/* Call 2 takes broker 1 (leader of partition 0, the group coordinator)
 * down; the test thread brings it back. */
static void take_broker_down(struct sink *s, uint32_t call)
{
    if (call != 2)
        return;
    /* No cmocka assert here: this is the consumer's thread. */
    rd_kafka_resp_err_t err = rd_kafka_mock_broker_set_down(s->cl->mc, 1);
    pthread_mutex_lock(&s->mu);
    if (err)
        violation(s, "set_down: %s", rd_kafka_err2str(err));
    s->downed = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void a_broker_down_and_up_loses_nothing(void **state)
{
    struct cluster cl;
    cluster_start(&cl, TOPIC);
    /* Broker 1 leads partition 0 and coordinates the group. */
    assert_int_equal(rd_kafka_mock_partition_set_leader(cl.mc, TOPIC, 0, 1), 0);
    assert_int_equal(rd_kafka_mock_coordinator_set(cl.mc, "group", "g-d", 1),
                     0);
    produce_events(&cl, 0, 1000, NULL, 0);

    struct sink s;
    sink_init(&s, 1000, 1000);
    s.hook = take_broker_down;
    s.cl = &cl;
    reel_kafka_consumer *c =
        open_consumer(&cl, "g-d", 50, REEL_KAFKA_DLQ_DEFAULT, NULL, 0);
    struct runner r;
    runner_start(&r, c, &s);

    struct timespec end;
    clock_gettime(CLOCK_REALTIME, &end);
    end.tv_sec += (time_t)DEADLINE_S;
    pthread_mutex_lock(&s.mu);
    while (!s.downed && pthread_cond_timedwait(&s.cv, &s.mu, &end) == 0)
        ;
    int downed = s.downed;
    pthread_mutex_unlock(&s.mu);
    assert_true(downed);
    /* Up again once the consumer noticed (librdkafka reported the lost
     * connection), or after a while. */
    double until = reel_clock_mono() + 2.0;
    while (stats_of(c).errors == 0 && reel_clock_mono() < until)
        nap_ms(10);
    assert_int_equal(rd_kafka_mock_broker_set_up(cl.mc, 1), 0);

    assert_true(sink_wait(&s));
    rd_kafka_t *obs = observer_new(&cl, "g-d");
    wait_all_committed(obs);
    assert_int_equal(runner_stop(&r), 0);
    reel_kafka_consumer_stats st = stats_of(c);
    assert_int_equal(reel_kafka_consumer_close(c), 0);
    assert_no_violation(&s);
    for (uint32_t i = 0; i < 1000; i++)
        assert_true(s.count[i] >= 1);
    assert_true(st.errors >= 1);
    assert_true(st.applied >= 1000);

    sink_free(&s);
    rd_kafka_destroy(obs);
    cluster_stop(&cl);
}

/* Two members, the second joining mid-stream, with librdkafka's default
 * (eager) assignors. Not the cooperative-sticky one: librdkafka 2.0.2
 * aborts in it when a member is closed before its first assignment
 * (librdkafka issue 4312, fixed in 2.3.0), which this test may do. */
static void two_consumers_share_the_topic_across_a_rebalance(void **state)
{
    struct cluster cl;
    cluster_start(&cl, TOPIC);
    produce_events(&cl, 0, 500, NULL, 0);
    rd_kafka_t *obs = observer_new(&cl, "g-e");

    struct sink s;
    sink_init(&s, 1000, 1000);
    s.observer = obs;
    reel_kafka_consumer *a =
        open_consumer(&cl, "g-e", 50, REEL_KAFKA_DLQ_DEFAULT, NULL, 0);
    struct runner ra, rb;
    runner_start(&ra, a, &s);
    WAIT_STAT(a, applied, 1);
    reel_kafka_consumer *b = NULL;
    /* The group rebalanced when b has partitions of its own. librdkafka
     * 2.0.2's mock coordinator ends a generation's sync as soon as the
     * leader's SyncGroup arrives and refuses a follower's later one
     * (INVALID_REQUEST); the follower rejoins, and one member can lose
     * that race round after round. A fresh member gets through, so b is
     * replaced when it has no partitions after a while. */
    for (int attempt = 0; attempt < 3 && !b; attempt++) {
        b = open_consumer(&cl, "g-e", 50, REEL_KAFKA_DLQ_DEFAULT, NULL, 0);
        runner_start(&rb, b, &s);
        double end = reel_clock_mono() + 10.0;
        while (stats_of(b).assigned == 0 && reel_clock_mono() < end)
            nap_ms(5);
        if (stats_of(b).assigned == 0) {
            assert_int_equal(runner_stop(&rb), 0);
            reel_kafka_consumer_close(b);
            b = NULL;
        }
    }
    assert_non_null(b);
    produce_events(&cl, 500, 1000, NULL, 0);
    assert_true(sink_wait(&s));
    wait_all_committed(obs);
    assert_int_equal(runner_stop(&ra), 0);
    assert_int_equal(runner_stop(&rb), 0);
    reel_kafka_consumer_stats sa = stats_of(a), sb = stats_of(b);
    assert_int_equal(reel_kafka_consumer_close(a), 0);
    assert_int_equal(reel_kafka_consumer_close(b), 0);
    /* Duplicates only below the committed offsets is checked per call. */
    assert_no_violation(&s);
    for (uint32_t i = 0; i < 1000; i++)
        assert_true(s.count[i] >= 1);
    assert_true(sa.rebalances >= 2);
    assert_true(sb.rebalances >= 1);
    assert_true(sa.applied > 0 && sb.applied > 0);
    assert_true(sa.applied + sb.applied >= 1000);

    sink_free(&s);
    rd_kafka_destroy(obs);
    cluster_stop(&cl);
}

static void producer_counts_deliveries_and_failures(void **state)
{
    struct cluster cl;
    cluster_start(&cl, TOPIC);
    reel_kafka_producer *p = open_producer(&cl, TOPIC, NULL, 0);
    for (int i = 0; i < 200; i++) {
        char buf[256];
        int len = event_json((uint32_t)i, buf, sizeof buf);
        assert_int_equal(
            reel_kafka_producer_produce(p, "k", 1, buf, (size_t)len), 0);
    }
    assert_int_equal(reel_kafka_producer_flush(p, 10000), 0);
    assert_int_equal(reel_kafka_producer_pending(p), 0);
    reel_kafka_producer_stats st;
    reel_kafka_producer_get_stats(p, &st);
    assert_int_equal(st.produced, 200);
    assert_int_equal(st.delivered, 200);
    assert_int_equal(st.failed, 0);
    assert_string_equal(st.first_error, "");
    reel_kafka_producer_close(p);

    /* Every broker down: the messages time out and count as failed. */
    assert_int_equal(rd_kafka_mock_broker_set_down(cl.mc, -1), 0);
    static const char *const quick[] = {"message.timeout.ms=300"};
    p = open_producer(&cl, TOPIC, quick, 1);
    for (int i = 0; i < 5; i++)
        assert_int_equal(reel_kafka_producer_produce(p, NULL, 0, "{}", 2), 0);
    assert_int_equal(reel_kafka_producer_flush(p, 10000), 0);
    reel_kafka_producer_get_stats(p, &st);
    assert_int_equal(st.produced, 5);
    assert_int_equal(st.delivered, 0);
    assert_int_equal(st.failed, 5);
    assert_true(st.first_error[0] != '\0');
    reel_kafka_producer_close(p);
    assert_int_equal(rd_kafka_mock_broker_set_up(cl.mc, -1), 0);

    /* Bad options are refused with a reason. */
    reel_kafka_producer_opts o = {.brokers = cl.boot, .topic = ""};
    reel_diag d;
    reel_diag_clear(&d);
    assert_int_equal(reel_kafka_producer_open(&o, &p, &d), REEL_EINVAL);
    assert_null(p);
    static const char *const bad[] = {"no.such.setting=1"};
    o = (reel_kafka_producer_opts){
        .brokers = cl.boot, .topic = TOPIC, .settings = bad, .n_settings = 1};
    assert_int_equal(reel_kafka_producer_open(&o, &p, &d), REEL_EINVAL);
    assert_non_null(strstr(d.msg, "no.such.setting"));
    cluster_stop(&cl);
}

/* Runs the reel binary with args, stdin from `in` (NULL: /dev/null) and
 * stderr into `err`; returns its exit status. */
static int run_reel(char *const *args, const char *in, const char *err)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fi = open(in ? in : "/dev/null", O_RDONLY);
        int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fo = open("/dev/null", O_WRONLY);
        if (fi < 0 || fe < 0 || fo < 0)
            _exit(127);
        dup2(fi, 0);
        dup2(fo, 1);
        dup2(fe, 2);
        execv(REEL_BIN, args);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Reads every message of topic "cli" from the start; checks each key is
 * the payload's user; returns the count. */
static uint32_t read_cli_topic(const struct cluster *cl, uint32_t want)
{
    rd_kafka_t *rd = observer_new(cl, "cli-reader");
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(N_PART);
    for (int p = 0; p < N_PART; p++)
        rd_kafka_topic_partition_list_add(l, "cli", p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(rd, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    uint32_t got = 0;
    double end = reel_clock_mono() + DEADLINE_S;
    while (got < want && reel_clock_mono() < end) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rd, 100);
        if (!m)
            continue;
        if (!m->err) {
            json_t *o = json_loadb(m->payload, m->len, 0, NULL);
            assert_non_null(o);
            /* An id: a string, or an integer sent as its decimal text. */
            const json_t *u = json_object_get(o, "user");
            char num[24];
            const char *user = json_string_value(u);
            if (json_is_integer(u)) {
                snprintf(num, sizeof num, "%lld",
                         (long long)json_integer_value(u));
                user = num;
            }
            assert_non_null(user);
            assert_int_equal(m->key_len, strlen(user));
            assert_memory_equal(m->key, user, m->key_len);
            json_decref(o);
            got++;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rd);
    rd_kafka_destroy(rd);
    return got;
}

static void produce_command_sends_good_lines_and_names_bad_ones(void **state)
{
    struct cluster cl;
    cluster_start(&cl, "cli");
    char *dir = test_tmpdir();
    char text[4096] = "";
    size_t n = 0;
    for (uint32_t i = 0; i < 10; i++) {
        if (i == 3)
            n += (size_t)snprintf(text + n, sizeof text - n,
                                  "{\"user\": \"u1\", \"video\":\n");
        else if (i == 6)
            n += (size_t)snprintf(text + n, sizeof text - n, "\n");
        else {
            n += (size_t)event_json(i, text + n, sizeof text - n);
            text[n++] = '\n';
        }
    }
    text[n] = '\0';
    char *file = test_write_file(dir, "events.jsonl", text);
    char *err = test_path(dir, "stderr");
    char *args[] = {"reel",    "produce", "--kafka", (char *)cl.boot,
                    "--topic", "cli",     file,      NULL};
    assert_int_equal(run_reel(args, NULL, err), 1);
    const char *out = slurp(err);
    char where[512];
    snprintf(where, sizeof where, "%s:4: invalid JSON", file);
    if (!strstr(out, where))
        fail_msg("stderr lacks '%s':\n%s", where, out);
    if (!strstr(out, "produced 8, delivered 8, failed 0, bad lines 1"))
        fail_msg("stderr:\n%s", out);
    assert_int_equal(read_cli_topic(&cl, 8), 8);

    /* Standard input, every line good: status 0. */
    char *good = test_write_file(dir, "good.jsonl",
                                 "{\"user\": 7, \"video\": \"v1\", \"type\": "
                                 "\"like\", \"ts\": 1}\n");
    char *args_in[] = {"reel",    "produce", "--kafka", (char *)cl.boot,
                       "--topic", "cli",     "-",       NULL};
    assert_int_equal(run_reel(args_in, good, err), 0);
    out = slurp(err);
    if (!strstr(out, "produced 1, delivered 1, failed 0, bad lines 0"))
        fail_msg("stderr:\n%s", out);
    assert_int_equal(read_cli_topic(&cl, 9), 9);

    char *usage[] = {"reel", "produce", "--kafka", (char *)cl.boot, file, NULL};
    assert_int_equal(run_reel(usage, NULL, err), 2);
    assert_non_null(strstr(slurp(err), "--topic is required"));

    free(good);
    free(err);
    free(file);
    test_rmtree(dir);
    free(dir);
    cluster_stop(&cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            one_consumer_applies_each_message_once_in_order_and_commits),
        cmocka_unit_test(failed_apply_is_retried_and_never_committed_early),
        cmocka_unit_test(poison_messages_go_to_the_dlq_and_the_rest_is_applied),
        cmocka_unit_test(a_broker_down_and_up_loses_nothing),
        cmocka_unit_test(two_consumers_share_the_topic_across_a_rebalance),
        cmocka_unit_test(producer_counts_deliveries_and_failures),
        cmocka_unit_test(produce_command_sends_good_lines_and_names_bad_ones),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    /* Every handle is gone before the leak checker looks. */
    rd_kafka_wait_destroyed(5000);
    return failed;
}
