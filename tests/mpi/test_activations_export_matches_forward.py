"""The activations path end to end: the demo CNN's checkpoints (three seeds, epochs 0
and 5, .safetensors and .pt) exported with tools/export-activations (PyTorch on the
CPU, forward hooks) on 400 test and 400 held-out training images of Fashion-MNIST,
then `repeval run` on a job whose model is `activations:` those exports.

  * with K ranks the activations run equals the single-rank one bitwise (metrics.csv
    and the matrices, byte for byte);
  * (on one rank) every metric (linear minibatch and exact CKA, RBF CKA, CCA / SVCCA /
    PWCCA / Procrustes, spectra, a logistic probe converged to tol 1e-10) equals the
    forward-engine run of the same job on the same checkpoints to 1e-6
    (|a - b| <= 1e-6 max(1, |a|); PyTorch's and repeval's float32 forward passes differ
    by rounding only), iteration counts of the probe's optimiser excepted;
  * on one rank: the same exports as one .safetensors file per shard, and with one
    checkpoint's shards as repeval's own .rpc shards, give bitwise the same metrics;
    spatial taps (H x W rows per image) exported with --data match the forward
    engine to 1e-6 too; with the job's embedding cache the metrics are the same bits
    and the cache holds only the probes' taps (the exports are not copied);
    an export stopped part way (manifest and last shards gone) is resumed by running
    the exporter again: only the missing shards are written, and the result is
    byte-identical to the uninterrupted export."""
import argparse
import csv
import json
import os
import shutil
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))

import numpy as np  # noqa: E402

from common import REPEVAL, SOURCE_DIR, Suite, mpirun, repeval, tmpdir  # noqa: E402

FMNIST = os.environ.get("FMNIST", "/usr/share/datasets/fashion-mnist")
os.environ["OPENBLAS_NUM_THREADS"] = "1"
DEMO = os.path.join(SOURCE_DIR, "jobs", "demo")
EXPORTER = os.path.join(SOURCE_DIR, "tools", "export-activations")
PYTHON = sys.executable
N = 400
CKPTS = f"{DEMO}/checkpoints/seed{{0..2}}/epoch_{{00,05}}.*"
LAYERS = ["conv1:mean", "conv2:mean", "pool2", "fc1", "fc2"]


def job_text(model):
    return f"""
name: act
data:
  fmnist:
    format: idx
    images: {FMNIST}/t10k-images-idx3-ubyte.gz
    labels: {FMNIST}/t10k-labels-idx1-ubyte.gz
    normalize: {{mean: [0.286], std: [0.353]}}
    limit: {N}
  fmnist_train:
    format: idx
    images: {FMNIST}/train-images-idx3-ubyte.gz
    labels: {FMNIST}/train-labels-idx1-ubyte.gz
    normalize: {{mean: [0.286], std: [0.353]}}
    offset: 50000
    limit: {N}
models:
  - name: cnn
{model}
    layers: [{", ".join(LAYERS)}]
analyses:
  cka: {{dataset: fmnist, batch: 100}}
  cka_exact: {{type: cka, dataset: fmnist, estimator: exact, pairs: consecutive}}
  cka_rbf: {{type: cka, dataset: fmnist, kernel: rbf, batch: 100, pairs: same-layer, sigma_sample: 200}}
  cca: {{dataset: fmnist, methods: [cca, svcca, pwcca, procrustes], checkpoints: ["*/epoch_05"],
        layers: [pool2, fc1, fc2]}}
  spectrum: {{dataset: fmnist}}
  # converged tightly (tol, no ftol stop), so that the optimum, not the stopping point, is compared
  probe: {{kind: logistic, train: fmnist_train, test: fmnist, grid: [1e-3, 1e-1, 3], layers: [fc1, fc2],
          tol: 1e-10, ftol: 0, max_iter: 5000}}
forward: {{batch: 100}}
"""


def read_metrics(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    keys = ("analysis", "metric", "model_a", "checkpoint_a", "layer_a", "model_b", "checkpoint_b", "layer_b",
            "dataset", "param")
    return {tuple(r[k] for k in keys): r for r in rows}


def exporter(*args):
    p = subprocess.run([PYTHON, EXPORTER, "--model", f"{DEMO}/train.py:SmallCNN", "--checkpoints", CKPTS,
                        "--device", "cpu", *args], capture_output=True, text=True, timeout=600)
    return p.returncode, p.stderr


def export(out, dataset, job, *extra):
    return exporter("--layers", ",".join(LAYERS), "--job", job, "--dataset", dataset, "--out", out,
                    "--batch", "50", "--shard", "150", *extra)


SPATIAL_JOB = f"""
name: spatial
data:
  fmnist:
    format: idx
    images: {FMNIST}/t10k-images-idx3-ubyte.gz
    labels: {FMNIST}/t10k-labels-idx1-ubyte.gz
    normalize: {{mean: [0.286], std: [0.353]}}
    limit: 60
models:
  - name: cnn
MODEL
    layers: [conv1:spatial, relu1:spatial]
analyses:
  cka: {{estimator: exact, pairs: same-layer}}
  spectrum: {{}}
forward: {{batch: 20}}
"""


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def to_rpc(folder):
    """Rewrite an export's .npy shards as repeval .rpc shards (header + zstd frame)."""
    man_path = os.path.join(folder, "activations.json")
    man = json.load(open(man_path))
    for tap in man["taps"]:
        for sh in tap["shards"]:
            src = os.path.join(folder, sh["file"])
            a = np.load(src).astype("<f4")
            rows, dim = sh["count"] * tap["rows_per_sample"], tap["dim"]
            raw = a.reshape(rows, dim).tobytes()
            z = subprocess.run(["zstd", "-q", "-c", "-3"], input=raw, capture_output=True, check=True).stdout
            head = b"RPVCACH1" + struct.pack("<IIqqQQqQ", 0, 0, rows, dim, 0, fnv1a64(raw), len(z), 0)
            dst = src[:-4] + ".rpc"
            with open(dst, "wb") as f:
                f.write(head + z)
            os.remove(src)
            sh["file"] = sh["file"][:-4] + ".rpc"
    with open(man_path, "w") as f:
        json.dump(man, f)


# counts of optimiser iterations (train_iterations, refit_iterations) are diagnostics, not
# metrics: rounding moves the last step of L-BFGS by one or two iterations
DIAGNOSTICS = ("_iterations",)


def compare(s, want, got, tol, what, skip=(), min_rows=100):
    s.check(set(want) == set(got) and len(want) > min_rows, f"{what}: same metric rows ({len(want)} vs {len(got)})")
    worst, at, per = 0.0, None, {}
    for key, r in want.items():
        g = got.get(key)
        if g is None or g["status"] != r["status"]:
            s.check(False, f"{what}: row {key} differs: {r} vs {g}")
            continue
        if r["value"] and not key[1].endswith(tuple(skip) or ("\0",)):
            a, b = float(r["value"]), float(g["value"])
            err = abs(a - b) / max(1.0, abs(a))
            per[key[0]] = max(per.get(key[0], 0.0), err)
            if err > worst:
                worst, at = err, key
    s.check(worst <= tol, f"{what}: largest difference {worst:.3g} (tolerance {tol}) at {at}")
    print(f"{what}: largest difference per analysis: " + ", ".join(f"{a} {e:.2g}" for a, e in sorted(per.items())))
    return worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, required=True)
    k = ap.parse_args().ranks
    s = Suite()
    with tmpdir() as d:
        fwd_job, act_job = os.path.join(d, "fwd.yaml"), os.path.join(d, "act.yaml")
        acts = os.path.join(d, "acts")
        with open(fwd_job, "w") as f:
            f.write(job_text(f"    arch: {DEMO}/cnn.yaml\n    checkpoints: \"{CKPTS}\""))
        with open(act_job, "w") as f:
            f.write(job_text(f"    activations: \"{acts}/seed*/epoch_*\""))
        for ds in ("fmnist", "fmnist_train"):
            rc, err = export(acts, ds, fwd_job, "--quiet")
            if not s.check(rc == 0, f"export {ds}: {err}"):
                s.finish()
        rc, _, err = repeval("run", act_job, "--out", os.path.join(d, "one"), "--quiet", timeout=600)
        s.check(rc == 0, f"activations run, 1 rank: {err}")
        rc, _, err = mpirun(k, "run", act_job, "--out", os.path.join(d, "many"), "--quiet", timeout=600)
        if not s.check(rc == 0, f"activations run, {k} ranks: {err}"):
            s.finish()
        one = read_metrics(os.path.join(d, "one", "metrics.csv"))
        s.check({key[0] for key in one} == {"cka", "cka_exact", "cka_rbf", "cca", "spectrum", "probe"},
                f"analyses: {sorted({key[0] for key in one})}")
        for name in ("metrics.csv", "cka_cka.npy", "cka_cka_rbf.npy", "spectrum_spectrum.npy"):
            with open(os.path.join(d, "one", name), "rb") as f1, open(os.path.join(d, "many", name), "rb") as f2:
                s.check(f1.read() == f2.read(), f"{name} byte-identical for 1 and {k} ranks")
        man = json.load(open(os.path.join(d, "many", "manifest.json")))
        kinds = [i["kind"] for i in man["inputs"]]
        s.check(kinds.count("activations") == 12 and "checkpoint" not in kinds,
                f"manifest lists the 6 x 2 exports as inputs: {kinds}")
        if k == 1:  # what does not depend on the number of ranks
            rc, _, err = repeval("run", fwd_job, "--out", os.path.join(d, "fwd"), "--quiet", timeout=600)
            if s.check(rc == 0, f"forward-engine run: {err}"):
                fwd = read_metrics(os.path.join(d, "fwd", "metrics.csv"))
                worst = compare(s, fwd, one, 1e-6, "activations vs forward engine", DIAGNOSTICS)
                print(f"largest difference between the exported and the forward-engine metrics: {worst:.3g}")
            # the same activations as safetensors shards: the same bits
            st_acts = os.path.join(d, "acts_st")
            for ds in ("fmnist", "fmnist_train"):
                rc, err = export(st_acts, ds, fwd_job, "--quiet", "--format", "safetensors")
                s.check(rc == 0, f"export {ds} as safetensors: {err}")
            st_job = os.path.join(d, "st.yaml")
            with open(st_job, "w") as f:
                f.write(job_text(f"    activations: \"{st_acts}/seed*/epoch_*\""))
            rc, _, err = repeval("run", st_job, "--out", os.path.join(d, "st"), "--quiet", timeout=600)
            if s.check(rc == 0, f"safetensors exports: {err}"):
                compare(s, one, read_metrics(os.path.join(d, "st", "metrics.csv")), 0.0, "safetensors vs npy shards")
            # one checkpoint's shards as .rpc
            rpc_acts = os.path.join(d, "acts_rpc")
            shutil.copytree(acts, rpc_acts)
            to_rpc(os.path.join(rpc_acts, "seed1", "epoch_05", "fmnist"))
            rpc_job = os.path.join(d, "rpc.yaml")
            with open(rpc_job, "w") as f:
                f.write(job_text(f"    activations: \"{rpc_acts}/seed*/epoch_*\""))
            rc, _, err = repeval("run", rpc_job, "--out", os.path.join(d, "rpc"), "--quiet", timeout=600)
            if s.check(rc == 0, f".rpc shards: {err}"):
                compare(s, one, read_metrics(os.path.join(d, "rpc", "metrics.csv")), 0.0, ".rpc vs npy shards")
            # with the job's embedding cache: the same bits, and only the probes' taps are cached
            cache_job = os.path.join(d, "cached.yaml")
            cache_dir = os.path.join(d, "cache")
            with open(cache_job, "w") as f:
                f.write(job_text(f"    activations: \"{acts}/seed*/epoch_*\"") + f"cache: {{dir: {cache_dir}}}\n")
            rc, _, err = repeval("run", cache_job, "--out", os.path.join(d, "cached"), "--quiet", timeout=600)
            if s.check(rc == 0, f"activations run with the job's cache: {err}"):
                compare(s, one, read_metrics(os.path.join(d, "cached", "metrics.csv")), 0.0, "with the job's cache")
                layers = set()
                for root, dirs, _ in os.walk(cache_dir):
                    if os.path.relpath(root, cache_dir).count(os.sep) == 1:
                        layers |= set(dirs)
                s.check(layers == {"fc1.flatten", "fc2.flatten", "labels"},
                        f"the cache holds the probes' taps only, not the exports again: {sorted(layers)}")
            # spatial taps (28 x 28 rows of 8 features per image), exported with --data
            sp_acts = os.path.join(d, "acts_sp")
            rc, err = exporter("--layers", "conv1:spatial,relu1:spatial", "--name", "fmnist", "--limit", "60",
                               "--data", f"idx:{FMNIST}/t10k-images-idx3-ubyte.gz,{FMNIST}/t10k-labels-idx1-ubyte.gz",
                               "--normalize", "0.286:0.353", "--out", sp_acts, "--batch", "20", "--quiet")
            s.check(rc == 0, f"export of spatial taps: {err}")
            runs = {}
            for tag, model in (("sp_fwd", f"    arch: {DEMO}/cnn.yaml\n    checkpoints: \"{CKPTS}\""),
                               ("sp_act", f"    activations: \"{sp_acts}/seed*/epoch_*\"")):
                path = os.path.join(d, tag + ".yaml")
                with open(path, "w") as f:
                    f.write(SPATIAL_JOB.replace("MODEL", model))
                rc, _, err = repeval("run", path, "--out", os.path.join(d, tag), "--quiet", timeout=600)
                if s.check(rc == 0, f"spatial taps, {tag}: {err}"):
                    runs[tag] = read_metrics(os.path.join(d, tag, "metrics.csv"))
            if len(runs) == 2:
                compare(s, runs["sp_fwd"], runs["sp_act"], 1e-6, "spatial taps: activations vs forward engine",
                        min_rows=20)
            # resume: an export stopped after its first shards is completed by a second run
            folder = os.path.join(acts, "seed2", "epoch_05", "fmnist")
            before = {}
            for root, _, files in os.walk(folder):
                for name in files:
                    p = os.path.join(root, name)
                    before[os.path.relpath(p, folder)] = (open(p, "rb").read(), os.stat(p).st_mtime_ns)
            spec = json.load(open(os.path.join(folder, "activations.json")))["export"]
            for name in ("activations.json", "sample_ids.npy"):
                os.remove(os.path.join(folder, name))
            last = [f for f in before if f.endswith("000000300-000000400.npy")]
            for f in last:
                os.remove(os.path.join(folder, f))
            with open(os.path.join(folder, "export.partial.json"), "w") as f:
                json.dump(spec, f)
            rc, err = export(acts, "fmnist", fwd_job)
            s.check(rc == 0 and "seed2/epoch_05/fmnist: 400 samples" in err and "(2 shards kept" in err,
                    f"resumed export: {err}")
            after = {}
            for root, _, files in os.walk(folder):
                for name in files:
                    p = os.path.join(root, name)
                    after[os.path.relpath(p, folder)] = (open(p, "rb").read(), os.stat(p).st_mtime_ns)
            s.check(set(after) == set(before), f"resumed export has the same files: {sorted(set(after) ^ set(before))}")
            s.check(all(after[f][0] == before[f][0] for f in before if f in after),
                    "resumed export is byte-identical to the uninterrupted one")
            kept = [f for f in before if f.endswith(".npy") and f not in last and f != "sample_ids.npy"]
            s.check(len(kept) == 10 and all(after[f][1] == before[f][1] for f in kept),
                    "the shards written before the stop were kept, not rewritten")
            s.check(len(last) == 5 and all(after[f][1] != before[f][1] for f in last), "the missing shards were written")
    s.finish()


if __name__ == "__main__":
    main()
