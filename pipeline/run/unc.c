/* Uncertainty of an analysis' scores: settings, rows, and the exact estimators'
 * replicate accumulators (see unc.h). */
#include "run/unc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "mpi/mpi_reduce.h"
#include "out/output.h"
#include "run/analysis.h"

/* ---- settings ------------------------------------------------------------------ */

static const char *const unc_keys[] = {"method",   "replicates", "groups",    "permutations",
                                       "seed",     "level",      "interval",  "calibrate", NULL};

re_status unc_parse(const job_analysis *a, const re_cfg *c, unsigned flags, an_unc *u) {
  memset(u, 0, sizeof *u);
  const re_cfg *m = re_cfg_get(c, "uncertainty");
  if (!m)
    return RE_OK;
  RE_TRY(re_cfg_expect_map(m, "uncertainty", unc_keys));
  u->on = 1;
  u->method = UNC_BOOTSTRAP;
  u->replicates = 200;
  u->level = 0.95;
  u->interval = RE_INTERVAL_NORMAL;
  u->calibrate = UNC_CAL_DIFFERENCE;
  const char *s = NULL;
  RE_TRY(re_cfg_get_string(m, "method", &s));
  if (s && !strcmp(s, "jackknife"))
    u->method = UNC_JACKKNIFE;
  else if (s && !strcmp(s, "none"))
    u->method = UNC_NONE;
  else if (s && strcmp(s, "bootstrap"))
    return re_cfg_error(re_cfg_get(m, "method"), RE_EINVAL, "uncertainty method must be bootstrap, jackknife or none");
  if ((flags & UNC_COMOMENTS) && u->method == UNC_JACKKNIFE)
    return re_cfg_error(re_cfg_get(m, "method"), RE_EINVAL,
                        "analysis '%s': the jackknife is over the batches of a minibatch estimator; this one "
                        "computes from co-moments: use method: bootstrap (over samples)",
                        a->name);
  int64_t v = u->replicates;
  RE_TRY(re_cfg_get_int(m, "replicates", &v));
  if (v < 2 || v > 100000)
    return re_cfg_error(re_cfg_get(m, "replicates"), RE_EINVAL, "replicates must lie in 2..100000, got %lld",
                        (long long)v);
  u->replicates = (int)v;
  v = 0;
  RE_TRY(re_cfg_get_int(m, "groups", &v));
  if (v != 0 && (v < 2 || v > 100000))
    return re_cfg_error(re_cfg_get(m, "groups"), RE_EINVAL, "groups must lie in 2..100000, got %lld", (long long)v);
  if (v && u->method != UNC_JACKKNIFE)
    return re_cfg_error(re_cfg_get(m, "groups"), RE_EINVAL, "groups is a setting of method: jackknife");
  u->groups = (int)v;
  v = 0;
  RE_TRY(re_cfg_get_int(m, "permutations", &v));
  if (v < 0 || v > 100000)
    return re_cfg_error(re_cfg_get(m, "permutations"), RE_EINVAL, "permutations must lie in 0..100000, got %lld",
                        (long long)v);
  u->permutations = (int)v;
  if (v && (flags & UNC_PER_TAP))
    return re_cfg_error(re_cfg_get(m, "permutations"), RE_EINVAL,
                        "analysis '%s': a permutation null compares two taps; %s metrics are per tap (use the "
                        "bootstrap)",
                        a->name, a->kind->type);
  v = 0;
  RE_TRY(re_cfg_get_int(m, "seed", &v));
  if (v < 0)
    return re_cfg_error(re_cfg_get(m, "seed"), RE_EINVAL, "seed must be a whole number >= 0");
  u->seed = (uint64_t)v;
  RE_TRY(re_cfg_get_double(m, "level", &u->level));
  if (!(u->level > 0 && u->level < 1))
    return re_cfg_error(re_cfg_get(m, "level"), RE_EINVAL, "level must lie strictly between 0 and 1 (0.95: 95%%)");
  s = NULL;
  RE_TRY(re_cfg_get_string(m, "interval", &s));
  if (s && !strcmp(s, "percentile"))
    u->interval = RE_INTERVAL_PERCENTILE;
  else if (s && strcmp(s, "normal"))
    return re_cfg_error(re_cfg_get(m, "interval"), RE_EINVAL, "interval must be normal or percentile");
  if (s && u->method != UNC_BOOTSTRAP)
    return re_cfg_error(re_cfg_get(m, "interval"), RE_EINVAL, "interval is a setting of method: bootstrap");
  s = NULL;
  RE_TRY(re_cfg_get_string(m, "calibrate", &s));
  if (s && !strcmp(s, "z"))
    u->calibrate = UNC_CAL_Z;
  else if (s && !strcmp(s, "none"))
    u->calibrate = UNC_CAL_NONE;
  else if (s && strcmp(s, "difference"))
    return re_cfg_error(re_cfg_get(m, "calibrate"), RE_EINVAL, "calibrate must be difference, z or none");
  if (s && !u->permutations)
    return re_cfg_error(re_cfg_get(m, "calibrate"), RE_EINVAL,
                        "calibrate needs a permutation null: give permutations (e.g. 100)");
  if (u->method == UNC_NONE && !u->permutations)
    return re_cfg_error(m, RE_EINVAL, "uncertainty: method none without permutations computes nothing");
  return RE_OK;
}

void unc_manifest(FILE *f, const an_unc *u) {
  static const char *methods[] = {"none", "bootstrap", "jackknife"}, *cal[] = {"difference", "z", "none"};
  if (!u->on)
    return;
  fprintf(f, ", \"uncertainty\": {\"method\": \"%s\"", methods[u->method]);
  if (u->method == UNC_BOOTSTRAP)
    fprintf(f, ", \"replicates\": %d, \"interval\": \"%s\"", u->replicates,
            u->interval == RE_INTERVAL_PERCENTILE ? "percentile" : "normal");
  if (u->method == UNC_JACKKNIFE && u->groups)
    fprintf(f, ", \"groups\": %d", u->groups);
  fprintf(f, ", \"permutations\": %d, \"seed\": %llu, \"level\": %.17g", u->permutations,
          (unsigned long long)u->seed, u->level);
  if (u->permutations)
    fprintf(f, ", \"calibrate\": \"%s\"", cal[u->calibrate]);
  fputc('}', f);
}

int64_t unc_groups(const an_unc *u, int64_t nbatches) {
  if (!u->on || u->method != UNC_JACKKNIFE)
    return 0;
  int64_t g = u->groups ? u->groups : UNC_MAX_DEFAULT_GROUPS;
  g = g < nbatches ? g : nbatches;
  return g < 2 ? 2 : g;
}

void unc_param(const an_unc *u, int64_t groups, char *param, size_t cap) {
  if (!u->on)
    return;
  size_t at = strlen(param);
  if (u->method == UNC_BOOTSTRAP)
    at += (size_t)snprintf(param + at, at < cap ? cap - at : 0, " bootstrap=%d %s", u->replicates,
                           u->interval == RE_INTERVAL_PERCENTILE ? "percentile" : "normal");
  else if (u->method == UNC_JACKKNIFE)
    at += (size_t)snprintf(param + at, at < cap ? cap - at : 0, " jackknife=%lld", (long long)groups);
  if (u->permutations)
    at += (size_t)snprintf(param + at, at < cap ? cap - at : 0, " permutations=%d", u->permutations);
  snprintf(param + at, at < cap ? cap - at : 0, " level=%g seed=%llu", u->level, (unsigned long long)u->seed);
}

void unc_resampling(const an_unc *u, const pass *p, re_resampling *rs) {
  memset(rs, 0, sizeof *rs);
  if (!u || !u->on)
    return;
  rs->bootstrap = u->method == UNC_BOOTSTRAP ? u->replicates : 0;
  rs->jackknife = (int)unc_groups(u, (p->n + p->sb - 1) / p->sb);
  rs->permutations = u->permutations;
  rs->seed = u->seed;
}

/* ---- rows ---------------------------------------------------------------------- */

static void extra(FILE *f, double v) {
  fputc(',', f);
  if (isfinite(v))
    fprintf(f, "%.17g", v);
}

void unc_row(runner *r, const char *analysis, const char *metric, int a, int b, const char *dataset,
             const char *param, double value, const char *why, const re_uncertainty *u) {
  run_row_open(r, analysis, metric, a, b, dataset, param, value, why);
  FILE *f = r->rep.metrics;
  if (u && !why && isfinite(value)) {
    extra(f, u->se);
    extra(f, u->ci_low);
    extra(f, u->ci_high);
    extra(f, u->null_mean);
    extra(f, u->null_q95);
    extra(f, u->p_value);
  } else {
    fputs(",,,,,,", f);
  }
  fputc('\n', f);
}

void unc_rows(runner *r, const an_unc *o, const char *analysis, const char *metric, int a, int b,
              const char *dataset, const char *param, double value, const char *why, const re_uncertainty *u) {
  unc_row(r, analysis, metric, a, b, dataset, param, value, why, o->on ? u : NULL);
  if (!o->on || !o->permutations || o->calibrate == UNC_CAL_NONE)
    return;
  char name[128];
  snprintf(name, sizeof name, "%s_%s", metric, o->calibrate == UNC_CAL_Z ? "z" : "calibrated");
  const char *w = why;
  double v = NAN;
  if (!w && !isfinite(u->null_mean))
    w = "no permutation-null replicate is defined";
  if (!w && o->calibrate == UNC_CAL_Z && !(u->null_sd > 0))
    w = "the permutation null has no spread";
  re_uncertainty c;
  re_uncertainty_clear(&c);
  if (!w) {
    if (o->calibrate == UNC_CAL_Z) {
      v = (value - u->null_mean) / u->null_sd;
    } else { /* the null mean as a fixed offset: the score's se, its interval shifted */
      v = value - u->null_mean;
      c.se = u->se;
      c.ci_low = u->ci_low - u->null_mean;
      c.ci_high = u->ci_high - u->null_mean;
    }
    c.p_value = u->p_value;
  }
  unc_row(r, analysis, name, a, b, dataset, param, v, w, &c);
}

/* ---- exact estimators' replicates ------------------------------------------------- */

struct unc_moments {
  int P;                /* the analysis' taps */
  int nboot, nnull;
  uint64_t seed;
  re_moments **boot;    /* nboot: layout of the analysis' taps and pairs */
  re_moments **null;    /* nnull: taps, then the permuted taps; pair (i, j) is block (i, P + j) */
  unsigned char *permuted; /* P: tap j is the second of some pair */
  double *w;            /* rows of a batch: their bootstrap counts */
  double **perm_rows;   /* P: permuted rows of the tap (NULL: not permuted) */
  const double **X;     /* 2P row pointers of a batch */
  int64_t *ld;          /* 2P */
  int64_t *perm;        /* samples of a batch */
  int64_t rps;          /* rows per sample */
  int64_t *dims;        /* P */
};

void unc_moments_destroy(unc_moments **px) {
  unc_moments *x = *px;
  if (!x)
    return;
  for (int k = 0; x->boot && k < x->nboot; k++)
    re_moments_destroy(&x->boot[k]);
  for (int k = 0; x->null && k < x->nnull; k++)
    re_moments_destroy(&x->null[k]);
  free(x->boot);
  free(x->null);
  for (int q = 0; x->perm_rows && q < x->P; q++)
    free(x->perm_rows[q]);
  free(x->perm_rows);
  free(x->permuted);
  free(x->w);
  free(x->X);
  free(x->ld);
  free(x->perm);
  free(x->dims);
  free(x);
  *px = NULL;
}

/* The analysis' pairs of local taps (all pairs i < j when it asked for all). */
static re_status local_pairs(const an_run *ar, int32_t **out, int *n) {
  int np = ar->npairs ? ar->npairs : ar->P * (ar->P - 1) / 2;
  RE_TRY(re_malloc(np > 0 ? np : 1, 2 * sizeof(int32_t), out));
  if (ar->npairs) {
    memcpy(*out, ar->pairs, sizeof(int32_t) * 2 * (size_t)np);
  } else {
    int k = 0;
    for (int i = 0; i < ar->P; i++)
      for (int j = i + 1; j < ar->P; j++)
        (*out)[2 * k] = i, (*out)[2 * k + 1] = j, k++;
  }
  *n = np;
  return RE_OK;
}

re_status unc_moments_create(runner *r, pass *p, an_run *ar, const an_unc *u, int diag_only, unc_moments **out) {
  *out = NULL;
  if (!u->on)
    return RE_OK;
  re_status st = RE_OK;
  unc_moments *x = NULL;
  int32_t *pairs = NULL, *npairs = NULL;
  int64_t *dims2 = NULL;
  int np = 0, P = ar->P;
  RE_CHECK(re_calloc(1, sizeof *x, &x));
  x->P = P;
  x->nboot = u->method == UNC_BOOTSTRAP ? u->replicates : 0;
  x->nnull = u->permutations;
  x->seed = u->seed;
  x->rps = p->mom_rps;
  if (diag_only) {
    np = P;
    RE_CHECK(re_malloc(P, 2 * sizeof(int32_t), &pairs));
    for (int q = 0; q < P; q++)
      pairs[2 * q] = pairs[2 * q + 1] = q;
  } else {
    RE_CHECK(local_pairs(ar, &pairs, &np));
  }
  RE_CHECK(re_calloc(2 * P, sizeof(int64_t), &dims2));
  RE_CHECK(re_calloc(P, sizeof(int64_t), &x->dims));
  for (int q = 0; q < P; q++)
    x->dims[q] = dims2[q] = dims2[P + q] = r->plan.taps[ar->taps[q]].dim;
  /* memory: every replicate holds a state and a merge scratch, the tree a few more */
  int64_t len_boot = 0, len_null = 0;
  RE_CHECK(re_moments_state_len(P, dims2, np, pairs, RE_MOMENTS_DEBIASED, &len_boot));
  RE_CHECK(re_calloc(np > 0 ? np : 1, 2 * sizeof(int32_t), &npairs));
  for (int k = 0; k < np; k++)
    npairs[2 * k] = pairs[2 * k], npairs[2 * k + 1] = P + pairs[2 * k + 1];
  RE_CHECK(re_moments_state_len(2 * P, dims2, np, npairs, RE_MOMENTS_DEBIASED, &len_null));
  double doubles = (double)x->nboot * (double)len_boot + (double)x->nnull * (double)len_null;
  double budget = run_stats_budget();
  if (4.0 * 8.0 * doubles > budget) {
    st = re_cfg_error(ar->a->src, RE_ENOMEM,
                      "analysis '%s': its uncertainty replicates need %.0f MB (%d bootstrap x %lld + %d permutation x "
                      "%lld doubles, each held about 4 times), more than the %.0f MB budget (REPEVAL_MAX_STATS_MB). "
                      "Use fewer replicates, fewer pairs or narrower taps (':mean'), or the minibatch estimator",
                      ar->a->name, 32.0 * doubles / 1048576.0, x->nboot, (long long)len_boot, x->nnull,
                      (long long)len_null, budget / 1048576.0);
    goto done;
  }
  RE_CHECK(re_calloc(x->nboot > 0 ? x->nboot : 1, sizeof(re_moments *), &x->boot));
  RE_CHECK(re_calloc(x->nnull > 0 ? x->nnull : 1, sizeof(re_moments *), &x->null));
  for (int k = 0; k < x->nboot; k++) {
    RE_CHECK(re_moments_create(P, dims2, np, pairs, RE_MOMENTS_DEBIASED, &x->boot[k]));
    re_moments_share_workspace(x->boot[k], x->boot[0]);
  }
  for (int k = 0; k < x->nnull; k++) {
    RE_CHECK(re_moments_create(2 * P, dims2, np, npairs, RE_MOMENTS_DEBIASED, &x->null[k]));
    re_moments_share_workspace(x->null[k], x->null[0]);
  }
  RE_CHECK(re_calloc(P, 1, &x->permuted));
  for (int k = 0; k < np; k++)
    x->permuted[pairs[2 * k + 1]] = 1;
  RE_CHECK(re_calloc(P, sizeof(double *), &x->perm_rows));
  for (int q = 0; x->nnull && q < P; q++)
    if (x->permuted[q])
      RE_CHECK(re_malloc(p->sb * x->rps, x->dims[q] * (int64_t)sizeof(double), &x->perm_rows[q]));
  RE_CHECK(re_malloc(p->sb * x->rps, sizeof(double), &x->w));
  RE_CHECK(re_calloc(2 * P, sizeof(double *), &x->X));
  RE_CHECK(re_calloc(2 * P, sizeof(int64_t), &x->ld));
  RE_CHECK(re_malloc(p->sb, sizeof(int64_t), &x->perm));
  *out = x;
  x = NULL;
done:
  unc_moments_destroy(&x);
  free(pairs);
  free(npairs);
  free(dims2);
  return st;
}

re_status unc_moments_add(unc_moments *x, const pass *p, const an_run *ar, int64_t k, int64_t s0, int64_t b,
                          const double *const *mx) {
  int P = x->P;
  int64_t rows = b * x->rps;
  for (int q = 0; q < P; q++) {
    x->X[q] = mx[p->mom_of[ar->taps[q]]];
    x->ld[q] = x->ld[P + q] = x->dims[q];
  }
  for (int r = 0; r < x->nboot; r++) {
    for (int64_t i = 0; i < b; i++) {
      double w = re_poisson1(x->seed, RE_STREAM_BOOTSTRAP + (uint64_t)r, (uint64_t)(s0 + i));
      for (int64_t t = 0; t < x->rps; t++)
        x->w[i * x->rps + t] = w;
    }
    RE_TRY(re_moments_add_batch_weighted(x->boot[r], rows, x->X, x->ld, x->w));
  }
  for (int m = 0; m < x->nnull; m++) {
    re_permutation(x->seed, RE_STREAM_PERMUTATION + (uint64_t)m, (uint64_t)k, b, x->perm);
    for (int q = 0; q < P; q++) {
      if (!x->permuted[q]) { /* no block reads it: its mean is all that is kept, and a permutation keeps it */
        x->X[P + q] = x->X[q];
        continue;
      }
      int64_t blk = x->rps * x->dims[q];
      for (int64_t i = 0; i < b; i++)
        memcpy(x->perm_rows[q] + i * blk, x->X[q] + x->perm[i] * blk, sizeof(double) * (size_t)blk);
      x->X[P + q] = x->perm_rows[q];
    }
    RE_TRY(re_moments_add_batch(x->null[m], rows, x->X, x->ld));
  }
  return RE_OK;
}

/* Replicate k of the flat buffer's order: the bootstraps, then the nulls. */
static re_moments *replicate(const unc_moments *x, int k) { return k < x->nboot ? x->boot[k] : x->null[k - x->nboot]; }

int64_t unc_moments_serial_len(const unc_moments *x) {
  int64_t n = 0;
  for (int k = 0; k < x->nboot + x->nnull; k++)
    n += re_moments_serial_len(replicate(x, k));
  return n;
}

void unc_moments_serialize(const unc_moments *x, double *buf) {
  for (int k = 0; k < x->nboot + x->nnull; k++) {
    re_moments_serialize(replicate(x, k), buf);
    buf += re_moments_serial_len(replicate(x, k));
  }
}

/* The replicates from a flat buffer: replaced by it, or (merge) merged with it. */
static re_status read_serial(unc_moments *x, const double *buf, int merge) {
  for (int k = 0; k < x->nboot + x->nnull; k++) {
    re_moments *m = replicate(x, k);
    int64_t len = re_moments_serial_len(m);
    RE_TRY(merge ? re_moments_merge_serial(m, buf, len) : re_moments_deserialize(m, buf, len));
    buf += len;
  }
  return RE_OK;
}

re_status unc_moments_deserialize(unc_moments *x, const double *buf) { return read_serial(x, buf, 0); }
re_status unc_moments_merge_serial(unc_moments *x, const double *buf) { return read_serial(x, buf, 1); }

void unc_moments_reset(unc_moments *x) {
  for (int k = 0; k < x->nboot + x->nnull; k++)
    re_moments_reset(replicate(x, k));
}

/* The replicates to and from the broadcast buffer (re_mpi_share_doubles). */
static void share_put(void *x, double *buf) { unc_moments_serialize(x, buf); }
static re_status share_get(void *x, const double *buf, int64_t len) {
  (void)len;
  return unc_moments_deserialize(x, buf);
}

re_status unc_moments_share(runner *r, unc_moments *x) {
  if (r->comm.size < 2 || !x)
    return RE_OK;
  return re_mpi_share_doubles(r->comm.comm, unc_moments_serial_len(x), x, share_put, share_get);
}

int unc_moments_nboot(const unc_moments *x) { return x ? x->nboot : 0; }
int unc_moments_nnull(const unc_moments *x) { return x ? x->nnull : 0; }
re_moments *unc_moments_boot(const unc_moments *x, int k) { return x->boot[k]; }
re_moments *unc_moments_null(const unc_moments *x, int k) { return x->null[k]; }

void unc_moments_null_layers(const unc_moments *x, int i, int j, int *a, int *c) {
  *a = i, *c = j; /* the pair as the analysis gave it: its second tap is the permuted one */
  if (!re_moments_block(x->null[0], i, x->P + j, NULL))
    *a = j, *c = i;
  *c += x->P;
}

re_status unc_summary(const an_unc *u, double estimate, const double *boot, int nb, const double *null, int nn,
                      int lower, re_uncertainty *out) {
  re_uncertainty_clear(out);
  if (nb)
    RE_TRY(re_uncertainty_bootstrap(out, boot, nb, estimate, u->level, u->interval));
  if (nn)
    RE_TRY(re_uncertainty_null(out, null, nn, estimate, lower));
  return RE_OK;
}

re_status unc_moments_cka(const unc_moments *x, const an_unc *u, int i, int j, int debiased, double estimate,
                          re_uncertainty *out) {
  re_uncertainty_clear(out);
  int most = x->nboot > x->nnull ? x->nboot : x->nnull;
  double *v = NULL;
  re_status st = RE_OK;
  RE_TRY(re_malloc(most > 0 ? most : 1, sizeof(double), &v));
  re_cka_result res;
  for (int k = 0; k < x->nboot; k++) {
    RE_CHECK(re_cka_linear_from_moments(x->boot[k], i, j, debiased, &res));
    v[k] = res.defined ? res.value : NAN;
  }
  if (x->nboot)
    RE_CHECK(re_uncertainty_bootstrap(out, v, x->nboot, estimate, u->level, u->interval));
  if (x->nnull && i != j) {
    int a, c;
    unc_moments_null_layers(x, i, j, &a, &c);
    for (int k = 0; k < x->nnull; k++) {
      RE_CHECK(re_cka_linear_from_moments(x->null[k], a, c, debiased, &res));
      v[k] = res.defined ? res.value : NAN;
    }
    RE_CHECK(re_uncertainty_null(out, v, x->nnull, estimate, 0));
  }
done:
  free(v);
  return st;
}
