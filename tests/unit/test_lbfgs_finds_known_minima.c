/* The L-BFGS optimiser behind the logistic probe reaches known minimisers: the 2-D
 * and 50-D Rosenbrock functions (minimum at all ones), and a quadratic whose two
 * groups of variables have curvatures 10^4 apart (minimiser a^-1 b, solved exactly),
 * with and without separate initial scalings of the groups (which cut the iterations
 * from hundreds to a few dozen). Also: a failing
 * objective stops the optimiser with its status, max_iter is reported. */
#include <stdlib.h>

#include "../../lib/stats/lbfgs.h"
#include "check.h"

static re_status rosenbrock(const double *x, double *f, double *g, void *ctx) {
  int64_t n = *(const int64_t *)ctx;
  *f = 0;
  for (int64_t i = 0; i < n; i++)
    g[i] = 0;
  for (int64_t i = 0; i + 1 < n; i++) {
    double a = x[i + 1] - x[i] * x[i], b = 1 - x[i];
    *f += 100 * a * a + b * b;
    g[i] += -400 * a * x[i] - 2 * b;
    g[i + 1] += 200 * a;
  }
  return RE_OK;
}

typedef struct quad {
  int64_t n;
  const double *a, *b;
  int calls, fail_at;
} quad;

/* f = sum a_i x_i^2 / 2 - b_i x_i */
static re_status quadratic(const double *x, double *f, double *g, void *ctx) {
  quad *q = ctx;
  if (++q->calls == q->fail_at)
    return re_err(RE_EMPI, "simulated failure in call %d", q->calls);
  *f = 0;
  for (int64_t i = 0; i < q->n; i++) {
    *f += 0.5 * q->a[i] * x[i] * x[i] - q->b[i] * x[i];
    g[i] = q->a[i] * x[i] - q->b[i];
  }
  return RE_OK;
}

int main(void) {
  re_lbfgs_options opt = {10, 2000, 1e-10, 0, 20, 0};
  re_lbfgs_result res;

  int64_t n2 = 2;
  double x2[2] = {-1.2, 1.0};
  CHECK_OK(re_lbfgs_minimize(2, x2, rosenbrock, &n2, &opt, &res));
  CHECK(res.converged);
  CHECK(fabs(x2[0] - 1) < 1e-8 && fabs(x2[1] - 1) < 1e-8);
  CHECK(res.f < 1e-16);
  CHECK(res.iterations < 100);

  int64_t n50 = 50;
  double x50[50];
  for (int i = 0; i < 50; i++)
    x50[i] = i % 2 ? 1.0 : -1.2;
  CHECK_OK(re_lbfgs_minimize(50, x50, rosenbrock, &n50, &opt, &res));
  CHECK(res.converged);
  double err = 0;
  for (int i = 0; i < 50; i++)
    err = fmax(err, fabs(x50[i] - 1));
  CHECK(err < 1e-7);

  /* two groups: curvatures around 1e4 (penalised weights) and around 1 (biases) */
  enum { NQ = 40, SPLIT = 30 };
  double a[NQ], b[NQ], xq[NQ];
  check_seed(7);
  for (int i = 0; i < NQ; i++) {
    a[i] = i < SPLIT ? 1e4 * (1 + check_uniform()) : 0.5 + check_uniform();
    b[i] = check_normal();
  }
  for (int split = 0; split <= SPLIT; split += SPLIT) {
    quad q = {NQ, a, b, 0, -1};
    re_lbfgs_options o = opt;
    o.split = split;
    o.gtol = 1e-10;
    for (int i = 0; i < NQ; i++)
      xq[i] = 0;
    CHECK_OK(re_lbfgs_minimize(NQ, xq, quadratic, &q, &o, &res));
    /* one scaling for both groups ends at the rounding floor of f (line search),
     * separate scalings meet the gradient test in a few dozen iterations */
    CHECK(split ? res.converged && res.iterations < 60 : res.iterations > 100);
    double e = 0;
    for (int i = 0; i < NQ; i++)
      e = fmax(e, fabs(xq[i] - b[i] / a[i]) / fabs(b[i] / a[i]));
    CHECK(e < 1e-8);
    printf("quadratic, split %d: %d iterations, %d evaluations, stop %s, max rel error %.2e\n", split, res.iterations,
           res.evaluations, res.stop, e);
  }

  /* a failure inside the objective comes back unchanged */
  quad qf = {NQ, a, b, 0, 3};
  for (int i = 0; i < NQ; i++)
    xq[i] = 0;
  CHECK_FAILS(re_lbfgs_minimize(NQ, xq, quadratic, &qf, &opt, &res), RE_EMPI, "simulated failure in call 3");

  /* an iteration limit is reported as such */
  double xs[2] = {-1.2, 1.0};
  re_lbfgs_options o3 = opt;
  o3.max_iter = 3;
  CHECK_OK(re_lbfgs_minimize(2, xs, rosenbrock, &n2, &o3, &res));
  CHECK(!res.converged && res.iterations == 3 && !strcmp(res.stop, "max_iter"));

  /* a start that already meets the test does no iteration */
  double x1[2] = {1.0, 1.0};
  CHECK_OK(re_lbfgs_minimize(2, x1, rosenbrock, &n2, &opt, &res));
  CHECK(res.converged && res.iterations == 0 && res.evaluations == 1);
  return check_report();
}
