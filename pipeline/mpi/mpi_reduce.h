/* Deterministic reductions of serialized accumulators across MPI ranks.
 * MPI lives only in pipeline/; the library's accumulators know nothing of it. */
#ifndef REPEVAL_MPI_REDUCE_H
#define REPEVAL_MPI_REDUCE_H

#include <mpi.h>

#include "mpi/tags.h" /* the message tags, for every file that sends or receives */
#include "repeval/core.h"

/* An accumulator seen as a flat buffer of doubles that can absorb another one. */
typedef struct re_reducible {
  void *ctx;
  int64_t len;                                     /* doubles, equal on every rank */
  void (*serialize)(void *ctx, double *buf);       /* write the state */
  re_status (*merge)(void *ctx, const double *buf, int64_t len); /* ctx <- ctx (+) buf */
} re_reducible;

/* Collective. Reduce to rank 0 along a binomial tree with a fixed shape: at
 * step k (mask = 2^k) rank r with r % 2^(k+1) == 0 absorbs rank r + 2^k. Each
 * merge keeps rank order (lower ranks on the left), so for a given rank count
 * the result is bitwise reproducible; log2(R) steps of `len` doubles. */
re_status re_mpi_reduce_ordered(MPI_Comm comm, const re_reducible *r);

/* Collective. Agree on failure: returns `local` if it failed, RE_EMPI with a
 * message if another rank failed, RE_OK if every rank succeeded. */
re_status re_mpi_agree(MPI_Comm comm, re_status local);

#endif
