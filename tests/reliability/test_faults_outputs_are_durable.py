"""Outputs survive a power loss once `repeval run` has said it is done: under
strace, every result file written through a temporary file is fsynced before
its rename and its folder is fsynced after it, the bundle is fsynced before
its rename, every file of the new output folder is fsynced before the folder
is swapped in, and the folder that holds the output is fsynced after the swap (first run: rename; second run: renameat2 with
RENAME_EXCHANGE). Skipped (77) without strace."""
import os
import re
import shutil
import subprocess
import sys

from faultlib import REPEVAL, Suite, job_text, tmpdir, write

CALLS = "trace=openat,rename,renameat2,fsync,close"


def trace(d, job, name):
    log = os.path.join(d, f"{name}.strace")
    p = subprocess.run(["strace", "-f", "-o", log, "-e", CALLS, REPEVAL, "run", job, "--quiet"],
                       capture_output=True, text=True, timeout=600)
    with open(log) as f:
        return p.returncode, p.stderr, f.read().splitlines()


def check_durable(s, lines, out, how):
    fd_path = {}   # open descriptor -> path, per process
    synced = set()  # paths fsynced since they were opened
    renames = []    # (index, source, target)
    events = []     # (index, "fsync", path)
    for i, ln in enumerate(lines):
        m = re.match(r"(\d+)\s+openat\(AT_FDCWD, \"([^\"]+)\",.*\) = (\d+)", ln)
        if m:
            fd_path[(m.group(1), m.group(3))] = m.group(2)
            continue
        m = re.match(r"(\d+)\s+fsync\((\d+)\) += 0", ln)
        if m and (m.group(1), m.group(2)) in fd_path:
            path = fd_path[(m.group(1), m.group(2))]
            synced.add(path)
            events.append((i, path))
            continue
        m = re.match(r"(\d+)\s+rename\(\"([^\"]+)\", \"([^\"]+)\"\) = 0", ln) or \
            re.match(r"(\d+)\s+renameat2\(AT_FDCWD, \"([^\"]+)\", AT_FDCWD, \"([^\"]+)\", RENAME_EXCHANGE\) = 0", ln)
        if m:
            renames.append((i, m.group(2), m.group(3)))
    partial = [r for r in renames if r[2] == out]
    s.check(len(partial) == 1, f"{how}: one swap of the output folder: {partial}")
    files = [r for r in renames if ".tmp" in r[1] and ".partial-" in r[1]]
    s.check(len(files) >= 5, f"{how}: result files are written through temporary files ({len(files)})")
    for i, src, dst in files:
        s.check(src in synced, f"{how}: {os.path.basename(dst)} fsynced before its rename")
        folder = os.path.dirname(dst)
        s.check(any(j > i and p == folder for j, p in events), f"{how}: folder of {os.path.basename(dst)} fsynced")
    for i, src, dst in partial:  # every file of the new folder (stdio ones too) is on disk before the swap
        early = {p for j, p in events if j < i}
        for dp, _, fs in os.walk(out):
            for f in fs:
                p = os.path.join(src, os.path.relpath(os.path.join(dp, f), out))
                s.check(p in early, f"{how}: {os.path.relpath(p, src)} fsynced before the swap")
        parent = os.path.dirname(out)
        s.check(any(j > i and p == parent for j, p in events), f"{how}: {parent} fsynced after the swap")


def main():
    if not shutil.which("strace"):
        print("strace is not installed: skipped")
        sys.exit(77)
    s = Suite()
    with tmpdir() as d:
        out = os.path.join(d, "out")
        job = write(os.path.join(d, "job.yaml"), job_text(out, n=200))
        for how in ("first run", "second run"):
            rc, err, lines = trace(d, job, how.replace(" ", "_"))
            if not s.check(rc == 0, f"{how}: exit {rc}: {err[-400:]}"):
                break
            check_durable(s, lines, out, how)
            if how == "second run":
                s.check(any("RENAME_EXCHANGE" in ln for ln in lines), "second run: the folders are exchanged")
            bundle = [ln for ln in lines if re.search(r"rename\(\"[^\"]+results\.tar\.zst\.tmp\"", ln)]
            s.check(len(bundle) == 1, f"{how}: the bundle is renamed into place once")
    s.finish()


if __name__ == "__main__":
    main()
