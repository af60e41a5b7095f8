/* Module trees of vision transformers: transformers' ViT (Dosovitskiy et al. 2021),
 * DINOv2 (Oquab et al. 2023; with registers, Darcet et al. 2024) and CLIP's vision
 * tower (Radford et al. 2021) from config.json, and timm's VisionTransformer from its
 * state_dict (a timm config.json or the timm-vit preset). Modules are named as the
 * state_dicts (encoder.layer.3.attention.attention.query, encoder.layers.3.self_attn,
 * blocks.3.attn.qkv); images are (C, H, W) and become tokens [class, registers,
 * patches] in the patch embedding. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf.h"

typedef enum vfam { V_VIT, V_DINOV2, V_DINOV2_REG, V_CLIP } vfam;

typedef struct vis {
  const re_hf_config *c;
  int64_t obj;       /* the object holding the keys (CLIPModel: vision_config) */
  const char *where; /* its prefix in messages */
  vfam fam;
  int64_t D, L, H, I, C, img[2], patch, R, pool_out;
  double eps, mlp_ratio;
  re_act act, pool_act;
  int qkv_bias, swiglu;
} vis;

/* An int or [h, w] (image_size, patch_size may be either). */
static re_status size_pair(const re_hf_config *c, int64_t obj, const char *where, const char *key, int64_t dflt,
                           int64_t *v) {
  int64_t k = re_hf_find(c, obj, key);
  if (k >= 0 && c->json.nodes[k].type == RE_JSON_ARRAY) {
    int64_t a = c->json.nodes[k].first, b = a >= 0 ? c->json.nodes[a].next : -1;
    if (a < 0 || b < 0 || c->json.nodes[b].next >= 0 || c->json.nodes[a].type != RE_JSON_NUMBER ||
        c->json.nodes[b].type != RE_JSON_NUMBER || c->json.nodes[a].num_kind != RE_JSON_NUM_UINT ||
        c->json.nodes[b].num_kind != RE_JSON_NUM_UINT || c->json.nodes[a].num < 1 || c->json.nodes[b].num < 1 ||
        c->json.nodes[a].num > 65536 || c->json.nodes[b].num > 65536)
      return re_err(RE_EFORMAT, "%s: key '%s%s' must be a positive integer or two", c->path, where, key);
    v[0] = c->json.nodes[a].num, v[1] = c->json.nodes[b].num;
    return RE_OK;
  }
  RE_TRY(re_hf_size(c, obj, where, key, dflt, &v[0]));
  if (v[0] > 65536)
    return re_err(RE_EFORMAT, "%s: key '%s%s' is %lld, more than 65536", c->path, where, key, (long long)v[0]);
  v[1] = v[0];
  return RE_OK;
}

static re_status read_config(vis *v, const char *type) {
  const re_hf_config *c = v->c;
  int clip = !strcmp(type, "clip") || !strcmp(type, "clip_vision_model");
  v->fam = clip ? V_CLIP : !strcmp(type, "vit") ? V_VIT : !strcmp(type, "dinov2") ? V_DINOV2 : V_DINOV2_REG;
  v->where = "";
  if (!strcmp(type, "clip")) { /* CLIPModel: the vision tower's keys are under vision_config */
    v->obj = re_hf_find(c, 0, "vision_config");
    v->where = "vision_config.";
    if (v->obj < 0 || c->json.nodes[v->obj].type != RE_JSON_OBJECT)
      return re_err(RE_EFORMAT, "%s: a CLIP model needs a 'vision_config' object", c->path);
  }
  int64_t o = v->obj, ps[2];
  const char *w = v->where;
  RE_TRY(re_hf_size(c, o, w, "hidden_size", 768, &v->D));
  RE_TRY(re_hf_size(c, o, w, "num_hidden_layers", 12, &v->L));
  RE_TRY(re_hf_size(c, o, w, "num_attention_heads", 12, &v->H));
  RE_TRY(re_hf_size(c, o, w, "num_channels", 3, &v->C));
  RE_TRY(size_pair(c, o, w, "image_size", 224, v->img));
  RE_TRY(size_pair(c, o, w, "patch_size", clip ? 32 : v->fam == V_VIT ? 16 : 14, ps));
  if (ps[0] != ps[1])
    return re_hf_fail(c, "non-square patches ('%spatch_size' [%lld, %lld]) are not supported", w, (long long)ps[0],
                      (long long)ps[1]);
  v->patch = ps[0];
  RE_TRY(re_hf_positive_num(c, o, w, "layer_norm_eps", clip ? 1e-5 : v->fam == V_VIT ? 1e-12 : 1e-6, &v->eps));
  RE_TRY(re_hf_act(c, o, w, "hidden_act", clip ? "quick_gelu" : "gelu", &v->act));
  v->qkv_bias = 1;
  if (!clip)
    RE_TRY(re_hf_bool(c, o, w, "qkv_bias", 1, &v->qkv_bias));
  if (v->fam == V_DINOV2 || v->fam == V_DINOV2_REG) {
    RE_TRY(re_hf_positive_num(c, o, w, "mlp_ratio", 4.0, &v->mlp_ratio));
    RE_TRY(re_hf_bool(c, o, w, "use_swiglu_ffn", 0, &v->swiglu));
    v->I = (int64_t)((double)v->D * v->mlp_ratio); /* int(hidden_size * mlp_ratio) */
    if (v->swiglu)
      v->I = ((int64_t)((double)v->I * 2.0 / 3.0) + 7) / 8 * 8; /* Dinov2SwiGLUFFN's hidden width */
    if (v->I < 1 || v->I > (1 << 30))
      return re_err(RE_EFORMAT, "%s: hidden_size x mlp_ratio gives %lld features", c->path, (long long)v->I);
  } else {
    RE_TRY(re_hf_size(c, o, w, "intermediate_size", 3072, &v->I));
  }
  if (v->fam == V_DINOV2_REG)
    RE_TRY(re_hf_size(c, o, w, "num_register_tokens", 4, &v->R));
  else if (re_hf_find(c, o, "num_register_tokens") >= 0) {
    int64_t r = 0;
    RE_TRY(re_hf_int(c, o, w, "num_register_tokens", 0, &r));
    if (r)
      return re_hf_fail(c, "register tokens ('%snum_register_tokens' %lld) need model_type dinov2_with_registers", w,
                        (long long)r);
  }
  if (v->fam == V_VIT) {
    RE_TRY(re_hf_size(c, o, w, "pooler_output_size", v->D, &v->pool_out));
    RE_TRY(re_hf_act(c, o, w, "pooler_act", "tanh", &v->pool_act));
  }
  if (v->D % v->H)
    return re_err(RE_EFORMAT, "%s: %shidden_size %lld is not divisible by %snum_attention_heads %lld", c->path, w,
                  (long long)v->D, w, (long long)v->H);
  return RE_OK;
}

/* A child named <base>.<name> of a container that may be unnamed. */
static re_status add_as(re_mod *parent, const char *base, const char *name, re_mod_type type, re_mod **out) {
  re_mod *m;
  RE_TRY(re_mod_new(base, name, type, &m));
  RE_TRY(re_mod_add(parent, m));
  *out = m;
  return RE_OK;
}

static re_status attention(re_mod *blk, const vis *v, const char *name, const char *const proj[4], re_mod **made) {
  re_mod *at;
  char why[160];
  int64_t D = v->D;
  snprintf(why, sizeof why, "%shidden_size %lld", v->where, (long long)D);
  RE_TRY(re_hf_add(blk, name, RE_MOD_ATTENTION, &at));
  at->heads = at->kv_heads = v->H;
  at->head_dim = D / v->H;
  at->causal = 0;
  at->attn_scale = 1.0 / sqrt((double)at->head_dim);
  at->qkv = RE_QKV_SEPARATE;
  for (int k = 0; k < 4; k++)
    RE_TRY(re_hf_linear(at, v->c, proj[k], D, D, k < 3 ? v->qkv_bias : 1, why, NULL));
  if (made)
    *made = at;
  return RE_OK;
}

static re_status vit_layer(re_mod *root, const vis *v, int64_t l, re_mod **made) {
  static const char *const proj[4] = {"attention.query", "attention.key", "attention.value", "output.dense"};
  const re_hf_config *c = v->c;
  char name[64], wi[160];
  re_mod *blk, *mlp, *mid, *m;
  snprintf(name, sizeof name, "encoder.layer.%lld", (long long)l);
  snprintf(wi, sizeof wi, "hidden_size %lld, intermediate_size %lld", (long long)v->D, (long long)v->I);
  RE_TRY(re_hf_add(root, name, RE_MOD_DECODER_BLOCK, &blk));
  RE_TRY(re_hf_layernorm(blk, c, "layernorm_before", v->D, v->eps, "hidden_size", NULL));
  RE_TRY(attention(blk, v, "attention", proj, NULL));
  RE_TRY(re_hf_layernorm(blk, c, "layernorm_after", v->D, v->eps, "hidden_size", NULL));
  RE_TRY(re_mod_new("", "", RE_MOD_SEQ, &mlp)); /* ViTIntermediate, then ViTOutput's dense (its residual is the block's) */
  RE_TRY(re_mod_add(blk, mlp));
  RE_TRY(add_as(mlp, blk->name, "intermediate", RE_MOD_SEQ, &mid));
  RE_TRY(re_hf_linear(mid, c, "dense", v->D, v->I, 1, wi, NULL));
  RE_TRY(re_hf_add(mid, "intermediate_act_fn", RE_MOD_ACT, &m));
  m->act = v->act;
  RE_TRY(add_as(mlp, blk->name, "output.dense", RE_MOD_LINEAR, &m));
  m->in = v->I, m->out = v->D, m->bias = 1;
  RE_TRY(re_hf_why(m, c, "%s", wi));
  *made = blk;
  return RE_OK;
}

static re_status dinov2_layer(re_mod *root, const vis *v, int64_t l, re_mod **made) {
  static const char *const proj[4] = {"attention.query", "attention.key", "attention.value", "output.dense"};
  const re_hf_config *c = v->c;
  char name[64], wi[200];
  re_mod *blk, *mlp, *m;
  snprintf(name, sizeof name, "encoder.layer.%lld", (long long)l);
  snprintf(wi, sizeof wi, "hidden_size %lld x mlp_ratio %g%s", (long long)v->D, v->mlp_ratio,
           v->swiglu ? ", use_swiglu_ffn" : "");
  RE_TRY(re_hf_add(root, name, RE_MOD_DECODER_BLOCK, &blk));
  RE_TRY(re_hf_layernorm(blk, c, "norm1", v->D, v->eps, "hidden_size", NULL));
  RE_TRY(attention(blk, v, "attention", proj, NULL));
  RE_TRY(re_hf_add(blk, "layer_scale1", RE_MOD_LAYER_SCALE, &m));
  m->param = "lambda1";
  RE_TRY(re_hf_layernorm(blk, c, "norm2", v->D, v->eps, "hidden_size", NULL));
  if (v->swiglu) { /* weights_out(silu(x1) * x2), [x1 | x2] = weights_in(x) */
    RE_TRY(re_hf_add(blk, "mlp", RE_MOD_GATED_MLP, &mlp));
    mlp->act = RE_ACT_SILU;
    RE_TRY(re_hf_linear(mlp, c, "weights_in", v->D, 2 * v->I, 1, wi, NULL));
    RE_TRY(re_hf_linear(mlp, c, "weights_out", v->I, v->D, 1, wi, NULL));
  } else {
    RE_TRY(re_hf_add(blk, "mlp", RE_MOD_SEQ, &mlp));
    RE_TRY(re_hf_linear(mlp, c, "fc1", v->D, v->I, 1, wi, NULL));
    RE_TRY(re_hf_add(mlp, "activation", RE_MOD_ACT, &m));
    m->act = v->act;
    RE_TRY(re_hf_linear(mlp, c, "fc2", v->I, v->D, 1, wi, NULL));
  }
  RE_TRY(re_hf_add(blk, "layer_scale2", RE_MOD_LAYER_SCALE, &m));
  m->param = "lambda1";
  *made = blk;
  return RE_OK;
}

static re_status clip_layer(re_mod *root, const vis *v, int64_t l, re_mod **made) {
  static const char *const proj[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
  const re_hf_config *c = v->c;
  char name[64], wi[200];
  re_mod *blk, *mlp, *m;
  snprintf(name, sizeof name, "encoder.layers.%lld", (long long)l);
  snprintf(wi, sizeof wi, "%shidden_size %lld, %sintermediate_size %lld", v->where, (long long)v->D, v->where,
           (long long)v->I);
  RE_TRY(re_hf_add(root, name, RE_MOD_DECODER_BLOCK, &blk));
  RE_TRY(re_hf_layernorm(blk, c, "layer_norm1", v->D, v->eps, "hidden_size", NULL));
  RE_TRY(attention(blk, v, "self_attn", proj, NULL));
  RE_TRY(re_hf_layernorm(blk, c, "layer_norm2", v->D, v->eps, "hidden_size", NULL));
  RE_TRY(re_hf_add(blk, "mlp", RE_MOD_SEQ, &mlp));
  RE_TRY(re_hf_linear(mlp, c, "fc1", v->D, v->I, 1, wi, NULL));
  RE_TRY(re_hf_add(mlp, "activation_fn", RE_MOD_ACT, &m));
  m->act = v->act;
  RE_TRY(re_hf_linear(mlp, c, "fc2", v->I, v->D, 1, wi, NULL));
  *made = blk;
  return RE_OK;
}

/* The first token of the previous output, as a module of its own (no parameters). */
static re_status take_first(re_mod *parent, re_mod **made) {
  RE_TRY(re_mod_new("", "", RE_MOD_TAKE_TOKEN, made));
  return re_mod_add(parent, *made);
}

re_status re_hf_build_vision(const re_hf_config *c, const char *type, const re_ckpt *ck, const re_shape *in,
                             re_mod *root) {
  vis v;
  memset(&v, 0, sizeof v);
  v.c = c;
  RE_TRY(read_config(&v, type));
  if (in->rank != 3)
    return re_err(RE_EINVAL, "%s: the model takes images (channels, height, width), got %d dimension%s per sample",
                  c->path, in->rank, in->rank == 1 ? "" : "s");
  if (in->d[0] != v.C)
    return re_err(RE_ESHAPE, "%s: images of %lld channels, but %snum_channels is %lld", c->path, (long long)in->d[0],
                  v.where, (long long)v.C);
  if (in->d[1] < v.patch || in->d[2] < v.patch)
    return re_err(RE_ESHAPE, "%s: %lld x %lld images are smaller than one patch (%spatch_size %lld)", c->path,
                  (long long)in->d[1], (long long)in->d[2], v.where, (long long)v.patch);
  static const char *const vit_p[] = {"", "vit.", NULL}, *const dino_p[] = {"", "dinov2.", NULL},
                           *const dinor_p[] = {"", "dinov2_with_registers.", NULL},
                           *const clip_p[] = {"", "vision_model.", NULL};
  const char *const *prefixes = v.fam == V_VIT ? vit_p : v.fam == V_DINOV2 ? dino_p : v.fam == V_CLIP ? clip_p : dinor_p;
  int clip = v.fam == V_CLIP;
  RE_TRY(re_hf_find_prefix(root, ck, prefixes,
                           clip ? "embeddings.patch_embedding.weight" : "embeddings.patch_embeddings.projection.weight"));
  root->hf = 1;
  re_mod *emb, *conv, *blk = NULL, *fin, *m, *pool;
  RE_TRY(re_hf_add(root, "embeddings", RE_MOD_PATCH_EMBED, &emb));
  emb->style = clip ? RE_VIT_CLIP : RE_VIT_HF;
  emb->has_cls = 1;
  emb->registers = v.R;
  emb->pos_prefix = 1;
  emb->patch = v.patch;
  emb->interp = v.fam == V_DINOV2 ? RE_INTERP_BICUBIC : v.fam == V_DINOV2_REG ? RE_INTERP_BICUBIC_AA : RE_INTERP_NONE;
  emb->image[0] = v.img[0], emb->image[1] = v.img[1];
  RE_TRY(re_hf_why(emb, c, "%simage_size %lld, %spatch_size %lld", v.where, (long long)v.img[0], v.where,
                   (long long)v.patch));
  RE_TRY(re_hf_add(emb, clip ? "patch_embedding" : "patch_embeddings.projection", RE_MOD_CONV2D, &conv));
  conv->k[0] = conv->k[1] = conv->s[0] = conv->s[1] = v.patch;
  conv->p[0] = conv->p[1] = 0;
  conv->in = v.C, conv->out = v.D;
  conv->bias = clip ? 0 : 1;
  if (clip) { /* CLIPVisionTransformer: pre_layrnorm before the encoder; hidden_states[0] is its output */
    RE_TRY(re_hf_layernorm(root, c, "pre_layrnorm", v.D, v.eps, "hidden_size", &m));
    RE_TRY(re_hf_alias(root, "hidden_states.0", m));
  } else {
    RE_TRY(re_hf_alias(root, "hidden_states.0", emb));
  }
  for (int64_t l = 0; l < v.L; l++) {
    char name[64];
    if (clip)
      RE_TRY(clip_layer(root, &v, l, &blk));
    else if (v.fam == V_VIT)
      RE_TRY(vit_layer(root, &v, l, &blk));
    else
      RE_TRY(dinov2_layer(root, &v, l, &blk));
    snprintf(name, sizeof name, "hidden_states.%lld", (long long)(l + 1));
    RE_TRY(re_hf_alias(root, name, blk)); /* the encoder's outputs, before any final norm */
  }
  if (clip) { /* last_hidden_state is the encoder's; pooler_output = post_layernorm(its class token) */
    RE_TRY(re_hf_alias(root, "last_hidden_state", blk));
    RE_TRY(take_first(root, &m));
    RE_TRY(re_hf_layernorm(root, c, "post_layernorm", v.D, v.eps, "hidden_size", &fin));
    return re_hf_alias(root, "pooler_output", fin);
  }
  RE_TRY(re_hf_layernorm(root, c, "layernorm", v.D, v.eps, "hidden_size", &fin));
  RE_TRY(re_hf_alias(root, "last_hidden_state", fin));
  if (v.fam != V_VIT) { /* Dinov2Model: pooler_output is the class token of last_hidden_state */
    RE_TRY(take_first(root, &m));
    return re_hf_alias(root, "pooler_output", m);
  }
  char key[512];
  snprintf(key, sizeof key, "%spooler.dense.weight", root->prefix);
  if (!re_hf_has_tensor(ck, key)) /* ViTModel(add_pooling_layer=False), ViTForImageClassification */
    return RE_OK;
  char why[200];
  snprintf(why, sizeof why, "hidden_size %lld, pooler_output_size %lld", (long long)v.D, (long long)v.pool_out);
  RE_TRY(re_hf_add(root, "pooler", RE_MOD_SEQ, &pool)); /* ViTPooler: act(dense(first token)) */
  RE_TRY(take_first(pool, &m));
  RE_TRY(re_hf_linear(pool, c, "dense", v.D, v.pool_out, 1, why, NULL));
  RE_TRY(re_hf_add(pool, "activation", RE_MOD_ACT, &m));
  m->act = v.pool_act;
  return re_hf_alias(root, "pooler_output", pool);
}

/* ---- timm ------------------------------------------------------------------------- */

/* timm's VisionTransformer (vision_transformer.py): patch_embed.proj, cls_token,
 * [reg_token], pos_embed, [norm_pre], blocks.N (norm1, attn.qkv, attn.proj, [ls1.gamma],
 * norm2, mlp.fc1, mlp.fc2, [ls2.gamma]), norm, [head]; LayerNorm eps 1e-6, exact GELU.
 * interp: what to do with another image size; image: the size it takes (0: the grid's). */
static re_status timm_tree(const re_ckpt *ck, int64_t heads, re_interp interp, const int64_t image[2],
                           re_mod *root) {
  const char *path = re_ckpt_path(ck);
  int64_t i;
  if (re_ckpt_find(ck, "patch_embed.proj.weight", &i) != RE_OK)
    return re_err(RE_EFORMAT, "%s: not a timm VisionTransformer state_dict (no tensor 'patch_embed.proj.weight')",
                  path);
  const re_tensor_info *ti = re_ckpt_info(ck, i);
  if (ti->ndim != 4 || ti->shape[2] != ti->shape[3] || ti->shape[2] < 1)
    return re_err(RE_EFORMAT, "%s: patch_embed.proj.weight must be (width, channels, patch, patch)", path);
  int64_t D = ti->shape[0], patch = ti->shape[2], depth = 0;
  char key[128];
  for (;; depth++) {
    snprintf(key, sizeof key, "blocks.%lld.norm1.weight", (long long)depth);
    if (!re_hf_has_tensor(ck, key))
      break;
  }
  if (depth == 0)
    return re_err(RE_EFORMAT, "%s: no blocks found (expected tensors named blocks.0.norm1.weight, ...)", path);
  if (!re_hf_has_tensor(ck, "cls_token"))
    return re_err(RE_EUNSUPPORTED, "%s: timm ViTs without a class token (class_token=False, tensor 'cls_token') "
                                   "are not supported",
                  path);
  if (!re_hf_has_tensor(ck, "norm.weight"))
    return re_err(RE_EUNSUPPORTED, "%s: timm ViTs without the final norm (tensor 'norm.weight'; global average "
                                   "pooling with fc_norm) are not supported",
                  path);
  if (heads == RE_UNSET)
    heads = D / 64 > 0 ? D / 64 : 1;
  if (D % heads)
    return re_err(RE_EINVAL, "%s: width %lld is not divisible by %lld heads", path, (long long)D, (long long)heads);
  root->hf = 1;
  RE_TRY(re_strdup("", &root->prefix));
  re_mod *emb, *conv, *blk = NULL, *m, *at, *mlp;
  RE_TRY(re_hf_add(root, "pos_drop", RE_MOD_PATCH_EMBED, &emb)); /* timm's module after the position embedding */
  emb->style = RE_VIT_TIMM;
  emb->has_cls = 1;
  emb->registers = -1; /* from reg_token, when present */
  emb->pos_prefix = -1;
  emb->patch = patch;
  emb->interp = interp;
  emb->image[0] = image[0], emb->image[1] = image[1];
  RE_TRY(re_mod_new("", "patch_embed.proj", RE_MOD_CONV2D, &conv));
  RE_TRY(re_mod_add(emb, conv));
  conv->k[0] = conv->k[1] = conv->s[0] = conv->s[1] = patch;
  conv->p[0] = conv->p[1] = 0;
  re_mod *first = emb;
  if (re_hf_has_tensor(ck, "norm_pre.weight")) /* pre_norm=True (CLIP-style timm models) */
    RE_TRY(re_hf_layernorm(root, NULL, "norm_pre", D, 1e-6, NULL, &first));
  RE_TRY(re_hf_alias(root, "hidden_states.0", first));
  for (int64_t l = 0; l < depth; l++) {
    char name[64];
    snprintf(name, sizeof name, "blocks.%lld", (long long)l);
    RE_TRY(re_hf_add(root, name, RE_MOD_DECODER_BLOCK, &blk));
    snprintf(key, sizeof key, "blocks.%lld.ls1.gamma", (long long)l);
    int ls = re_hf_has_tensor(ck, key); /* init_values: layer scales ls1, ls2 */
    RE_TRY(re_hf_layernorm(blk, NULL, "norm1", D, 1e-6, NULL, NULL));
    RE_TRY(re_hf_add(blk, "attn", RE_MOD_ATTENTION, &at));
    at->heads = at->kv_heads = heads;
    at->head_dim = D / heads;
    at->attn_scale = 1.0 / sqrt((double)at->head_dim);
    at->qkv = RE_QKV_FUSED;
    RE_TRY(re_hf_linear(at, NULL, "qkv", D, 3 * D, RE_UNSET, NULL, NULL));
    RE_TRY(re_hf_linear(at, NULL, "proj", D, D, RE_UNSET, NULL, NULL));
    if (ls) {
      RE_TRY(re_hf_add(blk, "ls1", RE_MOD_LAYER_SCALE, &m));
      m->param = "gamma";
    }
    RE_TRY(re_hf_layernorm(blk, NULL, "norm2", D, 1e-6, NULL, NULL));
    RE_TRY(re_hf_add(blk, "mlp", RE_MOD_SEQ, &mlp));
    RE_TRY(re_hf_linear(mlp, NULL, "fc1", D, RE_UNSET, RE_UNSET, NULL, NULL));
    RE_TRY(re_hf_add(mlp, "act", RE_MOD_ACT, &m));
    m->act = RE_ACT_GELU;
    RE_TRY(re_hf_linear(mlp, NULL, "fc2", RE_UNSET, D, RE_UNSET, NULL, NULL));
    if (ls) {
      RE_TRY(re_hf_add(blk, "ls2", RE_MOD_LAYER_SCALE, &m));
      m->param = "gamma";
    }
    snprintf(name, sizeof name, "hidden_states.%lld", (long long)(l + 1));
    RE_TRY(re_hf_alias(root, name, blk));
  }
  RE_TRY(re_hf_layernorm(root, NULL, "norm", D, 1e-6, NULL, &m));
  RE_TRY(re_hf_alias(root, "last_hidden_state", m));
  RE_TRY(take_first(root, &m)); /* forward_head(pre_logits=True) with global_pool 'token' */
  RE_TRY(re_hf_alias(root, "pooler_output", m));
  if (re_hf_has_tensor(ck, "head.weight"))
    RE_TRY(re_hf_linear(root, NULL, "head", D, RE_UNSET, RE_UNSET, NULL, NULL));
  return RE_OK;
}

re_status re_timm_vit_build(const re_ckpt *ck, int64_t heads, re_mod *root) {
  int64_t image[2] = {0, 0};
  return timm_tree(ck, heads, RE_INTERP_NONE, image, root);
}

/* timm's config.json (save_for_hf / the hub's timm folders): "architecture", optional
 * "model_args" (img_size, num_heads, ...) and "pretrained_cfg" (input_size). */
static re_status timm_folder(const re_hf_config *c, const re_ckpt *ck, const re_shape *in, re_mod *root) {
  int64_t args = re_hf_find(c, 0, "model_args"), heads = RE_UNSET, image[2] = {0, 0};
  const char *pool = "token";
  int dyn = 0, cls = 1;
  RE_TRY(re_hf_str(c, 0, "", "global_pool", "token", &pool));
  if (args >= 0 && c->json.nodes[args].type == RE_JSON_OBJECT) {
    RE_TRY(re_hf_int(c, args, "model_args.", "num_heads", RE_UNSET, &heads));
    if (heads == 0)
      return re_err(RE_EFORMAT, "%s: key 'model_args.num_heads' must be positive", c->path);
    if (re_hf_find(c, args, "img_size") >= 0)
      RE_TRY(size_pair(c, args, "model_args.", "img_size", 224, image));
    RE_TRY(re_hf_str(c, args, "model_args.", "global_pool", pool, &pool));
    RE_TRY(re_hf_bool(c, args, "model_args.", "dynamic_img_size", 0, &dyn));
    RE_TRY(re_hf_bool(c, args, "model_args.", "class_token", 1, &cls));
    static const char *const refused[] = {"qk_norm", "dynamic_img_pad", "fc_norm", NULL};
    for (int k = 0; refused[k]; k++) {
      int on = 0;
      RE_TRY(re_hf_bool(c, args, "model_args.", refused[k], 0, &on));
      if (on)
        return re_hf_fail(c, "timm option 'model_args.%s' is not supported", refused[k]);
    }
    const char *act = NULL;
    RE_TRY(re_hf_str(c, args, "model_args.", "act_layer", "gelu", &act));
    if (strcmp(act, "gelu"))
      return re_hf_fail(c, "timm 'model_args.act_layer' '%s' is not supported (gelu)", act);
  }
  if (strcmp(pool, "token"))
    return re_hf_fail(c, "timm global_pool '%s' is not supported (token: the class token)", pool);
  if (!cls)
    return re_hf_fail(c, "timm ViTs without a class token ('model_args.class_token' false) are not supported");
  if (image[0] == 0) { /* pretrained_cfg.input_size [C, H, W] */
    int64_t pc = re_hf_find(c, 0, "pretrained_cfg"), is = pc >= 0 ? re_hf_find(c, pc, "input_size") : -1;
    if (is >= 0 && c->json.nodes[is].type == RE_JSON_ARRAY) {
      int64_t k = c->json.nodes[is].first, n = 0, v[3] = {0, 0, 0};
      for (; k >= 0 && n < 3; k = c->json.nodes[k].next, n++)
        v[n] = c->json.nodes[k].type == RE_JSON_NUMBER && c->json.nodes[k].num_kind == RE_JSON_NUM_UINT
                   ? c->json.nodes[k].num
                   : 0;
      if (n == 3 && v[1] > 0 && v[2] > 0 && v[1] <= 65536 && v[2] <= 65536)
        image[0] = v[1], image[1] = v[2];
    }
  }
  if (in->rank != 3)
    return re_err(RE_EINVAL, "%s: the model takes images (channels, height, width), got %d dimension%s per sample",
                  c->path, in->rank, in->rank == 1 ? "" : "s");
  /* dynamic_img_size: timm resamples pos_embed (bicubic, antialias) to the image's grid */
  re_status st = timm_tree(ck, heads, dyn ? RE_INTERP_BICUBIC_AA : RE_INTERP_NONE, image, root);
  if (st == RE_OK)
    for (int64_t k = 0; k < root->n; k++)
      if (root->child[k]->type == RE_MOD_PATCH_EMBED)
        st = re_hf_why(root->child[k], c, "model_args.img_size or pretrained_cfg.input_size %lld x %lld",
                       (long long)image[0], (long long)image[1]);
  return st;
}

re_status re_hf_build_timm(const re_hf_config *c, const re_ckpt *ck, const re_shape *in, re_mod *root) {
  return timm_folder(c, ck, in, root);
}
