"""The language-model demo's committed checkpoints (jobs/lm-demo/models/seed*/step*,
Hugging Face GPT-NeoX folders in float16) give in `repeval embed` the hidden states
of the PyTorch model that trained them (jobs/lm-demo/neox.py, run in float64 on the
stored weights), and neox.py agrees with the repository's independent GPT-NeoX
reference (tests/ref/hf_ref.py, checked against transformers' own outputs).

Inputs: 48 held-out fortunes tokenized by the demo's encoder (lmtext.py), truncated
to 64 tokens and right-padded with an attention mask, so padding and short
sequences are exercised. Compared, for every checkpoint: hidden_states.0 ... .4 and
last_hidden_state with `mean` (over the mask's tokens, what the demo taps) and
hidden_states.2 with `tokens` (every non-padding token). Tolerance: max |a - b| /
max |b| <= 1e-4 per tap (float32 engine against float64 reference)."""
import glob
import os
import sys

import numpy as np
import torch

from common import SOURCE_DIR, Suite, repeval, tmpdir

DEMO = os.path.join(SOURCE_DIR, "jobs", "lm-demo")
sys.path.insert(0, DEMO)
import lmtext  # noqa: E402
import neox  # noqa: E402
import hf_ref  # noqa: E402

T, N, TOL = 64, 48, 1e-4


def inputs():
    enc = lmtext.Encoder(os.path.join(DEMO, "tokenizer"))
    if os.path.isdir(lmtext.FORTUNES):
        _, test = lmtext.split(lmtext.corpus())
        texts = [t for t, _ in test[:N]]
    else:  # without Debian's fortunes: any English text will do for the engine
        with open(os.path.join(SOURCE_DIR, "README.md")) as f:
            texts = [p for p in f.read().split("\n\n") if p.strip()][:N]
    pad = enc.special[lmtext.PAD]
    ids = np.full((len(texts), T), pad, dtype=np.int64)
    mask = np.zeros((len(texts), T), dtype=np.int64)
    for k, t in enumerate(texts):
        e = enc.encode(t)[:T]
        ids[k, :len(e)] = e
        mask[k, :len(e)] = 1
    return ids, mask


def rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def main():
    s = Suite()
    folders = sorted(glob.glob(os.path.join(DEMO, "models", "seed*", "step*")))
    s.check(len(folders) >= 8, f"the demo has its checkpoints: {len(folders)} folders")
    ids, mask = inputs()
    s.check(mask.sum(1).min() < T and mask.sum(1).max() == T, "the inputs have padded and full-length rows")
    worst = 0.0
    with tmpdir() as tmp:
        np.save(os.path.join(tmp, "ids.npy"), ids)
        np.save(os.path.join(tmp, "mask.npy"), mask)
        for folder in folders:
            name = os.path.relpath(folder, os.path.join(DEMO, "models"))
            model, cfg = neox.load_folder(folder, torch.float64)
            L = cfg["num_hidden_layers"]
            with torch.no_grad():
                hs = [h.numpy() for h in model.gpt_neox(torch.tensor(ids), torch.tensor(mask))]
            m = mask[:, :, None].astype(np.float64)
            means = [(h * m).sum(1) / m.sum(1) for h in hs]
            taps = [f"hidden_states.{k}:mean" for k in range(L + 1)] + ["last_hidden_state:mean",
                                                                          "hidden_states.2:tokens"]
            out = os.path.join(tmp, name.replace("/", "_"))
            rc, so, se = repeval("embed", "--model", folder, "--input", os.path.join(tmp, "ids.npy"),
                                 "--attention-mask", os.path.join(tmp, "mask.npy"), "--layers", ",".join(taps),
                                 "--out", out)
            if not s.check(rc == 0, f"{name}: repeval embed exits 0: {se}"):
                continue
            for k in range(L + 1):  # a layer tapped in two modes is written as <layer>.<mode>.npy
                got = np.load(os.path.join(out, f"hidden_states.{k}{'.mean' if k == 2 else ''}.npy"))
                e = rel(got, means[k])
                worst = max(worst, e)
                s.check(got.shape == means[k].shape and e <= TOL, f"{name}: hidden_states.{k}:mean rel {e:.2e}")
            got = np.load(os.path.join(out, "last_hidden_state.npy"))
            s.check(rel(got, means[L]) <= TOL, f"{name}: last_hidden_state:mean is hidden_states.{L}")
            rows = np.load(os.path.join(out, "hidden_states.2.tokens.tokens.npy"))
            got = np.load(os.path.join(out, "hidden_states.2.tokens.npy"))
            want_rows = np.argwhere(mask == 1)
            s.check(np.array_equal(rows, want_rows), f"{name}: tokens tap rows are the mask's tokens in order")
            if rows.shape == want_rows.shape:
                e = rel(got, hs[2][want_rows[:, 0], want_rows[:, 1]])
                worst = max(worst, e)
                s.check(e <= TOL, f"{name}: hidden_states.2:tokens rel {e:.2e}")
        # neox.py against the independent reference, on the last checkpoint
        model, cfg = neox.load_folder(folders[-1], torch.float64)
        sd = {k.removeprefix("gpt_neox."): v.numpy() for k, v in model.state_dict().items()
              if k.startswith("gpt_neox.")}
        with torch.no_grad():
            mine = [h.numpy() for h in model.gpt_neox(torch.tensor(ids), torch.tensor(mask))]
        ref = [np.asarray(h) for h in hf_ref.forward(cfg, sd, ids, mask)]
        tok = mask.astype(bool)
        e = max(rel(a[tok], b[tok]) for a, b in zip(mine, ref))
        s.check(len(mine) == len(ref) and e <= 1e-10, f"neox.py and hf_ref.py agree on every token: rel {e:.2e}")
    print(f"{len(folders)} checkpoints, worst relative difference {worst:.2e} (tolerance {TOL})")
    s.finish()


if __name__ == "__main__":
    main()
