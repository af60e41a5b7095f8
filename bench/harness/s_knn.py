"""Mutual k-NN alignment of T taps (n x 768, k = 10): `repeval knn` (exact cosine
k-NN graphs by symmetric blockwise sgemm with a float64 ranking, then every pair)
against a NumPy blockwise implementation (a block of rows against all rows by one
matmul, argpartition, sort) in float64 (the same answer) and float32."""
import json
import os

import numpy as np

from common import Failure, Row, log, run_proc, run_python, thread_env
import data

GOAL = 3.0
K = 10
WIDTH = 768


def sizes(quick):
    """The issue's size (100 000 x 768, 20 taps) in full mode: hours on 2 cores (both sides
    are O(n^2 d) per tap). REPEVAL_BENCH_KNN_N and REPEVAL_BENCH_KNN_TAPS override."""
    sz = {"n": 8000, "taps": 4} if quick else {"n": 100000, "taps": 20}
    for key, env in (("n", "REPEVAL_BENCH_KNN_N"), ("taps", "REPEVAL_BENCH_KNN_TAPS")):
        if os.environ.get(env):
            sz[key] = int(os.environ[env])
    return sz


def run(ctx):
    sz = sizes(ctx.quick)
    n, T = sz["n"], sz["taps"]
    log(f"  knn: {T} taps of {n} x {WIDTH}, k = {K}")
    files = data.layer_taps(os.path.join(ctx.data, f"knn_T{T}_n{n}"), T, 1, [WIDTH], n, seed=5)
    out = ctx.scratch("knn")
    re_p = run_proc([ctx.repeval, "knn", *files, "--k", K, "--json"], env=thread_env(1))
    rj = re_p.json()
    mine = np.full((T, T), np.nan)
    for p in rj["pairs"]:
        mine[p["a"], p["b"]] = mine[p["b"], p["a"]] = p["mutual_knn"]
    rows = []
    shape = f"{T} taps x {n} x {WIDTH}, k={K}, {T * (T - 1) // 2} pairs"
    for dtype in ("float64", "float32"):
        log(f"  knn: NumPy {dtype}")
        ref_path = os.path.join(out, f"numpy_{dtype}.npy")
        np_p = run_python("knn_numpy.py", ["--k", K, "--dtype", dtype, "--out", ref_path, *files], threads=1)
        nj = np_p.json()
        ref = np.load(ref_path)
        iu = np.triu_indices(T, 1)
        diff = float(np.abs(mine[iu] - ref[iu]).max())
        # float64: the same ranking up to near-ties at rounding level (a swap moves a value
        # by 1/(n k)); float32: near-ties within its rounding may swap
        tol = 5.0 / (n * K) if dtype == "float64" else 1e-3
        if not np.isfinite(diff):
            raise Failure(f"knn: mutual k-NN matrices not comparable: {mine} vs {ref}")
        ratio = nj["total_cpu_s"] / re_p.cpu
        rows.append(Row("knn", f"k-NN graphs + mutual k-NN, {shape}: vs NumPy blockwise {dtype}", "CPU s", re_p.cpu,
                        nj["total_cpu_s"], f"NumPy {dtype}", ratio, f">= {GOAL:g}x", "yes" if ratio >= GOAL else "no",
                        f"mutual k-NN max |diff| {diff:.1e} (tol {tol:.1e})", "yes" if diff <= tol else "no",
                        repeval_rss_mb=re_p.rss_mb, reference_rss_mb=np_p.rss_mb,
                        notes=f"repeval: the whole `repeval knn` process ({re_p.wall:.1f} s wall; graphs "
                              f"{rj['graph_s']:.1f} s, pairs {rj['compare_s']:.2f} s, rows recomputed "
                              f"{sum(rj['rechecked'])}); NumPy: graphs {nj['graphs_s']:.1f} s wall, pairs "
                              f"{nj['pairs_s']:.2f} s; both read the same .npy files"))
    return rows
