/* Binding the transformer parts of the module tree (embeddings, RMSNorm, attention,
 * gated MLP, decoder blocks, post-norm encoder layers, patch embeddings, layer scales). Their sizes come from a model config, so a missing or
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
  re_bind_skip(c, m, "position_ids"); /* buffers older BERT checkpoints saved */
  re_bind_skip(c, m, "token_type_ids");
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
  if (sep ? (m->n != 3 && m->n != 4) : m->n != 2) /* separate q, k, v may leave the output projection outside */
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
  re_mod *o = nproj < m->n ? m->child[nproj] : NULL;
  if (o)
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
  m->out_shape = o ? o->out_shape : ctx_shape;
  return RE_OK;
}

static re_status bind_gated_mlp(re_bind_ctx *c, re_mod *m, re_shape in) {
  RE_TRY(need_tokens(m, in));
  if (m->n == 2) { /* one projection to [gate | up] (DINOv2's SwiGLU weights_in), then down */
    RE_TRY(re_bind_module(c, m->child[0], in));
    if (m->child[0]->out % 2)
      return re_bind_shape_error(m, "the fused projection gives %lld features, not two equal halves",
                                 (long long)m->child[0]->out);
    re_shape half = {2, {in.d[0], m->child[0]->out / 2, 0}};
    RE_TRY(re_bind_module(c, m->child[1], half));
    m->out_shape = m->child[1]->out_shape;
    return RE_OK;
  }
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
  if (m->n != 4 && m->n != 6)
    return re_bind_shape_error(m, "expected a norm, an attention, a norm and an MLP (and two layer scales)");
  int ls = m->n == 6;
  re_mod *ln1 = m->child[0], *attn = m->child[1], *ln2 = m->child[2 + ls], *mlp = m->child[3 + ls];
  RE_TRY(re_bind_module(c, ln1, in));
  RE_TRY(re_bind_module(c, attn, ln1->out_shape));
  if (ls)
    RE_TRY(re_bind_module(c, m->child[2], attn->out_shape));
  RE_TRY(re_bind_module(c, ln2, in));
  RE_TRY(re_bind_module(c, mlp, ln2->out_shape));
  if (ls)
    RE_TRY(re_bind_module(c, m->child[5], mlp->out_shape));
  if (attn->out_shape.d[1] != in.d[1] || mlp->out_shape.d[1] != in.d[1])
    return re_bind_shape_error(m, "attention and MLP give %lld and %lld features for a width of %lld",
                               (long long)attn->out_shape.d[1], (long long)mlp->out_shape.d[1], (long long)in.d[1]);
  m->out_shape = in;
  return RE_OK;
}

/* BERT's layer: h = LN1(x + dense1(self(x))); y = LN2(h + dense2(intermediate(h))). */
static re_status bind_encoder_layer(re_bind_ctx *c, re_mod *m, re_shape in) {
  RE_TRY(need_tokens(m, in));
  if (m->n != 6)
    return re_bind_shape_error(m, "expected self-attention, dense, norm, intermediate, dense and norm");
  re_mod *self = m->child[0], *d1 = m->child[1], *ln1 = m->child[2], *mid = m->child[3], *d2 = m->child[4],
         *ln2 = m->child[5];
  RE_TRY(re_bind_module(c, self, in));
  RE_TRY(re_bind_module(c, d1, self->out_shape));
  RE_TRY(re_bind_module(c, ln1, in));
  RE_TRY(re_bind_module(c, mid, in));
  RE_TRY(re_bind_module(c, d2, mid->out_shape));
  RE_TRY(re_bind_module(c, ln2, in));
  if (d1->out_shape.d[1] != in.d[1] || d2->out_shape.d[1] != in.d[1])
    return re_bind_shape_error(m, "attention and feed-forward give %lld and %lld features for a width of %lld",
                               (long long)d1->out_shape.d[1], (long long)d2->out_shape.d[1], (long long)in.d[1]);
  m->out_shape = in;
  return RE_OK;
}

static re_status bind_layer_scale(re_bind_ctx *c, re_mod *m, re_shape in) {
  int64_t d[1] = {in.d[in.rank - 1]};
  re_bind_param(c, m, m->param, 1, d, 1, &m->w);
  m->out = in.d[in.rank - 1];
  m->out_shape = in;
  return RE_OK;
}

/* Position embeddings for an h x w grid from the trained g x g grid (rows pre of `src`
 * are the prefix tokens'), resampled along columns, then rows, in double. */
static re_status resample_positions(re_mod *m, const float *src, int64_t pre, int64_t g, int64_t h, int64_t w,
                                    int64_t D) {
  double *wy = NULL, *wx = NULL, *tmp = NULL;
  re_status st = RE_OK;
  RE_CHECK(re_malloc(h * g, sizeof(double), &wy));
  RE_CHECK(re_malloc(w * g, sizeof(double), &wx));
  RE_CHECK(re_malloc(g * w * D, sizeof(double), &tmp));
  re_op_bicubic_matrix(g, h, m->interp == RE_INTERP_BICUBIC_AA, wy);
  re_op_bicubic_matrix(g, w, m->interp == RE_INTERP_BICUBIC_AA, wx);
  memset(tmp, 0, sizeof(double) * (size_t)(g * w * D));
  for (int64_t a = 0; a < g; a++) /* tmp[a, j] = sum_b wx[j, b] src[a, b] */
    for (int64_t j = 0; j < w; j++)
      for (int64_t b = 0; b < g; b++) {
        double f = wx[j * g + b];
        const float *p = src + (pre + a * g + b) * D;
        double *t = tmp + (a * w + j) * D;
        if (f != 0)
          for (int64_t d = 0; d < D; d++)
            t[d] += f * p[d];
      }
  for (int64_t i = 0; i < h; i++) /* pos[i, j] = sum_a wy[i, a] tmp[a, j] */
    for (int64_t j = 0; j < w; j++) {
      float *o = m->pos + (pre + i * w + j) * D;
      for (int64_t d = 0; d < D; d++) {
        double acc = 0;
        for (int64_t a = 0; a < g; a++)
          acc += wy[i * g + a] * tmp[(a * w + j) * D + d];
        o[d] = (float)acc;
      }
    }
done:
  free(wy);
  free(wx);
  free(tmp);
  return st;
}

static int64_t isqrt(int64_t n) {
  int64_t r = (int64_t)sqrt((double)n);
  while (r * r > n)
    r--;
  while ((r + 1) * (r + 1) <= n)
    r++;
  return r;
}

/* Images (C, H, W) -> tokens [class, registers, patches] (T, D) with position embeddings. */
static re_status bind_patch_embed(re_bind_ctx *c, re_mod *m, re_shape in) {
  if (in.rank != 3)
    return re_bind_shape_error(m, "needs images (channels, height, width), got rank %d", in.rank);
  if (m->n != 1)
    return re_bind_shape_error(m, "expected a patch convolution");
  re_mod *conv = m->child[0];
  RE_TRY(re_bind_module(c, conv, in));
  int64_t D = conv->out, h = conv->geom.Ho, w = conv->geom.Wo;
  int timm = m->style == RE_VIT_TIMM, clip = m->style == RE_VIT_CLIP;
  float *cls = NULL, *pos = NULL, *reg = NULL;
  int64_t dc[3] = {1, 1, D}, dr[3] = {1, m->registers, D}, dp[3] = {1, -1, D};
  int ok = 1;
  if (m->has_cls) {
    if (clip)
      ok &= re_bind_param(c, m, "class_embedding", 1, dc + 2, 1, &cls);
    else
      ok &= re_bind_param(c, m, timm ? "=cls_token" : "cls_token", 3, dc, 1, &cls);
  }
  if (timm) /* timm: register tokens when the checkpoint has them */
    re_bind_param(c, m, "=reg_token", 3, dr, 0, &reg);
  else if (m->registers > 0)
    ok &= re_bind_param(c, m, "register_tokens", 3, dr, 1, &reg);
  int64_t R = reg ? dr[1] : 0;
  if (clip)
    ok &= re_bind_param(c, m, "position_embedding.weight", 2, dp + 1, 1, &pos);
  else
    ok &= re_bind_param(c, m, timm ? "=pos_embed" : "position_embeddings", 3, dp, 1, &pos);
  re_bind_skip(c, m, clip ? "position_ids" : "mask_token"); /* a buffer; the masked-image-modeling token */
  re_status st = RE_OK;
  int64_t pre = m->has_cls + R;
  if (!ok) { /* noted; binding goes on so that every problem is listed */
    m->out = D;
    m->out_shape = (re_shape){2, {pre + h * w, D, 0}};
    goto done;
  }
  int64_t npos = dp[1], pp = m->pos_prefix, g = 0;
  if (pp < 0) { /* timm: position embeddings for the prefix tokens, the class token only, or none */
    int64_t cand[3] = {pre, m->has_cls, 0};
    for (int k = 0; k < 3 && pp < 0; k++)
      if (npos > cand[k] && isqrt(npos - cand[k]) * isqrt(npos - cand[k]) == npos - cand[k])
        pp = cand[k];
  }
  if (pp >= 0 && npos > pp)
    g = isqrt(npos - pp);
  if (pp < 0 || pp > pre || g * g != npos - pp) {
    st = re_bind_shape_error(m, "%lld position embeddings are not %lld prefix token%s and a square grid of patches",
                             (long long)npos, (long long)(pp < 0 ? pre : pp), (pp < 0 ? pre : pp) == 1 ? "" : "s");
    goto done;
  }
  if (m->interp == RE_INTERP_NONE) {
    int64_t ih = m->image[0] > 0 ? m->image[0] : g * m->patch, iw = m->image[1] > 0 ? m->image[1] : g * m->patch;
    if (in.d[1] != ih || in.d[2] != iw || h != g || w != g) {
      st = re_bind_shape_error(m, "takes %lld x %lld images (a %lld x %lld grid of %lld-pixel patches, the "
                                  "grid of its position embeddings), got %lld x %lld %s",
                               (long long)ih, (long long)iw, (long long)g, (long long)g, (long long)m->patch,
                               (long long)in.d[1], (long long)in.d[2], m->why ? m->why : "");
      goto done;
    }
  }
  free(m->pos);
  m->pos = NULL;
  if (re_malloc((pp + h * w) * D, sizeof(float), &m->pos) != RE_OK) {
    st = RE_ENOMEM;
    goto done;
  }
  memcpy(m->pos, pos, sizeof(float) * (size_t)(pp * D));
  if (h == g && w == g) /* the trained grid: transformers interpolates nothing (or exactly the identity) */
    memcpy(m->pos + pp * D, pos + pp * D, sizeof(float) * (size_t)(g * g * D));
  else if ((st = resample_positions(m, pos, pp, g, h, w, D)) != RE_OK)
    goto done;
  /* the prefix tokens themselves, then the position rows, kept in one table: cls, registers */
  free(m->w);
  m->w = NULL;
  if (pre > 0) {
    if (re_malloc(pre * D, sizeof(float), &m->w) != RE_OK) {
      st = RE_ENOMEM;
      goto done;
    }
    if (m->has_cls)
      memcpy(m->w, cls, sizeof(float) * (size_t)D);
    if (R)
      memcpy(m->w + m->has_cls * D, reg, sizeof(float) * (size_t)(R * D));
  }
  m->registers = R;
  m->pos_prefix = pp;
  m->out = D;
  m->out_shape = (re_shape){2, {pre + h * w, D, 0}};
done:
  free(cls);
  free(pos);
  free(reg);
  return st;
}

re_status re_bind_transformer(re_bind_ctx *c, re_mod *m, re_shape in) {
  switch (m->type) {
  case RE_MOD_EMBEDDING: return bind_embedding(c, m, in);
  case RE_MOD_EMBED_SUM: return bind_embed_sum(c, m, in);
  case RE_MOD_RMSNORM: return bind_rmsnorm(c, m, in);
  case RE_MOD_ATTENTION: return bind_attention(c, m, in);
  case RE_MOD_GATED_MLP: return bind_gated_mlp(c, m, in);
  case RE_MOD_DECODER_BLOCK: return bind_decoder_block(c, m, in);
  case RE_MOD_ENCODER_LAYER: return bind_encoder_layer(c, m, in);
  case RE_MOD_LAYER_SCALE: return bind_layer_scale(c, m, in);
  case RE_MOD_PATCH_EMBED: return bind_patch_embed(c, m, in);
  default: return re_bind_shape_error(m, "not a transformer part");
  }
}
