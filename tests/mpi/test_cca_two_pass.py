"""The two-pass route of the cca analysis (docs/job-spec.md#cca): six synthetic taps
(two checkpoints of an activations model, widths 24, 40 and 16, low-rank signal
plus noise, n = 600), all pairs.

- passes: 2 gives the exact route's SVCCA to 1e-9 relative (the same directions;
  only rounding differs), and PWCCA equal to NumPy's PWCCA of the principal-component
  scores that SVCCA keeps, to 1e-8;
- passes: auto with a budget below the exact state (--max-stats-mb) takes the
  two-pass route (manifest), and caps the directions per tap at the most whose
  projected state fits the budget;
- max_components caps the directions: SVCCA equals NumPy's CCA of the capped
  scores, and the manifest and a warning count the capped taps;
- metrics.csv of the two-pass route is byte-identical at 1 and K ranks;
- what it cannot do is refused with a message: directions or uncertainty with
  passes: 2, or with passes: auto when the budget sends the analysis there.
"""
import argparse
import csv
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))

import numpy as np  # noqa: E402

from common import Suite, mpirun, repeval, tmpdir, write_activations  # noqa: E402
from test_cca_matches_numpy import cca_rho, centred, pwcca  # noqa: E402

N = 600
DIMS = {"h0": 24, "h1": 40, "h2": 16}


def make_taps(rng):
    """{(ckpt, tap): n x d float32}: a shared 6-dimensional signal, mixed per tap, plus noise."""
    z = rng.standard_normal((N, 6))
    taps = {}
    for c in range(2):
        for name, d in DIMS.items():
            mix = rng.standard_normal((6, d)) * np.linspace(3, 0.5, 6)[:, None]
            x = np.tanh(z @ mix / 3) + 0.3 * rng.standard_normal((N, d)) + 5.0
            taps[(c, name)] = x.astype(np.float32)
    return taps


def write_job(d, name, cca):
    path = os.path.join(d, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(f"""name: {name}
data:
  d: {{format: npy, inputs: x.npy, labels: y.npy}}
forward: {{batch: 64}}
models:
  - {{name: m, activations: "acts/c*", layers: [h0, h1, h2]}}
analyses:
  cca: {{dataset: d, pairs: all, {cca}}}
output: {{dir: out_{name}}}
""")
    return path


def tap_index(ckpt, layer):
    """Global tap index of checkpoint label c<k> and layer h<j> (checkpoints, then layers)."""
    return int(ckpt.lstrip("c")) * len(DIMS) + list(DIMS).index(layer)


def rows(d, name):
    """{(metric, tap a, tap b): row} of the cca rows."""
    with open(os.path.join(d, f"out_{name}", "metrics.csv")) as f:
        return {(r["metric"], tap_index(r["checkpoint_a"], r["layer_a"]), tap_index(r["checkpoint_b"], r["layer_b"])): r
                for r in csv.DictReader(f) if r["analysis"] == "cca"}


def manifest(d, name):
    with open(os.path.join(d, f"out_{name}", "manifest.json")) as f:
        return json.load(f)


def metrics_bytes(d, name):
    with open(os.path.join(d, f"out_{name}", "metrics.csv"), "rb") as f:
        return f.read()


def scores(x, frac=0.99, cap=0):
    """SVCCA's principal-component scores of x: the fewest reaching frac of the variance, at most cap."""
    xc = centred(x)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    k = int(np.searchsorted(np.cumsum(s ** 2) / np.sum(s ** 2), frac - 1e-15) + 1)
    k = min(k, cap) if cap else k
    return xc @ vt[:k].T, k


def run_ok(s, d, *args, ranks=1):
    cmd = ["run", *args, "--quiet"]
    rc, out, err = mpirun(ranks, *cmd) if ranks > 1 else repeval(*cmd)
    return s.check(rc == 0, f"repeval {' '.join(cmd)} at {ranks} ranks: {err}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, required=True)
    k = ap.parse_args().ranks
    s = Suite()
    rng = np.random.default_rng(5)
    taps = make_taps(rng)
    order = [(c, name) for c in range(2) for name in DIMS]  # global tap order
    with tmpdir() as d:
        write_activations(d, {(f"c{c}", name): x for (c, name), x in taps.items()}, N)
        os.chdir(d)
        jobs = {"one": "methods: [svcca, pwcca], passes: 1", "two": "methods: [svcca, pwcca], passes: 2",
                "auto": "methods: [svcca, pwcca]", "cap": "methods: [svcca], passes: 2, max_components: 3"}
        for name, cca in jobs.items():
            write_job(d, name, cca)
        ok = run_ok(s, d, "one.yaml") and run_ok(s, d, "two.yaml", ranks=k)
        ok = run_ok(s, d, "auto.yaml", "--max-stats-mb", "0.15") and ok
        ok = run_ok(s, d, "cap.yaml", ranks=k) and ok
        if not ok:
            s.finish()
        one, two = rows(d, "one"), rows(d, "two")
        s.check(len(one) == 30 and set(one) == set(two), f"15 pairs x 2 metrics on both routes ({len(one)}, {len(two)})")
        for key, r in one.items():
            if key[0] == "svcca":
                s.close(float(two[key]["value"]), float(r["value"]), 1e-9, f"svcca {key} two-pass vs exact")
            else:
                x, y = taps[order[key[1]]].astype(np.float64), taps[order[key[2]]].astype(np.float64)
                want = pwcca(scores(x)[0], scores(y)[0])
                s.close(float(two[key]["value"]), want, 1e-8, f"pwcca {key} two-pass vs NumPy on the scores")
                s.check(abs(float(r["value"]) - want) > 1e-6, f"pwcca {key}: the projected value is not the exact one")
        m2, ma, mc = manifest(d, "two"), manifest(d, "auto"), manifest(d, "cap")
        a2, aa, ac = m2["analyses"][0], ma["analyses"][0], mc["analyses"][0]
        auto_cap = aa.get("max_components", 0)
        for name, c in (("cap", 3), ("auto", auto_cap)):
            for key, r in rows(d, name).items():
                if key[0] != "svcca":
                    continue
                x, y = taps[order[key[1]]].astype(np.float64), taps[order[key[2]]].astype(np.float64)
                want = float(np.mean(cca_rho(scores(x, cap=c)[0], scores(y, cap=c)[0])))
                s.close(float(r["value"]), want, 1e-9, f"{name}: svcca {key} capped at {c} vs NumPy")
                s.check(f"max_components={c}" in r["param"], f"{name}: param names the cap: {r['param']}")
        s.check(manifest(d, "one")["analyses"][0]["route"] == "one-pass", "passes: 1 is the one-pass route")
        s.check(a2["route"] == "two-pass" and aa["route"] == "two-pass", f"auto under a small budget: {aa}")
        s.check(a2["max_components"] == 0 and a2["taps_capped"] == 0, f"passes: 2 in the default budget: {a2}")
        # 10 copies of the projected state within 0.15 MB: 6 taps of 9 directions fit, of 10 do not
        s.check(auto_cap == 9 and aa["projected_state_mb"] <= 0.15, f"auto's cap fits the budget: {aa}")
        want_k = [scores(taps[t].astype(np.float64))[1] for t in order]
        s.check(a2["components_min"] == min(want_k) and a2["components_max"] == max(want_k),
                f"components {a2['components_min']}..{a2['components_max']}, NumPy {min(want_k)}..{max(want_k)}")
        s.check(ac["taps_capped"] == sum(kk > 3 for kk in want_k) and ac["components_max"] == 3, f"capped: {ac}")
        s.check(any("max_components" in w for w in mc["warnings"]), f"a warning names the cap: {mc['warnings']}")
        # byte-identical at 1 and K ranks
        if k > 1:
            b2 = metrics_bytes(d, "two")
            if run_ok(s, d, "two.yaml"):
                s.check(metrics_bytes(d, "two") == b2, f"two-pass metrics.csv identical at 1 and {k} ranks")
        # refusals
        for name, cca, want in [
                ("dirs", "passes: 2, directions: true", "no canonical directions and no uncertainty"),
                ("unc", "passes: 2, uncertainty: {replicates: 5}", "no canonical directions and no uncertainty"),
                ("auto_unc", "uncertainty: {replicates: 5}", "the two-pass route has no canonical directions")]:
            write_job(d, name, cca)
            rc, out, err = repeval("run", f"{name}.yaml", "--quiet", "--max-stats-mb", "0.15")
            s.check(rc != 0 and want in err and "cca" in err, f"{name}: exit {rc}, {err.strip()}")
            s.check(not os.path.exists(os.path.join(d, f"out_{name}")), f"{name}: no output written")
    s.finish()


if __name__ == "__main__":
    main()
