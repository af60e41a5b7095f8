/* Format-independent part of the checkpoint API: detection, the tensor table,
 * lookup, conversion to float32 (strided gather) and zero-copy views. */
#include "ckpt_internal.h"
#include "repeval/npy.h"

#include <archive.h>
#include <archive_entry.h>
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
  int fd = open(c->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return re_err(RE_EIO, "%s: cannot open: %s", c->path, strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    close(fd);
    return re_err(RE_EIO, "%s: not a regular file", c->path);
  }
  c->map_len = sb.st_size;
  if (sb.st_size == 0) {
    close(fd);
    return re_err(RE_EFORMAT, "%s: empty file", c->path);
  }
  void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
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

/* ---- detection -------------------------------------------------------- */

/* A zip holding a member ending in "data.pkl" is a torch.save archive; otherwise .npz. */
static re_status zip_kind(const char *path, re_ckpt_format *fmt) {
  struct archive *ar = archive_read_new();
  if (!ar)
    return re_err(RE_ENOMEM, "libarchive");
  archive_read_support_format_zip_seekable(ar);
  if (archive_read_open_filename(ar, path, 1 << 16) != ARCHIVE_OK) {
    re_status st = re_err(RE_EFORMAT, "%s: unreadable zip archive: %s", path, archive_error_string(ar));
    archive_read_free(ar);
    return st;
  }
  struct archive_entry *e;
  *fmt = RE_CKPT_NPZ;
  while (archive_read_next_header(ar, &e) == ARCHIVE_OK) {
    const char *n = archive_entry_pathname(e);
    size_t len = n ? strlen(n) : 0;
    if (len >= 8 && !strcmp(n + len - 8, "data.pkl")) {
      *fmt = RE_CKPT_TORCH;
      break;
    }
  }
  archive_read_free(ar);
  return RE_OK;
}

static re_status detect(const char *path, re_ckpt_format *fmt) {
  uint8_t b[16] = {0};
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return re_err(RE_EIO, "%s: cannot open: %s", path, strerror(errno));
  ssize_t n = read(fd, b, sizeof b);
  close(fd);
  if (n >= 6 && !memcmp(b, "\x93NUMPY", 6)) {
    *fmt = RE_CKPT_NPY;
    return RE_OK;
  }
  if (n >= 4 && !memcmp(b, "PK\x03\x04", 4))
    return zip_kind(path, fmt);
  if (n >= 9 && b[8] == '{') {
    *fmt = RE_CKPT_SAFETENSORS;
    return RE_OK;
  }
  if (n >= 2 && b[0] == 0x80) /* a bare pickle: torch.save(..., _use_new_zipfile_serialization=False) */
    return re_err(RE_EUNSUPPORTED,
                  "%s: legacy (pre-1.6, non-zip) PyTorch checkpoint; re-save it with torch.save in a current "
                  "PyTorch or convert it to safetensors",
                  path);
  return re_err(RE_EFORMAT, "%s: unknown checkpoint format (expected safetensors, a torch.save zip, .npz or .npy)",
                path);
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && !strcmp(s + n - k, suffix);
}

re_status re_ckpt_open(const char *path, const re_ckpt_options *opt, re_ckpt **out) {
  re_ckpt_options defaults = {0};
  re_ckpt_format fmt = RE_CKPT_NPY;
  re_ckpt *c = NULL;
  char file[4096];
  struct stat sb;
  *out = NULL;
  if (!opt)
    opt = &defaults;
  if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) { /* a Hugging Face model folder */
    RE_TRY(re_ckpt_folder_file(path, file, sizeof file));
    path = file;
  }
  int sharded = ends_with(path, ".index.json");
  if (sharded)
    fmt = RE_CKPT_SAFETENSORS;
  else
    RE_TRY(detect(path, &fmt));
  RE_TRY(re_ckpt_alloc(path, fmt, &c));
  re_status st;
  switch (fmt) {
  case RE_CKPT_SAFETENSORS: st = sharded ? re_ckpt_load_sharded(c) : re_safetensors_load(c); break;
  case RE_CKPT_TORCH: st = re_torch_load(c, opt); break;
  case RE_CKPT_NPZ: st = re_npz_ckpt_load(c); break;
  case RE_CKPT_NPY: st = re_npy_ckpt_load(c); break;
  default: st = re_err(RE_EFORMAT, "%s: unknown format", path);
  }
  if (st != RE_OK) {
    re_ckpt_close(&c);
    return st;
  }
  *out = c;
  return RE_OK;
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
  if (c->map)
    munmap(c->map, (size_t)c->map_len);
  for (int64_t k = 0; k < c->nextra; k++)
    munmap(c->extra_maps[k], (size_t)c->extra_lens[k]);
  free(c->extra_maps);
  free(c->extra_lens);
  free(c->meta_keys);
  free(c->meta_values);
  free(c->owned);
  free(c->names);
  free(c->slots);
  free(c->info);
  free(c->loc);
  free(c->path);
  free(c);
  *pc = NULL;
}

re_ckpt_format re_ckpt_format_of(const re_ckpt *c) { return c->format; }

const char *re_ckpt_format_name(re_ckpt_format f) {
  switch (f) {
  case RE_CKPT_SAFETENSORS: return "safetensors";
  case RE_CKPT_TORCH: return "pytorch";
  case RE_CKPT_NPZ: return "npz";
  case RE_CKPT_NPY: return "npy";
  }
  return "unknown";
}

const char *re_ckpt_path(const re_ckpt *c) { return c->path; }

int64_t re_ckpt_count(const re_ckpt *c) { return c->count; }

const re_tensor_info *re_ckpt_info(const re_ckpt *c, int64_t i) {
  return (i >= 0 && i < c->count) ? &c->info[i] : NULL;
}

re_status re_ckpt_find(const re_ckpt *c, const char *name, int64_t *index) {
  if (c->nslots) {
    int64_t slot = name_slot(c, name);
    if (c->slots[slot]) {
      *index = c->slots[slot] - 1;
      return RE_OK;
    }
  }
  return re_err(RE_EINVAL, "%s: no tensor named '%s'", c->path, name);
}

static int is_contiguous(const re_tensor_info *ti, const re_tensor_loc *loc) {
  int64_t s = 1;
  for (int d = ti->ndim - 1; d >= 0; d--) {
    if (ti->shape[d] != 1 && loc->strides[d] != s)
      return 0;
    s *= ti->shape[d];
  }
  return 1;
}

re_status re_ckpt_read_f32(const re_ckpt *c, int64_t i, float *out) {
  if (i < 0 || i >= c->count)
    return re_err(RE_EINVAL, "%s: tensor index %lld out of range", c->path, (long long)i);
  const re_tensor_info *ti = &c->info[i];
  const re_tensor_loc *loc = &c->loc[i];
  int64_t isz = re_dtype_size(ti->dtype);
  if (ti->numel == 0)
    return RE_OK;
  if (is_contiguous(ti, loc)) {
    re_dtype_to_f32(ti->dtype, loc->swap, loc->base + loc->offset * isz, ti->numel, out);
    return RE_OK;
  }
  /* strided gather: walk the multi-index, innermost dimension as a run */
  int nd = ti->ndim;
  int64_t idx[RE_TENSOR_MAX_DIMS] = {0};
  int64_t inner = ti->shape[nd - 1], istride = loc->strides[nd - 1];
  for (int64_t k = 0; k < ti->numel; k += inner) {
    int64_t off = loc->offset;
    for (int d = 0; d < nd - 1; d++)
      off += idx[d] * loc->strides[d];
    for (int64_t t = 0; t < inner; t++)
      re_dtype_to_f32(ti->dtype, loc->swap, loc->base + (off + t * istride) * isz, 1, out + k + t);
    for (int d = nd - 2; d >= 0; d--) {
      if (++idx[d] < ti->shape[d])
        break;
      idx[d] = 0;
    }
  }
  return RE_OK;
}

re_status re_ckpt_view_f32(const re_ckpt *c, int64_t i, const float **out) {
  if (i < 0 || i >= c->count)
    return re_err(RE_EINVAL, "%s: tensor index %lld out of range", c->path, (long long)i);
  const re_tensor_info *ti = &c->info[i];
  const re_tensor_loc *loc = &c->loc[i];
  const uint8_t *p = loc->base + loc->offset * 4;
  if (ti->dtype != RE_DTYPE_F32 || loc->swap || !is_contiguous(ti, loc) || ((uintptr_t)p % 4) != 0)
    return re_err(RE_EUNSUPPORTED, "%s: tensor '%s' is not stored as aligned contiguous float32", c->path,
                  ti->name);
  *out = (const float *)p;
  return RE_OK;
}

int64_t re_ckpt_metadata_count(const re_ckpt *c) { return c->nmeta; }

void re_ckpt_metadata(const re_ckpt *c, int64_t i, const char **key, const char **value) {
  *key = (i >= 0 && i < c->nmeta) ? c->meta_keys[i] : NULL;
  *value = (i >= 0 && i < c->nmeta) ? c->meta_values[i] : NULL;
}

/* ---- .npy and .npz as tensor sources ---------------------------------- */

static re_status add_npy_array(re_ckpt *c, const char *name, const re_npy_header *h, const uint8_t *data) {
  if (h->ndim > RE_TENSOR_MAX_DIMS)
    return re_err(RE_EUNSUPPORTED, "%s: array '%s' has %d dimensions (at most %d)", c->path, name, h->ndim,
                  RE_TENSOR_MAX_DIMS);
  re_tensor_loc loc = {0};
  loc.base = data;
  loc.storage_bytes = h->nbytes;
  loc.swap = h->swap;
  if (h->fortran_order) { /* column-major: stride of dim d is the product of the earlier dims */
    int64_t s = 1;
    for (int d = 0; d < h->ndim; d++) {
      loc.strides[d] = s;
      s *= h->shape[d] > 0 ? h->shape[d] : 1;
    }
  } else {
    re_ckpt_contiguous_strides(h->ndim, h->shape, loc.strides);
  }
  return re_ckpt_add(c, name, h->dtype, h->ndim, h->shape, &loc);
}

re_status re_npy_ckpt_load(re_ckpt *c) {
  RE_TRY(re_ckpt_map_file(c));
  re_npy_header h;
  RE_TRY(re_npy_parse_header(c->map, c->map_len, c->path, &h));
  const char *base = strrchr(c->path, '/');
  base = base ? base + 1 : c->path;
  char name[256];
  snprintf(name, sizeof name, "%s", base);
  char *dot = strrchr(name, '.');
  if (dot)
    *dot = '\0';
  return add_npy_array(c, name, &h, (const uint8_t *)c->map + h.data_offset);
}

re_status re_npz_ckpt_load(re_ckpt *c) {
  re_npz *z = NULL;
  RE_TRY(re_npz_open(c->path, &z));
  re_status st = RE_OK;
  for (int64_t k = 0; k < re_npz_count(z) && st == RE_OK; k++) {
    re_npy *a = NULL;
    st = re_npz_load(z, re_npz_name(z, k), &a);
    if (st != RE_OK)
      break;
    /* keep the array's bytes: take ownership of its buffer */
    uint8_t *buf = a->owned;
    a->owned = NULL;
    st = re_ckpt_own(c, buf);
    if (st == RE_OK)
      st = add_npy_array(c, re_npz_name(z, k), &a->h, buf);
    re_npy_close(&a);
  }
  re_npz_close(&z);
  return st;
}
