"""The probes of `repeval run` on the demo checkpoints equal `repeval probe` on the
embeddings that `repeval embed --data` dumps from the same checkpoints and data
(both splits, the train split from an offset): the logistic, ridge and k-NN probes
(same validation seed), test accuracies exactly, selected lambdas to 1e-12.
Exact and minibatch CKA, the CCA family and spectra against their standalone
commands are in the case table (tests/mpi/test_analysis_cases.py), on synthetic
activation exports at 1, 2 and 3 ranks; the run's forward pass on these
checkpoints against `repeval embed` is also checked by the CKA and CCA
uncertainty tests and test_run_ranks_agree."""
import csv
import json
import os

from common import Suite, demo_embed, demo_job, repeval, tmpdir

os.environ["OPENBLAS_NUM_THREADS"] = "1"
CKPTS = ["seed0/epoch_00.safetensors", "seed1/epoch_05.pt"]
LAYERS = ["conv2:mean", "fc1", "fc2"]
N, NTRAIN, B = 600, 500, 100
SEED = 20261202  # the validation split seed of repeval run (pipeline/run/run_probe.c)


def job(out):
    return demo_job("standalone", N, CKPTS, LAYERS, f"""
analyses:
  logistic: {{type: probe, train: train, test: test, lambdas: [1e-3, 1e-1]}}
  ridge: {{type: probe, kind: ridge, train: train, test: test, lambdas: [1e-4, 1e-2, 1]}}
  knn: {{type: probe, kind: knn, train: train, test: test, k: 10}}
batch: {B}
output: {{dir: {out}}}
""", train=(50000, NTRAIN))


def close(a, b, rtol):
    return abs(a - b) <= rtol * max(abs(a), abs(b), 1e-300)


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
        # embeddings of both splits for both checkpoints
        emb = {}
        for ck in CKPTS:
            label = ck.rsplit(".", 1)[0]
            for split in ("test", "train"):
                e = os.path.join(d, "emb", label.replace("/", "_"), split)
                # embed has no offset: take the train rows 50000.. by embedding a prefix and slicing
                limit = 50000 + NTRAIN if split == "train" else N
                rc, _, err = demo_embed(ck, LAYERS, limit, B, e, split)
                s.check(rc == 0, f"embed {ck} {split}: {err}")
                emb[(label, split)] = e
        import numpy as np
        for (label, split), e in emb.items():
            if split == "train":
                for name in [l.split(":")[0] for l in LAYERS] + ["labels"]:
                    a = np.load(os.path.join(e, name + ".npy"))
                    np.save(os.path.join(e, name + ".npy"), a[50000:])

        def path(label, layer, split="test"):
            return os.path.join(emb[(label, split)], layer + ".npy")

        def run_value(analysis, metric, ca, la, cb="", lb="", param_has=None):
            for r in rows:
                if (r["analysis"], r["metric"], r["checkpoint_a"], r["layer_a"], r["checkpoint_b"],
                        r["layer_b"]) == (analysis, metric, ca, la, cb, lb) and \
                        (param_has is None or param_has in r["param"]):
                    return r
            return None

        labels = [ck.rsplit(".", 1)[0] for ck in CKPTS]
        names = [l.split(":")[0] for l in LAYERS]
        taps = [(c, l) for c in labels for l in names]
        # probes
        for ca, la in taps:
            common = ["--train", path(ca, la, "train"), "--train-labels", path(ca, "labels", "train"),
                      "--test", path(ca, la), "--test-labels", path(ca, "labels"), "--seed", SEED, "--json"]
            for analysis, extra in (("logistic", ["--lambdas", "1e-3,1e-1"]),
                                    ("ridge", ["--kind", "ridge", "--lambdas", "1e-4,1e-2,1"]),
                                    ("knn", ["--kind", "knn", "--k", "10"])):
                rc, o, err = repeval("probe", *common, *extra, timeout=300)
                if not s.check(rc == 0, f"probe {analysis} {ca}/{la}: {err}"):
                    continue
                j = json.loads(o)
                r = run_value(analysis, "test_top1", ca, la)
                want = j.get("test", {}).get("top1")
                s.check(r is not None and want is not None and float(r["value"]) == float(want),
                        f"{analysis} test top-1 {ca}/{la}: run {r and r['value']}, probe {want}")
                if analysis != "knn":
                    r = run_value(analysis, "lambda", ca, la)
                    want = j.get("lambda")
                    s.check(r is not None and want is not None and close(float(r["value"]), float(want), 1e-12),
                            f"{analysis} selected lambda {ca}/{la}: run {r and r['value']}, probe {want}")
    s.finish()


if __name__ == "__main__":
    main()
