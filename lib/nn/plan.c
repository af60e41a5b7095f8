/* The fast path's plan, made once per bound net before its first forward pass (when its
 * taps are known): convolutions and linear layers get their weights packed, and a batch
 * norm, an activation or a residual add that follows a convolution is folded into it
 * when nothing taps the intermediate value. A tapped module always gets its own output. */
#include <stdlib.h>
#include <string.h>

#include "fast.h"
#include "net.h"

static void free_lin(re_fast_lin **pf) {
  if (!*pf)
    return;
  re_pack_free(&(*pf)->w);
  free((*pf)->bias);
  free(*pf);
  *pf = NULL;
}

void re_mod_free_plan(re_mod *m) {
  re_fconv_free(&m->fconv);
  free_lin(&m->flin);
  free_lin(&m->flin2);
}

typedef struct plan_ctx {
  int64_t work; /* floats of kernel workspace */
  int threads;
  int64_t bmax;
} plan_ctx;

static void need(plan_ctx *c, int64_t floats) {
  if (floats > c->work)
    c->work = floats;
}

/* Pack convolution m, folding bn (may be NULL) and an activation. */
static re_status make_conv(plan_ctx *c, re_mod *m, re_mod *bn, int has_act, re_act fn) {
  RE_TRY(re_fconv_make(&m->geom, m->w, m->b, bn ? bn->scale : NULL, bn ? bn->shift : NULL, has_act, fn, &m->fconv));
  need(c, re_fconv_work(m->fconv, c->threads));
  if (bn)
    bn->fused_into = m;
  free(m->w); /* the packed copy is the weights now */
  m->w = NULL;
  return RE_OK;
}

/* Weights w (out x in, or in x out when transposed) and bias b (out, or NULL) packed. */
static re_status pack_linear(const float *w, const float *b, int64_t in, int64_t out, int transposed, int has_act,
                             re_act fn, re_fast_lin **dst) {
  re_fast_lin *f;
  RE_TRY(re_calloc(1, sizeof *f, &f));
  *dst = f;
  /* B (in x out) = W^T for nn.Linear (out x in); GPT-2's Conv1D stores (in x out) */
  if (transposed)
    RE_TRY(re_pack_b(w, in, out, out, 1, &f->w));
  else
    RE_TRY(re_pack_b(w, in, out, 1, in, &f->w));
  if (b) {
    RE_TRY(re_kern_alloc(f->w.np * RE_NR, &f->bias));
    memset(f->bias, 0, sizeof(float) * (size_t)(f->w.np * RE_NR));
    memcpy(f->bias, b, sizeof(float) * (size_t)out);
  }
  f->epi.bias = f->bias;
  f->epi.has_act = has_act;
  f->epi.act = fn;
  return RE_OK;
}

static re_status make_linear(plan_ctx *c, re_mod *m, int has_act, re_act fn) {
  RE_TRY(pack_linear(m->w, m->b, m->in, m->out, m->weight_t, has_act, fn, &m->flin));
  need(c, re_gemm_op_work(&m->flin->w, c->threads));
  free(m->w);
  m->w = NULL;
  return RE_OK;
}

/* torchvision's MultiheadAttention: in_proj (3D x D) and out_proj (D x D) packed. */
static re_status make_mha(plan_ctx *c, re_mod *m, int64_t bmax) {
  int64_t T = m->in_shape.d[0], D = m->in_shape.d[1];
  RE_TRY(pack_linear(m->w, m->b, D, 3 * D, 0, 0, RE_ACT_RELU, &m->flin));
  RE_TRY(pack_linear(m->w2, m->b2, D, D, 0, 0, RE_ACT_RELU, &m->flin2));
  need(c, re_fmha_work(m->flin, m->flin2, bmax, T, m->heads, c->threads));
  free(m->w);
  free(m->w2);
  m->w = m->w2 = NULL;
  return RE_OK;
}

/* Batch norms on blocked images read scale and shift 8 channels at a time. */
static re_status pad_bn(re_mod *m) {
  int64_t C = m->out, Cp = re_pad8(C);
  if (Cp == C)
    return RE_OK;
  RE_TRY(re_realloc(&m->scale, Cp, sizeof(float)));
  RE_TRY(re_realloc(&m->shift, Cp, sizeof(float)));
  for (int64_t k = C; k < Cp; k++)
    m->scale[k] = m->shift[k] = 0.0f;
  return RE_OK;
}

static int conv_ok(const re_mod *m) { return m->type == RE_MOD_CONV2D && re_fconv_eligible(&m->geom); }

/* A batch norm that folds into conv m: right after it, same channels, m's output untapped. */
static re_mod *foldable_bn(re_mod *m, re_mod *next) {
  return next && next->type == RE_MOD_BATCHNORM2D && m->tap < 0 && next->out == m->geom.Co ? next : NULL;
}

static re_status plan_mod(plan_ctx *c, re_mod *m);

/* Siblings run in order: conv [bn] [act] and linear [act] chains fold. */
static re_status plan_seq(plan_ctx *c, re_mod *m) {
  for (int k = 0; k < m->n; k++) {
    re_mod *x = m->child[k], *nx = k + 1 < m->n ? m->child[k + 1] : NULL;
    if (conv_ok(x)) {
      re_mod *bn = foldable_bn(x, nx), *last = bn ? bn : x;
      re_mod *a = k + 1 + (bn != NULL) < m->n ? m->child[k + 1 + (bn != NULL)] : NULL;
      int fuse_act = a && a->type == RE_MOD_ACT && last->tap < 0;
      RE_TRY(make_conv(c, x, bn, fuse_act, fuse_act ? a->act : RE_ACT_RELU));
      if (fuse_act)
        a->fused_into = x;
      k += (bn != NULL) + fuse_act;
      continue;
    }
    if (x->type == RE_MOD_LINEAR && x->w) {
      int fuse_act = nx && nx->type == RE_MOD_ACT && x->tap < 0;
      RE_TRY(make_linear(c, x, fuse_act, fuse_act ? nx->act : RE_ACT_RELU));
      if (fuse_act) {
        nx->fused_into = x;
        k++;
      }
      continue;
    }
    RE_TRY(plan_mod(c, x));
  }
  return RE_OK;
}

static re_mod *named_child(re_mod *m, const char *leaf) {
  size_t lp = strlen(m->name);
  for (int k = 0; k < m->n; k++)
    if (!strcmp(m->child[k]->name + lp + 1, leaf))
      return m->child[k];
  return NULL;
}

/* torchvision residual blocks: conv1 bn1 relu conv2 bn2 [relu conv3 bn3] (+ shortcut), relu */
static re_status plan_block(plan_ctx *c, re_mod *m) {
  static const char *const convs[] = {"conv1", "conv2", "conv3"}, *const bns[] = {"bn1", "bn2", "bn3"};
  int depth = m->type == RE_MOD_BOTTLENECK ? 3 : 2;
  re_mod *ds = named_child(m, "downsample");
  if (ds)
    RE_TRY(plan_mod(c, ds));
  for (int k = 0; k < depth; k++) {
    re_mod *cv = named_child(m, convs[k]), *bn = named_child(m, bns[k]);
    if (!cv || !bn)
      return RE_OK; /* not the usual layout: leave the rest to the plain kernels */
    if (!conv_ok(cv)) {
      RE_TRY(plan_mod(c, cv));
      continue;
    }
    re_mod *fold = foldable_bn(cv, bn);
    int last = k == depth - 1;
    /* the ReLU after bn (or the add and ReLU after the last bn) needs bn's own output untapped */
    int fuse = fold && bn->tap < 0;
    if (last && fuse) {
      RE_TRY(make_conv(c, cv, fold, 1, RE_ACT_RELU));
      m->res_fused = 1;
    } else {
      RE_TRY(make_conv(c, cv, fold, fuse && !last, RE_ACT_RELU));
      bn->relu_done = fuse && !last;
    }
  }
  return RE_OK;
}

static re_status plan_mod(plan_ctx *c, re_mod *m) {
  switch (m->type) {
  case RE_MOD_SEQ:
  case RE_MOD_VIT_ENCODER:
  case RE_MOD_ENCODER_BLOCK: return plan_seq(c, m); /* an encoder block has no conv or linear child to fold */
  case RE_MOD_BASIC_BLOCK:
  case RE_MOD_BOTTLENECK: return plan_block(c, m);
  case RE_MOD_CONV2D:
    if (conv_ok(m))
      return make_conv(c, m, NULL, 0, RE_ACT_RELU);
    return RE_OK;
  case RE_MOD_BATCHNORM2D: return pad_bn(m);
  case RE_MOD_MHA: return make_mha(c, m, c->bmax);
  default: return RE_OK;
  }
}

/* Batch norms of the whole tree, folded or not: padded for the blocked kernels. */
static re_status pad_all_bn(re_mod *m) {
  if (m->type == RE_MOD_BATCHNORM2D)
    RE_TRY(pad_bn(m));
  for (int k = 0; k < m->n; k++)
    RE_TRY(pad_all_bn(m->child[k]));
  return RE_OK;
}

/* Floating-point operations of one sample through m and everything under it. */
static double tree_flops(const re_mod *m) {
  double f = re_mod_flops(m);
  for (int k = 0; k < m->n; k++)
    f += tree_flops(m->child[k]);
  return f;
}

/* A batch worth fewer than this many operations per thread runs on fewer threads: splitting
 * each layer of a small network over cores moves its activations between the cores' caches
 * at every layer and costs more than it saves (the demo CNN, 10 000 images of 28 x 28 in
 * batches of 64: forward 0.15 s on one thread, 0.28-0.32 s on two, every layer slower). */
#define MIN_FLOP_PER_THREAD 256e6

static int threads_for(const re_net *n, int threads) {
  double per_batch = tree_flops(n->root) * (double)n->bmax;
  int fit = (int)(per_batch / MIN_FLOP_PER_THREAD);
  return fit < 1 ? 1 : fit < threads ? fit : threads;
}

re_status re_net_plan(re_net *n) {
  if (n->planned) /* a failed plan leaves the tree half packed: it stays failed */
    return n->plan_status == RE_OK ? RE_OK : re_err(n->plan_status, "forward: the fast path's plan failed before");
  n->planned = 1;
  n->fast = re_kern_fast() && !n->tokens;
  if (!n->fast)
    return RE_OK;
  plan_ctx c = {0, threads_for(n, re_kern_threads()), n->bmax};
  n->threads = c.threads;
  re_status st = pad_all_bn(n->root);
  if (st == RE_OK)
    st = n->root->type == RE_MOD_SEQ ? plan_seq(&c, n->root) : plan_mod(&c, n->root);
  if (st == RE_OK)
    st = re_net_pool_work(n, c.work);
  n->plan_status = st;
  return st;
}
