"""All-pairs SVCCA/PWCCA of many wide taps by the cca analysis' two-pass route:
`repeval run` of an activations model (synthetic exports, C checkpoints x L layers
of width 512), pairs: all, with the default statistics budget (8 192 MB), on 2
ranks. The exact state (every 512 x 512 block of every pair) does not fit the
budget at full size, so passes: auto takes the two-pass route. Reported: wall time,
peak RSS per rank against the 4 GB goal, whether the reduction spilled (its debug
log), the route and directions kept (manifest). A smaller case where both routes
fit checks the two-pass SVCCA against the exact one-pass value (goal 1e-6).

Full size is the issue's: 100 taps x 512, n = 100 000 (20 GB of exports, written
once into the data folder); quick: 20 taps, n = 20 000."""
import csv
import hashlib
import json
import os

import numpy as np

from common import Failure, Row, log, run_proc, thread_env
import data

WIDTH = 512
GOAL_MB = 4096
TOL = 1e-6


def sizes(quick):
    return {"checkpoints": 4, "layers": 5, "n": 20000} if quick else {"checkpoints": 10, "layers": 10, "n": 100000}


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def exports(folder, checkpoints, layers, n, seed=3, latent=24):
    """Activation exports of `layers` taps of width 512 for each of `checkpoints`
    checkpoints: a shared latent signal of decaying scale mixed per tap, plus noise."""
    params = {"kind": "cca2_exports", "checkpoints": checkpoints, "layers": layers, "n": n, "seed": seed,
              "latent": latent, "width": WIDTH}
    if data._stamp_ok(folder, params):
        return folder
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    np.save(os.path.join(folder, "x.npy"), np.zeros((n, 1), np.float32))
    np.save(os.path.join(folder, "y.npy"), np.zeros(n, np.int64))
    files = [{"name": f, "bytes": os.path.getsize(os.path.join(folder, f)), "sha256": sha(os.path.join(folder, f))}
             for f in ("x.npy", "y.npy")]
    z = rng.standard_normal((n, latent), dtype=np.float32) * np.geomspace(4, 0.5, latent).astype(np.float32)
    for c in range(checkpoints):
        base = os.path.join(folder, "acts", f"c{c:02d}", "d")
        taps = []
        for l in range(layers):
            os.makedirs(os.path.join(base, f"l{l}.flatten"), exist_ok=True)
            mix = rng.standard_normal((latent, WIDTH), dtype=np.float32) / np.sqrt(latent)
            x = z @ mix + 0.05 * rng.standard_normal((n, WIDTH), dtype=np.float32)
            np.save(os.path.join(base, f"l{l}.flatten", "0.npy"), x.astype(np.float32))
            taps.append({"name": f"l{l}", "mode": "flatten", "dim": WIDTH, "rows_per_sample": 1, "dtype": "float32",
                         "shards": [{"file": f"l{l}.flatten/0.npy", "first": 0, "count": n}]})
        np.save(os.path.join(base, "sample_ids.npy"), np.arange(n, dtype=np.int64))
        man = {"format": "repeval-activations", "version": 1, "producer": "bench cca2",
               "dataset": {"name": "d", "format": "npy", "files": files, "normalize": None, "count": n},
               "samples": {"ids": "sample_ids.npy", "count": n}, "taps": taps}
        with open(os.path.join(base, "activations.json"), "w") as f:
            json.dump(man, f)
    data._write_stamp(folder, params)
    return folder


def job(folder, name, layers, passes):
    path = os.path.join(folder, f"{name}.yaml")
    with open(path, "w") as f:
        json.dump({"name": name, "data": {"d": {"format": "npy", "inputs": "x.npy", "labels": "y.npy"}},
                   "forward": {"batch": 1024},
                   "models": [{"name": "m", "activations": "acts/c*", "layers": [f"l{l}" for l in range(layers)]}],
                   "analyses": {"cca": {"dataset": "d", "methods": ["svcca", "pwcca"], "pairs": "all",
                                        "passes": passes}},
                   "output": {"dir": f"out_{name}"}}, f, indent=1)
    return path


def run_job(ctx, folder, name, ranks):
    """repeval run under mpiexec; (Proc, manifest, svcca rows, spilled?)."""
    out = os.path.join(folder, f"out_{name}")
    cmd = ["mpiexec", "--oversubscribe", "-n", ranks, ctx.repeval, "run", f"{name}.yaml", "--out", out, "--quiet",
           "--fresh"]
    # waiting nodes of the first pass (per-tap covariances) stay in memory; the debug log names any spill
    p = run_proc(cmd, cwd=folder, env=thread_env(1, {"REPEVAL_LOG": "debug", "REPEVAL_SPILL_MB": "2048"}))
    with open(os.path.join(out, "manifest.json")) as f:
        man = json.load(f)
    with open(os.path.join(out, "metrics.csv")) as f:
        vals = {(r["checkpoint_a"], r["layer_a"], r["checkpoint_b"], r["layer_b"]): float(r["value"])
                for r in csv.DictReader(f) if r["metric"] == "svcca"}
    return p, man, vals, "spill file" in p.err


def run(ctx):
    sz = sizes(ctx.quick)
    C, L, n = sz["checkpoints"], sz["layers"], sz["n"]
    rows = []
    # the check: both routes where the exact one fits (4 x 5 taps, n = 20 000)
    small = exports(os.path.join(ctx.data, "cca2_C4_L5_n20000"), 4, 5, 20000)
    log("  cca2: exact and two-pass routes, 20 taps x 512, n = 20000")
    job(small, "one", 5, "1")
    job(small, "two", 5, "2")
    exact, two = run_job(ctx, small, "one", 2)[2], run_job(ctx, small, "two", 2)[2]
    if set(exact) != set(two) or not exact:
        raise Failure(f"cca2: the routes wrote different pairs ({len(exact)} vs {len(two)})")
    diff = max(abs(exact[k] - two[k]) for k in exact)
    # the size on the two-pass route, chosen by passes: auto
    folder = exports(os.path.join(ctx.data, f"cca2_C{C}_L{L}_n{n}"), C, L, n)
    log(f"  cca2: {C * L} taps x {WIDTH}, n = {n}, passes: auto, 2 ranks")
    job(folder, "auto", L, "auto")
    p, man, vals, spilled = run_job(ctx, folder, "auto", 2)
    a = man["analyses"][0]
    P = C * L
    ok = p.rss_mb <= GOAL_MB and not spilled
    rows.append(Row("cca2", f"all-pairs SVCCA + PWCCA, {P} taps x {WIDTH}, {P * (P - 1) // 2} pairs, n={n}, 2 ranks",
                    "peak RSS MB / rank", p.rss_mb, GOAL_MB, "goal", GOAL_MB / p.rss_mb, f"<= {GOAL_MB} MB, no spill",
                    "yes" if ok else "no", f"two-pass SVCCA vs exact (20 taps, n=20000): max |diff| {diff:.1e} "
                    f"(tol {TOL:g})", "yes" if diff <= TOL else "no", repeval_rss_mb=p.rss_mb,
                    notes=f"route {a['route']} (exact state {a['exact_state_mb']:.0f} MB); " + (
                        f"directions per tap {a['components_min']}..{a['components_max']}, cap {a['max_components']}, "
                        f"{a['taps_capped']} taps capped; projected state {a['projected_state_mb']:.0f} MB "
                        f"(budgeted copies); second pass {a['second_pass_seconds']:.1f} s over "
                        f"{a['second_pass_leaves']} leaves; " if a["route"] == "two-pass" else "") +
                    f"wall {p.wall:.1f} s; reduction spilled: {'yes' if spilled else 'no'}; {len(vals)} svcca rows"))
    return rows
