"""repeval cka reproduces the published CKA values of Kornblith et al. (2019)
(reference notebook: seed 1337, X = randn(100, 10), Y = randn(100, 10) + X)
to 1e-9, through both the feature-space and the Gram paths."""
import os
import subprocess
import sys

from common import SOURCE_DIR, Suite, cka_value, tmpdir

PUBLISHED = {
    "linear": 0.557613256611758,
    "rbf 0.5": 0.654831182261496,
    "debiased linear": 0.513456489505525,
}


def main():
    s = Suite()
    with tmpdir() as d:
        subprocess.run([sys.executable, os.path.join(SOURCE_DIR, "tests/data/make_kornblith_inputs.py"), d],
                       check=True)
        x, y = os.path.join(d, "kornblith_x.npy"), os.path.join(d, "kornblith_y.npy")
        r = cka_value(x, y)
        s.check(r["estimator"] == "feature-space", "linear CKA of 100 x 10 uses the feature space")
        s.check(abs(r["cka"] - PUBLISHED["linear"]) < 1e-9, f"linear: {r['cka']}")
        r = cka_value(x, y, "--gram")
        s.check(abs(r["cka"] - PUBLISHED["linear"]) < 1e-9, f"linear (gram): {r['cka']}")
        r = cka_value(x, y, "--kernel", "rbf", "--sigma", "0.5")
        s.check(abs(r["cka"] - PUBLISHED["rbf 0.5"]) < 1e-9, f"rbf 0.5: {r['cka']}")
        r = cka_value(x, y, "--debiased")
        s.check(abs(r["cka"] - PUBLISHED["debiased linear"]) < 1e-9, f"debiased: {r['cka']}")
        r = cka_value(x, y, "--debiased", "--gram")
        s.check(abs(r["cka"] - PUBLISHED["debiased linear"]) < 1e-9, f"debiased (gram): {r['cka']}")
    s.finish()


if __name__ == "__main__":
    main()
