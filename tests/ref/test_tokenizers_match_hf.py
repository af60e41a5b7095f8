"""repeval tokenize gives exactly the ids of the Hugging Face tokenizers
library for every tokenizer under tests/data/hf/tokenizers/<name>/
(tokenizer.json + expected.json, written by tests/data/make_tokenizer_fixtures.py
or converted from the shared reference fixture), and decodes as the library does.

expected.json: {"cases": [{"text", "ids", optional "ids_no_special",
"decoded" (decode(ids_no_special)), "decoded_skip" (decode(ids,
skip_special_tokens=True))}]}. Every folder found is checked and reported; a
folder without its files, or no folder at all, fails the test."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import SOURCE_DIR, Suite, repeval  # noqa: E402

ROOT = os.path.join(SOURCE_DIR, "tests", "data", "hf", "tokenizers")


def run_lines(args, what, suite):
    """repeval tokenize ... --json; returns the parsed output lines, or None."""
    rc, out, err = repeval("tokenize", *args, timeout=600)
    if not suite.check(rc == 0, f"{what}: exit {rc}: {err.strip()}"):
        return None
    try:
        return [json.loads(line) for line in out.split("\n")[:-1]]
    except json.JSONDecodeError as e:
        suite.check(False, f"{what}: output is not JSON lines: {e}")
        return None


def compare(suite, name, label, cases, key, got):
    n = 0
    if got is None or not suite.check(len(got) == len(cases), f"{name}: {label}: {len(got or [])} lines for {len(cases)} texts"):
        return 0
    for c, g in zip(cases, got):
        if suite.check(g == c[key], f"{name}: {label} of {c['text']!r}: got {g!r}, want {c[key]!r}"):
            n += 1
    return n


def byte_level_roundtrip_applies(tok):
    """decode(encode(s)) == s holds for byte-level tokenizers that add no prefix space
    and do not normalize."""
    def has_type(node, t):
        if isinstance(node, dict):
            return node.get("type") == t or any(has_type(v, t) for v in node.values())
        if isinstance(node, list):
            return any(has_type(v, t) for v in node)
        return False

    def prefix_space(node):
        if isinstance(node, dict):
            return node.get("add_prefix_space") is True or any(prefix_space(v) for v in node.values())
        if isinstance(node, list):
            return any(prefix_space(v) for v in node)
        return False

    dec = tok.get("decoder") or {}
    return (dec.get("type") == "ByteLevel" and tok.get("normalizer") is None
            and has_type(tok.get("pre_tokenizer"), "ByteLevel") and not prefix_space(tok.get("pre_tokenizer")))


def check_folder(suite, d):
    name = os.path.basename(d)
    tok_path = os.path.join(d, "tokenizer.json")
    exp_path = os.path.join(d, "expected.json")
    if not suite.check(os.path.isfile(tok_path) and os.path.isfile(exp_path),
                       f"{name}: needs tokenizer.json and expected.json"):
        return
    with open(exp_path, encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    with open(tok_path, encoding="utf-8") as f:
        tok = json.load(f)
    texts = [c["text"] for c in cases]
    report = []

    got = run_lines(["--tokenizer", d, "--json", "--"] + texts, f"{name}: encode", suite)
    report.append(f"ids {compare(suite, name, 'ids', cases, 'ids', got)}/{len(cases)}")

    ns = [c for c in cases if "ids_no_special" in c]
    if ns:
        got = run_lines(["--tokenizer", d, "--json", "--no-special", "--"] + [c["text"] for c in ns],
                        f"{name}: encode --no-special", suite)
        report.append(f"ids without special tokens {compare(suite, name, 'ids_no_special', ns, 'ids_no_special', got)}/{len(ns)}")

    dec = [c for c in cases if "decoded" in c]
    if dec:
        got = run_lines(["--tokenizer", d, "--json", "--decode", "--"]
                        + [" ".join(map(str, c["ids_no_special"])) for c in dec], f"{name}: decode", suite)
        report.append(f"decode {compare(suite, name, 'decode', dec, 'decoded', got)}/{len(dec)}")
    skip = [c for c in cases if "decoded_skip" in c]
    if skip:
        got = run_lines(["--tokenizer", d, "--json", "--decode", "--no-special", "--"]
                        + [" ".join(map(str, c["ids"])) for c in skip], f"{name}: decode --no-special", suite)
        report.append(f"decode skipping special tokens {compare(suite, name, 'decode (skip special)', skip, 'decoded_skip', got)}/{len(skip)}")

    if not dec and byte_level_roundtrip_applies(tok):
        rt = [dict(c, roundtrip=c["text"]) for c in cases]
        got = run_lines(["--tokenizer", d, "--json", "--decode", "--"]
                        + [" ".join(map(str, c.get("ids_no_special", c["ids"]))) for c in rt],
                        f"{name}: decode(encode(s))", suite)
        report.append(f"decode(encode(s)) == s {compare(suite, name, 'decode(encode(s))', rt, 'roundtrip', got)}/{len(rt)}")
    print(f"{name}: {len(cases)} texts: " + ", ".join(report))


def main():
    suite = Suite()
    dirs = sorted(os.path.join(ROOT, e) for e in os.listdir(ROOT)) if os.path.isdir(ROOT) else []
    dirs = [d for d in dirs if os.path.isdir(d)]
    suite.check(len(dirs) > 0, f"no tokenizer fixtures under {ROOT}")
    for d in dirs:
        check_folder(suite, d)
    suite.finish()


if __name__ == "__main__":
    main()
