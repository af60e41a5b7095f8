/* CCA family, Procrustes, regression fit and spectra from co-moments (see cca.h).
 *
 * With S_xx = V_x diag(l_x) V_x^T (l descending) and the relative ridge
 * r_x = eps * tr(S_xx) / d_x, the whitened cross-covariance restricted to the
 * first k_x, k_y eigen-directions is
 *   A = diag((l_x + r_x)^-1/2) V_x[:, :k_x]^T S_xy V_y[:, :k_y] diag((l_y + r_y)^-1/2)
 * whose singular values are the canonical correlations (Hotelling 1936). Plain
 * CCA keeps the numerically non-null directions (k = rank), SVCCA keeps the
 * directions that explain a fraction of the variance (Raghu et al. 2017). */
#include "repeval/cca.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RANK_RTOL 1e-10

re_cca_options re_cca_defaults(void) {
  re_cca_options o = {1e-10, 0.99};
  return o;
}

re_status re_eig_create(const double *C, int64_t d, double n, re_eig **out) {
  re_status st = RE_OK;
  re_eig *e = NULL;
  double *A = NULL, *w = NULL;
  *out = NULL;
  if (d <= 0)
    return re_err(RE_EINVAL, "eigendecomposition of a %lld x %lld matrix", (long long)d, (long long)d);
  if (!(n > 1))
    return re_err(RE_EUNDEFINED, "a covariance needs at least 2 samples (n = %g)", n);
  RE_CHECK(re_calloc(1, sizeof *e, &e));
  RE_CHECK(re_malloc(d * d, sizeof(double), &A));
  RE_CHECK(re_malloc(d, sizeof(double), &w));
  /* the upper triangle of C / (n - 1), mirrored: row-major A is then its own column-
   * major transpose, so LAPACK reads it in place (the row-major interface would copy
   * it twice, and its upper triangle is what the row-major 'U' call reads) */
  for (int64_t i = 0; i < d; i++)
    for (int64_t j = i; j < d; j++)
      A[i * d + j] = A[j * d + i] = C[i * d + j] / (n - 1);
  lapack_int info = LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'V', 'U', (lapack_int)d, A, (lapack_int)d, w);
  if (info != 0) {
    st = re_err(RE_EUNDEFINED, "dsyevd failed to converge (info %d) on a %lld x %lld covariance", (int)info,
                (long long)d, (long long)d);
    goto done;
  }
  e->d = d;
  e->n = n;
  RE_CHECK(re_malloc(d, sizeof(double), &e->values));
  RE_CHECK(re_malloc(d * d, sizeof(double), &e->vectors));
  for (int64_t k = 0; k < d; k++) { /* ascending -> descending; eigenvector src is column src of A */
    int64_t src = d - 1 - k;
    e->values[k] = w[src] > 0 ? w[src] : 0.0;
    for (int64_t i = 0; i < d; i++)
      e->vectors[i * d + k] = A[src * d + i];
  }
  e->rank = 0;
  for (int64_t k = 0; k < d; k++)
    if (e->values[k] > RANK_RTOL * e->values[0])
      e->rank++;
  /* below the numerical rank the eigenvalues are rounding noise: make them exactly
   * zero so that spectra (sqrt in the effective rank) do not depend on it */
  e->trace = 0;
  for (int64_t k = 0; k < d; k++) {
    if (k >= e->rank)
      e->values[k] = 0.0;
    e->trace += e->values[k];
  }
  *out = e;
  e = NULL;
done:
  free(A);
  free(w);
  re_eig_destroy(&e);
  return st;
}

void re_eig_destroy(re_eig **pe) {
  re_eig *e = *pe;
  if (!e)
    return;
  free(e->values);
  free(e->vectors);
  free(e);
  *pe = NULL;
}

void re_cca_result_free(re_cca_result *r) {
  free(r->rho);
  r->rho = NULL;
}

/* S_xy (p x q) from the co-moment, oriented. */
static re_status cross_cov(const re_eig *ex, const re_eig *ey, const double *Cxy, int transposed, double **out) {
  int64_t p = ex->d, q = ey->d;
  double *S;
  RE_TRY(re_malloc(p * q, sizeof(double), &S));
  double s = 1.0 / (ex->n - 1);
  if (!transposed) {
    for (int64_t k = 0; k < p * q; k++)
      S[k] = Cxy[k] * s;
  } else {
    for (int64_t i = 0; i < p; i++)
      for (int64_t j = 0; j < q; j++)
        S[i * q + j] = Cxy[j * p + i] * s;
  }
  *out = S;
  return RE_OK;
}

static double ridge_abs(const re_eig *e, const re_cca_options *opt) {
  return opt->ridge * e->trace / (double)e->d;
}

/* Whitened kx x ky cross matrix A (see the file comment); *out owned by caller. */
static re_status whitened(const re_eig *ex, int64_t kx, const re_eig *ey, int64_t ky, const double *S,
                          const re_cca_options *opt, double **out) {
  re_status st = RE_OK;
  int64_t p = ex->d, q = ey->d;
  double *T = NULL, *A = NULL;
  RE_CHECK(re_malloc(p, ky * (int64_t)sizeof(double), &T));
  RE_CHECK(re_malloc(kx, ky * (int64_t)sizeof(double), &A));
  /* T = S V_y[:, :ky]   (p x ky) */
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)p, (int)ky, (int)q, 1.0, S, (int)q, ey->vectors,
              (int)q, 0.0, T, (int)ky);
  /* A = V_x[:, :kx]^T T   (kx x ky) */
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)kx, (int)ky, (int)p, 1.0, ex->vectors, (int)p, T,
              (int)ky, 0.0, A, (int)ky);
  double rx = ridge_abs(ex, opt), ry = ridge_abs(ey, opt);
  for (int64_t i = 0; i < kx; i++) {
    double ai = 1.0 / sqrt(ex->values[i] + rx);
    for (int64_t j = 0; j < ky; j++)
      A[i * ky + j] *= ai / sqrt(ey->values[j] + ry);
  }
  *out = A;
  A = NULL;
done:
  free(T);
  free(A);
  return st;
}

/* Singular values (and optionally U: kx x k, Vt: k x ky) of a kx x ky matrix (destroyed). */
static re_status svd(double *A, int64_t kx, int64_t ky, double *s, double *U, double *Vt) {
  lapack_int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, U ? 'S' : 'N', (lapack_int)kx, (lapack_int)ky, A,
                                   (lapack_int)ky, s, U, (lapack_int)(kx < ky ? kx : ky), Vt, (lapack_int)ky);
  if (info != 0)
    return re_err(RE_EUNDEFINED, "dgesdd failed to converge (info %d) on a %lld x %lld matrix", (int)info,
                  (long long)kx, (long long)ky);
  return RE_OK;
}

int64_t re_eig_kept_for_variance(const re_eig *e, double frac) {
  double acc = 0;
  for (int64_t k = 0; k < e->d; k++) {
    acc += e->values[k];
    if (acc >= frac * e->trace)
      return k + 1 < e->rank ? k + 1 : e->rank;
  }
  return e->rank;
}

static re_status check_pair(const re_eig *ex, const re_eig *ey, re_cca_result *out) {
  memset(out, 0, sizeof *out);
  if (ex->n != ey->n)
    return re_err(RE_EINVAL, "CCA: layers were accumulated over different samples (n %g vs %g)", ex->n, ey->n);
  if (ex->rank == 0 || ey->rank == 0) {
    out->reason = "a layer has zero variance (constant features)";
    return RE_EUNDEFINED;
  }
  return RE_OK;
}

/* Shared core: CCA on the first kx, ky directions; optionally PWCCA weights. */
static re_status cca_core(const re_eig *ex, int64_t kx, const re_eig *ey, int64_t ky, const double *Cxy,
                          int transposed, const re_cca_options *opt, int pw, re_cca_result *out) {
  re_status st = RE_OK;
  double *S = NULL, *A = NULL, *U = NULL, *Vt = NULL, *G = NULL;
  int64_t k = kx < ky ? kx : ky;
  RE_CHECK(cross_cov(ex, ey, Cxy, transposed, &S));
  RE_CHECK(whitened(ex, kx, ey, ky, S, opt, &A));
  RE_CHECK(re_malloc(k, sizeof(double), &out->rho));
  if (pw) {
    RE_CHECK(re_malloc(kx, k * (int64_t)sizeof(double), &U));
    RE_CHECK(re_malloc(k, ky * (int64_t)sizeof(double), &Vt));
  }
  RE_CHECK(svd(A, kx, ky, out->rho, U, Vt));
  out->k = k;
  out->kx = kx;
  out->ky = ky;
  for (int64_t i = 0; i < k; i++) {
    out->rho[i] = out->rho[i] > 1.0 ? 1.0 : out->rho[i];
    out->mean_rho += out->rho[i];
    out->mean_rho2 += out->rho[i] * out->rho[i];
  }
  out->mean_rho /= (double)k;
  out->mean_rho2 /= (double)k;
  if (pw) {
    /* weights on the side with fewer features (ties: X), as Morcos et al.'s code */
    int use_x = ex->d <= ey->d;
    const re_eig *e = use_x ? ex : ey;
    int64_t ke = use_x ? kx : ky, d = e->d;
    double r = ridge_abs(e, opt);
    RE_CHECK(re_malloc(ke, k * (int64_t)sizeof(double), &G));
    /* column i of the canonical directions in eigen coordinates: u_i (X) or v_i (Y) */
    for (int64_t a = 0; a < ke; a++)
      for (int64_t i = 0; i < k; i++) {
        double c = use_x ? U[a * k + i] : Vt[i * ky + a];
        G[a * k + i] = c / sqrt(e->values[a] + r); /* whitening: w = V diag(a) u */
      }
    double *SW = NULL; /* S_ee w_i = V diag(l) V^T w_i = V[:, :ke] diag(l) (diag(a) u_i), d x k */
    st = re_malloc(d, k * (int64_t)sizeof(double), &SW);
    if (st != RE_OK)
      goto done;
    double *Gl = NULL;
    st = re_malloc(ke, k * (int64_t)sizeof(double), &Gl);
    if (st != RE_OK) {
      free(SW);
      goto done;
    }
    for (int64_t a = 0; a < ke; a++)
      for (int64_t i = 0; i < k; i++)
        Gl[a * k + i] = G[a * k + i] * e->values[a];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)d, (int)k, (int)ke, 1.0, e->vectors, (int)d,
                Gl, (int)k, 0.0, SW, (int)k);
    double wsum = 0, acc = 0;
    for (int64_t i = 0; i < k; i++) {
      double var = 0, alpha = 0; /* var = w^T S w: squared norm of the canonical variate */
      for (int64_t a = 0; a < ke; a++)
        var += G[a * k + i] * Gl[a * k + i];
      for (int64_t j = 0; j < d; j++)
        alpha += fabs(SW[j * k + i]);
      alpha = var > 0 ? alpha / sqrt(var) : 0.0;
      wsum += alpha;
      acc += alpha * out->rho[i];
    }
    free(SW);
    free(Gl);
    out->pwcca = wsum > 0 ? acc / wsum : NAN;
  }
  out->defined = 1;
done:
  free(S);
  free(A);
  free(U);
  free(Vt);
  free(G);
  if (st != RE_OK)
    re_cca_result_free(out);
  return st;
}

static re_status undefined_or(re_status st, re_cca_result *out) {
  if (st == RE_EUNDEFINED && out->reason) { /* a defined "undefined" result, not an error */
    out->defined = 0;
    out->mean_rho = out->mean_rho2 = out->pwcca = NAN;
    return RE_OK;
  }
  return st;
}

re_status re_cca(const re_eig *ex, const re_eig *ey, const double *Cxy, int transposed,
                 const re_cca_options *opt, re_cca_result *out) {
  re_status st = check_pair(ex, ey, out);
  if (st != RE_OK)
    return undefined_or(st, out);
  return cca_core(ex, ex->rank, ey, ey->rank, Cxy, transposed, opt, 0, out);
}

re_status re_svcca(const re_eig *ex, const re_eig *ey, const double *Cxy, int transposed,
                   const re_cca_options *opt, re_cca_result *out) {
  re_status st = check_pair(ex, ey, out);
  if (st != RE_OK)
    return undefined_or(st, out);
  if (!(opt->variance > 0 && opt->variance <= 1))
    return re_err(RE_EINVAL, "SVCCA variance fraction must be in (0, 1], got %g", opt->variance);
  int64_t kx = re_eig_kept_for_variance(ex, opt->variance), ky = re_eig_kept_for_variance(ey, opt->variance);
  return cca_core(ex, kx, ey, ky, Cxy, transposed, opt, 0, out);
}

re_status re_pwcca(const re_eig *ex, const re_eig *ey, const double *Cxy, int transposed,
                   const re_cca_options *opt, re_cca_result *out) {
  re_status st = check_pair(ex, ey, out);
  if (st != RE_OK)
    return undefined_or(st, out);
  return cca_core(ex, ex->rank, ey, ey->rank, Cxy, transposed, opt, 1, out);
}

re_status re_procrustes(const re_eig *ex, const re_eig *ey, const double *Cxy, int transposed, double *d2) {
  double *S = NULL, *s = NULL;
  *d2 = NAN;
  if (!(ex->trace > 0) || !(ey->trace > 0))
    return re_err(RE_EUNDEFINED, "Procrustes: a layer has zero variance (constant features)");
  int64_t p = ex->d, q = ey->d, k = p < q ? p : q;
  RE_TRY(cross_cov(ex, ey, Cxy, transposed, &S));
  re_status st = re_malloc(k, sizeof(double), &s);
  if (st == RE_OK)
    st = svd(S, p, q, s, NULL, NULL);
  if (st == RE_OK) {
    double nuc = 0;
    for (int64_t i = 0; i < k; i++)
      nuc += s[i];
    double v = 2.0 - 2.0 * nuc / sqrt(ex->trace * ey->trace);
    *d2 = v > 0 ? v : 0.0;
  }
  free(S);
  free(s);
  return st;
}

/* R^2 of B from A through A's eigendecomposition; S is p_A x q_B oriented A -> B. */
static double r2_from(const re_eig *a, const re_eig *b, const double *S, const re_cca_options *opt, double *Z) {
  int64_t p = a->d, q = b->d;
  /* Z = V_a^T S  (p x q) */
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)p, (int)q, (int)p, 1.0, a->vectors, (int)p, S, (int)q,
              0.0, Z, (int)q);
  double r = ridge_abs(a, opt), expl = 0;
  for (int64_t k = 0; k < p; k++) {
    double z2 = cblas_ddot((int)q, Z + k * q, 1, Z + k * q, 1), l = a->values[k];
    if (l + r > 0)
      expl += z2 * (2.0 / (l + r) - l / ((l + r) * (l + r)));
  }
  return expl / b->trace;
}

re_status re_linreg_r2(const re_eig *ex, const re_eig *ey, const double *Cxy, int transposed,
                       const re_cca_options *opt, double *r2_y_from_x, double *r2_x_from_y) {
  double *S = NULL, *St = NULL, *Z = NULL;
  *r2_y_from_x = *r2_x_from_y = NAN;
  if (!(ex->trace > 0) || !(ey->trace > 0))
    return re_err(RE_EUNDEFINED, "regression R^2: a layer has zero variance (constant features)");
  int64_t p = ex->d, q = ey->d;
  re_status st = cross_cov(ex, ey, Cxy, transposed, &S);
  if (st == RE_OK)
    st = re_malloc(p, q * (int64_t)sizeof(double), &St);
  if (st == RE_OK)
    st = re_malloc(p, q * (int64_t)sizeof(double), &Z);
  if (st == RE_OK) {
    *r2_y_from_x = r2_from(ex, ey, S, opt, Z);
    for (int64_t i = 0; i < p; i++)
      for (int64_t j = 0; j < q; j++)
        St[j * p + i] = S[i * q + j];
    *r2_x_from_y = r2_from(ey, ex, St, opt, Z);
  }
  free(S);
  free(St);
  free(Z);
  return st;
}

/* exp(entropy) of v normalised to sum 1; entries below floor * max(v) count as 0 (a
 * direction carrying less than that is rounding noise, and the logarithm would
 * amplify it). */
static double entropy_rank(const double *v, int64_t d, double floor) {
  double s = 0, h = 0, mx = 0;
  for (int64_t k = 0; k < d; k++)
    mx = v[k] > mx ? v[k] : mx;
  for (int64_t k = 0; k < d; k++)
    s += v[k] >= floor * mx ? v[k] : 0.0;
  if (!(s > 0))
    return 0.0;
  for (int64_t k = 0; k < d; k++) {
    double p = v[k] >= floor * mx ? v[k] / s : 0.0;
    if (p > 0)
      h -= p * log(p);
  }
  return exp(h);
}

re_status re_spectrum_from_eig(const re_eig *e, double collapse_fraction, re_spectrum *out) {
  memset(out, 0, sizeof *out);
  int64_t d = e->d;
  out->d = d;
  out->total_variance = e->trace;
  out->rank = e->rank;
  double s2 = 0, acc = 0;
  double *sv;
  RE_TRY(re_malloc(d, sizeof(double), &sv));
  for (int64_t k = 0; k < d; k++) {
    s2 += e->values[k] * e->values[k];
    sv[k] = sqrt(e->values[k]);
  }
  out->participation_ratio = s2 > 0 ? e->trace * e->trace / s2 : 0.0;
  out->effective_rank = entropy_rank(sv, d, 1e-4);        /* singular values: 1e-8 of the variance */
  out->effective_rank_eig = entropy_rank(e->values, d, 1e-8);
  free(sv);
  out->k90 = out->k99 = d;
  for (int64_t k = 0; k < d; k++) {
    acc += e->values[k];
    if (out->k90 == d && acc >= 0.9 * e->trace)
      out->k90 = k + 1;
    if (acc >= 0.99 * e->trace) {
      out->k99 = k + 1;
      break;
    }
  }
  double cap = (double)(d < e->n - 1 ? d : e->n - 1);
  out->collapsed = out->effective_rank < collapse_fraction * cap;
  return RE_OK;
}
