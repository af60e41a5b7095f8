"""Forward pass, images/s: `repeval embed` (the whole process: loading the
checkpoint, reading the inputs, writing the tapped output) against PyTorch CPU
(eval, no_grad, the forward loop only) on the same weights, inputs, batch size
and thread count; outputs compared."""
import os

import numpy as np

from common import Row, log, run_proc, run_python, thread_env

TOL = 1e-4  # max |repeval - torch| / max |torch| of the final output (float32), as tests/ref

# model: (repeval model, tapped module, batch, images quick, images full, goal (x PyTorch), input note)
MODELS = {
    "cnn": (None, "fc2", 64, 4096, 10000, 1.5,
            "Fashion-MNIST CNN of the demo (jobs/demo/cnn.yaml, trained weights), 1x28x28"),
    "resnet18-cifar": ("resnet18-cifar", "fc", 64, 128, 1024, 1.2, "ResNet-18, CIFAR stem, 3x32x32, random weights"),
    "resnet50": ("resnet50", "fc", 16, 32, 128, 1.2, "ResNet-50 (torchvision), 3x224x224, random weights"),
    "vit-tiny": ("vit", "heads.head", 16, 16, 192, 1.0, "ViT-Tiny (patch 16, width 192, depth 12, 3 heads), "
                                                        "3x224x224, random weights"),
    "vit-b16": ("vit", "heads.head", 8, 8, 48, 1.2, "ViT-B/16 (torchvision layout: width 768, depth 12, 12 heads), "
                                                    "3x224x224, random weights"),
}


def _rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)) if a.shape == b.shape else float("inf")


def run(ctx):
    rows = []
    cnn_yaml = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            "jobs", "demo", "cnn.yaml")
    for name, (spec, tap, batch, nq, nf, goal, what) in MODELS.items():
        n = nq if ctx.quick else nf
        folder = ctx.scratch(f"forward_{name}")
        run_python("forward_torch.py", ["prepare", name, folder, "--n", n], threads=1)
        ckpt, inp = os.path.join(folder, f"{name}.pt"), os.path.join(folder, f"{name}_input.npy")
        for threads in ((1, 2) if ctx.threads2 else (1,)):
            log(f"  forward: {name}, {n} images, {threads} thread(s)")
            out = os.path.join(folder, f"repeval_{threads}t")
            re_p = run_proc([ctx.repeval, "embed", "--model", spec or cnn_yaml, "--checkpoint", ckpt, "--input", inp,
                             "--layers", tap, "--out", out, "--batch", batch], env=thread_env(threads))
            ref_out = os.path.join(folder, f"torch_{threads}t.npy")
            t_p = run_python("forward_torch.py", ["time", name, folder, "--batch", batch, "--out", ref_out],
                             threads=threads)
            tj = t_p.json()
            err = _rel(np.load(os.path.join(out, f"{tap}.npy")), np.load(ref_out))
            cpu = threads == 1
            t_re, t_ref = (re_p.cpu, tj["cpu_s"]) if cpu else (re_p.wall, tj["wall_s"])
            rate_re, rate_ref = n / t_re, n / t_ref
            ratio = rate_re / rate_ref
            if threads == 1 and name in ("cnn", "resnet18-cifar"):
                ctx.shared["forward_cnn_rate" if name == "cnn" else "forward_resnet_rate"] = rate_re
            rows.append(Row("forward", f"{what}, {n} images, batch {batch}", "images/s" + (" (CPU time)" if cpu else
                                                                                           " (wall)"),
                            rate_re, rate_ref, "PyTorch CPU eval/no_grad", ratio, f">= {goal:g}x",
                            "yes" if ratio >= goal else "no",
                            f"output max rel. error {err:.1e} (tol {TOL:g})", "yes" if err <= TOL else "no",
                            re_p.rss_mb, t_p.rss_mb, threads=threads,
                            notes=f"repeval: whole `repeval embed` process ({t_re:.2f} s: load, read, forward, "
                                  f"write); PyTorch: forward loop only ({t_ref:.2f} s) after one warm-up batch"))
    return rows
