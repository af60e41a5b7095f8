/* How the pairs of a pair analysis (cca, shape, rsa) are spread over the ranks for
 * finalize. A rank's share is a run of the Morton (Z) order of the pairs (i, l): a
 * run of that curve covers squares of the pair matrix, so a rank's pairs read few
 * taps (their co-moment blocks and eigendecompositions), about 2 P / sqrt(2 R) of
 * P taps for all pairs instead of nearly all P for a run of rows. The runs are cut
 * so that each holds about a 1/R of the pairs' estimated cost. Pure arithmetic, the
 * same on every rank; rows still reach metrics.csv in row-major pair order
 * (run/analysis.h, an_rows_pair). */
#ifndef REPEVAL_RUN_PAIR_SHARE_H
#define REPEVAL_RUN_PAIR_SHARE_H

#include <stdint.h>

#include "repeval/core.h"

typedef struct pair_share {
  int P;          /* taps */
  int32_t *prow;  /* the wanted pairs (i < l) in row-major order, 2 x npairs; NULL: all i < l */
  int64_t npairs; /* how many pairs are wanted */
  int R;          /* ranks */
  uint64_t *key;  /* R + 1 Morton keys: rank q's pairs have keys in [key[q], key[q + 1]) */
  int64_t *count; /* R: how many pairs each rank has */
  double *cost;   /* R: their estimated cost */
} pair_share;

/* Estimated cost of pair (i, l) (> 0), ctx the caller's. */
typedef double (*pair_cost_fn)(void *ctx, int i, int l);

/* The Morton key of pair (i, l): the bits of i and l interleaved, i's above l's. */
uint64_t pair_share_key(int i, int l);
/* Split the pairs of P taps over R ranks: pairs (npairs x 2 local indices, either
 * order; NULL: every i < l), cost NULL: 1 per pair. */
re_status pair_share_make(int P, const int32_t *pairs, int64_t npairs, int R, pair_cost_fn cost, void *ctx,
                          pair_share *s);
/* Is pair (i, l), either order, wanted? (a binary search of the listed pairs; all when none are listed) */
int pair_share_has(const pair_share *s, int i, int l);
/* The rank whose share holds pair (i, l) (i < l). */
int pair_share_owner(const pair_share *s, int i, int l);
void pair_share_free(pair_share *s);

#endif
