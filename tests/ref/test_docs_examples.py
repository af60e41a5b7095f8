#!/usr/bin/env python3
"""The runnable examples of README.md and docs/*.md work as written.

Fenced blocks are marked runnable by words after the language:

    ```yaml job NAME.yaml      a complete job file: written to NAME.yaml, then
                               `repeval run --check NAME.yaml` must succeed
    ```sh run                  shell commands: run with bash -euo pipefail
    ```python run              Python: run with the Python that has NumPy

Blocks of one document run in order in one fresh folder that looks like a
checkout after `scripts/demo` built it: `jobs/` and `tools/` (the repository's),
`cnn.yaml` and `checkpoints/` (the demo's model file and checkpoints),
`build/pipeline/repeval` and `repeval` on PATH (the program under test),
`python3` on PATH the Python running this test (the one with NumPy and torch),
and FMNIST set to the Fashion-MNIST folder. Any other word after the language is
an error, so a misspelt marker cannot hide an example."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import REPEVAL, SOURCE_DIR, Suite  # noqa: E402

FENCE = re.compile(r"^(`{3,})([^`\n]*)\n(.*?)^\1[ \t]*$", re.S | re.M)
MARKERS = {("yaml", "job"), ("sh", "run"), ("python", "run")}
# documents that must keep runnable examples (so the test cannot pass vacuously)
MUST_HAVE = {"README.md": {"job", "run"}, "docs/job-spec.md": {"job"}, "docs/getting-started.md": {"job", "run"}}


def blocks(path):
    text = open(path, encoding="utf-8").read()
    for m in FENCE.finditer(text):
        words = m.group(2).split()
        line = text.count("\n", 0, m.start()) + 1
        yield line, words, m.group(3)


def sandbox():
    d = tempfile.mkdtemp(prefix="repeval-docs-")
    demo = os.path.join(SOURCE_DIR, "jobs", "demo")
    os.symlink(os.path.join(SOURCE_DIR, "jobs"), os.path.join(d, "jobs"))
    os.symlink(os.path.join(SOURCE_DIR, "tools"), os.path.join(d, "tools"))
    os.symlink(os.path.join(demo, "checkpoints"), os.path.join(d, "checkpoints"))
    os.symlink(os.path.join(demo, "cnn.yaml"), os.path.join(d, "cnn.yaml"))
    os.makedirs(os.path.join(d, "build", "pipeline"))
    os.symlink(os.path.abspath(REPEVAL), os.path.join(d, "build", "pipeline", "repeval"))
    os.symlink(sys.executable, os.path.join(d, "build", "pipeline", "python3"))  # for `#!/usr/bin/env python3`
    return d


def env_for(d, code):
    e = dict(os.environ)
    e["PATH"] = os.path.join(d, "build", "pipeline") + os.pathsep + e.get("PATH", "")
    e.setdefault("FMNIST", "/usr/share/datasets/fashion-mnist")
    e["MPLBACKEND"] = "Agg"
    e.setdefault("OPENBLAS_NUM_THREADS", "1")
    if re.search(r"mpiexec|mpirun|repeval\s+run", code):
        # repeval run initialises MPI even on one process; as for the MPI tests, the
        # allocations of Open MPI's unloaded modules cannot be attributed by LeakSanitizer
        e["ASAN_OPTIONS"] = "detect_leaks=0"
    return e


def main():
    s = Suite()
    docs = ["README.md"] + sorted(os.path.join("docs", f) for f in os.listdir(os.path.join(SOURCE_DIR, "docs"))
                                  if f.endswith(".md"))
    total = 0
    for doc in docs:
        path = os.path.join(SOURCE_DIR, doc)
        found = set()
        work = None
        try:
            for line, words, body in blocks(path):
                if len(words) < 2:
                    continue
                where = f"{doc}:{line}"
                if (words[0], words[1]) not in MARKERS:
                    s.check(False, f"{where}: unknown marker '{' '.join(words)}' "
                                   "(yaml job NAME.yaml, sh run, python run)")
                    continue
                work = work or sandbox()
                kind = words[1]
                found.add(kind)
                total += 1
                t0 = time.monotonic()
                if words[0] == "yaml":
                    if not s.check(len(words) == 3 and re.fullmatch(r"[\w.-]+\.ya?ml", words[2]),
                                   f"{where}: a job block names its file: {' '.join(words)}"):
                        continue
                    with open(os.path.join(work, words[2]), "w") as f:
                        f.write(body)
                    cmd = [REPEVAL, "run", "--check", words[2]]
                elif words[0] == "sh":
                    cmd = ["bash", "-euo", "pipefail", "-c", body]
                else:
                    cmd = [sys.executable, "-c", body]
                p = subprocess.run(cmd, cwd=work, env=env_for(work, " ".join(cmd)), capture_output=True, text=True,
                                   timeout=900)
                print(f"{where}: {' '.join(words)}: exit {p.returncode} in {time.monotonic() - t0:.1f} s")
                for out_line in p.stdout.splitlines()[:12]:
                    print(f"    {out_line}")
                s.check(p.returncode == 0, f"{where}: {' '.join(words)} exits 0\n--- block:\n{body}"
                                           f"--- stdout:\n{p.stdout[-3000:]}\n--- stderr:\n{p.stderr[-3000:]}")
        finally:
            if work and not os.environ.get("REPEVAL_KEEP_TMP"):
                shutil.rmtree(work, ignore_errors=True)
            elif work:
                print(f"kept {work}")
        need = MUST_HAVE.get(doc, set())
        s.check(need <= found, f"{doc}: has runnable examples of kind {sorted(need)}; found {sorted(found)}")
    s.check(total >= 6, f"at least 6 runnable blocks in the docs: {total}")
    s.finish()


if __name__ == "__main__":
    main()
