#!/usr/bin/env python3
"""Generate layer embeddings of two small random ReLU networks ("seed 0" and
"seed 1") on the same 4000 inputs, for the quick-start CKA run.

usage: make_embeddings.py OUTDIR  ->  OUTDIR/seed{0,1}_layer{1,2,3}.npy (float32)
"""
import os
import sys

import numpy as np


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((4000, 32)).astype(np.float64)
    widths = [64, 48, 16]
    for seed in (0, 1):
        r = np.random.default_rng(100 + seed)
        h = inputs
        for layer, w in enumerate(widths, start=1):
            weight = r.standard_normal((h.shape[1], w)) / np.sqrt(h.shape[1])
            h = np.maximum(h @ weight, 0.0)
            np.save(os.path.join(out, f"seed{seed}_layer{layer}.npy"), h.astype(np.float32))


if __name__ == "__main__":
    main()
