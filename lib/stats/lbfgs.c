/* L-BFGS with a strong-Wolfe line search (see lbfgs.h). */
#include "lbfgs.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define C1 1e-4          /* sufficient decrease (Armijo) */
#define C2 0.9           /* curvature; 0.9 is the usual choice for quasi-Newton steps */
#define APPROX_EPS 1e-11 /* f changes below this fraction of |f0| are rounding noise */

typedef struct ls_ctx {
  int64_t n;
  const double *x0, *p; /* start and direction */
  double *xt, *gt;      /* trial point and its gradient */
  re_lbfgs_fn fn;
  void *ctx;
  int *nfev;
  int max_ls, used;
  double f0, d0, epsf;
  double f_last; /* f at the last trial point */
} ls_ctx;

static double dot(int64_t n, const double *a, const double *b) {
  double s = 0;
  for (int64_t i = 0; i < n; i++)
    s += a[i] * b[i];
  return s;
}

static double norm_inf(int64_t n, const double *a) {
  double m = 0;
  for (int64_t i = 0; i < n; i++)
    m = fmax(m, fabs(a[i]));
  return m;
}

/* phi(a) = f(x0 + a p) and phi'(a) = g(x0 + a p) . p */
static re_status phi(ls_ctx *c, double a, double *fa, double *da) {
  for (int64_t i = 0; i < c->n; i++)
    c->xt[i] = c->x0[i] + a * c->p[i];
  RE_TRY(c->fn(c->xt, fa, c->gt, c->ctx));
  (*c->nfev)++;
  c->used++;
  c->f_last = *fa;
  *da = dot(c->n, c->gt, c->p);
  return RE_OK;
}

/* Armijo, or Hager-Zhang's approximate version when f cannot resolve the decrease. */
static int sufficient(const ls_ctx *c, double a, double fa, double da) {
  if (fa <= c->f0 + C1 * a * c->d0)
    return 1;
  return fa <= c->f0 + c->epsf && da <= (1 - 2 * C1) * -c->d0;
}

static int curvature(const ls_ctx *c, double da) { return fabs(da) <= -C2 * c->d0; }

/* Minimiser of the cubic through (a, fa, da) and (b, fb, db); NaN if there is none. */
static double cubic_min(double a, double fa, double da, double b, double fb, double db) {
  double d1 = da + db - 3 * (fa - fb) / (a - b);
  double disc = d1 * d1 - da * db;
  if (!(disc >= 0))
    return NAN;
  double d2 = copysign(sqrt(disc), b - a);
  double den = db - da + 2 * d2;
  if (den == 0)
    return NAN;
  return b - (b - a) * (db + d2 - d1) / den;
}

/* Algorithm 3.6: shrink [lo, hi] (lo satisfies sufficient decrease, has the lower f). */
static re_status zoom(ls_ctx *c, double lo, double flo, double dlo, double hi, double fhi, double dhi,
                      double *a_out, int *ok) {
  *ok = 0;
  /* the cubic's minimiser, kept 1% away from the ends; bisection when two steps did not
   * halve the interval (the safeguard of More & Thuente 1994) */
  double w1 = INFINITY, w2 = INFINITY;
  while (c->used < c->max_ls) {
    double left = fmin(lo, hi), width = fabs(hi - lo);
    if (width <= DBL_EPSILON * fmax(lo, hi))
      return RE_OK;
    double a = cubic_min(lo, flo, dlo, hi, fhi, dhi);
    if (!isfinite(a) || width > 0.5 * w2)
      a = 0.5 * (lo + hi);
    else
      a = fmin(fmax(a, left + 0.01 * width), left + 0.99 * width);
    w2 = w1;
    w1 = width;
    double fa, da;
    RE_TRY(phi(c, a, &fa, &da));
    int suff = isfinite(fa) && sufficient(c, a, fa, da);
    if (suff && curvature(c, da)) {
      *a_out = a;
      *ok = 1;
      return RE_OK;
    }
    if (!suff || fa >= flo) {
      hi = a, fhi = isfinite(fa) ? fa : DBL_MAX, dhi = isfinite(da) ? da : 0;
    } else {
      if (da * (hi - lo) >= 0)
        hi = lo, fhi = flo, dhi = dlo;
      lo = a, flo = fa, dlo = da;
    }
  }
  return RE_OK;
}

/* Algorithm 3.5: bracket a strong-Wolfe step starting from a1; on success the
 * accepted point is the last one evaluated (xt, gt, f_last). */
static re_status line_search(ls_ctx *c, double a1, double *a_out, int *ok) {
  double a_prev = 0, f_prev = c->f0, d_prev = c->d0, a = a1;
  *ok = 0;
  c->used = 0;
  for (int i = 0; c->used < c->max_ls; i++) {
    double fa, da;
    RE_TRY(phi(c, a, &fa, &da));
    if (!isfinite(fa) || !isfinite(da)) { /* overflow far out: step back towards the last point */
      a = a_prev + 0.25 * (a - a_prev);
      continue;
    }
    int suff = sufficient(c, a, fa, da);
    if (!suff || (i > 0 && fa >= f_prev)) {
      RE_TRY(zoom(c, a_prev, f_prev, d_prev, a, fa, da, a_out, ok));
      break;
    }
    if (curvature(c, da)) {
      *a_out = a;
      *ok = 1;
      break;
    }
    if (da >= 0) {
      RE_TRY(zoom(c, a, fa, da, a_prev, f_prev, d_prev, a_out, ok));
      break;
    }
    a_prev = a, f_prev = fa, d_prev = da;
    a *= 2.5;
  }
  return RE_OK;
}

/* H0 scaling s^T y / y^T y over variables [i0, i1), or fallback if that is not positive. */
static double gamma_of(const double *s, const double *y, int64_t i0, int64_t i1, double fallback) {
  double sy = 0, yy = 0;
  for (int64_t i = i0; i < i1; i++)
    sy += s[i] * y[i], yy += y[i] * y[i];
  return (sy > 0 && yy > 0) ? sy / yy : fallback;
}

/* Two-loop recursion: p = -H g with the stored pairs (oldest first from `first`). */
static void direction(int64_t n, int64_t split, int m, int count, int first, const double *S, const double *Y,
                      const double *rho, double *alpha, const double *g, double *p) {
  for (int64_t i = 0; i < n; i++)
    p[i] = -g[i];
  for (int j = count - 1; j >= 0; j--) {
    int k = (first + j) % m;
    alpha[k] = rho[k] * dot(n, S + (int64_t)k * n, p);
    const double *y = Y + (int64_t)k * n;
    for (int64_t i = 0; i < n; i++)
      p[i] -= alpha[k] * y[i];
  }
  if (count > 0) {
    int k = (first + count - 1) % m;
    const double *s = S + (int64_t)k * n, *y = Y + (int64_t)k * n;
    double gamma = 1.0 / (rho[k] * dot(n, y, y));
    double g0 = gamma, g1 = gamma;
    if (split > 0 && split < n) {
      g0 = gamma_of(s, y, 0, split, gamma);
      g1 = gamma_of(s, y, split, n, gamma);
    }
    for (int64_t i = 0; i < n; i++)
      p[i] *= i < split ? g0 : g1;
  }
  for (int j = 0; j < count; j++) {
    int k = (first + j) % m;
    double beta = rho[k] * dot(n, Y + (int64_t)k * n, p);
    const double *s = S + (int64_t)k * n;
    for (int64_t i = 0; i < n; i++)
      p[i] += (alpha[k] - beta) * s[i];
  }
}

re_status re_lbfgs_minimize(int64_t n, double *x, re_lbfgs_fn fn, void *ctx, const re_lbfgs_options *opt,
                            re_lbfgs_result *res) {
  re_status st = RE_OK;
  int m = opt->memory > 0 ? opt->memory : 10;
  double *g = NULL, *p = NULL, *xt = NULL, *gt = NULL, *S = NULL, *Y = NULL, *rho = NULL, *alpha = NULL;
  memset(res, 0, sizeof *res);
  res->stop = "max_iter";
  RE_CHECK(re_malloc(n, sizeof(double), &g));
  RE_CHECK(re_malloc(n, sizeof(double), &p));
  RE_CHECK(re_malloc(n, sizeof(double), &xt));
  RE_CHECK(re_malloc(n, sizeof(double), &gt));
  RE_CHECK(re_malloc((int64_t)m * n, sizeof(double), &S));
  RE_CHECK(re_malloc((int64_t)m * n, sizeof(double), &Y));
  RE_CHECK(re_malloc(m, sizeof(double), &rho));
  RE_CHECK(re_malloc(m, sizeof(double), &alpha));

  double f;
  RE_CHECK(fn(x, &f, g, ctx));
  res->evaluations = 1;
  if (!isfinite(f)) {
    st = re_err(RE_EDATA, "L-BFGS: the objective is not finite at the starting point");
    goto done;
  }
  int count = 0, first = 0, retried = 0;
  double gi = norm_inf(n, g);
  if (gi <= opt->gtol * fmax(1.0, fabs(f))) {
    res->converged = 1;
    res->stop = "gradient";
    goto finish;
  }
  while (res->iterations < opt->max_iter) {
    direction(n, opt->split, m, count, first, S, Y, rho, alpha, g, p);
    double d0 = dot(n, g, p);
    if (!(d0 < 0)) { /* not a descent direction (rounding): restart from steepest descent */
      count = 0;
      for (int64_t i = 0; i < n; i++)
        p[i] = -g[i];
      d0 = dot(n, g, p);
    }
    double a1 = 1.0;
    if (count == 0)
      a1 = fmin(1.0, 1.0 / sqrt(-d0));
    ls_ctx c = {n, x, p, xt, gt, fn, ctx, &res->evaluations, opt->max_ls > 0 ? opt->max_ls : 20, 0,
                f, d0, APPROX_EPS * fabs(f), f};
    double a = 0;
    int ok = 0;
    RE_CHECK(line_search(&c, a1, &a, &ok));
    if (!ok) {
      if (count > 0 && !retried) { /* forget the curvature pairs, retry along -g */
        count = 0;
        retried = 1;
        continue;
      }
      res->stop = "line search";
      break;
    }
    retried = 0;
    res->iterations++;
    /* new pair s = xt - x, y = gt - g, written over the oldest when the memory is full */
    int slot = (first + count) % m;
    double *s = S + (int64_t)slot * n, *y = Y + (int64_t)slot * n;
    for (int64_t i = 0; i < n; i++) {
      s[i] = xt[i] - x[i];
      y[i] = gt[i] - g[i];
    }
    double sy = dot(n, s, y), yy = dot(n, y, y);
    int keep = yy > 0 && sy > DBL_EPSILON * yy;
    if (keep)
      rho[slot] = 1.0 / sy;
    if (count == m) /* the oldest pair was overwritten either way */
      first = (first + 1) % m;
    if (keep && count < m)
      count++;
    else if (!keep && count == m)
      count--;
    double f_old = f;
    f = c.f_last;
    re_log(RE_LOG_DEBUG, "L-BFGS iteration %d: f %.17g, step %.3g, %d evaluations, %d pairs", res->iterations, f,
           a, c.used, count);
    memcpy(x, xt, (size_t)n * sizeof(double));
    memcpy(g, gt, (size_t)n * sizeof(double));
    gi = norm_inf(n, g);
    if (gi <= opt->gtol * fmax(1.0, fabs(f))) {
      res->converged = 1;
      res->stop = "gradient";
      break;
    }
    if (opt->ftol > 0 && f_old - f <= opt->ftol * fmax(fabs(f_old), fabs(f))) {
      res->stop = "stall";
      break;
    }
  }
finish:
  res->f = f;
  res->grad_inf = norm_inf(n, g);
done:
  free(g);
  free(p);
  free(xt);
  free(gt);
  free(S);
  free(Y);
  free(rho);
  free(alpha);
  return st;
}
