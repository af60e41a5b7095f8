/* Every malformed .npy header is refused with a specific status and a message
 * that says what was wrong; nothing is read out of bounds (run under ASan). */
#include <stdlib.h>

#include "check.h"
#include "repeval/npy.h"

/* Build a file image: preamble (version, optionally a lying header length),
 * the dict text padded to 64 bytes, then `ndata` data bytes. */
static unsigned char *image(int version, const char *dict, long long lie_hlen, size_t ndata, size_t *len) {
  size_t pre = version == 1 ? 10 : 12, dl = strlen(dict);
  size_t total = (pre + dl + 1 + 63) / 64 * 64;
  unsigned char *b = calloc(1, total + ndata + 1);
  memcpy(b, "\x93NUMPY", 6);
  b[6] = (unsigned char)version;
  unsigned long long hlen = lie_hlen >= 0 ? (unsigned long long)lie_hlen : total - pre;
  for (size_t i = 0; i < pre - 8; i++)
    b[8 + i] = (unsigned char)(hlen >> (8 * i));
  memcpy(b + pre, dict, dl);
  memset(b + pre + dl, ' ', total - pre - dl - 1);
  b[total - 1] = '\n';
  *len = total + ndata;
  return b;
}

typedef struct bad_case {
  int version;
  const char *dict;
  long long lie_hlen;
  size_t ndata;
  re_status expect;
  const char *msg;
} bad_case;

#define D(descr, fo, shape) "{'descr': '" descr "', 'fortran_order': " fo ", 'shape': " shape ", }"

static const bad_case cases[] = {
    {1, D("<f4", "False", "(2, 3)"), -1, 23, RE_EFORMAT, "data truncated"},
    {1, D("<f4", "False", "(2, 3)"), -1, 25, RE_EFORMAT, "bytes after the .npy array data"},
    {1, D("<c8", "False", "(2,)"), -1, 16, RE_EUNSUPPORTED, "unsupported .npy dtype '<c8'"},
    {1, D("|O", "False", "(2,)"), -1, 16, RE_EUNSUPPORTED, "unsupported .npy dtype"},
    {1, D("<U3", "False", "(2,)"), -1, 24, RE_EUNSUPPORTED, "unsupported"},
    {1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", -1, 4, RE_EUNSUPPORTED,
     "structured"},
    {1, D("<f4", "Maybe", "(2,)"), -1, 8, RE_EFORMAT, "True or False"},
    {1, D("<f4", "False", "(-2,)"), -1, 8, RE_EFORMAT, "non-negative integer"},
    {1, D("<f4", "False", "(99999999999999999999,)"), -1, 8, RE_EFORMAT, "overflows 64 bits"},
    {1, D("<f8", "False", "(4294967296, 4294967296)"), -1, 8, RE_EFORMAT, "overflows"},
    {1, D("<f8", "False", "(1152921504606846976,)"), -1, 8, RE_EFORMAT, "data size overflows"},
    {1, D("<f4", "False", "(2, 3"), -1, 24, RE_EFORMAT, "non-negative integer in the shape"},
    {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3 }", -1, 24, RE_EFORMAT, "expected ')'"},
    {1, "{'descr': '<f4', 'fortran_order': False}", -1, 4, RE_EFORMAT, "lacks 'shape'"},
    {1, "{'fortran_order': False, 'shape': (1,)}", -1, 4, RE_EFORMAT, "lacks 'descr'"},
    {1, "{'descr': '<f4', 'shape': (1,)}", -1, 4, RE_EFORMAT, "lacks 'fortran_order'"},
    {1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", -1, 4, RE_EFORMAT,
     "repeats 'descr'"},
    {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}", -1, 4, RE_EFORMAT,
     "unexpected key 'extra'"},
    {1, "['descr', '<f4']", -1, 4, RE_EFORMAT, "expected '{'"},
    {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} junk", -1, 4, RE_EFORMAT, "only padding"},
    {1, "{'descr: '<f4', 'fortran_order': False, 'shape': (1,)}", -1, 4, RE_EFORMAT, "expected"},
    {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)", -1, 4, RE_EFORMAT, "expected"},
    {1, D("<f4", "False", "(1,)"), 60000, 4, RE_EFORMAT, "declares 60000 bytes"},
    {2, D("<f4", "False", "(1,)"), 3000000, 4, RE_EFORMAT, "exceeds the limit"},
    {4, D("<f4", "False", "(1,)"), -1, 4, RE_EUNSUPPORTED, "version 4.0"},
    {1, D("<f4", "False", "(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, "
                          "1, 1, 1, 1, 1, 1)"),
     -1, 4, RE_EFORMAT, "more than 32 dimensions"},
};

int main(void) {
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const bad_case *c = &cases[k];
    size_t len;
    unsigned char *b = image(c->version, c->dict, c->lie_hlen, c->ndata, &len);
    re_npy_header h;
    re_err_clear();
    re_status st = re_npy_parse_header(b, (int64_t)len, "case.npy", &h);
    if (st == c->expect && strstr(re_errmsg(), c->msg) && strstr(re_errmsg(), "case.npy")) {
      check_passed_++;
    } else {
      check_failed_++;
      fprintf(stderr, "case %zu (%s): expected %s with \"%s\", got %s: \"%s\"\n", k, c->dict,
              re_status_str(c->expect), c->msg, re_status_str(st), re_errmsg());
    }
    /* every strict prefix of a valid-looking image must be refused, never crash */
    for (size_t cut = 0; cut < len - c->ndata; cut += 7)
      CHECK(re_npy_parse_header(b, (int64_t)cut, "prefix.npy", &h) != RE_OK);
    free(b);
  }
  /* not a .npy at all */
  CHECK_FAILS(re_npy_parse_header("PK\3\4 this is a zip", 19, "z.npy", &(re_npy_header){0}), RE_EFORMAT,
              "magic");
  CHECK_FAILS(re_npy_open("/nonexistent/file.npy", &(re_npy *){NULL}), RE_EIO, "/nonexistent/file.npy");
  /* a valid image parses */
  size_t len;
  unsigned char *b = image(1, D("<f4", "False", "(2, 3)"), -1, 24, &len);
  re_npy_header h;
  CHECK_OK(re_npy_parse_header(b, (int64_t)len, "ok.npy", &h));
  CHECK(h.ndim == 2 && h.shape[0] == 2 && h.shape[1] == 3 && h.dtype == RE_DTYPE_F32 && h.nbytes == 24);
  free(b);
  return check_report();
}
