/* Unit tests of src/embed/image: every PNG colour type converts as Pillow
 * does, broken, truncated, non-image and oversized inputs give clean
 * errors naming the file, the bicubic resize matches goldens made with
 * Pillow 9.4, CLIP's preprocessing arithmetic, the JPEG writer round-trips.
 * With REEL_IMAGE_ORACLE_DIR set (tests/reference/pil_image.py does it),
 * oracle_matches_pillow compares decode, resize (bytes) and CLIP input
 * (1e-6) with what Pillow computed for many generated images. */
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embed/image.h"

/* ---------------------------------------------------------------------- */
/* Helpers                                                                */
/* ---------------------------------------------------------------------- */

typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void bytes_put(bytes *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void png_put(png_structp png, png_bytep p, size_t n)
{
    bytes_put(png_get_io_ptr(png), p, n);
}

static void png_flush(png_structp png)
{
    (void)png;
}

/* A w x h PNG of the given colour type and depth in memory, made with
 * libpng; `samples` holds rows of packed bytes as PNG stores them. */
static bytes make_png(uint32_t w, uint32_t h, int depth, int ctype,
                      const uint8_t *samples, size_t rowbytes,
                      const png_color *pal, int n_pal)
{
    bytes b = {0};
    png_structp png =
        png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(png);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(png)))
        fail_msg("libpng write failed");
    png_set_write_fn(png, &b, png_put, png_flush);
    png_set_IHDR(png, info, w, h, depth, ctype, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (pal)
        png_set_PLTE(png, info, pal, n_pal);
    png_write_info(png, info);
    for (uint32_t y = 0; y < h; y++)
        png_write_row(png, samples + rowbytes * y);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return b;
}

static uint32_t crc32_ieee(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Rewrites the IHDR of a PNG made by make_png (at offset 8) with a new
 * size and a valid CRC. */
static void png_set_declared_size(bytes *b, uint32_t w, uint32_t h)
{
    uint8_t *ihdr = b->p + 8;
    assert_memory_equal(ihdr + 4, "IHDR", 4);
    put_be32(ihdr + 8, w);
    put_be32(ihdr + 12, h);
    put_be32(ihdr + 8 + 13, crc32_ieee(ihdr + 4, 4 + 13));
}

static bytes read_all(const char *path)
{
    bytes b = {0};
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        bytes_put(&b, buf, n);
    fclose(f);
    return b;
}

static void write_all(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static int decode(const bytes *b, reel_image *img, reel_diag *d)
{
    return reel_image_decode(b->p, b->n, "mem.img", img, d);
}

/* A smooth RGB test picture with some edges. */
static void fill_picture(reel_image *img)
{
    for (uint32_t y = 0; y < img->h; y++)
        for (uint32_t x = 0; x < img->w; x++) {
            uint8_t *p = img->rgb + 3 * ((size_t)y * img->w + x);
            p[0] = (uint8_t)(255 * x / (img->w - 1));
            p[1] = (uint8_t)(255 * y / (img->h - 1));
            p[2] = (uint8_t)(((x / 8 + y / 8) % 2) ? 200 : 40);
        }
}

/* ---------------------------------------------------------------------- */
/* Images                                                                 */
/* ---------------------------------------------------------------------- */

static void alloc_refuses_zero_and_oversized_sides(void **state)
{
    (void)state;
    reel_image img = {0};
    assert_int_equal(reel_image_alloc(&img, 0, 5), REEL_EINVAL);
    assert_int_equal(reel_image_alloc(&img, 5, 0), REEL_EINVAL);
    assert_int_equal(reel_image_alloc(&img, REEL_IMAGE_MAX_SIDE + 1, 1),
                     REEL_ETOOBIG);
    assert_int_equal(reel_image_alloc(&img, 1, REEL_IMAGE_MAX_SIDE + 1),
                     REEL_ETOOBIG);
    assert_int_equal(reel_image_alloc(&img, 20000, 20000), REEL_ETOOBIG);
    assert_null(img.rgb);
    assert_int_equal(reel_image_alloc(&img, 3, 2), 0);
    assert_int_equal(img.w, 3);
    assert_int_equal(img.h, 2);
    assert_non_null(img.rgb);
    reel_image_free(&img);
    assert_null(img.rgb);
    reel_image_free(&img); /* twice: a zeroed image */
    reel_image_free(NULL);
}

/* ---------------------------------------------------------------------- */
/* PNG                                                                    */
/* ---------------------------------------------------------------------- */

static void png_colour_types_convert_as_pillow_does(void **state)
{
    (void)state;
    reel_image img;
    reel_diag d;

    /* 8-bit grey: replicated. */
    const uint8_t g8[] = {0, 7, 128, 255};
    bytes b = make_png(4, 1, 8, PNG_COLOR_TYPE_GRAY, g8, 4, NULL, 0);
    assert_int_equal(decode(&b, &img, &d), 0);
    for (int x = 0; x < 4; x++)
        for (int k = 0; k < 3; k++)
            assert_int_equal(img.rgb[3 * x + k], g8[x]);
    reel_image_free(&img);
    free(b.p);

    /* 16-bit grey is Pillow's mode "I": clipped to 255, not shifted. */
    const uint8_t g16[] = {0, 100, 0, 255, 1, 0, 0x12, 0x34};
    const uint8_t g16_want[] = {100, 255, 255, 255};
    b = make_png(4, 1, 16, PNG_COLOR_TYPE_GRAY, g16, 8, NULL, 0);
    assert_int_equal(decode(&b, &img, &d), 0);
    for (int x = 0; x < 4; x++)
        assert_int_equal(img.rgb[3 * x + 1], g16_want[x]);
    reel_image_free(&img);
    free(b.p);

    /* 2-bit grey is scaled by 85. */
    const uint8_t g2[] = {0x1b}; /* 0, 1, 2, 3 */
    b = make_png(4, 1, 2, PNG_COLOR_TYPE_GRAY, g2, 1, NULL, 0);
    assert_int_equal(decode(&b, &img, &d), 0);
    for (int x = 0; x < 4; x++)
        assert_int_equal(img.rgb[3 * x + 2], 85 * x);
    reel_image_free(&img);
    free(b.p);

    /* Grey + alpha and RGBA: alpha dropped, not composited. */
    const uint8_t ga[] = {10, 0, 200, 128};
    b = make_png(2, 1, 8, PNG_COLOR_TYPE_GRAY_ALPHA, ga, 4, NULL, 0);
    assert_int_equal(decode(&b, &img, &d), 0);
    assert_int_equal(img.rgb[0], 10);
    assert_int_equal(img.rgb[5], 200);
    reel_image_free(&img);
    free(b.p);
    const uint8_t rgba[] = {1, 2, 3, 0, 250, 251, 252, 9};
    b = make_png(2, 1, 8, PNG_COLOR_TYPE_RGB_ALPHA, rgba, 8, NULL, 0);
    assert_int_equal(decode(&b, &img, &d), 0);
    const uint8_t rgba_want[] = {1, 2, 3, 250, 251, 252};
    assert_memory_equal(img.rgb, rgba_want, 6);
    reel_image_free(&img);
    free(b.p);

    /* 16-bit RGB keeps the high byte. */
    const uint8_t rgb16[] = {0x12, 0x34, 0x56, 0xff, 0xab, 0x80};
    b = make_png(1, 1, 16, PNG_COLOR_TYPE_RGB, rgb16, 6, NULL, 0);
    assert_int_equal(decode(&b, &img, &d), 0);
    const uint8_t rgb16_want[] = {0x12, 0x56, 0xab};
    assert_memory_equal(img.rgb, rgb16_want, 3);
    reel_image_free(&img);
    free(b.p);

    /* Palette: expanded; an index past PLTE reads Pillow's grey ramp. */
    const png_color pal[2] = {{10, 20, 30}, {40, 50, 60}};
    const uint8_t idx[] = {0, 1, 200};
    b = make_png(3, 1, 8, PNG_COLOR_TYPE_PALETTE, idx, 3, pal, 2);
    assert_int_equal(decode(&b, &img, &d), 0);
    const uint8_t pal_want[] = {10, 20, 30, 40, 50, 60, 200, 200, 200};
    assert_memory_equal(img.rgb, pal_want, 9);
    reel_image_free(&img);
    free(b.p);
}

static void truncated_png_is_a_format_error_naming_the_file(void **state)
{
    (void)state;
    uint8_t px[16 * 12 * 3];
    for (size_t i = 0; i < sizeof px; i++)
        px[i] = (uint8_t)(i * 37 + i / 7);
    bytes b = make_png(16, 12, 8, PNG_COLOR_TYPE_RGB, px, 48, NULL, 0);
    reel_image img = {0};
    reel_diag d;
    assert_int_equal(decode(&b, &img, &d), 0);
    assert_memory_equal(img.rgb, px, sizeof px);
    reel_image_free(&img);
    /* Like Pillow, the IEND chunk (the last 12 bytes) is not needed. */
    for (size_t n = 0; n < b.n - 12; n++) {
        int rc = reel_image_decode(b.p, n, "cut.png", &img, &d);
        assert_int_equal(rc, n < 8 ? REEL_EUNSUPPORTED : REEL_EFORMAT);
        assert_null(img.rgb);
        assert_string_equal(d.file, "cut.png");
        assert_true(d.msg[0] != '\0');
    }
    reel_image_decode(b.p, 40, "cut.png", &img, &d);
    assert_non_null(strstr(d.msg, "PNG"));
    /* The diag is optional. */
    assert_int_equal(reel_image_decode(b.p, 40, "cut.png", &img, NULL),
                     REEL_EFORMAT);
    assert_int_equal(reel_image_decode(b.p, 4, "cut.png", &img, NULL),
                     REEL_EUNSUPPORTED);
    free(b.p);
}

static void corrupt_png_is_a_format_error(void **state)
{
    (void)state;
    uint8_t px[8 * 8];
    for (size_t i = 0; i < sizeof px; i++)
        px[i] = (uint8_t)(i * 3);
    bytes b = make_png(8, 8, 8, PNG_COLOR_TYPE_GRAY, px, 8, NULL, 0);
    reel_image img = {0};
    reel_diag d;
    /* Each single flipped byte after the signature: a CRC (or a libpng
     * check) catches it, never a crash. */
    for (size_t i = 8; i < b.n; i++) {
        b.p[i] ^= 0x5a;
        int rc = decode(&b, &img, &d);
        b.p[i] ^= 0x5a;
        if (i >= b.n - 12) {
            /* IEND is not read, like Pillow. */
            assert_int_equal(rc, 0);
            reel_image_free(&img);
            continue;
        }
        assert_int_equal(rc, REEL_EFORMAT);
        assert_null(img.rgb);
    }
    free(b.p);
}

static void
png_with_huge_declared_size_is_refused_before_allocating(void **state)
{
    (void)state;
    uint8_t px[4] = {1, 2, 3, 4};
    bytes b = make_png(2, 2, 8, PNG_COLOR_TYPE_GRAY, px, 2, NULL, 0);
    reel_image img = {0};
    reel_diag d;
    const struct {
        uint32_t w, h;
        int rc;
    } cases[] = {
        {100000, 100000, REEL_ETOOBIG}, {70000, 1, REEL_ETOOBIG},
        {1, 70000, REEL_ETOOBIG},       {20000, 20000, REEL_ETOOBIG},
        {0x7fffffff, 2, REEL_ETOOBIG},  {0, 2, REEL_EFORMAT},
        {0x80000000u, 2, REEL_EFORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        png_set_declared_size(&b, cases[i].w, cases[i].h);
        assert_int_equal(decode(&b, &img, &d), cases[i].rc);
        assert_null(img.rgb);
        assert_string_equal(d.file, "mem.img");
    }
    /* A plausible size that does not match the data: the data runs out. */
    png_set_declared_size(&b, 300, 200);
    assert_int_equal(decode(&b, &img, &d), REEL_EFORMAT);
    free(b.p);
}

/* ---------------------------------------------------------------------- */
/* Files                                                                  */
/* ---------------------------------------------------------------------- */

static void non_images_and_missing_files_are_clean_errors(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_image img = {0};
    reel_diag d;
    char *txt = test_write_file(dir, "notes.txt", "just some text\n");
    assert_int_equal(reel_image_load(txt, &img, &d), REEL_EUNSUPPORTED);
    assert_string_equal(d.file, txt);
    assert_null(img.rgb);
    char *empty = test_write_file(dir, "empty.png", "");
    assert_int_equal(reel_image_load(empty, &img, &d), REEL_EUNSUPPORTED);
    char *gif = test_write_file(dir, "a.gif", "GIF89a\1\0\1\0");
    assert_int_equal(reel_image_load(gif, &img, &d), REEL_EUNSUPPORTED);
    char *missing = test_path(dir, "missing.jpg");
    assert_int_equal(reel_image_load(missing, &img, &d), REEL_ENOENT);
    assert_string_equal(d.file, missing);
    assert_int_equal(reel_image_load(dir, &img, &d), REEL_EIO);
    assert_null(img.rgb);
    /* The magic decides, not the name. */
    uint8_t px[3] = {9, 8, 7};
    bytes b = make_png(1, 1, 8, PNG_COLOR_TYPE_RGB, px, 3, NULL, 0);
    char *named_jpg = test_path(dir, "really_a_png.jpg");
    write_all(named_jpg, b.p, b.n);
    assert_int_equal(reel_image_load(named_jpg, &img, &d), 0);
    assert_memory_equal(img.rgb, px, 3);
    reel_image_free(&img);
    free(b.p);
    free(txt);
    free(empty);
    free(gif);
    free(missing);
    free(named_jpg);
    test_rmtree(dir);
    free(dir);
}

/* ---------------------------------------------------------------------- */
/* JPEG                                                                   */
/* ---------------------------------------------------------------------- */

static size_t count_entries(const char *dir)
{
    DIR *dp = opendir(dir);
    assert_non_null(dp);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(dp)))
        n += e->d_name[0] != '.';
    closedir(dp);
    return n;
}

static void jpeg_write_then_read_round_trips(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_image img = {0}, back = {0};
    assert_int_equal(reel_image_alloc(&img, 97, 61), 0);
    fill_picture(&img);
    char *path = test_path(dir, "thumb.jpg");
    assert_int_equal(reel_image_write_jpeg(&img, path, 95), 0);
    assert_int_equal(count_entries(dir), 1); /* no temporary file left */
    reel_diag d;
    assert_int_equal(reel_image_load(path, &back, &d), 0);
    assert_int_equal(back.w, 97);
    assert_int_equal(back.h, 61);
    double sum = 0;
    for (size_t i = 0; i < (size_t)97 * 61 * 3; i++)
        sum += fabs((double)img.rgb[i] - back.rgb[i]);
    /* 4:2:0 chroma blurs the blue 8-pixel checkerboard: Pillow's encoder
     * (the same libjpeg) gives a mean error of 7.23 on this picture. */
    double mean = sum / (97.0 * 61 * 3);
    assert_true(mean < 8.0);
    reel_image_free(&back);

    /* Rewriting replaces the file; the lowest quality still decodes. */
    assert_int_equal(reel_image_write_jpeg(&img, path, 1), 0);
    assert_int_equal(reel_image_load(path, &back, &d), 0);
    assert_int_equal(back.w, 97);
    reel_image_free(&back);
    assert_int_equal(count_entries(dir), 1);

    assert_int_equal(reel_image_write_jpeg(&img, path, 0), REEL_EINVAL);
    assert_int_equal(reel_image_write_jpeg(&img, path, 101), REEL_EINVAL);
    char *nodir = test_path(dir, "no/such/dir.jpg");
    assert_int_equal(reel_image_write_jpeg(&img, nodir, 80), REEL_ENOENT);
    assert_int_equal(count_entries(dir), 1);
    reel_image_free(&img);
    free(nodir);
    free(path);
    test_rmtree(dir);
    free(dir);
}

/* A small JPEG written by reel_image_write_jpeg, as bytes. */
static bytes small_jpeg(uint32_t w, uint32_t h, int quality)
{
    char *dir = test_tmpdir();
    reel_image img = {0};
    assert_int_equal(reel_image_alloc(&img, w, h), 0);
    fill_picture(&img);
    char *path = test_path(dir, "x.jpg");
    assert_int_equal(reel_image_write_jpeg(&img, path, quality), 0);
    bytes b = read_all(path);
    reel_image_free(&img);
    free(path);
    test_rmtree(dir);
    free(dir);
    return b;
}

static void truncated_jpeg_is_a_format_error_naming_the_file(void **state)
{
    (void)state;
    bytes b = small_jpeg(40, 24, 90);
    reel_image img = {0};
    reel_diag d;
    assert_int_equal(reel_image_decode(b.p, b.n, "x.jpg", &img, &d), 0);
    reel_image_free(&img);
    /* Every prefix that cuts into the headers or the scan data. */
    for (size_t n = 0; n + 2 < b.n; n++) {
        int rc = reel_image_decode(b.p, n, "cut.jpg", &img, &d);
        assert_int_equal(rc, n < 3 ? REEL_EUNSUPPORTED : REEL_EFORMAT);
        assert_null(img.rgb);
        assert_string_equal(d.file, "cut.jpg");
        assert_true(d.msg[0] != '\0');
    }
    reel_image_decode(b.p, b.n / 2, "cut.jpg", &img, &d);
    assert_non_null(strstr(d.msg, "truncated"));
    assert_int_equal(reel_image_decode(b.p, b.n / 2, "cut.jpg", &img, NULL),
                     REEL_EFORMAT);
    free(b.p);
}

static void corrupt_jpeg_never_crashes(void **state)
{
    (void)state;
    bytes b = small_jpeg(40, 24, 90);
    reel_image img = {0};
    reel_diag d;
    /* Flipped bytes in the headers are errors or (inside entropy data)
     * tolerated as Pillow tolerates them; either way no crash or leak. */
    for (size_t i = 3; i < b.n; i += 3) {
        b.p[i] ^= 0xa5;
        int rc = reel_image_decode(b.p, b.n, "bad.jpg", &img, &d);
        b.p[i] ^= 0xa5;
        if (rc == 0) {
            assert_int_equal(img.w * img.h > 0, 1);
            reel_image_free(&img);
        } else {
            assert_null(img.rgb);
            assert_true(d.msg[0] != '\0');
        }
    }
    /* Garbage right after SOI. */
    uint8_t junk[64] = {0xff, 0xd8, 0xff, 0x00};
    for (size_t i = 4; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 11);
    assert_int_equal(reel_image_decode(junk, sizeof junk, "junk.jpg", &img, &d),
                     REEL_EFORMAT);
    free(b.p);
}

/* The offset of the SOF0 segment's precision byte. */
static size_t find_sof0(const bytes *b)
{
    for (size_t i = 2; i + 9 < b->n; i++)
        if (b->p[i] == 0xff && b->p[i + 1] == 0xc0)
            return i + 4;
    fail_msg("no SOF0");
    return 0;
}

static void jpeg_with_huge_or_odd_header_is_refused(void **state)
{
    (void)state;
    bytes b = small_jpeg(16, 16, 80);
    size_t sof = find_sof0(&b);
    reel_image img = {0};
    reel_diag d;
    const struct {
        uint16_t w, h;
        int rc;
    } cases[] = {
        {60000, 60000, REEL_ETOOBIG}, /* over REEL_IMAGE_MAX_PIXELS */
        {65535, 1, REEL_ETOOBIG},     /* over libjpeg's 65500 */
        {0, 16, REEL_EFORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint8_t *p = b.p + sof;
        uint8_t save[5];
        memcpy(save, p, 5);
        p[1] = (uint8_t)(cases[i].h >> 8);
        p[2] = (uint8_t)cases[i].h;
        p[3] = (uint8_t)(cases[i].w >> 8);
        p[4] = (uint8_t)cases[i].w;
        assert_int_equal(decode(&b, &img, &d), cases[i].rc);
        assert_null(img.rgb);
        memcpy(p, save, 5);
    }
    /* 12-bit samples: Pillow refuses them too. */
    b.p[sof] = 12;
    assert_int_equal(decode(&b, &img, &d), REEL_EUNSUPPORTED);
    b.p[sof] = 8;
    assert_int_equal(decode(&b, &img, &d), 0);
    reel_image_free(&img);
    free(b.p);
}

/* ---------------------------------------------------------------------- */
/* Resize                                                                 */
/* ---------------------------------------------------------------------- */

/* Made with Pillow 9.4: a 7 x 5 noise image (numpy default_rng(7)) and
 * Image.resize((w, h), Image.BICUBIC) of it. */
static const uint8_t golden_src[7 * 5 * 3] = {
    139, 74,  229, 241, 169, 65,  6,   160, 149, 106, 38,  175, 188, 205, 175,
    229, 98,  249, 10,  148, 95,  86,  147, 198, 66,  39,  106, 213, 171, 45,
    167, 57,  69,  81,  55,  14,  153, 178, 215, 76,  52,  39,  250, 72,  215,
    50,  161, 223, 112, 172, 161, 233, 38,  17,  89,  1,   221, 6,   242, 127,
    143, 6,   60,  210, 94,  25,  166, 33,  249, 189, 12,  204, 33,  57,  124,
    30,  199, 149, 202, 119, 72,  220, 3,   209, 122, 136, 147, 77,  133, 82,
    115, 87,  162, 230, 70,  71,  240, 62,  47,  184, 31,  34,  63,  65,  146};
static const uint8_t golden_4x9[4 * 9 * 3] = {
    192, 123, 154, 65,  128, 140, 184, 138, 206, 112, 133, 169, 151, 115,
    152, 103, 122, 110, 163, 120, 158, 112, 125, 153, 82,  103, 153, 171,
    111, 59,  126, 84,  76,  110, 112, 123, 101, 110, 191, 166, 125, 77,
    118, 60,  94,  86,  113, 103, 155, 117, 225, 135, 132, 126, 116, 55,
    144, 75,  113, 97,  189, 83,  175, 134, 66,  177, 67,  115, 140, 159,
    84,  129, 190, 68,  124, 137, 23,  196, 65,  149, 113, 213, 57,  146,
    126, 115, 119, 139, 68,  146, 185, 86,  65,  149, 50,  111, 89,  142,
    119, 140, 97,  116, 253, 48,  39,  109, 48,  91};
static const uint8_t golden_3x2[3 * 2 * 3] = {132, 119, 154, 135, 99, 110,
                                              112, 117, 138, 145, 94, 158,
                                              137, 78,  119, 141, 80, 109};
static const uint8_t golden_7x3[7 * 3 * 3] = {
    113, 106, 221, 165, 115, 78,  93,  169, 101, 135, 46,  129, 145,
    138, 104, 196, 133, 239, 33,  110, 67,  209, 93,  166, 74,  100,
    212, 160, 136, 143, 172, 46,  48,  63,  53,  160, 76,  209, 134,
    153, 9,   87,  162, 117, 91,  117, 91,  156, 145, 51,  184, 144,
    65,  95,  151, 123, 94,  193, 66,  45,  133, 38,  177};
static const uint8_t golden_10x5[10 * 5 * 3] = {
    133, 68,  239, 208, 125, 136, 198, 177, 70,  11,  163, 146, 59,  64,  170,
    138, 86,  174, 191, 206, 177, 238, 120, 245, 129, 114, 182, 0,   151, 86,
    87,  154, 204, 66,  81,  153, 96,  61,  87,  210, 170, 46,  194, 98,  63,
    134, 43,  45,  81,  59,  19,  142, 162, 185, 122, 127, 146, 71,  44,  28,
    255, 67,  215, 139, 119, 223, 46,  173, 214, 107, 175, 166, 208, 84,  45,
    200, 7,   75,  83,  7,   223, 10,  209, 156, 65,  147, 90,  151, 0,   56,
    213, 98,  11,  185, 63,  147, 171, 23,  255, 192, 12,  207, 83,  31,  146,
    14,  108, 129, 35,  200, 147, 166, 147, 79,  222, 60,  131, 221, 0,   217,
    125, 136, 151, 96,  137, 107, 79,  124, 96,  111, 89,  162, 194, 74,  105,
    244, 67,  57,  239, 61,  46,  204, 35,  28,  124, 45,  85,  56,  67,  153};

static void resize_matches_pillow_goldens(void **state)
{
    (void)state;
    reel_image src = {0}, out = {0};
    assert_int_equal(reel_image_alloc(&src, 7, 5), 0);
    memcpy(src.rgb, golden_src, sizeof golden_src);
    const struct {
        uint32_t w, h;
        const uint8_t *want;
    } cases[] = {
        {4, 9, golden_4x9},   /* shrink x, enlarge y */
        {3, 2, golden_3x2},   /* shrink both */
        {7, 3, golden_7x3},   /* vertical pass only */
        {10, 5, golden_10x5}, /* horizontal pass only */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        assert_int_equal(
            reel_image_resize_bicubic(&src, cases[i].w, cases[i].h, &out), 0);
        assert_int_equal(out.w, cases[i].w);
        assert_int_equal(out.h, cases[i].h);
        assert_memory_equal(out.rgb, cases[i].want,
                            (size_t)cases[i].w * cases[i].h * 3);
        reel_image_free(&out);
    }
    /* The same size is a copy. */
    assert_int_equal(reel_image_resize_bicubic(&src, 7, 5, &out), 0);
    assert_memory_equal(out.rgb, golden_src, sizeof golden_src);
    reel_image_free(&out);
    reel_image_free(&src);
}

static void resize_keeps_a_constant_image_constant(void **state)
{
    (void)state;
    reel_image src = {0}, out = {0};
    assert_int_equal(reel_image_alloc(&src, 33, 17), 0);
    for (size_t i = 0; i < (size_t)33 * 17 * 3; i++)
        src.rgb[i] = (uint8_t)(i % 3 == 0 ? 0 : i % 3 == 1 ? 77 : 255);
    const uint32_t sizes[][2] = {{1, 1}, {5, 40}, {300, 2}, {33, 100}};
    for (size_t s = 0; s < 4; s++) {
        assert_int_equal(
            reel_image_resize_bicubic(&src, sizes[s][0], sizes[s][1], &out), 0);
        for (size_t i = 0; i < (size_t)out.w * out.h; i++) {
            assert_int_equal(out.rgb[3 * i], 0);
            assert_int_equal(out.rgb[3 * i + 1], 77);
            assert_int_equal(out.rgb[3 * i + 2], 255);
        }
        reel_image_free(&out);
    }
    assert_int_equal(reel_image_resize_bicubic(&src, 0, 3, &out), REEL_EINVAL);
    assert_int_equal(
        reel_image_resize_bicubic(&src, REEL_IMAGE_MAX_SIDE + 1, 3, &out),
        REEL_ETOOBIG);
    assert_null(out.rgb);
    reel_image_free(&src);
}

/* ---------------------------------------------------------------------- */
/* CLIP input                                                             */
/* ---------------------------------------------------------------------- */

static const float clip_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float clip_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

static float normalised(uint8_t v, int c)
{
    float r = (float)((double)v * (1.0 / 255));
    return (r - clip_mean[c]) / clip_std[c];
}

static void clip_input_of_a_constant_image(void **state)
{
    (void)state;
    const uint8_t rgb[3] = {10, 128, 250};
    reel_image src = {0};
    assert_int_equal(reel_image_alloc(&src, 50, 30), 0);
    for (size_t i = 0; i < (size_t)50 * 30; i++)
        memcpy(src.rgb + 3 * i, rgb, 3);
    float *out = malloc(sizeof(float) * 3 * 24 * 24);
    assert_int_equal(
        reel_image_clip_input(&src, 24, 24, clip_mean, clip_std, out), 0);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 24 * 24; i++)
            assert_true(out[c * 24 * 24 + i] == normalised(rgb[c], c));

    /* crop > size: 50 x 30 -> 33 x 20, padded to 24 rows with zeros at
     * offset ceil(4 / 2) = 2, columns cropped from (33 - 24) / 2. */
    assert_int_equal(
        reel_image_clip_input(&src, 20, 24, clip_mean, clip_std, out), 0);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 24; y++)
            for (int x = 0; x < 24; x++) {
                float want =
                    y >= 2 && y < 22 ? normalised(rgb[c], c) : normalised(0, c);
                assert_true(out[(c * 24 + y) * 24 + x] == want);
            }
    assert_int_equal(
        reel_image_clip_input(&src, 0, 24, clip_mean, clip_std, out),
        REEL_EINVAL);
    assert_int_equal(
        reel_image_clip_input(&src, 24, 0, clip_mean, clip_std, out),
        REEL_EINVAL);
    free(out);
    reel_image_free(&src);
}

static void clip_input_crops_the_centre_rounding_down(void **state)
{
    (void)state;
    /* 9 x 4 with distinct columns; size 4 keeps it (no resize), a 4 x 4
     * crop starts at column (9 - 4) / 2 = 2. */
    reel_image src = {0};
    assert_int_equal(reel_image_alloc(&src, 9, 4), 0);
    for (uint32_t y = 0; y < 4; y++)
        for (uint32_t x = 0; x < 9; x++)
            for (int c = 0; c < 3; c++)
                src.rgb[3 * (y * 9 + x) + c] = (uint8_t)(20 * x + 5 * y + c);
    float out[3 * 4 * 4];
    assert_int_equal(
        reel_image_clip_input(&src, 4, 4, clip_mean, clip_std, out), 0);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 4; x++)
                assert_true(out[(c * 4 + y) * 4 + x] ==
                            normalised((uint8_t)(20 * (x + 2) + 5 * y + c), c));
    reel_image_free(&src);
}

/* ---------------------------------------------------------------------- */
/* The Pillow oracle                                                      */
/* ---------------------------------------------------------------------- */

static bytes oracle_file(const char *dir, const char *name)
{
    char *p = test_path(dir, name);
    bytes b = read_all(p);
    free(p);
    return b;
}

static void oracle_source(const char *dir, const char *name, uint32_t w,
                          uint32_t h, reel_image *img)
{
    bytes b = oracle_file(dir, name);
    assert_int_equal(b.n, (size_t)w * h * 3);
    assert_int_equal(reel_image_alloc(img, w, h), 0);
    memcpy(img->rgb, b.p, b.n);
    free(b.p);
}

static int first_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return (int)i;
    return -1;
}

static void oracle_matches_pillow(void **state)
{
    (void)state;
    const char *dir = getenv("REEL_IMAGE_ORACLE_DIR");
    if (!dir)
        skip();
    char *mpath = test_path(dir, "manifest.txt");
    FILE *f = fopen(mpath, "r");
    assert_non_null(f);
    char line[1024];
    int n_decode = 0, n_resize = 0, n_clip = 0, n_bad = 0, n_refused = 0;
    double clip_max = 0;
    while (fgets(line, sizeof line, f)) {
        char kind[16], a[256], exp[256];
        unsigned w, h, tw, th;
        if (sscanf(line, "%15s", kind) != 1)
            continue;
        if (strcmp(kind, "decode") == 0) {
            assert_int_equal(
                sscanf(line, "%*s %255s %u %u %255s", a, &w, &h, exp), 4);
            char *path = test_path(dir, a);
            reel_image img = {0};
            reel_diag d;
            int rc = reel_image_load(path, &img, &d);
            bytes want = oracle_file(dir, exp);
            if (rc) {
                char msg[512];
                reel_diag_format(&d, msg, sizeof msg);
                print_error("decode %s: %s (%s)\n", a, reel_errname(rc), msg);
                n_bad++;
            } else if (img.w != w || img.h != h ||
                       first_diff(img.rgb, want.p, want.n) >= 0) {
                print_error("decode %s: %ux%u, Pillow %ux%u, first byte "
                            "differing %d\n",
                            a, img.w, img.h, w, h,
                            img.w == w && img.h == h
                                ? first_diff(img.rgb, want.p, want.n)
                                : -1);
                n_bad++;
            }
            n_decode++;
            reel_image_free(&img);
            free(want.p);
            free(path);
        } else if (strcmp(kind, "refused") == 0) {
            /* Pillow could not open it: neither may we. */
            assert_int_equal(sscanf(line, "%*s %255s", a), 1);
            char *path = test_path(dir, a);
            reel_image img = {0};
            reel_diag d;
            int rc = reel_image_load(path, &img, &d);
            if (rc != REEL_EFORMAT) {
                print_error("refused %s: got %s\n", a, reel_errname(rc));
                n_bad++;
            }
            reel_image_free(&img);
            free(path);
            n_refused++;
        } else if (strcmp(kind, "resize") == 0) {
            assert_int_equal(sscanf(line, "%*s %255s %u %u %u %u %255s", a, &w,
                                    &h, &tw, &th, exp),
                             6);
            reel_image src = {0}, out = {0};
            oracle_source(dir, a, w, h, &src);
            bytes want = oracle_file(dir, exp);
            assert_int_equal(want.n, (size_t)tw * th * 3);
            assert_int_equal(reel_image_resize_bicubic(&src, tw, th, &out), 0);
            int at = first_diff(out.rgb, want.p, want.n);
            if (at >= 0) {
                print_error("resize %s %ux%u -> %ux%u: byte %d is %u, Pillow "
                            "%u\n",
                            a, w, h, tw, th, at, out.rgb[at], want.p[at]);
                n_bad++;
            }
            n_resize++;
            reel_image_free(&src);
            reel_image_free(&out);
            free(want.p);
        } else if (strcmp(kind, "clip") == 0) {
            unsigned size, crop;
            double m[3], s[3];
            assert_int_equal(sscanf(line,
                                    "%*s %255s %u %u %u %u %lf %lf %lf %lf "
                                    "%lf %lf %255s",
                                    a, &w, &h, &size, &crop, &m[0], &m[1],
                                    &m[2], &s[0], &s[1], &s[2], exp),
                             12);
            float mean[3], std[3];
            for (int c = 0; c < 3; c++) {
                mean[c] = (float)m[c];
                std[c] = (float)s[c];
            }
            reel_image src = {0};
            oracle_source(dir, a, w, h, &src);
            bytes want = oracle_file(dir, exp);
            size_t n = (size_t)3 * crop * crop;
            assert_int_equal(want.n, n * sizeof(float));
            float *out = malloc(n * sizeof(float));
            assert_int_equal(
                reel_image_clip_input(&src, size, crop, mean, std, out), 0);
            double worst = 0;
            for (size_t i = 0; i < n; i++) {
                float wv;
                memcpy(&wv, want.p + 4 * i, 4);
                double e = fabs((double)out[i] - wv);
                worst = e > worst ? e : worst;
            }
            if (worst > 1e-6) {
                print_error("clip %s size %u crop %u: max |diff| %g\n", a, size,
                            crop, worst);
                n_bad++;
            }
            clip_max = worst > clip_max ? worst : clip_max;
            n_clip++;
            free(out);
            free(want.p);
            reel_image_free(&src);
        } else {
            fail_msg("manifest: unknown line %s", line);
        }
    }
    fclose(f);
    free(mpath);
    print_message("oracle: %d decode, %d refused, %d resize, %d clip cases; "
                  "%d differ from Pillow; clip max |diff| %g\n",
                  n_decode, n_refused, n_resize, n_clip, n_bad, clip_max);
    assert_true(n_decode > 0 && n_resize > 0 && n_clip > 0);
    assert_int_equal(n_bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(alloc_refuses_zero_and_oversized_sides),
        cmocka_unit_test(png_colour_types_convert_as_pillow_does),
        cmocka_unit_test(truncated_png_is_a_format_error_naming_the_file),
        cmocka_unit_test(corrupt_png_is_a_format_error),
        cmocka_unit_test(
            png_with_huge_declared_size_is_refused_before_allocating),
        cmocka_unit_test(non_images_and_missing_files_are_clean_errors),
        cmocka_unit_test(jpeg_write_then_read_round_trips),
        cmocka_unit_test(truncated_jpeg_is_a_format_error_naming_the_file),
        cmocka_unit_test(corrupt_jpeg_never_crashes),
        cmocka_unit_test(jpeg_with_huge_or_odd_header_is_refused),
        cmocka_unit_test(resize_matches_pillow_goldens),
        cmocka_unit_test(resize_keeps_a_constant_image_constant),
        cmocka_unit_test(clip_input_of_a_constant_image),
        cmocka_unit_test(clip_input_crops_the_centre_rounding_down),
        cmocka_unit_test(oracle_matches_pillow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
