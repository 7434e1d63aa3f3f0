#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/arena.h"
#include "base/lines.h"
#include "base/progress.h"
#include "cmd.h"
#include "data/record.h"
#include "ingest/kafka.h"

/* Enough messages to see a pattern, few enough not to drown the terminal. */
enum { MAX_WARNINGS = 10, MAX_SETTINGS = 64 };

static void help(FILE *out)
{
    fprintf(out,
            "usage: reel produce --kafka BROKERS --topic T [--key-field F]\n"
            "                    [--set KEY=VALUE]... FILE.jsonl\n"
            "\n"
            "Sends events to a Kafka topic, one message per JSON Lines "
            "event\n(docs/formats/kafka-events.md). FILE may be - for "
            "standard input.\nEach line is checked as an event "
            "(docs/formats/jsonl.md); a bad line\nis reported as "
            "FILE:LINE, skipped and counted. The message key is the\n"
            "event's user id, so one user's events stay in order on one "
            "partition.\n"
            "\n"
            "  --kafka BROKERS   bootstrap servers, host:port[,host:port...]\n"
            "  --topic T         the topic to write to\n"
            "  --key-field F     the field whose value is the key (default "
            "user)\n"
            "  --set KEY=VALUE   a librdkafka producer setting (repeatable), "
            "e.g.\n"
            "                    message.timeout.ms=30000\n"
            "  -h, --help        this help\n"
            "\n"
            "Prints 'produced N, delivered N, failed N, bad lines N' on "
            "stderr.\nExit status: 0 when every line was sent and "
            "delivered, 1 when a line\nwas bad or a delivery failed, 2 for "
            "a usage error.\n");
}

static int blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return 0;
    return 1;
}

/* The key of an event: the value of `field` (an id: string or integer),
 * formatted into buf. 0, or REEL_EFORMAT with d saying why. */
static int event_key(const json_t *obj, const char *field, char *buf,
                     size_t cap, size_t *len, reel_diag *d)
{
    const json_t *v = json_object_get(obj, field);
    int n;
    if (json_is_string(v))
        n = snprintf(buf, cap, "%s", json_string_value(v));
    else if (json_is_integer(v))
        n = snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
    else
        return reel_diag_fail(
            d, REEL_EFORMAT, "key field \"%.64s\" missing or not an id", field);
    if (n <= 0 || (size_t)n >= cap)
        return reel_diag_fail(d, REEL_EFORMAT,
                              "key field \"%.64s\" empty or too long", field);
    *len = (size_t)n;
    return 0;
}

/* Checks one line; on success its key is in key/key_len. */
static int check_line(const char *line, size_t len, const char *key_field,
                      reel_arena *a, char *key, size_t cap, size_t *key_len,
                      reel_diag *d)
{
    json_error_t jerr;
    json_t *obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj)
        return reel_diag_fail(d, REEL_EFORMAT, "invalid JSON: %s (column %d)",
                              jerr.text, jerr.column);
    reel_event_in ev;
    int rc = reel_event_from_json(obj, a, &ev, d);
    if (!rc)
        rc = event_key(obj, key_field, key, cap, key_len, d);
    json_decref(obj);
    reel_arena_reset(a);
    return rc;
}

int reel_cmd_produce(int argc, char **argv)
{
    static const struct option opts[] = {
        {"kafka", required_argument, 0, 'k'},
        {"topic", required_argument, 0, 't'},
        {"key-field", required_argument, 0, 'f'},
        {"set", required_argument, 0, 's'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *brokers = NULL, *topic = NULL, *key_field = "user";
    const char *settings[MAX_SETTINGS];
    size_t n_settings = 0;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            brokers = optarg;
            break;
        case 't':
            topic = optarg;
            break;
        case 'f':
            key_field = optarg;
            break;
        case 's':
            if (n_settings == MAX_SETTINGS)
                return reel_cmd_usage_error(
                    "produce", "more than %d --set options", MAX_SETTINGS);
            if (!strchr(optarg, '=') || optarg[0] == '=')
                return reel_cmd_usage_error("produce",
                                            "--set wants KEY=VALUE, not "
                                            "'%s'",
                                            optarg);
            settings[n_settings++] = optarg;
            break;
        case 'h':
            help(stdout);
            return REEL_EXIT_OK;
        default:
            return reel_cmd_usage_error("produce",
                                        "unknown or incomplete option '%s'",
                                        argv[optind - 1]);
        }
    }
    if (!brokers || !*brokers)
        return reel_cmd_usage_error("produce", "--kafka BROKERS is required");
    if (!topic || !*topic)
        return reel_cmd_usage_error("produce", "--topic is required");
    if (!*key_field)
        return reel_cmd_usage_error("produce", "--key-field is empty");
    if (optind != argc - 1)
        return reel_cmd_usage_error("produce", "expected one input file "
                                               "(or - for standard input)");
    const char *path = argv[optind];

    reel_diag d;
    reel_diag_clear(&d);
    reel_lines *in;
    if (reel_lines_open(path, 0, &in, &d))
        return reel_cmd_fail_diag("produce", &d);
    reel_kafka_producer_opts po = {
        .brokers = brokers,
        .topic = topic,
        .client_id = "reel-produce",
        .settings = settings,
        .n_settings = n_settings,
    };
    reel_kafka_producer *p;
    if (reel_kafka_producer_open(&po, &p, &d)) {
        reel_lines_close(in);
        return reel_cmd_fail_diag("produce", &d);
    }

    /* Progress in events; with a known file size the total is estimated
     * from the bytes read so far, which gives an ETA. */
    uint64_t size = reel_lines_size(in);
    reel_progress pg;
    reel_progress_start(&pg, "produce", "events", 0);
    reel_arena a;
    reel_arena_init(&a, 4096);
    uint64_t n_bad = 0, n_refused = 0, n_lines = 0;
    int rc, status = REEL_EXIT_OK;
    const char *line;
    size_t len;
    char key[REEL_MAX_ID_LEN + 1];
    while ((rc = reel_lines_next(in, &line, &len, &d)) == 1) {
        if (blank(line, len))
            continue;
        n_lines++;
        size_t key_len = 0;
        reel_diag_clear(&d);
        int lrc =
            check_line(line, len, key_field, &a, key, sizeof key, &key_len, &d);
        if (lrc) {
            if (n_bad++ < MAX_WARNINGS) {
                char msg[512];
                d.file = path;
                d.line = reel_lines_lineno(in);
                reel_diag_format(&d, msg, sizeof msg);
                fprintf(stderr, "reel produce: %s (skipped)\n", msg);
            }
            continue;
        }
        lrc = reel_kafka_producer_produce(p, key, key_len, line, len);
        if (lrc) {
            if (n_refused++ < MAX_WARNINGS)
                fprintf(stderr, "reel produce: %s:%llu: not sent: %s\n", path,
                        (unsigned long long)reel_lines_lineno(in),
                        reel_strerror(lrc));
            if (lrc == REEL_EIO)
                break; /* fatal: nothing more will be sent */
            continue;
        }
        if ((n_lines & 1023) == 0) {
            uint64_t off = reel_lines_offset(in);
            if (size && off)
                pg.total =
                    (uint64_t)((double)n_lines * (double)size / (double)off);
            reel_progress_set(&pg, n_lines);
        }
    }
    if (rc < 0) {
        char msg[512];
        reel_diag_format(&d, msg, sizeof msg);
        fprintf(stderr, "reel produce: %s\n", msg);
        status = REEL_EXIT_ERROR;
    }
    pg.total = n_lines;
    /* Delivery ends for every message within message.timeout.ms. */
    while (reel_kafka_producer_flush(p, 200) == REEL_ETIMEOUT)
        reel_progress_set(&pg, n_lines);
    reel_progress_finish(&pg);

    reel_kafka_producer_stats st;
    reel_kafka_producer_get_stats(p, &st);
    reel_kafka_producer_close(p);
    reel_arena_free(&a);
    reel_lines_close(in);
    uint64_t failed = st.failed + n_refused;
    if (n_bad > MAX_WARNINGS)
        fprintf(stderr, "reel produce: %llu bad lines in all\n",
                (unsigned long long)n_bad);
    if (st.failed)
        fprintf(stderr, "reel produce: first delivery error: %s\n",
                st.first_error);
    fprintf(stderr,
            "reel produce: produced %llu, delivered %llu, failed %llu, bad "
            "lines %llu\n",
            (unsigned long long)st.produced, (unsigned long long)st.delivered,
            (unsigned long long)failed, (unsigned long long)n_bad);
    if (n_bad || failed)
        status = REEL_EXIT_ERROR;
    return status;
}
