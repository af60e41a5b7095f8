#!/usr/bin/env python3
"""Train the demo's byte-level BPE tokenizer on the training fortunes and write it as
the Hugging Face tokenizers library saves one (tokenizer.json, tokenizer_config.json,
special_tokens_map.json), as GPT-NeoX / Pythia tokenizers are laid out: ByteLevel
pre-tokenizer (GPT-2 split pattern, no prefix space), ByteLevel post-processor and
decoder, a BPE model whose vocabulary starts with <|endoftext|> (0) and <|padding|> (1),
then the 256 byte characters, then one token per merge.

Training (Sennrich et al. 2016, on GPT-2's byte alphabet): count the pre-tokenized
words, then repeatedly merge the most frequent adjacent pair; ties go to the pair
whose (left, right) strings sort first, so the result is deterministic. Stops at
--vocab tokens or when no pair occurs twice.

usage: train_tokenizer.py OUTDIR [--vocab 1024] [--fortunes DIR]
"""
import argparse
import collections
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lmtext  # noqa: E402


def word_counts(texts):
    counts = collections.Counter()
    for t in texts:
        counts.update(lmtext.to_byte_chars(p) for p in lmtext.pretokenize(t))
    return counts


def train_merges(counts, n_merges):
    """The merges, most frequent pair first; incremental pair counts over distinct words."""
    words = [list(w) for w in counts]
    freq = list(counts.values())
    pairs = collections.Counter()
    where = collections.defaultdict(set)
    for i, w in enumerate(words):
        for p in zip(w, w[1:]):
            pairs[p] += freq[i]
            where[p].add(i)
    merges = []
    while len(merges) < n_merges and pairs:
        top = max(pairs.values())
        if top < 2:
            break
        best = min(p for p, c in pairs.items() if c == top)
        merges.append(best)
        a, b = best
        for i in sorted(where.pop(best)):
            w = words[i]
            for p in zip(w, w[1:]):  # take the word's pairs out ...
                pairs[p] -= freq[i]
                if pairs[p] <= 0:
                    del pairs[p]
            out, k = [], 0
            while k < len(w):
                if k + 1 < len(w) and w[k] == a and w[k + 1] == b:
                    out.append(a + b)
                    k += 2
                else:
                    out.append(w[k])
                    k += 1
            words[i] = out
            for p in zip(out, out[1:]):  # ... and put the merged word's back
                pairs[p] += freq[i]
                where[p].add(i)
    return merges


def atomic_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def special(id_, content):
    return {"id": id_, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True}


def write(outdir, merges):
    os.makedirs(outdir, exist_ok=True)
    vocab = {lmtext.EOT: 0, lmtext.PAD: 1}
    for ch in sorted(lmtext.BYTE_CHAR):
        vocab[ch] = len(vocab)
    for a, b in merges:
        vocab[a + b] = len(vocab)
    byte_level = {"add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    tj = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [special(0, lmtext.EOT), special(1, lmtext.PAD)],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", **byte_level},
        "post_processor": {"type": "ByteLevel", **byte_level},
        "decoder": {"type": "ByteLevel", **byte_level},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges]},
    }
    atomic_json(os.path.join(outdir, "tokenizer.json"), tj)
    atomic_json(os.path.join(outdir, "tokenizer_config.json"), {
        "add_bos_token": False,
        "add_eos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": {str(t["id"]): {k: v for k, v in t.items() if k != "id"}
                                 for t in tj["added_tokens"]},
        "bos_token": lmtext.EOT,
        "clean_up_tokenization_spaces": False,
        "eos_token": lmtext.EOT,
        "model_max_length": 128,
        "pad_token": lmtext.PAD,
        "tokenizer_class": "GPTNeoXTokenizer",
        "unk_token": lmtext.EOT,
    })
    atomic_json(os.path.join(outdir, "special_tokens_map.json"),
                {"bos_token": lmtext.EOT, "eos_token": lmtext.EOT, "pad_token": lmtext.PAD, "unk_token": lmtext.EOT})
    return vocab


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--fortunes", default=lmtext.FORTUNES)
    args = ap.parse_args()
    t0 = time.monotonic()
    train, _ = lmtext.split(lmtext.corpus(args.fortunes))
    counts = word_counts(t for t, _ in train)
    merges = train_merges(counts, args.vocab - 2 - 256)
    vocab = write(args.outdir, merges)
    print(f"{len(train)} training fortunes, {len(counts)} distinct words, {len(merges)} merges, "
          f"vocabulary {len(vocab)}: {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    main()
