"""`repeval embed` on Hugging Face decoder folders matches an independent float64
PyTorch implementation (hf_ref.py): GPT-NeoX with parallel and sequential residuals
and partial rotary (0.25, 0.5), Llama with Llama-3.1 and linear rope scaling and
biases, Mistral with one key/value head, Qwen2 with q/k/v biases, GPT-2 with
inverse-layer scaling; float32, float16 and bfloat16 weights; configs in the
transformers 4 and 5 spellings; checkpoints with and without a base-model prefix
and with a head, one sharded. Inputs: batch 1, T = 1, 7, 33 and 70, no padding,
right, left and mixed padding, attention blocks of 8 and the default; tap modes
flatten, tokens, mean and last against masked NumPy transforms of the reference;
positions from the mask. Every hidden state is within 1e-4 relative (max |diff| /
max |ref| over non-padding positions)."""
import json
import os

import numpy as np

import hf_ref
from common import Suite, repeval, run, tmpdir, REPEVAL

TOL = 1e-4


def rel(got, want):
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


MODELS = {
    "neox_parallel": dict(
        cfg={"model_type": "gpt_neox", "architectures": ["GPTNeoXForCausalLM"], "vocab_size": 96, "hidden_size": 64,
             "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128, "hidden_act": "gelu",
             "rotary_pct": 0.25, "rotary_emb_base": 10000, "max_position_embeddings": 128, "layer_norm_eps": 1e-5,
             "use_parallel_residual": True, "tie_word_embeddings": False},
        dtype="F32", prefix="gpt_neox.", head="embed_out.weight"),
    "neox_sequential": dict(
        cfg={"model_type": "gpt_neox", "vocab_size": 80, "hidden_size": 48, "num_hidden_layers": 3,
             "num_attention_heads": 3, "intermediate_size": 96, "hidden_act": "gelu",
             "rope_parameters": {"rope_theta": 5000.0, "rope_type": "default", "partial_rotary_factor": 0.5},
             "max_position_embeddings": 64, "layer_norm_eps": 1e-5, "use_parallel_residual": False,
             "attention_bias": False},
        dtype="BF16"),
    "llama3_scaled": dict(
        cfg={"model_type": "llama", "vocab_size": 100, "hidden_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 96,
             "hidden_act": "silu", "max_position_embeddings": 128, "rms_norm_eps": 1e-5,
             "attention_bias": True, "mlp_bias": True,
             "rope_parameters": {"rope_theta": 10000.0, "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 32}},
        dtype="F16"),
    "llama_linear": dict(
        cfg={"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 90, "hidden_size": 48,
             "num_hidden_layers": 2, "num_attention_heads": 6, "num_key_value_heads": 3, "intermediate_size": 80,
             "hidden_act": "silu", "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "rope_theta": 500000.0,
             "rope_scaling": {"type": "linear", "factor": 2.0}, "pretraining_tp": 1},
        dtype="F32", prefix="model.", head="lm_head.weight"),
    "mistral_mqa": dict(
        cfg={"model_type": "mistral", "vocab_size": 70, "hidden_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 1, "intermediate_size": 112, "hidden_act": "silu",
             "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "sliding_window": 4096},
        dtype="F32", shards=3),
    "qwen2_bias": dict(
        cfg={"model_type": "qwen2", "vocab_size": 110, "hidden_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 96, "hidden_act": "silu",
             "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
             "use_sliding_window": False, "sliding_window": 16, "max_window_layers": 1},
        dtype="BF16"),
    "gpt2_scaled": dict(
        cfg={"model_type": "gpt2", "vocab_size": 120, "n_embd": 48, "n_layer": 2, "n_head": 4, "n_positions": 80,
             "n_inner": None, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
             "scale_attn_by_inverse_layer_idx": True},
        dtype="F16", prefix="transformer.", head="lm_head.weight"),
}


def make_folder(root, name, spec, seed):
    d = os.path.join(root, name)
    os.makedirs(d)
    cfg = spec["cfg"]
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    sd = hf_ref.random_state_dict(cfg, seed)
    prefix = spec.get("prefix", "")
    full = {prefix + k: v for k, v in sd.items()}
    if spec.get("head"):
        s = hf_ref.sizes(cfg)
        full[spec["head"]] = np.random.default_rng(seed + 1).standard_normal((s["V"], s["D"])).astype(np.float32)
    stored = hf_ref.write_weights(d, full, spec["dtype"], spec.get("shards", 1))
    return d, {k: stored[prefix + k] for k in sd}


def lengths_mask(lengths, T, left):
    m = np.zeros((len(lengths), T), dtype=np.int64)
    for b, (n, lf) in enumerate(zip(lengths, left)):
        if lf:
            m[b, T - n:] = 1
        else:
            m[b, :n] = 1
    return m


def check_case(s, d, folder, cfg, sd, label, ids, mask, block=None, batch=None, positions=None):
    L = hf_ref.sizes(cfg)["L"]
    ref = hf_ref.forward(cfg, sd, ids, mask, positions or "arange")
    np.save(os.path.join(d, "ids.npy"), ids)
    args = ["embed", "--model", folder, "--input", os.path.join(d, "ids.npy")]
    if mask is not None:
        np.save(os.path.join(d, "mask.npy"), mask.astype(np.int32))
        args += ["--attention-mask", os.path.join(d, "mask.npy")]
    if positions:
        args += ["--positions", positions]
    if batch:
        args += ["--batch", batch]
    mid = f"hidden_states.{L // 2}"
    taps = [f"hidden_states.{k}" for k in range(L + 1)] + ["last_hidden_state"]
    taps += [f"{mid}:tokens", f"{mid}:mean", "last_hidden_state:last", "last_hidden_state:tokens",
             "last_hidden_state:mean"]
    out = os.path.join(d, "out_" + label.replace(" ", "_"))
    args += ["--layers", ",".join(taps), "--out", out]
    env = {"REPEVAL_ATTN_BLOCK": str(block)} if block else None
    rc, _, err = run([REPEVAL] + [str(a) for a in args], env=env)
    if not s.check(rc == 0, f"{label}: embed failed: {err}"):
        return
    B, T = ids.shape
    m = np.ones((B, T), dtype=bool) if mask is None else mask.astype(bool)

    def load(name):  # a layer tapped in several modes has one file per mode
        path = os.path.join(out, name + ".npy")
        return np.load(path if os.path.exists(path) else os.path.join(out, name + ".flatten.npy"))

    for k in range(L + 1):
        got = load(f"hidden_states.{k}").reshape(B, T, -1)
        s.check(got.dtype == np.float32 and rel(got[m], ref[k][m]) <= TOL,
                f"{label}: hidden_states.{k} err {rel(got[m], ref[k][m]):.3g}")
    got = load("last_hidden_state").reshape(B, T, -1)
    s.check(rel(got[m], ref[L][m]) <= TOL, f"{label}: last_hidden_state")
    for name, k in ((mid, L // 2), ("last_hidden_state", L)):
        r = ref[k]
        tok = load(f"{name}.tokens")
        idx = load(f"{name}.tokens.tokens")
        want_idx = np.argwhere(m)
        s.check(tok.shape == (m.sum(), r.shape[-1]) and rel(tok, r[m]) <= TOL, f"{label}: {name}:tokens")
        s.check(idx.dtype == np.int64 and np.array_equal(idx, want_idx), f"{label}: {name}:tokens rows")
        mean = (r * m[..., None]).sum(1) / m.sum(1)[:, None]
        s.check(rel(load(f"{name}.mean"), mean) <= TOL, f"{label}: {name}:mean")
    last = np.array([ref[L][b, np.nonzero(m[b])[0][-1]] for b in range(B)])
    s.check(rel(load("last_hidden_state.last"), last) <= TOL, f"{label}: last_hidden_state:last")


def main():
    s = Suite()
    g = np.random.default_rng(7)
    with tmpdir() as d:
        for i, (name, spec) in enumerate(MODELS.items()):
            folder, sd = make_folder(d, name, spec, 100 + i)
            cfg = spec["cfg"]
            V = cfg["vocab_size"]
            ids7 = g.integers(0, V, (3, 7))
            check_case(s, d, folder, cfg, sd, f"{name} T=7 no padding", ids7, None)
            mask = lengths_mask([7, 4, 1], 7, [False] * 3)
            check_case(s, d, folder, cfg, sd, f"{name} T=7 right padding", ids7, mask, batch=2)
            mask = lengths_mask([7, 5, 2], 7, [True] * 3)
            check_case(s, d, folder, cfg, sd, f"{name} T=7 left padding", ids7, mask)
            ids33 = g.integers(0, V, (3, 33))
            mask = lengths_mask([33, 20, 9], 33, [False, True, False])
            check_case(s, d, folder, cfg, sd, f"{name} T=33 mixed padding block 8", ids33, mask, block=8)
            check_case(s, d, folder, cfg, sd, f"{name} T=1 batch 1", g.integers(0, V, (1, 1)), None)
            if i < 3:
                ids = g.integers(0, V, (2, 70)) if hf_ref.sizes(cfg)["P"] >= 70 else g.integers(0, V, (2, 60))
                T = ids.shape[1]
                mask = lengths_mask([T, T - 25], T, [False, True])
                check_case(s, d, folder, cfg, sd, f"{name} T={T} default blocks", ids, mask)
            if name in ("llama3_scaled", "gpt2_scaled"):
                mask = lengths_mask([7, 3, 5], 7, [True, True, False])
                check_case(s, d, folder, cfg, sd, f"{name} positions from the mask", ids7, mask, positions="mask")
        # a tap by its full state_dict name (with the checkpoint's prefix) and --list
        folder = os.path.join(d, "llama_linear")
        np.save(os.path.join(d, "ids.npy"), g.integers(0, 90, (2, 5)))
        rc, out, err = repeval("embed", "--model", folder, "--input", os.path.join(d, "ids.npy"), "--list")
        s.check(rc == 0 and "hidden_states.2" in out and "last_hidden_state" in out and
                "layers.1.self_attn.k_proj" in out and "(5, 24)" in out, f"--list: {err}{out}")
        rc, out, err = repeval("embed", "--model", folder, "--input", os.path.join(d, "ids.npy"), "--layers",
                               "model.layers.1.mlp:mean,layers.0.self_attn:last", "--out", os.path.join(d, "named"))
        s.check(rc == 0 and np.load(os.path.join(d, "named", "model.layers.1.mlp.npy")).shape == (2, 48),
                f"prefixed tap name: {err}")
    s.finish()


if __name__ == "__main__":
    main()
