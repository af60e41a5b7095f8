"""`repeval embed` on a float32 safetensors model holds one copy of the weights at
its peak: each tensor's pages of the memory-mapped file leave the resident set once
its float32 copy is made, so the peak RSS stays below the weights + 30% + 64 MiB of
process overhead (keeping the whole mapped file resident as well would need twice
the weights: 346 MiB here). The model is a six-layer GPT-2, 768 wide: 168 MiB in
tensors of at most 9 MiB (a tensor's pages go once its copy is complete, so the
largest tensor counts twice). Its last hidden state still matches the float64
PyTorch reference (hf_ref.py) within 1e-4 relative, so tensors read after others'
pages were dropped are intact.

A child's peak RSS counts the memory of the process that forked it, so the model
and the reference are made in a separate Python process ("prepare"), and repeval
is started from this small process and reaped with wait4."""
import json
import os
import subprocess
import sys

import numpy as np

from common import REPEVAL, Suite, tmpdir

TOL = 1e-4
MIB = 1 << 20
CFG = {"model_type": "gpt2", "vocab_size": 2048, "n_embd": 768, "n_layer": 6, "n_head": 12,
       "n_positions": 64, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5}


def prepare(d):
    """Write d/model (config.json, model.safetensors), d/ids.npy, d/want.npy (float64
    reference of last_hidden_state) and d/weights.json (bytes of the weights)."""
    import hf_ref  # imports PyTorch: only in this child
    sd = hf_ref.random_state_dict(CFG, 3)
    ids = np.random.default_rng(4).integers(0, CFG["vocab_size"], size=(2, 16), dtype=np.int64)
    folder = os.path.join(d, "model")
    os.makedirs(folder)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(CFG, f)
    hf_ref.write_weights(folder, sd, "F32")
    np.save(os.path.join(d, "ids.npy"), ids)
    np.save(os.path.join(d, "want.npy"), hf_ref.forward(CFG, sd, ids)[-1])
    with open(os.path.join(d, "weights.json"), "w") as f:
        json.dump(sum(a.nbytes for a in sd.values()), f)


def main():
    s = Suite()
    with tmpdir() as d:
        subprocess.run([sys.executable, os.path.abspath(__file__), "prepare", d], check=True, timeout=300)
        with open(os.path.join(d, "weights.json")) as f:
            weights = json.load(f)
        out = os.path.join(d, "out")
        with open(os.path.join(d, "stderr.txt"), "w") as fe:
            p = subprocess.Popen([REPEVAL, "embed", "--model", os.path.join(d, "model"), "--input",
                                  os.path.join(d, "ids.npy"), "--layers", "last_hidden_state", "--out", out],
                                 stdout=subprocess.DEVNULL, stderr=fe)
            _, status, ru = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
        with open(os.path.join(d, "stderr.txt")) as f:
            err = f.read()
        own = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) * 1024
        peak = ru.ru_maxrss * 1024
        limit = 1.3 * weights + 64 * MIB
        print(f"weights {weights / MIB:.1f} MiB, peak RSS of embed {peak / MIB:.1f} MiB, limit {limit / MIB:.1f} MiB "
              f"(this process: {own / MIB:.1f} MiB)")
        s.check(p.returncode == 0, f"embed exited {p.returncode}: {err}")
        s.check(own < limit / 2, f"this process peaked at {own / MIB:.0f} MiB: too large to measure its child")
        s.check(peak < limit, f"peak RSS {peak / MIB:.0f} MiB for {weights / MIB:.0f} MiB of weights: "
                              f"the mapped file stays resident next to the float32 copy")
        if p.returncode == 0:
            got = np.load(os.path.join(out, "last_hidden_state.npy")).reshape(2, 16, -1)
            want = np.load(os.path.join(d, "want.npy"))
            rel = float(np.abs(got - want).max() / np.abs(want).max())
            s.check(rel <= TOL, f"last_hidden_state max rel. error {rel:.2e} > {TOL:g}")
    s.finish()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "prepare":
        prepare(sys.argv[2])
    else:
        main()
