/* clip_tokenizer.c: CLIP's byte-level BPE (see clip_tokenizer.h for the
 * behaviour, step by step). Symbols are vocabulary ids throughout: every
 * byte symbol and every merge result is validated to be in vocab.json at
 * load time, so a merge is a lookup of the id pair (a, b) that gives the
 * merge's rank and the id of "a" + "b". */
#include "embed/clip_tokenizer.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/mem.h"
#include "base/strs.h"
#include "embed/clip_unicode.h"

static const char START_TOKEN[] = "<|startoftext|>";
static const char END_TOKEN[] = "<|endoftext|>";

typedef struct pair_slot {
    uint64_t key; /* a << 32 | b; PAIR_EMPTY when free */
    uint32_t rank;
    int32_t result;
} pair_slot;

#define PAIR_EMPTY UINT64_MAX
#define NO_RANK UINT32_MAX

struct reel_clip_tokenizer {
    int32_t n_vocab;
    char *pool;        /* the keys, each NUL-terminated */
    uint64_t *tok_off; /* n_vocab + 1 offsets into pool, by id */
    uint32_t *slots;   /* string -> id + 1 (0: empty), open addressing */
    uint32_t slot_mask;
    pair_slot *pairs;
    uint32_t pair_mask;
    uint32_t n_merges;
    int32_t byte_id[256]; /* byte symbol */
    int32_t eow_id[256];  /* byte symbol + "</w>" */
    int32_t start_id, end_id;
};

/* ---- loading ---------------------------------------------------------- */

/* GPT-2's byte encoder as CLIP uses it: printable Latin-1 bytes stand for
 * themselves, the other 68 map to U+0100 onwards in byte order (0x00-0x20,
 * then 0x7F-0xA0, then 0xAD). */
static uint32_t byte_char(unsigned b)
{
    if (b <= 0x20)
        return 256 + b;
    if (b >= 0x7F && b <= 0xA0)
        return 256 + 33 + (b - 0x7F);
    if (b == 0xAD)
        return 256 + 67;
    return b;
}

static size_t utf8_put(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Fills d with the file, the line (0: none) and the message. */
static int fail(reel_diag *d, const char *path, uint64_t line, int err,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fail(reel_diag *d, const char *path, uint64_t line, int err,
                const char *fmt, ...)
{
    if (d) {
        d->file = path;
        d->line = line;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->msg, sizeof d->msg, fmt, ap);
        va_end(ap);
    }
    return err;
}

static int read_file(const char *path, char **out, size_t *len, reel_diag *d)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(d, path, 0, errno == ENOENT ? REEL_ENOENT : REEL_EIO,
                    "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return fail(d, path, 0, REEL_EIO, "not a regular file");
    }
    if (st.st_size > REEL_CLIP_FILE_MAX) {
        fclose(f);
        return fail(d, path, 0, REEL_ETOOBIG,
                    "%lld bytes, more than the %d allowed",
                    (long long)st.st_size, REEL_CLIP_FILE_MAX);
    }
    size_t n = (size_t)st.st_size;
    char *buf = reel_xmalloc(n + 1);
    size_t got = fread(buf, 1, n, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != n) {
        free(buf);
        return fail(d, path, 0, REEL_EIO, "read error");
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

static const char *tok_str(const reel_clip_tokenizer *t, int32_t id,
                           size_t *len)
{
    *len = (size_t)(t->tok_off[id + 1] - t->tok_off[id] - 1);
    return t->pool + t->tok_off[id];
}

static int32_t vocab_find(const reel_clip_tokenizer *t, const char *s,
                          size_t len)
{
    uint32_t i = (uint32_t)reel_hash_bytes(s, len) & t->slot_mask;
    for (;;) {
        uint32_t v = t->slots[i];
        if (v == 0)
            return -1;
        size_t n;
        const char *k = tok_str(t, (int32_t)(v - 1), &n);
        if (n == len && memcmp(k, s, len) == 0)
            return (int32_t)(v - 1);
        i = (i + 1) & t->slot_mask;
    }
}

static uint64_t pair_key(int32_t a, int32_t b)
{
    return (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
}

static uint32_t pair_hash(uint64_t key)
{
    key ^= key >> 31;
    key *= 0x9E3779B97F4A7C15ULL;
    key ^= key >> 29;
    return (uint32_t)key;
}

static const pair_slot *pair_find(const reel_clip_tokenizer *t, int32_t a,
                                  int32_t b)
{
    uint64_t key = pair_key(a, b);
    uint32_t i = pair_hash(key) & t->pair_mask;
    for (;;) {
        const pair_slot *s = &t->pairs[i];
        if (s->key == key)
            return s;
        if (s->key == PAIR_EMPTY)
            return NULL;
        i = (i + 1) & t->pair_mask;
    }
}

/* A token for a message: at most 60 bytes of it, cut on a character. */
static int short_len(const char *s, size_t len)
{
    if (len <= 60)
        return (int)len;
    size_t n = 60;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return (int)n;
}

static int load_vocab(reel_clip_tokenizer *t, const char *path, reel_diag *d)
{
    char *buf;
    size_t len;
    int rc = read_file(path, &buf, &len, d);
    if (rc)
        return rc;
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    free(buf);
    if (!root) {
        return fail(d, path, jerr.line > 0 ? (uint64_t)jerr.line : 0,
                    REEL_EFORMAT, "column %d: %s", jerr.column, jerr.text);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return fail(d, path, 0, REEL_EFORMAT,
                    "expected a JSON object of token -> id");
    }
    size_t n = json_object_size(root);
    if (n == 0 || n > REEL_CLIP_VOCAB_MAX) {
        json_decref(root);
        return fail(d, path, 0, n ? REEL_ETOOBIG : REEL_EFORMAT,
                    "%zu entries (1 to %d allowed)", n, REEL_CLIP_VOCAB_MAX);
    }
    /* First pass: check ids and sizes, place each key by its id. */
    const char **keys = reel_xcalloc(n, sizeof *keys);
    size_t *key_len = reel_xcalloc(n, sizeof *key_len);
    size_t pool_size = 0;
    const char *key;
    json_t *val;
    rc = 0;
    json_object_foreach(root, key, val)
    {
        size_t klen = strlen(key);
        if (!json_is_integer(val)) {
            rc = fail(d, path, 0, REEL_EFORMAT,
                      "the id of \"%.*s\" is not an integer",
                      short_len(key, klen), key);
            break;
        }
        json_int_t id = json_integer_value(val);
        if (id < 0 || (size_t)id >= n) {
            rc = fail(d, path, 0, REEL_EFORMAT,
                      "id %lld of \"%.*s\" is outside 0..%zu "
                      "(ids must number the %zu entries)",
                      (long long)id, short_len(key, klen), key, n - 1, n);
            break;
        }
        if (klen > REEL_CLIP_TOKEN_MAX) {
            rc = fail(d, path, 0, REEL_ETOOBIG,
                      "token \"%.*s...\" is %zu bytes (at most "
                      "%d)",
                      short_len(key, klen), key, klen, REEL_CLIP_TOKEN_MAX);
            break;
        }
        if (keys[id]) {
            rc = fail(d, path, 0, REEL_EFORMAT,
                      "id %lld is used by both \"%.*s\" and "
                      "\"%.*s\"",
                      (long long)id, short_len(keys[id], key_len[id]), keys[id],
                      short_len(key, klen), key);
            break;
        }
        keys[id] = key;
        key_len[id] = klen;
        pool_size += klen + 1;
    }
    if (rc == 0) {
        t->n_vocab = (int32_t)n;
        t->pool = reel_xmalloc(pool_size);
        t->tok_off = reel_xmalloc((n + 1) * sizeof *t->tok_off);
        uint64_t off = 0;
        for (size_t i = 0; i < n; i++) {
            t->tok_off[i] = off;
            memcpy(t->pool + off, keys[i], key_len[i] + 1);
            off += key_len[i] + 1;
        }
        t->tok_off[n] = off;
        uint32_t cap = 16;
        while (cap < 2 * n)
            cap *= 2;
        t->slots = reel_xcalloc(cap, sizeof *t->slots);
        t->slot_mask = cap - 1;
        for (size_t i = 0; i < n; i++) {
            /* Keys are distinct (duplicates were rejected), so each one
             * goes into the first free slot of its probe sequence. */
            uint32_t s =
                (uint32_t)reel_hash_bytes(keys[i], key_len[i]) & t->slot_mask;
            while (t->slots[s])
                s = (s + 1) & t->slot_mask;
            t->slots[s] = (uint32_t)i + 1;
        }
    }
    free(keys);
    free(key_len);
    json_decref(root);
    return rc;
}

static int check_symbols(reel_clip_tokenizer *t, const char *path, reel_diag *d)
{
    for (unsigned b = 0; b < 256; b++) {
        char s[16];
        size_t n = utf8_put(byte_char(b), s);
        t->byte_id[b] = vocab_find(t, s, n);
        memcpy(s + n, "</w>", 4);
        t->eow_id[b] = vocab_find(t, s, n + 4);
        if (t->byte_id[b] < 0 || t->eow_id[b] < 0) {
            s[n] = '\0';
            return fail(d, path, 0, REEL_EFORMAT,
                        "the byte symbol \"%s%s\" (byte 0x%02x) "
                        "is missing",
                        s, t->byte_id[b] < 0 ? "" : "</w>", b);
        }
    }
    t->start_id = vocab_find(t, START_TOKEN, strlen(START_TOKEN));
    t->end_id = vocab_find(t, END_TOKEN, strlen(END_TOKEN));
    if (t->start_id < 0 || t->end_id < 0)
        return fail(d, path, 0, REEL_EFORMAT, "\"%s\" is missing",
                    t->start_id < 0 ? START_TOKEN : END_TOKEN);
    return 0;
}

static int load_merges(reel_clip_tokenizer *t, const char *path, reel_diag *d)
{
    char *buf;
    size_t len;
    int rc = read_file(path, &buf, &len, d);
    if (rc)
        return rc;
    /* Every merge line takes at least 4 bytes ("a b\n"). */
    size_t max_merges = len / 4 + 1;
    if (max_merges > REEL_CLIP_MERGES_MAX)
        max_merges = REEL_CLIP_MERGES_MAX;
    uint32_t cap = 16;
    while (cap < 2 * max_merges)
        cap *= 2;
    t->pairs = reel_xmalloc(cap * sizeof *t->pairs);
    for (uint32_t i = 0; i < cap; i++)
        t->pairs[i].key = PAIR_EMPTY;
    t->pair_mask = cap - 1;

    char *cat = reel_xmalloc(2 * REEL_CLIP_TOKEN_MAX + 1);
    uint64_t line = 0, blank = 0;
    size_t pos = 0;
    while (pos < len && t->n_merges < REEL_CLIP_MERGES_MAX) {
        const char *s = buf + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        pos += n + (nl ? 1 : 0);
        line++;
        if (n && s[n - 1] == '\r')
            n--;
        if (line == 1) {
            if (n < 8 || memcmp(s, "#version", 8) != 0) {
                rc = fail(d, path, 1, REEL_EFORMAT,
                          "expected the \"#version: ...\" header line");
                break;
            }
            continue;
        }
        if (memchr(s, '\0', n)) {
            rc = fail(d, path, line, REEL_EFORMAT, "NUL byte");
            break;
        }
        /* Two fields separated by blanks (Python's str.split()). */
        size_t i = 0, f[2][2], nf = 0;
        while (i < n) {
            while (i < n && (s[i] == ' ' || s[i] == '\t'))
                i++;
            if (i == n)
                break;
            size_t b = i;
            while (i < n && s[i] != ' ' && s[i] != '\t')
                i++;
            if (nf < 2) {
                f[nf][0] = b;
                f[nf][1] = i - b;
            }
            nf++;
        }
        if (nf == 0) {
            if (!blank)
                blank = line;
            continue;
        }
        if (blank) {
            rc = fail(d, path, blank, REEL_EFORMAT,
                      "blank line inside the merges");
            break;
        }
        if (nf != 2) {
            rc = fail(d, path, line, REEL_EFORMAT,
                      "expected two symbols \"a b\", found "
                      "%zu",
                      nf);
            break;
        }
        int32_t id[2];
        for (int k = 0; k < 2 && rc == 0; k++) {
            id[k] = f[k][1] <= REEL_CLIP_TOKEN_MAX
                        ? vocab_find(t, s + f[k][0], f[k][1])
                        : -1;
            if (id[k] < 0)
                rc = fail(d, path, line, REEL_EFORMAT,
                          "\"%.*s\" is not in the "
                          "vocabulary",
                          short_len(s + f[k][0], f[k][1]), s + f[k][0]);
        }
        if (rc)
            break;
        memcpy(cat, s + f[0][0], f[0][1]);
        memcpy(cat + f[0][1], s + f[1][0], f[1][1]);
        size_t cat_len = f[0][1] + f[1][1];
        int32_t result = vocab_find(t, cat, cat_len);
        if (result < 0) {
            rc = fail(d, path, line, REEL_EFORMAT,
                      "the merge result \"%.*s\" is not in "
                      "the vocabulary",
                      short_len(cat, cat_len), cat);
            break;
        }
        uint64_t key = pair_key(id[0], id[1]);
        uint32_t h = pair_hash(key) & t->pair_mask;
        while (t->pairs[h].key != PAIR_EMPTY && t->pairs[h].key != key)
            h = (h + 1) & t->pair_mask;
        if (t->pairs[h].key == key) {
            rc = fail(d, path, line, REEL_EFORMAT,
                      "the merge \"%.*s\" repeats line %u", (int)n, s,
                      t->pairs[h].rank + 2);
            break;
        }
        t->pairs[h] = (pair_slot){key, t->n_merges, result};
        t->n_merges++;
    }
    if (rc == 0 && line == 0)
        rc = fail(d, path, 0, REEL_EFORMAT, "empty file");
    free(cat);
    free(buf);
    return rc;
}

int reel_clip_tokenizer_open(const char *vocab_path, const char *merges_path,
                             reel_clip_tokenizer **out, reel_diag *d)
{
    if (!vocab_path || !merges_path || !out)
        return reel_diag_fail(d, REEL_EINVAL, "clip tokenizer: NULL path");
    reel_diag_clear(d);
    reel_clip_tokenizer *t = reel_xcalloc(1, sizeof *t);
    int rc = load_vocab(t, vocab_path, d);
    if (rc == 0)
        rc = check_symbols(t, vocab_path, d);
    if (rc == 0)
        rc = load_merges(t, merges_path, d);
    if (rc) {
        reel_clip_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void reel_clip_tokenizer_free(reel_clip_tokenizer *t)
{
    if (!t)
        return;
    free(t->pool);
    free(t->tok_off);
    free(t->slots);
    free(t->pairs);
    free(t);
}

int32_t reel_clip_tokenizer_start_id(const reel_clip_tokenizer *t)
{
    return t->start_id;
}

int32_t reel_clip_tokenizer_end_id(const reel_clip_tokenizer *t)
{
    return t->end_id;
}

int32_t reel_clip_tokenizer_vocab_size(const reel_clip_tokenizer *t)
{
    return t->n_vocab;
}

const char *reel_clip_tokenizer_token(const reel_clip_tokenizer *t, int32_t id)
{
    if (id < 0 || id >= t->n_vocab)
        return NULL;
    return t->pool + t->tok_off[id];
}

/* ---- text clean-up ---------------------------------------------------- */

/* A growable array of code points. */
typedef struct cpvec {
    uint32_t *p;
    size_t n, cap;
} cpvec;

static void cp_push(cpvec *v, uint32_t cp)
{
    if (v->n == v->cap)
        REEL_GROW(v->p, v->cap, v->n + 1);
    v->p[v->n++] = cp;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, surrogates or code points
 * above U+10FFFF. */
static int utf8_decode(const unsigned char *s, size_t len, cpvec *out)
{
    REEL_GROW(out->p, out->cap, len + 1);
    size_t i = 0, n = 0;
    while (i < len) {
        uint32_t c = s[i];
        if (c < 0x80) {
            out->p[n++] = c;
            i++;
            continue;
        }
        size_t k;
        uint32_t min;
        if (c >= 0xC2 && c <= 0xDF) {
            k = 1, min = 0x80, c &= 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2, min = 0x800, c &= 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3, min = 0x10000, c &= 0x07;
        } else {
            return REEL_EFORMAT;
        }
        if (len - i <= k)
            return REEL_EFORMAT;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return REEL_EFORMAT;
            c = c << 6 | (s[i + j] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            return REEL_EFORMAT;
        out->p[n++] = c;
        i += k + 1;
    }
    out->n = n;
    return 0;
}

/* The pattern's \s (the `regex` module's, and Oniguruma's for
 * CLIPTokenizerFast): Unicode's White_Space property, tab to CR, U+0085,
 * Zs, U+2028 and U+2029. The table classes them SPACE, SPLIT or (VT, FF,
 * NEL) CONTROL; every other CONTROL character (C*, U+0000, U+FFFD) is an
 * ordinary [^\s\p{L}\p{N}] character. */
static unsigned cls_of(uint32_t cp)
{
    unsigned c = REEL_CLIP_UC_CLASS(reel_clip_unicode_props(cp));
    if (c == REEL_CLIP_UC_SPLIT)
        return REEL_CLIP_UC_SPACE;
    if (c == REEL_CLIP_UC_CONTROL)
        return cp == 0x0B || cp == 0x0C || cp == 0x85 ? REEL_CLIP_UC_SPACE
                                                      : REEL_CLIP_UC_OTHER;
    return c;
}

/* Python's str.isspace(), which str.strip() uses: White_Space and the
 * information separators U+001C-U+001F (bidi classes B and S). */
static bool py_space(uint32_t cp)
{
    return (cp >= 0x1C && cp <= 0x1F) || cls_of(cp) == REEL_CLIP_UC_SPACE;
}

/* whitespace_clean's re.sub(r"\s+", " ", text): each White_Space
 * character becomes a space (runs need not collapse: the pattern skips
 * spaces). Nothing is dropped. Returns whether NFC may change the text.
 * NFC runs after this, not before as in OpenAI's order: White_Space
 * characters are starters that compose with nothing, and NFC maps them to
 * White_Space characters (U+2000 -> U+2002), so the order does not
 * matter. */
static bool clean(const uint32_t *in, size_t n, cpvec *out)
{
    bool nfc = false;
    out->n = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t p = reel_clip_unicode_props(in[i]);
        if (cls_of(in[i]) == REEL_CLIP_UC_SPACE) {
            cp_push(out, ' ');
            continue;
        }
        cp_push(out, in[i]);
        nfc |= (p & REEL_CLIP_UC_NFC) != 0;
    }
    return nfc;
}

enum {
    H_SBASE = 0xAC00,
    H_LBASE = 0x1100,
    H_VBASE = 0x1161,
    H_TBASE = 0x11A7,
    H_LCOUNT = 19,
    H_VCOUNT = 21,
    H_TCOUNT = 28,
    H_NCOUNT = H_VCOUNT * H_TCOUNT,
    H_SCOUNT = H_LCOUNT * H_NCOUNT,
};

static unsigned ccc(uint32_t cp)
{
    return REEL_CLIP_UC_CCC(reel_clip_unicode_props(cp));
}

static uint32_t compose(uint32_t a, uint32_t b)
{
    if (a >= H_LBASE && a < H_LBASE + H_LCOUNT && b >= H_VBASE &&
        b < H_VBASE + H_VCOUNT)
        return H_SBASE + ((a - H_LBASE) * H_VCOUNT + (b - H_VBASE)) * H_TCOUNT;
    if (a >= H_SBASE && a < H_SBASE + H_SCOUNT &&
        (a - H_SBASE) % H_TCOUNT == 0 && b > H_TBASE && b < H_TBASE + H_TCOUNT)
        return a + (b - H_TBASE);
    return reel_clip_unicode_compose(a, b);
}

/* NFC (UAX #15): full canonical decomposition, canonical ordering, then
 * canonical composition. */
static void nfc(const cpvec *in, cpvec *out)
{
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        uint32_t cp = in->p[i];
        if (cp >= H_SBASE && cp < H_SBASE + H_SCOUNT) {
            uint32_t s = cp - H_SBASE;
            cp_push(out, H_LBASE + s / H_NCOUNT);
            cp_push(out, H_VBASE + (s % H_NCOUNT) / H_TCOUNT);
            if (s % H_TCOUNT)
                cp_push(out, H_TBASE + s % H_TCOUNT);
            continue;
        }
        size_t k = 0;
        const uint32_t *dec =
            (reel_clip_unicode_props(cp) & REEL_CLIP_UC_DECOMP)
                ? reel_clip_unicode_decompose(cp, &k)
                : NULL;
        if (dec) {
            for (size_t j = 0; j < k; j++)
                cp_push(out, dec[j]);
        } else {
            cp_push(out, cp);
        }
    }
    /* Canonical ordering: a stable insertion sort of each run of
     * non-starters by combining class (runs are short). */
    uint32_t *s = out->p;
    size_t n = out->n;
    for (size_t i = 1; i < n; i++) {
        unsigned c = ccc(s[i]);
        if (c == 0)
            continue;
        size_t j = i;
        uint32_t cp = s[i];
        while (j > 0) {
            unsigned cj = ccc(s[j - 1]);
            if (cj == 0 || cj <= c)
                break;
            s[j] = s[j - 1];
            j--;
        }
        s[j] = cp;
    }
    /* Composition: a character joins the last starter unless something
     * between them blocks it (a starter, or a class >= its own). */
    size_t w = 0;
    size_t starter = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = s[i];
        unsigned c = ccc(cp);
        if (starter != SIZE_MAX) {
            bool adjacent = w == starter + 1;
            unsigned last = adjacent ? 0 : ccc(s[w - 1]);
            if (adjacent || (last != 0 && last < c)) {
                uint32_t comp = compose(s[starter], cp);
                if (comp) {
                    s[starter] = comp;
                    continue;
                }
            }
        }
        if (c == 0)
            starter = w;
        s[w++] = cp;
    }
    out->n = w;
}

/* str.lower(), with the Final_Sigma rule for U+03A3. */
static void lower(const cpvec *in, cpvec *out)
{
    out->n = 0;
    const uint32_t *s = in->p;
    size_t n = in->n;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = s[i];
        if (cp < 0x80) {
            cp_push(out, cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
            continue;
        }
        if (cp == 0x03A3) {
            /* Final when preceded by a cased letter and not followed by
             * one, skipping case-ignorable characters both ways. */
            size_t j = i;
            unsigned sg = REEL_CLIP_UC_SIGMA_NONE;
            while (j > 0) {
                sg = REEL_CLIP_UC_SIGMA(reel_clip_unicode_props(s[--j]));
                if (sg != REEL_CLIP_UC_SIGMA_IGNORABLE)
                    break;
            }
            bool final = sg == REEL_CLIP_UC_SIGMA_CASED;
            for (j = i + 1; final && j < n; j++) {
                sg = REEL_CLIP_UC_SIGMA(reel_clip_unicode_props(s[j]));
                if (sg == REEL_CLIP_UC_SIGMA_IGNORABLE)
                    continue;
                final = sg != REEL_CLIP_UC_SIGMA_CASED;
                break;
            }
            cp_push(out, final ? 0x03C2 : 0x03C3);
            continue;
        }
        if (!(reel_clip_unicode_props(cp) & REEL_CLIP_UC_LOWER)) {
            cp_push(out, cp);
            continue;
        }
        uint32_t to[3];
        int k = reel_clip_unicode_lower(cp, to);
        for (int j = 0; j < k; j++)
            cp_push(out, to[j]);
    }
}

/* ---- pre-tokenisation ------------------------------------------------- */

/* A pattern character against a text character under the `regex`
 * module's IGNORECASE (simple case folding): beyond ASCII case, only
 * U+017F folds to 's' and U+212A to 'k' among the pattern's letters. */
static bool fold_eq(uint32_t cp, char c)
{
    if (cp == (unsigned char)c)
        return true;
    if (c >= 'a' && c <= 'z') {
        if (cp == (uint32_t)(c - 32))
            return true;
        return (c == 's' && cp == 0x017F) || (c == 'k' && cp == 0x212A);
    }
    return false;
}

static size_t match_lit(const uint32_t *s, size_t n, const char *lit)
{
    size_t k = 0;
    for (; lit[k]; k++)
        if (k >= n || !fold_eq(s[k], lit[k]))
            return 0;
    return k;
}

/* The length of the pattern's match at s[0..n) (n > 0), 0 if none. */
static size_t next_word(const uint32_t *s, size_t n)
{
    size_t k;
    if ((k = match_lit(s, n, START_TOKEN)) || (k = match_lit(s, n, END_TOKEN)))
        return k;
    if (s[0] == '\'') {
        static const char *const contractions[] = {"'s", "'t",  "'re", "'ve",
                                                   "'m", "'ll", "'d"};
        for (size_t i = 0; i < sizeof contractions / sizeof *contractions; i++)
            if ((k = match_lit(s, n, contractions[i])))
                return k;
    }
    unsigned c = cls_of(s[0]);
    if (c == REEL_CLIP_UC_LETTER || c == REEL_CLIP_UC_OTHER) {
        k = 1;
        while (k < n && cls_of(s[k]) == c)
            k++;
        return k;
    }
    return c == REEL_CLIP_UC_NUMBER ? 1 : 0;
}

/* ---- BPE ---------------------------------------------------------------- */

typedef struct heap_ent {
    uint32_t rank, pos;
} heap_ent;

typedef struct scratch {
    cpvec cps, a, b;
    char *bytes;
    size_t cap_bytes;
    int32_t *sym;
    int32_t *next, *prev;
    size_t cap_sym, cap_links;
    heap_ent *heap, *batch;
    size_t cap_heap, cap_batch;
} scratch;

static void scratch_free(scratch *sc)
{
    free(sc->cps.p);
    free(sc->a.p);
    free(sc->b.p);
    free(sc->bytes);
    free(sc->sym);
    free(sc->next);
    free(sc->prev);
    free(sc->heap);
    free(sc->batch);
}

static bool ent_less(heap_ent x, heap_ent y)
{
    return x.rank < y.rank || (x.rank == y.rank && x.pos < y.pos);
}

static void heap_push(scratch *sc, size_t *n, heap_ent e)
{
    REEL_GROW(sc->heap, sc->cap_heap, *n + 1);
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!ent_less(e, sc->heap[parent]))
            break;
        sc->heap[i] = sc->heap[parent];
        i = parent;
    }
    sc->heap[i] = e;
}

static heap_ent heap_pop(scratch *sc, size_t *n)
{
    heap_ent top = sc->heap[0];
    heap_ent last = sc->heap[--*n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= *n)
            break;
        size_t m =
            l + 1 < *n && ent_less(sc->heap[l + 1], sc->heap[l]) ? l + 1 : l;
        if (!ent_less(sc->heap[m], last))
            break;
        sc->heap[i] = sc->heap[m];
        i = m;
    }
    if (*n)
        sc->heap[i] = last;
    return top;
}

static uint32_t rank_of(const reel_clip_tokenizer *t, int32_t a, int32_t b)
{
    const pair_slot *p = pair_find(t, a, b);
    return p ? p->rank : NO_RANK;
}

/* Merges sym[0..n) in place; returns the new count. A heap of (rank,
 * position) holds every ranked adjacent pair. All pairs of the lowest rank
 * are taken out together and merged left to right before any pair a merge
 * creates is considered: that is the reference's pass structure (a merge
 * never creates its own pair again, since "a" + "b" differs from both). */
static size_t bpe_fast(const reel_clip_tokenizer *t, scratch *sc, size_t n)
{
    if (n < 2)
        return n;
    int32_t *sym = sc->sym;
    if (n > sc->cap_links) {
        size_t cap = sc->cap_links;
        REEL_GROW(sc->next, cap, n);
        sc->prev = reel_xrealloc(sc->prev, cap * sizeof *sc->prev);
        sc->cap_links = cap;
    }
    int32_t *next = sc->next, *prev = sc->prev;
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) {
        next[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
        prev[i] = (int32_t)i - 1;
        if (i + 1 < n) {
            uint32_t r = rank_of(t, sym[i], sym[i + 1]);
            if (r != NO_RANK)
                heap_push(sc, &hn, (heap_ent){r, (uint32_t)i});
        }
    }
    while (hn) {
        uint32_t r = sc->heap[0].rank;
        size_t nb = 0;
        while (hn && sc->heap[0].rank == r) {
            REEL_GROW(sc->batch, sc->cap_batch, nb + 1);
            sc->batch[nb++] = heap_pop(sc, &hn);
        }
        for (size_t k = 0; k < nb; k++) {
            int32_t p = (int32_t)sc->batch[k].pos;
            int32_t q = next[p];
            if (sym[p] < 0 || q < 0)
                continue;
            const pair_slot *ps = pair_find(t, sym[p], sym[q]);
            if (!ps || ps->rank != r)
                continue; /* stale: one side was merged since */
            sym[p] = ps->result;
            sym[q] = -1;
            next[p] = next[q];
            if (next[q] >= 0)
                prev[next[q]] = p;
            if (prev[p] >= 0) {
                uint32_t rr = rank_of(t, sym[prev[p]], sym[p]);
                if (rr != NO_RANK)
                    heap_push(sc, &hn, (heap_ent){rr, (uint32_t)prev[p]});
            }
            if (next[p] >= 0) {
                uint32_t rr = rank_of(t, sym[p], sym[next[p]]);
                if (rr != NO_RANK)
                    heap_push(sc, &hn, (heap_ent){rr, (uint32_t)p});
            }
        }
    }
    size_t w = 0;
    for (int32_t i = 0; i >= 0; i = next[i])
        sym[w++] = sym[i];
    return w;
}

/* The reference algorithm, literally: find the lowest-ranked adjacent pair,
 * merge all its occurrences left to right, repeat. */
static size_t bpe_slow(const reel_clip_tokenizer *t, scratch *sc, size_t n)
{
    int32_t *sym = sc->sym;
    while (n > 1) {
        uint32_t best = NO_RANK;
        int32_t a = 0, b = 0, result = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            const pair_slot *ps = pair_find(t, sym[i], sym[i + 1]);
            if (ps && ps->rank < best) {
                best = ps->rank;
                a = sym[i], b = sym[i + 1], result = ps->result;
            }
        }
        if (best == NO_RANK)
            break;
        size_t w = 0;
        for (size_t i = 0; i < n;) {
            if (i + 1 < n && sym[i] == a && sym[i + 1] == b) {
                sym[w++] = result;
                i += 2;
            } else {
                sym[w++] = sym[i++];
            }
        }
        n = w;
    }
    return n;
}

static bool equals_ascii(const uint32_t *s, size_t n, const char *lit)
{
    size_t k = 0;
    for (; lit[k]; k++)
        if (k >= n || s[k] != (unsigned char)lit[k])
            return false;
    return k == n;
}

typedef struct out_ids {
    int32_t *ids;
    int n, max; /* body ids written, room for the body */
} out_ids;

static void emit(out_ids *o, int32_t id)
{
    if (o->n < o->max)
        o->ids[o->n++] = id;
}

/* One word of the pre-tokeniser: special token, or bytes -> BPE -> ids. */
static void encode_word(const reel_clip_tokenizer *t, scratch *sc,
                        const uint32_t *w, size_t n, bool slow, out_ids *o)
{
    if (equals_ascii(w, n, START_TOKEN)) {
        emit(o, t->start_id);
        return;
    }
    if (equals_ascii(w, n, END_TOKEN)) {
        emit(o, t->end_id);
        return;
    }
    REEL_GROW(sc->bytes, sc->cap_bytes, 4 * n);
    size_t nb = 0;
    for (size_t i = 0; i < n; i++)
        nb += utf8_put(w[i], sc->bytes + nb);
    REEL_GROW(sc->sym, sc->cap_sym, nb);
    for (size_t i = 0; i < nb; i++) {
        unsigned char b = (unsigned char)sc->bytes[i];
        sc->sym[i] = i + 1 < nb ? t->byte_id[b] : t->eow_id[b];
    }
    size_t m = slow ? bpe_slow(t, sc, nb) : bpe_fast(t, sc, nb);
    for (size_t i = 0; i < m; i++)
        emit(o, sc->sym[i]);
}

/* Whitespace, NFC, lowercase and pre-tokenisation of one piece of text
 * between special tokens. */
static void encode_piece(const reel_clip_tokenizer *t, scratch *sc,
                         const uint32_t *s, size_t n, bool slow, out_ids *o)
{
    const cpvec *cur = &sc->a;
    if (clean(s, n, &sc->a)) {
        nfc(&sc->a, &sc->b);
        cur = &sc->b;
    }
    cpvec *low = cur == &sc->a ? &sc->b : &sc->a;
    lower(cur, low);
    const uint32_t *p = low->p;
    size_t len = low->n;
    size_t i = 0;
    while (i < len && o->n < o->max) {
        size_t k = next_word(p + i, len - i);
        if (k == 0) {
            i++; /* whitespace, or a character no alternative matches */
            continue;
        }
        encode_word(t, sc, p + i, k, slow, o);
        i += k;
    }
}

static int encode(const reel_clip_tokenizer *t, const char *utf8, size_t len,
                  int32_t *ids, int ctx, bool slow)
{
    if (ctx < 2 || !ids || (!utf8 && len))
        return REEL_EINVAL;
    if (len > REEL_CLIP_TEXT_MAX)
        return REEL_ETOOBIG;
    scratch sc = {0};
    int rc = utf8_decode((const unsigned char *)utf8, len, &sc.cps);
    if (rc) {
        scratch_free(&sc);
        return rc;
    }
    out_ids o = {ids + 1, 0, ctx - 2};
    /* str.strip() of the whole text, before the special tokens are split
     * out (OpenAI strips the text they are part of). */
    const uint32_t *s = sc.cps.p;
    size_t n = sc.cps.n;
    while (n > 0 && py_space(s[n - 1]))
        n--;
    while (n > 0 && py_space(s[0]))
        s++, n--;
    size_t piece = 0;
    const size_t start_len = sizeof START_TOKEN - 1;
    const size_t end_len = sizeof END_TOKEN - 1;
    for (size_t i = 0; i < n && o.n < o.max;) {
        size_t k = 0;
        int32_t id = 0;
        if (s[i] == '<') {
            if (n - i >= start_len &&
                equals_ascii(s + i, start_len, START_TOKEN)) {
                k = start_len, id = t->start_id;
            } else if (n - i >= end_len &&
                       equals_ascii(s + i, end_len, END_TOKEN)) {
                k = end_len, id = t->end_id;
            }
        }
        if (!k) {
            i++;
            continue;
        }
        encode_piece(t, &sc, s + piece, i - piece, slow, &o);
        emit(&o, id);
        i += k;
        piece = i;
    }
    if (piece < n && o.n < o.max)
        encode_piece(t, &sc, s + piece, n - piece, slow, &o);
    ids[0] = t->start_id;
    ids[o.n + 1] = t->end_id;
    scratch_free(&sc);
    return o.n + 2;
}

int reel_clip_tokenizer_encode(const reel_clip_tokenizer *t, const char *utf8,
                               size_t len, int32_t *ids, int ctx)
{
    return encode(t, utf8, len, ids, ctx, false);
}

int reel__clip_tokenizer_encode_slow(const reel_clip_tokenizer *t,
                                     const char *utf8, size_t len, int32_t *ids,
                                     int ctx)
{
    return encode(t, utf8, len, ids, ctx, true);
}
