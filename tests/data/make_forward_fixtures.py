#!/usr/bin/env python3
"""Oracle fixtures for the forward engine: build models with torch.nn /
torchvision (random weights, non-trivial BatchNorm statistics), run fixed inputs
in eval mode with forward hooks, and save for each model:
  <model>.npz            state_dict (float32 arrays keyed by state_dict name)
  <model>.pt             the same state_dict through torch.save
  <model>.safetensors    the same through a minimal safetensors writer
  <model>_input.npy      inputs
  <model>__<tap>.npy     outputs of tapped modules, flattened per sample
and models.json describing model spec, input and taps.

usage: make_forward_fixtures.py OUTDIR [--full]   (--full adds ResNet-50 at 64 x 64)
"""
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.AvgPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(16 * 7 * 7, 32)
        self.relu3 = nn.ReLU()
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        for m in self.children():
            x = m(x)
        return x


class Zoo(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(4, 12, (3, 5), stride=(2, 1), padding=(1, 2))
        self.act1 = nn.SiLU()
        self.grouped = nn.Conv2d(12, 12, 3, padding=2, dilation=2, groups=3)
        self.bn = nn.BatchNorm2d(12, eps=1e-3)
        self.act2 = nn.GELU()
        self.dw = nn.Conv2d(12, 12, 3, stride=2, padding=1, groups=12)
        self.act3 = nn.Tanh()
        self.pw = nn.Conv2d(12, 6, 1)
        self.apool = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        self.mpool = nn.MaxPool2d(2, stride=1, padding=1)
        self.adapt = nn.AdaptiveAvgPool2d((3, 2))
        self.flatten = nn.Flatten()
        self.head = nn.Sequential(nn.Linear(36, 20), nn.BatchNorm1d(20), nn.Sigmoid(),
                                  nn.LayerNorm(20, eps=1e-4), nn.Linear(20, 5, bias=False))

    def forward(self, x):
        for m in self.children():
            x = m(x)
        return x


def randomize_bn(model, gen):
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=gen) * 2 + 0.2)
            m.weight.data.copy_(torch.randn(n, generator=gen) * 0.5 + 1)
            m.bias.data.copy_(torch.randn(n, generator=gen) * 0.2)
            m.num_batches_tracked.fill_(7)
        if isinstance(m, nn.LayerNorm):
            m.weight.data.copy_(torch.randn(m.weight.shape, generator=gen) * 0.5 + 1)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=gen) * 0.2)


def write_safetensors(path, sd):
    header, offset, blobs = {}, 0, []
    for k, v in sd.items():
        a = np.ascontiguousarray(v.detach().cpu().numpy())
        code = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64", np.dtype(np.float16): "F16"}[a.dtype]
        b = a.tobytes()
        header[k] = {"dtype": code, "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def models(full):
    g = torch.Generator().manual_seed(0)
    mlp = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 2))
    yield "mlp", "mlp", mlp, torch.randn(9, 10, generator=g), ["0", "1", "2", "3", "4"]
    yield ("cnn", os.path.join(HERE, "..", "..", "jobs", "demo", "cnn.yaml"), SmallCNN(), torch.randn(5, 1, 28, 28, generator=g),
           ["conv1", "bn1", "relu1", "pool1", "conv2", "pool2", "fc1", "fc2"])
    yield ("zoo", os.path.join(HERE, "models", "zoo.yaml"), Zoo(), torch.randn(6, 4, 17, 15, generator=g),
           ["stem", "grouped", "bn", "act2", "dw", "pw", "apool", "mpool", "adapt", "head.0", "head.1", "head.3",
            "head.4"])
    r = torchvision.models.resnet18(num_classes=10)
    r.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    r.maxpool = nn.Identity()
    yield ("resnet18-cifar", "resnet18-cifar", r, torch.randn(3, 3, 32, 32, generator=g),
           ["conv1", "bn1", "layer1.0.conv1", "layer1", "layer2.0.downsample", "layer2.0", "layer3.1.bn2", "layer4",
            "avgpool", "fc"])
    r = torchvision.models.resnet34(num_classes=7)
    yield "resnet34", "resnet34", r, torch.randn(2, 3, 40, 48, generator=g), ["maxpool", "layer3", "fc"]
    if full:
        r = torchvision.models.resnet50(num_classes=10)
        yield ("resnet50", "resnet50", r, torch.randn(2, 3, 64, 64, generator=g),
               ["layer1.0.bn2", "layer1", "layer3.2", "avgpool", "fc"])
    v = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=3,
                                             hidden_dim=192, mlp_dim=384, num_classes=10)
    with torch.no_grad():
        v.heads.head.weight.copy_(torch.randn(v.heads.head.weight.shape, generator=g) * 0.1)
        v.class_token.copy_(torch.randn(v.class_token.shape, generator=g))
        v.encoder.pos_embedding.copy_(torch.randn(v.encoder.pos_embedding.shape, generator=g) * 0.1)
    yield ("vit", "vit", v, torch.randn(3, 3, 32, 32, generator=g),
           ["conv_proj", "encoder.layers.encoder_layer_0.ln_1", "encoder.layers.encoder_layer_0.self_attention",
            "encoder.layers.encoder_layer_0.mlp", "encoder.layers.encoder_layer_0", "encoder.layers.encoder_layer_1",
            "encoder.ln", "heads.head"])


def main():
    out = sys.argv[1]
    full = "--full" in sys.argv
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(1)
    index = {}
    for name, spec, model, x, taps in models(full):
        gen = torch.Generator().manual_seed(len(name))
        randomize_bn(model, gen)
        model.eval()
        captured = {}
        mods = dict(model.named_modules())

        def hook(tag):
            def f(_m, _inp, outp):
                if isinstance(outp, tuple):  # MultiheadAttention returns (output, weights)
                    outp = outp[0]
                captured[tag] = outp.detach().reshape(outp.shape[0], -1).numpy().copy()
            return f

        for t in taps:
            mods[t].register_forward_hook(hook(t))
        with torch.no_grad():
            model(x)
        sd = model.state_dict()
        np.savez(os.path.join(out, name + ".npz"), **{k: v.numpy() for k, v in sd.items()})
        formats = ["npz"]
        if sum(v.numel() for v in sd.values()) < 1_000_000:  # small models in every format
            torch.save(sd, os.path.join(out, name + ".pt"))
            torch.save({"model": sd, "epoch": 3}, os.path.join(out, name + "_nested.pt"))
            write_safetensors(os.path.join(out, name + ".safetensors"), sd)
            formats += ["pt", "safetensors"]
        np.save(os.path.join(out, name + "_input.npy"), x.numpy())
        for t in taps:
            np.save(os.path.join(out, f"{name}__{t}.npy"), captured[t])
        index[name] = {"spec": spec, "taps": taps, "formats": formats}
    with open(os.path.join(out, "models.json"), "w") as f:
        json.dump(index, f, indent=1)


if __name__ == "__main__":
    main()
