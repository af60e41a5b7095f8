"""The scale-invariant metrics give the unscaled answer for inputs scaled by
s in {1, 1e75, 1e150, 1e160, 1e-80, 1e-100, 1e-150} (X * s stored as float64
.npy): repeval multiplies each matrix by the power of two 2^-e that brings
max|x| into [0.5, 1) before forming products, so nothing overflows or
underflows. Reference: NumPy float64 on the UNSCALED data (common.py's HSIC
from explicit kernels; CCA family and spectrum from SVDs of the data, as in
test_cca_matches_numpy.py).

- cka (linear feature-space and --gram, biased and --debiased, rbf; X*s vs Y
  and X*s vs X*s = 1) to 1e-12; --json status "ok" and hsic_* in the file's
  units (hsic_xy ~ s^2, hsic_xx ~ s^4) against NumPy's HSIC of the scaled data
  where that is a normal float64, null where it overflows, never inf/NaN;
- cka --sharded at 2 ranks under mpiexec (the ranks' halves of the rows in
  different binades) at 1e150 and 1e-150 (biased), 1e160 and 1e-100
  (debiased): NumPy's value to 1e-12;
- cca --method all --ridge 0: mean rho, SVCCA, PWCCA, Procrustes d^2, R^2 both
  ways to 1e-10 of NumPy; the default ridge (relative to tr S, so scale-free)
  to 1e-10 of the unscaled run;
- spectrum: effective ranks and participation ratio to 1e-10; eigenvalues and
  total variance = unscaled * s^2 to 1e-10 while finite in float64; s = 1e160
  (eigenvalues ~1e320) exits 3 with status "undefined";
- cka-matrix (minibatch, --estimator exact) over [X*s, Y, X] to 1e-12;
- cka-matrix keeps float64 inputs in float64: offset-1000 features against the
  unbiased minibatch estimator in float64 to 1e-12 (rounding these inputs to
  float32 moves the value by ~2e-6: asserted to exceed 1e3 x the tolerance);
- probe (logistic, ridge, knn) on X*s with an explicit validation set: the
  same test predictions count as X; --weights W*s = W(X) to 1e-6; with
  --no-standardize X*1e75 exits 1 naming "beyond float32" and the row/column;
- NaN / Inf inside a file: exit 1 naming row and column (never "ok")."""
import json
import os

import numpy as np

from common import (MPIEXEC, REPEVAL, Suite, cka, gram_linear, gram_rbf, hsic_biased, hsic_unbiased,
                    minibatch_cka_matrix, rbf_sigma2, repeval, run, tmpdir)

SCALES = (1.0, 1e75, 1e150, 1e160, 1e-80, 1e-100, 1e-150)
SHARDED = ((1e150, False), (1e160, True), (1e-100, True), (1e-150, False))  # (scale, debiased): mpiexec is slow
# CKA: one HSIC ratio of well-conditioned data; repeval (co-moments of the
# rescaled data) and NumPy (explicit n x n kernels) differ by rounding only,
# measured ~1e-15, so 1e-12 leaves 1000x margin and still catches any lost bits.
RTOL_CKA = 1e-12
# CCA family and spectrum: repeval works on co-moments (S_xx^-1/2 squares the
# condition number, here cond(S) < 1e3), NumPy on SVDs of the data; measured
# agreement ~1e-15 (1e-14 for R^2). 1e-10 leaves room for the squared
# conditioning and is far below what a scaling bug does (O(1) errors or NaN).
RTOL_CCA = 1e-10
# Probe weights: repeval computes probes in float32 features after the common
# power-of-two rescale; X*s and X round to float32 differently (s is not a
# power of two), a ~6e-8 perturbation the fit turns into ~2e-8 in W (measured).
RTOL_WEIGHTS = 1e-6
BIG = np.finfo(np.float64).max


def mpi_repeval(ranks, *args):
    env = {"ASAN_OPTIONS": (os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0").strip(":")}
    return run([MPIEXEC, "--oversubscribe", "-n", str(ranks), REPEVAL] + [str(a) for a in args], env=env)


def normal(v):
    """v is a float64 with room for rounding: not overflowing, not (near) subnormal, not 0."""
    return v is not None and np.isfinite(v) and 2.0 ** -1000 < abs(v) < BIG / 4


# ---- CCA family and spectrum from the data matrices (no co-moments) ---------

def centred(x):
    return x - x.mean(0)


def basis(x):
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    return u[:, s > 1e-10 * s[0]]


def cca_rho(x, y):
    return np.clip(np.linalg.svd(basis(centred(x)).T @ basis(centred(y)), compute_uv=False), 0, 1)


def svcca_rho(x, y, frac=0.99):
    def reduce(z):
        z = centred(z)
        _, s, vt = np.linalg.svd(z, full_matrices=False)
        k = int(np.searchsorted(np.cumsum(s ** 2) / np.sum(s ** 2), frac - 1e-15) + 1)
        return z @ vt[:k].T
    return cca_rho(reduce(x), reduce(y))


def pwcca(x, y):
    """Morcos et al. 2018 as documented: weights alpha_i = sum_j |<h_i, x_j>| of the
    unit canonical variates h_i of the side with fewer features (ties: X)."""
    xc, yc = centred(x), centred(y)
    if xc.shape[1] > yc.shape[1]:
        xc, yc = yc, xc
    qx, qy = basis(xc), basis(yc)
    u, rho, _ = np.linalg.svd(qx.T @ qy, full_matrices=False)
    alpha = np.abs((qx @ u).T @ xc).sum(axis=1)
    return float(np.sum(alpha * np.clip(rho, 0, 1)) / np.sum(alpha))


def procrustes(x, y):
    xc, yc = centred(x), centred(y)
    xc, yc = xc / np.linalg.norm(xc), yc / np.linalg.norm(yc)
    return max(0.0, 2 - 2 * np.linalg.svd(xc.T @ yc, compute_uv=False).sum())


def r2(x, y):
    xc, yc = centred(x), centred(y)
    b = np.linalg.lstsq(xc, yc, rcond=1e-12)[0]
    return 1 - np.sum((yc - xc @ b) ** 2) / np.sum(yc ** 2)


def spectrum(x):
    xc = centred(x)
    lam = np.linalg.svd(xc, compute_uv=False) ** 2 / (len(xc) - 1)
    def erank(v):
        p = v / v.sum()
        return float(np.exp(-(p * np.log(p)).sum()))
    return lam, lam.sum() ** 2 / (lam ** 2).sum(), erank(np.sqrt(lam)), erank(lam)


def cca_values(r):
    return {"mean rho": r["cca"]["mean_rho"], "svcca": r["svcca"]["mean_rho"], "pwcca": r["pwcca"]["pwcca"],
            "procrustes": r["procrustes_d2"], "r2 y|x": r["r2_y_from_x"], "r2 x|y": r["r2_x_from_y"]}


# ---- checks ------------------------------------------------------------------

def check_hsic(s, got, name, unscaled, scaled_np, power, tag):
    """hsic_* in the file's units: unscaled * scale^power, against NumPy on the
    scaled data where that is a normal number; null when it overflows; never inf."""
    v = got.get(name)
    s.check(v is None or np.isfinite(v), f"{tag} {name} is {v!r}: inf/NaN in an ok result")
    if normal(scaled_np):
        s.close(v, scaled_np, RTOL_CKA, f"{tag} {name} vs NumPy on the scaled data")
    with np.errstate(over="ignore", under="ignore"):
        want = unscaled * power
    if normal(want):
        s.close(v, want, RTOL_CKA, f"{tag} {name} = unscaled HSIC * scale^k")
    elif not np.isfinite(want):
        s.check(v is None, f"{tag} {name}: {v!r} where the value overflows float64 (want null)")
    else:  # underflows: null, 0 or a (rounded) subnormal, nothing larger
        s.check(v is None or abs(v) <= 2.0 ** -990, f"{tag} {name}: {v!r} where the value underflows")


def check_cka(s, d, x, py, idx, scale, ref):
    px = os.path.join(d, f"x{idx}.npy")
    xs = x * scale
    tag = f"s={scale:g}"
    for deb in (False, True):
        f = hsic_unbiased if deb else hsic_biased
        flag = ["--debiased"] if deb else []
        with np.errstate(all="ignore"):
            ks = gram_linear(xs)
            np_xy, np_xx = f(ks, ref["L"]), f(ks, ks)
        for path in ([], ["--gram"]):
            rc, out, err = repeval("cka", px, py, "--json", *flag, *path)
            if not s.check(rc == 0, f"{tag} cka {flag}{path}: rc {rc} {err}"):
                continue
            r = json.loads(out)
            t = f"{tag} linear debiased={deb} {r['estimator']}"
            s.check(r["status"] == "ok", f"{t}: status {r['status']}")
            s.close(r["cka"], ref["lin", deb], RTOL_CKA, f"{t} cka")
            check_hsic(s, r, "hsic_xy", ref["hsic", deb][0], np_xy, scale * scale, t)
            check_hsic(s, r, "hsic_xx", ref["hsic", deb][1], np_xx, (scale * scale) * (scale * scale), t)
            check_hsic(s, r, "hsic_yy", ref["hsic", deb][2], ref["hsic", deb][2], 1.0, t)
        rc, out, err = repeval("cka", px, px, "--json", *flag)
        if s.check(rc == 0, f"{tag} cka X X: {err}"):
            s.close(json.loads(out)["cka"], 1.0, RTOL_CKA, f"{tag} linear CKA(X*s, X*s) debiased={deb}")
        # RBF: the median bandwidth scales with s^2, the kernel values do not
        rc, out, err = repeval("cka", px, py, "--json", "--kernel", "rbf", *flag)
        if s.check(rc == 0, f"{tag} rbf: {err}"):
            r = json.loads(out)
            t = f"{tag} rbf debiased={deb}"
            s.check(r["status"] == "ok", f"{t}: status {r['status']}")
            s.close(r["cka"], ref["rbf", deb], RTOL_CKA, f"{t} cka")
            s.close(r["hsic_xy"], ref["rbf hsic", deb], RTOL_CKA, f"{t} hsic_xy")
            with np.errstate(over="ignore", under="ignore"):
                want = ref["sigma2"] * scale * scale
            v = r["sigma2_x"]
            if normal(want):
                s.close(v, want, RTOL_CKA, f"{t} sigma2_x in file units")
            else:
                s.check(v is None or (np.isfinite(v) and abs(v) < 2.0 ** -990), f"{t} sigma2_x {v!r}")
        rc, out, err = repeval("cka", px, px, "--kernel", "rbf", *flag)
        if s.check(rc == 0, f"{tag} rbf X X: {err}"):
            s.close(float(out), 1.0, RTOL_CKA, f"{tag} rbf CKA(X*s, X*s) debiased={deb}")


def check_sharded(s, d, xv, py, scale, deb, ref):
    """mpiexec -n 2 cka --sharded: each rank reads its half of the rows, whose
    max|x| lie in different binades (the second half is x16), so a per-rank
    power of two instead of one common one would show."""
    px = os.path.join(d, f"xv{scale:g}.npy")
    np.save(px, xv * scale)
    flag = ["--debiased"] if deb else []
    rc, out, err = mpi_repeval(2, "cka", "--sharded", "--json", px, py, *flag)
    if s.check(rc == 0, f"s={scale:g} sharded debiased={deb}: rc {rc} {err}"):
        r = json.loads(out)
        s.check(r["status"] == "ok" and r["ranks"] == 2, f"s={scale:g} sharded: {r}")
        s.close(r["cka"], ref["sharded", deb], RTOL_CKA, f"s={scale:g} sharded 2 ranks debiased={deb}")


def check_cca(s, d, py, idx, scale, ref):
    px = os.path.join(d, f"x{idx}.npy")
    tag = f"s={scale:g}"
    rc, out, err = repeval("cca", px, py, "--method", "all", "--json", "--ridge", "0")
    if s.check(rc == 0, f"{tag} cca --ridge 0: rc {rc} {err}"):
        r = json.loads(out)
        s.check(r["status"] == "ok", f"{tag} cca status {r['status']}")
        for k, v in cca_values(r).items():
            s.close(v, ref["cca"][k], RTOL_CCA, f"{tag} {k} (ridge 0) vs NumPy")
    rc, out, err = repeval("cca", px, py, "--method", "all", "--json")
    if s.check(rc == 0, f"{tag} cca: rc {rc} {err}"):
        r = json.loads(out)
        if ref.get("cca default") is None:
            ref["cca default"] = r  # scale 1 runs first
        base = ref["cca default"]
        for k, v in cca_values(r).items():
            s.close(v, cca_values(base)[k], RTOL_CCA, f"{tag} {k} (default ridge) vs unscaled")
        s.check((r["svcca"]["kx"], r["svcca"]["ky"]) == (base["svcca"]["kx"], base["svcca"]["ky"]),
                f"{tag} svcca directions kept {r['svcca']['kx']},{r['svcca']['ky']}")


def check_spectrum(s, d, idx, scale, ref):
    px = os.path.join(d, f"x{idx}.npy")
    tag = f"s={scale:g}"
    lam, pr, er, ere = ref["spectrum"]
    with np.errstate(over="ignore"):
        want = lam * scale * scale
    rc, out, err = repeval("spectrum", px, "--json")
    if np.all(np.isfinite(want)) and np.isfinite(want.sum()):
        if not s.check(rc == 0, f"{tag} spectrum: rc {rc} {err}"):
            return
        r = json.loads(out)
        s.check(r["status"] == "ok", f"{tag} spectrum status {r['status']}")
        got = np.array(r["eigenvalues"], dtype=float)
        s.check(got.shape == want.shape and np.allclose(got, want, rtol=RTOL_CCA, atol=0),
                f"{tag} eigenvalues = unscaled * s^2:\n{got}\n{want}")
        s.close(r["total_variance"], want.sum(), RTOL_CCA, f"{tag} total variance")
    else:
        # eigenvalues ~1e320 in the file's units: undefined, not inf with "ok"
        ok = s.check(rc == 3, f"{tag} spectrum overflowing eigenvalues: rc {rc} (want 3) {out} {err}")
        if not ok or not out.strip():
            return
        r = json.loads(out)
        s.check(r["status"] == "undefined" and "overflow" in err,
                f"{tag} spectrum: status {r['status']}, reason {err.strip()!r}")
        s.check(all(v is None or np.isfinite(v) for v in r["eigenvalues"]), f"{tag} no inf in eigenvalues")
    s.close(r["participation_ratio"], pr, RTOL_CCA, f"{tag} participation ratio")
    s.close(r["effective_rank"], er, RTOL_CCA, f"{tag} effective rank")
    s.close(r["effective_rank_eig"], ere, RTOL_CCA, f"{tag} effective rank (eig)")


def check_cka_matrix(s, d, px1, py, idx, scale, ref):
    px = os.path.join(d, f"x{idx}.npy")
    tag = f"s={scale:g}"
    for est, want in (("minibatch", ref["minibatch"]), ("exact", ref["exact"])):
        rc, out, err = repeval("cka-matrix", px, py, px1, "--estimator", est, "--batch", 64, "--json")
        if s.check(rc == 0, f"{tag} cka-matrix {est}: rc {rc} {err}"):
            r = json.loads(out)
            got = np.array([[np.nan if v is None else v for v in row] for row in r["cka"]])
            s.check(not r["undefined"] and np.allclose(got, want, rtol=RTOL_CKA, atol=0),
                    f"{tag} cka-matrix {est}:\n{got}\n{want}")


def check_float64_matrix(s, d, rng):
    """Offset features whose signal sits in the low bits of float32: a float64
    .npy must be read in float64. The float32 rounding of these inputs moves the
    minibatch CKA by ~2e-6 (asserted below), 1e6x the tolerance."""
    n = 200
    base = rng.standard_normal((n, 6))
    taps = [base, base @ rng.standard_normal((6, 10)) + 1000.0 + 0.05 * rng.standard_normal((n, 10)),
            np.tanh(base[:, :3]) + 1000.0 + 0.01 * rng.standard_normal((n, 3))]
    files = []
    for k, t in enumerate(taps):
        files.append(os.path.join(d, f"offset{k}.npy"))
        np.save(files[-1], t)
    want = minibatch_cka_matrix(taps, 64, True)
    as32 = minibatch_cka_matrix([t.astype(np.float32).astype(np.float64) for t in taps], 64, True)
    s.check(np.max(np.abs(as32 - want)) > 1e3 * RTOL_CKA,
            f"the offset case separates float32 from float64 ({np.max(np.abs(as32 - want)):.1e})")
    exact = np.array([[cka(gram_linear(a), gram_linear(b), True) for b in taps] for a in taps])
    for est, ref in (("minibatch", want), ("exact", exact)):
        rc, out, err = repeval("cka-matrix", *files, "--estimator", est, "--batch", 64, "--json")
        if s.check(rc == 0, f"offset cka-matrix {est}: {err}"):
            got = np.array(json.loads(out)["cka"], dtype=float)
            e = np.max(np.abs(got - ref) / np.abs(ref))
            s.check(e <= RTOL_CKA, f"offset cka-matrix {est} keeps float64: rel error {e:.1e}\n{got}\n{ref}")


def check_probe(s, d, rng):
    n, dim, k = 300, 10, 3
    centres = rng.standard_normal((k, dim)) * 3 / np.sqrt(dim)
    def draw(m):
        y = rng.integers(0, k, m)
        return centres[y] + rng.standard_normal((m, dim)), y
    sets = {"train": draw(n), "val": draw(100), "test": draw(150)}
    for name, (_, y) in sets.items():
        np.save(os.path.join(d, f"p_{name}_y.npy"), y)
    def probe(scale, kind, *extra):
        for name, (x, _) in sets.items():
            np.save(os.path.join(d, f"p_{name}_x.npy"), x * scale)
        args = ["probe", "--json", "--kind", kind]
        for name in sets:
            args += [f"--{name}", os.path.join(d, f"p_{name}_x.npy"),
                     f"--{name}-labels", os.path.join(d, f"p_{name}_y.npy")]
        w = os.path.join(d, f"w_{kind}.npy")
        if kind != "knn":
            args += ["--weights", w]
        rc, out, err = repeval(*args, *extra)
        return rc, out, err, (np.load(w) if rc == 0 and kind != "knn" else None)
    for kind in ("logistic", "ridge", "knn"):
        rc, out, err, w1 = probe(1.0, kind)
        if not s.check(rc == 0, f"probe {kind} unscaled: {err}"):
            continue
        base = json.loads(out)
        for scale in SCALES[1:]:
            tag = f"s={scale:g} probe {kind}"
            rc, out, err, w = probe(scale, kind)
            if not s.check(rc == 0, f"{tag}: rc {rc} {err}"):
                continue
            r = json.loads(out)
            s.check(r["test"]["correct"] == base["test"]["correct"] and r.get("lambda") == base.get("lambda"),
                    f"{tag}: test correct {r['test']['correct']} (lambda {r.get('lambda')}) vs unscaled "
                    f"{base['test']['correct']} (lambda {base.get('lambda')})")
            if kind == "knn":
                continue
            # logistic K x (d+1) [W | b], logits W x + b; ridge (d+1) x K [W; b], x W + b:
            # W(X*s) = W(X) / s, b unchanged (logistic b up to a common shift)
            ws, bs, w0, b0 = (w[:, :-1], w[:, -1], w1[:, :-1], w1[:, -1]) if kind == "logistic" else \
                (w[:-1], w[-1], w1[:-1], w1[-1])
            if kind == "logistic":
                bs, b0 = bs - bs.mean(), b0 - b0.mean()
            ew = np.max(np.abs(ws * scale - w0)) / np.max(np.abs(w0))
            eb = np.max(np.abs(bs - b0)) / np.max(np.abs(b0))
            s.check(ew <= RTOL_WEIGHTS and eb <= RTOL_WEIGHTS,
                    f"{tag}: weights * s vs unscaled rel {ew:.1e}, biases rel {eb:.1e} (rtol {RTOL_WEIGHTS})")
    for kind in ("logistic", "ridge"):
        rc, out, err, _ = probe(1e75, kind, "--no-standardize")
        s.check(rc == 1 and "beyond float32" in err and "row" in err and "column" in err,
                f"--no-standardize {kind} X*1e75: rc {rc}, {err.strip()!r}")


def check_non_finite(s, d, x, py):
    for bad, word, (i, j) in ((np.nan, "NaN", (17, 3)), (np.inf, "infinite", (5, 2))):
        xb = x * 1e150
        xb[i, j] = bad
        p = os.path.join(d, f"bad_{word}.npy")
        np.save(p, xb)
        lab = os.path.join(d, "bad_y.npy")
        np.save(lab, np.arange(len(x)) % 3)
        for cmd in (["cka", p, py, "--json"], ["cka", p, py, "--kernel", "rbf", "--json"],
                    ["cca", p, py, "--json"], ["spectrum", p, "--json"], ["cka-matrix", p, py, "--json"],
                    ["probe", "--train", p, "--train-labels", lab, "--test", p, "--test-labels", lab]):
            rc, out, err = repeval(*cmd)
            s.check(rc == 1 and f"row {i}, column {j}" in err and '"ok"' not in out,
                    f"{word} in {cmd[0]} input refused: rc {rc}, {out[:200]!r}, {err.strip()!r}")


def main():
    s = Suite()
    rng = np.random.default_rng(20240917)
    n = 200
    x = rng.standard_normal((n, 10)) @ np.diag(np.linspace(0.5, 2.0, 10))
    y = x[:, :8] @ rng.standard_normal((8, 8)) + 0.3 * np.tanh(x[:, 2:10]) + 0.5 * rng.standard_normal((n, 8))
    kx, ly = gram_linear(x), gram_linear(y)
    rx, ry = gram_rbf(x), gram_rbf(y)
    ref = {"L": ly, "sigma2": rbf_sigma2(x),
           "cca": {"mean rho": cca_rho(x, y).mean(), "svcca": svcca_rho(x, y).mean(), "pwcca": pwcca(x, y),
                   "procrustes": procrustes(x, y), "r2 y|x": r2(x, y), "r2 x|y": r2(y, x)},
           "spectrum": spectrum(x),
           "minibatch": minibatch_cka_matrix([x, y, x], 64, True),
           "exact": np.array([[cka(gram_linear(a), gram_linear(b), True) for b in (x, y, x)] for a in (x, y, x)])}
    for deb in (False, True):
        f = hsic_unbiased if deb else hsic_biased
        ref["lin", deb] = cka(kx, ly, deb)
        ref["hsic", deb] = (f(kx, ly), f(kx, kx), f(ly, ly))
        ref["rbf", deb] = cka(rx, ry, deb)
        ref["rbf hsic", deb] = f(rx, ry)
    with tmpdir() as d:
        py = os.path.join(d, "y.npy")
        np.save(py, y)
        for idx, scale in enumerate(SCALES):
            np.save(os.path.join(d, f"x{idx}.npy"), x * scale)
        px1 = os.path.join(d, "x0.npy")  # SCALES[0] == 1
        for idx, scale in enumerate(SCALES):
            check_cka(s, d, x, py, idx, scale, ref)
            check_cca(s, d, py, idx, scale, ref)
            check_spectrum(s, d, idx, scale, ref)
            check_cka_matrix(s, d, px1, py, idx, scale, ref)
        xv = x.copy()
        xv[n // 2:] *= 16.0
        for deb in (False, True):
            ref["sharded", deb] = cka(gram_linear(xv), ly, deb)
        for scale, deb in SHARDED:
            check_sharded(s, d, xv, py, scale, deb, ref)
        check_float64_matrix(s, d, rng)
        check_probe(s, d, rng)
        check_non_finite(s, d, x, py)
    print(f"scales {', '.join(f'{v:g}' for v in SCALES)}: cka/cca/spectrum/cka-matrix/probe vs NumPy "
          f"on unscaled data (CKA rtol {RTOL_CKA}, CCA family and spectrum {RTOL_CCA}, probe weights {RTOL_WEIGHTS})")
    s.finish()


if __name__ == "__main__":
    main()
