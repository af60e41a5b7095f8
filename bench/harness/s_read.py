"""Dataset reading (tests/bench/bench_datasets: open, then every sample in batches of
256): Fashion-MNIST IDX .gz and WebDataset PNG shards, in MB/s and samples/s,
against the forward pass's samples/s on the same kind of input (reading must
keep up with the model that consumes it)."""
import io
import os
import re
import tarfile

import numpy as np

from common import Failure, Row, log, run_proc, thread_env

FMNIST = os.environ.get("FMNIST", "/usr/share/datasets/fashion-mnist")
LINE = re.compile(r"^(?P<label>.+?)\s+(?P<n>\d+) samples (?P<shape>\S+)\s+open (?P<open>[\d.]+) s\s+read "
                  r"(?P<read>[\d.]+) s\s+(?P<rate>[\d.]+) samples/s\s+(?P<out_mb>[\d.]+) MB/s float32 out\s+"
                  r"(?P<in_mb>[\d.]+) MB/s file in")


def make_shards(folder, count, per_shard=2500, seed=5):
    """CIFAR-sized RGB PNG samples with .cls labels in tar shards (PIL encodes)."""
    from PIL import Image
    paths = [os.path.join(folder, f"shard-{k:03d}.tar") for k in range((count + per_shard - 1) // per_shard)]
    if all(os.path.exists(p) for p in paths):
        return paths
    rng = np.random.default_rng(seed)
    for k, p in enumerate(paths):
        with tarfile.open(p + ".tmp", "w") as tf:
            for i in range(k * per_shard, min(count, (k + 1) * per_shard)):
                img = (rng.random((32, 32, 3)) * 64 + np.linspace(0, 191, 32)[None, :, None]).astype(np.uint8)
                buf = io.BytesIO()
                Image.fromarray(img).save(buf, format="PNG")
                for name, data in ((f"{i:06d}.png", buf.getvalue()), (f"{i:06d}.cls", str(i % 10).encode())):
                    ti = tarfile.TarInfo(name)
                    ti.size = len(data)
                    tf.addfile(ti, io.BytesIO(data))
        os.replace(p + ".tmp", p)
    return paths


def run(ctx):
    if not os.path.exists(ctx.bench_datasets):
        raise Failure(f"{ctx.bench_datasets} is missing (build the bench_datasets target)")
    shards = make_shards(ctx.scratch("read_wds"), 5000 if ctx.quick else 20000)
    log(f"  read: Fashion-MNIST from {FMNIST} and {len(shards)} WebDataset shards")
    p = run_proc([ctx.bench_datasets, FMNIST, *shards], env=thread_env(1))
    found = {}
    for line in p.out.splitlines():
        m = LINE.match(line.strip())
        if m:
            found[m["label"].strip()] = m
    if not found:
        raise Failure(f"no throughput lines in bench_datasets output: {p.out[-400:]} {p.err[-400:]}")
    consumers = {"fmnist": ("forward_cnn_rate", "the demo CNN's forward pass"),
                 "webdataset": ("forward_resnet_rate", "ResNet-18 CIFAR's forward pass")}
    rows = []
    for label, m in found.items():
        key, what = consumers["webdataset" if label.startswith("webdataset") else "fmnist"]
        need = ctx.shared.get(key, float("nan"))
        rate = float(m["rate"])
        ratio = rate / need if need == need else float("nan")
        rows.append(Row("read", f"{label}: {m['n']} samples {m['shape']}", "samples/s", rate, need,
                        f"{what} (1 thread)" if need == need else "forward rate not measured in this run",
                        ratio, ">= 1x (keeps up)", ("yes" if ratio >= 1 else "no") if need == need else "",
                        notes=f"{float(m['in_mb']):.1f} MB/s of files read (open + read), {float(m['out_mb']):.1f} "
                              f"MB/s of float32 samples out; open {m['open']} s, read {m['read']} s; one thread"))
    return rows
