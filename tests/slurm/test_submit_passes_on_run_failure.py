"""A failure that is not an interruption is passed on, never requeued: a job
validated at submission whose checkpoint disappears before it starts (held
with `-- --hold`, file removed, then released) makes `repeval run` exit 1; the
batch script exits 1, Slurm records the job as FAILED with exit code 1 and no
restart, and the log names the failure."""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from slurmlib import DEMO, cmd, job_info, require_cluster, show_log, wait_done, write_job  # noqa: E402

from common import Suite, repeval, tmpdir  # noqa: E402


def main():
    rc, out, err = repeval("run", "--help")
    if rc != 0:
        print(f"SKIP: this repeval has no working 'run' command yet (run --help exited {rc})")
        sys.exit(77)
    require_cluster()
    s = Suite()
    tag = f"fail{os.getpid()}"
    with tmpdir() as d:
        ck = os.path.join(d, "ckpts")
        for seed in (0, 1):
            os.makedirs(os.path.join(ck, f"seed{seed}"))
            shutil.copy(os.path.join(DEMO, "checkpoints", f"seed{seed}", "epoch_05.pt"), os.path.join(ck, f"seed{seed}"))
        job = write_job(d, tag, checkpoints="seed{0..1}/epoch_05.pt")
        text = open(job).read().replace(os.path.join(DEMO, "checkpoints"), ck)
        open(job, "w").write(text)
        rc, out, err = repeval("submit", job, "--", "--hold")
        jobid = out.strip()
        if not s.check(rc == 0 and jobid.isdigit(), f"submitted on hold: exit {rc}: {out} {err}"):
            s.finish()
        s.check(job_info(jobid).get("JobState") == "PENDING", "held job is pending")
        os.remove(os.path.join(ck, "seed1", "epoch_05.pt"))
        cmd(["scontrol", "release", jobid])
        try:
            info = wait_done(jobid, timeout=300)
        except TimeoutError as e:
            s.check(False, str(e))
            info = job_info(jobid)
        log = os.path.join(d, "out.slurm", f"slurm-{jobid}.out")
        ok = s.check(info.get("JobState") == "FAILED" and info.get("ExitCode") == "1:0",
                     f"job {jobid}: {info.get('JobState')} exit {info.get('ExitCode')}, want FAILED 1:0")
        ok &= s.check(info.get("Restarts") == "0", f"not requeued: {info.get('Restarts')} restarts")
        text = open(log, errors="replace").read() if os.path.isfile(log) else ""
        ok &= s.check("repeval run failed with exit code 1" in text and "epoch_05" in text,
                      "the log has repeval's error and the script's failure line")
        ok &= s.check("requeueing" not in text, "the log has no requeue")
        if not ok:
            show_log(log, "batch log")
    s.finish()


if __name__ == "__main__":
    main()
