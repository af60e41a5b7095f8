#!/usr/bin/env python3
"""Tokenizer throughput of repeval's C implementation next to a pure-Python
byte-level BPE loop (GPT-2's encoder.py algorithm: the GPT-2 split pattern,
bytes to unicode, lowest-rank merge first, a word cache) on the same text in the
same run, and whether the two give the same ids.

usage: tokenize_speed.py BUILD_DIR [--tokenizer T] [--mb N] [FILE ...]

BUILD_DIR holds bench/bench_tokenize_speed (configure with -DREPEVAL_BENCH=ON).
The tokenizer must be a GPT-2-style byte-level BPE (default: the committed
fixture tests/data/hf/tokenizers/bytelevel_bpe); FILEs default to the texts in
/usr/share/common-licenses (Debian's base-files). Each line is one input; the
text is repeated until N MB (default 4)."""
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

try:
    import regex as re  # \p{L} and \p{N}, as the real pattern
    PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
except ImportError:  # the standard library's re: letters as [^\W\d_], close on English text
    import re
    PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+"""

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


class PyBPE:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            tok = json.load(f)
        model = tok["model"]
        self.vocab = model["vocab"]
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.byte_char = bytes_to_unicode()
        self.pat = re.compile(PATTERN)
        self.cache = {}

    def bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        parts = list(word)
        while len(parts) > 1:
            best, first = None, -1
            for i in range(len(parts) - 1):
                r = self.ranks.get((parts[i], parts[i + 1]))
                if r is not None and (best is None or r < best):
                    best, first = r, i
            if best is None:
                break
            a, b = parts[first], parts[first + 1]
            out, i = [], 0
            while i < len(parts):  # merge every occurrence of the pair, left to right
                if i < len(parts) - 1 and parts[i] == a and parts[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(parts[i])
                    i += 1
            parts = out
        ids = [self.vocab[p] for p in parts]
        self.cache[word] = ids
        return ids

    def encode(self, text):
        ids = []
        for piece in self.pat.findall(text):
            ids += self.bpe("".join(self.byte_char[b] for b in piece.encode("utf-8")))
        return ids


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 2
    build, tok, mb, files = argv[1], os.path.join(ROOT, "tests/data/hf/tokenizers/bytelevel_bpe/tokenizer.json"), 4.0, []
    args = argv[2:]
    while args:
        a = args.pop(0)
        if a == "--tokenizer":
            tok = args.pop(0)
        elif a == "--mb":
            mb = float(args.pop(0))
        else:
            files.append(a)
    files = files or sorted(f for f in glob.glob("/usr/share/common-licenses/*") if os.path.isfile(f))
    driver = os.path.join(build, "bench", "bench_tokenize_speed")
    with tempfile.TemporaryDirectory() as tmp:
        ids_c = os.path.join(tmp, "ids.txt")
        r = subprocess.run([driver, tok, "--mb", str(mb), "--ids-out", ids_c] + files, capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"{driver} failed: {r.stderr}")
        print("repeval (C):")
        print("  " + r.stdout.strip().replace("\n", "\n  "))
        with open(ids_c) as f:
            c_lines = [list(map(int, line.split())) for line in f]

    text = ""
    for fn in files:
        with open(fn, encoding="utf-8", errors="replace") as f:
            t = f.read()
        text += t if t.endswith("\n") else t + "\n"
    lines = text.split("\n")[:-1]
    py = PyBPE(tok)
    t0 = time.perf_counter()
    py_lines = [py.encode(line) for line in lines]
    t_first = time.perf_counter() - t0
    first_mb = len(text.encode()) / 1e6
    done, passes = first_mb, 1
    while done < mb:
        for line in lines:
            py.encode(line)
        done += first_mb
        passes += 1
    t_all = time.perf_counter() - t0
    print("pure Python BPE (reference):")
    print(f"  first pass: {first_mb:.3f} MB, {t_first:.3f} s, {first_mb / t_first:.2f} MB/s")
    print(f"  all passes: {done:.3f} MB, {t_all:.3f} s, {done / t_all:.2f} MB/s")
    same = sum(a == b for a, b in zip(c_lines, py_lines))
    print(f"ids agree on {same} of {len(lines)} lines" + ("" if len(c_lines) == len(lines) else
                                                         f" (C wrote {len(c_lines)} lines)"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
