/* repeval run, reproducible reduction: the statistics of a pass are combined along
 * one canonical binary tree over the global batch index, whatever the number of
 * ranks or array parts.
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
 * ones (all but the last) beyond REPEVAL_SPILL_MB (default 64) of them wait in a
 * spill file, so a rank holds that budget plus at most four states (accumulators,
 * the last node, a new leaf or a loaded sibling, and one more while a received
 * list is collapsed) whatever the number of batches; the spill file holds at
 * most the rest of the list. */
#include <errno.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpi/mpi_reduce.h"
#include "run/run.h"

/* ---- the pass's accumulators as one flat buffer ------------------------------ */

int64_t run_pass_serial_len(const pass *p) {
  int64_t n = 0;
  for (int a = 0; a < p->nan; a++)
    if (p->an[a].h)
      n += re_hsic_serial_len(p->an[a].h);
  if (p->mom)
    n += re_moments_serial_len(p->mom);
  return n;
}

void run_pass_serialize(const pass *p, double *buf) {
  for (int a = 0; a < p->nan; a++)
    if (p->an[a].h) {
      re_hsic_serialize(p->an[a].h, buf);
      buf += re_hsic_serial_len(p->an[a].h);
    }
  if (p->mom)
    re_moments_serialize(p->mom, buf);
}

re_status run_pass_deserialize(pass *p, const double *buf) {
  for (int a = 0; a < p->nan; a++)
    if (p->an[a].h) {
      int64_t len = re_hsic_serial_len(p->an[a].h);
      RE_TRY(re_hsic_deserialize(p->an[a].h, buf, len));
      buf += len;
    }
  if (p->mom)
    RE_TRY(re_moments_deserialize(p->mom, buf, re_moments_serial_len(p->mom)));
  return RE_OK;
}

/* accumulators <- accumulators (+) buf (buf holds later samples) */
static re_status merge_serial(pass *p, const double *buf) {
  for (int a = 0; a < p->nan; a++)
    if (p->an[a].h) {
      int64_t len = re_hsic_serial_len(p->an[a].h);
      RE_TRY(re_hsic_merge_serial(p->an[a].h, buf, len));
      buf += len;
    }
  if (p->mom)
    RE_TRY(re_moments_merge_serial(p->mom, buf, re_moments_serial_len(p->mom)));
  return RE_OK;
}

void run_pass_reset(pass *p) {
  for (int a = 0; a < p->nan; a++)
    if (p->an[a].h)
      re_hsic_reset(p->an[a].h);
  if (p->mom)
    re_moments_reset(p->mom);
}

/* ---- node lists ---------------------------------------------------------------- */

/* Memory for waiting nodes (all but the last), in bytes: REPEVAL_SPILL_MB, default 64. */
static double spill_budget(void) {
  double mb = 64;
  const char *e = getenv("REPEVAL_SPILL_MB");
  if (e && *e) {
    char *end;
    double v = strtod(e, &end);
    if (end != e && !*end && v >= 0 && v < 1e12)
      mb = v;
  }
  return mb * 1048576.0;
}

void run_tree_init(run_tree *t, int64_t len) {
  memset(t, 0, sizeof *t);
  t->len = len;
  t->fd = -1;
  double keep = len > 0 ? spill_budget() / ((double)len * (double)sizeof(double)) : 1e9;
  t->keep = keep < 1e9 ? (int)keep : 1000000000;
}

void run_tree_free(run_tree *t) {
  for (int k = 0; k < t->n; k++)
    free(t->nodes[k].buf);
  free(t->nodes);
  free(t->free_slots);
  if (t->fd >= 0)
    close(t->fd);
  memset(t, 0, sizeof *t);
  t->fd = -1;
}

static re_status open_spill(run_tree *t) {
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

static re_status slot_io(const run_tree *t, int64_t slot, double *buf, int write) {
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
static re_status spill_node(run_tree *t, int k) {
  run_node *nd = &t->nodes[k];
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
  free(nd->buf);
  nd->buf = NULL;
  nd->slot = slot;
  return RE_OK;
}

/* Node k back into memory. */
static re_status load_node(run_tree *t, int k) {
  run_node *nd = &t->nodes[k];
  if (nd->buf)
    return RE_OK;
  double *buf = NULL;
  RE_TRY(re_malloc(t->len > 0 ? t->len : 1, sizeof(double), &buf));
  re_status st = slot_io(t, nd->slot, buf, 0);
  if (st != RE_OK) {
    free(buf);
    return st;
  }
  t->free_slots[t->nfree++] = nd->slot;
  nd->buf = buf;
  nd->slot = -1;
  return RE_OK;
}

/* Keep at most t->keep nodes besides the last in memory: the oldest (highest) go
 * to the spill file first, as they are the last to be merged. */
static re_status spill_over_budget(run_tree *t) {
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

re_status run_tree_node_data(const run_tree *t, int k, double *scratch, const double **data) {
  if (t->nodes[k].buf) {
    *data = t->nodes[k].buf;
    return RE_OK;
  }
  RE_TRY(slot_io(t, t->nodes[k].slot, scratch, 0));
  *data = scratch;
  return RE_OK;
}

static re_status append_node(run_tree *t, int64_t start, int height, double *buf) {
  if (t->n == t->cap) {
    int ncap = t->cap ? 2 * t->cap : 16;
    re_status st = re_realloc(&t->nodes, ncap, sizeof *t->nodes);
    if (st != RE_OK) {
      free(buf);
      return st;
    }
    t->cap = ncap;
  }
  t->nodes[t->n++] = (run_node){start, height, buf, -1};
  return RE_OK;
}

re_status run_tree_append(run_tree *t, int64_t start, int height, double *buf) {
  RE_TRY(append_node(t, start, height, buf));
  return spill_over_budget(t);
}

/* x <- x (+) y through the pass's accumulators (they are scratch here). */
static re_status combine(pass *p, double *x, const double *y) {
  RE_TRY(run_pass_deserialize(p, x));
  RE_TRY(merge_serial(p, y));
  run_pass_serialize(p, x);
  return RE_OK;
}

re_status run_tree_collapse(pass *p, run_tree *t) {
  int changed = 1;
  while (changed) {
    changed = 0;
    for (int k = 0; k + 1 < t->n; k++) {
      run_node *a = &t->nodes[k], *b = &t->nodes[k + 1];
      int64_t span = (int64_t)1 << a->height;
      if (a->height == b->height && a->start % (2 * span) == 0 && b->start == a->start + span) {
        RE_TRY(load_node(t, k));
        RE_TRY(load_node(t, k + 1));
        RE_TRY(combine(p, a->buf, b->buf));
        a->height++;
        free(b->buf);
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

re_status run_tree_push_leaf(pass *p, run_tree *t, int64_t k) {
  double *buf = NULL;
  RE_TRY(re_malloc(t->len, sizeof(double), &buf));
  run_pass_serialize(p, buf);
  /* the previous last node is often this leaf's sibling: join before spilling */
  RE_TRY(append_node(t, k, 0, buf));
  RE_TRY(run_tree_collapse(p, t));
  return spill_over_budget(t);
}

/* A collapsed list over batches [0, nb) is the binary decomposition of nb: nodes
 * of strictly decreasing heights from batch 0. The root of the canonical tree is
 * then their right fold, N_0 (+) (N_1 (+) (... (+) N_last)): a missing right child
 * leaves its parent equal to the left one, so these are exactly the merges of the
 * tree. The fold consumes the list, so that it holds two states besides the
 * accumulators whatever nb is. */
re_status run_tree_root(pass *p, run_tree *t, int64_t nb) {
  if (nb <= 0) { /* no batch at all: empty accumulators */
    run_pass_reset(p);
    return RE_OK;
  }
  int64_t at = 0;
  for (int k = 0; k < t->n; k++) {
    const run_node *nd = &t->nodes[k];
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
    RE_TRY(combine(p, t->nodes[k].buf, t->nodes[k + 1].buf)); /* N_k: the earlier batches */
    free(t->nodes[k + 1].buf);
    t->nodes[k + 1].buf = NULL;
    t->n = k + 1;
  }
  re_status st = run_pass_deserialize(p, t->nodes[0].buf);
  free(t->nodes[0].buf);
  t->nodes[0].buf = NULL;
  t->n = 0;
  return st;
}

/* ---- across ranks ----------------------------------------------------------------- */

static re_status send_tree(const run_tree *t, int dest) {
  double *scratch = NULL; /* spilled nodes are read into it */
  re_status st = t->fd >= 0 ? re_malloc(t->len > 0 ? t->len : 1, sizeof(double), &scratch) : RE_OK, bad = RE_OK;
  long long hdr[2] = {st == RE_OK ? t->n : -1, t->len}; /* -1: nothing follows */
  if (MPI_Send(hdr, 2, MPI_LONG_LONG, dest, RE_TAG_TREE_HEADER, MPI_COMM_WORLD) != MPI_SUCCESS)
    st = re_err(RE_EMPI, "MPI_Send to rank %d failed", dest);
  for (int k = 0; st == RE_OK && k < t->n; k++) {
    long long pos[2] = {t->nodes[k].start, t->nodes[k].height};
    if (MPI_Send(pos, 2, MPI_LONG_LONG, dest, RE_TAG_TREE_NODE, MPI_COMM_WORLD) != MPI_SUCCESS) {
      st = re_err(RE_EMPI, "MPI_Send to rank %d failed", dest);
      break;
    }
    const double *d = t->nodes[k].buf;
    if (!d && (bad != RE_OK || (bad = run_tree_node_data(t, k, scratch, &d)) != RE_OK)) {
      memset(scratch, 0, sizeof(double) * (size_t)t->len); /* every node is still sent; the error reaches */
      d = scratch;                                         /* the receiver through re_mpi_agree */
    }
    for (int64_t off = 0; st == RE_OK && off < t->len; off += (1 << 26)) {
      int n = (int)(t->len - off < (1 << 26) ? t->len - off : (1 << 26));
      if (MPI_Send(d + off, n, MPI_DOUBLE, dest, RE_TAG_TREE_DATA, MPI_COMM_WORLD) != MPI_SUCCESS)
        st = re_err(RE_EMPI, "MPI_Send to rank %d failed", dest);
    }
  }
  free(scratch);
  return st != RE_OK ? st : bad;
}

static re_status recv_tree(run_tree *t, int src) {
  long long hdr[2];
  if (MPI_Recv(hdr, 2, MPI_LONG_LONG, src, RE_TAG_TREE_HEADER, MPI_COMM_WORLD, MPI_STATUS_IGNORE) != MPI_SUCCESS)
    return re_err(RE_EMPI, "MPI_Recv from rank %d failed", src);
  if (hdr[0] < 0)
    return re_err(RE_ENOMEM, "rank %d could not send its statistics", src);
  if (hdr[1] != t->len)
    return re_err(RE_EMPI, "rank %d sent statistics of %lld doubles, expected %lld", src, hdr[1], (long long)t->len);
  for (long long k = 0; k < hdr[0]; k++) {
    long long pos[2];
    if (MPI_Recv(pos, 2, MPI_LONG_LONG, src, RE_TAG_TREE_NODE, MPI_COMM_WORLD, MPI_STATUS_IGNORE) != MPI_SUCCESS)
      return re_err(RE_EMPI, "MPI_Recv from rank %d failed", src);
    double *buf = NULL;
    RE_TRY(re_malloc(t->len, sizeof(double), &buf));
    for (int64_t off = 0; off < t->len; off += (1 << 26)) {
      int n = (int)(t->len - off < (1 << 26) ? t->len - off : (1 << 26));
      if (MPI_Recv(buf + off, n, MPI_DOUBLE, src, RE_TAG_TREE_DATA, MPI_COMM_WORLD, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
        free(buf);
        return re_err(RE_EMPI, "MPI_Recv from rank %d failed", src);
      }
    }
    RE_TRY(run_tree_append(t, pos[0], (int)pos[1], buf));
  }
  return RE_OK;
}

re_status run_tree_reduce(runner *r, pass *p, run_tree *t) {
  re_status st = RE_OK;
  for (int mask = 1; mask < r->size; mask <<= 1) {
    if (r->rank & mask) {
      st = send_tree(t, r->rank - mask);
      run_tree_free(t);
      break;
    }
    if (r->rank + mask < r->size) {
      /* the sender's batches follow ours: append, then join siblings */
      st = recv_tree(t, r->rank + mask);
      if (st == RE_OK)
        st = run_tree_collapse(p, t);
      if (st != RE_OK)
        break;
    }
  }
  return re_mpi_agree(MPI_COMM_WORLD, st);
}
