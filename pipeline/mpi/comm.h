/* The communicator a piece of the program works on: its own duplicate of the one it
 * was given (so its messages never meet another library's), with rank and size. */
#ifndef REPEVAL_MPI_COMM_H
#define REPEVAL_MPI_COMM_H

#include <mpi.h>

#include "repeval/core.h"

typedef struct comm {
  MPI_Comm comm; /* MPI_COMM_NULL: one process without MPI */
  int rank, size;
} comm;

/* Collective over parent: c gets a duplicate of it. */
re_status comm_dup(comm *c, MPI_Comm parent);
/* A single process without MPI (rank 0 of 1). */
void comm_self(comm *c);
/* Free the duplicate (nothing for comm_self). */
void comm_free(comm *c);

#endif
