#!/usr/bin/python3
"""Oracle for src/rank/mlp: PyTorch scores reel's saved model.

Runs the unit test binary with REEL_MLP_ORACLE_DIR set, which makes its
oracle_files_for_torch test write a trained model (model.reel), 200 raw
rows with missing values (x.f32) and reel's scores for them (p.f32). This
script reads the model straight from the bytes specified in
docs/formats/mlp.md and docs/formats/secfile.md (not through reel's code),
builds the same network from torch.nn.Linear and ReLU layers, and checks
that its probabilities match reel's within 1e-5.

Without python3-torch the same forward pass runs in numpy (float64), which
still checks the file layout and the function independently of reel.

usage: /usr/bin/python3 tests/reference/mlp_torch.py BUILD/tests/test_mlp
"""
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

TYPES = {0: np.uint8, 3: "<u4", 4: "<u8", 5: "<f4", 6: "<f8"}
TOLERANCE = 1e-5


def read_secfile(path, kind):
    data = open(path, "rb").read()
    (magic, version, n_sections, file_kind, table_offset, file_size, _tcrc,
     _res, _hcrc) = struct.unpack_from("<8sII16sQQI8sI", data, 0)
    assert magic == b"REELSEC\0", "not a reel section file"
    assert version == 1 and file_size == len(data)
    assert file_kind.rstrip(b"\0").decode() == kind
    assert table_offset + 64 * n_sections == file_size
    sections = {}
    for i in range(n_sections):
        name, offset, length, count, typ, _crc = struct.unpack_from(
            "<32sQQQII", data, table_offset + 64 * i)
        raw = data[offset:offset + length]
        arr = np.frombuffer(raw, dtype=TYPES[typ])
        assert len(arr) == count
        sections[name.split(b"\0")[0].decode()] = arr
    return sections


def load_model(path):
    s = read_secfile(path, "mlp")
    params = s["mlp.params"]
    assert params[0] == 1, "mlp format version"
    n_features, n_layers = int(params[1]), int(params[2])
    width = [int(w) for w in s["mlp.shape"]]
    assert len(width) == n_layers + 1 and width[0] == n_features
    assert width[-1] == 1
    layers = []
    for l in range(n_layers):
        w = s["mlp.w%d" % l].reshape(width[l + 1], width[l])
        b = s["mlp.b%d" % l]
        layers.append((w, b))
    assert int(params[3]) == sum(w.size + b.size for w, b in layers)
    return s["mlp.mean"], s["mlp.std"], layers


def standardise(x, mean, std):
    ok = np.isfinite(x)
    z = (np.where(ok, x, 0).astype(np.float32) - mean) / std
    return np.where(ok, z, 0).astype(np.float32)


def score_torch(a0, layers):
    import torch

    mods = []
    for l, (w, b) in enumerate(layers):
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w.copy()))
            lin.bias.copy_(torch.from_numpy(b.copy()))
        mods.append(lin)
        if l + 1 < len(layers):
            mods.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*mods, torch.nn.Sigmoid())
    with torch.no_grad():
        return net(torch.from_numpy(a0)).numpy()[:, 0]


def score_numpy(a0, layers):
    a = a0.astype(np.float64)
    for l, (w, b) in enumerate(layers):
        a = a @ w.astype(np.float64).T + b.astype(np.float64)
        if l + 1 < len(layers):
            a = np.maximum(a, 0)
    return 1 / (1 + np.exp(-a[:, 0]))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, REEL_MLP_ORACLE_DIR=tmp)
        run = subprocess.run([sys.argv[1]], env=env, capture_output=True,
                             text=True)
        if run.returncode != 0:
            sys.exit(run.stdout + run.stderr + "mlp oracle: test binary failed")
        mean, std, layers = load_model(os.path.join(tmp, "model.reel"))
        x = np.fromfile(os.path.join(tmp, "x.f32"), dtype="<f4")
        x = x.reshape(-1, len(mean))
        want = np.fromfile(os.path.join(tmp, "p.f32"), dtype="<f4")
    assert np.isnan(x).any(), "the rows should exercise missing values"
    a0 = standardise(x, mean, std)
    try:
        got, by = score_torch(a0, layers), "torch"
    except ImportError:
        got, by = score_numpy(a0, layers), "numpy (python3-torch missing)"
    err = float(np.max(np.abs(got.astype(np.float64) - want)))
    print("mlp oracle (%s): %d rows, %d layers, max |diff| %.3g" %
          (by, len(want), len(layers), err))
    if not err <= TOLERANCE:
        sys.exit("mlp oracle: reel and %s disagree beyond %g" % (by, TOLERANCE))


if __name__ == "__main__":
    main()
