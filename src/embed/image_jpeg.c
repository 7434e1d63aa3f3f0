/*
 * image_jpeg.c: JPEG decoding and encoding with libjpeg(-turbo).
 *
 * Decoding is set up as Pillow 9.4's JpegDecode.c sets it up for
 * Image.open(): libjpeg's defaults (accurate integer IDCT, fancy
 * upsampling, no scaling), the colour space libjpeg infers from the file,
 * output as grey (1 component), RGB (3) or CMYK (4). Pillow treats CMYK
 * output as Adobe-inverted ("CMYK;I") and converts it with cmyk2rgb;
 * cmyk_to_rgb() below does the same arithmetic.
 *
 * libjpeg reports errors through error_exit, which must not return: ours
 * records the error and longjmps back to the one function that called
 * setjmp. All state that function changes lives in a struct owned by its
 * caller, which frees everything afterwards (C17 7.13.2.1: automatic
 * variables of the setjmp caller that change afterwards are unreliable).
 */
#include "embed/image.h"

#include <assert.h>
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <jerror.h>

#include "base/mem.h"

/* A progressive file with an absurd number of scans is an attack on the
 * decoder's time, not an image (djpeg's -maxscans has the same idea). */
#define MAX_SCANS 1000

typedef struct jerr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    int rc;
    char msg[JMSG_LENGTH_MAX + 32];
} jerr;

/* Maps a libjpeg error code to ours and keeps its message. */
static void on_error(j_common_ptr cinfo)
{
    jerr *e = (jerr *)cinfo->err;
    if (!e->rc) {
        char buf[JMSG_LENGTH_MAX];
        (*cinfo->err->format_message)(cinfo, buf);
        switch (cinfo->err->msg_code) {
        case JERR_INPUT_EOF:
            e->rc = REEL_EFORMAT;
            snprintf(e->msg, sizeof e->msg, "truncated JPEG (data ends early)");
            break;
        case JERR_BAD_PRECISION:
        case JERR_SOF_UNSUPPORTED:
        case JERR_NOT_COMPILED:
            e->rc = REEL_EUNSUPPORTED;
            snprintf(e->msg, sizeof e->msg, "unsupported JPEG: %s", buf);
            break;
        case JERR_IMAGE_TOO_BIG:
            e->rc = REEL_ETOOBIG;
            snprintf(e->msg, sizeof e->msg, "JPEG too large: %s", buf);
            break;
        case JERR_OUT_OF_MEMORY:
            e->rc = REEL_ENOMEM;
            snprintf(e->msg, sizeof e->msg, "libjpeg: %s", buf);
            break;
        case JERR_FILE_WRITE:
            e->rc = REEL_EIO;
            snprintf(e->msg, sizeof e->msg, "cannot write: %s", buf);
            break;
        default:
            e->rc = REEL_EFORMAT;
            snprintf(e->msg, sizeof e->msg, "broken JPEG: %s", buf);
        }
    }
    longjmp(e->jb, 1);
}

static void on_output(j_common_ptr cinfo)
{
    /* Warnings (corrupt entropy data that libjpeg recovers from) are
     * silent, as in Pillow. */
    (void)cinfo;
}

static void jerr_init(jerr *e)
{
    jpeg_std_error(&e->pub);
    e->pub.error_exit = on_error;
    e->pub.output_message = on_output;
    e->rc = 0;
    e->msg[0] = '\0';
}

/* ---------------------------------------------------------------------- */
/* Decoding                                                               */
/* ---------------------------------------------------------------------- */

typedef struct jdec {
    jerr err;
    struct jpeg_decompress_struct cinfo;
    struct jpeg_source_mgr src;
    struct jpeg_progress_mgr progress;
    /* Once every scanline is read, a missing EOI is tolerated as Pillow
     * tolerates it; before that, running out of data is an error. */
    int finishing;
    uint8_t *row;
    reel_image img;
} jdec;

static const JOCTET fake_eoi[2] = {0xff, JPEG_EOI};

static void src_init(j_decompress_ptr cinfo)
{
    (void)cinfo;
}

static boolean src_fill(j_decompress_ptr cinfo)
{
    jdec *c = cinfo->client_data;
    if (!c->finishing)
        ERREXIT(cinfo, JERR_INPUT_EOF);
    c->src.next_input_byte = fake_eoi;
    c->src.bytes_in_buffer = sizeof fake_eoi;
    return TRUE;
}

static void src_skip(j_decompress_ptr cinfo, long n)
{
    struct jpeg_source_mgr *src = cinfo->src;
    if (n <= 0)
        return;
    while ((size_t)n > src->bytes_in_buffer) {
        n -= (long)src->bytes_in_buffer;
        src_fill(cinfo);
    }
    src->next_input_byte += n;
    src->bytes_in_buffer -= (size_t)n;
}

static void src_term(j_decompress_ptr cinfo)
{
    (void)cinfo;
}

static void on_progress(j_common_ptr common)
{
    j_decompress_ptr cinfo = (j_decompress_ptr)common;
    if (cinfo->input_scan_number > MAX_SCANS) {
        jdec *c = cinfo->client_data;
        c->err.rc = REEL_EFORMAT;
        snprintf(c->err.msg, sizeof c->err.msg,
                 "broken JPEG: more than %d scans", MAX_SCANS);
        longjmp(c->err.jb, 1);
    }
}

/* Pillow's "CMYK;I" unpacking (each byte inverted) followed by its
 * cmyk2rgb: R = clip(nk - nk * C / 255) with nk = 255 - K, the product
 * rounded as MULDIV255. */
static inline uint8_t muldiv255(unsigned a, unsigned b)
{
    unsigned t = a * b + 128;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

static void cmyk_to_rgb(const uint8_t *in, uint8_t *out, uint32_t w)
{
    for (uint32_t x = 0; x < w; x++) {
        unsigned nk = 255u - (255u - in[4 * x + 3]);
        for (int k = 0; k < 3; k++) {
            int v = (int)nk - muldiv255(255u - in[4 * x + k], nk);
            out[3 * x + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
}

static int dec_run(jdec *c, const uint8_t *data, uint64_t len)
{
    if (setjmp(c->err.jb))
        return c->err.rc ? c->err.rc : REEL_EFORMAT;

    jpeg_create_decompress(&c->cinfo);
    c->src.init_source = src_init;
    c->src.fill_input_buffer = src_fill;
    c->src.skip_input_data = src_skip;
    c->src.resync_to_restart = jpeg_resync_to_restart;
    c->src.term_source = src_term;
    c->src.next_input_byte = data;
    c->src.bytes_in_buffer = (size_t)len;
    c->cinfo.src = &c->src;
    c->progress.progress_monitor = on_progress;
    c->cinfo.progress = &c->progress;

    jpeg_read_header(&c->cinfo, TRUE);
    int n_comp = c->cinfo.num_components;
    if (n_comp != 1 && n_comp != 3 && n_comp != 4) {
        snprintf(c->err.msg, sizeof c->err.msg,
                 "unsupported JPEG: %d components (1, 3 or 4 are read)",
                 n_comp);
        return REEL_EUNSUPPORTED;
    }
    uint32_t w = c->cinfo.image_width, h = c->cinfo.image_height;
    if (w == 0 || h == 0 || w > REEL_IMAGE_MAX_SIDE ||
        h > REEL_IMAGE_MAX_SIDE || (uint64_t)w * h > REEL_IMAGE_MAX_PIXELS) {
        snprintf(c->err.msg, sizeof c->err.msg,
                 "JPEG of %u x %u pixels exceeds the limits (side %u, %u "
                 "pixels)",
                 w, h, REEL_IMAGE_MAX_SIDE, REEL_IMAGE_MAX_PIXELS);
        return w == 0 || h == 0 ? REEL_EFORMAT : REEL_ETOOBIG;
    }
    c->cinfo.out_color_space = n_comp == 1   ? JCS_GRAYSCALE
                               : n_comp == 3 ? JCS_RGB
                                             : JCS_CMYK;

    jpeg_start_decompress(&c->cinfo);
    assert(c->cinfo.output_width == w && c->cinfo.output_height == h);
    assert(c->cinfo.output_components == n_comp);
    int rc = reel_image_alloc(&c->img, w, h);
    if (rc) {
        snprintf(c->err.msg, sizeof c->err.msg, "out of memory");
        return rc;
    }
    if (n_comp != 3)
        c->row = reel_xmalloc((size_t)w * n_comp);
    while (c->cinfo.output_scanline < h) {
        uint32_t y = c->cinfo.output_scanline;
        uint8_t *dst = c->img.rgb + (size_t)3 * w * y;
        JSAMPROW rp = n_comp == 3 ? dst : c->row;
        if (jpeg_read_scanlines(&c->cinfo, &rp, 1) != 1) {
            snprintf(c->err.msg, sizeof c->err.msg, "broken JPEG");
            return REEL_EFORMAT;
        }
        if (n_comp == 1) {
            for (uint32_t x = 0; x < w; x++)
                dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = c->row[x];
        } else if (n_comp == 4) {
            cmyk_to_rgb(c->row, dst, w);
        }
    }
    c->finishing = 1;
    jpeg_finish_decompress(&c->cinfo);
    return 0;
}

int reel__image_decode_jpeg(const uint8_t *data, uint64_t len, const char *name,
                            reel_image *out, reel_diag *d)
{
    (void)name; /* d->file was set by reel_image_decode */
    jdec *c = reel_xcalloc(1, sizeof *c);
    jerr_init(&c->err);
    c->cinfo.err = &c->err.pub;
    c->cinfo.client_data = c;
    int rc = dec_run(c, data, len);
    /* Safe whether or not jpeg_create_decompress ran (c is zeroed). */
    jpeg_destroy_decompress(&c->cinfo);
    free(c->row);
    if (rc) {
        reel_image_free(&c->img);
        rc = reel_diag_fail(d, rc, "%s",
                            c->err.msg[0] ? c->err.msg : "broken JPEG");
    } else {
        *out = c->img;
    }
    free(c);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Encoding                                                               */
/* ---------------------------------------------------------------------- */

typedef struct jenc {
    jerr err;
    struct jpeg_compress_struct cinfo;
} jenc;

static int enc_run(jenc *c, const reel_image *img, FILE *f, int quality)
{
    if (setjmp(c->err.jb))
        return c->err.rc ? c->err.rc : REEL_EIO;
    jpeg_create_compress(&c->cinfo);
    jpeg_stdio_dest(&c->cinfo, f);
    c->cinfo.image_width = img->w;
    c->cinfo.image_height = img->h;
    c->cinfo.input_components = 3;
    c->cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c->cinfo);
    jpeg_set_quality(&c->cinfo, quality, TRUE);
    jpeg_start_compress(&c->cinfo, TRUE);
    while (c->cinfo.next_scanline < img->h) {
        /* libjpeg does not write through the row pointer. */
        JSAMPROW rp =
            (JSAMPROW)(img->rgb + (size_t)3 * img->w * c->cinfo.next_scanline);
        jpeg_write_scanlines(&c->cinfo, &rp, 1);
    }
    jpeg_finish_compress(&c->cinfo);
    return 0;
}

int reel_image_write_jpeg(const reel_image *img, const char *path, int quality)
{
    if (!img || !img->rgb || !path || !*path || quality < 1 || quality > 100 ||
        img->w == 0 || img->h == 0)
        return REEL_EINVAL;
    size_t n = strlen(path) + 8;
    char *tmp = reel_xmalloc(n);
    snprintf(tmp, n, "%s.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return e == ENOENT || e == ENOTDIR ? REEL_ENOENT : REEL_EIO;
    }
    /* mkstemp makes the file private; a thumbnail is for anyone who may
     * read the directory. */
    (void)fchmod(fd, 0644);
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        close(fd);
        unlink(tmp);
        free(tmp);
        return REEL_EIO;
    }
    jenc *c = reel_xcalloc(1, sizeof *c);
    jerr_init(&c->err);
    c->cinfo.err = &c->err.pub;
    int rc = enc_run(c, img, f, quality);
    jpeg_destroy_compress(&c->cinfo);
    free(c);
    if (!rc && (fflush(f) || fsync(fileno(f))))
        rc = REEL_EIO;
    if (fclose(f) && !rc)
        rc = REEL_EIO;
    if (!rc && rename(tmp, path))
        rc = REEL_EIO;
    if (rc)
        unlink(tmp);
    free(tmp);
    return rc;
}
