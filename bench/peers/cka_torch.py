#!/usr/bin/python3
"""PyTorch (CPU, float64) minibatch CKA over all pairs of P taps, the peer of
`repeval cka-matrix`: batches of b samples cut by global index, unbiased HSIC_1
(Song et al. 2012, eq. 5) per batch and pair, averaged over batches.

Modes:
  loop        Grams once per tap and batch, then a Python loop over the P(P+1)/2
              pairs computing HSIC_1 from elementwise products and row sums, O(b^2)
              per pair (the loop of popular CKA packages, with their b^3 K @ L
              product replaced by the equivalent elementwise sum)
  vectorised  all pairs at once: the zero-diagonal Grams stacked as rows of a
              P x b^2 matrix, one matmul for tr(K L), one for the row-sum products
  literal     the popular packages' per-pair formula with trace(K @ L) and
              1^T K L 1, timed on the first batch for --literal-pairs pairs and
              extrapolated to every pair and batch (too slow to run in full)

Reading a batch from the memory-mapped .npy files is not timed.
usage: cka_torch.py --mode M [--batch 256] [--out M.npy] [--literal-pairs 300] E1.npy ...
Prints one JSON object: wall (compute_s, gram_s, pairs_s) and CPU (*_cpu_s) seconds,
batches (and the extrapolation)."""
import argparse
import json
import os
import time

import numpy as np
import torch


def hsic1_elementwise(K, L, b):
    """HSIC_1 of zero-diagonal Grams, O(b^2)."""
    t = (K * L).sum()
    sk, sl = K.sum(), L.sum()
    r = K.sum(1) @ L.sum(1)
    return (t + sk * sl / ((b - 1) * (b - 2)) - 2.0 / (b - 2) * r) / (b * (b - 3))


def hsic1_literal(K, L, b):
    """HSIC_1 as written in popular packages: trace(K L) and 1^T K L 1 through K @ L."""
    ones = torch.ones(b, 1, dtype=K.dtype)
    KL = K @ L
    t = torch.trace(KL)
    s = (ones.T @ K @ ones @ ones.T @ L @ ones) / ((b - 1) * (b - 2))
    r = ones.T @ KL @ ones * 2 / (b - 2)
    return ((t + s - r) / (b * (b - 3))).item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["loop", "vectorised", "literal"], required=True)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--out")
    ap.add_argument("--literal-pairs", type=int, default=300)
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    xs = [np.load(f, mmap_mode="r") for f in a.files]
    P, n, b0 = len(xs), xs[0].shape[0], a.batch
    U = torch.zeros(P, P, dtype=torch.float64)
    t_gram = t_pairs = c_gram = c_pairs = 0.0
    batches = 0
    iu = torch.triu_indices(P, P)
    for s0 in range(0, n, b0):
        b = min(b0, n - s0)
        if b < 4:
            break
        data = [torch.from_numpy(np.ascontiguousarray(x[s0:s0 + b], dtype=np.float64)) for x in xs]
        t0, c0 = time.perf_counter(), time.process_time()
        grams = []
        for x in data:
            xc = x - x.mean(0, keepdim=True)
            K = xc @ xc.T
            K.fill_diagonal_(0.0)
            grams.append(K)
        t1, c1 = time.perf_counter(), time.process_time()
        if a.mode == "loop":
            for p in range(P):
                for q in range(p, P):
                    v = hsic1_elementwise(grams[p], grams[q], b)
                    U[p, q] += v
                    if p != q:
                        U[q, p] += v
        elif a.mode == "vectorised":
            G = torch.stack([K.reshape(-1) for K in grams])
            R = torch.stack([K.sum(1) for K in grams])
            s = R.sum(1)
            T = G @ G.T
            U += (T + torch.outer(s, s) / ((b - 1) * (b - 2)) - 2.0 / (b - 2) * (R @ R.T)) / (b * (b - 3))
        else:
            pairs = [(int(p), int(q)) for p, q in iu.T][:a.literal_pairs]
            for p, q in pairs:
                hsic1_literal(grams[p], grams[q], b)
            t2, c2 = time.perf_counter(), time.process_time()
            nb = sum(1 for s in range(0, n, b0) if min(b0, n - s) >= 4)
            per_pair, per_pair_cpu = (t2 - t1) / len(pairs), (c2 - c1) / len(pairs)
            total_pairs = P * (P + 1) // 2
            print(json.dumps({"mode": "literal", "measured_pairs": len(pairs), "per_pair_s": per_pair,
                              "per_pair_cpu_s": per_pair_cpu, "gram_s_one_batch": t1 - t0, "batches": nb,
                              "compute_s": nb * ((t1 - t0) + per_pair * total_pairs),
                              "compute_cpu_s": nb * ((c1 - c0) + per_pair_cpu * total_pairs), "extrapolated": True}))
            return
        t2, c2 = time.perf_counter(), time.process_time()
        t_gram += t1 - t0
        t_pairs += t2 - t1
        c_gram += c1 - c0
        c_pairs += c2 - c1
        batches += 1
    d = torch.sqrt(torch.diagonal(U))
    cka = (U / torch.outer(d, d)).numpy()
    if a.out:
        np.save(a.out, cka)
    print(json.dumps({"mode": a.mode, "batches": batches, "gram_s": t_gram, "pairs_s": t_pairs,
                      "compute_s": t_gram + t_pairs, "gram_cpu_s": c_gram, "pairs_cpu_s": c_pairs,
                      "compute_cpu_s": c_gram + c_pairs, "torch": torch.__version__,
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
