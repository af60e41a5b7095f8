"""repeval cka-matrix (minibatch HSIC for all pairs from stacked Grams; exact
linear CKA from co-moments) equals an independent NumPy implementation that
builds every kernel explicitly: linear and RBF, unbiased and biased, every pair
selection, a partial last batch; tolerance 1e-9 relative. Outputs (.npy, CSV,
JSON) agree with each other."""
import csv
import json
import os

import numpy as np

from common import (Suite, cka, gram_linear, minibatch_cka_matrix, rbf_sigma2, repeval, tmpdir)


def main():
    s = Suite()
    rng = np.random.default_rng(8)
    n = 301  # 4 full batches of 64 and a tail of 45
    base = rng.standard_normal((n, 5))
    taps = [base.astype(np.float32),
            (base @ rng.standard_normal((5, 12)) + 1000.0).astype(np.float32),
            np.tanh(base[:, :2] * 3).astype(np.float32),
            rng.standard_normal((n, 7)).astype(np.float32)]
    with tmpdir() as d:
        files = []
        for k, t in enumerate(taps):
            files.append(os.path.join(d, f"t{k}.npy"))
            np.save(files[-1], t)
        taps64 = [t.astype(np.float64) for t in taps]
        for unbiased in (True, False):
            flag = [] if unbiased else ["--biased"]
            want = minibatch_cka_matrix(taps64, 64, unbiased)
            rc, out, err = repeval("cka-matrix", *files, "--batch", 64, "--json", *flag)
            if s.check(rc == 0, f"cka-matrix exited {rc}: {err}"):
                got = np.array(json.loads(out)["cka"], dtype=float)
                s.check(np.allclose(got, want, rtol=1e-9, atol=0), f"linear unbiased={unbiased}:\n{got}\n{want}")
            s2 = [rbf_sigma2(t[:100], 0.7) for t in taps64]
            want = minibatch_cka_matrix(taps64, 64, unbiased, "rbf", s2)
            rc, out, err = repeval("cka-matrix", *files, "--batch", 64, "--kernel", "rbf", "--sigma", 0.7,
                                   "--sigma-sample", 100, "--json", *flag)
            if s.check(rc == 0, f"rbf exited {rc}: {err}"):
                r = json.loads(out)
                s.check(np.allclose(r["sigma2"], s2, rtol=1e-12), f"bandwidths {r['sigma2']} vs {s2}")
                got = np.array(r["cka"], dtype=float)
                s.check(np.allclose(got, want, rtol=1e-9, atol=0), f"rbf unbiased={unbiased}:\n{got}\n{want}")
            # exact estimator = full-data CKA
            want = np.array([[cka(gram_linear(a), gram_linear(b), unbiased) for b in taps64] for a in taps64])
            rc, out, err = repeval("cka-matrix", *files, "--estimator", "exact", "--json", *flag)
            if s.check(rc == 0, f"exact exited {rc}: {err}"):
                got = np.array(json.loads(out)["cka"], dtype=float)
                s.check(np.allclose(got, want, rtol=1e-9, atol=0), f"exact unbiased={unbiased}:\n{got}\n{want}")
        # pair selections, .npy and CSV outputs
        full = minibatch_cka_matrix(taps64, 64, True)
        m = os.path.join(d, "m.npy")
        c = os.path.join(d, "m.csv")
        for mode, mask in (("consecutive", lambda p, q: abs(p - q) <= 1),
                           ("reference:2", lambda p, q: p == q or 2 in (p, q))):
            rc, out, err = repeval("cka-matrix", *files, "--batch", 64, "--pairs", mode, "--out", m, "--csv", c,
                                   "--names", "a,b,c,d")
            if not s.check(rc == 0, f"--pairs {mode}: {err}"):
                continue
            got = np.load(m)
            ok = all((np.isnan(got[p, q]) != mask(p, q)) and (not mask(p, q) or abs(got[p, q] - full[p, q]) <= 1e-9)
                     for p in range(4) for q in range(4))
            s.check(ok, f"--pairs {mode}:\n{got}")
            with open(c) as f:
                rows = list(csv.DictReader(f))
            s.check(len(rows) == sum(mask(p, q) for p in range(4) for q in range(4)) and
                    all(r["status"] == "ok" for r in rows), f"csv rows for {mode}: {rows}")
        # errors
        np.save(os.path.join(d, "short.npy"), rng.standard_normal((300, 2)))
        rc, out, err = repeval("cka-matrix", files[0], os.path.join(d, "short.npy"))
        s.check(rc == 1 and "has 300 rows but" in err, f"row mismatch: {rc} {err}")
        rc, out, err = repeval("cka-matrix", files[0])
        s.check(rc == 2 and "at least two" in err, f"one file: {rc} {err}")
        rc, out, err = repeval("cka-matrix", *files, "--estimator", "exact", "--kernel", "rbf")
        s.check(rc == 2, f"exact rbf refused: {rc} {err}")
        rc, out, err = repeval("cka-matrix", *files, "--pairs", "reference:9")
        s.check(rc == 2 and "not a tap index" in err, f"bad reference: {rc} {err}")
        const = os.path.join(d, "const.npy")
        np.save(const, np.ones((n, 3), dtype=np.float32))
        rc, out, err = repeval("cka-matrix", files[0], const, "--json")
        r = json.loads(out) if rc == 0 else {}
        s.check(rc == 0 and r["cka"][0][1] is None and r["undefined"] and "constant" in r["undefined"][0]["reason"],
                f"constant tap reported undefined: {rc} {out} {err}")
    s.finish()


if __name__ == "__main__":
    main()
