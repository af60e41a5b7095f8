/* Fuzz target: Hugging Face config.json from memory, built and bound against a small
 * in-memory safetensors checkpoint that holds a tiny Llama ("model." prefix), GPT-2
 * ("transformer.") and GPT-NeoX ("gpt_neox."), each ignoring the others' tensors;
 * when the config fits one of them, two sequences of 5 tokens (one left-padded) run
 * with a mean and a tokens tap. Seeds: tests/fuzz/corpus/hf_config. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/io/ckpt/ckpt_internal.h"
#include "../../lib/nn/hf.h"
#include "repeval/nn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *blob;
static int64_t blob_len;

typedef struct spec {
  const char *name;
  int ndim;
  int64_t shape[2];
} spec;

static const spec TENSORS[] = {
    /* Llama: vocab 8, hidden 4, 2 heads of 2 on 1 key/value head, MLP 6 */
    {"model.embed_tokens.weight", 2, {8, 4}},
    {"model.layers.0.input_layernorm.weight", 1, {4}},
    {"model.layers.0.self_attn.q_proj.weight", 2, {4, 4}},
    {"model.layers.0.self_attn.k_proj.weight", 2, {2, 4}},
    {"model.layers.0.self_attn.v_proj.weight", 2, {2, 4}},
    {"model.layers.0.self_attn.o_proj.weight", 2, {4, 4}},
    {"model.layers.0.post_attention_layernorm.weight", 1, {4}},
    {"model.layers.0.mlp.gate_proj.weight", 2, {6, 4}},
    {"model.layers.0.mlp.up_proj.weight", 2, {6, 4}},
    {"model.layers.0.mlp.down_proj.weight", 2, {4, 6}},
    {"model.norm.weight", 1, {4}},
    {"lm_head.weight", 2, {8, 4}},
    /* GPT-2: vocab 8, 8 positions, width 4, 2 heads, MLP 8 */
    {"transformer.wte.weight", 2, {8, 4}},
    {"transformer.wpe.weight", 2, {8, 4}},
    {"transformer.h.0.ln_1.weight", 1, {4}},
    {"transformer.h.0.ln_1.bias", 1, {4}},
    {"transformer.h.0.attn.c_attn.weight", 2, {4, 12}},
    {"transformer.h.0.attn.c_attn.bias", 1, {12}},
    {"transformer.h.0.attn.c_proj.weight", 2, {4, 4}},
    {"transformer.h.0.attn.c_proj.bias", 1, {4}},
    {"transformer.h.0.ln_2.weight", 1, {4}},
    {"transformer.h.0.ln_2.bias", 1, {4}},
    {"transformer.h.0.mlp.c_fc.weight", 2, {4, 8}},
    {"transformer.h.0.mlp.c_fc.bias", 1, {8}},
    {"transformer.h.0.mlp.c_proj.weight", 2, {8, 4}},
    {"transformer.h.0.mlp.c_proj.bias", 1, {4}},
    {"transformer.ln_f.weight", 1, {4}},
    {"transformer.ln_f.bias", 1, {4}},
    /* GPT-NeoX: vocab 8, width 4, one head, MLP 8 */
    {"gpt_neox.embed_in.weight", 2, {8, 4}},
    {"gpt_neox.layers.0.input_layernorm.weight", 1, {4}},
    {"gpt_neox.layers.0.input_layernorm.bias", 1, {4}},
    {"gpt_neox.layers.0.post_attention_layernorm.weight", 1, {4}},
    {"gpt_neox.layers.0.post_attention_layernorm.bias", 1, {4}},
    {"gpt_neox.layers.0.attention.query_key_value.weight", 2, {12, 4}},
    {"gpt_neox.layers.0.attention.query_key_value.bias", 1, {12}},
    {"gpt_neox.layers.0.attention.dense.weight", 2, {4, 4}},
    {"gpt_neox.layers.0.attention.dense.bias", 1, {4}},
    {"gpt_neox.layers.0.mlp.dense_h_to_4h.weight", 2, {8, 4}},
    {"gpt_neox.layers.0.mlp.dense_h_to_4h.bias", 1, {8}},
    {"gpt_neox.layers.0.mlp.dense_4h_to_h.weight", 2, {4, 8}},
    {"gpt_neox.layers.0.mlp.dense_4h_to_h.bias", 1, {4}},
    {"gpt_neox.final_layer_norm.weight", 1, {4}},
    {"gpt_neox.final_layer_norm.bias", 1, {4}},
};

static void make_checkpoint(void) {
  size_t n = sizeof TENSORS / sizeof TENSORS[0], at = 0;
  char *header = malloc(16384);
  int64_t off = 0;
  if (!header)
    abort();
  at += (size_t)snprintf(header + at, 16384 - at, "{");
  for (size_t k = 0; k < n; k++) {
    int64_t numel = 1;
    at += (size_t)snprintf(header + at, 16384 - at, "%s\"%s\": {\"dtype\": \"F32\", \"shape\": [", k ? ", " : "",
                           TENSORS[k].name);
    for (int d = 0; d < TENSORS[k].ndim; d++) {
      numel *= TENSORS[k].shape[d];
      at += (size_t)snprintf(header + at, 16384 - at, "%s%lld", d ? ", " : "", (long long)TENSORS[k].shape[d]);
    }
    at += (size_t)snprintf(header + at, 16384 - at, "], \"data_offsets\": [%lld, %lld]}", (long long)off,
                           (long long)(off + 4 * numel));
    off += 4 * numel;
  }
  at += (size_t)snprintf(header + at, 16384 - at, "}");
  while ((8 + at) % 8)
    header[at++] = ' ';
  blob_len = 8 + (int64_t)at + off;
  blob = calloc(1, (size_t)blob_len);
  if (!blob)
    abort();
  uint64_t hl = at;
  memcpy(blob, &hl, 8);
  memcpy(blob + 8, header, at);
  float *v = (float *)(void *)(blob + 8 + at);
  for (int64_t k = 0; k < off / 4; k++)
    v[k] = (float)((k % 7) - 3) / 8.0f + ((k % 5) == 0 ? 1.0f : 0.0f);
  free(header);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!blob)
    make_checkpoint();
  re_ckpt *ck = NULL;
  re_hf_config *cfg = NULL;
  re_model *m = NULL;
  re_net *net = NULL;
  if (re_ckpt_alloc("fuzz.safetensors", RE_CKPT_SAFETENSORS, &ck) != RE_OK ||
      re_safetensors_parse(ck, blob, blob_len) != RE_OK)
    abort(); /* the fixed checkpoint must load */
  if (re_hf_config_parse("fuzz-config.json", (const char *)data, (int64_t)size, &cfg) != RE_OK)
    goto done;
  if (re_model_from_hf(cfg, &m) != RE_OK) /* takes cfg */
    goto done;
  int64_t T = 5;
  if (re_net_create(m, ck, 1, &T, 2, &net) != RE_OK)
    goto done;
  int t1, t2;
  if (re_net_add_tap(net, "hidden_states.1", RE_TAP_POOL_MEAN, &t1) != RE_OK ||
      re_net_add_tap(net, "last_hidden_state", RE_TAP_TOKENS, &t2) != RE_OK)
    goto done;
  int64_t ids[10] = {1, 2, 3, 4, 5, 0, 0, 7, 6, 1};
  uint8_t mask[10] = {1, 1, 1, 1, 1, 0, 0, 1, 1, 1};
  if (re_net_forward_tokens(net, ids, mask, 2, T) == RE_OK) {
    const float *y = re_net_tap_data(net, t2);
    int64_t rows = re_net_tap_rows(net, t2, NULL, NULL), dim, rps;
    re_net_tap_shape(net, t2, &dim, &rps);
    volatile float sink = 0;
    for (int64_t k = 0; k < rows * dim; k++)
      sink += y[k];
    (void)sink;
  }
done:
  re_net_destroy(&net);
  re_model_destroy(&m);
  re_ckpt_close(&ck);
  return 0;
}
