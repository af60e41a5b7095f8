/* repeval run, merge and finalize: the engine's entry point (run/driver.c). */
#ifndef REPEVAL_RUN_DRIVER_H
#define REPEVAL_RUN_DRIVER_H

/* What the command line asked for. */
typedef struct run_args {
  const char *job_path;
  const char *out;          /* --out, or NULL: the job's output.dir */
  int mode;                 /* RUN_MODE_RUN, RUN_MODE_MERGE or RUN_MODE_FINALIZE */
  int part, nparts;         /* --part I/N (nparts 0: not an array part) */
  int quiet, check_only, fresh;
  int threads, threads_given;
  double checkpoint_every;  /* seconds; 0: snapshots only on signals */
} run_args;

/* Collective over MPI_COMM_WORLD (MPI is initialised): run the job; returns the exit
 * code (RE_EXIT_*), the same on every rank. */
int run_execute(const run_args *a);

#endif
