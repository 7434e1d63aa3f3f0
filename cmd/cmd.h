/*
 * cmd: the subcommands of the reel binary, and what they share.
 *
 * Each command is `int reel_cmd_<name>(int argc, char **argv)` with argv[0]
 * the command's name, and returns an exit status: 0 success, 1 runtime
 * error, 2 usage error. Commands print their own help for --help (to
 * stdout, status 0) and a one-line hint on a usage error (to stderr).
 */
#ifndef REEL_CMD_H
#define REEL_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "rank/ranker.h"
#include "rank/trainset.h"

enum { REEL_EXIT_OK = 0, REEL_EXIT_ERROR = 1, REEL_EXIT_USAGE = 2 };

int reel_cmd_import(int argc, char **argv);
int reel_cmd_synth(int argc, char **argv);
int reel_cmd_stats(int argc, char **argv);
int reel_cmd_index(int argc, char **argv);
int reel_cmd_eval(int argc, char **argv);
int reel_cmd_embed(int argc, char **argv);
int reel_cmd_train(int argc, char **argv);
int reel_cmd_build(int argc, char **argv);
int reel_cmd_rank(int argc, char **argv);
int reel_cmd_serve(int argc, char **argv);
int reel_cmd_produce(int argc, char **argv);
int reel_cmd_ingest(int argc, char **argv);
int reel_cmd_clip(int argc, char **argv);

/* reel embed DIR --clip MODEL (cmd_embed_clip.c): CLIP content vectors to
 * `out`, thumbnails under DIR/thumbs/. */
typedef struct reel_cmd_clip_opts {
    const char *model;  /* CLIP checkpoint directory */
    uint32_t frames;    /* key frames per video (0: text only) */
    double text_weight; /* the text's share of the vector, 0..1 */
    uint32_t batch;
    int threads;
} reel_cmd_clip_opts;
int reel_cmd_embed_clip(const char *dir, const char *out,
                        const reel_cmd_clip_opts *o);
/* DIR/thumbs/ID with the id escaped for a file name (%XX). */
void reel_cmd_thumb_dir(const char *dir, const char *id, char *out, size_t cap);
int reel_cmd_search(int argc, char **argv);
int reel_cmd_simulate(int argc, char **argv);

/* Prints "reel <cmd>: <message>" and a hint to run --help; returns 2. */
int reel_cmd_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints "reel <cmd>: <message>"; returns 1. */
int reel_cmd_fail(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints "reel <cmd>: file:line: reason" from a diag; returns 1. */
int reel_cmd_fail_diag(const char *cmd, const reel_diag *d);

/* Parses a whole finite number in [min, max]; 0 on success. */
int reel_cmd_parse_double(const char *s, double min, double max, double *out);

/* Parses a whole decimal unsigned number in [min, max]; 0 on success. */
int reel_cmd_parse_u64(const char *s, uint64_t min, uint64_t max,
                       uint64_t *out);

/* The ranker options reel build and reel train share. */
enum reel_cmd_ranker_opt {
    REEL_CMD_LABEL,      /* --label */
    REEL_CMD_RANKER,     /* --ranker */
    REEL_CMD_QUERY_DECAY /* --query-decay */
};

/* Parses arg of option `which` into to or ro; 0, or the usage error's
 * exit status. */
int reel_cmd_ranker_option(const char *cmd, enum reel_cmd_ranker_opt which,
                           const char *arg, reel_trainset_opts *to,
                           reel_ranker_opts *ro);

/* The ranker from every event of ds (training rows through the retrieval
 * of vec and ix), written to DIR/models/ (its path into path). Prints the
 * rows line; on failure prints why and returns exit status 1. */
int reel_cmd_train_ranker(const char *cmd, const char *dir,
                          const reel_dataset *ds, const reel_vectors *vec,
                          const reel_index *ix, const reel_trainset_opts *to,
                          const reel_ranker_opts *ro, reel_trainset_stats *st,
                          reel_ranker_report *rep, char *path, size_t cap);

/* A Kafka consumer applying a topic's events through the engine
 * (cmd_ingest.c; reel ingest and reel serve --kafka): started on its own
 * thread; stop finishes the batch in hand, commits and leaves the group. */
struct reel_cmd_kafka;
struct reel_kafka_consumer_opts;
struct reel_engine;
struct reel_buf;
int reel_cmd_kafka_start(struct reel_engine *en,
                         const struct reel_kafka_consumer_opts *o,
                         struct reel_cmd_kafka **out, reel_diag *d);
void reel_cmd_kafka_stop(struct reel_cmd_kafka *k); /* NULL is fine */
int reel_cmd_kafka_failed(const struct reel_cmd_kafka *k);
/* The consumer's counters in the Prometheus text format (NULL: none). */
void reel_cmd_kafka_metrics(const struct reel_cmd_kafka *k, struct reel_buf *b);
/* One metric with its HELP and TYPE lines, in the Prometheus text format. */
void reel_cmd_metric(struct reel_buf *b, const char *name, const char *type,
                     const char *help, double v);

/* What reel serve's handlers share (cmd_serve.c): a jansson value sent
 * as the JSON body (the reference is stolen; 500 when it cannot be
 * encoded), and a string or JSON null for a NULL one. */
struct reel_http_resp;
struct json_t;
void reel_cmd_send_json(struct reel_http_resp *resp, int status,
                        struct json_t *v);
struct json_t *reel_cmd_str_or_null(const char *s);

/* The dashboard (serve_web.c, issue 9): adds to a server that has not
 * started GET / and each file of web/ (embedded at build time), GET
 * /v1/videos (the catalogue, paged and searched by title) and GET
 * /thumbs/{id}/{file} (DIR/thumbs). en and dir must outlive the server;
 * one such server per process. 0, or reel_http_route's error. */
struct reel_http_server;
int reel_cmd_web_routes(struct reel_http_server *http, struct reel_engine *en,
                        const char *dir);
/* web/'s files in the binary (web/embed.cmake generates them): names,
 * bytes (each followed by a NUL not counted in its size) and sizes. */
extern const char *const reel_cmd_web_names[];
extern const unsigned char *const reel_cmd_web_data[];
extern const size_t reel_cmd_web_sizes[];
extern const size_t reel_cmd_web_n;

#endif
