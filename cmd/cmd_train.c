/* reel train (the ranker) and reel rank explain (why it scored a video). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "base/clock.h"
#include "cmd.h"
#include "data/dataset.h"
#include "data/interactions.h"
#include "embed/item2vec.h"
#include "embed/vectors.h"
#include "index/index.h"
#include "rank/features.h"
#include "rank/ranker.h"
#include "rank/trainset.h"

/* What both commands stand on: the dataset, its vectors (DIR/vectors/
 * item2vec.reel, learned now when missing) and an HNSW index over them. */
struct base {
    reel_dataset *ds;
    reel_vectors *vec;
    reel_index *ix;
};

static void base_close(struct base *b)
{
    reel_index_free(b->ix);
    reel_vectors_free(b->vec);
    reel_dataset_close(b->ds);
}

static int base_open(const char *cmd, const char *dir, const char *vec_path,
                     struct base *b)
{
    memset(b, 0, sizeof *b);
    reel_diag d;
    reel_diag_clear(&d);
    if (reel_dataset_open(dir, &b->ds, &d))
        return reel_cmd_fail_diag(cmd, &d);
    char path[4096];
    if (!vec_path) {
        snprintf(path, sizeof path, "%s/vectors/item2vec.reel", dir);
        struct stat st;
        if (stat(path, &st)) {
            fprintf(stderr,
                    "reel %s: %s not found; learning item2vec vectors "
                    "(reel embed DIR writes them)\n",
                    cmd, path);
            reel_inter x;
            reel_inter_build(b->ds, NULL, &x);
            reel_item2vec_opts io = reel_item2vec_opts_default();
            reel_progress p;
            int rc = reel_item2vec_train(&x, &io, &p, &b->vec);
            reel_inter_free(&x);
            if (rc) {
                base_close(b);
                return reel_cmd_fail(cmd, "item2vec failed: %s",
                                     reel_strerror(rc));
            }
            snprintf(path, sizeof path, "%s/vectors", dir);
            if (mkdir(path, 0755) && errno != EEXIST) {
                base_close(b);
                return reel_cmd_fail(cmd, "cannot create %s: %s", path,
                                     strerror(errno));
            }
            snprintf(path, sizeof path, "%s/vectors/item2vec.reel", dir);
            if (reel_vectors_save(b->vec, b->ds, path, &d)) {
                base_close(b);
                return reel_cmd_fail_diag(cmd, &d);
            }
        }
        vec_path = path;
    }
    if (!b->vec && reel_vectors_load(vec_path, b->ds, &b->vec, &d)) {
        base_close(b);
        return reel_cmd_fail_diag(cmd, &d);
    }
    if (reel_retrieve_index(b->vec, &b->ix, &d)) {
        base_close(b);
        return reel_cmd_fail_diag(cmd, &d);
    }
    return 0;
}

int reel_cmd_ranker_option(const char *cmd, enum reel_cmd_ranker_opt which,
                           const char *arg, reel_trainset_opts *to,
                           reel_ranker_opts *ro)
{
    double x;
    switch (which) {
    case REEL_CMD_LABEL:
        if (reel_label_parse(arg, &to->label, &to->watch_seconds))
            return reel_cmd_usage_error(
                cmd, "unknown label '%s' (watch30, click, like)", arg);
        break;
    case REEL_CMD_RANKER:
        if (reel_ranker_kind_parse(arg, &ro->kind))
            return reel_cmd_usage_error(
                cmd, "unknown ranker '%s' (xgboost, mlp)", arg);
        break;
    case REEL_CMD_QUERY_DECAY:
        if (reel_cmd_parse_double(arg, 0, 1, &x) || !(x > 0))
            return reel_cmd_usage_error(
                cmd, "bad --query-decay '%s' (0 < D <= 1)", arg);
        to->recency_decay = (float)x;
        break;
    }
    return 0;
}

int reel_cmd_train_ranker(const char *cmd, const char *dir,
                          const reel_dataset *ds, const reel_vectors *vec,
                          const reel_index *ix, const reel_trainset_opts *to,
                          const reel_ranker_opts *ro, reel_trainset_stats *st,
                          reel_ranker_report *rep, char *path, size_t cap)
{
    reel_featstate *fs;
    reel_featstate_new(ds, &fs);
    reel_rows rows;
    reel_rows_init(&rows, REEL_F__COUNT);
    reel_diag d;
    reel_diag_clear(&d);
    reel_progress p;
    int rc = reel_trainset_build(ds, NULL, vec, ix, to, fs, &rows, st, &p, &d);
    reel_featstate_free(fs);
    if (rc) {
        reel_rows_free(&rows);
        return reel_cmd_fail_diag(cmd, &d);
    }
    printf("rows: %llu from %s (%llu positive, %llu requests); skipped "
           "%llu without history, %llu not retrieved\n",
           (unsigned long long)st->rows,
           st->from_impressions ? "impressions" : "events + sampled negatives",
           (unsigned long long)st->positives, (unsigned long long)st->groups,
           (unsigned long long)st->skipped_no_history,
           (unsigned long long)st->skipped_not_retrieved);
    snprintf(path, cap, "%s/models", dir);
    if (mkdir(path, 0755) && errno != EEXIST) {
        reel_rows_free(&rows);
        return reel_cmd_fail(cmd, "cannot create %s: %s", path,
                             strerror(errno));
    }
    snprintf(path, cap, "%s/models/%s", dir, reel_ranker_file(ro->kind));
    reel_ranker *rk;
    rc = reel_ranker_train(&rows, ro, path, &p, &rk, rep, &d);
    reel_rows_free(&rows);
    if (rc)
        return reel_cmd_fail_diag(cmd, &d);
    reel_ranker_free(rk);
    return 0;
}

static void train_help(FILE *out)
{
    fprintf(out,
            "usage: reel train DIR [--label watch30|click|like] "
            "[--ranker xgboost|mlp]\n"
            "                  [--query-decay D]\n"
            "                  [--vectors FILE] [--candidates 200] "
            "[--negatives 9]\n"
            "                  [--max-rows 200000] [--trees 300] [--depth 6] "
            "[--eta 0.1]\n"
            "                  [--objective binary:logistic|rank:ndcg]\n"
            "\n"
            "Trains the ranker on the event log in DIR and writes it to\n"
            "DIR/models/ranker.json (XGBoost JSON) or "
            "DIR/models/ranker-mlp.reel.\n"
            "\n"
            "Rows (docs/features.md): every impression, labelled by whether "
            "a label\nevent followed within an hour; without impressions, "
            "each label event and\n--negatives videos sampled from the "
            "retrieval candidates at that time.\nFeatures are computed as "
            "of each event's time. The latest 10%% of rows\nvalidate "
            "(early stopping); AUC and log loss are reported beside "
            "the\nAUC of popularity alone.\n"
            "\n"
            "  --label     watch30 (a watch of 30 s or more; watchN for "
            "N s), click\n"
            "              (any positive event), like (like, share, rating "
            ">= 4)\n"
            "  --query-decay D  recency weight of the retrieval query (1: "
            "the mean of\n              the last 10 videos; serve with the "
            "same reco.recency_decay)\n"
            "  --vectors   item vectors for retrieval (default "
            "DIR/vectors/item2vec.reel,\n"
            "              learned now when missing)\n");
}

int reel_cmd_train(int argc, char **argv)
{
    enum {
        O_LABEL = 256,
        O_RANKER,
        O_DECAY,
        O_VECTORS,
        O_CAND,
        O_NEG,
        O_ROWS,
        O_TREES,
        O_DEPTH,
        O_ETA,
        O_OBJECTIVE
    };
    static const struct option opts[] = {
        {"label", required_argument, 0, O_LABEL},
        {"ranker", required_argument, 0, O_RANKER},
        {"query-decay", required_argument, 0, O_DECAY},
        {"vectors", required_argument, 0, O_VECTORS},
        {"candidates", required_argument, 0, O_CAND},
        {"negatives", required_argument, 0, O_NEG},
        {"max-rows", required_argument, 0, O_ROWS},
        {"trees", required_argument, 0, O_TREES},
        {"depth", required_argument, 0, O_DEPTH},
        {"eta", required_argument, 0, O_ETA},
        {"objective", required_argument, 0, O_OBJECTIVE},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    reel_trainset_opts to = reel_trainset_opts_default();
    reel_ranker_opts ro = reel_ranker_opts_default();
    const char *vec_path = NULL;
    uint64_t v;
    int c, rc;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_LABEL:
        case O_RANKER:
        case O_DECAY:
            if ((rc = reel_cmd_ranker_option("train",
                                             c == O_LABEL ? REEL_CMD_LABEL
                                             : c == O_RANKER
                                                 ? REEL_CMD_RANKER
                                                 : REEL_CMD_QUERY_DECAY,
                                             optarg, &to, &ro)))
                return rc;
            break;
        case O_VECTORS:
            vec_path = optarg;
            break;
        case O_CAND:
        case O_NEG:
        case O_ROWS:
        case O_TREES:
        case O_DEPTH:
            if (reel_cmd_parse_u64(optarg, c == O_NEG ? 1 : 2,
                                   c == O_ROWS ? 100000000 : 10000, &v))
                return reel_cmd_usage_error("train", "bad value '%s' for %s",
                                            optarg, argv[optind - 2]);
            if (c == O_CAND)
                to.candidates = (uint32_t)v;
            else if (c == O_NEG)
                to.negatives = (uint32_t)v;
            else if (c == O_ROWS)
                to.max_rows = v;
            else if (c == O_TREES)
                ro.xgb.n_trees = (uint32_t)v;
            else if (v > 16)
                return reel_cmd_usage_error("train", "--depth is 2..16");
            else
                ro.xgb.max_depth = (uint32_t)v;
            break;
        case O_OBJECTIVE:
            if (!strcmp(optarg, "binary:logistic"))
                ro.xgb.objective = REEL_XGB_BINARY_LOGISTIC;
            else if (!strcmp(optarg, "rank:ndcg"))
                ro.xgb.objective = REEL_XGB_RANK_NDCG;
            else
                return reel_cmd_usage_error(
                    "train",
                    "unknown objective '%s' (binary:logistic, rank:ndcg)",
                    optarg);
            break;
        case O_ETA:
            if (reel_cmd_parse_double(optarg, 1e-4, 1, &ro.xgb.eta))
                return reel_cmd_usage_error("train", "--eta is 0.0001..1");
            break;
        case 'h':
            train_help(stdout);
            return REEL_EXIT_OK;
        default:
            return reel_cmd_usage_error(
                "train", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return reel_cmd_usage_error("train", "expected one data directory");
    const char *dir = argv[optind];
    double t0 = reel_clock_mono();
    struct base b;
    if ((rc = base_open("train", dir, vec_path, &b)))
        return rc;
    char path[4096];
    reel_trainset_stats st;
    reel_ranker_report rep;
    rc = reel_cmd_train_ranker("train", dir, b.ds, b.vec, b.ix, &to, &ro, &st,
                               &rep, path, sizeof path);
    base_close(&b);
    if (rc)
        return rc;
    printf("%s: %u %s kept; validation (latest %zu rows, %zu positive): "
           "AUC %.4f, log loss %.4f; popularity alone AUC %.4f\n",
           reel_ranker_kind_name(ro.kind), rep.rounds,
           ro.kind == REEL_RANKER_MLP ? "epochs" : "trees", rep.valid_rows,
           rep.valid_pos, rep.valid_auc, rep.valid_logloss, rep.popularity_auc);
    printf("wrote %s in %.1fs\n", path, reel_clock_mono() - t0);
    return REEL_EXIT_OK;
}

static void explain_help(FILE *out)
{
    fprintf(out, "usage: reel rank explain DIR --user U --video V "
                 "[--model FILE] [--json]\n"
                 "\n"
                 "Computes the ranker's features for user U and video V as "
                 "of the last\nevent in DIR (the video's retrieval "
                 "similarity and rank included) and\nprints each "
                 "feature's value and its contribution to the score "
                 "(exact\nTreeSHAP over the XGBoost ranker, "
                 "DIR/models/ranker.json by default).\n");
}

int reel_cmd_rank(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "explain")) {
        if (argc >= 2 &&
            (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            explain_help(stdout);
            return REEL_EXIT_OK;
        }
        return reel_cmd_usage_error("rank", "expected 'explain'");
    }
    argc--;
    argv++;
    enum { O_USER = 256, O_VIDEO, O_MODEL, O_JSON };
    static const struct option opts[] = {
        {"user", required_argument, 0, O_USER},
        {"video", required_argument, 0, O_VIDEO},
        {"model", required_argument, 0, O_MODEL},
        {"json", no_argument, 0, O_JSON},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *user = NULL, *video = NULL, *model = NULL;
    int json = 0, c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_USER:
            user = optarg;
            break;
        case O_VIDEO:
            video = optarg;
            break;
        case O_MODEL:
            model = optarg;
            break;
        case O_JSON:
            json = 1;
            break;
        case 'h':
            explain_help(stdout);
            return REEL_EXIT_OK;
        default:
            return reel_cmd_usage_error(
                "rank", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1 || !user || !video)
        return reel_cmd_usage_error("rank", "expected DIR, --user and --video");
    const char *dir = argv[optind];
    char path[4096];
    if (!model) {
        snprintf(path, sizeof path, "%s/models/ranker.json", dir);
        model = path;
    }
    reel_diag d;
    reel_diag_clear(&d);
    reel_ranker *rk;
    if (reel_ranker_load(model, &rk, &d))
        return reel_cmd_fail_diag("rank", &d);
    if (!reel_ranker_trees(rk)) {
        reel_ranker_free(rk);
        return reel_cmd_fail("rank",
                             "%s: explanations need the XGBoost "
                             "ranker (reel train --ranker xgboost)",
                             model);
    }
    struct base b;
    int rc = base_open("rank", dir, NULL, &b);
    if (rc) {
        reel_ranker_free(rk);
        return rc;
    }
    uint32_t u = reel_dataset_find_user(b.ds, user, strlen(user));
    uint32_t vi = reel_dataset_find_video(b.ds, video, strlen(video));
    if (u == REEL_NONE || vi == REEL_NONE) {
        base_close(&b);
        reel_ranker_free(rk);
        return reel_cmd_fail("rank", "no %s '%s' in %s",
                             u == REEL_NONE ? "user" : "video",
                             u == REEL_NONE ? user : video, dir);
    }
    /* The state after every event, and the user's seen videos. */
    const reel_events *e = reel_dataset_events(b.ds);
    reel_featstate *fs;
    reel_featstate_new(b.ds, &fs);
    reel_featstate_apply_events(fs, 0, e->n, NULL);
    double now = e->n ? e->ts[e->n - 1] : 0;
    uint32_t *seen = malloc((e->n + 1) * sizeof *seen), n_seen = 0;
    for (uint64_t i = 0; i < e->n; i++)
        if (e->user[i] == u && reel_event_is_positive(e->type[i]))
            seen[n_seen++] = e->video[i];
    uint32_t recent[REEL_FEAT_RING];
    uint32_t n_recent = reel_featstate_recent(fs, u, recent);
    enum { K = 200, HIST = 10 };
    float *q = malloc(b.vec->dim * sizeof *q), sim[K];
    reel_hit hits[K];
    reel_filter f = {.exclude = seen, .n_exclude = n_seen};
    /* The query reel train's rows were retrieved with (the plain mean). */
    uint32_t nc = reel_retrieve(b.vec, b.ix, recent, n_recent, HIST, 1.0f, &f,
                                K, q, hits, sim);
    float s =
        nc ? reel_retrieve_sim_of(b.vec, b.ix, q, hits, sim, nc, vi) : NAN;
    float rank = reel_cand_rank(sim, nc, s);
    reel_cand_feats cf;
    reel_cand_ctx cc = {0};
    reel_cand_ctx_prepare(&cc, b.vec, recent, n_recent, HIST);
    reel_cand_feats_fill(&cc, vi, s, rank, &cf);
    reel_cand_ctx_free(&cc);
    float x[REEL_F__COUNT], phi[REEL_F__COUNT + 1], prob;
    reel_features_row(fs, u, vi, now, &cf, x);
    reel_gbtree_contrib(reel_ranker_trees(rk), x, phi);
    reel_ranker_score(rk, x, 1, REEL_F__COUNT, &prob);
    double margin = 0;
    for (int f = 0; f <= REEL_F__COUNT; f++)
        margin += phi[f];
    if (json) {
        json_t *o = json_object(), *fa = json_array();
        json_object_set_new(o, "user", json_string(user));
        json_object_set_new(o, "video", json_string(video));
        json_object_set_new(o, "score", json_real(prob));
        json_object_set_new(o, "margin", json_real(margin));
        json_object_set_new(o, "bias", json_real(phi[REEL_F__COUNT]));
        for (int f = 0; f < REEL_F__COUNT; f++) {
            json_t *fo = json_object();
            json_object_set_new(fo, "name", json_string(reel_feature_name(f)));
            json_object_set_new(fo, "value",
                                isfinite(x[f]) ? json_real(x[f]) : json_null());
            json_object_set_new(fo, "contribution", json_real(phi[f]));
            json_array_append_new(fa, fo);
        }
        json_object_set_new(o, "features", fa);
        json_dumpf(o, stdout, JSON_COMPACT | JSON_REAL_PRECISION(6));
        putchar('\n');
        json_decref(o);
    } else {
        printf("user %s, video %s: score %.4f (margin %.4f = bias %.4f + "
               "contributions)\n\n%-20s %12s %13s\n",
               user, video, prob, margin, phi[REEL_F__COUNT], "feature",
               "value", "contribution");
        int order[REEL_F__COUNT];
        for (int f = 0; f < REEL_F__COUNT; f++)
            order[f] = f;
        for (int i = 1; i < REEL_F__COUNT; i++) /* by |contribution| */
            for (int j = i;
                 j > 0 && fabsf(phi[order[j]]) > fabsf(phi[order[j - 1]]);
                 j--) {
                int t = order[j];
                order[j] = order[j - 1];
                order[j - 1] = t;
            }
        for (int i = 0; i < REEL_F__COUNT; i++) {
            int f = order[i];
            if (isfinite(x[f]))
                printf("%-20s %12.4g %+13.4f\n", reel_feature_name(f), x[f],
                       phi[f]);
            else
                printf("%-20s %12s %+13.4f\n", reel_feature_name(f), "missing",
                       phi[f]);
        }
    }
    free(q);
    free(seen);
    reel_featstate_free(fs);
    base_close(&b);
    reel_ranker_free(rk);
    return REEL_EXIT_OK;
}
