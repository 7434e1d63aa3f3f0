/*
 * reel clip: CLIP's raw outputs, one JSON line per input, for checking the
 * port against a reference (issue: "Content embeddings, part 2").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/lines.h"
#include "base/mem.h"
#include "cmd.h"
#include "embed/clip.h"
#include "embed/clip_model.h"
#include "embed/image.h"

static void help(FILE *out)
{
    fprintf(
        out,
        "usage: reel clip tokenize --clip MODEL_DIR [--text-file F] [TEXT...]\n"
        "       reel clip text     --clip MODEL_DIR [--text-file F] [TEXT...]\n"
        "       reel clip image    --clip MODEL_DIR FILE...\n"
        "       reel clip logits   --clip MODEL_DIR --image FILE... --text "
        "TEXT...\n"
        "options for all: [--batch N] [--threads N]\n"
        "\n"
        "MODEL_DIR is a Hugging Face CLIP checkpoint: config.json,\n"
        "model.safetensors (F32, F16 or BF16), vocab.json, merges.txt and\n"
        "optionally preprocessor_config.json.\n"
        "\n"
        "  tokenize  one line per text: {\"text\": ..., \"ids\": [...]}, the "
        "ids after\n"
        "            truncation to the context, start and end tokens included\n"
        "  text      one line per text: {\"text\": ..., \"embedding\": [...]}, "
        "the\n"
        "            projected, L2-normalised text embedding\n"
        "  image     one line per PNG or JPEG file: {\"file\": ..., "
        "\"embedding\":\n"
        "            [...]}, after CLIPImageProcessor's preprocessing\n"
        "  logits    {\"images\": [...], \"texts\": [...], \"logits\": [[...], "
        "...]}:\n"
        "            exp(logit_scale) x cosine, a row per image, a column per "
        "text\n"
        "\n"
        "--text-file F reads one UTF-8 text per line (after the TEXT "
        "arguments;\n"
        "for logits, after the --text ones). --text and --image may repeat "
        "and\n"
        "take every following argument until the next option; \"--\" ends the\n"
        "options. --batch (default 8) and --threads (default 1) change speed,\n"
        "never results. An input that cannot be read is reported on stderr "
        "with\n"
        "its file (and line) and skipped; the others still print; the exit\n"
        "status is then 1.\n");
}

struct texts {
    char **s;
    size_t *len;
    char **where; /* "F:line" or NULL for arguments */
    uint32_t n;
    size_t cap, cap_len, cap_where;
};

static void add_text(struct texts *t, const char *s, size_t len,
                     const char *where)
{
    REEL_GROW(t->s, t->cap, t->n + 1);
    REEL_GROW(t->len, t->cap_len, t->n + 1);
    REEL_GROW(t->where, t->cap_where, t->n + 1);
    t->s[t->n] = reel_xstrndup(s, len);
    t->len[t->n] = len;
    t->where[t->n] = where ? reel_xstrndup(where, strlen(where)) : NULL;
    t->n++;
}

static void free_texts(struct texts *t)
{
    for (uint32_t i = 0; i < t->n; i++)
        free(t->s[i]), free(t->where[i]);
    free(t->s), free(t->len), free(t->where);
}

/* Each line of path (LF or CRLF ends; a last line without one counts). */
static int read_text_file(const char *path, struct texts *t)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return reel_cmd_fail("clip", "%s: cannot open: %s", path,
                             strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    uint64_t no = 0;
    char where[4200];
    while ((n = getline(&line, &cap, f)) >= 0) {
        no++;
        size_t len = (size_t)n;
        if (len && line[len - 1] == '\n')
            len--;
        if (len && line[len - 1] == '\r')
            len--;
        snprintf(where, sizeof where, "%s:%llu", path, (unsigned long long)no);
        add_text(t, line, len, where);
    }
    int err = ferror(f);
    free(line);
    fclose(f);
    if (err)
        return reel_cmd_fail("clip", "%s: read error", path);
    return 0;
}

static void put_floats(reel_buf *b, const float *v, uint32_t n)
{
    reel_buf_putc(b, '[');
    for (uint32_t i = 0; i < n; i++)
        reel_buf_printf(b, "%s%.9g", i ? ", " : "", (double)v[i]);
    reel_buf_putc(b, ']');
}

static void flush(reel_buf *b)
{
    fwrite(b->data, 1, b->len, stdout);
    reel_buf_reset(b);
}

static void text_error(const struct texts *t, uint32_t i, int rc)
{
    if (t->where[i])
        fprintf(stderr, "reel clip: %s: %s\n", t->where[i],
                rc == REEL_EFORMAT ? "not valid UTF-8" : reel_strerror(rc));
    else
        fprintf(stderr, "reel clip: text argument %u: %s\n", i + 1,
                rc == REEL_EFORMAT ? "not valid UTF-8" : reel_strerror(rc));
}

static int do_tokenize(const reel_clip_model *m, const struct texts *t)
{
    int status = 0;
    int32_t *ids = reel_xmalloc(m->ctx * sizeof *ids);
    reel_buf b = REEL_BUF_INIT;
    for (uint32_t i = 0; i < t->n; i++) {
        int n = reel_clip_model_tokenize(m, t->s[i], t->len[i], ids);
        if (n < 0) {
            text_error(t, i, n);
            status = REEL_EXIT_ERROR;
            continue;
        }
        reel_buf_puts(&b, "{\"text\": ");
        reel_buf_json_string(&b, t->s[i], t->len[i]);
        reel_buf_puts(&b, ", \"ids\": [");
        for (int j = 0; j < n; j++)
            reel_buf_printf(&b, "%s%d", j ? ", " : "", ids[j]);
        reel_buf_puts(&b, "]}\n");
        flush(&b);
    }
    reel_buf_free(&b);
    free(ids);
    return status;
}

/* Embeds every text; rc[i] per text. */
static float *embed_texts(const reel_clip_model *m, const struct texts *t,
                          int *rc)
{
    uint32_t dim = reel_clip_model_dim(m);
    float *e = reel_xmalloc(((size_t)t->n * dim + 1) * sizeof *e);
    reel_clip_model_texts(m, (const char *const *)t->s, t->len, t->n, e, rc);
    return e;
}

static int do_text(const reel_clip_model *m, const struct texts *t)
{
    int status = 0;
    uint32_t dim = reel_clip_model_dim(m);
    int *rc = reel_xcalloc(t->n + 1, sizeof *rc);
    float *e = embed_texts(m, t, rc);
    reel_buf b = REEL_BUF_INIT;
    for (uint32_t i = 0; i < t->n; i++) {
        if (rc[i]) {
            text_error(t, i, rc[i]);
            status = REEL_EXIT_ERROR;
            continue;
        }
        reel_buf_puts(&b, "{\"text\": ");
        reel_buf_json_string(&b, t->s[i], t->len[i]);
        reel_buf_puts(&b, ", \"embedding\": ");
        put_floats(&b, e + (size_t)i * dim, dim);
        reel_buf_puts(&b, "}\n");
        flush(&b);
    }
    reel_buf_free(&b);
    free(e);
    free(rc);
    return status;
}

/* Embeds the readable files, `batch` at a time; ok[i] says which were
 * read. Returns n x dim floats (rows of unreadable files are zeros). */
static float *embed_images(const reel_clip_model *m, char **files, uint32_t n,
                           int *ok, int print)
{
    uint32_t dim = reel_clip_model_dim(m), b = m->batch;
    float *e = reel_xcalloc((size_t)n * dim + 1, sizeof *e);
    reel_image *img = reel_xcalloc(b, sizeof *img);
    uint32_t *which = reel_xmalloc(b * sizeof *which);
    float *tmp = reel_xmalloc((size_t)b * dim * sizeof *tmp);
    reel_buf out = REEL_BUF_INIT;
    for (uint32_t i0 = 0; i0 < n; i0 += b) {
        uint32_t nb = 0;
        for (uint32_t i = i0; i < n && i < i0 + b; i++) {
            reel_diag d;
            reel_diag_clear(&d);
            int rc = reel_image_load(files[i], &img[nb], &d);
            ok[i] = rc == 0;
            if (rc) {
                char msg[512];
                reel_diag_format(&d, msg, sizeof msg);
                if (!strstr(msg, files[i]))
                    fprintf(stderr, "reel clip: %s: %s\n", files[i], msg);
                else
                    fprintf(stderr, "reel clip: %s\n", msg);
                continue;
            }
            which[nb++] = i;
        }
        int rc = nb ? reel_clip_model_images(m, img, nb, tmp) : 0;
        for (uint32_t j = 0; j < nb; j++) {
            uint32_t i = which[j];
            if (rc) {
                fprintf(stderr, "reel clip: %s: %s\n", files[i],
                        reel_strerror(rc));
                ok[i] = 0;
            } else {
                memcpy(e + (size_t)i * dim, tmp + (size_t)j * dim,
                       dim * sizeof *e);
            }
            reel_image_free(&img[j]);
        }
        if (print)
            for (uint32_t i = i0; i < n && i < i0 + b; i++) {
                if (!ok[i])
                    continue;
                reel_buf_puts(&out, "{\"file\": ");
                reel_buf_json_string(&out, files[i], strlen(files[i]));
                reel_buf_puts(&out, ", \"embedding\": ");
                put_floats(&out, e + (size_t)i * dim, dim);
                reel_buf_puts(&out, "}\n");
                flush(&out);
            }
    }
    reel_buf_free(&out);
    free(tmp);
    free(which);
    free(img);
    return e;
}

static int do_image(const reel_clip_model *m, char **files, uint32_t n)
{
    int *ok = reel_xcalloc(n + 1, sizeof *ok), status = 0;
    free(embed_images(m, files, n, ok, 1));
    for (uint32_t i = 0; i < n; i++)
        if (!ok[i])
            status = REEL_EXIT_ERROR;
    free(ok);
    return status;
}

static int do_logits(const reel_clip_model *m, char **files, uint32_t nf,
                     const struct texts *t)
{
    uint32_t dim = reel_clip_model_dim(m);
    int status = 0;
    int *ok = reel_xcalloc(nf + 1, sizeof *ok),
        *rc = reel_xcalloc(t->n + 1, sizeof *rc);
    float *ie = embed_images(m, files, nf, ok, 0);
    float *te = embed_texts(m, t, rc);
    float scale = reel_clip_model_logit_scale(m);
    reel_buf b = REEL_BUF_INIT;
    reel_buf_puts(&b, "{\"images\": [");
    int first = 1;
    for (uint32_t i = 0; i < nf; i++) {
        if (!ok[i]) {
            status = REEL_EXIT_ERROR;
            continue;
        }
        reel_buf_puts(&b, first ? "" : ", ");
        reel_buf_json_string(&b, files[i], strlen(files[i]));
        first = 0;
    }
    reel_buf_puts(&b, "], \"texts\": [");
    first = 1;
    for (uint32_t j = 0; j < t->n; j++) {
        if (rc[j]) {
            text_error(t, j, rc[j]);
            status = REEL_EXIT_ERROR;
            continue;
        }
        reel_buf_puts(&b, first ? "" : ", ");
        reel_buf_json_string(&b, t->s[j], t->len[j]);
        first = 0;
    }
    reel_buf_printf(&b, "], \"logit_scale\": %.9g, \"logits\": [",
                    (double)scale);
    first = 1;
    for (uint32_t i = 0; i < nf; i++) {
        if (!ok[i])
            continue;
        reel_buf_puts(&b, first ? "[" : ", [");
        first = 0;
        int f2 = 1;
        for (uint32_t j = 0; j < t->n; j++) {
            if (rc[j])
                continue;
            double dot = 0;
            for (uint32_t k = 0; k < dim; k++)
                dot +=
                    (double)ie[(size_t)i * dim + k] * te[(size_t)j * dim + k];
            reel_buf_printf(&b, "%s%.9g", f2 ? "" : ", ", (double)scale * dot);
            f2 = 0;
        }
        reel_buf_putc(&b, ']');
    }
    reel_buf_puts(&b, "]}\n");
    flush(&b);
    reel_buf_free(&b);
    free(ie), free(te), free(ok), free(rc);
    return status;
}

int reel_cmd_clip(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        help(stdout);
        return REEL_EXIT_OK;
    }
    if (argc < 2)
        return reel_cmd_usage_error("clip",
                                    "expected tokenize, text, image or logits");
    const char *sub = argv[1];
    enum { TOKENIZE, TEXT, IMAGE, LOGITS } what;
    if (!strcmp(sub, "tokenize"))
        what = TOKENIZE;
    else if (!strcmp(sub, "text"))
        what = TEXT;
    else if (!strcmp(sub, "image"))
        what = IMAGE;
    else if (!strcmp(sub, "logits"))
        what = LOGITS;
    else
        return reel_cmd_usage_error(
            "clip",
            "unknown subcommand '%s' (tokenize, text, image, "
            "logits)",
            sub);
    const char *model_dir = NULL, *text_file = NULL;
    uint64_t batch = 8, threads = 1;
    struct texts t = {0};
    char **files = reel_xcalloc((size_t)argc + 1, sizeof *files);
    uint32_t nf = 0;
    /* positional arguments go to texts (tokenize, text), files (image), or
     * whichever of --image / --text came last (logits) */
    int mode = what == IMAGE    ? 1
               : what == LOGITS ? -1
                                : 0,
        opts_done = 0, status;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!opts_done && a[0] == '-' && a[1] == '-') {
            const char *val = i + 1 < argc ? argv[i + 1] : NULL;
            if (!strcmp(a, "--")) {
                opts_done = 1;
            } else if (!strcmp(a, "--help")) {
                help(stdout);
                status = REEL_EXIT_OK;
                goto out;
            } else if (!strcmp(a, "--image") && what == LOGITS) {
                mode = 1;
            } else if (!strcmp(a, "--text") && what == LOGITS) {
                mode = 0;
            } else if (!strcmp(a, "--clip") && val) {
                model_dir = val, i++;
            } else if (!strcmp(a, "--text-file") && val && what != IMAGE) {
                text_file = val, i++;
            } else if (!strcmp(a, "--batch") && val) {
                if (reel_cmd_parse_u64(val, 1, 1024, &batch)) {
                    status = reel_cmd_usage_error(
                        "clip", "--batch must be in 1..1024, not '%s'", val);
                    goto out;
                }
                i++;
            } else if (!strcmp(a, "--threads") && val) {
                if (reel_cmd_parse_u64(val, 1, 256, &threads)) {
                    status = reel_cmd_usage_error(
                        "clip", "--threads must be in 1..256, not '%s'", val);
                    goto out;
                }
                i++;
            } else {
                status = reel_cmd_usage_error(
                    "clip", "unknown or incomplete option '%s'", a);
                goto out;
            }
            continue;
        }
        if (mode < 0) {
            status = reel_cmd_usage_error(
                "clip", "'%s': say --image or --text first", a);
            goto out;
        }
        if (mode == 1)
            files[nf++] = argv[i];
        else
            add_text(&t, a, strlen(a), NULL);
    }
    if (!model_dir) {
        status = reel_cmd_usage_error("clip", "--clip MODEL_DIR is required");
        goto out;
    }
    if (text_file && (status = read_text_file(text_file, &t)))
        goto out;
    if ((what == IMAGE || what == LOGITS) && !nf) {
        status = reel_cmd_usage_error("clip", "no image files");
        goto out;
    }
    if (what != IMAGE && !t.n) {
        status =
            reel_cmd_usage_error("clip", "no texts (arguments or --text-file)");
        goto out;
    }
    reel_clip_model *m;
    reel_diag d;
    reel_diag_clear(&d);
    int rc = reel_clip_model_open(model_dir, &m, &d);
    if (rc) {
        status = reel_cmd_fail_diag("clip", &d);
        goto out;
    }
    reel_clip_model_set_batch(m, (uint32_t)batch);
    reel_clip_set_threads((int)threads);
    switch (what) {
    case TOKENIZE:
        status = do_tokenize(m, &t);
        break;
    case TEXT:
        status = do_text(m, &t);
        break;
    case IMAGE:
        status = do_image(m, files, nf);
        break;
    case LOGITS:
        status = do_logits(m, files, nf, &t);
        break;
    }
    reel_clip_model_free(m);
out:
    fflush(stdout);
    free_texts(&t);
    free(files);
    return status;
}
