"""The language-model demo job itself (jobs/lm-demo/lm-demo.yaml: three seeds of a
GPT-NeoX model at four training steps, fortunes in five categories with a held-out
fold) run by `repeval run` on one process and under mpiexec on 2 ranks writes
byte-identical metrics.csv, CKA and spectrum matrices; and its numbers agree with
independent references computed here from the same folders:

  * the splits are lmtext.split's (fold 0 of every five fortunes: 458 held out,
    1828 to train the probes);
  * the minibatch CKA matrix of all 60 taps (Nguyen et al. 2021, batches of 128 by
    sample index) equals common.minibatch_cka_matrix on the mean-pooled hidden states
    of neox.py (PyTorch, float64) over the held-out fortunes tokenized by lmtext's
    encoder (truncated to 64 tokens, right-padded): tolerance 1e-5 absolute (the
    engine runs in float32);
  * the effective rank of every tap equals exp(entropy) of the normalised singular
    values of the centred embedding (NumPy), 1e-6 relative;
  * the probe accuracy of every tap is a fraction k / 458.

Skipped (77) without Debian's fortunes."""
import csv
import os
import sys
import time

import numpy as np
import torch

from common import SOURCE_DIR, Suite, minibatch_cka_matrix, mpirun, repeval, tmpdir

DEMO = os.path.join(SOURCE_DIR, "jobs", "lm-demo")
JOB = os.path.join(DEMO, "lm-demo.yaml")
sys.path.insert(0, DEMO)
import lmtext  # noqa: E402
import neox  # noqa: E402

os.environ["OPENBLAS_NUM_THREADS"] = "1"
T, B = 64, 128


def reference_taps(folders, texts):
    """{(label, layer): mean-pooled hidden state (n x D) float64} from neox.py."""
    enc = lmtext.Encoder(os.path.join(DEMO, "tokenizer"))
    pad = enc.special[lmtext.PAD]
    ids = np.full((len(texts), T), pad, dtype=np.int64)
    mask = np.zeros((len(texts), T), dtype=np.int64)
    for k, t in enumerate(texts):
        e = enc.encode(t)[:T]
        ids[k, :len(e)] = e
        mask[k, :len(e)] = 1
    out = {}
    m = torch.tensor(mask, dtype=torch.float64)[:, :, None]
    for folder in folders:
        label = os.path.relpath(folder, os.path.join(DEMO, "models"))
        model, _ = neox.load_folder(folder, torch.float64)
        with torch.no_grad():
            hs = model.gpt_neox(torch.tensor(ids), torch.tensor(mask))
        for k, h in enumerate(hs):
            out[(label, f"hidden_states.{k}")] = ((h * m).sum(1) / m.sum(1)).numpy()
    return out


def effective_rank(x):
    s = np.linalg.svd(x - x.mean(0), compute_uv=False)
    s = s[s ** 2 > 1e-8 * s[0] ** 2]
    p = s / s.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def main():
    s = Suite()
    if not all(os.path.isfile(os.path.join(lmtext.FORTUNES, c)) for c in lmtext.CATEGORIES):
        print(f"{lmtext.FORTUNES}: Debian's fortunes package is not installed")
        sys.exit(77)
    with tmpdir() as d:
        one, two = os.path.join(d, "one"), os.path.join(d, "two")
        t0 = time.monotonic()
        rc, so, se = repeval("run", JOB, "--out", one, "--quiet", timeout=1200)
        t1 = time.monotonic()
        if not s.check(rc == 0, f"repeval run on 1 process: {se}"):
            s.finish()
        rc, so, se = mpirun(2, "run", JOB, "--out", two, "--quiet", timeout=1200)
        t2 = time.monotonic()
        if not s.check(rc == 0, f"repeval run on 2 ranks: {se}"):
            s.finish()
        print(f"demo: {t1 - t0:.0f} s on 1 process, {t2 - t1:.0f} s on 2 ranks")
        for name in ("metrics.csv", "cka_cka.npy", "cka_cka_taps.csv", "spectrum_spectrum.npy", "taps_fortunes.csv"):
            with open(os.path.join(one, name), "rb") as a, open(os.path.join(two, name), "rb") as b:
                s.check(a.read() == b.read(), f"{name} byte-identical at 1 and 2 ranks")

        train, test = lmtext.split(lmtext.corpus())
        metrics = rows(os.path.join(two, "metrics.csv"))
        s.check(len(test) == 458 and len(train) == 1828, f"split sizes {len(test)} / {len(train)}")
        taps = [(r["checkpoint"], r["layer"]) for r in rows(os.path.join(two, "cka_cka_taps.csv"))]
        folders = sorted({os.path.join(DEMO, "models", c) for c, _ in taps})
        s.check(len(taps) == 60 and len(folders) == 12, f"60 taps of 12 checkpoints: {len(taps)}, {len(folders)}")
        ref = reference_taps(folders, [t for t, _ in test])
        want = minibatch_cka_matrix([ref[t] for t in taps], B)
        got = np.load(os.path.join(two, "cka_cka.npy"))
        err = float(np.max(np.abs(got - want)))
        s.check(got.shape == want.shape and err <= 1e-5, f"CKA matrix against the PyTorch reference: max |diff| {err:.2e}")
        eff = {(r["checkpoint_a"], r["layer_a"]): float(r["value"]) for r in metrics
               if r["analysis"] == "spectrum" and r["metric"] == "effective_rank"}
        worst = max(abs(eff[t] - effective_rank(ref[t])) / effective_rank(ref[t]) for t in taps)
        s.check(len(eff) == 60 and worst <= 1e-6, f"effective ranks against NumPy: worst rel {worst:.2e}")
        acc = [float(r["value"]) for r in metrics if r["analysis"] == "probe" and r["metric"] == "test_top1"]
        s.check(len(acc) == 60 and all(abs(a * 458 - round(a * 458)) < 1e-9 for a in acc),
                f"60 probe accuracies, each k / 458: {acc[:3]}")
    s.finish()


if __name__ == "__main__":
    main()
