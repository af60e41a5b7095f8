"""repeval submit --dry-run prints the batch script and nothing else: the
#SBATCH directives come from the job's slurm: map, overridden by the command
line, extras last, in a fixed order; the script runs `srun --mpi=pmix repeval
run` with absolute paths, BLAS threads = CPUs per task, --cpu-bind=cores only
with several CPUs per task, and the exit-code-75 requeue protocol. The real
sbatch accepts the rendered directives (--test-only) and rejects a rank count
the node cannot hold, so Slurm reads what we render. Bad values are refused
with exit 2 (command line) or exit 1 with file:line:col (job file); a dry run
writes no file and queues no job."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from slurmlib import cmd, job_names, node_cpus, require_cluster, write_job  # noqa: E402

from common import REPEVAL, Suite, repeval, tmpdir  # noqa: E402


def directives(script):
    return [ln[len("#SBATCH "):] for ln in script.splitlines() if ln.startswith("#SBATCH ")]


def line_of(path, needle):
    for k, ln in enumerate(open(path).read().splitlines(), 1):
        if needle in ln:
            return k, ln.index(needle.split(": ", 1)[-1]) + 1
    raise AssertionError(f"{needle} not in {path}")


def test_only(s, d, script, what, want_ok):
    """sbatch --test-only: Slurm parses the script's directives and says whether
    this cluster could run the job, without queueing it."""
    p = os.path.join(d, "rendered.sbatch")
    with open(p, "w") as f:
        f.write(script)
    r = subprocess.run(["sbatch", "--test-only", p], capture_output=True, text=True, timeout=60)
    if want_ok:
        s.check(r.returncode == 0 and "to start at" in r.stderr, f"{what}: sbatch --test-only accepts it: {r.stderr}")
    else:
        s.check(r.returncode != 0, f"{what}: sbatch --test-only refuses it: {r.stderr}")


def main():
    require_cluster()
    s = Suite()
    exe = os.path.realpath(REPEVAL)
    tag = f"dry{os.getpid()}"
    with tmpdir() as d:
        job = write_job(d, tag, slurm="""  nodes: 1
  ntasks_per_node: 2
  cpus_per_task: 1
  time: "00:20:00"
  partition: debug
  mem: 1G
  extra: ["--comment=from-yaml"]
""")
        # ---- the job file's defaults, the command line on top
        rc, out, err = repeval("submit", job, "--dry-run", "--time", "00:10:00", "--", "--comment=from-cli")
        s.check(rc == 0, f"dry run exits 0: {rc} {err}")
        s.check(out.startswith("#!/bin/bash\n"), "the output is a bash script")
        want = [f"--job-name={tag}", "--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1",
                f"--output={d}/out.slurm/slurm-%j.out", "--open-mode=append", "--requeue", "--signal=B:USR1@120",
                "--time=00:10:00", "--mem=1G", "--partition=debug", "--comment=from-yaml", "--comment=from-cli"]
        s.check(directives(out) == want, f"directives:\n  got  {directives(out)}\n  want {want}")
        s.check(f"repeval='{exe}'\n" in out, "the repeval program by absolute path (/proc/self/exe)")
        s.check(f"job='{job}'\n" in out and f"out='{d}/out'\n" in out, "job file and output folder, absolute")
        srun = [ln for ln in out.splitlines() if ln.startswith("srun ")]
        s.check(len(srun) == 1 and srun[0].startswith("srun --mpi=pmix ") and "--cpu-bind" not in srun[0] and
                '"$repeval" run "$job" ${out:+--out "$out"} &' in srun[0], f"srun line: {srun}")
        s.check("export OPENBLAS_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}\n" in out and
                "export OMP_NUM_THREADS=$OPENBLAS_NUM_THREADS\n" in out, "BLAS threads = CPUs per task")
        s.check(re.search(r"^  75\)\n(.*\n)*?.*scontrol requeue \"\$\{SLURM_JOB_ID\}\"", out, re.M) is not None,
                "exit code 75 leads to scontrol requeue")
        s.check("trap 'forward USR1' USR1" in out and "trap 'forward TERM' TERM" in out, "signal traps")
        syn = subprocess.run(["bash", "-n"], input=out, capture_output=True, text=True)
        s.check(syn.returncode == 0, f"bash -n accepts the script: {syn.stderr}")
        s.check(not os.path.exists(os.path.join(d, "out.slurm")), "a dry run writes no script folder")
        s.check(tag not in job_names(), "a dry run queues no job")
        test_only(s, d, out, "2 ranks x 1 CPU", True)

        # ---- more ranks than the node has CPUs: Slurm reads our directive and says no
        cpus = node_cpus()
        rc, out, err = repeval("submit", job, "--dry-run", "--ntasks-per-node", cpus + 1)
        s.check(rc == 0 and f"--ntasks-per-node={cpus + 1}" in directives(out), f"--ntasks-per-node override: {err}")
        test_only(s, d, out, f"{cpus + 1} ranks on a {cpus}-CPU node", False)

        # ---- several CPUs per task: bind ranks to cores
        rc, out, err = repeval("submit", job, "--dry-run", "--cpus-per-task", 2, "--ntasks-per-node", 1)
        srun = [ln for ln in out.splitlines() if ln.startswith("srun ")]
        s.check(rc == 0 and "--cpus-per-task=2" in directives(out) and srun and
                srun[0].startswith("srun --mpi=pmix --cpu-bind=cores "), f"--cpu-bind=cores with 2 CPUs: {srun} {err}")

        # ---- account, qos, output folder
        rc, out, err = repeval("submit", job, "--dry-run", "--account", "proj-1", "--qos", "high",
                               "--output-dir", "rel/res", "--partition", "p1,p2")
        dv = directives(out)
        s.check(rc == 0 and "--account=proj-1" in dv and "--qos=high" in dv and "--partition=p1,p2" in dv and
                "--partition=debug" not in dv, f"account/qos/partition: {dv} {err}")
        s.check(f"out='{os.getcwd()}/rel/res'\n" in out and
                f"--output={os.getcwd()}/rel/res.slurm/slurm-%j.out" in dv, "relative --output-dir made absolute")

        # ---- arrays: per-task output folders from the job, or DIR/task-i
        arr = write_job(d, tag + "a", output=os.path.join(d, "sweep-${SLURM_ARRAY_TASK_ID}"), fname="arr.yaml")
        rc, out, err = repeval("submit", arr, "--dry-run", "--array", "0-2")
        dv = directives(out)
        s.check(rc == 0 and "--array=0-2" in dv and f"--output={d}/sweep-0.slurm/slurm-%A_%a.out" in dv and
                "out=''\n" in out, f"array with ${{SLURM_ARRAY_TASK_ID}} in output.dir: {dv} {err}")
        rc, out, err = repeval("submit", job, "--dry-run", "--array", "0-2")
        s.check(rc == 1 and "same output folder" in err, f"array tasks sharing one output folder: {rc} {err}")
        rc, out, err = repeval("submit", job, "--dry-run", "--array", "0-4:2%2", "--output-dir", os.path.join(d, "a"))
        s.check(rc == 0 and "--array=0-4:2%2" in directives(out) and
                f"out='{d}/a'\"/task-${{SLURM_ARRAY_TASK_ID}}\"\n" in out, f"array with --output-dir: {err}")

        # ---- the command line is checked before anything else (exit 2)
        for args, what in ((["--time", "1:75:00"], "minutes > 59"), (["--time", "2-25"], "hours > 23 after days"),
                           (["--mem", "lots"], "memory without a number"), (["--nodes", "0"], "zero nodes"),
                           (["--array", "5-1"], "empty array range"), (["--partition", "a b"], "blank in partition"),
                           (["--gpus", "1"], "an sbatch option before --"), (["--", "gres"], "extra without '-'")):
            rc, out, err = repeval("submit", job, "--dry-run", *args)
            s.check(rc == 2 and out == "", f"{what} ({args}): exit {rc}, want 2: {err.strip()}")
        rc, out, err = repeval("submit", job, "--dry-run", "--time", "1")
        s.check(rc == 0 and "warning" in err and "120 s" in err, f"a time limit shorter than the warning: {err}")

        # ---- bad slurm: values in the job file: exit 1 at their position
        for entry, needle in (("  mem: lots\n", "mem: lots"), ("  gpus: 1\n", "gpus: 1"),
                              ('  time: "25:00:00:00"\n', 'time: "25:00:00:00"'),
                              ("  extra: [gres=1]\n", "extra: [gres=1]"), ("  nodes: two\n", "nodes: two")):
            bad = write_job(d, tag + "b", slurm=entry, fname="bad.yaml")
            ln, _ = line_of(bad, needle)
            rc, out, err = repeval("submit", bad, "--dry-run")
            s.check(rc == 1 and re.search(rf"bad\.yaml:{ln}:\d+: ", err) is not None and out == "",
                    f"slurm map entry {entry.strip()!r}: exit {rc}, message {err.strip()!r}")

        # ---- templates: unknown placeholders are named; a custom one renders as written
        tpl = os.path.join(d, "custom.in")
        with open(tpl, "w") as f:
            f.write("#!/bin/bash\n#SBATCH -n @NTASKS_PER_NODE@\n# @BOGUS@ here\n")
        rc, out, err = repeval("submit", job, "--dry-run", "--template", tpl)
        s.check(rc == 1 and "custom.in:3: unknown placeholder @BOGUS@" in err, f"unknown placeholder: {err}")
        with open(tpl, "w") as f:
            f.write("#!/bin/bash\n#SBATCH -n @NTASKS_PER_NODE@ --mail-user=a@b.c\n@SBATCH_OPTIONS@\n"
                    "exec @REPEVAL@ run @JOB_FILE@ --out @OUTPUT_DIR@\n")
        rc, out, err = repeval("submit", job, "--dry-run", "--template", tpl)
        want = (f"#!/bin/bash\n#SBATCH -n 2 --mail-user=a@b.c\n#SBATCH --time=00:20:00\n#SBATCH --mem=1G\n"
                f"#SBATCH --partition=debug\n#SBATCH --comment=from-yaml\nexec '{exe}' run '{job}' --out '{d}/out'\n")
        s.check(rc == 0 and out == want, f"custom template:\n{out}\nwant\n{want}\n{err}")
        # a job file whose path has a quote and a blank: quoted for the shell
        q = os.path.join(d, "it's a dir")
        os.makedirs(q)
        qjob = write_job(q, tag + "q", output=os.path.join(d, "qout"))
        rc, out, err = repeval("submit", qjob, "--dry-run")
        line = [ln for ln in out.splitlines() if ln.startswith("job=")]
        got = cmd(["bash", "-c", line[0] + '; printf %s "$job"']) if rc == 0 and line else None
        s.check(got == qjob, f"shell quoting of {qjob!r}: {line} -> {got!r} {err}")
        # but a #SBATCH line cannot hold such a log folder
        rc, out, err = repeval("submit", job, "--dry-run", "--output-dir", os.path.join(q, "o"))
        s.check(rc == 1 and "quote" in err, f"a quote in the log folder cannot go into #SBATCH: {err}")
    s.finish()


if __name__ == "__main__":
    main()
