/* reel eval's outputs: a table, JSON, and a markdown report with an SVG
 * plot of recall@k. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "eval/eval.h"

/* Protocols with several test videos per user report precision, recall
 * and MAP; the others one target per case (HR). */
static int is_setwise(const reel_eval_opts *o)
{
    return o->protocol == REEL_PROTO_RANDOM || o->protocol == REEL_PROTO_COLD ||
           o->protocol == REEL_PROTO_COLD_USERS;
}

/* cold-users' groups: the segments' age buckets, then their genders. */
static const char *const group_names[REEL_EVAL_GROUPS] = {
    "age <18",     "age 18-24",   "age 25-34",   "age 35-44",
    "age 45-49",   "age 50-55",   "age 56+",     "age unknown",
    "gender id 0", "gender id 1", "gender id 2", "gender other"};

/* The methods asked for that the protocol cannot measure (skipped). */
static uint32_t not_applicable(const reel_eval_opts *o)
{
    uint32_t na = 0;
    for (int m = 0; m < REEL_METHOD__COUNT; m++)
        if ((o->methods >> m & 1) &&
            !reel_method_applies(o->protocol, (enum reel_method)m))
            na |= 1u << m;
    return na;
}

static int is_static(const reel_eval_opts *o)
{
    return o->protocol != REEL_PROTO_REPLAY;
}

void reel_eval_print(const reel_eval_opts *o, const reel_eval_result *res,
                     uint32_t n, FILE *out)
{
    uint32_t k = o->k;
    fprintf(out, "protocol %s, k %u", reel_protocol_name(o->protocol), k);
    /* The default query (the mean) is not mentioned, so default output
     * stays as it was. */
    if (o->recency_decay != 1)
        fprintf(out, ", query decay %g", o->recency_decay);
    fprintf(out, "\n\n");
    if (is_setwise(o))
        fprintf(out, "%-9s %8s %8s %8s %8s %8s %8s %8s %8s %7s\n", "method",
                "users", "prec@k", "recall@k", "ndcg@k", "map@k", "mrr",
                "coverage", "pop.bias", "fit s");
    else
        fprintf(out, "%-9s %8s %8s %8s %8s %8s %8s %7s%s\n", "method",
                is_static(o) ? "users" : "requests", "hr@k", "ndcg@k", "mrr",
                "coverage", "pop.bias", "fit s",
                is_static(o) ? "" : "  p50 us  p99 us");
    for (uint32_t i = 0; i < n; i++) {
        const reel_eval_result *r = &res[i];
        if (is_setwise(o))
            fprintf(out,
                    "%-9s %8llu %8.4f %8.4f %8.4f %8.4f %8.4f %8.4f %8.4f "
                    "%7.2f\n",
                    reel_method_name(r->method), (unsigned long long)r->n_cases,
                    r->precision, r->recall, r->ndcg, r->map, r->mrr,
                    r->coverage, r->popularity_bias, r->fit_s);
        else {
            fprintf(out, "%-9s %8llu %8.4f %8.4f %8.4f %8.4f %8.4f %7.2f",
                    reel_method_name(r->method), (unsigned long long)r->n_cases,
                    r->hr, r->ndcg, r->mrr, r->coverage, r->popularity_bias,
                    r->fit_s);
            if (!is_static(o))
                fprintf(out, " %7.1f %7.1f", r->latency_p50_us,
                        r->latency_p99_us);
            fputc('\n', out);
        }
    }
    if (o->protocol == REEL_PROTO_COLD && n > 0)
        fprintf(out,
                "\n%u videos held out of training; coverage is over them; "
                "ann gave %u of them a vector from catalogue features\n",
                res[0].cold_videos, res[n - 1].cold_filled);
    if (o->protocol == REEL_PROTO_COLD_USERS && n > 0) {
        fprintf(out,
                "\n%u users held out of training (share %g), asked for with "
                "no history;\n%u of them have a segment (age or gender), "
                "segment gives the others popular's list\n",
                res[0].cold_users, o->cold_share, res[0].cold_segmented);
        fprintf(out, "\nndcg@k by group\n%-13s %6s", "group", "users");
        for (uint32_t i = 0; i < n; i++)
            fprintf(out, " %9s", reel_method_name(res[i].method));
        fputc('\n', out);
        for (int g = 0; g < REEL_EVAL_GROUPS; g++) {
            if (!res[0].group_cases[g])
                continue;
            fprintf(out, "%-13s %6u", group_names[g], res[0].group_cases[g]);
            for (uint32_t i = 0; i < n; i++)
                fprintf(out, " %9.4f", res[i].group_ndcg[g]);
            fputc('\n', out);
        }
    }
    uint32_t na = not_applicable(o);
    if (na) {
        fprintf(out,
                "\nnot applicable under %s (no history at request "
                "time), skipped:",
                reel_protocol_name(o->protocol));
        for (int m = 0; m < REEL_METHOD__COUNT; m++)
            if (na >> m & 1)
                fprintf(out, " %s", reel_method_name((enum reel_method)m));
        fputc('\n', out);
    }
}

static json_t *to_json(const reel_eval_opts *o, const reel_eval_result *res,
                       uint32_t n)
{
    json_t *root = json_object();
    json_object_set_new(root, "protocol",
                        json_string(reel_protocol_name(o->protocol)));
    json_object_set_new(root, "k", json_integer(o->k));
    json_object_set_new(root, "seed", json_integer((json_int_t)o->seed));
    if (o->recency_decay != 1)
        json_object_set_new(root, "query_decay", json_real(o->recency_decay));
    if (o->protocol == REEL_PROTO_COLD_USERS ||
        (o->protocol == REEL_PROTO_COLD &&
         o->cold_share != reel_eval_opts_default().cold_share))
        json_object_set_new(root, "cold_share", json_real(o->cold_share));
    uint32_t na = not_applicable(o);
    if (na) {
        json_t *a = json_array();
        for (int m = 0; m < REEL_METHOD__COUNT; m++)
            if (na >> m & 1)
                json_array_append_new(
                    a, json_string(reel_method_name((enum reel_method)m)));
        json_object_set_new(root, "not_applicable", a);
    }
    json_t *methods = json_object();
    for (uint32_t i = 0; i < n; i++) {
        const reel_eval_result *r = &res[i];
        json_t *m = json_object();
        json_object_set_new(m, "cases", json_integer((json_int_t)r->n_cases));
        if (is_setwise(o)) {
            json_object_set_new(m, "precision", json_real(r->precision));
            json_object_set_new(m, "recall", json_real(r->recall));
            json_object_set_new(m, "map", json_real(r->map));
        } else {
            json_object_set_new(m, "hr", json_real(r->hr));
        }
        json_object_set_new(m, "ndcg", json_real(r->ndcg));
        json_object_set_new(m, "mrr", json_real(r->mrr));
        json_object_set_new(m, "coverage", json_real(r->coverage));
        json_object_set_new(m, "popularity_bias",
                            json_real(r->popularity_bias));
        json_t *curve = json_array();
        for (int k = 1; k <= REEL_EVAL_KMAX; k++)
            json_array_append_new(curve, json_real(r->recall_at[k]));
        json_object_set_new(m, "recall_at_1_to_50", curve);
        if (!is_static(o)) {
            json_object_set_new(m, "latency_p50_us",
                                json_real(r->latency_p50_us));
            json_object_set_new(m, "latency_p99_us",
                                json_real(r->latency_p99_us));
        }
        if (o->protocol == REEL_PROTO_COLD) {
            json_object_set_new(m, "cold_videos", json_integer(r->cold_videos));
            json_object_set_new(m, "cold_filled", json_integer(r->cold_filled));
        }
        if (o->protocol == REEL_PROTO_COLD_USERS) {
            json_object_set_new(m, "cold_users", json_integer(r->cold_users));
            json_object_set_new(m, "cold_segmented",
                                json_integer(r->cold_segmented));
            json_t *groups = json_object();
            for (int g = 0; g < REEL_EVAL_GROUPS; g++) {
                if (!r->group_cases[g])
                    continue;
                json_t *x = json_object();
                json_object_set_new(x, "cases",
                                    json_integer(r->group_cases[g]));
                json_object_set_new(x, "ndcg", json_real(r->group_ndcg[g]));
                json_object_set_new(x, "recall", json_real(r->group_recall[g]));
                json_object_set_new(groups, group_names[g], x);
            }
            json_object_set_new(m, "groups", groups);
        }
        json_object_set_new(m, "fit_s", json_real(r->fit_s));
        json_object_set_new(m, "eval_s", json_real(r->eval_s));
        json_object_set_new(methods, reel_method_name(r->method), m);
    }
    json_object_set_new(root, "methods", methods);
    return root;
}

void reel_eval_print_json(const reel_eval_opts *o, const reel_eval_result *res,
                          uint32_t n, FILE *out)
{
    json_t *j = to_json(o, res, n);
    json_dumpf(j, out, JSON_COMPACT | JSON_REAL_PRECISION(6));
    fputc('\n', out);
    json_decref(j);
}

static void svg(FILE *f, const reel_eval_opts *o, const reel_eval_result *res,
                uint32_t n)
{
    static const char *const colours[] = {"#1b9e77", "#d95f02", "#7570b3",
                                          "#e7298a", "#66a61e"};
    const double W = 640, H = 400, L = 60, R = 130, T = 30, B = 45;
    double ymax = 0;
    for (uint32_t i = 0; i < n; i++)
        for (int k = 1; k <= REEL_EVAL_KMAX; k++)
            if (res[i].recall_at[k] > ymax)
                ymax = res[i].recall_at[k];
    ymax = ymax > 0 ? ymax * 1.1 : 1;
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
            "height=\"%.0f\" font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"%.0f\" y=\"18\" font-size=\"14\">%s recall@k, k = 1..50 "
            "(%s)</text>\n",
            W, H, L, is_static(o) ? "" : "replay",
            reel_protocol_name(o->protocol));
    double pw = W - L - R, ph = H - T - B;
    fprintf(f,
            "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" "
            "fill=\"none\" stroke=\"#999\"/>\n",
            L, T, pw, ph);
    for (int t = 0; t <= 4; t++) {
        double v = ymax * t / 4, y = T + ph - ph * t / 4;
        fprintf(f,
                "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%.3f</text>"
                "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" "
                "stroke=\"#eee\"/>\n",
                L - 6, y + 4, v, L, L + pw, y, y);
    }
    for (int k = 10; k <= 50; k += 10)
        fprintf(f,
                "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%d"
                "</text>\n",
                L + pw * (k - 1) / 49.0, T + ph + 18, k);
    fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">k</text>\n",
            L + pw / 2, H - 8);
    for (uint32_t i = 0; i < n; i++) {
        const char *c = colours[i % 5];
        fprintf(f,
                "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" "
                "points=\"",
                c);
        for (int k = 1; k <= REEL_EVAL_KMAX; k++)
            fprintf(f, "%.1f,%.1f ", L + pw * (k - 1) / 49.0,
                    T + ph - ph * res[i].recall_at[k] / ymax);
        fprintf(f, "\"/>\n<text x=\"%.0f\" y=\"%.0f\" fill=\"%s\">%s</text>\n",
                L + pw + 10, T + 20.0 + 18 * i, c,
                reel_method_name(res[i].method));
    }
    fprintf(f, "</svg>\n");
}

int reel_eval_write_report(const reel_eval_opts *o, const reel_eval_result *res,
                           uint32_t n, const char *dir, const char *stem,
                           reel_diag *d)
{
    if (mkdir(dir, 0755) && errno != EEXIST)
        return reel_diag_fail(d, REEL_EIO, "cannot create %s: %s", dir,
                              strerror(errno));
    char path[4096];
    const char *ext[] = {"json", "md", "svg"};
    for (int x = 0; x < 3; x++) {
        snprintf(path, sizeof path, "%s/%s.%s", dir, stem, ext[x]);
        FILE *f = fopen(path, "w");
        if (!f)
            return reel_diag_fail(d, REEL_EIO, "cannot write %s: %s", path,
                                  strerror(errno));
        if (x == 0) {
            reel_eval_print_json(o, res, n, f);
        } else if (x == 1) {
            fprintf(f, "# reel eval: %s\n\n```\n",
                    reel_protocol_name(o->protocol));
            reel_eval_print(o, res, n, f);
            fprintf(f, "```\n\n![recall@k](%s.svg)\n", stem);
        } else {
            svg(f, o, res, n);
        }
        if (fclose(f))
            return reel_diag_fail(d, REEL_EIO, "cannot write %s", path);
    }
    return 0;
}
