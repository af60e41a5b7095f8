"""mpiexec -n K repeval cka --sharded: each rank reads its row range, the
co-moments are reduced in a fixed order, and the result equals the
single-process value to 1e-12 relative (and NumPy to 1e-9); a rerun is
bitwise identical; a failing rank stops every rank with a clear error."""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))

import numpy as np  # noqa: E402

from common import Suite, cka, cka_value, gram_linear, mpirun, tmpdir  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, required=True)
    k = ap.parse_args().ranks
    s = Suite()
    rng = np.random.default_rng(99)
    with tmpdir() as d:
        x = rng.standard_normal((1001, 13)) + 1000.0
        y = np.tanh(x[:, :9] - 1000.0) + 0.3 * rng.standard_normal((1001, 9))
        px, py = os.path.join(d, "x.npy"), os.path.join(d, "y.npy")
        np.save(px, x.astype(np.float32))
        np.save(py, y)
        xf = x.astype(np.float32).astype(np.float64)
        for deb in (False, True):
            flag = ["--debiased"] if deb else []
            single = cka_value(px, py, *flag)["cka"]
            want = cka(gram_linear(xf), gram_linear(y), deb)
            outs = []
            for rep in range(2):
                rc, out, err = mpirun(k, "cka", "--sharded", "--batch", 64, "--json", px, py, *flag)
                if not s.check(rc == 0, f"{k} ranks exited {rc}: {err}"):
                    continue
                outs.append(out)
                r = json.loads(out)
                s.check(r["ranks"] == k, f"reports {r['ranks']} ranks")
                s.close(r["cka"], single, 1e-12, f"{k} ranks vs 1 process (debiased={deb})")
                s.close(r["cka"], want, 1e-9, f"{k} ranks vs NumPy (debiased={deb})")
            s.check(len(outs) == 2 and outs[0] == outs[1], "rerun is bitwise identical")
        # more ranks than some ranks have rows: tiny n
        np.save(os.path.join(d, "t.npy"), rng.standard_normal((5, 2)))
        t = os.path.join(d, "t.npy")
        rc, out, err = mpirun(k, "cka", "--sharded", "--json", t, t)
        s.check(rc == 0 and abs(json.loads(out)["cka"] - 1.0) < 1e-12, f"n = 5 on {k} ranks: {out} {err}")
        # a missing file: every rank stops, non-zero exit, the error names the file
        rc, out, err = mpirun(k, "cka", "--sharded", px, os.path.join(d, "missing.npy"), timeout=120)
        s.check(rc != 0 and "missing.npy: cannot open" in err, f"missing file on {k} ranks: rc {rc}, {err}")
    s.finish()


if __name__ == "__main__":
    main()
