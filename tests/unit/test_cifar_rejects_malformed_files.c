/* CIFAR binary reader: sizes that are not a whole number of records, labels out
 * of range (10 / 20 coarse / 100 fine) and bad arguments fail with the file,
 * record and offset in the message; reads across file boundaries return the
 * right records. */
#include "check.h"
#include "ds_fixtures.h"
#include "repeval/dataset.h"

/* `n` records of `lb` label bytes; record r has labels (r % 10, r % 7 + ...)
 * and pixel k = (r * 31 + k) % 256. */
static fx_buf records(int n, int lb, int r0) {
  fx_buf b = {0};
  for (int r = r0; r < r0 + n; r++) {
    uint8_t l[2] = {(uint8_t)(lb == 1 ? r % 10 : r % 20), (uint8_t)(r * 3 % 100)};
    fx_put(&b, l, (size_t)lb);
    for (int k = 0; k < 3072; k++) {
      uint8_t v = (uint8_t)((r * 31 + k) % 256);
      fx_put(&b, &v, 1);
    }
  }
  return b;
}

int main(void) {
  fx_mkdir();
  re_dataset *ds = NULL;
  fx_buf a = records(3, 1, 0), b = records(2, 1, 3), c = records(4, 2, 0);
  const char *files[3] = {fx_write("data_batch_1.bin", a.p, a.n), fx_write("data_batch_2.bin", b.p, b.n),
                          fx_write("empty.bin", "", 0)};
  CHECK_OK(re_dataset_open_cifar(files, 3, 1, 0, &ds));
  if (ds) {
    const re_dataset_info *in = re_dataset_get_info(ds);
    CHECK(in->count == 5 && in->sample_dim == 3072 && in->channels == 3 && in->height == 32 && in->width == 32);
    CHECK(in->num_classes == 5); /* labels 0..4 */
    static float x[3 * 3072];
    int32_t y[3];
    CHECK_OK(re_dataset_read(ds, 2, 5, x, y)); /* records 2 | 3, 4: crosses the file boundary */
    int bad = 0;
    for (int s = 0; s < 3; s++)
      for (int k = 0; k < 3072; k++)
        bad += x[s * 3072 + k] != (float)(((2 + s) * 31 + k) % 256) / 255.0f;
    CHECK(bad == 0);
    CHECK(y[0] == 2 && y[1] == 3 && y[2] == 4);
  }
  re_dataset_close(&ds);
  /* CIFAR-100: coarse or fine */
  const char *f100[1] = {fx_write("train.bin", c.p, c.n)};
  for (int fine = 0; fine < 2; fine++) {
    CHECK_OK(re_dataset_open_cifar(f100, 1, 2, fine, &ds));
    if (!ds)
      continue;
    int32_t y[4];
    static float x[4 * 3072];
    CHECK_OK(re_dataset_read(ds, 0, 4, x, y));
    CHECK(y[3] == (fine ? 9 : 3));
    CHECK(x[3 * 3072 + 5] == (float)((3 * 31 + 5) % 256) / 255.0f);
    CHECK(re_dataset_get_info(ds)->num_classes == (fine ? 10 : 4));
    re_dataset_close(&ds);
  }

  /* size not a multiple of the record size */
  const char *odd[1] = {fx_write("odd.bin", a.p, a.n - 5)};
  CHECK_FAILS(re_dataset_open_cifar(odd, 1, 1, 0, &ds), RE_EFORMAT,
              "odd.bin: size 9214 is not a multiple of the record size 3073 (CIFAR-10: 1 label byte + 3072 pixels); 3068 bytes left over");
  /* CIFAR-10 files read as CIFAR-100 do not fit either */
  CHECK_FAILS(re_dataset_open_cifar(files, 1, 2, 1, &ds), RE_EFORMAT, "record size 3074 (CIFAR-100: 2 label bytes");
  /* labels out of range */
  a.p[2 * 3073] = 10;
  const char *bad10[1] = {fx_write("bad10.bin", a.p, a.n)};
  CHECK_FAILS(re_dataset_open_cifar(bad10, 1, 1, 0, &ds), RE_EDATA,
              "bad10.bin: record 2 (offset 6146): the label 10 out of range (CIFAR-10 has 10 classes)");
  c.p[1 * 3074] = 20;
  const char *badc[1] = {fx_write("badc.bin", c.p, c.n)};
  CHECK_FAILS(re_dataset_open_cifar(badc, 1, 2, 1, &ds), RE_EDATA,
              "badc.bin: record 1 (offset 3074): coarse label 20 out of range (CIFAR-100 has 20 coarse classes)");
  c.p[1 * 3074] = 19;
  c.p[3 * 3074 + 1] = 100;
  const char *badf[1] = {fx_write("badf.bin", c.p, c.n)};
  CHECK_FAILS(re_dataset_open_cifar(badf, 1, 2, 0, &ds), RE_EDATA,
              "badf.bin: record 3 (offset 9223): fine label 100 out of range (CIFAR-100 has 100 fine classes)");
  /* arguments and missing files */
  CHECK_FAILS(re_dataset_open_cifar(files, 0, 1, 0, &ds), RE_EINVAL, "no files given");
  CHECK_FAILS(re_dataset_open_cifar(files, 1, 3, 0, &ds), RE_EINVAL, "3 label bytes per record");
  const char *missing[2] = {files[0], fx_path("nope.bin")};
  CHECK_FAILS(re_dataset_open_cifar(missing, 2, 1, 0, &ds), RE_EIO, "nope.bin: cannot open");
  CHECK(ds == NULL);
  /* in memory */
  CHECK_OK(re_dataset_open_cifar_memory(b.p, (int64_t)b.n, "mem.bin", 1, 0, &ds));
  CHECK(ds && re_dataset_get_info(ds)->count == 2);
  re_dataset_close(&ds);
  CHECK_FAILS(re_dataset_open_cifar_memory(b.p, 100, "mem.bin", 1, 0, &ds), RE_EFORMAT, "mem.bin: size 100");

  free(a.p);
  free(b.p);
  free(c.p);
  fx_rmdir();
  return check_report();
}
