#!/usr/bin/python3
"""Oracle for src/embed/image: Pillow decodes, resizes and preprocesses.

Generates test images in a temporary directory (PNG in every colour mode,
some written by Pillow and some by hand: 1/2/4/16-bit, palettes with
indices past PLTE, tRNS, Adam7 interlacing; JPEG at several qualities with
4:2:0, 4:2:2 and 4:4:4 chroma, progressive, grayscale, CMYK, without EOI,
with an EXIF orientation tag) and writes what Pillow 9.4 makes of them:

- decode: Image.open(f).convert("RGB") as raw RGB bytes, or "refused"
  for the truncated files Pillow cannot read (reel must say REEL_EFORMAT);
- resize: Image.resize((w, h), Image.BICUBIC) of a decoded image, to
  smaller and larger sizes, one axis or both;
- clip: Hugging Face CLIPImageProcessor's arithmetic restated in numpy
  (transformers cannot be imported here): shortest side to `size` with
  the resize above (long side int(size * long / short)), centre crop with
  floor offsets and zero padding when the image is smaller than the crop,
  rescale as float64 x * (1/255) stored as float32, (x - mean) / std in
  float32, channels first.

It then runs the unit test binary with REEL_IMAGE_ORACLE_DIR set; its
oracle_matches_pillow test reads manifest.txt and compares: decode and
resize byte for byte, clip within 1e-6. The exit status is the binary's.

usage: /usr/bin/python3 tests/reference/pil_image.py BUILD/tests/test_image
"""
import io
import os
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
from PIL import Image

OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]


# --------------------------------------------------------------------------
# Pictures


def picture(w, h, kind, rng):
    """An h x w x 3 uint8 picture: smooth, noisy, or both with sharp edges."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255 * x / max(w - 1, 1)
    g = 255 * y / max(h - 1, 1)
    b = 127.5 + 127.5 * np.sin((x + 2 * y) / 7.0)
    smooth = np.stack([r, g, b], axis=-1)
    if kind == "gradient":
        out = smooth
    elif kind == "noise":
        out = rng.integers(0, 256, (h, w, 3)).astype(np.float64)
    else:  # mix: gradient, noise, and a hard-edged checkerboard
        checker = (((x // 5) + (y // 3)) % 2)[..., None] * 200.0
        out = 0.5 * smooth + 0.3 * checker + rng.normal(0, 20, (h, w, 3))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------
# PNG written by hand: modes and layouts Pillow does not write


def chunk(kind, data):
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def pack_rows(samples, depth):
    """samples: h x n integer array -> list of packed row bytes."""
    rows = []
    for row in samples:
        if depth == 16:
            rows.append(row.astype(">u2").tobytes())
        elif depth == 8:
            rows.append(row.astype(np.uint8).tobytes())
        else:
            per = 8 // depth
            n = len(row)
            padded = np.zeros(((n + per - 1) // per) * per, dtype=np.uint32)
            padded[:n] = row
            padded = padded.reshape(-1, per)
            byte = np.zeros(len(padded), dtype=np.uint32)
            for i in range(per):
                byte |= padded[:, i] << (8 - depth * (i + 1))
            rows.append(byte.astype(np.uint8).tobytes())
    return rows


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
         (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_bytes(samples, depth, ctype, extra=b"", interlace=False):
    """samples: h x w x channels array of raw sample values."""
    h, w, ch = samples.shape
    raw = b""
    if interlace:
        for x0, y0, dx, dy in ADAM7:
            sub = samples[y0::dy, x0::dx]
            if sub.size == 0:
                continue
            for r in pack_rows(sub.reshape(sub.shape[0], -1), depth):
                raw += b"\0" + r
    else:
        for r in pack_rows(samples.reshape(h, -1), depth):
            raw += b"\0" + r
    ihdr = struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0,
                       1 if interlace else 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra +
            chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


# --------------------------------------------------------------------------
# What transformers' CLIPImageProcessor computes


def clip_reference(img, size, crop, mean, std):
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)
    ow, oh = (size, new_long) if w <= h else (new_long, size)
    arr = np.array(img.resize((ow, oh), Image.BICUBIC))  # h x w x 3 uint8
    # center_crop, done channels-first in transformers
    chw = arr.transpose(2, 0, 1)
    oh_, ow_ = chw.shape[1:]
    top = (oh_ - crop) // 2
    left = (ow_ - crop) // 2
    if top >= 0 and left >= 0:
        chw = chw[:, top:top + crop, left:left + crop]
    else:
        nh, nw = max(crop, oh_), max(crop, ow_)
        padded = np.zeros((3, nh, nw), dtype=chw.dtype)
        tp = -(-(nh - oh_) // 2)  # ceil
        lp = -(-(nw - ow_) // 2)
        padded[:, tp:tp + oh_, lp:lp + ow_] = chw
        top += tp
        left += lp
        chw = padded[:, max(0, top):min(nh, top + crop),
                     max(0, left):min(nw, left + crop)]
    assert chw.shape == (3, crop, crop)
    # rescale: float64 product, stored as float32
    x = (chw.astype(np.float64) * (1 / 255)).astype(np.float32)
    # normalize in float32 (the image's dtype), channel axis first
    m = np.array(mean, dtype=np.float32)
    s = np.array(std, dtype=np.float32)
    x = ((x.T - m) / s).T
    assert x.dtype == np.float32
    return np.ascontiguousarray(x)


# --------------------------------------------------------------------------


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    binary = os.path.abspath(sys.argv[1])
    rng = np.random.default_rng(20240806)
    with tempfile.TemporaryDirectory(prefix="reel-pil-") as tmp:
        manifest = []
        decoded = {}

        def add_file(name, data):
            with open(os.path.join(tmp, name), "wb") as f:
                f.write(data)
            try:
                rgb = Image.open(io.BytesIO(data)).convert("RGB")
            except (OSError, SyntaxError):
                # Pillow cannot read it (truncated): reel must refuse it.
                manifest.append("refused %s" % name)
                return
            exp = name + ".rgb"
            with open(os.path.join(tmp, exp), "wb") as f:
                f.write(rgb.tobytes())
            manifest.append("decode %s %d %d %s" % (name, rgb.width,
                                                    rgb.height, exp))
            decoded[name] = rgb

        def save(im, name, **kw):
            buf = io.BytesIO()
            im.save(buf, **kw)
            add_file(name, buf.getvalue())

        sizes = [(1, 1), (3, 500), (641, 479), (224, 224), (1000, 37),
                 (2, 3), (37, 21)]
        pics = {}
        for w, h in sizes:
            for kind in ("gradient", "noise", "mix"):
                pics[(w, h, kind)] = picture(w, h, kind, rng)

        # PNG written by Pillow
        for (w, h, kind), a in pics.items():
            if kind == "mix" or (w, h) in ((1, 1), (2, 3)):
                save(Image.fromarray(a, "RGB"), "rgb_%dx%d_%s.png" % (w, h, kind),
                     format="PNG")
        g = pics[(641, 479, "mix")]
        save(Image.fromarray(g, "RGB").convert("L"), "l_641x479.png",
             format="PNG")
        save(Image.fromarray(pics[(3, 500, "gradient")]).convert("L"),
             "l_3x500.png", format="PNG")
        rgba = np.concatenate(
            [pics[(224, 224, "noise")],
             rng.integers(0, 256, (224, 224, 1)).astype(np.uint8)], axis=-1)
        save(Image.fromarray(rgba, "RGBA"), "rgba_224x224.png", format="PNG")
        save(Image.fromarray(pics[(1000, 37, "mix")]).convert("LA"),
             "la_1000x37.png", format="PNG")
        save(Image.fromarray(pics[(641, 479, "gradient")]).quantize(37),
             "p_641x479.png", format="PNG")
        save(Image.fromarray(pics[(37, 21, "noise")]).convert("1"),
             "bw_37x21.png", format="PNG")
        g16 = (rng.integers(0, 400, (21, 37))).astype(np.uint16)
        save(Image.fromarray(g16, "I;16"), "i16_37x21.png", format="PNG")

        # PNG written by hand
        a = pics[(37, 21, "mix")].astype(np.uint32)
        add_file("rgb16_37x21.png",
                 png_bytes(a * 257 + rng.integers(0, 256, a.shape), 16, 2))
        a4 = np.concatenate([a, rng.integers(0, 256, (21, 37, 1))], -1)
        add_file("rgba16_37x21.png", png_bytes(a4 * 257 + 3, 16, 6))
        add_file("la16_37x21.png",
                 png_bytes(rng.integers(0, 65536, (21, 37, 2)), 16, 4))
        add_file("g16_raw_37x21.png",
                 png_bytes(rng.integers(0, 600, (21, 37, 1)), 16, 0))
        for depth in (1, 2, 4):
            add_file("g%d_37x21.png" % depth,
                     png_bytes(rng.integers(0, 1 << depth, (21, 37, 1)),
                               depth, 0))
        plte = chunk(b"PLTE", bytes(rng.integers(0, 256, 3 * 5,
                                                 dtype=np.uint8)))
        add_file("p4_outside_plte_37x21.png",
                 png_bytes(rng.integers(0, 16, (21, 37, 1)), 4, 3, plte))
        add_file("p8_outside_plte_37x21.png",
                 png_bytes(rng.integers(0, 256, (21, 37, 1)), 8, 3, plte))
        add_file("g8_trns_37x21.png",
                 png_bytes(pics[(37, 21, "noise")][..., :1], 8, 0,
                           chunk(b"tRNS", b"\0\x07")))
        add_file("rgb_adam7_641x479.png",
                 png_bytes(pics[(641, 479, "noise")], 8, 2, interlace=True))
        add_file("rgb_adam7_3x500.png",
                 png_bytes(pics[(3, 500, "mix")], 8, 2, interlace=True))
        add_file("p1_adam7_37x21.png",
                 png_bytes(rng.integers(0, 2, (21, 37, 1)), 1, 3,
                           chunk(b"PLTE", b"\x10\x20\x30\xf0\xe0\xd0"),
                           interlace=True))

        # JPEG written by Pillow (libjpeg-turbo)
        mix = Image.fromarray(pics[(641, 479, "mix")])
        save(mix, "q75_420_641x479.jpg", format="JPEG", quality=75,
             subsampling=2)
        save(mix, "q95_444_641x479.jpg", format="JPEG", quality=95,
             subsampling=0)
        save(mix, "q50_422_641x479.jpg", format="JPEG", quality=50,
             subsampling=1)
        save(mix, "q90_progressive_641x479.jpg", format="JPEG", quality=90,
             progressive=True)
        save(mix, "q85_optimized_641x479.jpg", format="JPEG", quality=85,
             optimize=True)
        save(Image.fromarray(pics[(224, 224, "gradient")]), "q95_224x224.jpg",
             format="JPEG", quality=95)
        save(Image.fromarray(pics[(1000, 37, "noise")]), "q30_1000x37.jpg",
             format="JPEG", quality=30)
        save(Image.fromarray(pics[(3, 500, "mix")]), "q75_3x500.jpg",
             format="JPEG", quality=75)
        save(Image.fromarray(pics[(1, 1, "noise")]), "q75_1x1.jpg",
             format="JPEG", quality=75)
        save(Image.fromarray(pics[(37, 21, "mix")]), "q100_420_37x21.jpg",
             format="JPEG", quality=100, subsampling=2)
        save(mix.convert("L"), "gray_q85_641x479.jpg", format="JPEG",
             quality=85)
        save(Image.fromarray(pics[(37, 21, "noise")]).convert("L"),
             "gray_q60_37x21.jpg", format="JPEG", quality=60)
        cmyk = np.concatenate([pics[(37, 21, "mix")],
                               pics[(37, 21, "noise")][..., :1]], -1)
        save(Image.frombytes("CMYK", (37, 21), cmyk.tobytes()),
             "cmyk_37x21.jpg", format="JPEG", quality=90)
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90: Pillow's open does not apply it
        save(mix, "exif_rotated_641x479.jpg", format="JPEG", quality=80,
             exif=exif.tobytes())
        buf = io.BytesIO()
        mix.save(buf, format="JPEG", quality=80)
        data = buf.getvalue()
        assert data[-2:] == b"\xff\xd9"
        add_file("no_eoi_641x479.jpg", data[:-2])

        # Truncated files: Pillow refuses them
        png = open(os.path.join(tmp, "rgb_641x479_mix.png"), "rb").read()
        add_file("cut_half_641x479.png", png[:len(png) // 2])
        add_file("cut_in_idat_641x479.png", png[:len(png) - 100])
        add_file("cut_half_641x479.jpg", data[:len(data) // 2])
        add_file("cut_near_end_641x479.jpg", data[:len(data) - 40])
        prog = open(os.path.join(tmp, "q90_progressive_641x479.jpg"),
                    "rb").read()
        add_file("cut_progressive_641x479.jpg", prog[:len(prog) * 3 // 4])

        # Resizes of decoded images
        def add_resize(src, targets):
            im = decoded[src]
            for tw, th in targets:
                out = im.resize((tw, th), Image.BICUBIC)
                exp = "%s.%dx%d.resized" % (src, tw, th)
                with open(os.path.join(tmp, exp), "wb") as f:
                    f.write(out.tobytes())
                manifest.append("resize %s.rgb %d %d %d %d %s" % (
                    src, im.width, im.height, tw, th, exp))

        add_resize("rgb_641x479_mix.png",
                   [(224, 167), (320, 479), (641, 200), (1000, 600),
                    (700, 100), (100, 700), (1, 1), (3, 3), (641, 479),
                    (642, 479), (641, 478), (213, 160)])
        add_resize("q75_420_641x479.jpg", [(224, 167), (301, 224)])
        add_resize("rgb_3x500_mix.png",
                   [(7, 50), (1, 500), (3, 1000), (224, 37333 // 100)])
        add_resize("rgb_1x1_noise.png", [(5, 7), (1, 1), (224, 224), (1, 9)])
        add_resize("rgb_224x224_mix.png",
                   [(224, 224), (223, 225), (112, 112), (448, 448), (57, 13)])
        add_resize("rgb_1000x37_mix.png",
                   [(224, 8), (301, 37), (1000, 74), (6054, 224)])
        add_resize("rgb_2x3_gradient.png", [(3, 2), (200, 300), (1, 2)])
        add_resize("rgb_37x21_mix.png", [(19, 11), (74, 42), (36, 22)])

        # CLIPImageProcessor
        def add_clip(src, size, crop, mean=OPENAI_MEAN, std=OPENAI_STD):
            im = decoded[src]
            x = clip_reference(im, size, crop, mean, std)
            exp = "%s.clip%d_%d.f32" % (src, size, crop)
            with open(os.path.join(tmp, exp), "wb") as f:
                f.write(x.astype("<f4").tobytes())
            manifest.append("clip %s.rgb %d %d %d %d %s %s %s" % (
                src, im.width, im.height, size, crop,
                " ".join(repr(float(v)) for v in mean),
                " ".join(repr(float(v)) for v in std), exp))

        for src in ("rgb_641x479_mix.png", "q75_420_641x479.jpg",
                    "rgb_3x500_mix.png", "rgb_1000x37_mix.png",
                    "rgb_224x224_mix.png", "rgb_1x1_noise.png",
                    "gray_q85_641x479.jpg", "rgba_224x224.png",
                    "rgb_37x21_mix.png"):
            add_clip(src, 224, 224)
        add_clip("rgb_641x479_mix.png", 32, 32)
        add_clip("rgb_641x479_mix.png", 33, 31)
        add_clip("rgb_641x479_mix.png", 20, 24)  # pads the short side
        add_clip("rgb_37x21_mix.png", 16, 40)    # pads both sides
        add_clip("rgb_2x3_gradient.png", 5, 9)
        add_clip("rgb_224x224_mix.png", 224, 256)
        add_clip("rgb_1000x37_mix.png", 37, 37, [0.5, 0.25, 0.125],
                 [0.5, 0.3, 0.7])

        with open(os.path.join(tmp, "manifest.txt"), "w") as f:
            f.write("\n".join(manifest) + "\n")
        print("pil_image.py: %d cases (Pillow %s) in %s" % (
            len(manifest), Image.__version__, tmp), flush=True)
        env = dict(os.environ, REEL_IMAGE_ORACLE_DIR=tmp)
        rc = subprocess.call([binary], env=env)
        if rc != 0:
            print("pil_image.py: %s failed (exit %d)" % (binary, rc))
        return rc


if __name__ == "__main__":
    sys.exit(main())
