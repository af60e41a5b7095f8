/* CKA from co-moments (feature space) and from Gram matrices.
 *
 * Feature space, centred features X (n x p), Y (n x q), C = X^T Y:
 *   biased:   CKA = ||X^T Y||_F^2 / (||X^T X||_F ||Y^T Y||_F)
 *   unbiased: n(n-3) HSIC_1 = ||X^T Y||_F^2 - n/(n-2) sum_s q_s r_s
 *                              + tr(X^T X) tr(Y^T Y) / ((n-1)(n-2))
 *             with q_s = ||x_s||^2, r_s = ||y_s||^2; this is HSIC_1 of Song et al.
 *             (2012, eq. 5) with the sample kernels of centred features, which
 *             equals HSIC_1 of the raw features (it is translation invariant). */
#include "repeval/cka.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Dot product of long vectors (BLAS takes int lengths). */
static double dot_long(const double *a, const double *b, int64_t len) {
  double s = 0;
  const int64_t chunk = (int64_t)1 << 30;
  for (int64_t k = 0; k < len; k += chunk)
    s += cblas_ddot((int)(len - k < chunk ? len - k : chunk), a + k, 1, b + k, 1);
  return s;
}

static double frob2(const double *A, int64_t len) {
  double s = 0;
  for (int64_t k = 0; k < len; k++)
    s += A[k] * A[k];
  return s;
}

static void finish(re_cka_result *out, double xy, double xx, double yy, double scale, const char *zero_reason) {
  out->hsic_xy = xy * scale;
  out->hsic_xx = xx * scale;
  out->hsic_yy = yy * scale;
  if (!(xx > 0) || !(yy > 0)) {
    out->defined = 0;
    out->value = NAN;
    out->reason = zero_reason;
    return;
  }
  out->defined = 1;
  out->reason = NULL;
  out->value = xy / sqrt(xx * yy);
}

re_status re_cka_linear_from_moments(const re_moments *m, int i, int j, int debiased, re_cka_result *out) {
  memset(out, 0, sizeof *out);
  int tr;
  const double *Cxy = re_moments_block(m, i, j, &tr), *Cxx = re_moments_block(m, i, i, NULL),
               *Cyy = re_moments_block(m, j, j, NULL);
  if (!Cxy || !Cxx || !Cyy)
    return re_err(RE_EINVAL, "CKA: layer pair (%d, %d) was not accumulated", i, j);
  int64_t p = re_moments_dim(m, i), q = re_moments_dim(m, j);
  double n = re_moments_n(m);
  double xy = frob2(Cxy, p * q), xx = frob2(Cxx, p * p), yy = frob2(Cyy, q * q);
  if (!debiased) {
    if (n < 2) {
      out->defined = 0, out->value = NAN, out->reason = "CKA needs at least 2 samples";
      out->hsic_xy = out->hsic_xx = out->hsic_yy = NAN;
      return RE_OK;
    }
    /* ||C_xx||_F^2 is HSIC(K, K) (n-1)^2 */
    finish(out, xy, xx, yy, 1.0 / ((n - 1) * (n - 1)), "a layer has zero variance (constant features)");
    return RE_OK;
  }
  if (n < 4) {
    out->defined = 0, out->value = NAN, out->reason = "unbiased HSIC needs at least 4 samples";
    out->hsic_xy = out->hsic_xx = out->hsic_yy = NAN;
    return RE_OK;
  }
  double sqq_xy, sqq_xx, sqq_yy;
  const double *a, *b;
  RE_TRY(re_moments_debiased_terms(m, i, j, &sqq_xy, &a, &b));
  RE_TRY(re_moments_debiased_terms(m, i, i, &sqq_xx, &a, &b));
  RE_TRY(re_moments_debiased_terms(m, j, j, &sqq_yy, &a, &b));
  double trx = 0, try_ = 0;
  for (int64_t k = 0; k < p; k++)
    trx += Cxx[k * p + k];
  for (int64_t k = 0; k < q; k++)
    try_ += Cyy[k * q + k];
  double c1 = n / (n - 2), c2 = 1.0 / ((n - 1) * (n - 2));
  double hxy = xy - c1 * sqq_xy + trx * try_ * c2;
  double hxx = xx - c1 * sqq_xx + trx * trx * c2;
  double hyy = yy - c1 * sqq_yy + try_ * try_ * c2;
  finish(out, hxy, hxx, hyy, 1.0 / (n * (n - 3)),
         "unbiased HSIC of a layer with itself is not positive (constant features or too few samples)");
  return RE_OK;
}

/* ---- Gram matrices ----------------------------------------------------- */

static re_status centred_copy(const double *X, int64_t n, int64_t p, int64_t ldx, double **out) {
  double *Xc;
  RE_TRY(re_malloc(n, p * (int64_t)sizeof(double), &Xc));
  for (int64_t k = 0; k < p; k++) {
    double s = 0;
    for (int64_t r = 0; r < n; r++)
      s += X[r * ldx + k];
    double mu = s / (double)n;
    for (int64_t r = 0; r < n; r++)
      Xc[r * p + k] = X[r * ldx + k] - mu;
  }
  *out = Xc;
  return RE_OK;
}

static void mirror_upper(double *K, int64_t n) {
  for (int64_t r = 1; r < n; r++)
    for (int64_t c = 0; c < r; c++)
      K[r * n + c] = K[c * n + r];
}

re_status re_gram_linear(const double *X, int64_t n, int64_t p, int64_t ldx, double *K) {
  double *Xc;
  RE_TRY(centred_copy(X, n, p, ldx, &Xc));
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)n, (int)p, 1.0, Xc, (int)p, 0.0, K, (int)n);
  mirror_upper(K, n);
  free(Xc);
  return RE_OK;
}

static void swapd(double *a, double *b) {
  double t = *a;
  *a = *b;
  *b = t;
}

/* k-th smallest of v[0..n) (0-based), partially reordering v (Hoare quickselect,
 * median-of-three pivot). */
static double select_kth(double *v, int64_t n, int64_t k) {
  int64_t lo = 0, hi = n - 1;
  while (hi > lo) {
    int64_t mid = lo + (hi - lo) / 2;
    if (v[mid] < v[lo])
      swapd(&v[mid], &v[lo]);
    if (v[hi] < v[lo])
      swapd(&v[hi], &v[lo]);
    if (v[hi] < v[mid])
      swapd(&v[hi], &v[mid]);
    double pivot = v[mid];
    int64_t i = lo, j = hi;
    while (i <= j) {
      while (v[i] < pivot)
        i++;
      while (v[j] > pivot)
        j--;
      if (i <= j) {
        swapd(&v[i], &v[j]);
        i++;
        j--;
      }
    }
    if (k <= j)
      hi = j;
    else if (k >= i)
      lo = i;
    else
      return v[k];
  }
  return v[k];
}

double re_median_inplace(double *v, int64_t n) {
  if (n <= 0)
    return NAN;
  int64_t h = n / 2;
  double upper = select_kth(v, n, h);
  if (n % 2)
    return upper;
  /* the lower middle is the maximum of the left part after selection */
  double lower = v[0];
  for (int64_t k = 1; k < h; k++)
    if (v[k] > lower)
      lower = v[k];
  return (lower + upper) / 2;
}

re_status re_gram_rbf(const double *X, int64_t n, int64_t p, int64_t ldx, double threshold, double *K,
                      double *sigma2) {
  re_status st = RE_OK;
  double *sq = NULL, *tmp = NULL;
  if (!(threshold > 0) || !isfinite(threshold))
    return re_err(RE_EINVAL, "RBF threshold must be a positive number, got %g", threshold);
  RE_CHECK(re_gram_linear(X, n, p, ldx, K));
  RE_CHECK(re_malloc(n, sizeof(double), &sq));
  for (int64_t r = 0; r < n; r++)
    sq[r] = K[r * n + r];
  for (int64_t r = 0; r < n; r++)
    for (int64_t c = 0; c < n; c++) {
      double d = (r == c) ? 0.0 : sq[r] + sq[c] - 2 * K[r * n + c];
      K[r * n + c] = d > 0 ? d : 0.0;
    }
  RE_CHECK(re_malloc(n * n, sizeof(double), &tmp));
  memcpy(tmp, K, sizeof(double) * (size_t)(n * n));
  double med = re_median_inplace(tmp, n * n);
  if (!(med > 0)) {
    st = re_err(RE_EUNDEFINED, "RBF bandwidth undefined: the median squared distance is zero "
                               "(most samples are identical)");
    goto done;
  }
  double s2 = threshold * threshold * med;
  for (int64_t k = 0; k < n * n; k++)
    K[k] = exp(-K[k] / (2 * s2));
  *sigma2 = s2;
done:
  free(sq);
  free(tmp);
  return st;
}

re_status re_gram_centre(double *K, int64_t n, int unbiased) {
  double *means;
  if (unbiased && n < 4)
    return re_err(RE_EUNDEFINED, "unbiased HSIC needs at least 4 samples, got %lld", (long long)n);
  RE_TRY(re_calloc(n, sizeof(double), &means));
  if (unbiased) {
    /* U-centring (Kornblith et al. reference code, after Song et al. 2012) */
    for (int64_t r = 0; r < n; r++)
      K[r * n + r] = 0;
    for (int64_t r = 0; r < n; r++)
      for (int64_t c = 0; c < n; c++)
        means[c] += K[r * n + c];
    double total = 0;
    for (int64_t c = 0; c < n; c++) {
      means[c] /= (double)(n - 2);
      total += means[c];
    }
    for (int64_t c = 0; c < n; c++)
      means[c] -= total / (double)(2 * (n - 1));
  } else {
    for (int64_t r = 0; r < n; r++)
      for (int64_t c = 0; c < n; c++)
        means[c] += K[r * n + c];
    double total = 0;
    for (int64_t c = 0; c < n; c++) {
      means[c] /= (double)n;
      total += means[c];
    }
    for (int64_t c = 0; c < n; c++)
      means[c] -= total / (double)n / 2;
  }
  for (int64_t r = 0; r < n; r++)
    for (int64_t c = 0; c < n; c++)
      K[r * n + c] -= means[r] + means[c];
  if (unbiased)
    for (int64_t r = 0; r < n; r++)
      K[r * n + r] = 0;
  free(means);
  return RE_OK;
}

re_status re_cka_from_centred_grams(const double *K, const double *L, int64_t n, int unbiased,
                                    re_cka_result *out) {
  memset(out, 0, sizeof *out);
  int64_t nn = n * n;
  double xy = dot_long(K, L, nn), xx = dot_long(K, K, nn), yy = dot_long(L, L, nn);
  double dn = (double)n;
  double scale = unbiased ? 1.0 / (dn * (dn - 3)) : 1.0 / ((dn - 1) * (dn - 1));
  finish(out, xy, xx, yy, scale, "a kernel matrix is constant after centring (zero variance)");
  return RE_OK;
}
