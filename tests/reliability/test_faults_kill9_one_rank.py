"""Fault injection: kill -9 of one rank of `repeval run` under mpiexec (2 ranks,
snapshots every second with REPEVAL_CHECKPOINT_EVERY=1), once in the middle of
the embedding pass and once right after the pass reports "done" (during the
reduction of a 128 MB co-moment state and the finalize stage). Each time the
whole job ends within seconds (no rank hangs in a collective), with a non-zero
exit code, the previous complete result in the output folder stays
byte-identical, and running the same command again completes (resuming from
the last snapshot in the first case) with metrics.csv identical as text
(bitwise) to an uninterrupted run. Stale partial folders of the killed run are
removed by the rerun."""
import os
import shutil
import signal
import time

from faultlib import Run, Suite, job_text, leftovers, metrics, same_metrics, tmpdir, tree_hash, wait_ranks, write

RANKS = 2
EXIT_SECONDS = 30  # from the kill to the exit of mpiexec
ENV = {"REPEVAL_CHECKPOINT_EVERY": "1"}


def kill_rank(s, d, job, out, pattern, what, need_snapshots):
    r = Run(RANKS, ["run", job], os.path.join(d, f"{what}.log"), env=ENV)
    pids = wait_ranks(r, RANKS)
    s.check(len(pids) == RANKS, f"{what}: {RANKS} ranks started")
    ok = r.wait_for(pattern, 900)
    if need_snapshots:  # both ranks have saved at least one snapshot
        end = time.monotonic() + 60
        while time.monotonic() < end and not (os.path.isdir(out + ".state") and
                                              sum(n.startswith("pass-fmnist.rank") and n.endswith(".state")
                                                  for n in os.listdir(out + ".state")) == RANKS):
            time.sleep(0.05)
    if not s.check(ok and r.p.poll() is None, f"{what}: reached {pattern!r} while running: {r.text()[-300:]}"):
        r.wait(600)
        return
    os.kill(pids[1], signal.SIGKILL)
    t = time.monotonic()
    rc = r.wait(EXIT_SECONDS + 120)
    s.check(rc is not None and rc != 0, f"{what}: mpiexec exit code {rc}, want non-zero")
    # mpiexec may return while the surviving rank is still being torn down (it
    # catches SIGTERM to save state); a scheduler waits for every process of the
    # job, and so does this test before rerunning
    while time.monotonic() - t < EXIT_SECONDS + 60 and any(os.path.exists(f"/proc/{p}") for p in pids.values()):
        time.sleep(0.05)
    took = time.monotonic() - t
    s.check(took < EXIT_SECONDS, f"{what}: every rank ended {took:.1f} s after the kill (no hang)")
    print(f"{what}: mpiexec exited {rc}, every rank gone {took:.1f} s after the kill")
    return r


def main():
    s = Suite()
    with tmpdir() as d:
        out = os.path.join(d, "out")
        job = write(os.path.join(d, "job.yaml"), job_text(out))
        ref = Run(RANKS, ["run", job, "--out", os.path.join(d, "ref")], os.path.join(d, "ref.log"))
        if not s.check(ref.wait(900) == 0, f"uninterrupted run: {ref.text()[-500:]}"):
            s.finish()
        want = metrics(os.path.join(d, "ref"))
        stats = os.path.getsize(os.path.join(d, "ref", "stats", "fmnist.stats"))
        print(f"uninterrupted run: {ref.seconds:.1f} s, {len(want)} metric rows, statistics of {stats >> 20} MB")
        shutil.copytree(os.path.join(d, "ref"), out)
        before = tree_hash(out)
        for what, pattern, snaps in [("mid_embed", r"fmnist (1[4-9]|2[0-9])/30", True),
                                     ("after_pass_done", r"dataset fmnist done", False)]:
            kill_rank(s, d, job, out, pattern, what, snaps)
            s.check(tree_hash(out) == before, f"{what}: the previous result is untouched")
            r = Run(RANKS, ["run", job], os.path.join(d, f"{what}-rerun.log"), env=ENV)
            rc = r.wait(900)
            err = r.text()
            s.check(rc == 0, f"{what}: the rerun exits {rc}: {err[-400:]}")
            if snaps:
                s.check("resuming dataset fmnist from a saved state" in err,
                        f"{what}: the rerun resumed from the snapshots: {err[:600]}")
            same_metrics(s, out, want, f"{what}: rerun after kill -9")
            s.check(not leftovers(d, "out"), f"{what}: stale partial folders removed: {leftovers(d, 'out')}")
            s.check(not os.path.exists(out + ".state"), f"{what}: no state folder after completion")
            shutil.rmtree(out)
            shutil.copytree(os.path.join(d, "ref"), out)
    s.finish()


if __name__ == "__main__":
    main()
