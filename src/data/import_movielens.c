/*
 * MovieLens importer: the classic ml-100k files and the ml-latest CSVs
 * (docs/formats/movielens.md says how each field maps to reel's model).
 *
 * Movies are read first and kept here (ids, cleaned titles, genres, dates)
 * until the optional tags file has been read, because a video's tags must
 * be known when it is added to the builder; then every movie is added,
 * then the ratings stream straight into events. Nothing is allocated per
 * line: fields are views into the line reader's buffer, and the few
 * strings that must be NUL-terminated go through reused scratch buffers.
 */
#include "data/import.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/lines.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/progress.h"
#include "base/strs.h"

enum {
    MAX_FIELDS = 64,  /* more than any MovieLens file has */
    MAX_GENRES = 58,  /* u.item's genre flags, so its fields fit the above */
    N_WARN = 5,       /* skipped lines logged one by one */
    MAX_ALTS = 8,     /* parenthesised alternative titles looked at */
    PATH_CAP = 4096,  /* a data file's path */
    SHOW = 40,        /* bytes of a bad field quoted in a message */
    TICK_EVERY = 4096 /* records between progress updates */
};

/* The latest Unix time accepted: 9999-12-31T23:59:59Z. */
#define MAX_TS 253402300799ULL

/*
 * reel_diag.file is borrowed, and the readers' own path strings die with
 * them before the import returns, so the failing file's path is copied
 * here. It stays valid until the next MovieLens import on this thread.
 */
static _Thread_local char diag_file[PATH_CAP];

/* The genres of ml-100k when there is no u.genre, in flag order. */
static const char *const std_genres[] = {
    "unknown",   "Action",   "Adventure",   "Animation", "Children's",
    "Comedy",    "Crime",    "Documentary", "Drama",     "Fantasy",
    "Film-Noir", "Horror",   "Musical",     "Mystery",   "Romance",
    "Sci-Fi",    "Thriller", "War",         "Western",
};

/* Articles MovieLens moves to the end of a title ("Matrix, The"). */
static const char *const articles[] = {
    "The", "A",   "An",  "Les", "La",   "Le",  "L'",  "Il",
    "El",  "Das", "Der", "Die", "Los",  "Las", "Un",  "Une",
    "Una", "Lo",  "Gli", "Ein", "Eine", "Det", "Den", "Het",
};

/* Movies read so far, by ordinal: the order of their first line. */
typedef struct movies {
    reel_intern id;    /* put: movie id -> ordinal */
    reel_intern title; /* push: cleaned titles */
    reel_intern genre; /* put: genre names */
    double *pub;
    uint64_t *line;    /* where each was defined, for late errors */
    uint32_t *gen_off; /* genres of movie i: gen[gen_off[i]..gen_off[i+1]) */
    uint32_t *gen;
    size_t cap, cap_off, n_gen, cap_gen;
    uint32_t *vidx; /* builder index of movie i; REEL_NONE when skipped */
} movies;

/* Tags as (movie ordinal, tag id) pairs in file order. */
typedef struct tagpairs {
    reel_intern tag; /* put: lowercased tags */
    uint32_t *movie, *tag_id;
    size_t n, cap_movie, cap_tag;
    uint64_t n_ignored; /* longer than a tag may be */
} tagpairs;

typedef struct ctx {
    reel_dsbuild *b;
    int skip_bad;
    reel_import_report *r;
    reel_diag *d;
    const char *dir;
    char path[PATH_CAP]; /* the file being read */
    uint64_t n_warned;
    reel_progress prog;
    uint64_t done_bytes; /* bytes of the files already read */
    uint64_t n_records;
    movies m;
    tagpairs t;
    uint32_t g100[MAX_GENRES]; /* ml-100k flag -> genre id or REEL_NONE */
    size_t n_g100;
    reel_buf tmp, title, strs;
} ctx;

/* One input file read record by record. */
typedef struct src {
    reel_lines *lr;
    int csv;
    char sep;
    reel_field f[MAX_FIELDS];
    size_t nf;     /* MAX_FIELDS + 1 when a line had more */
    uint64_t line; /* first line of the current record */
} src;

/* ================================================================ errors */

/* Control bytes quoted from garbage input must not reach a terminal. */
static void defang(char *msg)
{
    for (; *msg; msg++)
        if ((unsigned char)*msg < 0x20 || *msg == 0x7F)
            *msg = '?';
}

/* Fails the import at path:line (line 0: the file as a whole). */
static int fail(ctx *c, uint64_t line, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(ctx *c, uint64_t line, int err, const char *fmt, ...)
{
    if (c->d) {
        snprintf(diag_file, sizeof diag_file, "%s", c->path);
        c->d->file = diag_file;
        c->d->line = line;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->d->msg, sizeof c->d->msg, fmt, ap);
        va_end(ap);
        defang(c->d->msg);
    }
    return err;
}

/*
 * A malformed record: with skip_bad it is counted (the first few logged)
 * and 0 is returned so the caller moves on; otherwise the import fails.
 */
static int bad(ctx *c, uint64_t line, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int bad(ctx *c, uint64_t line, int err, const char *fmt, ...)
{
    char msg[sizeof c->d->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    defang(msg);
    if (!c->skip_bad)
        return fail(c, line, err, "%s", msg);
    c->r->n_skipped++;
    if (c->n_warned++ < N_WARN)
        reel_log_warn("%s:%llu: %s (skipped)", c->path,
                      (unsigned long long)line, msg);
    return 0;
}

/* At most SHOW bytes of a field, for messages ("%.*s"). */
static int show(const reel_field *f)
{
    return f->len > SHOW ? SHOW : (int)f->len;
}

/* ================================================================ files */

static int set_path(ctx *c, const char *name)
{
    int n = snprintf(c->path, sizeof c->path, "%s/%s", c->dir, name);
    if (n < 0 || (size_t)n >= sizeof c->path) {
        c->path[0] = '\0';
        if (c->d) {
            c->d->file = NULL;
            c->d->line = 0;
        }
        return reel_diag_fail(c->d, REEL_ETOOBIG, "path too long: %s/%s",
                              c->dir, name);
    }
    return 0;
}

static int is_file(const char *dir, const char *name)
{
    char p[PATH_CAP];
    int n = snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    return n > 0 && (size_t)n < sizeof p && stat(p, &st) == 0 &&
           !S_ISDIR(st.st_mode);
}

static uint64_t file_size(const char *dir, const char *name)
{
    char p[PATH_CAP];
    int n = snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    if (n > 0 && (size_t)n < sizeof p && stat(p, &st) == 0 &&
        S_ISREG(st.st_mode))
        return (uint64_t)st.st_size;
    return 0;
}

enum reel_movielens_layout reel_movielens_detect(const char *dir)
{
    if (is_file(dir, "ratings.csv") && is_file(dir, "movies.csv"))
        return REEL_ML_LATEST;
    if (is_file(dir, "u.data") && is_file(dir, "u.item") &&
        is_file(dir, "u.user"))
        return REEL_ML_100K;
    return REEL_ML_NONE;
}

static int src_open(ctx *c, src *s, const char *name, int csv, char sep)
{
    memset(s, 0, sizeof *s);
    s->csv = csv;
    s->sep = sep;
    int rc = set_path(c, name);
    if (rc)
        return rc;
    reel_diag ld;
    reel_diag_clear(&ld);
    rc = reel_lines_open(c->path, 0, &s->lr, &ld);
    return rc ? fail(c, 0, rc, "%s", ld.msg) : 0;
}

static void src_close(ctx *c, src *s)
{
    if (s->lr)
        c->done_bytes += reel_lines_offset(s->lr);
    reel_lines_close(s->lr);
    s->lr = NULL;
}

/*
 * The next non-blank record: 1, 0 at the end, or a negative error. A CSV
 * record the reader cannot parse is a bad record (the reader has moved
 * past it); other reader errors (a line over the limit, I/O) are fatal.
 */
static int src_next(ctx *c, src *s)
{
    for (;;) {
        reel_diag ld;
        reel_diag_clear(&ld);
        int rc;
        if (s->csv) {
            uint64_t first = reel_lines_lineno(s->lr) + 1;
            rc = reel_csv_next(s->lr, s->sep, s->f, MAX_FIELDS, &s->nf, &ld);
            if (rc == 1 && s->nf == 1 && s->f[0].len == 0)
                continue;
            /* The reader stops where the field got too long, which can be
             * far from the stray quote that opened it. */
            if (rc == REEL_ETOOBIG && ld.line != first)
                return fail(c, first, rc,
                            "a quoted field opened here runs past %d bytes "
                            "(an unbalanced quote?)",
                            REEL_LINES_DEFAULT_MAX);
        } else {
            const char *line;
            size_t len;
            rc = reel_lines_next(s->lr, &line, &len, &ld);
            if (rc == 1 && len == 0)
                continue;
            if (rc == 1)
                s->nf = reel_split(line, len, s->sep, s->f, MAX_FIELDS);
        }
        if (rc == 0)
            return 0;
        if (rc == REEL_EFORMAT && s->csv) {
            c->r->n_lines++;
            rc = bad(c, ld.line, rc, "%s", ld.msg);
            if (rc)
                return rc;
            continue;
        }
        if (rc < 0)
            return fail(c, ld.line, rc, "%s", ld.msg);
        s->line = s->csv ? ld.line : reel_lines_lineno(s->lr);
        c->r->n_lines++;
        if (++c->n_records % TICK_EVERY == 0)
            reel_progress_set(&c->prog,
                              c->done_bytes + reel_lines_offset(s->lr));
        return 1;
    }
}

static int same_name(const reel_field *f, const char *name)
{
    size_t n = strlen(name);
    if (f->len != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char a = f->p[i], b = name[i];
        if (a >= 'A' && a <= 'Z')
            a = (char)(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z')
            b = (char)(b - 'A' + 'a');
        if (a != b)
            return 0;
    }
    return 1;
}

/*
 * Reads and checks a CSV header. A wrong header means a wrong file, not a
 * bad line, so it fails even with skip_bad. Case is ignored and a UTF-8
 * byte order mark is allowed, as spreadsheet programs write them.
 */
static int src_header(ctx *c, src *s, const char *const *names, size_t n,
                      const char *expect)
{
    reel_diag ld;
    reel_diag_clear(&ld);
    int rc = reel_csv_next(s->lr, ',', s->f, MAX_FIELDS, &s->nf, &ld);
    if (rc < 0)
        return fail(c, ld.line, rc, "%s", ld.msg);
    if (rc == 0)
        return fail(c, 1, REEL_EFORMAT, "empty file; expected the header %s",
                    expect);
    if (s->nf && s->f[0].len >= 3 && !memcmp(s->f[0].p, "\xEF\xBB\xBF", 3)) {
        s->f[0].p += 3;
        s->f[0].len -= 3;
    }
    int ok = s->nf == n;
    for (size_t i = 0; ok && i < n; i++)
        ok = same_name(&s->f[i], names[i]);
    if (!ok)
        return fail(c, ld.line, REEL_EFORMAT, "expected the header %s", expect);
    return 0;
}

/* ================================================================ values */

/* A decimal integer of 1..18 digits and nothing else. */
static int parse_uint(const reel_field *f, uint64_t *out)
{
    if (f->len == 0 || f->len > 18)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < f->len; i++) {
        unsigned char ch = (unsigned char)f->p[i];
        if (ch < '0' || ch > '9')
            return -1;
        v = v * 10 + (ch - '0');
    }
    *out = v;
    return 0;
}

/* "4", "4.0", "0.5": digits with an optional fraction, nothing else.
 * MovieLens writes ratings this way; exponents and signs are refused. */
static int parse_decimal(const reel_field *f, double *out)
{
    if (f->len == 0 || f->len > 16)
        return -1;
    size_t i = 0;
    uint64_t ip = 0, frac = 0, scale = 1;
    while (i < f->len && f->p[i] >= '0' && f->p[i] <= '9')
        ip = ip * 10 + (uint64_t)(f->p[i++] - '0');
    if (i == 0)
        return -1;
    if (i < f->len && f->p[i] == '.') {
        size_t start = ++i;
        while (i < f->len && f->p[i] >= '0' && f->p[i] <= '9') {
            frac = frac * 10 + (uint64_t)(f->p[i++] - '0');
            scale *= 10;
        }
        if (i == start)
            return -1;
    }
    if (i != f->len)
        return -1;
    *out = (double)ip + (double)frac / (double)scale;
    return 0;
}

static int check_id(ctx *c, const src *s, const reel_field *f, const char *what)
{
    uint64_t v;
    if (parse_uint(f, &v))
        return bad(c, s->line, REEL_EFORMAT, "%s \"%.*s\" is not an integer",
                   what, show(f), f->p);
    return 1;
}

static int parse_ts(ctx *c, const src *s, const reel_field *f, double *ts)
{
    uint64_t v;
    if (parse_uint(f, &v) || v > MAX_TS)
        return bad(c, s->line, REEL_EFORMAT,
                   "timestamp \"%.*s\" is not Unix seconds", show(f), f->p);
    *ts = (double)v;
    return 1;
}

/* "01-Jan-1995" as Unix time at UTC midnight. */
static int parse_date(const reel_field *f, double *out)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (f->len != 11 || f->p[2] != '-' || f->p[6] != '-')
        return -1;
    reel_field dd = {f->p, 2}, yy = {f->p + 7, 4};
    uint64_t day, year;
    if (parse_uint(&dd, &day) || parse_uint(&yy, &year) || year < 1000)
        return -1;
    int month = 0;
    for (int k = 0; k < 12; k++)
        if (!memcmp(f->p + 3, months + 3 * k, 3))
            month = k + 1;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (!month || day < 1 || (int)day > mdays[month - 1] ||
        (month == 2 && !leap && day == 29))
        return -1;
    *out = reel_clock_from_civil((int)year, month, (int)day);
    return 0;
}

/* ================================================================ text */

static int is_space(char ch)
{
    return ch == ' ' || ch == '\t';
}

static void trim(const char **p, size_t *len)
{
    while (*len && is_space(**p)) {
        (*p)++;
        (*len)--;
    }
    while (*len && is_space((*p)[*len - 1]))
        (*len)--;
}

static int utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = reel_utf8_seq(p + i, n - i);
        if (!k)
            return 0;
        i += k;
    }
    return 1;
}

/* Windows-1252's characters at 0x80..0x9F (0: undefined there), which
 * files labelled ISO-8859-1 often really contain. */
static const uint16_t cp1252[32] = {
    0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
    0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0,      0x017D, 0,
    0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178,
};

static void put_cp(reel_buf *out, uint32_t cp)
{
    if (cp < 0x80) {
        reel_buf_putc(out, (char)cp);
    } else if (cp < 0x800) {
        reel_buf_putc(out, (char)(0xC0 | cp >> 6));
        reel_buf_putc(out, (char)(0x80 | (cp & 0x3F)));
    } else {
        reel_buf_putc(out, (char)(0xE0 | cp >> 12));
        reel_buf_putc(out, (char)(0x80 | (cp >> 6 & 0x3F)));
        reel_buf_putc(out, (char)(0x80 | (cp & 0x3F)));
    }
}

/*
 * Appends text as UTF-8: kept as it is when it already is valid UTF-8
 * (someone may have converted u.item), otherwise read as Latin-1. Tabs and
 * line breaks (a quoted CSV field may span lines) become spaces; other
 * control characters are dropped: no title or tag needs one, and a NUL
 * would cut the string short in the builder.
 */
static void put_text(reel_buf *out, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    int utf8 = utf8_valid(s, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = p[i];
        if (ch == '\t' || ch == '\n' || ch == '\r')
            reel_buf_putc(out, ' ');
        else if (ch < 0x20 || ch == 0x7F)
            continue;
        else if (ch < 0x80 || utf8)
            reel_buf_putc(out, (char)ch);
        else if (ch < 0xA0)
            put_cp(out, cp1252[ch - 0x80] ? cp1252[ch - 0x80] : ch);
        else
            put_cp(out, ch);
    }
}

/* Lowercases ASCII and the Latin-1 letters (U+00C0..U+00DE but U+00D7)
 * of UTF-8 text in place; tags differ in case only by accident. */
static void lower_utf8(char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 'A' && ch <= 'Z') {
            s[i] = (char)(ch + 32);
        } else if (ch == 0xC3 && i + 1 < n) {
            unsigned char nx = (unsigned char)s[i + 1];
            if (nx >= 0x80 && nx <= 0x9E && nx != 0x97)
                s[i + 1] = (char)(nx + 32);
            i++;
        }
    }
}

/* The '(' matching the ')' that ends s[0..len), or -1. */
static long open_paren(const char *s, size_t len)
{
    int depth = 0;
    for (size_t i = len; i-- > 0;) {
        if (s[i] == ')')
            depth++;
        else if (s[i] == '(' && --depth == 0)
            return (long)i;
    }
    return -1;
}

/* The year of "1995" or of a range "1975-1979" / "2016– ", or 0. */
static int year_of(const char *s, size_t len)
{
    if (len < 4 || s[0] < '1' || s[0] > '9')
        return 0;
    int y = 0;
    for (size_t i = 0; i < 4; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        y = y * 10 + (s[i] - '0');
    }
    for (size_t i = 4; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        /* Digits, '-', spaces and the bytes of an en dash (E2 80 93). */
        if (!(ch >= '0' && ch <= '9') && ch != '-' && ch != ' ' && ch != 0xE2 &&
            ch != 0x80 && ch != 0x93)
            return 0;
    }
    return y;
}

/* 1 when s ends with ", <article>"; *rest is the length before it. */
static int article_suffix(const char *s, size_t len, const char **art,
                          size_t *rest)
{
    for (size_t k = 0; k < sizeof articles / sizeof *articles; k++) {
        size_t al = strlen(articles[k]);
        if (len > al + 2 && s[len - al - 2] == ',' && s[len - al - 1] == ' ' &&
            !memcmp(s + len - al, articles[k], al)) {
            *art = articles[k];
            *rest = len - al - 2;
            while (*rest && is_space(s[*rest - 1]))
                (*rest)--;
            return *rest > 0;
        }
    }
    return 0;
}

/* Appends the article, then the rest of a title it was moved from. */
static void put_moved(reel_buf *out, const char *art, const char *s, size_t len)
{
    reel_buf_puts(out, art);
    if (art[strlen(art) - 1] != '\'')
        reel_buf_putc(out, ' ');
    reel_buf_append(out, s, len);
}

/*
 * "Matrix, The" -> "The Matrix"; "Atalante, L'" -> "L'Atalante"; and
 * before a subtitle: "Librarian, The: The Curse of the Judas Chalice" ->
 * "The Librarian: The Curse of the Judas Chalice".
 */
static void put_fixed(reel_buf *out, const char *s, size_t len)
{
    const char *art;
    size_t rest;
    if (article_suffix(s, len, &art, &rest)) {
        put_moved(out, art, s, rest);
        return;
    }
    const char *colon = memchr(s, ':', len);
    if (colon && article_suffix(s, (size_t)(colon - s), &art, &rest)) {
        put_moved(out, art, s, rest);
        reel_buf_append(out, colon, len - (size_t)(colon - s));
        return;
    }
    reel_buf_append(out, s, len);
}

/*
 * Fixes the article of an alternative title ("Cité des enfants perdus,
 * La") when it is simple: no parentheses inside, where moving a word
 * could cross a nesting level. An "a.k.a. " note stays in front.
 */
static void put_alt(reel_buf *out, const char *s, size_t len)
{
    if (memchr(s, '(', len) || memchr(s, ')', len)) {
        reel_buf_append(out, s, len);
        return;
    }
    if (len > 7 && !memcmp(s, "a.k.a. ", 7)) {
        reel_buf_append(out, s, 7);
        s += 7;
        len -= 7;
    }
    put_fixed(out, s, len);
}

/*
 * Cleans a MovieLens title (UTF-8) into out and returns its year, or 0:
 * "City of Lost Children, The (Cité des enfants perdus, La) (1995)" ->
 * "The City of Lost Children (La Cité des enfants perdus)", 1995.
 */
static int clean_title(const char *s, size_t len, reel_buf *out)
{
    reel_buf_reset(out);
    trim(&s, &len);
    int year = 0;
    if (len && s[len - 1] == ')') {
        long o = open_paren(s, len);
        if (o > 0) {
            year = year_of(s + o + 1, len - (size_t)o - 2);
            if (year) {
                len = (size_t)o;
                trim(&s, &len);
            }
        }
    }
    size_t at[MAX_ALTS], n_at[MAX_ALTS];
    int n_alt = 0;
    while (n_alt < MAX_ALTS && len && s[len - 1] == ')') {
        long o = open_paren(s, len);
        if (o <= 0 || !is_space(s[o - 1]))
            break;
        at[n_alt] = (size_t)o + 1;
        n_at[n_alt] = len - (size_t)o - 2;
        n_alt++;
        len = (size_t)o;
        trim(&s, &len);
    }
    put_fixed(out, s, len);
    for (int k = n_alt; k-- > 0;) {
        const char *a = s + at[k];
        size_t al = n_at[k];
        trim(&a, &al);
        reel_buf_puts(out, " (");
        put_alt(out, a, al);
        reel_buf_putc(out, ')');
    }
    return year;
}

/* ================================================================ movies */

static void ctx_init(ctx *c)
{
    memset(c, 0, sizeof *c);
    reel_intern_init(&c->m.id);
    reel_intern_init(&c->m.title);
    reel_intern_init(&c->m.genre);
    reel_intern_init(&c->t.tag);
    REEL_GROW(c->m.gen_off, c->m.cap_off, 1);
    c->m.gen_off[0] = 0;
    /* Reserved so that their data is a string even before any append. */
    reel_buf_reserve(&c->tmp, 256);
    reel_buf_reserve(&c->title, 256);
    reel_buf_reserve(&c->strs, 256);
}

static void ctx_free(ctx *c)
{
    reel_intern_free(&c->m.id);
    reel_intern_free(&c->m.title);
    reel_intern_free(&c->m.genre);
    free(c->m.pub);
    free(c->m.line);
    free(c->m.gen_off);
    free(c->m.gen);
    free(c->m.vidx);
    reel_intern_free(&c->t.tag);
    free(c->t.movie);
    free(c->t.tag_id);
    reel_buf_free(&c->tmp);
    reel_buf_free(&c->title);
    reel_buf_free(&c->strs);
}

/* Records a movie whose fields were all validated; the title is in
 * c->title. */
static void movie_push(ctx *c, const reel_field *id, double pub,
                       const uint32_t *gen, size_t n_gen, uint64_t line)
{
    movies *m = &c->m;
    int is_new;
    uint32_t i = reel_intern_put(&m->id, id->p, id->len, &is_new);
    assert(is_new);
    reel_intern_push(&m->title, c->title.data, c->title.len);
    size_t n = (size_t)i + 1, cap = m->cap;
    REEL_GROW(m->pub, cap, n);
    cap = m->cap;
    REEL_GROW(m->line, cap, n);
    m->cap = cap;
    REEL_GROW(m->gen_off, m->cap_off, n + 1);
    REEL_GROW(m->gen, m->cap_gen, m->n_gen + n_gen);
    m->pub[i] = pub;
    m->line[i] = line;
    if (n_gen) /* m->gen may still be NULL */
        memcpy(m->gen + m->n_gen, gen, n_gen * sizeof *gen);
    m->n_gen += n_gen;
    m->gen_off[i + 1] = (uint32_t)m->n_gen;
}

/* Cleans a raw title into c->title; 1 when it fits, else a bad record. */
static int take_title(ctx *c, const src *s, const reel_field *f, int *year)
{
    reel_buf_reset(&c->tmp);
    put_text(&c->tmp, f->p, f->len);
    *year = clean_title(c->tmp.data, c->tmp.len, &c->title);
    if (c->title.len > REEL_MAX_TITLE_LEN)
        return bad(c, s->line, REEL_ETOOBIG, "title longer than %d bytes",
                   REEL_MAX_TITLE_LEN);
    return 1;
}

/* A new movie id, or a bad record when it is malformed or repeated. */
static int take_movie_id(ctx *c, const src *s, const reel_field *f,
                         const char *what)
{
    int rc = check_id(c, s, f, what);
    if (rc != 1)
        return rc;
    uint32_t i = reel_intern_find(&c->m.id, f->p, f->len);
    if (i != REEL_NONE)
        return bad(c, s->line, REEL_EEXISTS,
                   "%s %.*s repeats the movie of line %llu", what, show(f),
                   f->p, (unsigned long long)c->m.line[i]);
    return 1;
}

/* movies.csv: movieId,title,genres */
static int latest_movie(ctx *c, const src *s)
{
    if (s->nf != 3)
        return bad(c, s->line, REEL_EFORMAT,
                   "expected 3 fields (movieId,title,genres), found %zu",
                   s->nf);
    int year, rc;
    if ((rc = take_movie_id(c, s, &s->f[0], "movieId")) != 1 ||
        (rc = take_title(c, s, &s->f[1], &year)) != 1)
        return rc;
    uint32_t gen[REEL_MAX_LIST];
    size_t n_gen = 0;
    const char *p = s->f[2].p, *end = p + s->f[2].len;
    while (p <= end) {
        const char *bar = memchr(p, '|', (size_t)(end - p));
        const char *q = bar ? bar : end;
        const char *g = p;
        size_t gl = (size_t)(q - p);
        p = q + 1;
        trim(&g, &gl);
        if (gl == 0 || (gl == 18 && !memcmp(g, "(no genres listed)", 18)))
            continue;
        if (gl > REEL_MAX_WORD_LEN)
            return bad(c, s->line, REEL_ETOOBIG, "genre longer than %d bytes",
                       REEL_MAX_WORD_LEN);
        reel_buf_reset(&c->tmp);
        put_text(&c->tmp, g, gl);
        if (!c->tmp.len)
            continue;
        uint32_t id =
            reel_intern_put(&c->m.genre, c->tmp.data, c->tmp.len, NULL);
        size_t k = 0;
        while (k < n_gen && gen[k] != id)
            k++;
        if (k < n_gen)
            continue;
        if (n_gen == REEL_MAX_LIST)
            return bad(c, s->line, REEL_ETOOBIG, "more than %d genres",
                       REEL_MAX_LIST);
        gen[n_gen++] = id;
    }
    movie_push(c, &s->f[0], year ? reel_clock_from_civil(year, 1, 1) : NAN, gen,
               n_gen, s->line);
    return 1;
}

/* u.item: id|title|release date|video release date|IMDb URL|flags... */
static int item_100k(ctx *c, const src *s)
{
    if (s->nf != 5 + c->n_g100) {
        if (s->nf > MAX_FIELDS)
            return bad(c, s->line, REEL_EFORMAT,
                       "expected %zu fields (id|title|release date|video "
                       "release date|IMDb URL|%zu genre flags), found more "
                       "than %d",
                       5 + c->n_g100, c->n_g100, MAX_FIELDS);
        return bad(c, s->line, REEL_EFORMAT,
                   "expected %zu fields (id|title|release date|video release "
                   "date|IMDb URL|%zu genre flags), found %zu",
                   5 + c->n_g100, c->n_g100, s->nf);
    }
    int year, rc;
    if ((rc = take_movie_id(c, s, &s->f[0], "movie id")) != 1 ||
        (rc = take_title(c, s, &s->f[1], &year)) != 1)
        return rc;
    double pub = year ? reel_clock_from_civil(year, 1, 1) : NAN;
    const reel_field *date = &s->f[2];
    if (date->len && parse_date(date, &pub))
        return bad(c, s->line, REEL_EFORMAT,
                   "release date \"%.*s\" is not like 01-Jan-1995", show(date),
                   date->p);
    uint32_t gen[MAX_GENRES];
    size_t n_gen = 0;
    for (size_t k = 0; k < c->n_g100; k++) {
        const reel_field *fl = &s->f[5 + k];
        if (fl->len != 1 || (fl->p[0] != '0' && fl->p[0] != '1'))
            return bad(c, s->line, REEL_EFORMAT,
                       "genre flag %zu is \"%.*s\", not 0 or 1", k + 1,
                       show(fl), fl->p);
        if (fl->p[0] == '1' && c->g100[k] != REEL_NONE)
            gen[n_gen++] = c->g100[k];
    }
    movie_push(c, &s->f[0], pub, gen, n_gen, s->line);
    return 1;
}

/* u.genre: name|index, indexes 0..n-1 in any order. */
static int read_genres_100k(ctx *c)
{
    for (size_t k = 0; k < MAX_GENRES; k++)
        c->g100[k] = REEL_NONE - 1; /* not defined yet */
    size_t n = 0;
    src s;
    int rc = src_open(c, &s, "u.genre", 0, '|');
    while (rc == 0 && (rc = src_next(c, &s)) == 1) {
        rc = 0;
        uint64_t ix;
        const reel_field *name = &s.f[0];
        if (s.nf != 2) {
            rc = bad(c, s.line, REEL_EFORMAT,
                     "expected 2 fields (name|index), found %zu", s.nf);
        } else if (parse_uint(&s.f[1], &ix) || ix >= MAX_GENRES) {
            rc = bad(c, s.line, REEL_EFORMAT,
                     "genre index \"%.*s\" is not an integer below %d",
                     show(&s.f[1]), s.f[1].p, MAX_GENRES);
        } else if (c->g100[ix] != REEL_NONE - 1) {
            rc = bad(c, s.line, REEL_EEXISTS, "genre index %llu repeats",
                     (unsigned long long)ix);
        } else if (name->len == 0 || name->len > REEL_MAX_WORD_LEN) {
            rc = bad(c, s.line, REEL_EFORMAT,
                     "genre name is empty or longer than %d bytes",
                     REEL_MAX_WORD_LEN);
        } else {
            reel_buf_reset(&c->tmp);
            put_text(&c->tmp, name->p, name->len);
            /* "unknown" is ml-100k's way of saying "no genre". */
            c->g100[ix] = !strcmp(c->tmp.data, "unknown")
                              ? REEL_NONE
                              : reel_intern_put(&c->m.genre, c->tmp.data,
                                                c->tmp.len, NULL);
            if (ix + 1 > n)
                n = (size_t)ix + 1;
            c->r->n_added++;
        }
    }
    src_close(c, &s);
    if (rc < 0)
        return rc;
    for (size_t k = 0; k < n; k++)
        if (c->g100[k] == REEL_NONE - 1)
            return fail(c, 0, REEL_EFORMAT, "no genre has index %zu", k);
    if (n == 0)
        return fail(c, 0, REEL_EFORMAT, "no genres");
    c->n_g100 = n;
    return 0;
}

static void std_genres_100k(ctx *c)
{
    c->n_g100 = sizeof std_genres / sizeof *std_genres;
    for (size_t k = 0; k < c->n_g100; k++)
        c->g100[k] = k == 0 ? REEL_NONE
                            : reel_intern_put(&c->m.genre, std_genres[k],
                                              strlen(std_genres[k]), NULL);
}

/* Reads a movies file with `row` for each record. */
static int read_movies(ctx *c, const char *name, int csv, char sep,
                       int (*row)(ctx *, const src *))
{
    src s;
    int rc = src_open(c, &s, name, csv, sep);
    static const char *const hdr[] = {"movieId", "title", "genres"};
    if (rc == 0 && csv)
        rc = src_header(c, &s, hdr, 3, "movieId,title,genres");
    while (rc == 0 && (rc = src_next(c, &s)) == 1) {
        rc = row(c, &s);
        rc = rc < 0 ? rc : 0;
    }
    src_close(c, &s);
    return rc;
}

/* ================================================================ tags */

/* tags.csv: userId,movieId,tag,timestamp */
static int latest_tag(ctx *c, const src *s)
{
    if (s->nf != 4)
        return bad(c, s->line, REEL_EFORMAT,
                   "expected 4 fields (userId,movieId,tag,timestamp), "
                   "found %zu",
                   s->nf);
    double ts;
    int rc;
    if ((rc = check_id(c, s, &s->f[0], "userId")) != 1 ||
        (rc = check_id(c, s, &s->f[1], "movieId")) != 1 ||
        (rc = parse_ts(c, s, &s->f[3], &ts)) != 1)
        return rc;
    uint32_t mi = reel_intern_find(&c->m.id, s->f[1].p, s->f[1].len);
    if (mi == REEL_NONE)
        return bad(c, s->line, REEL_EFORMAT,
                   "movieId %.*s is not in movies.csv", show(&s->f[1]),
                   s->f[1].p);
    reel_buf_reset(&c->tmp);
    put_text(&c->tmp, s->f[2].p, s->f[2].len);
    const char *t = c->tmp.data;
    size_t tl = c->tmp.len;
    trim(&t, &tl);
    /* The tag is the user's free text; one too long for a tag (or empty)
     * is well-formed input that reel has no use for, not a bad line. */
    if (tl == 0 || tl > REEL_MAX_WORD_LEN) {
        c->t.n_ignored += tl != 0;
        c->r->n_added++;
        return 1;
    }
    lower_utf8((char *)t, tl);
    tagpairs *tp = &c->t;
    REEL_GROW(tp->movie, tp->cap_movie, tp->n + 1);
    REEL_GROW(tp->tag_id, tp->cap_tag, tp->n + 1);
    tp->movie[tp->n] = mi;
    tp->tag_id[tp->n] = reel_intern_put(&tp->tag, t, tl, NULL);
    tp->n++;
    c->r->n_added++;
    return 1;
}

static int read_tags(ctx *c)
{
    src s;
    static const char *const hdr[] = {"userId", "movieId", "tag", "timestamp"};
    int rc = src_open(c, &s, "tags.csv", 1, ',');
    if (rc == 0)
        rc = src_header(c, &s, hdr, 4, "userId,movieId,tag,timestamp");
    while (rc == 0 && (rc = src_next(c, &s)) == 1) {
        rc = latest_tag(c, &s);
        rc = rc < 0 ? rc : 0;
    }
    src_close(c, &s);
    if (rc == 0 && c->t.n_ignored)
        reel_log_info("%s: %llu tags longer than %d bytes ignored", c->path,
                      (unsigned long long)c->t.n_ignored, REEL_MAX_WORD_LEN);
    return rc;
}

typedef struct tagcount {
    uint32_t tag, count, first;
} tagcount;

/* More often applied first; ties keep the order they were first seen. */
static int by_count(const void *a, const void *b)
{
    const tagcount *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return x->first < y->first ? -1 : x->first > y->first;
}

/* ================================================================ adding */

/*
 * Adds every movie to the builder. A movie's tags are its distinct tags,
 * the most applied first, at most REEL_MAX_LIST of them.
 */
static int add_movies(ctx *c, const char *movies_file)
{
    movies *m = &c->m;
    tagpairs *tp = &c->t;
    uint32_t n = m->id.n;
    m->vidx = reel_xmalloc((n ? n : 1) * sizeof *m->vidx);
    /* Group the tag pairs by movie, keeping file order (counting sort). */
    uint32_t *toff = reel_xcalloc((size_t)n + 1, sizeof *toff);
    uint32_t *tsorted = reel_xmalloc((tp->n ? tp->n : 1) * sizeof *tsorted);
    for (size_t k = 0; k < tp->n; k++)
        toff[tp->movie[k] + 1]++;
    for (uint32_t i = 0; i < n; i++)
        toff[i + 1] += toff[i];
    uint32_t *fill = reel_xmalloc(((size_t)n + 1) * sizeof *fill);
    memcpy(fill, toff, ((size_t)n + 1) * sizeof *fill);
    for (size_t k = 0; k < tp->n; k++)
        tsorted[fill[tp->movie[k]]++] = tp->tag_id[k];
    free(fill);
    /* slot[tag] is 1 + the tag's place in `tc` while a movie is built. */
    uint32_t *slot = reel_xcalloc(tp->tag.n ? tp->tag.n : 1, sizeof *slot);
    tagcount *tc = NULL;
    size_t cap_tc = 0;

    reel_strs ids = reel_intern_view(&m->id);
    reel_strs titles = reel_intern_view(&m->title);
    reel_strs genres = reel_intern_view(&m->genre);
    reel_strs tags = reel_intern_view(&tp->tag);
    const char *cats[REEL_MAX_LIST], *tagp[REEL_MAX_LIST];
    int rc = set_path(c, movies_file);
    for (uint32_t i = 0; rc == 0 && i < n; i++) {
        size_t n_tc = 0;
        for (uint32_t k = toff[i]; k < toff[i + 1]; k++) {
            uint32_t t = tsorted[k];
            if (slot[t]) {
                tc[slot[t] - 1].count++;
                continue;
            }
            REEL_GROW(tc, cap_tc, n_tc + 1);
            tc[n_tc] = (tagcount){.tag = t, .count = 1, .first = k};
            slot[t] = (uint32_t)++n_tc;
        }
        for (size_t k = 0; k < n_tc; k++)
            slot[tc[k].tag] = 0;
        if (n_tc > 1)
            qsort(tc, n_tc, sizeof *tc, by_count);
        if (n_tc > REEL_MAX_LIST)
            n_tc = REEL_MAX_LIST;
        for (size_t k = 0; k < n_tc; k++)
            tagp[k] = reel_strs_get(&tags, tc[k].tag, NULL);

        size_t n_cat = m->gen_off[i + 1] - m->gen_off[i];
        for (size_t k = 0; k < n_cat; k++)
            cats[k] = reel_strs_get(&genres, m->gen[m->gen_off[i] + k], NULL);

        reel_video_rec v = reel_video_rec_empty();
        v.id = reel_strs_get(&ids, i, NULL);
        v.title = reel_strs_get(&titles, i, NULL);
        v.type = "movie";
        v.published_at = m->pub[i];
        v.categories = cats;
        v.n_categories = n_cat;
        v.tags = tagp;
        v.n_tags = n_tc;
        reel_diag ld;
        reel_diag_clear(&ld);
        int arc = reel_dsbuild_add_video(c->b, &v, &m->vidx[i], &ld);
        if (arc) {
            m->vidx[i] = REEL_NONE;
            rc = bad(c, m->line[i], arc, "%s", ld.msg);
        } else {
            c->r->n_added++;
        }
    }
    free(toff);
    free(tsorted);
    free(slot);
    free(tc);
    return rc;
}

/* u.user: id|age|gender|occupation|zip */
static int user_100k(ctx *c, const src *s)
{
    if (s->nf != 5)
        return bad(c, s->line, REEL_EFORMAT,
                   "expected 5 fields (id|age|gender|occupation|zip), "
                   "found %zu",
                   s->nf);
    uint64_t age = 0;
    int rc = check_id(c, s, &s->f[0], "user id");
    if (rc != 1)
        return rc;
    if (s->f[1].len && (parse_uint(&s->f[1], &age) || age > 150))
        return bad(c, s->line, REEL_ERANGE,
                   "age \"%.*s\" is not an integer in 0..150", show(&s->f[1]),
                   s->f[1].p);
    /* NUL-terminated copies, placed first and pointed at after, since
     * the buffer may move while it grows. */
    size_t off[5];
    reel_buf_reset(&c->strs);
    for (size_t k = 0; k < 5; k++) {
        off[k] = c->strs.len;
        if (k != 1)
            put_text(&c->strs, s->f[k].p, s->f[k].len);
        reel_buf_putc(&c->strs, '\0');
    }
    const char *str[5];
    for (size_t k = 0; k < 5; k++) {
        const char *p = c->strs.data + off[k];
        str[k] = *p ? p : NULL;
    }
    reel_user_rec u = reel_user_rec_empty();
    u.id = str[0];
    u.age = s->f[1].len ? (int)age : -1;
    u.gender = str[2];
    u.occupation = str[3];
    u.zip = str[4];
    reel_diag ld;
    reel_diag_clear(&ld);
    rc = reel_dsbuild_add_user(c->b, &u, NULL, &ld);
    if (rc)
        return bad(c, s->line, rc, "%s", ld.msg);
    c->r->n_added++;
    return 1;
}

static int read_users_100k(ctx *c)
{
    src s;
    int rc = src_open(c, &s, "u.user", 0, '|');
    while (rc == 0 && (rc = src_next(c, &s)) == 1) {
        rc = user_100k(c, &s);
        rc = rc < 0 ? rc : 0;
    }
    src_close(c, &s);
    return rc;
}

/* Names of the rating fields in messages: the file's own words. */
typedef struct rating_names {
    const char *user, *movie, *movies_file;
} rating_names;

/*
 * A rating: user, movie, rating, timestamp in fields 0..3. Returns 1 when
 * added, 0 when skipped, or a negative error.
 */
static int rating(ctx *c, const src *s, const rating_names *nm)
{
    const reel_field *uf = &s->f[0], *mf = &s->f[1], *rf = &s->f[2];
    double ts, value;
    int rc;
    if ((rc = check_id(c, s, uf, nm->user)) != 1 ||
        (rc = check_id(c, s, mf, nm->movie)) != 1)
        return rc;
    if (parse_decimal(rf, &value))
        return bad(c, s->line, REEL_EFORMAT, "rating \"%.*s\" is not a number",
                   show(rf), rf->p);
    if (value > 5)
        return bad(c, s->line, REEL_ERANGE, "rating %.*s is outside 0..5",
                   show(rf), rf->p);
    if ((rc = parse_ts(c, s, &s->f[3], &ts)) != 1)
        return rc;
    uint32_t mi = reel_intern_find(&c->m.id, mf->p, mf->len);
    uint32_t v = mi == REEL_NONE ? REEL_NONE : c->m.vidx[mi];
    if (v == REEL_NONE)
        return bad(c, s->line, REEL_EFORMAT, "%s %.*s is not in %s", nm->movie,
                   show(mf), mf->p, nm->movies_file);
    reel_event_rec e = reel_event_rec_empty();
    e.user = reel_dsbuild_user_ref(c->b, uf->p, uf->len);
    e.video = v;
    e.type = REEL_EV_RATING;
    e.ts = ts;
    e.rating = value;
    reel_diag ld;
    reel_diag_clear(&ld);
    rc = reel_dsbuild_add_event(c->b, &e, &ld);
    if (rc)
        return fail(c, s->line, rc, "%s", ld.msg);
    c->r->n_added++;
    return 1;
}

static int read_ratings(ctx *c, const char *name, int csv, char sep,
                        const rating_names *nm)
{
    src s;
    static const char *const hdr[] = {"userId", "movieId", "rating",
                                      "timestamp"};
    /* Ratings lines are 20-25 bytes; a guess saves regrowing the columns. */
    reel_dsbuild_reserve_events(c->b, file_size(c->dir, name) / 24 + 1);
    int rc = src_open(c, &s, name, csv, sep);
    if (rc == 0 && csv)
        rc = src_header(c, &s, hdr, 4, "userId,movieId,rating,timestamp");
    while (rc == 0 && (rc = src_next(c, &s)) == 1) {
        if (s.nf != 4) {
            rc = csv ? bad(c, s.line, REEL_EFORMAT,
                           "expected 4 fields (userId,movieId,rating,"
                           "timestamp), found %zu",
                           s.nf)
                     : bad(c, s.line, REEL_EFORMAT,
                           "expected 4 tab-separated fields (user, item, "
                           "rating, timestamp), found %zu",
                           s.nf);
            continue;
        }
        rc = rating(c, &s, nm);
        rc = rc < 0 ? rc : 0;
    }
    src_close(c, &s);
    return rc;
}

/* ================================================================ entry */

static uint64_t total_bytes(const char *dir, const char *const *names)
{
    uint64_t t = 0;
    for (; *names; names++)
        t += file_size(dir, *names);
    return t;
}

static const rating_names latest_names = {"userId", "movieId", "movies.csv"};
static const rating_names names_100k = {"user", "item", "u.item"};

static int import_latest(ctx *c)
{
    static const char *const files[] = {"movies.csv", "tags.csv", "ratings.csv",
                                        NULL};
    reel_progress_start(&c->prog, "movielens", "B", total_bytes(c->dir, files));
    int rc = read_movies(c, "movies.csv", 1, ',', latest_movie);
    if (rc == 0 && is_file(c->dir, "tags.csv"))
        rc = read_tags(c);
    if (rc == 0)
        rc = add_movies(c, "movies.csv");
    if (rc == 0)
        rc = read_ratings(c, "ratings.csv", 1, ',', &latest_names);
    reel_progress_finish(&c->prog);
    return rc;
}

static int import_100k(ctx *c)
{
    static const char *const files[] = {"u.genre", "u.item", "u.user", "u.data",
                                        NULL};
    reel_progress_start(&c->prog, "movielens", "B", total_bytes(c->dir, files));
    int rc = 0;
    if (is_file(c->dir, "u.genre"))
        rc = read_genres_100k(c);
    else
        std_genres_100k(c);
    if (rc == 0)
        rc = read_movies(c, "u.item", 0, '|', item_100k);
    if (rc == 0)
        rc = add_movies(c, "u.item");
    if (rc == 0)
        rc = read_users_100k(c);
    if (rc == 0)
        rc = read_ratings(c, "u.data", 0, '\t', &names_100k);
    reel_progress_finish(&c->prog);
    return rc;
}

int reel_import_movielens(reel_dsbuild *b, const char *dir,
                          const reel_import_opts *o, reel_import_report *r,
                          reel_diag *d)
{
    reel_diag_clear(d);
    reel_import_report dummy = {0};
    ctx *c = reel_xmalloc(sizeof *c);
    ctx_init(c);
    c->b = b;
    c->skip_bad = o && o->skip_bad;
    c->r = r ? r : &dummy;
    c->d = d;
    c->dir = dir;
    uint64_t skipped_before = c->r->n_skipped;
    enum reel_movielens_layout layout = reel_movielens_detect(dir);
    int rc;
    if (layout == REEL_ML_LATEST) {
        rc = import_latest(c);
    } else if (layout == REEL_ML_100K) {
        rc = import_100k(c);
    } else {
        if (d) {
            d->file = NULL;
            d->line = 0;
        }
        rc = reel_diag_fail(d, REEL_ENOENT,
                            "%s holds no MovieLens data: expected "
                            "ratings.csv and movies.csv (ml-latest), or "
                            "u.data, u.item and u.user (ml-100k)",
                            dir);
    }
    if (rc == 0) {
        uint64_t skipped = c->r->n_skipped - skipped_before;
        if (skipped > N_WARN)
            reel_log_warn("%s: %llu malformed lines skipped in all (the "
                          "first %d are shown above)",
                          dir, (unsigned long long)skipped, N_WARN);
        char *real = realpath(dir, NULL);
        reel_buf meta = REEL_BUF_INIT;
        reel_buf_printf(&meta, "{\"source\":\"%s\",\"path\":",
                        layout == REEL_ML_LATEST ? "movielens-latest"
                                                 : "movielens-100k");
        const char *where = real ? real : dir;
        reel_buf_json_string(&meta, where, strlen(where));
        reel_buf_putc(&meta, '}');
        reel_dsbuild_set_meta(b, meta.data);
        reel_buf_free(&meta);
        free(real);
    }
    ctx_free(c);
    free(c);
    return rc;
}
