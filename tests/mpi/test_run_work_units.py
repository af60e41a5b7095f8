"""The streaming stage's work units (run/run_work.c): with checkpoint groups, teams of G
ranks split a batch's forward passes by checkpoint and exchange the taps, so ranks
beyond the number of batches still work. A job of 9 demo checkpoints on 2 statistics
batches (and a probe's 3 training batches) run with K ranks: automatically (3 ranks:
3 groups, every rank runs 3 checkpoints; 2 ranks: one rank per test batch, but 2 groups
for the 3 training batches, which one rank each would split 2 + 1), and with
--checkpoint-groups K forced; metrics.csv (minibatch and exact CKA, RBF CKA, the CCA
family, spectra, a logistic probe) and the CKA matrices are byte-identical to the
single-process run, and the manifest records the layout. A group count that does not
divide the ranks is refused with a message naming the option."""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))

from common import Suite, demo_job, mpirun, repeval, tmpdir  # noqa: E402

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # one BLAS thread per rank, as repeval run's default
N = 200


def job_text(d):
    return demo_job("units", N, "seed{0..2}/epoch_{00,03,05}.*", ["conv1:mean", "pool2", "fc1", "fc2"], f"""
analyses:
  cka: {{dataset: test, batch: 100}}
  cka_rbf: {{type: cka, dataset: test, kernel: rbf, batch: 100, pairs: same-layer, sigma_sample: 100}}
  cka_exact: {{type: cka, dataset: test, estimator: exact, pairs: consecutive, checkpoints: ["seed0/*"]}}
  cca: {{dataset: test, methods: [svcca, pwcca], checkpoints: ["*/epoch_05"], layers: [conv1, fc1, fc2]}}
  spectrum: {{dataset: test}}
  probe: {{kind: logistic, train: train, test: test, grid: [1e-2, 1, 2], layers: [fc2]}}
forward: {{batch: 100}}
output: {{dir: {d}/out}}
""", train=(50000, 300))


def same_files(s, a, b, what):
    for name in ("metrics.csv", "cka_cka.npy", "cka_cka_rbf.npy", "spectrum_spectrum.npy"):
        with open(os.path.join(a, name), "rb") as f1, open(os.path.join(b, name), "rb") as f2:
            s.check(f1.read() == f2.read(), f"{name} byte-identical: single process and {what}")


def groups_of(out):
    man = json.load(open(os.path.join(out, "manifest.json")))
    return man.get("work", {}).get("checkpoint_groups"), man.get("work", {}).get("teams")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, required=True)
    k = ap.parse_args().ranks
    s = Suite()
    with tmpdir() as d:
        job = os.path.join(d, "job.yaml")
        with open(job, "w") as f:
            f.write(job_text(d))
        single = os.path.join(d, "single")
        rc, _, err = repeval("run", job, "--out", single, "--quiet", timeout=600)
        if not s.check(rc == 0, f"single-process run: {err[-600:]}"):
            s.finish()
        s.check(groups_of(single) == (1, 1), f"one process: one group, one team: {groups_of(single)}")
        with open(os.path.join(single, "metrics.csv")) as f:
            analyses = {line.split(",")[0] for line in f.readlines()[1:]}
        s.check(analyses == {"cka", "cka_rbf", "cka_exact", "cca", "spectrum", "probe"}, f"analyses: {analyses}")

        # automatic: 2 test batches and 3 training batches over K ranks (the manifest: the most groups of a pass)
        auto = os.path.join(d, "auto")
        rc, _, err = mpirun(k, "run", job, "--out", auto, "--quiet", timeout=600)
        if s.check(rc == 0, f"{k}-rank run: {err[-600:]}"):
            want = {1: (1, 1), 2: (2, 1), 3: (3, 1)}.get(k)
            s.check(want is None or groups_of(auto) == want, f"{k} ranks, 2 and 3 batches: layout {groups_of(auto)}, "
                                                             f"expected {want}")
            same_files(s, single, auto, f"{k} ranks, automatic layout {groups_of(auto)}")

        if k > 1:  # every rank of one team: each runs a K-th of the checkpoints on every batch
            forced = os.path.join(d, "forced")
            rc, _, err = mpirun(k, "run", job, "--out", forced, "--quiet", "--checkpoint-groups", k, timeout=600)
            if s.check(rc == 0, f"{k} ranks, --checkpoint-groups {k}: {err[-600:]}"):
                s.check(groups_of(forced) == (k, 1), f"forced layout: {groups_of(forced)}")
                same_files(s, single, forced, f"{k} ranks in {k} checkpoint groups")

        # a group count that does not divide the ranks: refused, nothing written
        bad = os.path.join(d, "bad")
        args = ("run", job, "--out", bad, "--quiet", "--checkpoint-groups", k + 1)
        rc, _, err = mpirun(k, *args, timeout=600) if k > 1 else repeval(*args, timeout=600)
        s.check(rc != 0 and f"expected 'auto' or a divisor of the {k} ranks" in err and "--checkpoint-groups" in err,
                f"--checkpoint-groups {k + 1} with {k} ranks: exit {rc}: {err[-400:]}")
        s.check(not os.path.exists(bad), "no output folder after the refused run")
    s.finish()


if __name__ == "__main__":
    main()
