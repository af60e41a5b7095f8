"""Shared pieces of the probe reference tests: data sets (Gaussian blobs from a fixed
seed, a Fashion-MNIST subset from Debian's dataset-fashion-mnist), the documented
standardisation, validation split and logistic objective written independently in
NumPy, and a runner for `repeval probe`."""
import gzip
import json
import os

import numpy as np

from common import repeval

FASHION_DIR = os.environ.get("REPEVAL_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")
MASK = (1 << 64) - 1


def blobs(n, d, k, sep, seed, offset=0.0):
    """n rows: class y uniform in [0, k), x = centre[y] + N(0, I) + offset, centres ~ sep * N(0, I/d)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * sep / np.sqrt(d)
    def draw(m):
        y = rng.integers(0, k, m)
        return (centres[y] + rng.normal(size=(m, d)) + offset).astype(np.float32), y.astype(np.int64)
    return draw(n), draw(max(n // 3, 50))


def _idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[0:4], "big")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion(n_train, n_test, pool=2):
    """(x, y), (xt, yt) from the IDX files: the first n rows, pixels / 255 averaged over
    pool x pool squares (14 x 14 = 196 features for pool 2), or None if absent."""
    files = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz"]
    paths = [os.path.join(FASHION_DIR, f) for f in files]
    if not all(os.path.exists(p) for p in paths):
        return None
    def prep(images, labels, n):
        im = images[:n].astype(np.float64) / 255.0
        s = im.shape[1] // pool
        im = im[:, :s * pool, :s * pool].reshape(n, s, pool, s, pool).mean(axis=(2, 4))
        return im.reshape(n, -1).astype(np.float32), labels[:n].astype(np.int64)
    return prep(_idx(paths[0]), _idx(paths[1]), n_train), prep(_idx(paths[2]), _idx(paths[3]), n_test)


def standardise_stats(x):
    """Training mean and population std; a feature with var <= (n eps mean)^2 gets std 1."""
    x = np.asarray(x, dtype=np.float64)
    mu = x.mean(0)
    var = ((x - mu) ** 2).mean(0)
    bound = (len(x) * np.finfo(np.float64).eps * mu) ** 2
    return mu, np.where((var > 0) & (var > bound), np.sqrt(var), 1.0)


def logistic_objective(z, y, w, b, lam):
    """(1/n) sum -log softmax(W z + b)_y + lam/2 ||W||^2 (the bias is not penalised)."""
    logits = z @ w.T + b
    m = logits.max(1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(logits - m).sum(1))
    return float(np.mean(lse - logits[np.arange(len(y)), y]) + 0.5 * lam * np.sum(w * w))


def validation_mask(n, fraction, seed):
    """The documented split: Fisher-Yates driven by splitmix64(seed), first round(f n) are validation."""
    perm = list(range(n))
    state = seed & MASK
    for i in range(n - 1, 0, -1):
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        z ^= z >> 31
        j = z % (i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    mask = np.zeros(n, bool)
    mask[perm[:int(np.floor(fraction * n + 0.5))]] = True
    return mask


def save_set(tmp, name, x, y):
    px, py = os.path.join(tmp, name + "_x.npy"), os.path.join(tmp, name + "_y.npy")
    np.save(px, x)
    np.save(py, y)
    return px, py


def probe(tmp, train, test, *args, val=None):
    """Run repeval probe --json on (x, y) pairs; returns (parsed JSON, rc, stderr)."""
    tx, ty = save_set(tmp, "train", *train)
    sx, sy = save_set(tmp, "test", *test)
    cmd = ["probe", "--train", tx, "--train-labels", ty, "--test", sx, "--test-labels", sy, "--json"]
    if val is not None:
        vx, vy = save_set(tmp, "val", *val)
        cmd += ["--val", vx, "--val-labels", vy]
    rc, out, err = repeval(*cmd, *args)
    return (json.loads(out) if rc == 0 else None), rc, err


def ranks(scores, y):
    """Position of the label when classes are sorted by score, ties to the lower class."""
    s = scores[np.arange(len(y)), y][:, None]
    k = np.arange(scores.shape[1])[None, :]
    return ((scores > s) | ((scores == s) & (k < y[:, None]))).sum(1)
