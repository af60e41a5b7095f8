/* repeval submit job.yaml: validate the job, render a Slurm batch script from the
 * template (slurm/repeval.sbatch.in), write it next to the output folder and hand
 * it to sbatch. Nothing is submitted when the job file has any error. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "run/job.h"
#include "repeval/atomic.h"
#include "slurm/slurm_script.h"

/* how often a job may be requeued after exit code 75 (REPEVAL_MAX_REQUEUES overrides) */
#define SUBMIT_MAX_REQUEUES 20
#define SUBMIT_WARN_SECONDS 120
#define SUBMIT_MAX_ARRAY (1 << 16)

static const re_opts_cmd CMD = {
    "submit", "JOB.yaml [options] [-- extra sbatch arguments]",
    "Validate the job file completely, render a Slurm batch script that runs\n"
    "'srun --mpi=pmix repeval run JOB.yaml', write it to OUT.slurm/ next to the\n"
    "output folder OUT and submit it with sbatch; prints the job id. The batch\n"
    "log is OUT.slurm/slurm-<jobid>.out. Defaults come from the job's 'slurm:'\n"
    "map; options override them. See docs/slurm.md.\n",
    "Arguments after '--' are further sbatch options, one #SBATCH line each\n"
    "('-- --gres=gpu:1 --constraint v100').\n"
    "\n"
    "Exit codes: 0 submitted (or printed), 1 invalid job file or sbatch failed,\n"
    "2 usage.\n"};

/* --nodes, --time, ...: checked and stored by slurm_opts_set under the slurm-map key
 * of the same name ("ntasks-per-node" -> "ntasks_per_node") */
static re_status set_slurm(const re_opt *opt, const char *value) {
  char key[32], msg[1024];
  snprintf(key, sizeof key, "%s", opt->name);
  for (char *c = key; *c; c++)
    *c = *c == '-' ? '_' : *c;
  if (slurm_opts_set(opt->dst, key, value) == RE_OK)
    return RE_OK;
  snprintf(msg, sizeof msg, "%s", re_errmsg());
  return re_err(RE_EINVAL, "--%s: %s", opt->name, msg);
}

/* --after: Slurm job ids (digits, an array task as ID_TASK) separated by ':'. */
static re_status check_job_ids(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 256)
    return re_err(RE_EINVAL, "expected job ids like 1234 or 1234:1240 (1 to 256 characters)");
  for (const char *c = s; *c; c++) {
    int digit = *c >= '0' && *c <= '9';
    int sep = *c == ':' || *c == '_';
    int ok = digit || (sep && c > s && c[-1] >= '0' && c[-1] <= '9' && c[1] >= '0' && c[1] <= '9');
    if (!ok)
      return re_err(RE_EINVAL, "'%c' at position %d: expected job ids (digits, ID_TASK for an array task) "
                               "separated by ':'",
                    *c, (int)(c - s));
  }
  return RE_OK;
}

/* `path` made absolute against the working folder, without trailing slashes */
static re_status absolute(const char *cwd, const char *path, char **out) {
  size_t a = strlen(cwd), b = strlen(path);
  char *s;
  RE_TRY(re_malloc((int64_t)(a + b + 2), 1, &s));
  if (path[0] == '/')
    memcpy(s, path, b + 1);
  else
    snprintf(s, a + b + 2, "%s/%s", cwd, path);
  size_t n = strlen(s);
  while (n > 1 && s[n - 1] == '/')
    s[--n] = '\0';
  *out = s;
  return RE_OK;
}

/* #SBATCH lines are split at blanks and take no quotes, so the log folder must not
 * hold blanks, quotes, backslashes or control characters */
static re_status check_directive_path(const char *what, const char *p) {
  for (const char *c = p; *c; c++)
    if ((unsigned char)*c <= 0x20 || *c == 0x7f || *c == '\'' || *c == '"' || *c == '\\')
      return re_err(RE_EINVAL,
                    "%s '%s' contains a blank, quote, backslash or control character, which a #SBATCH line cannot "
                    "hold: choose an output folder without them (--output-dir)",
                    what, p);
  return RE_OK;
}

static re_status read_text(const char *path, char **out) {
  FILE *f;
  RE_TRY(re_fopen_regular(path, &f));
  re_status st = RE_OK;
  char *buf = NULL;
  int64_t len = 0, cap = 1 << 16;
  if ((st = re_malloc(cap, 1, &buf)) != RE_OK)
    goto done;
  size_t got;
  while ((got = fread(buf + len, 1, (size_t)(cap - len - 1), f)) > 0) {
    len += (int64_t)got;
    if (len == cap - 1) {
      if (cap >= (1 << 20)) {
        st = re_err(RE_EFORMAT, "%s: a batch-script template of more than 1 MiB is not plausible", path);
        goto done;
      }
      RE_CHECK(re_realloc(&buf, cap * 2, 1));
      cap *= 2;
    }
  }
  if (ferror(f)) {
    st = re_err(RE_EIO, "%s: read error", path);
    goto done;
  }
  buf[len] = '\0';
  if ((int64_t)strlen(buf) != len)
    st = re_err(RE_EFORMAT, "%s: a batch-script template cannot contain NUL bytes", path);
done:
  fclose(f);
  if (st != RE_OK) {
    free(buf);
    return st;
  }
  *out = buf;
  return RE_OK;
}

/* The array spec of the job file, read before job_load: a job may need
 * ${SLURM_ARRAY_TASK_ID} to load at all. NULL if there is none (errors in the file
 * are reported by job_load later). */
static char *peek_array(const char *job_path) {
  re_cfg *c = NULL;
  char *spec = NULL;
  if (re_cfg_parse_file(job_path, &c) == RE_OK) {
    const re_cfg *a = re_cfg_get(re_cfg_get(c, "slurm"), "array");
    if (a && a->kind == RE_CFG_SCALAR && re_strdup(a->scalar, &spec) != RE_OK)
      spec = NULL;
  }
  re_cfg_free(&c);
  re_err_clear();
  return spec;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Run `sbatch --parsable script`; the job id goes to jobid. sbatch's own messages
 * reach the terminal (stderr is not redirected). */
static re_status run_sbatch(const char *script, char *jobid, size_t cap) {
  int fds[2];
  if (pipe(fds) != 0)
    return re_err(RE_EIO, "cannot create a pipe for sbatch: %s", strerror(errno));
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return re_err(RE_EIO, "cannot start sbatch: %s", strerror(errno));
  }
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    execlp("sbatch", "sbatch", "--parsable", script, (char *)NULL);
    fprintf(stderr, "repeval submit: cannot run sbatch: %s\n", strerror(errno));
    _exit(127);
  }
  close(fds[1]);
  char out[4096];
  size_t len = 0;
  ssize_t got;
  while ((got = read(fds[0], out + len, sizeof out - 1 - len)) > 0 || (got < 0 && errno == EINTR))
    if (got > 0)
      len += (size_t)got;
  out[len] = '\0';
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return re_err(RE_EIO, "waiting for sbatch: %s", strerror(errno));
  if (!WIFEXITED(status))
    return re_err(RE_EIO, "sbatch was killed by signal %d; the script is %s", WTERMSIG(status), script);
  if (WEXITSTATUS(status) == 127)
    return re_err(RE_EIO, "sbatch is not on PATH (Slurm client commands missing?); the script is %s; without "
                          "Slurm run it with mpiexec, see docs/slurm.md", script);
  if (WEXITSTATUS(status) != 0)
    return re_err(RE_EIO, "sbatch refused the job (exit code %d, its message is above); the script is %s",
                  WEXITSTATUS(status), script);
  /* --parsable prints "jobid" or "jobid;cluster" */
  size_t k = 0;
  while (k < len && out[k] >= '0' && out[k] <= '9')
    k++;
  if (k == 0 || k >= cap || !(out[k] == ';' || out[k] == '\n' || out[k] == '\0'))
    return re_err(RE_EFORMAT, "sbatch --parsable printed '%s', not a job id", out);
  memcpy(jobid, out, k);
  jobid[k] = '\0';
  return RE_OK;
}

/* The batch script of the merge job of `--parts`: the same resources on one task,
 * no array, started only after the array job `after` succeeded. */
static re_status render_merge(const slurm_opts *o, const slurm_script_vars *v, const char *array_log,
                              const char *array_script, const char *tmpl, const char *tmpl_path, const char *after,
                              char **script, char **path) {
  slurm_opts m;
  memset(&m, 0, sizeof m);
  re_status st = RE_OK;
  char dep[128];
  snprintf(dep, sizeof dep, "--dependency=afterok:%s", after ? after : "<array job id>");
  const char *keys[] = {"time", "partition", "account", "qos", "mem"};
  const char *vals[] = {o->time, o->partition, o->account, o->qos, o->mem};
  for (size_t k = 0; k < sizeof keys / sizeof keys[0] && st == RE_OK; k++)
    if (vals[k])
      st = slurm_opts_set(&m, keys[k], vals[k]);
  for (int k = 0; k < o->nextra && st == RE_OK; k++) /* the array job waits for --after's jobs, the merge for it */
    if (strncmp(o->extra[k], "--dependency", 12) && strncmp(o->extra[k], "--kill-on-invalid-dep", 21))
      st = slurm_opts_set(&m, "extra", o->extra[k]);
  if (st == RE_OK && after)
    st = slurm_opts_set(&m, "extra", dep);
  if (st == RE_OK && after)
    st = slurm_opts_set(&m, "extra", "--kill-on-invalid-dep=yes");
  m.cpus_per_task = o->cpus_per_task;
  /* log: slurm-%j.out beside the parts' logs; script: <array script>-merge.sbatch */
  char *log = NULL, *p = NULL;
  size_t ll = strlen(array_log) + 16, pl = strlen(array_script) + 16;
  if (st == RE_OK)
    st = re_malloc((int64_t)ll, 1, &log);
  if (st == RE_OK)
    st = re_malloc((int64_t)pl, 1, &p);
  if (st == RE_OK) {
    snprintf(log, ll, "%s", array_log);
    char *slash = strrchr(log, '/');
    snprintf(slash ? slash + 1 : log, ll - (size_t)(slash ? slash + 1 - log : 0), "slurm-%%j.out");
    snprintf(p, pl, "%s", array_script);
    char *dot = strrchr(p, '.');
    snprintf(dot ? dot : p + strlen(p), pl - (size_t)((dot ? dot : p + strlen(p)) - p), "-merge.sbatch");
    slurm_script_vars mv = *v;
    mv.command = "merge";
    mv.run_args = "";
    mv.log = log;
    mv.script = p;
    st = slurm_script_render(tmpl ? tmpl : slurm_builtin_template, tmpl_path ? tmpl_path : "slurm/repeval.sbatch.in",
                             &m, &mv, script);
  }
  free(log);
  slurm_opts_clear(&m);
  if (st == RE_OK)
    *path = p;
  else
    free(p);
  return st;
}

/* One submission: the command line, the job as loaded for each array task, and the
 * paths and scripts made from them. */
typedef struct submit {
  char *job_path, **extra;
  const char *out_opt, *tmpl_path, *after;
  int dry, nextra;
  long parts;
  slurm_opts cli, o; /* the command line's Slurm options; the job's, with the command line's over them */
  job *j;            /* the job as loaded for the first array task */
  char cwd[4096], exe[4096];
  char *array_spec, *saved_task, **outs; /* outs: the output folder of each task */
  int64_t *idx, nidx, nloads;            /* array task ids; nloads: how often the job was loaded */
  int had_task;                          /* SLURM_ARRAY_TASK_ID was set before (saved_task) */
  char *job_abs, *base, *slurm_dir, *log, *script_path, *tmpl, *script, *job_name, *merge_script, *merge_path;
  const char *run_out; /* --output-dir of the batch script's repeval run, or NULL: the job's own */
  int array_subdirs;   /* each array task writes run_out/task-i */
  slurm_script_vars vars;
  char part_args[64];
  re_atomic atom;
} submit;

/* The command line into s; a usage error's exit code, RE_EXIT_OK after --help, or RE_OPTS_RUN. */
static int parse(int argc, char **argv, submit *s) {
  int64_t nparts = 0;
  slurm_opts *cli = &s->cli;
  const re_opt opts[] = {
      RE_OPT_CALL("nodes", set_slurm, cli, "N", "nodes (default 1)"),
      RE_OPT_CALL("ntasks-per-node", set_slurm, cli, "K", "MPI ranks per node (default 1)"),
      RE_OPT_CALL("cpus-per-task", set_slurm, cli, "C", "CPUs, and so BLAS threads, per rank (default 1)"),
      RE_OPT_CALL("time", set_slurm, cli, "T", "time limit: minutes, HH:MM:SS, D-HH:MM:SS, ..."),
      RE_OPT_CALL("partition", set_slurm, cli, "P", "partition"),
      RE_OPT_CALL("account", set_slurm, cli, "A", "account to charge"),
      RE_OPT_CALL("qos", set_slurm, cli, "Q", "quality of service"),
      RE_OPT_CALL("mem", set_slurm, cli, "M", "memory per node (4000M, 16G)"),
      RE_OPT_CALL("array", set_slurm, cli, "SPEC",
                  "job array (0-7, 1,3,5, 0-15%4); task i writes OUTPUT-DIR/task-i, or the job's output.dir when "
                  "that uses ${SLURM_ARRAY_TASK_ID}"),
      RE_OPT_INT("parts", &nparts, 1, SUBMIT_MAX_ARRAY, "N",
                 "split the job into N array tasks (repeval run --part I/N, each resumable) and submit a dependent "
                 "job that runs repeval merge when all have finished: the results of one big job; prints both job "
                 "ids"),
      RE_OPT_STRING("after", &s->after, "JOBID[:JOBID...]",
                    "start only after these Slurm jobs succeeded (--dependency=afterok), e.g. a GPU job writing "
                    "the activations this job reads: its activations folders need not exist yet"),
      RE_OPT_STRING("output-dir", &s->out_opt, "DIR", "results folder (default: output.dir of the job)"),
      RE_OPT_STRING("template", &s->tmpl_path, "FILE",
                    "batch-script template (default: the built-in copy of slurm/repeval.sbatch.in)"),
      RE_OPT_FLAG("dry-run", &s->dry, "print the script; write and submit nothing"),
      RE_OPT_END,
  };
  const re_opts_pos pos = {.min = 1, .max = 1, .v = &s->job_path, .too_few = "give a job file",
                           .too_many = "give one job file", .rest = &s->extra, .nrest = &s->nextra,
                           .rest_what = "sbatch options"};
  int rc = re_opts_parse(&CMD, opts, argc, argv, &pos);
  if (rc == RE_OPTS_RUN && slurm_opts_add_extra_args(cli, s->nextra, s->extra) != RE_OK)
    rc = re_cli_usage_error("submit", "%s", re_errmsg());
  if (rc != RE_OPTS_RUN)
    return rc;
  s->parts = (long)nparts;
  if (s->after && check_job_ids(s->after) != RE_OK)
    return re_cli_usage_error("submit", "--after %s: %s", s->after, re_errmsg());
  return RE_OPTS_RUN;
}

/* The working folder and the path of this program, for the batch script. */
static re_status locate(submit *s) {
  if (!getcwd(s->cwd, sizeof s->cwd))
    return re_err(RE_EIO, "cannot read the working folder: %s", strerror(errno));
  ssize_t el = readlink("/proc/self/exe", s->exe, sizeof s->exe - 1);
  if (el <= 0 || el >= (ssize_t)sizeof s->exe - 1)
    return re_err(RE_EIO, "cannot resolve /proc/self/exe to find the repeval program: %s", strerror(errno));
  s->exe[el] = '\0';
  return RE_OK;
}

/* Validate the job once, or once per array task with SLURM_ARRAY_TASK_ID set as Slurm
 * will set it; s->outs gets each task's output folder, s->j the first task's job. */
static re_status load_job(submit *s) {
  if (s->cli.array)
    RE_TRY(re_strdup(s->cli.array, &s->array_spec));
  else
    s->array_spec = peek_array(s->job_path);
  if (s->parts && s->array_spec)
    return re_err(RE_EINVAL, "%s: --parts makes its own array: drop --array (or the job's slurm: array)", s->job_path);
  if (s->array_spec && slurm_array_indices(s->array_spec, SUBMIT_MAX_ARRAY, &s->idx, &s->nidx) != RE_OK) {
    re_err_clear();
    free(s->idx);
    s->idx = NULL;
    s->nidx = 0; /* slurm_opts_from_cfg reports the bad spec with its position */
  }
  s->nloads = s->nidx > 0 ? s->nidx : 1;
  const char *prev = getenv("SLURM_ARRAY_TASK_ID");
  s->had_task = prev != NULL;
  if (prev)
    RE_TRY(re_strdup(prev, &s->saved_task));
  RE_TRY(re_calloc(s->nloads, sizeof *s->outs, &s->outs));
  for (int64_t t = 0; t < s->nloads; t++) {
    job *jt = NULL;
    if (s->nidx > 0) {
      char num[32];
      snprintf(num, sizeof num, "%lld", (long long)s->idx[t]);
      setenv("SLURM_ARRAY_TASK_ID", num, 1);
    }
    re_status st = s->after ? job_load_deferred(s->job_path, &jt) : job_load(s->job_path, &jt);
    if (st != RE_OK && s->nidx > 0)
      re_err_context(st, "array task %lld (SLURM_ARRAY_TASK_ID=%lld): ", (long long)s->idx[t], (long long)s->idx[t]);
    RE_TRY(st);
    st = re_strdup(jt->out_dir, &s->outs[t]);
    if (t == 0)
      s->j = jt;
    else
      job_free(&jt);
    RE_TRY(st);
  }
  return RE_OK;
}

/* The Slurm options: the job's, the command line's over them, extra directives added
 * up, the array of --parts and the dependency of --after; warns of a short time limit. */
static re_status merge_slurm_opts(submit *s) {
  slurm_opts *o = &s->o, *cli = &s->cli;
  RE_TRY(slurm_opts_from_cfg(re_cfg_get(s->j->cfg, "slurm"), o));
  if (cli->nodes)
    o->nodes = cli->nodes;
  if (cli->ntasks_per_node)
    o->ntasks_per_node = cli->ntasks_per_node;
  if (cli->cpus_per_task)
    o->cpus_per_task = cli->cpus_per_task;
  char **cs[] = {&cli->time, &cli->partition, &cli->account, &cli->qos, &cli->mem, &cli->array};
  char **os[] = {&o->time, &o->partition, &o->account, &o->qos, &o->mem, &o->array};
  for (size_t k = 0; k < sizeof cs / sizeof cs[0]; k++)
    if (*cs[k]) {
      free(*os[k]);
      *os[k] = *cs[k];
      *cs[k] = NULL;
    }
  for (int k = 0; k < cli->nextra; k++)
    RE_TRY(slurm_opts_set(o, "extra", cli->extra[k]));
  if (s->parts) {
    char spec[32];
    snprintf(spec, sizeof spec, "0-%ld", s->parts - 1);
    RE_TRY(slurm_opts_set(o, "array", spec));
  }
  if (s->after) { /* a failed or cancelled predecessor cancels this job instead of leaving it pending */
    char dep[300];
    snprintf(dep, sizeof dep, "--dependency=afterok:%s", s->after);
    RE_TRY(slurm_opts_set(o, "extra", dep));
    RE_TRY(slurm_opts_set(o, "extra", "--kill-on-invalid-dep=yes"));
  }
  int64_t limit;
  if (o->time && slurm_check_time(o->time, &limit) == RE_OK && limit >= 0 && limit <= SUBMIT_WARN_SECONDS)
    fprintf(stderr,
            "repeval submit: warning: the time limit %s is not longer than the %d s warning before it; the job "
            "will be told to save and stop right away\n",
            o->time, SUBMIT_WARN_SECONDS);
  return RE_OK;
}

/* Where the results go: without --output-dir every array task writes the job's own
 * output.dir, which must differ per task; else one folder (task i: its task-i). */
static re_status place_results(submit *s) {
  RE_TRY(absolute(s->cwd, s->job_path, &s->job_abs));
  if (!(s->nidx > 0 && !s->out_opt)) {
    RE_TRY(absolute(s->cwd, s->out_opt ? s->out_opt : s->j->out_dir, &s->base));
    s->run_out = s->base;
    s->array_subdirs = s->nidx > 0;
    return RE_OK;
  }
  char **sorted = NULL;
  re_status st = RE_OK;
  RE_TRY(re_malloc(s->nloads, sizeof *sorted, &sorted));
  memcpy(sorted, s->outs, sizeof *sorted * (size_t)s->nloads);
  qsort(sorted, (size_t)s->nloads, sizeof *sorted, cmp_str);
  for (int64_t t = 1; t < s->nloads && st == RE_OK; t++)
    if (!strcmp(sorted[t - 1], sorted[t]))
      st = re_err(RE_EINVAL,
                  "%s: several array tasks would write the same output folder %s: use ${SLURM_ARRAY_TASK_ID} in "
                  "output.dir, or give --output-dir DIR (task i then writes DIR/task-i)",
                  s->job_path, sorted[t]);
  free(sorted);
  RE_TRY(st);
  return absolute(s->cwd, s->outs[0], &s->base);
}

/* The folder of scripts and logs (OUT.slurm), the log pattern (a literal % written %%,
 * as Slurm expands %-patterns in --output) and a fresh timestamped script name. */
static re_status place_script_and_log(submit *s) {
  size_t bl = strlen(s->base);
  RE_TRY(re_malloc((int64_t)bl + 8, 1, &s->slurm_dir));
  snprintf(s->slurm_dir, bl + 8, "%s.slurm", s->base);
  RE_TRY(check_directive_path("the log folder", s->slurm_dir));
  size_t pct = 0;
  for (const char *c = s->slurm_dir; *c; c++)
    pct += *c == '%';
  size_t cap = strlen(s->slurm_dir) + pct + 32;
  RE_TRY(re_malloc((int64_t)cap, 1, &s->log));
  size_t w = 0;
  for (const char *c = s->slurm_dir; *c; c++) {
    s->log[w++] = *c;
    if (*c == '%')
      s->log[w++] = '%';
  }
  snprintf(s->log + w, cap - w, "%s", s->nidx > 0 || s->parts ? "/slurm-%A_%a.out" : "/slurm-%j.out");
  char stamp[32];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
  cap = strlen(s->slurm_dir) + 64;
  RE_TRY(re_malloc((int64_t)cap, 1, &s->script_path));
  struct stat sb;
  snprintf(s->script_path, cap, "%s/submit-%s.sbatch", s->slurm_dir, stamp);
  for (int k = 2; stat(s->script_path, &sb) == 0 && k < 1000; k++)
    snprintf(s->script_path, cap, "%s/submit-%s-%d.sbatch", s->slurm_dir, stamp, k);
  return RE_OK;
}

/* The batch script (and with --parts the merge job's, `after` its dependency) from the
 * template, under a job name Slurm tools show without trouble. */
static re_status render(submit *s, const char *after) {
  RE_TRY(re_strdup(s->j->name, &s->job_name));
  for (char *c = s->job_name; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
          *c == '_' || *c == '-'))
      *c = '_';
  if (s->tmpl_path)
    RE_TRY(read_text(s->tmpl_path, &s->tmpl));
  s->vars = (slurm_script_vars){
      .job_name = s->job_name,
      .repeval = s->exe,
      .job_file = s->job_abs,
      .output_dir = s->run_out,
      .array_subdirs = s->array_subdirs,
      .log = s->log,
      .script = s->script_path,
      .workdir = s->cwd,
      .max_requeues = SUBMIT_MAX_REQUEUES,
  };
  if (s->parts) {
    snprintf(s->part_args, sizeof s->part_args, " --part \"${SLURM_ARRAY_TASK_ID}/%ld\"", s->parts);
    s->vars.run_args = s->part_args;
  }
  RE_TRY(slurm_script_render(s->tmpl ? s->tmpl : slurm_builtin_template,
                             s->tmpl_path ? s->tmpl_path : "slurm/repeval.sbatch.in", &s->o, &s->vars, &s->script));
  if (!s->parts)
    return RE_OK;
  /* the merge job: one task, after every part succeeded */
  return render_merge(&s->o, &s->vars, s->log, s->script_path, s->tmpl, s->tmpl_path, after, &s->merge_script,
                      &s->merge_path);
}

/* --dry-run: the script(s) on stdout. */
static void print_scripts(const submit *s) {
  fputs(s->script, stdout);
  if (s->merge_script) {
    printf("\n# ---- then, with --dependency=afterok on the array job: %s\n", s->merge_path);
    fputs(s->merge_script, stdout);
  }
}

/* --parts: the merge job rendered with the array job's id, written and submitted. */
static re_status submit_merge(submit *s, const char *jobid) {
  free(s->merge_script);
  free(s->merge_path);
  s->merge_script = s->merge_path = NULL;
  RE_TRY(render_merge(&s->o, &s->vars, s->log, s->script_path, s->tmpl, s->tmpl_path, jobid, &s->merge_script,
                      &s->merge_path));
  re_atomic ma;
  memset(&ma, 0, sizeof ma);
  re_status st = re_atomic_open(s->merge_path, &ma);
  if (st == RE_OK)
    st = re_atomic_write(&ma, s->merge_script, (int64_t)strlen(s->merge_script));
  if (st == RE_OK)
    st = re_atomic_commit(&ma);
  re_atomic_abort(&ma);
  RE_TRY(st);
  char mid[64];
  RE_TRY(run_sbatch(s->merge_path, mid, sizeof mid));
  printf("%s\n", mid);
  fprintf(stderr,
          "repeval submit: %ld parts as array job %s, then merge job %s (after every part succeeded)\n"
          "  scripts %s\n          %s\n  logs    %s/slurm-%s_<part>.out, %s/slurm-%s.out\n",
          s->parts, jobid, mid, s->script_path, s->merge_path, s->slurm_dir, jobid, s->slurm_dir, mid);
  return RE_OK;
}

/* Write the script into OUT.slurm/, hand it to sbatch and say where its logs go. */
static re_status submit_job(submit *s) {
  RE_TRY(re_mkdir_p(s->slurm_dir));
  RE_TRY(re_atomic_open(s->script_path, &s->atom));
  RE_TRY(re_atomic_write(&s->atom, s->script, (int64_t)strlen(s->script)));
  RE_TRY(re_atomic_commit(&s->atom));
  char jobid[64];
  RE_TRY(run_sbatch(s->script_path, jobid, sizeof jobid));
  printf("%s\n", jobid);
  if (s->parts)
    return submit_merge(s, jobid);
  if (s->nidx > 0)
    fprintf(stderr, "repeval submit: array job %s submitted\n  script %s\n  logs   %s/slurm-%s_<task>.out\n", jobid,
            s->script_path, s->slurm_dir, jobid);
  else
    fprintf(stderr, "repeval submit: job %s submitted\n  script %s\n  log    %s/slurm-%s.out\n", jobid,
            s->script_path, s->slurm_dir, jobid);
  return RE_OK;
}

/* Restore SLURM_ARRAY_TASK_ID and free everything. */
static void submit_free(submit *s) {
  if (s->outs) {
    if (s->had_task)
      setenv("SLURM_ARRAY_TASK_ID", s->saved_task, 1);
    else
      unsetenv("SLURM_ARRAY_TASK_ID");
    for (int64_t t = 0; t < s->nloads; t++)
      free(s->outs[t]);
  }
  re_atomic_abort(&s->atom);
  free(s->outs);
  free(s->saved_task);
  free(s->array_spec);
  free(s->idx);
  char *owned[] = {s->job_abs, s->base, s->slurm_dir, s->log, s->script_path, s->tmpl, s->script,
                   s->merge_script, s->merge_path, s->job_name};
  for (size_t k = 0; k < sizeof owned / sizeof owned[0]; k++)
    free(owned[k]);
  job_free(&s->j);
  slurm_opts_clear(&s->cli);
  slurm_opts_clear(&s->o);
}

int re_cmd_submit(int argc, char **argv) {
  submit sub;
  memset(&sub, 0, sizeof sub);
  submit *s = &sub;
  int rc = parse(argc, argv, s);
  if (rc != RE_OPTS_RUN) {
    slurm_opts_clear(&s->cli);
    return rc;
  }
  re_status st = locate(s);
  if (st == RE_OK)
    st = load_job(s);
  if (st == RE_OK)
    st = merge_slurm_opts(s);
  if (st == RE_OK)
    st = place_results(s);
  if (st == RE_OK)
    st = place_script_and_log(s);
  if (st == RE_OK)
    st = render(s, s->dry ? "<array job id>" : NULL);
  if (st == RE_OK && s->dry)
    print_scripts(s);
  else if (st == RE_OK)
    st = submit_job(s);
  submit_free(s);
  return st == RE_OK ? RE_EXIT_OK : re_cli_fail(st);
}
