/* Duplicated communicators (CONVENTIONS.md #8). */
#include "mpi/comm.h"

re_status comm_dup(comm *c, MPI_Comm parent) {
  c->comm = MPI_COMM_NULL;
  c->rank = 0, c->size = 1;
  if (MPI_Comm_dup(parent, &c->comm) != MPI_SUCCESS)
    return re_err(RE_EMPI, "MPI_Comm_dup failed");
  MPI_Comm_rank(c->comm, &c->rank);
  MPI_Comm_size(c->comm, &c->size);
  return RE_OK;
}

void comm_self(comm *c) {
  c->comm = MPI_COMM_NULL;
  c->rank = 0, c->size = 1;
}

void comm_free(comm *c) {
  if (c->comm != MPI_COMM_NULL)
    MPI_Comm_free(&c->comm);
  c->comm = MPI_COMM_NULL;
}
