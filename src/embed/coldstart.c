#include "embed/coldstart.h"

#include <cblas.h>
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/mem.h"
#include "base/strs.h"
#include "embed/als.h"

/* Feature blocks: [0, 64) categories, [64, 96) language, [96, 112) type,
 * [112, 120) numeric (log duration, missing, year, missing, bias, primary
 * category weight), [192, 448) title words. */
enum {
    F_CAT = 0,
    N_CAT = 64,
    F_LANG = 64,
    N_LANG = 32,
    F_TYPE = 96,
    N_TYPE = 16,
    F_NUM = 112,
    F_WORD = 192,
    N_WORD = 256,
};
_Static_assert(F_WORD + N_WORD == REEL_COLD_FEATURES, "feature layout");

static uint32_t bucket(uint32_t id, uint32_t n)
{
    return (uint32_t)(reel_hash_bytes(&id, sizeof id) % n);
}

void reel_cold_features(const reel_dataset *ds, float *x)
{
    const reel_videos *v = reel_dataset_videos(ds);
    memset(x, 0, (size_t)v->n * REEL_COLD_FEATURES * sizeof *x);
    for (uint32_t i = 0; i < v->n; i++) {
        float *r = x + (size_t)i * REEL_COLD_FEATURES;
        uint32_t nc = v->cat_off[i + 1] - v->cat_off[i];
        for (uint32_t c = 0; c < nc; c++)
            /* The primary category weighs double. */
            r[F_CAT + bucket(v->cat[v->cat_off[i] + c], N_CAT)] +=
                c == 0 ? 1.0f : 0.5f;
        if (v->language[i] != REEL_NONE)
            r[F_LANG + bucket(v->language[i], N_LANG)] = 1;
        if (v->type[i] != REEL_NONE)
            r[F_TYPE + bucket(v->type[i], N_TYPE)] = 1;
        if (isnan(v->duration_s[i]))
            r[F_NUM + 1] = 1;
        else
            r[F_NUM] = log1pf(v->duration_s[i]) / 10.0f;
        if (isnan(v->published_at[i])) {
            r[F_NUM + 3] = 1;
        } else {
            int y, m, d;
            reel_clock_to_civil(v->published_at[i], &y, &m, &d);
            r[F_NUM + 2] = (float)(y - 2000) / 20.0f;
        }
        r[F_NUM + 4] = 1; /* bias */
        /* Title words: lowercase alphanumeric runs, hashed. */
        size_t len;
        const char *t = reel_strs_get(&v->title, i, &len);
        double n2 = 0;
        for (size_t a = 0; a < len;) {
            while (a < len && !isalnum((unsigned char)t[a]))
                a++;
            size_t b = a;
            char word[64];
            size_t wl = 0;
            while (b < len && isalnum((unsigned char)t[b])) {
                if (wl < sizeof word)
                    word[wl++] = (char)tolower((unsigned char)t[b]);
                b++;
            }
            if (wl >= 2) {
                float *cell = &r[F_WORD + reel_hash_bytes(word, wl) % N_WORD];
                n2 += 2 * *cell + 1;
                *cell += 1;
            }
            a = b;
        }
        if (n2 > 0)
            for (int k = 0; k < N_WORD; k++)
                r[F_WORD + k] /= (float)sqrt(n2);
    }
}

/* Rows in use, packed: *m of them. */
static void pack(const float *x, const float *y, const uint8_t *use, uint32_t n,
                 uint32_t f, uint32_t dout, float **xs, float **ys, uint32_t *m)
{
    *m = 0;
    for (uint32_t r = 0; r < n; r++)
        *m += !use || use[r];
    *xs = reel_xmalloc(((size_t)*m * f + 1) * sizeof **xs);
    *ys = reel_xmalloc(((size_t)*m * dout + 1) * sizeof **ys);
    for (uint32_t r = 0, k = 0; r < n; r++)
        if (!use || use[r]) {
            memcpy(*xs + (size_t)k * f, x + (size_t)r * f, f * sizeof **xs);
            memcpy(*ys + (size_t)k * dout, y + (size_t)r * dout,
                   dout * sizeof **ys);
            k++;
        }
}

/* Cholesky in place in double: the lower triangle of a (row-major d x d)
 * becomes L with A = L L'. REEL_ERANGE when A is not positive definite. */
static int cholesky(float *a, uint32_t d)
{
    double *l = reel_xcalloc((size_t)d * d + 1, sizeof *l);
    int rc = 0;
    for (uint32_t j = 0; j < d && !rc; j++) {
        double s = a[(size_t)j * d + j];
        for (uint32_t k = 0; k < j; k++)
            s -= l[(size_t)j * d + k] * l[(size_t)j * d + k];
        if (!(s > 0)) {
            rc = REEL_ERANGE;
            break;
        }
        double ljj = sqrt(s);
        l[(size_t)j * d + j] = ljj;
        for (uint32_t i = j + 1; i < d; i++) {
            double t = a[(size_t)i * d + j];
            for (uint32_t k = 0; k < j; k++)
                t -= l[(size_t)i * d + k] * l[(size_t)j * d + k];
            l[(size_t)i * d + j] = t / ljj;
        }
    }
    for (size_t i = 0; i < (size_t)d * d && !rc; i++)
        a[i] = (float)l[i];
    free(l);
    return rc;
}

int reel_ridge_fit(const float *x, const float *y, const uint8_t *use,
                   uint32_t n, uint32_t f, uint32_t dout, double lambda,
                   float *w)
{
    float *xs, *ys;
    uint32_t m;
    pack(x, y, use, n, f, dout, &xs, &ys, &m);
    float *g = reel_xmalloc(((size_t)f * f + 1) * sizeof *g);
    reel_als_gram(xs, m, f, g);
    for (uint32_t i = 0; i < f; i++)
        g[(size_t)i * f + i] += (float)lambda;
    /* X'Y (f x dout) in one call, then both triangular solves for every
     * output column at once. */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)f, (int)dout,
                (int)m, 1.0f, xs, (int)f, ys, (int)dout, 0.0f, w, (int)dout);
    int rc = cholesky(g, f);
    if (!rc) {
        cblas_strsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans,
                    CblasNonUnit, (int)f, (int)dout, 1.0f, g, (int)f, w,
                    (int)dout);
        cblas_strsm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans,
                    CblasNonUnit, (int)f, (int)dout, 1.0f, g, (int)f, w,
                    (int)dout);
    }
    free(xs);
    free(ys);
    free(g);
    return rc;
}

int reel_ridge_fit_naive(const float *x, const float *y, const uint8_t *use,
                         uint32_t n, uint32_t f, uint32_t dout, double lambda,
                         float *w)
{
    /* Rows in use, packed, so the Gram matrix is one BLAS call. */
    uint32_t m = 0;
    for (uint32_t r = 0; r < n; r++)
        m += !use || use[r];
    float *xs = reel_xmalloc(((size_t)m * f + 1) * sizeof *xs);
    float *ys = reel_xmalloc(((size_t)m * dout + 1) * sizeof *ys);
    for (uint32_t r = 0, k = 0; r < n; r++)
        if (!use || use[r]) {
            memcpy(xs + (size_t)k * f, x + (size_t)r * f, f * sizeof *xs);
            memcpy(ys + (size_t)k * dout, y + (size_t)r * dout,
                   dout * sizeof *ys);
            k++;
        }
    float *g = reel_xmalloc((size_t)f * f * sizeof *g);
    float *a = reel_xmalloc((size_t)f * f * sizeof *a);
    float *b = reel_xmalloc(f * sizeof *b);
    reel_als_gram(xs, m, f, g);
    for (uint32_t i = 0; i < f; i++)
        g[(size_t)i * f + i] += (float)lambda;
    int rc = 0;
    for (uint32_t c = 0; c < dout && !rc; c++) {
        /* X'y for this output column. */
        for (uint32_t i = 0; i < f; i++) {
            double s = 0;
            for (uint32_t r = 0; r < m; r++)
                s += (double)xs[(size_t)r * f + i] * ys[(size_t)r * dout + c];
            b[i] = (float)s;
        }
        memcpy(a, g, (size_t)f * f * sizeof *a);
        rc = reel_als_solve(a, b, f);
        for (uint32_t i = 0; i < f && !rc; i++)
            w[(size_t)i * dout + c] = b[i];
    }
    free(xs);
    free(ys);
    free(g);
    free(a);
    free(b);
    return rc;
}

int reel_cold_fill(const reel_dataset *ds, const reel_vectors *content,
                   reel_vectors *cf, double lambda, uint32_t *n_filled)
{
    uint32_t n = cf->n, f, dout = cf->dim;
    *n_filled = 0;
    float *x;
    const uint8_t *has_x = NULL;
    if (content) {
        f = content->dim;
        x = reel_xmalloc(((size_t)n * f + 1) * sizeof *x);
        memcpy(x, content->data, (size_t)n * f * sizeof *x);
        has_x = content->has;
    } else {
        f = REEL_COLD_FEATURES;
        x = reel_xmalloc(((size_t)n * f + 1) * sizeof *x);
        reel_cold_features(ds, x);
    }
    uint8_t *use = reel_xmalloc(n + 1);
    for (uint32_t i = 0; i < n; i++)
        use[i] = cf->has[i] && (!has_x || has_x[i]);
    float *w = reel_xmalloc(((size_t)f * dout + 1) * sizeof *w);
    int rc = reel_ridge_fit(x, cf->data, use, n, f, dout, lambda, w);
    /* The cold rows, a block at a time: X_block W in one call. */
    enum { BLOCK = 4096 };
    uint32_t *rows = reel_xmalloc(BLOCK * sizeof *rows);
    float *xb = reel_xmalloc((size_t)BLOCK * f * sizeof *xb);
    float *ob = reel_xmalloc((size_t)BLOCK * dout * sizeof *ob);
    for (uint32_t i = 0; i < n && !rc;) {
        uint32_t nb = 0;
        for (; i < n && nb < BLOCK; i++)
            if (!cf->has[i] && (!has_x || has_x[i])) {
                memcpy(xb + (size_t)nb * f, x + (size_t)i * f, f * sizeof *xb);
                rows[nb++] = i;
            }
        if (!nb)
            break;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nb,
                    (int)dout, (int)f, 1.0f, xb, (int)f, w, (int)dout, 0.0f, ob,
                    (int)dout);
        for (uint32_t r = 0; r < nb; r++) {
            float *out = reel_vectors_row(cf, rows[r]);
            memcpy(out, ob + (size_t)r * dout, dout * sizeof *out);
            /* With a prior the last coordinate is the predicted popularity
             * term; the rest is unit length like the trained rows. */
            uint32_t du = cf->prior ? dout - 1 : dout;
            double n2 = 0;
            for (uint32_t c = 0; c < du; c++)
                n2 += (double)out[c] * out[c];
            if (n2 <= 0)
                continue;
            if (cf->unit_norm || cf->prior)
                for (uint32_t c = 0; c < du; c++)
                    out[c] = (float)(out[c] / sqrt(n2));
            cf->has[rows[r]] = 1;
            (*n_filled)++;
        }
    }
    free(rows);
    free(xb);
    free(ob);
    free(x);
    free(use);
    free(w);
    return rc;
}
