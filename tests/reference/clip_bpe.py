#!/usr/bin/python3
"""A reference CLIP tokenizer in plain Python, and its comparison with reel's.

Written from the published algorithm (OpenAI's simple_tokenizer with
ftfy.fix_text reduced to NFC and no html.unescape; Hugging Face's
CLIPTokenizerFast agrees but for the corners the header lists), with no
`regex` module and no transformers: whitespace_clean's \\s and the
pre-tokenisation pattern

    <\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|
    [\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+          (IGNORECASE)

are matched by hand with unicodedata and an explicit White_Space set. See
src/embed/clip_tokenizer.h for the behaviour both implement.

    clip_bpe.py check TEST_BIN   the ctest: learns a small vocabulary, writes
                                 vocab.json and merges.txt to a temporary
                                 directory, runs `TEST_BIN --encode` on the
                                 same cases and requires identical ids
    clip_bpe.py write DIR        writes the files and the cases only
    clip_bpe.py encode DIR TEXT  prints the reference's tokens and ids

Cases: tricky strings (accents, emoji, contractions, numbers, scripts,
whitespace, special tokens, truncation), seeded random strings, and every
code point of Unicode (with a merge-less vocabulary, where ids spell out
the bytes and word ends, so the clean-up, NFC, lowercasing and
pre-tokenisation are compared exhaustively), plus every str.isspace()
character at the ends of a text (the strip).
"""
import functools
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import unicodedata

START, END = "<|startoftext|>", "<|endoftext|>"
CONTEXT = 77
# The `regex` module's \s (OpenAI's `re` is `regex`; Oniguruma's \s in
# CLIPTokenizerFast is the same set): Unicode's White_Space property.
# Python's str.isspace(), and so str.strip() and the `re` module's \s, also
# has U+001C-U+001F.
WHITE_SPACE = frozenset(
    [chr(c) for c in range(0x09, 0x0E)] +
    [" ", "\x85", "\xa0", "\u1680"] +
    [chr(c) for c in range(0x2000, 0x200B)] +
    ["\u2028", "\u2029", "\u202f", "\u205f", "\u3000"])
assert len(WHITE_SPACE) == 25
assert ({chr(c) for c in range(0x110000) if chr(c).isspace()} - WHITE_SPACE ==
        {"\x1c", "\x1d", "\x1e", "\x1f"})
WHITE_SPACE_RUN = re.compile("[%s]+" % "".join(
    "\\x%02x" % ord(c) if ord(c) < 0x100 else "\\u%04x" % ord(c)
    for c in sorted(WHITE_SPACE)))


def bytes_to_unicode():
    """GPT-2's byte encoder: printable Latin-1 bytes map to themselves, the
    others to U+0100 onwards, in byte order."""
    keep = (list(range(ord("!"), ord("~") + 1)) +
            list(range(ord("\u00a1"), ord("\u00ac") + 1)) +
            list(range(ord("\u00ae"), ord("\u00ff") + 1)))
    table = {b: chr(b) for b in keep}
    n = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + n)
            n += 1
    # In the order CLIP lists them in its vocabulary.
    order = keep + [b for b in range(256) if b not in keep]
    return {b: table[b] for b in order}


BYTE_ENCODER = bytes_to_unicode()


# ---- clean-up (OpenAI's basic_clean and whitespace_clean, minus ftfy's
# fixes other than NFC and minus html.unescape) ----

def clean_up(piece):
    """One piece of text between special tokens (the whole text has been
    stripped): NFC, every run of White_Space to one space, str.lower()."""
    text = unicodedata.normalize("NFC", piece)
    return WHITE_SPACE_RUN.sub(" ", text).lower()


# ---- the pre-tokenisation pattern, by hand ----

def is_letter(ch):
    return unicodedata.category(ch).startswith("L")


def is_number(ch):
    return unicodedata.category(ch).startswith("N")


@functools.lru_cache(maxsize=None)
def in_space_letter_number(ch):
    """Whether [\\s\\p{L}\\p{N}] matches ch under IGNORECASE: the regex module
    tests every case variant of a character against a set's members."""
    variants = {ch}
    for f in (str.lower, str.upper, str.casefold, str.title):
        r = f(ch)
        if len(r) == 1:
            variants.add(r)
    return any(v in WHITE_SPACE or is_letter(v) or is_number(v)
               for v in variants)


def literal_at(text, i, lit):
    """Whether lit matches at text[i:] under IGNORECASE (simple folding)."""
    if i + len(lit) > len(text):
        return False
    for k, c in enumerate(lit):
        ch = text[i + k]
        if ch != c and ch.lower() != c and ch.casefold() != c:
            return False
    return True


CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")


def pretokenize(text):
    words = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        k = 0
        for lit in (START, END) + CONTRACTIONS:
            if literal_at(text, i, lit):
                k = len(lit)
                break
        if not k:
            if is_letter(ch):
                k = 1
                while i + k < n and is_letter(text[i + k]):
                    k += 1
            elif is_number(ch):
                k = 1
            elif not in_space_letter_number(ch):
                k = 1
                while i + k < n and not in_space_letter_number(text[i + k]):
                    k += 1
        if k:
            words.append(text[i:i + k])
            i += k
        else:
            i += 1
    return words


# ---- BPE, as published ----

def get_pairs(word):
    return {(word[i], word[i + 1]) for i in range(len(word) - 1)}


class Tokenizer:
    def __init__(self, vocab_path, merges_path):
        with open(vocab_path, encoding="utf-8") as f:
            self.encoder = json.load(f)
        self.decoder = {v: k for k, v in self.encoder.items()}
        with open(merges_path, encoding="utf-8") as f:
            lines = f.read().strip().split("\n")[1:49152 - 256 - 2 + 1]
        merges = [tuple(line.split()) for line in lines]
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.cache = {START: [START], END: [END]}

    def bpe(self, token):
        """The published merge loop: merge every occurrence of the
        lowest-ranked adjacent pair, left to right, until none is ranked."""
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        while len(word) > 1:
            pairs = get_pairs(word)
            bigram = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if bigram not in self.ranks:
                break
            first, second = bigram
            merged = []
            i = 0
            while i < len(word):
                if (i < len(word) - 1 and word[i] == first and
                        word[i + 1] == second):
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
        self.cache[token] = list(word)
        return self.cache[token]

    def tokens(self, text):
        """The token strings, before ids and truncation."""
        out = []
        # str.strip() of the whole text (OpenAI's basic_clean and
        # whitespace_clean), then the added tokens are split out, then each
        # piece is tokenized.
        text = text.strip()
        pieces = []
        i = last = 0
        while i < len(text):
            for special in (START, END):
                if text.startswith(special, i):
                    pieces.append(text[last:i])
                    pieces.append(special)
                    i += len(special)
                    last = i
                    break
            else:
                i += 1
        pieces.append(text[last:])
        for k, piece in enumerate(pieces):
            if k % 2 == 1:
                out.append(piece)
                continue
            for word in pretokenize(clean_up(piece)):
                chars = "".join(BYTE_ENCODER[b] for b in word.encode("utf-8"))
                out.extend(self.bpe(chars))
        return out

    def encode(self, text, ctx=CONTEXT):
        ids = [self.encoder[t] for t in self.tokens(text)]
        return [self.encoder[START]] + ids[:ctx - 2] + [self.encoder[END]]


# ---- a small vocabulary, learned the way CLIP's is laid out ----

CORPUS = """
A photo of a cat playing the piano. A dog running on the beach at sunset.
The quick brown fox jumps over the lazy dog; the lazy dog sleeps.
Don't stop me now, I'm having such a good time. We've got to go! They'll see.
It's a beautiful day in the neighbourhood, isn't it? You'd better believe it.
Café au lait and crème brûlée at the café near the Champs-Élysées.
Naïve résumé of a coöperative façade; piñata, jalapeño, São Paulo, Zürich.
Ångström units, smörgåsbord, fjörd, Ærø, Øresund, Kraków, Łódź, İstanbul.
Documentary: the history of cinema in twenty-four frames per second.
Highlights from the championship final, with the best goals and saves.
How to cook pasta in ten minutes; how to bake bread at home; how to paint.
Cooking, travel, music, science, nature, animals, sports, news, comedy.
Ελληνικά, Αθήνα, Θεσσαλονίκη. Привет, как дела? Москва, Санкт-Петербург.
日本語のテキスト。東京、大阪。中文文本，北京。한국어 텍스트, 서울.
The cat, the hat, the bat: that is that. Photos of photographers photographing.
"""


def learn(corpus, n_merges):
    counts = {}
    for word in pretokenize(clean_up(corpus)):
        chars = "".join(BYTE_ENCODER[b] for b in word.encode("utf-8"))
        sym = tuple(chars[:-1]) + (chars[-1] + "</w>",)
        counts[sym] = counts.get(sym, 0) + 1
    merges = []
    for _ in range(n_merges):
        pairs = {}
        for sym, c in counts.items():
            for i in range(len(sym) - 1):
                p = (sym[i], sym[i + 1])
                pairs[p] = pairs.get(p, 0) + c
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        new = {}
        for sym, c in counts.items():
            out, i = [], 0
            while i < len(sym):
                if i + 1 < len(sym) and (sym[i], sym[i + 1]) == best:
                    out.append(sym[i] + sym[i + 1])
                    i += 2
                else:
                    out.append(sym[i])
                    i += 1
            out = tuple(out)
            new[out] = new.get(out, 0) + c
        counts = new
    return merges


def write_files(d, merges):
    byte_syms = list(BYTE_ENCODER.values())
    vocab = byte_syms + [s + "</w>" for s in byte_syms]
    seen = set(vocab)
    for a, b in merges:
        if a + b not in seen:
            seen.add(a + b)
            vocab.append(a + b)
    # Keys that only test the JSON reader: astral characters (surrogate
    # pairs once escaped), quotes and backslashes.
    vocab += ["\U0001F44D", "\U0001D518\U0001D52B", "\"\\\"", "tab\tkey"]
    vocab += [START, END]
    encoder = {tok: i for i, tok in enumerate(vocab)}
    os.makedirs(d, exist_ok=True)
    vocab_path = os.path.join(d, "vocab.json")
    merges_path = os.path.join(d, "merges.txt")
    with open(vocab_path, "w", encoding="ascii") as f:
        f.write(json.dumps(encoder, indent=2, sort_keys=True,
                           ensure_ascii=True) + "\n")
    with open(merges_path, "w", encoding="utf-8", newline="") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(a + " " + b + "\n")
        f.write("\n")
    return vocab_path, merges_path


# ---- cases ----

TRICKY = [
    "A photo of a cat playing the piano",
    "café", "Café au lait", "naïve", "Ångström", "NAÏVE CAFÉ",
    "cafe\u0301 (decomposed)", "A\u030a and \u212b (Angstrom sign)",
    "\U0001F44D\U0001F3FD", "thumbs \U0001F44D\U0001F3FD up",
    "family \U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466 !",
    "don't", "I'LL", "we've", "they're", "she'd", "it's", "I'm", "'s",
    "rock 'n' roll", "O'Neill's", "\u2019s curly", "'\u017f long s",
    "12345", "3.14", "\u00bd \u2163 \u0663\u0664", "1,000,000 and 2nd",
    "\u65e5\u672c\u8a9e", "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac",
    "\u0395\u039b\u039b\u0397\u039d\u0399\u039a\u0386\u03a3 \u039f\u0394\u039f\u03a3",
    "\u03a3\u03a3 \u0391\u03a3'\u0391 \u0391\u03a3.", "\u041f\u0440\u0438\u0432\u0435\u0442",
    "\u0130stanbul", "\u0130STANBUL \u0130", "stra\u00dfe STRASSE \u1e9e",
    "\ud55c\uad6d\uc5b4 \u1100\u1161\u11a8", "\u00c5\u0323\u0307 a\u0307\u0323",
    "  lots   of\t\tspace\n\nand\r\nlines  ", "\u00a0nbsp\u3000ideographic\u2028ls",
    "!!!???...", "hello, world!!! (yes) -- \"quoted\" [x] {y} <z>",
    "<|startoftext|>", "<|endoftext|>", "a<|endoftext|>b",
    "x <|startoftext|> y <|endoftext|> z", "<|ENDOFTEXT|> upper",
    "!<|endoftext|>!", "<|endoftext|", "<<|endoftext|>>",
    "<|\u017ftartoftext|>", "", " ", "\t\n", "\0", "a\0b", "\x01\x1f\x7f ctrl",
    "soft\u00adhyphen zero\u200bwidth \ufeffbom \u200ertl",
    "\ufffd replacement", "\ue000 private \U000F0000 use", "\u0378 unassigned",
    "\u03b1\u0345 \u0345 a\u0345b", "&amp; &lt;html&gt;",
    "\x1c\x1d a\x1eb\x1f \x1c", "\x1f", "\x1c<|endoftext|>\x1f",
    "x\x1c<|endoftext|>\x1fy", "a\x0bb\x0cc\x85d\u2028e\u2029f\u1680g\u200ah",
    "\u200b\u200c\u200d\u2060 zero widths", "\U0001F3F3\ufe0f\u200d\U0001F308",
    "x\u65e5\u672c1\u8a9e y", "\u65e5\u672c\u8a9eABC\u0391\u03a3",
    "\U000E0067\U000E0062 tags", "\u2066isolate\u2069 \u202eoverride",
    "\u2160 roman \u2170", "\u24b6\u24d0 circled", "\u212a kelvin",
    "ﬁ ligature ﬀ", "Ｆｕｌｌｗｉｄｔｈ", "\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
    "\u0939\u093f\u0928\u094d\u0926\u0940", "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22",
    "x" * 200, "photographers " * 40, "a b c d e f g h i j k l m n o p " * 6,
    "\U0001F600" * 100, "\u65e5" * 100, "1" * 120,
]

RANDOM_POOL = (
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") +
    list("     \t\n'.,;:!?-\"()<>|/") +
    list("éèêëàâäçñöüÅåØæœßİıſΣσςΑΩαωЖжЯя日本語中文한국어テキスト") +
    ["\u0301", "\u0308", "\u0327", "\u0345", "\u200d", "\u00ad", "\ufeff",
     "\U0001F44D", "\U0001F3FD", "\U0001F468", "\u2028", "\u00a0", "\0",
     "\x07", "\u212b", "\u1100", "\u1161", "\u11a8", "\u0663", "\u00bd",
     "<|startoftext|>", "<|endoftext|>", "'s", "'ll", "'T", "\u0130",
     "\x1c", "\x1f", "\x0b", "\x85", "\ufffd", "\u2066", "\U000E0001"])


def random_cases(seed, n):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randrange(0, 40)
        out.append("".join(rng.choice(RANDOM_POOL) for _ in range(k)))
    return out


def all_code_point_cases():
    """Every code point: unassigned and private use ones in runs of 64
    between two letters (each run is one [^\\s\\p{L}\\p{N}]+ word);
    ideographs and Hangul syllables next to a letter, a digit and a
    trailing jamo (Hangul composition); every other one alone between
    letters and digits, next to Σ (Final_Sigma), before combining marks
    (NFC) and after a letter."""
    groups = []
    run = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        cat = unicodedata.category(c)
        if cat in ("Cn", "Co"):
            run.append(c)
            if len(run) == 64:
                groups.append("x" + "".join(run) + "y ")
                run = []
        elif (0xAC00 <= cp <= 0xD7A3 or
              unicodedata.name(c, "").startswith("CJK UNIFIED IDEOGRAPH")):
            groups.append("x%s1%s\u11a8 " % (c, c))
        else:
            groups.append("x%s1%s!\u0391%s\u03a3 a%s\u0301\u0327 "
                          % (c, c, c, c))
    groups.append("x" + "".join(run) + "y ")
    step = 64
    return ["".join(groups[i:i + step]) for i in range(0, len(groups), step)]


def strip_cases():
    """Every str.isspace() character at both ends of a text and inside it,
    alone and next to others: the strip takes the 29 of str.isspace(), the
    pattern's \\s only the 25 White_Space ones."""
    spaces = [chr(c) for c in range(0x110000) if chr(c).isspace()]
    out = []
    for c in spaces:
        out.append(c + "a" + c + "b" + c)
        out.append(c + " \x1c" + c + "!" + c + "\x1f " + c)
        out.append("<|endoftext|>" + c + "x" + c)
    out.append("".join(spaces) + "a" + "".join(spaces) + "b" + "".join(spaces))
    return out


def write_cases(path, cases):
    with open(path, "w", encoding="ascii") as f:
        for ctx, text in cases:
            f.write("%d %s\n" % (ctx, text.encode("utf-8").hex() or "-"))


def self_checks(tok):
    """The reference itself against hand-derived expectations."""
    def toks(text):
        return tok.tokens(text)

    def words(text):
        return pretokenize(clean_up(text))

    assert words("don't") == ["don", "'t"]
    assert words("I'LL") == ["i", "'ll"]
    assert words("we've") == ["we", "'ve"]
    assert words("12345") == list("12345")
    assert toks("12345") == [d + "</w>" for d in "12345"]
    assert words("3.14") == ["3", ".", "1", "4"]
    assert words("\u0130stanbul") == ["i", "\u0307", "stanbul"]
    # CJK ideographs are letters like any other: no spaces around them.
    assert words("\u65e5\u672c\u8a9e") == ["\u65e5\u672c\u8a9e"]
    assert words("x\u65e51\u672cY") == ["x\u65e5", "1", "\u672cy"]
    assert words("\u0395\u039b\u039b\u0397\u039d\u0399\u039a\u0386\u03a3") == [
        "\u03b5\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac\u03c2"]
    assert words("cafe\u0301") == ["caf\u00e9"]
    assert words("  a\t\tb\nc  ") == ["a", "b", "c"]
    assert words("!!!???...") == ["!!!???..."]
    # Nothing is dropped: C* characters are [^\s\p{L}\p{N}] characters.
    assert words("\U0001F468\u200d\U0001F469") == [
        "\U0001F468\u200d\U0001F469"]
    assert words("a\u200db\u00adc\ufeffd") == [
        "a", "\u200d", "b", "\u00ad", "c", "\ufeff", "d"]
    assert words("!\x00\x01\x7f\ufffd?") == ["!\x00\x01\x7f\ufffd?"]
    assert words("\ue000\U000F0000\u0378") == ["\ue000\U000F0000\u0378"]
    # \s is White_Space: VT, FF, NEL, LS and PS separate words; U+001C to
    # U+001F do not (str.isspace() and the `re` module would say they do).
    assert words("a\x0bb\x0cc\x85d\u2028e\u2029f\u3000g") == list("abcdefg")
    assert words("a\x1cb\x1f") == ["a", "\x1c", "b", "\x1f"]
    assert words("'\u017f") == ["'\u017f"]
    assert words("a\u0345b") == ["a", "b"]
    assert words("<|ENDOFTEXT|>") == [END]
    assert toks("a<|endoftext|>b") == ["a</w>", END, "b</w>"]
    assert toks("!<|endoftext|>!") == ["!</w>", END, "!</w>"]
    assert toks("") == [] and toks(" \t\x1c\u3000\x1f") == []
    # U+0000 is not whitespace: its byte goes through the BPE.
    assert "".join(toks("\0\x01")) == (
        BYTE_ENCODER[0] + BYTE_ENCODER[1] + "</w>")
    # str.strip() of the whole text takes U+001C-U+001F at its ends, also
    # after a special token; inside, they are tokens.
    fs = BYTE_ENCODER[0x1c] + "</w>"
    assert toks("\x1c a\x1cb \x1f") == ["a</w>", fs, "b</w>"]
    assert toks("a<|endoftext|>\x1c") == ["a</w>", END]
    assert toks("\x1c<|endoftext|>\x1c ") == [END]
    assert toks("a\x1c<|endoftext|>") == ["a</w>", fs, END]
    e = tok.encoder
    assert tok.encode("") == [e[START], e[END]]
    long = tok.encode("a " * 100)
    assert len(long) == CONTEXT and long[0] == e[START] and long[-1] == e[END]
    assert long[1:-1] == [e["a</w>"]] * (CONTEXT - 2)
    cafe = toks("caf\u00e9")
    assert "".join(cafe) == "caf\u00c3\u00a9</w>", cafe


def build(d, n_merges=400):
    merges = learn(CORPUS, n_merges)
    # One merge out of learned order: (r, r[0]) ranks first although r is
    # made by a later merge (t h -> th, then th t first): a merge pass must
    # finish before the pairs it creates count, which a learned vocabulary
    # never shows.
    r = next(a + b for a, b in merges if len(a + b) == 2 and
             (a + b).isalpha() and (a + b).isascii())
    assert r + r[0] not in {a + b for a, b in merges}
    merges = [(r, r[0])] + merges
    vocab_path, merges_path = write_files(d, merges)
    tok = Tokenizer(vocab_path, merges_path)
    self_checks(tok)
    cases = [(CONTEXT, t) for t in TRICKY + strip_cases()]
    cases += [(CONTEXT, r * k + "x" + r * k) for k in range(1, 6)]
    cases += [(ctx, "the cat sat on the mat, " * 20) for ctx in (2, 3, 10, 77)]
    cases += [(CONTEXT, t) for t in random_cases(8, 3000)]
    cases += [(4096, t) for t in random_cases(11, 200)]
    # Long words, where the merge order matters most (fast vs slow BPE).
    cases += [(4096, "".join(random.Random(s).choice("thecaphos")
                             for _ in range(300))) for s in range(50)]
    write_cases(os.path.join(d, "cases.txt"), cases)
    # A merge-less vocabulary for the exhaustive code point cases.
    bare = os.path.join(d, "bare")
    write_files(bare, [])
    uc_cases = [(100000, t) for t in all_code_point_cases()]
    write_cases(os.path.join(bare, "cases.txt"), uc_cases)
    return [(tok, cases, os.path.join(d, "cases.txt"), vocab_path, merges_path),
            (Tokenizer(os.path.join(bare, "vocab.json"),
                       os.path.join(bare, "merges.txt")),
             uc_cases, os.path.join(bare, "cases.txt"),
             os.path.join(bare, "vocab.json"),
             os.path.join(bare, "merges.txt"))]


def c_version(test_bin):
    out = subprocess.run([test_bin, "--unicode-version"], check=True,
                         capture_output=True, text=True).stdout.strip()
    return out


def compare(test_bin, tok, cases, cases_path, vocab_path, merges_path, label):
    proc = subprocess.run(
        [test_bin, "--encode", vocab_path, merges_path, cases_path],
        capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-2000:])
        raise SystemExit("%s: %s --encode failed (exit %d)"
                         % (label, test_bin, proc.returncode))
    got = proc.stdout.split("\n")
    bad = 0
    for k, (ctx, text) in enumerate(cases):
        want = " ".join(str(i) for i in tok.encode(text, ctx))
        if got[k] != want:
            bad += 1
            if bad <= 5:
                print("%s case %d (ctx %d): %r" % (label, k, ctx, text[:200]))
                ref = tok.encode(text, ctx)
                print("  reference:", [tok.decoder[i] for i in ref][:60])
                if got[k][:1].isdigit():
                    ids = [int(x) for x in got[k].split()]
                    print("  reel:     ", [tok.decoder.get(i, i)
                                           for i in ids][:60])
                else:
                    print("  reel:     ", got[k])
    print("%s: %d cases, %d identical, %d different"
          % (label, len(cases), len(cases) - bad, bad))
    return bad


def main(argv):
    if len(argv) >= 3 and argv[1] == "write":
        build(argv[2])
        return 0
    if len(argv) >= 4 and argv[1] == "encode":
        tok = Tokenizer(os.path.join(argv[2], "vocab.json"),
                        os.path.join(argv[2], "merges.txt"))
        print(tok.tokens(argv[3]))
        print(tok.encode(argv[3]))
        return 0
    if len(argv) >= 3 and argv[1] == "check":
        test_bin = argv[2]
        passed = failed = skipped = 0
        with tempfile.TemporaryDirectory(prefix="reel-clip-bpe-") as d:
            sets = build(d)
            if compare(test_bin, *sets[0], label="tokenizer"):
                failed += 1
            else:
                passed += 1
            version = c_version(test_bin)
            if version != unicodedata.unidata_version:
                print("every code point: skipped, reel's tables are Unicode %s"
                      " and this Python's are %s"
                      % (version, unicodedata.unidata_version))
                skipped += 1
            elif compare(test_bin, *sets[1], label="every code point"):
                failed += 1
            else:
                passed += 1
        print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
        return 1 if failed else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
