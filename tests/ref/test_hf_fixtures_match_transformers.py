"""`repeval embed` reproduces Hugging Face transformers itself: every folder of
tests/data/hf/ with a manifest.json holds a model saved by save_pretrained (random
weights), its inputs and the library's own float64 outputs (output_hidden_states,
last_hidden_state, pooler_output). The manifest says what the inputs are and what
to compare; every hidden state (flatten, and tokens for language models) and the
other outputs must be within the manifest's tolerance (1e-4 relative: max |diff| /
max |ref| over non-padding positions). Folders are made by tests/data/make_hf_fixtures.py
(and copied from the fixtures of the first engine version); new ones are checked as
soon as they exist.

transformers' own float64 eager attention gives NaN on the rows of a left-padded
sequence that attend to nothing (the padding before its first token), and from the
second layer on those NaN keys, masked but multiplied by a zero weight, spread to
every position of that sequence. Such reference values say nothing; they are left
out of the comparison (counted and printed), and every fixture with left padding
also has sequences without it, which are compared in full."""
import glob
import json
import os

import numpy as np

from common import SOURCE_DIR, Suite, repeval, tmpdir


def rel(got, want):
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def check_folder(s, d, folder, man):
    name = os.path.basename(folder)
    tol = float(man.get("tolerance", 1e-4))
    inputs, compare = man["inputs"], man["compare"]
    args = ["embed", "--model", folder]
    mask = None
    if "input_ids" in inputs:
        ids = np.load(os.path.join(folder, inputs["input_ids"]))
        B, T = ids.shape
        args += ["--input", os.path.join(folder, inputs["input_ids"])]
        if "attention_mask" in inputs:
            args += ["--attention-mask", os.path.join(folder, inputs["attention_mask"])]
            mask = np.load(os.path.join(folder, inputs["attention_mask"])).astype(bool)
        if man.get("positions") == "mask":  # position ids counted over tokens only
            args += ["--positions", "mask"]
    else:
        px = np.load(os.path.join(folder, inputs["pixel_values"]))
        B = px.shape[0]
        args += ["--input", os.path.join(folder, inputs["pixel_values"])]
    hs = np.load(os.path.join(folder, compare["hidden_states"])) if "hidden_states" in compare else None
    taps = [f"hidden_states.{k}" for k in range(len(hs))] if hs is not None else []
    taps += [k for k in ("last_hidden_state", "pooler_output") if k in compare]
    token_model = "input_ids" in inputs
    modes = ["flatten", "tokens"] if token_model else ["flatten"]
    for mode in modes:
        out = os.path.join(d, f"{name}_{mode}")
        rc, _, err = repeval(*args, "--layers", ",".join(t + ("" if t == "pooler_output" else ":" + mode)
                                                         for t in taps), "--out", out)
        if not s.check(rc == 0, f"{name} ({mode}): embed failed: {err}"):
            continue
        for t in taps:
            want = hs[int(t.split(".")[1])] if t.startswith("hidden_states.") else \
                np.load(os.path.join(folder, compare[t]))
            got = np.load(os.path.join(out, t + ".npy"))
            if t == "pooler_output":
                s.check(got.shape == want.shape and rel(got, want) <= tol, f"{name}: pooler_output")
                continue
            m = mask if mask is not None else np.ones(want.shape[:2], dtype=bool)
            if mode == "flatten" and got.size == want.size:
                got = got.reshape(want.shape)[m]
            if not s.check(got.shape == want[m].shape, f"{name} ({mode}) {t}: shape {got.shape} vs {want[m].shape}"):
                continue
            ref = want[m]
            finite = np.isfinite(ref).all(axis=-1)  # reference rows poisoned by NaN (see above)
            if not finite.all():
                print(f"{name} ({mode}) {t}: {int((~finite).sum())} of {finite.size} reference rows are NaN "
                      "(left padding in transformers' float64 attention), left out")
            if not s.check(finite.sum() >= min(T if token_model else 1, finite.size),
                           f"{name} ({mode}) {t}: fewer than one sequence of finite reference values"):
                continue
            err = rel(got[finite], ref[finite])
            s.check(err <= tol, f"{name} ({mode}) {t}: error {err:.3g} above {tol}")


def main():
    s = Suite()
    manifests = sorted(glob.glob(os.path.join(SOURCE_DIR, "tests", "data", "hf", "*", "manifest.json")))
    s.check(len(manifests) >= 2, "the fixture folders of tests/data/hf are missing")
    with tmpdir() as d:
        for path in manifests:
            with open(path) as f:
                man = json.load(f)
            check_folder(s, d, os.path.dirname(path), man)
    s.finish()


if __name__ == "__main__":
    main()
