/* Slurm batch scripts for `repeval submit`: the resource options (from a job's
 * `slurm:` map and the command line), their validation, and the rendering of the
 * batch-script template slurm/repeval.sbatch.in (see docs/slurm.md). */
#ifndef REPEVAL_SLURM_SCRIPT_H
#define REPEVAL_SLURM_SCRIPT_H

#include <stdint.h>

#include "repeval/cfg.h"

/* Slurm resources of one submission. Strings are owned (NULL: not given). */
typedef struct slurm_opts {
  int64_t nodes, ntasks_per_node, cpus_per_task; /* 0: not given (the script uses 1) */
  char *time;                                     /* [D-]HH:MM:SS and the other sbatch forms */
  char *partition, *account, *qos;
  char *mem;   /* per node, e.g. 4000M, 16G */
  char *array; /* e.g. 0-15%4, 1,3,5, 0-30:3 */
  char **extra; /* further directives, one per #SBATCH line */
  int nextra;
} slurm_opts;

/* Free the strings of *o and zero it. */
void slurm_opts_clear(slurm_opts *o);

/* Read a job's `slurm:` map (NULL: nothing to read) into *o, validating every key
 * and value; errors carry the file:line:col of the offending node. */
re_status slurm_opts_from_cfg(const re_cfg *slurm, slurm_opts *o);

/* Set one option from text (the command line): key is the slurm-map key
 * ("nodes", "time", ...). Validates; on error *o is unchanged. */
re_status slurm_opts_set(slurm_opts *o, const char *key, const char *value);

/* Append extra sbatch arguments as directives: an argument starting with '-' opens
 * a new directive, any other is the value of the one before ("--gres gpu:1"). */
re_status slurm_opts_add_extra_args(slurm_opts *o, int argc, char *const *argv);

/* Validators (messages say what was expected and what was found). */
/* *seconds (NULL allowed) gets the limit in seconds, -1 for UNLIMITED. */
re_status slurm_check_time(const char *s, int64_t *seconds);
re_status slurm_check_mem(const char *s);
re_status slurm_check_name(const char *what, const char *s);
re_status slurm_check_directive(const char *s);

/* The indices of an --array spec ("0-7:2,10%3" -> 0 2 4 6 10), ascending as
 * written; *idx is malloc'ed. At most `max` indices. */
re_status slurm_array_indices(const char *spec, int64_t max, int64_t **idx, int64_t *n);

/* Text of a value for a POSIX shell: wrapped in single quotes, ' as '\''. */
re_status slurm_shell_quote(const char *s, char **out);

/* Everything the template needs; paths absolute. */
typedef struct slurm_script_vars {
  const char *job_name;
  const char *repeval;    /* the repeval executable */
  const char *job_file;   /* the job file */
  const char *output_dir; /* results folder (--out of repeval run); NULL: the job's output.dir */
  int array_subdirs;      /* array job: task i writes output_dir/task-i */
  const char *log;        /* Slurm --output pattern (%j, %A, %a expanded by Slurm) */
  const char *script;     /* where the rendered script is written */
  const char *workdir;    /* folder the script changes to */
  int max_requeues;
  const char *command;    /* repeval command the step runs: "run" (default) or "merge" */
  const char *run_args;   /* further arguments, shell text (e.g. --part "$SLURM_ARRAY_TASK_ID/4") */
} slurm_script_vars;

/* The built-in template (slurm/repeval.sbatch.in, embedded at build time). */
extern const char slurm_builtin_template[];

/* Render `tmpl` (placeholders @NAME@; an unknown placeholder is an error naming its
 * line) with options o and vars v into a malloc'ed string. `tmpl_name` is used in
 * messages. */
re_status slurm_script_render(const char *tmpl, const char *tmpl_name, const slurm_opts *o,
                              const slurm_script_vars *v, char **out);

#endif
