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

#endif
