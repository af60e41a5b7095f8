"""Shared helpers for the Python reference tests: run the repeval program,
count checks, and an independent NumPy implementation of the metrics."""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

REPEVAL = os.environ.get("REPEVAL_BIN", "repeval")
NPY_TOOL = os.environ.get("REPEVAL_NPY_TOOL", "npy_tool")
MPIEXEC = os.environ.get("REPEVAL_MPIEXEC") or "mpiexec"
SOURCE_DIR = os.environ.get(
    "REPEVAL_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


class Suite:
    """Counts checks; finish() prints 'N passed, M failed' and exits non-zero on failure."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL: {what}", file=sys.stderr)
        return cond

    def close(self, got, want, rtol, what):
        ok = got is not None and want is not None and np.isfinite(got) and \
            abs(got - want) <= rtol * max(abs(got), abs(want), 1e-300)
        return self.check(ok, f"{what}: got {got!r}, want {want!r} (rtol {rtol})")

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed")
        sys.exit(1 if self.failed else 0)


def run(args, timeout=300, env=None):
    """Run a command; returns (returncode, stdout, stderr)."""
    e = dict(os.environ)
    if env:
        e.update(env)
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=e)
    return p.returncode, p.stdout, p.stderr


# Commands that initialise MPI: Open MPI's components leave allocations that
# LeakSanitizer cannot attribute (their frames show as unknown modules), so leak
# checking is off for these processes only; every other command stays checked.
MPI_COMMANDS = {"run", "merge", "finalize"}


def repeval(*args, timeout=300):
    args = [str(a) for a in args]
    env = None
    if args and (args[0] in MPI_COMMANDS or "--sharded" in args):
        env = {"ASAN_OPTIONS": (os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0").strip(":")}
    return run([REPEVAL] + args, timeout=timeout, env=env)


def mpirun(ranks, *args, timeout=300):
    env = {"ASAN_OPTIONS": (os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0").strip(":")}
    return run([MPIEXEC, "--oversubscribe", "-n", str(ranks), REPEVAL] + [str(a) for a in args],
               timeout=timeout, env=env)


def cka_value(*args):
    """repeval cka ... --json -> parsed dict (raises on failure)."""
    rc, out, err = repeval("cka", *args, "--json")
    if rc != 0:
        raise RuntimeError(f"repeval cka {args} exited {rc}: {err}")
    return json.loads(out)


# ---- the demo job's header: the demo CNN (jobs/demo) on Fashion-MNIST -------------

FMNIST = os.environ.get("FMNIST", "/usr/share/datasets/fashion-mnist")
DEMO = os.path.join(SOURCE_DIR, "jobs", "demo")


def _fmnist(name, split, count, offset=None):
    prefix = "t10k" if split == "test" else "train"
    return (f"  {name}:\n    format: idx\n    images: {FMNIST}/{prefix}-images-idx3-ubyte.gz\n"
            f"    labels: {FMNIST}/{prefix}-labels-idx1-ubyte.gz\n    normalize: {{mean: [0.286], std: [0.353]}}\n"
            + (f"    offset: {offset}\n" if offset is not None else "") + f"    limit: {count}\n")


def demo_job(name, n, checkpoints, layers, rest, dataset="test", train=None):
    """The text of a job on the demo CNN (jobs/demo/cnn.yaml) and Fashion-MNIST
    (normalised as the demo is): `name`; data `dataset`, the first n test images,
    and with train=(offset, count) also `train`, count training images from offset;
    model `cnn` with checkpoints (a list of paths under jobs/demo/checkpoints, or
    one glob string under it) and layers (a list of taps); then `rest`, the job's
    text after the header (analyses:, forward:, output: ...), as given."""
    data = _fmnist(dataset, "test", n) + (_fmnist("train", "train", train[1], train[0]) if train else "")
    if isinstance(checkpoints, str):
        ckpts = f'"{DEMO}/checkpoints/{checkpoints}"'
    else:
        ckpts = "[" + ", ".join(f'"{DEMO}/checkpoints/{c}"' for c in checkpoints) + "]"
    return (f"name: {name}\ndata:\n{data}models:\n  - name: cnn\n    arch: {DEMO}/cnn.yaml\n"
            f"    checkpoints: {ckpts}\n    layers: [{', '.join(layers)}]\n{rest.lstrip(chr(10))}")


def demo_embed(checkpoint, layers, limit, batch, out, split="test"):
    """`repeval embed` of the demo CNN at jobs/demo/checkpoints/<checkpoint> on the first
    `limit` Fashion-MNIST images of split (test or train), normalised as in demo_job;
    layers: a list of taps. Returns (returncode, stdout, stderr)."""
    prefix = "t10k" if split == "test" else "train"
    return repeval("embed", "--model", os.path.join(DEMO, "cnn.yaml"), "--checkpoint",
                   os.path.join(DEMO, "checkpoints", checkpoint), "--data",
                   f"idx:{FMNIST}/{prefix}-images-idx3-ubyte.gz,{FMNIST}/{prefix}-labels-idx1-ubyte.gz",
                   "--normalize", "0.286:0.353", "--layers", ",".join(layers), "--batch", batch, "--limit", limit,
                   "--out", out, timeout=600)


def write_activations(d, taps, n):
    """Activation exports (docs/job-spec.md#activations-computed-elsewhere) under d:
    an .npy dataset `d` (x.npy of zeros, y.npy) of n samples and, for every checkpoint
    label c, acts/c/d with one flatten tap per layer. taps: {(label, layer): n x dim
    float32}. Returns {(label, layer): the tap's shard file}, readable by the commands."""
    np.save(os.path.join(d, "x.npy"), np.zeros((n, 2), np.float32))
    np.save(os.path.join(d, "y.npy"), np.arange(n, dtype=np.int64) % 3)
    files = []
    for f in ("x.npy", "y.npy"):
        with open(os.path.join(d, f), "rb") as fh:
            files.append({"name": f, "bytes": os.path.getsize(os.path.join(d, f)),
                          "sha256": hashlib.sha256(fh.read()).hexdigest()})
    paths = {}
    for label in dict.fromkeys(c for c, _ in taps):
        base = os.path.join(d, "acts", label, "d")
        entries = []
        for (c, name), x in taps.items():
            if c != label:
                continue
            os.makedirs(os.path.join(base, f"{name}.flatten"), exist_ok=True)
            paths[(c, name)] = os.path.join(base, f"{name}.flatten", "0.npy")
            np.save(paths[(c, name)], x)
            entries.append({"name": name, "mode": "flatten", "dim": x.shape[1], "rows_per_sample": 1,
                            "dtype": "float32", "shards": [{"file": f"{name}.flatten/0.npy", "first": 0, "count": n}]})
        np.save(os.path.join(base, "sample_ids.npy"), np.arange(n, dtype=np.int64))
        man = {"format": "repeval-activations", "version": 1, "producer": "test",
               "dataset": {"name": "d", "format": "npy", "files": files, "normalize": None, "count": n},
               "samples": {"ids": "sample_ids.npy", "count": n}, "taps": entries}
        with open(os.path.join(base, "activations.json"), "w") as f:
            json.dump(man, f)
    return paths


def tmpdir():
    return tempfile.TemporaryDirectory(prefix="repeval-test-")


# ---- independent NumPy reference: HSIC from its definitions -------------------

def gram_linear(x):
    """Linear kernel of column-centred features: the same HSIC/CKA as the raw
    kernel (H K H is unchanged), without cancellation for offset features."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    x = x - x.mean(axis=0)
    return x @ x.T


def gram_rbf(x, t=1.0):
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    s2 = t * t * np.median(d2)
    return np.exp(-d2 / (2 * s2))


def hsic_biased(k, l):
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return np.trace(k @ h @ l @ h) / (n - 1) ** 2


def hsic_unbiased(k, l):
    """HSIC_1 of Song et al. (2012), eq. 5, with zeroed diagonals."""
    n = k.shape[0]
    kt = k - np.diag(np.diag(k))
    lt = l - np.diag(np.diag(l))
    one = np.ones(n)
    term = np.trace(kt @ lt) + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2)) \
        - 2.0 / (n - 2) * (one @ kt @ lt @ one)
    return term / (n * (n - 3))


def cka(k, l, debiased=False):
    f = hsic_unbiased if debiased else hsic_biased
    return f(k, l) / np.sqrt(f(k, k) * f(l, l))


def minibatch_cka_matrix(taps, batch, unbiased=True, kernel="linear", sigma2=None):
    """Minibatch CKA (Nguyen et al. 2021) from explicit per-batch kernels: the mean
    over batches of cut by global index (tails of < 4 samples dropped) of HSIC,
    then normalised. taps: list of (n x d) arrays."""
    n = taps[0].shape[0]
    P = len(taps)
    sums = np.zeros((P, P))
    f = hsic_unbiased if unbiased else hsic_biased
    for s in range(0, n, batch):
        e = min(n, s + batch)
        if e - s < 4:
            continue
        ks = []
        for p, t in enumerate(taps):
            x = np.asarray(t[s:e], dtype=np.float64).reshape(e - s, -1)
            if kernel == "linear":
                ks.append(gram_linear(x))
            else:
                d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
                ks.append(np.exp(-d2 / (2 * sigma2[p])))
        for p in range(P):
            for q in range(P):
                sums[p, q] += f(ks[p], ks[q])
    d = np.sqrt(np.diag(sums))
    return sums / np.outer(d, d)


def rbf_sigma2(x, t=1.0):
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return t * t * np.median(d2)
