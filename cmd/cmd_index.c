#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/mem.h"
#include "embed/vectors.h"
#include "base/progress.h"
#include "base/vecfile.h"
#include "cmd.h"
#include "index/index.h"

static void help(FILE *out)
{
    fprintf(out,
            "usage: reel index build --vectors FILE --out INDEX [--metric "
            "ip|cosine|l2]\n"
            "                        [--m 16] [--ef-construction 200] "
            "[--threads N]\n"
            "                        [--kind hnsw|flat] [--storage "
            "f32|bf16|int8] [--rescore N]\n"
            "                        [--seed 42]\n"
            "       reel index query --index INDEX --queries FILE --k 10 [--ef "
            "64]\n"
            "                        [--threads 1] [--truth FILE]\n"
            "       reel index stats --index INDEX [--json]\n"
            "\n"
            "Vector files are .fvecs (per vector an int32 dimension, then that "
            "many\nfloat32), .npy (float32, 2-D) or reel's .reel vectors files "
            "(reel embed,\ndocs/formats/vectors.md; rows without a vector are "
            "left out). Item ids\nare 0-based row numbers.\n"
            "\n"
            "build: builds an index (HNSW by default; flat is exact) on N "
            "threads\n"
            "  (default: all CPUs) and writes it (docs/formats/index.md).\n"
            "  --storage bf16|int8 keeps compact vectors in the graph and "
            "re-scores\n"
            "  the best candidates with the float32 originals: --rescore N of "
            "them\n"
            "  (default 0: four times the k asked for; the search then keeps "
            "at least\n"
            "  that many).\n"
            "query: prints one line per query, the k nearest ids first, "
            "space-separated;\n"
            "  then on stderr the queries per second. --truth FILE (.ivecs or "
            ".npy of\n"
            "  exact neighbour ids) also prints recall@k on stderr.\n"
            "stats: count, dimension, metric, memory, levels.\n");
}

static int usage(const char *fmt, const char *arg)
{
    char msg[256];
    snprintf(msg, sizeof msg, fmt, arg);
    return reel_cmd_usage_error("index", "%s", msg);
}

static int parse_u32(const char *opt, const char *s, uint64_t min, uint64_t max,
                     uint32_t *out)
{
    uint64_t v;
    if (reel_cmd_parse_u64(s, min, max, &v))
        return -1;
    (void)opt;
    *out = (uint32_t)v;
    return 0;
}

static int build(int argc, char **argv)
{
    static const struct option opts[] = {
        {"vectors", required_argument, 0, 'v'},
        {"out", required_argument, 0, 'o'},
        {"metric", required_argument, 0, 'M'},
        {"m", required_argument, 0, 'm'},
        {"ef-construction", required_argument, 0, 'e'},
        {"threads", required_argument, 0, 't'},
        {"kind", required_argument, 0, 'k'},
        {"storage", required_argument, 0, 's'},
        {"seed", required_argument, 0, 'S'},
        {"rescore", required_argument, 0, 'R'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *vecs = NULL, *outp = NULL;
    enum reel_metric metric = REEL_METRIC_L2;
    enum reel_index_kind kind = REEL_INDEX_HNSW;
    enum reel_vec_storage storage = REEL_VEC_F32;
    uint32_t m = 16, efc = 200, threads = 0, rescore = 0;
    uint64_t seed = 42;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'v':
            vecs = optarg;
            break;
        case 'o':
            outp = optarg;
            break;
        case 'M':
            if (reel_metric_parse(optarg, &metric))
                return usage("unknown metric '%s' (ip, cosine, l2)", optarg);
            break;
        case 'm':
            if (parse_u32("m", optarg, 2, REEL_INDEX_MAX_M, &m))
                return usage("--m must be in 2..128, not '%s'", optarg);
            break;
        case 'e':
            if (parse_u32("e", optarg, 1, 65536, &efc))
                return usage("--ef-construction must be in 1..65536, not "
                             "'%s'",
                             optarg);
            break;
        case 't':
            if (parse_u32("t", optarg, 1, 256, &threads))
                return usage("--threads must be in 1..256, not '%s'", optarg);
            break;
        case 'k':
            if (!strcmp(optarg, "hnsw"))
                kind = REEL_INDEX_HNSW;
            else if (!strcmp(optarg, "flat"))
                kind = REEL_INDEX_FLAT;
            else
                return usage("unknown kind '%s' (hnsw, flat)", optarg);
            break;
        case 's':
            if (reel_vec_storage_parse(optarg, &storage))
                return usage("unknown storage '%s' (f32, bf16, int8)", optarg);
            break;
        case 'S':
            if (reel_cmd_parse_u64(optarg, 0, UINT64_MAX, &seed))
                return usage("bad --seed '%s'", optarg);
            break;
        case 'R':
            if (parse_u32("R", optarg, 0, 1u << 20, &rescore))
                return usage("--rescore must be in 0..1048576, not '%s'",
                             optarg);
            break;
        case 'h':
            help(stdout);
            return REEL_EXIT_OK;
        default:
            return usage("unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc)
        return usage("unexpected argument '%s'", argv[optind]);
    if (!vecs || !outp)
        return usage("%s", "build needs --vectors FILE and --out INDEX");
    reel_diag d;
    reel_diag_clear(&d);
    reel_vecs v;
    double t0 = reel_clock_mono();
    uint8_t *present =
        NULL; /* .reel files: rows without a vector are left out */
    size_t vl = strlen(vecs);
    if (vl > 5 && !strcmp(vecs + vl - 5, ".reel")) {
        reel_vectors *rv;
        if (reel_vectors_load(vecs, NULL, &rv, &d))
            return reel_cmd_fail_diag("index", &d);
        v.n = rv->n, v.d = rv->dim, v.data = rv->data;
        present = rv->has;
        rv->data = NULL, rv->has = NULL;
        reel_vectors_free(rv);
    } else if (reel_vecs_read(vecs, &v, &d)) {
        return reel_cmd_fail_diag("index", &d);
    }
    if (v.n >= UINT32_MAX) {
        reel_vecs_free(&v);
        return reel_cmd_fail("index", "%s: too many vectors", vecs);
    }
    double t_read = reel_clock_mono() - t0;
    reel_index_opts o = reel_index_opts_default(kind, metric, v.d);
    o.m = m;
    o.ef_construction = efc;
    o.storage = storage;
    o.rescore = rescore;
    o.seed = seed;
    reel_index *ix;
    if (reel_index_new(&o, &ix, &d)) {
        reel_vecs_free(&v);
        return reel_cmd_fail_diag("index", &d);
    }
    reel_progress p;
    reel_progress_start(&p, "indexing", "vectors", v.n);
    t0 = reel_clock_mono();
    uint64_t absent = 0;
    for (uint64_t i = 0; present && i < v.n; i++)
        absent += !present[i];
    int rc = 0;
    if (!absent) {
        rc = reel_index_add_batch(ix, 0, v.data, v.n, (int)threads, &p);
    } else {
        for (uint64_t i = 0; i < v.n && !rc; i++) {
            if (present[i])
                rc = reel_index_add(ix, (uint32_t)i, v.data + i * v.d);
            reel_progress_add(&p, 1);
            reel_progress_tick(&p);
        }
    }
    free(present);
    reel_progress_finish(&p);
    double t_build = reel_clock_mono() - t0;
    reel_vecs_free(&v);
    if (rc) {
        reel_index_free(ix);
        return reel_cmd_fail("index",
                             "%s: %s (a vector with NaN or "
                             "infinity?)",
                             vecs, reel_strerror(rc));
    }
    t0 = reel_clock_mono();
    rc = reel_index_save(ix, outp, &d);
    double t_save = reel_clock_mono() - t0;
    reel_index_stats s;
    reel_index_get_stats(ix, &s);
    reel_index_free(ix);
    if (rc)
        return reel_cmd_fail_diag("index", &d);
    struct stat st;
    stat(outp, &st);
    printf("built %s index: %llu x %u, metric %s, storage %s, m %u, "
           "ef_construction %u\n"
           "read %.2fs, build %.2fs, save %.2fs; %s is %.1f MB\n",
           reel_index_kind_name(kind), (unsigned long long)s.n_live, s.dim,
           reel_metric_name(metric), reel_vec_storage_name(storage), m, efc,
           t_read, t_build, t_save, outp, (double)st.st_size / 1e6);
    return REEL_EXIT_OK;
}

struct qjob {
    const reel_index *ix;
    const float *q;
    uint32_t d, k, ef;
    uint64_t from, to;
    uint32_t *ids;   /* n x k */
    uint32_t *found; /* n */
    int rc;
};

static void *run_queries(void *arg)
{
    struct qjob *j = arg;
    reel_hit *hits = reel_xmalloc(j->k * sizeof *hits);
    reel_search_params sp = {.ef = j->ef};
    for (uint64_t i = j->from; i < j->to; i++) {
        uint32_t n;
        int rc = reel_index_search(j->ix, j->q + i * j->d, j->k, &sp, hits, &n);
        if (rc) {
            j->rc = rc;
            break;
        }
        for (uint32_t h = 0; h < n; h++)
            j->ids[i * j->k + h] = hits[h].id;
        j->found[i] = n;
    }
    free(hits);
    return NULL;
}

static int query(int argc, char **argv)
{
    static const struct option opts[] = {
        {"index", required_argument, 0, 'i'},
        {"queries", required_argument, 0, 'q'},
        {"k", required_argument, 0, 'k'},
        {"ef", required_argument, 0, 'e'},
        {"threads", required_argument, 0, 't'},
        {"truth", required_argument, 0, 'g'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *ixp = NULL, *qp = NULL, *gtp = NULL;
    uint32_t k = 10, ef = 64, threads = 1;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            ixp = optarg;
            break;
        case 'q':
            qp = optarg;
            break;
        case 'g':
            gtp = optarg;
            break;
        case 'k':
            if (parse_u32("k", optarg, 1, 100000, &k))
                return usage("--k must be in 1..100000, not '%s'", optarg);
            break;
        case 'e':
            if (parse_u32("ef", optarg, 1, 100000, &ef))
                return usage("--ef must be in 1..100000, not '%s'", optarg);
            break;
        case 't':
            if (parse_u32("t", optarg, 1, 256, &threads))
                return usage("--threads must be in 1..256, not '%s'", optarg);
            break;
        case 'h':
            help(stdout);
            return REEL_EXIT_OK;
        default:
            return usage("unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc)
        return usage("unexpected argument '%s'", argv[optind]);
    if (!ixp || !qp)
        return usage("%s", "query needs --index INDEX and --queries FILE");
    reel_diag d;
    reel_diag_clear(&d);
    reel_index *ix;
    if (reel_index_open(ixp, &ix, &d))
        return reel_cmd_fail_diag("index", &d);
    reel_vecs q;
    if (reel_vecs_read(qp, &q, &d)) {
        reel_index_free(ix);
        return reel_cmd_fail_diag("index", &d);
    }
    reel_index_stats st;
    reel_index_get_stats(ix, &st);
    if (q.d != st.dim) {
        reel_vecs_free(&q);
        reel_index_free(ix);
        return reel_cmd_fail("index",
                             "%s: queries have dimension %u, the "
                             "index %u",
                             qp, q.d, st.dim);
    }
    uint32_t *ids = reel_xmalloc((q.n ? q.n : 1) * k * sizeof *ids);
    uint32_t *found = reel_xcalloc(q.n ? q.n : 1, sizeof *found);
    struct qjob jobs[256];
    pthread_t tids[256];
    double t0 = reel_clock_mono();
    for (uint32_t t = 0; t < threads; t++) {
        jobs[t] = (struct qjob){.ix = ix,
                                .q = q.data,
                                .d = q.d,
                                .k = k,
                                .ef = ef,
                                .from = q.n * t / threads,
                                .to = q.n * (t + 1) / threads,
                                .ids = ids,
                                .found = found};
        if (t + 1 < threads)
            pthread_create(&tids[t], NULL, run_queries, &jobs[t]);
    }
    run_queries(&jobs[threads - 1]);
    for (uint32_t t = 0; t + 1 < threads; t++)
        pthread_join(tids[t], NULL);
    double el = reel_clock_mono() - t0;
    int rc = 0;
    for (uint32_t t = 0; t < threads; t++)
        if (jobs[t].rc)
            rc = jobs[t].rc;
    if (rc) {
        free(ids);
        free(found);
        reel_vecs_free(&q);
        reel_index_free(ix);
        return reel_cmd_fail("index", "%s: %s", qp, reel_strerror(rc));
    }
    /* Output is built in one buffer: printf per id would dominate. */
    size_t cap = (size_t)q.n * k * 11 + q.n + 1, len = 0;
    char *buf = reel_xmalloc(cap);
    for (uint64_t i = 0; i < q.n; i++) {
        for (uint32_t h = 0; h < found[i]; h++) {
            char tmp[12];
            int n = snprintf(tmp, sizeof tmp, "%u", ids[i * k + h]);
            if (h)
                buf[len++] = ' ';
            memcpy(buf + len, tmp, (size_t)n);
            len += (size_t)n;
        }
        buf[len++] = '\n';
    }
    fwrite(buf, 1, len, stdout);
    fflush(stdout);
    free(buf);
    fprintf(stderr,
            "%llu queries in %.3fs: %.1f queries/s (k %u, ef %u, "
            "threads %u, %s)\n",
            (unsigned long long)q.n, el, el > 0 ? q.n / el : 0.0, k, ef,
            threads, st.simd);
    if (gtp) {
        reel_ivecs gt;
        if (reel_ivecs_read(gtp, &gt, &d)) {
            rc = REEL_EXIT_ERROR;
            reel_cmd_fail_diag("index", &d);
        } else if (gt.n != q.n || gt.d < k) {
            rc = reel_cmd_fail("index",
                               "%s: %llu rows of %u ids, need %llu "
                               "rows of at least %u",
                               gtp, (unsigned long long)gt.n, gt.d,
                               (unsigned long long)q.n, k);
        } else {
            uint64_t hit = 0;
            for (uint64_t i = 0; i < q.n; i++)
                for (uint32_t h = 0; h < found[i]; h++)
                    for (uint32_t g = 0; g < k; g++)
                        if ((int32_t)ids[i * k + h] == gt.data[i * gt.d + g]) {
                            hit++;
                            break;
                        }
            fprintf(stderr, "recall@%u %.4f\n", k,
                    q.n ? (double)hit / ((double)q.n * k) : 0.0);
        }
        reel_ivecs_free(&gt);
    }
    free(ids);
    free(found);
    reel_vecs_free(&q);
    reel_index_free(ix);
    return rc ? REEL_EXIT_ERROR : REEL_EXIT_OK;
}

static int stats(int argc, char **argv)
{
    static const struct option opts[] = {
        {"index", required_argument, 0, 'i'},
        {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *ixp = NULL;
    int json = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            ixp = optarg;
            break;
        case 'j':
            json = 1;
            break;
        case 'h':
            help(stdout);
            return REEL_EXIT_OK;
        default:
            return usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (!ixp || optind != argc)
        return usage("%s", "stats needs --index INDEX");
    reel_diag d;
    reel_diag_clear(&d);
    reel_index *ix;
    double t0 = reel_clock_mono();
    if (reel_index_open(ixp, &ix, &d))
        return reel_cmd_fail_diag("index", &d);
    double t_open = reel_clock_mono() - t0;
    reel_index_stats s;
    reel_index_get_stats(ix, &s);
    reel_index_free(ix);
    if (json) {
        printf("{\"kind\":\"%s\",\"metric\":\"%s\",\"storage\":\"%s\","
               "\"count\":%llu,\"deleted\":%llu,\"dim\":%u,\"m\":%u,"
               "\"ef_construction\":%u,\"rescore\":%u,\"memory_bytes\":%llu,"
               "\"max_level\":%u,\"mean_degree0\":%.3f,\"open_s\":%.4f,"
               "\"levels\":[",
               reel_index_kind_name(s.kind), reel_metric_name(s.metric),
               reel_vec_storage_name(s.storage), (unsigned long long)s.n_live,
               (unsigned long long)s.n_deleted, s.dim, s.m, s.ef_construction,
               s.rescore, (unsigned long long)s.memory_bytes, s.max_level,
               s.mean_degree0, t_open);
        for (uint32_t l = 0; l <= s.max_level; l++)
            printf("%s%llu", l ? "," : "",
                   (unsigned long long)s.level_counts[l]);
        printf("]}\n");
        return REEL_EXIT_OK;
    }
    printf("kind        %s\nmetric      %s\nstorage     %s\ncount       "
           "%llu\ndeleted     %llu\ndim         %u\n",
           reel_index_kind_name(s.kind), reel_metric_name(s.metric),
           reel_vec_storage_name(s.storage), (unsigned long long)s.n_live,
           (unsigned long long)s.n_deleted, s.dim);
    if (s.storage != REEL_VEC_F32)
        printf("rescore     %u%s\n", s.rescore,
               s.rescore ? "" : " (four times the k asked for)");
    if (s.kind == REEL_INDEX_HNSW)
        printf("m           %u\nef_constr.  %u\nmean degree %.2f (level "
               "0)\n",
               s.m, s.ef_construction, s.mean_degree0);
    printf("memory      %.1f MB\nopened in   %.3fs\n", s.memory_bytes / 1e6,
           t_open);
    if (s.kind == REEL_INDEX_HNSW)
        for (uint32_t l = 0; l <= s.max_level; l++)
            printf("level %-5u %llu nodes\n", l,
                   (unsigned long long)s.level_counts[l]);
    return REEL_EXIT_OK;
}

int reel_cmd_index(int argc, char **argv)
{
    if (argc < 2)
        return reel_cmd_usage_error("index", "expected build, query or "
                                             "stats");
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h")) {
        help(stdout);
        return REEL_EXIT_OK;
    }
    if (!strcmp(sub, "build"))
        return build(argc - 1, argv + 1);
    if (!strcmp(sub, "query"))
        return query(argc - 1, argv + 1);
    if (!strcmp(sub, "stats"))
        return stats(argc - 1, argv + 1);
    return reel_cmd_usage_error("index",
                                "unknown subcommand '%s' (build, "
                                "query, stats)",
                                sub);
}
