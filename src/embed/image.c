/*
 * image.c: RGB images, PNG decoding (libpng), Pillow's bicubic resize and
 * CLIP's preprocessing. JPEG lives in image_jpeg.c.
 */
#include "embed/image.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/mem.h"

/* ---------------------------------------------------------------------- */
/* Images                                                                 */
/* ---------------------------------------------------------------------- */

static int check_size(uint32_t w, uint32_t h)
{
    if (w == 0 || h == 0)
        return REEL_EINVAL;
    if (w > REEL_IMAGE_MAX_SIDE || h > REEL_IMAGE_MAX_SIDE ||
        (uint64_t)w * h > REEL_IMAGE_MAX_PIXELS)
        return REEL_ETOOBIG;
    return 0;
}

int reel_image_alloc(reel_image *out, uint32_t w, uint32_t h)
{
    assert(out);
    int rc = check_size(w, h);
    if (rc)
        return rc;
    uint8_t *p = malloc((size_t)w * h * 3);
    if (!p)
        return REEL_ENOMEM;
    out->w = w;
    out->h = h;
    out->rgb = p;
    return 0;
}

void reel_image_free(reel_image *img)
{
    if (!img)
        return;
    free(img->rgb);
    img->rgb = NULL;
    img->w = img->h = 0;
}

/* ---------------------------------------------------------------------- */
/* Loading                                                                */
/* ---------------------------------------------------------------------- */

static const uint8_t png_magic[8] = {0x89, 'P',  'N',  'G',
                                     '\r', '\n', 0x1a, '\n'};

static int decode_png(const uint8_t *data, uint64_t len, const char *name,
                      reel_image *out, reel_diag *d);

int reel_image_decode(const void *data, uint64_t len, const char *name,
                      reel_image *out, reel_diag *d)
{
    assert(out && (data || len == 0));
    if (d) {
        reel_diag_clear(d);
        d->file = name;
    }
    const uint8_t *p = data;
    if (len >= 8 && memcmp(p, png_magic, 8) == 0)
        return decode_png(p, len, name, out, d);
    if (len >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
        return reel__image_decode_jpeg(p, len, name, out, d);
    return reel_diag_fail(d, REEL_EUNSUPPORTED, "not a PNG or JPEG image");
}

int reel_image_load(const char *path, reel_image *out, reel_diag *d)
{
    assert(path && out);
    if (d) {
        reel_diag_clear(d);
        d->file = path;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return reel_diag_fail(d, e == ENOENT ? REEL_ENOENT : REEL_EIO,
                              "cannot open: %s", strerror(e));
    }
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
        fclose(f);
        return reel_diag_fail(d, REEL_EIO, "not a regular file");
    }
    if ((uint64_t)st.st_size > REEL_IMAGE_MAX_FILE) {
        fclose(f);
        return reel_diag_fail(d, REEL_ETOOBIG,
                              "file of %llu bytes exceeds the %llu-byte limit",
                              (unsigned long long)st.st_size,
                              (unsigned long long)REEL_IMAGE_MAX_FILE);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = reel_xmalloc(n ? n : 1);
    size_t got = fread(buf, 1, n, f);
    int err = ferror(f);
    fclose(f);
    if (err || got != n) {
        free(buf);
        return reel_diag_fail(d, REEL_EIO, "read error");
    }
    int rc = reel_image_decode(buf, n, path, out, d);
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* PNG                                                                    */
/* ---------------------------------------------------------------------- */

/*
 * Everything the libpng run changes lives here, in the caller's frame, so
 * nothing local to the function that calls setjmp is modified between
 * setjmp and a longjmp (C17 7.13.2.1).
 */
typedef struct pngctx {
    const uint8_t *data;
    uint64_t len, pos;
    png_structp png;
    png_infop info;
    int rc; /* set before a longjmp of our own */
    char msg[200];
    uint8_t *raw;   /* decoded rows as libpng gives them (interlaced) */
    uint8_t **rows; /* pointers into raw */
    uint8_t *row;   /* one such row (non-interlaced images) */
    reel_image img; /* the result while it is being built */
} pngctx;

static void png_on_error(png_structp png, png_const_charp msg)
{
    pngctx *c = png_get_error_ptr(png);
    if (!c->rc)
        c->rc = REEL_EFORMAT;
    if (!c->msg[0])
        snprintf(c->msg, sizeof c->msg, "broken PNG: %s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    /* Benign problems (an unknown chunk, extra data) are ignored, as
     * Pillow ignores them. */
    (void)png;
    (void)msg;
}

static void png_on_read(png_structp png, png_bytep out, size_t n)
{
    pngctx *c = png_get_io_ptr(png);
    if (n > c->len - c->pos) {
        c->rc = REEL_EFORMAT;
        snprintf(c->msg, sizeof c->msg, "truncated PNG (data ends early)");
        png_error(png, "truncated");
    }
    memcpy(out, c->data + c->pos, n);
    c->pos += n;
}

/* Pillow's unpacking of one PNG row into RGB (see image.h). */
static void png_row_to_rgb(const uint8_t *in, uint8_t *out, uint32_t w,
                           int ctype, int depth, const uint8_t pal[256][3])
{
    switch (ctype) {
    case PNG_COLOR_TYPE_GRAY:
        for (uint32_t x = 0; x < w; x++) {
            unsigned v;
            if (depth == 16) {
                /* Pillow's mode "I": convert("RGB") clips, it does not
                 * shift. */
                v = (unsigned)in[2 * x] << 8 | in[2 * x + 1];
                v = v > 255 ? 255 : v;
            } else if (depth == 8) {
                v = in[x];
            } else {
                /* png_set_packing gave one sample per byte; scale
                 * 0..2^depth-1 to 0..255 as Pillow's "L;2", "L;4", "1". */
                v = in[x] * (255u / ((1u << depth) - 1));
            }
            out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = (uint8_t)v;
        }
        break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: {
        unsigned step = depth == 16 ? 4 : 2;
        for (uint32_t x = 0; x < w; x++)
            out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = in[step * x];
        break;
    }
    case PNG_COLOR_TYPE_RGB:
    case PNG_COLOR_TYPE_RGB_ALPHA: {
        unsigned ch = ctype == PNG_COLOR_TYPE_RGB ? 3 : 4;
        unsigned bps = depth == 16 ? 2 : 1;
        for (uint32_t x = 0; x < w; x++)
            for (unsigned k = 0; k < 3; k++)
                out[3 * x + k] = in[(ch * x + k) * bps];
        break;
    }
    case PNG_COLOR_TYPE_PALETTE:
        for (uint32_t x = 0; x < w; x++)
            memcpy(out + 3 * x, pal[in[x]], 3);
        break;
    default:
        assert(!"unreachable colour type");
    }
}

static int png_run(pngctx *c)
{
    if (setjmp(png_jmpbuf(c->png)))
        return c->rc ? c->rc : REEL_EFORMAT;

    png_set_read_fn(c->png, c, png_on_read);
    /* Our own limits apply (checked below); libpng's would report a large
     * image as a format error. */
    png_set_user_limits(c->png, 0x7fffffffu, 0x7fffffffu);
    png_read_info(c->png, c->info);

    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(c->png, c->info, &w, &h, &depth, &ctype, &interlace, NULL,
                 NULL);
    int rc = check_size(w, h);
    if (rc) {
        snprintf(c->msg, sizeof c->msg,
                 "PNG of %lu x %lu pixels exceeds the limits (side %u, "
                 "%u pixels)",
                 (unsigned long)w, (unsigned long)h, REEL_IMAGE_MAX_SIDE,
                 REEL_IMAGE_MAX_PIXELS);
        return rc == REEL_EINVAL ? REEL_EFORMAT : rc;
    }

    /* Pillow's palette starts as a grey ramp; PLTE overwrites its head. */
    uint8_t pal[256][3];
    for (int i = 0; i < 256; i++)
        pal[i][0] = pal[i][1] = pal[i][2] = (uint8_t)i;
    if (ctype == PNG_COLOR_TYPE_PALETTE) {
        png_colorp plte = NULL;
        int n_plte = 0;
        if (png_get_PLTE(c->png, c->info, &plte, &n_plte) != PNG_INFO_PLTE) {
            snprintf(c->msg, sizeof c->msg, "broken PNG: no PLTE");
            return REEL_EFORMAT;
        }
        for (int i = 0; i < n_plte && i < 256; i++) {
            pal[i][0] = plte[i].red;
            pal[i][1] = plte[i].green;
            pal[i][2] = plte[i].blue;
        }
    }

    if (depth < 8)
        png_set_packing(c->png);
    int passes = png_set_interlace_handling(c->png);
    png_read_update_info(c->png, c->info);
    size_t rowbytes = png_get_rowbytes(c->png, c->info);
    unsigned ch = png_get_channels(c->png, c->info);
    /* What the conversion below reads: one byte per sample below 8 bits
     * (png_set_packing), 2 at 16. */
    size_t need = (size_t)w * ch * (depth == 16 ? 2 : 1);
    if (rowbytes < need) {
        snprintf(c->msg, sizeof c->msg, "broken PNG: unexpected row size");
        return REEL_EFORMAT;
    }

    rc = reel_image_alloc(&c->img, w, h);
    if (rc) {
        snprintf(c->msg, sizeof c->msg, "out of memory for %lu x %lu pixels",
                 (unsigned long)w, (unsigned long)h);
        return rc;
    }
    if (passes > 1) {
        /* Adam7: the passes fill the whole image, so keep all of it. */
        c->raw = reel_xmalloc(rowbytes * h);
        c->rows = reel_xmalloc(sizeof *c->rows * h);
        for (png_uint_32 y = 0; y < h; y++)
            c->rows[y] = c->raw + rowbytes * y;
        png_read_image(c->png, c->rows);
        for (png_uint_32 y = 0; y < h; y++)
            png_row_to_rgb(c->raw + rowbytes * y,
                           c->img.rgb + (size_t)3 * w * y, w, ctype, depth,
                           (const uint8_t(*)[3])pal);
    } else {
        c->row = reel_xmalloc(rowbytes);
        for (png_uint_32 y = 0; y < h; y++) {
            png_read_row(c->png, c->row, NULL);
            png_row_to_rgb(c->row, c->img.rgb + (size_t)3 * w * y, w, ctype,
                           depth, (const uint8_t(*)[3])pal);
        }
    }
    /* Like Pillow, what follows the image data (IEND, trailing chunks) is
     * not required. */
    return 0;
}

static int decode_png(const uint8_t *data, uint64_t len, const char *name,
                      reel_image *out, reel_diag *d)
{
    pngctx c = {.data = data, .len = len};
    c.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c, png_on_error,
                                   png_on_warning);
    if (!c.png)
        return reel_diag_fail(d, REEL_ENOMEM, "cannot start libpng");
    c.info = png_create_info_struct(c.png);
    if (!c.info) {
        png_destroy_read_struct(&c.png, NULL, NULL);
        return reel_diag_fail(d, REEL_ENOMEM, "cannot start libpng");
    }
    int rc = png_run(&c);
    png_destroy_read_struct(&c.png, &c.info, NULL);
    free(c.raw);
    free(c.rows);
    free(c.row);
    if (rc) {
        reel_image_free(&c.img);
        return reel_diag_fail(d, rc, "%s", c.msg[0] ? c.msg : "broken PNG");
    }
    *out = c.img;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Pillow's resampling                                                    */
/* ---------------------------------------------------------------------- */

/*
 * Pillow 9.4 libImaging/Resample.c, restated. For each output pixel of a
 * pass, a window of input pixels and one weight per pixel:
 *   scale = in / out; fs = max(scale, 1); support = 2 * fs;
 *   center = (i + 0.5) * scale;
 *   first = trunc(center - support + 0.5) clipped to >= 0,
 *   end   = trunc(center + support + 0.5) clipped to <= in;
 *   w_j = cubic((first + j - center + 0.5) / fs), normalised to sum 1;
 * then each weight becomes a fixed-point integer round(w * 2^22) (rounded
 * half away from zero), and an output sample is
 *   clip8((2^21 + sum_j in_j * k_j) >> 22).
 * All of it in double, in this order: the weights must be bit-identical to
 * Pillow's. The build uses ISO C17 (-std=c17) so GCC does not contract
 * a * b + c into an FMA, which would change the last bit of some weights.
 */
#define PRECISION_BITS 22

static double cubic(double x)
{
    const double a = -0.5;
    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0)
        return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

typedef struct coeffs {
    int ksize;  /* weights per output pixel (the stride of k) */
    int *first; /* per output pixel: first input pixel */
    int *count; /* per output pixel: number of input pixels */
    int32_t *k; /* out * ksize fixed-point weights */
} coeffs;

static void coeffs_free(coeffs *c)
{
    free(c->first);
    free(c->count);
    free(c->k);
}

static void coeffs_make(coeffs *c, uint32_t in_size, uint32_t out_size)
{
    const double support_unit = 2.0; /* bicubic */
    double scale = (double)in_size / out_size;
    double fs = scale < 1.0 ? 1.0 : scale;
    double support = support_unit * fs;
    int ksize = (int)ceil(support) * 2 + 1;
    c->ksize = ksize;
    c->first = reel_xmalloc(sizeof(int) * out_size);
    c->count = reel_xmalloc(sizeof(int) * out_size);
    c->k = reel_xcalloc((size_t)out_size * ksize, sizeof(int32_t));
    double *w = reel_xmalloc(sizeof(double) * ksize);
    for (uint32_t i = 0; i < out_size; i++) {
        double center = (i + 0.5) * scale;
        double ss = 1.0 / fs;
        int lo = (int)(center - support + 0.5);
        if (lo < 0)
            lo = 0;
        int hi = (int)(center + support + 0.5);
        if (hi > (int)in_size)
            hi = (int)in_size;
        int n = hi - lo;
        assert(n <= ksize);
        double sum = 0.0;
        for (int j = 0; j < n; j++) {
            w[j] = cubic((j + lo - center + 0.5) * ss);
            sum += w[j];
        }
        int32_t *k = c->k + (size_t)i * ksize;
        for (int j = 0; j < n; j++) {
            double v = sum != 0.0 ? w[j] / sum : w[j];
            v *= (1 << PRECISION_BITS);
            k[j] = v < 0 ? (int32_t)(-0.5 + v) : (int32_t)(0.5 + v);
        }
        c->first[i] = lo;
        c->count[i] = n < 0 ? 0 : n;
    }
    free(w);
}

static inline uint8_t clip8(int32_t acc)
{
    /* An arithmetic shift, as Pillow's table lookup of acc >> 22. */
    int32_t v = acc >> PRECISION_BITS;
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

/* Rows [y0, y0 + out->h) of src, resampled horizontally into out. */
static void pass_horizontal(const reel_image *src, uint32_t y0, const coeffs *c,
                            reel_image *out)
{
    const int32_t half = 1 << (PRECISION_BITS - 1);
    for (uint32_t y = 0; y < out->h; y++) {
        const uint8_t *in = src->rgb + (size_t)3 * src->w * (y0 + y);
        uint8_t *o = out->rgb + (size_t)3 * out->w * y;
        for (uint32_t x = 0; x < out->w; x++) {
            const int32_t *k = c->k + (size_t)x * c->ksize;
            const uint8_t *p = in + (size_t)3 * c->first[x];
            int32_t r = half, g = half, b = half;
            for (int j = 0; j < c->count[x]; j++) {
                r += p[3 * j] * k[j];
                g += p[3 * j + 1] * k[j];
                b += p[3 * j + 2] * k[j];
            }
            o[3 * x] = clip8(r);
            o[3 * x + 1] = clip8(g);
            o[3 * x + 2] = clip8(b);
        }
    }
}

/* Vertical pass; c->first is relative to src's first row. Pillow loops
 * output pixel by output pixel; accumulating whole rows gives the same
 * integers (the same int32 sums, added in the same order per sample)
 * while reading memory in order. */
static void pass_vertical(const reel_image *src, const coeffs *c,
                          reel_image *out)
{
    const size_t n = (size_t)3 * src->w;
    int32_t *acc = reel_xmalloc(sizeof(int32_t) * n);
    for (uint32_t y = 0; y < out->h; y++) {
        const int32_t *k = c->k + (size_t)y * c->ksize;
        for (size_t i = 0; i < n; i++)
            acc[i] = 1 << (PRECISION_BITS - 1);
        for (int j = 0; j < c->count[y]; j++) {
            const uint8_t *in = src->rgb + n * (size_t)(c->first[y] + j);
            int32_t kj = k[j];
            for (size_t i = 0; i < n; i++)
                acc[i] += in[i] * kj;
        }
        uint8_t *o = out->rgb + n * y;
        for (size_t i = 0; i < n; i++)
            o[i] = clip8(acc[i]);
    }
    free(acc);
}

int reel_image_resize_bicubic(const reel_image *src, uint32_t w, uint32_t h,
                              reel_image *out)
{
    assert(src && src->rgb && out);
    int rc = check_size(w, h);
    if (rc)
        return rc;
    int need_h = w != src->w, need_v = h != src->h;
    if (!need_h && !need_v) {
        rc = reel_image_alloc(out, w, h);
        if (!rc)
            memcpy(out->rgb, src->rgb, (size_t)w * h * 3);
        return rc;
    }
    coeffs cv;
    coeffs_make(&cv, src->h, h);
    /* The rows of src the vertical pass reads. */
    int y_first = cv.first[0];
    int y_last = cv.first[h - 1] + cv.count[h - 1];
    reel_image tmp = {0};
    const reel_image *vin = src;
    if (need_h) {
        coeffs ch;
        rc = reel_image_alloc(&tmp, w, (uint32_t)(y_last - y_first));
        if (rc)
            goto done;
        coeffs_make(&ch, src->w, w);
        pass_horizontal(src, (uint32_t)y_first, &ch, &tmp);
        coeffs_free(&ch);
        for (uint32_t i = 0; i < h; i++)
            cv.first[i] -= y_first;
        vin = &tmp;
    }
    if (need_v) {
        rc = reel_image_alloc(out, w, h);
        if (rc)
            goto done;
        pass_vertical(vin, &cv, out);
        reel_image_free(&tmp);
    } else {
        /* Only the horizontal pass ran: all rows, so tmp is the result. */
        assert(tmp.h == h);
        *out = tmp;
        tmp = (reel_image){0};
    }
done:
    reel_image_free(&tmp);
    coeffs_free(&cv);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* CLIP's preprocessing                                                   */
/* ---------------------------------------------------------------------- */

/* transformers' get_resize_output_image_size(default_to_square=False):
 * the short side becomes `size`, the long one int(size * long / short)
 * (Python's true division of exact integers, then truncation). */
static void clip_resize_dims(uint32_t w, uint32_t h, uint32_t size,
                             uint64_t *rw, uint64_t *rh)
{
    uint32_t shrt = w <= h ? w : h, lng = w <= h ? h : w;
    double q = (double)((uint64_t)size * lng) / (double)shrt;
    uint64_t new_long = (uint64_t)q;
    if (w <= h) {
        *rw = size;
        *rh = new_long;
    } else {
        *rw = new_long;
        *rh = size;
    }
}

int reel_image_clip_input(const reel_image *src, uint32_t size, uint32_t crop,
                          const float mean[3], const float std[3], float *out)
{
    assert(src && src->rgb && mean && std && out);
    if (size == 0 || crop == 0 || crop > REEL_IMAGE_MAX_SIDE)
        return REEL_EINVAL;
    uint64_t rw, rh;
    clip_resize_dims(src->w, src->h, size, &rw, &rh);
    if (rw > REEL_IMAGE_MAX_SIDE || rh > REEL_IMAGE_MAX_SIDE)
        return REEL_ETOOBIG;
    reel_image r = {0};
    int rc = reel_image_resize_bicubic(src, (uint32_t)rw, (uint32_t)rh, &r);
    if (rc)
        return rc;

    /* transformers' center_crop: per axis, a side at least `crop` long is
     * cropped from floor((side - crop) / 2); a shorter one is padded with
     * zeros and lands at ceil((crop - side) / 2). */
    uint32_t src_x = 0, dst_x = 0, n_x = crop;
    if (r.w >= crop)
        src_x = (r.w - crop) / 2;
    else
        dst_x = (crop - r.w + 1) / 2, n_x = r.w;
    uint32_t src_y = 0, dst_y = 0, n_y = crop;
    if (r.h >= crop)
        src_y = (r.h - crop) / 2;
    else
        dst_y = (crop - r.h + 1) / 2, n_y = r.h;

    const double rescale = 1.0 / 255;
    const size_t plane = (size_t)crop * crop;
    for (int c = 0; c < 3; c++) {
        /* A padded sample is 0 before the rescale. */
        float pad = (0.0f - mean[c]) / std[c];
        float *o = out + plane * c;
        for (size_t i = 0; i < plane; i++)
            o[i] = pad;
    }
    for (uint32_t y = 0; y < n_y; y++) {
        const uint8_t *row = r.rgb + ((size_t)(src_y + y) * r.w + src_x) * 3;
        size_t base = (size_t)(dst_y + y) * crop + dst_x;
        for (uint32_t x = 0; x < n_x; x++)
            for (int c = 0; c < 3; c++) {
                float v = (float)((double)row[3 * x + c] * rescale);
                out[plane * c + base + x] = (v - mean[c]) / std[c];
            }
    }
    reel_image_free(&r);
    return 0;
}
