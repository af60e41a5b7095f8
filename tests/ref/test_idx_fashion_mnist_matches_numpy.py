"""Fashion-MNIST (Debian's dataset-fashion-mnist, IDX .gz) read by the library
equals NumPy's decode of the same files bit for bit (tolerance 0): pixels / 255
as float32, labels, several ranges and batch orders, the per-channel
normalisation, and the decompressed (plain) files; torchvision's ToTensor +
Normalize agrees too when it is installed. The folder comes from $FMNIST
(default: the Debian package's folder); the test skips if the files are absent."""
import gzip
import os
import sys

import numpy as np

import ds_tool
from common import Suite, tmpdir

FMNIST = os.environ.get("FMNIST", "/usr/share/datasets/fashion-mnist")


def numpy_idx(path):
    """Independent IDX decode: gzip + big-endian header + uint8 data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    nd = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=nd, offset=4).astype(np.int64)
    assert raw[0] == 0 and raw[1] == 0 and raw[2] == 0x08
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * nd).reshape(tuple(dims)), raw


def main():
    files = {s: (os.path.join(FMNIST, f"{s}-images-idx3-ubyte.gz"), os.path.join(FMNIST, f"{s}-labels-idx1-ubyte.gz"))
             for s in ("train", "t10k")}
    if not all(os.path.exists(p) for pair in files.values() for p in pair):
        print(f"SKIP: Fashion-MNIST not found in {FMNIST} (install dataset-fashion-mnist or set FMNIST)")
        return 0
    s = Suite()
    with tmpdir() as d:
        imgs, lab = {}, {}
        for split, (pi, pl) in files.items():
            imgs[split], raw_i = numpy_idx(pi)
            lab[split], raw_l = numpy_idx(pl)
            if split == "t10k":
                plain_i, plain_l = os.path.join(d, "t10k-images"), os.path.join(d, "t10k-labels")
                open(plain_i, "wb").write(raw_i)
                open(plain_l, "wb").write(raw_l)
        x_ref = {k: (v.reshape(len(v), -1).astype(np.float32) / np.float32(255)) for k, v in imgs.items()}

        # the whole test split, batches of 256, in order / reversed / shuffled
        for order in ("seq", "rev", "shuffle"):
            info, x, y = ds_tool.read(d, ["idx", *files["t10k"]], ["--batch", 256, "--order", order])
            ds_tool.exact(s, x, x_ref["t10k"], f"t10k pixels ({order})")
            s.check(np.array_equal(y, lab["t10k"].astype(np.int32)), f"t10k labels ({order})")
        s.check(info == {"count": 10000, "sample_dim": 784, "channels": 1, "height": 28, "width": 28,
                         "has_labels": 1, "num_classes": 10}, f"t10k info {info}")
        # ranges of the training split, including its end
        for r0, r1, b in ((0, 1000, 256), (59000, 60000, 100), (31337, 31338, 1), (12345, 20000, 4096)):
            info, x, y = ds_tool.read(d, ["idx", *files["train"]], ["--range", r0, r1, "--batch", b])
            ds_tool.exact(s, x, x_ref["train"][r0:r1], f"train [{r0}, {r1}) pixels")
            s.check(np.array_equal(y, lab["train"][r0:r1].astype(np.int32)), f"train [{r0}, {r1}) labels")
        s.check(info["count"] == 60000 and info["num_classes"] == 10, f"train info {info}")
        # plain (decompressed) files give the same values
        _, x, y = ds_tool.read(d, ["idx", plain_i, plain_l])
        ds_tool.exact(s, x, x_ref["t10k"], "plain t10k pixels")
        s.check(np.array_equal(y, lab["t10k"].astype(np.int32)), "plain t10k labels")
        # normalisation: (x - mean) / std in float32, NumPy's order of operations
        m, sd = 0.2860, 0.3530
        _, x, _ = ds_tool.read(d, ["idx", *files["t10k"]], ["--normalize", f"{m}:{sd}", "--range", 0, 2000])
        want = (x_ref["t10k"][:2000] - np.float32(m)) / np.float32(sd)
        ds_tool.exact(s, x, want, "normalised t10k pixels")
        # images without labels
        info, x, y = ds_tool.read(d, ["idx", files["t10k"][0]], ["--range", 5, 9])
        s.check(info["has_labels"] == 0 and info["num_classes"] == 0 and np.all(y == -1), "unlabelled read")
        ds_tool.exact(s, x, x_ref["t10k"][5:9], "unlabelled pixels")
        # count mismatch between splits is refused
        rc, err = ds_tool.error(["idx", files["t10k"][0], files["train"][1]])
        s.check(rc == 1 and "60000 labels, but" in err and "10000 images" in err, f"count mismatch: {err}")

        try:
            import torch
            from torchvision import transforms
        except ImportError:
            print("note: torchvision not installed, skipping the ToTensor cross-check")
        else:
            tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((m,), (sd,))])
            tv = torch.stack([tf(im[:, :, None].copy()) for im in imgs["t10k"][:500]]).numpy().reshape(500, -1)
            _, x, _ = ds_tool.read(d, ["idx", *files["t10k"]], ["--normalize", f"{m}:{sd}", "--range", 0, 500])
            ds_tool.exact(s, x, tv, "torchvision ToTensor + Normalize")
    s.finish()


if __name__ == "__main__":
    sys.exit(main())
