/* Model descriptions: model files (YAML/JSON) and built-in presets, turned into
 * module trees whose names match the PyTorch state_dict. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf.h"
#include "module.h"

struct re_model {
  re_cfg *owned;        /* parsed file when loaded from a path */
  const re_cfg *desc;   /* the description map (NULL for a bare preset name) */
  char *preset;         /* preset name, or NULL for a module list */
  int64_t heads;        /* ViT heads (RE_UNSET: D / 64) */
  re_act act;           /* MLP activation */
  re_shape input;       /* declared input (rank 0 if not declared) */
  re_hf_config *hf;     /* a Hugging Face model folder, or NULL */
};

static const char *PRESETS[] = {"resnet18",       "resnet34", "resnet50", "resnet18-cifar", "resnet34-cifar",
                                "resnet50-cifar", "vit",      "timm-vit", "mlp",            NULL};

/* ---- module basics ----------------------------------------------------- */

static const char *TYPE_NAMES[RE_MOD_TYPE_COUNT] = {
    "sequential", "linear",   "conv2d",        "batchnorm1d",  "batchnorm2d",   "layernorm",   "activation",
    "maxpool2d",  "avgpool2d", "adaptiveavgpool2d", "flatten", "identity",      "basic_block", "bottleneck",
    "multihead_attention", "encoder_block", "class_token", "vit_encoder", "take_token", "embedding",
    "embeddings", "rmsnorm", "attention", "gated_mlp", "pre_norm_block", "post_norm_block", "patch_embeddings",
    "layer_scale"};

const char *re_mod_type_name(re_mod_type t) { return (t >= 0 && t < RE_MOD_TYPE_COUNT) ? TYPE_NAMES[t] : "?"; }

int64_t re_shape_numel(const re_shape *s) {
  int64_t n = 1;
  for (int k = 0; k < s->rank; k++)
    n *= s->d[k];
  return n;
}

re_status re_mod_new(const char *parent, const char *name, re_mod_type type, re_mod **out) {
  re_mod *m;
  *out = NULL;
  RE_TRY(re_calloc(1, sizeof *m, &m));
  size_t lp = strlen(parent), ln = strlen(name);
  if (re_malloc((int64_t)(lp + ln + 2), 1, &m->name) != RE_OK) {
    free(m);
    return RE_ENOMEM;
  }
  if (lp && ln)
    snprintf(m->name, lp + ln + 2, "%s.%s", parent, name);
  else
    snprintf(m->name, lp + ln + 2, "%s%s", parent, name);
  m->type = type;
  m->in = m->out = m->groups = m->heads = RE_UNSET;
  m->start_dim = 1;
  for (int k = 0; k < 2; k++)
    m->k[k] = m->s[k] = m->p[k] = m->d[k] = m->osz[k] = RE_UNSET;
  m->bias = RE_UNSET;
  m->include_pad = 1;
  m->eps = -1;
  m->tap = -1;
  m->idx = -1;
  m->kv_heads = m->head_dim = RE_UNSET;
  *out = m;
  return RE_OK;
}

re_status re_mod_add(re_mod *parent, re_mod *child) {
  re_status st = re_realloc(&parent->child, parent->n + 1, sizeof(re_mod *));
  if (st != RE_OK) {
    re_mod_free(child);
    return st;
  }
  parent->child[parent->n++] = child;
  return RE_OK;
}

void re_mod_free(re_mod *m) {
  if (!m)
    return;
  re_mod_free_plan(m);
  for (int k = 0; k < m->n; k++)
    re_mod_free(m->child[k]);
  free(m->child);
  free(m->name);
  free(m->w);
  free(m->b);
  free(m->scale);
  free(m->shift);
  free(m->w2);
  free(m->b2);
  free(m->why);
  free(m->prefix);
  for (int k = 0; k < m->nalias; k++)
    free(m->alias[k].name);
  free(m->alias);
  free(m->rope_inv);
  free(m->rope_cos);
  free(m->rope_sin);
  free(m->pos);
  free(m);
}

/* Create a child of `parent` and append it; *out is the child (owned by parent). */
static re_status child(re_mod *parent, const char *name, re_mod_type type, re_mod **out) {
  re_mod *c;
  RE_TRY(re_mod_new(parent->name, name, type, &c));
  RE_TRY(re_mod_add(parent, c));
  if (out)
    *out = c;
  return RE_OK;
}

static re_status conv_child(re_mod *parent, const char *name, int64_t k, int64_t s, int64_t p, int bias) {
  re_mod *c;
  RE_TRY(child(parent, name, RE_MOD_CONV2D, &c));
  c->k[0] = c->k[1] = k;
  c->s[0] = c->s[1] = s;
  c->p[0] = c->p[1] = p;
  c->bias = bias;
  return RE_OK;
}

/* ---- presets ----------------------------------------------------------- */

static int has_tensor(const re_ckpt *ck, const char *name) {
  int64_t i;
  re_status st = re_ckpt_find(ck, name, &i);
  re_err_clear();
  return st == RE_OK;
}

/* Residual blocks get their inner modules here: conv1/bn1/... and a downsample
 * branch when the checkpoint has one (torchvision creates it exactly when the
 * stride or the width changes). */
static re_status block_children(re_mod *blk, const re_ckpt *ck) {
  char key[1024];
  int64_t s = blk->s[0] == RE_UNSET ? 1 : blk->s[0];
  if (blk->type == RE_MOD_BASIC_BLOCK) {
    RE_TRY(conv_child(blk, "conv1", 3, s, 1, 0));
    RE_TRY(child(blk, "bn1", RE_MOD_BATCHNORM2D, NULL));
    RE_TRY(conv_child(blk, "conv2", 3, 1, 1, 0));
    RE_TRY(child(blk, "bn2", RE_MOD_BATCHNORM2D, NULL));
  } else {
    RE_TRY(conv_child(blk, "conv1", 1, 1, 0, 0));
    RE_TRY(child(blk, "bn1", RE_MOD_BATCHNORM2D, NULL));
    RE_TRY(conv_child(blk, "conv2", 3, s, 1, 0));
    if (blk->groups != RE_UNSET)
      blk->child[blk->n - 1]->groups = blk->groups;
    RE_TRY(child(blk, "bn2", RE_MOD_BATCHNORM2D, NULL));
    RE_TRY(conv_child(blk, "conv3", 1, 1, 0, 0));
    RE_TRY(child(blk, "bn3", RE_MOD_BATCHNORM2D, NULL));
  }
  snprintf(key, sizeof key, "%s.downsample.0.weight", blk->name);
  if (has_tensor(ck, key)) {
    re_mod *ds;
    RE_TRY(child(blk, "downsample", RE_MOD_SEQ, &ds));
    RE_TRY(conv_child(ds, "0", 1, s, 0, 0));
    RE_TRY(child(ds, "1", RE_MOD_BATCHNORM2D, NULL));
  }
  return RE_OK;
}

static re_status encoder_block_children(re_mod *blk) {
  re_mod *c, *mlp;
  RE_TRY(child(blk, "ln_1", RE_MOD_LAYERNORM, &c));
  c->eps = blk->eps > 0 ? blk->eps : 1e-6;
  RE_TRY(child(blk, "self_attention", RE_MOD_MHA, &c));
  c->heads = blk->heads;
  RE_TRY(child(blk, "ln_2", RE_MOD_LAYERNORM, &c));
  c->eps = blk->eps > 0 ? blk->eps : 1e-6;
  RE_TRY(child(blk, "mlp", RE_MOD_SEQ, &mlp));
  RE_TRY(child(mlp, "0", RE_MOD_LINEAR, NULL));
  RE_TRY(child(mlp, "1", RE_MOD_ACT, &c));
  c->act = RE_ACT_GELU;
  RE_TRY(child(mlp, "2", RE_MOD_IDENTITY, NULL));
  RE_TRY(child(mlp, "3", RE_MOD_LINEAR, NULL));
  RE_TRY(child(mlp, "4", RE_MOD_IDENTITY, NULL));
  return RE_OK;
}

static re_status vit_encoder_children(re_mod *enc, const re_ckpt *ck, int64_t heads, double eps) {
  char key[1024];
  int64_t nl = 0;
  for (;; nl++) {
    snprintf(key, sizeof key, "%s.layers.encoder_layer_%lld.ln_1.weight", enc->name, (long long)nl);
    if (!has_tensor(ck, key))
      break;
  }
  if (nl == 0)
    return re_err(RE_EFORMAT, "%s: no encoder layers found (expected tensors named %s.layers.encoder_layer_0.*)",
                  re_ckpt_path(ck), enc->name);
  re_mod *layers, *blk, *ln;
  RE_TRY(child(enc, "layers", RE_MOD_SEQ, &layers));
  for (int64_t i = 0; i < nl; i++) {
    char nm[64];
    snprintf(nm, sizeof nm, "encoder_layer_%lld", (long long)i);
    RE_TRY(child(layers, nm, RE_MOD_ENCODER_BLOCK, &blk));
    blk->heads = heads;
    blk->eps = eps;
    RE_TRY(encoder_block_children(blk));
  }
  RE_TRY(child(enc, "ln", RE_MOD_LAYERNORM, &ln));
  ln->eps = eps;
  return RE_OK;
}

static re_status preset_resnet(const char *name, const re_ckpt *ck, re_mod *root) {
  int cifar = strstr(name, "cifar") != NULL;
  int depth = atoi(name + 6);
  static const int counts18[4] = {2, 2, 2, 2}, counts34[4] = {3, 4, 6, 3};
  const int *counts = depth == 18 ? counts18 : counts34;
  re_mod_type bt = depth == 50 ? RE_MOD_BOTTLENECK : RE_MOD_BASIC_BLOCK;
  re_mod *c, *layer, *blk;
  if (cifar)
    RE_TRY(conv_child(root, "conv1", 3, 1, 1, 0));
  else
    RE_TRY(conv_child(root, "conv1", 7, 2, 3, 0));
  RE_TRY(child(root, "bn1", RE_MOD_BATCHNORM2D, NULL));
  RE_TRY(child(root, "relu", RE_MOD_ACT, &c));
  c->act = RE_ACT_RELU;
  if (!cifar) {
    RE_TRY(child(root, "maxpool", RE_MOD_MAXPOOL2D, &c));
    c->k[0] = c->k[1] = 3;
    c->s[0] = c->s[1] = 2;
    c->p[0] = c->p[1] = 1;
  }
  for (int l = 0; l < 4; l++) {
    char nm[16];
    snprintf(nm, sizeof nm, "layer%d", l + 1);
    RE_TRY(child(root, nm, RE_MOD_SEQ, &layer));
    for (int b = 0; b < counts[l]; b++) {
      snprintf(nm, sizeof nm, "%d", b);
      RE_TRY(child(layer, nm, bt, &blk));
      blk->s[0] = blk->s[1] = (l > 0 && b == 0) ? 2 : 1;
      RE_TRY(block_children(blk, ck));
    }
  }
  RE_TRY(child(root, "avgpool", RE_MOD_ADAPTIVE_AVGPOOL2D, &c));
  c->osz[0] = c->osz[1] = 1;
  RE_TRY(child(root, "flatten", RE_MOD_FLATTEN, NULL));
  RE_TRY(child(root, "fc", RE_MOD_LINEAR, NULL));
  return RE_OK;
}

static re_status preset_vit(const re_model *m, const re_ckpt *ck, re_mod *root) {
  re_mod *c, *enc, *heads;
  int64_t i;
  if (re_ckpt_find(ck, "conv_proj.weight", &i) != RE_OK)
    return re_err(RE_EFORMAT, "%s: not a torchvision ViT checkpoint (no tensor 'conv_proj.weight')", re_ckpt_path(ck));
  const re_tensor_info *ti = re_ckpt_info(ck, i);
  if (ti->ndim != 4)
    return re_err(RE_EFORMAT, "%s: conv_proj.weight must be 4-D (got %d-D)", re_ckpt_path(ck), ti->ndim);
  RE_TRY(conv_child(root, "conv_proj", ti->shape[2], ti->shape[2], 0, RE_UNSET));
  RE_TRY(child(root, "class_token", RE_MOD_CLASS_TOKEN, NULL));
  RE_TRY(child(root, "encoder", RE_MOD_VIT_ENCODER, &enc));
  int64_t heads_n = m->heads != RE_UNSET ? m->heads : ti->shape[0] / 64;
  RE_TRY(vit_encoder_children(enc, ck, heads_n > 0 ? heads_n : 1, 1e-6));
  RE_TRY(child(root, "cls", RE_MOD_TAKE_TOKEN, &c));
  RE_TRY(child(root, "heads", RE_MOD_SEQ, &heads));
  if (has_tensor(ck, "heads.pre_logits.weight")) {
    RE_TRY(child(heads, "pre_logits", RE_MOD_LINEAR, NULL));
    RE_TRY(child(heads, "act", RE_MOD_ACT, &c));
    c->act = RE_ACT_TANH;
  }
  RE_TRY(child(heads, "head", RE_MOD_LINEAR, NULL));
  return RE_OK;
}

/* Split "prefix<int>" into prefix and the integer (returns 0 if not of that form). */
static int trailing_index(const char *name, size_t *plen, long *idx) {
  size_t n = strlen(name), k = n;
  while (k > 0 && name[k - 1] >= '0' && name[k - 1] <= '9')
    k--;
  if (k == n || n - k > 9)
    return 0;
  *plen = k;
  *idx = atol(name + k);
  return 1;
}

static re_status preset_mlp(const re_model *m, const re_ckpt *ck, re_mod *root, const re_shape *input) {
  re_mod *c;
  int64_t nlin = 0;
  if (input->rank > 1)
    RE_TRY(child(root, "flatten", RE_MOD_FLATTEN, NULL));
  for (int64_t i = 0; i < re_ckpt_count(ck); i++) {
    const re_tensor_info *ti = re_ckpt_info(ck, i);
    size_t n = strlen(ti->name);
    if (ti->ndim == 2 && n > 7 && !strcmp(ti->name + n - 7, ".weight"))
      nlin++;
  }
  if (nlin == 0)
    return re_err(RE_EFORMAT, "%s: the mlp preset found no 2-D '<name>.weight' tensors", re_ckpt_path(ck));
  int64_t seen = 0;
  for (int64_t i = 0; i < re_ckpt_count(ck); i++) {
    const re_tensor_info *ti = re_ckpt_info(ck, i);
    size_t n = strlen(ti->name);
    if (!(ti->ndim == 2 && n > 7 && !strcmp(ti->name + n - 7, ".weight")))
      continue;
    char name[1024];
    snprintf(name, sizeof name, "%.*s", (int)(n - 7), ti->name);
    RE_TRY(re_mod_new("", name, RE_MOD_LINEAR, &c));
    RE_TRY(re_mod_add(root, c));
    if (++seen == nlin)
      break;
    /* the activation after it: index + 1 for nn.Sequential names, else <name>_act */
    char act[1100];
    size_t pl;
    long idx;
    if (trailing_index(name, &pl, &idx))
      snprintf(act, sizeof act, "%.*s%ld", (int)pl, name, idx + 1);
    else
      snprintf(act, sizeof act, "%s_act", name);
    RE_TRY(re_mod_new("", act, RE_MOD_ACT, &c));
    c->act = m->act;
    RE_TRY(re_mod_add(root, c));
  }
  return RE_OK;
}

/* ---- model files ------------------------------------------------------- */

typedef struct type_entry {
  const char *name;
  re_mod_type type;
  re_act act;
  const char *const *keys;
} type_entry;

static const char *const K_NONE[] = {"name", "type", NULL};
static const char *const K_SEQ[] = {"name", "type", "modules", NULL};
static const char *const K_LINEAR[] = {"name", "type", "in", "out", "bias", NULL};
static const char *const K_CONV[] = {"name",     "type",   "in",     "out",  "kernel", "stride",
                                     "padding",  "dilation", "groups", "bias", NULL};
static const char *const K_NORM[] = {"name", "type", "features", "eps", NULL};
static const char *const K_POOL[] = {"name", "type", "kernel", "stride", "padding", "dilation", "include_pad", NULL};
static const char *const K_APOOL[] = {"name", "type", "output_size", NULL};
static const char *const K_FLAT[] = {"name", "type", "start_dim", NULL};
static const char *const K_BLOCK[] = {"name", "type", "stride", "groups", NULL};
static const char *const K_MHA[] = {"name", "type", "heads", NULL};
static const char *const K_ENC[] = {"name", "type", "heads", "eps", NULL};

static const type_entry TYPES[] = {
    {"sequential", RE_MOD_SEQ, 0, K_SEQ},
    {"linear", RE_MOD_LINEAR, 0, K_LINEAR},
    {"conv2d", RE_MOD_CONV2D, 0, K_CONV},
    {"batchnorm1d", RE_MOD_BATCHNORM1D, 0, K_NORM},
    {"batchnorm2d", RE_MOD_BATCHNORM2D, 0, K_NORM},
    {"layernorm", RE_MOD_LAYERNORM, 0, K_NORM},
    {"relu", RE_MOD_ACT, RE_ACT_RELU, K_NONE},
    {"gelu", RE_MOD_ACT, RE_ACT_GELU, K_NONE},
    {"silu", RE_MOD_ACT, RE_ACT_SILU, K_NONE},
    {"tanh", RE_MOD_ACT, RE_ACT_TANH, K_NONE},
    {"sigmoid", RE_MOD_ACT, RE_ACT_SIGMOID, K_NONE},
    {"maxpool2d", RE_MOD_MAXPOOL2D, 0, K_POOL},
    {"avgpool2d", RE_MOD_AVGPOOL2D, 0, K_POOL},
    {"adaptiveavgpool2d", RE_MOD_ADAPTIVE_AVGPOOL2D, 0, K_APOOL},
    {"flatten", RE_MOD_FLATTEN, 0, K_FLAT},
    {"dropout", RE_MOD_IDENTITY, 0, K_NONE},
    {"identity", RE_MOD_IDENTITY, 0, K_NONE},
    {"basic_block", RE_MOD_BASIC_BLOCK, 0, K_BLOCK},
    {"bottleneck", RE_MOD_BOTTLENECK, 0, K_BLOCK},
    {"multihead_attention", RE_MOD_MHA, 0, K_MHA},
    {"encoder_block", RE_MOD_ENCODER_BLOCK, 0, K_ENC},
    {"class_token", RE_MOD_CLASS_TOKEN, 0, K_NONE},
    {"vit_encoder", RE_MOD_VIT_ENCODER, 0, K_ENC},
    {"take_token", RE_MOD_TAKE_TOKEN, 0, K_NONE},
};

/* int or [h, w] */
static re_status pair_value(const re_cfg *c, int64_t *v) {
  if (c->kind == RE_CFG_SEQ) {
    if (c->n != 2)
      return re_cfg_error(c, RE_EINVAL, "expected an integer or a list of two integers");
    RE_TRY(re_cfg_int(c->items[0], &v[0]));
    RE_TRY(re_cfg_int(c->items[1], &v[1]));
  } else {
    RE_TRY(re_cfg_int(c, &v[0]));
    v[1] = v[0];
  }
  if (v[0] < 0 || v[1] < 0)
    return re_cfg_error(c, RE_EINVAL, "expected non-negative values");
  return RE_OK;
}

static re_status opt_pair(const re_cfg *m, const char *key, int64_t *v) {
  const re_cfg *c = re_cfg_get(m, key);
  return c ? pair_value(c, v) : RE_OK;
}

static re_status positive(const re_cfg *m, const char *key, int64_t *v) {
  const re_cfg *c = re_cfg_get(m, key);
  if (!c)
    return RE_OK;
  RE_TRY(re_cfg_int(c, v));
  if (*v <= 0)
    return re_cfg_error(c, RE_EINVAL, "'%s' must be a positive integer", key);
  return RE_OK;
}

static re_status parse_modules(re_mod *parent, const re_cfg *list, const re_ckpt *ck);

static re_status parse_module(re_mod *parent, const re_cfg *c, int64_t index, const re_ckpt *ck) {
  if (c->kind != RE_CFG_MAP)
    return re_cfg_error(c, RE_EINVAL, "a module must be a map with at least 'type'");
  const char *type = NULL, *name = NULL;
  const re_cfg *tc = re_cfg_get(c, "type");
  if (!tc)
    return re_cfg_error(c, RE_EINVAL, "module without 'type'");
  RE_TRY(re_cfg_string(tc, &type));
  const type_entry *te = NULL;
  for (size_t k = 0; k < sizeof TYPES / sizeof TYPES[0]; k++)
    if (!strcmp(TYPES[k].name, type))
      te = &TYPES[k];
  if (!te) {
    char list[900] = "";
    size_t used = 0;
    for (size_t k = 0; k < sizeof TYPES / sizeof TYPES[0]; k++)
      used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", k ? ", " : "", TYPES[k].name);
    return re_cfg_error(tc, RE_EUNSUPPORTED, "unknown module type '%s' (known: %s)", type, list);
  }
  RE_TRY(re_cfg_expect_map(c, "a module", te->keys));
  char idx[32];
  snprintf(idx, sizeof idx, "%lld", (long long)index);
  RE_TRY(re_cfg_get_string(c, "name", &name));
  if (!name)
    name = idx;
  if (!*name || strchr(name, ' '))
    return re_cfg_error(c, RE_EINVAL, "module name '%s' is empty or has spaces", name);
  re_mod *m;
  RE_TRY(re_mod_new(parent->name, name, te->type, &m));
  for (int k = 0; k < parent->n; k++)
    if (!strcmp(parent->child[k]->name, m->name)) {
      re_mod_free(m); /* taps and tensors would bind to the first one */
      return re_cfg_error(c, RE_EINVAL, "two modules are called '%s'", name);
    }
  RE_TRY(re_mod_add(parent, m));
  m->src = c;
  m->act = te->act;
  RE_TRY(positive(c, "in", &m->in));
  RE_TRY(positive(c, "out", &m->out));
  RE_TRY(positive(c, "features", &m->out));
  RE_TRY(positive(c, "groups", &m->groups));
  RE_TRY(positive(c, "heads", &m->heads));
  RE_TRY(opt_pair(c, "kernel", m->k));
  RE_TRY(opt_pair(c, "stride", m->s));
  RE_TRY(opt_pair(c, "padding", m->p));
  RE_TRY(opt_pair(c, "dilation", m->d));
  RE_TRY(opt_pair(c, "output_size", m->osz));
  {
    static const char *const win_keys[] = {"kernel", "stride", "padding", "dilation", "output_size"};
    const int64_t *win[] = {m->k, m->s, m->p, m->d, m->osz};
    for (int w = 0; w < 5; w++)
      for (int q = 0; q < 2; q++)
        if (win[w][q] > RE_MAX_WINDOW)
          return re_cfg_error(re_cfg_get(c, win_keys[w]), RE_EINVAL, "module '%s' (%s): '%s' %lld is larger than %d",
                              m->name, type, win_keys[w], (long long)win[w][q], RE_MAX_WINDOW);
  }
  RE_TRY(re_cfg_get_int(c, "start_dim", &m->start_dim));
  RE_TRY(re_cfg_get_bool(c, "include_pad", &m->include_pad));
  int b = RE_UNSET;
  RE_TRY(re_cfg_get_bool(c, "bias", &b));
  m->bias = b;
  RE_TRY(re_cfg_get_double(c, "eps", &m->eps));
  if (re_cfg_get(c, "eps") && !(m->eps > 0))
    return re_cfg_error(re_cfg_get(c, "eps"), RE_EINVAL, "'eps' must be positive");
  if (m->k[0] == 0 || m->k[1] == 0 || m->s[0] == 0 || m->s[1] == 0 || m->d[0] == 0 || m->d[1] == 0)
    return re_cfg_error(c, RE_EINVAL, "kernel, stride and dilation must be positive");
  switch (te->type) {
  case RE_MOD_SEQ: {
    const re_cfg *mods = re_cfg_get(c, "modules");
    if (!mods)
      return re_cfg_error(c, RE_EINVAL, "a sequential module needs 'modules'");
    return parse_modules(m, mods, ck);
  }
  case RE_MOD_BASIC_BLOCK:
  case RE_MOD_BOTTLENECK:
    return block_children(m, ck);
  case RE_MOD_ENCODER_BLOCK:
    return encoder_block_children(m);
  case RE_MOD_VIT_ENCODER:
    return vit_encoder_children(m, ck, m->heads, m->eps > 0 ? m->eps : 1e-6);
  default:
    return RE_OK;
  }
}

static re_status parse_modules(re_mod *parent, const re_cfg *list, const re_ckpt *ck) {
  if (list->kind != RE_CFG_SEQ)
    return re_cfg_error(list, RE_EINVAL, "'modules' must be a list");
  for (int64_t k = 0; k < list->n; k++)
    RE_TRY(parse_module(parent, list->items[k], k, ck));
  return RE_OK;
}

/* ---- loading ----------------------------------------------------------- */

static int is_preset(const char *s) {
  for (int k = 0; PRESETS[k]; k++)
    if (!strcmp(PRESETS[k], s))
      return 1;
  return 0;
}

static re_status parse_desc(re_model *m, const re_cfg *d) {
  static const char *const keys[] = {"name", "preset", "input", "modules", "heads", "activation", NULL};
  RE_TRY(re_cfg_expect_map(d, "a model description", keys));
  m->desc = d;
  const re_cfg *pre = re_cfg_get(d, "preset"), *mods = re_cfg_get(d, "modules");
  if (!!pre == !!mods)
    return re_cfg_error(d, RE_EINVAL, "a model description needs exactly one of 'preset' or 'modules'");
  if (pre) {
    const char *p;
    RE_TRY(re_cfg_string(pre, &p));
    if (!is_preset(p))
      return re_cfg_error(pre, RE_EINVAL, "unknown preset '%s' (resnet18, resnet34, resnet50, resnet18-cifar, "
                                          "resnet34-cifar, resnet50-cifar, vit, timm-vit, mlp)", p);
    RE_TRY(re_strdup(p, &m->preset));
  }
  RE_TRY(positive(d, "heads", &m->heads));
  const re_cfg *act = re_cfg_get(d, "activation");
  if (act) {
    const char *a;
    RE_TRY(re_cfg_string(act, &a));
    static const char *names[] = {"relu", "gelu", "silu", "tanh", "sigmoid"};
    static const re_act acts[] = {RE_ACT_RELU, RE_ACT_GELU, RE_ACT_SILU, RE_ACT_TANH, RE_ACT_SIGMOID};
    int found = 0;
    for (int k = 0; k < 5; k++)
      if (!strcmp(a, names[k]))
        m->act = acts[k], found = 1;
    if (!found)
      return re_cfg_error(act, RE_EINVAL, "activation must be relu, gelu, silu, tanh or sigmoid");
  }
  const re_cfg *in = re_cfg_get(d, "input");
  if (in) {
    if (in->kind != RE_CFG_SEQ || !(in->n == 1 || in->n == 3))
      return re_cfg_error(in, RE_EINVAL, "'input' must be [features] or [channels, height, width]");
    m->input.rank = (int)in->n;
    for (int k = 0; k < in->n; k++) {
      RE_TRY(re_cfg_int(in->items[k], &m->input.d[k]));
      if (m->input.d[k] <= 0)
        return re_cfg_error(in->items[k], RE_EINVAL, "input sizes must be positive");
    }
  }
  return RE_OK;
}

re_status re_model_from_cfg(const re_cfg *desc, re_model **out) {
  re_model *m;
  *out = NULL;
  RE_TRY(re_calloc(1, sizeof *m, &m));
  m->heads = RE_UNSET;
  m->act = RE_ACT_RELU;
  re_status st = parse_desc(m, desc);
  if (st != RE_OK) {
    re_model_destroy(&m);
    return st;
  }
  *out = m;
  return RE_OK;
}

re_status re_model_load(const char *spec, re_model **out) {
  *out = NULL;
  if (!is_preset(spec) && re_hf_is_folder(spec)) { /* presets first: a folder called "vit" is no model */
    re_hf_config *c;
    RE_TRY(re_hf_config_load(spec, &c));
    return re_model_from_hf(c, out);
  }
  if (is_preset(spec)) {
    re_model *m;
    RE_TRY(re_calloc(1, sizeof *m, &m));
    m->heads = RE_UNSET;
    m->act = RE_ACT_RELU;
    if (re_strdup(spec, &m->preset) != RE_OK) {
      free(m);
      return RE_ENOMEM;
    }
    *out = m;
    return RE_OK;
  }
  re_cfg *c = NULL;
  RE_TRY(re_cfg_parse_file(spec, &c));
  re_status st = re_model_from_cfg(c, out);
  if (st != RE_OK) {
    re_cfg_free(&c);
    return st;
  }
  (*out)->owned = c;
  return RE_OK;
}

void re_model_destroy(re_model **pm) {
  re_model *m = *pm;
  if (!m)
    return;
  re_cfg_free(&m->owned);
  re_hf_config_free(&m->hf);
  free(m->preset);
  free(m);
  *pm = NULL;
}

int re_model_input(const re_model *m, int64_t *dims) {
  if (m->hf)
    return re_hf_image_input(m->hf, dims);
  for (int k = 0; k < m->input.rank; k++)
    dims[k] = m->input.d[k];
  return m->input.rank;
}

re_status re_model_from_hf(re_hf_config *c, re_model **out) {
  re_model *m;
  *out = NULL;
  re_status st = re_calloc(1, sizeof *m, &m);
  if (st != RE_OK) {
    re_hf_config_free(&c);
    return st;
  }
  m->heads = RE_UNSET;
  m->hf = c;
  const char *type;
  st = re_hf_model_type(m->hf, &type); /* an unknown model is refused at once */
  if (st != RE_OK) {
    re_model_destroy(&m);
    return st;
  }
  *out = m;
  return RE_OK;
}

int re_model_takes_tokens(const re_model *m) { return m->hf != NULL && re_hf_takes_tokens(m->hf); }

int re_model_has_weights(const re_model *m) { return m->hf != NULL; }

re_status re_model_check_input(const re_model *m, int rank, const int64_t *dims) {
  if (m->hf && re_hf_takes_tokens(m->hf)) {
    if (rank != 1)
      return re_err(RE_ESHAPE, "%s: the model takes token ids, N x T; the data gives %d dimensions per sample",
                    m->hf->path, rank);
    return RE_OK;
  }
  if (m->hf) { /* images of any size the model accepts (checked when it is built); flat data of its declared size */
    int64_t want[3], numel = 1;
    int r = re_hf_image_input(m->hf, want);
    if (rank == 3 || (rank == 1 && r == 3 && dims[0] == want[0] * want[1] * want[2]))
      return RE_OK;
    for (int k = 0; k < r; k++)
      numel *= want[k];
    if (rank == 1 && r == 3)
      return re_err(RE_ESHAPE, "%s: the model takes images (channels, height, width); flat data needs %lld values "
                               "per sample (%lld x %lld x %lld), got %lld",
                    m->hf->path, (long long)numel, (long long)want[0], (long long)want[1], (long long)want[2],
                    (long long)dims[0]);
    return re_err(RE_ESHAPE, "%s: the model takes images N x C x H x W; the data gives %d dimension%s per sample",
                  m->hf->path, rank, rank == 1 ? "" : "s");
  }
  if (m->input.rank == 0)
    return RE_OK;
  int same = m->input.rank == rank;
  for (int k = 0; same && k < rank; k++)
    same = m->input.d[k] == dims[k];
  if (same)
    return RE_OK;
  if (rank == 1) { /* flat data (N x D .npy) of a model with a (C, H, W) input: same values */
    int64_t numel = 1;
    for (int k = 0; k < m->input.rank; k++)
      numel *= m->input.d[k];
    if (numel == dims[0])
      return RE_OK;
  }
  char want[96] = "", got[96] = "";
  size_t a = 0, b = 0;
  for (int k = 0; k < m->input.rank; k++)
    a += (size_t)snprintf(want + a, sizeof want - a, "%s%lld", k ? ", " : "", (long long)m->input.d[k]);
  for (int k = 0; k < rank; k++)
    b += (size_t)snprintf(got + b, sizeof got - b, "%s%lld", k ? ", " : "", (long long)dims[k]);
  const re_cfg *at = m->desc ? re_cfg_get(m->desc, "input") : NULL;
  if (at)
    return re_cfg_error(at, RE_ESHAPE, "the model declares input [%s] but the data gives [%s]", want, got);
  return re_err(RE_ESHAPE, "the model declares input [%s] but the data gives [%s]", want, got);
}

re_status re_model_build(const re_model *m, const re_ckpt *ck, re_mod **root, re_shape *input) {
  re_mod *r;
  RE_TRY(re_mod_new("", "", RE_MOD_SEQ, &r));
  re_status st;
  if (m->hf) {
    re_mod_free(r);
    return re_hf_build(m->hf, ck, input, root);
  }
  if (!m->preset)
    st = parse_modules(r, re_cfg_get(m->desc, "modules"), ck);
  else if (!strncmp(m->preset, "resnet", 6))
    st = preset_resnet(m->preset, ck, r);
  else if (!strcmp(m->preset, "vit"))
    st = preset_vit(m, ck, r);
  else if (!strcmp(m->preset, "timm-vit"))
    st = re_timm_vit_build(ck, m->heads, r);
  else
    st = preset_mlp(m, ck, r, input);
  if (st != RE_OK) {
    re_mod_free(r);
    return st;
  }
  *root = r;
  return RE_OK;
}
