/*
 * reel search DIR --clip MODEL_DIR "query text": zero-shot search of the
 * catalogue. The query's CLIP text embedding against every video's CLIP
 * vector (DIR/vectors/clip.reel from `reel embed --clip`), by cosine, an
 * exact scan.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/mem.h"
#include "cmd.h"
#include "data/dataset.h"
#include "embed/clip.h"
#include "embed/clip_model.h"
#include "embed/vectors.h"

static void help(FILE *out)
{
    fprintf(
        out,
        "usage: reel search DIR --clip MODEL_DIR [--k 10] [--vectors FILE] "
        "[--json]\n"
        "                   \"query text\"\n"
        "\n"
        "Zero-shot search: the videos whose CLIP vectors (FILE, by default\n"
        "DIR/vectors/clip.reel from `reel embed DIR --clip MODEL_DIR`) are\n"
        "closest to the text's CLIP embedding, by cosine, best first. Prints\n"
        "rank, score, video id and title, or with --json one object\n"
        "{\"query\", \"items\": [{\"video\", \"score\", \"title\"}]}.\n");
}

struct hit {
    float s;
    uint32_t i;
};

static int by_score(const void *a, const void *b)
{
    const struct hit *x = a, *y = b;
    if (x->s != y->s)
        return x->s < y->s ? 1 : -1;
    return (x->i > y->i) - (x->i < y->i);
}

int reel_cmd_search(int argc, char **argv)
{
    enum { O_CLIP = 256, O_K, O_VECTORS, O_JSON, O_THREADS };
    static const struct option opts[] = {
        {"clip", required_argument, 0, O_CLIP},
        {"k", required_argument, 0, O_K},
        {"vectors", required_argument, 0, O_VECTORS},
        {"json", no_argument, 0, O_JSON},
        {"threads", required_argument, 0, O_THREADS},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *model_dir = NULL, *vpath = NULL;
    uint64_t k = 10, threads = 1;
    int json = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_CLIP:
            model_dir = optarg;
            break;
        case O_VECTORS:
            vpath = optarg;
            break;
        case O_JSON:
            json = 1;
            break;
        case O_K:
            if (reel_cmd_parse_u64(optarg, 1, 10000, &k))
                return reel_cmd_usage_error(
                    "search", "--k must be in 1..10000, not '%s'", optarg);
            break;
        case O_THREADS:
            if (reel_cmd_parse_u64(optarg, 1, 256, &threads))
                return reel_cmd_usage_error(
                    "search", "--threads must be in 1..256, not '%s'", optarg);
            break;
        case 'h':
            help(stdout);
            return REEL_EXIT_OK;
        default:
            return reel_cmd_usage_error("search",
                                        "unknown or incomplete option '%s'",
                                        argv[optind - 1]);
        }
    }
    if (optind + 2 != argc)
        return reel_cmd_usage_error("search",
                                    "expected DIR and one query text");
    if (!model_dir)
        return reel_cmd_usage_error("search", "--clip MODEL_DIR is required");
    const char *dir = argv[optind], *query = argv[optind + 1];
    char path[4096];
    if (!vpath) {
        snprintf(path, sizeof path, "%s/vectors/clip.reel", dir);
        vpath = path;
    }
    reel_diag d;
    reel_diag_clear(&d);
    reel_dataset *ds = NULL;
    reel_vectors *vec = NULL;
    reel_clip_model *m = NULL;
    int status = REEL_EXIT_ERROR;
    if (reel_dataset_open(dir, &ds, &d) ||
        reel_vectors_load(vpath, ds, &vec, &d) ||
        reel_clip_model_open(model_dir, &m, &d)) {
        status = reel_cmd_fail_diag("search", &d);
        goto out;
    }
    uint32_t dim = reel_clip_model_dim(m);
    if (vec->dim != dim || !vec->source || !strstr(vec->source, "\"clip\"")) {
        status = reel_cmd_fail(
            "search",
            "%s: not CLIP vectors of this model (dim %u, model %u); run "
            "reel embed %s --clip %s",
            vpath, vec->dim, dim, dir, model_dir);
        goto out;
    }
    reel_clip_set_threads((int)threads);
    float *q = reel_xmalloc(dim * sizeof *q);
    size_t ql = strlen(query);
    int rc = 0;
    reel_clip_model_texts(m, &query, &ql, 1, q, &rc);
    if (rc) {
        free(q);
        status = reel_cmd_fail("search", "query: %s",
                               rc == REEL_EFORMAT ? "not valid UTF-8"
                                                  : reel_strerror(rc));
        goto out;
    }
    struct hit *h = reel_xmalloc(((size_t)vec->n + 1) * sizeof *h);
    uint32_t nh = 0;
    for (uint32_t i = 0; i < vec->n; i++) {
        if (!vec->has[i])
            continue;
        const float *r = reel_vectors_row(vec, i);
        double s = 0, nr = 0;
        for (uint32_t j = 0; j < dim; j++)
            s += (double)q[j] * r[j], nr += (double)r[j] * r[j];
        h[nh++] = (struct hit){(float)(nr > 0 ? s / sqrt(nr) : 0), i};
    }
    qsort(h, nh, sizeof *h, by_score);
    const reel_videos *vs = reel_dataset_videos(ds);
    reel_buf b = REEL_BUF_INIT;
    if (json) {
        reel_buf_puts(&b, "{\"query\": ");
        reel_buf_json_string(&b, query, ql);
        reel_buf_puts(&b, ", \"items\": [");
    }
    for (uint32_t r = 0; r < nh && r < k; r++) {
        size_t il, tl;
        const char *id = reel_strs_get(&vs->id, h[r].i, &il);
        const char *title = reel_strs_get(&vs->title, h[r].i, &tl);
        if (json) {
            reel_buf_puts(&b, r ? ", {\"video\": " : "{\"video\": ");
            reel_buf_json_string(&b, id, il);
            reel_buf_printf(&b,
                            ", \"score\": %.6f, \"title\": ", (double)h[r].s);
            reel_buf_json_string(&b, title, tl);
            reel_buf_putc(&b, '}');
        } else {
            reel_buf_printf(&b, "%u\t%.4f\t%s\t%s\n", r + 1, (double)h[r].s, id,
                            title);
        }
    }
    if (json)
        reel_buf_puts(&b, "]}\n");
    fwrite(b.data, 1, b.len, stdout);
    reel_buf_free(&b);
    free(h);
    free(q);
    status = REEL_EXIT_OK;
out:
    reel_clip_model_free(m);
    reel_vectors_free(vec);
    if (ds)
        reel_dataset_close(ds);
    return status;
}
