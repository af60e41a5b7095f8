"""`repeval rsa` against SciPy/NumPy references written here from the definitions:
RDMs by scipy.spatial.distance.pdist (correlation, cosine, euclidean; sqeuclidean /
features as rsatoolbox's 'euclidean'), compared by scipy.stats.spearmanr (average
ranks), pearsonr, Kendall's tau-a counted pair by pair (concordant - discordant over
all pairs), cosine, and the whitened cosine / Pearson of Diedrichsen et al. 2021 as
v1^T V^-1 v2 / sqrt(v1^T V^-1 v1 v2^T V^-1 v2) with V = (C C^T) o (C C^T) for the
pairwise contrast matrix C (independent of the double-centring used by repeval).

Cases: tied dissimilarities (duplicated patterns), RDMs over class means (--labels),
the RDM files (squareform order) to 1e-13, three files (every pair), undefined
comparisons (a constant RDM) and bad input. Tolerance 1e-12 relative on every value."""
import itertools
import json
import os

import numpy as np
from scipy.spatial.distance import pdist
from scipy.stats import pearsonr, spearmanr

from common import Suite, repeval, tmpdir

METHODS = ["spearman", "pearson", "kendall_tau_a", "cosine", "whitened_cosine", "whitened_pearson"]


def tau_a(x, y):
    m = len(x)
    s = 0.0
    for i in range(m - 1):
        s += np.sum(np.sign(x[i] - x[i + 1:]) * np.sign(y[i] - y[i + 1:]))
    return s / (m * (m - 1) / 2)


def whitened(x, y, n, centre):
    if centre:
        x, y = x - x.mean(), y - y.mean()
    c = np.zeros((len(x), n))
    for r, (i, j) in enumerate(itertools.combinations(range(n), 2)):
        c[r, i], c[r, j] = 1, -1
    xi = c @ c.T
    vi = np.linalg.inv(xi * xi)
    return x @ vi @ y / np.sqrt((x @ vi @ x) * (y @ vi @ y))


def rdm(x, dist):
    x = np.asarray(x, dtype=np.float64)
    if dist == "sqeuclidean":
        return pdist(x, "sqeuclidean") / x.shape[1]
    return pdist(x, dist)


def reference(da, db, n):
    return {"spearman": spearmanr(da, db)[0], "pearson": pearsonr(da, db)[0], "kendall_tau_a": tau_a(da, db),
            "cosine": da @ db / np.linalg.norm(da) / np.linalg.norm(db),
            "whitened_cosine": whitened(da, db, n, False), "whitened_pearson": whitened(da, db, n, True)}


def run_rsa(s, files, dist, extra=()):
    rc, out, err = repeval("rsa", *files, "--distance", dist, "--method", "all", "--json", *extra)
    if not s.check(rc == 0, f"rsa {dist} {extra}: exit {rc}: {err}"):
        return None
    return json.loads(out)


def main():
    s = Suite()
    rng = np.random.default_rng(17)
    with tmpdir() as d:
        n = 16
        a = rng.standard_normal((n, 7))
        b = np.tanh(a @ rng.standard_normal((7, 5))) + 0.4 * rng.standard_normal((n, 5))
        b[4] = b[9]  # a duplicated pattern: tied dissimilarities
        c = rng.standard_normal((n, 3)).astype(np.float32)
        files = [os.path.join(d, f"{x}.npy") for x in "abc"]
        for f, x in zip(files, (a, b, c)):
            np.save(f, x)
        for dist in ("correlation", "cosine", "euclidean", "sqeuclidean"):
            prefix = os.path.join(d, f"rdm_{dist}")
            j = run_rsa(s, files, dist, ["--rdm-out", prefix])
            if j is None:
                continue
            rd = [rdm(x, dist) for x in (a, b, c.astype(np.float64))]
            for f in range(3):
                got = np.load(f"{prefix}_{f}.npy")
                s.check(got.shape == rd[f].shape and np.abs(got - rd[f]).max() <= 1e-13 * max(1, np.abs(rd[f]).max()),
                        f"{dist}: RDM file {f} (max diff {np.abs(got - rd[f]).max() if got.shape == rd[f].shape else got.shape})")
            s.check(len(j["pairs"]) == 3, f"{dist}: three pairs")
            for p in j["pairs"]:
                want = reference(rd[p["a"]], rd[p["b"]], n)
                for m in METHODS:
                    s.close(p[m], want[m], 1e-12, f"{dist} pair {p['a']},{p['b']} {m}")
        # over class means
        labels = rng.integers(0, 6, size=40)
        labels[labels == 3] = 5  # class 3 absent: RDMs over the 5 classes present
        x = rng.standard_normal((40, 8)).astype(np.float32)
        y = (x[:, :4] @ rng.standard_normal((4, 6)) + rng.standard_normal((40, 6))).astype(np.float32)
        px, py, pl = (os.path.join(d, f) for f in ("x.npy", "y.npy", "labels.npy"))
        np.save(px, x)
        np.save(py, y)
        np.save(pl, labels.astype(np.int64))
        classes = np.unique(labels)
        mx = np.array([x[labels == k].astype(np.float64).mean(0) for k in classes])
        my = np.array([y[labels == k].astype(np.float64).mean(0) for k in classes])
        j = run_rsa(s, [px, py], "euclidean", ["--labels", pl])
        if j:
            want = reference(pdist(mx), pdist(my), len(classes))
            s.check(j["stimuli"] == len(classes), f"class RDMs over {j['stimuli']} classes, want {len(classes)}")
            for m in METHODS:
                s.close(j["pairs"][0][m], want[m], 1e-12, f"class means {m}")
        # a constant RDM (equidistant patterns): Pearson-type comparisons undefined, cosine defined
        eq = np.eye(5) * 3.0
        pe, pr = os.path.join(d, "eq.npy"), os.path.join(d, "r5.npy")
        np.save(pe, eq)
        np.save(pr, rng.standard_normal((5, 4)))
        rc, out, err = repeval("rsa", pe, pr, "--distance", "euclidean", "--method", "pearson", "--method", "cosine",
                               "--json")
        if s.check(rc == 0, f"constant RDM: exit {rc}: {err}"):
            p = json.loads(out)["pairs"][0]
            s.check(p["pearson"] is None and "does not vary" in p.get("pearson_reason", ""),
                    f"constant RDM: pearson undefined with a reason: {p}")
            s.check(p["cosine"] is not None, f"constant RDM: cosine defined: {p}")
        # bad input
        rc, _, err = repeval("rsa", px, pe)
        s.check(rc == 1 and "same stimuli" in err, f"different row counts: exit {rc}: {err}")
        zero = np.zeros((6, 3))
        zero[1] = 1
        pz = os.path.join(d, "zero.npy")
        np.save(pz, zero)
        rc, _, err = repeval("rsa", pz, pz, "--distance", "cosine")
        s.check(rc == 1 and "stimulus 0 has a zero pattern" in err, f"zero pattern, cosine: exit {rc}: {err}")
        rc, _, err = repeval("rsa", px, py, "--method", "kendall")
        s.check(rc == 2 and "kendall_tau_a" in err, f"unknown method: exit {rc}: {err}")
        two = os.path.join(d, "two.npy")
        np.save(two, np.ones((2, 3)))
        rc, _, err = repeval("rsa", two, two)
        s.check(rc == 1 and "at least 3 stimuli" in err, f"2 stimuli: exit {rc}: {err}")
    s.finish()


if __name__ == "__main__":
    main()
