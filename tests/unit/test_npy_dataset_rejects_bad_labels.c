/* .npy datasets: geometry from the input shape, uint8 scaling, and refusals of
 * labels that are not 1-D non-negative integers matching the input count, with
 * the file named in the message. */
#include "check.h"
#include "ds_fixtures.h"
#include "repeval/dataset.h"
#include "repeval/npy.h"

static re_dataset *ds;

static const char *save(const char *name, re_dtype dt, int ndim, const int64_t *shape, const void *data) {
  const char *p = fx_path(name);
  re_status st = re_npy_write(p, dt, ndim, shape, data);
  if (st != RE_OK) {
    fprintf(stderr, "write %s: %s\n", p, re_errmsg());
    exit(2);
  }
  return p;
}

static re_status open2(const char *x, const char *y) {
  re_dataset_close(&ds);
  return re_dataset_open_npy(x, y, &ds);
}

int main(void) {
  fx_mkdir();
  static uint8_t u8[4 * 2 * 3 * 5];
  for (size_t k = 0; k < sizeof u8; k++)
    u8[k] = (uint8_t)(k * 37 % 256);
  int64_t s4[4] = {4, 2, 3, 5}, s3[3] = {4, 6, 5}, s2[2] = {4, 30}, s5[5] = {4, 1, 2, 3, 5}, s1[1] = {4};
  const char *x4 = save("x4.npy", RE_DTYPE_U8, 4, s4, u8);
  const char *x3 = save("x3.npy", RE_DTYPE_U8, 3, s3, u8);
  const char *x2 = save("x2.npy", RE_DTYPE_U8, 2, s2, u8);
  const char *x5 = save("x5.npy", RE_DTYPE_U8, 5, s5, u8);
  int64_t lab[4] = {0, 5, 2, 5};
  const char *y = save("y.npy", RE_DTYPE_I64, 1, s1, lab);
  struct {
    const char *path;
    int c, h, w;
  } geo[] = {{x4, 2, 3, 5}, {x3, 1, 6, 5}, {x2, 1, 1, 30}, {x5, 1, 1, 30}};
  for (int g = 0; g < 4; g++) {
    CHECK_OK(open2(geo[g].path, y));
    if (!ds)
      continue;
    const re_dataset_info *in = re_dataset_get_info(ds);
    CHECK(in->count == 4 && in->sample_dim == 30 && in->channels == geo[g].c && in->height == geo[g].h &&
          in->width == geo[g].w && in->num_classes == 6);
    float x[2 * 30];
    int32_t yy[2];
    CHECK_OK(re_dataset_read(ds, 2, 4, x, yy));
    int bad = 0;
    for (int k = 0; k < 60; k++)
      bad += x[k] != (float)u8[60 + k] / 255.0f;
    CHECK(bad == 0 && yy[0] == 2 && yy[1] == 5);
  }
  /* float inputs are taken as stored; no labels gives -1 */
  float f[4 * 3] = {1.5f, -2, 3e30f, 0, 1, 2, 3, 4, 5, 6, 7, 8};
  int64_t sf[2] = {4, 3};
  CHECK_OK(open2(save("f.npy", RE_DTYPE_F32, 2, sf, f), NULL));
  if (ds) {
    float x[12];
    int32_t yy[4];
    CHECK_OK(re_dataset_read(ds, 0, 4, x, yy));
    CHECK(!memcmp(x, f, sizeof f) && yy[3] == -1 && !re_dataset_get_info(ds)->has_labels);
  }

  /* labels: dtype, rank, count, range */
  float fl[4] = {0, 1, 2, 3};
  CHECK_FAILS(open2(x4, save("yf.npy", RE_DTYPE_F32, 1, s1, fl)), RE_EUNSUPPORTED, "yf.npy: labels must have an integer dtype, found float32");
  int64_t s22[2] = {2, 2};
  CHECK_FAILS(open2(x4, save("y2.npy", RE_DTYPE_I64, 2, s22, lab)), RE_ESHAPE, "y2.npy: labels must be 1-D (N), found 2 dimensions");
  int64_t s13[1] = {3};
  CHECK_FAILS(open2(x4, save("y3.npy", RE_DTYPE_I64, 1, s13, lab)), RE_ESHAPE, "y3.npy: 3 labels, but");
  CHECK(strstr(re_errmsg(), "x4.npy has 4 samples") != NULL);
  int8_t neg[4] = {0, 1, -1, 2};
  CHECK_FAILS(open2(x4, save("yn.npy", RE_DTYPE_I8, 1, s1, neg)), RE_EDATA, "yn.npy: label -1 of sample 2 is out of range");
  uint64_t huge[4] = {0, UINT64_MAX, 1, 2};
  CHECK_FAILS(open2(x4, save("yu.npy", RE_DTYPE_U64, 1, s1, huge)), RE_EDATA, "yu.npy: label >");
  int64_t over[4] = {0, 1, INT64_C(1) << 31, 2};
  CHECK_FAILS(open2(x4, save("yo.npy", RE_DTYPE_I64, 1, s1, over)), RE_EDATA, "yo.npy: label 2147483648 of sample 2");
  uint16_t u16[4] = {1, 65535, 3, 4};
  CHECK_OK(open2(x4, save("y16.npy", RE_DTYPE_U16, 1, s1, u16)));
  CHECK(ds && re_dataset_get_info(ds)->num_classes == 65536);

  /* inputs: 0-d, empty samples, missing files */
  int64_t s0[1] = {0};
  CHECK_FAILS(open2(save("x0.npy", RE_DTYPE_F32, 0, s0, f), NULL), RE_ESHAPE, "x0.npy: inputs must have a sample dimension");
  int64_t se[2] = {4, 0};
  CHECK_FAILS(open2(save("xe.npy", RE_DTYPE_F32, 2, se, f), NULL), RE_ESHAPE, "xe.npy: inputs have empty samples");
  CHECK_FAILS(open2(fx_path("nope.npy"), NULL), RE_EIO, "nope.npy: cannot open");
  CHECK_FAILS(open2(x4, fx_path("nolab.npy")), RE_EIO, "nolab.npy: cannot open");
  CHECK(ds == NULL);

  re_dataset_close(&ds);
  fx_rmdir();
  return check_report();
}
