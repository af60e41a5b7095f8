"""Shared pieces of the benchmark harness: the run context (paths, sizes, threads),
child processes measured with wait4 (wall time, CPU time, peak RSS), result rows."""
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time

PYTHON = os.environ.get("REPEVAL_PYTHON", "/usr/bin/python3")
HARNESS = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HARNESS)
ROOT = os.path.dirname(BENCH)


@dataclasses.dataclass
class Proc:
    rc: int
    out: str
    err: str
    wall: float      # seconds
    cpu: float       # user + system seconds of the process and its waited-for children
    rss_mb: float    # peak resident set size of the largest process in the tree, MB

    def json(self):
        """The last line of stdout that parses as a JSON object."""
        for line in reversed(self.out.strip().splitlines()):
            line = line.strip()
            if line.startswith("{"):
                return json.loads(line)
        raise ValueError(f"no JSON object in output: {self.out[-500:]!r}")


class Failure(Exception):
    """A scenario could not run or a check could not be made."""


def thread_env(threads, extra=None):
    """Environment with every BLAS / OpenMP thread knob set to `threads`."""
    env = dict(os.environ)
    for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(threads)
    env.update({"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                "OMPI_MCA_rmaps_base_oversubscribe": "1", "REPEVAL_LOG": "error"})
    if extra:
        env.update(extra)
    return env


def run_proc(cmd, env=None, cwd=None, timeout=None, check=True):
    """Run cmd to completion; reap it with wait4 to get its CPU time and peak RSS."""
    cmd = [str(c) for c in cmd]
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe, env=env, cwd=cwd)
        deadline = None if timeout is None else t0 + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if deadline and time.perf_counter() > deadline:
                p.kill()
                pid, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.005)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read().decode(errors="replace"), fe.read().decode(errors="replace")
    r = Proc(p.returncode, out, err, wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0)
    if check and r.rc != 0:
        raise Failure(f"{' '.join(cmd[:6])}{' ...' if len(cmd) > 6 else ''} exited {r.rc}: {r.err.strip()[-800:]}")
    return r


def run_python(script, args, threads, **kw):
    """A peer script of bench/peers with the thread count fixed."""
    return run_proc([PYTHON, os.path.join(BENCH, "peers", script)] + list(args), env=thread_env(threads), **kw)


@dataclasses.dataclass
class Row:
    scenario: str
    case: str
    metric: str                 # what the numbers are: "wall s", "images/s", "GFLOP/s", ...
    repeval: float
    reference: float = float("nan")
    reference_name: str = ""
    ratio: float = float("nan")  # speed-up of repeval (>1: faster), or as ratio_kind says
    goal: str = ""
    goal_met: str = ""           # yes / no / "" (no goal)
    check: str = ""              # what agreement was checked, with its tolerance and the measured error
    check_ok: str = ""           # yes / no / ""
    repeval_rss_mb: float = float("nan")
    reference_rss_mb: float = float("nan")
    threads: int = 1
    notes: str = ""
    ratio_kind: str = "x"        # "x": speed-up or rate ratio; "%": fraction (of a peak); "/": plain quotient
    load: float = dataclasses.field(default_factory=lambda: round(os.getloadavg()[0], 2))  # 1-min load when recorded


class Context:
    """Everything a scenario needs: build products, sizes for quick/full, scratch space."""

    def __init__(self, build_dir, quick, data_dir, threads2=True):
        self.build = os.path.abspath(build_dir)
        self.quick = quick
        self.data = os.path.abspath(data_dir)
        os.makedirs(self.data, exist_ok=True)
        self.threads2 = threads2
        self.repeval = os.path.join(self.build, "pipeline", "repeval")
        self.drivers = {n: os.path.join(self.build, "bench", f"bench_{n}")
                        for n in ("gemm_peak", "hsic_stage", "comoments_finalize")}
        self.bench_datasets = os.path.join(self.build, "tests", "bench_datasets")
        self.shared = {}  # numbers one scenario passes to another (GEMM peak, forward rate)
        for p in [self.repeval] + list(self.drivers.values()):
            if not os.access(p, os.X_OK):
                raise Failure(f"{p} is missing: build with -DREPEVAL_BENCH=ON (bench/run does)")

    def scratch(self, name):
        d = os.path.join(self.data, "scratch", name)
        os.makedirs(d, exist_ok=True)
        return d


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def mem_available_mb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")
