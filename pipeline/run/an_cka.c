/* The cka analysis: linear or RBF CKA between taps, by the minibatch estimator
 * (Nguyen, Raghu, Kornblith 2021: mean unbiased HSIC_1 over batches of `batch`
 * samples, its own accumulator) or exactly from the pass's co-moments (linear
 * kernel), for the pairs the analysis asks for. Writes cka rows, the P x P matrix
 * cka_<name>.npy and its tap table. */
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/mpi_reduce.h"
#include "run/analysis.h"
#include "run/unc.h"

typedef struct cka_opts {
  int rbf, exact, unbiased;
  double sigma;           /* RBF: sigma^2 = sigma^2 x median squared distance */
  int64_t batch;          /* minibatch: samples per statistics batch */
  int64_t sigma_sample;   /* RBF: samples of the bandwidth estimate */
  an_unc unc;             /* uncertainty: replicates, null, interval (run/unc.h) */
} cka_opts;

static const char *const keys[] = {"kernel",   "sigma",       "sigma_sample", "estimator",
                                   "batch",    "unbiased",    "uncertainty",  NULL};

static re_status parse(job *j, job_analysis *a, const re_cfg *c) {
  cka_opts *o = a->opts;
  o->unbiased = 1;
  o->sigma = 1.0;
  o->batch = 256;
  o->sigma_sample = 1024;
  const char *s = NULL;
  RE_TRY(re_cfg_get_string(c, "kernel", &s));
  if (s && strcmp(s, "linear") && strcmp(s, "rbf"))
    return re_cfg_error(re_cfg_get(c, "kernel"), RE_EINVAL, "kernel must be linear or rbf");
  o->rbf = s && !strcmp(s, "rbf");
  s = NULL;
  RE_TRY(re_cfg_get_string(c, "estimator", &s));
  if (s && strcmp(s, "minibatch") && strcmp(s, "exact"))
    return re_cfg_error(re_cfg_get(c, "estimator"), RE_EINVAL, "estimator must be minibatch or exact");
  o->exact = s && !strcmp(s, "exact");
  if (o->exact && o->rbf)
    return re_cfg_error(c, RE_EINVAL, "analysis '%s': the exact estimator supports only the linear kernel", a->name);
  RE_TRY(re_cfg_get_bool(c, "unbiased", &o->unbiased));
  RE_TRY(re_cfg_get_double(c, "sigma", &o->sigma));
  if (!(o->sigma > 0))
    return re_cfg_error(re_cfg_get(c, "sigma"), RE_EINVAL, "sigma must be positive");
  RE_TRY(re_cfg_get_int(c, "batch", &o->batch));
  if (o->batch < (o->unbiased ? 4 : 2))
    return re_cfg_error(re_cfg_get(c, "batch"), RE_EINVAL,
                        "batch %lld is too small: the unbiased HSIC estimator needs batches of at least 4",
                        (long long)o->batch);
  if (o->batch > 1 << 20)
    return re_cfg_error(re_cfg_get(c, "batch"), RE_EINVAL,
                        "batch %lld is larger than %d: every batch's Gram matrices (batch^2 / 2 values per tap) "
                        "must fit in memory",
                        (long long)o->batch, 1 << 20);
  RE_TRY(re_cfg_get_int(c, "sigma_sample", &o->sigma_sample));
  if (o->sigma_sample < 2)
    return re_cfg_error(re_cfg_get(c, "sigma_sample"), RE_EINVAL, "sigma_sample must be at least 2");
  return unc_parse(a, c, o->exact ? UNC_COMOMENTS : 0, &o->unc);
}

static int64_t stats_batch(const job_analysis *a) {
  const cka_opts *o = a->opts;
  return o->exact ? 0 : o->batch;
}

/* Collective: RBF bandwidths from the first sigma_sample samples of each tap (the rows
 * come from the checkpoints' chunks, as the statistics' do). The checkpoints are
 * dealt to the ranks in turn, each value made by one rank and summed with the others'
 * zeros: the same on every rank. The taps of one checkpoint (consecutive) take their
 * rows chunk by chunk together, so each chunk runs through the network once. */
static re_status bandwidths(runner *r, pass *p, an_run *ar, double *s2) {
  const cka_opts *o = ar->a->opts;
  int64_t ns = p->n < o->sigma_sample ? p->n : o->sigma_sample;
  float **feat = NULL;
  re_status st = re_calloc(ar->P, sizeof(float *), &feat);
  for (int q0 = 0, q1, g = 0; st == RE_OK && q0 < ar->P; q0 = q1, g++) {
    const tapinfo *t0 = &r->plan.taps[ar->taps[q0]];
    for (q1 = q0; q1 < ar->P && r->plan.taps[ar->taps[q1]].model == t0->model &&
                  r->plan.taps[ar->taps[q1]].ckpt == t0->ckpt;
         q1++)
      ;
    if (g % r->comm.size != r->comm.rank)
      continue;
    for (int q = q0; q < q1; q++)
      if (st == RE_OK)
        st = re_malloc(ns, r->plan.taps[ar->taps[q]].dim * (int64_t)sizeof(float), &feat[q]);
    for (int64_t s0 = 0; st == RE_OK && s0 < ns; s0 += p->chunk)
      for (int q = q0; st == RE_OK && q < q1; q++) {
        int64_t s1 = s0 + p->chunk < ns ? s0 + p->chunk : ns, dim = r->plan.taps[ar->taps[q]].dim;
        st = run_pass_tap_rows(r, p, ar->taps[q], s0, s1, feat[q] + s0 * dim);
      }
    for (int q = q0; st == RE_OK && q < q1; q++) {
      int t = ar->taps[q];
      st = re_rbf_sigma2_f32(feat[q], ns, r->plan.taps[t].dim, r->plan.taps[t].dim, o->sigma, &s2[q]);
      if (st != RE_OK)
        re_err_context(st, "analysis '%s', tap %s/%s/%s: ", ar->a->name, run_tap_model(r, t), run_tap_ckpt(r, t),
                       run_tap_layer(r, t));
    }
    for (int q = q0; q < q1; q++)
      free(feat[q]), feat[q] = NULL;
  }
  free(feat);
  st = re_mpi_agree(r->comm.comm, st);
  if (st == RE_OK && r->comm.size > 1)
    MPI_Allreduce(MPI_IN_PLACE, s2, ar->P, MPI_DOUBLE, MPI_SUM, r->comm.comm);
  return st;
}

static re_status setup(runner *r, pass *p, an_run *ar) {
  const cka_opts *o = ar->a->opts;
  if (o->exact) {
    RE_TRY(run_pass_use_moments(r, p, ar, 0));
    return unc_moments_create(r, p, ar, &o->unc, 0, &ar->ux);
  }
  for (int q = 0; q < ar->P; q++)
    if (r->plan.taps[ar->taps[q]].rps != 1)
      return re_cfg_error(ar->a->src, RE_EINVAL, "analysis '%s': minibatch CKA needs one row per sample; layer '%s' "
                                                 "is tapped with mode %s",
                          ar->a->name, run_tap_layer(r, ar->taps[q]),
                          run_mode_name(r->plan.j->models[r->plan.taps[ar->taps[q]].model]
                                            .layers[r->plan.taps[ar->taps[q]].layer].mode));
  double *s2 = NULL;
  re_status st = RE_OK;
  if (o->rbf) {
    st = re_calloc(ar->P, sizeof(double), &s2);
    if (st == RE_OK)
      st = bandwidths(r, p, ar, s2);
  }
  re_resampling rs;
  unc_resampling(&o->unc, p, &rs);
  re_hsic_config cfg = {ar->P, o->rbf ? RE_KERNEL_RBF : RE_KERNEL_LINEAR, s2, p->sb, ar->npairs, ar->pairs};
  if (st == RE_OK)
    st = re_hsic_create(&cfg, &ar->h);
  if (st == RE_OK && o->unc.on)
    st = re_hsic_set_resampling(ar->h, &rs, !o->unbiased);
  free(s2);
  return st;
}

/* Rank 0 (CKA is cheap from its P x P state): rows, the matrix and its taps. */
static re_status finalize(runner *r, pass *p, an_run *ar, re_eig **eigs) {
  (void)eigs;
  if (r->comm.rank != 0)
    return RE_OK;
  const job_analysis *a = ar->a;
  const cka_opts *o = a->opts;
  int P = ar->P;
  double *M = NULL;
  RE_TRY(re_malloc((int64_t)P * P, sizeof(double), &M));
  char param[128];
  snprintf(param, sizeof param, "%s %s%s b=%lld", o->exact ? "exact" : "minibatch", o->rbf ? "rbf" : "linear",
           o->unbiased ? " unbiased" : " biased", (long long)(o->exact ? p->n : p->sb));
  unc_param(&o->unc, unc_groups(&o->unc, (p->n + p->sb - 1) / p->sb), param, sizeof param);
  re_replicate_kind method = o->unc.method == UNC_JACKKNIFE ? RE_REP_JACKKNIFE
                             : o->unc.method == UNC_BOOTSTRAP ? RE_REP_BOOTSTRAP
                                                              : RE_REP_NULL;
  re_status st = RE_OK;
  for (int i = 0; i < P && st == RE_OK; i++)
    for (int k = 0; k < P && st == RE_OK; k++) {
      M[(int64_t)i * P + k] = NAN;
      if (i != k && !run_pair_wanted(ar, i, k))
        continue;
      re_cka_result res;
      if (o->exact)
        st = re_cka_linear_from_moments(p->mom, p->mom_of[ar->taps[i]], p->mom_of[ar->taps[k]], o->unbiased, &res);
      else
        st = re_hsic_cka(ar->h, i, k, o->unbiased, &res);
      if (st != RE_OK)
        break;
      M[(int64_t)i * P + k] = res.defined ? res.value : NAN;
      if (i >= k)
        continue;
      re_uncertainty u;
      re_uncertainty_clear(&u);
      if (o->unc.on && res.defined && o->exact)
        st = unc_moments_cka(ar->ux, &o->unc, i, k, o->unbiased, res.value, &u);
      else if (o->unc.on && res.defined)
        st = re_hsic_cka_uncertainty(ar->h, i, k, method, o->unc.interval, o->unc.level, &u);
      if (st != RE_OK)
        break;
      unc_rows(r, &o->unc, a->name, "cka", ar->taps[i], ar->taps[k], a->dataset, param, res.value,
               res.defined ? NULL : res.reason, &u);
    }
  if (st == RE_OK)
    st = an_write_matrix(r, "cka", a->name, M, P, P);
  if (st == RE_OK)
    st = an_write_taps(r, ar);
  free(M);
  return st;
}

static void manifest(FILE *f, const job_analysis *a) {
  const cka_opts *o = a->opts;
  an_manifest_dataset(f, a);
  fprintf(f, ", \"estimator\": \"%s\", \"kernel\": \"%s\", \"unbiased\": %s", o->exact ? "exact" : "minibatch",
          o->rbf ? "rbf" : "linear", o->unbiased ? "true" : "false");
  an_manifest_pairs(f, a);
  if (!o->exact)
    fprintf(f, ", \"batch\": %lld", (long long)o->batch);
  if (o->rbf)
    fprintf(f, ", \"sigma\": %.17g, \"sigma_sample\": %lld", o->sigma, (long long)o->sigma_sample);
  unc_manifest(f, &o->unc);
}

/* Exact CKA reads the co-moments on rank 0 only. */
static void moment_blocks(const runner *r, const pass *p, const an_run *ar, uint8_t *need) {
  (void)r, (void)p, (void)ar, (void)need;
}

const an_kind an_cka = {
    .type = "cka",
    .keys = keys,
    .pairs = AN_PAIRS_REFERENCE,
    .default_pairs = PAIRS_ALL,
    .opts_size = sizeof(cka_opts),
    .parse = parse,
    .stats_batch = stats_batch,
    .setup = setup,
    .finalize = finalize,
    .moment_blocks = moment_blocks,
    .manifest = manifest,
};
