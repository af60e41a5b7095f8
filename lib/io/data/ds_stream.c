/* Token streams: flat files of token ids, concatenated in the order given and cut
 * into samples of seq_len ids. A `.npy` file is a 1-D integer array (its header
 * gives the dtype and byte order); any other file is raw little-endian uint16 or
 * uint32 ids (nanoGPT's train.bin, Megatron's .bin), whose dtype must be given.
 * Sample s is ids [s T, (s + 1) T) of the stream, so it may span two files; the
 * last partial sample is dropped. Files stay memory-mapped; ids are checked
 * against vocab on read, or, when no vocab is given, all at open (to find it). */
#include "ds_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct stream_file {
  char *name;
  re_ds_map map; /* raw files */
  re_npy *npy;   /* .npy files */
  const uint8_t *data;
  int64_t data_offset; /* byte offset of the first id in the file */
  int64_t n;           /* ids */
  int64_t first;       /* stream position of the first id */
} stream_file;

typedef struct stream_ds {
  stream_file *files;
  int nfiles;
  int isz;        /* raw files: 2 or 4 */
  int64_t T, vocab;
} stream_ds;

static void stream_close(void *impl) {
  stream_ds *d = (stream_ds *)impl;
  for (int f = 0; f < d->nfiles; f++) {
    free(d->files[f].name);
    re_ds_unmap(&d->files[f].map);
    re_npy_close(&d->files[f].npy);
  }
  free(d->files);
  free(d);
}

/* Id k of file f (sign and size as stored; *big for unsigned 64-bit above INT64_MAX). */
static int64_t id_at(const stream_ds *d, const stream_file *f, int64_t k, int *big) {
  *big = 0;
  if (f->npy) {
    int64_t v;
    re_ds_npy_int(f->npy, k, &v, big);
    return v;
  }
  const uint8_t *p = f->data + k * d->isz;
  if (d->isz == 2)
    return (int64_t)p[0] | (int64_t)p[1] << 8;
  return (int64_t)p[0] | (int64_t)p[1] << 8 | (int64_t)p[2] << 16 | (int64_t)p[3] << 24;
}

static int64_t isz_of(const stream_ds *d, const stream_file *f) {
  return f->npy ? re_dtype_size(f->npy->h.dtype) : d->isz;
}

static re_status bad_id(const stream_ds *d, const stream_file *f, int64_t k, int64_t v, int big) {
  int64_t byte = f->data_offset + k * isz_of(d, f);
  if (v < 0 || big)
    return re_err(RE_EDATA, "%s: id %lld (byte %lld): value %s%lld is negative or too large", f->name, (long long)k,
                  (long long)byte, big ? ">" : "", (long long)v);
  return re_err(RE_EDATA, "%s: id %lld (byte %lld): value %lld is not below vocab %lld", f->name, (long long)k,
                (long long)byte, (long long)v, (long long)d->vocab);
}

static int file_of(const stream_ds *d, int64_t pos) {
  int lo = 0, hi = d->nfiles - 1; /* the last file with first <= pos */
  while (lo < hi) {
    int mid = lo + (hi - lo + 1) / 2;
    if (d->files[mid].first <= pos)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

static re_status stream_read(void *impl, int64_t i, int64_t j, int64_t *ids, uint8_t *mask, int32_t *labels) {
  stream_ds *d = (stream_ds *)impl;
  int64_t pos = i * d->T, end = j * d->T;
  int f = file_of(d, pos);
  for (int64_t o = 0; pos < end; f++) {
    const stream_file *sf = &d->files[f];
    int64_t k0 = pos - sf->first, k1 = sf->n < k0 + (end - pos) ? sf->n : k0 + (end - pos);
    for (int64_t k = k0; k < k1; k++) {
      int big;
      int64_t v = id_at(d, sf, k, &big);
      if (v < 0 || big || v >= d->vocab)
        return bad_id(d, sf, k, v, big);
      ids[o++] = v;
    }
    pos += k1 - k0;
  }
  memset(mask, 1, (size_t)((j - i) * d->T));
  (void)labels;
  return RE_OK;
}

static const re_ds_ops stream_ops = {NULL, stream_close, stream_read};

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && !strcmp(s + n - m, suffix);
}

static re_status open_file(stream_ds *d, const char *path, stream_file *f) {
  RE_TRY(re_strdup(path, &f->name));
  if (ends_with(path, ".npy")) {
    RE_TRY(re_npy_open(path, &f->npy));
    const re_npy_header *h = &f->npy->h;
    re_dtype dt = h->dtype;
    if (dt != RE_DTYPE_I8 && dt != RE_DTYPE_I16 && dt != RE_DTYPE_I32 && dt != RE_DTYPE_I64 && dt != RE_DTYPE_U8 &&
        dt != RE_DTYPE_U16 && dt != RE_DTYPE_U32 && dt != RE_DTYPE_U64)
      return re_err(RE_EUNSUPPORTED, "%s: token ids must have an integer dtype, found %s", path, re_dtype_name(dt));
    if (h->ndim != 1)
      return re_err(RE_ESHAPE, "%s: a token stream is 1-D, found %d dimensions (N x T ids are the 'tokens' format)",
                    path, h->ndim);
    f->data = f->npy->data;
    f->data_offset = h->data_offset;
    f->n = h->shape[0];
    return RE_OK;
  }
  if (!d->isz)
    return re_err(RE_EINVAL, "%s: a raw token file needs its dtype (uint16 or uint32)", path);
  RE_TRY(re_ds_map_file(path, &f->map));
  if (f->map.len % d->isz)
    return re_err(RE_EFORMAT, "%s: %lld bytes is not a whole number of %d-byte ids (%lld bytes left over)", path,
                  (long long)f->map.len, d->isz, (long long)(f->map.len % d->isz));
  f->data = (const uint8_t *)f->map.base;
  f->n = f->map.len / d->isz;
  return RE_OK;
}

re_status re_dataset_open_token_stream(const char *const *files, int nfiles, const char *dtype, int64_t seq_len,
                                       int64_t vocab, re_dataset **out) {
  re_status st = RE_OK;
  stream_ds *d = NULL;
  *out = NULL;
  if (nfiles < 1)
    return re_err(RE_EINVAL, "token stream: no files given");
  if (seq_len < 1)
    return re_err(RE_EINVAL, "token stream: seq_len %lld must be positive", (long long)seq_len);
  if (vocab < 0)
    return re_err(RE_EINVAL, "token stream: vocab %lld must be positive (or 0: not given)", (long long)vocab);
  int isz = 0;
  if (dtype && !strcmp(dtype, "uint16"))
    isz = 2;
  else if (dtype && !strcmp(dtype, "uint32"))
    isz = 4;
  else if (dtype)
    return re_err(RE_EINVAL, "token stream: dtype '%s' is not supported (uint16 or uint32)", dtype);
  RE_CHECK(re_calloc(1, sizeof *d, &d));
  d->isz = isz, d->T = seq_len, d->vocab = vocab;
  RE_CHECK(re_calloc(nfiles, sizeof *d->files, &d->files));
  d->nfiles = nfiles;
  int64_t total = 0;
  for (int f = 0; f < nfiles; f++) {
    if (dtype && ends_with(files[f], ".npy")) {
      st = re_err(RE_EINVAL, "%s: dtype '%s' is for raw files; a .npy header gives its own", files[f], dtype);
      goto done;
    }
    RE_CHECK(open_file(d, files[f], &d->files[f]));
    d->files[f].first = total;
    total += d->files[f].n;
  }
  if (total / seq_len == 0) {
    st = re_err(RE_EDATA, "%s%s: %lld ids, fewer than seq_len %lld: no sample (an empty corpus)", files[0],
                nfiles > 1 ? " ..." : "", (long long)total, (long long)seq_len);
    goto done;
  }
  if (!vocab) { /* no vocab given: the scan finds it and checks every id once */
    int64_t mx = -1;
    for (int f = 0; f < nfiles; f++) {
      const stream_file *sf = &d->files[f];
      for (int64_t k = 0; k < sf->n; k++) {
        int big;
        int64_t v = id_at(d, sf, k, &big);
        if (v < 0 || big) {
          st = bad_id(d, sf, k, v, big);
          goto done;
        }
        if (v > mx)
          mx = v;
      }
    }
    d->vocab = mx + 1;
  }
  re_dataset_info info = {0};
  info.count = total / seq_len;
  info.tokens = 1;
  info.seq_len = seq_len;
  info.vocab = d->vocab;
  info.sample_dim = seq_len;
  info.channels = 1, info.height = 1;
  info.width = seq_len > INT32_MAX ? INT32_MAX : (int)seq_len;
  return re_ds_wrap(&stream_ops, d, &info, out);
done:
  if (d)
    stream_close(d);
  return st;
}
