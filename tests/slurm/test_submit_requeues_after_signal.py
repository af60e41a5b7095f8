"""The pre-emption protocol of the rendered batch script, on the real local
Slurm cluster: while a 2-rank `repeval submit` job runs, the batch shell gets
SIGUSR1 (what `--signal=B:USR1@120` sends before the time limit); the trap
forwards it, repeval saves its state and exits 75, and the script requeues the
job. On the second start the shell gets SIGTERM (pre-emption, scancel), which
is forwarded the same way. The third start resumes and completes: Slurm counts
2 restarts, the log shows both signals and both resumptions, and metrics.csv
is byte-identical to one uninterrupted `mpiexec -n 2` run."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from slurmlib import cmd, job_info, require_cluster, show_log, wait_done, write_job  # noqa: E402

from common import Suite, mpirun, repeval, tmpdir  # noqa: E402


def wait_progress(log, start, timeout):
    """Wait until the batch log shows start number `start` of the script and then
    a progress line of repeval (so its signal handlers are installed)."""
    end = time.time() + timeout
    marker = f" start {start} at "
    while time.time() < end:
        text = open(log, errors="replace").read() if os.path.isfile(log) else ""
        k = text.find(marker)
        if k >= 0 and "%)" in text[k:]:
            return True
        time.sleep(0.3)
    return False


def main():
    rc, out, err = repeval("run", "--help")
    if rc != 0 or "75" not in out:
        print("SKIP: this repeval run does not document the save-and-exit-75 protocol yet")
        sys.exit(77)
    require_cluster()
    s = Suite()
    tag = f"requeue{os.getpid()}"
    with tmpdir() as d:
        # 100 batches, about 10 s of work on 2 ranks here; each signal is sent
        # right after a progress line (every 10 batches), so it finds repeval running
        job = write_job(d, tag, limit=10000, checkpoints="seed{0..2}/epoch_0{0,5}.*",
                        layers="[conv1:mean, pool2, fc1, fc2]", analyses="cka: {batch: 100}",
                        slurm="  ntasks_per_node: 2\n  time: \"00:30:00\"\n")
        rc, out, err = repeval("submit", job)
        jobid = out.strip()
        if not s.check(rc == 0 and jobid.isdigit(), f"submitted: exit {rc}: {out} {err}"):
            s.finish()
        log = os.path.join(d, "out.slurm", f"slurm-{jobid}.out")
        ok = True
        for start, sig in ((0, "USR1"), (1, "TERM")):
            if not s.check(wait_progress(log, start, 240), f"start {start} of job {jobid} is running repeval"):
                ok = False
                break
            cmd(["scancel", f"--signal={sig}", "--batch", jobid])
        if ok:
            try:
                info = wait_done(jobid, timeout=400)
            except TimeoutError as e:
                s.check(False, str(e))
                info = job_info(jobid)
            ok &= s.check(info.get("JobState") == "COMPLETED" and info.get("ExitCode") == "0:0",
                          f"job {jobid} after two interruptions: {info.get('JobState')} exit {info.get('ExitCode')}")
            ok &= s.check(info.get("Restarts") == "2", f"Slurm counts 2 restarts: {info.get('Restarts')}")
        text = open(log, errors="replace").read() if os.path.isfile(log) else ""
        for needle, n in (("SIGUSR1 at", 1), ("SIGTERM at", 1), ("requeueing job", 2), ("repeval.sbatch: finished", 1)):
            ok &= s.check(text.count(needle) == n, f"the log has {n} x {needle!r} (found {text.count(needle)})")
        # each later start resumed from saved state instead of starting over
        for start in (1, 2):
            part = text[text.find(f" start {start} at "):]
            ok &= s.check(f" start {start} at " in text and "from a saved state" in part.split(" start ")[1],
                          f"start {start} resumed from the saved state")
        if not ok:
            show_log(log, "batch log")
            cmd(["scancel", jobid], check=False)
            s.finish()
        rc, out, err = mpirun(2, "run", job, "--out", os.path.join(d, "ref"), "--quiet", timeout=600)
        if s.check(rc == 0, f"uninterrupted mpiexec -n 2 run: {err}"):
            a = open(os.path.join(d, "out", "metrics.csv"), "rb").read()
            b = open(os.path.join(d, "ref", "metrics.csv"), "rb").read()
            s.check(a == b and len(a) > 1000, f"interrupted twice == uninterrupted, byte for byte ({len(a)} bytes)")
        s.check(not os.path.exists(os.path.join(d, "out.state")), "no resume state left after completion")
    s.finish()


if __name__ == "__main__":
    main()
