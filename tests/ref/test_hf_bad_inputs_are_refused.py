"""Hugging Face model folders that do not fit are refused before anything is
written, with exit code 1 and a message naming the file and the key: config sizes
that disagree with the tensors (every mismatch listed, with the config key), a
missing tensor, an extra layer, an unknown model_type, keys of the wrong type, a
sequence longer than max_position_embeddings / n_positions, token ids outside the
vocabulary, bad attention masks, float ids, and the features the engine does not
implement (sliding windows shorter than the sequence, mixture of experts, ALiBi,
cross-attention, rope types other than default / linear / llama3); broken sharded
indexes; a folder without config.json."""
import copy
import json
import os
import shutil

import numpy as np

import hf_ref
from common import Suite, repeval, tmpdir

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


def main():
    s = Suite()
    with tmpdir() as d:
        ids = os.path.join(d, "ids.npy")
        np.save(ids, np.random.default_rng(0).integers(0, 50, (3, 8)))
        out = os.path.join(d, "out")

        def refused(model, want, what, inp=ids, extra=()):
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
    s.finish()


if __name__ == "__main__":
    main()
