"""Forward on one job, statistics on another, on the local Slurm cluster: a batch job
runs tools/export-activations (the demo CNN, two checkpoints, 200 images; held at
submission), `repeval submit JOB --after ID` accepts the job file although the
activations folders do not exist yet and submits a job that stays pending on the
dependency; once the export is released and done, the statistics job completes
and its metrics.csv equals a plain `repeval run` of the same job byte for byte.
A dependent job of an export that fails is cancelled, not left pending."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from slurmlib import DEMO, FMNIST, cmd, job_info, require_cluster, sbatch, show_log, wait_done  # noqa: E402

from common import SOURCE_DIR, Suite, repeval, tmpdir  # noqa: E402

EXPORTER = os.path.join(SOURCE_DIR, "tools", "export-activations")


def job_text(d, name):
    return f"""name: {name}
data:
  fmnist:
    format: idx
    images: {FMNIST}/t10k-images-idx3-ubyte.gz
    labels: {FMNIST}/t10k-labels-idx1-ubyte.gz
    normalize: {{mean: [0.286], std: [0.353]}}
    limit: 200
models:
  - name: cnn
    activations: "{d}/acts/seed*/epoch_05"
    layers: [conv1:mean, fc1, fc2]
analyses:
  cka: {{batch: 100}}
  spectrum: {{}}
output: {{dir: "{d}/out"}}
slurm:
  time: "00:10:00"
"""


def export_script(d, job, fail=False):
    path = os.path.join(d, "export-fail.sbatch" if fail else "export.sbatch")
    with open(path, "w") as f:
        f.write(f"""#!/bin/bash
#SBATCH --job-name=export
#SBATCH --ntasks=1
#SBATCH --time=00:10:00
#SBATCH --output={d}/export-%j.out
set -e
{"exit 3" if fail else ""}
{sys.executable} {EXPORTER} --model {DEMO}/train.py:SmallCNN \\
  --checkpoints "{DEMO}/checkpoints/seed{{0..1}}/epoch_05.*" --layers conv1:mean,fc1,fc2 \\
  --job {job} --dataset fmnist --out {d}/acts --batch 100 --device cpu
""")
    return path


def main():
    require_cluster()
    s = Suite()
    tag = f"after{os.getpid()}"
    with tmpdir() as d:
        job = os.path.join(d, "job.yaml")
        with open(job, "w") as f:
            f.write(job_text(d, tag))
        export_id = sbatch(export_script(d, job), "--hold")
        rc, out, err = repeval("submit", job, "--after", export_id)
        stats_id = out.strip()
        if not s.check(rc == 0 and stats_id.isdigit(), f"submit --after {export_id} before the export ran: "
                                                      f"exit {rc}: {out} {err}"):
            cmd(["scancel", export_id], check=False)
            s.finish()
        info = job_info(stats_id)
        s.check(info.get("JobState") == "PENDING" and info.get("Reason") == "Dependency",
                f"the statistics job waits for the export: {info.get('JobState')} ({info.get('Reason')})")
        cmd(["scontrol", "release", export_id])
        ex, st = wait_done(export_id, timeout=600), wait_done(stats_id, timeout=600)
        ok = s.check(ex.get("JobState") == "COMPLETED", f"export job: {ex.get('JobState')} {ex.get('ExitCode')}")
        ok &= s.check(st.get("JobState") == "COMPLETED" and st.get("ExitCode") == "0:0",
                      f"statistics job: {st.get('JobState')} {st.get('ExitCode')}")
        m = os.path.join(d, "out", "metrics.csv")
        if not s.check(ok and os.path.isfile(m), "metrics.csv written by the statistics job"):
            show_log(os.path.join(d, f"export-{export_id}.out"), "export log")
            show_log(os.path.join(d, "out.slurm", f"slurm-{stats_id}.out"), "statistics log")
            s.finish()
        rc, _, err = repeval("run", job, "--out", os.path.join(d, "here"), "--quiet", timeout=600)
        if s.check(rc == 0, f"plain repeval run of the same job: {err}"):
            a, b = open(m, "rb").read(), open(os.path.join(d, "here", "metrics.csv"), "rb").read()
            s.check(a == b and len(a) > 100, "metrics.csv of the dependent job == a plain run, byte for byte")
        # an export that fails: the dependent job is cancelled
        fail_id = sbatch(export_script(d, job, fail=True), "--hold")
        job2 = os.path.join(d, "job2.yaml")
        with open(job2, "w") as f:
            f.write(job_text(d, tag + "b").replace(f"{d}/out", f"{d}/out2"))
        rc, out, err = repeval("submit", job2, "--after", fail_id)
        s.check(rc == 0, f"submit --after a job that will fail: {err}")
        cmd(["scontrol", "release", fail_id])
        wait_done(fail_id, timeout=300)
        info = wait_done(out.strip(), timeout=120) if rc == 0 else {}
        s.check(info.get("JobState") == "CANCELLED", f"dependent job of a failed export: {info.get('JobState')} "
                                                     f"({info.get('Reason')})")
        s.check(not os.path.exists(os.path.join(d, "out2")), "it wrote nothing")
    s.finish()


if __name__ == "__main__":
    main()
