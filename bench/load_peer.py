"""Peer for bench_load: numpy loads the same event columns from .npy files
(no checksums, no validation) and touches them once. Best of 5."""
import json
import sys
import time

import numpy as np

d = sys.argv[1]
best = float("inf")
for _ in range(5):
    t0 = time.perf_counter()
    cols = {c: np.load(f"{d}/npy/{c}.npy") for c in
            ("ts", "user", "video", "type", "watch", "rating")}
    s = (cols["ts"].sum() + cols["user"].sum(dtype=np.float64) +
         cols["video"].sum(dtype=np.float64) + cols["type"].sum(dtype=np.float64)
         + cols["watch"].sum(dtype=np.float64))
    best = min(best, time.perf_counter() - t0)
print(json.dumps({"numpy_load_and_scan_s": round(best, 3)}))
