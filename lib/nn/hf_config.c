/* config.json of a Hugging Face model folder: read with the strict JSON parser,
 * looked up with typed accessors whose errors name the file and the key. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hf.h"

#define CONFIG_MAX_BYTES (16 << 20)

static int is_dir(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && !strcmp(s + n - k, suffix);
}

int re_hf_is_folder(const char *spec) {
  return is_dir(spec) || ends_with(spec, "/config.json") || !strcmp(spec, "config.json");
}

/* Take the text (any bytes) as c's config.json. */
static re_status parse(re_hf_config *c, const char *buf, int64_t len) {
  if (len > CONFIG_MAX_BYTES)
    return re_err(RE_EFORMAT, "%s: larger than %d bytes", c->path, CONFIG_MAX_BYTES);
  RE_TRY(re_malloc(len + 1, 1, &c->text));
  memcpy(c->text, buf, (size_t)len);
  c->text[len] = '\0';
  c->len = len;
  RE_TRY(re_json_parse(c->text, c->len, 64, 1000000, c->path, 0, &c->json));
  if (c->json.nodes[0].type != RE_JSON_OBJECT)
    return re_err(RE_EFORMAT, "%s: expected a JSON object", c->path);
  return RE_OK;
}

re_status re_hf_config_parse(const char *label, const char *buf, int64_t len, re_hf_config **out) {
  re_hf_config *c = NULL;
  *out = NULL;
  RE_TRY(re_calloc(1, sizeof *c, &c));
  re_status st = re_strdup(label, &c->path);
  if (st == RE_OK)
    st = parse(c, buf, len);
  if (st != RE_OK) {
    re_hf_config_free(&c);
    return st;
  }
  *out = c;
  return RE_OK;
}

re_status re_hf_config_load(const char *spec, re_hf_config **out) {
  re_hf_config *c = NULL;
  re_status st = RE_OK;
  FILE *f = NULL;
  char *buf = NULL;
  int64_t len = 0;
  *out = NULL;
  RE_CHECK(re_calloc(1, sizeof *c, &c));
  if (is_dir(spec)) {
    size_t n = strlen(spec);
    RE_CHECK(re_malloc((int64_t)n + 16, 1, &c->path));
    snprintf(c->path, n + 16, "%s%sconfig.json", spec, n && spec[n - 1] == '/' ? "" : "/");
  } else {
    RE_CHECK(re_strdup(spec, &c->path));
  }
  f = fopen(c->path, "rb");
  if (!f) {
    st = re_err(RE_EIO, "%s: cannot open%s: %s", c->path,
                is_dir(spec) ? " (a model folder needs config.json)" : "", strerror(errno));
    goto done;
  }
  RE_CHECK(re_malloc(CONFIG_MAX_BYTES + 1, 1, &buf));
  len = (int64_t)fread(buf, 1, CONFIG_MAX_BYTES + 1, f);
  if (ferror(f)) {
    st = re_err(RE_EIO, "%s: read error", c->path);
    goto done;
  }
  RE_CHECK(parse(c, buf, len));
  *out = c;
  c = NULL;
done:
  if (f)
    fclose(f);
  free(buf);
  re_hf_config_free(&c);
  return st;
}

void re_hf_config_free(re_hf_config **pc) {
  re_hf_config *c = *pc;
  if (!c)
    return;
  re_json_free(&c->json);
  free(c->text);
  free(c->path);
  free(c);
  *pc = NULL;
}

int64_t re_hf_find(const re_hf_config *c, int64_t obj, const char *key) {
  const re_json_node *o = &c->json.nodes[obj];
  if (o->type != RE_JSON_OBJECT)
    return -1;
  int64_t found = -1;
  for (int64_t k = o->first; k >= 0; k = c->json.nodes[k].next) /* the last duplicate wins, as in Python */
    if (!strcmp(c->json.nodes[k].key, key))
      found = k;
  if (found >= 0 && c->json.nodes[found].type == RE_JSON_NULL)
    return -1;
  return found;
}

static const char *type_name(re_json_type t) {
  static const char *names[] = {"null", "false", "true", "a number", "a string", "a list", "an object"};
  return names[t];
}

re_status re_hf_int(const re_hf_config *c, int64_t obj, const char *where, const char *key, int64_t dflt,
                    int64_t *out) {
  int64_t k = re_hf_find(c, obj, key);
  if (k < 0) {
    *out = dflt;
    return RE_OK;
  }
  const re_json_node *n = &c->json.nodes[k];
  if (n->type != RE_JSON_NUMBER || n->num_kind != RE_JSON_NUM_UINT)
    return re_err(RE_EFORMAT, "%s: key '%s%s' must be a non-negative integer, got %s", c->path, where, key,
                  n->type == RE_JSON_NUMBER ? "another number" : type_name(n->type));
  *out = n->num;
  return RE_OK;
}

re_status re_hf_num(const re_hf_config *c, int64_t obj, const char *where, const char *key, double dflt,
                    double *out) {
  int64_t k = re_hf_find(c, obj, key);
  if (k < 0) {
    *out = dflt;
    return RE_OK;
  }
  const re_json_node *n = &c->json.nodes[k];
  if (n->type != RE_JSON_NUMBER)
    return re_err(RE_EFORMAT, "%s: key '%s%s' must be a number, got %s", c->path, where, key, type_name(n->type));
  *out = strtod(c->text + n->pos, NULL); /* the parser checked the JSON number syntax */
  return RE_OK;
}

re_status re_hf_bool(const re_hf_config *c, int64_t obj, const char *where, const char *key, int dflt, int *out) {
  int64_t k = re_hf_find(c, obj, key);
  if (k < 0) {
    *out = dflt;
    return RE_OK;
  }
  const re_json_node *n = &c->json.nodes[k];
  if (n->type != RE_JSON_TRUE && n->type != RE_JSON_FALSE)
    return re_err(RE_EFORMAT, "%s: key '%s%s' must be true or false, got %s", c->path, where, key,
                  type_name(n->type));
  *out = n->type == RE_JSON_TRUE;
  return RE_OK;
}

re_status re_hf_str(const re_hf_config *c, int64_t obj, const char *where, const char *key, const char *dflt,
                    const char **out) {
  int64_t k = re_hf_find(c, obj, key);
  if (k < 0) {
    *out = dflt;
    return RE_OK;
  }
  const re_json_node *n = &c->json.nodes[k];
  if (n->type != RE_JSON_STRING)
    return re_err(RE_EFORMAT, "%s: key '%s%s' must be a string, got %s", c->path, where, key, type_name(n->type));
  *out = n->str;
  return RE_OK;
}
