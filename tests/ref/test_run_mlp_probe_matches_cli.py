"""The MLP probe of `repeval run` equals `repeval probe --kind mlp` on the
embeddings `repeval embed` dumps from the same checkpoints and data (a small MLP's
fc1 and fc2 of two steps of integrity_grid.py, 400 training and 200 test rows, a
label no linear probe of the inputs finds): the same validation split (seed
20261202), the same lambda selected, the same test accuracy and loss exactly, and
the same refit objective; the probe's settings are in the manifest."""
import csv
import json
import os

import numpy as np

from common import Suite, repeval, tmpdir
from integrity_grid import write_grid

os.environ["OPENBLAS_NUM_THREADS"] = "1"
SEED = 20261202  # the validation split seed of repeval run's probes
CKPTS = ["step0", "step12000"]


def job(d, out):
    return f"""
data:
  train: {{format: npy, inputs: {d}/xtr.npy, labels: {d}/ytr.npy}}
  test: {{format: npy, inputs: {d}/xte.npy, labels: {d}/yte.npy}}
models:
  - {{name: mlp, arch: {d}/mlp.yaml, checkpoints: ["{d}/run/step0.*", "{d}/run/step12000.*"], layers: [fc1, fc2]}}
analyses:
  head: {{type: probe, kind: mlp, train: train, test: test, hidden: 12, lambdas: [1e-4, 1e-2], max_iter: 300}}
forward: {{batch: 64}}
output: {{dir: {out}}}
"""


def main():
    s = Suite()
    with tmpdir() as d:
        write_grid(d, defects=False)
        rng = np.random.default_rng(9)
        x = rng.standard_normal((600, 1, 1, 8)).astype(np.float32)
        r2 = x[:, 0, 0, 0] ** 2 + x[:, 0, 0, 1] ** 2
        y = (r2 > 1.4).astype(np.int64) + (x[:, 0, 0, 2] > 0)
        for name, a in (("xtr", x[:400]), ("ytr", y[:400]), ("xte", x[400:]), ("yte", y[400:])):
            np.save(os.path.join(d, name + ".npy"), a)
        out = os.path.join(d, "out")
        with open(os.path.join(d, "job.yaml"), "w") as f:
            f.write(job(d, out))
        rc, _, err = repeval("run", os.path.join(d, "job.yaml"), "--quiet", timeout=300)
        if not s.check(rc == 0, f"run: {err[-600:]}"):
            s.finish()
        rows = list(csv.DictReader(open(os.path.join(out, "metrics.csv"))))
        man = json.load(open(os.path.join(out, "manifest.json")))
        a = [a for a in man["analyses"] if a["name"] == "head"][0]
        s.check(a["kind"] == "mlp" and a["hidden"] == 12 and a["activation"] == "gelu" and a["lambdas"] == [1e-4, 1e-2],
                f"manifest entry: {a}")
        for ck in CKPTS:
            ckfile = [f for f in os.listdir(os.path.join(d, "run")) if f.startswith(ck + ".")][0]
            for split in ("tr", "te"):
                rc, _, err = repeval("embed", "--model", os.path.join(d, "mlp.yaml"), "--checkpoint",
                                     os.path.join(d, "run", ckfile), "--input", os.path.join(d, f"x{split}.npy"),
                                     "--layers", "fc1,fc2", "--batch", 64, "--out", os.path.join(d, ck, split))
                s.check(rc == 0, f"embed {ck} {split}: {err}")
            for layer in ("fc1", "fc2"):
                rc, o, err = repeval("probe", "--kind", "mlp", "--hidden", 12, "--lambdas", "1e-4,1e-2",
                                     "--max-iter", 300, "--seed", SEED, "--json",
                                     "--train", os.path.join(d, ck, "tr", layer + ".npy"),
                                     "--train-labels", os.path.join(d, "ytr.npy"),
                                     "--test", os.path.join(d, ck, "te", layer + ".npy"),
                                     "--test-labels", os.path.join(d, "yte.npy"))
                if not s.check(rc == 0, f"probe {ck}/{layer}: {err}"):
                    continue
                j = json.loads(o)

                def val(metric):
                    got = [r for r in rows if r["metric"] == metric and r["checkpoint_a"] == ck and
                           r["layer_a"] == layer and "selected refit" in r["param"]]
                    return float(got[0]["value"]) if len(got) == 1 else None
                s.check(val("lambda") == j["lambda"], f"{ck}/{layer}: lambda {val('lambda')} vs {j['lambda']}")
                s.check(val("test_top1") == j["test"]["top1"], f"{ck}/{layer}: top1 {val('test_top1')} vs "
                        f"{j['test']['top1']}")
                s.check(val("test_loss") == j["test"]["loss"], f"{ck}/{layer}: loss {val('test_loss')} vs "
                        f"{j['test']['loss']}")
                s.check(val("refit_objective") == j["refit"]["f"], f"{ck}/{layer}: refit objective")
        accs = [float(r["value"]) for r in rows if r["metric"] == "test_top1"]
        s.check(len(accs) == 4 and max(accs) > 0.6, f"the MLP head learns the label: {accs}")
    s.finish()


if __name__ == "__main__":
    main()
