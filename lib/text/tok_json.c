/* Reading tokenizer.json values: every error names the file, the JSON path
 * of the value, its byte offset and what was expected. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

static const char *type_name(re_json_type t) {
  switch (t) {
  case RE_JSON_NULL: return "null";
  case RE_JSON_FALSE:
  case RE_JSON_TRUE: return "a boolean";
  case RE_JSON_NUMBER: return "a number";
  case RE_JSON_STRING: return "a string";
  case RE_JSON_ARRAY: return "an array";
  case RE_JSON_OBJECT: return "an object";
  }
  return "?";
}

re_status tok_fail(const tok_ctx *c, re_status st, const char *path, const re_json_node *at, const char *fmt, ...) {
  char what[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  if (at)
    return re_err(st, "%s: %s (byte %lld): %s", c->label, path, (long long)at->pos, what);
  return re_err(st, "%s: %s: %s", c->label, path, what);
}

const re_json_node *tok_node(const tok_ctx *c, int64_t idx) { return idx < 0 ? NULL : &c->j->nodes[idx]; }

const re_json_node *tok_member(const tok_ctx *c, const re_json_node *obj, const char *key) {
  if (!obj || obj->type != RE_JSON_OBJECT)
    return NULL;
  size_t kl = strlen(key);
  const re_json_node *found = NULL;
  for (const re_json_node *m = tok_node(c, obj->first); m; m = tok_node(c, m->next))
    if ((size_t)m->key_len == kl && !memcmp(m->key, key, kl))
      found = m; /* the last of repeated keys, as serde_json keeps for maps */
  return found;
}

re_status tok_known_keys(const tok_ctx *c, const re_json_node *obj, const char *path, const char *const *known) {
  for (const re_json_node *m = tok_node(c, obj->first); m; m = tok_node(c, m->next)) {
    int ok = 0;
    for (const char *const *k = known; *k && !ok; k++)
      ok = (size_t)m->key_len == strlen(*k) && !memcmp(m->key, *k, (size_t)m->key_len);
    if (!ok)
      return tok_fail(c, RE_EUNSUPPORTED, path, m, "unknown key \"%s\" (not supported, so not ignored)", m->key);
    for (const re_json_node *o = tok_node(c, m->next); o; o = tok_node(c, o->next))
      if (o->key_len == m->key_len && !memcmp(o->key, m->key, (size_t)m->key_len))
        return tok_fail(c, RE_EFORMAT, path, o, "key \"%s\" appears twice", m->key);
  }
  return RE_OK;
}

re_status tok_get_bool(const tok_ctx *c, const re_json_node *obj, const char *path, const char *key, int def,
                       int *out) {
  const re_json_node *v = tok_member(c, obj, key);
  if (!v || v->type == RE_JSON_NULL) {
    *out = def;
    return RE_OK;
  }
  if (v->type != RE_JSON_TRUE && v->type != RE_JSON_FALSE)
    return tok_fail(c, RE_EFORMAT, path, v, "\"%s\" must be true or false, not %s", key, type_name(v->type));
  *out = v->type == RE_JSON_TRUE;
  return RE_OK;
}

re_status tok_get_str(const tok_ctx *c, const re_json_node *obj, const char *path, const char *key, int required,
                      const char **s, int64_t *n) {
  const re_json_node *v = tok_member(c, obj, key);
  *s = NULL;
  if (n)
    *n = 0;
  if (!v || v->type == RE_JSON_NULL) {
    if (required)
      return tok_fail(c, RE_EFORMAT, path, obj, "missing string \"%s\"", key);
    return RE_OK;
  }
  if (v->type != RE_JSON_STRING)
    return tok_fail(c, RE_EFORMAT, path, v, "\"%s\" must be a string, not %s", key, type_name(v->type));
  *s = v->str;
  if (n)
    *n = v->str_len;
  return RE_OK;
}

re_status tok_get_uint(const tok_ctx *c, const re_json_node *obj, const char *path, const char *key, int64_t def,
                       int64_t max, int64_t *out) {
  const re_json_node *v = tok_member(c, obj, key);
  if (!v || v->type == RE_JSON_NULL) {
    if (def < 0)
      return tok_fail(c, RE_EFORMAT, path, obj, "missing integer \"%s\"", key);
    *out = def;
    return RE_OK;
  }
  if (v->type != RE_JSON_NUMBER || v->num_kind != RE_JSON_NUM_UINT || v->num > max)
    return tok_fail(c, RE_EFORMAT, path, v, "\"%s\" must be an integer from 0 to %lld", key, (long long)max);
  *out = v->num;
  return RE_OK;
}

re_status tok_get_type(const tok_ctx *c, const re_json_node *obj, const char *path, const char **type) {
  if (obj->type != RE_JSON_OBJECT)
    return tok_fail(c, RE_EFORMAT, path, obj, "expected an object, found %s", type_name(obj->type));
  return tok_get_str(c, obj, path, "type", 1, type, NULL);
}

re_status tok_get_char(const tok_ctx *c, const re_json_node *obj, const char *path, const char *key, uint32_t *cp) {
  const char *s;
  int64_t n;
  RE_TRY(tok_get_str(c, obj, path, key, 1, &s, &n));
  int l = 0;
  if (n > 0)
    *cp = tok_utf8_get(s, &l);
  if (n == 0 || l != n)
    return tok_fail(c, RE_EFORMAT, path, tok_member(c, obj, key), "\"%s\" must be a single character", key);
  return RE_OK;
}

re_status tok_get_double(const tok_ctx *c, const re_json_node *obj, const char *path, const char *key, double def,
                         double *out) {
  const re_json_node *v = tok_member(c, obj, key);
  if (!v || v->type == RE_JSON_NULL) {
    *out = def;
    return RE_OK;
  }
  if (v->type != RE_JSON_NUMBER)
    return tok_fail(c, RE_EFORMAT, path, v, "\"%s\" must be a number, not %s", key, type_name(v->type));
  if (v->num_kind == RE_JSON_NUM_UINT) {
    *out = (double)v->num;
    return RE_OK;
  }
  /* the parser checked the syntax; copy the literal so strtod stops inside it */
  char lit[64];
  int64_t k = 0;
  while (v->pos + k < c->raw_len && k < (int64_t)sizeof lit - 1 && strchr("+-.0123456789eE", c->raw[v->pos + k]))
    k++;
  memcpy(lit, c->raw + v->pos, (size_t)k);
  lit[k] = '\0';
  *out = strtod(lit, NULL);
  return RE_OK;
}
