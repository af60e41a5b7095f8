"""Fault injection: signals while the output folder is replaced. The folder
must always be one complete result, the old one or the new one, never a mix
and never missing: "complete" means metrics.csv, manifest.json and
results.tar.zst are there and every member of the bundle equals the file of
the folder (and every file but the bundle and stats/ is in it), and its
metrics.csv equals, as text, one of the two reference results (CCA variance
0.99 and 0.9, so old and new differ).

  * `repeval finalize` with the other variance, SIGTERM or SIGKILL at a random
    time (many trials);
  * `repeval run` under mpiexec (2 ranks), SIGTERM or SIGKILL to every rank
    at a random time of the whole run;
  * deterministic: `strace` kills `repeval finalize` just before its 1st, 2nd,
    3rd ... system call that renames the output folder (inject=...:signal=KILL),
    which covers the moments between the steps of the replacement.
After the trials, one more finalize removes every stale partial folder."""
import os
import random
import re
import shutil
import signal
import subprocess
import time

from faultlib import REPEVAL, Run, Suite, job_text, leftovers, metrics, tmpdir, write

LAYERS = "[conv1:mean, conv2:mean, fc1, fc2]"
TRIALS_FINALIZE = 30
TRIALS_RUN = 10


def job(out, variance):
    text = job_text(out, n=600).replace("[conv1:mean, conv2:mean, pool2, fc1, fc2]", LAYERS)
    return text.replace("variance: 0.99", f"variance: {variance}")


def complete(out):
    """None if `out` is one consistent result, else what is wrong."""
    if not os.path.isdir(out):
        return "the output folder is missing"
    files = {}
    for dp, _, fs in os.walk(out):
        for f in fs:
            rel = os.path.relpath(os.path.join(dp, f), out)
            with open(os.path.join(dp, f), "rb") as fh:
                files[rel] = fh.read()
    for need in ("metrics.csv", "manifest.json", "results.tar.zst"):
        if need not in files:
            return f"{need} is missing"
    try:
        members = read_bundle(os.path.join(out, "results.tar.zst"))
    except subprocess.CalledProcessError as e:
        return f"unreadable bundle: {e.stderr.strip()[:200]}"
    for name, data in members.items():
        if files.get(name) != data:
            return f"bundle member {name} differs from the folder"
    missing = [f for f in files if f != "results.tar.zst" and not f.startswith("stats/") and f not in members]
    if missing:
        return f"files not in the bundle: {missing[:3]}"
    return None


def read_bundle(path):
    """{member: bytes} of a .tar.zst, extracted by the tar program (Python's tarfile lacks zstd here)."""
    with tmpdir() as x:
        subprocess.run(["tar", "--zstd", "-xf", path, "-C", x], check=True, capture_output=True)
        out = {}
        for dp, _, fs in os.walk(x):
            for f in fs:
                with open(os.path.join(dp, f), "rb") as fh:
                    out[os.path.relpath(os.path.join(dp, f), x)] = fh.read()
        return out


def state(out, refs):
    """'A' / 'B' for a complete result equal to a reference, else the problem."""
    why = complete(out)
    if why:
        return why
    m = metrics(out)
    for name, want in refs.items():
        if m == want:
            return name
    return "metrics.csv equals neither result"


def main():
    s = Suite()
    with tmpdir() as d:
        out = os.path.join(d, "out")
        jobs = {"A": write(os.path.join(d, "a.yaml"), job(out, 0.99)),
                "B": write(os.path.join(d, "b.yaml"), job(out, 0.9))}
        r = Run(2, ["run", jobs["A"]], os.path.join(d, "first.log"))
        if not s.check(r.wait(900) == 0, f"first run: {r.text()[-400:]}"):
            s.finish()
        t_run = r.seconds
        refs = {"A": metrics(out)}
        shutil.copytree(out, os.path.join(d, "refA"))
        t0 = time.monotonic()
        r = Run(0, ["finalize", jobs["B"]], os.path.join(d, "finalizeB.log"))
        s.check(r.wait(600) == 0, f"finalize B: {r.text()[-400:]}")
        t_fin = time.monotonic() - t0
        refs["B"] = metrics(out)
        s.check(refs["A"] != refs["B"], "the two variances give different results")
        print(f"run {t_run:.1f} s, finalize {t_fin:.2f} s, {len(refs['A'])} metric rows")
        rng = random.Random(1234)
        seen = {}

        def trial(what, run, sig, delay):
            time.sleep(delay)
            for pid in ([run.p.pid] if run.p.poll() is None and not run.ranks() else run.ranks()):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            rc = run.wait(600)
            # every process of the job is gone before the folder is judged
            end = time.monotonic() + 60
            while run.ranks() and time.monotonic() < end:
                time.sleep(0.05)
            got = state(out, refs)
            seen[(what, got)] = seen.get((what, got), 0) + 1
            s.check(got in ("A", "B"), f"{what} {signal.Signals(sig).name} after {delay:.2f} s (exit {rc}): {got}")

        for k in range(TRIALS_FINALIZE):
            cur = state(out, refs)
            other = "B" if cur == "A" else "A"
            sig = signal.SIGTERM if k % 2 else signal.SIGKILL
            run = Run(0, ["finalize", jobs[other]], os.path.join(d, f"fin{k}.log"))
            trial("finalize", run, sig, rng.uniform(0, 1.2 * t_fin))
        for k in range(TRIALS_RUN):
            cur = state(out, refs)
            other = "B" if cur == "A" else "A"
            sig = signal.SIGTERM if k % 2 else signal.SIGKILL
            run = Run(2, ["run", jobs[other], "--fresh"], os.path.join(d, f"run{k}.log"))
            trial("run", run, sig, rng.uniform(0.3 * t_run, 1.1 * t_run))
        print("outcomes:", {f"{w}->{g}": n for (w, g), n in sorted(seen.items())})

        # deterministic: kill right before each rename(2) that involves the output folder
        if shutil.which("strace"):
            renames = "trace=rename,renameat,renameat2"
            log = os.path.join(d, "strace.log")
            cur = state(out, refs)
            subprocess.run(["strace", "-o", log, "-e", renames, REPEVAL, "finalize", jobs["B" if cur == "A" else "A"]],
                           capture_output=True, timeout=600, check=True)
            with open(log) as f:
                calls = [ln for ln in f if ln.startswith("rename")]
            folder = re.compile(re.escape(f'"{out}') + r'(\.old-[0-9]+|\.partial-[0-9]+)?"')
            ours = [k + 1 for k, ln in enumerate(calls) if folder.search(ln)]
            print(f"finalize renames {len(calls)} times, {len(ours)} of them the output folder: "
                  f"{[calls[k - 1].split(' = ')[0] for k in ours]}")
            s.check(len(ours) >= 1, "strace sees the rename of the output folder")
            # strace counts `when=` per system call: the n-th call of that name
            points = []
            for k in sorted(set(ours) | {k + 1 for k in ours if k < len(calls)}):
                name = calls[k - 1].split("(")[0]
                points.append((name, sum(1 for c in calls[:k] if c.split("(")[0] == name), k))
            for name, n, k in points:
                cur = state(out, refs)
                other = "B" if cur == "A" else "A"
                p = subprocess.run(["strace", "-o", os.devnull, "-e", renames, "-e",
                                    f"inject={name}:signal=SIGKILL:when={n}", REPEVAL, "finalize", jobs[other]],
                                   capture_output=True, timeout=600)
                s.check(p.returncode == -9, f"strace killed finalize before rename #{k} ({name} #{n})")
                got = state(out, refs)
                s.check(got in ("A", "B"), f"killed before rename #{k} (exit {p.returncode}): {got}; "
                        f"entries: {sorted(os.listdir(d))}")
                print(f"strace: killed before rename #{k} ({name} #{n}): exit {p.returncode}, the folder holds {got}")
                if got not in ("A", "B"):  # put a result back for the next step
                    for name in leftovers(d, "out"):
                        if not os.path.exists(out) and complete(os.path.join(d, name)) is None:
                            os.rename(os.path.join(d, name), out)
                    if not os.path.exists(out):
                        shutil.copytree(os.path.join(d, "refA"), out)
        else:
            print("strace not installed: the deterministic part is skipped")
        r = Run(0, ["finalize", jobs["A"]], os.path.join(d, "last.log"))
        s.check(r.wait(600) == 0 and state(out, refs) == "A", f"a last finalize: {r.text()[-300:]}")
        stale = {n: sorted(os.listdir(os.path.join(d, n))) for n in leftovers(d, "out")}
        s.check(not stale, f"no stale folders after it: {stale}")
    s.finish()


if __name__ == "__main__":
    main()
