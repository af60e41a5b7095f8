"""repeval submit of a small job with 2 ranks on the local Slurm cluster: the
rendered script runs `srun --mpi=pmix repeval run`, the job completes with exit
code 0, the log ends with the script's success line, the manifest says 2
ranks, and metrics.csv is byte-identical to `mpiexec -n 2 repeval run` of the
same job and to a single-rank run."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from slurmlib import require_cluster, show_log, wait_done, write_job  # noqa: E402

from common import Suite, mpirun, repeval, tmpdir  # noqa: E402


def main():
    rc, out, err = repeval("run", "--help")
    if rc != 0:
        print(f"SKIP: this repeval has no working 'run' command yet (run --help exited {rc})")
        sys.exit(77)
    require_cluster()
    s = Suite()
    tag = f"run{os.getpid()}"
    with tmpdir() as d:
        job = write_job(d, tag, limit=600, checkpoints="seed{0..2}/epoch_0{0,5}.*",
                        layers="[conv1:mean, pool2, fc1, fc2]",
                        analyses="cka: {batch: 100}\n  cca: {methods: [cca, svcca, pwcca], "
                                 "checkpoints: [\"*/epoch_05\"]}\n  spectrum: {}",
                        slurm="  ntasks_per_node: 2\n  time: \"00:15:00\"\n")
        rc, out, err = repeval("submit", job)
        jobid = out.strip()
        if not s.check(rc == 0 and jobid.isdigit(), f"submitted: exit {rc}: {out} {err}"):
            s.finish()
        log = os.path.join(d, "out.slurm", f"slurm-{jobid}.out")
        try:
            info = wait_done(jobid, timeout=400)
        except TimeoutError as e:
            s.check(False, str(e))
            info = {}
        ok = s.check(info.get("JobState") == "COMPLETED" and info.get("ExitCode") == "0:0",
                     f"job {jobid}: {info.get('JobState')} exit {info.get('ExitCode')}")
        text = open(log).read() if os.path.isfile(log) else ""
        ok &= s.check("repeval.sbatch: finished" in text and "2 ranks x 1 threads" in text,
                      "the log shows 2 ranks x 1 thread and the success line")
        m = os.path.join(d, "out", "metrics.csv")
        ok &= s.check(os.path.isfile(m), "metrics.csv written")
        if not ok:
            show_log(log, "batch log")
            s.finish()
        man = json.load(open(os.path.join(d, "out", "manifest.json")))
        s.check(man.get("ranks") == 2, f"manifest ranks: {man.get('ranks')}")

        rc, out, err = mpirun(2, "run", job, "--out", os.path.join(d, "mpi"), "--quiet", timeout=600)
        if s.check(rc == 0, f"mpiexec -n 2 run: {err}"):
            a = open(m, "rb").read()
            b = open(os.path.join(d, "mpi", "metrics.csv"), "rb").read()
            s.check(a == b and len(a) > 1000, f"metrics.csv under Slurm == under mpiexec, byte for byte ({len(a)} bytes)")
        # repeval run reduces over batch indices in a canonical tree, so one rank gives the same bytes
        rc, out, err = repeval("run", job, "--out", os.path.join(d, "one"), "--quiet", timeout=600)
        if s.check(rc == 0, f"single-rank run: {err}"):
            s.check(open(m, "rb").read() == open(os.path.join(d, "one", "metrics.csv"), "rb").read(),
                    "metrics.csv of 2 ranks under Slurm == 1 rank, byte for byte")
    s.finish()


if __name__ == "__main__":
    main()
