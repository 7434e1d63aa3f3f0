r"""Synthetic data for the ANN benchmark, with exact ground truth.

A low-rank Gaussian mixture: C cluster centres in a random r-dimensional
subspace of R^d (r = d/4 unless told), points spread around their centre
inside that subspace, plus small isotropic noise in all d dimensions, so the
data has a low intrinsic dimension like real embeddings but is full rank.
Cluster sizes are uneven (log-normal weights). Queries come from the same
distribution with an independent random stream, so none is in the base set.
For metric "ip" every vector is scaled to unit length (as CLIP embeddings
are), so inner product and cosine rank alike.

Writes, into <out-dir>/synth-n<N>-d<D>-q<NQ>-s<SEED>-<metric>/:
  base.fvecs, query.fvecs   TEXMEX layout: per vector int32 dim, dim float32
  gt.ivecs                  exact top-100 ids per query, nearest first
  meta.json                 parameters; written last, so its presence means
                            the directory is complete and is reused as is
and with --npy also base.npy and query.npy. Prints the directory on stdout.

The ground truth is brute force: blocked numpy matmul (OpenBLAS) in
float32, keeping 128 candidates per query, then re-ranked in float64 so
near ties in float32 cannot reorder the top 100. (faiss.knn in Debian's
generic faiss build is ten times slower here, in its heap, not its BLAS.)

    /usr/bin/python3 bench/ann/gen.py --out-dir data/ann --n 1000000 --d 128 \
        --nq 10000 --metric l2
"""
import argparse
import json
import os
import sys
import time

import numpy as np

GT_K = 100


def log(*a):
    print("gen:", *a, file=sys.stderr, flush=True)


# ------------------------------------------------------------ file formats

def write_fvecs(path, x):
    """Writes float32 rows as .fvecs, streaming in chunks."""
    x = np.asarray(x, dtype=np.float32)
    n, d = x.shape
    tmp = path + ".tmp.%d" % os.getpid()
    with open(tmp, "wb") as f:
        for i in range(0, n, 65536):
            c = x[i:i + 65536]
            rec = np.empty((len(c), d + 1), dtype=np.float32)
            rec[:, 0] = np.array([d], dtype=np.int32).view(np.float32)[0]
            rec[:, 1:] = c
            rec.tofile(f)
    os.replace(tmp, path)


def write_ivecs(path, ids):
    ids = np.asarray(ids, dtype=np.int32)
    n, k = ids.shape
    rec = np.empty((n, k + 1), dtype=np.int32)
    rec[:, 0] = k
    rec[:, 1:] = ids
    tmp = path + ".tmp.%d" % os.getpid()
    rec.tofile(tmp)
    os.replace(tmp, path)


def _vecs_shape(path, itemsize=4):
    with open(path, "rb") as f:
        head = f.read(4)
    if len(head) < 4:
        raise ValueError("%s: empty file" % path)
    d = int(np.frombuffer(head, dtype=np.int32)[0])
    size = os.path.getsize(path)
    rec = 4 + d * itemsize
    if d <= 0 or size % rec:
        raise ValueError("%s: not a .fvecs/.ivecs file (dim %d, size %d)"
                         % (path, d, size))
    return size // rec, d


def read_vecs(path, dtype=np.float32, limit=None):
    """Reads .fvecs/.ivecs (or .npy) into a contiguous (n, d) array, in
    chunks, so the peak memory is the array plus a small buffer."""
    if path.endswith(".npy"):
        x = np.load(path, mmap_mode="r")
        if limit is not None:
            x = x[:limit]
        return np.ascontiguousarray(x, dtype=dtype)
    n, d = _vecs_shape(path)
    if limit is not None:
        n = min(n, limit)
    out = np.empty((n, d), dtype=dtype)
    step = max(1, (16 << 20) // (4 * (d + 1)))
    with open(path, "rb") as f:
        for i in range(0, n, step):
            m = min(step, n - i)
            buf = np.fromfile(f, dtype=np.int32, count=m * (d + 1))
            buf = buf.reshape(m, d + 1)
            if np.any(buf[:, 0] != d):
                raise ValueError("%s: rows of different dimension" % path)
            out[i:i + m] = buf[:, 1:].view(dtype)
    return out


# ------------------------------------------------------------- generation

def make_mixture(n, d, nq, seed, metric, clusters=None, rank=None):
    clusters = clusters or int(min(1000, max(100, n // 1000)))
    rank = rank or max(2, d // 4)
    root = np.random.SeedSequence([seed, n, d, nq, clusters, rank])
    s_model, s_base, s_query = root.spawn(3)
    rm = np.random.default_rng(s_model)
    basis, _ = np.linalg.qr(rm.standard_normal((d, rank)))   # d x r
    basis = basis.astype(np.float32)
    centres = rm.standard_normal((clusters, rank)).astype(np.float32)
    spread = rm.uniform(0.25, 0.5, clusters).astype(np.float32)
    w = np.exp(rm.normal(0.0, 1.0, clusters))
    w /= w.sum()
    noise = np.float32(0.1)

    def draw(rng, count):
        out = np.empty((count, d), dtype=np.float32)
        for i in range(0, count, 65536):
            m = min(65536, count - i)
            lab = rng.choice(clusters, size=m, p=w)
            z = centres[lab] + spread[lab, None] * rng.standard_normal(
                (m, rank), dtype=np.float32)
            x = z @ basis.T + noise * rng.standard_normal(
                (m, d), dtype=np.float32)
            if metric == "ip":
                x /= np.linalg.norm(x, axis=1, keepdims=True)
            out[i:i + m] = x
        return out

    base = draw(np.random.default_rng(s_base), n)
    query = draw(np.random.default_rng(s_query), nq)
    params = {"clusters": clusters, "rank": rank, "spread": [0.25, 0.5],
              "noise": float(noise), "weights": "lognormal(0,1)",
              "normalized": metric == "ip"}
    return base, query, params


# ------------------------------------------------------------ ground truth

def _exact_rerank(base, query, cand, metric, k):
    """Re-ranks candidate ids per query in float64, keeps the best k."""
    out = np.empty((len(query), k), dtype=np.int64)
    for i in range(0, len(query), 1024):
        q = query[i:i + 1024].astype(np.float64)
        c = cand[i:i + 1024]
        v = base[c].astype(np.float64)                    # b x K x d
        if metric == "l2":
            s = ((v - q[:, None, :]) ** 2).sum(-1)        # smaller is nearer
        else:
            s = -(v * q[:, None, :]).sum(-1)
        o = np.argsort(s, axis=1, kind="stable")[:, :k]
        out[i:i + 1024] = np.take_along_axis(c, o, 1)
    return out


def ground_truth(base, query, metric, k=GT_K):
    """Exact top-k ids (nearest first) for every query."""
    kc = min(len(base), k + 28)
    t0 = time.perf_counter()
    cand = _blocked_knn(base, query, metric, kc)
    gt = _exact_rerank(base, query, cand, metric, min(k, len(base)))
    log("ground truth (blocked matmul + float64 re-rank): %.1f s"
        % (time.perf_counter() - t0))
    return gt


def _blocked_knn(base, query, metric, k):
    """Approximately-exact top-k in float32 (the float64 re-rank settles
    near ties). Per block of queries, the k-th best score against a random
    sample of the base bounds the true k-th best from above, so one pass of
    matmuls over the base only has to keep the scores under that bound; a
    full argpartition of every score row would cost ten times more."""
    n = len(base)
    bn = np.einsum("ij,ij->i", base, base) if metric == "l2" else None

    def scores(q, idx=None, j0=0, j1=0):
        b = base[idx] if idx is not None else base[j0:j1]
        s = q @ b.T
        if metric == "l2":
            s *= -2.0
            s += bn[idx] if idx is not None else bn[j0:j1]
        else:
            np.negative(s, out=s)
        return s                                  # smaller is nearer

    rng = np.random.default_rng(0)
    m = min(n, max(32768, 64 * k))
    sample = np.sort(rng.choice(n, size=m, replace=False)) if m < n else None
    out = np.empty((len(query), k), dtype=np.int64)
    qb, bb = 1000, 100000
    for i in range(0, len(query), qb):
        q = query[i:i + qb]
        if sample is not None:
            s0 = scores(q, idx=sample)
        else:
            s0 = scores(q, j0=0, j1=n)
        thr = np.partition(s0, k - 1, axis=1)[:, k - 1]
        # Different blocking may round a score differently: widen a little.
        thr = thr + 1e-4 * np.abs(thr) + 1e-6
        rows, cols, vals = [], [], []
        for j in range(0, n, bb):
            s = scores(q, j0=j, j1=min(n, j + bb))
            r, c = np.nonzero(s <= thr[:, None])
            rows.append(r)
            cols.append(c + j)
            vals.append(s[r, c])
        r = np.concatenate(rows)
        c = np.concatenate(cols)
        v = np.concatenate(vals)
        o = np.lexsort((v, r))
        r, c = r[o], c[o]
        first = np.searchsorted(r, np.arange(len(q)))
        rank = np.arange(len(r)) - first[r]
        keep = rank < k
        if np.bincount(r[keep], minlength=len(q)).min() < k:
            raise RuntimeError("ground truth: lost candidates (a bug)")
        out[i + r[keep], rank[keep]] = c[keep]
    return out


# ------------------------------------------------------------------- main

def dataset_dir(out_dir, n, d, nq, seed, metric, clusters=None, rank=None):
    name = "synth-n%d-d%d-q%d-s%d-%s" % (n, d, nq, seed, metric)
    if clusters:
        name += "-c%d" % clusters
    if rank:
        name += "-r%d" % rank
    return os.path.join(out_dir, name)


def ensure(out_dir, n, d, nq, seed=1, metric="l2", npy=False,
           clusters=None, rank=None):
    """Generates the dataset unless it is cached; returns its directory."""
    dd = dataset_dir(out_dir, n, d, nq, seed, metric, clusters, rank)
    meta_path = os.path.join(dd, "meta.json")
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        if not npy or os.path.exists(os.path.join(dd, "base.npy")):
            log("reusing %s" % dd)
            return dd
    else:
        meta = None
    os.makedirs(dd, exist_ok=True)
    t0 = time.perf_counter()
    if meta is None:
        log("generating %d x %d (+%d queries, %s, seed %d) into %s"
            % (n, d, nq, metric, seed, dd))
        base, query, params = make_mixture(n, d, nq, seed, metric,
                                           clusters, rank)
        log("drawn in %.1f s" % (time.perf_counter() - t0))
        write_fvecs(os.path.join(dd, "base.fvecs"), base)
        write_fvecs(os.path.join(dd, "query.fvecs"), query)
        gt = ground_truth(base, query, metric)
        write_ivecs(os.path.join(dd, "gt.ivecs"), gt)
        meta = {"kind": "synthetic low-rank gaussian mixture", "n": n, "d": d,
                "nq": nq, "seed": seed, "metric": metric, "gt_k": gt.shape[1],
                **params}
    else:
        base = read_vecs(os.path.join(dd, "base.fvecs"))
        query = read_vecs(os.path.join(dd, "query.fvecs"))
    if npy:
        np.save(os.path.join(dd, "base.npy"), base)
        np.save(os.path.join(dd, "query.npy"), query)
    tmp = meta_path + ".tmp.%d" % os.getpid()
    with open(tmp, "w") as f:
        json.dump(meta, f, indent=1)
    os.replace(tmp, meta_path)
    log("done in %.1f s" % (time.perf_counter() - t0))
    return dd


def ensure_gt(out_dir, base_path, query_path, metric):
    """Ground truth for a user's base/query files when none is given,
    cached under out_dir keyed by the files' paths, sizes and times."""
    import hashlib
    key = "%s|%s|%s" % (metric, *(
        "%s:%d:%d" % (os.path.abspath(p), os.path.getsize(p),
                      int(os.path.getmtime(p)))
        for p in (base_path, query_path)))
    h = hashlib.sha1(key.encode()).hexdigest()[:12]
    path = os.path.join(out_dir, "gt-%s-%s.ivecs" % (h, metric))
    if os.path.exists(path):
        log("reusing %s" % path)
        return path
    os.makedirs(out_dir, exist_ok=True)
    log("computing ground truth for %s into %s" % (base_path, path))
    gt = ground_truth(read_vecs(base_path), read_vecs(query_path), metric)
    write_ivecs(path, gt)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", default="data/ann")
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--d", type=int, required=True)
    ap.add_argument("--nq", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--metric", choices=["l2", "ip"], default="l2")
    ap.add_argument("--clusters", type=int,
                    help="default n/1000 in [100, 1000]")
    ap.add_argument("--rank", type=int, help="subspace dimension, default d/4")
    ap.add_argument("--npy", action="store_true",
                    help="also write base.npy and query.npy")
    a = ap.parse_args()
    print(ensure(a.out_dir, a.n, a.d, a.nq, a.seed, a.metric, a.npy,
                 a.clusters, a.rank))


if __name__ == "__main__":
    main()
