"""repeval probe --kind logistic against scikit-learn's LogisticRegression
(multinomial, lbfgs; Debian's python3-sklearn) at the matched C = 1 / (λ n):

- both parameter sets are put through one NumPy objective (mean multinomial loss on
  the standardised features + λ/2 ||W||^2, free bias): repeval's is within 1e-6
  (relative) of scikit-learn's and not worse by more than that; the objective repeval
  reports is the NumPy value of its own weights to 1e-9;
- test accuracy within one sample of scikit-learn's;
- on Gaussian blobs (with a feature offset, so standardisation matters), on blobs with
  fewer samples than features, and on a Fashion-MNIST pixel subset (2x2-pooled, plus
  two constant features) when Debian's dataset-fashion-mnist is installed;
- the whole default sweep (11 λ, 10% validation split from the documented seeded
  permutation, re-implemented here): per-λ validation counts within one sample of
  scikit-learn's fits on the same split, the same selection rule's λ, and the refit's
  test accuracy within one sample."""
import os
import warnings

import numpy as np

from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from common import Suite, tmpdir
from probe_ref import blobs, fashion, logistic_objective, probe, standardise_stats, validation_mask


def sk_fit(z, y, lam, init=None):
    clf = LogisticRegression(C=1.0 / (lam * len(z)), multi_class="multinomial", solver="lbfgs", tol=1e-10,
                             max_iter=20000, warm_start=init is not None)
    if init is not None:
        clf.coef_, clf.intercept_ = init
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(z, y)
    k = int(y.max()) + 1
    w = np.zeros((k, z.shape[1]))
    b = np.full(k, -np.inf)
    w[clf.classes_] = clf.coef_
    b[clf.classes_] = clf.intercept_
    return w, b


def single_lambda(t, name, train, test, lambdas):
    x, y = train
    xt, yt = test
    mu, sd = standardise_stats(x)
    z, zt = (x - mu) / sd, (xt - mu) / sd
    for lam in lambdas:
        with tmpdir() as tmp:
            wpath = os.path.join(tmp, "w.npy")
            r, rc, err = probe(tmp, train, test, "--lambdas", lam, "--tol", "1e-10", "--ftol", "0",
                               "--weights", wpath)
            if not t.check(rc == 0, f"{name} λ={lam}: repeval exited {rc}: {err}"):
                continue
            wb = np.load(wpath)
        d = x.shape[1]
        w_raw, b_raw = wb[:, :d], wb[:, d]
        # back to standardised coordinates with NumPy's own statistics
        w_re, b_re = w_raw * sd, b_raw + w_raw @ mu
        w_sk, b_sk = sk_fit(z, y, lam)
        f_re = logistic_objective(z, y, w_re, b_re, lam)
        f_sk = logistic_objective(z, y, w_sk, b_sk, lam)
        t.close(f_re, f_sk, 1e-6, f"{name} λ={lam}: objective vs sklearn")
        t.check(f_re <= f_sk * (1 + 1e-6), f"{name} λ={lam}: repeval objective {f_re} worse than sklearn {f_sk}")
        t.close(r["refit"]["f"], f_re, 1e-9, f"{name} λ={lam}: reported objective vs NumPy")
        t.check(r["refit"]["converged"] or r["refit"]["stop"] == "line search",
                f"{name} λ={lam}: stopped by {r['refit']['stop']}")
        acc_sk = int(((zt @ w_sk.T + b_sk).argmax(1) == yt).sum())
        t.check(abs(r["test"]["correct"] - acc_sk) <= 1,
                f"{name} λ={lam}: test correct {r['test']['correct']} vs sklearn {acc_sk}")
        t.check(r["n_val"] == 0 and r["n_train"] == len(x), f"{name}: a single λ trains on all rows")
        print(f"{name} λ={lam:g}: f repeval {f_re:.12g} sklearn {f_sk:.12g}, iterations "
              f"{r['refit']['iterations']}, test {r['test']['correct']} vs {acc_sk} / {len(yt)}")


def sweep(t, name, train, test, seed):
    x, y = train
    xt, yt = test
    with tmpdir() as tmp:
        r, rc, err = probe(tmp, train, test, "--tol", "1e-9", "--ftol", "0", "--seed", seed)
    if not t.check(rc == 0, f"{name} sweep: repeval exited {rc}: {err}"):
        return
    mu, sd = standardise_stats(x)  # the final training set: train + validation
    z, zt = (x - mu) / sd, (xt - mu) / sd
    val = validation_mask(len(x), 0.1, seed)
    t.check(r["n_val"] == val.sum() and r["n_train"] == len(x) - val.sum(), f"{name}: split sizes")
    ztr, ytr, zva, yva = z[~val], y[~val], z[val], y[val]
    grid = [p["lambda"] for p in r["curve"]]
    t.check(grid == [10.0 ** e for e in range(4, -7, -1)], f"{name}: default grid, descending: {grid}")
    best, best_key, init, fits = 0, None, None, []
    for i, (lam, p) in enumerate(zip(grid, r["curve"])):
        w, b = sk_fit(ztr, ytr, lam, init)
        init = (w, b)
        fits.append(init)
        logits = zva @ w.T + b
        correct = int((logits.argmax(1) == yva).sum())
        m = logits.max(1, keepdims=True)
        loss = float(np.sum(m[:, 0] + np.log(np.exp(logits - m).sum(1)) - logits[np.arange(len(yva)), yva]))
        t.check(abs(p["val"]["correct"] - correct) <= 1,
                f"{name} λ={lam}: validation correct {p['val']['correct']} vs sklearn {correct}")
        t.close(p["val"]["loss"], loss / len(yva), 1e-3, f"{name} λ={lam}: validation loss")
        key = (correct, -loss)
        if best_key is None or key > best_key:
            best, best_key = i, key
    sel = grid.index(r["lambda"])
    t.check(r["curve"][sel]["val"]["correct"] >= best_key[0] - 1,
            f"{name}: repeval's λ {r['lambda']} has {r['curve'][sel]['val']['correct']} validation correct, "
            f"sklearn's best {grid[best]} has {best_key[0]}")
    w, b = sk_fit(z, y, r["lambda"], fits[sel])
    acc = int(((zt @ w.T + b).argmax(1) == yt).sum())
    t.check(abs(r["test"]["correct"] - acc) <= 1, f"{name} sweep: test correct {r['test']['correct']} vs {acc}")
    print(f"{name} sweep: λ {r['lambda']:g} (sklearn's best {grid[best]:g}), test {r['test']['correct']} vs {acc}")


def main():
    t = Suite()
    a_train, a_test = blobs(1500, 30, 6, sep=4.0, seed=1, offset=3.0)
    single_lambda(t, "blobs", a_train, a_test, [1e-4, 1e-2, 1.0])
    b_train, b_test = blobs(150, 400, 3, sep=3.0, seed=2)
    single_lambda(t, "blobs n<d", b_train, b_test, [1e-2, 1.0])
    fm = fashion(3000, 1000)
    if fm is None:
        print("Fashion-MNIST not installed: skipping that data set")
    else:
        (x, y), (xt, yt) = fm
        # two constant features (the standardisation leaves them at scale 1)
        const = np.array([0.0, 0.37], dtype=np.float32)
        x = np.hstack([x, np.tile(const, (len(x), 1))])
        xt = np.hstack([xt, np.tile(const, (len(xt), 1))])
        single_lambda(t, "fashion", (x, y), (xt, yt), [1e-3, 1e-1])
    sweep(t, "blobs", a_train, a_test, seed=7)
    t.finish()


if __name__ == "__main__":
    main()
