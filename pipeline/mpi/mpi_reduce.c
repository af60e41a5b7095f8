/* Agreement of every rank on success or failure. */
#include "mpi/mpi_reduce.h"

#include <stdlib.h>

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

/* Doubles per MPI call: counts are ints. */
#define CHUNK ((int64_t)1 << 26)

re_status re_mpi_share_doubles(MPI_Comm comm, int64_t len, void *obj, void (*put)(void *obj, double *buf),
                               re_status (*get)(void *obj, const double *buf, int64_t len)) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  double *buf = NULL;
  re_status st = re_mpi_agree(comm, re_malloc(len > 0 ? len : 1, sizeof(double), &buf));
  if (st != RE_OK) {
    free(buf);
    return st;
  }
  if (rank == 0)
    put(obj, buf);
  for (int64_t off = 0; off < len; off += CHUNK)
    MPI_Bcast(buf + off, (int)(len - off < CHUNK ? len - off : CHUNK), MPI_DOUBLE, 0, comm);
  if (rank != 0)
    st = get(obj, buf, len);
  free(buf);
  return re_mpi_agree(comm, st);
}

re_status re_mpi_send_doubles(MPI_Comm comm, const double *buf, int64_t len, int dst, int tag) {
  long long n = len;
  if (MPI_Send(&n, 1, MPI_LONG_LONG, dst, TAG_DOUBLES_LEN, comm) != MPI_SUCCESS)
    return re_err(RE_EMPI, "MPI_Send to rank %d failed", dst);
  for (int64_t off = 0; off < len; off += CHUNK)
    if (MPI_Send(buf + off, (int)(len - off < CHUNK ? len - off : CHUNK), MPI_DOUBLE, dst, tag, comm) != MPI_SUCCESS)
      return re_err(RE_EMPI, "MPI_Send to rank %d failed", dst);
  return RE_OK;
}

re_status re_mpi_recv_doubles(MPI_Comm comm, double *buf, int64_t want, int64_t cap, int src, int tag, int64_t *len) {
  long long n = 0;
  if (MPI_Recv(&n, 1, MPI_LONG_LONG, src, TAG_DOUBLES_LEN, comm, MPI_STATUS_IGNORE) != MPI_SUCCESS)
    return re_err(RE_EMPI, "MPI_Recv from rank %d failed", src);
  *len = n;
  for (int64_t off = 0; off < n; off += CHUNK) { /* past cap: drained through a scratch buffer */
    int c = (int)(n - off < CHUNK ? n - off : CHUNK);
    double *dst = off + c <= cap ? buf + off : malloc(sizeof(double) * (size_t)c);
    if (!dst)
      return re_err(RE_ENOMEM, "cannot drain a message of %d doubles from rank %d", c, src);
    int rc = MPI_Recv(dst, c, MPI_DOUBLE, src, tag, comm, MPI_STATUS_IGNORE);
    if (dst != buf + off)
      free(dst);
    if (rc != MPI_SUCCESS)
      return re_err(RE_EMPI, "MPI_Recv from rank %d failed", src);
  }
  if (n < want || n > cap)
    return re_err(RE_EMPI, "rank %d sent %lld doubles, expected %lld to %lld", src, n, (long long)want,
                  (long long)cap);
  return RE_OK;
}

void re_mpi_sum_doubles(MPI_Comm comm, const double *in, double *out, int64_t len) {
  for (int64_t off = 0; off < len; off += CHUNK)
    MPI_Reduce(in + off, out ? out + off : NULL, (int)(len - off < CHUNK ? len - off : CHUNK), MPI_DOUBLE, MPI_SUM, 0,
               comm);
}
