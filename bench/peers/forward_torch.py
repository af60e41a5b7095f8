#!/usr/bin/python3
"""PyTorch CPU peer of `repeval embed`: the same network, weights and inputs,
eval() + torch.no_grad(), the same batch size and thread count.

  forward_torch.py prepare MODEL DIR [--n N] [--seed S]
      write DIR/MODEL.pt (random weights with non-trivial BatchNorm statistics, or
      the demo's trained checkpoint for the CNN) and DIR/MODEL_input.npy
  forward_torch.py time MODEL DIR [--batch B] [--out Y.npy]
      run the inputs through the network; print one JSON object with the wall and
      CPU seconds of the forward loop (model construction and loading excluded)

MODEL: cnn (jobs/demo/cnn.yaml, Fashion-MNIST 1x28x28), resnet18-cifar (torchvision
ResNet-18 with the CIFAR stem, 3x32x32), resnet50 (torchvision ResNet-50, 3x224x224),
vit-tiny (torchvision VisionTransformer, patch 16, width 192, depth 12, 3 heads, MLP
768, 3x224x224), vit-b16 (torchvision ViT-B/16: width 768, depth 12, 12 heads, MLP
3072, 3x224x224)."""
import argparse
import importlib.util
import json
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torchvision

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO_CKPT = os.path.join(ROOT, "jobs", "demo", "checkpoints", "seed0", "epoch_05.pt")
INPUT = {"cnn": (1, 28, 28), "resnet18-cifar": (3, 32, 32), "resnet50": (3, 224, 224), "vit-tiny": (3, 224, 224),
         "vit-b16": (3, 224, 224)}


def small_cnn():
    spec = importlib.util.spec_from_file_location("demo_train", os.path.join(ROOT, "jobs", "demo", "train.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.SmallCNN()


def build(name):
    if name == "cnn":
        return small_cnn()
    if name == "resnet18-cifar":
        m = torchvision.models.resnet18(num_classes=10)
        m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        m.maxpool = nn.Identity()
        return m
    if name == "resnet50":
        return torchvision.models.resnet50(num_classes=1000)
    if name == "vit-tiny":
        return torchvision.models.VisionTransformer(image_size=224, patch_size=16, num_layers=12, num_heads=3,
                                                    hidden_dim=192, mlp_dim=768, num_classes=1000)
    if name == "vit-b16":
        return torchvision.models.VisionTransformer(image_size=224, patch_size=16, num_layers=12, num_heads=12,
                                                    hidden_dim=768, mlp_dim=3072, num_classes=1000)
    raise SystemExit(f"unknown model {name}")


def randomise(model, gen):
    """Non-trivial BatchNorm statistics and LayerNorm affine terms (the defaults are identities)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.randn(m.num_features, generator=gen) * 0.2 + 1)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            if isinstance(m, nn.LayerNorm):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * 0.2 + 1)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
        if isinstance(model, torchvision.models.VisionTransformer):  # torchvision zero-initialises the head
            model.heads.head.weight.copy_(torch.randn(model.heads.head.weight.shape, generator=gen) * 0.05)
            model.class_token.copy_(torch.randn(model.class_token.shape, generator=gen))
            model.encoder.pos_embedding.copy_(torch.randn(model.encoder.pos_embedding.shape, generator=gen) * 0.1)


def prepare(name, folder, n, seed):
    os.makedirs(folder, exist_ok=True)
    ckpt = os.path.join(folder, f"{name}.pt")
    if name == "cnn":  # the demo's trained weights (stored as float16), as a float32 state_dict
        sd = torch.load(DEMO_CKPT)["model"]
        torch.save({k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, ckpt)
    else:
        torch.manual_seed(seed)
        model = build(name)
        randomise(model, torch.Generator().manual_seed(seed))
        torch.save(model.state_dict(), ckpt)
    rng = np.random.default_rng(seed)
    np.save(os.path.join(folder, f"{name}_input.npy"), rng.standard_normal((n,) + INPUT[name], dtype=np.float32))


def run(name, folder, batch, out):
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    model = build(name)
    model.load_state_dict(torch.load(os.path.join(folder, f"{name}.pt")))
    model.eval()
    x = torch.from_numpy(np.load(os.path.join(folder, f"{name}_input.npy")))
    outs = []
    with torch.no_grad():
        model(x[:min(batch, len(x))])  # warm-up: first-call allocations, as repeval's planning
        t0, c0 = time.perf_counter(), time.process_time()
        for s in range(0, len(x), batch):
            outs.append(model(x[s:s + batch]))
        t, c = time.perf_counter() - t0, time.process_time() - c0
    if out:
        np.save(out, torch.cat(outs).numpy())
    print(json.dumps({"model": name, "n": len(x), "batch": batch, "wall_s": t, "cpu_s": c,
                      "threads": torch.get_num_threads(), "torch": torch.__version__}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["prepare", "time"])
    ap.add_argument("model", choices=sorted(INPUT))
    ap.add_argument("folder")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.what == "prepare":
        prepare(a.model, a.folder, a.n, a.seed)
    else:
        run(a.model, a.folder, a.batch, a.out)


if __name__ == "__main__":
    main()
