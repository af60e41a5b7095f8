/* The shape analysis: generalized shape metrics between pairs of taps (Williams et
 * al. 2021, as netrep computes them; docs/metrics.md): the partial-whitening family
 * at each requested alpha, angular and Euclidean, and optionally the permutation
 * metric, from the pass's co-moments. The pairs are spread over the ranks in shares
 * that read few taps (run/pair_share.h); their rows reach metrics.csv in pair order;
 * the alignment maps are written by rank 0 on request. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "out/path.h"
#include "repeval/shape.h"
#include "run/analysis.h"

#define MAX_ALPHAS 16

typedef struct shape_opts {
  double alpha[MAX_ALPHAS];
  int na;
  int permutation; /* also the permutation metric */
  int transforms;  /* write the alignment maps */
} shape_opts;

static const char *const keys[] = {"alpha", "permutation", "transforms", NULL};

static re_status parse(job *j, job_analysis *a, const re_cfg *c) {
  shape_opts *o = a->opts;
  const re_cfg *ac = re_cfg_get(c, "alpha");
  o->na = 3;
  o->alpha[0] = 0, o->alpha[1] = 0.5, o->alpha[2] = 1;
  if (ac) {
    const re_cfg *one[1] = {ac};
    const re_cfg *const *items = ac->kind == RE_CFG_SEQ ? (const re_cfg *const *)ac->items : one;
    int64_t count = ac->kind == RE_CFG_SEQ ? ac->n : 1;
    if (count < 1 || count > MAX_ALPHAS)
      return re_cfg_error(ac, RE_EINVAL, "alpha must be a number or a list of 1 to %d numbers in [0, 1]", MAX_ALPHAS);
    for (int64_t e = 0; e < count; e++) {
      RE_TRY(re_cfg_double(items[e], &o->alpha[e]));
      if (!(o->alpha[e] >= 0 && o->alpha[e] <= 1))
        return re_cfg_error(items[e], RE_EINVAL, "alpha must be in [0, 1] (0: CCA, 1: Procrustes)");
    }
    o->na = (int)count;
  }
  RE_TRY(re_cfg_get_bool(c, "permutation", &o->permutation));
  RE_TRY(re_cfg_get_bool(c, "transforms", &o->transforms));
  return RE_OK;
}

static re_status setup(runner *r, pass *p, an_run *ar) { return run_pass_use_moments(r, p, ar, 0); }

/* Rank 0: shape_<name>_<i>_<j>_alpha<A>_x.npy and _y.npy for every wanted pair. */
static re_status write_transforms(runner *r, pass *p, an_run *ar, re_eig **eigs) {
  const shape_opts *o = ar->a->opts;
  re_status st = RE_OK;
  an_pair_it it;
  for (an_pairs_all(ar, &it); st == RE_OK && an_pairs_next(ar, &it);) {
    int i = it.i, l = it.l, la, lb, tr;
    st = an_eig_pair(p, eigs, ar, i, l, &la, &lb);
    if (st == RE_EUNDEFINED) { /* fewer than 2 samples: the rows say so */
      st = RE_OK;
      continue;
    }
    if (st != RE_OK)
      break;
    const double *C = re_moments_block(p->mom, la, lb, &tr);
    int64_t pa = eigs[la]->d, qb = eigs[lb]->d, k = pa < qb ? pa : qb;
    double *Wx = NULL, *Wy = NULL, ang, euc;
    st = re_malloc(pa, k * (int64_t)sizeof(double), &Wx);
    if (st == RE_OK)
      st = re_malloc(qb, k * (int64_t)sizeof(double), &Wy);
    for (int e = 0; e < o->na && st == RE_OK; e++) {
      st = re_shape_metric(eigs[la], eigs[lb], C, tr, o->alpha[e], &ang, &euc, Wx, Wy);
      if (st == RE_EUNDEFINED) {
        st = RE_OK;
        break;
      }
      char file[400];
      int64_t sx[2] = {pa, k}, sy[2] = {qb, k};
      if (st == RE_OK)
        st = re_path_join(file, sizeof file, "shape_%s_%d_%d_alpha%g_x.npy", ar->a->name, i, l, o->alpha[e]);
      if (st == RE_OK)
        st = an_write_npy(r, file, RE_DTYPE_F64, 2, sx, Wx);
      if (st == RE_OK)
        st = re_path_join(file, sizeof file, "shape_%s_%d_%d_alpha%g_y.npy", ar->a->name, i, l, o->alpha[e]);
      if (st == RE_OK)
        st = an_write_npy(r, file, RE_DTYPE_F64, 2, sy, Wy);
    }
    free(Wx);
    free(Wy);
  }
  if (st == RE_OK)
    st = an_write_taps(r, ar);
  return st;
}

/* The angular and Euclidean rows of pair (ta, tb): the shape metric at alpha, or with
 * alpha NaN the permutation metric; `why` (non-NULL) makes them undefined. */
static re_status metric_rows(runner *r, const job_analysis *a, int ta, int tb, const re_eig *ea, const re_eig *eb,
                             const double *C, int tr, double alpha, const char *why) {
  int perm = isnan(alpha);
  double ang = NAN, euc = NAN;
  re_status st = RE_OK;
  if (!why) {
    st = perm ? re_permutation_metric(ea, eb, C, tr, &ang, &euc, NULL)
              : re_shape_metric(ea, eb, C, tr, alpha, &ang, &euc, NULL, NULL);
    if (st == RE_EUNDEFINED) {
      why = re_errmsg();
      st = RE_OK;
    }
  }
  if (st != RE_OK)
    return st;
  char param[96] = "";
  if (!perm)
    snprintf(param, sizeof param, "alpha=%g", alpha);
  run_row(r, a->name, perm ? "permutation_angular" : "shape_angular", ta, tb, a->dataset, param, ang, why);
  run_row(r, a->name, perm ? "permutation_euclidean" : "shape_euclidean", ta, tb, a->dataset, param, euc, why);
  return RE_OK;
}

static re_status finalize(runner *r, pass *p, an_run *ar, re_eig **eigs) {
  const job_analysis *a = ar->a;
  const shape_opts *o = a->opts;
  rows_sink sink;
  re_status st = an_rows_begin_pairs(r, &sink, ar);
  an_pair_it it;
  for (an_pairs_share(r, ar, &it); st == RE_OK && an_pairs_next(ar, &it);) {
    st = an_rows_pair(&sink, &it);
    if (st != RE_OK)
      break;
    int ta = ar->taps[it.i], tb = ar->taps[it.l], la, lb, tr;
    const char *why = NULL;
    st = an_eig_pair(p, eigs, ar, it.i, it.l, &la, &lb);
    if (st == RE_EUNDEFINED) {
      why = "fewer than 2 samples";
      st = RE_OK;
    }
    if (st != RE_OK)
      break;
    const double *C = re_moments_block(p->mom, la, lb, &tr);
    for (int e = 0; e < o->na && st == RE_OK; e++)
      st = metric_rows(r, a, ta, tb, eigs[la], eigs[lb], C, tr, o->alpha[e], why);
    if (st == RE_OK && o->permutation)
      st = metric_rows(r, a, ta, tb, eigs[la], eigs[lb], C, tr, NAN, why);
  }
  st = an_rows_end(r, &sink, st);
  if (st == RE_OK && o->transforms && r->comm.rank == 0)
    st = write_transforms(r, p, ar, eigs);
  return st;
}

static void manifest(FILE *f, const job_analysis *a) {
  const shape_opts *o = a->opts;
  an_manifest_dataset(f, a);
  fprintf(f, ", \"alpha\": [");
  for (int e = 0; e < o->na; e++)
    fprintf(f, "%s%.17g", e ? ", " : "", o->alpha[e]);
  fprintf(f, "], \"permutation\": %s, \"transforms\": %s", o->permutation ? "true" : "false",
          o->transforms ? "true" : "false");
  an_manifest_pairs(f, a);
}

const an_kind an_shape = {
    .type = "shape",
    .keys = keys,
    .pairs = AN_PAIRS,
    .default_pairs = PAIRS_SAME_LAYER,
    .pair_cost_width = 1,
    .opts_size = sizeof(shape_opts),
    .parse = parse,
    .setup = setup,
    .finalize = finalize,
    .manifest = manifest,
};
