/*
 * reel: one binary, subcommands. Each command lives in cmd_<name>.c and
 * returns its exit status (0 success, 1 runtime error, 2 usage error).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"import", reel_cmd_import,
     "import a catalogue, users and events (JSONL or MovieLens) into DIR"},
    {"synth", reel_cmd_synth,
     "simulate a streaming service and write a dataset into DIR"},
    {"stats", reel_cmd_stats, "describe the dataset in DIR"},
    {"index", reel_cmd_index,
     "build, query and describe vector indexes (HNSW, flat)"},
    {"embed", reel_cmd_embed,
     "learn item vectors from viewing logs (item2vec, ALS)"},
    {"eval", reel_cmd_eval,
     "evaluate recommendation methods offline (MovieLens protocols)"},
    {"build", reel_cmd_build,
     "build vectors, index and ranker for the server, with defaults"},
    {"train", reel_cmd_train,
     "train the ranker (XGBoost or MLP) on the event log in DIR"},
    {"rank", reel_cmd_rank,
     "explain the ranker's score of a video for a user (rank explain)"},
    {"serve", reel_cmd_serve,
     "serve recommendations and take events over HTTP (docs/API.md)"},
    {"ingest", reel_cmd_ingest,
     "apply a Kafka topic's events to the Redis store (docs/DEPLOY.md)"},
    {"clip", reel_cmd_clip,
     "CLIP's raw outputs: token ids, text and image embeddings, logits"},
    {"search", reel_cmd_search,
     "zero-shot search of the catalogue with a CLIP text query"},
    {"simulate", reel_cmd_simulate,
     "closed-loop simulation: synthetic users against a running server"},
    {"produce", reel_cmd_produce,
     "send JSON Lines events to a Kafka topic (docs/formats/kafka-events.md)"},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out,
            "usage: reel <command> [options]\n"
            "\n"
            "reel is a real-time recommendation engine for video streaming.\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n"
                 "Run 'reel <command> --help' for a command's options.\n"
                 "Exit status: 0 success, 1 runtime error, 2 usage error.\n");
}

int reel_cmd_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "reel %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'reel %s --help'.\n", cmd);
    va_end(ap);
    return REEL_EXIT_USAGE;
}

int reel_cmd_fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "reel %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return REEL_EXIT_ERROR;
}

int reel_cmd_fail_diag(const char *cmd, const reel_diag *d)
{
    char msg[1024];
    reel_diag_format(d, msg, sizeof msg);
    return reel_cmd_fail(cmd, "%s", msg);
}

int reel_cmd_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int reel_cmd_parse_double(const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !(v >= min && v <= max))
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return REEL_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") ||
        !strcmp(name, "help")) {
        usage(stdout);
        return REEL_EXIT_OK;
    }
    if (!strcmp(name, "--version")) {
        printf("reel %s\n", REEL_VERSION);
        return REEL_EXIT_OK;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(name, commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "reel: unknown command '%s'\n\n", name);
    usage(stderr);
    return REEL_EXIT_USAGE;
}
