/* A subset of a dataset by folds: samples dealt in turn into `folds` folds (sample
 * i into fold i mod folds), the chosen folds kept in their order in the dataset. A
 * held-out split of any dataset whose samples come grouped (fortune files one after
 * another, a corpus sorted by class) takes every k-th sample of each group, which
 * offset and limit cannot. Reads go to the inner dataset in runs of consecutive
 * samples, straight into the caller's buffers. */
#include "ds_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct folds_ds {
  re_dataset *inner;
  int64_t folds;
  int64_t nuse;
  int64_t *use;  /* nuse kept folds, increasing */
  int64_t dim;   /* floats per sample (read) or ids per sample (read_tokens) */
} folds_ds;

/* Inner index of subset sample g: block g / nuse, the (g mod nuse)-th kept fold. */
static int64_t inner_index(const folds_ds *f, int64_t g) { return (g / f->nuse) * f->folds + f->use[g % f->nuse]; }

/* Samples [i, j) in runs of consecutive inner samples: rows [g, g + run) of the subset
 * are inner samples [a, a + run). */
#define FOLD_RUNS(f, i, j, READ)                                   \
  for (int64_t g = (i); g < (j);) {                                \
    int64_t a = inner_index(f, g), run = 1;                        \
    while (g + run < (j) && inner_index(f, g + run) == a + run)    \
      run++;                                                       \
    RE_TRY(READ);                                                  \
    g += run;                                                      \
  }

static re_status folds_read(void *impl, int64_t i, int64_t j, float *x, int32_t *labels) {
  folds_ds *f = impl;
  FOLD_RUNS(f, i, j,
            re_dataset_read(f->inner, a, a + run, x + (g - i) * f->dim, labels ? labels + (g - i) : NULL))
  return RE_OK;
}

static re_status folds_read_tokens(void *impl, int64_t i, int64_t j, int64_t *ids, uint8_t *mask, int32_t *labels) {
  folds_ds *f = impl;
  FOLD_RUNS(f, i, j,
            re_dataset_read_tokens(f->inner, a, a + run, ids + (g - i) * f->dim, mask + (g - i) * f->dim,
                                   labels ? labels + (g - i) : NULL))
  return RE_OK;
}

static void folds_close(void *impl) {
  folds_ds *f = impl;
  re_dataset_close(&f->inner);
  free(f->use);
  free(f);
}

static const re_ds_ops folds_ops = {folds_read, folds_close, NULL};
static const re_ds_ops folds_token_ops = {NULL, folds_close, folds_read_tokens};

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

re_status re_dataset_open_folds(re_dataset **inner, int64_t folds, const int64_t *use, int nuse, re_dataset **out) {
  *out = NULL;
  re_dataset *d = *inner;
  *inner = NULL;
  folds_ds *f = NULL;
  char **names = NULL;
  int64_t nnames = 0;
  re_status st = RE_OK;
  if (!d)
    return re_err(RE_EINVAL, "folds: no dataset to select from");
  const re_dataset_info *in = re_dataset_get_info(d);
  if (folds < 2 || folds > 1000000)
    RE_CHECK(re_err(RE_EINVAL, "folds: the count must be 2 ... 1000000, got %lld", (long long)folds));
  if (nuse < 1 || nuse > folds)
    RE_CHECK(re_err(RE_EINVAL, "folds: use 1 ... %lld of the %lld folds, got %d", (long long)folds, (long long)folds,
                   nuse));
  RE_CHECK(re_calloc(1, sizeof *f, &f));
  RE_CHECK(re_malloc(nuse, sizeof *f->use, &f->use));
  memcpy(f->use, use, sizeof *use * (size_t)nuse);
  qsort(f->use, (size_t)nuse, sizeof *f->use, cmp_i64);
  for (int k = 0; k < nuse; k++) {
    if (f->use[k] < 0 || f->use[k] >= folds)
      RE_CHECK(re_err(RE_EINVAL, "folds: fold %lld does not exist (folds are numbered 0 ... %lld)",
                     (long long)f->use[k], (long long)folds - 1));
    if (k && f->use[k] == f->use[k - 1])
      RE_CHECK(re_err(RE_EINVAL, "folds: fold %lld is listed twice", (long long)f->use[k]));
  }
  f->folds = folds;
  f->nuse = nuse;
  f->dim = in->tokens ? in->seq_len : in->sample_dim;
  re_dataset_info info = *in;
  /* fold u holds the samples u, u + folds, ... below count */
  info.count = 0;
  for (int k = 0; k < nuse; k++)
    info.count += f->use[k] < in->count ? (in->count - 1 - f->use[k]) / folds + 1 : 0;
  if (info.count == 0)
    RE_CHECK(re_err(RE_EINVAL, "folds: the kept folds are empty (the dataset has %lld samples, the first kept "
                   "fold is %lld)", (long long)in->count, (long long)f->use[0]));
  while (re_dataset_class_name(d, nnames))
    nnames++;
  if (nnames) {
    RE_CHECK(re_calloc(nnames, sizeof *names, &names));
    for (int64_t c = 0; c < nnames; c++)
      RE_CHECK(re_strdup(re_dataset_class_name(d, c), &names[c]));
  }
  f->inner = d;
  d = NULL;
  {
    re_dataset *sub = NULL;
    st = re_ds_wrap(info.tokens ? &folds_token_ops : &folds_ops, f, &info, &sub);
    f = NULL; /* closed by re_ds_wrap on failure */
    if (st != RE_OK)
      goto done;
    re_ds_set_class_names(sub, names, nnames);
    names = NULL;
    *out = sub;
  }
done:
  if (names)
    for (int64_t c = 0; c < nnames; c++)
      free(names[c]);
  free(names);
  if (f) {
    free(f->use);
    free(f);
  }
  re_dataset_close(&d);
  return st;
}
