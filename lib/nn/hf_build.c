/* Module trees of Hugging Face models from their config.json: the family table and
 * dispatch (encoders in hf_bert.c, vision transformers in hf_vision.c), and the decoders
 * GPT-2, GPT-NeoX (Pythia), Llama 2/3, Mistral and Qwen2. Every module is named as in the
 * transformers state_dict of the base model (h.0.attn.c_attn, layers.3.self_attn.q_proj),
 * every size comes from the config and is checked against the tensors at bind time.
 * Formulas: GPT-2 (Radford et al. 2019), GPT-NeoX (Black et al. 2022), Llama
 * (Touvron et al. 2023), rotary embeddings (Su et al. 2021) in transformers'
 * rotate_half layout. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf.h"

typedef enum family { F_GPT2, F_NEOX, F_LLAMA, F_MISTRAL, F_QWEN2, F_BERT, F_VISION, F_TIMM } family;

static const struct {
  const char *type;
  family fam;
  const char *classes[4]; /* `architectures` names, used when model_type is absent */
} FAMILIES[] = {
    {"gpt2", F_GPT2, {"GPT2Model", "GPT2LMHeadModel", NULL}},
    {"gpt_neox", F_NEOX, {"GPTNeoXModel", "GPTNeoXForCausalLM", NULL}},
    {"llama", F_LLAMA, {"LlamaModel", "LlamaForCausalLM", NULL}},
    {"mistral", F_MISTRAL, {"MistralModel", "MistralForCausalLM", NULL}},
    {"qwen2", F_QWEN2, {"Qwen2Model", "Qwen2ForCausalLM", NULL}},
    {"bert", F_BERT, {"BertModel", "BertForMaskedLM", "BertForPreTraining", NULL}},
    {"roberta", F_BERT, {"RobertaModel", "RobertaForMaskedLM", NULL}},
    {"xlm-roberta", F_BERT, {"XLMRobertaModel", "XLMRobertaForMaskedLM", NULL}},
    {"vit", F_VISION, {"ViTModel", "ViTForImageClassification", NULL}},
    {"dinov2", F_VISION, {"Dinov2Model", NULL}},
    {"dinov2_with_registers", F_VISION, {"Dinov2WithRegistersModel", NULL}},
    {"clip_vision_model", F_VISION, {"CLIPVisionModel", "CLIPVisionModelWithProjection", NULL}},
    {"clip", F_VISION, {"CLIPModel", NULL}},
    {"timm_vit", F_TIMM, {NULL}}, /* timm's config.json: no model_type, "architecture": "vit_..." */
};
#define NFAM (sizeof FAMILIES / sizeof FAMILIES[0])

typedef struct arch {
  const re_hf_config *c;
  family fam;
  const char *type;
  int64_t vocab, D, L, H, Hkv, hd, I, P;
  const char *kD, *kL, *kH, *kI, *kP; /* config keys behind the sizes, for messages */
  double eps;
  re_act act;
  int qkv_bias, o_bias, mlp_bias, parallel, inv_layer_scale;
  double scale;
  int64_t rot_dim;
  double theta;
  const char *rope_type;
  double factor, low, high, orig;
} arch;

/* ---- small helpers ------------------------------------------------------- */

static re_status fail(const arch *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static re_status fail(const arch *a, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return re_err(RE_EUNSUPPORTED, "%s: %s", a->c->path, msg);
}

static re_status set_why(re_mod *m, const arch *a, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static re_status set_why(re_mod *m, const arch *a, const char *fmt, ...) {
  char msg[512], full[1600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(full, sizeof full, "(%s: %s)", a->c->path, msg);
  free(m->why);
  m->why = NULL;
  return re_strdup(full, &m->why);
}

static re_status add(re_mod *parent, const char *name, re_mod_type type, re_mod **out) {
  re_mod *m;
  RE_TRY(re_mod_new(parent->name, name, type, &m));
  RE_TRY(re_mod_add(parent, m));
  *out = m;
  return RE_OK;
}

static re_status alias(re_mod *root, const char *name, re_mod *target) {
  RE_TRY(re_realloc(&root->alias, root->nalias + 1, sizeof(re_alias)));
  root->alias[root->nalias].target = target;
  RE_TRY(re_strdup(name, &root->alias[root->nalias].name));
  root->nalias++;
  return RE_OK;
}

static re_status linear(re_mod *parent, const arch *a, const char *name, int64_t in, int64_t out, int bias,
                        int weight_t, const char *why, re_mod **made) {
  re_mod *m;
  RE_TRY(add(parent, name, RE_MOD_LINEAR, &m));
  m->in = in;
  m->out = out;
  m->bias = bias;
  m->weight_t = weight_t;
  RE_TRY(set_why(m, a, "%s", why));
  if (made)
    *made = m;
  return RE_OK;
}

static re_status norm(re_mod *parent, const arch *a, const char *name, re_mod **made) {
  re_mod *m;
  int rms = a->fam == F_LLAMA || a->fam == F_MISTRAL || a->fam == F_QWEN2;
  RE_TRY(add(parent, name, rms ? RE_MOD_RMSNORM : RE_MOD_LAYERNORM, &m));
  m->out = a->D;
  m->eps = a->eps;
  RE_TRY(set_why(m, a, "%s %lld", a->kD, (long long)a->D));
  if (made)
    *made = m;
  return RE_OK;
}

static int has_tensor(const re_ckpt *ck, const char *name) {
  int64_t i;
  re_status st = re_ckpt_find(ck, name, &i);
  re_err_clear();
  return st == RE_OK;
}

/* ---- config ---------------------------------------------------------------- */

static re_status act_of(const arch *a, const char *key, const char *dflt, re_act *out) {
  return re_hf_act(a->c, 0, "", key, dflt, out);
}

#define MAX_SIZE (1 << 30)       /* any size in a config */
#define MAX_HEAD_WIDTH (1 << 16) /* per attention head */

static re_status positive(const arch *a, const char *key, int64_t dflt, int64_t *out) {
  RE_TRY(re_hf_int(a->c, 0, "", key, dflt, out));
  if (*out < 1)
    return re_err(RE_EFORMAT, "%s: key '%s' %s", a->c->path, key, *out == 0 ? "must be positive" : "is missing");
  if (*out > MAX_SIZE)
    return re_err(RE_EFORMAT, "%s: key '%s' is %lld, more than %d", a->c->path, key, (long long)*out, MAX_SIZE);
  return RE_OK;
}

/* A positive finite number (epsilons, bases, factors). */
static re_status positive_num(const arch *a, int64_t obj, const char *where, const char *key, double dflt,
                              double *out) {
  RE_TRY(re_hf_num(a->c, obj, where, key, dflt, out));
  if (!(*out > 0) || !isfinite(*out))
    return re_err(RE_EFORMAT, "%s: key '%s%s' must be a positive finite number, got %g", a->c->path, where, key,
                  *out);
  return RE_OK;
}

static re_status head_width(const arch *a) {
  if (a->hd > MAX_HEAD_WIDTH)
    return re_err(RE_EFORMAT, "%s: heads of %lld features (%s / %s, or head_dim) are wider than %d", a->c->path,
                  (long long)a->hd, a->kD, a->kH, MAX_HEAD_WIDTH);
  return RE_OK;
}

/* Features no module here implements, refused by their key before anything else. */
static re_status refuse_features(const arch *a) {
  static const char *const experts[] = {"num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts"};
  for (size_t k = 0; k < sizeof experts / sizeof experts[0]; k++) {
    int64_t n = re_hf_find(a->c, 0, experts[k]);
    if (n >= 0 && !(a->c->json.nodes[n].type == RE_JSON_NUMBER && a->c->json.nodes[n].num == 0))
      return fail(a, "mixture-of-experts layers ('%s') are not supported", experts[k]);
  }
  int alibi = 0, cross = 0, encdec = 0;
  const char *pe = NULL;
  RE_TRY(re_hf_bool(a->c, 0, "", "alibi", 0, &alibi));
  RE_TRY(re_hf_str(a->c, 0, "", "position_embedding_type", "absolute", &pe));
  if (alibi || !strcmp(pe, "alibi"))
    return fail(a, "ALiBi attention biases ('%s') are not supported", alibi ? "alibi" : "position_embedding_type");
  RE_TRY(re_hf_bool(a->c, 0, "", "add_cross_attention", 0, &cross));
  RE_TRY(re_hf_bool(a->c, 0, "", "is_encoder_decoder", 0, &encdec));
  if (cross || encdec)
    return fail(a, "cross-attention ('%s' is true) is not supported", cross ? "add_cross_attention"
                                                                             : "is_encoder_decoder");
  return RE_OK;
}

/* Rotary settings from rope_parameters (transformers 5) or rope_theta / rope_scaling
 * (transformers 4); theta_key is the family's own name of the base. */
static re_status rope_config(arch *a, const char *theta_key, double partial_dflt, const char *partial_key) {
  const re_hf_config *c = a->c;
  int64_t rp = re_hf_find(c, 0, "rope_parameters"), rs = re_hf_find(c, 0, "rope_scaling");
  int64_t obj = rp >= 0 ? rp : rs;
  const char *where = rp >= 0 ? "rope_parameters." : "rope_scaling.";
  if (obj >= 0 && c->json.nodes[obj].type != RE_JSON_OBJECT)
    return re_err(RE_EFORMAT, "%s: key '%s' must be an object", c->path, rp >= 0 ? "rope_parameters" : "rope_scaling");
  RE_TRY(positive_num(a, 0, "", theta_key, 10000.0, &a->theta));
  double partial = partial_dflt;
  if (partial_key)
    RE_TRY(re_hf_num(c, 0, "", partial_key, partial, &partial));
  a->rope_type = "default";
  if (obj >= 0) {
    RE_TRY(positive_num(a, obj, where, "rope_theta", a->theta, &a->theta));
    RE_TRY(re_hf_num(c, obj, where, "partial_rotary_factor", partial, &partial));
    const char *t = NULL;
    RE_TRY(re_hf_str(c, obj, where, "type", "default", &t));
    RE_TRY(re_hf_str(c, obj, where, "rope_type", t, &a->rope_type));
  }
  if (!(partial > 0 && partial <= 1)) /* also refuses NaN */
    return re_err(RE_EFORMAT, "%s: the rotary fraction (%s) must be in (0, 1], got %g", c->path,
                  partial_key ? partial_key : "partial_rotary_factor", partial);
  a->rot_dim = (int64_t)((double)a->hd * partial);
  if (a->rot_dim < 2 || a->rot_dim % 2)
    return fail(a, "rotary width %lld (head width %lld x %g) must be even and at least 2", (long long)a->rot_dim,
                (long long)a->hd, partial);
  if (a->fam != F_NEOX && a->rot_dim != a->hd)
    return fail(a, "partial rotary embeddings (partial_rotary_factor %g) are not supported for %s", partial, a->type);
  if (!strcmp(a->rope_type, "default"))
    return RE_OK;
  if (!strcmp(a->rope_type, "linear") || !strcmp(a->rope_type, "llama3")) {
    RE_TRY(positive_num(a, obj, where, "factor", 0.0, &a->factor));
    if (!strcmp(a->rope_type, "llama3")) {
      RE_TRY(positive_num(a, obj, where, "low_freq_factor", 0.0, &a->low));
      RE_TRY(positive_num(a, obj, where, "high_freq_factor", 0.0, &a->high));
      RE_TRY(positive_num(a, obj, where, "original_max_position_embeddings", (double)a->P, &a->orig));
      if (!(a->high > a->low))
        return re_err(RE_EFORMAT, "%s: rope_type llama3 needs '%shigh_freq_factor' above '%slow_freq_factor'",
                      c->path, where, where);
    }
    return RE_OK;
  }
  return fail(a, "'%s%s' '%s' is not supported (default, linear, llama3)", where,
              re_hf_find(c, obj, "rope_type") >= 0 ? "rope_type" : "type", a->rope_type);
}

/* inv_freq as transformers computes it, in float32: 1 / base^(2i/d), then the scaling. */
static re_status rope_inv(const arch *a, re_mod *root) {
  int64_t half = a->rot_dim / 2;
  RE_TRY(re_malloc(half, sizeof(float), &root->rope_inv));
  root->rope_half = half;
  for (int64_t i = 0; i < half; i++) {
    float e = (float)(2 * i) / (float)a->rot_dim;
    float inv = 1.0f / powf((float)a->theta, e);
    if (!strcmp(a->rope_type, "linear")) {
      inv = inv / (float)a->factor;
    } else if (!strcmp(a->rope_type, "llama3")) { /* wavelength-dependent interpolation (Llama 3.1) */
      float factor = (float)a->factor, low = (float)a->low, orig = (float)a->orig;
      float low_wl = (float)(a->orig / a->low), high_wl = (float)(a->orig / a->high);
      float wl = (float)(2.0 * 3.14159265358979323846) / inv;
      float scaled = wl > low_wl ? inv / factor : inv;
      float smooth = (orig / wl - low) / (float)(a->high - a->low);
      float smoothed = (1.0f - smooth) * scaled / factor + smooth * scaled;
      inv = (!(wl < high_wl) && !(wl > low_wl)) ? smoothed : scaled;
    }
    root->rope_inv[i] = inv;
  }
  return RE_OK;
}

static re_status read_gpt2(arch *a) {
  const re_hf_config *c = a->c;
  a->kD = "n_embd", a->kL = "n_layer", a->kH = "n_head", a->kI = "n_inner", a->kP = "n_positions";
  RE_TRY(positive(a, "vocab_size", -1, &a->vocab));
  RE_TRY(positive(a, "n_embd", -1, &a->D));
  RE_TRY(positive(a, "n_layer", -1, &a->L));
  RE_TRY(positive(a, "n_head", -1, &a->H));
  RE_TRY(positive(a, "n_positions", -1, &a->P));
  RE_TRY(positive(a, "n_inner", 4 * a->D, &a->I));
  RE_TRY(positive_num(a, 0, "", "layer_norm_epsilon", 1e-5, &a->eps));
  RE_TRY(act_of(a, "activation_function", "gelu_new", &a->act));
  int scale_weights = 1;
  RE_TRY(re_hf_bool(c, 0, "", "scale_attn_weights", 1, &scale_weights));
  RE_TRY(re_hf_bool(c, 0, "", "scale_attn_by_inverse_layer_idx", 0, &a->inv_layer_scale));
  if (a->D % a->H)
    return re_err(RE_EFORMAT, "%s: n_embd %lld is not divisible by n_head %lld", c->path, (long long)a->D,
                  (long long)a->H);
  a->Hkv = a->H;
  a->hd = a->D / a->H;
  a->scale = scale_weights ? 1.0 / sqrt((double)a->hd) : 1.0;
  return head_width(a);
}

static re_status read_neox(arch *a) {
  const re_hf_config *c = a->c;
  a->kD = "hidden_size", a->kL = "num_hidden_layers", a->kH = "num_attention_heads", a->kI = "intermediate_size";
  a->kP = "max_position_embeddings";
  RE_TRY(positive(a, "vocab_size", -1, &a->vocab));
  RE_TRY(positive(a, "hidden_size", -1, &a->D));
  RE_TRY(positive(a, "num_hidden_layers", -1, &a->L));
  RE_TRY(positive(a, "num_attention_heads", -1, &a->H));
  RE_TRY(positive(a, "intermediate_size", -1, &a->I));
  RE_TRY(positive(a, "max_position_embeddings", -1, &a->P));
  RE_TRY(positive_num(a, 0, "", "layer_norm_eps", 1e-5, &a->eps));
  RE_TRY(act_of(a, "hidden_act", "gelu", &a->act));
  RE_TRY(re_hf_bool(c, 0, "", "use_parallel_residual", 1, &a->parallel));
  RE_TRY(re_hf_bool(c, 0, "", "attention_bias", 1, &a->qkv_bias));
  a->o_bias = a->qkv_bias;
  a->mlp_bias = 1;
  if (a->D % a->H)
    return re_err(RE_EFORMAT, "%s: hidden_size %lld is not divisible by num_attention_heads %lld", c->path,
                  (long long)a->D, (long long)a->H);
  a->Hkv = a->H;
  a->hd = a->D / a->H;
  a->scale = 1.0 / sqrt((double)a->hd);
  RE_TRY(head_width(a));
  return rope_config(a, "rotary_emb_base", 0.25, "rotary_pct");
}

static re_status read_llama(arch *a) {
  const re_hf_config *c = a->c;
  a->kD = "hidden_size", a->kL = "num_hidden_layers", a->kH = "num_attention_heads", a->kI = "intermediate_size";
  a->kP = "max_position_embeddings";
  RE_TRY(positive(a, "vocab_size", -1, &a->vocab));
  RE_TRY(positive(a, "hidden_size", -1, &a->D));
  RE_TRY(positive(a, "num_hidden_layers", -1, &a->L));
  RE_TRY(positive(a, "num_attention_heads", -1, &a->H));
  RE_TRY(positive(a, "num_key_value_heads", a->H, &a->Hkv));
  RE_TRY(positive(a, "intermediate_size", -1, &a->I));
  RE_TRY(positive(a, "max_position_embeddings", -1, &a->P));
  if (re_hf_find(c, 0, "head_dim") < 0 && a->D % a->H)
    return re_err(RE_EFORMAT, "%s: hidden_size %lld is not divisible by num_attention_heads %lld (and no head_dim)",
                  c->path, (long long)a->D, (long long)a->H);
  RE_TRY(positive(a, "head_dim", a->D / a->H, &a->hd));
  if (a->H % a->Hkv)
    return re_err(RE_EFORMAT, "%s: num_attention_heads %lld is not a multiple of num_key_value_heads %lld", c->path,
                  (long long)a->H, (long long)a->Hkv);
  RE_TRY(positive_num(a, 0, "", "rms_norm_eps", 1e-6, &a->eps));
  RE_TRY(act_of(a, "hidden_act", "silu", &a->act));
  if (a->fam == F_LLAMA) {
    RE_TRY(re_hf_bool(c, 0, "", "attention_bias", 0, &a->qkv_bias));
    RE_TRY(re_hf_bool(c, 0, "", "mlp_bias", 0, &a->mlp_bias));
    a->o_bias = a->qkv_bias;
  } else if (a->fam == F_QWEN2) { /* q, k, v with bias, o without (Qwen2Attention) */
    a->qkv_bias = 1;
  }
  a->scale = 1.0 / sqrt((double)a->hd);
  RE_TRY(head_width(a));
  return rope_config(a, "rope_theta", 1.0, NULL);
}

/* Sliding-window attention changes nothing while the sequence fits in the window. */
static re_status check_window(const arch *a, int64_t T) {
  const re_hf_config *c = a->c;
  int64_t w = 0;
  int use = a->fam == F_MISTRAL;
  if (a->fam != F_MISTRAL && a->fam != F_QWEN2)
    return RE_OK;
  RE_TRY(re_hf_int(c, 0, "", "sliding_window", 0, &w));
  if (a->fam == F_QWEN2) {
    int64_t mwl = a->L, lt = re_hf_find(c, 0, "layer_types");
    RE_TRY(re_hf_bool(c, 0, "", "use_sliding_window", 0, &use));
    RE_TRY(re_hf_int(c, 0, "", "max_window_layers", a->L, &mwl));
    if (use && lt >= 0) { /* sliding only where a layer says so */
      int any = 0;
      for (int64_t k = c->json.nodes[lt].first; k >= 0; k = c->json.nodes[k].next)
        any |= c->json.nodes[k].type == RE_JSON_STRING && !strcmp(c->json.nodes[k].str, "sliding_attention");
      use = any;
    } else if (use) {
      use = mwl < a->L;
    }
  }
  if (use && w > 0 && T > w)
    return fail(a, "sliding-window attention (sliding_window %lld) is not supported for sequences longer than the "
                   "window (%lld tokens)",
                (long long)w, (long long)T);
  return RE_OK;
}

/* ---- trees ------------------------------------------------------------------- */

static re_status attention(re_mod *blk, const arch *a, const char *name, int64_t layer, re_mod *root) {
  re_mod *at;
  char why[256];
  RE_TRY(add(blk, name, RE_MOD_ATTENTION, &at));
  at->heads = a->H;
  at->kv_heads = a->Hkv;
  at->head_dim = a->hd;
  at->causal = 1;
  at->attn_scale = a->scale / (a->inv_layer_scale ? (double)(layer + 1) : 1.0);
  at->rot_dim = a->fam == F_GPT2 ? 0 : a->rot_dim;
  at->rope_owner = root;
  int64_t D = a->D, q = a->H * a->hd, kv = a->Hkv * a->hd;
  if (a->fam == F_GPT2) {
    at->qkv = RE_QKV_FUSED;
    snprintf(why, sizeof why, "n_embd %lld", (long long)D);
    RE_TRY(linear(at, a, "c_attn", D, 3 * D, 1, 1, why, NULL));
    RE_TRY(linear(at, a, "c_proj", D, D, 1, 1, why, NULL));
  } else if (a->fam == F_NEOX) {
    at->qkv = RE_QKV_FUSED_HEADS;
    snprintf(why, sizeof why, "hidden_size %lld, attention_bias %s", (long long)D, a->qkv_bias ? "true" : "false");
    RE_TRY(linear(at, a, "query_key_value", D, 3 * D, a->qkv_bias, 0, why, NULL));
    RE_TRY(linear(at, a, "dense", D, D, a->o_bias, 0, why, NULL));
  } else {
    at->qkv = RE_QKV_SEPARATE;
    char wq[256], wkv[256], wo[256];
    snprintf(wq, sizeof wq, "num_attention_heads %lld x head_dim %lld, hidden_size %lld", (long long)a->H,
             (long long)a->hd, (long long)D);
    snprintf(wkv, sizeof wkv, "num_key_value_heads %lld x head_dim %lld, hidden_size %lld", (long long)a->Hkv,
             (long long)a->hd, (long long)D);
    snprintf(wo, sizeof wo, "hidden_size %lld, num_attention_heads %lld x head_dim %lld", (long long)D,
             (long long)a->H, (long long)a->hd);
    RE_TRY(linear(at, a, "q_proj", D, q, a->qkv_bias, 0, wq, NULL));
    RE_TRY(linear(at, a, "k_proj", D, kv, a->qkv_bias, 0, wkv, NULL));
    RE_TRY(linear(at, a, "v_proj", D, kv, a->qkv_bias, 0, wkv, NULL));
    RE_TRY(linear(at, a, "o_proj", q, D, a->o_bias, 0, wo, NULL));
  }
  return RE_OK;
}

static re_status mlp(re_mod *blk, const arch *a) {
  re_mod *m, *act;
  char why[256];
  snprintf(why, sizeof why, "%s %lld, %s %lld", a->kD, (long long)a->D, a->kI, (long long)a->I);
  if (a->fam == F_GPT2 || a->fam == F_NEOX) {
    int gpt2 = a->fam == F_GPT2;
    RE_TRY(add(blk, "mlp", RE_MOD_SEQ, &m));
    RE_TRY(linear(m, a, gpt2 ? "c_fc" : "dense_h_to_4h", a->D, a->I, 1, gpt2, why, NULL));
    RE_TRY(add(m, "act", RE_MOD_ACT, &act));
    act->act = a->act;
    RE_TRY(linear(m, a, gpt2 ? "c_proj" : "dense_4h_to_h", a->I, a->D, 1, gpt2, why, NULL));
    return RE_OK;
  }
  RE_TRY(add(blk, "mlp", RE_MOD_GATED_MLP, &m));
  m->act = a->act;
  RE_TRY(linear(m, a, "gate_proj", a->D, a->I, a->mlp_bias, 0, why, NULL));
  RE_TRY(linear(m, a, "up_proj", a->D, a->I, a->mlp_bias, 0, why, NULL));
  RE_TRY(linear(m, a, "down_proj", a->I, a->D, a->mlp_bias, 0, why, NULL));
  return RE_OK;
}

static const char *embed_name(family f) {
  return f == F_GPT2 ? "wte" : f == F_NEOX ? "embed_in" : "embed_tokens";
}

static re_status build(const arch *a, const re_ckpt *ck, re_mod *root) {
  static const char *const prefixes[] = {"", "model.", "transformer.", "gpt_neox.", NULL};
  char key[256];
  for (int k = 0; prefixes[k]; k++) {
    snprintf(key, sizeof key, "%s%s.weight", prefixes[k], embed_name(a->fam));
    if (has_tensor(ck, key)) {
      RE_TRY(re_strdup(prefixes[k], &root->prefix));
      break;
    }
  }
  if (!root->prefix)
    RE_TRY(re_strdup("", &root->prefix));
  root->tokens = 1;
  root->hf = 1;
  root->vocab = a->vocab;
  RE_TRY(set_why(root, a, "vocab_size %lld", (long long)a->vocab)); /* for errors about token ids */
  if (a->fam != F_GPT2)
    RE_TRY(rope_inv(a, root));
  re_mod *emb, *e, *blk, *m, *fin;
  RE_TRY(re_mod_new("", "", RE_MOD_EMBED_SUM, &emb)); /* hidden_states.0: the embeddings' sum */
  RE_TRY(re_mod_add(root, emb));
  RE_TRY(add(emb, embed_name(a->fam), RE_MOD_EMBEDDING, &e));
  e->in = a->vocab, e->out = a->D;
  RE_TRY(set_why(e, a, "vocab_size %lld, %s %lld", (long long)a->vocab, a->kD, (long long)a->D));
  if (a->fam == F_GPT2) {
    RE_TRY(add(emb, "wpe", RE_MOD_EMBEDDING, &e));
    e->in = a->P, e->out = a->D, e->positions = RE_EMBED_POSITIONS;
    RE_TRY(set_why(e, a, "n_positions %lld, n_embd %lld", (long long)a->P, (long long)a->D));
  }
  RE_TRY(alias(root, "hidden_states.0", emb));
  const char *list = a->fam == F_GPT2 ? "h" : "layers";
  for (int64_t l = 0; l < a->L; l++) {
    char name[64];
    snprintf(name, sizeof name, "%s.%lld", list, (long long)l);
    RE_TRY(add(root, name, RE_MOD_DECODER_BLOCK, &blk));
    blk->residual = a->parallel ? RE_RESIDUAL_PARALLEL : RE_RESIDUAL_SEQUENTIAL;
    if (a->fam == F_GPT2) {
      RE_TRY(norm(blk, a, "ln_1", &m));
      RE_TRY(attention(blk, a, "attn", l, root));
      RE_TRY(norm(blk, a, "ln_2", &m));
    } else {
      RE_TRY(norm(blk, a, "input_layernorm", &m));
      RE_TRY(attention(blk, a, a->fam == F_NEOX ? "attention" : "self_attn", l, root));
      RE_TRY(norm(blk, a, "post_attention_layernorm", &m));
    }
    RE_TRY(mlp(blk, a));
    if (l + 1 < a->L) {
      snprintf(name, sizeof name, "hidden_states.%lld", (long long)(l + 1));
      RE_TRY(alias(root, name, blk));
    }
  }
  RE_TRY(norm(root, a, a->fam == F_GPT2 ? "ln_f" : a->fam == F_NEOX ? "final_layer_norm" : "norm", &fin));
  snprintf(key, sizeof key, "hidden_states.%lld", (long long)a->L);
  RE_TRY(alias(root, key, fin)); /* transformers' last hidden state has the final norm */
  RE_TRY(alias(root, "last_hidden_state", fin));
  return RE_OK;
}

/* timm's config.json names the architecture ("vit_base_patch16_224"); VisionTransformer
 * builds vit_*, deit_* and deit3_* (distilled DeiTs have a second token: refused by their
 * tensors). */
static re_status timm_type(const re_hf_config *c, const char *arch_name, const char **type) {
  static const char *const ok[] = {"vit_", "deit_", "deit3_", NULL};
  for (int k = 0; ok[k]; k++)
    if (!strncmp(arch_name, ok[k], strlen(ok[k]))) {
      *type = "timm_vit";
      return RE_OK;
    }
  return re_err(RE_EUNSUPPORTED, "%s: timm architecture '%s' is not supported (VisionTransformer: vit_*, deit_*, "
                                 "deit3_*)",
                c->path, arch_name);
}

re_status re_hf_model_type(const re_hf_config *c, const char **type) {
  const char *mt = NULL, *timm = NULL;
  RE_TRY(re_hf_str(c, 0, "", "model_type", NULL, &mt));
  if (!mt) {
    RE_TRY(re_hf_str(c, 0, "", "architecture", NULL, &timm));
    if (timm)
      return timm_type(c, timm, type);
  }
  if (!mt) { /* older folders: the class name */
    int64_t ar = re_hf_find(c, 0, "architectures");
    if (ar >= 0 && c->json.nodes[ar].type == RE_JSON_ARRAY && c->json.nodes[ar].first >= 0 &&
        c->json.nodes[c->json.nodes[ar].first].type == RE_JSON_STRING) {
      const char *cls = c->json.nodes[c->json.nodes[ar].first].str;
      for (size_t f = 0; f < NFAM; f++)
        for (int k = 0; FAMILIES[f].classes[k]; k++)
          if (!strcmp(cls, FAMILIES[f].classes[k]))
            mt = FAMILIES[f].type;
      if (!mt)
        return re_err(RE_EUNSUPPORTED, "%s: no 'model_type', and architectures[0] '%s' is not a supported class",
                      c->path, cls);
    } else {
      return re_err(RE_EFORMAT, "%s: no 'model_type' (nor 'architectures') says which model this is", c->path);
    }
  }
  for (size_t f = 0; f < NFAM; f++)
    if (!strcmp(mt, FAMILIES[f].type) && FAMILIES[f].fam != F_TIMM) {
      *type = FAMILIES[f].type;
      return RE_OK;
    }
  char known[512] = "";
  size_t used = 0;
  for (size_t f = 0; f < NFAM; f++)
    if (FAMILIES[f].fam != F_TIMM)
      used += (size_t)snprintf(known + used, sizeof known - used, "%s%s", f ? ", " : "", FAMILIES[f].type);
  return re_err(RE_EUNSUPPORTED, "%s: model_type '%s' is not supported (supported: %s; and timm ViT folders)",
                c->path, mt, known);
}

static family family_of(const char *type) {
  for (size_t f = 0; f < NFAM; f++)
    if (!strcmp(type, FAMILIES[f].type))
      return FAMILIES[f].fam;
  return F_GPT2;
}

int re_hf_takes_tokens(const re_hf_config *c) {
  const char *type;
  if (re_hf_model_type(c, &type) != RE_OK) {
    re_err_clear();
    return 1;
  }
  family f = family_of(type);
  return f != F_VISION && f != F_TIMM;
}

int re_hf_image_input(const re_hf_config *c, int64_t *dims) {
  const char *type;
  if (re_hf_model_type(c, &type) != RE_OK || re_hf_takes_tokens(c)) {
    re_err_clear();
    return 0;
  }
  int64_t obj = 0, ch = 3, hw[2] = {0, 0};
  if (!strcmp(type, "timm_vit")) { /* model_args.img_size, else pretrained_cfg.input_size */
    int64_t a = re_hf_find(c, 0, "model_args"), k = a >= 0 ? re_hf_find(c, a, "img_size") : -1;
    int64_t p = re_hf_find(c, 0, "pretrained_cfg"), is = p >= 0 ? re_hf_find(c, p, "input_size") : -1;
    if (k >= 0 && c->json.nodes[k].type == RE_JSON_NUMBER && c->json.nodes[k].num_kind == RE_JSON_NUM_UINT)
      hw[0] = hw[1] = c->json.nodes[k].num;
    else if (is >= 0 && c->json.nodes[is].type == RE_JSON_ARRAY) {
      int64_t v[3] = {0, 0, 0}, n = 0;
      for (int64_t e = c->json.nodes[is].first; e >= 0 && n < 3; e = c->json.nodes[e].next, n++)
        v[n] = c->json.nodes[e].type == RE_JSON_NUMBER && c->json.nodes[e].num_kind == RE_JSON_NUM_UINT
                   ? c->json.nodes[e].num
                   : 0;
      ch = v[0], hw[0] = v[1], hw[1] = v[2];
    }
  } else {
    if (!strcmp(type, "clip"))
      obj = re_hf_find(c, 0, "vision_config");
    if (obj < 0 || c->json.nodes[obj].type != RE_JSON_OBJECT)
      return 0;
    int64_t k = re_hf_find(c, obj, "image_size"), n = re_hf_find(c, obj, "num_channels");
    hw[0] = hw[1] = 224;
    if (k >= 0 && c->json.nodes[k].type == RE_JSON_NUMBER && c->json.nodes[k].num_kind == RE_JSON_NUM_UINT)
      hw[0] = hw[1] = c->json.nodes[k].num;
    if (n >= 0 && c->json.nodes[n].type == RE_JSON_NUMBER && c->json.nodes[n].num_kind == RE_JSON_NUM_UINT)
      ch = c->json.nodes[n].num;
  }
  if (ch < 1 || hw[0] < 1 || hw[1] < 1 || ch > 65536 || hw[0] > 65536 || hw[1] > 65536)
    return 0;
  dims[0] = ch, dims[1] = hw[0], dims[2] = hw[1];
  return 3;
}

re_status re_hf_build(const re_hf_config *c, const re_ckpt *ck, const re_shape *in, re_mod **out) {
  arch a;
  memset(&a, 0, sizeof a);
  a.c = c;
  *out = NULL;
  RE_TRY(re_hf_model_type(c, &a.type));
  a.fam = family_of(a.type);
  if (a.fam != F_TIMM)
    RE_TRY(refuse_features(&a));
  if (a.fam >= F_BERT) {
    re_mod *root;
    re_status st;
    if (a.fam == F_BERT && in->rank != 1)
      return re_err(RE_EINVAL, "%s: the model takes token ids: give the sequence length", c->path);
    RE_TRY(re_mod_new("", "", RE_MOD_SEQ, &root));
    if (a.fam == F_BERT)
      st = re_hf_build_bert(c, a.type, ck, in->d[0], root);
    else if (a.fam == F_TIMM)
      st = re_hf_build_timm(c, ck, in, root);
    else
      st = re_hf_build_vision(c, a.type, ck, in, root);
    if (st != RE_OK) {
      re_mod_free(root);
      return st;
    }
    *out = root;
    return RE_OK;
  }
  if (in->rank != 1)
    return re_err(RE_EINVAL, "%s: the model takes token ids: give the sequence length", c->path);
  int64_t T = in->d[0];
  switch (a.fam) {
  case F_GPT2: RE_TRY(read_gpt2(&a)); break;
  case F_NEOX: RE_TRY(read_neox(&a)); break;
  default: RE_TRY(read_llama(&a)); break;
  }
  if (T < 1)
    return re_err(RE_EINVAL, "%s: sequences need at least one token", c->path);
  if (T > a.P)
    return re_err(RE_EINVAL, "%s: sequences of %lld tokens are longer than %s %lld", c->path, (long long)T, a.kP,
                  (long long)a.P);
  RE_TRY(check_window(&a, T));
  re_mod *root;
  RE_TRY(re_mod_new("", "", RE_MOD_SEQ, &root));
  re_status st = build(&a, ck, root);
  if (st != RE_OK) {
    re_mod_free(root);
    return st;
  }
  *out = root;
  return RE_OK;
}
