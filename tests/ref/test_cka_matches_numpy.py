"""repeval cka agrees with an independent NumPy implementation of HSIC/CKA
(traces of centred kernels; Song et al. 2012 for the unbiased estimator) on
many shapes: n >> p, p >> n, rank-deficient, duplicated and offset features,
float32 / float16 / integer / Fortran-order / 3-D / .npz inputs.
Tolerance: 1e-9 relative (float64 math on both sides)."""
import os

import numpy as np

from common import Suite, cka, cka_value, gram_linear, gram_rbf, tmpdir

RTOL = 1e-9


def cases(rng):
    x = rng.standard_normal((600, 5))
    yield "n>>p", x, x @ rng.standard_normal((5, 7)) + 0.5 * rng.standard_normal((600, 7))
    x = rng.standard_normal((40, 300))
    yield "p>>n", x, np.tanh(x[:, :200]) + 0.1 * rng.standard_normal((40, 200))
    b = rng.standard_normal((150, 3))
    x = b @ rng.standard_normal((3, 20))
    x[:, 5] = x[:, 4]
    yield "rank-deficient", x, np.hstack([b, b[:, :1] ** 2])
    x = rng.standard_normal((300, 10))
    yield "offset 1000", x + 1000.0, x[:, :4] * 2 + rng.standard_normal((300, 4)) - 1000.0
    x = rng.standard_normal((120, 6)).astype(np.float32)
    yield "float32", x, (x[:, ::-1] ** 3).astype(np.float32)
    x = rng.standard_normal((80, 4, 5))
    yield "3-D", x, x.mean(axis=2) + rng.standard_normal((80, 4))
    x = rng.standard_normal((64, 8))
    yield "fortran", np.asfortranarray(x), np.asfortranarray(x[:, :3] + rng.standard_normal((64, 3)))
    x = rng.integers(-5, 5, size=(90, 6)).astype(np.int16)
    yield "int16 vs float16", x, (x * 0.5 + rng.standard_normal((90, 6))).astype(np.float16)


def main():
    s = Suite()
    rng = np.random.default_rng(2024)
    with tmpdir() as d:
        for k, (name, x, y) in enumerate(cases(rng)):
            px, py = os.path.join(d, f"x{k}.npy"), os.path.join(d, f"y{k}.npy")
            np.save(px, x)
            np.save(py, y)
            xf, yf = x.astype(np.float64).reshape(len(x), -1), y.astype(np.float64).reshape(len(y), -1)
            kl, ll = gram_linear(xf), gram_linear(yf)
            for deb in (False, True):
                flag = ["--debiased"] if deb else []
                want = cka(kl, ll, deb)
                got = cka_value(px, py, *flag)
                s.close(got["cka"], want, RTOL, f"{name} linear debiased={deb} ({got['estimator']})")
                got = cka_value(px, py, "--gram", *flag)
                s.close(got["cka"], want, RTOL, f"{name} linear gram debiased={deb}")
                for t in (1.0, 0.5):
                    want = cka(gram_rbf(xf, t), gram_rbf(yf, t), deb)
                    got = cka_value(px, py, "--kernel", "rbf", "--sigma", t, *flag)
                    s.close(got["cka"], want, RTOL, f"{name} rbf T={t} debiased={deb}")
        # the same arrays read from .npz archives, stored and deflated
        x = rng.standard_normal((50, 4))
        y = x + rng.standard_normal((50, 4))
        want = cka(gram_linear(x), gram_linear(y))
        for saver, tag in ((np.savez, "stored"), (np.savez_compressed, "deflated")):
            p = os.path.join(d, f"emb_{tag}.npz")
            saver(p, fc1=x, fc2=y)
            got = cka_value(p + ":fc1", p + ":fc2")
            s.close(got["cka"], want, RTOL, f".npz ({tag})")
    s.finish()


if __name__ == "__main__":
    main()
