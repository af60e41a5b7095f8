"""The integrity analysis under mpiexec with K ranks (the checkpoints' tensors are
read in blocks of checkpoints over the ranks, the CKA with neighbours comes from the
reduced pass) writes the same integrity_<name>.json, integrity_<name>_tensors.csv and
metrics.csv, byte for byte, as one rank, for the minibatch and the exact estimator,
and the same warnings."""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))

from common import Suite, mpirun, repeval, tmpdir  # noqa: E402
from integrity_grid import job, write_grid  # noqa: E402

os.environ["OPENBLAS_NUM_THREADS"] = "1"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, required=True)
    k = ap.parse_args().ranks
    s = Suite()
    with tmpdir() as d:
        write_grid(d)
        text = job(d, os.path.join(d, "out")).replace(
            "forward:", "  exact: {type: integrity, estimator: exact}\nforward:")
        path = os.path.join(d, "job.yaml")
        with open(path, "w") as f:
            f.write(text)
        rc, _, err = repeval("run", path, "--out", os.path.join(d, "single"), "--quiet", timeout=300)
        if not s.check(rc == 0, f"single-rank run: {err[-600:]}"):
            s.finish()
        rc, _, err = mpirun(k, "run", path, "--quiet", timeout=300)
        if not s.check(rc == 0, f"{k}-rank run: {err[-600:]}"):
            s.finish()
        for name in ("integrity_integrity.json", "integrity_integrity_tensors.csv", "integrity_exact.json",
                     "integrity_exact_tensors.csv", "metrics.csv"):
            with open(os.path.join(d, "single", name), "rb") as f1, open(os.path.join(d, "out", name), "rb") as f2:
                s.check(f1.read() == f2.read(), f"{name} byte-identical for 1 and {k} ranks")
        one = json.load(open(os.path.join(d, "single", "manifest.json")))
        many = json.load(open(os.path.join(d, "out", "manifest.json")))
        s.check(one["warnings"] == many["warnings"] and len(one["warnings"]) == 10,
                f"the same 10 warnings: {len(one['warnings'])} and {len(many['warnings'])}")
        rep = json.load(open(os.path.join(d, "out", "integrity_exact.json")))
        s.check(len(rep["findings"]) == 5, f"the exact estimator finds the five defects: {rep['findings']}")
    s.finish()


if __name__ == "__main__":
    main()
