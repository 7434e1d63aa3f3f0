/*
 * image: 8-bit RGB pictures for CLIP and for key-frame thumbnails.
 *
 * A reel_image owns one row-major buffer of w * h * 3 bytes (R, G, B; no
 * padding between rows). Loading accepts PNG and JPEG (chosen by the file's
 * first bytes, not its name) in any colour mode and converts it the way
 * Pillow's Image.open(f).convert("RGB") does (Pillow 9.4, which decodes JPEG
 * with the same libjpeg-turbo and its default settings: accurate integer
 * IDCT, fancy upsampling): grayscale is replicated, palettes are expanded
 * (indices past the PLTE entries read Pillow's grey ramp, i -> (i, i, i)),
 * alpha and tRNS are dropped (not composited), 1/2/4-bit grey is scaled to
 * 0..255, 16-bit colour and grey+alpha samples keep their high byte, 16-bit
 * grey (Pillow's mode "I") is clipped to 255, not shifted, and CMYK/YCCK
 * JPEGs are read as Adobe-inverted CMYK (Pillow's "CMYK;I": c = 255 -
 * libjpeg's C, and so on) and turned into RGB with Pillow's cmyk2rgb: R =
 * (255 - k) - c * (255 - k) / 255, the product rounded as its MULDIV255,
 * likewise G and B. EXIF orientation is not applied (Pillow's open does not
 * either). JPEG data must be 8-bit with 1, 3 or 4 components (else
 * REEL_EUNSUPPORTED, as Pillow refuses them too). JPEG data that ends while
 * libjpeg still needs bytes is REEL_EFORMAT, exactly where Pillow reports a
 * truncated file (this includes most files missing only their EOI marker,
 * since libjpeg reads ahead); once every scanline is decoded a missing EOI
 * is tolerated, as in Pillow. libjpeg's warnings about corrupt entropy data
 * it recovers from are ignored, as Pillow ignores them. A PNG needs its
 * image data, not IEND (as in Pillow); its chunks are checked by libpng
 * (CRCs included), which is stricter than Pillow for a broken CRC on IDAT or
 * on an ancillary chunk. Sizes are bounded (REEL_IMAGE_MAX_SIDE,
 * REEL_IMAGE_MAX_PIXELS, REEL_IMAGE_MAX_FILE) before anything is allocated.
 *
 * Resizing is Pillow's Image.resize(..., Image.BICUBIC) exactly, byte for
 * byte: the antialiased, separable convolution with the kernel widened by
 * the scale when shrinking, 8-bit fixed-point coefficients, horizontal pass
 * first, rounding and clipping as Pillow does (tests/reference checks it
 * against python3-pil).
 *
 * reel_image_clip_input() is Hugging Face's CLIPImageProcessor: shortest
 * side to `size` (the long side int(size * long / short)) with the resize
 * above, centre crop to crop x crop with the offsets rounded down, rescale
 * by 1/255, (x - mean) / std per channel, written planar (C, H, W) as
 * float32.
 *
 * Ownership: reel_image_free() releases the buffer of an image filled by a
 * function here (safe on a zeroed struct). Thread rules: none; functions are
 * reentrant and share no state.
 */
#ifndef REEL_EMBED_IMAGE_H
#define REEL_EMBED_IMAGE_H

#include <stdint.h>

#include "base/err.h"

#define REEL_IMAGE_MAX_SIDE 65535u
#define REEL_IMAGE_MAX_PIXELS (256u * 1024u * 1024u)
/* reel_image_load() refuses larger files (REEL_ETOOBIG). */
#define REEL_IMAGE_MAX_FILE (1ull << 30)

typedef struct reel_image {
    uint32_t w, h;
    uint8_t *rgb; /* w * h * 3 bytes, owned */
} reel_image;

/* Allocates an uninitialised w x h image. REEL_EINVAL for 0 sides,
 * REEL_ETOOBIG above the limits, REEL_ENOMEM. */
int reel_image_alloc(reel_image *out, uint32_t w, uint32_t h);
void reel_image_free(reel_image *img);

/* Decodes a PNG or JPEG file into RGB; *out is filled only on success.
 * Errors name the file in d (d->file = path, borrowed; d->msg says what is
 * wrong): REEL_EIO/REEL_ENOENT (cannot read), REEL_EUNSUPPORTED (not PNG
 * or JPEG, or a JPEG kind Pillow refuses too), REEL_EFORMAT (broken or
 * truncated data), REEL_ETOOBIG (limits). */
int reel_image_load(const char *path, reel_image *out, reel_diag *d);
/* The same from bytes in memory; `name` (borrowed) goes to d->file. */
int reel_image_decode(const void *data, uint64_t len, const char *name,
                      reel_image *out, reel_diag *d);

/* Pillow-exact antialiased bicubic resize of src to w x h into out (a new
 * image; src is not changed). Like Pillow, the horizontal pass runs first
 * (only if w differs) over the rows the vertical pass needs, then the
 * vertical pass (only if h differs); the same size is a copy. The
 * intermediate image must also fit the limits. REEL_EINVAL for a 0 side,
 * REEL_ETOOBIG above the limits. */
int reel_image_resize_bicubic(const reel_image *src, uint32_t w, uint32_t h,
                              reel_image *out);

/* CLIPImageProcessor: out receives 3 * crop * crop floats (C, H, W).
 * Arithmetic as transformers does it: the resize above on the 8-bit image,
 * then per sample x: r = (float)((double)x * (1.0 / 255)) (rescale in
 * float64, stored as float32), then (r - mean[c]) / std[c] in float32.
 * If the resized image is smaller than crop on a side (crop > size), it is
 * padded with zeros there as transformers' center_crop does: the image
 * sits at offset ceil((crop - side) / 2) and padding normalises to
 * -mean / std. transformers guesses the channel axis of its numpy array
 * and so misreads images 1 or 3 pixels tall as channels-first; reel always
 * reads rows x columns x RGB (what the processor means to do).
 * REEL_EINVAL for size or crop 0 or crop > REEL_IMAGE_MAX_SIDE,
 * REEL_ETOOBIG if the resized image exceeds the limits. */
int reel_image_clip_input(const reel_image *src, uint32_t size, uint32_t crop,
                          const float mean[3], const float std[3], float *out);

/* Writes a baseline JPEG (quality 1..100, libjpeg's default 4:2:0
 * chroma subsampling, JFIF header) of img to path, atomically: a
 * temporary file next to it (path.XXXXXX), fsynced, then renamed into
 * place; on failure the temporary file is removed. REEL_EINVAL for bad
 * arguments, REEL_ETOOBIG for a side over libjpeg's 65500, REEL_EIO (or
 * REEL_ENOENT for a missing directory) when the file cannot be written.
 * The directory is not fsynced: a crash may lose the new name, never
 * expose half a file. */
int reel_image_write_jpeg(const reel_image *img, const char *path, int quality);

/* Module-private (image.c <-> image_jpeg.c): decodes JPEG bytes whose
 * magic was already checked; same contract as reel_image_decode(). */
int reel__image_decode_jpeg(const uint8_t *data, uint64_t len, const char *name,
                            reel_image *out, reel_diag *d);

#endif
