#!/usr/bin/env python3
"""Train the demo CNN on Fashion-MNIST (Debian's dataset-fashion-mnist) from three
seeds and save a checkpoint at every epoch, as a real training-dynamics study
would: epochs 0 (initialisation) to EPOCHS, alternating float16 .safetensors and
torch.save .pt files. CPU, one thread, deterministic.

usage: train.py OUTDIR [--epochs 5] [--train-size 12000]
       -> OUTDIR/seed{0,1,2}/epoch_{00..05}.{safetensors,pt}
"""
import argparse
import gzip
import json
import os
import struct

import numpy as np
import torch
import torch.nn as nn

FMNIST = os.environ.get("FMNIST", "/usr/share/datasets/fashion-mnist")


class SmallCNN(nn.Module):
    """Must match jobs/demo/cnn.yaml (names and order)."""

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
        self.drop = nn.Dropout(0.2)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        for m in self.children():
            x = m(x)
        return x


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def save_safetensors(path, sd):
    header, blobs, off = {}, [], 0
    for k, v in sd.items():
        a = v.detach().cpu().numpy()
        a = a.astype(np.float16) if a.dtype == np.float32 else a
        code = {np.dtype(np.float16): "F16", np.dtype(np.int64): "I64"}[a.dtype]
        b = np.ascontiguousarray(a).tobytes()
        header[k] = {"dtype": code, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    header["__metadata__"] = {"format": "pt", "producer": "jobs/demo/train.py"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    os.replace(tmp, path)


def save(model, out, seed, epoch):
    d = os.path.join(out, f"seed{seed}")
    os.makedirs(d, exist_ok=True)
    sd = model.state_dict()
    if epoch % 2 == 0:
        save_safetensors(os.path.join(d, f"epoch_{epoch:02d}.safetensors"), sd)
    else:
        tmp = os.path.join(d, f"epoch_{epoch:02d}.pt.tmp")
        torch.save({"model": {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}, "epoch": epoch},
                   tmp)
        os.replace(tmp, os.path.join(d, f"epoch_{epoch:02d}.pt"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--train-size", type=int, default=12000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    x = read_idx(os.path.join(FMNIST, "train-images-idx3-ubyte.gz"))[:args.train_size]
    y = read_idx(os.path.join(FMNIST, "train-labels-idx1-ubyte.gz"))[:args.train_size]
    x = (torch.tensor(x, dtype=torch.float32).unsqueeze(1) / 255.0 - 0.286) / 0.353
    y = torch.tensor(y, dtype=torch.int64)
    for seed in range(3):
        torch.manual_seed(seed)
        model = SmallCNN()
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        save(model, args.out, seed, 0)
        g = torch.Generator().manual_seed(1000 + seed)
        for epoch in range(1, args.epochs + 1):
            model.train()
            perm = torch.randperm(len(x), generator=g)
            total, correct = 0.0, 0
            for i in range(0, len(x), 64):
                idx = perm[i:i + 64]
                opt.zero_grad()
                logits = model(x[idx])
                loss = nn.functional.cross_entropy(logits, y[idx])
                loss.backward()
                opt.step()
                total += float(loss) * len(idx)
                correct += int((logits.argmax(1) == y[idx]).sum())
            model.eval()
            save(model, args.out, seed, epoch)
            print(f"seed {seed} epoch {epoch}: loss {total / len(x):.4f}, train accuracy {correct / len(x):.3f}",
                  flush=True)


if __name__ == "__main__":
    main()
