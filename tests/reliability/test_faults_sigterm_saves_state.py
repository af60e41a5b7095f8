"""Fault injection: SIGTERM to every rank (Slurm's time limit, scancel) and
SIGUSR1 to one rank (a --signal=USR1@T warning) in the middle of `repeval run`
under mpiexec with 2 ranks. Each time the job stops within seconds with exit
code 75 and "state saved", the previous complete result in the output folder
stays byte-identical, no partial folder is left, and running the same command
again resumes ("resuming dataset ... from a saved state") and ends with
metrics.csv identical, value for value as text (bitwise), to an uninterrupted
run with the same rank count. The second scenario is interrupted twice."""
import os
import shutil
import signal
import time

from faultlib import Run, Suite, job_text, leftovers, metrics, same_metrics, tmpdir, tree_hash, wait_ranks, write

RANKS = 2
STOP_SECONDS = 60  # from the signal to the exit of mpiexec (one batch plus the snapshot, on a loaded machine)


def interrupt(s, d, job, out, sig, which, at, what):
    """Start the run, send `sig` to ranks `which` once batch `at` is reported; check exit 75."""
    r = Run(RANKS, ["run", job], os.path.join(d, f"{what}.log"))
    pids = wait_ranks(r, RANKS)
    s.check(len(pids) == RANKS, f"{what}: {RANKS} ranks started")
    if not s.check(r.wait_for(rf"fmnist ({'|'.join(str(k) for k in range(at, 31))})/30", 600),
                   f"{what}: progress reached batch {at}: {r.text()[-300:]}"):
        r.wait(5)
        return
    for rank in which:
        os.kill(pids[rank], sig)
    t = time.monotonic()
    rc = r.wait(STOP_SECONDS + 60)
    took = time.monotonic() - t
    err = r.text()
    s.check(rc == 75, f"{what}: exit code {rc}, want 75: {err[-400:]}")
    s.check(took < STOP_SECONDS, f"{what}: stopped {took:.1f} s after the signal")
    s.check("interrupted by a signal after batch step" in err and "state saved in" in err and
            "run the same command again to resume" in err, f"{what}: message: {err[-400:]}")


def main():
    s = Suite()
    with tmpdir() as d:
        out = os.path.join(d, "out")
        job = write(os.path.join(d, "job.yaml"), job_text(out))
        ref = Run(RANKS, ["run", job, "--out", os.path.join(d, "ref")], os.path.join(d, "ref.log"))
        if not s.check(ref.wait(900) == 0, f"uninterrupted run: {ref.text()[-500:]}"):
            s.finish()
        want = metrics(os.path.join(d, "ref"))
        print(f"uninterrupted run: {ref.seconds:.1f} s, {len(want)} metric rows")
        shutil.copytree(os.path.join(d, "ref"), out)  # the previous complete result
        before = tree_hash(out)
        scenarios = [
            ("sigterm_all_ranks", [(signal.SIGTERM, [0, 1], 8)]),
            ("sigusr1_one_rank_twice", [(signal.SIGUSR1, [1], 6), (signal.SIGUSR1, [1], 20)]),
        ]
        for name, stops in scenarios:
            for k, (sig, which, at) in enumerate(stops):
                what = f"{name} #{k + 1}"
                interrupt(s, d, job, out, sig, which, at, what)
                s.check(tree_hash(out) == before, f"{what}: the previous result is untouched")
                s.check(not leftovers(d, "out"), f"{what}: no partial folder left: {leftovers(d, 'out')}")
                s.check(os.path.isdir(out + ".state") and any(n.endswith(".state")
                                                              for n in os.listdir(out + ".state")),
                        f"{what}: snapshots in out.state")
            r = Run(RANKS, ["run", job], os.path.join(d, f"{name}-resume.log"))
            rc = r.wait(900)
            err = r.text()
            s.check(rc == 0, f"{name}: the rerun exits {rc}: {err[-400:]}")
            s.check("resuming dataset fmnist from a saved state" in err, f"{name}: the rerun resumed: {err[:400]}")
            same_metrics(s, out, want, f"{name}: rerun after the signal")
            s.check(not os.path.exists(out + ".state"), f"{name}: the state folder is removed after completion")
            s.check(not leftovers(d, "out"), f"{name}: no partial folder left after the rerun")
            shutil.rmtree(out)
            shutil.copytree(os.path.join(d, "ref"), out)
    s.finish()


if __name__ == "__main__":
    main()
