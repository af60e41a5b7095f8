"""Hugging Face model folders that do not fit are refused before anything is
written, with exit code 1 and a message naming the file and the key: config sizes
that disagree with the tensors (every mismatch listed, with the config key), a
missing tensor, an extra layer, an unknown model_type, keys of the wrong type, a
sequence longer than max_position_embeddings / n_positions, token ids outside the
vocabulary, bad attention masks, float ids, and the features the engine does not
implement (sliding windows shorter than the sequence, mixture of experts, ALiBi,
cross-attention, rope types other than default / linear / llama3); broken sharded
indexes; a folder without config.json. Encoders and vision models: relative position
embeddings and causal BERTs, sequences beyond RoBERTa's padding-offset positions, token
type ids outside type_vocab_size or for a model without them, ViT and CLIP images of
another size than image_size, channels other than num_channels, images smaller than a
patch, register tokens outside dinov2_with_registers, a SwiGLU config with a plain MLP
checkpoint, position embeddings that are no square grid, CLIP without vision_config,
timm folders with other poolings, options or architectures, state_dicts without a class
token or with q/k norms, token ids given to a vision model and masks to images."""
import copy
import json
import os
import shutil

import numpy as np

import hf_ref
from common import Suite, repeval, tmpdir

BERT = {"model_type": "bert", "vocab_size": 60, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 48, "max_position_embeddings": 16, "type_vocab_size": 2, "pad_token_id": 0}
ROBERTA = dict(BERT, model_type="roberta", pad_token_id=1, type_vocab_size=1)
VIT = {"model_type": "vit", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
       "intermediate_size": 48, "image_size": 16, "patch_size": 4, "num_channels": 3}
DINOV2 = {"model_type": "dinov2", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "mlp_ratio": 2,
          "image_size": 16, "patch_size": 4, "num_channels": 3}
CLIP_V = {"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 1,
          "num_attention_heads": 2, "image_size": 16, "patch_size": 4, "hidden_act": "quick_gelu"}
LLAMA = {"model_type": "llama", "vocab_size": 100, "hidden_size": 64, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 96, "hidden_act": "silu",
         "max_position_embeddings": 32, "rms_norm_eps": 1e-6, "rope_theta": 10000.0}
GPT2 = {"model_type": "gpt2", "vocab_size": 50, "n_embd": 32, "n_layer": 1, "n_head": 2, "n_positions": 16}


def folder(root, name, cfg, sd_cfg=None, edit=None, shards=1):
    """A model folder: config `cfg`, weights drawn for `sd_cfg` (default cfg), edited."""
    d = os.path.join(root, name)
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(cfg if isinstance(cfg, str) else json.dumps(cfg))
    sd = hf_ref.random_state_dict(sd_cfg or cfg, 1)
    if edit:
        edit(sd)
    hf_ref.write_weights(d, sd, "F32", shards)
    return d


def efolder(root, name, cfg, sd_cfg=None, edit=None, timm=None):
    """A folder of an encoder or vision model (or, with timm, of a timm ViT)."""
    d = os.path.join(root, name)
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(json.dumps(cfg))
    sd = hf_ref.random_encoder_state_dict(sd_cfg or cfg, 1, timm=timm)
    if edit:
        edit(sd)
    hf_ref.write_weights(d, sd, "F32")
    return d


def encoder_cases(s, d, refused):
    cfg_path = lambda name: os.path.join(d, name, "config.json")  # noqa: E731
    ids = os.path.join(d, "eids.npy")
    np.save(ids, np.random.default_rng(1).integers(2, 60, (2, 8)))
    px = os.path.join(d, "px.npy")
    np.save(px, np.random.default_rng(2).standard_normal((2, 3, 16, 16)).astype(np.float32))
    # encoders
    m = efolder(d, "bert_rel", dict(BERT, position_embedding_type="relative_key"), BERT)
    refused(m, [cfg_path("bert_rel"), "position_embedding_type 'relative_key' is not supported"],
            "relative position embeddings", ids)
    m = efolder(d, "bert_dec", dict(BERT, is_decoder=True), BERT)
    refused(m, [cfg_path("bert_dec"), "is_decoder"], "a causal BERT", ids)
    m = efolder(d, "bert_sizes", dict(BERT, intermediate_size=40), BERT)
    refused(m, ["does not match", "encoder.layer.0.intermediate.dense.weight", "encoder.layer.1.output.dense.weight",
                "[48, 32]", "[40, 32]", "intermediate_size 40", cfg_path("bert_sizes")], "bert intermediate_size", ids)
    bert = efolder(d, "bert", BERT)
    long_ids = os.path.join(d, "elong.npy")
    np.save(long_ids, np.full((1, 17), 5))
    refused(bert, [cfg_path("bert"), "17 tokens are longer than max_position_embeddings 16"], "bert T > positions",
            long_ids)
    m = efolder(d, "roberta", ROBERTA)
    np.save(long_ids, np.full((1, 15), 5))
    refused(m, [cfg_path("roberta"), "15 tokens need position ids up to 16", "pad_token_id 1",
                "max_position_embeddings 16"], "roberta T + pad_token_id > positions", long_ids)
    tt = os.path.join(d, "types.npy")
    t = np.zeros((2, 8), dtype=np.int64)
    t[1, 6] = 2
    np.save(tt, t)
    refused(bert, [tt, "sample 1, position 6: 2 is outside [0, 2) (type_vocab_size)"], "token type >= type_vocab_size",
            ids, ("--token-type-ids", tt))
    np.save(tt, np.zeros((2, 7), dtype=np.int64))
    refused(bert, [tt, "token type ids must be 2 x 8"], "token type ids shape", ids, ("--token-type-ids", tt))
    np.save(tt, np.zeros((2, 8), dtype=np.int64))
    m = folder(d, "llama_types", LLAMA)
    refused(m, [tt, "no token type embedding"], "token types for a decoder", ids, ("--token-type-ids", tt))
    refused(bert, ["token ids must be N x T"], "images given to an encoder", px)
    # vision models
    vit = efolder(d, "vit", VIT)
    other = os.path.join(d, "px20.npy")
    np.save(other, np.zeros((1, 3, 20, 20), dtype=np.float32))
    refused(vit, ["takes 16 x 16 images", "got 20 x 20", cfg_path("vit"), "image_size 16"], "vit at another size",
            other)
    gray = os.path.join(d, "gray.npy")
    np.save(gray, np.zeros((1, 1, 16, 16), dtype=np.float32))
    refused(vit, [cfg_path("vit"), "images of 1 channels, but num_channels is 3"], "channels", gray)
    refused(vit, [cfg_path("vit"), "takes images"], "token ids given to a vision model", ids)
    mk = os.path.join(d, "emask.npy")
    np.save(mk, np.ones((2, 16), dtype=np.int64))
    refused(vit, ["--attention-mask", "token ids"], "a mask for images", px, ("--attention-mask", mk))
    tiny = os.path.join(d, "tiny.npy")
    np.save(tiny, np.zeros((1, 3, 3, 3), dtype=np.float32))
    dino = efolder(d, "dinov2", DINOV2)
    refused(dino, [cfg_path("dinov2"), "3 x 3 images are smaller than one patch (patch_size 4)"], "image < patch",
            tiny)
    m = efolder(d, "dinov2_reg", dict(DINOV2, num_register_tokens=4), DINOV2)
    refused(m, [cfg_path("dinov2_reg"), "num_register_tokens", "dinov2_with_registers"], "registers in dinov2", px)
    m = efolder(d, "dinov2_swiglu", dict(DINOV2, use_swiglu_ffn=True), DINOV2)
    refused(m, ["missing tensor 'encoder.layer.0.mlp.weights_in.weight'", "use_swiglu_ffn",
                "unexpected tensor 'encoder.layer.0.mlp.fc1.weight'"], "use_swiglu_ffn with a plain MLP", px)
    m = efolder(d, "dinov2_grid", DINOV2, edit=lambda sd: sd.update(
        {"embeddings.position_embeddings": np.zeros((1, 18, 32), np.float32)}))
    refused(m, ["embeddings", "18 position embeddings are not 1 prefix token and a square grid"],
            "position embeddings of no square grid", px)
    m = efolder(d, "clip_act", dict(CLIP_V, hidden_act="gelu_10"), CLIP_V)
    refused(m, [cfg_path("clip_act"), "hidden_act 'gelu_10' is not supported"], "clip activation", px)
    m = efolder(d, "clip_novision", {"model_type": "clip", "text_config": {}}, CLIP_V)
    refused(m, [cfg_path("clip_novision"), "vision_config"], "clip without vision_config", px)
    m = efolder(d, "clip_size", CLIP_V)
    refused(m, ["takes 16 x 16 images", "image_size 16"], "clip at another size", other)
    # timm
    spec = dict(D=32, L=1, I=64, grid=4, patch=4)
    base = {"architecture": "vit_tiny_patch16_224", "model_args": {"num_heads": 2, "img_size": 16}}
    m = efolder(d, "timm_avg", dict(base, global_pool="avg"), timm=spec)
    refused(m, [cfg_path("timm_avg"), "global_pool 'avg' is not supported"], "timm global_pool avg", px)
    m = efolder(d, "timm_arch", dict(base, architecture="resnet50"), timm=spec)
    refused(m, [cfg_path("timm_arch"), "timm architecture 'resnet50' is not supported"], "timm resnet", px)
    m = efolder(d, "timm_qk", dict(base, model_args={"num_heads": 2, "qk_norm": True}), timm=spec)
    refused(m, [cfg_path("timm_qk"), "model_args.qk_norm"], "timm qk_norm option", px)
    m = efolder(d, "timm_qknorm", base, timm=spec, edit=lambda sd: sd.update(
        {"blocks.0.attn.q_norm.weight": np.ones(16, np.float32)}))
    refused(m, ["unexpected tensor 'blocks.0.attn.q_norm.weight'"], "timm q_norm tensors", px)
    m = efolder(d, "timm_nocls", base, timm=spec, edit=lambda sd: sd.pop("cls_token"))
    refused(m, ["without a class token", "cls_token"], "timm without cls_token", px)
    m = efolder(d, "timm_size", base, timm=spec)
    refused(m, ["takes 16 x 16 images", "got 20 x 20", "model_args.img_size"], "timm at another size", other)
    with open(os.path.join(d, "timm.yaml"), "w") as f:
        f.write("preset: timm-vit\nheads: 3\n")
    refused(os.path.join(d, "timm.yaml"), ["width 32 is not divisible by 3 heads"], "timm-vit preset heads", px,
            ("--checkpoint", os.path.join(m, "model.safetensors")))


def main():
    s = Suite()
    with tmpdir() as d:
        ids = os.path.join(d, "ids.npy")
        np.save(ids, np.random.default_rng(0).integers(0, 50, (3, 8)))
        out = os.path.join(d, "out")

        def refused(model, want, what, inp=ids, extra=()):  # noqa: B008
            rc, _, err = repeval("embed", "--model", model, "--input", inp, *extra, "--layers",
                                 "last_hidden_state", "--out", out)
            ok = rc == 1 and all(w in err for w in want) and not os.path.exists(out)
            s.check(ok, f"{what}: rc {rc}, stderr: {err.strip()}")
            if os.path.exists(out):
                shutil.rmtree(out)

        cfg_path = lambda name: os.path.join(d, name, "config.json")  # noqa: E731

        # sizes from the config against the tensors: every mismatch, with the config key
        bad = dict(LLAMA, intermediate_size=80)
        m = folder(d, "sizes", bad, LLAMA)
        refused(m, ["does not match", "layers.0.mlp.gate_proj.weight", "layers.1.mlp.down_proj.weight",
                    "[96, 64]", "[80, 64]", "intermediate_size 80", cfg_path("sizes")], "intermediate_size")
        m = folder(d, "kvheads", dict(LLAMA, num_key_value_heads=4), LLAMA)
        refused(m, ["layers.0.self_attn.k_proj.weight", "num_key_value_heads 4", cfg_path("kvheads")],
                "num_key_value_heads")
        m = folder(d, "missing", LLAMA, edit=lambda sd: sd.pop("layers.1.mlp.up_proj.weight"))
        refused(m, ["missing tensor 'layers.1.mlp.up_proj.weight' [96, 64]", cfg_path("missing")], "missing tensor")
        m = folder(d, "extra_layer", dict(LLAMA, num_hidden_layers=1), LLAMA)
        refused(m, ["unexpected tensor 'layers.1.", "extra_layer does not match the model description"],
                "more layers than num_hidden_layers")
        m = folder(d, "bias", dict(LLAMA, attention_bias=True), LLAMA)
        refused(m, ["missing tensor 'layers.0.self_attn.q_proj.bias'", "attention"], "attention_bias without biases")
        # unknown or malformed configs
        m = folder(d, "unknown", dict(LLAMA, model_type="llama_xl"), LLAMA)
        refused(m, [cfg_path("unknown"), "model_type 'llama_xl' is not supported", "gpt2, gpt_neox, llama"],
                "unknown model_type")
        m = folder(d, "no_type", {k: v for k, v in LLAMA.items() if k != "model_type"}, LLAMA)
        refused(m, [cfg_path("no_type"), "model_type"], "no model_type")
        m = folder(d, "string_size", dict(LLAMA, hidden_size="64"), LLAMA)
        refused(m, [cfg_path("string_size"), "'hidden_size' must be a non-negative integer, got a string"],
                "a string size")
        m = folder(d, "not_json", "{\"model_type\": \"llama\",}", LLAMA)
        refused(m, [cfg_path("not_json"), "byte"], "invalid JSON")
        os.makedirs(os.path.join(d, "empty_folder"))
        refused(os.path.join(d, "empty_folder"), ["config.json"], "a folder without config.json")
        # sequence length, ids, masks
        g = folder(d, "gpt2", GPT2)
        long_ids = os.path.join(d, "long.npy")
        np.save(long_ids, np.zeros((2, 17), dtype=np.int64))
        refused(g, [cfg_path("gpt2"), "17 tokens are longer than n_positions 16"], "T > n_positions", long_ids)
        long_ids = os.path.join(d, "long33.npy")
        np.save(long_ids, np.zeros((1, 33), dtype=np.int32))
        m = folder(d, "llama", LLAMA)
        refused(m, [cfg_path("llama"), "33 tokens are longer than max_position_embeddings 32"],
                "T > max_position_embeddings", long_ids)
        big = os.path.join(d, "big.npy")
        a = np.zeros((3, 8), dtype=np.int64)
        a[1, 3] = 50
        np.save(big, a)
        refused(g, [big, "sample 1, position 3: id 50 is outside the vocabulary [0, 50)", "vocab_size 50",
                    cfg_path("gpt2")], "id >= vocab_size", big)
        a[1, 3] = -1
        np.save(big, a)
        refused(g, ["sample 1, position 3: id -1"], "negative id", big)
        fl = os.path.join(d, "float_ids.npy")
        np.save(fl, np.zeros((3, 8), dtype=np.float32))
        refused(g, [fl, "integers"], "float ids", fl)
        mk = os.path.join(d, "mask.npy")
        mask = np.ones((3, 8), dtype=np.int64)
        mask[2, 5] = 2
        np.save(mk, mask)
        refused(g, [mk, "sample 2, position 5 is 2"], "mask value 2", ids, ("--attention-mask", mk))
        mask[2] = 0
        np.save(mk, mask)
        refused(g, [mk, "sample 2 has no token"], "a sample of padding only", ids, ("--attention-mask", mk))
        np.save(mk, np.ones((3, 7), dtype=np.int64))
        refused(g, [mk, "attention mask must be 3 x 8"], "mask shape", ids, ("--attention-mask", mk))
        # features the engine does not implement, by their key
        m = folder(d, "window", dict(LLAMA, model_type="mistral", sliding_window=6), LLAMA)
        refused(m, [cfg_path("window"), "sliding_window 6"], "mistral sliding window < T")
        m = folder(d, "window_ok", dict(LLAMA, model_type="mistral", sliding_window=8), LLAMA)
        rc, _, err = repeval("embed", "--model", m, "--input", ids, "--layers", "last_hidden_state", "--out", out)
        s.check(rc == 0, f"a sliding window as long as the sequence is accepted: {err}")
        shutil.rmtree(out, ignore_errors=True)
        q = dict(LLAMA, model_type="qwen2", use_sliding_window=True, sliding_window=4, max_window_layers=1)
        m = folder(d, "qwen_window", q, dict(LLAMA, model_type="qwen2"))
        refused(m, [cfg_path("qwen_window"), "sliding_window 4"], "qwen2 sliding window < T")
        m = folder(d, "moe", dict(LLAMA, num_local_experts=4), LLAMA)
        refused(m, [cfg_path("moe"), "mixture-of-experts", "num_local_experts"], "mixture of experts")
        m = folder(d, "alibi", dict(LLAMA, position_embedding_type="alibi"), LLAMA)
        refused(m, [cfg_path("alibi"), "ALiBi", "position_embedding_type"], "ALiBi")
        m = folder(d, "cross", dict(GPT2, add_cross_attention=True), GPT2)
        refused(m, [cfg_path("cross"), "cross-attention", "add_cross_attention"], "cross-attention")
        yarn = dict(LLAMA, rope_parameters={"rope_type": "yarn", "factor": 4.0, "rope_theta": 10000.0})
        m = folder(d, "yarn", yarn, LLAMA)
        refused(m, [cfg_path("yarn"), "'rope_parameters.rope_type' 'yarn' is not supported"], "rope_type yarn")
        dyn = dict(LLAMA, rope_scaling={"type": "dynamic", "factor": 2.0})
        m = folder(d, "dynamic", dyn, LLAMA)
        refused(m, [cfg_path("dynamic"), "'rope_scaling.type' 'dynamic' is not supported"], "rope_scaling dynamic")
        l3 = dict(LLAMA, rope_scaling={"rope_type": "llama3", "factor": 8.0})
        m = folder(d, "llama3_incomplete", l3, LLAMA)
        refused(m, [cfg_path("llama3_incomplete"), "low_freq_factor"], "llama3 without its factors")
        m = folder(d, "act", dict(LLAMA, hidden_act="gelu_10"), LLAMA)
        refused(m, [cfg_path("act"), "hidden_act 'gelu_10' is not supported"], "unknown activation")
        # sharded checkpoints whose index does not fit the shards
        m = folder(d, "sharded", LLAMA, shards=2)
        index = os.path.join(m, "model.safetensors.index.json")
        with open(index) as f:
            good = json.load(f)
        broken = copy.deepcopy(good)
        first = next(iter(broken["weight_map"]))
        broken["weight_map"][first] = "model-00002-of-00002.safetensors"
        with open(index, "w") as f:
            json.dump(broken, f)
        refused(m, [index, f"weight_map['{first}'] names shard 'model-00002-of-00002.safetensors', which does not hold "
                          "that tensor"], "tensor in another shard")
        broken = copy.deepcopy(good)
        broken["weight_map"][first] = "../elsewhere.safetensors"
        with open(index, "w") as f:
            json.dump(broken, f)
        refused(m, [index, "which is not a file name in the model folder"], "a shard outside the folder")
        with open(index, "w") as f:
            json.dump(good, f)
        os.remove(os.path.join(m, "model-00002-of-00002.safetensors"))
        refused(m, ["names shard 'model-00002-of-00002.safetensors', which is missing"], "a missing shard")
        encoder_cases(s, d, refused)
    s.finish()


if __name__ == "__main__":
    main()
