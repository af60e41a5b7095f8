#!/usr/bin/env python3
"""Write the inputs of the published CKA reference values (Kornblith et al. 2019,
reference notebook): np.random.seed(1337); X = randn(100, 10); Y = randn(100, 10) + X.

usage: make_kornblith_inputs.py OUTDIR   -> OUTDIR/kornblith_x.npy, OUTDIR/kornblith_y.npy
"""
import os
import sys

import numpy as np


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    np.random.seed(1337)
    x = np.random.randn(100, 10)
    y = np.random.randn(100, 10) + x
    np.save(os.path.join(out, "kornblith_x.npy"), x)
    np.save(os.path.join(out, "kornblith_y.npy"), y)


if __name__ == "__main__":
    main()
