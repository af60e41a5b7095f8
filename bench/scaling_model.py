#!/usr/bin/python3
"""Scaling model of `repeval run` beyond one machine: predicted time per rank and
communication for R ranks, C checkpoints x L layers (widths cycling through a
list), n samples in batches of b, with the single-node constants measured by
bench/run plugged in (defaults: this machine, docs/benchmarks.md; override any).

Per batch and rank (minibatch CKA, P = C L taps, m = b(b - 1)/2):
  forward   C b / v_fwd                         (images/s of the model)
  Gram      sum_p b (b + 1) d_p / F_gram        (dsyrk of every tap)
  pairs     P (P + 1) m / F_pair                (dsyrk of the stacked Gram triangles)
  tree      2 * 8 S_h / B_mem                   (serialise the leaf + merge, S_h = 2 P^2 doubles)
Co-moments (exact CKA, CCA family, spectra) add per batch 2 b sum_(i,j) d_i d_j / F_gemm
and keep S_m = sum_l d_l + sum_(i<=j requested) d_i d_j doubles.
Reduction: the canonical tree over batch indices; each rank holds at most about
2 log2(batches / R) complete nodes; ceil(log2 R) binomial steps, each sending that
list: time ceil(log2 R) (alpha + 8 S nodes / B_net).
Memory per rank: model + activations + 4 S doubles + the waiting nodes of the
tree up to REPEVAL_SPILL_MB (64 MB); the rest of the list waits in a spill file
(disk), at the cost of about S doubles written and read per batch when one
node is larger than the budget (--disk-gbs).
Finalize: the co-moments are broadcast (ceil(log2 R) (alpha + 8 S_m / B_net)), the
pairs split in contiguous blocks over the ranks; each rank computes pairs/R x
t_pair(d) plus the eigendecompositions its pairs touch (min(L_cca, 2 pairs/R) x
e_d), with t_pair and e_d scaling as d^3 from the measured 512-wide values.

usage: scaling_model.py [--ranks 1,2,4,...] [--checkpoints 20] [--layers 8]
       [--widths 64,256,1024,4096] [--n 10000] [--batch 256] [--model cnn|resnet18-cifar|vit-tiny]
       [--cca-layers 0] [--cca-width 512] [--gram-gflops G] [--pair-gflops G] ...
Prints one line per rank count: time per rank by stage, reduction, finalize,
total, parallel efficiency, bytes sent, memory and spill file per rank."""
import argparse
import math

# Single-node constants, one thread per rank (bench/run on this machine, see
# docs/benchmarks.md); every one can be overridden on the command line.
MEASURED = {
    "gram_gflops": 31.3,      # Gram stage (centring + dsyrk + triangle) of the HSIC accumulator, CPU-time rate
    "pair_gflops": 29.7,      # pair products (dsyrk of the P x m stacked triangles)
    "gemm_gflops": 32.7,      # co-moment accumulation (dsyrk/dgemm per block, 100 layers x 512)
    "mem_gbs": 18.1,          # memcpy bandwidth (read + write), GB/s per rank: state serialise + merge
    "fwd": {"cnn": 16479.0, "resnet18-cifar": 59.5, "vit-tiny": 19.0},  # images/s per rank, 1 thread
    "t_pair_512": 0.154,      # exact CKA + SVCCA + PWCCA of one 512 x 512 pair from co-moments, CPU s
    "t_eig_512": 0.051,       # one 512 x 512 covariance eigendecomposition (dsyevd), s
}


def model(a, R):
    P = a.checkpoints * a.layers
    widths = [a.widths[l % len(a.widths)] for _ in range(a.checkpoints) for l in range(a.layers)]
    b, m = a.batch, a.batch * (a.batch - 1) // 2
    nb = math.ceil(a.n / b)
    per_rank = math.ceil(nb / R)
    S_h = 2 * P * P + 4                                   # doubles: HSIC sums (unbiased and biased)
    Lc, dc = a.cca_layers, a.cca_width
    S_m = (Lc * dc + Lc * (Lc + 1) // 2 * dc * dc) if Lc else 0   # all pairs of the CCA layers
    S = S_h + S_m
    t_fwd = a.checkpoints * b / a.fwd
    t_gram = sum(b * (b + 1) * d for d in widths) / (a.gram_gflops * 1e9)
    t_pair = P * (P + 1) * m / (a.pair_gflops * 1e9)
    t_mom = (2 * b * (Lc * (Lc + 1) // 2) * dc * dc / (a.gemm_gflops * 1e9)) if Lc else 0.0
    t_tree = 2 * 8 * S / (a.mem_gbs * 1e9)
    budget = a.spill_mb * 1048576
    spill = 8 * S > budget
    if spill:  # about half a state written and half read back per batch
        t_tree += 8 * S / (a.disk_gbs * 1e9)
    compute = per_rank * (t_fwd + t_gram + t_pair + t_mom + t_tree)
    nodes = 2 * max(1, math.ceil(math.log2(max(per_rank, 1)))) + 1
    steps = math.ceil(math.log2(R)) if R > 1 else 0
    bytes_sent = 8 * S * nodes
    t_red = steps * (a.alpha_us * 1e-6 + bytes_sent / (a.net_gbs * 1e9))
    scale = (dc / 512.0) ** 3
    t_fin = 0.0
    if Lc:
        pairs = Lc * (Lc - 1) // 2
        mine = math.ceil(pairs / R)
        t_fin = (min(Lc, 2 * mine) * a.t_eig_512 + mine * a.t_pair_512) * scale
        if R > 1:
            t_fin += steps * (a.alpha_us * 1e-6 + 8 * S_m / (a.net_gbs * 1e9))
    mem = 8 * S * 4 + min(budget, 8 * S * nodes)
    disk = max(0.0, 8 * S * nodes - budget)
    return {"R": R, "batches/rank": per_rank, "forward": per_rank * t_fwd, "gram": per_rank * t_gram,
            "pairs": per_rank * t_pair, "comoments": per_rank * t_mom, "tree": per_rank * t_tree, "reduce": t_red,
            "finalize": t_fin, "total": compute + t_red + t_fin, "sent_MB": bytes_sent / 1e6 if steps else 0.0,
            "mem_MB": mem / 1e6, "spill_MB": disk / 1e6}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ranks", default="1,2,4,8,16,32,64,128,256,512,1024")
    ap.add_argument("--checkpoints", type=int, default=20)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--widths", default="64,256,1024,4096")
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--model", default="resnet18-cifar", choices=sorted(MEASURED["fwd"]))
    ap.add_argument("--fwd", type=float, help="images/s per rank (default: the measured rate of --model)")
    ap.add_argument("--cca-layers", type=int, default=0, help="layers with all-pairs co-moments (CCA family)")
    ap.add_argument("--cca-width", type=int, default=512)
    for k in ("gram_gflops", "pair_gflops", "gemm_gflops", "mem_gbs", "t_pair_512", "t_eig_512"):
        ap.add_argument("--" + k.replace("_", "-"), type=float, default=MEASURED[k], dest=k)
    ap.add_argument("--net-gbs", type=float, default=10.0, help="network bandwidth per link, GB/s (assumed)")
    ap.add_argument("--alpha-us", type=float, default=5.0, help="message latency, microseconds (assumed)")
    ap.add_argument("--spill-mb", type=float, default=64.0, help="REPEVAL_SPILL_MB: memory for waiting tree nodes")
    ap.add_argument("--disk-gbs", type=float, default=2.0, help="spill file bandwidth, GB/s (assumed: local disk)")
    a = ap.parse_args()
    a.widths = [int(w) for w in a.widths.split(",")]
    a.fwd = a.fwd or MEASURED["fwd"][a.model]
    cols = ["R", "batches/rank", "forward", "gram", "pairs", "comoments", "tree", "reduce", "finalize", "total"]
    print(f"C={a.checkpoints} L={a.layers} widths={a.widths} n={a.n} b={a.batch} model={a.model} "
          f"({a.fwd:g} img/s/rank) cca_layers={a.cca_layers}x{a.cca_width}; seconds per stage per rank")
    print(" ".join(f"{c:>12}" for c in cols) + f" {'efficiency':>10} {'sent_MB':>9} {'mem_MB':>9} {'spill_MB':>9}")
    base = None
    for R in [int(r) for r in a.ranks.split(",")]:
        r = model(a, R)
        base = base or r["total"] * R
        eff = base / (R * r["total"])
        print(" ".join(f"{r[c]:>12.4g}" if isinstance(r[c], float) else f"{r[c]:>12}" for c in cols) +
              f" {eff:>10.1%} {r['sent_MB']:>9.3g} {r['mem_MB']:>9.4g} {r['spill_MB']:>9.4g}")


if __name__ == "__main__":
    main()
