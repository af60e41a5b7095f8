/* CIFAR-10 / CIFAR-100 binary version (Krizhevsky 2009, the "binary version" on
 * the dataset page): fixed-size records, each 1 label byte (CIFAR-10, 0..9) or 2
 * (CIFAR-100: coarse 0..19, then fine 0..99), then 3072 pixel bytes: the 32 x 32
 * red plane, then green, then blue, rows top to bottom. That is already C x H x W.
 * Several files (data_batch_1..5.bin) are concatenated in the order given. Files
 * are memory-mapped; every label byte is checked at open (one pass). */
#include "ds_internal.h"

#include <stdlib.h>
#include <string.h>

#define CIFAR_PIXELS 3072

typedef struct cifar_file {
  char *name;
  re_ds_map map;
  const uint8_t *bytes;
  int64_t first; /* global index of the first record */
  int64_t count;
} cifar_file;

typedef struct cifar_ds {
  cifar_file *files;
  int nfiles;
  int label_bytes, label_off; /* which label byte is reported */
  int64_t rec;
} cifar_ds;

static void cifar_close(void *impl) {
  cifar_ds *d = (cifar_ds *)impl;
  for (int f = 0; f < d->nfiles; f++) {
    re_ds_unmap(&d->files[f].map);
    free(d->files[f].name);
  }
  free(d->files);
  free(d);
}

static re_status cifar_read(void *impl, int64_t i, int64_t j, float *x, int32_t *labels) {
  cifar_ds *d = (cifar_ds *)impl;
  int f = 0;
  while (f + 1 < d->nfiles && d->files[f].first + d->files[f].count <= i)
    f++;
  for (int64_t k = i; k < j; k++) {
    while (k >= d->files[f].first + d->files[f].count)
      f++;
    const uint8_t *r = d->files[f].bytes + (k - d->files[f].first) * d->rec;
    re_ds_u8_to_unit(r + d->label_bytes, CIFAR_PIXELS, x + (k - i) * CIFAR_PIXELS);
    if (labels)
      labels[k - i] = r[d->label_off];
  }
  return RE_OK;
}

static const re_ds_ops cifar_ops = {cifar_read, cifar_close, NULL};

/* Check size and every label of one file; *maxl tracks the largest reported label. */
static re_status check_file(const cifar_ds *d, const cifar_file *f, int64_t *maxl) {
  const char *kind = d->label_bytes == 1 ? "CIFAR-10: 1 label byte" : "CIFAR-100: 2 label bytes";
  if (f->map.len % d->rec)
    return re_err(RE_EFORMAT,
                  "%s: size %lld is not a multiple of the record size %lld (%s + 3072 pixels); %lld bytes left over",
                  f->name, (long long)f->map.len, (long long)d->rec, kind, (long long)(f->map.len % d->rec));
  for (int64_t k = 0; k < f->count; k++) {
    const uint8_t *r = f->bytes + k * d->rec;
    for (int b = 0; b < d->label_bytes; b++) {
      int limit = d->label_bytes == 1 ? 10 : b == 0 ? 20 : 100;
      if (r[b] >= limit)
        return re_err(RE_EDATA, "%s: record %lld (offset %lld): %s label %d out of range (%s has %d %sclasses)",
                      f->name, (long long)k, (long long)(k * d->rec + b),
                      d->label_bytes == 1 ? "the" : b == 0 ? "coarse" : "fine", r[b],
                      d->label_bytes == 1 ? "CIFAR-10" : "CIFAR-100", limit,
                      d->label_bytes == 1 ? "" : b == 0 ? "coarse " : "fine ");
    }
    if (r[d->label_off] > *maxl)
      *maxl = r[d->label_off];
  }
  return RE_OK;
}

static re_status open_common(const char *const *files, const void *buf, int64_t len, int nfiles, int label_bytes,
                             int use_fine, re_dataset **out) {
  re_status st = RE_OK;
  cifar_ds *d = NULL;
  *out = NULL;
  if (nfiles < 1)
    return re_err(RE_EINVAL, "CIFAR dataset: no files given");
  if (label_bytes != 1 && label_bytes != 2)
    return re_err(RE_EINVAL, "CIFAR dataset: %d label bytes per record (1 for CIFAR-10, 2 for CIFAR-100)",
                  label_bytes);
  RE_CHECK(re_calloc(1, sizeof *d, &d));
  RE_CHECK(re_calloc(nfiles, sizeof *d->files, &d->files));
  d->nfiles = nfiles;
  d->label_bytes = label_bytes;
  d->label_off = label_bytes == 2 && use_fine ? 1 : 0;
  d->rec = label_bytes + CIFAR_PIXELS;
  int64_t total = 0, maxl = -1;
  for (int f = 0; f < nfiles; f++) {
    cifar_file *cf = &d->files[f];
    RE_CHECK(re_strdup(files[f], &cf->name));
    if (buf) {
      cf->map.len = len; /* borrowed bytes: map.base stays NULL so nothing is unmapped */
      cf->bytes = (const uint8_t *)buf;
    } else {
      RE_CHECK(re_ds_map_file(files[f], &cf->map));
      cf->bytes = (const uint8_t *)cf->map.base;
    }
    cf->count = cf->map.len / d->rec;
    cf->first = total;
    RE_CHECK(check_file(d, cf, &maxl));
    total += cf->count;
  }
  re_dataset_info info = {0};
  info.count = total;
  info.sample_dim = CIFAR_PIXELS;
  info.channels = 3, info.height = 32, info.width = 32;
  info.has_labels = 1;
  info.num_classes = maxl + 1;
  return re_ds_wrap(&cifar_ops, d, &info, out);
done:
  if (d)
    cifar_close(d);
  return st;
}

re_status re_dataset_open_cifar(const char *const *files, int nfiles, int label_bytes, int use_fine,
                                re_dataset **out) {
  return open_common(files, NULL, 0, nfiles, label_bytes, use_fine, out);
}

re_status re_dataset_open_cifar_memory(const void *buf, int64_t len, const char *name, int label_bytes,
                                       int use_fine, re_dataset **out) {
  *out = NULL;
  if ((!buf && len) || len < 0)
    return re_err(RE_EINVAL, "%s: CIFAR dataset: invalid in-memory buffer", name);
  const char *names[1] = {name};
  return open_common(names, buf ? buf : "", len, 1, label_bytes, use_fine, out);
}
