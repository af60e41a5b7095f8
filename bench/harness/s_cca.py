"""Exact linear CKA + SVCCA + PWCCA from co-moments for every pair of L layers of
width 512: repeval's finalize (bench_comoments_finalize, the code `repeval run`
uses after its reduction) against a NumPy/SciPy implementation of the same
formulas; the accumulation of the co-moments is timed and reported too."""
import os

import numpy as np

from common import Row, log, mem_available_mb, run_proc, run_python, thread_env
import data

TOL = 1e-8  # absolute, on CKA / SVCCA / PWCCA values in [0, 1]
WIDTH = 512


def sizes(quick):
    return {"layers": 12 if quick else 100, "n": 2048}


def state_mb(L, d):
    return 8 * (L * (L + 1) // 2 * d * d + L * d + 1) / 1e6


def run(ctx):
    sz = sizes(ctx.quick)
    L, n, note = sz["layers"], sz["n"], ""
    avail = mem_available_mb()
    # the co-moments of all pairs are L(L+1)/2 d^2 doubles (10 GB for 100 x 512); the
    # accumulator also reserves a merge buffer of the same size (not touched here)
    while L > 8 and state_mb(L, WIDTH) + 2000 > 0.8 * avail:
        L -= 4
    if L != sz["layers"]:
        note = (f"reduced from {sz['layers']} to {L} layers: the all-pairs state ({state_mb(sz['layers'], WIDTH):.0f} MB)"
                f" does not fit in the {avail:.0f} MB available; ")
    path = os.path.join(ctx.data, f"cca_L{L}_n{n}", "layers.npy")
    log(f"  cca: {L} layers x {WIDTH}, n = {n} (state {state_mb(L, WIDTH):.0f} MB)")
    data.wide_layers(path, L, WIDTH, n)
    out = ctx.scratch("cca")
    pre_re, pre_np = os.path.join(out, "repeval"), os.path.join(out, "numpy")
    re_p = run_proc([ctx.drivers["comoments_finalize"], "--layers", L, "--out-prefix", pre_re, path], env=thread_env(1))
    rj = re_p.json()
    log("  cca: NumPy/SciPy")
    np_p = run_python("cca_numpy.py", ["--layers", L, "--out-prefix", pre_np, path], threads=1)
    nj = np_p.json()
    diffs = {}
    for k in ("cka", "svcca", "pwcca"):
        a, b = np.load(f"{pre_re}_{k}.npy"), np.load(f"{pre_np}_{k}.npy")
        iu = np.triu_indices(L, 1)
        diffs[k] = float(np.abs(a[iu] - b[iu]).max())
    ok = all(v <= TOL for v in diffs.values())
    chk = "max |diff| " + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()) + f" (tol {TOL:g})"
    pairs = L * (L - 1) // 2
    shape = f"{L} layers x {WIDTH}, {pairs} pairs, n={n}"
    rows = [Row("cca", f"finalize (exact CKA + SVCCA + PWCCA, all pairs), {shape}", "CPU s", rj["finalize_cpu_s"],
                nj["finalize_cpu_s"], "NumPy/SciPy", nj["finalize_cpu_s"] / rj["finalize_cpu_s"], check=chk,
                check_ok="yes" if ok else "no", repeval_rss_mb=re_p.rss_mb, reference_rss_mb=np_p.rss_mb,
                notes=note + f"repeval wall s: eig {rj['eig_s']:.2f}, CKA {rj['cka_s']:.2f}, SVCCA {rj['svcca_s']:.2f}, "
                             f"PWCCA {rj['pwcca_s']:.2f}; co-moment state {rj['state_mb']:.0f} MB; C driver "
                             "(no CLI computes the CCA family for all pairs)"),
            Row("cca", f"co-moment accumulation, {shape}", "CPU s", rj["accumulate_cpu_s"], nj["accumulate_cpu_s"],
                "NumPy X^T X blocks", nj["accumulate_cpu_s"] / rj["accumulate_cpu_s"],
                repeval_rss_mb=re_p.rss_mb, reference_rss_mb=np_p.rss_mb,
                notes="repeval: streaming Chan-Golub-LeVeque updates in chunks of 1024 rows (dsyrk/dgemm per block); "
                      "NumPy: one pass over centred data in memory")]
    return rows
