/* Binding the transformer parts of the module tree (embeddings, RMSNorm, attention,
 * gated MLP, decoder blocks). Their sizes come from a model config, so a missing or
 * misshapen tensor is noted and binding goes on: every mismatch is listed at once. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bind.h"

static re_status need_tokens(const re_mod *m, re_shape in) {
  if (in.rank != 2)
    return re_bind_shape_error(m, "needs token activations (T, D), got rank %d", in.rank);
  return RE_OK;
}

static re_status bind_embedding(re_bind_ctx *c, re_mod *m, re_shape in) {
  if (in.rank != 1)
    return re_bind_shape_error(m, "needs token ids (T) as input, got rank %d", in.rank);
  int64_t d[2] = {m->in, m->out};
  re_bind_param(c, m, "weight", 2, d, 1, &m->w);
  m->out_shape = (re_shape){2, {in.d[0], m->out, 0}};
  return RE_OK;
}

static re_status bind_embed_sum(re_bind_ctx *c, re_mod *m, re_shape in) {
  re_shape x = in;
  int64_t D = -1;
  for (int k = 0; k < m->n; k++) {
    re_mod *e = m->child[k];
    if (e->type == RE_MOD_EMBEDDING) {
      RE_TRY(re_bind_module(c, e, in));
      if (D >= 0 && e->out_shape.d[1] != D)
        return re_bind_shape_error(m, "embeddings of widths %lld and %lld cannot be added", (long long)D,
                                   (long long)e->out_shape.d[1]);
      D = e->out_shape.d[1];
      x = e->out_shape;
    } else { /* a norm or dropout after the sum */
      RE_TRY(re_bind_module(c, e, x));
      x = e->out_shape;
    }
  }
  if (D < 0)
    return re_bind_shape_error(m, "no embedding table");
  m->out_shape = x;
  return RE_OK;
}

static re_status bind_rmsnorm(re_bind_ctx *c, re_mod *m, re_shape in) {
  int64_t D = in.d[in.rank - 1], d[1] = {D};
  if (m->out != RE_UNSET && m->out != D)
    return re_bind_shape_error(m, "normalizes %lld features but its input has %lld", (long long)m->out, (long long)D);
  re_bind_param(c, m, "weight", 1, d, 1, &m->w);
  m->out = D;
  m->out_shape = in;
  return RE_OK;
}

/* cos / sin of pos * inv_freq for pos < len, as transformers computes them: the angle
 * is a float32 product and its cosine is rounded to float32. */
static re_status rope_tables(re_mod *owner, int64_t len) {
  if (owner->rope_len >= len)
    return RE_OK;
  int64_t half = owner->rope_half;
  free(owner->rope_cos);
  free(owner->rope_sin);
  owner->rope_cos = owner->rope_sin = NULL;
  owner->rope_len = 0;
  RE_TRY(re_malloc(len * half, sizeof(float), &owner->rope_cos));
  RE_TRY(re_malloc(len * half, sizeof(float), &owner->rope_sin));
  for (int64_t p = 0; p < len; p++)
    for (int64_t i = 0; i < half; i++) {
      float angle = (float)p * owner->rope_inv[i];
      owner->rope_cos[p * half + i] = (float)cos((double)angle);
      owner->rope_sin[p * half + i] = (float)sin((double)angle);
    }
  owner->rope_len = len;
  return RE_OK;
}

static re_status bind_attention(re_bind_ctx *c, re_mod *m, re_shape in) {
  RE_TRY(need_tokens(m, in));
  int64_t T = in.d[0], H = m->heads, hd = m->head_dim, Hkv = m->kv_heads;
  if (H < 1 || hd < 1 || Hkv < 1 || H % Hkv)
    return re_bind_shape_error(m, "%lld query heads cannot share %lld key/value heads", (long long)H, (long long)Hkv);
  int sep = m->qkv == RE_QKV_SEPARATE;
  if (m->n != (sep ? 4 : 2))
    return re_bind_shape_error(m, "expected %d projections, has %d", sep ? 4 : 2, m->n);
  int nproj = sep ? 3 : 1;
  for (int k = 0; k < nproj; k++)
    RE_TRY(re_bind_module(c, m->child[k], in));
  if (sep) {
    if (m->child[0]->out != H * hd || m->child[1]->out != Hkv * hd || m->child[2]->out != Hkv * hd)
      return re_bind_shape_error(m, "projections give %lld, %lld, %lld features; %lld heads (%lld for keys and "
                                    "values) of %lld need %lld, %lld, %lld",
                                 (long long)m->child[0]->out, (long long)m->child[1]->out,
                                 (long long)m->child[2]->out, (long long)H, (long long)Hkv, (long long)hd,
                                 (long long)(H * hd), (long long)(Hkv * hd), (long long)(Hkv * hd));
  } else if (Hkv != H || m->child[0]->out != 3 * H * hd) {
    return re_bind_shape_error(m, "the fused projection gives %lld features; %lld heads of %lld need %lld",
                               (long long)m->child[0]->out, (long long)H, (long long)hd, (long long)(3 * H * hd));
  }
  re_shape ctx_shape = {2, {T, H * hd, 0}};
  re_mod *o = m->child[nproj];
  RE_TRY(re_bind_module(c, o, ctx_shape));
  if (m->rot_dim > 0) {
    if (m->rot_dim % 2 || m->rot_dim > hd || !m->rope_owner || m->rope_owner->rope_half * 2 != m->rot_dim)
      return re_bind_shape_error(m, "rotary width %lld does not fit heads of %lld", (long long)m->rot_dim,
                                 (long long)hd);
    RE_TRY(rope_tables(m->rope_owner, T));
  }
  /* buffers older checkpoints saved beside the weights */
  re_bind_skip(c, m, "bias");
  re_bind_skip(c, m, "masked_bias");
  re_bind_skip(c, m, "rotary_emb.inv_freq");
  m->block_q = c->block_q < T ? c->block_q : T;
  m->block_k = c->block_k < T ? c->block_k : T;
  re_bind_work(c, re_op_attention_workspace(m->block_q, m->block_k));
  m->out_shape = o->out_shape;
  return RE_OK;
}

static re_status bind_gated_mlp(re_bind_ctx *c, re_mod *m, re_shape in) {
  RE_TRY(need_tokens(m, in));
  if (m->n != 3)
    return re_bind_shape_error(m, "expected gate, up and down projections");
  RE_TRY(re_bind_module(c, m->child[0], in));
  RE_TRY(re_bind_module(c, m->child[1], in));
  if (m->child[0]->out != m->child[1]->out)
    return re_bind_shape_error(m, "gate and up projections give %lld and %lld features",
                               (long long)m->child[0]->out, (long long)m->child[1]->out);
  RE_TRY(re_bind_module(c, m->child[2], m->child[0]->out_shape));
  m->out_shape = m->child[2]->out_shape;
  return RE_OK;
}

static re_status bind_decoder_block(re_bind_ctx *c, re_mod *m, re_shape in) {
  RE_TRY(need_tokens(m, in));
  if (m->n != 4)
    return re_bind_shape_error(m, "expected a norm, an attention, a norm and an MLP");
  re_mod *ln1 = m->child[0], *attn = m->child[1], *ln2 = m->child[2], *mlp = m->child[3];
  RE_TRY(re_bind_module(c, ln1, in));
  RE_TRY(re_bind_module(c, attn, ln1->out_shape));
  RE_TRY(re_bind_module(c, ln2, in));
  RE_TRY(re_bind_module(c, mlp, ln2->out_shape));
  if (attn->out_shape.d[1] != in.d[1] || mlp->out_shape.d[1] != in.d[1])
    return re_bind_shape_error(m, "attention and MLP give %lld and %lld features for a width of %lld",
                               (long long)attn->out_shape.d[1], (long long)mlp->out_shape.d[1], (long long)in.d[1]);
  m->out_shape = in;
  return RE_OK;
}

re_status re_bind_transformer(re_bind_ctx *c, re_mod *m, re_shape in) {
  switch (m->type) {
  case RE_MOD_EMBEDDING: return bind_embedding(c, m, in);
  case RE_MOD_EMBED_SUM: return bind_embed_sum(c, m, in);
  case RE_MOD_RMSNORM: return bind_rmsnorm(c, m, in);
  case RE_MOD_ATTENTION: return bind_attention(c, m, in);
  case RE_MOD_GATED_MLP: return bind_gated_mlp(c, m, in);
  case RE_MOD_DECODER_BLOCK: return bind_decoder_block(c, m, in);
  default: return re_bind_shape_error(m, "not a transformer part");
  }
}
