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
