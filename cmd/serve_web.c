/*
 * The dashboard's side of `reel serve` (issue 9): the page itself (the
 * files of web/, embedded in the binary at build time by web/embed.cmake),
 * the catalogue listing its browser pages through (GET /v1/videos) and the
 * key-frame thumbnails `reel embed --clip` left in DIR/thumbs (GET
 * /thumbs/{id}/{file}, docs/formats/frames.md). Every route here reads:
 * nothing changes the engine's state, so none needs the bearer token.
 *
 * The handlers run on the server's loop threads. They read the engine
 * through its public calls (each takes the engine's read lock) and read
 * small files (a thumbnail, an index of at most 64 lines) from DIR
 * directly: bounded, and in the page cache after the first look.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "api/http.h"
#include "base/arena.h"
#include "base/strs.h"
#include "cmd.h"
#include "data/dataset.h"
#include "reco/engine.h"

enum {
    DEFAULT_LIMIT = 50,
    MAX_LIMIT = 500,    /* larger ?limit= are capped */
    MAX_QUERY = 256,    /* bytes of ?q= */
    CHUNK = 1024,       /* titles read per engine call while searching */
    MAX_THUMBS = 64,    /* lines of a frames.tsv (the writer's bound) */
    MAX_TSV = 1 << 16,  /* bytes of a frames.tsv */
    MAX_FILE = 8 << 20, /* bytes of a thumbnail */
    MAX_WEB_FILES = 64
};

/* One server per process: the routes share this context, filled before
 * the server starts and only read afterwards. */
static struct {
    reel_engine *en;
    const char *dir;
    char etag[MAX_WEB_FILES][24];
} web;

/* Answers 304 when the request's If-None-Match names etag (the client's
 * copy is current); otherwise adds the ETag header and returns 0. */
static int not_modified(const reel_http_req *req, reel_http_resp *resp,
                        const char *etag, const char *cache)
{
    reel_http_resp_header(resp, "ETag", etag);
    reel_http_resp_header(resp, "Cache-Control", cache);
    const char *inm = reel_http_req_header(req, "If-None-Match");
    if (!inm || !strstr(inm, etag))
        return 0;
    resp->status = 304;
    resp->content_type = NULL;
    reel_buf_reset(&resp->body);
    return 1;
}

/* ------------------------------------------------------------ web files */

static const char *content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".json", "application/json"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(dot, types[i].ext))
            return types[i].type;
    return "application/octet-stream";
}

static int h_static(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    const char *name = strcmp(req->path, "/") ? req->path + 1 : "index.html";
    size_t f = 0;
    while (f < reel_cmd_web_n && strcmp(reel_cmd_web_names[f], name))
        f++;
    if (f == reel_cmd_web_n) /* a route for every file: cannot happen */
        return REEL_ENOENT;
    resp->content_type = content_type(name);
    reel_http_resp_header(resp, "X-Content-Type-Options", "nosniff");
    /* The page loads nothing from elsewhere (no CDN) and talks only to
     * this server. */
    reel_http_resp_header(resp, "Content-Security-Policy",
                          "default-src 'self'; img-src 'self' data:; "
                          "object-src 'none'; base-uri 'none'; "
                          "frame-ancestors 'none'");
    /* Revalidated on every load: a new binary serves a new page. */
    if (not_modified(req, resp, web.etag[f], "no-cache"))
        return 0;
    reel_buf_append(&resp->body, reel_cmd_web_data[f], reel_cmd_web_sizes[f]);
    return 0;
}

/* ------------------------------------------------------------ thumbnails */

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Skips 1..max digits at *p; 0 when there are fewer than min. */
static int digits(const char **p, int min, int max)
{
    int n = 0;
    while (n < max && is_digit(**p)) {
        (*p)++;
        n++;
    }
    return n >= min && !is_digit(**p);
}

/* A file name a thumbnail directory may hold: kfNNN_Tms.jpg (NNN: 3..6
 * digits, T: an optional '-' and 1..19 digits) or frames.tsv. Nothing
 * else, so a name cannot leave the directory. */
static int thumb_name_ok(const char *s)
{
    if (!strcmp(s, "frames.tsv"))
        return 1;
    const char *p = s;
    if (strncmp(p, "kf", 2))
        return 0;
    p += 2;
    if (!digits(&p, 3, 6) || *p++ != '_')
        return 0;
    if (*p == '-')
        p++;
    return digits(&p, 1, 19) && !strcmp(p, "ms.jpg");
}

/* DIR/thumbs/ID/name into out; 0 when it might not fit (an escaped id
 * takes at most three bytes per byte). */
static int thumb_path(const char *id, const char *name, char *out, size_t cap)
{
    if (strlen(web.dir) + strlen("/thumbs/") + 3 * strlen(id) + 1 +
            strlen(name) + 1 >
        cap)
        return 0;
    reel_cmd_thumb_dir(web.dir, id, out, cap);
    size_t n = strlen(out);
    snprintf(out + n, cap - n, "/%s", name);
    return 1;
}

/* Reads a regular file of at most max bytes into b; fills *st. */
static int read_file(const char *path, size_t max, reel_buf *b, struct stat *st)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR || errno == ELOOP
                   ? REEL_ENOENT
                   : REEL_EIO;
    int rc = 0;
    if (fstat(fd, st) || !S_ISREG(st->st_mode))
        rc = REEL_ENOENT;
    else if ((uint64_t)st->st_size > max)
        rc = REEL_ETOOBIG;
    size_t left = rc ? 0 : (size_t)st->st_size;
    reel_buf_reserve(b, left);
    while (left) {
        ssize_t got = read(fd, b->data + b->len, left);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            rc = REEL_EIO; /* an error, or the file shrank under us */
            break;
        }
        b->len += (size_t)got;
        left -= (size_t)got;
    }
    if (b->data)
        b->data[b->len] = '\0';
    close(fd);
    return rc;
}

static int h_thumb(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    const char *id = reel_http_req_param(req, "id");
    const char *name = reel_http_req_param(req, "file");
    char path[8192];
    struct stat st;
    if (strlen(id) > REEL_MAX_ID_LEN || !thumb_name_ok(name) ||
        !thumb_path(id, name, path, sizeof path) ||
        read_file(path, MAX_FILE, &resp->body, &st)) {
        reel_buf_reset(&resp->body);
        reel_http_resp_error(resp, 404, "no such thumbnail");
        return 0;
    }
    int tsv = !strcmp(name, "frames.tsv");
    resp->content_type =
        tsv ? "text/tab-separated-values; charset=utf-8" : "image/jpeg";
    reel_http_resp_header(resp, "X-Content-Type-Options", "nosniff");
    /* A later `reel embed` may rewrite a file under the same name: the
     * tag changes with its size and time. */
    char etag[64];
    snprintf(etag, sizeof etag, "\"%llx-%llx.%lx\"",
             (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec,
             (unsigned long)st.st_mtim.tv_nsec);
    not_modified(req, resp, etag, tsv ? "no-cache" : "public, max-age=3600");
    return 0;
}

/* The thumbnails of a video from its frames.tsv, as [{"file", "ts"}]: an
 * empty array when there is none or it is malformed (the listing still
 * answers; the page shows no pictures). */
static json_t *thumbs_json(const char *id)
{
    json_t *arr = json_array();
    char path[8192];
    struct stat st;
    reel_buf b = REEL_BUF_INIT;
    if (!thumb_path(id, "frames.tsv", path, sizeof path) ||
        read_file(path, MAX_TSV, &b, &st) || !b.data ||
        strncmp(b.data, "# reel frames 1\n", 16)) {
        reel_buf_free(&b);
        return arr;
    }
    char *line = b.data, *end = b.data + b.len;
    while (line < end && json_array_size(arr) < MAX_THUMBS) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl)
            break; /* a line must end */
        *nl = '\0';
        char *tab = strchr(line, '\t');
        if (line[0] != '#' && tab) {
            *tab = '\0';
            char *e;
            errno = 0;
            double ts = strtod(tab + 1, &e);
            if (thumb_name_ok(line) && e != tab + 1 && !errno && isfinite(ts) &&
                (*e == '\t' || *e == '\0'))
                json_array_append_new(
                    arr, json_pack("{s:s, s:f}", "file", line, "ts", ts));
        }
        line = nl + 1;
    }
    reel_buf_free(&b);
    return arr;
}

/* -------------------------------------------------------------- listing */

/* A query argument as a whole number in [min, max], max when above it,
 * def when absent; -1 when malformed. */
static long long arg_num(const reel_http_req *req, const char *name,
                         long long def, uint64_t min, uint64_t max)
{
    const char *s = reel_http_req_arg(req, name);
    if (!s)
        return def;
    uint64_t v;
    if (reel_cmd_parse_u64(s, min, UINT64_MAX, &v))
        return -1;
    return v > max ? (long long)max : (long long)v;
}

/* A video of the page being answered. */
struct hit {
    const char *id, *title;
};

/* Searches the titles of videos [0, n) for q (ASCII letters in any case)
 * and keeps matches [offset, offset + limit) in hits; returns how many
 * match. Titles are read CHUNK at a time so the scratch memory stays
 * small whatever the catalogue's size. */
static uint64_t search(const char *q, uint64_t n, uint64_t offset,
                       uint32_t limit, reel_arena *a, struct hit *hits,
                       uint32_t *n_hits)
{
    reel_arena scratch;
    reel_arena_init(&scratch, 1 << 16);
    uint32_t v[CHUNK];
    const char *id[CHUNK], *title[CHUNK];
    uint64_t total = 0;
    for (uint64_t at = 0; at < n; at += CHUNK) {
        uint32_t m = n - at < CHUNK ? (uint32_t)(n - at) : CHUNK;
        for (uint32_t i = 0; i < m; i++)
            v[i] = (uint32_t)(at + i);
        reel_engine_video_names(web.en, v, m, &scratch, id, title);
        for (uint32_t i = 0; i < m; i++) {
            if (!id[i] || !title[i] || !strcasestr(title[i], q))
                continue;
            if (total++ >= offset && *n_hits < limit)
                hits[(*n_hits)++] = (struct hit){
                    reel_arena_strndup(a, id[i], strlen(id[i])),
                    reel_arena_strndup(a, title[i], strlen(title[i]))};
        }
        reel_arena_reset(&scratch);
    }
    reel_arena_free(&scratch);
    return total;
}

static int h_videos(const reel_http_req *req, reel_http_resp *resp, void *ctx)
{
    long long offset = arg_num(req, "offset", 0, 0, UINT32_MAX);
    long long limit = arg_num(req, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT);
    const char *q = reel_http_req_arg(req, "q");
    if (offset < 0 || limit < 0) {
        reel_http_resp_error(resp, 400,
                             offset < 0 ? "offset must be a whole number"
                                        : "limit must be a whole number >= 1");
        return 0;
    }
    if (q && strlen(q) > MAX_QUERY) {
        reel_http_resp_error(resp, 400, "q is at most 256 bytes");
        return 0;
    }
    reel_engine_stats st;
    reel_engine_get_stats(web.en, &st);
    reel_arena *a = req->arena;
    struct hit *hits = reel_arena_alloc(a, (size_t)limit * sizeof *hits, 8);
    uint32_t n_hits = 0;
    uint64_t total;
    if (q && *q) {
        total = search(q, st.videos, (uint64_t)offset, (uint32_t)limit, a, hits,
                       &n_hits);
    } else {
        /* The catalogue's own order: dense numbers from offset on. */
        total = st.videos;
        uint64_t from = (uint64_t)offset < total ? (uint64_t)offset : total;
        uint64_t left = total - from;
        uint32_t m =
            (uint32_t)(left < (uint64_t)limit ? left : (uint64_t)limit);
        uint32_t *v = reel_arena_alloc(a, ((size_t)m + 1) * sizeof *v, 4);
        const char **id = reel_arena_alloc(a, ((size_t)m + 1) * sizeof *id, 8);
        const char **title =
            reel_arena_alloc(a, ((size_t)m + 1) * sizeof *title, 8);
        for (uint32_t i = 0; i < m; i++)
            v[i] = (uint32_t)(from + i);
        reel_engine_video_names(web.en, v, m, a, id, title);
        for (uint32_t i = 0; i < m; i++)
            if (id[i])
                hits[n_hits++] = (struct hit){id[i], title[i]};
    }
    json_t *items = json_array();
    for (uint32_t i = 0; i < n_hits; i++) {
        reel_video_rec r;
        int deleted = 0, has_vec = 0;
        json_t *cats = json_array();
        if (!reel_engine_video_get(web.en, hits[i].id, a, &r, &deleted,
                                   &has_vec))
            for (size_t c = 0; c < r.n_categories; c++)
                json_array_append_new(cats,
                                      reel_cmd_str_or_null(r.categories[c]));
        json_array_append_new(
            items,
            json_pack("{s:o, s:o, s:o, s:b, s:o}", "video",
                      reel_cmd_str_or_null(hits[i].id), "title",
                      reel_cmd_str_or_null(hits[i].title), "categories", cats,
                      "deleted", deleted, "thumbs", thumbs_json(hits[i].id)));
    }
    reel_cmd_send_json(resp, 200,
                       json_pack("{s:I, s:I, s:I, s:o}", "total",
                                 (json_int_t)total, "offset",
                                 (json_int_t)offset, "limit", (json_int_t)limit,
                                 "items", items));
    return 0;
}

/* ---------------------------------------------------------------- routes */

int reel_cmd_web_routes(struct reel_http_server *http, struct reel_engine *en,
                        const char *dir)
{
    if (reel_cmd_web_n > MAX_WEB_FILES)
        return REEL_ETOOBIG;
    web.en = en;
    web.dir = dir;
    int rc;
    if ((rc = reel_http_route(http, "GET", "/v1/videos", h_videos, NULL)) ||
        (rc = reel_http_route(http, "GET", "/thumbs/{id}/{file}", h_thumb,
                              NULL)))
        return rc;
    for (size_t f = 0; f < reel_cmd_web_n; f++) {
        const char *name = reel_cmd_web_names[f];
        snprintf(web.etag[f], sizeof web.etag[f], "\"%016llx\"",
                 (unsigned long long)reel_hash_bytes(reel_cmd_web_data[f],
                                                     reel_cmd_web_sizes[f]));
        char pattern[128];
        snprintf(pattern, sizeof pattern, "/%s", name);
        if ((rc = reel_http_route(http, "GET", pattern, h_static, NULL)))
            return rc;
        if (!strcmp(name, "index.html") &&
            (rc = reel_http_route(http, "GET", "/", h_static, NULL)))
            return rc;
    }
    return 0;
}
