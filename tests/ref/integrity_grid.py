"""A training grid of a small MLP with known defects, written as real checkpoint
files (safetensors and torch.save), for the integrity analysis tests:

  step0 ... step12000 every 1000, each step a small random drift of every tensor;
  step3000  a copy of step2000 (saved with torch.save, step2000 as safetensors);
  step5000  fc2.weight byte-identical to step4000's, everything else moves on;
  step7000  a far-away state (what a run's final model would be) with the norms of
            the true step7000: it breaks the CKA trend of its neighbours;
  step8000  missing;
  step10000 onwards: fc3.bias three times larger (a norm jump that leaves CKA alone:
            a bias only translates the last layer's output).

Also the inputs (N x 8 float32) and an independent float64 forward pass."""
import json
import os
import struct

import numpy as np

SIZES = [("fc1", 16, 8), ("fc2", 12, 16), ("fc3", 4, 12)]
STEPS = [s for s in range(0, 13000, 1000) if s != 8000]
N = 512

MODEL = """name: tiny-mlp
input: [1, 1, 8]
modules:
  - {name: flatten, type: flatten}
  - {name: fc1, type: linear}
  - {name: relu1, type: relu}
  - {name: fc2, type: linear}
  - {name: relu2, type: relu}
  - {name: fc3, type: linear}
"""


def write_safetensors(path, tensors):
    """A safetensors file: 8-byte header length, JSON header, little-endian data."""
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a, dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def states(defects=True):
    """{step: {name: float32 array}} of the grid as saved (without defects: every
    step of the smooth drift)."""
    rng = np.random.default_rng(20261204)
    cur = {}
    for name, o, i in SIZES:
        cur[f"{name}.weight"] = rng.standard_normal((o, i)) / np.sqrt(i)
        cur[f"{name}.bias"] = 0.1 * rng.standard_normal(o)
    out = {}
    for s in range(0, 13000, 1000):
        if s > 0:
            for k, v in cur.items():
                cur[k] = v + 0.03 * v.std() * rng.standard_normal(v.shape)
        st = {k: v.astype(np.float32) for k, v in cur.items()}
        if not defects:
            out[s] = st
            continue
        if s == 3000:
            st = {k: v.copy() for k, v in out[2000].items()}
        if s == 5000:
            st["fc2.weight"] = out[4000]["fc2.weight"].copy()
        if s == 7000:
            far = {}
            for k, v in cur.items():
                w = v + 1.5 * v.std() * rng.standard_normal(v.shape)
                far[k] = (w * np.linalg.norm(v) / np.linalg.norm(w)).astype(np.float32)
            st = far
        if s >= 10000:
            st["fc3.bias"] = (3.0 * cur["fc3.bias"]).astype(np.float32)
        out[s] = st
    return {s: v for s, v in out.items() if s in STEPS or not defects}


def write_grid(d, defects=True):
    """The model file, inputs, labels and checkpoints under d; returns the states."""
    import torch
    st = states(defects)
    os.makedirs(os.path.join(d, "run"), exist_ok=True)
    with open(os.path.join(d, "mlp.yaml"), "w") as f:
        f.write(MODEL)
    rng = np.random.default_rng(7)
    np.save(os.path.join(d, "x.npy"), rng.standard_normal((N, 8)).astype(np.float32))
    np.save(os.path.join(d, "y.npy"), rng.integers(0, 3, N).astype(np.int64))
    for s, t in st.items():
        if s == 3000:
            torch.save({k: torch.from_numpy(v) for k, v in t.items()}, os.path.join(d, "run", f"step{s}.pt"))
        else:
            write_safetensors(os.path.join(d, "run", f"step{s}.safetensors"), t)
    return st


def forward(state, x):
    """float64 outputs of fc1, fc2 and fc3."""
    x = np.asarray(x, dtype=np.float64)
    w = {k: np.asarray(v, dtype=np.float64) for k, v in state.items()}
    h1 = x @ w["fc1.weight"].T + w["fc1.bias"]
    h2 = np.maximum(h1, 0) @ w["fc2.weight"].T + w["fc2.bias"]
    h3 = np.maximum(h2, 0) @ w["fc3.weight"].T + w["fc3.bias"]
    return {"fc1": h1, "fc2": h2, "fc3": h3}


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def job(d, out, extra=""):
    return f"""
name: integrity
data:
  probe: {{format: npy, inputs: {d}/x.npy, labels: {d}/y.npy}}
models:
  - {{name: mlp, arch: {d}/mlp.yaml, checkpoints: "{d}/run/step*", layers: [fc1, fc2, fc3]}}
analyses:
  integrity: {{batch: 128{extra}}}
forward: {{batch: 64}}
output: {{dir: {out}}}
"""
