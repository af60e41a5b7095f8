"""Helpers of the fault-injection tests: a `repeval run` job on the demo
checkpoints that takes long enough to be interrupted, runs under a real
mpiexec that can be watched and signalled, the pids of its ranks, folder
hashes, and metrics.csv as exact strings (for bitwise comparisons)."""
import csv
import hashlib
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "ref"))

from common import MPIEXEC, REPEVAL, SOURCE_DIR, Suite, tmpdir  # noqa: E402,F401 (re-exported)

FMNIST = os.environ.get("FMNIST", "/usr/share/datasets/fashion-mnist")
DEMO = os.path.join(SOURCE_DIR, "jobs", "demo")
# one BLAS thread per rank, as `repeval run` does by default: results are then
# bitwise reproducible for a fixed rank count
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ.pop("REPEVAL_CHECKPOINT_EVERY", None)


def job_text(out, n=1500, batch=50, extra_data="", analyses=None, extra=""):
    """Every demo checkpoint (3 seeds x 6 epochs) on n Fashion-MNIST test images."""
    if analyses is None:
        analyses = f"""  cka: {{batch: {batch}}}
  cka_exact: {{type: cka, estimator: exact, pairs: consecutive, checkpoints: ["seed0/*"]}}
  cca: {{methods: [svcca, pwcca], checkpoints: ["*/epoch_05"], variance: 0.99}}
  spectrum: {{}}
"""
    return f"""name: faults
data:
  fmnist:
    format: idx
    images: {FMNIST}/t10k-images-idx3-ubyte.gz
    labels: {FMNIST}/t10k-labels-idx1-ubyte.gz
    normalize: {{mean: [0.286], std: [0.353]}}
    limit: {n}
{extra_data}models:
  - name: cnn
    arch: {DEMO}/cnn.yaml
    checkpoints: "{DEMO}/checkpoints/seed{{0..2}}/epoch_{{00..05}}.*"
    layers: [conv1:mean, conv2:mean, pool2, fc1, fc2]
analyses:
{analyses}output: {{dir: {out}, bundle: true}}
{extra}"""


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


class Run:
    """`mpiexec -n K repeval run ...` in its own session, stderr in a file."""

    def __init__(self, ranks, args, log, env=None, cwd=None):
        e = dict(os.environ)
        e.update(env or {})
        self.log = log
        self.t0 = time.monotonic()
        self.f = open(log, "w")
        cmd = [MPIEXEC, "--oversubscribe", "-n", str(ranks), REPEVAL] + [str(a) for a in args] if ranks else \
            [REPEVAL] + [str(a) for a in args]
        self.p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.f, env=e, cwd=cwd,
                                  start_new_session=True)

    def text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def wait_for(self, pattern, timeout=300):
        """Wait until stderr matches `pattern` (a regex); False if the run ended first or on timeout."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if rx.search(self.text()):
                return True
            if self.p.poll() is not None:
                return bool(rx.search(self.text()))
            time.sleep(0.05)
        return False

    def ranks(self):
        """Pids of the repeval processes below this run, in rank order when tagged (oldest first)."""
        return [pid for pid, _ in sorted(descendants(self.p.pid, "repeval"), key=lambda x: x[1])]

    def wait(self, timeout):
        """Exit code, or None after killing the whole session when it did not end in time."""
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait()
            rc = None
        self.f.close()
        self.seconds = time.monotonic() - self.t0
        return rc


def descendants(root, name):
    """(pid, start time) of every process below `root` whose executable is `name`."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
            comm = st[st.index("(") + 1:st.rindex(")")]
            fields = st[st.rindex(")") + 2:].split()
            kids.setdefault(int(fields[1]), []).append((int(d), comm, int(fields[19])))
        except (OSError, ValueError):
            continue
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        for pid, comm, start in kids.get(p, []):
            todo.append(pid)
            if comm == name:
                out.append((pid, start))
    return out


def rank_of(pid):
    """MPI rank of a process, from Open MPI's environment."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        return int(env.get(b"OMPI_COMM_WORLD_RANK", b"-1"))
    except OSError:
        return -1


def wait_ranks(run, k, timeout=60):
    """{rank: pid} once all k ranks are up."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        pids = {rank_of(p): p for p in run.ranks()}
        if len(pids) == k and all(r >= 0 for r in pids):
            return pids
        time.sleep(0.05)
    return {}


def tree_hash(root):
    """sha256 over every path, type and content below root ('' if absent)."""
    if not os.path.exists(root):
        return ""
    h = hashlib.sha256()
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files) + [d + "/" for d in dirs]:
            p = os.path.join(dirpath, name.rstrip("/"))
            h.update(os.path.relpath(p, root).encode() + b"\0")
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def metrics(folder):
    """metrics.csv as {row key: (value string, status)}; values compared as text = bitwise."""
    with open(os.path.join(folder, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    key = ("analysis", "metric", "model_a", "checkpoint_a", "layer_a", "model_b", "checkpoint_b", "layer_b",
           "dataset", "param")
    return {tuple(r[k] for k in key): (r["value"], r["status"]) for r in rows}


def same_metrics(s, got_dir, want, what):
    """Check metrics.csv of got_dir equals `want` value for value (as text)."""
    try:
        got = metrics(got_dir)
    except OSError as e:
        return s.check(False, f"{what}: no metrics.csv ({e})")
    diff = [k for k in set(got) | set(want) if got.get(k) != want.get(k)]
    return s.check(not diff and len(want) > 50,
                   f"{what}: {len(diff)} of {len(want)} metric rows differ from the uninterrupted run "
                   f"(first: {sorted(diff)[:1]} {[got.get(k) for k in sorted(diff)[:1]]} vs "
                   f"{[want.get(k) for k in sorted(diff)[:1]]})")


def leftovers(parent, base):
    """Names of <base>.partial-* and <base>.old-* entries in parent."""
    return sorted(n for n in os.listdir(parent) if n.startswith(base + ".partial-") or n.startswith(base + ".old-"))


def flip_byte(path, offset):
    """XOR one byte of a file (offset from the start, or from the end if negative)."""
    with open(path, "r+b") as f:
        size = f.seek(0, 2)
        at = offset if offset >= 0 else size + offset
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0x5A]))
