/* Runners of the transformer parts: embeddings (token, position and token type ids
 * from the net), RMSNorm, attention (projections, rotary embeddings, blockwise
 * attention, output projection), gated MLPs, pre-norm blocks (decoders, ViTs) and
 * post-norm encoder layers (BERT), patch embeddings and layer scales. Activations are
 * (B, T, width). */
#include <string.h>

#include "net.h"

static re_status run_embedding(re_net *n, re_mod *m, act *y) {
  int64_t rows = n->B * n->T, D = m->out;
  RE_TRY(re_net_fresh(n, y));
  for (int64_t r = 0; r < rows; r++) {
    int64_t id = m->positions == RE_EMBED_POSITIONS ? n->pos[r] : m->positions == RE_EMBED_TYPES ? n->types[r]
                                                                                               : n->ids[r];
    memcpy(y->p + r * D, m->w + id * D, sizeof(float) * (size_t)D);
  }
  return RE_OK;
}

static re_status run_embed_sum(re_net *n, re_mod *m, act x, act *y) {
  act cur = {NULL, 0, 0};
  for (int k = 0; k < m->n; k++) {
    re_mod *c = m->child[k];
    act e;
    if (c->type == RE_MOD_EMBEDDING) {
      RE_TRY(re_net_run(n, c, x, &e));
      if (cur.p) {
        re_op_add(cur.p, e.p, n->B * re_shape_numel(&c->out_shape), cur.p);
        re_net_release(n, e);
      } else {
        cur = e;
      }
    } else {
      RE_TRY(re_net_run(n, c, cur, &e));
      cur = e;
    }
  }
  *y = cur;
  return RE_OK;
}

/* An owned copy of z when z is not the holder's (z itself otherwise). */
static re_status owned(re_net *n, act z, int64_t len, act *out) {
  if (z.own) {
    *out = z;
    return RE_OK;
  }
  RE_TRY(re_net_fresh(n, out));
  memcpy(out->p, z.p, sizeof(float) * (size_t)len);
  return RE_OK;
}

static re_status run_attention(re_net *n, re_mod *m, act x, act *y) {
  int64_t B = n->B, T = m->in_shape.d[0], H = m->heads, Hkv = m->kv_heads, hd = m->head_dim;
  re_attn_args a;
  memset(&a, 0, sizeof a);
  act q = {NULL, 0, 0}, k = {NULL, 0, 0}, v = {NULL, 0, 0}, ctx;
  re_mod *out;
  if (m->qkv == RE_QKV_SEPARATE) {
    RE_TRY(re_net_run(n, m->child[0], re_borrow(x), &q));
    RE_TRY(re_net_run(n, m->child[1], re_borrow(x), &k));
    RE_TRY(re_net_run(n, m->child[2], x, &v));
    a.q = q.p, a.k = k.p, a.v = v.p;
    a.ldq = H * hd, a.ldk = a.ldv = Hkv * hd;
    a.q_hs = a.k_hs = a.v_hs = hd;
    out = m->n == 4 ? m->child[3] : NULL; /* BERT's output projection is outside the self-attention */
  } else {
    RE_TRY(re_net_run(n, m->child[0], x, &q));
    a.ldq = a.ldk = a.ldv = 3 * H * hd;
    if (m->qkv == RE_QKV_FUSED) { /* [q heads | k heads | v heads] */
      a.q = q.p, a.k = q.p + H * hd, a.v = q.p + 2 * H * hd;
      a.q_hs = a.k_hs = a.v_hs = hd;
    } else { /* per head [q_h, k_h, v_h] */
      a.q = q.p, a.k = q.p + hd, a.v = q.p + 2 * hd;
      a.q_hs = a.k_hs = a.v_hs = 3 * hd;
    }
    out = m->child[1];
  }
  if (m->rot_dim > 0) { /* q and k are this module's own buffers: rotate in place */
    const re_mod *r = m->rope_owner;
    re_op_rope((float *)a.q, B * T, a.ldq, H, a.q_hs, r->rope_half, n->pos, r->rope_cos, r->rope_sin);
    re_op_rope((float *)a.k, B * T, a.ldk, Hkv, a.k_hs, r->rope_half, n->pos, r->rope_cos, r->rope_sin);
  }
  RE_TRY(re_net_fresh(n, &ctx));
  a.B = B, a.T = T, a.heads = H, a.kv_heads = Hkv, a.head_dim = hd;
  a.out = ctx.p, a.ldo = H * hd;
  a.scale = (float)m->attn_scale;
  a.causal = m->causal;
  a.mask = n->tokens && n->has_mask ? n->mask : NULL;
  a.block_q = m->block_q, a.block_k = m->block_k;
  re_op_attention(&a, n->pool->work);
  re_net_release(n, q);
  re_net_release(n, k);
  re_net_release(n, v);
  if (!out) {
    *y = ctx;
    return RE_OK;
  }
  return re_net_run(n, out, ctx, y);
}

static re_status run_gated_mlp(re_net *n, re_mod *m, act x, act *y) {
  act g, u;
  if (m->n == 2) { /* [gate | up] in one projection: act(gate) * up, packed in place row by row */
    RE_TRY(re_net_run(n, m->child[0], x, &g));
    RE_TRY(owned(n, g, n->B * re_shape_numel(&m->child[0]->out_shape), &g));
    int64_t rows = n->B * m->child[0]->out_shape.d[0], I = m->child[0]->out / 2;
    for (int64_t r = 0; r < rows; r++) { /* row r moves from [2rI, 2rI + 2I) to [rI, rI + I): no overlap ahead */
      float *src = g.p + r * 2 * I, *dst = g.p + r * I;
      re_op_activation(m->act, src, I, src);
      for (int64_t k = 0; k < I; k++)
        dst[k] = src[k] * src[I + k];
    }
    return re_net_run(n, m->child[1], g, y);
  }
  RE_TRY(re_net_run(n, m->child[0], re_borrow(x), &g));
  RE_TRY(re_net_run(n, m->child[1], x, &u));
  int64_t len = n->B * re_shape_numel(&m->child[0]->out_shape);
  re_op_activation(m->act, g.p, len, g.p);
  for (int64_t k = 0; k < len; k++)
    g.p[k] *= u.p[k];
  re_net_release(n, u);
  return re_net_run(n, m->child[2], g, y);
}

static re_status run_decoder_block(re_net *n, re_mod *m, act x, act *y) {
  int ls = m->n == 6; /* layer scales after the attention and the MLP (DINOv2, timm) */
  re_mod *ln1 = m->child[0], *attn = m->child[1], *ln2 = m->child[2 + ls], *mlp = m->child[3 + ls];
  int64_t len = n->B * re_shape_numel(&m->out_shape);
  act a, b, c, d;
  RE_TRY(re_net_run(n, ln1, re_borrow(x), &a));
  RE_TRY(re_net_run(n, attn, a, &b));
  if (ls)
    RE_TRY(re_net_run(n, m->child[2], b, &b));
  RE_TRY(owned(n, b, len, &b));
  if (m->residual == RE_RESIDUAL_PARALLEL) { /* x + attn(ln1(x)) + mlp(ln2(x)) */
    RE_TRY(re_net_run(n, ln2, re_borrow(x), &c));
    RE_TRY(re_net_run(n, mlp, c, &d));
    RE_TRY(owned(n, d, len, &d));
    re_op_add(d.p, b.p, len, d.p);
    re_op_add(d.p, x.p, len, d.p);
    re_net_release(n, b);
    re_net_release(n, x);
    *y = d;
    return RE_OK;
  }
  re_op_add(b.p, x.p, len, b.p); /* h = x + attn(ln1(x)); y = h + mlp(ln2(h)) */
  re_net_release(n, x);
  RE_TRY(re_net_run(n, ln2, re_borrow(b), &c));
  RE_TRY(re_net_run(n, mlp, c, &d));
  if (ls)
    RE_TRY(re_net_run(n, m->child[5], d, &d));
  RE_TRY(owned(n, d, len, &d));
  re_op_add(d.p, b.p, len, d.p);
  re_net_release(n, b);
  *y = d;
  return RE_OK;
}

/* BERT's post-norm layer (Devlin et al. 2019; transformers' BertLayer):
 * h = LN1(x + dense1(self(x))); y = LN2(h + dense2(intermediate(h))). */
static re_status run_encoder_layer(re_net *n, re_mod *m, act x, act *y) {
  int64_t len = n->B * re_shape_numel(&m->out_shape);
  act a, b, h, i, o;
  RE_TRY(re_net_run(n, m->child[0], re_borrow(x), &a));
  RE_TRY(re_net_run(n, m->child[1], a, &b));
  RE_TRY(owned(n, b, len, &b));
  re_op_add(b.p, x.p, len, b.p);
  re_net_release(n, x);
  RE_TRY(re_net_run(n, m->child[2], b, &h));
  RE_TRY(re_net_run(n, m->child[3], re_borrow(h), &i));
  RE_TRY(re_net_run(n, m->child[4], i, &o));
  RE_TRY(owned(n, o, len, &o));
  re_op_add(o.p, h.p, len, o.p);
  re_net_release(n, h);
  return re_net_run(n, m->child[5], o, y);
}

/* Patch tokens from the convolution (B, D, h*w), after the class and register tokens,
 * plus the position embeddings of the first pos_prefix tokens and of every patch. */
static re_status run_patch_embed(re_net *n, re_mod *m, act x, act *y) {
  act c;
  RE_TRY(re_net_run(n, m->child[0], x, &c));
  RE_TRY(re_net_fresh(n, y));
  int64_t D = m->out, T = m->out_shape.d[0], pre = m->has_cls + m->registers, hw = T - pre, pp = m->pos_prefix;
  for (int64_t b = 0; b < n->B; b++) {
    float *o = y->p + b * T * D;
    const float *src = c.p + b * D * hw;
    if (pre)
      memcpy(o, m->w, sizeof(float) * (size_t)(pre * D));
    for (int64_t d = 0; d < D; d++)
      for (int64_t k = 0; k < hw; k++)
        o[(pre + k) * D + d] = src[d * hw + k];
    re_op_add(o, m->pos, pp * D, o);
    re_op_add(o + pre * D, m->pos + pp * D, hw * D, o + pre * D);
  }
  re_net_release(n, c);
  return RE_OK;
}

re_status re_net_run_transformer(re_net *n, re_mod *m, act x, act *y) {
  switch (m->type) {
  case RE_MOD_EMBEDDING: return run_embedding(n, m, y);
  case RE_MOD_EMBED_SUM: return run_embed_sum(n, m, x, y);
  case RE_MOD_RMSNORM: {
    int64_t D = m->out;
    RE_TRY(re_net_out_for(n, x, y));
    re_op_rmsnorm(x.p, n->B * re_shape_numel(&m->in_shape) / D, D, m->w, m->eps, y->p);
    return RE_OK;
  }
  case RE_MOD_ATTENTION: return run_attention(n, m, x, y);
  case RE_MOD_GATED_MLP: return run_gated_mlp(n, m, x, y);
  case RE_MOD_DECODER_BLOCK: return run_decoder_block(n, m, x, y);
  case RE_MOD_ENCODER_LAYER: return run_encoder_layer(n, m, x, y);
  case RE_MOD_PATCH_EMBED: return run_patch_embed(n, m, x, y);
  case RE_MOD_LAYER_SCALE:
    RE_TRY(re_net_out_for(n, x, y));
    re_op_scale_features(x.p, n->B * re_shape_numel(&m->in_shape) / m->out, m->out, m->w, y->p);
    return RE_OK;
  default: return re_err(RE_EUNSUPPORTED, "forward: module '%s' is not a transformer part", m->name);
  }
}
