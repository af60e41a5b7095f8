/* Datasets, the common part: the backend table, range checks, labels for
 * unlabelled datasets, per-channel normalisation and the contiguous shard formula.
 * The formats live in ds_idx.c, ds_cifar.c, ds_npy.c, ds_wds.c, ds_tokens.c,
 * ds_stream.c and (text through a tokenizer) ds_seq.c with ds_jsonl.c and
 * ds_text.c; ds_source.c opens any of them by format name. */
#include "ds_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct re_dataset {
  const re_ds_ops *ops;
  void *impl;
  re_dataset_info info;
  int nnorm;   /* 0: no normalisation, else info.channels */
  float *mean; /* nnorm */
  float *std;  /* nnorm */
  char **class_names; /* nclass_names, or NULL */
  int64_t nclass_names;
};

re_status re_ds_wrap(const re_ds_ops *ops, void *impl, const re_dataset_info *info, re_dataset **out) {
  re_dataset *d = NULL;
  *out = NULL;
  re_status st = re_calloc(1, sizeof *d, &d);
  if (st != RE_OK) {
    ops->close(impl);
    return st;
  }
  d->ops = ops;
  d->impl = impl;
  d->info = *info;
  *out = d;
  return RE_OK;
}

void re_dataset_close(re_dataset **pd) {
  re_dataset *d = *pd;
  if (!d)
    return;
  d->ops->close(d->impl);
  for (int64_t c = 0; c < d->nclass_names; c++)
    free(d->class_names[c]);
  free(d->class_names);
  free(d->mean);
  free(d->std);
  free(d);
  *pd = NULL;
}

const re_dataset_info *re_dataset_get_info(const re_dataset *d) { return &d->info; }

void re_ds_set_class_names(re_dataset *d, char **names, int64_t n) {
  for (int64_t c = 0; c < d->nclass_names; c++)
    free(d->class_names[c]);
  free(d->class_names);
  d->class_names = names;
  d->nclass_names = n;
}

const char *re_dataset_class_name(const re_dataset *d, int64_t c) {
  return c >= 0 && c < d->nclass_names ? d->class_names[c] : NULL;
}

re_status re_dataset_set_normalize(re_dataset *d, const float *mean, const float *std, int n) {
  if (d->info.tokens)
    return re_err(RE_EINVAL, "normalisation applies to images and arrays, not to a token dataset");
  if (n != d->info.channels)
    return re_err(RE_EINVAL, "normalisation has %d mean/std values but the dataset has %d channel%s", n,
                  d->info.channels, d->info.channels == 1 ? "" : "s");
  for (int c = 0; c < n; c++) {
    if (!isfinite(mean[c]))
      return re_err(RE_EINVAL, "normalisation mean[%d] = %g is not finite", c, (double)mean[c]);
    if (!isfinite(std[c]) || !(std[c] > 0))
      return re_err(RE_EINVAL, "normalisation std[%d] = %g must be positive and finite", c, (double)std[c]);
  }
  float *m = NULL, *s = NULL;
  re_status st = RE_OK;
  RE_CHECK(re_malloc(n, sizeof *m, &m));
  RE_CHECK(re_malloc(n, sizeof *s, &s));
  memcpy(m, mean, sizeof *m * (size_t)n);
  memcpy(s, std, sizeof *s * (size_t)n);
  free(d->mean);
  free(d->std);
  d->mean = m, d->std = s, d->nnorm = n;
  m = s = NULL;
done:
  free(m);
  free(s);
  return st;
}

static re_status check_range(const re_dataset *d, int64_t i, int64_t j) {
  if (i < 0 || j < i || j > d->info.count)
    return re_err(RE_EINVAL, "dataset read [%lld, %lld) out of range (the dataset has %lld samples)",
                  (long long)i, (long long)j, (long long)d->info.count);
  return RE_OK;
}

static void no_labels(const re_dataset *d, int64_t n, int32_t *labels) {
  if (labels && !d->info.has_labels)
    for (int64_t k = 0; k < n; k++)
      labels[k] = -1;
}

re_status re_dataset_read_tokens(re_dataset *d, int64_t i, int64_t j, int64_t *ids, uint8_t *mask, int32_t *labels) {
  if (!d->info.tokens)
    return re_err(RE_EINVAL, "this dataset holds images or arrays, not token ids: read it with re_dataset_read");
  RE_TRY(check_range(d, i, j));
  if (i == j)
    return RE_OK;
  RE_TRY(d->ops->read_tokens(d->impl, i, j, ids, mask, d->info.has_labels ? labels : NULL));
  no_labels(d, j - i, labels);
  return RE_OK;
}

re_status re_dataset_read(re_dataset *d, int64_t i, int64_t j, float *x, int32_t *labels) {
  if (d->info.tokens)
    return re_err(RE_EINVAL, "this dataset holds token ids (%lld per sample): read it with re_dataset_read_tokens",
                  (long long)d->info.seq_len);
  RE_TRY(check_range(d, i, j));
  if (i == j)
    return RE_OK;
  RE_TRY(d->ops->read(d->impl, i, j, x, d->info.has_labels ? labels : NULL));
  no_labels(d, j - i, labels);
  if (d->nnorm) {
    /* sample layout C x (H W): channel c is a contiguous plane; (x - m) / s in
     * float32, the order torchvision's Normalize uses */
    int64_t plane = d->info.sample_dim / d->nnorm;
    for (int64_t k = 0; k < j - i; k++) {
      float *p = x + k * d->info.sample_dim;
      for (int c = 0; c < d->nnorm; c++) {
        const float m = d->mean[c], s = d->std[c];
        for (int64_t t = 0; t < plane; t++)
          p[c * plane + t] = (p[c * plane + t] - m) / s;
      }
    }
  }
  return RE_OK;
}

/* floor(n r / R) without forming n r: n = q R + m gives q r + floor(m r / R). */
static int64_t shard_edge(int64_t n, int r, int size) {
  int64_t q = n / size, m = n % size;
  return q * r + (m * r) / size;
}

void re_shard_range(int64_t n, int rank, int size, int64_t *begin, int64_t *end) {
  if (n <= 0 || size <= 0 || rank < 0 || rank >= size) {
    *begin = *end = 0;
    return;
  }
  *begin = shard_edge(n, rank, size);
  *end = shard_edge(n, rank + 1, size);
}

/* ---- helpers for the backends ------------------------------------------ */

void re_ds_u8_to_unit(const uint8_t *src, int64_t n, float *dst) {
  for (int64_t k = 0; k < n; k++)
    dst[k] = (float)src[k] / 255.0f;
}

re_status re_ds_check_finite(const float *x, int64_t rows, int64_t dim, int64_t first, const char *where) {
  for (int64_t k = 0; k < rows * dim; k++) {
    if (isfinite(x[k]))
      continue;
    const char *what = isnan(x[k]) ? "NaN" : "infinite";
    if (first >= 0)
      return re_err(RE_EDATA, "%s: sample %lld, value %lld of %lld is %s (inputs must be finite)", where,
                    (long long)(first + k / dim), (long long)(k % dim), (long long)dim, what);
    return re_err(RE_EDATA, "%s: value %lld of %lld is %s (inputs must be finite)", where, (long long)k,
                  (long long)dim, what);
  }
  return RE_OK;
}

re_status re_ds_map_file(const char *path, re_ds_map *m) {
  memset(m, 0, sizeof *m);
  int fd;
  RE_TRY(re_open_regular(path, &fd));
  struct stat sb;
  re_status st = RE_OK;
  if (fstat(fd, &sb) != 0) {
    st = re_err(RE_EIO, "%s: cannot read its status: %s", path, strerror(errno));
    goto done;
  }
  m->len = sb.st_size;
  if (m->len > 0) {
    void *p = mmap(NULL, (size_t)m->len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      st = re_err(RE_EIO, "%s: mmap failed: %s", path, strerror(errno));
      m->len = 0;
      goto done;
    }
    m->base = p;
  }
done:
  close(fd);
  return st;
}

void re_ds_unmap(re_ds_map *m) {
  if (m->base)
    munmap(m->base, (size_t)m->len);
  m->base = NULL;
  m->len = 0;
}

int re_ds_npy_int(const re_npy *a, int64_t k, int64_t *v, int *too_big) {
  re_dtype dt = a->h.dtype;
  int is_signed = dt == RE_DTYPE_I8 || dt == RE_DTYPE_I16 || dt == RE_DTYPE_I32 || dt == RE_DTYPE_I64;
  if (!is_signed && dt != RE_DTYPE_U8 && dt != RE_DTYPE_U16 && dt != RE_DTYPE_U32 && dt != RE_DTYPE_U64 &&
      dt != RE_DTYPE_BOOL)
    return 0;
  int64_t isz = re_dtype_size(dt);
  const uint8_t *p = a->data + k * isz;
  uint64_t u = 0;
  for (int64_t b = 0; b < isz; b++) {
    int64_t pos = a->h.swap ? b : isz - 1 - b; /* most significant byte first */
    u = u << 8 | p[pos];
  }
  *too_big = 0;
  if (is_signed && isz < 8 && (u >> (8 * isz - 1)) & 1)
    u |= ~(uint64_t)0 << (8 * isz); /* sign-extend */
  if (is_signed) {
    *v = (int64_t)u;
  } else if (u > (uint64_t)INT64_MAX) {
    *too_big = 1;
    *v = INT64_MAX;
  } else {
    *v = (int64_t)u;
  }
  return 1;
}

int64_t re_ds_utf8_invalid(const char *str, int64_t len) {
  const unsigned char *s = (const unsigned char *)str;
  int64_t i = 0;
  while (i < len) {
    /* ASCII runs, eight bytes at a time */
    while (i + 8 <= len) {
      uint64_t w;
      memcpy(&w, s + i, 8);
      if (w & UINT64_C(0x8080808080808080))
        break;
      i += 8;
    }
    if (i >= len)
      break;
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    int n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 3;
      if (c == 0xE0)
        lo = 0xA0; /* overlong */
      else if (c == 0xED)
        hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 4;
      if (c == 0xF0)
        lo = 0x90; /* overlong */
      else if (c == 0xF4)
        hi = 0x8F; /* above U+10FFFF */
    } else {
      return i;
    }
    if (len - i < n)
      return i;
    if (s[i + 1] < lo || s[i + 1] > hi)
      return i;
    for (int k = 2; k < n; k++)
      if ((s[i + k] & 0xC0) != 0x80)
        return i;
    i += n;
  }
  return -1;
}
