/* repeval run, probes: logistic (λ sweep), ridge (λ path), MLP (λ sweep) and k-NN probes
 * of every selected tap, trained on one dataset and scored on another.
 *
 * During each dataset pass the tap outputs that a probe needs, and the labels, go
 * to shards of the embedding cache (the job's `cache:`, or a private one in the
 * state folder), one shard per batch. After the last pass the probe tasks — one
 * per (probe analysis, tap) — form a queue, longest first (estimated cost: rows x
 * features x λ grid), from which each rank takes the next task whenever it is free
 * (a shared counter on rank 0, MPI one-sided); the owner reads the tap's rows of
 * the training, validation and test sets from the shards in global sample order
 * and fits alone, so a probe's result does not depend on the number of ranks or on
 * which rank ran it. Rows go to rank 0 and into metrics.csv in task order. Memory on the owner: the rows of one task (n x d float32, plus the
 * solver's float64 copy), released before the next task. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/mpi_reduce.h"
#include "mpi/tags.h"
#include "out/progress.h"
#include "repeval/probe.h"
#include "run/analysis.h"

enum { PROBE_LOGISTIC = 0, PROBE_RIDGE = 1, PROBE_KNN = 2, PROBE_MLP = 3, NPROBE_KINDS = 4 };
static const char *const kind_names[NPROBE_KINDS] = {"logistic", "ridge", "knn", "mlp"};
enum { PROBE_PAR_AUTO = 0, PROBE_PAR_TASKS = 1, PROBE_PAR_DATA = 2 };

/* A probe: trained on its dataset, scored on test_dataset; validation from val_dataset
 * or a val_fraction split of the training set. */
typedef struct probe_opts {
  int probe_kind; /* PROBE_* */
  char *test_dataset, *val_dataset;
  double val_fraction;
  double *lambdas;
  int nlambdas;
  int standardize, knn_k, max_iter;
  double knn_temperature, tol, ftol;
  int probe_parallel; /* PROBE_PAR_*: one rank per task, or every rank on each task's rows */
  int hidden, activation; /* MLP: hidden units, re_mlp_activation */
} probe_opts;

static const probe_opts *po(const job_analysis *a) { return a->opts; }

static const char *const keys[] = {"kind", "train", "test", "val", "val_fraction", "grid", "lambdas", "standardize",
                                   "k", "temperature", "tol", "ftol", "max_iter", "parallel", "hidden", "activation",
                                   NULL};

#define PROBE_SPLIT_SEED 20261202u

static const char *probe_dir(const runner *r) { return r->plan.j->cache_dir ? r->plan.j->cache_dir : r->plan.probe_cache_dir; }

extern const an_kind an_probe;

/* Does probe analysis a use dataset d (as train, val or test)? */

static int tap_in_probe(const runner *r, const job_analysis *a, int t) {
  return run_label_selected(a, run_tap_ckpt(r, t)) && run_layer_selected(a, run_tap_layer(r, t));
}

/* On a pass over one of its datasets: the labels, and the taps it selects, go to the
 * cache shards (one row per sample). */
static re_status setup(runner *r, pass *p, an_run *ar) {
  job *j = r->plan.j;
  const job_analysis *an = ar->a;
  if (!re_dataset_get_info(p->ds)->has_labels)
    return re_cfg_error(j->datasets[p->d].src, RE_EINVAL, "dataset '%s' is used by a probe but has no labels",
                        j->datasets[p->d].name);
  p->probe_labels = 1;
  if (!p->probe_tap)
    RE_TRY(re_calloc(r->plan.ntaps, 1, &p->probe_tap));
  int any = 0;
  for (int t = 0; t < r->plan.ntaps; t++) {
    if (!tap_in_probe(r, an, t))
      continue;
    if (r->plan.taps[t].rps != 1)
      return re_cfg_error(an->src, RE_EINVAL, "probe '%s': layer '%s' is tapped with mode spatial; a probe needs "
                                              "one row per sample (tap it with :mean or :flatten)",
                          an->name, run_tap_layer(r, t));
    p->probe_tap[t] = 1;
    any = 1;
  }
  if (!any)
    return re_cfg_error(an->src, RE_EINVAL, "probe '%s': its 'checkpoints' and 'layers' select no tap", an->name);
  r->plan.ds_n[p->d] = p->n;
  r->plan.ds_chunk[p->d] = p->chunk;
  r->plan.ds_key[p->d] = p->data_key;
  return RE_OK;
}

re_status run_probe_labels(runner *r, pass *p, const int32_t *labels, int64_t s0, int64_t b) {
  if (!p->probe_labels)
    return RE_OK;
  float lab[4096];
  float *buf = lab;
  if (b > 4096)
    RE_TRY(re_malloc(b, sizeof(float), &buf));
  for (int64_t i = 0; i < b; i++)
    buf[i] = (float)labels[i];
  float *old = NULL;
  int have = 0;
  if (re_malloc(b, sizeof(float), &old) == RE_OK) { /* rewrite only a missing or different shard */
    have = run_cache_get(r, probe_dir(r), 0, p->data_key, "labels", s0, s0 + b, b, 1, 0, old) &&
           !memcmp(old, buf, sizeof(float) * (size_t)b);
    free(old);
  }
  if (!have)
    run_cache_put(r, probe_dir(r), 0, p->data_key, "labels", s0, s0 + b, b, 1, 0, buf);
  if (buf != lab)
    free(buf);
  return RE_OK;
}

re_status run_probe_feed(runner *r, pass *p, int t, const float *data, int64_t s0, int64_t b) {
  /* with the job's cache on, do_batch has stored (or found) the shard already */
  if (!p->probe_tap || !p->probe_tap[t] || r->plan.j->cache_dir)
    return RE_OK;
  char layer[512];
  const tapinfo *tp = &r->plan.taps[t];
  run_cache_layer_name(r, tp->model, tp->layer, layer, sizeof layer);
  run_cache_put(r, probe_dir(r), run_cache_ckpt_key(r, tp->model, tp->ckpt), p->data_key, layer, s0, s0 + b, b,
                tp->dim, 0, data);
  return RE_OK;
}

typedef struct split {
  float *X;
  int32_t *y;
  int64_t n;
} split;

static void split_free(split *s) {
  free(s->X);
  free(s->y);
  memset(s, 0, sizeof *s);
}

/* Rows [row0, row1) of dataset d for tap t, with their labels. */
static re_status load_split(runner *r, int d, int t, int64_t dim, int64_t row0, int64_t row1, split *s) {
  s->n = row1 - row0;
  RE_TRY(re_malloc(s->n > 0 ? s->n * dim : 1, sizeof(float), &s->X));
  RE_TRY(re_malloc(s->n > 0 ? s->n : 1, sizeof(int32_t), &s->y));
  RE_TRY(an_stored_rows(r, d, -1, row0, row1, NULL, s->y));
  return an_stored_rows(r, d, t, row0, row1, s->X, NULL);
}

/* Move the rows marked in is_val from *train to *val (order kept). */
static re_status carve_val(split *train, split *val, const uint8_t *is_val, int64_t dim) {
  int64_t nv = 0;
  for (int64_t i = 0; i < train->n; i++)
    nv += is_val[i];
  RE_TRY(re_malloc(nv > 0 ? nv * dim : 1, sizeof(float), &val->X));
  RE_TRY(re_malloc(nv > 0 ? nv : 1, sizeof(int32_t), &val->y));
  int64_t kt = 0, kv = 0;
  for (int64_t i = 0; i < train->n; i++) {
    split *dst = is_val[i] ? val : train;
    int64_t *k = is_val[i] ? &kv : &kt;
    memmove(dst->X + *k * dim, train->X + i * dim, sizeof(float) * (size_t)dim);
    dst->y[*k] = train->y[i];
    (*k)++;
  }
  train->n = kt;
  val->n = kv;
  return RE_OK;
}

static re_probe_rows rows_of(const split *s, int64_t dim, const char *name) {
  return (re_probe_rows){s->X, s->y, s->n, dim, dim, name};
}

static void score_rows(runner *r, const job_analysis *a, int t, const char *param, const char *prefix,
                       const re_probe_score *sc, int K, int with_loss) {
  char m[64];
  snprintf(m, sizeof m, "%s_top1", prefix);
  run_row(r, a->name, m, t, -1, po(a)->test_dataset, param, sc->n > 0 ? sc->top1 / sc->n : NAN,
          sc->n > 0 ? NULL : "no samples");
  if (K >= 10) {
    snprintf(m, sizeof m, "%s_top5", prefix);
    run_row(r, a->name, m, t, -1, po(a)->test_dataset, param, sc->n > 0 ? sc->top5 / sc->n : NAN,
            sc->n > 0 ? NULL : "no samples");
  }
  if (with_loss) {
    snprintf(m, sizeof m, "%s_loss", prefix);
    run_row(r, a->name, m, t, -1, po(a)->test_dataset, param, sc->n > 0 ? sc->loss / sc->n : NAN,
            sc->n > 0 ? NULL : "no samples");
  }
}

static re_status mpi_ordered_sum(double *buf, int64_t len, void *ctx);

/* 1 when the fit met the gradient tolerance or its objective stalled (relative
 * decrease below ftol: converged in f), 0 at max_iter or a failed line search. */
static double converged(const re_logreg_info *fit) {
  return fit->converged || !strcmp(fit->stop, "stall") ? 1.0 : 0.0;
}

/* The solver settings of the job a sweep takes (ftol < 0: the solver's default kept). */
static void solver_settings(const job_analysis *a, double *tol, double *ftol, int *max_iter, int *standardize) {
  *tol = po(a)->tol;
  if (po(a)->ftol >= 0)
    *ftol = po(a)->ftol;
  *max_iter = po(a)->max_iter;
  *standardize = po(a)->standardize;
}

/* The rows of one λ of a sweep: the validation score of the fit on train, its iterations
 * and convergence. */
static void point_rows(runner *r, const job_analysis *a, int t, const char *param, const re_logreg_point *pt,
                       int32_t K) {
  score_rows(r, a, t, param, "val", &pt->val, K, 1);
  run_row(r, a->name, "train_iterations", t, -1, po(a)->test_dataset, param, (double)pt->fit.iterations, NULL);
  run_row(r, a->name, "train_converged", t, -1, po(a)->test_dataset, param, converged(&pt->fit), NULL);
}

/* The rows of the refit on train + val at the selected λ: λ, the test score, the fit. */
static void refit_rows(runner *r, const job_analysis *a, int t, const char *base, double lambda,
                       const re_probe_score *test, const re_logreg_info *refit, int32_t K) {
  char param[512];
  snprintf(param, sizeof param, "%s lambda=%.6g selected refit=train+val", base, lambda);
  run_row(r, a->name, "lambda", t, -1, po(a)->test_dataset, param, lambda, NULL);
  score_rows(r, a, t, param, "test", test, K, 1);
  run_row(r, a->name, "refit_iterations", t, -1, po(a)->test_dataset, param, (double)refit->iterations, NULL);
  run_row(r, a->name, "refit_objective", t, -1, po(a)->test_dataset, param, refit->f, NULL);
  run_row(r, a->name, "refit_grad_inf", t, -1, po(a)->test_dataset, param, refit->grad_inf, NULL);
  run_row(r, a->name, "refit_converged", t, -1, po(a)->test_dataset, param, converged(refit), NULL);
}

static re_status run_logistic(runner *r, const job_analysis *a, int t, re_probe_rows *tr, re_probe_rows *va,
                              re_probe_rows *te, int32_t K, const char *base, int dp) {
  re_logreg_options opt = re_logreg_defaults();
  if (dp) {
    opt.reduce.fn = mpi_ordered_sum;
    opt.reduce.ctx = r;
  }
  solver_settings(a, &opt.tol, &opt.ftol, &opt.max_iter, &opt.standardize);
  re_logreg_sweep sw;
  memset(&sw, 0, sizeof sw);
  re_status st = re_logreg_sweep_run(tr, va, te, K, po(a)->lambdas, po(a)->nlambdas, &opt, &sw, NULL);
  if (st != RE_OK)
    return st;
  char param[512];
  for (int k = 0; k < sw.nlambdas; k++) {
    const re_logreg_point *pt = &sw.points[k];
    snprintf(param, sizeof param, "%s lambda=%.6g%s", base, pt->fit.lambda, k == sw.selected ? " selected" : "");
    point_rows(r, a, t, param, pt, K);
  }
  refit_rows(r, a, t, base, sw.lambda, &sw.test, &sw.refit, K);
  if (!sw.refit.converged && strcmp(sw.refit.stop, "stall")) /* a stall is a converged fit in f */
    run_warn(r, "probe '%s' on %s/%s/%s: the refit stopped by %s before the gradient tolerance", a->name,
             run_tap_model(r, t), run_tap_ckpt(r, t), run_tap_layer(r, t), sw.refit.stop);
  re_logreg_sweep_free(&sw);
  return RE_OK;
}

/* The MLP probe: a λ (weight decay) sweep from the seeded start, selection on the
 * validation rows, refit on train + validation (re_mlp_sweep_run), on one rank. */
static re_status run_mlp(runner *r, const job_analysis *a, int t, re_probe_rows *tr, re_probe_rows *va,
                         re_probe_rows *te, int32_t K, const char *base) {
  re_mlp_options opt = re_mlp_defaults();
  opt.hidden = po(a)->hidden;
  opt.activation = po(a)->activation;
  solver_settings(a, &opt.tol, &opt.ftol, &opt.max_iter, &opt.standardize);
  re_mlp_sweep sw;
  RE_TRY(re_mlp_sweep_run(tr, va, te, K, po(a)->lambdas, po(a)->nlambdas, &opt, &sw, NULL));
  char param[512];
  for (int k = 0; k < sw.nlambdas && po(a)->nlambdas > 1; k++) {
    const re_logreg_point *pt = &sw.points[k];
    snprintf(param, sizeof param, "%s lambda=%.6g%s", base, po(a)->lambdas[k], k == sw.selected ? " selected" : "");
    point_rows(r, a, t, param, pt, K);
  }
  refit_rows(r, a, t, base, sw.lambda, &sw.test, &sw.refit, K);
  re_mlp_sweep_free(&sw);
  return RE_OK;
}

static re_status ridge_path(const job_analysis *a, const re_probe_rows *const *parts, int nparts, int64_t dim,
                            int32_t K, const double *lambdas, int nl, re_ridge_path **out) {
  re_moments *m = NULL;
  RE_TRY(re_ridge_moments_create(dim, K, &m));
  re_status st = RE_OK;
  for (int k = 0; k < nparts && st == RE_OK; k++)
    if (parts[k]->n > 0)
      st = re_ridge_moments_add(m, parts[k]);
  if (st == RE_OK)
    st = re_ridge_path_create(m, 0, 1, lambdas, nl, po(a)->standardize, NULL, out);
  re_moments_destroy(&m);
  return st;
}

static re_status run_ridge(runner *r, const job_analysis *a, int t, re_probe_rows *tr, re_probe_rows *va,
                           re_probe_rows *te, int32_t K, const char *base) {
  int nl = po(a)->nlambdas;
  re_ridge_path *path = NULL;
  re_probe_score *val = NULL, test;
  memset(&test, 0, sizeof test);
  const re_probe_rows *parts[2] = {tr, va};
  re_status st = re_calloc(nl, sizeof(re_probe_score), &val);
  if (st == RE_OK)
    st = ridge_path(a, parts, 1, tr->d, K, po(a)->lambdas, nl, &path);
  if (st == RE_OK)
    st = re_ridge_path_score(path, va, val);
  re_ridge_path_destroy(&path);
  int sel = st == RE_OK ? re_ridge_select(val, po(a)->lambdas, nl) : 0;
  if (st == RE_OK)
    st = ridge_path(a, parts, 2, tr->d, K, &po(a)->lambdas[sel], 1, &path);
  if (st == RE_OK)
    st = re_ridge_path_score(path, te, &test);
  re_ridge_path_destroy(&path);
  char param[512];
  for (int k = 0; st == RE_OK && k < nl; k++) {
    snprintf(param, sizeof param, "%s lambda=%.6g%s", base, po(a)->lambdas[k], k == sel ? " selected" : "");
    score_rows(r, a, t, param, "val", &val[k], K, 0);
  }
  if (st == RE_OK) {
    snprintf(param, sizeof param, "%s lambda=%.6g selected refit=train+val", base, po(a)->lambdas[sel]);
    run_row(r, a->name, "lambda", t, -1, po(a)->test_dataset, param, po(a)->lambdas[sel], NULL);
    score_rows(r, a, t, param, "test", &test, K, 0);
  }
  free(val);
  return st;
}

static re_status run_knn(runner *r, const job_analysis *a, int t, re_probe_rows *tr, re_probe_rows *te, int32_t K,
                         const char *base) {
  re_knn_options opt = re_knn_defaults();
  opt.k = po(a)->knn_k;
  opt.temperature = po(a)->knn_temperature;
  re_knn *knn = NULL;
  re_probe_score sc;
  memset(&sc, 0, sizeof sc);
  re_status st = re_knn_create(tr, K, &opt, &knn);
  if (st == RE_OK)
    st = re_knn_score(knn, te, &sc);
  re_knn_destroy(&knn);
  if (st != RE_OK)
    return st;
  char param[512];
  snprintf(param, sizeof param, "%s k=%d T=%g", base, opt.k, opt.temperature);
  score_rows(r, a, t, param, "test", &sc, K, 0);
  return RE_OK;
}

/* Sum buf across ranks in rank order (gather to rank 0, add, broadcast), so every
 * rank gets the same bits: the reduction callback of data-parallel probes. */
static re_status mpi_ordered_sum(double *buf, int64_t len, void *ctx) {
  const runner *r = ctx;
  if (r->comm.size == 1)
    return RE_OK;
  if (len > (1 << 28))
    return re_err(RE_EINVAL, "probe: reduction of %lld doubles is too large", (long long)len);
  double *all = NULL;
  re_status st = RE_OK;
  if (r->comm.rank == 0)
    st = re_malloc(len * r->comm.size, sizeof(double), &all);
  MPI_Gather(buf, (int)len, MPI_DOUBLE, all, (int)len, MPI_DOUBLE, 0, r->comm.comm);
  if (r->comm.rank == 0 && all)
    for (int64_t k = 0; k < len; k++) {
      double v = all[k];
      for (int q = 1; q < r->comm.size; q++)
        v += all[(int64_t)q * len + k];
      buf[k] = v;
    }
  free(all);
  MPI_Bcast(buf, (int)len, MPI_DOUBLE, 0, r->comm.comm);
  return st;
}

static int rows_finite(const split *s, int64_t dim) {
  for (int64_t e = 0; e < s->n * dim; e++)
    if (!isfinite(s->X[e]))
      return 0;
  return 1;
}

/* One task: load, split, fit, rows into r->rep.metrics. On its owner alone, or with
 * `dp` on every rank (collective): each rank holds a contiguous share of every
 * split's rows and the logistic loss and gradient are summed across ranks. */
static re_status probe_task(runner *r, const job_analysis *a, int t, int dp) {
  job *j = r->plan.j;
  int dtr = job_dataset_index(j, a->dataset), dte = job_dataset_index(j, po(a)->test_dataset);
  int dva = po(a)->val_dataset ? job_dataset_index(j, po(a)->val_dataset) : -1;
  int64_t dim = r->plan.taps[t].dim;
  int R = dp ? r->comm.size : 1, me = dp ? r->comm.rank : 0;
  split tr = {0}, va = {0}, te = {0};
  uint8_t *is_val = NULL;
  int64_t lo, hi;
  re_shard_range(r->plan.ds_n[dtr], me, R, &lo, &hi);
  int64_t tr0 = lo;
  re_status st = load_split(r, dtr, t, dim, lo, hi, &tr);
  re_shard_range(r->plan.ds_n[dte], me, R, &lo, &hi);
  if (st == RE_OK)
    st = load_split(r, dte, t, dim, lo, hi, &te);
  if (st == RE_OK && dva >= 0) {
    re_shard_range(r->plan.ds_n[dva], me, R, &lo, &hi);
    st = load_split(r, dva, t, dim, lo, hi, &va);
  } else if (st == RE_OK && po(a)->probe_kind != PROBE_KNN) {
    st = re_malloc(tr.n > 0 ? tr.n : 1, 1, &is_val);
    if (st == RE_OK) /* the split is defined on global rows: the same for any R */
      st = re_probe_split(r->plan.ds_n[dtr], po(a)->val_fraction, PROBE_SPLIT_SEED, tr0, tr.n, is_val);
    if (st == RE_OK)
      st = carve_val(&tr, &va, is_val, dim);
  }
  int32_t K = 0;
  for (int64_t i = 0; st == RE_OK && i < tr.n; i++)
    K = tr.y[i] + 1 > K ? tr.y[i] + 1 : K;
  for (int64_t i = 0; st == RE_OK && i < va.n; i++)
    K = va.y[i] + 1 > K ? va.y[i] + 1 : K;
  for (int64_t i = 0; st == RE_OK && i < te.n; i++)
    K = te.y[i] + 1 > K ? te.y[i] + 1 : K;
  int bad = st == RE_OK && !(rows_finite(&tr, dim) && rows_finite(&va, dim) && rows_finite(&te, dim));
  if (dp) { /* agree before the collective fit: every rank fits or none */
    int mk = K, gk = 0, gb = 0;
    MPI_Allreduce(&mk, &gk, 1, MPI_INT, MPI_MAX, r->comm.comm);
    MPI_Allreduce(&bad, &gb, 1, MPI_INT, MPI_MAX, r->comm.comm);
    K = gk;
    bad = gb;
    st = re_mpi_agree(r->comm.comm, st);
  }
  char base[256];
  static const char *kinds[] = {"logistic", "ridge", "knn", "mlp"};
  if (po(a)->probe_kind == PROBE_MLP)
    snprintf(base, sizeof base, "mlp hidden=%d %s train=%s", po(a)->hidden,
             po(a)->activation == RE_MLP_RELU ? "relu" : "gelu", a->dataset);
  else
    snprintf(base, sizeof base, "%s train=%s%s", kinds[po(a)->probe_kind], a->dataset, dp ? " data-parallel" : "");
  re_probe_rows rtr = rows_of(&tr, dim, "train"), rva = rows_of(&va, dim, "validation"),
                rte = rows_of(&te, dim, "test");
  if (st == RE_OK && bad)
    st = re_err(RE_EDATA, "the features hold NaN or Inf");
  if (st == RE_OK && K < 2)
    st = re_err(RE_EUNDEFINED, "the training labels hold a single class");
  if (st == RE_OK) {
    if (po(a)->probe_kind == PROBE_LOGISTIC)
      st = run_logistic(r, a, t, &rtr, &rva, &rte, K, base, dp);
    else if (po(a)->probe_kind == PROBE_RIDGE)
      st = run_ridge(r, a, t, &rtr, &rva, &rte, K, base);
    else if (po(a)->probe_kind == PROBE_MLP)
      st = run_mlp(r, a, t, &rtr, &rva, &rte, K, base);
    else
      st = run_knn(r, a, t, &rtr, &rte, K, base);
  }
  if (st == RE_EUNDEFINED || st == RE_EDATA) {
    /* a property of this tap's features or labels: a row marked undefined, not a failed job */
    run_row(r, a->name, "test_top1", t, -1, po(a)->test_dataset, base, NAN, re_errmsg());
    st = RE_OK;
  }
  if (st != RE_OK)
    re_err_context(st, "probe '%s', %s/%s/%s: ", a->name, run_tap_model(r, t), run_tap_ckpt(r, t),
                   run_tap_layer(r, t));
  free(is_val);
  split_free(&tr);
  split_free(&va);
  split_free(&te);
  return st;
}

/* Data-parallel when asked, or (auto) when a logistic task's rows would not fit
 * comfortably on one rank: rows x (4 bytes float32 + 8 bytes solver copy) beyond
 * REPEVAL_PROBE_TASK_MB (default 2048). */
static int data_parallel(const runner *r, const job_analysis *a, int t) {
  if (po(a)->probe_kind != PROBE_LOGISTIC || po(a)->probe_parallel == PROBE_PAR_TASKS)
    return 0;
  if (po(a)->probe_parallel == PROBE_PAR_DATA)
    return 1;
  const char *env = getenv("REPEVAL_PROBE_TASK_MB");
  double budget = (env ? atof(env) : 2048.0) * 1048576.0;
  int dtr = job_dataset_index(r->plan.j, a->dataset);
  return r->comm.size > 1 && 12.0 * (double)r->plan.ds_n[dtr] * (double)r->plan.taps[t].dim > budget;
}

/* A probe task: one (probe analysis, tap), its estimated cost, where it runs and its rows. */
typedef struct ptask {
  const job_analysis *an;
  int t, owner, dp, failed;
  double cost;
  char *rows, *warns; /* its metrics rows and its warnings (run_warn's lines) */
  size_t len, wlen;
} ptask;

/* Relative cost of a task, to balance the ranks: the solver's work grows with the
 * training rows times the features, times the λ grid (logistic, ridge) or the test
 * rows (k-NN). Only the balance depends on it, never a result. */
static double task_cost(const runner *r, const job_analysis *a, int t) {
  const probe_opts *o = po(a);
  double n = (double)r->plan.ds_n[job_dataset_index(r->plan.j, a->dataset)], d = (double)r->plan.taps[t].dim;
  if (o->probe_kind == PROBE_KNN)
    return n * d * (double)r->plan.ds_n[job_dataset_index(r->plan.j, o->test_dataset)];
  return n * d * (1.0 + (o->nlambdas > 0 ? o->nlambdas : 8));
}

static int by_cost(const void *x, const void *y) {
  const ptask *a = *(const ptask *const *)x, *b = *(const ptask *const *)y;
  if (a->cost != b->cost)
    return a->cost < b->cost ? 1 : -1;
  return a < b ? -1 : a > b;
}

/* Run one task here, its rows and warnings into the task (not into the metrics and the
 * manifest: rank 0 adds them in task order, wherever the task ran). */
static re_status task_here(runner *r, ptask *k, int dp) {
  FILE *keep = r->rep.metrics, *f = open_memstream(&k->rows, &k->len), *w = open_memstream(&k->warns, &k->wlen);
  if (!f || !w) {
    if (f)
      fclose(f);
    if (w)
      fclose(w);
    return re_err(RE_ENOMEM, "probe rows");
  }
  r->rep.metrics = f;
  r->rep.task_warn = w;
  re_status st = probe_task(r, k->an, k->t, dp);
  fclose(f);
  fclose(w);
  r->rep.metrics = keep;
  r->rep.task_warn = NULL;
  return st;
}

/* The tasks that are not data-parallel, longest first (ties in task order): the queue
 * every rank takes from; *m of them. */
static re_status queue_of(ptask *tasks, int n, ptask ***order, int *m) {
  *m = 0;
  RE_TRY(re_calloc(n > 0 ? n : 1, sizeof **order, order));
  for (int k = 0; k < n; k++)
    if (!tasks[k].dp)
      (*order)[(*m)++] = &tasks[k];
  qsort(*order, (size_t)*m, sizeof **order, by_cost);
  return RE_OK;
}

/* Collective: run the queue (m tasks), each rank taking the next task when it is free
 * from a counter on rank 0 (MPI_Fetch_and_op, passive target: the actual times of
 * the fits vary by more than any estimate), until it is empty or this rank failed;
 * then every rank knows each task's owner. *done counts rank 0's progress. */
static re_status run_queue(runner *r, ptask **order, int m, ptask *tasks, int n, progress *pr, int done0,
                           re_status *local) {
  mpi_counter q = {MPI_WIN_NULL};
  re_status st = r->comm.size > 1 ? mpi_counter_create(r->comm.comm, r->comm.rank == 0, 0, &q) : RE_OK;
  if (st != RE_OK)
    re_err_context(st, "probes, the task queue: ");
  int *owner = NULL;
  if (st == RE_OK)
    st = re_malloc(n > 0 ? n : 1, sizeof(int), &owner);
  for (int k = 0; k < n && owner; k++)
    owner[k] = -1;
  st = re_mpi_agree(r->comm.comm, st);
  for (int64_t next = 0, seq = 0; st == RE_OK && *local == RE_OK;) {
    next = q.win != MPI_WIN_NULL ? mpi_counter_next(&q, 0) : seq++;
    if (next >= m)
      break;
    ptask *tk = order[next];
    *local = task_here(r, tk, 0);
    tk->failed = *local != RE_OK;
    owner[tk - tasks] = r->comm.rank;
    if (r->comm.rank == 0)
      progress_update(pr, done0 + (int)((double)(next + 1) / m * (n - done0)), 0);
  }
  mpi_counter_free(&q);
  if (st == RE_OK) /* every owner, everywhere (a task nobody ran: -1, after a failure) */
    MPI_Allreduce(MPI_IN_PLACE, owner, n, MPI_INT, MPI_MAX, r->comm.comm);
  for (int k = 0; st == RE_OK && k < n; k++)
    if (!tasks[k].dp) {
      tasks[k].owner = owner[k] >= 0 ? owner[k] : 0;
      if (owner[k] < 0) /* not run: rank 0 reports it with the failure that stopped the queue */
        tasks[k].failed = r->comm.rank == 0;
    }
  free(owner);
  return st;
}

/* One buffer of a task (its rows or its warnings) from its owner to rank 0: the length
 * (-1: the task failed) then the bytes. 1 when the task failed (both ends), -1 on rank 0
 * when the bytes could not be kept (no memory; received and dropped), else 0. */
static int ship(runner *r, int owner, int failed, char **buf, size_t *len) {
  if (r->comm.rank == owner) {
    long long n = failed ? -1 : (long long)*len;
    MPI_Send(&n, 1, MPI_LONG_LONG, 0, TAG_PROBE_ROWS_LEN, r->comm.comm);
    if (n > 0)
      MPI_Send(*buf, (int)n, MPI_CHAR, 0, TAG_PROBE_ROWS, r->comm.comm);
    return n < 0; /* a failed task sends nothing more */
  }
  if (r->comm.rank != 0)
    return 0;
  long long n = 0;
  MPI_Recv(&n, 1, MPI_LONG_LONG, owner, TAG_PROBE_ROWS_LEN, r->comm.comm, MPI_STATUS_IGNORE);
  if (n < 0 || n >= (1LL << 30))
    return 1;
  free(*buf);
  *buf = NULL;
  *len = 0;
  if (n > 0 && re_malloc(n, 1, buf) == RE_OK) {
    MPI_Recv(*buf, (int)n, MPI_CHAR, owner, TAG_PROBE_ROWS, r->comm.comm, MPI_STATUS_IGNORE);
    *len = (size_t)n;
    return 0;
  }
  char c[4096]; /* no memory for them: receive to drop */
  for (long long got = 0; got < n; got += (long long)sizeof c) {
    int part = (int)(n - got < (long long)sizeof c ? n - got : (long long)sizeof c);
    MPI_Recv(c, part, MPI_CHAR, owner, TAG_PROBE_ROWS, r->comm.comm, MPI_STATUS_IGNORE);
  }
  return n > 0 ? -1 : 0;
}

/* Rank 0 gets every task's rows and warnings, in task order; an owner's failure
 * reaches it as -1. */
static re_status gather_rows(runner *r, ptask *tasks, int n, re_status st) {
  for (int k = 0; k < n; k++) {
    ptask *tk = &tasks[k];
    if (tk->dp || tk->owner == 0)
      continue;
    int got = ship(r, tk->owner, tk->failed, &tk->rows, &tk->len);
    if (got == 0)
      got = ship(r, tk->owner, tk->failed, &tk->warns, &tk->wlen);
    if (r->comm.rank != 0)
      continue;
    if (got > 0) {
      tk->failed = 1;
      if (st == RE_OK)
        st = re_err(RE_EMPI, "probe task %d failed on rank %d (see its message)", k, tk->owner);
    } else if (got < 0) {
      tk->failed = 1;
      if (st == RE_OK)
        st = re_err(RE_ENOMEM, "probe rows of task %d", k);
    }
  }
  return st;
}

/* The probe tasks, one per (probe analysis, tap) in job order. Data-parallel tasks run
 * first, every rank on each; the others are spread over the ranks by estimated cost
 * (longest first) and run at once, each whole on its owner; rows reach metrics.csv
 * in task order whatever ran where. */
static re_status run_probes(runner *r) {
  job *j = r->plan.j;
  int n = 0;
  ptask *tasks = NULL;
  re_status st = RE_OK;
  for (int a = 0; a < j->nanalyses && st == RE_OK; a++)
    for (int t = 0; t < r->plan.ntaps && st == RE_OK; t++)
      if (j->analyses[a].kind == &an_probe && tap_in_probe(r, &j->analyses[a], t)) {
        st = re_realloc(&tasks, n + 1, sizeof *tasks);
        if (st == RE_OK)
          tasks[n++] = (ptask){&j->analyses[a], t, 0, data_parallel(r, &j->analyses[a], t), 0,
                               task_cost(r, &j->analyses[a], t), NULL, NULL, 0, 0};
      }
  st = re_mpi_agree(r->comm.comm, st);
  if (st != RE_OK || n == 0) {
    free(tasks);
    return st;
  }
  progress pr;
  progress_start(&pr, "probes", n, r->comm.rank == 0 && !r->plan.quiet);
  int done = 0, nund0 = r->rep.nundefined;
  for (int k = 0; k < n; k++) {
    if (!tasks[k].dp)
      continue;
    st = re_mpi_agree(r->comm.comm, st); /* a failed task elsewhere: nobody starts this one */
    re_status ts = st == RE_OK ? task_here(r, &tasks[k], 1) : st;
    st = re_mpi_agree(r->comm.comm, ts);
    if (r->comm.rank == 0)
      progress_update(&pr, ++done, 0);
  }
  ptask **order = NULL;
  int m = 0;
  if (st == RE_OK)
    st = queue_of(tasks, n, &order, &m);
  st = re_mpi_agree(r->comm.comm, st);
  re_status local = st;
  if (st == RE_OK)
    st = run_queue(r, order, m, tasks, n, &pr, done, &local);
  free(order);
  if (st == RE_OK)
    st = gather_rows(r, tasks, n, local);
  progress_finish(&pr, 0);
  for (int k = 0; k < n && r->comm.rank == 0; k++)
    if (!tasks[k].failed) {
      if (tasks[k].rows && r->rep.metrics)
        fwrite(tasks[k].rows, 1, tasks[k].len, r->rep.metrics);
      run_warn_replay(r, tasks[k].warns, tasks[k].warns ? tasks[k].wlen : 0);
    }
  for (int k = 0; k < n; k++) {
    free(tasks[k].rows);
    free(tasks[k].warns);
  }
  free(tasks);
  /* rows marked undefined on other ranks count in the manifest too */
  int und = r->rep.nundefined - nund0, all = 0;
  MPI_Reduce(&und, &all, 1, MPI_INT, MPI_SUM, 0, r->comm.comm);
  if (r->comm.rank == 0)
    r->rep.nundefined = nund0 + all;
  return re_mpi_agree(r->comm.comm, st);
}

/* hidden and activation (MLP probes only), parallel. */
static re_status parse_mlp_parallel(probe_opts *o, const re_cfg *c) {
  int mlp = o->probe_kind == PROBE_MLP;
  int64_t hidden = 64;
  RE_TRY(re_cfg_get_int(c, "hidden", &hidden));
  if (hidden < 1 || hidden > 65536 || (!mlp && re_cfg_get(c, "hidden")))
    return re_cfg_error(re_cfg_get(c, "hidden"), RE_EINVAL, "hidden (MLP probes only) must be in [1, 65536]");
  o->hidden = (int)hidden;
  const char *act = "gelu";
  RE_TRY(re_cfg_get_string(c, "activation", &act));
  if ((strcmp(act, "gelu") && strcmp(act, "relu")) || (!mlp && re_cfg_get(c, "activation")))
    return re_cfg_error(re_cfg_get(c, "activation"), RE_EINVAL, "activation (MLP probes only) must be gelu or relu");
  o->activation = strcmp(act, "relu") ? RE_MLP_GELU : RE_MLP_RELU;
  const char *par = "auto";
  RE_TRY(re_cfg_get_string(c, "parallel", &par));
  if (!strcmp(par, "auto"))
    o->probe_parallel = PROBE_PAR_AUTO;
  else if (!strcmp(par, "tasks"))
    o->probe_parallel = PROBE_PAR_TASKS;
  else if (!strcmp(par, "data") && o->probe_kind == PROBE_LOGISTIC)
    o->probe_parallel = PROBE_PAR_DATA;
  else
    return re_cfg_error(re_cfg_get(c, "parallel"), RE_EINVAL,
                        "parallel must be auto, tasks or data (data: logistic probes only)");
  return RE_OK;
}

/* The solvers' settings: val_fraction, standardize, k, max_iter, temperature, tol, ftol. */
static re_status parse_solver(probe_opts *o, const re_cfg *c) {
  int mlp = o->probe_kind == PROBE_MLP;
  o->val_fraction = 0.1;
  RE_TRY(re_cfg_get_double(c, "val_fraction", &o->val_fraction));
  if (!(o->val_fraction > 0 && o->val_fraction < 1))
    return re_cfg_error(re_cfg_get(c, "val_fraction"), RE_EINVAL, "val_fraction must be in (0, 1)");
  o->standardize = 1;
  RE_TRY(re_cfg_get_bool(c, "standardize", &o->standardize));
  int64_t k = 20, it = mlp ? 500 : 1000;
  RE_TRY(re_cfg_get_int(c, "k", &k));
  if (k < 1)
    return re_cfg_error(re_cfg_get(c, "k"), RE_EINVAL, "k must be at least 1");
  o->knn_k = (int)k;
  RE_TRY(re_cfg_get_int(c, "max_iter", &it));
  if (it < 1)
    return re_cfg_error(re_cfg_get(c, "max_iter"), RE_EINVAL, "max_iter must be at least 1");
  o->max_iter = (int)it;
  o->knn_temperature = 0.07;
  RE_TRY(re_cfg_get_double(c, "temperature", &o->knn_temperature));
  if (!(o->knn_temperature > 0))
    return re_cfg_error(re_cfg_get(c, "temperature"), RE_EINVAL, "temperature must be positive");
  o->tol = mlp ? 1e-5 : 1e-6;
  RE_TRY(re_cfg_get_double(c, "tol", &o->tol));
  if (!(o->tol > 0))
    return re_cfg_error(re_cfg_get(c, "tol"), RE_EINVAL, "tol must be positive");
  o->ftol = -1; /* the solver's default */
  RE_TRY(re_cfg_get_double(c, "ftol", &o->ftol));
  if (re_cfg_get(c, "ftol") && !(o->ftol >= 0))
    return re_cfg_error(re_cfg_get(c, "ftol"), RE_EINVAL, "ftol must be >= 0 (0: off)");
  return RE_OK;
}

/* The λ values: a list (lambdas), or a log-spaced grid [low, high, count] (default
 * per kind). */
static re_status parse_lambdas(probe_opts *o, const re_cfg *c) {
  int mlp = o->probe_kind == PROBE_MLP;
  const re_cfg *g = re_cfg_get(c, "grid"), *l = re_cfg_get(c, "lambdas");
  if (g && l)
    return re_cfg_error(l, RE_EINVAL, "give either 'grid' or 'lambdas', not both");
  if (l) {
    if (l->kind != RE_CFG_SEQ || l->n < 1 || l->n > 1000)
      return re_cfg_error(l, RE_EINVAL, "lambdas must be a list of 1 to 1000 positive numbers");
    RE_TRY(re_calloc(l->n, sizeof(double), &o->lambdas));
    for (int64_t q = 0; q < l->n; q++) {
      RE_TRY(re_cfg_double(l->items[q], &o->lambdas[q]));
      if (!(o->lambdas[q] > 0))
        return re_cfg_error(l->items[q], RE_EINVAL, "lambdas must be positive");
    }
    o->nlambdas = (int)l->n;
  } else {
    double lo = mlp ? 1e-5 : 1e-6, hi = mlp ? 1e-1 : 1e4; /* the MLP's own sweep: weight decay */
    int64_t n = mlp ? 5 : 11;
    if (g) {
      if (g->kind != RE_CFG_SEQ || g->n != 3)
        return re_cfg_error(g, RE_EINVAL, "grid must be [low, high, count], e.g. [1e-6, 1e4, 11]");
      RE_TRY(re_cfg_double(g->items[0], &lo));
      RE_TRY(re_cfg_double(g->items[1], &hi));
      RE_TRY(re_cfg_int(g->items[2], &n));
      if (!(lo > 0 && hi >= lo) || n < 1 || n > 1000 || (n == 1 && lo != hi))
        return re_cfg_error(g, RE_EINVAL, "grid needs 0 < low <= high and 1 <= count <= 1000 (count 1: low == high)");
    }
    RE_TRY(re_calloc(n, sizeof(double), &o->lambdas));
    o->nlambdas = (int)n;
    for (int64_t q = 0; q < n; q++)
      o->lambdas[q] = n == 1 ? lo : exp(log(lo) + (log(hi) - log(lo)) * (double)q / (double)(n - 1));
  }
  return RE_OK;
}

static re_status parse(job *j, job_analysis *a, const re_cfg *c) {
  probe_opts *o = a->opts;
  RE_TRY(an_parse_dataset(j, a, c, "train", 1, 1, &a->dataset));
  RE_TRY(an_parse_dataset(j, a, c, "test", 1, 1, &o->test_dataset));
  RE_TRY(an_parse_dataset(j, a, c, "val", 0, 1, &o->val_dataset));
  const char *kind = "logistic";
  RE_TRY(re_cfg_get_string(c, "kind", &kind));
  o->probe_kind = 0;
  while (o->probe_kind < NPROBE_KINDS && strcmp(kind, kind_names[o->probe_kind]))
    o->probe_kind++;
  if (o->probe_kind == NPROBE_KINDS)
    return re_cfg_error(re_cfg_get(c, "kind"), RE_EINVAL, "probe kind must be logistic, ridge, knn or mlp");
  RE_TRY(parse_mlp_parallel(o, c));
  RE_TRY(parse_solver(o, c));
  return parse_lambdas(o, c);
}

static void free_opts(void *opts) {
  probe_opts *o = opts;
  free(o->test_dataset);
  free(o->val_dataset);
  free(o->lambdas);
}

static int other_dataset(const job_analysis *a, int k, const char **name) {
  *name = k == 0 ? po(a)->test_dataset : k == 1 ? po(a)->val_dataset : NULL;
  return k < 2;
}

static void manifest(FILE *f, const job_analysis *a) {
  const probe_opts *o = po(a);
  fprintf(f, ", \"train\": ");
  re_json_string(f, a->dataset);
  fprintf(f, ", \"test\": ");
  re_json_string(f, o->test_dataset);
  if (o->val_dataset) {
    fprintf(f, ", \"val\": ");
    re_json_string(f, o->val_dataset);
  } else {
    fprintf(f, ", \"val_fraction\": %.17g", o->val_fraction);
  }
  fprintf(f, ", \"kind\": \"%s\"", kind_names[o->probe_kind]);
  if (o->probe_kind == PROBE_MLP)
    fprintf(f, ", \"hidden\": %d, \"activation\": \"%s\"", o->hidden, o->activation == RE_MLP_RELU ? "relu" : "gelu");
  fprintf(f, ", \"lambdas\": [");
  for (int k = 0; k < o->nlambdas; k++)
    fprintf(f, "%s%.17g", k ? ", " : "", o->lambdas[k]);
  fprintf(f, "]");
}

static re_status after_passes(runner *r) { return run_probes(r); }

const an_kind an_probe = {
    .type = "probe",
    .keys = keys,
    .pairs = AN_NO_PAIRS,
    .opts_size = sizeof(probe_opts),
    .own_dataset = 1,
    .parse = parse,
    .free_opts = free_opts,
    .other_dataset = other_dataset,
    .setup = setup,
    .after_passes = after_passes,
    .manifest = manifest,
};
