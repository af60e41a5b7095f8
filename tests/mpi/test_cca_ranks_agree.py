"""mpiexec -n K repeval cca --sharded / spectrum --sharded: co-moments reduced over
K ranks give the single-process CCA, SVCCA, PWCCA, Procrustes, R^2 and spectrum
to 1e-12 relative (1e-10 absolute on canonical correlations near 0)."""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))

import numpy as np  # noqa: E402

from common import Suite, mpirun, repeval, tmpdir  # noqa: E402


def flatten(r, prefix=""):
    out = {}
    for k, v in r.items():
        if isinstance(v, dict):
            out.update(flatten(v, prefix + k + "."))
        elif isinstance(v, list):
            for i, e in enumerate(v):
                out[f"{prefix}{k}[{i}]"] = e
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[prefix + k] = v
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, required=True)
    k = ap.parse_args().ranks
    s = Suite()
    rng = np.random.default_rng(23)
    with tmpdir() as d:
        x = rng.standard_normal((997, 9)) + 500.0
        y = np.tanh(x[:, :5] - 500.0) @ rng.standard_normal((5, 7)) + 0.2 * rng.standard_normal((997, 7))
        px, py = os.path.join(d, "x.npy"), os.path.join(d, "y.npy")
        np.save(px, x)
        np.save(py, y.astype(np.float32))
        for cmd in (["cca", px, py, "--method", "all", "--json"], ["spectrum", py, "--json"]):
            rc, out, err = repeval(*cmd)
            if not s.check(rc == 0, f"{cmd}: {err}"):
                continue
            want = flatten(json.loads(out))
            rc, out, err = mpirun(k, cmd[0], "--sharded", *cmd[1:])
            if not s.check(rc == 0, f"{k} ranks {cmd}: {err}"):
                continue
            got = flatten(json.loads(out))
            s.check(set(got) == set(want), f"same keys for {cmd[0]}")
            for key in want:
                a, b = got.get(key), want[key]
                ok = a is not None and abs(a - b) <= 1e-12 * max(abs(a), abs(b)) + (1e-10 if "rho" in key else 0)
                s.check(ok, f"{cmd[0]} {key}: {a} vs {b} on {k} ranks")
    s.finish()


if __name__ == "__main__":
    main()
