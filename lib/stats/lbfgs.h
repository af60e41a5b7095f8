/* Limited-memory BFGS with a strong-Wolfe line search (private to lib/stats).
 *
 * Nocedal & Wright, Numerical Optimization (2nd ed.): the two-loop recursion
 * (Algorithm 7.4) with H0 = (s^T y / y^T y) I (optionally one such scalar for
 * each of two groups of variables, which keeps the step sizes of parameters with very
 * different curvature, such as penalised weights and free biases, in proportion), and the bracketing / zoom line search
 * (Algorithms 3.5 and 3.6) with safeguarded cubic interpolation. Near the optimum,
 * where f can no longer resolve the decrease, Hager & Zhang's approximate Wolfe test
 * (SIAM J. Optim. 16, 2005) accepts a step on its directional derivative instead. */
#ifndef REPEVAL_LBFGS_H
#define REPEVAL_LBFGS_H

#include "repeval/core.h"

/* f(x) and its gradient g (n doubles); a failure status stops the optimiser. */
typedef re_status (*re_lbfgs_fn)(const double *x, double *f, double *g, void *ctx);

typedef struct re_lbfgs_options {
  int memory;   /* correction pairs m */
  int max_iter; /* iterations */
  double gtol;  /* converged when ||g||_inf <= gtol * max(1, |f|) */
  double ftol;  /* stall when f_prev - f <= ftol * max(|f_prev|, |f|); 0: off */
  int max_ls;   /* function evaluations per line search */
  int64_t split; /* > 0: variables [0, split) and [split, n) get separate initial scalings */
} re_lbfgs_options;

typedef struct re_lbfgs_result {
  int iterations, evaluations;
  double f, grad_inf;
  int converged;
  const char *stop; /* "gradient", "stall", "max_iter", "line search" */
} re_lbfgs_result;

/* Minimise from x (n doubles; overwritten with the final point). */
re_status re_lbfgs_minimize(int64_t n, double *x, re_lbfgs_fn fn, void *ctx, const re_lbfgs_options *opt,
                            re_lbfgs_result *res);

#endif
