/* The MPI message tags of the program, one per kind of message: two exchanges that
 * might be in flight at the same time never share a tag. */
#ifndef REPEVAL_MPI_TAGS_H
#define REPEVAL_MPI_TAGS_H

enum re_mpi_tag {
  RE_TAG_REDUCE_CHUNK = 17,     /* mpi_reduce.c: a chunk of a serialized accumulator */
  RE_TAG_PROBE_ROWS_LEN = 31,   /* run_probe.c: length of a probe task's metric rows (-1: it failed) */
  RE_TAG_PROBE_ROWS = 32,       /* run_probe.c: the rows themselves */
  RE_TAG_TREE_HEADER = 41,      /* run_tree.c: a rank's reduction tree: node count and length */
  RE_TAG_TREE_NODE = 42,        /* run_tree.c: one node's start and height */
  RE_TAG_TREE_DATA = 43,        /* run_tree.c: a chunk of one node's statistics */
  RE_TAG_FINAL_ROWS_LEN = 51,   /* run_finalize.c: length and undefined count of a rank's metric rows */
  RE_TAG_FINAL_ROWS = 52,       /* run_finalize.c: a chunk of those rows */
  RE_TAG_FINAL_SPECTRA = 53,    /* run_finalize.c: a chunk of a rank's spectrum rows (eigenvalues per tap) */
  RE_TAG_ERROR_MESSAGE = 61     /* cmd_run.c: the first failing rank's error message, to rank 0 */
};

#endif
