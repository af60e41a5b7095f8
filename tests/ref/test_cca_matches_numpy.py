"""repeval cca / spectrum agree with an independent NumPy/SciPy implementation
that works on the data matrices (orthonormal bases by SVD, canonical variates as
n-vectors), not on co-moments: CCA, SVCCA, PWCCA with ridge 0 to 1e-8, the
ridge formulas to 1e-9, Procrustes, regression R^2 and spectra to 1e-9. Also the
sanity properties of Kornblith et al. (2019, sec. 2): identical or rotated inputs
give rho = 1 and Procrustes 0; an invertible map keeps rho = 1 but Procrustes > 0;
independent noise gives mean rho^2 near max(p, q)/(n - 1); degenerate inputs stay finite."""
import json
import os

import numpy as np
import scipy.linalg as sl

from common import Suite, repeval, tmpdir


def centred(x):
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return x - x.mean(0)


def basis(x, tol=1e-10):
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    return u[:, s > tol * s[0]] if s[0] > 0 else u[:, :0]


def cca_rho(x, y):
    qx, qy = basis(centred(x)), basis(centred(y))
    return np.clip(np.linalg.svd(qx.T @ qy, compute_uv=False), 0, 1)


def svcca_rho(x, y, frac=0.99):
    def reduce(z):
        z = centred(z)
        u, s, vt = np.linalg.svd(z, full_matrices=False)
        k = int(np.searchsorted(np.cumsum(s ** 2) / np.sum(s ** 2), frac - 1e-15) + 1)
        return z @ vt[:k].T
    return cca_rho(reduce(x), reduce(y))


def pwcca(x, y):
    xc, yc = centred(x), centred(y)
    if xc.shape[1] > yc.shape[1]:
        xc, yc = yc, xc
    qx, qy = basis(xc), basis(yc)
    u, rho, vt = np.linalg.svd(qx.T @ qy, full_matrices=False)
    h = qx @ u  # unit canonical variates of the smaller side, n x k
    alpha = np.abs(h.T @ xc).sum(axis=1)
    return float(np.sum(alpha * np.clip(rho, 0, 1)) / np.sum(alpha))


def procrustes(x, y):
    xc, yc = centred(x), centred(y)
    xc, yc = xc / np.linalg.norm(xc), yc / np.linalg.norm(yc)
    return max(0.0, 2 - 2 * np.linalg.svd(xc.T @ yc, compute_uv=False).sum())


def ridge_r2(x, y, eps):
    xc, yc = centred(x), centred(y)
    n = len(xc)
    sxx = xc.T @ xc / (n - 1)
    if eps == 0:
        b = np.linalg.lstsq(xc, yc, rcond=1e-12)[0]
        return 1 - np.sum((yc - xc @ b) ** 2) / np.sum(yc ** 2)
    b = np.linalg.solve(sxx + eps * np.trace(sxx) / sxx.shape[0] * np.eye(sxx.shape[0]), xc.T @ yc / (n - 1))
    return 1 - np.sum((yc - xc @ b) ** 2) / np.sum(yc ** 2)


def ridge_cca_rho(x, y, eps):
    xc, yc = centred(x), centred(y)
    n = len(xc)
    def inv_sqrt(s):
        s = s + eps * np.trace(s) / s.shape[0] * np.eye(s.shape[0])
        return np.real(sl.inv(sl.sqrtm(s)))
    sxx, syy, sxy = xc.T @ xc / (n - 1), yc.T @ yc / (n - 1), xc.T @ yc / (n - 1)
    return np.linalg.svd(inv_sqrt(sxx) @ sxy @ inv_sqrt(syy), compute_uv=False)


def spectrum(x):
    xc = centred(x)
    lam = np.linalg.svd(xc, compute_uv=False) ** 2 / (len(xc) - 1)
    def erank(v):
        p = v / v.sum()
        p = p[p > 0]
        return float(np.exp(-(p * np.log(p)).sum()))
    return lam, lam.sum() ** 2 / (lam ** 2).sum(), erank(np.sqrt(lam)), erank(lam)


def run_cca(s, px, py, *extra):
    rc, out, err = repeval("cca", px, py, "--method", "all", "--json", *extra)
    if not s.check(rc in (0, 3), f"cca {px} {py} {extra}: rc {rc}, {err}"):
        return None
    return json.loads(out)


def main():
    s = Suite()
    rng = np.random.default_rng(31)
    with tmpdir() as d:
        def save(name, a):
            p = os.path.join(d, name + ".npy")
            np.save(p, a)
            return p
        n = 500
        x = rng.standard_normal((n, 12)) @ rng.standard_normal((12, 12))
        y = np.tanh(x[:, :8] @ rng.standard_normal((8, 9))) + 0.3 * rng.standard_normal((n, 9)) + 100.0
        cases = {"random": (x, y), "offset": (x + 1000, y), "wide-y": (x[:, :5], y),
                 "dup": (np.hstack([x[:, :6], x[:, :2]]), y)}
        for name, (a, b) in cases.items():
            px, py = save(name + "_x", a), save(name + "_y", b)
            r = run_cca(s, px, py, "--ridge", "0")
            if r is None:
                continue
            want = cca_rho(a, b)
            got = np.array(r["cca"]["rho"])
            s.check(len(got) == len(want) and np.allclose(got, want, rtol=1e-8, atol=1e-8),
                    f"{name} cca rho\n{got}\n{want}")
            s.close(r["cca"]["mean_rho"], want.mean(), 1e-8, f"{name} mean rho")
            s.close(r["cca"]["mean_rho2"], (want ** 2).mean(), 1e-8, f"{name} mean rho^2")
            sv = svcca_rho(a, b)
            s.close(r["svcca"]["mean_rho"], sv.mean(), 1e-8, f"{name} svcca")
            s.close(r["pwcca"]["pwcca"], pwcca(a, b), 1e-8, f"{name} pwcca")
            s.close(r["procrustes_d2"], procrustes(a, b), 1e-9, f"{name} procrustes")
            s.close(r["r2_y_from_x"], ridge_r2(a, b, 0.0), 1e-8, f"{name} r2 y|x")
            s.close(r["r2_x_from_y"], ridge_r2(b, a, 0.0), 1e-8, f"{name} r2 x|y")
            # the default ridge against an explicit matrix-square-root implementation
            r = run_cca(s, px, py, "--ridge", "1e-3", "--variance", "0.9")
            if r is not None and name != "dup":
                want = ridge_cca_rho(a, b, 1e-3)[:len(r["cca"]["rho"])]
                s.check(np.allclose(r["cca"]["rho"], want, rtol=1e-9, atol=1e-12), f"{name} ridge cca")
                s.close(r["r2_y_from_x"], ridge_r2(a, b, 1e-3), 1e-9, f"{name} ridge r2")
                s.close(r["svcca"]["mean_rho"], svcca_rho(a, b, 0.9).mean(), 2e-3, f"{name} svcca 0.9 (ridge)")
            rc, out, err = repeval("spectrum", px, "--json")
            if s.check(rc == 0, f"spectrum {name}: {err}"):
                sp = json.loads(out)
                lam, pr, er, ere = spectrum(a)
                s.check(np.allclose(sp["eigenvalues"][:np.sum(lam > 1e-9 * lam[0])],
                                    lam[lam > 1e-9 * lam[0]], rtol=1e-9), f"{name} eigenvalues")
                s.close(sp["participation_ratio"], pr, 1e-9, f"{name} participation ratio")
                s.close(sp["effective_rank"], er, 1e-7, f"{name} effective rank")
                s.close(sp["effective_rank_eig"], ere, 1e-9, f"{name} effective rank (eig)")
                s.close(sp["total_variance"], lam.sum(), 1e-10, f"{name} total variance")
        # sanity properties
        px = save("x", x)
        q, _ = np.linalg.qr(rng.standard_normal((12, 12)))
        for tag, other, procrustes_zero in (("identical", x, True), ("rotated", x @ q, True),
                                            ("invertible map", x @ rng.standard_normal((12, 12)), False)):
            r = run_cca(s, px, save(tag.replace(" ", "_"), other))
            if r is None:
                continue
            s.check(abs(r["cca"]["mean_rho"] - 1) < 1e-6, f"{tag}: mean rho {r['cca']['mean_rho']}")
            s.check(abs(r["pwcca"]["pwcca"] - 1) < 1e-6, f"{tag}: pwcca {r['pwcca']['pwcca']}")
            s.check((r["procrustes_d2"] < 1e-10) == procrustes_zero, f"{tag}: procrustes {r['procrustes_d2']}")
        a, b = rng.standard_normal((2000, 10)), rng.standard_normal((2000, 10))
        r = run_cca(s, save("ind_a", a), save("ind_b", b))
        if r is not None:
            level = 10 / 1999
            s.check(0.5 * level < r["cca"]["mean_rho2"] < 2 * level,
                    f"independent noise: mean rho^2 {r['cca']['mean_rho2']} vs {level}")
        # degenerate inputs: finite output or a clear undefined
        few = rng.standard_normal((8, 20))
        r = run_cca(s, save("few", few), save("few2", few @ rng.standard_normal((20, 15))))
        if r is not None:
            s.check(all(np.isfinite(v) for v in r["cca"]["rho"]) and np.isfinite(r["pwcca"]["pwcca"]),
                    f"n < features stays finite: {r['cca']}")
        const = np.hstack([x[:, :3], np.ones((n, 2))])
        r = run_cca(s, save("const", const), px)
        if r is not None:
            s.check(np.isfinite(r["cca"]["mean_rho"]) and np.isfinite(r["procrustes_d2"]), f"constant columns: {r}")
        rc, out, err = repeval("cca", save("allconst", np.ones((n, 3))), px)
        s.check(rc == 3 and "undefined" in out and "zero variance" in err, f"all-constant layer: {rc} {out} {err}")
        rc, out, err = repeval("cca", px, px, "--method", "bogus")
        s.check(rc == 2, f"bad method: {rc}")
        rc, out, err = repeval("spectrum", save("collapsed", np.outer(rng.standard_normal(n), np.ones(64)) +
                                                1e-3 * rng.standard_normal((n, 64))), "--json")
        s.check(rc == 0 and json.loads(out)["collapsed"], f"collapsed layer flagged: {out} {err}")
        rc, out, err = repeval("spectrum", px, "--json")
        s.check(rc == 0 and not json.loads(out)["collapsed"], f"healthy layer not flagged: {out}")
    s.finish()


if __name__ == "__main__":
    main()
