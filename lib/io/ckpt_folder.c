/* Checkpoints of Hugging Face model folders: a folder resolves to its weights file
 * (model.safetensors, else model.safetensors.index.json, else pytorch_model.bin), and a
 * sharded safetensors index is read as one checkpoint: every shard named by the
 * index's weight_map is validated and mapped, and each tensor must sit in the shard
 * the index says. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "ckpt_internal.h"
#include "jsonparse.h"

#define INDEX_MAX_BYTES (64 << 20)
#define MAX_SHARDS 4096

static int exists(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

re_status re_ckpt_folder_file(const char *dir, char *out, size_t cap) {
  static const char *const files[] = {"model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"};
  size_t n = strlen(dir);
  const char *sep = n && dir[n - 1] == '/' ? "" : "/";
  for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
    if ((size_t)snprintf(out, cap, "%s%s%s", dir, sep, files[k]) >= cap)
      return re_err(RE_EINVAL, "%s: path too long", dir);
    if (exists(out))
      return RE_OK;
  }
  return re_err(RE_EIO, "%s: a folder without model.safetensors, model.safetensors.index.json or pytorch_model.bin",
                dir);
}

/* Hand the map of a loaded shard to the index's checkpoint (unmapped when it closes). */
static re_status keep_map(re_ckpt *c, re_ckpt *shard) {
  RE_TRY(re_realloc(&c->extra_maps, c->nextra + 1, sizeof *c->extra_maps));
  RE_TRY(re_realloc(&c->extra_lens, c->nextra + 1, sizeof *c->extra_lens));
  c->extra_maps[c->nextra] = shard->map;
  c->extra_lens[c->nextra] = shard->map_len;
  c->nextra++;
  shard->map = NULL;
  return RE_OK;
}

static re_status read_index(const char *path, char **text, int64_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return re_err(RE_EIO, "%s: cannot open: %s", path, strerror(errno));
  re_status st = re_malloc(INDEX_MAX_BYTES + 1, 1, text);
  if (st == RE_OK) {
    *len = (int64_t)fread(*text, 1, INDEX_MAX_BYTES + 1, f);
    if (ferror(f))
      st = re_err(RE_EIO, "%s: read error", path);
    else if (*len > INDEX_MAX_BYTES)
      st = re_err(RE_EFORMAT, "%s: larger than %d bytes", path, INDEX_MAX_BYTES);
  }
  fclose(f);
  return st;
}

re_status re_ckpt_load_sharded(re_ckpt *c) {
  char *text = NULL, *dir = NULL, **shards = NULL;
  int64_t len = 0, nshards = 0, *shard_of = NULL;
  re_json j = {0};
  re_ckpt *shard = NULL;
  re_status st = RE_OK;
  RE_CHECK(read_index(c->path, &text, &len));
  RE_CHECK(re_json_parse(text, len, 16, 4 * RE_CKPT_MAX_TENSORS, c->path, 0, &j));
  int64_t wm = -1;
  if (j.nodes[0].type == RE_JSON_OBJECT)
    for (int64_t k = j.nodes[0].first; k >= 0; k = j.nodes[k].next)
      if (!strcmp(j.nodes[k].key, "weight_map"))
        wm = k;
  if (wm < 0 || j.nodes[wm].type != RE_JSON_OBJECT) {
    st = re_err(RE_EFORMAT, "%s: no 'weight_map' object (a sharded safetensors index maps tensor names to files)",
                c->path);
    goto done;
  }
  RE_CHECK(re_strdup(c->path, &dir));
  char *slash = strrchr(dir, '/');
  if (slash)
    slash[1] = '\0';
  else
    dir[0] = '\0';
  /* the distinct shard files, in order of first mention */
  for (int64_t k = j.nodes[wm].first; k >= 0; k = j.nodes[k].next) {
    const re_json_node *v = &j.nodes[k];
    if (v->type != RE_JSON_STRING || !v->str_len || strchr(v->str, '/') || !strcmp(v->str, "..") ||
        (int64_t)strlen(v->str) != v->str_len) {
      st = re_err(RE_EFORMAT, "%s: weight_map['%s'] must be a file name in the same folder", c->path, v->key);
      goto done;
    }
    int known = 0;
    for (int64_t s = 0; s < nshards && !known; s++)
      known = !strcmp(shards[s], v->str);
    if (known)
      continue;
    if (nshards == MAX_SHARDS) {
      st = re_err(RE_EFORMAT, "%s: more than %d shard files", c->path, MAX_SHARDS);
      goto done;
    }
    RE_CHECK(re_realloc(&shards, nshards + 1, sizeof *shards));
    shards[nshards++] = (char *)v->str;
  }
  for (int64_t s = 0; s < nshards; s++) {
    size_t need = strlen(dir) + strlen(shards[s]) + 1;
    char *sp;
    RE_CHECK(re_malloc((int64_t)need, 1, &sp));
    snprintf(sp, need, "%s%s", dir, shards[s]);
    st = re_ckpt_alloc(sp, RE_CKPT_SAFETENSORS, &shard);
    free(sp);
    if (st != RE_OK)
      goto done;
    RE_CHECK(re_safetensors_load(shard));
    RE_CHECK(re_realloc(&shard_of, c->count + shard->count + 1, sizeof *shard_of));
    for (int64_t i = 0; i < shard->count; i++) {
      const re_tensor_info *ti = &shard->info[i];
      shard_of[c->count] = s;
      RE_CHECK(re_ckpt_add(c, ti->name, ti->dtype, ti->ndim, ti->shape, &shard->loc[i]));
    }
    for (int64_t m = 0; m < shard->nmeta; m++)
      if (s == 0)
        RE_CHECK(re_ckpt_add_metadata(c, shard->meta_keys[m], shard->meta_values[m]));
    RE_CHECK(keep_map(c, shard));
    re_ckpt_close(&shard);
  }
  /* every tensor where the index says, and nothing the index does not list */
  int64_t listed = 0;
  for (int64_t k = j.nodes[wm].first; k >= 0; k = j.nodes[k].next, listed++) {
    int64_t idx;
    if (re_ckpt_find(c, j.nodes[k].key, &idx) != RE_OK || strcmp(shards[shard_of[idx]], j.nodes[k].str)) {
      st = re_err(RE_EFORMAT, "%s: weight_map puts '%s' in %s, which has no such tensor", c->path, j.nodes[k].key,
                  j.nodes[k].str);
      goto done;
    }
  }
  if (listed != c->count) {
    st = re_err(RE_EFORMAT, "%s: the shards hold %lld tensors but weight_map lists %lld", c->path,
                (long long)c->count, (long long)listed);
    goto done;
  }
done:
  re_ckpt_close(&shard);
  free(shard_of);
  free(shards);
  free(dir);
  re_json_free(&j);
  free(text);
  return st;
}
