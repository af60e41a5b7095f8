/* repeval run, merge and finalize: one driver per mode over shared phases.
 *
 *   setup      job, output folder rules, models and checkpoints, resume fingerprint,
 *              the output's lock and partial folder, the embedding cache
 *   per dataset pass:
 *     plan       nets, taps, the analyses' accumulators (run_pass_setup)
 *     statistics how the mode gets the reduced accumulators of the pass:
 *                  run       saved reduced state, or stream + reduce (+ save)
 *                  part      stream + reduce into this part's node list, written out
 *                  merge     the parts' node lists joined into the canonical root
 *                  finalize  the stats file of an earlier run
 *     finalize   every analysis' metrics (collective), the stats file, the tap table
 *   after passes  the kinds that work once every pass is done (probes)
 *   write      metrics.csv, job.yaml, manifest, bundle, and the swap into place
 *              (a part only keeps its statistics)
 *
 * Every rank runs the same phases; collective steps agree on errors so that a
 * failing rank stops all of them. */
#include <cblas.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exit_codes.h"
#include "out/path.h"
#include "mpi/mpi_reduce.h"
#include "mpi/tags.h"
#include "out/outdir.h"
#include "out/output.h"
#include "out/progress.h"
#include "repeval/atomic.h"
#include "run/analysis.h"
#include "run/driver.h"
#include "run/job.h"

volatile sig_atomic_t run_stop_signal = 0;

static void on_signal(int sig) { run_stop_signal = sig; }

/* SIGTERM (Slurm's time limit, scancel), SIGUSR1 (--signal=USR1@T warnings) and
 * SIGINT stop the run after the current batch with its state saved. */
static void install_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGUSR1, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
}

/* ---- setup ------------------------------------------------------------------------ */

/* Every input path of the job: the output may be none of them, nor hold or lie in one. */
static re_status job_inputs(const job *j, char ***out, int *n) {
  int cap = 1, k = 0;
  for (int d = 0; d < j->ndatasets; d++)
    cap += j->datasets[d].nfiles;
  for (int m = 0; m < j->nmodels; m++)
    cap += 1 + j->models[m].nckpts;
  RE_TRY(re_calloc(cap, sizeof(char *), out));
  (*out)[k++] = j->path;
  for (int d = 0; d < j->ndatasets; d++)
    for (int f = 0; f < j->datasets[d].nfiles; f++)
      (*out)[k++] = j->datasets[d].files[f];
  for (int m = 0; m < j->nmodels; m++) {
    struct stat sb;
    if (j->models[m].arch && stat(j->models[m].arch, &sb) == 0) /* a model file, not a preset name */
      (*out)[k++] = j->models[m].arch;
    for (int c = 0; c < j->models[m].nckpts; c++)
      (*out)[k++] = j->models[m].ckpts[c].path;
  }
  *n = k;
  return RE_OK;
}

/* Rank 0 resolves the output folder once (normalised, a link followed) and applies the
 * rules of outdir.h before any compute; every rank then uses that real path. */
static re_status settle_output(runner *r, const char *given, int check_replace) {
  job *j = r->plan.j;
  char *real = NULL, **inputs = NULL;
  int ninputs = 0;
  re_status st = RE_OK;
  if (r->comm.rank == 0) {
    st = outdir_resolve(given, &real);
    if (st == RE_OK)
      st = job_inputs(j, &inputs, &ninputs);
    if (st == RE_OK)
      st = outdir_check_inputs(real, given, inputs, ninputs);
    if (st == RE_OK && check_replace)
      st = outdir_check_replaceable(real, given);
    free(inputs);
  }
  st = re_mpi_agree(r->comm.comm, st);
  int len = st == RE_OK && real ? (int)strlen(real) + 1 : 0;
  MPI_Bcast(&len, 1, MPI_INT, 0, r->comm.comm);
  if (st == RE_OK && r->comm.rank != 0)
    st = re_malloc(len, 1, &real);
  st = re_mpi_agree(r->comm.comm, st);
  if (st == RE_OK)
    MPI_Bcast(real, len, MPI_CHAR, 0, r->comm.comm);
  if (st == RE_OK) {
    free(j->out_dir);
    j->out_dir = real;
    real = NULL;
    if (j->cache_default) { /* the cache follows the output */
      char buf[PATH_MAX + 16];
      free(j->cache_dir);
      j->cache_dir = NULL;
      st = re_path_join(buf, sizeof buf, "%s.cache", j->out_dir);
      if (st == RE_OK)
        st = re_strdup(buf, &j->cache_dir);
    }
  }
  free(real);
  return re_mpi_agree(r->comm.comm, st);
}

/* Rank 0: the parent of the output, stale partial folders swept, our partial folder,
 * and the metrics buffer. */
static re_status open_output(runner *r) {
  char *parent = NULL;
  re_status st = re_strdup(r->plan.j->out_dir, &parent);
  char *slash = st == RE_OK ? strrchr(parent, '/') : NULL;
  if (slash) {
    *slash = '\0';
    st = re_mkdir_p(parent);
  }
  free(parent);
  if (st == RE_OK)
    outdir_sweep_partials(r->plan.j->out_dir, "");
  if (st == RE_OK)
    st = outdir_partial_create(r->plan.j->out_dir, r->plan.partial, sizeof r->plan.partial);
  if (st != RE_OK)
    return st;
  r->rep.metrics = open_memstream(&r->rep.metrics_buf, &r->rep.metrics_len);
  if (!r->rep.metrics)
    return re_err(RE_ENOMEM, "metrics buffer");
  fprintf(r->rep.metrics,
          "analysis,metric,model_a,checkpoint_a,layer_a,model_b,checkpoint_b,layer_b,dataset,param,value,status,"
          "se,ci_low,ci_high,null_mean,null_q95,p_value\n");
  return RE_OK;
}

/* Collective: everything before the first pass. */
static re_status setup(runner *r, const run_args *a, const char *out_given, outdir_lock *lock) {
  re_status st = re_mpi_agree(r->comm.comm, job_load(a->job_path, &r->plan.j));
  if (st == RE_OK)
    st = settle_output(r, out_given ? out_given : r->plan.j->out_dir, r->plan.mode != RUN_MODE_PART);
  if (st == RE_OK)
    st = run_load_models(r);
  if (st == RE_OK)
    st = run_state_init(r);
  int nd = r->plan.j ? r->plan.j->ndatasets : 0; /* per dataset: what its pass was (probes read it) */
  if (st == RE_OK)
    st = re_calloc(nd, sizeof(int64_t), &r->plan.ds_n);
  if (st == RE_OK)
    st = re_calloc(nd, sizeof(int64_t), &r->plan.ds_chunk);
  if (st == RE_OK)
    st = re_calloc(nd, sizeof(uint64_t), &r->plan.ds_key);
  st = re_mpi_agree(r->comm.comm, st);
  if (st == RE_OK) /* activations models: the dataset files' digests, checked against the exports */
    st = run_act_init(r);
  if (st != RE_OK || a->check_only)
    return st;
  if (r->comm.rank == 0) /* one run per output at a time */
    st = outdir_lock_take(r->plan.state_dir, out_given ? out_given : r->plan.j->out_dir, lock);
  if (st == RE_OK && r->comm.rank == 0)
    st = open_output(r);
  st = re_mpi_agree(r->comm.comm, st);
  if (st == RE_OK && !r->plan.j->cache_dir) { /* the run's own cache: probes' rows, streamed checkpoints' taps */
    if (r->plan.mode == RUN_MODE_PART || r->plan.mode == RUN_MODE_MERGE)
      st = re_path_join(r->plan.probe_cache_dir, sizeof r->plan.probe_cache_dir, "%s.parts/probe-cache",
                        r->plan.j->out_dir);
    else
      st = re_path_join(r->plan.probe_cache_dir, sizeof r->plan.probe_cache_dir, "%s/probe-cache", r->plan.state_dir);
  }
  if (st == RE_OK)
    st = run_cache_init(r);
  return re_mpi_agree(r->comm.comm, st);
}

/* ---- the statistics of a pass, by mode -------------------------------------------- */

/* <out>.parts/part-I-of-N/<dataset>.stats */
static re_status part_stats_path(const runner *r, int i, int n, const char *dataset, char *buf, size_t cap) {
  return re_path_join(buf, cap, "%s.parts/part-%d-of-%d/%s.stats", r->plan.j->out_dir, i, n, dataset);
}

/* Number of parts N of an array job, from the files present (part-0-of-N). */
static re_status find_nparts(const runner *r, const char *dataset, int *n) {
  char path[4400];
  for (int k = 1; k <= 100000; k++) {
    RE_TRY(part_stats_path(r, 0, k, dataset, path, sizeof path));
    if (access(path, R_OK) == 0) {
      *n = k;
      return RE_OK;
    }
  }
  return re_err(RE_EIO, "no statistics of array parts for dataset '%s' in %s.parts (expected part-0-of-N/%s.stats)",
                dataset, r->plan.j->out_dir, dataset);
}

/* Collective: stream this rank's batches, reduce (to rank 0's accumulators, or to
 * rank 0's node list `part`), with the timings. */
static re_status stream_and_reduce(runner *r, pass *p, tree *part) {
  double t1 = progress_now();
  re_status st = run_pass_stream(r, p);
  double tw = progress_now();
  st = re_mpi_agree(r->comm.comm, st);
  r->rep.t_wait += progress_now() - tw;
  long long mine = (long long)r->rep.samples_seen, all = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_LONG_LONG, MPI_SUM, r->comm.comm);
  r->rep.pass_samples = all;
  r->rep.samples_seen = 0;
  double t2 = progress_now();
  r->rep.t_embed += t2 - t1;
  if (st == RE_OK)
    st = run_pass_reduce(r, p, part);
  r->rep.t_reduce += progress_now() - t2;
  return st;
}

/* run: the reduced statistics saved by an interrupted run, or stream them (and save). */
static re_status stats_run(runner *r, pass *p, int fresh) {
  int found = 0;
  re_status st = fresh ? RE_OK : run_state_load_reduced(r, p, &found);
  if (st != RE_OK || found)
    return st;
  st = stream_and_reduce(r, p, NULL);
  if (st == RE_OK && r->comm.rank == 0)
    st = run_state_save_reduced(r, p);
  return re_mpi_agree(r->comm.comm, st);
}

/* part: this part's node list, to OUT.parts/part-I-of-N/<dataset>.stats; a part that
 * already finished the dataset keeps its file. *done: nothing more for this pass. */
static re_status stats_part(runner *r, pass *p, int fresh) {
  char path[4400];
  re_status st = part_stats_path(r, r->plan.part, r->plan.nparts, r->plan.j->datasets[p->d].name, path, sizeof path);
  RE_TRY(re_mpi_agree(r->comm.comm, st));
  int done = 0;
  if (!fresh && r->comm.rank == 0 && access(path, R_OK) == 0) {
    tree t;
    int64_t samples = 0;
    done = run_state_read_tree_from(r, p, path, &t, &samples) == RE_OK;
    tree_free(&t);
    r->rep.pass_samples = samples;
    re_err_clear();
  }
  MPI_Bcast(&done, 1, MPI_INT, 0, r->comm.comm);
  if (done)
    return RE_OK;
  tree part;
  tree_init(&part, NULL);
  st = stream_and_reduce(r, p, &part);
  if (st == RE_OK && r->comm.rank == 0)
    st = run_state_write_tree_to(r, p, &part, path);
  tree_free(&part);
  return re_mpi_agree(r->comm.comm, st);
}

/* merge (rank 0): the parts' node lists in part order, joined into the canonical root. */
static re_status stats_merge(runner *r, pass *p) {
  const char *ds = r->plan.j->datasets[p->d].name;
  char path[4400];
  int n = 0;
  r->rep.pass_samples = 0;
  RE_TRY(find_nparts(r, ds, &n));
  tree all;
  tree_init(&all, &p->acc);
  re_status st = RE_OK;
  for (int i = 0; i < n && st == RE_OK; i++) {
    st = part_stats_path(r, i, n, ds, path, sizeof path);
    if (st != RE_OK)
      break;
    if (access(path, R_OK) != 0) {
      st = re_err(RE_EIO, "%s: missing: part %d of %d has not finished (rerun it with --part %d/%d)", path, i, n, i,
                  n);
      break;
    }
    tree t;
    int64_t samples = 0;
    st = run_state_read_tree_from(r, p, path, &t, &samples);
    for (int k = 0; st == RE_OK && k < t.n; k++) {
      double *buf = t.nodes[k].buf; /* in memory: moved; spilled: read into a new buffer */
      const double *d = NULL;
      t.nodes[k].buf = NULL;
      if (!buf) {
        st = re_malloc(t.len > 0 ? t.len : 1, sizeof(double), &buf);
        if (st == RE_OK)
          st = tree_node_data(&t, k, buf, &d);
        if (st != RE_OK) {
          free(buf);
          break;
        }
      }
      st = tree_append(&all, t.nodes[k].start, t.nodes[k].height, buf);
    }
    tree_free(&t);
    r->rep.pass_samples += samples;
    if (st == RE_OK)
      st = tree_collapse(&all);
  }
  if (st == RE_OK)
    st = tree_root(&all, (p->n + p->sb - 1) / p->sb);
  tree_free(&all);
  return st;
}

/* finalize (rank 0): the stats file of the earlier run in the output folder. */
static re_status stats_finalize(runner *r, pass *p) {
  char path[4400];
  r->rep.pass_samples = 0;
  RE_TRY(re_path_join(path, sizeof path, "%s/stats/%s.stats", r->plan.j->out_dir, r->plan.j->datasets[p->d].name));
  return run_state_load_stats(r, p, path);
}

static re_status pass_statistics(runner *r, pass *p, int fresh) {
  switch (r->plan.mode) {
  case RUN_MODE_PART: return stats_part(r, p, fresh);
  case RUN_MODE_MERGE: return re_mpi_agree(r->comm.comm, r->comm.rank == 0 ? stats_merge(r, p) : RE_OK);
  case RUN_MODE_FINALIZE: return re_mpi_agree(r->comm.comm, r->comm.rank == 0 ? stats_finalize(r, p) : RE_OK);
  default: return stats_run(r, p, fresh);
  }
}

/* ---- per pass -------------------------------------------------------------------------- */

/* --check: what the pass would do. */
static void print_plan(const runner *r, const pass *p) {
  const job *j = r->plan.j;
  const char *ds = j->datasets[p->d].name;
  int nafter = 0;
  for (int a = 0; a < j->nanalyses; a++)
    nafter += j->analyses[a].kind->after_passes && an_uses_dataset(&j->analyses[a], ds);
  printf("dataset %s: %lld samples in %lld batches of %lld, %d taps, %d analyses%s", ds, (long long)p->n,
         (long long)((p->n + p->sb - 1) / p->sb), (long long)p->sb, r->plan.ntaps, p->nan - nafter,
         nafter ? "" : "\n");
  if (nafter)
    printf(" + %d probe%s\n", nafter, nafter == 1 ? "" : "s");
}

/* Collective: every analysis' metrics of the pass, its stats file and its tap table. */
static re_status finalize_pass(runner *r, pass *p) {
  double t = progress_now();
  re_status st = run_pass_finalize(r, p);
  char path[4400], file[300];
  if (st == RE_OK && r->comm.rank == 0) { /* the reduced statistics go into the output, for finalize */
    st = re_path_join(path, sizeof path, "%s/stats/%s.stats", r->plan.partial, r->plan.j->datasets[p->d].name);
    if (st == RE_OK)
      st = run_state_write_reduced_to(r, p, path);
  }
  if (st == RE_OK && r->comm.rank == 0) {
    st = re_path_join(file, sizeof file, "taps_%s.csv", r->plan.j->datasets[p->d].name);
    if (st == RE_OK)
      st = run_write_taps_csv(r, file, NULL, r->plan.ntaps);
  }
  r->rep.t_final += progress_now() - t;
  return re_mpi_agree(r->comm.comm, st);
}

/* Collective: one pass over dataset d. */
static re_status run_dataset(runner *r, int d, const run_args *a) {
  pass p;
  memset(&p, 0, sizeof p);
  p.d = d;
  r->rep.samples_seen = 0;
  r->rep.pass_samples = 0;
  double t0 = progress_now();
  re_status st = re_mpi_agree(r->comm.comm, run_pass_setup(r, &p));
  r->rep.t_load += progress_now() - t0; /* the pass's plan: nets, taps, accumulators, RBF bandwidths */
  if (st == RE_OK && a->check_only) {
    if (r->comm.rank == 0)
      print_plan(r, &p);
  } else if (st == RE_OK) {
    st = pass_statistics(r, &p, a->fresh);
    r->rep.total_samples += r->rep.pass_samples;
    if (st == RE_OK && r->plan.mode != RUN_MODE_PART)
      st = finalize_pass(r, &p);
  }
  run_pass_free(r, &p);
  return st;
}

/* Collective: the kinds that work once every pass is done (probes). */
static re_status after_passes(runner *r) {
  const job *j = r->plan.j;
  re_status st = RE_OK;
  for (int k = 0; k < an_kind_count() && st == RE_OK; k++) {
    const an_kind *kind = an_kind_at(k);
    int used = 0;
    for (int a = 0; a < j->nanalyses; a++)
      used |= j->analyses[a].kind == kind;
    if (!used || !kind->after_passes)
      continue;
    if (r->plan.mode == RUN_MODE_FINALIZE && !j->cache_dir && !kind->after_passes_reads_checkpoints) {
      run_warn(r, "%ss are not recomputed by finalize without the job's embedding cache ('cache:'); their rows are "
                  "missing from this output",
               kind->type);
      continue;
    }
    double t = progress_now();
    st = re_mpi_agree(r->comm.comm, kind->after_passes(r));
    r->rep.t_probe += progress_now() - t;
  }
  return st;
}

/* ---- writing the output ------------------------------------------------------------------ */

/* The job file as it was run goes into the results (job.yaml), beside the manifest. */
static re_status copy_job_file(runner *r) {
  char dst[4300];
  RE_TRY(re_path_join(dst, sizeof dst, "%s/job.yaml", r->plan.partial));
  FILE *in;
  RE_TRY(re_fopen_regular(r->plan.j->path, &in));
  re_atomic at;
  re_status st = re_atomic_open(dst, &at);
  char buf[65536];
  size_t n;
  while (st == RE_OK && (n = fread(buf, 1, sizeof buf, in)) > 0)
    st = re_atomic_write(&at, buf, (int64_t)n);
  fclose(in);
  if (st == RE_OK)
    st = re_atomic_commit(&at);
  else
    re_atomic_abort(&at);
  return st;
}

static re_status write_metrics(runner *r) {
  char path[4200];
  RE_TRY(re_path_join(path, sizeof path, "%s/metrics.csv", r->plan.partial));
  re_atomic at;
  RE_TRY(re_atomic_open(path, &at));
  re_status st = re_atomic_write(&at, r->rep.metrics_buf, (int64_t)r->rep.metrics_len);
  if (st == RE_OK)
    return re_atomic_commit(&at);
  re_atomic_abort(&at);
  return st;
}

/* Rank 0: the files of the output, then the swap into place; a failure removes our
 * partial folder and leaves the previous results as they were. */
static re_status write_output(runner *r, re_status st, double t0, const char *out_given) {
  if (r->rep.metrics)
    fclose(r->rep.metrics);
  r->rep.metrics = NULL;
  if (st == RE_OK)
    st = write_metrics(r);
  if (st == RE_OK)
    st = copy_job_file(r);
  if (st == RE_OK)
    st = run_write_manifest(r, progress_now() - t0);
  if (st == RE_OK && r->plan.j->bundle) {
    char path[4200];
    st = re_path_join(path, sizeof path, "%s/results.tar.zst", r->plan.partial);
    if (st == RE_OK)
      st = out_bundle(r->plan.partial, path, r->plan.j->bundle_stats ? NULL : "stats");
  }
  if (st == RE_OK) {
    outdir_partial_unmark(r->plan.partial);
    st = out_commit_dir(r->plan.partial, r->plan.j->out_dir);
  }
  if (st == RE_OK)
    run_state_clear(r);
  if (st != RE_OK && r->plan.partial[0])
    out_remove_tree(r->plan.partial);
  if (st == RE_OK && !r->plan.quiet)
    fprintf(stderr, "repeval: results in %s (%d undefined value%s, %d warning%s)\n", out_given, r->rep.nundefined,
            r->rep.nundefined == 1 ? "" : "s", r->rep.nwarnings, r->rep.nwarnings == 1 ? "" : "s");
  return st;
}

/* Rank 0 of a part: its statistics are its result; the partial folder goes. */
static void finish_part(runner *r, re_status st, const char *job_path) {
  if (r->rep.metrics)
    fclose(r->rep.metrics);
  r->rep.metrics = NULL;
  out_remove_tree(r->plan.partial);
  if (st != RE_OK)
    return;
  run_state_clear(r);
  if (!r->plan.quiet)
    fprintf(stderr, "repeval: part %d of %d done; statistics in %s.parts (combine with: repeval merge %s)\n",
            r->plan.part, r->plan.nparts, r->plan.j->out_dir, job_path);
}

/* Collective. One message for a failed run, printed by rank 0: the error of the
 * lowest rank that failed by itself (the others stopped because of it), with its
 * rank when there are several. Every rank returns the exit code. */
static int report_failure(const runner *r, re_status st) {
  int own = st != RE_OK && st != RE_EMPI, first = 0, nfail = 0, mine = own ? r->comm.rank : r->comm.size;
  MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, r->comm.comm);
  MPI_Allreduce(&own, &nfail, 1, MPI_INT, MPI_SUM, r->comm.comm);
  int any = st != RE_OK, bad = 0;
  MPI_Allreduce(&any, &bad, 1, MPI_INT, MPI_MAX, r->comm.comm);
  if (!bad)
    return RE_EXIT_OK;
  char msg[2048];
  snprintf(msg, sizeof msg, "%s", *re_errmsg() ? re_errmsg() : re_status_str(st));
  if (first < r->comm.size && first != 0) { /* the first failing rank tells rank 0 */
    if (r->comm.rank == first)
      MPI_Send(msg, (int)sizeof msg, MPI_CHAR, 0, TAG_FAILURE_MESSAGE, r->comm.comm);
    else if (r->comm.rank == 0)
      MPI_Recv(msg, (int)sizeof msg, MPI_CHAR, first, TAG_FAILURE_MESSAGE, r->comm.comm, MPI_STATUS_IGNORE);
    msg[sizeof msg - 1] = '\0';
  }
  if (r->comm.rank == 0) {
    if (r->comm.size > 1 && first < r->comm.size && nfail < r->comm.size)
      fprintf(stderr, "repeval: error on rank %d of %d: %s\n", first, r->comm.size, msg);
    else
      fprintf(stderr, "repeval: error: %s\n", msg);
    if (nfail > 1 && nfail < r->comm.size)
      fprintf(stderr, "repeval: %d other ranks failed too\n", nfail - 1);
  }
  return RE_EXIT_ERROR;
}

/* Collective: the counters and warnings of every rank, for the manifest. */
static void gather_counts(runner *r) {
  long long c[4] = {(long long)r->rep.cache_hits, (long long)r->rep.cache_writes, (long long)r->rep.cache_bad,
                    (long long)r->rep.fwd_chunks},
            call[4] = {0};
  MPI_Reduce(c, call, 4, MPI_LONG_LONG, MPI_SUM, 0, r->comm.comm);
  r->rep.cache_hits = call[0], r->rep.cache_writes = call[1], r->rep.cache_bad = call[2], r->rep.fwd_chunks = call[3];
  double w[2] = {r->rep.t_wait, -r->rep.t_wait}, wmax[2] = {0, 0}, wsum = 0;
  MPI_Reduce(w, wmax, 2, MPI_DOUBLE, MPI_MAX, 0, r->comm.comm); /* max and -min */
  MPI_Reduce(&r->rep.t_wait, &wsum, 1, MPI_DOUBLE, MPI_SUM, 0, r->comm.comm);
  r->rep.wait_max = wmax[0], r->rep.wait_min = -wmax[1], r->rep.wait_mean = wsum / r->comm.size;
  run_gather_warnings(r);
}

static void free_runner(runner *r) {
  free(r->rep.metrics_buf);
  if (r->plan.j)
    run_free_models(r);
  free(r->plan.taps);
  free(r->plan.ds_n);
  free(r->plan.ds_chunk);
  free(r->plan.ds_key);
  free(r->plan.ckpt_key);
  free(r->plan.act_sha);
  job_free(&r->plan.j);
}

int run_execute(const run_args *a) {
  runner r;
  memset(&r, 0, sizeof r);
  /* OpenBLAS partitions products by thread count, which changes float32 rounding:
   * a fixed count per rank keeps results independent of the number of ranks. */
  int fixed = a->threads_given || (!getenv("OPENBLAS_NUM_THREADS") && !getenv("OMP_NUM_THREADS"));
  if (fixed)
    openblas_set_num_threads(a->threads);
  r.plan.threads = fixed ? a->threads : openblas_get_num_threads();
  r.plan.quiet = a->quiet;
  r.plan.checkpoint_every = a->checkpoint_every;
  r.plan.mode = a->nparts > 0 ? RUN_MODE_PART : a->mode;
  r.plan.part = a->part;
  r.plan.nparts = a->nparts;
  install_signals();
  if (comm_dup(&r.comm, MPI_COMM_WORLD) != RE_OK) {
    fprintf(stderr, "repeval: error: %s\n", re_errmsg());
    return RE_EXIT_ERROR;
  }
  if (r.comm.size > 1)
    re_log_set_rank(r.comm.rank);
  double t0 = progress_now();
  outdir_lock lock = {-1, ""};
  re_status st = setup(&r, a, a->out, &lock);
  const char *out_given = a->out ? a->out : r.plan.j ? r.plan.j->out_dir : "";
  r.rep.t_load = progress_now() - t0;
  for (int d = 0; st == RE_OK && d < r.plan.j->ndatasets; d++) {
    int used = 0; /* one pass per dataset that some analysis uses */
    for (int k = 0; k < r.plan.j->nanalyses; k++)
      used |= an_uses_dataset(&r.plan.j->analyses[k], r.plan.j->datasets[d].name);
    if (used)
      st = run_dataset(&r, d, a);
  }
  if (st == RE_OK && !a->check_only && r.plan.mode != RUN_MODE_PART)
    st = after_passes(&r);
  if (r.plan.j && !a->check_only)
    gather_counts(&r);
  if (a->check_only && st == RE_OK && r.comm.rank == 0)
    printf("%s: the job is valid (%d model%s, %d analys%s)\n", a->job_path, r.plan.j->nmodels,
           r.plan.j->nmodels == 1 ? "" : "s", r.plan.j->nanalyses, r.plan.j->nanalyses == 1 ? "is" : "es");
  if (!a->check_only && r.comm.rank == 0 && r.plan.partial[0]) {
    if (r.plan.mode == RUN_MODE_PART)
      finish_part(&r, st, a->job_path);
    else
      st = write_output(&r, st, t0, out_given);
  }
  int rc;
  if (st == RE_EINTERRUPTED) {
    if (r.comm.rank == 0)
      fprintf(stderr, "repeval: %s\nrepeval: run the same command again to resume (exit code %d)\n", re_errmsg(),
              RE_EXIT_INTERRUPTED);
    rc = RE_EXIT_INTERRUPTED;
  } else {
    rc = report_failure(&r, st);
  }
  outdir_lock_release(&lock);
  free_runner(&r);
  int bad = rc != RE_EXIT_OK, any = 0;
  MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, r.comm.comm);
  comm_free(&r.comm);
  return rc != RE_EXIT_OK ? rc : (any ? RE_EXIT_ERROR : RE_EXIT_OK);
}
