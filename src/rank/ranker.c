#include "rank/ranker.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/mem.h"
#include "rank/features.h"

struct reel_ranker {
    reel_ranker_kind kind;
    reel_gbtree *trees;
    reel_mlp *mlp;
};

static const char *const kind_names[] = {"xgboost", "mlp"};

const char *reel_ranker_kind_name(reel_ranker_kind k)
{
    return (unsigned)k < 2 ? kind_names[k] : "?";
}

int reel_ranker_kind_parse(const char *s, reel_ranker_kind *out)
{
    for (int i = 0; i < 2; i++)
        if (!strcmp(s, kind_names[i])) {
            *out = (reel_ranker_kind)i;
            return 0;
        }
    return REEL_EINVAL;
}

const char *reel_ranker_file(reel_ranker_kind k)
{
    return k == REEL_RANKER_MLP ? "ranker-mlp.reel" : "ranker.json";
}

reel_ranker_opts reel_ranker_opts_default(void)
{
    reel_ranker_opts o = {.kind = REEL_RANKER_XGBOOST,
                          .xgb = reel_xgb_opts_default(),
                          .mlp = reel_mlp_opts_default(),
                          .valid_fraction = 0.1};
    /* libxgboost's OpenMP threads cost more than they give on two cores
     * (src/rank/xgb.h); one thread also makes a model reproducible. */
    o.xgb.threads = 1;
    return o;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

int reel_ranker_load(const char *path, reel_ranker **out, reel_diag *d)
{
    *out = NULL;
    reel_ranker *r = reel_xcalloc(1, sizeof *r);
    int rc;
    uint32_t nf;
    if (ends_with(path, ".json")) {
        r->kind = REEL_RANKER_XGBOOST;
        if ((rc = reel_gbtree_load(path, &r->trees, d)))
            goto fail;
        nf = reel_gbtree_n_features(r->trees);
        const char *obj = reel_gbtree_objective(r->trees);
        if (strcmp(obj, "binary:logistic") && strcmp(obj, "rank:ndcg")) {
            rc = reel_diag_fail(d, REEL_EUNSUPPORTED,
                                "%s: objective %s; the ranker takes "
                                "binary:logistic or rank:ndcg",
                                path, obj);
            goto fail;
        }
    } else {
        r->kind = REEL_RANKER_MLP;
        if ((rc = reel_mlp_load(path, &r->mlp, d)))
            goto fail;
        nf = reel_mlp_n_features(r->mlp);
    }
    if (nf != REEL_F__COUNT) {
        rc = reel_diag_fail(d, REEL_EFORMAT,
                            "%s: the model takes %u features, this reel "
                            "computes %d (retrain with reel train)",
                            path, nf, REEL_F__COUNT);
        goto fail;
    }
    *out = r;
    return 0;
fail:
    reel_ranker_free(r);
    return rc;
}

void reel_ranker_free(reel_ranker *r)
{
    if (!r)
        return;
    reel_gbtree_free(r->trees);
    reel_mlp_free(r->mlp);
    free(r);
}

reel_ranker_kind reel_ranker_kind_of(const reel_ranker *r)
{
    return r->kind;
}

const reel_gbtree *reel_ranker_trees(const reel_ranker *r)
{
    return r->trees;
}

/* The MLP sees sign(x) ln(1 + |x|) of every feature: counts and ages are
 * heavy-tailed, and standardising them raw leaves most rows near the mean
 * and a few far out. Trees do not care; the network does. */
static void squash(const float *x, size_t n, size_t stride, float *y)
{
    for (size_t i = 0; i < n; i++)
        for (int f = 0; f < REEL_F__COUNT; f++) {
            float v = x[i * stride + (size_t)f];
            y[i * REEL_F__COUNT + (size_t)f] =
                copysignf(log1pf(fabsf(v)), v); /* NaN stays NaN */
        }
}

void reel_ranker_score(const reel_ranker *r, const float *x, size_t n,
                       size_t stride, float *out)
{
    if (r->trees) {
        reel_gbtree_predict(r->trees, x, n, stride, out);
        return;
    }
    float buf[256 * REEL_F__COUNT];
    for (size_t at = 0; at < n; at += 256) {
        size_t m = n - at < 256 ? n - at : 256;
        squash(x + at * stride, m, stride, buf);
        reel_mlp_predict(r->mlp, buf, m, REEL_F__COUNT, out + at);
    }
}

int reel_ranker_train(const reel_rows *rows, const reel_ranker_opts *o,
                      const char *path, reel_progress *p, reel_ranker **out,
                      reel_ranker_report *rep, reel_diag *d)
{
    *out = NULL;
    memset(rep, 0, sizeof *rep);
    double t0 = reel_clock_mono();
    if (rows->n_features != REEL_F__COUNT)
        return reel_diag_fail(d, REEL_EINVAL, "rows have %u features, not %d",
                              rows->n_features, REEL_F__COUNT);
    reel_rows tr, va;
    if (reel_rows_split_tail(rows, o->valid_fraction, &tr, &va))
        return reel_diag_fail(d, REEL_EINVAL,
                              "%zu rows are too few to train and validate",
                              rows->n);
    rep->train_rows = tr.n;
    rep->valid_rows = va.n;
    rep->train_pos = reel_rows_positives(&tr);
    rep->valid_pos = reel_rows_positives(&va);
    int rc = 0;
    reel_ranker *r = reel_xcalloc(1, sizeof *r);
    r->kind = o->kind;
    if (o->kind == REEL_RANKER_XGBOOST) {
        reel_xgb *m;
        reel_xgb_report xr;
        if ((rc = reel_xgb_train(&tr, &va, &o->xgb, p, &m, &xr, d)))
            goto done;
        rep->rounds = xr.best_iteration + 1;
        /* The server scores with reel_gbtree from the JSON file; so does
         * this ranker, so what is measured is what will be served. */
        char tmp[4096];
        const char *file = path;
        if (!file) {
            snprintf(tmp, sizeof tmp, "/tmp/reel-ranker-%d-%p.json",
                     (int)getpid(), (void *)r);
            file = tmp;
        }
        rc = reel_xgb_save(m, file, d);
        reel_xgb_free(m);
        if (!rc)
            rc = reel_gbtree_load(file, &r->trees, d);
        if (!path)
            remove(tmp);
        if (rc)
            goto done;
    } else {
        /* The network learns from squashed copies; va stays raw for the
         * report, which scores through reel_ranker_score(). */
        reel_rows sva;
        reel_rows_init(&sva, va.n_features);
        reel_rows_append(&sva, &va, 0, va.n);
        squash(tr.x, tr.n, tr.n_features, tr.x);
        squash(sva.x, sva.n, sva.n_features, sva.x);
        rc = reel_mlp_train(&tr, &sva, &o->mlp, p, &r->mlp);
        reel_rows_free(&sva);
        if (rc) {
            reel_diag_fail(d, rc, "MLP training failed: %s", reel_strerror(rc));
            goto done;
        }
        rep->rounds = reel_mlp_best(r->mlp).epoch;
        if (path && (rc = reel_mlp_save(r->mlp, path, d)))
            goto done;
    }
    float *s = reel_xmalloc((va.n + 1) * sizeof *s);
    reel_ranker_score(r, va.x, va.n, va.n_features, s);
    rep->valid_auc = reel_auc(s, va.y, va.n);
    rep->valid_logloss = o->kind == REEL_RANKER_XGBOOST &&
                                 o->xgb.objective != REEL_XGB_BINARY_LOGISTIC
                             ? NAN /* margins, not probabilities */
                             : reel_logloss(s, va.y, va.n);
    for (size_t i = 0; i < va.n; i++)
        s[i] = va.x[i * va.n_features + REEL_F_v_views];
    rep->popularity_auc = reel_auc(s, va.y, va.n);
    free(s);
done:
    reel_rows_free(&tr);
    reel_rows_free(&va);
    rep->seconds = reel_clock_mono() - t0;
    if (rc) {
        reel_ranker_free(r);
        return rc;
    }
    *out = r;
    return 0;
}
