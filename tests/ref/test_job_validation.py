"""repeval run validates the whole job before any compute and reports each
problem with file:line:column (unknown keys, missing files, unset environment
variables, bad patterns, impossible analyses, checkpoint/model mismatch); a
failed run leaves no output folder and no partial folder behind; --check of a
job whose analyses keep tap rows writes no cache shard."""
import os

from common import SOURCE_DIR, Suite, repeval, tmpdir

FMNIST = os.environ.get("FMNIST", "/usr/share/datasets/fashion-mnist")
DEMO = os.path.join(SOURCE_DIR, "jobs", "demo")

GOOD = f"""name: v
data:
  fmnist:
    format: idx
    images: {FMNIST}/t10k-images-idx3-ubyte.gz
    labels: {FMNIST}/t10k-labels-idx1-ubyte.gz
    limit: 64
models:
  - name: cnn
    arch: {DEMO}/cnn.yaml
    checkpoints: "{DEMO}/checkpoints/seed0/epoch_0{{0,1}}.*"
    layers: [fc1, fc2]
analyses:
  cka: {{batch: 32}}
"""

CASES = [
    # (replace this, with that, expected message fragment)
    ("name: v", "name: v\nbogus: 1", "job.yaml:2:1: unknown key 'bogus' in the job"),
    ("    limit: 64", "    limit: 64\n    lmit: 3", "job.yaml:8:5: dataset 'fmnist' (idx) has no key 'lmit'"),
    ("    format: idx", "    format: csv", "job.yaml:4:13: unknown dataset format 'csv'"),
    ("t10k-images-idx3-ubyte.gz", "nope-images.gz", "job.yaml:5:13: file not found"),
    (f"{FMNIST}/t10k-labels", "${REPEVAL_TEST_UNSET_VAR}/t10k-labels", "environment variable REPEVAL_TEST_UNSET_VAR is not set"),
    ("epoch_0{0,1}.*", "epoch_9{0,1}.*", "no file matches"),
    ("layers: [fc1, fc2]", "layers: [fc1, fc9]", "no module named 'fc9' to tap"),
    ("layers: [fc1, fc2]", "layers: [fc1:avg]", "tap mode 'avg' is not one of"),
    ("cka: {batch: 32}", "cka: {batch: 2}", "the unbiased HSIC estimator needs batches of at least 4"),
    ("cka: {batch: 32}", "cka: {kernel: poly}", "kernel must be linear or rbf"),
    ("cka: {batch: 32}", "cka: {estimator: exact, kernel: rbf}", "exact estimator supports only the linear kernel"),
    ("cka: {batch: 32}", "probes: {}", "unknown type 'probes'"),
    ("cka: {batch: 32}", "probe: {}", "probe 'probe' needs 'train'"),
    ("cka: {batch: 32}", "probe: {train: fmnist, test: nope}", "no dataset named 'nope'"),
    ("cka: {batch: 32}", "probe: {train: fmnist, test: fmnist, grid: [1, 0.1, 3]}", "grid needs 0 < low <= high"),
    ("cka: {batch: 32}", "probe: {train: fmnist, test: fmnist, kind: svm}", "probe kind must be logistic, ridge, knn or mlp"),
    ("cka: {batch: 32}", "probe: {train: fmnist, test: fmnist, layers: [nope]}", "select no tap"),
    ("cka: {batch: 32}", "cka: {dataset: cifar}", "no dataset named 'cifar'"),
    ("cka: {batch: 32}", "cka: {checkpoints: ['seed7/*']}", "match no checkpoint"),
    ("cka: {batch: 32}", "cca: {methods: [cca, ica]}", "unknown method 'ica'"),
    (f"arch: {DEMO}/cnn.yaml", "arch: resnet18-cifar", "does not match the model description"),
    ("  - name: cnn", "  - name: a/b", "a model needs a 'name' without '/'"),
    ("models:", "models: []\nx:", "unknown key 'x'"),
    ("    limit: 64", "    limit: 64\n    folds: {count: 1, use: [0]}", "job.yaml:8:20: dataset 'fmnist': folds count must be 2"),
    ("    limit: 64", "    limit: 64\n    folds: {count: 5, use: [2, 5]}", "job.yaml:8:32: dataset 'fmnist': fold 5 does not exist (0 ... 4)"),
    ("    limit: 64", "    limit: 64\n    folds: {count: 5, use: [1, 1]}", "fold 1 is listed twice"),
    ("    limit: 64", "    limit: 64\n    folds: {count: 5}", "'folds' needs 'count' and 'use'"),
    ("    limit: 64", "    limit: 64\n    folds: {count: 5, use: [0], seed: 3}", "unknown key 'seed'"),
    ("    limit: 64", "    limit: 64\n    folds: {count: 5, use: []}", "folds 'use' must be a list of 1 ... 5 fold numbers"),
]


def main():
    s = Suite()
    with tmpdir() as d:
        job = os.path.join(d, "job.yaml")
        out = os.path.join(d, "out")
        with open(job, "w") as f:
            f.write(GOOD)
        rc, o, err = repeval("run", job, "--check")
        s.check(rc == 0 and "64 samples" in o, f"the good job passes --check: {rc} {o} {err}")
        # analyses that keep tap rows (probe, knn, rsa) beside an RBF CKA, whose setup
        # computes chunks: --check checks, and writes no cache shard anywhere
        with open(job, "w") as f:
            f.write(GOOD.replace("cka: {batch: 32}", "cka: {batch: 32, kernel: rbf, sigma_sample: 32}\n"
                                 "  knn: {k: 3}\n  rsa: {}\n  probe: {train: fmnist, test: fmnist, lambdas: [1]}\n"
                                 "cache: {dir: cache}"))
        rc, o, err = repeval("run", job, "--check")
        s.check(rc == 0 and "the job is valid" in o and not os.path.exists(os.path.join(d, "cache")),
                f"--check with row-keeping analyses, RBF CKA and a cache: {rc} {o} {err[-300:]}")
        for old, new, msg in CASES:
            text = GOOD.replace(old, new)
            if not s.check(text != GOOD, f"case edits the job: {old!r}"):
                continue
            with open(job, "w") as f:
                f.write(text)
            rc, o, err = repeval("run", job, "--out", out, "--quiet")
            s.check(rc == 1 and msg in err, f"{new!r}: want rc 1 and {msg!r}, got rc {rc}: {err.strip()}")
            s.check(not os.path.exists(out) and not any(".partial" in n for n in os.listdir(d)),
                    f"{new!r}: no output left behind")
        rc, o, err = repeval("run")
        s.check(rc == 2 and "give a job file" in err, f"no job file: {rc} {err}")
        rc, o, err = repeval("run", os.path.join(d, "missing.yaml"))
        s.check(rc == 1 and "missing.yaml: cannot open" in err, f"missing job file: {rc} {err}")
    s.finish()


if __name__ == "__main__":
    main()
