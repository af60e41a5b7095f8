"""Hugging Face model folders: tokens/s (images/s) of `repeval embed` on a
GPT-2-small-shaped and a Pythia-160M-shaped model (8 x 512 tokens) and on
ViT-B/16 at 224 x 224 (batch 8), against PyTorch CPU (bench/peers/hf_torch.py:
transformers' eager modules in float32, eval, no_grad, the same threads) on the
same config.json + model.safetensors; outputs compared; and the peak memory of
`repeval embed` against the weights as stored plus the activations of one batch.

The forward alone is timed by running `repeval embed` twice, on the first batch
and on 1 + k batches, and dividing k batches by the difference (loading the
weights, reading the inputs and writing the outputs cancel out)."""
import json
import os
import re

import numpy as np

from common import Row, log, run_proc, run_python, thread_env

TOL = 1e-4       # max |repeval - torch| / max |torch| of last_hidden_state (float32)
GOAL = 1.0       # speed ratio
MEM_GOAL = 1.10  # peak RSS / (weights as stored + activations of one batch)

# model: (batch, extra timed batches full, extra timed batches quick, description, full shape, quick shape)
MODELS_ALL = {
    "gpt2-small": (8, 2, 1, "GPT-2-small-shaped (gpt2, 12 x 768, 12 heads, vocab 50 257)", "8 x 512 tokens",
                   "4 layers, 8 x 256 tokens"),
    "pythia-160m": (8, 2, 1, "Pythia-160M-shaped (gpt_neox, 12 x 768, 12 heads, rotary 0.25, parallel "
                             "residual, vocab 50 304)", "8 x 512 tokens", "4 layers, 8 x 256 tokens"),
    "vit-b16": (8, 4, 2, "ViT-B/16 (HF ViTModel, 12 x 768, 12 heads, MLP 3072)", "224 x 224, batch 8",
                "4 layers, 224 x 224, batch 8"),
}
# REPEVAL_BENCH_HF_MODELS=vit-b16,... runs only the models named
MODELS = {k: v for k, v in MODELS_ALL.items()
          if k in os.environ.get("REPEVAL_BENCH_HF_MODELS", ",".join(MODELS_ALL)).split(",")}
MEM_LINE = re.compile(r"forward memory: (\d+) activation buffers of (\d+) floats, workspace (\d+) floats, "
                      r"taps (\d+) bytes")


def _rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)) if a.shape == b.shape else float("inf")


def _prepare(ctx, name, n):
    """The model folder and n inputs, generated once per shape and reused."""
    folder = ctx.scratch(f"hf_{name}{'_quick' if ctx.quick else ''}")
    stamp = os.path.join(folder, "prepared.json")
    if os.path.exists(stamp):
        with open(stamp) as f:
            info = json.load(f)
        if info.get("n") == n and all(os.path.exists(os.path.join(folder, x))
                                      for x in ("config.json", "model.safetensors", "input.npy")):
            return folder, info
    log(f"  hf: writing {name} ({'quick' if ctx.quick else 'full'} shape, {n} inputs)")
    p = run_python("hf_torch.py", ["prepare", name, folder, "--n", n] + (["--quick"] if ctx.quick else []), threads=1)
    info = p.json()
    with open(stamp, "w") as f:
        json.dump(info, f)
    return folder, info


def _embed(ctx, folder, out, n, batch, threads, debug=False):
    env = thread_env(threads, {"REPEVAL_LOG": "debug"} if debug else None)
    return run_proc([ctx.repeval, "embed", "--model", folder, "--input", os.path.join(folder, "input.npy"),
                     "--limit", n, "--batch", batch, "--layers", "last_hidden_state", "--out", out], env=env)


def run(ctx):
    rows = []
    for name, (batch, kf, kq, what, shape_f, shape_q) in MODELS.items():
        k = kq if ctx.quick else kf
        n1, n2 = batch, batch * (1 + k)
        folder, info = _prepare(ctx, name, n2)
        T = info["seq_len"]
        per = T or 1  # tokens (or images) per sample
        unit = "tokens/s" if T else "images/s"
        shape = shape_q if ctx.quick else shape_f
        mem = None
        for threads in ((1, 2) if ctx.threads2 else (1,)):
            log(f"  hf: {name}, {threads} thread(s)")
            out1, out2 = (os.path.join(folder, f"repeval_{threads}t_{m}") for m in ("a", "b"))
            p1 = _embed(ctx, folder, out1, n1, batch, threads)
            p2 = _embed(ctx, folder, out2, n2, batch, threads, debug=threads == 1)
            ref_out = os.path.join(folder, f"torch_{threads}t.npy")
            tp = run_python("hf_torch.py", ["time", name, folder, "--batch", batch, "--n", n2, "--out", ref_out],
                            threads=threads)
            tj = tp.json()
            err = _rel(np.load(os.path.join(out1, "last_hidden_state.npy")), np.load(ref_out))
            cpu = threads == 1
            d_re = (p2.cpu - p1.cpu) if cpu else (p2.wall - p1.wall)
            t_ref = tj["cpu_s"] if cpu else tj["wall_s"]
            if d_re <= 0:
                rows.append(Row("hf", f"{what}, {shape}", unit, float("nan"), threads=threads, check_ok="no",
                                check=f"no time difference between {n1} and {n2} samples ({d_re:.2f} s)"))
                continue
            rate_re, rate_ref = (n2 - n1) * per / d_re, n2 * per / t_ref
            ratio = rate_re / rate_ref
            load = (p1.cpu if cpu else p1.wall) - d_re / k
            rows.append(Row("hf", f"{what}, {shape}", unit + (" (CPU time)" if cpu else " (wall)"), rate_re, rate_ref,
                            "PyTorch CPU eval/no_grad", ratio, f">= {GOAL:g}x", "yes" if ratio >= GOAL else "no",
                            f"last_hidden_state max rel. error {err:.1e} (tol {TOL:g})", "yes" if err <= TOL else "no",
                            p2.rss_mb, tp.rss_mb, threads=threads,
                            notes=f"repeval: forward only, {n2 - n1} samples in {d_re:.2f} s (difference of "
                                  f"`repeval embed` on {n1} and {n2} samples; loading, reading and writing "
                                  f"{max(load, 0):.2f} s); PyTorch: forward loop over {n2} samples ({t_ref:.2f} s) "
                                  f"after one warm-up batch"))
            if threads == 1:
                m = MEM_LINE.search(p2.err)
                if not m:
                    rows.append(Row("hf", f"peak memory, {what}, {shape}", "MB", p2.rss_mb, check_ok="no",
                                    check="repeval printed no 'forward memory' line at REPEVAL_LOG=debug"))
                    continue
                nbufs, buf, work, taps = (int(x) for x in m.groups())
                mem = (nbufs, buf, work, taps, p2.rss_mb, tp.rss_mb)
        if mem:
            nbufs, buf, work, taps, rss, ref_rss = mem
            wbytes = info["weights_bytes"]
            act = 4 * (nbufs * buf + work) + taps
            budget = (wbytes + act) / 2 ** 20
            ratio = rss / budget
            rows.append(Row("hf", f"peak memory, {what}, {shape}", "MB", rss, budget,
                            "weights as stored + activations of one batch", ratio, f"<= {MEM_GOAL:.2f}",
                            "yes" if ratio <= MEM_GOAL else "no", repeval_rss_mb=rss, reference_rss_mb=ref_rss,
                            ratio_kind="/",
                            notes=f"ratio column here is peak RSS / budget, not a speed-up; weights "
                                  f"{wbytes / 2 ** 20:.1f} MB (float32 safetensors, {info['params']:,} parameters); "
                                  f"activations {act / 2 ** 20:.1f} MB: {nbufs} pool buffers of {buf:,} floats "
                                  f"(batch {batch} x the largest activation of a sample), attention workspace "
                                  f"{work:,} floats, the tap's copy {taps / 2 ** 20:.1f} MB; PyTorch peer's peak "
                                  f"{ref_rss:.0f} MB"))
    return rows
