#!/usr/bin/env python3
"""Reference fixtures from Hugging Face transformers (and timm, when importable)
for tests/ref/test_hf_fixtures_match_transformers.py.

Each model is built from a small config with random parameters drawn like the
first fixtures (weights and embeddings N(0, 0.15^2), biases N(0, 0.1^2), norm and
layer scales 1 + N(0, 0.2^2)), saved with save_pretrained (safetensors; one model
sharded with a small max_shard_size, one in bfloat16), and run in float64 with
eager attention. Each folder OUTDIR/<name>/ gets what save_pretrained writes, the
inputs (input_ids.npy + attention_mask.npy with right and left padding, or
pixel_values.npy), the library's float64 outputs (hidden_states_f64.npy stacked as
(layers + 1, batch, tokens, width), last_hidden_state_f64.npy, pooler_output_f64.npy
when the model has a pooler) and manifest.json saying what to compare. Truth for
the bfloat16 save is computed from the bfloat16 weights. Nothing is downloaded.

usage: make_hf_fixtures.py [OUTDIR] [--only NAME,...] [--list]
OUTDIR defaults to tests/data/hf next to this script. Needs transformers 5.x,
torch and numpy; timm is optional."""
import argparse
import copy
import json
import os
import shutil
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = ["neox_parallel", "neox_sequential", "qwen2_bf16", "mistral_sharded", "llama3_rope", "roberta", "dinov2",
         "clip_vision", "timm_vit"]
B, T = 4, 12          # token inputs: 4 sequences of 12 positions
LENGTHS = [12, 7, 9, 4]
LEFT = [False, False, True, True]   # sample 1 right padded, samples 2 and 3 left padded


def randomize(model, seed):
    """Draw every parameter: biases N(0, 0.1^2), scales of norms and layer scales
    1 + N(0, 0.2^2), everything else N(0, 0.15^2)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, mod in model.named_modules():
            norm = "norm" in type(mod).__name__.lower()
            for pname, p in mod.named_parameters(recurse=False):
                if "bias" in pname:
                    std, mean = 0.1, 0.0
                elif (norm and pname == "weight") or pname in ("lambda1", "gamma", "gamma_1", "gamma_2"):
                    std, mean = 0.2, 1.0
                else:
                    std, mean = 0.15, 0.0
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float32) * std + mean)


def token_inputs(vocab, seed, pad_id=0, low=0, left_padded=LEFT):
    """ids (B x T; pad_id at padding, tokens drawn from [low, vocab)) and the mask."""
    g = np.random.default_rng(seed)
    ids = g.integers(low, vocab, (B, T)).astype(np.int64)
    mask = np.zeros((B, T), dtype=np.int64)
    for b, (n, left) in enumerate(zip(LENGTHS, left_padded)):
        if left:
            mask[b, T - n:] = 1
        else:
            mask[b, :n] = 1
    ids[mask == 0] = pad_id
    return ids, mask


def pixel_inputs(seed, size=32):
    return np.random.default_rng(seed).standard_normal((3, 3, size, size)).astype(np.float32)


def hf_model(config):
    from transformers import AutoModel
    model = AutoModel.from_config(config, attn_implementation="eager")
    return model.eval()


def run_hf(model, inputs):
    args = {k: torch.from_numpy(v).double() if v.dtype.kind == "f" else torch.from_numpy(v)
            for k, v in inputs.items()}
    with torch.no_grad():
        out = model(**args, output_hidden_states=True)
    res = {"hidden_states": np.stack([h.double().numpy() for h in out.hidden_states]),
           "last_hidden_state": out.last_hidden_state.double().numpy()}
    if getattr(out, "pooler_output", None) is not None:
        res["pooler_output"] = out.pooler_output.double().numpy()
    return res


def write(folder, inputs, outputs, manifest):
    for k, v in inputs.items():
        np.save(os.path.join(folder, k + ".npy"), v)
    compare = {}
    for k, v in outputs.items():
        np.save(os.path.join(folder, k + "_f64.npy"), v)
        compare[k] = k + "_f64.npy"
    manifest = dict(manifest, inputs={k: k + ".npy" for k in inputs}, compare=compare, tolerance=1e-4)
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


def versions():
    import transformers
    return f"transformers {transformers.__version__}, torch {torch.__version__}, float64, eager attention"


def make_hf(out, name, config, inputs, seed, save="float32"):
    """save: float32 | bfloat16 | sharded."""
    folder = os.path.join(out, name)
    shutil.rmtree(folder, ignore_errors=True)
    model = hf_model(config)
    randomize(model, seed)
    if save == "bfloat16":
        model = model.to(torch.bfloat16)
        model.save_pretrained(folder)
    elif save == "sharded":
        model.save_pretrained(folder, max_shard_size="100KB")
        if not os.path.exists(os.path.join(folder, "model.safetensors.index.json")):
            raise RuntimeError(f"{name}: save_pretrained did not shard")
    else:
        model.save_pretrained(folder)
    if not any(f.endswith(".safetensors") for f in os.listdir(folder)):
        raise RuntimeError(f"{name}: save_pretrained wrote no safetensors file")
    if save == "bfloat16":
        # model.to(bfloat16) also rounds float buffers such as the rotary inv_freq, which
        # from_pretrained(dtype=bfloat16) keeps in float32: the truth is a freshly built
        # model (its own buffers) holding the saved bfloat16 weights, in float64
        truth = hf_model(config)
        truth.load_state_dict({k: v.float() for k, v in model.state_dict().items()}, strict=True)
        truth = truth.to(torch.float64)
    else:
        truth = copy.deepcopy(model).to(torch.float64)
    outputs = run_hf(truth, inputs)
    write(folder, inputs, outputs, {"model_type": config.model_type, "class": type(model).__name__,
                                    "made_with": versions(), "weights": save, "positions": "model's default"})
    return folder


# ---- the models --------------------------------------------------------------------

def decoders():
    from transformers import GPTNeoXConfig, LlamaConfig, MistralConfig, Qwen2Config
    small = dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=96, max_position_embeddings=64)
    ids, mask = token_inputs(128, 1)
    tok = {"input_ids": ids, "attention_mask": mask}
    return [
        ("neox_parallel", lambda: GPTNeoXConfig(**small, hidden_act="gelu", rotary_pct=0.25, rotary_emb_base=10000,
                                                use_parallel_residual=True, layer_norm_eps=1e-5), tok, 11, "float32"),
        ("neox_sequential", lambda: GPTNeoXConfig(**small, hidden_act="gelu", rotary_pct=0.25,
                                                  rotary_emb_base=10000, use_parallel_residual=False,
                                                  layer_norm_eps=1e-5), tok, 12, "float32"),
        ("qwen2_bf16", lambda: Qwen2Config(**small, num_key_value_heads=2, rms_norm_eps=1e-6, hidden_act="silu",
                                           rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
         tok, 13, "bfloat16"),
        ("mistral_sharded", lambda: MistralConfig(**small, num_key_value_heads=1, rms_norm_eps=1e-5,
                                                  hidden_act="silu", sliding_window=4096,
                                                  rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
         tok, 14, "sharded"),
        ("llama3_rope", lambda: LlamaConfig(**small, num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-5,
                                            hidden_act="silu",
                                            rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0,
                                                             "factor": 8.0, "low_freq_factor": 1.0,
                                                             "high_freq_factor": 4.0,
                                                             "original_max_position_embeddings": 16}),
         tok, 15, "float32"),
    ]


def encoders():
    from transformers import CLIPVisionConfig, Dinov2Config, RobertaConfig
    # RoBERTa pads on the right with id 1, and its position ids count from that id
    ids, right = token_inputs(128, 2, pad_id=1, low=3, left_padded=[False] * B)
    px = pixel_inputs(3)
    return [
        ("roberta", lambda: RobertaConfig(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                          intermediate_size=128, max_position_embeddings=40, type_vocab_size=1,
                                          pad_token_id=1, hidden_act="gelu", layer_norm_eps=1e-5),
         {"input_ids": ids, "attention_mask": right}, 21, "float32"),
        ("dinov2", lambda: Dinov2Config(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, mlp_ratio=2, layerscale_value=1.0,
                                        layer_norm_eps=1e-6, hidden_act="gelu"),
         {"pixel_values": px}, 22, "float32"),
        ("clip_vision", lambda: CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=64, intermediate_size=128,
                                                 num_hidden_layers=2, num_attention_heads=4, projection_dim=32,
                                                 hidden_act="quick_gelu", layer_norm_eps=1e-5),
         {"pixel_values": px}, 23, "float32"),
    ]


def make_timm(out, name, seed):
    """A timm ViT shaped like vit_tiny (class token, pre-norm blocks, final norm),
    narrowed to 64 wide and 2 blocks on 32 x 32 images: hidden_states are the input of
    the first block and every block's output, last_hidden_state forward_features()."""
    import timm
    from timm.models import _hub
    args = dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4, num_classes=0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, **args).eval()
    randomize(model, seed)
    folder = os.path.join(out, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    _hub.save_for_hf(model, folder, model_args=args, safe_serialization=True)
    m64 = copy.deepcopy(model).to(torch.float64)
    px = pixel_inputs(4)
    hs = []
    hooks = [m64.blocks[0].register_forward_pre_hook(lambda mod, inp: hs.append(inp[0]))]
    hooks += [b.register_forward_hook(lambda mod, inp, o: hs.append(o)) for b in m64.blocks]
    with torch.no_grad():
        feats = m64.forward_features(torch.from_numpy(px).double())
        pooled = m64.forward_head(feats, pre_logits=True)
    for h in hooks:
        h.remove()
    outputs = {"hidden_states": np.stack([h.numpy() for h in hs]), "last_hidden_state": feats.numpy(),
               "pooler_output": pooled.numpy()}
    write(folder, {"pixel_values": px}, outputs,
          {"model_type": "timm_vit", "class": "timm VisionTransformer (vit_tiny_patch16_224 layout)",
           "made_with": versions() + f", timm {timm.__version__}", "weights": "float32",
           "positions": "model's default"})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", default=os.path.join(HERE, "hf"))
    ap.add_argument("--only", default="", help="comma-separated fixture names")
    ap.add_argument("--list", action="store_true", help="print the fixture names and exit")
    a = ap.parse_args()
    if a.list:
        print("\n".join(NAMES))
        return
    only = set(filter(None, a.only.split(",")))
    unknown = only - set(NAMES)
    if unknown:
        sys.exit(f"unknown fixtures: {', '.join(sorted(unknown))} (known: {', '.join(NAMES)})")
    torch.manual_seed(0)
    specs = decoders() + encoders()
    assert [s[0] for s in specs] + ["timm_vit"] == NAMES
    os.makedirs(a.out, exist_ok=True)
    for name, config, inputs, seed, save in specs:
        if only and name not in only:
            continue
        folder = make_hf(a.out, name, config(), inputs, seed, save)
        size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
        print(f"{name}: {folder} ({size // 1024} KB)")
    if not only or "timm_vit" in only:
        try:
            import timm  # noqa: F401
        except ImportError:
            print("timm_vit: skipped (timm is not importable)")
            return
        try:
            make_timm(a.out, "timm_vit", 31)
        except Exception as e:  # an optional library whose API moves: say why, keep the others
            shutil.rmtree(os.path.join(a.out, "timm_vit"), ignore_errors=True)
            print(f"timm_vit: not made ({type(e).__name__}: {e})")
            return
        print(f"timm_vit: {os.path.join(a.out, 'timm_vit')}")


if __name__ == "__main__":
    main()
