/* The cca analysis: CCA (mean rho, mean rho^2), SVCCA, PWCCA, orthogonal Procrustes
 * and linear-regression R^2 between pairs of taps, from the pass's co-moments
 * (docs/metrics.md). The pairs are spread over the ranks in shares that read few taps
 * (run/pair_share.h); their rows reach metrics.csv in pair order. With
 * `uncertainty:`, the same metrics of every bootstrap replicate and permutation-null
 * accumulator (run/unc.h), shared with every rank, give each value its columns. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "out/path.h"
#include "mpi/mpi_reduce.h"
#include "repeval/cca.h"
#include "repeval/shape.h"
#include "run/analysis.h"
#include "run/cca_proj.h"
#include "run/unc.h"

enum { CCA_CCA = 1, CCA_SVCCA = 2, CCA_PWCCA = 4, CCA_PROCRUSTES = 8, CCA_LINREG = 16 };
static const char *const method_names[] = {"cca", "svcca", "pwcca", "procrustes", "linreg"};

typedef struct cca_opts {
  unsigned methods; /* CCA_* bits */
  double variance;  /* SVCCA: variance kept per side */
  double ridge;     /* relative ridge of the covariances */
  an_unc unc;       /* uncertainty (run/unc.h) */
  int directions;   /* write the canonical directions of every pair */
  int passes;       /* 0: auto (two when the exact co-moments exceed the budget), 1, 2 */
  int64_t max_components; /* two-pass route: at most this many directions per tap (0: as many as fit) */
  /* what the run chose and found (for the manifest) */
  int two_pass;
  int64_t cap; /* the cap applied (max_components, or the largest that fits the budget; 0: none) */
  int ncapped;
  int64_t kmin, kmax, leaves;
  double exact_mb, projected_mb, second_seconds;
} cca_opts;

static const char *const keys[] = {"methods", "variance", "ridge", "uncertainty", "directions", "passes",
                                   "max_components", NULL};

/* The metrics of a pair in row order, the method each belongs to, and which are
 * distances (smaller: more similar). */
#define NMETRIC 7
static const char *const metric_names[NMETRIC] = {"cca_mean_rho", "cca_mean_rho2", "svcca", "pwcca",
                                                  "procrustes_d2", "r2_b_from_a", "r2_a_from_b"};
static const unsigned metric_method[NMETRIC] = {CCA_CCA,        CCA_CCA,    CCA_SVCCA, CCA_PWCCA,
                                                CCA_PROCRUSTES, CCA_LINREG, CCA_LINREG};

/* passes: auto | 1 | 2, max_components: K. */
static re_status parse_route(const re_cfg *c, cca_opts *o) {
  const re_cfg *v = re_cfg_get(c, "passes");
  if (v) {
    const char *s;
    RE_TRY(re_cfg_string(v, &s));
    if (!strcmp(s, "auto"))
      o->passes = 0;
    else if (!strcmp(s, "1") || !strcmp(s, "2"))
      o->passes = s[0] - '0';
    else
      return re_cfg_error(v, RE_EINVAL, "passes must be auto, 1 or 2, got '%s'", s);
  }
  v = re_cfg_get(c, "max_components");
  if (v) {
    RE_TRY(re_cfg_get_int(c, "max_components", &o->max_components));
    if (o->max_components < 0)
      return re_cfg_error(v, RE_EINVAL, "max_components must be >= 0 (0: no cap)");
  }
  return RE_OK;
}

static re_status parse(job *j, job_analysis *a, const re_cfg *c) {
  cca_opts *o = a->opts;
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
  RE_TRY(parse_route(c, o));
  RE_TRY(unc_parse(a, c, UNC_COMOMENTS, &o->unc));
  if (o->passes == 2 && (o->directions || o->unc.on))
    return re_cfg_error(re_cfg_get(c, "passes"), RE_EINVAL,
                        "cca with passes: 2 has no canonical directions and no uncertainty (they need the exact "
                        "co-moments)");
  return RE_OK;
}

/* The largest cap on directions per tap whose projected state fits the budget (0: none). */
static int64_t fitting_cap(const runner *r, const an_run *ar, double budget) {
  int64_t lo = 0, hi = 1;
  for (int q = 0; q < ar->P; q++)
    hi = r->plan.taps[ar->taps[q]].dim > hi ? r->plan.taps[ar->taps[q]].dim : hi;
  while (lo < hi) { /* the largest k in [0, hi] that fits */
    int64_t mid = (lo + hi + 1) / 2, exact, proj;
    if (cca_proj_state_len(r, ar, mid, &exact, &proj) == RE_OK && CCA_PROJ_COPIES * 8.0 * (double)proj <= budget)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

/* The route: exact co-moments (one pass), or projections (two passes) when asked for
 * or, with passes: auto, when the exact ones exceed the statistics budget; then the
 * cap on directions per tap: max_components, or without it the largest whose
 * projected state fits the budget when the uncapped one would not. */
static re_status choose_route(runner *r, an_run *ar, cca_opts *o) {
  int64_t exact, proj;
  RE_TRY(cca_proj_state_len(r, ar, o->max_components, &exact, &proj));
  double budget = run_stats_budget();
  o->exact_mb = 16.0 * (double)exact / 1048576.0; /* the pass holds about two copies */
  o->two_pass = o->passes == 2 || (o->passes == 0 && 16.0 * (double)exact > budget);
  if (!o->two_pass)
    return RE_OK;
  const char *name = ar->a->name;
  if (o->directions || o->unc.on)
    return re_cfg_error(ar->a->src, RE_EINVAL,
                        "cca '%s': the exact co-moments need %.0f MB, more than the %.0f MB budget "
                        "(REPEVAL_MAX_STATS_MB, --max-stats-mb), and the two-pass route has no canonical directions "
                        "and no uncertainty: restrict 'pairs', 'checkpoints' or 'layers', or raise the budget",
                        name, o->exact_mb, budget / 1048576.0);
  o->cap = o->max_components;
  if (CCA_PROJ_COPIES * 8.0 * (double)proj > budget) {
    int64_t fit = fitting_cap(r, ar, budget);
    if (o->max_components || fit < 1)
      return re_cfg_error(ar->a->src, RE_EINVAL,
                          "cca '%s': the two-pass route needs up to %.0f MB for the co-moments of the projections "
                          "(%d copies of %lld doubles), more than the %.0f MB budget: %s%lld fits",
                          name, CCA_PROJ_COPIES * 8.0 * (double)proj / 1048576.0, CCA_PROJ_COPIES, (long long)proj,
                          budget / 1048576.0, fit ? "max_components " : "not even max_components 1; ", (long long)fit);
    o->cap = fit;
    RE_TRY(cca_proj_state_len(r, ar, o->cap, &exact, &proj));
  }
  o->projected_mb = CCA_PROJ_COPIES * 8.0 * (double)proj / 1048576.0;
  if (o->methods & (CCA_CCA | CCA_PROCRUSTES | CCA_LINREG))
    run_warn(r, "cca '%s': the two-pass route computes svcca and pwcca; cca, procrustes and linreg need the exact "
                "co-moments (passes: 1) and are left out",
             name);
  return RE_OK;
}

static re_status setup(runner *r, pass *p, an_run *ar) {
  cca_opts *o = ar->a->opts;
  RE_TRY(choose_route(r, ar, o));
  RE_TRY(run_pass_use_moments(r, p, ar, o->two_pass)); /* two passes: each tap's own block */
  if (o->two_pass)
    return RE_OK;
  return unc_moments_create(r, p, ar, &o->unc, 0, &ar->ux);
}

/* Where the blocks of a pair come from: the pass's co-moments (tap q is layer
 * layer[q]) or the projections' (layer q); eigendecompositions made once per layer. */
typedef struct cca_src {
  const re_moments *m;
  const int *layer; /* NULL: layer q */
  re_eig **eigs;
  unsigned methods; /* what this route computes */
  int projected;
} cca_src;

static int src_layer(const cca_src *s, const an_run *ar, int q) {
  return s->layer ? s->layer[ar->taps[q]] : q;
}

/* The selected metrics of one pair (layers' eigendecompositions and cross block): v[m]
 * in metric_names order, NAN with why[m] where undefined or not selected. */
static re_status pair_values(const cca_opts *o, unsigned methods, int projected, const re_eig *ex, const re_eig *ey,
                             const double *C, int tr, double *v, const char **why) {
  re_cca_options opt = {o->ridge, projected ? 1.0 : o->variance};
  for (int m = 0; m < NMETRIC; m++)
    v[m] = NAN, why[m] = "not computed";
  re_cca_result res;
  if (methods & CCA_CCA) {
    RE_TRY(re_cca(ex, ey, C, tr, &opt, &res));
    v[0] = res.mean_rho, v[1] = res.mean_rho2;
    why[0] = why[1] = res.defined ? NULL : res.reason;
    re_cca_result_free(&res);
  }
  if (methods & CCA_SVCCA) { /* projected: the directions are already SVCCA's, all kept */
    RE_TRY(projected ? re_cca(ex, ey, C, tr, &opt, &res) : re_svcca(ex, ey, C, tr, &opt, &res));
    v[2] = res.mean_rho, why[2] = res.defined ? NULL : res.reason;
    re_cca_result_free(&res);
  }
  if (methods & CCA_PWCCA) {
    RE_TRY(re_pwcca(ex, ey, C, tr, &opt, &res));
    v[3] = res.pwcca, why[3] = res.defined ? NULL : res.reason;
    re_cca_result_free(&res);
  }
  if (methods & CCA_PROCRUSTES) {
    re_status s2 = re_procrustes(ex, ey, C, tr, &v[4]);
    if (s2 != RE_OK && s2 != RE_EUNDEFINED)
      return s2;
    why[4] = s2 == RE_OK ? NULL : "zero variance";
  }
  if (methods & CCA_LINREG) {
    re_status s2 = re_linreg_r2(ex, ey, C, tr, &opt, &v[5], &v[6]);
    if (s2 != RE_OK && s2 != RE_EUNDEFINED)
      return s2;
    why[5] = why[6] = s2 == RE_OK ? NULL : "zero variance";
  }
  for (int m = 0; m < NMETRIC; m++)
    if (why[m])
      v[m] = NAN;
  return RE_OK;
}

/* The metrics of this rank's pairs (its share, in pair order) in every replicate of one
 * kind: out[(u * NMETRIC + m) * count + k] for replicate k of its pair u (it.k). Replicate
 * by replicate, each tap's eigendecomposition made once. */
static re_status replicate_values(const an_run *ar, const cca_opts *o, int nulls, const an_pair_it *block,
                                  double *out) {
  const unc_moments *x = ar->ux;
  int count = nulls ? unc_moments_nnull(x) : unc_moments_nboot(x), P = ar->P, L = nulls ? 2 * P : P;
  re_eig **eig = NULL;
  re_status st = re_calloc(L, sizeof(re_eig *), &eig);
  for (int k = 0; k < count && st == RE_OK; k++) {
    const re_moments *m = nulls ? unc_moments_null(x, k) : unc_moments_boot(x, k);
    for (an_pair_it it = *block; st == RE_OK && an_pairs_next(ar, &it);) {
      int i = it.i, j = it.l, a = i, c = j, tr;
      int64_t u = it.k;
      if (nulls)
        unc_moments_null_layers(x, i, j, &a, &c);
      double v[NMETRIC];
      const char *why[NMETRIC];
      int ok = 1;
      for (int side = 0; side < 2 && st == RE_OK; side++) {
        int l = side ? c : a;
        re_status se = an_eig_of(m, eig, l);
        if (se == RE_EUNDEFINED) /* a replicate whose tap has no variance: its values are undefined */
          ok = 0;
        else
          st = se;
        ok = ok && eig[l];
      }
      if (st == RE_OK && ok) {
        const double *C = re_moments_block(m, a, c, &tr); /* before tr is read */
        st = pair_values(o, o->methods, 0, eig[a], eig[c], C, tr, v, why);
      }
      for (int q = 0; q < NMETRIC; q++)
        out[(u * NMETRIC + q) * count + k] = ok && st == RE_OK ? v[q] : NAN;
    }
    for (int l = 0; l < L; l++)
      re_eig_destroy(&eig[l]);
  }
  free(eig);
  return st;
}

/* Rank 0: cca_<name>_<i>_<j>_{rho,x_coef,y_coef,x_loadings,y_loadings}.npy for every
 * wanted pair (plain CCA), and the tap table. */
static re_status write_directions(runner *r, pass *p, an_run *ar, re_eig **eigs) {
  const cca_opts *o = ar->a->opts;
  re_cca_options opt = {o->ridge, o->variance};
  static const char *const names[] = {"x_coef", "y_coef", "x_loadings", "y_loadings"};
  re_status st = RE_OK;
  an_pair_it it;
  for (an_pairs_all(ar, &it); st == RE_OK && an_pairs_next(ar, &it);) {
    int i = it.i, l = it.l, la, lb, tr;
    st = an_eig_pair(p, eigs, ar, i, l, &la, &lb);
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
    if (st == RE_OK)
      st = re_path_join(file, sizeof file, "cca_%s_%d_%d_rho.npy", ar->a->name, i, l);
    if (st == RE_OK)
      st = an_write_npy(r, file, RE_DTYPE_F64, 1, shape, dir.rho);
    const double *arrays[] = {dir.x_coef, dir.y_coef, dir.x_loadings, dir.y_loadings};
    for (int e = 0; e < 4 && st == RE_OK; e++) {
      shape[0] = e % 2 ? dir.q : dir.p;
      st = re_path_join(file, sizeof file, "cca_%s_%d_%d_%s.npy", ar->a->name, i, l, names[e]);
      if (st == RE_OK)
        st = an_write_npy(r, file, RE_DTYPE_F64, 2, shape, arrays[e]);
    }
    re_cca_directions_free(&dir);
  }
  if (st == RE_OK)
    st = an_write_taps(r, ar);
  return st;
}

/* This rank's replicate values of its share of the pairs (exact route with uncertainty):
 * *bv, *nv allocated. Collective. */
static re_status replicates(runner *r, an_run *ar, const cca_opts *o, const an_pair_it *block, double **bv,
                            double **nv) {
  int nb = unc_moments_nboot(ar->ux), nn = unc_moments_nnull(ar->ux);
  int64_t units = block->n;
  re_status st = re_malloc(units * NMETRIC * (nb > 0 ? nb : 1), sizeof(double), bv);
  if (st == RE_OK)
    st = re_malloc(units * NMETRIC * (nn > 0 ? nn : 1), sizeof(double), nv);
  st = re_mpi_agree(r->comm.comm, st);
  if (st == RE_OK)
    st = unc_moments_share(r, ar->ux); /* collective */
  if (st == RE_OK)
    st = replicate_values(ar, o, 0, block, *bv);
  if (st == RE_OK)
    st = replicate_values(ar, o, 1, block, *nv);
  return re_mpi_agree(r->comm.comm, st);
}

/* Rows of this rank's share of the pairs. */
static re_status pair_rows(runner *r, an_run *ar, const cca_src *src, const char *param, const an_pair_it *block,
                           const double *bv, const double *nv, rows_sink *sink) {
  const job_analysis *a = ar->a;
  const cca_opts *o = a->opts;
  int nb = unc_moments_nboot(ar->ux), nn = unc_moments_nnull(ar->ux);
  re_status st = RE_OK;
  for (an_pair_it it = *block; st == RE_OK && an_pairs_next(ar, &it);) {
    int64_t u = it.k; /* in this rank's share */
    st = an_rows_pair(sink, &it);
    if (st != RE_OK)
      break;
    int la = src_layer(src, ar, it.i), lb = src_layer(src, ar, it.l), tr;
    st = an_eig_of(src->m, src->eigs, la);
    if (st == RE_OK)
      st = an_eig_of(src->m, src->eigs, lb);
    if (st != RE_OK)
      break;
    const double *C = re_moments_block(src->m, la, lb, &tr);
    double v[NMETRIC];
    const char *why[NMETRIC];
    st = pair_values(o, src->methods, src->projected, src->eigs[la], src->eigs[lb], C, tr, v, why);
    for (int m = 0; m < NMETRIC && st == RE_OK; m++) {
      if (!(src->methods & metric_method[m]))
        continue;
      re_uncertainty un;
      re_uncertainty_clear(&un);
      if (ar->ux && !why[m])
        st = unc_summary(&o->unc, v[m], bv + (u * NMETRIC + m) * nb, nb, nv + (u * NMETRIC + m) * nn, nn, m == 4,
                         &un);
      unc_rows(r, &o->unc, a->name, metric_names[m], ar->taps[it.i], ar->taps[it.l], a->dataset, param, v[m],
               why[m], &un);
    }
  }
  return st;
}

/* Collective: the two-pass route's projections; the source reads them. */
static re_status projections(runner *r, pass *p, an_run *ar, re_eig **eigs, cca_proj *pr, re_eig ***peigs) {
  cca_opts *o = ar->a->opts;
  re_status st = cca_proj_run(r, p, ar, eigs, o->variance, o->cap, pr);
  if (st == RE_OK)
    st = re_calloc(ar->P, sizeof(re_eig *), peigs);
  st = re_mpi_agree(r->comm.comm, st);
  if (st != RE_OK)
    return st;
  o->ncapped = pr->ncapped, o->leaves = pr->leaves, o->second_seconds = pr->seconds;
  o->kmin = o->kmax = pr->k[0];
  for (int q = 1; q < ar->P; q++) {
    o->kmin = pr->k[q] < o->kmin ? pr->k[q] : o->kmin;
    o->kmax = pr->k[q] > o->kmax ? pr->k[q] : o->kmax;
  }
  if (o->ncapped)
    run_warn(r, "cca '%s': %d of %d taps wanted more than max_components = %lld directions for %g of their variance; "
                "their SVCCA keeps %lld",
             ar->a->name, o->ncapped, ar->P, (long long)o->cap, o->variance, (long long)o->cap);
  return RE_OK;
}

static re_status finalize(runner *r, pass *p, an_run *ar, re_eig **eigs) {
  const job_analysis *a = ar->a;
  const cca_opts *o = a->opts;
  char param[256];
  snprintf(param, sizeof param, "ridge=%g variance=%g", o->ridge, o->variance);
  if (o->two_pass && o->cap)
    snprintf(param + strlen(param), sizeof param - strlen(param), " passes=2 max_components=%lld",
             (long long)o->cap);
  else if (o->two_pass)
    snprintf(param + strlen(param), sizeof param - strlen(param), " passes=2");
  unc_param(&o->unc, 0, param, sizeof param);
  cca_src src = {p->mom, p->mom_of, eigs, o->methods, 0};
  cca_proj pr;
  memset(&pr, 0, sizeof pr);
  re_eig **peigs = NULL;
  re_status st = RE_OK;
  if (o->two_pass) {
    st = projections(r, p, ar, eigs, &pr, &peigs);
    src = (cca_src){pr.m, NULL, peigs, o->methods & (CCA_SVCCA | CCA_PWCCA), 1};
  }
  an_pair_it block;
  an_pairs_share(r, ar, &block);
  double *bv = NULL, *nv = NULL;
  if (st == RE_OK && ar->ux)
    st = replicates(r, ar, o, &block, &bv, &nv);
  rows_sink sink;
  if (st == RE_OK) {
    st = an_rows_begin_pairs(r, &sink, ar);
    if (st == RE_OK)
      st = pair_rows(r, ar, &src, param, &block, bv, nv, &sink);
    st = an_rows_end(r, &sink, st);
  }
  free(bv);
  free(nv);
  for (int q = 0; peigs && q < ar->P; q++)
    re_eig_destroy(&peigs[q]);
  free(peigs);
  cca_proj_free(&pr);
  if (st == RE_OK && o->directions && r->comm.rank == 0)
    st = write_directions(r, p, ar, eigs);
  return st;
}

/* The blocks of this rank's pairs (and their taps' own); the two-pass route's
 * directions and rank 0's files read every tap's block. */
static void moment_blocks(const runner *r, const pass *p, const an_run *ar, uint8_t *need) {
  const cca_opts *o = ar->a->opts;
  if (o->two_pass) {
    memset(need, 1, (size_t)re_moments_nblocks(p->mom));
    return;
  }
  an_pair_it it;
  for (an_pairs_share(r, ar, &it); an_pairs_next(ar, &it);)
    an_need_blocks(p, ar->taps[it.i], ar->taps[it.l], need);
}

/* The layers of this rank's pairs (the exact route). */
static void eig_layers(const runner *r, const pass *p, const an_run *ar, uint8_t *need) {
  const cca_opts *o = ar->a->opts;
  an_pair_it it;
  for (an_pairs_share(r, ar, &it); !o->two_pass && an_pairs_next(ar, &it);)
    need[p->mom_of[ar->taps[it.i]]] = need[p->mom_of[ar->taps[it.l]]] = 1;
}

static void manifest(FILE *f, const job_analysis *a) {
  const cca_opts *o = a->opts;
  an_manifest_dataset(f, a);
  fprintf(f, ", \"methods\": [");
  for (int k = 0, lead = 1; k < 5; k++)
    if (o->methods & (1u << k)) {
      fprintf(f, "%s\"%s\"", lead ? "" : ", ", method_names[k]);
      lead = 0;
    }
  fprintf(f, "], \"variance\": %.17g, \"ridge\": %.17g", o->variance, o->ridge);
  an_manifest_pairs(f, a);
  unc_manifest(f, &o->unc);
  if (o->directions)
    fprintf(f, ", \"directions\": true");
  fprintf(f, ", \"passes\": \"%s\", \"route\": \"%s\", \"exact_state_mb\": %.1f",
          o->passes ? (o->passes == 1 ? "1" : "2") : "auto", o->two_pass ? "two-pass" : "one-pass", o->exact_mb);
  if (o->two_pass)
    fprintf(f,
            ", \"max_components\": %lld, \"projected_state_mb\": %.1f, \"components_min\": %lld, "
            "\"components_max\": %lld, \"taps_capped\": %d, \"second_pass_leaves\": %lld, "
            "\"second_pass_seconds\": %.3f",
            (long long)o->cap, o->projected_mb, (long long)o->kmin, (long long)o->kmax, o->ncapped,
            (long long)o->leaves, o->second_seconds);
}

const an_kind an_cca = {
    .type = "cca",
    .keys = keys,
    .pairs = AN_PAIRS,
    .default_pairs = PAIRS_SAME_LAYER,
    .pair_cost_width = 1,
    .opts_size = sizeof(cca_opts),
    .parse = parse,
    .setup = setup,
    .finalize = finalize,
    .moment_blocks = moment_blocks,
    .eig_layers = eig_layers,
    .manifest = manifest,
};
