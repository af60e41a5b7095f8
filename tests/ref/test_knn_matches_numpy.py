"""`repeval knn` against NumPy implementations written here from the definitions of
Huh et al. 2024 (The Platonic Representation Hypothesis; mutual k-NN, CKNNA with the
unbiased HSIC of Song et al. 2012, cycle k-NN) and of the Jaccard index, on dense
n x n float64 similarity matrices:

- random features, several k and widths, n across block boundaries (512): every value
  to 1e-12 (counts are exact; CKNNA sums in another order), neighbour lists equal;
- integer features with duplicate and zero rows (exact ties, broken by the smaller
  index): the lists equal the reference's, which uses the same float64 similarity
  dot(x_i, x_j) * (1/|x_i| * 1/|x_j|); such rows are recomputed (JSON "rechecked");
- near-duplicates closer than float32 can tell apart (similarities differing by
  1e-10 .. 1e-8): the float64 order is kept;
- bad input: k >= n, NaN, different row counts exit 1 with the reason."""
import json
import os

import numpy as np

from common import Suite, repeval, tmpdir


def canonical_sim(x):
    x = np.asarray(x, dtype=np.float64)
    nr = np.sqrt((x * x).sum(1))
    inv = np.where(nr > 0, 1.0 / np.where(nr > 0, nr, 1.0), 0.0)
    return (x @ x.T) * (inv[:, None] * inv[None, :])


def knn_lists(s, k):
    """k most similar other samples per row, ties by the smaller index."""
    n = s.shape[0]
    s = s.copy()
    np.fill_diagonal(s, -np.inf)
    return np.array([np.lexsort((np.arange(n), -s[i]))[:k] for i in range(n)])


def hsic_unbiased(K, L):
    m = K.shape[0]
    K = K.copy()
    L = L.copy()
    np.fill_diagonal(K, 0)
    np.fill_diagonal(L, 0)
    return (np.sum(K * L.T) + K.sum() * L.sum() / ((m - 1) * (m - 2)) - 2 * np.sum(K @ L) / (m - 2)) / (m * (m - 3))


def reference(sa, sb, k):
    n = sa.shape[0]
    ia, ib = knn_lists(sa, k), knn_lists(sb, k)
    ma, mb = np.zeros((n, n)), np.zeros((n, n))
    r = np.arange(n)[:, None]
    ma[r, ia] = 1
    mb[r, ib] = 1
    inter = (ma * mb).sum(1)
    m = ma * mb
    ka, kb = sa.copy(), sb.copy()
    cknna = hsic_unbiased(m * ka, m * kb) / np.sqrt(hsic_unbiased(ma * ka, ma * ka) * hsic_unbiased(mb * kb, mb * kb))
    self_idx = np.arange(n)[:, None, None]
    return {"mutual_knn": inter.mean() / k, "jaccard_knn": (inter / (2 * k - inter)).mean(),
            "cycle_knn_ab": (ia[ib] == self_idx).reshape(n, -1).max(1).mean(),
            "cycle_knn_ba": (ib[ia] == self_idx).reshape(n, -1).max(1).mean(), "cknna": cknna}, ia, ib


def run_knn(s, files, ks, prefix):
    args = ["knn", *files, "--json", "--neighbors", prefix]
    for k in ks:
        args += ["--k", k]
    rc, out, err = repeval(*args)
    if not s.check(rc == 0, f"knn {files}: exit {rc}: {err}"):
        return None
    return json.loads(out)


def compare_case(s, d, name, a, b, ks, tol=1e-12):
    fa, fb = os.path.join(d, f"{name}_a.npy"), os.path.join(d, f"{name}_b.npy")
    np.save(fa, a)
    np.save(fb, b)
    prefix = os.path.join(d, name)
    j = run_knn(s, [fa, fb], ks, prefix)
    if j is None:
        return None
    sa, sb = canonical_sim(a), canonical_sim(b)
    kmax = max(ks)
    for p in j["pairs"]:
        want, ia, ib = reference(sa, sb, p["k"])
        for key, v in want.items():
            s.close(p[key], v, tol, f"{name} k={p['k']} {key}")
    _, ia, ib = reference(sa, sb, kmax)
    for f, want_idx, sim in ((0, ia, sa), (1, ib, sb)):
        got = np.load(f"{prefix}_{f}_idx.npy")
        s.check(got.dtype == np.int32 and got.shape == (len(a), kmax), f"{name}: neighbour file {f} shape {got.shape}")
        bad = int((got != want_idx).sum())
        s.check(bad == 0, f"{name}: {bad} neighbour indices of file {f} differ from the reference")
        gs = np.load(f"{prefix}_{f}_sim.npy")
        ref = np.take_along_axis(sim, want_idx, 1)
        s.check(np.abs(gs - ref).max() <= 1e-12, f"{name}: similarities of file {f}: max diff {np.abs(gs - ref).max()}")
    return j


def main():
    s = Suite()
    rng = np.random.default_rng(41)
    with tmpdir() as d:
        # random features; n = 1100 spans three 512-row blocks, the last one partial
        n = 1100
        z = rng.standard_normal((n, 6))
        a = (np.tanh(z @ rng.standard_normal((6, 24))) + 0.3 * rng.standard_normal((n, 24))).astype(np.float32)
        b = (z[:, :4] @ rng.standard_normal((4, 9)) + 0.8 * rng.standard_normal((n, 9)) + 50.0).astype(np.float32)
        compare_case(s, d, "random", a, b, [1, 5, 17])
        # exact ties: small integers, duplicated rows, zero rows
        n = 600
        t = rng.integers(-2, 3, size=(n, 4)).astype(np.float32)
        t[::50] = 0
        t[1::7] = t[2::7][: len(t[1::7])]
        u = rng.integers(0, 3, size=(n, 3)).astype(np.float32)
        j = compare_case(s, d, "ties", t, u, [3, 8])
        if j:
            s.check(min(j["rechecked"]) > 0, f"tied rows were recomputed: {j['rechecked']}")
        # near-duplicates: groups of rows u + e v (|u| = |v| = 1, u orthogonal to v, e random
        # in [1e-4, 1e-3]) whose similarities 1 - (e_i - e_j)^2 / 2 differ by 1e-10 .. 1e-8:
        # float32 rounds them all alike; a group (30) is larger than a row's candidates, so
        # the rows are recomputed and ranked in float64
        rows = []
        for g in range(12):
            q, _ = np.linalg.qr(rng.standard_normal((16, 2)))
            for e in np.sort(rng.uniform(1e-4, 1e-3, 30)):
                rows.append(q[:, 0] + e * q[:, 1])
        near = np.array(rows, dtype=np.float32)
        other = rng.standard_normal((len(near), 5)).astype(np.float32)
        j = compare_case(s, d, "near", near, other, [5, 7])
        if j:
            s.check(j["rechecked"][0] > 0, f"near-duplicate rows were recomputed: {j['rechecked']}")
        # bad input
        small = os.path.join(d, "small.npy")
        np.save(small, rng.standard_normal((5, 3)).astype(np.float32))
        rc, _, err = repeval("knn", small, small, "--k", 5)
        s.check(rc == 1 and "k = 5 needs more than 5 samples" in err, f"k >= n: exit {rc}: {err}")
        nan = rng.standard_normal((20, 3)).astype(np.float32)
        nan[7, 2] = np.nan
        pn = os.path.join(d, "nan.npy")
        np.save(pn, nan)
        rc, _, err = repeval("knn", pn, pn, "--k", 3)
        s.check(rc == 1 and "row 7, column 2 is NaN" in err, f"NaN: exit {rc}: {err}")
        other20 = os.path.join(d, "other.npy")
        np.save(other20, rng.standard_normal((21, 3)).astype(np.float32))
        rc, _, err = repeval("knn", small, other20, "--k", 2)
        s.check(rc == 1 and "same samples" in err, f"row counts differ: exit {rc}: {err}")
        rc, _, err = repeval("knn", small, small, "--k", 0)
        s.check(rc == 2 and "--k" in err, f"--k 0: exit {rc}: {err}")
    s.finish()


if __name__ == "__main__":
    main()
