"""The forward engine reproduces PyTorch: for every preset and model file
(MLP, a small CNN, a model with every layer type, ResNet-18 CIFAR, ResNet-34,
a ViT), random weights with non-trivial BatchNorm statistics, the outputs of
every tapped module match torch.nn / torchvision in eval mode to a max relative
error of 1e-4 (float32), from .npz, .pt (plain and nested {"model": sd}) and
.safetensors checkpoints. Tap modes (mean, cls, spatial) equal the NumPy
transforms of the flat output; description/checkpoint mismatches are listed."""
import json
import os
import subprocess
import sys

import numpy as np

from common import SOURCE_DIR, Suite, repeval, tmpdir

TOL = 1e-4


def rel_err(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def main():
    s = Suite()
    with tmpdir() as d:
        subprocess.run([sys.executable, os.path.join(SOURCE_DIR, "tests/data/make_forward_fixtures.py"), d], check=True)
        with open(os.path.join(d, "models.json")) as f:
            index = json.load(f)
        for name, info in index.items():
            for fmt in info["formats"]:
                ckpts = [f"{name}.{fmt}"] + ([f"{name}_nested.pt"] if fmt == "pt" else [])
                for ck in ckpts:
                    out = os.path.join(d, f"out_{name}_{fmt}")
                    rc, _, err = repeval("embed", "--model", info["spec"], "--checkpoint", os.path.join(d, ck),
                                         "--input", os.path.join(d, f"{name}_input.npy"),
                                         "--layers", ",".join(info["taps"]), "--out", out, "--batch", 2)
                    if not s.check(rc == 0, f"embed {name} from {ck}: {err}"):
                        continue
                    for t in info["taps"]:
                        got = np.load(os.path.join(out, t + ".npy"))
                        want = np.load(os.path.join(d, f"{name}__{t}.npy"))
                        ok = got.shape == want.shape and got.dtype == np.float32 and rel_err(got, want) <= TOL
                        s.check(ok, f"{name} ({ck}) tap {t}: shape {got.shape} vs {want.shape}, "
                                    f"err {rel_err(got, want) if got.shape == want.shape else None}")
        # tap modes against NumPy transforms of the flattened outputs
        cases = [("resnet18-cifar", "layer2.0", (128, 16, 16)), ("vit", "encoder.layers.encoder_layer_1", (17, 192))]
        for name, tap, shape in cases:
            info = index[name]
            flat = np.load(os.path.join(d, f"{name}__{tap}.npy")).reshape((-1,) + shape)
            for mode in ("mean", "spatial") + (("cls",) if len(shape) == 2 else ()):
                out = os.path.join(d, f"modes_{name}_{mode}")
                rc, _, err = repeval("embed", "--model", info["spec"], "--checkpoint", os.path.join(d, name + ".npz"),
                                     "--input", os.path.join(d, f"{name}_input.npy"), "--layers", f"{tap}:{mode}",
                                     "--out", out)
                if not s.check(rc == 0, f"{name} {tap}:{mode}: {err}"):
                    continue
                got = np.load(os.path.join(out, tap + ".npy"))
                if len(shape) == 3:
                    want = {"mean": flat.mean(axis=(2, 3)),
                            "spatial": flat.reshape(len(flat), shape[0], -1).transpose(0, 2, 1).reshape(-1, shape[0])}[mode]
                else:
                    want = {"mean": flat.mean(axis=1), "spatial": flat.reshape(-1, shape[1]),
                            "cls": flat[:, 0, :]}[mode]
                s.check(got.shape == want.shape and rel_err(got, want) <= TOL,
                        f"{name} {tap}:{mode}: {got.shape} vs {want.shape}")
        # --list shows module names and shapes
        rc, out, err = repeval("embed", "--model", "resnet18-cifar", "--checkpoint",
                               os.path.join(d, "resnet18-cifar.npz"), "--input",
                               os.path.join(d, "resnet18-cifar_input.npy"), "--list")
        s.check(rc == 0 and "layer3.1.conv2" in out and "(256, 8, 8)" in out, f"--list: {err}")
        # mismatches: the CNN description against the MLP checkpoint lists every problem
        rc, out, err = repeval("embed", "--model", index["cnn"]["spec"], "--checkpoint", os.path.join(d, "mlp.npz"),
                               "--input", os.path.join(d, "cnn_input.npy"), "--layers", "fc1", "--out",
                               os.path.join(d, "bad"))
        s.check(rc == 1 and "does not match the model description" in err and "missing tensor 'conv1.weight'" in err,
                f"mismatch report: {err}")
        s.check(not os.path.exists(os.path.join(d, "bad")), "no output folder after a failed bind")
        # an input size other than the model's declared 'input:' is refused at that line
        np.save(os.path.join(d, "wrong.npy"), np.zeros((2, 1, 20, 20), dtype=np.float32))
        rc, out, err = repeval("embed", "--model", index["cnn"]["spec"], "--checkpoint", os.path.join(d, "cnn.npz"),
                               "--input", os.path.join(d, "wrong.npy"), "--layers", "fc1", "--out", os.path.join(d, "w"))
        s.check(rc == 1 and "cnn.yaml:4:8: the model declares input [1, 28, 28] but the data gives [1, 20, 20]" in err,
                f"input mismatch: {err}")
        rc, out, err = repeval("embed", "--model", "resnet18-cifar", "--checkpoint",
                               os.path.join(d, "resnet18-cifar.npz"), "--input",
                               os.path.join(d, "resnet18-cifar_input.npy"), "--layers", "layer9", "--out",
                               os.path.join(d, "w2"))
        s.check(rc == 1 and "no module named 'layer9'" in err, f"unknown tap: {err}")
        rc, out, err = repeval("embed", "--model", "vgg16", "--checkpoint", os.path.join(d, "cnn.npz"), "--input",
                               os.path.join(d, "cnn_input.npy"), "--layers", "x", "--out", os.path.join(d, "w3"))
        s.check(rc == 1 and "vgg16" in err, f"unknown model: {err}")
        bad = os.path.join(d, "bad.yaml")
        with open(bad, "w") as f:
            f.write("input: [1, 28, 28]\nmodules:\n  - {name: conv1, type: conv3d}\n")
        rc, out, err = repeval("embed", "--model", bad, "--checkpoint", os.path.join(d, "cnn.npz"), "--input",
                               os.path.join(d, "cnn_input.npy"), "--layers", "conv1", "--out", os.path.join(d, "w4"))
        s.check(rc == 1 and "bad.yaml:3:25: unknown module type 'conv3d'" in err, f"unknown module type: {err}")
    s.finish()


if __name__ == "__main__":
    main()
