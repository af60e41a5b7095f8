"""repeval run with uncertainty on every CKA estimator (minibatch linear and RBF
with the bootstrap over batches and a permutation null, minibatch with the
jackknife, exact with the Poisson bootstrap over samples and a null), the CCA
family (bootstrap and null) and spectra (bootstrap; both analyses spread their
units over the ranks, which get the replicates by broadcast) under
mpiexec with K ranks writes metrics.csv byte-identical to the single-rank run:
replicate weights and permutations are keyed by global batch and sample
indices, and the replicate sums ride the canonical reduction tree (the K-rank
run spills every waiting node to a file). Two array parts and `repeval merge`
give the same bytes too; every CKA row of these analyses carries se, ci_low <=
value <= ci_high (normal intervals) and a null summary with a p-value in
(0, 1]."""
import argparse
import csv
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))

from common import Suite, demo_job, mpirun, repeval, tmpdir  # noqa: E402

os.environ["OPENBLAS_NUM_THREADS"] = "1"
N = 360


def job_text(d):
    return demo_job("unc-ranks", N, "seed{0,1}/epoch_{00,05}.*", ["conv1:mean", "fc1", "fc2"], f"""
analyses:
  cka: {{batch: 40, uncertainty: {{replicates: 50, permutations: 10, seed: 4}}}}
  cka_rbf: {{type: cka, kernel: rbf, batch: 40, pairs: same-layer, sigma_sample: 120,
            uncertainty: {{replicates: 20, permutations: 5, calibrate: z}}}}
  cka_jk: {{type: cka, batch: 40, pairs: consecutive, uncertainty: {{method: jackknife, permutations: 4}}}}
  cka_exact: {{type: cka, estimator: exact, pairs: within, checkpoints: ["seed0/*"],
              uncertainty: {{replicates: 16, permutations: 4, seed: 8}}}}
  cca: {{methods: [cca, svcca, pwcca, procrustes, linreg], checkpoints: ["*/epoch_05"],
        uncertainty: {{replicates: 12, permutations: 3, seed: 2}}}}
  spectrum: {{uncertainty: {{replicates: 12, interval: percentile}}}}
forward: {{batch: 40}}
output: {{dir: {d}/out}}
""", dataset="fmnist")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, required=True)
    k = ap.parse_args().ranks
    s = Suite()
    with tmpdir() as d:
        job = os.path.join(d, "job.yaml")
        with open(job, "w") as f:
            f.write(job_text(d))
        rc, _, err = repeval("run", job, "--out", os.path.join(d, "single"), "--quiet", timeout=600)
        if not s.check(rc == 0, f"single-rank run: {err}"):
            s.finish()
        os.environ["REPEVAL_SPILL_MB"] = "0"
        rc, _, err = mpirun(k, "run", job, "--quiet", timeout=600)
        del os.environ["REPEVAL_SPILL_MB"]
        if not s.check(rc == 0, f"{k}-rank run: {err}"):
            s.finish()
        one = open(os.path.join(d, "single", "metrics.csv"), "rb").read()
        many = open(os.path.join(d, "out", "metrics.csv"), "rb").read()
        s.check(one == many, f"metrics.csv byte-identical for 1 and {k} ranks")
        if k == 2:
            for part in ("0/2", "1/2"):
                rc, _, err = mpirun(k, "run", job, "--part", part, "--out", os.path.join(d, "arr"), "--quiet",
                                    timeout=600)
                s.check(rc == 0, f"part {part}: {err}")
            rc, _, err = repeval("merge", job, "--out", os.path.join(d, "arr"), "--quiet", timeout=600)
            if s.check(rc == 0, f"merge: {err}"):
                s.check(open(os.path.join(d, "arr", "metrics.csv"), "rb").read() == one,
                        "2 parts + merge: metrics.csv byte-identical")
        with open(os.path.join(d, "single", "metrics.csv")) as f:
            rows = list(csv.DictReader(f))
        seen = {}
        for r in rows:
            seen[(r["analysis"], r["metric"])] = seen.get((r["analysis"], r["metric"]), 0) + 1
            if r["metric"] != "cka" or r["status"] != "ok":
                continue
            v, se, lo, hi = (float(r[c]) for c in ("value", "se", "ci_low", "ci_high"))
            p = float(r["p_value"])
            s.check(se >= 0 and lo <= v <= hi and r["null_mean"] != "" and r["null_q95"] != "" and 0 < p <= 1,
                    f"{r['analysis']} {r['checkpoint_a']}/{r['layer_a']} - {r['checkpoint_b']}/{r['layer_b']}: "
                    f"value {v}, se {se}, [{lo}, {hi}], p {p}")
        s.check(seen.get(("cka", "cka")) == seen.get(("cka", "cka_calibrated")) == 66, f"rows: {seen}")
        s.check(seen.get(("cka_rbf", "cka")) == seen.get(("cka_rbf", "cka_z")) == 18, f"rows: {seen}")
        s.check(seen.get(("cka_jk", "cka")) == 9 and seen.get(("cka_exact", "cka")) == 6, f"rows: {seen}")
        s.check(seen.get(("cca", "pwcca")) == seen.get(("cca", "procrustes_d2_calibrated")) == 3, f"rows: {seen}")
        with_se = sum(1 for r in rows if r["analysis"] in ("cca", "spectrum") and r["se"] != "")
        s.check(with_se == 3 * 14 + 12 * 6, f"cca and spectrum rows with a standard error: {with_se}")
    s.finish()


if __name__ == "__main__":
    main()
