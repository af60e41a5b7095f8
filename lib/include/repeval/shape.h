/* Generalized shape metrics (Williams, Kunz, Kornblith, Linderman 2021, "Generalized
 * Shape Metrics on Neural Representations"), as netrep computes them, and canonical
 * directions of CCA, all from reduced co-moments: the eigendecomposition of each
 * layer's covariance (re_eig) and the centred cross co-moment C_xy (sums over the n
 * samples). Formulas in docs/metrics.md. */
#ifndef REPEVAL_SHAPE_H
#define REPEVAL_SHAPE_H

#include "repeval/cca.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Cxy below: p x q centred cross co-moment (row-major), or its transpose (q x p,
 * row-major) when transposed = 1, as re_moments_block returns it. */

/* The partial-whitening shape metric with 0 <= alpha <= 1 (netrep's LinearMetric(alpha,
 * center_columns=True, zero_pad=True)): alpha = 0 aligns by any invertible linear map
 * (CCA), alpha = 1 by rotations (Procrustes). angular: arccos of the aligned
 * correlation, in [0, pi]; euclidean: |X Z_x U - Y Z_y V|_F over the centred samples.
 * Wx (p x k) and Wy (q x k), k = min(p, q), may be NULL: the first k columns of the
 * alignment maps, by descending singular value, each column's largest entry of Wx
 * positive. RE_EUNDEFINED when a layer has zero variance. */
re_status re_shape_metric(const re_eig *ex, const re_eig *ey, const double *Cxy, int transposed, double alpha,
                          double *angular, double *euclidean, double *Wx, double *Wy);

/* The permutation metric (netrep's PermutationMetric, centred, zero-padded): features
 * of the narrower layer matched one to one with features of the other to maximise
 * sum C_xy[i, match(i)] (an exact linear assignment). match (min(p, q), may be NULL):
 * for each feature of the narrower side (X when p <= q), its partner. */
re_status re_permutation_metric(const re_eig *ex, const re_eig *ey, const double *Cxy, int transposed,
                                double *angular, double *euclidean, int64_t *match);

/* Canonical directions of plain CCA (the k = min(rank_x, rank_y) pairs of re_cca). */
typedef struct re_cca_directions {
  int64_t p, q, k;
  double *rho;        /* k canonical correlations, descending */
  double *x_coef;     /* p x k: u_i = (x - mean_x)^T x_coef[:, i] has unit variance (up to the ridge) */
  double *y_coef;     /* q x k: v_i likewise; corr(u_i, v_i) = rho_i */
  double *x_loadings; /* p x k: correlation of each feature of X with u_i (0 for a constant feature) */
  double *y_loadings; /* q x k */
} re_cca_directions;

/* Directions, with each pair's sign fixed so that the largest |entry| of x_coef[:, i]
 * is positive. RE_EUNDEFINED (no arrays) when a layer has zero variance. */
re_status re_cca_directions_create(const re_eig *ex, const re_eig *ey, const double *Cxy, int transposed,
                                   const re_cca_options *opt, re_cca_directions *out);
/* Free the arrays (the struct is the caller's). */
void re_cca_directions_free(re_cca_directions *d);

#ifdef __cplusplus
}
#endif
#endif
