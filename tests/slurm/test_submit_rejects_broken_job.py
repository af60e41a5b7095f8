"""repeval submit validates the job file completely before sbatch: a YAML
syntax error, an unknown key, checkpoints that match no file, and an array task
whose job does not load (with SLURM_ARRAY_TASK_ID set as Slurm will set it)
each fail with exit 1 and the file:line:col (or array task) in the message,
and neither a script nor a Slurm job appears. The control: the same array job
without the broken task is submitted, shows up in Slurm under its name and
runs every task into its own output folder. A job Slurm itself refuses
(unknown partition) exits 1 with sbatch's reason and keeps the script."""
import csv
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from slurmlib import job_info, job_names, require_cluster, show_log, wait_done, write_job  # noqa: E402

from common import Suite, repeval, tmpdir  # noqa: E402


def main():
    require_cluster()
    s = Suite()
    tag = f"broken{os.getpid()}"
    with tmpdir() as d:
        def no_trace(name, what):
            time.sleep(1)  # a submission would be visible at once; give it a moment anyway
            s.check(name not in job_names(), f"{what}: no Slurm job named {name}")
            s.check(not any(n.endswith(".slurm") for n in os.listdir(d)), f"{what}: no script folder written")

        # YAML syntax error
        job = write_job(d, tag + "y", fname="syntax.yaml")
        text = open(job).read().replace("layers: [conv1:mean, fc1]", "layers: [conv1:mean, fc1")
        open(job, "w").write(text)
        rc, out, err = repeval("submit", job)
        s.check(rc == 1 and re.search(r"syntax\.yaml:\d+:\d+: ", err) is not None,
                f"YAML syntax error: exit {rc}: {err.strip()}")
        no_trace(tag + "y", "syntax error")

        # unknown key, with its position
        job = write_job(d, tag + "k", fname="key.yaml")
        open(job, "a").write("analyzes: {}\n")
        nlines = len(open(job).read().splitlines())
        rc, out, err = repeval("submit", job)
        s.check(rc == 1 and f"key.yaml:{nlines}:1: " in err and "analyzes" in err,
                f"unknown key at line {nlines}: exit {rc}: {err.strip()}")
        no_trace(tag + "k", "unknown key")

        # checkpoints that match nothing
        job = write_job(d, tag + "c", checkpoints="seed9/*", fname="ckpt.yaml")
        rc, out, err = repeval("submit", job)
        s.check(rc == 1 and re.search(r"ckpt\.yaml:\d+:\d+: ", err) is not None and "seed9" in err,
                f"missing checkpoints: exit {rc}: {err.strip()}")
        no_trace(tag + "c", "missing checkpoints")

        # an array whose task 3 names checkpoints that do not exist (seeds 0-2 do)
        arr = write_job(d, tag + "a", checkpoints="seed${SLURM_ARRAY_TASK_ID}/epoch_0{4,5}.*",
                        output=os.path.join(d, "sweep-${SLURM_ARRAY_TASK_ID}"), fname="arr.yaml")
        rc, out, err = repeval("submit", arr, "--array", "0-3")
        s.check(rc == 1 and "array task 3" in err and "seed3" in err, f"array task 3 broken: exit {rc}: {err.strip()}")
        no_trace(tag + "a", "broken array task")

        # control: tasks 0-2 are fine, so the job is submitted and runs
        rc, out, err = repeval("submit", arr, "--array", "0-2")
        jobid = out.strip()
        if s.check(rc == 0 and jobid.isdigit(), f"array 0-2 submitted: exit {rc}: {out} {err}"):
            s.check(tag + "a" in job_names(), "the submitted job is visible to scontrol under its name")
            logs = os.path.join(d, "sweep-0.slurm")
            for t in range(3):
                try:
                    info = wait_done(f"{jobid}_{t}", timeout=300)
                except TimeoutError as e:
                    s.check(False, str(e))
                    info = job_info(f"{jobid}_{t}")
                log = os.path.join(logs, f"slurm-{jobid}_{t}.out")
                ok = s.check(info.get("JobState") == "COMPLETED" and info.get("ExitCode") == "0:0",
                             f"array task {t}: {info.get('JobState')} exit {info.get('ExitCode')}")
                m = os.path.join(d, f"sweep-{t}", "metrics.csv")
                rows = list(csv.DictReader(open(m))) if os.path.isfile(m) else []
                labels = {r["checkpoint_a"] for r in rows}
                ok &= s.check(labels in ({"epoch_04", "epoch_05"}, {f"seed{t}/epoch_04", f"seed{t}/epoch_05"}),
                              f"task {t} evaluated its own seed's checkpoints: {labels}")
                if not ok:
                    show_log(log, f"array task {t}")

        # Slurm refuses the job: exit 1 with sbatch's reason; the script stays for inspection
        job = write_job(d, tag + "p", output=os.path.join(d, "refused"), fname="part.yaml")
        rc, out, err = repeval("submit", job, "--partition", "nosuchpartition")
        kept = os.listdir(os.path.join(d, "refused.slurm")) if os.path.isdir(os.path.join(d, "refused.slurm")) else []
        s.check(rc == 1 and "sbatch refused the job" in err and "partition" in err.lower() and out == "",
                f"unknown partition: exit {rc}: {err.strip()}")
        s.check(len(kept) == 1 and kept[0].startswith("submit-") and kept[0].endswith(".sbatch"),
                f"the refused script is kept: {kept}")
    s.finish()


if __name__ == "__main__":
    main()
