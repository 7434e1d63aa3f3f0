/*
 * rdkafka_mock: librdkafka's mock cluster (in-process brokers on
 * 127.0.0.1) for reel's Kafka tests.
 *
 * librdkafka.so exports the mock API (rd_kafka_mock_*) but not every
 * packaging of librdkafka installs its header (Debian 12's librdkafka-dev
 * 2.0.2-1 does; others ship only rdkafka.h). So the real header is used
 * when it is there, and otherwise the few prototypes the tests call are
 * declared here, as librdkafka 2.0.2 documents them in src/rdkafka_mock.h
 * (an experimental API without ABI guarantees: a librdkafka upgrade may
 * need this list checked).
 */
#ifndef REEL_TEST_RDKAFKA_MOCK_H
#define REEL_TEST_RDKAFKA_MOCK_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>

#if __has_include(<librdkafka/rdkafka_mock.h>)
#include <librdkafka/rdkafka_mock.h>
#else
typedef struct rd_kafka_mock_cluster_s rd_kafka_mock_cluster_t;

/* broker_cnt brokers with ids 1..broker_cnt; rk hosts the cluster's
 * bookkeeping and must outlive it. */
rd_kafka_mock_cluster_t *rd_kafka_mock_cluster_new(rd_kafka_t *rk,
                                                   int broker_cnt);
void rd_kafka_mock_cluster_destroy(rd_kafka_mock_cluster_t *mcluster);
/* "host:port,..." for bootstrap.servers. */
const char *
rd_kafka_mock_cluster_bootstraps(const rd_kafka_mock_cluster_t *mcluster);
rd_kafka_resp_err_t
rd_kafka_mock_topic_create(rd_kafka_mock_cluster_t *mcluster, const char *topic,
                           int partition_cnt, int replication_factor);
rd_kafka_resp_err_t
rd_kafka_mock_partition_set_leader(rd_kafka_mock_cluster_t *mcluster,
                                   const char *topic, int32_t partition,
                                   int32_t broker_id);
/* Disconnects the broker (-1: all) and refuses new connections; no leader
 * change. */
rd_kafka_resp_err_t
rd_kafka_mock_broker_set_down(rd_kafka_mock_cluster_t *mcluster,
                              int32_t broker_id);
rd_kafka_resp_err_t
rd_kafka_mock_broker_set_up(rd_kafka_mock_cluster_t *mcluster,
                            int32_t broker_id);
/* key_type "group" or "transaction". */
rd_kafka_resp_err_t
rd_kafka_mock_coordinator_set(rd_kafka_mock_cluster_t *mcluster,
                              const char *key_type, const char *key,
                              int32_t broker_id);
#endif

#endif
