"""Peak memory of `repeval run` at n and 10 n samples (the design promises memory
independent of n): the demo CNN's 6 checkpoints of seed 0, minibatch CKA of all
pairs, SVCCA/PWCCA and spectra, on Fashion-MNIST training images (IDX .gz) and on
a generated .npy dataset of the same shape (memory-mapped input)."""
import math
import os

from common import Row, log
import jobs

GOAL = 1.10


def _job(data):
    return {"name": "memory", "data": {"d": data}, "models": [jobs.model("seed0/epoch_*.*")],
            "analyses": {"cka": {"estimator": "minibatch", "batch": 256, "pairs": "all"},
                         "cca": {"methods": ["svcca", "pwcca"], "pairs": "same-layer"}, "spectrum": {}},
            "output": {"dir": "unused", "bundle": False}}


def run(ctx):
    n = 500 if ctx.quick else 5000
    folder = ctx.scratch("memory")
    rows = []
    for kind in ("idx", "npy"):
        res = {}
        for m in (n, 10 * n):
            data = jobs.fmnist("train", m) if kind == "idx" else jobs.npy_images(folder, m)
            path = jobs.write(folder, f"{kind}_{m}", _job(data))
            log(f"  memory: {kind}, {m} samples")
            res[m] = jobs.run(ctx, path, f"{folder}/out_{kind}_{m}")
        (p1, m1), (p10, m10) = res[n], res[10 * n]
        ratio = p10.rss_mb / p1.rss_mb
        stats = os.path.join(folder, f"out_{kind}_{10 * n}", "stats")
        state_mb = sum(os.path.getsize(os.path.join(stats, f)) for f in os.listdir(stats)) / 1e6
        per_doubling = (p10.rss_mb - p1.rss_mb) / math.log2(10)
        what = "Fashion-MNIST train (IDX .gz, decompressed in memory)" if kind == "idx" else \
            ".npy float32 inputs (memory-mapped)"
        rows.append(Row("memory", f"peak RSS of repeval run, {what}: n={n} vs 10n={10 * n}", "MB", p10.rss_mb,
                        p1.rss_mb, f"same job at n={n}", ratio, f"RSS(10n)/RSS(n) <= {GOAL:.2f}",
                        "yes" if ratio <= GOAL else "no", repeval_rss_mb=p10.rss_mb, reference_rss_mb=p1.rss_mb,
                        ratio_kind="/",
                        notes=f"ratio column here is RSS(10n)/RSS(n), not a speed-up; growth {per_doubling:.0f} MB "
                              f"per doubling of n, the reduced statistics are {state_mb:.0f} MB: the canonical "
                              f"reduction tree keeps O(log2(batches)) partial states (pipeline/run/run_tree.c); wall "
                              f"{p1.wall:.1f} s vs {p10.wall:.1f} s; 6 checkpoints"))
    return rows
