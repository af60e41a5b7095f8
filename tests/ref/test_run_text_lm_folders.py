"""`repeval run` end to end on a language model: text in a JSON Lines corpus,
tokenized by the tokenizer.json of the model folder, three Hugging Face checkpoint
folders of a GPT-NeoX decoder matched by `ckpts/step*` (natural order: step2 before
step10), taps `hidden_states.K` mean-pooled over the tokens or taken at the last
token, minibatch CKA of all pairs, spectra and a probe of the line's source
(a string `label_field`).

Checked against independent references:
- the minibatch CKA matrix against the float64 PyTorch decoder of hf_ref.py on the
  byte-level token ids written out here (the tokenizer has no merges, so a text's
  ids are its UTF-8 bytes), through common.minibatch_cka_matrix; tolerance 1e-5
  (the engine computes in float32);
- the probe's test accuracy against `repeval probe` on the embeddings that
  `repeval embed` dumps for the same ids (exactly);
- metrics.csv is byte-identical at 1, 2 and 3 ranks."""
import csv
import json
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import hf_ref  # noqa: E402
from common import Suite, minibatch_cka_matrix, mpirun, repeval, tmpdir  # noqa: E402

os.environ["OPENBLAS_NUM_THREADS"] = "1"
LICENSES = os.environ.get("REPEVAL_LICENSE_DIR", "/usr/share/common-licenses")
SOURCES = ["GPL-3", "Apache-2.0", "CC0-1.0", "MPL-2.0"]
T, B = 48, 16
STEPS = [10, 2, 100]  # natural order: step2, step10, step100
SEED = 20261202  # the validation split seed of repeval run
CFG = {"model_type": "gpt_neox", "architectures": ["GPTNeoXForCausalLM"], "vocab_size": 260, "hidden_size": 64,
       "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 96, "hidden_act": "gelu",
       "rotary_pct": 0.25, "rotary_emb_base": 10000, "max_position_embeddings": 64, "layer_norm_eps": 1e-5,
       "use_parallel_residual": True, "tie_word_embeddings": False}
LAYERS = ["hidden_states.0:mean", "hidden_states.1:mean", "hidden_states.2:last"]


def byte_map():
    """GPT-2's byte-to-unicode map (printable bytes stand for themselves)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def tokenizer_json():
    """A byte-level BPE tokenizer without merges: id b for byte b, 256 = <|endoftext|>."""
    m = byte_map()
    return {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [{"id": 256, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                              "rstrip": False, "normalized": False, "special": True}],
            "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                              "use_regex": True},
            "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                      "vocab": {m[b]: b for b in range(256)}, "merges": []}}


def corpus():
    """(train, test): lists of (text, source), the sources interleaved."""
    per = []
    for name in SOURCES:
        with open(os.path.join(LICENSES, name), encoding="utf-8") as f:
            lines = [l.strip() for l in f if len(l.strip()) >= 20 and l.isascii()]
        per.append([(l, name) for l in lines[:60]])
    train = [per[k][i] for i in range(40) for k in range(len(SOURCES))]
    test = [per[k][i] for i in range(40, 60) for k in range(len(SOURCES))]
    return train, test


def ids_mask(texts):
    ids = np.zeros((len(texts), T), dtype=np.int64)
    mask = np.zeros((len(texts), T), dtype=np.int64)
    for r, t in enumerate(texts):
        b = list(t.encode("utf-8"))[:T]
        ids[r, :len(b)] = b
        mask[r, :len(b)] = 1
    return ids, mask


def pooled(hs, mask):
    """The three taps of LAYERS from hidden states (L + 1) x (N, T, D)."""
    m = mask[:, :, None].astype(np.float64)
    last = mask.sum(1) - 1
    return [(hs[0] * m).sum(1) / m.sum(1), (hs[1] * m).sum(1) / m.sum(1), hs[2][np.arange(len(mask)), last]]


def job(d, out):
    return f"""
name: lm
data:
  test:
    format: jsonl
    files: {d}/test.jsonl
    label_field: source
    tokenizer: {d}/ckpts/step2
    seq_len: {T}
  train:
    format: jsonl
    files: {d}/train.jsonl
    field: text
    label_field: source
    tokenizer: {d}/ckpts/step2/tokenizer.json
    seq_len: {T}
models:
  - name: lm
    checkpoints: {d}/ckpts/step*
    layers: [{", ".join(LAYERS)}]
analyses:
  cka: {{dataset: test, batch: {B}}}
  spectrum: {{dataset: test}}
  probe: {{train: train, test: test, lambdas: [1e-3, 1e-1]}}
forward: {{batch: 8}}
output: {{dir: {out}}}
"""


def main():
    s = Suite()
    train, test = corpus()
    with tmpdir() as d:
        sds = {}
        for k, step in enumerate(STEPS):
            f = os.path.join(d, "ckpts", f"step{step}")
            os.makedirs(f)
            with open(os.path.join(f, "config.json"), "w") as fh:
                json.dump(CFG, fh)
            with open(os.path.join(f, "tokenizer.json"), "w") as fh:
                json.dump(tokenizer_json(), fh)
            sd = hf_ref.random_state_dict(CFG, 100 + k)
            full = {"gpt_neox." + n: v for n, v in sd.items()}
            full["embed_out.weight"] = np.random.default_rng(7 + k).standard_normal((260, 64)).astype(np.float32)
            stored = hf_ref.write_weights(f, full, "F32")
            sds[step] = {n: stored["gpt_neox." + n] for n in sd}
        for name, rows in (("train", train), ("test", test)):
            with open(os.path.join(d, name + ".jsonl"), "w") as fh:
                for text, src in rows:
                    fh.write(json.dumps({"text": text, "source": src}) + "\n")
        with open(os.path.join(d, "job.yaml"), "w") as fh:
            fh.write(job(d, os.path.join(d, "out1")))
        rc, _, err = repeval("run", os.path.join(d, "job.yaml"), "--quiet", timeout=600)
        if not s.check(rc == 0, f"run: {err}"):
            s.finish()
        out = os.path.join(d, "out1")
        metrics = open(os.path.join(out, "metrics.csv"), "rb").read()
        rows = list(csv.DictReader(open(os.path.join(out, "metrics.csv"))))

        # minibatch CKA against the PyTorch reference
        ids, mask = ids_mask([t for t, _ in test])
        order = sorted(STEPS)
        taps = []
        for step in order:
            taps += pooled(hf_ref.forward(CFG, sds[step], ids, mask), mask)
        want = minibatch_cka_matrix(taps, B)
        got = np.load(os.path.join(out, "cka_cka.npy"))
        names = [(r["checkpoint"], r["layer"]) for r in csv.DictReader(open(os.path.join(out, "cka_cka_taps.csv")))]
        expect = [(f"step{st}", l.split(":")[0]) for st in order for l in LAYERS]
        s.check(names == expect, f"taps in natural checkpoint order: {names}")
        err_cka = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
        s.check(err_cka <= 1e-5, f"minibatch CKA vs PyTorch float64: max abs error {err_cka:.2e} (<= 1e-5)")
        print(f"# CKA max abs error vs PyTorch: {err_cka:.2e}")

        # the manifest checksums the checkpoint folders and the dataset files, tokenizer included
        man = json.load(open(os.path.join(out, "manifest.json")))
        ck = [i for i in man["inputs"] if i["kind"] == "checkpoint"]
        s.check(len(ck) == 3 and all("error" not in i and i["bytes"] > 0 for i in ck),
                f"checkpoint folders checksummed in the manifest: {ck}")
        s.check(len({i["fnv1a64"] for i in ck}) == 3, "three different checkpoint checksums")
        s.check(not any("identical content" in w for w in man["warnings"]),
                f"no identical-content warning for three different folders: {man['warnings']}")
        ds = [i["path"] for i in man["inputs"] if i["kind"] == "dataset"]
        s.check(sum(p.endswith("tokenizer.json") for p in ds) == 2, f"tokenizer.json among the dataset inputs: {ds}")

        # spectra: one row per tap
        spec = [r for r in rows if r["analysis"] == "spectrum" and r["metric"] == "effective_rank"]
        s.check(len(spec) == len(expect), f"{len(spec)} spectrum rows, want {len(expect)}")

        # probe: repeval probe on the embeddings of repeval embed
        tr_ids, tr_mask = ids_mask([t for t, _ in train])
        classes = []
        for _, src in train + test:
            if src not in classes:
                classes.append(src)
        for split, (i_, m_, rws) in (("train", (tr_ids, tr_mask, train)), ("test", (ids, mask, test))):
            np.save(os.path.join(d, f"{split}_ids.npy"), i_)
            np.save(os.path.join(d, f"{split}_mask.npy"), m_.astype(np.uint8))
            np.save(os.path.join(d, f"{split}_labels.npy"), np.array([classes.index(r[1]) for r in rws], np.int64))
        for step in order:
            ck = os.path.join(d, "ckpts", f"step{step}")
            for split in ("train", "test"):
                e = os.path.join(d, "emb", f"step{step}", split)
                rc, _, err = repeval("embed", "--model", ck, "--checkpoint", ck, "--input",
                                     os.path.join(d, f"{split}_ids.npy"), "--attention-mask",
                                     os.path.join(d, f"{split}_mask.npy"), "--layers", ",".join(LAYERS),
                                     "--batch", 8, "--out", e)
                s.check(rc == 0, f"embed step{step} {split}: {err}")
            for layer in LAYERS:
                tap = layer.split(":")[0]
                e = os.path.join(d, "emb", f"step{step}")
                emb = [f for f in os.listdir(os.path.join(e, "test")) if f.startswith(tap + ".") or
                       f.startswith(tap + "_")]
                if not s.check(len(emb) == 1, f"one embed file for {tap}: {emb}"):
                    continue
                rc, o, err = repeval("probe", "--train", os.path.join(e, "train", emb[0]), "--train-labels",
                                     os.path.join(d, "train_labels.npy"), "--test", os.path.join(e, "test", emb[0]),
                                     "--test-labels", os.path.join(d, "test_labels.npy"), "--lambdas", "1e-3,1e-1",
                                     "--seed", SEED, "--json")
                if not s.check(rc == 0, f"probe step{step} {tap}: {err}"):
                    continue
                want_top1 = json.loads(o)["test"]["top1"]
                r = [r for r in rows if (r["analysis"], r["metric"], r["checkpoint_a"], r["layer_a"]) ==
                     ("probe", "test_top1", f"step{step}", tap)]
                s.check(len(r) == 1 and float(r[0]["value"]) == float(want_top1),
                        f"probe step{step} {tap}: run {r and r[0]['value']}, repeval probe {want_top1}")

        # repeval embed --data reads the corpus like the job: the same rows and labels as the ids
        ck = os.path.join(d, "ckpts", "step2")
        e = os.path.join(d, "emb-data")
        rc, _, err = repeval("embed", "--model", ck, "--data", f"jsonl:{d}/test.jsonl", "--data-opt",
                             f"tokenizer={ck}", "--data-opt", f"seq_len={T}", "--data-opt", "label_field=source",
                             "--layers", ",".join(LAYERS), "--batch", 8, "--out", e)
        if s.check(rc == 0, f"embed --data jsonl: {err}"):
            ref = os.path.join(d, "emb", "step2", "test")
            for f in sorted(os.listdir(ref)):
                if f.endswith(".npy"):
                    s.check(np.array_equal(np.load(os.path.join(e, f)), np.load(os.path.join(ref, f))),
                            f"embed --data {f} equals embed --input")
            lab = np.load(os.path.join(e, "labels.npy"))
            s.check(np.array_equal(lab, np.load(os.path.join(d, "test_labels.npy"))), "embed --data labels")
        rc, _, err = repeval("embed", "--model", ck, "--data", f"jsonl:{d}/test.jsonl", "--data-opt", "seq_len=8",
                             "--layers", "hidden_states.1:mean", "--out", os.path.join(d, "emb-bad"))
        s.check(rc != 0 and "tokenizer" in err, f"embed --data jsonl without a tokenizer is refused: {err}")

        # the same bytes at 2 and 3 ranks
        for ranks in (2, 3):
            o = os.path.join(d, f"out{ranks}")
            with open(os.path.join(d, f"job{ranks}.yaml"), "w") as fh:
                fh.write(job(d, o))
            rc, _, err = mpirun(ranks, "run", os.path.join(d, f"job{ranks}.yaml"), "--quiet", timeout=600)
            if s.check(rc == 0, f"run at {ranks} ranks: {err}"):
                s.check(open(os.path.join(o, "metrics.csv"), "rb").read() == metrics,
                        f"metrics.csv at {ranks} ranks is byte-identical to 1 rank")

        # a copied folder under another label is run, with a warning that names both labels
        shutil.copytree(os.path.join(d, "ckpts", "step2"), os.path.join(d, "ckpts", "step5"))
        o = os.path.join(d, "out-copy")
        with open(os.path.join(d, "job-copy.yaml"), "w") as fh:
            fh.write(job(d, o))
        rc, _, err = repeval("run", os.path.join(d, "job-copy.yaml"), "--quiet", timeout=600)
        if s.check(rc == 0, f"run with a copied checkpoint folder: {err}"):
            w = json.load(open(os.path.join(o, "manifest.json")))["warnings"]
            s.check(sum("checkpoints 'step2' and 'step5' have identical content" in x for x in w) == 1,
                    f"the manifest warns once about the copy: {w}")
    s.finish()


if __name__ == "__main__":
    main()
