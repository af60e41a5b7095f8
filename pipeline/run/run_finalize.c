/* repeval run, finalize: metrics from the reduced accumulators (the co-moment
 * analyses spread over the ranks), tidy metrics.csv rows, matrices, tap indices
 * and the manifest (rank 0). */
#include <archive.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include <zstd.h>

#include "out/json.h"
#include "mpi/mpi_reduce.h"
#include "out/outdir.h"
#include "out/output.h"
#include "repeval/activations.h"
#include "repeval/cca.h"
#include "repeval/npy.h"
#include "run/analysis.h"

#ifndef REPEVAL_GIT_REVISION
#define REPEVAL_GIT_REVISION "unknown"
#endif

/* ---- finalize (rank 0) ----------------------------------------------------- */

/* The co-moments to and from the broadcast buffer (re_mpi_share_doubles). */
static void moments_put(void *m, double *buf) { re_moments_serialize(m, buf); }
static re_status moments_get(void *m, const double *buf, int64_t len) { return re_moments_deserialize(m, buf, len); }

re_status an_share_moments(runner *r, re_moments *m) {
  if (r->comm.size < 2 || !m)
    return RE_OK;
  return re_mpi_share_doubles(r->comm.comm, re_moments_serial_len(m), m, moments_put, moments_get);
}

/* This rank's needs of the pass's co-moment blocks (nblocks bytes); 1 when it reads
 * them all (a kind without a moment_blocks hook). Rank 0 holds them all. */
static int pass_needs(const runner *r, const pass *p, uint8_t *need) {
  int all = 0;
  for (int a = 0; a < p->nan && !all; a++) {
    const an_run *ar = &p->an[a];
    if (ar->uses_mom && ar->a->kind->finalize)
      ar->a->kind->moment_blocks ? ar->a->kind->moment_blocks(r, p, ar, need) : (void)(all = 1);
  }
  return all;
}

/* Rank 0: the head and the blocks marked in need (nb bytes) of m, in block order, to
 * rank q, each straight from the accumulator's state. */
static re_status send_blocks(runner *r, re_moments *m, const uint8_t *need, int q) {
  int64_t off, len;
  RE_TRY(re_mpi_send_doubles(r->comm.comm, re_moments_span_data(m, 0), re_moments_head_len(m), q, TAG_MOMENT_BLOCKS));
  for (int b = 0; b < re_moments_nblocks(m); b++)
    if (need[b]) {
      re_moments_block_span(m, b, &off, &len);
      RE_TRY(re_mpi_send_doubles(r->comm.comm, re_moments_span_data(m, off), len, q, TAG_MOMENT_BLOCKS));
    }
  return RE_OK;
}

/* Rank q > 0: what send_blocks sent, straight into m's state (memory the streaming
 * already touched: no staging buffer to fault in); the blocks not sent become NaN, so
 * that a read the hooks did not declare shows in the results. *got: doubles received. */
static re_status recv_blocks(runner *r, re_moments *m, const uint8_t *need, double *got) {
  int64_t n = re_moments_head_len(m), off, len, have = 0;
  double nan[1024];
  for (int i = 0; i < 1024; i++)
    nan[i] = NAN;
  RE_TRY(re_mpi_recv_doubles(r->comm.comm, re_moments_span_data(m, 0), n, n, 0, TAG_MOMENT_BLOCKS, &have));
  *got = (double)n;
  for (int b = 0; b < re_moments_nblocks(m); b++) {
    re_moments_block_span(m, b, &off, &len);
    if (!need[b]) {
      for (int64_t e = 0; e < len; e += 1024)
        re_moments_set_span(m, off + e, len - e < 1024 ? len - e : 1024, nan);
      continue;
    }
    RE_TRY(re_mpi_recv_doubles(r->comm.comm, re_moments_span_data(m, off), len, len, 0, TAG_MOMENT_BLOCKS, &have));
    *got += (double)len;
  }
  return RE_OK;
}

/* Collective: rank 0's co-moments to the ranks, each receiving the count, the means and
 * only the blocks its finalize reads (the kinds' moment_blocks hooks); when every rank
 * reads every block, one broadcast. */
static re_status share_pass_moments(runner *r, pass *p) {
  re_moments *m = p->mom;
  if (!m)
    return RE_OK;
  double state_mb = 8.0 * (double)re_moments_serial_len(m) / 1048576.0, share_mb = 0;
  r->rep.state_mb = state_mb > r->rep.state_mb ? state_mb : r->rep.state_mb;
  if (r->comm.size < 2)
    return RE_OK;
  int nb = re_moments_nblocks(m), all = 0, every = 0;
  uint8_t *need = NULL, *needs = NULL;
  double got = 0;
  re_status st = re_calloc(nb > 0 ? nb : 1, 1, &need);
  if (st == RE_OK)
    all = pass_needs(r, p, need) || r->comm.rank == 0;
  if (st == RE_OK && r->comm.rank > 0 && all)
    memset(need, 1, (size_t)nb);
  MPI_Allreduce(&all, &every, 1, MPI_INT, MPI_LAND, r->comm.comm);
  st = re_mpi_agree(r->comm.comm, st);
  if (st == RE_OK && every) {
    st = an_share_moments(r, m);
    share_mb = state_mb;
  } else if (st == RE_OK) {
    if (r->comm.rank == 0)
      st = re_malloc((int64_t)nb * r->comm.size + 1, 1, &needs);
    st = re_mpi_agree(r->comm.comm, st);
    if (st == RE_OK)
      MPI_Gather(need, nb, MPI_UNSIGNED_CHAR, needs, nb, MPI_UNSIGNED_CHAR, 0, r->comm.comm);
    for (int q = 1; st == RE_OK && r->comm.rank == 0 && q < r->comm.size; q++)
      st = send_blocks(r, m, needs + (int64_t)q * nb, q);
    if (st == RE_OK && r->comm.rank > 0)
      st = recv_blocks(r, m, need, &got);
    got *= 8.0 / 1048576.0;
    MPI_Allreduce(&got, &share_mb, 1, MPI_DOUBLE, MPI_MAX, r->comm.comm);
    st = re_mpi_agree(r->comm.comm, st);
  }
  r->rep.share_mb = share_mb > r->rep.share_mb ? share_mb : r->rep.share_mb;
  free(need);
  free(needs);
  return st;
}

/* ---- eigendecompositions made once (the kinds' eig_layers hooks) ---- */

typedef struct eig_width {
  int64_t d;
  int l;
} eig_width;

static int widest_first(const void *a, const void *b) {
  const eig_width *x = a, *y = b;
  return x->d != y->d ? (x->d < y->d ? 1 : -1) : (x->l > y->l) - (x->l < y->l);
}

/* The owner of each co-moment layer some rank reads the eigendecomposition of (all:
 * R x L flags): among the ranks reading it the least loaded so far (d^3), the widest
 * layers first; -1: nobody reads it, or too wide for one message (made where read). */
static re_status eig_owners(const pass *p, int R, const uint8_t *all, int *owner, double *load) {
  int L = p->nmom;
  eig_width *order = NULL;
  RE_TRY(re_malloc(L, sizeof *order, &order));
  for (int l = 0; l < L; l++)
    order[l] = (eig_width){re_moments_dim(p->mom, l), l};
  qsort(order, (size_t)L, sizeof *order, widest_first);
  for (int q = 0; q < R; q++)
    load[q] = 0;
  for (int k = 0; k < L; k++) {
    int l = order[k].l, best = -1;
    int64_t d = order[k].d;
    for (int q = 0; q < R && 3 + d + d * d <= INT_MAX; q++)
      if (all[(int64_t)q * L + l] && (best < 0 || load[q] < load[best]))
        best = q;
    owner[l] = best;
    if (best >= 0)
      load[best] += (double)d * (double)d * (double)d;
  }
  free(order);
  return RE_OK;
}

/* A layer's eigendecomposition as a message: [made, trace, rank, values (d), vectors (d x d)]. */
static void eig_pack(const re_eig *e, int64_t d, double *buf) {
  buf[0] = e != NULL;
  if (!e)
    return;
  buf[1] = e->trace, buf[2] = (double)e->rank;
  memcpy(buf + 3, e->values, sizeof(double) * (size_t)d);
  memcpy(buf + 3 + d, e->vectors, sizeof(double) * (size_t)(d * d));
}

static re_status eig_unpack(const double *buf, int64_t d, double n, re_eig **out) {
  if (buf[0] == 0) /* the owner could not make it: made here when read, with its message */
    return RE_OK;
  re_eig *e = NULL;
  RE_TRY(re_calloc(1, sizeof *e, &e));
  e->d = d, e->n = n, e->trace = buf[1], e->rank = (int64_t)buf[2];
  if (re_malloc(d, sizeof(double), &e->values) != RE_OK || re_malloc(d * d, sizeof(double), &e->vectors) != RE_OK) {
    re_eig_destroy(&e);
    return re_err(RE_ENOMEM, "cannot hold a %lld x %lld eigendecomposition", (long long)d, (long long)d);
  }
  memcpy(e->values, buf + 3, sizeof(double) * (size_t)d);
  memcpy(e->vectors, buf + 3 + d, sizeof(double) * (size_t)(d * d));
  *out = e;
  return RE_OK;
}

/* The message buffers of this rank's part of the exchange: one per layer it reads and
 * another rank makes, or makes and another rank reads. */
static re_status eig_buffers(const runner *r, const pass *p, const uint8_t *all, const int *owner, double **bufs) {
  int L = p->nmom, R = r->comm.size, me = r->comm.rank;
  for (int l = 0; l < L; l++) {
    int64_t d = re_moments_dim(p->mom, l);
    int o = owner[l], readers = 0;
    if (o < 0 || (o != me && !all[(int64_t)me * L + l]))
      continue;
    for (int q = 0; q < R; q++)
      readers += q != o && all[(int64_t)q * L + l];
    if (readers > 0)
      RE_TRY(re_malloc(3 + d + d * d, sizeof(double), &bufs[l]));
  }
  return RE_OK;
}

/* Post this rank's messages of the exchange (buffers from eig_buffers): a receive for
 * each layer it reads and another rank makes, a send of each layer it makes to every
 * other reader. */
static re_status eig_post(runner *r, pass *p, re_eig **eigs, const uint8_t *all, const int *owner, double **bufs,
                          MPI_Request *req, int *nreq) {
  int L = p->nmom, R = r->comm.size, me = r->comm.rank;
  for (int l = 0; l < L; l++) {
    int64_t d = re_moments_dim(p->mom, l), len = 3 + d + d * d;
    int o = owner[l];
    if (!bufs[l])
      continue;
    if (o != me) {
      if (MPI_Irecv(bufs[l], (int)len, MPI_DOUBLE, o, TAG_EIG, r->comm.comm, &req[(*nreq)++]) != MPI_SUCCESS)
        return re_err(RE_EMPI, "MPI_Irecv of an eigendecomposition from rank %d failed", o);
      continue;
    }
    eig_pack(eigs[l], d, bufs[l]);
    for (int q = 0; q < R; q++)
      if (q != me && all[(int64_t)q * L + l] &&
          MPI_Isend(bufs[l], (int)(eigs[l] ? len : 1), MPI_DOUBLE, q, TAG_EIG, r->comm.comm, &req[(*nreq)++]) !=
              MPI_SUCCESS)
        return re_err(RE_EMPI, "MPI_Isend of an eigendecomposition to rank %d failed", q);
  }
  return RE_OK;
}

/* Collective: the eigendecompositions the finalize hooks will read (eig_layers), each
 * made once by one of its readers and sent to the others, into eigs. The same bits as
 * made by the reader (one input block, one LAPACK call). */
static re_status share_eigs(runner *r, pass *p, re_eig **eigs) {
  int L = p->nmom, R = r->comm.size, me = r->comm.rank, nreq = 0, *owner = NULL;
  if (R < 2 || L < 1)
    return RE_OK;
  uint8_t *mine = NULL, *all = NULL;
  double *load = NULL, **bufs = NULL;
  MPI_Request *req = NULL;
  re_status st = re_calloc(L, 1, &mine);
  if (st == RE_OK)
    st = re_malloc((int64_t)R * L, 1, &all);
  if (st == RE_OK)
    st = re_malloc(L, sizeof(int), &owner);
  if (st == RE_OK)
    st = re_malloc(R, sizeof(double), &load);
  if (st == RE_OK)
    st = re_calloc(L, sizeof(double *), &bufs);
  if (st == RE_OK)
    st = re_malloc((int64_t)L * R + 1, sizeof(MPI_Request), &req);
  for (int a = 0; st == RE_OK && a < p->nan; a++)
    if (p->an[a].a->kind->eig_layers)
      p->an[a].a->kind->eig_layers(r, p, &p->an[a], mine);
  st = re_mpi_agree(r->comm.comm, st);
  if (st == RE_OK) {
    MPI_Allgather(mine, L, MPI_UNSIGNED_CHAR, all, L, MPI_UNSIGNED_CHAR, r->comm.comm);
    st = eig_owners(p, R, all, owner, load);
    for (int l = 0; st == RE_OK && l < L; l++)
      if (owner[l] == me && an_eig_of(p->mom, eigs, l) != RE_OK)
        re_err_clear(); /* sent as not made: each reader makes it and reports why */
    if (st == RE_OK)
      st = eig_buffers(r, p, all, owner, bufs);
    st = re_mpi_agree(r->comm.comm, st); /* every buffer exists before any message is posted */
    if (st == RE_OK)
      st = eig_post(r, p, eigs, all, owner, bufs, req, &nreq);
    if (MPI_Waitall(nreq, req, MPI_STATUSES_IGNORE) != MPI_SUCCESS && st == RE_OK)
      st = re_err(RE_EMPI, "exchanging eigendecompositions failed");
  }
  double got = 0, most = 0;
  for (int l = 0; st == RE_OK && l < L; l++)
    if (bufs[l] && owner[l] != me) {
      int64_t d = re_moments_dim(p->mom, l);
      got += 8.0 * (double)(3 + d + d * d) / 1048576.0;
      st = eig_unpack(bufs[l], d, re_moments_n(p->mom), &eigs[l]);
    }
  MPI_Allreduce(&got, &most, 1, MPI_DOUBLE, MPI_MAX, r->comm.comm);
  r->rep.eig_mb = most > r->rep.eig_mb ? most : r->rep.eig_mb;
  for (int l = 0; bufs && l < L; l++)
    free(bufs[l]);
  free(bufs);
  free(req);
  free(load);
  free(owner);
  free(all);
  free(mine);
  return re_mpi_agree(r->comm.comm, st);
}

/* Collective: the metrics of a pass. The co-moment analyses are spread over the
 * ranks; CKA (cheap from its P x P state) and the files are rank 0's. */
re_status run_pass_finalize(runner *r, pass *p) {
  re_eig **eigs = NULL;
  re_status st = RE_OK;
  if (p->nmom)
    st = re_calloc(p->nmom, sizeof(re_eig *), &eigs);
  st = re_mpi_agree(r->comm.comm, st);
  if (st == RE_OK)
    st = share_pass_moments(r, p);
  if (st == RE_OK)
    st = share_eigs(r, p, eigs);
  for (int a = 0; a < p->nan && st == RE_OK; a++) {
    an_run *ar = &p->an[a];
    if (!ar->a->kind->finalize)
      continue;
    st = ar->a->kind->finalize(r, p, ar, eigs);
    if (st != RE_OK)
      re_err_context(st, "analysis '%s': ", ar->a->name);
    st = re_mpi_agree(r->comm.comm, st);
  }
  for (int k = 0; eigs && k < p->nmom; k++)
    re_eig_destroy(&eigs[k]);
  free(eigs);
  return st;
}

/* ---- manifest ------------------------------------------------------------------ */

/* The program, the job, the ranks, the libraries and the timings. */
static void write_header(FILE *f, const runner *r, double t_total) {
  const job *j = r->plan.j;
  char mpi[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(mpi, &len);
  char *nl = strchr(mpi, '\n');
  if (nl)
    *nl = '\0';
  char *comma = strchr(mpi, ',');
  if (comma)
    *comma = '\0';
  fprintf(f, "{\n  \"repeval_version\": \"%s\",\n  \"git_revision\": \"%s\",\n  \"job\": ", REPEVAL_VERSION,
          REPEVAL_GIT_REVISION);
  re_json_string(f, j->path);
  fprintf(f, ",\n  \"name\": ");
  re_json_string(f, j->name);
  fprintf(f, ",\n  \"ranks\": %d,\n  \"libraries\": {\"mpi\": ", r->comm.size);
  re_json_string(f, mpi);
  fprintf(f, ", \"zstd\": \"%s\", \"libarchive\": ", ZSTD_versionString());
  re_json_string(f, archive_version_string());
  fprintf(f, ", \"libyaml\": \"%s\"},\n", yaml_get_version_string());
  /* embed_accumulate is rank 0's streaming time less its waiting for slower ranks, which
   * is reported apart (max, mean and min over the ranks: the imbalance), as is the reduction */
  fprintf(f, "  \"timings_s\": {\"load\": %.3f, \"embed_accumulate\": %.3f, \"wait\": %.3f, \"reduce\": %.3f, "
             "\"finalize\": %.3f, \"probes\": %.3f, \"total\": %.3f},\n",
          r->rep.t_load, r->rep.t_embed - r->rep.t_wait, r->rep.t_wait, r->rep.t_reduce, r->rep.t_final, r->rep.t_probe,
          t_total);
  fprintf(f, "  \"wait_s\": {\"max\": %.3f, \"mean\": %.3f, \"min\": %.3f},\n", r->rep.wait_max, r->rep.wait_mean,
          r->rep.wait_min);
  /* the streaming stage's layout: teams of G ranks, each member running 1/G of the checkpoints (run/run_work.c);
   * the chunks that went through a net, over all ranks and passes */
  int G = r->rep.ckpt_groups > 0 ? r->rep.ckpt_groups : 1;
  fprintf(f, "  \"work\": {\"checkpoint_groups\": %d, \"teams\": %d, \"forward_chunks\": %lld},\n", G,
          r->comm.size / G, (long long)r->rep.fwd_chunks);
  /* finalize: the most co-moment MB a rank received from rank 0 (the blocks its finalize reads), the state, and
   * the most MB of eigendecompositions a rank received from the ranks that made them */
  fprintf(f, "  \"finalize_share_mb\": {\"received_max\": %.1f, \"state\": %.1f, \"eig_received_max\": %.1f},\n",
          r->rep.share_mb, r->rep.state_mb, r->rep.eig_mb);
}

/* One entry of "inputs": its kind, the nkv pairs of key and value kv, the file's path,
 * size and checksum. */
static void write_input(FILE *f, int *first, const char *kind, const char *const *kv, int nkv, const char *path) {
  uint64_t sum = 0;
  int64_t bytes = 0;
  re_status st = out_checksum(path, &sum, &bytes);
  fprintf(f, "%s\n    {\"kind\": \"%s\"", *first ? "" : ",", kind);
  for (int k = 0; k < nkv; k++) {
    fprintf(f, ", \"%s\": ", kv[2 * k]);
    re_json_string(f, kv[2 * k + 1]);
  }
  fprintf(f, ", \"path\": ");
  re_json_string(f, path);
  fprintf(f, ", \"bytes\": %lld, \"fnv1a64\": \"%016llx\"%s}", (long long)bytes, (unsigned long long)sum,
          st == RE_OK ? "" : ", \"error\": \"unreadable\"");
  *first = 0;
}

/* "inputs": the datasets' files, the activations exports' manifests, the checkpoints. */
static void write_inputs(FILE *f, const job *j) {
  fprintf(f, "  \"inputs\": [");
  int first = 1;
  for (int d = 0; d < j->ndatasets; d++)
    for (int k = 0; k < j->datasets[d].nfiles; k++) {
      const char *kv[] = {"name", j->datasets[d].name};
      write_input(f, &first, "dataset", kv, 1, j->datasets[d].files[k]);
    }
  for (int m = 0; m < j->nmodels; m++)
    for (int c = 0; c < j->models[m].nckpts && j->models[m].activations; c++)
      for (int d = 0; d < j->ndatasets; d++) { /* an export per checkpoint and dataset: its manifest */
        char mf[8192];
        snprintf(mf, sizeof mf, "%s/%s/%s", j->models[m].ckpts[c].path, j->datasets[d].name, RE_ACT_MANIFEST);
        const char *kv[] = {"model", j->models[m].name, "label", j->models[m].ckpts[c].label, "dataset",
                            j->datasets[d].name};
        write_input(f, &first, "activations", kv, 3, mf);
      }
  for (int m = 0; m < j->nmodels; m++)
    for (int c = 0; c < j->models[m].nckpts && !j->models[m].activations; c++) {
      const char *kv[] = {"model", j->models[m].name, "label", j->models[m].ckpts[c].label};
      write_input(f, &first, "checkpoint", kv, 2, j->models[m].ckpts[c].path);
    }
  fprintf(f, "\n  ],\n");
}

/* "models" and "analyses": what the job set. */
static void write_models_analyses(FILE *f, const job *j) {
  fprintf(f, "  \"models\": [");
  for (int m = 0; m < j->nmodels; m++) {
    fprintf(f, "%s{\"name\": ", m ? ", " : "");
    re_json_string(f, j->models[m].name);
    if (j->models[m].activations) {
      fprintf(f, ", \"arch\": null, \"activations\": true");
    } else {
      fprintf(f, ", \"arch\": ");
      re_json_string(f, j->models[m].arch);
    }
    fprintf(f, ", \"checkpoints\": %d, \"layers\": [", j->models[m].nckpts);
    for (int l = 0; l < j->models[m].nlayers; l++) {
      fprintf(f, "%s", l ? ", " : "");
      char buf[600];
      snprintf(buf, sizeof buf, "%s:%s", j->models[m].layers[l].name, run_mode_name(j->models[m].layers[l].mode));
      re_json_string(f, buf);
    }
    fprintf(f, "]}");
  }
  fprintf(f, "],\n  \"analyses\": [");
  for (int a = 0; a < j->nanalyses; a++) {
    const job_analysis *an = &j->analyses[a];
    fprintf(f, "%s{\"name\": ", a ? ", " : "");
    re_json_string(f, an->name);
    fprintf(f, ", \"type\": \"%s\"", an->kind->type);
    if (an->kind->manifest)
      an->kind->manifest(f, an);
    if (an->npatterns) {
      fprintf(f, ", \"checkpoints\": [");
      for (int k = 0; k < an->npatterns; k++) {
        fprintf(f, "%s", k ? ", " : "");
        re_json_string(f, an->ckpt_patterns[k]);
      }
      fprintf(f, "]");
    }
    fprintf(f, "}");
  }
  fprintf(f, "],\n");
}

/* The mode, the cache's use, the samples, undefined values and warnings. */
static void write_report(FILE *f, const runner *r) {
  static const char *modes[] = {"run", "part", "merge", "finalize"};
  fprintf(f, "  \"mode\": \"%s\",\n  \"resumed\": %s,\n", modes[r->plan.mode], r->rep.resumed ? "true" : "false");
  fprintf(f, "  \"cache\": {\"dir\": ");
  if (r->plan.j->cache_dir)
    re_json_string(f, r->plan.j->cache_dir);
  else
    fprintf(f, "null");
  fprintf(f, ", \"hits\": %lld, \"writes\": %lld, \"rejected\": %lld},\n", (long long)r->rep.cache_hits,
          (long long)r->rep.cache_writes, (long long)r->rep.cache_bad);
  fprintf(f, "  \"samples\": %lld,\n  \"undefined_values\": %d,\n  \"warnings\": [", (long long)r->rep.total_samples,
          r->rep.nundefined);
  for (int w = 0; w < r->rep.nwarnings && w < RUN_MAX_WARNINGS; w++) {
    fprintf(f, "%s", w ? ", " : "");
    re_json_string(f, r->rep.warnings[w]);
  }
  if (r->rep.nwarnings > RUN_MAX_WARNINGS)
    fprintf(f, ", \"... %d more\"", r->rep.nwarnings - RUN_MAX_WARNINGS);
  fprintf(f, "],\n");
}

/* "output": what this folder holds, so that a later run replaces exactly that (outdir.h). */
static re_status write_output_files(FILE *f, const runner *r) {
  char **files = NULL;
  int nfiles = 0;
  re_status st = out_list_files(r->plan.partial, &files, &nfiles);
  fprintf(f, "  \"output\": {\"marker\": \"%s\", \"files\": [\"manifest.json\"", OUTDIR_MARKER);
  if (r->plan.j->bundle)
    fprintf(f, ", \"results.tar.zst\"");
  for (int k = 0; k < nfiles; k++) {
    if (strcmp(files[k], "manifest.json") && strcmp(files[k], OUTDIR_PARTIAL_MARKER) && !strstr(files[k], ".tmp")) {
      fprintf(f, ", ");
      re_json_string(f, files[k]);
    }
    free(files[k]);
  }
  free(files);
  fprintf(f, "]}\n}\n");
  return st;
}

re_status run_write_manifest(runner *r, double t_total) {
  char path[4400];
  FILE *f;
  RE_TRY(run_create_file(r, &f, path, sizeof path, "manifest.json"));
  write_header(f, r, t_total);
  write_inputs(f, r->plan.j);
  write_models_analyses(f, r->plan.j);
  write_report(f, r);
  re_status st = write_output_files(f, r);
  if (fclose(f) != 0 && st == RE_OK)
    st = re_err(RE_EIO, "%s: write failed: %s", path, strerror(errno));
  return st;
}
