/* CCA family and covariance analytics from reduced co-moments (n, C_xx, C_yy, C_xy):
 * CCA, SVCCA, PWCCA, orthogonal Procrustes, linear-regression R^2, PCA spectrum and
 * collapse diagnostics. Each layer's symmetric eigendecomposition is computed once
 * (re_eig) and reused by every pair that involves the layer. Math in float64 with
 * LAPACK (dsyevd, dgesdd); formulas and conventions in docs/metrics.md. */
#ifndef REPEVAL_CCA_H
#define REPEVAL_CCA_H

#include "repeval/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Eigendecomposition of a layer's covariance S = C / (n - 1). */
typedef struct re_eig {
  int64_t d;
  double n;
  double *values;  /* d eigenvalues, descending; those below the numerical rank set to 0 */
  double *vectors; /* d x d row-major; column k is the eigenvector of values[k] */
  double trace;    /* sum of eigenvalues = total variance */
  int64_t rank;    /* eigenvalues > 1e-10 * largest */
} re_eig;

/* Decompose a centred co-moment C (d x d row-major, a sum over n samples). */
re_status re_eig_create(const double *C, int64_t d, double n, re_eig **out);
/* Destroy (NULL allowed); sets *e to NULL. */
void re_eig_destroy(re_eig **e);
/* The leading directions SVCCA keeps: the fewest whose eigenvalues reach a fraction
 * frac of the trace, at most the numerical rank (0 for a layer without variance). */
int64_t re_eig_kept_for_variance(const re_eig *e, double frac);

typedef struct re_cca_options {
  double ridge;    /* relative ridge eps: S + eps * (tr S / d) I; default 1e-10 */
  double variance; /* SVCCA: fraction of variance kept on each side; default 0.99 */
} re_cca_options;

/* Defaults: ridge 1e-10, variance 0.99. */
re_cca_options re_cca_defaults(void);

typedef struct re_cca_result {
  int64_t k;          /* canonical correlations reported */
  double *rho;        /* k, descending, in [0, 1] (owned; free with re_cca_result_free) */
  double mean_rho;    /* mean of rho */
  double mean_rho2;   /* mean of rho^2 (R^2_CCA) */
  double pwcca;       /* PWCCA (only from re_pwcca) */
  int64_t kx, ky;     /* directions used on each side (ranks, or SVCCA's kept directions) */
  int defined;
  const char *reason;
} re_cca_result;

/* Free the arrays of a result (the struct itself is the caller's). */
void re_cca_result_free(re_cca_result *r);

/* Cxy: p x q centred cross co-moment (row-major), or its transpose q x p stored
 * row-major when transposed = 1 (as re_moments_block returns for i > j). */

/* Plain CCA: singular values of S_xx^-1/2 S_xy S_yy^-1/2 over min(rank_x, rank_y) directions. */
re_status re_cca(const re_eig *ex, const re_eig *ey, const double *Cxy, int transposed,
                 const re_cca_options *opt, re_cca_result *out);
/* SVCCA (Raghu et al. 2017): CCA between the top principal directions explaining
 * opt->variance of each side's variance; mean rho over min(kx, ky) directions. */
re_status re_svcca(const re_eig *ex, const re_eig *ey, const double *Cxy, int transposed,
                   const re_cca_options *opt, re_cca_result *out);
/* PWCCA (Morcos et al. 2018): rho weighted by alpha_i = sum_j |<h_i, x_j>| (unit canonical
 * variate h_i, centred neuron x_j) on the side with fewer features. */
re_status re_pwcca(const re_eig *ex, const re_eig *ey, const double *Cxy, int transposed,
                   const re_cca_options *opt, re_cca_result *out);

/* Orthogonal Procrustes distance on centred, Frobenius-normalised data:
 * d^2 = 2 - 2 ||C_xy||_* / sqrt(tr C_xx tr C_yy). */
re_status re_procrustes(const re_eig *ex, const re_eig *ey, const double *Cxy, int transposed, double *d2);

/* Ridge regression R^2 of Y from X and of X from Y (ridge as in re_cca_options). */
re_status re_linreg_r2(const re_eig *ex, const re_eig *ey, const double *Cxy, int transposed,
                       const re_cca_options *opt, double *r2_y_from_x, double *r2_x_from_y);

typedef struct re_spectrum {
  int64_t d;
  double total_variance;     /* tr S */
  double participation_ratio; /* (sum l)^2 / sum l^2 */
  double effective_rank;     /* exp(H(p)), p_k = s_k / sum s, s_k = sqrt(l_k) (RankMe) */
  double effective_rank_eig; /* exp(H(p)), p_k = l_k / sum l */
  int64_t k90, k99;          /* directions explaining 90% / 99% of the variance */
  int64_t rank;              /* numerical rank */
  int collapsed;             /* effective_rank < fraction * min(d, n - 1) */
} re_spectrum;

/* Spectrum diagnostics; collapse_fraction: e.g. 0.05. */
re_status re_spectrum_from_eig(const re_eig *e, double collapse_fraction, re_spectrum *out);

#ifdef __cplusplus
}
#endif
#endif
