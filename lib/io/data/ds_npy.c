/* .npy input/label pairs: inputs N x ... of any dtype lib/io/npy.c reads, one
 * sample per row (the product of the trailing dimensions); labels a 1-D integer
 * array of N non-negative values. 4-D inputs are images N x C x H x W, 3-D ones
 * N x H x W with one channel; anything else is a flat vector per sample. uint8
 * inputs are pixels and are scaled to [0, 1] like the other image formats; every
 * other dtype is converted to float32 as stored. Both files are memory-mapped. */
#include "ds_internal.h"

#include "repeval/npy.h"

#include <limits.h>
#include <stdlib.h>

typedef struct npy_ds {
  re_npy *x;
  int32_t *labels; /* count, checked and converted at open; NULL without labels */
} npy_ds;

static void npy_close(void *impl) {
  npy_ds *d = (npy_ds *)impl;
  re_npy_close(&d->x);
  free(d->labels);
  free(d);
}

static re_status npy_read(void *impl, int64_t i, int64_t j, float *x, int32_t *labels) {
  npy_ds *d = (npy_ds *)impl;
  RE_TRY(re_npy_read_rows_f32(d->x, i, j - i, x));
  re_dtype dt = d->x->h.dtype;
  if (dt == RE_DTYPE_U8) {
    int64_t n = (j - i) * re_npy_cols(d->x);
    for (int64_t k = 0; k < n; k++)
      x[k] /= 255.0f; /* x[k] holds the byte exactly, so this is ToTensor's p / 255 */
  } else if (dt == RE_DTYPE_F16 || dt == RE_DTYPE_F32 || dt == RE_DTYPE_F64) {
    /* float64 values beyond the float32 range become infinite here too */
    RE_TRY(re_ds_check_finite(x, j - i, re_npy_cols(d->x), i, d->x->name));
  }
  if (labels)
    for (int64_t k = i; k < j; k++)
      labels[k - i] = d->labels[k];
  return RE_OK;
}

static const re_ds_ops npy_ops = {npy_read, npy_close, NULL};

static int is_integer(re_dtype dt) {
  return dt == RE_DTYPE_I8 || dt == RE_DTYPE_I16 || dt == RE_DTYPE_I32 || dt == RE_DTYPE_I64 ||
         dt == RE_DTYPE_U8 || dt == RE_DTYPE_U16 || dt == RE_DTYPE_U32 || dt == RE_DTYPE_U64;
}

re_status re_dataset_open_npy(const char *inputs, const char *labels, re_dataset **out) {
  re_status st = RE_OK;
  npy_ds *d = NULL;
  re_npy *y = NULL;
  re_dataset_info info = {0};
  *out = NULL;
  if (!inputs)
    return re_err(RE_EINVAL, ".npy dataset: no inputs file given");
  RE_CHECK(re_calloc(1, sizeof *d, &d));
  RE_CHECK(re_npy_open(inputs, &d->x));
  const re_npy_header *h = &d->x->h;
  if (h->ndim < 1) {
    st = re_err(RE_ESHAPE, "%s: inputs must have a sample dimension (N x ...), found a 0-d array", inputs);
    goto done;
  }
  if (h->dtype == RE_DTYPE_BF16) { /* not produced by the npy reader; kept for clarity */
    st = re_err(RE_EUNSUPPORTED, "%s: bfloat16 inputs are not supported", inputs);
    goto done;
  }
  info.count = h->shape[0];
  info.sample_dim = re_npy_cols(d->x);
  if (info.sample_dim < 1) {
    st = re_err(RE_ESHAPE, "%s: inputs have empty samples (a trailing dimension is 0)", inputs);
    goto done;
  }
  int64_t c = 1, hh = 1, w = info.sample_dim;
  if (h->ndim == 4)
    c = h->shape[1], hh = h->shape[2], w = h->shape[3];
  else if (h->ndim == 3)
    hh = h->shape[1], w = h->shape[2];
  if (c > INT_MAX || hh > INT_MAX || w > INT_MAX) {
    st = re_err(RE_ESHAPE, "%s: sample geometry %lld x %lld x %lld exceeds %d per dimension", inputs,
                (long long)c, (long long)hh, (long long)w, INT_MAX);
    goto done;
  }
  info.channels = (int)c, info.height = (int)hh, info.width = (int)w;
  if (labels) {
    RE_CHECK(re_npy_open(labels, &y));
    const re_npy_header *lh = &y->h;
    if (!is_integer(lh->dtype)) {
      st = re_err(RE_EUNSUPPORTED, "%s: labels must have an integer dtype, found %s", labels,
                  re_dtype_name(lh->dtype));
      goto done;
    }
    if (lh->ndim != 1) {
      st = re_err(RE_ESHAPE, "%s: labels must be 1-D (N), found %d dimensions", labels, lh->ndim);
      goto done;
    }
    if (lh->shape[0] != info.count) {
      st = re_err(RE_ESHAPE, "%s: %lld labels, but %s has %lld samples", labels, (long long)lh->shape[0], inputs,
                  (long long)info.count);
      goto done;
    }
    RE_CHECK(re_malloc(info.count, sizeof *d->labels, &d->labels));
    int64_t maxl = -1;
    for (int64_t k = 0; k < info.count; k++) {
      int64_t v;
      int big;
      re_ds_npy_int(y, k, &v, &big);
      if (v < 0 || v > RE_DS_MAX_LABEL || big) {
        st = re_err(RE_EDATA, "%s: label %s%lld of sample %lld is out of range (0 .. %d)", labels,
                    big ? ">" : "", (long long)v, (long long)k, RE_DS_MAX_LABEL);
        goto done;
      }
      if (v > maxl)
        maxl = v;
      d->labels[k] = (int32_t)v;
    }
    info.has_labels = 1;
    info.num_classes = maxl + 1;
    re_npy_close(&y);
  }
  return re_ds_wrap(&npy_ops, d, &info, out);
done:
  re_npy_close(&y);
  if (d)
    npy_close(d);
  return st;
}
