"""The uncertainty columns of the cca and spectrum analyses of `repeval run`
equal an independent NumPy computation on the embeddings `repeval embed` dumps
from the same checkpoints and data: every bootstrap replicate is the data with
sample s repeated Poisson(1) times (draw (seed, 2^40 + r, s) of the documented
generator), every null replicate the second tap's samples permuted within each
statistics batch (draw (seed, 2^41 + m, k)); the metrics of each are computed
on the data matrices by the reference implementations of
test_cca_matches_numpy.py (orthonormal bases by SVD, no co-moments): CCA mean
rho and rho^2, SVCCA, PWCCA, Procrustes (a distance: its p-value counts null
values <= the score), regression R^2 both ways, and the spectrum's effective
ranks, participation ratio, total variance, k90 and k99. Normal intervals for
cca, percentile intervals for spectrum. Tolerances: values 1e-7 relative,
standard errors and interval ends 1e-6 relative plus 1e-7 absolute (the run
computes from co-moments in float64, the reference from the data); p-values
and the integer k90/k99 exactly."""
import csv
import os

import numpy as np
from scipy import stats

from common import Suite, demo_embed, demo_job, repeval, tmpdir
from test_cca_matches_numpy import cca_rho, pwcca, procrustes, ridge_r2, spectrum, svcca_rho
from test_cka_uncertainty_matches_numpy import BOOT, PERM, permutation, poisson1

os.environ["OPENBLAS_NUM_THREADS"] = "1"
CKPTS = ["seed0/epoch_05.pt", "seed1/epoch_05.pt"]
LAYERS = ["fc1", "fc2"]
N, B = 300, 50
NB_CCA, NN_CCA, NB_SPEC = 8, 5, 8


def job(out):
    return demo_job("uncertainty-cca", N, CKPTS, LAYERS, f"""
analyses:
  cca: {{methods: [cca, svcca, pwcca, procrustes, linreg], ridge: 0,
         uncertainty: {{replicates: {NB_CCA}, permutations: {NN_CCA}, seed: 3, level: 0.9}}}}
  spectrum: {{uncertainty: {{replicates: {NB_SPEC}, seed: 6, interval: percentile}}}}
forward: {{batch: {B}}}
output: {{dir: {out}}}
""")


def cca_metrics(x, y):
    rho = cca_rho(x, y)
    return {"cca_mean_rho": rho.mean(), "cca_mean_rho2": (rho ** 2).mean(), "svcca": svcca_rho(x, y).mean(),
            "pwcca": pwcca(x, y), "procrustes_d2": procrustes(x, y), "r2_b_from_a": ridge_r2(x, y, 0.0),
            "r2_a_from_b": ridge_r2(y, x, 0.0)}


def spectrum_metrics(x):
    lam, pr, er, ere = spectrum(x)
    frac = np.cumsum(lam) / lam.sum()
    return {"effective_rank": er, "effective_rank_eig": ere, "participation_ratio": pr, "total_variance": lam.sum(),
            "k90": float(np.argmax(frac >= 0.9) + 1), "k99": float(np.argmax(frac >= 0.99) + 1)}


def close(a, b, rtol, atol=0.0):
    return a is not None and b is not None and abs(a - b) <= rtol * max(abs(a), abs(b)) + atol


def main():
    s = Suite()
    with tmpdir() as d:
        out = os.path.join(d, "out")
        with open(os.path.join(d, "job.yaml"), "w") as f:
            f.write(job(out))
        rc, _, err = repeval("run", os.path.join(d, "job.yaml"), "--quiet", timeout=600)
        if not s.check(rc == 0, f"run: {err}"):
            s.finish()
        with open(os.path.join(out, "metrics.csv")) as f:
            rows = {(r["analysis"], r["metric"], r["checkpoint_a"], r["layer_a"], r["checkpoint_b"], r["layer_b"]): r
                    for r in csv.DictReader(f)}
        feats = {}
        for ck in CKPTS:
            label = ck.rsplit(".", 1)[0]
            e = os.path.join(d, "emb", label.replace("/", "_"))
            rc, _, err = demo_embed(ck, LAYERS, N, B, e)
            s.check(rc == 0, f"embed {ck}: {err}")
            for layer in LAYERS:
                feats[(label, layer)] = np.load(os.path.join(e, layer + ".npy")).astype(np.float64)

        def check(what, r, est, boot, null, level, percentile, lower=False, exact=False):
            if not s.check(r is not None and r["status"] == "ok", f"{what}: row ok: {r}"):
                return
            v = float(r["value"])
            s.check(v == est if exact else close(v, est, 1e-7), f"{what}: value {v} vs {est}")
            boot = np.asarray(boot)
            se = boot.std(ddof=1)
            if percentile:
                lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
            else:
                z = stats.norm.ppf((1 + level) / 2)
                lo, hi = est - z * se, est + z * se
            for key, want in (("se", se), ("ci_low", lo), ("ci_high", hi)):
                s.check(close(float(r[key]), want, 1e-6, 1e-7), f"{what}: {key} {r[key]} vs {want}")
            if null is None:
                s.check(r["null_mean"] == r["p_value"] == "", f"{what}: no null columns")
                return
            null = np.asarray(null)
            p = (1 + np.sum(null <= est if lower else null >= est)) / (len(null) + 1)
            s.check(close(float(r["null_mean"]), null.mean(), 1e-6, 1e-7) and
                    close(float(r["null_q95"]), np.quantile(null, 0.95), 1e-6, 1e-7),
                    f"{what}: null {r['null_mean']} {r['null_q95']} vs {null.mean()} {np.quantile(null, 0.95)}")
            s.check(float(r["p_value"]) == p, f"{what}: p-value {r['p_value']} vs {p}")

        weights = {seed: [np.array([poisson1(seed, BOOT + k, i) for i in range(N)]) for k in range(nb)]
                   for seed, nb in ((3, NB_CCA), (6, NB_SPEC))}
        labels = [c.rsplit(".", 1)[0] for c in CKPTS]
        for layer in LAYERS:  # same-layer pairs: seed0 against seed1, seed1's samples permuted for the null
            a, b = (labels[0], layer), (labels[1], layer)
            x, y = feats[a], feats[b]
            est = cca_metrics(x, y)
            boot = [cca_metrics(np.repeat(x, w, 0), np.repeat(y, w, 0)) for w in weights[3]]
            null = [cca_metrics(x, np.concatenate([y[k * B:(k + 1) * B][permutation(3, PERM + m, k, B)]
                                                   for k in range(N // B)])) for m in range(NN_CCA)]
            for metric in est:
                r = rows.get(("cca", metric) + a + b)
                check(f"cca {metric} {layer}", r, est[metric], [q[metric] for q in boot], [q[metric] for q in null],
                      0.9, False, lower=metric == "procrustes_d2")
                c = rows.get(("cca", metric + "_calibrated") + a + b)
                s.check(c is not None and close(float(c["value"]), float(r["value"]) - float(r["null_mean"]), 1e-12),
                        f"cca {metric} {layer}: calibrated row = value - null mean")
        for label in labels:
            for layer in LAYERS:
                x = feats[(label, layer)]
                est = spectrum_metrics(x)
                boot = [spectrum_metrics(np.repeat(x, w, 0)) for w in weights[6]]
                for metric in est:
                    r = rows.get(("spectrum", metric, label, layer, "", ""))
                    check(f"spectrum {metric} {label}/{layer}", r, est[metric], [q[metric] for q in boot], None, 0.95,
                          True, exact=metric in ("k90", "k99"))
                r = rows.get(("spectrum", "collapsed", label, layer, "", ""))
                s.check(r is not None and r["se"] == "" and r["p_value"] == "", f"collapsed {label}/{layer}: no columns")
    s.finish()


if __name__ == "__main__":
    main()
