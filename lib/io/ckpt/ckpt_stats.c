/* Per-tensor statistics of a checkpoint for integrity checks over training grids:
 * a hash of every element (not the windows of the content hash, ckpt_hash.c) and
 * the L2 norm, in one pass over the tensor.
 *
 *   fnv1a64   FNV-1a 64 (offset basis RE_FNV1A64_INIT) of the elements in C order
 *             as little-endian bytes of the stored dtype: equal for byte-identical
 *             tensors whatever the file format, sharding or strides;
 *   sumsq     sum of x^2 over the finite elements, each converted exactly to double,
 *             accumulated in C order (one fixed order: the same bits on every run);
 *   maxabs    the largest |x| over the finite elements;
 *   nonfinite NaN and infinite elements.
 *
 * Elements are gathered in blocks of BLOCK into a small buffer, so memory does not
 * grow with the tensor and strided views cost no copy of the whole tensor. */
#include "ckpt_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 4096

static int is_float(re_dtype dt) {
  return dt == RE_DTYPE_F16 || dt == RE_DTYPE_BF16 || dt == RE_DTYPE_F32 || dt == RE_DTYPE_F64;
}

/* Add elements of a block (little-endian bytes in `le`) to the statistics. */
static void add_block(re_tensor_stats *s, re_dtype dt, const uint8_t *le, int64_t n, double *tmp) {
  int64_t isz = re_dtype_size(dt);
  s->fnv1a64 = re_fnv1a64(s->fnv1a64, le, (size_t)(n * isz));
  re_dtype_to_f64(dt, 0, le, n, tmp);
  int fl = is_float(dt);
  for (int64_t k = 0; k < n; k++) {
    double v = tmp[k];
    if (fl && !isfinite(v)) {
      s->nonfinite++;
      continue;
    }
    s->sumsq += v * v;
    double a = fabs(v);
    if (a > s->maxabs)
      s->maxabs = a;
  }
}

re_status re_ckpt_tensor_stats(const re_ckpt *c, int64_t i, re_tensor_stats *out) {
  if (i < 0 || i >= c->count)
    return re_err(RE_EINVAL, "%s: tensor index %lld out of range (%lld tensors)", c->path, (long long)i,
                  (long long)c->count);
  const re_tensor_info *ti = &c->info[i];
  const re_tensor_loc *loc = &c->loc[i];
  int64_t isz = re_dtype_size(ti->dtype);
  memset(out, 0, sizeof *out);
  out->fnv1a64 = RE_FNV1A64_INIT;
  if (ti->numel == 0)
    return RE_OK;
  uint8_t *buf = NULL;
  double *tmp = NULL;
  re_status st = re_malloc(BLOCK, isz, &buf);
  if (st == RE_OK)
    st = re_malloc(BLOCK, sizeof(double), &tmp);
  if (st != RE_OK) {
    free(buf);
    return st;
  }
  int contiguous = !loc->swap && re_ckpt_is_contiguous(ti, loc);
  int nd = ti->ndim;
  int64_t idx[RE_TENSOR_MAX_DIMS] = {0}; /* multi-index of the next element (strided path) */
  for (int64_t k0 = 0; k0 < ti->numel; k0 += BLOCK) {
    int64_t n = ti->numel - k0 < BLOCK ? ti->numel - k0 : BLOCK;
    const uint8_t *le = buf;
    if (contiguous) {
      le = loc->base + (loc->offset + k0) * isz;
    } else {
      for (int64_t k = 0; k < n; k++) {
        int64_t off = loc->offset;
        for (int d = 0; d < nd; d++)
          off += idx[d] * loc->strides[d];
        const uint8_t *p = loc->base + off * isz;
        for (int64_t b = 0; b < isz; b++)
          buf[k * isz + b] = loc->swap ? p[isz - 1 - b] : p[b];
        for (int d = nd - 1; d >= 0; d--) {
          if (++idx[d] < ti->shape[d])
            break;
          idx[d] = 0;
        }
      }
    }
    add_block(out, ti->dtype, le, n, tmp);
  }
  free(buf);
  free(tmp);
  return RE_OK;
}
