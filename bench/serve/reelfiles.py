"""numpy readers for reel's binary files, for the Python serving peer.

- SecFile: the section-file container (docs/formats/secfile.md)
- read_vectors: DIR/vectors/NAME.reel (docs/formats/vectors.md)
- read_dataset: DIR/dataset.reel (docs/formats/dataset.md), the columns the
  peer uses

Sections are memory-mapped and returned as numpy views (zero copy), as reel
itself does. Header and table are always checked (magic, version, kind, sizes,
bounds, alignment, CRC-32C of header and table). Section CRCs are checked by
a pure-Python CRC-32C (table-driven, about 10 MB/s): by default only for files
up to VERIFY_MAX_BYTES (64 MB), because a 1M-video dataset would take
minutes; pass verify=True/False to force. Debian has no CRC-32C module for
Python (zlib.crc32 is the other polynomial), and PyPI is off limits here.
"""
import mmap
import struct

import numpy as np

MAGIC = b"REELSEC\0"
VERIFY_MAX_BYTES = 64 << 20

# element type -> numpy dtype (little-endian)
DTYPES = {
    0: np.dtype("u1"),  # bytes
    1: np.dtype("u1"),
    2: np.dtype("<i2"),
    3: np.dtype("<u4"),
    4: np.dtype("<u8"),
    5: np.dtype("<f4"),
    6: np.dtype("<f8"),
    7: np.dtype("<i4"),
    8: np.dtype("i1"),
    9: np.dtype("<u2"),
}


class FormatError(ValueError):
    pass


def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_CRC_T = _crc_table()


def crc32c(data, crc=0):
    """CRC-32C (Castagnoli), reflected, init and final XOR 0xFFFFFFFF."""
    t = _CRC_T
    c = crc ^ 0xFFFFFFFF
    for b in bytes(data):
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


class Section:
    __slots__ = ("name", "offset", "length", "count", "type", "crc")

    def __init__(self, name, offset, length, count, type_, crc):
        self.name, self.offset, self.length = name, offset, length
        self.count, self.type, self.crc = count, type_, crc


class SecFile:
    """A section file opened read-only and mapped; arrays are views into it."""

    def __init__(self, path, kind, verify=None):
        self.path = path
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            if size < 64:
                raise FormatError(f"{path}: {size} bytes, shorter than a header")
            self.mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        mm = self.mm
        hdr = mm[:64]
        if hdr[:8] != MAGIC:
            raise FormatError(f"{path}: not a reel section file (bad magic)")
        (version, n_sec) = struct.unpack_from("<II", hdr, 8)
        kind_b = hdr[16:32].rstrip(b"\0")
        (table_off, file_size, table_crc) = struct.unpack_from("<QQI", hdr, 32)
        (header_crc,) = struct.unpack_from("<I", hdr, 60)
        if crc32c(hdr[:60]) != header_crc:
            raise FormatError(f"{path}: header checksum mismatch")
        if version != 1:
            raise FormatError(f"{path}: version {version}, expected 1")
        if kind_b.decode("ascii", "replace") != kind:
            raise FormatError(f"{path}: kind '{kind_b.decode('ascii', 'replace')}', expected '{kind}'")
        if n_sec > 65536:
            raise FormatError(f"{path}: {n_sec} sections (at most 65536)")
        if file_size != size:
            raise FormatError(f"{path}: size {size} but header says {file_size} (truncated or trailing bytes)")
        if table_off < 64 or table_off % 64 or table_off + 64 * n_sec != file_size:
            raise FormatError(f"{path}: bad table offset {table_off}")
        table = mm[table_off:file_size]
        if crc32c(table) != table_crc:
            raise FormatError(f"{path}: table checksum mismatch")
        if verify is None:
            verify = size <= VERIFY_MAX_BYTES
        self.sections = {}
        for i in range(n_sec):
            e = table[64 * i: 64 * (i + 1)]
            raw = e[:32]
            if b"\0" not in raw:
                raise FormatError(f"{path}: section {i}: name without NUL")
            name = raw.split(b"\0", 1)[0].decode("ascii")
            off, length, count, typ, crc = struct.unpack_from("<QQQII", e, 32)
            if typ not in DTYPES:
                raise FormatError(f"{path}: section {name}: unknown type {typ}")
            es = DTYPES[typ].itemsize
            if off < 64 or off % 64 or off + length > table_off:
                raise FormatError(f"{path}: section {name}: out of bounds or misaligned")
            if length % es or length // es != count:
                raise FormatError(f"{path}: section {name}: length {length} does not match count {count}")
            if name in self.sections:
                raise FormatError(f"{path}: section {name} twice")
            if verify and crc32c(mm[off:off + length]) != crc:
                raise FormatError(f"{path}: section {name}: checksum mismatch")
            self.sections[name] = Section(name, off, length, count, typ, crc)

    def has(self, name):
        return name in self.sections

    def array(self, name, type_=None, count=None):
        s = self.sections.get(name)
        if s is None:
            raise FormatError(f"{self.path}: section {name} missing")
        if type_ is not None and s.type != type_ and not (type_ in (0, 1) and s.type in (0, 1)):
            raise FormatError(f"{self.path}: section {name}: type {s.type}, expected {type_}")
        if count is not None and s.count != count:
            raise FormatError(f"{self.path}: section {name}: {s.count} elements, expected {count}")
        return np.frombuffer(self.mm, dtype=DTYPES[s.type], count=s.count, offset=s.offset)

    def strings(self, name, count=None):
        """A string column (NAME.off + NAME) as a list of str."""
        off = self.array(name + ".off", 4)
        if count is not None and len(off) != count + 1:
            raise FormatError(f"{self.path}: {name}.off: {len(off) - 1} strings, expected {count}")
        data = self.array(name, 0)
        if len(off) == 0 or off[0] != 0 or off[-1] != len(data) or np.any(np.diff(off.astype(np.int64)) < 1):
            raise FormatError(f"{self.path}: {name}: malformed string column")
        buf = data.tobytes()
        if len(off) > 1 and np.any(data[off[1:].astype(np.int64) - 1] != 0):
            raise FormatError(f"{self.path}: {name}: a string without its NUL")
        # Split on NULs: each string ends with exactly one NUL at off[i+1]-1;
        # an embedded NUL would make the split disagree with the offsets.
        parts = buf.split(b"\0")[:-1]
        if len(parts) != len(off) - 1:
            raise FormatError(f"{self.path}: {name}: embedded NUL in a string")
        return [p.decode("utf-8") for p in parts]


class Vectors:
    """ids (list of str), has (u8[n]), data (f32[n, dim]), prior (bool)."""

    def __init__(self, ids, has, data, prior, unit, source):
        self.ids, self.has, self.data = ids, has, data
        self.prior, self.unit, self.source = prior, unit, source
        self.n, self.dim = data.shape


def read_vectors(path, verify=None):
    f = SecFile(path, "vectors", verify)
    p = f.array("vectors.params", 4, 8)
    if p[0] != 1:
        raise FormatError(f"{path}: vectors version {p[0]}, expected 1")
    n, dim = int(p[1]), int(p[2])
    if not 1 <= dim <= 4096:
        raise FormatError(f"{path}: dim {dim} outside 1..4096")
    ids = f.strings("vectors.ids", n)
    has = f.array("vectors.has", 1, n)
    data = f.array("vectors.data", 5, n * dim).reshape(n, dim)
    src = f.array("vectors.source", 0).tobytes().decode("utf-8", "replace")
    return Vectors(ids, has, data, bool(p[4]), bool(p[3]), src)


class Dataset:
    """The dataset columns the peer uses (numpy views into the mapped file)."""


MISSING = 0xFFFFFFFF


def read_dataset(path, verify=None):
    f = SecFile(path, "dataset", verify)
    d = Dataset()
    d.video_id = f.strings("video.id")
    nv = len(d.video_id)
    d.video_title = f.strings("video.title", nv)
    d.video_language = f.array("video.language", 3, nv)
    d.video_type = f.array("video.type", 3, nv)
    d.video_duration = f.array("video.duration", 5, nv)
    d.video_published = f.array("video.published", 6, nv)
    d.video_cat_off = f.array("video.cat.off", 3, nv + 1)
    d.video_cat = f.array("video.cat", 3)
    if d.video_cat_off[0] != 0 or d.video_cat_off[-1] != len(d.video_cat) or \
            np.any(np.diff(d.video_cat_off.astype(np.int64)) < 0):
        raise FormatError(f"{path}: video.cat.off: not monotone or inconsistent")
    d.user_id = f.strings("user.id")
    nu = len(d.user_id)
    d.user_age = f.array("user.age", 2, nu)
    d.user_gender = f.array("user.gender", 3, nu)
    d.user_country = f.array("user.country", 3, nu)
    d.user_occupation = f.array("user.occupation", 3, nu)
    d.user_signup = f.array("user.signup", 6, nu)
    d.event_ts = f.array("event.ts", 6)
    ne = len(d.event_ts)
    d.event_user = f.array("event.user", 3, ne)
    d.event_video = f.array("event.video", 3, ne)
    d.event_type = f.array("event.type", 1, ne)
    d.event_watch = f.array("event.watch", 5, ne)
    d.event_rating = f.array("event.rating", 5, ne)
    if ne:
        if np.isnan(d.event_ts).any() or np.any(np.diff(d.event_ts) < 0):
            raise FormatError(f"{path}: event.ts: NaN or not sorted")
        if d.event_user.max() >= nu:
            raise FormatError(f"{path}: event.user: a user out of range")
        if d.event_video.max() >= nv:
            raise FormatError(f"{path}: event.video: a video out of range")
        if d.event_type.max() > 7:
            raise FormatError(f"{path}: event.type: unknown type")
    d.n_videos, d.n_users, d.n_events = nv, nu, ne
    d.file = f
    return d


EVENT_TYPES = ("impression", "click", "play", "watch", "like", "share", "skip", "rating")


def _main(argv):
    """reelfiles.py ids DIR users|videos: the ids, one a line (wrk scripts).
    reelfiles.py check DIR: reads and validates dataset and vectors.
    reelfiles.py npy DIR OUT: DIR/vectors/item2vec.reel as a float32 .npy
    (row = video number, for `reel index build`; every row needs a vector)."""
    import os
    import sys
    if len(argv) == 4 and argv[1] == "ids" and argv[3] in ("users", "videos"):
        d = read_dataset(os.path.join(argv[2], "dataset.reel"), verify=False)
        out = d.user_id if argv[3] == "users" else d.video_id
        sys.stdout.write("".join(x + "\n" for x in out))
        return 0
    if len(argv) == 3 and argv[1] == "check":
        d = read_dataset(os.path.join(argv[2], "dataset.reel"), verify=True)
        v = read_vectors(os.path.join(argv[2], "vectors", "item2vec.reel"), verify=True)
        print(f"dataset: {d.n_videos} videos, {d.n_users} users, {d.n_events} events; "
              f"vectors: {v.n} x {v.dim}, {int(v.has.sum())} present, prior {v.prior}")
        return 0
    if len(argv) == 4 and argv[1] == "npy":
        v = read_vectors(os.path.join(argv[2], "vectors", "item2vec.reel"), verify=False)
        missing = v.n - int(np.count_nonzero(v.has))
        if missing:
            # `reel index build` numbers items by row: a hole would shift ids
            sys.stderr.write(f"reelfiles: {missing} of {v.n} videos have no vector\n")
            return 1
        np.save(argv[3], np.ascontiguousarray(v.data, dtype=np.float32))
        return 0
    sys.stderr.write(_main.__doc__ + "\n")
    return 2


if __name__ == "__main__":
    import sys
    sys.exit(_main(sys.argv))
