/* frames: key frames with FFmpeg's libraries, the select filter's scene
 * score, the choice of k frames and their thumbnails (see frames.h). */
#include "embed/frames.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#include "base/log.h"
#include "base/mem.h"

/* Decoding errors tolerated in one file before it counts as broken. */
#define MAX_DECODE_ERRORS 1000u

reel_frames_opts reel_frames_opts_default(void)
{
    return (reel_frames_opts){
        .k = 8,
        .scene_threshold = 0.3,
        .max_keys = 20000,
        .max_side = 0,
        .max_pixels = 1ull << 25,
    };
}

/* ---- FFmpeg's log, into reel's ------------------------------------- */

/* FFmpeg logs in pieces of lines; each thread gathers its own line. */
static _Thread_local char logline[512];
static _Thread_local size_t loglen;
static _Thread_local int logprefix = 1;

static void logflush(void)
{
    if (loglen)
        reel_log_debug("ffmpeg: %.*s", (int)loglen, logline);
    loglen = 0;
}

static void avlog(void *avcl, int level, const char *fmt, va_list vl)
{
    /* Below warnings FFmpeg narrates (stream info, codec options): not
     * worth a line even at debug level. */
    if (level > AV_LOG_WARNING || !reel_log_enabled(REEL_LOG_DEBUG))
        return;
    char part[512];
    av_log_format_line2(avcl, level, fmt, vl, part, sizeof part, &logprefix);
    for (const char *p = part; *p; p++) {
        if (*p == '\n' || loglen == sizeof logline) {
            logflush();
            if (*p == '\n')
                continue;
        }
        logline[loglen++] = *p;
    }
}

static pthread_once_t log_once = PTHREAD_ONCE_INIT;

static void log_install(void)
{
    av_log_set_callback(avlog);
}

/* ---- errors -------------------------------------------------------- */

static const char *averr(int e, char *buf, size_t size)
{
    if (av_strerror(e, buf, size) < 0)
        snprintf(buf, size, "FFmpeg error %d", e);
    return buf;
}

/* Opening and reading failures of libavformat, as reel codes. */
static int open_code(int e)
{
    if (e == AVERROR(ENOENT))
        return REEL_ENOENT;
    if (e == AVERROR(ENOMEM))
        return REEL_ENOMEM;
    if (e == AVERROR(EACCES) || e == AVERROR(EIO) || e == AVERROR(EISDIR))
        return REEL_EIO;
    if (e == AVERROR_PROTOCOL_NOT_FOUND || e == AVERROR_DEMUXER_NOT_FOUND ||
        e == AVERROR_DECODER_NOT_FOUND || e == AVERROR_PATCHWELCOME)
        return REEL_EUNSUPPORTED;
    return REEL_EFORMAT;
}

/* ---- reading key frames -------------------------------------------- */

typedef struct media {
    AVFormatContext *fc;
    AVCodecContext *dec;
    AVStream *st;
    int si;
    AVPacket *pkt;
    AVFrame *frm;
    uint64_t max_pixels;
    uint32_t n_errors;
    int keyonly; /* the decoder ignored skip_frame: key packets only */
    int flushed; /* the end was reached and the decoder told so */
} media;

static void media_close(media *m)
{
    avcodec_free_context(&m->dec);
    avformat_close_input(&m->fc);
    av_packet_free(&m->pkt);
    av_frame_free(&m->frm);
}

static int media_open(media *m, const char *path, uint64_t max_pixels,
                      reel_diag *d)
{
    char eb[128];
    memset(m, 0, sizeof *m);
    m->max_pixels = max_pixels;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return reel_diag_fail(d, errno == ENOENT ? REEL_ENOENT : REEL_EIO,
                              "cannot open: %s", strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return reel_diag_fail(d, REEL_EIO, "not a regular file");
    if (sb.st_size == 0)
        return reel_diag_fail(d, REEL_EFORMAT, "empty file");

    /* "file:" keeps a colon in the name from reading as a protocol, and
     * the whitelist keeps playlists and the like from reaching further. */
    size_t len = strlen(path);
    char *url = reel_xmalloc(len + 6);
    memcpy(url, "file:", 5);
    memcpy(url + 5, path, len + 1);
    AVDictionary *opt = NULL;
    av_dict_set(&opt, "protocol_whitelist", "file", 0);
    int e = avformat_open_input(&m->fc, url, NULL, &opt);
    av_dict_free(&opt);
    free(url);
    if (e < 0)
        return reel_diag_fail(d, open_code(e), "not a readable media file: %s",
                              averr(e, eb, sizeof eb));
    e = avformat_find_stream_info(m->fc, NULL);
    if (e < 0)
        return reel_diag_fail(d, open_code(e), "cannot read stream info: %s",
                              averr(e, eb, sizeof eb));
    const AVCodec *codec = NULL;
    m->si = av_find_best_stream(m->fc, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (m->si == AVERROR_STREAM_NOT_FOUND)
        return reel_diag_fail(d, REEL_EUNSUPPORTED, "no video stream");
    if (m->si < 0 || !codec) {
        const AVCodecDescriptor *cd =
            m->si >= 0 ? avcodec_descriptor_get(
                             m->fc->streams[m->si]->codecpar->codec_id)
                       : NULL;
        return reel_diag_fail(d, REEL_EUNSUPPORTED,
                              "no decoder for the video stream (%s)",
                              cd ? cd->name : "unknown codec");
    }
    m->st = m->fc->streams[m->si];
    if (m->st->disposition & AV_DISPOSITION_ATTACHED_PIC)
        return reel_diag_fail(d, REEL_EUNSUPPORTED,
                              "no video stream (only cover art)");
    for (unsigned i = 0; i < m->fc->nb_streams; i++)
        if ((int)i != m->si)
            m->fc->streams[i]->discard = AVDISCARD_ALL;

    const AVCodecParameters *par = m->st->codecpar;
    if (par->width <= 0 || par->height <= 0)
        return reel_diag_fail(d, REEL_EFORMAT, "video stream without a size");
    if ((uint64_t)par->width > REEL_FRAMES_MAX_SIDE ||
        (uint64_t)par->height > REEL_FRAMES_MAX_SIDE ||
        (uint64_t)par->width * (uint64_t)par->height > max_pixels)
        return reel_diag_fail(
            d, REEL_ETOOBIG, "video is %dx%d, above the limit of %llu pixels",
            par->width, par->height, (unsigned long long)max_pixels);

    m->dec = avcodec_alloc_context3(codec);
    if (!m->dec)
        return reel_diag_fail(d, REEL_ENOMEM, "out of memory");
    e = avcodec_parameters_to_context(m->dec, par);
    if (e < 0)
        return reel_diag_fail(d, REEL_EFORMAT, "bad codec parameters: %s",
                              averr(e, eb, sizeof eb));
    m->dec->pkt_timebase = m->st->time_base;
    m->dec->skip_frame = AVDISCARD_NONKEY;
    m->dec->thread_count = 1;
    m->dec->max_pixels = (int64_t)max_pixels;
    e = avcodec_open2(m->dec, codec, NULL);
    if (e < 0)
        return reel_diag_fail(d, REEL_EUNSUPPORTED,
                              "cannot open the %s decoder: %s", codec->name,
                              averr(e, eb, sizeof eb));
    m->pkt = av_packet_alloc();
    m->frm = av_frame_alloc();
    if (!m->pkt || !m->frm)
        return reel_diag_fail(d, REEL_ENOMEM, "out of memory");
    return 0;
}

static int decode_error(media *m, int e, reel_diag *d)
{
    char eb[128];
    reel_log_debug("frames: decoding error: %s", averr(e, eb, sizeof eb));
    if (e == AVERROR(ENOMEM))
        return reel_diag_fail(d, REEL_ENOMEM, "out of memory");
    if (++m->n_errors > MAX_DECODE_ERRORS)
        return reel_diag_fail(d, REEL_EFORMAT,
                              "too many decoding errors (last: %s)",
                              averr(e, eb, sizeof eb));
    return 0;
}

/* The next key frame into m->frm: 1, or 0 at the end, or an error. A read
 * error ends the stream, as it ends the ffmpeg command's input. */
static int media_next(media *m, reel_diag *d)
{
    for (;;) {
        av_frame_unref(m->frm);
        int e = avcodec_receive_frame(m->dec, m->frm);
        if (e == 0) {
            if (!m->frm->key_frame) {
                if (!m->keyonly)
                    reel_log_debug("frames: the %s decoder ignores "
                                   "skip_frame; sending key packets only",
                                   m->dec->codec->name);
                m->keyonly = 1;
                continue;
            }
            if (m->frm->width <= 0 || m->frm->height <= 0 ||
                (uint64_t)m->frm->width > REEL_FRAMES_MAX_SIDE ||
                (uint64_t)m->frm->height > REEL_FRAMES_MAX_SIDE ||
                (uint64_t)m->frm->width * (uint64_t)m->frm->height >
                    m->max_pixels)
                return reel_diag_fail(d, REEL_ETOOBIG,
                                      "decoded frame of %dx%d is over the "
                                      "limits",
                                      m->frm->width, m->frm->height);
            return 1;
        }
        if (e == AVERROR_EOF)
            return 0;
        if (e != AVERROR(EAGAIN)) {
            int rc = decode_error(m, e, d);
            if (rc)
                return rc;
            if (m->flushed)
                return 0;
            continue;
        }
        if (m->flushed)
            return 0;
        for (;;) {
            e = av_read_frame(m->fc, m->pkt);
            if (e < 0) {
                if (e != AVERROR_EOF) {
                    char eb[128];
                    reel_log_debug("frames: reading stops: %s",
                                   averr(e, eb, sizeof eb));
                }
                if (e == AVERROR(ENOMEM))
                    return reel_diag_fail(d, REEL_ENOMEM, "out of memory");
                m->flushed = 1;
                avcodec_send_packet(m->dec, NULL);
                break;
            }
            int want = m->pkt->stream_index == m->si &&
                       (!m->keyonly || (m->pkt->flags & AV_PKT_FLAG_KEY));
            if (!want) {
                av_packet_unref(m->pkt);
                continue;
            }
            /* receive_frame said EAGAIN, so the decoder takes a packet. */
            e = avcodec_send_packet(m->dec, m->pkt);
            av_packet_unref(m->pkt);
            if (e < 0) {
                int rc = decode_error(m, e, d);
                if (rc)
                    return rc;
                continue;
            }
            break;
        }
    }
}

static double frame_ts(const media *m, const AVFrame *f, double prev,
                       int64_t *pts)
{
    int64_t t = f->pts != AV_NOPTS_VALUE ? f->pts : f->best_effort_timestamp;
    *pts = t;
    if (t == AV_NOPTS_VALUE)
        return prev;
    return (double)t * av_q2d(m->st->time_base);
}

/* ---- the select filter's scene score -------------------------------- */

/* The formats vf_select (FFmpeg 5.1) accepts when its expression uses
 * `scene`, in its order: the order decides ties in the negotiation. */
static const enum AVPixelFormat select_fmts[] = {
    AV_PIX_FMT_RGB24,    AV_PIX_FMT_BGR24,     AV_PIX_FMT_RGBA,
    AV_PIX_FMT_ABGR,     AV_PIX_FMT_BGRA,      AV_PIX_FMT_GRAY8,
    AV_PIX_FMT_YUV420P,  AV_PIX_FMT_YUVJ420P,  AV_PIX_FMT_YUV422P,
    AV_PIX_FMT_YUVJ422P, AV_PIX_FMT_YUV420P10, AV_PIX_FMT_NONE,
};

/* The format the filter graph hands to select for a source format: the
 * same one if select takes it, else the pick of avfiltergraph.c's
 * pick_format() over select's list. */
static enum AVPixelFormat select_fmt(enum AVPixelFormat src)
{
    for (int i = 0; select_fmts[i] != AV_PIX_FMT_NONE; i++)
        if (select_fmts[i] == src)
            return src;
    const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(src);
    int alpha = desc && desc->nb_components % 2 == 0;
    enum AVPixelFormat best = AV_PIX_FMT_NONE;
    for (int i = 0; select_fmts[i] != AV_PIX_FMT_NONE; i++)
        best =
            av_find_best_pix_fmt_of_2(best, select_fmts[i], src, alpha, NULL);
    return best;
}

typedef struct scene {
    AVFrame *prev; /* the last picture scored, in the select format */
    double prev_mafd;
    int src_fmt, w, h; /* of the decoded frames since the last restart */
    struct SwsContext *sws;
} scene;

static void scene_free(scene *sc)
{
    av_frame_free(&sc->prev);
    sws_freeContext(sc->sws);
    sc->sws = NULL;
}

static uint64_t sad8(const uint8_t *a, int sa, const uint8_t *b, int sb,
                     ptrdiff_t w, ptrdiff_t h)
{
    uint64_t s = 0;
    for (ptrdiff_t y = 0; y < h; y++, a += sa, b += sb)
        for (ptrdiff_t x = 0; x < w; x++)
            s += (uint64_t)abs((int)a[x] - (int)b[x]);
    return s;
}

static uint64_t sad16(const uint8_t *a, int sa, const uint8_t *b, int sb,
                      ptrdiff_t w, ptrdiff_t h)
{
    uint64_t s = 0;
    for (ptrdiff_t y = 0; y < h; y++, a += sa, b += sb) {
        const uint16_t *p = (const uint16_t *)a, *q = (const uint16_t *)b;
        for (ptrdiff_t x = 0; x < w; x++)
            s += (uint64_t)abs((int)p[x] - (int)q[x]);
    }
    return s;
}

/* min(mafd, |mafd - previous mafd|) / 100 in [0, 1], for two pictures of
 * the same size and select format. */
static double scene_compare(scene *sc, const AVFrame *a, const AVFrame *b)
{
    const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(b->format);
    int is_yuv = !(desc->flags & AV_PIX_FMT_FLAG_RGB) &&
                 (desc->flags & AV_PIX_FMT_FLAG_PLANAR) &&
                 desc->nb_components >= 3;
    int depth = desc->comp[0].depth;
    int planes = is_yuv ? 1 : av_pix_fmt_count_planes(b->format);
    uint64_t sad = 0, count = 0;
    for (int p = 0; p < planes; p++) {
        ptrdiff_t w =
            av_image_get_linesize(b->format, b->width, p) >> (depth > 8);
        int sub = (p == 1 || p == 2) ? desc->log2_chroma_h : 0;
        ptrdiff_t h = -((-b->height) >> sub);
        sad += depth > 8 ? sad16(a->data[p], a->linesize[p], b->data[p],
                                 b->linesize[p], w, h)
                         : sad8(a->data[p], a->linesize[p], b->data[p],
                                b->linesize[p], w, h);
        count += (uint64_t)w * (uint64_t)h;
    }
    double mafd = (double)sad / (double)count / (double)(1ull << (depth - 8));
    double diff = fabs(mafd - sc->prev_mafd);
    /* av_clipf: the clip happens in single precision. */
    float s = (float)(fmin(mafd, diff) / 100.0);
    s = s < 0.0f ? 0.0f : s > 1.0f ? 1.0f : s;
    sc->prev_mafd = mafd;
    return (double)s;
}

/* Scores the decoded frame f against the previous one. */
static int scene_score(scene *sc, const AVFrame *f, double *score, reel_diag *d)
{
    *score = 0;
    if (f->format != sc->src_fmt || f->width != sc->w || f->height != sc->h) {
        /* The ffmpeg command rebuilds its filter graph: a fresh select. */
        av_frame_free(&sc->prev);
        sc->prev_mafd = 0;
        sc->src_fmt = f->format;
        sc->w = f->width;
        sc->h = f->height;
    }
    enum AVPixelFormat fmt = select_fmt(f->format);
    if (fmt == AV_PIX_FMT_NONE || !sws_isSupportedInput(f->format))
        return reel_diag_fail(d, REEL_EUNSUPPORTED,
                              "pixel format %s cannot be converted",
                              av_get_pix_fmt_name(f->format));
    AVFrame *cur = av_frame_alloc();
    if (!cur)
        return reel_diag_fail(d, REEL_ENOMEM, "out of memory");
    if (fmt == f->format) {
        if (av_frame_ref(cur, f) < 0) {
            av_frame_free(&cur);
            return reel_diag_fail(d, REEL_ENOMEM, "out of memory");
        }
    } else {
        /* The automatically inserted scale filter of the ffmpeg command:
         * libswscale with flags=bicubic, same size. */
        sc->sws = sws_getCachedContext(sc->sws, f->width, f->height, f->format,
                                       f->width, f->height, fmt, SWS_BICUBIC,
                                       NULL, NULL, NULL);
        cur->format = fmt;
        cur->width = f->width;
        cur->height = f->height;
        if (!sc->sws || av_frame_get_buffer(cur, 0) < 0) {
            av_frame_free(&cur);
            return reel_diag_fail(
                d, REEL_EUNSUPPORTED, "cannot convert %s to %s",
                av_get_pix_fmt_name(f->format), av_get_pix_fmt_name(fmt));
        }
        sws_scale(sc->sws, (const uint8_t *const *)f->data, f->linesize, 0,
                  f->height, cur->data, cur->linesize);
    }
    if (sc->prev)
        *score = scene_compare(sc, sc->prev, cur);
    av_frame_free(&sc->prev);
    sc->prev = cur;
    return 0;
}

/* ---- choosing -------------------------------------------------------- */

uint32_t reel_frames_choose(const reel_frames_key *keys, uint32_t n, uint32_t k,
                            double threshold, uint32_t *idx, int *scene)
{
    if (k > n)
        k = n;
    if (k == 0)
        return 0;
    /* taken[i]: 0 free, 1 chosen to fill, 2 chosen as a scene change. */
    uint8_t *taken = reel_xcalloc(n, 1);
    uint32_t m = 0;
    for (; m < k; m++) {
        uint32_t best = UINT32_MAX;
        for (uint32_t i = 0; i < n; i++)
            if (!taken[i] && keys[i].score >= threshold &&
                (best == UINT32_MAX || keys[i].score > keys[best].score))
                best = i;
        if (best == UINT32_MAX)
            break;
        taken[best] = 2;
    }
    if (m < k) {
        double a = keys[0].ts, b = keys[0].ts;
        for (uint32_t i = 1; i < n; i++) {
            a = fmin(a, keys[i].ts);
            b = fmax(b, keys[i].ts);
        }
        /* dist[i]: distance to the nearest chosen frame, the span's ends
         * counting at half weight. */
        double *dist = reel_xmalloc((size_t)n * sizeof *dist);
        for (uint32_t i = 0; i < n; i++)
            dist[i] = 2 * fmin(keys[i].ts - a, b - keys[i].ts);
        for (uint32_t i = 0; i < n; i++)
            if (taken[i])
                for (uint32_t j = 0; j < n; j++)
                    dist[j] = fmin(dist[j], fabs(keys[j].ts - keys[i].ts));
        for (; m < k; m++) {
            uint32_t best = UINT32_MAX;
            for (uint32_t i = 0; i < n; i++)
                if (!taken[i] && (best == UINT32_MAX || dist[i] > dist[best]))
                    best = i;
            taken[best] = 1;
            for (uint32_t j = 0; j < n; j++)
                dist[j] = fmin(dist[j], fabs(keys[j].ts - keys[best].ts));
        }
        free(dist);
    }
    uint32_t c = 0;
    for (uint32_t i = 0; i < n; i++)
        if (taken[i])
            idx[c++] = i;
    /* Key frames come in time order; a stable sort keeps it so anyway. */
    for (uint32_t i = 1; i < c; i++) {
        uint32_t v = idx[i], j = i;
        for (; j > 0 && keys[idx[j - 1]].ts > keys[v].ts; j--)
            idx[j] = idx[j - 1];
        idx[j] = v;
    }
    if (scene)
        for (uint32_t i = 0; i < c; i++)
            scene[i] = taken[idx[i]] == 2;
    free(taken);
    return c;
}

/* ---- pictures -------------------------------------------------------- */

/* Clockwise rotation of the display matrix, as the ffmpeg command's
 * autorotate reads it: 0, 90, 180 or 270. */
static int stream_rotation(const AVStream *st)
{
    size_t size = 0;
    const uint8_t *sd =
        av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &size);
    if (!sd || size < 9 * sizeof(int32_t))
        return 0;
    int32_t mat[9];
    memcpy(mat, sd, sizeof mat);
    double theta = -av_display_rotation_get(mat);
    if (!isfinite(theta))
        return 0;
    theta = round(theta);
    theta -= 360 * floor(theta / 360 + 0.9 / 360);
    if (fabs(theta - 90) < 1)
        return 90;
    if (fabs(theta - 180) < 1)
        return 180;
    if (fabs(theta - 270) < 1)
        return 270;
    return 0;
}

static uint32_t side_scale(uint32_t v, double s)
{
    double r = round(v * s);
    return r < 1                      ? 1
           : r > REEL_FRAMES_MAX_SIDE ? REEL_FRAMES_MAX_SIDE
                                      : (uint32_t)r;
}

/* Frame f as RGB: square pixels, rotated, longest side <= max_side. */
static int to_rgb(const AVFrame *f, int rotation, uint32_t max_side,
                  uint64_t max_pixels, struct SwsContext **sws, reel_image *out,
                  reel_diag *d)
{
    uint32_t w = (uint32_t)f->width, h = (uint32_t)f->height;
    /* Square pixels; an aspect ratio past 10:1 either way is taken for
     * garbage and ignored. */
    double sar =
        f->sample_aspect_ratio.num > 0 && f->sample_aspect_ratio.den > 0
            ? av_q2d(f->sample_aspect_ratio)
            : 1;
    if (sar != 1 && sar >= 0.1 && sar <= 10)
        w = side_scale(w, sar);
    /* Stretching must not take the picture past the pixel bound. */
    if ((uint64_t)w * h > max_pixels) {
        double s = sqrt((double)max_pixels / ((double)w * h));
        w = side_scale(w, s);
        h = side_scale(h, s);
    }
    int turn = rotation == 90 || rotation == 270;
    uint32_t longest = w > h ? w : h;
    if (max_side && longest > max_side) {
        double s = (double)max_side / longest;
        w = side_scale(w, s);
        h = side_scale(h, s);
    }
    if (!sws_isSupportedInput(f->format))
        return reel_diag_fail(d, REEL_EUNSUPPORTED,
                              "pixel format %s cannot be converted",
                              av_get_pix_fmt_name(f->format));
    *sws = sws_getCachedContext(*sws, f->width, f->height, f->format, (int)w,
                                (int)h, AV_PIX_FMT_RGB24,
                                SWS_BICUBIC | SWS_ACCURATE_RND |
                                    SWS_FULL_CHR_H_INT | SWS_FULL_CHR_H_INP,
                                NULL, NULL, NULL);
    if (!*sws)
        return reel_diag_fail(d, REEL_EUNSUPPORTED, "cannot convert %s to RGB",
                              av_get_pix_fmt_name(f->format));
    const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(f->format);
    if (!(desc->flags & AV_PIX_FMT_FLAG_RGB) && desc->nb_components >= 3) {
        int full = f->color_range == AVCOL_RANGE_JPEG ||
                   f->format == AV_PIX_FMT_YUVJ420P ||
                   f->format == AV_PIX_FMT_YUVJ422P ||
                   f->format == AV_PIX_FMT_YUVJ444P ||
                   f->format == AV_PIX_FMT_YUVJ440P ||
                   f->format == AV_PIX_FMT_YUVJ411P;
        int cs = f->colorspace == AVCOL_SPC_UNSPECIFIED ? SWS_CS_DEFAULT
                                                        : (int)f->colorspace;
        sws_setColorspaceDetails(*sws, sws_getCoefficients(cs), full,
                                 sws_getCoefficients(SWS_CS_DEFAULT), 1, 0,
                                 1 << 16, 1 << 16);
    }
    uint8_t *dst[4];
    int dls[4];
    if (av_image_alloc(dst, dls, (int)w, (int)h, AV_PIX_FMT_RGB24, 32) < 0)
        return reel_diag_fail(d, REEL_ENOMEM, "out of memory");
    sws_scale(*sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height,
              dst, dls);
    int rc = reel_image_alloc(out, turn ? h : w, turn ? w : h);
    if (rc) {
        av_freep(&dst[0]);
        return reel_diag_fail(d, rc, "cannot hold a %ux%u image", w, h);
    }
    for (uint32_t r = 0; r < out->h; r++) {
        uint8_t *o = out->rgb + (size_t)r * out->w * 3;
        for (uint32_t c = 0; c < out->w; c++, o += 3) {
            uint32_t sr, sc; /* source row and column */
            switch (rotation) {
            case 90:
                sr = h - 1 - c;
                sc = r;
                break;
            case 180:
                sr = h - 1 - r;
                sc = w - 1 - c;
                break;
            case 270:
                sr = c;
                sc = w - 1 - r;
                break;
            default:
                sr = r;
                sc = c;
            }
            memcpy(o, dst[0] + (size_t)sr * (size_t)dls[0] + (size_t)sc * 3, 3);
        }
    }
    av_freep(&dst[0]);
    return 0;
}

/* ---- extract --------------------------------------------------------- */

void reel_frames_free(reel_frames *fr)
{
    if (!fr)
        return;
    for (uint32_t i = 0; i < fr->n; i++)
        reel_image_free(&fr->frame[i].img);
    free(fr->frame);
    free(fr->keys);
    free(fr);
}

static int check_opts(const reel_frames_opts *o, reel_diag *d)
{
    if (o->k > REEL_FRAMES_MAX_K)
        return reel_diag_fail(d, REEL_EINVAL, "k = %u is above %u", o->k,
                              REEL_FRAMES_MAX_K);
    if (o->max_keys == 0 || o->max_keys > REEL_FRAMES_MAX_KEYS)
        return reel_diag_fail(d, REEL_EINVAL, "max_keys must be 1 .. %u",
                              REEL_FRAMES_MAX_KEYS);
    if (o->max_pixels == 0 || o->max_pixels > REEL_IMAGE_MAX_PIXELS)
        return reel_diag_fail(d, REEL_EINVAL, "max_pixels must be 1 .. %u",
                              REEL_IMAGE_MAX_PIXELS);
    if (!(o->scene_threshold == o->scene_threshold))
        return reel_diag_fail(d, REEL_EINVAL, "scene_threshold is NaN");
    return 0;
}

/* Pass 1: every key frame's timestamp and score. */
static int scan(const char *path, const reel_frames_opts *o, reel_frames *fr,
                reel_diag *d)
{
    media m;
    scene sc = {.src_fmt = AV_PIX_FMT_NONE};
    int rc = media_open(&m, path, o->max_pixels, d);
    size_t cap = 0;
    double ts = 0;
    while (!rc) {
        int got = media_next(&m, d);
        if (got <= 0) {
            rc = got;
            break;
        }
        if (fr->n_keys == o->max_keys) {
            fr->truncated = 1;
            break;
        }
        double score;
        rc = scene_score(&sc, m.frm, &score, d);
        if (rc)
            break;
        if (fr->n_keys == 0) {
            fr->w = (uint32_t)m.frm->width;
            fr->h = (uint32_t)m.frm->height;
            snprintf(fr->score_fmt, sizeof fr->score_fmt, "%s",
                     av_get_pix_fmt_name(select_fmt(m.frm->format)));
        }
        REEL_GROW(fr->keys, cap, (size_t)fr->n_keys + 1);
        reel_frames_key *key = &fr->keys[fr->n_keys++];
        ts = frame_ts(&m, m.frm, ts, &key->pts);
        key->ts = ts;
        key->score = score;
    }
    if (!rc) {
        snprintf(fr->codec, sizeof fr->codec, "%s", m.dec->codec->name);
        AVRational tb = m.st->time_base;
        if (m.st->start_time != AV_NOPTS_VALUE)
            fr->start = (double)m.st->start_time * av_q2d(tb);
        if (m.st->duration != AV_NOPTS_VALUE && m.st->duration > 0)
            fr->duration = (double)m.st->duration * av_q2d(tb);
        else if (m.fc->duration != AV_NOPTS_VALUE && m.fc->duration > 0)
            fr->duration = (double)m.fc->duration / AV_TIME_BASE;
        fr->rotation = stream_rotation(m.st);
        if (fr->n_keys == 0)
            rc = reel_diag_fail(d, REEL_EFORMAT,
                                "no key frame could be "
                                "decoded");
    }
    scene_free(&sc);
    media_close(&m);
    return rc;
}

/* Pass 2: the chosen key frames (by position) as RGB images. */
static int pictures(const char *path, const reel_frames_opts *o,
                    reel_frames *fr, reel_diag *d)
{
    media m;
    struct SwsContext *sws = NULL;
    int rc = media_open(&m, path, o->max_pixels, d);
    uint32_t i = 0, j = 0;
    while (!rc && j < fr->n) {
        int got = media_next(&m, d);
        if (got < 0) {
            rc = got;
            break;
        }
        if (got == 0 || i >= fr->n_keys) {
            rc = reel_diag_fail(d, REEL_EFORMAT,
                                "the second reading found fewer key frames");
            break;
        }
        if (i == fr->frame[j].key) {
            int64_t pts;
            frame_ts(&m, m.frm, 0, &pts);
            if (pts != fr->keys[i].pts) {
                rc = reel_diag_fail(d, REEL_EFORMAT,
                                    "key frame %u changed between readings", i);
                break;
            }
            rc = to_rgb(m.frm, fr->rotation, o->max_side, o->max_pixels, &sws,
                        &fr->frame[j].img, d);
            j++;
        }
        i++;
    }
    sws_freeContext(sws);
    media_close(&m);
    return rc;
}

int reel_frames_extract(const char *path, const reel_frames_opts *o,
                        reel_frames **out, reel_diag *d)
{
    assert(path && out);
    *out = NULL;
    reel_diag_clear(d);
    if (d)
        d->file = path;
    reel_frames_opts def = reel_frames_opts_default();
    if (!o)
        o = &def;
    int rc = check_opts(o, d);
    if (rc)
        return rc;
    pthread_once(&log_once, log_install);

    reel_frames *fr = reel_xcalloc(1, sizeof *fr);
    rc = scan(path, o, fr, d);
    if (!rc && o->k) {
        uint32_t idx[REEL_FRAMES_MAX_K];
        int scene[REEL_FRAMES_MAX_K];
        fr->n = reel_frames_choose(fr->keys, fr->n_keys, o->k,
                                   o->scene_threshold, idx, scene);
        fr->frame = reel_xcalloc(fr->n, sizeof *fr->frame);
        for (uint32_t i = 0; i < fr->n; i++)
            fr->frame[i] = (reel_frame){.ts = fr->keys[idx[i]].ts,
                                        .score = fr->keys[idx[i]].score,
                                        .scene = scene[i],
                                        .key = idx[i]};
        rc = pictures(path, o, fr, d);
    }
    logflush();
    if (rc) {
        reel_frames_free(fr);
        return rc;
    }
    *out = fr;
    return 0;
}

/* ---- thumbnails ------------------------------------------------------ */

int reel_frames_thumb_name(uint32_t i, double ts, char *buf, uint32_t size)
{
    double ms = round(ts * 1000);
    if (!(fabs(ms) < 1e15))
        ms = 0;
    return snprintf(buf, size, "kf%03u_%lldms.jpg", i, (long long)ms);
}

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = reel_xmalloc(a + b + 2);
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* dir/frames.tsv through a temporary file, fsync and rename. */
static int write_index(const reel_frames *fr, const char *dir,
                       const uint32_t *tw, const uint32_t *th, reel_diag *d)
{
    char *path = join(dir, "frames.tsv");
    char *tmp = join(dir, "frames.tsv.XXXXXX");
    int rc = 0;
    int fd = mkstemp(tmp);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        rc = reel_diag_fail(d, REEL_EIO, "cannot create %s: %s", tmp,
                            strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        goto done;
    }
    fprintf(f, "# reel frames 1\n# file\tts\tscore\tscene\twidth\theight\n");
    for (uint32_t i = 0; i < fr->n; i++) {
        char name[64];
        reel_frames_thumb_name(i, fr->frame[i].ts, name, sizeof name);
        fprintf(f, "%s\t%.6f\t%.6f\t%d\t%u\t%u\n", name, fr->frame[i].ts,
                fr->frame[i].score, fr->frame[i].scene ? 1 : 0, tw[i], th[i]);
    }
    int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        rc = reel_diag_fail(d, REEL_EIO, "cannot write %s: %s", path,
                            strerror(errno));
        unlink(tmp);
        goto done;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
done:
    free(tmp);
    free(path);
    return rc;
}

int reel_frames_write_thumbs(const reel_frames *fr, const char *dir,
                             uint32_t max_side, int quality, reel_diag *d)
{
    reel_diag_clear(d);
    if (d)
        d->file = dir;
    if (!fr || !dir || max_side < 1 || max_side > 4096 || quality < 1 ||
        quality > 100)
        return reel_diag_fail(d, REEL_EINVAL, "bad thumbnail arguments");
    for (uint32_t i = 0; i < fr->n; i++)
        if (!fr->frame[i].img.rgb)
            return reel_diag_fail(d, REEL_EINVAL, "frame %u has no image", i);
    uint32_t *tw = reel_xcalloc(fr->n + 1, sizeof *tw);
    uint32_t *th = reel_xcalloc(fr->n + 1, sizeof *th);
    int rc = 0;
    for (uint32_t i = 0; i < fr->n && !rc; i++) {
        const reel_image *img = &fr->frame[i].img;
        reel_image small = {0};
        uint32_t longest = img->w > img->h ? img->w : img->h;
        if (longest > max_side) {
            double s = (double)max_side / longest;
            rc = reel_image_resize_bicubic(img, side_scale(img->w, s),
                                           side_scale(img->h, s), &small);
            if (rc) {
                rc = reel_diag_fail(d, rc, "cannot resize frame %u", i);
                break;
            }
            img = &small;
        }
        tw[i] = img->w;
        th[i] = img->h;
        char name[64];
        reel_frames_thumb_name(i, fr->frame[i].ts, name, sizeof name);
        char *path = join(dir, name);
        int e = reel_image_write_jpeg(img, path, quality);
        if (e)
            rc = reel_diag_fail(d, e == REEL_ENOENT ? REEL_ENOENT : REEL_EIO,
                                "cannot write %s", name);
        free(path);
        reel_image_free(&small);
    }
    if (!rc)
        rc = write_index(fr, dir, tw, th, d);
    free(tw);
    free(th);
    return rc;
}
