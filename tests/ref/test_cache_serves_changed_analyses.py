"""The embedding cache is keyed by chunks of samples, not by the analyses: a job run
once with exact CKA and spectra fills the cache; the same job with its analyses
changed (a first minibatch CKA with batch 100, then its batch changed to 60, a CCA
with another variance) runs again with every tap from the cache, no forward pass
(cache writes 0, hits > 0), and the analysis both runs share gives the same values
to 1e-12 relative (the same taps; a minibatch CKA's batch becomes the statistics
batch, so the co-moments are summed in another order; docs/job-spec.md, "Embedding
cache")."""
import csv
import json
import os

from common import Suite, demo_job, repeval, tmpdir

N = 300
LAYERS = ["conv2:mean", "fc1", "fc2"]
CKPTS = ["seed0/epoch_00.safetensors", "seed1/epoch_05.pt"]


def run(s, d, name, analyses):
    path = os.path.join(d, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(demo_job(name, N, CKPTS, LAYERS,
                         f"analyses:\n{analyses}forward: {{batch: 50}}\n"
                         f"cache: {{dir: {d}/cache, chunk: 100}}\noutput: {{dir: {d}/out_{name}}}\n"))
    rc, _, err = repeval("run", path, "--quiet")
    if not s.check(rc == 0, f"{name}: exit {rc}: {err}"):
        return None, None
    with open(os.path.join(d, f"out_{name}", "manifest.json")) as f:
        man = json.load(f)
    with open(os.path.join(d, f"out_{name}", "metrics.csv")) as f:
        rows = [r for r in csv.DictReader(f)]
    return man, rows


def exact_rows(rows):
    return {(r["metric"], r["checkpoint_a"], r["layer_a"], r["checkpoint_b"], r["layer_b"]): float(r["value"])
            for r in rows if r["analysis"] == "exact"}


def same(a, b):
    return a and set(a) == set(b) and all(abs(a[k] - b[k]) <= 1e-12 * max(abs(a[k]), abs(b[k])) for k in a)


def main():
    s = Suite()
    with tmpdir() as d:
        first = "  exact: {type: cka, estimator: exact, pairs: all}\n  spectrum: {}\n"
        m1, r1 = run(s, d, "first", first)
        if m1:
            s.check(m1["cache"]["writes"] > 0, f"the first run fills the cache: {m1['cache']}")
        for name, more in (("minibatch", "  mb: {type: cka, batch: 100, pairs: all}\n"),
                           ("rebatched", "  mb: {type: cka, batch: 60, pairs: all}\n"
                                         "  cca: {methods: [svcca], variance: 0.9}\n")):
            m, r = run(s, d, name, first + more)
            if not (m and m1):
                continue
            s.check(m["cache"]["writes"] == 0 and m["cache"]["hits"] > 0,
                    f"{name}: every tap from the cache, no forward pass: {m['cache']}")
            s.check(same(exact_rows(r), exact_rows(r1)), f"{name}: the shared analysis, the same values")
            s.check(any(x["analysis"] == "mb" for x in r), f"{name}: the new analysis has rows")
    s.finish()


if __name__ == "__main__":
    main()
