/* The tensor table every checkpoint reader fills (see ckpt_internal.h): allocation,
 * the file map, validated appends with a name hash, metadata, and release. */
#include "ckpt_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

re_status re_ckpt_alloc(const char *path, re_ckpt_format format, re_ckpt **out) {
  re_ckpt *c;
  *out = NULL;
  RE_TRY(re_calloc(1, sizeof *c, &c));
  c->format = format;
  if (re_strdup(path, &c->path) != RE_OK) {
    free(c);
    return RE_ENOMEM;
  }
  *out = c;
  return RE_OK;
}

re_status re_ckpt_map_file(re_ckpt *c) {
  int fd;
  RE_TRY(re_open_regular(c->path, &fd));
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    close(fd);
    return re_err(RE_EIO, "%s: not a regular file", c->path);
  }
  c->map_len = sb.st_size;
  if (sb.st_size == 0) {
    close(fd);
    return re_err(RE_EFORMAT, "%s: empty file", c->path);
  }
  void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd); /* the mapping stays valid: a model of 100+ shards holds no descriptors */
  if (m == MAP_FAILED)
    return re_err(RE_EIO, "%s: mmap failed: %s", c->path, strerror(errno));
  c->map = m;
  return RE_OK;
}

void re_ckpt_contiguous_strides(int ndim, const int64_t *shape, int64_t *strides) {
  int64_t s = 1;
  for (int d = ndim - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d] > 0 ? shape[d] : 1;
  }
}

int re_ckpt_is_contiguous(const re_tensor_info *ti, const re_tensor_loc *loc) {
  int64_t s = 1;
  for (int d = ti->ndim - 1; d >= 0; d--) {
    if (ti->shape[d] != 1 && loc->strides[d] != s)
      return 0;
    s *= ti->shape[d];
  }
  return 1;
}

const char *re_ckpt_basename(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

static uint64_t name_hash(const char *s) { return re_fnv1a64(RE_FNV1A64_INIT, s, strlen(s)); }

/* Slot of `name` in the hash: its entry, or the empty slot where it would go. */
static int64_t name_slot(const re_ckpt *c, const char *name) {
  int64_t mask = c->nslots - 1, k = (int64_t)(name_hash(name) & (uint64_t)mask);
  while (c->slots[k] && strcmp(c->names[c->slots[k] - 1], name))
    k = (k + 1) & mask;
  return k;
}

static re_status grow_slots(re_ckpt *c) {
  int64_t n = c->nslots ? 2 * c->nslots : 64;
  int64_t *old = c->slots, nold = c->nslots;
  RE_TRY(re_calloc(n, sizeof(int64_t), &c->slots));
  c->nslots = n;
  for (int64_t k = 0; k < nold; k++)
    if (old[k])
      c->slots[name_slot(c, c->names[old[k] - 1])] = old[k];
  free(old);
  return RE_OK;
}

int64_t re_ckpt_lookup(const re_ckpt *c, const char *name) {
  if (!c->nslots)
    return -1;
  int64_t slot = name_slot(c, name);
  return c->slots[slot] ? c->slots[slot] - 1 : -1;
}

int64_t re_ckpt_lookup_metadata(const re_ckpt *c, const char *key) {
  for (int64_t k = 0; k < c->nmeta; k++)
    if (!strcmp(c->meta_keys[k], key))
      return k;
  return -1;
}

re_status re_ckpt_add(re_ckpt *c, const char *name, re_dtype dt, int ndim, const int64_t *shape,
                      const re_tensor_loc *loc) {
  if (ndim < 0 || ndim > RE_TENSOR_MAX_DIMS)
    return re_err(RE_EFORMAT, "%s: tensor '%s' has %d dimensions (at most %d supported)", c->path, name, ndim,
                  RE_TENSOR_MAX_DIMS);
  if (c->count >= RE_CKPT_MAX_TENSORS)
    return re_err(RE_EFORMAT, "%s: more than %d tensors", c->path, RE_CKPT_MAX_TENSORS);
  int64_t numel = 1, nbytes, isz = re_dtype_size(dt);
  if (isz <= 0)
    return re_err(RE_EUNSUPPORTED, "%s: tensor '%s' has an unsupported dtype", c->path, name);
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 0)
      return re_err(RE_EFORMAT, "%s: tensor '%s' has negative dimension %lld", c->path, name,
                    (long long)shape[d]);
    if (re_mul_i64(numel, shape[d], &numel) != RE_OK)
      return re_err(RE_EFORMAT, "%s: tensor '%s': element count overflows", c->path, name);
  }
  if (re_mul_i64(numel, isz, &nbytes) != RE_OK)
    return re_err(RE_EFORMAT, "%s: tensor '%s': byte size overflows", c->path, name);
  /* every addressed element must lie inside the storage: min and max offsets */
  if (numel > 0) {
    if (loc->offset < 0)
      return re_err(RE_EFORMAT, "%s: tensor '%s': negative storage offset", c->path, name);
    int64_t hi = loc->offset;
    for (int d = 0; d < ndim; d++) {
      int64_t span;
      if (loc->strides[d] < 0)
        return re_err(RE_EFORMAT, "%s: tensor '%s': negative stride", c->path, name);
      if (re_mul_i64(shape[d] - 1, loc->strides[d], &span) != RE_OK || re_add_i64(hi, span, &hi) != RE_OK)
        return re_err(RE_EFORMAT, "%s: tensor '%s': strides overflow", c->path, name);
    }
    int64_t end_bytes;
    if (re_add_i64(hi, 1, &end_bytes) != RE_OK || re_mul_i64(end_bytes, isz, &end_bytes) != RE_OK ||
        end_bytes > loc->storage_bytes)
      return re_err(RE_EFORMAT, "%s: tensor '%s' (%s, %lld elements) reaches beyond its storage of %lld bytes",
                    c->path, name, re_dtype_name(dt), (long long)numel, (long long)loc->storage_bytes);
  }
  if (2 * (c->count + 1) >= c->nslots)
    RE_TRY(grow_slots(c));
  int64_t slot = name_slot(c, name);
  if (c->slots[slot])
    return re_err(RE_EFORMAT, "%s: duplicate tensor name '%s'", c->path, name);
  if (c->count == c->cap) {
    int64_t ncap = c->cap ? 2 * c->cap : 16;
    RE_TRY(re_realloc(&c->info, ncap, sizeof *c->info));
    RE_TRY(re_realloc(&c->loc, ncap, sizeof *c->loc));
    RE_TRY(re_realloc(&c->names, ncap, sizeof *c->names));
    RE_TRY(re_realloc(&c->shard, ncap, sizeof *c->shard));
    c->cap = ncap;
  }
  RE_TRY(re_strdup(name, &c->names[c->count]));
  re_tensor_info *ti = &c->info[c->count];
  memset(ti, 0, sizeof *ti);
  ti->name = c->names[c->count];
  ti->dtype = dt;
  ti->ndim = ndim;
  for (int d = 0; d < ndim; d++)
    ti->shape[d] = shape[d];
  ti->numel = numel;
  ti->nbytes = nbytes;
  c->loc[c->count] = *loc;
  c->shard[c->count] = 0;
  c->count++;
  c->slots[slot] = c->count;
  return RE_OK;
}

re_status re_ckpt_own(re_ckpt *c, uint8_t *buf) {
  re_status st = re_realloc(&c->owned, c->nowned + 1, sizeof *c->owned);
  if (st != RE_OK) {
    free(buf);
    return st;
  }
  c->owned[c->nowned++] = buf;
  return RE_OK;
}

re_status re_ckpt_add_metadata(re_ckpt *c, const char *key, const char *value) {
  RE_TRY(re_realloc(&c->meta_keys, c->nmeta + 1, sizeof(char *)));
  RE_TRY(re_realloc(&c->meta_values, c->nmeta + 1, sizeof(char *)));
  RE_TRY(re_strdup(key, &c->meta_keys[c->nmeta]));
  if (re_strdup(value, &c->meta_values[c->nmeta]) != RE_OK) {
    free(c->meta_keys[c->nmeta]);
    return RE_ENOMEM;
  }
  c->nmeta++;
  return RE_OK;
}

re_status re_ckpt_merge_part_metadata(re_ckpt *c) {
  for (int64_t k = 0; k < c->nparts; k++) {
    const re_ckpt *p = c->parts[k];
    for (int64_t m = 0; m < p->nmeta; m++)
      if (re_ckpt_lookup_metadata(c, p->meta_keys[m]) < 0)
        RE_TRY(re_ckpt_add_metadata(c, p->meta_keys[m], p->meta_values[m]));
  }
  return RE_OK;
}

/* The name left after the first listed prefix that `name` starts with (and that
 * leaves something), or `name` itself. */
static const char *strip_one(const char *name, const char *prefixes) {
  const char *p = prefixes;
  while (*p) {
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n && !strncmp(name, p, n) && name[n])
      return name + n;
    p += n;
    if (*p == ',')
      p++;
  }
  return name;
}

re_status re_ckpt_strip_prefix(re_ckpt *c, const char *prefixes) {
  re_status st = RE_OK;
  char **names = NULL;
  int64_t *slots = NULL, nslots = c->nslots, made = 0;
  if (!c->count)
    return RE_OK;
  RE_CHECK(re_calloc(c->count, sizeof *names, &names));
  RE_CHECK(re_calloc(nslots, sizeof *slots, &slots));
  for (; made < c->count; made++) {
    const char *n = strip_one(c->names[made], prefixes);
    RE_CHECK(re_strdup(n, &names[made]));
    int64_t mask = nslots - 1, k = (int64_t)(name_hash(n) & (uint64_t)mask);
    while (slots[k] && strcmp(names[slots[k] - 1], n))
      k = (k + 1) & mask;
    if (slots[k]) {
      st = re_err(RE_EFORMAT, "%s: removing the prefixes '%s' gives '%s' and '%s' the same name '%s'", c->path,
                  prefixes, c->names[slots[k] - 1], c->names[made], n);
      made++;
      goto done;
    }
    slots[k] = made + 1;
  }
  for (int64_t i = 0; i < c->count; i++) { /* commit: swap the names and the hash */
    char *old = c->names[i];
    c->names[i] = names[i];
    names[i] = old;
    c->info[i].name = c->names[i];
  }
  free(c->slots);
  c->slots = slots;
  slots = NULL;
done:
  for (int64_t i = 0; i < made; i++)
    free(names[i]);
  free(names);
  free(slots);
  return st;
}

void re_ckpt_close(re_ckpt **pc) {
  re_ckpt *c = *pc;
  if (!c)
    return;
  for (int64_t k = 0; k < c->count; k++)
    free(c->names[k]);
  for (int64_t k = 0; k < c->nowned; k++)
    free(c->owned[k]);
  for (int64_t k = 0; k < c->nmeta; k++) {
    free(c->meta_keys[k]);
    free(c->meta_values[k]);
  }
  for (int64_t k = 0; k < c->nparts; k++)
    re_ckpt_close(&c->parts[k]);
  if (c->map)
    munmap(c->map, (size_t)c->map_len);
  free(c->parts);
  free(c->folder);
  free(c->meta_keys);
  free(c->meta_values);
  free(c->owned);
  free(c->names);
  free(c->shard);
  free(c->slots);
  free(c->info);
  free(c->loc);
  free(c->path);
  free(c);
  *pc = NULL;
}
