"""mpiexec -n K repeval cka-matrix --sharded: batches are cut by global sample
index and split across ranks, so the minibatch CKA matrix equals the
single-process one to 1e-12 relative (exact estimator too); reruns are bitwise
identical."""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))

import numpy as np  # noqa: E402

from common import Suite, mpirun, repeval, tmpdir  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, required=True)
    k = ap.parse_args().ranks
    s = Suite()
    rng = np.random.default_rng(17)
    with tmpdir() as d:
        base = rng.standard_normal((1000, 6))
        files = []
        for t in range(5):
            x = np.tanh(base @ rng.standard_normal((6, 8 + 4 * t))) + 10.0 * t
            files.append(os.path.join(d, f"t{t}.npy"))
            np.save(files[-1], x.astype(np.float32))
        for extra in (["--batch", "64"], ["--batch", "100", "--kernel", "rbf"], ["--estimator", "exact"],
                      ["--batch", "64", "--biased", "--pairs", "consecutive"]):
            rc, out, err = repeval("cka-matrix", *files, "--json", *extra)
            if not s.check(rc == 0, f"single process {extra}: {err}"):
                continue
            want = np.array(json.loads(out)["cka"], dtype=float)
            outs = []
            for rep in range(2):
                rc, out, err = mpirun(k, "cka-matrix", "--sharded", *files, "--json", *extra)
                if not s.check(rc == 0, f"{k} ranks {extra}: {err}"):
                    continue
                outs.append(out)
                got = np.array(json.loads(out)["cka"], dtype=float)
                same = np.array_equal(np.isnan(got), np.isnan(want)) and np.allclose(
                    got[~np.isnan(got)], want[~np.isnan(want)], rtol=1e-12, atol=0)
                s.check(same, f"{k} ranks vs 1 process {extra}:\n{got}\n{want}")
            s.check(len(outs) == 2 and outs[0] == outs[1], f"rerun bitwise identical {extra}")
    s.finish()


if __name__ == "__main__":
    main()
