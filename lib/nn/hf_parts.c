/* Parts shared by the builders of Hugging Face model trees: messages that name the
 * config file and key, typed size and activation look-ups, and small constructors of
 * linear layers, norms and aliases. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf.h"

#define MAX_SIZE (1 << 30) /* any size in a config */

re_status re_hf_fail(const re_hf_config *c, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return re_err(RE_EUNSUPPORTED, "%s: %s", c->path, msg);
}

re_status re_hf_why(re_mod *m, const re_hf_config *c, const char *fmt, ...) {
  char msg[512], full[1600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(full, sizeof full, "(%s: %s)", c->path, msg);
  free(m->why);
  m->why = NULL;
  return re_strdup(full, &m->why);
}

re_status re_hf_add(re_mod *parent, const char *name, re_mod_type type, re_mod **out) {
  re_mod *m;
  RE_TRY(re_mod_new(parent->name, name, type, &m));
  RE_TRY(re_mod_add(parent, m));
  *out = m;
  return RE_OK;
}

re_status re_hf_alias(re_mod *root, const char *name, re_mod *target) {
  RE_TRY(re_realloc(&root->alias, root->nalias + 1, sizeof(re_alias)));
  root->alias[root->nalias].target = target;
  RE_TRY(re_strdup(name, &root->alias[root->nalias].name));
  root->nalias++;
  return RE_OK;
}

re_status re_hf_linear(re_mod *parent, const re_hf_config *c, const char *name, int64_t in, int64_t out, int bias,
                       const char *why, re_mod **made) {
  re_mod *m;
  RE_TRY(re_hf_add(parent, name, RE_MOD_LINEAR, &m));
  m->in = in;
  m->out = out;
  m->bias = bias;
  if (why && c)
    RE_TRY(re_hf_why(m, c, "%s", why));
  if (made)
    *made = m;
  return RE_OK;
}

re_status re_hf_layernorm(re_mod *parent, const re_hf_config *c, const char *name, int64_t D, double eps,
                          const char *key_d, re_mod **made) {
  re_mod *m;
  RE_TRY(re_hf_add(parent, name, RE_MOD_LAYERNORM, &m));
  m->out = D;
  m->eps = eps;
  if (c)
    RE_TRY(re_hf_why(m, c, "%s %lld", key_d, (long long)D));
  else
    RE_TRY(re_strdup("(from the tensors)", &m->why)); /* timm state_dicts: both parameters required */
  if (made)
    *made = m;
  return RE_OK;
}

re_status re_hf_act(const re_hf_config *c, int64_t obj, const char *where, const char *key, const char *dflt,
                    re_act *out) {
  const char *s;
  RE_TRY(re_hf_str(c, obj, where, key, dflt, &s));
  static const struct {
    const char *name;
    re_act act;
  } acts[] = {{"gelu", RE_ACT_GELU},           {"gelu_new", RE_ACT_GELU_TANH}, {"gelu_pytorch_tanh", RE_ACT_GELU_TANH},
              {"gelu_fast", RE_ACT_GELU_TANH}, {"relu", RE_ACT_RELU},          {"silu", RE_ACT_SILU},
              {"swish", RE_ACT_SILU},          {"tanh", RE_ACT_TANH},          {"sigmoid", RE_ACT_SIGMOID},
              {"quick_gelu", RE_ACT_QUICK_GELU}};
  for (size_t k = 0; k < sizeof acts / sizeof acts[0]; k++)
    if (!strcmp(s, acts[k].name)) {
      *out = acts[k].act;
      return RE_OK;
    }
  return re_hf_fail(c, "%s%s '%s' is not supported (gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu, silu, "
                       "swish, tanh, sigmoid, quick_gelu)",
                    where, key, s);
}

re_status re_hf_size(const re_hf_config *c, int64_t obj, const char *where, const char *key, int64_t dflt,
                     int64_t *out) {
  RE_TRY(re_hf_int(c, obj, where, key, dflt, out));
  if (*out < 1)
    return re_err(RE_EFORMAT, "%s: key '%s%s' %s", c->path, where, key, *out == 0 ? "must be positive" : "is missing");
  if (*out > MAX_SIZE)
    return re_err(RE_EFORMAT, "%s: key '%s%s' is %lld, more than %d", c->path, where, key, (long long)*out,
                  MAX_SIZE);
  return RE_OK;
}

re_status re_hf_positive_num(const re_hf_config *c, int64_t obj, const char *where, const char *key, double dflt,
                             double *out) {
  RE_TRY(re_hf_num(c, obj, where, key, dflt, out));
  if (!(*out > 0) || !isfinite(*out))
    return re_err(RE_EFORMAT, "%s: key '%s%s' must be a positive finite number, got %g", c->path, where, key, *out);
  return RE_OK;
}

int re_hf_has_tensor(const re_ckpt *ck, const char *name) {
  int64_t i;
  re_status st = re_ckpt_find(ck, name, &i);
  re_err_clear();
  return st == RE_OK;
}

re_status re_hf_find_prefix(re_mod *root, const re_ckpt *ck, const char *const *prefixes, const char *probe) {
  char key[512];
  free(root->prefix);
  root->prefix = NULL;
  for (int k = 0; prefixes[k]; k++) {
    snprintf(key, sizeof key, "%s%s", prefixes[k], probe);
    if (re_hf_has_tensor(ck, key))
      return re_strdup(prefixes[k], &root->prefix);
  }
  return re_strdup("", &root->prefix);
}
