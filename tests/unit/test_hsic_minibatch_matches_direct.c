/* The all-pairs minibatch HSIC accumulator equals, pair by pair, a direct
 * computation from explicit centred Gram matrices (U-centring for the unbiased
 * estimator, H K H for the biased one), for linear and RBF kernels, all pairs and
 * selected pairs, and after serialize/merge. Unbiased minibatch CKA approaches the
 * full-data debiased CKA as n grows; the biased minibatch estimate does not. */
#include <stdlib.h>

#include "check.h"
#include "repeval/hsic.h"

#define P 4
#define B 32
#define NB 5
static const int64_t dims[P] = {3, 7, 1, 12};
static float data[P][B * NB * 12];

/* direct per-batch HSIC of taps p, q over batch k */
static double direct_hsic(int p, int q, int k, int unbiased, re_kernel kern, const double *s2) {
  double K[B * B], L[B * B], x[B * 12], y[B * 12], cs;
  for (int r = 0; r < B; r++) {
    for (int c = 0; c < dims[p]; c++)
      x[r * dims[p] + c] = data[p][(k * B + r) * dims[p] + c];
    for (int c = 0; c < dims[q]; c++)
      y[r * dims[q] + c] = data[q][(k * B + r) * dims[q] + c];
  }
  if (kern == RE_KERNEL_LINEAR) {
    re_gram_linear(x, B, dims[p], dims[p], K);
    re_gram_linear(y, B, dims[q], dims[q], L);
  } else { /* explicit RBF with the given bandwidths */
    for (int i = 0; i < B; i++)
      for (int j = 0; j < B; j++) {
        double dx = 0, dy = 0;
        for (int c = 0; c < dims[p]; c++)
          dx += (x[i * dims[p] + c] - x[j * dims[p] + c]) * (x[i * dims[p] + c] - x[j * dims[p] + c]);
        for (int c = 0; c < dims[q]; c++)
          dy += (y[i * dims[q] + c] - y[j * dims[q] + c]) * (y[i * dims[q] + c] - y[j * dims[q] + c]);
        K[i * B + j] = exp(-dx / (2 * s2[p]));
        L[i * B + j] = exp(-dy / (2 * s2[q]));
      }
  }
  re_gram_centre(K, B, unbiased);
  re_gram_centre(L, B, unbiased);
  re_cka_result r;
  re_cka_from_centred_grams(K, L, B, unbiased, &r);
  cs = r.hsic_xy;
  return cs;
}

static void feed(re_hsic *h, int k0, int k1) {
  for (int k = k0; k < k1; k++) {
    CHECK_OK(re_hsic_begin_batch(h, B));
    for (int p = 0; p < P; p++)
      CHECK_OK(re_hsic_add_tap_f32(h, p, data[p] + (int64_t)k * B * dims[p], dims[p], dims[p]));
    CHECK_OK(re_hsic_end_batch(h));
  }
}

int main(void) {
  check_seed(3);
  for (int p = 0; p < P; p++)
    for (int t = 0; t < B * NB; t++)
      for (int c = 0; c < dims[p]; c++)
        data[p][t * dims[p] + c] = (float)(check_normal() + (p == 1 ? 1000.0 : 0.0) +
                                           (p > 0 ? 0.5 * data[0][t * dims[0] + c % 3] : 0.0));
  double s2[P];
  for (int p = 0; p < P; p++)
    CHECK_OK(re_rbf_sigma2_f32(data[p], 64, dims[p], dims[p], 1.0, &s2[p]));
  for (int kern = 0; kern <= 1; kern++) {
    re_hsic_config cfg = {P, (re_kernel)kern, kern ? s2 : NULL, B, 0, NULL};
    re_hsic *h = NULL;
    CHECK_OK(re_hsic_create(&cfg, &h));
    feed(h, 0, NB);
    CHECK(re_hsic_batches(h) == NB);
    for (int unb = 0; unb <= 1; unb++)
      for (int p = 0; p < P; p++)
        for (int q = 0; q < P; q++) {
          double want = 0;
          for (int k = 0; k < NB; k++)
            want += direct_hsic(p, q, k, unb, (re_kernel)kern, s2);
          want /= NB;
          /* the offset-1000 tap loses a little in float32 storage, not in the math */
          CHECK_CLOSE(re_hsic_mean(h, p, q, unb), want, 1e-9);
        }
    /* selected pairs give the same numbers; unrequested pairs are absent */
    int32_t pairs[4] = {0, 2, 3, 1};
    re_hsic_config sel = {P, (re_kernel)kern, kern ? s2 : NULL, B, 2, pairs};
    re_hsic *hs = NULL;
    CHECK_OK(re_hsic_create(&sel, &hs));
    feed(hs, 0, NB);
    CHECK(re_hsic_has_pair(hs, 2, 0) && re_hsic_has_pair(hs, 1, 3) && re_hsic_has_pair(hs, 3, 3));
    CHECK(!re_hsic_has_pair(hs, 0, 1) && !re_hsic_has_pair(hs, 2, 3));
    re_cka_result a, b;
    for (int unb = 0; unb <= 1; unb++) {
      CHECK_OK(re_hsic_cka(h, 0, 2, unb, &a));
      CHECK_OK(re_hsic_cka(hs, 2, 0, unb, &b));
      CHECK_CLOSE(a.value, b.value, 1e-12);
      CHECK_OK(re_hsic_cka(h, 3, 1, unb, &a));
      CHECK_OK(re_hsic_cka(hs, 1, 3, unb, &b));
      CHECK_CLOSE(a.value, b.value, 1e-12);
      CHECK_OK(re_hsic_cka(h, 2, 2, unb, &a));
      CHECK_CLOSE(a.value, 1.0, 1e-14);
    }
    CHECK_FAILS(re_hsic_cka(hs, 0, 1, 1, &b), RE_EINVAL, "not accumulated");
    /* split into two accumulators, merge serialized: same sums */
    re_hsic *h1 = NULL, *h2 = NULL;
    CHECK_OK(re_hsic_create(&cfg, &h1));
    CHECK_OK(re_hsic_create(&cfg, &h2));
    feed(h1, 0, 2);
    feed(h2, 2, NB);
    int64_t len = re_hsic_serial_len(h2);
    double *buf = malloc(sizeof(double) * (size_t)len);
    re_hsic_serialize(h2, buf);
    CHECK_OK(re_hsic_merge_serial(h1, buf, len));
    for (int p = 0; p < P; p++)
      for (int q = 0; q < P; q++)
        CHECK_CLOSE(re_hsic_mean(h1, p, q, 1), re_hsic_mean(h, p, q, 1), 1e-13);
    double *buf2 = malloc(sizeof(double) * (size_t)len);
    re_hsic_serialize(h, buf2);
    CHECK_FAILS(re_hsic_merge_serial(hs, buf2, len), RE_EFORMAT, "layout");
    free(buf);
    free(buf2);
    re_hsic_destroy(&h1);
    re_hsic_destroy(&h2);
    re_hsic_destroy(&hs);
    re_hsic_destroy(&h);
    CHECK(h == NULL);
  }
  /* errors */
  re_hsic_config cfg = {P, RE_KERNEL_LINEAR, NULL, B, 0, NULL};
  re_hsic *h = NULL;
  CHECK_OK(re_hsic_create(&cfg, &h));
  CHECK_FAILS(re_hsic_begin_batch(h, B + 1), RE_EINVAL, "batch of 33");
  CHECK_OK(re_hsic_begin_batch(h, B));
  CHECK_OK(re_hsic_add_tap_f32(h, 0, data[0], 3, 3));
  CHECK_FAILS(re_hsic_end_batch(h), RE_EINVAL, "tap 1 was not given");
  float bad[B * 3];
  memcpy(bad, data[0], sizeof bad);
  bad[3 * 5 + 2] = NAN;
  CHECK_FAILS(re_hsic_add_tap_f32(h, 0, bad, 3, 3), RE_EDATA, "tap 0, batch row 5, column 2 is NaN");
  re_hsic_config rbf = {P, RE_KERNEL_RBF, NULL, B, 0, NULL};
  re_hsic *h2 = NULL;
  CHECK_FAILS(re_hsic_create(&rbf, &h2), RE_EINVAL, "bandwidth");
  re_hsic_destroy(&h);

  /* convergence: unbiased minibatch CKA -> full-data debiased CKA; biased does not */
  enum { N = 8192, D = 6, MB = 16 };
  static double x[N * D], y[N * D];
  static float xf[N * D], yf[N * D];
  for (int t = 0; t < N; t++)
    for (int c = 0; c < D; c++) {
      x[t * D + c] = check_normal();
      y[t * D + c] = (c < 3 ? x[t * D + c] : 0.0) + check_normal();
      xf[t * D + c] = (float)x[t * D + c];
      yf[t * D + c] = (float)y[t * D + c];
      x[t * D + c] = xf[t * D + c];
      y[t * D + c] = yf[t * D + c];
    }
  int64_t md[2] = {D, D}, ld[2] = {D, D};
  int32_t pr[2] = {0, 1};
  re_moments *m = NULL;
  CHECK_OK(re_moments_create(2, md, 1, pr, RE_MOMENTS_DEBIASED, &m));
  const double *xs[2] = {x, y};
  CHECK_OK(re_moments_add_batch(m, N, xs, ld));
  re_cka_result full_u, full_b, mb_u, mb_b;
  CHECK_OK(re_cka_linear_from_moments(m, 0, 1, 1, &full_u));
  CHECK_OK(re_cka_linear_from_moments(m, 0, 1, 0, &full_b));
  re_moments_destroy(&m);
  re_hsic_config c2 = {2, RE_KERNEL_LINEAR, NULL, MB, 0, NULL};
  CHECK_OK(re_hsic_create(&c2, &h));
  for (int t = 0; t < N; t += MB) {
    CHECK_OK(re_hsic_begin_batch(h, MB));
    CHECK_OK(re_hsic_add_tap_f32(h, 0, xf + t * D, D, D));
    CHECK_OK(re_hsic_add_tap_f32(h, 1, yf + t * D, D, D));
    CHECK_OK(re_hsic_end_batch(h));
  }
  CHECK_OK(re_hsic_cka(h, 0, 1, 1, &mb_u));
  CHECK_OK(re_hsic_cka(h, 0, 1, 0, &mb_b));
  printf("full debiased %.4f, minibatch(16) unbiased %.4f, biased %.4f, full biased %.4f\n", full_u.value,
         mb_u.value, mb_b.value, full_b.value);
  CHECK(fabs(mb_u.value - full_u.value) < 0.02);
  CHECK(fabs(mb_b.value - full_b.value) > 0.05);
  re_hsic_destroy(&h);
  return check_report();
}
