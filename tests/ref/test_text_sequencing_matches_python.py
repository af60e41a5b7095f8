#!/usr/bin/env python3
"""Token samples of the text formats against a Python re-implementation of the
sequencing rules (docs/formats.md, "Sequencing"), with each document's ids from
`repeval tokenize --no-special` and the special tokens read from the post-processor
of tokenizer.json here (not by the library's probe). Covers JSON Lines (string
labels, escapes), text lines, fortune-style files with "%" separators and labels
from file names, whole files with folder labels and WebDataset .txt shards; modes
truncate (right and left padding, add_bos, no special tokens) and pack; four
tokenizers (byte-level BPE, WordPiece with [CLS]/[SEP], Metaspace BPE with <s>,
Llama-3 byte-level with <|begin_of_text|>). Exact equality, read in shuffled
batches. Also token files (.npy ids/mask/labels, .bin streams) against NumPy."""
import io
import json
import os
import sys
import tarfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import REPEVAL, SOURCE_DIR, Suite, run, tmpdir  # noqa: E402
import ds_tool  # noqa: E402

TOKDIR = os.path.join(SOURCE_DIR, "tests", "data", "hf", "tokenizers")
TOKENIZERS = {  # name: eos_token for pack mode
    "gpt2_bytelevel": "<|endoftext|>",
    "bert_cased": None,  # [SEP] from the post-processor
    "llama2_metaspace": "</s>",
    "llama3_bytelevel": "<|end_of_text|>",
}


def tok_info(tok):
    rc, out, err = run([REPEVAL, "tokenize", "--tokenizer", tok, "--info"])
    assert rc == 0, err
    return {k: int(v) for k, v in (line.split() for line in out.splitlines())}


def token_id(tok, s):
    j = json.load(open(os.path.join(tok, "tokenizer.json"), encoding="utf-8"))
    for a in j.get("added_tokens") or []:
        if a["content"] == s:
            return a["id"]
    return j["model"]["vocab"][s]


def specials(tok):
    """(P, S): ids the post-processor puts before and after a single sequence."""
    j = json.load(open(os.path.join(tok, "tokenizer.json"), encoding="utf-8"))

    def one(p):
        if p is None or p["type"] == "ByteLevel":
            return [], []
        if p["type"] in ("BertProcessing", "RobertaProcessing"):
            return [p["cls"][1]], [p["sep"][1]]
        if p["type"] == "TemplateProcessing":
            pre, suf, seen = [], [], False
            for item in p["single"]:
                if "Sequence" in item:
                    seen = True
                    continue
                ids = p["special_tokens"][item["SpecialToken"]["id"]]["ids"]
                (suf if seen else pre).extend(ids)
            return pre, suf
        if p["type"] == "Sequence":
            pre, suf = [], []
            for q in p["processors"]:
                a, b = one(q)
                pre, suf = a + pre, suf + b
            return pre, suf
        raise ValueError(p["type"])

    return one(j.get("post_processor"))


def encode_all(tok, docs):
    """Ids of each document without special tokens, from repeval tokenize."""
    out_ids = []
    for k in range(0, len(docs), 200):
        rc, out, err = run([REPEVAL, "tokenize", "--tokenizer", tok, "--no-special", "--json", *docs[k:k + 200]])
        assert rc == 0, err
        out_ids += [json.loads(line) for line in out.splitlines()]
    assert len(out_ids) == len(docs)
    return out_ids


def blank(s):
    return all(c in " \t\r\n" for c in s)


def reference(tok, docs, labels, T, mode, left=False, add_bos=False, special=True, eos_token=None):
    info = tok_info(tok)
    pre, suf = specials(tok) if special else ([], [])
    if add_bos and (not pre or pre[0] != info["bos"]):
        pre = [info["bos"]] + pre
    eos = token_id(tok, eos_token) if eos_token else info["eos"]
    pad = info["pad"] if info["pad"] >= 0 else (eos if eos >= 0 else 0)
    bodies = encode_all(tok, docs)
    if mode == "pack":
        stream = []
        for b in bodies:
            seq = pre + b + suf
            if not seq or seq[-1] != eos:
                seq.append(eos)
            stream += seq
        n = len(stream) // T
        return np.array(stream[:n * T], dtype=np.int64).reshape(n, T), np.ones((n, T), np.uint8), None
    ids = np.full((len(docs), T), pad, dtype=np.int64)
    mask = np.zeros((len(docs), T), dtype=np.uint8)
    room = T - len(pre) - len(suf)
    for r, b in enumerate(bodies):
        row = pre + b[:room] + suf
        at = T - len(row) if left else 0
        ids[r, at:at + len(row)] = row
        mask[r, at:at + len(row)] = 1
    return ids, mask, (np.array(labels, dtype=np.int32) if labels is not None else None)


def text_docs_lines(raw):
    if raw.startswith("\ufeff"):
        raw = raw[1:]
    docs = []
    for line in raw.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        if not blank(line):
            docs.append(line)
    return docs


def text_docs_separated(raw, sep):
    docs, cur = [], []
    lines = raw.split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]
    for line in lines:
        body = line[:-1] if line.endswith("\r") else line
        if body == sep:
            docs.append("\n".join(cur))
            cur = []
        else:
            cur.append(line)
    if cur:
        docs.append("\n".join(cur))
    docs = [d[:-1] if d.endswith("\r") else d for d in docs]
    return [d for d in docs if not blank(d)]


WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dogs", "café", "中文", "1234", "don't",
         "\"quoted\"", "tab\there", "naïve", "🤖", "HELLO", "x" * 30]


def make_doc(k):
    n = 1 + (k * 7) % 23
    return " ".join(WORDS[(k + 3 * w) % len(WORDS)] for w in range(n))


def compare(suite, what, got, want_ids, want_mask, want_y):
    info, ids, mask, y = got
    ok = suite.check(ids.shape == want_ids.shape, f"{what}: shape {ids.shape} vs {want_ids.shape}")
    if ok:
        bad = np.argwhere(ids != want_ids)
        suite.check(len(bad) == 0, f"{what}: ids differ first at {bad[:1].tolist()}: {ids[tuple(bad[0])] if len(bad) else ''}"
                    f" vs {want_ids[tuple(bad[0])] if len(bad) else ''}")
        suite.check(np.array_equal(mask, want_mask), f"{what}: masks differ")
    if want_y is not None:
        suite.check(np.array_equal(y, want_y), f"{what}: labels {y.tolist()} vs {want_y.tolist()}")
        suite.check(info["has_labels"] == 1, f"{what}: has_labels")
    else:
        suite.check(info["has_labels"] == 0 and (y == -1).all(), f"{what}: no labels")


def read_tokens(d, args, batch=3):
    prefix = os.path.join(d, f"r{read_tokens.n}")
    read_tokens.n += 1
    rc, out, err = run([ds_tool.DATASET_TOOL, "--out", prefix, "--batch", str(batch), "--order", "shuffle", "source",
                        *[str(a) for a in args]])
    if rc != 0:
        raise RuntimeError(f"dataset_tool {args}: {err}")
    return (json.loads(out), np.load(prefix + "_ids.npy"), np.load(prefix + "_mask.npy"), np.load(prefix + "_y.npy"))


read_tokens.n = 0


def opts(**kw):
    out = []
    for k, v in kw.items():
        if v is not None:
            out += ["-o", f"{k}={v}"]
    return out


def main():
    suite = Suite()
    with tmpdir() as d:
        # corpora
        jdocs, jlabels, classes = [], [], []
        with open(os.path.join(d, "c.jsonl"), "w", encoding="utf-8") as f:
            for k in range(37):
                doc = make_doc(k)
                lab = ["pos", "neg", "neutral"][(k * 5) % 3]
                f.write(json.dumps({"id": k, "text": doc, "label": lab}, ensure_ascii=k % 2 == 0) + "\n")
                if k % 9 == 4:
                    f.write("\n")
                jdocs.append(doc)
                if lab not in classes:
                    classes.append(lab)
                jlabels.append(classes.index(lab))
        raw = "\ufeff" + "".join(make_doc(k) + ("\r\n" if k % 4 == 1 else "\n") + ("  \n" if k % 6 == 0 else "")
                                 for k in range(29))
        with open(os.path.join(d, "lines.txt"), "w", encoding="utf-8", newline="") as f:
            f.write(raw)
        ldocs = text_docs_lines(raw)
        fort_names = ["science", "food", "love"]
        fdocs, flabels = [], []
        for c, name in enumerate(fort_names):
            body = "".join(make_doc(10 * c + k).replace(" over ", "\n  over ") + "\n%\n" for k in range(6 + c))
            body += "%\n" + make_doc(99 + c) + "\n"  # an empty document, then one without a final separator
            with open(os.path.join(d, name), "w", encoding="utf-8") as f:
                f.write(body)
            docs = text_docs_separated(body, "%")
            fdocs += docs
            flabels += [sorted(fort_names).index(name)] * len(docs)
        os.makedirs(os.path.join(d, "pos"))
        os.makedirs(os.path.join(d, "neg"))
        udocs, ulabels, ufiles = [], [], []
        for k in range(9):
            folder = "pos" if k % 3 else "neg"
            p = os.path.join(d, folder, f"{k}.txt")
            doc = make_doc(k) + "\n" + make_doc(k + 1) + ("\n" if k % 2 else "")
            with open(p, "w", encoding="utf-8") as f:
                f.write(doc)
            udocs.append(doc)
            ulabels.append(["neg", "pos"].index(folder))
            ufiles.append(p)
        buf = io.BytesIO()
        wdocs, wlabels = [], []
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
            for k in range(17):
                doc = make_doc(50 + k)
                for ext, data in (("txt", doc.encode()), ("cls", str(k % 4).encode())):
                    ti = tarfile.TarInfo(f"shard/{k:04d}.{ext}")
                    ti.size = len(data)
                    tf.addfile(ti, io.BytesIO(data))
                wdocs.append(doc)
                wlabels.append(k % 4)
        with open(os.path.join(d, "s.tar"), "wb") as f:
            f.write(buf.getvalue())

        corpora = [  # name, format and options, label options, files, documents, labels
            ("jsonl", ["jsonl"], opts(label_field="label"), [os.path.join(d, "c.jsonl")], jdocs, jlabels),
            ("text lines", ["text"], [], [os.path.join(d, "lines.txt")], ldocs, None),
            ("fortunes", ["text", *opts(separator="%")], opts(label_from="name"),
             [os.path.join(d, n) for n in fort_names], fdocs, flabels),
            ("files", ["text", *opts(unit="file")], opts(label_from="folder"), ufiles, udocs, ulabels),
            ("webdataset", ["webdataset"], opts(label_ext="cls"), [os.path.join(d, "s.tar")], wdocs, wlabels),
        ]
        for tname, eos_token in TOKENIZERS.items():
            tok = os.path.join(TOKDIR, tname)
            configs = [
                ("truncate right", 12, dict(mode="truncate"), {}),
                ("truncate left", 9, dict(mode="truncate", padding="left"), dict(left=True)),
                ("truncate add_bos", 10, dict(mode="truncate", add_bos="true") if tok_info(tok)["bos"] >= 0 else None,
                 dict(add_bos=True)),
                ("no special", 7, dict(mode="truncate", special_tokens="false"), dict(special=False)),
                ("pack", 11, dict(mode="pack", eos_token=eos_token), dict(eos_token=eos_token)),
            ]
            for cname, T, o, ref_kw in configs:
                if o is None:
                    continue
                for name, fmt, label_opts, files, docs, labels in corpora:
                    pack = o["mode"] == "pack"
                    if pack:
                        label_opts = opts(label_ext="none") if name == "webdataset" else []
                        labels = None
                    what = f"{tname} {cname} {name}"
                    args = [fmt[0], *opts(tokenizer=tok, seq_len=T, **o), *fmt[1:], *label_opts, *files]
                    try:
                        got = read_tokens(d, args)
                    except RuntimeError as e:
                        suite.check(False, f"{what}: {e}")
                        continue
                    want = reference(tok, docs, labels, T, o["mode"], **ref_kw)
                    compare(suite, what, got, *want)
                    if name == "jsonl" and not pack:
                        suite.check(got[0]["class_names"] == classes, f"{what}: class names {got[0]['class_names']}")
                    if name == "fortunes" and not pack:
                        suite.check(got[0]["class_names"] == sorted(fort_names), f"{what}: class names")

        # token files against NumPy: ids, mask (left and right padding), labels; a .bin stream
        rng = np.random.default_rng(5)
        ids = rng.integers(0, 1000, size=(13, 6)).astype(np.int32)
        lens = rng.integers(1, 7, size=13)
        mask = np.zeros((13, 6), np.bool_)
        for r, n in enumerate(lens):
            if r % 2:
                mask[r, 6 - n:] = True
            else:
                mask[r, :n] = True
        labels = rng.integers(0, 5, size=13).astype(np.uint8)
        np.save(os.path.join(d, "ids.npy"), np.asfortranarray(ids))
        np.save(os.path.join(d, "mask.npy"), mask)
        np.save(os.path.join(d, "labels.npy"), labels)
        got = read_tokens(d, ["tokens", "-o", f"mask={d}/mask.npy", "-o", f"labels={d}/labels.npy", f"{d}/ids.npy"])
        compare(suite, "tokens", got, ids.astype(np.int64), mask.astype(np.uint8), labels.astype(np.int32))
        suite.check(got[0]["vocab"] == int(ids.max()) + 1, "tokens: vocab is max id + 1")
        stream = rng.integers(0, 50257, size=1000).astype("<u2")
        stream.tofile(os.path.join(d, "train.bin"))
        got = read_tokens(d, ["token-stream", "-o", "dtype=uint16", "-o", "seq_len=64", "-o", "vocab=50257",
                              f"{d}/train.bin"], batch=5)
        n = len(stream) // 64
        compare(suite, "token-stream", got, stream[:n * 64].astype(np.int64).reshape(n, 64), np.ones((n, 64), np.uint8),
                None)

        # Debian's fortunes, when installed: one sample per fortune (the count strfile wrote in
        # each .dat header), classes the sorted file names
        fdir = "/usr/share/games/fortunes"
        cats = ["computers", "food", "literature", "love", "science"]
        if all(os.path.exists(os.path.join(fdir, c + ".dat")) for c in cats):
            want = 0
            for c in cats:
                with open(os.path.join(fdir, c + ".dat"), "rb") as f:
                    want += int.from_bytes(f.read(8)[4:8], "big")
            info = ds_tool.info(["source", "text", *opts(tokenizer=os.path.join(TOKDIR, "gpt2_bytelevel"), seq_len=64,
                                                         separator="%", label_from="name"),
                                 *[os.path.join(fdir, c) for c in cats]])
            suite.check(info["count"] == want and info["class_names"] == cats,
                        f"fortunes: {info['count']} samples (strfile counts {want}), classes {info['class_names']}")
    suite.finish()


if __name__ == "__main__":
    main()
