/* Representational similarity analysis (Kriegeskorte et al. 2008): representational
 * dissimilarity matrices (RDMs) over n stimuli (or class means) and their comparison,
 * with the definitions of rsatoolbox (Schuett et al.) for the comparisons. An RDM is
 * kept as its strict upper triangle, row by row (the order of scipy's squareform),
 * in float64. Formulas in docs/metrics.md. */
#ifndef REPEVAL_RSA_H
#define REPEVAL_RSA_H

#include "repeval/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum re_rdm_metric {
  RE_RDM_CORRELATION = 0, /* 1 - Pearson correlation of the two patterns */
  RE_RDM_COSINE = 1,      /* 1 - cosine of the two patterns */
  RE_RDM_EUCLIDEAN = 2,   /* Euclidean distance */
  RE_RDM_SQEUCLIDEAN = 3  /* squared Euclidean distance / features (rsatoolbox's 'euclidean') */
} re_rdm_metric;

typedef enum re_rsa_method {
  RE_RSA_SPEARMAN = 0,        /* Pearson correlation of average ranks ('spearman') */
  RE_RSA_PEARSON = 1,         /* Pearson correlation ('corr') */
  RE_RSA_KENDALL_TAU_A = 2,   /* Kendall's tau-a ('tau-a') */
  RE_RSA_COSINE = 3,          /* cosine ('cosine') */
  RE_RSA_WHITENED_COSINE = 4, /* cosine after whitening, identity pattern covariance ('cosine_cov') */
  RE_RSA_WHITENED_PEARSON = 5 /* Pearson correlation after whitening ('corr_cov') */
} re_rsa_method;
#define RE_RSA_NMETHODS 6

/* An RDM and what its comparisons need, computed once. */
typedef struct re_rdm {
  int64_t n;        /* stimuli */
  int64_t m;        /* n (n - 1) / 2 dissimilarities */
  double *d;        /* m: d(i, j) for i < j, row by row */
  double *rowmean;  /* n: row means of the square matrix (zero diagonal) */
  double mean;      /* mean of d */
  double *rank;     /* m average ranks (1-based), after re_rdm_prepare for Spearman */
  int32_t *dense;   /* m dense ranks (0-based), after re_rdm_prepare for Kendall */
  int32_t *order;   /* m entries by ascending d (ties by position), with dense */
} re_rdm;

/* RDM of n stimuli (rows of X: n x d float64, row-major, leading dimension ld), n >= 3.
 * A constant pattern (correlation) or a zero one (cosine) makes the RDM undefined
 * (RE_EUNDEFINED naming the stimulus); NaN or Inf is RE_EDATA. */
re_status re_rdm_create(const double *X, int64_t n, int64_t d, int64_t ld, re_rdm_metric metric, re_rdm *out);
/* RDM given as its m = n (n - 1) / 2 upper-triangle entries (copied). */
re_status re_rdm_from_vector(const double *v, int64_t n, re_rdm *out);
/* Free the arrays of an RDM (the struct is the caller's). */
void re_rdm_free(re_rdm *r);
/* Compute what `method` needs (ranks for Spearman, dense ranks for Kendall). */
re_status re_rdm_prepare(re_rdm *r, re_rsa_method method);
/* Similarity of two prepared RDMs of the same n. RE_EUNDEFINED (message naming why)
 * when an RDM has no variance for the method (constant, zero). */
re_status re_rdm_compare(const re_rdm *a, const re_rdm *b, re_rsa_method method, double *value);

/* Class means for an RDM over classes: rows of X (n x d float32, leading dimension ld)
 * with labels y (n, >= 0) averaged per class in float64, in row order. *means gets
 * K x d, *classes the K labels present, ascending (both the caller's to free). */
re_status re_rsa_class_means(const float *X, int64_t n, int64_t d, int64_t ld, const int32_t *y, double **means,
                             int32_t **classes, int64_t *K);

/* Names: "correlation", ...; "spearman", "pearson", "kendall_tau_a", "cosine",
 * "whitened_cosine", "whitened_pearson". */
const char *re_rdm_metric_name(re_rdm_metric m);
const char *re_rsa_method_name(re_rsa_method m);
/* Parse the names above; RE_EINVAL listing them. */
re_status re_rdm_metric_parse(const char *s, re_rdm_metric *m);
re_status re_rsa_method_parse(const char *s, re_rsa_method *m);

#ifdef __cplusplus
}
#endif
#endif
