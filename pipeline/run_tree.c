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
 * GEMMs; memory O(log2(batches) x state) per rank. */
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_reduce.h"
#include "run.h"

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

void run_tree_init(run_tree *t, int64_t len) {
  memset(t, 0, sizeof *t);
  t->len = len;
}

void run_tree_free(run_tree *t) {
  for (int k = 0; k < t->n; k++)
    free(t->nodes[k].buf);
  free(t->nodes);
  memset(t, 0, sizeof *t);
}

re_status run_tree_append(run_tree *t, int64_t start, int height, double *buf) {
  if (t->n == t->cap) {
    int ncap = t->cap ? 2 * t->cap : 16;
    re_status st = re_realloc(&t->nodes, ncap, sizeof *t->nodes);
    if (st != RE_OK) {
      free(buf);
      return st;
    }
    t->cap = ncap;
  }
  t->nodes[t->n++] = (run_node){start, height, buf};
  return RE_OK;
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
        RE_TRY(combine(p, a->buf, b->buf));
        a->height++;
        free(b->buf);
        memmove(b, b + 1, sizeof *b * (size_t)(t->n - k - 2));
        t->n--;
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
  RE_TRY(run_tree_append(t, k, 0, buf));
  return run_tree_collapse(p, t);
}

/* Value of node (s, h) over batches [0, nb) from the list (complete nodes), into out;
 * *found = 0 when the node holds no batch. */
static re_status node_value(pass *p, const run_tree *t, int64_t s, int h, int64_t nb, double *out, int *found,
                            double *tmp_pool, int depth) {
  *found = 0;
  if (s >= nb)
    return RE_OK;
  for (int k = 0; k < t->n; k++)
    if (t->nodes[k].start == s && t->nodes[k].height == h) {
      memcpy(out, t->nodes[k].buf, sizeof(double) * (size_t)t->len);
      *found = 1;
      return RE_OK;
    }
  if (h == 0)
    return re_err(RE_EINVAL, "reduction: batch %lld is missing from the statistics", (long long)s);
  int fl = 0, fr = 0;
  RE_TRY(node_value(p, t, s, h - 1, nb, out, &fl, tmp_pool, depth + 1));
  double *right = tmp_pool + (int64_t)depth * t->len;
  RE_TRY(node_value(p, t, s + ((int64_t)1 << (h - 1)), h - 1, nb, right, &fr, tmp_pool, depth + 1));
  if (!fl)
    return re_err(RE_EINVAL, "reduction: batches from %lld are missing from the statistics", (long long)s);
  if (fr)
    RE_TRY(combine(p, out, right));
  *found = 1;
  return RE_OK;
}

re_status run_tree_root(pass *p, const run_tree *t, int64_t nb) {
  if (nb <= 0) { /* no batch at all: empty accumulators */
    run_pass_reset(p);
    return RE_OK;
  }
  int H = 0;
  while (((int64_t)1 << H) < nb)
    H++;
  double *out = NULL, *pool = NULL;
  re_status st = re_malloc(t->len, sizeof(double), &out);
  if (st == RE_OK)
    st = re_malloc((int64_t)(H + 2) * t->len, sizeof(double), &pool);
  int found = 0;
  if (st == RE_OK)
    st = node_value(p, t, 0, H, nb, out, &found, pool, 0);
  if (st == RE_OK)
    st = run_pass_deserialize(p, out);
  free(out);
  free(pool);
  return st;
}

/* ---- across ranks ----------------------------------------------------------------- */

static re_status send_tree(const run_tree *t, int dest) {
  long long hdr[2] = {t->n, t->len};
  if (MPI_Send(hdr, 2, MPI_LONG_LONG, dest, 41, MPI_COMM_WORLD) != MPI_SUCCESS)
    return re_err(RE_EMPI, "MPI_Send to rank %d failed", dest);
  for (int k = 0; k < t->n; k++) {
    long long pos[2] = {t->nodes[k].start, t->nodes[k].height};
    if (MPI_Send(pos, 2, MPI_LONG_LONG, dest, 42, MPI_COMM_WORLD) != MPI_SUCCESS)
      return re_err(RE_EMPI, "MPI_Send to rank %d failed", dest);
    for (int64_t off = 0; off < t->len; off += (1 << 26)) {
      int n = (int)(t->len - off < (1 << 26) ? t->len - off : (1 << 26));
      if (MPI_Send(t->nodes[k].buf + off, n, MPI_DOUBLE, dest, 43, MPI_COMM_WORLD) != MPI_SUCCESS)
        return re_err(RE_EMPI, "MPI_Send to rank %d failed", dest);
    }
  }
  return RE_OK;
}

static re_status recv_tree(run_tree *t, int src) {
  long long hdr[2];
  if (MPI_Recv(hdr, 2, MPI_LONG_LONG, src, 41, MPI_COMM_WORLD, MPI_STATUS_IGNORE) != MPI_SUCCESS)
    return re_err(RE_EMPI, "MPI_Recv from rank %d failed", src);
  if (hdr[1] != t->len)
    return re_err(RE_EMPI, "rank %d sent statistics of %lld doubles, expected %lld", src, hdr[1], (long long)t->len);
  for (long long k = 0; k < hdr[0]; k++) {
    long long pos[2];
    if (MPI_Recv(pos, 2, MPI_LONG_LONG, src, 42, MPI_COMM_WORLD, MPI_STATUS_IGNORE) != MPI_SUCCESS)
      return re_err(RE_EMPI, "MPI_Recv from rank %d failed", src);
    double *buf = NULL;
    RE_TRY(re_malloc(t->len, sizeof(double), &buf));
    for (int64_t off = 0; off < t->len; off += (1 << 26)) {
      int n = (int)(t->len - off < (1 << 26) ? t->len - off : (1 << 26));
      if (MPI_Recv(buf + off, n, MPI_DOUBLE, src, 43, MPI_COMM_WORLD, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
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
