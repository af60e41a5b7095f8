#!/usr/bin/python3
"""Benchmark (not a test): the logistic probe's full λ sweep, repeval against
scikit-learn's LogisticRegression(solver="lbfgs", multi_class="multinomial") on the
same features, the same validation split, the same grid and the same stopping rule,
in the same run.

Data: a Gaussian mixture with 10 classes in 512 dimensions (fixed seed), 50,000
training rows and 10,000 test rows (--quick: 5,000 and 1,000, 128 dimensions).

Both sides do the same work: standardise with the training set's mean and
population std, hold out the same 10% validation rows (the documented splitmix64
Fisher-Yates permutation, re-implemented below), fit the 11 λ of the default grid
1e-6 ... 1e4 on the rest from the largest λ to the smallest, choose the λ with the
most correct validation predictions (ties: lower validation loss, then larger λ),
refit on train + validation and score the test rows. λ maps to C = 1 / (λ n) with n
the rows of that fit. Stopping: repeval stops when ||grad f||_inf <= tol max(1, |f|)
for f = mean loss + λ/2 ||W||^2; scikit-learn's L-BFGS-B minimises n f, so its gtol
is n tol (the same test for |f| <= 1, tighter above); both stop on a relative
decrease below 2.2e-9 (L-BFGS-B's default factr 1e7).

scikit-learn is timed twice: cold (a new estimator per λ, the usual loop) and warm
(warm_start=True, the same order and warm starts as repeval). The repeval time is
the wall time of the whole `repeval probe` process, reading the .npy files included;
CPU times (the process's, resp. the sweep's) are reported as well, the measure to
compare on a shared machine. bench/run calls run() from here.

Threads: OPENBLAS_NUM_THREADS (default: all cores) is used for both, and also caps
scikit-learn's OpenMP threads through threadpoolctl.

Usage: bench_probe.py [--quick] [--repeval PATH] [--tol 1e-6]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

MASK = (1 << 64) - 1


def splitmix64_perm(n, seed):
    """The validation permutation of repeval (re_probe_split)."""
    perm = np.arange(n, dtype=np.int64)
    state = seed & MASK
    for i in range(n - 1, 0, -1):
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        z ^= z >> 31
        j = z % (i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def mixture(n, d, k, rng, centres):
    y = rng.integers(0, k, n)
    x = centres[y] + rng.normal(size=(n, d))
    return x.astype(np.float32), y.astype(np.int64)


def standardise_stats(x):
    x = x.astype(np.float64)
    mu = x.mean(0)
    var = ((x - mu) ** 2).mean(0)
    bound = (len(x) * np.finfo(np.float64).eps * mu) ** 2
    sd = np.where((var > 0) & (var > bound), np.sqrt(var), 1.0)
    return mu, sd


def sklearn_sweep(z_tr, y_tr, z_va, y_va, z_te, y_te, lambdas, tol, warm):
    def fit(clf, z, y, lam):
        clf.set_params(C=1.0 / (lam * len(z)), tol=tol * len(z))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(z, y)
        return clf

    def new():
        return LogisticRegression(solver="lbfgs", multi_class="multinomial", max_iter=1000, warm_start=warm)

    clf = new()
    curve = []
    coefs = []
    for lam in lambdas:
        if not warm:
            clf = new()
        fit(clf, z_tr, y_tr, lam)
        p = clf.predict_proba(z_va)
        correct = int((clf.classes_[p.argmax(1)] == y_va).sum())
        loss = float(-np.log(p[np.arange(len(y_va)), np.searchsorted(clf.classes_, y_va)]).sum())
        curve.append((lam, correct, loss, int(clf.n_iter_[0])))
        coefs.append((clf.coef_.copy(), clf.intercept_.copy()))
    best = 0
    for i in range(1, len(curve)):
        if curve[i][1] > curve[best][1] or (curve[i][1] == curve[best][1] and curve[i][2] < curve[best][2]):
            best = i
    lam = curve[best][0]
    z_all = np.vstack([z_tr, z_va])
    y_all = np.concatenate([y_tr, y_va])
    clf = new()
    if warm:
        clf.coef_, clf.intercept_ = coefs[best]
    fit(clf, z_all, y_all, lam)
    acc = float((clf.predict(z_te) == y_te).mean())
    return lam, acc, curve


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run(quick, repeval, tol=1e-6, threads=None, log=print):
    """The whole benchmark; returns a dict of sizes, times (wall and CPU), selected λ and accuracies."""
    n, nt, d, k = (5000, 1000, 128, 10) if quick else (50000, 10000, 512, 10)
    threads = threads or int(os.environ.get("OPENBLAS_NUM_THREADS", os.cpu_count() or 1))
    rng = np.random.default_rng(20240601)
    centres = rng.normal(size=(k, d)) * (3.0 / np.sqrt(2 * d))  # centre distances about 3 noise sd
    x, y = mixture(n, d, k, rng, centres)
    xt, yt = mixture(nt, d, k, rng, centres)
    lambdas = [10.0 ** e for e in range(4, -7, -1)]
    log(f"data: {n} train x {d} features, {k} classes, {nt} test; threads {threads}; tol {tol}")

    with tempfile.TemporaryDirectory(prefix="repeval-bench-") as tmp:
        paths = {}
        for name, arr in (("x", x), ("y", y), ("xt", xt), ("yt", yt)):
            paths[name] = os.path.join(tmp, name + ".npy")
            np.save(paths[name], arr)
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads))
        t0, c0 = time.perf_counter(), children_cpu()
        p = subprocess.run([repeval, "probe", "--train", paths["x"], "--train-labels", paths["y"],
                            "--test", paths["xt"], "--test-labels", paths["yt"], "--tol", str(tol),
                            "--json"], capture_output=True, text=True, env=env)
        t_re, c_re = time.perf_counter() - t0, children_cpu() - c0
        if p.returncode != 0:
            raise RuntimeError(f"repeval probe failed ({p.returncode}): {p.stderr}")
        r = json.loads(p.stdout)

    perm = splitmix64_perm(n, 0)
    nval = int(np.floor(0.1 * n + 0.5))
    is_val = np.zeros(n, bool)
    is_val[perm[:nval]] = True
    mu, sd = standardise_stats(x)
    z = (x.astype(np.float64) - mu) / sd
    zt = (xt.astype(np.float64) - mu) / sd
    z_tr, y_tr, z_va, y_va = z[~is_val], y[~is_val], z[is_val], y[is_val]

    results = {}
    with threadpool_limits(limits=threads):
        for warm in (False, True):
            t0, c0 = time.perf_counter(), time.process_time()
            lam, acc, curve = sklearn_sweep(z_tr, y_tr, z_va, y_va, zt, yt, lambdas, tol, warm)
            results[warm] = (time.perf_counter() - t0, lam, acc, curve, time.process_time() - c0)

    ok = True
    for warm in (False, True):
        _, lam, acc, _, _ = results[warm]
        if lam != r["lambda"] or abs(acc - r["test"]["top1"]) > 1.0 / nt + 1e-12:
            ok = False
    return {"n": n, "n_test": nt, "d": d, "classes": k, "threads": threads, "repeval": r, "repeval_s": t_re,
            "repeval_cpu_s": c_re, "sklearn": results, "agree": ok}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeval", default=os.environ.get("REPEVAL_BIN", "repeval"))
    ap.add_argument("--tol", type=float, default=1e-6)
    args = ap.parse_args()
    try:
        res = run(args.quick, args.repeval, args.tol)
    except RuntimeError as e:
        sys.exit(str(e))
    r, results, t_re, nt = res["repeval"], res["sklearn"], res["repeval_s"], res["n_test"]

    print(f"\n{'lambda':>8} {'repeval val':>12} {'iters':>6} {'evals':>6}   {'sklearn val':>12} {'iters':>6}")
    for pt, sk in zip(r["curve"], results[False][3]):
        print(f"{pt['lambda']:8.0e} {pt['val']['correct']:12.0f} {pt['iterations']:6d} {pt['evaluations']:6d}"
              f"   {sk[1]:12d} {sk[3]:6d}")
    print(f"\nrepeval        : {t_re:8.2f} s   lambda {r['lambda']:.0e}   test top-1 {r['test']['top1']:.4f}")
    for warm in (False, True):
        t, lam, acc, _, _ = results[warm]
        name = "sklearn warm" if warm else "sklearn cold"
        print(f"{name:15s}: {t:8.2f} s   lambda {lam:.0e}   test top-1 {acc:.4f}   repeval is {t / t_re:.2f}x faster")
    ok = res["agree"]
    for warm in (False, True):
        _, lam, acc, _, _ = results[warm]
        if lam != r["lambda"] or abs(acc - r["test"]["top1"]) > 1.0 / nt + 1e-12:
            print(f"MISMATCH ({'warm' if warm else 'cold'}): sklearn lambda {lam}, top-1 {acc}; "
                  f"repeval lambda {r['lambda']}, top-1 {r['test']['top1']}")
    print("accuracies agree" if ok else "accuracies differ")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
