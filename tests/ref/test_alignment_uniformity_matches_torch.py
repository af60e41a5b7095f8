"""The alignment analysis equals Wang & Isola's (2020) definitions written here in
PyTorch on a float64 forward pass of real checkpoints (integrity_grid.py):
alignment = mean ||f(x) - f(y)||^alpha over positive pairs of L2-normalised
embeddings, with the pairs the rows of two views (two datasets with the same sample
ids: inputs and a noisy copy; alpha 2 and 1) or every ordered pair of distinct
samples with the same label (an explicit loop over the pairs); uniformity = log of
the mean of exp(-t ||f(x) - f(y)||^2) over torch.pdist's pairs of the documented
seeded sample (splitmix64 Fisher-Yates, seed 20261204), or of every sample when the
sample is larger than the dataset. Tolerance 1e-6 (float32 forward pass). Two views
of different sizes are refused, naming both datasets."""
import csv
import os

import numpy as np
import torch
import torch.nn.functional as F

from common import Suite, repeval, tmpdir
from integrity_grid import forward, write_grid
from probe_ref import validation_mask

os.environ["OPENBLAS_NUM_THREADS"] = "1"
SEED, SAMPLE = 20261204, 300


def job(d, out, v2=None):
    v2 = v2 or f"{{format: npy, inputs: {d}/x2.npy, labels: {d}/y.npy}}"
    return f"""
data:
  v1: {{format: npy, inputs: {d}/x.npy, labels: {d}/y.npy}}
  v2: {v2}
models:
  - {{name: mlp, arch: {d}/mlp.yaml, checkpoints: "{d}/run/step*", layers: [fc1, fc2, fc3]}}
analyses:
  views: {{type: alignment, dataset: v1, positive: v2, sample: {SAMPLE}, checkpoints: [step0, step12000]}}
  views_l1: {{type: alignment, dataset: v1, positive: v2, alpha: 1, t: 0.5, sample: {SAMPLE},
             checkpoints: [step12000], layers: [fc2]}}
  labels: {{type: alignment, dataset: v1, checkpoints: [step6000]}}
forward: {{batch: 64}}
output: {{dir: {out}}}
"""


def align(x, y, alpha):
    """Wang & Isola's align_loss on normalised rows."""
    return float((F.normalize(x, dim=1) - F.normalize(y, dim=1)).norm(p=2, dim=1).pow(alpha).mean())


def uniform(x, t):
    """Wang & Isola's uniform_loss: log mean exp(-t d^2) over the pairs i < j."""
    return float(torch.pdist(F.normalize(x, dim=1), p=2).pow(2).mul(-t).exp().mean().log())


def align_labels(x, y):
    f = F.normalize(x, dim=1)
    total, pairs = 0.0, 0
    for i in range(len(y)):
        same = torch.nonzero(torch.from_numpy(y == y[i])).flatten()
        same = same[same != i]
        total += float((f[same] - f[i]).pow(2).sum())
        pairs += len(same)
    return total / pairs


def main():
    s = Suite()
    with tmpdir() as d:
        states = write_grid(d, defects=False)
        x = np.load(os.path.join(d, "x.npy"))
        y = np.load(os.path.join(d, "y.npy"))
        x2 = (x + 0.3 * np.random.default_rng(11).standard_normal(x.shape)).astype(np.float32)
        np.save(os.path.join(d, "x2.npy"), x2)
        out = os.path.join(d, "out")
        with open(os.path.join(d, "job.yaml"), "w") as f:
            f.write(job(d, out))
        rc, _, err = repeval("run", os.path.join(d, "job.yaml"), "--quiet", timeout=300)
        if not s.check(rc == 0, f"run: {err[-600:]}"):
            s.finish()
        rows = list(csv.DictReader(open(os.path.join(out, "metrics.csv"))))
        s.check(len(rows) == 2 * 3 * 3 + 3 + 3 * 2, f"{len(rows)} rows")
        n = len(x)
        sample = np.flatnonzero(validation_mask(n, SAMPLE / n, SEED))
        worst = 0.0
        for r in rows:
            st = int(r["checkpoint_a"][4:])
            layer = r["layer_a"]
            inp = x if r["dataset"] == "v1" else x2
            h = torch.from_numpy(forward(states[st], inp)[layer])
            if r["metric"] == "alignment" and r["analysis"].startswith("views"):
                alpha = 1.0 if r["analysis"] == "views_l1" else 2.0
                h2 = torch.from_numpy(forward(states[st], x2)[layer])
                want = align(h, h2, alpha)
                s.check(r["param"] == f"pairs=views positive=v2 alpha={alpha:g}", f"param {r['param']}")
            elif r["metric"] == "alignment":
                want = align_labels(h, y)
                s.check(r["param"] == "pairs=labels alpha=2", f"param {r['param']}")
            else:
                t = 0.5 if r["analysis"] == "views_l1" else 2.0
                labels_run = r["analysis"] == "labels"
                want = uniform(h if labels_run else h[sample], t)
                s.check(r["param"] == f"t={t:g} sample={n if labels_run else SAMPLE}", f"param {r['param']}")
            got = float(r["value"])
            worst = max(worst, abs(got - want) / max(abs(want), 1e-12))
            s.check(r["status"] == "ok" and abs(got - want) <= 1e-6 * max(abs(want), 1.0),
                    f"{r['analysis']} {r['metric']} {r['checkpoint_a']}/{layer} on {r['dataset']}: {got} vs {want}")
        print(f"worst relative difference {worst:.3g}")
        # two views must hold the same samples
        np.save(os.path.join(d, "x3.npy"), x2[:500])
        with open(os.path.join(d, "bad.yaml"), "w") as f:
            f.write(job(d, os.path.join(d, "bad"), f"{{format: npy, inputs: {d}/x3.npy}}"))
        rc, _, err = repeval("run", os.path.join(d, "bad.yaml"), "--quiet", timeout=300)
        s.check(rc == 1 and "datasets 'v1' and 'v2' are two views of the same samples but hold 512 and 500 samples"
                in err, f"views of different sizes: exit {rc}: {err[-400:]}")
    s.finish()


if __name__ == "__main__":
    main()
