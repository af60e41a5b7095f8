"""Fault injection: damaged files that repeval wrote itself. A 2-rank run with an
embedding cache (`cache: {dir: ...}`) over two datasets is the reference. Then

  * one byte of a cache shard (.rpc) read by rank 0 is flipped and a shard
    read by rank 1 is truncated: the rerun recomputes them, warns naming the
    file, gives metrics.csv identical as text (bitwise) to the reference, and
    rewrites the shards (a third run warns no more);
  * a run is stopped by SIGTERM in the second dataset's pass, then one byte of
    the first dataset's reduced statistics (<out>.state/pass-*.reduced.state)
    and of both ranks' snapshots is flipped: the rerun warns naming the files,
    recomputes, and gives identical metrics; every rank warns about what it
    read itself ("rank 1: ...") and the manifest keeps the warnings of all ranks;
  * one byte of <out>/stats/<dataset>.stats is flipped: `repeval finalize`
    refuses it naming the file and leaves the output folder byte-identical."""
import json
import os
import re
import shutil
import signal

from faultlib import (FMNIST, Run, Suite, flip_byte, job_text, leftovers, metrics, same_metrics, tmpdir, tree_hash,
                      wait_ranks, write)

RANKS = 2
TRAIN = f"""  fmnist_train:
    format: idx
    images: {FMNIST}/train-images-idx3-ubyte.gz
    labels: {FMNIST}/train-labels-idx1-ubyte.gz
    normalize: {{mean: [0.286], std: [0.353]}}
    offset: 50000
    limit: 1000
"""
ANALYSES = """  cka: {dataset: fmnist, batch: 50}
  cka_exact: {type: cka, dataset: fmnist, estimator: exact, pairs: consecutive, checkpoints: ["seed0/*"]}
  spectrum: {dataset: fmnist_train}
"""


def shards(cache):
    return sorted(os.path.join(dp, f) for dp, _, fs in os.walk(cache) for f in fs if f.endswith(".rpc"))


def main():
    s = Suite()
    with tmpdir() as d:
        out, cache = os.path.join(d, "out"), os.path.join(d, "cache")
        text = job_text(out, n=600, extra_data=TRAIN, analyses=ANALYSES, extra=f"batch: 50\ncache: {{dir: {cache}}}\n")
        job = write(os.path.join(d, "job.yaml"), text)
        ref = Run(RANKS, ["run", job, "--out", os.path.join(d, "ref")], os.path.join(d, "ref.log"))
        if not s.check(ref.wait(900) == 0, f"reference run: {ref.text()[-500:]}"):
            s.finish()
        want = metrics(os.path.join(d, "ref"))
        files = shards(cache)
        print(f"reference run: {ref.seconds:.1f} s, {len(want)} metric rows, {len(files)} cache shards")
        s.check(len(files) > 100, f"the cache holds shards: {len(files)}")

        # a flipped byte in a shard of the first chunk (rank 0), a truncated shard of the last (rank 1):
        # chunks of 256 samples rounded up to whole forward batches of 50, 300
        first = [f for f in files if f.endswith("/0-300.rpc")]
        last = [f for f in files if f.endswith("/300-600.rpc")]
        s.check(first and last, "shards of the first and the last chunk")
        bad = [first[len(first) // 2], last[len(last) // 2]]
        flip_byte(bad[0], os.path.getsize(bad[0]) // 2)
        with open(bad[1], "r+b") as f:
            f.truncate(os.path.getsize(bad[1]) - 7)
        r = Run(RANKS, ["run", job, "--out", os.path.join(d, "out2")], os.path.join(d, "cache-rerun.log"))
        rc = r.wait(900)
        err = r.text()
        s.check(rc == 0, f"rerun with damaged shards exits {rc}: {err[-400:]}")
        s.check(f"embedding cache shard {bad[0]} is damaged or stale: recomputing it" in err,
                f"the warning names {os.path.basename(bad[0])}: {err[:500]}")
        s.check(f"embedding cache shard {bad[1]} is damaged" in err, f"rank 1's damaged shard is named: {err[:600]}")
        with open(os.path.join(d, "out2", "manifest.json")) as f:
            man = json.load(f)
        named = [w for w in man.get("warnings", []) if "embedding cache shard" in w]
        s.check(len(named) == 2, f"the manifest keeps both ranks' cache warnings: {named}")
        same_metrics(s, os.path.join(d, "out2"), want, "rerun with damaged cache shards")
        r = Run(RANKS, ["run", job, "--out", os.path.join(d, "out3")], os.path.join(d, "cache-third.log"))
        s.check(r.wait(900) == 0 and "damaged" not in r.text(), f"the shards were rewritten: {r.text()[-300:]}")

        # damaged resume state: the first dataset's reduced statistics and a snapshot of the second pass
        # (an empty cache, so that the passes take their normal time)
        shutil.rmtree(cache)
        shutil.copytree(os.path.join(d, "ref"), out)
        before = tree_hash(out)
        r = Run(RANKS, ["run", job], os.path.join(d, "stop.log"), env={"REPEVAL_CHECKPOINT_EVERY": "1"})
        pids = wait_ranks(r, RANKS)
        s.check(r.wait_for(r"dataset fmnist_train ([8-9]|1[0-9])/20", 900), f"second pass running: {r.text()[-300:]}")
        for p in pids.values():
            os.kill(p, signal.SIGTERM)
        s.check(r.wait(300) == 75, f"SIGTERM: exit code 75: {r.text()[-300:]}")
        s.check(tree_hash(out) == before, "the previous result is untouched after SIGTERM")
        reduced = os.path.join(out + ".state", "pass-fmnist.reduced.state")
        snaps = [os.path.join(out + ".state", f"pass-fmnist_train.rank{k}-of-{RANKS}.state") for k in range(RANKS)]
        s.check(all(os.path.isfile(f) for f in [reduced] + snaps), f"state files: {os.listdir(out + '.state')}")
        if all(os.path.isfile(f) for f in [reduced] + snaps):
            flip_byte(reduced, -100)
            flip_byte(snaps[0], 200)
            flip_byte(snaps[1], -30)
            r = Run(RANKS, ["run", job], os.path.join(d, "state-rerun.log"))
            rc = r.wait(900)
            err = r.text()
            s.check(rc == 0, f"rerun with damaged state exits {rc}: {err[-400:]}")

            def warned(f):
                return re.search(rf"saved state {re.escape(f)} ignored: [a-z ]+(\(corrupted\))?; recomputing", err)
            for f in (reduced, snaps[0]):
                s.check(warned(f), f"the warning names {os.path.basename(f)}: {err[:600]}")
            s.check(warned(snaps[1]), f"the warning names {os.path.basename(snaps[1])}: {err[:600]}")
            same_metrics(s, out, want, "rerun with damaged resume state")
            s.check(not leftovers(d, "out") and not os.path.exists(out + ".state"), "no partial or state left")

        # finalize from damaged statistics: refused, output untouched
        stats = os.path.join(out, "stats", "fmnist.stats")
        flip_byte(stats, -100)
        before = tree_hash(out)
        r = Run(0, ["finalize", job], os.path.join(d, "finalize.log"))
        rc = r.wait(300)
        err = r.text()
        s.check(rc == 1 and f"{stats}: checksum mismatch (corrupted)" in err,
                f"finalize refuses damaged statistics: {rc} {err[-300:]}")
        s.check(tree_hash(out) == before and not leftovers(d, "out"), "finalize left the output untouched")
    s.finish()


if __name__ == "__main__":
    main()
