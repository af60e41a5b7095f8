/* safetensors reader. Layout (huggingface/safetensors, docs "format"):
 *   u64 little-endian N | N bytes of JSON header | data buffer
 * The header is one JSON object: tensor name -> {"dtype", "shape", "data_offsets":
 * [begin, end]} with offsets relative to the data buffer, plus an optional
 * "__metadata__" object of string -> string. We validate everything before any
 * tensor byte is touched: the tensors, sorted by offset, must tile the data buffer
 * exactly (no holes, no overlaps, nothing after the last one). Tensors are listed
 * in header order and point straight into the caller's buffer (the file's mmap). */
#include "ckpt_reader.h"
#include "../jsonparse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_MAX_HEADER 100000000 /* bytes; the same limit as the reference implementation */
#define ST_MAX_DEPTH 64
#define ST_MAX_VALUES 8000000 /* JSON values in a header (~0.8 GB of nodes); real headers need ~10 per tensor */

typedef struct st_entry {
  const char *name;
  re_dtype dtype;
  int ndim;
  int64_t shape[RE_TENSOR_MAX_DIMS];
  int64_t begin, end;
} st_entry;

static int parse_dtype(const char *s, re_dtype *dt) {
  static const struct {
    const char *name;
    re_dtype dt;
  } map[] = {{"F64", RE_DTYPE_F64}, {"F32", RE_DTYPE_F32}, {"F16", RE_DTYPE_F16}, {"BF16", RE_DTYPE_BF16},
             {"I64", RE_DTYPE_I64}, {"I32", RE_DTYPE_I32}, {"I16", RE_DTYPE_I16}, {"I8", RE_DTYPE_I8},
             {"U64", RE_DTYPE_U64}, {"U32", RE_DTYPE_U32}, {"U16", RE_DTYPE_U16}, {"U8", RE_DTYPE_U8},
             {"BOOL", RE_DTYPE_BOOL}};
  for (size_t k = 0; k < sizeof map / sizeof map[0]; k++)
    if (!strcmp(s, map[k].name)) {
      *dt = map[k].dt;
      return 1;
    }
  return 0;
}

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

/* A JSON non-negative integer that fits int64. */
static re_status get_uint(const re_ckpt *c, const re_json_node *n, const char *tensor, const char *field,
                          int64_t *out) {
  if (n->type != RE_JSON_NUMBER)
    return re_err(RE_EFORMAT, "%s: tensor '%s': %s must hold integers, found %s", c->path, tensor, field,
                  type_name(n->type));
  if (n->num_kind == RE_JSON_NUM_BIG)
    return re_err(RE_EFORMAT, "%s: tensor '%s': %s value at header byte %lld does not fit in 64 bits", c->path,
                  tensor, field, (long long)(8 + n->pos));
  if (n->num_kind != RE_JSON_NUM_UINT)
    return re_err(RE_EFORMAT, "%s: tensor '%s': %s must hold non-negative integers (header byte %lld)", c->path,
                  tensor, field, (long long)(8 + n->pos));
  *out = n->num;
  return RE_OK;
}

static int cmp_key(const void *a, const void *b) {
  return strcmp((*(const re_json_node *const *)a)->key, (*(const re_json_node *const *)b)->key);
}

static re_status parse_metadata(re_ckpt *c, const re_json *j, const re_json_node *obj) {
  if (obj->type != RE_JSON_OBJECT)
    return re_err(RE_EFORMAT, "%s: __metadata__ must be an object of strings, found %s", c->path,
                  type_name(obj->type));
  const re_json_node **sorted = NULL;
  int64_t n = 0;
  RE_TRY(re_calloc(obj->count, sizeof *sorted, &sorted));
  for (int64_t k = obj->first; k >= 0; k = j->nodes[k].next) {
    const re_json_node *v = &j->nodes[k];
    re_status st = RE_OK;
    if (v->type != RE_JSON_STRING)
      st = re_err(RE_EFORMAT, "%s: __metadata__ entry '%s' must be a string, found %s", c->path, v->key,
                  type_name(v->type));
    else if ((int64_t)strlen(v->key) != v->key_len || (int64_t)strlen(v->str) != v->str_len)
      st = re_err(RE_EFORMAT, "%s: __metadata__ entry '%s' contains a NUL character", c->path, v->key);
    if (st != RE_OK) {
      free(sorted);
      return st;
    }
    sorted[n++] = v;
  }
  qsort(sorted, (size_t)n, sizeof *sorted, cmp_key);
  for (int64_t k = 1; k < n; k++)
    if (!strcmp(sorted[k - 1]->key, sorted[k]->key)) {
      re_status st = re_err(RE_EFORMAT, "%s: __metadata__ key '%s' appears twice", c->path, sorted[k]->key);
      free(sorted);
      return st;
    }
  free(sorted);
  for (int64_t k = obj->first; k >= 0; k = j->nodes[k].next) /* header order */
    RE_TRY(re_ckpt_add_metadata(c, j->nodes[k].key, j->nodes[k].str));
  return RE_OK;
}

static re_status parse_entry(const re_ckpt *c, const re_json *j, const re_json_node *obj, st_entry *e) {
  const char *name = obj->key;
  memset(e, 0, sizeof *e);
  e->name = name;
  if ((int64_t)strlen(name) != obj->key_len)
    return re_err(RE_EFORMAT, "%s: a tensor name contains a NUL character ('%s...')", c->path, name);
  if (obj->type != RE_JSON_OBJECT)
    return re_err(RE_EFORMAT, "%s: tensor '%s': expected an object with dtype, shape, data_offsets, found %s",
                  c->path, name, type_name(obj->type));
  const re_json_node *dtype = NULL, *shape = NULL, *offs = NULL;
  for (int64_t k = obj->first; k >= 0; k = j->nodes[k].next) {
    const re_json_node *f = &j->nodes[k];
    const re_json_node **slot = !strcmp(f->key, "dtype")          ? &dtype
                                : !strcmp(f->key, "shape")        ? &shape
                                : !strcmp(f->key, "data_offsets") ? &offs
                                                                  : NULL;
    if (!slot) /* refuse rather than ignore: an unknown field (strides?) could change the meaning */
      return re_err(RE_EFORMAT, "%s: tensor '%s': unknown field '%s' (expected dtype, shape, data_offsets)",
                    c->path, name, f->key);
    if (*slot)
      return re_err(RE_EFORMAT, "%s: tensor '%s': field '%s' appears twice", c->path, name, f->key);
    *slot = f;
  }
  if (!dtype || !shape || !offs)
    return re_err(RE_EFORMAT, "%s: tensor '%s': missing field '%s'", c->path, name,
                  !dtype ? "dtype" : !shape ? "shape" : "data_offsets");
  if (dtype->type != RE_JSON_STRING)
    return re_err(RE_EFORMAT, "%s: tensor '%s': dtype must be a string, found %s", c->path, name,
                  type_name(dtype->type));
  if (!parse_dtype(dtype->str, &e->dtype))
    return re_err(RE_EUNSUPPORTED, "%s: unsupported dtype '%s' for tensor '%s'", c->path, dtype->str, name);
  if (shape->type != RE_JSON_ARRAY)
    return re_err(RE_EFORMAT, "%s: tensor '%s': shape must be an array, found %s", c->path, name,
                  type_name(shape->type));
  if (shape->count > RE_TENSOR_MAX_DIMS)
    return re_err(RE_EUNSUPPORTED, "%s: tensor '%s' has %lld dimensions (at most %d supported)", c->path, name,
                  (long long)shape->count, RE_TENSOR_MAX_DIMS);
  e->ndim = (int)shape->count;
  int64_t numel = 1, d = 0;
  for (int64_t k = shape->first; k >= 0; k = j->nodes[k].next, d++) {
    RE_TRY(get_uint(c, &j->nodes[k], name, "shape", &e->shape[d]));
    if (re_mul_i64(numel, e->shape[d], &numel) != RE_OK)
      return re_err(RE_EFORMAT, "%s: tensor '%s': element count overflows 64 bits", c->path, name);
  }
  if (offs->type != RE_JSON_ARRAY || offs->count != 2)
    return re_err(RE_EFORMAT, "%s: tensor '%s': data_offsets must be an array [begin, end]", c->path, name);
  RE_TRY(get_uint(c, &j->nodes[offs->first], name, "data_offsets", &e->begin));
  RE_TRY(get_uint(c, &j->nodes[j->nodes[offs->first].next], name, "data_offsets", &e->end));
  if (e->begin > e->end)
    return re_err(RE_EFORMAT, "%s: tensor '%s': data_offsets begin %lld > end %lld", c->path, name,
                  (long long)e->begin, (long long)e->end);
  int64_t nbytes;
  if (re_mul_i64(numel, re_dtype_size(e->dtype), &nbytes) != RE_OK)
    return re_err(RE_EFORMAT, "%s: tensor '%s': byte size overflows 64 bits", c->path, name);
  if (e->end - e->begin != nbytes)
    return re_err(RE_EFORMAT, "%s: tensor '%s': data_offsets [%lld, %lld] span %lld bytes, but %s x %lld elements "
                  "need %lld", c->path, name, (long long)e->begin, (long long)e->end,
                  (long long)(e->end - e->begin), dtype->str, (long long)numel, (long long)nbytes);
  return RE_OK;
}

static int cmp_name(const void *a, const void *b) {
  const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
  return strcmp(x->name, y->name);
}

static int cmp_offsets(const void *a, const void *b) {
  const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
  if (x->begin != y->begin)
    return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end)
    return x->end < y->end ? -1 : 1;
  return 0;
}

/* Sorted by offset, the tensors must tile [0, data_len) exactly. */
static re_status check_layout(const re_ckpt *c, st_entry **by, int64_t n, int64_t data_len) {
  qsort(by, (size_t)n, sizeof *by, cmp_name);
  for (int64_t k = 1; k < n; k++)
    if (!strcmp(by[k - 1]->name, by[k]->name))
      return re_err(RE_EFORMAT, "%s: duplicate tensor name '%s' in the header", c->path, by[k]->name);
  qsort(by, (size_t)n, sizeof *by, cmp_offsets);
  int64_t at = 0;
  for (int64_t k = 0; k < n; k++) {
    const st_entry *e = by[k];
    if (e->begin > at)
      return re_err(RE_EFORMAT, "%s: hole in the data buffer: bytes [%lld, %lld) belong to no tensor (next is "
                    "'%s')", c->path, (long long)at, (long long)e->begin, e->name);
    if (e->begin < at)
      return re_err(RE_EFORMAT, "%s: tensor '%s' [%lld, %lld) overlaps '%s' which ends at %lld", c->path, e->name,
                    (long long)e->begin, (long long)e->end, by[k - 1]->name, (long long)at);
    at = e->end;
  }
  if (at != data_len)
    return re_err(RE_EFORMAT, "%s: the tensors cover %lld bytes of data but the file holds %lld after the "
                  "header (%s)", c->path, (long long)at, (long long)data_len,
                  at < data_len ? "trailing bytes" : "truncated file");
  return RE_OK;
}

re_status re_safetensors_parse(re_ckpt *c, const uint8_t *buf, int64_t len) {
  re_status st = RE_OK;
  re_json j = {0};
  st_entry *ents = NULL, **by = NULL;
  char label[512];
  if (len < 8)
    return re_err(RE_EFORMAT, "%s: %lld bytes is too short for a safetensors file (8-byte header length)",
                  c->path, (long long)len);
  uint64_t n = 0;
  for (int k = 7; k >= 0; k--)
    n = (n << 8) | buf[k];
  if (n > ST_MAX_HEADER)
    return re_err(RE_EFORMAT, "%s: declared header length %llu exceeds the limit of %d bytes", c->path,
                  (unsigned long long)n, ST_MAX_HEADER);
  if ((int64_t)n > len - 8)
    return re_err(RE_EFORMAT, "%s: declared header length %llu runs past the end of the file (%lld bytes)",
                  c->path, (unsigned long long)n, (long long)len);
  if (n < 2 || buf[8] != '{')
    return re_err(RE_EFORMAT, "%s: the header must be a JSON object starting with '{' at byte 8", c->path);
  snprintf(label, sizeof label, "%s: safetensors header", c->path);
  RE_CHECK(re_json_parse((const char *)buf + 8, (int64_t)n, ST_MAX_DEPTH, ST_MAX_VALUES, label, 8, &j));
  const re_json_node *root = &j.nodes[0];
  const uint8_t *data = buf + 8 + n;
  int64_t data_len = len - 8 - (int64_t)n;
  RE_CHECK(re_calloc(root->count, sizeof *ents, &ents));
  RE_CHECK(re_calloc(root->count, sizeof *by, &by));
  int64_t nt = 0, meta_seen = 0;
  for (int64_t k = root->first; k >= 0; k = j.nodes[k].next) {
    const re_json_node *v = &j.nodes[k];
    if (!strcmp(v->key, "__metadata__") && v->key_len == 12) {
      if (meta_seen++) {
        st = re_err(RE_EFORMAT, "%s: __metadata__ appears twice", c->path);
        goto done;
      }
      RE_CHECK(parse_metadata(c, &j, v));
      continue;
    }
    RE_CHECK(parse_entry(c, &j, v, &ents[nt]));
    by[nt] = &ents[nt];
    nt++;
  }
  RE_CHECK(check_layout(c, by, nt, data_len));
  for (int64_t k = 0; k < nt; k++) { /* header order */
    const st_entry *e = &ents[k];
    re_tensor_loc loc = {0};
    loc.base = data + e->begin;
    loc.storage_bytes = e->end - e->begin;
    loc.offset = 0;
    re_ckpt_contiguous_strides(e->ndim, e->shape, loc.strides);
    RE_CHECK(re_ckpt_add(c, e->name, e->dtype, e->ndim, e->shape, &loc));
  }
done:
  free(by);
  free(ents);
  re_json_free(&j);
  return st;
}

static re_status st_probe(const re_ckpt_probe *p, int *match) {
  *match = !p->is_dir && p->nhead >= 9 && p->head[8] == '{';
  return RE_OK;
}

static re_status st_open(const char *path, const re_ckpt_options *opt, re_ckpt **out) {
  re_ckpt *c = NULL;
  (void)opt;
  *out = NULL;
  RE_TRY(re_ckpt_alloc(path, RE_CKPT_SAFETENSORS, &c));
  re_status st = re_ckpt_map_file(c);
  if (st == RE_OK)
    st = re_safetensors_parse(c, (const uint8_t *)c->map, c->map_len);
  if (st != RE_OK) {
    re_ckpt_close(&c);
    return st;
  }
  *out = c;
  return RE_OK;
}

const re_ckpt_reader re_ckpt_reader_safetensors = {"safetensors", st_probe, st_open};
