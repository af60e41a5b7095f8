"""repeval run with K ranks: a run stopped by SIGUSR1 exits 75 and, run again,
resumes and gives bitwise the metrics of an uninterrupted run; an array split
(--part 0/2, --part 1/2, then `repeval merge`) gives bitwise the same metrics;
`repeval finalize` recomputes the same non-probe metrics from stats/ alone; a
rerun with the embedding cache reuses every shard and gives the same metrics,
also with float16 shards (then both runs agree with each other); with one rank,
the peak memory does not grow with the number of samples. With 2 and 3 ranks
the reduction spills every node but the last (REPEVAL_SPILL_MB=0)."""
import argparse
import csv
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))

from common import MPIEXEC, REPEVAL, SOURCE_DIR, Suite, repeval, tmpdir  # noqa: E402

FMNIST = os.environ.get("FMNIST", "/usr/share/datasets/fashion-mnist")
os.environ["OPENBLAS_NUM_THREADS"] = "1"
DEMO = os.path.join(SOURCE_DIR, "jobs", "demo")


def job_text(out, n=1500, batch=50, extra="", probe=True):
    probe_data = f"""
  train:
    format: idx
    images: {FMNIST}/train-images-idx3-ubyte.gz
    labels: {FMNIST}/train-labels-idx1-ubyte.gz
    normalize: {{mean: [0.286], std: [0.353]}}
    offset: 50000
    limit: 400""" if probe else ""
    probe_an = "  probe: {train: train, test: fmnist, grid: [1e-3, 1e-1, 2], layers: [fc1, fc2]}" if probe else ""
    return f"""
name: resume
data:
  fmnist:
    format: idx
    images: {FMNIST}/t10k-images-idx3-ubyte.gz
    labels: {FMNIST}/t10k-labels-idx1-ubyte.gz
    normalize: {{mean: [0.286], std: [0.353]}}
    limit: {n}{probe_data}
models:
  - name: cnn
    arch: {DEMO}/cnn.yaml
    checkpoints: "{DEMO}/checkpoints/seed0/epoch_{{00,03,05}}.*"
    layers: [conv1:mean, conv2:mean, fc1, fc2]
analyses:
  cka: {{dataset: fmnist, batch: {batch}}}
  cka_exact: {{type: cka, dataset: fmnist, estimator: exact, pairs: same-layer}}
  cca: {{dataset: fmnist, methods: [cca, svcca, pwcca, procrustes]}}
  spectrum: {{dataset: fmnist}}
{probe_an}
output: {{dir: {out}}}
{extra}
"""


def metrics(path):
    with open(path) as f:
        return {tuple(r[k] for k in ("analysis", "metric", "model_a", "checkpoint_a", "layer_a", "model_b",
                                     "checkpoint_b", "layer_b", "dataset", "param")): (r["value"], r["status"])
                for r in csv.DictReader(f)}


def launch(k, *args):
    cmd = ([MPIEXEC, "--oversubscribe", "-n", str(k)] if k > 1 else []) + [REPEVAL] + [str(a) for a in args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_k(k, *args, timeout=600):
    p = launch(k, *args)
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def same(s, a, b, what, skip=None):
    keys = [key for key in a if not (skip and skip(key))]
    diff = [key for key in keys if b.get(key) != a[key]]
    s.check(len(keys) > 50 and not diff and len(keys) == len([key for key in b if not (skip and skip(key))]),
            f"{what}: {len(keys)} rows, {len(diff)} differ{(': ' + str(diff[:2])) if diff else ''}")


def rank_pids(job):
    out = subprocess.run(["pgrep", "-f", f"{REPEVAL} run {job}"], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, required=True)
    k = ap.parse_args().ranks
    if k > 1:  # every reduction node but the last goes to the spill file: snapshots, parts and merge read it back
        os.environ["REPEVAL_SPILL_MB"] = "0"
    s = Suite()
    with tmpdir() as d:
        job = os.path.join(d, "job.yaml")
        out = os.path.join(d, "out")
        with open(job, "w") as f:
            f.write(job_text(out))
        rc, _, err = run_k(k, "run", job, "--quiet")
        if not s.check(rc == 0, f"uninterrupted run: {err}"):
            s.finish()
        ref = metrics(os.path.join(out, "metrics.csv"))
        s.check(not os.path.exists(out + ".state"), "no state folder after a complete run")

        # --- SIGUSR1 mid-run, then resume -------------------------------------------
        out2 = os.path.join(d, "out2")
        job2 = os.path.join(d, "job2.yaml")
        with open(job2, "w") as f:
            f.write(job_text(out2, n=4000, batch=50))
        rc, _, err = run_k(k, "run", job2, "--quiet")
        s.check(rc == 0, f"uninterrupted longer run: {err}")
        ref2 = metrics(os.path.join(out2, "metrics.csv"))
        os.rename(out2, out2 + ".uninterrupted")
        p = launch(k, "run", job2)
        err_lines = []
        sent = False
        t0 = time.time()
        while p.poll() is None and time.time() - t0 < 300:
            line = p.stderr.readline()
            err_lines.append(line)
            if not sent and re.search(r"dataset fmnist (\d+)/(\d+)", line):
                for pid in rank_pids(job2):
                    os.kill(pid, signal.SIGUSR1)
                sent = True
        rest = p.communicate(timeout=120)[1]
        err = "".join(err_lines) + rest
        s.check(sent and p.returncode == 75, f"SIGUSR1 mid-run exits 75 (rc {p.returncode})")
        s.check("resume" in err and os.path.isdir(out2 + ".state"), "the message says how to resume; state saved")
        s.check(not os.path.exists(out2), "no output folder from the interrupted run")
        rc, o, _ = repeval("status", out2)
        s.check(rc == 1 and re.search(r"of \d+ batches", o) and "interrupted" in o,
                f"repeval status shows the interrupted run: {o}")
        rc, _, err = run_k(k, "run", job2)
        s.check(rc == 0 and "resuming dataset fmnist" in err, f"rerun resumes: {err[-300:]}")
        if rc == 0:
            same(s, ref2, metrics(os.path.join(out2, "metrics.csv")), "resumed run = uninterrupted run (bitwise)")
            man = json.load(open(os.path.join(out2, "manifest.json")))
            s.check(man["resumed"] is True, "manifest records the resume")
            rc, o, _ = repeval("status", out2)
            s.check(rc == 0 and "complete" in o and "(resumed)" in o, f"repeval status after the resume: {o}")

        # --- array parts and merge -------------------------------------------------------
        for part in ("0/2", "1/2"):
            rc, _, err = run_k(k, "run", job, "--part", part, "--out", os.path.join(d, "arr"), "--quiet")
            s.check(rc == 0, f"part {part}: {err}")
        s.check(not os.path.exists(os.path.join(d, "arr")), "parts write no output folder")
        rc, _, err = repeval("merge", job, "--out", os.path.join(d, "arr"), "--quiet", timeout=600)
        if s.check(rc == 0, f"merge: {err}"):
            same(s, ref, metrics(os.path.join(d, "arr", "metrics.csv")), "2 parts + merge = one run (bitwise)")
        rc, _, err = repeval("merge", job, "--out", os.path.join(d, "nothing"), timeout=120)
        s.check(rc == 1 and "no statistics of array parts" in err, f"merge without parts fails clearly: {err}")

        # --- finalize from stats/ ----------------------------------------------------------
        rc, _, err = repeval("finalize", job, "--quiet", timeout=600)
        if s.check(rc == 0, f"finalize: {err}"):
            same(s, ref, metrics(os.path.join(out, "metrics.csv")), "finalize = run (non-probe rows)",
                 skip=lambda key: key[0] == "probe")
            man = json.load(open(os.path.join(out, "manifest.json")))
            s.check(man["mode"] == "finalize" and any("probes are not recomputed" in w for w in man["warnings"]),
                    "finalize says probes need the cache")

        # --- embedding cache -------------------------------------------------------------
        for dtype in ("float32", "float16"):
            cdir = os.path.join(d, "cache-" + dtype)
            jc = os.path.join(d, f"job-{dtype}.yaml")
            oc = os.path.join(d, "out-" + dtype)
            with open(jc, "w") as f:
                f.write(job_text(oc, extra=f"cache: {{dir: {cdir}, dtype: {dtype}}}"))
            rc, _, err = run_k(k, "run", jc, "--quiet")
            s.check(rc == 0, f"run with a {dtype} cache: {err}")
            first = metrics(os.path.join(oc, "metrics.csv"))
            m1 = json.load(open(os.path.join(oc, "manifest.json")))
            rc, _, err = run_k(k, "run", jc, "--quiet")
            s.check(rc == 0, f"rerun from the {dtype} cache: {err}")
            m2 = json.load(open(os.path.join(oc, "manifest.json")))
            s.check(m1["cache"]["writes"] > 0 and m2["cache"]["hits"] > 0 and m2["cache"]["writes"] == 0,
                    f"{dtype}: first run writes, rerun only reads ({m1['cache']} then {m2['cache']})")
            same(s, first, metrics(os.path.join(oc, "metrics.csv")), f"{dtype} cache rerun = first run (bitwise)")
            if dtype == "float32":
                same(s, ref, first, "a run with the float32 cache = a run without (bitwise)")

        # --- memory flat in n (one rank) ---------------------------------------------------
        if k == 1:
            rss = []
            for n in (1000, 8000):
                jm = os.path.join(d, f"mem{n}.yaml")
                with open(jm, "w") as f:
                    f.write(job_text(os.path.join(d, f"mem{n}"), n=n, batch=100, probe=False))
                code = ("import resource, subprocess, sys; "
                        f"r = subprocess.run([{REPEVAL!r}, 'run', {jm!r}, '--quiet']).returncode; "
                        "print(r, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
                o = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split()
                rss.append(int(o[1]) if o and o[0] == "0" else -1)
            s.check(rss[0] > 0 and rss[1] <= rss[0] * 1.15 + 4096,
                    f"peak RSS flat in n: {rss[0]} KiB at n=1000, {rss[1]} KiB at n=8000")
    s.finish()


if __name__ == "__main__":
    main()
