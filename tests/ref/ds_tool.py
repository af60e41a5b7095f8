"""Helpers for the dataset reference tests: run tests/tools/dataset_tool (the
library's readers) and load what it wrote as NumPy arrays."""
import itertools
import json
import os

import numpy as np

from common import run

DATASET_TOOL = os.environ.get("REPEVAL_DATASET_TOOL", "dataset_tool")
_counter = itertools.count()


def read(out_dir, fmt_args, opts=()):
    """(info dict, x float32 n x sample_dim, y int32 n) from dataset_tool."""
    prefix = os.path.join(out_dir, f"read{next(_counter)}")
    rc, out, err = run([DATASET_TOOL, "--out", prefix, *[str(o) for o in opts], *[str(a) for a in fmt_args]])
    if rc != 0:
        raise RuntimeError(f"dataset_tool {fmt_args} {opts} exited {rc}: {err}")
    return json.loads(out), np.load(prefix + "_x.npy"), np.load(prefix + "_y.npy")


def info(fmt_args):
    rc, out, err = run([DATASET_TOOL, *[str(a) for a in fmt_args]])
    if rc != 0:
        raise RuntimeError(f"dataset_tool {fmt_args} exited {rc}: {err}")
    return json.loads(out)


def error(fmt_args, opts=()):
    """(exit code, stderr) of a run expected to fail."""
    rc, _, err = run([DATASET_TOOL, *[str(o) for o in opts], *[str(a) for a in fmt_args]])
    return rc, err


def exact(suite, got, want, what):
    """Bit-for-bit float32 equality (tolerance 0), with the worst element on failure."""
    got = np.asarray(got)
    want = np.asarray(want)
    if got.shape != want.shape:
        return suite.check(False, f"{what}: shape {got.shape} != {want.shape}")
    ok = np.array_equal(got, want)
    msg = what
    if not ok:
        d = np.abs(got.astype(np.float64) - want.astype(np.float64))
        k = int(np.argmax(d))
        msg = f"{what}: {int((got != want).sum())} values differ, worst at {k}: {got.flat[k]!r} vs {want.flat[k]!r}"
    return suite.check(ok, msg)
