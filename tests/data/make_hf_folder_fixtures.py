#!/usr/bin/env python3
"""Hugging Face model folders for the model-folder reader, written with PyTorch
(torch.save for pytorch_model*.bin) and the small safetensors writer of
make_ckpt_fixtures.py, laid out as transformers' save_pretrained and the hub's
cache do (no transformers or huggingface_hub needed, nothing fetched).

usage: make_hf_folder_fixtures.py OUTDIR            folders + OUTDIR/fixtures.json
       make_hf_folder_fixtures.py --corpus DIR     seeds of fuzz_ckpt_index into DIR/ckpt_index/

  single/       model.safetensors (float32, float16, bfloat16), config.json
  sharded/      the same tensors in model-0000k-of-00003.safetensors + index
  bin_single/   pytorch_model.bin (torch.save of the same state_dict)
  bin_sharded/  pytorch_model-0000k-of-00002.bin + pytorch_model.bin.index.json
  both/         model.safetensors and a different pytorch_model.bin (safetensors wins)
  hub/models--EleutherAI--tiny/   a cache repo: refs/{main,step0,step1000,step2000,
                step10000}, snapshots/<commit>/ holding links into blobs/; step10000
                and main name one commit, step1000 another with the same files
  runs/         step0 step1000 step2000 step10000 folders (+ a file and a hidden folder)
  ref/          float32 reference values per tensor (PyTorch's own conversion)
  ref-step2000/ the same for the cache's step2000 weights

fixtures.json: per folder the expected format, shard files, tensor order, dtypes,
shapes, shard of each tensor and metadata; the cache's branches in natural order
with their commits; the runs in natural order."""
import collections
import hashlib
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_ckpt_fixtures import ST_DTYPES, safetensors_bytes  # noqa: E402

DTYPE_NAME = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


def state_dict(seed):
    """A GPT-NeoX-like state dict: float32 embeddings (one above 64 KiB, so the content
    hash samples it), float16 attention weights, bfloat16 norms and biases."""
    g = torch.Generator().manual_seed(seed)
    sd = collections.OrderedDict()
    sd["gpt_neox.embed_in.weight"] = torch.randn(320, 64, generator=g)
    for layer in range(2):
        p = f"gpt_neox.layers.{layer}."
        sd[p + "input_layernorm.weight"] = (1 + 0.1 * torch.randn(64, generator=g)).bfloat16()
        sd[p + "attention.query_key_value.weight"] = torch.randn(192, 64, generator=g).half()
        sd[p + "attention.query_key_value.bias"] = torch.randn(192, generator=g).bfloat16()
        sd[p + "mlp.dense_h_to_4h.weight"] = torch.randn(256, 64, generator=g).half()
    sd["gpt_neox.final_layer_norm.weight"] = torch.ones(64).bfloat16()
    sd["embed_out.weight"] = torch.randn(320, 64, generator=g)
    return sd


# the shards: which tensors each file holds (the index lists them sorted, as save_pretrained does)
SPLIT3 = [lambda n: n.startswith("gpt_neox.embed_in") or ".layers.0." in n,
          lambda n: ".layers.1." in n,
          lambda n: not (n.startswith("gpt_neox.embed_in") or ".layers." in n)]
SPLIT2 = [lambda n: n.startswith("gpt_neox.embed_in") or ".layers.0." in n,
          lambda n: not (n.startswith("gpt_neox.embed_in") or ".layers.0." in n)]
CONFIG = json.dumps({"architectures": ["GPTNeoXForCausalLM"], "hidden_size": 64, "num_hidden_layers": 2,
                     "vocab_size": 320}, indent=2).encode()


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def torch_bytes(obj):
    import io
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def model_files(sd, layout):
    """{file name: bytes} of a model folder; layout in single, sharded, bin_single, bin_sharded."""
    files = {"config.json": CONFIG}
    if layout == "single":
        files["model.safetensors"] = safetensors_bytes(sd, metadata={"format": "pt"})
    elif layout == "bin_single":
        files["pytorch_model.bin"] = torch_bytes(sd)
    else:
        st = layout == "sharded"
        split = SPLIT3 if st else SPLIT2
        weight_map, total = {}, 0
        for k, keep in enumerate(split):
            part = collections.OrderedDict((n, t) for n, t in sd.items() if keep(n))
            name = (f"model-{k + 1:05d}-of-{len(split):05d}.safetensors" if st else
                    f"pytorch_model-{k + 1:05d}-of-{len(split):05d}.bin")
            files[name] = safetensors_bytes(part, metadata={"format": "pt"}) if st else torch_bytes(part)
            for n, t in part.items():
                weight_map[n] = name
                total += t.numel() * t.element_size()
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        files["model.safetensors.index.json" if st else "pytorch_model.bin.index.json"] = \
            json.dumps(index, indent=2, sort_keys=True).encode()
    return files


def expectation(sd, files, layout):
    """What the library must report for a folder of `files`."""
    shards = sorted(f for f in files if f.endswith(".safetensors") or f.endswith(".bin"))
    if layout in ("sharded", "bin_sharded"):
        idx = json.loads(files[[f for f in files if f.endswith(".index.json")][0]])
        order = list(idx["weight_map"])
        shard_of = {n: shards.index(f) for n, f in idx["weight_map"].items()}
        meta = {"total_size": str(idx["metadata"]["total_size"])}
    else:
        order, shard_of, meta = list(sd), {n: 0 for n in sd}, {}
    if layout in ("single", "sharded"):
        meta["format"] = "pt"
    return {"format": "safetensors" if layout in ("single", "sharded") else "pytorch", "shards": shards,
            "order": order, "metadata": meta,
            "tensors": {n: {"dtype": DTYPE_NAME[t.dtype], "shape": list(t.shape), "shard": shard_of[n]}
                        for n, t in sd.items()}}


def write_folder(out, rel, files):
    for name, data in files.items():
        write(os.path.join(out, rel, name), data)


def hub_repo(out, rel, branches):
    """A cache repo: branches {branch: files}; identical files share one blob, and
    a branch whose files equal another's gets its own commit all the same (the
    duplicate-checkpoint problem of public repos). Links are relative, like the hub's."""
    repo = os.path.join(out, rel)
    commits = {}
    for branch, files in branches.items():
        commit = hashlib.sha1(("commit of " + branch).encode()).hexdigest()
        if branch == "main":
            commit = commits["step10000"]
        commits[branch] = commit
        write(os.path.join(repo, "refs", branch), commit.encode())
        snap = os.path.join(repo, "snapshots", commit)
        os.makedirs(snap, exist_ok=True)
        for name, data in files.items():
            blob = hashlib.sha256(data).hexdigest()
            bp = os.path.join(repo, "blobs", blob)
            if not os.path.exists(bp):
                write(bp, data)
            link = os.path.join(snap, name)
            if not os.path.lexists(link):
                os.symlink(os.path.join("..", "..", "blobs", blob), link)
    return commits


def corpus(out):
    """Index files for fuzz_ckpt_index, whose first shard (sorted by name) holds a and
    model.b, the second c and d: valid ones, every disagreement, odd JSON."""
    d = os.path.join(out, "ckpt_index")
    os.makedirs(d, exist_ok=True)
    s1, s2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    good = {"a": s1, "c": s2, "d": s2, "model.b": s1}
    seeds = [
        json.dumps({"metadata": {"total_size": 34}, "weight_map": good}, indent=2, sort_keys=True),
        json.dumps({"weight_map": {"d": s2, "model.b": s1, "c": s2, "a": s1}}),
        json.dumps({"metadata": {"total_size": 34, "format": "pt", "nested": {"x": [1, 2.5, None]}, "neg": -1},
                    "weight_map": good, "extra": [True]}),
        json.dumps({"weight_map": dict(good, a=s2)}),
        json.dumps({"weight_map": {"a": s1, "c": s2, "d": s2}}),
        json.dumps({"weight_map": dict(good, e=s1)}),
        json.dumps({"weight_map": dict(good, a="model-00003-of-00002.safetensors")}),
        json.dumps({"weight_map": dict(good, a="../" + s1)}),
        '{"weight_map": {"a": "%s", "a": "%s", "c": "%s", "d": "%s", "model.b": "%s"}}' % (s1, s1, s2, s2, s1),
        json.dumps({"weight_map": {}}),
        json.dumps({"weight_map": ["a", s1]}),
        json.dumps({"weight_map": good, "weight_map ": good}),
        '{"weight_map": {"a\\u0000x": "%s"}, "metadata": {"\\ud83d\\ude00": "\\u00e9"}}' % s1,
        json.dumps({"metadata": {"total_size": 99999999999999999999}, "weight_map": {"a": 1}}),
    ]
    for text in seeds:
        raw = text.encode()
        write(os.path.join(d, hashlib.sha1(raw).hexdigest()), raw)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--corpus":
        corpus(sys.argv[2])
        return
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(os.path.join(out, "ref"), exist_ok=True)
    sd = state_dict(0)
    for n, t in sd.items():
        np.save(os.path.join(out, "ref", n + ".npy"), t.to(torch.float32).numpy())
    spec = {"folders": {}, "same_content": [["single", "sharded", "bin_single", "bin_sharded"]]}
    for layout in ("single", "sharded", "bin_single", "bin_sharded"):
        files = model_files(sd, layout)
        write_folder(out, layout, files)
        spec["folders"][layout] = expectation(sd, files, layout)
    other = state_dict(1)
    both = model_files(sd, "single")
    both["pytorch_model.bin"] = torch_bytes(other)
    write_folder(out, "both", both)
    spec["folders"]["both"] = expectation(sd, both, "single")
    spec["folders"]["both"]["shards"] = ["model.safetensors"]
    # the hub cache: step1000 and step10000 hold the same weights under two commits
    w = {0: state_dict(10), 1000: state_dict(11), 2000: state_dict(12)}
    branches = {"step0": model_files(w[0], "single"), "step1000": model_files(w[1000], "single"),
                "step2000": model_files(w[2000], "sharded"), "step10000": model_files(w[1000], "single")}
    branches["main"] = branches["step10000"]
    repo = os.path.join("hub", "models--EleutherAI--tiny")
    commits = hub_repo(out, repo, branches)
    os.makedirs(os.path.join(out, "ref-step2000"), exist_ok=True)
    for n, t in w[2000].items():
        np.save(os.path.join(out, "ref-step2000", n + ".npy"), t.to(torch.float32).numpy())
    spec["hub"] = {"repo": repo, "steps": ["step0", "step1000", "step2000", "step10000"], "commits": commits,
                   "main": "step10000", "same_content": ["step1000", "step10000"],
                   "step2000": expectation(w[2000], branches["step2000"], "sharded")}
    for step, k in (("step0", 0), ("step1000", 1000), ("step2000", 2000), ("step10000", 1000)):
        write_folder(out, os.path.join("runs", step), model_files(w[k], "single"))
    write(os.path.join(out, "runs", "step5000.txt"), b"not a folder")
    os.makedirs(os.path.join(out, "runs", ".step9"), exist_ok=True)
    spec["runs"] = {"dir": "runs", "steps": ["step0", "step1000", "step2000", "step10000"]}
    with open(os.path.join(out, "fixtures.json"), "w") as f:
        json.dump(spec, f, indent=1)


if __name__ == "__main__":
    main()
