/*
 * clip_tokenizer: CLIP's byte-level BPE tokenizer, over the vocab.json and
 * merges.txt of a Hugging Face CLIP checkpoint.
 *
 * encode() gives the ids of OpenAI's CLIP tokenizer (simple_tokenizer.py)
 * with ftfy.fix_text reduced to its NFC step and no html.unescape, which
 * are also, but for the corners listed below, those of Hugging Face's
 * CLIPTokenizerFast; with truncation to the context length: [start] +
 * body[:ctx - 2] + [end], no padding. Step by step:
 *
 *  1. The input must be valid UTF-8 (no overlong forms, no surrogates,
 *     nothing above U+10FFFF), else REEL_EFORMAT. NUL bytes are allowed
 *     (the length is explicit): U+0000 is a character like any other, as
 *     in both references (not whitespace, so step 7 makes it a token).
 *  2. The whole text is stripped as Python's str.strip() does: leading
 *     and trailing characters for which str.isspace() is true, i.e. the
 *     White_Space characters of step 5 and U+001C-U+001F (OpenAI strips
 *     in basic_clean and whitespace_clean).
 *  3. The exact strings "<|startoftext|>" and "<|endoftext|>" are split
 *     out and become the start and end ids (Hugging Face's tokenizers
 *     treat them as added tokens); the text between them is tokenized
 *     piece by piece, steps 4 to 8.
 *  4. NFC (ftfy.fix_text ends with NFC; CLIPTokenizerFast's normalizer
 *     starts with it).
 *  5. Every White_Space character becomes a space (whitespace_clean's
 *     re.sub(r"\s+", " ", text), where `re` is the `regex` module, whose
 *     \s is Unicode's White_Space: tab, LF, VT, FF, CR, U+0085, Zs,
 *     U+2028, U+2029; 25 code points in Unicode 14. CLIPTokenizerFast's
 *     Oniguruma \s is the same set). Nothing is dropped and nothing else
 *     changes: control and format characters (U+0000, ZERO WIDTH JOINER,
 *     soft hyphen, BOM, bidi marks), U+001C-U+001F inside the text, U+FFFD,
 *     private use and unassigned code points all stay, and CJK ideographs
 *     are letters like any other (no spaces are put around them).
 *  6. Lowercasing as Python's str.lower(): full mappings (U+0130 "İ"
 *     becomes "i" + U+0307) and the Final_Sigma rule for U+03A3.
 *  7. Pre-tokenisation with CLIP's pattern, applied with IGNORECASE as the
 *     `regex` module does:
 *       <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|
 *       [\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 *     with \s as in step 5. The first alternative that matches at a
 *     position wins; characters that match none (spaces, U+0345) are
 *     skipped. So every character of category C* but the White_Space ones
 *     joins the runs of [^\s\p{L}\p{N}]+ ("a\u200db" is "a", ZWJ, "b";
 *     a ZWJ emoji sequence is one word) and goes through the byte-level
 *     BPE. IGNORECASE matters in two corners: U+017F (long s) matches the
 *     "s" of 's and <|startoftext|>, and U+0345 (whose uppercase is a
 *     letter) is in none of the classes, so it is skipped. A word equal to
 *     "<|startoftext|>" or "<|endoftext|>" (e.g. from "<|ENDOFTEXT|>") is
 *     that special token's id; one that only matched through U+017F is an
 *     ordinary word. Note for callers: a literal "<|endoftext|>" in a
 *     text puts the end id mid-sequence, and the text tower pools on the
 *     first end id, as transformers does.
 *  8. Each word's UTF-8 bytes become the byte encoder's characters, "</w>"
 *     is appended to the last one, and merges apply by rank: the pair of
 *     lowest rank is merged at all its occurrences, left to right, and this
 *     repeats until no adjacent pair has a rank. Symbols become vocab ids.
 *
 * Differences from OpenAI's simple_tokenizer: ftfy.fix_text is reduced to
 * its NFC (mojibake is not repaired, curly quotes stay curly, ligatures,
 * fullwidth letters, line breaks and the control characters ftfy removes
 * stay as typed), no html.unescape ("&amp;" stays), and step 3: OpenAI
 * finds special tokens with the pattern after the clean-up, so for it
 * "!<|endoftext|>" is "!<|", "endoftext", "|>" (here "!" and the end id)
 * and NFC may join a special token's ">" with a following U+0338.
 * Differences from CLIPTokenizerFast: it strips nothing (U+001C-U+001F at
 * the ends of the text are tokens there), lowercases without Final_Sigma
 * (word-final Σ gives σ, here ς) and matches the pattern without
 * IGNORECASE (U+017F and U+0345 above). Differences from the slow
 * CLIPTokenizer when ftfy is not installed (its BasicTokenizer clean-up):
 * it drops U+0000, U+FFFD and C* characters and puts spaces around CJK
 * ideographs; this tokenizer does neither. For everyday text (Latin,
 * Cyrillic, lowercase Greek, emoji, digits, punctuation) all of them
 * agree, and on CJK all but the slow one. Unicode data is 14.0.0 (see
 * clip_unicode.h).
 *
 * Loading (open): vocab.json is a JSON object of token -> id (any layout,
 * \u escapes and surrogate pairs allowed, duplicate keys rejected);
 * merges.txt has a "#version" first line, then one "a b" pair per line
 * (LF or CRLF), blank lines only at the end; as in CLIPTokenizer, at most
 * 48894 merges are read and later lines are ignored. Validated, with a
 * reel_diag naming the file and line: ids form 0..n-1 exactly once each
 * (n <= 2^20, tokens <= 1024 bytes, files <= 64 MiB); all 512 byte
 * symbols (with and without "</w>") and both special tokens are in the
 * vocabulary; every merge's parts and result are in it; no merge twice.
 * The special ids are looked up in vocab.json, never assumed. On failure,
 * d->file is the offending path (borrowed), d->line its line when known
 * (merges.txt lines, JSON syntax errors) and d->msg says what is wrong;
 * reel_diag_format() prints "file:line: message".
 *
 * Ownership: open() fills *out on success only; free() accepts NULL.
 * Thread rules: a tokenizer is immutable after open(); any number of
 * threads may call encode() and the getters at once (each call allocates
 * its own scratch memory).
 */
#ifndef REEL_EMBED_CLIP_TOKENIZER_H
#define REEL_EMBED_CLIP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

typedef struct reel_clip_tokenizer reel_clip_tokenizer;

enum {
    REEL_CLIP_CONTEXT = 77,        /* CLIP's context length */
    REEL_CLIP_TEXT_MAX = 1 << 22,  /* encode()'s input limit, bytes */
    REEL_CLIP_VOCAB_MAX = 1 << 20, /* entries of vocab.json */
    REEL_CLIP_TOKEN_MAX = 1024,    /* bytes of one vocab.json key */
    REEL_CLIP_MERGES_MAX = 48894,  /* merges read (49152 - 256 - 2) */
    REEL_CLIP_FILE_MAX = 64 << 20, /* bytes of either file */
};

int reel_clip_tokenizer_open(const char *vocab_path, const char *merges_path,
                             reel_clip_tokenizer **out, reel_diag *d);
void reel_clip_tokenizer_free(reel_clip_tokenizer *t);

/* Tokenizes len bytes of UTF-8 into ids[0..ctx-1]: returns the number of
 * ids written (2..ctx: start id, at most ctx - 2 tokens, end id), or
 * REEL_EINVAL (ctx < 2, or NULL text with len > 0), REEL_ETOOBIG (len >
 * REEL_CLIP_TEXT_MAX) or REEL_EFORMAT (invalid UTF-8). */
int reel_clip_tokenizer_encode(const reel_clip_tokenizer *t, const char *utf8,
                               size_t len, int32_t *ids, int ctx);

/* The ids of "<|startoftext|>" and "<|endoftext|>" in vocab.json. */
int32_t reel_clip_tokenizer_start_id(const reel_clip_tokenizer *t);
int32_t reel_clip_tokenizer_end_id(const reel_clip_tokenizer *t);
/* Number of vocabulary entries; valid ids are 0..vocab_size-1. */
int32_t reel_clip_tokenizer_vocab_size(const reel_clip_tokenizer *t);
/* The vocab.json key of an id (UTF-8, NUL-terminated, borrowed from t), or
 * NULL when id is out of range. */
const char *reel_clip_tokenizer_token(const reel_clip_tokenizer *t, int32_t id);

/* For tests: encode() with the merges applied by the reference algorithm
 * (rescan every pair after every pass) instead of the heap; the ids must
 * be identical. */
int reel__clip_tokenizer_encode_slow(const reel_clip_tokenizer *t,
                                     const char *utf8, size_t len, int32_t *ids,
                                     int ctx);

#endif
