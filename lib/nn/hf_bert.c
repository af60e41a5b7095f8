/* Module trees of BERT (Devlin et al. 2019) and RoBERTa (Liu et al. 2019) encoders from
 * their config.json, named as transformers' state_dict (embeddings.word_embeddings,
 * encoder.layer.3.attention.self.query, pooler.dense). Post-norm layers with a
 * non-causal self-attention that skips padding keys; RoBERTa's position ids count
 * non-padding tokens from pad_token_id + 1 (transformers'
 * create_position_ids_from_input_ids). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf.h"

typedef struct enc {
  const re_hf_config *c;
  int roberta;
  int64_t V, D, L, H, I, P, TV, pad;
  double eps;
  re_act act;
} enc;

static re_status read_config(enc *e) {
  const re_hf_config *c = e->c;
  const char *pe = NULL;
  int dec = 0;
  RE_TRY(re_hf_size(c, 0, "", "vocab_size", -1, &e->V));
  RE_TRY(re_hf_size(c, 0, "", "hidden_size", -1, &e->D));
  RE_TRY(re_hf_size(c, 0, "", "num_hidden_layers", -1, &e->L));
  RE_TRY(re_hf_size(c, 0, "", "num_attention_heads", -1, &e->H));
  RE_TRY(re_hf_size(c, 0, "", "intermediate_size", -1, &e->I));
  RE_TRY(re_hf_size(c, 0, "", "max_position_embeddings", 512, &e->P));
  RE_TRY(re_hf_size(c, 0, "", "type_vocab_size", 2, &e->TV));
  RE_TRY(re_hf_int(c, 0, "", "pad_token_id", e->roberta ? 1 : 0, &e->pad));
  RE_TRY(re_hf_positive_num(c, 0, "", "layer_norm_eps", 1e-12, &e->eps));
  RE_TRY(re_hf_act(c, 0, "", "hidden_act", "gelu", &e->act));
  RE_TRY(re_hf_str(c, 0, "", "position_embedding_type", "absolute", &pe));
  if (strcmp(pe, "absolute"))
    return re_hf_fail(c, "position_embedding_type '%s' is not supported (only absolute)", pe);
  RE_TRY(re_hf_bool(c, 0, "", "is_decoder", 0, &dec));
  if (dec)
    return re_hf_fail(c, "is_decoder true (a causal %s) is not supported", e->roberta ? "RoBERTa" : "BERT");
  if (e->D % e->H)
    return re_err(RE_EFORMAT, "%s: hidden_size %lld is not divisible by num_attention_heads %lld", c->path,
                  (long long)e->D, (long long)e->H);
  if (e->roberta && e->pad >= e->P)
    return re_err(RE_EFORMAT, "%s: pad_token_id %lld is not a row of the position embeddings "
                              "(max_position_embeddings %lld)",
                  c->path, (long long)e->pad, (long long)e->P);
  return RE_OK;
}

static re_status embedding(re_mod *parent, const enc *e, const char *name, int64_t rows, re_embed_src src,
                           const char *key, re_mod **made) {
  re_mod *m;
  RE_TRY(re_hf_add(parent, name, RE_MOD_EMBEDDING, &m));
  m->in = rows, m->out = e->D, m->positions = src;
  RE_TRY(re_hf_why(m, e->c, "%s %lld, hidden_size %lld", key, (long long)rows, (long long)e->D));
  if (made)
    *made = m;
  return RE_OK;
}

static re_status layer(re_mod *root, const enc *e, int64_t l, re_mod **made) {
  const re_hf_config *c = e->c;
  char name[64], why[160], wi[160];
  re_mod *blk, *self, *mid, *act;
  int64_t D = e->D;
  snprintf(name, sizeof name, "encoder.layer.%lld", (long long)l);
  snprintf(why, sizeof why, "hidden_size %lld", (long long)D);
  snprintf(wi, sizeof wi, "hidden_size %lld, intermediate_size %lld", (long long)D, (long long)e->I);
  RE_TRY(re_hf_add(root, name, RE_MOD_ENCODER_LAYER, &blk));
  RE_TRY(re_hf_add(blk, "attention.self", RE_MOD_ATTENTION, &self));
  self->heads = self->kv_heads = e->H;
  self->head_dim = D / e->H;
  self->causal = 0;
  self->attn_scale = 1.0 / sqrt((double)self->head_dim);
  self->qkv = RE_QKV_SEPARATE;
  RE_TRY(re_hf_linear(self, c, "query", D, D, 1, why, NULL));
  RE_TRY(re_hf_linear(self, c, "key", D, D, 1, why, NULL));
  RE_TRY(re_hf_linear(self, c, "value", D, D, 1, why, NULL));
  RE_TRY(re_hf_linear(blk, c, "attention.output.dense", D, D, 1, why, NULL));
  RE_TRY(re_hf_layernorm(blk, c, "attention.output.LayerNorm", D, e->eps, "hidden_size", NULL));
  RE_TRY(re_hf_add(blk, "intermediate", RE_MOD_SEQ, &mid));
  RE_TRY(re_hf_linear(mid, c, "dense", D, e->I, 1, wi, NULL));
  RE_TRY(re_hf_add(mid, "intermediate_act_fn", RE_MOD_ACT, &act));
  act->act = e->act;
  RE_TRY(re_hf_linear(blk, c, "output.dense", e->I, D, 1, wi, NULL));
  RE_TRY(re_hf_layernorm(blk, c, "output.LayerNorm", D, e->eps, "hidden_size", NULL));
  *made = blk;
  return RE_OK;
}

re_status re_hf_build_bert(const re_hf_config *c, const char *type, const re_ckpt *ck, int64_t T, re_mod *root) {
  enc e;
  memset(&e, 0, sizeof e);
  e.c = c;
  e.roberta = strcmp(type, "bert") != 0;
  RE_TRY(read_config(&e));
  if (T < 1)
    return re_err(RE_EINVAL, "%s: sequences need at least one token", c->path);
  if (!e.roberta && T > e.P)
    return re_err(RE_EINVAL, "%s: sequences of %lld tokens are longer than max_position_embeddings %lld", c->path,
                  (long long)T, (long long)e.P);
  if (e.roberta && e.pad + T >= e.P) /* the last token's position id is pad_token_id + T */
    return re_err(RE_EINVAL, "%s: sequences of %lld tokens need position ids up to %lld (pad_token_id %lld + %lld), "
                             "beyond max_position_embeddings %lld",
                  c->path, (long long)T, (long long)(e.pad + T), (long long)e.pad, (long long)T, (long long)e.P);
  static const char *const bert_prefixes[] = {"", "bert.", NULL}, *const roberta_prefixes[] = {"", "roberta.", NULL};
  RE_TRY(re_hf_find_prefix(root, ck, e.roberta ? roberta_prefixes : bert_prefixes, "embeddings.word_embeddings.weight"));
  root->tokens = 1;
  root->hf = 1;
  root->vocab = e.V;
  root->type_vocab = e.TV;
  root->pos_rule = e.roberta ? RE_POS_PADDING_IDX : RE_POS_ARANGE;
  root->pad_id = e.pad;
  RE_TRY(re_hf_why(root, c, "vocab_size %lld", (long long)e.V)); /* for errors about token ids */
  re_mod *emb, *blk = NULL, *pool, *m;
  RE_TRY(re_hf_add(root, "embeddings", RE_MOD_EMBED_SUM, &emb));
  RE_TRY(embedding(emb, &e, "word_embeddings", e.V, RE_EMBED_IDS, "vocab_size", NULL));
  RE_TRY(embedding(emb, &e, "token_type_embeddings", e.TV, RE_EMBED_TYPES, "type_vocab_size", NULL));
  RE_TRY(embedding(emb, &e, "position_embeddings", e.P, RE_EMBED_POSITIONS, "max_position_embeddings", NULL));
  RE_TRY(re_hf_layernorm(emb, c, "LayerNorm", e.D, e.eps, "hidden_size", NULL));
  RE_TRY(re_hf_alias(root, "hidden_states.0", emb));
  for (int64_t l = 0; l < e.L; l++) {
    char name[64];
    RE_TRY(layer(root, &e, l, &blk));
    snprintf(name, sizeof name, "hidden_states.%lld", (long long)(l + 1));
    RE_TRY(re_hf_alias(root, name, blk));
  }
  RE_TRY(re_hf_alias(root, "last_hidden_state", blk));
  char key[512];
  snprintf(key, sizeof key, "%spooler.dense.weight", root->prefix);
  if (re_hf_has_tensor(ck, key)) { /* BertPooler: tanh(dense(first token)); the *ForMaskedLM classes have none */
    char why[160];
    snprintf(why, sizeof why, "hidden_size %lld", (long long)e.D);
    RE_TRY(re_hf_add(root, "pooler", RE_MOD_SEQ, &pool));
    RE_TRY(re_mod_new("", "", RE_MOD_TAKE_TOKEN, &m));
    RE_TRY(re_mod_add(pool, m));
    RE_TRY(re_hf_linear(pool, c, "dense", e.D, e.D, 1, why, NULL));
    RE_TRY(re_hf_add(pool, "activation", RE_MOD_ACT, &m));
    m->act = RE_ACT_TANH;
    RE_TRY(re_hf_alias(root, "pooler_output", pool));
  }
  return RE_OK;
}
