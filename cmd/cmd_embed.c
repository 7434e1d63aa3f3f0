#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "cmd.h"
#include "data/dataset.h"
#include "data/interactions.h"
#include "embed/als.h"
#include "embed/coldstart.h"
#include "embed/item2vec.h"
#include "embed/vectors.h"

static void help(FILE *out)
{
    fprintf(out,
            "usage: reel embed DIR [--method item2vec|als] [--out FILE]\n"
            "                      [--dim 64] [--epochs 5] [--window 50] "
            "[--negatives 5]\n"
            "                      [--prior 0.06] [--cold [--content FILE] "
            "[--cold-lambda 10]]\n"
            "                      [--min-count 1] [--iterations 15] "
            "[--alpha 10]\n"
            "                      [--lambda 50]\n"
            "                      [--seed 42] [--threads N]\n"
            "       reel embed DIR --clip MODEL_DIR [--frames 8] "
            "[--text-weight 0.3]\n"
            "                      [--batch 8] [--threads N] [--out FILE]\n"
            "\n"
            "Learns item vectors from the viewing logs in DIR and writes "
            "them\n(docs/formats/vectors.md) to FILE, by default "
            "DIR/vectors/METHOD.reel.\n"
            "\n"
            "  item2vec  skip-gram with negative sampling over each user's\n"
            "            time-ordered videos (--epochs, --window, "
            "--negatives,\n"
            "            --min-count); deterministic with --threads 1; "
            "--prior W\n"
            "            appends W * ln(popularity) as a last coordinate "
            "(0: none)\n"
            "  als       implicit-feedback ALS (--iterations, --alpha)\n"
            "\n"
            "--cold gives every video without views a vector too: a ridge "
            "map\n(--cold-lambda) from content into the learned space, "
            "fitted on the\nvideos that have both. Content is a vectors "
            "file (--content, e.g.\nCLIP), else catalogue features "
            "(categories, language, type,\nduration, year, title words).\n"
            "\n"
            "--concat A,B writes the concatenation of two vectors files "
            "(rows side by\nside; a video lacking either has none) to "
            "--out instead of learning.\n"
            "\n"
            "--clip MODEL_DIR embeds content with CLIP (a Hugging Face "
            "checkpoint:\nconfig.json, model.safetensors, vocab.json, "
            "merges.txt) into\nDIR/vectors/clip.reel: up to --frames key "
            "frames of each video's media\n(FFmpeg; relative paths are "
            "under DIR) and its title and description;\nthe vector is the "
            "normalised mean, the text weighted by --text-weight.\nVideos "
            "without media get their text vector. Thumbnails of the chosen "
            "frames\ngo to DIR/thumbs/ID/ (docs/formats/frames.md). "
            "Interrupted runs resume\nfrom FILE.partial. Broken media is "
            "reported per file and counted.\n");
}

int reel_cmd_embed(int argc, char **argv)
{
    enum {
        O_METHOD = 256,
        O_OUT,
        O_DIM,
        O_EPOCHS,
        O_WINDOW,
        O_NEG,
        O_MINC,
        O_ITER,
        O_ALPHA,
        O_SEED,
        O_THREADS,
        O_LAMBDA,
        O_PRIOR,
        O_COLD,
        O_CONTENT,
        O_COLD_LAMBDA,
        O_CONCAT,
        O_CLIP,
        O_FRAMES,
        O_TEXT_WEIGHT,
        O_BATCH
    };
    static const struct option opts[] = {
        {"method", required_argument, 0, O_METHOD},
        {"out", required_argument, 0, O_OUT},
        {"dim", required_argument, 0, O_DIM},
        {"epochs", required_argument, 0, O_EPOCHS},
        {"window", required_argument, 0, O_WINDOW},
        {"negatives", required_argument, 0, O_NEG},
        {"min-count", required_argument, 0, O_MINC},
        {"iterations", required_argument, 0, O_ITER},
        {"alpha", required_argument, 0, O_ALPHA},
        {"prior", required_argument, 0, O_PRIOR},
        {"cold", no_argument, 0, O_COLD},
        {"content", required_argument, 0, O_CONTENT},
        {"cold-lambda", required_argument, 0, O_COLD_LAMBDA},
        {"concat", required_argument, 0, O_CONCAT},
        {"clip", required_argument, 0, O_CLIP},
        {"frames", required_argument, 0, O_FRAMES},
        {"text-weight", required_argument, 0, O_TEXT_WEIGHT},
        {"batch", required_argument, 0, O_BATCH},
        {"seed", required_argument, 0, O_SEED},
        {"threads", required_argument, 0, O_THREADS},
        {"lambda", required_argument, 0, O_LAMBDA},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    reel_item2vec_opts io = reel_item2vec_opts_default();
    reel_als_opts ao = reel_als_opts_default();
    int als = 0, c;
    const char *out = NULL, *content_path = NULL;
    int cold = 0;
    const char *concat = NULL;
    double cold_lambda = 10;
    uint64_t v;
    reel_cmd_clip_opts co = {NULL, 8, 0.3, 8, 1};
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_METHOD:
            if (!strcmp(optarg, "als"))
                als = 1;
            else if (strcmp(optarg, "item2vec"))
                return reel_cmd_usage_error(
                    "embed", "unknown method '%s' (item2vec, als)", optarg);
            break;
        case O_OUT:
            out = optarg;
            break;
        case O_SEED:
            if (reel_cmd_parse_u64(optarg, 0, UINT64_MAX, &v))
                return reel_cmd_usage_error("embed", "bad --seed '%s'", optarg);
            io.seed = ao.seed = v;
            break;
        case O_LAMBDA:
            if (reel_cmd_parse_double(optarg, 1e-6, 1e6, &ao.lambda))
                return reel_cmd_usage_error("embed", "bad --lambda '%s'",
                                            optarg);
            break;
        case O_CONCAT:
            concat = optarg;
            break;
        case O_CLIP:
            co.model = optarg;
            break;
        case O_FRAMES:
            if (reel_cmd_parse_u64(optarg, 0, 64, &v))
                return reel_cmd_usage_error(
                    "embed", "--frames must be in 0..64, not '%s'", optarg);
            co.frames = (uint32_t)v;
            break;
        case O_BATCH:
            if (reel_cmd_parse_u64(optarg, 1, 1024, &v))
                return reel_cmd_usage_error(
                    "embed", "--batch must be in 1..1024, not '%s'", optarg);
            co.batch = (uint32_t)v;
            break;
        case O_TEXT_WEIGHT:
            if (reel_cmd_parse_double(optarg, 0, 1, &co.text_weight))
                return reel_cmd_usage_error(
                    "embed", "--text-weight must be in 0..1, not '%s'", optarg);
            break;
        case O_COLD:
            cold = 1;
            break;
        case O_CONTENT:
            content_path = optarg;
            cold = 1;
            break;
        case O_COLD_LAMBDA:
            if (reel_cmd_parse_double(optarg, 1e-6, 1e9, &cold_lambda))
                return reel_cmd_usage_error("embed", "bad --cold-lambda '%s'",
                                            optarg);
            break;
        case O_PRIOR:
            if (reel_cmd_parse_double(optarg, 0, 10, &io.prior))
                return reel_cmd_usage_error("embed", "bad --prior '%s' (0..10)",
                                            optarg);
            break;
        case O_ALPHA:
            if (reel_cmd_parse_double(optarg, 0, 1e6, &ao.alpha))
                return reel_cmd_usage_error("embed", "bad --alpha '%s'",
                                            optarg);
            break;
        case O_DIM:
        case O_EPOCHS:
        case O_WINDOW:
        case O_NEG:
        case O_MINC:
        case O_ITER:
        case O_THREADS:
            if (reel_cmd_parse_u64(optarg, c == O_NEG ? 0 : 1,
                                   c == O_DIM ? 1024 : 1000, &v))
                return reel_cmd_usage_error("embed", "bad value '%s' for %s",
                                            optarg, argv[optind - 2]);
            if (c == O_DIM)
                io.dim = ao.dim = (uint32_t)v;
            else if (c == O_EPOCHS)
                io.epochs = (uint32_t)v;
            else if (c == O_WINDOW)
                io.window = (uint32_t)v;
            else if (c == O_NEG)
                io.negatives = (uint32_t)v;
            else if (c == O_MINC)
                io.min_count = (uint32_t)v;
            else if (c == O_ITER)
                ao.iterations = (uint32_t)v;
            else
                io.threads = ao.threads = (int)v;
            break;
        case 'h':
            help(stdout);
            return REEL_EXIT_OK;
        default:
            return reel_cmd_usage_error("embed",
                                        "unknown or incomplete "
                                        "option '%s'",
                                        argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return reel_cmd_usage_error("embed", "expected one data directory");
    const char *dir = argv[optind];
    char path[4096];
    if (!out) {
        snprintf(path, sizeof path, "%s/vectors", dir);
        if (mkdir(path, 0755) && errno != EEXIST)
            return reel_cmd_fail("embed", "cannot create %s: %s", path,
                                 strerror(errno));
        snprintf(path, sizeof path, "%s/vectors/%s.reel", dir,
                 co.model ? "clip"
                 : concat ? "concat"
                 : als    ? "als"
                          : "item2vec");
        out = path;
    }
    if (co.model) {
        co.threads =
            io.threads > 0 ? io.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
        return reel_cmd_embed_clip(dir, out, &co);
    }
    reel_diag d;
    reel_diag_clear(&d);
    reel_dataset *ds;
    if (reel_dataset_open(dir, &ds, &d)) {
        return reel_cmd_fail_diag("embed", &d);
    }
    if (concat) {
        const char *comma = strchr(concat, ',');
        if (!comma || comma == concat || !comma[1]) {
            reel_dataset_close(ds);
            return reel_cmd_usage_error("embed", "--concat wants A,B");
        }
        char *a_path = strndup(concat, (size_t)(comma - concat));
        reel_vectors *a = NULL, *b = NULL, *cv;
        int bad = reel_vectors_load(a_path, ds, &a, &d) ||
                  reel_vectors_load(comma + 1, ds, &b, &d);
        free(a_path);
        if (!bad) {
            reel_vectors_concat(a, b, &cv);
            bad = reel_vectors_save(cv, ds, out, &d) != 0;
            if (!bad)
                printf("concat: dim %u + %u = %u -> %s\n", a->dim, b->dim,
                       cv->dim, out);
            reel_vectors_free(cv);
        }
        reel_vectors_free(a);
        reel_vectors_free(b);
        reel_dataset_close(ds);
        return bad ? reel_cmd_fail_diag("embed", &d) : REEL_EXIT_OK;
    }
    double t0 = reel_clock_mono();
    reel_inter x;
    reel_inter_build(ds, NULL, &x);
    reel_progress p;
    reel_vectors *vec = NULL;
    int rc = als ? reel_als_train(&x, &ao, &p, &vec)
                 : reel_item2vec_train(&x, &io, &p, &vec);
    reel_inter_free(&x);
    if (rc) {
        reel_dataset_close(ds);
        return reel_cmd_fail("embed",
                             "training failed: %s (no interactions "
                             "or bad options)",
                             reel_strerror(rc));
    }
    uint32_t filled = 0;
    if (cold) {
        reel_vectors *content = NULL;
        if (content_path && reel_vectors_load(content_path, ds, &content, &d)) {
            reel_vectors_free(vec);
            reel_dataset_close(ds);
            return reel_cmd_fail_diag("embed", &d);
        }
        rc = reel_cold_fill(ds, content, vec, cold_lambda, &filled);
        reel_vectors_free(content);
        if (rc) {
            reel_vectors_free(vec);
            reel_dataset_close(ds);
            return reel_cmd_fail("embed", "cold-start map failed: %s",
                                 reel_strerror(rc));
        }
    }
    rc = reel_vectors_save(vec, ds, out, &d);
    uint32_t have = 0;
    for (uint32_t i = 0; i < vec->n; i++)
        have += vec->has[i];
    printf("%s: %u of %u videos (%u by the cold-start map), dim %u, in "
           "%.1fs -> %s\n",
           als ? "als" : "item2vec", have, vec->n, filled, vec->dim,
           reel_clock_mono() - t0, out);
    reel_vectors_free(vec);
    reel_dataset_close(ds);
    if (rc) {
        return reel_cmd_fail_diag("embed", &d);
    }
    return REEL_EXIT_OK;
}
