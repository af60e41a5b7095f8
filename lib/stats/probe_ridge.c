/* Ridge probe on one-hot targets: the whole λ path from one eigendecomposition of the
 * feature co-moment (see probe.h). With C_zz = V diag(e) V^T and Q = V^T C_zt (d x K),
 * W(λ) = V diag(1 / (e + n λ)) Q for every λ; the path is stored as one d x (nl K)
 * matrix so that scoring a batch for all λ is a single GEMM. */
#include "repeval/probe.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SCORE_BLOCK 1024 /* rows per GEMM when scoring */

struct re_ridge_path {
  int64_t d;
  int32_t K;
  int nl;
  double n;
  double *lambdas; /* nl */
  double *mux;     /* d feature means */
  double *scale;   /* d feature scales (1 without standardisation) */
  double *muy;     /* K label frequencies (mean of the one-hot targets) */
  double *W;       /* d x (nl K): columns [l K, (l + 1) K) hold W(λ_l), standardised coordinates */
};

re_status re_ridge_moments_create(int64_t d, int32_t K, re_moments **out) {
  if (d < 1 || K < 2)
    return re_err(RE_EINVAL, "ridge probe: need d >= 1 features and K >= 2 classes (got %lld, %d)", (long long)d,
                  (int)K);
  int64_t dims[2] = {d, K};
  int32_t pair[2] = {0, 1};
  return re_moments_create(2, dims, 1, pair, 0, out);
}

re_status re_ridge_moments_add(re_moments *m, const re_probe_rows *rows) {
  re_status st = RE_OK;
  if (re_moments_nlayers(m) != 2)
    return re_err(RE_EINVAL, "ridge probe: the accumulator has %d layers, expected features and labels",
                  re_moments_nlayers(m));
  int64_t d = re_moments_dim(m, 0), K = re_moments_dim(m, 1);
  const char *name = rows->name ? rows->name : "rows";
  if (rows->d != d)
    return re_err(RE_ESHAPE, "%s: %lld features, the accumulator has %lld", name, (long long)rows->d, (long long)d);
  if (rows->n > 0 && (!rows->X || rows->ld < d))
    return re_err(RE_EINVAL, "%s: no data or leading dimension %lld < %lld", name, (long long)rows->ld,
                  (long long)d);
  RE_TRY(re_probe_check_labels(rows, (int32_t)K));
  double *X = NULL, *T = NULL;
  int64_t B = SCORE_BLOCK;
  RE_CHECK(re_malloc(B, d * (int64_t)sizeof(double), &X));
  RE_CHECK(re_malloc(B, K * (int64_t)sizeof(double), &T));
  for (int64_t r0 = 0; r0 < rows->n; r0 += B) {
    int64_t nb = rows->n - r0 < B ? rows->n - r0 : B;
    memset(T, 0, (size_t)(nb * K) * sizeof(double));
    for (int64_t i = 0; i < nb; i++) {
      const float *x = rows->X + (r0 + i) * rows->ld;
      for (int64_t j = 0; j < d; j++) {
        if (!isfinite(x[j])) {
          st = re_err(RE_EDATA, "%s: row %lld, column %lld is %s", name, (long long)(r0 + i), (long long)j,
                      isnan(x[j]) ? "NaN" : "infinite");
          goto done;
        }
        X[i * d + j] = x[j];
      }
      T[i * K + rows->y[r0 + i]] = 1.0;
    }
    const double *blocks[2] = {X, T};
    int64_t ld[2] = {d, K};
    RE_CHECK(re_moments_add_batch(m, nb, blocks, ld));
  }
done:
  free(X);
  free(T);
  return st;
}

void re_ridge_path_destroy(re_ridge_path **pp) {
  re_ridge_path *p = *pp;
  if (!p)
    return;
  free(p->lambdas);
  free(p->mux);
  free(p->scale);
  free(p->muy);
  free(p->W);
  free(p);
  *pp = NULL;
}

int re_ridge_path_count(const re_ridge_path *p) { return p->nl; }

re_status re_ridge_path_create(const re_moments *m, int fx, int fy, const double *lambdas, int nl,
                               int standardize, const re_eig *exx, re_ridge_path **out) {
  re_status st = RE_OK;
  re_ridge_path *p = NULL;
  re_eig *own = NULL;
  double *Czz = NULL, *Czt = NULL, *Q = NULL, *T = NULL;
  *out = NULL;
  int L = re_moments_nlayers(m);
  if (fx < 0 || fy < 0 || fx >= L || fy >= L || fx == fy)
    return re_err(RE_EINVAL, "ridge probe: layers %d and %d of an accumulator with %d layers", fx, fy, L);
  if (nl < 1 || !lambdas)
    return re_err(RE_EINVAL, "ridge probe: empty lambda list");
  for (int l = 0; l < nl; l++)
    if (!(lambdas[l] > 0) || !isfinite(lambdas[l]))
      return re_err(RE_EINVAL, "ridge probe: lambda number %d is %g, expected a finite number > 0", l, lambdas[l]);
  if (exx && standardize)
    return re_err(RE_EINVAL, "ridge probe: a precomputed eigendecomposition of C_xx cannot be reused with "
                             "standardised features");
  int64_t d = re_moments_dim(m, fx), K = re_moments_dim(m, fy), nlK, cells;
  double n = re_moments_n(m);
  if (!(n >= 2))
    return re_err(RE_EUNDEFINED, "ridge probe: %g training samples, need at least 2", n);
  int tr_xx, tr_xy;
  const double *Cxx = re_moments_block(m, fx, fx, &tr_xx), *Cxy = re_moments_block(m, fx, fy, &tr_xy);
  if (!Cxx || !Cxy)
    return re_err(RE_EINVAL, "ridge probe: the accumulator does not store the (%d, %d) block", fx, fy);
  if (exx && (exx->d != d || exx->n != n))
    return re_err(RE_EINVAL, "ridge probe: the given eigendecomposition is of a %lld x %lld matrix over %g samples, "
                             "expected %lld over %g",
                  (long long)exx->d, (long long)exx->d, exx->n, (long long)d, n);
  RE_TRY(re_mul_i64(nl, K, &nlK));
  RE_TRY(re_mul_i64(d, nlK, &cells));
  RE_CHECK(re_calloc(1, sizeof *p, &p));
  p->d = d;
  p->K = (int32_t)K;
  p->nl = nl;
  p->n = n;
  RE_CHECK(re_malloc(nl, sizeof(double), &p->lambdas));
  memcpy(p->lambdas, lambdas, (size_t)nl * sizeof(double));
  RE_CHECK(re_malloc(d, sizeof(double), &p->mux));
  RE_CHECK(re_malloc(d, sizeof(double), &p->scale));
  RE_CHECK(re_malloc(K, sizeof(double), &p->muy));
  memcpy(p->mux, re_moments_mean(m, fx), (size_t)d * sizeof(double));
  memcpy(p->muy, re_moments_mean(m, fy), (size_t)K * sizeof(double));
  RE_CHECK(re_malloc(cells, sizeof(double), &p->W));

  /* C_zt (d x K), oriented, and with standardisation C_zz = D^-1 C_xx D^-1 */
  RE_CHECK(re_malloc(d, K * (int64_t)sizeof(double), &Czt));
  for (int64_t j = 0; j < d; j++) {
    double var = Cxx[j * d + j] / n, bound = n * DBL_EPSILON * p->mux[j];
    p->scale[j] = (standardize && var > 0 && var > bound * bound) ? sqrt(var) : 1.0;
  }
  for (int64_t j = 0; j < d; j++)
    for (int64_t k = 0; k < K; k++)
      Czt[j * K + k] = (tr_xy ? Cxy[k * d + j] : Cxy[j * K + k]) / p->scale[j];
  const re_eig *e = exx;
  if (!e) {
    const double *C = Cxx;
    if (standardize) {
      RE_CHECK(re_malloc(d, d * (int64_t)sizeof(double), &Czz));
      for (int64_t i = 0; i < d; i++)
        for (int64_t j = 0; j < d; j++)
          Czz[i * d + j] = Cxx[i * d + j] / (p->scale[i] * p->scale[j]);
      C = Czz;
    }
    RE_CHECK(re_eig_create(C, d, n, &own));
    e = own;
  }
  /* Q = V^T C_zt; then W(λ) = V diag(1 / (e_C + n λ)) Q with e_C = (n - 1) e_S */
  RE_CHECK(re_malloc(d, K * (int64_t)sizeof(double), &Q));
  RE_CHECK(re_malloc(d, K * (int64_t)sizeof(double), &T));
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d, (int)K, (int)d, 1.0, e->vectors, (int)d, Czt,
              (int)K, 0.0, Q, (int)K);
  for (int l = 0; l < nl; l++) {
    double a = n * lambdas[l];
    for (int64_t i = 0; i < d; i++) {
      double w = 1.0 / (e->values[i] * (n - 1) + a);
      for (int64_t k = 0; k < K; k++)
        T[i * K + k] = Q[i * K + k] * w;
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)d, (int)K, (int)d, 1.0, e->vectors, (int)d, T,
                (int)K, 0.0, p->W + (int64_t)l * K, (int)nlK);
  }
  *out = p;
  p = NULL;
done:
  re_eig_destroy(&own);
  free(Czz);
  free(Czt);
  free(Q);
  free(T);
  re_ridge_path_destroy(&p);
  return st;
}

re_status re_ridge_path_weights(const re_ridge_path *p, int l, double *W, double *b) {
  if (l < 0 || l >= p->nl)
    return re_err(RE_EINVAL, "ridge probe: lambda number %d of %d", l, p->nl);
  int64_t d = p->d, K = p->K, ld = (int64_t)p->nl * K;
  for (int64_t k = 0; k < K; k++)
    b[k] = p->muy[k];
  for (int64_t j = 0; j < d; j++)
    for (int64_t k = 0; k < K; k++) {
      W[j * K + k] = p->W[j * ld + l * K + k] / p->scale[j];
      b[k] -= p->mux[j] * W[j * K + k];
    }
  return RE_OK;
}

/* Centre and scale block rows of `rows` into Z (nb x d), checking values. */
static re_status prepare(const re_ridge_path *p, const re_probe_rows *rows, int64_t r0, int64_t nb, double *Z) {
  for (int64_t i = 0; i < nb; i++) {
    const float *x = rows->X + (r0 + i) * rows->ld;
    for (int64_t j = 0; j < p->d; j++) {
      if (!isfinite(x[j]))
        return re_err(RE_EDATA, "%s: row %lld, column %lld is %s", rows->name ? rows->name : "rows",
                      (long long)(r0 + i), (long long)j, isnan(x[j]) ? "NaN" : "infinite");
      Z[i * p->d + j] = (x[j] - p->mux[j]) / p->scale[j];
    }
  }
  return RE_OK;
}

static re_status check_input(const re_ridge_path *p, const re_probe_rows *rows, int labels) {
  const char *name = rows->name ? rows->name : "rows";
  if (rows->d != p->d)
    return re_err(RE_ESHAPE, "%s: %lld features, the ridge probe was fitted on %lld", name, (long long)rows->d,
                  (long long)p->d);
  if (rows->n > 0 && (!rows->X || rows->ld < rows->d))
    return re_err(RE_EINVAL, "%s: no data or leading dimension %lld < %lld", name, (long long)rows->ld,
                  (long long)rows->d);
  if (labels)
    RE_TRY(re_probe_check_labels(rows, p->K));
  return RE_OK;
}

re_status re_ridge_path_score(const re_ridge_path *p, const re_probe_rows *rows, re_probe_score *scores) {
  RE_TRY(check_input(p, rows, 1));
  re_status st = RE_OK;
  int64_t d = p->d, K = p->K, nlK = (int64_t)p->nl * K, B = SCORE_BLOCK;
  double *Z = NULL, *S = NULL;
  RE_CHECK(re_malloc(B, d * (int64_t)sizeof(double), &Z));
  RE_CHECK(re_malloc(B, nlK * (int64_t)sizeof(double), &S));
  for (int64_t r0 = 0; r0 < rows->n; r0 += B) {
    int64_t nb = rows->n - r0 < B ? rows->n - r0 : B;
    RE_CHECK(prepare(p, rows, r0, nb, Z));
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nb, (int)nlK, (int)d, 1.0, Z, (int)d, p->W,
                (int)nlK, 0.0, S, (int)nlK);
    for (int64_t i = 0; i < nb; i++) {
      int32_t y = rows->y[r0 + i];
      for (int l = 0; l < p->nl; l++) {
        double *z = S + i * nlK + l * K;
        for (int64_t k = 0; k < K; k++)
          z[k] += p->muy[k];
        int64_t better = 0;
        for (int64_t k = 0; k < K; k++)
          if (z[k] > z[y] || (z[k] == z[y] && k < y))
            better++;
        scores[l].n += 1;
        scores[l].top1 += better == 0;
        scores[l].top5 += better < 5;
      }
    }
  }
done:
  free(Z);
  free(S);
  return st;
}

re_status re_ridge_path_predict(const re_ridge_path *p, int l, const re_probe_rows *rows, int32_t *pred) {
  if (l < 0 || l >= p->nl)
    return re_err(RE_EINVAL, "ridge probe: lambda number %d of %d", l, p->nl);
  RE_TRY(check_input(p, rows, 0));
  re_status st = RE_OK;
  int64_t d = p->d, K = p->K, nlK = (int64_t)p->nl * K, B = SCORE_BLOCK;
  double *Z = NULL, *S = NULL;
  RE_CHECK(re_malloc(B, d * (int64_t)sizeof(double), &Z));
  RE_CHECK(re_malloc(B, K * (int64_t)sizeof(double), &S));
  for (int64_t r0 = 0; r0 < rows->n; r0 += B) {
    int64_t nb = rows->n - r0 < B ? rows->n - r0 : B;
    RE_CHECK(prepare(p, rows, r0, nb, Z));
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nb, (int)K, (int)d, 1.0, Z, (int)d,
                p->W + (int64_t)l * K, (int)nlK, 0.0, S, (int)K);
    for (int64_t i = 0; i < nb; i++) {
      int32_t best = 0;
      for (int64_t k = 0; k < K; k++) {
        S[i * K + k] += p->muy[k];
        if (S[i * K + k] > S[i * K + best])
          best = (int32_t)k;
      }
      pred[r0 + i] = best;
    }
  }
done:
  free(Z);
  free(S);
  return st;
}

int re_ridge_select(const re_probe_score *val, const double *lambdas, int nl) {
  int best = 0;
  for (int l = 1; l < nl; l++)
    if (val[l].top1 > val[best].top1 || (val[l].top1 == val[best].top1 && lambdas[l] > lambdas[best]))
      best = l;
  return best;
}
