/* repeval run job.yaml: plan, shard, embed, accumulate, reduce, finalize.
 *
 * Every rank parses and validates the job, loads every checkpoint of every model
 * (weights stay resident; activation buffers are shared between nets), and
 * streams its contiguous range of batches (batches are cut by global sample
 * index) through every net. Each tap feeds the minibatch HSIC accumulators of
 * the CKA analyses and one shared co-moment accumulator for exact CKA, the CCA
 * family and spectra. Accumulators are reduced to rank 0 in a fixed order;
 * rank 0 computes the metrics and writes the output folder atomically. */
#include <limits.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cblas.h>

#include "cli/cli.h"
#include "mpi/mpi_reduce.h"
#include "out/outdir.h"
#include "out/output.h"
#include "out/progress.h"
#include "repeval/atomic.h"
#include "run/run.h"

static void help(int mode) {
  if (mode == RUN_MODE_MERGE) {
    printf("usage: repeval merge JOB.yaml [--out DIR] [--quiet]\n"
           "\n"
           "Combine the statistics of an array job's parts (each run with\n"
           "`repeval run JOB.yaml --part I/N`, found in OUT.parts/) in part order, compute\n"
           "every metric and write the output folder, exactly as one big run would.\n");
    return;
  }
  if (mode == RUN_MODE_FINALIZE) {
    printf("usage: repeval finalize JOB.yaml [--out DIR] [--quiet]\n"
           "\n"
           "Recompute every metric from the reduced statistics saved in OUT/stats/ by an\n"
           "earlier run, without forward passes: change finalize-time settings in the job\n"
           "(CCA variance, ridge, collapse fraction, pairs of the same taps) and rerun.\n"
           "The output folder is replaced atomically.\n");
    return;
  }
  printf("usage: repeval run JOB.yaml [options]      (under mpiexec / srun for several ranks)\n"
         "\n"
         "Run an evaluation job: every checkpoint of every model over the job's datasets,\n"
         "CKA / CCA-family / spectrum analyses, results in the job's output folder\n"
         "(metrics.csv, *.npy matrices, manifest.json, results.tar.zst). The job file\n"
         "format is described in docs/job-spec.md.\n"
         "\n"
         "Options:\n"
         "  --out DIR     output folder (overrides output.dir of the job)\n"
         "  --threads T   BLAS threads per rank (default 1, or OPENBLAS_NUM_THREADS if set).\n"
         "                Results agree across rank counts for a fixed count per rank.\n"
         "  --check       validate the job (files, models, checkpoints) and exit\n"
         "  --checkpoint-every S  save a resume snapshot every S seconds (default 600; 0: only\n"
         "                when stopped by SIGTERM/SIGUSR1/SIGINT, which exit with code 75)\n"
         "  --fresh       ignore saved state in OUT.state and start from the beginning\n"
         "  --part I/N    stream only part I (0-based) of N of the batches and save its\n"
         "                statistics in OUT.parts/ (Slurm arrays); then `repeval merge`\n"
         "  --quiet       no progress output\n"
         "  --verbose     log at info level\n"
         "\n"
         "A run that is stopped resumes where it was when the same command is run again.\n"
         "Environment: REPEVAL_MAX_STATS_MB (co-moment memory budget, default %d),\n"
         "REPEVAL_CHECKPOINT_EVERY (default for --checkpoint-every).\n",
         RUN_DEFAULT_BUDGET_MB);
}

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

/* <out>.parts/part-I-of-N/<dataset>.stats */
static void part_stats_path(const runner *r, int i, int n, const char *dataset, char *buf, size_t cap) {
  snprintf(buf, cap, "%s.parts/part-%d-of-%d/%s.stats", r->j->out_dir, i, n, dataset);
}

/* Number of parts N of an array job, from the files present (part-0-of-N). */
static re_status find_nparts(const runner *r, const char *dataset, int *n) {
  char path[4400];
  for (int k = 1; k <= 100000; k++) {
    part_stats_path(r, 0, k, dataset, path, sizeof path);
    if (access(path, R_OK) == 0) {
      *n = k;
      return RE_OK;
    }
  }
  return re_err(RE_EIO, "no statistics of array parts for dataset '%s' in %s.parts (expected part-0-of-N/%s.stats)",
                dataset, r->j->out_dir, dataset);
}

static re_status load_stats_files(runner *r, pass *p) {
  const char *ds = r->j->datasets[p->d].name;
  char path[4400];
  r->pass_samples = 0;
  if (r->mode == RUN_MODE_FINALIZE) {
    snprintf(path, sizeof path, "%s/stats/%s.stats", r->j->out_dir, ds);
    return run_state_load_stats(r, p, path);
  }
  /* merge: the parts' node lists in part order, joined into the canonical root */
  int n = 0;
  RE_TRY(find_nparts(r, ds, &n));
  run_tree all;
  run_tree_init(&all, run_pass_serial_len(p));
  re_status st = RE_OK;
  for (int i = 0; i < n && st == RE_OK; i++) {
    part_stats_path(r, i, n, ds, path, sizeof path);
    if (access(path, R_OK) != 0) {
      st = re_err(RE_EIO, "%s: missing: part %d of %d has not finished (rerun it with --part %d/%d)", path, i, n, i,
                  n);
      break;
    }
    run_tree t;
    int64_t samples = 0;
    st = run_state_read_tree_from(r, p, path, &t, &samples);
    for (int k = 0; st == RE_OK && k < t.n; k++) {
      double *buf = t.nodes[k].buf; /* in memory: moved; spilled: read into a new buffer */
      const double *d = NULL;
      t.nodes[k].buf = NULL;
      if (!buf) {
        st = re_malloc(t.len > 0 ? t.len : 1, sizeof(double), &buf);
        if (st == RE_OK)
          st = run_tree_node_data(&t, k, buf, &d);
        if (st != RE_OK) {
          free(buf);
          break;
        }
      }
      st = run_tree_append(&all, t.nodes[k].start, t.nodes[k].height, buf);
    }
    run_tree_free(&t);
    r->pass_samples += samples;
    if (st == RE_OK)
      st = run_tree_collapse(p, &all);
  }
  if (st == RE_OK)
    st = run_tree_root(p, &all, (p->n + p->fb - 1) / p->fb);
  run_tree_free(&all);
  return st;
}

/* finalize: the stats file read from the old output goes into the new one */
static re_status copy_stats_file(runner *r, pass *p) {
  char path[4400];
  snprintf(path, sizeof path, "%s/stats/%s.stats", r->partial, r->j->datasets[p->d].name);
  return run_state_write_reduced_to(r, p, path);
}

/* Collective. One message for a failed run, printed by rank 0: the error of the
 * lowest rank that failed by itself (the others stopped because of it), with its
 * rank when there are several. Every rank returns the exit code. */
static int report_failure(const runner *r, re_status st) {
  int own = st != RE_OK && st != RE_EMPI, first = 0, nfail = 0, mine = own ? r->rank : r->size;
  MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&own, &nfail, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  int any = st != RE_OK, bad = 0;
  MPI_Allreduce(&any, &bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (!bad)
    return RE_EXIT_OK;
  char msg[2048];
  snprintf(msg, sizeof msg, "%s", *re_errmsg() ? re_errmsg() : re_status_str(st));
  if (first < r->size && first != 0) { /* the first failing rank tells rank 0 */
    if (r->rank == first)
      MPI_Send(msg, (int)sizeof msg, MPI_CHAR, 0, RE_TAG_ERROR_MESSAGE, MPI_COMM_WORLD);
    else if (r->rank == 0)
      MPI_Recv(msg, (int)sizeof msg, MPI_CHAR, first, RE_TAG_ERROR_MESSAGE, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    msg[sizeof msg - 1] = '\0';
  }
  if (r->rank == 0) {
    if (r->size > 1 && first < r->size && nfail < r->size)
      fprintf(stderr, "repeval: error on rank %d of %d: %s\n", first, r->size, msg);
    else
      fprintf(stderr, "repeval: error: %s\n", msg);
    if (nfail > 1 && nfail < r->size)
      fprintf(stderr, "repeval: %d other ranks failed too\n", nfail - 1);
  }
  return RE_EXIT_ERROR;
}

/* The job file as it was run goes into the results (job.yaml), beside the manifest. */
static re_status copy_job_file(runner *r) {
  char dst[4300];
  snprintf(dst, sizeof dst, "%s/job.yaml", r->partial);
  FILE *in;
  RE_TRY(re_fopen_regular(r->j->path, &in));
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

/* Rank 0 resolves the output folder once (normalised, a link followed) and applies the
 * rules of outdir.h before any compute; every rank then uses that real path. */
static re_status settle_output(runner *r, const char *given, int check_replace) {
  job *j = r->j;
  char *real = NULL;
  re_status st = RE_OK;
  if (r->rank == 0) {
    st = outdir_resolve(given, &real);
    if (st == RE_OK) {
      int n = 1, k = 0;
      for (int d = 0; d < j->ndatasets; d++)
        n += j->datasets[d].nfiles;
      for (int m = 0; m < j->nmodels; m++)
        n += 1 + j->models[m].nckpts;
      char **inputs = NULL;
      st = re_calloc(n, sizeof(char *), &inputs);
      if (st == RE_OK) {
        inputs[k++] = j->path;
        for (int d = 0; d < j->ndatasets; d++)
          for (int f = 0; f < j->datasets[d].nfiles; f++)
            inputs[k++] = j->datasets[d].files[f];
        for (int m = 0; m < j->nmodels; m++) {
          struct stat sb;
          if (stat(j->models[m].arch, &sb) == 0) /* a model file, not a preset name */
            inputs[k++] = j->models[m].arch;
          for (int c = 0; c < j->models[m].nckpts; c++)
            inputs[k++] = j->models[m].ckpts[c].path;
        }
        st = outdir_check_inputs(real, given, inputs, k);
      }
      free(inputs);
    }
    if (st == RE_OK && check_replace)
      st = outdir_check_replaceable(real, given);
  }
  st = re_mpi_agree(MPI_COMM_WORLD, st);
  int len = st == RE_OK && real ? (int)strlen(real) + 1 : 0;
  MPI_Bcast(&len, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (st == RE_OK && r->rank != 0)
    st = re_malloc(len, 1, &real);
  st = re_mpi_agree(MPI_COMM_WORLD, st);
  if (st == RE_OK)
    MPI_Bcast(real, len, MPI_CHAR, 0, MPI_COMM_WORLD);
  if (st == RE_OK) {
    free(j->out_dir);
    j->out_dir = real;
    real = NULL;
    if (j->cache_default) { /* the cache follows the output */
      char buf[PATH_MAX + 16];
      snprintf(buf, sizeof buf, "%s.cache", j->out_dir);
      free(j->cache_dir);
      j->cache_dir = NULL;
      st = re_strdup(buf, &j->cache_dir);
    }
  }
  free(real);
  return re_mpi_agree(MPI_COMM_WORLD, st);
}

static int run_main(int argc, char **argv, int mode) {
  const char *cmd = mode == RUN_MODE_MERGE ? "merge" : mode == RUN_MODE_FINALIZE ? "finalize" : "run";
  int part = 0, nparts = 0;
  const char *job_path = NULL, *out_override = NULL;
  int quiet = 0, check_only = 0, threads = 1, threads_given = 0, fresh = 0;
  double every = 600;
  const char *ev = getenv("REPEVAL_CHECKPOINT_EVERY");
  if (ev)
    every = atof(ev);
  for (int i = 1; i < argc; i++) {
    int missing = 0;
    const char *v;
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      help(mode);
      return RE_EXIT_OK;
    } else if ((v = re_cli_opt(argc, argv, &i, "--out", &missing))) {
      out_override = v;
    } else if ((v = re_cli_opt(argc, argv, &i, "--threads", &missing))) {
      char *end;
      threads = (int)strtol(v, &end, 10);
      threads_given = 1;
      if (*end || threads < 1)
        return re_cli_usage_error(cmd, "--threads must be a positive integer, got '%s'", v);
    } else if (mode == RUN_MODE_RUN && (v = re_cli_opt(argc, argv, &i, "--part", &missing))) {
      char *end;
      part = (int)strtol(v, &end, 10);
      nparts = *end == '/' ? (int)strtol(end + 1, &end, 10) : 0;
      if (*end || nparts < 1 || part < 0 || part >= nparts)
        return re_cli_usage_error(cmd, "--part takes I/N with 0 <= I < N, got '%s'", v);
    } else if ((v = re_cli_opt(argc, argv, &i, "--checkpoint-every", &missing))) {
      char *end;
      every = strtod(v, &end);
      if (*end || !(every >= 0))
        return re_cli_usage_error(cmd, "--checkpoint-every must be seconds >= 0, got '%s'", v);
    } else if (missing) {
      return re_cli_usage_error(cmd, "option %s needs a value", argv[i]);
    } else if (!strcmp(argv[i], "--quiet")) {
      quiet = 1;
    } else if (!strcmp(argv[i], "--verbose")) {
      re_log_set_level(RE_LOG_INFO);
    } else if (!strcmp(argv[i], "--fresh")) {
      fresh = 1;
    } else if (!strcmp(argv[i], "--check")) {
      check_only = 1;
    } else if (argv[i][0] == '-' && argv[i][1]) {
      return re_cli_usage_error(cmd, "unknown option '%s'", argv[i]);
    } else if (!job_path) {
      job_path = argv[i];
    } else {
      return re_cli_usage_error(cmd, "give one job file");
    }
  }
  if (!job_path)
    return re_cli_usage_error(cmd, "give a job file");
  /* OpenBLAS partitions products by thread count, which changes float32 rounding:
   * a fixed count per rank keeps results independent of the number of ranks. */
  if (threads_given || (!getenv("OPENBLAS_NUM_THREADS") && !getenv("OMP_NUM_THREADS")))
    openblas_set_num_threads(threads);
  runner r;
  memset(&r, 0, sizeof r);
  r.quiet = quiet;
  r.threads = threads_given || (!getenv("OPENBLAS_NUM_THREADS") && !getenv("OMP_NUM_THREADS"))
                  ? threads
                  : openblas_get_num_threads();
  r.checkpoint_every = every;
  if (nparts > 0)
    mode = RUN_MODE_PART;
  r.mode = mode;
  r.part = part;
  r.nparts = nparts;
  install_signals();
  MPI_Comm_rank(MPI_COMM_WORLD, &r.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &r.size);
  if (r.size > 1)
    re_log_set_rank(r.rank);
  double t0 = progress_now();
  re_status st = job_load(job_path, &r.j);
  st = re_mpi_agree(MPI_COMM_WORLD, st);
  char *out_given = NULL; /* the output folder as the user wrote it, for messages */
  if (st == RE_OK)
    st = re_strdup(out_override ? out_override : r.j->out_dir, &out_given);
  if (st == RE_OK)
    st = settle_output(&r, out_given, mode != RUN_MODE_PART);
  if (st == RE_OK)
    st = run_load_models(&r);
  if (st == RE_OK)
    run_state_init(&r);
  st = re_mpi_agree(MPI_COMM_WORLD, st);
  outdir_lock lock = {-1, ""};
  if (st == RE_OK && !check_only && r.rank == 0)
    st = outdir_lock_take(r.state_dir, out_given, &lock); /* one run per output at a time */
  if (st == RE_OK && !check_only && r.rank == 0) {
    char *parent = NULL;
    st = re_strdup(r.j->out_dir, &parent);
    if (st == RE_OK) {
      char *slash = strrchr(parent, '/');
      if (slash) {
        *slash = '\0';
        st = re_mkdir_p(parent);
      }
    }
    free(parent);
    if (st == RE_OK)
      outdir_sweep_partials(r.j->out_dir, "");
    if (st == RE_OK)
      st = outdir_partial_create(r.j->out_dir, r.partial, sizeof r.partial);
    if (st == RE_OK) {
      r.metrics = open_memstream(&r.metrics_buf, &r.metrics_len);
      if (!r.metrics)
        st = re_err(RE_ENOMEM, "metrics buffer");
      else
        fprintf(r.metrics, "analysis,metric,model_a,checkpoint_a,layer_a,model_b,checkpoint_b,layer_b,dataset,param,"
                           "value,status\n");
    }
  }
  if (!check_only)
    st = re_mpi_agree(MPI_COMM_WORLD, st);
  r.t_load = progress_now() - t0;
  int has_probes = 0;
  for (int a = 0; r.j && a < r.j->nanalyses; a++)
    has_probes |= r.j->analyses[a].type == AN_PROBE;
  if (st == RE_OK && has_probes && !r.j->cache_dir) {
    if (mode == RUN_MODE_PART || mode == RUN_MODE_MERGE)
      snprintf(r.probe_cache_dir, sizeof r.probe_cache_dir, "%s.parts/probe-cache", r.j->out_dir);
    else
      snprintf(r.probe_cache_dir, sizeof r.probe_cache_dir, "%s/probe-cache", r.state_dir);
  }
  if (st == RE_OK) {
    int nd = r.j->ndatasets;
    st = re_calloc(nd, sizeof(int64_t), &r.ds_n);
    if (st == RE_OK)
      st = re_calloc(nd, sizeof(int64_t), &r.ds_fb);
    if (st == RE_OK)
      st = re_calloc(nd, sizeof(uint64_t), &r.ds_key);
    if (st == RE_OK && !check_only)
      st = run_cache_init(&r);
    st = re_mpi_agree(MPI_COMM_WORLD, st);
  }
  /* one pass per dataset that some analysis uses */
  for (int d = 0; st == RE_OK && d < r.j->ndatasets; d++) {
    int used = 0;
    for (int a = 0; a < r.j->nanalyses; a++)
      used |= !strcmp(r.j->analyses[a].dataset, r.j->datasets[d].name);
    used |= run_probe_uses_dataset(r.j, d);
    if (!used)
      continue;
    pass p;
    memset(&p, 0, sizeof p);
    p.d = d;
    double t1 = progress_now();
    r.samples_seen = 0;
    r.pass_samples = 0;
    st = run_pass_setup(&r, &p);
    st = re_mpi_agree(MPI_COMM_WORLD, st);
    if (st == RE_OK && check_only) {
      if (r.rank == 0) {
        int nprobe = 0;
        for (int a = 0; a < r.j->nanalyses; a++) {
          const job_analysis *an = &r.j->analyses[a];
          nprobe += an->type == AN_PROBE && (!strcmp(an->dataset, r.j->datasets[d].name) ||
                                            !strcmp(an->test_dataset, r.j->datasets[d].name) ||
                                            (an->val_dataset && !strcmp(an->val_dataset, r.j->datasets[d].name)));
        }
        printf("dataset %s: %lld samples in %lld batches of %lld, %d taps, %d analyses%s", r.j->datasets[d].name,
               (long long)p.n, (long long)((p.n + p.fb - 1) / p.fb), (long long)p.fb, r.ntaps, p.nan,
               nprobe ? "" : "\n");
        if (nprobe)
          printf(" + %d probe%s\n", nprobe, nprobe == 1 ? "" : "s");
      }
      run_pass_free(&r, &p);
      continue;
    }
    int found = 0;
    run_tree part_tree;
    run_tree_init(&part_tree, 0);
    double t2 = progress_now(), t3 = t2;
    if (mode == RUN_MODE_MERGE || mode == RUN_MODE_FINALIZE) {
      /* statistics from files: the parts of an array job, or a finished run's stats/ */
      if (r.rank == 0)
        st = load_stats_files(&r, &p);
      st = re_mpi_agree(MPI_COMM_WORLD, st);
      found = 1;
    } else if (st == RE_OK && !fresh && mode == RUN_MODE_PART) {
      /* a part that already finished this dataset keeps its statistics */
      char path[4400];
      part_stats_path(&r, r.part, r.nparts, r.j->datasets[d].name, path, sizeof path);
      int done = 0;
      if (r.rank == 0 && access(path, R_OK) == 0) {
        run_tree t;
        int64_t samples = 0;
        done = run_state_read_tree_from(&r, &p, path, &t, &samples) == RE_OK;
        run_tree_free(&t);
        r.pass_samples = samples;
        re_err_clear();
      }
      MPI_Bcast(&done, 1, MPI_INT, 0, MPI_COMM_WORLD);
      if (done) {
        run_pass_free(&r, &p);
        continue;
      }
    } else if (st == RE_OK && !fresh) {
      st = run_state_load_reduced(&r, &p, &found);
    }
    if (st == RE_OK && !found) {
      st = run_pass_stream(&r, &p);
      st = re_mpi_agree(MPI_COMM_WORLD, st);
      long long mine = (long long)r.samples_seen, all = 0;
      MPI_Allreduce(&mine, &all, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
      r.pass_samples = all;
      t2 = progress_now();
      r.t_embed += t2 - t1;
      r.samples_seen = 0;
      if (st == RE_OK)
        st = run_pass_reduce(&r, &p, mode == RUN_MODE_PART ? &part_tree : NULL);
      if (st == RE_OK && r.rank == 0 && mode != RUN_MODE_PART)
        st = run_state_save_reduced(&r, &p);
      st = re_mpi_agree(MPI_COMM_WORLD, st);
      t3 = progress_now();
      r.t_reduce += t3 - t2;
    }
    r.total_samples += r.pass_samples;
    if (mode == RUN_MODE_PART) {
      /* an array task: its reduced statistics are the result; `repeval merge` finishes */
      if (st == RE_OK && r.rank == 0) {
        char path[4400];
        part_stats_path(&r, r.part, r.nparts, r.j->datasets[d].name, path, sizeof path);
        st = run_state_write_tree_to(&r, &p, &part_tree, path);
      }
      run_tree_free(&part_tree);
      st = re_mpi_agree(MPI_COMM_WORLD, st);
      run_pass_free(&r, &p);
      continue;
    }
    if (st == RE_OK)
      st = run_pass_finalize(&r, &p); /* collective */
    if (st == RE_OK && r.rank == 0)
      st = copy_stats_file(&r, &p);
    st = re_mpi_agree(MPI_COMM_WORLD, st);
    r.t_final += progress_now() - t3;
    if (st == RE_OK && r.rank == 0) {
      char file[64];
      snprintf(file, sizeof file, "taps_%s.csv", r.j->datasets[d].name);
      st = run_write_taps_csv(&r, file, NULL, r.ntaps);
    }
    run_pass_free(&r, &p);
  }
  if (st == RE_OK && !check_only && has_probes && mode != RUN_MODE_PART) {
    if (mode == RUN_MODE_FINALIZE && !r.j->cache_dir) {
      run_warn(&r, "probes are not recomputed by finalize without the job's embedding cache ('cache:'); "
                   "their rows are missing from this output");
    } else {
      double t4 = progress_now();
      st = run_probes(&r);
      st = re_mpi_agree(MPI_COMM_WORLD, st);
      r.t_probe += progress_now() - t4;
    }
  }
  if (!check_only) { /* cache counters of every rank, for the manifest */
    long long c[3] = {(long long)r.cache_hits, (long long)r.cache_writes, (long long)r.cache_bad}, call[3] = {0};
    MPI_Reduce(c, call, 3, MPI_LONG_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    r.cache_hits = call[0], r.cache_writes = call[1], r.cache_bad = call[2];
    run_gather_warnings(&r);
  }
  if (check_only && st == RE_OK && r.rank == 0)
    printf("%s: the job is valid (%d model%s, %d analys%s)\n", job_path, r.j->nmodels, r.j->nmodels == 1 ? "" : "s",
           r.j->nanalyses, r.j->nanalyses == 1 ? "is" : "es");
  if (!check_only && r.rank == 0 && mode == RUN_MODE_PART) {
    if (r.metrics)
      fclose(r.metrics);
    out_remove_tree(r.partial);
    if (st == RE_OK) {
      run_state_clear(&r);
      if (!quiet)
        fprintf(stderr, "repeval: part %d of %d done; statistics in %s.parts (combine with: repeval merge %s)\n",
                r.part, r.nparts, r.j->out_dir, job_path);
    }
  } else if (!check_only && r.rank == 0) {
    if (r.metrics)
      fclose(r.metrics);
    if (st == RE_OK) {
      char path[4200];
      snprintf(path, sizeof path, "%s/metrics.csv", r.partial);
      re_atomic at;
      st = re_atomic_open(path, &at);
      if (st == RE_OK)
        st = re_atomic_write(&at, r.metrics_buf, (int64_t)r.metrics_len);
      if (st == RE_OK)
        st = re_atomic_commit(&at);
      else
        re_atomic_abort(&at);
    }
    if (st == RE_OK)
      st = copy_job_file(&r);
    if (st == RE_OK)
      st = run_write_manifest(&r, progress_now() - t0);
    if (st == RE_OK && r.j->bundle) {
      char path[4200];
      snprintf(path, sizeof path, "%s/results.tar.zst", r.partial);
      st = out_bundle(r.partial, path, r.j->bundle_stats ? NULL : "stats");
    }
    if (st == RE_OK) {
      outdir_partial_unmark(r.partial);
      st = out_commit_dir(r.partial, r.j->out_dir);
    }
    if (st == RE_OK)
      run_state_clear(&r);
    if (st != RE_OK && r.partial[0])
      out_remove_tree(r.partial);
    if (st == RE_OK && !quiet)
      fprintf(stderr, "repeval: results in %s (%d undefined value%s, %d warning%s)\n", r.j->out_dir, r.nundefined,
              r.nundefined == 1 ? "" : "s", r.nwarnings, r.nwarnings == 1 ? "" : "s");
  }
  free(r.metrics_buf);
  outdir_lock_release(&lock);
  free(out_given);
  int rc = RE_EXIT_OK;
  if (st == RE_EINTERRUPTED) {
    if (r.rank == 0)
      fprintf(stderr, "repeval: %s\nrepeval: run the same command again to resume (exit code %d)\n", re_errmsg(),
              RE_EXIT_INTERRUPTED);
    rc = RE_EXIT_INTERRUPTED;
  } else {
    rc = report_failure(&r, st);
  }
  if (r.j)
    run_free_models(&r);
  free(r.taps);
  free(r.ds_n);
  free(r.ds_fb);
  free(r.ds_key);
  free(r.ckpt_key);
  job_free(&r.j);
  int bad = rc != RE_EXIT_OK, any = 0;
  MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return rc != RE_EXIT_OK ? rc : (any ? RE_EXIT_ERROR : RE_EXIT_OK);
}


int re_cmd_run(int argc, char **argv) { return run_main(argc, argv, RUN_MODE_RUN); }
int re_cmd_merge(int argc, char **argv) { return run_main(argc, argv, RUN_MODE_MERGE); }
int re_cmd_finalize(int argc, char **argv) { return run_main(argc, argv, RUN_MODE_FINALIZE); }
