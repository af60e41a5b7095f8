#!/usr/bin/python3
"""NumPy peer of `repeval knn`: exact cosine k-NN graphs of T embeddings, blockwise
(a block of rows against all rows by one matmul, the diagonal masked, top-k by
argpartition then sorted), then mutual k-NN alignment for every pair of taps
(row-wise intersection of the sorted neighbour lists).

--dtype float64 (default) ranks by float64 similarities, the same answer as repeval;
float32 is faster and may swap near-ties.

usage: knn_numpy.py --k K [--block B] [--dtype float64|float32] [--out M.npy] T1.npy T2.npy ...
Prints one JSON object (times); writes the T x T mutual k-NN matrix to --out."""
import argparse
import json
import time

import numpy as np


def graph(path, k, block, dtype):
    x = np.load(path).astype(dtype)
    n = x.shape[0]
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    z = x / np.where(norm > 0, norm, 1)
    idx = np.empty((n, k), dtype=np.int64)
    for r0 in range(0, n, block):
        r1 = min(n, r0 + block)
        s = z[r0:r1] @ z.T
        s[np.arange(r1 - r0), np.arange(r0, r1)] = -np.inf
        part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(s, part, axis=1)
        order = np.argsort(-top, axis=1, kind="stable")
        idx[r0:r1] = np.take_along_axis(part, order, axis=1)
    return idx


def mutual(a, b, k):
    c = np.sort(np.concatenate([np.sort(a[:, :k], 1), np.sort(b[:, :k], 1)], 1), 1)
    return float((c[:, 1:] == c[:, :-1]).sum(1).mean() / k)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, required=True)
    ap.add_argument("--block", type=int, default=2048)
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    ap.add_argument("--out")
    ap.add_argument("taps", nargs="+")
    a = ap.parse_args()
    dtype = np.float64 if a.dtype == "float64" else np.float32
    t0, c0 = time.perf_counter(), time.process_time()
    graphs = [graph(p, a.k, a.block, dtype) for p in a.taps]
    t1, c1 = time.perf_counter(), time.process_time()
    T = len(graphs)
    m = np.full((T, T), np.nan)
    for i in range(T):
        for j in range(i + 1, T):
            m[i, j] = m[j, i] = mutual(graphs[i], graphs[j], a.k)
    t2, c2 = time.perf_counter(), time.process_time()
    if a.out:
        np.save(a.out, m)
    print(json.dumps({"taps": T, "k": a.k, "dtype": a.dtype, "graphs_s": t1 - t0, "graphs_cpu_s": c1 - c0,
                      "pairs_s": t2 - t1, "total_s": t2 - t0, "total_cpu_s": c2 - c0, "numpy": np.__version__}))


if __name__ == "__main__":
    main()
