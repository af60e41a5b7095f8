""".npy input/label pairs read by the library equal NumPy's own conversion bit
for bit (tolerance 0): float16/32/64, int16, big-endian and Fortran-order inputs
as float32 as stored, uint8 inputs as pixels / 255; image geometry from 3-D
(N x H x W) and 4-D (N x C x H x W) shapes; integer labels of several dtypes;
normalisation per channel; mismatched counts refused."""
import os

import numpy as np

import ds_tool
from common import Suite, tmpdir


def main():
    s = Suite()
    rng = np.random.default_rng(3)
    with tmpdir() as d:
        n = 37
        lab = rng.integers(0, 13, size=n)
        cases = [
            ("u8-nchw", rng.integers(0, 256, size=(n, 3, 5, 4)).astype(np.uint8), (3, 5, 4)),
            ("f32-nhw", rng.normal(size=(n, 6, 7)).astype(np.float32), (1, 6, 7)),
            ("f64-flat", rng.normal(size=(n, 10)) * 1e3, (1, 1, 10)),
            ("f16", rng.normal(size=(n, 8)).astype(np.float16), (1, 1, 8)),
            ("i16-be", rng.integers(-30000, 30000, size=(n, 2, 3)).astype(">i2"), (1, 2, 3)),
            ("f32-fortran", np.asfortranarray(rng.normal(size=(n, 3, 2, 2)).astype(np.float32)), (3, 2, 2)),
            ("f64-5d", rng.normal(size=(n, 2, 1, 3, 2)), (1, 1, 12)),
            ("f32-1d", rng.normal(size=(n,)).astype(np.float32), (1, 1, 1)),
        ]
        label_dtypes = [np.int64, np.uint8, np.int32, np.dtype(">i4"), np.uint16]
        for k, (name, arr, geo) in enumerate(cases):
            xp = os.path.join(d, f"{name}.npy")
            yp = os.path.join(d, f"{name}-labels.npy")
            np.save(xp, arr)
            np.save(yp, lab.astype(label_dtypes[k % len(label_dtypes)]))
            want = arr.reshape(n, -1).astype(np.float32)
            if arr.dtype == np.uint8:
                want = want / np.float32(255)
            info, x, y = ds_tool.read(d, ["npy", xp, yp], ["--batch", 5, "--order", "shuffle"])
            ds_tool.exact(s, x, want, f"{name} values")
            s.check(np.array_equal(y, lab), f"{name} labels")
            s.check((info["channels"], info["height"], info["width"]) == geo and info["count"] == n
                    and info["sample_dim"] == want.shape[1] and info["num_classes"] == int(lab.max()) + 1,
                    f"{name} info {info}")
        # per-channel normalisation of the 4-D uint8 case
        xp = os.path.join(d, "u8-nchw.npy")
        mean, std = (0.5, 0.25, 0.125), (0.2, 0.3, 0.4)
        _, x, _ = ds_tool.read(d, ["npy", xp], ["--normalize", "0.5,0.25,0.125:0.2,0.3,0.4"])
        base = np.load(xp).astype(np.float32) / np.float32(255)
        want = ((base - np.array(mean, np.float32)[None, :, None, None]) /
                np.array(std, np.float32)[None, :, None, None]).reshape(n, -1)
        ds_tool.exact(s, x, want, "normalised uint8 NCHW")
        rc, err = ds_tool.error(["npy", xp], ["--normalize", "0.5:0.2"])
        s.check(rc == 1 and "has 1 mean/std values but the dataset has 3 channels" in err, f"channel count: {err}")
        # label count mismatch, float labels
        short = os.path.join(d, "short.npy")
        np.save(short, lab[:-1])
        rc, err = ds_tool.error(["npy", xp, short])
        s.check(rc == 1 and f"{n - 1} labels, but" in err, f"count mismatch: {err}")
        fl = os.path.join(d, "float-labels.npy")
        np.save(fl, lab.astype(np.float32))
        rc, err = ds_tool.error(["npy", xp, fl])
        s.check(rc == 1 and "labels must have an integer dtype, found float32" in err, f"float labels: {err}")
    s.finish()


if __name__ == "__main__":
    main()
