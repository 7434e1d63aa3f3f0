#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "base/clock.h"
#include "cmd.h"
#include "data/dataset.h"
#include "data/import.h"

static void help(FILE *out)
{
    fprintf(out,
            "usage: reel import DIR [--videos F] [--users F] [--events F]\n"
            "                       [--skip-bad]\n"
            "       reel import DIR --movielens PATH [--skip-bad]\n"
            "\n"
            "Imports a dataset into the data directory DIR (created if "
            "needed),\nreplacing DIR/dataset.reel atomically: nothing is "
            "written unless\nthe whole import succeeds.\n"
            "\n"
            "  --videos F      catalogue, JSON Lines (docs/formats/jsonl.md)\n"
            "  --users F       users, JSON Lines\n"
            "  --events F      events, JSON Lines; without --videos the "
            "videos\n"
            "                  are created from the events' ids\n"
            "  --movielens P   a MovieLens directory: ml-100k (u.data, "
            "u.item,\n"
            "                  u.user) or ml-latest(-small) (ratings.csv, "
            "movies.csv)\n"
            "  --skip-bad      skip and count malformed lines instead of "
            "failing\n"
            "  -h, --help      this help\n"
            "\n"
            "A malformed line stops the import with 'file:line: reason'.\n");
}

int reel_cmd_import(int argc, char **argv)
{
    static const struct option opts[] = {
        {"videos", required_argument, 0, 'v'},
        {"users", required_argument, 0, 'u'},
        {"events", required_argument, 0, 'e'},
        {"movielens", required_argument, 0, 'm'},
        {"skip-bad", no_argument, 0, 's'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *videos = NULL, *users = NULL, *events = NULL, *ml = NULL;
    reel_import_opts io = {0};
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'v':
            videos = optarg;
            break;
        case 'u':
            users = optarg;
            break;
        case 'e':
            events = optarg;
            break;
        case 'm':
            ml = optarg;
            break;
        case 's':
            io.skip_bad = 1;
            break;
        case 'h':
            help(stdout);
            return REEL_EXIT_OK;
        default:
            return reel_cmd_usage_error("import",
                                        "unknown or incomplete "
                                        "option '%s'",
                                        argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return reel_cmd_usage_error("import", "expected one data directory");
    const char *dir = argv[optind];
    if (!ml && !videos && !users && !events)
        return reel_cmd_usage_error("import", "nothing to import: give "
                                              "--movielens or JSONL files");
    if (ml && (videos || users || events))
        return reel_cmd_usage_error("import", "--movielens cannot be "
                                              "combined with JSONL files");

    double t0 = reel_clock_mono();
    reel_dsbuild *b;
    reel_dsbuild_new(&b);
    reel_import_report r = {0};
    reel_diag d;
    reel_diag_clear(&d);
    int rc = 0;
    if (ml) {
        if (reel_movielens_detect(ml) == REEL_ML_NONE) {
            reel_dsbuild_free(b);
            return reel_cmd_fail("import",
                                 "%s: no MovieLens files (expected u.data, "
                                 "u.item, u.user or ratings.csv, movies.csv)",
                                 ml);
        }
        rc = reel_import_movielens(b, ml, &io, &r, &d);
    } else {
        json_t *meta = json_pack("{s:s}", "source", "jsonl");
        if (videos && !rc) {
            rc = reel_import_videos_jsonl(b, videos, &io, &r, &d);
            json_object_set_new(meta, "videos", json_string(videos));
        }
        if (users && !rc) {
            rc = reel_import_users_jsonl(b, users, &io, &r, &d);
            json_object_set_new(meta, "users", json_string(users));
        }
        if (events && !rc) {
            rc = reel_import_events_jsonl(b, events, &io, &r, &d);
            json_object_set_new(meta, "events", json_string(events));
        }
        char *text = json_dumps(meta, JSON_COMPACT);
        reel_dsbuild_set_meta(b, text);
        free(text);
        json_decref(meta);
    }
    if (rc) {
        reel_dsbuild_free(b);
        return reel_cmd_fail_diag("import", &d);
    }
    reel_diag_clear(&d);
    rc = reel_dsbuild_write(b, dir, &d);
    uint32_t nv = reel_dsbuild_n_videos(b), nu = reel_dsbuild_n_users(b);
    uint64_t ne = reel_dsbuild_n_events(b);
    reel_dsbuild_free(b);
    if (rc)
        return reel_cmd_fail_diag("import", &d);
    printf("imported %u videos, %u users, %llu events into %s in %.2fs", nv, nu,
           (unsigned long long)ne, dir, reel_clock_mono() - t0);
    if (r.n_skipped)
        printf(" (%llu malformed records skipped)",
               (unsigned long long)r.n_skipped);
    printf("\n");
    return REEL_EXIT_OK;
}
