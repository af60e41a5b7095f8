"""`repeval shape` and `repeval cca --directions` against NumPy/SciPy written here from
the definitions:

- generalized shape metrics (Williams et al. 2021) as netrep computes them: centred
  data zero-padded to a common width, partial whitening Z = V diag(d) V^T from the
  eigendecomposition of X^T X (eigenvalues floored at 1e-7, d = alpha + (1 - alpha)
  lambda^-1/2 rescaled to keep the total variance; Z = I for alpha = 1), the
  Procrustes rotation from the SVD of (X Z_x)^T (Y Z_y), angular distance arccos of the
  aligned correlation and Euclidean |tX - tY|_F: values to 1e-10 relative for alpha in
  {0, 0.25, 0.5, 1} on offset data and widths p < q, and the alignment maps (first
  min(p, q) columns, sign convention) to 1e-8;
- the permutation metric with scipy.optimize.linear_sum_assignment (maximise) on
  X^T Y: values to 1e-12, on random data and on a column-permuted copy (distance 0);
- canonical directions from the generalized eigenproblem S_xy S_yy^-1 S_yx a =
  rho^2 S_xx a (scipy.linalg.eigh) with unit-variance variates, B = S_yy^-1 S_yx A /
  rho, loadings as correlations of features and variates: to 1e-8 (--ridge 0)."""
import json
import os

import numpy as np
import scipy.linalg
from scipy.optimize import linear_sum_assignment

from common import Suite, repeval, tmpdir


def pad(x, y):
    m = max(x.shape[1], y.shape[1])
    return np.pad(x, ((0, 0), (0, m - x.shape[1]))), np.pad(y, ((0, 0), (0, m - y.shape[1])))


def whiten(x, alpha):
    if alpha > 1 - 1e-7:
        return np.eye(x.shape[1])
    lam, v = np.linalg.eigh(x.T @ x)
    lam = np.maximum(lam, 1e-7)
    d = alpha + (1 - alpha) / np.sqrt(lam)
    d *= np.sqrt(lam.sum() / np.sum(alpha ** 2 * lam + 2 * alpha * (1 - alpha) * np.sqrt(lam) + (1 - alpha) ** 2))
    return (v * d) @ v.T


def shape_ref(x, y, alpha):
    p, q = x.shape[1], y.shape[1]
    x, y = pad(x - x.mean(0), y - y.mean(0))
    zx, zy = whiten(x, alpha), whiten(y, alpha)
    u, sv, vt = np.linalg.svd((x @ zx).T @ (y @ zy))
    tx, ty = x @ zx @ u, y @ zy @ vt.T
    c = np.sum(tx * ty) / np.linalg.norm(tx) / np.linalg.norm(ty)
    k = min(p, q)
    wx, wy = (zx @ u)[:p, :k], (zy @ vt.T)[:q, :k]
    sign = np.sign(wx[np.abs(wx).argmax(0), np.arange(k)])
    return np.arccos(np.clip(c, -1, 1)), np.linalg.norm(tx - ty), wx * sign, wy * sign


def perm_ref(x, y):
    x, y = pad(x - x.mean(0), y - y.mean(0))
    r, c = linear_sum_assignment(x.T @ y, maximize=True)
    tx, ty = x[:, r], y[:, c]
    cc = np.sum(tx * ty) / np.linalg.norm(tx) / np.linalg.norm(ty)
    return np.arccos(np.clip(cc, -1, 1)), np.linalg.norm(tx - ty)


def cca_ref(x, y):
    n = len(x)
    xc, yc = x - x.mean(0), y - y.mean(0)
    sxx, syy, sxy = xc.T @ xc / (n - 1), yc.T @ yc / (n - 1), xc.T @ yc / (n - 1)
    w, a = scipy.linalg.eigh(sxy @ np.linalg.solve(syy, sxy.T), sxx)
    k = min(x.shape[1], y.shape[1])
    o = np.argsort(-w)[:k]
    rho, a = np.sqrt(np.clip(w[o], 0, None)), a[:, o]
    a = a / np.sqrt(np.sum(a * (sxx @ a), 0))
    b = np.linalg.solve(syy, sxy.T @ a) / rho
    b = b / np.sqrt(np.sum(b * (syy @ b), 0))
    sign = np.sign(a[np.abs(a).argmax(0), np.arange(k)])
    a, b = a * sign, b * sign
    u, v = xc @ a, yc @ b
    lx = np.array([[np.corrcoef(xc[:, j], u[:, i])[0, 1] for i in range(k)] for j in range(x.shape[1])])
    ly = np.array([[np.corrcoef(yc[:, j], v[:, i])[0, 1] for i in range(k)] for j in range(y.shape[1])])
    return rho, a, b, lx, ly


def rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def main():
    s = Suite()
    rng = np.random.default_rng(29)
    with tmpdir() as d:
        n = 400
        x = rng.standard_normal((n, 6)) * np.array([4, 1, 0.5, 2, 1, 0.3]) + 100.0
        y = np.tanh((x[:, :4] - 100) / 3) @ rng.standard_normal((4, 9)) + 0.3 * rng.standard_normal((n, 9)) - 7.0
        px, py = os.path.join(d, "x.npy"), os.path.join(d, "y.npy")
        np.save(px, x)
        np.save(py, y)
        alphas = [0, 0.25, 0.5, 1]
        args = ["shape", px, py, "--permutation", "--json", "--transforms", os.path.join(d, "w")]
        for a in alphas:
            args += ["--alpha", a]
        rc, out, err = repeval(*args)
        if s.check(rc == 0, f"shape: exit {rc}: {err}"):
            j = json.loads(out)
            for e, a in enumerate(alphas):
                ang, euc, wx, wy = shape_ref(x, y, a)
                got = j["alphas"][e]
                s.close(got["angular"], ang, 1e-10, f"alpha {a} angular")
                s.close(got["euclidean"], euc, 1e-10, f"alpha {a} euclidean")
                gx, gy = np.load(os.path.join(d, f"w_a{e}_x.npy")), np.load(os.path.join(d, f"w_a{e}_y.npy"))
                s.check(gx.shape == wx.shape and rel(gx, wx) <= 1e-8, f"alpha {a}: Wx (rel diff {rel(gx, wx)})")
                s.check(gy.shape == wy.shape and rel(gy, wy) <= 1e-8, f"alpha {a}: Wy (rel diff {rel(gy, wy)})")
            pa, pe = perm_ref(x, y)
            s.close(j["permutation"]["angular"], pa, 1e-12, "permutation angular")
            s.close(j["permutation"]["euclidean"], pe, 1e-12, "permutation euclidean")
        # a column permutation of the same data is at distance 0 for the permutation metric,
        # and angular distance 0 at alpha = 1 (a rotation)
        pz = os.path.join(d, "xp.npy")
        np.save(pz, x[:, rng.permutation(6)] + 3.0)
        rc, out, err = repeval("shape", px, pz, "--alpha", 1, "--permutation", "--json")
        if s.check(rc == 0, f"shape of a permutation: exit {rc}: {err}"):
            j = json.loads(out)
            s.check(abs(j["permutation"]["angular"]) <= 1e-7 and abs(j["permutation"]["euclidean"]) <= 1e-6,
                    f"permuted copy: permutation metric 0 ({j['permutation']})")
            s.check(abs(j["alphas"][0]["angular"]) <= 1e-7, f"permuted copy: alpha 1 angular 0 ({j['alphas'][0]})")
        # canonical directions
        prefix = os.path.join(d, "cd")
        rc, out, err = repeval("cca", px, py, "--ridge", 0, "--directions", prefix)
        if s.check(rc == 0, f"cca --directions: exit {rc}: {err}"):
            rho, a, b, lx, ly = cca_ref(x, y)
            for name, want in (("rho", rho), ("x_coef", a), ("y_coef", b), ("x_loadings", lx), ("y_loadings", ly)):
                got = np.load(f"{prefix}_{name}.npy")
                s.check(got.shape == want.shape and rel(got, want) <= 1e-8,
                        f"directions {name}: shape {got.shape} vs {want.shape}, rel diff "
                        f"{rel(got, want) if got.shape == want.shape else '-'}")
        # undefined: a constant layer
        pc = os.path.join(d, "const.npy")
        np.save(pc, np.ones((n, 3)))
        rc, out, err = repeval("shape", px, pc, "--json")
        s.check(rc == 3 and json.loads(out or "{}").get("status") == "undefined" and "zero variance" in err,
                f"constant layer: exit {rc}: {err}")
        rc, _, err = repeval("shape", px, py, "--alpha", 1.5)
        s.check(rc == 2 and "--alpha" in err, f"alpha 1.5: exit {rc}: {err}")
    s.finish()


if __name__ == "__main__":
    main()
