"""Job files for the `repeval run` scenarios, written as JSON (a subset of YAML) with
absolute paths to the demo's model file and checkpoints."""
import json
import os
import shutil

import numpy as np

from common import ROOT, Failure, run_proc, thread_env

DEMO = os.path.join(ROOT, "jobs", "demo")
FMNIST = os.environ.get("FMNIST", "/usr/share/datasets/fashion-mnist")
NORMALIZE = {"mean": [0.286], "std": [0.353]}
LAYERS = ["conv1:mean", "conv2:mean", "pool2", "fc1", "fc2"]


def fmnist(split, limit, offset=0):
    d = {"format": "idx", "images": os.path.join(FMNIST, f"{split}-images-idx3-ubyte.gz"),
         "labels": os.path.join(FMNIST, f"{split}-labels-idx1-ubyte.gz"), "normalize": NORMALIZE, "limit": limit}
    if offset:
        d["offset"] = offset
    return d


def npy_images(folder, n, seed=9):
    """An n x 1 x 28 x 28 float32 .npy dataset (already normalised) with int64 labels."""
    x, y = os.path.join(folder, f"images_{n}.npy"), os.path.join(folder, f"labels_{n}.npy")
    if not (os.path.exists(x) and os.path.exists(y)):
        rng = np.random.default_rng(seed)
        out = np.lib.format.open_memmap(x, mode="w+", dtype=np.float32, shape=(n, 1, 28, 28))
        for s in range(0, n, 10000):
            out[s:s + 10000] = rng.standard_normal((min(10000, n - s), 1, 28, 28), dtype=np.float32)
        out.flush()
        del out
        np.save(y, rng.integers(0, 10, n))
    return {"format": "npy", "inputs": x, "labels": y}


def model(checkpoints="seed{0..2}/epoch_{00..05}.*"):
    return {"name": "cnn", "arch": os.path.join(DEMO, "cnn.yaml"),
            "checkpoints": os.path.join(DEMO, "checkpoints", checkpoints), "layers": LAYERS}


def write(folder, name, job):
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{name}.yaml")
    with open(path, "w") as f:
        json.dump(job, f, indent=1)
    return path


def run(ctx, job, out, ranks=None, threads=1):
    """repeval run (under mpiexec with `ranks`); returns (Proc, manifest dict)."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [ctx.repeval, "run", job, "--out", out, "--quiet", "--fresh", "--threads", threads]
    if ranks:
        cmd = ["mpiexec", "--oversubscribe", "-n", ranks] + cmd
    p = run_proc(cmd, env=thread_env(threads))
    try:
        with open(os.path.join(out, "manifest.json")) as f:
            return p, json.load(f)
    except (OSError, ValueError) as e:
        raise Failure(f"{out}/manifest.json: {e}")
