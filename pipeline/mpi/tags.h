/* Every MPI message tag of the program, in one place: a message can only meet the
 * receive meant for it. */
#ifndef REPEVAL_MPI_TAGS_H
#define REPEVAL_MPI_TAGS_H

enum {
  TAG_PROBE_ROWS_LEN = 31,   /* run/an_probe.c: a probe task's metrics rows, length */
  TAG_PROBE_ROWS = 32,       /* ... and bytes */
  TAG_TREE_HEADER = 41,      /* mpi/tree.c: a node list, count and length */
  TAG_TREE_NODE = 42,        /* ... a node's position */
  TAG_TREE_DATA = 43,        /* ... a node's state */
  TAG_ROOT_HEADER = 100,     /* mpi/tree.c tree_reduce_root: a right child of height h, tag + h (h < 64): status */
  TAG_ROOT_DATA = 200,       /* ... and its state, tag + h */
  TAG_FAILURE_MESSAGE = 50,  /* cli/cmd_run.c: the first failing rank's message to rank 0 */
  TAG_ROWS_HEADER = 51,      /* run/analysis.c: a rank's finalize rows, length and undefined count */
  TAG_ROWS_DATA = 52,        /* ... and bytes */
  TAG_SPECTRA = 53,          /* run/an_spectrum.c: a block of eigenvalues to rank 0 */
  TAG_KNN_CANDIDATES = 61,   /* run/an_knn.c: a rank's k-NN candidate lists to rank 0 */
  TAG_WORK_TAPS = 71,        /* run/run_work.c: a checkpoint group's taps of a batch, to the batch's owner */
  TAG_MOMENT_BLOCKS = 72,    /* run/run_finalize.c: co-moment blocks a rank's finalize reads, from rank 0 */
  TAG_DOUBLES_LEN = 73,      /* mpi/mpi_reduce.c: the length of a re_mpi_send_doubles message */
  TAG_EIG = 74               /* run/run_finalize.c: a layer's eigendecomposition, from the rank that made it */
};

#endif
