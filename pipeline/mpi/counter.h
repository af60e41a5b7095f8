/* Shared counters (MPI one-sided, passive target): a work queue whose items go to
 * whichever rank asks first, as the batch claims (run/run_work.c) and the probe
 * tasks (run/an_probe.c) take theirs. Without RDMA atomics (Open MPI's pt2pt
 * component over TCP) a fetch waits for the host rank's next MPI call. */
#ifndef REPEVAL_MPI_COUNTER_H
#define REPEVAL_MPI_COUNTER_H

#include <mpi.h>
#include <stdint.h>

#include "repeval/core.h"

typedef struct mpi_counter {
  MPI_Win win; /* MPI_WIN_NULL: none (not created, or freed) */
} mpi_counter;

/* Collective over comm: every rank with host != 0 holds a counter starting at `start`;
 * each counter is set before any rank fetches. The status is agreed. */
re_status mpi_counter_create(MPI_Comm comm, int host, int64_t start, mpi_counter *c);
/* Add 1 to rank `on`'s counter and return its value before (one MPI_Fetch_and_op). */
int64_t mpi_counter_next(mpi_counter *c, int on);
/* Collective: release the counters (nothing when there are none). */
void mpi_counter_free(mpi_counter *c);

#endif
