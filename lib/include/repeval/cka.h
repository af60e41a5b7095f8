/* Centred kernel alignment (Kornblith et al. 2019) and HSIC estimators.
 *
 * CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)).
 * Biased HSIC: tr(K H L H) / (n-1)^2 with H = I - 11^T/n.
 * Unbiased HSIC_1 (Song et al. 2012), equivalently the U-centred Gram inner
 * product of the Kornblith reference code, divided by n(n-3). */
#ifndef REPEVAL_CKA_H
#define REPEVAL_CKA_H

#include "repeval/moments.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct re_cka_result {
  double value;   /* CKA in [0, 1] (NAN when undefined) */
  double hsic_xy; /* HSIC estimates (biased: /(n-1)^2, unbiased: /(n(n-3))) */
  double hsic_xx;
  double hsic_yy;
  int defined;    /* 0: value is NAN and reason says why */
  const char *reason;
} re_cka_result;

/* Linear CKA of layers i and j from a co-moment accumulator (no n x n matrix).
 * debiased requires the accumulator to hold RE_MOMENTS_DEBIASED terms. */
re_status re_cka_linear_from_moments(const re_moments *m, int i, int j, int debiased, re_cka_result *out);

/* Linear Gram matrix of the column-centred X: K = Xc Xc^T.
 * X: n x p row-major (leading dimension ldx); K: n x n row-major, written in full. */
re_status re_gram_linear(const double *X, int64_t n, int64_t p, int64_t ldx, double *K);

/* RBF Gram K_ij = exp(-||x_i - x_j||^2 / (2 T^2 m)), m = median of all n^2 squared
 * distances (NumPy median, as in the Kornblith et al. reference code).
 * X: n x p (ld ldx); K: n x n. *sigma2 receives T^2 m. RE_EUNDEFINED if m = 0. */
re_status re_gram_rbf(const double *X, int64_t n, int64_t p, int64_t ldx, double threshold, double *K,
                      double *sigma2);

/* Centre a Gram matrix in place: H K H (biased) or U-centring (unbiased, n >= 4). K: n x n. */
re_status re_gram_centre(double *K, int64_t n, int unbiased);

/* CKA from two Gram matrices already centred by re_gram_centre with the same mode. */
re_status re_cka_from_centred_grams(const double *K, const double *L, int64_t n, int unbiased,
                                    re_cka_result *out);

/* Median of v[0..n) with NumPy semantics (mean of the two middle values for even n).
 * Reorders v. */
double re_median_inplace(double *v, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
