/* The canonical reduction tree over batches (mpi/tree.c): leaf k is an accumulator's
 * state after batch k alone, node (s, h) covers batches [s, s + 2^h) and is its left
 * child merged with its right child. Ranks stream contiguous batch ranges and keep
 * lists of complete nodes; the lists are joined in rank order and rank 0 folds the
 * root. Every merge has the same two operands for any number of ranks or parts, so
 * results are bitwise identical. Waiting nodes beyond REPEVAL_SPILL_MB (default 256)
 * wait in an unlinked spill file in $TMPDIR. */
#ifndef REPEVAL_MPI_TREE_H
#define REPEVAL_MPI_TREE_H

#include <mpi.h>

#include "repeval/core.h"
#include "repeval/moments.h"

/* An accumulator the tree combines, seen as `len` doubles. */
typedef struct tree_acc {
  void *ctx;
  int64_t len;
  void (*serialize)(void *ctx, double *buf);                /* write the state */
  re_status (*deserialize)(void *ctx, const double *buf);   /* replace the state */
  re_status (*merge)(void *ctx, const double *buf);         /* state <- state (+) buf (later samples) */
  void (*reset)(void *ctx);                                 /* the empty state */
  /* x <- x (+) y for two states in their buffers, y used up, the state scratch
   * (NULL: deserialize x, merge y, serialize into x) */
  re_status (*merge_into)(void *ctx, double *x, double *y);
  /* x <- x (+) the state (later samples), the state used up (reset before its next batch);
   * with merge_consume, a leaf joins its sibling without a buffer of its own (NULL: it
   * gets one). The same bits as serialize, then merge_into */
  re_status (*merge_state_into)(void *ctx, double *x);
  /* state <- state (+) y (later samples), y used up: the same bits as merge */
  re_status (*merge_consume)(void *ctx, double *y);
} tree_acc;

/* A complete node: the accumulator's state over batches [start, start + 2^height). */
typedef struct tree_node {
  int64_t start;
  int height;
  double *buf;  /* len doubles, owned; NULL while spilled */
  int64_t slot; /* spilled: its slot in the spill file; else -1 */
} tree_node;

/* Complete nodes covering a contiguous range of batches, in order. */
typedef struct tree {
  const tree_acc *acc; /* combines nodes (its state is scratch while it does) */
  tree_node *nodes;
  int n, cap;
  int64_t len;    /* doubles per node */
  int keep;       /* nodes besides the last that may stay in memory */
  int fd;         /* spill file, -1 until the first spill */
  int64_t nslots; /* slots in the file (each len doubles) */
  int64_t *free_slots;
  int nfree, capfree;
  double *spare;  /* a merged node's buffer, kept for the next node (NULL: none) */
} tree;

/* An empty list of nodes of acc's state (acc may be NULL for a list that is only read). */
void tree_init(tree *t, const tree_acc *acc);
/* Free the nodes and the spill file; the list stays usable (empty). */
void tree_free(tree *t);
/* Append a node (takes buf; freed on failure). */
re_status tree_append(tree *t, int64_t start, int height, double *buf);
/* Node k's values: its buffer, or read from the spill file into scratch (len doubles). */
re_status tree_node_data(const tree *t, int k, double *scratch, const double **data);
/* Join adjacent siblings until none is left. */
re_status tree_collapse(tree *t);
/* The accumulator's state as leaf k (the state of batch k alone), in batch order (a rank
 * taking its batches backwards adds each before the others), joined with its siblings. */
re_status tree_push_leaf(tree *t, int64_t k);
/* Collective: every rank's list into rank 0's, in rank order (= batch order).
 * MPI_COMM_NULL: one process without MPI (nothing to do). */
re_status tree_reduce(MPI_Comm comm, tree *t);
/* The root over batches [0, nb) of a collapsed list into the accumulator (nb = 0: empty
 * state); the nodes are used up. */
re_status tree_root(tree *t, int64_t nb);

/* Collective: the root over batches [0, nb) into rank 0's accumulator, when rank r's
 * collapsed list covers [k0, k1) and the ranks' ranges are contiguous in rank order
 * (rank 0 from batch 0, the last rank to nb; empty ranges allowed). Each node of the
 * canonical tree that straddles ranks is made by the rank holding its first batch,
 * from its right child sent by the rank holding that child's first batch, so a rank
 * receives at most about log2(ranks) + 8 states with tree_rank_range's ranges: the same
 * merges, hence the same bits, as tree_reduce + tree_root. The list is used up. */
re_status tree_reduce_root(MPI_Comm comm, tree *t, int64_t k0, int64_t k1, int64_t nb);

/* States the last tree_reduce_root of this process received from other ranks. */
int64_t tree_root_received(void);

/* The contiguous batch range [k0, k1) of rank `rank` of `size` over nb batches: equal
 * shares of groups of 2^g batches, 2^g the largest power of two not above
 * nb / size / 64 (1 below 128 batches per rank), so that a rank boundary cuts no node
 * below height g, each rank receives at most about log2(size) + 8 states in
 * tree_reduce_root, and shares differ by at most one group (under 1/64 of a share). */
void tree_rank_range(int64_t nb, int rank, int size, int64_t *k0, int64_t *k1);

/* Collective: stream batches [0, nb) split into contiguous ranges over the ranks of
 * comm, each through add(ctx, k) into the accumulator as a leaf, then reduce: rank 0's
 * accumulator holds the root. The standalone commands' one reduction path;
 * MPI_COMM_NULL: one process without MPI. */
re_status tree_stream_reduce(MPI_Comm comm, const tree_acc *acc, int64_t nb, re_status (*add)(void *ctx, int64_t k),
                             void *ctx);
/* The same with every waiting node kept in memory (no spill file): for states whose
 * count of leaves is small and whose memory was checked against a budget. */
re_status tree_stream_reduce_resident(MPI_Comm comm, const tree_acc *acc, int64_t nb,
                                      re_status (*add)(void *ctx, int64_t k), void *ctx);

/* A co-moment accumulator as the tree sees it. */
tree_acc tree_moments_acc(re_moments *m);

#endif
