/* Test helper: the library's random draws and replicate summaries as text, so
 * Python tests can compare them with an independent implementation.
 *   resample_tool draws SEED STREAM INDEX COUNT    u64 and Poisson(1) of indices INDEX..
 *   resample_tool perm SEED STREAM INDEX N         a permutation of 0..N-1
 *   resample_tool normq P...                       standard normal quantiles
 *   resample_tool tq DF P...                       Student t quantiles
 *   resample_tool quantile Q V...                  NumPy-rule quantile of the values
 *   resample_tool boot normal|percentile LEVEL EST V...   se ci_low ci_high (NAN values skipped)
 *   resample_tool jack LEVEL EST V...              se ci_low ci_high
 *   resample_tool null EST V...                    null_mean null_sd null_q95 p_value
 *   resample_tool null_lower EST V...              the same for a distance (p counts null <= EST) */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repeval/resample.h"

static uint64_t u64(const char *s) { return strtoull(s, NULL, 10); }

static double *values(int argc, char **argv, int from, int *n) {
  *n = argc - from;
  double *v = malloc(sizeof(double) * (size_t)(*n > 0 ? *n : 1));
  for (int k = 0; v && k < *n; k++)
    v[k] = strtod(argv[from + k], NULL);
  return v;
}

int main(int argc, char **argv) {
  if (argc < 2)
    return 2;
  const char *cmd = argv[1];
  if (!strcmp(cmd, "draws") && argc == 6) {
    uint64_t seed = u64(argv[2]), stream = u64(argv[3]), index = u64(argv[4]), count = u64(argv[5]);
    for (uint64_t k = 0; k < count; k++)
      printf("%" PRIu64 " %d\n", re_rand_u64(seed, stream, index + k), re_poisson1(seed, stream, index + k));
    return 0;
  }
  if (!strcmp(cmd, "perm") && argc == 6) {
    int64_t n = (int64_t)u64(argv[5]);
    int64_t *p = malloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
    if (!p)
      return 1;
    re_permutation(u64(argv[2]), u64(argv[3]), u64(argv[4]), n, p);
    for (int64_t k = 0; k < n; k++)
      printf("%" PRId64 "%c", p[k], k + 1 < n ? ' ' : '\n');
    free(p);
    return 0;
  }
  if (!strcmp(cmd, "normq")) {
    for (int k = 2; k < argc; k++)
      printf("%.17g\n", re_normal_quantile(strtod(argv[k], NULL)));
    return 0;
  }
  if (!strcmp(cmd, "tq") && argc >= 3) {
    double df = strtod(argv[2], NULL);
    for (int k = 3; k < argc; k++)
      printf("%.17g\n", re_t_quantile(strtod(argv[k], NULL), df));
    return 0;
  }
  int n;
  double *v = NULL;
  re_uncertainty u;
  re_uncertainty_clear(&u);
  re_status st = RE_OK;
  if (!strcmp(cmd, "quantile") && argc >= 3) {
    v = values(argc, argv, 3, &n);
    printf("%.17g\n", re_quantile_sorted_inplace(v, n, strtod(argv[2], NULL)));
  } else if (!strcmp(cmd, "boot") && argc >= 5) {
    v = values(argc, argv, 5, &n);
    st = re_uncertainty_bootstrap(&u, v, n, strtod(argv[4], NULL), strtod(argv[3], NULL),
                                  strcmp(argv[2], "percentile") ? RE_INTERVAL_NORMAL : RE_INTERVAL_PERCENTILE);
    printf("%.17g %.17g %.17g %d\n", u.se, u.ci_low, u.ci_high, u.replicates);
  } else if (!strcmp(cmd, "jack") && argc >= 4) {
    v = values(argc, argv, 4, &n);
    st = re_uncertainty_jackknife(&u, v, n, strtod(argv[3], NULL), strtod(argv[2], NULL));
    printf("%.17g %.17g %.17g %d\n", u.se, u.ci_low, u.ci_high, u.replicates);
  } else if ((!strcmp(cmd, "null") || !strcmp(cmd, "null_lower")) && argc >= 3) {
    v = values(argc, argv, 3, &n);
    st = re_uncertainty_null(&u, v, n, strtod(argv[2], NULL), !strcmp(cmd, "null_lower"));
    printf("%.17g %.17g %.17g %.17g %d\n", u.null_mean, u.null_sd, u.null_q95, u.p_value, u.null_replicates);
  } else {
    return 2;
  }
  free(v);
  if (st != RE_OK) {
    fprintf(stderr, "resample_tool: %s\n", re_errmsg());
    return 1;
  }
  return 0;
}
