/* Private: Hugging Face model folders (config.json + weights) as models of the
 * forward engine. hf_config.c reads config.json with typed look-ups whose errors
 * name the file and key; hf_build.c (decoders and dispatch), hf_bert.c (encoders)
 * and hf_vision.c (vision transformers, timm) turn a config into a module tree whose
 * names are the state_dict names of the transformers (or timm) model. */
#ifndef REPEVAL_NN_HF_H
#define REPEVAL_NN_HF_H

#include "../io/jsonparse.h"
#include "module.h"

typedef struct re_hf_config {
  char *path; /* .../config.json */
  char *text; /* the file, NUL-terminated */
  int64_t len;
  re_json json;
} re_hf_config;

/* Whether `spec` names a model folder (a directory with config.json, or a config.json). */
int re_hf_is_folder(const char *spec);
/* Read <dir>/config.json (or the config.json given). */
re_status re_hf_config_load(const char *spec, re_hf_config **out);
/* The same from bytes in memory; `label` stands for the file in messages. */
re_status re_hf_config_parse(const char *label, const char *buf, int64_t len, re_hf_config **out);
/* Free (NULL allowed); sets *c to NULL. */
void re_hf_config_free(re_hf_config **c);
/* A model from a parsed config (taking ownership of c, also on failure). */
re_status re_model_from_hf(re_hf_config *c, re_model **out);

/* Node of member `key` of object node `obj` (0: the top level); -1 when absent or null. */
int64_t re_hf_find(const re_hf_config *c, int64_t obj, const char *key);
/* Typed look-ups of member `key` of `obj`, `dflt` when absent or null; `where` names the
 * object in messages ("" for the top level, else e.g. "rope_parameters."). */
re_status re_hf_int(const re_hf_config *c, int64_t obj, const char *where, const char *key, int64_t dflt,
                    int64_t *out);
re_status re_hf_num(const re_hf_config *c, int64_t obj, const char *where, const char *key, double dflt,
                    double *out);
re_status re_hf_bool(const re_hf_config *c, int64_t obj, const char *where, const char *key, int dflt, int *out);
re_status re_hf_str(const re_hf_config *c, int64_t obj, const char *where, const char *key, const char *dflt,
                    const char **out);

/* The module tree of the model for one sample of shape `in` (token models: rank 1, T
 * tokens; vision models: rank 3, C x H x W), binding against ck (used to find the
 * tensor-name prefix). Unsupported features and lengths beyond the model's positions
 * are refused here, naming the config key. */
re_status re_hf_build(const re_hf_config *c, const re_ckpt *ck, const re_shape *in, re_mod **root);
/* "gpt2", "bert", "vit", ... of a config (after validation in re_hf_build), for listings;
 * "timm_vit" for timm's config.json (key "architecture"). */
re_status re_hf_model_type(const re_hf_config *c, const char **type);
/* 1 when the model takes token ids (decoders, BERT, RoBERTa), 0 for images. */
int re_hf_takes_tokens(const re_hf_config *c);
/* Image shape (C, H, W) a vision model declares (num_channels, image_size); 0 when none. */
int re_hf_image_input(const re_hf_config *c, int64_t *dims);

/* ---- families (hf_bert.c, hf_vision.c) ---- */

/* BERT, RoBERTa (and XLM-RoBERTa) for sequences of T tokens. */
re_status re_hf_build_bert(const re_hf_config *c, const char *type, const re_ckpt *ck, int64_t T, re_mod *root);
/* ViT, DINOv2 (with registers), CLIP's vision tower, timm ViTs, for images (C, H, W). */
re_status re_hf_build_vision(const re_hf_config *c, const char *type, const re_ckpt *ck, const re_shape *in,
                             re_mod *root);
/* A timm VisionTransformer from a timm config.json ("architecture", "model_args"). */
re_status re_hf_build_timm(const re_hf_config *c, const re_ckpt *ck, const re_shape *in, re_mod *root);
/* A timm VisionTransformer from its state_dict alone (the timm-vit preset): depth and
 * width from the tensors, `heads` (RE_UNSET: width / 64), LayerNorm eps 1e-6. */
re_status re_timm_vit_build(const re_ckpt *ck, int64_t heads, re_mod *root);

/* ---- parts shared by the builders (hf_parts.c) ---- */

/* RE_EUNSUPPORTED "<config path>: <message>". */
re_status re_hf_fail(const re_hf_config *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* m->why = "(<config path>: <message>)": where config-derived sizes come from. */
re_status re_hf_why(re_mod *m, const re_hf_config *c, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A child named parent.name. */
re_status re_hf_add(re_mod *parent, const char *name, re_mod_type type, re_mod **out);
/* Root alias `name` for module target. */
re_status re_hf_alias(re_mod *root, const char *name, re_mod *target);
/* A linear child of known sizes (why: the config keys behind them; NULL: sizes from the tensors). */
re_status re_hf_linear(re_mod *parent, const re_hf_config *c, const char *name, int64_t in, int64_t out, int bias,
                       const char *why, re_mod **made);
/* A LayerNorm child over D features. */
re_status re_hf_layernorm(re_mod *parent, const re_hf_config *c, const char *name, int64_t D, double eps,
                          const char *key_d, re_mod **made);
/* Activation named by `key` of object obj (where: its prefix in messages); dflt when absent. */
re_status re_hf_act(const re_hf_config *c, int64_t obj, const char *where, const char *key, const char *dflt,
                    re_act *out);
/* A positive integer size of at most 2^30 (dflt -1: required). */
re_status re_hf_size(const re_hf_config *c, int64_t obj, const char *where, const char *key, int64_t dflt,
                     int64_t *out);
/* A positive finite number. */
re_status re_hf_positive_num(const re_hf_config *c, int64_t obj, const char *where, const char *key, double dflt,
                             double *out);
/* Whether the checkpoint holds a tensor of that name. */
int re_hf_has_tensor(const re_ckpt *ck, const char *name);
/* The first of `prefixes` (NULL-terminated) under which ck holds <prefix><probe>, into
 * root->prefix ("" when none does). */
re_status re_hf_find_prefix(re_mod *root, const re_ckpt *ck, const char *const *prefixes, const char *probe);

#endif
