/* repeval run JOB.yaml (and merge, finalize): the command line of the engine in run/.
 * Arguments are parsed here; run/driver.c does the work. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "run/driver.h"
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
         "  --max-stats-mb MB  memory budget of the co-moment statistics per rank (default\n"
         "                REPEVAL_MAX_STATS_MB, else %d); a cca analysis whose exact state\n"
         "                exceeds it takes the two-pass route (docs/job-spec.md#cca)\n"
         "  --quiet       no progress output\n"
         "  --verbose     log at info level\n"
         "\n"
         "A run that is stopped resumes where it was when the same command is run again.\n"
         "Environment: REPEVAL_MAX_STATS_MB (co-moment memory budget, default %d),\n"
         "REPEVAL_CHECKPOINT_EVERY (default for --checkpoint-every).\n",
         RUN_DEFAULT_BUDGET_MB, RUN_DEFAULT_BUDGET_MB);
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
    } else if ((v = re_cli_opt(argc, argv, &i, "--max-stats-mb", &missing))) {
      char *end;
      double mb = strtod(v, &end);
      if (*end || !(mb > 0 && mb < 1e12))
        return re_cli_usage_error(cmd, "--max-stats-mb must be a number of MB > 0, got '%s'", v);
      setenv("REPEVAL_MAX_STATS_MB", v, 1); /* the budget every part of the run reads */
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
  run_args a = {job_path, out_override, mode, part, nparts, quiet, check_only, fresh, threads, threads_given, every};
  return run_execute(&a); /* main has initialised MPI (its command table) */
}

int re_cmd_run(int argc, char **argv) { return run_main(argc, argv, RUN_MODE_RUN); }
int re_cmd_merge(int argc, char **argv) { return run_main(argc, argv, RUN_MODE_MERGE); }
int re_cmd_finalize(int argc, char **argv) { return run_main(argc, argv, RUN_MODE_FINALIZE); }
