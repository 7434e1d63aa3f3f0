"""The Python serving stack a team would build instead of `reel serve`:
FastAPI + uvicorn + hnswlib + XGBoost + redis-py (all from Debian), over the
same data directory (what `reel build DIR` wrote) and with the same routes and
JSON shapes as reel's API (docs/API.md). It is the peer of bench/serve.

    /usr/bin/python3 bench/serve/peer.py DIR --redis unix:///tmp/x/redis.sock \
        [--host 127.0.0.1] [--port 8090] [--workers 2] [--no-load]

Start-up (in the launcher, once):
  1. unless --no-load: FLUSHDB and load every dataset user's state into Redis
     from DIR/dataset.reel's events, pipelined (see load_redis);
  2. build the hnswlib index (space "ip", M=16, ef_construction=200) over
     DIR/vectors/item2vec.reel, or reuse the one cached beside it
     (DIR/index/hnswlib-peer-M16-efc200.bin, rebuilt when the vectors change);
then uvicorn starts the workers. Each worker process (at import, see Peer)
maps the vectors and dataset, loads the cached index (ef=200) and
DIR/models/ranker.json into an xgboost.Booster (nthread=1), and precomputes
the per-video columns. With several workers each process holds its own copy
of the index and the model (the vectors and dataset are mmapped, so shared).

User state in Redis, per user id (the dataset's string id):
  h:{user}  list, newest first, of the last 10 viewed video numbers (LPUSH+LTRIM)
  s:{user}  set of video numbers the user had any non-impression event on
  c:{user}  hash of counters: views, impr, wf_sum, wf_n, r_sum, r_n,
            last_ts, last_pos (the video of the last view)
  b:{user}  hash c0..c63, l0..l15: category and language buckets, scaled
            to a fixed epoch (see T0) so that events only HINCRBYFLOAT
  v:views, v:impr  hashes video number -> count (written by /v1/events; the
            ranker reads the per-video snapshot taken at start, see below)
"""
import argparse
import json
import math
import os
import sys
import time
import uuid
from datetime import datetime

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelfiles  # noqa: E402

DAY = 86400.0
HISTORY_N = 10
CANDIDATES = 200
COLD_N = 500
MAX_K = 100
MAX_EVENTS = 10000
MAX_BODY = 8 << 20
NF = 33
# Column numbers (docs/features.md, src/rank/features.h)
(U_AGE, U_AGE_BUCKET, U_GENDER, U_COUNTRY, U_OCCUPATION, U_ACCOUNT_DAYS,
 U_VIEWS, U_WATCH_FRAC, U_HOURS_SINCE_LAST, U_IMPRESSIONS, U_CTR,
 U_TOP_LANGUAGE, U_MEAN_RATING, V_DURATION_S, V_TYPE, V_LANGUAGE, V_CATEGORY,
 V_AGE_DAYS, V_IMPRESSIONS, V_CTR, V_WATCH_FRAC, V_VIEWS, V_VIEWS_1D,
 V_VIEWS_7D, V_TREND, V_MEAN_RATING, X_SIM, X_RANK, X_SIM_LAST, X_SIM_MAX,
 X_CAT_AFFINITY, X_CAT_ANY, X_LANG_MATCH) = range(NF)
TYPES = {name: i for i, name in enumerate(reelfiles.EVENT_TYPES)}
IMPRESSION, SKIP = 0, 6
CAT_BUCKETS, LANG_BUCKETS = 64, 16
SHARE_HALF_LIFE = 30 * DAY
# The 30-day-decayed category and language buckets are kept scaled to a
# fixed epoch: an event of weight w at time t adds w * 2^((t - T0) / 30 d).
# Every bucket of a user then carries the same factor relative to reel's
# decayed value, shares are ratios, so they are the same, and an event is a
# plain HINCRBYFLOAT (no read-modify-write). Doubles hold +-1000 half-lives,
# i.e. +-80 years around T0.
T0 = 1.6e9


def bucket_scale(t):
    return np.exp2((np.asarray(t, np.float64) - T0) / SHARE_HALF_LIFE)


def vectors_path(d):
    return os.path.join(d, "vectors", "item2vec.reel")


def index_cache_path(d):
    return os.path.join(d, "index", "hnswlib-peer-M16-efc200.bin")


def dict_or_nan(a):
    a = a.astype(np.float32)
    a[a == np.float32(reelfiles.MISSING)] = np.nan
    return a


# ----------------------------------------------------------- event replay
def replay(ds):
    """What the dataset's events leave behind, with numpy, by reel's rules
    (src/rank/features.c): per-user counters, last-10 history and seen sets,
    per-video counters. Returns a dict of arrays."""
    nu, nv = ds.n_users, ds.n_videos
    ts, user, video = ds.event_ts, ds.event_user.astype(np.int64), ds.event_video.astype(np.int64)
    typ, watch, rating = ds.event_type, ds.event_watch, ds.event_rating
    dur = ds.video_duration[video]
    imp = typ == IMPRESSION
    pos = (typ != IMPRESSION) & (typ != SKIP)
    # A view is a positive event whose video differs from the user's previous
    # positive event's (click, play, watch of one video in a row: one view).
    pi = np.nonzero(pos)[0]
    o = pi[np.argsort(user[pi], kind="stable")]  # by user, then time
    pu, pv = user[o], video[o]
    rep = np.zeros(len(o), bool)
    rep[1:] = (pu[1:] == pu[:-1]) & (pv[1:] == pv[:-1])
    views_idx = o[~rep]  # event numbers of views, by user then time
    is_view = np.zeros(len(ts), bool)
    is_view[views_idx] = True
    wfm = pos & np.isfinite(watch) & (watch >= 0) & np.isfinite(dur) & (dur > 0)
    wf = np.minimum(watch / np.where(dur > 0, dur, 1), 1).astype(np.float32)
    rm = pos & np.isfinite(rating)
    r = {}
    bc = np.bincount
    r["u_views"] = bc(user[is_view], minlength=nu)
    r["u_impr"] = bc(user[imp], minlength=nu)
    r["u_wf_sum"] = bc(user[wfm], weights=wf[wfm], minlength=nu)
    r["u_wf_n"] = bc(user[wfm], minlength=nu)
    r["u_r_sum"] = bc(user[rm], weights=rating[rm], minlength=nu)
    r["u_r_n"] = bc(user[rm], minlength=nu)
    last = np.full(nu, -np.inf)
    np.maximum.at(last, user, ts)
    r["u_last_ts"] = last
    # last 10 views per user, oldest first
    vu = user[views_idx]
    ends = np.cumsum(bc(vu, minlength=nu))
    starts = np.concatenate(([0], ends[:-1]))
    vvid = video[views_idx]
    r["u_hist"] = [vvid[max(s, e - HISTORY_N):e] for s, e in zip(starts, ends)]
    # seen: any event but an impression
    ni = ~imp
    pairs = np.unique(user[ni] * nv + video[ni])
    su = pairs // nv
    sends = np.cumsum(bc(su, minlength=nu))
    sstarts = np.concatenate(([0], sends[:-1]))
    sv = pairs % nv
    r["u_seen"] = [sv[s:e] for s, e in zip(sstarts, sends)]
    # bucket weights: watched minutes, else 1 for a view and 0 for a repeat
    is_rep = np.zeros(len(ts), bool)
    is_rep[o[rep]] = True
    w = np.where(np.isfinite(watch) & (watch > 0), watch / np.float32(60),
                 np.where(is_rep, 0, 1)).astype(np.float64)
    wi = np.nonzero(pos & (w > 0))[0]
    ws = w[wi] * bucket_scale(ts[wi])
    off = ds.video_cat_off.astype(np.int64)
    ncat = off[video[wi] + 1] - off[video[wi]]
    ei = np.repeat(np.arange(len(wi)), ncat)
    first = np.repeat(np.cumsum(ncat) - ncat, ncat)
    cat = ds.video_cat[off[video[wi]][ei] + (np.arange(len(ei)) - first)].astype(np.int64)
    r["u_cat"] = bc(user[wi][ei] * CAT_BUCKETS + cat % CAT_BUCKETS, weights=ws[ei],
                    minlength=nu * CAT_BUCKETS).reshape(nu, CAT_BUCKETS)
    lang = ds.video_language[video[wi]].astype(np.int64)
    lm = lang != reelfiles.MISSING
    r["u_lang"] = bc(user[wi][lm] * LANG_BUCKETS + lang[lm] % LANG_BUCKETS, weights=ws[lm],
                     minlength=nu * LANG_BUCKETS).reshape(nu, LANG_BUCKETS)
    # per video
    r["v_views"] = bc(video[is_view], minlength=nv)
    r["v_impr"] = bc(video[imp], minlength=nv)
    r["v_wf_sum"] = bc(video[wfm], weights=wf[wfm], minlength=nv)
    r["v_wf_n"] = bc(video[wfm], minlength=nv)
    r["v_r_sum"] = bc(video[rm], weights=rating[rm], minlength=nv)
    r["v_r_n"] = bc(video[rm], minlength=nv)
    t_ref = float(ts[-1]) if len(ts) else 0.0
    r["t_ref"] = t_ref
    age = t_ref - ts[is_view]
    r["v_d1"] = bc(video[is_view], weights=np.exp2(-age / DAY), minlength=nv)
    r["v_d7"] = bc(video[is_view], weights=np.exp2(-age / (7 * DAY)), minlength=nv)
    # cold start (src/reco/engine.c): trending = positive events decayed
    # with a one-day half-life, popular = positive events
    pa = t_ref - ts[pos]
    r["v_trend"] = bc(video[pos], weights=np.exp2(-pa / DAY), minlength=nv)
    r["v_pos"] = bc(video[pos], minlength=nv)
    return r


def load_redis(ds, rs, url, chunk=500):
    """FLUSHDB, then every dataset user's state, pipelined in chunks."""
    import redis
    t0 = time.perf_counter()
    rd = redis.Redis.from_url(url)
    rd.flushdb()
    p = rd.pipeline(transaction=False)
    n = 0
    for u, uid in enumerate(ds.user_id):
        h = rs["u_hist"][u]
        if len(h):
            p.lpush(f"h:{uid}", *[int(x) for x in h])  # oldest pushed first
        s = rs["u_seen"][u]
        if len(s):
            p.sadd(f"s:{uid}", *[int(x) for x in s])
        c = {"views": int(rs["u_views"][u]), "impr": int(rs["u_impr"][u]),
             "wf_sum": float(rs["u_wf_sum"][u]), "wf_n": int(rs["u_wf_n"][u]),
             "r_sum": float(rs["u_r_sum"][u]), "r_n": int(rs["u_r_n"][u])}
        if np.isfinite(rs["u_last_ts"][u]):
            c["last_ts"] = float(rs["u_last_ts"][u])
        if len(h):
            c["last_pos"] = int(h[-1])
        p.hset(f"c:{uid}", mapping=c)
        b = {f"c{i}": float(x) for i, x in enumerate(rs["u_cat"][u]) if x > 0}
        b.update({f"l{i}": float(x) for i, x in enumerate(rs["u_lang"][u]) if x > 0})
        if b:
            p.hset(f"b:{uid}", mapping=b)
        n += 1
        if n % chunk == 0:
            p.execute()
    p.execute()
    print(f"peer: loaded {ds.n_users} users into redis in "
          f"{time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)


def build_index(d):
    """Builds (or reuses) the hnswlib index file; returns its path."""
    import hnswlib
    vp, ip = vectors_path(d), index_cache_path(d)
    st = os.stat(vp)
    stamp = ip + ".src"
    want = f"{st.st_size} {st.st_mtime_ns}"
    if os.path.exists(ip) and os.path.exists(stamp) and open(stamp).read() == want:
        return ip
    t0 = time.perf_counter()
    vec = reelfiles.read_vectors(vp)
    ids = np.nonzero(vec.has)[0]
    ix = hnswlib.Index(space="ip", dim=vec.dim)
    ix.init_index(max_elements=max(1, len(ids)), ef_construction=200, M=16)
    ix.add_items(np.ascontiguousarray(vec.data[ids]), ids, num_threads=os.cpu_count())
    ix.save_index(ip)
    with open(stamp, "w") as f:
        f.write(want)
    print(f"peer: hnswlib index over {len(ids)} vectors built in "
          f"{time.perf_counter() - t0:.1f} s -> {ip}", file=sys.stderr, flush=True)
    return ip


# ----------------------------------------------------------- the workers
class Peer:
    """What one worker process holds."""

    def __init__(self, d):
        import hnswlib
        import xgboost
        t0 = time.perf_counter()
        ds = reelfiles.read_dataset(os.path.join(d, "dataset.reel"))
        vec = reelfiles.read_vectors(vectors_path(d))
        if not vec.prior:
            # The peer implements the item2vec convention reel build writes.
            raise SystemExit("peer: vectors without the popularity prior are not supported")
        self.ds, self.vec = ds, vec
        nv, nu = ds.n_videos, ds.n_users
        self.video_num = {v: i for i, v in enumerate(ds.video_id)}
        self.user_num = {u: i for i, u in enumerate(ds.user_id)}
        self.titles = ds.video_title
        self.video_ids = ds.video_id
        # reel build writes one row per dataset video, in the dataset's order
        if vec.n != nv or vec.ids != ds.video_id:
            raise SystemExit("peer: the vectors' rows are not the dataset's videos in order")
        self.has = vec.has.astype(bool)
        self.data = vec.data
        u = np.array(vec.data[:, :-1], np.float32)
        nrm = np.linalg.norm(u, axis=1, keepdims=True)
        self.unit = np.where(nrm > 0, u / np.where(nrm > 0, nrm, 1), np.nan).astype(np.float32)
        self.unit[~self.has] = np.nan
        self.index = hnswlib.Index(space="ip", dim=vec.dim)
        self.index.load_index(index_cache_path(d), max_elements=nv)
        self.index.set_ef(200)
        self.index.set_num_threads(1)
        self.booster = xgboost.Booster(model_file=os.path.join(d, "models", "ranker.json"))
        self.booster.set_param({"nthread": 1})
        if self.booster.num_features() != NF:
            raise SystemExit(f"peer: ranker has {self.booster.num_features()} features, expected {NF}")
        # per-video columns: static ones, and the counters as of start-up
        rs = replay(ds)
        V = np.full((nv, NF), np.nan, np.float32)
        V[:, V_DURATION_S] = ds.video_duration
        V[:, V_TYPE] = dict_or_nan(ds.video_type)
        V[:, V_LANGUAGE] = dict_or_nan(ds.video_language)
        off = ds.video_cat_off.astype(np.int64)
        hascat = off[1:] > off[:-1]
        V[hascat, V_CATEGORY] = ds.video_cat[off[:-1][hascat]]
        V[:, V_IMPRESSIONS] = rs["v_impr"]
        V[:, V_VIEWS] = rs["v_views"]
        im = rs["v_impr"] > 0
        V[im, V_CTR] = (rs["v_views"][im] + 1.0) / (rs["v_impr"][im] + 2.0)
        wn = rs["v_wf_n"] > 0
        V[wn, V_WATCH_FRAC] = rs["v_wf_sum"][wn] / rs["v_wf_n"][wn]
        rn = rs["v_r_n"] > 0
        V[rn, V_MEAN_RATING] = rs["v_r_sum"][rn] / rs["v_r_n"][rn]
        self.V = V
        # buckets: the primary category's, the language's, and the set of
        # all the categories' buckets (one bit per bucket, packed)
        self.pcat_b = np.full(nv, -1, np.int64)
        self.pcat_b[hascat] = ds.video_cat[off[:-1][hascat]] % CAT_BUCKETS
        lang = ds.video_language.astype(np.int64)
        self.lang_b = np.where(lang != reelfiles.MISSING, lang % LANG_BUCKETS, -1)
        mask = np.zeros((nv, CAT_BUCKETS), np.uint8)
        vv = np.repeat(np.arange(nv), np.diff(off))
        mask[vv, ds.video_cat.astype(np.int64) % CAT_BUCKETS] = 1
        self.cat_bits = np.packbits(mask, axis=1)  # nv x 8 bytes
        self.cat_off, self.cat = off, ds.video_cat.astype(np.int64)
        self.published = ds.video_published.astype(np.float64)
        self.d1, self.d7, self.t_ref = rs["v_d1"], rs["v_d7"], rs["t_ref"]
        # user columns from the dataset (demographics)
        U = np.full((nu, 6), np.nan, np.float32)
        age = ds.user_age.astype(np.float32)
        known = ds.user_age >= 0
        U[known, U_AGE] = age[known]
        U[known, U_AGE_BUCKET] = np.searchsorted(np.array([18, 25, 35, 45, 50, 56]), age[known], side="right")
        U[:, U_GENDER] = dict_or_nan(ds.user_gender)
        U[:, U_COUNTRY] = dict_or_nan(ds.user_country)
        U[:, U_OCCUPATION] = dict_or_nan(ds.user_occupation)
        self.U = U
        self.signup = ds.user_signup.astype(np.float64)
        # cold start: trending and popular interleaved (src/reco/engine.c)
        trend = [int(v) for v in np.argsort(-rs["v_trend"], kind="stable")[:COLD_N] if rs["v_trend"][v] > 0]
        pop = [int(v) for v in np.argsort(-rs["v_pos"], kind="stable")[:COLD_N] if rs["v_pos"][v] > 0]
        cold, inl = [], set()
        for i in range(max(len(trend), len(pop))):
            for lst in (trend, pop):
                if i < len(lst) and lst[i] not in inl:
                    inl.add(lst[i])
                    cold.append(lst[i])
        self.cold = cold
        self.rid = uuid.uuid4().hex[:8]
        self.nreq = 0
        print(f"peer: worker {os.getpid()} ready in {time.perf_counter() - t0:.1f} s "
              f"({nv} videos, {nu} users, {int(self.has.sum())} vectors)", file=sys.stderr, flush=True)

    def request_id(self):
        self.nreq += 1
        return f"{self.rid}-{self.nreq:x}"

    def rank(self, uid, hist, seen, c, b, k, now):
        """hist: newest first. Returns [(video, score)] or [] (cold start)."""
        labels, X = self.features(uid, hist, seen, c, b, now)
        if not len(labels):
            return []
        p = self.booster.inplace_predict(X)
        order = np.lexsort((labels, -p))[:k]
        return [(int(labels[i]), float(p[i])) for i in order]

    def features(self, uid, hist, seen, c, b, now):
        """The candidates and their 33-column float32 feature matrix."""
        none = (np.zeros(0, np.int64), None)
        hist = [v for v in hist if 0 <= v < len(self.has)]
        used = [v for v in hist if self.has[v]][:HISTORY_N]
        if not used:
            return none
        q = self.data[used].sum(axis=0)
        q32 = q[:-1]
        n2 = float(np.dot(q32, q32))
        q = np.empty(self.vec.dim, np.float32)
        q[:-1] = q32 / math.sqrt(n2) if n2 > 0 else 0
        q[-1] = 1
        # hnswlib 0.6 has no filter: over-fetch by the seen count, then drop
        nidx = self.index.get_current_count()
        want = min(nidx, CANDIDATES + len(seen))
        self.index.set_ef(max(200, want))
        labels, dist = self.index.knn_query(q, k=want)
        labels, sims = labels[0].astype(np.int64), (1 - dist[0]).astype(np.float32)
        if seen:
            keep = ~np.isin(labels, np.fromiter(seen, np.int64, len(seen)))
            labels, sims = labels[keep], sims[keep]
        labels, sims = labels[:CANDIDATES], sims[:CANDIDATES]
        nc = len(labels)
        if not nc:
            return none
        X = self.V[labels]  # copy: fancy indexing
        # user columns
        u = self.user_num.get(uid)
        if u is not None:
            X[:, :6] = self.U[u]
            if np.isfinite(self.signup[u]):
                X[:, U_ACCOUNT_DAYS] = (now - self.signup[u]) / DAY
        views, impr = float(c.get(b"views", 0)), float(c.get(b"impr", 0))
        X[:, U_VIEWS] = views
        X[:, U_IMPRESSIONS] = impr
        if impr:
            X[:, U_CTR] = (views + 1) / (impr + 2)
        wf_n = float(c.get(b"wf_n", 0))
        if wf_n:
            X[:, U_WATCH_FRAC] = float(c[b"wf_sum"]) / wf_n
        r_n = float(c.get(b"r_n", 0))
        if r_n:
            X[:, U_MEAN_RATING] = float(c[b"r_sum"]) / r_n
        if b"last_ts" in c:
            X[:, U_HOURS_SINCE_LAST] = (now - float(c[b"last_ts"])) / 3600
        # video columns that depend on now (counters: start-up snapshot)
        X[:, V_AGE_DAYS] = (now - self.published[labels]) / DAY
        dt = max(now - self.t_ref, 0.0)
        d1 = self.d1[labels] * 2.0 ** (-dt / DAY)
        d7 = self.d7[labels] * 2.0 ** (-dt / (7 * DAY))
        X[:, V_VIEWS_1D] = d1
        X[:, V_VIEWS_7D] = d7
        with np.errstate(invalid="ignore", divide="ignore"):
            X[:, V_TREND] = np.where(d7 > 0, d1 / np.where(d7 > 0, d7, 1), np.nan)
        # retrieval columns
        X[:, X_SIM] = sims
        X[:, X_RANK] = (sims[None, :] > sims[:, None]).sum(axis=1)
        cu = self.unit[labels]
        cos = cu @ self.unit[hist[:HISTORY_N]].T  # nc x h, NaN for no vector
        X[:, X_SIM_LAST] = cos[:, 0]
        m = np.where(np.isnan(cos), -np.inf, cos).max(axis=1)
        m[m == -np.inf] = np.nan
        X[:, X_SIM_MAX] = m
        # shares (11, 30-32) from the user's buckets
        cat = np.zeros(CAT_BUCKETS)
        lang = np.zeros(LANG_BUCKETS)
        for f, x in b.items():
            if f[:1] == b"c":
                cat[int(f[1:])] = float(x)
            else:
                lang[int(f[1:])] = float(x)
        lt, ct = lang.sum(), cat.sum()
        if lang.max() > 0:
            X[:, U_TOP_LANGUAGE] = int(np.argmax(lang))
        if ct > 0:
            pb = self.pcat_b[labels]
            hc = pb >= 0
            X[hc, X_CAT_AFFINITY] = cat[pb[hc]] / ct
            bits = np.unpackbits(self.cat_bits[labels], axis=1)
            X[hc, X_CAT_ANY] = (bits[hc] @ cat) / ct
        if lt > 0:
            lb = self.lang_b[labels]
            hl = lb >= 0
            X[hl, X_LANG_MATCH] = lang[lb[hl]] / lt
        return labels, X


# ----------------------------------------------------------- the app
def make_app(d, redis_url):
    import redis.asyncio as aredis
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    peer = Peer(d)
    rd = aredis.Redis.from_url(redis_url, max_connections=64)
    app = FastAPI(title="reel peer (FastAPI + hnswlib + XGBoost + Redis)")
    app.state.peer = peer

    def err(status, msg):
        return JSONResponse({"error": msg}, status_code=status)

    from starlette.exceptions import HTTPException

    @app.exception_handler(HTTPException)
    async def http_error(request, exc):  # reel's error shape, not FastAPI's
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.get("/healthz")
    async def healthz():
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    async def readyz():
        return JSONResponse({"status": "ready"})

    @app.get("/v1/users/{user:path}/recommendations")  # ids may hold %2F
    async def recommendations(user: str, k: str = "10"):
        try:
            k = int(k)
        except ValueError:
            return err(400, "k must be a number")
        if k < 1:
            return err(400, "k must be at least 1")
        k = min(k, MAX_K)
        now = time.time()
        p = rd.pipeline(transaction=False)
        p.lrange(f"h:{user}", 0, HISTORY_N - 1)
        p.smembers(f"s:{user}")
        p.hgetall(f"c:{user}")
        p.hgetall(f"b:{user}")
        hist, seen, c, b = await p.execute()
        hist = [int(v) for v in hist]
        seen = {int(v) for v in seen}
        items = peer.rank(user, hist, seen, c, b, k, now)
        source = "personalized"
        if not items:
            source = "cold-start"
            for v in peer.cold:
                if len(items) >= k:
                    break
                if v not in seen:
                    items.append((v, 1.0 / (1 + len(items))))
        return JSONResponse({
            "user": user,
            "items": [{"video": peer.video_ids[v], "score": s, "title": peer.titles[v]} for v, s in items],
            "request_id": peer.request_id(),
            "source": source})

    def parse_events(body):
        """One object, an array, or NDJSON -> list, or raises ValueError."""
        text = body.decode("utf-8")
        if not text.strip():
            raise ValueError("empty body")
        try:
            x = json.loads(text)
            evs = x if isinstance(x, list) else [x]
        except json.JSONDecodeError as e:
            evs = []
            for n, line in enumerate(text.splitlines()):
                if line.strip():
                    try:
                        evs.append(json.loads(line))
                    except json.JSONDecodeError:
                        raise ValueError(f"bad JSON: {e.msg} at line {n + 1}")
        if not evs:
            raise ValueError("no event")
        return evs

    def check(e):
        """An event dict -> (user, video, type, ts, watch, rating) or error."""
        if not isinstance(e, dict):
            return "an event must be an object"
        u, v, t = e.get("user"), e.get("video"), e.get("type")
        if u is None:
            return 'missing "user"'
        if v is None:
            return 'missing "video"'
        if t is None:
            return 'missing "type"'
        if not isinstance(u, (str, int)) or isinstance(u, bool) or not isinstance(v, (str, int)) or isinstance(v, bool):
            return "ids must be strings or integers"
        vn = peer.video_num.get(str(v))
        if vn is None:
            return "unknown video"
        tn = TYPES.get(t) if isinstance(t, str) else None
        if tn is None:
            return f'unknown event type "{t}"'
        ts = e.get("ts")
        if ts is None:
            ts = time.time()
        elif isinstance(ts, str):
            try:
                ts = datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
            except ValueError:
                return 'bad "ts"'
        elif not isinstance(ts, (int, float)) or isinstance(ts, bool) or not math.isfinite(ts):
            return 'bad "ts"'
        w, r = e.get("watch_s"), e.get("rating")
        for name, x in (("watch_s", w), ("rating", r)):
            if x is not None and (not isinstance(x, (int, float)) or isinstance(x, bool) or not math.isfinite(x)):
                return f'bad "{name}"'
        return (str(u), vn, tn, float(ts), w, r)

    @app.post("/v1/events")
    async def events(request: Request):
        body = await request.body()
        if len(body) > MAX_BODY:
            return err(413, "body above 8 MiB")
        try:
            evs = parse_events(body)
        except (ValueError, UnicodeDecodeError) as ex:
            return err(400, str(ex))
        if len(evs) > MAX_EVENTS:
            return err(413, "more than 10000 events")
        ok, rejected = [], []
        for i, e in enumerate(evs):
            x = check(e)
            if isinstance(x, str):
                rejected.append({"index": i, "error": x})
            else:
                ok.append(x)
        if ok:
            # Repeats (the same video as the user's previous positive event)
            # are not views: read each user's last view first, one round trip.
            users = list({x[0] for x in ok})
            p = rd.pipeline(transaction=False)
            for u in users:
                p.hget(f"c:{u}", "last_pos")
            lastpos = {u: (int(x) if x is not None else -1) for u, x in zip(users, await p.execute())}
            p = rd.pipeline(transaction=False)
            for u, v, t, ts, w, r in ok:
                c = f"c:{u}"
                p.hset(c, "last_ts", ts)
                if t == IMPRESSION:
                    p.hincrby(c, "impr", 1)
                    p.hincrby("v:impr", v, 1)
                    continue
                p.sadd(f"s:{u}", v)
                if t == SKIP:
                    continue
                dur = float(peer.ds.video_duration[v])
                if w is not None and w >= 0 and dur > 0:
                    p.hincrbyfloat(c, "wf_sum", min(w / dur, 1.0))
                    p.hincrby(c, "wf_n", 1)
                if r is not None:
                    p.hincrbyfloat(c, "r_sum", r)
                    p.hincrby(c, "r_n", 1)
                repeat = lastpos[u] == v
                wt = w / 60 if w is not None and w > 0 else (0 if repeat else 1)
                if wt > 0:
                    sc = wt * float(bucket_scale(ts))
                    for cb in peer.cat[peer.cat_off[v]:peer.cat_off[v + 1]] % CAT_BUCKETS:
                        p.hincrbyfloat(f"b:{u}", f"c{cb}", sc)
                    if peer.lang_b[v] >= 0:
                        p.hincrbyfloat(f"b:{u}", f"l{peer.lang_b[v]}", sc)
                if repeat:
                    continue
                lastpos[u] = v
                p.lpush(f"h:{u}", v)
                p.ltrim(f"h:{u}", 0, HISTORY_N - 1)
                p.hincrby(c, "views", 1)
                p.hset(c, "last_pos", v)
                p.hincrby("v:views", v, 1)
            await p.execute()
        return JSONResponse({"accepted": len(ok), "rejected": rejected}, status_code=202)

    return app


def _app_from_env():
    return make_app(os.environ["REEL_PEER_DIR"], os.environ["REEL_PEER_REDIS"])


app = None
if os.environ.get("REEL_PEER_DIR") and __name__ == "peer":  # not __mp_main__
    app = _app_from_env()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0",
                    help="redis URL, e.g. unix:///tmp/peer/redis.sock")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8090)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-load", action="store_true",
                    help="keep what Redis holds (skip FLUSHDB and the load)")
    a = ap.parse_args()
    import uvicorn
    if not a.no_load:
        ds = reelfiles.read_dataset(os.path.join(a.dir, "dataset.reel"))
        t0 = time.perf_counter()
        rs = replay(ds)
        print(f"peer: replayed {ds.n_events} events in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr, flush=True)
        load_redis(ds, rs, a.redis)
        del ds, rs
    build_index(a.dir)
    os.environ["REEL_PEER_DIR"] = a.dir
    os.environ["REEL_PEER_REDIS"] = a.redis
    os.chdir(os.path.dirname(os.path.abspath(__file__)))
    uvicorn.run("peer:app", host=a.host, port=a.port, workers=a.workers,
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
