/*
 * reel synth: simulates a streaming service and writes DIR/dataset.reel and
 * DIR/truth.reel (the model in docs/synth.md).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "cmd.h"
#include "data/synth.h"

static void help(FILE *out)
{
    reel_synth_opts o = reel_synth_opts_default();
    fprintf(out,
            "usage: reel synth DIR [--users N] [--videos M] [--days D]\n"
            "                      [--seed S] [--threads T] "
            "[--start YYYY-MM-DD]\n"
            "\n"
            "Simulates a video streaming service and writes a dataset "
            "(catalogue,\nusers, impressions, clicks, plays, watches, skips, "
            "likes, shares)\ninto DIR/dataset.reel, and the model that "
            "generated it (every user's\ntrue tastes, every video's latent "
            "attributes) into DIR/truth.reel.\nThe output depends only on "
            "the options, never on --threads.\nA user-day makes about 16 "
            "events; memory is about 85 bytes per event.\n"
            "\n"
            "  --users N          users, 1..%d (default %u)\n"
            "  --videos M         videos, 1..%d (default %u)\n"
            "  --days D           simulated days, 1..%d (default %u);\n"
            "                     users x days at most %llu\n"
            "  --seed S           random seed (default %llu)\n"
            "  --threads T        worker threads, 0 = one per CPU "
            "(default 0)\n"
            "  --start YYYY-MM-DD first simulated day, UTC (default "
            "2024-01-01)\n"
            "  -h, --help         this help\n"
            "\n"
            "Exit status: 0 success, 1 runtime error, 2 usage error.\n",
            REEL_SYNTH_MAX_USERS, o.n_users, REEL_SYNTH_MAX_VIDEOS, o.n_videos,
            REEL_SYNTH_MAX_DAYS, o.days, REEL_SYNTH_MAX_USER_DAYS,
            (unsigned long long)o.seed);
}

int reel_cmd_synth(int argc, char **argv)
{
    enum { O_USERS = 256, O_VIDEOS, O_DAYS, O_SEED, O_THREADS, O_START };
    static const struct option longopts[] = {
        {"users", required_argument, 0, O_USERS},
        {"videos", required_argument, 0, O_VIDEOS},
        {"days", required_argument, 0, O_DAYS},
        {"seed", required_argument, 0, O_SEED},
        {"threads", required_argument, 0, O_THREADS},
        {"start", required_argument, 0, O_START},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    reel_synth_opts o = reel_synth_opts_default();
    uint64_t x;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            help(stdout);
            return REEL_EXIT_OK;
        case O_USERS:
            if (reel_cmd_parse_u64(optarg, 1, REEL_SYNTH_MAX_USERS, &x))
                return reel_cmd_usage_error(
                    "synth", "--users must be a number in 1..%d, not '%s'",
                    REEL_SYNTH_MAX_USERS, optarg);
            o.n_users = (uint32_t)x;
            break;
        case O_VIDEOS:
            if (reel_cmd_parse_u64(optarg, 1, REEL_SYNTH_MAX_VIDEOS, &x))
                return reel_cmd_usage_error(
                    "synth", "--videos must be a number in 1..%d, not '%s'",
                    REEL_SYNTH_MAX_VIDEOS, optarg);
            o.n_videos = (uint32_t)x;
            break;
        case O_DAYS:
            if (reel_cmd_parse_u64(optarg, 1, REEL_SYNTH_MAX_DAYS, &x))
                return reel_cmd_usage_error(
                    "synth", "--days must be a number in 1..%d, not '%s'",
                    REEL_SYNTH_MAX_DAYS, optarg);
            o.days = (uint32_t)x;
            break;
        case O_SEED:
            if (reel_cmd_parse_u64(optarg, 0, UINT64_MAX, &x))
                return reel_cmd_usage_error(
                    "synth", "--seed must be an unsigned number, not '%s'",
                    optarg);
            o.seed = x;
            break;
        case O_THREADS:
            if (reel_cmd_parse_u64(optarg, 0, REEL_SYNTH_MAX_THREADS, &x))
                return reel_cmd_usage_error(
                    "synth", "--threads must be a number in 0..%d, not '%s'",
                    REEL_SYNTH_MAX_THREADS, optarg);
            o.threads = (int)x;
            break;
        case O_START:
            if (reel_clock_parse(optarg, strlen(optarg), &o.start_ts))
                return reel_cmd_usage_error(
                    "synth",
                    "--start must be a date YYYY-MM-DD in 1900..2099, "
                    "not '%s'",
                    optarg);
            break;
        case ':':
            return reel_cmd_usage_error("synth", "option '%s' needs a value",
                                        argv[optind - 1]);
        default:
            return reel_cmd_usage_error("synth", "unknown option '%s'",
                                        argv[optind - 1]);
        }
    }
    if (optind == argc)
        return reel_cmd_usage_error("synth", "expected a data directory");
    if (optind != argc - 1)
        return reel_cmd_usage_error("synth",
                                    "expected one data directory, "
                                    "got '%s' too",
                                    argv[optind + 1]);
    if ((uint64_t)o.n_users * o.days > REEL_SYNTH_MAX_USER_DAYS)
        return reel_cmd_usage_error(
            "synth",
            "%u users x %u days is more than %llu user-days (the dataset "
            "holds fewer than 2^32 events)",
            o.n_users, o.days, REEL_SYNTH_MAX_USER_DAYS);
    const char *dir = argv[optind];
    double t0 = reel_clock_mono();
    reel_synth_stats st;
    reel_diag d;
    reel_diag_clear(&d);
    if (reel_synth_run_stats(&o, dir, &st, &d)) {
        return reel_cmd_fail_diag("synth", &d);
    }
    printf("synth: %u users, %u videos, %llu events (%llu lists, %llu "
           "clicks, %llu watches) in %.1f s -> %s\n",
           o.n_users, o.n_videos, (unsigned long long)st.n_events,
           (unsigned long long)st.n_lists,
           (unsigned long long)st.n_by_type[REEL_EV_CLICK],
           (unsigned long long)st.n_by_type[REEL_EV_WATCH],
           reel_clock_mono() - t0, dir);
    return REEL_EXIT_OK;
}
