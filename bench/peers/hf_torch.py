#!/usr/bin/python3
"""PyTorch CPU peer of `repeval embed` on Hugging Face model folders: GPT-2,
GPT-NeoX (Pythia) and ViT written as torch.nn modules that follow transformers'
eager implementations (the attention as transformers runs it on PyTorch 1.13,
which has no fused scaled_dot_product_attention), in float32, eval() +
torch.no_grad(), on the weights of the folder.

  hf_torch.py prepare MODEL DIR [--quick] [--n N] [--seed S]
      write DIR/config.json, DIR/model.safetensors (float32, random weights) and
      DIR/input.npy (N token-id sequences, int64, or N images, float32); print one
      JSON object describing the shapes
  hf_torch.py time MODEL DIR [--batch B] [--n N] [--out Y.npy]
      run the first N inputs through the network in batches of B after one warm-up
      batch; print one JSON object with the wall and CPU seconds of the forward loop
      (loading and model construction excluded); Y gets last_hidden_state of the
      first batch, flattened per sample

MODEL: gpt2-small (12 x 768, 12 heads, vocab 50257, 1024 positions, 8 x 512 tokens),
pythia-160m (gpt_neox, 12 x 768, 12 heads, rotary_pct 0.25, parallel residual, vocab
50304, 8 x 512 tokens), vit-b16 (ViT-B/16, 224 x 224, 12 x 768, MLP 3072); --quick:
4 layers, 256 tokens (ViT: 4 layers at 224).

Weights: shapes and names of the base models (tests/ref/hf_ref.py), every matrix
N(0, 1 / fan_in) so that activations keep their scale through depth, biases
N(0, 0.1^2), norm scales 1 + N(0, 0.2^2), embeddings N(0, 1)."""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "ref"))
import hf_ref  # noqa: E402  (random state dicts and the safetensors writer)


def config(name, quick):
    L = 4 if quick else 12
    if name == "gpt2-small":
        return {"model_type": "gpt2", "architectures": ["GPT2Model"], "vocab_size": 50257, "n_embd": 768,
                "n_layer": L, "n_head": 12, "n_positions": 1024, "n_inner": None,
                "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5}
    if name == "pythia-160m":
        return {"model_type": "gpt_neox", "architectures": ["GPTNeoXModel"], "vocab_size": 50304,
                "hidden_size": 768, "num_hidden_layers": L, "num_attention_heads": 12, "intermediate_size": 3072,
                "hidden_act": "gelu", "rotary_pct": 0.25, "rotary_emb_base": 10000, "max_position_embeddings": 2048,
                "layer_norm_eps": 1e-5, "use_parallel_residual": True, "tie_word_embeddings": False}
    if name == "vit-b16":
        return {"model_type": "vit", "architectures": ["ViTModel"], "hidden_size": 768, "num_hidden_layers": L,
                "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
                "image_size": 224, "patch_size": 16, "num_channels": 3, "qkv_bias": True}
    raise SystemExit(f"unknown model {name}")


MODELS = ("gpt2-small", "pythia-160m", "vit-b16")
EMBEDDINGS = ("wte.weight", "wpe.weight", "embed_in.weight", "embeddings.cls_token", "embeddings.position_embeddings")


def seq_len(name, quick):
    return None if name == "vit-b16" else (256 if quick else 512)


def rescale(cfg, sd):
    """hf_ref draws every weight N(0, 0.15^2); make matrices N(0, 1 / fan_in) and embeddings N(0, 1)."""
    gpt2 = cfg["model_type"] == "gpt2"
    for k, a in sd.items():
        if k in EMBEDDINGS:
            sd[k] = a / np.float32(0.15)
        elif k.endswith("weight") and a.ndim >= 2 and not k.endswith("norm.weight"):
            fan_in = a.shape[0] if gpt2 else int(np.prod(a.shape[1:]))  # GPT-2's Conv1D stores (in, out)
            sd[k] = a * np.float32(1 / (0.15 * math.sqrt(fan_in)))
    return sd


def prepare(name, folder, quick, n, seed):
    os.makedirs(folder, exist_ok=True)
    cfg = config(name, quick)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    if cfg["model_type"] == "vit":
        sd = hf_ref.random_encoder_state_dict(cfg, seed)
    else:
        sd = hf_ref.random_state_dict(cfg, seed)
    sd = rescale(cfg, sd)
    hf_ref.write_weights(folder, sd, "F32")
    params = sum(a.size for a in sd.values())
    del sd
    rng = np.random.default_rng(seed + 1)
    T = seq_len(name, quick)
    if T:
        x = rng.integers(0, cfg["vocab_size"], size=(n, T), dtype=np.int64)
    else:
        x = rng.standard_normal((n, 3, 224, 224), dtype=np.float32)
    np.save(os.path.join(folder, "input.npy"), x)
    print(json.dumps({"model": name, "params": int(params), "n": n, "seq_len": T,
                      "weights_bytes": os.path.getsize(os.path.join(folder, "model.safetensors"))}))


# ---- loading ------------------------------------------------------------------------


def read_safetensors(path):
    """name -> float32 tensor of a single-file F32 safetensors (as written by hf_ref)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        base = 8 + n
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        if v["dtype"] != "F32":
            raise SystemExit(f"{path}: {k} is {v['dtype']}, this peer reads F32")
        a, b = v["data_offsets"]
        out[k] = torch.from_numpy(np.array(mm[base + a:base + b].view(np.float32)).reshape(v["shape"]))
    return out


def linear(sd, name, transposed=False):
    """nn.Linear from name.weight (out, in), or from GPT-2's Conv1D (in, out)."""
    w = sd[name + ".weight"]
    w = w.t() if transposed else w
    m = nn.Linear(w.shape[1], w.shape[0], bias=name + ".bias" in sd)
    m.weight.data.copy_(w)
    if m.bias is not None:
        m.bias.data.copy_(sd[name + ".bias"])
    return m


def layer_norm(sd, name, eps):
    w = sd[name + ".weight"]
    m = nn.LayerNorm(w.shape[0], eps=eps)
    m.weight.data.copy_(w)
    m.bias.data.copy_(sd[name + ".bias"])
    return m


def eager_attention(q, k, v, causal):
    """q, k, v (B, H, T, d): transformers' eager attention (scores, mask, softmax, weighted sum)."""
    s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if causal:
        T = q.shape[-2]
        allowed = torch.ones(T, T, dtype=torch.bool).tril()
        s = torch.where(allowed, s, torch.tensor(torch.finfo(s.dtype).min, dtype=s.dtype))
    return torch.matmul(F.softmax(s, dim=-1), v)


# ---- models -------------------------------------------------------------------------


class GPT2(nn.Module):
    def __init__(self, cfg, sd):
        super().__init__()
        self.H, eps = cfg["n_head"], cfg["layer_norm_epsilon"]
        self.wte = nn.Embedding.from_pretrained(sd["wte.weight"])
        self.wpe = nn.Embedding.from_pretrained(sd["wpe.weight"])
        self.blocks = nn.ModuleList()
        for l in range(cfg["n_layer"]):
            p = f"h.{l}."
            self.blocks.append(nn.ModuleDict({
                "ln_1": layer_norm(sd, p + "ln_1", eps), "c_attn": linear(sd, p + "attn.c_attn", True),
                "c_proj": linear(sd, p + "attn.c_proj", True), "ln_2": layer_norm(sd, p + "ln_2", eps),
                "c_fc": linear(sd, p + "mlp.c_fc", True), "mlp_proj": linear(sd, p + "mlp.c_proj", True)}))
        self.ln_f = layer_norm(sd, "ln_f", eps)

    def forward(self, ids):
        B, T = ids.shape
        h = self.wte(ids) + self.wpe(torch.arange(T))[None]
        for b in self.blocks:
            q, k, v = (z.view(B, T, self.H, -1).transpose(1, 2) for z in b["c_attn"](b["ln_1"](h)).chunk(3, dim=-1))
            h = h + b["c_proj"](eager_attention(q, k, v, True).transpose(1, 2).reshape(B, T, -1))
            h = h + b["mlp_proj"](F.gelu(b["c_fc"](b["ln_2"](h)), approximate="tanh"))
        return self.ln_f(h)


class NeoX(nn.Module):
    def __init__(self, cfg, sd):
        super().__init__()
        self.H, eps = cfg["num_attention_heads"], cfg["layer_norm_eps"]
        self.hd = cfg["hidden_size"] // self.H
        self.rot = int(self.hd * cfg["rotary_pct"])
        self.cfg = cfg
        self.embed = nn.Embedding.from_pretrained(sd["embed_in.weight"])
        self.layers = nn.ModuleList()
        for l in range(cfg["num_hidden_layers"]):
            p = f"layers.{l}."
            self.layers.append(nn.ModuleDict({
                "ln1": layer_norm(sd, p + "input_layernorm", eps), "qkv": linear(sd, p + "attention.query_key_value"),
                "dense": linear(sd, p + "attention.dense"), "ln2": layer_norm(sd, p + "post_attention_layernorm", eps),
                "fc": linear(sd, p + "mlp.dense_h_to_4h"), "proj": linear(sd, p + "mlp.dense_4h_to_h")}))
        self.final = layer_norm(sd, "final_layer_norm", eps)

    def forward(self, ids):
        B, T = ids.shape
        H, hd, r = self.H, self.hd, self.rot
        cos, sin = (z.float()[:, None] for z in hf_ref.rope_cos_sin(self.cfg, r, torch.arange(T)[None]))  # (1,1,T,r)

        def rope(x):
            x1, x2 = x[..., :r // 2], x[..., r // 2:r]
            return torch.cat((x[..., :r] * cos + torch.cat((-x2, x1), -1) * sin, x[..., r:]), -1)

        h = self.embed(ids)
        for m in self.layers:
            qkv = m["qkv"](m["ln1"](h)).view(B, T, H, 3 * hd).permute(0, 2, 1, 3)
            q, k, v = qkv[..., :hd], qkv[..., hd:2 * hd], qkv[..., 2 * hd:]
            a = m["dense"](eager_attention(rope(q), rope(k), v, True).transpose(1, 2).reshape(B, T, -1))
            h = m["proj"](F.gelu(m["fc"](m["ln2"](h)))) + a + h
        return self.final(h)


class ViT(nn.Module):
    def __init__(self, cfg, sd):
        super().__init__()
        self.H, eps = cfg["num_attention_heads"], cfg["layer_norm_eps"]
        w = sd["embeddings.patch_embeddings.projection.weight"]
        self.patch = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], stride=w.shape[2])
        self.patch.weight.data.copy_(w)
        self.patch.bias.data.copy_(sd["embeddings.patch_embeddings.projection.bias"])
        self.cls = nn.Parameter(sd["embeddings.cls_token"])
        self.pos = nn.Parameter(sd["embeddings.position_embeddings"])
        self.layers = nn.ModuleList()
        for l in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{l}."
            a = p + "attention.attention."
            self.layers.append(nn.ModuleDict({
                "ln1": layer_norm(sd, p + "layernorm_before", eps), "q": linear(sd, a + "query"),
                "k": linear(sd, a + "key"), "v": linear(sd, a + "value"), "o": linear(sd, p + "attention.output.dense"),
                "ln2": layer_norm(sd, p + "layernorm_after", eps), "fc": linear(sd, p + "intermediate.dense"),
                "proj": linear(sd, p + "output.dense")}))
        self.final = layer_norm(sd, "layernorm", eps)

    def forward(self, x):
        B = x.shape[0]
        h = torch.cat([self.cls.expand(B, -1, -1), self.patch(x).flatten(2).transpose(1, 2)], 1) + self.pos
        T = h.shape[1]
        for m in self.layers:
            z = m["ln1"](h)
            q, k, v = (m[n](z).view(B, T, self.H, -1).transpose(1, 2) for n in "qkv")
            h = h + m["o"](eager_attention(q, k, v, False).transpose(1, 2).reshape(B, T, -1))
            h = h + m["proj"](F.gelu(m["fc"](m["ln2"](h))))
        return self.final(h)  # last_hidden_state (the pooler is not timed)


def run(name, folder, batch, n, out):
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    sd = read_safetensors(os.path.join(folder, "model.safetensors"))
    model = {"gpt2": GPT2, "gpt_neox": NeoX, "vit": ViT}[cfg["model_type"]](cfg, sd).eval()
    del sd
    x = torch.from_numpy(np.load(os.path.join(folder, "input.npy"), mmap_mode="r")[:n].copy())
    with torch.no_grad():
        first = model(x[:batch])  # warm-up: first-call allocations
        t0, c0 = time.perf_counter(), time.process_time()
        for s in range(0, len(x), batch):
            model(x[s:s + batch])
        t, c = time.perf_counter() - t0, time.process_time() - c0
    if out:
        np.save(out, first.reshape(first.shape[0], -1).numpy())
    print(json.dumps({"model": name, "n": len(x), "batch": batch, "wall_s": t, "cpu_s": c,
                      "threads": torch.get_num_threads(), "torch": torch.__version__}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["prepare", "time"])
    ap.add_argument("model", choices=MODELS)
    ap.add_argument("folder")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.what == "prepare":
        prepare(a.model, a.folder, a.quick, a.n, a.seed)
    else:
        run(a.model, a.folder, a.batch, a.n, a.out)


if __name__ == "__main__":
    main()
