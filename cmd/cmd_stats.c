#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "data/dataset.h"
#include "data/stats.h"

static void help(FILE *out)
{
    fprintf(out, "usage: reel stats DIR [--json]\n"
                 "\n"
                 "Describes the dataset in DIR: counts, time span, events "
                 "per type,\ntop categories, and interactions per user and "
                 "per video\n(quantiles).\n"
                 "\n"
                 "  --json      one JSON object, for machines\n"
                 "  -h, --help  this help\n");
}

int reel_cmd_stats(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int json = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            json = 1;
            break;
        case 'h':
            help(stdout);
            return REEL_EXIT_OK;
        default:
            return reel_cmd_usage_error("stats", "unknown option '%s'",
                                        argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return reel_cmd_usage_error("stats", "expected one data directory");
    reel_dataset *ds;
    reel_diag d;
    reel_diag_clear(&d);
    if (reel_dataset_open(argv[optind], &ds, &d)) {
        return reel_cmd_fail_diag("stats", &d);
    }
    reel_stats s;
    reel_stats_compute(ds, &s);
    if (json)
        reel_stats_print_json(ds, &s, stdout);
    else
        reel_stats_print(ds, &s, stdout);
    reel_dataset_close(ds);
    return REEL_EXIT_OK;
}
