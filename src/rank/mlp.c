#include "rank/mlp.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/rng.h"
#include "base/secfile.h"

#define VERSION 1
#define MAX_LAYERS (REEL_MLP_MAX_HIDDEN + 1)
#define MAX_SOURCE 65536
/* Rows per matrix product when scoring: enough for sgemm to pay off, small
 * enough that the scratch stays in cache for reel's layer widths. */
#define BLOCK 256

struct reel_mlp {
    uint32_t n_layers;
    uint32_t width[MAX_LAYERS + 1]; /* width[0] = features, last = 1 */
    uint32_t max_width;             /* widest layer output */
    size_t n_params;
    size_t off_w[MAX_LAYERS], off_b[MAX_LAYERS];
    float *param;
    float *mean, *std;
    reel_mlp_epoch best;
    uint32_t epochs_run;
    char *source;
};

reel_mlp_opts reel_mlp_opts_default(void)
{
    return (reel_mlp_opts){.n_hidden = 2,
                           .hidden = {64, 32},
                           .batch = 256,
                           .max_epochs = 50,
                           .patience = 5,
                           .lr = 1e-3,
                           .beta1 = 0.9,
                           .beta2 = 0.999,
                           .eps = 1e-8,
                           .weight_decay = 0,
                           .seed = 42,
                           .threads = 1};
}

/* Numerically stable pieces of the output unit, in double. */
static double sigmoid(double z)
{
    if (z >= 0)
        return 1.0 / (1.0 + exp(-z));
    double e = exp(z);
    return e / (1.0 + e);
}

/* -t log(sigmoid(z)) - (1 - t) log(1 - sigmoid(z)) without overflow. */
static double bce(double z, double t)
{
    return fmax(z, 0.0) - z * t + log1p(exp(-fabs(z)));
}

static int shape_ok(uint32_t n_features, uint32_t n_hidden,
                    const uint32_t *hidden)
{
    if (n_features < 1 || n_features > REEL_MLP_MAX_FEATURES ||
        n_hidden > REEL_MLP_MAX_HIDDEN)
        return 0;
    for (uint32_t l = 0; l < n_hidden; l++)
        if (hidden[l] < 1 || hidden[l] > REEL_MLP_MAX_WIDTH)
            return 0;
    return 1;
}

/* A zeroed model of a valid shape: width[0..n_layers]. */
static reel_mlp *model_new(uint32_t n_layers, const uint32_t *width)
{
    reel_mlp *m = reel_xcalloc(1, sizeof *m);
    m->n_layers = n_layers;
    memcpy(m->width, width, (n_layers + 1) * sizeof *width);
    size_t at = 0;
    m->max_width = 1;
    for (uint32_t l = 0; l < n_layers; l++) {
        m->off_w[l] = at;
        at += (size_t)width[l + 1] * width[l];
        m->off_b[l] = at;
        at += width[l + 1];
        if (width[l + 1] > m->max_width)
            m->max_width = width[l + 1];
    }
    m->n_params = at;
    m->param = reel_xcalloc(at, sizeof *m->param);
    m->mean = reel_xcalloc(width[0], sizeof *m->mean);
    m->std = reel_xmalloc(width[0] * sizeof *m->std);
    for (uint32_t j = 0; j < width[0]; j++)
        m->std[j] = 1.0f;
    m->best = (reel_mlp_epoch){0, NAN, NAN, NAN};
    const char *src = "{\"method\":\"mlp\"}";
    m->source = reel_xstrndup(src, strlen(src));
    return m;
}

int reel_mlp_new(uint32_t n_features, uint32_t n_hidden, const uint32_t *hidden,
                 uint64_t seed, reel_mlp **out)
{
    *out = NULL;
    if (!shape_ok(n_features, n_hidden, hidden))
        return REEL_EINVAL;
    uint32_t width[MAX_LAYERS + 1];
    width[0] = n_features;
    for (uint32_t l = 0; l < n_hidden; l++)
        width[l + 1] = hidden[l];
    width[n_hidden + 1] = 1;
    reel_mlp *m = model_new(n_hidden + 1, width);
    /* He initialisation: keeps the variance of ReLU activations steady
     * from layer to layer. Stream 0 of the seed; training shuffles with
     * stream 1, so both are fixed by the seed alone. */
    reel_rng r;
    reel_rng_seed2(&r, seed, 0);
    for (uint32_t l = 0; l < m->n_layers; l++) {
        double sd = sqrt(2.0 / width[l]);
        float *w = m->param + m->off_w[l];
        for (size_t k = 0; k < (size_t)width[l + 1] * width[l]; k++)
            w[k] = (float)(reel_rng_normal(&r) * sd);
    }
    *out = m;
    return 0;
}

void reel_mlp_free(reel_mlp *m)
{
    if (!m)
        return;
    free(m->param);
    free(m->mean);
    free(m->std);
    free(m->source);
    free(m);
}

/* ---- the fast path: products over a block of rows ---- */

/* Activations for up to `cap` rows: act[0] the standardised inputs,
 * act[l + 1] layer l's output (after ReLU, but the logits for the last).
 * dz and da hold gradients with respect to a layer's output and input. */
struct work {
    uint32_t cap;
    float *act[MAX_LAYERS + 1];
    float *dz, *da;
};

static void work_init(struct work *w, const reel_mlp *m, uint32_t cap,
                      int backward)
{
    memset(w, 0, sizeof *w);
    w->cap = cap;
    for (uint32_t l = 0; l <= m->n_layers; l++)
        w->act[l] = reel_xmalloc((size_t)cap * m->width[l] * sizeof(float));
    if (backward) {
        w->dz = reel_xmalloc((size_t)cap * m->max_width * sizeof(float));
        w->da = reel_xmalloc((size_t)cap * m->max_width * sizeof(float));
    }
}

static void work_free(struct work *w)
{
    for (uint32_t l = 0; l <= MAX_LAYERS; l++)
        free(w->act[l]);
    free(w->dz);
    free(w->da);
}

/* A missing (non-finite) feature becomes 0, the standardised mean. */
static void standardise(const reel_mlp *m, const float *xr, float *dst)
{
    for (uint32_t j = 0; j < m->width[0]; j++) {
        float v = xr[j];
        dst[j] = isfinite(v) ? (v - m->mean[j]) / m->std[j] : 0.0f;
    }
}

/* Runs the b rows in w->act[0] through every layer. */
static void forward(const reel_mlp *m, const struct work *w, uint32_t b)
{
    for (uint32_t l = 0; l < m->n_layers; l++) {
        uint32_t in = m->width[l], o = m->width[l + 1];
        const float *wl = m->param + m->off_w[l];
        const float *bl = m->param + m->off_b[l];
        float *z = w->act[l + 1];
        for (uint32_t r = 0; r < b; r++)
            memcpy(z + (size_t)r * o, bl, o * sizeof *z);
        /* Z (b x o) += A (b x in) W' (W is o x in). */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)b, (int)o,
                    (int)in, 1.0f, w->act[l], (int)in, wl, (int)in, 1.0f, z,
                    (int)o);
        if (l + 1 < m->n_layers)
            for (size_t k = 0; k < (size_t)b * o; k++)
                z[k] = z[k] > 0 ? z[k] : 0.0f;
    }
}

/*
 * After forward() on b rows with targets t (0 or 1): adds `scale` times
 * the gradient of the summed cross-entropy to grad (the caller zeroes it
 * and adds weight decay) and returns the summed cross-entropy.
 */
static double backward(const reel_mlp *m, struct work *w, uint32_t b,
                       const float *t, double scale, float *grad)
{
    uint32_t L = m->n_layers;
    const float *logit = w->act[L];
    float *dz = w->dz, *da = w->da;
    double loss = 0;
    for (uint32_t r = 0; r < b; r++) {
        loss += bce(logit[r], t[r]);
        dz[r] = (float)((sigmoid(logit[r]) - t[r]) * scale);
    }
    for (uint32_t l = L; l-- > 0;) {
        uint32_t in = m->width[l], o = m->width[l + 1];
        const float *wl = m->param + m->off_w[l];
        float *gw = grad + m->off_w[l], *gb = grad + m->off_b[l];
        /* dW (o x in) += dZ' (o x b) A (b x in). */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)o, (int)in,
                    (int)b, 1.0f, dz, (int)o, w->act[l], (int)in, 1.0f, gw,
                    (int)in);
        for (uint32_t r = 0; r < b; r++)
            for (uint32_t i = 0; i < o; i++)
                gb[i] += dz[(size_t)r * o + i];
        if (l == 0)
            break;
        /* dA (b x in) = dZ (b x o) W (o x in), then through the ReLU. */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)b, (int)in,
                    (int)o, 1.0f, dz, (int)o, wl, (int)in, 0.0f, da, (int)in);
        const float *a = w->act[l];
        for (size_t k = 0; k < (size_t)b * in; k++)
            da[k] = a[k] > 0 ? da[k] : 0.0f;
        float *tmp = dz;
        dz = da;
        da = tmp;
    }
    return loss;
}

/* weight_decay / 2 * |W|^2 into the loss and weight_decay * W into grad. */
static double decay(const reel_mlp *m, double wd, float *grad)
{
    if (wd == 0)
        return 0;
    double s = 0;
    for (uint32_t l = 0; l < m->n_layers; l++) {
        size_t k = (size_t)m->width[l + 1] * m->width[l];
        const float *wl = m->param + m->off_w[l];
        for (size_t i = 0; i < k; i++) {
            s += (double)wl[i] * wl[i];
            if (grad)
                grad[m->off_w[l] + i] += (float)(wd * wl[i]);
        }
    }
    return 0.5 * wd * s;
}

/* The logits of n rows into out, through w's blocks. */
static void logits(const reel_mlp *m, struct work *w, const float *x, size_t n,
                   size_t stride, float *out)
{
    uint32_t F = m->width[0];
    for (size_t at = 0; at < n; at += w->cap) {
        uint32_t b = (uint32_t)(n - at < w->cap ? n - at : w->cap);
        for (uint32_t r = 0; r < b; r++)
            standardise(m, x + (at + r) * stride, w->act[0] + (size_t)r * F);
        forward(m, w, b);
        memcpy(out + at, w->act[m->n_layers], b * sizeof *out);
    }
}

void reel_mlp_predict(const reel_mlp *m, const float *x, size_t n_rows,
                      size_t stride, float *out)
{
    assert(stride >= m->width[0]);
    if (n_rows == 0)
        return;
    struct work w;
    work_init(&w, m, n_rows < BLOCK ? (uint32_t)n_rows : BLOCK, 0);
    logits(m, &w, x, n_rows, stride, out);
    for (size_t i = 0; i < n_rows; i++)
        out[i] = (float)sigmoid(out[i]);
    work_free(&w);
}

double reel_mlp_loss_grad(const reel_mlp *m, const float *x, const float *y,
                          size_t n_rows, size_t stride, double weight_decay,
                          float *grad)
{
    assert(stride >= m->width[0] && n_rows > 0);
    uint32_t F = m->width[0], cap = n_rows < BLOCK ? (uint32_t)n_rows : BLOCK;
    struct work w;
    work_init(&w, m, cap, 1);
    float *g = grad ? grad : reel_xmalloc(m->n_params * sizeof *g);
    memset(g, 0, m->n_params * sizeof *g);
    float t[BLOCK];
    double loss = 0;
    for (size_t at = 0; at < n_rows; at += cap) {
        uint32_t b = (uint32_t)(n_rows - at < cap ? n_rows - at : cap);
        for (uint32_t r = 0; r < b; r++) {
            standardise(m, x + (at + r) * stride, w.act[0] + (size_t)r * F);
            t[r] = y[at + r] > 0 ? 1.0f : 0.0f;
        }
        forward(m, &w, b);
        loss += backward(m, &w, b, t, 1.0 / (double)n_rows, g);
    }
    loss = loss / (double)n_rows + decay(m, weight_decay, g);
    if (!grad)
        free(g);
    work_free(&w);
    return loss;
}

/* ---- the slow twin: one row at a time, in double ---- */

/* Fills a (sum of widths doubles; layer l's activations at a + off[l])
 * for row xr and returns the logit. */
static double naive_row(const reel_mlp *m, const float *xr, double *a,
                        const size_t *off)
{
    for (uint32_t j = 0; j < m->width[0]; j++)
        a[j] = isfinite(xr[j])
                   ? ((double)xr[j] - m->mean[j]) / (double)m->std[j]
                   : 0.0;
    for (uint32_t l = 0; l < m->n_layers; l++) {
        uint32_t in = m->width[l], o = m->width[l + 1];
        const float *wl = m->param + m->off_w[l];
        const float *bl = m->param + m->off_b[l];
        const double *ai = a + off[l];
        double *ao = a + off[l + 1];
        for (uint32_t i = 0; i < o; i++) {
            double s = bl[i];
            for (uint32_t j = 0; j < in; j++)
                s += (double)wl[(size_t)i * in + j] * ai[j];
            ao[i] = l + 1 < m->n_layers && s < 0 ? 0.0 : s;
        }
    }
    return a[off[m->n_layers]];
}

static double *naive_acts(const reel_mlp *m, size_t *off)
{
    off[0] = 0;
    for (uint32_t l = 0; l < m->n_layers; l++)
        off[l + 1] = off[l] + m->width[l];
    return reel_xmalloc((off[m->n_layers] + 1) * sizeof(double));
}

void reel_mlp_predict_naive(const reel_mlp *m, const float *x, size_t n_rows,
                            size_t stride, float *out)
{
    assert(stride >= m->width[0]);
    size_t off[MAX_LAYERS + 1];
    double *a = naive_acts(m, off);
    for (size_t i = 0; i < n_rows; i++)
        out[i] = (float)sigmoid(naive_row(m, x + i * stride, a, off));
    free(a);
}

double reel_mlp_loss_grad_naive(const reel_mlp *m, const float *x,
                                const float *y, size_t n_rows, size_t stride,
                                double weight_decay, float *grad)
{
    assert(stride >= m->width[0] && n_rows > 0);
    size_t off[MAX_LAYERS + 1];
    double *a = naive_acts(m, off);
    double *acc = reel_xcalloc(m->n_params, sizeof *acc);
    double *dz = reel_xmalloc(2 * (size_t)m->max_width * sizeof *dz);
    double *da = dz + m->max_width;
    double loss = 0;
    for (size_t r = 0; r < n_rows; r++) {
        double t = y[r] > 0 ? 1.0 : 0.0;
        double z = naive_row(m, x + r * stride, a, off);
        loss += bce(z, t);
        dz[0] = sigmoid(z) - t;
        for (uint32_t l = m->n_layers; l-- > 0;) {
            uint32_t in = m->width[l], o = m->width[l + 1];
            const float *wl = m->param + m->off_w[l];
            const double *ai = a + off[l];
            for (uint32_t i = 0; i < o; i++) {
                acc[m->off_b[l] + i] += dz[i];
                for (uint32_t j = 0; j < in; j++)
                    acc[m->off_w[l] + (size_t)i * in + j] += dz[i] * ai[j];
            }
            if (l == 0)
                break;
            for (uint32_t j = 0; j < in; j++) {
                double s = 0;
                for (uint32_t i = 0; i < o; i++)
                    s += dz[i] * wl[(size_t)i * in + j];
                da[j] = ai[j] > 0 ? s : 0.0;
            }
            memcpy(dz, da, in * sizeof *dz);
        }
    }
    loss /= (double)n_rows;
    double s = 0;
    for (uint32_t l = 0; l < m->n_layers; l++) {
        size_t k = (size_t)m->width[l + 1] * m->width[l];
        const float *wl = m->param + m->off_w[l];
        for (size_t i = 0; i < k; i++) {
            s += (double)wl[i] * wl[i];
            acc[m->off_w[l] + i] += n_rows * weight_decay * wl[i];
        }
    }
    loss += 0.5 * weight_decay * s;
    if (grad)
        for (size_t k = 0; k < m->n_params; k++)
            grad[k] = (float)(acc[k] / (double)n_rows);
    free(dz);
    free(acc);
    free(a);
    return loss;
}

/* ---- training ---- */

/* Mean and standard deviation of each feature over its present values,
 * in two passes for accuracy. A feature that never varies (or is never
 * present) keeps std 1, so it standardises to a constant. */
static void fit_scaler(reel_mlp *m, const reel_rows *r)
{
    uint32_t F = r->n_features;
    double *sum = reel_xcalloc(F, sizeof *sum);
    double *ss = reel_xcalloc(F, sizeof *ss);
    size_t *cnt = reel_xcalloc(F, sizeof *cnt);
    for (size_t i = 0; i < r->n; i++) {
        const float *xr = r->x + i * F;
        for (uint32_t j = 0; j < F; j++)
            if (isfinite(xr[j])) {
                sum[j] += xr[j];
                cnt[j]++;
            }
    }
    for (uint32_t j = 0; j < F; j++)
        m->mean[j] = cnt[j] ? (float)(sum[j] / (double)cnt[j]) : 0.0f;
    for (size_t i = 0; i < r->n; i++) {
        const float *xr = r->x + i * F;
        for (uint32_t j = 0; j < F; j++)
            if (isfinite(xr[j])) {
                double dv = (double)xr[j] - m->mean[j];
                ss[j] += dv * dv;
            }
    }
    for (uint32_t j = 0; j < F; j++) {
        double sd = cnt[j] ? sqrt(ss[j] / (double)cnt[j]) : 0;
        /* Below float resolution relative to the mean, the spread is
         * rounding, not signal. */
        float f = (float)sd;
        m->std[j] = sd > 1e-7 * fabs((double)m->mean[j]) && f > 0 && isfinite(f)
                        ? f
                        : 1.0f;
    }
    free(sum);
    free(ss);
    free(cnt);
}

static int labels_ok(const reel_rows *r)
{
    for (size_t i = 0; i < r->n; i++)
        if (!(isfinite(r->y[i]) && r->y[i] >= 0))
            return 0;
    return 1;
}

static int opts_ok(const reel_mlp_opts *o)
{
    return shape_ok(1, o->n_hidden, o->hidden) && o->batch >= 1 &&
           o->max_epochs >= 1 && o->lr > 0 && isfinite(o->lr) &&
           o->beta1 >= 0 && o->beta1 < 1 && o->beta2 >= 0 && o->beta2 < 1 &&
           o->eps > 0 && isfinite(o->eps) && o->weight_decay >= 0 &&
           isfinite(o->weight_decay) && o->threads >= 0 && o->threads <= 1024;
}

struct scored {
    float s, y;
};

static int by_score(const void *a, const void *b)
{
    float x = ((const struct scored *)a)->s, y = ((const struct scored *)b)->s;
    return (x > y) - (x < y);
}

/* Area under the ROC curve by ranks (ties share their mean rank); NAN
 * when one class is absent. */
static double auc(const float *s, const float *y, size_t n)
{
    struct scored *v = reel_xmalloc((n + 1) * sizeof *v);
    double n_pos = 0;
    for (size_t i = 0; i < n; i++) {
        v[i] = (struct scored){s[i], y[i] > 0 ? 1.0f : 0.0f};
        n_pos += v[i].y;
    }
    double n_neg = (double)n - n_pos;
    if (n_pos == 0 || n_neg == 0) {
        free(v);
        return NAN;
    }
    qsort(v, n, sizeof *v, by_score);
    double rank_sum = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        double pos = v[i].y;
        while (j < n && v[j].s == v[i].s)
            pos += v[j++].y;
        rank_sum += pos * ((double)(i + 1) + (double)j) / 2;
        i = j;
    }
    free(v);
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg);
}

static void make_source(reel_mlp *m, const reel_mlp_opts *o)
{
    char hid[64] = "";
    size_t len = 0;
    for (uint32_t l = 0; l < o->n_hidden; l++)
        len += (size_t)snprintf(hid + len, sizeof hid - len, "%s%u",
                                l ? "," : "", o->hidden[l]);
    char src[512];
    snprintf(src, sizeof src,
             "{\"method\":\"mlp\",\"hidden\":[%s],\"batch\":%u,"
             "\"max_epochs\":%u,\"patience\":%u,\"lr\":%g,\"beta1\":%g,"
             "\"beta2\":%g,\"eps\":%g,\"weight_decay\":%g,\"seed\":%llu}",
             hid, o->batch, o->max_epochs, o->patience, o->lr, o->beta1,
             o->beta2, o->eps, o->weight_decay, (unsigned long long)o->seed);
    free(m->source);
    m->source = reel_xstrndup(src, strlen(src));
}

/* Everything an epoch loop needs, freed in one place. */
struct trainer {
    struct work w;
    float *t, *grad, *m1, *v2, *best;
    size_t *perm;
    float *vscore;
};

static void trainer_free(struct trainer *tr)
{
    work_free(&tr->w);
    free(tr->t);
    free(tr->grad);
    free(tr->m1);
    free(tr->v2);
    free(tr->best);
    free(tr->perm);
    free(tr->vscore);
}

/* One Adam step (t counts steps from 1) with the gradient in tr->grad. */
static void adam(reel_mlp *m, struct trainer *tr, const reel_mlp_opts *o,
                 uint64_t t)
{
    float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps;
    float c1 = (float)(o->lr / (1.0 - pow(o->beta1, (double)t)));
    float c2 = (float)(1.0 / (1.0 - pow(o->beta2, (double)t)));
    for (size_t k = 0; k < m->n_params; k++) {
        float g = tr->grad[k];
        tr->m1[k] = b1 * tr->m1[k] + (1 - b1) * g;
        tr->v2[k] = b2 * tr->v2[k] + (1 - b2) * g * g;
        m->param[k] -= c1 * tr->m1[k] / (sqrtf(tr->v2[k] * c2) + eps);
    }
}

/* One pass over the training rows in a fresh shuffled order; returns the
 * mean cross-entropy of the batches before their steps. */
static double epoch(reel_mlp *m, struct trainer *tr, const reel_rows *train,
                    const reel_mlp_opts *o, reel_rng *r, uint64_t *step)
{
    uint32_t F = m->width[0], cap = tr->w.cap;
    reel_rng_shuffle(r, tr->perm, train->n, sizeof *tr->perm);
    double loss = 0;
    for (size_t at = 0; at < train->n; at += cap) {
        uint32_t b = (uint32_t)(train->n - at < cap ? train->n - at : cap);
        for (uint32_t k = 0; k < b; k++) {
            size_t i = tr->perm[at + k];
            standardise(m, train->x + i * F, tr->w.act[0] + (size_t)k * F);
            tr->t[k] = train->y[i] > 0 ? 1.0f : 0.0f;
        }
        forward(m, &tr->w, b);
        memset(tr->grad, 0, m->n_params * sizeof *tr->grad);
        loss += backward(m, &tr->w, b, tr->t, 1.0 / b, tr->grad);
        decay(m, o->weight_decay, tr->grad);
        adam(m, tr, o, ++*step);
    }
    return loss / (double)train->n;
}

static void validate(const reel_mlp *m, struct trainer *tr,
                     const reel_rows *valid, reel_mlp_epoch *e)
{
    logits(m, &tr->w, valid->x, valid->n, valid->n_features, tr->vscore);
    double loss = 0;
    for (size_t i = 0; i < valid->n; i++)
        loss += bce(tr->vscore[i], valid->y[i] > 0 ? 1.0 : 0.0);
    e->valid_loss = loss / (double)valid->n;
    e->valid_auc = auc(tr->vscore, valid->y, valid->n);
}

int reel_mlp_train(const reel_rows *train, const reel_rows *valid,
                   const reel_mlp_opts *o, reel_progress *p, reel_mlp **out)
{
    *out = NULL;
    if (!opts_ok(o) || train->n == 0 ||
        train->n_features > REEL_MLP_MAX_FEATURES || !labels_ok(train))
        return REEL_EINVAL;
    if (valid && (valid->n_features != train->n_features || !labels_ok(valid)))
        return REEL_EINVAL;
    if (valid && valid->n == 0)
        valid = NULL;
    reel_mlp *m;
    int rc =
        reel_mlp_new(train->n_features, o->n_hidden, o->hidden, o->seed, &m);
    if (rc)
        return rc;
    fit_scaler(m, train);
    make_source(m, o);

    struct trainer tr = {0};
    work_init(&tr.w, m, train->n < o->batch ? (uint32_t)train->n : o->batch, 1);
    tr.t = reel_xmalloc(tr.w.cap * sizeof *tr.t);
    tr.grad = reel_xmalloc(m->n_params * sizeof *tr.grad);
    tr.m1 = reel_xcalloc(m->n_params, sizeof *tr.m1);
    tr.v2 = reel_xcalloc(m->n_params, sizeof *tr.v2);
    tr.best = reel_xmalloc(m->n_params * sizeof *tr.best);
    tr.perm = reel_xmalloc(train->n * sizeof *tr.perm);
    for (size_t i = 0; i < train->n; i++)
        tr.perm[i] = i;
    if (valid)
        tr.vscore = reel_xmalloc(valid->n * sizeof *tr.vscore);
    reel_rng r;
    reel_rng_seed2(&r, o->seed, 1);
    /* OpenBLAS has one process-wide thread count; restored below. */
    int blas_threads = openblas_get_num_threads();
    if (o->threads)
        openblas_set_num_threads(o->threads);
    if (p)
        reel_progress_start(p, "mlp", "epochs", o->max_epochs);

    uint64_t step = 0;
    uint32_t since_best = 0;
    for (uint32_t ep = 1; ep <= o->max_epochs; ep++) {
        reel_mlp_epoch e = {ep, epoch(m, &tr, train, o, &r, &step), NAN, NAN};
        m->epochs_run = ep;
        if (!isfinite(e.train_loss)) {
            rc = REEL_ERANGE;
            break;
        }
        if (valid)
            validate(m, &tr, valid, &e);
        if (!valid || m->best.epoch == 0 || e.valid_loss < m->best.valid_loss) {
            m->best = e;
            since_best = 0;
            if (valid)
                memcpy(tr.best, m->param, m->n_params * sizeof *tr.best);
        } else {
            since_best++;
        }
        if (p)
            reel_progress_set(p, ep);
        if (o->on_epoch && o->on_epoch(&e, o->ctx))
            break;
        if (valid && o->patience && since_best >= o->patience)
            break;
    }
    if (p)
        reel_progress_finish(p);
    if (o->threads)
        openblas_set_num_threads(blas_threads);
    if (valid && m->best.epoch)
        memcpy(m->param, tr.best, m->n_params * sizeof *tr.best);
    trainer_free(&tr);
    if (rc) {
        reel_mlp_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

/* ---- the file (docs/formats/mlp.md) ---- */

int reel_mlp_save(const reel_mlp *m, const char *path, reel_diag *d)
{
    uint32_t L = m->n_layers;
    uint64_t par[8] = {VERSION,       m->width[0],   L, m->n_params,
                       m->best.epoch, m->epochs_run, 0, 0};
    double fit[3] = {m->best.train_loss, m->best.valid_loss, m->best.valid_auc};
    size_t src_len = strlen(m->source);
    assert(src_len <= MAX_SOURCE);
    reel_secfile_writer *w;
    int rc = reel_secfile_writer_open(path, "mlp", &w, d);
    if (rc)
        return rc;
    if ((rc = reel_secfile_writer_add(w, "mlp.params", REEL_SEC_U64, par, 8)) ||
        (rc = reel_secfile_writer_add(w, "mlp.shape", REEL_SEC_U32, m->width,
                                      L + 1)) ||
        (rc = reel_secfile_writer_add(w, "mlp.fit", REEL_SEC_F64, fit, 3)) ||
        (rc = reel_secfile_writer_add(w, "mlp.source", REEL_SEC_BYTES,
                                      m->source, src_len)) ||
        (rc = reel_secfile_writer_add(w, "mlp.mean", REEL_SEC_F32, m->mean,
                                      m->width[0])) ||
        (rc = reel_secfile_writer_add(w, "mlp.std", REEL_SEC_F32, m->std,
                                      m->width[0])))
        goto fail;
    for (uint32_t l = 0; l < L; l++) {
        char name[REEL_SECFILE_NAME_MAX + 1];
        snprintf(name, sizeof name, "mlp.w%u", l);
        if ((rc = reel_secfile_writer_add(
                 w, name, REEL_SEC_F32, m->param + m->off_w[l],
                 (uint64_t)m->width[l + 1] * m->width[l])))
            goto fail;
        snprintf(name, sizeof name, "mlp.b%u", l);
        if ((rc = reel_secfile_writer_add(w, name, REEL_SEC_F32,
                                          m->param + m->off_b[l],
                                          m->width[l + 1])))
            goto fail;
    }
    return reel_secfile_writer_commit(w, d);
fail:
    reel_secfile_writer_free(w);
    return reel_diag_fail(d, rc, "cannot write %s: %s", path,
                          reel_strerror(rc));
}

static int all_finite(const reel_section *s)
{
    const float *v = s->data;
    for (uint64_t i = 0; i < s->count; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

int reel_mlp_load(const char *path, reel_mlp **out, reel_diag *d)
{
    *out = NULL;
    reel_secfile *f;
    int rc = reel_secfile_open(path, "mlp", 0, &f, d);
    if (rc)
        return rc;
    const reel_section *sp, *ssh, *sfit, *ssrc, *smean, *sstd;
    const reel_section *sw[MAX_LAYERS], *sb[MAX_LAYERS];
    if ((rc = reel_secfile_need(f, "mlp.params", REEL_SEC_U64, 8, &sp, d)))
        goto fail;
    const uint64_t *par = sp->data;
    if (par[0] != VERSION) {
        rc = reel_diag_fail(d, REEL_EVERSION, "%s: mlp format %llu", path,
                            (unsigned long long)par[0]);
        goto fail;
    }
    if (par[1] < 1 || par[1] > REEL_MLP_MAX_FEATURES || par[2] < 1 ||
        par[2] > MAX_LAYERS) {
        rc = reel_diag_fail(d, REEL_ECORRUPT,
                            "%s: %llu features and %llu layers (limits %d "
                            "and %d)",
                            path, (unsigned long long)par[1],
                            (unsigned long long)par[2], REEL_MLP_MAX_FEATURES,
                            MAX_LAYERS);
        goto fail;
    }
    uint32_t L = (uint32_t)par[2], width[MAX_LAYERS + 1];
    if ((rc = reel_secfile_need(f, "mlp.shape", REEL_SEC_U32, L + 1, &ssh, d)))
        goto fail;
    memcpy(width, ssh->data, (L + 1) * sizeof *width);
    uint64_t n_params = 0;
    for (uint32_t l = 0; l <= L; l++) {
        if (width[l] < 1 || width[l] > REEL_MLP_MAX_WIDTH ||
            (l == 0 && width[l] != par[1]) || (l == L && width[l] != 1)) {
            rc = reel_diag_fail(d, REEL_ECORRUPT,
                                "%s: layer width %u of %u is invalid", path, l,
                                L);
            goto fail;
        }
        if (l < L)
            n_params += (uint64_t)width[l + 1] * (width[l] + 1);
    }
    if (n_params != par[3] || par[5] > UINT32_MAX || par[4] > par[5]) {
        rc = reel_diag_fail(d, REEL_ECORRUPT,
                            "%s: parameter count or epochs inconsistent", path);
        goto fail;
    }
    if ((rc = reel_secfile_need(f, "mlp.fit", REEL_SEC_F64, 3, &sfit, d)) ||
        (rc = reel_secfile_need(f, "mlp.source", REEL_SEC_BYTES, UINT64_MAX,
                                &ssrc, d)) ||
        (rc = reel_secfile_need(f, "mlp.mean", REEL_SEC_F32, width[0], &smean,
                                d)) ||
        (rc =
             reel_secfile_need(f, "mlp.std", REEL_SEC_F32, width[0], &sstd, d)))
        goto fail;
    if (ssrc->length > MAX_SOURCE || memchr(ssrc->data, 0, ssrc->length)) {
        rc = reel_diag_fail(d, REEL_ECORRUPT, "%s: mlp.source malformed", path);
        goto fail;
    }
    const float *sd = sstd->data;
    int ok = all_finite(smean) && all_finite(sstd);
    for (uint32_t j = 0; ok && j < width[0]; j++)
        ok = sd[j] > 0;
    if (!ok) {
        rc =
            reel_diag_fail(d, REEL_ECORRUPT,
                           "%s: standardisation not finite and positive", path);
        goto fail;
    }
    for (uint32_t l = 0; l < L; l++) {
        char name[REEL_SECFILE_NAME_MAX + 1];
        snprintf(name, sizeof name, "mlp.w%u", l);
        if ((rc = reel_secfile_need(f, name, REEL_SEC_F32,
                                    (uint64_t)width[l + 1] * width[l], &sw[l],
                                    d)))
            goto fail;
        snprintf(name, sizeof name, "mlp.b%u", l);
        if ((rc = reel_secfile_need(f, name, REEL_SEC_F32, width[l + 1], &sb[l],
                                    d)))
            goto fail;
        if (!all_finite(sw[l]) || !all_finite(sb[l])) {
            rc =
                reel_diag_fail(d, REEL_ECORRUPT,
                               "%s: layer %u has a non-finite weight", path, l);
            goto fail;
        }
    }
    reel_mlp *m = model_new(L, width);
    memcpy(m->mean, smean->data, width[0] * sizeof *m->mean);
    memcpy(m->std, sstd->data, width[0] * sizeof *m->std);
    for (uint32_t l = 0; l < L; l++) {
        memcpy(m->param + m->off_w[l], sw[l]->data, sw[l]->length);
        memcpy(m->param + m->off_b[l], sb[l]->data, sb[l]->length);
    }
    const double *fit = sfit->data;
    m->best = (reel_mlp_epoch){(uint32_t)par[4], fit[0], fit[1], fit[2]};
    m->epochs_run = (uint32_t)par[5];
    free(m->source);
    m->source = reel_xstrndup(ssrc->data, (size_t)ssrc->length);
    reel_secfile_close(f);
    *out = m;
    return 0;
fail:
    reel_secfile_close(f);
    return rc;
}

/* ---- getters ---- */

uint32_t reel_mlp_n_features(const reel_mlp *m)
{
    return m->width[0];
}

uint32_t reel_mlp_n_layers(const reel_mlp *m)
{
    return m->n_layers;
}

uint32_t reel_mlp_width(const reel_mlp *m, uint32_t l)
{
    assert(l <= m->n_layers);
    return m->width[l];
}

float *reel_mlp_params(reel_mlp *m, size_t *n)
{
    *n = m->n_params;
    return m->param;
}

const float *reel_mlp_mean(const reel_mlp *m)
{
    return m->mean;
}

const float *reel_mlp_std(const reel_mlp *m)
{
    return m->std;
}

reel_mlp_epoch reel_mlp_best(const reel_mlp *m)
{
    return m->best;
}

uint32_t reel_mlp_epochs_run(const reel_mlp *m)
{
    return m->epochs_run;
}

const char *reel_mlp_source(const reel_mlp *m)
{
    return m->source;
}
