/* The knn analysis: neighbourhood similarity of taps (mutual k-NN, CKNNA, cycle k-NN,
 * Jaccard of the k-NN sets; docs/metrics.md) from exact cosine k-NN graphs of every
 * tap over all n samples of the pass.
 *
 * The taps' rows are kept in the cache shards during the pass. Afterwards, tap by
 * tap, every rank reads all rows, adds its contiguous share of the block-pair grid
 * to its candidate lists, and sends them to rank 0, which merges them and ranks the
 * candidates by the float64 similarity: the graph is the exact top-k whatever the
 * number of ranks. Rank 0 keeps the graphs (n x k each) and compares the pairs.
 * Memory per rank: one tap's rows (n x d float32) and its candidates, O(n k). */
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/mpi_reduce.h"
#include "mpi/tags.h"
#include "out/progress.h"
#include "repeval/neighbors.h"
#include "run/analysis.h"

#define MAX_K 16
#define MESSAGE_BYTES (1 << 28)

typedef struct knn_opts {
  int k[MAX_K], nk, kmax;
  int64_t block; /* rows per block of the grid, 0: the library's default */
} knn_opts;

static const char *const keys[] = {"k", "block", NULL};

static re_status parse(job *j, job_analysis *a, const re_cfg *c) {
  knn_opts *o = a->opts;
  const re_cfg *kc = re_cfg_get(c, "k");
  o->nk = 1;
  o->k[0] = 10;
  if (kc) {
    const re_cfg *one[1] = {kc};
    const re_cfg *const *items = kc->kind == RE_CFG_SEQ ? (const re_cfg *const *)kc->items : one;
    int64_t count = kc->kind == RE_CFG_SEQ ? kc->n : 1;
    if (count < 1 || count > MAX_K)
      return re_cfg_error(kc, RE_EINVAL, "k must be a number or a list of 1 to %d numbers", MAX_K);
    for (int64_t e = 0; e < count; e++) {
      int64_t v;
      RE_TRY(re_cfg_int(items[e], &v));
      if (v < 1 || v > 100000)
        return re_cfg_error(items[e], RE_EINVAL, "k must be in [1, 100000], got %lld", (long long)v);
      o->k[e] = (int)v;
    }
    o->nk = (int)count;
  }
  o->kmax = 0;
  for (int e = 0; e < o->nk; e++)
    o->kmax = o->k[e] > o->kmax ? o->k[e] : o->kmax;
  RE_TRY(re_cfg_get_int(c, "block", &o->block));
  if (o->block < 0 || o->block > 65536)
    return re_cfg_error(re_cfg_get(c, "block"), RE_EINVAL, "block must be in [1, 65536] rows (0: default)");
  return RE_OK;
}

static re_status setup(runner *r, pass *p, an_run *ar) { return an_keep_rows(r, p, ar, 0); }

/* Rank src's candidates to rank 0, merged there (collective; b exists on every rank). */
static re_status gather(runner *r, re_knn_build *b, int64_t n) {
  int64_t per_row = re_knn_build_packed_bytes(b, 0, 1), rows = MESSAGE_BYTES / per_row;
  rows = rows < 1 ? 1 : rows;
  unsigned char *buf = NULL;
  re_status st = re_malloc(rows, per_row, &buf);
  st = re_mpi_agree(r->comm.comm, st);
  if (st != RE_OK) {
    free(buf);
    return st;
  }
  for (int src = 1; src < r->comm.size; src++)
    for (int64_t r0 = 0; r0 < n; r0 += rows) {
      int64_t r1 = n - r0 < rows ? n : r0 + rows, bytes = re_knn_build_packed_bytes(b, r0, r1);
      if (r->comm.rank == src) {
        re_knn_build_pack(b, r0, r1, buf);
        MPI_Send(buf, (int)bytes, MPI_BYTE, 0, TAG_KNN_CANDIDATES, r->comm.comm);
      } else if (r->comm.rank == 0) {
        MPI_Recv(buf, (int)bytes, MPI_BYTE, src, TAG_KNN_CANDIDATES, r->comm.comm, MPI_STATUS_IGNORE);
        if (st == RE_OK)
          st = re_knn_build_merge(b, r0, r1, buf, bytes);
      }
    }
  free(buf);
  return re_mpi_agree(r->comm.comm, st);
}

/* Collective: the k-NN graph of global tap t on rank 0 (*why set on every rank when the
 * tap's features hold NaN or Inf). */
static re_status graph_of(runner *r, pass *p, const knn_opts *o, int t, re_knn_graph *g, const char **why) {
  int64_t n = p->n, dim = r->plan.taps[t].dim;
  float *X = NULL;
  re_knn_build *b = NULL;
  re_status st = re_malloc(n, dim * (int64_t)sizeof(float), &X);
  if (st == RE_OK)
    st = an_stored_rows(r, p->d, t, 0, n, X, NULL);
  st = re_mpi_agree(r->comm.comm, st);
  if (st == RE_OK) {
    st = re_knn_build_create(X, n, dim, dim, o->kmax, o->block, &b);
    int bad = st == RE_EDATA, any = 0; /* the same rows on every rank: the same answer */
    MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, r->comm.comm);
    if (any) {
      *why = "the features hold NaN or Inf";
      st = RE_OK;
    }
    st = re_mpi_agree(r->comm.comm, st);
  }
  if (st == RE_OK && b) {
    int64_t lo, hi;
    an_block(r, re_knn_build_units(b), &lo, &hi);
    st = re_mpi_agree(r->comm.comm, re_knn_build_add_units(b, lo, hi));
    if (st == RE_OK)
      st = gather(r, b, n);
    if (st == RE_OK && r->comm.rank == 0)
      st = re_knn_build_finish(b, g);
    st = re_mpi_agree(r->comm.comm, st);
  }
  if (st != RE_OK)
    re_err_context(st, "%s/%s/%s: ", run_tap_model(r, t), run_tap_ckpt(r, t), run_tap_layer(r, t));
  re_knn_build_destroy(&b);
  free(X);
  return st;
}

/* Rank 0: the rows of every wanted pair at every k, and the matrices. */
static re_status report(runner *r, an_run *ar, const knn_opts *o, re_knn_graph *g, const char **why, int64_t n) {
  const job_analysis *a = ar->a;
  int P = ar->P;
  static const char *const names[] = {"mutual_knn", "cknna", "cycle_knn_ab", "cycle_knn_ba", "jaccard_knn"};
  double *M = NULL;
  re_status st = re_malloc(2 * (int64_t)P * P, sizeof(double), &M);
  char size_why[96];
  snprintf(size_why, sizeof size_why, "k = %d needs more than %d samples (the dataset has %lld)", o->kmax, o->kmax,
           (long long)n);
  for (int q = 0; st == RE_OK && q < P; q++)
    if (g[q].idx) {
      char param[64];
      snprintf(param, sizeof param, "k=%d pooling=%s", o->kmax, an_tap_mode(r, ar->taps[q]));
      run_row(r, a->name, "knn_rows_rechecked", ar->taps[q], -1, a->dataset, param, (double)g[q].rechecked, NULL);
    }
  for (int e = 0; e < o->nk && st == RE_OK; e++) {
    int k = o->k[e];
    for (int64_t x = 0; x < 2 * (int64_t)P * P; x++)
      M[x] = NAN;
    for (int i = 0; i < P && st == RE_OK; i++)
      for (int l = i; l < P && st == RE_OK; l++) {
        if (l != i && !run_pair_wanted(ar, i, l))
          continue;
        if (l == i && (!g[i].idx || why[i])) /* the diagonal: a built graph with itself */
          continue;
        int ta = ar->taps[i], tb = ar->taps[l];
        const char *bad = n - 1 < o->kmax ? size_why : why[i] ? why[i] : why[l];
        re_knn_compare c;
        memset(&c, 0, sizeof c);
        if (!bad)
          st = re_knn_graph_compare(&g[i], &g[l], k, &c);
        if (st != RE_OK)
          break;
        if (!bad) {
          M[(int64_t)i * P + l] = M[(int64_t)l * P + i] = c.mutual;
          M[(int64_t)P * P + (int64_t)i * P + l] = M[(int64_t)P * P + (int64_t)l * P + i] = c.cknna;
        }
        if (l == i)
          continue;
        char param[160];
        snprintf(param, sizeof param, "k=%d pooling_a=%s pooling_b=%s", k, an_tap_mode(r, ta), an_tap_mode(r, tb));
        double v[5] = {c.mutual, c.cknna, c.cycle_ab, c.cycle_ba, c.jaccard};
        for (int m = 0; m < 5; m++)
          run_row(r, a->name, names[m], ta, tb, a->dataset, param, bad ? NAN : v[m],
                  bad ? bad : m == 1 ? c.cknna_undefined : NULL);
      }
    char name[300];
    snprintf(name, sizeof name, "%s_mutual_k%d", a->name, k);
    if (st == RE_OK)
      st = an_write_matrix(r, "knn", name, M, P, P);
    snprintf(name, sizeof name, "%s_cknna_k%d", a->name, k);
    if (st == RE_OK)
      st = an_write_matrix(r, "knn", name, M + (int64_t)P * P, P, P);
  }
  if (st == RE_OK)
    st = an_write_taps(r, ar);
  free(M);
  return st;
}

static re_status finalize(runner *r, pass *p, an_run *ar, re_eig **eigs) {
  (void)eigs;
  const job_analysis *a = ar->a;
  const knn_opts *o = a->opts;
  if (!an_rows_available(r, a))
    return RE_OK;
  int P = ar->P;
  re_knn_graph *g = NULL;
  const char **why = NULL;
  re_status st = re_calloc(P, sizeof(re_knn_graph), &g);
  if (st == RE_OK)
    st = re_calloc(P, sizeof(char *), &why);
  st = re_mpi_agree(r->comm.comm, st);
  progress pr;
  progress_start(&pr, "k-NN graphs", P, r->comm.rank == 0 && !r->plan.quiet);
  for (int q = 0; q < P && st == RE_OK && p->n - 1 >= o->kmax; q++) {
    if (an_tap_paired(ar, q))
      st = graph_of(r, p, o, ar->taps[q], &g[q], &why[q]);
    if (r->comm.rank == 0)
      progress_update(&pr, q + 1, 0);
  }
  progress_finish(&pr, 0);
  if (st == RE_OK && r->comm.rank == 0)
    st = report(r, ar, o, g, why, p->n);
  for (int q = 0; g && q < P; q++)
    re_knn_graph_free(&g[q]);
  free(g);
  free(why);
  return st;
}

static void manifest(FILE *f, const job_analysis *a) {
  const knn_opts *o = a->opts;
  an_manifest_dataset(f, a);
  fprintf(f, ", \"k\": [");
  for (int e = 0; e < o->nk; e++)
    fprintf(f, "%s%d", e ? ", " : "", o->k[e]);
  fprintf(f, "], \"similarity\": \"cosine\"");
  an_manifest_pairs(f, a);
}

const an_kind an_knn = {
    .type = "knn",
    .keys = keys,
    .pairs = AN_PAIRS,
    .default_pairs = PAIRS_ALL,
    .opts_size = sizeof(knn_opts),
    .parse = parse,
    .setup = setup,
    .finalize = finalize,
    .manifest = manifest,
    .keeps_rows = 1,
};
