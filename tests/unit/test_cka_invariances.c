/* CKA properties (Kornblith et al. 2019, section 3): CKA(X, X) = 1; invariant to
 * orthogonal transforms and isotropic scaling; not invariant to general
 * invertible maps. The feature-space (co-moment) and Gram estimators agree,
 * biased and unbiased, also with large feature offsets. */
#include <stdlib.h>

#include "check.h"
#include "repeval/cka.h"

#define N 300
#define P 8
#define Q 6

static double X[N * P], Y[N * Q];

static double cka_moments(const double *x, int64_t p, const double *y, int64_t q, int64_t n, int debiased) {
  int64_t dims[2] = {p, q}, ld[2] = {p, q};
  int32_t pair[2] = {0, 1};
  re_moments *m = NULL;
  re_cka_result r = {0};
  CHECK_OK(re_moments_create(2, dims, 1, pair, debiased ? RE_MOMENTS_DEBIASED : 0, &m));
  for (int64_t t = 0; t < n; t += 37) { /* odd batch size on purpose */
    int64_t b = n - t < 37 ? n - t : 37;
    const double *xs[2] = {x + t * p, y + t * q};
    CHECK_OK(re_moments_add_batch(m, b, xs, ld));
  }
  CHECK_OK(re_cka_linear_from_moments(m, 0, 1, debiased, &r));
  re_moments_destroy(&m);
  return r.value;
}

static double cka_gram(const double *x, int64_t p, const double *y, int64_t q, int64_t n, int debiased, int rbf) {
  double *K = malloc(sizeof(double) * (size_t)(n * n)), *Lg = malloc(sizeof(double) * (size_t)(n * n));
  double s2;
  re_cka_result r = {0};
  if (rbf) {
    CHECK_OK(re_gram_rbf(x, n, p, p, 0.8, K, &s2));
    CHECK_OK(re_gram_rbf(y, n, q, q, 0.8, Lg, &s2));
  } else {
    CHECK_OK(re_gram_linear(x, n, p, p, K));
    CHECK_OK(re_gram_linear(y, n, q, q, Lg));
  }
  CHECK_OK(re_gram_centre(K, n, debiased));
  CHECK_OK(re_gram_centre(Lg, n, debiased));
  CHECK_OK(re_cka_from_centred_grams(K, Lg, n, debiased, &r));
  free(K);
  free(Lg);
  return r.value;
}

/* out = x A for A (p x p) */
static void apply(const double *x, const double *A, int64_t p, double *out) {
  for (int64_t t = 0; t < N; t++)
    for (int64_t j = 0; j < p; j++) {
      double s = 0;
      for (int64_t k = 0; k < p; k++)
        s += x[t * p + k] * A[k * p + j];
      out[t * p + j] = s;
    }
}

/* random orthogonal P x P by Gram-Schmidt */
static void orthogonal(double *Qm) {
  for (int i = 0; i < P * P; i++)
    Qm[i] = check_normal();
  for (int c = 0; c < P; c++) {
    for (int prev = 0; prev < c; prev++) {
      double d = 0;
      for (int r = 0; r < P; r++)
        d += Qm[r * P + c] * Qm[r * P + prev];
      for (int r = 0; r < P; r++)
        Qm[r * P + c] -= d * Qm[r * P + prev];
    }
    double nrm = 0;
    for (int r = 0; r < P; r++)
      nrm += Qm[r * P + c] * Qm[r * P + c];
    for (int r = 0; r < P; r++)
      Qm[r * P + c] /= sqrt(nrm);
  }
}

int main(void) {
  check_seed(42);
  for (int t = 0; t < N; t++) {
    for (int k = 0; k < P; k++)
      X[t * P + k] = check_normal() * (1 + 0.3 * k);
    for (int k = 0; k < Q; k++)
      Y[t * Q + k] = 0.2 * X[t * P + k] * X[t * P + k + 1] + X[t * P + k] + 0.5 * check_normal();
  }
  for (int deb = 0; deb <= 1; deb++) {
    double base = cka_moments(X, P, Y, Q, N, deb);
    CHECK(base > 0.2 && base < 0.95);
    printf("CKA(X, Y) debiased=%d: %.6f\n", deb, base);
    CHECK_CLOSE(cka_gram(X, P, Y, Q, N, deb, 0), base, 1e-12);
    CHECK_CLOSE(cka_moments(X, P, X, P, N, deb), 1.0, 1e-13);
    CHECK_CLOSE(cka_gram(X, P, X, P, N, deb, 0), 1.0, 1e-13);
    CHECK_CLOSE(cka_gram(X, P, X, P, N, deb, 1), 1.0, 1e-13);
    static double XQ[N * P], XA[N * P], Xs[N * P], Xo[N * P];
    double Qm[P * P], A[P * P];
    orthogonal(Qm);
    apply(X, Qm, P, XQ);
    CHECK_CLOSE(cka_moments(XQ, P, Y, Q, N, deb), base, 1e-11);
    CHECK_CLOSE(cka_gram(XQ, P, Y, Q, N, deb, 1), cka_gram(X, P, Y, Q, N, deb, 1), 1e-11);
    for (int i = 0; i < N * P; i++) {
      Xs[i] = 3.7 * X[i];
      Xo[i] = X[i] + 1000.0 + (i % P);
    }
    CHECK_CLOSE(cka_moments(Xs, P, Y, Q, N, deb), base, 1e-12);
    CHECK_CLOSE(cka_moments(Xo, P, Y, Q, N, deb), base, 1e-10);
    CHECK_CLOSE(cka_gram(Xo, P, Y, Q, N, deb, 0), base, 1e-10);
    for (int i = 0; i < P * P; i++)
      A[i] = (i % (P + 1) == 0) ? 1.0 + 4.0 * (i / P) : 0.3 * check_normal();
    apply(X, A, P, XA);
    CHECK(fabs(cka_moments(XA, P, Y, Q, N, deb) - base) > 1e-3);
  }
  /* unbiased and biased differ; the unbiased estimator needs n >= 4 */
  CHECK(fabs(cka_moments(X, P, Y, Q, 20, 1) - cka_moments(X, P, Y, Q, 20, 0)) > 1e-4);
  double K[9];
  CHECK_FAILS(re_gram_centre(K, 3, 1), RE_EUNDEFINED, "at least 4 samples");
  /* a constant layer makes CKA undefined, not NaN-without-reason */
  static double C0[N * 2];
  for (int i = 0; i < N * 2; i++)
    C0[i] = 5.0;
  int64_t dims[2] = {P, 2}, ld[2] = {P, 2};
  int32_t pair[2] = {0, 1};
  re_moments *m = NULL;
  re_cka_result r;
  CHECK_OK(re_moments_create(2, dims, 1, pair, RE_MOMENTS_DEBIASED, &m));
  const double *xs[2] = {X, C0};
  CHECK_OK(re_moments_add_batch(m, N, xs, ld));
  for (int deb = 0; deb <= 1; deb++) {
    CHECK_OK(re_cka_linear_from_moments(m, 0, 1, deb, &r));
    CHECK(!r.defined && isnan(r.value) && r.reason && strstr(r.reason, "constant"));
  }
  re_moments_destroy(&m);
  double *G = malloc(sizeof(double) * N * N);
  double s2;
  CHECK_FAILS(re_gram_rbf(C0, N, 2, 2, 1.0, G, &s2), RE_EUNDEFINED, "median squared distance is zero");
  free(G);
  /* NumPy median semantics */
  double v4[4] = {4, 1, 3, 2}, v3[3] = {3, 1, 2}, v6[6] = {5, 5, 1, 9, 5, 0};
  CHECK(re_median_inplace(v4, 4) == 2.5);
  CHECK(re_median_inplace(v3, 3) == 2.0);
  CHECK(re_median_inplace(v6, 6) == 5.0);
  return check_report();
}
