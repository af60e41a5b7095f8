#!/usr/bin/env python3
"""With uncertainty columns in metrics.csv, the report draws each CKA
analysis' pairs (a CCA analysis' first metric, a spectrum analysis' effective
ranks) with their intervals as error bars and the permutation null as a band,
and tabulates them: the embedded numbers equal metrics.csv read with pandas
(the first 40 values in file order, and the total), the caption
names the level, method and number of permutations, an analysis with only a
null (method: none) gets the band without error bars, one without
uncertainty gets no such figure, and the page renders in headless Chromium
(every image decoded and drawn, nothing fetched, no console message)."""
import math
import os
import re
import shutil
import sys

import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reportlib as rl  # noqa: E402

JOB = rl.data_block(test_limit=240) + """models:
  - name: cnn
    arch: cnn.yaml
    checkpoints: "checkpoints/seed{0..2}/epoch_0[05].*"
    layers: [conv2:mean, fc1, fc2]
analyses:
  cka: {dataset: test, batch: 40, uncertainty: {replicates: 30, permutations: 8, level: 0.9}}
  cka_jk: {type: cka, dataset: test, batch: 40, pairs: same-layer, uncertainty: {method: jackknife}}
  cka_null: {type: cka, dataset: test, estimator: exact, pairs: consecutive,
             uncertainty: {method: none, permutations: 6}}
  cka_plain: {type: cka, dataset: test, batch: 40, pairs: same-layer}
  cca: {dataset: test, methods: [svcca, pwcca], checkpoints: ["*/epoch_05"], uncertainty: {replicates: 10, permutations: 4}}
  spectrum: {dataset: test, uncertainty: {replicates: 10}}
"""
COLS = ["value", "se", "ci_low", "ci_high", "null_mean", "null_q95", "p_value"]


def same(a, b):
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    return b is not None and not math.isnan(b) and abs(a - b) <= 1e-15 * max(abs(a), abs(b), 1e-300)


def main():
    s = rl.Suite()
    work = rl.job_dir("report-intervals")
    try:
        out = rl.run_job(work, "intervals", JOB)
        rc, _, err = rl.report(out)
        if not s.check(rc == 0, f"repeval report exits 0: {err}"):
            s.finish()
        page = os.path.join(out, "report.html")
        data = rl.report_data(page)
        text = open(page, encoding="utf-8").read()
        df = pd.read_csv(os.path.join(out, "metrics.csv"), keep_default_na=False)
        for an, metric, pairs in (("cka", "cka", 153), ("cka_jk", "cka", 45), ("cka_null", "cka", 15),
                                  ("cca", "svcca", 9), ("spectrum", "effective_rank", 18)):
            fig = data["figures"].get(f"{an}-{metric}-intervals")
            if not s.check(fig is not None, f"{an}: an intervals figure of {metric}"):
                continue
            want = df[(df.analysis == an) & (df.metric == metric) & (df.status == "ok")]
            s.check(fig["total"] == len(want) == pairs, f"{an}: {fig['total']} values, metrics.csv has {len(want)}")
            want = want.head(40)
            names = [f"{r.checkpoint_a}/{r.layer_a} – {r.checkpoint_b}/{r.layer_b}" if r.model_b else
                     f"{r.checkpoint_a}/{r.layer_a}" for r in want.itertuples()]
            s.check(fig["pairs"] == names, f"{an}: pairs in metrics.csv order: {fig['pairs'][:3]} vs {names[:3]}")
            for c in COLS:
                col = [float(x) if x != "" else float("nan") for x in want[c]]
                s.check(len(fig[c]) == len(col) and all(same(a, b) for a, b in zip(fig[c], col)),
                        f"{an}: {c} equals metrics.csv")
            m = re.search(rf'<table id="tab-{an}-{metric}-intervals".*?</table>', text, re.S)
            s.check(m is not None and m.group(0).count("<tr>") == len(want) + 1,
                    f"{an}: a table with a row per drawn pair")
        caps = dict(re.findall(r'<figure id="fig-([^"]+)-intervals"><img alt="([^"]*)"', text))
        caps = {k.rsplit("-", 1)[0]: v for k, v in caps.items()}
        s.check("90% interval (bootstrap, 30 replicates, normal)" in caps.get("cka", "") and
                "8 permutations" in caps.get("cka", ""), f"cka caption: {caps.get('cka')}")
        s.check("interval (jackknife)" in caps.get("cka_jk", "") and "null" not in caps.get("cka_jk", ""),
                f"cka_jk caption: {caps.get('cka_jk')}")
        s.check("error bar" not in caps.get("cka_null", "x") and "6 permutations" in caps.get("cka_null", ""),
                f"cka_null caption: {caps.get('cka_null')}")
        s.check("cka_plain-cka-intervals" not in data["figures"], "no intervals figure without uncertainty")
        s.check("4 permutations" in caps.get("cca", "") and "effective_rank of each tap" in caps.get("spectrum", ""),
                f"cca and spectrum captions: {caps.get('cca')} / {caps.get('spectrum')}")
        s.check(not data["errors"], f"no part failed: {data['errors']}")
        rl.check_rendered(s, page, work, "intervals page")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    s.finish()


if __name__ == "__main__":
    main()
