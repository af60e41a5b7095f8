#!/usr/bin/python3
"""Run the benchmark scenarios (repeval and its reference peers on the same inputs,
in the same run), print the table and save bench/results/<date>-<quick|full>.csv
and bench/results/latest.md (with --only: <date>-<mode>-only-<scenarios>.csv and
latest-only-<scenarios>.md). Normally started by bench/run, which builds first.

usage: run.py --build-dir DIR [--quick] [--only a,b] [--data-dir DIR] [--no-2-threads]
              [--results-dir DIR] [--label TEXT] [--ranks 1,2,4,8,16]"""
import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "harness"))

from common import BENCH, ROOT, Context, Failure, Row, log, mem_available_mb  # noqa: E402
import report  # noqa: E402
import s_blas  # noqa: E402
import s_cca  # noqa: E402
import s_cca2  # noqa: E402
import s_cka  # noqa: E402
import s_e2e  # noqa: E402
import s_forward  # noqa: E402
import s_knn  # noqa: E402
import s_hf  # noqa: E402
import s_memory  # noqa: E402
import s_probe  # noqa: E402
import s_ranks  # noqa: E402
import s_read  # noqa: E402
import s_scaling  # noqa: E402
import s_unc  # noqa: E402

# order matters only for sharing: blas reuses the stage timings of cka, read compares with forward
SCENARIOS = [("cka", s_cka), ("blas", s_blas), ("cca", s_cca), ("cca2", s_cca2), ("forward", s_forward), ("probe", s_probe),
             ("read", s_read), ("e2e", s_e2e), ("memory", s_memory), ("ranks", s_ranks),
             ("scaling", s_scaling), ("unc", s_unc), ("knn", s_knn), ("hf", s_hf)]


def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) / 1024 / 1024
    load = os.getloadavg()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem, 1), "kernel": platform.release(),
            "load": f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"}


def git_rev():
    try:
        return subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--data-dir")
    ap.add_argument("--results-dir", default=os.path.join(BENCH, "results"))
    ap.add_argument("--no-2-threads", action="store_true")
    ap.add_argument("--label", default="")
    ap.add_argument("--ranks", default="", help="rank counts of the scaling scenario, e.g. 1,2,4,8,16")
    a = ap.parse_args()
    names = [n for n, _ in SCENARIOS]
    only = [s for s in a.only.split(",") if s]
    bad = [s for s in only if s not in names]
    if bad:
        sys.exit(f"bench: unknown scenario(s) {', '.join(bad)}; known: {', '.join(names)}")
    ctx = Context(a.build_dir, a.quick, a.data_dir or os.path.join(a.build_dir, "bench-data"),
                  threads2=not a.no_2_threads)
    ctx.ranks = [int(x) for x in a.ranks.split(",") if x]
    mode = "quick" if a.quick else "full"
    m = machine()
    log(f"bench ({mode}): {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, load {m['load']}, "
        f"{mem_available_mb():.0f} MB available")
    rows, failed = [], []
    t_start = time.perf_counter()
    for name, mod in SCENARIOS:
        if only and name not in only:
            continue
        log(f"[{name}]")
        t0 = time.perf_counter()
        try:
            new = mod.run(ctx)
        except Failure as e:
            failed.append(name)
            new = [Row(name, "scenario failed", "", float("nan"), check=str(e)[:400], check_ok="no")]
            log(f"  FAILED: {e}")
        except Exception:  # a harness bug: report it in the table and continue
            failed.append(name)
            tb = traceback.format_exc()
            log(tb)
            new = [Row(name, "scenario crashed", "", float("nan"), check=tb.strip().splitlines()[-1][:400],
                       check_ok="no")]
        log(f"  {name}: {time.perf_counter() - t0:.0f} s")
        rows += new
    total = time.perf_counter() - t_start
    stamp = datetime.datetime.now().strftime("%Y-%m-%d")
    os.makedirs(a.results_dir, exist_ok=True)
    # a run of some scenarios keeps its own files: latest.md and <date>-<mode>.csv stay whole runs
    part = "-only-" + "-".join(only) if only else ""
    csv_path = os.path.join(a.results_dir, f"{stamp}-{mode}{part}.csv")
    md_path = os.path.join(a.results_dir, f"latest{part}.md")
    report.write_csv(csv_path, rows)
    pk = ctx.shared.get("peak_1t", {})
    header = (f"# repeval benchmarks ({mode}, {stamp}, revision {git_rev()}{', ' + a.label if a.label else ''})\n\n"
              f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB RAM, Linux {m['kernel']}; "
              f"OpenBLAS: {pk.get('config', 'not measured')}. Load average at the end: {os.getloadavg()[0]:.2f} "
              f"(at the start: {m['load']}). Total time {total / 60:.1f} min.\n\n"
              "Ratios are speed-ups of repeval (reference time / repeval time, or repeval rate / reference rate); "
              "for the BLAS row, the fraction of the peak. Every repeval output was compared with its reference as "
              "the check column says.")
    md = report.markdown(rows, header)
    with open(md_path, "w") as f:
        f.write(md)
    print(md)
    log(f"bench: wrote {csv_path} and {md_path} in {total / 60:.1f} min")
    bad_checks = [r for r in rows if r.check_ok == "no"]
    sys.exit(1 if failed or bad_checks else 0)


if __name__ == "__main__":
    main()
