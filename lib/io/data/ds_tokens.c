/* Token ids from .npy files: ids N x T (any integer dtype, C or Fortran order),
 * an optional attention mask N x T (integer or bool, values 0 and 1, each row
 * right- or left-padded with at least one token) and optional labels N (integer,
 * 0 .. 2^31 - 1). Everything is checked at open, in one pass over each file; the
 * files stay memory-mapped and reads convert rows to int64 ids and uint8 masks. */
#include "ds_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct tokens_ds {
  re_npy *ids, *mask; /* mask may be NULL: every position is a token */
  int32_t *labels;    /* n, or NULL */
  int64_t n, T;
} tokens_ds;

static void tokens_close(void *impl) {
  tokens_ds *d = (tokens_ds *)impl;
  re_npy_close(&d->ids);
  re_npy_close(&d->mask);
  free(d->labels);
  free(d);
}

/* Element index of (row r, column c) of an N x T array. */
static int64_t elem(const re_npy *a, int64_t r, int64_t c) {
  return a->h.fortran_order ? c * a->h.shape[0] + r : r * a->h.shape[1] + c;
}

/* Row r of an integer N x T array as int64 (values were checked at open). */
static void row_i64(const re_npy *a, int64_t r, int64_t T, int64_t *out) {
  if (!a->h.fortran_order && !a->h.swap && a->h.dtype == RE_DTYPE_I64) {
    memcpy(out, a->data + r * T * 8, sizeof *out * (size_t)T);
    return;
  }
  if (!a->h.fortran_order && !a->h.swap && a->h.dtype == RE_DTYPE_I32) {
    const uint8_t *p = a->data + r * T * 4;
    for (int64_t c = 0; c < T; c++) {
      int32_t v;
      memcpy(&v, p + 4 * c, 4);
      out[c] = v;
    }
    return;
  }
  for (int64_t c = 0; c < T; c++) {
    int big;
    re_ds_npy_int(a, elem(a, r, c), &out[c], &big);
  }
}

static re_status tokens_read(void *impl, int64_t i, int64_t j, int64_t *ids, uint8_t *mask, int32_t *labels) {
  tokens_ds *d = (tokens_ds *)impl;
  const int64_t T = d->T;
  for (int64_t r = i; r < j; r++) {
    row_i64(d->ids, r, T, ids + (r - i) * T);
    uint8_t *m = mask + (r - i) * T;
    if (!d->mask) {
      memset(m, 1, (size_t)T);
      continue;
    }
    for (int64_t c = 0; c < T; c++) {
      int64_t v;
      int big;
      re_ds_npy_int(d->mask, elem(d->mask, r, c), &v, &big);
      m[c] = (uint8_t)v;
    }
  }
  if (labels)
    memcpy(labels, d->labels + i, sizeof *labels * (size_t)(j - i));
  return RE_OK;
}

static const re_ds_ops tokens_ops = {NULL, tokens_close, tokens_read};

static int is_int_dtype(re_dtype dt, int allow_bool) {
  return dt == RE_DTYPE_I8 || dt == RE_DTYPE_I16 || dt == RE_DTYPE_I32 || dt == RE_DTYPE_I64 ||
         dt == RE_DTYPE_U8 || dt == RE_DTYPE_U16 || dt == RE_DTYPE_U32 || dt == RE_DTYPE_U64 ||
         (allow_bool && dt == RE_DTYPE_BOOL);
}

static int64_t byte_of(const re_npy *a, int64_t k) { return a->h.data_offset + k * re_dtype_size(a->h.dtype); }

/* Every id non-negative (and below vocab when vocab > 0); *max gets the largest. */
static re_status check_ids(const re_npy *a, int64_t vocab, int64_t *max) {
  const int64_t N = a->h.shape[0], T = a->h.shape[1];
  int64_t mx = -1;
  for (int64_t r = 0; r < N; r++)
    for (int64_t c = 0; c < T; c++) {
      int64_t k = elem(a, r, c), v;
      int big;
      re_ds_npy_int(a, k, &v, &big);
      if (v < 0 || big)
        return re_err(RE_EDATA, "%s: sample %lld, position %lld (byte %lld): id %s%lld is negative or too large",
                      a->name, (long long)r, (long long)c, (long long)byte_of(a, k), big ? ">" : "", (long long)v);
      if (vocab > 0 && v >= vocab)
        return re_err(RE_EDATA, "%s: sample %lld, position %lld (byte %lld): id %lld is not below vocab %lld",
                      a->name, (long long)r, (long long)c, (long long)byte_of(a, k), (long long)v, (long long)vocab);
      if (v > mx)
        mx = v;
    }
  *max = mx;
  return RE_OK;
}

/* Values 0/1, at least one 1 per row, the 1s one run touching the row's start or end. */
static re_status check_mask(const re_npy *m) {
  const int64_t N = m->h.shape[0], T = m->h.shape[1];
  for (int64_t r = 0; r < N; r++) {
    int64_t first = -1, last = -1, ones = 0;
    for (int64_t c = 0; c < T; c++) {
      int64_t k = elem(m, r, c), v;
      int big;
      re_ds_npy_int(m, k, &v, &big);
      if (big || (v != 0 && v != 1))
        return re_err(RE_EDATA, "%s: sample %lld, position %lld (byte %lld): mask value %s%lld (expected 0 or 1)",
                      m->name, (long long)r, (long long)c, (long long)byte_of(m, k), big ? ">" : "", (long long)v);
      if (v) {
        if (first < 0)
          first = c;
        last = c;
        ones++;
      }
    }
    if (!ones)
      return re_err(RE_EDATA, "%s: sample %lld: the mask row is all zeros (a sample needs at least one token)",
                    m->name, (long long)r);
    if (ones != last - first + 1 || (first != 0 && last != T - 1))
      return re_err(RE_EDATA,
                    "%s: sample %lld: the mask is neither right- nor left-padded (tokens at positions %lld .. %lld "
                    "with %lld padding position%s among or around them)",
                    m->name, (long long)r, (long long)first, (long long)last, (long long)(T - ones),
                    T - ones == 1 ? "" : "s");
  }
  return RE_OK;
}

re_status re_dataset_open_tokens(const char *ids, const char *mask, const char *labels, int64_t vocab,
                                 re_dataset **out) {
  re_status st = RE_OK;
  tokens_ds *d = NULL;
  re_npy *y = NULL;
  re_dataset_info info = {0};
  *out = NULL;
  if (!ids)
    return re_err(RE_EINVAL, "token dataset: no ids file given");
  if (vocab < 0)
    return re_err(RE_EINVAL, "token dataset: vocab %lld must be positive (or 0: not given)", (long long)vocab);
  RE_CHECK(re_calloc(1, sizeof *d, &d));
  RE_CHECK(re_npy_open(ids, &d->ids));
  const re_npy_header *h = &d->ids->h;
  if (!is_int_dtype(h->dtype, 0)) {
    st = re_err(RE_EUNSUPPORTED, "%s: token ids must have an integer dtype, found %s", ids, re_dtype_name(h->dtype));
    goto done;
  }
  if (h->ndim != 2) {
    st = re_err(RE_ESHAPE, "%s: token ids must be 2-D (N samples x T positions), found %d dimension%s", ids, h->ndim,
                h->ndim == 1 ? "" : "s");
    goto done;
  }
  d->n = h->shape[0], d->T = h->shape[1];
  if (d->n == 0 || d->T == 0) {
    st = re_err(RE_EDATA, "%s: no tokens (shape %lld x %lld): an empty corpus", ids, (long long)d->n,
                (long long)d->T);
    goto done;
  }
  int64_t mx = -1;
  RE_CHECK(check_ids(d->ids, vocab, &mx));
  if (mask) {
    RE_CHECK(re_npy_open(mask, &d->mask));
    const re_npy_header *mh = &d->mask->h;
    if (!is_int_dtype(mh->dtype, 1)) {
      st = re_err(RE_EUNSUPPORTED, "%s: the mask must have an integer or bool dtype, found %s", mask,
                  re_dtype_name(mh->dtype));
      goto done;
    }
    if (mh->ndim != 2) {
      st = re_err(RE_ESHAPE, "%s: the mask must be 2-D (%lld x %lld like %s), found %d dimension%s", mask,
                  (long long)d->n, (long long)d->T, ids, mh->ndim, mh->ndim == 1 ? "" : "s");
      goto done;
    }
    if (mh->shape[0] != d->n || mh->shape[1] != d->T) {
      st = re_err(RE_ESHAPE, "%s: mask shape %lld x %lld, but %s is %lld x %lld", mask, (long long)mh->shape[0],
                  (long long)mh->shape[1], ids, (long long)d->n, (long long)d->T);
      goto done;
    }
    RE_CHECK(check_mask(d->mask));
  }
  if (labels) {
    RE_CHECK(re_npy_open(labels, &y));
    if (!is_int_dtype(y->h.dtype, 0)) {
      st = re_err(RE_EUNSUPPORTED, "%s: labels must have an integer dtype, found %s", labels,
                  re_dtype_name(y->h.dtype));
      goto done;
    }
    if (y->h.ndim != 1 || y->h.shape[0] != d->n) {
      st = re_err(RE_ESHAPE, "%s: labels must be 1-D with %lld entries (the samples of %s), found %d-D with %lld",
                  labels, (long long)d->n, ids, y->h.ndim, (long long)re_npy_rows(y) * re_npy_cols(y));
      goto done;
    }
    RE_CHECK(re_malloc(d->n, sizeof *d->labels, &d->labels));
    int64_t maxl = -1;
    for (int64_t k = 0; k < d->n; k++) {
      int64_t v;
      int big;
      re_ds_npy_int(y, k, &v, &big);
      if (v < 0 || v > RE_DS_MAX_LABEL || big) {
        st = re_err(RE_EDATA, "%s: label %s%lld of sample %lld (byte %lld) is out of range (0 .. %d)", labels,
                    big ? ">" : "", (long long)v, (long long)k, (long long)byte_of(y, k), RE_DS_MAX_LABEL);
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
  info.count = d->n;
  info.tokens = 1;
  info.seq_len = d->T;
  info.vocab = vocab > 0 ? vocab : mx + 1;
  info.sample_dim = d->T;
  info.channels = 1, info.height = 1;
  info.width = d->T > INT32_MAX ? INT32_MAX : (int)d->T;
  return re_ds_wrap(&tokens_ops, d, &info, out);
done:
  re_npy_close(&y);
  if (d)
    tokens_close(d);
  return st;
}
