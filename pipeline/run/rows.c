/* Rows of taps for sample-level analyses: seeded samples, labels, cached rows. */
#include "run/rows.h"

#include <stdlib.h>
#include <string.h>

#include "repeval/probe.h"

re_status rows_sample(int64_t n, int64_t m, uint64_t seed, int64_t **idx, int64_t *count) {
  *idx = NULL;
  *count = m < n ? m : n;
  RE_TRY(re_malloc(*count > 0 ? *count : 1, sizeof(int64_t), idx));
  if (m >= n) {
    for (int64_t i = 0; i < n; i++)
      (*idx)[i] = i;
    return RE_OK;
  }
  uint8_t *pick = NULL;
  RE_TRY(re_malloc(n, 1, &pick));
  re_status st = re_probe_split(n, (double)m / (double)n, seed, 0, n, pick);
  int64_t k = 0;
  for (int64_t i = 0; st == RE_OK && i < n; i++)
    if (pick[i] && k < m)
      (*idx)[k++] = i;
  free(pick);
  if (st == RE_OK && k != m)
    st = re_err(RE_EINVAL, "sample of %lld of %lld indices drew %lld", (long long)m, (long long)n, (long long)k);
  return st;
}

re_status rows_labels(pass *p, const int64_t *idx, int64_t m, int32_t *labels) {
  for (int64_t k = 0; k < m; k++) {
    int64_t i = p->offset + idx[k];
    re_status st = p->tokens ? re_dataset_read_tokens(p->ds, i, i + 1, p->ids, p->mask, &labels[k])
                             : re_dataset_read(p->ds, i, i + 1, p->x, &labels[k]);
    RE_TRY(st);
  }
  return RE_OK;
}

static const char *cache_dir(const runner *r) {
  return r->plan.j->cache_dir ? r->plan.j->cache_dir : r->plan.probe_cache_dir;
}

void rows_keep(runner *r, pass *p, int t, int labels) {
  if (!p->probe_tap && re_calloc(r->plan.ntaps > 0 ? r->plan.ntaps : 1, 1, &p->probe_tap) != RE_OK)
    return;
  p->probe_tap[t] = 1;
  p->probe_labels |= labels;
  r->plan.ds_n[p->d] = p->n;
  r->plan.ds_chunk[p->d] = p->chunk;
  r->plan.ds_key[p->d] = p->data_key;
}

re_status rows_cached(runner *r, int d, int t, int64_t row0, int64_t row1, float *X, int32_t *y) {
  int64_t n = r->plan.ds_n[d], fb = r->plan.ds_chunk[d]; /* shards hold chunks */
  char layer[512] = "labels";
  uint64_t ck = 0;
  int64_t w = 1;
  if (t >= 0) {
    const tapinfo *tp = &r->plan.taps[t];
    run_cache_layer_name(r, tp->model, tp->layer, layer, sizeof layer);
    ck = run_cache_ckpt_key(r, tp->model, tp->ckpt);
    w = tp->dim;
  }
  int f16 = t >= 0 && r->plan.j->cache_dir ? r->plan.j->cache_f16 : 0;
  float *buf = NULL;
  RE_TRY(re_malloc(fb * w, sizeof(float), &buf));
  re_status st = RE_OK;
  for (int64_t s0 = row0 / fb * fb; s0 < row1 && s0 < n && st == RE_OK; s0 += fb) {
    int64_t b = n - s0 < fb ? n - s0 : fb;
    if (!run_cache_get(r, cache_dir(r), ck, r->plan.ds_key[d], layer, s0, s0 + b, b, w, f16, buf)) {
      st = re_err(RE_EIO, "the embeddings of %s for samples %lld..%lld of dataset '%s' are missing from the cache %s "
                          "(rerun with --fresh)",
                  layer, (long long)s0, (long long)(s0 + b), r->plan.j->datasets[d].name, cache_dir(r));
      break;
    }
    int64_t lo = s0 > row0 ? s0 : row0, hi = s0 + b < row1 ? s0 + b : row1;
    for (int64_t i = lo; i < hi; i++) {
      if (t >= 0)
        memcpy(X + (i - row0) * w, buf + (i - s0) * w, sizeof(float) * (size_t)w);
      else
        y[i - row0] = (int32_t)buf[i - s0];
    }
  }
  free(buf);
  return st;
}
