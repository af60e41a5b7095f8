"""Fault injection: the ranks' resume snapshots come from different steps, as
after a kill -9 that lands between rank 0's and rank 1's atomic snapshot
writes (each rank renames its own file). The test stops a 2-rank run with
SIGTERM, puts back rank 1's snapshot from an earlier step, and reruns: the
rerun must either resume at a step every rank agrees on or start afresh (with
a warning), never mix steps, and end with metrics.csv identical to an
uninterrupted run. (Before run_state_load_rank agreed on next_step, each rank
resumed at its own step and Open MPI aborted with MPI_ERR_TRUNCATE.)"""
import os
import shutil
import signal
import time

from faultlib import Run, Suite, job_text, metrics, same_metrics, tmpdir, wait_ranks, write

RANKS = 2


def main():
    s = Suite()
    with tmpdir() as d:
        out = os.path.join(d, "out")
        job = write(os.path.join(d, "job.yaml"), job_text(out))
        ref = Run(RANKS, ["run", job, "--out", os.path.join(d, "ref")], os.path.join(d, "ref.log"))
        if not s.check(ref.wait(900) == 0, f"uninterrupted run: {ref.text()[-500:]}"):
            s.finish()
        want = metrics(os.path.join(d, "ref"))
        r = Run(RANKS, ["run", job], os.path.join(d, "first.log"), env={"REPEVAL_CHECKPOINT_EVERY": "1"})
        pids = wait_ranks(r, RANKS)
        snap = os.path.join(out + ".state", f"pass-fmnist.rank1-of-{RANKS}.state")
        end = time.monotonic() + 600
        while not os.path.exists(snap) and time.monotonic() < end and r.p.poll() is None:
            time.sleep(0.02)
        time.sleep(0.2)
        old = os.path.join(d, "early.state")
        s.check(os.path.exists(snap), "rank 1 saved a snapshot")
        shutil.copy(snap, old)
        s.check(r.wait_for(r"fmnist (1[6-9]|2[0-9])/30", 600), "the run went on")
        for p in pids.values():
            os.kill(p, signal.SIGTERM)
        s.check(r.wait(300) == 75, f"SIGTERM: exit code 75: {r.text()[-300:]}")
        with open(old, "rb") as a, open(snap, "rb") as b:
            s.check(a.read() != b.read(), "the early snapshot differs from the last one")
        shutil.copy(old, snap)  # rank 1 is one or more steps behind rank 0
        rerun = Run(RANKS, ["run", job], os.path.join(d, "rerun.log"))
        rc = rerun.wait(300)
        err = rerun.text()
        s.check(rc == 0, f"rerun exit code {rc}: {err[-500:]}")
        s.check("different steps" in err and "starting afresh" in err,
                f"the rerun warns that the snapshots disagree: {err[-500:]}")
        s.check(os.path.isfile(os.path.join(out, "metrics.csv")), "the rerun wrote metrics.csv")
        if os.path.isfile(os.path.join(out, "metrics.csv")):
            same_metrics(s, out, want, "rerun with snapshots of different steps")
    s.finish()


if __name__ == "__main__":
    main()
