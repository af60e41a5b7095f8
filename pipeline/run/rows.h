/* Samples for the analyses that look at samples rather than statistics (map,
 * alignment): a seeded sample of sample indices and the labels of a pass's samples.
 * Rows kept in the embedding cache are read with an_stored_rows (run/analysis.h). */
#ifndef REPEVAL_RUN_ROWS_H
#define REPEVAL_RUN_ROWS_H

#include "run/run.h"

/* m distinct indices of [0, n) in increasing order (all of them when m >= n): the
 * first m of a Fisher-Yates shuffle driven by splitmix64(seed), as re_probe_split
 * draws validation rows. *idx is allocated (count entries). */
re_status rows_sample(int64_t n, int64_t m, uint64_t seed, int64_t **idx, int64_t *count);
/* Labels of the pass's samples idx[0..m) (pass-relative indices). */
re_status rows_labels(pass *p, const int64_t *idx, int64_t m, int32_t *labels);
#endif
