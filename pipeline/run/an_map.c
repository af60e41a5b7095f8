/* The map analysis: 2-D maps of each tap's embedding (docs/metrics.md#embedding-maps).
 * The principal axes come from the pass's co-moments (exact for any number of
 * samples: the eigenvectors of the covariance of all of them); a seeded sample of
 * the samples is projected on the first `components` axes, the same samples for
 * every tap, so maps of one layer over training show the same points. The report
 * draws the first two coordinates (PCA) and a t-SNE of all of them.
 *
 * The sampled rows come from the checkpoints' chunks (the cache when the job has
 * one, else computed again: one more forward pass over the chunks holding sampled
 * samples). Checkpoints are spread over the ranks in contiguous blocks; each tap is
 * projected by one rank in one order, so the files do not depend on the number of
 * ranks. Writes map_<name>.npy (P x m x K float32, NaN-padded), map_<name>_samples.npy,
 * map_<name>_labels.npy (datasets with labels), map_<name>_variance.npy (P x K) and
 * map_<name>_taps.csv; rows pc1_variance_ratio, pc2_variance_ratio. */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/mpi_reduce.h"
#include "repeval/npy.h"
#include "run/analysis.h"
#include "run/rows.h"

typedef struct map_opts {
  int64_t sample, components;
  int64_t seed;
  int tsne;
} map_opts;

static const char *const keys[] = {"sample", "components", "seed", "tsne", NULL};

static re_status parse(job *j, job_analysis *a, const re_cfg *c) {
  map_opts *o = a->opts;
  o->sample = 500;
  o->components = 50;
  o->seed = 20261204;
  o->tsne = 1;
  RE_TRY(re_cfg_get_int(c, "sample", &o->sample));
  if (o->sample < 2 || o->sample > 100000)
    return re_cfg_error(re_cfg_get(c, "sample"), RE_EINVAL, "sample must be in [2, 100000] (points per map)");
  RE_TRY(re_cfg_get_int(c, "components", &o->components));
  if (o->components < 2 || o->components > 1000)
    return re_cfg_error(re_cfg_get(c, "components"), RE_EINVAL, "components must be in [2, 1000]");
  RE_TRY(re_cfg_get_int(c, "seed", &o->seed));
  if (o->seed < 0)
    return re_cfg_error(re_cfg_get(c, "seed"), RE_EINVAL, "seed must be >= 0");
  RE_TRY(re_cfg_get_bool(c, "tsne", &o->tsne));
  return RE_OK;
}

static re_status setup(runner *r, pass *p, an_run *ar) {
  for (int q = 0; q < ar->P; q++)
    if (r->plan.taps[ar->taps[q]].rps != 1)
      return re_cfg_error(ar->a->src, RE_EINVAL, "map '%s': layer '%s' is tapped with mode spatial; a map needs one "
                                                 "row per sample (tap it with :mean or :flatten)",
                          ar->a->name, run_tap_layer(r, ar->taps[q]));
  return run_pass_use_moments(r, p, ar, 1);
}

/* Tap q's sampled rows projected on its first K axes into out (K variance ratios,
 * then m x K coordinates; NaN where the tap has fewer axes). */
static re_status project(runner *r, pass *p, an_run *ar, re_eig **eigs, int q, const float *rows, int64_t m,
                         int64_t K, double *out) {
  int t = ar->taps[q], li = p->mom_of[t];
  int64_t d = r->plan.taps[t].dim;
  re_status st = an_eig(p, eigs, li);
  if (st == RE_EUNDEFINED) { /* fewer than two samples: no axes, the map stays NaN */
    re_err_clear();
    return RE_OK;
  }
  RE_TRY(st);
  const re_eig *e = eigs[li];
  const double *mu = re_moments_mean(p->mom, li);
  int64_t k = K < d ? K : d;
  double *xc = NULL, *c = NULL;
  st = re_malloc(m * d, sizeof(double), &xc);
  if (st == RE_OK)
    st = re_malloc(m * k, sizeof(double), &c);
  if (st == RE_OK) {
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < d; j++)
        xc[i * d + j] = (double)rows[i * d + j] - mu[j];
    /* coordinates: Xc V[:, :k] (V row-major d x d, column k the k-th axis) */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)k, (int)d, 1.0, xc, (int)d, e->vectors,
                (int)d, 0.0, c, (int)k);
    for (int64_t a = 0; a < k; a++) {
      int64_t big = 0; /* sign: the axis' largest |component| (the first of equals) is positive */
      for (int64_t j = 1; j < d; j++)
        if (fabs(e->vectors[j * d + a]) > fabs(e->vectors[big * d + a]))
          big = j;
      double s = e->vectors[big * d + a] < 0 ? -1.0 : 1.0;
      out[a] = e->trace > 0 ? e->values[a] / e->trace : NAN;
      for (int64_t i = 0; i < m; i++)
        out[K + i * K + a] = s * c[i * k + a];
    }
  }
  free(xc);
  free(c);
  return st;
}

/* This rank's checkpoints' taps [q0, q1): their sampled rows, one checkpoint at a time
 * (its chunks computed or read once for all its layers), projected. */
static re_status project_block(runner *r, pass *p, an_run *ar, re_eig **eigs, int q0, int q1, const int64_t *idx,
                               int64_t m, int64_t K, double *out) {
  re_status st = RE_OK;
  for (int g0 = q0; g0 < q1 && st == RE_OK;) {
    const tapinfo *tg = &r->plan.taps[ar->taps[g0]];
    int g1 = g0;
    while (g1 < q1 && r->plan.taps[ar->taps[g1]].model == tg->model && r->plan.taps[ar->taps[g1]].ckpt == tg->ckpt)
      g1++;
    float **rows = NULL;
    st = re_calloc(g1 - g0, sizeof(float *), &rows);
    for (int q = g0; q < g1 && st == RE_OK; q++)
      st = re_malloc(m, r->plan.taps[ar->taps[q]].dim * (int64_t)sizeof(float), &rows[q - g0]);
    for (int64_t i = 0; i < m && st == RE_OK; i++) /* sample-major: each chunk once for all layers */
      for (int q = g0; q < g1 && st == RE_OK; q++) {
        int t = ar->taps[q];
        st = run_pass_tap_rows(r, p, t, idx[i], idx[i] + 1, rows[q - g0] + i * r->plan.taps[t].dim);
      }
    for (int q = g0; q < g1 && st == RE_OK; q++) {
      st = project(r, p, ar, eigs, q, rows[q - g0], m, K, out + (int64_t)(q - q0) * (K + m * K));
      if (st != RE_OK)
        re_err_context(st, "map '%s', %s/%s/%s: ", ar->a->name, run_tap_model(r, ar->taps[q]),
                       run_tap_ckpt(r, ar->taps[q]), run_tap_layer(r, ar->taps[q]));
    }
    for (int q = g0; rows && q < g1; q++)
      free(rows[q - g0]);
    free(rows);
    g0 = g1;
  }
  return st;
}

/* The first tap of checkpoint block b of nb over the analysis' taps (checkpoints in tap order). */
static int block_start(runner *r, an_run *ar, int64_t b) {
  int nck = 0, q = 0;
  for (int k = 0; k < ar->P; k++)
    nck += k == 0 || r->plan.taps[ar->taps[k]].model != r->plan.taps[ar->taps[k - 1]].model ||
           r->plan.taps[ar->taps[k]].ckpt != r->plan.taps[ar->taps[k - 1]].ckpt;
  int64_t want = (int64_t)nck * b / r->comm.size; /* checkpoints before this block */
  for (int seen = 0; q < ar->P; q++) {
    int first = q == 0 || r->plan.taps[ar->taps[q]].model != r->plan.taps[ar->taps[q - 1]].model ||
                r->plan.taps[ar->taps[q]].ckpt != r->plan.taps[ar->taps[q - 1]].ckpt;
    if (first && seen++ == want)
      break;
  }
  return q;
}

static re_status write_npy(runner *r, const char *name, const char *suffix, re_dtype dt, int nd,
                           const int64_t *shape, const void *data) {
  char path[4400];
  if ((size_t)snprintf(path, sizeof path, "%s/map_%s%s.npy", r->plan.partial, name, suffix) >= sizeof path)
    return re_err(RE_EINVAL, "%s/map_%s%s.npy: path too long", r->plan.partial, name, suffix);
  return re_npy_write(path, dt, nd, shape, data);
}

/* Rank 0: the files and rows from every tap's ratios and coordinates (all: P x w). */
static re_status write_out(runner *r, an_run *ar, const double *all, const int64_t *idx, const int32_t *labels,
                           int64_t m, int64_t K) {
  const char *name = ar->a->name;
  int P = ar->P;
  int64_t w = K + m * K;
  float *coords = NULL;
  double *ratios = NULL;
  int64_t *lab = NULL;
  re_status st = re_malloc((int64_t)P * m * K, sizeof(float), &coords);
  if (st == RE_OK)
    st = re_malloc((int64_t)P * K, sizeof(double), &ratios);
  if (st == RE_OK && labels)
    st = re_malloc(m, sizeof(int64_t), &lab);
  for (int q = 0; st == RE_OK && q < P; q++) {
    const double *src = all + (int64_t)q * w;
    memcpy(ratios + (int64_t)q * K, src, sizeof(double) * (size_t)K);
    for (int64_t e = 0; e < m * K; e++)
      coords[(int64_t)q * m * K + e] = (float)src[K + e];
    char param[64];
    snprintf(param, sizeof param, "sample=%lld", (long long)m);
    for (int a = 0; a < 2; a++)
      run_row(r, name, a ? "pc2_variance_ratio" : "pc1_variance_ratio", ar->taps[q], -1, ar->a->dataset, param,
              src[a], isfinite(src[a]) ? NULL : "no principal axis (fewer than two samples, or constant features)");
  }
  for (int64_t i = 0; lab && i < m; i++)
    lab[i] = labels[i];
  int64_t s3[3] = {P, m, K}, s2[2] = {P, K}, s1[1] = {m};
  if (st == RE_OK)
    st = write_npy(r, name, "", RE_DTYPE_F32, 3, s3, coords);
  if (st == RE_OK)
    st = write_npy(r, name, "_variance", RE_DTYPE_F64, 2, s2, ratios);
  if (st == RE_OK)
    st = write_npy(r, name, "_samples", RE_DTYPE_I64, 1, s1, idx);
  if (st == RE_OK && lab)
    st = write_npy(r, name, "_labels", RE_DTYPE_I64, 1, s1, lab);
  if (st == RE_OK)
    st = an_write_taps(r, ar);
  free(coords);
  free(ratios);
  free(lab);
  return st;
}

/* Collective: the sample, each rank's block of checkpoints projected, gathered on rank 0. */
static re_status finalize(runner *r, pass *p, an_run *ar, re_eig **eigs) {
  const map_opts *o = ar->a->opts;
  int P = ar->P;
  int64_t *idx = NULL, m = 0, dmax = 1;
  int32_t *labels = NULL;
  for (int q = 0; q < P; q++)
    dmax = r->plan.taps[ar->taps[q]].dim > dmax ? r->plan.taps[ar->taps[q]].dim : dmax;
  int64_t K = o->components < dmax ? o->components : dmax;
  re_status st = rows_sample(p->n, o->sample, (uint64_t)o->seed, &idx, &m);
  int64_t w = K + m * K;
  if (st == RE_OK && (double)P * (double)w * 8.0 > (double)INT_MAX)
    st = re_err(RE_ENOMEM, "map '%s': %d taps x %lld samples x %lld components are too many for one file; lower "
                           "'sample' or 'components'",
                ar->a->name, P, (long long)m, (long long)K);
  int q0 = block_start(r, ar, r->comm.rank), q1 = block_start(r, ar, r->comm.rank + 1);
  double *mine = NULL, *all = NULL;
  if (st == RE_OK)
    st = re_malloc((int64_t)(q1 - q0) * w + 1, sizeof(double), &mine);
  for (int64_t e = 0; st == RE_OK && e < (int64_t)(q1 - q0) * w; e++)
    mine[e] = NAN;
  if (st == RE_OK)
    st = project_block(r, p, ar, eigs, q0, q1, idx, m, K, mine);
  if (st == RE_OK && r->comm.rank == 0)
    st = re_malloc((int64_t)P * w + 1, sizeof(double), &all);
  if (st == RE_OK && r->comm.rank == 0 && re_dataset_get_info(p->ds)->has_labels) {
    st = re_malloc(m, sizeof(int32_t), &labels);
    if (st == RE_OK)
      st = rows_labels(p, idx, m, labels);
  }
  int *counts = NULL, *displs = NULL;
  if (st == RE_OK && r->comm.rank == 0) {
    st = re_calloc(r->comm.size, sizeof(int), &counts);
    if (st == RE_OK)
      st = re_calloc(r->comm.size, sizeof(int), &displs);
    for (int k = 0; st == RE_OK && k < r->comm.size; k++) {
      int a = block_start(r, ar, k), b = block_start(r, ar, k + 1);
      displs[k] = (int)((int64_t)a * w), counts[k] = (int)((int64_t)(b - a) * w);
    }
  }
  st = re_mpi_agree(r->comm.comm, st);
  if (st == RE_OK)
    MPI_Gatherv(mine, (int)((int64_t)(q1 - q0) * w), MPI_DOUBLE, all, counts, displs, MPI_DOUBLE, 0, r->comm.comm);
  if (st == RE_OK && r->comm.rank == 0)
    st = write_out(r, ar, all, idx, labels, m, K);
  free(counts);
  free(displs);
  free(mine);
  free(all);
  free(idx);
  free(labels);
  return st;
}

static void manifest(FILE *f, const job_analysis *a) {
  const map_opts *o = a->opts;
  an_manifest_dataset(f, a);
  fprintf(f, ", \"sample\": %lld, \"components\": %lld, \"seed\": %lld, \"tsne\": %s", (long long)o->sample,
          (long long)o->components, (long long)o->seed, o->tsne ? "true" : "false");
}

const an_kind an_map = {
    .type = "map",
    .keys = keys,
    .pairs = AN_NO_PAIRS,
    .opts_size = sizeof(map_opts),
    .parse = parse,
    .setup = setup,
    .finalize = finalize,
    .manifest = manifest,
};
