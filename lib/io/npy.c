/* NumPy .npy format, versions 1.0, 2.0 and 3.0 (numpy/lib/format.py documents it):
 * magic "\x93NUMPY", major, minor, header length (u16 for v1, u32 for v2/v3),
 * then a Python dict literal {'descr': ..., 'fortran_order': ..., 'shape': (...)}
 * padded with spaces and a newline, then the raw data. */
#include "repeval/atomic.h"
#include "repeval/npy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- header parsing --------------------------------------------------- */

typedef struct cursor {
  const char *p, *end;
  const char *base; /* start of the dict, for offsets in messages */
  const char *name;
} cursor;

static void skip_ws(cursor *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
    c->p++;
}

static re_status syntax(cursor *c, const char *what) {
  return re_err(RE_EFORMAT, "%s: .npy header: expected %s at header byte %lld", c->name, what,
                (long long)(c->p - c->base));
}

static re_status expect(cursor *c, char ch) {
  skip_ws(c);
  if (c->p >= c->end || *c->p != ch) {
    char what[8] = {'\'', ch, '\'', 0};
    return syntax(c, what);
  }
  c->p++;
  return RE_OK;
}

/* Parse a quoted string into out (capacity cap). */
static re_status parse_str(cursor *c, char *out, size_t cap) {
  skip_ws(c);
  if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
    return syntax(c, "a quoted string");
  char q = *c->p++;
  size_t n = 0;
  while (c->p < c->end && *c->p != q) {
    if (*c->p == '\\' || n + 1 >= cap)
      return syntax(c, "a short string without escapes");
    out[n++] = *c->p++;
  }
  if (c->p >= c->end)
    return syntax(c, "a closing quote");
  c->p++;
  out[n] = '\0';
  return RE_OK;
}

static re_status parse_bool(cursor *c, int *v) {
  skip_ws(c);
  if (c->end - c->p >= 4 && !memcmp(c->p, "True", 4)) {
    *v = 1;
    c->p += 4;
    return RE_OK;
  }
  if (c->end - c->p >= 5 && !memcmp(c->p, "False", 5)) {
    *v = 0;
    c->p += 5;
    return RE_OK;
  }
  return syntax(c, "True or False");
}

static re_status parse_shape(cursor *c, re_npy_header *h) {
  RE_TRY(expect(c, '('));
  h->ndim = 0;
  for (;;) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ')') {
      c->p++;
      break;
    }
    if (c->p >= c->end || *c->p < '0' || *c->p > '9')
      return syntax(c, "a non-negative integer in the shape");
    int64_t v = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
      int d = *c->p++ - '0';
      if (v > (INT64_MAX - d) / 10)
        return re_err(RE_EFORMAT, "%s: .npy header: shape dimension overflows 64 bits", c->name);
      v = v * 10 + d;
    }
    if (c->p < c->end && *c->p == 'L') /* written by Python 2 */
      c->p++;
    if (h->ndim >= RE_NPY_MAX_DIMS)
      return re_err(RE_EFORMAT, "%s: .npy header: more than %d dimensions", c->name, RE_NPY_MAX_DIMS);
    h->shape[h->ndim++] = v;
    skip_ws(c);
    if (c->p < c->end && *c->p == ',') {
      c->p++;
      continue;
    }
    RE_TRY(expect(c, ')'));
    break;
  }
  return RE_OK;
}

static re_status parse_descr(const char *name, const char *d, re_npy_header *h) {
  const char *s = d;
  char order = '=';
  if (*s == '<' || *s == '>' || *s == '|' || *s == '=')
    order = *s++;
  static const struct {
    const char *code;
    re_dtype dt;
  } table[] = {{"f2", RE_DTYPE_F16}, {"f4", RE_DTYPE_F32}, {"f8", RE_DTYPE_F64}, {"i1", RE_DTYPE_I8},
               {"i2", RE_DTYPE_I16}, {"i4", RE_DTYPE_I32}, {"i8", RE_DTYPE_I64}, {"u1", RE_DTYPE_U8},
               {"u2", RE_DTYPE_U16}, {"u4", RE_DTYPE_U32}, {"u8", RE_DTYPE_U64}, {"b1", RE_DTYPE_BOOL},
               {"?", RE_DTYPE_BOOL}};
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    if (!strcmp(s, table[i].code)) {
      h->dtype = table[i].dt;
      h->swap = (order == '>' && re_dtype_size(h->dtype) > 1);
      return RE_OK;
    }
  }
  return re_err(RE_EUNSUPPORTED,
                "%s: unsupported .npy dtype '%s' (supported: f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1)", name, d);
}

re_status re_npy_parse_header(const void *buf, int64_t len, const char *name, re_npy_header *h) {
  const uint8_t *b = (const uint8_t *)buf;
  memset(h, 0, sizeof *h);
  if (len < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
    return re_err(RE_EFORMAT, "%s: not a .npy file (missing the \\x93NUMPY magic)", name);
  int major = b[6];
  int64_t hlen, pre;
  if (major == 1) {
    hlen = b[8] | (b[9] << 8);
    pre = 10;
  } else if (major == 2 || major == 3) {
    if (len < 12)
      return re_err(RE_EFORMAT, "%s: .npy file truncated in its preamble (%lld bytes)", name, (long long)len);
    hlen = (int64_t)b[8] | ((int64_t)b[9] << 8) | ((int64_t)b[10] << 16) | ((int64_t)b[11] << 24);
    pre = 12;
  } else {
    return re_err(RE_EUNSUPPORTED, "%s: .npy format version %d.%d is not supported (1, 2 or 3)", name, major,
                  b[7]);
  }
  h->version = major;
  if (hlen > RE_NPY_MAX_HEADER)
    return re_err(RE_EFORMAT, "%s: .npy header length %lld exceeds the limit of %d bytes", name,
                  (long long)hlen, RE_NPY_MAX_HEADER);
  if (pre + hlen > len)
    return re_err(RE_EFORMAT, "%s: .npy header declares %lld bytes but the file has only %lld after the preamble",
                  name, (long long)hlen, (long long)(len - pre));

  cursor c = {(const char *)b + pre, (const char *)b + pre + hlen, (const char *)b + pre, name};
  int have_descr = 0, have_fortran = 0, have_shape = 0;
  RE_TRY(expect(&c, '{'));
  for (;;) {
    skip_ws(&c);
    if (c.p < c.end && *c.p == '}') {
      c.p++;
      break;
    }
    char key[32], val[32];
    RE_TRY(parse_str(&c, key, sizeof key));
    RE_TRY(expect(&c, ':'));
    if (!strcmp(key, "descr")) {
      if (have_descr++)
        return re_err(RE_EFORMAT, "%s: .npy header repeats 'descr'", name);
      skip_ws(&c);
      if (c.p < c.end && *c.p == '[')
        return re_err(RE_EUNSUPPORTED, "%s: structured .npy dtypes are not supported", name);
      RE_TRY(parse_str(&c, val, sizeof val));
      RE_TRY(parse_descr(name, val, h));
    } else if (!strcmp(key, "fortran_order")) {
      if (have_fortran++)
        return re_err(RE_EFORMAT, "%s: .npy header repeats 'fortran_order'", name);
      RE_TRY(parse_bool(&c, &h->fortran_order));
    } else if (!strcmp(key, "shape")) {
      if (have_shape++)
        return re_err(RE_EFORMAT, "%s: .npy header repeats 'shape'", name);
      RE_TRY(parse_shape(&c, h));
    } else {
      return re_err(RE_EFORMAT, "%s: .npy header has unexpected key '%s'", name, key);
    }
    skip_ws(&c);
    if (c.p < c.end && *c.p == ',') {
      c.p++;
      continue;
    }
    RE_TRY(expect(&c, '}'));
    break;
  }
  skip_ws(&c);
  while (c.p < c.end && *c.p == '\0') /* some writers pad with NULs */
    c.p++;
  if (c.p != c.end)
    return syntax(&c, "only padding after the header dict");
  if (!have_descr || !have_fortran || !have_shape)
    return re_err(RE_EFORMAT, "%s: .npy header lacks '%s'", name,
                  !have_descr ? "descr" : !have_fortran ? "fortran_order" : "shape");

  /* the product of the non-zero dimensions (and its bytes) must fit too, as in NumPy:
   * with a zero dimension the count is 0, but row widths are still taken from the rest */
  int64_t count = 1, nonzero = 1, nzbytes;
  for (int i = 0; i < h->ndim; i++)
    if (re_mul_i64(count, h->shape[i], &count) != RE_OK ||
        (h->shape[i] > 0 && re_mul_i64(nonzero, h->shape[i], &nonzero) != RE_OK))
      return re_err(RE_EFORMAT, "%s: .npy shape overflows 64 bits", name);
  if (re_mul_i64(nonzero, re_dtype_size(h->dtype), &nzbytes) != RE_OK)
    return re_err(RE_EFORMAT, "%s: .npy data size overflows 64 bits", name);
  h->count = count;
  if (re_mul_i64(count, re_dtype_size(h->dtype), &h->nbytes) != RE_OK)
    return re_err(RE_EFORMAT, "%s: .npy data size overflows 64 bits", name);
  h->data_offset = pre + hlen;
  int64_t avail = len - h->data_offset;
  if (avail < h->nbytes)
    return re_err(RE_EFORMAT, "%s: .npy data truncated: shape needs %lld bytes of %s, file has %lld", name,
                  (long long)h->nbytes, re_dtype_name(h->dtype), (long long)avail);
  if (avail > h->nbytes)
    return re_err(RE_EFORMAT,
                  "%s: %lld bytes after the .npy array data (several arrays in one file are not supported)",
                  name, (long long)(avail - h->nbytes));
  return RE_OK;
}

/* ---- opening ---------------------------------------------------------- */

re_status re_npy_open(const char *path, re_npy **out) {
  re_status st = RE_OK;
  re_npy *a = NULL;
  int fd = -1;
  *out = NULL;
  RE_CHECK(re_calloc(1, sizeof *a, &a));
  RE_CHECK(re_strdup(path, &a->name));
  RE_CHECK(re_open_regular(path, &fd));
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    st = re_err(RE_EIO, "%s: cannot read its status: %s", path, strerror(errno));
    goto done;
  }
  if (sb.st_size < 10) {
    st = re_err(RE_EFORMAT, "%s: not a .npy file (%lld bytes)", path, (long long)sb.st_size);
    goto done;
  }
  a->map_len = sb.st_size;
  a->map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (a->map == MAP_FAILED) {
    a->map = NULL;
    st = re_err(RE_EIO, "%s: mmap failed: %s", path, strerror(errno));
    goto done;
  }
  RE_CHECK(re_npy_parse_header(a->map, a->map_len, path, &a->h));
  a->data = (const uint8_t *)a->map + a->h.data_offset;
  *out = a;
  a = NULL;
done:
  if (fd >= 0)
    close(fd);
  re_npy_close(&a);
  return st;
}

re_status re_npy_from_memory(const void *buf, int64_t len, const char *name, re_npy **out) {
  re_status st = RE_OK;
  re_npy *a = NULL;
  *out = NULL;
  RE_CHECK(re_calloc(1, sizeof *a, &a));
  RE_CHECK(re_strdup(name, &a->name));
  RE_CHECK(re_npy_parse_header(buf, len, name, &a->h));
  RE_CHECK(re_malloc(a->h.nbytes, 1, &a->owned));
  memcpy(a->owned, (const uint8_t *)buf + a->h.data_offset, (size_t)a->h.nbytes);
  a->data = a->owned;
  *out = a;
  a = NULL;
done:
  re_npy_close(&a);
  return st;
}

void re_npy_close(re_npy **pa) {
  re_npy *a = *pa;
  if (!a)
    return;
  if (a->map)
    munmap(a->map, (size_t)a->map_len);
  free(a->owned);
  free(a->name);
  free(a);
  *pa = NULL;
}

int64_t re_npy_rows(const re_npy *a) { return a->h.ndim == 0 ? 1 : a->h.shape[0]; }

int64_t re_npy_cols(const re_npy *a) {
  int64_t c = 1;
  for (int i = 1; i < a->h.ndim; i++)
    c *= a->h.shape[i]; /* cannot overflow: count was checked */
  return c;
}

/* Element offset (in elements) of flat column j of row 0 for Fortran order:
 * the trailing multi-index of j in C order, linearised in Fortran order. */
static int64_t fortran_col_offset(const re_npy_header *h, int64_t j) {
  int64_t off = 0, stride = h->ndim > 0 ? h->shape[0] : 1;
  int64_t strides[RE_NPY_MAX_DIMS];
  for (int d = 1; d < h->ndim; d++) {
    strides[d] = stride;
    stride *= h->shape[d];
  }
  for (int d = h->ndim - 1; d >= 1; d--) {
    int64_t idx = j % h->shape[d];
    j /= h->shape[d];
    off += idx * strides[d];
  }
  return off;
}

static re_status check_range(const re_npy *a, int64_t row0, int64_t nrows) {
  int64_t rows = re_npy_rows(a);
  if (row0 < 0 || nrows < 0 || row0 > rows || nrows > rows - row0)
    return re_err(RE_EINVAL, "%s: rows [%lld, %lld) out of range (array has %lld rows)", a->name,
                  (long long)row0, (long long)(row0 + nrows), (long long)rows);
  return RE_OK;
}

re_status re_npy_read_rows_f64(const re_npy *a, int64_t row0, int64_t nrows, double *out) {
  RE_TRY(check_range(a, row0, nrows));
  int64_t cols = re_npy_cols(a), isz = re_dtype_size(a->h.dtype);
  if (!a->h.fortran_order || a->h.ndim <= 1) {
    re_dtype_to_f64(a->h.dtype, a->h.swap, a->data + row0 * cols * isz, nrows * cols, out);
    if (a->map) /* a streaming reader: what was read leaves the resident set */
      re_release_map_pages(a->data + row0 * cols * isz, nrows * cols * isz);
    return RE_OK;
  }
  int64_t rows = re_npy_rows(a);
  for (int64_t j = 0; j < cols; j++) {
    int64_t off = fortran_col_offset(&a->h, j);
    for (int64_t i = 0; i < nrows; i++)
      re_dtype_to_f64(a->h.dtype, a->h.swap, a->data + (off + row0 + i) * isz, 1, out + i * cols + j);
  }
  (void)rows;
  return RE_OK;
}

re_status re_npy_read_rows_f32(const re_npy *a, int64_t row0, int64_t nrows, float *out) {
  RE_TRY(check_range(a, row0, nrows));
  int64_t cols = re_npy_cols(a), isz = re_dtype_size(a->h.dtype);
  if (!a->h.fortran_order || a->h.ndim <= 1) {
    re_dtype_to_f32(a->h.dtype, a->h.swap, a->data + row0 * cols * isz, nrows * cols, out);
    if (a->map) /* a streaming reader: what was read leaves the resident set */
      re_release_map_pages(a->data + row0 * cols * isz, nrows * cols * isz);
    return RE_OK;
  }
  for (int64_t j = 0; j < cols; j++) {
    int64_t off = fortran_col_offset(&a->h, j);
    for (int64_t i = 0; i < nrows; i++)
      re_dtype_to_f32(a->h.dtype, a->h.swap, a->data + (off + row0 + i) * isz, 1, out + i * cols + j);
  }
  return RE_OK;
}

/* ---- writing ---------------------------------------------------------- */

static const char *descr_of(re_dtype dt) {
  switch (dt) {
  case RE_DTYPE_F16: return "<f2";
  case RE_DTYPE_F32: return "<f4";
  case RE_DTYPE_F64: return "<f8";
  case RE_DTYPE_I8: return "|i1";
  case RE_DTYPE_I16: return "<i2";
  case RE_DTYPE_I32: return "<i4";
  case RE_DTYPE_I64: return "<i8";
  case RE_DTYPE_U8: return "|u1";
  case RE_DTYPE_U16: return "<u2";
  case RE_DTYPE_U32: return "<u4";
  case RE_DTYPE_U64: return "<u8";
  case RE_DTYPE_BOOL: return "|b1";
  default: return NULL;
  }
}

re_status re_npy_encode_header(re_dtype dt, int ndim, const int64_t *shape, uint8_t *buf, int64_t cap,
                               int64_t *len) {
  const char *descr = descr_of(dt);
  if (!descr)
    return re_err(RE_EUNSUPPORTED, ".npy cannot store dtype %s", re_dtype_name(dt));
  if (ndim < 0 || ndim > RE_NPY_MAX_DIMS)
    return re_err(RE_EINVAL, ".npy: %d dimensions (0..%d allowed)", ndim, RE_NPY_MAX_DIMS);
  char dict[64 + 24 * RE_NPY_MAX_DIMS];
  int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0)
      return re_err(RE_EINVAL, ".npy: negative dimension %lld", (long long)shape[i]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%lld,%s", (long long)shape[i],
                  (i + 1 < ndim) ? " " : "");
  }
  if (ndim > 1)
    n--; /* NumPy writes (3, 4) but (3,) */
  n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
  int64_t pre = 10;
  int64_t total = pre + n + 1;
  total = (total + 63) / 64 * 64;
  if (total - pre > 65535) {
    pre = 12;
    total = (pre + n + 1 + 63) / 64 * 64;
  }
  if (total > cap)
    return re_err(RE_EINVAL, ".npy header needs %lld bytes", (long long)total);
  int64_t hlen = total - pre;
  memcpy(buf, "\x93NUMPY", 6);
  buf[6] = pre == 10 ? 1 : 2;
  buf[7] = 0;
  if (pre == 10) {
    buf[8] = (uint8_t)(hlen & 0xff);
    buf[9] = (uint8_t)(hlen >> 8);
  } else {
    for (int i = 0; i < 4; i++)
      buf[8 + i] = (uint8_t)(hlen >> (8 * i));
  }
  memcpy(buf + pre, dict, (size_t)n);
  memset(buf + pre + n, ' ', (size_t)(total - pre - n - 1));
  buf[total - 1] = '\n';
  *len = total;
  return RE_OK;
}

re_status re_npy_write(const char *path, re_dtype dt, int ndim, const int64_t *shape, const void *data) {
  uint8_t hdr[4096];
  int64_t hlen, count = 1, nbytes;
  RE_TRY(re_npy_encode_header(dt, ndim, shape, hdr, sizeof hdr, &hlen));
  for (int i = 0; i < ndim; i++)
    RE_TRY(re_mul_i64(count, shape[i], &count));
  RE_TRY(re_mul_i64(count, re_dtype_size(dt), &nbytes));
  re_atomic a;
  RE_TRY(re_atomic_open(path, &a));
  re_status st = re_atomic_write(&a, hdr, hlen);
  if (st == RE_OK)
    st = re_atomic_write(&a, data, nbytes);
  if (st != RE_OK) {
    re_atomic_abort(&a);
    return st;
  }
  return re_atomic_commit(&a);
}

/* ---- streaming writer ---------------------------------------------------- */

struct re_npy_writer {
  re_atomic a;
  int64_t expect, written;
};

re_status re_npy_writer_open(const char *path, re_dtype dt, int ndim, const int64_t *shape, re_npy_writer **out) {
  uint8_t hdr[4096];
  int64_t hlen, count = 1;
  re_npy_writer *w;
  *out = NULL;
  RE_TRY(re_npy_encode_header(dt, ndim, shape, hdr, sizeof hdr, &hlen));
  for (int i = 0; i < ndim; i++)
    RE_TRY(re_mul_i64(count, shape[i], &count));
  RE_TRY(re_calloc(1, sizeof *w, &w));
  RE_TRY(re_mul_i64(count, re_dtype_size(dt), &w->expect));
  re_status st = re_atomic_open(path, &w->a);
  if (st == RE_OK)
    st = re_atomic_write(&w->a, hdr, hlen);
  if (st != RE_OK) {
    re_atomic_abort(&w->a);
    free(w);
    return st;
  }
  *out = w;
  return RE_OK;
}

re_status re_npy_writer_append(re_npy_writer *w, const void *data, int64_t nbytes) {
  if (nbytes < 0 || nbytes > w->expect - w->written)
    return re_err(RE_EINVAL, "%s: more data than the declared shape holds", w->a.path);
  RE_TRY(re_atomic_write(&w->a, data, nbytes));
  w->written += nbytes;
  return RE_OK;
}

re_status re_npy_writer_commit(re_npy_writer **pw) {
  re_npy_writer *w = *pw;
  re_status st;
  if (w->written != w->expect) {
    st = re_err(RE_EINVAL, "%s: %lld of %lld data bytes written", w->a.path, (long long)w->written,
                (long long)w->expect);
    re_atomic_abort(&w->a);
  } else {
    st = re_atomic_commit(&w->a);
  }
  free(w);
  *pw = NULL;
  return st;
}

void re_npy_writer_abort(re_npy_writer **pw) {
  if (!*pw)
    return;
  re_atomic_abort(&(*pw)->a);
  free(*pw);
  *pw = NULL;
}
