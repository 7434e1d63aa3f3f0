#!/usr/bin/python3
"""The CLIP commands of the reel binary against the references.

  /usr/bin/python3 tests/reference/clip_cli.py BUILD/reel

On tiny random checkpoints (tests/reference/clip_torch.py's plain-torch
CLIP, F32, F16 and BF16, config styles full / sparse / legacy) with a
real byte-level BPE vocabulary (tests/reference/clip_bpe.py learns it), it
runs:

- `reel clip tokenize`: ids equal the reference tokenizer's;
- `reel clip text` and `reel clip image`: embeddings agree with torch
  (cosine >= 0.99999, max abs difference <= 1e-4), images preprocessed by
  tests/reference/pil_image.py's CLIPImageProcessor arithmetic (Pillow);
  --batch and --threads do not change them (<= 1e-6);
- `reel clip logits`: exp(logit_scale) x cosine;
- bad inputs: an unreadable or missing image among good ones, a text file
  line that is not UTF-8, a model directory missing a file: a message
  naming the file, exit status 1, the other inputs still printed;
- `reel embed DIR --clip` on a catalogue whose videos have media made with
  FFmpeg (and one broken file, one without media), then `reel search`:
  each video's vector is the weighted mean the header of
  cmd/cmd_embed_clip.c describes, recomputed here from `reel clip image`
  of the key frames' thumbnails' source frames and `reel clip text`.
"""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import clip_bpe  # noqa: E402
import clip_torch  # noqa: E402
import pil_image  # noqa: E402

torch.set_num_threads(1)
COS_MIN, ABS_MAX = 0.99999, 1e-4
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what, file=sys.stderr)


def close(a, b, what):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    mx = float(np.abs(a - b).max())
    check(cos >= COS_MIN and mx <= ABS_MAX,
          "%s: cosine %.8f, max abs difference %.3g" % (what, cos, mx))


def run(reel, args, expect=0):
    r = subprocess.run([reel] + args, capture_output=True)
    if expect is not None and r.returncode != expect:
        check(False, "reel %s: exit %d (expected %d): %s" % (
            " ".join(args[:3]), r.returncode, expect, r.stderr.decode(errors="replace")))
    return r


def lines(r):
    return [json.loads(x) for x in r.stdout.decode().splitlines() if x.strip()]


def make_model(d, tok_dir, vocab_size, end_id, dtype, style, seed, preproc=None):
    os.makedirs(d)
    tc = dict(clip_torch.TEXT, vocab_size=vocab_size, max_position_embeddings=77)
    vc = dict(clip_torch.VISION)
    cfg = clip_torch.configs(style)
    for key, sub in (("text_config", tc), ("vision_config", vc)):
        if key + "_dict" in cfg:
            cfg[key + "_dict"] = dict(cfg[key + "_dict"], **{
                k: sub[k] for k in ("vocab_size", "max_position_embeddings") if k in sub})
        else:
            cfg[key] = dict(cfg[key], **{
                k: sub[k] for k in ("vocab_size", "max_position_embeddings") if k in sub})
    sub_t = cfg.get("text_config_dict", cfg["text_config"])
    sub_v = cfg.get("vision_config_dict", cfg["vision_config"])
    tc, vc = dict(tc, **sub_t), dict(vc, **sub_v)
    torch.manual_seed(seed)
    model = clip_torch.Clip(vc, tc, clip_torch.PROJ)
    clip_torch.round_to(model, dtype)
    st = {n: (dtype, tuple(p.shape), clip_torch.tensor_bytes(p, dtype))
          for n, p in model.state().items()}
    clip_torch.write_safetensors(os.path.join(d, "model.safetensors"), st, seed)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(os.path.join(tok_dir, name), d)
    if preproc:
        with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
            json.dump(preproc, f, indent=2)
    model.end_id = end_id
    return model


def torch_text(model, ids):
    clip_torch.END = model.end_id
    with torch.no_grad():
        return model.text([ids]).numpy()[0]


def torch_image(model, img, size, crop, mean, std):
    x = pil_image.clip_reference(img.convert("RGB"), size, crop, mean, std)
    with torch.no_grad():
        return model.image(torch.tensor(x)[None]).numpy()[0]


def images(d):
    """Test pictures in several modes and sizes."""
    rng = np.random.RandomState(5)
    out = []
    def save(name, img, **kw):
        p = os.path.join(d, name)
        img.save(p, **kw)
        out.append(p)
    yy, xx = np.mgrid[0:40, 0:50]
    rgb = np.stack([xx * 5, yy * 6, (xx + yy) * 2], axis=-1).astype(np.uint8)
    save("gradient.png", Image.fromarray(rgb))
    save("gray.png", Image.fromarray(rng.randint(0, 256, (70, 33)).astype(np.uint8), "L"))
    save("rgba.png", Image.fromarray(rng.randint(0, 256, (64, 64, 4)).astype(np.uint8), "RGBA"))
    save("photo.jpg", Image.fromarray(rng.randint(0, 256, (80, 45, 3)).astype(np.uint8)),
         quality=90)
    save("palette.png", Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=16))
    save("tiny.png", Image.fromarray(rgb[:3, :5]))
    return out


TEXTS = ["a photo of a cat", "A dog on the beach!", "café naïve Ångström", "don't stop 12345",
         "", "the cat sat on the mat, " * 20, "日本語のテキスト", "thumbs \U0001F44D up"]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    reel = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        tok_dir = os.path.join(tmp, "tok")
        vocab_path, merges_path = clip_bpe.write_files(tok_dir, clip_bpe.learn(clip_bpe.CORPUS, 300))
        tok = clip_bpe.Tokenizer(vocab_path, merges_path)
        vocab = json.load(open(vocab_path))
        end_id = vocab[clip_bpe.END]
        pics = images(tmp)
        pre = {"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32},
               "image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.25, 0.3],
               "do_resize": True, "do_center_crop": True, "resample": 3,
               "rescale_factor": 1 / 255}
        variants = [("f32", "F32", "full", None), ("f16", "F16", "sparse", None),
                    ("bf16", "BF16", "legacy", pre)]
        textfile = os.path.join(tmp, "texts.txt")
        with open(textfile, "w", encoding="utf-8") as f:
            f.write("\n".join(t for t in TEXTS if "\n" not in t) + "\n")
        file_texts = [t for t in TEXTS if "\n" not in t]
        for vi, (name, dtype, style, pp) in enumerate(variants):
            mdir = os.path.join(tmp, name)
            model = make_model(mdir, tok_dir, len(vocab), end_id, dtype, style, 20 + vi, pp)
            size = crop = 32
            mean, std = (pp["image_mean"], pp["image_std"]) if pp else (CLIP_MEAN, CLIP_STD)
            # tokenize: arguments and --text-file
            r = run(reel, ["clip", "tokenize", "--clip", mdir, "--text-file", textfile, "--"] +
                    TEXTS[:2])
            got = lines(r)
            want_texts = TEXTS[:2] + file_texts
            check(len(got) == len(want_texts), "%s tokenize: %d lines" % (name, len(got)))
            for g, t in zip(got, want_texts):
                check(g["text"] == t, "%s tokenize: text %r echoed as %r" % (name, t, g["text"]))
                check(g["ids"] == tok.encode(t), "%s tokenize %r: %s != %s" % (
                    name, t, g["ids"][:12], tok.encode(t)[:12]))
            # text embeddings, and batch/threads invariance
            r1 = lines(run(reel, ["clip", "text", "--clip", mdir, "--"] + TEXTS))
            r2 = lines(run(reel, ["clip", "text", "--clip", mdir, "--batch", "3",
                                  "--threads", "2", "--"] + TEXTS))
            check(len(r1) == len(TEXTS) and len(r2) == len(TEXTS), "%s text: line count" % name)
            for a, b, t in zip(r1, r2, TEXTS):
                close(a["embedding"], torch_text(model, tok.encode(t)), "%s text %r" % (name, t))
                check(np.abs(np.array(a["embedding"]) - b["embedding"]).max() <= 1e-6,
                      "%s text %r: --batch/--threads changed the result" % (name, t))
            # image embeddings
            i1 = lines(run(reel, ["clip", "image", "--clip", mdir] + pics))
            i2 = lines(run(reel, ["clip", "image", "--clip", mdir, "--batch", "4",
                                  "--threads", "2"] + pics))
            check(len(i1) == len(pics), "%s image: %d lines" % (name, len(i1)))
            for a, b, p in zip(i1, i2, pics):
                check(a["file"] == p, "%s image: file %s" % (name, a["file"]))
                close(a["embedding"], torch_image(model, Image.open(p), size, crop, mean, std),
                      "%s image %s" % (name, os.path.basename(p)))
                check(np.abs(np.array(a["embedding"]) - b["embedding"]).max() <= 1e-6,
                      "%s image %s: --batch/--threads changed the result" % (name, p))
            # logits
            r = run(reel, ["clip", "logits", "--clip", mdir, "--image"] + pics[:3] +
                    ["--text"] + TEXTS[:3])
            lg = json.loads(r.stdout)
            scale = float(model.logit_scale.exp())
            want = np.array([[scale * float(np.dot(torch_image(model, Image.open(p), size, crop,
                                                               mean, std),
                                                   torch_text(model, tok.encode(t))))
                              for t in TEXTS[:3]] for p in pics[:3]])
            check(lg["images"] == pics[:3] and lg["texts"] == TEXTS[:3], "%s logits: labels" % name)
            check(np.abs(np.array(lg["logits"]) - want).max() <= 1e-3 * scale,
                  "%s logits: %s vs %s" % (name, lg["logits"], want.tolist()))
        mdir = os.path.join(tmp, "f32")
        # an unreadable image in the middle, and a missing one
        bad = os.path.join(tmp, "broken.png")
        with open(bad, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
        missing = os.path.join(tmp, "nope.jpg")
        r = run(reel, ["clip", "image", "--clip", mdir, pics[0], bad, missing, pics[1]], expect=1)
        got = lines(r)
        err = r.stderr.decode()
        check([g["file"] for g in got] == [pics[0], pics[1]], "bad image: printed %s" %
              [g["file"] for g in got])
        check("broken.png" in err and "nope.jpg" in err, "bad image: stderr %r" % err)
        # a text file line that is not UTF-8
        badtext = os.path.join(tmp, "bad.txt")
        with open(badtext, "wb") as f:
            f.write(b"good one\n\xff\xfe bad\nanother good\n")
        r = run(reel, ["clip", "tokenize", "--clip", mdir, "--text-file", badtext], expect=1)
        check([g["text"] for g in lines(r)] == ["good one", "another good"],
              "bad text: printed %s" % r.stdout)
        check("bad.txt:2" in r.stderr.decode(), "bad text: stderr %r" % r.stderr)
        # a model directory missing a file
        for gone in ("vocab.json", "merges.txt", "model.safetensors", "config.json"):
            d2 = os.path.join(tmp, "missing-" + gone)
            shutil.copytree(mdir, d2)
            os.remove(os.path.join(d2, gone))
            r = run(reel, ["clip", "text", "--clip", d2, "hello"], expect=1)
            check(gone in r.stderr.decode() and not r.stdout,
                  "missing %s: stderr %r" % (gone, r.stderr))
        embed_and_search(reel, tmp, mdir, tok)
    if failures:
        sys.exit("clip_cli: %d failures" % len(failures))
    print("clip_cli: all checks passed")


def ffmpeg(args):
    subprocess.run(["ffmpeg", "-v", "error", "-y"] + args, check=True)


def embed_and_search(reel, tmp, mdir, tok):
    data = os.path.join(tmp, "data")
    media = os.path.join(tmp, "media")
    os.makedirs(media)
    # two videos with a hard cut each, one broken file, one without media
    ffmpeg(["-f", "lavfi", "-i", "color=c=red:s=64x48:d=1:r=10", "-f", "lavfi", "-i",
            "testsrc2=s=64x48:d=1:r=10", "-filter_complex", "[0][1]concat=n=2:v=1[v]",
            "-map", "[v]", "-g", "5", "-pix_fmt", "yuv420p", os.path.join(media, "a.mp4")])
    ffmpeg(["-f", "lavfi", "-i", "smptebars=s=64x48:d=2:r=10", "-g", "10", "-pix_fmt",
            "yuv420p", os.path.join(media, "b.mp4")])
    with open(os.path.join(media, "broken.mp4"), "wb") as f:
        f.write(b"not a video at all")
    videos = os.path.join(tmp, "videos.jsonl")
    cat = [{"id": "va", "title": "A red card", "description": "then test patterns",
            "media": "../media/a.mp4"},
           {"id": "v/b", "title": "Colour bars", "media": os.path.join(media, "b.mp4")},
           {"id": "vc", "title": "Broken file", "media": "../media/broken.mp4"},
           {"id": "vd", "title": "A photo of a cat"},
           {"id": "ve"}]
    with open(videos, "w") as f:
        for v in cat:
            f.write(json.dumps(v) + "\n")
    run(reel, ["import", data, "--videos", videos])
    r = run(reel, ["embed", data, "--clip", mdir, "--frames", "3", "--text-weight", "0.4",
                   "--threads", "1"])
    out = r.stdout.decode()
    check("4 of 5 videos" in out and "2 with key frames" in out and "1 media failures" in out,
          "embed --clip summary: %r" % out)
    check("broken.mp4" in r.stderr.decode(), "embed --clip: broken media not named: %r" % r.stderr)
    tsv = os.path.join(data, "thumbs", "va", "frames.tsv")
    check(os.path.exists(tsv), "thumbnails: no %s" % tsv)
    check(os.path.isdir(os.path.join(data, "thumbs", "v%2Fb")), "thumbnails: id not escaped")
    # search: the text-only video titled "A photo of a cat" is the best
    # match of that very text (its vector is that text's embedding)
    r = run(reel, ["search", data, "--clip", mdir, "--k", "3", "--json", "A photo of a cat"])
    res = json.loads(r.stdout)
    check(res["items"][0]["video"] == "vd" and abs(res["items"][0]["score"] - 1) < 1e-4,
          "search: %s" % res)
    check(len(res["items"]) == 3, "search: k")
    # reel index build reads the vectors file (the video without content
    # left out)
    r = run(reel, ["index", "build", "--vectors", os.path.join(data, "vectors", "clip.reel"),
                   "--out", os.path.join(tmp, "clip.idx"), "--metric", "cosine"])
    check("4 x %d" % clip_torch.PROJ in r.stdout.decode(), "index build: %r" % r.stdout)
    # resumable: a finished file renamed to OUT.partial is picked up by a
    # run with the same model and options (nothing left to do), and
    # ignored by one with other options
    vec = os.path.join(data, "vectors", "clip.reel")
    os.rename(vec, vec + ".partial")
    r = run(reel, ["embed", data, "--clip", mdir, "--frames", "3", "--text-weight", "0.4"])
    check("resuming" in r.stderr.decode() and "4 resumed" in r.stdout.decode(),
          "embed --clip resume: %r %r" % (r.stdout, r.stderr))
    check(os.path.exists(vec) and not os.path.exists(vec + ".partial"), "resume: files")
    os.rename(vec, vec + ".partial")
    r = run(reel, ["embed", data, "--clip", mdir, "--frames", "0", "--text-weight", "0.4"])
    check("starting over" in r.stderr.decode() and "4 of 5 videos" in r.stdout.decode() and
          "0 media failures" in r.stdout.decode(), "embed --clip --frames 0: %r" % r.stdout)

if __name__ == "__main__":
    main()
