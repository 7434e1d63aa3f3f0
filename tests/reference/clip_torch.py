#!/usr/bin/python3
"""Oracle for src/embed/clip: a plain-torch CLIP against reel's C towers.

The model here is written from the architecture description (CLIP's ViT
image tower and causal text tower, as transformers' CLIPModel lays out its
weights), not from the transformers package, which Debian does not ship.
The script makes tiny random checkpoints with odd sizes, writes them the
way Hugging Face publishes them (config.json in full, sparse and legacy
styles; model.safetensors written by hand: an 8-byte header length, a JSON
header, raw little-endian tensors) in F32, F16 and BF16, computes image and
text embeddings and logits in torch (float32, from the stored values), and
then runs the C test binary in oracle mode (REEL_CLIP_ORACLE_DIR), which
loads each checkpoint through reel and compares:
cosine >= 0.99999 and max abs difference <= 1e-4, batch 1 and batch > 1.

usage: /usr/bin/python3 tests/reference/clip_torch.py BUILD/tests/test_clip
"""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch

torch.set_num_threads(1)

# Odd sizes on purpose: head_dim 13 and 8, a 37-wide MLP, 4 x 4 patches.
VISION = dict(hidden_size=39, intermediate_size=37, num_hidden_layers=2,
              num_attention_heads=3, image_size=32, patch_size=8,
              num_channels=3, layer_norm_eps=1e-5, hidden_act="quick_gelu")
TEXT = dict(hidden_size=40, intermediate_size=37, num_hidden_layers=3,
            num_attention_heads=5, vocab_size=301, max_position_embeddings=20,
            layer_norm_eps=1e-5, hidden_act="quick_gelu", eos_token_id=2,
            bos_token_id=1, pad_token_id=1)
PROJ = 24
START, END = 299, 300  # what the test's vocab.json would say


def act_fn(name):
    if name == "quick_gelu":
        return lambda x: x * torch.sigmoid(1.702 * x)
    return torch.nn.functional.gelu  # erf form


class Layer(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        h, m = c["hidden_size"], c["intermediate_size"]
        self.heads = c["num_attention_heads"]
        self.eps = c["layer_norm_eps"]
        self.ln1 = torch.nn.LayerNorm(h, eps=self.eps)
        self.ln2 = torch.nn.LayerNorm(h, eps=self.eps)
        self.q = torch.nn.Linear(h, h)
        self.k = torch.nn.Linear(h, h)
        self.v = torch.nn.Linear(h, h)
        self.o = torch.nn.Linear(h, h)
        self.fc1 = torch.nn.Linear(h, m)
        self.fc2 = torch.nn.Linear(m, h)
        self.act = act_fn(c["hidden_act"])

    def forward(self, x, causal):
        b, t, h = x.shape
        dh = h // self.heads
        y = self.ln1(x)
        q = self.q(y) * dh ** -0.5
        k, v = self.k(y), self.v(y)
        q, k, v = (z.view(b, t, self.heads, dh).transpose(1, 2) for z in (q, k, v))
        s = q @ k.transpose(-1, -2)
        if causal:
            mask = torch.full((t, t), float("-inf")).triu(1)
            s = s + mask
        a = torch.softmax(s, dim=-1) @ v
        a = a.transpose(1, 2).reshape(b, t, h)
        x = x + self.o(a)
        return x + self.fc2(self.act(self.fc1(self.ln2(x))))


class Clip(torch.nn.Module):
    def __init__(self, vc, tc, proj):
        super().__init__()
        self.vc, self.tc = vc, tc
        hv, ht = vc["hidden_size"], tc["hidden_size"]
        g = vc["image_size"] // vc["patch_size"]
        self.class_emb = torch.nn.Parameter(torch.randn(hv))
        self.patch = torch.nn.Conv2d(vc["num_channels"], hv, vc["patch_size"],
                                     stride=vc["patch_size"], bias=False)
        self.vpos = torch.nn.Embedding(g * g + 1, hv)
        self.pre_ln = torch.nn.LayerNorm(hv, eps=vc["layer_norm_eps"])
        self.vlayers = torch.nn.ModuleList(Layer(vc) for _ in range(vc["num_hidden_layers"]))
        self.post_ln = torch.nn.LayerNorm(hv, eps=vc["layer_norm_eps"])
        self.vproj = torch.nn.Linear(hv, proj, bias=False)
        self.tok = torch.nn.Embedding(tc["vocab_size"], ht)
        self.tpos = torch.nn.Embedding(tc["max_position_embeddings"], ht)
        self.tlayers = torch.nn.ModuleList(Layer(tc) for _ in range(tc["num_hidden_layers"]))
        self.final_ln = torch.nn.LayerNorm(ht, eps=tc["layer_norm_eps"])
        self.tproj = torch.nn.Linear(ht, proj, bias=False)
        self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        # random LayerNorm affine parameters too (their defaults are 1 and 0)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, torch.nn.LayerNorm):
                    m.weight.normal_(1.0, 0.2)
                    m.bias.normal_(0.0, 0.2)

    def image(self, px):
        x = self.patch(px).flatten(2).transpose(1, 2)
        cls = self.class_emb.expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.vpos.weight
        x = self.pre_ln(x)
        for layer in self.vlayers:
            x = layer(x, False)
        e = self.vproj(self.post_ln(x[:, 0]))
        return e / e.norm(dim=-1, keepdim=True)

    def text(self, ids):
        # ids: list of lists (any lengths); one sequence at a time, no padding
        out = []
        for seq in ids:
            t = torch.tensor([seq])
            x = self.tok(t) + self.tpos.weight[: len(seq)]
            for layer in self.tlayers:
                x = layer(x, True)
            x = self.final_ln(x)
            pos = seq.index(END) if END in seq else 0
            e = self.tproj(x[0, pos])
            out.append(e / e.norm())
        return torch.stack(out)

    def state(self):
        """The tensors under transformers' CLIPModel names."""
        s = {}
        def layers(prefix, ls):
            for i, l in enumerate(ls):
                p = "%s.encoder.layers.%d." % (prefix, i)
                s[p + "layer_norm1.weight"], s[p + "layer_norm1.bias"] = l.ln1.weight, l.ln1.bias
                s[p + "layer_norm2.weight"], s[p + "layer_norm2.bias"] = l.ln2.weight, l.ln2.bias
                for name, m in (("q_proj", l.q), ("k_proj", l.k), ("v_proj", l.v), ("out_proj", l.o)):
                    s[p + "self_attn.%s.weight" % name] = m.weight
                    s[p + "self_attn.%s.bias" % name] = m.bias
                s[p + "mlp.fc1.weight"], s[p + "mlp.fc1.bias"] = l.fc1.weight, l.fc1.bias
                s[p + "mlp.fc2.weight"], s[p + "mlp.fc2.bias"] = l.fc2.weight, l.fc2.bias
        s["vision_model.embeddings.class_embedding"] = self.class_emb
        s["vision_model.embeddings.patch_embedding.weight"] = self.patch.weight
        s["vision_model.embeddings.position_embedding.weight"] = self.vpos.weight
        s["vision_model.pre_layrnorm.weight"] = self.pre_ln.weight
        s["vision_model.pre_layrnorm.bias"] = self.pre_ln.bias
        layers("vision_model", self.vlayers)
        s["vision_model.post_layernorm.weight"] = self.post_ln.weight
        s["vision_model.post_layernorm.bias"] = self.post_ln.bias
        s["visual_projection.weight"] = self.vproj.weight
        s["text_model.embeddings.token_embedding.weight"] = self.tok.weight
        s["text_model.embeddings.position_embedding.weight"] = self.tpos.weight
        layers("text_model", self.tlayers)
        s["text_model.final_layer_norm.weight"] = self.final_ln.weight
        s["text_model.final_layer_norm.bias"] = self.final_ln.bias
        s["text_projection.weight"] = self.tproj.weight
        s["logit_scale"] = self.logit_scale
        return s


def round_to(model, dtype):
    """Rounds every parameter to the storage dtype (the C side reads the
    stored values, so torch must compute with the same ones)."""
    if dtype == "F32":
        return
    td = torch.float16 if dtype == "F16" else torch.bfloat16
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(td).to(torch.float32))


def tensor_bytes(t, dtype):
    t = t.detach().contiguous()
    if dtype == "F32":
        return t.to(torch.float32).numpy().astype("<f4").tobytes()
    if dtype == "F16":
        return t.to(torch.float16).numpy().astype("<f2").tobytes()
    # BF16: numpy has none; the top 16 bits of the float32 (already rounded)
    return (t.to(torch.bfloat16).to(torch.float32).numpy().astype("<f4")
            .view("<u4") >> 16).astype("<u2").tobytes()


def write_safetensors(path, tensors, order_seed, extra=None):
    """tensors: name -> (dtype, shape, bytes). Written in a shuffled order
    with the header padded by spaces to a multiple of 8."""
    names = list(tensors)
    np.random.RandomState(order_seed).shuffle(names)
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for n in names:
        dt, shape, raw = tensors[n]
        header[n] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def configs(style):
    """config.json in one of the published styles."""
    if style == "full":
        return {"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": PROJ,
                "logit_scale_init_value": 2.6592, "initializer_factor": 1.0,
                "text_config": dict(TEXT, projection_dim=PROJ, model_type="clip_text_model"),
                "vision_config": dict(VISION, projection_dim=PROJ,
                                      model_type="clip_vision_model")}
    if style == "sparse":
        # keys equal to CLIPVisionConfig/CLIPTextConfig defaults left out,
        # projection_dim only in the sub-configs
        v = {k: x for k, x in VISION.items()
             if k not in ("num_channels", "layer_norm_eps", "hidden_act")}
        t = {k: x for k, x in TEXT.items() if k not in ("layer_norm_eps", "hidden_act")}
        v["projection_dim"] = t["projection_dim"] = PROJ
        return {"text_config": t, "vision_config": v}
    if style == "legacy":
        # transformers 4.1x: *_config_dict override *_config entirely
        return {"projection_dim": PROJ,
                "text_config": {"hidden_size": 512, "num_hidden_layers": 12},
                "vision_config": {"hidden_size": 768},
                "text_config_dict": dict(TEXT, hidden_act="gelu"),
                "vision_config_dict": dict(VISION, hidden_act="gelu")}
    raise ValueError(style)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    binary = sys.argv[1]
    cases = [("f32-full", "F32", "full", "I64"), ("f16-sparse", "F16", "sparse", None),
             ("bf16-legacy", "BF16", "legacy", "I32"), ("f32-legacy", "F32", "legacy", None)]
    rng = np.random.RandomState(7)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = []
        for ci, (name, dtype, style, pos_ids) in enumerate(cases):
            d = os.path.join(tmp, name)
            os.makedirs(d)
            cfg = configs(style)
            vc = cfg.get("vision_config_dict", cfg["vision_config"])
            tc = cfg.get("text_config_dict", cfg["text_config"])
            vc, tc = dict(VISION, **vc), dict(TEXT, **tc)
            torch.manual_seed(100 + ci)
            model = Clip(vc, tc, PROJ)
            round_to(model, dtype)
            st = {n: (dtype, tuple(p.shape), tensor_bytes(p, dtype))
                  for n, p in model.state().items()}
            g = vc["image_size"] // vc["patch_size"]
            if pos_ids:
                npd = "<i8" if pos_ids == "I64" else "<i4"
                st["text_model.embeddings.position_ids"] = (
                    pos_ids, (1, tc["max_position_embeddings"]),
                    np.arange(tc["max_position_embeddings"], dtype=npd)[None].tobytes())
                st["vision_model.embeddings.position_ids"] = (
                    pos_ids, (1, g * g + 1), np.arange(g * g + 1, dtype=npd)[None].tobytes())
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(cfg, f, indent=2)
            write_safetensors(os.path.join(d, "model.safetensors"), st, ci)
            with torch.no_grad():
                for b in (1, 3):
                    px = torch.tensor(rng.randn(b, 3, 32, 32).astype(np.float32))
                    e = model.image(px).numpy()
                    pfile = os.path.join(d, "px%d.f32" % b)
                    px.numpy().astype("<f4").tofile(pfile)
                    e.astype("<f4").tofile(os.path.join(d, "img%d.f32" % b))
                    manifest.append("image %s %d %s %s" % (d, b, pfile, os.path.join(d, "img%d.f32" % b)))
                seqs = []
                for b in (1, 4):
                    seqs = []
                    for i in range(b):
                        n = [7, 1, 19, 11][i]
                        body = list(rng.randint(0, 299, size=n - 1)) if n > 1 else []
                        seqs.append([START] + [int(x) for x in body][: n - 2] + [END])
                    if b == 4:
                        # an end token in the middle, more tokens after it
                        seqs[2] = seqs[2][:5] + [END] + seqs[2][5:]
                        seqs[3] = [START, 5, 6]  # no end token: pooled at 0
                    e = model.text(seqs).numpy()
                    stride = 20
                    ids = np.zeros((b, stride), dtype="<i4")
                    lens = np.array([len(s) for s in seqs], dtype="<u4")
                    for i, s in enumerate(seqs):
                        ids[i, : len(s)] = s
                    ids.tofile(os.path.join(d, "ids%d.i32" % b))
                    lens.tofile(os.path.join(d, "lens%d.u32" % b))
                    e.astype("<f4").tofile(os.path.join(d, "txt%d.f32" % b))
                    manifest.append("text %s %d %s %s %s %d %d" % (
                        d, b, os.path.join(d, "ids%d.i32" % b), os.path.join(d, "lens%d.u32" % b),
                        os.path.join(d, "txt%d.f32" % b), stride, END))
                manifest.append("scale %s %.9g" % (d, float(model.logit_scale.exp())))
        with open(os.path.join(tmp, "manifest.txt"), "w") as f:
            f.write("\n".join(manifest) + "\n")
        env = dict(os.environ, REEL_CLIP_ORACLE_DIR=tmp)
        r = subprocess.run([binary], env=env)
        if r.returncode:
            sys.exit("clip_torch: %s failed against the torch oracle (exit %d)" % (binary, r.returncode))
        print("clip_torch: %d comparisons against torch passed" % len(manifest))


if __name__ == "__main__":
    main()
