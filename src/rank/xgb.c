#include "rank/xgb.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <xgboost/c_api.h>

#include "base/clock.h"
#include "base/mem.h"
#include "base/sort.h"

struct reel_xgb {
    BoosterHandle h;
    uint32_t n_features;
    uint32_t n_trees;
};

reel_xgb_opts reel_xgb_opts_default(void)
{
    return (reel_xgb_opts){
        .objective = REEL_XGB_BINARY_LOGISTIC,
        .n_trees = 300,
        .max_depth = 6,
        .eta = 0.1,
        .subsample = 1,
        .colsample_bytree = 1,
        .min_child_weight = 1,
        .lambda = 1,
        .base_score = 0.5,
        .max_bin = 256,
        .early_stopping_rounds = 20,
        .metric = NULL,
        .threads = 0,
        .seed = 42,
    };
}

/* The one place libxgboost's convention (0 or -1, and a thread-local last
 * error) becomes reel's: `err` is the code to return, the diag gets the
 * call's name and the first line of XGBoost's message without its
 * "[time] file:line: " prefix. */
static int xfail(reel_diag *d, int err, const char *call)
{
    const char *e = XGBGetLastError();
    if (!e)
        e = "";
    if (e[0] == '[') {
        const char *close = strchr(e, ']');
        if (close)
            e = close + 1;
        while (*e == ' ')
            e++;
    }
    /* Skip a source location "path/file.cc:123: ". */
    const char *colon = strstr(e, ": ");
    if (colon && colon - e < 200 && memchr(e, ' ', (size_t)(colon - e)) == NULL)
        e = colon + 2;
    size_t len = strcspn(e, "\n");
    return reel_diag_fail(d, err, "libxgboost %s: %.*s", call, (int)len, e);
}

#define XCHECK(call, err, name)                                                \
    do {                                                                       \
        if ((call) != 0) {                                                     \
            rc = xfail(d, (err), (name));                                      \
            goto fail;                                                         \
        }                                                                      \
    } while (0)

static int set_param(BoosterHandle h, const char *k, const char *v,
                     reel_diag *d)
{
    if (XGBoosterSetParam(h, k, v) != 0)
        return xfail(d, REEL_EINVAL, "XGBoosterSetParam");
    return 0;
}

static int set_paramf(BoosterHandle h, const char *k, double v, reel_diag *d)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%.17g", v);
    return set_param(h, k, buf, d);
}

static int set_threads(BoosterHandle h, int threads, reel_diag *d)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%d", threads > 0 ? threads : 0);
    return set_param(h, "nthread", buf, d);
}

/* Checks a table's labels and, for ranking, turns runs of equal group ids
 * into XGBoost's group sizes (caller frees *sizes). */
static int check_rows(const reel_rows *r, const char *what,
                      reel_xgb_objective obj, unsigned **sizes,
                      size_t *n_groups, reel_diag *d)
{
    if (r->n == 0)
        return reel_diag_fail(d, REEL_EINVAL, "%s: no rows", what);
    if (r->n > UINT32_MAX)
        return reel_diag_fail(d, REEL_ETOOBIG, "%s: %zu rows (at most 2^32)",
                              what, r->n);
    for (size_t i = 0; i < r->n; i++) {
        float y = r->y[i];
        int ok = obj == REEL_XGB_BINARY_LOGISTIC ? (y == 0 || y == 1)
                                                 : (isfinite(y) && y >= 0);
        if (!ok)
            return reel_diag_fail(d, REEL_EINVAL, "%s: row %zu: label %g", what,
                                  i, (double)y);
    }
    *sizes = NULL;
    *n_groups = 0;
    if (obj != REEL_XGB_RANK_NDCG)
        return 0;
    size_t k = 1;
    for (size_t i = 1; i < r->n; i++)
        k += r->group[i] != r->group[i - 1];
    unsigned *s = reel_xcalloc(k, sizeof *s);
    size_t g = 0;
    s[0] = 1;
    for (size_t i = 1; i < r->n; i++) {
        if (r->group[i] != r->group[i - 1])
            g++;
        s[g]++;
    }
    *sizes = s;
    *n_groups = k;
    return 0;
}

static int make_dmatrix(const reel_rows *r, const unsigned *sizes,
                        size_t n_groups, DMatrixHandle *out, reel_diag *d)
{
    int rc = 0;
    DMatrixHandle m = NULL;
    XCHECK(XGDMatrixCreateFromMat(r->x, r->n, r->n_features, NAN, &m),
           REEL_EINVAL, "XGDMatrixCreateFromMat");
    XCHECK(XGDMatrixSetFloatInfo(m, "label", r->y, r->n), REEL_EINVAL,
           "XGDMatrixSetFloatInfo");
    if (sizes)
        XCHECK(XGDMatrixSetUIntInfo(m, "group", sizes, n_groups), REEL_EINVAL,
               "XGDMatrixSetUIntInfo");
    *out = m;
    return 0;
fail:
    if (m)
        XGDMatrixFree(m);
    return rc;
}

/* Metrics where larger is better; the rest (logloss, error, rmse...) are
 * minimised. The name may carry "@k" or a trailing "-". */
static int maximised(const char *metric)
{
    static const char *const up[] = {"auc", "aucpr", "map", "ndcg", "pre"};
    size_t len = strcspn(metric, "@-");
    for (size_t i = 0; i < sizeof up / sizeof up[0]; i++)
        if (strlen(up[i]) == len && strncmp(metric, up[i], len) == 0)
            return 1;
    return 0;
}

/* Finds "\tvalid-NAME:VALUE" in an XGBoosterEvalOneIter result such as
 * "[3]\tvalid-auc:0.912\tvalid-logloss:0.331". */
static int eval_value(const char *s, const char *name, double *v)
{
    size_t nl = strlen(name);
    for (const char *q = s; (q = strstr(q, "\tvalid-")) != NULL; q++) {
        const char *n = q + 7;
        if (strncmp(n, name, nl) != 0 || n[nl] != ':')
            continue;
        char *end;
        errno = 0;
        double x = strtod(n + nl + 1, &end);
        if (end == n + nl + 1 || errno == ERANGE)
            return REEL_EFORMAT;
        *v = x;
        return 0;
    }
    return REEL_EFORMAT;
}

static int fill_counts(reel_xgb *m, reel_diag *d)
{
    bst_ulong nf = 0;
    int rounds = 0;
    if (XGBoosterGetNumFeature(m->h, &nf) != 0)
        return xfail(d, REEL_EFORMAT, "XGBoosterGetNumFeature");
    if (XGBoosterBoostedRounds(m->h, &rounds) != 0)
        return xfail(d, REEL_EFORMAT, "XGBoosterBoostedRounds");
    if (nf == 0 || nf > UINT32_MAX || rounds < 0)
        return reel_diag_fail(d, REEL_EFORMAT,
                              "libxgboost: model with %llu features",
                              (unsigned long long)nf);
    m->n_features = (uint32_t)nf;
    m->n_trees = (uint32_t)rounds;
    return 0;
}

static void report_init(reel_xgb_report *rep)
{
    memset(rep, 0, sizeof *rep);
    rep->best_metric = rep->xgb_auc = rep->xgb_logloss = NAN;
    rep->valid_auc = rep->valid_logloss = NAN;
}

int reel_xgb_train(const reel_rows *train, const reel_rows *valid,
                   const reel_xgb_opts *o, reel_progress *p, reel_xgb **out,
                   reel_xgb_report *rep, reel_diag *d)
{
    *out = NULL;
    double t0 = reel_clock_mono();
    reel_xgb_report r;
    report_init(&r);
    int rank = o->objective == REEL_XGB_RANK_NDCG;
    if (o->objective != REEL_XGB_BINARY_LOGISTIC && !rank)
        return reel_diag_fail(d, REEL_EINVAL, "xgb: unknown objective %d",
                              (int)o->objective);
    if (o->n_trees == 0 || o->max_depth == 0 || o->max_depth > 64 ||
        !(o->eta > 0) || !(o->subsample > 0 && o->subsample <= 1) ||
        !(o->colsample_bytree > 0 && o->colsample_bytree <= 1) ||
        !(o->min_child_weight >= 0) || !(o->lambda >= 0) ||
        !isfinite(o->base_score) || o->max_bin < 2)
        return reel_diag_fail(d, REEL_EINVAL, "xgb: invalid options");
    if (!rank && !(o->base_score > 0 && o->base_score < 1))
        return reel_diag_fail(d, REEL_EINVAL,
                              "xgb: base_score %g is not a probability in "
                              "(0, 1)",
                              o->base_score);
    if (valid && valid->n_features != train->n_features)
        return reel_diag_fail(d, REEL_EINVAL,
                              "xgb: train has %u features, valid %u",
                              train->n_features, valid->n_features);
    const char *metric = o->metric ? o->metric : rank ? "ndcg@10" : "logloss";
    if (strlen(metric) >= sizeof r.metric || strpbrk(metric, " \t:"))
        return reel_diag_fail(d, REEL_EINVAL, "xgb: bad metric name");
    snprintf(r.metric, sizeof r.metric, "%s", metric);

    int rc = 0;
    unsigned *tsizes = NULL, *vsizes = NULL;
    size_t tgroups = 0, vgroups = 0;
    DMatrixHandle dtrain = NULL, dvalid = NULL;
    BoosterHandle h = NULL;
    float *pred = NULL;
    int started = 0;
    if ((rc = check_rows(train, "train", o->objective, &tsizes, &tgroups, d)) !=
        0)
        goto fail;
    if (valid && (rc = check_rows(valid, "valid", o->objective, &vsizes,
                                  &vgroups, d)) != 0)
        goto fail;
    if ((rc = make_dmatrix(train, tsizes, tgroups, &dtrain, d)) != 0)
        goto fail;
    if (valid && (rc = make_dmatrix(valid, vsizes, vgroups, &dvalid, d)) != 0)
        goto fail;
    DMatrixHandle cache[2] = {dtrain, dvalid};
    XCHECK(XGBoosterCreate(cache, valid ? 2 : 1, &h), REEL_EINVAL,
           "XGBoosterCreate");

    char buf[64];
    if ((rc = set_param(h, "verbosity", "0", d)) ||
        (rc = set_param(h, "booster", "gbtree", d)) ||
        (rc = set_param(h, "objective", rank ? "rank:ndcg" : "binary:logistic",
                        d)) ||
        (rc = set_param(h, "tree_method", "hist", d)) ||
        (rc = set_paramf(h, "eta", o->eta, d)) ||
        (rc = set_paramf(h, "max_depth", o->max_depth, d)) ||
        (rc = set_paramf(h, "subsample", o->subsample, d)) ||
        (rc = set_paramf(h, "colsample_bytree", o->colsample_bytree, d)) ||
        (rc = set_paramf(h, "min_child_weight", o->min_child_weight, d)) ||
        (rc = set_paramf(h, "lambda", o->lambda, d)) ||
        (rc = set_paramf(h, "base_score", o->base_score, d)) ||
        (rc = set_paramf(h, "max_bin", o->max_bin, d)) ||
        (rc = set_threads(h, o->threads, d)))
        goto fail;
    snprintf(buf, sizeof buf, "%" PRIu64, o->seed % 2147483648u);
    if ((rc = set_param(h, "seed", buf, d)) != 0)
        goto fail;
    /* XGBoost evaluates every metric set; the one early stopping watches
     * goes last. Ranking gets no global "auc": with groups XGBoost's auc is
     * a per-query average, not the number reel_auc computes. */
    /* XGBoost's auc runs a sort on OpenMP's default threads whatever
     * nthread says (dmlc/xgboost#8802), which spins on a busy machine;
     * it is computed only when asked for (the tests' cross-check). */
    if (!rank && o->cross_check) {
        if ((rc = set_param(h, "eval_metric", "auc", d)) ||
            (rc = set_param(h, "eval_metric", "logloss", d)))
            goto fail;
    }
    if ((rc = set_param(h, "eval_metric", metric, d)) != 0)
        goto fail;

    if (p) {
        reel_progress_start(p, "xgboost", "rounds", o->n_trees);
        started = 1;
    }
    int maximise = maximised(metric);
    double best = NAN;
    uint32_t best_it = 0, it;
    for (it = 0; it < o->n_trees; it++) {
        XCHECK(XGBoosterUpdateOneIter(h, (int)it, dtrain), REEL_EINVAL,
               "XGBoosterUpdateOneIter");
        if (p)
            reel_progress_set(p, it + 1);
        if (!valid)
            continue;
        const char *names[1] = {"valid"}, *s = NULL;
        DMatrixHandle ev[1] = {dvalid};
        XCHECK(XGBoosterEvalOneIter(h, (int)it, ev, names, 1, &s), REEL_EINVAL,
               "XGBoosterEvalOneIter");
        double v;
        if (eval_value(s, metric, &v) != 0) {
            rc = reel_diag_fail(d, REEL_EFORMAT,
                                "xgb: no valid-%s in libxgboost's \"%.100s\"",
                                metric, s);
            goto fail;
        }
        /* Without early stopping every round counts as the best so far:
         * the model keeps all its trees. */
        if (it == 0 || !o->early_stopping_rounds ||
            (maximise ? v > best : v < best)) {
            best = v;
            best_it = it;
            if (!rank) {
                eval_value(s, "auc", &r.xgb_auc);
                eval_value(s, "logloss", &r.xgb_logloss);
            }
        }
        if (o->early_stopping_rounds &&
            it - best_it >= o->early_stopping_rounds) {
            it++;
            break;
        }
    }
    if (started) {
        reel_progress_finish(p);
        started = 0;
    }
    r.n_rounds = it;
    r.best_iteration = valid ? best_it : it - 1;
    r.best_metric = best;
    if (r.best_iteration + 1 < r.n_rounds) {
        BoosterHandle cut = NULL;
        XCHECK(XGBoosterSlice(h, 0, (int)r.best_iteration + 1, 1, &cut),
               REEL_EINVAL, "XGBoosterSlice");
        XGBoosterFree(h);
        h = cut;
        if ((rc = set_threads(h, o->threads, d)) != 0)
            goto fail;
    }
    if (valid) {
        snprintf(buf, sizeof buf, "%" PRIu32, r.best_iteration);
        XCHECK(XGBoosterSetAttr(h, "best_iteration", buf), REEL_EINVAL,
               "XGBoosterSetAttr");
        snprintf(buf, sizeof buf, "%.17g", best);
        XCHECK(XGBoosterSetAttr(h, "best_score", buf), REEL_EINVAL,
               "XGBoosterSetAttr");
    }

    reel_xgb *m = reel_xcalloc(1, sizeof *m);
    m->h = h;
    h = NULL;
    if ((rc = fill_counts(m, d)) != 0) {
        reel_xgb_free(m);
        goto fail;
    }
    if (valid) {
        pred = reel_xmalloc(valid->n * sizeof *pred);
        rc =
            reel_xgb_predict(m, valid->x, valid->n, valid->n_features, pred, d);
        if (rc != 0) {
            reel_xgb_free(m);
            goto fail;
        }
        r.valid_auc = reel_auc(pred, valid->y, valid->n);
        if (!rank)
            r.valid_logloss = reel_logloss(pred, valid->y, valid->n);
    }
    r.seconds = reel_clock_mono() - t0;
    if (rep)
        *rep = r;
    *out = m;
fail:
    if (started)
        reel_progress_finish(p);
    free(pred);
    if (h)
        XGBoosterFree(h);
    if (dtrain)
        XGDMatrixFree(dtrain);
    if (dvalid)
        XGDMatrixFree(dvalid);
    free(tsizes);
    free(vsizes);
    return rc;
}

int reel_xgb_load(const char *path, reel_xgb **out, reel_diag *d)
{
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0)
        return reel_diag_fail(d, errno == ENOENT ? REEL_ENOENT : REEL_EIO,
                              "cannot open %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return reel_diag_fail(d, REEL_EIO, "%s is not a regular file", path);
    int rc = 0;
    BoosterHandle h = NULL;
    XCHECK(XGBoosterCreate(NULL, 0, &h), REEL_EINVAL, "XGBoosterCreate");
    XCHECK(XGBoosterLoadModel(h, path), REEL_EFORMAT, "XGBoosterLoadModel");
    if ((rc = set_param(h, "verbosity", "0", d)) != 0)
        goto fail;
    reel_xgb *m = reel_xcalloc(1, sizeof *m);
    m->h = h;
    if ((rc = fill_counts(m, d)) != 0) {
        reel_xgb_free(m);
        return rc;
    }
    *out = m;
    return 0;
fail:
    if (h)
        XGBoosterFree(h);
    return rc;
}

int reel_xgb_save(reel_xgb *m, const char *path, reel_diag *d)
{
    if (XGBoosterSaveModel(m->h, path) != 0)
        return xfail(d, REEL_EIO, "XGBoosterSaveModel");
    return 0;
}

void reel_xgb_free(reel_xgb *m)
{
    if (!m)
        return;
    XGBoosterFree(m->h);
    free(m);
}

int reel_xgb_set_threads(reel_xgb *m, int threads, reel_diag *d)
{
    return set_threads(m->h, threads, d);
}

uint32_t reel_xgb_n_features(const reel_xgb *m)
{
    return m->n_features;
}

uint32_t reel_xgb_n_trees(const reel_xgb *m)
{
    return m->n_trees;
}

int reel_xgb_predict(reel_xgb *m, const float *x, size_t n_rows, size_t stride,
                     float *out, reel_diag *d)
{
    assert(stride >= m->n_features);
    if (n_rows == 0)
        return 0;
    /* The rows as a NumPy __array_interface__ with byte strides, so rows
     * that are not packed need no copy. */
    char arr[256];
    snprintf(arr, sizeof arr,
             "{\"data\": [%" PRIuPTR ", true], \"shape\": [%zu, %" PRIu32
             "], \"strides\": [%zu, 4], \"typestr\": \"<f4\", "
             "\"version\": 3}",
             (uintptr_t)x, n_rows, m->n_features, stride * sizeof(float));
    static const char cfg[] =
        "{\"type\": 0, \"training\": false, \"iteration_begin\": 0, "
        "\"iteration_end\": 0, \"strict_shape\": false, \"missing\": NaN, "
        "\"cache_id\": 0}";
    const bst_ulong *shape = NULL;
    bst_ulong dim = 0;
    const float *res = NULL;
    if (XGBoosterPredictFromDense(m->h, arr, cfg, NULL, &shape, &dim, &res) !=
        0)
        return xfail(d, REEL_EINVAL, "XGBoosterPredictFromDense");
    if (dim != 1 || shape[0] != n_rows)
        return reel_diag_fail(d, REEL_EUNSUPPORTED,
                              "libxgboost: prediction of shape %llu-d, "
                              "expected one value per row",
                              (unsigned long long)dim);
    memcpy(out, res, n_rows * sizeof *out);
    return 0;
}

int reel_xgb_contrib(reel_xgb *m, const float *x, size_t n_rows, size_t stride,
                     float *phi, reel_diag *d)
{
    assert(stride >= m->n_features);
    if (n_rows == 0)
        return 0;
    size_t nf = m->n_features;
    float *packed = NULL;
    const float *rows = x;
    if (stride != nf) {
        packed = reel_xmalloc(n_rows * nf * sizeof *packed);
        for (size_t i = 0; i < n_rows; i++)
            memcpy(packed + i * nf, x + i * stride, nf * sizeof *packed);
        rows = packed;
    }
    int rc = 0;
    DMatrixHandle dm = NULL;
    XCHECK(XGDMatrixCreateFromMat(rows, n_rows, nf, NAN, &dm), REEL_EINVAL,
           "XGDMatrixCreateFromMat");
    static const char cfg[] =
        "{\"type\": 2, \"training\": false, \"iteration_begin\": 0, "
        "\"iteration_end\": 0, \"strict_shape\": false}";
    const bst_ulong *shape = NULL;
    bst_ulong dim = 0;
    const float *res = NULL;
    XCHECK(XGBoosterPredictFromDMatrix(m->h, dm, cfg, &shape, &dim, &res),
           REEL_EINVAL, "XGBoosterPredictFromDMatrix");
    if (dim != 2 || shape[0] != n_rows || shape[1] != nf + 1) {
        rc = reel_diag_fail(d, REEL_EUNSUPPORTED,
                            "libxgboost: contributions of shape %llu-d, "
                            "expected rows x (features + 1)",
                            (unsigned long long)dim);
        goto fail;
    }
    memcpy(phi, res, n_rows * (nf + 1) * sizeof *phi);
fail:
    if (dm)
        XGDMatrixFree(dm);
    free(packed);
    return rc;
}

double reel_auc(const float *score, const float *label, size_t n)
{
    assert(n <= UINT32_MAX);
    double *key = reel_xmalloc((n ? n : 1) * sizeof *key);
    uint32_t *perm = reel_xmalloc((n ? n : 1) * sizeof *perm);
    for (size_t i = 0; i < n; i++)
        key[i] = score[i];
    reel_sort_perm_f64(key, (uint32_t)n, perm);
    /* Walk the scores upwards in runs of equal value: each positive beats
     * every negative below its run and half of those tied with it. */
    double pos = 0, neg = 0, wins = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        double p = 0, q = 0;
        double k = key[perm[i]];
        /* NaN scores sort last and tie with each other. */
        while (j < n &&
               (key[perm[j]] == k || (isnan(k) && isnan(key[perm[j]])))) {
            if (label[perm[j]] > 0)
                p++;
            else
                q++;
            j++;
        }
        wins += p * (neg + 0.5 * q);
        pos += p;
        neg += q;
        i = j;
    }
    free(key);
    free(perm);
    if (pos == 0 || neg == 0)
        return NAN;
    return wins / (pos * neg);
}

double reel_logloss(const float *p, const float *label, size_t n)
{
    if (n == 0)
        return NAN;
    const double eps = 1e-16;
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double q = fmin(fmax((double)p[i], eps), 1 - eps), y = label[i];
        s -= y * log(q) + (1 - y) * log(1 - q);
    }
    return s / (double)n;
}
