"""GPT-NeoX (Black et al. 2022; the architecture of Pythia) in plain PyTorch, with the
module and tensor names of transformers' GPTNeoXForCausalLM, and Hugging Face model
folders written and read without transformers: config.json (the keys save_pretrained
writes for a GPTNeoXConfig), generation_config.json, model.safetensors (written here
with struct + json) and the tokenizer files.

Per block, with use_parallel_residual (Pythia's setting):
    y = x + attention(input_layernorm(x)) + mlp(post_attention_layernorm(x))
and without it h = x + attention(input_layernorm(x)), y = h + mlp(post_attention_layernorm(h)).
The attention is causal with a fused query_key_value projection laid out per head
([q, k, v] of head_dim each, head after head); rotary embeddings (Su et al. 2021) turn
the first rotary_pct of each head's features, in the rotate-half layout, with angles
computed in float32. The MLP is dense_4h_to_h(gelu(dense_h_to_4h(x))), exact GELU.
hidden_states are the embedding, the output of each block, and the last block's output
after final_layer_norm (transformers' output_hidden_states)."""
import json
import math
import os
import shutil
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIG_DEFAULTS = {
    "architectures": ["GPTNeoXForCausalLM"],
    "attention_bias": True,
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "classifier_dropout": 0.1,
    "eos_token_id": 0,
    "hidden_act": "gelu",
    "hidden_dropout": 0.0,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-05,
    "model_type": "gpt_neox",
    "rope_scaling": None,
    "rotary_emb_base": 10000,
    "rotary_pct": 0.25,
    "tie_word_embeddings": False,
    "use_cache": True,
    "use_parallel_residual": True,
}


def make_config(vocab_size, hidden_size, num_hidden_layers, num_attention_heads, intermediate_size,
                max_position_embeddings, dtype="float16"):
    cfg = dict(CONFIG_DEFAULTS, vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=num_hidden_layers,
               num_attention_heads=num_attention_heads, intermediate_size=intermediate_size,
               max_position_embeddings=max_position_embeddings, torch_dtype=dtype)
    return dict(sorted(cfg.items()))


def rotate_half(x):
    d = x.shape[-1] // 2
    return torch.cat((-x[..., d:], x[..., :d]), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        D, H = cfg["hidden_size"], cfg["num_attention_heads"]
        self.heads, self.head_dim = H, D // H
        self.rot = int(self.head_dim * cfg["rotary_pct"])
        bias = cfg["attention_bias"]
        self.query_key_value = nn.Linear(D, 3 * D, bias=bias)
        self.dense = nn.Linear(D, D, bias=bias)
        base = float(cfg["rotary_emb_base"])
        inv = 1.0 / (base ** (torch.arange(0, self.rot, 2, dtype=torch.int64).float() / self.rot))
        self.register_buffer("inv_freq", inv, persistent=False)  # float32, not in the state_dict

    def forward(self, x, keep):
        """x (B, T, D); keep (B, T, T) bool: key allowed for the query."""
        B, T, D = x.shape
        qkv = self.query_key_value(x).view(B, T, self.heads, 3 * self.head_dim).permute(0, 2, 1, 3)
        q, k, v = qkv.split(self.head_dim, dim=-1)  # (B, H, T, hd) each
        ang = torch.outer(torch.arange(T, dtype=torch.float32), self.inv_freq.float())
        emb = torch.cat((ang, ang), dim=-1)
        cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)

        def rope(t):
            r, p = t[..., :self.rot], t[..., self.rot:]
            return torch.cat((r * cos + rotate_half(r) * sin, p), dim=-1)

        q, k = rope(q), rope(k)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(~keep[:, None], torch.finfo(scores.dtype).min)
        out = F.softmax(scores, dim=-1) @ v
        return self.dense(out.permute(0, 2, 1, 3).reshape(B, T, D))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.dense_h_to_4h = nn.Linear(cfg["hidden_size"], cfg["intermediate_size"])
        self.dense_4h_to_h = nn.Linear(cfg["intermediate_size"], cfg["hidden_size"])

    def forward(self, x):
        return self.dense_4h_to_h(F.gelu(self.dense_h_to_4h(x)))


class Layer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        eps = cfg["layer_norm_eps"]
        self.parallel = cfg["use_parallel_residual"]
        self.input_layernorm = nn.LayerNorm(cfg["hidden_size"], eps=eps)
        self.post_attention_layernorm = nn.LayerNorm(cfg["hidden_size"], eps=eps)
        self.attention = Attention(cfg)
        self.mlp = MLP(cfg)

    def forward(self, x, keep):
        a = self.attention(self.input_layernorm(x), keep)
        if self.parallel:
            return x + a + self.mlp(self.post_attention_layernorm(x))
        h = x + a
        return h + self.mlp(self.post_attention_layernorm(h))


class Body(nn.Module):
    """GPTNeoXModel."""

    def __init__(self, cfg):
        super().__init__()
        self.embed_in = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg["num_hidden_layers"]))
        self.final_layer_norm = nn.LayerNorm(cfg["hidden_size"], eps=cfg["layer_norm_eps"])

    def forward(self, ids, mask=None):
        """ids (B, T) int64, mask (B, T) 1 token / 0 padding or None -> hidden_states, a
        list of L + 1 tensors (B, T, D)."""
        B, T = ids.shape
        keep = torch.ones(T, T, dtype=torch.bool).tril()[None].expand(B, T, T)
        if mask is not None:
            keep = keep & mask.bool()[:, None, :]
        x = self.embed_in(ids)
        hs = [x]
        for i, layer in enumerate(self.layers):
            x = layer(x, keep)
            hs.append(self.final_layer_norm(x) if i == len(self.layers) - 1 else x)
        return hs


class GPTNeoXForCausalLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.gpt_neox = Body(cfg)
        self.embed_out = nn.Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)
        self.reset_parameters()

    def reset_parameters(self):
        """transformers' GPTNeoX _init_weights: N(0, initializer_range) weights and
        embeddings, zero biases, unit LayerNorms."""
        std = self.config["initializer_range"]
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, std)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, ids, mask=None):
        """-> (logits (B, T, V), hidden_states)"""
        hs = self.gpt_neox(ids, mask)
        return self.embed_out(hs[-1]), hs


# ---- safetensors and model folders --------------------------------------------------

ST_DTYPES = {torch.float16: "F16", torch.bfloat16: "BF16", torch.float32: "F32"}
ST_TORCH = {v: k for k, v in ST_DTYPES.items()}


def _atomic_write(path, data, mode="wb"):
    tmp = path + ".tmp"
    with open(tmp, mode) as f:
        f.write(data)
    os.replace(tmp, path)


def save_safetensors(path, tensors, metadata=None):
    """tensors: {name: torch tensor}; little-endian data in name order after an
    8-byte header length and a JSON header padded with spaces to 8 bytes."""
    header, blobs, off = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        b = t.view(torch.int16).numpy().tobytes() if t.dtype in (torch.float16, torch.bfloat16) \
            else t.numpy().astype("<f4").tobytes()
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    _atomic_write(path, struct.pack("<Q", len(h)) + h + b"".join(blobs))


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        raw = data[8 + n + a:8 + n + b]
        dt = ST_TORCH[e["dtype"]]
        if dt == torch.float32:
            t = torch.from_numpy(np.frombuffer(raw, dtype="<f4").copy())
        else:
            t = torch.from_numpy(np.frombuffer(raw, dtype="<i2").copy()).view(dt)
        out[name] = t.reshape(e["shape"])
    return out


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def save_folder(model, outdir, tokenizer_dir, dtype=torch.float16):
    """A Hugging Face model folder as save_pretrained (model and tokenizer) lays it out."""
    os.makedirs(outdir, exist_ok=True)
    cfg = dict(model.config, torch_dtype=str(dtype).replace("torch.", ""))
    _atomic_write(os.path.join(outdir, "config.json"), json.dumps(cfg, indent=2) + "\n", "w")
    gen = {"bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"]}
    _atomic_write(os.path.join(outdir, "generation_config.json"), json.dumps(gen, indent=2) + "\n", "w")
    sd = {k: v.to(dtype) for k, v in model.state_dict().items()}
    save_safetensors(os.path.join(outdir, "model.safetensors"), sd, {"format": "pt"})
    for f in TOKENIZER_FILES:
        tmp = os.path.join(outdir, f + ".tmp")
        shutil.copyfile(os.path.join(tokenizer_dir, f), tmp)
        os.replace(tmp, os.path.join(outdir, f))


def load_folder(folder, dtype=torch.float32):
    """(model in dtype, config) from a folder written by save_folder (or transformers,
    for a GPTNeoXForCausalLM without the transformers-5 config keys)."""
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    model = GPTNeoXForCausalLM({k: cfg[k] for k in cfg if k != "torch_dtype"})
    sd = load_safetensors(os.path.join(folder, "model.safetensors"))
    model.load_state_dict({k: v.to(torch.float32) for k, v in sd.items()})
    return model.to(dtype).eval(), cfg
