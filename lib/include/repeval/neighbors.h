/* Exact cosine k-nearest-neighbour graphs of a representation (n samples as rows) and
 * the neighbourhood similarity of two representations of the same samples: mutual
 * k-NN alignment and CKNNA (Huh et al. 2024, "The Platonic Representation
 * Hypothesis"), cycle k-NN and the Jaccard index of k-NN sets. Formulas in
 * docs/metrics.md.
 *
 * A sample's neighbours are the k other samples of largest cosine similarity
 * s(i, j) = <x_i, x_j> / (|x_i| |x_j|) (0 when a row is zero), ties broken by the
 * smaller sample index. s is evaluated in float64 in one fixed order, so the graph is
 * the exact top-k of that float64 similarity and does not depend on how the work is
 * split. The work is a grid of block pairs (I <= J) of the rows: float32 similarity
 * blocks by sgemm, each used for both blocks' rows, keep k + m candidates per row;
 * the candidates are then ranked by the float64 similarity, and a row whose
 * candidates cannot be proven to hold its exact top-k (the float32 error bound,
 * docs/metrics.md) is recomputed against every row. Memory: the rows, O(n (k + m))
 * for the candidates, O(n k) for a graph; never n x n.
 *
 * Distributed use without MPI in the library: every process holds all rows, adds a
 * contiguous range of the block-pair units, and the candidate lists are packed,
 * merged (in any order: the result is the same) and finished on one process. */
#ifndef REPEVAL_NEIGHBORS_H
#define REPEVAL_NEIGHBORS_H

#include "repeval/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A k-NN graph over n samples. */
typedef struct re_knn_graph {
  int64_t n;
  int k;            /* neighbours per sample (<= n - 1) */
  int32_t *idx;     /* n x k neighbour indices, best first */
  double *sim;      /* n x k cosine similarities, descending */
  int64_t rechecked; /* rows whose candidates were not provably complete (recomputed) */
} re_knn_graph;

/* Free a graph's arrays (the struct is the caller's); NULL members allowed. */
void re_knn_graph_free(re_knn_graph *g);

/* Candidate lists of a graph being built (holds a pointer to the caller's rows). */
typedef struct re_knn_build re_knn_build;

/* Start a build over the rows X (n x d float32, row-major, leading dimension ld >=
 * d; kept by the caller until the build is destroyed) for k neighbours (1 <= k <= n -
 * 1, n < 2^31), with blocks of `block` rows (0: default 512). Norms are computed here;
 * a NaN or Inf is RE_EDATA naming its row and column. */
re_status re_knn_build_create(const float *X, int64_t n, int64_t d, int64_t ld, int k, int64_t block,
                              re_knn_build **out);
/* Destroy (NULL allowed); sets *b to NULL. */
void re_knn_build_destroy(re_knn_build **b);
/* Number of block-pair units of the grid (nb (nb + 1) / 2 for nb blocks). */
int64_t re_knn_build_units(const re_knn_build *b);
/* Add the units [u0, u1) (row-major order over I <= J) to the candidate lists. */
re_status re_knn_build_add_units(re_knn_build *b, int64_t u0, int64_t u1);
/* Bytes of the packed candidates of rows [r0, r1). */
int64_t re_knn_build_packed_bytes(const re_knn_build *b, int64_t r0, int64_t r1);
/* Pack the candidates of rows [r0, r1) into buf (re_knn_build_packed_bytes bytes). */
void re_knn_build_pack(const re_knn_build *b, int64_t r0, int64_t r1, void *buf);
/* Merge packed candidates of rows [r0, r1) (from a build with the same n, k, block)
 * into b; bytes is checked against the layout. */
re_status re_knn_build_merge(re_knn_build *b, int64_t r0, int64_t r1, const void *buf, int64_t bytes);
/* Rank the candidates by the float64 similarity, recompute the rows that need it, and
 * write the graph (all units must have been added, here or merged). */
re_status re_knn_build_finish(re_knn_build *b, re_knn_graph *g);

/* The whole build in one process. */
re_status re_knn_graph_build(const float *X, int64_t n, int64_t d, int64_t ld, int k, re_knn_graph *g);

/* Neighbourhood similarity of graphs a and b over the same samples, with the first k
 * neighbours of each (k <= both graphs' k). Averages over the n samples. */
typedef struct re_knn_compare {
  double mutual;   /* mean |N_a(i) & N_b(i)| / k */
  double jaccard;  /* mean |N_a(i) & N_b(i)| / |N_a(i) | N_b(i)| */
  double cycle_ab; /* fraction of i with i in N_a(j) for some j in N_b(i) */
  double cycle_ba; /* the same with a and b swapped */
  double cknna;    /* CKNNA (unbiased HSIC of the kernels masked by the mutual neighbours); NaN if undefined */
  const char *cknna_undefined; /* why CKNNA is NaN (static string), else NULL */
} re_knn_compare;

/* Compare a and b at k. */
re_status re_knn_graph_compare(const re_knn_graph *a, const re_knn_graph *b, int k, re_knn_compare *out);

#ifdef __cplusplus
}
#endif
#endif
