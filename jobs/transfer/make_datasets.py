#!/usr/bin/env python3
"""Make the downstream datasets of the transfer suite (jobs/transfer-fmnist.yaml)
as .npy pairs, from Debian's dataset-fashion-mnist and from a fixed-seed generator:

  fmnist-coarse   Fashion-MNIST with 4 coarse classes: upper-body clothes (T-shirt,
                  pullover, coat, shirt), trousers and dresses, footwear (sandal,
                  sneaker, ankle boot), bags
  fmnist-flipped  Fashion-MNIST upside down (the same 10 classes, shifted domain)
  shapes          28 x 28 renderings of 5 shapes (disc, square, triangle, cross, ring)
                  at random size, position and contrast with noise: a task the
                  networks never saw

Training rows come from Fashion-MNIST train images 50000.. (the demo networks were
trained on the first 12000), test rows from the t10k file. Inputs are uint8
N x 1 x 28 x 28 (repeval scales uint8 to [0, 1]); labels int64.

usage: make_datasets.py OUTDIR [--train 3000] [--test 1000]
"""
import argparse
import gzip
import os

import numpy as np

FMNIST = os.environ.get("FMNIST", "/usr/share/datasets/fashion-mnist")
COARSE = np.array([0, 1, 0, 1, 0, 2, 0, 2, 3, 2])  # class -> coarse class


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * k:8 + 4 * k], "big") for k in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def shapes(n, rng):
    yy, xx = np.mgrid[0:28, 0:28].astype(np.float64)
    x = np.zeros((n, 28, 28))
    y = rng.integers(0, 5, n)
    for i in range(n):
        cx, cy = rng.uniform(9, 19, 2)
        r = rng.uniform(4, 9)
        dx, dy = xx - cx, yy - cy
        k = y[i]
        if k == 0:
            m = dx ** 2 + dy ** 2 <= r ** 2
        elif k == 1:
            m = (np.abs(dx) <= r * 0.8) & (np.abs(dy) <= r * 0.8)
        elif k == 2:
            m = (dy <= r * 0.7) & (dy >= -r * 0.9 + 1.8 * np.abs(dx))
        elif k == 3:
            m = ((np.abs(dx) <= r * 0.25) & (np.abs(dy) <= r)) | ((np.abs(dy) <= r * 0.25) & (np.abs(dx) <= r))
        else:
            d2 = dx ** 2 + dy ** 2
            m = (d2 <= r ** 2) & (d2 >= (0.55 * r) ** 2)
        x[i] = m * rng.uniform(0.5, 1.0) + rng.normal(0, 0.08, (28, 28))
    return (np.clip(x, 0, 1) * 255).round().astype(np.uint8)[:, None], y.astype(np.int64)


def save(out, name, split, x, y):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    for what, a in (("inputs", x), ("labels", y)):
        tmp = os.path.join(d, f"{split}-{what}.tmp.npy")
        np.save(tmp, a)
        os.replace(tmp, os.path.join(d, f"{split}-{what}.npy"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--train", type=int, default=3000)
    ap.add_argument("--test", type=int, default=1000)
    a = ap.parse_args()
    tr_x = read_idx(os.path.join(FMNIST, "train-images-idx3-ubyte.gz"))[50000:50000 + a.train][:, None]
    tr_y = read_idx(os.path.join(FMNIST, "train-labels-idx1-ubyte.gz"))[50000:50000 + a.train].astype(np.int64)
    te_x = read_idx(os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz"))[:a.test][:, None]
    te_y = read_idx(os.path.join(FMNIST, "t10k-labels-idx1-ubyte.gz"))[:a.test].astype(np.int64)
    save(a.out, "fmnist-coarse", "train", tr_x, COARSE[tr_y])
    save(a.out, "fmnist-coarse", "test", te_x, COARSE[te_y])
    save(a.out, "fmnist-flipped", "train", np.ascontiguousarray(tr_x[:, :, ::-1]), tr_y)
    save(a.out, "fmnist-flipped", "test", np.ascontiguousarray(te_x[:, :, ::-1]), te_y)
    rng = np.random.default_rng(20261202)
    for split, n in (("train", a.train), ("test", a.test)):
        x, y = shapes(n, rng)
        save(a.out, "shapes", split, x, y)
    print(f"transfer datasets in {a.out}: fmnist-coarse, fmnist-flipped, shapes ({a.train} train, {a.test} test rows)")


if __name__ == "__main__":
    main()
