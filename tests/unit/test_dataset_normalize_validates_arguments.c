/* Per-channel normalisation: (x - mean[c]) / std[c] applied to each channel
 * plane in float32 (compared bit for bit with the same expression here), and
 * refusals of a wrong channel count, non-finite means and non-positive stds. */
#include "check.h"
#include "ds_fixtures.h"
#include "repeval/dataset.h"

static fx_buf record(int label, int seed) {
  fx_buf b = {0};
  uint8_t l = (uint8_t)label;
  fx_put(&b, &l, 1);
  for (int k = 0; k < 3072; k++) {
    uint8_t v = (uint8_t)((k * 7 + seed) % 256);
    fx_put(&b, &v, 1);
  }
  return b;
}

int main(void) {
  fx_buf a = record(3, 0), b = record(9, 100);
  fx_put(&a, b.p, b.n);
  re_dataset *ds = NULL;
  CHECK_OK(re_dataset_open_cifar_memory(a.p, (int64_t)a.n, "two.bin", 1, 0, &ds));
  if (!ds)
    return check_report();
  const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, std[3] = {0.247f, 0.243f, 0.261f};
  CHECK_OK(re_dataset_set_normalize(ds, mean, std, 3));
  static float x[2 * 3072];
  int32_t y[2];
  CHECK_OK(re_dataset_read(ds, 0, 2, x, y));
  int bad = 0;
  for (int s = 0; s < 2; s++)
    for (int c = 0; c < 3; c++)
      for (int k = 0; k < 1024; k++) {
        uint8_t v = a.p[s * 3073 + 1 + c * 1024 + k];
        float want = ((float)v / 255.0f - mean[c]) / std[c];
        bad += x[s * 3072 + c * 1024 + k] != want;
      }
  CHECK(bad == 0);
  CHECK(y[0] == 3 && y[1] == 9);

  const float one[1] = {0.5f}, nan_mean[3] = {0, NAN, 0}, zero_std[3] = {1, 0, 1}, inf_std[3] = {1, 1, INFINITY};
  CHECK_FAILS(re_dataset_set_normalize(ds, one, one, 1), RE_EINVAL,
              "normalisation has 1 mean/std values but the dataset has 3 channels");
  CHECK_FAILS(re_dataset_set_normalize(ds, nan_mean, std, 3), RE_EINVAL, "mean[1] = nan is not finite");
  CHECK_FAILS(re_dataset_set_normalize(ds, mean, zero_std, 3), RE_EINVAL, "std[1] = 0 must be positive");
  CHECK_FAILS(re_dataset_set_normalize(ds, mean, inf_std, 3), RE_EINVAL, "std[2] = inf must be positive");
  /* a refused setting keeps the previous one */
  float x2[3072];
  CHECK_OK(re_dataset_read(ds, 1, 2, x2, NULL));
  CHECK(!memcmp(x2, x + 3072, sizeof x2));
  /* range checks */
  CHECK_FAILS(re_dataset_read(ds, -1, 1, x2, NULL), RE_EINVAL, "dataset read [-1, 1) out of range");
  CHECK_FAILS(re_dataset_read(ds, 2, 1, x2, NULL), RE_EINVAL, "out of range");
  CHECK_OK(re_dataset_read(ds, 2, 2, x2, NULL));
  re_dataset_close(&ds);
  CHECK(ds == NULL);
  re_dataset_close(&ds);
  free(a.p);
  free(b.p);
  return check_report();
}
