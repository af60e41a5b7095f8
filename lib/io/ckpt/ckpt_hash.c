/* The content hash of a checkpoint: what its tensors hold, not where they are.
 *
 *   h = FNV-1a 64 of "repeval-ckpt-content-1", then for each tensor in strcmp order
 *   of names: the name and a NUL, the dtype name and a NUL, ndim and each dimension
 *   as 8-byte little-endian integers, then elements in C order as little-endian
 *   bytes: all of them when the tensor holds at most 64 KiB, otherwise 16 windows of
 *   4 KiB, the first at element 0, the last ending at the last element, the others
 *   evenly spaced in between.
 *
 * Sorting by name and hashing logical elements (strided views gathered, big-endian
 * storage swapped) makes the hash independent of the folder, the file format, the
 * sharding and the order in the files. Windows keep it cheap on large models (at
 * most 64 KiB read per large tensor: under 40 MB for a 12B-parameter model); they
 * can miss a change confined to unsampled bytes of large tensors, which in trained
 * checkpoints comes with changes to the small tensors (norms, biases), hashed whole. */
#include "ckpt_internal.h"

#include <stdlib.h>
#include <string.h>

#define HASH_FULL_BYTES 65536
#define HASH_WINDOWS 16
#define HASH_WINDOW_BYTES 4096

static uint64_t put_i64(uint64_t h, int64_t v) {
  uint8_t b[8];
  for (int k = 0; k < 8; k++)
    b[k] = (uint8_t)((uint64_t)v >> (8 * k));
  return re_fnv1a64(h, b, 8);
}

/* Elements [from, to) of tensor i in C order, as little-endian bytes. */
static uint64_t put_elements(uint64_t h, const re_ckpt *c, int64_t i, int64_t from, int64_t to) {
  const re_tensor_info *ti = &c->info[i];
  const re_tensor_loc *loc = &c->loc[i];
  int64_t isz = re_dtype_size(ti->dtype);
  if (!loc->swap && re_ckpt_is_contiguous(ti, loc))
    return re_fnv1a64(h, loc->base + (loc->offset + from) * isz, (size_t)((to - from) * isz));
  for (int64_t k = from; k < to; k++) {
    int64_t off = loc->offset, rest = k;
    for (int d = ti->ndim - 1; d >= 0; d--) {
      off += (rest % ti->shape[d]) * loc->strides[d];
      rest /= ti->shape[d];
    }
    const uint8_t *p = loc->base + off * isz;
    uint8_t e[8];
    for (int64_t b = 0; b < isz; b++)
      e[b] = loc->swap ? p[isz - 1 - b] : p[b];
    h = re_fnv1a64(h, e, (size_t)isz);
  }
  return h;
}

static int cmp_name(const void *a, const void *b) {
  return strcmp(((const re_tensor_info *const *)a)[0]->name, ((const re_tensor_info *const *)b)[0]->name);
}

re_status re_ckpt_content_hash(const re_ckpt *c, uint64_t *out) {
  const re_tensor_info **order = NULL;
  static const char tag[] = "repeval-ckpt-content-1";
  RE_TRY(re_calloc(c->count + 1, sizeof *order, &order));
  for (int64_t i = 0; i < c->count; i++)
    order[i] = &c->info[i];
  qsort(order, (size_t)c->count, sizeof *order, cmp_name);
  uint64_t h = re_fnv1a64(RE_FNV1A64_INIT, tag, sizeof tag - 1);
  for (int64_t k = 0; k < c->count; k++) {
    const re_tensor_info *ti = order[k];
    int64_t i = ti - c->info;
    const char *dt = re_dtype_name(ti->dtype);
    h = re_fnv1a64(h, ti->name, strlen(ti->name) + 1);
    h = re_fnv1a64(h, dt, strlen(dt) + 1);
    h = put_i64(h, ti->ndim);
    for (int d = 0; d < ti->ndim; d++)
      h = put_i64(h, ti->shape[d]);
    if (ti->nbytes <= HASH_FULL_BYTES) {
      h = put_elements(h, c, i, 0, ti->numel);
      continue;
    }
    int64_t w = HASH_WINDOW_BYTES / re_dtype_size(ti->dtype); /* elements per window; numel > 16 w */
    for (int64_t s = 0; s < HASH_WINDOWS; s++) {
      int64_t at = (ti->numel - w) / (HASH_WINDOWS - 1) * s;
      if (s == HASH_WINDOWS - 1)
        at = ti->numel - w;
      h = put_elements(h, c, i, at, at + w);
    }
  }
  free(order);
  *out = h;
  return RE_OK;
}
