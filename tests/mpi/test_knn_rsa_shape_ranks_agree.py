"""repeval run with the knn, rsa and shape analyses and CCA directions (demo CNN on
Fashion-MNIST) under mpiexec with K ranks: metrics.csv and every matrix, RDM,
alignment map and direction file are bitwise those of the single-rank run, also
when the K-rank run keeps only two RDMs at a time (REPEVAL_MAX_STATS_MB=9, RDMs
recomputed after eviction) and its k-NN grid has blocks of 64 rows split over the
ranks; an array split (--part 0/2, --part 1/2, then merge, each with K ranks) gives
the same metrics; with the job's embedding cache, finalize recomputes the same knn
and rsa rows, and without it leaves them out with a warning. An RBF CKA analysis
in the same job computes chunks during its setup: the rows the knn and rsa
analyses keep must still be complete."""
import argparse
import csv
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))

from common import Suite, demo_job, mpirun, repeval, tmpdir  # noqa: E402

os.environ["OPENBLAS_NUM_THREADS"] = "1"
N = 500


def job_text(out, cache=None):
    return demo_job("nbr", N, "seed{0,1}/epoch_{00,05}.*", ["conv2:mean", "fc1", "fc2"], f"""
analyses:
  cka_rbf: {{type: cka, kernel: rbf, batch: 100, sigma_sample: 200, pairs: same-layer}}
  knn: {{k: [5, 10], block: 64}}
  rsa: {{methods: all, write_rdms: true, pairs: same-layer}}
  rsa_classes: {{type: rsa, over: classes, distance: euclidean, methods: [spearman, whitened_cosine]}}
  shape: {{alpha: [0, 0.5, 1], permutation: true, transforms: true}}
  cca: {{methods: [cca], directions: true}}
forward: {{batch: 100}}
output: {{dir: {out}}}
{f"cache: {{dir: {cache}}}" if cache else ""}
""", dataset="fmnist")


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def same_files(s, a, b, what):
    names = sorted(n for n in os.listdir(a) if n.endswith(".npy") or n.endswith(".csv"))
    other = sorted(n for n in os.listdir(b) if n.endswith(".npy") or n.endswith(".csv"))
    s.check(names == other, f"{what}: same files ({len(names)} vs {len(other)})")
    bad = [n for n in names if n in other and open(os.path.join(a, n), "rb").read() != open(os.path.join(b, n), "rb").read()]
    s.check(not bad, f"{what}: byte-identical files, differing: {bad[:5]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, required=True)
    k = ap.parse_args().ranks
    s = Suite()
    with tmpdir() as d:
        job = os.path.join(d, "job.yaml")
        with open(job, "w") as f:
            f.write(job_text(os.path.join(d, "out")))
        single = os.path.join(d, "single")
        rc, _, err = repeval("run", job, "--out", single, "--quiet", timeout=600)
        if not s.check(rc == 0, f"single-rank run: {err}"):
            s.finish()
        got = rows(os.path.join(single, "metrics.csv"))
        metrics = {(r["analysis"], r["metric"]) for r in got}
        for want in [("knn", m) for m in ("mutual_knn", "cknna", "cycle_knn_ab", "cycle_knn_ba", "jaccard_knn",
                                          "knn_rows_rechecked")] + \
                [("rsa", "rsa_" + m) for m in ("spearman", "pearson", "kendall_tau_a", "cosine", "whitened_cosine",
                                               "whitened_pearson")] + \
                [("rsa_classes", "rsa_spearman"), ("shape", "shape_angular"), ("shape", "shape_euclidean"),
                 ("shape", "permutation_angular"), ("cca", "cca_mean_rho")]:
            s.check(want in metrics, f"metrics.csv has {want}")
        s.check(all(r["status"] == "ok" for r in got), f"every value defined: "
                f"{[r for r in got if r['status'] != 'ok'][:2]}")
        knn_rows = [r for r in got if r["analysis"] == "knn" and r["metric"] == "mutual_knn"]
        s.check(len(knn_rows) == 2 * 12 * 11 // 2, f"knn: every pair of the 12 taps at 2 k ({len(knn_rows)} rows)")
        s.check(all("pooling_a=" in r["param"] and r["param"].startswith("k=") for r in knn_rows),
                "knn rows record k and the pooling of both taps")
        files = set(os.listdir(single))
        for f in ("knn_knn_mutual_k5.npy", "knn_knn_cknna_k10.npy", "knn_knn_taps.csv", "rsa_rsa_spearman.npy",
                  "rsa_rsa_rdm_0.npy", "rsa_rsa_taps.csv", "shape_shape_0_3_alpha0.5_x.npy", "cca_cca_0_3_x_coef.npy",
                  "cca_cca_0_3_rho.npy"):
            s.check(f in files, f"output has {f}")
        # K ranks, two RDMs at a time: the same bits
        os.environ["REPEVAL_MAX_STATS_MB"] = "9"
        rc, _, err = mpirun(k, "run", job, "--quiet", timeout=600)
        del os.environ["REPEVAL_MAX_STATS_MB"]
        if s.check(rc == 0, f"{k}-rank run: {err[-800:]}"):
            same_files(s, single, os.path.join(d, "out"), f"{k} ranks")
        # an array split, each part and the merge with K ranks
        ok = True
        for part in ("0/2", "1/2"):
            rc, _, err = mpirun(k, "run", job, "--part", part, "--quiet", timeout=600)
            ok = s.check(rc == 0, f"part {part}: {err[-800:]}") and ok
        if ok:
            rc, _, err = mpirun(k, "merge", job, "--quiet", timeout=600)
            if s.check(rc == 0, f"merge: {err[-800:]}"):
                s.check(open(os.path.join(single, "metrics.csv"), "rb").read() ==
                        open(os.path.join(d, "out", "metrics.csv"), "rb").read(), "merge: metrics.csv bitwise")
        # finalize without the job's cache: no knn / rsa rows, a warning; the others the same
        rc, _, err = mpirun(k, "finalize", job, "--out", single, "--quiet", timeout=600)
        if s.check(rc == 0, f"finalize without cache: {err[-800:]}"):
            again = rows(os.path.join(single, "metrics.csv"))
            s.check(not any(r["analysis"] in ("knn", "rsa", "rsa_classes") for r in again),
                    "finalize without cache: no knn / rsa rows")
            kept = [r for r in got if r["analysis"] in ("shape", "cca")]
            s.check(kept == [r for r in again if r["analysis"] in ("shape", "cca")], "finalize: shape and cca rows")
            man = open(os.path.join(single, "manifest.json")).read()
            s.check("needs the tap rows" in man, "finalize without cache: the warning is in the manifest")
        # with the job's cache, finalize recomputes the knn and rsa rows
        cjob = os.path.join(d, "cjob.yaml")
        with open(cjob, "w") as f:
            f.write(job_text(os.path.join(d, "cached"), cache=os.path.join(d, "cache")))
        rc, _, err = mpirun(k, "run", cjob, "--quiet", timeout=600)
        if s.check(rc == 0, f"run with cache: {err[-800:]}"):
            s.check(rows(os.path.join(d, "cached", "metrics.csv")) == got, "run with cache: the same metrics")
            rc, _, err = mpirun(k, "finalize", cjob, "--quiet", timeout=600)
            if s.check(rc == 0, f"finalize with cache: {err[-800:]}"):
                again = rows(os.path.join(d, "cached", "metrics.csv"))
                pick = ("knn", "rsa", "rsa_classes")
                s.check([r for r in again if r["analysis"] in pick] == [r for r in got if r["analysis"] in pick],
                        "finalize with cache: the same knn and rsa rows")
    s.finish()


if __name__ == "__main__":
    main()
