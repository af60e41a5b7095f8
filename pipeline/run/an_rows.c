/* Helpers of the kinds that need every row of a tap after its pass (k-NN graphs,
 * RDMs): the rows go to the cache shards during the pass, as the probes' do, and are
 * read back by global sample index, so every rank can read any tap. */
#include <stdlib.h>
#include <string.h>

#include "repeval/npy.h"
#include "run/analysis.h"

static const char *rows_dir(const runner *r) {
  return r->plan.j->cache_dir ? r->plan.j->cache_dir : r->plan.probe_cache_dir;
}

const char *an_tap_mode(const runner *r, int t) {
  const tapinfo *tp = &r->plan.taps[t];
  return run_mode_name(r->plan.j->models[tp->model].layers[tp->layer].mode);
}

re_status an_keep_rows(runner *r, pass *p, an_run *ar, int labels) {
  job *j = r->plan.j;
  const job_analysis *a = ar->a;
  if (labels && !re_dataset_get_info(p->ds)->has_labels)
    return re_cfg_error(a->src, RE_EINVAL, "analysis '%s' needs the labels of dataset '%s', which has none", a->name,
                        j->datasets[p->d].name);
  if (labels)
    p->probe_labels = 1;
  if (!p->probe_tap)
    RE_TRY(re_calloc(r->plan.ntaps, 1, &p->probe_tap));
  for (int q = 0; q < ar->P; q++) {
    int t = ar->taps[q];
    if (r->plan.taps[t].rps != 1)
      return re_cfg_error(a->src, RE_EINVAL, "analysis '%s': layer '%s' is tapped with mode %s; %s needs one row per "
                                             "sample (tap it with :mean, :cls or :flatten)",
                          a->name, run_tap_layer(r, t), an_tap_mode(r, t), a->kind->type);
    p->probe_tap[t] = 1;
  }
  r->plan.ds_n[p->d] = p->n;
  r->plan.ds_chunk[p->d] = p->chunk;
  r->plan.ds_key[p->d] = p->data_key;
  return RE_OK;
}

int an_rows_available(runner *r, const job_analysis *a) {
  if (r->plan.mode != RUN_MODE_FINALIZE || r->plan.j->cache_dir)
    return 1;
  run_warn(r, "analysis '%s' (%s) needs the tap rows, which finalize has only with the job's embedding cache "
              "('cache:'); its rows are missing from this output",
           a->name, a->kind->type);
  return 0;
}

re_status an_stored_rows(runner *r, int d, int t, int64_t row0, int64_t row1, float *X, int32_t *y) {
  int64_t n = r->plan.ds_n[d], fb = r->plan.ds_chunk[d]; /* shards hold chunks */
  char layer[512] = "labels";
  uint64_t ck = 0;
  int64_t dim = 1;
  if (t >= 0) {
    const tapinfo *tp = &r->plan.taps[t];
    run_cache_layer_name(r, tp->model, tp->layer, layer, sizeof layer);
    ck = run_cache_ckpt_key(r, tp->model, tp->ckpt);
    dim = tp->dim;
  }
  if (fb < 1 || row0 < 0 || row1 > n || row1 < row0)
    return re_err(RE_EINVAL, "rows %lld..%lld of dataset '%s' (%lld samples, chunks of %lld)", (long long)row0,
                  (long long)row1, r->plan.j->datasets[d].name, (long long)n, (long long)fb);
  float *buf = NULL;
  RE_TRY(re_malloc(fb, dim * (int64_t)sizeof(float), &buf));
  re_status st = RE_OK;
  int f16 = t >= 0 && r->plan.j->cache_dir ? r->plan.j->cache_f16 : 0;
  for (int64_t s0 = row0 / fb * fb; s0 < row1 && st == RE_OK; s0 += fb) {
    int64_t b = n - s0 < fb ? n - s0 : fb;
    if (!run_cache_get(r, rows_dir(r), ck, r->plan.ds_key[d], layer, s0, s0 + b, b, dim, f16, buf)) {
      st = re_err(RE_EIO, "the rows of %s for samples %lld..%lld of dataset '%s' are missing from the cache %s (rerun "
                          "with --fresh)",
                  t >= 0 ? layer : "the labels", (long long)s0, (long long)(s0 + b), r->plan.j->datasets[d].name,
                  rows_dir(r));
      break;
    }
    int64_t lo = s0 > row0 ? s0 : row0, hi = s0 + b < row1 ? s0 + b : row1;
    if (t >= 0)
      memcpy(X + (lo - row0) * dim, buf + (lo - s0) * dim, sizeof(float) * (size_t)((hi - lo) * dim));
    else
      for (int64_t i = lo; i < hi; i++)
        y[i - row0] = (int32_t)buf[i - s0];
  }
  free(buf);
  return st;
}

re_status an_write_npy(runner *r, const char *file, re_dtype dt, int ndim, const int64_t *shape, const void *data) {
  char path[4400];
  if ((size_t)snprintf(path, sizeof path, "%s/%s", r->plan.partial, file) >= sizeof path)
    return re_err(RE_EINVAL, "%s/%s: path too long", r->plan.partial, file);
  return re_npy_write(path, dt, ndim, shape, data);
}
