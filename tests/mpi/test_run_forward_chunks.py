"""Each chunk of samples goes through a checkpoint's network once per rank that needs it
(run/run_pass.c): statistics batches of 200 samples over chunks of 256 span two chunks,
and a checkpoint's taps are made chunk after chunk for all its layers at once (taken
tap after tap, both chunks would be recomputed for every tap: 5x the forward work of
the demo job). The manifest's work.forward_chunks must equal the chunks overlapping each
rank's batch range times the checkpoints, summed over the ranks (--checkpoint-groups 1;
ranks 2i and 2i + 1 claim the batches of their two fixed ranges from both ends, so the
range is one of the splits of the pair's: each split's total is allowed), for a one-pass run (minibatch CKA, CCA, spectra) and for the two-pass CCA route, whose
second pass runs the CCA's checkpoints again; metrics.csv is byte-identical to the
single-process run's."""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))

from common import Suite, demo_job, mpirun, repeval, tmpdir  # noqa: E402

os.environ["OPENBLAS_NUM_THREADS"] = "1"
N, SB, CHUNK, CKPTS, CCA_CKPTS = 600, 200, 256, 6, 2


def job_text(d):
    return demo_job("chunks", N, "seed{0,1}/epoch_{00,03,05}.*", ["conv1:mean", "pool2", "fc1", "fc2"], f"""
analyses:
  cka: {{dataset: test, batch: {SB}}}
  cca: {{dataset: test, methods: [svcca, pwcca], checkpoints: ["*/epoch_05"], layers: [pool2, fc1, fc2]}}
  spectrum: {{dataset: test, layers: [fc1, fc2]}}
output: {{dir: {d}/out}}
""")


def rank_range(nb, rank, size):
    """tree_rank_range for fewer than 128 batches per rank: [nb r / R, nb (r + 1) / R)."""
    return nb * rank // size, nb * (rank + 1) // size


def chunks_of(k0, k1):
    """Chunks overlapping samples [k0 SB, k1 SB)."""
    if k1 <= k0:
        return 0
    s0, s1 = k0 * SB, min(k1 * SB, N)
    return (s1 - 1) // CHUNK - s0 // CHUNK + 1


def expected_one_pass(ranks):
    """The totals of every way the pairs of ranks can split their batches."""
    nb = (N + SB - 1) // SB
    totals = {0}
    for host in range(0, ranks, 2):
        lo, hi = rank_range(nb, host, ranks)[0], rank_range(nb, min(host + 1, ranks - 1), ranks)[1]
        if host + 1 < ranks:
            pair = {chunks_of(lo, m) + chunks_of(m, hi) for m in range(lo, hi + 1)}
        else:
            pair = {chunks_of(lo, hi)}
        totals = {t + c for t in totals for c in pair}
    return {t * CKPTS for t in totals}


def forward_chunks(out):
    with open(os.path.join(out, "manifest.json")) as f:
        return json.load(f).get("work", {}).get("forward_chunks")


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
        # 3 batches of 200 over chunks [0, 256) [256, 512) [512, 600): each chunk once per checkpoint
        got = forward_chunks(single)
        s.check(got == 3 * CKPTS, f"one process: forward_chunks {got}, expected {3 * CKPTS}")

        multi = os.path.join(d, "multi")
        rc, _, err = mpirun(k, "run", job, "--out", multi, "--quiet", "--checkpoint-groups", 1, timeout=600)
        if s.check(rc == 0, f"{k}-rank run: {err[-600:]}"):
            got, want = forward_chunks(multi), expected_one_pass(k)
            s.check(got in want, f"{k} ranks: forward_chunks {got}, expected one of {sorted(want)} (a chunk at a "
                                 f"rank boundary is made by both ranks)")
            with open(os.path.join(single, "metrics.csv"), "rb") as f1, open(os.path.join(multi, "metrics.csv"),
                                                                             "rb") as f2:
                s.check(f1.read() == f2.read(), f"metrics.csv byte-identical: single process and {k} ranks")

        # two-pass CCA (a budget below the exact state): the second pass runs the 2 CCA checkpoints
        # again, each chunk once for the three CCA layers
        two = os.path.join(d, "two")
        rc, _, err = mpirun(k, "run", job, "--out", two, "--quiet", "--checkpoint-groups", 1, "--max-stats-mb",
                            "20", timeout=600) if k > 1 else \
            repeval("run", job, "--out", two, "--quiet", "--max-stats-mb", "20", timeout=600)
        if s.check(rc == 0, f"{k} ranks, two-pass CCA: {err[-600:]}"):
            with open(os.path.join(two, "manifest.json")) as f:
                man = json.load(f)
            cca = [a for a in man.get("analyses", []) if a.get("name") == "cca"]
            s.check(cca and "two" in json.dumps(cca[0]), f"the CCA took the two-pass route: {cca}")
            got, firsts = forward_chunks(two), expected_one_pass(k)
            # the second stream's leaves split over the ranks like the batches: at most one
            # chunk more per rank boundary; a rank that took its batches backwards may find
            # the first chunk of its second stream still kept from the first (one fewer)
            seconds = [got - first for first in firsts] if got is not None else []
            lo = (3 - (k // 2 if k > 1 else 0)) * CCA_CKPTS
            s.check(any(lo <= second <= (3 + k - 1) * CCA_CKPTS for second in seconds),
                    f"{k} ranks, two-pass CCA: forward_chunks {got}: {seconds} in the second pass, expected "
                    f"{lo}..{(3 + k - 1) * CCA_CKPTS}")
    s.finish()


if __name__ == "__main__":
    main()
