/* RDMs and their comparison (see rsa.h).
 *
 * Dissimilarities come from float64 Gram blocks (dgemm of row blocks against the rows
 * after them). Comparisons run over the m entries in row order with one partial sum
 * per row, so a value depends only on the two RDMs.
 *
 * Whitened comparisons (Diedrichsen et al. 2021, "Comparing representational
 * geometries using whitened unbiased-distance-matrix similarity"): with an identity
 * pattern covariance, whitening the distance vector by its covariance is, up to a
 * constant, the Frobenius inner product of G = -1/2 H D H (H = I - 11^T/n), the
 * second-moment matrix of the centred patterns; rsatoolbox's 'cosine_cov' is the
 * cosine of G_a and G_b. The entries of H D H are d_ij - r_i - r_j + g off the
 * diagonal and g - 2 r_i on it (r: row means of D, g: its grand mean), formed on the
 * fly. 'corr_cov' does the same after subtracting the mean distance off the
 * diagonal. */
#include "repeval/rsa.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GRAM_BLOCK 256

static const char *const metric_names[] = {"correlation", "cosine", "euclidean", "sqeuclidean"};
static const char *const method_names[] = {"spearman", "pearson", "kendall_tau_a", "cosine", "whitened_cosine",
                                           "whitened_pearson"};

const char *re_rdm_metric_name(re_rdm_metric m) { return (unsigned)m < 4 ? metric_names[m] : "?"; }
const char *re_rsa_method_name(re_rsa_method m) { return (unsigned)m < RE_RSA_NMETHODS ? method_names[m] : "?"; }

re_status re_rdm_metric_parse(const char *s, re_rdm_metric *m) {
  for (int k = 0; k < 4; k++)
    if (!strcmp(s, metric_names[k])) {
      *m = (re_rdm_metric)k;
      return RE_OK;
    }
  return re_err(RE_EINVAL, "unknown RDM distance '%s' (correlation, cosine, euclidean, sqeuclidean)", s);
}

re_status re_rsa_method_parse(const char *s, re_rsa_method *m) {
  for (int k = 0; k < RE_RSA_NMETHODS; k++)
    if (!strcmp(s, method_names[k])) {
      *m = (re_rsa_method)k;
      return RE_OK;
    }
  return re_err(RE_EINVAL, "unknown RDM comparison '%s' (spearman, pearson, kendall_tau_a, cosine, whitened_cosine, "
                           "whitened_pearson)",
                s);
}

void re_rdm_free(re_rdm *r) {
  free(r->d);
  free(r->rowmean);
  free(r->rank);
  free(r->dense);
  free(r->order);
  memset(r, 0, sizeof *r);
}

/* Position of (i, j), i < j, in the upper triangle of n. */
static int64_t tri(int64_t n, int64_t i, int64_t j) { return i * n - i * (i + 1) / 2 + (j - i - 1); }

/* Row means of the square matrix (zero diagonal) and the mean of d. Dissimilarities
 * that agree to 1e-13 of their size (equal up to the rounding of the Gram blocks) are
 * set to their mean: an RDM that is constant in exact arithmetic stays constant. */
static void summaries(re_rdm *r) {
  int64_t n = r->n;
  double lo = r->d[0], hi = r->d[0], sum = 0;
  for (int64_t e = 0; e < r->m; e++) {
    lo = r->d[e] < lo ? r->d[e] : lo;
    hi = r->d[e] > hi ? r->d[e] : hi;
    sum += r->d[e];
  }
  if (hi - lo <= 1e-13 * (fabs(hi) > fabs(lo) ? fabs(hi) : fabs(lo)))
    for (int64_t e = 0; e < r->m; e++)
      r->d[e] = sum / (double)r->m;
  memset(r->rowmean, 0, sizeof(double) * (size_t)n);
  double total = 0;
  for (int64_t i = 0; i < n; i++) {
    const double *row = r->d + tri(n, i, i + 1);
    double s = 0;
    for (int64_t j = i + 1; j < n; j++) {
      s += row[j - i - 1];
      r->rowmean[j] += row[j - i - 1];
    }
    r->rowmean[i] += s;
    total += s;
  }
  for (int64_t i = 0; i < n; i++)
    r->rowmean[i] /= (double)n;
  r->mean = total / (double)r->m;
}

static re_status alloc_rdm(int64_t n, re_rdm *out) {
  memset(out, 0, sizeof *out);
  if (n < 3)
    return re_err(RE_EINVAL, "an RDM needs at least 3 stimuli (got %lld)", (long long)n);
  out->n = n;
  out->m = n * (n - 1) / 2;
  RE_TRY(re_malloc(out->m, sizeof(double), &out->d));
  return re_malloc(n, sizeof(double), &out->rowmean);
}

re_status re_rdm_from_vector(const double *v, int64_t n, re_rdm *out) {
  re_status st = alloc_rdm(n, out);
  for (int64_t e = 0; st == RE_OK && e < out->m; e++) {
    if (!isfinite(v[e]))
      st = re_err(RE_EDATA, "RDM entry %lld is not finite", (long long)e);
    else
      out->d[e] = v[e];
  }
  if (st == RE_OK)
    summaries(out);
  else
    re_rdm_free(out);
  return st;
}

re_status re_rdm_create(const double *X, int64_t n, int64_t d, int64_t ld, re_rdm_metric metric, re_rdm *out) {
  re_status st = RE_OK;
  double *Z = NULL, *sq = NULL, *G = NULL, *mu = NULL;
  memset(out, 0, sizeof *out);
  if (d < 1 || ld < d || (unsigned)metric > RE_RDM_SQEUCLIDEAN)
    return re_err(RE_EINVAL, "RDM: %lld features with leading dimension %lld, metric %d", (long long)d, (long long)ld,
                  (int)metric);
  RE_CHECK(alloc_rdm(n, out));
  RE_CHECK(re_malloc(n, d * (int64_t)sizeof(double), &Z));
  RE_CHECK(re_calloc(n, sizeof(double), &sq));
  RE_CHECK(re_calloc(d, sizeof(double), &mu));
  RE_CHECK(re_malloc(GRAM_BLOCK, n * (int64_t)sizeof(double), &G));
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < d; j++) {
      double v = X[i * ld + j];
      if (!isfinite(v)) {
        st = re_err(RE_EDATA, "RDM: stimulus %lld, feature %lld is %s", (long long)i, (long long)j,
                    isnan(v) ? "NaN" : "infinite");
        goto done;
      }
      Z[i * d + j] = v;
    }
  if (metric == RE_RDM_EUCLIDEAN || metric == RE_RDM_SQEUCLIDEAN) {
    /* distances do not change when every pattern moves by the mean pattern; centring
     * keeps |x|^2 + |y|^2 - 2 <x, y> from cancelling large offsets */
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < d; j++)
        mu[j] += Z[i * d + j];
    for (int64_t j = 0; j < d; j++)
      mu[j] /= (double)n;
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < d; j++)
        Z[i * d + j] -= mu[j];
  }
  for (int64_t i = 0; i < n; i++) {
    double *z = Z + i * d, s = 0;
    if (metric == RE_RDM_CORRELATION) {
      double m = 0;
      for (int64_t j = 0; j < d; j++)
        m += z[j];
      m /= (double)d;
      for (int64_t j = 0; j < d; j++)
        z[j] -= m;
    }
    for (int64_t j = 0; j < d; j++)
      s += z[j] * z[j];
    sq[i] = s;
    if (metric == RE_RDM_CORRELATION || metric == RE_RDM_COSINE) {
      if (!(s > 0)) {
        st = re_err(RE_EUNDEFINED, "RDM (%s): stimulus %lld has a %s pattern", metric_names[metric], (long long)i,
                    metric == RE_RDM_CORRELATION ? "constant" : "zero");
        goto done;
      }
      double inv = 1.0 / sqrt(s);
      for (int64_t j = 0; j < d; j++)
        z[j] *= inv;
    }
  }
  for (int64_t i0 = 0; i0 < n - 1; i0 += GRAM_BLOCK) {
    int64_t bi = n - i0 < GRAM_BLOCK ? n - i0 : GRAM_BLOCK, cols = n - i0;
    /* G = Z[i0 : i0 + bi] Z[i0 :]^T, bi x cols */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)bi, (int)cols, (int)d, 1.0, Z + i0 * d, (int)d,
                Z + i0 * d, (int)d, 0.0, G, (int)cols);
    for (int64_t a = 0; a < bi; a++) {
      int64_t i = i0 + a;
      double *dst = out->d + (i < n - 1 ? tri(n, i, i + 1) : 0);
      for (int64_t j = i + 1; j < n; j++) {
        double g = G[a * cols + (j - i0)], v;
        if (metric == RE_RDM_CORRELATION || metric == RE_RDM_COSINE) {
          v = 1.0 - g;
        } else {
          v = sq[i] + sq[j] - 2.0 * g;
          v = v > 0 ? v : 0.0;
          v = metric == RE_RDM_EUCLIDEAN ? sqrt(v) : v / (double)d;
        }
        dst[j - i - 1] = v;
      }
    }
  }
  summaries(out);
done:
  free(Z);
  free(sq);
  free(mu);
  free(G);
  if (st != RE_OK)
    re_rdm_free(out);
  return st;
}

/* ---- ranks -------------------------------------------------------------------------- */

typedef struct vi {
  double v;
  int64_t i;
} vi;

static int vi_cmp(const void *pa, const void *pb) {
  const vi *a = pa, *b = pb;
  if (a->v != b->v)
    return a->v < b->v ? -1 : 1;
  return (a->i > b->i) - (a->i < b->i);
}

/* Entries sorted by value (ties by position). */
static re_status sorted(const re_rdm *r, vi **out) {
  RE_TRY(re_malloc(r->m, sizeof(vi), out));
  for (int64_t e = 0; e < r->m; e++)
    (*out)[e] = (vi){r->d[e], e};
  qsort(*out, (size_t)r->m, sizeof(vi), vi_cmp);
  return RE_OK;
}

re_status re_rdm_prepare(re_rdm *r, re_rsa_method method) {
  if (method == RE_RSA_SPEARMAN && !r->rank) {
    vi *s = NULL;
    RE_TRY(sorted(r, &s));
    re_status st = re_malloc(r->m, sizeof(double), &r->rank);
    for (int64_t a = 0; st == RE_OK && a < r->m;) {
      int64_t b = a;
      while (b + 1 < r->m && s[b + 1].v == s[a].v)
        b++;
      double avg = 0.5 * (double)(a + b) + 1.0; /* average of the 1-based ranks a+1 .. b+1 */
      for (int64_t e = a; e <= b; e++)
        r->rank[s[e].i] = avg;
      a = b + 1;
    }
    free(s);
    return st;
  }
  if (method == RE_RSA_KENDALL_TAU_A && !r->dense) {
    vi *s = NULL;
    RE_TRY(sorted(r, &s));
    if (r->m >= INT32_MAX) {
      free(s);
      return re_err(RE_EUNSUPPORTED, "Kendall's tau-a: %lld dissimilarities, at most 2^31 - 1", (long long)r->m);
    }
    re_status st = re_malloc(r->m, sizeof(int32_t), &r->dense);
    if (st == RE_OK)
      st = re_malloc(r->m, sizeof(int32_t), &r->order);
    int32_t rank = -1;
    for (int64_t a = 0; st == RE_OK && a < r->m; a++) {
      if (a == 0 || s[a].v != s[a - 1].v)
        rank++;
      r->dense[s[a].i] = rank;
      r->order[a] = (int32_t)s[a].i;
    }
    free(s);
    if (st != RE_OK) {
      free(r->dense);
      free(r->order);
      r->dense = r->order = NULL;
    }
    return st;
  }
  return RE_OK;
}

/* ---- comparisons ---------------------------------------------------------------------- */

/* sum_e (x_e - ox)(y_e - oy) with one partial sum per row of the triangle. */
static double centred_dot(const double *x, double ox, const double *y, double oy, int64_t n) {
  double total = 0;
  for (int64_t i = 0; i < n - 1; i++) {
    int64_t e0 = tri(n, i, i + 1), e1 = e0 + (n - 1 - i);
    double s = 0;
    for (int64_t e = e0; e < e1; e++)
      s += (x[e] - ox) * (y[e] - oy);
    total += s;
  }
  return total;
}

/* <H D_a H, H D_b H>_F with the mean `oa` (`ob`) subtracted from every off-diagonal
 * entry first (0: none). */
static double gram_dot(const re_rdm *a, double oa, const re_rdm *b, double ob) {
  int64_t n = a->n;
  double ca = oa * (double)(n - 1) / (double)n, cb = ob * (double)(n - 1) / (double)n; /* row-mean shifts */
  double ga = 0, gb = 0, total = 0, diag = 0;
  for (int64_t i = 0; i < n; i++)
    ga += a->rowmean[i], gb += b->rowmean[i];
  ga = ga / (double)n - ca; /* grand means */
  gb = gb / (double)n - cb;
  for (int64_t i = 0; i < n - 1; i++) {
    int64_t e0 = tri(n, i, i + 1);
    double ra = a->rowmean[i] - ca, rb = b->rowmean[i] - cb, s = 0;
    for (int64_t j = i + 1; j < n; j++) {
      double x = (a->d[e0 + j - i - 1] - oa) - ra - (a->rowmean[j] - ca) + ga;
      double y = (b->d[e0 + j - i - 1] - ob) - rb - (b->rowmean[j] - cb) + gb;
      s += x * y;
    }
    total += s;
  }
  for (int64_t i = 0; i < n; i++)
    diag += (ga - 2 * (a->rowmean[i] - ca)) * (gb - 2 * (b->rowmean[i] - cb));
  return 2 * total + diag;
}

/* Merge sort of y[lo, hi) counting pairs e < f with y[e] > y[f]. */
static int64_t inversions(int32_t *y, int32_t *tmp, int64_t lo, int64_t hi) {
  if (hi - lo < 2)
    return 0;
  if (hi - lo <= 16) { /* insertion sort */
    int64_t inv = 0;
    for (int64_t e = lo + 1; e < hi; e++) {
      int32_t v = y[e];
      int64_t f = e - 1;
      while (f >= lo && y[f] > v) {
        y[f + 1] = y[f];
        f--;
        inv++;
      }
      y[f + 1] = v;
    }
    return inv;
  }
  int64_t mid = lo + (hi - lo) / 2;
  int64_t inv = inversions(y, tmp, lo, mid) + inversions(y, tmp, mid, hi);
  int64_t p = lo, q = mid, o = lo;
  while (p < mid && q < hi) {
    if (y[q] < y[p]) {
      inv += mid - p;
      tmp[o++] = y[q++];
    } else {
      tmp[o++] = y[p++];
    }
  }
  while (p < mid)
    tmp[o++] = y[p++];
  while (q < hi)
    tmp[o++] = y[q++];
  memcpy(y + lo, tmp + lo, sizeof(int32_t) * (size_t)(hi - lo));
  return inv;
}

static int i32_cmp(const void *pa, const void *pb) {
  int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
  return (a > b) - (a < b);
}

/* Kendall's tau-a (Knight's O(m log m) count): entries ordered by a (ties by b), then
 * the discordant pairs are the inversions of b's ranks in that order. */
static re_status tau_a(const re_rdm *a, const re_rdm *b, double *value) {
  int64_t m = a->m;
  int32_t *y = NULL, *tmp = NULL;
  RE_TRY(re_malloc(m, sizeof(int32_t), &y));
  re_status st = re_malloc(m, sizeof(int32_t), &tmp);
  if (st != RE_OK) {
    free(y);
    return st;
  }
  int64_t xtie = 0, ytie = 0, ntie = 0;
  for (int64_t e = 0; e < m; e++)
    y[e] = b->dense[a->order[e]];
  for (int64_t s = 0; s < m;) { /* runs of equal a: sort b's ranks inside, count ties */
    int64_t t = s + 1;
    while (t < m && a->dense[a->order[t]] == a->dense[a->order[s]])
      t++;
    int64_t c = t - s;
    xtie += c * (c - 1) / 2;
    if (c > 1)
      qsort(y + s, (size_t)c, sizeof(int32_t), i32_cmp);
    for (int64_t u = s; u < t;) {
      int64_t w = u + 1;
      while (w < t && y[w] == y[u])
        w++;
      ntie += (w - u) * (w - u - 1) / 2;
      u = w;
    }
    s = t;
  }
  for (int64_t s = 0; s < m;) { /* ties of b: runs of b's order */
    int64_t t = s + 1;
    while (t < m && b->dense[b->order[t]] == b->dense[b->order[s]])
      t++;
    ytie += (t - s) * (t - s - 1) / 2;
    s = t;
  }
  int64_t dis = inversions(y, tmp, 0, m);
  int64_t tot = m * (m - 1) / 2;
  double v = ((double)(tot - xtie - ytie + ntie) - 2.0 * (double)dis) / (double)tot;
  *value = v > 1 ? 1 : v < -1 ? -1 : v;
  free(y);
  free(tmp);
  return RE_OK;
}

re_status re_rdm_compare(const re_rdm *a, const re_rdm *b, re_rsa_method method, double *value) {
  *value = NAN;
  if (a->n != b->n)
    return re_err(RE_ESHAPE, "RDMs of %lld and %lld stimuli", (long long)a->n, (long long)b->n);
  double xy, xx, yy;
  switch (method) {
  case RE_RSA_SPEARMAN:
  case RE_RSA_PEARSON:
  case RE_RSA_COSINE: {
    if (method == RE_RSA_SPEARMAN && (!a->rank || !b->rank))
      return re_err(RE_EINVAL, "Spearman comparison of RDMs without ranks (re_rdm_prepare)");
    const double *x = method == RE_RSA_SPEARMAN ? a->rank : a->d, *y = method == RE_RSA_SPEARMAN ? b->rank : b->d;
    double ox = 0, oy = 0;
    if (method == RE_RSA_SPEARMAN)
      ox = oy = 0.5 * (double)(a->m + 1);
    else if (method == RE_RSA_PEARSON)
      ox = a->mean, oy = b->mean;
    xy = centred_dot(x, ox, y, oy, a->n);
    xx = centred_dot(x, ox, x, ox, a->n);
    yy = centred_dot(y, oy, y, oy, a->n);
    break;
  }
  case RE_RSA_KENDALL_TAU_A:
    if (!a->dense || !b->dense)
      return re_err(RE_EINVAL, "Kendall comparison of RDMs without dense ranks (re_rdm_prepare)");
    return tau_a(a, b, value);
  case RE_RSA_WHITENED_COSINE:
  case RE_RSA_WHITENED_PEARSON: {
    double oa = method == RE_RSA_WHITENED_PEARSON ? a->mean : 0, ob = method == RE_RSA_WHITENED_PEARSON ? b->mean : 0;
    xy = gram_dot(a, oa, b, ob);
    xx = gram_dot(a, oa, a, oa);
    yy = gram_dot(b, ob, b, ob);
    break;
  }
  default: return re_err(RE_EINVAL, "unknown RDM comparison %d", (int)method);
  }
  if (!(xx > 0) || !(yy > 0))
    return re_err(RE_EUNDEFINED, "%s: %s", method_names[method],
                  method == RE_RSA_COSINE ? "an RDM is all zeros"
                  : method == RE_RSA_WHITENED_COSINE ? "an RDM has no double-centred variation"
                                                     : "an RDM does not vary (all its dissimilarities are equal)");
  *value = xy / sqrt(xx * yy);
  return RE_OK;
}

/* ---- class means ---------------------------------------------------------------------- */

static int32_t slot_of(const int32_t *classes, int64_t k, int32_t c) {
  int64_t lo = 0, hi = k;
  while (lo < hi) {
    int64_t mid = (lo + hi) / 2;
    if (classes[mid] < c)
      lo = mid + 1;
    else
      hi = mid;
  }
  return (int32_t)lo;
}

re_status re_rsa_class_means(const float *X, int64_t n, int64_t d, int64_t ld, const int32_t *y, double **means,
                             int32_t **classes, int64_t *K) {
  *means = NULL;
  *classes = NULL;
  *K = 0;
  if (n < 1)
    return re_err(RE_EINVAL, "class means of no samples");
  for (int64_t i = 0; i < n; i++)
    if (y[i] < 0)
      return re_err(RE_EDATA, "class means: sample %lld has label %d (labels must be >= 0)", (long long)i, (int)y[i]);
  re_status st = RE_OK;
  int64_t *count = NULL, k = 0;
  double *sum = NULL;
  int32_t *cls = NULL;
  RE_CHECK(re_malloc(n, sizeof(int32_t), &cls));
  memcpy(cls, y, sizeof(int32_t) * (size_t)n);
  qsort(cls, (size_t)n, sizeof(int32_t), i32_cmp);
  for (int64_t i = 0; i < n; i++)
    if (i == 0 || cls[i] != cls[i - 1])
      cls[k++] = cls[i];
  RE_CHECK(re_calloc(k, sizeof(int64_t), &count));
  RE_CHECK(re_calloc(k, d * (int64_t)sizeof(double), &sum));
  for (int64_t i = 0; i < n; i++) {
    int32_t c = slot_of(cls, k, y[i]);
    double *row = sum + (int64_t)c * d;
    count[c]++;
    for (int64_t j = 0; j < d; j++)
      row[j] += (double)X[i * ld + j];
  }
  for (int64_t c = 0; c < k; c++)
    for (int64_t j = 0; j < d; j++)
      sum[c * d + j] /= (double)count[c];
  *means = sum;
  *classes = cls;
  sum = NULL;
  cls = NULL;
  *K = k;
done:
  free(count);
  free(sum);
  free(cls);
  return st;
}
