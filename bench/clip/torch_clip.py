#!/usr/bin/python3
"""bench/clip's peer: the same CLIP architecture in python3-torch.

  torch_clip.py make DIR          writes a ViT-B/32-sized CLIP with random
                                  weights (config.json, model.safetensors,
                                  F32) and its inputs (pixels, 77-token ids)
  torch_clip.py time DIR THREADS  times torch on the same checkpoint and
                                  inputs; prints one JSON line

The model is tests/reference/clip_torch.py's (written from the architecture
description, checked against reel there); here it runs batched, under
torch.inference_mode(), as a team would run it.
"""
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "reference"))
import clip_torch  # noqa: E402

VISION = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
              num_attention_heads=12, image_size=224, patch_size=32, num_channels=3,
              layer_norm_eps=1e-5, hidden_act="quick_gelu")
TEXT = dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
            num_attention_heads=8, vocab_size=49408, max_position_embeddings=77,
            layer_norm_eps=1e-5, hidden_act="quick_gelu", eos_token_id=2)
PROJ = 512
END = 49407


def build(seed=1):
    torch.manual_seed(seed)
    m = clip_torch.Clip(VISION, TEXT, PROJ)
    with torch.no_grad():  # CLIP-like scales, so activations stay sane
        for p in m.parameters():
            if p.dim() >= 2:
                p.mul_(0.02 / max(p.std().item(), 1e-6))
    return m.eval()


def text_batch(m, ids):
    x = m.tok(ids) + m.tpos.weight[: ids.shape[1]]
    for layer in m.tlayers:
        x = layer(x, True)
    x = m.final_ln(x)
    pos = (ids == END).int().argmax(dim=1)
    e = m.tproj(x[torch.arange(ids.shape[0]), pos])
    return e / e.norm(dim=-1, keepdim=True)


def make(d):
    os.makedirs(d, exist_ok=True)
    m = build()
    st = {n: ("F32", tuple(p.shape), clip_torch.tensor_bytes(p, "F32"))
          for n, p in m.state().items()}
    clip_torch.write_safetensors(os.path.join(d, "model.safetensors"), st, 0)
    cfg = {"projection_dim": PROJ, "text_config": TEXT, "vision_config": VISION}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    rng = np.random.RandomState(3)
    rng.randn(8, 3, 224, 224).astype("<f4").tofile(os.path.join(d, "px8.f32"))
    ids = rng.randint(0, 49406, size=(8, 77)).astype("<i4")
    ids[:, 0], ids[:, -1] = 49406, END
    ids.tofile(os.path.join(d, "ids8.i32"))


def best(fn, min_time=2.0, runs=3):
    fn()  # warm-up
    out = []
    for _ in range(runs):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= min_time / runs:
                break
        out.append(dt / n)
    return min(out)


def timing(d, threads):
    torch.set_num_threads(threads)
    m = build()
    px = torch.tensor(np.fromfile(os.path.join(d, "px8.f32"), dtype="<f4").reshape(8, 3, 224, 224))
    ids = torch.tensor(np.fromfile(os.path.join(d, "ids8.i32"), dtype="<i4").reshape(8, 77)).long()
    r = {"threads": threads}
    with torch.inference_mode():
        for b in (1, 8):
            r["image_b%d" % b] = b / best(lambda: m.image(px[:b]))
        r["text_b8"] = 8 / best(lambda: text_batch(m, ids))
        e = m.image(px[:2]).numpy()
        t = text_batch(m, ids[:2]).numpy()
    e.astype("<f4").tofile(os.path.join(d, "torch_img2.f32"))
    t.astype("<f4").tofile(os.path.join(d, "torch_txt2.f32"))
    print(json.dumps(r))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "make":
        make(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "time":
        timing(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)
