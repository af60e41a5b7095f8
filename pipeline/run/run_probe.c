/* repeval run, linear probes: logistic (λ sweep), ridge (λ path) and k-NN probes
 * of every selected tap, trained on one dataset and scored on another.
 *
 * During each dataset pass the tap outputs that a probe needs, and the labels, go
 * to shards of the embedding cache (the job's `cache:`, or a private one in the
 * state folder), one shard per batch. After the last pass the probe tasks — one
 * per (probe analysis, tap) — are assigned to ranks round-robin (task i on rank
 * i mod R); the owner reads the tap's rows of the training, validation and test
 * sets from the shards in global sample order and fits alone, so a probe's
 * result does not depend on the number of ranks. Rows go to rank 0 in task
 * order. Memory on the owner: the rows of one task (n x d float32, plus the
 * solver's float64 copy), released before the next task. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/mpi_reduce.h"
#include "out/progress.h"
#include "repeval/probe.h"
#include "run/run.h"

#define PROBE_SPLIT_SEED 20261202u

static const char *probe_dir(const runner *r) { return r->j->cache_dir ? r->j->cache_dir : r->probe_cache_dir; }
static int probe_f16(const runner *r) { return r->j->cache_dir ? r->j->cache_f16 : 0; }

static int layer_selected(const job_analysis *a, const char *layer) {
  if (a->nlayer_filter == 0)
    return 1;
  for (int k = 0; k < a->nlayer_filter; k++)
    if (!strcmp(a->layer_filter[k], layer))
      return 1;
  return 0;
}

/* Does probe analysis a use dataset d (as train, val or test)? */
static int probe_uses(const job *j, const job_analysis *a, int d) {
  const char *n = j->datasets[d].name;
  return a->type == AN_PROBE && (!strcmp(a->dataset, n) || !strcmp(a->test_dataset, n) ||
                                 (a->val_dataset && !strcmp(a->val_dataset, n)));
}

int run_probe_uses_dataset(const job *j, int d) {
  for (int a = 0; a < j->nanalyses; a++)
    if (probe_uses(j, &j->analyses[a], d))
      return 1;
  return 0;
}

static int tap_in_probe(const runner *r, const job_analysis *a, int t) {
  return run_label_selected(a, run_tap_ckpt(r, t)) && layer_selected(a, run_tap_layer(r, t));
}

re_status run_probe_setup(runner *r, pass *p) {
  job *j = r->j;
  p->probe_labels = run_probe_uses_dataset(j, p->d);
  if (!p->probe_labels)
    return RE_OK;
  if (!re_dataset_get_info(p->ds)->has_labels)
    return re_cfg_error(j->datasets[p->d].src, RE_EINVAL, "dataset '%s' is used by a probe but has no labels",
                        j->datasets[p->d].name);
  RE_TRY(re_calloc(r->ntaps, 1, &p->probe_tap));
  for (int a = 0; a < j->nanalyses; a++) {
    const job_analysis *an = &j->analyses[a];
    if (!probe_uses(j, an, p->d))
      continue;
    int any = 0;
    for (int t = 0; t < r->ntaps; t++) {
      if (!tap_in_probe(r, an, t))
        continue;
      if (r->taps[t].rps != 1)
        return re_cfg_error(an->src, RE_EINVAL, "probe '%s': layer '%s' is tapped with mode spatial; a probe needs "
                                                "one row per sample (tap it with :mean or :flatten)",
                            an->name, run_tap_layer(r, t));
      p->probe_tap[t] = 1;
      any = 1;
    }
    if (!any)
      return re_cfg_error(an->src, RE_EINVAL, "probe '%s': its 'checkpoints' and 'layers' select no tap", an->name);
  }
  r->ds_n[p->d] = p->n;
  r->ds_fb[p->d] = p->fb;
  r->ds_key[p->d] = p->data_key;
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
  if (!p->probe_tap || !p->probe_tap[t] || r->j->cache_dir)
    return RE_OK;
  char layer[512];
  const tapinfo *tp = &r->taps[t];
  run_cache_layer_name(r, tp->model, tp->layer, layer, sizeof layer);
  run_cache_put(r, probe_dir(r), run_cache_ckpt_key(r, tp->model, tp->ckpt), p->data_key, layer, s0, s0 + b, b,
                tp->dim, 0, data);
  return RE_OK;
}

/* Rows [row0, row1) of dataset d for tap t (or the labels with t < 0) from the shards. */
static re_status load_rows(runner *r, int d, int t, int64_t dim, int64_t row0, int64_t row1, float *X, int32_t *y) {
  int64_t n = r->ds_n[d], fb = r->ds_fb[d];
  char layer[512] = "labels";
  uint64_t ck = 0;
  if (t >= 0) {
    const tapinfo *tp = &r->taps[t];
    run_cache_layer_name(r, tp->model, tp->layer, layer, sizeof layer);
    ck = run_cache_ckpt_key(r, tp->model, tp->ckpt);
  }
  int64_t w = t >= 0 ? dim : 1;
  float *buf = NULL;
  RE_TRY(re_malloc(fb * w, sizeof(float), &buf));
  re_status st = RE_OK;
  for (int64_t s0 = row0 / fb * fb; s0 < row1 && s0 < n && st == RE_OK; s0 += fb) {
    int64_t b = n - s0 < fb ? n - s0 : fb;
    if (!run_cache_get(r, probe_dir(r), ck, r->ds_key[d], layer, s0, s0 + b, b, w, t >= 0 ? probe_f16(r) : 0, buf)) {
      st = re_err(RE_EIO, "the embeddings of %s for samples %lld..%lld of dataset '%s' are missing from the cache %s "
                          "(rerun with --fresh)",
                  t >= 0 ? layer : "the labels", (long long)s0, (long long)(s0 + b), r->j->datasets[d].name,
                  probe_dir(r));
      break;
    }
    int64_t lo = s0 > row0 ? s0 : row0, hi = s0 + b < row1 ? s0 + b : row1;
    for (int64_t i = lo; i < hi; i++) {
      if (t >= 0)
        memcpy(X + (i - row0) * dim, buf + (i - s0) * dim, sizeof(float) * (size_t)dim);
      else
        y[i - row0] = (int32_t)buf[i - s0];
    }
  }
  free(buf);
  return st;
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
  RE_TRY(load_rows(r, d, -1, 1, row0, row1, NULL, s->y));
  return load_rows(r, d, t, dim, row0, row1, s->X, s->y);
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
  run_row(r, a->name, m, t, -1, a->test_dataset, param, sc->n > 0 ? sc->top1 / sc->n : NAN,
          sc->n > 0 ? NULL : "no samples");
  if (K >= 10) {
    snprintf(m, sizeof m, "%s_top5", prefix);
    run_row(r, a->name, m, t, -1, a->test_dataset, param, sc->n > 0 ? sc->top5 / sc->n : NAN,
            sc->n > 0 ? NULL : "no samples");
  }
  if (with_loss) {
    snprintf(m, sizeof m, "%s_loss", prefix);
    run_row(r, a->name, m, t, -1, a->test_dataset, param, sc->n > 0 ? sc->loss / sc->n : NAN,
            sc->n > 0 ? NULL : "no samples");
  }
}

static re_status mpi_ordered_sum(double *buf, int64_t len, void *ctx);

/* 1 when the fit met the gradient tolerance or its objective stalled (relative
 * decrease below ftol: converged in f), 0 at max_iter or a failed line search. */
static double converged(const re_logreg_info *fit) {
  return fit->converged || !strcmp(fit->stop, "stall") ? 1.0 : 0.0;
}

static re_status run_logistic(runner *r, const job_analysis *a, int t, re_probe_rows *tr, re_probe_rows *va,
                              re_probe_rows *te, int32_t K, const char *base, int dp) {
  re_logreg_options opt = re_logreg_defaults();
  if (dp) {
    opt.reduce.fn = mpi_ordered_sum;
    opt.reduce.ctx = r;
  }
  opt.tol = a->tol;
  if (a->ftol >= 0)
    opt.ftol = a->ftol;
  opt.max_iter = a->max_iter;
  opt.standardize = a->standardize;
  re_logreg_sweep sw;
  memset(&sw, 0, sizeof sw);
  re_status st = re_logreg_sweep_run(tr, va, te, K, a->lambdas, a->nlambdas, &opt, &sw, NULL);
  if (st != RE_OK)
    return st;
  char param[512];
  for (int k = 0; k < sw.nlambdas; k++) {
    const re_logreg_point *pt = &sw.points[k];
    snprintf(param, sizeof param, "%s lambda=%.6g%s", base, pt->fit.lambda, k == sw.selected ? " selected" : "");
    score_rows(r, a, t, param, "val", &pt->val, K, 1);
    run_row(r, a->name, "train_iterations", t, -1, a->test_dataset, param, (double)pt->fit.iterations, NULL);
    run_row(r, a->name, "train_converged", t, -1, a->test_dataset, param, converged(&pt->fit), NULL);
  }
  snprintf(param, sizeof param, "%s lambda=%.6g selected refit=train+val", base, sw.lambda);
  run_row(r, a->name, "lambda", t, -1, a->test_dataset, param, sw.lambda, NULL);
  score_rows(r, a, t, param, "test", &sw.test, K, 1);
  run_row(r, a->name, "refit_iterations", t, -1, a->test_dataset, param, (double)sw.refit.iterations, NULL);
  run_row(r, a->name, "refit_objective", t, -1, a->test_dataset, param, sw.refit.f, NULL);
  run_row(r, a->name, "refit_grad_inf", t, -1, a->test_dataset, param, sw.refit.grad_inf, NULL);
  run_row(r, a->name, "refit_converged", t, -1, a->test_dataset, param, converged(&sw.refit), NULL);
  if (!sw.refit.converged && strcmp(sw.refit.stop, "stall")) /* a stall is a converged fit in f */
    run_warn(r, "probe '%s' on %s/%s/%s: the refit stopped by %s before the gradient tolerance", a->name,
             run_tap_model(r, t), run_tap_ckpt(r, t), run_tap_layer(r, t), sw.refit.stop);
  re_logreg_sweep_free(&sw);
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
    st = re_ridge_path_create(m, 0, 1, lambdas, nl, a->standardize, NULL, out);
  re_moments_destroy(&m);
  return st;
}

static re_status run_ridge(runner *r, const job_analysis *a, int t, re_probe_rows *tr, re_probe_rows *va,
                           re_probe_rows *te, int32_t K, const char *base) {
  int nl = a->nlambdas;
  re_ridge_path *path = NULL;
  re_probe_score *val = NULL, test;
  memset(&test, 0, sizeof test);
  const re_probe_rows *parts[2] = {tr, va};
  re_status st = re_calloc(nl, sizeof(re_probe_score), &val);
  if (st == RE_OK)
    st = ridge_path(a, parts, 1, tr->d, K, a->lambdas, nl, &path);
  if (st == RE_OK)
    st = re_ridge_path_score(path, va, val);
  re_ridge_path_destroy(&path);
  int sel = 0;
  for (int k = 1; k < nl; k++) /* most correct validation predictions; ties: larger λ */
    if (val[k].top1 > val[sel].top1 || (val[k].top1 == val[sel].top1 && a->lambdas[k] > a->lambdas[sel]))
      sel = k;
  if (st == RE_OK)
    st = ridge_path(a, parts, 2, tr->d, K, &a->lambdas[sel], 1, &path);
  if (st == RE_OK)
    st = re_ridge_path_score(path, te, &test);
  re_ridge_path_destroy(&path);
  char param[512];
  for (int k = 0; st == RE_OK && k < nl; k++) {
    snprintf(param, sizeof param, "%s lambda=%.6g%s", base, a->lambdas[k], k == sel ? " selected" : "");
    score_rows(r, a, t, param, "val", &val[k], K, 0);
  }
  if (st == RE_OK) {
    snprintf(param, sizeof param, "%s lambda=%.6g selected refit=train+val", base, a->lambdas[sel]);
    run_row(r, a->name, "lambda", t, -1, a->test_dataset, param, a->lambdas[sel], NULL);
    score_rows(r, a, t, param, "test", &test, K, 0);
  }
  free(val);
  return st;
}

static re_status run_knn(runner *r, const job_analysis *a, int t, re_probe_rows *tr, re_probe_rows *te, int32_t K,
                         const char *base) {
  re_knn_options opt = re_knn_defaults();
  opt.k = a->knn_k;
  opt.temperature = a->knn_temperature;
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
  if (r->size == 1)
    return RE_OK;
  if (len > (1 << 28))
    return re_err(RE_EINVAL, "probe: reduction of %lld doubles is too large", (long long)len);
  double *all = NULL;
  re_status st = RE_OK;
  if (r->rank == 0)
    st = re_malloc(len * r->size, sizeof(double), &all);
  MPI_Gather(buf, (int)len, MPI_DOUBLE, all, (int)len, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  if (r->rank == 0 && all)
    for (int64_t k = 0; k < len; k++) {
      double v = all[k];
      for (int q = 1; q < r->size; q++)
        v += all[(int64_t)q * len + k];
      buf[k] = v;
    }
  free(all);
  MPI_Bcast(buf, (int)len, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  return st;
}

static int rows_finite(const split *s, int64_t dim) {
  for (int64_t e = 0; e < s->n * dim; e++)
    if (!isfinite(s->X[e]))
      return 0;
  return 1;
}

/* One task: load, split, fit, rows into r->metrics. On its owner alone, or with
 * `dp` on every rank (collective): each rank holds a contiguous share of every
 * split's rows and the logistic loss and gradient are summed across ranks. */
static re_status probe_task(runner *r, const job_analysis *a, int t, int dp) {
  job *j = r->j;
  int dtr = job_dataset_index(j, a->dataset), dte = job_dataset_index(j, a->test_dataset);
  int dva = a->val_dataset ? job_dataset_index(j, a->val_dataset) : -1;
  int64_t dim = r->taps[t].dim;
  int R = dp ? r->size : 1, me = dp ? r->rank : 0;
  split tr = {0}, va = {0}, te = {0};
  uint8_t *is_val = NULL;
  int64_t lo, hi;
  re_shard_range(r->ds_n[dtr], me, R, &lo, &hi);
  int64_t tr0 = lo;
  re_status st = load_split(r, dtr, t, dim, lo, hi, &tr);
  re_shard_range(r->ds_n[dte], me, R, &lo, &hi);
  if (st == RE_OK)
    st = load_split(r, dte, t, dim, lo, hi, &te);
  if (st == RE_OK && dva >= 0) {
    re_shard_range(r->ds_n[dva], me, R, &lo, &hi);
    st = load_split(r, dva, t, dim, lo, hi, &va);
  } else if (st == RE_OK && a->probe_kind != PROBE_KNN) {
    st = re_malloc(tr.n > 0 ? tr.n : 1, 1, &is_val);
    if (st == RE_OK) /* the split is defined on global rows: the same for any R */
      st = re_probe_split(r->ds_n[dtr], a->val_fraction, PROBE_SPLIT_SEED, tr0, tr.n, is_val);
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
    MPI_Allreduce(&mk, &gk, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Allreduce(&bad, &gb, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    K = gk;
    bad = gb;
    st = re_mpi_agree(MPI_COMM_WORLD, st);
  }
  char base[256];
  static const char *kinds[] = {"logistic", "ridge", "knn"};
  snprintf(base, sizeof base, "%s train=%s%s", kinds[a->probe_kind], a->dataset, dp ? " data-parallel" : "");
  re_probe_rows rtr = rows_of(&tr, dim, "train"), rva = rows_of(&va, dim, "validation"),
                rte = rows_of(&te, dim, "test");
  if (st == RE_OK && bad)
    st = re_err(RE_EDATA, "the features hold NaN or Inf");
  if (st == RE_OK && K < 2)
    st = re_err(RE_EUNDEFINED, "the training labels hold a single class");
  if (st == RE_OK) {
    if (a->probe_kind == PROBE_LOGISTIC)
      st = run_logistic(r, a, t, &rtr, &rva, &rte, K, base, dp);
    else if (a->probe_kind == PROBE_RIDGE)
      st = run_ridge(r, a, t, &rtr, &rva, &rte, K, base);
    else
      st = run_knn(r, a, t, &rtr, &rte, K, base);
  }
  if (st == RE_EUNDEFINED || st == RE_EDATA) {
    /* a property of this tap's features or labels: a row marked undefined, not a failed job */
    run_row(r, a->name, "test_top1", t, -1, a->test_dataset, base, NAN, re_errmsg());
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
  if (a->probe_kind != PROBE_LOGISTIC || a->probe_parallel == PROBE_PAR_TASKS)
    return 0;
  if (a->probe_parallel == PROBE_PAR_DATA)
    return 1;
  const char *env = getenv("REPEVAL_PROBE_TASK_MB");
  double budget = (env ? atof(env) : 2048.0) * 1048576.0;
  int dtr = job_dataset_index(r->j, a->dataset);
  return r->size > 1 && 12.0 * (double)r->ds_n[dtr] * (double)r->taps[t].dim > budget;
}

re_status run_probes(runner *r) {
  job *j = r->j;
  int ntasks = 0;
  for (int a = 0; a < j->nanalyses; a++)
    if (j->analyses[a].type == AN_PROBE)
      for (int t = 0; t < r->ntaps; t++)
        ntasks += tap_in_probe(r, &j->analyses[a], t);
  if (ntasks == 0)
    return RE_OK;
  progress pr;
  progress_start(&pr, "probes", ntasks, r->rank == 0 && !r->quiet);
  re_status st = RE_OK;
  FILE *keep = r->metrics;
  char *chunk = NULL;
  size_t clen = 0;
  int task = 0, nund0 = r->nundefined;
  for (int a = 0; a < j->nanalyses; a++) {
    const job_analysis *an = &j->analyses[a];
    if (an->type != AN_PROBE)
      continue;
    for (int t = 0; t < r->ntaps; t++) {
      if (!tap_in_probe(r, an, t))
        continue;
      if (data_parallel(r, an, t)) { /* every rank works on this task; rank 0 keeps the rows */
        st = re_mpi_agree(MPI_COMM_WORLD, st); /* a failed task elsewhere: nobody starts this one */
        FILE *sink = NULL;
        if (r->rank != 0) {
          sink = open_memstream(&chunk, &clen);
          r->metrics = sink;
        }
        re_status ts = st == RE_OK ? probe_task(r, an, t, 1) : st;
        if (sink) {
          fclose(sink);
          r->metrics = keep;
          free(chunk);
          chunk = NULL;
          clen = 0;
        }
        st = re_mpi_agree(MPI_COMM_WORLD, ts);
        task++;
        if (r->rank == 0)
          progress_update(&pr, task, 0);
        continue;
      }
      int owner = task % r->size;
      if (r->rank == owner && st == RE_OK) {
        FILE *f = open_memstream(&chunk, &clen);
        if (!f) {
          st = re_err(RE_ENOMEM, "probe rows");
        } else {
          r->metrics = f;
          st = probe_task(r, an, t, 0);
          fclose(f);
          r->metrics = keep;
        }
      }
      /* the owner hands its rows to rank 0, in task order */
      if (owner != 0) {
        if (r->rank == owner) {
          long long len = st == RE_OK ? (long long)clen : -1;
          MPI_Send(&len, 1, MPI_LONG_LONG, 0, RE_TAG_PROBE_ROWS_LEN, MPI_COMM_WORLD);
          if (len > 0)
            MPI_Send(chunk, (int)len, MPI_CHAR, 0, RE_TAG_PROBE_ROWS, MPI_COMM_WORLD);
        } else if (r->rank == 0) {
          long long len = 0;
          MPI_Recv(&len, 1, MPI_LONG_LONG, owner, RE_TAG_PROBE_ROWS_LEN, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
          if (len > 0 && len < (1LL << 30)) {
            char *buf = NULL;
            if (re_malloc(len, 1, &buf) == RE_OK) {
              MPI_Recv(buf, (int)len, MPI_CHAR, owner, RE_TAG_PROBE_ROWS, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
              if (keep)
                fwrite(buf, 1, (size_t)len, keep);
              free(buf);
            }
          } else if (len < 0 && st == RE_OK) {
            st = re_err(RE_EMPI, "probe task %d failed on rank %d (see its message)", task, owner);
          }
        }
      } else if (r->rank == 0 && chunk && keep) {
        fwrite(chunk, 1, clen, keep);
      }
      free(chunk);
      chunk = NULL;
      clen = 0;
      task++;
      if (r->rank == 0)
        progress_update(&pr, task, 0);
    }
  }
  progress_finish(&pr, 0);
  /* rows marked undefined on other ranks count in the manifest too */
  int mine = r->nundefined - nund0, all = 0;
  MPI_Reduce(&mine, &all, 1, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
  if (r->rank == 0)
    r->nundefined = nund0 + all;
  return st;
}
