"""Logistic probe sweep (11 λ, validation selection, refit, test): `repeval probe`
against scikit-learn LogisticRegression(lbfgs) on the same data, split, grid and
stopping rule (tests/bench/bench_probe.py does the work)."""
import os
import sys

from common import ROOT, Failure, Row, log

sys.path.insert(0, os.path.join(ROOT, "tests", "bench"))
import bench_probe  # noqa: E402

GOAL = 3.0


def run(ctx):
    rows = []
    for threads in ((1, 2) if ctx.threads2 else (1,)):
        log(f"  probe: {threads} thread(s)")
        try:
            res = bench_probe.run(ctx.quick, ctx.repeval, threads=threads, log=lambda m: log("  probe: " + m))
        except RuntimeError as e:
            raise Failure(str(e))
        r = res["repeval"]
        cpu = threads == 1
        t_re = res["repeval_cpu_s"] if cpu else res["repeval_s"]
        shape = f"{res['n']} x {res['d']}, {res['classes']} classes, 11 λ, {res['n_test']} test rows"
        for warm, label in ((False, "cold (new estimator per λ)"), (True, "warm starts, same order as repeval")):
            wall, lam, acc, _, cpu_s = res["sklearn"][warm]
            t_ref = cpu_s if cpu else wall
            ratio = t_ref / t_re
            rows.append(Row("probe", f"logistic sweep {shape}: vs scikit-learn lbfgs, {label}",
                            "CPU s" if cpu else "wall s", t_re, t_ref, "scikit-learn", ratio, f">= {GOAL:g}x",
                            "yes" if ratio >= GOAL else "no",
                            f"λ {r['lambda']:.0e} vs {lam:.0e}, test top-1 {r['test']['top1']:.4f} vs {acc:.4f} "
                            f"(same λ, |Δ top-1| <= 1/{res['n_test']})",
                            "yes" if res["agree"] else "no", threads=threads,
                            notes=f"repeval: the whole `repeval probe` process ({res['repeval_s']:.2f} s wall), "
                                  f"reading the .npy files included; refit {r['refit']['iterations']} L-BFGS "
                                  "iterations"))
    return rows
