r"""ANN benchmark: reel's HNSW against hnswlib and FAISS in the same run.

For each dataset, every library builds an HNSW index with the same M,
efConstruction and build thread count, then answers the same queries with
one search thread over a sweep of ef. Each python peer runs in its own
subprocess (a clean RSS to measure); reel runs through its CLI
(`reel index build|query|stats`). Recall@k is measured against exact ground
truth; QPS at the target recall is read off each curve by interpolating
log(QPS) linearly in recall between the two bracketing points of its Pareto
frontier. Prints a markdown section on stdout, progress on stderr, and
writes everything measured as JSON.

    /usr/bin/python3 bench/ann/run.py --synth 100000x128:10000:l2
    /usr/bin/python3 bench/ann/run.py --fvecs-base sift_base.fvecs \
        --fvecs-query sift_query.fvecs --fvecs-gt sift_groundtruth.ivecs
    /usr/bin/python3 bench/ann/run.py --report data/ann/results.json

With neither --synth nor --fvecs-base, runs the defaults: 1000000x128:10000:l2
and 100000x768:5000:ip.
"""
import argparse
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen  # noqa: E402

DEFAULT_SYNTH = ["1000000x128:10000:l2", "100000x768:5000:ip"]
DEFAULT_EFS = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512]
PEERS = ["hnswlib", "hnswlib-native", "faiss"]
PY_PEERS = ["hnswlib", "faiss"]
GOAL = {"hnswlib": 1.2, "hnswlib-native": 1.2, "faiss": 1.5}
MIN_PASS_S = 0.25
LABEL = {"reel": "reel", "hnswlib": "hnswlib", "faiss": "FAISS",
         "hnswlib-native": "hnswlib native"}
NATIVE_SRC = os.path.join(HERE, "hnswlib_native.cpp")
NATIVE_HEADER = "/usr/include/hnswlib/hnswlib.h"


def log(*a):
    print("ann:", *a, file=sys.stderr, flush=True)


# ------------------------------------------------------------ measurement

def rss_kib():
    """(current RSS, peak RSS) of this process in KiB."""
    cur = peak = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                cur = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1])
    return cur, peak


def recall_at(ids, gt, k):
    """Mean over queries of |returned[:k] & truth[:k]| / k."""
    ids = np.asarray(ids)[:, :k]
    g = np.asarray(gt)[:, :k]
    hit = (ids[:, :, None] == g[:, None, :]).any(-1).sum(1)
    return float(hit.mean() / k)


def qps_at(sweep, target):
    """QPS at `target` recall, interpolating log(QPS) linearly in recall
    between the bracketing points of the Pareto frontier (the points that
    no other point beats on both recall and QPS). Returns (qps, how, efs):
    how is "interpolated", "not reached" (qps None), or "at least" when even
    the cheapest point is above the target (its QPS is then a lower bound
    of the QPS at exactly the target)."""
    pts = sorted((p["recall"], p["qps"], p["ef"]) for p in sweep
                 if p["qps"] > 0)
    front = []
    for r, q, ef in reversed(pts):             # from the highest recall down
        if not front or q > front[-1][1]:
            front.append((r, q, ef))
    front.reverse()                            # recall up, QPS down
    if not front or front[-1][0] < target:
        return None, "not reached", []
    if front[0][0] >= target:
        return front[0][1], "at least", [front[0][2]]
    for (r0, q0, e0), (r1, q1, e1) in zip(front, front[1:]):
        if r0 < target <= r1:
            t = (target - r0) / (r1 - r0)
            q = math.exp(math.log(q0) + t * (math.log(q1) - math.log(q0)))
            return q, "interpolated", [e0, e1]
    return None, "not reached", []


# ----------------------------------------------------------- peer workers

def worker(a):
    """Runs in its own process: builds one peer's index and sweeps ef.
    Prints one JSON object on stdout."""
    if a.worker == "hnswlib":
        import hnswlib
        version = getattr(hnswlib, "__version__", None)
    else:
        import faiss
        version = faiss.__version__
    rss_base, _ = rss_kib()
    t0 = time.perf_counter()
    base = gen.read_vecs(a.base)
    load_s = time.perf_counter() - t0
    rss_data, _ = rss_kib()
    n, d = base.shape

    t0 = time.perf_counter()
    if a.worker == "hnswlib":
        ix = hnswlib.Index(space=a.metric, dim=d)
        ix.init_index(max_elements=n, ef_construction=a.efc, M=a.m,
                      random_seed=100)
        ix.add_items(base, np.arange(n), num_threads=a.threads)
    else:
        mt = faiss.METRIC_L2 if a.metric == "l2" else \
            faiss.METRIC_INNER_PRODUCT
        faiss.omp_set_num_threads(a.threads)
        ix = faiss.IndexHNSWFlat(d, a.m, mt)
        ix.hnsw.efConstruction = a.efc
        ix.add(base)
    build_s = time.perf_counter() - t0
    rss_built, peak = rss_kib()
    del base

    query = gen.read_vecs(a.query)
    gt = gen.read_vecs(a.gt, np.int32)[:len(query)]

    if a.worker == "hnswlib":
        ix.set_num_threads(1)

        def search(ef):
            ix.set_ef(ef)
            ids, _ = ix.knn_query(query, k=a.k, num_threads=1)
            return ids
    else:
        faiss.omp_set_num_threads(1)

        def search(ef):
            ix.hnsw.efSearch = ef
            _, ids = ix.search(query, a.k)
            return ids

    search(64)                                  # warm-up pass
    sweep = []
    for ef in a.efs:
        best, ids = 0.0, None
        for _ in range(a.runs):
            # A pass shorter than MIN_PASS_S is repeated so that small
            # query sets are not timed to the clock's noise.
            done, t0, c0 = 0, time.perf_counter(), time.process_time()
            while True:
                ids = search(ef)
                done += len(query)
                dt = time.perf_counter() - t0
                if dt >= MIN_PASS_S:
                    break
            if done / dt > best:
                best = done / dt
                cpu = done / max(1e-9, time.process_time() - c0)
        p = {"ef": ef, "recall": recall_at(ids, gt, a.k), "qps": best,
             "qps_cpu": cpu}
        log("%s ef=%d recall@%d=%.4f qps=%.0f"
            % (a.worker, ef, a.k, p["recall"], p["qps"]))
        sweep.append(p)
        if a.stop_recall and p["recall"] >= a.stop_recall:
            break
    print(json.dumps({
        "version": version, "build_s": build_s, "load_s": load_s,
        "rss_baseline_mib": rss_base / 1024, "rss_data_mib": rss_data / 1024,
        "rss_built_mib": rss_built / 1024, "peak_rss_mib": peak / 1024,
        "index_mib": (rss_built - rss_data) / 1024,
        "peak_over_baseline_mib": (peak - rss_base) / 1024,
        "sweep": sweep}))


def run_peer(lib, ds, a):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", lib,
           "--base", ds["base"], "--query", ds["query"], "--gt", ds["gt"],
           "--metric", ds["metric"], "--m", str(a.m), "--efc", str(a.efc),
           "--build-threads", str(a.build_threads), "--k", str(a.k),
           "--runs", str(a.runs), "--efs", ",".join(map(str, a.efs)),
           "--stop-recall", str(a.stop_recall or 0)]
    log("%s: building (M=%d, efC=%d, %d threads)"
        % (lib, a.m, a.efc, a.build_threads))
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if p.returncode != 0:
        return {"skipped": "%s worker failed (exit %d)" % (lib, p.returncode)}
    r = json.loads(p.stdout.strip().splitlines()[-1])
    log("%s: build %.1f s, total %.0f s"
        % (lib, r["build_s"], time.perf_counter() - t0))
    return r


def native_binary(a):
    """Compiles hnswlib_native.cpp into <data-dir>/bin when it is newer than
    the binary. Returns (path, None) or (None, why not)."""
    if not os.path.exists(NATIVE_HEADER):
        return None, "%s missing (apt-get install libhnswlib-dev)" \
            % NATIVE_HEADER
    cxx = shutil.which("g++") or shutil.which("c++")
    if not cxx:
        return None, "no C++ compiler (apt-get install g++)"
    out = os.path.join(os.path.abspath(a.data_dir), "bin", "hnswlib_native")
    if os.path.exists(out) and \
            os.path.getmtime(out) >= os.path.getmtime(NATIVE_SRC):
        return out, None
    os.makedirs(os.path.dirname(out), exist_ok=True)
    cmd = [cxx, "-O3", "-march=native", "-std=c++17", "-pthread",
           "-DNDEBUG", "-w", "-o", out + ".tmp", NATIVE_SRC]
    log("compiling %s" % " ".join(cmd))
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-4000:])
        return None, "compiling %s failed" % os.path.basename(NATIVE_SRC)
    os.replace(out + ".tmp", out)
    return out, None


def run_native(ds, a):
    exe, why = native_binary(a)
    if not exe:
        log("hnswlib-native: skipped: %s" % why)
        return {"skipped": why}
    log("hnswlib-native: building (M=%d, efC=%d, %d threads)"
        % (a.m, a.efc, a.build_threads))
    t0 = time.perf_counter()
    p = subprocess.run([exe, ds["base"], ds["query"], ds["gt"], ds["metric"],
                        str(a.m), str(a.efc), str(a.build_threads), str(a.k),
                        str(a.runs), str(MIN_PASS_S),
                        ",".join(map(str, a.efs)), str(a.stop_recall or 0)],
                       stdout=subprocess.PIPE, text=True)
    if p.returncode != 0:
        return {"skipped": "hnswlib_native exited %d" % p.returncode}
    r = json.loads(p.stdout.strip().splitlines()[-1])
    log("hnswlib-native: build %.1f s, total %.0f s"
        % (r["build_s"], time.perf_counter() - t0))
    return r


# ------------------------------------------------------------------- reel

QPS_RES = [re.compile(r"([0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)\s*"
                      r"(?:queries\s*/\s*s(?:ec)?|qps)\b", re.I),
           re.compile(r"\bqps\b\s*[:=]?\s*([0-9]+(?:\.[0-9]+)?)", re.I)]
CPU_QPS_RE = re.compile(r"\bcpu[ _-]?qps\b\s*[:=]?\s*([0-9]+(?:\.[0-9]+)?)",
                        re.I)
# reel's own build time, if it prints one: "build_s 12.3", "build 12.3s"
# or "built ... in 12.3 s" (the last such figure counts).
BUILD_RES = [re.compile(r"\bbuild_s\b\s*[:=]?\s*([0-9]+(?:\.[0-9]+)?)", re.I),
             re.compile(r"\bbuild\s*[:=]?\s*([0-9]+(?:\.[0-9]+)?)\s*"
                        r"(?:s|sec|secs|seconds)\b", re.I),
             re.compile(r"\bbuilt\b[^\n]*?\bin\s+([0-9]+(?:\.[0-9]+)?)\s*"
                        r"(?:s|sec|secs|seconds)\b", re.I)]


def parse_qps(text):
    """The queries per second that reel printed on stderr (its last such
    number), ignoring an optional `cpu_qps N` figure."""
    text = CPU_QPS_RE.sub("", text)
    for rx in QPS_RES:
        m = rx.findall(text)
        if m:
            return float(m[-1])
    return None


def parse_time_v(path):
    """Max RSS (MiB) and wall seconds from /usr/bin/time -v output."""
    rss = wall = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("Maximum resident set size"):
                rss = int(line.rsplit(":", 1)[1]) / 1024
            elif line.startswith("Elapsed (wall clock) time"):
                v = line.split("):", 1)[1].strip().split(":")
                wall = sum(float(x) * 60 ** i for i, x in enumerate(v[::-1]))
    return rss, wall


def n_rows(path):
    if path.endswith(".npy"):
        return len(np.load(path, mmap_mode="r"))
    return gen._vecs_shape(path)[0]


def reel_available(reel):
    if not os.access(reel, os.X_OK):
        return "%s not found (build it with `make`)" % reel
    try:
        p = subprocess.run([reel, "index", "--help"], capture_output=True,
                           timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "`%s index --help` failed: %s" % (reel, e)
    if p.returncode != 0:
        return "`%s index --help` exited %d (no `reel index` yet)" \
            % (reel, p.returncode)
    return None


def run_reel(ds, a, work):
    why = reel_available(a.reel)
    if why:
        log("reel: skipped: %s" % why)
        return {"skipped": why}
    idx = os.path.join(work, "reel-%s.idx" % ds["name"])
    tv = os.path.join(work, "time-v.txt")
    cmd = [a.reel, "index", "build",
           "--vectors", ds["base"], "--out", idx, "--metric", ds["metric"],
           "--m", str(a.m), "--ef-construction", str(a.efc),
           "--threads", str(a.build_threads)]
    log("reel: building: %s" % " ".join(cmd))
    have_time = os.access("/usr/bin/time", os.X_OK)
    if have_time:
        cmd = ["/usr/bin/time", "-v", "-o", tv] + cmd
    else:
        log("reel: no /usr/bin/time (apt-get install time): no peak RSS")
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-4000:])
        return {"skipped": "`reel index build` exited %d" % p.returncode}
    peak = parse_time_v(tv)[0] if have_time else None
    out = p.stdout + "\n" + p.stderr
    m = next((x for x in (rx.findall(out) for rx in BUILD_RES) if x), None)
    r = {"build_wall_s": wall, "peak_rss_mib": peak,
         "index_file_mib": os.path.getsize(idx) / 2 ** 20,
         "build_output": out.strip()[-2000:]}
    r["build_s"] = float(m[-1]) if m else wall
    r["build_s_source"] = "its own build figure (reading the file and " \
        "saving the index excluded)" if m else \
        "wall time of the whole command (read + build + write)"
    log("reel: build %.1f s (wall %.1f s), peak RSS %.0f MiB"
        % (r["build_s"], wall, peak or 0))
    s = subprocess.run([a.reel, "index", "stats", "--index", idx],
                       capture_output=True, text=True)
    r["stats"] = (s.stdout + s.stderr)[-4000:]

    nq = n_rows(ds["query"])
    gt = gen.read_vecs(ds["gt"], np.int32)[:nq]

    def query(ef):
        cmd = [a.reel, "index", "query", "--index", idx, "--queries",
               ds["query"], "--k", str(a.k), "--ef", str(ef), "--threads", "1"]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            sys.stderr.write(p.stderr[-4000:])
            raise RuntimeError("`%s` exited %d"
                               % (" ".join(cmd), p.returncode))
        lines = p.stdout.splitlines()
        ids = np.full((len(lines), a.k), -1, dtype=np.int64)
        for i, line in enumerate(lines):
            v = [int(x) for x in line.split()[:a.k]]
            ids[i, :len(v)] = v
        m = CPU_QPS_RE.findall(p.stderr)
        return ids, parse_qps(p.stderr), wall, p.stderr, \
            float(m[-1]) if m else None

    query(64)                                   # warm-up (and page cache)
    sweep = []
    for ef in a.efs:
        best = best_wall = cpu = None
        ids = None
        for _ in range(a.runs):
            ids, qps, wall, err, qcpu = query(ef)
            if len(ids) != nq:
                raise RuntimeError("reel printed %d result lines for %d "
                                   "queries" % (len(ids), nq))
            best_wall = wall if best_wall is None else min(best_wall, wall)
            if qps is not None and (best is None or qps > best):
                best, cpu = qps, qcpu
        p = {"ef": ef, "recall": recall_at(ids, gt, a.k),
             "qps": best if best is not None else nq / best_wall,
             "qps_source": "reel" if best is not None else "wall",
             "qps_wall": nq / best_wall, "qps_cpu": cpu}
        r.setdefault("query_stderr", err.strip()[-500:])
        if best is None:
            log("reel: no qps on stderr (last: %r); using wall time"
                % err.strip()[-200:])
        log("reel ef=%d recall@%d=%.4f qps=%.0f (wall %.0f)"
            % (ef, a.k, p["recall"], p["qps"], p["qps_wall"]))
        sweep.append(p)
        if a.stop_recall and p["recall"] >= a.stop_recall:
            break
    r["sweep"] = sweep
    return r


# ----------------------------------------------------------- environment

def peer_builds():
    """How the installed peers were compiled: Debian's packages target
    baseline x86-64, which matters when reel uses AVX2/AVX-512."""
    out = {}
    try:
        import faiss
        out["faiss"] = "faiss %s, compile options: %s" % (
            faiss.__version__, faiss.get_compile_options().strip())
    except Exception as e:                      # noqa: BLE001
        out["faiss"] = "faiss: %s" % e
    try:
        import hnswlib
        so = hnswlib.__file__
        desc = "hnswlib %s" % getattr(hnswlib, "__version__", "(python)")
        if shutil.which("objdump"):
            dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", so],
                                 capture_output=True, text=True).stdout
            ymm, zmm = dis.count("%ymm"), dis.count("%zmm")
            desc += (", %s: %s" % (os.path.basename(so),
                     "AVX-512 code" if zmm else "AVX code" if ymm else
                     "no AVX instructions (SSE only)"))
        out["hnswlib"] = desc
    except Exception as e:                      # noqa: BLE001
        out["hnswlib"] = "hnswlib: %s" % e
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            fl = next((x for x in f if x.startswith("flags")), "").split()
        flags = "AVX-512" if "avx512f" in fl else "AVX2" if "avx2" in fl \
            else "SSE"
    except OSError:
        pass
    out["hnswlib-native"] = ("hnswlib native: the same hnswlib "
                             "(libhnswlib-dev's header) compiled here with "
                             "g++ -O3 -march=native (%s kernels), driven "
                             "from C++ as the python binding drives it"
                             % (flags or "native"))
    return out


def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_at_start": os.getloadavg()}


# ----------------------------------------------------------------- report

def fmt_qps(q):
    return "not reached" if q is None else "%.0f" % q


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return "%.2fx" % (a / b)


def fmt_size(n):
    if n >= 1000000 and n % 1000000 == 0:
        return "%dM" % (n // 1000000)
    if n >= 1000 and n % 1000 == 0:
        return "%dk" % (n // 1000)
    return str(n)


def render(res):
    s = res["settings"]
    t = s["target"]
    L = []
    w = L.append
    w("## Vector search: HNSW against hnswlib and FAISS")
    w("")
    stop = ""
    if s.get("stop_recall"):
        stop = (" (a library's sweep stops once its recall reaches %g)"
                % s["stop_recall"])
    w("Every library builds an HNSW graph with M=%d and efConstruction=%d "
      "on %d build threads, then answers the same queries one at a time on "
      "one search thread, for ef in %s%s; each point is the best of %d "
      "passes "
      "over the query set after a warm-up pass. Recall@%d is against exact "
      "ground truth. QPS at recall %.2f is read off each curve "
      "(log-QPS interpolated linearly in recall between the two bracketing "
      "points). Goals: reel >= 1.2x hnswlib (either build) and >= 1.5x "
      "FAISS in QPS at recall %.2f; build time and memory no worse than "
      "hnswlib."
      % (s["m"], s["efc"], s["build_threads"],
         ", ".join(map(str, s["efs"])), stop, s["runs"], s["k"], t, t))
    w("")
    pb = res.get("peer_builds", {})
    if pb:
        w("Peers: %s." % "; ".join(pb[k] for k in PEERS if k in pb))
        w("")
    for ds in res["datasets"]:
        libs = ds["libs"]
        w("### %s" % ds["title"])
        w("")
        for name in ["reel"] + PEERS:
            r = libs.get(name)
            if r and "skipped" in r:
                w("%s: skipped: %s." % (LABEL[name], r["skipped"]))
                w("")
        ran = [x for x in ["reel"] + PEERS if x in libs
               and "skipped" not in libs[x]]
        if not ran:
            continue
        h = libs.get("hnswlib") if "hnswlib" in ran else None
        w("| library | build s | vs hnswlib | peak RSS MiB | vs hnswlib "
          "| index MiB |")
        w("|---|---:|---:|---:|---:|---:|")
        for x in ran:
            r = libs[x]
            if x == "reel":
                peak, idx = r.get("peak_rss_mib"), r["index_file_mib"]
            else:
                peak, idx = r["peak_over_baseline_mib"], r["index_mib"]
            hp = h["peak_over_baseline_mib"] if h else None
            w("| %s | %.1f | %s | %s | %s | %.0f |"
              % (LABEL[x], r["build_s"], fmt_ratio(r["build_s"],
                 h["build_s"] if h else None),
                 "%.0f" % peak if peak else "-", fmt_ratio(peak, hp), idx))
        w("")
        notes = ["build s: the peers time `add` alone (data already in "
                 "memory)"]
        if "reel" in ran:
            notes.append("reel's: %s" % libs["reel"]["build_s_source"])
        py = [x for x in ran if x in PY_PEERS]
        if py:
            notes.append("peak RSS: the peers' process peak less its "
                         "baseline before loading data (python's interpreter"
                         " and imports: %.0f MiB)"
                         % max(libs[x]["rss_baseline_mib"] for x in py))
        if "reel" in ran:
            notes.append("reel's: max RSS of `reel index build` "
                         "(/usr/bin/time -v)")
        notes.append("index MiB: the peers' RSS growth during the build; "
                     "reel's index file size")
        w("Build: " + "; ".join(notes) + ".")
        w("")
        w("| library | QPS at recall@%d = %.2f | reel vs it | goal |"
          % (s["k"], t))
        w("|---|---:|---:|---|")
        at = ds["at_target"]
        rq = at.get("reel", {}).get("qps")
        for x in ran:
            q, how, efs = at[x]["qps"], at[x]["how"], at[x]["efs"]
            cell = fmt_qps(q)
            if how == "at least":
                cell = ">= %s (ef=%d is above %.2f)" % (cell, efs[0], t)
            elif how == "interpolated":
                cell += " (ef %d-%d)" % tuple(efs)
            if x == "reel":
                w("| reel | %s | 1.00x | |" % cell)
                continue
            ratio = rq / q if rq and q else None
            g = ""
            if ratio is not None:
                g = ">= %.1fx: %s" % (GOAL[x], "met" if ratio >= GOAL[x]
                                      else "not met")
                if "at least" in (how, at["reel"]["how"]):
                    g += " (a bound is involved: use more low efs)"
            w("| %s | %s | %s | %s |" % (LABEL[x], cell,
                                         fmt_ratio(rq, q), g))
        w("")
        w("| ef | " + " | ".join("%s recall | %s QPS" % (LABEL[x], LABEL[x])
                                  for x in ran) + " |")
        w("|---:|" + "---:|---:|" * len(ran))
        for ef in s["efs"]:
            cells = []
            for x in ran:
                p = next((p for p in libs[x]["sweep"] if p["ef"] == ef),
                         None)
                cells.append("%.4f | %.0f" % (p["recall"], p["qps"])
                             if p else "- | -")
            w("| %d | %s |" % (ef, " | ".join(cells)))
        w("")
        if "reel" in ran and any(p.get("qps_source") == "wall"
                                 for p in libs["reel"]["sweep"]):
            w("reel printed no QPS: its QPS is from wall time, which "
              "includes process start and index load.")
            w("")
    m = res["machine"]
    w("Load average at start: %.2f (other work on the machine lowers every "
      "library alike, but adds noise). Raw numbers: `%s`."
      % (m["loadavg_at_start"][0], res.get("json_path", "results.json")))
    return "\n".join(L)


# ------------------------------------------------------------------- main

def parse_synth(spec):
    m = re.fullmatch(r"(\d+)x(\d+):(\d+):(l2|ip)(?::(\d+))?", spec)
    if not m:
        raise SystemExit("--synth %r: want NxD:NQ:l2|ip[:SEED]" % spec)
    n, d, nq = int(m[1]), int(m[2]), int(m[3])
    return n, d, nq, m[4], int(m[5] or 1)


def datasets(a):
    out = []
    synth = a.synth if a.synth is not None else \
        ([] if a.fvecs_base else DEFAULT_SYNTH)
    for spec in synth:
        n, d, nq, metric, seed = parse_synth(spec)
        dd = gen.ensure(a.data_dir, n, d, nq, seed, metric)
        out.append({"name": "synth-%s-%d-%s" % (fmt_size(n), d, metric),
                    "title": "Synthetic %s x %d (%s), %s queries"
                    % (fmt_size(n), d, "L2" if metric == "l2" else
                       "inner product, unit vectors", fmt_size(nq)),
                    "kind": "synthetic", "n": n, "d": d, "nq": nq,
                    "metric": metric, "seed": seed,
                    "base": os.path.join(dd, "base.fvecs"),
                    "query": os.path.join(dd, "query.fvecs"),
                    "gt": os.path.join(dd, "gt.ivecs")})
    if a.fvecs_base:
        if not a.fvecs_query:
            raise SystemExit("--fvecs-base needs --fvecs-query")
        gt = a.fvecs_gt or gen.ensure_gt(a.data_dir, a.fvecs_base,
                                         a.fvecs_query, a.fvecs_metric)
        n = n_rows(a.fvecs_base)
        d = gen.read_vecs(a.fvecs_query, limit=1).shape[1]
        nq = n_rows(a.fvecs_query)
        name = a.fvecs_name or re.sub(r"_?base$", "", os.path.splitext(
            os.path.basename(a.fvecs_base))[0]) or "user"
        out.append({"name": name, "title": "%s: %s x %d (%s), %s queries"
                    % (name, fmt_size(n), d, a.fvecs_metric.upper(),
                       fmt_size(nq)),
                    "kind": "files", "n": n, "d": d, "nq": nq,
                    "metric": a.fvecs_metric, "base": a.fvecs_base,
                    "query": a.fvecs_query, "gt": gt})
    return out


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.split("\n")[1:]))
    ap.add_argument("--synth", action="append",
                    help="synthetic dataset NxD:NQ:l2|ip[:SEED], repeatable")
    ap.add_argument("--fvecs-base")
    ap.add_argument("--fvecs-query")
    ap.add_argument("--fvecs-gt", help=".ivecs ground truth (nearest first);"
                    " computed by brute force if absent")
    ap.add_argument("--fvecs-metric", choices=["l2", "ip"], default="l2")
    ap.add_argument("--fvecs-name")
    ap.add_argument("--data-dir", default="data/ann")
    ap.add_argument("--libs", default="reel,hnswlib,hnswlib-native,faiss")
    ap.add_argument("--reel", default="build/reel")
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--efc", type=int, default=200)
    ap.add_argument("--build-threads", type=int, default=2)
    ap.add_argument("--efs", default=",".join(map(str, DEFAULT_EFS)))
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3,
                    help="passes over the queries per ef; the best counts")
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--stop-recall", type=float, default=0,
                    help="stop a library's sweep once its recall reaches "
                    "this (e.g. 0.999: the slow high-ef end; default: "
                    "the whole sweep)")
    ap.add_argument("--json", help="results file (default "
                    "<data-dir>/results.json)")
    ap.add_argument("--report", metavar="JSON",
                    help="only print the markdown of an earlier results file")
    # internal: one peer in its own process
    ap.add_argument("--worker", choices=PY_PEERS, help=argparse.SUPPRESS)
    ap.add_argument("--base", help=argparse.SUPPRESS)
    ap.add_argument("--query", help=argparse.SUPPRESS)
    ap.add_argument("--gt", help=argparse.SUPPRESS)
    ap.add_argument("--metric", help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.efs = [int(x) for x in a.efs.split(",") if x]
    a.threads = a.build_threads

    if a.worker:
        worker(a)
        return
    if a.report:
        with open(a.report) as f:
            print(render(json.load(f)))
        return

    libs = [x.strip() for x in a.libs.split(",") if x.strip()]
    for x in libs:
        if x not in LABEL:
            raise SystemExit("--libs: unknown %r (%s)"
                             % (x, ", ".join(LABEL)))
    json_path = a.json or os.path.join(a.data_dir, "results.json")
    res = {"settings": {"m": a.m, "efc": a.efc,
                        "build_threads": a.build_threads,
                        "search_threads": 1, "efs": a.efs, "k": a.k,
                        "runs": a.runs, "target": a.target,
                        "stop_recall": a.stop_recall},
           "machine": machine(), "peer_builds": peer_builds(),
           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "json_path": json_path, "datasets": []}
    res["peer_builds"] = {k: v for k, v in res["peer_builds"].items()
                          if k in libs}
    t_all = time.perf_counter()
    os.makedirs(a.data_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="work-", dir=a.data_dir) as work:
        for ds in datasets(a):
            log("dataset %s: %s" % (ds["name"], ds["title"]))
            t0 = time.perf_counter()
            ds["libs"] = {}
            for x in libs:
                if x == "reel":
                    ds["libs"][x] = run_reel(ds, a, work)
                elif x == "hnswlib-native":
                    ds["libs"][x] = run_native(ds, a)
                else:
                    ds["libs"][x] = run_peer(x, ds, a)
            ds["at_target"] = {
                x: dict(zip(("qps", "how", "efs"), qps_at(r["sweep"],
                                                          a.target)))
                for x, r in ds["libs"].items() if "sweep" in r}
            ds["qps_at_target"] = {x: v["qps"]
                                   for x, v in ds["at_target"].items()}
            rq = ds["qps_at_target"].get("reel")
            ds["ratios"] = {"reel/%s" % x: (rq / q if rq and q else None)
                            for x, q in ds["qps_at_target"].items()
                            if x != "reel"}
            ds["seconds"] = time.perf_counter() - t0
            res["datasets"].append(ds)
            log("dataset %s done in %.0f s" % (ds["name"], ds["seconds"]))
    res["seconds"] = time.perf_counter() - t_all
    os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
    with open(json_path + ".tmp", "w") as f:
        json.dump(res, f, indent=1)
    os.replace(json_path + ".tmp", json_path)
    log("wrote %s (%.0f s in all)" % (json_path, res["seconds"]))
    print(render(res))


if __name__ == "__main__":
    main()
