/* The alignment analysis: alignment and uniformity of L2-normalised embeddings
 * (Wang & Isola 2020, "Understanding Contrastive Representation Learning through
 * Alignment and Uniformity on the Hypersphere"), docs/metrics.md#alignment-and-uniformity:
 *   alignment   E ||f(x) - f(y)||^alpha over positive pairs: the two views of a sample
 *               (row i of `dataset` and of `positive`, two datasets with the same
 *               sample ids) or every pair of distinct samples with the same label;
 *   uniformity  log E exp(-t ||f(x) - f(y)||^2) over the pairs of distinct samples of a
 *               seeded sample of each dataset (all of them when it has fewer).
 *
 * The rows of the selected taps go to the embedding cache during the passes (as for
 * probes); after the passes the taps are spread over the ranks in contiguous blocks
 * and each is computed by one rank from the rows in sample order, so the values do
 * not depend on the number of ranks. Memory per task: one chunk of rows, the
 * sampled rows (sample x d) and one block of 256 rows of distances. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/mpi_reduce.h"
#include "run/analysis.h"
#include "run/rows.h"

#define BLOCK_ROWS 256

typedef struct align_opts {
  char *positive; /* dataset of the second views; NULL: pairs of samples with the same label */
  double alpha, t;
  int64_t sample, seed;
} align_opts;

extern const an_kind an_alignment;

static const char *const keys[] = {"positive", "alpha", "t", "sample", "seed", NULL};

static const align_opts *ao(const job_analysis *a) { return a->opts; }

static re_status parse(job *j, job_analysis *a, const re_cfg *c) {
  align_opts *o = a->opts;
  const char *pos = "labels";
  RE_TRY(re_cfg_get_string(c, "positive", &pos));
  int labels = !strcmp(pos, "labels");
  if (labels && !re_cfg_get(c, "dataset") && j->ndatasets == 1 && j->datasets[0].has_labels)
    RE_TRY(re_strdup(j->datasets[0].name, &a->dataset)); /* the job's only dataset */
  else
    RE_TRY(an_parse_dataset(j, a, c, "dataset", 1, labels, &a->dataset));
  if (!labels) {
    RE_TRY(an_parse_dataset(j, a, c, "positive", 1, 0, &o->positive));
    if (!strcmp(o->positive, a->dataset))
      return re_cfg_error(re_cfg_get(c, "positive"), RE_EINVAL,
                          "alignment '%s': 'positive' names the dataset itself; give the dataset of the second views "
                          "(the same samples, augmented otherwise) or 'labels'",
                          a->name);
  }
  o->alpha = 2.0;
  o->t = 2.0;
  o->sample = 2000;
  o->seed = 20261204;
  RE_TRY(re_cfg_get_double(c, "alpha", &o->alpha));
  if (!(o->alpha > 0 && o->alpha <= 16))
    return re_cfg_error(re_cfg_get(c, "alpha"), RE_EINVAL, "alpha must be in (0, 16]");
  if (labels && o->alpha != 2.0)
    return re_cfg_error(re_cfg_get(c, "alpha"), RE_EINVAL,
                        "alignment '%s': same-label pairs are summed per class, which needs alpha 2", a->name);
  RE_TRY(re_cfg_get_double(c, "t", &o->t));
  if (!(o->t > 0 && o->t <= 100))
    return re_cfg_error(re_cfg_get(c, "t"), RE_EINVAL, "t must be in (0, 100]");
  RE_TRY(re_cfg_get_int(c, "sample", &o->sample));
  if (o->sample < 2 || o->sample > 100000)
    return re_cfg_error(re_cfg_get(c, "sample"), RE_EINVAL, "sample must be in [2, 100000] (samples whose pairs "
                                                            "give the uniformity)");
  RE_TRY(re_cfg_get_int(c, "seed", &o->seed));
  if (o->seed < 0)
    return re_cfg_error(re_cfg_get(c, "seed"), RE_EINVAL, "seed must be >= 0");
  return RE_OK;
}

static void free_opts(void *opts) { free(((align_opts *)opts)->positive); }

static int other_dataset(const job_analysis *a, int k, const char **name) {
  *name = k == 0 ? ao(a)->positive : NULL;
  return k < 1;
}

static int tap_selected(const runner *r, const job_analysis *a, int t) {
  return run_label_selected(a, run_tap_ckpt(r, t)) && run_layer_selected(a, run_tap_layer(r, t));
}

/* On a pass over one of its datasets: the selected taps' rows (and the labels for
 * same-label pairs) to the cache. */
static re_status setup(runner *r, pass *p, an_run *ar) {
  const job_analysis *a = ar->a;
  int labels = !ao(a)->positive && job_dataset_index(r->plan.j, a->dataset) == p->d;
  return an_keep_rows(r, p, ar, labels);
}

/* Rows scaled to unit L2 norm, in float64 (a zero row stays zero). */
static void normalise(const float *x, int64_t rows, int64_t d, double *out) {
  for (int64_t i = 0; i < rows; i++) {
    double s = 0;
    for (int64_t j = 0; j < d; j++)
      s += (double)x[i * d + j] * x[i * d + j];
    double inv = s > 0 ? 1.0 / sqrt(s) : 0.0;
    for (int64_t j = 0; j < d; j++)
      out[i * d + j] = x[i * d + j] * inv;
  }
}

/* Rows [s0, s0 + b) of tap t of dataset d: read into x, scaled to unit norm into xn. */
static re_status unit_rows(runner *r, int d, int t, int64_t s0, int64_t b, float *x, double *xn) {
  RE_TRY(an_stored_rows(r, d, t, s0, s0 + b, x, NULL));
  normalise(x, b, r->plan.taps[t].dim, xn);
  return RE_OK;
}

/* The buffers of unit_rows for chunks of `rows` rows of width d. */
static re_status chunk_buffers(int64_t rows, int64_t d, float **x, double **xn) {
  RE_TRY(re_malloc(rows * d, sizeof(float), x));
  return re_malloc(rows * d, sizeof(double), xn);
}

/* Mean ||x_i - y_i||^alpha over the samples of two views (rows read chunk by chunk). */
static re_status align_views(runner *r, int d1, int d2, int t, double alpha, double *out) {
  int64_t n = r->plan.ds_n[d1], fb = r->plan.ds_chunk[d1], d = r->plan.taps[t].dim;
  float *x = NULL, *y = NULL;
  double *xn = NULL, *yn = NULL, sum = 0;
  re_status st = chunk_buffers(fb, d, &x, &xn);
  if (st == RE_OK)
    st = chunk_buffers(fb, d, &y, &yn);
  for (int64_t s0 = 0; s0 < n && st == RE_OK; s0 += fb) {
    int64_t b = n - s0 < fb ? n - s0 : fb;
    st = unit_rows(r, d1, t, s0, b, x, xn);
    if (st == RE_OK)
      st = unit_rows(r, d2, t, s0, b, y, yn);
    if (st != RE_OK)
      break;
    for (int64_t i = 0; i < b; i++) {
      double q = 0;
      for (int64_t j = 0; j < d; j++) {
        double e = xn[i * d + j] - yn[i * d + j];
        q += e * e;
      }
      sum += alpha == 2.0 ? q : pow(sqrt(q), alpha);
    }
  }
  *out = n > 0 ? sum / (double)n : NAN;
  free(x);
  free(y);
  free(xn);
  free(yn);
  return st;
}

/* Mean ||x_i - x_j||^2 over ordered pairs i != j of equal labels, from class sums:
 * sum_{i,j in c} ||x_i - x_j||^2 = 2 n_c sum_i ||x_i||^2 - 2 ||sum_i x_i||^2. */
static re_status align_labels(runner *r, int d1, int t, double *out, const char **why) {
  int64_t n = r->plan.ds_n[d1], fb = r->plan.ds_chunk[d1], d = r->plan.taps[t].dim;
  int32_t *y = NULL;
  float *x = NULL;
  double *xn = NULL, *sums = NULL, *cnt = NULL, *sq = NULL;
  int32_t K = 0;
  re_status st = re_malloc(n > 0 ? n : 1, sizeof(int32_t), &y);
  if (st == RE_OK)
    st = an_stored_rows(r, d1, -1, 0, n, NULL, y);
  for (int64_t i = 0; st == RE_OK && i < n; i++) {
    if (y[i] < 0)
      st = re_err(RE_EDATA, "alignment: label %d of sample %lld is negative", y[i], (long long)i);
    else if (y[i] + 1 > K)
      K = y[i] + 1;
  }
  if (st == RE_OK)
    st = re_calloc((int64_t)K * d + 1, sizeof(double), &sums);
  if (st == RE_OK)
    st = re_calloc(K + 1, sizeof(double), &cnt);
  if (st == RE_OK)
    st = re_calloc(K + 1, sizeof(double), &sq);
  if (st == RE_OK)
    st = chunk_buffers(fb, d, &x, &xn);
  for (int64_t s0 = 0; s0 < n && st == RE_OK; s0 += fb) {
    int64_t b = n - s0 < fb ? n - s0 : fb;
    st = unit_rows(r, d1, t, s0, b, x, xn);
    if (st != RE_OK)
      break;
    for (int64_t i = 0; i < b; i++) {
      int32_t c = y[s0 + i];
      double q = 0;
      for (int64_t j = 0; j < d; j++) {
        sums[(int64_t)c * d + j] += xn[i * d + j];
        q += xn[i * d + j] * xn[i * d + j];
      }
      cnt[c] += 1;
      sq[c] += q;
    }
  }
  double num = 0, pairs = 0;
  for (int32_t c = 0; st == RE_OK && c < K; c++) {
    double s2 = 0;
    for (int64_t j = 0; j < d; j++)
      s2 += sums[(int64_t)c * d + j] * sums[(int64_t)c * d + j];
    double v = 2.0 * cnt[c] * sq[c] - 2.0 * s2;
    num += v > 0 ? v : 0; /* rounding of equal rows */
    pairs += cnt[c] * (cnt[c] - 1);
  }
  *out = pairs > 0 ? num / pairs : NAN;
  *why = pairs > 0 ? NULL : "no two samples share a label";
  free(y);
  free(x);
  free(xn);
  free(sums);
  free(cnt);
  free(sq);
  return st;
}

/* log of the mean exp(-t ||x_i - x_j||^2) over pairs i < j of a seeded sample of dataset d. */
static re_status uniformity(runner *r, const align_opts *o, int d1, int t, double *out, int64_t *m_out) {
  int64_t n = r->plan.ds_n[d1], fb = r->plan.ds_chunk[d1], d = r->plan.taps[t].dim, *idx = NULL, m = 0;
  float *chunk = NULL, *f = NULL;
  double *fn = NULL, *g = NULL, *nrm = NULL;
  re_status st = rows_sample(n, o->sample, (uint64_t)o->seed, &idx, &m);
  *m_out = m;
  if (st == RE_OK)
    st = re_malloc(fb * d, sizeof(float), &chunk);
  if (st == RE_OK)
    st = re_malloc(m * d + 1, sizeof(float), &f);
  for (int64_t k = 0, s0 = 0; st == RE_OK && k < m; s0 += fb) { /* the chunks holding sampled rows */
    if (idx[k] >= s0 + fb)
      continue;
    int64_t b = n - s0 < fb ? n - s0 : fb;
    st = an_stored_rows(r, d1, t, s0, s0 + b, chunk, NULL);
    for (; st == RE_OK && k < m && idx[k] < s0 + b; k++)
      memcpy(f + k * d, chunk + (idx[k] - s0) * d, sizeof(float) * (size_t)d);
  }
  if (st == RE_OK)
    st = re_malloc(m * d + 1, sizeof(double), &fn);
  if (st == RE_OK)
    st = re_malloc(BLOCK_ROWS * m + 1, sizeof(double), &g);
  if (st == RE_OK)
    st = re_malloc(m + 1, sizeof(double), &nrm);
  double sum = 0;
  if (st == RE_OK) {
    normalise(f, m, d, fn);
    for (int64_t i = 0; i < m; i++) {
      double s = 0;
      for (int64_t j = 0; j < d; j++)
        s += fn[i * d + j] * fn[i * d + j];
      nrm[i] = s;
    }
    for (int64_t i0 = 0; i0 < m; i0 += BLOCK_ROWS) {
      int64_t bi = m - i0 < BLOCK_ROWS ? m - i0 : BLOCK_ROWS;
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)bi, (int)m, (int)d, 1.0, fn + i0 * d, (int)d, fn,
                  (int)d, 0.0, g, (int)m);
      for (int64_t i = 0; i < bi; i++)
        for (int64_t j = i0 + i + 1; j < m; j++) {
          double d2 = nrm[i0 + i] + nrm[j] - 2.0 * g[i * m + j];
          sum += exp(-o->t * (d2 > 0 ? d2 : 0));
        }
    }
  }
  *out = m >= 2 ? log(sum / (0.5 * (double)m * (double)(m - 1))) : NAN;
  free(idx);
  free(chunk);
  free(f);
  free(fn);
  free(g);
  free(nrm);
  return st;
}

/* One tap: its rows (this rank's rows sink). */
static re_status task(runner *r, const job_analysis *a, int t) {
  const align_opts *o = ao(a);
  const job *j = r->plan.j;
  int d1 = job_dataset_index(j, a->dataset), d2 = o->positive ? job_dataset_index(j, o->positive) : -1;
  char param[300];
  double v;
  const char *why = NULL;
  if (d2 >= 0) {
    if (r->plan.ds_n[d1] != r->plan.ds_n[d2])
      return re_err(RE_EINVAL, "alignment '%s': datasets '%s' and '%s' are two views of the same samples but hold "
                               "%lld and %lld samples",
                    a->name, a->dataset, o->positive, (long long)r->plan.ds_n[d1], (long long)r->plan.ds_n[d2]);
    RE_TRY(align_views(r, d1, d2, t, o->alpha, &v));
    snprintf(param, sizeof param, "pairs=views positive=%s alpha=%g", o->positive, o->alpha);
  } else {
    RE_TRY(align_labels(r, d1, t, &v, &why));
    snprintf(param, sizeof param, "pairs=labels alpha=2");
  }
  run_row(r, a->name, "alignment", t, -1, a->dataset, param, v, why);
  for (int k = 0; k < (d2 >= 0 ? 2 : 1); k++) {
    int d = k ? d2 : d1;
    int64_t m = 0;
    RE_TRY(uniformity(r, o, d, t, &v, &m));
    snprintf(param, sizeof param, "t=%g sample=%lld", o->t, (long long)m);
    run_row(r, a->name, "uniformity", t, -1, j->datasets[d].name, param, v, m >= 2 ? NULL : "fewer than two samples");
  }
  return RE_OK;
}

/* Collective: every alignment analysis' taps, in contiguous blocks over the ranks. */
static re_status after_passes(runner *r) {
  const job *j = r->plan.j;
  int ntasks = 0;
  for (int a = 0; a < j->nanalyses; a++)
    for (int t = 0; j->analyses[a].kind == &an_alignment && t < r->plan.ntaps; t++)
      ntasks += tap_selected(r, &j->analyses[a], t);
  int64_t lo, hi;
  an_block(r, ntasks, &lo, &hi);
  rows_sink sink;
  re_status st = an_rows_begin(r, &sink);
  int k = 0;
  for (int a = 0; a < j->nanalyses && st == RE_OK; a++)
    for (int t = 0; j->analyses[a].kind == &an_alignment && t < r->plan.ntaps && st == RE_OK; t++) {
      if (!tap_selected(r, &j->analyses[a], t))
        continue;
      if (k >= lo && k < hi) {
        st = task(r, &j->analyses[a], t);
        if (st != RE_OK)
          re_err_context(st, "alignment '%s', %s/%s/%s: ", j->analyses[a].name, run_tap_model(r, t),
                         run_tap_ckpt(r, t), run_tap_layer(r, t));
      }
      k++;
    }
  return an_rows_end(r, &sink, re_mpi_agree(r->comm.comm, st));
}

static void manifest(FILE *f, const job_analysis *a) {
  const align_opts *o = ao(a);
  fprintf(f, ", \"dataset\": ");
  re_json_string(f, a->dataset);
  fprintf(f, ", \"positive\": ");
  re_json_string(f, o->positive ? o->positive : "labels");
  fprintf(f, ", \"alpha\": %.17g, \"t\": %.17g, \"sample\": %lld, \"seed\": %lld", o->alpha, o->t,
          (long long)o->sample, (long long)o->seed);
}

const an_kind an_alignment = {
    .type = "alignment",
    .keys = keys,
    .pairs = AN_NO_PAIRS,
    .opts_size = sizeof(align_opts),
    .own_dataset = 1,
    .parse = parse,
    .free_opts = free_opts,
    .other_dataset = other_dataset,
    .setup = setup,
    .after_passes = after_passes,
    .manifest = manifest,
};
