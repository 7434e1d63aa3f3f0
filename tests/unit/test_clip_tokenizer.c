/* Unit tests of CLIP's tokenizer (src/embed/clip_tokenizer.h) on a small
 * vocabulary written here: ids, special tokens, truncation, clean-up
 * (controls kept, CJK as letters, White_Space, the strip),
 * invalid UTF-8, fast and slow BPE agreeing, threads, and malformed
 * vocab.json / merges.txt files rejected with a diag naming file and line.
 *
 * The same binary is the C side of tests/reference/clip_bpe.py:
 *   test_clip_tokenizer --encode VOCAB MERGES CASES
 *     CASES has one "CTX HEX" line per text (HEX: its UTF-8 bytes, "-" for
 *     the empty text); prints one line of ids per case (or "error N"), and
 *     fails when the heap BPE and the reference-style BPE disagree.
 *   test_clip_tokenizer --unicode-version
 */
#include "testutil.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "embed/clip_tokenizer.h"
#include "embed/clip_unicode.h"

/* ---- a small vocabulary --------------------------------------------- */

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

static void put_utf8(reel_buf *b, uint32_t cp)
{
    char s[4];
    size_t n = 0;
    if (cp < 0x80) {
        s[n++] = (char)cp;
    } else {
        s[n++] = (char)(0xC0 | (cp >> 6));
        s[n++] = (char)(0x80 | (cp & 0x3F));
    }
    reel_buf_append(b, s, n);
}

/* Merges of the test vocabulary, in rank order. The first one ranks
 * before the merge that makes its left part, as a learned vocabulary never
 * does: a merge pass must still finish before the pairs it creates count. */
static const char *const MERGES[][2] = {
    {"xy", "x"},     {"t", "h"},      {"th", "e</w>"},   {"th", "e"},
    {"c", "a"},      {"ca", "t</w>"}, {"a", "a"},        {"aa", "aa"},
    {"h", "e"},      {"the", "r"},    {"ther", "e</w>"}, {"i", "n"},
    {"in", "g</w>"}, {"c", "at</w>"}, {"a", "t</w>"},    {"a", "b"},
    {"b", "c"},      {"b", "c</w>"},  {"ab", "c</w>"},   {"a", "bc</w>"},
    {"aa", "a</w>"}, {"x", "y"},
};
#define N_MERGES (sizeof MERGES / sizeof MERGES[0])

/* vocab.json: the 512 byte symbols in CLIP's order, the distinct merge
 * results, then the two special tokens; START_ID and END_ID trade places
 * with the tokens that had those ids, so the specials are not last. */
enum { START_ID = 520, END_ID = 3, MAX_TOKENS = 600 };

static int n_tokens(char toks[][16])
{
    int n = 0;
    for (int eow = 0; eow < 2; eow++) {
        for (int pass = 0; pass < 2; pass++) {
            for (unsigned c = 0; c < 256; c++) {
                bool keep = (c >= '!' && c <= '~') ||
                            (c >= 0xA1 && c <= 0xAC) || c >= 0xAE;
                if (keep != (pass == 0))
                    continue;
                reel_buf b = REEL_BUF_INIT;
                put_utf8(&b, byte_char(c));
                if (eow)
                    reel_buf_puts(&b, "</w>");
                memcpy(toks[n++], b.data, b.len + 1);
                reel_buf_free(&b);
            }
        }
    }
    for (size_t i = 0; i < N_MERGES; i++) {
        char r[16];
        snprintf(r, sizeof r, "%s%s", MERGES[i][0], MERGES[i][1]);
        bool dup = false;
        for (int k = 512; k < n; k++)
            dup |= strcmp(toks[k], r) == 0;
        if (!dup)
            memcpy(toks[n++], r, sizeof r);
    }
    memcpy(toks[n++], "<|startoftext|>", 16);
    memcpy(toks[n++], "<|endoftext|>", 14);
    return n;
}

static void vocab_json(reel_buf *b)
{
    static char toks[MAX_TOKENS][16];
    int n = n_tokens(toks);
    reel_buf_puts(b, "{\n");
    for (int i = 0; i < n; i++) {
        int id = i;
        if (i == n - 2 || i == START_ID)
            id = i == START_ID ? n - 2 : START_ID;
        else if (i == n - 1 || i == END_ID)
            id = i == END_ID ? n - 1 : END_ID;
        reel_buf_puts(b, "  \"");
        for (const char *p = toks[i]; *p; p++) {
            if (*p == '"' || *p == '\\')
                reel_buf_putc(b, '\\');
            reel_buf_putc(b, *p);
        }
        reel_buf_printf(b, "\": %d%s\n", id, i + 1 < n ? "," : "");
    }
    reel_buf_puts(b, "}\n");
}

static void merges_txt(reel_buf *b)
{
    reel_buf_puts(b, "#version: 0.2\n");
    for (size_t i = 0; i < N_MERGES; i++)
        reel_buf_printf(b, "%s %s\n", MERGES[i][0], MERGES[i][1]);
    reel_buf_puts(b, "\n");
}

typedef struct fixture {
    char *dir, *vocab, *merges;
    reel_clip_tokenizer *t;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = test_tmpdir();
    reel_buf v = REEL_BUF_INIT, m = REEL_BUF_INIT;
    vocab_json(&v);
    merges_txt(&m);
    f->vocab = test_write_file(f->dir, "vocab.json", v.data);
    f->merges = test_write_file(f->dir, "merges.txt", m.data);
    reel_buf_free(&v);
    reel_buf_free(&m);
    reel_diag d;
    reel_diag_clear(&d);
    int rc = reel_clip_tokenizer_open(f->vocab, f->merges, &f->t, &d);
    if (rc)
        fprintf(stderr, "open: %s: %s\n", reel_errname(rc), d.msg);
    assert_int_equal(rc, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    reel_clip_tokenizer_free(f->t);
    test_rmtree(f->dir);
    free(f->dir);
    free(f->vocab);
    free(f->merges);
    free(f);
    return 0;
}

static int32_t id_of(const reel_clip_tokenizer *t, const char *tok)
{
    for (int32_t i = 0; i < reel_clip_tokenizer_vocab_size(t); i++)
        if (strcmp(reel_clip_tokenizer_token(t, i), tok) == 0)
            return i;
    fail_msg("token %s not in the vocabulary", tok);
    return -1;
}

/* Encodes with both BPE paths, checks they agree, returns the count. */
static int enc(const reel_clip_tokenizer *t, const char *s, size_t len,
               int32_t *ids, int ctx)
{
    int32_t *slow = malloc((size_t)(ctx > 0 ? ctx : 1) * sizeof *slow);
    int n = reel_clip_tokenizer_encode(t, s, len, ids, ctx);
    int m = reel__clip_tokenizer_encode_slow(t, s, len, slow, ctx);
    assert_int_equal(n, m);
    if (n > 0)
        assert_memory_equal(ids, slow, (size_t)n * sizeof *ids);
    free(slow);
    return n;
}

static void expect(const reel_clip_tokenizer *t, const char *text, size_t len,
                   const char *const *toks, int n_toks)
{
    int32_t ids[REEL_CLIP_CONTEXT];
    int n = enc(t, text, len, ids, REEL_CLIP_CONTEXT);
    if (n != n_toks + 2) {
        for (int i = 0; i < n; i++)
            fprintf(stderr, " [%s]", reel_clip_tokenizer_token(t, ids[i]));
        fprintf(stderr, "\n");
    }
    assert_int_equal(n, n_toks + 2);
    assert_int_equal(ids[0], START_ID);
    assert_int_equal(ids[n - 1], END_ID);
    for (int i = 0; i < n_toks; i++)
        assert_string_equal(reel_clip_tokenizer_token(t, ids[i + 1]), toks[i]);
}

#define EXPECT(t, text, ...)                                                   \
    do {                                                                       \
        static const char *const toks_[] = {__VA_ARGS__};                      \
        expect(t, text, strlen(text), toks_,                                   \
               (int)(sizeof toks_ / sizeof toks_[0]));                         \
    } while (0)

/* EXPECT for a string literal that may hold NUL bytes. */
#define EXPECT_LIT(t, lit, ...)                                                \
    do {                                                                       \
        static const char *const toks_[] = {__VA_ARGS__};                      \
        expect(t, lit, sizeof lit - 1, toks_,                                  \
               (int)(sizeof toks_ / sizeof toks_[0]));                         \
    } while (0)

/* ---- behaviour ------------------------------------------------------- */

static void special_ids_come_from_vocab_json(void **state)
{
    fixture *f = *state;
    assert_int_equal(reel_clip_tokenizer_start_id(f->t), START_ID);
    assert_int_equal(reel_clip_tokenizer_end_id(f->t), END_ID);
    static char toks[MAX_TOKENS][16];
    assert_int_equal(reel_clip_tokenizer_vocab_size(f->t), n_tokens(toks));
    assert_string_equal(reel_clip_tokenizer_token(f->t, START_ID),
                        "<|startoftext|>");
    assert_null(reel_clip_tokenizer_token(f->t, -1));
    assert_null(reel_clip_tokenizer_token(f->t, 100000));
}

static void words_merge_by_rank_with_word_ends(void **state)
{
    fixture *f = *state;
    EXPECT(f->t, "the cat", "the</w>", "cat</w>");
    EXPECT(f->t, "THE   Cat\t\n", "the</w>", "cat</w>");
    EXPECT(f->t, "there", "there</w>");
    EXPECT(f->t, "thing", "th", "ing</w>");
    /* (a, a) merges left to right: aa aa a</w>, then (aa, aa). */
    EXPECT(f->t, "aaaaa", "aaaa", "a</w>");
    EXPECT(f->t, "aaa", "aaa</w>"); /* aa a</w>, then (aa, a</w>) */
    /* "abc": (a, b) ranks before (b, c), so ab + c</w>. */
    EXPECT(f->t, "abc", "abc</w>");
    EXPECT(f->t, "x", "x</w>");
    /* Pass (x, y) makes xy xy x z</w>, then (xy, x) applies once. */
    EXPECT(f->t, "xyxyxz", "xy", "xyx", "z</w>");
}

static void empty_and_blank_text_is_start_and_end(void **state)
{
    fixture *f = *state;
    int32_t ids[4];
    assert_int_equal(enc(f->t, "", 0, ids, 4), 2);
    assert_int_equal(ids[0], START_ID);
    assert_int_equal(ids[1], END_ID);
    assert_int_equal(enc(f->t, " \t\r\n\v\f", 6, ids, 4), 2);
    /* U+001C-U+001F go with the strip, and so does U+3000. */
    static const char blank[] = "\x1c\x1d \xe3\x80\x80\x1e\x1f\xc2\x85";
    assert_int_equal(enc(f->t, blank, sizeof blank - 1, ids, 4), 2);
    assert_int_equal(reel_clip_tokenizer_encode(f->t, NULL, 0, ids, 4), 2);
}

static void truncation_keeps_the_end_token_last(void **state)
{
    fixture *f = *state;
    reel_buf b = REEL_BUF_INIT;
    for (int i = 0; i < 100; i++)
        reel_buf_puts(&b, "the ");
    int32_t ids[REEL_CLIP_CONTEXT];
    int32_t the = id_of(f->t, "the</w>");
    assert_int_equal(enc(f->t, b.data, b.len, ids, REEL_CLIP_CONTEXT),
                     REEL_CLIP_CONTEXT);
    assert_int_equal(ids[0], START_ID);
    for (int i = 1; i < REEL_CLIP_CONTEXT - 1; i++)
        assert_int_equal(ids[i], the);
    assert_int_equal(ids[REEL_CLIP_CONTEXT - 1], END_ID);
    assert_int_equal(enc(f->t, b.data, b.len, ids, 2), 2);
    assert_int_equal(ids[1], END_ID);
    assert_int_equal(enc(f->t, b.data, b.len, ids, 3), 3);
    assert_int_equal(ids[1], the);
    assert_int_equal(ids[2], END_ID);
    reel_buf_free(&b);
}

static void special_token_strings_in_text_become_special_ids(void **state)
{
    fixture *f = *state;
    EXPECT(f->t, "the<|endoftext|>cat", "the</w>", "<|endoftext|>", "cat</w>");
    EXPECT(f->t, "<|startoftext|>", "<|startoftext|>");
    /* Lowercased into the pattern's special alternative. */
    EXPECT(f->t, "<|ENDOFTEXT|>", "<|endoftext|>");
    /* Split out before the clean-up, whatever precedes it. */
    EXPECT(f->t, "!<|endoftext|>!", "!</w>", "<|endoftext|>", "!</w>");
    EXPECT(f->t, "<|endoftext|", "<", "|</w>", "e", "n", "d", "o", "f", "t",
           "e", "x", "t</w>", "|</w>");
}

/* Byte symbols of the test vocabulary, spelled in UTF-8. */
#define B_NUL "\xc4\x80" /* U+0100, byte 0x00 */
#define B_01 "\xc4\x81"  /* U+0101, byte 0x01 */
#define B_1C "\xc4\x9c"  /* U+011C, byte 0x1C */
#define B_7F "\xc4\xa1"  /* U+0121, byte 0x7F */
#define B_80 "\xc4\xa2"  /* U+0122, byte 0x80 */
#define B_8D "\xc4\xaf"  /* U+012F, byte 0x8D */
#define B_97 "\xc4\xb9"  /* U+0139, byte 0x97 */
#define B_A5 "\xc2\xa5"  /* byte 0xA5 stands for itself */
#define B_E2 "\xc3\xa2"  /* byte 0xE2 */
#define B_E6 "\xc3\xa6"  /* byte 0xE6 */

static void controls_and_nul_are_kept_as_byte_tokens(void **state)
{
    fixture *f = *state;
    /* NUL, C0 controls and DEL are [^\s\p{L}\p{N}] characters: they end
     * a letter run and their bytes go through the BPE. */
    EXPECT_LIT(f->t, "the\0cat", "the</w>", B_NUL "</w>", "cat</w>");
    EXPECT_LIT(f->t, "the \x01\x7f", "the</w>", B_01, B_7F "</w>");
    /* ZERO WIDTH JOINER (E2 80 8D) is kept too, a word of its own here. */
    EXPECT(f->t,
           "c\xe2\x80\x8d"
           "at",
           "c</w>", B_E2, B_80, B_8D "</w>", "at</w>");
}

static void cjk_ideographs_are_letters_like_any_other(void **state)
{
    fixture *f = *state;
    /* U+65E5 (E6 97 A5) joins the letters around it: one word. */
    EXPECT(f->t,
           "the\xe6\x97\xa5"
           "cat",
           "the", B_E6, B_97, B_A5, "cat</w>");
}

static void white_space_separates_and_the_ends_are_stripped(void **state)
{
    fixture *f = *state;
    /* \s is White_Space: VT, FF, NEL and LINE SEPARATOR separate words. */
    EXPECT(f->t,
           "the\vcat\fthe\xc2\x85"
           "cat\xe2\x80\xa8the",
           "the</w>", "cat</w>", "the</w>", "cat</w>", "the</w>");
    /* U+001C-U+001F are not White_Space: inside the text they are
     * tokens; at its ends str.strip() takes them. */
    EXPECT(f->t,
           "\x1c the\x1c"
           "cat \x1f",
           "the</w>", B_1C "</w>", "cat</w>");
    /* The strip is of the whole text, special tokens included. */
    EXPECT(f->t, "the<|endoftext|>\x1c", "the</w>", "<|endoftext|>");
    EXPECT(f->t, "the\x1c<|endoftext|>", "the</w>", B_1C "</w>",
           "<|endoftext|>");
}

static void invalid_utf8_is_a_format_error(void **state)
{
    fixture *f = *state;
    static const char *const bad[] = {
        "\xff",         "\xc0\x80",         "\xc1\xbf",         "\xe0\x80\x80",
        "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf8\x88\x80\x80", "the \xe2\x82",
        "\x80",
    };
    int32_t ids[8];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(
            reel_clip_tokenizer_encode(f->t, bad[i], strlen(bad[i]), ids, 8),
            REEL_EFORMAT);
    /* The largest code points of each length are fine. */
    static const char good[] = "\x7f\xdf\xbf\xef\xbf\xbf\xf4\x8f\xbf\xbf";
    assert_true(enc(f->t, good, sizeof good - 1, ids, 8) >= 2);
}

static void bad_arguments_are_rejected(void **state)
{
    fixture *f = *state;
    int32_t ids[4];
    assert_int_equal(reel_clip_tokenizer_encode(f->t, "the", 3, ids, 1),
                     REEL_EINVAL);
    assert_int_equal(reel_clip_tokenizer_encode(f->t, NULL, 3, ids, 4),
                     REEL_EINVAL);
    assert_int_equal(reel_clip_tokenizer_encode(f->t, "the", 3, ids, 0),
                     REEL_EINVAL);
    char *big = malloc(REEL_CLIP_TEXT_MAX + 1);
    memset(big, 'a', REEL_CLIP_TEXT_MAX + 1);
    assert_int_equal(
        reel_clip_tokenizer_encode(f->t, big, REEL_CLIP_TEXT_MAX + 1, ids, 4),
        REEL_ETOOBIG);
    free(big);
}

static void long_words_agree_between_fast_and_slow_bpe(void **state)
{
    fixture *f = *state;
    /* Random words over the merge alphabet, long enough for many passes. */
    uint64_t x = 88172645463325252ULL;
    static const char alphabet[] = "thecaribngxy";
    char word[600];
    int32_t ids[700];
    for (int rep = 0; rep < 200; rep++) {
        size_t n = 1 + rep * 3 % 599;
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            word[i] = alphabet[x % (sizeof alphabet - 1)];
        }
        assert_true(enc(f->t, word, n, ids, 700) >= 3);
    }
}

typedef struct job {
    const reel_clip_tokenizer *t;
    int32_t ids[REEL_CLIP_CONTEXT];
    int n;
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    static const char text[] = "the cat there aaaaaaaaab thing abc ";
    for (int i = 0; i < 200; i++)
        j->n = reel_clip_tokenizer_encode(j->t, text, sizeof text - 1, j->ids,
                                          REEL_CLIP_CONTEXT);
    return NULL;
}

static void threads_share_one_tokenizer(void **state)
{
    fixture *f = *state;
    job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i].t = f->t;
        assert_int_equal(pthread_create(&th[i], NULL, run_job, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 1; i < 4; i++) {
        assert_int_equal(jobs[i].n, jobs[0].n);
        assert_memory_equal(jobs[i].ids, jobs[0].ids,
                            (size_t)jobs[0].n * sizeof(int32_t));
    }
}

static void unicode_tables_know_some_characters(void **state)
{
    (void)state;
    uint32_t p = reel_clip_unicode_props('A');
    assert_int_equal(REEL_CLIP_UC_CLASS(p), REEL_CLIP_UC_LETTER);
    assert_int_equal(REEL_CLIP_UC_SIGMA(p), REEL_CLIP_UC_SIGMA_CASED);
    assert_int_equal(REEL_CLIP_UC_CLASS(reel_clip_unicode_props('7')),
                     REEL_CLIP_UC_NUMBER);
    assert_int_equal(REEL_CLIP_UC_CLASS(reel_clip_unicode_props(0x200D)),
                     REEL_CLIP_UC_CONTROL);
    assert_int_equal(REEL_CLIP_UC_CLASS(reel_clip_unicode_props(0x3000)),
                     REEL_CLIP_UC_SPACE);
    assert_int_equal(REEL_CLIP_UC_CLASS(reel_clip_unicode_props(0x0345)),
                     REEL_CLIP_UC_NOMATCH);
    assert_int_equal(REEL_CLIP_UC_CCC(reel_clip_unicode_props(0x0301)), 230);
    uint32_t out[3];
    assert_int_equal(reel_clip_unicode_lower(0x0130, out), 2);
    assert_int_equal(out[0], 'i');
    assert_int_equal(out[1], 0x0307);
    assert_int_equal(reel_clip_unicode_compose('e', 0x0301), 0x00E9);
    assert_int_equal(reel_clip_unicode_compose(0x0CC6, 0x0CC2), 0x0CCA);
    size_t n;
    const uint32_t *dec = reel_clip_unicode_decompose(0x1E69, &n);
    assert_int_equal(n, 3);
    assert_int_equal(dec[0], 's');
    assert_int_equal(REEL_CLIP_UC_CLASS(reel_clip_unicode_props(0x110000)),
                     REEL_CLIP_UC_CONTROL);
}

/* ---- malformed files ------------------------------------------------- */

/* Opens vocab/merges texts (NULL: the fixture's good file) and expects
 * `err` with a diag on `which` file, line `line` (0: any), and `needle` in
 * the message. */
static void bad_open(const fixture *f, const char *vocab, const char *merges,
                     int err, const char *needle, int which, uint64_t line)
{
    char *v = vocab ? test_write_file(f->dir, "bad_vocab.json", vocab)
                    : strdup(f->vocab);
    char *m = merges ? test_write_file(f->dir, "bad_merges.txt", merges)
                     : strdup(f->merges);
    reel_diag d;
    reel_diag_clear(&d);
    reel_clip_tokenizer *t = (reel_clip_tokenizer *)0x1;
    int rc = reel_clip_tokenizer_open(v, m, &t, &d);
    if (rc != err || !strstr(d.msg, needle))
        fprintf(stderr, "expected %s with \"%s\", got %s: %s\n",
                reel_errname(err), needle, reel_errname(rc), d.msg);
    assert_int_equal(rc, err);
    assert_ptr_equal(t, (reel_clip_tokenizer *)0x1); /* untouched */
    assert_non_null(strstr(d.msg, needle));
    assert_non_null(d.file);
    assert_string_equal(d.file, which == 0 ? v : m);
    if (line)
        assert_int_equal(d.line, line);
    free(v);
    free(m);
}

static void malformed_vocab_json_is_rejected(void **state)
{
    fixture *f = *state;
    bad_open(f, "{\"a\": 0,\n \"b\" 1}", NULL, REEL_EFORMAT, "column", 0, 2);
    bad_open(f, "[1, 2]", NULL, REEL_EFORMAT, "JSON object", 0, 0);
    bad_open(f, "{}", NULL, REEL_EFORMAT, "0 entries", 0, 0);
    bad_open(f, "{\"a\": \"0\"}", NULL, REEL_EFORMAT, "not an integer", 0, 0);
    bad_open(f, "{\"a\": 0, \"b\": 5}", NULL, REEL_EFORMAT, "outside 0..1", 0,
             0);
    bad_open(f, "{\"a\": -1}", NULL, REEL_EFORMAT, "outside", 0, 0);
    bad_open(f, "{\"a\": 0, \"b\": 0}", NULL, REEL_EFORMAT, "used by both", 0,
             0);
    bad_open(f, "{\"a\": 0, \"a\": 1}", NULL, REEL_EFORMAT, "duplicate", 0, 0);
    bad_open(f, "{\"\\ud800\": 0}", NULL, REEL_EFORMAT, "invalid Unicode", 0,
             0);
    bad_open(f, "{\"a\": 0}", NULL, REEL_EFORMAT, "byte symbol", 0, 0);
    bad_open(f, "{\"a\": 0", NULL, REEL_EFORMAT, "column", 0, 0);
    bad_open(f, "", NULL, REEL_EFORMAT, "column", 0, 0);
    bad_open(f, "{\"a\": 1e3}", NULL, REEL_EFORMAT, "not an integer", 0, 0);

    reel_buf b = REEL_BUF_INIT;
    reel_buf_puts(&b, "{\"");
    for (int i = 0; i < REEL_CLIP_TOKEN_MAX + 1; i++)
        reel_buf_putc(&b, 'x');
    reel_buf_puts(&b, "\": 0}");
    bad_open(f, b.data, NULL, REEL_ETOOBIG, "bytes (at most", 0, 0);
    reel_buf_free(&b);

    /* The good vocabulary without one byte symbol, or without a special. */
    reel_buf good = REEL_BUF_INIT;
    vocab_json(&good);
    char *cut = strdup(good.data);
    char *p = strstr(cut, "\"\\u0100</w>\"");
    if (!p) /* written as UTF-8 */
        p = strstr(cut, "\"\xc4\x80</w>\"");
    assert_non_null(p);
    memcpy(p, "\"zz", 3); /* renames the key; ids stay dense */
    bad_open(f, cut, NULL, REEL_EFORMAT, "byte symbol", 0, 0);
    free(cut);
    cut = strdup(good.data);
    p = strstr(cut, "<|endoftext|>");
    p[2] = 'E';
    bad_open(f, cut, NULL, REEL_EFORMAT, "<|endoftext|>\" is missing", 0, 0);
    free(cut);
    reel_buf_free(&good);

    reel_diag d;
    reel_diag_clear(&d);
    reel_clip_tokenizer *t = NULL;
    char *missing = test_path(f->dir, "nope.json");
    assert_int_equal(reel_clip_tokenizer_open(missing, f->merges, &t, &d),
                     REEL_ENOENT);
    assert_string_equal(d.file, missing);
    assert_null(t);
    assert_int_equal(reel_clip_tokenizer_open(f->dir, f->merges, &t, &d),
                     REEL_EIO);
    free(missing);
}

static void malformed_merges_txt_is_rejected(void **state)
{
    fixture *f = *state;
    bad_open(f, NULL, "t h\n", REEL_EFORMAT, "#version", 1, 1);
    bad_open(f, NULL, "", REEL_EFORMAT, "empty", 1, 0);
    bad_open(f, NULL, "#version: 0.2\nt h\nc a x\n", REEL_EFORMAT, "found 3", 1,
             3);
    bad_open(f, NULL, "#version: 0.2\nt h\nth\n", REEL_EFORMAT, "found 1", 1,
             3);
    bad_open(f, NULL, "#version: 0.2\nt h\nq zz\n", REEL_EFORMAT,
             "\"zz\" is not in the vocabulary", 1, 3);
    bad_open(f, NULL, "#version: 0.2\nx z\n", REEL_EFORMAT,
             "result \"xz\" is not", 1, 2);
    bad_open(f, NULL, "#version: 0.2\nt h\nc a\nt h\n", REEL_EFORMAT,
             "repeats line 2", 1, 4);
    bad_open(f, NULL, "#version: 0.2\nt h\n\nc a\n", REEL_EFORMAT, "blank line",
             1, 3);
    /* A NUL byte inside a line (written by hand: it ends a C string). */
    char *nul = test_path(f->dir, "nul.txt");
    FILE *fp = fopen(nul, "wb");
    static const char bytes[] = "#version: 0.2\nt h\nc a\0b\n";
    fwrite(bytes, 1, sizeof bytes - 1, fp);
    fclose(fp);
    reel_diag d;
    reel_clip_tokenizer *t = NULL;
    assert_int_equal(reel_clip_tokenizer_open(f->vocab, nul, &t, &d),
                     REEL_EFORMAT);
    assert_non_null(strstr(d.msg, "NUL"));
    assert_int_equal(d.line, 3);
    free(nul);

    /* CRLF, tabs and trailing blank lines are fine. */
    char *m = test_write_file(f->dir, "crlf.txt",
                              "#version: 0.2\r\nt h\r\nth\te</w>\r\n\r\n\n");
    assert_int_equal(reel_clip_tokenizer_open(f->vocab, m, &t, NULL), 0);
    EXPECT(t, "the", "the</w>");
    reel_clip_tokenizer_free(t);
    /* A header alone: no merges, byte symbols only. */
    char *m0 = test_write_file(f->dir, "none.txt", "#version: 0.2");
    assert_int_equal(reel_clip_tokenizer_open(f->vocab, m0, &t, NULL), 0);
    EXPECT(t, "the", "t", "h", "e</w>");
    reel_clip_tokenizer_free(t);
    reel_clip_tokenizer_free(NULL);
    free(m);
    free(m0);
}

/* ---- the helper for tests/reference/clip_bpe.py ------------------------ */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int encode_cases(const char *vocab, const char *merges,
                        const char *cases)
{
    reel_diag d;
    reel_diag_clear(&d);
    reel_clip_tokenizer *t;
    int rc = reel_clip_tokenizer_open(vocab, merges, &t, &d);
    if (rc) {
        char msg[512];
        reel_diag_format(&d, msg, sizeof msg);
        fprintf(stderr, "%s\n", msg);
        return 1;
    }
    FILE *in = fopen(cases, "r");
    if (!in) {
        perror(cases);
        reel_clip_tokenizer_free(t);
        return 1;
    }
    int status = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    long lineno = 0;
    while ((got = getline(&line, &cap, in)) > 0) {
        lineno++;
        char *sp = strchr(line, ' ');
        if (!sp) {
            fprintf(stderr, "%s:%ld: bad case\n", cases, lineno);
            status = 1;
            break;
        }
        int ctx = (int)strtol(line, NULL, 10);
        char *hex = sp + 1;
        size_t hl = strcspn(hex, "\n");
        if (hl == 1 && hex[0] == '-')
            hl = 0;
        char *text = malloc(hl / 2 + 1);
        for (size_t i = 0; i + 1 < hl; i += 2)
            text[i / 2] = (char)(hexval(hex[i]) << 4 | hexval(hex[i + 1]));
        int32_t *ids = malloc((size_t)ctx * sizeof *ids);
        int32_t *slow = malloc((size_t)ctx * sizeof *slow);
        int n = reel_clip_tokenizer_encode(t, text, hl / 2, ids, ctx);
        int m = reel__clip_tokenizer_encode_slow(t, text, hl / 2, slow, ctx);
        if (n != m || (n > 0 && memcmp(ids, slow, (size_t)n * sizeof *ids))) {
            fprintf(stderr, "%s:%ld: heap and reference BPE disagree\n", cases,
                    lineno);
            status = 1;
        }
        if (n < 0) {
            printf("error %d\n", n);
        } else {
            for (int i = 0; i < n; i++)
                printf(i ? " %d" : "%d", ids[i]);
            printf("\n");
        }
        free(ids);
        free(slow);
        free(text);
    }
    free(line);
    fclose(in);
    reel_clip_tokenizer_free(t);
    return status;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--encode") == 0)
        return encode_cases(argv[2], argv[3], argv[4]);
    if (argc == 2 && strcmp(argv[1], "--unicode-version") == 0) {
        printf("%s\n", reel_clip_unicode_version);
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(special_ids_come_from_vocab_json, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(words_merge_by_rank_with_word_ends,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(empty_and_blank_text_is_start_and_end,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(truncation_keeps_the_end_token_last,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            special_token_strings_in_text_become_special_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(
            controls_and_nul_are_kept_as_byte_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(
            cjk_ideographs_are_letters_like_any_other, setup, teardown),
        cmocka_unit_test_setup_teardown(
            white_space_separates_and_the_ends_are_stripped, setup, teardown),
        cmocka_unit_test_setup_teardown(invalid_utf8_is_a_format_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(bad_arguments_are_rejected, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            long_words_agree_between_fast_and_slow_bpe, setup, teardown),
        cmocka_unit_test_setup_teardown(threads_share_one_tokenizer, setup,
                                        teardown),
        cmocka_unit_test(unicode_tables_know_some_characters),
        cmocka_unit_test_setup_teardown(malformed_vocab_json_is_rejected, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(malformed_merges_txt_is_rejected, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
