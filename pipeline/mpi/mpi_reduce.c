/* Fixed-order binomial-tree reduction of serialized accumulators. */
#include "mpi/mpi_reduce.h"

#include <limits.h>
#include <stdlib.h>

#define CHUNK ((int64_t)1 << 26) /* doubles per message: 512 MiB */

static re_status send_all(MPI_Comm comm, const double *buf, int64_t len, int dest) {
  for (int64_t off = 0; off < len; off += CHUNK) {
    int n = (int)(len - off < CHUNK ? len - off : CHUNK);
    if (MPI_Send(buf + off, n, MPI_DOUBLE, dest, RE_TAG_REDUCE_CHUNK, comm) != MPI_SUCCESS)
      return re_err(RE_EMPI, "MPI_Send of %d doubles to rank %d failed", n, dest);
  }
  return RE_OK;
}

static re_status recv_all(MPI_Comm comm, double *buf, int64_t len, int src) {
  for (int64_t off = 0; off < len; off += CHUNK) {
    int n = (int)(len - off < CHUNK ? len - off : CHUNK);
    if (MPI_Recv(buf + off, n, MPI_DOUBLE, src, RE_TAG_REDUCE_CHUNK, comm, MPI_STATUS_IGNORE) != MPI_SUCCESS)
      return re_err(RE_EMPI, "MPI_Recv of %d doubles from rank %d failed", n, src);
  }
  return RE_OK;
}

re_status re_mpi_reduce_ordered(MPI_Comm comm, const re_reducible *r) {
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  long long lens[2] = {(long long)r->len, -(long long)r->len}, agg[2];
  MPI_Allreduce(lens, agg, 2, MPI_LONG_LONG, MPI_MAX, comm);
  if (agg[0] != -agg[1])
    return re_err(RE_EMPI, "ranks disagree on the accumulator size (%lld vs %lld doubles)", agg[0], -agg[1]);
  double *buf = NULL;
  re_status st = re_malloc(r->len, sizeof(double), &buf);
  st = re_mpi_agree(comm, st);
  if (st != RE_OK) {
    free(buf);
    return st;
  }
  for (int mask = 1; mask < size; mask <<= 1) {
    if (rank & mask) {
      r->serialize(r->ctx, buf);
      st = send_all(comm, buf, r->len, rank - mask);
      break;
    }
    if (rank + mask < size) {
      st = recv_all(comm, buf, r->len, rank + mask);
      if (st == RE_OK)
        st = r->merge(r->ctx, buf, r->len);
      if (st != RE_OK)
        break;
    }
  }
  free(buf);
  return re_mpi_agree(comm, st);
}

re_status re_mpi_agree(MPI_Comm comm, re_status local) {
  int mine = (int)local, worst = 0;
  if (MPI_Allreduce(&mine, &worst, 1, MPI_INT, MPI_MAX, comm) != MPI_SUCCESS)
    return re_err(RE_EMPI, "MPI_Allreduce failed while agreeing on errors");
  if (local != RE_OK)
    return local;
  if (worst != 0)
    return re_err(RE_EMPI, "stopped because another rank failed (see its message)");
  return RE_OK;
}
