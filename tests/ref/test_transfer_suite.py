"""The committed transfer-learning suite (jobs/transfer-fmnist.yaml with the
datasets of jobs/transfer/make_datasets.py), reduced in size, runs end to end:
one test row per (probe, checkpoint, layer), one validation row per lambda with
exactly one selected per task, the downstream dataset in the dataset column, and
probes that learn (trained features beat chance by a wide margin on every task)."""
import collections
import csv
import os
import re
import subprocess

from common import REPEVAL, SOURCE_DIR, Suite, tmpdir

os.environ["OPENBLAS_NUM_THREADS"] = "1"
PY = os.environ.get("REPEVAL_PYTHON", "/usr/bin/python3")
CHANCE = {"probe_fmnist": 0.1, "probe_coarse": 0.25, "probe_flipped": 0.1, "probe_shapes": 0.2, "knn_fmnist": 0.1}


def main():
    s = Suite()
    with tmpdir() as d:
        data = os.path.join(d, "data")
        p = subprocess.run([PY, os.path.join(SOURCE_DIR, "jobs", "transfer", "make_datasets.py"), data,
                            "--train", "600", "--test", "300"], capture_output=True, text=True)
        if not s.check(p.returncode == 0, f"make_datasets: {p.stderr}"):
            s.finish()
        text = open(os.path.join(SOURCE_DIR, "jobs", "transfer-fmnist.yaml")).read()
        text = text.replace("limit: 3000", "limit: 600").replace("limit: 1000", "limit: 300")
        text = text.replace('"demo/checkpoints/seed{0..2}/epoch_{00,05}.*"', '"demo/checkpoints/seed0/epoch_{00,05}.*"')
        text = re.sub(r"grid: \[1e-4, 1e0, 5\]", "grid: [1e-3, 1e-1, 3]", text)
        demo = os.path.join(SOURCE_DIR, "jobs", "demo")
        text = text.replace("arch: demo/", f"arch: {demo}/").replace('"demo/checkpoints/', f'"{demo}/checkpoints/')
        job = os.path.join(d, "transfer.yaml")
        with open(job, "w") as f:
            f.write(text)
        out = os.path.join(d, "out")
        p = subprocess.run([REPEVAL, "run", job, "--out", out, "--quiet"], capture_output=True, text=True,
                           timeout=900, env=dict(os.environ, TRANSFER_DATA=data, ASAN_OPTIONS="detect_leaks=0"))
        if not s.check(p.returncode == 0, f"run: {p.stderr}"):
            s.finish()
        rows = list(csv.DictReader(open(os.path.join(out, "metrics.csv"))))
        tests = [r for r in rows if r["metric"] == "test_top1"]
        s.check(len(tests) == 5 * 2 * 4, f"one test row per probe x checkpoint x layer ({len(tests)})")
        s.check({r["dataset"] for r in tests} == {"fmnist_test", "coarse_test", "flipped_test", "shapes_test"},
                "the dataset column names the downstream test sets")
        sel = collections.Counter()
        nval = collections.Counter()
        for r in rows:
            if r["metric"] == "val_top1":
                key = (r["analysis"], r["checkpoint_a"], r["layer_a"])
                nval[key] += 1
                sel[key] += " selected" in r["param"]
        s.check(nval and all(v == 3 for v in nval.values()), f"3 validation rows per logistic task: {set(nval.values())}")
        s.check(sel and all(v == 1 for v in sel.values()), "exactly one selected lambda per task")
        for r in tests:
            if r["checkpoint_a"].endswith("epoch_05") and r["layer_a"] == "fc1":
                acc = float(r["value"])
                s.check(acc > CHANCE[r["analysis"]] + 0.3, f"{r['analysis']} fc1 after training: {acc}")
    s.finish()


if __name__ == "__main__":
    main()
