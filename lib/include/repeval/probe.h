/* Linear, MLP and k-NN probes of a representation: multinomial logistic regression with
 * an L2 penalty (own L-BFGS, λ sweeps with warm starts and selection on a validation
 * split), ridge regression on one-hot targets for a whole λ path from co-moments, and
 * a cosine k-NN classifier with temperature-weighted votes. Math in float64; inputs are
 * in-memory float32 row blocks (samples as rows). Formulas in docs/metrics.md.
 *
 * Distributed use without MPI in the library: every step that needs a sum over all
 * samples calls a re_reduce callback on a flat buffer of doubles; each rank passes its
 * own rows, the callback sums the buffers across ranks (in a fixed order) and leaves the
 * identical sum on every rank, so all ranks take identical optimiser steps. Functions
 * that may call it are marked "collective". With no callback they are local. */
#ifndef REPEVAL_PROBE_H
#define REPEVAL_PROBE_H

#include "repeval/cca.h"
#include "repeval/moments.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sum `buf` (len doubles) element-wise across ranks in place; the result must be
 * bitwise identical on every rank. fn NULL: single process (nothing to do). */
typedef struct re_reduce {
  re_status (*fn)(double *buf, int64_t len, void *ctx);
  void *ctx;
} re_reduce;

/* A block of labelled samples held by the caller (never copied implicitly). */
typedef struct re_probe_rows {
  const float *X;   /* n x d, row-major, leading dimension ld >= d */
  const int32_t *y; /* n labels in [0, K) */
  int64_t n, d, ld; /* n may be 0 (a rank without rows of this split) */
  const char *name; /* for messages ("train", "test"), may be NULL */
} re_probe_rows;

/* Classification scores as sums, so that they merge by addition and reduce with the
 * same callback (counts in doubles are exact below 2^53). */
typedef struct re_probe_score {
  double n;    /* samples scored */
  double top1; /* predictions equal to the label */
  double top5; /* label among the 5 highest-scoring classes */
  double loss; /* sum of -log p(label) (logistic; 0 for ridge and k-NN) */
} re_probe_score;

/* a <- a + b. */
void re_probe_score_merge(re_probe_score *a, const re_probe_score *b);
/* Sum a score across ranks with the callback (collective; nothing without one). */
re_status re_probe_score_reduce(re_probe_score *s, const re_reduce *reduce);

/* The default λ grid: 10^-6 ... 10^4, 11 log-spaced values, written to lambdas[11]. */
void re_probe_default_grid(double *lambdas);
/* n >= 1 log-spaced values from lo to hi (0 < lo <= hi; n == 1 needs lo == hi). */
re_status re_probe_log_grid(double lo, double hi, int n, double *lambdas);

/* Deterministic validation split of a training set of n_global rows: a Fisher-Yates
 * shuffle of 0..n-1 driven by splitmix64(seed) (for i = n-1 down to 1: swap i with
 * next() % (i + 1)); the first round(fraction * n) shuffled indices are validation.
 * Writes is_val[r - row0] for the global rows r in [row0, row0 + n_local) held here. */
re_status re_probe_split(int64_t n_global, double fraction, uint64_t seed, int64_t row0, int64_t n_local,
                         uint8_t *is_val);

/* Check labels: each in [0, K), else RE_EDATA naming the set and the index. */
re_status re_probe_check_labels(const re_probe_rows *rows, int32_t K);

/* ---- multinomial logistic regression --------------------------------------------
 * Minimises over W (K x d) and b (K)
 *   f(W, b) = (1/n) sum_i -log softmax(W z_i + b)_{y_i} + (λ/2) ||W||_F^2
 * with z_i the (standardised) features; the bias is not penalised. Standardisation
 * z = (x - mean) / std uses the mean and population standard deviation of the rows
 * given to re_logreg_create; a constant feature (variance <= (n eps mean)^2) gets
 * std 1. Classes without training rows in a fit get probability 0 (logit -inf) and
 * keep zero parameters. scikit-learn's LogisticRegression(C, multinomial, lbfgs)
 * minimises C sum_i loss_i + ||W||^2 / 2: the same minimiser at C = 1 / (λ n). */

typedef struct re_logreg_options {
  double tol;         /* stop when ||grad f||_inf <= tol * max(1, |f|); default 1e-6 */
  double ftol;        /* or when f_prev - f <= ftol * max(|f_prev|, |f|) (stall); default 2.2e-9, 0: off */
  int max_iter;       /* L-BFGS iterations per fit; default 1000 */
  int memory;         /* L-BFGS correction pairs; default 10 */
  int standardize;    /* default 1 */
  int64_t block_rows; /* rows per BLAS block in the loss and gradient; default 64 */
  re_reduce reduce;   /* sums across ranks; default none */
  int threads;        /* threads over the local rows; 0 (default): OpenBLAS's thread count
                       * (OPENBLAS_NUM_THREADS); results depend on it only through rounding */
} re_logreg_options;

/* The defaults above. */
re_logreg_options re_logreg_defaults(void);

/* How one fit ended. */
typedef struct re_logreg_info {
  double lambda;
  int iterations;   /* L-BFGS iterations */
  int evaluations;  /* loss + gradient evaluations */
  double f;         /* final objective */
  double grad_inf;  /* final ||grad f||_inf */
  int converged;    /* the gradient test was met */
  const char *stop; /* "gradient", "stall", "max_iter" or "line search" (static string) */
} re_logreg_info;

typedef struct re_logreg re_logreg;           /* model: standardisation + parameters */
typedef struct re_logreg_data re_logreg_data; /* standardised float64 copy of local rows */

/* Model for K >= 2 classes on the features of `parts` (nparts blocks, equal d); the
 * standardisation comes from all their rows (collective). The first fit starts from
 * W = 0 and b = log class frequencies (centred), the minimiser over b at W = 0. */
re_status re_logreg_create(const re_probe_rows *parts, int nparts, int32_t K, const re_logreg_options *opt,
                           re_logreg **out);
/* Destroy (NULL allowed); sets *lr to NULL. */
void re_logreg_destroy(re_logreg **lr);
/* Features d and classes K of a model. */
int64_t re_logreg_dim(const re_logreg *lr);
int32_t re_logreg_classes(const re_logreg *lr);

/* Copy parts (checked: labels in range, finite features, naming part, row, column)
 * standardised by the model into one local training set (8 (d + 1) bytes per row). */
re_status re_logreg_data_create(const re_logreg *lr, const re_probe_rows *parts, int nparts,
                                re_logreg_data **out);
/* Destroy (NULL allowed); sets *data to NULL. */
void re_logreg_data_destroy(re_logreg_data **data);

/* Fit at λ > 0 by L-BFGS from the current parameters (a warm start); collective.
 * Needs at least 2 classes among all ranks' rows. */
re_status re_logreg_fit(re_logreg *lr, const re_logreg_data *data, double lambda, re_logreg_info *info);
/* f at the current parameters on data (collective). */
re_status re_logreg_objective(const re_logreg *lr, const re_logreg_data *data, double lambda, double *f);
/* Add the local rows' scores at the current parameters to *s (local: no reduction). */
re_status re_logreg_score(const re_logreg *lr, const re_probe_rows *rows, re_probe_score *s);
/* Top-1 predictions of n rows (ties: lower class index); rows->y may be NULL. */
re_status re_logreg_predict(const re_logreg *lr, const re_probe_rows *rows, int32_t *pred);
/* Parameters in raw feature coordinates: logits = W x + b, W K x d row-major, b K
 * (-inf for classes absent from the last fit). */
void re_logreg_weights(const re_logreg *lr, double *W, double *b);

typedef struct re_logreg_point {
  re_logreg_info fit;  /* fit on the train split at this λ */
  re_probe_score val;  /* on the validation split (reduced) */
} re_logreg_point;

typedef struct re_logreg_sweep {
  int nlambdas;
  re_logreg_point *points; /* nlambdas, λ descending (the order of the warm starts); owned */
  int selected;            /* index into points */
  double lambda;           /* selected λ */
  re_logreg_info refit;    /* fit on train + validation at the selected λ */
  re_probe_score test;     /* test score of the refit model (reduced); zero without test rows */
} re_logreg_sweep;

/* Free the arrays of a sweep result (the struct itself is the caller's). */
void re_logreg_sweep_free(re_logreg_sweep *s);

/* λ sweep (collective). The model is standardised on train + val (the final training
 * set); λ values are fitted from the largest to the smallest, each warm-started from the
 * previous one, on `train`; the λ with the most correct validation predictions wins
 * (ties: lower validation loss, then larger λ); it is refitted on train + val warm-
 * started from its train-only fit, and scored on `test` (NULL: no test). val may be
 * NULL (or empty on all ranks) only when nlambdas == 1. *model gets the refit model
 * (NULL: not kept). */
re_status re_logreg_sweep_run(const re_probe_rows *train, const re_probe_rows *val, const re_probe_rows *test,
                              int32_t K, const double *lambdas, int nlambdas, const re_logreg_options *opt,
                              re_logreg_sweep *out, re_logreg **model);

/* ---- one-hidden-layer MLP probe ---------------------------------------------------
 * z standardised as for the logistic probe (on the rows given to re_mlp_create);
 * h = act(W1 z + b1) with H hidden units, act GELU (a Phi(a), default: f is smooth)
 * or ReLU (max(0, a), with ReLU'(0) = 0); logits W2 h + b2. Minimises
 *   f = (1/n) sum_i -log softmax(W2 h_i + b2)_{y_i} + (λ/2) (||W1||_F^2 + ||W2||_F^2)
 * (biases not penalised) by L-BFGS, every fit from the same seeded start: the
 * parameters W1 (H x d), b1 (H), W2 (K x H), b2 (K), row-major in that order, are
 * (2u - 1) / sqrt(fan_in) with u = (splitmix64(&s) >> 11) 2^-53, s = seed, fan_in d
 * for W1 and b1 and H for W2 and b2 (PyTorch's nn.Linear initialisation). Classes
 * without rows in a fit get logit -inf and zero parameters. Local (no reduction):
 * a fit is one rank's, in one order of sums. */

typedef enum { RE_MLP_GELU = 0, RE_MLP_RELU = 1 } re_mlp_activation;

typedef struct re_mlp_options {
  int hidden;      /* H; default 64 */
  int activation;  /* re_mlp_activation; default RE_MLP_GELU */
  double tol;      /* stop when ||grad f||_inf <= tol * max(1, |f|); default 1e-5 */
  double ftol;     /* or when an iteration lowers f by <= ftol * max(|f_prev|, |f|); default 2.2e-9, 0: off */
  int max_iter;    /* L-BFGS iterations per fit; default 500 */
  int memory;      /* L-BFGS correction pairs; default 10 */
  int standardize; /* default 1 */
  uint64_t seed;   /* of the starting point; default 20261204 */
} re_mlp_options;

/* The defaults above. */
re_mlp_options re_mlp_defaults(void);

typedef struct re_mlp re_mlp;

/* Model for K >= 2 classes, standardised on the rows of parts (checked: labels in
 * range, finite features), parameters at the seeded start. */
re_status re_mlp_create(const re_probe_rows *parts, int nparts, int32_t K, const re_mlp_options *opt, re_mlp **out);
/* Destroy (NULL allowed); sets *m to NULL. */
void re_mlp_destroy(re_mlp **m);
/* Number of parameters H (d + 1) + K (H + 1). */
int64_t re_mlp_param_count(const re_mlp *m);
/* Fit at λ >= 0 on the rows of parts, from the seeded start; info as for the logistic probe. */
re_status re_mlp_fit(re_mlp *m, const re_probe_rows *parts, int nparts, double lambda, re_logreg_info *info);
/* Add the rows' scores (top-1, top-5, loss) at the current parameters to *s. */
re_status re_mlp_score(const re_mlp *m, const re_probe_rows *rows, re_probe_score *s);
/* Top-1 predictions of the rows (ties: lower class); rows->y may be NULL. */
re_status re_mlp_predict(const re_mlp *m, const re_probe_rows *rows, int32_t *pred);
/* Parameters in raw feature coordinates (hidden = act(W1 x + b1)), written to out
 * (re_mlp_param_count doubles): W1 (H x d), b1, W2 (K x H), b2 (-inf for absent classes). */
void re_mlp_weights(const re_mlp *m, double *out);

typedef struct re_mlp_sweep {
  int nlambdas;
  re_logreg_point *points; /* nlambdas, in the order given: the fit on train and its validation score */
  int selected;
  double lambda;
  re_logreg_info refit;    /* on train + val at the selected λ */
  re_probe_score test;     /* of the refit model; zero without test rows */
} re_mlp_sweep;

/* Free the arrays of a sweep result. */
void re_mlp_sweep_free(re_mlp_sweep *s);
/* λ sweep: standardised on train + val; each λ fitted on train from the seeded start and
 * scored on val; the most correct validation predictions win (ties: lower validation
 * loss, then larger λ); refitted on train + val from the seeded start and scored on test
 * (NULL: none). val may be NULL or empty only with one λ (then nothing is held out).
 * *model gets the refit model (NULL: not kept). */
re_status re_mlp_sweep_run(const re_probe_rows *train, const re_probe_rows *val, const re_probe_rows *test, int32_t K,
                           const double *lambdas, int nlambdas, const re_mlp_options *opt, re_mlp_sweep *out,
                           re_mlp **model);

/* ---- ridge probe on one-hot targets, every λ from one eigendecomposition ----------
 * Minimises (1/n) sum_i ||t_i - W^T z_i - b||^2 + λ ||W||_F^2 with t_i the one-hot
 * label (K) and z_i the centred features (optionally divided by their standard
 * deviation sqrt(C_jj / n), constant -> 1). From C_zz = V diag(e) V^T:
 *   W(λ) = V diag(1 / (e + n λ)) V^T C_zt,  b = mean(t) - W^T mean(z),
 * i.e. scikit-learn's Ridge(alpha = n λ, fit_intercept=True) on one-hot targets.
 * Eigenvalues below re_eig's numerical rank (1e-10 of the largest) count as 0. */

typedef struct re_ridge_path re_ridge_path;

/* Co-moments for a ridge probe: layer 0 = d features, layer 1 = K one-hot targets,
 * with the (0, 1) block. */
re_status re_ridge_moments_create(int64_t d, int32_t K, re_moments **out);
/* Add labelled rows to such an accumulator (labels and values checked). */
re_status re_ridge_moments_add(re_moments *m, const re_probe_rows *rows);

/* Path for features = layer fx and one-hot targets = layer fy (block (fx, fy) stored)
 * at nl values λ > 0. exx: an existing re_eig of C_xx of the same accumulator to reuse,
 * or NULL (only without standardisation; with it the scaled C_zz is decomposed). */
re_status re_ridge_path_create(const re_moments *m, int fx, int fy, const double *lambdas, int nl,
                               int standardize, const re_eig *exx, re_ridge_path **out);
/* Destroy (NULL allowed); sets *p to NULL. */
void re_ridge_path_destroy(re_ridge_path **p);
/* Number of λ values. */
int re_ridge_path_count(const re_ridge_path *p);
/* Coefficients of λ number l in raw feature coordinates: predictions x W + b with
 * W d x K row-major (scikit-learn's coef_ transposed) and b K. */
re_status re_ridge_path_weights(const re_ridge_path *p, int l, double *W, double *b);
/* Score rows for every λ at once: scores[l] += the counts for λ number l (nl entries;
 * local: sum across ranks with re_probe_score_reduce or by merging). */
re_status re_ridge_path_score(const re_ridge_path *p, const re_probe_rows *rows, re_probe_score *scores);
/* Top-1 predictions (argmax of x W + b, ties: lower class) of n rows for λ number l;
 * rows->y may be NULL. */
re_status re_ridge_path_predict(const re_ridge_path *p, int l, const re_probe_rows *rows, int32_t *pred);
/* Index of the λ with the most correct validation predictions (val[l].top1 of nl >= 1
 * λ values); ties: the larger λ. */
int re_ridge_select(const re_probe_score *val, const double *lambdas, int nl);

/* ---- k-NN probe ---------------------------------------------------------------------
 * Cosine similarity s of L2-normalised features (a zero row stays zero); the k most
 * similar training rows (ties: lower training index) vote with weight exp(s / T) for
 * their class (Wu et al. 2018; the DINO evaluation, Caron et al. 2021); classes are
 * ranked by total vote (ties: lower class index). k larger than the training set
 * uses every training row. Training features are kept normalised in float64. */

typedef struct re_knn_options {
  int k;              /* neighbours; default 20 */
  double temperature; /* T; default 0.07 */
  int64_t block_rows; /* test rows per similarity GEMM; default 256 */
} re_knn_options;

/* The defaults above. */
re_knn_options re_knn_defaults(void);

typedef struct re_knn re_knn;

/* Normalised copy of the training rows (labels in [0, K), values finite). */
re_status re_knn_create(const re_probe_rows *train, int32_t K, const re_knn_options *opt, re_knn **out);
/* Destroy (NULL allowed); sets *knn to NULL. */
void re_knn_destroy(re_knn **knn);
/* Add the scores of test rows to *s (local). */
re_status re_knn_score(const re_knn *knn, const re_probe_rows *test, re_probe_score *s);
/* Top-1 predictions of n test rows (ties: lower class); test->y may be NULL. */
re_status re_knn_predict(const re_knn *knn, const re_probe_rows *test, int32_t *pred);

#ifdef __cplusplus
}
#endif
#endif
