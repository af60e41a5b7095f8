#!/usr/bin/env python3
"""The numbers behind the report's figures and tables (embedded as JSON) are
the ones metrics.csv holds, recomputed independently with pandas: CKA with
the last epoch and between seeds over training (mean, min, max over runs), the
layer x layer and checkpoint x checkpoint panels, probe accuracy and the
geometric mean of the selected lambda, effective rank, the CCA table (mean and
sample standard deviation) and the RBF-vs-linear agreement (Pearson, Spearman,
mean and max |difference|). Tolerance: 1e-12 relative for values copied or
averaged, 1e-9 for correlations; standard deviations and differences of values
of order 1 also pass within 1e-14 absolute (summation order)."""
import itertools
import math
import os
import re
import shutil
import sys

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reportlib as rl  # noqa: E402

RTOL = 1e-12
RTOL_CORR = 1e-9
ATOL_UNIT = 1e-14  # absolute rounding allowance for spreads of values of order 1
LAYERS = ["conv1", "conv2", "pool2", "fc1", "fc2"]
RUNS = ["seed0", "seed1", "seed2"]
STEPS = [0, 2, 5]


def label(run, step):
    return f"{run}/epoch_{step:02d}"


def close(a, b, rtol, atol=0.0):
    if a is None or b is None:
        return a is None and b is None
    if isinstance(b, float) and math.isnan(b):
        return a is None or (isinstance(a, float) and math.isnan(a))
    return abs(a - b) <= rtol * max(abs(a), abs(b), 1e-300) + atol


def all_close(s, got, want, rtol, what, atol=0.0):
    got, want = list(got), list(want)
    ok = len(got) == len(want) and all(close(g, w, rtol, atol) for g, w in zip(got, want))
    return s.check(ok, f"{what}: got {got}, want {want}")


class Cka:
    """CKA of a pair of taps from metrics.csv rows (stored once per unordered pair)."""

    def __init__(self, df, analysis):
        d = df[(df.analysis == analysis) & (df.metric == "cka")]
        self.v = {}
        for r in d.itertuples():
            a = (r.checkpoint_a, r.layer_a)
            b = (r.checkpoint_b, r.layer_b)
            self.v[(a, b)] = self.v[(b, a)] = float(r.value)

    def __call__(self, a, b):
        if a == b:
            return 1.0
        return self.v.get((a, b), float("nan"))


def check_over_training(s, fig, cka, what):
    for layer in LAYERS:
        got = fig["to_final"][layer]
        per_run = pd.DataFrame({run: [cka((label(run, st), layer), (label(run, STEPS[-1]), layer)) for st in STEPS]
                                for run in RUNS}, index=STEPS)
        s.check(got["steps"] == STEPS, f"{what} to_final {layer}: steps {got['steps']}")
        all_close(s, got["mean"], per_run.mean(axis=1), RTOL, f"{what} to_final {layer} mean")
        all_close(s, got["min"], per_run.min(axis=1), RTOL, f"{what} to_final {layer} min")
        all_close(s, got["max"], per_run.max(axis=1), RTOL, f"{what} to_final {layer} max")
        got = fig["between_runs"][layer]
        per_pair = pd.DataFrame({f"{a}|{b}": [cka((label(a, st), layer), (label(b, st), layer)) for st in STEPS]
                                 for a, b in itertools.combinations(RUNS, 2)}, index=STEPS)
        all_close(s, got["mean"], per_pair.mean(axis=1), RTOL, f"{what} between_runs {layer} mean")
        all_close(s, got["min"], per_pair.min(axis=1), RTOL, f"{what} between_runs {layer} min")
        all_close(s, got["max"], per_pair.max(axis=1), RTOL, f"{what} between_runs {layer} max")


def check_panels(s, data, cka):
    panels = data["figures"]["cka-between-runs"]
    s.check([(p["a"], p["b"]) for p in panels] == list(itertools.combinations(RUNS, 2)),
            f"one layer x layer panel per pair of seeds: {[(p['a'], p['b']) for p in panels]}")
    for p in panels:
        s.check(p["step_a"] == p["step_b"] == STEPS[-1], f"panel {p['a']}-{p['b']} at the last epoch")
        want = [[cka((label(p["a"], STEPS[-1]), x), (label(p["b"], STEPS[-1]), y)) for y in p["layers_b"]]
                for x in p["layers_a"]]
        all_close(s, np.ravel(p["cka"]), np.ravel(want), RTOL, f"panel {p['a']} vs {p['b']}")
    per_layer = data["figures"]["cka-per-layer"]
    s.check([p["layer"] for p in per_layer] == LAYERS, "one checkpoint x checkpoint panel per layer")
    order = [label(r, st) for r in RUNS for st in STEPS]
    for p in per_layer:
        s.check(p["checkpoints"] == order, f"per-layer {p['layer']}: checkpoints grouped by seed, then epoch")
        want = [[cka((a, p["layer"]), (b, p["layer"])) for b in order] for a in order]
        all_close(s, np.ravel(p["cka"]), np.ravel(want), RTOL, f"per-layer panel {p['layer']}")


def main():
    s = rl.Suite()
    work = rl.job_dir("report-numbers")
    try:
        out = rl.run_job(work, "small", rl.SMALL_DEMO_JOB)
        rc, _, se = rl.report(out)
        if not s.check(rc == 0, f"repeval report exits 0: {se}"):
            s.finish()
        data = rl.report_data(os.path.join(out, "report.html"))
        df = pd.read_csv(os.path.join(out, "metrics.csv"), keep_default_na=False)
        df = df[df.status == "ok"].copy()
        df["value"] = df["value"].astype(float)
        df["run"] = df.checkpoint_a.str.split("/").str[0]
        df["step"] = df.checkpoint_a.str.extract(r"(\d+)$")[0].astype(int)
        figs = data["figures"]

        lin = Cka(df, "cka")
        check_over_training(s, figs["cka-over-training"], lin, "cka")
        check_over_training(s, figs["cka_rbf-over-training"], Cka(df, "cka_rbf"), "cka_rbf")
        check_panels(s, data, lin)

        # probes: test accuracy (refit) over epochs, geometric mean of the selected lambda
        probe = figs["probe-probe"]
        acc = df[(df.analysis == "probe") & (df.metric == "test_top1")].pivot_table(
            index=["layer_a", "step"], columns="run", values="value")
        lam = df[(df.analysis == "probe") & (df.metric == "lambda")].pivot_table(
            index=["layer_a", "step"], columns="run", values="value")
        for layer in LAYERS:
            got = probe["test_top1"][layer]
            a = acc.loc[layer].reindex(STEPS)
            all_close(s, got["mean"], a.mean(axis=1), RTOL, f"probe test_top1 {layer} mean")
            all_close(s, got["min"], a.min(axis=1), RTOL, f"probe test_top1 {layer} min")
            all_close(s, got["max"], a.max(axis=1), RTOL, f"probe test_top1 {layer} max")
            gm = np.exp(np.log(lam.loc[layer].reindex(STEPS)).mean(axis=1))
            all_close(s, probe["lambda"][layer]["geomean"], gm, RTOL, f"probe lambda {layer} geometric mean")
            sel = set(lam.loc[layer].values.ravel())
            s.check(sel <= {1e-3, 1e-1} or all(min(abs(x - g) for g in (1e-3, 1e-1)) < 1e-12 for x in sel),
                    f"probe {layer}: selected lambdas come from the grid: {sel}")
        tab = {t["layer"]: t for t in data["tables"]["probe-probe"]}
        for layer in LAYERS:
            all_close(s, sorted(tab[layer]["test_top1"]), sorted(acc.loc[(layer, STEPS[-1])]), RTOL,
                      f"probe table {layer} at the last epoch")

        # effective rank
        er = df[(df.analysis == "spectrum") & (df.metric == "effective_rank")].pivot_table(
            index=["layer_a", "step"], columns="run", values="value")
        for layer in LAYERS:
            got = figs["spectrum-effective-rank"][layer]
            e = er.loc[layer].reindex(STEPS)
            all_close(s, got["mean"], e.mean(axis=1), RTOL, f"effective rank {layer} mean")
            all_close(s, got["min"], e.min(axis=1), RTOL, f"effective rank {layer} min")
            all_close(s, got["max"], e.max(axis=1), RTOL, f"effective rank {layer} max")

        # CCA table: mean and sample sd over the seed pairs at the last epoch
        cca = df[df.analysis == "cca"].groupby(["layer_a", "metric"]).value.agg(["mean", "std", "count"])
        rows = {t["layers"]: t for t in data["tables"]["cca-cca"]}
        s.check(sorted(rows) == sorted(LAYERS), f"CCA table has one row per layer: {sorted(rows)}")
        for layer in LAYERS:
            for m in ("svcca", "pwcca"):
                want = cca.loc[(layer, m)]
                got = rows[layer][m]
                s.check(got["n"] == want["count"] == 3, f"CCA {layer} {m}: 3 pairs")
                all_close(s, [got["mean"]], [want["mean"]], RTOL, f"CCA {layer} {m} mean")
                all_close(s, [got["sd"]], [want["std"]], RTOL, f"CCA {layer} {m} sd", atol=ATOL_UNIT)

        # RBF against linear CKA, pair by pair
        both = []
        for name in ("cka", "cka_rbf"):
            d = df[(df.analysis == name) & (df.metric == "cka")].copy()
            d["key"] = [tuple(sorted([(r.checkpoint_a, r.layer_a), (r.checkpoint_b, r.layer_b)]))
                        for r in d.itertuples()]
            both.append(d.set_index("key")[["value", "layer_a", "layer_b"]])
        j = both[0].join(both[1], lsuffix="_lin", rsuffix="_rbf", how="inner")
        rows = {t["group"]: t for t in data["tables"]["kernels-cka-cka_rbf"]}
        groups = [(layer, j[j.layer_a_lin == layer]) for layer in LAYERS] + [("all pairs", j)]
        for name, g in groups:
            got = rows.get(name)
            if not s.check(got is not None, f"kernels table has a row for {name}"):
                continue
            s.check(got["n"] == len(g), f"kernels {name}: {got['n']} pairs, want {len(g)}")
            diff = (g.value_lin - g.value_rbf).abs()
            all_close(s, [got["mean_abs_diff"], got["max_abs_diff"]], [diff.mean(), diff.max()], RTOL,
                      f"kernels {name} |difference|", atol=ATOL_UNIT)
            all_close(s, [got["pearson"], got["spearman"]],
                      [g.value_lin.corr(g.value_rbf), g.value_lin.corr(g.value_rbf, method="spearman")],
                      RTOL_CORR, f"kernels {name} correlations")
        s.check(len(j) == 5 * 36, f"same-layer pairs of 9 checkpoints x 5 layers in both analyses: {len(j)}")
        s.check(re.match(r"^\d", str(data["tables"]["run"]["samples"])) is not None, "manifest samples shown")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    s.finish()


if __name__ == "__main__":
    main()
