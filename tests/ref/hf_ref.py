"""Reference decoder transformers in plain PyTorch (float64), written from the
papers and the Hugging Face config fields, to test `repeval embed` on model
folders (config.json + model.safetensors) without the transformers package.

Families: gpt2 (Radford et al. 2019: learned positions, Conv1D weights stored
(in, out), tanh GELU), gpt_neox (Black et al. 2022: fused per-head q/k/v, partial
rotary, parallel or sequential residual), llama / mistral / qwen2 (Touvron et al.
2023: RMSNorm, SwiGLU, grouped-query attention, rotary embeddings with optional
linear or Llama-3.1 frequency scaling). Rotary embeddings use the rotate_half
layout (first half / second half of each head), and the frequencies and angles are
computed in float32 as transformers does, so the comparison is tight.

Also: random weights drawn like the shared fixtures (weights N(0, 0.15^2), biases
N(0, 0.1^2), norm scales 1 + N(0, 0.2^2)), and a writer for safetensors files
(F32, F16, BF16; single or sharded with an index)."""
import json
import math
import os
import struct

import numpy as np
import torch

# ---- safetensors ----------------------------------------------------------------


def bf16_bits(a):
    """float32 -> bfloat16 bit patterns (uint16), round to nearest even."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def stored(a, dtype):
    """(bytes, float32 values as stored) of array a in dtype F32 / F16 / BF16."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    if dtype == "F32":
        return a.tobytes(), a
    if dtype == "F16":
        h = a.astype("<f2")
        return h.tobytes(), h.astype(np.float32)
    if dtype == "BF16":
        b = bf16_bits(a)
        return b.astype("<u2").tobytes(), (b.astype(np.uint32) << 16).view(np.float32).reshape(a.shape)
    raise ValueError(dtype)


def _write_one(path, items):
    header, blobs, off = {}, [], 0
    for name, (dtype, shape, raw) in items:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def write_weights(folder, sd, dtype="F32", shards=1):
    """Write state_dict sd (name -> float32 array) as model.safetensors, or as `shards`
    files with model.safetensors.index.json; returns the values as stored (float32)."""
    items, values = [], {}
    for name, a in sd.items():
        raw, val = stored(a, dtype)
        items.append((name, (dtype, a.shape, raw)))
        values[name] = val
    if shards <= 1:
        _write_one(os.path.join(folder, "model.safetensors"), items)
        return values
    per = (len(items) + shards - 1) // shards
    wmap, total = {}, 0
    for s in range(shards):
        part = items[s * per:(s + 1) * per]
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        _write_one(os.path.join(folder, fname), part)
        for name, (_, _, raw) in part:
            wmap[name] = fname
            total += len(raw)
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": wmap}, f, indent=2)
    return values


# ---- configs ----------------------------------------------------------------------


def cfg_get(cfg, *keys, default=None):
    for k in keys:
        if cfg.get(k) is not None:
            return cfg[k]
    return default


def rope_params(cfg):
    """(theta, type, params dict, rotary fraction) from rope_parameters (transformers 5)
    or rope_theta / rotary_emb_base / rope_scaling / rotary_pct (transformers 4)."""
    neox = cfg["model_type"] == "gpt_neox"
    p = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    theta = p.get("rope_theta", cfg_get(cfg, "rotary_emb_base" if neox else "rope_theta", default=10000.0))
    frac = p.get("partial_rotary_factor", cfg.get("rotary_pct", 0.25) if neox else 1.0)
    kind = p.get("rope_type", p.get("type", "default"))
    return theta, kind, p, frac


def inv_freq(cfg, dim):
    """Rotary inverse frequencies in float32: 1 / theta^(2i/d) (Su et al. 2021), then
    linear scaling (divide by factor) or the Llama 3.1 wavelength rule."""
    theta, kind, p, _ = rope_params(cfg)
    inv = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    if kind == "linear":
        inv = inv / p["factor"]
    elif kind == "llama3":
        factor, low, high = p["factor"], p["low_freq_factor"], p["high_freq_factor"]
        orig = p.get("original_max_position_embeddings", cfg["max_position_embeddings"])
        wavelen = 2 * math.pi / inv
        scaled = torch.where(wavelen > orig / low, inv / factor, inv)       # long waves: interpolate fully
        smooth = (orig / wavelen - low) / (high - low)                      # between: blend
        blended = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < orig / high) * ~(wavelen > orig / low)
        inv = torch.where(medium, blended, scaled)
    return inv


def rope_cos_sin(cfg, dim, pos):
    """cos, sin (B, T, dim) for position ids pos (B, T): float32 angles, as transformers."""
    inv = inv_freq(cfg, dim)
    ang = (inv[None, :, None].float() @ pos[:, None, :].float()).transpose(1, 2)
    emb = torch.cat((ang, ang), dim=-1)
    return emb.cos().double(), emb.sin().double()  # cast to the model's dtype by the caller


def rotate(x, cos, sin):
    """Rotary embedding of x (B, H, T, d) in the rotate_half layout."""
    d = x.shape[-1] // 2
    rot = torch.cat((-x[..., d:], x[..., :d]), dim=-1)
    return x * cos[:, None] + rot * sin[:, None]


# ---- random models ------------------------------------------------------------------


def sizes(cfg):
    t = cfg["model_type"]
    if t == "gpt2":
        D, L, H = cfg["n_embd"], cfg["n_layer"], cfg["n_head"]
        return dict(D=D, L=L, H=H, Hkv=H, hd=D // H, I=cfg.get("n_inner") or 4 * D, V=cfg["vocab_size"],
                    P=cfg["n_positions"])
    D, H = cfg["hidden_size"], cfg["num_attention_heads"]
    Hkv = cfg.get("num_key_value_heads") or H
    hd = cfg.get("head_dim") or D // H
    return dict(D=D, L=cfg["num_hidden_layers"], H=H, Hkv=Hkv, hd=hd, I=cfg["intermediate_size"],
                V=cfg["vocab_size"], P=cfg["max_position_embeddings"])


def random_state_dict(cfg, seed):
    """state_dict (names of the base model) with random float32 values."""
    g = np.random.default_rng(seed)
    t, s = cfg["model_type"], sizes(cfg)
    D, I, V, H, Hkv, hd = s["D"], s["I"], s["V"], s["H"], s["Hkv"], s["hd"]
    sd = {}

    def w(name, *shape):
        sd[name] = (g.standard_normal(shape) * 0.15).astype(np.float32)

    def b(name, n):
        sd[name] = (g.standard_normal(n) * 0.1).astype(np.float32)

    def scale(name, n):
        sd[name] = (1 + g.standard_normal(n) * 0.2).astype(np.float32)

    if t == "gpt2":
        w("wte.weight", V, D)
        w("wpe.weight", s["P"], D)
        for l in range(s["L"]):
            p = f"h.{l}."
            scale(p + "ln_1.weight", D), b(p + "ln_1.bias", D)
            w(p + "attn.c_attn.weight", D, 3 * D), b(p + "attn.c_attn.bias", 3 * D)
            w(p + "attn.c_proj.weight", D, D), b(p + "attn.c_proj.bias", D)
            scale(p + "ln_2.weight", D), b(p + "ln_2.bias", D)
            w(p + "mlp.c_fc.weight", D, I), b(p + "mlp.c_fc.bias", I)
            w(p + "mlp.c_proj.weight", I, D), b(p + "mlp.c_proj.bias", D)
        scale("ln_f.weight", D), b("ln_f.bias", D)
    elif t == "gpt_neox":
        bias = cfg.get("attention_bias", True)
        w("embed_in.weight", V, D)
        for l in range(s["L"]):
            p = f"layers.{l}."
            for n in ("input_layernorm", "post_attention_layernorm"):
                scale(p + n + ".weight", D), b(p + n + ".bias", D)
            w(p + "attention.query_key_value.weight", 3 * D, D)
            w(p + "attention.dense.weight", D, D)
            if bias:
                b(p + "attention.query_key_value.bias", 3 * D), b(p + "attention.dense.bias", D)
            w(p + "mlp.dense_h_to_4h.weight", I, D), b(p + "mlp.dense_h_to_4h.bias", I)
            w(p + "mlp.dense_4h_to_h.weight", D, I), b(p + "mlp.dense_4h_to_h.bias", D)
        scale("final_layer_norm.weight", D), b("final_layer_norm.bias", D)
    else:
        qkv_bias = t == "qwen2" or (t == "llama" and cfg.get("attention_bias", False))
        o_bias = t == "llama" and cfg.get("attention_bias", False)
        mlp_bias = t == "llama" and cfg.get("mlp_bias", False)
        w("embed_tokens.weight", V, D)
        for l in range(s["L"]):
            p = f"layers.{l}."
            scale(p + "input_layernorm.weight", D), scale(p + "post_attention_layernorm.weight", D)
            for n, o in (("q_proj", H * hd), ("k_proj", Hkv * hd), ("v_proj", Hkv * hd)):
                w(p + "self_attn." + n + ".weight", o, D)
                if qkv_bias:
                    b(p + "self_attn." + n + ".bias", o)
            w(p + "self_attn.o_proj.weight", D, H * hd)
            if o_bias:
                b(p + "self_attn.o_proj.bias", D)
            for n, shape in (("gate_proj", (I, D)), ("up_proj", (I, D)), ("down_proj", (D, I))):
                w(p + "mlp." + n + ".weight", *shape)
                if mlp_bias:
                    b(p + "mlp." + n + ".bias", shape[0])
        scale("norm.weight", D)
    return sd


# ---- forward ------------------------------------------------------------------------


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def rms_norm(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def act(name, x):
    if name == "gelu":
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    if name in ("silu", "swish"):
        return x * torch.sigmoid(x)
    if name == "relu":
        return torch.relu(x)
    raise ValueError(name)


def attend(q, k, v, mask, scale):
    """q (B, H, T, d), k / v (B, Hkv, T, d): causal attention with a key-padding mask;
    query head h uses key/value head h // (H / Hkv)."""
    B, H, T, _ = q.shape
    rep = H // k.shape[1]
    k = k.repeat_interleave(rep, dim=1)
    v = v.repeat_interleave(rep, dim=1)
    s = (q @ k.transpose(-1, -2)) * scale
    allowed = torch.tril(torch.ones(T, T, dtype=torch.bool))[None, None] & mask[:, None, None, :].bool()
    s = s.masked_fill(~allowed, torch.finfo(s.dtype).min)
    return torch.softmax(s, dim=-1) @ v


def positions(mask, kind):
    B, T = mask.shape
    if kind == "arange":
        return torch.arange(T)[None].expand(B, T)
    return ((mask.long().cumsum(-1) - 1) * mask.long()).clamp(min=0)


def forward(cfg, sd, ids, mask=None, pos_kind="arange", dtype=torch.float64):
    """Hidden states (L + 1) x (B, T, D) as transformers' output_hidden_states: the
    embedding output, then each block's output, the last one with the final norm.
    dtype float32 is for timing comparisons only."""
    t, s = cfg["model_type"], sizes(cfg)
    W = {k: torch.tensor(np.asarray(v), dtype=dtype) for k, v in sd.items()}
    ids = torch.tensor(np.asarray(ids), dtype=torch.int64)
    B, T = ids.shape
    mask = torch.ones(B, T, dtype=torch.int64) if mask is None else torch.tensor(np.asarray(mask), dtype=torch.int64)
    pos = positions(mask, pos_kind)
    D, H, Hkv, hd, L = s["D"], s["H"], s["Hkv"], s["hd"], s["L"]

    def heads(x, n):
        return x.view(B, T, n, -1).transpose(1, 2)

    def merge(x):
        return x.transpose(1, 2).reshape(B, T, -1)

    out = []
    if t == "gpt2":
        eps, a = cfg.get("layer_norm_epsilon", 1e-5), cfg.get("activation_function", "gelu_new")
        h = W["wte.weight"][ids] + W["wpe.weight"][pos]
        out.append(h)
        for l in range(L):
            p = f"h.{l}."
            x = layer_norm(h, W[p + "ln_1.weight"], W[p + "ln_1.bias"], eps)
            qkv = x @ W[p + "attn.c_attn.weight"] + W[p + "attn.c_attn.bias"]
            q, k, v = (heads(z, H) for z in qkv.split(D, dim=-1))
            scale = 1 / math.sqrt(hd) if cfg.get("scale_attn_weights", True) else 1.0
            if cfg.get("scale_attn_by_inverse_layer_idx", False):
                scale /= l + 1
            o = merge(attend(q, k, v, mask, scale)) @ W[p + "attn.c_proj.weight"] + W[p + "attn.c_proj.bias"]
            h = h + o
            x = layer_norm(h, W[p + "ln_2.weight"], W[p + "ln_2.bias"], eps)
            m = act(a, x @ W[p + "mlp.c_fc.weight"] + W[p + "mlp.c_fc.bias"])
            h = h + m @ W[p + "mlp.c_proj.weight"] + W[p + "mlp.c_proj.bias"]
            out.append(h)
        out[-1] = layer_norm(h, W["ln_f.weight"], W["ln_f.bias"], eps)
        return [z.numpy() for z in out]

    def lin(x, name):
        y = x @ W[name + ".weight"].T
        return y + W[name + ".bias"] if name + ".bias" in W else y

    theta, kind, p_, frac = rope_params(cfg)
    rot = int(hd * frac)
    cos, sin = (z.to(dtype) for z in rope_cos_sin(cfg, rot, pos))

    def rope(x):
        return torch.cat((rotate(x[..., :rot], cos, sin), x[..., rot:]), dim=-1)

    if t == "gpt_neox":
        eps, a = cfg.get("layer_norm_eps", 1e-5), cfg.get("hidden_act", "gelu")
        parallel = cfg.get("use_parallel_residual", True)
        h = W["embed_in.weight"][ids]
        out.append(h)
        for l in range(L):
            p = f"layers.{l}."
            x = layer_norm(h, W[p + "input_layernorm.weight"], W[p + "input_layernorm.bias"], eps)
            qkv = lin(x, p + "attention.query_key_value").view(B, T, H, 3 * hd).transpose(1, 2)
            q, k, v = qkv[..., :hd], qkv[..., hd:2 * hd], qkv[..., 2 * hd:]
            o = lin(merge(attend(rope(q), rope(k), v, mask, 1 / math.sqrt(hd))), p + "attention.dense")

            def mlp(z):
                return lin(act(a, lin(z, p + "mlp.dense_h_to_4h")), p + "mlp.dense_4h_to_h")

            ln2w, ln2b = W[p + "post_attention_layernorm.weight"], W[p + "post_attention_layernorm.bias"]
            if parallel:
                h = mlp(layer_norm(h, ln2w, ln2b, eps)) + o + h
            else:
                h = o + h
                h = mlp(layer_norm(h, ln2w, ln2b, eps)) + h
            out.append(h)
        out[-1] = layer_norm(h, W["final_layer_norm.weight"], W["final_layer_norm.bias"], eps)
        return [z.numpy() for z in out]

    eps, a = cfg.get("rms_norm_eps", 1e-6), cfg.get("hidden_act", "silu")
    h = W["embed_tokens.weight"][ids]
    out.append(h)
    for l in range(L):
        p = f"layers.{l}."
        x = rms_norm(h, W[p + "input_layernorm.weight"], eps)
        q = rope(heads(lin(x, p + "self_attn.q_proj"), H))
        k = rope(heads(lin(x, p + "self_attn.k_proj"), Hkv))
        v = heads(lin(x, p + "self_attn.v_proj"), Hkv)
        h = h + lin(merge(attend(q, k, v, mask, 1 / math.sqrt(hd))), p + "self_attn.o_proj")
        x = rms_norm(h, W[p + "post_attention_layernorm.weight"], eps)
        h = h + lin(act(a, lin(x, p + "mlp.gate_proj")) * lin(x, p + "mlp.up_proj"), p + "mlp.down_proj")
        out.append(h)
    out[-1] = rms_norm(h, W["norm.weight"], eps)
    return [z.numpy() for z in out]


# ---- encoders and vision transformers ----------------------------------------------
#
# BERT (Devlin et al. 2019): learned word + position + token type embeddings, LayerNorm,
# post-norm layers h = LN(x + dense(attn(x))), y = LN(h + dense(act(dense(h)))), a
# non-causal attention that skips padding keys, pooler tanh(dense(first token)).
# RoBERTa (Liu et al. 2019): the same with position ids pad + 1 + (tokens so far) for ids
# other than pad_token_id and pad for padding. ViT (Dosovitskiy et al. 2021): patch
# convolution, class token, position embeddings, pre-norm blocks, final LayerNorm.
# DINOv2 (Oquab et al. 2023): ViT with layer scales, optional SwiGLU MLP and register
# tokens (Darcet et al. 2024), position embeddings resampled bicubically (PyTorch's
# interpolate) for other image sizes. CLIP's vision tower (Radford et al. 2021):
# class embedding, pre-LayerNorm, quick GELU, post-LayerNorm on the class token. timm's
# VisionTransformer: cls_token, optional reg_token, pos_embed with or without the prefix
# tokens, optional norm_pre and layer scales (ls1/ls2.gamma), LayerNorm eps 1e-6.

def vision_sizes(cfg):
    """(D, L, H, I, C, image, patch, registers, mlp kind) of a vision config."""
    t = cfg["model_type"]
    v = cfg.get("vision_config", cfg) if t == "clip" else cfg
    D, L, H = v["hidden_size"], v["num_hidden_layers"], v["num_attention_heads"]
    if t in ("dinov2", "dinov2_with_registers"):
        I = int(D * v.get("mlp_ratio", 4))
        if v.get("use_swiglu_ffn"):
            I = (int(I * 2 / 3) + 7) // 8 * 8
    else:
        I = v["intermediate_size"]
    R = v.get("num_register_tokens", 4) if t == "dinov2_with_registers" else 0
    return dict(D=D, L=L, H=H, I=I, C=v.get("num_channels", 3), S=v["image_size"], p=v["patch_size"], R=R)


def random_encoder_state_dict(cfg, seed, timm=None):
    """state_dict of a BERT / RoBERTa / ViT / DINOv2 / CLIP vision model (names of the base
    model) or, with timm = dict(D, L, I, grid, patch, C, registers, embed_prefix, ls, norm_pre,
    head), of a timm VisionTransformer."""
    g = np.random.default_rng(seed)
    sd = {}

    def w(name, *shape):
        sd[name] = (g.standard_normal(shape) * 0.15).astype(np.float32)

    def b(name, n):
        sd[name] = (g.standard_normal(n) * 0.1).astype(np.float32)

    def scale(name, n):
        sd[name] = (1 + g.standard_normal(n) * 0.2).astype(np.float32)

    def ln(name, n):
        scale(name + ".weight", n), b(name + ".bias", n)

    def lin(name, o, i, bias=True):
        w(name + ".weight", o, i)
        if bias:
            b(name + ".bias", o)

    if timm:
        D, L, I, G, p, C = timm["D"], timm["L"], timm["I"], timm["grid"], timm["patch"], timm.get("C", 3)
        R = timm.get("registers", 0)
        w("patch_embed.proj.weight", D, C, p, p), b("patch_embed.proj.bias", D)
        w("cls_token", 1, 1, D)
        if R:
            w("reg_token", 1, R, D)
        w("pos_embed", 1, timm.get("embed_prefix", 1) + G * G, D)
        if timm.get("norm_pre"):
            ln("norm_pre", D)
        for l in range(L):
            q = f"blocks.{l}."
            ln(q + "norm1", D), lin(q + "attn.qkv", 3 * D, D), lin(q + "attn.proj", D, D)
            ln(q + "norm2", D), lin(q + "mlp.fc1", I, D), lin(q + "mlp.fc2", D, I)
            if timm.get("ls"):
                scale(q + "ls1.gamma", D), scale(q + "ls2.gamma", D)
        ln("norm", D)
        if timm.get("head"):
            lin("head", timm["head"], D)
        return sd
    t = cfg["model_type"]
    if t in ("bert", "roberta", "xlm-roberta"):
        D, I = cfg["hidden_size"], cfg["intermediate_size"]
        w("embeddings.word_embeddings.weight", cfg["vocab_size"], D)
        w("embeddings.position_embeddings.weight", cfg.get("max_position_embeddings", 512), D)
        w("embeddings.token_type_embeddings.weight", cfg.get("type_vocab_size", 2), D)
        ln("embeddings.LayerNorm", D)
        for l in range(cfg["num_hidden_layers"]):
            q = f"encoder.layer.{l}."
            for n in ("query", "key", "value"):
                lin(q + "attention.self." + n, D, D)
            lin(q + "attention.output.dense", D, D), ln(q + "attention.output.LayerNorm", D)
            lin(q + "intermediate.dense", I, D), lin(q + "output.dense", D, I), ln(q + "output.LayerNorm", D)
        lin("pooler.dense", D, D)
        return sd
    s = vision_sizes(cfg)
    D, I, C, p, G = s["D"], s["I"], s["C"], s["p"], s["S"] // s["p"]
    if t in ("clip", "clip_vision_model"):
        w("embeddings.class_embedding", D)
        w("embeddings.patch_embedding.weight", D, C, p, p)
        w("embeddings.position_embedding.weight", G * G + 1, D)
        ln("pre_layrnorm", D)
        for l in range(s["L"]):
            q = f"encoder.layers.{l}."
            ln(q + "layer_norm1", D)
            for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
                lin(q + "self_attn." + n, D, D)
            ln(q + "layer_norm2", D), lin(q + "mlp.fc1", I, D), lin(q + "mlp.fc2", D, I)
        ln("post_layernorm", D)
        return sd
    qkv_bias = cfg.get("qkv_bias", True)
    w("embeddings.cls_token", 1, 1, D)
    w("embeddings.position_embeddings", 1, G * G + 1, D)
    w("embeddings.patch_embeddings.projection.weight", D, C, p, p), b("embeddings.patch_embeddings.projection.bias", D)
    if t != "vit":
        w("embeddings.mask_token", 1, D)
    if s["R"]:
        w("embeddings.register_tokens", 1, s["R"], D)
    for l in range(s["L"]):
        q = f"encoder.layer.{l}."
        for n in ("query", "key", "value"):
            lin(q + "attention.attention." + n, D, D, qkv_bias)
        lin(q + "attention.output.dense", D, D)
        if t == "vit":
            ln(q + "layernorm_before", D), ln(q + "layernorm_after", D)
            lin(q + "intermediate.dense", I, D), lin(q + "output.dense", D, I)
        else:
            ln(q + "norm1", D), ln(q + "norm2", D)
            scale(q + "layer_scale1.lambda1", D), scale(q + "layer_scale2.lambda1", D)
            if cfg.get("use_swiglu_ffn"):
                lin(q + "mlp.weights_in", 2 * I, D), lin(q + "mlp.weights_out", D, I)
            else:
                lin(q + "mlp.fc1", I, D), lin(q + "mlp.fc2", D, I)
    ln("layernorm", D)
    if t == "vit":
        lin("pooler.dense", cfg.get("pooler_output_size", D), D)
    return sd


def _attend_keys(x, Wq, bq, Wk, bk, Wv, bv, H, keymask=None):
    """Non-causal multi-head attention of x (B, T, D); keymask (B, T) 1 for keys to use."""
    B, T, D = x.shape
    hd = Wq.shape[0] // H

    def heads(z):
        return z.view(B, T, H, hd).transpose(1, 2)

    q, k, v = (heads(x @ W.T + (bb if bb is not None else 0)) for W, bb in ((Wq, bq), (Wk, bk), (Wv, bv)))
    s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
    if keymask is not None:
        s = s.masked_fill(~keymask[:, None, None, :].bool(), torch.finfo(s.dtype).min)
    return (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, -1)


def roberta_positions(ids, pad):
    """transformers' create_position_ids_from_input_ids: pad + cumulative count of non-pad ids."""
    m = (ids != pad).long()
    return torch.cumsum(m, dim=1) * m + pad


def encoder_forward(cfg, sd, ids, mask=None, types=None, pos_from_mask=False):
    """(hidden_states list of (B, T, D), pooler_output (B, D) or None) of BERT / RoBERTa;
    pos_from_mask: RoBERTa's positions counted over the mask instead of the ids."""
    W = {k: torch.tensor(np.asarray(v), dtype=torch.float64) for k, v in sd.items()}
    ids = torch.tensor(np.asarray(ids), dtype=torch.int64)
    B, T = ids.shape
    mask = torch.ones(B, T, dtype=torch.int64) if mask is None else torch.tensor(np.asarray(mask), dtype=torch.int64)
    types = torch.zeros(B, T, dtype=torch.int64) if types is None else torch.tensor(np.asarray(types))
    t, eps, a, H = cfg["model_type"], cfg.get("layer_norm_eps", 1e-12), cfg.get("hidden_act", "gelu"), \
        cfg["num_attention_heads"]
    pad = cfg.get("pad_token_id", 1)
    if t == "bert":
        pos = torch.arange(T)[None].expand(B, T)
    elif pos_from_mask:
        pos = torch.cumsum(mask, dim=1) * mask + pad
    else:
        pos = roberta_positions(ids, pad)
    h = W["embeddings.word_embeddings.weight"][ids] + W["embeddings.token_type_embeddings.weight"][types]
    h = h + W["embeddings.position_embeddings.weight"][pos]
    h = layer_norm(h, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"], eps)
    out = [h]

    def lin(x, name):
        return x @ W[name + ".weight"].T + W[name + ".bias"]

    for l in range(cfg["num_hidden_layers"]):
        q = f"encoder.layer.{l}."
        s = q + "attention.self."
        ctx = _attend_keys(h, W[s + "query.weight"], W[s + "query.bias"], W[s + "key.weight"], W[s + "key.bias"],
                           W[s + "value.weight"], W[s + "value.bias"], H, mask)
        n = q + "attention.output."
        h = layer_norm(lin(ctx, n + "dense") + h, W[n + "LayerNorm.weight"], W[n + "LayerNorm.bias"], eps)
        m = act(a, lin(h, q + "intermediate.dense"))
        h = layer_norm(lin(m, q + "output.dense") + h, W[q + "output.LayerNorm.weight"],
                       W[q + "output.LayerNorm.bias"], eps)
        out.append(h)
    pooled = torch.tanh(lin(h[:, 0], "pooler.dense")) if "pooler.dense.weight" in W else None
    return [z.numpy() for z in out], None if pooled is None else pooled.numpy()


def act_ext(name, x):
    if name == "quick_gelu":
        return x * torch.sigmoid(1.702 * x)
    return act(name, x)


def resample_grid(pe, grid, new_hw, antialias):
    """Patch position embeddings pe (grid*grid, D) resampled to new_hw with PyTorch's bicubic
    interpolation (align_corners False) in float32, as transformers' DINOv2 does."""
    D = pe.shape[-1]
    x = pe.reshape(1, grid, grid, D).permute(0, 3, 1, 2).float()
    y = torch.nn.functional.interpolate(x, size=tuple(new_hw), mode="bicubic", align_corners=False,
                                        antialias=antialias)
    return y.to(pe.dtype).permute(0, 2, 3, 1).reshape(-1, D)


def vision_forward(cfg, sd, pixels, timm=None):
    """(hidden_states list, last_hidden_state, pooler_output) of a vision model on pixels
    (B, C, H, W); timm: dict(heads, embed_prefix, registers, ls, norm_pre, resample)."""
    W = {k: torch.tensor(np.asarray(v), dtype=torch.float64) for k, v in sd.items()}
    x = torch.tensor(np.asarray(pixels), dtype=torch.float64)
    B = x.shape[0]

    def lin(z, name):
        y = z @ W[name + ".weight"].T
        return y + W[name + ".bias"] if name + ".bias" in W else y

    def LN(z, name, eps):
        return layer_norm(z, W[name + ".weight"], W[name + ".bias"], eps)

    def patches(wname, bname, p):
        y = torch.nn.functional.conv2d(x, W[wname], W.get(bname), stride=p)
        return y.flatten(2).transpose(1, 2), y.shape[2], y.shape[3]

    if timm:
        D = W["cls_token"].shape[-1]
        p = W["patch_embed.proj.weight"].shape[-1]
        eps, H = 1e-6, timm["heads"]
        pt, gh, gw = patches("patch_embed.proj.weight", "patch_embed.proj.bias", p)
        R = W["reg_token"].shape[1] if "reg_token" in W else 0
        pre = torch.cat([W["cls_token"].expand(B, -1, -1)] + ([W["reg_token"].expand(B, -1, -1)] if R else []), 1)
        pe = W["pos_embed"][0]
        np_ = timm.get("embed_prefix", 1)
        grid = int(round(math.sqrt(pe.shape[0] - np_)))
        pp = pe[np_:] if (gh, gw) == (grid, grid) else resample_grid(pe[np_:], grid, (gh, gw), True)
        if np_ == 0:  # no_embed_class: prefix tokens without position embeddings
            h = torch.cat([pre, pt + pp], 1)
        else:
            h = torch.cat([pre, pt], 1) + torch.cat([pe[:np_], pp], 0)
        if "norm_pre.weight" in W:
            h = LN(h, "norm_pre", eps)
        out = [h]
        for l in range(len([k for k in W if k.endswith(".norm1.weight")])):
            q = f"blocks.{l}."
            z = LN(h, q + "norm1", eps)
            Wqkv, bqkv = W[q + "attn.qkv.weight"], W[q + "attn.qkv.bias"]
            o = lin(_attend_keys(z, Wqkv[:D], bqkv[:D], Wqkv[D:2 * D], bqkv[D:2 * D], Wqkv[2 * D:], bqkv[2 * D:], H),
                    q + "attn.proj")
            h = h + (o * W[q + "ls1.gamma"] if q + "ls1.gamma" in W else o)
            m = lin(act("gelu", lin(LN(h, q + "norm2", eps), q + "mlp.fc1")), q + "mlp.fc2")
            h = h + (m * W[q + "ls2.gamma"] if q + "ls2.gamma" in W else m)
            out.append(h)
        last = LN(h, "norm", eps)
        return [z.numpy() for z in out], last.numpy(), last[:, 0].numpy()

    t = cfg["model_type"]
    s = vision_sizes(cfg)
    v = cfg.get("vision_config", cfg) if t == "clip" else cfg
    H, p, G = s["H"], s["p"], s["S"] // s["p"]
    if t in ("clip", "clip_vision_model"):
        eps, a = v.get("layer_norm_eps", 1e-5), v.get("hidden_act", "quick_gelu")
        pt, _, _ = patches("embeddings.patch_embedding.weight", None, p)
        cls = W["embeddings.class_embedding"].expand(B, 1, -1)
        h = torch.cat([cls, pt], 1) + W["embeddings.position_embedding.weight"]
        h = LN(h, "pre_layrnorm", eps)
        out = [h]
        for l in range(s["L"]):
            q = f"encoder.layers.{l}."
            z = LN(h, q + "layer_norm1", eps)
            a_ = q + "self_attn."
            h = h + lin(_attend_keys(z, W[a_ + "q_proj.weight"], W[a_ + "q_proj.bias"], W[a_ + "k_proj.weight"],
                                     W[a_ + "k_proj.bias"], W[a_ + "v_proj.weight"], W[a_ + "v_proj.bias"], H),
                        a_ + "out_proj")
            h = h + lin(act_ext(a, lin(LN(h, q + "layer_norm2", eps), q + "mlp.fc1")), q + "mlp.fc2")
            out.append(h)
        return [z.numpy() for z in out], h.numpy(), LN(h[:, 0], "post_layernorm", eps).numpy()
    vit = t == "vit"
    eps, a = cfg.get("layer_norm_eps", 1e-12 if vit else 1e-6), cfg.get("hidden_act", "gelu")
    pt, gh, gw = patches("embeddings.patch_embeddings.projection.weight",
                         "embeddings.patch_embeddings.projection.bias", p)
    pe = W["embeddings.position_embeddings"][0]
    if (gh, gw) != (G, G):  # DINOv2 always resamples (ViT refuses other sizes by default)
        pe = torch.cat([pe[:1], resample_grid(pe[1:], G, (gh, gw), t == "dinov2_with_registers")], 0)
    h = torch.cat([W["embeddings.cls_token"].expand(B, -1, -1), pt], 1) + pe
    if s["R"]:  # registers after the class token, without position embeddings
        h = torch.cat([h[:, :1], W["embeddings.register_tokens"].expand(B, -1, -1), h[:, 1:]], 1)
    out = [h]
    for l in range(s["L"]):
        q = f"encoder.layer.{l}."
        z = LN(h, q + ("layernorm_before" if vit else "norm1"), eps)
        a_ = q + "attention.attention."
        o = lin(_attend_keys(z, W[a_ + "query.weight"], W.get(a_ + "query.bias"), W[a_ + "key.weight"],
                             W.get(a_ + "key.bias"), W[a_ + "value.weight"], W.get(a_ + "value.bias"), H),
                q + "attention.output.dense")
        h = h + (o if vit else o * W[q + "layer_scale1.lambda1"])
        z = LN(h, q + ("layernorm_after" if vit else "norm2"), eps)
        if vit:
            m = lin(act(a, lin(z, q + "intermediate.dense")), q + "output.dense")
        elif cfg.get("use_swiglu_ffn"):
            x1, x2 = lin(z, q + "mlp.weights_in").chunk(2, dim=-1)
            m = lin(torch.nn.functional.silu(x1) * x2, q + "mlp.weights_out") * W[q + "layer_scale2.lambda1"]
        else:
            m = lin(act(a, lin(z, q + "mlp.fc1")), q + "mlp.fc2") * W[q + "layer_scale2.lambda1"]
        h = h + m
        out.append(h)
    last = LN(h, "layernorm", eps)
    pooled = torch.tanh(lin(last[:, 0], "pooler.dense")) if vit and "pooler.dense.weight" in W else last[:, 0]
    return [z.numpy() for z in out], last.numpy(), pooled.numpy()
