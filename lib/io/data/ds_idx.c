/* IDX files (LeCun's MNIST format; Fashion-MNIST uses it unchanged): bytes 0-1 are
 * zero, byte 2 the element type (0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32,
 * 0x0E f64), byte 3 the number of dimensions, then one big-endian u32 per
 * dimension, then the elements in C order, big-endian.
 *
 * Images must be u8 with 3 dimensions (N, H, W); labels u8 (or i32, non-negative)
 * with 1 dimension (N). A gzip file (recognised by its magic 1f 8b, not by its
 * name) is decompressed once into memory at open with libarchive's raw format and
 * gzip filter: Fashion-MNIST's 10k test images are 7.8 MB, the 60k training images
 * 47 MB. Plain files are memory-mapped. */
#include "ds_internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDX_U8 0x08

typedef struct idx_file {
  char *name;
  re_ds_map map;       /* plain file, or nothing */
  uint8_t *owned;      /* decompressed gzip, or NULL */
  const uint8_t *bytes; /* the whole (decompressed) file */
  int64_t len;
  int type, ndims;
  int64_t dims[3];
  int64_t data_off;
} idx_file;

typedef struct idx_ds {
  idx_file img, lab;
  int have_labels;
  int64_t hw; /* H x W */
} idx_ds;

static const char *type_name(int t) {
  switch (t) {
  case 0x08: return "unsigned byte";
  case 0x09: return "signed byte";
  case 0x0B: return "int16";
  case 0x0C: return "int32";
  case 0x0D: return "float32";
  case 0x0E: return "float64";
  default: return NULL;
  }
}

static int64_t type_size(int t) {
  switch (t) {
  case 0x08: case 0x09: return 1;
  case 0x0B: return 2;
  case 0x0C: case 0x0D: return 4;
  default: return 8;
  }
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Bytes the header promises, once its dimensions are in buf[0, n); -1 if not yet known
 * or not computable (the header check reports that later). */
static int64_t promised_size(const uint8_t *buf, int64_t n) {
  if (n < 4 || !type_name(buf[2]) || buf[3] > 3)
    return -1;
  int64_t off = 4 + 4 * (int64_t)buf[3], total = type_size(buf[2]);
  if (n < off)
    return -1;
  for (int k = 0; k < buf[3]; k++)
    if (__builtin_mul_overflow(total, (int64_t)be32(buf + 4 + 4 * k), &total))
      return -1;
  if (__builtin_add_overflow(total, off, &total))
    return -1;
  return total;
}

/* Decompress a gzip stream: the buffer grows with the data actually produced and
 * never beyond one byte more than the IDX header promises (enough to detect
 * trailing data), so a small file cannot make us allocate what it claims. */
static re_status gunzip(idx_file *f, const void *buf, int64_t len) {
  re_status st = RE_OK;
  struct archive *ar = archive_read_new();
  struct archive_entry *e;
  uint8_t *out = NULL;
  int64_t n = 0, cap = 0;
  if (!ar)
    return re_err(RE_ENOMEM, "%s: cannot allocate a gzip reader", f->name);
  archive_read_support_filter_gzip(ar);
  archive_read_support_format_raw(ar);
  if (archive_read_open_memory(ar, buf, (size_t)len) != ARCHIVE_OK ||
      archive_read_next_header(ar, &e) != ARCHIVE_OK) {
    st = re_err(RE_EFORMAT, "%s: unreadable gzip stream: %s", f->name, archive_error_string(ar));
    goto done;
  }
  for (;;) {
    int64_t promised = promised_size(out, n);
    if (promised >= 0 && n > promised) {
      st = re_err(RE_EFORMAT,
                  "%s: decompressed IDX data exceed the %lld bytes its header declares (trailing data)",
                  f->name, (long long)promised);
      goto done;
    }
    if (n == cap) {
      int64_t want = cap ? cap * 2 : 1 << 16;
      if (promised >= 0 && want > promised + 1)
        want = promised + 1;
      if (want <= cap)
        want = cap + 1;
      RE_CHECK(re_realloc(&out, want, 1));
      cap = want;
    }
    la_ssize_t r = archive_read_data(ar, out + n, (size_t)(cap - n));
    if (r < 0) {
      st = re_err(RE_EFORMAT, "%s: gzip stream corrupt after %lld decompressed bytes: %s", f->name,
                  (long long)n, archive_error_string(ar));
      goto done;
    }
    if (r == 0)
      break;
    n += r;
  }
  f->owned = out;
  f->bytes = out;
  f->len = n;
  out = NULL;
done:
  free(out);
  archive_read_free(ar);
  return st;
}

/* Validate the header of an IDX file of `want_ndims` dimensions; `what` is
 * "images" or "labels". */
static re_status parse_header(idx_file *f, int want_ndims, const char *what) {
  const uint8_t *b = f->bytes;
  if (f->len < 4)
    return re_err(RE_EFORMAT, "%s: too short for an IDX header (%lld bytes, need at least 4)", f->name,
                  (long long)f->len);
  if (b[0] != 0 || b[1] != 0)
    return re_err(RE_EFORMAT, "%s: not an IDX file: magic bytes at offset 0 are %02x %02x, expected 00 00",
                  f->name, b[0], b[1]);
  f->type = b[2];
  if (!type_name(f->type))
    return re_err(RE_EFORMAT, "%s: unknown IDX element type 0x%02x at offset 2", f->name, f->type);
  f->ndims = b[3];
  if (f->ndims != want_ndims)
    return re_err(RE_EFORMAT, "%s: IDX %s must have %d dimension%s, the header at offset 3 declares %d",
                  f->name, what, want_ndims, want_ndims == 1 ? " (N)" : "s (N, H, W)", f->ndims);
  f->data_off = 4 + 4 * (int64_t)f->ndims;
  if (f->len < f->data_off)
    return re_err(RE_EFORMAT, "%s: IDX header truncated: %d dimensions need %lld bytes, the file has %lld",
                  f->name, f->ndims, (long long)f->data_off, (long long)f->len);
  int64_t need = type_size(f->type);
  for (int k = 0; k < f->ndims; k++) {
    f->dims[k] = be32(b + 4 + 4 * k);
    if (re_mul_i64(need, f->dims[k], &need) != RE_OK)
      return re_err(RE_EFORMAT, "%s: IDX dimensions overflow 64 bits", f->name);
  }
  int64_t have = f->len - f->data_off;
  if (have < need)
    return re_err(RE_EFORMAT,
                  "%s: IDX data truncated: the header declares %lld bytes of %s after the %lld-byte header, "
                  "the file has %lld",
                  f->name, (long long)need, type_name(f->type), (long long)f->data_off, (long long)have);
  if (have > need)
    return re_err(RE_EFORMAT, "%s: %lld bytes after the IDX data (the header declares %lld)", f->name,
                  (long long)(have - need), (long long)need);
  return RE_OK;
}

static re_status load(idx_file *f, const char *name, const char *path, const void *buf, int64_t len,
                      int want_ndims, const char *what) {
  RE_TRY(re_strdup(name, &f->name));
  if (path) {
    RE_TRY(re_ds_map_file(path, &f->map));
    buf = f->map.base;
    len = f->map.len;
  }
  const uint8_t *b = (const uint8_t *)buf;
  if (len >= 2 && b[0] == 0x1f && b[1] == 0x8b) {
    RE_TRY(gunzip(f, buf, len));
    re_ds_unmap(&f->map); /* the compressed bytes are no longer needed */
  } else {
    f->bytes = b;
    f->len = len;
  }
  return parse_header(f, want_ndims, what);
}

static void idx_file_free(idx_file *f) {
  re_ds_unmap(&f->map);
  free(f->owned);
  free(f->name);
}

static void idx_close(void *impl) {
  idx_ds *d = (idx_ds *)impl;
  idx_file_free(&d->img);
  idx_file_free(&d->lab);
  free(d);
}

static int32_t label_at(const idx_file *f, int64_t k) {
  const uint8_t *p = f->bytes + f->data_off;
  return f->type == IDX_U8 ? (int32_t)p[k] : (int32_t)be32(p + 4 * k);
}

static re_status idx_read(void *impl, int64_t i, int64_t j, float *x, int32_t *labels) {
  idx_ds *d = (idx_ds *)impl;
  re_ds_u8_to_unit(d->img.bytes + d->img.data_off + i * d->hw, (j - i) * d->hw, x);
  if (labels)
    for (int64_t k = i; k < j; k++)
      labels[k - i] = label_at(&d->lab, k);
  return RE_OK;
}

static const re_ds_ops idx_ops = {idx_read, idx_close, NULL};

static re_status open_common(const char *img_name, const char *img_path, const void *img_buf, int64_t img_len,
                             const char *lab_name, const char *lab_path, const void *lab_buf, int64_t lab_len,
                             re_dataset **out) {
  re_status st = RE_OK;
  idx_ds *d = NULL;
  re_dataset_info info = {0};
  *out = NULL;
  RE_CHECK(re_calloc(1, sizeof *d, &d));
  RE_CHECK(load(&d->img, img_name, img_path, img_buf, img_len, 3, "images"));
  if (d->img.type != IDX_U8) {
    st = re_err(RE_EUNSUPPORTED, "%s: IDX images of element type %s (0x%02x) are not supported (only unsigned byte, 0x08)",
                d->img.name, type_name(d->img.type), d->img.type);
    goto done;
  }
  int64_t h = d->img.dims[1], w = d->img.dims[2];
  if (h < 1 || w < 1 || h > INT_MAX || w > INT_MAX) {
    st = re_err(RE_EFORMAT, "%s: IDX images of %lld x %lld pixels (each side must be 1 .. %d)", d->img.name,
                (long long)h, (long long)w, INT_MAX);
    goto done;
  }
  d->hw = h * w; /* fits: the file holds N x H x W bytes */
  info.count = d->img.dims[0];
  info.sample_dim = d->hw;
  info.channels = 1, info.height = (int)h, info.width = (int)w;
  if (lab_name) {
    RE_CHECK(load(&d->lab, lab_name, lab_path, lab_buf, lab_len, 1, "labels"));
    if (d->lab.type != IDX_U8 && d->lab.type != 0x0C) {
      st = re_err(RE_EUNSUPPORTED, "%s: IDX labels of element type %s (0x%02x) are not supported (unsigned byte or int32)",
                  d->lab.name, type_name(d->lab.type), d->lab.type);
      goto done;
    }
    if (d->lab.dims[0] != info.count) {
      st = re_err(RE_ESHAPE, "%s: %lld labels, but %s has %lld images", d->lab.name, (long long)d->lab.dims[0],
                  d->img.name, (long long)info.count);
      goto done;
    }
    int64_t maxl = -1;
    for (int64_t k = 0; k < info.count; k++) {
      int32_t v = label_at(&d->lab, k);
      if (v < 0) {
        st = re_err(RE_EDATA, "%s: label %d of sample %lld (offset %lld) is negative", d->lab.name, (int)v,
                    (long long)k, (long long)(d->lab.data_off + type_size(d->lab.type) * k));
        goto done;
      }
      if (v > maxl)
        maxl = v;
    }
    info.has_labels = 1;
    info.num_classes = maxl + 1;
    d->have_labels = 1;
  }
  return re_ds_wrap(&idx_ops, d, &info, out);
done:
  if (d)
    idx_close(d);
  return st;
}

re_status re_dataset_open_idx(const char *images, const char *labels, re_dataset **out) {
  *out = NULL;
  if (!images)
    return re_err(RE_EINVAL, "IDX dataset: no images file given");
  return open_common(images, images, NULL, 0, labels, labels, NULL, 0, out);
}

re_status re_dataset_open_idx_memory(const void *images, int64_t images_len, const void *labels,
                                     int64_t labels_len, const char *name, re_dataset **out) {
  char img_name[512], lab_name[512];
  *out = NULL;
  if (!images || images_len < 0 || (labels && labels_len < 0))
    return re_err(RE_EINVAL, "%s: IDX dataset: invalid in-memory buffers", name);
  snprintf(img_name, sizeof img_name, "%s[images]", name);
  snprintf(lab_name, sizeof lab_name, "%s[labels]", name);
  return open_common(img_name, NULL, images, images_len, labels ? lab_name : NULL, NULL, labels, labels_len, out);
}
