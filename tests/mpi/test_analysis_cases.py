"""One table of (analysis, standalone command, NumPy reference, tolerance) cases.

Six synthetic float32 taps (two checkpoints of an `activations:` model, layers of
width 12, 20 and 8, n = 410, a shared low-rank signal plus noise and an offset) are
given to `repeval run` at K ranks, with every analysis of CASES in one job. The
export's shard files are the standalone commands' inputs, so the run, the
commands and NumPy read the same values. For every case, every row of
metrics.csv (or the CKA matrix) is checked against the standalone command and
against NumPy within the case's tolerances, the row count is checked, and at
K > 1 metrics.csv is byte-identical to the 1-rank run's.

A case:
- name: the analysis' name in the job, analysis: its job-file snippet;
- kind: `pair` (one row per pair of taps and metric), `tap` (per tap) or
  `matrix` (minibatch CKA: the P x P matrix in cka_<name>.npy);
- cli: the standalone command's arguments after the tap files (`repeval CMD X [Y] ...`);
- cli_values: the command's JSON -> {metric: value};
- numpy: the reference, (x, y) -> {metric: value}, x -> {...}, or [taps] -> matrix;
- rtol: (against the command, against NumPy), relative, with an absolute floor of
  1e-12 for values near zero.
"""
import argparse
import csv
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))

import numpy as np  # noqa: E402

from common import (Suite, cka, gram_linear, minibatch_cka_matrix, mpirun, rbf_sigma2, repeval,  # noqa: E402
                    tmpdir, write_activations)
from test_cca_matches_numpy import cca_rho, pwcca, procrustes, ridge_r2, spectrum, svcca_rho  # noqa: E402

N = 410  # 8 minibatches of 50 and a tail of 10
DIMS = {"h0": 12, "h1": 20, "h2": 8}
BATCH = 50
RIDGE = 1e-10  # the cca analysis' and command's default relative ridge


def np_cca_all(x, y):
    rho = cca_rho(x, y)
    return {"cca_mean_rho": float(rho.mean()), "cca_mean_rho2": float((rho ** 2).mean()),
            "svcca": float(svcca_rho(x, y).mean()), "pwcca": pwcca(x, y), "procrustes_d2": procrustes(x, y),
            "r2_b_from_a": ridge_r2(x, y, RIDGE), "r2_a_from_b": ridge_r2(y, x, RIDGE)}


def cli_cca_all(j):
    return {"cca_mean_rho": j["cca"]["mean_rho"], "cca_mean_rho2": j["cca"]["mean_rho2"],
            "svcca": j["svcca"]["mean_rho"], "pwcca": j["pwcca"]["pwcca"], "procrustes_d2": j["procrustes_d2"],
            "r2_b_from_a": j["r2_y_from_x"], "r2_a_from_b": j["r2_x_from_y"]}


def np_spectrum(x):
    lam, pr, erank, erank_eig = spectrum(x)
    frac = np.cumsum(lam) / lam.sum()
    return {"effective_rank": erank, "effective_rank_eig": erank_eig, "participation_ratio": float(pr),
            "total_variance": float(lam.sum()), "k90": int(np.searchsorted(frac, 0.9 - 1e-12) + 1),
            "k99": int(np.searchsorted(frac, 0.99 - 1e-12) + 1),
            "collapsed": float(erank < 0.05 * min(x.shape[1], len(x) - 1))}


SPECTRUM_KEYS = ("effective_rank", "effective_rank_eig", "participation_ratio", "total_variance", "k90", "k99",
                 "collapsed")


CASES = [
    dict(name="cka_exact", analysis="{type: cka, estimator: exact, pairs: all}", kind="pair",
         cli=["cka", "--debiased", "--json"], cli_values=lambda j: {"cka": j["cka"]},
         numpy=lambda x, y: {"cka": cka(gram_linear(x), gram_linear(y), True)}, rtol=(1e-9, 1e-9)),
    dict(name="cka_exact_biased", analysis="{type: cka, estimator: exact, unbiased: false, pairs: all}",
         kind="pair", cli=["cka", "--json"], cli_values=lambda j: {"cka": j["cka"]},
         numpy=lambda x, y: {"cka": cka(gram_linear(x), gram_linear(y), False)}, rtol=(1e-9, 1e-9)),
    dict(name="cca_all", analysis="{type: cca, methods: [cca, svcca, pwcca, procrustes, linreg], pairs: all}",
         kind="pair", cli=["cca", "--method", "all", "--json"], cli_values=cli_cca_all, numpy=np_cca_all,
         rtol=(1e-7, 1e-7)),
    dict(name="cca_two_pass", analysis="{type: cca, passes: 2, methods: [svcca], pairs: all}", kind="pair",
         cli=["cca", "--method", "svcca", "--json"], cli_values=lambda j: {"svcca": j["svcca"]["mean_rho"]},
         numpy=lambda x, y: {"svcca": float(svcca_rho(x, y).mean())}, rtol=(1e-9, 1e-8)),
    dict(name="spectrum", analysis="{type: spectrum}", kind="tap", cli=["spectrum", "--json"],
         cli_values=lambda j: {k: float(j[k]) for k in SPECTRUM_KEYS}, numpy=np_spectrum, rtol=(1e-9, 1e-9)),
    dict(name="cka_linear", analysis=f"{{type: cka, batch: {BATCH}}}", kind="matrix",
         cli=["cka-matrix", "--batch", BATCH, "--json"], cli_values=lambda j: j["cka"],
         numpy=lambda taps: minibatch_cka_matrix(taps, BATCH), rtol=(1e-9, 1e-9)),
    dict(name="cka_rbf", analysis=f"{{type: cka, kernel: rbf, sigma: 0.8, sigma_sample: 100, batch: {BATCH}}}",
         kind="matrix", cli=["cka-matrix", "--batch", BATCH, "--kernel", "rbf", "--sigma", 0.8, "--sigma-sample", 100,
                             "--json"], cli_values=lambda j: j["cka"],
         numpy=lambda taps: minibatch_cka_matrix(taps, BATCH, True, "rbf", [rbf_sigma2(t[:100], 0.8) for t in taps]),
         rtol=(1e-9, 1e-9)),
]


def make_taps(rng):
    """{(checkpoint label, layer): n x d float32}: a shared 5-dimensional signal, mixed per tap, plus noise."""
    z = rng.standard_normal((N, 5))
    taps = {}
    for c in range(2):
        for name, d in DIMS.items():
            mix = rng.standard_normal((5, d)) * np.linspace(3, 0.5, 5)[:, None]
            x = np.tanh(z @ mix / 3) + 0.3 * rng.standard_normal((N, d)) + 4.0
            taps[(f"c{c}", name)] = x.astype(np.float32)
    return taps


def write_job(d, out):
    analyses = "\n".join(f"  {c['name']}: {c['analysis'][:-1]}, dataset: d}}" for c in CASES)
    path = os.path.join(d, "job.yaml")
    with open(path, "w") as f:
        f.write(f"""name: cases
data:
  d: {{format: npy, inputs: x.npy, labels: y.npy}}
forward: {{batch: 64}}
models:
  - {{name: m, activations: "acts/c*", layers: [{", ".join(DIMS)}]}}
analyses:
{analyses}
output: {{dir: {out}}}
""")
    return path


def close(got, want, rtol):
    return np.isfinite(got) and np.isfinite(want) and abs(got - want) <= max(rtol * max(abs(got), abs(want)), 1e-12)


def cli_json(s, args):
    rc, out, err = repeval(*args)
    if not s.check(rc == 0, f"repeval {' '.join(map(str, args))}: exit {rc}, {err.strip()}"):
        return None
    return json.loads(out)


def check_case(s, case, d, out, rows, taps, paths, order):
    name, kind, (rt_cli, rt_np) = case["name"], case["kind"], case["rtol"]
    f64 = {t: taps[t].astype(np.float64) for t in order}
    if kind == "matrix":
        got = np.load(os.path.join(out, f"cka_{name}.npy"))
        with open(os.path.join(out, f"cka_{name}_taps.csv")) as f:
            tap_order = [(t["checkpoint"], t["layer"]) for t in csv.DictReader(f)]
        s.check(sorted(tap_order) == sorted(order), f"{name}: taps {tap_order}")
        j = cli_json(s, [case["cli"][0], *[paths[t] for t in tap_order], *case["cli"][1:]])
        want_np = case["numpy"]([f64[t] for t in tap_order])
        want_cli = np.array(case["cli_values"](j), dtype=float) if j else None
        for (want, rt, src) in ((want_cli, rt_cli, "command"), (want_np, rt_np, "NumPy")):
            s.check(want is not None and got.shape == want.shape and
                    np.allclose(got, want, rtol=rt, atol=1e-12), f"{name}: run vs {src}:\n{got}\n{want}")
        mine = [r for r in rows if r["analysis"] == name]
        for r in mine:  # the matrix' rows in metrics.csv
            i = tap_order.index((r["checkpoint_a"], r["layer_a"]))
            k = tap_order.index((r["checkpoint_b"], r["layer_b"]))
            s.check(close(float(r["value"]), got[i, k], 1e-15), f"{name}: row {r} vs matrix {got[i, k]}")
        return
    mine = [r for r in rows if r["analysis"] == name]
    keys = set()
    if kind == "pair":
        units = [(a, b) for i, a in enumerate(order) for b in order[i + 1:]]
    else:
        units = [(a,) for a in order]
    for u in units:
        if kind == "pair":
            j = cli_json(s, [case["cli"][0], paths[u[0]], paths[u[1]], *case["cli"][1:]])
            want_np = case["numpy"](f64[u[0]], f64[u[1]])
        else:
            j = cli_json(s, [case["cli"][0], paths[u[0]], *case["cli"][1:]])
            want_np = case["numpy"](f64[u[0]])
        want_cli = case["cli_values"](j) if j else {}
        for metric, wnp in want_np.items():
            r = [r for r in mine if r["metric"] == metric and (r["checkpoint_a"], r["layer_a"]) == u[0] and
                 (kind == "tap" or (r["checkpoint_b"], r["layer_b"]) == u[1])]
            if not s.check(len(r) == 1, f"{name}: one {metric} row for {u} ({len(r)})"):
                continue
            keys.add((metric, u))
            got = float(r[0]["value"])
            wcli = want_cli.get(metric)
            s.check(wcli is not None and close(got, float(wcli), rt_cli),
                    f"{name} {metric} {u}: run {got!r}, command {wcli!r} (rtol {rt_cli})")
            s.check(close(got, float(wnp), rt_np), f"{name} {metric} {u}: run {got!r}, NumPy {wnp!r} (rtol {rt_np})")
    s.check(len(mine) == len(keys), f"{name}: {len(mine)} rows, {len(keys)} checked")


def run_job(s, job, ranks):
    cmd = ["run", job, "--quiet"]
    rc, out, err = mpirun(ranks, *cmd) if ranks > 1 else repeval(*cmd)
    return s.check(rc == 0, f"repeval run at {ranks} ranks: exit {rc}, {err.strip()}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, required=True)
    ap.add_argument("--case", action="append", help="only these cases (by name)")
    a = ap.parse_args()
    k = a.ranks
    cases = [c for c in CASES if not a.case or c["name"] in a.case]
    s = Suite()
    taps = make_taps(np.random.default_rng(11))
    order = list(taps)
    with tmpdir() as d:
        paths = write_activations(d, taps, N)
        os.chdir(d)
        out = os.path.join(d, "out")
        job = write_job(d, out)
        if not run_job(s, job, k):
            s.finish()
        with open(os.path.join(out, "metrics.csv"), "rb") as f:
            got_bytes = f.read()
        with open(os.path.join(out, "metrics.csv")) as f:
            rows = list(csv.DictReader(f))
        for case in cases:
            check_case(s, case, d, out, rows, taps, paths, order)
        s.check({r["analysis"] for r in rows} == {c["name"] for c in CASES},
                f"analyses in metrics.csv: {sorted({r['analysis'] for r in rows})}")
        if k > 1:
            out1 = os.path.join(d, "out1")
            job1 = write_job(d, out1)
            if run_job(s, job1, 1):
                with open(os.path.join(out1, "metrics.csv"), "rb") as f:
                    s.check(f.read() == got_bytes, f"metrics.csv identical at 1 and {k} ranks")
    s.finish()


if __name__ == "__main__":
    main()
