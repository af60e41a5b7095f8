#!/usr/bin/env python3
"""Forward speed of `repeval embed` on a GPT-2-small-shaped model (12 layers x 768,
12 heads, random weights, a 1024-token vocabulary) against PyTorch float32 on the
same weights, both on one thread. Prints tokens per second of CPU time (user +
system), which a busy machine disturbs less than wall time.

usage: bench_hf_gpt2.py REPEVAL_BIN [--batch 8] [--tokens 128] [--repeat 3]"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))
import hf_ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("repeval")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    cfg = {"model_type": "gpt2", "vocab_size": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12,
           "n_positions": 1024, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5}
    B, T = a.batch, a.tokens
    with tempfile.TemporaryDirectory(prefix="repeval-bench-") as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f)
        sd = hf_ref.random_state_dict(cfg, 0)
        hf_ref.write_weights(d, sd, "F32")
        ids = np.random.default_rng(0).integers(0, 1024, (B, T))
        np.save(os.path.join(d, "ids.npy"), ids)
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        cmd = [a.repeval, "embed", "--model", d, "--input", os.path.join(d, "ids.npy"), "--batch", str(B),
               "--layers", "last_hidden_state:last", "--out", os.path.join(d, "out")]
        # the forward alone: one run with the batch once, one with it repeated, the difference
        np.save(os.path.join(d, "ids_r.npy"), np.tile(ids, (a.repeat + 1, 1)))
        cmd_r = cmd[:5] + [os.path.join(d, "ids_r.npy")] + cmd[6:]
        def cpu():
            r = resource.getrusage(resource.RUSAGE_CHILDREN)
            return r.ru_utime + r.ru_stime

        t0 = cpu()
        subprocess.run(cmd, check=True, env=env)
        t1 = cpu()
        subprocess.run(cmd_r, check=True, env=env)
        t2 = cpu()
        per_batch = ((t2 - t1) - (t1 - t0)) / a.repeat
        print(f"repeval: {B * T / per_batch:.0f} tokens/s ({per_batch * 1000:.0f} ms per batch of {B} x {T}; "
              f"load + one batch {(t1 - t0) * 1000:.0f} ms)")
        import torch
        torch.set_num_threads(1)
        with torch.no_grad():
            hf_ref.forward(cfg, sd, ids, dtype=torch.float32)
            t0 = time.process_time()
            for _ in range(a.repeat):
                hf_ref.forward(cfg, sd, ids, dtype=torch.float32)
            per = (time.process_time() - t0) / a.repeat
        print(f"torch {torch.__version__} float32: {B * T / per:.0f} tokens/s ({per * 1000:.0f} ms per batch)")


if __name__ == "__main__":
    main()
