"""The language-model demo's tokenizer (jobs/lm-demo/tokenizer, a byte-level BPE
trained by jobs/lm-demo/train_tokenizer.py) encodes in `repeval tokenize` exactly as
the demo's own Python encoder (jobs/lm-demo/lmtext.py: GPT-2's byte alphabet and
split pattern written as a scanner over Unicode categories, merges applied by rank),
which is what trained the models:

  * every fortune of the five categories (Debian's `fortunes`; skipped when absent)
    and strings that reach every branch of the split pattern (contractions, runs of
    spaces before words and at the end, tabs and newlines, digits, punctuation runs,
    accented and CJK letters, other numerals, NBSP, emoji, invalid-looking quotes);
  * decoding the ids gives the text back;
  * the committed tokenizer files are what the trainer writes from the same corpus
    (byte for byte), so the committed models' tokenizer can be remade."""
import json
import os
import subprocess
import sys

from common import SOURCE_DIR, Suite, repeval, tmpdir

DEMO = os.path.join(SOURCE_DIR, "jobs", "lm-demo")
TOK = os.path.join(DEMO, "tokenizer")
sys.path.insert(0, DEMO)
import lmtext  # noqa: E402

TRICKY = [
    "Hello world", "don't won't I'm you're we've he'll she'd it's 'tis", "''s ' s 'S 'LL", "a  b   c    d",
    "trailing   ", "   leading", "\ttab\tseparated\t", "line\nbreaks\n\nand\r\nCRLF", "x \n y", "  \n  z",
    "1234 56,789.00 3.14159", "?!... --- ((x)) <tag/> #include", "café naïve résumé", "中文字符 和 English",
    "½ ² Ⅻ ٣", "non\u00a0breaking\u2003em", "emoji 🙂🚀 done", "\u2028sep", "MiXeD CaSe WORDS", " ",
    "a'b'c", "x'" * 5, "   'll", "__init__ foo_bar", "\u0301combining", "tab\t\tx", "end\n",
]


def encode_many(texts):
    out = []
    for s in range(0, len(texts), 300):
        chunk = texts[s:s + 300]
        rc, so, se = repeval("tokenize", "--tokenizer", TOK, "--json", "--", *chunk)
        if rc != 0:
            raise RuntimeError(f"repeval tokenize exited {rc}: {se}")
        out += [json.loads(line) for line in so.splitlines()]
    return out


def main():
    s = Suite()
    enc = lmtext.Encoder(TOK)
    texts = list(TRICKY)
    have_fortunes = all(os.path.isfile(os.path.join(lmtext.FORTUNES, c)) for c in lmtext.CATEGORIES)
    if have_fortunes:
        texts += [t for t, _ in lmtext.corpus()]
    else:
        print(f"{lmtext.FORTUNES}: the fortunes package is not installed; tricky strings only")
    got = encode_many(texts)
    s.check(len(got) == len(texts), f"one line per text: {len(got)} of {len(texts)}")
    bad = [(t, g, enc.encode(t)) for t, g in zip(texts, got) if g != enc.encode(t)]
    for t, g, w in bad[:5]:
        print(f"  {t[:80]!r}: repeval {g[:20]} python {w[:20]}")
    s.check(not bad, f"repeval tokenize and the Python encoder agree on {len(texts) - len(bad)} of {len(texts)} texts")
    merged = sum(len(t.encode()) > len(g) for t, g in zip(texts, got))
    s.check(merged > 0.9 * len(texts) - len(TRICKY), f"merges shorten the texts: {merged} of {len(texts)}")
    for t, g in zip(TRICKY, got):
        rc, so, se = repeval("tokenize", "--tokenizer", TOK, "--decode", "--json", " ".join(map(str, g)))
        s.check(rc == 0 and json.loads(so) == t, f"decode(encode({t!r})) = {so.strip()!r} {se}")
    if have_fortunes:
        with tmpdir() as d:
            p = subprocess.run([sys.executable, os.path.join(DEMO, "train_tokenizer.py"), d], capture_output=True,
                               text=True, timeout=300)
            s.check(p.returncode == 0, f"train_tokenizer.py runs: {p.stderr}")
            for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
                with open(os.path.join(d, f), "rb") as a, open(os.path.join(TOK, f), "rb") as b:
                    s.check(a.read() == b.read(), f"{f}: the trainer remakes the committed file byte for byte")
    s.finish()


if __name__ == "__main__":
    main()
