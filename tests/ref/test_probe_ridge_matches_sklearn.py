"""repeval probe --kind ridge (all λ from one eigendecomposition of the feature
co-moment) against scikit-learn's Ridge(alpha = n λ, fit_intercept=True) on one-hot
targets and against a direct NumPy solve (X_c^T X_c + n λ I) W = X_c^T T:

- coefficients and intercepts (raw feature coordinates) to 1e-8 relative to their
  largest entry, with and without standardisation (standardised: Ridge on
  (x - mean) / std, mapped back), on Gaussian blobs with an offset, on blobs with
  fewer samples than features and on a Fashion-MNIST pixel subset when installed;
- per-λ validation and test counts of a 7-λ path (explicit validation set, refit on
  train + validation) equal to NumPy's argmax of scikit-learn's predictions, with
  at most one differing sample per λ; the selected λ has the most correct validation
  predictions (ties: larger λ); the test predictions file agrees too."""
import os

import numpy as np
from sklearn.linear_model import Ridge

from common import Suite, tmpdir
from probe_ref import blobs, fashion, probe, standardise_stats


def onehot(y, k):
    t = np.zeros((len(y), k))
    t[np.arange(len(y)), y] = 1
    return t


def sk_ridge(x, y, k, lam, standardize):
    """Raw-coordinate (W d x K, b K) of scikit-learn's fit at alpha = n lam."""
    x = np.asarray(x, dtype=np.float64)
    mu, sd = standardise_stats(x) if standardize else (np.zeros(x.shape[1]), np.ones(x.shape[1]))
    # ridge standardisation uses the population std from the co-moment diagonal
    m = Ridge(alpha=len(x) * lam, fit_intercept=True, solver="cholesky").fit((x - mu) / sd, onehot(y, k))
    w = m.coef_.T / sd[:, None]
    return w, m.intercept_ - mu @ w


def np_ridge(x, y, k, lam):
    x = np.asarray(x, dtype=np.float64)
    t = onehot(y, k)
    xc, tc = x - x.mean(0), t - t.mean(0)
    w = np.linalg.solve(xc.T @ xc + len(x) * lam * np.eye(x.shape[1]), xc.T @ tc)
    return w, t.mean(0) - x.mean(0) @ w


def rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def coefficients(t, name, train, test, lambdas, tol):
    x, y = train
    k = int(max(y.max(), test[1].max())) + 1
    for standardize in (True, False):
        for lam in lambdas:
            with tmpdir() as tmp:
                wpath = os.path.join(tmp, "w.npy")
                args = ["--kind", "ridge", "--lambdas", lam, "--weights", wpath]
                if not standardize:
                    args.append("--no-standardize")
                r, rc, err = probe(tmp, train, test, *args)
                if not t.check(rc == 0, f"{name} λ={lam}: repeval exited {rc}: {err}"):
                    continue
                wb = np.load(wpath)
            w, b = wb[:-1], wb[-1]
            ws, bs = sk_ridge(x, y, k, lam, standardize)
            e = max(rel(w, ws), rel(b, bs))
            t.check(e <= tol, f"{name} λ={lam} standardize={standardize}: coefficients vs sklearn, rel {e:.2e}")
            if not standardize:
                wn, bn = np_ridge(x, y, k, lam)
                e2 = max(rel(w, wn), rel(b, bn))
                t.check(e2 <= tol, f"{name} λ={lam}: coefficients vs NumPy solve, rel {e2:.2e}")
            xt, yt = test
            correct = int(((xt.astype(np.float64) @ ws + bs).argmax(1) == yt).sum())
            t.check(abs(r["test"]["correct"] - correct) <= 1,
                    f"{name} λ={lam}: test correct {r['test']['correct']} vs {correct}")
            print(f"{name} λ={lam:g} standardize={standardize}: rel error {e:.2e}, test {r['test']['correct']} "
                  f"vs {correct} / {len(yt)}")


def path(t, name, train, val, test, lambdas):
    k = int(max(train[1].max(), val[1].max(), test[1].max())) + 1
    with tmpdir() as tmp:
        ppath = os.path.join(tmp, "pred.npy")
        r, rc, err = probe(tmp, train, test, "--kind", "ridge", "--lambdas", ",".join(map(str, lambdas)),
                           "--predictions", ppath, val=val)
        if not t.check(rc == 0, f"{name} path: repeval exited {rc}: {err}"):
            return
        pred = np.load(ppath)
    xa = np.vstack([train[0], val[0]])
    ya = np.concatenate([train[1], val[1]])
    best = 0
    vals = []
    for i, (lam, p) in enumerate(zip(lambdas, r["curve"])):
        t.check(p["lambda"] == lam, f"{name}: curve in the given order")
        w, b = sk_ridge(*train, k, lam, True)
        vc = int(((val[0].astype(np.float64) @ w + b).argmax(1) == val[1]).sum())
        vals.append(p["val"]["correct"])
        t.check(abs(p["val"]["correct"] - vc) <= 1, f"{name} λ={lam}: validation {p['val']['correct']} vs {vc}")
        w, b = sk_ridge(xa, ya, k, lam, True)
        tc = int(((test[0].astype(np.float64) @ w + b).argmax(1) == test[1]).sum())
        t.check(abs(p["test"]["correct"] - tc) <= 1, f"{name} λ={lam}: test {p['test']['correct']} vs {tc}")
        if vals[i] > vals[best] or (vals[i] == vals[best] and lam > lambdas[best]):
            best = i
    t.check(r["lambda"] == lambdas[best], f"{name}: selected λ {r['lambda']}, expected {lambdas[best]}")
    w, b = sk_ridge(xa, ya, k, r["lambda"], True)
    ref = (test[0].astype(np.float64) @ w + b).argmax(1)
    t.check(pred.dtype == np.int32 and pred.shape == (len(test[1]),), "predictions: int32, one per test row")
    t.check(int((pred != ref).sum()) <= 1, f"{name}: {int((pred != ref).sum())} predictions differ")
    print(f"{name} path: λ {r['lambda']:g}, validation {vals}")


def main():
    t = Suite()
    a_train, a_test = blobs(1200, 40, 7, sep=3.0, seed=4, offset=2.0)
    coefficients(t, "blobs", a_train, a_test, [1e-6, 1e-2, 1.0], 1e-8)
    b_train, b_test = blobs(60, 150, 4, sep=3.0, seed=5)
    coefficients(t, "blobs n<d", b_train, b_test, [1e-2, 1.0], 1e-8)
    fm = fashion(2000, 500)
    if fm is None:
        print("Fashion-MNIST not installed: skipping that data set")
    else:
        coefficients(t, "fashion", fm[0], fm[1], [1e-4, 1e-1], 1e-8)
    v_train, v_rest = blobs(1500, 30, 12, sep=2.5, seed=6)
    (x, y), half = v_rest, len(v_rest[1]) // 2
    path(t, "blobs", v_train, (x[:half], y[:half]), (x[half:], y[half:]), [1e-6, 1e-4, 1e-2, 1e-1, 1.0, 10.0, 1e3])
    t.finish()


if __name__ == "__main__":
    main()
