/* Counter-based draws, bootstrap / jackknife / permutation-null summaries (see resample.h). */
#include "repeval/resample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PI 3.14159265358979323846

/* SplitMix64's output function (Steele, Lea, Flood 2014). */
static uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t re_rand_u64(uint64_t seed, uint64_t stream, uint64_t index) {
  return mix64(mix64(mix64(seed) ^ stream) ^ index);
}

/* P(K <= k) for K ~ Poisson(1): e^-1 sum_{j<=k} 1/j!, accumulated in float64 (these
 * literals are those sums, printed to 17 digits); beyond the table the count is 18. */
static const double poisson1_cdf[18] = {
    0.36787944117144233, 0.7357588823428847, 0.9196986029286058, 0.9810118431238463, 0.9963401531726563,
    0.9994058151824183,  0.999916758850712,  0.9999897508033253, 0.999998874797402,  0.9999998885745216,
    0.9999999899522336,  0.9999999991683892, 0.9999999999364022, 0.9999999999954802, 0.9999999999997,
    0.9999999999999813,  0.9999999999999989, 0.9999999999999999};

int re_poisson1(uint64_t seed, uint64_t stream, uint64_t index) {
  double u = (double)(re_rand_u64(seed, stream, index) >> 11) * 0x1p-53;
  for (int k = 0; k < 18; k++)
    if (u < poisson1_cdf[k])
      return k;
  return 18;
}

void re_permutation(uint64_t seed, uint64_t stream, uint64_t index, int64_t n, int64_t *perm) {
  uint64_t h = re_rand_u64(seed, stream, index);
  for (int64_t i = 0; i < n; i++)
    perm[i] = i;
  for (int64_t i = n - 1; i > 0; i--) {
    /* j = floor(x (i + 1) / 2^64): the high word of a 64 x 64-bit product */
    unsigned __int128 prod = (unsigned __int128)mix64(h ^ (uint64_t)i) * (unsigned __int128)(uint64_t)(i + 1);
    int64_t j = (int64_t)(prod >> 64);
    int64_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double re_quantile_sorted_inplace(double *v, int64_t n, double q) {
  if (n <= 0)
    return NAN;
  qsort(v, (size_t)n, sizeof(double), cmp_double);
  double pos = q * (double)(n - 1);
  int64_t lo = (int64_t)floor(pos);
  if (lo >= n - 1)
    return v[n - 1];
  if (lo < 0)
    return v[0];
  /* NumPy's 'linear' rule (Hyndman & Fan type 7), interpolated from the nearer end as NumPy does */
  double frac = pos - (double)lo, diff = v[lo + 1] - v[lo];
  return frac >= 0.5 ? v[lo + 1] - diff * (1 - frac) : v[lo] + diff * frac;
}

/* Acklam's rational approximation (lower tail and centre), then one Halley step on the
 * exact CDF (erfc). */
double re_normal_quantile(double p) {
  static const double a[6] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                              1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[5] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                              6.680131188771972e+01,  -1.328068155288572e+01};
  static const double c[6] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                              -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static const double d[4] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                              3.754408661907416e+00};
  if (!(p > 0 && p < 1))
    return p == 0 ? -INFINITY : p == 1 ? INFINITY : NAN;
  if (p > 0.5) /* the upper half by symmetry: 1 - p is exact there, p - CDF(x) would cancel */
    return -re_normal_quantile(1 - p);
  double x, q, r;
  if (p < 0.02425) {
    q = sqrt(-2 * log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else {
    q = p - 0.5;
    r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  }
  double e = 0.5 * erfc(-x / sqrt(2.0)) - p;
  double u = e * sqrt(2 * PI) * exp(x * x / 2);
  return x - u / (1 + x * u / 2);
}

/* The continued fraction of the regularized incomplete beta I_x(a, b), evaluated
 * with the modified Lentz method (valid for x < (a + 1) / (a + b + 2)). */
static double beta_cf(double a, double b, double x) {
  const double tiny = 1e-300;
  double c = 1, d = 1 - (a + b) * x / (a + 1);
  d = fabs(d) < tiny ? tiny : d;
  d = 1 / d;
  double f = d;
  for (int m = 1; m <= 300; m++) {
    double num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
    d = 1 + num * d;
    d = fabs(d) < tiny ? tiny : d;
    c = 1 + num / c;
    c = fabs(c) < tiny ? tiny : c;
    d = 1 / d;
    f *= d * c;
    num = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1));
    d = 1 + num * d;
    d = fabs(d) < tiny ? tiny : d;
    c = 1 + num / c;
    c = fabs(c) < tiny ? tiny : c;
    d = 1 / d;
    double step = d * c;
    f *= step;
    if (fabs(step - 1) < 1e-16)
      break;
  }
  return f;
}

/* I_x(a, b), the regularized incomplete beta function (0 <= x <= 1). */
static double inc_beta(double a, double b, double x) {
  if (x <= 0)
    return 0;
  if (x >= 1)
    return 1;
  double front = exp(lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x));
  if (x < (a + 1) / (a + b + 2))
    return front * beta_cf(a, b, x) / a;
  return 1 - front * beta_cf(b, a, 1 - x) / b;
}

/* P(T <= t) for Student's t with df degrees of freedom. */
static double t_cdf(double t, double df) {
  double tail = 0.5 * inc_beta(df / 2, 0.5, df / (df + t * t));
  return t > 0 ? 1 - tail : tail;
}

double re_t_quantile(double p, double df) {
  if (!(p > 0 && p < 1) || !(df > 0))
    return NAN;
  if (df == 1)
    return tan(PI * (p - 0.5));
  if (df == 2)
    return (2 * p - 1) / sqrt(2 * p * (1 - p));
  /* Cornish-Fisher start, then Newton steps on the exact CDF */
  double x = re_normal_quantile(p), x2 = x * x;
  double g1 = (x2 + 1) * x / 4;
  double g2 = ((5 * x2 + 16) * x2 + 3) * x / 96;
  double g3 = (((3 * x2 + 19) * x2 + 17) * x2 - 15) * x / 384;
  double g4 = ((((79 * x2 + 776) * x2 + 1482) * x2 - 1920) * x2 - 945) * x / 92160;
  double t = x + g1 / df + g2 / (df * df) + g3 / (df * df * df) + g4 / (df * df * df * df);
  double lc = lgamma((df + 1) / 2) - lgamma(df / 2) - 0.5 * log(df * PI);
  for (int it = 0; it < 8 && isfinite(t); it++) {
    double dens = exp(lc - (df + 1) / 2 * log1p(t * t / df));
    double step = (t_cdf(t, df) - p) / dens;
    t -= step;
    if (fabs(step) <= 1e-15 * fmax(1.0, fabs(t)))
      break;
  }
  return t;
}

void re_uncertainty_clear(re_uncertainty *u) {
  u->se = u->ci_low = u->ci_high = NAN;
  u->null_mean = u->null_sd = u->null_q95 = u->p_value = NAN;
  u->replicates = u->null_replicates = 0;
}

/* The finite values of v[0..n) into a new array; *m its count. */
static re_status finite_copy(const double *v, int n, double **out, int *m) {
  *m = 0;
  RE_TRY(re_malloc(n > 0 ? n : 1, sizeof(double), out));
  for (int k = 0; k < n; k++)
    if (isfinite(v[k]))
      (*out)[(*m)++] = v[k];
  return RE_OK;
}

/* Mean and standard deviation (n - 1) of v[0..n), two passes in index order. */
static void mean_sd(const double *v, int n, double *mean, double *sd) {
  double s = 0;
  for (int k = 0; k < n; k++)
    s += v[k];
  *mean = s / n;
  double ss = 0;
  for (int k = 0; k < n; k++)
    ss += (v[k] - *mean) * (v[k] - *mean);
  *sd = n > 1 ? sqrt(ss / (n - 1)) : NAN;
}

static re_status check_level(double level) {
  if (!(level > 0 && level < 1))
    return re_err(RE_EINVAL, "interval level %g must lie strictly between 0 and 1", level);
  return RE_OK;
}

re_status re_uncertainty_bootstrap(re_uncertainty *u, const double *reps, int n, double estimate, double level,
                                   re_interval_kind kind) {
  RE_TRY(check_level(level));
  double *v = NULL, mean, sd;
  int m;
  RE_TRY(finite_copy(reps, n, &v, &m));
  u->replicates = m;
  u->se = u->ci_low = u->ci_high = NAN;
  if (m >= 2 && isfinite(estimate)) {
    mean_sd(v, m, &mean, &sd);
    u->se = sd;
    if (kind == RE_INTERVAL_PERCENTILE) {
      u->ci_low = re_quantile_sorted_inplace(v, m, (1 - level) / 2);
      u->ci_high = re_quantile_sorted_inplace(v, m, (1 + level) / 2);
    } else {
      double z = re_normal_quantile((1 + level) / 2);
      u->ci_low = estimate - z * sd;
      u->ci_high = estimate + z * sd;
    }
  }
  free(v);
  return RE_OK;
}

re_status re_uncertainty_jackknife(re_uncertainty *u, const double *loo, int n, double estimate, double level) {
  RE_TRY(check_level(level));
  double *v = NULL, mean, sd;
  int g;
  RE_TRY(finite_copy(loo, n, &v, &g));
  u->replicates = g;
  u->se = u->ci_low = u->ci_high = NAN;
  if (g >= 2 && isfinite(estimate)) {
    mean_sd(v, g, &mean, &sd);
    /* (g - 1)/g sum (t - mean)^2 = (g - 1)^2 / g sd^2 */
    u->se = sd * (double)(g - 1) / sqrt((double)g);
    double t = re_t_quantile((1 + level) / 2, (double)(g - 1));
    u->ci_low = estimate - t * u->se;
    u->ci_high = estimate + t * u->se;
  }
  free(v);
  return RE_OK;
}

re_status re_uncertainty_null(re_uncertainty *u, const double *null, int n, double estimate, int lower) {
  double *v = NULL, mean, sd;
  int m;
  RE_TRY(finite_copy(null, n, &v, &m));
  u->null_replicates = m;
  u->null_mean = u->null_sd = u->null_q95 = u->p_value = NAN;
  if (m >= 1) {
    mean_sd(v, m, &mean, &sd);
    u->null_mean = mean;
    u->null_sd = sd;
    if (isfinite(estimate)) {
      int ge = 0;
      for (int k = 0; k < m; k++)
        ge += lower ? v[k] <= estimate : v[k] >= estimate;
      u->p_value = (1.0 + ge) / (1.0 + m);
    }
    u->null_q95 = re_quantile_sorted_inplace(v, m, 0.95);
  }
  free(v);
  return RE_OK;
}
