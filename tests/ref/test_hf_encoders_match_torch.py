"""`repeval embed` on encoder and vision model folders matches independent float64
PyTorch implementations (hf_ref.py, themselves checked against transformers' outputs
in tests/data/hf): BERT with token type ids, a `bert.` prefix, a masked-LM head and
TensorFlow-era LayerNorm names (gamma, beta), float16 weights; RoBERTa with right and
left padding (position ids from the ids, and from the mask), bfloat16 weights; ViT
with a wider pooler, no q/k/v biases and a classifier outside the `vit.` prefix;
DINOv2 with layer scales at its image size and at two others (bicubic position
embeddings), bfloat16; DINOv2 with registers and a SwiGLU MLP (antialiased
resampling); CLIP's vision tower (quick GELU, pre- and post-LayerNorm) as
CLIPVisionModel and inside a CLIPModel with its text tower; timm ViTs from a bare
state_dict (timm-vit preset, heads from the model file, a classifier head) and from a
timm folder (model_args: heads, layer scales, register tokens without position
embeddings for the prefix, norm_pre, dynamic image size). Batches of 1 and 3, odd
lengths and image sizes, attention blocks of 8 and the default. Every hidden_states.K,
last_hidden_state and pooler_output is within 1e-4 relative (max |diff| / max |ref|
over non-padding positions), and so are the mean, cls and tokens modes."""
import json
import os

import numpy as np

import hf_ref
from common import Suite, repeval, run, tmpdir, REPEVAL

TOL = 1e-4


def rel(got, want):
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


BERT = {"model_type": "bert", "architectures": ["BertForMaskedLM"], "vocab_size": 90, "hidden_size": 48,
        "num_hidden_layers": 3, "num_attention_heads": 4, "intermediate_size": 80, "hidden_act": "gelu",
        "max_position_embeddings": 40, "type_vocab_size": 3, "layer_norm_eps": 1e-12, "pad_token_id": 0,
        "position_embedding_type": "absolute"}
ROBERTA = {"model_type": "roberta", "vocab_size": 70, "hidden_size": 64, "num_hidden_layers": 2,
           "num_attention_heads": 4, "intermediate_size": 96, "hidden_act": "gelu", "max_position_embeddings": 24,
           "type_vocab_size": 1, "layer_norm_eps": 1e-5, "pad_token_id": 1}
VIT = {"model_type": "vit", "hidden_size": 48, "num_hidden_layers": 2, "num_attention_heads": 3,
       "intermediate_size": 72, "hidden_act": "gelu", "layer_norm_eps": 1e-12, "image_size": 24, "patch_size": 6,
       "num_channels": 3, "qkv_bias": False, "pooler_output_size": 40, "pooler_act": "tanh"}
DINOV2 = {"model_type": "dinov2", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
          "mlp_ratio": 2, "hidden_act": "gelu", "layer_norm_eps": 1e-6, "image_size": 28, "patch_size": 7,
          "num_channels": 3, "qkv_bias": True, "layerscale_value": 1.0, "use_swiglu_ffn": False,
          "use_mask_token": True}
DINOV2_REG = dict(DINOV2, model_type="dinov2_with_registers", num_register_tokens=3, use_swiglu_ffn=True,
                  mlp_ratio=3, num_channels=2)
CLIP_V = {"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
          "num_attention_heads": 2, "num_channels": 3, "image_size": 30, "patch_size": 10,
          "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}
CLIP = {"model_type": "clip", "architectures": ["CLIPModel"], "projection_dim": 16,
        "text_config": {"hidden_size": 16, "num_hidden_layers": 1},
        "vision_config": {k: v for k, v in CLIP_V.items() if k != "model_type"}}


def folder(root, name, cfg, sd, dtype="F32", prefix="", extra=None, config_text=None):
    d = os.path.join(root, name)
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(config_text or json.dumps(cfg, indent=2))
    full = {prefix + k: v for k, v in sd.items()}
    full.update(extra or {})
    stored = hf_ref.write_weights(d, full, dtype)
    return d, {k: stored[prefix + k] for k in sd}


def embed(s, d, label, model, inp, taps, extra=(), env=None):
    out = os.path.join(d, "out_" + label.replace(" ", "_").replace("/", "_"))
    args = ["embed", "--model", model, "--input", inp, *extra, "--layers", ",".join(taps), "--out", out]
    rc, _, err = run([REPEVAL] + [str(a) for a in args], env=env)
    if not s.check(rc == 0, f"{label}: embed failed: {err}"):
        return None

    def load(name):
        path = os.path.join(out, name + ".npy")
        return np.load(path if os.path.exists(path) else os.path.join(out, name + ".flatten.npy"))
    return load


def check_tokens(s, d, label, model, cfg, sd, ids, mask=None, types=None, block=None, pos_from_mask=False):
    hs, pooled = hf_ref.encoder_forward(cfg, sd, ids, mask, types, pos_from_mask)
    L = len(hs) - 1
    np.save(os.path.join(d, "ids.npy"), ids)
    extra = []
    if mask is not None:
        np.save(os.path.join(d, "mask.npy"), mask.astype(np.int8))
        extra += ["--attention-mask", os.path.join(d, "mask.npy")]
    if types is not None:
        np.save(os.path.join(d, "types.npy"), types.astype(np.int32))
        extra += ["--token-type-ids", os.path.join(d, "types.npy")]
    if pos_from_mask:
        extra += ["--positions", "mask"]
    taps = [f"hidden_states.{k}" for k in range(L + 1)] + ["last_hidden_state", "last_hidden_state:tokens",
                                                           "last_hidden_state:mean", "last_hidden_state:cls",
                                                           "hidden_states.1:tokens"]
    if pooled is not None:
        taps.append("pooler_output")
    load = embed(s, d, label, model, os.path.join(d, "ids.npy"), taps, extra,
                 {"REPEVAL_ATTN_BLOCK": str(block)} if block else None)
    if not load:
        return
    B, T = ids.shape
    m = np.ones((B, T), dtype=bool) if mask is None else mask.astype(bool)
    for k in range(L + 1):
        got = load(f"hidden_states.{k}").reshape(B, T, -1)
        s.check(rel(got[m], hs[k][m]) <= TOL, f"{label}: hidden_states.{k} err {rel(got[m], hs[k][m]):.3g}")
    got = load("last_hidden_state").reshape(B, T, -1)
    s.check(rel(got[m], hs[L][m]) <= TOL, f"{label}: last_hidden_state")
    s.check(rel(load("last_hidden_state.tokens"), hs[L][m]) <= TOL, f"{label}: last_hidden_state:tokens")
    s.check(rel(load("hidden_states.1.tokens"), hs[1][m]) <= TOL, f"{label}: hidden_states.1:tokens")
    mean = (hs[L] * m[..., None]).sum(1) / m.sum(1)[:, None]
    s.check(rel(load("last_hidden_state.mean"), mean) <= TOL, f"{label}: last_hidden_state:mean")
    first = np.array([hs[L][b, np.nonzero(m[b])[0][0]] for b in range(B)])
    s.check(rel(load("last_hidden_state.cls"), first) <= TOL, f"{label}: last_hidden_state:cls")
    if pooled is not None:
        s.check(rel(load("pooler_output"), pooled) <= TOL, f"{label}: pooler_output err {rel(load('pooler_output'), pooled):.3g}")


def check_images(s, d, label, model, cfg, sd, px, timm=None, extra=(), block=None):
    hs, last, pooled = hf_ref.vision_forward(cfg, sd, px, timm)
    L = len(hs) - 1
    np.save(os.path.join(d, "px.npy"), px.astype(np.float32))
    taps = [f"hidden_states.{k}" for k in range(L + 1)] + ["last_hidden_state", "pooler_output",
                                                           "last_hidden_state:mean", "hidden_states.1:cls",
                                                           "hidden_states.1:tokens"]
    load = embed(s, d, label, model, os.path.join(d, "px.npy"), taps, extra,
                 {"REPEVAL_ATTN_BLOCK": str(block)} if block else None)
    if not load:
        return
    B = px.shape[0]
    for k in range(L + 1):
        got = load(f"hidden_states.{k}").reshape(hs[k].shape)
        s.check(rel(got, hs[k]) <= TOL, f"{label}: hidden_states.{k} err {rel(got, hs[k]):.3g}")
    s.check(rel(load("last_hidden_state").reshape(last.shape), last) <= TOL, f"{label}: last_hidden_state")
    got = load("pooler_output")
    s.check(got.shape == pooled.shape and rel(got, pooled) <= TOL, f"{label}: pooler_output {got.shape}")
    s.check(rel(load("last_hidden_state.mean"), last.mean(1)) <= TOL, f"{label}: last_hidden_state:mean")
    s.check(rel(load("hidden_states.1.cls"), hs[1][:, 0]) <= TOL, f"{label}: hidden_states.1:cls")
    s.check(rel(load("hidden_states.1.tokens"), hs[1].reshape(B * hs[1].shape[1], -1)) <= TOL,
            f"{label}: hidden_states.1:tokens")


def lengths_mask(lengths, T, left):
    m = np.zeros((len(lengths), T), dtype=np.int64)
    for b, (n, lf) in enumerate(zip(lengths, left)):
        if lf:
            m[b, T - n:] = 1
        else:
            m[b, :n] = 1
    return m


def main():
    s = Suite()
    g = np.random.default_rng(11)
    with tmpdir() as d:
        # BERT: token types, a masked-LM checkpoint (bert. prefix, cls.* head), gamma/beta names, float16
        sd = hf_ref.random_encoder_state_dict(BERT, 1)
        legacy = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
                  for k, v in sd.items()}
        head = {"cls.predictions.bias": np.zeros(90, np.float32), "bert.embeddings.position_ids":
                np.arange(40, dtype=np.float32)[None]}
        m, st = folder(d, "bert", BERT, legacy, "F16", "bert.", head)
        st = {k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias"): v
              for k, v in st.items()}
        ids = g.integers(0, 90, (3, 7))
        types = g.integers(0, 3, (3, 7))
        check_tokens(s, d, "bert T=7 types right padding", m, BERT, st, ids, lengths_mask([7, 4, 2], 7, [0, 0, 0]),
                     types)
        check_tokens(s, d, "bert T=7 left padding block 2", m, BERT, st, ids, lengths_mask([7, 5, 3], 7, [1, 1, 0]),
                     None, block=2)
        check_tokens(s, d, "bert T=1 batch 1", m, BERT, st, g.integers(0, 90, (1, 1)))
        # RoBERTa: positions from the ids (padding holds pad_token_id), bfloat16, roberta. prefix + lm_head
        sd = hf_ref.random_encoder_state_dict(ROBERTA, 2)
        m, st = folder(d, "roberta", ROBERTA, sd, "BF16", "roberta.",
                       {"lm_head.dense.weight": np.zeros((64, 64), np.float32)})
        ids = g.integers(3, 70, (4, 9))
        mask = lengths_mask([9, 6, 4, 7], 9, [0, 1, 0, 1])
        ids[mask == 0] = 1
        check_tokens(s, d, "roberta T=9 left and right padding", m, ROBERTA, st, ids, mask, block=8)
        ids[mask == 0] = 0  # padding that is not pad_token_id: transformers counts it, --positions mask does not
        check_tokens(s, d, "roberta padding ids 0", m, ROBERTA, st, ids, mask)
        check_tokens(s, d, "roberta positions from the mask", m, ROBERTA, st, ids, mask, pos_from_mask=True)
        check_tokens(s, d, "roberta T=22 batch 1", m, ROBERTA, st, g.integers(3, 70, (1, 22)))
        # ViT: wider pooler, no q/k/v bias, classifier outside the vit. prefix
        sd = hf_ref.random_encoder_state_dict(VIT, 3)
        m, st = folder(d, "vit", VIT, sd, "F32", "vit.", {"classifier.weight": np.zeros((5, 48), np.float32),
                                                          "classifier.bias": np.zeros(5, np.float32)})
        check_images(s, d, "vit 24x24 batch 3", m, VIT, st, g.standard_normal((3, 3, 24, 24)))
        check_images(s, d, "vit batch 1 block 5", m, VIT, st, g.standard_normal((1, 3, 24, 24)), block=5)
        # DINOv2: layer scales, position embeddings resampled for other sizes, bfloat16
        sd = hf_ref.random_encoder_state_dict(DINOV2, 4)
        m, st = folder(d, "dinov2", DINOV2, sd, "BF16")
        check_images(s, d, "dinov2 28x28", m, DINOV2, st, g.standard_normal((2, 3, 28, 28)))
        check_images(s, d, "dinov2 37x22 (5x3 patches)", m, DINOV2, st, g.standard_normal((3, 3, 37, 22)))
        check_images(s, d, "dinov2 14x14 batch 1", m, DINOV2, st, g.standard_normal((1, 3, 14, 14)))
        # DINOv2 with registers: SwiGLU, antialiased resampling, two channels
        sd = hf_ref.random_encoder_state_dict(DINOV2_REG, 5)
        m, st = folder(d, "dinov2_reg", DINOV2_REG, sd, "F32", "dinov2_with_registers.")
        check_images(s, d, "dinov2 registers 28x28", m, DINOV2_REG, st, g.standard_normal((2, 2, 28, 28)))
        check_images(s, d, "dinov2 registers 49x21", m, DINOV2_REG, st, g.standard_normal((2, 2, 49, 21)))
        check_images(s, d, "dinov2 registers 14x21", m, DINOV2_REG, st, g.standard_normal((1, 2, 14, 21)))
        # CLIP's vision tower, alone and inside CLIPModel
        sd = hf_ref.random_encoder_state_dict(CLIP_V, 6)
        m, st = folder(d, "clip_vision", CLIP_V, sd, "F32", "vision_model.")
        px = g.standard_normal((3, 3, 30, 30))
        check_images(s, d, "clip vision 30x30", m, CLIP_V, st, px)
        text = {"text_model.embeddings.token_embedding.weight": np.zeros((10, 16), np.float32),
                "visual_projection.weight": np.zeros((16, 32), np.float32), "logit_scale": np.zeros((), np.float32)}
        m, st = folder(d, "clip", CLIP, sd, "F16", "vision_model.", text)
        check_images(s, d, "clip model 30x30 float16", m, CLIP, st, px)
        # timm: a bare state_dict with the timm-vit preset (heads from the model file) and a head
        spec = dict(D=48, L=2, I=96, grid=4, patch=5, head=7)
        sd = hf_ref.random_encoder_state_dict(None, 7, timm=spec)
        tdir = os.path.join(d, "timm_sd")
        os.makedirs(tdir)
        st = hf_ref.write_weights(tdir, sd, "F32")
        with open(os.path.join(d, "timm.yaml"), "w") as f:
            f.write("preset: timm-vit\nheads: 2\n")
        check_images(s, d, "timm-vit preset 20x20", os.path.join(d, "timm.yaml"), None, st,
                     g.standard_normal((2, 3, 20, 20)), timm=dict(heads=2),
                     extra=("--checkpoint", os.path.join(tdir, "model.safetensors")))
        load = embed(s, d, "timm head", os.path.join(d, "timm.yaml"), os.path.join(d, "px.npy"), ["head"],
                     ("--checkpoint", os.path.join(tdir, "model.safetensors")))
        if load:
            _, last, _ = hf_ref.vision_forward(None, st, np.load(os.path.join(d, "px.npy")), dict(heads=2))
            want = last[:, 0] @ st["head.weight"].T.astype(np.float64) + st["head.bias"]
            s.check(rel(load("head"), want) <= TOL, "timm head logits")
        # timm folder: model_args (heads), layer scales, registers without prefix position embeddings,
        # norm_pre, dynamic image size (antialiased resampling)
        spec = dict(D=64, L=2, I=128, grid=3, patch=8, registers=2, embed_prefix=0, ls=True, norm_pre=True)
        sd = hf_ref.random_encoder_state_dict(None, 8, timm=spec)
        tcfg = {"architecture": "vit_small_patch8_224", "num_classes": 0, "num_features": 64, "global_pool": "token",
                "model_args": {"img_size": 24, "patch_size": 8, "embed_dim": 64, "depth": 2, "num_heads": 8,
                               "reg_tokens": 2, "no_embed_class": True, "init_values": 1e-5, "pre_norm": True,
                               "dynamic_img_size": True},
                "pretrained_cfg": {"input_size": [3, 224, 224], "mean": [0.5] * 3, "std": [0.5] * 3}}
        m, st = folder(d, "timm_folder", tcfg, sd, "BF16")
        check_images(s, d, "timm folder 24x24", m, None, st, g.standard_normal((2, 3, 24, 24)),
                     timm=dict(heads=8, embed_prefix=0))
        check_images(s, d, "timm folder 40x33 resampled", m, None, st, g.standard_normal((2, 3, 40, 33)),
                     timm=dict(heads=8, embed_prefix=0))
        spec = dict(D=32, L=1, I=64, grid=2, patch=4, registers=1, embed_prefix=2)
        sd = hf_ref.random_encoder_state_dict(None, 9, timm=spec)
        tcfg = {"architecture": "deit3_small_patch16_224", "model_args": {"num_heads": 4}, "global_pool": "token",
                "pretrained_cfg": {"input_size": [3, 8, 8]}}
        m, st = folder(d, "timm_prefix_pos", tcfg, sd, "F32")
        check_images(s, d, "timm registers with position embeddings", m, None, st, g.standard_normal((1, 3, 8, 8)),
                     timm=dict(heads=4, embed_prefix=2))
        # --list shows the aliases and the modules by their state_dict names
        rc, out, err = repeval("embed", "--model", os.path.join(d, "bert"), "--input", os.path.join(d, "ids.npy"),
                               "--list")
        s.check(rc == 0 and "pooler_output" in out and "encoder.layer.2.attention.self.query" in out and
                "encoder.layer.0.intermediate.intermediate_act_fn" in out, f"bert --list: {err}{out}")
        rc, out, err = repeval("embed", "--model", os.path.join(d, "dinov2"), "--input", os.path.join(d, "px.npy"),
                               "--list")
        s.check(rc == 0 and "encoder.layer.1.layer_scale2" in out and "embeddings.patch_embeddings.projection" in out,
                f"dinov2 --list: {err}{out}")
    s.finish()


if __name__ == "__main__":
    main()
