/* repeval run JOB.yaml (and merge, finalize): the command line of the engine in run/.
 * Arguments are parsed here; run/driver.c does the work. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "run/driver.h"
#include "run/run.h"

static const re_opts_cmd RUN = {
    "run", "JOB.yaml [options]      (under mpiexec / srun for several ranks)",
    "Run an evaluation job: every checkpoint of every model over the job's datasets,\n"
    "CKA / CCA-family / spectrum analyses, results in the job's output folder\n"
    "(metrics.csv, *.npy matrices, manifest.json, results.tar.zst). The job file\n"
    "format is described in docs/job-spec.md.\n",
    "A run that is stopped resumes where it was when the same command is run again.\n"
    "Environment: REPEVAL_MAX_STATS_MB (co-moment memory budget, default 8192),\n"
    "REPEVAL_CKPT_GROUPS (default for --checkpoint-groups),\n"
    "REPEVAL_CHECKPOINT_EVERY (default for --checkpoint-every).\n"};
static const re_opts_cmd MERGE = {
    "merge", "JOB.yaml [--out DIR] [--quiet]",
    "Combine the statistics of an array job's parts (each run with\n"
    "`repeval run JOB.yaml --part I/N`, found in OUT.parts/) in part order, compute\n"
    "every metric and write the output folder, exactly as one big run would.\n",
    NULL};
static const re_opts_cmd FINALIZE = {
    "finalize", "JOB.yaml [--out DIR] [--quiet]",
    "Recompute every metric from the reduced statistics saved in OUT/stats/ by an\n"
    "earlier run, without forward passes: change finalize-time settings in the job\n"
    "(CCA variance, ridge, collapse fraction, pairs of the same taps) and rerun.\n"
    "The output folder is replaced atomically.\n",
    NULL};

/* What the command line sets. */
typedef struct run_cli {
  const char *out;
  int64_t threads; /* 0: not given */
  int part, nparts;
  double every;
  int quiet, verbose, fresh, check;
} run_cli;

/* --part I/N */
static re_status set_part(const re_opt *opt, const char *v) {
  run_cli *c = opt->dst;
  char *end;
  c->part = (int)strtol(v, &end, 10);
  c->nparts = *end == '/' ? (int)strtol(end + 1, &end, 10) : 0;
  if (*end || c->nparts < 1 || c->part < 0 || c->part >= c->nparts)
    return re_err(RE_EINVAL, "--part takes I/N with 0 <= I < N, got '%s'", v);
  return RE_OK;
}

/* --max-stats-mb MB: the budget every part of the run reads (REPEVAL_MAX_STATS_MB). */
static re_status set_stats_mb(const re_opt *opt, const char *v) {
  (void)opt;
  char *end;
  double mb = strtod(v, &end);
  if (*end || !(mb > 0 && mb < 1e12))
    return re_err(RE_EINVAL, "--max-stats-mb must be a number of MB > 0, got '%s'", v);
  setenv("REPEVAL_MAX_STATS_MB", v, 1);
  return RE_OK;
}

/* --checkpoint-groups G|auto: the streaming stage's layout (REPEVAL_CKPT_GROUPS). */
static re_status set_groups(const re_opt *opt, const char *v) {
  (void)opt;
  char *end;
  long g = strtol(v, &end, 10);
  if (strcmp(v, "auto") && (*end || g < 1 || g > 1 << 20))
    return re_err(RE_EINVAL, "--checkpoint-groups must be 'auto' or a number of ranks >= 1, got '%s'", v);
  setenv("REPEVAL_CKPT_GROUPS", v, 1);
  return RE_OK;
}

static int run_main(int argc, char **argv, int mode) {
  run_cli c = {NULL, 0, 0, 0, 600, 0, 0, 0, 0};
  const char *ev = getenv("REPEVAL_CHECKPOINT_EVERY");
  if (ev)
    c.every = atof(ev);
  re_opt opts[] = {
      RE_OPT_STRING("out", &c.out, "DIR", "output folder (overrides output.dir of the job)"),
      RE_OPT_INT("threads", &c.threads, 1, 4096, "T",
                 "BLAS threads per rank (default 1, or OPENBLAS_NUM_THREADS if set). Results agree across rank "
                 "counts for a fixed count per rank."),
      RE_OPT_FLAG("check", &c.check, "validate the job (files, models, checkpoints) and exit"),
      RE_OPT_DOUBLE("checkpoint-every", &c.every, 0, 1e12, 0, "S",
                    "save a resume snapshot every S seconds (default 600; 0: only when stopped by "
                    "SIGTERM/SIGUSR1/SIGINT, which exit with code 75)"),
      RE_OPT_FLAG("fresh", &c.fresh, "ignore saved state in OUT.state and start from the beginning"),
      RE_OPT_CALL("max-stats-mb", set_stats_mb, NULL, "MB",
                  "memory budget of the co-moment statistics per rank (default REPEVAL_MAX_STATS_MB, else 8192); a "
                  "cca analysis whose exact state exceeds it takes the two-pass route (docs/job-spec.md#cca)"),
      RE_OPT_CALL("checkpoint-groups", set_groups, NULL, "G",
                  "split each team of G ranks' work by checkpoints: member j runs every G-th checkpoint on the "
                  "team's batches and the taps are exchanged (default REPEVAL_CKPT_GROUPS, else auto: G > 1 when "
                  "ranks outnumber or do not divide the batches); G divides the ranks; results do not change"),
      RE_OPT_FLAG("quiet", &c.quiet, "no progress output"),
      RE_OPT_FLAG("verbose", &c.verbose, "log at info level"),
      RE_OPT_CALL("part", set_part, &c, "I/N",
                  "stream only part I (0-based) of N of the batches and save its statistics in OUT.parts/ (Slurm "
                  "arrays); then `repeval merge`"),
      RE_OPT_END};
  if (mode != RUN_MODE_RUN) /* --part is run's */
    opts[sizeof opts / sizeof opts[0] - 2] = (re_opt)RE_OPT_END;
  char *job_path = NULL;
  re_opts_pos pos = {1, 1, &job_path, NULL, "give a job file", "give one job file", NULL, NULL, NULL};
  const re_opts_cmd *cmd = mode == RUN_MODE_MERGE ? &MERGE : mode == RUN_MODE_FINALIZE ? &FINALIZE : &RUN;
  int rc = re_opts_parse(cmd, opts, argc, argv, &pos);
  if (rc != RE_OPTS_RUN)
    return rc;
  if (c.verbose)
    re_log_set_level(RE_LOG_INFO);
  run_args a = {job_path, c.out, mode, c.part, c.nparts, c.quiet, c.check, c.fresh, c.threads ? (int)c.threads : 1,
                c.threads != 0, c.every};
  return run_execute(&a); /* main has initialised MPI (its command table) */
}

int re_cmd_run(int argc, char **argv) { return run_main(argc, argv, RUN_MODE_RUN); }
int re_cmd_merge(int argc, char **argv) { return run_main(argc, argv, RUN_MODE_MERGE); }
int re_cmd_finalize(int argc, char **argv) { return run_main(argc, argv, RUN_MODE_FINALIZE); }
