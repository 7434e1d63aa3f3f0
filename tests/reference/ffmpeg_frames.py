#!/usr/bin/python3
"""Oracle for src/embed/frames: FFmpeg's own command-line tools.

Two commands, used by tests/unit/test_frames.c (and by hand):

  gen NAME OUT   writes the test video NAME to OUT with ffmpeg's lavfi
                 sources (small, a few seconds, deterministic settings)
  probe FILE     prints what FFmpeg 5.1 says of FILE's key frames:
                 a line "n N", then N lines "PTS_TIME SCORE", where
                 PTS_TIME comes from
                   ffprobe -skip_frame nokey -select_streams v -show_frames
                           -show_entries frame=pts_time,key_frame
                 and SCORE is lavfi.scene_score from
                   ffmpeg -skip_frame nokey -i FILE
                          -vf "select='gte(scene,0)',metadata=print"
                          -an -f null -
                 (metadata=print to the log, not to a file=, which a filter
                 graph rebuilt on a size change would truncate)
                 (the two lists must have the same length; the frames are
                 the same ones, in the same order). If ffprobe lists frames
                 with key_frame=0 (a decoder that ignores skip_frame), only
                 its key frames count and the ffmpeg command gets
                 select='eq(key,1)' before the scoring select, so the
                 scores compare consecutive key frames, as reel does.

  rgb FILE OUT   writes every key frame of FILE to OUT as raw rgb24,
                 converted by ffmpeg's scale filter with the flags reel
                 uses (bicubic, accurate_rnd, full_chroma_int/inp)

usage: /usr/bin/python3 tests/reference/ffmpeg_frames.py gen cuts out.mp4
       /usr/bin/python3 tests/reference/ffmpeg_frames.py probe out.mp4
"""
import json
import os
import subprocess
import sys

S = "size=160x120:rate=25"


def lavfi(src, dur):
    sep = ":" if "=" in src else "="
    return ["-f", "lavfi", "-i", f"{src}{sep}{S}:duration={dur}"]


def concat(sources):
    """ffmpeg input arguments and a concat filter over lavfi sources."""
    args = []
    for src, dur in sources:
        args += lavfi(src, dur)
    n = len(sources)
    pads = "".join(f"[{i}:v]" for i in range(n))
    return args, f"{pads}concat=n={n}:v=1:a=0[v]"


# Hard cuts between very different pictures, some still, some moving, and
# an audio track (which must be ignored).
CUTS = [("testsrc2", 2), ("smptebars", 2), ("color=c=red", 1),
        ("rgbtestsrc", 1), ("color=c=blue", 1)]
SHORT = [("testsrc2", 1), ("smptebars", 1), ("color=c=green", 1)]

RECIPES = {
    # H.264 4:2:0 in MP4, GOP 12 (x264 adds key frames at the cuts).
    "cuts": (CUTS, ["-c:v", "libx264", "-g", "12", "-pix_fmt", "yuv420p",
                    "-preset", "veryfast"], True),
    # 4:4:4: not a select format, the filter graph converts to yuv420p.
    "yuv444p": (SHORT, ["-c:v", "libx264", "-g", "10", "-pix_fmt", "yuv444p",
                        "-preset", "veryfast"], False),
    # 10-bit 4:2:2: converted to yuv420p10le, 16-bit samples.
    "hi10": (SHORT, ["-c:v", "libx264", "-g", "10", "-pix_fmt",
                     "yuv422p10le", "-preset", "veryfast"], False),
    # Planar RGB (gbrp) from libx264rgb: converted to packed rgb24.
    "rgb": (SHORT, ["-c:v", "libx264rgb", "-g", "10", "-pix_fmt", "bgr0",
                    "-preset", "veryfast"], False),
    # Every frame a key frame, full-range yuvj420p.
    "mjpeg": (SHORT, ["-c:v", "mjpeg", "-q:v", "5", "-r", "10"], False),
    # Pixels twice as wide as tall (sample aspect ratio 2:1).
    "anamorphic": (SHORT, ["-c:v", "libx264", "-g", "10", "-pix_fmt",
                           "yuv420p", "-preset", "veryfast"], False),
    # HEVC (libx265) in MP4.
    "hevc": (SHORT, ["-c:v", "libx265", "-x265-params",
                     "keyint=10:log-level=error", "-pix_fmt", "yuv420p"],
             False),
    # AV1 (SVT-AV1) in Matroska, decoded by whatever FFmpeg picks (dav1d).
    "av1": (SHORT, ["-c:v", "libsvtav1", "-g", "10", "-preset", "12"], False),
    # VP9 in WebM: another decoder and another container.
    "vp9": (SHORT, ["-c:v", "libvpx-vp9", "-g", "10", "-deadline",
                    "realtime", "-cpu-used", "8", "-b:v", "200k"], False),
}


def run(cmd, **kw):
    env = dict(os.environ, SVT_LOG="1")  # SVT-AV1: errors only
    return subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, env=env,
                          **kw)


def gen(name, out):
    ff = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
    if name == "audio":
        run(ff + ["-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                  "-c:a", "aac", out])
        return
    if name == "rotated":
        # The cuts video with a display matrix turning it 90 degrees
        # clockwise (the mov muxer writes the rotate tag as a matrix).
        tmp = out + ".src.mp4"
        gen("cuts", tmp)
        run(ff + ["-i", tmp, "-c", "copy", "-metadata:s:v:0", "rotate=270",
                  out])
        os.unlink(tmp)
        return
    if name == "resize":
        # MPEG-TS parts at 160x120, 128x96 and 160x120 again, joined byte
        # by byte: the picture size changes twice mid-stream, and the
        # stream starts at 1.4 s, not 0.
        parts = []
        for i, (srcs, size, at) in enumerate([(SHORT[:2], "160x120", 0),
                                              (SHORT[1:2], "128x96", 2.2),
                                              (SHORT[2:], "160x120", 3.4)]):
            args, graph = concat(srcs)
            part = f"{out}.{i}.ts"
            run(ff + args + ["-filter_complex", graph + ";[v]scale=" + size +
                             "[o]", "-map", "[o]", "-c:v", "libx264", "-g",
                             "12", "-pix_fmt", "yuv420p", "-preset",
                             "veryfast", "-threads", "1", "-output_ts_offset",
                             str(at), part])
            parts.append(part)
        with open(out, "wb") as fh:
            for part in parts:
                with open(part, "rb") as src:
                    fh.write(src.read())
                os.unlink(part)
        return
    sources, codec, audio = RECIPES[name]
    args, graph = concat(sources)
    if name == "anamorphic":
        graph = graph[:-3] + "[c];[c]setsar=2[v]"
    extra = []
    if audio:
        n = len(sources)
        total = sum(d for _, d in sources)
        args += ["-f", "lavfi", "-i", f"sine=frequency=300:duration={total}"]
        extra = ["-map", f"{n}:a", "-c:a", "aac"]
    run(ff + args + ["-filter_complex", graph, "-map", "[v]"] + extra +
        codec + ["-threads", "1", out])


def probe(path):
    p = run(["ffprobe", "-v", "error", "-skip_frame", "nokey",
             "-select_streams", "v", "-show_frames", "-show_entries",
             "frame=pts_time,key_frame,stream_index", "-of", "json", path],
            capture_output=True, text=True)
    frames = json.loads(p.stdout).get("frames", [])
    if len({f.get("stream_index") for f in frames}) > 1:
        sys.exit(f"{path}: more than one video stream")
    times = [f.get("pts_time", "nan") for f in frames
             if f.get("key_frame") == 1]
    # A decoder that ignores skip_frame (FFmpeg 5.1's VP9 decoder in WebM)
    # returns every frame; reel then keeps only the key frames, and the
    # oracle scores those same frames with a key-frame select in front.
    chain = "select='gte(scene,0)'"
    if len(times) != len(frames):
        chain = "select='eq(key,1)'," + chain
    # metadata=print writes to the log here rather than to a file=: the
    # ffmpeg command rebuilds its filter graph when the picture size
    # changes, and a rebuilt metadata filter would truncate its file.
    p = run(["ffmpeg", "-nostdin", "-hide_banner", "-v", "info",
             "-skip_frame", "nokey", "-i", path, "-vf",
             f"{chain},metadata=print", "-an", "-f", "null", "-"],
            capture_output=True, text=True)
    scores = []
    for line in p.stderr.splitlines():
        at = line.find("lavfi.scene_score=")
        if at >= 0:
            scores.append(line[at:].split("=", 1)[1].strip())
    if len(scores) != len(times):
        sys.exit(f"{path}: ffprobe lists {len(times)} key frames, "
                 f"the select filter saw {len(scores)}")
    print(f"n {len(times)}")
    for t, s in zip(times, scores):
        print(t, s)


def rgb(path, out):
    """Every key frame as raw rgb24, converted by the scale filter with
    the flags reel gives libswscale (an exact twin of reel's images)."""
    run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-skip_frame", "nokey",
         "-i", path, "-fps_mode", "passthrough", "-vf",
         "select='eq(key,1)',scale=flags=bicubic+accurate_rnd+"
         "full_chroma_int+full_chroma_inp,format=rgb24",
         "-an", "-f", "rawvideo", out])


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "gen":
        gen(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "rgb":
        rgb(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "probe":
        probe(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
