"""The cross-rank reduction (tree_reduce_root in pipeline/mpi/tree.c) builds the
same canonical tree as one process alone, for 1..70 batches, with states that
hash the exact merge expression (tests/tools/tree_shape.c), and no rank merges
more than ceil(log2(ranks)) + 2 states across ranks. Registered at 1, 2 and 3
ranks; the 3-rank case also runs 5 and 8 ranks (oversubscribed), where ranks
outnumber small batch counts."""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))

from common import MPIEXEC, Suite, run  # noqa: E402

TOOL = os.path.abspath("tree_shape")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, required=True)
    k = ap.parse_args().ranks
    s = Suite()
    for ranks in ([k] if k < 3 else [3, 5, 8]):
        rc, out, err = run([MPIEXEC, "--oversubscribe", "-n", str(ranks), TOOL, "70"], timeout=300,
                           env={"ASAN_OPTIONS": (os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0").strip(":")})
        s.check(rc == 0 and out.strip() == "ok", f"{ranks} ranks: rc {rc}, {out.strip()} {err.strip()[-400:]}")
    s.finish()


if __name__ == "__main__":
    main()
