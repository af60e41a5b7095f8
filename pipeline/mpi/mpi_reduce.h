/* Agreement across MPI ranks (reductions of statistics: mpi/tree.h). MPI lives only
 * in pipeline/; the library's accumulators know nothing of it. */
#ifndef REPEVAL_MPI_REDUCE_H
#define REPEVAL_MPI_REDUCE_H

#include <mpi.h>

#include "mpi/tags.h" /* the message tags, for every file that sends or receives */
#include "repeval/core.h"

/* Collective. Agree on failure: returns `local` if it failed, RE_EMPI with a
 * message if another rank failed, RE_OK if every rank succeeded. */
re_status re_mpi_agree(MPI_Comm comm, re_status local);

/* Collective: rank 0's len doubles to every rank, in chunks MPI counts can hold. Rank 0
 * writes them with put(obj, buf), the other ranks read them with get(obj, buf, len);
 * the status is agreed. Needs at least two ranks. */
re_status re_mpi_share_doubles(MPI_Comm comm, int64_t len, void *obj, void (*put)(void *obj, double *buf),
                               re_status (*get)(void *obj, const double *buf, int64_t len));

/* Point to point: len doubles (a length, then chunks MPI counts can hold) to rank dst,
 * and their receipt into buf (cap doubles) from rank src: *len the count sent, which must
 * be at least `want` and at most cap (else RE_EMPI, the message drained all the same). */
re_status re_mpi_send_doubles(MPI_Comm comm, const double *buf, int64_t len, int dst, int tag);
re_status re_mpi_recv_doubles(MPI_Comm comm, double *buf, int64_t want, int64_t cap, int src, int tag, int64_t *len);

/* Collective: the element-wise sum of every rank's len doubles `in` into `out` on rank 0
 * (NULL elsewhere), in chunks MPI counts can hold. */
void re_mpi_sum_doubles(MPI_Comm comm, const double *in, double *out, int64_t len);

#endif
