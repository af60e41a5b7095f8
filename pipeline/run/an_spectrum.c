/* The spectrum analysis: the PCA spectrum of each tap from the pass's co-moments:
 * effective ranks, participation ratio, k90/k99 and collapse (docs/metrics.md); the
 * taps are spread over the ranks in contiguous blocks. Writes spectrum_<name>.npy
 * (P x max width eigenvalues, NaN-padded) and its tap table. With `uncertainty:`,
 * every tap's metrics in each bootstrap replicate (run/unc.h) give their columns. */
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/mpi_reduce.h"
#include "mpi/tags.h"
#include "repeval/cca.h"
#include "run/analysis.h"
#include "run/unc.h"

typedef struct spectrum_opts {
  double collapse_fraction;
  an_unc unc; /* uncertainty: the bootstrap over samples (run/unc.h) */
} spectrum_opts;

static const char *const keys[] = {"collapse_fraction", "uncertainty", NULL};

/* The per-tap metrics with an uncertainty (collapsed, a flag, has none). */
#define NSPEC 6
static const char *const spec_names[NSPEC] = {"effective_rank", "effective_rank_eig", "participation_ratio",
                                              "total_variance",  "k90",                "k99"};

static void spec_values(const re_spectrum *sp, double *v) {
  v[0] = sp->effective_rank, v[1] = sp->effective_rank_eig, v[2] = sp->participation_ratio;
  v[3] = sp->total_variance, v[4] = (double)sp->k90, v[5] = (double)sp->k99;
}

static re_status parse(job *j, job_analysis *a, const re_cfg *c) {
  spectrum_opts *o = a->opts;
  o->collapse_fraction = 0.05;
  RE_TRY(re_cfg_get_double(c, "collapse_fraction", &o->collapse_fraction));
  if (!(o->collapse_fraction >= 0 && o->collapse_fraction <= 1))
    return re_cfg_error(re_cfg_get(c, "collapse_fraction"), RE_EINVAL, "collapse_fraction must be in [0, 1]");
  return unc_parse(a, c, UNC_COMOMENTS | UNC_PER_TAP, &o->unc);
}

/* Each tap with itself: the diagonal blocks of the co-moments. */
static re_status setup(runner *r, pass *p, an_run *ar) {
  const spectrum_opts *o = ar->a->opts;
  RE_TRY(run_pass_use_moments(r, p, ar, 1));
  return unc_moments_create(r, p, ar, &o->unc, 1, &ar->ux);
}

/* The metrics of taps [lo, hi) in every bootstrap replicate: out[((q - lo) * NSPEC + m) * nb + k]
 * (NAN where a replicate's tap has no variance). */
static re_status replicate_values(const an_run *ar, const spectrum_opts *o, int64_t lo, int64_t hi, double *out) {
  int nb = unc_moments_nboot(ar->ux);
  re_status st = RE_OK;
  for (int k = 0; k < nb && st == RE_OK; k++) {
    const re_moments *m = unc_moments_boot(ar->ux, k);
    for (int64_t q = lo; q < hi && st == RE_OK; q++) {
      re_eig *e = NULL;
      double v[NSPEC];
      for (int j = 0; j < NSPEC; j++)
        v[j] = NAN;
      re_status se = re_eig_create(re_moments_block(m, (int)q, (int)q, NULL), re_moments_dim(m, (int)q),
                                   re_moments_n(m), &e);
      re_spectrum sp;
      if (se == RE_OK && re_spectrum_from_eig(e, o->collapse_fraction, &sp) == RE_OK)
        spec_values(&sp, v);
      else if (se != RE_EUNDEFINED)
        st = se;
      re_eig_destroy(&e);
      for (int j = 0; j < NSPEC; j++)
        out[((q - lo) * NSPEC + j) * nb + k] = v[j];
    }
  }
  return st;
}

/* A rank's finalize: its block [lo, hi) of the taps, the table S of every tap (rows of
 * w = dmax + 3: the eigenvalues NaN-padded to dmax, then collapsed, effective rank,
 * width), the bootstrap values bv of its block (nb per tap and metric), the rows' param. */
typedef struct spec_work {
  int64_t lo, hi, dmax, w;
  double *S, *bv;
  int nb;
  char param[192];
} spec_work;

/* The table, the param and (with uncertainty, collective) the bootstrap values. */
static re_status work_create(runner *r, an_run *ar, spec_work *k) {
  const spectrum_opts *o = ar->a->opts;
  int P = ar->P;
  k->dmax = 1;
  for (int q = 0; q < P; q++)
    k->dmax = r->plan.taps[ar->taps[q]].dim > k->dmax ? r->plan.taps[ar->taps[q]].dim : k->dmax;
  k->w = k->dmax + 3;
  an_block(r, P, &k->lo, &k->hi);
  RE_TRY(re_malloc((int64_t)P * k->w, sizeof(double), &k->S));
  for (int64_t e = 0; e < (int64_t)P * k->w; e++)
    k->S[e] = NAN;
  snprintf(k->param, sizeof k->param, "collapse_fraction=%g", o->collapse_fraction);
  unc_param(&o->unc, 0, k->param, sizeof k->param);
  k->nb = unc_moments_nboot(ar->ux);
  if (!ar->ux)
    return RE_OK;
  re_status st = re_mpi_agree(r->comm.comm, re_malloc((k->hi - k->lo) * NSPEC * (k->nb > 0 ? k->nb : 1),
                                                      sizeof(double), &k->bv));
  if (st == RE_OK)
    st = unc_moments_share(r, ar->ux); /* collective */
  if (st == RE_OK)
    st = re_mpi_agree(r->comm.comm, replicate_values(ar, o, k->lo, k->hi, k->bv));
  return st;
}

/* The rows of this rank's taps, and their lines of the table. */
static re_status tap_rows(runner *r, pass *p, an_run *ar, re_eig **eigs, spec_work *k) {
  const job_analysis *a = ar->a;
  const spectrum_opts *o = a->opts;
  re_status st = RE_OK;
  for (int64_t q = k->lo; q < k->hi && st == RE_OK; q++) {
    int t = ar->taps[q], li = p->mom_of[t];
    double *row = k->S + q * k->w;
    row[k->dmax] = 0;
    st = an_eig(p, eigs, li);
    if (st == RE_EUNDEFINED) {
      run_row(r, a->name, "effective_rank", t, -1, a->dataset, k->param, NAN, re_errmsg());
      st = RE_OK;
      continue;
    }
    re_spectrum sp;
    if (st == RE_OK)
      st = re_spectrum_from_eig(eigs[li], o->collapse_fraction, &sp);
    if (st != RE_OK)
      break;
    memcpy(row, eigs[li]->values, sizeof(double) * (size_t)eigs[li]->d);
    row[k->dmax] = sp.collapsed, row[k->dmax + 1] = sp.effective_rank, row[k->dmax + 2] = (double)sp.d;
    double v[NSPEC];
    spec_values(&sp, v);
    for (int m = 0; m < NSPEC && st == RE_OK; m++) {
      re_uncertainty un;
      re_uncertainty_clear(&un);
      if (ar->ux)
        st = unc_summary(&o->unc, v[m], k->bv + ((q - k->lo) * NSPEC + m) * k->nb, k->nb, NULL, 0, 0, &un);
      unc_row(r, a->name, spec_names[m], t, -1, a->dataset, k->param, v[m], NULL, ar->ux ? &un : NULL);
    }
    run_row(r, a->name, "collapsed", t, -1, a->dataset, k->param, sp.collapsed, NULL);
  }
  return st;
}

/* Collective: the other ranks' blocks of the table to rank 0. */
static void gather_table(runner *r, int P, spec_work *k) {
  for (int src = 1; src < r->comm.size; src++) {
    int64_t a0 = (int64_t)P * src / r->comm.size, a1 = (int64_t)P * (src + 1) / r->comm.size;
    for (int64_t off = a0 * k->w; off < a1 * k->w; off += (1 << 26)) {
      int n = (int)(a1 * k->w - off < (1 << 26) ? a1 * k->w - off : (1 << 26));
      if (r->comm.rank == src)
        MPI_Send(k->S + off, n, MPI_DOUBLE, 0, TAG_SPECTRA, r->comm.comm);
      else if (r->comm.rank == 0)
        MPI_Recv(k->S + off, n, MPI_DOUBLE, src, TAG_SPECTRA, r->comm.comm, MPI_STATUS_IGNORE);
    }
  }
}

/* Rank 0: the collapse warnings, spectrum_<name>.npy (eigenvalues) and the tap table. */
static re_status write_table(runner *r, an_run *ar, spec_work *k) {
  for (int q = 0; q < ar->P; q++) {
    const double *row = k->S + (int64_t)q * k->w;
    int t = ar->taps[q];
    if (row[k->dmax] == 1)
      run_warn(r, "layer %s/%s/%s looks collapsed: effective rank %.1f of width %lld", run_tap_model(r, t),
               run_tap_ckpt(r, t), run_tap_layer(r, t), row[k->dmax + 1], (long long)row[k->dmax + 2]);
    if (q > 0) /* the matrix: eigenvalues only */
      memmove(k->S + (int64_t)q * k->dmax, row, sizeof(double) * (size_t)k->dmax);
  }
  re_status st = an_write_matrix(r, "spectrum", ar->a->name, k->S, ar->P, k->dmax);
  if (st == RE_OK)
    st = an_write_taps(r, ar);
  return st;
}

/* Collective: each rank's contiguous block of taps, the table gathered on rank 0. */
static re_status finalize(runner *r, pass *p, an_run *ar, re_eig **eigs) {
  spec_work k = {0};
  re_status st = work_create(r, ar, &k);
  if (st == RE_OK) {
    rows_sink sink;
    st = an_rows_begin(r, &sink);
    if (st == RE_OK)
      st = tap_rows(r, p, ar, eigs, &k);
    st = an_rows_end(r, &sink, st);
    gather_table(r, ar->P, &k);
    st = re_mpi_agree(r->comm.comm, st);
  }
  if (st == RE_OK && r->comm.rank == 0)
    st = write_table(r, ar, &k);
  free(k.bv);
  free(k.S);
  return st;
}

/* The own blocks of this rank's taps. */
static void moment_blocks(const runner *r, const pass *p, const an_run *ar, uint8_t *need) {
  int64_t lo, hi;
  an_block(r, ar->P, &lo, &hi);
  for (int64_t q = lo; q < hi; q++)
    an_need_blocks(p, ar->taps[q], -1, need);
}

/* The layers of this rank's taps. */
static void eig_layers(const runner *r, const pass *p, const an_run *ar, uint8_t *need) {
  int64_t lo, hi;
  an_block(r, ar->P, &lo, &hi);
  for (int64_t q = lo; q < hi; q++)
    need[p->mom_of[ar->taps[q]]] = 1;
}

static void manifest(FILE *f, const job_analysis *a) {
  const spectrum_opts *o = a->opts;
  an_manifest_dataset(f, a);
  fprintf(f, ", \"collapse_fraction\": %.17g", o->collapse_fraction);
  unc_manifest(f, &o->unc);
}

const an_kind an_spectrum = {
    .type = "spectrum",
    .keys = keys,
    .pairs = AN_NO_PAIRS,
    .opts_size = sizeof(spectrum_opts),
    .parse = parse,
    .setup = setup,
    .finalize = finalize,
    .moment_blocks = moment_blocks,
    .eig_layers = eig_layers,
    .manifest = manifest,
};
