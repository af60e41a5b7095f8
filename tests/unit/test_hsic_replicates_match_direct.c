/* The minibatch HSIC accumulator's replicates equal a direct computation from
 * explicit per-batch centred Gram matrices: bootstrap replicate r is the CKA of
 * the per-batch HSIC sums weighted by re_poisson1(seed, RE_STREAM_BOOTSTRAP + r, k),
 * the jackknife leaves out the batches k = g mod G, the null CKA of permutation m
 * has the rows of the second tap permuted within each batch by
 * re_permutation(seed, RE_STREAM_PERMUTATION + m, k) (linear and RBF kernels, all
 * pairs and selected pairs, unbiased and biased sums). Split accumulation merged
 * through the serialized state agrees to 1e-13; a state round-trips exactly;
 * bad settings and mismatched or damaged states are refused with a message. */
#include <stdlib.h>

#include "check.h"
#include "repeval/hsic.h"

#define P 3
#define B 12
#define NB 7
#define NBOOT 5
#define NG 3
#define NPERM 4
static const int64_t dims[P] = {3, 5, 2};
static double data[P][B * NB * 5];

/* HSIC of taps p and q over batch k, q's rows permuted by perm (NULL: none). */
static double direct_hsic(int p, int q, int k, int unbiased, re_kernel kern, const double *s2, const int64_t *perm) {
  double K[B * B], L[B * B], x[B * 5], y[B * 5];
  for (int r = 0; r < B; r++) {
    int64_t rq = perm ? perm[r] : r;
    for (int c = 0; c < dims[p]; c++)
      x[r * dims[p] + c] = data[p][(k * B + r) * dims[p] + c];
    for (int c = 0; c < dims[q]; c++)
      y[r * dims[q] + c] = data[q][(k * B + rq) * dims[q] + c];
  }
  if (kern == RE_KERNEL_LINEAR) {
    re_gram_linear(x, B, dims[p], dims[p], K);
    re_gram_linear(y, B, dims[q], dims[q], L);
  } else {
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
  return r.hsic_xy;
}

static void feed(re_hsic *h, int k0, int k1) {
  for (int k = k0; k < k1; k++) {
    CHECK_OK(re_hsic_begin_batch_at(h, B, k));
    for (int p = 0; p < P; p++)
      CHECK_OK(re_hsic_add_tap_f64(h, p, data[p] + (int64_t)k * B * dims[p], dims[p], dims[p]));
    CHECK_OK(re_hsic_end_batch(h));
  }
}

static void compare(const char *what, const double *got, const double *want, int n, double rtol) {
  int bad = 0;
  for (int k = 0; k < n; k++)
    if (!(fabs(got[k] - want[k]) <= rtol * fmax(fabs(want[k]), 1e-300)))
      bad++, fprintf(stderr, "%s: replicate %d: %.17g vs direct %.17g\n", what, k, got[k], want[k]);
  CHECK(bad == 0);
}

/* Every replicate kind of pair (p, q) against the direct computation. */
static void check_pair(const re_hsic *h, int p, int q, int unbiased, re_kernel kern, const double *s2, uint64_t seed) {
  double hk[NB][3];
  for (int k = 0; k < NB; k++) {
    hk[k][0] = direct_hsic(p, q, k, unbiased, kern, s2, NULL);
    hk[k][1] = direct_hsic(p, p, k, unbiased, kern, s2, NULL);
    hk[k][2] = direct_hsic(q, q, k, unbiased, kern, s2, NULL);
  }
  double got[NBOOT > NPERM ? NBOOT : NPERM], want[NBOOT > NPERM ? NBOOT : NPERM];
  int n = 0;
  for (int r = 0; r < NBOOT; r++) {
    double s[3] = {0, 0, 0};
    for (int k = 0; k < NB; k++) {
      int w = re_poisson1(seed, RE_STREAM_BOOTSTRAP + (uint64_t)r, (uint64_t)k);
      for (int t = 0; t < 3; t++)
        s[t] += w * hk[k][t];
    }
    want[r] = s[1] > 0 && s[2] > 0 ? s[0] / sqrt(s[1] * s[2]) : NAN;
  }
  CHECK_OK(re_hsic_cka_replicates(h, p, q, RE_REP_BOOTSTRAP, got, &n));
  CHECK(n == NBOOT);
  compare("bootstrap", got, want, NBOOT, 1e-11);
  for (int g = 0; g < NG; g++) {
    double s[3] = {0, 0, 0};
    for (int k = 0; k < NB; k++)
      if (k % NG != g)
        for (int t = 0; t < 3; t++)
          s[t] += hk[k][t];
    want[g] = s[0] / sqrt(s[1] * s[2]);
  }
  CHECK_OK(re_hsic_cka_replicates(h, p, q, RE_REP_JACKKNIFE, got, &n));
  CHECK(n == NG);
  compare("jackknife", got, want, NG, 1e-11);
  if (p == q)
    return;
  int lo = p < q ? p : q, hi = p < q ? q : p; /* the second tap of the stored pair is permuted */
  double spp = 0, sqq = 0;
  for (int k = 0; k < NB; k++)
    spp += hk[k][1], sqq += hk[k][2];
  for (int m = 0; m < NPERM; m++) {
    double s = 0;
    for (int k = 0; k < NB; k++) {
      int64_t perm[B];
      re_permutation(seed, RE_STREAM_PERMUTATION + (uint64_t)m, (uint64_t)k, B, perm);
      s += direct_hsic(lo, hi, k, unbiased, kern, s2, perm);
    }
    want[m] = s / sqrt(spp * sqq);
  }
  CHECK_OK(re_hsic_cka_replicates(h, p, q, RE_REP_NULL, got, &n));
  CHECK(n == NPERM);
  compare("null", got, want, NPERM, 1e-11);
}

static void run_case(re_kernel kern, int unbiased, int npairs, const int32_t *pairs) {
  double s2[P] = {4.0, 9.0, 2.5};
  uint64_t seed = 12345 + (uint64_t)kern * 10 + (uint64_t)unbiased;
  re_resampling rs = {NBOOT, NG, NPERM, seed};
  re_hsic_config cfg = {P, kern, kern == RE_KERNEL_RBF ? s2 : NULL, B, npairs, pairs};
  re_hsic *h = NULL, *h1 = NULL, *h2 = NULL;
  CHECK_OK(re_hsic_create(&cfg, &h));
  CHECK_OK(re_hsic_create(&cfg, &h1));
  CHECK_OK(re_hsic_create(&cfg, &h2));
  if (!h || !h1 || !h2)
    goto done;
  CHECK_OK(re_hsic_set_resampling(h, &rs, !unbiased));
  CHECK_OK(re_hsic_set_resampling(h1, &rs, !unbiased));
  CHECK_OK(re_hsic_set_resampling(h2, &rs, !unbiased));
  feed(h, 0, NB);
  for (int p = 0; p < P; p++)
    for (int q = p; q < P; q++)
      if (re_hsic_has_pair(h, p, q))
        check_pair(h, p, q, unbiased, kern, s2, seed);
  /* batches 0..3 and 4..6 in two accumulators, merged through the serialized state */
  feed(h1, 0, 4);
  feed(h2, 4, NB);
  int64_t len = re_hsic_serial_len(h);
  double *buf = malloc(sizeof(double) * (size_t)len), *buf2 = malloc(sizeof(double) * (size_t)len);
  re_hsic_serialize(h2, buf);
  CHECK_OK(re_hsic_merge_serial(h1, buf, len));
  double a[NBOOT], c[NBOOT];
  int n1, n2;
  for (re_replicate_kind kind = RE_REP_BOOTSTRAP; kind <= RE_REP_NULL; kind++) {
    CHECK_OK(re_hsic_cka_replicates(h, 0, 2, kind, a, &n1));
    CHECK_OK(re_hsic_cka_replicates(h1, 0, 2, kind, c, &n2));
    CHECK(n1 == n2);
    compare("merged", c, a, n1, 1e-13);
  }
  /* the state round-trips bitwise */
  re_hsic_serialize(h, buf);
  re_hsic_reset(h2);
  CHECK_OK(re_hsic_deserialize(h2, buf, len));
  re_hsic_serialize(h2, buf2);
  CHECK(memcmp(buf, buf2, sizeof(double) * (size_t)len) == 0);
  /* a damaged replicate count is refused */
  int64_t PP = (int64_t)P * P;
  buf[4 + 2 * PP] = -1;
  CHECK_FAILS(re_hsic_merge_serial(h2, buf, len), RE_EFORMAT, "replicate 0");
  buf[4 + 2 * PP] = 0.5;
  CHECK_FAILS(re_hsic_deserialize(h2, buf, len), RE_EFORMAT, "replicate 0");
  free(buf);
  free(buf2);
done:
  re_hsic_destroy(&h);
  re_hsic_destroy(&h1);
  re_hsic_destroy(&h2);
}

int main(void) {
  check_seed(17);
  for (int p = 0; p < P; p++)
    for (int64_t k = 0; k < B * NB * dims[p]; k++)
      data[p][k] = check_normal() + (p == 1 ? 0.5 * data[0][k % (B * NB * 3)] : 0) + 3.0;
  int32_t pairs[4] = {0, 2, 1, 2};
  for (int unbiased = 0; unbiased <= 1; unbiased++) {
    run_case(RE_KERNEL_LINEAR, unbiased, 0, NULL);
    run_case(RE_KERNEL_RBF, unbiased, 0, NULL);
    run_case(RE_KERNEL_LINEAR, unbiased, 2, pairs);
  }

  /* settings and states that do not fit */
  re_hsic *h = NULL, *o = NULL;
  re_resampling bad = {-1, 0, 0, 1}, one = {0, 1, 0, 1}, r1 = {3, 0, 2, 1}, r2 = {3, 0, 2, 2};
  re_hsic_config cfg = {P, RE_KERNEL_LINEAR, NULL, B, 0, NULL};
  CHECK_OK(re_hsic_create(&cfg, &h));
  CHECK_OK(re_hsic_create(&cfg, &o));
  if (h && o) {
    CHECK_FAILS(re_hsic_set_resampling(h, &bad, 0), RE_EINVAL, "replicate counts");
    CHECK_FAILS(re_hsic_set_resampling(h, &one, 0), RE_EINVAL, "at least 2 groups");
    CHECK_OK(re_hsic_set_resampling(h, &r1, 0));
    CHECK_FAILS(re_hsic_set_resampling(h, &r1, 0), RE_EINVAL, "set once");
    CHECK_OK(re_hsic_set_resampling(o, &r2, 0)); /* another seed: another layout, never merged */
    double *buf = malloc(sizeof(double) * (size_t)re_hsic_serial_len(o));
    re_hsic_serialize(o, buf);
    CHECK_FAILS(re_hsic_merge_serial(h, buf, re_hsic_serial_len(o)), RE_EFORMAT, "layout");
    free(buf);
    double v[3];
    int n;
    CHECK_FAILS(re_hsic_cka_replicates(h, 0, 1, RE_REP_JACKKNIFE, v, &n), RE_EINVAL, "no jackknife");
    CHECK_FAILS(re_hsic_cka_replicates(h, 1, 1, RE_REP_NULL, v, &n), RE_EINVAL, "two different taps");
    CHECK_FAILS(re_hsic_begin_batch_at(h, B, -1), RE_EINVAL, "negative");
    re_uncertainty u;
    CHECK_FAILS(re_hsic_cka_uncertainty(h, 0, 1, RE_REP_JACKKNIFE, RE_INTERVAL_NORMAL, 0.95, &u), RE_EINVAL,
                "no jackknife");
    feed(h, 0, 2);
    CHECK_FAILS(re_hsic_cka_uncertainty(h, 0, 1, RE_REP_BOOTSTRAP, RE_INTERVAL_NORMAL, 1.5, &u), RE_EINVAL,
                "between 0 and 1");
  }
  re_hsic_destroy(&h);
  re_hsic_destroy(&o);
  return check_report();
}
