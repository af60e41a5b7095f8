"""Ranks: `repeval run` of the demo's 18 checkpoints (minibatch linear CKA of all
pairs, SVCCA/PWCCA of the final checkpoints, spectra; no probes, no RBF, whose
bandwidth pre-pass over the first samples every rank repeats) on 1 and 2 MPI
ranks with one BLAS thread each (mpiexec -n 2 on the 2 cores). Parallel
efficiency = T1 / (2 T2), for the whole run and for the streaming stage;
metrics.csv must be identical (the canonical reduction tree makes the results
independent of the rank count)."""
import filecmp
import os

from common import Row, log
import jobs

GOAL = 1.8


def run(ctx):
    n = 2000 if ctx.quick else 10000
    folder = ctx.scratch("ranks")
    job = {"name": "ranks", "data": {"fmnist": jobs.fmnist("t10k", n)}, "models": [jobs.model()],
           "analyses": {"cka": {"estimator": "minibatch", "batch": 250, "pairs": "all"},
                        "cca": {"methods": ["svcca", "pwcca"], "checkpoints": ["*/epoch_05"], "pairs": "same-layer"},
                        "spectrum": {}},
           "output": {"dir": "unused", "bundle": False}}
    path = jobs.write(folder, "ranks", job)
    res = {}
    for r in (1, 2):
        log(f"  ranks: {r} rank(s), {n} samples")
        res[r] = jobs.run(ctx, path, os.path.join(folder, f"out_{r}"), ranks=r)
    (p1, m1), (p2, m2) = res[1], res[2]
    same = filecmp.cmp(os.path.join(folder, "out_1", "metrics.csv"), os.path.join(folder, "out_2", "metrics.csv"),
                       shallow=False)
    t1, t2 = m1.get("timings_s", {}), m2.get("timings_s", {})
    stages = ", ".join(f"{k} {t1.get(k, 0):.2f}/{t2.get(k, 0):.2f}" for k in ("embed_accumulate", "reduce", "finalize"))
    check = "metrics.csv identical at 1 and 2 ranks"
    rows = []
    for what, a, b in (("whole run (process wall)", p1.wall, p2.wall),
                       ("streaming stage (embed_accumulate)", t1.get("embed_accumulate", float("nan")),
                        t2.get("embed_accumulate", float("nan")))):
        s = a / b
        rows.append(Row("ranks", f"repeval run, 18 checkpoints x 5 layers, n={n}: 1 vs 2 ranks, {what}", "wall s", b,
                        a, "1 rank", s, f">= {GOAL:g}x", "yes" if s >= GOAL else "no", check,
                        "yes" if same else "no", p2.rss_mb, p1.rss_mb, threads=1,
                        notes=f"parallel efficiency {s / 2:.0%}; stages 1 rank/2 ranks (s): {stages}; finalize "
                              "(spectra eigendecompositions, CCA) is split over the ranks, each computing the "
                              "eigendecompositions its share touches; the 2 cores are shared with other jobs"))
    return rows
