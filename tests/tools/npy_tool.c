/* Test helper: dump a .npy / .npz member as text, or convert one to another dtype
 * with the library's writer, so Python tests can compare against NumPy.
 *   npy_tool dump FILE[.npz:NAME]
 *   npy_tool convert IN OUT DTYPE      (DTYPE: float16 float32 float64 int8 ... bool) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static int fail(void) {
  fprintf(stderr, "npy_tool: %s\n", re_errmsg());
  return 1;
}

static void store(re_dtype dt, double v, unsigned char *p) {
  switch (dt) {
  case RE_DTYPE_F16: { unsigned short h = re_f32_to_f16((float)v); memcpy(p, &h, 2); break; }
  case RE_DTYPE_F32: { float f = (float)v; memcpy(p, &f, 4); break; }
  case RE_DTYPE_F64: memcpy(p, &v, 8); break;
  case RE_DTYPE_I8: { signed char c = (signed char)v; memcpy(p, &c, 1); break; }
  case RE_DTYPE_I16: { short c = (short)v; memcpy(p, &c, 2); break; }
  case RE_DTYPE_I32: { int c = (int)v; memcpy(p, &c, 4); break; }
  case RE_DTYPE_I64: { long long c = (long long)v; memcpy(p, &c, 8); break; }
  case RE_DTYPE_U8: *p = (unsigned char)v; break;
  case RE_DTYPE_BOOL: *p = v != 0; break;
  case RE_DTYPE_U16: { unsigned short c = (unsigned short)v; memcpy(p, &c, 2); break; }
  case RE_DTYPE_U32: { unsigned c = (unsigned)v; memcpy(p, &c, 4); break; }
  case RE_DTYPE_U64: { unsigned long long c = (unsigned long long)v; memcpy(p, &c, 8); break; }
  default: break;
  }
}

int main(int argc, char **argv) {
  if (argc < 3)
    return 2;
  re_npy *a = NULL;
  if (re_cli_open_matrix(argv[2], &a) != RE_OK)
    return fail();
  int64_t rows = re_npy_rows(a), cols = re_npy_cols(a);
  double *v = malloc(sizeof(double) * (size_t)(rows * cols + 1));
  if (re_npy_read_rows_f64(a, 0, rows, v) != RE_OK)
    return fail();
  if (!strcmp(argv[1], "dump")) {
    printf("dtype %s\nshape", re_dtype_name(a->h.dtype));
    for (int d = 0; d < a->h.ndim; d++)
      printf(" %lld", (long long)a->h.shape[d]);
    printf("\n");
    for (int64_t k = 0; k < rows * cols; k++)
      printf("%.17g\n", v[k]);
  } else if (!strcmp(argv[1], "convert") && argc == 5) {
    re_dtype dt = RE_DTYPE_COUNT;
    for (int d = 0; d < RE_DTYPE_COUNT; d++)
      if (!strcmp(argv[4], re_dtype_name((re_dtype)d)))
        dt = (re_dtype)d;
    unsigned char *out = malloc((size_t)(rows * cols * 8 + 1));
    for (int64_t k = 0; k < rows * cols; k++)
      store(dt, v[k], out + k * re_dtype_size(dt));
    if (re_npy_write(argv[3], dt, a->h.ndim, a->h.shape, out) != RE_OK)
      return fail();
    free(out);
  } else {
    return 2;
  }
  free(v);
  re_npy_close(&a);
  return 0;
}
