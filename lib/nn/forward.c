/* The forward pass: a recursive executor over the bound module tree with a small
 * pool of activation buffers (sized once from the largest activation), in-place
 * elementwise operations where the input is no longer needed, and taps that copy
 * (or pool) a module's output as soon as it is produced. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bind.h"

#define MAX_POOL 64

typedef struct tap {
  re_mod *m;
  re_tap_mode mode;
  int64_t dim, rows_per_sample;
  float *data; /* bmax * rows_per_sample * dim */
} tap;

/* Activation buffers and kernel workspace; several nets that run one after the
 * other can share one pool (re_net_share_pool), so memory does not grow with
 * the number of loaded checkpoints. */
typedef struct pool {
  float *bufs[MAX_POOL];
  unsigned char busy[MAX_POOL];
  int nbufs;
  int64_t buf_floats; /* capacity of every buffer */
  float *work;
  int64_t work_floats;
  int refs;
} pool;

struct re_net {
  re_mod *root;
  re_shape input;
  int64_t bmax, max_numel, max_work;
  pool *pool;
  tap *taps;
  int ntaps;
  re_mod **order;
  int64_t norder;
  int64_t B;
};

typedef struct act {
  float *p;
  int own; /* p is a pool buffer now owned by the holder */
} act;

/* ---- buffer pool -------------------------------------------------------- */

static re_status acquire(re_net *n, float **out) {
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

static void release(re_net *n, act a) {
  if (!a.own)
    return;
  for (int k = 0; k < n->pool->nbufs; k++)
    if (n->pool->bufs[k] == a.p)
      n->pool->busy[k] = 0;
}

/* Make the pool fit this net: buffers of bmax x max_numel floats and its workspace. */
static re_status pool_fit(pool *p, int64_t buf_floats, int64_t work_floats) {
  if (buf_floats > p->buf_floats) {
    for (int k = 0; k < p->nbufs; k++)
      free(p->bufs[k]);
    p->nbufs = 0;
    p->buf_floats = buf_floats;
  }
  if (work_floats > p->work_floats) {
    free(p->work);
    p->work = NULL;
    p->work_floats = 0;
    RE_TRY(re_malloc(work_floats, sizeof(float), &p->work));
    p->work_floats = work_floats;
  }
  return RE_OK;
}

static void pool_unref(pool **pp) {
  pool *p = *pp;
  if (!p || --p->refs > 0) {
    *pp = NULL;
    return;
  }
  for (int k = 0; k < p->nbufs; k++)
    free(p->bufs[k]);
  free(p->work);
  free(p);
  *pp = NULL;
}

re_status re_net_share_pool(re_net *n, re_net *owner) {
  if (n->pool == owner->pool)
    return RE_OK;
  RE_TRY(pool_fit(owner->pool, n->bmax * n->max_numel, n->max_work > 0 ? n->max_work : 1));
  pool_unref(&n->pool);
  n->pool = owner->pool;
  n->pool->refs++;
  return RE_OK;
}

/* An output buffer for an elementwise op on x: x itself when owned, else a new one. */
static re_status out_for(re_net *n, act x, act *y) {
  if (x.own) {
    *y = x;
    return RE_OK;
  }
  y->own = 1;
  return acquire(n, &y->p);
}

/* A fresh output buffer; releases x afterwards is the caller's job. */
static re_status fresh(re_net *n, act *y) {
  y->own = 1;
  return acquire(n, &y->p);
}

/* ---- taps ---------------------------------------------------------------- */

static void capture(re_net *n, re_mod *m, const float *y) {
  const re_shape *s = &m->out_shape;
  int64_t numel = re_shape_numel(s), B = n->B;
  for (int t = 0; t < n->ntaps; t++) {
    tap *tp = &n->taps[t];
    if (tp->m != m)
      continue;
    switch (tp->mode) {
    case RE_TAP_FLATTEN:
      memcpy(tp->data, y, sizeof(float) * (size_t)(B * numel));
      break;
    case RE_TAP_POOL_MEAN:
      if (s->rank == 1) {
        memcpy(tp->data, y, sizeof(float) * (size_t)(B * numel));
      } else if (s->rank == 3) { /* mean over H*W per channel */
        int64_t C = s->d[0], hw = s->d[1] * s->d[2];
        for (int64_t b = 0; b < B; b++)
          for (int64_t c = 0; c < C; c++) {
            const float *v = y + (b * C + c) * hw;
            double acc = 0;
            for (int64_t k = 0; k < hw; k++)
              acc += v[k];
            tp->data[b * C + c] = (float)(acc / (double)hw);
          }
      } else { /* mean over tokens */
        int64_t T = s->d[0], D = s->d[1];
        for (int64_t b = 0; b < B; b++)
          for (int64_t d = 0; d < D; d++) {
            double acc = 0;
            for (int64_t k = 0; k < T; k++)
              acc += y[(b * T + k) * D + d];
            tp->data[b * D + d] = (float)(acc / (double)T);
          }
      }
      break;
    case RE_TAP_CLS: {
      int64_t T = s->d[0], D = s->d[1];
      for (int64_t b = 0; b < B; b++)
        memcpy(tp->data + b * D, y + b * T * D, sizeof(float) * (size_t)D);
      break;
    }
    case RE_TAP_SPATIAL:
      if (s->rank == 2) {
        memcpy(tp->data, y, sizeof(float) * (size_t)(B * numel));
      } else { /* (C, H*W) -> (H*W, C) per image */
        int64_t C = s->d[0], hw = s->d[1] * s->d[2];
        for (int64_t b = 0; b < B; b++)
          for (int64_t c = 0; c < C; c++)
            for (int64_t k = 0; k < hw; k++)
              tp->data[(b * hw + k) * C + c] = y[(b * C + c) * hw + k];
      }
      break;
    }
  }
}

/* ---- executor ------------------------------------------------------------ */

static re_status run(re_net *n, re_mod *m, act x, act *y);

static re_status run_seq(re_net *n, re_mod *m, act x, act *y) {
  act cur = x;
  for (int k = 0; k < m->n; k++) {
    act next;
    re_status st = run(n, m->child[k], cur, &next);
    if (st != RE_OK)
      return st;
    cur = next;
  }
  *y = cur;
  return RE_OK;
}

static re_status run_block(re_net *n, re_mod *m, act x, act *y) {
  act cur = {x.p, 0}, sc = {x.p, 0};
  re_mod *ds = NULL;
  for (int k = 0; k < m->n; k++) {
    re_mod *c = m->child[k];
    if (!strcmp(c->name + strlen(m->name) + 1, "downsample")) {
      ds = c;
      continue;
    }
    act next;
    RE_TRY(run(n, c, cur, &next));
    cur = next;
    /* torchvision applies ReLU after bn1 (and bn2 in bottlenecks), inside the block */
    const char *leaf = c->name + strlen(m->name) + 1;
    int relu_after = !strcmp(leaf, "bn1") || (m->type == RE_MOD_BOTTLENECK && !strcmp(leaf, "bn2"));
    if (relu_after) {
      act r;
      RE_TRY(out_for(n, cur, &r));
      re_op_activation(RE_ACT_RELU, cur.p, n->B * re_shape_numel(&c->out_shape), r.p);
      cur = r;
    }
  }
  if (!cur.own) { /* an empty body: copy before adding in place */
    act c2;
    RE_TRY(fresh(n, &c2));
    memcpy(c2.p, cur.p, sizeof(float) * (size_t)(n->B * re_shape_numel(&m->out_shape)));
    cur = c2;
  }
  if (ds)
    RE_TRY(run(n, ds, (act){x.p, 0}, &sc));
  int64_t len = n->B * re_shape_numel(&m->out_shape);
  re_op_add(cur.p, sc.p, len, cur.p);
  re_op_activation(RE_ACT_RELU, cur.p, len, cur.p);
  if (ds)
    release(n, sc);
  release(n, x);
  *y = cur;
  return RE_OK;
}

/* torchvision EncoderBlock: x = x + attn(ln_1(x)); y = x + mlp(ln_2(x)) */
static re_status run_encoder_block(re_net *n, re_mod *m, act x, act *y) {
  re_mod *ln1 = m->child[0], *attn = m->child[1], *ln2 = m->child[2], *mlp = m->child[3];
  int64_t len = n->B * re_shape_numel(&m->out_shape);
  act a, b, c, d;
  RE_TRY(run(n, ln1, (act){x.p, 0}, &a));
  RE_TRY(run(n, attn, a, &b));
  if (!b.own) {
    act t;
    RE_TRY(fresh(n, &t));
    memcpy(t.p, b.p, sizeof(float) * (size_t)len);
    b = t;
  }
  re_op_add(b.p, x.p, len, b.p);
  release(n, x);
  RE_TRY(run(n, ln2, (act){b.p, 0}, &c));
  RE_TRY(run(n, mlp, c, &d));
  if (!d.own) {
    act t;
    RE_TRY(fresh(n, &t));
    memcpy(t.p, d.p, sizeof(float) * (size_t)len);
    d = t;
  }
  re_op_add(d.p, b.p, len, d.p);
  release(n, b);
  *y = d;
  return RE_OK;
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
    re_op_activation(m->act, x.p, B * in_numel, y->p);
    return RE_OK;
  case RE_MOD_BATCHNORM1D:
  case RE_MOD_BATCHNORM2D: {
    int64_t C = is->d[0], inner = in_numel / C;
    RE_TRY(out_for(n, x, y));
    re_op_channel_affine(x.p, B, C, inner, m->scale, m->shift, y->p);
    return RE_OK;
  }
  case RE_MOD_LAYERNORM: {
    int64_t D = is->d[is->rank - 1];
    RE_TRY(out_for(n, x, y));
    re_op_layernorm(x.p, B * in_numel / D, D, m->w, m->b, m->eps, y->p);
    return RE_OK;
  }
  default:
    break;
  }
  RE_TRY(fresh(n, y));
  switch (m->type) {
  case RE_MOD_LINEAR: {
    int64_t rows = B * in_numel / m->in;
    re_op_linear(x.p, rows, m->in, m->w, m->b, m->out, y->p);
    break;
  }
  case RE_MOD_CONV2D: re_op_conv2d(&m->geom, x.p, B, m->w, m->b, y->p, n->pool->work); break;
  case RE_MOD_MAXPOOL2D: re_op_maxpool2d(&m->geom, x.p, B, y->p); break;
  case RE_MOD_AVGPOOL2D: re_op_avgpool2d(&m->geom, x.p, B, m->include_pad, y->p); break;
  case RE_MOD_ADAPTIVE_AVGPOOL2D:
    re_op_adaptive_avgpool2d(x.p, B, m->geom.C, m->geom.H, m->geom.W, m->geom.Ho, m->geom.Wo, y->p);
    break;
  case RE_MOD_MHA:
    re_op_mha(x.p, B, is->d[0], is->d[1], m->heads, m->w, m->b, m->w2, m->b2, y->p, n->pool->work);
    break;
  case RE_MOD_CLASS_TOKEN: { /* (D, h, w) -> (1 + h*w, D) with the class token first */
    int64_t D = is->d[0], hw = is->d[1] * is->d[2], T = hw + 1;
    for (int64_t b = 0; b < B; b++) {
      float *o = y->p + b * T * D;
      memcpy(o, m->w, sizeof(float) * (size_t)D);
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

static re_status run(re_net *n, re_mod *m, act x, act *y) {
  re_status st;
  switch (m->type) {
  case RE_MOD_SEQ: st = run_seq(n, m, x, y); break;
  case RE_MOD_BASIC_BLOCK:
  case RE_MOD_BOTTLENECK: st = run_block(n, m, x, y); break;
  case RE_MOD_ENCODER_BLOCK: st = run_encoder_block(n, m, x, y); break;
  case RE_MOD_VIT_ENCODER: {
    act t = {NULL, 0};
    st = out_for(n, x, &t);
    if (st != RE_OK)
      return st;
    int64_t numel = re_shape_numel(&m->in_shape);
    for (int64_t b = 0; b < n->B; b++)
      re_op_add(x.p + b * numel, m->w, numel, t.p + b * numel);
    st = run_seq(n, m, t, y);
    break;
  }
  default: st = run_leaf(n, m, x, y); break;
  }
  if (st == RE_OK && m->tap >= 0)
    capture(n, m, y->p);
  return st;
}

/* ---- the net ------------------------------------------------------------- */

static re_status collect(re_net *n, re_mod *m) {
  if (m->name[0]) {
    RE_TRY(re_realloc(&n->order, n->norder + 1, sizeof(re_mod *)));
    n->order[n->norder++] = m;
  }
  for (int k = 0; k < m->n; k++)
    RE_TRY(collect(n, m->child[k]));
  return RE_OK;
}

re_status re_net_create(const re_model *model, const re_ckpt *ck, int input_rank, const int64_t *input,
                        int64_t max_batch, re_net **out) {
  re_status st = RE_OK;
  re_net *n = NULL;
  *out = NULL;
  if (max_batch < 1)
    return re_err(RE_EINVAL, "forward: max_batch must be positive");
  RE_CHECK(re_calloc(1, sizeof *n, &n));
  n->bmax = max_batch;
  if (input_rank > 0) {
    if (input_rank != 1 && input_rank != 3) {
      st = re_err(RE_EINVAL, "forward: input must be (features) or (channels, height, width)");
      goto done;
    }
    if ((st = re_model_check_input(model, input_rank, input)) != RE_OK)
      goto done;
    n->input.rank = input_rank;
    for (int k = 0; k < input_rank; k++)
      n->input.d[k] = input[k];
    if (input_rank == 1 && re_model_input(model, n->input.d) == 3) /* flat data, read as (C, H, W) */
      n->input.rank = 3;
  } else {
    n->input.rank = re_model_input(model, n->input.d);
  }
  RE_CHECK(re_model_build(model, ck, &n->root, &n->input));
  if (n->input.rank == 0) { /* an MLP whose first layer tells its width */
    re_mod *first = n->root->n ? n->root->child[0] : NULL;
    int64_t idx;
    char key[1200];
    if (first && first->type == RE_MOD_LINEAR) {
      snprintf(key, sizeof key, "%s.weight", first->name);
      if (re_ckpt_find(ck, key, &idx) == RE_OK && re_ckpt_info(ck, idx)->ndim == 2) {
        n->input.rank = 1;
        n->input.d[0] = re_ckpt_info(ck, idx)->shape[1];
      }
    }
    if (n->input.rank == 0) {
      st = re_err(RE_EINVAL, "forward: the input size is unknown; give it in the model description ('input:') "
                             "or through the dataset");
      goto done;
    }
  }
  RE_CHECK(re_mod_bind(n->root, n->input, ck, max_batch, &n->max_numel, &n->max_work));
  RE_CHECK(re_calloc(1, sizeof(pool), &n->pool));
  n->pool->refs = 1;
  RE_CHECK(pool_fit(n->pool, n->bmax * n->max_numel, n->max_work > 0 ? n->max_work : 1));
  RE_CHECK(collect(n, n->root));
  *out = n;
  n = NULL;
done:
  re_net_destroy(&n);
  return st;
}

void re_net_destroy(re_net **pn) {
  re_net *n = *pn;
  if (!n)
    return;
  re_mod_free(n->root);
  pool_unref(&n->pool);
  for (int t = 0; t < n->ntaps; t++)
    free(n->taps[t].data);
  free(n->taps);
  free(n->order);
  free(n);
  *pn = NULL;
}

static const char *const tap_mode_names[] = {"flatten", "mean", "cls", "spatial"};

const char *re_tap_mode_name(re_tap_mode mode) {
  return (unsigned)mode < sizeof tap_mode_names / sizeof *tap_mode_names ? tap_mode_names[mode] : "?";
}

re_status re_tap_mode_parse(const char *s, re_tap_mode *mode) {
  const char *const *names = tap_mode_names;
  for (int k = 0; k < 4; k++)
    if (!strcmp(s, names[k])) {
      *mode = (re_tap_mode)k;
      return RE_OK;
    }
  return re_err(RE_EINVAL, "tap mode '%s' is not one of flatten, mean, cls, spatial", s);
}

re_status re_net_add_tap(re_net *n, const char *name, re_tap_mode mode, int *index) {
  re_mod *m = NULL;
  for (int64_t k = 0; k < n->norder; k++)
    if (!strcmp(n->order[k]->name, name))
      m = n->order[k];
  if (!m) {
    char list[1200] = "";
    size_t used = 0;
    for (int64_t k = 0; k < n->norder && used + 64 < sizeof list; k++)
      used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", k ? ", " : "", n->order[k]->name);
    return re_err(RE_EINVAL, "no module named '%s' to tap (modules: %s%s)", name, list,
                  used + 64 >= sizeof list ? ", ..." : "");
  }
  const re_shape *s = &m->out_shape;
  tap t = {m, mode, 0, 1, NULL};
  switch (mode) {
  case RE_TAP_FLATTEN: t.dim = re_shape_numel(s); break;
  case RE_TAP_POOL_MEAN: t.dim = s->rank == 1 ? s->d[0] : (s->rank == 3 ? s->d[0] : s->d[1]); break;
  case RE_TAP_CLS:
    if (s->rank != 2)
      return re_err(RE_EINVAL, "tap '%s': mode cls needs token outputs (T, D), the module gives rank %d", name,
                    s->rank);
    t.dim = s->d[1];
    break;
  case RE_TAP_SPATIAL:
    if (s->rank == 1)
      return re_err(RE_EINVAL, "tap '%s': mode spatial needs an image or token output, the module gives a vector",
                    name);
    t.dim = s->rank == 3 ? s->d[0] : s->d[1];
    t.rows_per_sample = s->rank == 3 ? s->d[1] * s->d[2] : s->d[0];
    break;
  }
  RE_TRY(re_malloc(n->bmax * t.rows_per_sample, t.dim * (int64_t)sizeof(float), &t.data));
  re_status st = re_realloc(&n->taps, n->ntaps + 1, sizeof(tap));
  if (st != RE_OK) {
    free(t.data);
    return st;
  }
  n->taps[n->ntaps] = t;
  m->tap = n->ntaps;
  *index = n->ntaps++;
  return RE_OK;
}

void re_net_tap_shape(const re_net *n, int t, int64_t *dim, int64_t *rows_per_sample) {
  *dim = n->taps[t].dim;
  *rows_per_sample = n->taps[t].rows_per_sample;
}

const float *re_net_tap_data(const re_net *n, int t) { return n->taps[t].data; }

re_status re_net_forward(re_net *n, const float *x, int64_t B) {
  if (B < 1 || B > n->bmax)
    return re_err(RE_EINVAL, "forward: batch of %lld (allowed 1..%lld)", (long long)B, (long long)n->bmax);
  n->B = B;
  act y;
  re_status st = run(n, n->root, (act){(float *)x, 0}, &y);
  if (st == RE_OK)
    release(n, y);
  for (int k = 0; k < n->pool->nbufs; k++)
    n->pool->busy[k] = 0;
  return st;
}

int64_t re_net_module_count(const re_net *n) { return n->norder; }

void re_net_module(const re_net *n, int64_t i, const char **name, const char **type, int *rank, int64_t *dims) {
  const re_mod *m = n->order[i];
  *name = m->name;
  *type = m->type == RE_MOD_ACT ? "activation" : re_mod_type_name(m->type);
  *rank = m->out_shape.rank;
  for (int k = 0; k < m->out_shape.rank; k++)
    dims[k] = m->out_shape.d[k];
}
