"""A real batch job on the local Slurm cluster: `srun --mpi=pmix -n 2 repeval
cka --sharded` (Open MPI wired up by Slurm's PMIx plugin, no mpirun) gives
bitwise the same JSON numbers as `mpiexec -n 2`, reports 2 ranks, and agrees
with one process to 1e-12 relative and with NumPy to 1e-9; `srun -n 1` gives
bitwise the value of a plain single process."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from slurmlib import require_cluster, sbatch, show_log, wait_done  # noqa: E402

from common import REPEVAL, Suite, cka, gram_linear, mpirun, repeval, tmpdir  # noqa: E402

FIELDS = ("cka", "hsic_xy", "hsic_xx", "hsic_yy", "n", "p", "q")


def main():
    require_cluster()
    s = Suite()
    rng = np.random.default_rng(7)
    with tmpdir() as d:
        x = rng.standard_normal((1201, 17)) + 5.0
        y = np.tanh(x[:, :11] - 5.0) + 0.4 * rng.standard_normal((1201, 11))
        px, py = os.path.join(d, "x.npy"), os.path.join(d, "y.npy")
        np.save(px, x)
        np.save(py, y.astype(np.float32))
        exe = os.path.realpath(REPEVAL)
        script = os.path.join(d, "cka.sbatch")
        log = os.path.join(d, "slurm.out")
        with open(script, "w") as f:
            f.write(f"""#!/bin/bash
#SBATCH --job-name=cka-pmix-{os.getpid()}
#SBATCH --ntasks=2
#SBATCH --cpus-per-task=1
#SBATCH --time=00:10:00
#SBATCH --output={log}
set -eu
export OPENBLAS_NUM_THREADS=1
srun --mpi=pmix -n 2 '{exe}' cka --sharded --batch 300 --json '{px}' '{py}' > '{d}/two.json'
srun --mpi=pmix -n 1 '{exe}' cka --sharded --batch 300 --json '{px}' '{py}' > '{d}/one.json'
""")
        jobid = sbatch(script)
        try:
            info = wait_done(jobid, timeout=300)
        except TimeoutError as e:
            s.check(False, str(e))
            info = {}
        if not s.check(info.get("JobState") == "COMPLETED" and info.get("ExitCode") == "0:0",
                       f"job {jobid}: {info.get('JobState')} exit {info.get('ExitCode')}"):
            show_log(log, "batch log")
            s.finish()
        two = json.load(open(os.path.join(d, "two.json")))
        one = json.load(open(os.path.join(d, "one.json")))
        s.check(two["ranks"] == 2 and one["ranks"] == 1, f"ranks under srun: {two['ranks']}, {one['ranks']}")

        env = {"OPENBLAS_NUM_THREADS": "1"}
        os.environ.update(env)
        rc, out, err = mpirun(2, "cka", "--sharded", "--batch", 300, "--json", px, py)
        if s.check(rc == 0, f"mpiexec -n 2: {err}"):
            ref = json.loads(out)
            for k in FIELDS:
                s.check(two[k] == ref[k], f"srun -n 2 == mpiexec -n 2 bitwise for {k}: {two[k]!r} vs {ref[k]!r}")
        rc, out, err = repeval("cka", "--batch", 300, "--json", px, py)
        if s.check(rc == 0, f"single process: {err}"):
            single = json.loads(out)
            for k in FIELDS:
                s.check(one[k] == single[k], f"srun -n 1 == one process bitwise for {k}: {one[k]!r} vs {single[k]!r}")
            s.close(two["cka"], single["cka"], 1e-12, "2 ranks under srun vs one process")
        yf = y.astype(np.float32).astype(np.float64)
        s.close(two["cka"], cka(gram_linear(x), gram_linear(yf)), 1e-9, "2 ranks under srun vs NumPy")
    s.finish()


if __name__ == "__main__":
    main()
