/* .npy files written by re_npy_write read back exactly for every dtype and
 * rank; hand-made Fortran-order, big-endian, v2 and v3 files read correctly. */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "repeval/npy.h"

static char dir[256];

static void path_of(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", dir, name); }

static void roundtrip(re_dtype dt, int ndim, const int64_t *shape) {
  char p[512];
  path_of(p, sizeof p, "rt.npy");
  int64_t count = 1;
  for (int i = 0; i < ndim; i++)
    count *= shape[i];
  int64_t isz = re_dtype_size(dt);
  unsigned char *data = malloc((size_t)(count * isz + 1));
  double *expect = malloc(sizeof(double) * (size_t)(count + 1));
  for (int64_t k = 0; k < count; k++) {
    double v = (double)((k * 7) % 23) - (dt >= RE_DTYPE_U8 ? 0 : 11);
    if (dt == RE_DTYPE_BOOL)
      v = (double)(k % 3 == 0);
    expect[k] = v;
    switch (dt) {
    case RE_DTYPE_F16: { unsigned short h = re_f32_to_f16((float)v); memcpy(data + 2 * k, &h, 2); break; }
    case RE_DTYPE_F32: { float f = (float)v; memcpy(data + 4 * k, &f, 4); break; }
    case RE_DTYPE_F64: memcpy(data + 8 * k, &v, 8); break;
    case RE_DTYPE_I8: { signed char c = (signed char)v; memcpy(data + k, &c, 1); break; }
    case RE_DTYPE_I16: { short c = (short)v; memcpy(data + 2 * k, &c, 2); break; }
    case RE_DTYPE_I32: { int c = (int)v; memcpy(data + 4 * k, &c, 4); break; }
    case RE_DTYPE_I64: { long long c = (long long)v; memcpy(data + 8 * k, &c, 8); break; }
    case RE_DTYPE_U8: case RE_DTYPE_BOOL: data[k] = (unsigned char)v; break;
    case RE_DTYPE_U16: { unsigned short c = (unsigned short)v; memcpy(data + 2 * k, &c, 2); break; }
    case RE_DTYPE_U32: { unsigned c = (unsigned)v; memcpy(data + 4 * k, &c, 4); break; }
    case RE_DTYPE_U64: { unsigned long long c = (unsigned long long)v; memcpy(data + 8 * k, &c, 8); break; }
    default: break;
    }
  }
  CHECK_OK(re_npy_write(p, dt, ndim, shape, data));
  re_npy *a = NULL;
  CHECK_OK(re_npy_open(p, &a));
  if (a) {
    CHECK(a->h.dtype == dt);
    CHECK(a->h.ndim == ndim);
    CHECK(a->h.data_offset % 64 == 0);
    for (int i = 0; i < ndim; i++)
      CHECK(a->h.shape[i] == shape[i]);
    int64_t rows = re_npy_rows(a), cols = re_npy_cols(a);
    CHECK(rows * cols == count);
    double *got = malloc(sizeof(double) * (size_t)(count + 1));
    float *gotf = malloc(sizeof(float) * (size_t)(count + 1));
    CHECK_OK(re_npy_read_rows_f64(a, 0, rows, got));
    CHECK_OK(re_npy_read_rows_f32(a, 0, rows, gotf));
    int same = 1;
    for (int64_t k = 0; k < count; k++)
      same &= (got[k] == expect[k]) && (gotf[k] == (float)expect[k]);
    CHECK(same);
    if (rows > 2) { /* a row range in the middle */
      CHECK_OK(re_npy_read_rows_f64(a, 1, rows - 2, got));
      same = 1;
      for (int64_t k = 0; k < (rows - 2) * cols; k++)
        same &= got[k] == expect[cols + k];
      CHECK(same);
    }
    CHECK_FAILS(re_npy_read_rows_f64(a, rows, 1, got), RE_EINVAL, "out of range");
    free(got);
    free(gotf);
  }
  re_npy_close(&a);
  CHECK(a == NULL);
  free(data);
  free(expect);
}

/* Write a raw file: preamble for `version`, dict text, padding, then `data`. */
static void write_raw(const char *p, int version, const char *dict, const void *data, size_t nbytes) {
  FILE *f = fopen(p, "wb");
  size_t pre = version == 1 ? 10 : 12, dl = strlen(dict);
  size_t total = (pre + dl + 1 + 63) / 64 * 64, hlen = total - pre;
  unsigned char head[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', (unsigned char)version, 0};
  for (size_t i = 0; i < pre - 8; i++)
    head[8 + i] = (unsigned char)(hlen >> (8 * i));
  fwrite(head, 1, pre, f);
  fwrite(dict, 1, dl, f);
  for (size_t i = dl; i < hlen - 1; i++)
    fputc(' ', f);
  fputc('\n', f);
  fwrite(data, 1, nbytes, f);
  fclose(f);
}

static void handmade(void) {
  char p[512];
  path_of(p, sizeof p, "hand.npy");
  /* Fortran order 2 x 3: memory holds columns */
  double colmajor[6] = {1, 4, 2, 5, 3, 6}; /* matrix [[1,2,3],[4,5,6]] */
  write_raw(p, 1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", colmajor, sizeof colmajor);
  re_npy *a = NULL;
  double got[6];
  CHECK_OK(re_npy_open(p, &a));
  if (a) {
    CHECK_OK(re_npy_read_rows_f64(a, 0, 2, got));
    CHECK(got[0] == 1 && got[1] == 2 && got[2] == 3 && got[3] == 4 && got[4] == 5 && got[5] == 6);
    CHECK_OK(re_npy_read_rows_f64(a, 1, 1, got));
    CHECK(got[0] == 4 && got[1] == 5 && got[2] == 6);
  }
  re_npy_close(&a);
  /* Fortran order 2 x 2 x 2: element (i,j,k) at i + 2j + 4k */
  double f3[8];
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++)
      for (int k = 0; k < 2; k++)
        f3[i + 2 * j + 4 * k] = 100 * i + 10 * j + k;
  write_raw(p, 1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2, 2), }", f3, sizeof f3);
  CHECK_OK(re_npy_open(p, &a));
  if (a) {
    double g[8];
    CHECK_OK(re_npy_read_rows_f64(a, 0, 2, g));
    int ok = 1;
    for (int i = 0; i < 2; i++)
      for (int j = 0; j < 2; j++)
        for (int k = 0; k < 2; k++)
          ok &= g[i * 4 + j * 2 + k] == 100 * i + 10 * j + k;
    CHECK(ok);
  }
  re_npy_close(&a);
  /* big-endian float32 and int16, header versions 2 and 3, Python 2 long suffix */
  unsigned char be[8] = {0x3f, 0x80, 0, 0, 0xc0, 0x00, 0, 0}; /* 1.0, -2.0 */
  write_raw(p, 2, "{'descr': '>f4', 'fortran_order': False, 'shape': (2L,), }", be, sizeof be);
  CHECK_OK(re_npy_open(p, &a));
  if (a) {
    CHECK(a->h.version == 2 && a->h.swap);
    CHECK_OK(re_npy_read_rows_f64(a, 0, 2, got));
    CHECK(got[0] == 1.0 && got[1] == -2.0);
  }
  re_npy_close(&a);
  unsigned char bi[4] = {0xff, 0xfe, 0x01, 0x00}; /* -2, 256 */
  write_raw(p, 3, "{\"descr\": \">i2\", \"fortran_order\": False, \"shape\": (2, 1)}", bi, sizeof bi);
  CHECK_OK(re_npy_open(p, &a));
  if (a) {
    CHECK(a->h.version == 3);
    CHECK_OK(re_npy_read_rows_f64(a, 0, 2, got));
    CHECK(got[0] == -2 && got[1] == 256);
  }
  re_npy_close(&a);
}

static void half_precision(void) {
  CHECK(re_f16_to_f32(0x3c00) == 1.0f);
  CHECK(re_f16_to_f32(0xc000) == -2.0f);
  CHECK(re_f16_to_f32(0x7bff) == 65504.0f);
  CHECK(re_f16_to_f32(0x0001) == 0x1p-24f);
  CHECK(isinf(re_f16_to_f32(0x7c00)));
  CHECK(isnan(re_f16_to_f32(0x7e00)));
  CHECK(re_f32_to_f16(1.0f) == 0x3c00);
  CHECK(re_f32_to_f16(65504.0f) == 0x7bff);
  CHECK(re_f32_to_f16(65520.0f) == 0x7c00); /* rounds to infinity */
  CHECK(re_f32_to_f16(0x1p-24f) == 0x0001);
  CHECK(re_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00); /* tie to even */
  CHECK(re_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f) == 0x3c01);
  CHECK(re_bf16_to_f32(0x3f80) == 1.0f);
  int all = 1; /* every finite half survives a round trip */
  for (unsigned h = 0; h < 0x10000; h++) {
    float f = re_f16_to_f32((unsigned short)h);
    if (isfinite(f))
      all &= re_f32_to_f16(f) == (unsigned short)h || (f == 0.0f && (h & 0x7fff) == 0);
  }
  CHECK(all);
}

int main(void) {
  snprintf(dir, sizeof dir, "%s", "npy_roundtrip_XXXXXX");
  if (!mkdtemp(dir))
    return 2;
  int64_t s1[1] = {17}, s2[2] = {5, 3}, s3[3] = {4, 2, 3}, s0[1] = {0}, s20[2] = {0, 4};
  for (int dt = 0; dt < RE_DTYPE_COUNT; dt++) {
    if (dt == RE_DTYPE_BF16)
      continue;
    roundtrip((re_dtype)dt, 1, s1);
    roundtrip((re_dtype)dt, 2, s2);
    roundtrip((re_dtype)dt, 3, s3);
  }
  roundtrip(RE_DTYPE_F64, 0, NULL);
  roundtrip(RE_DTYPE_F32, 1, s0);
  roundtrip(RE_DTYPE_F32, 2, s20);
  int64_t s9[9] = {1, 2, 1, 2, 1, 2, 1, 2, 1};
  roundtrip(RE_DTYPE_F32, 9, s9);
  char p[512];
  path_of(p, sizeof p, "x.npy");
  CHECK_FAILS(re_npy_write(p, RE_DTYPE_BF16, 1, s1, "xx"), RE_EUNSUPPORTED, "bfloat16");
  handmade();
  half_precision();
  /* clean up */
  const char *names[] = {"rt.npy", "hand.npy"};
  for (size_t i = 0; i < 2; i++) {
    path_of(p, sizeof p, names[i]);
    unlink(p);
  }
  rmdir(dir);
  return check_report();
}
