#!/usr/bin/python3
"""NumPy/SciPy peer of the co-moment finalize: exact linear CKA, SVCCA (99%
variance) and PWCCA for every pair of L layers, from covariances, following the
formulas of docs/metrics.md (eigendecomposition of each layer's covariance
once; whitened cross-covariance in the eigenbasis; its singular values are the
canonical correlations; PWCCA weights from the side with fewer features).

The covariances are computed from the data (the "accumulate" time; each cross
block is formed inside the pair loop so that memory stays O(n L d)), the
metrics from them (the "finalize" time: eigendecompositions + pairs).

usage: cca_numpy.py --layers L [--out-prefix P] DATA.npy     (n x (L d) float32)
Prints one JSON object; writes P_cka.npy, P_svcca.npy, P_pwcca.npy (L x L, upper)."""
import argparse
import json
import time

import numpy as np
import scipy.linalg

RIDGE, VARIANCE, RANK_RTOL = 1e-10, 0.99, 1e-10


class Eig:
    def __init__(self, S):
        w, V = scipy.linalg.eigh(S, driver="evd")
        w, V = w[::-1].clip(min=0), V[:, ::-1]
        self.rank = int((w > RANK_RTOL * w[0]).sum())
        w[self.rank:] = 0.0
        self.w, self.V, self.d = w, np.ascontiguousarray(V), len(w)
        self.trace = float(w.sum())
        self.ridge = RIDGE * self.trace / self.d

    def kept(self, frac):
        return min(int(np.searchsorted(np.cumsum(self.w), frac * self.trace) + 1), self.rank)


def whitened(ex, kx, ey, ky, Sxy):
    A = ex.V[:, :kx].T @ Sxy @ ey.V[:, :ky]
    return A / np.sqrt(ex.w[:kx] + ex.ridge)[:, None] / np.sqrt(ey.w[:ky] + ey.ridge)[None, :]


def svcca(ex, ey, Sxy):
    kx, ky = ex.kept(VARIANCE), ey.kept(VARIANCE)
    rho = np.linalg.svd(whitened(ex, kx, ey, ky, Sxy), compute_uv=False).clip(max=1.0)
    return float(rho.mean())


def pwcca(ex, ey, Sxy):
    kx, ky = ex.rank, ey.rank
    U, rho, Vt = np.linalg.svd(whitened(ex, kx, ey, ky, Sxy), full_matrices=False)
    rho = rho.clip(max=1.0)
    use_x = ex.d <= ey.d
    e, coef = (ex, U) if use_x else (ey, Vt.T)           # ke x k, canonical directions in eigen coordinates
    ke = coef.shape[0]
    G = coef / np.sqrt(e.w[:ke] + e.ridge)[:, None]       # whitening: w_i = V[:, :ke] G[:, i]
    Gl = G * e.w[:ke, None]
    SW = e.V[:, :ke] @ Gl                                 # S w_i for every i (d x k)
    var = (G * Gl).sum(0)                                 # w_i^T S w_i
    alpha = np.abs(SW).sum(0) / np.sqrt(np.where(var > 0, var, np.inf))
    return float((alpha * rho).sum() / alpha.sum())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--out-prefix")
    ap.add_argument("data")
    a = ap.parse_args()
    X = np.load(a.data).astype(np.float64)
    n, L = X.shape[0], a.layers
    d = X.shape[1] // L
    t_acc = c_acc = 0.0
    t0, c0 = time.perf_counter(), time.process_time()
    X -= X.mean(0)
    layers = [X[:, l * d:(l + 1) * d] for l in range(L)]
    S = [x.T @ x / (n - 1) for x in layers]
    t_acc += time.perf_counter() - t0
    c_acc += time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    eig = [Eig(s) for s in S]
    fro = [np.linalg.norm(s) for s in S]
    t_eig, c_eig = time.perf_counter() - t0, time.process_time() - c0
    M = {k: np.full((L, L), np.nan) for k in ("cka", "svcca", "pwcca")}
    t_pairs = c_pairs = 0.0
    for i in range(L):
        for j in range(i + 1, L):
            t0, c0 = time.perf_counter(), time.process_time()
            Sxy = layers[i].T @ layers[j] / (n - 1)
            t1, c1 = time.perf_counter(), time.process_time()
            M["cka"][i, j] = (Sxy * Sxy).sum() / (fro[i] * fro[j])
            M["svcca"][i, j] = svcca(eig[i], eig[j], Sxy)
            M["pwcca"][i, j] = pwcca(eig[i], eig[j], Sxy)
            t_acc += t1 - t0
            c_acc += c1 - c0
            t_pairs += time.perf_counter() - t1
            c_pairs += time.process_time() - c1
    if a.out_prefix:
        for k, v in M.items():
            np.save(f"{a.out_prefix}_{k}.npy", v)
    print(json.dumps({"n": n, "layers": L, "width": d, "accumulate_s": t_acc, "accumulate_cpu_s": c_acc,
                      "eig_s": t_eig, "pairs_s": t_pairs, "finalize_s": t_eig + t_pairs,
                      "finalize_cpu_s": c_eig + c_pairs, "numpy": np.__version__}))


if __name__ == "__main__":
    main()
