"""repeval submit --parts 2 on the local Slurm cluster: an array of 2 tasks, each
`repeval run --part I/2` with 2 ranks, then a dependent job running `repeval
merge`; the merged metrics.csv is byte-identical to one `mpiexec -n 2` run of
the whole job (the parts and ranks follow one canonical reduction tree), and
`repeval status` reports the complete results and the Slurm log."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from slurmlib import require_cluster, show_log, wait_done, write_job  # noqa: E402

from common import Suite, mpirun, repeval, tmpdir  # noqa: E402


def main():
    require_cluster()
    s = Suite()
    tag = f"parts{os.getpid()}"
    with tmpdir() as d:
        job = write_job(d, tag, limit=600, checkpoints="seed{0..1}/epoch_0{0,5}.*",
                        layers="[conv1:mean, fc1, fc2]",
                        analyses="cka: {batch: 100}\n  cca: {methods: [cca, svcca]}\n  spectrum: {}",
                        slurm="  ntasks_per_node: 2\n  time: \"00:15:00\"\n")
        rc, out, err = repeval("submit", job, "--parts", 2)
        ids = out.split()
        if not s.check(rc == 0 and len(ids) == 2 and all(i.isdigit() for i in ids),
                       f"submitted an array and a merge job: exit {rc}: {out} {err}"):
            s.finish()
        array_id, merge_id = ids
        logs = os.path.join(d, "out.slurm")
        infos = {}
        for jid in (f"{array_id}_0", f"{array_id}_1", merge_id):
            try:
                infos[jid] = wait_done(jid, timeout=600)
            except TimeoutError as e:
                s.check(False, str(e))
        ok = True
        for jid, info in infos.items():
            ok &= s.check(info.get("JobState") == "COMPLETED" and info.get("ExitCode") == "0:0",
                          f"job {jid}: {info.get('JobState')} exit {info.get('ExitCode')}")
        m = os.path.join(d, "out", "metrics.csv")
        if not s.check(ok and os.path.isfile(m), "merged metrics.csv written"):
            for name in sorted(os.listdir(logs)) if os.path.isdir(logs) else []:
                show_log(os.path.join(logs, name), "batch log")
            s.finish()
        rc, out, err = mpirun(2, "run", job, "--out", os.path.join(d, "whole"), "--quiet", timeout=600)
        if s.check(rc == 0, f"mpiexec -n 2 run of the whole job: {err}"):
            a = open(m, "rb").read()
            b = open(os.path.join(d, "whole", "metrics.csv"), "rb").read()
            s.check(a == b and len(a) > 1000, f"2 parts + merge under Slurm == one run, byte for byte ({len(a)} bytes)")
        rc, out, err = repeval("status", os.path.join(d, "out"))
        s.check(rc == 0 and "complete" in out and "merge" in out and "slurm" in out, f"repeval status: {out}")
    s.finish()


if __name__ == "__main__":
    main()
