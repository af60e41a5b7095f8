/* The checkpoint API: the dispatcher (which reader takes a path) and the
 * format-independent accessors (lookup, conversion to float32 with strided
 * gather, zero-copy views, metadata). Readers register in the table below; they
 * fill a checkpoint with the helpers of ckpt_table.c and never call back here. */
#define _DEFAULT_SOURCE /* madvise (MADV_DONTNEED: glibc ignores posix_madvise's) */
#include "ckpt_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* In probing order: the first reader whose probe matches opens the path. The
 * safetensors probe (byte 8 is '{') precedes the torch one, whose legacy-pickle
 * test (byte 0 is 0x80) would also match a header length such as 128; torch.save
 * zips are told from .npz archives by their member names. */
static const re_ckpt_reader *const readers[] = {
    &re_ckpt_reader_folder, &re_ckpt_reader_npy, &re_ckpt_reader_safetensors, &re_ckpt_reader_torch,
    &re_ckpt_reader_npz,
};

re_status re_ckpt_open(const char *path, const re_ckpt_options *opt, re_ckpt **out) {
  re_ckpt_options defaults = {0};
  uint8_t head[16] = {0};
  re_ckpt_probe p = {path, 0, head, 0};
  *out = NULL;
  if (!opt)
    opt = &defaults;
  struct stat sb;
  if (stat(path, &sb) != 0)
    return re_err(RE_EIO, "%s: cannot open: %s", path, strerror(errno));
  p.is_dir = S_ISDIR(sb.st_mode);
  if (p.is_dir) {
    p.head = NULL;
  } else {
    int fd;
    RE_TRY(re_open_regular(path, &fd)); /* a FIFO or device is refused, never waited on */
    ssize_t n = read(fd, head, sizeof head);
    close(fd);
    p.nhead = n > 0 ? n : 0;
  }
  for (size_t k = 0; k < sizeof readers / sizeof readers[0]; k++) {
    int match = 0;
    RE_TRY(readers[k]->probe(&p, &match));
    if (match)
      return readers[k]->open(path, opt, out);
  }
  return re_err(RE_EFORMAT, "%s: unknown checkpoint format (expected safetensors, a torch.save zip, .npz or .npy)",
                path);
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

const char *re_ckpt_folder(const re_ckpt *c) { return c->folder; }

int64_t re_ckpt_shard_count(const re_ckpt *c) { return c->nparts ? c->nparts : 1; }

const char *re_ckpt_shard_path(const re_ckpt *c, int64_t k) {
  if (!c->nparts)
    return k == 0 ? c->path : NULL;
  return (k >= 0 && k < c->nparts) ? c->parts[k]->path : NULL;
}

int64_t re_ckpt_tensor_shard(const re_ckpt *c, int64_t i) { return (i >= 0 && i < c->count) ? c->shard[i] : -1; }

int64_t re_ckpt_count(const re_ckpt *c) { return c->count; }

const re_tensor_info *re_ckpt_info(const re_ckpt *c, int64_t i) {
  return (i >= 0 && i < c->count) ? &c->info[i] : NULL;
}

re_status re_ckpt_find(const re_ckpt *c, const char *name, int64_t *index) {
  int64_t i = re_ckpt_lookup(c, name);
  if (i < 0)
    return re_err(RE_EINVAL, "%s: no tensor named '%s'", c->path, name);
  *index = i;
  return RE_OK;
}

re_status re_ckpt_read_f32(const re_ckpt *c, int64_t i, float *out) {
  if (i < 0 || i >= c->count)
    return re_err(RE_EINVAL, "%s: tensor index %lld out of range", c->path, (long long)i);
  const re_tensor_info *ti = &c->info[i];
  const re_tensor_loc *loc = &c->loc[i];
  int64_t isz = re_dtype_size(ti->dtype);
  if (ti->numel == 0)
    return RE_OK;
  if (re_ckpt_is_contiguous(ti, loc)) {
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

/* Whether p lies in checkpoint c's file map. */
static int in_map(const re_ckpt *c, const uint8_t *p) {
  return c->map && p >= (const uint8_t *)c->map && p < (const uint8_t *)c->map + c->map_len;
}

void re_ckpt_release_pages(const re_ckpt *c, int64_t i) {
  if (i < 0 || i >= c->count)
    return;
  const re_tensor_info *ti = &c->info[i];
  const re_tensor_loc *loc = &c->loc[i];
  const uint8_t *p = loc->base + loc->offset * re_dtype_size(ti->dtype);
  if (ti->numel == 0 || !re_ckpt_is_contiguous(ti, loc))
    return;
  /* only pages of a read-only file map: dropped, they fault back from the file, whereas
   * an owned buffer (a decompressed storage) would read back as zeros */
  if (!in_map(c, p) && !(c->nparts > 0 && in_map(c->parts[c->shard[i]], p)))
    return;
  re_release_map_pages(p, ti->numel * re_dtype_size(ti->dtype));
}

re_status re_ckpt_view_f32(const re_ckpt *c, int64_t i, const float **out) {
  if (i < 0 || i >= c->count)
    return re_err(RE_EINVAL, "%s: tensor index %lld out of range", c->path, (long long)i);
  const re_tensor_info *ti = &c->info[i];
  const re_tensor_loc *loc = &c->loc[i];
  const uint8_t *p = loc->base + loc->offset * 4;
  if (ti->dtype != RE_DTYPE_F32 || loc->swap || !re_ckpt_is_contiguous(ti, loc) || ((uintptr_t)p % 4) != 0)
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
