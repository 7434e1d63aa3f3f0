/* Unit tests of src/embed/frames: key frames equal ffprobe's
 * -skip_frame nokey list and scene scores equal FFmpeg's select filter
 * (within 1e-5) on videos made with lavfi sources, for several codecs and
 * pixel formats (tests/reference/ffmpeg_frames.py runs ffmpeg/ffprobe);
 * the choice puts scene cuts first and spreads the rest; images are
 * rotated and bounded; thumbnails and their index are written; broken,
 * missing and unsupported media fail cleanly. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/rng.h"
#include "embed/frames.h"
#include "embed/image.h"

#ifndef REEL_FRAMES_ORACLE
#define REEL_FRAMES_ORACLE "tests/reference/ffmpeg_frames.py"
#endif

/* The videos, made once for the whole group. */
static char *dir;

typedef struct video {
    const char *name, *file, *score_fmt;
} video;

static const video videos[] = {
    {"cuts", "cuts.mp4", "yuv420p"},
    {"yuv444p", "yuv444p.mp4", "yuv420p"},
    {"hi10", "hi10.mkv", "yuv420p10le"},
    {"rgb", "rgb.mkv", "rgb24"},
    {"mjpeg", "mjpeg.avi", "yuvj420p"},
    {"hevc", "hevc.mp4", "yuv420p"},
    {"av1", "av1.mkv", "yuv420p"},
    {"vp9", "vp9.webm", "yuv420p"},
    {"rotated", "rotated.mp4", "yuv420p"},
    {"resize", "resize.ts", "yuv420p"},
    {"anamorphic", "anamorphic.mp4", "yuv420p"},
    {"audio", "audio.m4a", NULL},
};
#define N_VIDEOS (sizeof videos / sizeof videos[0])

static char *vpath(const char *file)
{
    return test_path(dir, file);
}

static void oracle(const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' %s", REEL_FRAMES_ORACLE,
             args);
    assert_int_equal(system(cmd), 0);
}

static int make_videos(void **state)
{
    (void)state;
    dir = test_tmpdir();
    for (size_t i = 0; i < N_VIDEOS; i++) {
        char *p = vpath(videos[i].file), args[1024];
        snprintf(args, sizeof args, "gen %s '%s'", videos[i].name, p);
        oracle(args);
        free(p);
    }
    return 0;
}

static int remove_videos(void **state)
{
    (void)state;
    test_rmtree(dir);
    free(dir);
    return 0;
}

/* FFmpeg's answer for a file: n key frames' pts_time and scene scores. */
typedef struct truth {
    uint32_t n;
    double ts[512], score[512];
} truth;

static void probe(const char *path, truth *t)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' probe '%s'",
             REEL_FRAMES_ORACLE, path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_int_equal(fscanf(p, "n %u", &t->n), 1);
    assert_true(t->n > 0 && t->n <= 512);
    for (uint32_t i = 0; i < t->n; i++)
        assert_int_equal(fscanf(p, "%lf %lf", &t->ts[i], &t->score[i]), 2);
    assert_int_equal(pclose(p), 0);
}

static reel_frames *extract(const char *file, uint32_t k, uint32_t max_side)
{
    char *p = vpath(file);
    reel_frames_opts o = reel_frames_opts_default();
    o.k = k;
    o.max_side = max_side;
    reel_frames *fr = NULL;
    reel_diag d;
    int rc = reel_frames_extract(p, &o, &fr, &d);
    if (rc)
        fail_msg("%s: %s: %s", file, reel_errname(rc), d.msg);
    free(p);
    return fr;
}

static void key_frames_and_scores_match_ffmpeg(void **state)
{
    (void)state;
    for (size_t v = 0; v < N_VIDEOS; v++) {
        if (!videos[v].score_fmt)
            continue;
        char *p = vpath(videos[v].file);
        truth t;
        probe(p, &t);
        free(p);
        reel_frames *fr = extract(videos[v].file, 0, 0);
        if (fr->n_keys != t.n)
            fail_msg("%s: %u key frames, ffprobe lists %u", videos[v].name,
                     fr->n_keys, t.n);
        assert_string_equal(fr->score_fmt, videos[v].score_fmt);
        assert_int_equal(fr->n, 0);
        assert_false(fr->truncated);
        assert_int_equal(fr->w, 160);
        assert_int_equal(fr->h, 120);
        double worst = 0;
        for (uint32_t i = 0; i < t.n; i++) {
            /* ffprobe prints 6 decimals. */
            if (fabs(fr->keys[i].ts - t.ts[i]) > 1e-6)
                fail_msg("%s: key %u at %.6f, ffprobe says %.6f",
                         videos[v].name, i, fr->keys[i].ts, t.ts[i]);
            double e = fabs(fr->keys[i].score - t.score[i]);
            if (e > 1e-5)
                fail_msg("%s: key %u (%.3f s) scores %.6f, select says %.6f",
                         videos[v].name, i, t.ts[i], fr->keys[i].score,
                         t.score[i]);
            worst = fmax(worst, e);
        }
        /* The videos have cuts: the comparison is not between zeros. */
        double top = 0;
        for (uint32_t i = 0; i < t.n; i++)
            top = fmax(top, t.score[i]);
        assert_true(top > 0.3);
        print_message("%-8s %3u key frames, scores on %s, max |diff| %.2g\n",
                      videos[v].name, t.n, fr->score_fmt, worst);
        reel_frames_free(fr);
    }
}

/* reel's RGB pictures are libswscale's: byte for byte what ffmpeg's scale
 * filter makes with the same flags, full and limited range, 8 and 10 bits,
 * planar RGB. */
static void images_equal_ffmpeg_scale_filter(void **state)
{
    (void)state;
    const char *files[] = {"cuts.mp4", "mjpeg.avi", "hi10.mkv", "rgb.mkv",
                           "vp9.webm"};
    for (size_t v = 0; v < sizeof files / sizeof files[0]; v++) {
        char *p = vpath(files[v]), *raw = vpath("frames.rgb"), args[2048];
        snprintf(args, sizeof args, "rgb '%s' '%s'", p, raw);
        oracle(args);
        reel_frames *fr = extract(files[v], REEL_FRAMES_MAX_K, 0);
        assert_int_equal(fr->n, fr->n_keys); /* every key frame */
        size_t size = 160 * 120 * 3;
        uint8_t *want = malloc(size * fr->n_keys);
        FILE *f = fopen(raw, "rb");
        assert_non_null(f);
        assert_int_equal(fread(want, 1, size * fr->n_keys, f),
                         size * fr->n_keys);
        assert_int_equal(fgetc(f), EOF);
        fclose(f);
        for (uint32_t i = 0; i < fr->n; i++) {
            assert_int_equal(fr->frame[i].img.w * fr->frame[i].img.h * 3, size);
            assert_memory_equal(fr->frame[i].img.rgb,
                                want + size * fr->frame[i].key, size);
        }
        free(want);
        reel_frames_free(fr);
        free(raw);
        free(p);
    }
}

static void choose_puts_scene_cuts_first_and_spreads_the_rest(void **state)
{
    (void)state;
    /* 21 key frames at 0, 1, ..., 20 s; cuts at 4 s (0.5) and 13 s (0.9),
     * a near miss at 17 s (0.29). */
    reel_frames_key keys[21];
    for (uint32_t i = 0; i < 21; i++)
        keys[i] = (reel_frames_key){.pts = i, .ts = i, .score = 0.01};
    keys[4].score = 0.5;
    keys[13].score = 0.9;
    keys[17].score = 0.29;
    uint32_t idx[8];
    int scene[8];

    /* k = 1: the strongest cut only. */
    assert_int_equal(reel_frames_choose(keys, 21, 1, 0.3, idx, scene), 1);
    assert_int_equal(idx[0], 13);
    assert_true(scene[0]);

    /* k = 5: both cuts, then the frames farthest from them and from the
     * ends (which count double): 8.5 s between the cuts first ... */
    assert_int_equal(reel_frames_choose(keys, 21, 5, 0.3, idx, scene), 5);
    const uint32_t want[5] = {1, 4, 8, 13, 17};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(idx[i], want[i]);
        assert_int_equal(scene[i], want[i] == 4 || want[i] == 13);
    }

    /* No cuts (threshold above 1): the middle, then near 1/6 and 5/6 of
     * the span (3.33 s and 16.67 s: 3 and 4, 16 and 17 tie, the earlier
     * frame wins). */
    assert_int_equal(reel_frames_choose(keys, 21, 3, 2.0, idx, scene), 3);
    assert_int_equal(idx[0], 3);
    assert_int_equal(idx[1], 10);
    assert_int_equal(idx[2], 16);
    assert_false(scene[0] || scene[1] || scene[2]);

    /* More wanted than there are: all of them, in time order. */
    assert_int_equal(reel_frames_choose(keys, 3, 8, 0.3, idx, NULL), 3);
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(idx[i], i);
    assert_int_equal(reel_frames_choose(keys, 0, 8, 0.3, idx, NULL), 0);

    /* More cuts than k: the highest scores, ties to the earlier frame. */
    keys[2].score = 0.9;
    assert_int_equal(reel_frames_choose(keys, 21, 2, 0.3, idx, scene), 2);
    assert_int_equal(idx[0], 2);
    assert_int_equal(idx[1], 13);
    assert_true(scene[0] && scene[1]);
}

static void chosen_frames_on_a_video_are_cuts_then_fill(void **state)
{
    (void)state;
    reel_frames *fr = extract("cuts.mp4", 6, 0);
    assert_int_equal(fr->n, 6);
    uint32_t cuts = 0, above = 0;
    for (uint32_t i = 0; i < fr->n_keys; i++)
        above += fr->keys[i].score >= 0.3;
    assert_true(above >= 3); /* the video's hard cuts */
    for (uint32_t i = 0; i < fr->n; i++) {
        const reel_frame *f = &fr->frame[i];
        assert_true(f->key < fr->n_keys);
        assert_true(f->ts == fr->keys[f->key].ts);
        assert_true(f->score == fr->keys[f->key].score);
        assert_int_equal(f->scene, f->score >= 0.3);
        cuts += f->scene;
        if (i)
            assert_true(f->ts > fr->frame[i - 1].ts);
        assert_int_equal(f->img.w, 160);
        assert_int_equal(f->img.h, 120);
        assert_non_null(f->img.rgb);
    }
    assert_int_equal(cuts, above);
    /* The blue card (from 6 s) is blue, the red one (4 .. 5 s) red. */
    for (uint32_t i = 0; i < fr->n; i++) {
        const uint8_t *px = fr->frame[i].img.rgb + (60 * 160 + 80) * 3;
        if (fr->frame[i].ts >= 4.0 && fr->frame[i].ts < 5.0)
            assert_true(px[0] > 200 && px[1] < 60 && px[2] < 60);
        if (fr->frame[i].ts >= 6.0)
            assert_true(px[2] > 200 && px[0] < 60 && px[1] < 60);
    }
    reel_frames_free(fr);
}

static void images_follow_the_display_matrix_and_max_side(void **state)
{
    (void)state;
    reel_frames *up = extract("cuts.mp4", 3, 0);
    reel_frames *rot = extract("rotated.mp4", 3, 0);
    assert_int_equal(up->rotation, 0);
    assert_int_equal(rot->rotation, 90);
    assert_int_equal(rot->n, up->n);
    for (uint32_t i = 0; i < rot->n; i++) {
        const reel_image *a = &up->frame[i].img, *b = &rot->frame[i].img;
        assert_int_equal(b->w, a->h);
        assert_int_equal(b->h, a->w);
        /* 90 degrees clockwise: b(r, c) = a(h - 1 - c, r). */
        for (uint32_t r = 0; r < b->h; r++)
            for (uint32_t c = 0; c < b->w; c++)
                assert_memory_equal(
                    b->rgb + ((size_t)r * b->w + c) * 3,
                    a->rgb + ((size_t)(a->h - 1 - c) * a->w + r) * 3, 3);
    }
    reel_frames_free(up);
    reel_frames_free(rot);

    reel_frames *small = extract("rotated.mp4", 2, 80);
    for (uint32_t i = 0; i < small->n; i++) {
        assert_int_equal(small->frame[i].img.w, 60);
        assert_int_equal(small->frame[i].img.h, 80);
    }
    reel_frames_free(small);

    /* Sample aspect ratio 2:1: 160x120 stored, 320x120 shown. */
    reel_frames *wide = extract("anamorphic.mp4", 2, 0);
    for (uint32_t i = 0; i < wide->n; i++) {
        assert_int_equal(wide->frame[i].img.w, 320);
        assert_int_equal(wide->frame[i].img.h, 120);
    }
    reel_frames_free(wide);
}

static void thumbnails_and_index_are_written(void **state)
{
    (void)state;
    reel_frames *fr = extract("cuts.mp4", 4, 0);
    char *out = test_tmpdir();
    reel_diag d;
    assert_int_equal(reel_frames_write_thumbs(fr, out, 64, 85, &d), 0);
    char *index = test_path(out, "frames.tsv");
    FILE *f = fopen(index, "r");
    assert_non_null(f);
    char line[512];
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "# reel frames 1\n");
    assert_non_null(fgets(line, sizeof line, f));
    assert_true(line[0] == '#');
    for (uint32_t i = 0; i < fr->n; i++) {
        char name[128], want[64];
        double ts, score;
        int scene;
        unsigned w, h;
        assert_int_equal(fscanf(f, "%127s %lf %lf %d %u %u", name, &ts, &score,
                                &scene, &w, &h),
                         6);
        reel_frames_thumb_name(i, fr->frame[i].ts, want, sizeof want);
        assert_string_equal(name, want);
        assert_true(fabs(ts - fr->frame[i].ts) < 1e-6);
        assert_true(fabs(score - fr->frame[i].score) < 1e-6);
        assert_int_equal(scene, fr->frame[i].scene);
        assert_int_equal(w, 64);
        assert_int_equal(h, 48);
        char *jpg = test_path(out, name);
        reel_image img = {0};
        assert_int_equal(reel_image_load(jpg, &img, &d), 0);
        assert_int_equal(img.w, 64);
        assert_int_equal(img.h, 48);
        reel_image_free(&img);
        free(jpg);
    }
    assert_int_equal(fscanf(f, "%*s"), EOF);
    fclose(f);
    free(index);

    char name[64];
    reel_frames_thumb_name(3, 12.3456, name, sizeof name);
    assert_string_equal(name, "kf003_12346ms.jpg");
    reel_frames_thumb_name(0, -0.04, name, sizeof name);
    assert_string_equal(name, "kf000_-40ms.jpg");

    /* Bad arguments and a missing directory. */
    assert_int_equal(reel_frames_write_thumbs(fr, out, 0, 85, &d), REEL_EINVAL);
    assert_int_equal(reel_frames_write_thumbs(fr, out, 64, 101, &d),
                     REEL_EINVAL);
    char *gone = test_path(out, "no/such/dir");
    int rc = reel_frames_write_thumbs(fr, gone, 64, 85, &d);
    assert_true(rc == REEL_EIO || rc == REEL_ENOENT);
    free(gone);
    test_rmtree(out);
    free(out);
    reel_frames_free(fr);

    /* A scan without images has nothing to write. */
    fr = extract("cuts.mp4", 0, 0);
    out = test_tmpdir();
    assert_int_equal(reel_frames_write_thumbs(fr, out, 64, 85, &d), 0);
    test_rmtree(out);
    free(out);
    reel_frames_free(fr);
}

static int fails(const char *path, reel_diag *d)
{
    reel_frames *fr = (reel_frames *)1;
    int rc = reel_frames_extract(path, NULL, &fr, d);
    assert_null(fr);
    assert_ptr_equal(d->file, path);
    assert_true(d->msg[0] != '\0');
    print_message("%s: %s\n", reel_errname(rc), d->msg);
    return rc;
}

/* The first `len` bytes of file `from` as file `to`. */
static char *cut_copy(const char *from, const char *to, double part)
{
    char *src = vpath(from), *dst = vpath(to);
    FILE *f = fopen(src, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    long keep = (long)(n * part);
    char *buf = malloc((size_t)n);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    f = fopen(dst, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, (size_t)keep, f), (size_t)keep);
    fclose(f);
    free(buf);
    free(src);
    return dst;
}

static void broken_missing_and_unsupported_media_fail_cleanly(void **state)
{
    (void)state;
    reel_diag d;
    char *p = vpath("missing.mp4");
    assert_int_equal(fails(p, &d), REEL_ENOENT);
    free(p);

    p = test_write_file(dir, "notes.mp4",
                        "This is a text file, not a movie."
                        "\nIt has two lines.\n");
    assert_int_equal(fails(p, &d), REEL_EFORMAT);
    free(p);

    p = test_write_file(dir, "empty.mp4", "");
    assert_int_equal(fails(p, &d), REEL_EFORMAT);
    free(p);

    /* The moov atom is at the end: half the file has no index. */
    p = cut_copy("cuts.mp4", "half.mp4", 0.5);
    assert_int_equal(fails(p, &d), REEL_EFORMAT);
    free(p);

    /* Only the first bytes of the header. */
    p = cut_copy("cuts.mp4", "head.mp4", 0.001);
    assert_int_equal(fails(p, &d), REEL_EFORMAT);
    free(p);

    p = vpath("audio.m4a");
    assert_int_equal(fails(p, &d), REEL_EUNSUPPORTED);
    free(p);

    assert_int_equal(fails(dir, &d), REEL_EIO);

    reel_frames_opts o = reel_frames_opts_default();
    o.k = REEL_FRAMES_MAX_K + 1;
    reel_frames *fr;
    p = vpath("cuts.mp4");
    assert_int_equal(reel_frames_extract(p, &o, &fr, &d), REEL_EINVAL);
    o = reel_frames_opts_default();
    o.max_pixels = 160 * 120 - 1;
    assert_int_equal(reel_frames_extract(p, &o, &fr, &d), REEL_ETOOBIG);
    free(p);
}

static void
a_file_cut_after_its_index_gives_the_frames_before_the_cut(void **state)
{
    (void)state;
    /* MKV has its index up front: a cut file still opens and decodes up
     * to the cut, which is what the ffmpeg command does as well. */
    reel_frames *full = extract("hi10.mkv", 0, 0);
    char *p = cut_copy("hi10.mkv", "hi10-cut.mkv", 0.6);
    reel_frames_opts o = reel_frames_opts_default();
    reel_frames *fr = NULL;
    reel_diag d;
    assert_int_equal(reel_frames_extract(p, &o, &fr, &d), 0);
    assert_true(fr->n_keys >= 1 && fr->n_keys < full->n_keys);
    for (uint32_t i = 0; i < fr->n_keys; i++) {
        assert_true(fr->keys[i].ts == full->keys[i].ts);
        assert_true(fr->keys[i].score == full->keys[i].score);
    }
    assert_true(fr->n >= 1);
    reel_frames_free(fr);
    reel_frames_free(full);
    free(p);
}

static void scanning_stops_at_max_keys(void **state)
{
    (void)state;
    char *p = vpath("mjpeg.avi");
    reel_frames_opts o = reel_frames_opts_default();
    o.max_keys = 5;
    o.k = 2;
    reel_frames *fr = NULL;
    reel_diag d;
    assert_int_equal(reel_frames_extract(p, &o, &fr, &d), 0);
    assert_int_equal(fr->n_keys, 5);
    assert_true(fr->truncated);
    assert_int_equal(fr->n, 2);
    reel_frames_free(fr);
    free(p);
}

#ifndef CORRUPT_ROUNDS
#define CORRUPT_ROUNDS 6 /* per video; more by hand: -DCORRUPT_ROUNDS=200 */
#endif

/* Bytes overwritten at seeded places in each test video: whatever FFmpeg
 * makes of them, extraction returns 0 or a clean error (ASan watches). */
static void corrupted_files_never_crash(void **state)
{
    (void)state;
    reel_rng r;
    reel_rng_seed(&r, 8);
    uint32_t ok = 0, failed = 0;
    for (size_t v = 0; v < N_VIDEOS; v++) {
        char *src = vpath(videos[v].file);
        FILE *f = fopen(src, "rb");
        assert_non_null(f);
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        uint8_t *orig = malloc((size_t)n), *buf = malloc((size_t)n);
        assert_int_equal(fread(orig, 1, (size_t)n, f), (size_t)n);
        fclose(f);
        for (int round = 0; round < CORRUPT_ROUNDS; round++) {
            memcpy(buf, orig, (size_t)n);
            /* A few scattered bytes, then one burst. */
            for (int i = 0; i < 16; i++)
                buf[reel_rng_below(&r, (uint64_t)n)] =
                    (uint8_t)reel_rng_u64(&r);
            uint64_t at = reel_rng_below(&r, (uint64_t)n);
            for (uint64_t i = at; i < at + 64 && i < (uint64_t)n; i++)
                buf[i] = (uint8_t)reel_rng_u64(&r);
            char *p = test_path(dir, "corrupt.bin");
            f = fopen(p, "wb");
            assert_non_null(f);
            assert_int_equal(fwrite(buf, 1, (size_t)n, f), (size_t)n);
            fclose(f);
            reel_frames_opts o = reel_frames_opts_default();
            o.k = 3;
            reel_frames *fr = NULL;
            reel_diag d;
            int rc = reel_frames_extract(p, &o, &fr, &d);
            if (rc == 0) {
                ok++;
                assert_true(fr->n_keys >= 1 && fr->n >= 1);
                for (uint32_t i = 0; i < fr->n; i++)
                    assert_non_null(fr->frame[i].img.rgb);
            } else {
                failed++;
                assert_null(fr);
                assert_true(d.msg[0] != '\0');
            }
            reel_frames_free(fr);
            free(p);
        }
        free(orig);
        free(buf);
        free(src);
    }
    print_message("corrupted: %u decoded, %u refused\n", ok, failed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(key_frames_and_scores_match_ffmpeg),
        cmocka_unit_test(images_equal_ffmpeg_scale_filter),
        cmocka_unit_test(choose_puts_scene_cuts_first_and_spreads_the_rest),
        cmocka_unit_test(chosen_frames_on_a_video_are_cuts_then_fill),
        cmocka_unit_test(images_follow_the_display_matrix_and_max_side),
        cmocka_unit_test(thumbnails_and_index_are_written),
        cmocka_unit_test(broken_missing_and_unsupported_media_fail_cleanly),
        cmocka_unit_test(
            a_file_cut_after_its_index_gives_the_frames_before_the_cut),
        cmocka_unit_test(scanning_stops_at_max_keys),
        cmocka_unit_test(corrupted_files_never_crash),
    };
    return cmocka_run_group_tests(tests, make_videos, remove_videos);
}
