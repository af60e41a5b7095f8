/* Binding a module tree to a checkpoint: infer sizes from the tensors, check every
 * parameter, load weights (float32) and compute every module's output shape. All
 * description/checkpoint mismatches are collected and reported together. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bind.h"

#define MAX_LISTED 24

typedef re_bind_ctx ctx;

#define note re_bind_note
#define param re_bind_param
#define shape_error re_bind_shape_error

void re_bind_note(ctx *c, const char *fmt, ...) {
  c->problems++;
  if (c->problems > MAX_LISTED || c->len + 4 >= sizeof c->report)
    return;
  va_list ap;
  va_start(ap, fmt);
  c->len += (size_t)snprintf(c->report + c->len, sizeof c->report - c->len, "\n  ");
  if (c->len < sizeof c->report)
    c->len += (size_t)vsnprintf(c->report + c->len, sizeof c->report - c->len, fmt, ap);
  va_end(ap);
  if (c->len >= sizeof c->report)
    c->len = sizeof c->report - 1;
}

static void fmt_shape(char *buf, size_t cap, int nd, const int64_t *d) {
  size_t n = (size_t)snprintf(buf, cap, "[");
  for (int k = 0; k < nd && n < cap; k++) {
    if (d[k] < 0)
      n += (size_t)snprintf(buf + n, cap - n, "%s?", k ? ", " : "");
    else
      n += (size_t)snprintf(buf + n, cap - n, "%s%lld", k ? ", " : "", (long long)d[k]);
  }
  if (n < cap)
    snprintf(buf + n, cap - n, "]");
}

static void key_of(const ctx *c, const re_mod *m, const char *suffix, char *key, size_t cap) {
  if (suffix[0] == '=')
    snprintf(key, cap, "%s%s", c->prefix, suffix + 1);
  else if (m->name[0])
    snprintf(key, cap, "%s%s.%s", c->prefix, m->name, suffix);
  else
    snprintf(key, cap, "%s%s", c->prefix, suffix);
}

void re_bind_skip(ctx *c, const re_mod *m, const char *suffix) {
  char key[1200];
  int64_t idx;
  key_of(c, m, suffix, key, sizeof key);
  if (re_ckpt_find(c->ck, key, &idx) == RE_OK)
    c->used[idx] = 1;
  re_err_clear();
}

void re_bind_work(ctx *c, int64_t floats) {
  if (floats > c->max_work)
    c->max_work = floats;
}

/* Fetch tensor <module>.<suffix> with nd dims; dims[k] < 0 are inferred from the
 * checkpoint. Returns 1 when found with a matching shape (then *dst is loaded, if
 * dst != NULL), 0 otherwise (the problem is noted when required). */
int re_bind_param(ctx *c, const re_mod *m, const char *suffix, int nd, int64_t *dims, int required, float **dst) {
  char key[1200], want[160], got[160];
  int64_t idx;
  key_of(c, m, suffix, key, sizeof key);
  if (re_ckpt_find(c->ck, key, &idx) != RE_OK) {
    re_err_clear();
    if (required) {
      fmt_shape(want, sizeof want, nd, dims);
      note(c, "missing tensor '%s' %s for %s '%s'%s%s", key, want, re_mod_type_name(m->type), m->name,
           m->why ? " " : "", m->why ? m->why : "");
    }
    return 0;
  }
  c->used[idx] = 1;
  const re_tensor_info *ti = re_ckpt_info(c->ck, idx);
  int ok = ti->ndim == nd;
  for (int k = 0; ok && k < nd; k++)
    ok = dims[k] < 0 || dims[k] == ti->shape[k];
  if (!ok) {
    fmt_shape(want, sizeof want, nd, dims);
    fmt_shape(got, sizeof got, ti->ndim, ti->shape);
    note(c, "tensor '%s' has shape %s but %s '%s' expects %s%s%s", key, got, re_mod_type_name(m->type), m->name,
         want, m->why ? " " : "", m->why ? m->why : "");
    return 0;
  }
  for (int k = 0; k < nd; k++)
    dims[k] = ti->shape[k];
  if (!dst)
    return 1;
  if (re_malloc(ti->numel > 0 ? ti->numel : 1, sizeof(float), dst) != RE_OK ||
      re_ckpt_read_f32(c->ck, idx, *dst) != RE_OK) {
    note(c, "cannot load tensor '%s': %s", key, re_errmsg());
    return 0;
  }
  re_ckpt_release_pages(c->ck, idx); /* the float32 copy replaces the file's pages in memory */
  for (int64_t k = 0; k < ti->numel; k++)
    if (!isfinite((*dst)[k])) {
      note(c, "tensor '%s' holds a non-finite value at flat index %lld", key, (long long)k);
      return 0;
    }
  return 1;
}

re_status re_bind_shape_error(const re_mod *m, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return re_err(RE_ESHAPE, "module '%s' (%s): %s", m->name, re_mod_type_name(m->type), msg);
}

static void track(ctx *c, const re_shape *s) {
  int64_t n = re_shape_numel(s);
  if (s->rank == 3) /* room for the fast path's blocked layout: channels padded to a multiple of 8 */
    n = (s->d[0] + 7) / 8 * 8 * s->d[1] * s->d[2];
  if (n > c->max_numel)
    c->max_numel = n;
}

static int64_t pick(int64_t v, int64_t dflt) { return v == RE_UNSET ? dflt : v; }

static re_status bind(ctx *c, re_mod *m, re_shape in);

/* Optional bias of length n; returns 0 on a noted problem. */
static int bias_param(ctx *c, re_mod *m, int64_t n) {
  int64_t d[1] = {n};
  if (m->bias == 0) {
    char key[1200];
    int64_t idx;
    key_of(c, m, "bias", key, sizeof key);
    if (re_ckpt_find(c->ck, key, &idx) == RE_OK) {
      c->used[idx] = 1;
      note(c, "tensor '%s' present but %s '%s' is declared without bias", key, re_mod_type_name(m->type), m->name);
      return 0;
    }
    re_err_clear();
    return 1;
  }
  int got = param(c, m, "bias", 1, d, m->bias == 1, &m->b);
  return got || m->bias != 1;
}

static re_status bind_linear(ctx *c, re_mod *m, re_shape in) {
  if (in.rank == 3)
    return shape_error(m, "input is an image (%lld, %lld, %lld): add a flatten module before it", (long long)in.d[0],
                       (long long)in.d[1], (long long)in.d[2]);
  int64_t feat = in.d[in.rank - 1];
  /* sizes from a config (m->why set) are known: binding goes on after a problem so
   * that every mismatch is listed */
  int sized = m->why && m->in != RE_UNSET && m->out != RE_UNSET;
  int64_t d[2] = {m->out, m->in};
  if (m->weight_t) /* GPT-2's Conv1D stores (in, out) */
    d[0] = m->in, d[1] = m->out;
  int ok = param(c, m, "weight", 2, d, 1, &m->w);
  if (!ok && !sized)
    return RE_EFORMAT;
  int64_t win = m->weight_t ? d[0] : d[1], wout = m->weight_t ? d[1] : d[0];
  if (ok && win != feat)
    return shape_error(m, "its input has %lld features per %s but weight %s.weight expects %lld", (long long)feat,
                       in.rank == 2 ? "token" : "sample", m->name, (long long)win);
  if (ok) {
    m->in = win;
    m->out = wout;
  }
  if (!bias_param(c, m, m->out) && !sized)
    return RE_EFORMAT;
  m->out_shape = in;
  m->out_shape.d[in.rank - 1] = m->out;
  return RE_OK;
}

static re_status bind_conv(ctx *c, re_mod *m, re_shape in) {
  if (in.rank != 3)
    return shape_error(m, "needs an image input (C, H, W), got a rank-%d input", in.rank);
  int64_t groups = pick(m->groups, 1);
  int64_t d[4] = {m->out, m->in == RE_UNSET ? RE_UNSET : m->in / groups, m->k[0], m->k[1]};
  if (!param(c, m, "weight", 4, d, 1, &m->w))
    return RE_EFORMAT;
  if (d[1] * groups != in.d[0])
    return shape_error(m, "its input has %lld channels but weight %s.weight expects %lld x %lld groups",
                       (long long)in.d[0], m->name, (long long)d[1], (long long)groups);
  if (d[0] % groups)
    return shape_error(m, "%lld output channels are not divisible by %lld groups", (long long)d[0], (long long)groups);
  m->in = in.d[0];
  m->out = d[0];
  m->groups = groups;
  m->k[0] = d[2], m->k[1] = d[3];
  if (!bias_param(c, m, m->out))
    return RE_EFORMAT;
  re_conv_geom *g = &m->geom;
  g->C = in.d[0], g->H = in.d[1], g->W = in.d[2];
  g->kh = m->k[0], g->kw = m->k[1];
  g->sh = pick(m->s[0], 1), g->sw = pick(m->s[1], 1);
  g->ph = pick(m->p[0], 0), g->pw = pick(m->p[1], 0);
  g->dh = pick(m->d[0], 1), g->dw = pick(m->d[1], 1);
  g->groups = groups;
  g->Co = m->out;
  g->Ho = re_conv_out(g->H, g->kh, g->sh, g->ph, g->dh);
  g->Wo = re_conv_out(g->W, g->kw, g->sw, g->pw, g->dw);
  if (g->Ho <= 0 || g->Wo <= 0)
    return shape_error(m, "a %lldx%lld input is too small for kernel %lldx%lld (stride %lld, padding %lld)",
                       (long long)g->H, (long long)g->W, (long long)g->kh, (long long)g->kw, (long long)g->sh,
                       (long long)g->ph);
  m->out_shape = (re_shape){3, {g->Co, g->Ho, g->Wo}};
  return RE_OK;
}

static re_status bind_bn(ctx *c, re_mod *m, re_shape in) {
  int64_t C;
  if (m->type == RE_MOD_BATCHNORM2D) {
    if (in.rank != 3)
      return shape_error(m, "needs an image input (C, H, W), got rank %d", in.rank);
    C = in.d[0];
  } else {
    if (in.rank == 3)
      return shape_error(m, "batchnorm1d on an image: use batchnorm2d");
    C = in.d[0]; /* (D) or (C, L) */
  }
  int64_t d[1] = {C};
  float *mean = NULL, *var = NULL, *w = NULL, *b = NULL;
  int ok = param(c, m, "running_mean", 1, d, 1, &mean);
  d[0] = C;
  ok &= param(c, m, "running_var", 1, d, 1, &var);
  d[0] = C;
  int hw = param(c, m, "weight", 1, d, 0, &w);
  d[0] = C;
  int hb = param(c, m, "bias", 1, d, 0, &b);
  char key[1200];
  int64_t idx;
  key_of(c, m, "num_batches_tracked", key, sizeof key);
  if (re_ckpt_find(c->ck, key, &idx) == RE_OK)
    c->used[idx] = 1;
  re_err_clear();
  if (!ok) {
    free(mean), free(var), free(w), free(b);
    return RE_EFORMAT;
  }
  double eps = m->eps > 0 ? m->eps : 1e-5;
  if (re_malloc(C, sizeof(float), &m->scale) != RE_OK || re_malloc(C, sizeof(float), &m->shift) != RE_OK) {
    free(mean), free(var), free(w), free(b);
    return RE_ENOMEM;
  }
  for (int64_t k = 0; k < C; k++) { /* y = (x - mean) / sqrt(var + eps) * w + b, folded */
    double s = (hw ? w[k] : 1.0) / sqrt((double)var[k] + eps);
    m->scale[k] = (float)s;
    m->shift[k] = (float)((hb ? b[k] : 0.0) - mean[k] * s);
  }
  free(mean), free(var), free(w), free(b);
  m->out = C;
  m->out_shape = in;
  return RE_OK;
}

static re_status bind_ln(ctx *c, re_mod *m, re_shape in) {
  int64_t D = in.d[in.rank - 1], d[1] = {D};
  if (m->out != RE_UNSET && m->out != D)
    return shape_error(m, "normalizes %lld features but its input has %lld", (long long)m->out, (long long)D);
  int req = m->why != NULL; /* a Hugging Face LayerNorm has both */
  char key[1200];
  int64_t idx;
  int legacy = 0; /* TensorFlow-era BERT checkpoints name them gamma and beta (transformers renames them) */
  key_of(c, m, "weight", key, sizeof key);
  if (req && re_ckpt_find(c->ck, key, &idx) != RE_OK) {
    key_of(c, m, "gamma", key, sizeof key);
    legacy = re_ckpt_find(c->ck, key, &idx) == RE_OK;
  }
  re_err_clear();
  param(c, m, legacy ? "gamma" : "weight", 1, d, req, &m->w);
  d[0] = D;
  param(c, m, legacy ? "beta" : "bias", 1, d, req, &m->b);
  m->out = D;
  if (m->eps <= 0)
    m->eps = 1e-5;
  m->out_shape = in;
  return RE_OK;
}

static re_status bind_pool(ctx *c, re_mod *m, re_shape in) {
  (void)c;
  if (in.rank != 3)
    return shape_error(m, "needs an image input (C, H, W), got rank %d", in.rank);
  re_conv_geom *g = &m->geom;
  g->C = g->Co = in.d[0], g->H = in.d[1], g->W = in.d[2];
  if (m->type == RE_MOD_ADAPTIVE_AVGPOOL2D) {
    g->Ho = pick(m->osz[0], 1), g->Wo = pick(m->osz[1], 1);
    if (g->Ho <= 0 || g->Wo <= 0)
      return shape_error(m, "output_size must be positive");
  } else {
    if (m->k[0] == RE_UNSET)
      return shape_error(m, "needs 'kernel'");
    g->kh = m->k[0], g->kw = m->k[1];
    g->sh = pick(m->s[0], g->kh), g->sw = pick(m->s[1], g->kw);
    g->ph = pick(m->p[0], 0), g->pw = pick(m->p[1], 0);
    g->dh = pick(m->d[0], 1), g->dw = pick(m->d[1], 1);
    if (2 * g->ph > g->kh || 2 * g->pw > g->kw)
      return shape_error(m, "padding must be at most half the kernel size");
    g->Ho = re_conv_out(g->H, g->kh, g->sh, g->ph, g->dh);
    g->Wo = re_conv_out(g->W, g->kw, g->sw, g->pw, g->dw);
    if (g->Ho <= 0 || g->Wo <= 0)
      return shape_error(m, "a %lldx%lld input is too small for a %lldx%lld window", (long long)g->H,
                         (long long)g->W, (long long)g->kh, (long long)g->kw);
  }
  m->out_shape = (re_shape){3, {g->C, g->Ho, g->Wo}};
  return RE_OK;
}

static re_status bind_block(ctx *c, re_mod *m, re_shape in) {
  re_shape x = in;
  re_mod *ds = NULL;
  for (int k = 0; k < m->n; k++) {
    if (!strcmp(m->child[k]->name + strlen(m->name) + 1, "downsample")) {
      ds = m->child[k];
      continue;
    }
    RE_TRY(bind(c, m->child[k], x));
    x = m->child[k]->out_shape;
  }
  re_shape sc = in;
  if (ds) {
    RE_TRY(bind(c, ds, in));
    sc = ds->out_shape;
  }
  if (sc.rank != x.rank || re_shape_numel(&sc) != re_shape_numel(&x) || sc.d[0] != x.d[0])
    return shape_error(m, "the residual branch gives (%lld, %lld, %lld) but the shortcut gives (%lld, %lld, %lld); "
                          "a downsample branch is missing or wrong",
                       (long long)x.d[0], (long long)x.d[1], (long long)x.d[2], (long long)sc.d[0],
                       (long long)sc.d[1], (long long)sc.d[2]);
  m->out_shape = x;
  return RE_OK;
}

static re_status bind_mha(ctx *c, re_mod *m, re_shape in) {
  if (in.rank != 2)
    return shape_error(m, "needs token input (T, D), got rank %d", in.rank);
  int64_t D = in.d[1];
  int64_t w[2] = {3 * D, D}, b[1] = {3 * D}, ow[2] = {D, D}, ob[1] = {D};
  int ok = param(c, m, "in_proj_weight", 2, w, 1, &m->w);
  ok &= param(c, m, "in_proj_bias", 1, b, 1, &m->b);
  ok &= param(c, m, "out_proj.weight", 2, ow, 1, &m->w2);
  ok &= param(c, m, "out_proj.bias", 1, ob, 1, &m->b2);
  if (!ok)
    return RE_EFORMAT;
  if (m->heads == RE_UNSET)
    m->heads = D / 64 > 0 ? D / 64 : 1;
  if (D % m->heads)
    return shape_error(m, "width %lld is not divisible by %lld heads", (long long)D, (long long)m->heads);
  int64_t work = re_op_mha_workspace(c->max_batch, in.d[0], D);
  if (work > c->max_work)
    c->max_work = work;
  m->out_shape = in;
  return RE_OK;
}

static re_status bind_class_token(ctx *c, re_mod *m, re_shape in) {
  if (in.rank != 3)
    return shape_error(m, "needs the patch embedding (D, h, w) as input, got rank %d", in.rank);
  int64_t D = in.d[0], d[3] = {1, 1, D};
  char suffix[1200];
  snprintf(suffix, sizeof suffix, "=%s", m->name);
  if (!param(c, m, suffix, 3, d, 1, &m->w))
    return RE_EFORMAT;
  m->out_shape = (re_shape){2, {in.d[1] * in.d[2] + 1, D, 0}};
  return RE_OK;
}

static re_status bind_seq(ctx *c, re_mod *m, re_shape in) {
  re_shape x = in;
  for (int k = 0; k < m->n; k++) {
    RE_TRY(bind(c, m->child[k], x));
    x = m->child[k]->out_shape;
  }
  m->out_shape = x;
  return RE_OK;
}

static re_status bind_vit_encoder(ctx *c, re_mod *m, re_shape in) {
  if (in.rank != 2)
    return shape_error(m, "needs token input (T, D), got rank %d", in.rank);
  int64_t d[3] = {1, in.d[0], in.d[1]};
  if (!param(c, m, "pos_embedding", 3, d, 1, &m->w))
    return RE_EFORMAT;
  return bind_seq(c, m, in);
}

static re_status bind(ctx *c, re_mod *m, re_shape in) {
  m->in_shape = in;
  re_status st = RE_OK;
  switch (m->type) {
  case RE_MOD_SEQ: st = bind_seq(c, m, in); break;
  case RE_MOD_LINEAR: st = bind_linear(c, m, in); break;
  case RE_MOD_CONV2D: st = bind_conv(c, m, in); break;
  case RE_MOD_BATCHNORM1D:
  case RE_MOD_BATCHNORM2D: st = bind_bn(c, m, in); break;
  case RE_MOD_LAYERNORM: st = bind_ln(c, m, in); break;
  case RE_MOD_ACT:
  case RE_MOD_IDENTITY: m->out_shape = in; break;
  case RE_MOD_MAXPOOL2D:
  case RE_MOD_AVGPOOL2D:
  case RE_MOD_ADAPTIVE_AVGPOOL2D: st = bind_pool(c, m, in); break;
  case RE_MOD_FLATTEN:
    if (m->start_dim != 1)
      return shape_error(m, "only start_dim 1 is supported");
    m->out_shape = (re_shape){1, {re_shape_numel(&in), 0, 0}};
    break;
  case RE_MOD_BASIC_BLOCK:
  case RE_MOD_BOTTLENECK: st = bind_block(c, m, in); break;
  case RE_MOD_MHA: st = bind_mha(c, m, in); break;
  case RE_MOD_ENCODER_BLOCK:
    if (in.rank != 2)
      return shape_error(m, "needs token input (T, D), got rank %d", in.rank);
    st = bind_seq(c, m, in);
    if (st == RE_OK && (m->out_shape.rank != 2 || m->out_shape.d[1] != in.d[1]))
      return shape_error(m, "its MLP changes the width from %lld to %lld", (long long)in.d[1],
                         (long long)m->out_shape.d[1]);
    m->out_shape = in;
    break;
  case RE_MOD_CLASS_TOKEN: st = bind_class_token(c, m, in); break;
  case RE_MOD_VIT_ENCODER: st = bind_vit_encoder(c, m, in); break;
  case RE_MOD_TAKE_TOKEN:
    if (in.rank != 2)
      return shape_error(m, "needs token input (T, D), got rank %d", in.rank);
    m->out_shape = (re_shape){1, {in.d[1], 0, 0}};
    break;
  case RE_MOD_EMBEDDING:
  case RE_MOD_EMBED_SUM:
  case RE_MOD_RMSNORM:
  case RE_MOD_ATTENTION:
  case RE_MOD_GATED_MLP:
  case RE_MOD_DECODER_BLOCK:
  case RE_MOD_ENCODER_LAYER:
  case RE_MOD_PATCH_EMBED:
  case RE_MOD_LAYER_SCALE: st = re_bind_transformer(c, m, in); break;
  default: return shape_error(m, "unknown module type");
  }
  if (st != RE_OK)
    return st;
  track(c, &m->in_shape);
  track(c, &m->out_shape);
  if (m->type == RE_MOD_CONV2D) {
    int64_t w = (re_op_conv2d_workspace(&m->geom, c->max_batch) + 3) / 4; /* floats */
    if (w > c->max_work)
      c->max_work = w;
  }
  return RE_OK;
}

re_status re_bind_module(ctx *c, re_mod *m, re_shape in) { return bind(c, m, in); }

/* Tensors a Hugging Face model folder may hold that no module uses: heads outside the
 * base model's prefix (lm_head, embed_out, score, ...), the output embedding, and the
 * other parts of a CLIP model (text tower, projections, logit scale), which may be
 * saved without a prefix. */
static int hf_ignored(const ctx *c, const char *name) {
  static const char *const other[] = {"lm_head.", "text_model.", "visual_projection.", "text_projection.", NULL};
  size_t lp = strlen(c->prefix);
  if (lp && strncmp(name, c->prefix, lp))
    return 1;
  for (int k = 0; other[k]; k++)
    if (!strncmp(name, other[k], strlen(other[k])))
      return 1;
  return !strcmp(name, "logit_scale");
}

re_status re_mod_bind(re_mod *root, re_shape in, const re_ckpt *ck, int64_t max_batch, int64_t *max_numel,
                      int64_t *max_work) {
  ctx c;
  memset(&c, 0, sizeof c);
  c.ck = ck;
  c.prefix = root->prefix ? root->prefix : "";
  c.max_batch = max_batch;
  c.block_q = c.block_k = 64;
  const char *blk = getenv("REPEVAL_ATTN_BLOCK"); /* attention block size (tuning and tests) */
  if (blk && atoll(blk) >= 1 && atoll(blk) <= 4096)
    c.block_q = c.block_k = atoll(blk);
  RE_TRY(re_calloc(re_ckpt_count(ck) + 1, 1, &c.used));
  track(&c, &in);
  re_status st = bind(&c, root, in);
  if (c.problems == 0 && st == RE_EFORMAT)
    st = re_err(RE_EFORMAT, "%s: cannot bind the model", re_ckpt_path(ck));
  if (st == RE_OK) { /* unused tensors only mean something after a complete binding */
    for (int64_t i = 0; i < re_ckpt_count(ck); i++) {
      const re_tensor_info *ti = re_ckpt_info(ck, i);
      size_t n = strlen(ti->name);
      if (c.used[i] || (n >= 19 && !strcmp(ti->name + n - 19, "num_batches_tracked")) ||
          ((root->tokens || root->hf) && hf_ignored(&c, ti->name)))
        continue;
      char got[160];
      fmt_shape(got, sizeof got, ti->ndim, ti->shape);
      note(&c, "unexpected tensor '%s' %s (no module of the model uses it)", ti->name, got);
    }
  }
  free(c.used);
  if (c.problems) {
    return re_err(RE_EFORMAT, "%s does not match the model description (%d problem%s)%s%s", re_ckpt_path(ck),
                  c.problems, c.problems > 1 ? "s" : "", c.report,
                  c.problems > MAX_LISTED ? "\n  ... (more not listed)" : "");
  }
  if (st != RE_OK)
    return st;
  *max_numel = c.max_numel;
  *max_work = c.max_work;
  return RE_OK;
}
