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

