"""The map analysis equals PCA written here with NumPy on a float64 forward pass of
real checkpoints (integrity_grid.py, three steps of a small MLP, 512 samples): the
axes are the eigenvectors of the covariance of all samples (numpy.linalg.eigh),
each with its largest |component| positive; the sampled points are the documented
Fisher-Yates draw (splitmix64, seed 20261204) and their coordinates on the first 8
axes match to 1e-4 of the map's scale (NaN beyond a layer's width); the explained
variance ratios match to 1e-6; the labels are the sampled samples' labels. A run
with the embedding cache writes the same files byte for byte."""
import csv
import os

import numpy as np

from common import Suite, repeval, tmpdir
from integrity_grid import forward, write_grid
from probe_ref import validation_mask

os.environ["OPENBLAS_NUM_THREADS"] = "1"
STEPS = [0, 6000, 12000]
M, K, SEED = 100, 8, 20261204


def job(d, out, cache):
    return f"""
data:
  probe: {{format: npy, inputs: {d}/x.npy, labels: {d}/y.npy}}
models:
  - {{name: mlp, arch: {d}/mlp.yaml, checkpoints: "{d}/run/step*", layers: [fc1, fc2, fc3]}}
analyses:
  map: {{sample: {M}, components: {K}, checkpoints: [{", ".join(f"step{s}" for s in STEPS)}]}}
forward: {{batch: 64}}
output: {{dir: {out}}}
{"cache: true" if cache else ""}
"""


def main():
    s = Suite()
    with tmpdir() as d:
        states = write_grid(d, defects=False)
        outs = []
        for cache in (False, True):
            out = os.path.join(d, f"out{int(cache)}")
            with open(os.path.join(d, "job.yaml"), "w") as f:
                f.write(job(d, out, cache))
            rc, _, err = repeval("run", os.path.join(d, "job.yaml"), "--quiet", timeout=300)
            if not s.check(rc == 0, f"run (cache {cache}): {err[-600:]}"):
                s.finish()
            outs.append(out)
        out = outs[0]
        x = np.load(os.path.join(d, "x.npy"))
        y = np.load(os.path.join(d, "y.npy"))
        n = len(x)
        want_idx = np.flatnonzero(validation_mask(n, M / n, SEED))
        idx = np.load(os.path.join(out, "map_map_samples.npy"))
        s.check(idx.dtype == np.int64 and np.array_equal(idx, want_idx), "the sampled indices are the documented draw")
        lab = np.load(os.path.join(out, "map_map_labels.npy"))
        s.check(np.array_equal(lab, y[want_idx]), "the labels of the sampled samples")
        coords = np.load(os.path.join(out, "map_map.npy"))
        ratios = np.load(os.path.join(out, "map_map_variance.npy"))
        taps = list(csv.DictReader(open(os.path.join(out, "map_map_taps.csv"))))
        s.check(coords.shape == (9, M, K) and coords.dtype == np.float32 and ratios.shape == (9, K),
                f"shapes: {coords.shape} {coords.dtype} {ratios.shape}")
        rows = {(r["checkpoint_a"], r["layer_a"], r["metric"]): float(r["value"])
                for r in csv.DictReader(open(os.path.join(out, "metrics.csv"))) if r["analysis"] == "map"}
        worst_c = worst_r = 0.0
        for q, t in enumerate(taps):
            h = forward(states[int(t["checkpoint"][4:])], x)[t["layer"]]
            c = np.cov(h, rowvar=False)
            vals, vecs = np.linalg.eigh(c)
            vals, vecs = vals[::-1], vecs[:, ::-1]
            k = min(K, h.shape[1])
            for a in range(k):
                if vecs[np.argmax(np.abs(vecs[:, a])), a] < 0:
                    vecs[:, a] = -vecs[:, a]
            ref = (h[want_idx] - h.mean(0)) @ vecs[:, :k]
            scale = np.abs(ref).max()
            worst_c = max(worst_c, float(np.abs(coords[q, :, :k] - ref).max() / scale))
            s.check(np.isnan(coords[q, :, k:]).all() and np.isnan(ratios[q, k:]).all(),
                    f"{t['checkpoint']}/{t['layer']}: NaN beyond the width {h.shape[1]}")
            rr = vals[:k] / vals.sum()
            worst_r = max(worst_r, float(np.abs(ratios[q, :k] - rr).max()))
            s.close(rows[(t["checkpoint"], t["layer"], "pc1_variance_ratio")], rr[0], 1e-6, f"pc1 row of {t}")
            s.close(rows[(t["checkpoint"], t["layer"], "pc2_variance_ratio")], rr[1], 1e-6, f"pc2 row of {t}")
        s.check(worst_c <= 1e-4, f"coordinates match NumPy's PCA: worst {worst_c:.3g} of the scale")
        s.check(worst_r <= 1e-6, f"variance ratios match: worst {worst_r:.3g}")
        for name in ("map_map.npy", "map_map_variance.npy", "map_map_samples.npy", "map_map_labels.npy"):
            with open(os.path.join(outs[0], name), "rb") as f1, open(os.path.join(outs[1], name), "rb") as f2:
                s.check(f1.read() == f2.read(), f"{name}: the same bytes with the embedding cache")
    s.finish()


if __name__ == "__main__":
    main()
