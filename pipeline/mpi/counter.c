/* Shared counters: MPI_Win_allocate of one int64 on each hosting rank, one passive
 * target epoch (lock_all) for the counters' life, MPI_Fetch_and_op + flush per item. */
#include "mpi/counter.h"

#include "mpi/mpi_reduce.h"

re_status mpi_counter_create(MPI_Comm comm, int host, int64_t start, mpi_counter *c) {
  c->win = MPI_WIN_NULL;
  re_status st = RE_OK;
  MPI_Win win = MPI_WIN_NULL;
  int64_t *base = NULL;
  if (MPI_Win_allocate(host ? (MPI_Aint)sizeof(int64_t) : 0, sizeof(int64_t), MPI_INFO_NULL, comm, &base, &win) !=
      MPI_SUCCESS)
    st = re_err(RE_EMPI, "cannot create a shared counter (MPI_Win_allocate)");
  if (st == RE_OK && host)
    *base = start;
  MPI_Barrier(comm); /* every counter is set before anyone fetches */
  st = re_mpi_agree(comm, st);
  if (st != RE_OK) /* a window made here is lost rather than freed: MPI_Win_free would wait for the others */
    return st;
  MPI_Win_lock_all(0, win);
  c->win = win;
  return RE_OK;
}

int64_t mpi_counter_next(mpi_counter *c, int on) {
  int64_t one = 1, got = 0;
  MPI_Fetch_and_op(&one, &got, MPI_INT64_T, on, 0, MPI_SUM, c->win);
  MPI_Win_flush(on, c->win);
  return got;
}

void mpi_counter_free(mpi_counter *c) {
  if (c->win == MPI_WIN_NULL)
    return;
  MPI_Win_unlock_all(c->win);
  MPI_Win_free(&c->win);
  c->win = MPI_WIN_NULL;
}
