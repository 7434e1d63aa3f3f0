#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "cmd.h"
#include "data/dataset.h"
#include "embed/vectors.h"
#include "eval/eval.h"

static void help(FILE *out)
{
    fprintf(out,
            "usage: reel eval DIR --protocol P [--k 10] [--method M] [--json]\n"
            "                 [--seed 42] [--history N] [--query-decay 1]\n"
            "                 [--replay-train 0.8] [--embedding item2vec|als]\n"
            "                 [--dim 64] [--epochs 5]"
            " [--window 50] [--negatives 5]\n"
            "                 [--prior 0.06] [--cold-lambda 10] "
            "[--ranker xgboost|mlp]\n"
            "                 [--cold-share 0.1] [--threads N]"
            " [--lambda 50] [--alpha 10]\n"
            "\n"
            "Evaluates recommendation methods offline on the dataset in DIR.\n"
            "\n"
            "protocols:\n"
            "  random-75-25    per-user random 75/25 split (--seed); "
            "precision@k,\n"
            "                  recall@k, NDCG@k, MAP@k, MRR over all unseen "
            "videos\n"
            "  leave-last-out  each user's last interaction is the target; "
            "HR@k,\n"
            "                  NDCG@k, MRR\n"
            "  replay          events after a time cut (--replay-train: "
            "share before\n"
            "                  it) replayed in order, a request before each; "
            "HR@k,\n"
            "                  NDCG@k, MRR, latency\n"
            "  cold-start      10%% of the videos (seeded, --cold-share) held "
            "out of\n"
            "                  training entirely; ann maps them in from "
            "catalogue\n"
            "                  features (ridge); each user's held-out videos "
            "ranked\n"
            "                  among them\n"
            "  cold-users      10%% of the users (seeded, --cold-share) held "
            "out of\n"
            "                  training entirely; each is asked for with no "
            "history,\n"
            "                  only demographics; all their positive videos "
            "are targets\n"
            "methods (unless --method: popular, itemknn, ann, full; under "
            "cold-users\n"
            "  popular, trending, segment, the ones that need no history):\n"
            "  popular, trending (positives decayed, half-life one day),\n"
            "  segment (the server's cold start: the popular list of the "
            "user's\n"
            "  age x gender segment round-robin with popular), itemknn, ann "
            "(item2vec\n"
            "  vectors with a popularity prior (--prior), or --embedding als;\n"
            "  the mean of the last --history videos (default 10; the whole\n"
            "  training profile under random-75-25) queries an HNSW index;\n"
            "  --query-decay D < 1 weighs the i-th newest D^i instead),\n"
            "  full (ann's 200 candidates ordered by the ranker, --ranker,\n"
            "  trained on the training events only)\n"
            "\n"
            "--vectors FILE gives ann and full these vectors instead of "
            "learning them\n(content vectors, a concatenation; vectors "
            "learned from every event\nknow the test split).\n"
            "\n"
            "Embedding training is multi-threaded (Hogwild) and so varies a\n"
            "little between runs; --threads 1 makes a run reproducible.\n"
            "\n"
            "Writes DIR/reports/eval-PROTOCOL.{json,md,svg} (the svg plots "
            "recall@k\nfor k = 1..50) and prints a table, or JSON with "
            "--json.\n");
}

int reel_cmd_eval(int argc, char **argv)
{
    enum {
        O_PROTO = 256,
        O_K,
        O_METHOD,
        O_JSON,
        O_SEED,
        O_HIST,
        O_REPLAY,
        O_DIM,
        O_EPOCHS,
        O_WINDOW,
        O_NEG,
        O_EMB,
        O_LAMBDA,
        O_ALPHA,
        O_PRIOR,
        O_COLD_LAMBDA,
        O_THREADS,
        O_RANKER,
        O_VECTORS,
        O_DECAY,
        O_COLD_SHARE
    };
    static const struct option opts[] = {
        {"protocol", required_argument, 0, O_PROTO},
        {"k", required_argument, 0, O_K},
        {"method", required_argument, 0, O_METHOD},
        {"json", no_argument, 0, O_JSON},
        {"seed", required_argument, 0, O_SEED},
        {"history", required_argument, 0, O_HIST},
        {"query-decay", required_argument, 0, O_DECAY},
        {"replay-train", required_argument, 0, O_REPLAY},
        {"dim", required_argument, 0, O_DIM},
        {"epochs", required_argument, 0, O_EPOCHS},
        {"window", required_argument, 0, O_WINDOW},
        {"negatives", required_argument, 0, O_NEG},
        {"embedding", required_argument, 0, O_EMB},
        {"lambda", required_argument, 0, O_LAMBDA},
        {"alpha", required_argument, 0, O_ALPHA},
        {"prior", required_argument, 0, O_PRIOR},
        {"cold-lambda", required_argument, 0, O_COLD_LAMBDA},
        {"cold-share", required_argument, 0, O_COLD_SHARE},
        {"threads", required_argument, 0, O_THREADS},
        {"ranker", required_argument, 0, O_RANKER},
        {"vectors", required_argument, 0, O_VECTORS},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    reel_eval_opts o = reel_eval_opts_default();
    int json = 0, have_proto = 0, c;
    const char *vec_path = NULL;
    uint64_t v;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_PROTO:
            if (reel_protocol_parse(optarg, &o.protocol))
                return reel_cmd_usage_error(
                    "eval",
                    "unknown protocol '%s' (random-75-25, leave-last-out, "
                    "replay, cold-start, cold-users)",
                    optarg);
            have_proto = 1;
            break;
        case O_K:
            if (reel_cmd_parse_u64(optarg, 1, REEL_EVAL_KMAX, &v))
                return reel_cmd_usage_error("eval", "--k must be in 1..%d",
                                            REEL_EVAL_KMAX);
            o.k = (uint32_t)v;
            break;
        case O_METHOD: {
            enum reel_method m;
            if (reel_method_parse(optarg, &m))
                return reel_cmd_usage_error(
                    "eval",
                    "unknown method '%s' (popular, itemknn, ann, full, "
                    "trending, segment)",
                    optarg);
            o.methods |= 1u << m;
            break;
        }
        case O_JSON:
            json = 1;
            break;
        case O_EMB:
            if (!strcmp(optarg, "item2vec"))
                o.embedding = 0;
            else if (!strcmp(optarg, "als"))
                o.embedding = 1;
            else
                return reel_cmd_usage_error(
                    "eval", "unknown embedding '%s' (item2vec, als)", optarg);
            break;
        case O_SEED:
            if (reel_cmd_parse_u64(optarg, 0, UINT64_MAX, &o.seed))
                return reel_cmd_usage_error("eval", "bad --seed '%s'", optarg);
            break;
        case O_HIST:
            if (reel_cmd_parse_u64(optarg, 1, 1000, &v))
                return reel_cmd_usage_error("eval",
                                            "--history must be in 1..1000");
            o.history_n = (uint32_t)v;
            break;
        case O_DECAY: {
            double x;
            if (reel_cmd_parse_double(optarg, 0, 1, &x) || !(x > 0))
                return reel_cmd_usage_error(
                    "eval", "--query-decay must be in (0, 1], not '%s'",
                    optarg);
            o.recency_decay = (float)x;
            break;
        }
        case O_LAMBDA:
            if (reel_cmd_parse_double(optarg, 1e-6, 1e6, &o.als.lambda))
                return reel_cmd_usage_error("eval", "bad --lambda '%s'",
                                            optarg);
            break;
        case O_THREADS:
            if (reel_cmd_parse_u64(optarg, 1, 256, &v))
                return reel_cmd_usage_error("eval", "bad --threads '%s'",
                                            optarg);
            o.i2v.threads = o.als.threads = (int)v;
            break;
        case O_VECTORS:
            vec_path = optarg;
            break;
        case O_RANKER:
            if (reel_ranker_kind_parse(optarg, &o.ranker.kind))
                return reel_cmd_usage_error(
                    "eval", "unknown ranker '%s' (xgboost, mlp)", optarg);
            break;
        case O_COLD_LAMBDA:
            if (reel_cmd_parse_double(optarg, 1e-6, 1e9, &o.cold_lambda))
                return reel_cmd_usage_error("eval", "bad --cold-lambda '%s'",
                                            optarg);
            break;
        case O_COLD_SHARE: {
            double x;
            if (reel_cmd_parse_double(optarg, 0, 1, &x) || !(x > 0 && x < 1))
                return reel_cmd_usage_error(
                    "eval", "--cold-share must be in (0, 1), not '%s'", optarg);
            o.cold_share = x;
            break;
        }
        case O_PRIOR:
            if (reel_cmd_parse_double(optarg, 0, 10, &o.i2v.prior))
                return reel_cmd_usage_error("eval", "bad --prior '%s' (0..10)",
                                            optarg);
            break;
        case O_ALPHA:
            if (reel_cmd_parse_double(optarg, 0, 1e6, &o.als.alpha))
                return reel_cmd_usage_error("eval", "bad --alpha '%s'", optarg);
            break;
        case O_REPLAY:
            if (reel_cmd_parse_double(optarg, 0.01, 0.99, &o.replay_train))
                return reel_cmd_usage_error(
                    "eval", "--replay-train must be in 0.01..0.99");
            break;
        case O_DIM:
        case O_EPOCHS:
        case O_WINDOW:
        case O_NEG:
            if (reel_cmd_parse_u64(optarg, c == O_NEG ? 0 : 1,
                                   c == O_DIM ? 1024 : 1000, &v))
                return reel_cmd_usage_error("eval", "bad value '%s' for %s",
                                            optarg, argv[optind - 2]);
            if (c == O_DIM)
                o.i2v.dim = o.als.dim = (uint32_t)v;
            else if (c == O_EPOCHS)
                o.i2v.epochs = (uint32_t)v;
            else if (c == O_WINDOW)
                o.i2v.window = (uint32_t)v;
            else
                o.i2v.negatives = (uint32_t)v;
            break;
        case 'h':
            help(stdout);
            return REEL_EXIT_OK;
        default:
            return reel_cmd_usage_error("eval",
                                        "unknown or incomplete "
                                        "option '%s'",
                                        argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return reel_cmd_usage_error("eval", "expected one data directory");
    if (!have_proto)
        return reel_cmd_usage_error("eval", "--protocol is required");
    const char *dir = argv[optind];
    reel_diag d;
    reel_diag_clear(&d);
    reel_dataset *ds;
    if (reel_dataset_open(dir, &ds, &d)) {
        return reel_cmd_fail_diag("eval", &d);
    }
    reel_vectors *given = NULL;
    if (vec_path) {
        if (reel_vectors_load(vec_path, ds, &given, &d)) {
            reel_dataset_close(ds);
            return reel_cmd_fail_diag("eval", &d);
        }
        o.vectors = given;
    }
    reel_eval_result res[REEL_METHOD__COUNT];
    uint32_t n;
    double t0 = reel_clock_mono();
    int rc = reel_eval_run(ds, &o, res, &n, &d);
    reel_vectors_free(given);
    reel_dataset_close(ds);
    if (rc) {
        return reel_cmd_fail_diag("eval", &d);
    }
    char rdir[4096], stem[64];
    snprintf(rdir, sizeof rdir, "%s/reports", dir);
    snprintf(stem, sizeof stem, "eval-%s", reel_protocol_name(o.protocol));
    if (reel_eval_write_report(&o, res, n, rdir, stem, &d)) {
        return reel_cmd_fail_diag("eval", &d);
    }
    if (json) {
        reel_eval_print_json(&o, res, n, stdout);
    } else {
        reel_eval_print(&o, res, n, stdout);
        printf("\n%.1fs; report: %s/%s.{md,json,svg}\n", reel_clock_mono() - t0,
               rdir, stem);
    }
    return REEL_EXIT_OK;
}
