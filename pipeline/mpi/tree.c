/* The canonical reduction tree over batches: statistics of any accumulator combined
 * in one fixed order, whatever the number of ranks or array parts.
 *
 * Leaf k is the state of the accumulators after batch k alone. Node (s, h) covers
 * batches [s, s + 2^h) with s a multiple of 2^h, and is left child (+) right child,
 * where (+) is the accumulators' merge (later samples on the right). A child that
 * lies entirely beyond the last batch is absent and its parent is the other child
 * itself. Each rank streams its contiguous batch range and keeps a short list of
 * complete nodes (a binary counter: at most about 2 log2(batches) of them); lists
 * of adjacent ranges are concatenated and collapsed (two adjacent siblings become
 * their parent) along the binomial tree over ranks, and rank 0 finally combines
 * the list that covers every batch into the root. Every merge is between the same
 * two operands in every decomposition, so the reduced statistics, and every metric,
 * are bitwise identical for 1, 2, 3 ... ranks and for any --part split.
 *
 * Cost: one state serialization per batch and one merge per internal node (about
 * one per batch), i.e. O(state) extra work per batch beside the O(batch x state)
 * GEMMs. Memory: the list holds up to about 2 log2(batches) nodes; the waiting
 * ones (all but the last) beyond REPEVAL_SPILL_MB (default 256) of them wait in a
 * spill file, so a rank holds that budget plus at most four states (accumulators,
 * the last node, a new leaf or a loaded sibling, and one more while a received
 * list is collapsed) whatever the number of batches; the spill file holds at
 * most the rest of the list. A merged node's buffer is kept for the next node
 * rather than freed (the count of buffers never exceeds the most in use at once). */
#include "mpi/tree.h"

#include "mpi/mpi_reduce.h"
#include "mpi/tags.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* re_mpi_agree, or the local status alone without MPI (comm MPI_COMM_NULL). */
static re_status agree(MPI_Comm comm, re_status st) { return comm == MPI_COMM_NULL ? st : re_mpi_agree(comm, st); }

static void rank_size(MPI_Comm comm, int *rank, int *size) {
  *rank = 0, *size = 1;
  if (comm != MPI_COMM_NULL) {
    MPI_Comm_rank(comm, rank);
    MPI_Comm_size(comm, size);
  }
}

/* ---- node lists ---------------------------------------------------------------- */

/* Memory for waiting nodes (all but the last), in bytes: REPEVAL_SPILL_MB, default 256. */
static double spill_budget(void) {
  double mb = 256;
  const char *e = getenv("REPEVAL_SPILL_MB");
  if (e && *e) {
    char *end;
    double v = strtod(e, &end);
    if (end != e && !*end && v >= 0 && v < 1e12)
      mb = v;
  }
  return mb * 1048576.0;
}

void tree_init(tree *t, const tree_acc *acc) {
  memset(t, 0, sizeof *t);
  t->acc = acc;
  int64_t len = acc ? acc->len : 0;
  t->len = len;
  t->fd = -1;
  double keep = len > 0 ? spill_budget() / ((double)len * (double)sizeof(double)) : 1e9;
  t->keep = keep < 1e9 ? (int)keep : 1000000000;
}

void tree_free(tree *t) {
  const tree_acc *acc = t->acc;
  for (int k = 0; k < t->n; k++)
    free(t->nodes[k].buf);
  free(t->nodes);
  free(t->free_slots);
  free(t->spare);
  if (t->fd >= 0)
    close(t->fd);
  memset(t, 0, sizeof *t);
  t->fd = -1;
  t->acc = acc; /* still usable as an empty list */
  t->len = acc ? acc->len : 0;
}

/* A state buffer for a node: the spare one, or a new one. A buffer written whole the
 * first time costs a page fault per page (on a virtual machine, more than copying the
 * state), so the tree reuses the buffer of a merged node instead of freeing it. */
static re_status node_buf(tree *t, double **buf) {
  if (t->spare) {
    *buf = t->spare;
    t->spare = NULL;
    return RE_OK;
  }
  return re_malloc_whole(t->len > 0 ? t->len : 1, sizeof(double), buf);
}

/* A node's buffer no longer needed: kept as the spare (one at most), else freed. */
static void drop_buf(tree *t, double *buf) {
  if (!t->spare)
    t->spare = buf;
  else
    free(buf);
}

static re_status open_spill(tree *t) {
  const char *dir = getenv("TMPDIR");
  if (!dir || !*dir || strlen(dir) > 3900)
    dir = "/tmp";
  char path[4096];
  snprintf(path, sizeof path, "%s/repeval-spill-XXXXXX", dir);
  int fd = mkstemp(path);
  if (fd < 0)
    return re_err(RE_EIO, "cannot create the reduction's spill file in %s: %s (set TMPDIR, or REPEVAL_SPILL_MB)", dir,
                  strerror(errno));
  unlink(path); /* gone with the process, whatever happens */
  re_log(RE_LOG_DEBUG, "reduction: nodes of %.1f MB wait in a spill file in %s", (double)t->len * 8.0 / 1048576.0, dir);
  t->fd = fd;
  return RE_OK;
}

static re_status slot_io(const tree *t, int64_t slot, double *buf, int write) {
  size_t bytes = (size_t)t->len * sizeof(double), done = 0;
  off_t off = (off_t)slot * (off_t)bytes;
  while (done < bytes) {
    ssize_t n = write ? pwrite(t->fd, (char *)buf + done, bytes - done, off + (off_t)done)
                      : pread(t->fd, (char *)buf + done, bytes - done, off + (off_t)done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return re_err(RE_EIO, "reduction spill file: cannot %s %zu bytes at offset %lld: %s", write ? "write" : "read",
                    bytes, (long long)off, n < 0 ? strerror(errno) : "end of file");
    done += (size_t)n;
  }
  return RE_OK;
}

/* Node k to the spill file (a free slot, or a new one at the end). */
static re_status spill_node(tree *t, int k) {
  tree_node *nd = &t->nodes[k];
  if (!nd->buf)
    return RE_OK;
  if (t->fd < 0)
    RE_TRY(open_spill(t));
  if (t->capfree < t->nslots + 1) { /* room to give every slot back later */
    int ncap = t->capfree ? 2 * t->capfree : 16;
    RE_TRY(re_realloc(&t->free_slots, ncap, sizeof *t->free_slots));
    t->capfree = ncap;
  }
  int64_t slot = t->nfree ? t->free_slots[--t->nfree] : t->nslots++;
  re_status st = slot_io(t, slot, nd->buf, 1);
  if (st != RE_OK) {
    t->free_slots[t->nfree++] = slot;
    return st;
  }
  drop_buf(t, nd->buf);
  nd->buf = NULL;
  nd->slot = slot;
  return RE_OK;
}

/* Node k back into memory. */
static re_status load_node(tree *t, int k) {
  tree_node *nd = &t->nodes[k];
  if (nd->buf)
    return RE_OK;
  double *buf = NULL;
  RE_TRY(node_buf(t, &buf));
  re_status st = slot_io(t, nd->slot, buf, 0);
  if (st != RE_OK) {
    drop_buf(t, buf);
    return st;
  }
  t->free_slots[t->nfree++] = nd->slot;
  nd->buf = buf;
  nd->slot = -1;
  return RE_OK;
}

/* Keep at most t->keep nodes besides the last in memory: the oldest (highest) go
 * to the spill file first, as they are the last to be merged. */
static re_status spill_over_budget(tree *t) {
  int resident = 0;
  for (int k = 0; k + 1 < t->n; k++)
    resident += t->nodes[k].buf != NULL;
  for (int k = 0; k + 1 < t->n && resident > t->keep; k++)
    if (t->nodes[k].buf) {
      RE_TRY(spill_node(t, k));
      resident--;
    }
  return RE_OK;
}

re_status tree_node_data(const tree *t, int k, double *scratch, const double **data) {
  if (t->nodes[k].buf) {
    *data = t->nodes[k].buf;
    return RE_OK;
  }
  RE_TRY(slot_io(t, t->nodes[k].slot, scratch, 0));
  *data = scratch;
  return RE_OK;
}

static re_status append_node(tree *t, int64_t start, int height, double *buf) {
  if (t->n == t->cap) {
    int ncap = t->cap ? 2 * t->cap : 16;
    re_status st = re_realloc(&t->nodes, ncap, sizeof *t->nodes);
    if (st != RE_OK) {
      free(buf);
      return st;
    }
    t->cap = ncap;
  }
  t->nodes[t->n++] = (tree_node){start, height, buf, -1};
  return RE_OK;
}

re_status tree_append(tree *t, int64_t start, int height, double *buf) {
  RE_TRY(append_node(t, start, height, buf));
  return spill_over_budget(t);
}

/* x <- x (+) y through the accumulator (it is scratch here). */
static re_status combine(const tree_acc *a, double *x, const double *y) {
  RE_TRY(a->deserialize(a->ctx, x));
  RE_TRY(a->merge(a->ctx, y));
  a->serialize(a->ctx, x);
  return RE_OK;
}

/* combine, when y is not read again (a merged node's right child, a received state):
 * the accumulator may merge the two buffers in place instead of copying x into its
 * state and back. The same bits. */
static re_status combine_consume(const tree_acc *a, double *x, double *y) {
  return a->merge_into ? a->merge_into(a->ctx, x, y) : combine(a, x, y);
}

re_status tree_collapse(tree *t) {
  int changed = 1;
  while (changed) {
    changed = 0;
    for (int k = 0; k + 1 < t->n; k++) {
      tree_node *a = &t->nodes[k], *b = &t->nodes[k + 1];
      int64_t span = (int64_t)1 << a->height;
      if (a->height == b->height && a->start % (2 * span) == 0 && b->start == a->start + span) {
        RE_TRY(load_node(t, k));
        RE_TRY(load_node(t, k + 1));
        RE_TRY(combine_consume(t->acc, a->buf, b->buf));
        a->height++;
        drop_buf(t, b->buf);
        memmove(b, b + 1, sizeof *b * (size_t)(t->n - k - 2));
        t->n--;
        RE_TRY(spill_over_budget(t));
        changed = 1;
        break;
      }
    }
  }
  return RE_OK;
}

re_status tree_push_leaf(tree *t, int64_t k) {
  int i = t->n; /* where leaf k goes: leaves taken backwards are kept in order */
  while (i > 0 && t->nodes[i - 1].start > k)
    i--;
  tree_node *prev = i > 0 ? &t->nodes[i - 1] : NULL, *next = i < t->n ? &t->nodes[i] : NULL;
  int joins_prev = prev && k % 2 == 1 && prev->start == k - 1 && prev->height == 0 && prev->buf,
      joins_next = next && k % 2 == 0 && next->start == k + 1 && next->height == 0 && next->buf;
  int joins = t->acc->merge_state_into && t->acc->merge_consume;
  /* the leaf's sibling is here: their parent in the sibling's buffer, the leaf never
   * copied into one of its own (one state buffer fewer) */
  if (joins && joins_prev) {
    RE_TRY(t->acc->merge_state_into(t->acc->ctx, prev->buf));
    prev->height = 1;
  } else if (joins && joins_next) {
    RE_TRY(t->acc->merge_consume(t->acc->ctx, next->buf));
    t->acc->serialize(t->acc->ctx, next->buf);
    next->start = k;
    next->height = 1;
  } else {
    double *buf = NULL;
    RE_TRY(node_buf(t, &buf));
    t->acc->serialize(t->acc->ctx, buf);
    /* the previous last node is often this leaf's sibling: join before spilling */
    RE_TRY(append_node(t, k, 0, buf));
    for (int q = t->n - 1; q > i; q--) { /* into its place */
      tree_node x = t->nodes[q];
      t->nodes[q] = t->nodes[q - 1];
      t->nodes[q - 1] = x;
    }
  }
  RE_TRY(tree_collapse(t));
  return spill_over_budget(t);
}

/* A collapsed list over batches [0, nb) is the binary decomposition of nb: nodes
 * of strictly decreasing heights from batch 0. The root of the canonical tree is
 * then their right fold, N_0 (+) (N_1 (+) (... (+) N_last)): a missing right child
 * leaves its parent equal to the left one, so these are exactly the merges of the
 * tree. The fold consumes the list, so that it holds two states besides the
 * accumulators whatever nb is. */
re_status tree_root(tree *t, int64_t nb) {
  if (nb <= 0) { /* no batch at all: empty accumulators */
    t->acc->reset(t->acc->ctx);
    return RE_OK;
  }
  int64_t at = 0;
  for (int k = 0; k < t->n; k++) {
    const tree_node *nd = &t->nodes[k];
    if (nd->start != at)
      return re_err(RE_EINVAL, "reduction: batch %lld is missing from the statistics", (long long)at);
    if (nd->height < 0 || nd->height > 62 || (k > 0 && nd->height >= t->nodes[k - 1].height) ||
        nd->start % ((int64_t)1 << nd->height))
      return re_err(RE_EINVAL, "reduction: node (%lld, %d) does not fit the canonical tree", (long long)nd->start,
                    nd->height);
    if (nb - at < ((int64_t)1 << nd->height))
      return re_err(RE_EINVAL, "reduction: the statistics hold batches beyond the %lld of the pass", (long long)nb);
    at += (int64_t)1 << nd->height;
  }
  if (at != nb)
    return re_err(RE_EINVAL, "reduction: batches from %lld are missing from the statistics", (long long)at);
  /* acc = N_last; then N_k (+) acc into N_k's buffer, which becomes acc */
  RE_TRY(load_node(t, t->n - 1));
  for (int k = t->n - 2; k >= 0; k--) {
    RE_TRY(load_node(t, k));
    RE_TRY(combine_consume(t->acc, t->nodes[k].buf, t->nodes[k + 1].buf)); /* N_k: the earlier batches */
    drop_buf(t, t->nodes[k + 1].buf);
    t->nodes[k + 1].buf = NULL;
    t->n = k + 1;
  }
  re_status st = t->acc->deserialize(t->acc->ctx, t->nodes[0].buf);
  free(t->nodes[0].buf);
  t->nodes[0].buf = NULL;
  t->n = 0;
  return st;
}

/* ---- across ranks ----------------------------------------------------------------- */

static re_status send_tree(MPI_Comm comm, const tree *t, int dest) {
  double *scratch = NULL; /* spilled nodes are read into it */
  re_status st = t->fd >= 0 ? re_malloc(t->len > 0 ? t->len : 1, sizeof(double), &scratch) : RE_OK, bad = RE_OK;
  long long hdr[2] = {st == RE_OK ? t->n : -1, t->len}; /* -1: nothing follows */
  if (MPI_Send(hdr, 2, MPI_LONG_LONG, dest, TAG_TREE_HEADER, comm) != MPI_SUCCESS)
    st = re_err(RE_EMPI, "MPI_Send to rank %d failed", dest);
  for (int k = 0; st == RE_OK && k < t->n; k++) {
    long long pos[2] = {t->nodes[k].start, t->nodes[k].height};
    if (MPI_Send(pos, 2, MPI_LONG_LONG, dest, TAG_TREE_NODE, comm) != MPI_SUCCESS) {
      st = re_err(RE_EMPI, "MPI_Send to rank %d failed", dest);
      break;
    }
    const double *d = t->nodes[k].buf;
    if (!d && (bad != RE_OK || (bad = tree_node_data(t, k, scratch, &d)) != RE_OK)) {
      memset(scratch, 0, sizeof(double) * (size_t)t->len); /* every node is still sent; the error reaches */
      d = scratch;                                         /* the receiver through re_mpi_agree */
    }
    for (int64_t off = 0; st == RE_OK && off < t->len; off += (1 << 26)) {
      int n = (int)(t->len - off < (1 << 26) ? t->len - off : (1 << 26));
      if (MPI_Send(d + off, n, MPI_DOUBLE, dest, TAG_TREE_DATA, comm) != MPI_SUCCESS)
        st = re_err(RE_EMPI, "MPI_Send to rank %d failed", dest);
    }
  }
  free(scratch);
  return st != RE_OK ? st : bad;
}

static re_status recv_tree(MPI_Comm comm, tree *t, int src) {
  long long hdr[2];
  if (MPI_Recv(hdr, 2, MPI_LONG_LONG, src, TAG_TREE_HEADER, comm, MPI_STATUS_IGNORE) != MPI_SUCCESS)
    return re_err(RE_EMPI, "MPI_Recv from rank %d failed", src);
  if (hdr[0] < 0)
    return re_err(RE_ENOMEM, "rank %d could not send its statistics", src);
  if (hdr[1] != t->len)
    return re_err(RE_EMPI, "rank %d sent statistics of %lld doubles, expected %lld", src, hdr[1], (long long)t->len);
  for (long long k = 0; k < hdr[0]; k++) {
    long long pos[2];
    if (MPI_Recv(pos, 2, MPI_LONG_LONG, src, TAG_TREE_NODE, comm, MPI_STATUS_IGNORE) != MPI_SUCCESS)
      return re_err(RE_EMPI, "MPI_Recv from rank %d failed", src);
    double *buf = NULL;
    RE_TRY(node_buf(t, &buf));
    for (int64_t off = 0; off < t->len; off += (1 << 26)) {
      int n = (int)(t->len - off < (1 << 26) ? t->len - off : (1 << 26));
      if (MPI_Recv(buf + off, n, MPI_DOUBLE, src, TAG_TREE_DATA, comm, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
        drop_buf(t, buf);
        return re_err(RE_EMPI, "MPI_Recv from rank %d failed", src);
      }
    }
    RE_TRY(tree_append(t, pos[0], (int)pos[1], buf));
  }
  return RE_OK;
}

re_status tree_reduce(MPI_Comm comm, tree *t) {
  re_status st = RE_OK;
  int rank, size;
  rank_size(comm, &rank, &size);
  for (int mask = 1; mask < size; mask <<= 1) {
    if (rank & mask) {
      st = send_tree(comm, t, rank - mask);
      tree_free(t);
      break;
    }
    if (rank + mask < size) {
      /* the sender's batches follow ours: append, then join siblings */
      st = recv_tree(comm, t, rank + mask);
      if (st == RE_OK)
        st = tree_collapse(t);
      if (st != RE_OK)
        break;
    }
  }
  return agree(comm, st);
}

/* ---- the root across ranks in O(log ranks) states per rank ------------------------- */

/* The rank holding batch x (ranges contiguous in rank order, hi non-decreasing). */
static int owner_of(const int64_t *hi, int size, int64_t x) {
  int lo = 0, up = size - 1;
  while (lo < up) {
    int mid = (lo + up) / 2;
    if (hi[mid] > x)
      up = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

/* The list node (start, height), loaded into memory, or -1. */
static int find_node(tree *t, int64_t start, int height, re_status *st) {
  for (int k = 0; k < t->n; k++)
    if (t->nodes[k].start == start && t->nodes[k].height == height) {
      *st = load_node(t, k);
      return *st == RE_OK ? k : -1;
    }
  *st = re_err(RE_EINVAL, "reduction: node (%lld, %d) is missing from this rank's statistics", (long long)start,
               height);
  return -1;
}

typedef struct sends {
  MPI_Request *req;
  int n, cap;
  double **own; /* buffers to free once sent */
  int nown;
  long long status[64];
} sends;

static re_status isend(MPI_Comm comm, sends *q, const void *buf, int count, MPI_Datatype type, int dest, int tag) {
  if (q->n == q->cap) {
    int ncap = q->cap ? 2 * q->cap : 32;
    RE_TRY(re_realloc(&q->req, ncap, sizeof *q->req));
    q->cap = ncap;
  }
  if (MPI_Isend(buf, count, type, dest, tag, comm, &q->req[q->n]) != MPI_SUCCESS)
    return re_err(RE_EMPI, "MPI_Isend to rank %d failed", dest);
  q->n++;
  return RE_OK;
}

#define ROOT_CHUNK ((int64_t)1 << 20) /* doubles per message: a failed receiver drains into 8 MB */

/* Send a node of height h to rank dest: its status, then (if fine) its len doubles. */
static re_status send_child(MPI_Comm comm, sends *q, const double *buf, int64_t len, int h, int dest, re_status st) {
  q->status[h] = st == RE_OK ? len : -1;
  RE_TRY(isend(comm, q, &q->status[h], 1, MPI_LONG_LONG, dest, TAG_ROOT_HEADER + h));
  for (int64_t off = 0; st == RE_OK && off < len; off += ROOT_CHUNK) {
    int n = (int)(len - off < ROOT_CHUNK ? len - off : ROOT_CHUNK);
    RE_TRY(isend(comm, q, buf + off, n, MPI_DOUBLE, dest, TAG_ROOT_DATA + h));
  }
  return RE_OK;
}

static int64_t g_received; /* states received by the last tree_reduce_root */

int64_t tree_root_received(void) { return g_received; }

void tree_rank_range(int64_t nb, int rank, int size, int64_t *k0, int64_t *k1) {
  int g = 0;
  if (size > 0 && nb / size >= 128)
    while ((nb / size) >> (g + 7))
      g++; /* 2^g <= (nb / size) / 64 < 2^(g + 1) */
  int64_t G = (int64_t)1 << g, ng = (nb + G - 1) / G; /* groups of G batches */
  int64_t a = ng * rank / size * G, b = ng * (rank + 1) / size * G;
  *k0 = a < nb ? a : nb;
  *k1 = b < nb ? b : nb;
}

/* Receive a node of height h from rank src into buf (len doubles); with buf NULL
 * (this rank failed) the data is drained through `drain` (ROOT_CHUNK doubles). */
static re_status recv_child(MPI_Comm comm, double *buf, double *drain, int64_t len, int h, int src) {
  long long hdr;
  if (MPI_Recv(&hdr, 1, MPI_LONG_LONG, src, TAG_ROOT_HEADER + h, comm, MPI_STATUS_IGNORE) != MPI_SUCCESS)
    return re_err(RE_EMPI, "MPI_Recv from rank %d failed", src);
  if (hdr < 0)
    return re_err(RE_EMPI, "rank %d could not make its part of the statistics", src);
  if (hdr != len)
    return re_err(RE_EMPI, "rank %d sent statistics of %lld doubles, expected %lld", src, hdr, (long long)len);
  g_received++;
  for (int64_t off = 0; off < len; off += ROOT_CHUNK) {
    int n = (int)(len - off < ROOT_CHUNK ? len - off : ROOT_CHUNK);
    if (MPI_Recv(buf ? buf + off : drain, n, MPI_DOUBLE, src, TAG_ROOT_DATA + h, comm, MPI_STATUS_IGNORE) !=
        MPI_SUCCESS)
      return re_err(RE_EMPI, "MPI_Recv from rank %d failed", src);
  }
  return RE_OK;
}

/* The nodes rank [a, b) owes earlier ranks: for each height h, the node (t0, h) with
 * t0 the first multiple of 2^h at or after a, when t0 is an odd multiple (a right
 * child) whose parent starts before a, t0 < b and t0 < nb. It is a list node when it
 * ends within the range, else the chain node of height h (chain[h]). */
static re_status send_owed(MPI_Comm comm, tree *t, sends *q, double *const *chain, const int64_t *hi, int size,
                           int64_t a, int64_t b, int64_t nb, re_status st) {
  for (int h = 0; h < 63 && a < b; h++) {
    int64_t span = (int64_t)1 << h, t0 = (a + span - 1) / span * span;
    if (t0 >= b || t0 >= nb)
      break;
    if ((t0 / span) % 2 == 0 || t0 - span >= a)
      continue;
    const double *buf = NULL;
    re_status s2 = st;
    if (s2 == RE_OK && t0 + span <= b) {
      int k = find_node(t, t0, h, &s2);
      if (k >= 0)
        buf = t->nodes[k].buf;
    } else if (s2 == RE_OK) {
      buf = chain[h];
      if (!buf)
        s2 = re_err(RE_EINVAL, "reduction: node (%lld, %d) was not made", (long long)t0, h);
    }
    RE_TRY(send_child(comm, q, buf, t->len, h, owner_of(hi, size, t0 - span), s2));
  }
  return RE_OK;
}

/* The left child of a chain node, for the chain node to own: *below (the chain node of
 * the height below, taken from the chain) or, when below is NULL, list node (start, h),
 * taken from the list. Neither is owed to another rank (a left child's parent starts in
 * this rank's range) and each child is used once, so nothing is copied. */
static re_status take_left(tree *t, double **below, int64_t start, int h, double **out) {
  re_status st = RE_OK;
  if (below) {
    *out = *below;
    *below = NULL;
    return RE_OK;
  }
  int k = find_node(t, start, h, &st);
  if (k < 0)
    return st;
  *out = t->nodes[k].buf; /* in memory: find_node loaded it */
  t->nodes[k].buf = NULL;
  return RE_OK;
}

/* A right child to read: the chain node below, or list node (start, h). */
static re_status right_child(tree *t, double *below, int64_t start, int h, double **out) {
  re_status st = RE_OK;
  if (below) {
    *out = below;
    return RE_OK;
  }
  int k = find_node(t, start, h, &st);
  *out = k >= 0 ? t->nodes[k].buf : NULL;
  return st;
}

/* The chain of nodes holding batch b - 1 that start in [a, b) and end after b:
 * chain[h] = left (+) right. When b - 1 is in the left child (the chain node below,
 * or a list node ending at b), the right one starts after b - 1 and is received
 * from the rank holding its first batch, or is absent beyond nb (the node is then
 * its left child); when b - 1 is in the right child (the chain node below, or a list
 * node), the left one is a list node. After a failure the receives still happen
 * (drained), so that no sender waits forever. */
static re_status make_chain(MPI_Comm comm, tree *t, double **chain, const int64_t *hi, int size, int64_t a, int64_t b,
                            int64_t nb) {
  double *prev = NULL, *rbuf = NULL, *drain = NULL; /* prev: chain[h - 1], NULL for a list node */
  re_status st = node_buf(t, &rbuf); /* the spare of the stream's merges: its pages are in */
  if (re_malloc(ROOT_CHUNK, sizeof(double), &drain) != RE_OK) {
    drop_buf(t, rbuf);
    return st == RE_OK ? re_err(RE_ENOMEM, "reduction: out of memory") : st; /* cannot even drain: fail loudly */
  }
  for (int h = 1; h < 63; h++) {
    int64_t span = (int64_t)1 << h, half = span / 2, s = (b - 1) / span * span, r0 = s + half;
    if (s < a || half >= nb)
      break;
    if (s + span <= b) { /* ends at b: a list node */
      prev = NULL;
      continue;
    }
    double *buf = NULL;
    if (b - 1 < r0) {
      if (st == RE_OK) /* prev is chain[h - 1] when not NULL */
        st = take_left(t, prev ? &chain[h - 1] : NULL, s, h - 1, &buf);
      if (r0 < nb) {
        re_status rs = recv_child(comm, st == RE_OK ? rbuf : NULL, drain, t->len, h - 1, owner_of(hi, size, r0));
        if (st == RE_OK)
          st = rs;
        if (st == RE_OK)
          st = combine_consume(t->acc, buf, rbuf);
      }
    } else {
      double *right = NULL; /* read here only: its parent is made here, so no earlier rank is owed it */
      if (st == RE_OK)
        st = take_left(t, NULL, s, h - 1, &buf);
      if (st == RE_OK)
        st = right_child(t, prev, r0, h - 1, &right);
      if (st == RE_OK)
        st = combine_consume(t->acc, buf, right);
    }
    if (st != RE_OK) {
      free(buf);
      buf = NULL;
    }
    chain[h] = prev = buf;
  }
  drop_buf(t, rbuf);
  free(drain);
  return st;
}

re_status tree_reduce_root(MPI_Comm comm, tree *t, int64_t k0, int64_t k1, int64_t nb) {
  int rank, size;
  rank_size(comm, &rank, &size);
  g_received = 0;
  if (size == 1)
    return tree_root(t, nb);
  int64_t mine[2] = {k0, k1}, *all = NULL;
  re_status st = re_malloc(2 * (int64_t)size, sizeof(int64_t), &all);
  if (st != RE_OK)
    return agree(comm, st);
  MPI_Allgather(mine, 2, MPI_INT64_T, all, 2, MPI_INT64_T, comm);
  int contiguous = all[0] == 0 && all[1] > 0 && all[2 * size - 1] == nb; /* rank 0 holds batch 0 */
  int64_t *hi = NULL;
  st = re_malloc(size, sizeof(int64_t), &hi);
  for (int r = 0; st == RE_OK && r < size; r++) {
    hi[r] = all[2 * r + 1];
    contiguous &= all[2 * r] <= all[2 * r + 1] && (r == 0 || all[2 * r] == all[2 * r - 1]);
  }
  free(all);
  st = agree(comm, st);
  if (st != RE_OK || !contiguous || nb <= 0) {
    free(hi);
    if (st != RE_OK)
      return st;
    st = tree_reduce(comm, t);
    if (st == RE_OK && rank == 0)
      st = tree_root(t, nb);
    return agree(comm, st);
  }
  double *chain[64] = {0};
  sends q = {0};
  if (k0 < k1) {
    st = make_chain(comm, t, chain, hi, size, k0, k1, nb);
    re_status s2 = send_owed(comm, t, &q, chain, hi, size, k0, k1, nb, st);
    if (st == RE_OK)
      st = s2;
  }
  if (q.n && MPI_Waitall(q.n, q.req, MPI_STATUSES_IGNORE) != MPI_SUCCESS && st == RE_OK)
    st = re_err(RE_EMPI, "reduction: sending statistics failed");
  if (rank == 0 && st == RE_OK) { /* the root: the top chain node, or the list's one node */
    const double *root = NULL;
    for (int h = 63; h >= 0 && !root; h--)
      root = chain[h];
    if (!root) {
      int k = find_node(t, 0, t->n == 1 ? t->nodes[0].height : -1, &st);
      root = k >= 0 ? t->nodes[k].buf : NULL;
    }
    if (root)
      st = t->acc->deserialize(t->acc->ctx, root);
  }
  for (int h = 0; h < 64; h++)
    free(chain[h]);
  free(q.req);
  free(hi);
  tree_free(t);
  return agree(comm, st);
}

/* tree_stream_reduce; resident: waiting nodes stay in memory (no spill file). */
static re_status stream_reduce(MPI_Comm comm, const tree_acc *acc, int64_t nb, re_status (*add)(void *ctx, int64_t k),
                               void *ctx, int resident) {
  int rank, size;
  rank_size(comm, &rank, &size);
  int64_t k0, k1;
  tree_rank_range(nb, rank, size, &k0, &k1);
  tree t;
  tree_init(&t, acc);
  if (resident)
    t.keep = 1000000000;
  re_status st = RE_OK;
  for (int64_t k = k0; k < k1 && st == RE_OK; k++) {
    acc->reset(acc->ctx);
    st = add(ctx, k);
    if (st == RE_OK)
      st = tree_push_leaf(&t, k);
  }
  st = agree(comm, st);
  if (st == RE_OK)
    st = tree_reduce_root(comm, &t, k0, k1, nb);
  tree_free(&t);
  return st;
}

re_status tree_stream_reduce(MPI_Comm comm, const tree_acc *acc, int64_t nb, re_status (*add)(void *ctx, int64_t k),
                             void *ctx) {
  return stream_reduce(comm, acc, nb, add, ctx, 0);
}

re_status tree_stream_reduce_resident(MPI_Comm comm, const tree_acc *acc, int64_t nb,
                                      re_status (*add)(void *ctx, int64_t k), void *ctx) {
  return stream_reduce(comm, acc, nb, add, ctx, 1);
}

static void mom_ser(void *c, double *b) { re_moments_serialize(c, b); }
static re_status mom_de(void *c, const double *b) { return re_moments_deserialize(c, b, re_moments_serial_len(c)); }
static re_status mom_merge(void *c, const double *b) { return re_moments_merge_serial(c, b, re_moments_serial_len(c)); }
static void mom_reset(void *c) { re_moments_reset(c); }
static re_status mom_into(void *c, double *x, double *y) {
  return re_moments_merge_serial_into(c, x, y, re_moments_serial_len(c));
}
static re_status mom_state_into(void *c, double *x) { return re_moments_merge_state_into(c, x, re_moments_serial_len(c)); }
static re_status mom_consume(void *c, double *y) { return re_moments_merge_serial_consume(c, y, re_moments_serial_len(c)); }

tree_acc tree_moments_acc(re_moments *m) {
  return (tree_acc){m, re_moments_serial_len(m), mom_ser, mom_de, mom_merge, mom_reset, mom_into, mom_state_into,
                    mom_consume};
}
