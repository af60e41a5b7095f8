"""Text side of the language-model demo: fortunes as repeval's `text` format reads
them (separator "%"), the held-out split, and a byte-level BPE encoder written from
the definitions (GPT-2's byte alphabet and split pattern, merges applied by rank) that
reads the tokenizer.json train_tokenizer.py writes.

Shared by train_tokenizer.py, train.py and the tests; standard library only."""
import json
import os
import unicodedata

FORTUNES = os.environ.get("FORTUNES", "/usr/share/games/fortunes")
# the categories of the demo, in the order lm-demo.yaml lists them (classes are
# numbered by sorted name, which is this order too)
CATEGORIES = ["computers", "food", "literature", "love", "science"]
# fortune k of the concatenated categories is held out (never trained on) when k % 5 == 0:
# lm-demo.yaml's `folds: {count: 5, use: [0]}`; training uses folds 1-4
FOLDS = 5
EOT = "<|endoftext|>"
PAD = "<|padding|>"


def read_documents(path, separator="%"):
    """The documents of one file as repeval's text format cuts them: the text between
    lines that hold only the separator (less a CR), without the line break before it;
    blank documents (spaces, tabs, CR, LF) are skipped; a UTF-8 BOM is not text."""
    with open(path, "rb") as f:
        data = f.read()
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    data.decode("utf-8")  # invalid UTF-8 is an error, as in repeval
    sep = separator.encode()
    docs, doc, a, n = [], start, start, len(data)

    def add(lo, hi):
        if hi > lo and data[hi - 1:hi] == b"\n":
            hi -= 1
        if hi > lo and data[hi - 1:hi] == b"\r":
            hi -= 1
        text = data[lo:hi]
        if text.strip(b" \t\r\n"):
            docs.append(text.decode("utf-8"))

    while a < n:
        nl = data.find(b"\n", a)
        b = n if nl < 0 else nl
        e = b - 1 if b > a and data[b - 1:b] == b"\r" else b
        if data[a:e] == sep:
            add(doc, a)
            doc = b + 1
        a = b + 1
    if doc < n:
        add(doc, n)
    return docs


def corpus(root=FORTUNES, categories=CATEGORIES):
    """[(text, label)] over the categories in order (label = index in sorted names)."""
    names = sorted(categories)
    out = []
    for c in categories:
        out += [(t, names.index(c)) for t in read_documents(os.path.join(root, c))]
    return out


def split(docs):
    """(train, test): test is every FOLDS-th document, starting with the first."""
    return ([d for k, d in enumerate(docs) if k % FOLDS != 0], [d for k, d in enumerate(docs) if k % FOLDS == 0])


# ---- byte-level alphabet and pre-tokenizer ----------------------------------------

def byte_chars():
    """GPT-2's map from bytes to printable characters: the printable Latin-1 bytes
    keep their code point, the 68 others get 256, 257, ... in byte order."""
    keep = set(range(33, 127)) | set(range(161, 173)) | set(range(174, 256))
    out, extra = [], 0
    for b in range(256):
        if b in keep:
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return out


BYTE_CHAR = byte_chars()
# Unicode White_Space (what \s means for the tokenizers library's regex engine)
WHITE = set(map(chr, list(range(9, 14)) + [0x20, 0x85, 0xA0, 0x1680] + list(range(0x2000, 0x200B))
                + [0x2028, 0x2029, 0x202F, 0x205F, 0x3000]))
CONTRACTIONS = ("s", "t", "re", "ve", "m", "ll", "d")


def _kind(ch):
    if ch in WHITE:
        return "s"
    cat = unicodedata.category(ch)
    return "L" if cat[0] == "L" else "N" if cat[0] == "N" else "o"


def pretokenize(text):
    """GPT-2's split pattern
        's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+
    as a scanner: at each position the first alternative that matches, greedily."""
    kinds = [_kind(c) for c in text]
    out, i, n = [], 0, len(text)
    while i < n:
        if text[i] == "'":
            suf = next((s for s in CONTRACTIONS if text.startswith(s, i + 1)), None)
            if suf:
                out.append("'" + suf)
                i += 1 + len(suf)
                continue
        j = i + 1 if text[i] == " " and i + 1 < n and kinds[i + 1] != "s" else i
        if kinds[j] != "s":
            k = j + 1
            while k < n and kinds[k] == kinds[j]:
                k += 1
            out.append(text[i:k])
            i = k
            continue
        k = i
        while k < n and kinds[k] == "s":
            k += 1
        if k < n and k - 1 > i:  # \s+(?!\S): leave the last space to the next token
            k -= 1
        out.append(text[i:k])
        i = k
    return out


def to_byte_chars(piece):
    return "".join(BYTE_CHAR[b] for b in piece.encode("utf-8"))


# ---- BPE ---------------------------------------------------------------------------

class Encoder:
    """Encodes text with a byte-level BPE tokenizer.json (no normalizer, no special
    tokens added): pre-tokenize, map bytes to characters, then merge the pair of
    lowest rank (the leftmost of equals) until none applies."""

    def __init__(self, path):
        if os.path.isdir(path):
            path = os.path.join(path, "tokenizer.json")
        with open(path) as f:
            tj = json.load(f)
        model = tj["model"]
        self.vocab = model["vocab"]
        self.ranks = {}
        for r, m in enumerate(model["merges"]):
            a, b = m.split(" ") if isinstance(m, str) else m
            self.ranks[(a, b)] = r
        self.special = {t["content"]: t["id"] for t in tj["added_tokens"]}
        self.cache = {}

    def word(self, w):
        if w in self.cache:
            return self.cache[w]
        sym = list(w)
        while len(sym) > 1:
            best, at = None, -1
            for k in range(len(sym) - 1):
                r = self.ranks.get((sym[k], sym[k + 1]))
                if r is not None and (best is None or r < best):
                    best, at = r, k
            if best is None:
                break
            sym[at:at + 2] = [sym[at] + sym[at + 1]]
        ids = [self.vocab[s] for s in sym]
        self.cache[w] = ids
        return ids

    def encode(self, text):
        ids = []
        for p in pretokenize(text):
            ids += self.word(to_byte_chars(p))
        return ids
