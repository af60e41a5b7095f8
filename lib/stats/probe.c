/* Multinomial logistic-regression probe with an L2 penalty and its λ sweep (see probe.h).
 *
 * Loss and gradient by BLAS-3 on blocks of rows small enough to stay in cache between
 * the two products: logits Z = X_b W^T (dgemm), softmax on the b x K block, then
 * grad_W += (P - Y)^T X_b (dgemm), so X is streamed from memory once per evaluation.
 * The local sums [loss, grad_W, grad_b] go through the caller's reduction before the
 * 1/n scaling and the penalty are applied, so every rank sees the same f and gradient
 * and L-BFGS (lbfgs.c) takes the same steps everywhere. */
#include "repeval/probe.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lbfgs.h"
#include "vexp.h"

#define RE_PROBE_MAX_THREADS 64

struct re_logreg {
  int64_t d;
  int32_t K;
  re_logreg_options opt;
  double *mean, *scale; /* d: z = (x - mean) / scale */
  double *theta;        /* K d + K: W (K x d row-major), then b (K), standardised coordinates */
  uint8_t *present;     /* K: the class had rows in the last fit (all 1 before any) */
  int fitted;           /* parameters set by a fit (else a cold start) */
};

struct re_logreg_data {
  int64_t n, d;
  double *Z;  /* n x d, standardised */
  int32_t *y; /* n */
};

/* ---- shared small pieces ---------------------------------------------------------- */

static const char *rows_name(const re_probe_rows *r) { return r->name ? r->name : "rows"; }

void re_probe_score_merge(re_probe_score *a, const re_probe_score *b) {
  a->n += b->n;
  a->top1 += b->top1;
  a->top5 += b->top5;
  a->loss += b->loss;
}

re_status re_probe_score_reduce(re_probe_score *s, const re_reduce *reduce) {
  if (!reduce || !reduce->fn)
    return RE_OK;
  double buf[4] = {s->n, s->top1, s->top5, s->loss};
  RE_TRY(reduce->fn(buf, 4, reduce->ctx));
  s->n = buf[0], s->top1 = buf[1], s->top5 = buf[2], s->loss = buf[3];
  return RE_OK;
}

static re_status reduce_sum(const re_reduce *r, double *buf, int64_t len) {
  if (!r->fn)
    return RE_OK;
  re_status st = r->fn(buf, len, r->ctx);
  if (st != RE_OK)
    return re_err_context(st, "summing %lld values across ranks: ", (long long)len);
  return RE_OK;
}

void re_probe_default_grid(double *lambdas) {
  static const double grid[11] = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2, 1e3, 1e4};
  memcpy(lambdas, grid, sizeof grid);
}

re_status re_probe_log_grid(double lo, double hi, int n, double *lambdas) {
  if (!(lo > 0) || !(hi >= lo) || !isfinite(hi) || n < 1 || (n == 1 && lo != hi))
    return re_err(RE_EINVAL, "lambda grid: need 0 < lo <= hi (finite) and n >= 1 (n = 1 only with lo == hi); got "
                             "lo %g, hi %g, n %d",
                  lo, hi, n);
  double a = log10(lo), b = log10(hi);
  for (int i = 0; i < n; i++)
    lambdas[i] = n == 1 ? lo : pow(10.0, a + (b - a) * i / (n - 1));
  lambdas[0] = lo;
  lambdas[n - 1] = hi;
  return RE_OK;
}

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

re_status re_probe_split(int64_t n_global, double fraction, uint64_t seed, int64_t row0, int64_t n_local,
                         uint8_t *is_val) {
  if (!(fraction >= 0 && fraction < 1))
    return re_err(RE_EINVAL, "validation fraction must be in [0, 1), got %g", fraction);
  if (n_global < 0 || row0 < 0 || n_local < 0 || row0 > n_global - n_local)
    return re_err(RE_EINVAL, "validation split: rows [%lld, %lld + %lld) outside a set of %lld", (long long)row0,
                  (long long)row0, (long long)n_local, (long long)n_global);
  int64_t nval = (int64_t)floor(fraction * (double)n_global + 0.5);
  if (nval >= n_global && n_global > 0)
    return re_err(RE_EINVAL, "validation fraction %g of %lld rows leaves no training rows", fraction,
                  (long long)n_global);
  memset(is_val, 0, (size_t)n_local);
  if (nval == 0)
    return RE_OK;
  int64_t *perm;
  RE_TRY(re_malloc(n_global, sizeof(int64_t), &perm));
  for (int64_t i = 0; i < n_global; i++)
    perm[i] = i;
  uint64_t state = seed;
  for (int64_t i = n_global - 1; i >= 1; i--) {
    int64_t j = (int64_t)(splitmix64(&state) % (uint64_t)(i + 1));
    int64_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  for (int64_t k = 0; k < nval; k++)
    if (perm[k] >= row0 && perm[k] < row0 + n_local)
      is_val[perm[k] - row0] = 1;
  free(perm);
  return RE_OK;
}

re_status re_probe_check_labels(const re_probe_rows *rows, int32_t K) {
  if (rows->n > 0 && !rows->y)
    return re_err(RE_EINVAL, "%s: %lld rows without labels", rows_name(rows), (long long)rows->n);
  for (int64_t i = 0; i < rows->n; i++)
    if (rows->y[i] < 0 || rows->y[i] >= K)
      return re_err(RE_EDATA, "%s labels: index %lld is %d, expected a class in [0, %d)", rows_name(rows),
                    (long long)i, (int)rows->y[i], (int)K);
  return RE_OK;
}

static re_status check_rows(const re_probe_rows *r, int64_t d, int need_labels, int32_t K) {
  if (r->n < 0 || (r->n > 0 && !r->X))
    return re_err(RE_EINVAL, "%s: no data for %lld rows", rows_name(r), (long long)r->n);
  if (r->d != d)
    return re_err(RE_ESHAPE, "%s: %lld features, expected %lld", rows_name(r), (long long)r->d, (long long)d);
  if (r->n > 0 && r->ld < r->d)
    return re_err(RE_EINVAL, "%s: leading dimension %lld < %lld features", rows_name(r), (long long)r->ld,
                  (long long)r->d);
  if (need_labels)
    RE_TRY(re_probe_check_labels(r, K));
  return RE_OK;
}

static re_status check_finite_row(const re_probe_rows *r, int64_t i) {
  const float *x = r->X + i * r->ld;
  for (int64_t j = 0; j < r->d; j++)
    if (!isfinite(x[j]))
      return re_err(RE_EDATA, "%s: row %lld, column %lld is %s", rows_name(r), (long long)i, (long long)j,
                    isnan(x[j]) ? "NaN" : "infinite");
  return RE_OK;
}

/* Rank-based scoring of one row of logits z (K) against label y. */
static void score_row(const double *z, int32_t K, int32_t y, re_probe_score *s) {
  int64_t better = 0;
  for (int32_t k = 0; k < K; k++)
    if (z[k] > z[y] || (z[k] == z[y] && k < y))
      better++;
  s->n += 1;
  s->top1 += better == 0;
  s->top5 += better < 5;
}

/* Lowest index of the largest value. */
static int32_t argmax(const double *z, int32_t K) {
  int32_t best = 0;
  for (int32_t k = 1; k < K; k++)
    if (z[k] > z[best])
      best = k;
  return best;
}

/* ---- model and data --------------------------------------------------------------- */

re_logreg_options re_logreg_defaults(void) {
  re_logreg_options o;
  memset(&o, 0, sizeof o);
  o.tol = 1e-6;
  o.ftol = 2.2e-9;
  o.max_iter = 1000;
  o.memory = 10;
  o.standardize = 1;
  o.block_rows = 64;
  o.threads = 0;
  return o;
}

static re_status check_options(const re_logreg_options *o) {
  if (!(o->tol >= 0) || !(o->ftol >= 0) || o->max_iter < 0 || o->memory < 1 || o->memory > 1000 ||
      o->block_rows < 1 || o->threads < 0)
    return re_err(RE_EINVAL,
                  "logistic probe options: need tol >= 0, ftol >= 0, max_iter >= 0, 1 <= memory <= 1000, "
                  "block_rows >= 1 (got %g, %g, %d, %d, %lld)",
                  o->tol, o->ftol, o->max_iter, o->memory, (long long)o->block_rows);
  return RE_OK;
}

void re_logreg_destroy(re_logreg **plr) {
  re_logreg *lr = *plr;
  if (!lr)
    return;
  free(lr->mean);
  free(lr->scale);
  free(lr->theta);
  free(lr->present);
  free(lr);
  *plr = NULL;
}

int64_t re_logreg_dim(const re_logreg *lr) { return lr->d; }
int32_t re_logreg_classes(const re_logreg *lr) { return lr->K; }

re_status re_logreg_create(const re_probe_rows *parts, int nparts, int32_t K, const re_logreg_options *opt,
                           re_logreg **out) {
  re_status st = RE_OK;
  re_logreg *lr = NULL;
  double *acc = NULL;
  *out = NULL;
  if (nparts < 1 || !parts)
    return re_err(RE_EINVAL, "logistic probe: no training rows given");
  if (K < 2)
    return re_err(RE_EINVAL, "logistic probe: %d classes, need at least 2", (int)K);
  RE_TRY(check_options(opt));
  int64_t d = parts[0].d, P;
  if (d < 1)
    return re_err(RE_ESHAPE, "logistic probe: %lld features", (long long)d);
  for (int p = 0; p < nparts; p++)
    RE_TRY(check_rows(&parts[p], d, 1, K));
  RE_TRY(re_mul_i64(d + 1, K, &P));
  RE_CHECK(re_calloc(1, sizeof *lr, &lr));
  lr->d = d;
  lr->K = K;
  lr->opt = *opt;
  RE_CHECK(re_malloc(d, sizeof(double), &lr->mean));
  RE_CHECK(re_malloc(d, sizeof(double), &lr->scale));
  RE_CHECK(re_calloc(P, sizeof(double), &lr->theta));
  RE_CHECK(re_malloc(K, 1, &lr->present));
  memset(lr->present, 1, (size_t)K);

  /* pass 1: [n, sum x]; pass 2: sum (x - mean)^2 — two passes, no cancellation */
  RE_CHECK(re_calloc(d + 1, sizeof(double), &acc));
  for (int p = 0; p < nparts; p++) {
    const re_probe_rows *r = &parts[p];
    for (int64_t i = 0; i < r->n; i++) {
      RE_CHECK(check_finite_row(r, i));
      const float *x = r->X + i * r->ld;
      for (int64_t j = 0; j < d; j++)
        acc[1 + j] += x[j];
    }
    acc[0] += (double)r->n;
  }
  RE_CHECK(reduce_sum(&opt->reduce, acc, d + 1));
  double n = acc[0];
  if (!(n > 0)) {
    st = re_err(RE_EINVAL, "logistic probe: no training rows on any rank");
    goto done;
  }
  for (int64_t j = 0; j < d; j++)
    lr->mean[j] = acc[1 + j] / n;
  memset(acc, 0, (size_t)d * sizeof(double));
  for (int p = 0; p < nparts; p++) {
    const re_probe_rows *r = &parts[p];
    for (int64_t i = 0; i < r->n; i++) {
      const float *x = r->X + i * r->ld;
      for (int64_t j = 0; j < d; j++) {
        double c = x[j] - lr->mean[j];
        acc[j] += c * c;
      }
    }
  }
  RE_CHECK(reduce_sum(&opt->reduce, acc, d));
  for (int64_t j = 0; j < d; j++) {
    double var = acc[j] / n, bound = n * DBL_EPSILON * lr->mean[j];
    if (!opt->standardize) {
      lr->mean[j] = 0;
      lr->scale[j] = 1;
    } else {
      lr->scale[j] = (var > 0 && var > bound * bound) ? sqrt(var) : 1.0;
    }
  }
  *out = lr;
  lr = NULL;
done:
  free(acc);
  re_logreg_destroy(&lr);
  return st;
}

void re_logreg_data_destroy(re_logreg_data **pd) {
  re_logreg_data *dt = *pd;
  if (!dt)
    return;
  free(dt->Z);
  free(dt->y);
  free(dt);
  *pd = NULL;
}

/* Standardise one float row into z (d). */
static void standardise(const re_logreg *lr, const float *x, double *z) {
  for (int64_t j = 0; j < lr->d; j++)
    z[j] = (x[j] - lr->mean[j]) / lr->scale[j];
}

re_status re_logreg_data_create(const re_logreg *lr, const re_probe_rows *parts, int nparts,
                                re_logreg_data **out) {
  re_status st = RE_OK;
  re_logreg_data *dt = NULL;
  *out = NULL;
  int64_t n = 0, cells;
  for (int p = 0; p < nparts; p++) {
    RE_TRY(check_rows(&parts[p], lr->d, 1, lr->K));
    RE_TRY(re_add_i64(n, parts[p].n, &n));
  }
  RE_TRY(re_mul_i64(n > 0 ? n : 1, lr->d, &cells));
  RE_CHECK(re_calloc(1, sizeof *dt, &dt));
  dt->n = n;
  dt->d = lr->d;
  RE_CHECK(re_malloc(cells, sizeof(double), &dt->Z));
  RE_CHECK(re_malloc(n > 0 ? n : 1, sizeof(int32_t), &dt->y));
  int64_t row = 0;
  for (int p = 0; p < nparts; p++) {
    const re_probe_rows *r = &parts[p];
    for (int64_t i = 0; i < r->n; i++, row++) {
      RE_CHECK(check_finite_row(r, i));
      standardise(lr, r->X + i * r->ld, dt->Z + row * lr->d);
      dt->y[row] = r->y[i];
    }
  }
  *out = dt;
  dt = NULL;
done:
  re_logreg_data_destroy(&dt);
  return st;
}

/* ---- loss and gradient ------------------------------------------------------------ */

typedef struct eval_ctx {
  const re_logreg *lr;
  const double *Z; /* rows r0.. of the data */
  const int32_t *y;
  int64_t n;       /* local rows */
  double n_global; /* rows on all ranks */
  double lambda;
  const uint8_t *present;
  double *buf; /* 1 + K d + K */
  double *L;   /* block_rows x (K + 1) */
  double *cnt; /* K global class counts */
  int nthreads;
  double *wbuf, *wL; /* per thread: 1 + K d + K sums, block_rows x (K + 1) logits */
} eval_ctx;

/* Softmax of a row of logits in place -> probabilities; returns -log p[y] (y < 0: none).
 * Absent classes get probability 0. */
static double softmax_row(double *z, int32_t K, const uint8_t *present, int32_t y) {
  double m = -INFINITY;
  for (int32_t k = 0; k < K; k++)
    if (present[k] && z[k] > m)
      m = z[k];
  double s = 0;
  for (int32_t k = 0; k < K; k++)
    if (present[k])
      s += exp(z[k] - m);
  double lse = m + log(s);
  double loss = y >= 0 ? (present[y] ? lse - z[y] : INFINITY) : 0;
  for (int32_t k = 0; k < K; k++)
    z[k] = present[k] ? exp(z[k] - lse) : 0.0;
  return loss;
}

/* A block of logits L (nb x K, bias not yet added) -> the loss's gradient by the logits
 * (probabilities minus the one-hot label; absent classes 0), summed into gb (K); returns
 * the block's summed loss. One vector exp for the block: p = e^(z - m) / s, loss =
 * log s - (z_y - m), m the row's maximum over the present classes. t: nb scratch. */
static double softmax_grad_block(double *L, int64_t nb, int64_t K, const double *b, const uint8_t *present,
                                 const int32_t *y, double *t, double *gb) {
  for (int64_t i = 0; i < nb; i++) {
    double *z = L + i * K, m = -INFINITY;
    for (int64_t k = 0; k < K; k++) {
      z[k] += b[k];
      if (present[k] && z[k] > m)
        m = z[k];
    }
    t[i] = present[y[i]] ? z[y[i]] - m : -INFINITY;
    for (int64_t k = 0; k < K; k++)
      z[k] = present[k] ? z[k] - m : -INFINITY;
  }
  re_vexp(L, nb * K);
  double loss = 0;
  for (int64_t i = 0; i < nb; i++) {
    double *z = L + i * K, s = 0;
    for (int64_t k = 0; k < K; k++)
      s += z[k];
    loss += log(s) - t[i];
    double inv = 1.0 / s;
    for (int64_t k = 0; k < K; k++)
      z[k] *= inv;
    z[y[i]] -= 1.0;
    for (int64_t k = 0; k < K; k++)
      gb[k] += z[k];
  }
  return loss;
}

/* Sums [loss, grad_W, grad_b] over local rows [r0, r1) into buf, with L (block_rows x
 * (K + 1)). */
static void local_sums(const eval_ctx *c, const double *theta, int64_t r0, int64_t r1, double *buf, double *L) {
  const re_logreg *lr = c->lr;
  int64_t d = lr->d, K = lr->K, B = lr->opt.block_rows, KD = K * d;
  const double *W = theta, *b = theta + KD;
  double *gW = buf + 1, *gb = buf + 1 + KD;
  memset(buf, 0, (size_t)(1 + KD + K) * sizeof(double));
  for (int64_t i0 = r0; i0 < r1; i0 += B) {
    int64_t nb = r1 - i0 < B ? r1 - i0 : B;
    const double *Xb = c->Z + i0 * d;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)K, (int)d, 1.0, Xb, (int)d, W, (int)d, 0.0, L,
                (int)K);
    buf[0] += softmax_grad_block(L, nb, K, b, c->present, c->y + i0, L + B * K, gb);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)d, (int)nb, 1.0, L, (int)K, Xb, (int)d, 1.0,
                gW, (int)d);
  }
}

typedef struct worker {
  const eval_ctx *c;
  const double *theta;
  int64_t r0, r1;
  double *buf, *L;
} worker;

static void *worker_run(void *arg) {
  worker *w = arg;
  local_sums(w->c, w->theta, w->r0, w->r1, w->buf, w->L);
  return NULL;
}

static re_status eval_fn(const double *theta, double *f, double *g, void *vctx) {
  eval_ctx *c = vctx;
  const re_logreg *lr = c->lr;
  int64_t d = lr->d, K = lr->K, B = lr->opt.block_rows, KD = K * d, len = 1 + KD + K;
  const double *W = theta;
  double *buf = c->buf, *gW = buf + 1, *gb = buf + 1 + KD;
  if (c->nthreads <= 1) {
    local_sums(c, theta, 0, c->n, buf, c->L);
  } else {
    /* contiguous runs of whole blocks, one per thread; partial sums added in thread order */
    int T = c->nthreads;
    int64_t nblk = (c->n + B - 1) / B;
    worker w[RE_PROBE_MAX_THREADS];
    pthread_t th[RE_PROBE_MAX_THREADS];
    int started[RE_PROBE_MAX_THREADS];
    for (int t = 0; t < T; t++) {
      int64_t b0 = nblk * t / T, b1 = nblk * (t + 1) / T;
      w[t] = (worker){c, theta, b0 * B, b1 * B < c->n ? b1 * B : c->n, c->wbuf + t * len, c->wL + t * B * (K + 1)};
      started[t] = t > 0 && pthread_create(&th[t], NULL, worker_run, &w[t]) == 0;
    }
    worker_run(&w[0]);
    for (int t = 1; t < T; t++) {
      if (started[t])
        pthread_join(th[t], NULL);
      else
        worker_run(&w[t]); /* no thread available: same work, same order of the sum */
    }
    memcpy(buf, w[0].buf, (size_t)len * sizeof(double));
    for (int t = 1; t < T; t++)
      for (int64_t i = 0; i < len; i++)
        buf[i] += w[t].buf[i];
  }
  RE_TRY(reduce_sum(&lr->opt.reduce, buf, len));
  double inv = 1.0 / c->n_global, pen = 0;
  for (int64_t i = 0; i < KD; i++) {
    pen += W[i] * W[i];
    g[i] = gW[i] * inv + c->lambda * W[i];
  }
  for (int64_t k = 0; k < K; k++)
    g[KD + k] = c->present[k] ? gb[k] * inv : 0.0;
  *f = buf[0] * inv + 0.5 * c->lambda * pen;
  return RE_OK;
}

/* Global class counts cnt (K) of local rows y[0..n) -> presence mask and global n. */
static re_status class_presence(const re_logreg *lr, const int32_t *y, int64_t n, double *cnt, uint8_t *present,
                                double *n_global) {
  memset(cnt, 0, (size_t)lr->K * sizeof(double));
  for (int64_t i = 0; i < n; i++)
    cnt[y[i]] += 1;
  RE_TRY(reduce_sum(&lr->opt.reduce, cnt, lr->K));
  int npresent = 0;
  int32_t only = -1;
  *n_global = 0;
  for (int32_t k = 0; k < lr->K; k++) {
    present[k] = cnt[k] > 0;
    if (present[k])
      npresent++, only = k;
    *n_global += cnt[k];
  }
  if (*n_global == 0)
    return re_err(RE_EINVAL, "logistic probe: no training rows on any rank");
  if (npresent < 2)
    return re_err(RE_EUNDEFINED,
                  "logistic probe: all %.0f training rows have the same label (%d); a classifier needs at least "
                  "2 classes",
                  *n_global, (int)only);
  return RE_OK;
}

static void free_ctx(eval_ctx *c) {
  re_free(&c->buf);
  re_free(&c->L);
  re_free(&c->cnt);
  re_free(&c->wbuf);
  re_free(&c->wL);
}

/* Threads for the local rows: the option, else OpenBLAS's count (OPENBLAS_NUM_THREADS);
 * at least 16 blocks of rows per thread. */
static int threads_for(const re_logreg *lr, int64_t n) {
  int t = lr->opt.threads > 0 ? lr->opt.threads : openblas_get_num_threads();
  int64_t per = 16 * lr->opt.block_rows;
  if (t > RE_PROBE_MAX_THREADS)
    t = RE_PROBE_MAX_THREADS;
  if ((int64_t)t > n / per)
    t = (int)(n / per);
  return t < 1 ? 1 : t;
}

static re_status make_ctx(const re_logreg *lr, const re_logreg_data *data, int64_t r0, int64_t r1, double lambda,
                          uint8_t *present, eval_ctx *c) {
  memset(c, 0, sizeof *c);
  int64_t KD = lr->K * lr->d;
  if (data->d != lr->d)
    return re_err(RE_ESHAPE, "logistic probe: data has %lld features, the model %lld", (long long)data->d,
                  (long long)lr->d);
  if (!(lambda > 0) || !isfinite(lambda))
    return re_err(RE_EINVAL, "logistic probe: lambda must be a finite number > 0, got %g", lambda);
  c->lr = lr;
  c->Z = data->Z + r0 * lr->d;
  c->y = data->y + r0;
  c->n = r1 - r0;
  c->lambda = lambda;
  c->present = present;
  re_status st = RE_OK;
  RE_CHECK(re_malloc(lr->K, sizeof(double), &c->cnt));
  RE_CHECK(re_malloc(1 + KD + lr->K, sizeof(double), &c->buf));
  RE_CHECK(re_malloc(lr->opt.block_rows, (lr->K + 1) * (int64_t)sizeof(double), &c->L));
  c->nthreads = threads_for(lr, c->n);
  if (c->nthreads > 1) {
    RE_CHECK(re_malloc(c->nthreads, (1 + KD + lr->K) * (int64_t)sizeof(double), &c->wbuf));
    RE_CHECK(re_malloc(c->nthreads, lr->opt.block_rows * (lr->K + 1) * (int64_t)sizeof(double), &c->wL));
  }
  RE_CHECK(class_presence(lr, c->y, c->n, c->cnt, present, &c->n_global));
done:
  if (st != RE_OK)
    free_ctx(c);
  return st;
}

/* b_k = log(n_k / n) minus its mean over the present classes. */
static void log_priors(int32_t K, const double *cnt, double n, double *b) {
  double mean = 0;
  int np = 0;
  for (int32_t k = 0; k < K; k++)
    if (cnt[k] > 0)
      mean += log(cnt[k] / n), np++;
  mean /= np;
  for (int32_t k = 0; k < K; k++)
    b[k] = cnt[k] > 0 ? log(cnt[k] / n) - mean : 0.0;
}

/* Fit on local data rows [r0, r1) (collective). */
static re_status fit_range(re_logreg *lr, const re_logreg_data *data, int64_t r0, int64_t r1, double lambda,
                           re_logreg_info *info) {
  memset(info, 0, sizeof *info);
  info->lambda = lambda;
  eval_ctx c;
  RE_TRY(make_ctx(lr, data, r0, r1, lambda, lr->present, &c));
  int64_t K = lr->K, d = lr->d;
  for (int64_t k = 0; k < K; k++)
    if (!lr->present[k]) { /* no rows: keep this class's parameters at 0 */
      memset(lr->theta + k * d, 0, (size_t)d * sizeof(double));
      lr->theta[K * d + k] = 0;
    }
  if (!lr->fitted) { /* cold start: b at its minimiser for W = 0, the log class frequencies */
    log_priors(lr->K, c.cnt, c.n_global, lr->theta + K * d);
    lr->fitted = 1;
  }
  re_lbfgs_options lo = {lr->opt.memory, lr->opt.max_iter, lr->opt.tol, lr->opt.ftol, 20, K * d};
  re_lbfgs_result res;
  re_status st = re_lbfgs_minimize(K * (d + 1), lr->theta, eval_fn, &c, &lo, &res);
  free_ctx(&c);
  if (st != RE_OK)
    return re_err_context(st, "logistic probe at lambda = %g: ", lambda);
  info->iterations = res.iterations;
  info->evaluations = res.evaluations;
  info->f = res.f;
  info->grad_inf = res.grad_inf;
  info->converged = res.converged;
  info->stop = res.stop;
  return RE_OK;
}

re_status re_logreg_fit(re_logreg *lr, const re_logreg_data *data, double lambda, re_logreg_info *info) {
  return fit_range(lr, data, 0, data->n, lambda, info);
}

re_status re_logreg_objective(const re_logreg *lr, const re_logreg_data *data, double lambda, double *f) {
  re_status st = RE_OK;
  uint8_t *present = NULL;
  double *g = NULL;
  eval_ctx c = {0};
  RE_CHECK(re_malloc(lr->K, 1, &present));
  RE_CHECK(re_malloc(lr->K * (lr->d + 1), sizeof(double), &g));
  RE_CHECK(make_ctx(lr, data, 0, data->n, lambda, present, &c));
  RE_CHECK(eval_fn(lr->theta, f, g, &c));
done:
  free_ctx(&c);
  free(present);
  free(g);
  return st;
}

/* Logits of nb standardised rows Zb (nb x d) -> L (nb x K), bias added, absent -inf. */
static void logits(const re_logreg *lr, const double *Zb, int64_t nb, double *L) {
  int64_t d = lr->d, K = lr->K;
  const double *b = lr->theta + K * d;
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)K, (int)d, 1.0, Zb, (int)d, lr->theta, (int)d,
              0.0, L, (int)K);
  for (int64_t i = 0; i < nb; i++)
    for (int64_t k = 0; k < K; k++)
      L[i * K + k] = lr->present[k] ? L[i * K + k] + b[k] : -INFINITY;
}

/* Standardised blocks of raw rows, handed to `use` with the logits. */
static re_status over_blocks(const re_logreg *lr, const re_probe_rows *rows, int need_labels,
                             void (*use)(const re_logreg *, double *L, int64_t i0, int64_t nb, const re_probe_rows *,
                                         void *),
                             void *arg) {
  RE_TRY(check_rows(rows, lr->d, need_labels, lr->K));
  re_status st = RE_OK;
  int64_t B = lr->opt.block_rows;
  double *Zb = NULL, *L = NULL;
  RE_CHECK(re_malloc(B, lr->d * (int64_t)sizeof(double), &Zb));
  RE_CHECK(re_malloc(B, lr->K * (int64_t)sizeof(double), &L));
  for (int64_t r0 = 0; r0 < rows->n; r0 += B) {
    int64_t nb = rows->n - r0 < B ? rows->n - r0 : B;
    for (int64_t i = 0; i < nb; i++) {
      RE_CHECK(check_finite_row(rows, r0 + i));
      standardise(lr, rows->X + (r0 + i) * rows->ld, Zb + i * lr->d);
    }
    logits(lr, Zb, nb, L);
    use(lr, L, r0, nb, rows, arg);
  }
done:
  free(Zb);
  free(L);
  return st;
}

static void score_block(const re_logreg *lr, double *L, int64_t i0, int64_t nb, const int32_t *y,
                        re_probe_score *s) {
  int32_t K = lr->K;
  for (int64_t i = 0; i < nb; i++) {
    double *z = L + i * K;
    score_row(z, K, y[i0 + i], s);
    s->loss += softmax_row(z, K, lr->present, y[i0 + i]);
  }
}

static void use_score(const re_logreg *lr, double *L, int64_t i0, int64_t nb, const re_probe_rows *rows,
                      void *arg) {
  score_block(lr, L, i0, nb, rows->y, arg);
}

static void use_predict(const re_logreg *lr, double *L, int64_t i0, int64_t nb, const re_probe_rows *rows,
                        void *arg) {
  int32_t *pred = arg;
  for (int64_t i = 0; i < nb; i++)
    pred[i0 + i] = argmax(L + i * lr->K, lr->K);
}

re_status re_logreg_score(const re_logreg *lr, const re_probe_rows *rows, re_probe_score *s) {
  return over_blocks(lr, rows, 1, use_score, s);
}

re_status re_logreg_predict(const re_logreg *lr, const re_probe_rows *rows, int32_t *pred) {
  return over_blocks(lr, rows, 0, use_predict, pred);
}

/* Score local data rows [r0, r1) (already standardised). */
static re_status score_range(const re_logreg *lr, const re_logreg_data *data, int64_t r0, int64_t r1,
                             re_probe_score *s) {
  double *L;
  int64_t B = lr->opt.block_rows;
  RE_TRY(re_malloc(B, lr->K * (int64_t)sizeof(double), &L));
  for (int64_t i = r0; i < r1; i += B) {
    int64_t nb = r1 - i < B ? r1 - i : B;
    logits(lr, data->Z + i * lr->d, nb, L);
    score_block(lr, L, i, nb, data->y, s);
  }
  free(L);
  return RE_OK;
}

void re_logreg_weights(const re_logreg *lr, double *W, double *b) {
  int64_t d = lr->d, K = lr->K;
  for (int64_t k = 0; k < K; k++) {
    double off = 0;
    for (int64_t j = 0; j < d; j++) {
      W[k * d + j] = lr->present[k] ? lr->theta[k * d + j] / lr->scale[j] : 0.0;
      off += W[k * d + j] * lr->mean[j];
    }
    b[k] = lr->present[k] ? lr->theta[K * d + k] - off : -INFINITY;
  }
}

/* ---- sweep ------------------------------------------------------------------------ */

void re_logreg_sweep_free(re_logreg_sweep *s) {
  free(s->points);
  s->points = NULL;
  s->nlambdas = 0;
}

static int cmp_desc(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x < y) - (x > y);
}

re_status re_logreg_sweep_run(const re_probe_rows *train, const re_probe_rows *val, const re_probe_rows *test,
                              int32_t K, const double *lambdas, int nlambdas, const re_logreg_options *opt,
                              re_logreg_sweep *out, re_logreg **model) {
  re_status st = RE_OK;
  re_logreg *lr = NULL;
  re_logreg_data *data = NULL;
  double *lam = NULL, *thetas = NULL;
  memset(out, 0, sizeof *out);
  if (model)
    *model = NULL;
  if (!train)
    return re_err(RE_EINVAL, "logistic sweep: no training rows");
  if (nlambdas < 1 || !lambdas)
    return re_err(RE_EINVAL, "logistic sweep: empty lambda grid");
  re_probe_rows parts[2] = {*train, *train};
  int nparts = 1;
  if (val) {
    RE_TRY(check_rows(val, train->d, 1, K));
    parts[nparts++] = *val;
  }
  RE_CHECK(re_malloc(nlambdas, sizeof(double), &lam));
  for (int l = 0; l < nlambdas; l++) {
    if (!(lambdas[l] > 0) || !isfinite(lambdas[l])) {
      st = re_err(RE_EINVAL, "logistic sweep: lambda number %d is %g, expected a finite number > 0", l, lambdas[l]);
      goto done;
    }
    lam[l] = lambdas[l];
  }
  qsort(lam, (size_t)nlambdas, sizeof(double), cmp_desc);
  RE_CHECK(re_logreg_create(parts, nparts, K, opt, &lr));
  RE_CHECK(re_logreg_data_create(lr, parts, nparts, &data));
  int64_t ntr = train->n, nval = data->n - ntr, P = (int64_t)K * (lr->d + 1);
  double counts[2] = {(double)ntr, (double)nval};
  RE_CHECK(reduce_sum(&opt->reduce, counts, 2));
  if (counts[1] == 0 && nlambdas > 1) {
    st = re_err(RE_EINVAL, "logistic sweep: %d lambda values but no validation rows to choose among them", nlambdas);
    goto done;
  }
  RE_CHECK(re_malloc((int64_t)nlambdas * P, sizeof(double), &thetas));
  RE_CHECK(re_calloc(nlambdas, sizeof(re_logreg_point), &out->points));
  out->nlambdas = nlambdas;
  int best = 0;
  for (int l = 0; l < nlambdas; l++) {
    re_logreg_point *pt = &out->points[l];
    RE_CHECK(fit_range(lr, data, 0, ntr, lam[l], &pt->fit));
    memcpy(thetas + l * P, lr->theta, (size_t)P * sizeof(double));
    RE_CHECK(score_range(lr, data, ntr, data->n, &pt->val));
    RE_CHECK(re_probe_score_reduce(&pt->val, &opt->reduce));
    const re_probe_score *b = &out->points[best].val;
    /* most correct; ties: lower loss; then the larger λ (earlier in the descending order) */
    if (l > 0 && (pt->val.top1 > b->top1 || (pt->val.top1 == b->top1 && pt->val.loss < b->loss)))
      best = l;
  }
  out->selected = best;
  out->lambda = lam[best];
  if (counts[1] > 0) {
    memcpy(lr->theta, thetas + best * P, (size_t)P * sizeof(double));
    RE_CHECK(fit_range(lr, data, 0, data->n, lam[best], &out->refit));
  } else {
    out->refit = out->points[0].fit;
  }
  if (test) {
    RE_CHECK(re_logreg_score(lr, test, &out->test));
    RE_CHECK(re_probe_score_reduce(&out->test, &opt->reduce));
  }
  if (model) {
    *model = lr;
    lr = NULL;
  }
done:
  if (st != RE_OK)
    re_logreg_sweep_free(out);
  free(lam);
  free(thetas);
  re_logreg_data_destroy(&data);
  re_logreg_destroy(&lr);
  return st;
}
