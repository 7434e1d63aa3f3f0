/* reel build: everything the server loads, from the data directory, with
 * defaults: item vectors (+ cold-start vectors for videos without views),
 * the HNSW index over them, and the ranker. */
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
#include "embed/coldstart.h"
#include "embed/item2vec.h"
#include "embed/vectors.h"
#include "index/index.h"
#include "rank/features.h"
#include "rank/ranker.h"
#include "rank/trainset.h"

static void help(FILE *out)
{
    fprintf(
        out,
        "usage: reel build DIR [--label watch30|click|like] "
        "[--ranker xgboost|mlp]\n"
        "                  [--query-decay D] [--threads N] [--content FILE]\n"
        "\n"
        "Builds what `reel serve DIR` loads, with defaults:\n"
        "  DIR/vectors/item2vec.reel  item2vec vectors learned from the "
        "events, and\n"
        "                             for videos without views, vectors "
        "from the\n"
        "                             cold-start map: from content "
        "vectors\n"
        "                             (--content FILE, by default "
        "DIR/vectors/clip.reel\n"
        "                             when `reel embed --clip` wrote it), "
        "else from\n"
        "                             catalogue features\n"
        "  DIR/index/item2vec.idx     the HNSW index over them\n"
        "  DIR/models/ranker.json     the ranker (reel train), or "
        "ranker-mlp.reel\n"
        "Each step is also a command of its own: reel embed, reel index "
        "build,\nreel train. --query-decay D trains the ranker on "
        "recency-weighted queries\n(reel train); serve with the same "
        "reco.recency_decay (docs/config.md).\n");
}

static int mkdir_in(const char *dir, const char *sub, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", dir, sub);
    if (mkdir(path, 0755) && errno != EEXIST)
        return reel_cmd_fail("build", "cannot create %s: %s", path,
                             strerror(errno));
    return 0;
}

int reel_cmd_build(int argc, char **argv)
{
    enum { O_LABEL = 256, O_RANKER, O_DECAY, O_THREADS, O_CONTENT };
    static const struct option opts[] = {
        {"label", required_argument, 0, O_LABEL},
        {"ranker", required_argument, 0, O_RANKER},
        {"query-decay", required_argument, 0, O_DECAY},
        {"threads", required_argument, 0, O_THREADS},
        {"content", required_argument, 0, O_CONTENT},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    reel_trainset_opts to = reel_trainset_opts_default();
    reel_ranker_opts ro = reel_ranker_opts_default();
    reel_item2vec_opts io = reel_item2vec_opts_default();
    uint64_t v;
    int c, rc;
    const char *content_path = NULL;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_LABEL:
        case O_RANKER:
        case O_DECAY:
            if ((rc = reel_cmd_ranker_option("build",
                                             c == O_LABEL ? REEL_CMD_LABEL
                                             : c == O_RANKER
                                                 ? REEL_CMD_RANKER
                                                 : REEL_CMD_QUERY_DECAY,
                                             optarg, &to, &ro)))
                return rc;
            break;
        case O_THREADS:
            if (reel_cmd_parse_u64(optarg, 1, 256, &v))
                return reel_cmd_usage_error("build", "bad --threads '%s'",
                                            optarg);
            io.threads = (int)v;
            break;
        case O_CONTENT:
            content_path = optarg;
            break;
        case 'h':
            help(stdout);
            return REEL_EXIT_OK;
        default:
            return reel_cmd_usage_error(
                "build", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return reel_cmd_usage_error("build", "expected one data directory");
    const char *dir = argv[optind];
    double t0 = reel_clock_mono();
    reel_diag d;
    reel_diag_clear(&d);
    reel_dataset *ds;
    if (reel_dataset_open(dir, &ds, &d))
        return reel_cmd_fail_diag("build", &d);
    char path[4096];
    if ((rc = mkdir_in(dir, "vectors", path, sizeof path)) ||
        (rc = mkdir_in(dir, "index", path, sizeof path)) ||
        (rc = mkdir_in(dir, "models", path, sizeof path))) {
        reel_dataset_close(ds);
        return rc;
    }
    /* 1. vectors, and the cold-start map for videos without views. */
    reel_inter x;
    reel_inter_build(ds, NULL, &x);
    reel_progress p;
    reel_vectors *vec = NULL;
    rc = reel_item2vec_train(&x, &io, &p, &vec);
    reel_inter_free(&x);
    if (rc) {
        reel_dataset_close(ds);
        return reel_cmd_fail("build", "item2vec failed: %s (no events?)",
                             reel_strerror(rc));
    }
    uint32_t filled = 0;
    /* the content the cold-start map starts from: CLIP vectors when
     * reel embed --clip wrote them (or --content names a file), else the
     * catalogue's features */
    char cpath[4096];
    if (!content_path) {
        snprintf(cpath, sizeof cpath, "%s/vectors/clip.reel", dir);
        if (!access(cpath, R_OK))
            content_path = cpath;
    }
    reel_vectors *content = NULL;
    if (content_path && reel_vectors_load(content_path, ds, &content, &d)) {
        reel_vectors_free(vec);
        reel_dataset_close(ds);
        return reel_cmd_fail_diag("build", &d);
    }
    rc = reel_cold_fill(ds, content, vec, 10, &filled);
    reel_vectors_free(content);
    if (rc)
        fprintf(stderr,
                "reel build: cold-start map skipped (%s); videos without "
                "views have no vector\n",
                reel_strerror(rc));
    snprintf(path, sizeof path, "%s/vectors/item2vec.reel", dir);
    if (reel_vectors_save(vec, ds, path, &d))
        goto fail_diag;
    uint32_t have = 0;
    for (uint32_t i = 0; i < vec->n; i++)
        have += vec->has[i];
    printf("vectors: %u of %u videos (%u by the cold-start map from %s), dim "
           "%u -> %s\n",
           have, vec->n, filled,
           content_path ? content_path : "catalogue features", vec->dim, path);
    /* 2. the index. */
    reel_index *ix;
    if (reel_retrieve_index(vec, &ix, &d))
        goto fail_diag;
    snprintf(path, sizeof path, "%s/index/item2vec.idx", dir);
    if (reel_index_save(ix, path, &d)) {
        reel_index_free(ix);
        goto fail_diag;
    }
    printf("index: %u videos -> %s\n", have, path);
    /* 3. the ranker. */
    reel_trainset_stats st;
    reel_ranker_report rep;
    rc = reel_cmd_train_ranker("build", dir, ds, vec, ix, &to, &ro, &st, &rep,
                               path, sizeof path);
    reel_index_free(ix);
    if (rc) {
        reel_vectors_free(vec);
        reel_dataset_close(ds);
        return rc;
    }
    printf("ranker: %s on %llu rows, validation AUC %.4f (popularity alone "
           "%.4f) -> %s\n",
           reel_ranker_kind_name(ro.kind), (unsigned long long)st.rows,
           rep.valid_auc, rep.popularity_auc, path);
    printf("built %s in %.1fs\n", dir, reel_clock_mono() - t0);
    reel_vectors_free(vec);
    reel_dataset_close(ds);
    return REEL_EXIT_OK;
fail_diag:
    reel_vectors_free(vec);
    reel_dataset_close(ds);
    return reel_cmd_fail_diag("build", &d);
}
