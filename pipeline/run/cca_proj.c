/* The two-pass route of the cca analysis (run/cca_proj.h): directions from the pass's
 * per-tap covariances, then a second stream of projections reduced along the
 * canonical tree, whose leaves are groups of the pass's statistics batches (so the
 * result does not depend on the number of ranks). */
#include <cblas.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/mpi_reduce.h"
#include "out/progress.h"
#include "run/analysis.h"
#include "run/cca_proj.h"

re_status cca_proj_pairs(const an_run *ar, int32_t **pairs, int *npairs) {
  int n = 0;
  int64_t cap = (int64_t)ar->P * (ar->P - 1) / 2;
  int32_t *pr = NULL;
  RE_TRY(re_malloc(cap > 0 ? 2 * cap : 2, sizeof(int32_t), &pr));
  an_pair_it it;
  for (an_pairs_all(ar, &it); an_pairs_next(ar, &it); n++)
    pr[2 * n] = it.i, pr[2 * n + 1] = it.l;
  *pairs = pr;
  *npairs = n;
  return RE_OK;
}

re_status cca_proj_state_len(const runner *r, const an_run *ar, int64_t max_k, int64_t *exact, int64_t *projected) {
  int64_t *dims = NULL, *kd = NULL;
  int32_t *pairs = NULL;
  int np = 0;
  re_status st = re_calloc(ar->P > 0 ? ar->P : 1, sizeof(int64_t), &dims);
  if (st == RE_OK)
    st = re_calloc(ar->P > 0 ? ar->P : 1, sizeof(int64_t), &kd);
  if (st == RE_OK)
    st = cca_proj_pairs(ar, &pairs, &np);
  for (int q = 0; st == RE_OK && q < ar->P; q++) {
    dims[q] = r->plan.taps[ar->taps[q]].dim;
    kd[q] = max_k > 0 && max_k < dims[q] ? max_k : dims[q];
  }
  if (st == RE_OK)
    st = re_moments_state_len(ar->P, dims, np, pairs, RE_MOMENTS_DEBIASED, exact);
  if (st == RE_OK)
    st = re_moments_state_len(ar->P, kd, np, pairs, 0, projected);
  free(dims);
  free(kd);
  free(pairs);
  return st;
}

/* The rank whose an_block of n units holds unit q. */
static int owner_of(const runner *r, int64_t n, int64_t q) {
  int rr = 0;
  while (rr + 1 < r->comm.size && n * (rr + 1) / r->comm.size <= q)
    rr++;
  return rr;
}

/* Tap q's directions into W (d x k row-major, the leading eigenvectors): k from the
 * variance threshold, capped; 0 when the tap has no variance. */
static re_status tap_directions(pass *p, const an_run *ar, re_eig **eigs, int q, double variance, int64_t max_k,
                                double *W, int64_t *k, int *capped) {
  int li = p->mom_of[ar->taps[q]];
  re_status st = an_eig(p, eigs, li);
  *k = 0;
  if (st == RE_EUNDEFINED) /* fewer than 2 samples: its pairs say so */
    return RE_OK;
  RE_TRY(st);
  const re_eig *e = eigs[li];
  int64_t kk = re_eig_kept_for_variance(e, variance);
  if (max_k > 0 && kk > max_k)
    kk = max_k, ++*capped;
  for (int64_t i = 0; i < e->d; i++)
    memcpy(W + i * kk, e->vectors + i * e->d, sizeof(double) * (size_t)kk);
  *k = kk;
  return RE_OK;
}

/* Collective: every tap's directions, each computed by one rank and broadcast; W[q]
 * has room for d_q x min(d_q, max_k) values. */
static re_status directions(runner *r, pass *p, const an_run *ar, re_eig **eigs, double variance, int64_t max_k,
                            double **W, int64_t *k, int *ncapped) {
  int64_t lo, hi;
  int capped = 0;
  an_block(r, ar->P, &lo, &hi);
  re_status st = RE_OK;
  for (int64_t q = lo; q < hi && st == RE_OK; q++)
    st = tap_directions(p, ar, eigs, (int)q, variance, max_k, W[q], &k[q], &capped);
  st = re_mpi_agree(r->comm.comm, st);
  if (st != RE_OK || r->comm.size < 2) {
    *ncapped = capped;
    return st;
  }
  for (int q = 0; q < ar->P; q++) {
    int own = owner_of(r, ar->P, q);
    MPI_Bcast(&k[q], 1, MPI_INT64_T, own, r->comm.comm);
    int64_t len = r->plan.taps[ar->taps[q]].dim * k[q];
    for (int64_t off = 0; off < len; off += (1 << 26))
      MPI_Bcast(W[q] + off, (int)(len - off < (1 << 26) ? len - off : (1 << 26)), MPI_DOUBLE, own, r->comm.comm);
  }
  MPI_Allreduce(&capped, ncapped, 1, MPI_INT, MPI_SUM, r->comm.comm);
  return RE_OK;
}

/* The second stream: what a leaf (a group of statistics batches) needs. */
typedef struct proj_ctx {
  runner *r;
  pass *p;
  const an_run *ar;
  re_moments *m;
  double *const *W;
  const int64_t *kd;    /* projected widths (k, at least 1) */
  int64_t per_leaf;     /* statistics batches per leaf */
  float *rows;          /* one checkpoint's taps' rows of a batch, tap after tap */
  double *x;            /* the same in float64 */
  double *z;            /* every tap's projections of a batch, tap after tap */
  const double **zp;    /* P: tap q's projections in z */
  int64_t *ld;
  progress pr;
  int64_t done;
} proj_ctx;

/* Statistics batch kb: every tap's rows, projected, into the co-moments. */
static re_status add_batch(proj_ctx *c, int64_t kb) {
  pass *p = c->p;
  const an_run *ar = c->ar;
  const tapinfo *taps = c->r->plan.taps;
  int64_t s0 = kb * p->sb, b = p->n - s0 < p->sb ? p->n - s0 : p->sb, rows = b * p->mom_rps;
  for (int q0 = 0, q1; q0 < ar->P; q0 = q1) { /* the taps of one checkpoint: its chunks made once */
    const tapinfo *t0 = &taps[ar->taps[q0]];
    int nl = c->r->plan.j->models[t0->model].nlayers;
    for (int l = 0; l < nl; l++)
      p->want[l] = NULL;
    float *at = c->rows;
    for (q1 = q0; q1 < ar->P && taps[ar->taps[q1]].model == t0->model && taps[ar->taps[q1]].ckpt == t0->ckpt; q1++)
      p->want[taps[ar->taps[q1]].layer] = at, at += rows * taps[ar->taps[q1]].dim;
    RE_TRY(run_pass_ckpt_rows(c->r, p, t0->model, t0->ckpt, s0, s0 + b, p->want));
    for (int q = q0; q < q1; q++) {
      int64_t d = taps[ar->taps[q]].dim;
      const float *src = p->want[taps[ar->taps[q]].layer];
      for (int64_t e = 0; e < rows * d; e++)
        c->x[e] = src[e];
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)c->kd[q], (int)d, 1.0, c->x, (int)d,
                  c->W[q], (int)c->kd[q], 0.0, (double *)c->zp[q], (int)c->kd[q]);
    }
  }
  re_status st = re_moments_add_batch(c->m, rows, c->zp, c->ld);
  if (st != RE_OK)
    return re_err_context(st, "second pass, samples %lld..%lld: ", (long long)s0, (long long)(s0 + b));
  return RE_OK;
}

static re_status add_leaf(void *ctx, int64_t j) {
  proj_ctx *c = ctx;
  int64_t nbatch = (c->p->n + c->p->sb - 1) / c->p->sb;
  for (int64_t kb = j * c->per_leaf; kb < (j + 1) * c->per_leaf && kb < nbatch; kb++)
    RE_TRY(add_batch(c, kb));
  c->done++;
  progress_update(&c->pr, c->done, 0);
  return RE_OK;
}

/* Scratch of the second stream, and the projected accumulator. */
static re_status ctx_alloc(proj_ctx *c, const int64_t *kd) {
  const pass *p = c->p;
  int P = c->ar->P;
  const tapinfo *taps = c->r->plan.taps;
  int64_t maxd = 1, maxck = 1, ck = 0, ktot = 0, rows = p->sb * p->mom_rps;
  for (int q = 0; q < P; q++) { /* maxck: the widest checkpoint (its taps' widths summed) */
    const tapinfo *t = &taps[c->ar->taps[q]], *prev = q > 0 ? &taps[c->ar->taps[q - 1]] : NULL;
    ck = prev && prev->model == t->model && prev->ckpt == t->ckpt ? ck + t->dim : t->dim;
    maxck = ck > maxck ? ck : maxck;
    maxd = t->dim > maxd ? t->dim : maxd;
    ktot += kd[q];
  }
  int32_t *pairs = NULL;
  int np = 0;
  RE_TRY(cca_proj_pairs(c->ar, &pairs, &np));
  re_status st = re_moments_create(P, kd, np, pairs, 0, &c->m);
  free(pairs);
  RE_TRY(st);
  RE_TRY(re_malloc(rows * maxck, sizeof(float), &c->rows));
  RE_TRY(re_malloc(rows * maxd, sizeof(double), &c->x));
  RE_TRY(re_malloc(rows * (ktot > 0 ? ktot : 1), sizeof(double), &c->z));
  RE_TRY(re_calloc(P, sizeof(double *), &c->zp));
  RE_TRY(re_calloc(P, sizeof(int64_t), &c->ld));
  for (int q = 0, off = 0; q < P; off += (int)(rows * kd[q]), q++)
    c->zp[q] = c->z + off, c->ld[q] = kd[q];
  return RE_OK;
}

static void ctx_free(proj_ctx *c) {
  free(c->rows);
  free(c->x);
  free(c->z);
  free(c->zp);
  free(c->ld);
}

/* Collective: the second stream and its reduction; c->m holds the root on rank 0. */
static re_status second_stream(runner *r, pass *p, proj_ctx *c, int64_t *leaves) {
  int64_t nbatch = (p->n + p->sb - 1) / p->sb;
  c->per_leaf = (nbatch + CCA_PROJ_LEAVES - 1) / CCA_PROJ_LEAVES;
  c->per_leaf = c->per_leaf > 0 ? c->per_leaf : 1;
  *leaves = (nbatch + c->per_leaf - 1) / c->per_leaf;
  int64_t j0, j1;
  tree_rank_range(*leaves, r->comm.rank, r->comm.size, &j0, &j1);
  int64_t s0 = j0 * c->per_leaf * p->sb, s1 = j1 * c->per_leaf * p->sb;
  s1 = s1 < p->n ? s1 : p->n;
  RE_TRY(re_mpi_agree(r->comm.comm, run_pass_embed(r, p, s0 < s1 ? s0 : 0, s0 < s1 ? s1 : 0)));
  char what[300];
  snprintf(what, sizeof what, "dataset %s, cca '%s', second pass", r->plan.j->datasets[p->d].name, c->ar->a->name);
  progress_start(&c->pr, what, j1 - j0, r->comm.rank == 0 && !r->plan.quiet);
  tree_acc acc = tree_moments_acc(c->m);
  re_status st = tree_stream_reduce_resident(r->comm.comm, &acc, *leaves, add_leaf, c);
  if (st == RE_OK)
    progress_finish(&c->pr, s1 - s0);
  return st;
}

re_status cca_proj_run(runner *r, pass *p, an_run *ar, re_eig **eigs, double variance, int64_t max_k,
                       cca_proj *out) {
  memset(out, 0, sizeof *out);
  double t0 = progress_now();
  int P = ar->P;
  double **W = NULL;
  int64_t *kd = NULL;
  proj_ctx c;
  memset(&c, 0, sizeof c);
  c.r = r, c.p = p, c.ar = ar;
  re_status st = re_calloc(P, sizeof(double *), &W);
  if (st == RE_OK)
    st = re_calloc(P, sizeof(int64_t), &out->k);
  if (st == RE_OK)
    st = re_calloc(P, sizeof(int64_t), &kd);
  for (int q = 0; q < P && st == RE_OK; q++) {
    int64_t d = r->plan.taps[ar->taps[q]].dim;
    st = re_calloc(d * (max_k > 0 && max_k < d ? max_k : d), sizeof(double), &W[q]);
  }
  st = re_mpi_agree(r->comm.comm, st);
  if (st == RE_OK)
    st = directions(r, p, ar, eigs, variance, max_k, W, out->k, &out->ncapped);
  for (int q = 0; q < P && st == RE_OK; q++)
    kd[q] = out->k[q] > 0 ? out->k[q] : 1; /* no variance: one zero column, and its pairs are undefined */
  if (st == RE_OK)
    st = re_mpi_agree(r->comm.comm, ctx_alloc(&c, kd));
  c.W = W, c.kd = kd;
  if (st == RE_OK)
    st = re_mpi_agree(r->comm.comm, second_stream(r, p, &c, &out->leaves));
  if (st == RE_OK)
    st = an_share_moments(r, c.m);
  out->m = c.m;
  ctx_free(&c);
  for (int q = 0; W && q < P; q++)
    free(W[q]);
  free(W);
  free(kd);
  out->seconds = progress_now() - t0;
  return st;
}

void cca_proj_free(cca_proj *c) {
  re_moments_destroy(&c->m);
  free(c->k);
  c->k = NULL;
}
