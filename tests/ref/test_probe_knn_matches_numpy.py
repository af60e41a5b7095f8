"""repeval probe --kind knn against an independent NumPy implementation of the
weighted k-NN classifier of the DINO evaluation: L2-normalised features (float64),
cosine similarities, the k most similar training rows (ties: lower training index),
votes exp(s / T) summed best-first, classes ranked by vote (ties: lower class).

Exact agreement: every top-1 prediction and the top-1 / top-5 counts, on Gaussian
blobs with 12 classes (k = 20, T = 0.07 and k = 5, T = 0.5), on a Fashion-MNIST
pixel subset when installed, and on a data set whose similarities are all exact,
with duplicated training rows (every similarity tie decided by the training index),
a zero row (similarity 0 to everything) and k larger than the training set."""
import os

import numpy as np

from common import Suite, tmpdir
from probe_ref import blobs, fashion, probe, ranks


def knn_votes(x, y, xt, k, temp, nclass):
    def norm(a):
        a = np.asarray(a, dtype=np.float64)
        n = np.sqrt((a * a).sum(1, keepdims=True))
        return np.divide(a, n, out=np.zeros_like(a), where=n > 0)
    s = norm(xt) @ norm(x).T
    k = min(k, len(x))
    votes = np.zeros((len(xt), nclass))
    idx = np.arange(len(x))
    for i in range(len(xt)):
        order = np.lexsort((idx, -s[i]))[:k]  # by similarity descending, then index
        for j in order:
            votes[i, y[j]] += np.exp(s[i, j] / temp)
    return votes


def compare(t, name, train, test, k, temp):
    x, y = train
    xt, yt = test
    nclass = int(max(y.max(), yt.max())) + 1
    with tmpdir() as tmp:
        ppath = os.path.join(tmp, "pred.npy")
        r, rc, err = probe(tmp, train, test, "--kind", "knn", "--k", k, "--temperature", temp, "--predictions", ppath)
        if not t.check(rc == 0, f"{name}: repeval exited {rc}: {err}"):
            return
        pred = np.load(ppath)
    votes = knn_votes(x, y, xt, k, temp, nclass)
    ref = votes.argmax(1)
    rk = ranks(votes, yt)
    t.check(np.array_equal(pred, ref), f"{name} k={k} T={temp}: {int((pred != ref).sum())} predictions differ")
    t.check(r["test"]["correct"] == int((rk == 0).sum()), f"{name}: top-1 {r['test']['correct']} vs {(rk == 0).sum()}")
    if nclass >= 10:
        t.close(r["test"]["top5"], float((rk < 5).mean()), 1e-15, f"{name}: top-5")
    else:
        t.check(r["test"]["top5"] is None, f"{name}: no top-5 below 10 classes")
    print(f"{name} k={k} T={temp}: top-1 {r['test']['top1']:.4f}, top-5 {r['test']['top5']}")


def main():
    t = Suite()
    train, test = blobs(2000, 32, 12, sep=3.0, seed=8, offset=0.5)
    compare(t, "blobs", train, test, 20, 0.07)
    compare(t, "blobs", train, test, 5, 0.5)
    fm = fashion(3000, 600)
    if fm is None:
        print("Fashion-MNIST not installed: skipping that data set")
    else:
        compare(t, "fashion", fm[0], fm[1], 20, 0.07)
    # ties: rows with one entry +-1 (norm 1) or four entries +-1 (norm 2), so every
    # normalised value and every similarity is exact; duplicated rows of other classes
    rng = np.random.default_rng(9)
    def exact_rows(m):
        r = rng.choice([-1.0, 1.0], size=(m, 4))
        single = rng.random(m) < 0.5
        r[single] *= np.eye(4)[rng.integers(0, 4, single.sum())]
        return r.astype(np.float32)
    base = exact_rows(40)
    base[0] = 0  # a zero row
    x = np.vstack([base, base, base[:10]])
    y = rng.integers(0, 3, len(x))
    xt = exact_rows(200)
    yt = rng.integers(0, 3, len(xt))
    compare(t, "ties", (x, y), (xt, yt), 7, 0.07)
    compare(t, "ties k > n", (x, y), (xt, yt), 500, 1.0)
    t.finish()


if __name__ == "__main__":
    main()
