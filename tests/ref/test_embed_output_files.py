"""`repeval embed` output files: a module tapped in two modes gets one file per
mode (NumPy reductions of the flattened tap as the reference), a module tapped
once keeps <name>.npy, embed.json lists what was written so that a rerun may
replace it; and WebDataset shards whose samples hold .npy members (instead of
.png) are read, giving the same embeddings as the arrays themselves."""
import io
import json
import os
import tarfile

import numpy as np

from common import SOURCE_DIR, Suite, repeval, tmpdir

DEMO = os.path.join(SOURCE_DIR, "jobs", "demo")
CK = os.path.join(DEMO, "checkpoints", "seed0", "epoch_04.safetensors")


def main():
    s = Suite()
    rng = np.random.default_rng(3)
    x = rng.random((10, 1, 28, 28)).astype(np.float32)
    with tmpdir() as d:
        xp = os.path.join(d, "x.npy")
        np.save(xp, x)
        out = os.path.join(d, "emb")
        base = ["embed", "--model", os.path.join(DEMO, "cnn.yaml"), "--checkpoint", CK, "--out", out]
        rc, _, err = repeval(*base, "--input", xp, "--layers", "conv2,conv2:mean,conv2:spatial,fc1")
        s.check(rc == 0, f"embed: {err}")
        names = sorted(f for f in os.listdir(out))
        s.check(names == ["conv2.flatten.npy", "conv2.mean.npy", "conv2.spatial.npy", "embed.json", "fc1.npy"],
                f"files: {names}")
        flat = np.load(os.path.join(out, "conv2.flatten.npy"))
        c = flat.shape[1] // 196  # conv2 of the demo CNN: C x 14 x 14 (one 2x2 pool of 28 x 28)
        maps = flat.reshape(10, -1, 14, 14) if flat.shape[1] == c * 196 else None
        if s.check(flat.shape[1] == c * 196, f"conv2 shape {flat.shape}"):
            for mode, want in (("mean", maps.mean(axis=(2, 3))),
                               ("spatial", maps.reshape(10, c, 196).transpose(0, 2, 1).reshape(-1, c))):
                got = np.load(os.path.join(out, f"conv2.{mode}.npy"))
                err = np.abs(got - want).max() / np.abs(want).max() if got.shape == want.shape else None
                s.check(err is not None and err <= 1e-6, f"{mode} mode vs NumPy on the flattened tap: {err}")
        listing = json.load(open(os.path.join(out, "embed.json")))
        s.check(listing["marker"] == "repeval-embed-1" and set(listing["files"]) == set(names),
                f"embed.json lists {listing['files']}")
        rc, _, err = repeval(*base, "--input", xp, "--layers", "fc1")
        s.check(rc == 0, f"rerun over its own files: {err}")

        # WebDataset with .npy inputs and .cls labels
        shard = os.path.join(d, "s.tar")
        with tarfile.open(shard, "w") as t:
            for k in range(10):
                for ext, data in (("npy", None), ("cls", f"{k % 3}\n".encode())):
                    if data is None:
                        buf = io.BytesIO()
                        np.save(buf, x[k])
                        data = buf.getvalue()
                    info = tarfile.TarInfo(f"sample{k:03d}.{ext}")
                    info.size = len(data)
                    t.addfile(info, io.BytesIO(data))
        out2 = os.path.join(d, "emb2")
        rc, _, err = repeval("embed", "--model", os.path.join(DEMO, "cnn.yaml"), "--checkpoint", CK, "--out", out2,
                             "--data", f"webdataset:{shard}", "--layers", "fc1")
        if s.check(rc == 0, f"embed from .npy WebDataset members: {err}"):
            s.check(np.array_equal(np.load(os.path.join(out2, "fc1.npy")), np.load(os.path.join(out, "fc1.npy"))),
                    "WebDataset .npy members give the embeddings of the arrays")
            s.check(np.array_equal(np.load(os.path.join(out2, "labels.npy")), np.arange(10) % 3), "labels")
    s.finish()


if __name__ == "__main__":
    main()
