/* Private: Hugging Face model folders (config.json + weights) as models of the
 * forward engine. hf_config.c reads config.json with typed look-ups whose errors
 * name the file and key; hf_build.c turns a config into a module tree whose names
 * are the state_dict names of the transformers model. */
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

/* The module tree of the model for sequences of T tokens, binding against ck (used to
 * find the tensor-name prefix). Unsupported features and lengths beyond the model's
 * positions are refused here, naming the config key. */
re_status re_hf_build(const re_hf_config *c, const re_ckpt *ck, int64_t T, re_mod **root);
/* "gpt2", "llama", ... of a config (after validation in re_hf_build), for listings. */
re_status re_hf_model_type(const re_hf_config *c, const char **type);

#endif
