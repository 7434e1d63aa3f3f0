/*
 * frames: a video's key frames, their scene-change scores, and the few
 * frames that stand for the video (for CLIP and the dashboard's thumbnails).
 *
 * reel_frames_extract() opens a media file with FFmpeg's libraries, takes
 * the best video stream (av_find_best_stream) and decodes key frames only:
 * the decoder runs with skip_frame = nokey, so the frames it returns are
 * exactly the ones `ffprobe -skip_frame nokey
 * -select_streams v -show_frames` lists. A decoder that ignores skip_frame
 * (FFmpeg 5.1's VP9 decoder does) returns frames that are not key frames:
 * those are dropped, from then on only packets flagged as key are sent to
 * it, and scores compare consecutive key frames, as `select='eq(key,1)',
 * select='gte(scene,0)'` would. A file whose only video is cover art has
 * no video stream.
 *
 * Each key frame gets the score of FFmpeg 5.1's `select` filter variable
 * `scene`, as `ffmpeg -skip_frame nokey -i FILE -vf "select='gte(scene,0)',
 * metadata=print"` reports it in lavfi.scene_score, computed on the same
 * pixels the filter sees:
 *   - The filter accepts rgb24, bgr24, rgba, abgr, bgra, gray, yuv420p,
 *     yuvj420p, yuv422p, yuvj422p and yuv420p10le. A decoder's frames in
 *     one of those reach it unchanged; any other format is converted first
 *     to the one FFmpeg's format negotiation picks (the first best of that
 *     list by av_find_best_pix_fmt_of_2, alpha counted when the source has
 *     an even number of components) with libswscale's bicubic scaler, as
 *     the ffmpeg command's automatically inserted scale filter does.
 *     reel_frames.score_fmt names the format the scores were computed on.
 *   - Planes compared: only the first (luma) for planar YUV formats; every
 *     plane otherwise (packed RGB and gray have one). A plane's width is
 *     its line size in samples (3 or 4 per pixel for packed RGB), its height
 *     the frame's (chroma heights rounded up, were they used).
 *   - sad: the sum over those planes of |previous - current| per sample;
 *     count: the number of samples summed.
 *   - mafd = sad / count / 2^(bit depth - 8), so 10-bit video is on the
 *     8-bit scale; diff = |mafd - previous mafd| (the previous mafd starts
 *     at 0); score = min(mafd, diff) / 100 clipped to [0, 1] in single
 *     precision (av_clipf), then previous mafd = mafd.
 *   - The first frame scores 0, and so does a frame whose size or pixel
 *     format differs from the previous one; both restart the comparison
 *     with previous mafd = 0, as the ffmpeg command rebuilds its filter
 *     graph on such a change.
 * The test checks timestamps against ffprobe and scores against the filter
 * within 1e-5 (tests/reference/ffmpeg_frames.py).
 *
 * Choosing (reel_frames_choose): up to k key frames. First the scene
 * changes: frames scoring >= threshold, highest score first (ties: the
 * earlier frame). The slots left are filled greedily, each time with the
 * key frame farthest in time from those already chosen, where the start
 * and end of the key frames [a, b] count as chosen points at half weight
 * (distance to them is doubled), so that with nothing chosen the fill goes
 * to the middle, then to 1/6 and 5/6 of the span, and so on; ties go to
 * the earlier frame. The result is returned in time order.
 *
 * Images: the chosen frames are decoded a second time (the file is opened
 * again and the same key frames are decoded in the same order, so memory
 * holds k pictures, not every key frame) and converted to 8-bit RGB with
 * libswscale (bicubic, accurate rounding, full chroma; the stream's YUV
 * matrix and range), stretched to square pixels when the sample aspect
 * ratio is not 1, rotated as the stream's display matrix says (multiples
 * of 90 degrees), then bounded by opts.max_side.
 *
 * Timestamps: ts = pts * time_base in seconds, the raw value ffprobe
 * prints as pts_time (not shifted by the stream's start); a frame without
 * pts uses best_effort_timestamp, and failing that the previous frame's ts.
 *
 * Bounds: streams above opts.max_pixels (or REEL_FRAMES_MAX_SIDE a side)
 * are refused before decoding; at most opts.max_keys key frames are
 * scanned (the rest of the file is ignored, reel_frames.truncated = 1);
 * only "file" I/O is allowed to FFmpeg (no network, no other protocols).
 * FFmpeg's own messages go to reel's log at debug level (warnings and
 * errors; its chatter below that is dropped); every failure is reported
 * through the return code and reel_diag.
 *
 * Errors (d->file = path): REEL_ENOENT (missing file), REEL_EIO (cannot
 * read), REEL_EFORMAT (not a media file, broken, truncated before any key
 * frame decodes), REEL_EUNSUPPORTED (no video stream, no decoder, pixel
 * format libswscale cannot read), REEL_ETOOBIG (over the limits),
 * REEL_EINVAL (bad options).
 *
 * Memory: 24 bytes per key frame scanned, the k images, and one
 * decoder's state; nothing else grows with the file.
 *
 * Ownership: *out belongs to the caller, released by reel_frames_free()
 * (NULL is fine), including every image. Thread rules: no shared state
 * except FFmpeg's log callback, which the first call installs for the
 * whole process (once, thread-safe); any number of threads may extract
 * from different files at once.
 */
#ifndef REEL_EMBED_FRAMES_H
#define REEL_EMBED_FRAMES_H

#include <stdint.h>

#include "embed/image.h"
#include "base/err.h"

#define REEL_FRAMES_MAX_K 64u
#define REEL_FRAMES_MAX_KEYS 1000000u
#define REEL_FRAMES_MAX_SIDE 16384u
/* Defaults for reel_frames_write_thumbs(). */
#define REEL_FRAMES_THUMB_SIDE 320u
#define REEL_FRAMES_THUMB_QUALITY 85

typedef struct reel_frames_opts {
    /* Frames to choose, 0 .. REEL_FRAMES_MAX_K (default 8). 0 scans only:
     * keys and scores, no second pass, no images. */
    uint32_t k;
    /* A key frame scoring at least this is a scene change (default 0.3,
     * the usual `select='gt(scene,0.3)'`); > 1 disables scene picks. */
    double scene_threshold;
    /* Key frames scanned at most, 1 .. REEL_FRAMES_MAX_KEYS (default
     * 20000). */
    uint32_t max_keys;
    /* Longest side of the returned images; 0 keeps the decoded size
     * (after aspect and rotation). Default 0. */
    uint32_t max_side;
    /* Largest decoded picture accepted, in pixels (default 2^25, a little
     * over 8K UHD; at most REEL_IMAGE_MAX_PIXELS). */
    uint64_t max_pixels;
} reel_frames_opts;

reel_frames_opts reel_frames_opts_default(void);

/* One decoded key frame, in decoding order (which is time order). */
typedef struct reel_frames_key {
    int64_t pts;  /* stream time base; AV_NOPTS_VALUE (INT64_MIN) if none */
    double ts;    /* seconds, pts * time_base */
    double score; /* the select filter's scene score, in [0, 1] */
} reel_frames_key;

/* One chosen frame. */
typedef struct reel_frame {
    double ts, score; /* as in its key */
    int scene;        /* 1: chosen as a scene change; 0: chosen to fill */
    uint32_t key;     /* its index in reel_frames.keys */
    reel_image img;   /* RGB, owned by the reel_frames */
} reel_frame;

typedef struct reel_frames {
    uint32_t n;        /* chosen frames, <= opts.k (0 when k was 0) */
    reel_frame *frame; /* n chosen frames, in time order */
    uint32_t n_keys;   /* key frames scanned */
    reel_frames_key *keys;
    int truncated;      /* 1 when scanning stopped at opts.max_keys */
    uint32_t w, h;      /* the first key frame's decoded size */
    double start;       /* the stream's start time in seconds (0 unknown) */
    double duration;    /* the stream's duration in seconds (0 unknown) */
    int rotation;       /* applied to images: 0, 90, 180 or 270 clockwise */
    char codec[32];     /* decoder name, e.g. "h264" */
    char score_fmt[32]; /* pixel format the scores were computed on */
} reel_frames;

/* Scans `path` and chooses up to o->k frames (NULL o: the defaults). On
 * success *out is the caller's. See the top of this file for errors. */
int reel_frames_extract(const char *path, const reel_frames_opts *o,
                        reel_frames **out, reel_diag *d);
void reel_frames_free(reel_frames *fr);

/* The choice described above, on any list of keys: writes up to k indexes
 * into keys (ascending time) to idx and sets scene[i] (may be NULL) to 1
 * for those chosen as scene changes. Returns how many were written,
 * min(k, n). Cannot fail; k <= REEL_FRAMES_MAX_K is not required here. */
uint32_t reel_frames_choose(const reel_frames_key *keys, uint32_t n, uint32_t k,
                            double threshold, uint32_t *idx, int *scene);

/* Writes each chosen frame of fr as a JPEG thumbnail into the existing
 * directory `dir`, its longest side at most max_side (1 .. 4096; Pillow-
 * exact bicubic via reel_image_resize_bicubic, never enlarged), quality
 * 1 .. 100, named from its order and timestamp, then the index
 * dir/frames.tsv listing them (docs/formats/frames.md). Every file is
 * written to a temporary name and renamed into place; the index last, so
 * it only names thumbnails that exist. REEL_EINVAL for bad arguments or a
 * frame without an image, REEL_EIO or REEL_ENOENT (d->file is dir, d->msg
 * names the file) when writing fails. */
int reel_frames_write_thumbs(const reel_frames *fr, const char *dir,
                             uint32_t max_side, int quality, reel_diag *d);

/* The thumbnail file name of chosen frame i (order i, timestamp ts):
 * "kf%03u_%lldms.jpg" with ms = llround(ts * 1000). Writes at most `size`
 * bytes (NUL included); returns the length it needs. */
int reel_frames_thumb_name(uint32_t i, double ts, char *buf, uint32_t size);

#endif
