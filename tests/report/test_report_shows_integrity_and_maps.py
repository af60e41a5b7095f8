#!/usr/bin/env python3
"""repeval report on a training grid with known defects (tests/ref/integrity_grid.py,
safetensors and torch.save files of a small MLP) and the sample-level analyses:
the page has the checkpoint-integrity section (every finding of
integrity_<name>.json in its table, the norm-change and CKA figure), the PCA and
t-SNE maps over training (the layers as rows, the checkpoints as columns), the
alignment and uniformity figure (its numbers those of metrics.csv) and the MLP
probe; headless Chromium renders it (every image decoded and drawn, nothing
fetched, no console message). A results folder whose map file is damaged still
gives a page, with the failure shown where the maps would be."""
import csv
import json
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reportlib as rl  # noqa: E402
from integrity_grid import write_grid  # noqa: E402  (tests/ref, on the path through reportlib)

FIGURES = ["integrity-integrity-mlp", "map-pca", "map-tsne", "views-alignment", "head-probe"]


def job(d):
    return f"""name: grid
data:
  v1: {{format: npy, inputs: {d}/x.npy, labels: {d}/y.npy}}
  v2: {{format: npy, inputs: {d}/x2.npy, labels: {d}/y.npy}}
models:
  - {{name: mlp, arch: {d}/mlp.yaml, checkpoints: "{d}/run/step*", layers: [fc1, fc2, fc3]}}
analyses:
  integrity: {{dataset: v1}}
  map: {{dataset: v1, sample: 200, components: 8}}
  views: {{type: alignment, dataset: v1, positive: v2, sample: 200}}
  head: {{type: probe, kind: mlp, train: v1, test: v2, hidden: 8, lambdas: [1e-2], max_iter: 50,
         checkpoints: [step0, step12000]}}
forward: {{batch: 64}}
"""


def main():
    s = rl.Suite()
    work = rl.job_dir("report-integrity")
    try:
        write_grid(work)
        x = np.load(os.path.join(work, "x.npy"))
        np.save(os.path.join(work, "x2.npy"),
                (x + 0.2 * np.random.default_rng(2).standard_normal(x.shape)).astype(np.float32))
        out = rl.run_job(work, "grid", job(work))
        rc, so, se = rl.report(out)
        page = os.path.join(out, "report.html")
        if not s.check(rc == 0 and os.path.isfile(page), f"repeval report exits 0: {rc} {se}"):
            s.finish()
        p = rl.parse_page(page)
        for sec in ("integrity", "maps", "alignment", "probes"):
            s.check(sec in p.ids, f"section #{sec} present")
        for fig in FIGURES:
            s.check(f"fig-{fig}" in p.ids, f"figure #fig-{fig} present")
        data = rl.report_data(page)
        s.check(data["errors"] == [], f"no drawing errors: {data['errors']}")
        found = json.load(open(os.path.join(out, "integrity_integrity.json")))["findings"]
        table = data["tables"].get("integrity-findings")
        s.check(table == found and len(found) == 5, f"the findings table is integrity_integrity.json's: {table}")
        fig = data["figures"]["integrity-integrity-mlp"]
        s.check(fig["norm_log2_ratio"]["tensors"] == ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight", "fc3.bias",
                                                      "fc3.weight"], "every tensor in the norm-change heatmap")
        k = fig["norm_log2_ratio"]["transitions"].index(["step9000", "step10000"])
        jump = fig["norm_log2_ratio"]["values"][4][k]
        s.check(1.4 < jump < 1.7, f"fc3.bias: log2 of about x3 at step10000: {jump}")
        maps = data["figures"]["map-pca"]
        s.check(maps["rows"] == ["fc1", "fc2", "fc3"] and len(maps["columns"]["mlp"]) == 6 and
                maps["columns"]["mlp"][0] == "step0" and maps["columns"]["mlp"][-1] == "step12000",
                f"PCA maps: layers as rows, 6 checkpoints from first to last: {maps}")
        s.check(data["figures"]["map-tsne"]["rows"] == ["fc1", "fc2"], "t-SNE of the first 12 panels: two rows")
        rows = [r for r in csv.DictReader(open(os.path.join(out, "metrics.csv"))) if r["analysis"] == "views"]
        al = data["figures"]["views-alignment"]["alignment"]["fc2"]
        want = {int(r["checkpoint_a"][4:]): float(r["value"]) for r in rows
                if r["metric"] == "alignment" and r["layer_a"] == "fc2"}
        s.check(dict(zip(al["steps"], al["mean"])) == want, "alignment figure numbers are metrics.csv's")
        rl.check_rendered(s, page, work, "report")
        # a damaged map file: the rest of the page is drawn, the failure is shown
        broken = os.path.join(work, "broken")
        shutil.copytree(out, broken)
        with open(os.path.join(broken, "map_map.npy"), "wb") as f:
            f.write(b"\x93NUMPY garbage")
        rc, so, se = rl.report(broken)
        p = rl.parse_page(os.path.join(broken, "report.html"))
        s.check(rc == 1 and "error" in p.classes and "fig-integrity-integrity-mlp" in p.ids and
                "maps map could not be drawn" in se, f"damaged map file: exit {rc}, {se[-300:]}")
    finally:
        if os.environ.get("REPEVAL_KEEP_TMP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    s.finish()


if __name__ == "__main__":
    main()
