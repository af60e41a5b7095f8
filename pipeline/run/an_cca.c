/* The cca analysis: CCA (mean rho, mean rho^2), SVCCA, PWCCA, orthogonal Procrustes
 * and linear-regression R^2 between pairs of taps, from the pass's co-moments
 * (docs/metrics.md). The pairs are spread over the ranks in contiguous blocks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "repeval/cca.h"
#include "repeval/shape.h"
#include "run/analysis.h"

enum { CCA_CCA = 1, CCA_SVCCA = 2, CCA_PWCCA = 4, CCA_PROCRUSTES = 8, CCA_LINREG = 16 };
static const char *const method_names[] = {"cca", "svcca", "pwcca", "procrustes", "linreg"};

typedef struct cca_opts {
  unsigned methods; /* CCA_* bits */
  double variance;  /* SVCCA: variance kept per side */
  double ridge;     /* relative ridge of the covariances */
  int directions;   /* write the canonical directions of every pair */
} cca_opts;

static const char *const keys[] = {"methods", "variance", "ridge", "directions", NULL};

static re_status parse(job *j, job_analysis *a, const re_cfg *c) {
  cca_opts *o = a->opts;
  RE_TRY(an_parse_dataset(j, a, c, "dataset", 1, 0, &a->dataset));
  o->variance = 0.99;
  o->ridge = 1e-10;
  o->methods = CCA_CCA | CCA_SVCCA | CCA_PWCCA;
  const re_cfg *m = re_cfg_get(c, "methods");
  if (m) {
    if (m->kind != RE_CFG_SEQ || m->n == 0)
      return re_cfg_error(m, RE_EINVAL, "methods must be a list of cca, svcca, pwcca, procrustes, linreg");
    o->methods = 0;
    for (int64_t k = 0; k < m->n; k++) {
      const char *s;
      RE_TRY(re_cfg_string(m->items[k], &s));
      unsigned bit = 0;
      for (int b = 0; b < 5; b++)
        if (!strcmp(s, method_names[b]))
          bit = 1u << b;
      if (!bit)
        return re_cfg_error(m->items[k], RE_EINVAL, "unknown method '%s' (cca, svcca, pwcca, procrustes, linreg)", s);
      o->methods |= bit;
    }
  }
  RE_TRY(re_cfg_get_double(c, "variance", &o->variance));
  if (!(o->variance > 0 && o->variance <= 1))
    return re_cfg_error(re_cfg_get(c, "variance"), RE_EINVAL, "variance must be in (0, 1]");
  RE_TRY(re_cfg_get_double(c, "ridge", &o->ridge));
  if (!(o->ridge >= 0))
    return re_cfg_error(re_cfg_get(c, "ridge"), RE_EINVAL, "ridge must be >= 0");
  RE_TRY(re_cfg_get_bool(c, "directions", &o->directions));
  return RE_OK;
}

/* Rank 0: cca_<name>_<i>_<j>_{rho,x_coef,y_coef,x_loadings,y_loadings}.npy for every
 * wanted pair (plain CCA), and the tap table. */
static re_status write_directions(runner *r, pass *p, an_run *ar, re_eig **eigs) {
  const cca_opts *o = ar->a->opts;
  re_cca_options opt = {o->ridge, o->variance};
  static const char *const names[] = {"x_coef", "y_coef", "x_loadings", "y_loadings"};
  re_status st = RE_OK;
  for (int i = 0; i < ar->P && st == RE_OK; i++)
    for (int l = i + 1; l < ar->P && st == RE_OK; l++) {
      if (!run_pair_wanted(ar, i, l))
        continue;
      int la = p->mom_of[ar->taps[i]], lb = p->mom_of[ar->taps[l]], tr;
      st = an_eig(p, eigs, la);
      if (st == RE_OK)
        st = an_eig(p, eigs, lb);
      re_cca_directions dir;
      memset(&dir, 0, sizeof dir);
      const double *C = re_moments_block(p->mom, la, lb, &tr); /* sets tr: not in the same call's arguments */
      if (st == RE_OK)
        st = re_cca_directions_create(eigs[la], eigs[lb], C, tr, &opt, &dir);
      if (st == RE_EUNDEFINED) { /* the rows say why */
        st = RE_OK;
        continue;
      }
      char file[400];
      int64_t shape[2] = {dir.k, dir.k};
      snprintf(file, sizeof file, "cca_%s_%d_%d_rho.npy", ar->a->name, i, l);
      if (st == RE_OK)
        st = an_write_npy(r, file, RE_DTYPE_F64, 1, shape, dir.rho);
      const double *arrays[] = {dir.x_coef, dir.y_coef, dir.x_loadings, dir.y_loadings};
      for (int e = 0; e < 4 && st == RE_OK; e++) {
        shape[0] = e % 2 ? dir.q : dir.p;
        snprintf(file, sizeof file, "cca_%s_%d_%d_%s.npy", ar->a->name, i, l, names[e]);
        st = an_write_npy(r, file, RE_DTYPE_F64, 2, shape, arrays[e]);
      }
      re_cca_directions_free(&dir);
    }
  char file[300];
  snprintf(file, sizeof file, "cca_%s_taps.csv", ar->a->name);
  if (st == RE_OK)
    st = run_write_taps_csv(r, file, ar->taps, ar->P);
  return st;
}

static re_status setup(runner *r, pass *p, an_run *ar) { return run_pass_use_moments(r, p, ar, 0); }

static re_status finalize(runner *r, pass *p, an_run *ar, re_eig **eigs) {
  const job_analysis *a = ar->a;
  const cca_opts *o = a->opts;
  re_cca_options opt = {o->ridge, o->variance};
  char param[128];
  snprintf(param, sizeof param, "ridge=%g variance=%g", o->ridge, o->variance);
  int P = ar->P;
  int64_t units = 0, lo, hi, u = -1;
  for (int i = 0; i < P; i++)
    for (int k = i + 1; k < P; k++)
      units += run_pair_wanted(ar, i, k);
  an_block(r, units, &lo, &hi);
  rows_sink sink;
  re_status st = an_rows_begin(r, &sink);
  for (int i = 0; i < P && st == RE_OK; i++)
    for (int k = i + 1; k < P && st == RE_OK; k++) {
      if (!run_pair_wanted(ar, i, k))
        continue;
      if (++u < lo || u >= hi)
        continue;
      int ta = ar->taps[i], tb = ar->taps[k], la = p->mom_of[ta], lb = p->mom_of[tb];
      st = an_eig(p, eigs, la);
      if (st == RE_OK)
        st = an_eig(p, eigs, lb);
      if (st != RE_OK)
        break;
      int tr;
      const double *C = re_moments_block(p->mom, la, lb, &tr);
      re_cca_result res;
      if (o->methods & CCA_CCA) {
        st = re_cca(eigs[la], eigs[lb], C, tr, &opt, &res);
        if (st == RE_OK) {
          run_row(r, a->name, "cca_mean_rho", ta, tb, a->dataset, param, res.mean_rho, res.defined ? NULL : res.reason);
          run_row(r, a->name, "cca_mean_rho2", ta, tb, a->dataset, param, res.mean_rho2, res.defined ? NULL : res.reason);
        }
        re_cca_result_free(&res);
      }
      if (st == RE_OK && (o->methods & CCA_SVCCA)) {
        st = re_svcca(eigs[la], eigs[lb], C, tr, &opt, &res);
        if (st == RE_OK)
          run_row(r, a->name, "svcca", ta, tb, a->dataset, param, res.mean_rho, res.defined ? NULL : res.reason);
        re_cca_result_free(&res);
      }
      if (st == RE_OK && (o->methods & CCA_PWCCA)) {
        st = re_pwcca(eigs[la], eigs[lb], C, tr, &opt, &res);
        if (st == RE_OK)
          run_row(r, a->name, "pwcca", ta, tb, a->dataset, param, res.pwcca, res.defined ? NULL : res.reason);
        re_cca_result_free(&res);
      }
      if (st == RE_OK && (o->methods & CCA_PROCRUSTES)) {
        double d2;
        re_status s2 = re_procrustes(eigs[la], eigs[lb], C, tr, &d2);
        if (s2 == RE_OK || s2 == RE_EUNDEFINED)
          run_row(r, a->name, "procrustes_d2", ta, tb, a->dataset, param, d2, s2 == RE_OK ? NULL : "zero variance");
        else
          st = s2;
      }
      if (st == RE_OK && (o->methods & CCA_LINREG)) {
        double yx, xy;
        re_status s2 = re_linreg_r2(eigs[la], eigs[lb], C, tr, &opt, &yx, &xy);
        if (s2 == RE_OK || s2 == RE_EUNDEFINED) {
          run_row(r, a->name, "r2_b_from_a", ta, tb, a->dataset, param, yx, s2 == RE_OK ? NULL : "zero variance");
          run_row(r, a->name, "r2_a_from_b", ta, tb, a->dataset, param, xy, s2 == RE_OK ? NULL : "zero variance");
        } else {
          st = s2;
        }
      }
    }
  re_status st2 = an_rows_end(r, &sink);
  st = st != RE_OK ? st : st2;
  if (st == RE_OK && o->directions && r->comm.rank == 0)
    st = write_directions(r, p, ar, eigs);
  return st;
}

static void manifest(FILE *f, const job_analysis *a) {
  static const char *pairs[] = {"all", "same-layer", "consecutive", "reference", "within"};
  const cca_opts *o = a->opts;
  fprintf(f, ", \"dataset\": ");
  re_json_string(f, a->dataset);
  fprintf(f, ", \"methods\": [");
  for (int k = 0, lead = 1; k < 5; k++)
    if (o->methods & (1u << k)) {
      fprintf(f, "%s\"%s\"", lead ? "" : ", ", method_names[k]);
      lead = 0;
    }
  fprintf(f, "], \"variance\": %.17g, \"ridge\": %.17g, \"pairs\": \"%s\"", o->variance, o->ridge, pairs[a->pairs]);
  if (o->directions)
    fprintf(f, ", \"directions\": true");
}

const an_kind an_cca = {
    .type = "cca",
    .keys = keys,
    .pairs = AN_PAIRS,
    .default_pairs = PAIRS_SAME_LAYER,
    .opts_size = sizeof(cca_opts),
    .parse = parse,
    .setup = setup,
    .finalize = finalize,
    .manifest = manifest,
};
