"""The knn, rsa and shape analyses of `repeval run` and its CCA directions equal the
standalone commands on the embeddings `repeval embed --data` dumps from the same
checkpoints and data: k-NN measures and RDM comparisons exactly (the same float32
rows give the same graphs and RDMs), the RDM files and the class-mean RDMs too;
shape metrics to 1e-9 relative (1e-7 absolute on angles; the co-moments are summed
in another order) and canonical directions to 1e-6."""
import csv
import json
import os

import numpy as np

from common import Suite, demo_embed, demo_job, repeval, tmpdir

os.environ["OPENBLAS_NUM_THREADS"] = "1"
CKPTS = ["seed0/epoch_00.safetensors", "seed1/epoch_05.pt"]
LAYERS = ["conv2:mean", "fc1", "fc2"]
N, B = 400, 100


def job(out):
    return demo_job("standalone", N, CKPTS, LAYERS, f"""
analyses:
  knn: {{k: 7}}
  rsa: {{methods: all, write_rdms: true}}
  rsa_classes: {{type: rsa, over: classes, distance: cosine, methods: [spearman, pearson, whitened_cosine]}}
  shape: {{alpha: [0, 0.5, 1], permutation: true, pairs: all}}
  cca: {{methods: [cca], pairs: all, directions: true}}
forward: {{batch: {B}}}
output: {{dir: {out}}}
""")


def main():
    s = Suite()
    with tmpdir() as d:
        out = os.path.join(d, "out")
        with open(os.path.join(d, "job.yaml"), "w") as f:
            f.write(job(out))
        rc, _, err = repeval("run", os.path.join(d, "job.yaml"), "--quiet", timeout=600)
        if not s.check(rc == 0, f"run: {err}"):
            s.finish()
        rows = list(csv.DictReader(open(os.path.join(out, "metrics.csv"))))
        taps = list(csv.DictReader(open(os.path.join(out, "knn_knn_taps.csv"))))
        files, labels = [], None
        for ck in CKPTS:
            e = os.path.join(d, "emb", ck.split(".")[0].replace("/", "_"))
            rc, _, err = demo_embed(ck, LAYERS, N, B, e)
            s.check(rc == 0, f"embed {ck}: {err}")
            files += [os.path.join(e, l.split(":")[0] + ".npy") for l in LAYERS]
            labels = os.path.join(e, "labels.npy")
        s.check(len(taps) == len(files), f"{len(taps)} taps, {len(files)} embedding files")

        def value(analysis, metric, i, j, param_has=""):
            a, b = taps[i], taps[j]
            for r in rows:
                if (r["analysis"], r["metric"], r["checkpoint_a"], r["layer_a"], r["checkpoint_b"], r["layer_b"]) == \
                        (analysis, metric, a["checkpoint"], a["layer"], b["checkpoint"], b["layer"]) and \
                        param_has in r["param"]:
                    return float(r["value"])
            return None

        # k-NN measures: exactly
        rc, o, err = repeval("knn", *files, "--k", 7, "--json")
        if s.check(rc == 0, f"knn: {err}"):
            for p in json.loads(o)["pairs"]:
                for m in ("mutual_knn", "cknna", "cycle_knn_ab", "cycle_knn_ba", "jaccard_knn"):
                    got = value("knn", m, p["a"], p["b"])
                    s.check(got is not None and got == p[m], f"knn {m} {p['a']},{p['b']}: run {got}, knn {p[m]}")
        # RDM comparisons and files: exactly
        prefix = os.path.join(d, "rdm")
        rc, o, err = repeval("rsa", *files, "--method", "all", "--json", "--rdm-out", prefix)
        if s.check(rc == 0, f"rsa: {err}"):
            for p in json.loads(o)["pairs"]:
                for m in ("spearman", "pearson", "kendall_tau_a", "cosine", "whitened_cosine", "whitened_pearson"):
                    got = value("rsa", "rsa_" + m, p["a"], p["b"])
                    s.check(got is not None and got == p[m], f"rsa {m} {p['a']},{p['b']}: run {got}, rsa {p[m]}")
            for q in range(len(files)):
                a, b = np.load(os.path.join(out, f"rsa_rsa_rdm_{q}.npy")), np.load(f"{prefix}_{q}.npy")
                s.check(a.shape == b.shape and np.array_equal(a, b), f"RDM file {q} equals rsa --rdm-out")
        rc, o, err = repeval("rsa", *files, "--labels", labels, "--distance", "cosine", "--method", "spearman",
                             "--method", "pearson", "--method", "whitened_cosine", "--json")
        if s.check(rc == 0, f"rsa --labels: {err}"):
            for p in json.loads(o)["pairs"]:
                for m in ("spearman", "pearson", "whitened_cosine"):
                    got = value("rsa_classes", "rsa_" + m, p["a"], p["b"])
                    s.check(got is not None and got == p[m], f"rsa over classes {m}: run {got}, rsa {p[m]}")
        # shape metrics and canonical directions: from co-moments summed in another order
        for i in range(len(files)):
            for j in range(i + 1, len(files)):
                rc, o, err = repeval("shape", files[i], files[j], "--alpha", 0, "--alpha", 0.5, "--alpha", 1,
                                     "--permutation", "--json")
                if not s.check(rc == 0, f"shape {i},{j}: {err}"):
                    continue
                sj = json.loads(o)
                for e in sj["alphas"]:
                    for m in ("angular", "euclidean"):
                        got, want = value("shape", "shape_" + m, i, j, f"alpha={e['alpha']:g}"), e[m]
                        s.check(got is not None and abs(got - want) <= 1e-9 * abs(want) + (1e-7 if m == "angular" else 0),
                                f"shape {m} alpha {e['alpha']} {i},{j}: run {got}, shape {want}")
                for m in ("angular", "euclidean"):
                    got, want = value("shape", "permutation_" + m, i, j), sj["permutation"][m]
                    s.check(got is not None and abs(got - want) <= 1e-9 * abs(want) + (1e-7 if m == "angular" else 0),
                            f"permutation {m} {i},{j}: run {got}, shape {want}")
        for i, j in ((0, 3), (1, 4), (0, 5)):
            pre = os.path.join(d, f"dir_{i}_{j}")
            rc, _, err = repeval("cca", files[i], files[j], "--directions", pre)
            if not s.check(rc == 0, f"cca --directions {i},{j}: {err}"):
                continue
            for name in ("rho", "x_coef", "y_coef", "x_loadings", "y_loadings"):
                a, b = np.load(os.path.join(out, f"cca_cca_{i}_{j}_{name}.npy")), np.load(f"{pre}_{name}.npy")
                ok = a.shape == b.shape and np.abs(a - b).max() <= 1e-6 * max(np.abs(b).max(), 1.0)
                s.check(ok, f"directions {i},{j} {name}: shapes {a.shape} {b.shape}"
                            f"{'' if a.shape != b.shape else f', max diff {np.abs(a - b).max():.2e}'}")
    s.finish()


if __name__ == "__main__":
    main()
