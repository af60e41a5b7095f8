#!/usr/bin/env python3
"""Synthetic CIFAR binary batches in the layout of the "binary version" of
CIFAR-10/100 (Krizhevsky 2009): per record 1 label byte (CIFAR-10) or 2 (coarse,
fine: CIFAR-100), then 3072 bytes, the 32 x 32 red, green and blue planes. No
download: the images are random, so tests stay small and self-contained.

As a module: write_cifar10(dir, counts, seed), write_cifar100(dir, n, seed) return
the paths and the source arrays (images N x 32 x 32 x 3 uint8, HWC, and labels).
As a program: make_cifar_batches.py OUT_DIR [--count N] writes data_batch_1..5.bin,
test_batch.bin (CIFAR-10) and train.bin, test.bin (CIFAR-100)."""
import argparse
import os

import numpy as np


def _records(images, labels):
    """images N x 32 x 32 x 3 (HWC) -> N x (L + 3072) records (CHW planes)."""
    planes = np.transpose(images, (0, 3, 1, 2)).reshape(len(images), 3072)
    return np.concatenate([np.asarray(labels, dtype=np.uint8).reshape(len(images), -1), planes], axis=1)


def write_cifar10(out_dir, counts, seed, names=None):
    rng = np.random.default_rng(seed)
    paths, imgs, labs = [], [], []
    for k, n in enumerate(counts):
        img = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        lab = rng.integers(0, 10, size=n)
        p = os.path.join(out_dir, names[k] if names else f"data_batch_{k + 1}.bin")
        _records(img, lab).tofile(p)
        paths.append(p)
        imgs.append(img)
        labs.append(lab)
    return paths, np.concatenate(imgs), np.concatenate(labs)


def write_cifar100(out_dir, n, seed, name="train.bin"):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    fine = rng.integers(0, 100, size=n)
    coarse = fine // 5  # any mapping will do; the real one groups 5 fine classes per coarse one
    p = os.path.join(out_dir, name)
    _records(img, np.stack([coarse, fine], axis=1)).tofile(p)
    return p, img, coarse, fine


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--count", type=int, default=1000, help="records per batch file")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    write_cifar10(a.out_dir, [a.count] * 5, a.seed)
    write_cifar10(a.out_dir, [a.count], a.seed + 1, names=["test_batch.bin"])
    write_cifar100(a.out_dir, a.count, a.seed + 2)
    write_cifar100(a.out_dir, a.count, a.seed + 3, name="test.bin")


if __name__ == "__main__":
    main()
