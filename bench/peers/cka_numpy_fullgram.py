#!/usr/bin/python3
"""NumPy full-data debiased linear CKA from n x n Gram matrices, the way the
Kornblith et al. (2019) reference code computes it: Gram K = X X^T of the
centred features, U-centring (zero diagonal, unbiased HSIC), then
CKA = <K~, L~> / (||K~|| ||L~||). Every Gram is n^2 doubles, so for many taps
and large n it is timed on a subset of taps (one per width) and extrapolated
to all taps and pairs: sum over taps of the Gram time of its width plus the
number of pairs times the mean pair time (a lower bound: it assumes every Gram
stays in memory).

usage: cka_numpy_fullgram.py [--all-widths 64,256,...] [--out M.npy] E1.npy E2.npy ...
Prints one JSON object."""
import argparse
import json
import time

import numpy as np


def u_centre(K):
    """U-centring of a Gram matrix (Kornblith et al. reference code, unbiased=True), in place."""
    n = K.shape[0]
    np.fill_diagonal(K, 0.0)
    means = K.sum(0) / (n - 2)
    means -= means.sum() / (2 * (n - 1))
    K -= means[:, None]
    K -= means[None, :]
    np.fill_diagonal(K, 0.0)
    return K


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--all-widths", default="")
    ap.add_argument("--out")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    grams, gram_time, gram_cpu, widths = [], {}, {}, []
    for f in a.files:
        x = np.load(f).astype(np.float64)
        t0, c0 = time.perf_counter(), time.process_time()
        x -= x.mean(0)
        K = u_centre(x @ x.T)
        gram_time.setdefault(x.shape[1], []).append(time.perf_counter() - t0)
        gram_cpu.setdefault(x.shape[1], []).append(time.process_time() - c0)
        widths.append(x.shape[1])
        grams.append(K.ravel())
        del x
    P = len(grams)
    M = np.full((P, P), np.nan)
    t0, c0 = time.perf_counter(), time.process_time()
    norms = [np.sqrt(g @ g) for g in grams]
    for p in range(P):
        for q in range(p, P):
            M[p, q] = M[q, p] = (grams[p] @ grams[q]) / (norms[p] * norms[q])
    pairs = P * (P + 1) // 2
    per_pair = (time.perf_counter() - t0) / pairs
    per_pair_cpu = (time.process_time() - c0) / pairs
    measured = sum(sum(v) for v in gram_time.values()) + per_pair * pairs
    res = {"taps": P, "n": int(grams[0].size ** 0.5), "gram_s_by_width": {str(k): float(np.mean(v)) for k, v in
                                                                          gram_time.items()},
           "per_pair_s": per_pair, "per_pair_cpu_s": per_pair_cpu, "measured_s": measured}
    if a.all_widths:
        allw = [int(w) for w in a.all_widths.split(",")]
        missing = sorted(set(allw) - set(gram_time))
        if missing:
            raise SystemExit(f"no Gram timing for widths {missing}")
        npairs = len(allw) * (len(allw) + 1) // 2
        res.update({"extrapolated_taps": len(allw), "extrapolated_pairs": npairs,
                    "compute_s": sum(np.mean(gram_time[w]) for w in allw) + per_pair * npairs,
                    "compute_cpu_s": sum(np.mean(gram_cpu[w]) for w in allw) + per_pair_cpu * npairs,
                    "memory_all_grams_gb": len(allw) * grams[0].size * 8 / 1e9})
    else:
        res["compute_s"] = measured
        res["compute_cpu_s"] = sum(sum(v) for v in gram_cpu.values()) + per_pair_cpu * pairs
    if a.out:
        np.save(a.out, M)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
