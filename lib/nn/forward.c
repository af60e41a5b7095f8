/* The forward pass: a recursive executor over the bound module tree with a small
 * pool of activation buffers (sized once from the largest activation), in-place
 * elementwise operations where the input is no longer needed, and taps that copy
 * (or pool) a module's output as soon as it is produced. On the fast path (plan.c)
 * images stay in the blocked layout between the modules that take it, and modules
 * folded into the one before them are skipped (their taps see that one's output). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fast.h"
#include "net.h"

/* ---- buffer pool -------------------------------------------------------- */

re_status re_net_acquire(re_net *n, float **out) {
  pool *p = n->pool;
  for (int k = 0; k < p->nbufs; k++)
    if (!p->busy[k]) {
      p->busy[k] = 1;
      *out = p->bufs[k];
      return RE_OK;
    }
  if (p->nbufs == MAX_POOL)
    return re_err(RE_ENOMEM, "forward: more than %d live activation buffers", MAX_POOL);
  RE_TRY(re_malloc(p->buf_floats, sizeof(float), &p->bufs[p->nbufs]));
  p->busy[p->nbufs] = 1;
  *out = p->bufs[p->nbufs++];
  return RE_OK;
}

void re_net_release(re_net *n, act a) {
  if (!a.own)
    return;
  for (int k = 0; k < n->pool->nbufs; k++)
    if (n->pool->bufs[k] == a.p)
      n->pool->busy[k] = 0;
}

re_status re_net_out_for(re_net *n, act x, act *y) {
  if (x.own) {
    *y = x;
    return RE_OK;
  }
  y->own = 1;
  y->blk = 0;
  return re_net_acquire(n, &y->p);
}

re_status re_net_fresh(re_net *n, act *y) {
  y->own = 1;
  y->blk = 0;
  return re_net_acquire(n, &y->p);
}

/* ---- layouts ------------------------------------------------------------- */

re_status re_net_to_plain(re_net *n, act *x, const re_shape *s) {
  if (!x->blk)
    return RE_OK;
  act t;
  RE_TRY(re_net_fresh(n, &t));
  re_unblock(x->p, n->B, s->d[0], s->d[1] * s->d[2], t.p);
  re_net_release(n, *x);
  *x = t;
  return RE_OK;
}

re_status re_net_to_blocked(re_net *n, act *x, const re_shape *s) {
  if (x->blk)
    return RE_OK;
  act t;
  RE_TRY(re_net_fresh(n, &t));
  re_block(x->p, n->B, s->d[0], s->d[1] * s->d[2], t.p);
  t.blk = 1;
  re_net_release(n, *x);
  *x = t;
  return RE_OK;
}

/* Values of a batch of activations of per-sample shape s, in their layout. */
static int64_t act_len(const re_net *n, const re_shape *s, int blk) {
  if (blk && s->rank == 3)
    return n->B * re_pad8(s->d[0]) * s->d[1] * s->d[2];
  return n->B * re_shape_numel(s);
}

/* Modules that run on blocked images (the others get plain ones). */
static int takes_blocked(const re_mod *m) {
  switch (m->type) {
  case RE_MOD_SEQ:
  case RE_MOD_BASIC_BLOCK:
  case RE_MOD_BOTTLENECK:
  case RE_MOD_BATCHNORM2D:
  case RE_MOD_ACT:
  case RE_MOD_MAXPOOL2D:
  case RE_MOD_AVGPOOL2D:
  case RE_MOD_ADAPTIVE_AVGPOOL2D:
  case RE_MOD_IDENTITY:
  case RE_MOD_CLASS_TOKEN: return 1;
  case RE_MOD_CONV2D: return m->fconv && !re_fconv_plain_input(m->fconv);
  default: return 0;
  }
}

/* A module folded into an earlier one: its output is the current value. */
static void skip_folded(re_net *n, re_mod *m, act cur) {
  if (m->tap >= 0)
    re_net_capture(n, m, cur.p, cur.blk);
  if (n->profile && m->idx >= 0)
    n->prof_calls[m->idx]++;
}

/* ---- executor ------------------------------------------------------------ */

#define run re_net_run
#define out_for re_net_out_for
#define fresh re_net_fresh
#define release re_net_release

static re_status run_seq(re_net *n, re_mod *m, act x, act *y) {
  act cur = x;
  for (int k = 0; k < m->n; k++) {
    act next;
    if (m->child[k]->fused_into) {
      skip_folded(n, m->child[k], cur);
      continue;
    }
    re_status st = run(n, m->child[k], cur, &next);
    if (st != RE_OK)
      return st;
    cur = next;
  }
  *y = cur;
  return RE_OK;
}

static re_status run_block(re_net *n, re_mod *m, act x, act *y) {
  act cur = re_borrow(x), sc = re_borrow(x);
  re_mod *ds = NULL, *last = NULL;
  size_t lp = strlen(m->name) + 1;
  for (int k = 0; k < m->n; k++)
    if (!strcmp(m->child[k]->name + lp, "downsample"))
      ds = m->child[k];
    else if (m->child[k]->type == RE_MOD_CONV2D)
      last = m->child[k];
  if (m->res_fused) { /* the shortcut first: the last convolution adds it, then applies the ReLU */
    if (ds)
      RE_TRY(run(n, ds, re_borrow(x), &sc));
    RE_TRY(re_net_to_blocked(n, &sc, &m->out_shape));
  }
  for (int k = 0; k < m->n; k++) {
    re_mod *c = m->child[k];
    if (c == ds)
      continue;
    if (c->fused_into) {
      skip_folded(n, c, cur);
    } else {
      act next;
      if (m->res_fused && c == last)
        n->res = sc.p, n->res_mod = c;
      RE_TRY(run(n, c, cur, &next));
      cur = next;
    }
    /* torchvision applies ReLU after bn1 (and bn2 in bottlenecks), inside the block */
    const char *leaf = c->name + lp;
    int relu_after = !strcmp(leaf, "bn1") || (m->type == RE_MOD_BOTTLENECK && !strcmp(leaf, "bn2"));
    if (relu_after && !c->relu_done) {
      act r;
      RE_TRY(out_for(n, cur, &r));
      r.blk = cur.blk;
      if (n->fast)
        re_k_act(RE_ACT_RELU, cur.p, act_len(n, &c->out_shape, cur.blk), r.p);
      else
        re_op_activation(RE_ACT_RELU, cur.p, n->B * re_shape_numel(&c->out_shape), r.p);
      cur = r;
    }
  }
  if (m->res_fused) {
    if (sc.p != x.p)
      release(n, sc);
    release(n, x);
    *y = cur;
    return RE_OK;
  }
  if (!cur.own) { /* an empty body: copy before adding in place */
    act c2;
    RE_TRY(fresh(n, &c2));
    memcpy(c2.p, cur.p, sizeof(float) * (size_t)act_len(n, &m->out_shape, cur.blk));
    c2.blk = cur.blk;
    cur = c2;
  }
  if (ds)
    RE_TRY(run(n, ds, re_borrow(x), &sc));
  if (sc.blk != cur.blk) /* a shortcut from another layout than the body */
    RE_TRY(cur.blk ? re_net_to_blocked(n, &sc, &m->out_shape) : re_net_to_plain(n, &sc, &m->out_shape));
  int64_t len = act_len(n, &m->out_shape, cur.blk);
  if (n->fast) {
    re_k_add(cur.p, sc.p, len, 1, cur.p);
  } else {
    re_op_add(cur.p, sc.p, len, cur.p);
    re_op_activation(RE_ACT_RELU, cur.p, len, cur.p);
  }
  if (sc.p != x.p)
    release(n, sc);
  release(n, x);
  *y = cur;
  return RE_OK;
}

/* The module of an MLP (a sequence) whose output is the sequence's: the last child that is
 * not an identity, when neither it nor anything after it is tapped (NULL otherwise). */
static re_mod *residual_target(re_mod *mlp) {
  if (mlp->tap >= 0 || mlp->type != RE_MOD_SEQ)
    return NULL;
  for (int k = mlp->n - 1; k >= 0; k--) {
    re_mod *c = mlp->child[k];
    if (c->tap >= 0)
      return NULL;
    if (c->type != RE_MOD_IDENTITY)
      return c->type == RE_MOD_LINEAR && c->flin && !c->flin->epi.has_act ? c : NULL;
  }
  return NULL;
}

/* torchvision EncoderBlock: x = x + attn(ln_1(x)); y = x + mlp(ln_2(x)). On the fast path
 * the residual adds go into the epilogues of the attention's out projection and of the
 * MLP's last linear layer when their own outputs are not tapped. */
static re_status run_encoder_block(re_net *n, re_mod *m, act x, act *y) {
  re_mod *ln1 = m->child[0], *attn = m->child[1], *ln2 = m->child[2], *mlp = m->child[3];
  re_mod *fc = n->fast ? residual_target(mlp) : NULL;
  int fuse_attn = n->fast && attn->flin && attn->tap < 0;
  int64_t len = n->B * re_shape_numel(&m->out_shape);
  act a, b, c, d;
  RE_TRY(run(n, ln1, re_borrow(x), &a));
  if (fuse_attn)
    n->res = x.p, n->res_mod = attn;
  RE_TRY(run(n, attn, a, &b));
  if (!b.own) {
    act t;
    RE_TRY(fresh(n, &t));
    memcpy(t.p, b.p, sizeof(float) * (size_t)len);
    b = t;
  }
  if (!fuse_attn)
    re_op_add(b.p, x.p, len, b.p);
  release(n, x);
  RE_TRY(run(n, ln2, re_borrow(b), &c));
  if (fc)
    n->res = b.p, n->res_mod = fc;
  RE_TRY(run(n, mlp, c, &d));
  if (!d.own) {
    act t;
    RE_TRY(fresh(n, &t));
    memcpy(t.p, d.p, sizeof(float) * (size_t)len);
    d = t;
  }
  if (!fc)
    re_op_add(d.p, b.p, len, d.p);
  release(n, b);
  *y = d;
  return RE_OK;
}

/* The residual waiting for module m's epilogue, if any (consumed). */
static const float *take_res(re_net *n, const re_mod *m) {
  if (n->res_mod != m)
    return NULL;
  const float *r = n->res;
  n->res = NULL;
  n->res_mod = NULL;
  return r;
}

static re_status run_leaf(re_net *n, re_mod *m, act x, act *y) {
  int64_t B = n->B, in_numel = re_shape_numel(&m->in_shape), out_numel = re_shape_numel(&m->out_shape);
  const re_shape *is = &m->in_shape;
  switch (m->type) {
  case RE_MOD_IDENTITY:
  case RE_MOD_FLATTEN:
    *y = x;
    return RE_OK;
  case RE_MOD_ACT:
    RE_TRY(out_for(n, x, y));
    y->blk = x.blk;
    if (n->fast)
      re_k_act(m->act, x.p, act_len(n, is, x.blk), y->p);
    else
      re_op_activation(m->act, x.p, B * in_numel, y->p);
    return RE_OK;
  case RE_MOD_BATCHNORM1D:
  case RE_MOD_BATCHNORM2D: {
    int64_t C = is->d[0], inner = in_numel / C;
    RE_TRY(out_for(n, x, y));
    y->blk = x.blk;
    if (x.blk)
      re_k_affine_blk(x.p, B, (C + 7) / 8, inner, m->scale, m->shift, y->p);
    else
      re_op_channel_affine(x.p, B, C, inner, m->scale, m->shift, y->p);
    return RE_OK;
  }
  case RE_MOD_LAYERNORM: {
    int64_t D = is->d[is->rank - 1];
    RE_TRY(out_for(n, x, y));
    if (n->fast)
      re_k_layernorm(x.p, B * in_numel / D, D, m->w, m->b, m->eps, y->p);
    else
      re_op_layernorm(x.p, B * in_numel / D, D, m->w, m->b, m->eps, y->p);
    return RE_OK;
  }
  default:
    break;
  }
  if (m->type == RE_MOD_CONV2D && m->fconv && !re_fconv_plain_input(m->fconv))
    RE_TRY(re_net_to_blocked(n, &x, is));
  RE_TRY(fresh(n, y));
  switch (m->type) {
  case RE_MOD_LINEAR: {
    int64_t rows = B * in_numel / m->in;
    if (m->flin)
      re_gemm_rows(x.p, rows, m->in, &m->flin->w, &m->flin->epi, take_res(n, m), m->out, y->p, m->out,
                   n->pool->work, n->threads);
    else if (m->weight_t)
      re_op_linear_t(x.p, rows, m->in, m->w, m->b, m->out, y->p);
    else
      re_op_linear(x.p, rows, m->in, m->w, m->b, m->out, y->p);
    break;
  }
  case RE_MOD_CONV2D:
    if (m->fconv) {
      re_fconv_run(m->fconv, x.p, B, take_res(n, m), y->p, n->pool->work, n->threads);
      y->blk = 1;
    } else {
      re_op_conv2d(&m->geom, x.p, B, m->w, m->b, y->p, n->pool->work);
    }
    break;
  case RE_MOD_MAXPOOL2D:
    if (x.blk)
      re_k_maxpool_blk(&m->geom, x.p, B, y->p);
    else
      re_op_maxpool2d(&m->geom, x.p, B, y->p);
    y->blk = x.blk;
    break;
  case RE_MOD_AVGPOOL2D:
    if (x.blk)
      re_k_avgpool_blk(&m->geom, x.p, B, m->include_pad, y->p);
    else
      re_op_avgpool2d(&m->geom, x.p, B, m->include_pad, y->p);
    y->blk = x.blk;
    break;
  case RE_MOD_ADAPTIVE_AVGPOOL2D:
    if (x.blk)
      re_k_adaptive_avgpool_blk(x.p, B, m->geom.C, m->geom.H, m->geom.W, m->geom.Ho, m->geom.Wo, y->p);
    else
      re_op_adaptive_avgpool2d(x.p, B, m->geom.C, m->geom.H, m->geom.W, m->geom.Ho, m->geom.Wo, y->p);
    y->blk = x.blk;
    break;
  case RE_MOD_MHA:
    if (m->flin)
      re_fmha_run(m->flin, m->flin2, x.p, B, is->d[0], is->d[1], m->heads, take_res(n, m), y->p, n->pool->work,
                  n->threads);
    else
      re_op_mha(x.p, B, is->d[0], is->d[1], m->heads, m->w, m->b, m->w2, m->b2, y->p, n->pool->work);
    break;
  case RE_MOD_CLASS_TOKEN: { /* (D, h, w) -> (1 + h*w, D) with the class token first */
    int64_t D = is->d[0], hw = is->d[1] * is->d[2], T = hw + 1, DB = (D + 7) / 8;
    for (int64_t b = 0; b < B; b++) {
      float *o = y->p + b * T * D;
      memcpy(o, m->w, sizeof(float) * (size_t)D);
      if (x.blk) /* pixel k's channels are 8 at a time already */
        for (int64_t k = 0; k < hw; k++)
          for (int64_t db = 0; db < DB; db++)
            memcpy(o + (1 + k) * D + db * 8, x.p + ((b * DB + db) * hw + k) * 8,
                   sizeof(float) * (size_t)(D - db * 8 < 8 ? D - db * 8 : 8));
      else
        for (int64_t d = 0; d < D; d++)
          for (int64_t k = 0; k < hw; k++)
            o[(1 + k) * D + d] = x.p[(b * D + d) * hw + k];
    }
    break;
  }
  case RE_MOD_TAKE_TOKEN: {
    int64_t T = is->d[0], D = is->d[1];
    for (int64_t b = 0; b < B; b++)
      memcpy(y->p + b * D, x.p + b * T * D, sizeof(float) * (size_t)D);
    break;
  }
  default:
    release(n, *y);
    return re_err(RE_EUNSUPPORTED, "forward: module '%s' of type %s cannot run", m->name, re_mod_type_name(m->type));
  }
  (void)out_numel;
  release(n, x);
  return RE_OK;
}

re_status re_net_run(re_net *n, re_mod *m, act x, act *y) {
  re_status st;
  int prof = n->profile && m->idx >= 0;
  double t0 = prof ? re_net_now() : 0, c0 = prof ? re_net_cpu_now() : 0;
  if (x.blk && !takes_blocked(m))
    RE_TRY(re_net_to_plain(n, &x, &m->in_shape));
  switch (m->type) {
  case RE_MOD_SEQ: st = run_seq(n, m, x, y); break;
  case RE_MOD_BASIC_BLOCK:
  case RE_MOD_BOTTLENECK: st = run_block(n, m, x, y); break;
  case RE_MOD_ENCODER_BLOCK: st = run_encoder_block(n, m, x, y); break;
  case RE_MOD_VIT_ENCODER: {
    act t = {NULL, 0, 0};
    st = out_for(n, x, &t);
    if (st != RE_OK)
      return st;
    int64_t numel = re_shape_numel(&m->in_shape);
    for (int64_t b = 0; b < n->B; b++)
      re_op_add(x.p + b * numel, m->w, numel, t.p + b * numel);
    st = run_seq(n, m, t, y);
    break;
  }
  case RE_MOD_EMBEDDING:
  case RE_MOD_EMBED_SUM:
  case RE_MOD_RMSNORM:
  case RE_MOD_ATTENTION:
  case RE_MOD_GATED_MLP:
  case RE_MOD_DECODER_BLOCK:
  case RE_MOD_ENCODER_LAYER:
  case RE_MOD_PATCH_EMBED:
  case RE_MOD_LAYER_SCALE: st = re_net_run_transformer(n, m, x, y); break;
  default: st = run_leaf(n, m, x, y); break;
  }
  if (st == RE_OK && m->tap >= 0)
    re_net_capture(n, m, y->p, y->blk);
  if (prof) {
    n->prof_s[m->idx] += re_net_now() - t0;
    n->prof_cpu[m->idx] += re_net_cpu_now() - c0;
    n->prof_calls[m->idx]++;
  }
  return st;
}

