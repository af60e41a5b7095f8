/* Helpers of the token and text dataset tests: the committed tokenizer fixtures,
 * small files written into the scratch folder of ds_fixtures.h, and reading a
 * whole token dataset. */
#ifndef REPEVAL_TEST_TEXT_FIXTURES_H
#define REPEVAL_TEST_TEXT_FIXTURES_H

#include "ds_fixtures.h"
#include "repeval/dataset.h"
#include "repeval/npy.h"

/* Path of tests/data/hf/tokenizers/<name> (REPEVAL_SOURCE_DIR, else the source tree
 * seen from build/tests). */
static inline const char *tx_tokenizer(const char *name) {
  static char bufs[8][1024];
  static int k = 0;
  const char *root = getenv("REPEVAL_SOURCE_DIR");
  char *p = bufs[k++ % 8];
  snprintf(p, 1024, "%s/tests/data/hf/tokenizers/%s", root && *root ? root : "../..", name);
  return p;
}

/* Write a text file into the scratch folder. */
static inline const char *tx_text(const char *name, const char *text) { return fx_write(name, text, strlen(text)); }

/* Write an array as .npy into the scratch folder (exits on failure). */
static inline const char *tx_npy(const char *name, re_dtype dt, int ndim, const int64_t *shape, const void *data) {
  const char *p = fx_path(name);
  if (re_npy_write(p, dt, ndim, shape, data) != RE_OK) {
    fprintf(stderr, "%s: %s\n", p, re_errmsg());
    exit(2);
  }
  return p;
}

/* Default text options: tokenizer `name`, seq_len T, truncate, right padding. */
static inline re_text_options tx_opts(const char *name, int64_t T) {
  re_text_options o;
  memset(&o, 0, sizeof o);
  o.tokenizer = tx_tokenizer(name);
  o.seq_len = T;
  return o;
}

/* All samples of a token dataset, read in batches of `batch` (malloc'ed; NULL on failure). */
static inline re_status tx_read_all(re_dataset *d, int64_t batch, int64_t **ids, uint8_t **mask, int32_t **y) {
  const re_dataset_info *in = re_dataset_get_info(d);
  int64_t n = in->count, T = in->seq_len;
  *ids = (int64_t *)calloc((size_t)(n * T + 1), sizeof **ids);
  *mask = (uint8_t *)calloc((size_t)(n * T + 1), 1);
  *y = (int32_t *)calloc((size_t)(n + 1), sizeof **y);
  for (int64_t i = 0; i < n; i += batch) {
    int64_t j = i + batch < n ? i + batch : n;
    re_status st = re_dataset_read_tokens(d, i, j, *ids + i * T, *mask + i * T, *y + i);
    if (st != RE_OK)
      return st;
  }
  return RE_OK;
}

#endif
