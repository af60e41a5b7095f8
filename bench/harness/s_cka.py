"""Minibatch CKA over all pairs of 20 checkpoints x 8 layers (widths cycling 64,
256, 1024, 4096), float64 statistics: repeval (CLI and the compute-only stage)
against PyTorch (pair loop, vectorised all pairs, the literal per-pair formula)
and NumPy full-data Gram CKA; also the stats stage's share of the BLAS peak."""
import os

import numpy as np

from common import Failure, Row, log, run_proc, run_python, thread_env
import data

WIDTHS = (64, 256, 1024, 4096)
TOL = 1e-9  # absolute, on CKA values in [0, 1]: float64 sums in different orders


def sizes(quick):
    return {"checkpoints": 20, "layers": 8, "n": 1024 if quick else 10000, "batch": 256}


def _maxdiff(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return float("inf")
    both = np.isfinite(a) & np.isfinite(b)
    if not np.array_equal(np.isfinite(a), np.isfinite(b)):
        return float("inf")
    return float(np.abs(a[both] - b[both]).max()) if both.any() else 0.0


def t(j, threads, key="compute"):
    """CPU seconds for one thread (robust on a shared machine), wall seconds otherwise."""
    return j[f"{key}_cpu_s"] if threads == 1 else j[f"{key}_s"]


def run(ctx):
    sz = sizes(ctx.quick)
    P = sz["checkpoints"] * sz["layers"]
    folder = os.path.join(ctx.data, f"cka_n{sz['n']}")
    log(f"  cka: writing/reusing {P} taps of {sz['n']} samples in {folder}")
    files = data.layer_taps(folder, sz["checkpoints"], sz["layers"], WIDTHS, sz["n"])
    widths = [WIDTHS[l % len(WIDTHS)] for _ in range(sz["checkpoints"]) for l in range(sz["layers"])]
    sum_d = sum(widths)
    out = ctx.scratch("cka")
    b = sz["batch"]
    shape = f"P={P} taps (sum d={sum_d}), n={sz['n']}, b={b}"
    rows = []

    # repeval: the CLI as users run it, then the compute-only stage
    m_cli = os.path.join(out, "repeval_cli.npy")
    cli = run_proc([ctx.repeval, "cka-matrix", *files, "--batch", b, "--out", m_cli], env=thread_env(1))
    m_stage = os.path.join(out, "repeval_stage.npy")
    stage = run_proc([ctx.drivers["hsic_stage"], "--batch", b, "--out", m_stage, *files], env=thread_env(1))
    st = stage.json()
    ctx.shared["hsic_stage_1t"] = st
    ref_cli = np.load(m_cli)
    d_cli = _maxdiff(np.load(m_stage), ref_cli)

    peers = {}
    for mode in ("loop", "vectorised"):
        log(f"  cka: PyTorch {mode}")
        m = os.path.join(out, f"torch_{mode}.npy")
        p = run_python("cka_torch.py", ["--mode", mode, "--batch", b, "--out", m, *files], threads=1)
        peers[mode] = (p, p.json(), _maxdiff(np.load(m), ref_cli))
    log("  cka: PyTorch literal per-pair formula (extrapolated)")
    lit = run_python("cka_torch.py", ["--mode", "literal", "--batch", b, *files], threads=1)
    lit_j = lit.json()

    # NumPy full-data Grams on one tap per width of the first checkpoint, extrapolated;
    # checked against repeval's exact (co-moment) debiased CKA of the same taps
    subset = files[:len(WIDTHS)]
    m_np = os.path.join(out, "numpy_fullgram.npy")
    log("  cka: NumPy full-Gram CKA on one tap per width")
    fg = run_python("cka_numpy_fullgram.py", ["--all-widths", ",".join(map(str, widths)), "--out", m_np, *subset],
                    threads=1)
    fg_j = fg.json()
    m_ex = os.path.join(out, "repeval_exact_subset.npy")
    ex = run_proc([ctx.repeval, "cka-matrix", *subset, "--estimator", "exact", "--out", m_ex], env=thread_env(1))
    d_full = _maxdiff(np.load(m_np), np.load(m_ex))

    t_re = t(st, 1)
    chk_cli = f"stage vs CLI matrix max |diff| {d_cli:.1e} (tol {TOL:g})"
    rows.append(Row("cka", f"minibatch CKA, {shape}: repeval cka-matrix (CLI, reads {sum_d * sz['n'] * 4 / 1e9:.1f} GB"
                           " of .npy)", "CPU s", cli.cpu, repeval_rss_mb=cli.rss_mb,
                    check=chk_cli, check_ok="yes" if d_cli <= TOL else "no",
                    notes=f"wall {cli.wall:.1f} s; stage compute {t_re:.2f} CPU s, reading {st['read_s']:.2f} s"))
    for mode, goal in (("loop", 20.0), ("vectorised", 1.5)):
        p, j, dd = peers[mode]
        ratio = t(j, 1) / t_re
        rows.append(Row("cka", f"minibatch CKA compute, {shape}: vs PyTorch {mode} (float64)", "CPU s", t_re,
                        t(j, 1), f"PyTorch {mode}", ratio, f">= {goal:g}x", "yes" if ratio >= goal else "no",
                        f"CKA matrix max |diff| {dd:.1e} (tol {TOL:g})", "yes" if dd <= TOL else "no",
                        stage.rss_mb, p.rss_mb,
                        notes=f"CPU s: PyTorch Gram {t(j, 1, 'gram'):.2f} + pairs {t(j, 1, 'pairs'):.2f}; repeval "
                              f"Gram {t(st, 1, 'gram'):.2f} + pairs {t(st, 1, 'pairs'):.2f}; whole processes "
                              f"(repeval CLI with reading vs PyTorch script): {p.cpu / cli.cpu:.2f}x"))
    rows.append(Row("cka", f"minibatch CKA compute, {shape}: vs PyTorch literal per-pair trace(K@L)", "CPU s",
                    t_re, t(lit_j, 1), "PyTorch literal (extrapolated)", t(lit_j, 1) / t_re,
                    notes=f"{lit_j['measured_pairs']} pairs of batch 1 timed, {lit_j['per_pair_cpu_s'] * 1e3:.2f} ms per "
                          "pair, extrapolated to every pair and batch; values not checked (the elementwise loop "
                          "computes the same formula)"))
    rows.append(Row("cka", f"full-data Gram CKA (n x n), {shape}: vs NumPy, extrapolated", "CPU s", t_re,
                    t(fg_j, 1), "NumPy full Gram (extrapolated)", t(fg_j, 1) / t_re,
                    check=f"NumPy debiased CKA of {len(subset)} taps vs repeval --estimator exact: max |diff| "
                          f"{d_full:.1e} (tol {TOL:g})", check_ok="yes" if d_full <= TOL else "no",
                    repeval_rss_mb=stage.rss_mb, reference_rss_mb=fg.rss_mb,
                    notes=f"Grams timed per width on {len(subset)} taps; all {P} Grams would need "
                          f"{fg_j['memory_all_grams_gb']:.1f} GB; a different estimator (full data), so the "
                          f"ratio says what the minibatch design saves, not a like-for-like speed-up"))
    if ctx.threads2:
        log("  cka: 2 threads")
        st2p = run_proc([ctx.drivers["hsic_stage"], "--batch", b, *files], env=thread_env(2))
        st2 = st2p.json()
        m2 = os.path.join(out, "torch_vec_2t.npy")
        v2 = run_python("cka_torch.py", ["--mode", "vectorised", "--batch", b, "--out", m2, *files], threads=2)
        v2j, dd2 = v2.json(), _maxdiff(np.load(m2), ref_cli)
        ratio = v2j["compute_s"] / st2["compute_s"]
        rows.append(Row("cka", f"minibatch CKA compute, {shape}: vs PyTorch vectorised, 2 threads", "wall s",
                        st2["compute_s"], v2j["compute_s"], "PyTorch vectorised", ratio, ">= 1.5x",
                        "yes" if ratio >= 1.5 else "no", f"max |diff| {dd2:.1e} (tol {TOL:g})",
                        "yes" if dd2 <= TOL else "no", st2p.rss_mb, v2.rss_mb, threads=2,
                        notes=f"2-thread wall speed-up of the repeval stage over 1 thread: "
                              f"{st['compute_s'] / st2['compute_s']:.2f}x"))
        ctx.shared["hsic_stage_2t"] = st2
    if ex.rc != 0:
        raise Failure(ex.err)
    return rows
