/* .npy and .npz files as checkpoint readers: one array per tensor (named after the
 * file's stem for .npy, after the member for .npz). */
#include "ckpt_reader.h"
#include "repeval/npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static re_status npy_load(re_ckpt *c) {
  RE_TRY(re_ckpt_map_file(c));
  re_npy_header h;
  RE_TRY(re_npy_parse_header(c->map, c->map_len, c->path, &h));
  char name[256];
  snprintf(name, sizeof name, "%s", re_ckpt_basename(c->path));
  char *dot = strrchr(name, '.');
  if (dot)
    *dot = '\0';
  return add_npy_array(c, name, &h, (const uint8_t *)c->map + h.data_offset);
}

static re_status npz_load(re_ckpt *c) {
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

static re_status open_with(const char *path, re_ckpt_format fmt, re_status (*load)(re_ckpt *), re_ckpt **out) {
  re_ckpt *c = NULL;
  *out = NULL;
  RE_TRY(re_ckpt_alloc(path, fmt, &c));
  re_status st = load(c);
  if (st != RE_OK) {
    re_ckpt_close(&c);
    return st;
  }
  *out = c;
  return RE_OK;
}

static re_status npy_probe(const re_ckpt_probe *p, int *match) {
  *match = !p->is_dir && p->nhead >= 6 && !memcmp(p->head, "\x93NUMPY", 6);
  return RE_OK;
}

static re_status npy_open(const char *path, const re_ckpt_options *opt, re_ckpt **out) {
  (void)opt;
  return open_with(path, RE_CKPT_NPY, npy_load, out);
}

/* Any zip the torch.save reader (tried first) did not take. */
static re_status npz_probe(const re_ckpt_probe *p, int *match) {
  *match = !p->is_dir && p->nhead >= 4 && !memcmp(p->head, "PK\x03\x04", 4);
  return RE_OK;
}

static re_status npz_open(const char *path, const re_ckpt_options *opt, re_ckpt **out) {
  (void)opt;
  return open_with(path, RE_CKPT_NPZ, npz_load, out);
}

const re_ckpt_reader re_ckpt_reader_npy = {"npy", npy_probe, npy_open};
const re_ckpt_reader re_ckpt_reader_npz = {"npz", npz_probe, npz_open};
