/* Generalized shape metrics, the permutation metric and canonical directions from
 * co-moments (see shape.h).
 *
 * Partial whitening as netrep's `whiten` (eigval_tol 1e-7, preserve_variance): with
 * lambda the eigenvalues of C_xx = X^T X (centred X, zero-padded to m = max(p, q)
 * features, floored at 1e-7), d = alpha + (1 - alpha) lambda^-1/2 rescaled by
 * sqrt(sum lambda / sum (alpha^2 lambda + 2 alpha (1 - alpha) lambda^1/2 + (1 - alpha)^2)),
 * and Z_x = V diag(d) V^T (no whitening at all when alpha > 1 - 1e-7). The alignment
 * is the orthogonal Procrustes rotation between X Z_x and Y Z_y, so
 *   <tX, tY> = |Z_x C_xy Z_y|_* = |diag(d_x) V_x^T C_xy V_y diag(d_y)|_*,
 *   |tX|_F^2 = tr(Z_x C_xx Z_x) = sum_i d_i^2 lambda_i (unfloored lambda),
 * and angular = arccos(<tX, tY> / (|tX| |tY|)), euclidean = |tX - tY|_F. */
#include "repeval/shape.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EIGVAL_TOL 1e-7

/* C_xy oriented p x q (a copy). */
static re_status oriented(const re_eig *ex, const re_eig *ey, const double *Cxy, int transposed, double **out) {
  int64_t p = ex->d, q = ey->d;
  RE_TRY(re_malloc(p, q * (int64_t)sizeof(double), out));
  if (!transposed)
    memcpy(*out, Cxy, sizeof(double) * (size_t)(p * q));
  else
    for (int64_t i = 0; i < p; i++)
      for (int64_t j = 0; j < q; j++)
        (*out)[i * q + j] = Cxy[j * p + i];
  return RE_OK;
}

static re_status check_pair(const re_eig *ex, const re_eig *ey, const char *what) {
  if (ex->n != ey->n)
    return re_err(RE_EINVAL, "%s: layers accumulated over different samples (n %g vs %g)", what, ex->n, ey->n);
  if (!(ex->trace > 0) || !(ey->trace > 0))
    return re_err(RE_EUNDEFINED, "%s: a layer has zero variance (constant features)", what);
  return RE_OK;
}

/* netrep's whitening diagonal d (e->d entries; m >= e->d with zero-padding) in the
 * co-moment's units; *var = sum d_i^2 lambda_i. */
static void whitening(const re_eig *e, int64_t m, double alpha, double *d, double *var) {
  double c = e->n - 1, sum = 0, nv = 0;
  *var = 0;
  if (alpha > 1 - EIGVAL_TOL) {
    for (int64_t i = 0; i < e->d; i++) {
      d[i] = 1.0;
      *var += e->values[i] * c;
    }
    return;
  }
  for (int64_t i = 0; i < m; i++) {
    double lam = i < e->d ? e->values[i] * c : 0.0;
    lam = lam > EIGVAL_TOL ? lam : EIGVAL_TOL;
    sum += lam;
    nv += alpha * alpha * lam + 2 * alpha * (1 - alpha) * sqrt(lam) + (1 - alpha) * (1 - alpha);
  }
  double scale = sqrt(sum / nv);
  for (int64_t i = 0; i < e->d; i++) {
    double lam = e->values[i] * c, lf = lam > EIGVAL_TOL ? lam : EIGVAL_TOL;
    d[i] = (alpha + (1 - alpha) / sqrt(lf)) * scale;
    *var += d[i] * d[i] * lam;
  }
}

/* The sign of column i of W (rows x k) so that its largest |entry| (first one) is positive. */
static double column_sign(const double *W, int64_t rows, int64_t k, int64_t i) {
  double best = 0, sign = 1;
  for (int64_t r = 0; r < rows; r++)
    if (fabs(W[r * k + i]) > best) {
      best = fabs(W[r * k + i]);
      sign = W[r * k + i] < 0 ? -1.0 : 1.0;
    }
  return sign;
}

re_status re_shape_metric(const re_eig *ex, const re_eig *ey, const double *Cxy, int transposed, double alpha,
                          double *angular, double *euclidean, double *Wx, double *Wy) {
  *angular = *euclidean = NAN;
  if (!(alpha >= 0 && alpha <= 1))
    return re_err(RE_EINVAL, "shape metric: alpha %g outside [0, 1]", alpha);
  RE_TRY(check_pair(ex, ey, "shape metric"));
  re_status st = RE_OK;
  int64_t p = ex->d, q = ey->d, m = p > q ? p : q, k = p < q ? p : q;
  double *C = NULL, *T = NULL, *A = NULL, *dx = NULL, *dy = NULL, *s = NULL, *U = NULL, *Vt = NULL;
  int want = Wx && Wy;
  RE_CHECK(oriented(ex, ey, Cxy, transposed, &C));
  RE_CHECK(re_malloc(p, q * (int64_t)sizeof(double), &T));
  RE_CHECK(re_malloc(p, q * (int64_t)sizeof(double), &A));
  RE_CHECK(re_malloc(p, sizeof(double), &dx));
  RE_CHECK(re_malloc(q, sizeof(double), &dy));
  RE_CHECK(re_malloc(k, sizeof(double), &s));
  if (want) {
    RE_CHECK(re_malloc(p, k * (int64_t)sizeof(double), &U));
    RE_CHECK(re_malloc(k, q * (int64_t)sizeof(double), &Vt));
  }
  double vx, vy;
  whitening(ex, m, alpha, dx, &vx);
  whitening(ey, m, alpha, dy, &vy);
  /* A = diag(dx) Vx^T C Vy diag(dy) */
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)p, (int)q, (int)q, 1.0, C, (int)q, ey->vectors, (int)q,
              0.0, T, (int)q);
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)p, (int)q, (int)p, 1.0, ex->vectors, (int)p, T, (int)q,
              0.0, A, (int)q);
  for (int64_t i = 0; i < p; i++)
    for (int64_t j = 0; j < q; j++)
      A[i * q + j] *= dx[i] * dy[j];
  lapack_int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, want ? 'S' : 'N', (lapack_int)p, (lapack_int)q, A, (lapack_int)q,
                                   s, U, (lapack_int)k, Vt, (lapack_int)q);
  if (info != 0) {
    st = re_err(RE_EUNDEFINED, "shape metric: dgesdd failed to converge (info %d) on a %lld x %lld matrix", (int)info,
                (long long)p, (long long)q);
    goto done;
  }
  double nuc = 0;
  for (int64_t i = 0; i < k; i++)
    nuc += s[i];
  if (!(vx > 0) || !(vy > 0)) {
    st = re_err(RE_EUNDEFINED, "shape metric: a layer has zero variance after whitening");
    goto done;
  }
  double corr = nuc / sqrt(vx * vy), e2 = vx + vy - 2 * nuc;
  *angular = acos(corr > 1 ? 1 : corr < -1 ? -1 : corr);
  *euclidean = sqrt(e2 > 0 ? e2 : 0);
  if (want) { /* Wx = Vx diag(dx) U, Wy = Vy diag(dy) V */
    for (int64_t a = 0; a < p; a++)
      for (int64_t i = 0; i < k; i++)
        U[a * k + i] *= dx[a];
    for (int64_t i = 0; i < k; i++)
      for (int64_t b = 0; b < q; b++)
        Vt[i * q + b] *= dy[b];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)p, (int)k, (int)p, 1.0, ex->vectors, (int)p, U,
                (int)k, 0.0, Wx, (int)k);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)q, (int)k, (int)q, 1.0, ey->vectors, (int)q, Vt,
                (int)q, 0.0, Wy, (int)k);
    for (int64_t i = 0; i < k; i++)
      if (column_sign(Wx, p, k, i) < 0) {
        for (int64_t a = 0; a < p; a++)
          Wx[a * k + i] = -Wx[a * k + i];
        for (int64_t b = 0; b < q; b++)
          Wy[b * k + i] = -Wy[b * k + i];
      }
  }
done:
  free(C);
  free(T);
  free(A);
  free(dx);
  free(dy);
  free(s);
  free(U);
  free(Vt);
  return st;
}

/* ---- the permutation metric ------------------------------------------------------- */

/* Minimum-cost assignment of the n rows of cost (n x m, n <= m) to distinct columns:
 * shortest augmenting paths with row and column potentials (Kuhn 1955, Munkres 1957;
 * the O(n^2 m) form of Jonker and Volgenant 1987). col[i] is row i's column. */
static re_status assign_min(const double *cost, int64_t n, int64_t m, int64_t *col) {
  re_status st = RE_OK;
  double *u = NULL, *v = NULL, *minv = NULL;
  int64_t *pr = NULL, *way = NULL;
  unsigned char *used = NULL;
  RE_CHECK(re_calloc(n + 1, sizeof(double), &u));
  RE_CHECK(re_calloc(m + 1, sizeof(double), &v));
  RE_CHECK(re_malloc(m + 1, sizeof(double), &minv));
  RE_CHECK(re_calloc(m + 1, sizeof(int64_t), &pr)); /* pr[j]: row (1-based) on column j, 0: free */
  RE_CHECK(re_calloc(m + 1, sizeof(int64_t), &way));
  RE_CHECK(re_malloc(m + 1, 1, &used));
  for (int64_t i = 1; i <= n; i++) {
    int64_t j0 = 0;
    pr[0] = i;
    for (int64_t j = 0; j <= m; j++)
      minv[j] = INFINITY, used[j] = 0;
    do {
      used[j0] = 1;
      int64_t i0 = pr[j0], j1 = 0;
      double delta = INFINITY;
      for (int64_t j = 1; j <= m; j++) {
        if (used[j])
          continue;
        double cur = cost[(i0 - 1) * m + (j - 1)] - u[i0] - v[j];
        if (cur < minv[j])
          minv[j] = cur, way[j] = j0;
        if (minv[j] < delta)
          delta = minv[j], j1 = j;
      }
      if (j1 == 0) {
        st = re_err(RE_EUNDEFINED, "linear assignment: no augmenting path (costs not finite?)");
        goto done;
      }
      for (int64_t j = 0; j <= m; j++) {
        if (used[j])
          u[pr[j]] += delta, v[j] -= delta;
        else
          minv[j] -= delta;
      }
      j0 = j1;
    } while (pr[j0] != 0);
    do {
      int64_t j1 = way[j0];
      pr[j0] = pr[j1];
      j0 = j1;
    } while (j0);
  }
  for (int64_t j = 1; j <= m; j++)
    if (pr[j])
      col[pr[j] - 1] = j - 1;
done:
  free(u);
  free(v);
  free(minv);
  free(pr);
  free(way);
  free(used);
  return st;
}

re_status re_permutation_metric(const re_eig *ex, const re_eig *ey, const double *Cxy, int transposed,
                                double *angular, double *euclidean, int64_t *match) {
  *angular = *euclidean = NAN;
  RE_TRY(check_pair(ex, ey, "permutation metric"));
  int64_t p = ex->d, q = ey->d, r = p <= q ? p : q, c = p <= q ? q : p;
  double *C = NULL, *cost = NULL;
  int64_t *col = NULL;
  re_status st = RE_OK;
  RE_CHECK(oriented(ex, ey, Cxy, transposed, &C));
  RE_CHECK(re_malloc(r, c * (int64_t)sizeof(double), &cost));
  RE_CHECK(re_malloc(r, sizeof(int64_t), &col));
  for (int64_t i = 0; i < r; i++) /* rows: features of the narrower side; maximise -> minimise -C */
    for (int64_t j = 0; j < c; j++)
      cost[i * c + j] = -(p <= q ? C[i * q + j] : C[j * q + i]);
  RE_CHECK(assign_min(cost, r, c, col));
  double best = 0, ex2 = ex->trace * (ex->n - 1), ey2 = ey->trace * (ey->n - 1);
  for (int64_t i = 0; i < r; i++)
    best += -cost[i * c + col[i]];
  if (match)
    memcpy(match, col, sizeof(int64_t) * (size_t)r);
  double corr = best / sqrt(ex2 * ey2), e2 = ex2 + ey2 - 2 * best;
  *angular = acos(corr > 1 ? 1 : corr < -1 ? -1 : corr);
  *euclidean = sqrt(e2 > 0 ? e2 : 0);
done:
  free(C);
  free(cost);
  free(col);
  return st;
}

/* ---- canonical directions --------------------------------------------------------- */

void re_cca_directions_free(re_cca_directions *d) {
  free(d->rho);
  free(d->x_coef);
  free(d->y_coef);
  free(d->x_loadings);
  free(d->y_loadings);
  memset(d, 0, sizeof *d);
}

/* coef (dim x k) = V[:, :ke] diag((l + r)^-1/2) G[:, i] and loadings from the
 * eigendecomposition e; G is ke x k (column i: the singular vector of pair i). */
static void side(const re_eig *e, int64_t ke, double r, const double *G, int64_t k, const double *sign, double *coef,
                 double *load, double *tmp) {
  int64_t dim = e->d;
  for (int64_t a = 0; a < ke; a++)
    for (int64_t i = 0; i < k; i++)
      tmp[a * k + i] = G[a * k + i] / sqrt(e->values[a] + r) * sign[i];
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)dim, (int)k, (int)ke, 1.0, e->vectors, (int)dim, tmp,
              (int)k, 0.0, coef, (int)k);
  /* S w_i = V[:, :ke] diag(l) tmp[:, i]; var(u_i) = sum_a tmp[a, i]^2 l_a */
  double *var = tmp + ke * k; /* k more doubles after tmp */
  for (int64_t i = 0; i < k; i++) {
    var[i] = 0;
    for (int64_t a = 0; a < ke; a++)
      var[i] += tmp[a * k + i] * tmp[a * k + i] * e->values[a];
  }
  for (int64_t a = 0; a < ke; a++)
    for (int64_t i = 0; i < k; i++)
      tmp[a * k + i] *= e->values[a];
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)dim, (int)k, (int)ke, 1.0, e->vectors, (int)dim, tmp,
              (int)k, 0.0, load, (int)k);
  for (int64_t j = 0; j < dim; j++) {
    double vj = 0; /* the feature's variance from the eigendecomposition */
    for (int64_t a = 0; a < e->d; a++)
      vj += e->vectors[j * dim + a] * e->vectors[j * dim + a] * e->values[a];
    for (int64_t i = 0; i < k; i++)
      load[j * k + i] = vj > 0 && var[i] > 0 ? load[j * k + i] / sqrt(vj * var[i]) : 0.0;
  }
}

re_status re_cca_directions_create(const re_eig *ex, const re_eig *ey, const double *Cxy, int transposed,
                                   const re_cca_options *opt, re_cca_directions *out) {
  memset(out, 0, sizeof *out);
  if (ex->n != ey->n)
    return re_err(RE_EINVAL, "CCA directions: layers accumulated over different samples (n %g vs %g)", ex->n, ey->n);
  if (ex->rank == 0 || ey->rank == 0)
    return re_err(RE_EUNDEFINED, "CCA directions: a layer has zero variance (constant features)");
  re_status st = RE_OK;
  int64_t p = ex->d, q = ey->d, kx = ex->rank, ky = ey->rank, k = kx < ky ? kx : ky;
  double rx = opt->ridge * ex->trace / (double)p, ry = opt->ridge * ey->trace / (double)q;
  double *S = NULL, *T = NULL, *A = NULL, *U = NULL, *Vt = NULL, *G = NULL, *sign = NULL, *tmp = NULL;
  RE_CHECK(oriented(ex, ey, Cxy, transposed, &S));
  RE_CHECK(re_malloc(p, ky * (int64_t)sizeof(double), &T));
  RE_CHECK(re_malloc(kx, ky * (int64_t)sizeof(double), &A));
  RE_CHECK(re_malloc(kx, k * (int64_t)sizeof(double), &U));
  RE_CHECK(re_malloc(k, ky * (int64_t)sizeof(double), &Vt));
  RE_CHECK(re_malloc(ky, k * (int64_t)sizeof(double), &G));
  RE_CHECK(re_malloc(k, sizeof(double), &sign));
  RE_CHECK(re_malloc((kx > ky ? kx : ky) + 1, k * (int64_t)sizeof(double), &tmp));
  RE_CHECK(re_malloc(k, sizeof(double), &out->rho));
  RE_CHECK(re_malloc(p, k * (int64_t)sizeof(double), &out->x_coef));
  RE_CHECK(re_malloc(q, k * (int64_t)sizeof(double), &out->y_coef));
  RE_CHECK(re_malloc(p, k * (int64_t)sizeof(double), &out->x_loadings));
  RE_CHECK(re_malloc(q, k * (int64_t)sizeof(double), &out->y_loadings));
  double sc = 1.0 / (ex->n - 1);
  /* A = diag((lx + rx)^-1/2) Vx[:, :kx]^T S_xy Vy[:, :ky] diag((ly + ry)^-1/2) */
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)p, (int)ky, (int)q, sc, S, (int)q, ey->vectors, (int)q,
              0.0, T, (int)ky);
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)kx, (int)ky, (int)p, 1.0, ex->vectors, (int)p, T,
              (int)ky, 0.0, A, (int)ky);
  for (int64_t i = 0; i < kx; i++)
    for (int64_t j = 0; j < ky; j++)
      A[i * ky + j] /= sqrt(ex->values[i] + rx) * sqrt(ey->values[j] + ry);
  lapack_int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'S', (lapack_int)kx, (lapack_int)ky, A, (lapack_int)ky, out->rho,
                                   U, (lapack_int)k, Vt, (lapack_int)ky);
  if (info != 0) {
    st = re_err(RE_EUNDEFINED, "CCA directions: dgesdd failed to converge (info %d)", (int)info);
    goto done;
  }
  for (int64_t i = 0; i < k; i++) {
    out->rho[i] = out->rho[i] > 1 ? 1 : out->rho[i];
    sign[i] = 1;
  }
  for (int64_t b = 0; b < ky; b++)
    for (int64_t i = 0; i < k; i++)
      G[b * k + i] = Vt[i * ky + b];
  side(ex, kx, rx, U, k, sign, out->x_coef, out->x_loadings, tmp);
  for (int64_t i = 0; i < k; i++) /* the sign convention, then once more with it */
    sign[i] = column_sign(out->x_coef, p, k, i);
  side(ex, kx, rx, U, k, sign, out->x_coef, out->x_loadings, tmp);
  side(ey, ky, ry, G, k, sign, out->y_coef, out->y_loadings, tmp);
  out->p = p, out->q = q, out->k = k;
done:
  free(S);
  free(T);
  free(A);
  free(U);
  free(Vt);
  free(G);
  free(sign);
  free(tmp);
  if (st != RE_OK)
    re_cca_directions_free(out);
  return st;
}
