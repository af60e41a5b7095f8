/* Checks of the reduction tree (pipeline/mpi/tree.c), run under mpiexec by
 * tests/mpi/test_reduction_tree_is_canonical.py.
 *
 * The accumulator's state is a 128-bit hash of the exact merge expression: a leaf is
 * hash(k), and x (+) y is a non-commutative, non-associative mix of x and y, so two
 * roots are equal only when the same merges with the same operands were made in the
 * same shape. For every number of batches 1..NB, and a few large ones, the root of
 * tree_reduce_root over the ranges of tree_rank_range must equal the root that one
 * process builds alone (tree_push_leaf for every batch, then tree_root), and no rank
 * may receive more than ceil(log2(ranks)) + 8 states. Leaves that join their sibling
 * from the accumulator's state (merge_state_into, merge_consume), taken in order or
 * backwards, give that root too. One case uses a state of
 * 2.5 M doubles to exercise the chunked messages. Prints "ok" on rank 0 or the
 * first failure. */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/tree.h"

typedef struct hacc {
  uint64_t h[2];
  int64_t len;  /* doubles in the serialized state (>= 2; the rest is padding) */
} hacc;

static uint64_t mix(uint64_t x) {
  x ^= x >> 31;
  x *= 0x7fb5d329728ea185ULL;
  x ^= x >> 27;
  x *= 0x81dadef4bc2dd44dULL;
  return x ^ (x >> 33);
}

static void ser(void *ctx, double *buf) {
  hacc *a = ctx;
  memcpy(buf, a->h, 16);
  for (int64_t k = 2; k < a->len; k++)
    buf[k] = (double)(k & 255);
}
static re_status deser(void *ctx, const double *buf) {
  memcpy(((hacc *)ctx)->h, buf, 16);
  return RE_OK;
}
static re_status merge(void *ctx, const double *buf) {
  hacc *a = ctx;
  uint64_t y[2];
  memcpy(y, buf, 16);
  for (int64_t k = 2; k < a->len; k++)
    if (buf[k] != (double)(k & 255))
      return re_err(RE_EINVAL, "padding damaged at %lld", (long long)k);
  uint64_t h0 = mix(a->h[0] * 3 + mix(y[0] ^ 0x9e3779b97f4a7c15ULL)), h1 = mix(a->h[1] + 7 * mix(y[1] + h0));
  a->h[0] = h0, a->h[1] = h1;
  return RE_OK;
}
static void reset(void *ctx) { ((hacc *)ctx)->h[0] = ((hacc *)ctx)->h[1] = 0; }
/* The hooks that let a leaf join its sibling without a buffer: x <- x (+) state, and
 * state <- state (+) y, through the same mix. */
static re_status state_into(void *ctx, double *x) {
  hacc *a = ctx;
  double *y = malloc(sizeof(double) * (size_t)a->len);
  if (!y)
    return re_err(RE_ENOMEM, "state_into");
  ser(a, y); /* the state (later samples) */
  re_status st = deser(a, x);
  if (st == RE_OK)
    st = merge(a, y);
  if (st == RE_OK)
    ser(a, x);
  free(y);
  return st;
}
static re_status consume(void *ctx, double *y) { return merge(ctx, y); }

static hacc *g_acc;
static re_status add(void *ctx, int64_t k) {
  (void)ctx;
  g_acc->h[0] = mix((uint64_t)k + 1), g_acc->h[1] = mix((uint64_t)k * 31 + 5);
  return RE_OK;
}

/* The root one process builds alone, taking the batches in order or backwards. */
static int alone(hacc *a, const tree_acc *acc, int64_t nb, int backwards, uint64_t out[2]) {
  tree t;
  tree_init(&t, acc);
  for (int64_t i = 0; i < nb; i++) {
    int64_t k = backwards ? nb - 1 - i : i;
    add(NULL, k);
    if (tree_push_leaf(&t, k) != RE_OK)
      return 1;
  }
  if (tree_root(&t, nb) != RE_OK)
    return 1;
  tree_free(&t);
  memcpy(out, a->h, 16);
  return 0;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size, bad = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int NB = argc > 1 ? atoi(argv[1]) : 70;
  int lg = 0;
  while ((1 << lg) < size)
    lg++;
  hacc a = {{0, 0}, 2};
  static const int64_t large[] = {37, 1000, 4097, 9000};
  g_acc = &a;
  tree_acc plain = {&a, 2, ser, deser, merge, reset, NULL, NULL, NULL},
           joins = {&a, 2, ser, deser, merge, reset, NULL, state_into, consume};
  for (int c = 0; c < NB + 4 && !bad; c++) {
    int64_t nb = c < NB ? c + 1 : large[c - NB];
    tree_acc acc = c % 2 ? joins : plain; /* the ranks' trees with and without the join hooks */
    a.len = plain.len = joins.len = acc.len = c == NB ? (5 << 19) : 2; /* 2.5 M doubles: chunked messages */
    {
      uint64_t want[2] = {0, 0}, got[2] = {0, 0};
      if (rank == 0 && alone(&a, &plain, nb, 0, want))
        bad = 1;
      /* leaves joining their siblings from the accumulator, in order and backwards: the same root */
      for (int back = 0; back < 2 && rank == 0 && !bad; back++)
        if (alone(&a, &joins, nb, back, got) || memcmp(got, want, 16)) {
          printf("nb %lld: the root of leaves joined %s differs\n", (long long)nb, back ? "backwards" : "in order");
          bad = 1;
        }
      /* stream this rank's range, then count merges during the cross-rank part only */
      int64_t k0, k1;
      tree_rank_range(nb, rank, size, &k0, &k1);
      tree t;
      tree_init(&t, &acc);
      for (int64_t k = k0; k < k1; k++) {
        reset(&a);
        add(NULL, k);
        if (tree_push_leaf(&t, k) != RE_OK)
          bad = 1;
      }
      re_status st = tree_reduce_root(MPI_COMM_WORLD, &t, k0, k1, nb);
      tree_free(&t);
      long mine = (long)tree_root_received(), maxm = 0;
      MPI_Reduce(&mine, &maxm, 1, MPI_LONG, MPI_MAX, 0, MPI_COMM_WORLD);
      if (rank == 0) {
        if (st != RE_OK) {
          printf("nb %lld: %s\n", (long long)nb, re_errmsg());
          bad = 1;
        } else if (memcmp(a.h, want, 16)) {
          printf("nb %lld, %d ranks: root differs from the one-process root\n", (long long)nb, size);
          bad = 1;
        } else if (maxm > lg + 8) {
          printf("nb %lld, %d ranks: a rank received %ld states (limit %d)\n", (long long)nb, size, maxm, lg + 8);
          bad = 1;
        }
      }
      MPI_Bcast(&bad, 1, MPI_INT, 0, MPI_COMM_WORLD);
    }
  }
  if (rank == 0 && !bad)
    printf("ok\n");
  MPI_Finalize();
  return bad;
}
