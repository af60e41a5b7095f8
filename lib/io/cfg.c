/* YAML configuration trees through libyaml's document API. Aliases are expanded
 * (with a node budget against "billion laughs"), duplicate keys are refused. */
#include "repeval/cfg.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MAX_NODES 1000000
/* Aliases of one large scalar multiply its text without adding many nodes, so the
 * expanded text is bounded too: four times the file size limit. */
#define MAX_TEXT_BYTES (4 * (int64_t)RE_CFG_MAX_BYTES)

typedef struct builder {
  yaml_document_t *doc;
  const char *file;
  int64_t budget;     /* nodes left */
  int64_t text_left;  /* bytes of scalar text left */
} builder;

static void free_node(re_cfg *c) {
  if (!c)
    return;
  for (int64_t k = 0; k < c->n; k++) {
    free_node(c->items[k]);
    if (c->kind == RE_CFG_MAP) {
      free(c->keys[k]);
      free_node(c->keynodes[k]);
    }
  }
  free(c->items);
  free(c->keys);
  free(c->keynodes);
  free(c->scalar);
  free(c);
}

static re_status build(builder *b, yaml_node_t *y, int depth, re_cfg **out) {
  re_status st = RE_OK;
  re_cfg *c = NULL;
  *out = NULL;
  if (!y)
    return re_err(RE_EFORMAT, "%s: broken YAML document", b->file);
  int line = (int)y->start_mark.line + 1, col = (int)y->start_mark.column + 1;
  if (depth > RE_CFG_MAX_DEPTH)
    return re_err(RE_EFORMAT, "%s:%d:%d: nesting deeper than %d levels", b->file, line, col, RE_CFG_MAX_DEPTH);
  if (--b->budget < 0)
    return re_err(RE_EFORMAT, "%s: more than %d nodes after expanding aliases", b->file, MAX_NODES);
  RE_TRY(re_calloc(1, sizeof *c, &c));
  c->file = b->file;
  c->line = line;
  c->col = col;
  switch (y->type) {
  case YAML_SCALAR_NODE:
    c->kind = RE_CFG_SCALAR;
    b->text_left -= (int64_t)y->data.scalar.length;
    if (b->text_left < 0) {
      st = re_err(RE_EFORMAT, "%s: more than %lld bytes of text after expanding aliases", b->file,
                  (long long)MAX_TEXT_BYTES);
      goto done;
    }
    RE_CHECK(re_malloc((int64_t)y->data.scalar.length + 1, 1, &c->scalar));
    memcpy(c->scalar, y->data.scalar.value, y->data.scalar.length);
    c->scalar[y->data.scalar.length] = '\0';
    if (strlen(c->scalar) != y->data.scalar.length) {
      st = re_err(RE_EFORMAT, "%s:%d:%d: NUL byte in a string", b->file, line, col);
      goto done;
    }
    c->quoted = y->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                y->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE ||
                y->data.scalar.style == YAML_LITERAL_SCALAR_STYLE || y->data.scalar.style == YAML_FOLDED_SCALAR_STYLE;
    break;
  case YAML_SEQUENCE_NODE: {
    c->kind = RE_CFG_SEQ;
    int64_t n = y->data.sequence.items.top - y->data.sequence.items.start;
    RE_CHECK(re_calloc(n ? n : 1, sizeof(re_cfg *), &c->items));
    for (int64_t k = 0; k < n; k++) {
      RE_CHECK(build(b, yaml_document_get_node(b->doc, y->data.sequence.items.start[k]), depth + 1, &c->items[k]));
      c->n = k + 1;
    }
    break;
  }
  case YAML_MAPPING_NODE: {
    c->kind = RE_CFG_MAP;
    int64_t n = y->data.mapping.pairs.top - y->data.mapping.pairs.start;
    RE_CHECK(re_calloc(n ? n : 1, sizeof(re_cfg *), &c->items));
    RE_CHECK(re_calloc(n ? n : 1, sizeof(char *), &c->keys));
    RE_CHECK(re_calloc(n ? n : 1, sizeof(re_cfg *), &c->keynodes));
    for (int64_t k = 0; k < n; k++) {
      yaml_node_pair_t *pr = &y->data.mapping.pairs.start[k];
      re_cfg *key = NULL;
      RE_CHECK(build(b, yaml_document_get_node(b->doc, pr->key), depth + 1, &key));
      c->keynodes[k] = key;
      c->n = k + 1;
      if (key->kind != RE_CFG_SCALAR) {
        st = re_err(RE_EFORMAT, "%s:%d:%d: a map key must be a plain string", b->file, key->line, key->col);
        goto done;
      }
      for (int64_t j = 0; j < k; j++)
        if (!strcmp(c->keys[j], key->scalar)) {
          st = re_err(RE_EFORMAT, "%s:%d:%d: duplicate key '%s' (first at line %d)", b->file, key->line, key->col,
                      key->scalar, c->keynodes[j]->line);
          goto done;
        }
      RE_CHECK(re_strdup(key->scalar, &c->keys[k]));
      RE_CHECK(build(b, yaml_document_get_node(b->doc, pr->value), depth + 1, &c->items[k]));
    }
    break;
  }
  default:
    st = re_err(RE_EFORMAT, "%s:%d:%d: empty YAML node", b->file, line, col);
    goto done;
  }
  *out = c;
  c = NULL;
done:
  free_node(c);
  return st;
}

re_status re_cfg_parse_string(const char *text, int64_t len, const char *name, re_cfg **out) {
  re_status st = RE_OK;
  yaml_parser_t parser;
  yaml_document_t doc;
  int have_doc = 0;
  char *file = NULL;
  *out = NULL;
  if (len > RE_CFG_MAX_BYTES)
    return re_err(RE_EFORMAT, "%s: %lld bytes is larger than the %d-byte limit for configuration files", name,
                  (long long)len, RE_CFG_MAX_BYTES);
  if (!yaml_parser_initialize(&parser))
    return re_err(RE_ENOMEM, "%s: cannot initialise the YAML parser", name);
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, (size_t)len);
  if (!yaml_parser_load(&parser, &doc)) {
    st = re_err(RE_EFORMAT, "%s:%d:%d: YAML syntax error: %s%s%s", name, (int)parser.problem_mark.line + 1,
                (int)parser.problem_mark.column + 1, parser.problem ? parser.problem : "unknown",
                parser.context ? " " : "", parser.context ? parser.context : "");
    goto done;
  }
  have_doc = 1;
  yaml_node_t *root = yaml_document_get_root_node(&doc);
  if (!root) {
    st = re_err(RE_EFORMAT, "%s: the file is empty", name);
    goto done;
  }
  /* every node points at one copy of the file name, owned by the tree (see re_cfg_free) */
  RE_CHECK(re_strdup(name, &file));
  builder b = {&doc, file, MAX_NODES, MAX_TEXT_BYTES};
  RE_CHECK(build(&b, root, 0, out));
  file = NULL;
done:
  free(file);
  if (have_doc)
    yaml_document_delete(&doc);
  yaml_parser_delete(&parser);
  return st;
}

re_status re_cfg_parse_file(const char *path, re_cfg **out) {
  *out = NULL;
  FILE *f;
  RE_TRY(re_fopen_regular(path, &f));
  char *buf = NULL;
  re_status st = re_malloc(RE_CFG_MAX_BYTES + 1, 1, &buf);
  if (st != RE_OK) {
    fclose(f);
    return st;
  }
  size_t n = fread(buf, 1, RE_CFG_MAX_BYTES + 1, f);
  int bad = ferror(f);
  fclose(f);
  if (bad)
    st = re_err(RE_EIO, "%s: read error", path);
  else if (n > RE_CFG_MAX_BYTES)
    st = re_err(RE_EFORMAT, "%s: larger than the %d-byte limit for configuration files", path, RE_CFG_MAX_BYTES);
  else
    st = re_cfg_parse_string(buf, (int64_t)n, path, out);
  free(buf);
  return st;
}

void re_cfg_free(re_cfg **pc) {
  re_cfg *c = *pc;
  if (!c)
    return;
  char *file = (char *)c->file;
  free_node(c);
  free(file);
  *pc = NULL;
}

const re_cfg *re_cfg_get(const re_cfg *c, const char *key) {
  if (!c || c->kind != RE_CFG_MAP)
    return NULL;
  for (int64_t k = 0; k < c->n; k++)
    if (!strcmp(c->keys[k], key))
      return c->items[k];
  return NULL;
}

const char *re_cfg_where(const re_cfg *c, char *buf, int cap) {
  snprintf(buf, (size_t)cap, "%s:%d:%d", c->file, c->line, c->col);
  return buf;
}

re_status re_cfg_error(const re_cfg *c, re_status st, const char *fmt, ...) {
  char msg[1536];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return re_err(st, "%s:%d:%d: %s", c->file, c->line, c->col, msg);
}

re_status re_cfg_expect_map(const re_cfg *c, const char *what, const char *const *allowed) {
  if (c->kind != RE_CFG_MAP)
    return re_cfg_error(c, RE_EINVAL, "%s must be a map of key: value", what);
  if (!allowed)
    return RE_OK;
  for (int64_t k = 0; k < c->n; k++) {
    int ok = 0;
    for (const char *const *a = allowed; *a; a++)
      if (!strcmp(*a, c->keys[k]))
        ok = 1;
    if (!ok) {
      char list[1024] = "";
      size_t used = 0;
      for (const char *const *a = allowed; *a && used + strlen(*a) + 3 < sizeof list; a++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", a == allowed ? "" : ", ", *a);
      return re_cfg_error(c->keynodes[k], RE_EINVAL, "unknown key '%s' in %s (expected one of: %s)", c->keys[k], what,
                          list);
    }
  }
  return RE_OK;
}

int re_cfg_is_null(const re_cfg *c) {
  return c->kind == RE_CFG_SCALAR && !c->quoted &&
         (!strcmp(c->scalar, "") || !strcmp(c->scalar, "~") || !strcmp(c->scalar, "null") ||
          !strcmp(c->scalar, "Null") || !strcmp(c->scalar, "NULL"));
}

re_status re_cfg_int(const re_cfg *c, int64_t *v) {
  if (c->kind != RE_CFG_SCALAR || c->quoted)
    return re_cfg_error(c, RE_EINVAL, "expected an integer");
  char *end;
  errno = 0;
  long long x = strtoll(c->scalar, &end, 10);
  if (errno || end == c->scalar || *end)
    return re_cfg_error(c, RE_EINVAL, "expected an integer, got '%s'", c->scalar);
  *v = x;
  return RE_OK;
}

re_status re_cfg_double(const re_cfg *c, double *v) {
  if (c->kind != RE_CFG_SCALAR || c->quoted)
    return re_cfg_error(c, RE_EINVAL, "expected a number");
  char *end;
  errno = 0;
  double x = strtod(c->scalar, &end);
  if (errno || end == c->scalar || *end || !isfinite(x))
    return re_cfg_error(c, RE_EINVAL, "expected a finite number, got '%s'", c->scalar);
  *v = x;
  return RE_OK;
}

re_status re_cfg_bool(const re_cfg *c, int *v) {
  static const char *yes[] = {"true", "True", "TRUE", "yes", "Yes", "on", NULL};
  static const char *no[] = {"false", "False", "FALSE", "no", "No", "off", NULL};
  if (c->kind == RE_CFG_SCALAR && !c->quoted) {
    for (int k = 0; yes[k]; k++)
      if (!strcmp(c->scalar, yes[k])) {
        *v = 1;
        return RE_OK;
      }
    for (int k = 0; no[k]; k++)
      if (!strcmp(c->scalar, no[k])) {
        *v = 0;
        return RE_OK;
      }
  }
  return re_cfg_error(c, RE_EINVAL, "expected true or false");
}

re_status re_cfg_string(const re_cfg *c, const char **v) {
  if (c->kind != RE_CFG_SCALAR)
    return re_cfg_error(c, RE_EINVAL, "expected a string");
  *v = c->scalar;
  return RE_OK;
}

re_status re_cfg_get_int(const re_cfg *map, const char *key, int64_t *v) {
  const re_cfg *c = re_cfg_get(map, key);
  return c ? re_cfg_int(c, v) : RE_OK;
}

re_status re_cfg_get_double(const re_cfg *map, const char *key, double *v) {
  const re_cfg *c = re_cfg_get(map, key);
  return c ? re_cfg_double(c, v) : RE_OK;
}

re_status re_cfg_get_bool(const re_cfg *map, const char *key, int *v) {
  const re_cfg *c = re_cfg_get(map, key);
  return c ? re_cfg_bool(c, v) : RE_OK;
}

re_status re_cfg_get_string(const re_cfg *map, const char *key, const char **v) {
  const re_cfg *c = re_cfg_get(map, key);
  return c ? re_cfg_string(c, v) : RE_OK;
}
