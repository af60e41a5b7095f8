"""Helpers for the checkpoint reference tests: generate the fixtures with
PyTorch (tests/data/make_ckpt_fixtures.py) into the test's working directory,
read a checkpoint through the library (ckpt_dump), and compare its tensors with
PyTorch's values bit for bit after conversion to float32."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np

from common import SOURCE_DIR, repeval, run

CKPT_DUMP = os.environ.get("REPEVAL_CKPT_DUMP", "ckpt_dump")
PYTHON = sys.executable


def make_fixtures(name):
    """Fresh fixtures in <cwd>/<name>; returns (dir, spec from fixtures.json)."""
    out = os.path.join(os.getcwd(), name)
    shutil.rmtree(out, ignore_errors=True)
    script = os.path.join(SOURCE_DIR, "tests", "data", "make_ckpt_fixtures.py")
    subprocess.run([PYTHON, script, out], check=True)
    with open(os.path.join(out, "fixtures.json")) as f:
        return out, json.load(f)


def dump(path, options, workdir):
    """Tensors as the library reads them: (index dict, {name: float32 array})."""
    d = os.path.join(workdir, "dump-" + os.path.basename(path) + "-" + "_".join(o.strip("-") for o in options))
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    rc, out, err = run([CKPT_DUMP, path, d] + options)
    if rc != 0:
        raise RuntimeError(f"ckpt_dump {path} {options} exited {rc}: {err}")
    with open(os.path.join(d, "index.json")) as f:
        idx = json.load(f)
    vals = {t["name"]: np.load(os.path.join(d, t["file"])) for t in idx["tensors"]}
    return idx, vals


def same_f32(got, want):
    """Bit-identical float32 arrays (NaNs only need to be NaN in the same places)."""
    got = np.asarray(got, dtype=np.float32)
    want = np.asarray(want, dtype=np.float32)
    if got.shape != want.shape:
        return False
    gn, wn = np.isnan(got), np.isnan(want)
    if not np.array_equal(gn, wn):
        return False
    return np.array_equal(got[~gn].view(np.uint32), want[~wn].view(np.uint32))


def inspect_json(path, options=()):
    rc, out, err = repeval("inspect", path, "--json", *options)
    if rc != 0:
        raise RuntimeError(f"repeval inspect {path} exited {rc}: {err}")
    return json.loads(out)


ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8, "int8": 1, "int16": 2, "int32": 4,
            "int64": 8, "uint8": 1, "bool": 1}


def check_expectation(s, fx, file, exp, fmt, view_expected, reference=None):
    """Every check of one (file, options) expectation from fixtures.json.
    view_expected(name, ref) -> whether re_ckpt_view_f32 must succeed;
    reference: {name: float32 array} to compare with (default: the fixture's .npy)."""
    path = os.path.join(fx, file)
    opts = exp["options"]
    what = f"{file} {' '.join(opts)}".strip()
    idx, vals = dump(path, opts, fx)
    s.check(idx["format"] == fmt, f"{what}: format {idx['format']!r}, want {fmt!r}")
    names = [t["name"] for t in idx["tensors"]]
    s.check(names == exp["order"], f"{what}: tensor names/order {names}, want {exp['order']}")
    by_name = {t["name"]: t for t in idx["tensors"]}
    for name, ref in exp["tensors"].items():
        t = by_name.get(name)
        if not s.check(t is not None, f"{what}: tensor {name!r} missing"):
            continue
        s.check(t["dtype"] == ref["dtype"], f"{what}: {name} dtype {t['dtype']}, want {ref['dtype']}")
        s.check(t["shape"] == ref["shape"], f"{what}: {name} shape {t['shape']}, want {ref['shape']}")
        want = reference[name] if reference is not None else np.load(os.path.join(fx, ref["file"]))
        s.check(same_f32(vals[name], want), f"{what}: {name} values differ from PyTorch's (bit-exact float32)")
        s.check(t["in_map"] == exp["in_map"], f"{what}: {name} in_map {t['in_map']}, want {exp['in_map']}")
        ve = view_expected(name, ref)
        s.check(t["view"] == ve, f"{what}: {name} zero-copy view {t['view']}, want {ve}")
    s.check(idx["metadata"] == exp["metadata"] and list(idx["metadata"]) == list(exp["metadata"]),
            f"{what}: metadata {idx['metadata']}, want {exp['metadata']}")
    # repeval inspect --json reports the same table and metadata
    j = inspect_json(path, opts)
    s.check(j["format"] == fmt, f"{what}: inspect format {j['format']}")
    got = [(t["name"], t["dtype"], t["shape"], t["bytes"]) for t in j["tensors"]]
    want = [(n, exp["tensors"][n]["dtype"], exp["tensors"][n]["shape"],
             int(np.prod(exp["tensors"][n]["shape"])) * ITEMSIZE[exp["tensors"][n]["dtype"]]) for n in exp["order"]]
    s.check(got == want, f"{what}: inspect --json tensors {got}, want {want}")
    s.check(j["metadata"] == exp["metadata"], f"{what}: inspect --json metadata {j['metadata']}")
