/* Rows of taps for the analyses that look at samples rather than statistics (map,
 * alignment): a seeded sample of sample indices, the labels of a pass's samples,
 * and rows kept in the embedding cache (the job's, or the run's own, as probes). */
#ifndef REPEVAL_RUN_ROWS_H
#define REPEVAL_RUN_ROWS_H

#include "run/run.h"

/* m distinct indices of [0, n) in increasing order (all of them when m >= n): the
 * first m of a Fisher-Yates shuffle driven by splitmix64(seed), as re_probe_split
 * draws validation rows. *idx is allocated (count entries). */
re_status rows_sample(int64_t n, int64_t m, uint64_t seed, int64_t **idx, int64_t *count);
/* Labels of the pass's samples idx[0..m) (pass-relative indices). */
re_status rows_labels(pass *p, const int64_t *idx, int64_t m, int32_t *labels);
/* On a pass: keep tap t's rows (and the dataset's labels when `labels`) in the cache
 * shards that rows_cached reads after the passes. */
void rows_keep(runner *r, pass *p, int t, int labels);
/* After the passes: rows [row0, row1) of dataset d for tap t (X: rows x dim), or its
 * labels (t < 0, y), from the cache shards. */
re_status rows_cached(runner *r, int d, int t, int64_t row0, int64_t row1, float *X, int32_t *y);

#endif
