/*
 * reel embed DIR --clip MODEL_DIR: content vectors from CLIP (issue:
 * Content embeddings). Each video's vector is the normalised mean of its
 * key frames' image embeddings (src/embed/frames, up to --frames K) and
 * its title + description's text embedding, the text weighted by W:
 * normalize((1 - W) * unit(mean of frames) + W * text). A video without
 * media (or whose media fails) gets its text vector; one without either
 * gets none. Thumbnails of the chosen frames go to DIR/thumbs/ID/
 * (docs/formats/frames.md).
 *
 * Resumable: every 30 s the rows done so far are saved to OUT.partial (a
 * vectors file, docs/formats/vectors.md, whose `has` marks the rows done);
 * a later run with the same model and options picks up from it.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/mem.h"
#include "base/progress.h"
#include "cmd.h"
#include "data/dataset.h"
#include "embed/clip.h"
#include "embed/clip_model.h"
#include "embed/frames.h"
#include "embed/vectors.h"

/* DIR/thumbs/ID: the id with bytes outside [A-Za-z0-9._-] as %XX, and a
 * leading '.' escaped too (no ".", ".." or hidden directories). */
void reel_cmd_thumb_dir(const char *dir, const char *id, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "%s/thumbs/", dir);
    for (const unsigned char *p = (const unsigned char *)id; *p && n + 4 < cap;
         p++) {
        int keep = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                   (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' ||
                   (*p == '.' && p != (const unsigned char *)id);
        if (keep)
            out[n++] = (char)*p;
        else
            n += (size_t)snprintf(out + n, cap - n, "%%%02X", *p);
    }
    out[n < cap ? n : cap - 1] = 0;
}

static int mkdirs(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(tmp, 0755) && errno != EEXIST ? -1 : 0;
}

static void normalize(float *v, uint32_t d)
{
    double s = 0;
    for (uint32_t i = 0; i < d; i++)
        s += (double)v[i] * v[i];
    if (s > 0)
        for (uint32_t i = 0; i < d; i++)
            v[i] = (float)(v[i] / sqrt(s));
}

/* The media path of a video: absolute as given, relative to DIR; URLs are
 * not read (frames.h opens local files only). */
static int media_path(const char *dir, const char *media, char *out, size_t cap)
{
    if (strstr(media, "://"))
        return REEL_EUNSUPPORTED;
    if (media[0] == '/')
        snprintf(out, cap, "%s", media);
    else
        snprintf(out, cap, "%s/%s", dir, media);
    return 0;
}

enum { TEXT_GROUP = 64 }; /* videos whose texts are embedded in one batch */

/* The texts ("title. description"; the tokenizer truncates) of videos
 * i0..i0+cnt that are still to do, embedded in one batch: slot[j] is
 * video i0+j's row of tv (and rc), or REEL_NONE without text. */
static void embed_texts(const reel_clip_model *m, const reel_videos *vs,
                        const reel_vectors *vec, uint32_t i0, uint32_t cnt,
                        float *tv, int *rc, uint32_t *slot)
{
    char *text[TEXT_GROUP];
    const char *tp[TEXT_GROUP];
    size_t len[TEXT_GROUP];
    uint32_t nt = 0;
    for (uint32_t j = 0; j < cnt; j++) {
        uint32_t i = i0 + j;
        size_t tl, dl;
        const char *title = reel_strs_get(&vs->title, i, &tl);
        const char *desc = reel_strs_get(&vs->description, i, &dl);
        slot[j] = REEL_NONE;
        if (vec->has[i] || !(tl || dl))
            continue;
        char *t = reel_xmalloc(tl + dl + 3);
        size_t k = 0;
        memcpy(t + k, title, tl), k += tl;
        if (tl && dl)
            memcpy(t + k, ". ", 2), k += 2;
        memcpy(t + k, desc, dl), k += dl;
        text[nt] = t;
        tp[nt] = t;
        len[nt] = k;
        slot[j] = nt++;
    }
    if (nt)
        reel_clip_model_texts(m, tp, len, nt, tv, rc);
    for (uint32_t k = 0; k < nt; k++)
        free(text[k]);
}

int reel_cmd_embed_clip(const char *dir, const char *out,
                        const reel_cmd_clip_opts *o)
{
    reel_diag d;
    reel_diag_clear(&d);
    reel_clip_model *m;
    if (reel_clip_model_open(o->model, &m, &d))
        return reel_cmd_fail_diag("embed", &d);
    reel_clip_model_set_batch(m, o->batch);
    reel_clip_set_threads(o->threads);
    reel_dataset *ds;
    if (reel_dataset_open(dir, &ds, &d)) {
        reel_clip_model_free(m);
        return reel_cmd_fail_diag("embed", &d);
    }
    const reel_videos *vs = reel_dataset_videos(ds);
    uint32_t dim = reel_clip_model_dim(m), n = vs->n;
    char model_abs[PATH_MAX], source[PATH_MAX + 256], partial[PATH_MAX];
    if (!realpath(o->model, model_abs))
        snprintf(model_abs, sizeof model_abs, "%s", o->model);
    reel_buf sb = REEL_BUF_INIT;
    reel_buf_puts(&sb, "{\"method\": \"clip\", \"model\": ");
    reel_buf_json_string(&sb, model_abs, strlen(model_abs));
    reel_buf_printf(&sb,
                    ", \"dim\": %u, \"frames\": %u, \"text_weight\": %.6g}",
                    dim, o->frames, o->text_weight);
    snprintf(source, sizeof source, "%s", sb.data);
    reel_buf_free(&sb);
    snprintf(partial, sizeof partial, "%s.partial", out);
    reel_vectors *vec = NULL;
    uint32_t resumed = 0;
    if (!access(partial, F_OK)) {
        reel_vectors *old = NULL;
        reel_diag pd;
        reel_diag_clear(&pd);
        if (!reel_vectors_load(partial, ds, &old, &pd) && old->dim == dim &&
            old->source && !strcmp(old->source, source)) {
            vec = old;
            for (uint32_t i = 0; i < n; i++)
                resumed += vec->has[i];
            fprintf(stderr,
                    "reel embed: resuming from %s (%u of %u videos done)\n",
                    partial, resumed, n);
        } else {
            reel_vectors_free(old);
            fprintf(stderr,
                    "reel embed: %s is from another model or other options; "
                    "starting "
                    "over\n",
                    partial);
        }
    }
    if (!vec)
        reel_vectors_new(n, dim, source, &vec);
    vec->unit_norm = 1;
    float *tvs = reel_xmalloc((size_t)TEXT_GROUP * dim * sizeof *tvs);
    float *fv = NULL;
    int trcs[TEXT_GROUP];
    uint32_t tslot[TEXT_GROUP];
    uint32_t with_frames = 0, text_only = 0, failures = 0, empty = 0,
             thumbs = 0;
    reel_frames_opts fo = reel_frames_opts_default();
    fo.k = o->frames;
    reel_progress p;
    reel_progress_start(&p, "embed", "videos", n);
    reel_progress_set(&p, resumed);
    double last_save = reel_clock_mono(), t0 = last_save;
    int rc = 0;
    for (uint32_t i = 0; i < n && !rc; i++) {
        if (i % TEXT_GROUP == 0)
            embed_texts(m, vs, vec, i, n - i < TEXT_GROUP ? n - i : TEXT_GROUP,
                        tvs, trcs, tslot);
        if (vec->has[i])
            continue;
        size_t ml;
        const char *media = reel_strs_get(&vs->media, i, &ml);
        const char *vid = reel_strs_get(&vs->id, i, NULL);
        int has_text = 0;
        const float *tv = NULL;
        uint32_t ts = tslot[i % TEXT_GROUP];
        if (ts != REEL_NONE && trcs[ts])
            fprintf(stderr, "reel embed: video %s: title/description: %s\n",
                    vid,
                    trcs[ts] == REEL_EFORMAT ? "not valid UTF-8"
                                             : reel_strerror(trcs[ts]));
        else if (ts != REEL_NONE) {
            has_text = 1;
            tv = tvs + (size_t)ts * dim;
        }
        int has_img = 0;
        if (ml && o->frames) {
            char mp[PATH_MAX];
            reel_frames *fr = NULL;
            reel_diag fd;
            reel_diag_clear(&fd);
            int frc = media_path(dir, media, mp, sizeof mp);
            if (frc)
                reel_diag_fail(&fd, frc,
                               "%s: not a local file (URLs are not fetched)",
                               media);
            else
                frc = reel_frames_extract(mp, &fo, &fr, &fd);
            if (!frc && fr->n) {
                reel_image *imgs = reel_xcalloc(fr->n, sizeof *imgs);
                for (uint32_t j = 0; j < fr->n; j++)
                    imgs[j] = fr->frame[j].img;
                fv = reel_xrealloc(fv, (size_t)fr->n * dim * sizeof *fv);
                frc = reel_clip_model_images(m, imgs, fr->n, fv);
                free(imgs);
                if (!frc) {
                    for (uint32_t j = 1; j < fr->n; j++)
                        for (uint32_t q = 0; q < dim; q++)
                            fv[q] += fv[(size_t)j * dim + q];
                    normalize(fv, dim);
                    has_img = 1;
                    char td[PATH_MAX];
                    reel_cmd_thumb_dir(dir, vid, td, sizeof td);
                    reel_diag td_d;
                    reel_diag_clear(&td_d);
                    if (mkdirs(td) || reel_frames_write_thumbs(
                                          fr, td, REEL_FRAMES_THUMB_SIDE,
                                          REEL_FRAMES_THUMB_QUALITY, &td_d))
                        fprintf(stderr,
                                "reel embed: video %s: thumbnails in %s: %s\n",
                                vid, td,
                                td_d.msg[0] ? td_d.msg : strerror(errno));
                    else
                        thumbs += fr->n;
                }
            } else if (!frc) {
                reel_diag_fail(&fd, REEL_EFORMAT, "%s: no key frames", mp);
                frc = REEL_EFORMAT;
            }
            if (frc) {
                char msg[600];
                reel_diag_format(&fd, msg, sizeof msg);
                fprintf(stderr, "reel embed: video %s: %s\n", vid, msg);
                failures++;
            }
            reel_frames_free(fr);
        }
        float *row = reel_vectors_row(vec, i);
        if (has_img && has_text) {
            float w = (float)o->text_weight;
            for (uint32_t q = 0; q < dim; q++)
                row[q] = (1 - w) * fv[q] + w * tv[q];
            normalize(row, dim);
            with_frames++;
        } else if (has_img) {
            memcpy(row, fv, dim * sizeof *row);
            with_frames++;
        } else if (has_text) {
            memcpy(row, tv, dim * sizeof *row);
            text_only++;
        } else {
            empty++;
        }
        vec->has[i] = (uint8_t)(has_img || has_text);
        reel_progress_add(&p, 1);
        reel_progress_tick(&p);
        if (reel_clock_mono() - last_save > 30) {
            if ((rc = reel_vectors_save(vec, ds, partial, &d)))
                break;
            last_save = reel_clock_mono();
        }
    }
    reel_progress_finish(&p);
    if (!rc)
        rc = reel_vectors_save(vec, ds, out, &d);
    if (!rc)
        unlink(partial);
    uint32_t have = 0;
    for (uint32_t i = 0; i < n; i++)
        have += vec->has[i];
    if (!rc)
        printf("clip: %u of %u videos (%u with key frames, %u text only%s%u "
               "resumed), %u "
               "without content, %u media failures, %u thumbnails, dim %u, in "
               "%.1fs -> %s\n",
               have, n, with_frames, text_only, ", ", resumed, empty, failures,
               thumbs, dim, reel_clock_mono() - t0, out);
    free(tvs);
    free(fv);
    reel_vectors_free(vec);
    reel_dataset_close(ds);
    reel_clip_model_free(m);
    if (rc)
        return reel_cmd_fail_diag("embed", &d);
    return REEL_EXIT_OK;
}
