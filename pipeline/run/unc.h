/* Uncertainty of an analysis' scores (the job key `uncertainty:`): settings,
 * the metrics.csv columns se, ci_low, ci_high, null_mean, null_q95, p_value, and
 * the replicate accumulators of the co-moment (exact) estimators.
 *
 * Minibatch estimators keep their replicates inside their own accumulator
 * (re_hsic: bootstrap and jackknife over batches, permutation null). Exact
 * estimators get here, per analysis, B bootstrap co-moment accumulators (sample s
 * of the pass counted re_poisson1(seed, RE_STREAM_BOOTSTRAP + r, s) times in
 * replicate r) and M null accumulators (the analysis' taps, then the same taps
 * with the samples of each statistics batch k permuted by
 * re_permutation(seed, RE_STREAM_PERMUTATION + m, k); pair (i, j) is the block
 * (i, P + j)). They ride the pass's reduction tree with the other accumulators,
 * so every value is the same for any number of ranks. */
#ifndef REPEVAL_RUN_UNC_H
#define REPEVAL_RUN_UNC_H

#include <stdio.h>

#include "repeval/resample.h"
#include "run/run.h"

enum { UNC_NONE = 0, UNC_BOOTSTRAP = 1, UNC_JACKKNIFE = 2 };
enum { UNC_CAL_DIFFERENCE = 0, UNC_CAL_Z = 1, UNC_CAL_NONE = 2 };
/* What an analysis allows (unc_parse): co-moment estimators have no batches to
 * jackknife; per-tap metrics have no pair to permute. */
enum { UNC_COMOMENTS = 1u << 0, UNC_PER_TAP = 1u << 1 };

typedef struct an_unc {
  int on;           /* the analysis has an `uncertainty:` map */
  int method;       /* UNC_NONE, UNC_BOOTSTRAP, UNC_JACKKNIFE */
  int replicates;   /* bootstrap replicates */
  int groups;       /* jackknife groups (0: one per batch, at most UNC_MAX_DEFAULT_GROUPS) */
  int permutations; /* permutation-null replicates */
  uint64_t seed;
  double level;
  re_interval_kind interval;
  int calibrate;    /* with permutations: UNC_CAL_* */
} an_unc;

#define UNC_MAX_DEFAULT_GROUPS 100

/* The `uncertainty:` map of analysis a (absent: u->on = 0); flags: UNC_COMOMENTS,
 * UNC_PER_TAP. */
re_status unc_parse(const job_analysis *a, const re_cfg *c, unsigned flags, an_unc *u);
/* Its settings for manifest.json: ", \"uncertainty\": {...}" (nothing when off). */
void unc_manifest(FILE *f, const an_unc *u);
/* Append its settings to a metrics.csv param ("... bootstrap=200 normal level=0.95 seed=0"). */
void unc_param(const an_unc *u, int64_t groups, char *param, size_t cap);
/* Jackknife groups on a pass of nbatches batches. */
int64_t unc_groups(const an_unc *u, int64_t nbatches);
/* The resampling of a minibatch accumulator on pass p (NULL-able settings: none). */
void unc_resampling(const an_unc *u, const pass *p, re_resampling *rs);

/* A score row with its uncertainty (u NULL: the extra columns stay empty). */
void unc_row(runner *r, const char *analysis, const char *metric, int a, int b, const char *dataset,
             const char *param, double value, const char *why, const re_uncertainty *u);
/* The score's rows: the score with its uncertainty and, with permutations, the
 * calibrated score (metric_calibrated = score - null mean, with the interval shifted
 * by it; or metric_z = (score - null mean) / null sd). */
void unc_rows(runner *r, const an_unc *o, const char *analysis, const char *metric, int a, int b,
              const char *dataset, const char *param, double value, const char *why, const re_uncertainty *u);

/* ---- exact estimators' replicates ---- */
typedef struct unc_moments unc_moments;
/* The replicate accumulators of analysis ar on pass p (its taps must be co-moment
 * layers of the pass; diag_only: each tap with itself, for per-tap metrics);
 * checked against REPEVAL_MAX_STATS_MB. */
re_status unc_moments_create(runner *r, pass *p, an_run *ar, const an_unc *u, int diag_only, unc_moments **out);
void unc_moments_destroy(unc_moments **x);
/* Statistics batch k (samples [s0, s0 + b) of the pass, rows staged per co-moment layer in mx). */
re_status unc_moments_add(unc_moments *x, const pass *p, const an_run *ar, int64_t k, int64_t s0, int64_t b,
                          const double *const *mx);
int64_t unc_moments_serial_len(const unc_moments *x);
void unc_moments_serialize(const unc_moments *x, double *buf);
re_status unc_moments_deserialize(unc_moments *x, const double *buf);
re_status unc_moments_merge_serial(unc_moments *x, const double *buf);
void unc_moments_reset(unc_moments *x);
/* Collective: rank 0's reduced replicates to every rank (for finalize hooks that
 * spread their units over the ranks). */
re_status unc_moments_share(runner *r, unc_moments *x);
/* Bootstrap replicates and null accumulators. */
int unc_moments_nboot(const unc_moments *x);
int unc_moments_nnull(const unc_moments *x);
re_moments *unc_moments_boot(const unc_moments *x, int k);
re_moments *unc_moments_null(const unc_moments *x, int k);
/* The layers of pair (i, j) of local taps in the null accumulators: (*a, *c), c the
 * permuted copy of the pair's second tap as the analysis lists it. */
void unc_moments_null_layers(const unc_moments *x, int i, int j, int *a, int *c);
/* A score's uncertainty from its bootstrap values (nb) and null values (nn); lower:
 * smaller is more similar (a distance), for the p-value. */
re_status unc_summary(const an_unc *u, double estimate, const double *boot, int nb, const double *null, int nn,
                      int lower, re_uncertainty *out);
/* Linear CKA uncertainty of local taps (i, j) of the analysis from the replicates. */
re_status unc_moments_cka(const unc_moments *x, const an_unc *u, int i, int j, int debiased, double estimate,
                          re_uncertainty *out);

#endif
