/* One-hidden-layer MLP probe ("fine-tune a small head on the frozen embedding") and
 * its λ sweep (see probe.h and docs/metrics.md#mlp-probe).
 *
 * Full-batch L-BFGS (lbfgs.c) on f = mean cross-entropy + (λ/2)(||W1||^2 + ||W2||^2)
 * from a seeded initialisation, so a fit is a deterministic function of the rows, λ
 * and the seed. Loss and gradient by BLAS-3 on blocks of 64 standardised rows:
 *   A = Z W1^T + b1, H = act(A), L = H W2^T + b2              (two dgemm)
 *   G = softmax(L) - onehot(y)
 *   dW2 += G^T H, dH = (G W2) act'(A), dW1 += dH^T Z          (three dgemm)
 * The default activation is GELU: f is then smooth and L-BFGS converges to a
 * stationary point; with ReLU the minimum often lies on a kink of some unit, where
 * the gradient does not vanish and the line search ends the fit. Sums run over rows
 * in order, one thread per fit: they have one order whatever the caller. */
#include "repeval/probe.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lbfgs.h"

struct re_mlp {
  int64_t d, H;
  int32_t K;
  re_mlp_options opt;
  double *mean, *scale; /* d: z = (x - mean) / scale */
  double *theta;        /* W1 (H x d), b1 (H), W2 (K x H), b2 (K), standardised coordinates */
  int64_t np;           /* parameters */
  uint8_t *present;     /* K: the class had rows in the last fit */
};

/* Standardised float64 copy of rows with their labels. */
typedef struct mlp_data {
  int64_t n;
  double *Z;
  int32_t *y;
} mlp_data;

re_mlp_options re_mlp_defaults(void) {
  re_mlp_options o;
  memset(&o, 0, sizeof o);
  o.hidden = 64;
  o.activation = RE_MLP_GELU;
  o.tol = 1e-5;
  o.ftol = 2.2e-9;
  o.max_iter = 500;
  o.memory = 10;
  o.standardize = 1;
  o.seed = 20261204;
  return o;
}

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* The seeded starting point: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) in parameter order. */
static void init_params(re_mlp *m) {
  uint64_t state = m->opt.seed;
  int64_t b1 = m->H * m->d + m->H; /* W1 and b1 have fan-in d, W2 and b2 fan-in H */
  for (int64_t k = 0; k < m->np; k++) {
    double u = (double)(splitmix64(&state) >> 11) * 0x1.0p-53;
    double fan = k < b1 ? (double)m->d : (double)m->H;
    m->theta[k] = (2.0 * u - 1.0) / sqrt(fan);
  }
}

static re_status check_rows(const re_probe_rows *r, int64_t d, int32_t K) {
  if (r->d != d || r->ld < d || r->n < 0 || (r->n > 0 && (!r->X || !r->y)))
    return re_err(RE_ESHAPE, "MLP probe: %s has %lld features (leading dimension %lld), expected %lld",
                  r->name ? r->name : "rows", (long long)r->d, (long long)r->ld, (long long)d);
  RE_TRY(re_probe_check_labels(r, K));
  for (int64_t i = 0; i < r->n; i++)
    for (int64_t j = 0; j < d; j++)
      if (!isfinite(r->X[i * r->ld + j]))
        return re_err(RE_EDATA, "%s: row %lld, column %lld is %s", r->name ? r->name : "rows", (long long)i,
                      (long long)j, isnan(r->X[i * r->ld + j]) ? "NaN" : "infinite");
  return RE_OK;
}

re_status re_mlp_create(const re_probe_rows *parts, int nparts, int32_t K, const re_mlp_options *opt,
                        re_mlp **out) {
  *out = NULL;
  if (nparts < 1 || !parts)
    return re_err(RE_EINVAL, "MLP probe: no training rows given");
  if (K < 2)
    return re_err(RE_EINVAL, "MLP probe: %d classes, need at least 2", (int)K);
  if (opt->hidden < 1 || opt->hidden > 65536 || (opt->activation != RE_MLP_GELU && opt->activation != RE_MLP_RELU) ||
      !(opt->tol >= 0) || !(opt->ftol >= 0) || opt->max_iter < 0 ||
      opt->memory < 1 || opt->memory > 1000)
    return re_err(RE_EINVAL, "MLP probe options: need 1 <= hidden <= 65536, tol >= 0, ftol >= 0, max_iter >= 0, "
                             "1 <= memory <= 1000 (got %d, %g, %g, %d, %d)",
                  opt->hidden, opt->tol, opt->ftol, opt->max_iter, opt->memory);
  int64_t d = parts[0].d, n = 0, np;
  if (d < 1)
    return re_err(RE_ESHAPE, "MLP probe: %lld features", (long long)d);
  for (int p = 0; p < nparts; p++) {
    RE_TRY(check_rows(&parts[p], d, K));
    n += parts[p].n;
  }
  if (n < 1)
    return re_err(RE_EINVAL, "MLP probe: no training rows");
  int64_t H = opt->hidden;
  RE_TRY(re_mul_i64(H, d + 1, &np));
  np += (int64_t)K * (H + 1);
  re_mlp *m = NULL;
  RE_TRY(re_calloc(1, sizeof *m, &m));
  m->d = d, m->H = H, m->K = K, m->opt = *opt, m->np = np;
  re_status st = re_malloc(d, sizeof(double), &m->mean);
  if (st == RE_OK)
    st = re_malloc(d, sizeof(double), &m->scale);
  if (st == RE_OK)
    st = re_malloc(np, sizeof(double), &m->theta);
  if (st == RE_OK)
    st = re_malloc(K, 1, &m->present);
  if (st != RE_OK) {
    re_mlp_destroy(&m);
    return st;
  }
  memset(m->present, 1, (size_t)K);
  /* mean and population standard deviation, two passes (as the logistic probe) */
  for (int64_t j = 0; j < d; j++)
    m->mean[j] = 0, m->scale[j] = 0;
  for (int p = 0; p < nparts; p++)
    for (int64_t i = 0; i < parts[p].n; i++)
      for (int64_t j = 0; j < d; j++)
        m->mean[j] += parts[p].X[i * parts[p].ld + j];
  for (int64_t j = 0; j < d; j++)
    m->mean[j] /= (double)n;
  for (int p = 0; p < nparts; p++)
    for (int64_t i = 0; i < parts[p].n; i++)
      for (int64_t j = 0; j < d; j++) {
        double c = parts[p].X[i * parts[p].ld + j] - m->mean[j];
        m->scale[j] += c * c;
      }
  for (int64_t j = 0; j < d; j++) {
    double var = m->scale[j] / (double)n, bound = (double)n * DBL_EPSILON * m->mean[j];
    m->scale[j] = !opt->standardize || var <= bound * bound ? 1.0 : sqrt(var);
    if (!opt->standardize)
      m->mean[j] = 0;
  }
  init_params(m);
  *out = m;
  return RE_OK;
}

void re_mlp_destroy(re_mlp **pm) {
  re_mlp *m = *pm;
  if (!m)
    return;
  free(m->mean);
  free(m->scale);
  free(m->theta);
  free(m->present);
  free(m);
  *pm = NULL;
}

int64_t re_mlp_param_count(const re_mlp *m) { return m->np; }

static void standardise(const re_mlp *m, const float *x, double *z) {
  for (int64_t j = 0; j < m->d; j++)
    z[j] = ((double)x[j] - m->mean[j]) / m->scale[j];
}

static re_status data_create(const re_mlp *m, const re_probe_rows *parts, int nparts, mlp_data *dt) {
  memset(dt, 0, sizeof *dt);
  for (int p = 0; p < nparts; p++) {
    RE_TRY(check_rows(&parts[p], m->d, m->K));
    dt->n += parts[p].n;
  }
  RE_TRY(re_malloc(dt->n * m->d + 1, sizeof(double), &dt->Z));
  RE_TRY(re_malloc(dt->n + 1, sizeof(int32_t), &dt->y));
  int64_t row = 0;
  for (int p = 0; p < nparts; p++)
    for (int64_t i = 0; i < parts[p].n; i++, row++) {
      standardise(m, parts[p].X + i * parts[p].ld, dt->Z + row * m->d);
      dt->y[row] = parts[p].y[i];
    }
  return RE_OK;
}

static void data_free(mlp_data *dt) {
  free(dt->Z);
  free(dt->y);
  memset(dt, 0, sizeof *dt);
}

/* Workspace of one evaluation on blocks of nb rows. */
typedef struct mlp_eval {
  const re_mlp *m;
  const mlp_data *data;
  double lambda;
  double *A, *Hh, *L, *dH; /* nb x H, nb x H, nb x K, nb x H */
} mlp_eval;

#define MLP_BLOCK 64

/* GELU(a) = a Phi(a) (the erf form) and ReLU, with their derivatives. */
#define SQRT1_2 0.70710678118654752440    /* 1 / sqrt(2) */
#define INV_SQRT_2PI 0.39894228040143267794 /* 1 / sqrt(2 pi) */

static double act(int kind, double a) {
  return kind == RE_MLP_RELU ? (a > 0 ? a : 0.0) : 0.5 * a * (1.0 + erf(a * SQRT1_2));
}

static double act_grad(int kind, double a) {
  if (kind == RE_MLP_RELU)
    return a > 0 ? 1.0 : 0.0;
  return 0.5 * (1.0 + erf(a * SQRT1_2)) + a * exp(-0.5 * a * a) * INV_SQRT_2PI;
}

/* Hidden layer and logits of nb standardised rows (absent classes -inf). */
static void forward_block(const re_mlp *m, const double *theta, const double *Zb, int64_t nb, double *A, double *Hh,
                          double *L) {
  int64_t H = m->H, d = m->d, K = m->K;
  const double *W1 = theta, *b1 = W1 + H * d, *W2 = b1 + H, *b2 = W2 + K * H;
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)H, (int)d, 1.0, Zb, (int)d, W1, (int)d, 0.0, A,
              (int)H);
  for (int64_t i = 0; i < nb; i++)
    for (int64_t h = 0; h < H; h++) {
      A[i * H + h] += b1[h];
      Hh[i * H + h] = act(m->opt.activation, A[i * H + h]);
    }
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)K, (int)H, 1.0, Hh, (int)H, W2, (int)H, 0.0, L,
              (int)K);
  for (int64_t i = 0; i < nb; i++)
    for (int64_t k = 0; k < K; k++)
      L[i * K + k] = m->present[k] ? L[i * K + k] + b2[k] : -INFINITY;
}

static re_status objective(const double *theta, double *f, double *g, void *ctx) {
  mlp_eval *ev = ctx;
  const re_mlp *m = ev->m;
  const mlp_data *dt = ev->data;
  int64_t H = m->H, d = m->d, K = m->K;
  const double *W1 = theta, *W2 = theta + H * d + H;
  double *gW1 = g, *gb1 = g + H * d, *gW2 = gb1 + H, *gb2 = gW2 + K * H;
  memset(g, 0, sizeof(double) * (size_t)m->np);
  double loss = 0;
  for (int64_t r0 = 0; r0 < dt->n; r0 += MLP_BLOCK) {
    int64_t nb = dt->n - r0 < MLP_BLOCK ? dt->n - r0 : MLP_BLOCK;
    const double *Zb = dt->Z + r0 * d;
    forward_block(m, theta, Zb, nb, ev->A, ev->Hh, ev->L);
    for (int64_t i = 0; i < nb; i++) { /* softmax - onehot, in place */
      double *z = ev->L + i * K, mx = -INFINITY, s = 0;
      for (int64_t k = 0; k < K; k++)
        mx = z[k] > mx ? z[k] : mx;
      for (int64_t k = 0; k < K; k++)
        s += m->present[k] ? exp(z[k] - mx) : 0.0;
      double lse = mx + log(s);
      int32_t y = dt->y[r0 + i];
      loss += lse - z[y];
      for (int64_t k = 0; k < K; k++)
        z[k] = m->present[k] ? exp(z[k] - lse) - (k == y) : 0.0;
    }
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)H, (int)nb, 1.0, ev->L, (int)K, ev->Hh, (int)H,
                1.0, gW2, (int)H);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nb, (int)H, (int)K, 1.0, ev->L, (int)K, W2, (int)H,
                0.0, ev->dH, (int)H);
    for (int64_t i = 0; i < nb; i++) {
      for (int64_t k = 0; k < K; k++)
        gb2[k] += ev->L[i * K + k];
      for (int64_t h = 0; h < H; h++) {
        ev->dH[i * H + h] *= act_grad(m->opt.activation, ev->A[i * H + h]); /* ReLU'(0) = 0 */
        gb1[h] += ev->dH[i * H + h];
      }
    }
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)H, (int)d, (int)nb, 1.0, ev->dH, (int)H, Zb, (int)d, 1.0,
                gW1, (int)d);
  }
  double inv = 1.0 / (double)dt->n, pen = 0;
  for (int64_t k = 0; k < m->np; k++)
    g[k] *= inv;
  for (int64_t k = 0; k < H * d; k++) {
    pen += W1[k] * W1[k];
    gW1[k] += ev->lambda * W1[k];
  }
  for (int64_t k = 0; k < K * H; k++) {
    pen += W2[k] * W2[k];
    gW2[k] += ev->lambda * W2[k];
  }
  *f = loss * inv + 0.5 * ev->lambda * pen;
  return isfinite(*f) ? RE_OK : re_err(RE_EUNDEFINED, "MLP probe: the objective is not finite");
}

/* Fit from the seeded start on prepared data. */
static re_status fit_data(re_mlp *m, const mlp_data *dt, double lambda, re_logreg_info *info) {
  if (!(lambda >= 0) || !isfinite(lambda))
    return re_err(RE_EINVAL, "MLP probe: lambda must be >= 0, got %g", lambda);
  int64_t H = m->H, K = m->K;
  int nclass = 0;
  memset(m->present, 0, (size_t)K);
  for (int64_t i = 0; i < dt->n; i++)
    m->present[dt->y[i]] = 1;
  for (int64_t k = 0; k < K; k++)
    nclass += m->present[k];
  if (nclass < 2)
    return re_err(RE_EUNDEFINED, "MLP probe: the training rows hold %d class%s, need at least 2", nclass,
                  nclass == 1 ? "" : "es");
  init_params(m);
  double *W2 = m->theta + H * m->d + H, *b2 = W2 + K * H;
  for (int64_t k = 0; k < K; k++)
    if (!m->present[k]) { /* absent classes: logit -inf, parameters zero and fixed */
      memset(W2 + k * H, 0, sizeof(double) * (size_t)H);
      b2[k] = 0;
    }
  mlp_eval ev = {m, dt, lambda, NULL, NULL, NULL, NULL};
  re_status st = re_malloc(MLP_BLOCK * H, sizeof(double), &ev.A);
  if (st == RE_OK)
    st = re_malloc(MLP_BLOCK * H, sizeof(double), &ev.Hh);
  if (st == RE_OK)
    st = re_malloc(MLP_BLOCK * K, sizeof(double), &ev.L);
  if (st == RE_OK)
    st = re_malloc(MLP_BLOCK * H, sizeof(double), &ev.dH);
  re_lbfgs_result res;
  memset(&res, 0, sizeof res);
  re_lbfgs_options lo = {m->opt.memory, m->opt.max_iter, m->opt.tol, m->opt.ftol, 20, 0};
  if (st == RE_OK)
    st = re_lbfgs_minimize(m->np, m->theta, objective, &ev, &lo, &res);
  free(ev.A);
  free(ev.Hh);
  free(ev.L);
  free(ev.dH);
  if (info) {
    info->lambda = lambda;
    info->iterations = res.iterations;
    info->evaluations = res.evaluations;
    info->f = res.f;
    info->grad_inf = res.grad_inf;
    info->converged = res.converged;
    info->stop = res.stop ? res.stop : "none";
  }
  return st;
}

re_status re_mlp_fit(re_mlp *m, const re_probe_rows *parts, int nparts, double lambda, re_logreg_info *info) {
  mlp_data dt;
  re_status st = data_create(m, parts, nparts, &dt);
  if (st == RE_OK)
    st = fit_data(m, &dt, lambda, info);
  data_free(&dt);
  return st;
}

/* Logits of rows [r0, r0 + nb) into L (nb x K). */
static void logits_rows(const re_mlp *m, const re_probe_rows *rows, int64_t r0, int64_t nb, double *Zb, double *A,
                        double *Hh, double *L) {
  for (int64_t i = 0; i < nb; i++)
    standardise(m, rows->X + (r0 + i) * rows->ld, Zb + i * m->d);
  forward_block(m, m->theta, Zb, nb, A, Hh, L);
}

static re_status over_rows(const re_mlp *m, const re_probe_rows *rows, re_probe_score *s, int32_t *pred) {
  if (rows->d != m->d || rows->ld < m->d)
    return re_err(RE_ESHAPE, "MLP probe: %s has %lld features, the model %lld", rows->name ? rows->name : "rows",
                  (long long)rows->d, (long long)m->d);
  if (s)
    RE_TRY(re_probe_check_labels(rows, m->K));
  int64_t H = m->H, K = m->K;
  double *Zb = NULL, *A = NULL, *Hh = NULL, *L = NULL;
  re_status st = re_malloc(MLP_BLOCK * m->d, sizeof(double), &Zb);
  if (st == RE_OK)
    st = re_malloc(MLP_BLOCK * H, sizeof(double), &A);
  if (st == RE_OK)
    st = re_malloc(MLP_BLOCK * H, sizeof(double), &Hh);
  if (st == RE_OK)
    st = re_malloc(MLP_BLOCK * K, sizeof(double), &L);
  for (int64_t r0 = 0; st == RE_OK && r0 < rows->n; r0 += MLP_BLOCK) {
    int64_t nb = rows->n - r0 < MLP_BLOCK ? rows->n - r0 : MLP_BLOCK;
    logits_rows(m, rows, r0, nb, Zb, A, Hh, L);
    for (int64_t i = 0; i < nb; i++) {
      const double *z = L + i * K;
      int32_t best = 0;
      for (int32_t k = 1; k < K; k++)
        if (z[k] > z[best])
          best = k;
      if (pred)
        pred[r0 + i] = best;
      if (!s)
        continue;
      int32_t y = rows->y[r0 + i];
      int64_t better = 0;
      double mx = z[best], sum = 0;
      for (int32_t k = 0; k < K; k++) {
        better += z[k] > z[y] || (z[k] == z[y] && k < y);
        sum += m->present[k] ? exp(z[k] - mx) : 0.0;
      }
      s->n += 1;
      s->top1 += better == 0;
      s->top5 += better < 5;
      s->loss += mx + log(sum) - z[y]; /* +inf for a class without training rows */
    }
  }
  free(Zb);
  free(A);
  free(Hh);
  free(L);
  return st;
}

re_status re_mlp_score(const re_mlp *m, const re_probe_rows *rows, re_probe_score *s) {
  return over_rows(m, rows, s, NULL);
}

re_status re_mlp_predict(const re_mlp *m, const re_probe_rows *rows, int32_t *pred) {
  return over_rows(m, rows, NULL, pred);
}

void re_mlp_weights(const re_mlp *m, double *out) {
  int64_t H = m->H, d = m->d, K = m->K;
  const double *W1 = m->theta, *b1 = W1 + H * d;
  /* W1 z + b1 with z = (x - mean) / scale: W1' = W1 / scale, b1' = b1 - W1' mean */
  for (int64_t h = 0; h < H; h++) {
    double b = b1[h];
    for (int64_t j = 0; j < d; j++) {
      out[h * d + j] = W1[h * d + j] / m->scale[j];
      b -= out[h * d + j] * m->mean[j];
    }
    out[H * d + h] = b;
  }
  memcpy(out + H * d + H, m->theta + H * d + H, sizeof(double) * (size_t)(K * H + K));
  for (int64_t k = 0; k < K; k++)
    if (!m->present[k])
      out[H * d + H + K * H + k] = -INFINITY;
}

void re_mlp_sweep_free(re_mlp_sweep *s) {
  free(s->points);
  s->points = NULL;
}

re_status re_mlp_sweep_run(const re_probe_rows *train, const re_probe_rows *val, const re_probe_rows *test,
                           int32_t K, const double *lambdas, int nlambdas, const re_mlp_options *opt,
                           re_mlp_sweep *out, re_mlp **model) {
  memset(out, 0, sizeof *out);
  if (model)
    *model = NULL;
  if (nlambdas < 1)
    return re_err(RE_EINVAL, "MLP probe: no lambda values");
  int have_val = val && val->n > 0;
  if (nlambdas > 1 && !have_val)
    return re_err(RE_EINVAL, "MLP probe: %d lambda values but no validation rows to choose between them", nlambdas);
  re_probe_rows both[2] = {*train, have_val ? *val : *train};
  int nboth = have_val ? 2 : 1;
  re_mlp *m = NULL;
  mlp_data dtr, dall;
  memset(&dtr, 0, sizeof dtr);
  memset(&dall, 0, sizeof dall);
  re_status st = re_mlp_create(both, nboth, K, opt, &m); /* standardised on the final training set */
  if (st == RE_OK)
    st = re_calloc(nlambdas, sizeof(re_logreg_point), &out->points);
  if (st == RE_OK)
    out->nlambdas = nlambdas;
  if (st == RE_OK && nlambdas > 1)
    st = data_create(m, train, 1, &dtr);
  for (int k = 0; st == RE_OK && nlambdas > 1 && k < nlambdas; k++) {
    re_logreg_point *pt = &out->points[k];
    st = fit_data(m, &dtr, lambdas[k], &pt->fit);
    if (st == RE_OK)
      st = re_mlp_score(m, val, &pt->val);
  }
  int sel = 0;
  for (int k = 1; st == RE_OK && k < nlambdas; k++) { /* most correct; then lower loss; then larger λ */
    const re_probe_score *a = &out->points[k].val, *b = &out->points[sel].val;
    if (a->top1 > b->top1 || (a->top1 == b->top1 && (a->loss < b->loss || (a->loss == b->loss && lambdas[k] > lambdas[sel]))))
      sel = k;
  }
  out->selected = sel;
  out->lambda = lambdas[sel];
  if (st == RE_OK)
    st = data_create(m, both, nboth, &dall);
  if (st == RE_OK)
    st = fit_data(m, &dall, lambdas[sel], &out->refit);
  if (st == RE_OK && nlambdas == 1)
    out->points[0].fit = out->refit;
  if (st == RE_OK && test && test->n > 0)
    st = re_mlp_score(m, test, &out->test);
  data_free(&dtr);
  data_free(&dall);
  if (st == RE_OK && model)
    *model = m;
  else
    re_mlp_destroy(&m);
  if (st != RE_OK)
    re_mlp_sweep_free(out);
  return st;
}
