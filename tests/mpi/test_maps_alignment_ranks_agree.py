"""The map and alignment analyses and the MLP probe under mpiexec with K ranks
write the same files as one rank, byte for byte: map_<name>.npy and its sample,
label and variance files (checkpoints projected in blocks over the ranks),
metrics.csv with the alignment and uniformity rows (taps in blocks over the ranks)
and the MLP probe's rows (tasks over the ranks, and data-parallel fits whose
gradients are summed in rank order)."""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))

from common import Suite, mpirun, repeval, tmpdir  # noqa: E402
from integrity_grid import write_grid  # noqa: E402

os.environ["OPENBLAS_NUM_THREADS"] = "1"


def job(d, out):
    return f"""
data:
  v1: {{format: npy, inputs: {d}/x.npy, labels: {d}/y.npy, limit: 512}}
  v2: {{format: npy, inputs: {d}/x2.npy, labels: {d}/y.npy, limit: 512}}
  test: {{format: npy, inputs: {d}/x2.npy, labels: {d}/y.npy, offset: 512}}
models:
  - {{name: mlp, arch: {d}/mlp.yaml, checkpoints: "{d}/run/step{{0,4000,8000,12000}}.*", layers: [fc1, fc2, fc3]}}
analyses:
  map: {{dataset: v1, sample: 64, components: 6}}
  views: {{type: alignment, dataset: v1, positive: v2, sample: 100}}
  labels: {{type: alignment, dataset: v1, sample: 100, layers: [fc2]}}
  head: {{type: probe, kind: mlp, train: v1, test: test, hidden: 8, lambdas: [1e-3, 1e-1], max_iter: 100}}
forward: {{batch: 64}}
output: {{dir: {out}}}
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, required=True)
    k = ap.parse_args().ranks
    s = Suite()
    with tmpdir() as d:
        write_grid(d, defects=False)
        x = np.load(os.path.join(d, "x.npy"))
        y = np.load(os.path.join(d, "y.npy"))
        x2 = x + 0.3 * np.random.default_rng(5).standard_normal(x.shape)
        np.save(os.path.join(d, "x2.npy"), np.concatenate([x2, x2[:200]]).astype(np.float32))
        np.save(os.path.join(d, "y.npy"), np.concatenate([y, y[:200]]))
        np.save(os.path.join(d, "x.npy"), np.concatenate([x, x[:200]]).astype(np.float32))
        path = os.path.join(d, "job.yaml")
        with open(path, "w") as f:
            f.write(job(d, os.path.join(d, "out")))
        rc, _, err = repeval("run", path, "--out", os.path.join(d, "single"), "--quiet", timeout=300)
        if not s.check(rc == 0, f"single-rank run: {err[-600:]}"):
            s.finish()
        rc, _, err = mpirun(k, "run", path, "--quiet", timeout=300)
        if not s.check(rc == 0, f"{k}-rank run: {err[-600:]}"):
            s.finish()
        for name in ("metrics.csv", "map_map.npy", "map_map_samples.npy", "map_map_labels.npy",
                     "map_map_variance.npy", "map_map_taps.csv"):
            with open(os.path.join(d, "single", name), "rb") as f1, open(os.path.join(d, "out", name), "rb") as f2:
                s.check(f1.read() == f2.read(), f"{name} byte-identical for 1 and {k} ranks")
        rows = open(os.path.join(d, "out", "metrics.csv")).read()
        s.check(rows.count(",alignment,") == 4 * 3 + 4 and rows.count(",uniformity,") == 4 * 3 * 2 + 4,
                "alignment and uniformity rows of every tap")
        s.check(rows.count("head,test_top1,") == 4 * 3 and "mlp hidden=8 gelu train=v1" in rows,
                "MLP probe rows of every tap")
    s.finish()


if __name__ == "__main__":
    main()
