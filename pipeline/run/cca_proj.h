/* The two-pass route of the cca analysis, for many wide taps whose exact co-moments
 * (every d_i x d_j block of the pairs) do not fit: the pass accumulates each tap's
 * own covariance only, which fixes its top principal directions W_q (d_q x k_q, k_q
 * from SVCCA's variance threshold, capped by max_components); a second stream over
 * the same samples accumulates the co-moments of the projections X_q W_q, so the
 * state is sum k_q^2 over the pairs instead of sum d_i d_j. SVCCA is then CCA of the
 * projections (the same value as the exact route when no cap applies), PWCCA is
 * PWCCA of the projections. docs/job-spec.md#cca. */
#ifndef REPEVAL_RUN_CCA_PROJ_H
#define REPEVAL_RUN_CCA_PROJ_H

#include "run/run.h"

/* The second pass's leaves: at most this many groups of statistics batches. */
#define CCA_PROJ_LEAVES 32
/* Copies of the projected state a rank may hold at once (accumulator, waiting nodes
 * of the tree over CCA_PROJ_LEAVES leaves, received states, the shared copy). */
#define CCA_PROJ_COPIES 10

typedef struct cca_proj {
  re_moments *m;  /* co-moments of the projections: layer q = the analysis' tap q (every rank) */
  int64_t *k;     /* P: directions kept per tap (0: the tap has no variance) */
  int ncapped;    /* taps whose variance threshold wanted more than max_components */
  int64_t leaves; /* leaves of the second pass's reduction tree */
  double seconds; /* the second stream and its reduction */
} cca_proj;

/* Doubles of the analysis' co-moments: exact (every block of its pairs, as the pass
 * keeps them) and projected (each tap's width capped at max_k; 0: no cap). */
re_status cca_proj_state_len(const runner *r, const an_run *ar, int64_t max_k, int64_t *exact, int64_t *projected);
/* The pairs (local tap indices) the analysis wants, as npairs x 2 (owned). */
re_status cca_proj_pairs(const an_run *ar, int32_t **pairs, int *npairs);
/* Collective, after the pass is reduced and shared: the directions of every tap
 * (computed once, by the rank owning its block, and broadcast), then the second
 * stream over the pass's batches and its canonical reduction; out->m on every rank. */
re_status cca_proj_run(runner *r, pass *p, an_run *ar, re_eig **eigs, double variance, int64_t max_k,
                       cca_proj *out);
void cca_proj_free(cca_proj *c);

#endif
