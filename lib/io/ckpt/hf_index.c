/* Index files of sharded Hugging Face checkpoints; see hf_index.h. The names and
 * shard files come from the strict JSON parser of the safetensors reader. */
#include "hf_index.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDX_MAX_DEPTH 64
#define IDX_MAX_VALUES 8000000

static const char *json_type_name(re_json_type t) {
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

/* A shard must be a file of the model folder itself: no path separators, no "..". */
static int plain_file_name(const char *s) {
  return *s && strcmp(s, ".") && !strchr(s, '/') && !strstr(s, "..");
}

static int cmp_entry_name(const void *a, const void *b) {
  return strcmp(((const re_hf_name *)a)->name, ((const re_hf_name *)b)->name);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Entry index of `name` in x->by_name, or -1. */
static int64_t find_entry(const re_hf_index *x, const char *name) {
  int64_t lo = 0, hi = x->count;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    int c = strcmp(x->by_name[mid].name, name);
    if (!c)
      return x->by_name[mid].entry;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

static int64_t find_shard(const re_hf_index *x, const char *file) {
  int64_t lo = 0, hi = x->nshards;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    int c = strcmp(x->shards[mid], file);
    if (!c)
      return mid;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

re_status re_hf_index_parse(const char *path, const uint8_t *buf, int64_t len, re_hf_index *x) {
  re_status st = RE_OK;
  const char **files = NULL;
  memset(x, 0, sizeof *x);
  x->path = path;
  x->metadata = -1;
  if (len > RE_HF_INDEX_MAX_BYTES)
    return re_err(RE_EFORMAT, "%s: %lld bytes is more than the limit of %d for an index file", path, (long long)len,
                  RE_HF_INDEX_MAX_BYTES);
  RE_CHECK(re_json_parse((const char *)buf, len, IDX_MAX_DEPTH, IDX_MAX_VALUES, path, 0, &x->json));
  const re_json *j = &x->json;
  const re_json_node *root = &j->nodes[0];
  if (root->type != RE_JSON_OBJECT) {
    st = re_err(RE_EFORMAT, "%s: expected a JSON object with a \"weight_map\", found %s", path,
                json_type_name(root->type));
    goto done;
  }
  int64_t wm = -1;
  for (int64_t k = root->first; k >= 0; k = j->nodes[k].next) {
    const re_json_node *v = &j->nodes[k];
    int64_t *slot = !strcmp(v->key, "weight_map") ? &wm : !strcmp(v->key, "metadata") ? &x->metadata : NULL;
    if (!slot || (int64_t)strlen(v->key) != v->key_len)
      continue; /* other keys carry nothing we use */
    if (*slot >= 0) {
      st = re_err(RE_EFORMAT, "%s: \"%s\" appears twice", path, v->key);
      goto done;
    }
    if (v->type != RE_JSON_OBJECT) {
      st = re_err(RE_EFORMAT, "%s: \"%s\" must be an object, found %s (byte %lld)", path, v->key,
                  json_type_name(v->type), (long long)v->pos);
      goto done;
    }
    *slot = k;
  }
  if (wm < 0) {
    st = re_err(RE_EFORMAT, "%s: no \"weight_map\" (tensor name -> shard file)", path);
    goto done;
  }
  const re_json_node *map = &j->nodes[wm];
  if (map->count == 0) {
    st = re_err(RE_EFORMAT, "%s: \"weight_map\" names no tensor", path);
    goto done;
  }
  if (map->count > RE_CKPT_MAX_TENSORS) {
    st = re_err(RE_EFORMAT, "%s: \"weight_map\" names more than %d tensors", path, RE_CKPT_MAX_TENSORS);
    goto done;
  }
  RE_CHECK(re_calloc(map->count, sizeof *x->names, &x->names));
  RE_CHECK(re_calloc(map->count, sizeof *x->shard, &x->shard));
  RE_CHECK(re_calloc(map->count, sizeof *x->by_name, &x->by_name));
  RE_CHECK(re_calloc(map->count, sizeof *files, &files));
  for (int64_t k = map->first; k >= 0; k = j->nodes[k].next) {
    const re_json_node *v = &j->nodes[k];
    if ((int64_t)strlen(v->key) != v->key_len) {
      st = re_err(RE_EFORMAT, "%s: a tensor name in \"weight_map\" contains a NUL character ('%s...')", path, v->key);
      goto done;
    }
    if (v->type != RE_JSON_STRING) {
      st = re_err(RE_EFORMAT, "%s: weight_map['%s'] must be a shard file name (a string), found %s", path, v->key,
                  json_type_name(v->type));
      goto done;
    }
    if ((int64_t)strlen(v->str) != v->str_len || !plain_file_name(v->str)) {
      st = re_err(RE_EFORMAT, "%s: weight_map['%s'] names shard '%s', which is not a file name in the model folder "
                  "(no '/' or '..')", path, v->key, v->str);
      goto done;
    }
    x->names[x->count] = v->key;
    files[x->count] = v->str;
    x->by_name[x->count].name = v->key;
    x->by_name[x->count].entry = x->count;
    x->count++;
  }
  qsort(x->by_name, (size_t)x->count, sizeof *x->by_name, cmp_entry_name);
  for (int64_t k = 1; k < x->count; k++)
    if (!strcmp(x->by_name[k - 1].name, x->by_name[k].name)) {
      st = re_err(RE_EFORMAT, "%s: \"weight_map\" names tensor '%s' twice", path, x->by_name[k].name);
      goto done;
    }
  /* the distinct shard files, sorted */
  RE_CHECK(re_calloc(x->count, sizeof *x->shards, &x->shards));
  memcpy(x->shards, files, sizeof *files * (size_t)x->count);
  qsort(x->shards, (size_t)x->count, sizeof *x->shards, cmp_str);
  for (int64_t k = 0; k < x->count; k++)
    if (!x->nshards || strcmp(x->shards[x->nshards - 1], x->shards[k]))
      x->shards[x->nshards++] = x->shards[k];
  if (x->nshards > RE_HF_INDEX_MAX_SHARDS) {
    st = re_err(RE_EFORMAT, "%s: more than %d shard files", path, RE_HF_INDEX_MAX_SHARDS);
    goto done;
  }
  RE_CHECK(re_calloc(x->nshards, sizeof *x->first, &x->first));
  for (int64_t k = 0; k < x->nshards; k++)
    x->first[k] = -1;
  for (int64_t e = 0; e < x->count; e++) {
    x->shard[e] = find_shard(x, files[e]);
    if (x->first[x->shard[e]] < 0)
      x->first[x->shard[e]] = e;
  }
done:
  free(files);
  if (st != RE_OK)
    re_hf_index_free(x);
  return st;
}

void re_hf_index_free(re_hf_index *x) {
  if (!x)
    return;
  re_json_free(&x->json);
  free(x->names);
  free(x->shard);
  free(x->by_name);
  free(x->shards);
  free(x->first);
  memset(x, 0, sizeof *x);
  x->metadata = -1;
}

/* The index's metadata: strings as they are, non-negative integers in decimal
 * (total_size); other values are skipped. */
static re_status add_index_metadata(re_ckpt *c, const re_hf_index *x) {
  if (x->metadata < 0)
    return RE_OK;
  const re_json *j = &x->json;
  for (int64_t k = j->nodes[x->metadata].first; k >= 0; k = j->nodes[k].next) {
    const re_json_node *v = &j->nodes[k];
    char num[32];
    const char *val = NULL;
    if ((int64_t)strlen(v->key) != v->key_len || re_ckpt_lookup_metadata(c, v->key) >= 0)
      continue;
    if (v->type == RE_JSON_STRING && (int64_t)strlen(v->str) == v->str_len) {
      val = v->str;
    } else if (v->type == RE_JSON_NUMBER && v->num_kind == RE_JSON_NUM_UINT) {
      snprintf(num, sizeof num, "%lld", (long long)v->num);
      val = num;
    }
    if (val)
      RE_TRY(re_ckpt_add_metadata(c, v->key, val));
  }
  return RE_OK;
}

re_status re_hf_index_assemble(re_ckpt *c, const re_hf_index *x) {
  if (c->nparts != x->nshards)
    return re_err(RE_EINVAL, "%s: %lld shards opened for %lld in the index", x->path, (long long)c->nparts,
                  (long long)x->nshards);
  /* every entry is in the shard it names */
  for (int64_t e = 0; e < x->count; e++)
    if (re_ckpt_lookup(c->parts[x->shard[e]], x->names[e]) < 0)
      return re_err(RE_EFORMAT, "%s: weight_map['%s'] names shard '%s', which does not hold that tensor", x->path,
                    x->names[e], x->shards[x->shard[e]]);
  /* every shard tensor is listed, for this shard */
  for (int64_t k = 0; k < c->nparts; k++) {
    const re_ckpt *p = c->parts[k];
    for (int64_t i = 0; i < p->count; i++) {
      int64_t e = find_entry(x, p->names[i]);
      if (e < 0)
        return re_err(RE_EFORMAT, "%s: shard '%s' holds tensor '%s', which \"weight_map\" does not list", x->path,
                      x->shards[k], p->names[i]);
      if (x->shard[e] != k)
        return re_err(RE_EFORMAT, "%s: tensor '%s' is stored in two shards, '%s' (where weight_map['%s'] puts it) "
                      "and '%s'", x->path, p->names[i], x->shards[x->shard[e]], p->names[i], x->shards[k]);
    }
  }
  for (int64_t e = 0; e < x->count; e++) {
    const re_ckpt *p = c->parts[x->shard[e]];
    int64_t i = re_ckpt_lookup(p, x->names[e]);
    const re_tensor_info *ti = &p->info[i];
    RE_TRY(re_ckpt_add(c, ti->name, ti->dtype, ti->ndim, ti->shape, &p->loc[i]));
    c->shard[c->count - 1] = x->shard[e];
  }
  RE_TRY(add_index_metadata(c, x));
  return re_ckpt_merge_part_metadata(c);
}
