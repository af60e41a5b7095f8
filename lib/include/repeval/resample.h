/* Resampling for uncertainty: counter-based random draws keyed by
 * (seed, stream, index), never by process or rank, so replicate weights and
 * permutations are the same whatever splits the data; Poisson(1) bootstrap
 * weights (Hanley & MacGibbon 2006), within-unit permutations, and the
 * summaries of replicate values: bootstrap standard error and interval
 * (Efron & Tibshirani 1993), delete-a-group jackknife (Kott 2001) and
 * permutation-null statistics with p = (1 + #{null >= observed}) / (1 + M)
 * (#{null <= observed} for a distance)
 * (Phipson & Smyth 2010).
 *
 * The generator: f(z) is the SplitMix64 output function (Steele, Lea, Flood
 * 2014: z += 0x9e3779b97f4a7c15, then two xor-shift-multiply rounds), and
 * re_rand_u64(seed, stream, index) = f(f(f(seed) ^ stream) ^ index). */
#ifndef REPEVAL_RESAMPLE_H
#define REPEVAL_RESAMPLE_H

#include "repeval/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What an accumulator resamples: counts of replicates (0: none) and the seed. */
typedef struct re_resampling {
  int bootstrap;    /* B Poisson(1)-weighted bootstrap replicates */
  int jackknife;    /* G delete-a-group jackknife groups (unit k in group k mod G) */
  int permutations; /* M permutation-null replicates */
  uint64_t seed;
} re_resampling;

/* Which replicate values: bootstrap, jackknife (leave one group out), permutation null. */
typedef enum re_replicate_kind { RE_REP_BOOTSTRAP = 0, RE_REP_JACKKNIFE = 1, RE_REP_NULL = 2 } re_replicate_kind;

/* Interval construction from bootstrap replicates. */
typedef enum re_interval_kind {
  RE_INTERVAL_NORMAL = 0,    /* estimate +- z se (se: replicates' standard deviation) */
  RE_INTERVAL_PERCENTILE = 1 /* replicate quantiles at (1 - level) / 2 and (1 + level) / 2 */
} re_interval_kind;

/* A score's uncertainty; every field NAN when not computed or undefined. */
typedef struct re_uncertainty {
  double se;        /* standard error */
  double ci_low;    /* interval at the requested level */
  double ci_high;
  double null_mean; /* mean of the permutation-null scores */
  double null_sd;   /* their standard deviation (n - 1) */
  double null_q95;  /* their 95th percentile */
  double p_value;   /* (1 + #{null >= observed}) / (1 + M) (<= for a distance) */
  int replicates;   /* defined replicates behind se and the interval */
  int null_replicates; /* defined null replicates */
} re_uncertainty;

/* Streams of the draws (high bits), so bootstrap replicate r and permutation m never share one. */
#define RE_STREAM_BOOTSTRAP (1ull << 40)
#define RE_STREAM_PERMUTATION (2ull << 40)

/* 64 random bits for (seed, stream, index). */
uint64_t re_rand_u64(uint64_t seed, uint64_t stream, uint64_t index);
/* A Poisson(1) count for (seed, stream, index) by inversion of a 53-bit uniform. */
int re_poisson1(uint64_t seed, uint64_t stream, uint64_t index);
/* A uniform permutation of 0..n-1 for (seed, stream, index) (Fisher-Yates; position i
 * draws j = floor(2^-64 f(h ^ i) (i + 1)) with h = re_rand_u64(seed, stream, index)).
 * perm: n entries. */
void re_permutation(uint64_t seed, uint64_t stream, uint64_t index, int64_t n, int64_t *perm);

/* The q-quantile (0 <= q <= 1) of v[0..n) with NumPy's default (linear) rule; sorts v. */
double re_quantile_sorted_inplace(double *v, int64_t n, double q);
/* Standard normal quantile (0 < p < 1). */
double re_normal_quantile(double p);
/* Student t quantile with df > 0 degrees of freedom (0 < p < 1): closed forms for
 * df = 1 and 2, else a Cornish-Fisher start (Abramowitz & Stegun 26.7.5) refined by
 * Newton steps on the exact CDF (the regularized incomplete beta function). */
double re_t_quantile(double p, double df);

/* Start a summary: every field NAN, counts 0. */
void re_uncertainty_clear(re_uncertainty *u);
/* se and interval from n bootstrap replicate values (NANs skipped; fewer than 2
 * defined leave them NAN). 0 < level < 1. */
re_status re_uncertainty_bootstrap(re_uncertainty *u, const double *reps, int n, double estimate, double level,
                                   re_interval_kind kind);
/* se and interval from n leave-one-group-out values (NANs skipped; fewer than 2
 * defined leave them NAN): se^2 = (g - 1)/g sum (t_k - mean)^2, interval
 * estimate +- t_{g-1, (1 + level)/2} se. */
re_status re_uncertainty_jackknife(re_uncertainty *u, const double *loo, int n, double estimate, double level);
/* Null mean, sd, 95th percentile and p-value from n null values (NANs skipped);
 * lower: small values are the extreme ones (a distance), so p counts null <= estimate. */
re_status re_uncertainty_null(re_uncertainty *u, const double *null, int n, double estimate, int lower);

#ifdef __cplusplus
}
#endif
#endif
