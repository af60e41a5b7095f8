"""repeval run on the demo checkpoints (a CNN trained on Fashion-MNIST from three
seeds, .safetensors and .pt mixed) under mpiexec with K ranks: the output folder
has every documented file, the bundle extracts with `tar --zstd -xf`, and
every value in metrics.csv equals the single-rank run bitwise (the reduction
follows one canonical tree over batch indices; the K-rank run also spills its
reduction nodes to a file, the single-rank run keeps them in memory; in
finalize each rank receives only the co-moment blocks it reads, the others
being NaN there, so an undeclared read would show); the
minibatch CKA matrix equals `repeval cka-matrix` on embeddings dumped by
`repeval embed` to 1e-9."""
import argparse
import csv
import gzip
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))

import numpy as np  # noqa: E402

from common import FMNIST, SOURCE_DIR, Suite, demo_job, mpirun, repeval, tmpdir  # noqa: E402

# OpenBLAS splits products by thread count, which changes float32 rounding: every
# command of this test runs with one thread, as `repeval run` does by default
os.environ["OPENBLAS_NUM_THREADS"] = "1"
N = 600


def job_text(d):
    return demo_job("ranks", N, "seed{0..2}/epoch_{00,03,05}.*", ["conv1:mean", "pool2", "fc1", "fc2"], f"""
analyses:
  cka: {{batch: 100}}
  cka_rbf: {{type: cka, kernel: rbf, batch: 100, pairs: same-layer, sigma_sample: 200}}
  cka_exact: {{type: cka, estimator: exact, pairs: consecutive, checkpoints: ["seed0/*"]}}
  cca: {{methods: [cca, svcca, pwcca, procrustes, linreg], checkpoints: ["*/epoch_05"]}}
  spectrum: {{}}
forward: {{batch: 100}}  # the forward calls cut the samples as embed --batch 100 below does
output: {{dir: {d}/out}}
""", dataset="fmnist")


def read_metrics(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {tuple(r[k] for k in ("analysis", "metric", "model_a", "checkpoint_a", "layer_a", "model_b",
                                 "checkpoint_b", "layer_b")): r for r in rows}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, required=True)
    k = ap.parse_args().ranks
    s = Suite()
    with tmpdir() as d:
        job = os.path.join(d, "job.yaml")
        with open(job, "w") as f:
            f.write(job_text(d))
        rc, out, err = repeval("run", job, "--out", os.path.join(d, "single"), "--quiet", timeout=600)
        if not s.check(rc == 0, f"single-rank run: {err}"):
            s.finish()
        # the K-rank run keeps every reduction node but the last in the spill file
        # (REPEVAL_SPILL_MB=0): spilling must not change a bit either
        os.environ["REPEVAL_SPILL_MB"] = "0"
        rc, out, err = mpirun(k, "run", job, timeout=600)
        del os.environ["REPEVAL_SPILL_MB"]
        if not s.check(rc == 0, f"{k}-rank run: {err}"):
            s.finish()
        o = os.path.join(d, "out")
        for name in ("metrics.csv", "manifest.json", "results.tar.zst", "cka_cka.npy", "cka_cka_taps.csv",
                     "cka_cka_rbf.npy", "spectrum_spectrum.npy", "taps_fmnist.csv"):
            s.check(os.path.isfile(os.path.join(o, name)), f"output has {name}")
        s.check(not any(n.startswith("out.partial") for n in os.listdir(d)), "no partial folder left")
        man = json.load(open(os.path.join(o, "manifest.json")))
        s.check(man["ranks"] == k and man["samples"] == N, f"manifest ranks/samples: {man['ranks']} {man['samples']}")
        s.check(len([i for i in man["inputs"] if i["kind"] == "checkpoint"]) == 9, "manifest lists 9 checkpoints")
        # finalize: each rank > 0 received only the co-moment blocks its pairs and taps read
        sh = man["finalize_share_mb"]
        s.check(sh["state"] > 0 and (sh["received_max"] == 0 if k == 1 else 0 < sh["received_max"] < sh["state"]),
                f"co-moments received by a rank in finalize: {sh}")
        s.check(sh["eig_received_max"] == 0 if k == 1 else sh["eig_received_max"] >= 0,
                f"eigendecompositions received by a rank in finalize: {sh}")
        x = os.path.join(d, "x")
        os.makedirs(x)
        rc = subprocess.run(["tar", "--zstd", "-xf", os.path.join(o, "results.tar.zst"), "-C", x]).returncode
        s.check(rc == 0 and os.path.isfile(os.path.join(x, "metrics.csv")), "bundle extracts with tar --zstd")
        one = read_metrics(os.path.join(d, "single", "metrics.csv"))
        many = read_metrics(os.path.join(o, "metrics.csv"))
        s.check(set(one) == set(many) and len(one) > 100, f"same metric rows ({len(one)} vs {len(many)})")
        worst, worst_key = 0.0, None
        for key, r1 in one.items():
            r2 = many.get(key)
            if r2 is None or r1["status"] != r2["status"]:
                s.check(False, f"row {key} differs: {r1} vs {r2}")
                continue
            if r1["value"]:
                a, b = float(r1["value"]), float(r2["value"])
                rel = abs(a - b) / max(abs(a), abs(b), 1e-300)
                if rel > worst:
                    worst, worst_key = rel, key
        s.check(worst <= 1e-12, f"largest relative difference between 1 and {k} ranks: {worst} at {worst_key}")
        # the reduction follows one canonical tree over batches: bitwise identical values
        same = sum(1 for key, r1 in one.items() if key in many and many[key]["value"] == r1["value"])
        s.check(same == len(one), f"bitwise identical values for 1 and {k} ranks: {same} of {len(one)}")
        # the files too, in the same order (finalize spreads CCA pairs and spectra over the ranks)
        for name in ("metrics.csv", "cka_cka.npy", "cka_cka_rbf.npy", "spectrum_spectrum.npy"):
            with open(os.path.join(d, "single", name), "rb") as f1, open(os.path.join(o, name), "rb") as f2:
                s.check(f1.read() == f2.read(), f"{name} byte-identical for 1 and {k} ranks")
        # a spill file that cannot be made fails the run cleanly, naming the folder
        if k == 2:
            before = open(os.path.join(o, "metrics.csv"), "rb").read()
            saved = dict(os.environ)
            # (Open MPI replaces a TMPDIR it cannot use unless its own folder is elsewhere)
            os.environ.update(REPEVAL_SPILL_MB="0", TMPDIR=os.path.join(d, "no-such-folder"),
                              OMPI_MCA_orte_tmpdir_base=d)
            rc, out, err = mpirun(k, "run", job, "--quiet", timeout=600)
            os.environ.clear()
            os.environ.update(saved)
            s.check(rc == 1 and "cannot create the reduction's spill file in " + os.path.join(d, "no-such-folder")
                    in err, f"unwritable TMPDIR: exit {rc}: {err[-400:]}")
            s.check(open(os.path.join(o, "metrics.csv"), "rb").read() == before, "the previous result is untouched")
        analyses = {key[0] for key in one}
        s.check(analyses == {"cka", "cka_rbf", "cka_exact", "cca", "spectrum"}, f"analyses: {analyses}")
        # the CKA matrix equals cka-matrix on embeddings dumped by embed
        if k == 1:
            with gzip.open(os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz")) as f:
                raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)[:N]
            xin = ((raw.astype(np.float32) / np.float32(255.0)) - np.float32(0.286)) / np.float32(0.353)
            np.save(os.path.join(d, "inputs.npy"), xin)
            taps = list(csv.DictReader(open(os.path.join(o, "cka_cka_taps.csv"))))
            files = []
            demo = os.path.join(SOURCE_DIR, "jobs", "demo", "checkpoints")
            for t in taps:
                ck = [f for f in os.listdir(os.path.join(demo, os.path.dirname(t["checkpoint"])))
                      if f.startswith(os.path.basename(t["checkpoint"]) + ".")][0]
                e = os.path.join(d, "emb", t["checkpoint"].replace("/", "_"))
                if not os.path.isfile(os.path.join(e, t["layer"] + ".npy")):
                    rc, _, err = repeval("embed", "--model", os.path.join(SOURCE_DIR, "jobs", "demo", "cnn.yaml"),
                                         "--checkpoint", os.path.join(demo, os.path.dirname(t["checkpoint"]), ck),
                                         "--input", os.path.join(d, "inputs.npy"), "--layers",
                                         "conv1:mean,pool2,fc1,fc2", "--batch", 100, "--out", e)
                    s.check(rc == 0, f"embed {t['checkpoint']}: {err}")
                files.append(os.path.join(e, t["layer"] + ".npy"))
            rc, out, err = repeval("cka-matrix", *files, "--batch", 100, "--json")
            if s.check(rc == 0, f"cka-matrix: {err}"):
                want = np.array(json.loads(out)["cka"], dtype=float)
                got = np.load(os.path.join(o, "cka_cka.npy"))
                fin = np.isfinite(want)
                s.check(np.array_equal(np.isfinite(got), fin) and np.allclose(got[fin], want[fin], rtol=1e-9, atol=1e-12),
                        f"run's CKA matrix = embed + cka-matrix (max difference "
                        f"{np.nanmax(np.abs(got - want)) if got.shape == want.shape else got.shape})")
    s.finish()


if __name__ == "__main__":
    main()
