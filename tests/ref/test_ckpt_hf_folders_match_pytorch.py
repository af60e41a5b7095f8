"""Hugging Face model folders read by the library give the PyTorch tensors they
were written from, bit-exactly after float32 conversion, whatever the layout:
model.safetensors, sharded safetensors with model.safetensors.index.json,
pytorch_model.bin, and sharded pytorch_model-0000k-of-0000n.bin with
pytorch_model.bin.index.json (tests/data/make_hf_folder_fixtures.py). Checked:

  * every tensor's values, dtype (float16/bfloat16 kept as stored) and shape, the
    order (header order; weight_map order when sharded), the shard holding each
    tensor, zero-copy (every tensor inside the memory map of its shard), metadata;
  * `repeval inspect` reports "safetensors (3 shards)" and each tensor's shard;
  * safetensors is preferred over pytorch_model.bin in one folder;
  * the content hash is one value for the same tensors in all four layouts and
    differs for other weights;
  * a hub cache repo: `inspect --list 'step*'` gives the branches in natural order
    (step0, step1000, step2000, step10000, not step10000 before step2000) with their
    commits and snapshot folders, the repo itself opens refs/main, a sharded
    snapshot reads like the folder it came from, and two branches with identical
    files under different commits have one content hash;
  * a folder of run folders lists in natural order, without files or hidden folders."""
import json
import os
import shutil
import subprocess

import numpy as np

from ckpt_fixtures import PYTHON, dump, same_f32
from common import SOURCE_DIR, Suite, repeval


def make(out):
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([PYTHON, os.path.join(SOURCE_DIR, "tests", "data", "make_hf_folder_fixtures.py"), out], check=True)
    with open(os.path.join(out, "fixtures.json")) as f:
        return json.load(f)


def inspect(path, *opts):
    rc, out, err = repeval("inspect", path, *opts)
    if rc != 0:
        raise RuntimeError(f"repeval inspect {path} {opts} exited {rc}: {err}")
    return json.loads(out) if "--json" in opts else out


def check_folder(s, fx, rel, exp, ref_dir):
    """Values, order, shards, zero-copy and metadata of one model folder."""
    path = os.path.join(fx, rel)
    idx, vals = dump(path, [], fx)
    what = rel
    s.check(idx["format"] == exp["format"], f"{what}: format {idx['format']}, want {exp['format']}")
    shards = [os.path.basename(p) for p in idx["shards"]]
    s.check(shards == exp["shards"], f"{what}: shards {shards}, want {exp['shards']}")
    names = [t["name"] for t in idx["tensors"]]
    s.check(names == exp["order"], f"{what}: order {names}, want {exp['order']}")
    for t in idx["tensors"]:
        want = exp["tensors"].get(t["name"])
        if not s.check(want is not None, f"{what}: unexpected tensor {t['name']}"):
            continue
        s.check(t["dtype"] == want["dtype"] and t["shape"] == want["shape"],
                f"{what}: {t['name']} is {t['dtype']} {t['shape']}, want {want['dtype']} {want['shape']}")
        s.check(t["shard"] == want["shard"], f"{what}: {t['name']} in shard {t['shard']}, want {want['shard']}")
        s.check(t["in_map"], f"{what}: {t['name']} does not point into its shard's memory map")
        ref = np.load(os.path.join(ref_dir, t["name"] + ".npy"))
        s.check(same_f32(vals[t["name"]], ref), f"{what}: {t['name']} values differ from PyTorch's")
    s.check(idx["metadata"] == exp["metadata"], f"{what}: metadata {idx['metadata']}, want {exp['metadata']}")
    # repeval inspect: the same table, with the shard of every tensor
    j = inspect(path, "--json")
    s.check(j["format"] == exp["format"] and [os.path.basename(p) for p in j["shards"]] == exp["shards"],
            f"{what}: inspect --json format/shards {j['format']} {j.get('shards')}")
    got = [(t["name"], t["dtype"], t["shape"], t["shard"]) for t in j["tensors"]]
    want = [(n, exp["tensors"][n]["dtype"], exp["tensors"][n]["shape"], exp["shards"][exp["tensors"][n]["shard"]])
            for n in exp["order"]]
    s.check(got == want, f"{what}: inspect --json tensors {got[:3]}..., want {want[:3]}...")
    text = inspect(path)
    n = len(exp["shards"])
    label = f"{exp['format']} ({n} shard{'s' if n > 1 else ''}), {len(exp['order'])} tensors"
    s.check(text.splitlines()[0].startswith(f"{path}: {label}"), f"{what}: inspect says {text.splitlines()[0]!r}")
    return idx["content_hash"]


def main():
    s = Suite()
    fx = os.path.join(os.getcwd(), "hf-fixtures")
    spec = make(fx)
    ref = os.path.join(fx, "ref")
    hashes = {rel: check_folder(s, fx, rel, exp, ref) for rel, exp in spec["folders"].items()}
    same = {hashes[rel] for rel in spec["same_content"][0]}
    s.check(len(same) == 1, f"content hash differs between layouts of the same tensors: {hashes}")
    s.check(hashes["both"] == hashes["single"], "both/: the safetensors file is not the one read")

    # the hub cache
    hub = spec["hub"]
    repo = os.path.join(fx, hub["repo"])
    j = inspect(repo, "--list", "step*", "--json")
    names = [e["name"] for e in j["checkpoints"]]
    s.check(j["kind"] == "hf-cache" and names == hub["steps"], f"cache branches {names}, want {hub['steps']}")
    for e in j["checkpoints"]:
        commit = hub["commits"][e["name"]]
        s.check(e["revision"] == commit, f"branch {e['name']}: commit {e['revision']}, want {commit}")
        s.check(os.path.realpath(e["path"]) == os.path.realpath(os.path.join(repo, "snapshots", commit)),
                f"branch {e['name']}: folder {e['path']}")
    j = inspect(repo, "--list", "main", "--json")
    s.check([e["name"] for e in j["checkpoints"]] == ["main"], f"exact branch 'main' lists {j['checkpoints']}")
    text = inspect(repo, "--list", "step*")
    lines = [ln.split()[0] for ln in text.splitlines()[1:]]
    s.check(lines == hub["steps"], f"inspect --list text order {lines}")
    branch_hash = {}
    for e in inspect(repo, "--list", "*", "--json")["checkpoints"]:
        branch_hash[e["name"]] = inspect(e["path"], "--json", "--hash")["content_hash"]
    a, b = hub["same_content"]
    s.check(branch_hash[a] == branch_hash[b], f"{a} and {b} hold the same files but hash {branch_hash}")
    s.check(len({branch_hash[k] for k in ("step0", "step1000", "step2000")}) == 3, f"distinct weights collide: "
            f"{branch_hash}")
    main_j = inspect(repo, "--json", "--hash")
    s.check(main_j["content_hash"] == branch_hash[hub["main"]] and
            os.path.basename(main_j["folder"]) == hub["commits"]["main"],
            f"the repo folder opens {main_j.get('folder')}, want refs/main's snapshot")
    snap = os.path.join(repo, "snapshots", hub["commits"]["step2000"])
    check_folder(s, fx, os.path.relpath(snap, fx), hub["step2000"], os.path.join(fx, "ref-step2000"))

    # a plain folder of run folders
    j = inspect(os.path.join(fx, spec["runs"]["dir"]), "--list", "step*", "--json")
    names = [e["name"] for e in j["checkpoints"]]
    s.check(j["kind"] == "folders" and names == spec["runs"]["steps"], f"run folders {names}")
    s.finish()


if __name__ == "__main__":
    main()
