/*
 * kafka: events from Kafka, at least once; and a producer to put them
 * there (docs/formats/kafka-events.md is the message format).
 *
 * The consumer is one member of a consumer group reading one topic.
 * reel_kafka_consumer_run() polls up to batch_max messages and hands them
 * to the caller's apply function in one call. The function returns 0 once
 * every message it did not mark poison is durably applied; only then are
 * the poison messages logged, sent to the dead-letter topic (DLQ) and
 * delivered, and then the offsets (last offset + 1 of each partition of
 * the batch) stored and committed synchronously. When it returns a
 * negative REEL_E* code, none of the batch counts as applied: the
 * consumer seeks each partition back to the batch's first offset, backs
 * off (100 ms doubling to 5 s, reset by a success; the stop flag cuts the
 * wait short) and polls the same messages again. So a committed offset
 * never passes a message that was not applied or dead-lettered, and
 * nothing is dropped; a crash between apply and commit delivers the
 * batch again, so appliers de-duplicate (by the event's "id").
 *
 * Rebalances (eager and cooperative protocols; with librdkafka 2.0.2 keep
 * the eager default, see docs/formats/kafka-events.md) are served inside
 * run, between batches: everything applied is committed by then, and
 * polled messages of revoked partitions not yet applied are dropped
 * (their next owner gets them from the committed offset). A poison message
 * never stops the consumer. Errors librdkafka reports (transport, partition
 * EOF, broker down) are logged and counted, never passed to apply; it
 * reconnects by itself. librdkafka's errors become REEL_E* codes in
 * kafka.c only.
 *
 * The producer sends keyed messages to one topic, waits for room when
 * librdkafka's queue is full, and counts delivery reports.
 *
 * Ownership: options are read during open only (strings are copied).
 * The messages handed to apply, their payloads and keys are borrowed for
 * the duration of the call. Payloads given to produce are copied.
 *
 * Thread rules: a consumer is opened, run and closed by one thread at a
 * time; run is not reentrant and apply must not call run or close.
 * get_stats may be called from any thread between open and close; the
 * stop flag may be set from any thread or a signal handler. A producer is
 * used by one thread at a time (produce, flush, close); its get_stats
 * from any thread. Consumers and producers are independent of each other.
 */
#ifndef REEL_INGEST_KAFKA_H
#define REEL_INGEST_KAFKA_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* The default dead-letter topic; "<topic>" stands for the consumed topic. */
#define REEL_KAFKA_DLQ_DEFAULT "<topic>.dlq"
#define REEL_KAFKA_BATCH_DEFAULT 1000u
#define REEL_KAFKA_BATCH_MAX 100000u
#define REEL_KAFKA_POLL_MS_DEFAULT 100u
/* Size of an error message buffer (a verdict's, a producer's). */
#define REEL_KAFKA_ERROR_MAX 160

typedef struct reel_kafka_consumer reel_kafka_consumer;
typedef struct reel_kafka_producer reel_kafka_producer;

typedef struct reel_kafka_consumer_opts {
    const char *brokers; /* bootstrap servers, "host:port,..." (required) */
    const char *topic;   /* the topic to consume (required) */
    const char *group;   /* the consumer group id (required) */
    /* Where poison messages go; "<topic>" in it is replaced by the topic.
     * NULL or "": no DLQ (poison messages are only logged and counted). */
    const char *dlq_topic;
    const char *client_id; /* NULL: "reel" */
    uint32_t batch_max;    /* messages per apply call, 0: 1000 */
    uint32_t poll_ms;      /* wait for a batch's first message, 0: 100 */
    /* librdkafka settings "key=value", applied to the consumer and the DLQ
     * producer after reel's defaults (auto.offset.reset=earliest); they
     * cannot turn on enable.auto.commit or enable.auto.offset.store. */
    const char *const *settings;
    size_t n_settings;
} reel_kafka_consumer_opts;

/* Zeroes o and sets dlq_topic to REEL_KAFKA_DLQ_DEFAULT. */
void reel_kafka_consumer_opts_init(reel_kafka_consumer_opts *o);

/* One message of a batch. payload is NULL when len is 0 (a tombstone);
 * key is NULL when the message has none. ts_ms is the message's
 * timestamp in Unix milliseconds, -1 when unknown. */
typedef struct reel_kafka_msg {
    const char *payload;
    size_t len;
    const char *key;
    size_t key_len;
    int32_t partition;
    int64_t offset;
    int64_t ts_ms;
} reel_kafka_msg;

/* What apply says about one message: poison = 1 when it can never be
 * applied (bad JSON, unknown video...), with the reason in error
 * (NUL-terminated; it goes to the log and the DLQ header reel.error). */
typedef struct reel_kafka_verdict {
    int poison;
    char error[REEL_KAFKA_ERROR_MAX];
} reel_kafka_verdict;

/*
 * Applies the n messages m[0..n) (n >= 1, in each partition's order),
 * filling v[i] for message i (v comes zeroed). Returns 0 when every
 * message not marked poison is durably applied, or a negative REEL_E*
 * code (REEL_EUNAVAILABLE: the store is down...) when nothing of the
 * batch may be considered applied; the batch then comes again.
 */
typedef int (*reel_kafka_apply_fn)(void *ctx, const reel_kafka_msg *m,
                                   uint32_t n, reel_kafka_verdict *v);

/*
 * Creates the consumer, subscribes to the topic and, with a DLQ, creates
 * its producer. Fails (with d saying why, *out NULL) on missing options
 * or a setting librdkafka refuses (REEL_EINVAL); brokers are contacted
 * later, by run, so an unreachable cluster is not an error here.
 */
int reel_kafka_consumer_open(const reel_kafka_consumer_opts *o,
                             reel_kafka_consumer **out, reel_diag *d);

/*
 * Polls, applies and commits until *stop becomes nonzero, then returns 0
 * after finishing the batch in hand (apply's answer and, if it was 0,
 * the DLQ and the commit; a DLQ not delivered by then is left to the
 * batch's next delivery, uncommitted). Returns REEL_EIO when librdkafka
 * reports a fatal error (the consumer's or the DLQ producer's) or cannot
 * seek back after a failed apply: the consumer must then be closed;
 * nothing unapplied or undelivered to the DLQ was committed.
 */
int reel_kafka_consumer_run(reel_kafka_consumer *c, reel_kafka_apply_fn apply,
                            void *ctx, const atomic_int *stop);

/*
 * Leaves the group (committing nothing more) and frees the consumer and
 * its DLQ producer. Returns 0, or the error of leaving the group (the
 * consumer is freed anyway). NULL is fine.
 */
int reel_kafka_consumer_close(reel_kafka_consumer *c);

typedef struct reel_kafka_consumer_stats {
    uint64_t messages;        /* received, each delivery counted again */
    uint64_t applied;         /* in accepted batches, poison excluded */
    uint64_t poison;          /* marked poison in accepted batches */
    uint64_t dlq_sent;        /* poison messages delivered to the DLQ */
    uint64_t dlq_failed;      /* DLQ deliveries that failed (retried) */
    uint64_t retries;         /* apply calls that failed */
    uint64_t commits;         /* successful commits */
    uint64_t commit_failures; /* failed commits (covered by the next) */
    uint64_t rebalances;      /* assignments and revocations served */
    uint64_t errors;          /* errors librdkafka reported (logged) */
    uint64_t assigned;        /* partitions assigned now */
    /* Messages between the consumer's position and the high watermarks
     * of its partitions after the last batch; -1 when unknown. */
    int64_t lag;
} reel_kafka_consumer_stats;

/* A copy of the counters (each read atomically, not all at one instant). */
void reel_kafka_consumer_get_stats(const reel_kafka_consumer *c,
                                   reel_kafka_consumer_stats *out);

typedef struct reel_kafka_producer_opts {
    const char *brokers;   /* required */
    const char *topic;     /* required */
    const char *client_id; /* NULL: "reel" */
    /* librdkafka settings "key=value" after reel's defaults (acks=all,
     * enable.idempotence=true: one key's messages stay in order). */
    const char *const *settings;
    size_t n_settings;
} reel_kafka_producer_opts;

/* Creates the producer; REEL_EINVAL (d says why) for bad options. */
int reel_kafka_producer_open(const reel_kafka_producer_opts *o,
                             reel_kafka_producer **out, reel_diag *d);

/*
 * Queues one message (key may be NULL; payload and key are copied) for
 * the producer's topic, partitioned by the key's hash. While librdkafka's
 * queue is full it serves delivery reports and tries again. Returns 0
 * when queued (the delivery report comes later), REEL_ETOOBIG for a
 * message above message.max.bytes, REEL_EIO after a fatal error.
 */
int reel_kafka_producer_produce(reel_kafka_producer *p, const void *key,
                                size_t key_len, const void *payload,
                                size_t len);

/* Waits up to timeout_ms (-1: no limit) until every queued message has
 * its delivery report. 0, or REEL_ETIMEOUT with messages still queued. */
int reel_kafka_producer_flush(reel_kafka_producer *p, int timeout_ms);

/* Messages queued and not yet reported. */
uint64_t reel_kafka_producer_pending(const reel_kafka_producer *p);

/* Drops what is still queued (counted as failed), frees. NULL is fine. */
void reel_kafka_producer_close(reel_kafka_producer *p);

typedef struct reel_kafka_producer_stats {
    uint64_t produced;  /* queued by produce */
    uint64_t delivered; /* acknowledged by the cluster */
    uint64_t failed;    /* delivery failed (timed out, refused, dropped) */
    char first_error[REEL_KAFKA_ERROR_MAX]; /* "" when none failed */
} reel_kafka_producer_stats;

void reel_kafka_producer_get_stats(reel_kafka_producer *p,
                                   reel_kafka_producer_stats *out);

#endif
