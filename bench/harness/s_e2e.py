"""End to end: the demo job (jobs/demo/job.yaml: 18 checkpoints of the Fashion-MNIST
CNN, minibatch linear and RBF CKA, SVCCA/PWCCA, spectra, logistic probes) through
`repeval run` on one rank and one thread, wall time per stage from manifest.json.
--quick runs the same job with 500 test and 1000 probe-training images and 3 λ."""
import os

from common import Row, log
import jobs

STAGES = ("load", "embed_accumulate", "reduce", "finalize", "probes", "total")


def run(ctx):
    folder = ctx.scratch("e2e")
    if ctx.quick:
        job = {"name": "demo-quick",
               "data": {"fmnist": jobs.fmnist("t10k", 500),
                        "fmnist_train": jobs.fmnist("train", 1000, offset=50000)},
               "models": [jobs.model()],
               "analyses": {"cka": {"dataset": "fmnist", "kernel": "linear", "estimator": "minibatch", "batch": 250,
                                    "pairs": "all"},
                            "cka_rbf": {"type": "cka", "dataset": "fmnist", "kernel": "rbf", "batch": 250,
                                        "pairs": "same-layer"},
                            "cca": {"dataset": "fmnist", "methods": ["svcca", "pwcca"], "checkpoints": ["*/epoch_05"],
                                    "pairs": "same-layer"},
                            "spectrum": {"dataset": "fmnist"},
                            "probe": {"kind": "logistic", "train": "fmnist_train", "test": "fmnist",
                                      "grid": [1e-4, 1e0, 3]}},
               "output": {"dir": "unused", "bundle": True}}
        path, what = jobs.write(folder, "demo_quick", job), "demo job reduced (500 test / 1000 probe-train images, 3 λ)"
    else:
        path, what = os.path.join(jobs.DEMO, "job.yaml"), "demo job (jobs/demo/job.yaml)"
    log(f"  e2e: {what}")
    p, man = jobs.run(ctx, path, os.path.join(folder, "out"))
    t = man.get("timings_s", {})
    rows = []
    for stage in STAGES:
        if stage in t:
            rows.append(Row("e2e", f"{what}: stage {stage}", "wall s", float(t[stage]),
                            repeval_rss_mb=p.rss_mb if stage == "total" else float("nan"),
                            notes=(f"process wall {p.wall:.1f} s, CPU {p.cpu:.1f} s, {man.get('samples')} samples "
                                   f"streamed, 1 rank, 1 thread") if stage == "total" else ""))
    return rows
